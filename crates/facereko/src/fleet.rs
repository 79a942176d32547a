//! The daemon's site parts (`facereko-fleet`, `facereko-notify`'s sync signal), wired: a door's replica
//! of the central database with its sync loop, the MQTT change signal it follows and sends, and the
//! signal a one-off command sends after changing people, cards or faces.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use facereko_store::{Backend, Store};

use crate::config::Config;

/// A door's site parts: its replica of the central directory (with its sync loop) and the MQTT change
/// signal. Dropping it stops both.
pub struct Fleet {
    pub replica: Option<Arc<facereko_fleet::Replica>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _signal: Option<Arc<facereko_notify::mqtt::SyncSignal>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// On a MySQL/PostgreSQL database (or with `fleet.replica = "on"`): the door's replica, copied or
/// brought up to date before the door decides anything (when the central database answers), then kept
/// current by `fleet.poll_secs` and the MQTT change signal, which this process also sends after every
/// change it makes to people, cards or faces. `None` for a door on its own SQLite database.
pub async fn start(data_dir: &Path, config: &Config, store: &Store) -> Result<Option<Fleet>> {
    let replica = if config.fleet.replica_for(store.backend()) {
        let replica = facereko_fleet::Replica::open(
            config.door_id.as_str(),
            store.clone(),
            data_dir,
            &config.fleet,
        )
        .await
        .context("opening this door's replica of the central database")?;
        match replica.sync().await {
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "the central database cannot be reached ({e}); deciding from this door's copy ({})",
                replica.status().summary(chrono::Utc::now())
            ),
        }
        println!(
            "  replica:        {} ({})",
            data_dir.join(facereko_fleet::REPLICA_FILE).display(),
            replica.status().summary(chrono::Utc::now())
        );
        Some(replica)
    } else {
        None
    };
    let shared = store.backend() != Backend::Sqlite;
    if replica.is_none() && !shared {
        return Ok(None);
    }
    let mut tasks = Vec::new();
    let signal = if config.mqtt.url.is_some() && shared {
        let signal = Arc::new(
            facereko_notify::mqtt::SyncSignal::start(&config.mqtt, config.door_id.as_str())
                .context("starting the MQTT change signal")?,
        );
        // Tell the site's doors about every change made here (web app, enrolment).
        let mut changes = store.watch_directory();
        let (central, out) = (store.clone(), signal.clone());
        tasks.push(tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match central.directory_rev().await {
                    Ok(rev) => out.announce(rev),
                    Err(e) => tracing::debug!("change signal not sent: {e}"),
                }
            }
        }));
        if let Some(replica) = &replica {
            let mut heard = signal.received();
            let replica = replica.clone();
            tasks.push(tokio::spawn(async move {
                while heard.changed().await.is_ok() {
                    replica.wake();
                }
            }));
        }
        Some(signal)
    } else {
        None
    };
    if let Some(replica) = &replica {
        tasks.push(replica.spawn());
    }
    Ok(Some(Fleet {
        replica,
        tasks,
        _signal: signal,
    }))
}

/// After a one-off command changed people, cards or faces in a shared database: tells the site's doors
/// over MQTT (when configured), so they do not wait for their next poll. Best effort: a broker that
/// does not answer within 5 s only costs the doors that wait.
pub async fn announce_changes(config: &Config, store: &Store) {
    if *store.watch_directory().borrow() == 0
        || store.backend() == Backend::Sqlite
        || config.mqtt.url.is_none()
    {
        return;
    }
    let rev = match store.directory_rev().await {
        Ok(rev) => rev,
        Err(e) => {
            tracing::warn!(
                "the doors were not told of the change (they see it at their next poll): {e}"
            );
            return;
        }
    };
    if let Err(e) = facereko_notify::mqtt::announce_once(
        &config.mqtt,
        config.door_id.as_str(),
        rev,
        Duration::from_secs(5),
    )
    .await
    {
        tracing::warn!(
            "the doors were not told of the change over MQTT ({e}); they see it within fleet.poll_secs"
        );
    }
}
