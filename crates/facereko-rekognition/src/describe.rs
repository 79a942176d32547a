//! What the endpoint needs from a face engine — every usable face of a photo with its box and
//! embedding — and how the local engine's scores are shown on Rekognition's scale.

use facereko_vision::{similarity_percent, Embedding, FaceBox, LocalEngine, PhotoFaces};

use crate::protocol::DEFAULT_MATCH_THRESHOLD;

/// Why a photo could not be described.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DescribeError {
    /// Not a JPEG/PNG we can decode, or too large.
    #[error("{0}")]
    BadImage(String),
    #[error("{0}")]
    Engine(String),
}

/// A face engine as the endpoint uses it. Blocking: the endpoint calls it on tokio's blocking pool.
pub trait Describer: Send + Sync + std::fmt::Debug {
    /// The best usable faces of `bytes`, best first, at most `max_faces`. `thorough` is for faces that
    /// will be indexed (searched at enrolment size).
    fn describe(
        &self,
        bytes: &[u8],
        max_faces: usize,
        thorough: bool,
    ) -> Result<PhotoFaces, DescribeError>;

    /// The model's name: faces indexed with another model cannot be compared.
    fn model(&self) -> String;

    /// The engine's own calibrated similarity threshold (0–100 on its own scale).
    fn threshold(&self) -> f32;

    /// `a` against `b` on Rekognition's scale (see [`rekognition_similarity`]).
    fn similarity(&self, a: &Embedding, b: &Embedding) -> f32 {
        rekognition_similarity(similarity_percent(a.cosine(b)), self.threshold())
    }
}

impl Describer for LocalEngine {
    fn describe(
        &self,
        bytes: &[u8],
        max_faces: usize,
        thorough: bool,
    ) -> Result<PhotoFaces, DescribeError> {
        self.describe_all_blocking(bytes, max_faces, thorough)
            .map_err(|e| match e {
                facereko_vision::Error::Image(m) => DescribeError::BadImage(m),
                other => DescribeError::Engine(other.to_string()),
            })
    }

    fn model(&self) -> String {
        self.config().model_id()
    }

    fn threshold(&self) -> f32 {
        self.config().threshold()
    }
}

/// How far below the engine's threshold the scale reaches 0.
const SPAN_BELOW: f32 = 40.0;

/// The local engine's similarity `s` (cosine as 0–100 %) on Rekognition's scale: a monotone,
/// piecewise-linear map that puts the engine's calibrated `threshold` on Rekognition's default
/// `FaceMatchThreshold` (80), keeps 100 at 100 and reaches 0 at `threshold − 40`. Without it, a script
/// asking Rekognition's usual 80–85 % would accept strangers: dlib's descriptors of different people
/// still score 75–90 %. Rounded to 0.001 as Rekognition does.
pub fn rekognition_similarity(s: f32, threshold: f32) -> f32 {
    let t = threshold.clamp(1.0, 99.0);
    let d = DEFAULT_MATCH_THRESHOLD;
    let mapped = if s >= t {
        d + (s - t) / (100.0 - t) * (100.0 - d)
    } else {
        d * ((s - (t - SPAN_BELOW)) / SPAN_BELOW)
    };
    (mapped.clamp(0.0, 100.0) * 1000.0).round() / 1000.0
}

pub mod sim {
    //! A model-free describer for tests: a "face" is a solid block of one colour on a white background.
    //! The red channel is the identity; the green channel moves the embedding away from that identity
    //! by `green / 100` of a unit step, so tests can make near and far look-alikes.

    use super::*;

    /// See the module note.
    #[derive(Clone, Debug)]
    pub struct ColourDescriber {
        pub threshold: f32,
    }

    impl Default for ColourDescriber {
        fn default() -> Self {
            Self {
                threshold: facereko_vision::config::DEFAULT_THRESHOLD,
            }
        }
    }

    fn unit(seed: u64) -> Vec<f32> {
        // splitmix64: a fixed pseudo-random vector per seed.
        let mut x = seed;
        (0..facereko_vision::EMBEDDING_DIM)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z as f64 / u64::MAX as f64 * 2.0 - 1.0) as f32
            })
            .collect()
    }

    /// The embedding of a face of colour `rgb`.
    pub fn embedding_of(rgb: [u8; 3]) -> Embedding {
        let base = unit(u64::from(rgb[0]) + 1);
        let norm = base.iter().map(|v| v * v).sum::<f32>().sqrt();
        let away = unit(0x1_0000 + u64::from(rgb[1]) * 256 + u64::from(rgb[2]));
        let anorm = away.iter().map(|v| v * v).sum::<f32>().sqrt();
        let k = f32::from(rgb[1]) / 100.0;
        Embedding::new(
            base.iter()
                .zip(&away)
                .map(|(b, a)| b / norm + k * a / anorm)
                .collect(),
        )
        .expect("a finite, non-zero vector")
    }

    impl Describer for ColourDescriber {
        fn describe(
            &self,
            bytes: &[u8],
            max_faces: usize,
            _thorough: bool,
        ) -> Result<PhotoFaces, DescribeError> {
            let img = facereko_vision::decode::decode_rgb(bytes, 8192)
                .map_err(|e| DescribeError::BadImage(e.to_string()))?;
            let mut boxes: std::collections::BTreeMap<[u8; 3], (u32, u32, u32, u32, u32)> =
                Default::default();
            for (x, y, p) in img.enumerate_pixels() {
                if p.0 == [255, 255, 255] {
                    continue;
                }
                let b = boxes.entry(p.0).or_insert((x, y, x, y, 0));
                b.0 = b.0.min(x);
                b.1 = b.1.min(y);
                b.2 = b.2.max(x);
                b.3 = b.3.max(y);
                b.4 += 1;
            }
            let mut faces: Vec<FaceBox> = boxes
                .into_iter()
                .filter(|(_, b)| b.4 >= 16)
                .map(|(rgb, (l, t, r, btm, _))| FaceBox {
                    left: l,
                    top: t,
                    width: r - l + 1,
                    height: btm - t + 1,
                    embedding: embedding_of(rgb),
                })
                .collect();
            faces.sort_by_key(|f| std::cmp::Reverse(f.width * f.height));
            let usable = faces.len();
            faces.truncate(max_faces);
            Ok(PhotoFaces {
                width: img.width(),
                height: img.height(),
                detected: usable,
                usable,
                faces,
            })
        }

        fn model(&self) -> String {
            "colour-sim-v1".into()
        }

        fn threshold(&self) -> f32 {
            self.threshold
        }
    }

    /// A PNG of `size` with each `(rgb, left, top, width, height)` block painted on white.
    pub fn png(size: (u32, u32), blocks: &[([u8; 3], u32, u32, u32, u32)]) -> Vec<u8> {
        let mut img = image::RgbImage::from_pixel(size.0, size.1, image::Rgb([255, 255, 255]));
        for &(rgb, l, t, w, h) in blocks {
            for y in t..(t + h).min(size.1) {
                for x in l..(l + w).min(size.0) {
                    img.put_pixel(x, y, image::Rgb(rgb));
                }
            }
        }
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("encoding a PNG in memory");
        out.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::sim::*;
    use super::*;

    #[test]
    fn the_engine_threshold_lands_on_rekognitions_default() {
        let t = 92.78;
        assert_eq!(rekognition_similarity(t, t), 80.0);
        assert_eq!(rekognition_similarity(100.0, t), 100.0);
        assert_eq!(rekognition_similarity(t - 40.0, t), 0.0);
        assert_eq!(rekognition_similarity(10.0, t), 0.0);
        // Typical strangers for dlib (75–90 %) stay below the original's 85.
        assert!(rekognition_similarity(90.0, t) < 80.0);
        // Monotone.
        let mut last = -1.0;
        for i in 0..=1000 {
            let s = rekognition_similarity(i as f32 / 10.0, t);
            assert!(s >= last);
            last = s;
        }
    }

    #[test]
    fn colour_faces_are_found_with_their_boxes_largest_first() {
        let d = ColourDescriber::default();
        let png = png(
            (100, 50),
            &[([10, 0, 0], 5, 5, 10, 10), ([20, 0, 0], 50, 10, 30, 30)],
        );
        let faces = d.describe(&png, 10, false).unwrap();
        assert_eq!(faces.faces.len(), 2);
        let f = &faces.faces[0];
        assert_eq!((f.left, f.top, f.width, f.height), (50, 10, 30, 30));
        assert!(d.similarity(&f.embedding, &embedding_of([20, 0, 0])) > 99.9);
        assert!(d.similarity(&f.embedding, &embedding_of([10, 0, 0])) < 10.0);
        // A look-alike (green 20) is close, a far one (green 90) below the default threshold.
        assert!(d.similarity(&f.embedding, &embedding_of([20, 20, 0])) > 80.0);
        assert!(d.similarity(&f.embedding, &embedding_of([20, 90, 0])) < 80.0);
        assert!(matches!(
            d.describe(b"not an image", 1, false),
            Err(DescribeError::BadImage(_))
        ));
    }
}
