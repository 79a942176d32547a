//! The SNS sink (feature `aws`): publishes each granted attempt's text — the original's
//! `Identity matched <name> with <similarity> similarity and <confidence> confidence` — straight to
//! `aws.sns_topic_arn`, so the e-mail subscription the original reached through an AWS IoT rule needs
//! no rule any more. Other events are not sent.
//!
//! Failures are retried from the outbox like every sink's; only a message SNS refuses as invalid is
//! dropped, since retrying cannot change SNS's mind about it. Wrong credentials or a missing topic are
//! retried too: they are fixed in the config, and the events wait for that instead of being lost.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use facereko_aws::AwsConfig;

use crate::payload::legacy_message;
use crate::{DeliveryError, Error, Notifier, OutboxEntry, Result};

/// See the module note; its outbox cursor is `sns`.
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl fmt::Debug for SnsNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsNotifier")
            .field("topic_arn", &self.topic_arn)
            .finish_non_exhaustive()
    }
}

impl SnsNotifier {
    /// The SNS client for `aws.sns_topic_arn` (region from `aws.region`, else the ARN's).
    pub async fn new(aws: &AwsConfig) -> Result<Self> {
        aws.validate().map_err(|e| Error::Config {
            key: "aws".into(),
            reason: e.to_string(),
        })?;
        let topic_arn = aws.sns_topic_arn.clone().ok_or_else(|| Error::Config {
            key: "aws.sns_topic_arn".into(),
            reason: "is not set".into(),
        })?;
        let sdk = facereko_aws::load_with(aws, aws.sns_region()).await;
        let mut b = aws_sdk_sns::config::Builder::from(&sdk);
        if let Some(url) = &aws.sns_endpoint_url {
            b = b.endpoint_url(url);
        }
        Ok(Self {
            client: aws_sdk_sns::Client::from_conf(b.build()),
            topic_arn,
        })
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    fn name(&self) -> &str {
        "sns"
    }

    async fn deliver(&self, entry: &OutboxEntry) -> std::result::Result<(), DeliveryError> {
        let Some(("FaceReko/success", text)) = legacy_message(&entry.event) else {
            return Ok(());
        };
        let subject = format!("FaceReko: access granted at {}", entry.door_id);
        let sent = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject.chars().take(100).collect::<String>())
            .message(text)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => {
                let code = e.err().code().unwrap_or("Unknown").to_string();
                let message = format!("SNS {code}: {}", e.err().message().unwrap_or(""));
                if matches!(code.as_str(), "InvalidParameter" | "InvalidParameterValue") {
                    Err(DeliveryError::Permanent(message))
                } else {
                    Err(DeliveryError::Transient(message))
                }
            }
            Err(other) => Err(DeliveryError::Transient(format!(
                "SNS unreachable: {}",
                aws_sdk_sns::error::DisplayErrorContext(&other)
            ))),
        }
    }
}
