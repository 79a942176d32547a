//! The outbox as the notifier sees it: an ordered log of events per door with one cursor per sink.
//!
//! [`Outbox`] is implemented for the real `facereko_store::Store` and, for tests (feature `testing`), for
//! `MemoryOutbox`, which keeps the same rules in memory.

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use facereko_domain::Event;
/// One event in the outbox and how far behind one sink is: the store's own types, used as they are.
/// An entry's `id` is the event id carried by every payload, so consumers can drop the duplicates that
/// at-least-once delivery may produce.
pub use facereko_store::{OutboxEntry, SinkStats};

use crate::Result;

#[cfg(any(test, feature = "testing"))]
mod memory;
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryOutbox;

/// What the notifier needs from the store.
#[async_trait]
pub trait Outbox: Send + Sync + fmt::Debug {
    /// Appends an event; returns its id (the event id).
    async fn enqueue(&self, door_id: &str, event: &Event) -> Result<i64>;
    /// Registers a sink; a new sink starts after the current newest entry (history is not replayed).
    async fn register_sink(&self, door_id: &str, sink: &str) -> Result<()>;
    /// Entries after the sink's cursor, oldest first, at most `limit`.
    async fn pending(&self, door_id: &str, sink: &str, limit: u32) -> Result<Vec<OutboxEntry>>;
    /// Moves the sink's cursor to `up_to_id`.
    async fn ack(&self, door_id: &str, sink: &str, up_to_id: i64) -> Result<()>;
    async fn backlog(&self, door_id: &str) -> Result<Vec<SinkStats>>;
    /// Deletes entries older than `older_than` that every sink has acknowledged.
    async fn prune(&self, older_than: DateTime<Utc>) -> Result<u64>;
    /// The door's persisted armed flag, to announce on (re)connect.
    async fn armed(&self, door_id: &str) -> Result<Option<bool>>;
    /// Absolute path of a stored photo from its relative name in `Attempt::photo`.
    fn photo_path(&self, relative: &str) -> Result<PathBuf>;
}

/// The real outbox: the store's tables, written by `Store::record_attempt` in the attempt's transaction.
#[async_trait]
impl Outbox for facereko_store::Store {
    async fn enqueue(&self, door_id: &str, event: &Event) -> Result<i64> {
        Ok(self.enqueue_event(door_id, event).await?)
    }

    async fn register_sink(&self, door_id: &str, sink: &str) -> Result<()> {
        Ok(self.outbox_register_sink(door_id, sink).await?)
    }

    async fn pending(&self, door_id: &str, sink: &str, limit: u32) -> Result<Vec<OutboxEntry>> {
        Ok(self.outbox_pending(door_id, sink, limit).await?)
    }

    async fn ack(&self, door_id: &str, sink: &str, up_to_id: i64) -> Result<()> {
        Ok(self.outbox_ack(door_id, sink, up_to_id).await?)
    }

    async fn backlog(&self, door_id: &str) -> Result<Vec<SinkStats>> {
        Ok(self.outbox_stats(door_id).await?)
    }

    async fn prune(&self, older_than: DateTime<Utc>) -> Result<u64> {
        Ok(self.outbox_prune(older_than).await?)
    }

    async fn armed(&self, door_id: &str) -> Result<Option<bool>> {
        Ok(facereko_store::Store::armed(self, door_id).await?)
    }

    fn photo_path(&self, relative: &str) -> Result<PathBuf> {
        Ok(facereko_store::Store::photo_path(self, relative)?)
    }
}

/// The backlog per sink straight from the store, for `facereko status` in a process that does not run
/// the notifier (the running daemon's [`crate::NotifierHandle::status`] also knows the last errors).
pub async fn backlog(store: &facereko_store::Store, door_id: &str) -> Result<Vec<SinkStats>> {
    Outbox::backlog(store, door_id).await
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Error;
    use facereko_domain::Alarm;

    fn alarm(door: &str) -> Event {
        Event::Alarm {
            door_id: door.into(),
            alarm: Alarm::ForcedOpen,
            time: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_store_that_is_down_is_reported_as_unavailable() {
        let outbox = MemoryOutbox::new(Path::new("/nonexistent"));
        outbox.set_failing(true);
        let err = outbox.enqueue("front", &alarm("front")).await.unwrap_err();
        assert!(
            matches!(err, Error::Store(facereko_store::Error::Unavailable { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("is unreachable"), "{err}");
        let err = outbox.pending("front", "nobody", 10).await;
        assert!(err.is_err());
        outbox.set_failing(false);
        let err = outbox.pending("front", "nobody", 10).await.unwrap_err();
        assert!(
            matches!(err, Error::Store(facereko_store::Error::NotFound(_))),
            "{err:?}"
        );
        outbox.register_sink("front", "mqtt").await.unwrap();
        outbox.enqueue("front", &alarm("front")).await.unwrap();
        let stats = outbox.backlog("front").await.unwrap();
        assert_eq!(stats[0].acked_id, 0);
        assert_eq!(stats[0].pending, 1);
    }

    #[tokio::test]
    async fn memory_outbox_keeps_cursors_per_sink_and_prunes_only_acked() {
        let o = MemoryOutbox::new(Path::new("/nonexistent"));
        let before = o.enqueue("front", &alarm("front")).await.unwrap();
        o.register_sink("front", "a").await.unwrap();
        o.register_sink("front", "b").await.unwrap();
        assert!(
            o.pending("front", "a", 10).await.unwrap().is_empty(),
            "history is not replayed"
        );
        let one = o.enqueue("front", &alarm("front")).await.unwrap();
        let _other_door = o.enqueue("back", &alarm("back")).await.unwrap();
        let two = o.enqueue("front", &alarm("front")).await.unwrap();
        assert!(before < one && one < two);
        let ids: Vec<i64> = o
            .pending("front", "a", 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec![one, two]);
        assert_eq!(o.pending("front", "a", 1).await.unwrap().len(), 1);
        o.ack("front", "a", two).await.unwrap();
        let backlog = o.backlog("front").await.unwrap();
        assert_eq!(backlog[0].pending, 0);
        assert_eq!(backlog[1].pending, 2);
        let future = Utc::now() + chrono::Duration::seconds(5);
        // "back" has no sinks at all, "before" predates both cursors; `one`/`two` wait for sink b.
        assert_eq!(o.prune(future).await.unwrap(), 2);
        o.ack("front", "b", two).await.unwrap();
        assert_eq!(o.prune(future).await.unwrap(), 2);
        assert!(o.is_empty());
        assert!(o.photo_path("../etc/passwd").is_err());
        assert!(o.photo_path("/etc/passwd").is_err());
    }
}
