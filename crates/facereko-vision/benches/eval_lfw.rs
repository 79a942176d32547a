//! Accuracy and speed of the local engine over a face folder (default `$FACEREKO_FACES_DIR/lfw-dev`):
//! `cargo bench -p facereko-vision --bench eval_lfw`. Prints the `facereko eval` report and its JSON.
//!
//! Knobs for experiments (environment): `EVAL_ENGINE` (onnx/dlib), `EVAL_DIR` (folder name or path),
//! `EVAL_MIRROR` (0/1), `EVAL_WORKERS`, `EVAL_DETECT_MAX_SIDE`, `EVAL_MIN_FACE_PX`, `EVAL_THRESHOLD`,
//! `EVAL_PROBE_FRAMES`.

use std::path::PathBuf;
use std::time::Instant;

use facereko_vision::{eval, LocalEngine, VisionConfig};

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(name).unwrap_or_else(|| panic!("{name} must be set")))
}

fn knob<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours means another bench was asked for.
    if std::env::args().skip(1).any(|a| !a.starts_with("--")) {
        return;
    }
    let models = env_path("FACEREKO_MODELS_DIR");
    let faces = env_path("FACEREKO_FACES_DIR");
    let dir = match std::env::var("EVAL_DIR") {
        Ok(d) if d.contains('/') => PathBuf::from(d),
        Ok(d) => faces.join(d),
        Err(_) => faces.join("lfw-dev"),
    };
    let mut config = VisionConfig::default();
    if let Ok(kind) = std::env::var("EVAL_ENGINE") {
        config.local_engine = kind.parse().expect("EVAL_ENGINE: onnx or dlib");
    }
    if let Some(m) = knob::<u8>("EVAL_MIRROR") {
        config.mirror = m != 0;
    }
    config.workers = knob("EVAL_WORKERS").unwrap_or(1);
    if let Some(v) = knob("EVAL_DETECT_MAX_SIDE") {
        config.detect_max_side = v;
    }
    if let Some(v) = knob("EVAL_MIN_FACE_PX") {
        config.min_face_px = v;
    }
    let threshold = knob("EVAL_THRESHOLD").unwrap_or(config.threshold());
    let probe_frames = knob("EVAL_PROBE_FRAMES").unwrap_or(0);
    let engine = LocalEngine::load(&config, &models).expect("loading the engine");
    if let Ok(out) = std::env::var("EVAL_DUMP") {
        dump(&engine, &dir, &out);
        return;
    }
    let started = Instant::now();
    let report = eval::run(&dir, &engine, threshold, probe_frames, &|done, total| {
        if done % 250 == 0 || done == total {
            eprintln!("  {done}/{total} photos");
        }
    })
    .expect("eval");
    println!(
        "eval of {} over {} ({} workers, mirror {})",
        config.local_engine,
        dir.display(),
        config.workers,
        config.mirror
    );
    println!("{report}");
    println!("wall time {:.1} s", started.elapsed().as_secs_f64());
    println!("{}", serde_json::to_string(&report).expect("json"));
}

/// Writes `identity value…` per photo with a face (for offline analysis of the embedding space).
fn dump(engine: &LocalEngine, dir: &std::path::Path, out: &str) {
    let mut photos = Vec::new();
    let mut ids: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ids.sort();
    for (i, id) in ids.iter().enumerate() {
        let mut files: Vec<_> = std::fs::read_dir(id)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        photos.extend(files.into_iter().map(|f| (i, f)));
    }
    let lines = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..engine.config().workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((i, f)) = photos.get(k) else { break };
                if let Ok(Some(p)) = engine.describe_blocking(&std::fs::read(f).unwrap()) {
                    let v: Vec<String> = p
                        .embedding
                        .as_slice()
                        .iter()
                        .map(|x| x.to_string())
                        .collect();
                    lines
                        .lock()
                        .unwrap()
                        .push((k, format!("{i} {}", v.join(" "))));
                }
            });
        }
    });
    let mut lines = lines.into_inner().unwrap();
    lines.sort();
    let text: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    std::fs::write(out, text.join("\n") + "\n").unwrap();
}
