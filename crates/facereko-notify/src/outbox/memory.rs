//! The outbox in memory, with the store's rules: for tests (feature `testing`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use facereko_domain::Event;

use super::{Outbox, OutboxEntry, SinkStats};
use crate::{Error, Result};

#[derive(Debug, Default)]
struct Memory {
    next_id: i64,
    entries: BTreeMap<i64, OutboxEntry>,
    cursors: HashMap<(String, String), i64>,
    armed: HashMap<String, bool>,
}

/// An [`Outbox`] in memory with the store's rules; photos are looked up under `photo_dir`. For tests
/// (feature `testing`).
#[derive(Debug)]
pub struct MemoryOutbox {
    inner: Mutex<Memory>,
    photo_dir: PathBuf,
    failing: std::sync::atomic::AtomicBool,
}

impl MemoryOutbox {
    pub fn new(photo_dir: &Path) -> Self {
        Self {
            inner: Mutex::new(Memory {
                next_id: 1,
                ..Default::default()
            }),
            photo_dir: photo_dir.to_path_buf(),
            failing: Default::default(),
        }
    }

    /// Makes every call fail as a database that went away would.
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set_armed(&self, door_id: &str, armed: bool) {
        self.lock().armed.insert(door_id.to_string(), armed);
    }

    /// Entries currently kept (not pruned).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> Result<()> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err(Error::Store(facereko_store::Error::Unavailable {
                url: "memory".into(),
                message: "simulated outage".into(),
            }))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn enqueue(&self, door_id: &str, event: &Event) -> Result<i64> {
        self.check()?;
        let mut m = self.lock();
        let id = m.next_id;
        m.next_id += 1;
        m.entries.insert(
            id,
            OutboxEntry {
                id,
                time: Utc::now(),
                door_id: door_id.to_string(),
                event: event.clone(),
            },
        );
        Ok(id)
    }

    async fn register_sink(&self, door_id: &str, sink: &str) -> Result<()> {
        self.check()?;
        let mut m = self.lock();
        let newest = m.next_id - 1;
        m.cursors
            .entry((door_id.to_string(), sink.to_string()))
            .or_insert(newest);
        Ok(())
    }

    async fn pending(&self, door_id: &str, sink: &str, limit: u32) -> Result<Vec<OutboxEntry>> {
        self.check()?;
        let m = self.lock();
        let cursor = *m
            .cursors
            .get(&(door_id.to_string(), sink.to_string()))
            .ok_or_else(|| not_registered(sink))?;
        Ok(m.entries
            .range(cursor + 1..)
            .map(|(_, e)| e)
            .filter(|e| e.door_id == door_id)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn ack(&self, door_id: &str, sink: &str, up_to_id: i64) -> Result<()> {
        self.check()?;
        let mut m = self.lock();
        let c = m
            .cursors
            .get_mut(&(door_id.to_string(), sink.to_string()))
            .ok_or_else(|| not_registered(sink))?;
        *c = (*c).max(up_to_id);
        Ok(())
    }

    async fn backlog(&self, door_id: &str) -> Result<Vec<SinkStats>> {
        self.check()?;
        let m = self.lock();
        let mut out: Vec<SinkStats> = m
            .cursors
            .iter()
            .filter(|((d, _), _)| d == door_id)
            .map(|((_, sink), cursor)| {
                let pending: Vec<&OutboxEntry> = m
                    .entries
                    .range(cursor + 1..)
                    .map(|(_, e)| e)
                    .filter(|e| e.door_id == door_id)
                    .collect();
                SinkStats {
                    sink: sink.clone(),
                    acked_id: *cursor,
                    pending: pending.len() as u64,
                    oldest_pending: pending.first().map(|e| e.time),
                }
            })
            .collect();
        out.sort_by(|a, b| a.sink.cmp(&b.sink));
        Ok(out)
    }

    async fn prune(&self, older_than: DateTime<Utc>) -> Result<u64> {
        self.check()?;
        let mut m = self.lock();
        let cursors = m.cursors.clone();
        let before = m.entries.len();
        m.entries.retain(|id, e| {
            let all_acked = cursors
                .iter()
                .filter(|((d, _), _)| *d == e.door_id)
                .all(|(_, c)| c >= id);
            !(e.time < older_than && all_acked)
        });
        Ok((before - m.entries.len()) as u64)
    }

    async fn armed(&self, door_id: &str) -> Result<Option<bool>> {
        self.check()?;
        Ok(self.lock().armed.get(door_id).copied())
    }

    fn photo_path(&self, relative: &str) -> Result<PathBuf> {
        let rel = Path::new(relative);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Store(facereko_store::Error::Invalid(format!(
                "photo path {relative:?} escapes the photos folder"
            ))));
        }
        Ok(self.photo_dir.join(rel))
    }
}

fn not_registered(sink: &str) -> Error {
    Error::Store(facereko_store::Error::NotFound(format!("sink {sink:?}")))
}
