//! The typed configuration: defaults, then `facereko.toml`, then `FACEREKO_*` environment variables
//! (`__` separates nested keys: `FACEREKO_DOOR__UNLOCK_SECONDS=5`; `FACEREKO_<KEY>_FILE=PATH` reads a
//! secret from a file, as systemd's `LoadCredential=` provides). Validated once, then passed down.
//!
//! A `FACEREKO_` variable is configuration when its first segment names a top-level key (`door_id`,
//! `store`, `door`, …) or when it contains `__`; such a variable that does not fit (an unknown key, a value
//! of the wrong type, a bad value) stops the program with one error naming the variable. Others
//! (`FACEREKO_DATA_DIR`, `FACEREKO_CONFIG`, `FACEREKO_LOG`, the test suites' variables) are not read here.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use facereko_aws::AwsConfig;
use facereko_domain::{DoorId, SiteTimeZone};
use facereko_door::DoorConfig;
use facereko_fleet::FleetConfig;
use facereko_hardware::config::HardwareConfig;
use facereko_notify::{EmailConfig, MqttConfig, NotifyConfig, OutboxConfig, WebhookConfig};
use facereko_rekognition::EndpointConfig;
use facereko_store::StoreConfig;
use facereko_vision::VisionConfig;
use facereko_web::WebConfig;
use figment::error::Kind;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The prefix of every variable the configuration reads.
pub const ENV_PREFIX: &str = "FACEREKO_";

/// Top-level keys; a `FACEREKO_` variable whose first segment is one of these is configuration.
const TOP_LEVEL_KEYS: &[&str] = &[
    "door_id",
    "time_zone",
    "store",
    "door",
    "vision",
    "hardware",
    "sim",
    "web",
    "outbox",
    "mqtt",
    "email",
    "webhook",
    "aws",
    "rekognition_api",
    "fleet",
];

/// Variables of the command line (clap reads them), never configuration keys.
pub const COMMAND_LINE_VARS: &[&str] = &["FACEREKO_DATA_DIR", "FACEREKO_CONFIG", "FACEREKO_LOG"];

/// The secrets: keys that `FACEREKO_<KEY>_FILE` may read from a file, and that `config show` hides.
pub const SECRET_KEYS: &[&str] = &[
    "store.database_url",
    "mqtt.password",
    "mqtt.commands.secret",
    "email.password",
    "aws.access_key_id",
    "aws.secret_access_key",
    "rekognition_api.secret_access_key",
];

/// Largest secret file read for a `_FILE` variable.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The variable name that sets `key` (`door.unlock_seconds` → `FACEREKO_DOOR__UNLOCK_SECONDS`).
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.split('.')
            .map(str::to_ascii_uppercase)
            .collect::<Vec<_>>()
            .join("__")
    )
}

/// One `FACEREKO_…` variable that sets a configuration key.
#[derive(Clone, Debug)]
struct EnvSetting {
    /// The variable's name as set.
    var: String,
    /// The key it sets, dotted (`door.unlock_seconds`).
    key: String,
    value: Value,
}

/// Picks the configuration variables out of `vars`, reading `_FILE` secrets. Refuses what looks like
/// configuration but cannot be (an unknown section, one underscore where two belong, a value that is not
/// UTF-8, an unreadable secret file, a key set twice).
fn env_settings(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Vec<EnvSetting>> {
    let mut by_key: BTreeMap<String, EnvSetting> = BTreeMap::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .get(..ENV_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
            .map(|_| &name[ENV_PREFIX.len()..])
        else {
            continue;
        };
        if COMMAND_LINE_VARS
            .iter()
            .any(|v| v.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let (path, from_file) = match lower.strip_suffix("_file") {
            Some(base) if SECRET_KEYS.contains(&base.replace("__", ".").as_str()) => (base, true),
            _ => (lower.as_str(), false),
        };
        let segments: Vec<&str> = path.split("__").collect();
        let top = segments[0];
        if !TOP_LEVEL_KEYS.contains(&top) {
            if segments.len() > 1 {
                bail!(
                    "environment variable {name}: `{top}` is not a configuration section (the sections: {})",
                    TOP_LEVEL_KEYS.join(", ")
                );
            }
            if top == "database_url" {
                bail!(
                    "environment variable {name} is not read: the database URL is the key \
                     store.database_url, set {} instead",
                    env_name("store.database_url")
                );
            }
            if top == "bench" {
                bail!(
                    "environment variable {name} is not read: the bench rig is configured as \
                     hardware.mode = \"bench\" with hardware.bench = PATH ({} and {})",
                    env_name("hardware.mode"),
                    env_name("hardware.bench")
                );
            }
            if let Some(section) = TOP_LEVEL_KEYS
                .iter()
                .find(|s| top.starts_with(&format!("{s}_")) && **s != "door_id")
            {
                bail!(
                    "environment variable {name} is not read: nested keys are joined with two \
                     underscores, as in {ENV_PREFIX}{}__{}",
                    section.to_ascii_uppercase(),
                    rest[section.len() + 1..].to_ascii_uppercase()
                );
            }
            continue;
        }
        if segments.iter().any(|s| s.is_empty()) {
            bail!("environment variable {name}: an empty key between underscores");
        }
        let key = segments.join(".");
        let value = if from_file {
            let file = PathBuf::from(&value);
            let bytes =
                facereko_files::read_regular_file(&file, MAX_SECRET_FILE).with_context(|| {
                    format!(
                        "environment variable {name}: cannot read {}",
                        file.display()
                    )
                })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "environment variable {name}: {} is not UTF-8 text",
                    file.display()
                )
            })?;
            Value::from(text.trim_end_matches(['\n', '\r']).to_string())
        } else {
            let Some(text) = value.to_str() else {
                bail!("environment variable {name}: the value is not UTF-8");
            };
            env_value(text)
        };
        let setting = EnvSetting {
            var: name.to_string(),
            key: key.clone(),
            value,
        };
        if let Some(other) = by_key.insert(key.clone(), setting) {
            let (a, b) = if other.var.as_str() < name {
                (other.var.as_str(), name)
            } else {
                (name, other.var.as_str())
            };
            bail!("environment variables {a} and {b} both set {key}: keep one");
        }
    }
    Ok(by_key.into_values().collect())
}

/// A variable's text as a value. Scalars stay text (the typed extraction reads `5`, `true` or `2.5` from
/// it where the key wants a number or a flag, and a password of digits stays a password); a value written
/// as a TOML-like array or table (`["a@example.org"]`) becomes one.
fn env_value(text: &str) -> Value {
    let t = text.trim_start();
    if t.starts_with('[') || t.starts_with('{') {
        if let Ok(v @ (Value::Array(..) | Value::Dict(..))) = text.parse::<Value>() {
            return v;
        }
    }
    Value::from(text.to_string())
}

/// The configuration variables as one figment layer.
#[derive(Debug)]
struct EnvLayer(Vec<EnvSetting>);

impl figment::Provider for EnvLayer {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("FACEREKO_* environment variables")
    }

    fn data(
        &self,
    ) -> std::result::Result<
        figment::value::Map<figment::Profile, figment::value::Dict>,
        figment::Error,
    > {
        let mut fig = Figment::new();
        for s in &self.0 {
            fig = fig.merge(Serialized::default(&s.key, &s.value));
        }
        figment::Provider::data(&fig)
    }
}

/// The variable a figment error is about, when one of `env` set the key that failed.
fn env_error(e: &figment::Error, env: &[EnvSetting]) -> Option<String> {
    let path = e.path.join(".");
    let (setting, hint) = match &e.kind {
        Kind::UnknownField(field, _) => {
            // figment's path ends with the unknown field itself.
            let key = if e.path.last() == Some(field) {
                path.clone()
            } else if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
            let s = env.iter().find(|s| s.key == key)?;
            let hint = if s.var.to_ascii_uppercase().ends_with("_FILE") {
                format!(
                    " (a _FILE variable exists only for the secrets: {})",
                    SECRET_KEYS
                        .iter()
                        .map(|k| format!("{}_FILE", env_name(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            };
            (s, hint)
        }
        _ => {
            let s = env.iter().find(|s| s.key == path).or_else(|| {
                env.iter()
                    .find(|s| !path.is_empty() && s.key.starts_with(&format!("{path}.")))
            })?;
            (s, String::new())
        }
    };
    Some(format!(
        "environment variable {} ({}): {}{hint}",
        setting.var, setting.key, e.kind
    ))
}

/// The variable whose key a validation message names (the longest such key), if any.
fn env_named_in<'a>(message: &str, env: &'a [EnvSetting]) -> Option<&'a EnvSetting> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    env.iter()
        .filter(|s| {
            message.match_indices(s.key.as_str()).any(|(i, m)| {
                let before = message[..i].chars().next_back();
                let after = message[i + m.len()..].chars().next();
                !before.is_some_and(is_key_char)
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .max_by_key(|s| s.key.len())
}

/// A loaded configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The `FACEREKO_…` variables that set keys, by name.
    pub env_vars: Vec<String>,
    /// The keys those variables set, dotted (`door.unlock_seconds`), with the variable that set each.
    pub env_keys: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This door's name in a fleet (attempts, events and topics carry it); checked as it is read.
    pub door_id: DoorId,
    /// The site's time zone: schedules are read in it and the web app shows times in it.
    pub time_zone: SiteTimeZone,
    /// The database, photo retention and the fallback spool.
    pub store: StoreConfig,
    pub door: DoorConfig,
    pub vision: VisionConfig,
    pub hardware: HardwareConfig,
    pub sim: SimConfig,
    pub web: WebConfig,
    /// Notification delivery: retries and pruning of the outbox.
    pub outbox: OutboxConfig,
    /// MQTT (off unless `mqtt.url` is set).
    pub mqtt: MqttConfig,
    /// E-mail over SMTP (off unless configured).
    pub email: EmailConfig,
    /// Webhooks (`[[webhook]]`, any number).
    pub webhook: Vec<WebhookConfig>,
    /// AWS: the Rekognition engine, `collection` commands and SNS (builds with `--features aws`).
    pub aws: AwsConfig,
    /// The Rekognition-compatible endpoint (off unless enabled).
    pub rekognition_api: EndpointConfig,
    /// A door of a site: its local replica of the central database and what it does when stale.
    pub fleet: FleetConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            door_id: "door".parse().expect("a valid door id"),
            time_zone: SiteTimeZone::Local,
            store: StoreConfig::default(),
            door: DoorConfig::default(),
            vision: VisionConfig::default(),
            hardware: HardwareConfig::default(),
            sim: SimConfig::default(),
            web: WebConfig::default(),
            outbox: OutboxConfig::default(),
            mqtt: MqttConfig::default(),
            email: EmailConfig::default(),
            webhook: Vec::new(),
            aws: AwsConfig::default(),
            rekognition_api: EndpointConfig::default(),
            fleet: FleetConfig::default(),
        }
    }
}

/// The simulated devices (used with `serve --simulate`, or where no Raspberry Pi is found).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// What the simulated camera sees at start: an image file or a folder of them.
    pub camera: Option<PathBuf>,
}

impl Config {
    /// Loads the configuration from `file` and the process environment. `file` is the explicit
    /// `--config` (it must exist); without it, `<data_dir>/facereko.toml` is read when present.
    pub fn load(file: Option<&Path>, data_dir: &Path) -> Result<(Config, Option<PathBuf>)> {
        let l = Self::load_from(file, data_dir, std::env::vars_os())?;
        Ok((l.config, l.file))
    }

    /// [`Config::load`] with the environment given.
    pub fn load_from(
        file: Option<&Path>,
        data_dir: &Path,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Loaded> {
        Self::load_layers(file, data_dir, vars, &[])
    }

    /// [`Config::load_from`] with the values set in the web app (`overrides`: dotted key, text) as a
    /// layer above the defaults and below the file and the environment.
    pub fn load_layers(
        file: Option<&Path>,
        data_dir: &Path,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
        overrides: &[(String, String)],
    ) -> Result<Loaded> {
        let path = match file {
            Some(f) => {
                if !f.is_file() {
                    bail!("config file {} does not exist", f.display());
                }
                Some(f.to_path_buf())
            }
            None => Some(data_dir.join("facereko.toml")).filter(|p| p.is_file()),
        };
        let env = env_settings(vars)?;
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        for (key, value) in overrides {
            fig = fig.merge(Serialized::default(key, Value::from(value.clone())));
        }
        if let Some(p) = &path {
            fig = fig.merge(Toml::file_exact(p));
        }
        fig = fig.merge(EnvLayer(env.clone()));
        if fig.find_value("web.time_zone").is_ok() {
            bail!(
                "web.time_zone is now the top-level `time_zone` (one zone for the door's schedules and \
                 the web app): move it above the first [section]{}",
                path.as_ref()
                    .map(|p| format!(" of {}", p.display()))
                    .unwrap_or_default()
            );
        }
        // Lossy: environment values are text, and `5` or `true` must fill a number or a flag.
        let mut config: Config = fig.extract_lossy().map_err(|e| {
            if let Some(m) = e.clone().into_iter().find_map(|e| env_error(&e, &env)) {
                return anyhow::anyhow!(m);
            }
            let e = e.to_string();
            match &path {
                Some(p) if !e.contains(&p.display().to_string()) => {
                    anyhow::anyhow!("{e} (config file {})", p.display())
                }
                _ => anyhow::anyhow!(e),
            }
        })?;
        // One site time zone, read by the door's schedules and the web app alike.
        config.door.time_zone = config.time_zone;
        config.web.time_zone = config.time_zone;
        // How the door watches is set under [vision] (it is about frames), used by the door.
        config.door.watch = config.vision.watch();
        if let Err(e) = config.validate() {
            let message = format!("{e:#}");
            return Err(match (env_named_in(&message, &env), &path) {
                (Some(s), _) => e.context(format!("invalid environment variable {}", s.var)),
                (None, Some(p)) => e.context(format!(
                    "invalid configuration in {} or FACEREKO_* environment",
                    p.display()
                )),
                (None, None) => e.context("invalid configuration in FACEREKO_* environment"),
            });
        }
        Ok(Loaded {
            config,
            file: path,
            env_keys: env.iter().map(|s| (s.key.clone(), s.var.clone())).collect(),
            env_vars: env.into_iter().map(|s| s.var).collect(),
        })
    }

    /// The configuration as JSON with every secret hidden (`***`, or the database URL without its
    /// password), for `facereko config show`.
    pub fn redacted_json(&self) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(self)?;
        for key in SECRET_KEYS {
            let Some(node) = v.pointer_mut(&format!("/{}", key.replace('.', "/"))) else {
                continue;
            };
            if let Some(text) = node.as_str() {
                *node = if *key == "store.database_url" {
                    serde_json::Value::from(facereko_store::redact_url(text))
                } else if text.is_empty() {
                    serde_json::Value::from("")
                } else {
                    serde_json::Value::from("***")
                };
            }
        }
        if let Some(hooks) = v.get_mut("webhook").and_then(|w| w.as_array_mut()) {
            for h in hooks {
                if let Some(secret) = h.get_mut("secret").filter(|s| s.as_str() != Some("")) {
                    *secret = serde_json::Value::from("***");
                }
            }
        }
        Ok(v)
    }

    pub fn validate(&self) -> Result<()> {
        self.door.validate()?;
        self.vision.validate()?;
        if self.vision.engine == facereko_vision::EngineKind::Rekognition {
            if !cfg!(feature = "aws") {
                bail!(
                    "vision.engine = \"rekognition\" needs FaceReko built with the AWS SDK: \
                     `cargo build --release --features aws` (or use engine = \"local\")"
                );
            }
            self.aws.validate()?;
        }
        self.rekognition_api.validate()?;
        self.hardware.validate()?;
        self.notify().validate()?;
        self.store.validate()?;
        self.web.validate()?;
        self.fleet.validate()?;
        Ok(())
    }

    /// The notifier's view of the configuration.
    pub fn notify(&self) -> NotifyConfig {
        NotifyConfig {
            outbox: self.outbox.clone(),
            mqtt: self.mqtt.clone(),
            email: self.email.clone(),
            webhook: self.webhook.clone(),
            aws: self.aws.clone(),
        }
    }

    /// The database URL, with the embedded default filled in.
    pub fn database_url(&self, data_dir: &Path) -> String {
        self.store.url(data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads with exactly these variables as the environment.
    fn load_env(file: Option<&Path>, dir: &Path, env: &[(&str, &str)]) -> Result<Config> {
        let vars = env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        Config::load_from(file, dir, vars).map(|l| l.config)
    }

    fn load_err(file: Option<&Path>, dir: &Path, env: &[(&str, &str)]) -> String {
        format!("{:#}", load_env(file, dir, env).unwrap_err())
    }

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn a_broken_file_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "[door]\nunlock_seconds = \"ten\"\n").unwrap();
        let err = format!("{:#}", load_env(Some(&f), dir.path(), &[]).unwrap_err());
        assert!(err.contains("unlock_seconds"), "{err}");
        assert!(err.contains("facereko.toml"), "{err}");

        std::fs::write(&f, "[door]\nunlock_seconds = -1\n").unwrap();
        let err = format!("{:#}", load_env(Some(&f), dir.path(), &[]).unwrap_err());
        assert!(err.contains("door.unlock_seconds"), "{err}");
        assert!(err.contains("facereko.toml"), "{err}");

        std::fs::write(&f, "[door]\nunlok_seconds = 3\n").unwrap();
        let err = format!("{:#}", load_env(Some(&f), dir.path(), &[]).unwrap_err());
        assert!(err.contains("unlok_seconds"), "{err}");

        std::fs::write(&f, "door = [").unwrap();
        let err = format!("{:#}", load_env(Some(&f), dir.path(), &[]).unwrap_err());
        assert!(err.contains("facereko.toml"), "{err}");
    }

    #[test]
    fn the_shipped_example_is_a_valid_configuration() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../facereko.example.toml");
        let dir = tempfile::tempdir().unwrap();
        let c = load_env(Some(&example), dir.path(), &[]).unwrap();
        assert_eq!(
            c.door,
            DoorConfig::default(),
            "the example documents the defaults"
        );
        assert_eq!(c.door_id, "door");
        assert_eq!(c.aws, AwsConfig::default());
        assert_eq!(c.rekognition_api, EndpointConfig::default());
        assert_eq!(c.vision, facereko_vision::VisionConfig::default());
    }

    #[test]
    fn the_rekognition_engine_needs_the_aws_build() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "[vision]\nengine = \"rekognition\"\n").unwrap();
        let result = load_env(Some(&f), dir.path(), &[]);
        if cfg!(feature = "aws") {
            result.unwrap();
        } else {
            let err = format!("{:#}", result.unwrap_err());
            assert!(err.contains("--features aws"), "{err}");
        }
    }

    #[test]
    fn an_enabled_endpoint_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "[rekognition_api]\nenabled = true\n").unwrap();
        let err = format!("{:#}", load_env(Some(&f), dir.path(), &[]).unwrap_err());
        assert!(err.contains("rekognition_api.access_key_id"), "{err}");
    }

    #[test]
    fn continuous_capture_settings_reach_the_door_from_file_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "[vision]\nfps = 8\nlookback_ms = 1000\n").unwrap();
        let c = load_env(
            Some(&f),
            dir.path(),
            &[("FACEREKO_VISION__FACE_TIMEOUT_MS", "2000")],
        )
        .unwrap();
        let w = c.door.watch;
        assert_eq!((w.fps, w.lookback_ms, w.face_timeout_ms), (8, 1000, 2000));
        let err = format!(
            "{:#}",
            load_env(Some(&f), dir.path(), &[("FACEREKO_VISION__FPS", "99")]).unwrap_err()
        );
        assert!(
            err.contains("FACEREKO_VISION__FPS") && err.contains("vision.fps"),
            "{err}"
        );
    }

    #[test]
    fn one_site_time_zone_reaches_the_door_and_the_web_app() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "time_zone = \"Asia/Tokyo\"\n").unwrap();
        let tokyo = SiteTimeZone::parse("Asia/Tokyo").unwrap();
        let c = load_env(Some(&f), dir.path(), &[]).unwrap();
        assert_eq!(
            (c.time_zone, c.door.time_zone, c.web.time_zone),
            (tokyo, tokyo, tokyo)
        );
        let c = load_env(Some(&f), dir.path(), &[("FACEREKO_TIME_ZONE", "UTC")]).unwrap();
        assert_eq!(c.door.time_zone, SiteTimeZone::parse("UTC").unwrap());
        let err = format!(
            "{:#}",
            load_env(
                Some(&f),
                dir.path(),
                &[("FACEREKO_TIME_ZONE", "Mars/Olympus")]
            )
            .unwrap_err()
        );
        assert!(
            err.contains("FACEREKO_TIME_ZONE") && err.contains("Mars/Olympus"),
            "{err}"
        );
        // The zone used to be a web setting; an old file gets told where it went.
        std::fs::write(&f, "[web]\ntime_zone = \"Asia/Tokyo\"\n").unwrap();
        let err = format!("{:#}", load_env(Some(&f), dir.path(), &[]).unwrap_err());
        assert!(err.contains("top-level `time_zone`"), "{err}");
    }

    #[test]
    fn the_data_dir_file_is_read_when_present() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("facereko.toml"),
            "door_id = \"back\"\n[door]\nmode = \"card\"\n",
        )
        .unwrap();
        let l = Config::load_from(None, dir.path(), Vec::new()).unwrap();
        assert_eq!(l.config.door_id, "back");
        assert_eq!(l.config.door.mode, facereko_domain::Mode::Card);
        assert!(l.file.is_some());
    }

    #[test]
    fn environment_variables_override_the_file() {
        // Regression: every FACEREKO_<SECTION>__<KEY> variable was silently ignored (the key filter
        // compared upper-case names with lower-case keys).
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "door_id = \"front\"\n[door]\nunlock_seconds = 10.0\n").unwrap();
        let c = load_env(
            Some(&f),
            dir.path(),
            &[
                ("FACEREKO_DOOR_ID", "x"),
                ("FACEREKO_DOOR__UNLOCK_SECONDS", "2"),
                ("FACEREKO_DOOR__ARMED_AT_FIRST_START", "false"),
                ("FACEREKO_MQTT__URL", "mqtt://127.0.0.1:1883"),
                (
                    "FACEREKO_STORE__DATABASE_URL",
                    "mysql://door:pw@db/FaceReko",
                ),
                ("FACEREKO_HARDWARE__GPIO__RELAY__LINE", "26"),
                ("FACEREKO_EMAIL__TO", r#"["Office <office@example.org>"]"#),
                ("FACEREKO_STORE__RETENTION__OUTCOMES__GRANTED", "30"),
            ],
        )
        .unwrap();
        assert_eq!(c.door_id, "x");
        assert_eq!(c.door.unlock_seconds, 2.0);
        assert!(!c.door.armed_at_first_start);
        assert_eq!(c.mqtt.url.as_deref(), Some("mqtt://127.0.0.1:1883"));
        assert_eq!(c.store.database_url, "mysql://door:pw@db/FaceReko");
        assert_eq!(
            c.hardware.gpio.relay.line,
            facereko_hardware::config::Line::Offset(26)
        );
        assert_eq!(c.email.to, ["Office <office@example.org>"]);
        assert_eq!(
            c.store
                .retention
                .days_for(facereko_domain::Outcome::Granted),
            Some(30)
        );
    }

    #[test]
    fn a_door_id_that_would_break_topics_is_refused_where_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "door_id = \"front/door\"\n").unwrap();
        let e = format!(
            "{:#}",
            Config::load_from(Some(&f), dir.path(), Vec::new()).unwrap_err()
        );
        assert!(e.contains("door id \"front/door\""), "{e}");
        assert!(e.contains("1 to 64 letters"), "{e}");
        let e = load_err(None, dir.path(), &[("FACEREKO_DOOR_ID", "a+b")]);
        assert!(e.contains("FACEREKO_DOOR_ID"), "{e}");
        assert!(e.contains("1 to 64 letters"), "{e}");
    }

    #[test]
    fn a_secret_of_digits_stays_text() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_env(
            None,
            dir.path(),
            &[
                ("FACEREKO_DOOR_ID", "1234"),
                ("FACEREKO_MQTT__USERNAME", "door"),
                ("FACEREKO_MQTT__PASSWORD", "000123"),
            ],
        )
        .unwrap();
        assert_eq!(c.door_id, "1234");
        assert_eq!(c.mqtt.password.expose(), "000123");
    }

    #[test]
    fn a_bad_environment_value_is_one_error_naming_the_variable() {
        // Regression: FACEREKO_DOOR__UNLOCK_SECONDS=abc or an oracle:// database URL started the door on
        // the defaults without a word.
        let dir = tempfile::tempdir().unwrap();
        let e = load_err(
            None,
            dir.path(),
            &[("FACEREKO_DOOR__UNLOCK_SECONDS", "abc")],
        );
        assert!(e.contains("FACEREKO_DOOR__UNLOCK_SECONDS"), "{e}");
        let e = load_err(None, dir.path(), &[("FACEREKO_DOOR__UNLOCK_SECONDS", "-1")]);
        assert!(e.contains("FACEREKO_DOOR__UNLOCK_SECONDS"), "{e}");
        let e = load_err(
            None,
            dir.path(),
            &[("FACEREKO_STORE__DATABASE_URL", "oracle://scott:tiger@x/db")],
        );
        assert!(e.contains("FACEREKO_STORE__DATABASE_URL"), "{e}");
        assert!(!e.contains("tiger"), "the password is not shown: {e}");
        let e = load_err(None, dir.path(), &[("FACEREKO_DOOR_ID", "a b")]);
        assert!(e.contains("FACEREKO_DOOR_ID"), "{e}");
        let e = load_err(None, dir.path(), &[("FACEREKO_DOOR__MODE", "sometimes")]);
        assert!(e.contains("FACEREKO_DOOR__MODE"), "{e}");
    }

    #[test]
    fn an_unknown_key_in_a_known_section_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_err(None, dir.path(), &[("FACEREKO_DOOR__UNLOK_SECONDS", "3")]);
        assert!(e.contains("FACEREKO_DOOR__UNLOK_SECONDS"), "{e}");
        assert!(e.contains("unlok_seconds"), "{e}");
        let e = load_err(
            None,
            dir.path(),
            &[("FACEREKO_HARDWARE__GPIO__RELAY__LIME", "3")],
        );
        assert!(e.contains("FACEREKO_HARDWARE__GPIO__RELAY__LIME"), "{e}");
        let e = load_err(None, dir.path(), &[("FACEREKO_MQQT__URL", "mqtt://x")]);
        assert!(
            e.contains("FACEREKO_MQQT__URL") && e.contains("mqqt"),
            "{e}"
        );
    }

    #[test]
    fn names_that_are_almost_configuration_are_refused_with_the_right_name() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_err(
            None,
            dir.path(),
            &[("FACEREKO_DATABASE_URL", "mysql://x/y")],
        );
        assert!(e.contains("FACEREKO_STORE__DATABASE_URL"), "{e}");
        let e = load_err(None, dir.path(), &[("FACEREKO_DOOR_UNLOCK_SECONDS", "2")]);
        assert!(e.contains("FACEREKO_DOOR__UNLOCK_SECONDS"), "{e}");
        let e = load_err(None, dir.path(), &[("FACEREKO_DOOR____MODE", "card")]);
        assert!(e.contains("FACEREKO_DOOR____MODE"), "{e}");
        // The bench rig was once chosen by this variable; it is a `[hardware]` setting now.
        let e = load_err(None, dir.path(), &[("FACEREKO_BENCH", "/bench.json")]);
        assert!(e.contains("FACEREKO_HARDWARE__MODE"), "{e}");
        assert!(e.contains("FACEREKO_HARDWARE__BENCH"), "{e}");
        let c = load_env(
            None,
            dir.path(),
            &[
                ("FACEREKO_HARDWARE__MODE", "bench"),
                ("FACEREKO_HARDWARE__BENCH", "/bench.json"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.hardware.bench.as_deref(),
            Some(std::path::Path::new("/bench.json"))
        );
    }

    #[test]
    fn command_line_and_test_variables_are_not_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_env(
            None,
            dir.path(),
            &[
                ("FACEREKO_DATA_DIR", "/nowhere"),
                ("FACEREKO_CONFIG", "/nowhere/facereko.toml"),
                ("FACEREKO_LOG", "debug"),
                ("FACEREKO_TEST_MYSQL_URL", "mysql://root@127.0.0.1/test"),
                ("FACEREKO_MODELS_DIR", "/models"),
                ("FACEREKO_STORE__DATABASE_URL", ""),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(c.store, StoreConfig::default());
    }

    #[test]
    fn a_secret_comes_from_a_file_named_by_its_file_variable() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("mqtt-password");
        std::fs::write(&secret, "s3cret with spaces \n").unwrap();
        let url = dir.path().join("database-url");
        std::fs::write(&url, "mysql://door:pw@db/FaceReko\r\n").unwrap();
        let key = dir.path().join("aws-key");
        std::fs::write(&key, "0123456789").unwrap();
        let path = |p: &Path| p.display().to_string();
        let c = load_env(
            None,
            dir.path(),
            &[
                ("FACEREKO_MQTT__USERNAME", "door"),
                ("FACEREKO_MQTT__PASSWORD_FILE", &path(&secret)),
                ("FACEREKO_STORE__DATABASE_URL_FILE", &path(&url)),
                ("FACEREKO_EMAIL__PASSWORD_FILE", &path(&secret)),
                ("FACEREKO_AWS__ACCESS_KEY_ID_FILE", &path(&key)),
                ("FACEREKO_AWS__SECRET_ACCESS_KEY_FILE", &path(&secret)),
                // A key that ends in _file is still that key.
                ("FACEREKO_MQTT__CA_FILE", "/etc/facereko/rootca.pem"),
            ],
        )
        .unwrap();
        assert_eq!(c.mqtt.password.expose(), "s3cret with spaces ");
        assert_eq!(c.email.password.expose(), "s3cret with spaces ");
        assert_eq!(c.store.database_url, "mysql://door:pw@db/FaceReko");
        assert_eq!(c.aws.access_key_id.as_deref(), Some("0123456789"));
        assert_eq!(
            c.aws.secret_access_key.as_ref().map(|s| s.expose()),
            Some("s3cret with spaces ")
        );
        assert_eq!(
            c.mqtt.ca_file.as_deref(),
            Some(Path::new("/etc/facereko/rootca.pem"))
        );
    }

    #[test]
    fn a_bad_secret_file_names_the_variable_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-credential");
        let e = load_err(
            None,
            dir.path(),
            &[(
                "FACEREKO_MQTT__PASSWORD_FILE",
                &missing.display().to_string(),
            )],
        );
        assert!(e.contains("FACEREKO_MQTT__PASSWORD_FILE"), "{e}");
        assert!(e.contains("no-such-credential"), "{e}");

        let e = load_err(
            None,
            dir.path(),
            &[("FACEREKO_STORE__DATABASE_URL_FILE", "/dev/zero")],
        );
        assert!(e.contains("FACEREKO_STORE__DATABASE_URL_FILE"), "{e}");
        assert!(e.contains("not a regular file"), "{e}");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
        let e = load_err(
            None,
            dir.path(),
            &[("FACEREKO_EMAIL__PASSWORD_FILE", &big.display().to_string())],
        );
        assert!(e.contains("larger than 64 KiB"), "{e}");

        let ok = dir.path().join("pw");
        std::fs::write(&ok, "pw").unwrap();
        let e = load_err(
            None,
            dir.path(),
            &[
                ("FACEREKO_MQTT__PASSWORD", "pw"),
                ("FACEREKO_MQTT__PASSWORD_FILE", &ok.display().to_string()),
            ],
        );
        assert!(
            e.contains("FACEREKO_MQTT__PASSWORD and FACEREKO_MQTT__PASSWORD_FILE"),
            "{e}"
        );

        let e = load_err(
            None,
            dir.path(),
            &[("FACEREKO_MQTT__URL_FILE", &ok.display().to_string())],
        );
        assert!(e.contains("FACEREKO_MQTT__URL_FILE"), "{e}");
        assert!(
            e.contains("FACEREKO_MQTT__PASSWORD_FILE"),
            "lists the _FILE names: {e}"
        );
    }

    #[test]
    fn config_show_hides_every_secret() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_env(
            None,
            dir.path(),
            &[
                (
                    "FACEREKO_STORE__DATABASE_URL",
                    "mysql://door:hunter2@db/FaceReko",
                ),
                ("FACEREKO_MQTT__USERNAME", "door"),
                ("FACEREKO_MQTT__PASSWORD", "hunter2"),
                ("FACEREKO_EMAIL__PASSWORD", "hunter2"),
                ("FACEREKO_AWS__SECRET_ACCESS_KEY", "hunter2"),
                (
                    "FACEREKO_WEBHOOK",
                    r#"[{url = "https://h.example/x", secret = "hunter2-hunter2-hunter2"}]"#,
                ),
            ],
        )
        .unwrap();
        let shown = c.redacted_json().unwrap();
        let text = shown.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            shown["store"]["database_url"],
            "mysql://door:***@db/FaceReko"
        );
        assert_eq!(shown["mqtt"]["password"], "***");
        assert_eq!(shown["mqtt"]["username"], "door");
        assert_eq!(shown["email"]["password"], "***");
    }

    #[test]
    fn variable_names_follow_the_keys() {
        assert_eq!(
            env_name("door.unlock_seconds"),
            "FACEREKO_DOOR__UNLOCK_SECONDS"
        );
        assert_eq!(env_name("door_id"), "FACEREKO_DOOR_ID");
    }
}
