//! What the liveness check adds to a decision: `cargo bench -p facereko-liveness --bench liveness`.
//!
//! - `liveness/crop`: one face cut out of a 640×480 frame (eyes 50 pixels apart) and its corners found.
//! - `liveness/passive_5_frames`: what `vision.liveness = "passive"` adds to an attempt — five JPEG
//!   frames decoded, cut out and scored (10 frame pairs tracked and fitted).
//! - `liveness/challenge_3_frames`: the dense check on a turn's ends and middle (3 pairs); the
//!   challenge's waiting for the turn is the person's time, not the door's.
//!
//! The frames are a 640×480 camera frame with an LFW face on a plain background (`FACEREKO_FACES_DIR`),
//! else a synthetic texture of the same size, moved by the seeded print/screen generator: a moved photo
//! is the case that tracks every point, so the slowest.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use facereko_liveness::attack;
use facereko_liveness::motion::{sequence_score, turn_score, FaceCrop};
use facereko_liveness::planarity::Pt;
use image::{ImageEncoder, Rgb, RgbImage};

/// A 640×480 frame with a face in it and where its eyes are.
fn frame() -> (RgbImage, [Pt; 2]) {
    let mut frame = RgbImage::from_pixel(640, 480, Rgb([96, 104, 110]));
    let face = std::env::var_os("FACEREKO_FACES_DIR")
        .map(|d| PathBuf::from(d).join("lfw-dev/Al_Gore/01.jpg"))
        .and_then(|p| image::open(p).ok())
        .map(|i| i.to_rgb8());
    match face {
        // The deep-funnelled LFW faces have their eyes near (100, 115) and (150, 115).
        Some(face) => image::imageops::replace(&mut frame, &face, 195, 115),
        None => {
            for (x, y, p) in frame.enumerate_pixels_mut() {
                let (u, v) = (x as f32, y as f32);
                let g = 128.0
                    + 50.0 * (u * 0.21).sin() * (v * 0.17).cos()
                    + 30.0 * ((u + 2.0 * v) * 0.07).sin();
                *p = Rgb([g as u8; 3]);
            }
        }
    }
    (frame, [[295.0, 230.0], [345.0, 230.0]])
}

/// `n` frames of the frame moved as a photo, JPEG-encoded, with their eyes.
fn moved(n: usize) -> Vec<(Vec<u8>, [Pt; 2])> {
    let (still, eyes) = frame();
    let seq = attack::generate(&still, 7, n);
    seq.frames
        .iter()
        .zip(&seq.transforms)
        .map(|(f, h)| {
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
                .write_image(
                    f.as_raw(),
                    f.width(),
                    f.height(),
                    image::ExtendedColorType::Rgb8,
                )
                .expect("encoding a JPEG in memory");
            let eyes = eyes.map(|e| h.apply(e).expect("a finite point"));
            (jpeg, eyes)
        })
        .collect()
}

/// Decodes, cuts out and scores frames as the door does, by `by` (the passive or the turn score).
fn score(
    frames: &[(Vec<u8>, [Pt; 2])],
    by: fn(&[FaceCrop]) -> facereko_liveness::Result<f64>,
) -> f64 {
    let crops: Vec<FaceCrop> = frames
        .iter()
        .map(|(jpeg, eyes)| {
            let img = image::load_from_memory(jpeg).expect("a JPEG").to_rgb8();
            FaceCrop::new(&img, *eyes).expect("a face")
        })
        .collect();
    by(&crops).unwrap_or(f64::NEG_INFINITY)
}

fn liveness(c: &mut Criterion) {
    let mut g = c.benchmark_group("liveness");
    g.sample_size(20);
    let (still, eyes) = frame();
    g.bench_function("crop", |b| {
        b.iter(|| FaceCrop::new(black_box(&still), eyes).expect("a face"))
    });
    let five = moved(5);
    g.bench_function("passive_5_frames", |b| {
        b.iter(|| score(black_box(&five), sequence_score))
    });
    let three = moved(3);
    g.bench_function("challenge_3_frames", |b| {
        b.iter(|| score(black_box(&three), turn_score))
    });
    g.finish();
}

criterion_group!(benches, liveness);
criterion_main!(benches);
