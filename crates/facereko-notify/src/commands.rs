//! Remote commands (`arm`, `disarm`, `unlock`) and how the door decides to believe one.
//!
//! A command is JSON signed with the `[mqtt.commands]` secret:
//!
//! ```text
//! {"command": "unlock", "ts": 1767225600, "nonce": "9f86d081884c7d65", "sig": "<hex>"}
//! sig = hex(HMAC-SHA256(secret, "v1\n<door_id>\n<command>\n<ts>\n<nonce>"))
//! ```
//!
//! `ts` is Unix time in seconds and must be within [`MAX_SKEW_SECS`] of the door's clock; `nonce` is
//! 16–64 characters of `A–Z a–z 0–9 . _ ~ -`, used once: the door remembers every nonce for
//! [`NONCE_MEMORY_SECS`], longer than a timestamp stays acceptable, so a command seen once on the wire
//! cannot be sent again. The door id in the signed text binds a command to one door. A fixed secret in
//! the message (the old `{"secret": …}` form) is refused: whoever saw it once could replay it forever.
//!
//! Bare `ARM`, `DISARM`, `UNLOCK` (Home Assistant's fixed payloads, which cannot be signed) are
//! accepted only with `trust_broker_acl = true`, an explicit statement that the broker's ACL alone
//! decides who may publish to the command topic.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::MqttCommandsConfig;

/// Largest difference between a command's `ts` and the door's clock, in seconds.
pub const MAX_SKEW_SECS: i64 = 30;
/// How long a used nonce is remembered, in seconds.
pub const NONCE_MEMORY_SECS: i64 = 300;
/// More signed commands than this within [`NONCE_MEMORY_SECS`] are refused (memory stays bounded).
const MAX_REMEMBERED_NONCES: usize = 10_000;

/// What a remote operator may ask of the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DoorCommand {
    Arm,
    Disarm,
    Unlock,
}

impl DoorCommand {
    /// The word in commands and in the signed text.
    pub fn as_str(self) -> &'static str {
        match self {
            DoorCommand::Arm => "arm",
            DoorCommand::Disarm => "disarm",
            DoorCommand::Unlock => "unlock",
        }
    }

    fn parse(word: &str) -> Result<Self, String> {
        match word.trim().to_ascii_lowercase().as_str() {
            "arm" => Ok(DoorCommand::Arm),
            "disarm" => Ok(DoorCommand::Disarm),
            "unlock" => Ok(DoorCommand::Unlock),
            "lock" => Err("lock is not a command: the door locks itself after unlocking".into()),
            other => Err(format!("unknown command {other:?} (arm, disarm or unlock)")),
        }
    }
}

/// An authorised command, handed to the door through the channel given to [`crate::spawn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRequest {
    pub command: DoorCommand,
    pub received: DateTime<Utc>,
    /// Where it came from, for the log: `mqtt:<topic>`.
    pub origin: String,
}

/// The text a command's signature covers: `v1\n<door_id>\n<command>\n<ts>\n<nonce>` (no final newline).
pub fn canonical(door_id: &str, command: DoorCommand, ts: i64, nonce: &str) -> String {
    format!("v1\n{door_id}\n{}\n{ts}\n{nonce}", command.as_str())
}

/// The hex HMAC-SHA256 of [`canonical`] under `secret`: what `openssl dgst -sha256 -hmac` prints.
pub fn sign(secret: &[u8], door_id: &str, command: DoorCommand, ts: i64, nonce: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, canonical(door_id, command, ts, nonce).as_bytes());
    hex::encode(tag.as_ref())
}

/// A complete signed command payload, as the README's shell recipe builds it.
pub fn signed_payload(
    secret: &[u8],
    door_id: &str,
    command: DoorCommand,
    ts: i64,
    nonce: &str,
) -> String {
    serde_json::json!({
        "command": command.as_str(),
        "ts": ts,
        "nonce": nonce,
        "sig": sign(secret, door_id, command, ts, nonce),
    })
    .to_string()
}

fn valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

/// Checks `hex_sig` against HMAC-SHA256(`secret`, `message`) in constant time.
fn verify_hex(secret: &[u8], message: &[u8], hex_sig: &str) -> bool {
    if hex_sig.len() != 64 || !hex_sig.is_ascii() {
        return false;
    }
    let mut tag = [0u8; 32];
    if hex::decode_to_slice(hex_sig, &mut tag).is_err() {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, message, &tag).is_ok()
}

/// Authorises the commands of one door: signature, clock, one use per nonce.
#[derive(Debug)]
pub struct CommandGuard {
    config: MqttCommandsConfig,
    door_id: String,
    /// Commands signed before this second are refused: the nonces seen before a restart are gone.
    started: i64,
    /// Nonce → when it was used (Unix seconds).
    nonces: Mutex<HashMap<String, i64>>,
}

impl CommandGuard {
    /// A guard for `door_id`; `started` is when the door started listening.
    pub fn new(config: &MqttCommandsConfig, door_id: &str, started: DateTime<Utc>) -> Self {
        Self {
            config: config.clone(),
            door_id: door_id.to_string(),
            started: started.timestamp(),
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// The command in `payload` if it may run now, else why not (for the log).
    pub fn check(&self, payload: &[u8], now: DateTime<Utc>) -> Result<DoorCommand, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Json {
            command: String,
            ts: Option<i64>,
            nonce: Option<String>,
            sig: Option<String>,
            secret: Option<serde_json::Value>,
        }
        let text = std::str::from_utf8(payload)
            .map_err(|_| "the payload is not UTF-8".to_string())?
            .trim();
        if !text.starts_with('{') {
            let command = DoorCommand::parse(text)?;
            if !self.config.trust_broker_acl {
                return Err(format!(
                    "bare {text:?} is accepted only with mqtt.commands.trust_broker_acl = true; \
                     {}",
                    self.how_to_sign()
                ));
            }
            return Ok(command);
        }
        let j: Json = serde_json::from_str(text).map_err(|e| format!("bad JSON command: {e}"))?;
        if j.secret.is_some() {
            return Err(format!(
                "a \"secret\" field is no longer accepted (anyone who saw it once could replay it); {}",
                self.how_to_sign()
            ));
        }
        let (ts, nonce, sig) = match (j.ts, j.nonce, j.sig) {
            (Some(ts), Some(nonce), Some(sig)) => (ts, nonce, sig),
            (None, None, None) if self.config.trust_broker_acl => {
                return DoorCommand::parse(&j.command)
            }
            _ => return Err(format!("unsigned command; {}", self.how_to_sign())),
        };
        let command = match j.command.as_str() {
            "arm" | "disarm" | "unlock" => DoorCommand::parse(&j.command)?,
            other => {
                return Err(format!(
                    "command {other:?}: a signed command is arm, disarm or unlock, in lower case"
                ))
            }
        };
        if self.config.secret.is_empty() {
            return Err("signed commands need mqtt.commands.secret, which is not set".into());
        }
        if !valid_nonce(&nonce) {
            return Err("nonce must be 16–64 characters of A–Z a–z 0–9 . _ ~ -".into());
        }
        let signed = canonical(&self.door_id, command, ts, &nonce);
        if !verify_hex(
            self.config.secret.expose().as_bytes(),
            signed.as_bytes(),
            &sig,
        ) {
            return Err(format!(
                "bad signature (signed text must be {signed:?} keyed with mqtt.commands.secret)"
            ));
        }
        let now = now.timestamp();
        let skew = now.saturating_sub(ts);
        if skew.abs() > MAX_SKEW_SECS {
            return Err(format!(
                "timestamp {ts} is {skew} s off the door's clock (at most {MAX_SKEW_SECS} s): \
                 stale, replayed or a clock out of sync"
            ));
        }
        if ts < self.started {
            return Err(format!(
                "signed at {ts}, before the door started listening at {}: refused, since its \
                 nonce may have been used before the restart",
                self.started
            ));
        }
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        nonces.retain(|_, used| now.saturating_sub(*used) <= NONCE_MEMORY_SECS);
        if nonces.contains_key(&nonce) {
            return Err(format!("replayed: nonce {nonce:?} was already used"));
        }
        if nonces.len() >= MAX_REMEMBERED_NONCES {
            return Err(format!(
                "more than {MAX_REMEMBERED_NONCES} commands in {NONCE_MEMORY_SECS} s; refused"
            ));
        }
        nonces.insert(nonce, now);
        Ok(command)
    }

    fn how_to_sign(&self) -> String {
        format!(
            "send JSON {{\"command\": \"arm|disarm|unlock\", \"ts\": <unix seconds>, \"nonce\": \
             \"<16-64 random characters>\", \"sig\": \"<hex>\"}} where sig is the hex HMAC-SHA256, keyed \
             with mqtt.commands.secret, of the text v1\\n{}\\n<command>\\n<ts>\\n<nonce> (\\n: a \
             newline; see the README, MQTT commands)",
            self.door_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    const SECRET: &str = "a-long-shared-secret";

    fn config() -> MqttCommandsConfig {
        MqttCommandsConfig {
            enabled: true,
            secret: Secret::new(SECRET),
            ..Default::default()
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    const T0: i64 = 1_767_225_600;

    fn signed(door: &str, command: DoorCommand, ts: i64, nonce: &str) -> Vec<u8> {
        signed_payload(SECRET.as_bytes(), door, command, ts, nonce).into_bytes()
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_documented_text() {
        assert_eq!(
            canonical("front", DoorCommand::Unlock, T0, "0123456789abcdef"),
            "v1\nfront\nunlock\n1767225600\n0123456789abcdef"
        );
        // The same value as `printf 'v1\nfront\nunlock\n1767225600\n0123456789abcdef' |
        // openssl dgst -sha256 -hmac a-long-shared-secret`.
        assert_eq!(
            sign(
                SECRET.as_bytes(),
                "front",
                DoorCommand::Unlock,
                T0,
                "0123456789abcdef"
            ),
            "72c2d481c44beba4eeb93d8fc053821aa8c0142a56d98e7030bcc4110285ca50"
        );
    }

    /// Regression: a command carrying a fixed secret could be replayed by anyone who saw it once.
    #[test]
    fn a_signed_command_runs_once_and_a_replay_is_refused() {
        let g = CommandGuard::new(&config(), "front", at(T0 - 100));
        let msg = signed("front", DoorCommand::Unlock, T0, "0123456789abcdef");
        assert_eq!(g.check(&msg, at(T0 + 2)), Ok(DoorCommand::Unlock));
        let again = g.check(&msg, at(T0 + 3)).unwrap_err();
        assert!(again.contains("replayed"), "{again}");
        // Still refused after the timestamp window, and after the nonce memory (then as stale).
        assert!(g.check(&msg, at(T0 + 29)).unwrap_err().contains("replayed"));
        assert!(g.check(&msg, at(T0 + 400)).unwrap_err().contains("stale"));
        // A new nonce is a new command.
        let other = signed("front", DoorCommand::Unlock, T0 + 5, "fedcba9876543210");
        assert_eq!(g.check(&other, at(T0 + 6)), Ok(DoorCommand::Unlock));
    }

    #[test]
    fn stale_future_forged_and_foreign_commands_are_refused() {
        let g = CommandGuard::new(&config(), "front", at(T0 - 100));
        let now = at(T0);
        let stale = signed("front", DoorCommand::Arm, T0 - 31, "nonce-stale-000001");
        assert!(g.check(&stale, now).unwrap_err().contains("stale"));
        let future = signed("front", DoorCommand::Arm, T0 + 31, "nonce-future-00001");
        assert!(g
            .check(&future, now)
            .unwrap_err()
            .contains("off the door's clock"));
        let edge = signed("front", DoorCommand::Arm, T0 - 30, "nonce-edge-0000001");
        assert_eq!(g.check(&edge, now), Ok(DoorCommand::Arm));
        // Signed for another door: the door id is part of the signed text.
        let foreign = signed("back", DoorCommand::Unlock, T0, "nonce-foreign-0001");
        assert!(g
            .check(&foreign, now)
            .unwrap_err()
            .contains("bad signature"));
        // Another secret, an altered command, a short nonce.
        let wrong = signed_payload(
            b"another-long-secret",
            "front",
            DoorCommand::Unlock,
            T0,
            "nonce-wrong-000001",
        );
        assert!(g
            .check(wrong.as_bytes(), now)
            .unwrap_err()
            .contains("bad signature"));
        let altered =
            String::from_utf8(signed("front", DoorCommand::Arm, T0, "nonce-altered-0001"))
                .unwrap()
                .replace("\"arm\"", "\"unlock\"");
        assert!(g
            .check(altered.as_bytes(), now)
            .unwrap_err()
            .contains("bad signature"));
        let short = signed("front", DoorCommand::Arm, T0, "abc");
        assert!(g.check(&short, now).unwrap_err().contains("nonce"));
        // A refused command does not use up its nonce.
        let late = signed("front", DoorCommand::Arm, T0, "nonce-late-0000001");
        assert!(g.check(&late, at(T0 + 60)).is_err());
        assert_eq!(g.check(&late, now), Ok(DoorCommand::Arm));
    }

    #[test]
    fn commands_signed_before_the_door_started_are_refused() {
        let g = CommandGuard::new(&config(), "front", at(T0));
        let before = signed("front", DoorCommand::Unlock, T0 - 5, "nonce-before-00001");
        assert!(g
            .check(&before, at(T0 + 1))
            .unwrap_err()
            .contains("before the door started"));
    }

    #[test]
    fn the_old_secret_field_is_refused_with_what_to_send() {
        let g = CommandGuard::new(&config(), "front", at(T0));
        let err = g
            .check(
                format!(r#"{{"command":"unlock","secret":"{SECRET}"}}"#).as_bytes(),
                at(T0),
            )
            .unwrap_err();
        assert!(
            err.contains("\"secret\" field is no longer accepted"),
            "{err}"
        );
        assert!(
            err.contains("HMAC-SHA256") && err.contains("v1\\nfront\\n<command>"),
            "{err}"
        );
        // Even next to a valid signature.
        let mut v: serde_json::Value = serde_json::from_slice(&signed(
            "front",
            DoorCommand::Unlock,
            T0,
            "nonce-both-0000001",
        ))
        .unwrap();
        v["secret"] = SECRET.into();
        assert!(g.check(v.to_string().as_bytes(), at(T0)).is_err());
        assert!(g
            .check(b"UNLOCK", at(T0))
            .unwrap_err()
            .contains("trust_broker_acl"));
        assert!(g
            .check(br#"{"command":"unlock"}"#, at(T0))
            .unwrap_err()
            .contains("unsigned"));
        assert!(g.check(b"\xff", at(T0)).is_err());
    }

    #[test]
    fn broker_acl_mode_takes_home_assistant_payloads_and_still_checks_signatures() {
        let c = MqttCommandsConfig {
            enabled: true,
            trust_broker_acl: true,
            ..Default::default()
        };
        let g = CommandGuard::new(&c, "front", at(T0));
        assert_eq!(g.check(b"ARM", at(T0)), Ok(DoorCommand::Arm));
        assert_eq!(g.check(b"DISARM\n", at(T0)), Ok(DoorCommand::Disarm));
        assert_eq!(g.check(b"UNLOCK", at(T0)), Ok(DoorCommand::Unlock));
        assert!(g
            .check(b"LOCK", at(T0))
            .unwrap_err()
            .contains("locks itself"));
        assert!(g
            .check(b"open", at(T0))
            .unwrap_err()
            .contains("unknown command"));
        // No secret set: signed commands cannot be checked, so they are refused.
        let msg = signed("front", DoorCommand::Unlock, T0, "0123456789abcdef");
        assert!(g
            .check(&msg, at(T0))
            .unwrap_err()
            .contains("mqtt.commands.secret"));
    }
}
