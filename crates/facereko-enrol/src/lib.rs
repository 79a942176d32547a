//! Face enrolment, written once: `facereko enrol`, the web app and `serve` all go through here.
//!
//! The one design decision a newcomer must know: an enrolment is **embed → store → index**, in that
//! order, and only [`FaceEnrolment`] does it. The local engine describes the photo (refusing a photo with
//! no face or several before anything is written), the store keeps the embedding with its photo and the
//! model id that made it (embeddings of different models are never compared), and, when the door decides
//! with AWS Rekognition, a [`FaceIndexer`] indexes the same photo into the collection under the store's
//! face id. A face the store kept but the collection did not is reported as such ([`Error::NotIndexed`]):
//! it is enrolled, and `facereko collection sync` repairs the collection.
//!
//! [`gallery`] keeps the door's in-memory gallery equal to the store's faces: it reloads when the store's
//! face version moves on (an enrolment here or at another door), checked at the start of each decision and
//! by a periodic task.
//!
//! This crate knows nothing of HTTP, the command line or the door's hardware.

use std::sync::Arc;

use facereko_domain::{PersonId, Photo};
use facereko_store::Store;
use facereko_vision::{models, similarity_percent, Embedding, Enrolment, LocalEngine};

pub mod gallery;

pub use gallery::{FreshGallery, GallerySync, GALLERY_CHECK_WAIT};

/// What an indexer's failure carries (the AWS SDK's errors, an HTTP status, …).
pub type IndexError = Box<dyn std::error::Error + Send + Sync>;

/// Indexes enrolments into a face collection the door searches (AWS Rekognition); the binary implements it
/// when `vision.engine = "rekognition"`.
#[async_trait::async_trait]
pub trait FaceIndexer: Send + Sync + std::fmt::Debug {
    /// The collection's name, for messages.
    fn collection(&self) -> &str;
    /// Indexes `photo` as face `face_id` of `person`.
    async fn index(&self, person: PersonId, face_id: i64, photo: &Photo) -> Result<(), IndexError>;
    /// Removes face `face_id` from the collection.
    async fn forget(&self, face_id: i64) -> Result<(), IndexError>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local engine is not loaded (a card-only door that never installed the models).
    #[error(
        "the face models are not installed: run `{}` and restart",
        models::INSTALL_COMMAND
    )]
    NoModels,
    #[error(
        "no usable face in the photo (a face must be frontal, at least {min_face_px} pixels wide)"
    )]
    NoFace { min_face_px: u32 },
    #[error("{0} faces in the photo; enrolment needs a photo of exactly one person")]
    ManyFaces(usize),
    #[error("the photo cannot be read: {0}")]
    BadImage(String),
    #[error(transparent)]
    Engine(facereko_vision::Error),
    #[error(transparent)]
    Store(#[from] facereko_store::Error),
    /// The face is enrolled (the door's gallery has it), but the collection does not.
    #[error(
        "the face was enrolled (face {face_id}), but not indexed into Rekognition collection \
         {collection}: {source}; run `facereko collection sync`"
    )]
    NotIndexed {
        face_id: i64,
        collection: String,
        source: IndexError,
    },
    /// The face is deleted here, but the collection may still hold it.
    #[error(
        "the face was deleted here, but Rekognition collection {collection} may still hold it: \
         {source}; run `facereko collection sync`"
    )]
    NotForgotten {
        collection: String,
        source: IndexError,
    },
    /// `reembed`: a face whose stored photo is missing or unreadable.
    #[error("{0}")]
    NoPhoto(String),
}

impl From<facereko_vision::Error> for Error {
    fn from(e: facereko_vision::Error) -> Self {
        match e {
            facereko_vision::Error::NoFace { min_face_px } => Error::NoFace { min_face_px },
            facereko_vision::Error::ManyFaces(n) => Error::ManyFaces(n),
            facereko_vision::Error::Image(m) => Error::BadImage(m),
            other => Error::Engine(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A face just enrolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enrolled {
    pub face_id: i64,
    /// Milliseconds the engine took to describe the photo.
    pub ms: u32,
}

/// Progress of [`FaceEnrolment::reembed`], one call per face.
#[derive(Debug)]
pub struct ReembedStep<'a> {
    /// 1-based position and the number of faces to re-embed.
    pub index: usize,
    pub of: usize,
    pub face: &'a facereko_store::FaceRecord,
    /// The new face id, or why the old face was kept.
    pub result: &'a Result<i64>,
}

/// What [`FaceEnrolment::reembed`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReembedReport {
    /// Faces enrolled in all.
    pub total: usize,
    /// Faces of another model (the ones to re-embed).
    pub todo: usize,
    /// Faces re-embedded (each got a new id).
    pub done: usize,
}

/// Another enrolled person a new face resembles (see [`FaceEnrolment::resembles_other`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LooksLike {
    pub person: PersonId,
    pub name: String,
    /// 0–100 %, against the threshold in force.
    pub similarity: f32,
    pub threshold: f32,
}

/// The one enrolment pipeline. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FaceEnrolment {
    store: Store,
    engine: Option<LocalEngine>,
    indexer: Option<Arc<dyn FaceIndexer>>,
}

impl FaceEnrolment {
    /// `engine` is `None` where the models are not installed (every enrolment then says how to install
    /// them); `indexer` is set when the door decides with Rekognition.
    pub fn new(
        store: Store,
        engine: Option<LocalEngine>,
        indexer: Option<Arc<dyn FaceIndexer>>,
    ) -> Self {
        Self {
            store,
            engine,
            indexer,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The collection enrolments are indexed into, if any.
    pub fn indexer(&self) -> Option<&dyn FaceIndexer> {
        self.indexer.as_deref()
    }

    /// The model id new enrolments are stored under (`None` without models).
    pub fn model_id(&self) -> Option<&str> {
        self.engine.as_ref().map(|e| e.model_id())
    }

    fn engine(&self) -> Result<&LocalEngine> {
        self.engine.as_ref().ok_or(Error::NoModels)
    }

    /// Describes the one face in `photo`, writing nothing: callers that must create a person or a card
    /// first check the photo with this, then [`FaceEnrolment::keep`] the result.
    pub async fn embed(&self, photo: &Photo) -> Result<Enrolment> {
        Ok(self.engine()?.embed(photo).await?)
    }

    /// Stores an embedding made by [`FaceEnrolment::embed`] for `person`, with its photo, and indexes it.
    pub async fn keep(&self, person: PersonId, e: &Enrolment, photo: &Photo) -> Result<Enrolled> {
        let engine = self.engine()?;
        let face_id = self
            .store
            .add_face(
                person,
                e.embedding.as_slice(),
                engine.model_id(),
                Some(photo),
            )
            .await?;
        if let Some(ix) = &self.indexer {
            ix.index(person, face_id, photo)
                .await
                .map_err(|source| Error::NotIndexed {
                    face_id,
                    collection: ix.collection().to_string(),
                    source,
                })?;
        }
        Ok(Enrolled { face_id, ms: e.ms })
    }

    /// The enrolled person other than `person` whose faces are most like `e`, when at or above the
    /// engine's threshold: a face that would open the door for someone else's card. Faces of other models
    /// are not comparable and are skipped.
    pub async fn resembles_other(
        &self,
        person: PersonId,
        e: &Enrolment,
    ) -> Result<Option<LooksLike>> {
        let engine = self.engine()?;
        let mut best: Option<(PersonId, f32)> = None;
        for f in self.store.faces(None).await? {
            if f.person_id == person || f.model_id != engine.model_id() {
                continue;
            }
            let Ok(other) = Embedding::new(f.embedding) else {
                continue;
            };
            let s = similarity_percent(e.embedding.cosine(&other));
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((f.person_id, s));
            }
        }
        let threshold = engine.threshold();
        let Some((other, similarity)) = best.filter(|(_, s)| *s >= threshold) else {
            return Ok(None);
        };
        let name = self
            .store
            .person(other)
            .await?
            .map_or_else(|| format!("person #{other}"), |p| p.name);
        Ok(Some(LooksLike {
            person: other,
            name,
            similarity,
            threshold,
        }))
    }

    /// Enrols the one face in `photo` for `person`: embed, store, index.
    pub async fn enrol(&self, person: PersonId, photo: &Photo) -> Result<Enrolled> {
        let e = self.embed(photo).await?;
        self.keep(person, &e, photo).await
    }

    /// Deletes an enrolled face here and from the collection.
    pub async fn delete(&self, face_id: i64) -> Result<()> {
        self.store.delete_face(face_id).await?;
        if let Some(ix) = &self.indexer {
            ix.forget(face_id)
                .await
                .map_err(|source| Error::NotForgotten {
                    collection: ix.collection().to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Embeds every face enrolled with another model again, from its stored photo, with this engine; the
    /// new face replaces the old one (new id, indexed when there is a collection). A face whose photo is
    /// missing is kept as it was, and `step` hears why.
    pub async fn reembed(&self, mut step: impl FnMut(ReembedStep<'_>)) -> Result<ReembedReport> {
        let model = self.engine()?.model_id().to_string();
        let faces = self.store.faces(None).await?;
        let total = faces.len();
        let todo: Vec<_> = faces.into_iter().filter(|f| f.model_id != model).collect();
        let mut report = ReembedReport {
            total,
            todo: todo.len(),
            done: 0,
        };
        for (i, face) in todo.iter().enumerate() {
            let result = self.reembed_one(face).await;
            if result.is_ok() {
                report.done += 1;
            }
            step(ReembedStep {
                index: i + 1,
                of: todo.len(),
                face,
                result: &result,
            });
        }
        Ok(report)
    }

    async fn reembed_one(&self, face: &facereko_store::FaceRecord) -> Result<i64> {
        let rel = face.photo.as_deref().ok_or_else(|| {
            Error::NoPhoto("no photo was stored with it: enrol this person again".into())
        })?;
        let photo = self
            .store
            .read_photo(rel)
            .await
            .map_err(|e| Error::NoPhoto(format!("its stored photo cannot be used: {e}")))?;
        let new = self.enrol(face.person_id, &photo).await?;
        self.delete(face.id).await?;
        Ok(new.face_id)
    }
}

#[cfg(test)]
mod tests;
