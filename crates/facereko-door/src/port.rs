//! What the controller needs from storage, as a trait, so the controller's timing can be tested on tokio's
//! paused clock with an in-memory directory (a real database answers from other threads, which would let
//! the paused clock jump). The daemon uses [`facereko_store::Store`] through the impl below.

use async_trait::async_trait;
use facereko_domain::{Attempt, Card, CardUid, Event, NewAttempt, Person, PersonId, Photo};

/// A storage failure, as text: the controller only logs it and carries on with the door.
pub type PortError = Box<dyn std::error::Error + Send + Sync>;

/// Whether the card and face data the door reads is current enough to decide on (a door of a site reads
/// a local replica of the central database; see `facereko-fleet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directory {
    /// Current, or stale with a rule that says keep deciding: decide as usual.
    Trusted,
    /// Stale, and the rule says a known card opens on its own: `card+face` decides like `card`, and
    /// `face` mode opens for nobody.
    CardOnly(String),
    /// Stale, and the rule says refuse: every tap is refused as `store_unavailable` with this reason.
    Refused(String),
}

#[async_trait]
pub trait DoorStore: Send + Sync {
    async fn lookup_card(&self, uid: &CardUid) -> Result<Option<(Card, Person)>, PortError>;
    async fn person(&self, id: PersonId) -> Result<Option<Person>, PortError>;
    /// Stores the attempt with its photo (and queues its event for the notifier).
    async fn record_attempt(
        &self,
        attempt: &NewAttempt,
        photo: Option<&Photo>,
    ) -> Result<Attempt, PortError>;
    async fn armed(&self, door_id: &str) -> Result<Option<bool>, PortError>;
    async fn set_armed(&self, door_id: &str, armed: bool) -> Result<(), PortError>;
    /// Queues an event that is not an attempt (arm/disarm, door state, alarm) for the notifier.
    async fn enqueue_event(&self, door_id: &str, event: &Event) -> Result<(), PortError>;
    /// How many faces `person` has enrolled, when the store can tell: a face mismatch of someone with none
    /// says so instead of looking like someone else's face.
    async fn enrolled_faces(&self, _person: PersonId) -> Result<Option<usize>, PortError> {
        Ok(None)
    }
    /// This door's newest attempt, so the status after a restart still shows it.
    async fn last_attempt(&self, door_id: &str) -> Result<Option<Attempt>, PortError>;
    /// Whether the card and face data is current enough to decide on; asked at every decision, so it
    /// must answer at once (no I/O).
    fn directory(&self) -> Directory {
        Directory::Trusted
    }
}
#[async_trait]
impl DoorStore for facereko_store::Store {
    async fn lookup_card(&self, uid: &CardUid) -> Result<Option<(Card, Person)>, PortError> {
        Ok(facereko_store::Store::lookup_card(self, uid).await?)
    }

    async fn person(&self, id: PersonId) -> Result<Option<Person>, PortError> {
        Ok(facereko_store::Store::person(self, id).await?)
    }

    async fn record_attempt(
        &self,
        attempt: &NewAttempt,
        photo: Option<&Photo>,
    ) -> Result<Attempt, PortError> {
        Ok(facereko_store::Store::record_attempt(self, attempt, photo).await?)
    }

    async fn armed(&self, door_id: &str) -> Result<Option<bool>, PortError> {
        Ok(facereko_store::Store::armed(self, door_id).await?)
    }

    async fn set_armed(&self, door_id: &str, armed: bool) -> Result<(), PortError> {
        Ok(facereko_store::Store::set_armed(self, door_id, armed).await?)
    }

    async fn enqueue_event(&self, door_id: &str, event: &Event) -> Result<(), PortError> {
        facereko_store::Store::enqueue_event(self, door_id, event).await?;
        Ok(())
    }

    async fn last_attempt(&self, door_id: &str) -> Result<Option<Attempt>, PortError> {
        let query = facereko_store::AttemptQuery {
            limit: 1,
            door_id: Some(door_id.to_string()),
            ..Default::default()
        };
        Ok(facereko_store::Store::attempts(self, &query)
            .await?
            .into_iter()
            .next())
    }

    async fn enrolled_faces(&self, person: PersonId) -> Result<Option<usize>, PortError> {
        Ok(Some(
            facereko_store::Store::faces(self, Some(person))
                .await?
                .len(),
        ))
    }
}
