//! The e-mail sink (lettre over SMTP with STARTTLS, TLS or, for a local relay, none).
//!
//! One mail per wanted event; its Message-ID is derived from the door and event id, so a mail sent twice
//! (the server took it but the answer was lost) shows as one in most mail clients.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Local;
use facereko_domain::Event;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use async_trait::async_trait;

use crate::config::{EmailConfig, SmtpTls};
use crate::payload::{summary, EventPayload, PayloadBody};
use crate::{DeliveryError, Error, Notifier, Outbox, OutboxEntry, Result};

/// The e-mail [`Notifier`]; its outbox cursor is named `email`.
pub struct EmailNotifier {
    config: EmailConfig,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    outbox: Arc<dyn Outbox>,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("host", &self.config.host)
            .field("port", &self.config.port())
            .field("tls", &self.config.tls)
            .field("to", &self.config.to)
            .finish()
    }
}

fn config_error(key: &str, reason: impl fmt::Display) -> Error {
    Error::Config {
        key: key.into(),
        reason: reason.to_string(),
    }
}

impl EmailNotifier {
    /// Checks the config and prepares the transport (no connection is made until the first mail).
    pub fn new(config: &EmailConfig, outbox: Arc<dyn Outbox>) -> Result<Self> {
        config.validate()?;
        let host = config
            .host
            .clone()
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| config_error("email.host", "e-mail is off (no host)"))?;
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| config_error("email.from", e))?;
        let to = config
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| config_error("email.to", e))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(config.port())
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        if config.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(host);
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|source| Error::ConfigFile {
                    key: "email.ca_file".into(),
                    path: path.clone(),
                    source,
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    config_error("email.ca_file", format!("{}: {e}", path.display()))
                })?;
                params = params
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| Error::Tls(format!("e-mail: {e}")))?;
            builder = builder.tls(match config.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let Some(user) = &config.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                config.password.expose().to_string(),
            ));
        }
        Ok(Self {
            config: config.clone(),
            from,
            to,
            transport: builder.build(),
            outbox,
        })
    }

    /// Whether this event is one the config asks to mail.
    pub fn wants(&self, event: &Event) -> bool {
        match event {
            Event::Attempt { attempt, .. } => {
                if attempt.outcome.is_granted() {
                    self.config.on_granted
                } else {
                    self.config.on_denied && attempt.outcome != facereko_domain::Outcome::SystemOff
                }
            }
            Event::Alarm { .. } => self.config.on_alarm,
            Event::Audit { .. } => self.config.on_audit,
            Event::Test { .. } => true,
            Event::Armed { .. } | Event::Door { .. } => false,
        }
    }

    /// The mail for an entry (with the photo when configured and still on disk).
    pub async fn message(&self, entry: &OutboxEntry) -> std::result::Result<Message, String> {
        let p = EventPayload::from_entry(entry);
        let subject = format!("FaceReko: {}", summary(&p));
        let mut body = String::new();
        let local = p.time.with_timezone(&Local);
        body.push_str(&format!("{}\n\n", summary(&p)));
        body.push_str(&format!("Door:     {}\n", p.door_id));
        body.push_str(&format!(
            "When:     {} ({})\n",
            local.format("%Y-%m-%d %H:%M:%S %:z"),
            p.time.format("%Y-%m-%dT%H:%M:%SZ")
        ));
        let mut photo = None;
        match &p.body {
            PayloadBody::Attempt {
                outcome,
                person,
                card_uid,
                similarity,
                confidence,
                detail,
                attempt_id,
                ..
            } => {
                body.push_str(&format!(
                    "Who:      {}\n",
                    person.as_deref().unwrap_or("unknown")
                ));
                if let Some(uid) = card_uid {
                    body.push_str(&format!("Card:     {uid}\n"));
                }
                body.push_str(&format!("Outcome:  {}\n", outcome.as_str()));
                if let Some(s) = similarity {
                    body.push_str(&format!("Similarity: {s:.1}\n"));
                }
                if let Some(c) = confidence {
                    body.push_str(&format!("Face confidence: {c:.1}\n"));
                }
                if let Some(d) = detail {
                    body.push_str(&format!("Detail:   {d}\n"));
                }
                body.push_str(&format!("Attempt:  {attempt_id}\n"));
                if let Event::Attempt { attempt, .. } = &entry.event {
                    if self.config.attach_photo {
                        if let Some(rel) = &attempt.photo {
                            photo = self.photo(rel).await;
                            if photo.is_none() {
                                body.push_str("Photo:    no longer available\n");
                            }
                        }
                    }
                }
            }
            PayloadBody::Audit {
                actor,
                via,
                origin,
                action,
                target,
                detail,
                ..
            } => {
                body.push_str(&format!("Who:      {actor} ({})\n", via.as_str()));
                if let Some(o) = origin {
                    body.push_str(&format!("From:     {o}\n"));
                }
                body.push_str(&format!("Change:   {action} {target}\n"));
                if !detail.is_empty() {
                    body.push_str(&format!("Detail:   {detail}\n"));
                }
            }
            PayloadBody::Test { by } => {
                body.push_str(&format!(
                    "A test event, sent by {by} from the settings page: this sink works.\n"
                ));
            }
            PayloadBody::Alarm { .. } | PayloadBody::Armed { .. } | PayloadBody::Door { .. } => {}
        }
        body.push_str(&format!("Event id: {}\n", p.event_id));

        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(format!(
                "<facereko.{}.{}@{}>",
                p.door_id,
                p.event_id,
                self.from.email.domain()
            )));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let result = match photo {
            Some((name, bytes, content_type)) => builder.multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(body))
                    .singlepart(Attachment::new(name).body(bytes, content_type)),
            ),
            None => builder.singlepart(SinglePart::plain(body)),
        };
        result.map_err(|e| format!("cannot build the mail: {e}"))
    }

    async fn photo(&self, relative: &str) -> Option<(String, Vec<u8>, ContentType)> {
        let path = match self.outbox.photo_path(relative) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(photo = relative, error = %e, "not attaching the photo");
                return None;
            }
        };
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(photo = %path.display(), error = %e, "photo not attached (purged?)");
                return None;
            }
        };
        let (name, mime) = match facereko_domain::ImageFormat::sniff(&bytes) {
            Some(facereko_domain::ImageFormat::Png) => ("photo.png", "image/png"),
            _ => ("photo.jpg", "image/jpeg"),
        };
        let content_type = ContentType::parse(mime).ok()?;
        Some((name.to_string(), bytes, content_type))
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn name(&self) -> &str {
        "email"
    }

    async fn deliver(&self, entry: &OutboxEntry) -> std::result::Result<(), DeliveryError> {
        if !self.wants(&entry.event) {
            return Ok(());
        }
        let message = self
            .message(entry)
            .await
            .map_err(DeliveryError::Permanent)?;
        // Every SMTP failure is retried, even 5xx: a wrong password or a refused sender is a config
        // problem to fix (shown in the status), not a reason to lose the mail.
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| DeliveryError::Transient(format!("SMTP: {}", chain(&e))))
    }
}

pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
