//! Messages from the broker: signed door commands on the door's command topic, checked (signature,
//! time, nonce, no retained message, no redelivered copy) and handed to the door; anything else ignored.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::Utc;
use rumqttc::Publish;
use tokio::sync::mpsc;

use crate::commands::{CommandGuard, CommandRequest};

/// What one connection does with incoming messages.
pub(crate) struct Inbound {
    pub door_id: String,
    /// The door's command topic.
    pub topic: String,
    /// The command check and where accepted commands go; `None` when commands are off.
    pub commands: Option<(CommandGuard, mpsc::Sender<CommandRequest>)>,
    /// Packet ids of the commands received on the current connection: a QoS 1 redelivery (DUP) of one
    /// of them is not run again.
    pub pkids: Mutex<HashSet<u16>>,
}

impl Inbound {
    /// Whether commands are taken at all (then the connection subscribes to the command topic).
    pub(crate) fn enabled(&self) -> bool {
        self.commands.is_some()
    }

    /// A new connection: packet ids start over.
    pub(crate) fn new_connection(&self) {
        self.pkids.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Handles one message the broker sent.
    pub(crate) fn on_publish(&self, p: &Publish) {
        if p.topic != self.topic {
            tracing::debug!(topic = %p.topic, "ignoring a message on an unexpected topic");
            return;
        }
        let Some((guard, tx)) = &self.commands else {
            tracing::warn!(topic = %p.topic, "MQTT command ignored: commands are disabled");
            return;
        };
        if p.retain {
            // A retained command would run again at every reconnect.
            tracing::warn!(topic = %p.topic, "MQTT command rejected: it was a retained message");
            return;
        }
        if p.pkid != 0 {
            // QoS 1 is "at least once": the broker sends a message again (DUP) when it missed our PUBACK.
            // The clean session means that happens on this connection only, after the first copy.
            let mut seen = self.pkids.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.insert(p.pkid) && p.dup {
                tracing::info!(door_id = %self.door_id, topic = %p.topic, pkid = p.pkid,
                    "MQTT command redelivered by the broker; it ran already");
                return;
            }
        }
        match guard.check(&p.payload, Utc::now()) {
            Ok(command) => {
                tracing::info!(door_id = %self.door_id, ?command, topic = %p.topic, "MQTT command accepted");
                let request = CommandRequest {
                    command,
                    received: Utc::now(),
                    origin: format!("mqtt:{}", p.topic),
                };
                if let Err(e) = tx.try_send(request) {
                    tracing::warn!(door_id = %self.door_id, ?command, error = %e,
                        "MQTT command dropped: the door is not taking commands");
                }
            }
            Err(reason) => {
                tracing::warn!(door_id = %self.door_id, topic = %p.topic, %reason, "MQTT command rejected");
            }
        }
    }
}
