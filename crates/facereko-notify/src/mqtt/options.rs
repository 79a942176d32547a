//! rumqttc's connection options from `[mqtt]`: client id, credentials, keep-alive, TLS (system roots or a
//! CA file, client certificates for AWS IoT Core) and the last will that marks the door offline.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use super::topics::Topics;
use crate::config::{BrokerUrl, MqttConfig};
use crate::payload::StateSnapshot;
use crate::{tls, Error, Result};

/// rumqttc options for `config`: client id, credentials, keep-alive, TLS and the last will.
pub fn options(config: &MqttConfig, door_id: &str) -> Result<MqttOptions> {
    let mut o = connection_options(config, &client_id(config, door_id))?;
    let topics = Topics::new(&config.topic_prefix, door_id);
    o.set_last_will(LastWill::new(
        topics.state,
        StateSnapshot::offline().to_json(),
        QoS::AtLeastOnce,
        true,
    ));
    Ok(o)
}

/// The door's MQTT client id: `mqtt.client_id`, else `facereko-<door>`.
pub(crate) fn client_id(config: &MqttConfig, door_id: &str) -> String {
    config
        .client_id
        .clone()
        .unwrap_or_else(|| format!("facereko-{door_id}"))
}

/// rumqttc options for a connection to the broker of `config` under `client_id`, without a last will.
pub(crate) fn connection_options(config: &MqttConfig, client_id: &str) -> Result<MqttOptions> {
    let Some(broker) = config.broker()? else {
        return Err(Error::Config {
            key: "mqtt.url".into(),
            reason: "MQTT is off (no url)".into(),
        });
    };
    let client_id = client_id.to_string();
    let BrokerUrl {
        tls: use_tls,
        host,
        port,
    } = broker;
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_keep_alive(Duration::from_secs(config.keep_alive_secs));
    o.set_clean_session(true);
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    if let Some(user) = &config.username {
        o.set_credentials(user.clone(), config.password.expose().to_string());
    }
    if use_tls {
        let roots = tls::roots("mqtt.ca_file", config.ca_file.as_deref())?;
        let client_auth = match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => Some((
                tls::load_certs("mqtt.client_cert", cert)?,
                tls::load_key("mqtt.client_key", key)?,
            )),
            _ => None,
        };
        let mutual = client_auth.is_some();
        let mut tls_config = tls::client_config(roots, client_auth)?;
        if port == 443 && mutual {
            // AWS IoT Core takes MQTT with client certificates on 443 only with this ALPN name.
            tls_config.alpn_protocols = vec![b"x-amzn-mqtt-ca".to_vec()];
        }
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config),
        )));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn options_carry_the_last_will_and_tls() {
        let config = MqttConfig {
            url: Some("mqtt://127.0.0.1:1883".into()),
            username: Some("door".into()),
            password: Secret::new("pw"),
            ..Default::default()
        };
        let o = options(&config, "front").unwrap();
        assert_eq!(o.client_id(), "facereko-front");
        let will = o.last_will().unwrap();
        assert_eq!(will.topic, "facereko/front/state");
        assert!(will.retain);
        assert_eq!(
            &will.message[..],
            br#"{"online":false,"armed":null,"door":null,"event_id":null,"time":null}"#
        );
        let missing_ca = MqttConfig {
            url: Some("mqtts://127.0.0.1".into()),
            ca_file: Some("/nonexistent/rootca.pem".into()),
            ..Default::default()
        };
        let err = options(&missing_ca, "front").unwrap_err().to_string();
        assert!(
            err.contains("mqtt.ca_file") && err.contains("rootca.pem"),
            "{err}"
        );
    }
}
