//! Speed of the local engines: `cargo bench -p facereko-vision --bench vision`.
//!
//! - `frame/*`: per 640×480 camera frame, for each local engine (`onnx`, `dlib`, default settings,
//!   mirror on): `decode_detect_align_embed` from JPEG bytes (what the door does per frame) and
//!   `detect_align_embed` from decoded pixels. The frames are the JPEG files in `$BENCH_FRAMES` when set
//!   (`scripts/bench-face-recognition.sh` points it at the frames it also gives Python's
//!   `face_recognition`), else one frame made of an LFW face on a plain background.
//! - `match/*`: 1:1 (one person's 3 faces) and 1:N over 1 000 and 100 000 enrolled faces.
//!
//! The frame benches need `FACEREKO_MODELS_DIR` and `FACEREKO_FACES_DIR` (or `BENCH_FRAMES`); without
//! them only the matching benches run.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use facereko_domain::PersonId;
use facereko_vision::{
    Embedding, Gallery, LocalEngine, LocalEngineKind, VisionConfig, EMBEDDING_DIM,
};
use image::{ImageEncoder, RgbImage};

/// The bench frames as JPEG bytes.
fn jpeg_frames() -> Option<Vec<Vec<u8>>> {
    if let Some(dir) = std::env::var_os("BENCH_FRAMES") {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        return Some(files.iter().filter_map(|f| std::fs::read(f).ok()).collect());
    }
    let faces = PathBuf::from(std::env::var_os("FACEREKO_FACES_DIR")?);
    let bytes = std::fs::read(faces.join("lfw-dev/Al_Gore/01.jpg")).ok()?;
    let face = image::load_from_memory(&bytes).ok()?.to_rgb8();
    let mut frame = RgbImage::from_pixel(640, 480, image::Rgb([96, 104, 110]));
    image::imageops::replace(&mut frame, &face, 195, 115);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .write_image(frame.as_raw(), 640, 480, image::ExtendedColorType::Rgb8)
        .ok()?;
    Some(vec![jpeg])
}

fn frames(c: &mut Criterion) {
    let (Some(models), Some(jpegs)) = (std::env::var_os("FACEREKO_MODELS_DIR"), jpeg_frames())
    else {
        eprintln!("FACEREKO_MODELS_DIR / FACEREKO_FACES_DIR not set: skipping the frame benches");
        return;
    };
    let decoded: Vec<RgbImage> = jpegs
        .iter()
        .map(|j| image::load_from_memory(j).unwrap().to_rgb8())
        .collect();
    let mut g = c.benchmark_group("frame");
    g.sample_size(20);
    for kind in LocalEngineKind::ALL {
        let config = VisionConfig {
            local_engine: kind,
            ..VisionConfig::default()
        };
        let engine = LocalEngine::load(&config, models.as_ref()).expect("loading the models");
        let found = decoded
            .iter()
            .filter(|f| engine.describe_image(f).unwrap().is_some())
            .count();
        eprintln!(
            "{kind}: a face in {found} of {} bench frames",
            decoded.len()
        );
        let mut i = 0;
        g.bench_function(format!("decode_detect_align_embed_640x480/{kind}"), |b| {
            b.iter(|| {
                i = (i + 1) % jpegs.len();
                engine.describe_blocking(black_box(&jpegs[i])).unwrap()
            })
        });
        g.bench_function(format!("detect_align_embed_640x480/{kind}"), |b| {
            b.iter(|| {
                i = (i + 1) % decoded.len();
                engine.describe_image(black_box(&decoded[i])).unwrap()
            })
        });
    }
    g.finish();
}

fn random_rows(n: usize, people: usize) -> Vec<(PersonId, Vec<f32>)> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    (0..n)
        .map(|i| {
            let v = (0..EMBEDDING_DIM).map(|_| next()).collect();
            (PersonId((i % people) as i64), v)
        })
        .collect()
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("match");
    for n in [1_000usize, 100_000] {
        let rows = random_rows(n, n / 3);
        let probe = Embedding::new(rows[n / 2].1.clone()).unwrap();
        let gallery = Gallery::new(rows).unwrap();
        g.bench_function(format!("one_to_one_{n}"), |b| {
            b.iter(|| {
                gallery
                    .best_of(black_box(PersonId(7)), black_box(&probe))
                    .unwrap()
            })
        });
        g.bench_function(format!("one_to_n_{n}"), |b| {
            b.iter(|| gallery.best_person(black_box(&probe)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, matching, frames);
criterion_main!(benches);
