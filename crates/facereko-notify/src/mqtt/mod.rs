//! The MQTT sink (rumqttc): plain, TLS with system roots or a CA file, and AWS IoT Core mutual TLS.
//!
//! A connection task owns rumqttc's event loop and reconnects with its own back-off; each new connection
//! gets a fresh client, so nothing queued for a dead connection leaks into the next one. A delivery counts
//! only when the broker's PUBACK for every message of the event arrived (QoS 1). The retained
//! `<prefix>/<door>/state` carries `{"online": true, …}` while connected and the last will turns it into
//! `{"online": false}` when the door vanishes.
//!
//! This file is the connection and the notifier, which share one state (`Shared`): the task that
//! drives rumqttc, the announce after each CONNACK and the deliveries. Around it: `topics` (the door's
//! topics, a message), `options` (rumqttc options from `[mqtt]`), `discovery` (Home Assistant) and
//! `inbound` (signed commands from the broker); `site`, the site's directory change signal and every door's
//! state, has a connection of its own.

mod discovery;
mod inbound;
mod options;
mod site;
mod topics;

pub use options::options;
pub use site::{announce_once, sync_topic, DoorSeen, SiteLink};
pub use topics::Topics;

use discovery::discovery;
use inbound::Inbound;
use topics::Msg;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use facereko_domain::Event;
use rumqttc::{
    AsyncClient, ConnectionError, EventLoop, MqttOptions, Outgoing, Packet, QoS,
    SubscribeReasonCode,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::commands::CommandGuard;
pub use crate::commands::{CommandRequest, DoorCommand};
use crate::config::MqttConfig;
use crate::payload::{legacy_message, EventPayload, StateSnapshot};
use crate::{DeliveryError, LiveState, Notifier, OutboxEntry, Result};

struct InFlight {
    expected: usize,
    seen: usize,
    awaiting: HashSet<u16>,
    done: Option<oneshot::Sender<std::result::Result<(), String>>>,
}

/// One broker connection: its client and the publish waiting for PUBACKs.
struct Session {
    client: AsyncClient,
    inflight: Mutex<Option<InFlight>>,
    poisoned: AtomicBool,
    /// Ends the connection task's polling of this session (the connection is abandoned).
    kill: tokio::sync::Notify,
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<InFlight>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes `msgs` with QoS 1 and waits until the broker acknowledged all of them.
    async fn publish_all(
        &self,
        msgs: Vec<Msg>,
        timeout: Duration,
    ) -> std::result::Result<(), String> {
        if msgs.is_empty() {
            return Ok(());
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err("the connection is being replaced".into());
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut g = self.lock();
            if g.is_some() {
                return Err("another publish is still in flight".into());
            }
            *g = Some(InFlight {
                expected: msgs.len(),
                seen: 0,
                awaiting: HashSet::new(),
                done: Some(tx),
            });
        }
        for m in msgs {
            if let Err(e) = self
                .client
                .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                .await
            {
                self.fail("");
                return Err(format!("the MQTT connection closed: {e}"));
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the connection closed before the broker acknowledged".into()),
            Err(_) => {
                let why = format!("no PUBACK from the broker within {}s", timeout.as_secs());
                self.poison(&why);
                Err(why)
            }
        }
    }

    /// Abandons this connection: PUBACKs that arrive late must not be counted for the next publish,
    /// and a connection that swallows publishes may still answer pings.
    fn poison(&self, why: &str) {
        self.poisoned.store(true, Ordering::SeqCst);
        self.fail(why);
        self.kill.notify_one();
    }

    fn on_outgoing_publish(&self, pkid: u16) {
        if pkid == 0 {
            return;
        }
        if let Some(f) = self.lock().as_mut() {
            if f.seen < f.expected {
                f.seen += 1;
                f.awaiting.insert(pkid);
            }
        }
    }

    fn on_puback(&self, pkid: u16) {
        let mut g = self.lock();
        let finished = match g.as_mut() {
            Some(f) => {
                f.awaiting.remove(&pkid);
                f.seen == f.expected && f.awaiting.is_empty()
            }
            None => false,
        };
        if finished {
            if let Some(done) = g.take().and_then(|mut f| f.done.take()) {
                let _ = done.send(Ok(()));
            }
        }
    }

    fn fail(&self, why: &str) {
        if let Some(done) = self.lock().take().and_then(|mut f| f.done.take()) {
            let _ = done.send(Err(why.to_string()));
        }
    }
}

#[derive(Clone)]
enum Conn {
    Down {
        error: Option<String>,
    },
    Up {
        generation: u64,
        session: Arc<Session>,
    },
}

struct Shared {
    door_id: String,
    topics: Topics,
    legacy: bool,
    home_assistant: Option<String>,
    publish_timeout: Duration,
    options: MqttOptions,
    conn: watch::Sender<Conn>,
    snapshot: Mutex<StateSnapshot>,
    /// The door's state now, published at every connect (else the retained state would say `null`
    /// until the next change).
    live: Option<watch::Receiver<LiveState>>,
    /// Signed commands from the broker.
    inbound: Inbound,
    stopping: AtomicBool,
    /// The connection generation during which the last delivery failed: `ready` waits for a newer one.
    failed_generation: AtomicU64,
}

impl Shared {
    fn snapshot(&self) -> std::sync::MutexGuard<'_, StateSnapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The MQTT [`Notifier`]; its outbox cursor is named `mqtt`.
pub struct MqttNotifier {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for MqttNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttNotifier")
            .field("door_id", &self.shared.door_id)
            .field("broker", &self.shared.options.broker_address())
            .field("connected", &self.connected())
            .finish()
    }
}

/// Dropping the notifier without [`Notifier::shutdown`] is a sudden death: the connection closes without
/// a DISCONNECT and the broker publishes the last will (`{"online": false}`).
impl Drop for MqttNotifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl MqttNotifier {
    /// Starts the connection task (it connects in the background and keeps reconnecting). The
    /// retained state at every connect comes from `live`, the door's current state; without it, from
    /// `armed`, the door's persisted flag. Needs a Tokio runtime.
    pub fn start(
        config: &MqttConfig,
        door_id: &str,
        armed: Option<bool>,
        live: Option<watch::Receiver<LiveState>>,
        commands: Option<mpsc::Sender<CommandRequest>>,
    ) -> Result<Self> {
        config.validate()?;
        let options = options(config, door_id)?;
        let commands = if config.commands.enabled {
            match commands {
                Some(tx) => Some((CommandGuard::new(&config.commands, door_id, Utc::now()), tx)),
                None => {
                    tracing::warn!(
                        "mqtt.commands.enabled is set but nothing receives commands; ignoring them"
                    );
                    None
                }
            }
        } else {
            None
        };
        let shared = Arc::new(Shared {
            door_id: door_id.to_string(),
            topics: Topics::new(&config.topic_prefix, door_id),
            legacy: config.legacy_topics,
            home_assistant: config.home_assistant.enabled.then(|| {
                config
                    .home_assistant
                    .discovery_prefix
                    .trim_matches('/')
                    .to_string()
            }),
            publish_timeout: Duration::from_secs(config.publish_timeout_secs),
            options,
            conn: watch::channel(Conn::Down { error: None }).0,
            snapshot: Mutex::new(StateSnapshot {
                online: true,
                armed,
                ..Default::default()
            }),
            live,
            inbound: Inbound {
                door_id: door_id.to_string(),
                topic: Topics::new(&config.topic_prefix, door_id).command,
                commands,
                pkids: Mutex::new(HashSet::new()),
            },
            stopping: AtomicBool::new(false),
            failed_generation: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(shared.clone()));
        Ok(Self {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn topics(&self) -> &Topics {
        &self.shared.topics
    }

    /// The last connection error while disconnected.
    pub fn last_connection_error(&self) -> Option<String> {
        match &*self.shared.conn.borrow() {
            Conn::Down { error } => error.clone(),
            Conn::Up { .. } => None,
        }
    }

    fn messages(&self, entry: &OutboxEntry) -> (Vec<Msg>, Option<StateSnapshot>) {
        let payload = EventPayload::from_entry(entry);
        let t = &self.shared.topics;
        let mut msgs = Vec::new();
        let mut new_state = None;
        match &entry.event {
            Event::Attempt { .. } => {
                msgs.push(Msg {
                    topic: t.attempt.clone(),
                    payload: payload.to_json(),
                    retain: false,
                });
                if self.shared.legacy {
                    if let Some((topic, text)) = legacy_message(&entry.event) {
                        msgs.push(Msg {
                            topic: topic.to_string(),
                            payload: text.into_bytes(),
                            retain: false,
                        });
                    }
                }
            }
            Event::Alarm { .. } => msgs.push(Msg {
                topic: t.alarm.clone(),
                payload: payload.to_json(),
                retain: false,
            }),
            Event::Test { .. } => msgs.push(Msg {
                topic: t.test.clone(),
                payload: payload.to_json(),
                retain: false,
            }),
            Event::Audit { .. } => msgs.push(Msg {
                topic: t.audit.clone(),
                payload: payload.to_json(),
                retain: false,
            }),
            Event::Armed { armed, time, .. } => {
                let mut s = self.shared.snapshot().clone();
                s.armed = Some(*armed);
                s.event_id = Some(entry.id);
                s.time = Some(*time);
                new_state = Some(s);
            }
            Event::Door { state, time, .. } => {
                let mut s = self.shared.snapshot().clone();
                s.door = Some(*state);
                s.event_id = Some(entry.id);
                s.time = Some(*time);
                new_state = Some(s);
            }
        }
        if let Some(s) = &new_state {
            msgs.push(Msg {
                topic: t.state.clone(),
                payload: s.to_json(),
                retain: true,
            });
        }
        (msgs, new_state)
    }
}

#[async_trait]
impl Notifier for MqttNotifier {
    fn name(&self) -> &str {
        "mqtt"
    }

    async fn deliver(&self, entry: &OutboxEntry) -> std::result::Result<(), DeliveryError> {
        let (msgs, new_state) = self.messages(entry);
        let conn = self.shared.conn.borrow().clone();
        let (generation, session) = match conn {
            Conn::Up {
                generation,
                session,
            } => (generation, session),
            Conn::Down { error } => {
                return Err(DeliveryError::Transient(format!(
                    "not connected to the MQTT broker{}",
                    error.map(|e| format!(": {e}")).unwrap_or_default()
                )))
            }
        };
        match session.publish_all(msgs, self.shared.publish_timeout).await {
            Ok(()) => {
                if let Some(s) = new_state {
                    *self.shared.snapshot() = s;
                }
                Ok(())
            }
            Err(e) => {
                self.shared
                    .failed_generation
                    .store(generation, Ordering::SeqCst);
                Err(DeliveryError::Transient(e))
            }
        }
    }

    async fn ready(&self) {
        let mut rx = self.shared.conn.subscribe();
        loop {
            let failed = self.shared.failed_generation.load(Ordering::SeqCst);
            if let Conn::Up { generation, .. } = &*rx.borrow_and_update() {
                if *generation > failed {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn connected(&self) -> Option<bool> {
        Some(matches!(&*self.shared.conn.borrow(), Conn::Up { .. }))
    }

    async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let conn = self.shared.conn.borrow().clone();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut task) = task else { return };
        if let Conn::Up { session, .. } = conn {
            // The delivery tasks are stopped: a publish they left waiting is abandoned.
            session.fail("stopping");
            let offline = Msg {
                topic: self.shared.topics.state.clone(),
                payload: StateSnapshot::offline().to_json(),
                retain: true,
            };
            match session
                .publish_all(vec![offline], Duration::from_secs(3))
                .await
            {
                Ok(()) => {
                    let _ = session.client.disconnect().await;
                    if tokio::time::timeout(Duration::from_secs(3), &mut task)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
                // No clean DISCONNECT then: dropping the connection makes the broker publish the will.
                Err(e) => tracing::warn!(error = %e,
                    "could not publish the offline state; leaving it to the last will"),
            }
        }
        task.abort();
    }
}

async fn run(shared: Arc<Shared>) {
    let mut delay = Duration::from_secs(1);
    let mut generation = 0u64;
    while !shared.stopping.load(Ordering::SeqCst) {
        let (client, mut eventloop) = AsyncClient::new(shared.options.clone(), 64);
        let session = Arc::new(Session {
            client,
            inflight: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        });
        let started = Instant::now();
        let error = drive(&shared, &session, &mut eventloop, &mut generation).await;
        session.fail(&error);
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            delay = Duration::from_secs(1);
        }
        tracing::warn!(door_id = %shared.door_id, broker = ?shared.options.broker_address(),
            error = %error, retry_in = ?delay, "MQTT connection lost");
        shared.conn.send_replace(Conn::Down { error: Some(error) });
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
    shared.conn.send_replace(Conn::Down {
        error: Some("stopped".into()),
    });
}

/// Polls one connection until it ends; returns why.
async fn drive(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    eventloop: &mut EventLoop,
    generation: &mut u64,
) -> String {
    loop {
        let polled = tokio::select! {
            biased;
            _ = session.kill.notified() => return "the connection stopped acknowledging".into(),
            polled = eventloop.poll() => polled,
        };
        let event = match polled {
            Ok(e) => e,
            Err(ConnectionError::ConnectionRefused(code)) => {
                return format!("the broker refused the connection: {code:?}")
            }
            Err(e) => return e.to_string(),
        };
        match event {
            rumqttc::Event::Incoming(Packet::ConnAck(_)) => {
                *generation += 1;
                shared.inbound.new_connection();
                tracing::info!(door_id = %shared.door_id, broker = ?shared.options.broker_address(),
                    "MQTT connected");
                tokio::spawn(announce(shared.clone(), session.clone(), *generation));
            }
            rumqttc::Event::Outgoing(Outgoing::Publish(pkid)) => session.on_outgoing_publish(pkid),
            rumqttc::Event::Incoming(Packet::PubAck(ack)) => session.on_puback(ack.pkid),
            rumqttc::Event::Incoming(Packet::Publish(p)) => shared.inbound.on_publish(&p),
            rumqttc::Event::Incoming(Packet::SubAck(ack))
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure)) =>
            {
                tracing::warn!(topic = %shared.topics.command,
                    "the broker refused the command subscription (check its ACL)");
            }
            rumqttc::Event::Outgoing(Outgoing::Disconnect)
                if shared.stopping.load(Ordering::SeqCst) =>
            {
                return "disconnected".into();
            }
            _ => {}
        }
    }
}

/// After CONNACK: retained online state, Home Assistant discovery, command subscription; then the
/// connection is offered to deliveries.
async fn announce(shared: Arc<Shared>, session: Arc<Session>, generation: u64) {
    let state = {
        let mut s = shared.snapshot();
        if let Some(live) = &shared.live {
            let now = *live.borrow();
            s.armed = Some(now.armed);
            s.door = Some(now.door());
        }
        s.to_json()
    };
    let mut msgs = vec![Msg {
        topic: shared.topics.state.clone(),
        payload: state,
        retain: true,
    }];
    if let Some(prefix) = &shared.home_assistant {
        msgs.extend(discovery(prefix, &shared.door_id, &shared.topics));
    }
    if let Err(e) = session.publish_all(msgs, shared.publish_timeout).await {
        tracing::warn!(error = %e, "could not announce the door on MQTT; reconnecting");
        session.poison(&e);
        return;
    }
    if shared.inbound.enabled() {
        if let Err(e) = session
            .client
            .subscribe(shared.topics.command.clone(), QoS::AtLeastOnce)
            .await
        {
            tracing::warn!(error = %e, "could not subscribe to the command topic");
        }
    }
    if !shared.stopping.load(Ordering::SeqCst) {
        shared.conn.send_replace(Conn::Up {
            generation,
            session,
        });
    }
}
