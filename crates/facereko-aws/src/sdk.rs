//! The AWS SDK configuration built from `[aws]`.

use std::time::Duration;

use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
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

/// The SDK configuration: one HTTPS client (rustls with *ring*), bounded timeouts and retries, the
/// configured region (else the environment's, the profile's, then `region_fallback`) and the configured
/// key (else the standard credentials chain: environment, `~/.aws`, web identity, container, instance).
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
    // Region: configured, else `AWS_REGION`/`AWS_DEFAULT_REGION`, else the profile's, else the fallback.
    // Not the SDK's default chain: that also asks the EC2 instance metadata service, a network call a
    // door (never an EC2 instance) should not make at start.
    let mut profile_region = ProfileFileRegionProvider::builder();
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
        profile_region = profile_region.profile_name(profile);
    }
    match &config.region {
        Some(region) => loader = loader.region(Region::new(region.clone())),
        None => {
            let mut chain =
                RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                    .or_else(profile_region.build());
            if let Some(fallback) = region_fallback {
                chain = chain.or_else(Region::new(fallback.to_string()));
            }
            loader = loader.region(chain);
        }
    }
    if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            id,
            secret.expose(),
            None,
            None,
            "facereko-config",
        ));
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_configured_region_wins_and_the_fallback_comes_last() {
        let configured = AwsConfig {
            region: Some("eu-west-1".into()),
            ..AwsConfig::default()
        };
        let sdk = load_with(&configured, Some("us-east-1")).await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));

        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            let unset = AwsConfig {
                profile: Some("facereko-no-such-profile".into()),
                ..AwsConfig::default()
            };
            let sdk = load_with(&unset, Some("us-east-1")).await;
            assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-east-1"));
            assert_eq!(load_with(&unset, None).await.region(), None);
        }
    }

    #[tokio::test]
    async fn a_configured_key_is_used_as_is() {
        use aws_credential_types::provider::ProvideCredentials;
        let c = AwsConfig {
            region: Some("eu-west-1".into()),
            access_key_id: Some("AKIAFACEREKO0000001".into()),
            secret_access_key: Some(facereko_domain::Secret::new(
                "secret-secret-secret-secret-0000",
            )),
            ..AwsConfig::default()
        };
        let sdk = load(&c).await;
        let creds = sdk
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(creds.access_key_id(), "AKIAFACEREKO0000001");
        assert_eq!(
            sdk.timeout_config().unwrap().operation_timeout(),
            Some(Duration::from_secs(3))
        );
    }
}
