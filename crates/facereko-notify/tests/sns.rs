//! The SNS sink against a hand-written SNS stand-in on loopback: what it publishes, that the request is
//! SigV4-signed with the configured key, and which failures are retried or dropped. No test reaches AWS.
#![cfg(feature = "aws")]

use std::sync::{Arc, Mutex};

use facereko_aws::{sigv4, AwsConfig};
use facereko_domain::{Attempt, Event, Outcome, StageTimings};
use facereko_notify::sns::SnsNotifier;
use facereko_notify::{DeliveryError, Notifier, OutboxEntry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug)]
struct Seen {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Answers each request with the next `(status, body)` and records what came in.
async fn stand_in(replies: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        let mut replies = replies.into_iter();
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, length) = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    break (i + 4, len);
                }
            };
            if head_end == 0 {
                continue;
            }
            while buf.len() < head_end + length {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end - 4]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
                .collect();
            s.lock().unwrap().push(Seen {
                headers,
                body: buf[head_end..head_end + length].to_vec(),
            });
            let (status, body) = replies.next().unwrap_or((500, String::new()));
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (url, seen)
}

const OK: &str = r#"<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>5b4c0a3e-0000-4000-8000-000000000001</MessageId></PublishResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></PublishResponse>"#;

fn error(code: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} says no</Message></Error><RequestId>r2</RequestId></ErrorResponse>"#
    )
}

fn config(url: &str) -> AwsConfig {
    AwsConfig {
        access_key_id: Some("AKIAFACEREKOSNS01".into()),
        secret_access_key: Some(facereko_domain::Secret::new(
            "sns-test-secret-sns-test-secret-00",
        )),
        sns_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:FaceReko".into()),
        sns_endpoint_url: Some(url.into()),
        timeout_ms: 2000,
        max_attempts: 1,
        ..Default::default()
    }
}

fn entry(outcome: Outcome) -> OutboxEntry {
    OutboxEntry {
        id: 7,
        time: chrono::Utc::now(),
        door_id: "front".into(),
        event: Event::Attempt {
            door_id: "front".into(),
            attempt: Attempt {
                id: 7,
                time: chrono::Utc::now(),
                door_id: "front".into(),
                card_uid: None,
                person_id: None,
                person: Some("Ada".into()),
                outcome,
                similarity: Some(97.5),
                distance: None,
                confidence: Some(99.25),
                photo: None,
                timings: StageTimings::default(),
                detail: None,
            },
        },
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url_decode_pairs(std::str::from_utf8(body).unwrap())
}

fn url_decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_granted_attempt_is_published_with_the_originals_text_and_a_valid_signature() {
    let (url, seen) = stand_in(vec![(200, OK.into())]).await;
    let sns = SnsNotifier::new(&config(&url)).await.unwrap();
    assert_eq!(sns.name(), "sns");
    sns.deliver(&entry(Outcome::Granted)).await.unwrap();
    // Denials and other events are not sent at all.
    sns.deliver(&entry(Outcome::FaceMismatch)).await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let f = form(&seen[0].body);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("Action"), Some("Publish"));
    assert_eq!(
        get("TopicArn"),
        Some("arn:aws:sns:eu-west-1:123456789012:FaceReko")
    );
    assert_eq!(
        get("Message"),
        Some("Identity matched Ada with 97.5 similarity and 99.25 confidence")
    );
    assert_eq!(get("Subject"), Some("FaceReko: access granted at front"));
    // Signed for SNS in the topic's region with the configured key.
    let key = sigv4::Key {
        access_key_id: "AKIAFACEREKOSNS01".into(),
        secret_access_key: "sns-test-secret-sns-test-secret-00".into(),
    };
    let auth = &seen[0]
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1;
    assert!(auth.contains("/eu-west-1/sns/aws4_request"), "{auth}");
    sigv4::verify(
        &sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &seen[0].headers,
            body: &seen[0].body,
        },
        &[key],
        "sns",
        chrono::Utc::now(),
    )
    .unwrap();
}

#[tokio::test]
async fn throttling_and_outages_are_retried_and_an_invalid_message_is_dropped() {
    let (url, _) = stand_in(vec![
        (400, error("Throttling")),
        (403, error("AuthorizationError")),
        (400, error("InvalidParameter")),
    ])
    .await;
    let sns = SnsNotifier::new(&config(&url)).await.unwrap();
    let granted = entry(Outcome::Granted);
    assert!(matches!(
        sns.deliver(&granted).await,
        Err(DeliveryError::Transient(m)) if m.contains("Throttling")
    ));
    assert!(matches!(
        sns.deliver(&granted).await,
        Err(DeliveryError::Transient(m)) if m.contains("AuthorizationError")
    ));
    assert!(matches!(
        sns.deliver(&granted).await,
        Err(DeliveryError::Permanent(m)) if m.contains("InvalidParameter")
    ));

    // Nobody listening: transient, within the configured time.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sns = SnsNotifier::new(&config(&dead)).await.unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(
        sns.deliver(&granted).await,
        Err(DeliveryError::Transient(_))
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
