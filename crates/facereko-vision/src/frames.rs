//! What a door that watches continuously needs from an engine: the frame-level side of it.
//!
//! An engine that can judge single frames cheaply and locally ([`crate::LocalEngine`]) offers a
//! [`FrameJudge`] through [`crate::FaceEngine::frames`]; the door then runs its camera while armed, keeps
//! the recent [`Observation`]s and decides a tap from them (see `facereko-door`'s `watcher` module). An
//! engine paid or rate-limited per call (Rekognition) offers none, and the door looks once per tap.
//!
//! Two cheap pieces live here because they are about pixels, not doors: [`MotionGate`], which tells a
//! frame worth analysing from an unchanged scene for a fraction of a millisecond, and
//! [`WatchSettings`], the `vision.*` keys that say how often and how long the door looks.

use async_trait::async_trait;
use facereko_domain::{PersonId, Photo};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::fusion::Observation;
use crate::{Result, Verdict};

/// The frame-level side of a face engine. `decode` and `observe` are CPU-bound and blocking: call them
/// on a blocking thread. The fused decisions are quick (one gallery pass) but async, so a wrapper may
/// first bring its gallery up to date.
#[async_trait]
pub trait FrameJudge: Send + Sync {
    /// Decodes a camera frame with the engine's size limits.
    fn decode(&self, photo: &Photo) -> Result<RgbImage>;

    /// The usable faces of a decoded frame, best first, at most `max_faces`, each with its quality and
    /// embedding.
    fn observe(&self, frame: &RgbImage, max_faces: usize) -> Result<Vec<Observation>>;

    /// 1:1 on several observations fused (the rule is in [`crate::fusion`]).
    async fn verify_fused(&self, observations: &[Observation], person: PersonId) -> Verdict;

    /// 1:N on several observations fused.
    async fn identify_fused(&self, observations: &[Observation]) -> Verdict;

    /// The similarity (0–100) at or above which two faces are the same person.
    fn threshold(&self) -> f32;
}

/// How the door watches: the `vision.fps`, `vision.lookback_ms`, … keys, gathered for the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSettings {
    /// Frames per second looked at while the door is armed; 0 turns continuous capture off (the door
    /// then takes photos only after a tap, as the original did).
    pub fps: u32,
    /// How far back a tap looks for frames with a face.
    pub lookback_ms: u64,
    /// With no usable face in the lookback window, how long after the tap the door keeps looking.
    pub face_timeout_ms: u64,
    /// `face` mode: consecutive frames with a good face before the door decides.
    pub trigger_frames: u32,
    /// `face` mode: a person decided once is not decided again until they have been out of view this
    /// long.
    pub cooldown_ms: u64,
    /// How the door tells a face from a picture of one.
    pub liveness: LivenessMode,
    /// `liveness = "challenge"`: how long the person has to turn their head once asked.
    pub challenge_ms: u64,
}

/// `vision.liveness`: how a door tells a face from a picture of one (the checks are in
/// `facereko-liveness`; the door runs them on the frames it watched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LivenessMode {
    /// No check.
    #[default]
    Off,
    /// The frames that matched must show 3-D motion: the face's tracked texture must not move as one
    /// plane (one homography), as a photo or a screen does. A head held still fails it too.
    Passive,
    /// After the face matched, the door asks (three short beeps) for a head turn and checks within
    /// `challenge_ms` that the face's yaw swept far enough, as a flat picture cannot, and that the turn
    /// passes the passive check.
    Challenge,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            fps: 5,
            lookback_ms: 1500,
            face_timeout_ms: 3000,
            trigger_frames: 3,
            cooldown_ms: 10_000,
            liveness: LivenessMode::Off,
            challenge_ms: 4000,
        }
    }
}

/// A face at least this good (overall quality, 0–1) lets a tap decide without waiting for more frames.
/// Quality is the product of sharpness, size, pose and exposure, each 0–1; on the development photos a
/// frontal, sharp face of twice the smallest accepted width scores above 0.5, a blurred or clearly
/// turned one below 0.2.
pub const GOOD_QUALITY: f32 = 0.25;

/// Side of the grid of block means the motion gate compares (a 640×480 frame becomes 32×24 blocks).
const GRID_W: usize = 32;
const GRID_H: usize = 24;
/// A block whose mean brightness moved by more than this many levels (0–255) changed. Sensor noise
/// averaged over a block of hundreds of pixels stays well under it.
const BLOCK_LEVELS: f32 = 12.0;
/// The scene moved when at least this share of blocks changed (8 of 768).
const MOVED_SHARE: f32 = 0.01;

/// Tells a frame that differs from the previous one (someone moved) from an unchanged scene, by
/// comparing the mean brightness of a 32×24 grid of blocks. Cost: one pass over the pixels.
#[derive(Clone, Debug, Default)]
pub struct MotionGate {
    previous: Option<Vec<f32>>,
}

impl MotionGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// The share of blocks (0–1) that changed since the previous frame; the first frame, or one of a
    /// different size, counts as all changed.
    pub fn update(&mut self, frame: &RgbImage) -> f32 {
        let grid = block_means(frame);
        let share = match &self.previous {
            Some(prev) if prev.len() == grid.len() => {
                let changed = prev
                    .iter()
                    .zip(&grid)
                    .filter(|(a, b)| (*a - *b).abs() > BLOCK_LEVELS)
                    .count();
                changed as f32 / grid.len().max(1) as f32
            }
            _ => 1.0,
        };
        self.previous = Some(grid);
        share
    }

    /// Whether a share from [`MotionGate::update`] means the scene moved.
    pub fn moved(share: f32) -> bool {
        share >= MOVED_SHARE
    }
}

/// Mean brightness of each block of a `GRID_W`×`GRID_H` grid (fewer blocks for a tiny frame).
fn block_means(frame: &RgbImage) -> Vec<f32> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (gw, gh) = (GRID_W.min(w.max(1)), GRID_H.min(h.max(1)));
    let mut sums = vec![0.0f32; gw * gh];
    let mut counts = vec![0u32; gw * gh];
    let raw = frame.as_raw();
    for y in 0..h {
        let by = y * gh / h;
        let row = &raw[y * w * 3..(y + 1) * w * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            let bx = x * gw / w;
            let luma = 0.299 * px[0] as f32 + 0.587 * px[1] as f32 + 0.114 * px[2] as f32;
            sums[by * gw + bx] += luma;
            counts[by * gw + bx] += 1;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(s, &n)| if n == 0 { 0.0 } else { s / n as f32 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = f(x, y);
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn an_unchanged_or_noisy_scene_is_not_motion_and_a_moving_square_is() {
        let mut gate = MotionGate::new();
        let empty = frame(640, 480, |x, _| (x / 4) as u8);
        assert_eq!(gate.update(&empty), 1.0, "the first frame counts as moved");
        assert_eq!(gate.update(&empty), 0.0);
        // Sensor noise of ±6 levels on every pixel: no block mean moves past the limit.
        let base = |x: u32| 6 + (x / 4) % 240;
        let empty = frame(640, 480, |x, _| base(x) as u8);
        gate.update(&empty);
        let noisy = frame(640, 480, |x, y| (base(x) + (x * 7 + y * 13) % 13 - 6) as u8);
        assert!(!MotionGate::moved(gate.update(&noisy)));
        // A person-sized bright square enters the frame.
        let mut entered = noisy.clone();
        for y in 100..300 {
            for x in 200..360 {
                entered.put_pixel(x, y, image::Rgb([250, 250, 250]));
            }
        }
        let share = gate.update(&entered);
        assert!(MotionGate::moved(share), "share {share}");
        assert!(share < 0.2, "only the square's blocks changed: {share}");
        assert!(!MotionGate::moved(gate.update(&entered)));
    }

    #[test]
    fn a_frame_of_another_size_counts_as_moved_and_tiny_frames_do_not_panic() {
        let mut gate = MotionGate::new();
        gate.update(&frame(640, 480, |_, _| 10));
        assert_eq!(
            gate.update(&frame(320, 240, |_, _| 10)),
            0.0,
            "same grid, same means"
        );
        assert_eq!(gate.update(&frame(5, 3, |_, _| 10)), 1.0);
        assert_eq!(gate.update(&frame(1, 1, |_, _| 10)), 1.0);
        assert_eq!(gate.update(&frame(1, 1, |_, _| 200)), 1.0);
    }

    #[test]
    fn the_default_settings_are_those_documented() {
        let s = WatchSettings::default();
        assert_eq!(
            (s.fps, s.lookback_ms, s.face_timeout_ms, s.trigger_frames),
            (5, 1500, 3000, 3)
        );
    }
}
