//! End to end: the control socket under malformed requests and clients that leave, and the file-reading
//! commands (`sim image`, `enrol --image`) under files that are not photos.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, facereko, ok, wait_attempts, Daemon};
use serde_json::Value;

/// Sends raw bytes on the daemon's control socket and returns its one-line reply.
fn raw_request(data: &Path, bytes: &[u8]) -> Value {
    let mut s = UnixStream::connect(data.join("control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes)
        .unwrap_or_else(|e| panic!("the daemon stopped reading the request: {e}"));
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no reply: {e}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply {line:?}: {e}"))
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

#[test]
fn a_control_request_over_8_kb_gets_a_reply_not_a_reset() {
    // Regression: a request over 8 KB reset the connection instead of answering it.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);
    // More than a socket buffer holds: the daemon must read it all to be heard.
    let mut long = br#"{"cmd":"image","path":""#.to_vec();
    long.extend(std::iter::repeat_n(b'a', 600_000));
    long.extend_from_slice(b"\"}\n");
    let reply = raw_request(data, &long);
    assert_eq!(reply["ok"], false, "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(message.contains("longer than 8192 bytes"), "{message}");
    let reply = raw_request(data, b"{\"cmd\":\"status\"}\n");
    assert_eq!(reply["ok"], true, "the daemon still answers: {reply}");
}

#[test]
fn a_control_request_that_is_not_utf8_gets_a_reply() {
    // Regression: a request that was not UTF-8 closed the connection without a reply.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let _daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);
    let reply = raw_request(data, b"{\"cmd\":\"status\xff\xfe\"}\n");
    assert_eq!(reply["ok"], false, "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(message.contains("not UTF-8"), "{message}");
    let reply = raw_request(data, b"{\"cmd\":\"launch\"}\n");
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("bad request"),
        "{reply}"
    );
    let reply = raw_request(data, b"{\"cmd\":\"status\"}\n");
    assert_eq!(reply["ok"], true, "the daemon still answers: {reply}");
}

#[test]
fn a_card_read_stopped_with_ctrl_c_leaves_no_wait_in_the_daemon() {
    // Regression: the daemon kept waiting for a card for an interrupted `card read`, and the next tap
    // went to that gone command instead of to the door.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(
        data,
        &["people", "add", "Ada Lovelace", "--card", "04:A2:2B:19"],
    );
    let daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);

    let mut reader = Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args(["card", "read", "--timeout", "120"])
        .env_remove("FACEREKO_CONFIG")
        .env("FACEREKO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(reader.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for a card") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "card read ended early"
        );
    }
    // Give the request time to reach the daemon, then Ctrl-C.
    std::thread::sleep(Duration::from_millis(700));
    let sent = Command::new("kill")
        .args(["-INT", &reader.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "card read ignored Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !daemon.log().contains("card read: the client left") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    // The next tap is the door's again.
    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    let attempts = wait_attempts(data, 1);
    assert_eq!(attempts[0]["outcome"], "granted", "{attempts:?}");
    daemon.wait_log("card read: the client left");
    daemon.stop();
}

#[test]
fn sim_image_refuses_a_device_or_a_named_pipe_and_the_door_keeps_working() {
    // Regression: `sim image /dev/zero` made every tap read until memory ran out, and a named pipe left
    // a blocked thread behind per tap.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let daemon = Daemon::start(&data, &["--simulate", "--mode", "card"]);

    let out = facereko(&data, &["sim", "image", "/dev/zero"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a regular file"), "{err}");

    let fifo = dir.path().join("door.jpg");
    mkfifo(&fifo);
    let out = facereko(&data, &["sim", "image", fifo.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("named pipe"), "{err}");

    // The daemon answers as before, and a photo that is a regular file is taken.
    let photo = dir.path().join("photo.jpg");
    std::fs::write(&photo, b"\xFF\xD8\xFF\xE0").unwrap();
    let said = ok(&data, &["sim", "image", photo.to_str().unwrap()]);
    assert!(said.contains("photo.jpg"), "{said}");
    daemon.stop();
}

#[test]
fn enrol_refuses_a_device_or_a_named_pipe_at_once() {
    // Regression: `enrol --image /dev/zero` read until memory ran out (its size check trusted the
    // file's length, 0), and a named pipe blocked it forever.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fifo = dir.path().join("ada.jpg");
    mkfifo(&fifo);
    for image in [Path::new("/dev/zero"), fifo.as_path()] {
        let mut child = Command::new(bin())
            .arg("--data-dir")
            .arg(&data)
            .args(["enrol", "--name", "Ada", "--image"])
            .arg(image)
            .env_remove("FACEREKO_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("enrol --image {} did not return", image.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a regular file"), "{err}");
    }
}
