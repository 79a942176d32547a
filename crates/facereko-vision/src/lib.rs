//! Faces: the [`FaceEngine`] trait the door decides with, and its implementations.
//!
//! The one design decision a newcomer must know: the trait speaks in *verification* (1:1, "is this the
//! card owner?") and *identification* (1:N, "who is this?"), not in detect/embed steps, so that an engine
//! that works on embeddings locally and one that asks a remote service (AWS Rekognition) fit the same
//! door. An engine that finds no usable face says so with `face: None`; errors are for engines that could
//! not work at all (missing model, unreadable image).

use async_trait::async_trait;
use facereko_domain::{PersonId, Photo};

pub mod testing;

/// Errors of the vision crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image could not be read: {0}")]
    Image(String),
    #[error("face engine: {0}")]
    Engine(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The face an engine found and used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceFound {
    /// Detector confidence that this is a face, 0–100.
    pub confidence: Option<f32>,
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
}
