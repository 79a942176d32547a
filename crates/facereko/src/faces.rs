//! Faces: loading the local engine with the store's gallery, and the installer's commands `photo` and
//! `enrol` (`models install`, `eval` and `enrol --reembed` are in [`crate::models`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use facereko_domain::{CardUid, ImageFormat, Person, PersonId, Photo};
use facereko_store::Store;
use facereko_vision::{models, FaceEngine, Gallery, LocalEngine, Verdict, VisionConfig};

use crate::cli::{open_store, parse_uid};
use crate::config::Config;
use crate::rekognition::FaceIndexer;

/// The id stored with each embedding ([`VisionConfig::model_id`]).
pub fn model_id(config: &VisionConfig) -> String {
    config.model_id()
}

/// Loads the local engine (models checked first: a missing file names `facereko models install`).
pub async fn load_engine(config: &Config, data_dir: &Path) -> Result<LocalEngine> {
    let vision = config.vision.clone();
    let dir = vision.models_dir(data_dir);
    tokio::task::spawn_blocking(move || LocalEngine::load(&vision, &dir))
        .await
        .context("loading the face engine")?
        .map_err(anyhow::Error::from)
}

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
    Ok(Gallery::new(rows)?)
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
    pub async fn start(store: Store, engine: LocalEngine, model: String) -> Result<Arc<Self>> {
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
                    tracing::warn!(
                        "could not check for new faces: {e:#}; keeping the faces loaded"
                    );
                }
                Err(e) => tracing::debug!("could not check for new faces: {e:#}"),
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
            Ok(Err(e)) => tracing::debug!("deciding with the faces loaded: {e:#}"),
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
}

/// Face enrolment for the web app: the local engine embeds, the store keeps. Without models (a card-only
/// door that never installed them) it says which command to run.
/// With the Rekognition engine, each enrolment is also indexed into the collection and each deletion
/// removed from it.
#[derive(Debug)]
pub struct Enroller {
    store: Store,
    engine: Option<LocalEngine>,
    model: String,
    indexer: Option<Arc<dyn FaceIndexer>>,
}

impl Enroller {
    pub fn new(
        store: Store,
        engine: Option<LocalEngine>,
        vision: &VisionConfig,
        indexer: Option<Arc<dyn FaceIndexer>>,
    ) -> Self {
        Self {
            store,
            engine,
            model: model_id(vision),
            indexer,
        }
    }
}

#[async_trait::async_trait]
impl facereko_web::FaceEnroller for Enroller {
    async fn enrol(&self, person: PersonId, photo: Photo) -> Result<i64, facereko_web::EnrolError> {
        use facereko_web::EnrolError;
        let engine = self.engine.as_ref().ok_or_else(|| {
            EnrolError::Other(format!(
                "the face models are not installed: run `{}` and restart",
                models::INSTALL_COMMAND
            ))
        })?;
        let e = engine.embed(&photo).await.map_err(|e| match e {
            facereko_vision::Error::NoFace { .. } => EnrolError::NoFace,
            facereko_vision::Error::ManyFaces(n) => EnrolError::ManyFaces(n),
            facereko_vision::Error::Image(m) => EnrolError::BadImage(m),
            other => EnrolError::Other(other.to_string()),
        })?;
        let face = self
            .store
            .add_face(person, e.embedding.as_slice(), &self.model, Some(&photo))
            .await
            .map_err(|e| EnrolError::Other(e.to_string()))?;
        if let Some(ix) = &self.indexer {
            ix.index(person, face, &photo).await.map_err(|e| {
                EnrolError::Other(format!(
                    "the face was enrolled, but not indexed into Rekognition collection {}: {e:#}; \
                     run `facereko collection sync`",
                    ix.collection()
                ))
            })?;
        }
        Ok(face)
    }

    async fn delete(&self, face_id: i64) -> Result<(), facereko_web::EnrolError> {
        self.store
            .delete_face(face_id)
            .await
            .map_err(|e| facereko_web::EnrolError::Other(e.to_string()))?;
        if let Some(ix) = &self.indexer {
            ix.forget(face_id).await.map_err(|e| {
                facereko_web::EnrolError::Other(format!(
                    "the face was deleted here, but Rekognition collection {} may still hold it: \
                     {e:#}; run `facereko collection sync`",
                    ix.collection()
                ))
            })?;
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct PhotoArgs {
    /// Where to save the photo.
    #[arg(short, long, default_value = "selfie.jpg")]
    output: PathBuf,
    /// Use the simulated camera even on a Raspberry Pi.
    #[arg(long)]
    simulate: bool,
}

pub async fn photo(data_dir: &Path, config_file: Option<&Path>, a: PhotoArgs) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    let camera = crate::serve::open_camera(&config, a.simulate)?;
    let started = std::time::Instant::now();
    let photo = camera.capture().await.context("taking a photo")?;
    std::fs::write(&a.output, &photo.bytes)
        .with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "saved {} ({} bytes, {} ms, {})",
        a.output.display(),
        photo.bytes.len(),
        started.elapsed().as_millis(),
        camera.describe()
    );
    Ok(())
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["image", "dir", "reembed"]))]
pub struct EnrolArgs {
    /// The person's name (created if new). Not used with --dir, where folder names are the names.
    #[arg(long, required_unless_present_any = ["dir", "reembed"], conflicts_with_all = ["dir", "reembed"])]
    name: Option<String>,
    /// A photo with exactly one face.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Also give the person this card.
    #[arg(long, value_parser = parse_uid, conflicts_with = "dir")]
    card: Option<CardUid>,
    /// Enrol a folder laid out `person name/photo.jpg`.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Re-embed every face enrolled with another engine from its stored photo (after changing
    /// `vision.local_engine`); faces of another model are never compared.
    #[arg(long)]
    reembed: bool,
}

/// The largest photo file `enrol` reads.
const MAX_PHOTO_BYTES: u64 = 32 << 20;

/// Reads an image file as a photo, refusing what is not a regular file of at most [`MAX_PHOTO_BYTES`]
/// (a device or a named pipe is never read) and what is not a JPEG or PNG, before any decoding.
fn read_photo(path: &Path) -> Result<Photo> {
    let bytes = facereko_hardware::files::read_regular_file(path, MAX_PHOTO_BYTES)
        .with_context(|| format!("{} cannot be read", path.display()))?;
    Photo::from_bytes(bytes)
        .with_context(|| format!("{} is neither a JPEG nor a PNG", path.display()))
}

async fn person_for(store: &Store, name: &str) -> Result<(Person, bool)> {
    if let Some(p) = store.person_by_name(name).await? {
        return Ok((p, false));
    }
    let id = store.add_person(name).await?;
    let p = store.person(id).await?.context("the new person vanished")?;
    Ok((p, true))
}

pub async fn enrol(data_dir: &Path, config_file: Option<&Path>, a: EnrolArgs) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    // A photo that cannot be used is refused before the models load.
    let photo = match (&a.dir, &a.image) {
        (None, Some(image)) => Some(read_photo(image)?),
        _ => None,
    };
    let store = open_store(data_dir, config_file).await?;
    let engine = load_engine(&config, data_dir).await?;
    let model = model_id(&config.vision);
    let indexer = crate::rekognition::indexer(&config).await?;
    if a.reembed {
        return crate::models::reembed(&store, &engine, indexer.is_some()).await;
    }
    if let Some(dir) = a.dir {
        return enrol_dir(&store, &engine, &model, indexer.as_deref(), &dir).await;
    }
    let (Some(name), Some(image), Some(photo)) = (a.name, a.image, photo) else {
        bail!("--name and --image are needed (or --dir)");
    };
    let name = name.trim();
    // Refuse a taken card before anything is written.
    if let Some(uid) = &a.card {
        if let Some((_, owner)) = store.lookup_card(uid).await? {
            if owner.name != name {
                bail!("card {uid} already belongs to {}", owner.name);
            }
        }
    }
    let enrolment = engine
        .embed(&photo)
        .await
        .with_context(|| format!("{} cannot be enrolled", image.display()))?;
    let (person, created) = person_for(&store, name).await?;
    let face = store
        .add_face(
            person.id,
            enrolment.embedding.as_slice(),
            &model,
            Some(&photo),
        )
        .await?;
    if let Some(uid) = &a.card {
        if !person.cards.iter().any(|c| &c.uid == uid) {
            store.add_card(person.id, uid, None).await?;
        }
    }
    if let Some(ix) = &indexer {
        ix.index(person.id, face, &photo).await.with_context(|| {
            format!(
                "{} was enrolled (face {face}) but not indexed into Rekognition collection {}; \
                 run `facereko collection sync` once it is reachable",
                person.name,
                ix.collection()
            )
        })?;
        println!("indexed into Rekognition collection {}", ix.collection());
    }
    println!(
        "enrolled a face for {}{} (face {face}, {} ms){}",
        person.name,
        if created { " (new person)" } else { "" },
        enrolment.ms,
        a.card.map_or(String::new(), |c| format!(", card {c}"))
    );
    Ok(())
}

async fn enrol_dir(
    store: &Store,
    engine: &LocalEngine,
    model: &str,
    indexer: Option<&dyn FaceIndexer>,
    dir: &Path,
) -> Result<()> {
    let mut jobs = Vec::new();
    let mut people: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{} cannot be read", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    for p in &people {
        let mut photos: Vec<PathBuf> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| ImageFormat::from_path(f).is_some())
            .collect();
        photos.sort();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        jobs.extend(photos.into_iter().map(|f| (name.clone(), f)));
    }
    if jobs.is_empty() {
        bail!("{} holds no person/photo.jpg", dir.display());
    }
    let (mut ok, mut refused) = (0usize, Vec::new());
    let total = jobs.len();
    for (i, (name, file)) in jobs.into_iter().enumerate() {
        print!(
            "\r[{:>4}/{total}] {:<60}",
            i + 1,
            file.display()
                .to_string()
                .chars()
                .take(60)
                .collect::<String>()
        );
        let _ = std::io::stdout().flush();
        let result = async {
            let photo = read_photo(&file)?;
            let e = engine.embed(&photo).await?;
            let (person, _) = person_for(store, &name).await?;
            let face = store
                .add_face(person.id, e.embedding.as_slice(), model, Some(&photo))
                .await?;
            if let Some(ix) = indexer {
                ix.index(person.id, face, &photo).await.with_context(|| {
                    format!("enrolled as face {face}, but not indexed into Rekognition (run `facereko collection sync`)")
                })?;
            }
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => ok += 1,
            Err(e) => refused.push(format!("{}: {e:#}", file.display())),
        }
    }
    println!("\renrolled {ok} of {total} photos{:<60}", "");
    for r in &refused {
        println!("  refused {r}");
    }
    Ok(())
}
