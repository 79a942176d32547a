//! The daemon's local control channel: a Unix socket in the data directory (mode 0600, so only the
//! daemon's own user can use it), one JSON request and one JSON reply per line.
//!
//! It is how `facereko sim tap`, `sim image`, `status`, `arm`/`disarm` and `card read` talk to a running
//! `facereko serve`; nothing listens on the network for it. Every request gets a reply, a malformed one
//! included (too long, not UTF-8, not JSON). A client waiting for a card (`next_card`) keeps its
//! connection open; when it closes it, the daemon stops waiting for it.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use facereko_domain::CardUid;
use facereko_door::DoorHandle;
use facereko_hardware::sim::{SimCamera, SimTapper};
use facereko_hardware::{Camera as _, CardTap};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub const SOCKET_NAME: &str = "control.sock";

/// Longest request line accepted (a path or a UID, never more).
const MAX_LINE: usize = 8 * 1024;

/// A longer line is read and dropped up to this much before the reply.
const MAX_DISCARD: usize = 1 << 20;

/// A client has this long to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Tap {
        uid: String,
    },
    Image {
        path: PathBuf,
    },
    Stream {
        path: PathBuf,
        fps: u32,
        looped: bool,
    },
    Status,
    Arm {
        armed: bool,
    },
    NextCard {
        timeout_ms: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Reply {
    fn ok(message: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            ok: true,
            message: message.into(),
            data,
        }
    }
    fn err(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
            data: serde_json::Value::Null,
        }
    }
}

/// What the control socket can reach in the daemon.
#[derive(Clone, Debug)]
pub struct Targets {
    pub door: DoorHandle,
    /// Present when the card reader is simulated.
    pub tapper: Option<SimTapper>,
    /// Present when the camera is simulated.
    pub camera: Option<SimCamera>,
    pub notifier: Option<facereko_notify::NotifierHandle>,
    /// This door's replica of the central database, on a site.
    pub replica: Option<std::sync::Arc<facereko_fleet::Replica>>,
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds the control socket. A socket left by a daemon that died is removed; one that answers belongs to
/// a running daemon, and starting a second one on the same data directory is refused.
pub async fn bind(data_dir: &Path) -> Result<UnixListener> {
    let path = socket_path(data_dir);
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            bail!(
                "another `facereko serve` is already running with data directory {}",
                data_dir.display()
            );
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing stale control socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket until the task is dropped.
pub async fn serve(listener: UnixListener, targets: Targets) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let targets = targets.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &targets).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

/// What the client sent before its first newline.
#[derive(Debug, PartialEq)]
enum Incoming {
    Line(Vec<u8>),
    /// Longer than [`MAX_LINE`]; read to its newline (at most [`MAX_DISCARD`]) and dropped.
    TooLong,
    /// The connection closed before anything was sent.
    Closed,
    /// No whole line within [`REQUEST_TIMEOUT`].
    TooSlow,
}

/// Reads one request line. A line over [`MAX_LINE`] is still read to its end, so that the reply reaches
/// the client: closing a Unix socket with unread data resets the connection, reply and all.
async fn read_request<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Incoming> {
    let mut line = Vec::new();
    let mut seen = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match seen {
                0 => Incoming::Closed,
                n if n > MAX_LINE => Incoming::TooLong,
                _ => Incoming::Line(line),
            });
        }
        let newline = buf.iter().position(|b| *b == b'\n');
        let part = newline.unwrap_or(buf.len());
        seen += part;
        if seen <= MAX_LINE {
            line.extend_from_slice(&buf[..part]);
        }
        r.consume(newline.map_or(part, |i| i + 1));
        if newline.is_some() {
            return Ok(if seen > MAX_LINE {
                Incoming::TooLong
            } else {
                Incoming::Line(line)
            });
        }
        if seen > MAX_DISCARD {
            return Ok(Incoming::TooLong);
        }
    }
}

/// Runs `work` while the client stays connected; `None` when the client's connection closes first (the
/// work is dropped, and with it whatever it was waiting for). Anything the client sends meanwhile is
/// ignored: a request is one line.
async fn while_connected<T>(
    work: impl Future<Output = T>,
    client: &mut (impl AsyncRead + Unpin),
) -> Option<T> {
    let gone = async {
        let mut scratch = [0u8; 512];
        while let Ok(n) = client.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        out = work => Some(out),
        () = gone => None,
    }
}

async fn handle(stream: UnixStream, targets: &Targets) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let incoming = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut read)).await {
        Ok(incoming) => incoming?,
        Err(_) => Incoming::TooSlow,
    };
    let reply = match incoming {
        Incoming::Closed => return Ok(()),
        Incoming::TooLong => Reply::err(format!(
            "bad request: longer than {MAX_LINE} bytes (one JSON object per line)"
        )),
        Incoming::TooSlow => Reply::err(format!(
            "bad request: no request line within {} s",
            REQUEST_TIMEOUT.as_secs()
        )),
        Incoming::Line(bytes) => match String::from_utf8(bytes) {
            Err(_) => Reply::err("bad request: not UTF-8 text (one JSON object per line)"),
            Ok(line) => match serde_json::from_str::<Request>(&line) {
                // A card wait lasts as long as its client: Ctrl-C on `card read` must not leave it
                // behind in the daemon.
                Ok(req @ Request::NextCard { .. }) => {
                    match while_connected(answer(req, targets), &mut read).await {
                        Some(reply) => reply,
                        None => {
                            tracing::info!("card read: the client left; its wait for a card ended");
                            return Ok(());
                        }
                    }
                }
                Ok(req) => answer(req, targets).await,
                Err(e) => Reply::err(format!("bad request: {e}")),
            },
        },
    };
    let mut out = serde_json::to_vec(&reply)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

async fn answer(req: Request, t: &Targets) -> Reply {
    match req {
        Request::Tap { uid } => {
            let uid: CardUid = match uid.parse() {
                Ok(u) => u,
                Err(e) => return Reply::err(e.to_string()),
            };
            match &t.tapper {
                None => Reply::err(
                    "this daemon uses a real card reader; `sim tap` needs `serve --simulate`",
                ),
                Some(tapper) => match tapper.tap(CardTap::new(uid.clone())) {
                    Ok(()) => Reply::ok(format!("card {uid} tapped"), serde_json::Value::Null),
                    Err(e) => Reply::err(e.to_string()),
                },
            }
        }
        Request::Image { path } => match &t.camera {
            None => {
                Reply::err("this daemon uses a real camera; `sim image` needs `serve --simulate`")
            }
            Some(cam) => match SimCamera::source_for(&path) {
                Ok(source) => {
                    cam.set_source(source);
                    Reply::ok(cam.describe(), serde_json::Value::Null)
                }
                Err(e) => Reply::err(e.to_string()),
            },
        },
        Request::Stream { path, fps, looped } => match &t.camera {
            None => {
                Reply::err("this daemon uses a real camera; `sim stream` needs `serve --simulate`")
            }
            Some(cam) => match SimCamera::stream_source(&path, fps, looped) {
                Ok(source) => {
                    cam.set_source(source);
                    Reply::ok(cam.describe(), serde_json::Value::Null)
                }
                Err(e) => Reply::err(e.to_string()),
            },
        },
        Request::Status => {
            let mut data = serde_json::to_value(t.door.status()).unwrap_or_default();
            if let Some(n) = &t.notifier {
                data["notify"] = serde_json::to_value(n.status().await).unwrap_or_default();
            }
            if let Some(r) = &t.replica {
                let st = r.status();
                data["replica"] = serde_json::to_value(&st).unwrap_or_default();
                data["replica"]["summary"] = st.summary(chrono::Utc::now()).into();
            }
            Reply::ok("", data)
        }
        Request::Arm { armed } => match t.door.arm(armed).await {
            Ok(()) => Reply::ok(
                if armed {
                    "system Active (armed)"
                } else {
                    "system Offline (disarmed)"
                },
                serde_json::Value::Null,
            ),
            Err(e) => Reply::err(e.to_string()),
        },
        Request::NextCard { timeout_ms } => {
            let timeout = Duration::from_millis(timeout_ms.min(600_000));
            match t.door.next_card(timeout).await {
                Ok(tap) => Reply::ok(
                    tap.uid.to_string(),
                    serde_json::json!({
                        "uid": tap.uid.to_string(),
                        "atqa": tap.atqa,
                        "sak": tap.sak,
                    }),
                ),
                Err(e) => Reply::err(e.to_string()),
            }
        }
    }
}

/// Sends one request to the daemon that owns `data_dir` and returns its reply (an `ok: false` reply is an
/// error with the daemon's message).
pub async fn request(data_dir: &Path, req: &Request) -> Result<Reply> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path).await.with_context(|| {
        format!(
            "no running daemon for data directory {} (start one with `facereko --data-dir {} serve --simulate`)",
            data_dir.display(),
            data_dir.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply: Reply =
        serde_json::from_str(&line).context("the daemon's reply was not understood")?;
    if !reply.ok {
        bail!("{}", reply.message);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(input: &[u8]) -> Vec<Incoming> {
        let mut r = BufReader::with_capacity(64, input);
        let mut out = Vec::new();
        loop {
            let i = read_request(&mut r).await.unwrap();
            let done = i == Incoming::Closed;
            out.push(i);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn a_long_line_is_read_to_its_end_and_the_next_one_still_parses() {
        let mut input = vec![b'x'; MAX_LINE + 1];
        input.extend_from_slice(b"\n{\"cmd\":\"status\"}\n");
        let got = read_all(&input).await;
        assert_eq!(
            got,
            [
                Incoming::TooLong,
                Incoming::Line(br#"{"cmd":"status"}"#.to_vec()),
                Incoming::Closed
            ]
        );
        let mut exact = vec![b'y'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(
            read_all(&exact).await[0],
            Incoming::Line(vec![b'y'; MAX_LINE])
        );
    }

    #[tokio::test]
    async fn a_wait_ends_when_its_client_leaves() {
        // Regression: a `card read` stopped with Ctrl-C left its wait for a card running in the daemon.
        let (client, server) = UnixStream::pair().unwrap();
        let (read, _write) = server.into_split();
        let mut read = BufReader::new(read);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let wait = async move {
            let _ = rx.await;
        };
        let run = tokio::spawn(async move { while_connected(wait, &mut read).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!tx.is_closed());
        drop(client);
        let outcome = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the wait outlived its client")
            .unwrap();
        assert_eq!(outcome, None);
        assert!(tx.is_closed(), "the waiting side was dropped");
    }

    #[tokio::test]
    async fn a_wait_that_ends_first_gives_its_answer() {
        let (_client, server) = UnixStream::pair().unwrap();
        let (read, _write) = server.into_split();
        let mut read = BufReader::new(read);
        assert_eq!(while_connected(async { 7 }, &mut read).await, Some(7));
    }
}
