//! Passive liveness: is the face in front of the camera a head, or a photo or screen held up to it?
//!
//! The one design decision a newcomer must know: the check is *geometric*. A flat photo or screen,
//! however it is moved, moves every point of the face by one homography; a real head turning does not,
//! because the ear tragions are 8–10 cm behind the eyes and the nose tip in front of them. So a sequence
//! of frames is scored by how badly one homography per frame pair explains the engine's face keypoints
//! ([`planarity`]), relative to the eye distance: low = planar = attack. The check needs only keypoints,
//! so this crate knows nothing of the face engine; the caller passes points.
//!
//! [`attack`] generates seeded print/screen attacks from a photo, [`metrics`] the ISO/IEC 30107-3
//! figures (APCER: attacks accepted, BPCER: bona fide refused). `facereko eval-liveness` runs both on a
//! folder of people with the real engine.
//!
//! Measured (`facereko eval-liveness --dir orl --engine onnx --frames 5 --seed 1`, BlazeFace's 6
//! keypoints): see [`DEFAULT_THRESHOLD`]. What that proves and what it does not is in the README's
//! "Liveness (passive)" section: the attacks are synthetic, and ORL's people turn their heads more
//! than someone waiting at a door does.

pub mod attack;
pub mod metrics;
pub mod planarity;

/// Errors of the liveness crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The keypoints cannot be scored (too few frames or points, points that coincide).
    #[error("keypoints: {0}")]
    Points(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `vision.liveness`: how a door tells a face from a picture of one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LivenessMode {
    /// No check.
    #[default]
    Off,
    /// Frames around the tap must show 3-D motion ([`planarity`]).
    Passive,
    /// The person is asked to move (not implemented yet).
    Challenge,
}

/// The indices of the two eyes among BlazeFace's six keypoints (right eye, left eye, nose tip, mouth,
/// right tragion, left tragion).
pub const BLAZEFACE_EYES: (usize, usize) = (0, 1);

/// The planarity score (pair residual / eye distance, the maximum over frame pairs) at or above which
/// a sequence of BlazeFace keypoints is taken for a live head.
pub const DEFAULT_THRESHOLD: f64 = 0.05;
