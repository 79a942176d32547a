//! `facereko export FILE` and `facereko import FILE`: the people directory — people, their cards and
//! their enrolled faces with photos — moved to another door, or kept across a reinstall.
//!
//! Unlike `backup`, which copies the whole SQLite database, this is a portable, readable file that any
//! backend can import into a directory that already has people. A gzip'd tar of:
//!
//! - `MANIFEST.json`: `format` (`"facereko-people"`), `version` ([`VERSION`]), `created`, the writing
//!   `facereko` version, its `door_id` and face `model_id`, and the `counts` of people, cards, faces and
//!   photos (checked against the files, so a cut-short archive is refused);
//! - `people.csv`: `name,active,valid_from,valid_until,schedule` (RFC 3339 times, the schedule as the
//!   JSON `people list --json` shows, empty for "any time");
//! - `cards.csv`: `person,uid,label,active` (`uid` as `04:A2:2B:19`);
//! - `faces.csv`: `person,photo,model_id,embedding` (`photo` a file name in `photos/`, or empty; the
//!   embedding as base64 of little-endian `f32`s, as the store keeps it);
//! - `photos/`: the enrolment photos, JPEG or PNG.
//!
//! The one design decision a newcomer must know: **an import validates the whole archive and plans
//! every change before its first write.** The archive is unpacked into a staging folder with every member
//! checked (known names only, no links, no `..`, bounded sizes), the CSVs and the manifest are parsed and
//! cross-checked, every photo is read, and the plan is made against the store; a defect anywhere is one
//! error and nothing is written. `--dry-run` stops after the plan and prints the same report. The store
//! offers no transaction across people, cards and faces, so a database failure *during* the writes can
//! leave part of an import behind: the report then says so, and running the same import again with
//! `--update` completes it (cards the person already holds and faces whose photo or embedding is already
//! enrolled are recognised, not added twice).
//!
//! Import rules: a person is matched by exact name. A new person is added with their cards and faces; an
//! existing one is left alone ("exists, skipped", cards and faces included) unless `--update`, which sets
//! the enabled flag, validity and schedule from the archive and adds what is new. Nothing is ever
//! removed. A card whose UID belongs to *another* person here is a conflict: reported and skipped, never
//! moved. A face of the model this door uses is imported with its embedding. A face of another model is
//! embedded again from its photo when the configured local engine loads (a photo with no usable face is
//! reported unusable); without the models it is kept with its photo and model id, which the gallery
//! ignores, for `facereko enrol --reembed` once the models are installed ("needs re-enrolment"). A
//! foreign-model face without a photo cannot be used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use facereko_domain::{CardUid, Person, PersonId, Photo, WeeklySchedule};
use facereko_enrol::FaceEnrolment;
use facereko_store::{FaceRecord, Store};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::cli::open_store;
use crate::config::Config;

/// What `MANIFEST.json` says the archive is.
const FORMAT: &str = "facereko-people";
/// The archive layout this binary writes and reads; an archive of another version is refused.
pub const VERSION: u32 = 1;

const MANIFEST: &str = "MANIFEST.json";
const PEOPLE: &str = "people.csv";
const CARDS: &str = "cards.csv";
const FACES: &str = "faces.csv";
const PHOTOS: &str = "photos";

const PEOPLE_COLUMNS: [&str; 5] = ["name", "active", "valid_from", "valid_until", "schedule"];
const CARDS_COLUMNS: [&str; 4] = ["person", "uid", "label", "active"];
const FACES_COLUMNS: [&str; 4] = ["person", "photo", "model_id", "embedding"];

/// The largest `MANIFEST.json`.
const MAX_MANIFEST_BYTES: u64 = 64 << 10;
/// The largest CSV file (tens of thousands of people with a face each fit several times over).
const MAX_CSV_BYTES: u64 = 64 << 20;
/// The largest photo, as `facereko enrol` reads.
const MAX_PHOTO_BYTES: u64 = 32 << 20;
/// All members together, unpacked: a gzip bomb stops here.
const MAX_TOTAL_BYTES: u64 = 8 << 30;
/// Members of one archive (directories included).
const MAX_MEMBERS: usize = 200_000;
/// The longest photo file name.
const MAX_PHOTO_NAME: usize = 100;
/// The longest card label the store keeps.
const MAX_LABEL_CHARS: usize = 100;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The archive to write (a new file; `.tar.gz` by convention). It holds photos and card UIDs: it is
    /// written readable by its owner only.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// An archive written by `facereko export`.
    pub file: PathBuf,
    /// Check the archive and print what an import would do; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Update people who already exist here (enabled, validity, schedule) and give them the archive's new
    /// cards and faces; without it they are skipped.
    #[arg(long)]
    pub update: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    version: u32,
    created: DateTime<Utc>,
    /// The `facereko` version that wrote it.
    facereko: String,
    door_id: String,
    /// The face model of the exporting door.
    model_id: String,
    counts: Counts,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counts {
    people: usize,
    cards: usize,
    faces: usize,
    photos: usize,
}

// ---------------------------------------------------------------------------------------------- export

pub async fn export(data_dir: &Path, config_file: Option<&Path>, a: ExportArgs) -> Result<()> {
    if a.file.exists() {
        bail!("{} already exists: name a new file", a.file.display());
    }
    let (config, _) = Config::load(config_file, data_dir)?;
    let store = open_store(data_dir, config_file).await?;
    let people = store.list_people().await?;
    let faces = store.faces(None).await?;
    let names: HashMap<PersonId, &str> = people.iter().map(|p| (p.id, p.name.as_str())).collect();

    let dir = match a.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let partial = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    let mut counts = Counts::default();
    let mut people_csv = csv::record(&PEOPLE_COLUMNS);
    for p in &people {
        counts.people += 1;
        let schedule = match &p.schedule {
            Some(s) => serde_json::to_string(s)?,
            None => String::new(),
        };
        people_csv.push_str(&csv::record(&[
            &p.name,
            bool_text(p.active),
            &time_text(p.valid_from),
            &time_text(p.valid_until),
            &schedule,
        ]));
    }
    let mut cards_csv = csv::record(&CARDS_COLUMNS);
    for p in &people {
        for c in &p.cards {
            counts.cards += 1;
            cards_csv.push_str(&csv::record(&[
                &p.name,
                &c.uid.to_string(),
                c.label.as_deref().unwrap_or(""),
                bool_text(c.active),
            ]));
        }
    }
    let mut faces_csv = csv::record(&FACES_COLUMNS);
    let mut without_photo = 0usize;
    {
        let gz = GzEncoder::new(partial.as_file(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        // Photos are streamed into the archive as they are read; the CSVs and the manifest, which
        // depend on which photos could be read, follow them (an import reads members in any order).
        for f in &faces {
            let Some(name) = names.get(&f.person_id) else {
                continue; // the person was deleted while we read
            };
            let photo = match &f.photo {
                Some(rel) => match store.read_photo(rel).await {
                    Ok(photo) => Some(photo),
                    Err(e) => {
                        eprintln!(
                            "warning: face {} of {name}: its photo cannot be read ({e}); exported \
                             without it",
                            f.id
                        );
                        None
                    }
                },
                None => None,
            };
            let file_name = match photo {
                Some(photo) => {
                    let file_name = format!("face-{}.{}", f.id, photo.format.extension());
                    append(&mut tar, &format!("{PHOTOS}/{file_name}"), &photo.bytes)?;
                    counts.photos += 1;
                    file_name
                }
                None => {
                    without_photo += 1;
                    String::new()
                }
            };
            counts.faces += 1;
            faces_csv.push_str(&csv::record(&[
                name,
                &file_name,
                &f.model_id,
                &base64::encode(&embedding_bytes(&f.embedding)),
            ]));
        }
        append(&mut tar, PEOPLE, people_csv.as_bytes())?;
        append(&mut tar, CARDS, cards_csv.as_bytes())?;
        append(&mut tar, FACES, faces_csv.as_bytes())?;
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            created: Utc::now(),
            facereko: env!("CARGO_PKG_VERSION").into(),
            door_id: config.door_id.to_string(),
            model_id: config.vision.model_id(),
            counts,
        };
        append(&mut tar, MANIFEST, &serde_json::to_vec_pretty(&manifest)?)?;
        tar.into_inner()?.finish()?;
    }
    store.close().await;
    partial.as_file().sync_all()?;
    partial
        .persist_noclobber(&a.file)
        .with_context(|| format!("writing {}", a.file.display()))?;
    println!(
        "exported {} people, {} cards and {} faces ({} photos) to {}",
        counts.people,
        counts.cards,
        counts.faces,
        counts.photos,
        a.file.display()
    );
    if without_photo > 0 {
        println!(
            "{without_photo} faces have no photo: a door with another face model cannot use them"
        );
    }
    Ok(())
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(Utc::now().timestamp().max(0) as u64);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
        .with_context(|| format!("writing {name} into the archive"))
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn time_text(t: Option<DateTime<Utc>>) -> String {
    t.map_or(String::new(), |t| {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    })
}

fn embedding_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------- import

pub async fn import(data_dir: &Path, config_file: Option<&Path>, a: ImportArgs) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    let expected = Expected {
        model_id: config.vision.model_id(),
        dim: config.vision.local_engine.embedding_dim(),
    };
    std::fs::create_dir_all(data_dir)?;
    // Staged beside the database, not in /tmp: on a Raspberry Pi /tmp may be memory.
    let staging = tempfile::tempdir_in(data_dir)
        .with_context(|| format!("a staging folder in {}", data_dir.display()))?;
    let archive = read_archive(&a.file, staging.path(), &expected).with_context(|| {
        format!(
            "{} cannot be imported; nothing was changed",
            a.file.display()
        )
    })?;

    let store = open_store(data_dir, config_file).await?;
    let mut engine = EngineSlot::new(&config, data_dir, &store);
    let plan = make_plan(&store, &archive, &expected, a.update, &mut engine)
        .await
        .with_context(|| {
            format!(
                "planning the import of {}; nothing was changed",
                a.file.display()
            )
        })?;
    let mut report = plan.report(&archive, a.dry_run);
    if let Some(note) = engine.note() {
        report.notes.push(note);
    }
    if !a.dry_run {
        let written = apply(&store, &archive, &plan, &expected.model_id).await;
        if report.writes() {
            crate::fleet::announce_changes(&config, &store).await;
            let outcome = if written.is_ok() {
                ""
            } else {
                " (stopped part-way)"
            };
            let detail = format!(
                "people {} added, {} updated; cards {} added, {} updated, {} conflicting; faces {} \
                 added, {} re-computed{outcome}",
                report.people.added,
                report.people.updated,
                report.cards.added,
                report.cards.updated,
                report.cards.conflicting,
                report.faces.added + report.faces.needs_reenrolment,
                report.faces.recomputed,
            );
            let target = a.file.display().to_string();
            crate::cli::audit(&store, &config, "person.import", &target, detail).await;
        }
        if let Err((done, e)) = written {
            return Err(e.context(format!(
                "the import of {} stopped after {done} of {} people; the same import with `--update` \
                 completes it",
                a.file.display(),
                plan.people.len()
            )));
        }
        if config.vision.engine == facereko_vision::EngineKind::Rekognition
            && report.faces.added + report.faces.recomputed > 0
        {
            report.notes.push(
                "the imported faces are not in the Rekognition collection yet: run `facereko \
                 collection sync`"
                    .into(),
            );
        }
    }
    store.close().await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// What this door's faces are: embeddings of another model are never compared with its own.
#[derive(Debug)]
struct Expected {
    model_id: String,
    dim: usize,
}

/// A person as the archive has them.
#[derive(Clone, Debug, PartialEq)]
struct PersonRow {
    name: String,
    active: bool,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    schedule: Option<WeeklySchedule>,
}

#[derive(Clone, Debug, PartialEq)]
struct CardRow {
    person: String,
    uid: CardUid,
    label: Option<String>,
    active: bool,
}

#[derive(Clone, Debug, PartialEq)]
struct FaceRow {
    person: String,
    /// A file name in the staging folder's `photos/`, checked to be there and a JPEG or PNG.
    photo: Option<String>,
    model_id: String,
    embedding: Vec<f32>,
}

/// A checked archive: its rows, and its photos on disk in the staging folder.
#[derive(Debug)]
struct Archive {
    manifest: Manifest,
    people: Vec<PersonRow>,
    cards: Vec<CardRow>,
    faces: Vec<FaceRow>,
    photos_dir: PathBuf,
}

impl Archive {
    fn photo(&self, name: &str) -> Result<Photo> {
        let path = self.photos_dir.join(name);
        let bytes = facereko_files::read_regular_file(&path, MAX_PHOTO_BYTES)
            .with_context(|| format!("reading {PHOTOS}/{name} from the staging folder"))?;
        Photo::from_bytes(bytes)
            .with_context(|| format!("{PHOTOS}/{name} is neither a JPEG nor a PNG"))
    }
}

/// Unpacks `file` into `staging` and checks everything in it; the first defect is the error.
fn read_archive(file: &Path, staging: &Path, expected: &Expected) -> Result<Archive> {
    let meta = std::fs::metadata(file).with_context(|| format!("opening {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", file.display());
    }
    let reader = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let photos_dir = staging.join(PHOTOS);
    std::fs::create_dir(&photos_dir)?;
    let mut tar = tar::Archive::new(GzDecoder::new(reader));
    let entries = tar
        .entries()
        .context("not a gzip'd tar archive (written by `facereko export`)")?;
    let mut texts: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut photos: BTreeSet<String> = BTreeSet::new();
    let (mut members, mut total) = (0usize, 0u64);
    for entry in entries {
        let mut e = entry.context("not a readable gzip'd tar archive")?;
        members += 1;
        if members > MAX_MEMBERS {
            bail!("it holds more than {MAX_MEMBERS} members");
        }
        let path = e
            .path()
            .context("a member's name cannot be read")?
            .into_owned();
        let member = Member::of(&path)?;
        let kind = e.header().entry_type();
        if member == Member::PhotosDir {
            if !kind.is_dir() {
                bail!("{PHOTOS} is not a folder");
            }
            continue;
        }
        if !kind.is_file() {
            bail!(
                "{} is a {kind:?} entry; an export holds plain files only",
                path.display()
            );
        }
        let limit = member.limit();
        let size = e
            .header()
            .size()
            .context("a member's size cannot be read")?;
        if size > limit {
            bail!(
                "{} is {size} bytes; at most {limit} are accepted",
                path.display()
            );
        }
        total += size;
        if total > MAX_TOTAL_BYTES {
            bail!("it unpacks to more than {MAX_TOTAL_BYTES} bytes");
        }
        // Read at most one byte past the limit whatever the header claims.
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut e)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", path.display()))?;
        if bytes.len() as u64 > limit {
            bail!("{} is larger than {limit} bytes", path.display());
        }
        match member {
            Member::Text(name) => {
                let text =
                    String::from_utf8(bytes).map_err(|_| anyhow!("{name} is not UTF-8 text"))?;
                if texts.insert(name, text).is_some() {
                    bail!("it holds {name} twice");
                }
            }
            Member::Photo(name) => {
                if !photos.insert(name.clone()) {
                    bail!("it holds {PHOTOS}/{name} twice");
                }
                let mut out = File::create_new(photos_dir.join(&name))
                    .with_context(|| format!("staging {PHOTOS}/{name}"))?;
                out.write_all(&bytes)
                    .with_context(|| format!("staging {PHOTOS}/{name}"))?;
            }
            Member::PhotosDir => unreachable!("handled above"),
        }
    }
    let mut take = |name: &'static str| {
        texts.remove(name).ok_or_else(|| {
            anyhow!("it holds no {name}: not an archive written by `facereko export`")
        })
    };
    let manifest = parse_manifest(&take(MANIFEST)?)?;
    let people = parse_people(&take(PEOPLE)?).with_context(|| format!("in {PEOPLE}"))?;
    let cards = parse_cards(&take(CARDS)?).with_context(|| format!("in {CARDS}"))?;
    let faces = parse_faces(&take(FACES)?, expected).with_context(|| format!("in {FACES}"))?;

    let found = Counts {
        people: people.len(),
        cards: cards.len(),
        faces: faces.len(),
        photos: photos.len(),
    };
    if found != manifest.counts {
        bail!(
            "{MANIFEST} promises {:?} but the archive holds {found:?}: it is incomplete or was altered",
            manifest.counts
        );
    }
    let names: BTreeSet<String> = people.iter().map(|p| p.name.clone()).collect();
    let mut uids = BTreeSet::new();
    for c in &cards {
        if !names.contains(&c.person) {
            bail!(
                "{CARDS}: card {} belongs to {:?}, who is not in {PEOPLE}",
                c.uid,
                c.person
            );
        }
        if !uids.insert(&c.uid) {
            bail!("{CARDS}: card {} is listed twice", c.uid);
        }
    }
    let archive = Archive {
        manifest,
        people,
        cards,
        faces,
        photos_dir,
    };
    for f in &archive.faces {
        if !names.contains(&f.person) {
            bail!(
                "{FACES}: a face belongs to {:?}, who is not in {PEOPLE}",
                f.person
            );
        }
        if let Some(name) = &f.photo {
            if !photos.contains(name) {
                bail!(
                    "{FACES}: photo {PHOTOS}/{name} of {} is missing from the archive",
                    f.person
                );
            }
            archive.photo(name)?;
        }
    }
    Ok(archive)
}

/// The members an export has; anything else is refused.
#[derive(Debug, PartialEq, Eq)]
enum Member {
    Text(&'static str),
    PhotosDir,
    Photo(String),
}

impl Member {
    fn of(path: &Path) -> Result<Member> {
        let refuse = || {
            anyhow!(
                "it holds {:?}, which no export has (only {MANIFEST}, {PEOPLE}, {CARDS}, {FACES} and \
                 {PHOTOS}/NAME.jpg|png)",
                path
            )
        };
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_str().ok_or_else(refuse)?),
                Component::CurDir if parts.is_empty() => {}
                _ => return Err(refuse()),
            }
        }
        match parts.as_slice() {
            [one] => [MANIFEST, PEOPLE, CARDS, FACES]
                .into_iter()
                .find(|k| k == one)
                .map(Member::Text)
                .or((*one == PHOTOS).then_some(Member::PhotosDir))
                .ok_or_else(refuse),
            [dir, name] if *dir == PHOTOS && safe_photo_name(name) => {
                Ok(Member::Photo((*name).to_string()))
            }
            _ => Err(refuse()),
        }
    }

    fn limit(&self) -> u64 {
        match self {
            Member::Text(MANIFEST) => MAX_MANIFEST_BYTES,
            Member::Text(_) => MAX_CSV_BYTES,
            Member::Photo(_) | Member::PhotosDir => MAX_PHOTO_BYTES,
        }
    }
}

/// A photo's file name: letters, digits, `.`, `_`, `-`, not starting with a dot, ending `.jpg`, `.jpeg`
/// or `.png` — never a path.
fn safe_photo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PHOTO_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && [".jpg", ".jpeg", ".png"]
            .iter()
            .any(|ext| name.to_ascii_lowercase().ends_with(ext))
}

fn parse_manifest(text: &str) -> Result<Manifest> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{MANIFEST} is not JSON"))?;
    if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
        bail!("{MANIFEST} does not describe a people export (format {FORMAT:?})");
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) if v > u64::from(VERSION) => bail!(
            "{MANIFEST}: format version {v} is newer than this facereko reads ({VERSION}): upgrade \
             facereko on this door"
        ),
        other => bail!("{MANIFEST}: format version {other:?} is not {VERSION}"),
    }
    serde_json::from_value(value).with_context(|| format!("{MANIFEST} is not valid"))
}

/// A CSV file's records after its header, which must be exactly `columns`; each with its line number.
fn records(text: &str, columns: &[&str]) -> Result<Vec<(usize, Vec<String>)>> {
    let mut rows = csv::parse(text).map_err(|e| anyhow!(e))?.into_iter();
    let Some((_, header)) = rows.next() else {
        bail!("the header line is missing");
    };
    if header != columns {
        bail!(
            "the header is {:?}; this version reads {:?}",
            header.join(","),
            columns.join(",")
        );
    }
    rows.map(|(line, fields)| {
        if fields.len() != columns.len() {
            bail!(
                "line {line}: {} fields; {} expected ({})",
                fields.len(),
                columns.len(),
                columns.join(",")
            );
        }
        Ok((line, fields))
    })
    .collect()
}

fn parse_people(text: &str) -> Result<Vec<PersonRow>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (line, f) in records(text, &PEOPLE_COLUMNS)? {
        let at = |e: anyhow::Error| e.context(format!("line {line}"));
        let name = person_name(&f[0]).map_err(at)?;
        if !seen.insert(name.clone()) {
            bail!("line {line}: {name:?} is listed twice");
        }
        let schedule = if f[4].trim().is_empty() {
            None
        } else {
            let s: WeeklySchedule = serde_json::from_str(&f[4])
                .with_context(|| format!("line {line}: the schedule is not valid"))?;
            check_schedule(&s).map_err(at)?;
            Some(s)
        };
        out.push(PersonRow {
            active: parse_bool(&f[1]).map_err(at)?,
            valid_from: parse_time(&f[2]).map_err(at)?,
            valid_until: parse_time(&f[3]).map_err(at)?,
            schedule,
            name,
        });
    }
    Ok(out)
}

fn parse_cards(text: &str) -> Result<Vec<CardRow>> {
    records(text, &CARDS_COLUMNS)?
        .into_iter()
        .map(|(line, f)| {
            let at = |e: anyhow::Error| e.context(format!("line {line}"));
            let label = f[2].trim();
            if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
                bail!("line {line}: a card label has at most {MAX_LABEL_CHARS} characters and no control characters");
            }
            Ok(CardRow {
                person: person_name(&f[0]).map_err(at)?,
                uid: f[1]
                    .parse()
                    .map_err(|e: facereko_domain::Error| anyhow!("line {line}: {e}"))?,
                label: (!label.is_empty()).then(|| label.to_string()),
                active: parse_bool(&f[3]).map_err(at)?,
            })
        })
        .collect()
}

fn parse_faces(text: &str, expected: &Expected) -> Result<Vec<FaceRow>> {
    records(text, &FACES_COLUMNS)?
        .into_iter()
        .map(|(line, f)| {
            let at = |e: anyhow::Error| e.context(format!("line {line}"));
            let photo = match f[1].as_str() {
                "" => None,
                name if safe_photo_name(name) => Some(name.to_string()),
                name => bail!("line {line}: {name:?} is not a photo file name"),
            };
            let model_id = f[2].trim().to_string();
            if model_id.is_empty() || model_id.len() > 128 || model_id.chars().any(char::is_control)
            {
                bail!("line {line}: the model id must have 1 to 128 characters");
            }
            let bytes = base64::decode(&f[3])
                .map_err(|e| anyhow!("line {line}: the embedding is not base64: {e}"))?;
            facereko_vision::Embedding::from_le_bytes(&bytes)
                .map_err(|e| anyhow!("line {line}: the embedding is not usable: {e}"))?;
            let embedding: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if model_id == expected.model_id && embedding.len() != expected.dim {
                bail!(
                    "line {line}: an embedding of model {model_id} has {} values, not {}",
                    embedding.len(),
                    expected.dim
                );
            }
            Ok(FaceRow {
                person: person_name(&f[0]).map_err(at)?,
                photo,
                model_id,
                embedding,
            })
        })
        .collect()
}

/// A person's name as the store accepts it (trimmed, 1–100 characters, no control characters), checked
/// here so that no write fails on it half-way.
fn person_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        bail!("a person's name is empty");
    }
    if name.chars().count() > facereko_store::MAX_NAME_CHARS {
        bail!(
            "a person's name has at most {} characters",
            facereko_store::MAX_NAME_CHARS
        );
    }
    if name.chars().any(char::is_control) {
        bail!("a person's name cannot contain control characters");
    }
    Ok(name.to_string())
}

fn parse_bool(s: &str) -> Result<bool> {
    match s.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => bail!("{other:?} is neither true nor false"),
    }
}

fn parse_time(s: &str) -> Result<Option<DateTime<Utc>>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| anyhow!("{s:?} is not an RFC 3339 time: {e}"))
}

fn check_schedule(s: &WeeklySchedule) -> Result<()> {
    for w in &s.windows {
        if w.days.is_empty() || w.days.iter().any(|d| !(1..=7).contains(d)) {
            bail!("a schedule window's days are numbers from 1 (Monday) to 7 (Sunday)");
        }
        if w.start_minute > 1439 || !(1..=1440).contains(&w.end_minute) {
            bail!("a schedule window runs from minute 0–1439 to minute 1–1440");
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------ plan

/// What the import does to one person of the archive (same order as the archive's rows).
#[derive(Debug)]
struct PersonPlan {
    row: usize,
    action: PersonAction,
    cards: Vec<(usize, CardAction)>,
    faces: Vec<(usize, FaceAction)>,
}

#[derive(Debug)]
enum PersonAction {
    Add,
    /// An existing person; `changed` when the archive's fields differ.
    Update {
        existing: Person,
        changed: bool,
    },
    Skip,
}

#[derive(Debug, PartialEq)]
enum CardAction {
    Add,
    SetActive,
    Unchanged,
    /// Owned here by the named person.
    Conflict(String),
    Skip,
}

#[derive(Debug, PartialEq)]
enum FaceAction {
    /// Same model: the archive's embedding.
    Add,
    /// Embedded again from the photo with this door's engine.
    Recompute(Vec<f32>),
    /// Another model and no engine: kept with its model id, for `enrol --reembed`.
    KeepForReembed,
    Unusable(String),
    AlreadyPresent,
    Skip,
}

#[derive(Debug)]
struct Plan {
    people: Vec<PersonPlan>,
}

/// The configured local engine, loaded the first time a face of another model needs it.
struct EngineSlot<'a> {
    config: &'a Config,
    data_dir: &'a Path,
    store: &'a Store,
    state: Option<std::result::Result<FaceEnrolment, String>>,
}

impl std::fmt::Debug for EngineSlot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSlot").finish_non_exhaustive()
    }
}

impl<'a> EngineSlot<'a> {
    fn new(config: &'a Config, data_dir: &'a Path, store: &'a Store) -> Self {
        Self {
            config,
            data_dir,
            store,
            state: None,
        }
    }

    async fn get(&mut self) -> Option<&FaceEnrolment> {
        if self.state.is_none() {
            let loaded = crate::faces::load_engine(self.config, self.data_dir)
                .await
                .map(|engine| FaceEnrolment::new(self.store.clone(), Some(engine), None))
                .map_err(|e| format!("{e:#}"));
            self.state = Some(loaded);
        }
        self.state.as_ref().and_then(|s| s.as_ref().ok())
    }

    fn note(&self) -> Option<String> {
        match &self.state {
            Some(Err(e)) => Some(format!(
                "faces of other models were not embedded again because the face engine did not load \
                 ({e}); they are kept with their photos for `facereko enrol --reembed`"
            )),
            _ => None,
        }
    }
}

async fn make_plan(
    store: &Store,
    archive: &Archive,
    expected: &Expected,
    update: bool,
    engine: &mut EngineSlot<'_>,
) -> Result<Plan> {
    let mut people = Vec::new();
    for (i, row) in archive.people.iter().enumerate() {
        let action = match store.person_by_name(&row.name).await? {
            None => PersonAction::Add,
            Some(_) if !update => PersonAction::Skip,
            Some(existing) => {
                let changed = existing.active != row.active
                    || existing.valid_from != row.valid_from
                    || existing.valid_until != row.valid_until
                    || existing.schedule != row.schedule;
                PersonAction::Update { existing, changed }
            }
        };
        let mut cards = Vec::new();
        for (j, c) in archive.cards.iter().enumerate() {
            if c.person != row.name {
                continue;
            }
            if matches!(action, PersonAction::Skip) {
                cards.push((j, CardAction::Skip));
                continue;
            }
            let a = match (&action, store.lookup_card(&c.uid).await?) {
                (_, None) => CardAction::Add,
                (PersonAction::Update { existing, .. }, Some((card, owner)))
                    if owner.id == existing.id =>
                {
                    if card.active == c.active {
                        CardAction::Unchanged
                    } else {
                        CardAction::SetActive
                    }
                }
                (_, Some((_, owner))) => CardAction::Conflict(owner.name),
            };
            cards.push((j, a));
        }
        let present = match &action {
            PersonAction::Update { existing, .. } => Present::load(store, existing.id).await?,
            _ => Present::default(),
        };
        let mut faces = Vec::new();
        for (j, f) in archive.faces.iter().enumerate() {
            if f.person != row.name {
                continue;
            }
            if matches!(action, PersonAction::Skip) {
                faces.push((j, FaceAction::Skip));
                continue;
            }
            let photo = f.photo.as_deref().map(|p| archive.photo(p)).transpose()?;
            if present.has(f, photo.as_ref()) {
                faces.push((j, FaceAction::AlreadyPresent));
                continue;
            }
            let a = if f.model_id == expected.model_id {
                FaceAction::Add
            } else if let Some(photo) = &photo {
                match engine.get().await {
                    None => FaceAction::KeepForReembed,
                    Some(svc) => match svc.embed(photo).await {
                        Ok(e) => {
                            let v = e.embedding.into_vec();
                            if present.has_embedding(&expected.model_id, &v) {
                                FaceAction::AlreadyPresent
                            } else {
                                FaceAction::Recompute(v)
                            }
                        }
                        Err(
                            e @ (facereko_enrol::Error::NoFace { .. }
                            | facereko_enrol::Error::ManyFaces(_)
                            | facereko_enrol::Error::BadImage(_)),
                        ) => FaceAction::Unusable(e.to_string()),
                        Err(e) => {
                            return Err(anyhow::Error::from(e).context(format!(
                                "embedding {PHOTOS}/{} of {}",
                                f.photo.as_deref().unwrap_or_default(),
                                f.person
                            )))
                        }
                    },
                }
            } else {
                FaceAction::Unusable(format!(
                    "an embedding of model {} without a photo to embed again with {}",
                    f.model_id, expected.model_id
                ))
            };
            faces.push((j, a));
        }
        people.push(PersonPlan {
            row: i,
            action,
            cards,
            faces,
        });
    }
    Ok(Plan { people })
}

/// A person's faces already enrolled here: a face of the archive is not added twice.
#[derive(Debug, Default)]
struct Present {
    faces: Vec<FaceRecord>,
    photos: Vec<Vec<u8>>,
}

impl Present {
    async fn load(store: &Store, person: PersonId) -> Result<Present> {
        let faces = store.faces(Some(person)).await?;
        let mut photos = Vec::new();
        for f in &faces {
            if let Some(rel) = &f.photo {
                // A photo that cannot be read here cannot be compared; the embedding still can.
                if let Ok(p) = store.read_photo(rel).await {
                    photos.push(p.bytes);
                }
            }
        }
        Ok(Present { faces, photos })
    }

    fn has(&self, f: &FaceRow, photo: Option<&Photo>) -> bool {
        photo.is_some_and(|p| self.photos.contains(&p.bytes))
            || self.has_embedding(&f.model_id, &f.embedding)
    }

    fn has_embedding(&self, model_id: &str, v: &[f32]) -> bool {
        self.faces
            .iter()
            .any(|r| r.model_id == model_id && r.embedding == v)
    }
}

// ----------------------------------------------------------------------------------------------- apply

/// Carries out the plan; on failure, how many people were done and the error.
async fn apply(
    store: &Store,
    archive: &Archive,
    plan: &Plan,
    model_id: &str,
) -> std::result::Result<(), (usize, anyhow::Error)> {
    for (done, p) in plan.people.iter().enumerate() {
        apply_person(store, archive, p, model_id)
            .await
            .map_err(|e| (done, e))?;
    }
    Ok(())
}

/// `model_id`: this door's, which re-computed embeddings are stored under.
async fn apply_person(
    store: &Store,
    archive: &Archive,
    p: &PersonPlan,
    model_id: &str,
) -> Result<()> {
    let row = &archive.people[p.row];
    let with_fields = |id: PersonId| Person {
        id,
        name: row.name.clone(),
        active: row.active,
        valid_from: row.valid_from,
        valid_until: row.valid_until,
        schedule: row.schedule.clone(),
        // Not saved by `update_person`: an import leaves group membership as it is here.
        group: None,
        holidays: Vec::new(),
        cards: Vec::new(),
    };
    let id = match &p.action {
        PersonAction::Skip => return Ok(()),
        PersonAction::Add => {
            let id = store
                .add_person(&row.name)
                .await
                .with_context(|| format!("adding {}", row.name))?;
            let defaults = PersonRow {
                name: row.name.clone(),
                active: true,
                valid_from: None,
                valid_until: None,
                schedule: None,
            };
            if *row != defaults {
                store
                    .update_person(&with_fields(id))
                    .await
                    .with_context(|| format!("updating {}", row.name))?;
            }
            id
        }
        PersonAction::Update { existing, changed } => {
            if *changed {
                store
                    .update_person(&with_fields(existing.id))
                    .await
                    .with_context(|| format!("updating {}", row.name))?;
            }
            existing.id
        }
    };
    for (j, action) in &p.cards {
        let c = &archive.cards[*j];
        let done = match action {
            CardAction::Add => {
                store.add_card(id, &c.uid, c.label.as_deref()).await?;
                if !c.active {
                    store.set_card_active(&c.uid, false).await?;
                }
                Ok(())
            }
            CardAction::SetActive => store.set_card_active(&c.uid, c.active).await,
            CardAction::Unchanged | CardAction::Conflict(_) | CardAction::Skip => Ok(()),
        };
        done.with_context(|| format!("giving card {} to {}", c.uid, row.name))?;
    }
    for (j, action) in &p.faces {
        let f = &archive.faces[*j];
        let (embedding, model) = match action {
            FaceAction::Add | FaceAction::KeepForReembed => (&f.embedding, f.model_id.as_str()),
            FaceAction::Recompute(v) => (v, model_id),
            FaceAction::Unusable(_) | FaceAction::AlreadyPresent | FaceAction::Skip => continue,
        };
        let photo = f.photo.as_deref().map(|p| archive.photo(p)).transpose()?;
        store
            .add_face(id, embedding, model, photo.as_ref())
            .await
            .with_context(|| format!("adding a face of {}", row.name))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------- report

/// What an import did, or with `--dry-run` would do.
#[derive(Debug, Default, Serialize)]
struct Report {
    dry_run: bool,
    /// The archive's manifest: when and where it was written.
    archive: ArchiveInfo,
    people: PeopleCounts,
    cards: CardCounts,
    faces: FaceCounts,
    /// People who exist here and were left alone (no `--update`).
    skipped_people: Vec<String>,
    conflicts: Vec<CardConflict>,
    /// Faces of another model kept for `facereko enrol --reembed`.
    needs_reenrolment: Vec<FaceNote>,
    unusable_faces: Vec<FaceNote>,
    notes: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct ArchiveInfo {
    created: Option<DateTime<Utc>>,
    door_id: String,
    model_id: String,
    facereko: String,
}

#[derive(Debug, Default, Serialize)]
struct PeopleCounts {
    added: usize,
    updated: usize,
    unchanged: usize,
    skipped: usize,
}

#[derive(Debug, Default, Serialize)]
struct CardCounts {
    added: usize,
    /// An existing person's card switched on or off as in the archive.
    updated: usize,
    unchanged: usize,
    conflicting: usize,
    /// Cards of skipped people.
    skipped: usize,
}

#[derive(Debug, Default, Serialize)]
struct FaceCounts {
    added: usize,
    recomputed: usize,
    needs_reenrolment: usize,
    unusable: usize,
    already_present: usize,
    /// Faces of skipped people.
    skipped: usize,
}

#[derive(Debug, Serialize)]
struct CardConflict {
    uid: String,
    /// Who has the card in the archive.
    person: String,
    /// Who has it here.
    owner: String,
}

#[derive(Debug, Serialize)]
struct FaceNote {
    person: String,
    photo: Option<String>,
    model_id: String,
    reason: String,
}

impl Plan {
    fn report(&self, archive: &Archive, dry_run: bool) -> Report {
        let m = &archive.manifest;
        let mut r = Report {
            dry_run,
            archive: ArchiveInfo {
                created: Some(m.created),
                door_id: m.door_id.clone(),
                model_id: m.model_id.clone(),
                facereko: m.facereko.clone(),
            },
            ..Report::default()
        };
        for p in &self.people {
            let name = &archive.people[p.row].name;
            match &p.action {
                PersonAction::Add => r.people.added += 1,
                PersonAction::Update { changed: true, .. } => r.people.updated += 1,
                PersonAction::Update { changed: false, .. } => r.people.unchanged += 1,
                PersonAction::Skip => {
                    r.people.skipped += 1;
                    r.skipped_people.push(name.clone());
                }
            }
            for (j, a) in &p.cards {
                match a {
                    CardAction::Add => r.cards.added += 1,
                    CardAction::SetActive => r.cards.updated += 1,
                    CardAction::Unchanged => r.cards.unchanged += 1,
                    CardAction::Skip => r.cards.skipped += 1,
                    CardAction::Conflict(owner) => {
                        r.cards.conflicting += 1;
                        r.conflicts.push(CardConflict {
                            uid: archive.cards[*j].uid.to_string(),
                            person: name.clone(),
                            owner: owner.clone(),
                        });
                    }
                }
            }
            for (j, a) in &p.faces {
                let f = &archive.faces[*j];
                let note = |reason: String| FaceNote {
                    person: name.clone(),
                    photo: f.photo.as_ref().map(|p| format!("{PHOTOS}/{p}")),
                    model_id: f.model_id.clone(),
                    reason,
                };
                match a {
                    FaceAction::Add => r.faces.added += 1,
                    FaceAction::Recompute(_) => r.faces.recomputed += 1,
                    FaceAction::AlreadyPresent => r.faces.already_present += 1,
                    FaceAction::Skip => r.faces.skipped += 1,
                    FaceAction::KeepForReembed => {
                        r.faces.needs_reenrolment += 1;
                        r.needs_reenrolment.push(note(format!(
                            "model {} is not this door's; kept for `facereko enrol --reembed`",
                            f.model_id
                        )));
                    }
                    FaceAction::Unusable(reason) => {
                        r.faces.unusable += 1;
                        r.unusable_faces.push(note(reason.clone()));
                    }
                }
            }
        }
        r
    }
}

impl Report {
    /// Whether the plan writes anything.
    fn writes(&self) -> bool {
        let (p, c, f) = (&self.people, &self.cards, &self.faces);
        p.added + p.updated + c.added + c.updated + f.added + f.recomputed + f.needs_reenrolment > 0
    }

    fn text(&self) -> String {
        let mut s = String::new();
        let (p, c, f) = (&self.people, &self.cards, &self.faces);
        if self.dry_run {
            s.push_str("dry run: nothing was changed; an import would do this\n");
        }
        let _ = writeln!(
            s,
            "archive: written {} by door {} (model {})",
            self.archive.created.map_or(String::new(), |t| t
                .to_rfc3339_opts(SecondsFormat::Secs, true)),
            self.archive.door_id,
            self.archive.model_id
        );
        let _ = writeln!(
            s,
            "people: {} added, {} updated, {} unchanged, {} skipped",
            p.added, p.updated, p.unchanged, p.skipped
        );
        let _ = writeln!(
            s,
            "cards: {} added, {} updated, {} unchanged, {} conflicting, {} skipped",
            c.added, c.updated, c.unchanged, c.conflicting, c.skipped
        );
        let _ = writeln!(
            s,
            "faces: {} added, {} re-computed, {} need re-enrolment, {} unusable, {} already present, \
             {} skipped",
            f.added, f.recomputed, f.needs_reenrolment, f.unusable, f.already_present, f.skipped
        );
        for name in &self.skipped_people {
            let _ = writeln!(s, "  skipped: {name} exists here (`--update` updates them)");
        }
        for k in &self.conflicts {
            let _ = writeln!(
                s,
                "  conflict: card {} belongs to {} here; not given to {}",
                k.uid, k.owner, k.person
            );
        }
        for n in &self.needs_reenrolment {
            let _ = writeln!(
                s,
                "  needs re-enrolment: a face of {} ({}): {}",
                n.person,
                n.photo.as_deref().unwrap_or("no photo"),
                n.reason
            );
        }
        for n in &self.unusable_faces {
            let _ = writeln!(
                s,
                "  unusable: a face of {} ({}): {}",
                n.person,
                n.photo.as_deref().unwrap_or("no photo"),
                n.reason
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

// ------------------------------------------------------------------------------------------------- csv

/// RFC 4180 CSV, the little of it the archive needs: a field is quoted when it holds a comma, a quote
/// or a line break (or starts or ends with a space), quotes doubled. Written with `\n`, read with `\n`
/// or `\r\n`. Hand-written because this crate reads three small files with fixed columns.
mod csv {
    /// One line of CSV.
    pub(super) fn record(fields: &[&str]) -> String {
        let mut out = String::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let quote = f.contains([',', '"', '\r', '\n'])
                || f.starts_with(char::is_whitespace)
                || f.ends_with(char::is_whitespace);
            if quote {
                out.push('"');
                out.push_str(&f.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(f);
            }
        }
        out.push('\n');
        out
    }

    /// Records with the line each starts on; empty lines are skipped, a UTF-8 byte-order mark is
    /// ignored.
    pub(super) fn parse(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut records = Vec::new();
        let mut chars = text.chars().peekable();
        let mut line = 1usize;
        while chars.peek().is_some() {
            let start = line;
            let mut fields = Vec::new();
            let mut field = String::new();
            let mut quoted_field = false;
            loop {
                match chars.next() {
                    None => {
                        fields.push(std::mem::take(&mut field));
                        break;
                    }
                    Some('\n') => {
                        line += 1;
                        fields.push(std::mem::take(&mut field));
                        break;
                    }
                    Some('\r') if chars.peek() == Some(&'\n') => {}
                    Some(',') => {
                        fields.push(std::mem::take(&mut field));
                        quoted_field = false;
                    }
                    Some('"') if field.is_empty() && !quoted_field => {
                        quoted_field = true;
                        let opened = line;
                        loop {
                            match chars.next() {
                                None => {
                                    return Err(format!(
                                        "line {opened}: a quoted field is never closed"
                                    ))
                                }
                                Some('"') if chars.peek() == Some(&'"') => {
                                    chars.next();
                                    field.push('"');
                                }
                                Some('"') => break,
                                Some(c) => {
                                    if c == '\n' {
                                        line += 1;
                                    }
                                    field.push(c);
                                }
                            }
                        }
                        match chars.peek() {
                            None | Some(',' | '\n' | '\r') => {}
                            Some(_) => {
                                return Err(format!("line {line}: text after a closing quote"))
                            }
                        }
                    }
                    Some('"') => {
                        return Err(format!("line {line}: a quote inside an unquoted field"))
                    }
                    Some(c) if quoted_field => {
                        return Err(format!("line {line}: {c:?} after a closing quote"))
                    }
                    Some(c) => field.push(c),
                }
            }
            let blank = fields.len() == 1 && fields[0].is_empty() && !quoted_field;
            if !blank {
                records.push((start, fields));
            }
        }
        Ok(records)
    }
}

// ---------------------------------------------------------------------------------------------- base64

/// Standard base64 with padding (RFC 4648 §4), strict on reading: the embeddings in `faces.csv`. The
/// workspace's `base64` crate (as the Rekognition collections use it); its standard engine refuses
/// misplaced or missing padding and foreign characters.
mod base64 {
    use ::base64::Engine as _;

    pub(super) fn encode(bytes: &[u8]) -> String {
        ::base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub(super) fn decode(text: &str) -> Result<Vec<u8>, String> {
        ::base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_awkward_fields() {
        let fields = [
            "Ada, Countess",
            "say \"hi\"",
            "two\nlines",
            " padded ",
            "",
            "plain",
        ];
        let text = csv::record(&fields);
        let parsed = csv::parse(&text).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].0, 1);
        assert_eq!(parsed[0].1, fields);
    }

    #[test]
    fn csv_reads_crlf_a_bom_and_counts_lines_across_quoted_breaks() {
        let parsed = csv::parse("\u{feff}a,b\r\n\"x\ny\",z\r\n\r\nlast,\"\"\n").unwrap();
        let lines: Vec<usize> = parsed.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 2, 5]);
        assert_eq!(parsed[1].1, ["x\ny", "z"]);
        assert_eq!(parsed[2].1, ["last", ""]);
    }

    #[test]
    fn csv_refuses_broken_quoting() {
        for bad in ["a,\"open\n", "a,b\"c\n", "\"x\"y,z\n"] {
            assert!(csv::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base64_matches_rfc_4648_vectors_and_is_strict() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64::encode(raw.as_bytes()), enc);
            assert_eq!(base64::decode(enc).unwrap(), raw.as_bytes());
        }
        for bad in ["Zg=", "Zg==Zg==", "Z===", "Zm9v!A==", "Zm 9v"] {
            assert!(base64::decode(bad).is_err(), "{bad:?}");
        }
        let v: Vec<u8> = (0..=255).collect();
        assert_eq!(base64::decode(&base64::encode(&v)).unwrap(), v);
    }

    #[test]
    fn member_names_never_leave_the_staging_folder() {
        for ok in [
            "MANIFEST.json",
            "./people.csv",
            "photos",
            "photos/face-1.jpg",
            "photos/A_b-2.PNG",
        ] {
            assert!(Member::of(Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "../people.csv",
            "/etc/passwd",
            "photos/../../x.jpg",
            "photos/sub/x.jpg",
            "photos/.hidden.jpg",
            "photos/x.exe",
            "photos/x y.jpg",
            "notes.txt",
            "facereko.db",
        ] {
            assert!(Member::of(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_of_another_version_or_kind_is_refused() {
        let good = serde_json::json!({
            "format": FORMAT, "version": VERSION, "created": "2026-01-01T00:00:00Z",
            "facereko": "0.1.0", "door_id": "front", "model_id": "m",
            "counts": {"people": 0, "cards": 0, "faces": 0, "photos": 0}
        });
        assert!(parse_manifest(&good.to_string()).is_ok());
        let mut newer = good.clone();
        newer["version"] = serde_json::json!(VERSION + 1);
        let e = parse_manifest(&newer.to_string()).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
        let mut backup = good.clone();
        backup["format"] = serde_json::json!(1);
        assert!(parse_manifest(&backup.to_string()).is_err());
    }

    #[test]
    fn people_rows_are_checked_before_any_write() {
        let head = "name,active,valid_from,valid_until,schedule\n";
        let ok = format!(
            "{head}Ada,true,2026-01-01T08:00:00Z,,\"{{\"\"windows\"\":[{{\"\"days\"\":[1,2],\
             \"\"start_minute\"\":480,\"\"end_minute\"\":1020}}]}}\"\n"
        );
        let people = parse_people(&ok).unwrap();
        assert_eq!(people[0].schedule.as_ref().unwrap().windows[0].days, [1, 2]);
        for bad in [
            format!("{head}Ada,yes,,,\n"),
            format!("{head}Ada,true,tomorrow,,\n"),
            format!("{head}Ada,true,,,\nAda,false,,,\n"),
            format!("{head} ,true,,,\n"),
            format!("{head}Ada,true,,\n"),
            format!("{head}Ada,true,,,\"{{\"\"windows\"\":[{{\"\"days\"\":[8],\"\"start_minute\"\":0,\"\"end_minute\"\":60}}]}}\"\n"),
            "name,active\nAda,true\n".to_string(),
        ] {
            assert!(parse_people(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_embedding_of_this_model_must_have_its_length() {
        let expected = Expected {
            model_id: "m".into(),
            dim: 3,
        };
        let emb = |v: &[f32]| base64::encode(&embedding_bytes(v));
        let head = "person,photo,model_id,embedding\n";
        let ok = format!(
            "{head}Ada,,m,{}\nAda,,other,{}\n",
            emb(&[1.0, 0.0, 0.0]),
            emb(&[1.0; 5])
        );
        let faces = parse_faces(&ok, &expected).unwrap();
        assert_eq!(faces[0].embedding, [1.0, 0.0, 0.0]);
        assert_eq!(faces[1].embedding.len(), 5);
        for bad in [
            format!("{head}Ada,,m,{}\n", emb(&[1.0, 0.0])),
            format!("{head}Ada,,m,{}\n", emb(&[f32::NAN, 0.0, 0.0])),
            format!("{head}Ada,../x.jpg,m,{}\n", emb(&[1.0, 0.0, 0.0])),
            format!("{head}Ada,,m,not base64\n"),
        ] {
            assert!(parse_faces(&bad, &expected).is_err(), "{bad}");
        }
    }
}
