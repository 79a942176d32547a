//! The daemon's site parts (`facereko-fleet`, `facereko-notify`'s site link), wired: a door's replica
//! of the central database with its sync loop, the MQTT change signal it follows and sends, what the
//! web app shows of the site (`SiteView`: the replica, every door's state, signed commands to the other
//! doors), and the signal a one-off command sends after changing people, cards or faces.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use facereko_store::{Backend, Store};

use crate::config::Config;

/// A door's site parts: its replica of the central directory (with its sync loop) and the MQTT site
/// link (change signal, every door's state, commands). Dropping it stops them.
pub struct Fleet {
    pub replica: Option<Arc<facereko_fleet::Replica>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    link: Option<Arc<facereko_notify::mqtt::SiteLink>>,
    secret: facereko_domain::Secret,
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
            facereko_notify::mqtt::SiteLink::start(&config.mqtt, config.door_id.as_str())
                .context("starting the MQTT site link")?,
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
        link: signal,
        secret: config.mqtt.commands.secret.clone(),
    }))
}

impl Fleet {
    /// What the web app shows of the site: this door's replica and every door the broker knows.
    pub fn site_view(&self) -> Option<Arc<dyn facereko_web::SiteView>> {
        if self.replica.is_none() && self.link.is_none() {
            return None;
        }
        Some(Arc::new(SiteInfo {
            replica: self.replica.clone(),
            link: self.link.clone(),
            secret: self.secret.clone(),
        }))
    }
}

#[derive(Debug)]
struct SiteInfo {
    replica: Option<Arc<facereko_fleet::Replica>>,
    link: Option<Arc<facereko_notify::mqtt::SiteLink>>,
    /// `[mqtt.commands] secret`: the site's key for signed commands.
    secret: facereko_domain::Secret,
}

impl facereko_web::SiteView for SiteInfo {
    fn replica(&self) -> Option<(String, bool)> {
        let now = chrono::Utc::now();
        self.replica.as_ref().map(|r| {
            let st = r.status();
            (st.summary(now), st.stale(now))
        })
    }

    fn can_command(&self) -> bool {
        self.link.is_some() && !self.secret.is_empty()
    }

    fn command(&self, door_id: &str, command: facereko_web::SiteCommand) -> Result<(), String> {
        let Some(link) = &self.link else {
            return Err("MQTT is not configured on this door".into());
        };
        let command = match command {
            facereko_web::SiteCommand::Arm => facereko_notify::DoorCommand::Arm,
            facereko_web::SiteCommand::Disarm => facereko_notify::DoorCommand::Disarm,
            facereko_web::SiteCommand::Unlock => facereko_notify::DoorCommand::Unlock,
        };
        link.send_command(self.secret.expose().as_bytes(), door_id, command)
    }

    fn doors(&self) -> Vec<facereko_web::SiteDoor> {
        let Some(link) = &self.link else {
            return Vec::new();
        };
        link.doors()
            .into_iter()
            .map(|(door_id, d)| facereko_web::SiteDoor {
                door_id,
                online: d.state.online,
                armed: d.state.armed,
                door: d.state.door.and_then(|s| {
                    serde_json::to_value(s)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                }),
                seen: d.seen,
            })
            .collect()
    }
}

/// Whether this door keeps a replica and it holds a copy already (then the door can start and decide
/// while the central database is unreachable).
pub async fn has_copy(data_dir: &Path, config: &Config, url: &str) -> bool {
    if !facereko_store::backend_of(url).is_some_and(|b| config.fleet.replica_for(b)) {
        return false;
    }
    matches!(
        facereko_fleet::Replica::inspect(data_dir, &config.fleet).await,
        Ok(Some(s)) if s.rev.is_some()
    )
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
