//! The site connection of a door: the directory change signal and every door's retained state.
//!
//! `<prefix>/sync` is a retained `{"rev": N}` naming the newest central directory revision (people, cards,
//! faces). The process that changes the directory (the web app, in any door's daemon) publishes it; every
//! door subscribes and, on any message, asks the central database for changes at once instead of at its
//! next poll. The signal only says "look now": the revision itself is read from the database, so a lost,
//! late or out-of-order signal costs time (up to `fleet.poll_secs`), never correctness.
//!
//! The same connection follows `<prefix>/+/state`, the retained state each door's notifier keeps (and
//! its last will turns to offline), so any door's web app can show every door of the site. Its own
//! connection (client id `<door client id>-sync`, no last will) keeps it apart from the notifier's
//! delivery accounting.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::options::{client_id, connection_options};
use crate::config::MqttConfig;
use crate::payload::StateSnapshot;
use crate::{DeliveryError, Result};

/// The sync signal's topic under `prefix`.
pub fn sync_topic(prefix: &str) -> String {
    format!("{}/sync", prefix.trim_matches('/'))
}

/// A door of the site as its retained state last said.
#[derive(Clone, Debug, PartialEq)]
pub struct DoorSeen {
    pub state: StateSnapshot,
    /// When this connection received that state.
    pub seen: DateTime<Utc>,
}

/// A running site connection; dropping it closes the connection.
#[derive(Debug)]
pub struct SiteLink {
    publish: watch::Sender<Option<i64>>,
    received: watch::Receiver<u64>,
    doors: watch::Receiver<BTreeMap<String, DoorSeen>>,
    commands: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    prefix: String,
    task: JoinHandle<()>,
}

impl Drop for SiteLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SiteLink {
    /// Connects (in the background, reconnecting with back-off) to the broker of `config`. Needs a Tokio
    /// runtime; fails only on a configuration the notifier would refuse too.
    pub fn start(config: &MqttConfig, door_id: &str) -> Result<Self> {
        let options = connection_options(config, &format!("{}-sync", client_id(config, door_id)))?;
        let topic = sync_topic(&config.topic_prefix);
        let prefix = format!("{}/", config.topic_prefix.trim_matches('/'));
        let states = format!("{prefix}+/state");
        let (publish, mut outgoing) = watch::channel(None::<i64>);
        let (seen, received) = watch::channel(0u64);
        let (doors_tx, doors) = watch::channel(BTreeMap::new());
        let (commands, mut to_send) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let my_prefix = prefix.clone();
        let task = tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                let (client, mut events) = AsyncClient::new(options.clone(), 16);
                outgoing.mark_changed();
                let error = loop {
                    tokio::select! {
                        polled = events.poll() => match polled {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                                delay = Duration::from_secs(1);
                                if let Err(e) = client.subscribe(&topic, QoS::AtLeastOnce).await {
                                    break e.to_string();
                                }
                                if let Err(e) = client.subscribe(&states, QoS::AtLeastOnce).await {
                                    break e.to_string();
                                }
                            }
                            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                                seen.send_modify(|n| *n += 1);
                            }
                            Ok(Event::Incoming(Packet::Publish(p))) => {
                                let door = p
                                    .topic
                                    .strip_prefix(&prefix)
                                    .and_then(|t| t.strip_suffix("/state"))
                                    .filter(|d| !d.is_empty() && !d.contains('/'));
                                if let Some(door) = door {
                                    let state = serde_json::from_slice::<StateSnapshot>(&p.payload);
                                    doors_tx.send_modify(|m| match state {
                                        Ok(state) => {
                                            m.insert(door.to_string(), DoorSeen { state, seen: Utc::now() });
                                        }
                                        // An emptied retained state: the door was removed.
                                        Err(_) if p.payload.is_empty() => {
                                            m.remove(door);
                                        }
                                        Err(_) => {}
                                    });
                                }
                            }
                            Ok(_) => {}
                            Err(e) => break e.to_string(),
                        },
                        Some((command_topic, payload)) = to_send.recv() => {
                            // Not retained: a command is for now, never for a door that connects later.
                            if let Err(e) = client
                                .publish(&command_topic, QoS::AtLeastOnce, false, payload)
                                .await
                            {
                                break e.to_string();
                            }
                        }
                        changed = outgoing.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            let rev = *outgoing.borrow_and_update();
                            if let Some(rev) = rev {
                                let payload = format!("{{\"rev\":{rev}}}");
                                if let Err(e) = client
                                    .publish(&topic, QoS::AtLeastOnce, true, payload)
                                    .await
                                {
                                    break e.to_string();
                                }
                            }
                        }
                    }
                };
                tracing::debug!(%error, retry_in = ?delay, "MQTT sync signal connection lost");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        });
        Ok(Self {
            publish,
            received,
            doors,
            commands,
            prefix: my_prefix,
            task,
        })
    }

    /// Announces that the central directory is now at `rev` (retained, so a door that connects later
    /// looks too). Queued while disconnected; only the newest revision is sent.
    pub fn announce(&self, rev: i64) {
        self.publish.send_replace(Some(rev));
    }

    /// Changes each time a signal arrives (the count of signals seen).
    pub fn received(&self) -> watch::Receiver<u64> {
        self.received.clone()
    }

    /// Sends a signed command (`[mqtt.commands] secret`, the site's shared key) to another door of the
    /// site, on `<prefix>/<door>/command`; that door checks it like any command. Queued while
    /// disconnected.
    pub fn send_command(
        &self,
        secret: &[u8],
        door_id: &str,
        command: crate::DoorCommand,
    ) -> Result<(), String> {
        if secret.is_empty() {
            return Err(
                "no [mqtt.commands] secret is set on this door to sign commands with".into(),
            );
        }
        let nonce = {
            use rand::RngCore;
            let mut b = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut b);
            hex::encode(b)
        };
        let payload = crate::commands::signed_payload(
            secret,
            door_id,
            command,
            Utc::now().timestamp(),
            &nonce,
        );
        self.commands
            .send((format!("{}{door_id}/command", self.prefix), payload))
            .map_err(|_| "the site connection has stopped".to_string())
    }

    /// Every door of the site whose retained state this connection has seen, by door id.
    pub fn doors(&self) -> BTreeMap<String, DoorSeen> {
        self.doors.borrow().clone()
    }
}

/// Publishes the signal once and waits for the broker to take it, for a one-off command that changed the
/// directory (`facereko people …`, `enrol`): without it the doors would learn of the change at their
/// next poll. `Ok(())` once the broker acknowledged it within `timeout`.
pub async fn announce_once(
    config: &MqttConfig,
    door_id: &str,
    rev: i64,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let id = format!("{}-cmd-{}", client_id(config, door_id), std::process::id());
    let options =
        connection_options(config, &id).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
    let topic = sync_topic(&config.topic_prefix);
    let (client, mut events) = AsyncClient::new(options, 4);
    let payload = format!("{{\"rev\":{rev}}}");
    client
        .publish(&topic, QoS::AtLeastOnce, true, payload)
        .await
        .map_err(|e| DeliveryError::Transient(e.to_string()))?;
    let acked = tokio::time::timeout(timeout, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(DeliveryError::Transient(e.to_string())),
            }
        }
    })
    .await
    .map_err(|_| {
        DeliveryError::Transient(format!("no answer from the broker within {timeout:?}"))
    })?;
    if acked.is_ok() {
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
    }
    acked
}
