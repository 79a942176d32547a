//! The `[vision]` config section.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Similarity (0–100 %) at or above which a face matches, calibrated with `facereko eval` on `lfw-dev`
/// (2 486 photos, 3 051 479 impostor pairs) as the lowest threshold whose false-accept rate there is
/// ≤ 0.1 % (`threshold_at_far_1e-3`; true-accept rate there 95.3 %). dlib's descriptors all point into
/// one cone, so different people still score 75–90 %: the useful range is the top few percent.
pub const DEFAULT_THRESHOLD: f32 = 92.78;

/// Settings of the face engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisionConfig {
    /// Which engine decides: `local` (offline, on this machine) or `rekognition` (AWS Rekognition, in
    /// builds with the `aws` feature; settings in `[aws]`).
    pub engine: String,
    /// With `engine = "rekognition"`: `local` lets the local engine decide when Rekognition cannot be
    /// reached in time (the attempt records which engine decided); `none` denies instead.
    pub fallback: String,
    /// Where the model files live; `None` means `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// Similarity (0–100 %) at or above which a face matches.
    pub threshold: f32,
    /// Smallest face accepted, as the width of its box in pixels of the photo.
    pub min_face_px: u32,
    /// Door frames larger than this (longer side, pixels) are scaled down before detection; bigger is
    /// slower but finds smaller (farther) faces: the detector needs ≈ 80 px at this scale, so 480 finds
    /// faces from ≈ 107 px wide in a 640×480 frame. Landmarks and embeddings still use the full photo.
    /// Enrolment photos are searched at 1280 or this, whichever is larger.
    pub detect_max_side: u32,
    /// Largest photo accepted at all (longer side, pixels); anything bigger is refused before decoding.
    pub max_image_side: u32,
    /// Also describe the mirrored face and average the two embeddings (more accurate, ≈ 1.6× the time).
    pub mirror: bool,
    /// Random jitters averaged into an *enrolled* face's embedding (0 = off); enrolment only, so it costs
    /// nothing at the door.
    pub enrol_jitters: u32,
    /// How many photos the engine may process at once (each holds its own copy of the network, ≈ 25 MB).
    pub workers: usize,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            engine: "local".into(),
            fallback: "none".into(),
            models_dir: None,
            threshold: DEFAULT_THRESHOLD,
            min_face_px: 64,
            detect_max_side: 480,
            max_image_side: 8192,
            mirror: true,
            enrol_jitters: 0,
            workers: 1,
        }
    }
}

impl VisionConfig {
    /// Checks every value once, naming the bad key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::Config {
                key: format!("vision.{key}"),
                reason,
            })
        };
        match self.engine.as_str() {
            "local" | "rekognition" => {}
            other => {
                return bad(
                    "engine",
                    format!("= {other:?} is unknown; use \"local\" or \"rekognition\""),
                )
            }
        }
        match self.fallback.as_str() {
            "none" => {}
            "local" if self.engine == "rekognition" => {}
            "local" => {
                return bad(
                    "fallback",
                    "= \"local\" only applies to engine = \"rekognition\"".into(),
                )
            }
            other => {
                return bad(
                    "fallback",
                    format!("= {other:?} is unknown; use \"none\" or \"local\""),
                )
            }
        }
        if !(self.threshold.is_finite() && (0.0..=100.0).contains(&self.threshold)) {
            return bad(
                "threshold",
                format!("= {} must be a similarity from 0 to 100", self.threshold),
            );
        }
        if !(20..=2000).contains(&self.min_face_px) {
            return bad(
                "min_face_px",
                format!("= {} must be from 20 to 2000 pixels", self.min_face_px),
            );
        }
        if !(160..=4096).contains(&self.detect_max_side) {
            return bad(
                "detect_max_side",
                format!("= {} must be from 160 to 4096 pixels", self.detect_max_side),
            );
        }
        if !(256..=16384).contains(&self.max_image_side) {
            return bad(
                "max_image_side",
                format!("= {} must be from 256 to 16384 pixels", self.max_image_side),
            );
        }
        if self.enrol_jitters > 100 {
            return bad(
                "enrol_jitters",
                format!("= {} must be at most 100", self.enrol_jitters),
            );
        }
        if !(1..=16).contains(&self.workers) {
            return bad(
                "workers",
                format!("= {} must be from 1 to 16", self.workers),
            );
        }
        Ok(())
    }

    /// The id stored with each embedding: embeddings of another model (or with mirroring switched) are
    /// not comparable and are left out of the gallery.
    pub fn model_id(&self) -> String {
        format!("dlib-resnet-v1{}", if self.mirror { "+mirror" } else { "" })
    }

    /// The models directory: the configured one, else `<data_dir>/models`.
    pub fn models_dir(&self, data_dir: &Path) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("models"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_uses_the_data_dir() {
        let c = VisionConfig::default();
        c.validate().unwrap();
        assert_eq!(
            c.models_dir(Path::new("/var/lib/facereko")),
            PathBuf::from("/var/lib/facereko/models")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = VisionConfig {
            threshold: 120.0,
            ..VisionConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("vision.threshold"));
        let c = VisionConfig {
            engine: "cloud".into(),
            ..VisionConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("vision.engine"));
        let c = VisionConfig {
            workers: 0,
            ..VisionConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("vision.workers"));
    }

    #[test]
    fn example_fragment_parses_to_the_defaults() {
        let text = include_str!("../example.toml");
        #[derive(Deserialize)]
        struct Root {
            vision: VisionConfig,
        }
        let root: Root = toml::from_str(text).unwrap();
        assert_eq!(root.vision, VisionConfig::default());
    }
}
