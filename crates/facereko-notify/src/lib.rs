//! FaceReko's notifier: tells MQTT (plain, TLS, AWS IoT Core), e-mail and webhooks what happened at a door.
//!
//! The one design decision a newcomer must know: **the door never talks to a sink.** The door (through the
//! store) writes each event to the outbox in the same transaction as the attempt; one background task per
//! sink reads the outbox after its own cursor, delivers in order, and moves the cursor only once the sink
//! confirmed (MQTT PUBACK, SMTP 250, HTTP 2xx). A broker, mail server or webhook that is down for hours
//! delays delivery with exponential back-off; it never loses an event and never slows the door. Delivery
//! is at least once: every payload carries the event id (the outbox id) so consumers can drop duplicates.
//!
//! The original connected to AWS IoT at import time and gave up when the network was down; here a sink
//! that cannot be reached is just a sink with a backlog, visible in [`NotifierHandle::status`].
//!
//! What leaves the door is the event minus the card UID: in `card` mode a UID is the whole credential,
//! so attempts carry it only with `[outbox] include_card_uid = true` (one setting for every sink).
//!
//! Wiring, in the daemon:
//!
//! ```no_run
//! # async fn wire(store: facereko_store::Store, config: facereko_notify::NotifyConfig)
//! #     -> facereko_notify::Result<()> {
//! let (tx, mut commands) = tokio::sync::mpsc::channel(16);
//! // The door's current state, kept up to date by the daemon: the retained MQTT state at each connect.
//! let (live_tx, live) = tokio::sync::watch::channel(facereko_notify::LiveState::default());
//! let notifier = facereko_notify::spawn(store.clone(), "front", &config, Some(tx), Some(live)).await?;
//! // The door: after `store.record_attempt(..)` (which writes the outbox entry) call `notifier.wake()`;
//! // for armed/disarmed, door state and alarms call `notifier.publish(&event).await?`.
//! // The door takes authorised MQTT commands from `commands.recv().await`.
//! // The web page and `facereko status`: `notifier.status().await`.
//! notifier.shutdown().await;
//! # drop(commands.try_recv()); drop(live_tx);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use facereko_domain::{DoorState, Event};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub mod commands;
pub mod config;
pub mod email;
pub mod mqtt;
pub mod outbox;
pub mod payload;
pub mod sim;
#[cfg(feature = "aws")]
pub mod sns;
pub mod tls;
pub mod webhook;

pub use commands::{CommandRequest, DoorCommand};
pub use config::{
    EmailConfig, EventKind, HomeAssistantConfig, MqttCommandsConfig, MqttConfig, NotifyConfig,
    OutboxConfig, Secret, SmtpTls, WebhookConfig,
};
#[cfg(any(test, feature = "testing"))]
pub use outbox::MemoryOutbox;
pub use outbox::{backlog, Outbox, OutboxEntry, SinkStats};
pub use payload::EventPayload;

/// The door's state now, for the retained MQTT state published at every (re)connect. The daemon feeds
/// it from the door controller through a `watch` channel (this crate does not know the door crate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveState {
    /// The system is Active.
    pub armed: bool,
    /// The lock is released.
    pub unlocked: bool,
    /// The door contact says open; `None` without a door contact.
    pub door_open: Option<bool>,
}

impl LiveState {
    /// The state's `door` field: `unlocked` while the lock is released, else `opened` while the contact
    /// says open, else `locked`.
    pub fn door(&self) -> DoorState {
        if self.unlocked {
            DoorState::Unlocked
        } else if self.door_open == Some(true) {
            DoorState::Opened
        } else {
            DoorState::Locked
        }
    }
}

/// Errors of the notifier crate (set-up and store access; delivery failures are [`DeliveryError`]s and
/// end up in the status, not here).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config key {key}: {reason}")]
    Config { key: String, reason: String },
    #[error("config key {key}: cannot read {path}: {source}")]
    ConfigFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The outbox's store failed; the store's own error (unreachable, refused, …) is kept as it is.
    #[error("outbox: {0}")]
    Store(#[from] facereko_store::Error),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("door id {0:?} cannot be used in MQTT topics (1–64 characters, no /, + or #)")]
    DoorId(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why one delivery failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later: the sink is unreachable, timed out or said "try again".
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (the receiver refused this message for good): the entry is skipped, logged
    /// and counted as dropped so it cannot block every later event.
    #[error("{0}")]
    Permanent(String),
}

/// One destination of events. Implementations: [`mqtt::MqttNotifier`], [`email::EmailNotifier`],
/// [`webhook::WebhookNotifier`] and [`sim::RecordingNotifier`].
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// The sink's cursor name in the outbox (`mqtt`, `email`, `webhook:<name>`): keep it stable.
    fn name(&self) -> &str;
    /// Delivers one entry; `Ok` only once the far end confirmed it. Events this sink does not want are
    /// `Ok` at once.
    async fn deliver(&self, entry: &OutboxEntry) -> std::result::Result<(), DeliveryError>;
    /// Resolves when a sink that failed may work again (e.g. the broker connection came back), to cut a
    /// back-off short. The default never resolves.
    async fn ready(&self) {
        std::future::pending::<()>().await
    }
    /// Whether a connection-oriented sink is connected now; `None` for the others.
    fn connected(&self) -> Option<bool> {
        None
    }
    /// Last words before the process stops (MQTT: retained offline state, clean disconnect).
    async fn shutdown(&self) {}
}

/// Status of one sink for `facereko status` and the web page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkStatus {
    pub name: String,
    /// Events not yet delivered (from the outbox); `None` when the store could not be asked.
    pub pending: Option<u64>,
    pub oldest_pending: Option<DateTime<Utc>>,
    pub connected: Option<bool>,
    /// Delivered since start.
    pub delivered: u64,
    /// Skipped since start because the receiver refused them for good.
    pub dropped: u64,
    pub last_delivered_id: Option<i64>,
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// The latest failure; cleared by the next success.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures in a row.
    pub failures: u32,
    /// When the next try is due while backing off.
    pub retry_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyStatus {
    pub door_id: String,
    pub sinks: Vec<SinkStatus>,
    /// Set when the outbox itself could not be read.
    pub store_error: Option<String>,
}

impl NotifyStatus {
    /// Events waiting in the fullest queue.
    pub fn max_pending(&self) -> u64 {
        self.sinks
            .iter()
            .filter_map(|s| s.pending)
            .max()
            .unwrap_or(0)
    }
}

struct Inner {
    door_id: String,
    outbox: Arc<dyn Outbox>,
    config: OutboxConfig,
    sinks: Vec<Arc<dyn Notifier>>,
    status: Mutex<Vec<SinkStatus>>,
    wake: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("door_id", &self.door_id)
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn update(&self, index: usize, f: impl FnOnce(&mut SinkStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = s.get_mut(index) {
            f(s);
        }
    }

    fn record_error(&self, index: usize, error: &str, retry_in: Option<Duration>) {
        let now = Utc::now();
        self.update(index, |s| {
            s.last_error = Some(error.to_string());
            s.last_error_at = Some(now);
            s.failures = s.failures.saturating_add(1);
            s.retry_at = retry_in.and_then(|d| chrono::Duration::from_std(d).ok().map(|d| now + d));
        });
    }
}

/// The running notifier: cheap to clone; hand it to the door, the web app and the CLI status command.
#[derive(Clone, Debug)]
pub struct NotifierHandle {
    inner: Arc<Inner>,
}

impl NotifierHandle {
    /// Tells the sinks there is something new in the outbox (after `Store::record_attempt` or
    /// `enqueue_event`). Never blocks; without it they find the entry at their next poll.
    pub fn wake(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Writes an event to the outbox and wakes the sinks. For events that are not written together with
    /// an attempt (armed/disarmed, door state, alarms).
    pub async fn publish(&self, event: &Event) -> Result<i64> {
        let id = self
            .inner
            .outbox
            .enqueue(&self.inner.door_id, event)
            .await?;
        self.wake();
        Ok(id)
    }

    pub fn door_id(&self) -> &str {
        &self.inner.door_id
    }

    /// Queue length and last error per sink.
    pub async fn status(&self) -> NotifyStatus {
        let mut sinks = self
            .inner
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (s, sink) in sinks.iter_mut().zip(&self.inner.sinks) {
            s.connected = sink.connected();
        }
        let store_error = match self.inner.outbox.backlog(&self.inner.door_id).await {
            Ok(backlog) => {
                for s in &mut sinks {
                    if let Some(b) = backlog.iter().find(|b| b.sink == s.name) {
                        s.pending = Some(b.pending);
                        s.oldest_pending = b.oldest_pending;
                    }
                }
                None
            }
            Err(e) => Some(e.to_string()),
        };
        NotifyStatus {
            door_id: self.inner.door_id.clone(),
            sinks,
            store_error,
        }
    }

    /// Stops delivery (an entry being delivered is finished or abandoned within a few seconds; it stays in
    /// the outbox), then lets each sink say goodbye (MQTT publishes its retained offline state).
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(5), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        for sink in &self.inner.sinks {
            sink.shutdown().await;
        }
    }
}

/// The back-off table of the `[outbox]` section: `min · 2^(failures-1)`, capped at `max`.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn new(config: &OutboxConfig) -> Self {
        Self {
            min: Duration::from_secs(config.retry_min_secs),
            max: Duration::from_secs(config.retry_max_secs),
            failures: 0,
        }
    }

    /// The wait before the next try: the doubled delay, capped, then "equal jitter" — a random point in
    /// its upper half. Doors that lost one broker together (a fleet after a broker restart) would otherwise
    /// retry in lock-step and knock it over again; half the delay stays fixed so a sink is never retried
    /// sooner than half the schedule.
    fn next(&mut self) -> Duration {
        use rand::Rng;
        let d = self
            .min
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = d / 2;
        let spread = u64::try_from((d - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::thread_rng().gen_range(0..=spread))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Starts the notifier for `door_id` over the real store with the sinks the config enables; commands
/// received over MQTT (when enabled) go to `commands`; `live` is the door's current state (the retained
/// MQTT state at every connect). Needs a Tokio runtime; returns once every sink is registered in the
/// outbox (connections are made in the background).
pub async fn spawn(
    store: facereko_store::Store,
    door_id: &str,
    config: &NotifyConfig,
    commands: Option<mpsc::Sender<CommandRequest>>,
    live: Option<watch::Receiver<LiveState>>,
) -> Result<NotifierHandle> {
    spawn_with(Arc::new(store), door_id, config, commands, live).await
}

/// [`spawn`] over any [`Outbox`] (e.g. `MemoryOutbox` in tests).
pub async fn spawn_with(
    outbox: Arc<dyn Outbox>,
    door_id: &str,
    config: &NotifyConfig,
    commands: Option<mpsc::Sender<CommandRequest>>,
    live: Option<watch::Receiver<LiveState>>,
) -> Result<NotifierHandle> {
    config.validate()?;
    check_door_id(door_id)?;
    let mut sinks: Vec<Arc<dyn Notifier>> = Vec::new();
    if config.mqtt.enabled() {
        let armed = match &live {
            Some(live) => Some(live.borrow().armed),
            None => outbox.armed(door_id).await.unwrap_or_else(|e| {
                tracing::warn!(door_id, error = %e, "cannot read the armed flag for the MQTT state");
                None
            }),
        };
        sinks.push(Arc::new(mqtt::MqttNotifier::start(
            &config.mqtt,
            door_id,
            armed,
            live,
            commands,
        )?));
    }
    if config.email.enabled() {
        sinks.push(Arc::new(email::EmailNotifier::new(
            &config.email,
            outbox.clone(),
        )?));
    }
    for w in &config.webhook {
        sinks.push(Arc::new(webhook::WebhookNotifier::new(w)?));
    }
    if config.aws.sns_topic_arn.is_some() {
        #[cfg(feature = "aws")]
        sinks.push(Arc::new(sns::SnsNotifier::new(&config.aws).await?));
        #[cfg(not(feature = "aws"))]
        return Err(Error::Config {
            key: "aws.sns_topic_arn".into(),
            reason: "needs FaceReko built with `--features aws`".into(),
        });
    }
    Ok(spawn_sinks(outbox, door_id, &config.outbox, sinks).await)
}

fn check_door_id(door_id: &str) -> Result<()> {
    if door_id.is_empty() || door_id.len() > 64 || door_id.contains(['/', '+', '#', '\0']) {
        return Err(Error::DoorId(door_id.to_string()));
    }
    Ok(())
}

/// Starts one delivery task per sink over `outbox`, plus the pruning task. Each sink is registered in the
/// outbox before this returns, so every event written afterwards reaches it; if the database is down at
/// start, the sink's task keeps trying (and events written meanwhile are not replayed to a brand-new sink).
pub async fn spawn_sinks(
    outbox: Arc<dyn Outbox>,
    door_id: &str,
    config: &OutboxConfig,
    sinks: Vec<Arc<dyn Notifier>>,
) -> NotifierHandle {
    let status = sinks
        .iter()
        .map(|s| SinkStatus {
            name: s.name().to_string(),
            ..Default::default()
        })
        .collect();
    let inner = Arc::new(Inner {
        door_id: door_id.to_string(),
        outbox,
        config: config.clone(),
        sinks,
        status: Mutex::new(status),
        wake: watch::channel(0).0,
        stop: watch::channel(false).0,
        tasks: Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    for index in 0..inner.sinks.len() {
        let name = inner.sinks[index].name().to_string();
        let registered = match inner.outbox.register_sink(&inner.door_id, &name).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(sink = %name, error = %e, "cannot register the sink in the outbox yet");
                inner.record_error(index, &e.to_string(), None);
                false
            }
        };
        tasks.push(tokio::spawn(run_sink(inner.clone(), index, registered)));
    }
    tasks.push(tokio::spawn(run_pruner(inner.clone())));
    *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
    NotifierHandle { inner }
}

/// Waits `d`, or less when `sink` (the one that failed) says it is ready again; `false` when asked to
/// stop. After a store failure there is no sink to wait for (`None`): a sink that stays connected must
/// not end the wait, or the loop would spin while the database is down.
async fn pause(inner: &Inner, sink: Option<&dyn Notifier>, d: Duration) -> bool {
    let mut stop = inner.stop.subscribe();
    if *stop.borrow_and_update() {
        return false;
    }
    let ready = async {
        match sink {
            Some(sink) => sink.ready().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = ready => true,
        _ = stop.changed() => false,
    }
}

async fn run_sink(inner: Arc<Inner>, index: usize, registered: bool) {
    let sink = inner.sinks[index].clone();
    let name = sink.name().to_string();
    let door = inner.door_id.clone();
    let mut backoff = Backoff::new(&inner.config);
    let mut stop = inner.stop.subscribe();
    let mut wake = inner.wake.subscribe();
    let poll = Duration::from_millis(inner.config.poll_interval_ms);

    if !registered {
        loop {
            match inner.outbox.register_sink(&door, &name).await {
                Ok(()) => break,
                Err(e) => {
                    let d = backoff.next();
                    tracing::warn!(sink = %name, error = %e, retry_in = ?d,
                        "cannot register the sink in the outbox");
                    inner.record_error(index, &e.to_string(), Some(d));
                    if !pause(&inner, None, d).await {
                        return;
                    }
                }
            }
        }
    }
    backoff.reset();

    'fetch: loop {
        if *stop.borrow() {
            return;
        }
        wake.borrow_and_update();
        let batch = match inner.outbox.pending(&door, &name, inner.config.batch).await {
            Ok(b) => b,
            Err(e) => {
                let d = backoff.next();
                tracing::warn!(sink = %name, error = %e, retry_in = ?d, "cannot read the outbox");
                inner.record_error(index, &e.to_string(), Some(d));
                // The store failed, not the sink: no sink readiness ends this wait.
                if !pause(&inner, None, d).await {
                    return;
                }
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = wake.changed() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        for entry in batch {
            if *stop.borrow() {
                return;
            }
            let entry = if inner.config.include_card_uid {
                entry
            } else {
                without_card_uid(entry)
            };
            let result = sink.deliver(&entry).await;
            let dropped = match result {
                Ok(()) => false,
                Err(DeliveryError::Permanent(msg)) => {
                    tracing::error!(sink = %name, event_id = entry.id, error = %msg,
                        "the receiver refused the event for good; skipping it");
                    inner.record_error(index, &format!("event {} dropped: {msg}", entry.id), None);
                    true
                }
                Err(DeliveryError::Transient(msg)) => {
                    let d = backoff.next();
                    tracing::warn!(sink = %name, event_id = entry.id, error = %msg, retry_in = ?d,
                        "delivery failed; will retry");
                    inner.record_error(index, &msg, Some(d));
                    if !pause(&inner, Some(sink.as_ref()), d).await {
                        return;
                    }
                    continue 'fetch;
                }
            };
            if let Err(e) = inner.outbox.ack(&door, &name, entry.id).await {
                // Delivered but not recorded: it will be sent again (consumers de-duplicate by event id).
                let d = backoff.next();
                tracing::warn!(sink = %name, event_id = entry.id, error = %e, "cannot move the cursor");
                inner.record_error(index, &e.to_string(), Some(d));
                if !pause(&inner, None, d).await {
                    return;
                }
                continue 'fetch;
            }
            backoff.reset();
            let now = Utc::now();
            inner.update(index, |s| {
                if dropped {
                    s.dropped += 1;
                } else {
                    s.delivered += 1;
                    s.last_delivered_id = Some(entry.id);
                    s.last_delivered_at = Some(now);
                    s.last_error = None;
                    s.last_error_at = None;
                }
                s.failures = 0;
                s.retry_at = None;
            });
        }
    }
}

/// The entry as sinks see it without `include_card_uid`: no card UID (in `card` mode it is the credential).
fn without_card_uid(mut entry: OutboxEntry) -> OutboxEntry {
    if let Event::Attempt { attempt, .. } = &mut entry.event {
        attempt.card_uid = None;
    }
    entry
}

async fn run_pruner(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let keep = chrono::Duration::days(i64::from(inner.config.keep_days));
    loop {
        match inner.outbox.prune(Utc::now() - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned delivered outbox entries"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::tests::attempt;
    use crate::sim::RecordingNotifier;
    use facereko_domain::Outcome;
    use std::path::Path;

    fn fast() -> OutboxConfig {
        OutboxConfig {
            retry_min_secs: 1,
            retry_max_secs: 4,
            poll_interval_ms: 20,
            ..Default::default()
        }
    }

    fn event(id: i64) -> Event {
        Event::Attempt {
            door_id: "front".into(),
            attempt: attempt(id, Outcome::Granted, Some("Ada")),
        }
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..500 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let config = OutboxConfig {
            retry_min_secs: 1,
            retry_max_secs: 10,
            ..Default::default()
        };
        let mut b = Backoff::new(&config);
        for full in [1000u128, 2000, 4000, 8000, 10_000, 10_000] {
            let ms = b.next().as_millis();
            assert!(
                (full / 2..=full).contains(&ms),
                "{ms} ms for a {full} ms step"
            );
        }
        b.reset();
        assert!(b.next().as_millis() <= 1000);
        // Two doors that failed together do not retry together.
        let capped = |_| {
            let mut b = Backoff::new(&config);
            (0..5).map(|_| b.next()).last().unwrap()
        };
        let waits: std::collections::HashSet<Duration> = (0..20).map(capped).collect();
        assert!(waits.len() > 1, "every door would retry at the same moment");
    }

    #[tokio::test]
    async fn every_event_is_delivered_in_order_after_the_sink_recovers() {
        let outbox = Arc::new(MemoryOutbox::new(Path::new("/nonexistent")));
        let sink = Arc::new(RecordingNotifier::new("rec"));
        sink.set_failing(true);
        let handle = spawn_sinks(outbox.clone(), "front", &fast(), vec![sink.clone()]).await;
        until("registration", || outbox_has_sink(&outbox)).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(handle.publish(&event(i)).await.unwrap());
        }
        until("a failure", || sink.attempts() > 0).await;
        let st = handle.status().await;
        assert_eq!(st.sinks[0].pending, Some(5));
        assert!(st.sinks[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("simulated"));
        assert!(st.sinks[0].retry_at.is_some());
        assert!(sink.delivered().is_empty());

        sink.set_failing(false);
        until("all delivered", || sink.delivered().len() == 5).await;
        assert_eq!(sink.delivered(), ids);
        let st = settled(&handle).await;
        assert_eq!(st.sinks[0].pending, Some(0));
        assert_eq!(st.sinks[0].delivered, 5);
        assert_eq!(st.sinks[0].last_error, None);
        assert_eq!(st.sinks[0].last_delivered_id, ids.last().copied());
        handle.shutdown().await;
    }

    /// The status once the healthy sinks acknowledged everything they delivered.
    async fn settled(handle: &NotifierHandle) -> NotifyStatus {
        for _ in 0..100 {
            let st = handle.status().await;
            if st.sinks.iter().any(|s| s.pending == Some(0)) {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.status().await
    }

    /// The first `register_sink` happens on the sink's task; true once its cursor exists.
    fn outbox_has_sink(outbox: &MemoryOutbox) -> bool {
        // The memory outbox never waits, so one poll answers.
        matches!(poll_once(outbox.backlog("front")), Some(Ok(b)) if !b.is_empty())
    }

    /// Regression: attempt events carried the card UID to every sink, and in `card` mode the UID is the
    /// whole credential.
    #[tokio::test]
    async fn attempts_reach_the_sinks_without_the_card_uid_unless_configured() {
        for include in [false, true] {
            let outbox = Arc::new(MemoryOutbox::new(Path::new("/nonexistent")));
            let sink = Arc::new(RecordingNotifier::new("rec"));
            let config = OutboxConfig {
                include_card_uid: include,
                ..fast()
            };
            let handle = spawn_sinks(outbox.clone(), "front", &config, vec![sink.clone()]).await;
            until("registration", || outbox_has_sink(&outbox)).await;
            handle
                .publish(&Event::Attempt {
                    door_id: "front".into(),
                    attempt: attempt(1, Outcome::UnknownCard, None),
                })
                .await
                .unwrap();
            until("delivered", || sink.delivered().len() == 1).await;
            let entry = sink.entries().remove(0);
            let payload = EventPayload::from_entry(&entry);
            let json = String::from_utf8(payload.to_json()).unwrap();
            let summary = payload::summary(&payload);
            if include {
                assert!(json.contains(r#""card_uid":"04:A2:2B:19""#), "{json}");
                assert_eq!(summary, "card 04:A2:2B:19 denied (unknown card) at front");
            } else {
                assert!(
                    !json.contains("card_uid") && !json.contains("04:A2"),
                    "{json}"
                );
                assert_eq!(summary, "someone denied (unknown card) at front");
            }
            handle.shutdown().await;
        }
    }

    #[tokio::test]
    async fn a_permanently_refused_event_is_skipped_and_counted() {
        let outbox = Arc::new(MemoryOutbox::new(Path::new("/nonexistent")));
        let sink = Arc::new(RecordingNotifier::new("rec"));
        let handle = spawn_sinks(outbox.clone(), "front", &fast(), vec![sink.clone()]).await;
        until("registration", || outbox_has_sink(&outbox)).await;
        sink.refuse(1);
        let a = handle.publish(&event(1)).await.unwrap();
        assert_eq!(a, 1, "a fresh memory outbox counts from 1");
        let b = handle.publish(&event(2)).await.unwrap();
        let c = handle.publish(&event(3)).await.unwrap();
        until("two delivered", || sink.delivered().len() == 2).await;
        assert_eq!(sink.delivered(), vec![b, c]);
        let st = settled(&handle).await;
        assert_eq!(st.sinks[0].dropped, 1);
        assert_eq!(st.sinks[0].pending, Some(0));
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_database_outage_delays_but_loses_nothing() {
        let outbox = Arc::new(MemoryOutbox::new(Path::new("/nonexistent")));
        let sink = Arc::new(RecordingNotifier::new("rec"));
        outbox.set_failing(true);
        let handle = spawn_sinks(outbox.clone(), "front", &fast(), vec![sink.clone()]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = handle.status().await;
        let why = st.store_error.expect("the outage is reported");
        assert!(why.contains("is unreachable"), "{why}");
        assert!(st.sinks[0].last_error.is_some());
        outbox.set_failing(false);
        until("registration", || outbox_has_sink(&outbox)).await;
        let a = handle.publish(&event(1)).await.unwrap();
        until("delivered", || sink.delivered() == vec![a]).await;
        handle.shutdown().await;
    }

    /// A sink that is always ready, like an MQTT sink that stays connected.
    #[derive(Debug)]
    struct AlwaysReady(RecordingNotifier);

    #[async_trait]
    impl Notifier for AlwaysReady {
        fn name(&self) -> &str {
            self.0.name()
        }
        async fn deliver(&self, entry: &OutboxEntry) -> std::result::Result<(), DeliveryError> {
            self.0.deliver(entry).await
        }
        async fn ready(&self) {}
    }

    #[tokio::test]
    async fn a_database_outage_is_retried_at_the_back_off_even_with_a_connected_sink() {
        // Regression: a store failure waited for the sink to be ready, which a connected MQTT sink is at
        // once; the loop spun and wrote gigabytes of warnings while the database was down.
        let outbox = Arc::new(MemoryOutbox::new(Path::new("/nonexistent")));
        let sink = Arc::new(AlwaysReady(RecordingNotifier::new("mqtt")));
        let handle = spawn_sinks(outbox.clone(), "front", &fast(), vec![sink.clone()]).await;
        until("registration", || outbox_has_sink(&outbox)).await;
        outbox.set_failing(true);
        handle.wake();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let failures = handle.status().await.sinks[0].failures;
        assert!(
            (1..=3).contains(&failures),
            "{failures} outbox reads in 1.5 s with a 1 s back-off"
        );
        outbox.set_failing(false);
        let a = handle.publish(&event(1)).await.unwrap();
        until("delivered", || sink.0.delivered() == vec![a]).await;
        handle.shutdown().await;
    }

    #[tokio::test]
    async fn a_slow_sink_does_not_hold_up_the_others() {
        let outbox = Arc::new(MemoryOutbox::new(Path::new("/nonexistent")));
        let stuck = Arc::new(RecordingNotifier::new("stuck"));
        stuck.set_failing(true);
        let ok = Arc::new(RecordingNotifier::new("ok"));
        let handle = spawn_sinks(
            outbox.clone(),
            "front",
            &fast(),
            vec![stuck.clone(), ok.clone()],
        )
        .await;
        until(
            "registration",
            || matches!(poll_once(outbox.backlog("front")), Some(Ok(b)) if b.len() == 2),
        )
        .await;
        let started = std::time::Instant::now();
        let a = handle.publish(&event(1)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "publishing is just an insert"
        );
        until("delivered to the healthy sink", || {
            ok.delivered() == vec![a]
        })
        .await;
        assert!(stuck.delivered().is_empty());
        let st = settled(&handle).await;
        assert_eq!(st.sinks[0].pending, Some(1));
        assert_eq!(st.sinks[1].pending, Some(0));
        assert_eq!(st.max_pending(), 1);
        handle.shutdown().await;
    }

    fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn door_ids_that_break_topics_are_refused() {
        for bad in ["", "a/b", "a+", "#"] {
            assert!(check_door_id(bad).is_err(), "{bad}");
        }
        check_door_id("front-door_1").unwrap();
    }
}
