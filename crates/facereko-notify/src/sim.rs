//! A simulated sink: records what it was given and fails on request. Good enough to run the whole
//! system on a laptop with `[notify]` pointing nowhere, and to test the delivery loop.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{DeliveryError, Notifier, OutboxEntry};

#[derive(Debug, Default)]
pub struct RecordingNotifier {
    name: String,
    failing: AtomicBool,
    attempts: AtomicUsize,
    refused: Mutex<HashSet<i64>>,
    delivered: Mutex<Vec<OutboxEntry>>,
}

impl RecordingNotifier {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// While set, every delivery fails as an unreachable server would (transient).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The event with this id will be refused for good (permanent).
    pub fn refuse(&self, event_id: i64) {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(event_id);
    }

    /// Ids of the events delivered so far, in delivery order.
    pub fn delivered(&self) -> Vec<i64> {
        self.entries().iter().map(|e| e.id).collect()
    }

    pub fn entries(&self) -> Vec<OutboxEntry> {
        self.delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Deliveries tried, successful or not.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(DeliveryError::Transient(
                "receiver unreachable (simulated)".into(),
            ));
        }
        if self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&entry.id)
        {
            return Err(DeliveryError::Permanent("refused (simulated)".into()));
        }
        self.delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry.clone());
        Ok(())
    }
}
