//! Faces: loading the local engine, and the installer's commands `photo` and `enrol` (`models install`,
//! `eval` and `enrol --reembed` are in [`crate::models`]). Enrolling itself is `facereko_enrol`'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use facereko_domain::{CardUid, ImageFormat, Person, Photo};
use facereko_enrol::FaceEnrolment;
use facereko_store::Store;
use facereko_vision::LocalEngine;

use crate::cli::{open_store, parse_uid};
use crate::config::Config;

/// The web app's enrolments go through the one pipeline; this only maps its errors onto what the pages
/// say (the web crate stays free of face engines).
#[derive(Clone, Debug)]
pub struct WebEnrolment(pub FaceEnrolment);

fn page_error(e: facereko_enrol::Error) -> facereko_web::EnrolError {
    use facereko_enrol::Error;
    use facereko_web::EnrolError;
    match e {
        Error::NoFace { .. } => EnrolError::NoFace,
        Error::ManyFaces(n) => EnrolError::ManyFaces(n),
        Error::BadImage(m) => EnrolError::BadImage(m),
        other => EnrolError::Other(other.to_string()),
    }
}

#[async_trait::async_trait]
impl facereko_web::FaceEnroller for WebEnrolment {
    async fn enrol(
        &self,
        person: facereko_domain::PersonId,
        photo: Photo,
        check_others: bool,
    ) -> Result<i64, facereko_web::EnrolError> {
        let e = self.0.embed(&photo).await.map_err(page_error)?;
        if check_others {
            if let Some(other) = self
                .0
                .resembles_other(person, &e)
                .await
                .map_err(page_error)?
            {
                return Err(facereko_web::EnrolError::LooksLike {
                    name: other.name,
                    similarity: other.similarity,
                    threshold: other.threshold,
                });
            }
        }
        let done = self.0.keep(person, &e, &photo).await.map_err(page_error)?;
        Ok(done.face_id)
    }

    async fn delete(&self, face_id: i64) -> Result<(), facereko_web::EnrolError> {
        self.0.delete(face_id).await.map_err(page_error)
    }
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
    let camera = crate::devices::open_camera(&config, a.simulate)?;
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
    let bytes = facereko_files::read_regular_file(path, MAX_PHOTO_BYTES)
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
    let result = enrol_into(data_dir, &config, &store, a, photo).await;
    crate::fleet::announce_changes(&config, &store).await;
    result
}

async fn enrol_into(
    data_dir: &Path,
    config: &Config,
    store: &Store,
    a: EnrolArgs,
    photo: Option<Photo>,
) -> Result<()> {
    let store = store.clone();
    let engine = load_engine(config, data_dir).await?;
    let indexer = crate::rekognition::indexer(config).await?;
    let svc = FaceEnrolment::new(store.clone(), Some(engine), indexer);
    if a.reembed {
        return crate::models::reembed(&svc).await;
    }
    if let Some(dir) = a.dir {
        return enrol_dir(&svc, config, &dir).await;
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
    // A photo without exactly one face is refused before the person is created.
    let enrolment = svc
        .embed(&photo)
        .await
        .with_context(|| format!("{} cannot be enrolled", image.display()))?;
    let (person, created) = person_for(&store, name).await?;
    let kept = svc.keep(person.id, &enrolment, &photo).await;
    if let Some(uid) = &a.card {
        if !person.cards.iter().any(|c| &c.uid == uid) {
            store.add_card(person.id, uid, None).await?;
            let card = format!("card {}", uid.masked());
            crate::cli::audit(&store, config, "card.add", &person.name, card).await;
        }
    }
    let done = kept.with_context(|| format!("enrolling {}", person.name))?;
    if created {
        crate::cli::audit(&store, config, "person.add", &person.name, "").await;
    }
    crate::cli::audit(
        &store,
        config,
        "face.add",
        &person.name,
        format!("face #{} from {}", done.face_id, image.display()),
    )
    .await;
    if let Some(ix) = svc.indexer() {
        println!("indexed into Rekognition collection {}", ix.collection());
    }
    println!(
        "enrolled a face for {}{} (face {}, {} ms){}",
        person.name,
        if created { " (new person)" } else { "" },
        done.face_id,
        done.ms,
        a.card.map_or(String::new(), |c| format!(", card {c}"))
    );
    Ok(())
}

async fn enrol_dir(svc: &FaceEnrolment, config: &Config, dir: &Path) -> Result<()> {
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
            let e = svc.embed(&photo).await?;
            let (person, _) = person_for(svc.store(), &name).await?;
            svc.keep(person.id, &e, &photo).await?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => ok += 1,
            Err(e) => refused.push(format!("{}: {e:#}", file.display())),
        }
    }
    println!("\renrolled {ok} of {total} photos{:<60}", "");
    if ok > 0 {
        let detail = format!(
            "{ok} of {total} photos from the folder {} (one person per sub-folder)",
            dir.display()
        );
        crate::cli::audit(svc.store(), config, "face.add", "several people", detail).await;
    }
    for r in &refused {
        println!("  refused {r}");
    }
    Ok(())
}
