//! Tap → unlock with real models and a face already in view: the door controller with the local ONNX
//! engine (default settings), an SQLite store in a temporary folder (attempts and photos written and
//! synced as in the daemon), a simulated reader and outputs, and the simulated camera playing a
//! 640×480 stream at 5 frames/s made of an LFW photo of the card owner moving slightly on a plain
//! background. The owner is enrolled from another photo of theirs. Each tap comes at a random moment
//! of the frame cycle; the time measured is from the tap reaching the reader to the relay line turning
//! on (`SimOutputs` records each change with its instant).
//!
//! `cargo bench -p facereko-door --bench tap_to_unlock` with `FACEREKO_MODELS_DIR` (installed models)
//! and `FACEREKO_FACES_DIR` (the development photos); `FACEREKO_BENCH_TAPS` sets the number of taps
//! (default 120). It also runs the same taps with continuous capture off (`vision.fps = 0`: the original
//! behaviour, a photo after the 500 ms known-card beep) for comparison, and prints the per-frame cost
//! of watching: an empty scene (decode + motion gate) and a face in view (decode + detect + embed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use facereko_domain::{CardUid, Mode, Outcome};
use facereko_door::{DoorConfig, DoorHandle, Parts};
use facereko_hardware::sim::{self, SimCamera, SimOutputs};
use facereko_hardware::{CardTap, Output};
use facereko_store::Store;
use facereko_vision::{FaceEngine, FrameJudge, Gallery, LocalEngine, MotionGate, VisionConfig};
use tokio::time::Instant;

#[path = "support/frames.rs"]
mod frames;
use frames::write_frames;

const OWNER: &str = "04:A2:2B:19";

fn taps() -> usize {
    std::env::var("FACEREKO_BENCH_TAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
}

/// A person of the development set with at least two photos: (enrolment photo, probe photo).
fn person_photos(faces: &Path) -> Option<(PathBuf, PathBuf)> {
    let dir = faces.join("lfw-dev/Adam_Sandler");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    photos.sort();
    (photos.len() >= 2).then(|| (photos[0].clone(), photos[1].clone()))
}

struct Measured {
    times_ms: Vec<f64>,
    outcomes: Vec<Outcome>,
}

async fn run_taps(
    engine: &LocalEngine,
    frames_dir: &Path,
    fps: u32,
    n: usize,
    owner_embedding: &facereko_vision::Embedding,
) -> Measured {
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::default_url(data.path()), data.path())
        .await
        .unwrap();
    let owner = store.add_person("Adam Sandler").await.unwrap();
    let uid: CardUid = OWNER.parse().unwrap();
    store.add_card(owner, &uid, None).await.unwrap();
    engine.set_gallery(Gallery::new(vec![(owner, owner_embedding.as_slice().to_vec())]).unwrap());

    let camera = SimCamera::new(SimCamera::stream_source(frames_dir, 5, true).unwrap());
    let outputs = SimOutputs::new();
    let (reader, tapper) = sim::card_reader();
    let vision = VisionConfig {
        fps,
        ..VisionConfig::default()
    };
    let config = DoorConfig {
        mode: Mode::CardFace,
        debounce_ms: 0,
        unlock_seconds: 0.3,
        grant_beep_ms: 100,
        watch: vision.watch(),
        ..DoorConfig::default()
    };
    let parts = Parts {
        store: Arc::new(store.clone()),
        engine: Some(Arc::new(engine.clone()) as Arc<dyn FaceEngine>),
        camera: Arc::new(camera),
        outputs: Arc::new(outputs.clone()),
    };
    let (door, _task) = facereko_door::start("bench", config, parts, Box::new(reader), None)
        .await
        .unwrap();
    // Let the watcher fill its lookback window.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut times_ms = Vec::new();
    let mut outcomes = Vec::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..n {
        // A random moment of the 200 ms frame cycle.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(300 + seed % 400)).await;
        outputs.clear();
        let before = last_attempt_id(&door);
        let tapped = Instant::now();
        tapper.tap(CardTap::new(uid.clone())).unwrap();
        let decided = wait_for_attempt(&door, before).await;
        outcomes.push(decided);
        if let Some(on) = outputs
            .changes()
            .iter()
            .find(|c| c.output == Output::Relay && c.active)
        {
            times_ms.push((on.at - tapped).as_secs_f64() * 1000.0);
        }
        // Wait for the relay to lock again before the next tap.
        while outputs.level(Output::Relay) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    door.shutdown().await;
    store.close().await;
    Measured { times_ms, outcomes }
}

fn last_attempt_id(door: &DoorHandle) -> Option<i64> {
    door.status().last_attempt.map(|a| a.id)
}

async fn wait_for_attempt(door: &DoorHandle, before: Option<i64>) -> Outcome {
    let mut status = door.watch_status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(a) = status.borrow_and_update().last_attempt.clone() {
            if Some(a.id) != before {
                return a.outcome;
            }
        }
        if tokio::time::timeout_at(deadline, status.changed())
            .await
            .is_err()
        {
            panic!("no attempt was stored within 10 s of the tap");
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(label: &str, m: &Measured) {
    let mut t = m.times_ms.clone();
    t.sort_by(f64::total_cmp);
    let granted = m.outcomes.iter().filter(|o| o.is_granted()).count();
    println!(
        "{label}: {} taps, {granted} granted; tap → relay on: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms, mean {:.1} ms",
        m.outcomes.len(),
        percentile(&t, 0.5),
        percentile(&t, 0.95),
        t.last().copied().unwrap_or(f64::NAN),
        t.iter().sum::<f64>() / t.len().max(1) as f64,
    );
}

/// Per-frame cost of watching, median of `n` runs, in ms.
fn frame_cost(n: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = StdInstant::now();
            f();
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    percentile(&t, 0.5)
}

fn main() {
    let (Some(models), Some(faces)) = (
        std::env::var_os("FACEREKO_MODELS_DIR"),
        std::env::var_os("FACEREKO_FACES_DIR"),
    ) else {
        eprintln!(
            "tap_to_unlock: set FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR to run it; skipped"
        );
        return;
    };
    let (enrol, probe) = person_photos(Path::new(&faces)).expect("lfw-dev/Adam_Sandler photos");
    let engine = LocalEngine::load(&VisionConfig::default(), Path::new(&models)).unwrap();
    let owner = engine
        .embed_blocking(&std::fs::read(enrol).unwrap())
        .unwrap()
        .embedding;
    let with_face = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let face_frames = write_frames(&probe, with_face.path(), true);
    let empty_frames = write_frames(&probe, empty.path(), false);

    // Per-frame cost on this machine.
    let judge: &dyn FrameJudge = &engine;
    let photo = |b: &Vec<u8>| facereko_domain::Photo::from_bytes(b.clone()).unwrap();
    let (face_photo, empty_photo) = (photo(&face_frames[0]), photo(&empty_frames[0]));
    let mut gate = MotionGate::new();
    let empty_ms = frame_cost(50, || {
        let img = judge.decode(&empty_photo).unwrap();
        std::hint::black_box(gate.update(&img));
    });
    let face_ms = frame_cost(30, || {
        let img = judge.decode(&face_photo).unwrap();
        assert_eq!(
            judge.observe(&img, 1).unwrap().len(),
            1,
            "the bench frame has a face"
        );
    });
    let seen = judge
        .observe(&judge.decode(&face_photo).unwrap(), 1)
        .unwrap();
    println!(
        "the bench face: quality {:.2} (decides at once from {:.2})",
        seen[0].quality.overall,
        facereko_vision::frames::GOOD_QUALITY
    );
    println!(
        "per frame (640×480): empty scene {empty_ms:.1} ms (decode + motion gate), face in view {face_ms:.1} ms (decode + detect + embed)"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = taps();
    rt.block_on(async {
        let watched = run_taps(&engine, with_face.path(), 5, n, &owner).await;
        report("continuous capture (5 frames/s)", &watched);
        let old = run_taps(&engine, with_face.path(), 0, n.min(20), &owner).await;
        report("photo after the tap (vision.fps = 0)", &old);
    });
}
