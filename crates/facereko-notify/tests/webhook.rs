//! Webhooks against a receiver started by the test, which checks the HMAC-SHA256 signature itself.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use facereko_domain::{Alarm, Event, Outcome};
use facereko_notify::{
    spawn_with, EventKind, MemoryOutbox, NotifierHandle, NotifyConfig, OutboxConfig, Secret,
    WebhookConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const SECRET: &str = "webhook-signing-secret";

#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The receiver's own check, written from the documented scheme (not with the crate's helper).
    fn signature_ok(&self) -> bool {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        let expected: String = ring::hmac::sign(&key, &self.body)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.header("X-FaceReko-Signature-256") == Some(&format!("sha256={expected}"))
    }
}

#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<Request>>,
    /// Status codes for the next requests; 200 once empty.
    answers: Mutex<VecDeque<u16>>,
}

impl Receiver {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Ids of the events the receiver accepted (answered 2xx), in order.
    fn accepted(&self) -> Vec<i64> {
        self.requests()
            .iter()
            .filter(|r| r.answered == 200)
            .map(|r| r.json()["event_id"].as_i64().unwrap())
            .collect()
    }
}

async fn receiver(r: Arc<Receiver>) -> u16 {
    receiver_with(r, None).await
}

/// The receiver, over TLS when `tls` is given.
async fn receiver_with(r: Arc<Receiver>, tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let r = r.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve(stream, &r).await;
                        }
                    }
                    None => serve(stream, &r).await,
                }
            });
        }
    });
    port
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, r: &Receiver) {
    let mut io = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            io.read_line(&mut h).await.unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; len];
        io.read_exact(&mut body).await.unwrap();
        let answered = r.answers.lock().unwrap().pop_front().unwrap_or(200);
        r.requests.lock().unwrap().push(Request {
            path,
            headers,
            body,
            answered,
        });
        let reply = format!("HTTP/1.1 {answered} X\r\ncontent-length: 0\r\n\r\n");
        io.get_mut().write_all(reply.as_bytes()).await.unwrap();
        io.get_mut().flush().await.unwrap();
    }
}

fn config(port: u16, events: Vec<EventKind>) -> NotifyConfig {
    NotifyConfig {
        outbox: OutboxConfig {
            retry_min_secs: 1,
            retry_max_secs: 1,
            poll_interval_ms: 50,
            ..Default::default()
        },
        webhook: vec![WebhookConfig {
            name: Some("office".into()),
            url: format!("http://127.0.0.1:{port}/hooks/facereko"),
            secret: Secret::new(SECRET),
            events,
            timeout_secs: 5,
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn until_settled(handle: &NotifierHandle) {
    for _ in 0..400 {
        if handle.status().await.sinks[0].pending == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not settled: {:?}", handle.status().await);
}

#[tokio::test]
async fn the_receiver_verifies_the_signature_of_each_event() {
    let r = Arc::new(Receiver::default());
    let port = receiver(r.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &config(port, EventKind::ALL.to_vec()),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(handle.status().await.sinks[0].name, "webhook:office");
    let id = handle
        .publish(&attempt("front", Outcome::Granted, Some("Ada Lovelace")))
        .await
        .unwrap();
    until_settled(&handle).await;
    let req = r.requests().remove(0);
    assert_eq!(req.path, "/hooks/facereko");
    assert!(
        req.signature_ok(),
        "signature: {:?}",
        req.header("X-FaceReko-Signature-256")
    );
    assert_eq!(req.header("X-FaceReko-Event"), Some("attempt"));
    assert_eq!(
        req.header("X-FaceReko-Event-Id"),
        Some(id.to_string().as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    let v = req.json();
    assert_eq!(v["event_id"], id);
    assert_eq!(v["person"], "Ada Lovelace");
    assert_eq!(v["outcome"], "granted");
    assert!(
        v.get("card_uid").is_none() && !req.body.windows(8).any(|w| w == b"04:A2:2B"),
        "no card UID unless outbox.include_card_uid: {v}"
    );

    // A body changed in transit no longer matches its signature.
    let mut tampered = req.clone();
    tampered.body = req
        .body
        .iter()
        .map(|&b| if b == b'A' { b'E' } else { b })
        .collect();
    assert!(!tampered.signature_ok());
    handle.shutdown().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_event_later_in_order() {
    let r = Arc::new(Receiver::default());
    r.answers.lock().unwrap().extend([503, 503, 502]);
    let port = receiver(r.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &config(port, EventKind::ALL.to_vec()),
        None,
        None,
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for outcome in [Outcome::Granted, Outcome::NoFace, Outcome::CardDisabled] {
        ids.push(
            handle
                .publish(&attempt("front", outcome, Some("Ada")))
                .await
                .unwrap(),
        );
    }
    for _ in 0..200 {
        if handle.status().await.sinks[0].last_error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = handle.status().await.sinks[0].last_error.clone();
    assert!(err.as_deref().unwrap_or("").contains("503"), "{err:?}");
    until_settled(&handle).await;
    assert_eq!(r.accepted(), ids);
    assert!(r.requests().iter().all(Request::signature_ok));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_rejected_payload_is_skipped_and_only_chosen_events_are_sent() {
    let r = Arc::new(Receiver::default());
    r.answers.lock().unwrap().push_back(422);
    let port = receiver(r.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &config(port, vec![EventKind::Alarm]),
        None,
        None,
    )
    .await
    .unwrap();
    let alarm = |a| Event::Alarm {
        door_id: "front".into(),
        alarm: a,
        time: chrono::Utc::now(),
    };
    let refused = handle.publish(&alarm(Alarm::HeldOpen)).await.unwrap();
    handle
        .publish(&attempt("front", Outcome::Granted, Some("Ada")))
        .await
        .unwrap();
    let second = handle.publish(&alarm(Alarm::ForcedOpen)).await.unwrap();
    until_settled(&handle).await;
    let ids: Vec<i64> = r
        .requests()
        .iter()
        .map(|q| q.json()["event_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![refused, second],
        "attempts are not sent to an alarm-only hook"
    );
    let st = handle.status().await;
    assert_eq!(st.sinks[0].dropped, 1);
    assert_eq!(
        st.sinks[0].delivered, 2,
        "the attempt counts as done for this hook"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn https_receivers_are_checked_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let r = Arc::new(Receiver::default());
    let port = receiver_with(r.clone(), Some(server_tls(&pki))).await;
    let mut c = config(port, EventKind::ALL.to_vec());
    c.webhook[0].url = format!("https://localhost:{port}/hooks/facereko");
    c.webhook[0].ca_file = Some(pki.ca.clone());
    let handle = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &c,
        None,
        None,
    )
    .await
    .unwrap();
    let id = handle
        .publish(&attempt("front", Outcome::Granted, Some("Ada")))
        .await
        .unwrap();
    until_settled(&handle).await;
    assert_eq!(r.accepted(), vec![id]);
    assert!(r.requests()[0].signature_ok());
    handle.shutdown().await;

    // Without the private CA the system roots do not know the receiver: nothing is sent.
    let r2 = Arc::new(Receiver::default());
    let port = receiver_with(r2.clone(), Some(server_tls(&pki))).await;
    let mut c = config(port, EventKind::ALL.to_vec());
    c.webhook[0].url = format!("https://localhost:{port}/hooks/facereko");
    let Ok(handle) = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &c,
        None,
        None,
    )
    .await
    else {
        return; // no system CA store on this machine: refusing to start is just as safe
    };
    handle
        .publish(&attempt("front", Outcome::Granted, Some("Ada")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(r2.requests().is_empty());
    let st = handle.status().await;
    assert_eq!(st.sinks[0].pending, Some(1));
    assert!(st.sinks[0].last_error.is_some());
    handle.shutdown().await;
}
