//! A seeded generator of presentation attacks: one photo of a person, printed or shown on a screen,
//! moved in front of the camera.
//!
//! Each frame is the photo under its own random planar transform — rotation up to ±8°, scale 0.9–1.08,
//! translation up to ±5 % of the frame, a perspective tilt up to about ±15° of foreshortening — composed
//! as one homography, then the medium's effects: a *screen* has a dark bezel, a moiré pattern (the
//! display's pixel grid beating with the sensor's) and a glare blob; a *print* has a white margin,
//! flattened contrast (gamma) and a glare blob. Every frame is blurred a little (0–1 box-blur passes)
//! and gets sensor noise. The random numbers come from SplitMix64 seeded with the seed, so a sequence is
//! the same bytes on every machine and every version of every dependency.
//!
//! What it is and is not: the geometry is exact (every point of the photo moves by the frame's
//! homography, as a rigid flat object does under a pinhole camera); the effects are plausible
//! imitations, not measurements of real printers, screens or cameras. A warped (curved) print, a
//! video replay of a moving head and a 3-D mask are not generated.

use image::{Rgb, RgbImage};

use crate::planarity::Homography;

/// SplitMix64: tiny, fast, and fixed forever (unlike a library generator whose algorithm may change).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// What the photo is shown on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Medium {
    Print,
    Screen,
}

/// The frames of one attack and the homography (photo pixels → frame pixels) of each.
#[derive(Debug)]
pub struct AttackSequence {
    pub medium: Medium,
    pub frames: Vec<RgbImage>,
    pub transforms: Vec<Homography>,
}

/// Largest rotation, degrees.
pub const MAX_ROTATION_DEG: f64 = 8.0;
/// Scale range.
pub const SCALE: (f64, f64) = (0.9, 1.08);
/// Largest translation, fraction of the frame side.
pub const MAX_SHIFT: f64 = 0.05;
/// Largest perspective coefficient times the photo's side: ±0.15 foreshortens one edge by about 15 %.
pub const MAX_TILT: f64 = 0.15;

/// `frames` frames of `photo` as a print or screen attack (the medium chosen by the seed). Frames are
/// as large as the photo with its border, so a face fills about as much of a frame as of the photo.
pub fn generate(photo: &RgbImage, seed: u64, frames: usize) -> AttackSequence {
    let mut rng = SplitMix64::new(seed);
    let medium = if rng.uniform(0.0, 1.0) < 0.5 {
        Medium::Print
    } else {
        Medium::Screen
    };
    let (pw, ph) = (photo.width() as f64, photo.height() as f64);
    let border = (pw.min(ph) * 0.06).round().max(2.0);
    let (fw, fh) = ((pw + 2.0 * border) as u32, (ph + 2.0 * border) as u32);
    // The look of this photo on this medium, the same in every frame.
    let gamma = match medium {
        Medium::Print => rng.uniform(0.75, 1.0),
        Medium::Screen => rng.uniform(0.85, 1.25),
    };
    let contrast = match medium {
        Medium::Print => rng.uniform(0.75, 0.95),
        Medium::Screen => rng.uniform(0.9, 1.0),
    };
    let moire = match medium {
        Medium::Print => None,
        Medium::Screen => Some((
            rng.uniform(0.25, 0.45),                // cycles per photo pixel
            rng.uniform(0.0, std::f64::consts::PI), // direction
            rng.uniform(4.0, 12.0),                 // amplitude, grey levels
        )),
    };
    let edge = match medium {
        Medium::Print => rng.uniform(215.0, 245.0),
        Medium::Screen => rng.uniform(5.0, 30.0),
    };
    let background = rng.uniform(60.0, 160.0);
    let mut out = AttackSequence {
        medium,
        frames: Vec::with_capacity(frames),
        transforms: Vec::with_capacity(frames),
    };
    for _ in 0..frames {
        let h = random_pose(&mut rng, pw, ph, border, fw as f64, fh as f64);
        let glare = (
            rng.uniform(0.0, pw),
            rng.uniform(0.0, ph),
            rng.uniform(0.1, 0.3) * pw.min(ph),
            rng.uniform(20.0, 70.0),
        );
        let blur_passes = (rng.uniform(0.0, 2.0)) as u32;
        let mut frame = RgbImage::new(fw, fh);
        let inv = h.inverse().unwrap_or(Homography::IDENTITY);
        for (x, y, px) in frame.enumerate_pixels_mut() {
            let q = inv.apply([x as f64 + 0.5, y as f64 + 0.5]);
            let v = match q {
                Some([u, v])
                    if u >= -border && v >= -border && u < pw + border && v < ph + border =>
                {
                    if u >= 0.0 && v >= 0.0 && u < pw && v < ph {
                        let mut c = sample(photo, u - 0.5, v - 0.5);
                        for ch in c.iter_mut() {
                            let n = (*ch / 255.0).powf(gamma);
                            *ch = 128.0 + (n * 255.0 - 128.0) * contrast;
                            if let Some((f, dir, amp)) = moire {
                                let t = (u * dir.cos() + v * dir.sin()) * f;
                                *ch += amp * (2.0 * std::f64::consts::PI * t).sin();
                            }
                        }
                        let (gx, gy, gr, ga) = glare;
                        let d2 = ((u - gx).powi(2) + (v - gy).powi(2)) / (gr * gr);
                        let g = ga * (-d2).exp();
                        c.map(|ch| ch + g)
                    } else {
                        [edge; 3]
                    }
                }
                _ => [background; 3],
            };
            *px = Rgb(v.map(|c| c.clamp(0.0, 255.0) as u8));
        }
        for _ in 0..blur_passes {
            frame = box_blur(&frame);
        }
        for px in frame.pixels_mut() {
            for ch in px.0.iter_mut() {
                let n = rng.uniform(-3.0, 3.0);
                *ch = (*ch as f64 + n).clamp(0.0, 255.0) as u8;
            }
        }
        out.frames.push(frame);
        out.transforms.push(h);
    }
    out
}

/// Photo pixels → frame pixels: tilt about the photo's centre, rotate and scale, move.
fn random_pose(
    rng: &mut SplitMix64,
    pw: f64,
    ph: f64,
    border: f64,
    fw: f64,
    fh: f64,
) -> Homography {
    let (cx, cy) = (pw / 2.0, ph / 2.0);
    let side = pw.max(ph);
    let a = rng
        .uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
        .to_radians();
    let s = rng.uniform(SCALE.0, SCALE.1);
    let tx = rng.uniform(-MAX_SHIFT, MAX_SHIFT) * fw;
    let ty = rng.uniform(-MAX_SHIFT, MAX_SHIFT) * fh;
    let px = rng.uniform(-MAX_TILT, MAX_TILT) / side;
    let py = rng.uniform(-MAX_TILT, MAX_TILT) / side;
    let centre = Homography([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]]);
    let tilt = Homography([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [px, py, 1.0]]);
    let rs = Homography([
        [s * a.cos(), -s * a.sin(), 0.0],
        [s * a.sin(), s * a.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ]);
    let place = Homography([
        [1.0, 0.0, cx + border + tx],
        [0.0, 1.0, cy + border + ty],
        [0.0, 0.0, 1.0],
    ]);
    let _ = (fw, fh);
    place.after(&rs).after(&tilt).after(&centre)
}

/// Bilinear sample (pixel centres at integers), edges clamped.
pub(crate) fn sample(img: &RgbImage, x: f64, y: f64) -> [f64; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: i64, yi: i64| {
        let p = img.get_pixel(xi.clamp(0, w - 1) as u32, yi.clamp(0, h - 1) as u32);
        p.0.map(f64::from)
    };
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (a, b, c, d) = (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    );
    std::array::from_fn(|k| {
        (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy
    })
}

/// One 3×3 box-blur pass, edges clamped.
fn box_blur(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let mut sum = [0u32; 3];
        for dy in -1..=1 {
            for dx in -1..=1 {
                let p = img.get_pixel(
                    (x as i64 + dx).clamp(0, w - 1) as u32,
                    (y as i64 + dy).clamp(0, h - 1) as u32,
                );
                for (s, &c) in sum.iter_mut().zip(&p.0) {
                    *s += u32::from(c);
                }
            }
        }
        Rgb(sum.map(|s| ((s + 4) / 9) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo() -> RgbImage {
        RgbImage::from_fn(92, 112, |x, y| Rgb([(x * 2) as u8, (y * 2) as u8, 100]))
    }

    #[test]
    fn a_seed_gives_the_same_frames_every_time() {
        let (a, b) = (generate(&photo(), 7, 3), generate(&photo(), 7, 3));
        assert_eq!(a.medium, b.medium);
        assert_eq!(a.transforms, b.transforms);
        for (x, y) in a.frames.iter().zip(&b.frames) {
            assert_eq!(x.as_raw(), y.as_raw());
        }
        let c = generate(&photo(), 8, 3);
        assert_ne!(a.frames[0].as_raw(), c.frames[0].as_raw());
    }

    #[test]
    fn frames_are_the_photo_with_its_border() {
        let seq = generate(&photo(), 1, 4);
        assert_eq!(seq.frames.len(), 4);
        assert_eq!(seq.transforms.len(), 4);
        for f in &seq.frames {
            // border = round(92 * 0.06) = 6 on each side
            assert_eq!(f.dimensions(), (104, 124));
        }
        // Successive frames differ: the photo moved.
        assert_ne!(seq.frames[0].as_raw(), seq.frames[1].as_raw());
    }

    #[test]
    fn a_mark_on_the_photo_lands_where_the_homography_puts_it() {
        let mut p = RgbImage::from_pixel(92, 112, Rgb([40, 40, 40]));
        for y in 50..56 {
            for x in 30..36 {
                p.put_pixel(x, y, Rgb([255, 255, 255]));
            }
        }
        for seed in 0..8 {
            let seq = generate(&p, seed, 2);
            for (f, h) in seq.frames.iter().zip(&seq.transforms) {
                let [x, y] = h.apply([33.0, 53.0]).unwrap();
                let px = f.get_pixel(x as u32, y as u32);
                assert!(px.0[0] > 150, "seed {seed}: {:?} at {x},{y}", px.0);
            }
        }
    }

    #[test]
    fn both_media_are_generated() {
        let media: Vec<Medium> = (0..20).map(|s| generate(&photo(), s, 1).medium).collect();
        assert!(media.contains(&Medium::Print) && media.contains(&Medium::Screen));
    }
}
