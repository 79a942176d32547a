//! A site with many doors: each door decides from its own local copy of the central directory.
//!
//! The central MySQL/MariaDB or PostgreSQL database stays the source of truth. Every change to people,
//! cards or faces there takes the next *directory revision* in its own transaction (the store's
//! `directory_rev`, a counter row locked until commit, so revisions commit in order); deletions leave a
//! tombstone. A door keeps a [`Replica`]: an SQLite file in its data directory (`replica.db`, the same
//! schema as the embedded store) holding people, cards, schedules, groups, holidays, validity dates and
//! face embeddings — not photos — and the revision it is at. Syncing asks the central database for its revision (one row)
//! and, when it moved, for every row changed since, read on one snapshot and applied in one local
//! transaction: a whole copy on first start, then only changes. No home-made protocol: the database's
//! own transactions make the copy exact.
//!
//! A sync runs every `fleet.poll_secs`, and at once when [`Replica::wake`] is called (the daemon calls it
//! when the retained MQTT change signal `<prefix>/sync` announces a newer revision). Decisions never
//! wait for it: [`FleetStore`] answers the door's card, person and face questions from the replica, and
//! sends attempts, events and the armed flag to the central store (which spools attempts while the
//! server is down, as before).
//!
//! Staleness: the replica's age is the time since the central database last confirmed it current
//! (kept in the replica, so it survives a restart). Past `fleet.max_staleness` the door does what
//! `fleet.when_stale` says — keep deciding and raise [`Alarm::ReplicaStale`] (default), decide on
//! the card alone, or refuse every tap — through [`facereko_door::Directory`]. A door that never got a
//! first copy refuses every tap (`store_unavailable`): an empty replica would call every card unknown.

mod config;

pub use config::{FleetConfig, ReplicaChoice, Staleness, WhenStale};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use facereko_domain::{Alarm, Attempt, Card, CardUid, Event, NewAttempt, Person, PersonId, Photo};
use facereko_door::{Directory, DoorStore, PortError};
use facereko_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

/// The replica's file in the data directory.
pub const REPLICA_FILE: &str = "replica.db";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    #[error(transparent)]
    Store(#[from] facereko_store::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Where a door's replica stands, for `facereko status`, `doctor` and the web app.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The central directory revision the replica holds (`None` before the first copy).
    pub rev: Option<i64>,
    /// When the central database last confirmed the replica current.
    pub synced_at: Option<DateTime<Utc>>,
    /// Why the last sync failed, while it keeps failing.
    pub error: Option<String>,
    /// The last sync that applied changes.
    pub last_change: Option<SyncReport>,
    /// `fleet.max_staleness`, in seconds.
    pub max_staleness_secs: u64,
    pub when_stale: String,
}

impl ReplicaStatus {
    /// The status of a replica file as it was left (nothing tried since it was opened).
    fn stored(state: Option<facereko_store::ReplicaState>, config: &FleetConfig) -> Self {
        Self {
            rev: state.map(|s| s.rev),
            synced_at: state.map(|s| s.synced_at),
            max_staleness_secs: config.max_staleness.0.as_secs(),
            when_stale: config.when_stale.to_string(),
            ..ReplicaStatus::default()
        }
    }

    /// How old the replica is at `now` (`None` before the first copy).
    pub fn age(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.synced_at
            .map(|t| (now - t).to_std().unwrap_or(Duration::ZERO))
    }

    /// Older than `fleet.max_staleness` (or never copied).
    pub fn stale(&self, now: DateTime<Utc>) -> bool {
        self.age(now)
            .is_none_or(|a| a > Duration::from_secs(self.max_staleness_secs))
    }

    /// One line: "revision 42, confirmed 3 s ago" or why not.
    pub fn summary(&self, now: DateTime<Utc>) -> String {
        let Some(age) = self.age(now) else {
            return match &self.error {
                Some(e) => format!("no copy yet: {e}"),
                None => "no copy yet".into(),
            };
        };
        let mut s = format!(
            "revision {}, confirmed {} ago",
            self.rev.unwrap_or(0),
            age_text(age)
        );
        if self.stale(now) {
            s.push_str(&format!(
                " — STALE (fleet.max_staleness {}, fleet.when_stale = {})",
                config::human(Duration::from_secs(self.max_staleness_secs)),
                self.when_stale
            ));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("; central database: {e}"));
        }
        s
    }
}

/// "4 s", "12 min", "3 h 5 min", "2 d 4 h".
pub fn age_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// One sync that applied changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The revision before (-1: a whole copy).
    pub from: i64,
    pub to: i64,
    /// Rows changed or deleted.
    pub changes: usize,
    pub took_ms: u64,
    pub at: DateTime<Utc>,
}

/// A door's local copy of the central directory (see the crate notes).
pub struct Replica {
    door_id: String,
    central: Store,
    local: Store,
    config: FleetConfig,
    status: watch::Sender<ReplicaStatus>,
    wake: Notify,
    /// One sync at a time.
    syncing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("door_id", &self.door_id)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens (or creates) `<data_dir>/replica.db` beside the door's other files. Does not reach the
    /// central database: call [`Replica::sync`] or [`Replica::spawn`].
    pub async fn open(
        door_id: &str,
        central: Store,
        data_dir: &Path,
        config: &FleetConfig,
    ) -> Result<Arc<Self>> {
        config.validate()?;
        let url = format!("sqlite://{}", data_dir.join(REPLICA_FILE).display());
        let local = Store::open(&url, data_dir).await?;
        let status = ReplicaStatus::stored(local.replica_state().await?, config);
        Ok(Arc::new(Self {
            door_id: door_id.to_string(),
            central,
            local,
            config: config.clone(),
            status: watch::channel(status).0,
            wake: Notify::new(),
            syncing: tokio::sync::Mutex::new(()),
        }))
    }

    /// Where the replica in `data_dir` stands, read from its file without reaching the central database
    /// (`None` when there is no replica file).
    pub async fn inspect(data_dir: &Path, config: &FleetConfig) -> Result<Option<ReplicaStatus>> {
        let path = data_dir.join(REPLICA_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let local = Store::open(&format!("sqlite://{}", path.display()), data_dir).await?;
        let state = local.replica_state().await;
        local.close().await;
        Ok(Some(ReplicaStatus::stored(state?, config)))
    }

    /// The replica itself (an SQLite [`Store`]): the door's gallery loads its faces from it.
    pub fn local(&self) -> &Store {
        &self.local
    }

    pub fn central(&self) -> &Store {
        &self.central
    }

    pub fn status(&self) -> ReplicaStatus {
        self.status.borrow().clone()
    }

    pub fn watch_status(&self) -> watch::Receiver<ReplicaStatus> {
        self.status.subscribe()
    }

    /// Makes the sync loop ask the central database now (the MQTT change signal).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Brings the replica up to the central database's current revision. `Ok(None)`: it already was
    /// (and is now confirmed current). A failure leaves the replica as it was.
    pub async fn sync(&self) -> Result<Option<SyncReport>> {
        let r = self.sync_inner().await;
        self.status.send_modify(|s| match &r {
            Ok(_) => s.error = None,
            Err(e) => s.error = Some(e.to_string()),
        });
        r
    }

    async fn sync_inner(&self) -> Result<Option<SyncReport>> {
        let _one = self.syncing.lock().await;
        let started = Instant::now();
        // The copy is at least as fresh as the moment before the central database was asked.
        // (Kept to the millisecond, as the replica stores it.)
        let asked = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
        let state = self.local.replica_state().await?;
        let central_rev = self.central.directory_rev().await?;
        let held = state.map(|s| s.rev);
        if held == Some(central_rev) {
            self.local.mark_replica_synced(central_rev, asked).await?;
            self.status.send_modify(|s| {
                s.rev = Some(central_rev);
                s.synced_at = Some(asked);
            });
            return Ok(None);
        }
        let since = match held {
            Some(h) if h > central_rev => {
                tracing::warn!(
                    "the central database is at directory revision {central_rev}, behind this door's \
                     copy at {h} (restored from a backup?): copying it whole"
                );
                -1
            }
            Some(h) => h,
            None => -1,
        };
        let changes = self.central.directory_changes(since).await?;
        self.local.apply_directory_changes(&changes, asked).await?;
        let report = SyncReport {
            from: since,
            to: changes.rev,
            changes: changes.changes.len(),
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            at: asked,
        };
        tracing::info!(
            "replica: revision {} → {} ({} changes, {} ms)",
            report.from,
            report.to,
            report.changes,
            report.took_ms
        );
        self.status.send_modify(|s| {
            s.rev = Some(changes.rev);
            s.synced_at = Some(asked);
            s.last_change = Some(report.clone());
        });
        Ok(Some(report))
    }

    /// Syncs now, then every `fleet.poll_secs` and whenever [`Replica::wake`] is called, until the
    /// returned task is aborted. Raises [`Alarm::ReplicaStale`] when the copy gets older than
    /// `fleet.max_staleness` (queued in the central outbox: it goes out once the database takes it).
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        let poll = self.config.poll();
        tokio::spawn(async move {
            let mut alarm = StaleAlarm::default();
            loop {
                let was_failing = me.status.borrow().error.is_some();
                match me.sync().await {
                    Err(e) if !was_failing => tracing::warn!(
                        "replica: the central database cannot be reached ({e}); deciding from this \
                         door's copy ({})",
                        me.status().summary(Utc::now())
                    ),
                    Ok(_) if was_failing => {
                        tracing::info!("replica: the central database answers again")
                    }
                    _ => {}
                }
                alarm.check(&me).await;
                tokio::select! {
                    _ = me.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        })
    }
}

/// The stale alarm's state: raised once per stale period. Its event is kept until the central outbox
/// takes it, even when the replica is fresh again by then (the database came back): the site still
/// learns that this door decided on an old copy for a while.
#[derive(Default)]
struct StaleAlarm {
    raised: bool,
    pending: Option<Event>,
}

impl StaleAlarm {
    async fn check(&mut self, replica: &Replica) {
        let status = replica.status();
        let now = Utc::now();
        if status.synced_at.is_some() && status.stale(now) {
            if !self.raised {
                self.raised = true;
                tracing::error!(
                    "replica is stale: {} — a card or face revoked since still {}",
                    status.summary(now),
                    match replica.config.when_stale {
                        WhenStale::Alarm => "opens",
                        WhenStale::CardOnly => "opens with its card",
                        WhenStale::Deny => "cannot open: every tap is refused",
                    }
                );
                self.pending = Some(Event::Alarm {
                    door_id: replica.door_id.clone(),
                    alarm: Alarm::ReplicaStale,
                    time: now,
                });
            }
        } else {
            self.raised = false;
        }
        if let Some(event) = &self.pending {
            match replica.central.enqueue_event(&replica.door_id, event).await {
                Ok(_) => self.pending = None,
                Err(e) => tracing::debug!("stale alarm not queued yet: {e}"),
            }
        }
    }
}

/// The door's storage on a site: card, person and face questions from the [`Replica`], attempts,
/// events and the armed flag to the central store.
#[derive(Clone, Debug)]
pub struct FleetStore {
    replica: Arc<Replica>,
}

impl FleetStore {
    pub fn new(replica: Arc<Replica>) -> Self {
        Self { replica }
    }
}

#[async_trait]
impl DoorStore for FleetStore {
    async fn lookup_card(
        &self,
        uid: &CardUid,
    ) -> std::result::Result<Option<(Card, Person)>, PortError> {
        Ok(self.replica.local.lookup_card(uid).await?)
    }

    async fn person(&self, id: PersonId) -> std::result::Result<Option<Person>, PortError> {
        Ok(self.replica.local.person(id).await?)
    }

    async fn record_attempt(
        &self,
        attempt: &NewAttempt,
        photo: Option<&Photo>,
    ) -> std::result::Result<Attempt, PortError> {
        DoorStore::record_attempt(&self.replica.central, attempt, photo).await
    }

    /// The central flag, remembered in the replica; while the central database cannot be reached, the
    /// last one this door knew (or none: the door's default), so a door restarted during an outage
    /// comes back armed or disarmed as it was.
    async fn armed(&self, door_id: &str) -> std::result::Result<Option<bool>, PortError> {
        match self.replica.central.armed(door_id).await {
            Ok(v) => {
                if let Some(a) = v {
                    if let Err(e) = self.replica.local.set_armed(door_id, a).await {
                        tracing::warn!("could not remember the armed state in the replica: {e}");
                    }
                }
                Ok(v)
            }
            Err(e) => {
                let known = self.replica.local.armed(door_id).await?;
                tracing::warn!(
                    "the central database cannot say whether this door is armed ({e}); using the last \
                     state it knew: {}",
                    known.map_or("none (the default)", |a| if a { "armed" } else { "disarmed" })
                );
                Ok(known)
            }
        }
    }

    async fn set_armed(&self, door_id: &str, armed: bool) -> std::result::Result<(), PortError> {
        self.replica.local.set_armed(door_id, armed).await?;
        DoorStore::set_armed(&self.replica.central, door_id, armed).await
    }

    async fn enqueue_event(
        &self,
        door_id: &str,
        event: &Event,
    ) -> std::result::Result<(), PortError> {
        DoorStore::enqueue_event(&self.replica.central, door_id, event).await
    }

    async fn enrolled_faces(
        &self,
        person: PersonId,
    ) -> std::result::Result<Option<usize>, PortError> {
        DoorStore::enrolled_faces(&self.replica.local, person).await
    }

    async fn last_attempt(&self, door_id: &str) -> std::result::Result<Option<Attempt>, PortError> {
        DoorStore::last_attempt(&self.replica.central, door_id).await
    }

    fn directory(&self) -> Directory {
        directory(
            &self.replica.status.borrow(),
            self.replica.config.when_stale,
            Utc::now(),
        )
    }
}

/// The staleness rule: what a door may decide on with this replica at `now`.
pub fn directory(status: &ReplicaStatus, when_stale: WhenStale, now: DateTime<Utc>) -> Directory {
    let Some(age) = status.age(now) else {
        return Directory::Refused(
            "this door has no copy of the cards and faces yet: the central database has not been \
             reached since it was set up"
                .into(),
        );
    };
    if !status.stale(now) {
        return Directory::Trusted;
    }
    let why = format!(
        "this door's copy of the cards and faces is {} old (fleet.max_staleness {})",
        age_text(age),
        config::human(Duration::from_secs(status.max_staleness_secs))
    );
    match when_stale {
        WhenStale::Alarm => Directory::Trusted,
        WhenStale::CardOnly => Directory::CardOnly(why),
        WhenStale::Deny => Directory::Refused(why),
    }
}

#[cfg(test)]
mod tests;
