//! The AWS SDK configuration built from `[aws]`.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
pub use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_types::region::Region;
use aws_types::SdkConfig;

use crate::AwsConfig;

/// [`load_with`] with no region fallback.
pub async fn load(config: &AwsConfig) -> SdkConfig {
    load_with(config, None).await
}

/// The SDK configuration: one HTTPS client (rustls with *ring*), bounded timeouts and retries,
/// the configured region (else `region_fallback`, else the standard chain) and the configured key
/// (else the standard credentials chain: environment, `~/.aws`, web identity, container, instance).
pub async fn load_with(config: &AwsConfig, region_fallback: Option<&str>) -> SdkConfig {
    let attempts = config.max_attempts.max(1);
    let total = Duration::from_millis(config.timeout_ms);
    let per_attempt = total / attempts;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(total)
                .operation_attempt_timeout(per_attempt)
                .connect_timeout(per_attempt.min(Duration::from_secs(2)))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_millis(500)),
        );
    if let Some(region) = config.region.as_deref().or(region_fallback) {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            id,
            secret,
            None,
            None,
            "facereko-config",
        ));
    }
    loader.load().await
}
