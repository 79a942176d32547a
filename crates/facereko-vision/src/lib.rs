//! Faces: the [`FaceEngine`] trait the door decides with, and its implementations.
//!
//! The one design decision a newcomer must know: the trait speaks in *verification* (1:1, "is this the
//! card owner?") and *identification* (1:N, "who is this?"), not in detect/embed steps, so that an engine
//! that works on embeddings locally and one that asks a remote service (AWS Rekognition) fit the same
//! door. An engine that finds no usable face says so with `face: None`; errors are for engines that could
//! not work at all (missing model, unreadable image).
//!
//! The default engine is [`LocalEngine`], offline on the door's own CPU, with one of two pipelines
//! (`vision.local_engine`): `onnx` — BlazeFace finds the face and six keypoints, a similarity transform
//! aligns it, MobileFaceNet describes it (192-d), on ONNX Runtime loaded from the installed models — or
//! `dlib` — HOG detector, 5-point landmarks, ResNet encoder (128-d). Embeddings are L2-normalised and
//! carry their model's id; a [`Gallery`] holds the enrolled ones of one model in one contiguous matrix so
//! 1:N is a single pass over memory. Scores are cosine similarities shown as 0–100 %
//! ([`similarity_percent`]); each pipeline's default threshold was calibrated on the development photos
//! ([`LocalEngineKind::default_threshold`]; the [`eval`] module is how anyone re-calibrates on their own
//! people).
//!
//! Frames: besides the one-photo trait, the local engine has a frame-level API for a door that watches
//! continuously. [`LocalEngine::observe_image`] turns a decoded frame into [`Observation`]s (box,
//! keypoints in photo pixels, a [`Quality`] with its parts — sharpness, size, frontal pose, exposure — and
//! the embedding tagged with its model id); at a tap, [`LocalEngine::verify_fused`] /
//! [`LocalEngine::identify_fused`] decide on the best [`fusion::FUSE_FRAMES`] of them, fused as the
//! quality-weighted mean of their embeddings (the rule and its numbers are in [`fusion`]). The keypoints
//! stay in the observation for a liveness check across frames.

use async_trait::async_trait;
use facereko_domain::{PersonId, Photo};

pub mod blas;
pub mod blazeface;
pub mod config;
pub mod decode;
mod detected;
mod dlib;
pub mod eval;
pub mod frames;
pub mod fusion;
pub mod gallery;
pub mod geometry;
pub mod install;
pub mod local;
pub mod models;
mod onnx;
pub mod quality;
// A scripted engine for other crates' tests (feature `testing`; not in a door's build).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::{EngineKind, Fallback, LocalEngineKind, VisionConfig};
pub use frames::{FrameJudge, LivenessMode, MotionGate, WatchSettings};
pub use fusion::Observation;
pub use gallery::{
    distance_from_cosine, similarity_percent, Embedding, Gallery, Match, EMBEDDING_DIM,
    ONNX_EMBEDDING_DIM,
};
/// Decoded frames, as the frame-level API takes them.
pub use image::RgbImage;
pub use local::{Enrolment, FaceBox, LocalEngine, PhotoFaces, Probe};
pub use quality::Quality;

/// Errors of the vision crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image could not be read: {0}")]
    Image(String),
    #[error("face engine: {0}")]
    Engine(String),
    /// Enrolment needs exactly one usable face and the photo has none.
    #[error(
        "no usable face in the photo (a face must be frontal, at least {min_face_px} pixels wide)"
    )]
    NoFace { min_face_px: u32 },
    /// Enrolment needs exactly one usable face and the photo has several.
    #[error("{0} faces in the photo; enrolment needs a photo of exactly one person")]
    ManyFaces(usize),
    /// A model file is missing or damaged; the message names the command that fixes it.
    #[error("face model {file} is {problem} in {dir}: run `{command}`")]
    ModelMissing {
        file: String,
        dir: String,
        problem: String,
        command: String,
    },
    #[error("installing the face models: {0}")]
    Install(String),
    #[error("vision config: `{key}` {reason}")]
    Config { key: String, reason: String },
    #[error("embedding: {0}")]
    Embedding(String),
    #[error("eval: {0}")]
    Eval(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The face an engine found and used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceFound {
    /// Detector confidence that this is a face, 0–100, for engines that report one (dlib's HOG detector
    /// as wrapped here does not: the local engine leaves it `None` and relies on its quality gate).
    pub confidence: Option<f32>,
    /// Width of the face's box in pixels of the photo, where the engine knows it.
    pub width_px: Option<u32>,
    /// How many faces the detector saw in the photo (the engine used the best one).
    pub faces_in_photo: Option<u32>,
}

/// What an engine concluded about one photo.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Verdict {
    /// The usable face, or `None` when the photo had none.
    pub face: Option<FaceFound>,
    /// The person the face belongs to, when it matched (the card owner for `verify`).
    pub matched: Option<PersonId>,
    /// Score of the best comparison, 0–100, whether or not it passed the threshold.
    pub similarity: Option<f32>,
    /// Raw distance of the best comparison, where the engine has one.
    pub distance: Option<f32>,
    /// Milliseconds spent finding and describing the face.
    pub detect_ms: Option<u32>,
    /// Milliseconds spent comparing.
    pub match_ms: Option<u32>,
    /// Which engine decided (`local`, `rekognition`, …).
    pub engine: String,
    /// The best-scoring person even when below the threshold (`identify` only), for logs and the UI.
    pub best_candidate: Option<PersonId>,
}

/// A face engine.
#[async_trait]
pub trait FaceEngine: Send + Sync {
    /// A short name for logs and attempts.
    fn name(&self) -> &str;

    /// 1:1: does the face in `photo` belong to `person`? Compares only with that person's enrolled faces.
    async fn verify(&self, photo: &Photo, person: PersonId) -> Result<Verdict>;

    /// 1:N: whose face is in `photo`? `matched` is `None` for a face nobody enrolled.
    async fn identify(&self, photo: &Photo) -> Result<Verdict>;

    /// Whether a look is decided on one photo. Engines paid or rate-limited per call (Rekognition) say
    /// `true`: the door then asks once per tap, as the original did, instead of once per frame until a
    /// face shows up within the capture window.
    fn one_photo_per_look(&self) -> bool {
        false
    }

    /// The engine's frame-level side, for a door that watches continuously; `None` (the default) for
    /// engines that judge one photo per call, with which the door looks only after a tap.
    fn frames(&self) -> Option<std::sync::Arc<dyn FrameJudge>> {
        None
    }
}
