//! AWS account settings (`[aws]`), shared by the Rekognition engine, the `collection` commands and the
//! SNS notifier, and — with the `sdk` feature — the AWS SDK configuration built from them.
//!
//! The one design decision a newcomer must know: the settings are always compiled (so a config file
//! written for an AWS build still parses, and a default build can say "not built in" instead of
//! "unknown key"), while everything that pulls in the AWS SDK sits behind `sdk`, which the default
//! build does not enable. The SDK gets one explicit HTTP client using rustls with *ring*, the same
//! crypto provider as the rest of FaceReko, and bounded timeouts and retries so a call at the door can
//! never hang: at most `timeout_ms` in all, whatever the network does.

use facereko_domain::Secret;
use serde::{Deserialize, Serialize};

#[cfg(feature = "sdk")]
mod sdk;
pub mod sigv4;
#[cfg(feature = "sdk")]
pub use sdk::{load, load_with, Credentials};

/// Errors of the AWS settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("aws config: `{key}` {reason}")]
    Config { key: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The original's Rekognition `FaceMatchThreshold`.
pub const DEFAULT_FACE_MATCH_THRESHOLD: f32 = 85.0;

/// The `[aws]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// Region, such as `eu-west-1`; `None` takes it from the standard chain (`AWS_REGION`,
    /// `~/.aws/config`), as the original's `aws configure` did.
    pub region: Option<String>,
    /// A named profile of `~/.aws/credentials` and `~/.aws/config`; `None` is the default profile.
    pub profile: Option<String>,
    /// A fixed access key (with `secret_access_key`), such as the one a FaceReko Rekognition-compatible
    /// endpoint is set up with. `None` uses the standard credentials chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// The whole time one AWS call may take, retries included, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts per call (1 = no retry); each attempt gets `timeout_ms / max_attempts`.
    pub max_attempts: u32,
    /// The Rekognition collection faces are indexed into and searched in.
    pub collection: String,
    /// Rekognition's `FaceMatchThreshold`: the similarity (0–100) a match needs.
    pub face_match_threshold: f32,
    /// Rekognition's `MaxFaces` for `SearchFacesByImage`: how many matches to ask for.
    pub max_faces: u32,
    /// Another Rekognition endpoint than AWS's, such as a FaceReko door's compatible endpoint
    /// (`http://10.0.0.5:8085`).
    pub rekognition_endpoint_url: Option<String>,
    /// Publish each granted attempt's e-mail text to this SNS topic (the original's `aws_sns_topic_arn`).
    pub sns_topic_arn: Option<String>,
    /// Another SNS endpoint than AWS's.
    pub sns_endpoint_url: Option<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            profile: None,
            access_key_id: None,
            secret_access_key: None,
            timeout_ms: 3000,
            max_attempts: 2,
            collection: "home".into(),
            face_match_threshold: DEFAULT_FACE_MATCH_THRESHOLD,
            max_faces: 1,
            rekognition_endpoint_url: None,
            sns_topic_arn: None,
            sns_endpoint_url: None,
        }
    }
}

/// Rekognition's rule for collection ids (and FaceReko's, so an id is also a safe file name).
pub fn valid_collection_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Whether `url`'s host is this machine: `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, _)) => h,
            None => return false,
        },
        None => host_port.split(':').next().unwrap_or(""),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl AwsConfig {
    /// Checks every value once, naming the bad key.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::Config {
                key: format!("aws.{key}"),
                reason,
            })
        };
        if !(100..=60_000).contains(&self.timeout_ms) {
            return bad(
                "timeout_ms",
                format!("= {} must be from 100 to 60000", self.timeout_ms),
            );
        }
        if !(1..=5).contains(&self.max_attempts) {
            return bad(
                "max_attempts",
                format!("= {} must be from 1 to 5", self.max_attempts),
            );
        }
        if !valid_collection_id(&self.collection) {
            return bad(
                "collection",
                format!(
                    "= {:?} must be 1–255 letters, digits, `_`, `.` or `-`",
                    self.collection
                ),
            );
        }
        if !(self.face_match_threshold.is_finite()
            && (0.0..=100.0).contains(&self.face_match_threshold))
        {
            return bad(
                "face_match_threshold",
                format!(
                    "= {} must be a similarity from 0 to 100",
                    self.face_match_threshold
                ),
            );
        }
        if !(1..=4096).contains(&self.max_faces) {
            return bad(
                "max_faces",
                format!("= {} must be from 1 to 4096", self.max_faces),
            );
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return bad(
                "access_key_id",
                "and `aws.secret_access_key` must be set together".into(),
            );
        }
        for (key, url) in [
            ("rekognition_endpoint_url", &self.rekognition_endpoint_url),
            ("sns_endpoint_url", &self.sns_endpoint_url),
        ] {
            if let Some(u) = url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return bad(key, format!("= {u:?} must be an http:// or https:// URL"));
                }
            }
        }
        // The door opens on what Rekognition answers: over plain HTTP anyone on the path could answer
        // "that is the card owner". Only the same machine is trusted without TLS.
        if let Some(u) = &self.rekognition_endpoint_url {
            if u.starts_with("http://") && !is_loopback_url(u) {
                return bad(
                    "rekognition_endpoint_url",
                    format!(
                        "= {u:?}: plain http:// is refused except to this machine (127.0.0.1, \
                         [::1], localhost), since whoever answers decides who gets in; use \
                         https:// (e.g. a TLS reverse proxy in front of the other door's endpoint)"
                    ),
                );
            }
        }
        if let Some(arn) = &self.sns_topic_arn {
            // arn:aws:sns:<region>:<account>:<topic>
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
                return bad(
                    "sns_topic_arn",
                    format!("= {arn:?} is not an SNS topic ARN (arn:aws:sns:region:account:topic)"),
                );
            }
        }
        Ok(())
    }

    /// The region of the SNS topic ARN, used when no region is configured.
    pub fn sns_region(&self) -> Option<&str> {
        self.sns_topic_arn
            .as_deref()
            .and_then(|arn| arn.split(':').nth(3))
            .filter(|r| !r.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals_and_valid() {
        let c = AwsConfig::default();
        c.validate().unwrap();
        assert_eq!(c.collection, "home");
        assert_eq!(c.face_match_threshold, 85.0);
        assert_eq!(c.max_faces, 1);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(AwsConfig, &str)> = vec![
            (
                AwsConfig {
                    collection: "../etc".into(),
                    ..Default::default()
                },
                "aws.collection",
            ),
            (
                AwsConfig {
                    face_match_threshold: 101.0,
                    ..Default::default()
                },
                "aws.face_match_threshold",
            ),
            (
                AwsConfig {
                    timeout_ms: 0,
                    ..Default::default()
                },
                "aws.timeout_ms",
            ),
            (
                AwsConfig {
                    access_key_id: Some("AKID".into()),
                    ..Default::default()
                },
                "aws.access_key_id",
            ),
            (
                AwsConfig {
                    sns_topic_arn: Some("my-topic".into()),
                    ..Default::default()
                },
                "aws.sns_topic_arn",
            ),
            (
                AwsConfig {
                    rekognition_endpoint_url: Some("localhost:8085".into()),
                    ..Default::default()
                },
                "aws.rekognition_endpoint_url",
            ),
        ];
        for (c, key) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e} should name {key}");
        }
    }

    /// Regression: a Rekognition endpoint over plain http:// on the network was trusted as is, so
    /// anyone on the path could answer "that is the card owner".
    #[test]
    fn plain_http_to_rekognition_is_refused_except_to_loopback() {
        for url in [
            "http://10.0.0.5:8085",
            "http://door2.lan:8085",
            "http://127.0.0.1.evil.example:8085",
            "http://localhost@10.0.0.5:8085",
            "http://[::ffff:10.0.0.5]:8085",
        ] {
            let c = AwsConfig {
                rekognition_endpoint_url: Some(url.into()),
                ..Default::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains("aws.rekognition_endpoint_url") && e.contains("https://"),
                "{url}: {e}"
            );
        }
        for url in [
            "http://127.0.0.1:8085",
            "http://127.0.0.2:8085/",
            "http://[::1]:8085",
            "http://localhost:8085",
            "http://LOCALHOST.",
            "https://10.0.0.5:8443",
            "https://rekognition.eu-west-1.amazonaws.com",
        ] {
            let c = AwsConfig {
                rekognition_endpoint_url: Some(url.into()),
                ..Default::default()
            };
            c.validate().unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn collection_ids_that_could_escape_a_folder_are_refused() {
        for id in ["", ".", "..", "a/b", "a b", &"x".repeat(256)] {
            assert!(!valid_collection_id(id), "{id:?}");
        }
        for id in ["home", "Home_2.v-1", "..x"] {
            assert!(valid_collection_id(id), "{id:?}");
        }
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let c = AwsConfig {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some(Secret::new("wJalrXUtnFEMI")),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE") && !shown.contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn the_sns_region_comes_from_the_topic_arn() {
        let c = AwsConfig {
            sns_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:FaceReko".into()),
            ..Default::default()
        };
        c.validate().unwrap();
        assert_eq!(c.sns_region(), Some("eu-west-1"));
    }
}
