//! The webhook sink: POSTs each event's JSON, signed like GitHub's webhooks.
//!
//! Headers: `X-FaceReko-Signature-256: sha256=<hex HMAC-SHA256 of the body with the shared secret>`,
//! `X-FaceReko-Event: attempt|armed|door|alarm`, `X-FaceReko-Event-Id: <outbox id>`. A receiver checks
//! the signature over the raw body before parsing it ([`verify`] does that).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;

use crate::config::{EventKind, Secret, WebhookConfig};
use crate::email::chain;
use crate::payload::{EventPayload, PayloadBody};
use crate::{tls, DeliveryError, Error, Notifier, OutboxEntry, Result};

pub const SIGNATURE_HEADER: &str = "X-FaceReko-Signature-256";
pub const EVENT_HEADER: &str = "X-FaceReko-Event";
pub const EVENT_ID_HEADER: &str = "X-FaceReko-Event-Id";

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    format!("sha256={}", hex::encode(tag.as_ref()))
}

/// Checks a signature header in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 {
        return false;
    }
    let mut tag = [0u8; 32];
    if hex::decode_to_slice(hex, &mut tag).is_err() {
        return false;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).is_ok()
}

/// A webhook [`Notifier`]; its outbox cursor is `webhook:<name>`.
pub struct WebhookNotifier {
    name: String,
    url: reqwest::Url,
    secret: Secret,
    events: HashSet<EventKind>,
    client: reqwest::Client,
}

impl fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .field("events", &self.events)
            .finish()
    }
}

impl WebhookNotifier {
    pub fn new(config: &WebhookConfig) -> Result<Self> {
        config.validate(0)?;
        let url: reqwest::Url = config.url.parse().map_err(|e| Error::Config {
            key: "webhook.url".into(),
            reason: format!("{e}"),
        })?;
        let roots = if url.scheme() == "https" {
            tls::roots("webhook.ca_file", config.ca_file.as_deref())?
        } else {
            rustls::RootCertStore::empty()
        };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls::client_config(roots, None)?)
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(config.timeout_secs.min(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("FaceReko/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Tls(format!("webhook client: {}", chain(&e))))?;
        Ok(Self {
            name: config.sink_name(),
            url,
            secret: config.secret.clone(),
            events: config.events.iter().copied().collect(),
            client,
        })
    }
}

/// Whether an HTTP status means "this payload will never be taken" rather than "try later".
fn refused_for_good(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 410 | 413 | 422)
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, entry: &OutboxEntry) -> std::result::Result<(), DeliveryError> {
        if EventKind::of(&entry.event).is_some_and(|k| !self.events.contains(&k)) {
            return Ok(());
        }
        let payload = EventPayload::from_entry(entry);
        let kind = match payload.body {
            PayloadBody::Attempt { .. } => "attempt",
            PayloadBody::Armed { .. } => "armed",
            PayloadBody::Door { .. } => "door",
            PayloadBody::Alarm { .. } => "alarm",
            PayloadBody::Audit { .. } => "audit",
            PayloadBody::Test { .. } => "test",
        };
        let body = payload.to_json();
        let signature = sign(self.secret.expose().as_bytes(), &body);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, kind)
            .header(EVENT_ID_HEADER, entry.id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryError::Transient(format!("webhook: {}", chain(&e))))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if refused_for_good(status) {
            Err(DeliveryError::Permanent(format!(
                "webhook answered {status}"
            )))
        } else {
            Err(DeliveryError::Transient(format!(
                "webhook answered {status}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_test_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let sig = sign(b"secret", b"{\"event_id\":1}");
        assert!(verify(b"secret", b"{\"event_id\":1}", &sig));
        assert!(!verify(b"secret", b"{\"event_id\":2}", &sig));
        assert!(!verify(b"other", b"{\"event_id\":1}", &sig));
        assert!(!verify(
            b"secret",
            b"{\"event_id\":1}",
            &sig.replace("sha256=", "")
        ));
        assert!(!verify(b"secret", b"{\"event_id\":1}", "sha256=zz"));
    }

    #[test]
    fn only_payload_rejections_drop_an_event() {
        assert!(refused_for_good(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(
            !refused_for_good(StatusCode::UNAUTHORIZED),
            "a wrong secret is fixed in config"
        );
        assert!(!refused_for_good(StatusCode::NOT_FOUND));
        assert!(!refused_for_good(StatusCode::TOO_MANY_REQUESTS));
        assert!(!refused_for_good(StatusCode::SERVICE_UNAVAILABLE));
    }
}
