//! A face engine for tests only: it does not look at faces at all.
//!
//! [`ScriptedEngine`] answers each call with the next verdict a test queued. It exists so that the door
//! controller's logic (timing, cues, outcomes) can be tested without model files; the daemon never uses it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use facereko_domain::{PersonId, Photo};

use crate::{Error, FaceEngine, FaceFound, Result, Verdict};

/// What a [`ScriptedEngine`] says next.
#[derive(Clone, Debug, PartialEq)]
pub enum Script {
    /// The face matches (the card owner for `verify`, this person for `identify`), with this similarity.
    Match {
        person: Option<PersonId>,
        similarity: f32,
    },
    /// A face, but not the one asked for (or nobody enrolled), with this similarity.
    Mismatch { similarity: f32 },
    /// No usable face in the photo.
    NoFace,
    /// The engine fails.
    Fail(String),
}

/// Test-only engine that replays queued [`Script`]s; with nothing queued it fails loudly.
#[derive(Debug, Default)]
pub struct ScriptedEngine {
    queue: Mutex<VecDeque<Script>>,
    calls: Mutex<Vec<Option<PersonId>>>,
    one_photo: AtomicBool,
}

impl ScriptedEngine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, s: Script) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(s);
    }

    /// Makes the engine ask for one photo per look, as a per-call-billed engine does.
    pub fn set_one_photo_per_look(&self, yes: bool) {
        self.one_photo.store(yes, Ordering::Relaxed);
    }

    /// The person each call asked about (`None` for `identify`), oldest first.
    pub fn calls(&self) -> Vec<Option<PersonId>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn next(&self, asked: Option<PersonId>) -> Result<Verdict> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(asked);
        let script = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .ok_or_else(|| Error::Engine("scripted engine: no verdict queued".into()))?;
        let face = Some(FaceFound {
            confidence: Some(99.0),
            width_px: None,
            faces_in_photo: Some(1),
        });
        let base = Verdict {
            engine: "scripted".into(),
            detect_ms: Some(0),
            match_ms: Some(0),
            ..Verdict::default()
        };
        Ok(match script {
            Script::Match { person, similarity } => Verdict {
                face,
                matched: person.or(asked),
                similarity: Some(similarity),
                ..base
            },
            Script::Mismatch { similarity } => Verdict {
                face,
                similarity: Some(similarity),
                ..base
            },
            Script::NoFace => base,
            Script::Fail(msg) => return Err(Error::Engine(msg)),
        })
    }
}

#[async_trait]
impl FaceEngine for ScriptedEngine {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn verify(&self, _photo: &Photo, person: PersonId) -> Result<Verdict> {
        self.next(Some(person))
    }

    async fn identify(&self, _photo: &Photo) -> Result<Verdict> {
        self.next(None)
    }

    fn one_photo_per_look(&self) -> bool {
        self.one_photo.load(Ordering::Relaxed)
    }
}
