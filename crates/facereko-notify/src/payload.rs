//! The JSON every sink sends, and the original's legacy texts.

use chrono::{DateTime, Utc};
use facereko_domain::{Alarm, AuditVia, DoorState, Event, Outcome};
use serde::{Deserialize, Serialize};

use crate::OutboxEntry;

/// One event as MQTT, webhooks and e-mail describe it. `event_id` is the outbox id: the same event
/// delivered twice has the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventPayload {
    pub event_id: i64,
    pub door_id: String,
    /// When it happened at the door.
    pub time: DateTime<Utc>,
    #[serde(flatten)]
    pub body: PayloadBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayloadBody {
    Attempt {
        attempt_id: i64,
        outcome: Outcome,
        granted: bool,
        person: Option<String>,
        person_id: Option<i64>,
        /// Only with `[outbox] include_card_uid = true`: in `card` mode the UID is the credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card_uid: Option<String>,
        similarity: Option<f32>,
        confidence: Option<f32>,
        has_photo: bool,
        detail: Option<String>,
    },
    Armed {
        armed: bool,
    },
    Door {
        state: DoorState,
    },
    Alarm {
        alarm: Alarm,
    },
    /// A test event asked for on the settings page.
    Test {
        by: String,
    },
    /// An administrative change or a remote command (the audit trail).
    Audit {
        audit_id: i64,
        actor: String,
        via: AuditVia,
        origin: Option<String>,
        action: String,
        target: String,
        detail: String,
    },
}

impl EventPayload {
    pub fn from_entry(entry: &OutboxEntry) -> Self {
        let (time, body) = match &entry.event {
            Event::Attempt { attempt: a, .. } => (
                a.time,
                PayloadBody::Attempt {
                    attempt_id: a.id,
                    outcome: a.outcome,
                    granted: a.outcome.is_granted(),
                    person: a.person.clone(),
                    person_id: a.person_id.map(|p| p.0),
                    card_uid: a.card_uid.as_ref().map(|u| u.to_string()),
                    similarity: a.similarity,
                    confidence: a.confidence,
                    has_photo: a.photo.is_some(),
                    detail: a.detail.clone(),
                },
            ),
            Event::Armed { armed, time, .. } => (*time, PayloadBody::Armed { armed: *armed }),
            Event::Door { state, time, .. } => (*time, PayloadBody::Door { state: *state }),
            Event::Alarm { alarm, time, .. } => (*time, PayloadBody::Alarm { alarm: *alarm }),
            Event::Test { by, time, .. } => (*time, PayloadBody::Test { by: by.clone() }),
            Event::Audit { entry: e, .. } => (
                e.time,
                PayloadBody::Audit {
                    audit_id: e.id,
                    actor: e.actor.clone(),
                    via: e.via,
                    origin: e.origin.clone(),
                    action: e.action.clone(),
                    target: e.target.clone(),
                    detail: e.detail.clone(),
                },
            ),
        };
        Self {
            event_id: entry.id,
            door_id: entry.door_id.clone(),
            time,
            body,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of plain fields cannot fail to serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The retained `<prefix>/<door>/state` message: availability plus the last known armed flag and door
/// state. The last will replaces it with `{"online": false}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub online: bool,
    pub armed: Option<bool>,
    pub door: Option<DoorState>,
    /// The event that changed it last, if any since start.
    pub event_id: Option<i64>,
    pub time: Option<DateTime<Utc>>,
}

impl StateSnapshot {
    pub fn offline() -> Self {
        Self::default()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The original's topic and text for an attempt: `FaceReko/success` with
/// `Identity matched <name> with <similarity> similarity and <confidence> confidence`, or
/// `FaceReko/failure` with `Unauthorized access attempt!`. Other events have no legacy message.
pub fn legacy_message(event: &Event) -> Option<(&'static str, String)> {
    let Event::Attempt { attempt: a, .. } = event else {
        return None;
    };
    match a.outcome {
        Outcome::SystemOff => None,
        Outcome::Granted => Some((
            "FaceReko/success",
            format!(
                "Identity matched {} with {} similarity and {} confidence",
                a.person.as_deref().unwrap_or("unknown"),
                a.similarity.unwrap_or(0.0),
                a.confidence.unwrap_or(0.0),
            ),
        )),
        _ => Some((
            "FaceReko/failure",
            "Unauthorized access attempt!".to_string(),
        )),
    }
}

/// A one-line human summary: `Ada Lovelace granted at front (similarity 97.1)`.
pub fn summary(p: &EventPayload) -> String {
    match &p.body {
        PayloadBody::Attempt {
            outcome,
            person,
            similarity,
            card_uid,
            ..
        } => {
            let who = person
                .clone()
                .or_else(|| card_uid.as_ref().map(|u| format!("card {u}")))
                .unwrap_or_else(|| "someone".into());
            let verdict = if outcome.is_granted() {
                "granted".to_string()
            } else {
                format!("denied ({})", outcome.as_str().replace('_', " "))
            };
            match similarity {
                Some(s) => format!("{who} {verdict} at {} (similarity {s:.1})", p.door_id),
                None => format!("{who} {verdict} at {}", p.door_id),
            }
        }
        PayloadBody::Armed { armed: true } => format!("{} armed", p.door_id),
        PayloadBody::Armed { armed: false } => format!("{} disarmed", p.door_id),
        PayloadBody::Door { state } => format!("{} {}", p.door_id, snake(state)),
        PayloadBody::Alarm { alarm } => format!("ALARM at {}: {}", p.door_id, snake(alarm)),
        PayloadBody::Test { by } => format!("Test event from {} (sent by {by})", p.door_id),
        PayloadBody::Audit {
            actor,
            via,
            action,
            target,
            ..
        } => format!(
            "{actor} ({}) at {}: {action} {target}",
            via.as_str(),
            p.door_id
        ),
    }
}

fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use facereko_domain::{Attempt, CardUid, PersonId, StageTimings};

    pub fn attempt(id: i64, outcome: Outcome, person: Option<&str>) -> Attempt {
        Attempt {
            id,
            time: "2026-11-27T08:30:00Z".parse().unwrap(),
            door_id: "front".into(),
            card_uid: Some("04:A2:2B:19".parse::<CardUid>().unwrap()),
            person_id: person.map(|_| PersonId(7)),
            person: person.map(str::to_string),
            outcome,
            similarity: person.map(|_| 97.5),
            distance: None,
            confidence: person.map(|_| 99.25),
            photo: Some("ab/cdef.jpg".into()),
            timings: StageTimings::default(),
            detail: None,
        }
    }

    pub fn entry(id: i64, event: Event) -> OutboxEntry {
        OutboxEntry {
            id,
            time: Utc::now(),
            door_id: "front".into(),
            event,
        }
    }

    #[test]
    fn attempt_payload_carries_event_id_and_decision() {
        let e = entry(
            42,
            Event::Attempt {
                door_id: "front".into(),
                attempt: attempt(17, Outcome::Granted, Some("Ada")),
            },
        );
        let v: serde_json::Value =
            serde_json::from_slice(&EventPayload::from_entry(&e).to_json()).unwrap();
        assert_eq!(v["event_id"], 42);
        assert_eq!(v["type"], "attempt");
        assert_eq!(v["door_id"], "front");
        assert_eq!(v["attempt_id"], 17);
        assert_eq!(v["outcome"], "granted");
        assert_eq!(v["granted"], true);
        assert_eq!(v["person"], "Ada");
        assert_eq!(v["person_id"], 7);
        assert_eq!(v["card_uid"], "04:A2:2B:19");
        assert_eq!(v["similarity"], 97.5);
        assert_eq!(v["confidence"], 99.25);
        assert_eq!(v["has_photo"], true);
        assert_eq!(v["time"], "2026-11-27T08:30:00Z");
        assert!(v.get("photo").is_none(), "photo paths stay on the door");
    }

    #[test]
    fn legacy_texts_are_the_originals() {
        let granted = Event::Attempt {
            door_id: "front".into(),
            attempt: attempt(1, Outcome::Granted, Some("Ada")),
        };
        assert_eq!(
            legacy_message(&granted).unwrap(),
            (
                "FaceReko/success",
                "Identity matched Ada with 97.5 similarity and 99.25 confidence".to_string()
            )
        );
        let denied = Event::Attempt {
            door_id: "front".into(),
            attempt: attempt(2, Outcome::UnknownCard, None),
        };
        assert_eq!(
            legacy_message(&denied).unwrap(),
            (
                "FaceReko/failure",
                "Unauthorized access attempt!".to_string()
            )
        );
        let armed = Event::Armed {
            door_id: "front".into(),
            armed: true,
            time: Utc::now(),
        };
        assert!(legacy_message(&armed).is_none());
    }

    #[test]
    fn summaries_say_who_what_where() {
        let p = EventPayload::from_entry(&entry(
            3,
            Event::Attempt {
                door_id: "front".into(),
                attempt: attempt(3, Outcome::FaceMismatch, Some("Ada")),
            },
        ));
        assert_eq!(
            summary(&p),
            "Ada denied (face mismatch) at front (similarity 97.5)"
        );
        let p = EventPayload::from_entry(&entry(
            4,
            Event::Alarm {
                door_id: "front".into(),
                alarm: Alarm::HeldOpen,
                time: Utc::now(),
            },
        ));
        assert_eq!(summary(&p), "ALARM at front: held open");
        let p = EventPayload::from_entry(&entry(
            5,
            Event::Test {
                door_id: "front".into(),
                by: "boss".into(),
                time: Utc::now(),
            },
        ));
        assert_eq!(summary(&p), "Test event from front (sent by boss)");
        assert_eq!(
            crate::config::EventKind::of(
                &entry(
                    5,
                    Event::Test {
                        door_id: "front".into(),
                        by: "boss".into(),
                        time: Utc::now(),
                    }
                )
                .event
            ),
            None,
            "a test event is of no kind: every webhook takes it"
        );
    }
}
