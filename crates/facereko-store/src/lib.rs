//! FaceReko's storage: people, cards, faces, attempts with their photos, per-door settings, the notifier
//! outbox, and web accounts — over SQLite (embedded default), MySQL/MariaDB or PostgreSQL, picked by the
//! URL scheme.
//!
//! The one decision a newcomer must know: there is no `Any` driver. The SQL is written once
//! (`backend/common.rs`) and compiled once per backend with that backend's native types (real
//! timestamps, booleans and bytes), and [`Store`] dispatches to the backend the URL named. Times are UTC;
//! card UIDs are stored as their raw bytes (`BLOB`/`VARBINARY(10)`/`BYTEA`) and shown as hex by
//! `CardUid`'s `Display`.
//!
//! Durability rules: an attempt's photo is on disk (fsynced, renamed) before the row naming it commits;
//! the attempt and its outbox event commit in one transaction; outbox ids of one door become visible in
//! order (a per-door head row is locked by every enqueue), so a sink's cursor never skips an entry.
//! On MySQL/PostgreSQL an attempt that cannot reach the server goes to a local SQLite spool and is
//! replayed exactly once (attempts carry a unique random uuid).
//!
//! Groups and holidays: a person's group (with its schedule template) and the site's holidays are read
//! *with* the person — every query that loads people joins their group, and the holiday dates come
//! along — so `Person::admits` decides alone and a door's decision does no extra I/O. They are
//! directory rows like people and cards (revisions, tombstones), so each door's replica holds them too
//! and reads them the same way.
//!
//! Schema: `migrations/<backend>/NNNN_*.sql`, applied by [`Store::open`] and recorded in
//! `facereko_schema`; a database with a newer version than this binary knows is refused.

mod accounts;
mod backend;
mod config;
mod error;
mod legacy;

mod photos;
mod spool;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use facereko_domain::{
    Attempt, AuditEntry, Card, CardUid, Event, Group, GroupId, Holiday, NewAttempt, NewAudit,
    Outcome, Person, PersonId, Photo, WeeklySchedule,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use accounts::{
    hash_password, new_token, token_hash, validate_username, verify_password, Account,
    AccountUpdate, ApiToken, Invitation, NewAccount, Role, Session,
};
pub use config::{RetentionPolicy, StoreConfig};
pub use error::{redact_url, Error, Result};
pub use legacy::{decode_legacy_card_uid, import_legacy, ImportReport, LEGACY_DOOR_ID};

pub use photos::PHOTOS_DIR;

#[allow(unused_imports)] // used by the server backends only
pub(crate) use error::connect_error;

use photos::Photos;

/// The most rows one [`Store::attempts`] page returns.
pub const MAX_PAGE: u32 = 1000;

/// The longest person name.
pub const MAX_NAME_CHARS: usize = 100;

/// The largest stored photo [`Store::read_photo`] reads back (what is stored was checked on the way in;
/// this bounds what a damaged or tampered data directory can make the daemon read).
pub const MAX_STORED_PHOTO_BYTES: u64 = 64 << 20;

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Backend {
    Sqlite,
    MySql,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::MySql => "MySQL",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The backend a URL names, by scheme; `None` for an unknown scheme.
pub fn backend_of(url: &str) -> Option<Backend> {
    let url = url.trim();
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        Some(Backend::MySql)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

/// A page of history: newest first, keyset-paged by `before_id`. Without a date filter pages follow the
/// id; with `from` or `until` they follow (time, id), which only differs for attempts stored late (replayed
/// from the spool).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttemptQuery {
    /// Only attempts after this one in page order (the last id of the previous page).
    pub before_id: Option<i64>,
    /// Page size, 1–[`MAX_PAGE`].
    pub limit: u32,
    pub person: Option<PersonId>,
    pub outcome: Option<Outcome>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub door_id: Option<String>,
}

impl Default for AttemptQuery {
    fn default() -> Self {
        Self {
            before_id: None,
            limit: 50,
            person: None,
            outcome: None,
            from: None,
            until: None,
            door_id: None,
        }
    }
}

/// Which audit entries to list, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    /// Only entries older than this one (the last id of the previous page).
    pub before_id: Option<i64>,
    /// Page size, 1–[`MAX_PAGE`].
    pub limit: u32,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub door_id: Option<String>,
    /// Exactly this actor.
    pub actor: Option<String>,
    /// An action (`card.remove`) or a family of them (`card`).
    pub action: Option<String>,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            before_id: None,
            limit: 50,
            from: None,
            until: None,
            door_id: None,
            actor: None,
            action: None,
        }
    }
}

/// An enrolled face.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceRecord {
    pub id: i64,
    pub person_id: PersonId,
    pub embedding: Vec<f32>,
    pub model_id: String,
    /// Relative to the data directory (see [`Store::photo_path`]).
    pub photo: Option<String>,
    pub created: DateTime<Utc>,
}

/// One changed or deleted directory row, with the revision that changed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DirectoryChange {
    /// A person as they are now (without their cards, which come as [`DirectoryChange::Card`]).
    Person {
        rev: i64,
        person: Person,
        created: DateTime<Utc>,
    },
    Card {
        rev: i64,
        card: Card,
        created: DateTime<Utc>,
    },
    /// A face's embedding (a replica does not take the photo path: the photo stays where it was taken).
    Face {
        rev: i64,
        face: FaceRecord,
    },
    /// The person is gone, with their cards and faces.
    PersonDeleted {
        rev: i64,
        id: PersonId,
    },
    CardDeleted {
        rev: i64,
        uid: CardUid,
    },
    FaceDeleted {
        rev: i64,
        id: i64,
    },
    /// A group with its schedule template, as it is now.
    Group {
        rev: i64,
        group: Group,
    },
    /// The group is gone; its members are in none now.
    GroupDeleted {
        rev: i64,
        id: GroupId,
    },
    Holiday {
        rev: i64,
        holiday: Holiday,
    },
    HolidayDeleted {
        rev: i64,
        id: i64,
    },
}

impl DirectoryChange {
    pub fn rev(&self) -> i64 {
        match self {
            DirectoryChange::Person { rev, .. }
            | DirectoryChange::Card { rev, .. }
            | DirectoryChange::Face { rev, .. }
            | DirectoryChange::PersonDeleted { rev, .. }
            | DirectoryChange::CardDeleted { rev, .. }
            | DirectoryChange::FaceDeleted { rev, .. }
            | DirectoryChange::Group { rev, .. }
            | DirectoryChange::GroupDeleted { rev, .. }
            | DirectoryChange::Holiday { rev, .. }
            | DirectoryChange::HolidayDeleted { rev, .. } => *rev,
        }
    }
}

/// What changed in the directory (people, cards, faces, groups, holidays) between two revisions of the central database:
/// [`Store::directory_changes`] reads it, a door's replica applies it with
/// [`Store::apply_directory_changes`]. Changes are in revision order; only each row's latest state is
/// included, and every row changed after `since` up to `rev` is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectoryChanges {
    /// The revision the changes start after (-1: a whole copy).
    pub since: i64,
    /// The revision the replica holds after applying them.
    pub rev: i64,
    pub changes: Vec<DirectoryChange>,
}

/// A group as the groups page lists it: with how many people belong to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub group: Group,
    pub members: i64,
}

/// The longest group or holiday name.
pub const MAX_GROUP_NAME_CHARS: usize = 100;

/// Where a door's replica stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// The central directory revision it holds.
    pub rev: i64,
    /// When the central database last confirmed it current.
    pub synced_at: DateTime<Utc>,
}

/// One event in a door's outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: i64,
    pub time: DateTime<Utc>,
    pub door_id: String,
    pub event: Event,
}

/// How far behind one notifier sink is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStats {
    pub sink: String,
    /// Everything up to this id is delivered.
    pub acked_id: i64,
    pub pending: u64,
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// What a retention run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Attempt photos deleted because they were older than the policy allows.
    pub photos_deleted: u64,
    /// Files no row referenced (left by a crash between photo write and commit, or stray temp files).
    pub orphans_deleted: u64,
    /// Outbox entries every sink had acknowledged, older than the outbox horizon.
    pub outbox_pruned: u64,
    /// Expired browser sessions.
    pub sessions_purged: u64,
}

/// Files younger than this are never treated as orphans: their row may be committing right now.
pub const ORPHAN_GRACE: chrono::Duration = chrono::Duration::hours(1);

/// Outbox entries are kept this long after every sink acknowledged them.
pub const OUTBOX_HORIZON: chrono::Duration = chrono::Duration::days(7);

pub(crate) enum Db {
    Sqlite(backend::sqlite::Sql),
    #[cfg(feature = "mysql")]
    MySql(backend::mysql::Sql),
    #[cfg(feature = "postgres")]
    Postgres(backend::postgres::Sql),
}

/// Runs `$body` with `$b` bound to whichever backend `$db` holds.
macro_rules! with_db {
    ($db:expr, $b:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite($b) => $body,
            #[cfg(feature = "mysql")]
            $crate::Db::MySql($b) => $body,
            #[cfg(feature = "postgres")]
            $crate::Db::Postgres($b) => $body,
        }
    };
}

/// `with_db!` for a call that reaches the database server: refused at once with
/// [`Error::Unavailable`] while the server is known to be down, and a connection failure marks it down
/// (see [`Breaker`]).
macro_rules! guarded {
    ($store:expr, $b:ident => $body:expr) => {{
        let store: &Store = $store;
        match store.refuse_while_down() {
            Err(e) => Err(e),
            Ok(()) => {
                let r = with_db!(store.db(), $b => $body);
                store.note(r)
            }
        }
    }};
}

/// Remembers that a MySQL/PostgreSQL server is down. Without it every call waits out the pool's connect
/// timeout (5 s) before failing, so a door would take 5 s per tap and drop the taps in between. Once a
/// call finds the server unreachable, calls fail at once until a background probe (one query every
/// [`OpenOptions::probe_every`]) gets an answer again. SQLite never trips it.
#[derive(Debug, Default)]
struct Breaker {
    state: std::sync::Mutex<Option<Down>>,
}

#[derive(Debug)]
struct Down {
    since: std::time::Instant,
    message: String,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Down>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    db: Db,
    backend: Backend,
    url: String,
    data_dir: PathBuf,
    photos: Photos,
    spool: Option<spool::Spool>,
    breaker: Breaker,
    probe_every: std::time::Duration,
    /// Bumped after each directory change made through this store.
    directory_changed: tokio::sync::watch::Sender<u64>,
    share_face_photos: bool,
}

/// The store. Cheap to clone (an `Arc` inside); every clone shares the pools.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("url", &self.inner.url)
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

/// Options beyond the URL; [`Store::open`] uses the defaults.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Pool size for MySQL/PostgreSQL.
    pub max_connections: u32,
    /// Spool attempts locally while a MySQL/PostgreSQL server is unreachable.
    pub spool: bool,
    /// How often a background task tries to replay the spool.
    pub spool_retry: std::time::Duration,
    /// While a MySQL/PostgreSQL server is known to be down, how often a background probe asks whether it
    /// is back (calls in between fail at once).
    pub probe_every: std::time::Duration,
    /// Open a MySQL/PostgreSQL store even when its server cannot be reached now: it starts as known to
    /// be down (calls fail at once) and migrates when the probe reaches the server. For a door with a
    /// replica to decide from; without it, an unreachable server is an error at open.
    pub start_when_down: bool,
    /// Keep a copy of every enrolment photo in the database too (`fleet.share_photos`), so every door and
    /// web app of a site can show it; off, a photo stays only in the data directory that took it.
    pub share_face_photos: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            max_connections: 5,
            spool: true,
            spool_retry: std::time::Duration::from_secs(15),
            probe_every: std::time::Duration::from_secs(1),
            start_when_down: false,
            share_face_photos: false,
        }
    }
}

impl From<&StoreConfig> for OpenOptions {
    fn from(c: &StoreConfig) -> Self {
        Self {
            max_connections: c.max_connections,
            spool: c.spool,
            ..OpenOptions::default()
        }
    }
}

pub(crate) fn encode_embedding(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn decode_embedding(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::Corrupt(format!(
            "embedding of {} bytes is not a whole number of f32s",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn random_16() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid("a person's name cannot be empty".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "a person's name has at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "a person's name cannot contain control characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// A group's or a holiday's name, checked like a person's: 1–100 characters, no control characters.
fn check_label(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid(format!("a {what}'s name cannot be empty")));
    }
    if name.chars().count() > MAX_GROUP_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "a {what}'s name has at most {MAX_GROUP_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "a {what}'s name cannot contain control characters"
        )));
    }
    Ok(name.to_string())
}

/// Settings rows that hold configuration set in the web app: `config:<dotted key>`.
const CONFIG_PREFIX: &str = "config:";

/// At most `max` characters of `s`, control characters as spaces.
fn clean_text(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn check_door_id(door_id: &str) -> Result<()> {
    door_id
        .parse::<facereko_domain::DoorId>()
        .map(drop)
        .map_err(|e| Error::Invalid(e.to_string()))
}

impl Store {
    /// Opens the database named by `url` (`sqlite://PATH` | `sqlite::memory:` | `mysql://…` |
    /// `postgres://…`), applies migrations, keeps photos under `data_dir/photos/`.
    pub async fn open(url: &str, data_dir: &Path) -> Result<Store> {
        Self::open_with(url, data_dir, &OpenOptions::default()).await
    }

    /// [`Store::open`] with pool size and spool choice (from [`StoreConfig`]).
    pub async fn open_with(url: &str, data_dir: &Path, options: &OpenOptions) -> Result<Store> {
        let url = url.trim();
        let backend = backend_of(url).ok_or_else(|| Error::UnsupportedUrl(redact_url(url)))?;
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let photos = Photos::new(data_dir)?;
        let mut down_at_open: Option<Error> = None;
        let db = match backend {
            Backend::Sqlite => Db::Sqlite(backend::sqlite::connect(url).await?),
            #[cfg(feature = "mysql")]
            Backend::MySql => {
                let (sql, down) =
                    backend::mysql::connect(url, options.max_connections, options.start_when_down)
                        .await?;
                down_at_open = down;
                Db::MySql(sql)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let (sql, down) = backend::postgres::connect(
                    url,
                    options.max_connections,
                    options.start_when_down,
                )
                .await?;
                down_at_open = down;
                Db::Postgres(sql)
            }
            #[allow(unreachable_patterns)]
            other => {
                return Err(Error::BackendNotCompiled {
                    url: redact_url(url),
                    backend: match other {
                        Backend::MySql => "MySQL",
                        Backend::Postgres => "PostgreSQL",
                        Backend::Sqlite => "SQLite",
                    },
                    feature: match other {
                        Backend::MySql => "mysql",
                        _ => "postgres",
                    },
                })
            }
        };
        if down_at_open.is_none() {
            with_db!(&db, b => b.migrate().await)?;
        }
        let spool = if backend != Backend::Sqlite && options.spool {
            Some(spool::Spool::open(data_dir).await?)
        } else {
            None
        };
        let store = Store {
            inner: Arc::new(Inner {
                db,
                backend,
                url: redact_url(url),
                data_dir: data_dir.to_path_buf(),
                photos,
                spool,
                breaker: Breaker::default(),
                probe_every: options.probe_every,
                directory_changed: tokio::sync::watch::channel(0).0,
                share_face_photos: options.share_face_photos,
            }),
        };
        if let Some(e) = &down_at_open {
            // Migrated by the probe once the server answers.
            store.mark_down(e);
        }
        if store.inner.spool.is_some() {
            // Attempts spooled during an earlier outage go to the server first, then whenever it is back.
            store.replay_spool_logged().await;
            let weak = Arc::downgrade(&store.inner);
            let every = options.spool_retry;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    // Ends with the last clone of the store.
                    let Some(inner) = weak.upgrade() else { break };
                    Store { inner }.replay_spool_logged().await;
                }
            });
        }
        Ok(store)
    }

    /// Closes the pools (SQLite checkpoints its WAL): call once at shutdown. Later calls on any clone
    /// fail with a pool-closed error.
    pub async fn close(&self) {
        with_db!(self.db(), b => b.close().await);
    }

    /// Writes a consistent copy of the embedded SQLite database to `dest`, a file that must not exist
    /// (safe while the daemon runs). A MySQL/PostgreSQL database is backed up with its server's own
    /// tools (`mysqldump`, `pg_dump`): refused with a message saying so.
    pub async fn backup_database(&self, dest: &Path) -> Result<()> {
        match self.db() {
            Db::Sqlite(b) => backend::sqlite::vacuum_into(b, dest).await,
            #[allow(unreachable_patterns)]
            _ => Err(Error::Invalid(format!(
                "`facereko backup` copies the embedded SQLite database; back up this {:?} database \
                 with its server's tools (mysqldump, pg_dump)",
                self.backend()
            ))),
        }
    }

    /// `sqlite://<data_dir>/facereko.db` — the embedded default.
    pub fn default_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("facereko.db").display())
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The URL with its password redacted, for logs.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Whether the database server is known to be down right now (calls fail at once until a background
    /// probe reaches it again). Always `false` for SQLite.
    pub fn known_down(&self) -> bool {
        self.inner.breaker.lock().is_some()
    }

    fn refuse_while_down(&self) -> Result<()> {
        match &*self.inner.breaker.lock() {
            None => Ok(()),
            Some(down) => Err(Error::Unavailable {
                url: self.inner.url.clone(),
                message: format!(
                    "down for {} s ({}); checking again in the background",
                    down.since.elapsed().as_secs(),
                    down.message
                ),
            }),
        }
    }

    /// Passes `r` through; a connection failure marks the server down and starts the probe.
    fn note<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            let closed_by_us = matches!(e, Error::Db(sqlx::Error::PoolClosed));
            if e.is_unavailable() && !closed_by_us && self.inner.backend != Backend::Sqlite {
                self.mark_down(e);
            }
        }
        r
    }

    /// `migrate`, for the probe task: run on a blocking thread that drives it with the runtime's handle
    /// (the migration's future holds a connection borrow that is not `Send` for every lifetime, so it
    /// cannot be polled inside `tokio::spawn` directly).
    async fn migrate_in_background(&self) -> Result<i64> {
        let db = match self.db() {
            Db::Sqlite(b) => Db::Sqlite(b.clone()),
            #[cfg(feature = "mysql")]
            Db::MySql(b) => Db::MySql(b.clone()),
            #[cfg(feature = "postgres")]
            Db::Postgres(b) => Db::Postgres(b.clone()),
        };
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            handle.block_on(async move { with_db!(&db, b => b.migrate().await) })
        })
        .await
        .map_err(|e| Error::Invalid(format!("the migration task failed: {e}")))?
    }

    fn mark_down(&self, e: &Error) {
        {
            let mut state = self.inner.breaker.lock();
            if state.is_some() {
                return;
            }
            *state = Some(Down {
                since: std::time::Instant::now(),
                message: e.to_string(),
            });
        }
        tracing::warn!(
            url = %self.inner.url,
            error = %e,
            "database unreachable: failing fast until it answers again"
        );
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.probe_every;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // Ends with the last clone of the store.
                let Some(inner) = weak.upgrade() else { return };
                let store = Store { inner };
                // The probe itself bypasses the breaker; it may wait out the connect timeout. It brings
                // the schema up to date too (a no-op unless the store was opened while down).
                match store.migrate_in_background().await {
                    Ok(_) => {
                        *store.inner.breaker.lock() = None;
                        tracing::info!(url = %store.inner.url, "the database answers again");
                        store.replay_spool_logged().await;
                        return;
                    }
                    Err(e) if e.is_unavailable() => {
                        tracing::debug!(error = %e, "the database is still unreachable")
                    }
                    Err(e) => tracing::warn!(
                        url = %store.inner.url,
                        error = %e,
                        "the database answers but cannot be used yet"
                    ),
                }
            }
        });
    }

    /// The schema version the database is at (after `open`, the newest this binary knows).
    pub async fn schema_version(&self) -> Result<i64> {
        guarded!(self, b => b.schema_version().await)
    }

    /// Re-applies pending migrations (for `facereko migrate`; `open` already did). Returns the version.
    pub async fn migrate(&self) -> Result<i64> {
        guarded!(self, b => b.migrate().await)
    }

    // ------------------------------------------------------------------ people and cards

    /// Adds an active person. `Error::Invalid` on an empty or over-long name, `Error::Conflict` if a
    /// person of that name exists.
    pub async fn add_person(&self, name: &str) -> Result<PersonId> {
        let name = check_name(name)?;
        self.changed(guarded!(self, b => b.add_person(&name, Utc::now()).await))
    }

    /// The person with their cards.
    pub async fn person(&self, id: PersonId) -> Result<Option<Person>> {
        guarded!(self, b => b.person(id).await)
    }

    /// Exact (case-sensitive) name match.
    pub async fn person_by_name(&self, name: &str) -> Result<Option<Person>> {
        guarded!(self, b => b.person_by_name(name.trim()).await)
    }

    /// Everyone, by name, with their cards.
    pub async fn list_people(&self) -> Result<Vec<Person>> {
        guarded!(self, b => b.list_people().await)
    }

    /// Saves name, active flag, validity and schedule (cards are managed with the card methods, the
    /// group with [`Store::assign_group`]; `p.group` and `p.holidays` are not saved).
    pub async fn update_person(&self, p: &Person) -> Result<()> {
        let mut p = p.clone();
        p.name = check_name(&p.name)?;
        self.changed(guarded!(self, b => b.update_person(&p).await))
    }

    /// Deletes a person with their cards and faces (their attempts stay, with the name as it was).
    pub async fn delete_person(&self, id: PersonId) -> Result<()> {
        let photos = self.changed(guarded!(self, b => b.delete_person(id).await))?;
        for p in photos {
            if let Err(e) = self.inner.photos.remove(&p).await {
                tracing::warn!(error = %e, "could not delete an enrolment photo");
            }
        }
        Ok(())
    }

    /// `Error::CardTaken` if the UID already has an owner, `Error::NotFound` for an unknown person.
    pub async fn add_card(
        &self,
        person: PersonId,
        uid: &CardUid,
        label: Option<&str>,
    ) -> Result<()> {
        if label.is_some_and(|l| l.chars().count() > 100) {
            return Err(Error::Invalid(
                "a card label has at most 100 characters".into(),
            ));
        }
        self.changed(guarded!(self, b => b.add_card(person, uid, label, Utc::now()).await))
    }

    pub async fn set_card_active(&self, uid: &CardUid, active: bool) -> Result<()> {
        self.changed(guarded!(self, b => b.set_card_active(uid, active).await))
    }

    pub async fn remove_card(&self, uid: &CardUid) -> Result<()> {
        self.changed(guarded!(self, b => b.remove_card(uid).await))
    }

    /// The card and its owner (with all their cards), or `None` for an unknown card.
    pub async fn lookup_card(&self, uid: &CardUid) -> Result<Option<(Card, Person)>> {
        guarded!(self, b => b.lookup_card(uid).await)
    }

    // ------------------------------------------------------------------ groups and holidays

    /// Adds a group without a schedule. `Error::Invalid` on a bad name, `Error::Conflict` if a group of
    /// that name exists.
    pub async fn add_group(&self, name: &str) -> Result<GroupId> {
        let name = check_label("group", name)?;
        self.changed(guarded!(self, b => b.add_group(&name).await))
    }

    pub async fn group(&self, id: GroupId) -> Result<Option<Group>> {
        guarded!(self, b => b.group(id).await)
    }

    /// Every group, by name, with its member count.
    pub async fn groups(&self) -> Result<Vec<GroupSummary>> {
        let rows = guarded!(self, b => b.groups().await)?;
        Ok(rows
            .into_iter()
            .map(|(group, members)| GroupSummary { group, members })
            .collect())
    }

    pub async fn rename_group(&self, id: GroupId, name: &str) -> Result<()> {
        let name = check_label("group", name)?;
        self.changed(guarded!(self, b => b.update_group(id, Some(&name), None).await))
    }

    /// Sets the weekly schedule template of a group (`None`: the group sets no hours). Members without
    /// a schedule of their own follow it at every door once the door's replica has the change.
    pub async fn set_group_schedule(
        &self,
        id: GroupId,
        schedule: Option<&WeeklySchedule>,
    ) -> Result<()> {
        self.changed(guarded!(self, b => b.update_group(id, None, Some(schedule)).await))
    }

    /// Deletes a group; its members stay, in no group.
    pub async fn delete_group(&self, id: GroupId) -> Result<()> {
        self.changed(guarded!(self, b => b.delete_group(id).await))
    }

    /// Puts all of `people` in `group` (or in none) in one transaction under one revision; returns how
    /// many. `Error::NotFound`, with nothing changed, for an unknown group or any unknown person.
    pub async fn assign_group(&self, group: Option<GroupId>, people: &[PersonId]) -> Result<u64> {
        let mut ids = people.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(0);
        }
        self.changed(guarded!(self, b => b.assign_group(group, &ids).await))
    }

    /// Adds a holiday: a local date on which everyone with a schedule is refused. `Error::Conflict` if
    /// that date already is one.
    pub async fn add_holiday(&self, date: chrono::NaiveDate, name: &str) -> Result<i64> {
        let name = check_label("holiday", name)?;
        self.changed(guarded!(self, b => b.add_holiday(date, &name).await))
    }

    /// Removes a holiday; the holiday as it was.
    pub async fn remove_holiday(&self, id: i64) -> Result<Holiday> {
        self.changed(guarded!(self, b => b.remove_holiday(id).await))
    }

    /// Every holiday, oldest first.
    pub async fn holidays(&self) -> Result<Vec<Holiday>> {
        guarded!(self, b => b.holidays().await)
    }

    // ------------------------------------------------------------------ faces

    /// Enrols an embedding (and its photo, stored under `photos/faces/`). Bumps [`Store::faces_version`].
    pub async fn add_face(
        &self,
        person: PersonId,
        embedding: &[f32],
        model_id: &str,
        photo: Option<&Photo>,
    ) -> Result<i64> {
        if embedding.is_empty() || embedding.iter().any(|x| !x.is_finite()) {
            return Err(Error::Invalid(
                "an embedding needs at least one finite number".into(),
            ));
        }
        if model_id.trim().is_empty() || model_id.len() > 128 {
            return Err(Error::Invalid("model id: 1-128 characters".into()));
        }
        let rel = match photo {
            Some(p) => {
                let rel = Photos::face_relative(&random_16(), p);
                self.inner.photos.write(&rel, p).await?;
                Some(rel)
            }
            None => None,
        };
        let bytes = encode_embedding(embedding);
        let shared = photo
            .filter(|_| self.inner.share_face_photos)
            .map(|p| p.bytes.as_slice());
        let r = self.changed(guarded!(self, b => b
            .add_face(person, &bytes, model_id, rel.as_deref(), shared, Utc::now())
            .await));
        if r.is_err() {
            if let Some(rel) = &rel {
                let _ = self.inner.photos.remove(rel).await;
            }
        }
        r
    }

    /// Enrolled faces of one person, or of everyone (`None`), oldest first.
    pub async fn faces(&self, person: Option<PersonId>) -> Result<Vec<FaceRecord>> {
        guarded!(self, b => b.faces(person).await)
    }

    /// The copy in the database of an enrolment photo (by its path, as the face row names it), when it
    /// was enrolled with `share_face_photos`; `None` otherwise.
    pub async fn shared_face_photo(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        guarded!(self, b => b.shared_face_photo(relative).await)
    }

    /// Deletes a face and its enrolment photo. Bumps [`Store::faces_version`].
    pub async fn delete_face(&self, id: i64) -> Result<()> {
        let photo = self.changed(guarded!(self, b => b.delete_face(id).await))?;
        if let Some(p) = photo {
            self.inner.photos.remove(&p).await?;
        }
        Ok(())
    }

    /// A counter bumped in the same transaction as every face added or deleted (also by other doors
    /// sharing the database): reload the gallery when it changes.
    pub async fn faces_version(&self) -> Result<i64> {
        guarded!(self, b => b.faces_version().await)
    }

    /// The doors that share this database, as far as it knows (every door that has queued an event).
    pub async fn door_ids(&self) -> Result<Vec<String>> {
        guarded!(self, b => b.door_ids().await)
    }

    // ------------------------------------------------------------------ replication

    /// Changes after every change to people, cards, faces, groups or holidays made through this store (any clone), so the
    /// process can tell the site's doors (the MQTT sync signal) at once.
    pub fn watch_directory(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.directory_changed.subscribe()
    }

    fn changed<T>(&self, r: Result<T>) -> Result<T> {
        if r.is_ok() {
            self.inner.directory_changed.send_modify(|n| *n += 1);
        }
        r
    }

    /// The newest committed directory revision: every change to people, cards or faces takes the next
    /// one, in commit order.
    pub async fn directory_rev(&self) -> Result<i64> {
        guarded!(self, b => b.directory_rev().await)
    }

    /// Everything a replica at revision `since` lacks (a whole copy for `since` < 0), from one snapshot.
    pub async fn directory_changes(&self, since: i64) -> Result<DirectoryChanges> {
        guarded!(self, b => b.directory_changes(since).await)
    }

    /// Applies central changes to this store, which must be a door's SQLite replica (see
    /// [`DirectoryChanges`]), and records `synced_at` as the time it was last found current.
    pub async fn apply_directory_changes(
        &self,
        changes: &DirectoryChanges,
        synced_at: DateTime<Utc>,
    ) -> Result<()> {
        match self.db() {
            Db::Sqlite(b) => b.apply_directory_changes(changes, synced_at).await,
            #[allow(unreachable_patterns)]
            _ => Err(Error::Invalid(
                "a door's replica is an SQLite database".into(),
            )),
        }
    }

    /// Records that this replica, at revision `rev`, was found current at `synced_at`.
    pub async fn mark_replica_synced(&self, rev: i64, synced_at: DateTime<Utc>) -> Result<()> {
        match self.db() {
            Db::Sqlite(b) => b.mark_replica_synced(rev, synced_at).await,
            #[allow(unreachable_patterns)]
            _ => Err(Error::Invalid(
                "a door's replica is an SQLite database".into(),
            )),
        }
    }

    /// Which central revision this replica holds and when it was last found current (`None` for a
    /// store that never took a copy).
    pub async fn replica_state(&self) -> Result<Option<ReplicaState>> {
        match self.db() {
            Db::Sqlite(b) => b.replica_state().await,
            #[allow(unreachable_patterns)]
            _ => Ok(None),
        }
    }

    // ------------------------------------------------------------------ attempts

    /// Writes the photo (random unguessable name, temp file + fsync + rename) BEFORE committing the row,
    /// then inserts the attempt AND an outbox entry for `Event::Attempt` in ONE transaction.
    ///
    /// With MySQL/PostgreSQL and the spool enabled, an unreachable server does not lose the attempt: it
    /// is kept in the local spool and a provisional `Attempt` with a negative id is returned; it gets its
    /// real id when [`Store::replay_spool`] moves it to the server.
    pub async fn record_attempt(&self, a: &NewAttempt, photo: Option<&Photo>) -> Result<Attempt> {
        check_door_id(&a.door_id)?;
        let uuid = random_16();
        let rel = match photo {
            Some(p) => {
                let rel = Photos::attempt_relative(&uuid, a.time, p);
                self.inner.photos.write(&rel, p).await?;
                Some(rel)
            }
            None => None,
        };
        // While the server is known to be down the guard refuses at once, so the attempt goes straight to
        // the spool instead of waiting out the connect timeout.
        let r = guarded!(self, b => b.insert_attempt(a, rel.as_deref(), &uuid, true).await);
        match r {
            Ok(attempt) => Ok(attempt),
            Err(e) if e.is_unavailable() && self.inner.spool.is_some() => {
                let spool = self.inner.spool.as_ref().ok_or(e)?;
                tracing::warn!(url = %self.inner.url, "database unreachable: spooling the attempt");
                spool.push(a, rel.as_deref(), &uuid).await
            }
            Err(e) => {
                // The row never committed: the photo would be an orphan.
                if let Some(rel) = &rel {
                    let _ = self.inner.photos.remove(rel).await;
                }
                Err(e)
            }
        }
    }

    /// Imports a historical attempt under a caller-chosen uuid, without an outbox event. Returns `false`
    /// (and writes nothing) if an attempt with that uuid exists.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) async fn import_attempt(
        &self,
        a: &NewAttempt,
        photo: Option<&Photo>,
        uuid: &[u8; 16],
    ) -> Result<bool> {
        check_door_id(&a.door_id)?;
        if guarded!(self, b => b.attempt_photo_by_uuid(uuid).await)?.is_some() {
            return Ok(false);
        }
        let rel = match photo {
            Some(p) => {
                let rel = Photos::attempt_relative(uuid, a.time, p);
                self.inner.photos.write(&rel, p).await?;
                Some(rel)
            }
            None => None,
        };
        guarded!(self, b => b.insert_attempt(a, rel.as_deref(), uuid, false).await)?;
        Ok(true)
    }

    /// Moves attempts spooled during an outage to the server, each exactly once. Returns how many moved.
    /// The daemon calls this periodically (e.g. every 30 s); a no-op for SQLite.
    pub async fn replay_spool(&self) -> Result<u64> {
        let Some(spool) = &self.inner.spool else {
            return Ok(0);
        };
        let _one_replay_at_a_time = spool.replaying.lock().await;
        let mut moved = 0;
        loop {
            let batch = spool.peek(100).await?;
            if batch.is_empty() {
                return Ok(moved);
            }
            for (spool_id, uuid, attempt, photo) in batch {
                // Insert by uuid first, delete from the spool second: a crash in between replays a row the
                // server already has, which `insert_attempt` recognises by its uuid.
                match guarded!(self, b => b.insert_attempt(&attempt, photo.as_deref(), &uuid, true).await)
                {
                    Ok(_) => {}
                    Err(e) if e.unique_violation() => {} // inserted concurrently by another replay
                    Err(e) => return Err(e),
                }
                spool.remove(spool_id).await?;
                moved += 1;
            }
        }
    }

    async fn replay_spool_logged(&self) {
        if self.spooled().await.unwrap_or(0) == 0 {
            return;
        }
        match self.replay_spool().await {
            Ok(n) => tracing::info!(
                replayed = n,
                "the database is back: replayed spooled attempts"
            ),
            Err(e) if e.is_unavailable() => {
                tracing::debug!(error = %e, "the database is still unreachable")
            }
            Err(e) => tracing::warn!(error = %e, "could not replay the attempt spool"),
        }
    }

    /// How many attempts wait in the local spool (0 without one).
    pub async fn spooled(&self) -> Result<u64> {
        match &self.inner.spool {
            Some(s) => s.len().await,
            None => Ok(0),
        }
    }

    /// Bulk-inserts historical attempts (no photos, no outbox events) in one transaction: for imports
    /// from other systems and for benchmarks. Returns how many rows were inserted.
    pub async fn import_attempts(&self, attempts: &[NewAttempt]) -> Result<u64> {
        for a in attempts {
            check_door_id(&a.door_id)?;
        }
        let rows: Vec<(NewAttempt, [u8; 16])> =
            attempts.iter().map(|a| (a.clone(), random_16())).collect();
        guarded!(self, b => b.bulk_insert_attempts(&rows).await)
    }

    /// Newest first; keyset paging with `before_id`.
    pub async fn attempts(&self, q: &AttemptQuery) -> Result<Vec<Attempt>> {
        guarded!(self, b => b.attempts(q).await)
    }

    pub async fn attempt(&self, id: i64) -> Result<Option<Attempt>> {
        guarded!(self, b => b.attempt(id).await)
    }

    /// How many attempts the query's filters match (its cursor and page size aside). A count walks
    /// every matching row of an index: History shows it, a busy door's year of attempts takes tens of
    /// milliseconds on a Pi.
    pub async fn count_matching_attempts(&self, q: &AttemptQuery) -> Result<i64> {
        guarded!(self, b => b.count_matching_attempts(q).await)
    }

    /// The number of stored attempts (a full count: for tools and tests, not for page rendering).
    pub async fn count_attempts(&self) -> Result<i64> {
        guarded!(self, b => b.count_attempts().await)
    }

    /// Absolute path of a stored photo given the relative path in `Attempt::photo` /
    /// `FaceRecord::photo`; refuses anything that escapes the photos folder.
    pub fn photo_path(&self, relative: &str) -> Result<PathBuf> {
        self.inner.photos.resolve(relative)
    }

    /// A stored photo (an enrolment's or an attempt's) read back: the path checked as
    /// [`Store::photo_path`] does, only a regular file of at most [`MAX_STORED_PHOTO_BYTES`], and only a
    /// JPEG or PNG.
    pub async fn read_photo(&self, relative: &str) -> Result<Photo> {
        let path = self.photo_path(relative)?;
        let read = tokio::task::spawn_blocking({
            let path = path.clone();
            move || photos::read_bounded(&path, MAX_STORED_PHOTO_BYTES)
        })
        .await
        .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        let bytes = match read {
            Ok(b) => b,
            // An enrolment photo taken elsewhere on the site: its copy in the database, if shared.
            Err(e) => match self.shared_face_photo(relative).await? {
                Some(b) => b,
                None => return Err(e),
            },
        };
        Photo::from_bytes(bytes).ok_or_else(|| {
            Error::Invalid(format!(
                "stored photo {relative} is neither a JPEG nor a PNG"
            ))
        })
    }

    // ------------------------------------------------------------------ settings

    /// Whether the door is armed; `None` if it was never set.
    pub async fn armed(&self, door_id: &str) -> Result<Option<bool>> {
        let v = guarded!(self, b => b.setting(door_id, "armed").await)?;
        v.map(|v| match v.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(Error::Corrupt(format!("armed = {other:?}"))),
        })
        .transpose()
    }

    pub async fn set_armed(&self, door_id: &str, armed: bool) -> Result<()> {
        check_door_id(door_id)?;
        let v = if armed { "true" } else { "false" };
        guarded!(self, b => b.set_setting(door_id, "armed", v).await)
    }

    // ------------------------------------------------------------------ audit trail

    /// Records an administrative change or a remote command, and queues it as an `audit` event for the
    /// notification sinks in the same transaction. Over-long texts are cut (a hostile form field cannot
    /// fill the trail), control characters become spaces.
    pub async fn record_audit(&self, a: &NewAudit) -> Result<AuditEntry> {
        check_door_id(&a.door_id)?;
        let action = a.action.trim();
        if action.is_empty()
            || action.len() > 64
            || !action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-')
        {
            return Err(Error::Invalid(format!(
                "audit action {action:?}: 1-64 lowercase letters, dots and dashes"
            )));
        }
        let a = NewAudit {
            actor: clean_text(&a.actor, 200),
            origin: a.origin.as_deref().map(|o| clean_text(o, 300)),
            action: action.to_string(),
            target: clean_text(&a.target, 300),
            detail: clean_text(&a.detail, 2000),
            ..a.clone()
        };
        guarded!(self, b => b.record_audit(&a).await)
    }

    /// Audit entries, newest first.
    pub async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        guarded!(self, b => b.audit_entries(q).await)
    }

    /// How many audit entries the query's filters match.
    pub async fn count_audit(&self, q: &AuditQuery) -> Result<i64> {
        guarded!(self, b => b.count_audit(q).await)
    }

    // ------------------------------------------------------------------ configuration set in the web app

    /// The configuration values set in the web app for `door_id`, by dotted key (`door.unlock_seconds`),
    /// as text. They sit below the file and the environment: a key either sets wins over them.
    pub async fn config_overrides(&self, door_id: &str) -> Result<Vec<(String, String)>> {
        check_door_id(door_id)?;
        let rows = guarded!(self, b => b.settings_with_prefix(door_id, CONFIG_PREFIX).await)?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k[CONFIG_PREFIX.len()..].to_string(), v))
            .collect())
    }

    /// Sets (or with `None` removes) one configuration value of `door_id` set in the web app. The caller
    /// validates it as the configuration would; the store only keeps it.
    pub async fn set_config_override(
        &self,
        door_id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        check_door_id(door_id)?;
        // The settings table holds names of 64 and values of 255 characters (MariaDB's columns).
        if key.is_empty()
            || key.len() + CONFIG_PREFIX.len() > 64
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        {
            return Err(Error::Invalid(format!("configuration key {key:?}")));
        }
        if value.is_some_and(|v| v.chars().count() > 255) {
            return Err(Error::Invalid(
                "a configuration value has at most 255 characters".into(),
            ));
        }
        let name = format!("{CONFIG_PREFIX}{key}");
        match value {
            Some(v) => guarded!(self, b => b.set_setting(door_id, &name, v).await),
            None => guarded!(self, b => b.delete_setting(door_id, &name).await),
        }
    }

    // ------------------------------------------------------------------ notifier outbox

    /// Appends an event to the door's outbox; the id is the event id.
    pub async fn enqueue_event(&self, door_id: &str, event: &Event) -> Result<i64> {
        check_door_id(door_id)?;
        guarded!(self, b => b.enqueue_event(door_id, Utc::now(), event).await)
    }

    /// Registers a sink; a new sink starts after the current newest entry (history is not replayed).
    /// Registering again keeps the sink's cursor.
    pub async fn outbox_register_sink(&self, door_id: &str, sink: &str) -> Result<()> {
        check_door_id(door_id)?;
        if sink.is_empty() || sink.len() > 64 {
            return Err(Error::Invalid(format!(
                "sink name {sink:?}: 1-64 characters"
            )));
        }
        guarded!(self, b => b.outbox_register_sink(door_id, sink).await)
    }

    /// Entries for `door_id` with id > the sink's cursor, oldest first, at most `limit`.
    pub async fn outbox_pending(
        &self,
        door_id: &str,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        guarded!(self, b => b.outbox_pending(door_id, sink, limit).await)
    }

    /// Moves the sink's cursor to `up_to_id` (never backwards).
    pub async fn outbox_ack(&self, door_id: &str, sink: &str, up_to_id: i64) -> Result<()> {
        guarded!(self, b => b.outbox_ack(door_id, sink, up_to_id).await)
    }

    /// Per sink: cursor, pending count, time of the oldest pending entry.
    pub async fn outbox_stats(&self, door_id: &str) -> Result<Vec<SinkStats>> {
        guarded!(self, b => b.outbox_stats(door_id).await)
    }

    /// Deletes entries older than `older_than` that every sink of their door has acknowledged.
    pub async fn outbox_prune(&self, older_than: DateTime<Utc>) -> Result<u64> {
        guarded!(self, b => b.outbox_prune(older_than).await)
    }

    // ------------------------------------------------------------------ retention

    /// Deletes attempt photos older than the policy allows (rows kept, `photo` becomes `None`), then
    /// orphan photo files, acknowledged outbox entries older than [`OUTBOX_HORIZON`] and expired sessions.
    pub async fn purge_photos(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        for outcome in Outcome::ALL {
            let Some(cutoff) = policy.cutoff(outcome, now) else {
                continue;
            };
            loop {
                let paths = guarded!(self, b => b.take_expired_photos(outcome, cutoff, 500).await)?;
                if paths.is_empty() {
                    break;
                }
                for p in &paths {
                    match self.inner.photos.remove(p).await {
                        Ok(()) => report.photos_deleted += 1,
                        Err(e) => tracing::warn!(error = %e, "could not delete an expired photo"),
                    }
                }
            }
        }
        report.orphans_deleted = self.sweep_orphan_photos(now - ORPHAN_GRACE).await?;
        report.outbox_pruned = self.outbox_prune(now - OUTBOX_HORIZON).await?;
        report.sessions_purged = guarded!(self, b => b.purge_sessions(now).await)?;
        Ok(report)
    }

    /// Deletes photo files last modified before `older_than` that no row references: attempt photos
    /// whose uuid has no committed row (or whose row no longer names them), enrolment photos no face
    /// names, and stray temp files. Returns how many files went.
    pub async fn sweep_orphan_photos(&self, older_than: DateTime<Utc>) -> Result<u64> {
        let files = self.inner.photos.files_older_than(older_than).await?;
        if files.is_empty() {
            return Ok(0);
        }
        let faces: HashSet<String> = guarded!(self, b => b.face_photos().await)?
            .into_iter()
            .collect();
        let spooled: HashSet<String> = match &self.inner.spool {
            Some(s) => s.photos().await?.into_iter().collect(),
            None => HashSet::new(),
        };
        let mut deleted = 0;
        for rel in files {
            if self.is_orphan(&rel, &faces, &spooled).await? {
                self.inner.photos.remove(&rel).await?;
                tracing::info!(photo = %rel, "deleted an orphan photo");
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn is_orphan(
        &self,
        rel: &str,
        faces: &HashSet<String>,
        spooled: &HashSet<String>,
    ) -> Result<bool> {
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') && name.ends_with(".tmp") {
            return Ok(true);
        }
        if faces.contains(rel) || spooled.contains(rel) {
            return Ok(false);
        }
        let attempts_dir = format!("{PHOTOS_DIR}/attempts/");
        if rel.starts_with(&attempts_dir) {
            let stem = name.split('.').next().unwrap_or_default();
            let Some(uuid) = hex::decode(stem).ok().filter(|u| u.len() == 16) else {
                return Ok(false); // not ours: leave foreign files alone
            };
            let row = guarded!(self, b => b.attempt_photo_by_uuid(&uuid).await)?;
            return Ok(match row {
                None => true,
                Some(photo) => photo.as_deref() != Some(rel),
            });
        }
        // An enrolment photo no face names.
        Ok(rel.starts_with(&format!("{PHOTOS_DIR}/faces/")))
    }

    /// Runs [`Store::purge_photos`] every `policy.every_hours` hours (first run at once) until dropped.
    /// The daemon spawns this; errors are logged, not fatal.
    pub async fn run_retention(self, policy: RetentionPolicy) {
        if policy.every_hours == 0 {
            return;
        }
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(
            u64::from(policy.every_hours) * 3600,
        ));
        loop {
            tick.tick().await;
            match self.purge_photos(&policy, Utc::now()).await {
                Ok(r) => tracing::info!(?r, "retention run"),
                Err(e) => tracing::warn!(error = %e, "retention run failed"),
            }
        }
    }

    // ------------------------------------------------------------------ accounts (issue 5)

    /// Creates an account (`Error::Conflict` if the username is taken). Hash the password with
    /// [`hash_password`] first.
    pub async fn add_account(&self, a: &NewAccount) -> Result<i64> {
        validate_username(&a.username)?;
        if !a.password_hash.starts_with("$argon2") {
            return Err(Error::Invalid(
                "password_hash must be an Argon2 PHC string (use hash_password)".into(),
            ));
        }
        guarded!(self, b => b.add_account(a, Utc::now()).await)
    }

    pub async fn account(&self, id: i64) -> Result<Option<Account>> {
        guarded!(self, b => b.account(id).await)
    }

    pub async fn account_by_username(&self, username: &str) -> Result<Option<Account>> {
        guarded!(self, b => b.account_by_username(username).await)
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        guarded!(self, b => b.list_accounts().await)
    }

    pub async fn update_account(&self, id: i64, u: &AccountUpdate) -> Result<()> {
        if u.password_hash
            .as_ref()
            .is_some_and(|h| !h.starts_with("$argon2"))
        {
            return Err(Error::Invalid(
                "password_hash must be an Argon2 PHC string (use hash_password)".into(),
            ));
        }
        guarded!(self, b => b.update_account(id, u).await)
    }

    /// Deletes the account with its sessions and API tokens.
    pub async fn delete_account(&self, id: i64) -> Result<()> {
        guarded!(self, b => b.delete_account(id).await)
    }

    /// Counts a failed login; at `lock_after` consecutive failures the account is locked until
    /// `lock_until`. Returns the failure count.
    pub async fn record_login_failure(
        &self,
        id: i64,
        lock_after: u32,
        lock_until: DateTime<Utc>,
    ) -> Result<i64> {
        guarded!(self, b => b.record_login_failure(id, lock_after, lock_until).await)
    }

    /// Resets the failure count and lock, stamps `last_login`.
    pub async fn record_login_success(&self, id: i64) -> Result<()> {
        guarded!(self, b => b.record_login_success(id, Utc::now()).await)
    }

    /// Resets the failure count and lifts a lock-out or a disablement, without counting as a sign-in
    /// (`last_login` is left alone): an administrator's password reset.
    pub async fn clear_lockout(&self, id: i64) -> Result<()> {
        guarded!(self, b => b.clear_lockout(id).await)
    }

    /// Starts a session and returns its secret token (for the cookie); only its SHA-256 is stored.
    pub async fn create_session(&self, account_id: i64, ttl: chrono::Duration) -> Result<String> {
        let token = new_token();
        let now = Utc::now();
        guarded!(self, b => b.create_session(account_id, &token_hash(&token), now, now + ttl).await)?;
        Ok(token)
    }

    /// The live (unexpired) session for a cookie token, with its account.
    pub async fn session(&self, token: &str) -> Result<Option<(Session, Account)>> {
        guarded!(self, b => b.session(&token_hash(token), Utc::now()).await)
    }

    pub async fn delete_session(&self, token: &str) -> Result<()> {
        guarded!(self, b => b.delete_session(&token_hash(token)).await)
    }

    /// Logs an account out everywhere (after a password change, say).
    pub async fn delete_sessions_of(&self, account_id: i64) -> Result<u64> {
        guarded!(self, b => b.delete_sessions_of(account_id).await)
    }

    /// Logs an account out everywhere but in the session of `keep_token` (its owner changed the password
    /// there).
    pub async fn delete_other_sessions_of(&self, account_id: i64, keep_token: &str) -> Result<u64> {
        guarded!(self, b => b.delete_other_sessions_of(account_id, &token_hash(keep_token)).await)
    }

    /// Creates an API token; returns its id and the secret, which is shown once and stored hashed.
    pub async fn create_api_token(
        &self,
        account_id: i64,
        name: &str,
        expires: Option<DateTime<Utc>>,
    ) -> Result<(i64, String)> {
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(Error::Invalid("token name: 1-100 characters".into()));
        }
        let token = new_token();
        let id = guarded!(self, b => b.add_api_token(account_id, name, &token_hash(&token), Utc::now(), expires).await)?;
        Ok((id, token))
    }

    /// The token's metadata and account, if the token is known and unexpired; stamps `last_used`.
    pub async fn api_token(&self, token: &str) -> Result<Option<(ApiToken, Account)>> {
        guarded!(self, b => b.api_token(&token_hash(token), Utc::now()).await)
    }

    /// Tokens of one account, or all (`None`).
    pub async fn api_tokens(&self, account_id: Option<i64>) -> Result<Vec<ApiToken>> {
        guarded!(self, b => b.api_tokens(account_id).await)
    }

    pub async fn revoke_api_token(&self, id: i64) -> Result<()> {
        guarded!(self, b => b.revoke_api_token(id).await)
    }

    /// Issues a single-use invitation for `person` valid for `ttl`; returns it and its secret code, which
    /// is shown once and stored hashed.
    pub async fn create_invitation(
        &self,
        person: PersonId,
        ttl: chrono::Duration,
    ) -> Result<(Invitation, String)> {
        let code = new_token();
        let now = Utc::now();
        let expires = now + ttl;
        let id = guarded!(self, b => b.add_invitation(person.0, &token_hash(&code), now, expires).await)?;
        Ok((
            Invitation {
                id,
                person_id: person.0,
                created: now,
                expires,
                used: None,
            },
            code,
        ))
    }

    /// The pending (unused, unexpired) invitation with this code.
    pub async fn invitation(&self, code: &str) -> Result<Option<Invitation>> {
        guarded!(self, b => b.invitation(&token_hash(code), Utc::now()).await)
    }

    /// Every pending (unused, unexpired) invitation, oldest first.
    pub async fn pending_invitations(&self) -> Result<Vec<Invitation>> {
        guarded!(self, b => b.pending_invitations(Utc::now()).await)
    }

    /// Marks a pending invitation used; `false` when it was used, revoked or expired meanwhile (so two
    /// requests with one code cannot both create an account).
    pub async fn use_invitation(&self, id: i64) -> Result<bool> {
        guarded!(self, b => b.use_invitation(id, Utc::now()).await)
    }

    /// Withdraws an invitation.
    pub async fn revoke_invitation(&self, id: i64) -> Result<()> {
        guarded!(self, b => b.revoke_invitation(id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_sqlite_database_is_created_owner_only() {
        // Regression: facereko.db (people, faces, password hashes) was created 0644, readable by everyone.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::default_url(dir.path()), dir.path())
            .await
            .unwrap();
        store.add_person("Ada Lovelace").await.unwrap();
        let db = dir.path().join("facereko.db");
        assert_eq!(mode(&db), 0o600);
        let wal = dir.path().join("facereko.db-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
        // A database named by URL elsewhere is created the same way.
        let other = dir.path().join("sub/other.db");
        Store::open(&format!("sqlite://{}", other.display()), dir.path())
            .await
            .unwrap();
        assert_eq!(mode(&other), 0o600);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_spool_is_created_owner_only() {
        // Regression: spool.db (attempts waiting for the server) was created 0644.
        let dir = tempfile::tempdir().unwrap();
        let _spool = spool::Spool::open(dir.path()).await.unwrap();
        assert_eq!(mode(&dir.path().join("spool.db")), 0o600);
    }

    #[test]
    fn url_schemes_pick_the_backend() {
        assert_eq!(
            backend_of("sqlite://data/facereko.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(backend_of("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(backend_of("mysql://root@h/FaceReko"), Some(Backend::MySql));
        assert_eq!(
            backend_of("mariadb://root@h/FaceReko"),
            Some(Backend::MySql)
        );
        assert_eq!(backend_of("postgresql://p@h/x"), Some(Backend::Postgres));
        assert_eq!(backend_of("oracle://x"), None);
        assert_eq!(
            Store::default_url(Path::new("/var/lib/facereko")),
            "sqlite:///var/lib/facereko/facereko.db"
        );
    }

    #[test]
    fn embeddings_round_trip_as_little_endian_f32() {
        let v = [0.0f32, -1.5, 3.25e-8, f32::MAX];
        let b = encode_embedding(&v);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[4..8], &(-1.5f32).to_le_bytes());
        assert_eq!(decode_embedding(&b).unwrap(), v);
        assert!(decode_embedding(&b[..5]).is_err());
    }

    #[tokio::test]
    async fn a_replay_after_a_crash_does_not_store_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = Store::default_url(dir.path());
        let db = Db::Sqlite(backend::sqlite::connect(&url).await.unwrap());
        with_db!(&db, b => b.migrate().await).unwrap();
        let store = Store {
            inner: Arc::new(Inner {
                db,
                backend: Backend::Sqlite,
                url,
                data_dir: dir.path().to_path_buf(),
                photos: Photos::new(dir.path()).unwrap(),
                spool: Some(spool::Spool::open(dir.path()).await.unwrap()),
                breaker: Breaker::default(),
                probe_every: std::time::Duration::from_secs(1),
                directory_changed: tokio::sync::watch::channel(0).0,
                share_face_photos: false,
            }),
        };
        let spool = store.inner.spool.as_ref().unwrap();
        let a = NewAttempt {
            time: Utc::now(),
            door_id: "front".into(),
            card_uid: None,
            person_id: None,
            person_name: None,
            outcome: Outcome::UnknownCard,
            similarity: None,
            distance: None,
            confidence: None,
            timings: Default::default(),
            detail: None,
        };
        let first = random_16();
        let provisional = spool.push(&a, None, &first).await.unwrap();
        assert!(provisional.id < 0, "provisional ids are negative");
        // The server got the row, then the process died before deleting it from the spool.
        with_db!(store.db(), b => b.insert_attempt(&a, None, &first, true).await).unwrap();
        spool.push(&a, None, &random_16()).await.unwrap();
        assert_eq!(store.spooled().await.unwrap(), 2);
        assert_eq!(store.replay_spool().await.unwrap(), 2);
        assert_eq!(
            store.count_attempts().await.unwrap(),
            2,
            "the first one is not stored twice"
        );
        assert_eq!(store.spooled().await.unwrap(), 0);
        assert_eq!(store.replay_spool().await.unwrap(), 0);
    }

    #[cfg(not(all(feature = "mysql", feature = "postgres")))]
    #[tokio::test]
    async fn a_backend_left_out_of_the_build_is_named() {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(not(feature = "mysql"))]
        let (url, feature) = ("mysql://door:secret@db/FaceReko", "\"mysql\"");
        #[cfg(all(feature = "mysql", not(feature = "postgres")))]
        let (url, feature) = ("postgres://door:secret@db/facereko", "\"postgres\"");
        let err = Store::open(url, dir.path()).await.unwrap_err();
        assert!(matches!(err, Error::BackendNotCompiled { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(feature) && !text.contains("secret"), "{text}");
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("  Ada ").unwrap(), "Ada");
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"é".repeat(100)).is_ok());
        assert!(check_name(&"é".repeat(101)).is_err());
    }
}
