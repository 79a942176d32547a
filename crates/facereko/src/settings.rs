//! The door's side of the web app's settings page ([`facereko_web::Settings`]).
//!
//! A few settings a building manager changes (mode, unlock time, face threshold, time zone, photo
//! retention) can be set in the browser. Such a value is kept in the store (`config:<key>` settings of
//! this door) and read at start as a configuration layer above the defaults and below the file and the
//! `FACEREKO_*` environment ([`Config::load_layers`]): the file and the environment always win, and the
//! page shows their keys read-only. A value is checked by loading the whole configuration with it, so
//! the page refuses exactly what the file would. The unlock time takes effect at once (the controller
//! takes a new one between two unlocks); the rest at the next start: the door's engine, its watcher and
//! the retention task are built once, and a restart (a few seconds) is the one path that rebuilds all of
//! them consistently. A stored value that no longer passes (after an upgrade) is logged
//! and left out at start rather than keeping the door down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use facereko_domain::Event;
use facereko_store::Store;
use facereko_web::{SettingSource, SettingView};
use figment::providers::{Format, Toml};
use figment::Figment;

use crate::config::Config;

/// The settings the page offers: key, label, input, choices.
const OFFERED: [(&str, &str, &str, &[&str]); 5] = [
    ("door.mode", "Mode", "text", &["card", "card+face", "face"]),
    (
        "door.unlock_seconds",
        "Unlock time (seconds)",
        "number",
        &[],
    ),
    ("vision.threshold", "Face threshold (%)", "number", &[]),
    ("time_zone", "Time zone", "text", &[]),
    (
        "store.retention.photo_days",
        "Keep attempt photos (days; 0 keeps them)",
        "number",
        &[],
    ),
];

/// The binary's [`facereko_web::Settings`].
pub struct DoorSettings {
    data_dir: PathBuf,
    /// The configuration file read at start, if any.
    file: Option<PathBuf>,
    /// The configuration in force.
    running: Config,
    /// Keys the environment sets, with the variable.
    env: HashMap<String, String>,
    store: Store,
    notifier: facereko_notify::NotifierHandle,
    door: facereko_door::DoorHandle,
    /// Values put in force since start without a restart, by key.
    live: std::sync::Mutex<HashMap<String, String>>,
}

impl DoorSettings {
    pub fn new(
        data_dir: &Path,
        file: Option<&Path>,
        running: Config,
        store: Store,
        notifier: facereko_notify::NotifierHandle,
        door: facereko_door::DoorHandle,
    ) -> anyhow::Result<Self> {
        let loaded = Config::load_from(file, data_dir, std::env::vars_os())?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            file: loaded.file,
            running,
            env: loaded.env_keys.into_iter().collect(),
            store,
            notifier,
            door,
            live: Default::default(),
        })
    }

    /// The configuration as the next start would load it with these values set in the web app.
    fn load(&self, overrides: &[(String, String)]) -> anyhow::Result<Config> {
        Config::load_layers(
            self.file.as_deref(),
            &self.data_dir,
            std::env::vars_os(),
            overrides,
        )
        .map(|l| l.config)
    }

    fn door_id(&self) -> String {
        self.running.door_id.to_string()
    }

    fn source(&self, key: &str, stored: bool) -> SettingSource {
        if let Some(var) = self.env.get(key) {
            return SettingSource::Environment(var.clone());
        }
        if let Some(f) = &self.file {
            if Figment::from(Toml::file_exact(f)).find_value(key).is_ok() {
                return SettingSource::File(f.display().to_string());
            }
        }
        if stored {
            SettingSource::Web
        } else {
            SettingSource::Default
        }
    }

    /// The value in force, as text.
    fn value(&self, key: &str) -> String {
        if let Some(v) = self.live.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return v.clone();
        }
        let c = &self.running;
        match key {
            "door.mode" => c.door.mode.as_str().to_string(),
            "door.unlock_seconds" => format!("{}", c.door.unlock_seconds),
            // As the file would write them, so that the value shown can be saved as it is.
            "vision.threshold" => format!("{}", c.vision.threshold()),
            "time_zone" => match c.time_zone {
                facereko_domain::SiteTimeZone::Local => "local".into(),
                zone => zone.name(),
            },
            "store.retention.photo_days" => c.store.retention.photo_days.to_string(),
            _ => String::new(),
        }
    }

    fn help(&self, key: &str) -> String {
        match key {
            "door.mode" => "card: a known card opens. card+face: the card's owner must also show their \
                            face. face: the face alone opens (for trusted indoor doors)."
                .into(),
            "door.unlock_seconds" => "How long the lock stays open after a granted attempt or an \
                                      unlock (0.1–3600)."
                .into(),
            "vision.threshold" => format!(
                "The similarity a face needs to match. The {} engine's default, {} %, was the lowest \
                 value with at most 0.1 % false accepts on the development photos ({}). Higher: fewer \
                 strangers let in, more owners refused. `facereko eval --dir photos/` measures your \
                 own people.",
                self.running.vision.local_engine,
                self.running.vision.local_engine.default_threshold(),
                match self.running.vision.local_engine {
                    facereko_vision::LocalEngineKind::Onnx => "97.9 % of owners let in",
                    facereko_vision::LocalEngineKind::Dlib => "95.3 % of owners let in",
                }
            ),
            "time_zone" => "Schedules are read and times shown in it: an IANA name such as \
                            Europe/Paris, or local (the system's)."
                .into(),
            "store.retention.photo_days" => "Attempt photos older than this are deleted by the daily \
                                             run (the attempts stay); per-outcome days are set in the \
                                             file."
                .into(),
            _ => String::new(),
        }
    }
}

#[async_trait]
impl facereko_web::Settings for DoorSettings {
    async fn list(&self) -> Vec<SettingView> {
        let stored: HashMap<String, String> =
            match self.store.config_overrides(&self.door_id()).await {
                Ok(v) => v.into_iter().collect(),
                Err(e) => {
                    tracing::warn!("reading the settings set in the web app: {e}");
                    HashMap::new()
                }
            };
        OFFERED
            .iter()
            .map(|(key, label, input, choices)| SettingView {
                key: key.to_string(),
                label: label.to_string(),
                help: self.help(key),
                value: self.value(key),
                source: self.source(key, stored.contains_key(*key)),
                stored: stored.get(*key).cloned(),
                choices: choices.iter().map(|c| c.to_string()).collect(),
                input,
            })
            .collect()
    }

    async fn check(&self, key: &str, value: Option<&str>) -> Result<Option<String>, String> {
        if !OFFERED.iter().any(|(k, ..)| *k == key) {
            return Err("not a setting of this page".into());
        }
        let mut overrides = self
            .store
            .config_overrides(&self.door_id())
            .await
            .map_err(|e| e.to_string())?;
        overrides.retain(|(k, _)| k != key);
        let value = value.map(str::trim).filter(|v| !v.is_empty());
        if let Some(v) = value {
            if v.chars().any(char::is_control) || v.chars().count() > 255 {
                return Err("not a value".into());
            }
            overrides.push((key.to_string(), v.to_string()));
        }
        match self.load(&overrides) {
            Ok(_) => Ok(value.map(str::to_string)),
            // The configuration's own words, without the layer names it adds for the file.
            Err(e) => Err(format!("{:#}", e.root_cause())),
        }
    }

    async fn sinks(&self) -> Vec<String> {
        let status = self.notifier.status().await;
        status
            .sinks
            .iter()
            .map(|s| {
                let state = match (s.connected, &s.last_error) {
                    (_, Some(e)) => format!("last error: {e}"),
                    (Some(true), None) => "connected".into(),
                    (Some(false), None) => "not connected".into(),
                    (None, None) => "ready".into(),
                };
                let pending = s
                    .pending
                    .map(|p| format!(", {p} waiting"))
                    .unwrap_or_default();
                format!(
                    "{}: {state}{pending}, {} delivered since start",
                    s.name, s.delivered
                )
            })
            .collect()
    }

    async fn apply_now(&self, key: &str) -> bool {
        // Only the unlock time changes in a running door; the rest is built once at start.
        if key != "door.unlock_seconds" {
            return false;
        }
        let overrides = match self.store.config_overrides(&self.door_id()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("reading the settings set in the web app: {e}");
                return false;
            }
        };
        let config = match self.load(&overrides) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("the new settings do not load ({e:#}): not applied now");
                return false;
            }
        };
        let seconds = config.door.unlock_seconds;
        match self.door.set_unlock_seconds(seconds).await {
            Ok(()) => {
                self.live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.to_string(), format!("{seconds}"));
                true
            }
            Err(e) => {
                tracing::warn!("the unlock time could not be changed now: {e}");
                false
            }
        }
    }

    async fn send_test(&self, by: &str) -> Result<(), String> {
        let door_id = self.door_id();
        let event = Event::Test {
            door_id: door_id.clone(),
            by: by.to_string(),
            time: chrono::Utc::now(),
        };
        self.store
            .enqueue_event(&door_id, &event)
            .await
            .map_err(|e| e.to_string())?;
        self.notifier.wake();
        Ok(())
    }
}

/// The configuration with the values set in the web app (read from `store`) as a layer; `config` as it
/// is when there are none, when the store cannot say, or when they no longer pass (logged).
pub async fn with_web_values(
    config: Config,
    file: Option<&Path>,
    data_dir: &Path,
    store: &Store,
) -> Config {
    let overrides = match store.config_overrides(config.door_id.as_str()).await {
        Ok(v) if v.is_empty() => return config,
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("the settings set in the web app could not be read ({e}): not applied");
            return config;
        }
    };
    match Config::load_layers(file, data_dir, std::env::vars_os(), &overrides) {
        Ok(l) => {
            let keys: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
            tracing::info!("settings set in the web app: {}", keys.join(", "));
            l.config
        }
        Err(e) => {
            tracing::error!(
                "the settings set in the web app no longer pass ({e:#}): starting without them; \
                 change or reset them on the settings page"
            );
            config
        }
    }
}
