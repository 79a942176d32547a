//! E-mail against a small SMTP server started by the test (plain with AUTH, STARTTLS and implicit TLS
//! with a test CA).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use facereko_domain::{Alarm, Event, Outcome};
use facereko_notify::{
    spawn_with, EmailConfig, MemoryOutbox, NotifierHandle, NotifyConfig, OutboxConfig, Secret,
    SmtpTls,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Clone, Debug, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
    tls: bool,
}

#[derive(Default)]
struct Seen {
    mails: Mutex<Vec<Mail>>,
    auth: Mutex<Vec<String>>,
    /// Answer this many MAIL FROM with 451 (greylisting, a full queue).
    refuse: AtomicUsize,
    mail_from_commands: AtomicUsize,
}

impl Seen {
    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Starttls,
    Implicit,
}

/// Starts the server; returns its port.
async fn smtp_server(mode: Mode, tls: Option<Arc<rustls::ServerConfig>>, seen: Arc<Seen>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let acceptor = tls.clone().map(TlsAcceptor::from);
            tokio::spawn(async move {
                if mode == Mode::Implicit {
                    let tls = acceptor.unwrap().accept(stream).await.unwrap();
                    session(tls, &seen, true, true, false).await;
                } else if let Some(stream) =
                    session(stream, &seen, true, false, mode == Mode::Starttls).await
                {
                    // After STARTTLS the client speaks first (EHLO again): no second greeting.
                    let tls = acceptor.unwrap().accept(stream).await.unwrap();
                    session(tls, &seen, false, true, false).await;
                }
            });
        }
    });
    port
}

/// One SMTP conversation; returns the stream when the client asked for STARTTLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    seen: &Seen,
    greet: bool,
    encrypted: bool,
    offer_starttls: bool,
) -> Option<S> {
    let mut io = BufReader::new(stream);
    let mut greeted = !greet;
    let mut mail = Mail {
        tls: encrypted,
        ..Default::default()
    };
    loop {
        if !greeted {
            io.get_mut().write_all(b"220 test ESMTP\r\n").await.unwrap();
            greeted = true;
        }
        let mut line = String::new();
        if io.read_line(&mut line).await.unwrap_or(0) == 0 {
            return None;
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut r = String::from("250-test\r\n");
            if offer_starttls && !encrypted {
                r.push_str("250-STARTTLS\r\n");
            }
            r.push_str("250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
            r
        } else if upper.starts_with("STARTTLS") {
            io.get_mut().write_all(b"220 go ahead\r\n").await.unwrap();
            return Some(io.into_inner());
        } else if upper.starts_with("AUTH PLAIN") {
            seen.auth
                .lock()
                .unwrap()
                .push(line.trim()["AUTH PLAIN".len()..].trim().to_string());
            "235 2.7.0 accepted\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            seen.mail_from_commands.fetch_add(1, Ordering::SeqCst);
            if seen
                .refuse
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                "451 4.3.0 try again later\r\n".into()
            } else {
                mail.from = line.trim()[10..].to_string();
                "250 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line.trim()[8..].to_string());
            "250 ok\r\n".into()
        } else if upper.starts_with("DATA") {
            io.get_mut().write_all(b"354 end with .\r\n").await.unwrap();
            let mut data = String::new();
            loop {
                let mut l = String::new();
                io.read_line(&mut l).await.unwrap();
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            mail.data = data;
            seen.mails.lock().unwrap().push(mail.clone());
            "250 2.0.0 queued\r\n".into()
        } else if upper.starts_with("QUIT") {
            io.get_mut().write_all(b"221 bye\r\n").await.unwrap();
            return None;
        } else {
            "250 ok\r\n".into()
        };
        io.get_mut().write_all(reply.as_bytes()).await.unwrap();
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn fast() -> OutboxConfig {
    OutboxConfig {
        retry_min_secs: 1,
        retry_max_secs: 2,
        poll_interval_ms: 50,
        ..Default::default()
    }
}

fn email(port: u16, tls: SmtpTls) -> EmailConfig {
    EmailConfig {
        host: Some("localhost".into()),
        port: Some(port),
        tls,
        username: Some("door@example.org".into()),
        password: Secret::new("smtp-password"),
        from: "FaceReko Front <door@example.org>".into(),
        to: vec![
            "Site Office <office@example.org>".into(),
            "guard@example.org".into(),
        ],
        timeout_secs: 5,
        ..Default::default()
    }
}

async fn until_mails(seen: &Seen, n: usize) -> Vec<Mail> {
    for _ in 0..400 {
        let m = seen.mails();
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {n} mails, got {:?}", seen.mails());
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
async fn a_granted_attempt_is_mailed_with_its_photo() {
    let seen = Arc::new(Seen::default());
    let port = smtp_server(Mode::Plain, None, seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let photo = b"\xFF\xD8\xFF\xE0 a tiny stand-in for a JPEG".to_vec();
    std::fs::create_dir_all(dir.path().join("2026")).unwrap();
    std::fs::write(dir.path().join("2026/ab12cd.jpg"), &photo).unwrap();
    let outbox = Arc::new(MemoryOutbox::new(dir.path()));
    let mut e = email(port, SmtpTls::None);
    e.attach_photo = true;
    let config = NotifyConfig {
        outbox: fast(),
        email: e,
        ..Default::default()
    };
    let handle = spawn_with(outbox, "front", &config, None, None)
        .await
        .unwrap();
    let id = handle
        .publish(&attempt("front", Outcome::Granted, Some("Ada Lovelace")))
        .await
        .unwrap();
    let mail = until_mails(&seen, 1).await.remove(0);
    assert_eq!(
        seen.auth.lock().unwrap()[0],
        base64(b"\0door@example.org\0smtp-password"),
        "AUTH PLAIN with the configured credentials"
    );
    assert_eq!(mail.from, "<door@example.org>");
    assert_eq!(mail.to, vec!["<office@example.org>", "<guard@example.org>"]);
    let d = &mail.data;
    assert!(
        d.contains("Subject: FaceReko: Ada Lovelace granted at front (similarity 97.5)"),
        "{d}"
    );
    assert!(d.contains("Who:      Ada Lovelace"), "{d}");
    assert!(
        !d.contains("Card:") && !d.contains("04:A2:2B:19"),
        "no card UID unless outbox.include_card_uid: {d}"
    );
    assert!(d.contains("Door:     front"), "{d}");
    assert!(d.contains("Outcome:  granted"), "{d}");
    assert!(d.contains("When:     "), "{d}");
    assert!(d.contains(&format!("Event id: {id}")), "{d}");
    assert!(
        d.contains(&format!("Message-ID: <facereko.front.{id}@example.org>")),
        "{d}"
    );
    assert!(d.contains("Content-Type: image/jpeg"), "{d}");
    assert!(d.contains("filename=\"photo.jpg\""), "{d}");
    assert!(d.contains(&base64(&photo)), "the photo is attached: {d}");
    handle.shutdown().await;
}

#[tokio::test]
async fn denials_are_not_mailed_by_default_but_alarms_are() {
    let seen = Arc::new(Seen::default());
    let port = smtp_server(Mode::Plain, None, seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = NotifyConfig {
        outbox: fast(),
        email: email(port, SmtpTls::None),
        ..Default::default()
    };
    let handle = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &config,
        None,
        None,
    )
    .await
    .unwrap();
    handle
        .publish(&attempt("front", Outcome::UnknownCard, None))
        .await
        .unwrap();
    handle
        .publish(&Event::Alarm {
            door_id: "front".into(),
            alarm: Alarm::ForcedOpen,
            time: chrono::Utc::now(),
        })
        .await
        .unwrap();
    until_settled(&handle).await;
    let mails = seen.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0]
        .data
        .contains("Subject: FaceReko: ALARM at front: forced open"));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_server_that_says_try_later_gets_the_mail_later() {
    let seen = Arc::new(Seen::default());
    seen.refuse.store(2, Ordering::SeqCst);
    let port = smtp_server(Mode::Plain, None, seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut e = email(port, SmtpTls::None);
    e.on_denied = true;
    let config = NotifyConfig {
        outbox: fast(),
        email: e,
        ..Default::default()
    };
    let handle = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &config,
        None,
        None,
    )
    .await
    .unwrap();
    handle
        .publish(&attempt(
            "front",
            Outcome::FaceMismatch,
            Some("Ada Lovelace"),
        ))
        .await
        .unwrap();
    for _ in 0..200 {
        if handle.status().await.sinks[0].last_error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = handle.status().await.sinks[0].last_error.clone();
    assert!(
        err.as_deref().unwrap_or("").contains("try again later"),
        "{err:?}"
    );
    let mails = until_mails(&seen, 1).await;
    assert!(mails[0].data.contains("denied (face mismatch)"));
    assert_eq!(seen.mail_from_commands.load(Ordering::SeqCst), 3);
    until_settled(&handle).await;
    assert_eq!(handle.status().await.sinks[0].last_error, None);
    handle.shutdown().await;
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    for (mode, tls) in [
        (Mode::Starttls, SmtpTls::Starttls),
        (Mode::Implicit, SmtpTls::Tls),
    ] {
        let seen = Arc::new(Seen::default());
        let port = smtp_server(mode, Some(server_tls(&pki)), seen.clone()).await;
        let mut e = email(port, tls);
        e.ca_file = Some(pki.ca.clone());
        let config = NotifyConfig {
            outbox: fast(),
            email: e,
            ..Default::default()
        };
        let handle = spawn_with(
            Arc::new(MemoryOutbox::new(dir.path())),
            "front",
            &config,
            None,
            None,
        )
        .await
        .unwrap();
        handle
            .publish(&attempt("front", Outcome::Granted, Some("Ada Lovelace")))
            .await
            .unwrap();
        for _ in 0..200 {
            if !seen.mails().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mails = seen.mails();
        assert_eq!(mails.len(), 1, "{tls:?}: {:?}", handle.status().await);
        assert!(mails[0].tls, "the mail went over TLS ({tls:?})");
        handle.shutdown().await;
    }
}

#[tokio::test]
async fn starttls_is_required_not_optional() {
    // A server that does not offer STARTTLS must not get the mail (nor the password) in clear text.
    let seen = Arc::new(Seen::default());
    let port = smtp_server(Mode::Plain, None, seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = NotifyConfig {
        outbox: fast(),
        email: email(port, SmtpTls::Starttls),
        ..Default::default()
    };
    let handle = spawn_with(
        Arc::new(MemoryOutbox::new(dir.path())),
        "front",
        &config,
        None,
        None,
    )
    .await
    .unwrap();
    handle
        .publish(&attempt("front", Outcome::Granted, Some("Ada Lovelace")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(seen.mails().is_empty());
    assert!(seen.auth.lock().unwrap().is_empty());
    let st = handle.status().await;
    assert_eq!(st.sinks[0].pending, Some(1));
    assert!(st.sinks[0].last_error.is_some());
    handle.shutdown().await;
}
