//! Typed configuration of the notifier: `[outbox]`, `[mqtt]`, `[email]` and `[[webhook]]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Secrets in the notifier's sections (the domain's type, named here for callers of this crate).
pub use facereko_domain::Secret;

fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Everything the notifier needs, grouped. The binary may embed the four sections at the top level of its
/// config file (`[outbox]`, `[mqtt]`, `[email]`, `[[webhook]]`) and build this from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    pub outbox: OutboxConfig,
    pub mqtt: MqttConfig,
    pub email: EmailConfig,
    pub webhook: Vec<WebhookConfig>,
    /// AWS settings: a set `sns_topic_arn` adds the SNS sink.
    pub aws: facereko_aws::AwsConfig,
}

impl NotifyConfig {
    pub fn validate(&self) -> Result<()> {
        if self.aws.sns_topic_arn.is_some() {
            self.aws.validate().map_err(|e| Error::Config {
                key: "aws".into(),
                reason: e.to_string(),
            })?;
        }
        self.outbox.validate()?;
        self.mqtt.validate()?;
        self.email.validate()?;
        let mut names = std::collections::HashSet::new();
        for (i, w) in self.webhook.iter().enumerate() {
            w.validate(i)?;
            if !names.insert(w.sink_name()) {
                return Err(invalid(
                    &format!("webhook[{i}].name"),
                    "two webhooks have the same name (each needs its own delivery cursor)",
                ));
            }
        }
        Ok(())
    }
}

/// How the background delivery retries and tidies up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// First wait after a failed delivery, in seconds; doubles per failure.
    pub retry_min_secs: u64,
    /// Longest wait between two tries, in seconds.
    pub retry_max_secs: u64,
    /// How often each sink looks for new entries when nobody woke it, in milliseconds.
    pub poll_interval_ms: u64,
    /// Entries fetched per round trip to the database.
    pub batch: u32,
    /// Entries delivered to every sink are deleted after this many days.
    pub keep_days: u32,
    /// Put the card UID in attempt events (MQTT, webhooks, e-mail, SNS). Off: in `card` mode a UID is
    /// the whole credential, and events travel to brokers, inboxes and third parties.
    pub include_card_uid: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retry_min_secs: 1,
            retry_max_secs: 300,
            poll_interval_ms: 1000,
            batch: 50,
            keep_days: 7,
            include_card_uid: false,
        }
    }
}

impl OutboxConfig {
    pub fn validate(&self) -> Result<()> {
        if self.retry_min_secs == 0 {
            return Err(invalid("outbox.retry_min_secs", "must be at least 1"));
        }
        if self.retry_max_secs < self.retry_min_secs {
            return Err(invalid(
                "outbox.retry_max_secs",
                "must not be less than outbox.retry_min_secs",
            ));
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err(invalid("outbox.poll_interval_ms", "must be 10–60000"));
        }
        if !(1..=1000).contains(&self.batch) {
            return Err(invalid("outbox.batch", "must be 1–1000"));
        }
        if self.keep_days == 0 {
            return Err(invalid("outbox.keep_days", "must be at least 1"));
        }
        Ok(())
    }
}

/// `[mqtt]`: off unless `url` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:1883` or `mqtts://host:8883`; none means MQTT is off.
    pub url: Option<String>,
    /// Defaults to `facereko-<door_id>`; AWS IoT Core policies often pin it to the thing name.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Secret,
    /// PEM file of the CA(s) to trust (`rootca.pem` for AWS IoT); none means the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (`certificate.pem.crt` for AWS IoT).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (`private.pem.key` for AWS IoT).
    pub client_key: Option<PathBuf>,
    /// First topic level: events go to `<topic_prefix>/<door_id>/attempt|alarm|state`.
    pub topic_prefix: String,
    /// Also publish the original's `FaceReko/success` and `FaceReko/failure` text messages.
    pub legacy_topics: bool,
    pub keep_alive_secs: u64,
    /// How long to wait for the broker's PUBACK before the delivery counts as failed.
    pub publish_timeout_secs: u64,
    pub commands: MqttCommandsConfig,
    pub home_assistant: HomeAssistantConfig,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: None,
            client_id: None,
            username: None,
            password: Secret::default(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            topic_prefix: "facereko".into(),
            legacy_topics: false,
            keep_alive_secs: 30,
            publish_timeout_secs: 30,
            commands: MqttCommandsConfig::default(),
            home_assistant: HomeAssistantConfig::default(),
        }
    }
}

/// `[mqtt.commands]`: remote `arm`, `disarm` and `unlock` on `<prefix>/<door_id>/command`. Off by default.
/// How a command is signed: [`crate::commands`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttCommandsConfig {
    pub enabled: bool,
    /// The HMAC-SHA256 key of signed commands (`{"command", "ts", "nonce", "sig"}`); never sent.
    pub secret: Secret,
    /// Also accept unsigned bare `ARM`, `DISARM`, `UNLOCK` (Home Assistant's fixed payloads, which
    /// cannot be signed): the broker's ACL alone then decides who may open the door, and such a
    /// command can be replayed by anyone allowed to publish on the topic. An explicit opt-in.
    pub trust_broker_acl: bool,
    /// Take commands over a plain `mqtt://` connection, where anyone on the network path can read and
    /// alter them. Off: commands need `mqtts://`.
    pub allow_plaintext: bool,
}

/// `[mqtt.home_assistant]`: MQTT discovery of the door (lock), the system (switch) and the last attempt
/// (sensor). Off by default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomeAssistantConfig {
    pub enabled: bool,
    pub discovery_prefix: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            discovery_prefix: "homeassistant".into(),
        }
    }
}

/// A parsed broker address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    /// Parses `mqtt://host[:port]` and `mqtts://host[:port]` (IPv6 as `[::1]`); the default ports are
    /// 1883 and 8883.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let text = url.trim();
        let parsed = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        let tls = match parsed.scheme() {
            "mqtts" => true,
            "mqtt" => false,
            _ => return Err(format!("{text:?} must start with mqtt:// or mqtts://")),
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(
                "put credentials in mqtt.username and mqtt.password, not in the URL".into(),
            );
        }
        if !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(format!("{text:?} must be just scheme://host[:port]"));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(format!("{text:?} has no host")),
        };
        let port = match parsed.port() {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(0) => return Err(format!("{text:?}: port 0 is not a port 1–65535")),
            Some(p) => p,
        };
        Ok(Self { tls, host, port })
    }
}

fn topic_level_ok(s: &str) -> bool {
    !s.is_empty() && !s.contains(['+', '#', '\0'])
}

impl MqttConfig {
    /// Whether MQTT is configured at all.
    pub fn enabled(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.trim().is_empty())
    }

    /// The parsed broker URL; `None` when MQTT is off.
    pub fn broker(&self) -> Result<Option<BrokerUrl>> {
        match self.url.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(u) => BrokerUrl::parse(u)
                .map(Some)
                .map_err(|reason| invalid("mqtt.url", reason)),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let Some(broker) = self.broker()? else {
            return Ok(());
        };
        if self.client_cert.is_some() != self.client_key.is_some() {
            let key = if self.client_cert.is_some() {
                "mqtt.client_key"
            } else {
                "mqtt.client_cert"
            };
            return Err(invalid(
                key,
                "mutual TLS needs both mqtt.client_cert and mqtt.client_key",
            ));
        }
        if !broker.tls {
            for (key, set) in [
                ("mqtt.ca_file", self.ca_file.is_some()),
                ("mqtt.client_cert", self.client_cert.is_some()),
            ] {
                if set {
                    return Err(invalid(key, "TLS settings need an mqtts:// url"));
                }
            }
        }
        if !self.password.is_empty() && self.username.is_none() {
            return Err(invalid("mqtt.username", "a password needs a username"));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 {
                return Err(invalid("mqtt.client_id", "must be 1–128 characters"));
            }
        }
        let prefix = self.topic_prefix.trim_matches('/');
        if prefix.is_empty() || prefix.split('/').any(|l| !topic_level_ok(l)) {
            return Err(invalid(
                "mqtt.topic_prefix",
                "must be one or more topic levels without +, # or empty levels",
            ));
        }
        if !(5..=3600).contains(&self.keep_alive_secs) {
            return Err(invalid("mqtt.keep_alive_secs", "must be 5–3600"));
        }
        if !(1..=600).contains(&self.publish_timeout_secs) {
            return Err(invalid("mqtt.publish_timeout_secs", "must be 1–600"));
        }
        let c = &self.commands;
        if c.enabled && !broker.tls && !c.allow_plaintext {
            return Err(invalid(
                "mqtt.commands.allow_plaintext",
                "commands are enabled on a plain mqtt:// connection, where anyone on the network path \
                 can read and alter them: use an mqtts:// url, or set allow_plaintext = true (e.g. for \
                 a broker on this machine)",
            ));
        }
        if c.enabled && c.secret.is_empty() && !c.trust_broker_acl {
            return Err(invalid(
                "mqtt.commands.secret",
                "commands are enabled: set a secret to sign them with, or trust_broker_acl = true if \
                 the broker's ACL alone may decide who publishes to the command topic",
            ));
        }
        if c.enabled && !c.secret.is_empty() && c.secret.expose().len() < 16 {
            return Err(invalid(
                "mqtt.commands.secret",
                "must be at least 16 characters",
            ));
        }
        let ha = &self.home_assistant;
        if ha.enabled && !topic_level_ok(ha.discovery_prefix.trim_matches('/')) {
            return Err(invalid(
                "mqtt.home_assistant.discovery_prefix",
                "must be a topic level without + or #",
            ));
        }
        Ok(())
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refuses servers that do not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a trusted LAN (port 25).
    None,
}

/// `[email]`: off unless `host` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server; none means e-mail is off.
    pub host: Option<String>,
    /// Defaults to 587 (starttls), 465 (tls) or 25 (none).
    pub port: Option<u16>,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Secret,
    /// PEM file of a private CA to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    /// Mail on every granted attempt (what the original's SNS rule did).
    pub on_granted: bool,
    /// Mail on every denied attempt.
    pub on_denied: bool,
    /// Mail on door alarms (forced open, held open, spoof suspected).
    pub on_alarm: bool,
    /// Mail on every administrative change and remote unlock (the audit trail).
    pub on_audit: bool,
    /// Attach the attempt's photo when there is one.
    pub attach_photo: bool,
    pub timeout_secs: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: None,
            tls: SmtpTls::Starttls,
            username: None,
            password: Secret::default(),
            ca_file: None,
            from: "FaceReko <facereko@localhost>".into(),
            to: Vec::new(),
            on_granted: true,
            on_denied: false,
            on_alarm: true,
            on_audit: false,
            attach_photo: false,
            timeout_secs: 30,
        }
    }
}

impl EmailConfig {
    pub fn enabled(&self) -> bool {
        self.host.as_deref().is_some_and(|h| !h.trim().is_empty())
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    pub fn validate(&self) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        if self.port == Some(0) {
            return Err(invalid("email.port", "must be 1–65535"));
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| invalid("email.from", format!("{:?}: {e}", self.from)))?;
        if self.to.is_empty() {
            return Err(invalid("email.to", "list at least one recipient"));
        }
        for (i, to) in self.to.iter().enumerate() {
            to.parse::<lettre::message::Mailbox>()
                .map_err(|e| invalid(&format!("email.to[{i}]"), format!("{to:?}: {e}")))?;
        }
        if !self.password.is_empty() && self.username.is_none() {
            return Err(invalid("email.username", "a password needs a username"));
        }
        if self.tls == SmtpTls::None && self.ca_file.is_some() {
            return Err(invalid(
                "email.ca_file",
                "needs tls = \"starttls\" or \"tls\"",
            ));
        }
        if !(1..=600).contains(&self.timeout_secs) {
            return Err(invalid("email.timeout_secs", "must be 1–600"));
        }
        Ok(())
    }
}

/// Which events a webhook receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Every attempt, granted or denied.
    Attempt,
    /// Door alarms.
    Alarm,
    /// Armed/disarmed and lock/door changes.
    State,
    /// Administrative changes and remote commands (the audit trail).
    Audit,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Attempt,
        EventKind::Alarm,
        EventKind::State,
        EventKind::Audit,
    ];

    /// The kind of `event`; `None` for a test event, which every webhook receives.
    pub fn of(event: &facereko_domain::Event) -> Option<Self> {
        use facereko_domain::Event;
        Some(match event {
            Event::Attempt { .. } => EventKind::Attempt,
            Event::Alarm { .. } => EventKind::Alarm,
            Event::Armed { .. } | Event::Door { .. } => EventKind::State,
            Event::Audit { .. } => EventKind::Audit,
            Event::Test { .. } => return None,
        })
    }
}

/// One `[[webhook]]`: every event of the chosen kinds is POSTed as JSON, signed with HMAC-SHA256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the delivery cursor (keep it when the URL changes); defaults to the URL's host.
    pub name: Option<String>,
    pub url: String,
    /// Key of the `X-FaceReko-Signature-256: sha256=<hex>` header (HMAC-SHA256 of the body).
    pub secret: Secret,
    pub events: Vec<EventKind>,
    /// PEM file of a private CA to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            name: None,
            url: String::new(),
            secret: Secret::default(),
            events: EventKind::ALL.to_vec(),
            ca_file: None,
            timeout_secs: 10,
        }
    }
}

impl WebhookConfig {
    /// The outbox cursor name: `webhook:<name>`.
    pub fn sink_name(&self) -> String {
        let name = match self.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => {
                let rest = self
                    .url
                    .split_once("://")
                    .map(|(_, r)| r)
                    .unwrap_or(&self.url);
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                // The outbox keeps sink names to 64 characters.
                host.chars().take(48).collect()
            }
        };
        format!("webhook:{name}")
    }

    pub fn validate(&self, index: usize) -> Result<()> {
        let key = |k: &str| format!("webhook[{index}].{k}");
        let lower = self.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://"))
            || self.url.len() <= "https://".len()
        {
            return Err(invalid(&key("url"), "must be an http:// or https:// URL"));
        }
        self.url
            .parse::<reqwest::Url>()
            .map_err(|e| invalid(&key("url"), e.to_string()))?;
        if self.secret.expose().len() < 16 {
            return Err(invalid(
                &key("secret"),
                "set a signing secret of at least 16 characters",
            ));
        }
        if self.events.is_empty() {
            return Err(invalid(
                &key("events"),
                "list at least one of attempt, alarm, state",
            ));
        }
        if self.ca_file.is_some() && lower.starts_with("http://") {
            return Err(invalid(&key("ca_file"), "needs an https:// URL"));
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(invalid(&key("timeout_secs"), "must be 1–300"));
        }
        if let Some(n) = &self.name {
            if n.is_empty() || n.len() > 48 {
                return Err(invalid(&key("name"), "must be 1–48 characters"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_everything_is_off() {
        let c = NotifyConfig::default();
        c.validate().unwrap();
        assert!(!c.mqtt.enabled());
        assert!(!c.email.enabled());
        assert!(c.webhook.is_empty());
    }

    #[test]
    fn broker_urls_parse_with_default_ports() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1883));
        let u = BrokerUrl::parse("mqtts://a1b2-ats.iot.eu-west-1.amazonaws.com").unwrap();
        assert_eq!(u.port, 8883);
        assert!(u.tls);
        let u = BrokerUrl::parse("mqtts://broker:443/").unwrap();
        assert_eq!(u.port, 443);
        let u = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1884));
        for bad in [
            "tcp://x",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:port",
            "mqtt://u:p@x",
            "mqtt://x/topic",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_bad_key() {
        let mut m = MqttConfig {
            url: Some("http://broker".into()),
            ..Default::default()
        };
        assert!(m.validate().unwrap_err().to_string().contains("mqtt.url"));
        m.url = Some("mqtt://broker".into());
        m.client_cert = Some("c.pem".into());
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("mqtt.client_key"));
        m.client_key = Some("k.pem".into());
        assert!(m.validate().unwrap_err().to_string().contains("mqtts://"));
        m.url = Some("mqtts://broker".into());
        m.validate().unwrap();
        m.commands.enabled = true;
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("mqtt.commands.secret"));
        m.commands.trust_broker_acl = true;
        m.validate().unwrap();
        m.commands.secret = Secret::new("too-short");
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("mqtt.commands.secret"));
        m.commands.secret = Secret::default();
        m.topic_prefix = "a/+/b".into();
        assert!(m
            .validate()
            .unwrap_err()
            .to_string()
            .contains("mqtt.topic_prefix"));

        let mut e = EmailConfig {
            host: Some("smtp.example.org".into()),
            ..Default::default()
        };
        assert!(e.validate().unwrap_err().to_string().contains("email.to"));
        e.to = vec!["not an address".into()];
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("email.to[0]"));
        e.to = vec!["Site Office <office@example.org>".into()];
        e.validate().unwrap();
        assert_eq!(e.port(), 587);

        let mut w = WebhookConfig {
            url: "https://hooks.example.org/facereko".into(),
            ..Default::default()
        };
        assert!(w
            .validate(2)
            .unwrap_err()
            .to_string()
            .contains("webhook[2].secret"));
        w.secret = Secret::new("0123456789abcdef");
        w.validate(2).unwrap();
        assert_eq!(w.sink_name(), "webhook:hooks.example.org");
        w.url = "ftp://x".into();
        assert!(w
            .validate(0)
            .unwrap_err()
            .to_string()
            .contains("webhook[0].url"));
    }

    /// Regression: commands were taken over plain mqtt://, readable and alterable on the network path.
    #[test]
    fn commands_over_plain_mqtt_need_allow_plaintext() {
        let mut m = MqttConfig {
            url: Some("mqtt://broker.lan".into()),
            commands: MqttCommandsConfig {
                enabled: true,
                secret: Secret::new("a-long-shared-secret"),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = m.validate().unwrap_err().to_string();
        assert!(
            e.contains("mqtt.commands.allow_plaintext") && e.contains("mqtts://"),
            "{e}"
        );
        m.commands.trust_broker_acl = true;
        assert!(m.validate().is_err(), "the ACL opt-in does not lift it");
        m.commands.allow_plaintext = true;
        m.validate().unwrap();
        m.commands.allow_plaintext = false;
        m.url = Some("mqtts://broker.lan".into());
        m.validate().unwrap();
        // Events alone over plain MQTT stay fine.
        m.url = Some("mqtt://broker.lan".into());
        m.commands.enabled = false;
        m.validate().unwrap();
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = NotifyConfig {
            mqtt: MqttConfig {
                url: Some("mqtt://b".into()),
                password: Secret::new("mqtt-hunter2"),
                commands: MqttCommandsConfig {
                    enabled: true,
                    secret: Secret::new("command-hunter2-long"),
                    ..Default::default()
                },
                ..Default::default()
            },
            email: EmailConfig {
                password: Secret::new("smtp-hunter2"),
                ..Default::default()
            },
            webhook: vec![WebhookConfig {
                secret: Secret::new("hook-hunter2"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn example_fragment_parses_and_validates() {
        let text = include_str!("../example.toml");
        let c: NotifyConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c, NotifyConfig::default(), "the example shows the defaults");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<NotifyConfig>("[mqtt]\nurll = \"mqtt://x\"\n").unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }
}
