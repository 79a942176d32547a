//! Synthetic door-camera frames for the benches and `examples/stream_frames.rs`.
#![allow(dead_code)]

use std::path::Path;

use image::{ImageEncoder, RgbImage};

/// A 640×480 frame as JPEG (quality 85).
pub fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("encoding a frame");
    out
}

/// Writes ten 640×480 JPEG frames `000.jpg` … `009.jpg` into `dir`: the face of `photo` scaled to
/// 320 px drifting a few pixels from frame to frame on a plain background (someone standing at the
/// door), or the background alone. Returns their bytes.
pub fn write_frames(photo: &Path, dir: &Path, with_face: bool) -> Vec<Vec<u8>> {
    let face = image::open(photo).expect("the photo").to_rgb8();
    let face = image::imageops::resize(&face, 320, 320, image::imageops::FilterType::Triangle);
    std::fs::create_dir_all(dir).expect("the frames folder");
    (0..10u32)
        .map(|i| {
            let mut frame = RgbImage::from_pixel(640, 480, image::Rgb([96, 104, 110]));
            if with_face {
                let dx = 160 + (i % 5) * 4;
                let dy = 80 + (i % 3) * 3;
                image::imageops::replace(&mut frame, &face, dx.into(), dy.into());
            }
            let bytes = jpeg(&frame);
            std::fs::write(dir.join(format!("{i:03}.jpg")), &bytes).expect("writing a frame");
            bytes
        })
        .collect()
}
