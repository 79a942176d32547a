//! Liveness: is the face in front of the camera a head, or a photo or screen held up to it?
//!
//! The one design decision a newcomer must know: the check is *geometric*. A flat photo or screen,
//! however it is moved, moves every point of the face by one homography; a real head does not, because
//! its nose, cheeks, ears and hair lie at different depths. [`motion`] cuts each frame's face out by its
//! eyes, tracks a hundred-odd corners of its texture from frame to frame ([`track`]: Shi–Tomasi corners,
//! pyramidal Lucas–Kanade), fits one homography to them ([`planarity`]) and scores how far the tracks
//! stay from it: low = planar = attack. It needs only the frames and the eyes, so this crate knows
//! nothing of the face engine. The head-turn [`challenge`] asks the person to turn and measures the
//! turn from the nose's position between the eyes, then runs the same dense check on the turn.
//!
//! [`attack`] generates seeded print/screen attacks from a photo, [`metrics`] the ISO/IEC 30107-3
//! figures (APCER: attacks accepted, BPCER: bona fide refused). `facereko eval-liveness` runs both on a
//! folder of people with the real engine; the figures are in [`motion::THRESHOLD`] and the README.
//!
//! History: a first passive check fitted the homography to the engine's six keypoints instead of
//! tracked texture. On the same data it accepted 84 % of the attacks at BPCER 5 %: a regressed keypoint
//! on a re-lit, blurred photo wanders by several pixels, as much as a real head turn moves it.

pub mod attack;
pub mod challenge;
pub mod metrics;
pub mod motion;
pub mod planarity;
pub mod track;

/// Errors of the liveness crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The keypoints cannot be scored (too few frames or points, points that coincide).
    #[error("keypoints: {0}")]
    Points(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
