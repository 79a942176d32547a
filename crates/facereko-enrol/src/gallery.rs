//! The door's gallery kept equal to the store's faces.
//!
//! The local engine compares faces with a gallery in memory (one contiguous matrix). Enrolments change
//! the store — here or at another door sharing the database — and bump its face version; [`GallerySync`]
//! reloads the gallery when that version moves on. [`FreshGallery`] wraps the door's engine and checks
//! (bounded by [`GALLERY_CHECK_WAIT`]) at the start of every decision, so a tap right after an enrolment is
//! compared with the new face; [`spawn_gallery_sync`] catches up while the door is idle.

use std::sync::Arc;
use std::time::Duration;

use facereko_domain::{PersonId, Photo};
use facereko_store::Store;
use facereko_vision::{
    FaceEngine, FrameJudge, Gallery, LocalEngine, Observation, RgbImage, Verdict,
};

use crate::{Error, Result};

/// Builds the gallery from the store's faces of this engine's model.
async fn load_gallery(store: &Store, model: &str) -> Result<Gallery> {
    let faces = store.faces(None).await?;
    let total = faces.len();
    let rows: Vec<(PersonId, Vec<f32>)> = faces
        .into_iter()
        .filter(|f| f.model_id == model)
        .map(|f| (f.person_id, f.embedding))
        .collect();
    if rows.len() < total {
        tracing::warn!(
            "{} enrolled faces were made with another model and are ignored; run `facereko enrol --reembed`",
            total - rows.len()
        );
    }
    Gallery::new(rows).map_err(Error::Engine)
}

/// Loads the store's faces into the engine and returns the face version they reflect (read first, so a
/// face added meanwhile only makes the next check reload again).
pub async fn refresh_gallery(store: &Store, engine: &LocalEngine, model: &str) -> Result<i64> {
    let version = store.faces_version().await?;
    let g = load_gallery(store, model).await?;
    tracing::info!("face gallery: {} faces of {} people", g.len(), g.people());
    engine.set_gallery(g);
    Ok(version)
}

/// The longest a decision waits to learn whether the gallery is current; past it (or with the store
/// down, which answers at once) the door decides with the faces it has.
pub const GALLERY_CHECK_WAIT: Duration = Duration::from_millis(300);

/// Keeps the local engine's gallery equal to the store's faces (enrolments at this door, or at another
/// door sharing the database): reloads whenever the store's face version moves on. The door's engine
/// checks before every decision (one cheap query), and a periodic task catches up while the door is idle.
#[derive(Debug)]
pub struct GallerySync {
    store: Store,
    engine: LocalEngine,
    model: String,
    /// The face version the gallery reflects; held while reloading, so one reload runs at a time.
    seen: tokio::sync::Mutex<i64>,
}

impl GallerySync {
    /// Loads the gallery now.
    pub async fn start(store: Store, engine: LocalEngine) -> Result<Arc<Self>> {
        let model = engine.model_id().to_string();
        let seen = refresh_gallery(&store, &engine, &model).await?;
        Ok(Arc::new(Self {
            store,
            engine,
            model,
            seen: tokio::sync::Mutex::new(seen),
        }))
    }

    /// Reloads the gallery if the store's faces changed; `Ok(true)` when it did.
    pub async fn check(&self) -> Result<bool> {
        let mut seen = self.seen.lock().await;
        if self.store.faces_version().await? == *seen {
            return Ok(false);
        }
        *seen = refresh_gallery(&self.store, &self.engine, &self.model).await?;
        Ok(true)
    }
}

/// Checks the gallery every `every` while the door is idle; a store that is down is reported once, not
/// on every check.
pub fn spawn_gallery_sync(sync: Arc<GallerySync>, every: Duration) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            match sync.check().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("face gallery checks work again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("could not check for new faces: {e}; keeping the faces loaded");
                }
                Err(e) => tracing::debug!("could not check for new faces: {e}"),
            }
        }
    });
}

/// The door's face engine with its gallery brought up to date at the start of each decision, so a tap
/// right after an enrolment is compared with the new face (not only after the next periodic reload).
pub struct FreshGallery {
    inner: Arc<dyn FaceEngine>,
    sync: Arc<GallerySync>,
}

impl FreshGallery {
    pub fn new(inner: Arc<dyn FaceEngine>, sync: Arc<GallerySync>) -> Self {
        Self { inner, sync }
    }

    async fn catch_up(&self) {
        match tokio::time::timeout(GALLERY_CHECK_WAIT, self.sync.check()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!("deciding with the faces loaded: {e}"),
            Err(_) => tracing::warn!(
                "the face gallery check took over {} ms: deciding with the faces loaded",
                GALLERY_CHECK_WAIT.as_millis()
            ),
        }
    }
}

impl std::fmt::Debug for FreshGallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshGallery")
            .field("engine", &self.inner.name())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl FaceEngine for FreshGallery {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn verify(&self, photo: &Photo, person: PersonId) -> facereko_vision::Result<Verdict> {
        self.catch_up().await;
        self.inner.verify(photo, person).await
    }

    async fn identify(&self, photo: &Photo) -> facereko_vision::Result<Verdict> {
        self.catch_up().await;
        self.inner.identify(photo).await
    }

    fn one_photo_per_look(&self) -> bool {
        self.inner.one_photo_per_look()
    }

    fn frames(&self) -> Option<Arc<dyn FrameJudge>> {
        let inner = self.inner.frames()?;
        Some(Arc::new(FreshFrames {
            inner,
            fresh: FreshGallery {
                inner: self.inner.clone(),
                sync: self.sync.clone(),
            },
        }))
    }
}

/// The frame-level side of [`FreshGallery`]: frames are analysed as they come; the gallery is brought
/// up to date before each fused decision.
struct FreshFrames {
    inner: Arc<dyn FrameJudge>,
    fresh: FreshGallery,
}

#[async_trait::async_trait]
impl FrameJudge for FreshFrames {
    fn decode(&self, photo: &Photo) -> facereko_vision::Result<RgbImage> {
        self.inner.decode(photo)
    }

    fn observe(
        &self,
        frame: &RgbImage,
        max_faces: usize,
    ) -> facereko_vision::Result<Vec<Observation>> {
        self.inner.observe(frame, max_faces)
    }

    async fn verify_fused(&self, observations: &[Observation], person: PersonId) -> Verdict {
        self.fresh.catch_up().await;
        self.inner.verify_fused(observations, person).await
    }

    async fn identify_fused(&self, observations: &[Observation]) -> Verdict {
        self.fresh.catch_up().await;
        self.inner.identify_fused(observations).await
    }

    fn threshold(&self) -> f32 {
        self.inner.threshold()
    }
}
