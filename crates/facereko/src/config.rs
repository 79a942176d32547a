//! The typed configuration: defaults, then `facereko.toml`, then `FACEREKO_*` environment variables
//! (`__` separates nested keys: `FACEREKO_DOOR__UNLOCK_SECONDS=5`). Validated once, then passed down.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use facereko_aws::AwsConfig;
use facereko_door::DoorConfig;
use facereko_hardware::config::HardwareConfig;
use facereko_notify::{EmailConfig, MqttConfig, NotifyConfig, OutboxConfig, WebhookConfig};
use facereko_rekognition::EndpointConfig;
use facereko_store::StoreConfig;
use facereko_vision::VisionConfig;
use facereko_web::WebConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Top-level keys; environment variables whose first segment is not one of these (such as
/// `FACEREKO_DATA_DIR`, which is a command-line option) are not configuration.
const TOP_LEVEL_KEYS: &[&str] = &[
    "door_id",
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
];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This door's name in a fleet (attempts, events and topics carry it).
    pub door_id: String,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            door_id: "door".into(),
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
    /// Loads the configuration. `file` is the explicit `--config` (it must exist); without it,
    /// `<data_dir>/facereko.toml` is read when present.
    pub fn load(file: Option<&Path>, data_dir: &Path) -> Result<(Config, Option<PathBuf>)> {
        let path = match file {
            Some(f) => {
                if !f.is_file() {
                    bail!("config file {} does not exist", f.display());
                }
                Some(f.to_path_buf())
            }
            None => Some(data_dir.join("facereko.toml")).filter(|p| p.is_file()),
        };
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = &path {
            fig = fig.merge(Toml::file_exact(p));
        }
        fig = fig.merge(
            Env::prefixed("FACEREKO_")
                .split("__")
                .filter(|k| TOP_LEVEL_KEYS.contains(&k.as_str().split('.').next().unwrap_or(""))),
        );
        let config: Config = fig.extract().map_err(|e| {
            let e = e.to_string();
            match &path {
                Some(p) if !e.contains(&p.display().to_string()) => {
                    anyhow::anyhow!("{e} (config file {})", p.display())
                }
                _ => anyhow::anyhow!(e),
            }
        })?;
        config.validate().with_context(|| match &path {
            Some(p) => format!(
                "invalid configuration in {} or FACEREKO_* environment",
                p.display()
            ),
            None => "invalid configuration in FACEREKO_* environment".to_string(),
        })?;
        Ok((config, path))
    }

    pub fn validate(&self) -> Result<()> {
        if self.door_id.is_empty()
            || self.door_id.len() > 64
            || !self
                .door_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "door_id: use 1 to 64 letters, digits, '-' or '_' (it becomes part of MQTT topics)"
            );
        }
        self.door.validate()?;
        self.vision.validate()?;
        if self.vision.engine == "rekognition" {
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

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn a_broken_file_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("facereko.toml");
        std::fs::write(&f, "[door]\nunlock_seconds = \"ten\"\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f), dir.path()).unwrap_err());
        assert!(err.contains("unlock_seconds"), "{err}");
        assert!(err.contains("facereko.toml"), "{err}");

        std::fs::write(&f, "[door]\nunlock_seconds = -1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f), dir.path()).unwrap_err());
        assert!(err.contains("door.unlock_seconds"), "{err}");
        assert!(err.contains("facereko.toml"), "{err}");

        std::fs::write(&f, "[door]\nunlok_seconds = 3\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&f), dir.path()).unwrap_err());
        assert!(err.contains("unlok_seconds"), "{err}");

        std::fs::write(&f, "door = [").unwrap();
        let err = format!("{:#}", Config::load(Some(&f), dir.path()).unwrap_err());
        assert!(err.contains("facereko.toml"), "{err}");
    }

    #[test]
    fn the_shipped_example_is_a_valid_configuration() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../facereko.example.toml");
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = Config::load(Some(&example), dir.path()).unwrap();
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
        let result = Config::load(Some(&f), dir.path());
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
        let err = format!("{:#}", Config::load(Some(&f), dir.path()).unwrap_err());
        assert!(err.contains("rekognition_api.access_key_id"), "{err}");
    }

    #[test]
    fn the_data_dir_file_is_read_when_present() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("facereko.toml"),
            "door_id = \"back\"\n[door]\nmode = \"card\"\n",
        )
        .unwrap();
        let (c, path) = Config::load(None, dir.path()).unwrap();
        assert_eq!(c.door_id, "back");
        assert_eq!(c.door.mode, facereko_domain::Mode::Card);
        assert!(path.is_some());
    }
}
