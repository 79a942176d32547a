//! The door controller: one task that owns the door's outputs and decides every attempt.
//!
//! The one design decision a newcomer must know: the controller is a state machine driven by events — a
//! tap, a due cue, an input change, a command, an attempt's progress — in one `select!` loop, and nothing
//! in that loop sleeps or waits for I/O. The slow part of an attempt (card lookup, countdown, photo, face
//! match, storing) runs in its own task and reports back, so while the door is unlocked for 10 s, or while
//! someone faces the camera, the next tap is still read and handled; arming and disarming take effect at
//! once and are saved by a task of their own. Cues are plans of output changes at instants (see
//! [`cues`]); tests run the whole controller on tokio's paused clock and assert exact times.
//!
//! The door decides every tap. A command that wants to see a card ("tap now", `card read`) only observes
//! the next tap ([`DoorHandle::next_card`]); nothing takes the reader away from the door.
//!
//! An attempt is stored (or spooled) before its cue plays, so a door that dies right after opening still
//! has the grant in its history. A store that is down or hung never holds the door: every wait for it is
//! bounded by [`STORE_WAIT`], and a card that could not be looked up is logged as `store_unavailable`.
//!
//! Fail-secure: the outputs are driven to the safe state (relay locked, buzzer and green off) at start, on
//! [`DoorHandle::shutdown`], and by a drop guard when the controller task ends or panics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use facereko_domain::{
    millis, Alarm, Attempt, CardUid, DoorState, Event, Mode, NewAttempt, Outcome, Person, PersonId,
    Photo, StageTimings,
};
use facereko_hardware::safety::LockDownGuard;
use facereko_hardware::{Camera, CardReader, CardTap, InputEvent, Inputs, Output, Outputs};
use facereko_liveness::challenge;
use facereko_liveness::motion;
use facereko_vision::{FaceEngine, FrameJudge, LivenessMode, Verdict, WatchSettings};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

pub mod config;
pub mod cues;
pub mod port;
mod watcher;

pub use config::DoorConfig;
pub use port::{Directory, DoorStore, PortError};

use cues::{Beep, Cues};
use watcher::{best_frame, FaceTrigger, Ring, Seen, Watcher};

/// The longest the door waits for the store during an attempt (card lookup, storing before the cue). A
/// store that is known to be down answers at once; this bounds a hung one.
pub const STORE_WAIT: Duration = Duration::from_secs(2);

/// Errors of the door crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(String),
    /// The outputs could not be driven to the safe state at start: the door is not run.
    #[error("the outputs could not be driven to the safe state (relay locked, buzzer and green off): {0}")]
    LockDown(facereko_hardware::Error),
    #[error("store: {0}")]
    Store(PortError),
    #[error("the door controller is not running")]
    Stopped,
    /// The door camera gave no photo.
    #[error("the door camera: {0}")]
    Camera(#[source] facereko_hardware::Error),
    #[error("no card was presented within {0} ms")]
    NoCard(u64),
    /// Arming or disarming took effect, but the store did not save it (yet).
    #[error(
        "the door is {} now, but saving that failed ({reason}); it is retried in the background, and \
         until it is saved a restart would not know it",
        if *armed { "Active (armed)" } else { "Offline (disarmed)" }
    )]
    NotSaved { armed: bool, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the controller is doing, for status pages and `facereko status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DoorStatus {
    pub door_id: String,
    pub mode: Mode,
    pub armed: bool,
    pub unlocked: bool,
    /// `Some(true)` when the door contact says open; `None` without a door contact.
    pub door_open: Option<bool>,
    /// An attempt is being decided.
    pub busy: bool,
    pub last_attempt: Option<Attempt>,
    /// `ok`, or the reader's last fault.
    pub reader: String,
}

enum Command {
    Arm(bool, oneshot::Sender<Result<()>>),
    Unlock(String),
    CaptureNextCard(oneshot::Sender<CardTap>),
    SetUnlockSeconds(f64),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to a running controller.
#[derive(Clone)]
pub struct DoorHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<DoorStatus>,
    events: broadcast::Sender<Event>,
    /// The door's camera and, while it watches, its recent frames: for [`DoorHandle::snapshot`].
    camera: Arc<dyn Camera>,
    ring: Option<Arc<Ring>>,
}

impl std::fmt::Debug for DoorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoorHandle")
            .field("camera", &self.camera.describe())
            .field("watching", &self.ring.is_some())
            .finish_non_exhaustive()
    }
}

/// The longest [`DoorHandle::snapshot`] waits for the camera.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

/// A frame of continuous capture younger than this is what the camera sees now.
const FRESH_FRAME: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Arm(..) => "Arm",
            Command::Unlock(..) => "Unlock",
            Command::CaptureNextCard(..) => "CaptureNextCard",
            Command::SetUnlockSeconds(..) => "SetUnlockSeconds",
            Command::Shutdown(..) => "Shutdown",
        })
    }
}

impl DoorHandle {
    /// What the door's camera sees now, for "take a photo with the door camera" and previews. A door
    /// that watches gives its newest frame (no second capture competes with the watcher for the
    /// camera); otherwise, or when that frame is older than a second, the camera takes one, bounded
    /// by [`SNAPSHOT_WAIT`]. Nothing is stored.
    pub async fn snapshot(&self) -> Result<Photo> {
        if let Some(photo) = self
            .ring
            .as_ref()
            .and_then(|r| r.latest_within(FRESH_FRAME))
        {
            return Ok((*photo).clone());
        }
        match tokio::time::timeout(SNAPSHOT_WAIT, self.camera.capture()).await {
            Ok(Ok(photo)) => Ok(photo),
            Ok(Err(e)) => Err(Error::Camera(e)),
            Err(_) => Err(Error::Camera(facereko_hardware::Error::CameraTimeout(
                SNAPSHOT_WAIT.as_millis() as u64,
            ))),
        }
    }

    /// Arms (Active) or disarms (Offline) the door. It takes effect at once; the store saves it in the
    /// background (in order, the latest state wins, retried while the store is down). Returns once it is
    /// saved, or [`Error::NotSaved`] when saving failed or took longer than [`STORE_WAIT`] — the door is
    /// in the new state either way.
    pub async fn arm(&self, armed: bool) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Arm(armed, tx))
            .await
            .map_err(|_| Error::Stopped)?;
        match tokio::time::timeout(STORE_WAIT, rx).await {
            Ok(Ok(saved)) => saved,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::NotSaved {
                armed,
                reason: format!(
                    "no answer from the store within {} ms",
                    STORE_WAIT.as_millis()
                ),
            }),
        }
    }

    /// Releases the lock for `unlock_seconds`, as the exit button does; `reason` goes to the log and event.
    pub async fn unlock(&self, reason: &str) -> Result<()> {
        self.commands
            .send(Command::Unlock(reason.to_string()))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Shows the caller the next card presented (enrolment, "tap now", `card read`). The door still decides
    /// that tap like any other; the caller only observes it. Dropping the future (its client went away) or
    /// the timeout withdraws the request.
    pub async fn next_card(&self, timeout: Duration) -> Result<CardTap> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::CaptureNextCard(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(tap)) => Ok(tap),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::NoCard(millis(timeout).into())),
        }
    }

    pub fn status(&self) -> DoorStatus {
        self.status.borrow().clone()
    }

    /// Changes how long the lock stays open after a grant or an unlock, from the next one on (the
    /// settings page applies `door.unlock_seconds` at once). More than 0 and at most 3600 seconds.
    pub async fn set_unlock_seconds(&self, seconds: f64) -> Result<()> {
        let check = DoorConfig {
            unlock_seconds: seconds,
            ..DoorConfig::default()
        };
        check.validate()?;
        self.commands
            .send(Command::SetUnlockSeconds(seconds))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Whether the controller still runs (after it stopped, [`DoorHandle::status`] is its last word,
    /// not the door's state now).
    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }

    pub fn watch_status(&self) -> watch::Receiver<DoorStatus> {
        self.status.clone()
    }

    /// Live events (attempts, arm/disarm, door state, alarms) from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Locks the door, silences it and stops the controller; returns when the outputs are safe.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The devices and services a controller works with.
#[derive(Clone)]
pub struct Parts {
    pub store: Arc<dyn DoorStore>,
    /// Needed by the `card+face` and `face` modes; `card` mode has none.
    pub engine: Option<Arc<dyn FaceEngine>>,
    pub camera: Arc<dyn Camera>,
    pub outputs: Arc<dyn Outputs>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field(
                "engine",
                &self.engine.as_ref().map(|e| e.name().to_string()),
            )
            .field("camera", &self.camera.describe())
            .finish_non_exhaustive()
    }
}

/// Progress of an attempt running in its own task.
enum Progress {
    /// The card belongs to someone who may enter: acknowledge it (one short beep).
    KnownCard,
    /// Decided: play the cue now; the attempt is being stored.
    Decided(Outcome),
    /// Stored (or failed to store) after `Decided`.
    Stored(Option<Box<Attempt>>),
    /// `face` mode found nobody in the frame: no attempt.
    NothingSeen,
    /// The liveness challenge starts: ask for a head turn.
    Challenge,
}

/// Starts the controller on the current tokio runtime and returns its handle and task.
///
/// The controller reads the armed state from the store (falling back to `armed_at_first_start`), drives the
/// outputs to the safe state, lights red, and runs until [`DoorHandle::shutdown`] or until every handle is
/// dropped.
pub async fn start(
    door_id: &str,
    config: DoorConfig,
    parts: Parts,
    reader: Box<dyn CardReader>,
    inputs: Option<Box<dyn Inputs>>,
) -> Result<(DoorHandle, tokio::task::JoinHandle<()>)> {
    config.validate()?;
    if config.mode.uses_camera() && parts.engine.is_none() {
        return Err(Error::Config(format!(
            "mode {} needs a face engine",
            config.mode
        )));
    }
    // Held by the controller task: a panic or an early return still locks the door.
    let guard = LockDownGuard::new(parts.outputs.clone());
    parts.outputs.lock_down().map_err(Error::LockDown)?;
    let armed = match parts.store.armed(door_id).await.map_err(Error::Store)? {
        Some(a) => a,
        None => config.armed_at_first_start,
    };
    // The newest attempt, so the status says it after a restart; a slow store does not hold the start.
    let last_attempt =
        match tokio::time::timeout(STORE_WAIT, parts.store.last_attempt(door_id)).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::warn!("could not read the last attempt: {e}");
                None
            }
            Err(_) => None,
        };
    let (cmd_tx, cmd_rx) = mpsc::channel(32);
    let (events, _) = broadcast::channel(256);
    let status = DoorStatus {
        door_id: door_id.to_string(),
        mode: config.mode,
        armed,
        unlocked: false,
        door_open: None,
        busy: false,
        last_attempt,
        reader: "ok".into(),
    };
    let (status_tx, status_rx) = watch::channel(status);

    let (tap_tx, tap_rx) = mpsc::channel(16);
    let (reader_status_tx, reader_status_rx) = mpsc::channel(4);
    tokio::spawn(read_cards(reader, tap_tx, reader_status_tx));
    let input_rx = inputs.map(|inputs| {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(read_inputs(inputs, tx));
        rx
    });
    // Continuous capture, when the mode looks at faces and the engine judges single frames.
    let judge = match (
        &parts.engine,
        config.mode.uses_camera() && config.watch.fps > 0,
    ) {
        (Some(engine), true) => engine.frames(),
        _ => None,
    };
    let camera = parts.camera.clone();
    let (watching, triggers) = match judge {
        Some(judge) => {
            let ring = Arc::new(Ring::new());
            let (trigger_tx, trigger_rx) = mpsc::channel(1);
            tokio::spawn(
                Watcher {
                    judge: judge.clone(),
                    camera: parts.camera.clone(),
                    settings: config.watch,
                    mode: config.mode,
                    ring: ring.clone(),
                    status: status_rx.clone(),
                    triggers: trigger_tx,
                }
                .run(),
            );
            tracing::info!(
                "continuous capture: {} frames/s, decisions from the last {} ms",
                config.watch.fps,
                config.watch.lookback_ms
            );
            let watching = Watching {
                judge,
                ring,
                settings: config.watch,
            };
            (Some(Arc::new(watching)), Some(trigger_rx))
        }
        None => (None, None),
    };
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let (armed_tx, armed_rx) = mpsc::unbounded_channel();
    tokio::spawn(save_armed(
        parts.store.clone(),
        door_id.to_string(),
        armed_rx,
    ));

    let ring = watching.as_ref().map(|w| w.ring.clone());
    let controller = Controller {
        door_id: door_id.to_string(),
        config,
        parts,
        cues: Cues::default(),
        armed,
        busy: false,
        last_seen: HashMap::new(),
        card_observers: Vec::new(),
        armed_tx,
        door_open: None,
        held_open_at: None,
        face_poll_at: None,
        watching,
        status: status_tx,
        events: events.clone(),
        progress_tx,
    };
    let inbox = Inbox {
        commands: cmd_rx,
        taps: tap_rx,
        reader_status: reader_status_rx,
        inputs: input_rx,
        progress: progress_rx,
        triggers,
    };
    let task = tokio::spawn(controller.run(guard, inbox));
    Ok((
        DoorHandle {
            commands: cmd_tx,
            status: status_rx,
            events,
            camera,
            ring,
        },
        task,
    ))
}

/// Forwards cards from the reader; a fault is reported and retried after a pause, so a flaky reader
/// never stops the door.
async fn read_cards(
    mut reader: Box<dyn CardReader>,
    taps: mpsc::Sender<CardTap>,
    status: mpsc::Sender<String>,
) {
    let mut faulty = false;
    loop {
        match reader.next_card().await {
            Ok(tap) => {
                if faulty {
                    faulty = false;
                    let _ = status.send("ok".into()).await;
                }
                if taps.send(tap).await.is_err() {
                    return;
                }
            }
            Err(facereko_hardware::Error::Closed(what)) => {
                tracing::info!("{what}: no more cards");
                return;
            }
            Err(e) => {
                tracing::warn!("card reader fault: {e}");
                faulty = true;
                if status.send(e.to_string()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How long a failed save of the armed state waits before it tries again.
const ARMED_RETRY: Duration = Duration::from_secs(5);

/// A state to save, and who waits to hear that it was saved.
type ArmRequest = (bool, oneshot::Sender<Result<()>>);

/// Saves each armed state the controller takes, in order; a newer state replaces one not yet saved. A
/// failure is logged as an error, answered as [`Error::NotSaved`] and retried: until it is saved, a
/// restart would come up in the old state.
async fn save_armed(
    store: Arc<dyn DoorStore>,
    door_id: String,
    mut rx: mpsc::UnboundedReceiver<ArmRequest>,
) {
    let mut pending: Option<(bool, Vec<oneshot::Sender<Result<()>>>)> = None;
    loop {
        let (mut armed, mut replies) = match pending.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some((a, r)) => (a, vec![r]),
                None => return,
            },
        };
        while let Ok((a, r)) = rx.try_recv() {
            armed = a;
            replies.push(r);
        }
        match store.set_armed(&door_id, armed).await {
            Ok(()) => {
                for r in replies {
                    let _ = r.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(
                    "could not save that door {door_id:?} is {}: {e}; it is {} now, but a restart would \
                     not know it; retrying in {} s",
                    if armed { "armed" } else { "disarmed" },
                    if armed { "Active" } else { "Offline" },
                    ARMED_RETRY.as_secs()
                );
                let reason = e.to_string();
                for r in replies {
                    let _ = r.send(Err(Error::NotSaved {
                        armed,
                        reason: reason.clone(),
                    }));
                }
                tokio::select! {
                    next = rx.recv() => match next {
                        Some((a, r)) => pending = Some((a, vec![r])),
                        None => {
                            // The controller stopped: one last try with the state it ended in.
                            if let Err(e) = store.set_armed(&door_id, armed).await {
                                tracing::error!(
                                    "could not save the armed state of door {door_id:?}: {e}"
                                );
                            }
                            return;
                        }
                    },
                    _ = tokio::time::sleep(ARMED_RETRY) => pending = Some((armed, Vec::new())),
                }
            }
        }
    }
}

async fn read_inputs(mut inputs: Box<dyn Inputs>, tx: mpsc::Sender<InputEvent>) {
    loop {
        match inputs.next_event().await {
            Ok(ev) => {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            Err(facereko_hardware::Error::Closed(_)) => return,
            Err(e) => {
                tracing::warn!("door inputs fault: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

struct Controller {
    door_id: String,
    config: DoorConfig,
    parts: Parts,
    cues: Cues,
    armed: bool,
    busy: bool,
    /// When each decided card was last seen, for debouncing.
    last_seen: HashMap<CardUid, Instant>,
    /// Commands waiting to see the next tap.
    card_observers: Vec<oneshot::Sender<CardTap>>,
    /// Armed states to save (see [`save_armed`]).
    armed_tx: mpsc::UnboundedSender<ArmRequest>,
    door_open: Option<bool>,
    held_open_at: Option<Instant>,
    face_poll_at: Option<Instant>,
    /// Continuous capture, when the door watches.
    watching: Option<Arc<Watching>>,
    status: watch::Sender<DoorStatus>,
    events: broadcast::Sender<Event>,
    progress_tx: mpsc::UnboundedSender<Progress>,
}

/// Everything the controller's loop listens to.
struct Inbox {
    commands: mpsc::Receiver<Command>,
    taps: mpsc::Receiver<CardTap>,
    reader_status: mpsc::Receiver<String>,
    inputs: Option<mpsc::Receiver<InputEvent>>,
    progress: mpsc::UnboundedReceiver<Progress>,
    /// `face` mode with continuous capture: stable faces from the watcher.
    triggers: Option<mpsc::Receiver<FaceTrigger>>,
}

impl Controller {
    async fn run(mut self, guard: LockDownGuard, inbox: Inbox) {
        let Inbox {
            mut commands,
            mut taps,
            mut reader_status,
            mut inputs,
            mut progress,
            mut triggers,
        } = inbox;
        self.set(Output::Red, true, "red on");
        tracing::info!(
            "door {:?} ready: mode {}, {}",
            self.door_id,
            self.config.mode,
            if self.armed {
                "armed (Active)"
            } else {
                "disarmed (Offline)"
            }
        );
        self.schedule_face_poll(Instant::now());
        loop {
            let deadline = [self.cues.next_due(), self.held_open_at, self.face_poll_at]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => {
                        self.shut_down();
                        drop(guard);
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        tracing::info!("every door handle is gone: stopping");
                        self.shut_down();
                        return;
                    }
                },
                Some(p) = progress.recv() => self.on_progress(p),
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.on_time(Instant::now());
                }
                Some(tap) = taps.recv() => self.on_tap(tap),
                Some(s) = reader_status.recv() => {
                    self.status.send_modify(|st| st.reader = s);
                }
                Some(ev) = async { inputs.as_mut()?.recv().await }, if inputs.is_some() => {
                    self.on_input(ev);
                }
                Some(t) = async { triggers.as_mut()?.recv().await }, if triggers.is_some() => {
                    self.on_face_trigger(t);
                }
            }
        }
    }

    fn shut_down(&mut self) {
        self.cues.clear();
        if let Err(e) = self.parts.outputs.lock_down() {
            tracing::error!("could not lock the door on shutdown: {e}");
        }
        self.set(Output::Red, false, "red off");
        tracing::info!("door {:?} stopped: relay locked, buzzer off", self.door_id);
    }

    fn set(&self, output: Output, active: bool, label: &str) {
        tracing::info!(target: "facereko::cue", "{label}");
        if let Err(e) = self.parts.outputs.set(output, active) {
            tracing::error!("{e}");
        }
    }

    fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Stores a non-attempt event for the notifier (in the background: the door never waits for it).
    fn record_event(&self, event: Event) {
        self.publish(event.clone());
        let store = self.parts.store.clone();
        let door = self.door_id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.enqueue_event(&door, &event).await {
                tracing::error!("could not queue event for notification: {e}");
            }
        });
    }

    fn refresh_status(&self) {
        let unlocked = self.cues.unlocked_until().is_some();
        self.status.send_modify(|st| {
            st.armed = self.armed;
            st.busy = self.busy;
            st.unlocked = unlocked;
            st.door_open = self.door_open;
        });
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Arm(armed, reply) => {
                if armed != self.armed {
                    self.armed = armed;
                    tracing::info!(
                        "door {:?} {}",
                        self.door_id,
                        if armed {
                            "armed (Active)"
                        } else {
                            "disarmed (Offline)"
                        }
                    );
                    self.record_event(Event::Armed {
                        door_id: self.door_id.clone(),
                        armed,
                        time: Utc::now(),
                    });
                    self.face_poll_at = None;
                    self.schedule_face_poll(Instant::now());
                    self.refresh_status();
                }
                // Saved in the background: a hung store must not hold the loop (and a released relay).
                if let Err(unsent) = self.armed_tx.send((armed, reply)) {
                    let (_, reply) = unsent.0;
                    let _ = reply.send(Err(Error::Stopped));
                }
            }
            Command::Unlock(reason) => {
                tracing::info!("unlock requested: {reason}");
                self.unlock(Instant::now());
                self.record_event(Event::Door {
                    door_id: self.door_id.clone(),
                    state: DoorState::Unlocked,
                    time: Utc::now(),
                });
            }
            Command::SetUnlockSeconds(seconds) => {
                tracing::info!(
                    "unlock time {} s (was {} s)",
                    seconds,
                    self.config.unlock_seconds
                );
                self.config.unlock_seconds = seconds;
            }
            Command::CaptureNextCard(tx) => {
                self.card_observers.retain(|w| !w.is_closed());
                self.card_observers.push(tx);
                tracing::info!(
                    "a command waits to see the next card ({} waiting); the door still decides it",
                    self.card_observers.len()
                );
            }
            Command::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    fn unlock(&mut self, now: Instant) {
        self.cues.unlock(now, self.config.unlock());
        self.apply_due(now);
    }

    fn apply_due(&mut self, now: Instant) {
        for p in self.cues.take_due(now) {
            self.set(p.output, p.active, &p.label);
        }
        self.refresh_status();
    }

    fn on_time(&mut self, now: Instant) {
        let was_unlocked = self.cues.unlocked_until().is_some();
        self.apply_due(now);
        if was_unlocked && self.cues.unlocked_until().is_none() {
            self.publish(Event::Door {
                door_id: self.door_id.clone(),
                state: DoorState::Locked,
                time: Utc::now(),
            });
        }
        if self.held_open_at.is_some_and(|t| t <= now) {
            self.held_open_at = None;
            tracing::warn!("door {:?} held open too long", self.door_id);
            self.record_event(Event::Alarm {
                door_id: self.door_id.clone(),
                alarm: Alarm::HeldOpen,
                time: Utc::now(),
            });
        }
        if self.face_poll_at.is_some_and(|t| t <= now) {
            self.face_poll_at = None;
            self.start_face_look();
        }
    }

    /// Whether a card that was decided is still (or again, within the window) on the reader. Only decided
    /// taps start the window: a tap dropped because the door was busy leaves the card free to try again.
    fn still_on_reader(&mut self, uid: &CardUid, now: Instant) -> bool {
        let window = Duration::from_millis(self.config.debounce_ms);
        if self.last_seen.len() > 256 {
            self.last_seen
                .retain(|_, t| now.duration_since(*t) < window);
        }
        match self.last_seen.get_mut(uid) {
            // A card resting on the reader is seen on every poll: measure from the last sighting, so it
            // stays one tap until it has been away for the whole window.
            Some(seen) if now.duration_since(*seen) < window => {
                *seen = now;
                true
            }
            _ => false,
        }
    }

    /// Shows the tap to the commands waiting for one; they only observe it.
    fn show_observers(&mut self, tap: &CardTap) {
        self.card_observers.retain(|w| !w.is_closed());
        if self.card_observers.is_empty() {
            return;
        }
        let n = self.card_observers.len();
        for w in self.card_observers.drain(..) {
            let _ = w.send(tap.clone());
        }
        tracing::info!("card {} shown to {n} waiting command(s)", tap.uid);
    }

    fn on_tap(&mut self, tap: CardTap) {
        let now = Instant::now();
        self.show_observers(&tap);
        if self.still_on_reader(&tap.uid, now) {
            tracing::debug!("card {} still on the reader: same tap", tap.uid);
            return;
        }
        if !self.armed {
            tracing::info!("card {} ignored: system is Offline", tap.uid);
            return;
        }
        if self.config.mode == Mode::Face {
            tracing::info!("card {} ignored: this door decides by face alone", tap.uid);
            return;
        }
        if self.busy {
            tracing::info!("card {} ignored: another attempt is being decided", tap.uid);
            return;
        }
        tracing::info!("card {} tapped", tap.uid);
        self.last_seen.insert(tap.uid.clone(), now);
        self.busy = true;
        self.refresh_status();
        let job = AttemptJob::new(self);
        tokio::spawn(job.card_attempt(tap.uid, now));
    }

    fn schedule_face_poll(&mut self, after: Instant) {
        if self.config.mode == Mode::Face
            && self.armed
            && self.face_poll_at.is_none()
            && self.watching.is_none()
        {
            self.face_poll_at = Some(after);
        }
    }

    /// `face` mode with continuous capture: the watcher saw a stable face.
    fn on_face_trigger(&mut self, t: FaceTrigger) {
        if !self.armed || self.busy || self.config.mode != Mode::Face {
            return;
        }
        self.busy = true;
        self.refresh_status();
        let job = AttemptJob::new(self);
        tokio::spawn(job.face_seen(t, Instant::now()));
    }

    fn start_face_look(&mut self) {
        if !self.armed || self.busy || self.config.mode != Mode::Face {
            return;
        }
        self.busy = true;
        self.refresh_status();
        let job = AttemptJob::new(self);
        tokio::spawn(job.face_attempt(Instant::now()));
    }

    fn on_progress(&mut self, p: Progress) {
        let now = Instant::now();
        match p {
            Progress::KnownCard => {
                let beep = Duration::from_millis(self.config.known_beep_ms);
                self.cues
                    .beeps(now, Beep::Known, &[(beep, Duration::ZERO)], self.gap());
                self.apply_due(now);
            }
            Progress::Decided(outcome) => {
                self.busy = false;
                if outcome == Outcome::SpoofSuspected {
                    tracing::warn!("door {:?}: a face failed the liveness check", self.door_id);
                    self.record_event(Event::Alarm {
                        door_id: self.door_id.clone(),
                        alarm: Alarm::SpoofSuspected,
                        time: Utc::now(),
                    });
                }
                if outcome.is_granted() {
                    self.unlock(now);
                    let beep = Duration::from_millis(self.config.grant_beep_ms);
                    self.cues
                        .beeps(now, Beep::Grant, &[(beep, Duration::ZERO)], self.gap());
                } else {
                    let on = Duration::from_millis(self.config.deny_beep_on_ms);
                    let off = Duration::from_millis(self.config.deny_beep_off_ms);
                    let pattern = vec![(on, off); self.config.deny_beeps as usize];
                    if !self.cues.beeps(now, Beep::Deny, &pattern, self.gap()) {
                        tracing::debug!("denial beeps already waiting: not queued again");
                    }
                }
                self.apply_due(now);
                if self.config.mode == Mode::Face {
                    self.schedule_face_poll(now + Duration::from_millis(self.config.debounce_ms));
                }
            }
            Progress::Challenge => {
                let (on, off) = (Duration::from_millis(100), Duration::from_millis(100));
                self.cues
                    .beeps(now, Beep::Challenge, &[(on, off); 3], self.gap());
                self.apply_due(now);
            }
            Progress::NothingSeen => {
                self.busy = false;
                self.refresh_status();
                self.schedule_face_poll(now + Duration::from_millis(self.config.face_poll_ms));
            }
            Progress::Stored(attempt) => {
                if let Some(attempt) = attempt {
                    self.status
                        .send_modify(|st| st.last_attempt = Some((*attempt).clone()));
                    self.publish(Event::Attempt {
                        door_id: self.door_id.clone(),
                        attempt: *attempt,
                    });
                }
            }
        }
    }

    fn gap(&self) -> Duration {
        Duration::from_millis(self.config.deny_beep_off_ms)
    }

    fn on_input(&mut self, ev: InputEvent) {
        let now = Instant::now();
        let (state, alarm) = match ev {
            InputEvent::ExitPressed => {
                tracing::info!("exit button pressed");
                self.unlock(now);
                (DoorState::ExitRequested, None)
            }
            InputEvent::DoorOpened => {
                self.door_open = Some(true);
                self.held_open_at = Some(now + Duration::from_secs(self.config.held_open_seconds));
                let forced = self.cues.unlocked_until().is_none();
                if forced {
                    tracing::warn!("door {:?} forced open while locked", self.door_id);
                }
                (DoorState::Opened, forced.then_some(Alarm::ForcedOpen))
            }
            InputEvent::DoorClosed => {
                self.door_open = Some(false);
                self.held_open_at = None;
                (DoorState::Closed, None)
            }
        };
        self.refresh_status();
        self.record_event(Event::Door {
            door_id: self.door_id.clone(),
            state,
            time: Utc::now(),
        });
        if let Some(alarm) = alarm {
            self.record_event(Event::Alarm {
                door_id: self.door_id.clone(),
                alarm,
                time: Utc::now(),
            });
        }
    }
}

/// Continuous capture: what attempts read the watcher's frames through.
struct Watching {
    judge: Arc<dyn FrameJudge>,
    ring: Arc<Ring>,
    settings: WatchSettings,
}

/// Everything an attempt task needs, detached from the controller so the loop keeps running.
struct AttemptJob {
    door_id: String,
    config: DoorConfig,
    parts: Parts,
    watching: Option<Arc<Watching>>,
    progress: mpsc::UnboundedSender<Progress>,
}

/// An attempt's result before it is stored.
struct Decision {
    attempt: NewAttempt,
    photo: Option<Photo>,
}

impl AttemptJob {
    fn new(c: &Controller) -> Self {
        Self {
            door_id: c.door_id.clone(),
            config: c.config.clone(),
            parts: c.parts.clone(),
            watching: c.watching.clone(),
            progress: c.progress_tx.clone(),
        }
    }

    fn base(&self, card: Option<CardUid>, person: Option<&Person>) -> NewAttempt {
        NewAttempt {
            time: Utc::now(),
            door_id: self.door_id.clone(),
            card_uid: card,
            person_id: person.map(|p| p.id),
            person_name: person.map(|p| p.name.clone()),
            outcome: Outcome::UnknownCard,
            similarity: None,
            distance: None,
            confidence: None,
            timings: StageTimings::default(),
            detail: None,
        }
    }

    async fn card_attempt(self, uid: CardUid, tapped: Instant) {
        let decision = self.decide_card(uid, tapped).await;
        self.finish(decision, tapped).await;
    }

    async fn face_attempt(self, started: Instant) {
        match self.look(started, None).await {
            Looked::Nothing => {
                let _ = self.progress.send(Progress::NothingSeen);
            }
            Looked::Decided(decision) => self.finish(*decision, started).await,
        }
    }

    async fn finish(self, mut d: Decision, started: Instant) {
        d.attempt.timings.total_ms = Some(millis(started.elapsed()));
        if d.attempt.card_uid.is_none() && d.attempt.outcome == Outcome::Granted {
            // A face alone opens only while the door's copy of the faces is trusted.
            if let Directory::CardOnly(why) | Directory::Refused(why) = self.parts.store.directory()
            {
                d.attempt.outcome = Outcome::StoreUnavailable;
                d.attempt.detail = Some(why);
            }
        }
        let outcome = d.attempt.outcome;
        tracing::info!(
            "attempt: card {} person {} → {}{}",
            d.attempt
                .card_uid
                .as_ref()
                .map_or("-".to_string(), |u| u.to_string()),
            d.attempt.person_name.as_deref().unwrap_or("-"),
            outcome,
            d.attempt
                .similarity
                .map_or(String::new(), |s| format!(" (similarity {s:.1} %)"))
        );
        // Stored (or spooled) before the cue: a door that dies right after acting keeps the attempt. A
        // store that takes longer than STORE_WAIT does not hold the cue; the row follows when it can.
        let write = self
            .parts
            .store
            .record_attempt(&d.attempt, d.photo.as_ref());
        tokio::pin!(write);
        let early = match tokio::time::timeout(STORE_WAIT, &mut write).await {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::error!(
                    "storing the attempt takes longer than {} ms: playing the cue first",
                    STORE_WAIT.as_millis()
                );
                None
            }
        };
        let _ = self.progress.send(Progress::Decided(outcome));
        let written = match early {
            Some(r) => r,
            None => write.await,
        };
        let stored = match written {
            Ok(a) => Some(Box::new(a)),
            Err(e) => {
                tracing::error!("could not store the attempt: {e}");
                None
            }
        };
        let _ = self.progress.send(Progress::Stored(stored));
    }

    async fn decide_card(&self, uid: CardUid, tapped: Instant) -> Decision {
        let directory = self.parts.store.directory();
        if let Directory::Refused(why) = directory {
            let mut a = self.base(Some(uid), None);
            a.outcome = Outcome::StoreUnavailable;
            a.detail = Some(why);
            a.timings.lookup_ms = Some(millis(tapped.elapsed()));
            return Decision {
                attempt: a,
                photo: None,
            };
        }
        let found = match tokio::time::timeout(STORE_WAIT, self.parts.store.lookup_card(&uid)).await
        {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", STORE_WAIT.as_millis()).into()),
        };
        let lookup_ms = millis(tapped.elapsed());
        // Decided on the card alone: refusals, and the grant of `card` mode.
        let on_card_alone = |mut a: NewAttempt, outcome: Outcome, detail: Option<String>| {
            a.outcome = outcome;
            a.detail = detail;
            a.timings.lookup_ms = Some(lookup_ms);
            Decision {
                attempt: a,
                photo: None,
            }
        };
        let (card, person) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                return on_card_alone(self.base(Some(uid), None), Outcome::UnknownCard, None)
            }
            Err(e) => {
                // Not `unknown_card`: the card may well be known; the store could not say.
                tracing::error!("card lookup failed: {e}");
                let detail = Some(format!("card lookup failed: {e}"));
                return on_card_alone(
                    self.base(Some(uid), None),
                    Outcome::StoreUnavailable,
                    detail,
                );
            }
        };
        let base = self.base(Some(uid), Some(&person));
        if !card.active || !person.active {
            let why = if card.active {
                "person disabled"
            } else {
                "card disabled"
            };
            return on_card_alone(base, Outcome::CardDisabled, Some(why.into()));
        }
        let now = Utc::now();
        if !person.admits(now, &self.config.time_zone) {
            let why = holiday_detail(&person, now, &self.config.time_zone);
            return on_card_alone(base, Outcome::OutsideSchedule, why);
        }
        if self.config.mode == Mode::Card {
            return on_card_alone(base, Outcome::Granted, Some("card only".into()));
        }
        if let Directory::CardOnly(why) = directory {
            return on_card_alone(base, Outcome::Granted, Some(format!("card only: {why}")));
        }
        let _ = self.progress.send(Progress::KnownCard);
        let mut timings = StageTimings {
            lookup_ms: Some(lookup_ms),
            ..StageTimings::default()
        };
        let looked = match &self.watching {
            // The door has been watching: decide from its frames while the beep plays.
            Some(w) => Looked::Decided(Box::new(self.look_watched(w, tapped, &person).await)),
            None => {
                tokio::time::sleep(Duration::from_millis(self.config.countdown_ms)).await;
                self.look(Instant::now(), Some(&person)).await
            }
        };
        match looked {
            Looked::Decided(d) => {
                let mut d = *d;
                if d.attempt.outcome == Outcome::FaceMismatch {
                    self.explain_mismatch(&mut d.attempt, &person).await;
                }
                timings.capture_ms = d.attempt.timings.capture_ms;
                timings.detect_ms = d.attempt.timings.detect_ms;
                timings.match_ms = d.attempt.timings.match_ms;
                d.attempt.timings = timings;
                d.attempt.card_uid = base.card_uid;
                d.attempt.person_id = base.person_id;
                d.attempt.person_name = base.person_name;
                d
            }
            Looked::Nothing => unreachable!("verification always decides"),
        }
    }

    /// Takes photos until one has a usable face or the capture window closes, then verifies it against
    /// `owner` (1:1) or identifies it (1:N, `owner` = `None`). In 1:N, a window without any face is
    /// [`Looked::Nothing`] (nobody there); in 1:1 it is `NoFace`.
    async fn look(&self, started: Instant, owner: Option<&Person>) -> Looked {
        let window = Duration::from_millis(self.config.capture_window_ms);
        let mut last_photo = None;
        let mut capture_ms = 0u32;
        let mut attempt = self.base(None, owner);
        loop {
            let shot = Instant::now();
            let photo = match tokio::time::timeout(window, self.parts.camera.capture()).await {
                Ok(Ok(p)) => p,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("camera gave no frame within {} ms", window.as_millis()),
                    };
                    if owner.is_none() {
                        // Nobody asked to be seen: a camera fault here is not an attempt.
                        tracing::warn!("face mode: {why}");
                        return Looked::Nothing;
                    }
                    attempt.outcome = Outcome::CameraError;
                    attempt.detail = Some(why);
                    attempt.timings.capture_ms = Some(millis(started.elapsed()));
                    return Looked::Decided(Box::new(Decision {
                        attempt,
                        photo: last_photo,
                    }));
                }
            };
            capture_ms += millis(shot.elapsed());
            let verdict = match (&self.parts.engine, owner) {
                (Some(engine), Some(p)) => engine.verify(&photo, p.id).await,
                (Some(engine), None) => engine.identify(&photo).await,
                (None, _) => Err(facereko_vision::Error::Engine(
                    "no face engine configured".into(),
                )),
            };
            let verdict: Verdict = match verdict {
                Ok(v) => v,
                Err(e) if owner.is_none() => {
                    tracing::warn!("face mode: {e}");
                    return Looked::Nothing;
                }
                Err(e) => {
                    attempt.outcome = Outcome::EngineError;
                    attempt.detail = Some(e.to_string());
                    attempt.timings.capture_ms = Some(capture_ms);
                    return Looked::Decided(Box::new(Decision {
                        attempt,
                        photo: Some(photo),
                    }));
                }
            };
            attempt.timings.capture_ms = Some(capture_ms);
            attempt.timings.detect_ms = verdict.detect_ms;
            attempt.timings.match_ms = verdict.match_ms;
            if let Some(face) = verdict.face {
                attempt.confidence = face.confidence;
                attempt.similarity = verdict.similarity;
                attempt.distance = verdict.distance;
                attempt.detail = Some(format!("engine {}", verdict.engine));
                attempt.outcome = match (owner, verdict.matched) {
                    (Some(p), Some(m)) if m == p.id => Outcome::Granted,
                    (Some(_), _) => Outcome::FaceMismatch,
                    (None, Some(_)) => Outcome::Granted,
                    (None, None) => Outcome::FaceMismatch,
                };
                let mut decision = Decision {
                    attempt,
                    photo: Some(photo),
                };
                if owner.is_none() {
                    if let Some(id) = verdict.matched {
                        self.admit_identified(&mut decision.attempt, id).await;
                    }
                }
                return Looked::Decided(Box::new(decision));
            }
            last_photo = Some(photo);
            let one_photo = self
                .parts
                .engine
                .as_ref()
                .is_some_and(|e| e.one_photo_per_look());
            if started.elapsed() >= window || one_photo {
                if owner.is_none() {
                    return Looked::Nothing;
                }
                attempt.outcome = Outcome::NoFace;
                attempt.detail = Some(format!("engine {}", verdict.engine));
                return Looked::Decided(Box::new(Decision {
                    attempt,
                    photo: last_photo,
                }));
            }
            tokio::time::sleep(FRAME_INTERVAL).await;
        }
    }

    /// `card+face` with continuous capture: decides on the faces of the lookback window before `tapped`
    /// and, while there is no good one or they do not match `owner`, on newer frames as they come, until
    /// `vision.face_timeout_ms` after the tap. The photo kept is the best frame of the deciding window.
    async fn look_watched(&self, w: &Watching, tapped: Instant, owner: &Person) -> Decision {
        let _waiting = w.ring.wait();
        let mut frames = w.ring.subscribe();
        let lookback = Duration::from_millis(w.settings.lookback_ms);
        let deadline = tapped + Duration::from_millis(w.settings.face_timeout_ms);
        let mut attempt = self.base(None, Some(owner));
        // The best refusal so far: its verdict, the frame it was decided on and how many frames.
        let mut refused: Option<(Verdict, Arc<Photo>, usize)> = None;
        let mut decided_on: Option<(Instant, usize)> = None;
        loop {
            drop(frames.borrow_and_update());
            let now = Instant::now();
            let since = now.checked_sub(lookback).unwrap_or(tapped);
            let window = w.ring.current(since, w.judge.threshold());
            let timed_out = now >= deadline;
            let shape = window.last().map(|s| (s.at, window.len()));
            let ready = window.iter().any(Seen::good) || timed_out;
            if ready && shape.is_some() && shape != decided_on {
                decided_on = shape;
                let observations: Vec<_> = window.iter().map(|s| s.observation.clone()).collect();
                let verdict = w.judge.verify_fused(&observations, owner.id).await;
                let photo = best_frame(&window).map(|s| s.photo.clone());
                if let (Some(photo), true) = (photo, verdict.matched == Some(owner.id)) {
                    let live = match self.liveness(w, owner.id, &window).await {
                        Liveness::NeedFrames if !timed_out => continue,
                        other => other,
                    };
                    return live_decision(attempt, verdict, photo, window.len(), tapped, live);
                }
                let better = refused
                    .as_ref()
                    .is_none_or(|(v, ..)| verdict.similarity > v.similarity);
                if let (true, Some(best)) = (better, best_frame(&window)) {
                    refused = Some((verdict, best.photo.clone(), window.len()));
                }
            }
            if timed_out {
                break;
            }
            tokio::select! {
                changed = frames.changed() => if changed.is_err() { break },
                _ = sleep_until(deadline) => {}
            }
        }
        match refused {
            Some((verdict, photo, n)) => {
                attempt.outcome = Outcome::FaceMismatch;
                watched_decision(attempt, verdict, photo, n, tapped)
            }
            None => {
                let photo = w.ring.latest().map(|p| (*p).clone());
                match w.ring.camera_error() {
                    // The camera fails now: say so (with the last frame it gave, if any).
                    Some(e) => {
                        attempt.outcome = Outcome::CameraError;
                        attempt.detail = Some(e);
                    }
                    _ => {
                        attempt.outcome = Outcome::NoFace;
                        attempt.detail = Some(format!(
                            "no usable face within {} ms of the tap",
                            w.settings.face_timeout_ms
                        ));
                    }
                }
                attempt.timings.capture_ms = Some(millis(tapped.elapsed()));
                Decision { attempt, photo }
            }
        }
    }

    /// The liveness check of `vision.liveness` on the frames that matched `person`.
    async fn liveness(&self, w: &Watching, person: PersonId, matched: &[Seen]) -> Liveness {
        match w.settings.liveness {
            LivenessMode::Off => Liveness::Live(None),
            LivenessMode::Passive => {
                if matched.len() < motion::MIN_FACES {
                    return Liveness::NeedFrames;
                }
                let frames = spread(matched, PASSIVE_FRAMES);
                let threshold = motion::THRESHOLD;
                match dense_motion(w, frames, motion::sequence_score).await {
                    Ok(s) if s >= threshold => {
                        Liveness::Live(Some(format!("passive liveness {s:.4}")))
                    }
                    Ok(s) => Liveness::Spoof(format!(
                        "passive liveness: the face moved like a flat picture ({s:.4} < {threshold})"
                    )),
                    Err(e) => Liveness::Spoof(format!("passive liveness could not be checked: {e}")),
                }
            }
            LivenessMode::Challenge => self.challenge(w, person, matched).await,
        }
    }

    /// Asks for a head turn and watches for it: the yaw of the person's face must sweep
    /// [`challenge::TURN_THRESHOLD`] within `vision.challenge_ms`, and the face must not have moved as
    /// one plane between the turn's ends and middle (the passive check on those frames): a photo
    /// whose keypoints wander enough to look like a turn is still flat.
    async fn challenge(&self, w: &Watching, person: PersonId, matched: &[Seen]) -> Liveness {
        let _ = self.progress.send(Progress::Challenge);
        let _waiting = w.ring.wait();
        let mut frames = w.ring.subscribe();
        let deadline = Instant::now() + Duration::from_millis(w.settings.challenge_ms);
        // The faces with a yaw, and their yaws, in the same order.
        let (mut seen, mut yaws): (Vec<Seen>, Vec<f64>) = matched
            .iter()
            .filter_map(|s| yaw_of(s).map(|y| (s.clone(), y)))
            .unzip();
        let mut last = matched.last().map(|s| s.at);
        let mut flat: Option<String> = None;
        loop {
            let range = challenge::turn(&yaws).unwrap_or(0.0);
            if range >= challenge::TURN_THRESHOLD {
                let ends: Vec<Seen> = challenge::turn_frames(&yaws)
                    .into_iter()
                    .map(|i| seen[i].clone())
                    .collect();
                let picked = spread(&ends, PASSIVE_FRAMES);
                let threshold = motion::THRESHOLD;
                match dense_motion(w, picked, motion::turn_score).await {
                    Ok(s) if s >= threshold => {
                        return Liveness::Live(Some(format!(
                            "head turn {range:.2}, passive liveness {s:.4}"
                        )))
                    }
                    Ok(s) => {
                        flat = Some(format!(
                            "the turn moved like a flat picture ({s:.4} < {threshold})"
                        ))
                    }
                    Err(e) => flat = Some(format!("the turn could not be checked: {e}")),
                }
            }
            tokio::select! {
                changed = frames.changed() => if changed.is_err() { break },
                _ = sleep_until(deadline) => break,
            }
            // The newest face, if it is new and still the same person.
            let Some(s) = w.ring.newest().filter(|s| Some(s.at) != last) else {
                continue;
            };
            last = Some(s.at);
            let same = w
                .judge
                .verify_fused(std::slice::from_ref(&s.observation), person)
                .await;
            if same.matched == Some(person) {
                if let Some(y) = yaw_of(&s) {
                    yaws.push(y);
                    seen.push(s);
                }
            }
        }
        let range = challenge::turn(&yaws).unwrap_or(0.0);
        Liveness::Spoof(match flat {
            Some(why) => format!("head turn {range:.2}, but {why}"),
            None => format!(
                "no head turn within {} ms of the request (yaw range {range:.2} < {})",
                w.settings.challenge_ms,
                challenge::TURN_THRESHOLD
            ),
        })
    }

    /// `face` mode with continuous capture: the watcher identified a stable face.
    async fn face_seen(self, t: FaceTrigger, started: Instant) {
        let mut attempt = self.base(None, None);
        attempt.outcome = if t.verdict.matched.is_some() {
            Outcome::Granted
        } else {
            Outcome::FaceMismatch
        };
        let Some(best) = best_frame(&t.seen) else {
            let _ = self.progress.send(Progress::NothingSeen);
            return;
        };
        let photo = best.photo.clone();
        let matched = t.verdict.matched;
        let live = match (&self.watching, matched) {
            (Some(w), Some(id)) => self.liveness(w, id, &t.seen).await,
            _ => Liveness::Live(None),
        };
        let mut decision = match matched {
            Some(_) => live_decision(attempt, t.verdict, photo, t.seen.len(), started, live),
            None => watched_decision(attempt, t.verdict, photo, t.seen.len(), started),
        };
        decision.attempt.timings.capture_ms = None;
        if let Some(id) = matched {
            self.admit_identified(&mut decision.attempt, id).await;
        }
        self.finish(decision, started).await;
    }

    /// A card owner's face did not match: if they have no face enrolled at all, the attempt says so
    /// (a face mismatch would suggest someone else stood there). Skipped when the store cannot tell quickly.
    async fn explain_mismatch(&self, attempt: &mut NewAttempt, owner: &Person) {
        let asked =
            tokio::time::timeout(STORE_WAIT, self.parts.store.enrolled_faces(owner.id)).await;
        if let Ok(Ok(Some(0))) = asked {
            let engine = attempt.detail.take().unwrap_or_default();
            attempt.detail = Some(format!(
                "no face enrolled for this person: enrol one ({})",
                if engine.is_empty() {
                    "no engine"
                } else {
                    &engine
                }
            ));
        }
    }

    /// `face` mode: the face matched `id`; the person must still be enabled and within their schedule.
    async fn admit_identified(&self, attempt: &mut NewAttempt, id: facereko_domain::PersonId) {
        attempt.person_id = Some(id);
        let found = match tokio::time::timeout(STORE_WAIT, self.parts.store.person(id)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} ms", STORE_WAIT.as_millis()).into()),
        };
        let person = match found {
            Ok(Some(p)) => p,
            Ok(None) => {
                attempt.outcome = Outcome::FaceMismatch;
                attempt.detail = Some(format!("matched person {id} no longer exists"));
                attempt.person_id = None;
                return;
            }
            Err(e) => {
                attempt.outcome = Outcome::StoreUnavailable;
                attempt.detail = Some(format!("person lookup failed: {e}"));
                return;
            }
        };
        attempt.person_name = Some(person.name.clone());
        let now = Utc::now();
        if !person.active {
            attempt.outcome = Outcome::CardDisabled;
            attempt.detail = Some("person disabled".into());
        } else if !person.admits(now, &self.config.time_zone) {
            attempt.outcome = Outcome::OutsideSchedule;
            attempt.detail = holiday_detail(&person, now, &self.config.time_zone);
        }
    }
}

/// Why a refusal for the schedule happened on a holiday, so History says so (the person's weekly hours
/// may well cover the moment).
fn holiday_detail(
    person: &Person,
    now: chrono::DateTime<Utc>,
    zone: &facereko_domain::SiteTimeZone,
) -> Option<String> {
    person
        .on_holiday(zone.local(now))
        .then(|| "a holiday".to_string())
}

/// The result of a liveness check.
enum Liveness {
    /// Live; the detail says how it was judged (`None` with the check off).
    Live(Option<String>),
    /// Refused, with why.
    Spoof(String),
    /// Passive: not enough frames yet.
    NeedFrames,
}

fn pt(p: facereko_vision::geometry::Point) -> [f64; 2] {
    [f64::from(p.x), f64::from(p.y)]
}

/// Frames the passive check looks at: at most this many, spread over the ones that matched.
const PASSIVE_FRAMES: usize = 5;

/// Up to `n` of `seen`, first and last included, evenly spread (photo and eyes only).
fn spread(seen: &[Seen], n: usize) -> Vec<(Arc<Photo>, [[f64; 2]; 2])> {
    let picks: Vec<usize> = if seen.len() <= n {
        (0..seen.len()).collect()
    } else {
        (0..n).map(|k| k * (seen.len() - 1) / (n - 1)).collect()
    };
    picks
        .into_iter()
        .map(|i| {
            let o = &seen[i].observation;
            (seen[i].photo.clone(), [pt(o.eyes[0]), pt(o.eyes[1])])
        })
        .collect()
}

/// The dense-motion liveness score of frames, by `score` ([`motion::sequence_score`] or, for a turn,
/// [`motion::turn_score`]), worked out off the async runtime; the error says why there is none. The
/// frames are decoded again by the judge, so the eyes it found are on the same pixels.
async fn dense_motion(
    w: &Watching,
    frames: Vec<(Arc<Photo>, [[f64; 2]; 2])>,
    score: fn(&[motion::FaceCrop]) -> facereko_liveness::Result<f64>,
) -> Result<f64, String> {
    let judge = w.judge.clone();
    let scored = tokio::task::spawn_blocking(move || {
        let mut crops = Vec::with_capacity(frames.len());
        for (photo, eyes) in &frames {
            let image = judge.decode(photo).map_err(|e| e.to_string())?;
            crops.push(motion::FaceCrop::new(&image, *eyes).map_err(|e| e.to_string())?);
        }
        score(&crops).map_err(|e| e.to_string())
    });
    scored.await.map_err(|e| e.to_string())?
}

fn yaw_of(s: &Seen) -> Option<f64> {
    let o = &s.observation;
    challenge::yaw([pt(o.eyes[0]), pt(o.eyes[1])], pt(o.nose))
}

/// A match on watched frames, granted or refused by the liveness check.
fn live_decision(
    mut attempt: NewAttempt,
    verdict: Verdict,
    photo: Arc<Photo>,
    frames: usize,
    since: Instant,
    live: Liveness,
) -> Decision {
    let why = match live {
        Liveness::Live(why) => {
            attempt.outcome = Outcome::Granted;
            why
        }
        Liveness::Spoof(why) => {
            attempt.outcome = Outcome::SpoofSuspected;
            Some(why)
        }
        Liveness::NeedFrames => {
            attempt.outcome = Outcome::SpoofSuspected;
            Some(format!(
                "passive liveness: fewer than {} frames of the face cannot show 3-D motion",
                motion::MIN_FACES
            ))
        }
    };
    let mut d = watched_decision(attempt, verdict, photo, frames, since);
    if let (Some(why), Some(detail)) = (why, d.attempt.detail.as_mut()) {
        detail.push_str(", ");
        detail.push_str(&why);
    }
    d
}

/// A decision taken on watched frames: the verdict's scores, how many frames, the best frame as photo.
fn watched_decision(
    mut attempt: NewAttempt,
    verdict: Verdict,
    photo: Arc<Photo>,
    frames: usize,
    since: Instant,
) -> Decision {
    if let Some(face) = verdict.face {
        attempt.confidence = face.confidence;
    }
    attempt.similarity = verdict.similarity;
    attempt.distance = verdict.distance;
    attempt.timings.capture_ms = Some(millis(since.elapsed()));
    attempt.timings.match_ms = verdict.match_ms;
    attempt.detail = Some(format!(
        "engine {}, {} frame{}",
        verdict.engine,
        frames,
        if frames == 1 { "" } else { "s" }
    ));
    Decision {
        attempt,
        photo: Some(Arc::unwrap_or_clone(photo)),
    }
}

/// Pause between photos while waiting for a usable face, so a fast camera does not spin the CPU.
const FRAME_INTERVAL: Duration = Duration::from_millis(100);

enum Looked {
    Nothing,
    Decided(Box<Decision>),
}

#[cfg(test)]
mod tests;
