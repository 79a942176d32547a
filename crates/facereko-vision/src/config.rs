//! The `[vision]` config section.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::frames::{LivenessMode, WatchSettings};
use crate::{Error, Result};

/// The dlib engine's default similarity threshold (0–100 %), calibrated with `facereko eval` on `lfw-dev`
/// (2 486 photos, 3 051 479 impostor pairs) as the lowest threshold whose false-accept rate there is
/// ≤ 0.1 % (`threshold_at_far_1e-3`; true-accept rate there 95.3 %). dlib's descriptors all point into
/// one cone, so different people still score 75–90 %: the useful range is the top few percent.
pub const DEFAULT_THRESHOLD: f32 = 92.78;

/// The ONNX engine's (MobileFaceNet's) default threshold, calibrated the same way on `lfw-dev`: the
/// lowest similarity with at most 0.1 % false accepts there (true-accept rate 97.9 %; 94.7 % at FAR
/// 0.01 %, threshold 53.37). MobileFaceNet spreads different people widely (most impostor pairs score
/// under 30 %), so its scale differs from dlib's.
pub const ONNX_DEFAULT_THRESHOLD: f32 = 45.45;

/// Which engine decides at the door (`vision.engine`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Offline, on this machine ([`LocalEngineKind`] says which pipeline).
    #[default]
    Local,
    /// AWS Rekognition (builds with the `aws` feature; settings in `[aws]`).
    Rekognition,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Rekognition => "rekognition",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What decides when Rekognition cannot be reached in time (`vision.fallback`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Deny (the attempt says Rekognition was unreachable).
    #[default]
    None,
    /// The local engine decides (the attempt records which engine decided).
    Local,
}

impl Fallback {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Local => "local",
        }
    }
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which offline pipeline the local engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalEngineKind {
    /// BlazeFace detector and MobileFaceNet embedder on ONNX Runtime (192-d embeddings).
    Onnx,
    /// dlib's HOG detector, 5-point landmarks and ResNet encoder (128-d embeddings).
    Dlib,
}

impl LocalEngineKind {
    pub const ALL: [LocalEngineKind; 2] = [LocalEngineKind::Onnx, LocalEngineKind::Dlib];

    pub fn name(self) -> &'static str {
        match self {
            Self::Onnx => "onnx",
            Self::Dlib => "dlib",
        }
    }

    /// The calibrated default threshold of this engine.
    pub fn default_threshold(self) -> f32 {
        match self {
            Self::Onnx => ONNX_DEFAULT_THRESHOLD,
            Self::Dlib => DEFAULT_THRESHOLD,
        }
    }

    /// Length of this engine's embeddings.
    pub fn embedding_dim(self) -> usize {
        match self {
            Self::Onnx => crate::gallery::ONNX_EMBEDDING_DIM,
            Self::Dlib => crate::gallery::EMBEDDING_DIM,
        }
    }
}

impl std::fmt::Display for LocalEngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LocalEngineKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "onnx" => Ok(Self::Onnx),
            "dlib" => Ok(Self::Dlib),
            other => Err(Error::Config {
                key: "vision.local_engine".into(),
                reason: format!("= {other:?} is unknown; use \"onnx\" or \"dlib\""),
            }),
        }
    }
}

/// Settings of the face engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VisionConfig {
    /// Which engine decides: `local` (offline, on this machine) or `rekognition` (AWS Rekognition, in
    /// builds with the `aws` feature; settings in `[aws]`).
    pub engine: EngineKind,
    /// Which offline pipeline the local engine runs (deciding, as Rekognition's fallback, or behind the
    /// Rekognition-compatible endpoint): `onnx` (BlazeFace + MobileFaceNet) or `dlib`.
    pub local_engine: LocalEngineKind,
    /// With `engine = "rekognition"`: `local` lets the local engine decide when Rekognition cannot be
    /// reached in time (the attempt records which engine decided); `none` denies instead.
    pub fallback: Fallback,
    /// Where the model files live; `None` means `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// Similarity (0–100 %) at or above which a face matches; `None` means the local engine's calibrated
    /// default ([`LocalEngineKind::default_threshold`]); see [`VisionConfig::threshold`].
    pub threshold: Option<f32>,
    /// Smallest face accepted, as the width of its box in pixels of the photo.
    pub min_face_px: u32,
    /// dlib only (BlazeFace always looks at a 128- and a 256-pixel copy).
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
    /// nothing at the door. dlib only.
    pub enrol_jitters: u32,
    /// How many photos the engine may process at once (each holds its own copy of the network, ≈ 25 MB).
    pub workers: usize,
    /// Continuous capture (local engine, `card+face` and `face` modes): frames per second the door
    /// looks at while armed. 0 turns it off: the door then takes photos only after a tap, after
    /// `door.countdown_ms`, as the original did.
    pub fps: u32,
    /// How far back from a tap the door takes the frames it decides on.
    pub lookback_ms: u64,
    /// With no good face in the lookback window, how long after the tap the door keeps looking (the
    /// known-card beep plays meanwhile).
    pub face_timeout_ms: u64,
    /// `face` mode: consecutive frames with a good face before the door decides.
    pub trigger_frames: u32,
    /// `face` mode: a person decided once is decided again only after being out of view this long.
    pub face_cooldown_ms: u64,
    /// With continuous capture: `off`, `passive` (3-D motion across the matched frames; weak) or
    /// `challenge` (the door asks for a head turn and checks it).
    pub liveness: LivenessMode,
    /// `liveness = "challenge"`: how long the person has to turn their head once asked.
    pub challenge_ms: u64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            engine: EngineKind::Local,
            local_engine: LocalEngineKind::Onnx,
            fallback: Fallback::None,
            models_dir: None,
            threshold: None,
            min_face_px: 64,
            detect_max_side: 480,
            max_image_side: 8192,
            mirror: true,
            enrol_jitters: 0,
            workers: 1,
            fps: WatchSettings::default().fps,
            lookback_ms: WatchSettings::default().lookback_ms,
            face_timeout_ms: WatchSettings::default().face_timeout_ms,
            trigger_frames: WatchSettings::default().trigger_frames,
            face_cooldown_ms: WatchSettings::default().cooldown_ms,
            liveness: LivenessMode::Off,
            challenge_ms: WatchSettings::default().challenge_ms,
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
        if self.fallback == Fallback::Local && self.engine != EngineKind::Rekognition {
            return bad(
                "fallback",
                "= \"local\" only applies to engine = \"rekognition\"".into(),
            );
        }
        if let Some(t) = self.threshold {
            if !(t.is_finite() && (0.0..=100.0).contains(&t)) {
                return bad(
                    "threshold",
                    format!("= {t} must be a similarity from 0 to 100"),
                );
            }
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
        if self.fps > 30 {
            return bad("fps", format!("= {} must be from 0 (off) to 30", self.fps));
        }
        if !(200..=10_000).contains(&self.lookback_ms) {
            return bad(
                "lookback_ms",
                format!("= {} must be from 200 to 10000", self.lookback_ms),
            );
        }
        if self.face_timeout_ms > 30_000 {
            return bad(
                "face_timeout_ms",
                format!("= {} must be at most 30000", self.face_timeout_ms),
            );
        }
        if !(1..=30).contains(&self.trigger_frames) {
            return bad(
                "trigger_frames",
                format!("= {} must be from 1 to 30", self.trigger_frames),
            );
        }
        if self.face_cooldown_ms > 3_600_000 {
            return bad(
                "face_cooldown_ms",
                format!(
                    "= {} must be at most 3600000 (one hour)",
                    self.face_cooldown_ms
                ),
            );
        }
        if !(1000..=15_000).contains(&self.challenge_ms) {
            return bad(
                "challenge_ms",
                format!("= {} must be from 1000 to 15000", self.challenge_ms),
            );
        }
        if self.liveness != LivenessMode::Off && (self.fps == 0 || self.engine != EngineKind::Local)
        {
            return bad(
                "liveness",
                "needs continuous capture: the local engine with vision.fps above 0".into(),
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

    /// How the door watches (continuous capture), from the `fps`, `lookback_ms`, … keys.
    pub fn watch(&self) -> WatchSettings {
        WatchSettings {
            fps: self.fps,
            lookback_ms: self.lookback_ms,
            face_timeout_ms: self.face_timeout_ms,
            trigger_frames: self.trigger_frames,
            cooldown_ms: self.face_cooldown_ms,
            liveness: self.liveness,
            challenge_ms: self.challenge_ms,
        }
    }

    /// The similarity threshold in force: the configured one, else the local engine's calibrated default.
    pub fn threshold(&self) -> f32 {
        self.threshold
            .unwrap_or_else(|| self.local_engine.default_threshold())
    }

    /// The id stored with each embedding: embeddings of another model (or with mirroring switched) are
    /// not comparable and are left out of the gallery.
    pub fn model_id(&self) -> String {
        let mirror = if self.mirror { "+mirror" } else { "" };
        match self.local_engine {
            LocalEngineKind::Dlib => format!("dlib-resnet-v1{mirror}"),
            LocalEngineKind::Onnx => format!("blazeface-mobilefacenet-v1{mirror}"),
        }
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
    fn watch_settings_come_from_their_keys_and_bad_ones_are_named() {
        let c: VisionConfig =
            toml::from_str("fps = 10\nlookback_ms = 800\nface_cooldown_ms = 0\ntrigger_frames = 2")
                .unwrap();
        c.validate().unwrap();
        let w = c.watch();
        assert_eq!(
            (w.fps, w.lookback_ms, w.cooldown_ms, w.trigger_frames),
            (10, 800, 0, 2)
        );
        assert_eq!(w.face_timeout_ms, 3000);
        for (toml, key) in [
            ("fps = 31", "vision.fps"),
            ("lookback_ms = 100", "vision.lookback_ms"),
            ("face_timeout_ms = 40000", "vision.face_timeout_ms"),
            ("trigger_frames = 0", "vision.trigger_frames"),
        ] {
            let c: VisionConfig = toml::from_str(toml).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = VisionConfig {
            threshold: Some(120.0),
            ..VisionConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("vision.threshold"));
        let c = VisionConfig {
            fallback: Fallback::Local,
            ..VisionConfig::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("vision.fallback"));
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
    fn each_local_engine_has_its_own_threshold_and_model_id() {
        let onnx = VisionConfig::default();
        let dlib = VisionConfig {
            local_engine: LocalEngineKind::Dlib,
            ..VisionConfig::default()
        };
        assert_eq!(onnx.threshold(), ONNX_DEFAULT_THRESHOLD);
        assert_eq!(dlib.threshold(), DEFAULT_THRESHOLD);
        assert_ne!(onnx.model_id(), dlib.model_id());
        assert_eq!(
            dlib.model_id(),
            "dlib-resnet-v1+mirror",
            "ids of stored faces must not change"
        );
        let set = VisionConfig {
            threshold: Some(50.0),
            ..dlib.clone()
        };
        assert_eq!(set.threshold(), 50.0);
        let toml_dlib: toml::Value = toml::from_str("local_engine = \"dlib\"").unwrap();
        let parsed: VisionConfig = toml_dlib.try_into().unwrap();
        assert_eq!(parsed.threshold(), DEFAULT_THRESHOLD);
        assert!(toml::from_str::<VisionConfig>("local_engine = \"tract\"").is_err());
    }

    #[test]
    fn engine_and_fallback_are_closed_sets() {
        let parsed: VisionConfig =
            toml::from_str("engine = \"rekognition\"\nfallback = \"local\"").unwrap();
        assert_eq!(parsed.engine, EngineKind::Rekognition);
        assert_eq!(parsed.fallback, Fallback::Local);
        parsed.validate().unwrap();
        for bad in [
            "engine = \"cloud\"",
            "fallback = \"maybe\"",
            "engine = \"Local\"",
        ] {
            let err = toml::from_str::<VisionConfig>(bad).unwrap_err().to_string();
            assert!(err.contains("unknown variant"), "{bad}: {err}");
        }
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
