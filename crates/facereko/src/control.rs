//! The daemon's local control channel: a Unix socket in the data directory (mode 0600, so only the
//! daemon's own user can use it), one JSON request and one JSON reply per line.
//!
//! It is how `facereko sim tap`, `sim image`, `status`, `arm`/`disarm` and `card read` talk to a running
//! `facereko serve`; nothing listens on the network for it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use facereko_domain::CardUid;
use facereko_door::DoorHandle;
use facereko_hardware::sim::{SimCamera, SimTapper};
use facereko_hardware::{Camera as _, CardTap};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub const SOCKET_NAME: &str = "control.sock";

/// Longest request line accepted (a path or a UID, never more).
const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Tap { uid: String },
    Image { path: PathBuf },
    Status,
    Arm { armed: bool },
    NextCard { timeout_ms: u64 },
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

async fn handle(stream: UnixStream, targets: &Targets) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_LINE as u64 + 1));
    let mut line = String::new();
    lines.read_line(&mut line).await?;
    let reply = if line.len() > MAX_LINE {
        Reply::err("request too long")
    } else {
        match serde_json::from_str::<Request>(&line) {
            Ok(req) => answer(req, targets).await,
            Err(e) => Reply::err(format!("bad request: {e}")),
        }
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
        Request::Status => {
            let mut data = serde_json::to_value(t.door.status()).unwrap_or_default();
            if let Some(n) = &t.notifier {
                data["notify"] = serde_json::to_value(n.status().await).unwrap_or_default();
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
