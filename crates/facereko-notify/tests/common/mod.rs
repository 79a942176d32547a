//! Fixtures shared by the integration tests: sample events, free ports, a Mosquitto child process under
//! the test's control, and an MQTT subscriber that collects what arrives.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use facereko_domain::{Attempt, CardUid, Event, Outcome, PersonId, StageTimings};
use rumqttc::{AsyncClient, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub fn attempt(door: &str, outcome: Outcome, person: Option<&str>) -> Event {
    Event::Attempt {
        door_id: door.into(),
        attempt: Attempt {
            id: 17,
            time: Utc::now(),
            door_id: door.into(),
            card_uid: Some("04:A2:2B:19".parse::<CardUid>().unwrap()),
            person_id: person.map(|_| PersonId(7)),
            person: person.map(str::to_string),
            outcome,
            similarity: person.map(|_| 97.5),
            distance: None,
            confidence: person.map(|_| 99.25),
            photo: Some("2026/ab12cd.jpg".into()),
            timings: StageTimings::default(),
            detail: None,
        },
    }
}

/// A door id no other test (or earlier run on the shared broker) uses.
pub fn unique_door(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shared broker of `.ci/run`.
pub fn mqtt_url() -> String {
    std::env::var("FACEREKO_TEST_MQTT_URL").unwrap_or_else(|_| {
        panic!("FACEREKO_TEST_MQTT_URL is not set (e.g. mqtt://127.0.0.1:1883; .ci/run sets it)")
    })
}

pub fn host_port(url: &str) -> (String, u16) {
    let b = facereko_notify::config::BrokerUrl::parse(url).unwrap();
    (b.host, b.port)
}

fn mosquitto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("FACEREKO_TEST_MOSQUITTO") {
        return p.into();
    }
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}

/// A Mosquitto started by the test on its own port, killed on drop.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
}

impl Mosquitto {
    /// Writes `dir/mosquitto.conf` (listener on 127.0.0.1:`port`, anonymous allowed, plus `extra`) and
    /// starts the broker.
    pub fn start(dir: &Path, port: u16, extra: &str) -> Self {
        let conf = dir.join("mosquitto.conf");
        // Started as root, Mosquitto would drop to the `mosquitto` user, who cannot read the test's files.
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}\n"
            ),
        )
        .unwrap();
        let mut m = Self {
            child: None,
            port,
            conf,
            log: dir.join("mosquitto.log"),
        };
        m.restart();
        m
    }

    /// Starts the broker again on the same port and config.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start mosquitto ({e}); install the mosquitto package")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "mosquitto exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (SIGKILL: like a crash or a pulled cable, no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone, Debug)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {:?}",
                self.topic,
                String::from_utf8_lossy(&self.payload)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).unwrap()
    }
}

/// An MQTT client that subscribes (again after every reconnect) and collects every message.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<Received>,
    subscribed: watch::Receiver<u32>,
    task: JoinHandle<()>,
    pub client: AsyncClient,
}

impl Subscriber {
    pub async fn connect(mut options: MqttOptions, topics: &[&str]) -> Self {
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (sub_tx, subscribed) = watch::channel(0u32);
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let c = client.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                        for t in &topics {
                            c.subscribe(t.clone(), QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(rumqttc::Event::Incoming(Packet::SubAck(_))) => {
                        sub_tx.send_modify(|n| *n += 1);
                    }
                    Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let mut s = Self {
            rx,
            subscribed,
            task,
            client,
        };
        s.wait_subscribed(1).await;
        s
    }

    /// Waits until `n` SUBACKs arrived in all (one per topic and connection).
    pub async fn wait_subscribed(&mut self, n: u32) {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.subscribed.wait_for(|c| *c >= n),
        )
        .await
        .expect("the subscriber did not get its SUBACK")
        .unwrap();
    }

    pub fn subacks(&self) -> u32 {
        *self.subscribed.borrow()
    }

    /// The next message, if one arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message on `topic`, skipping others; panics after `within`.
    pub async fn next_on(&mut self, topic: &str, within: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(m) if m.topic == topic => return m,
                Some(_) => continue,
                None => panic!("nothing arrived on {topic} within {within:?}"),
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A test CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files
/// named like AWS IoT Core's downloads.
pub struct TestPki {
    pub ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
}

pub fn make_pki(dir: &std::path::Path) -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "FaceReko test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "facereko-front");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();

    let pki = TestPki {
        ca: dir.join("rootca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("certificate.pem.crt"),
        client_key: dir.join("private.pem.key"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.server_cert, server_cert.pem()).unwrap();
    std::fs::write(&pki.server_key, server_key.serialize_pem()).unwrap();
    std::fs::write(&pki.client_cert, client_cert.pem()).unwrap();
    std::fs::write(&pki.client_key, client_key.serialize_pem()).unwrap();
    pki
}

/// A rustls server configuration with the test server certificate (for test SMTP/HTTPS servers).
pub fn server_tls(pki: &TestPki) -> std::sync::Arc<rustls::ServerConfig> {
    let certs = facereko_notify::tls::load_certs("cert", &pki.server_cert).unwrap();
    let key = facereko_notify::tls::load_key("key", &pki.server_key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(facereko_notify::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    std::sync::Arc::new(config)
}
