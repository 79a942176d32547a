//! The short commands: people, attempts, simulated devices, status, arm/disarm.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use facereko_domain::{Attempt, CardUid, Outcome, Person};
use facereko_store::{AttemptQuery, Store};

use crate::config::Config;
use crate::control::{self, Request};

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Put a card on the simulated reader, e.g. `sim tap 04:A2:2B:19`.
    Tap {
        #[arg(value_parser = parse_uid)]
        uid: CardUid,
    },
    /// Set what the simulated camera sees: an image file, or a folder of them (used in turn).
    Image { path: std::path::PathBuf },
    /// Play a folder of frames (sorted by name) to the simulated camera as a live video.
    Stream {
        dir: std::path::PathBuf,
        /// Frames per second of the video.
        #[arg(long, default_value_t = 5)]
        fps: u32,
        /// Start over at the end (else the last frame stays in view).
        #[arg(long = "loop")]
        looped: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration in effect as JSON (secrets hidden); standard error says where it came from.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// Add a person, optionally with a card.
    Add {
        name: String,
        #[arg(long, value_parser = parse_uid)]
        card: Vec<CardUid>,
    },
    /// List people and their cards.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Give an existing person another card.
    AddCard {
        name: String,
        #[arg(value_parser = parse_uid)]
        uid: CardUid,
    },
    /// Refuse this person's cards from now on.
    Disable { name: String },
    /// Accept this person's cards again.
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AttemptsCommand {
    /// Every attempt, newest first.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only this outcome (granted, unknown_card, card_disabled, outside_schedule, no_face, face_mismatch, …).
        #[arg(long, value_parser = parse_outcome)]
        outcome: Option<Outcome>,
        /// Only this person (exact name).
        #[arg(long)]
        person: Option<String>,
    },
}

pub fn parse_uid(s: &str) -> Result<CardUid, String> {
    s.parse().map_err(|e: facereko_domain::Error| e.to_string())
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    s.parse().map_err(|e: facereko_domain::Error| e.to_string())
}

/// Opens the configured store (migrating it) for a one-off command.
pub async fn open_store(data_dir: &Path, config_file: Option<&Path>) -> Result<Store> {
    let (config, _) = Config::load(config_file, data_dir)?;
    let url = config.database_url(data_dir);
    let mut options: facereko_store::OpenOptions = (&config.store).into();
    options.share_face_photos = config.fleet.share_photos;
    Store::open_with(&url, data_dir, &options)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&url)))
}

pub use facereko_store::redact_url;

/// Records a change made from the command line in the audit trail: the system user who ran it (through
/// `sudo`, the one who called `sudo`), `cli`, and the SSH client's address when run over SSH. A failure
/// to record is reported on stderr; the change itself stands.
pub async fn audit(
    store: &Store,
    config: &Config,
    action: &str,
    target: &str,
    detail: impl Into<String>,
) {
    let actor = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown user".into());
    let origin = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| {
            c.split_whitespace()
                .next()
                .map(|ip| format!("ssh from {ip}"))
        })
        .unwrap_or_else(|| "local terminal".into());
    let entry = facereko_domain::NewAudit {
        time: chrono::Utc::now(),
        door_id: config.door_id.to_string(),
        actor,
        via: facereko_domain::AuditVia::Cli,
        origin: Some(origin),
        action: action.into(),
        target: target.into(),
        detail: detail.into(),
    };
    if let Err(e) = store.record_audit(&entry).await {
        eprintln!("warning: the audit trail did not record this change ({action} {target}): {e}");
    }
}

pub fn config(data_dir: &Path, config_file: Option<&Path>, cmd: ConfigCommand) -> Result<()> {
    let ConfigCommand::Show = cmd;
    let loaded = Config::load_from(config_file, data_dir, std::env::vars_os())?;
    eprintln!(
        "configuration file: {}",
        loaded
            .file
            .as_deref()
            .map_or("none (defaults)".to_string(), |f| f.display().to_string())
    );
    eprintln!(
        "environment: {}",
        if loaded.env_vars.is_empty() {
            "no FACEREKO_* configuration variables".to_string()
        } else {
            loaded.env_vars.join(", ")
        }
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&loaded.config.redacted_json()?)?
    );
    Ok(())
}

pub async fn sim(data_dir: &Path, cmd: SimCommand) -> Result<()> {
    let req = match cmd {
        SimCommand::Tap { uid } => Request::Tap {
            uid: uid.to_string(),
        },
        SimCommand::Image { path } => {
            let abs = path
                .canonicalize()
                .with_context(|| format!("{} does not exist", path.display()))?;
            Request::Image { path: abs }
        }
        SimCommand::Stream { dir, fps, looped } => {
            let abs = dir
                .canonicalize()
                .with_context(|| format!("{} does not exist", dir.display()))?;
            Request::Stream {
                path: abs,
                fps,
                looped,
            }
        }
    };
    let reply = control::request(data_dir, &req).await?;
    println!("{}", reply.message);
    Ok(())
}

async fn person_named(store: &Store, name: &str) -> Result<Person> {
    store
        .person_by_name(name)
        .await?
        .with_context(|| format!("nobody is called {name:?} (see `facereko people list`)"))
}

pub async fn people(data_dir: &Path, config_file: Option<&Path>, cmd: PeopleCommand) -> Result<()> {
    let store = open_store(data_dir, config_file).await?;
    let (config, _) = Config::load(config_file, data_dir)?;
    let result = people_on(&store, &config, cmd).await;
    crate::fleet::announce_changes(&config, &store).await;
    result
}

async fn people_on(store: &Store, config: &Config, cmd: PeopleCommand) -> Result<()> {
    let store = store.clone();
    match cmd {
        PeopleCommand::Add { name, card } => {
            let name = name.trim().to_string();
            if store.person_by_name(&name).await?.is_some() {
                bail!("{name:?} already exists; add a card with `facereko people add-card {name:?} UID`");
            }
            // Check the cards first, so a taken card leaves no half-added person behind.
            for uid in &card {
                if let Some((_, owner)) = store.lookup_card(uid).await? {
                    bail!("card {uid} already belongs to {}", owner.name);
                }
            }
            let id = store.add_person(&name).await?;
            for uid in &card {
                store.add_card(id, uid, None).await?;
            }
            let cards: Vec<String> = card.iter().map(|c| c.to_string()).collect();
            audit(&store, config, "person.add", &name, "").await;
            for uid in &card {
                audit(
                    &store,
                    config,
                    "card.add",
                    &name,
                    format!("card {}", uid.masked()),
                )
                .await;
            }
            println!(
                "added {name} (id {id}){}",
                if cards.is_empty() {
                    String::new()
                } else {
                    format!(" with card {}", cards.join(", "))
                }
            );
        }
        PeopleCommand::AddCard { name, uid } => {
            let p = person_named(&store, &name).await?;
            store.add_card(p.id, &uid, None).await?;
            audit(
                &store,
                config,
                "card.add",
                &p.name,
                format!("card {}", uid.masked()),
            )
            .await;
            println!("card {uid} now belongs to {}", p.name);
        }
        PeopleCommand::Disable { name } => set_active(&store, config, &name, false).await?,
        PeopleCommand::Enable { name } => set_active(&store, config, &name, true).await?,
        PeopleCommand::List { json } => {
            let people = store.list_people().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&people)?);
            } else if people.is_empty() {
                println!("nobody yet: add someone with `facereko people add \"Ada Lovelace\" --card 04:A2:2B:19`");
            } else {
                println!("{:<6} {:<30} {:<8} CARDS", "ID", "NAME", "ACTIVE");
                for p in people {
                    let cards: Vec<String> = p
                        .cards
                        .iter()
                        .map(|c| {
                            if c.active {
                                c.uid.to_string()
                            } else {
                                format!("{} (disabled)", c.uid)
                            }
                        })
                        .collect();
                    println!(
                        "{:<6} {:<30} {:<8} {}",
                        p.id.0,
                        p.name,
                        if p.active { "yes" } else { "no" },
                        cards.join(", ")
                    );
                }
            }
        }
    }
    Ok(())
}

async fn set_active(store: &Store, config: &Config, name: &str, active: bool) -> Result<()> {
    let mut p = person_named(store, name).await?;
    let before = p.active;
    p.active = active;
    store.update_person(&p).await?;
    if before != active {
        let what = if active { "enabled" } else { "disabled" };
        audit(store, config, "person.update", &p.name, what).await;
    }
    println!(
        "{} is {}",
        p.name,
        if active { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// An attempt as `attempts list --json` shows it: the stored fields, with the photo as an absolute path.
fn attempt_json(store: &Store, a: &Attempt) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(a)?;
    if let Some(rel) = &a.photo {
        let abs = store.photo_path(rel)?;
        v["photo"] = serde_json::Value::String(abs.display().to_string());
    }
    Ok(v)
}

pub async fn attempts(
    data_dir: &Path,
    config_file: Option<&Path>,
    cmd: AttemptsCommand,
) -> Result<()> {
    let zone = Config::load(config_file, data_dir)?.0.time_zone;
    let store = open_store(data_dir, config_file).await?;
    let AttemptsCommand::List {
        json,
        limit,
        outcome,
        person,
    } = cmd;
    let person = match person {
        Some(name) => Some(person_named(&store, &name).await?.id),
        None => None,
    };
    let q = AttemptQuery {
        limit: limit.clamp(1, 10_000),
        outcome,
        person,
        ..AttemptQuery::default()
    };
    let list = store.attempts(&q).await?;
    if json {
        let values = list
            .iter()
            .map(|a| attempt_json(&store, a))
            .collect::<Result<Vec<_>>>()?;
        println!("{}", serde_json::to_string_pretty(&values)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no attempts yet");
        return Ok(());
    }
    println!(
        "{:<25} {:<8} {:<22} {:<20} {:<16} {:>6} {:>6}  PHOTO",
        "TIME", "DOOR", "CARD", "PERSON", "OUTCOME", "SIM%", "CONF%"
    );
    for a in &list {
        let pct = |v: Option<f32>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let photo = match &a.photo {
            Some(rel) => store.photo_path(rel)?.display().to_string(),
            None => "-".into(),
        };
        println!(
            "{:<25} {:<8} {:<22} {:<20} {:<16} {:>6} {:>6}  {}",
            zone.format(a.time, "%Y-%m-%d %H:%M:%S %:z"),
            a.door_id,
            a.card_uid
                .as_ref()
                .map_or("-".to_string(), |c| c.to_string()),
            a.person.as_deref().unwrap_or("-"),
            a.outcome.as_str(),
            pct(a.similarity),
            pct(a.confidence),
            photo
        );
    }
    Ok(())
}

pub async fn status(data_dir: &Path, json: bool) -> Result<()> {
    let reply = control::request(data_dir, &Request::Status).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reply.data)?);
        return Ok(());
    }
    let d = &reply.data;
    println!("door:     {}", d["door_id"].as_str().unwrap_or("?"));
    println!("mode:     {}", d["mode"].as_str().unwrap_or("?"));
    println!(
        "system:   {}",
        if d["armed"].as_bool() == Some(true) {
            "Active"
        } else {
            "Offline"
        }
    );
    println!(
        "lock:     {}",
        if d["unlocked"].as_bool() == Some(true) {
            "unlocked"
        } else {
            "locked"
        }
    );
    println!("reader:   {}", d["reader"].as_str().unwrap_or("?"));
    if let Some(sinks) = d["notify"]["sinks"].as_array() {
        if sinks.is_empty() {
            println!("notify:   no sinks configured");
        }
        for s in sinks {
            println!(
                "notify:   {} pending {}{}",
                s["name"].as_str().unwrap_or("?"),
                s["pending"]
                    .as_u64()
                    .map_or("?".to_string(), |p| p.to_string()),
                s["last_error"]
                    .as_str()
                    .map_or(String::new(), |e| format!(", last error: {e}"))
            );
        }
    }
    if let Some(r) = d["replica"]["summary"].as_str() {
        println!("replica:  {r}");
    }
    if let Some(a) = d.get("last_attempt").filter(|a| !a.is_null()) {
        println!(
            "last:     {} {} {}",
            a["time"].as_str().unwrap_or("?"),
            a["person"].as_str().unwrap_or("-"),
            a["outcome"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

pub async fn arm(data_dir: &Path, config_file: Option<&Path>, armed: bool) -> Result<()> {
    let reply = control::request(data_dir, &Request::Arm { armed }).await?;
    println!("{}", reply.message);
    let action = if armed {
        "system.activate"
    } else {
        "system.deactivate"
    };
    match (
        Config::load(config_file, data_dir),
        open_store(data_dir, config_file).await,
    ) {
        (Ok((config, _)), Ok(store)) => {
            let door = config.door_id.to_string();
            audit(&store, &config, action, &door, "").await;
            store.close().await;
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("warning: the audit trail did not record this change ({action}): {e:#}")
        }
    }
    Ok(())
}
