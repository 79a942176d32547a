//! Cameras that are programs: `rpicam-still` (or the older `libcamera-still`) per photo, a kept-warm
//! `rpicam-vid --codec mjpeg` whose latest frame a tap takes without any camera start-up, and a `command`
//! camera that runs whatever program the installer configured and reads a JPEG from its standard output
//! (a USB webcam through `fswebcam -q -r 1280x720 --jpeg 90 -`, a network camera through `curl -s URL`).
//!
//! Every capture is bounded by a timeout and every failure says which program did what (exit status, the
//! tail of its stderr, what it printed instead of a JPEG), because a door that waits for a camera forever is
//! a door that neither opens nor logs. USB webcams are also read natively, kept streaming through V4L2
//! (`backend = "v4l2"`, Linux only): see [`crate::v4l2`].

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use facereko_domain::{ImageFormat, Photo};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::{Camera, Error, Result};

/// Which camera to use on real hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CameraBackend {
    /// `rpicam-vid --codec mjpeg` kept running; a capture takes the next frame (no start-up per tap).
    RpicamVid,
    /// `rpicam-still` (or `libcamera-still`) started per capture: slower, but no process in between.
    RpicamStill,
    /// `command`: any program that prints one JPEG (or PNG) on its standard output.
    Command,
    /// `v4l2`: a USB webcam (a V4L2 device that offers MJPEG) kept streaming by this program; a capture
    /// takes the next whole frame. Linux only.
    V4l2,
}

/// `[hardware.camera]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    pub backend: CameraBackend,
    /// The frame size; `v4l2` takes the nearest size the webcam offers when it does not offer this one.
    pub width: u32,
    pub height: u32,
    /// Frames per second of the kept-warm stream (`rpicam-vid`, `v4l2`).
    pub framerate: u32,
    /// The longest one capture may take, camera start-up included.
    pub timeout_ms: u64,
    /// For `backend = "v4l2"`: the video device, e.g. `/dev/video0` or a `/dev/v4l/by-id/…` name.
    pub device: PathBuf,
    /// For `backend = "command"`: the program and its arguments, e.g. `["fswebcam", "-q", "--jpeg", "90", "-"]`.
    pub command: Vec<String>,
    /// Extra arguments for `rpicam-vid`/`rpicam-still` (e.g. `["--rotation", "180"]`).
    pub extra_args: Vec<String>,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            backend: CameraBackend::RpicamVid,
            width: 1280,
            height: 720,
            framerate: 10,
            timeout_ms: 5000,
            device: PathBuf::from("/dev/video0"),
            command: Vec::new(),
            extra_args: Vec::new(),
        }
    }
}

impl CameraConfig {
    pub fn validate(&self) -> Result<()> {
        let bad =
            |key: &str, why: &str| Err(Error::Camera(format!("hardware.camera.{key}: {why}")));
        if self.width < 64 || self.height < 64 || self.width > 8192 || self.height > 8192 {
            return bad("width/height", "must be between 64 and 8192 pixels");
        }
        if !(1..=120).contains(&self.framerate) {
            return bad("framerate", "must be between 1 and 120");
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return bad("timeout_ms", "must be between 100 and 120000");
        }
        if self.backend == CameraBackend::Command && self.command.is_empty() {
            return bad(
                "command",
                "backend = \"command\" needs the program to run, e.g. [\"fswebcam\", \"-q\", \"-\"]",
            );
        }
        if self.backend == CameraBackend::V4l2 && self.device.as_os_str().is_empty() {
            return bad(
                "device",
                "backend = \"v4l2\" needs the video device, e.g. \"/dev/video0\" (`ls /dev/video*` lists them)",
            );
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Opens the configured camera. Finds `rpicam-*` (or the older `libcamera-*`) on `PATH`; nothing is
/// started until the first capture (see [`WarmCamera::warm_up`]). A `v4l2` webcam is opened in the
/// background (see [`crate::v4l2::open`]); elsewhere than on Linux that backend is an error.
pub fn open_camera(cfg: &CameraConfig) -> Result<Box<dyn Camera>> {
    open_camera_with(cfg, find_program)
}

/// [`open_camera`] with the program lookup given (tests point it at fake `rpicam-*` scripts).
fn open_camera_with(
    cfg: &CameraConfig,
    find_program: impl Fn(&[&str]) -> Result<PathBuf>,
) -> Result<Box<dyn Camera>> {
    cfg.validate()?;
    let size = [
        "--width".to_string(),
        cfg.width.to_string(),
        "--height".to_string(),
        cfg.height.to_string(),
    ];
    match cfg.backend {
        CameraBackend::V4l2 => crate::v4l2::open(cfg),
        CameraBackend::Command => {
            let (program, args) = cfg
                .command
                .split_first()
                .ok_or_else(|| Error::Camera("hardware.camera.command is empty".into()))?;
            Ok(Box::new(CommandCamera::new(
                program,
                args.to_vec(),
                cfg.timeout(),
            )))
        }
        CameraBackend::RpicamStill => {
            let program = find_program(&["rpicam-still", "libcamera-still"])?;
            let mut args: Vec<String> = ["-n", "-t", "1", "--immediate", "-e", "jpg"]
                .map(String::from)
                .to_vec();
            args.extend(size);
            args.extend(cfg.extra_args.iter().cloned());
            args.extend(["-o".to_string(), "-".to_string()]);
            Ok(Box::new(CommandCamera::new(program, args, cfg.timeout())))
        }
        CameraBackend::RpicamVid => {
            let program = find_program(&["rpicam-vid", "libcamera-vid"])?;
            // --flush: write each frame to the pipe at once instead of when a buffer fills.
            let mut args: Vec<String> = [
                "-n",
                "-t",
                "0",
                "--flush",
                "--codec",
                "mjpeg",
                "--framerate",
            ]
            .map(String::from)
            .to_vec();
            args.push(cfg.framerate.to_string());
            args.extend(size);
            args.extend(cfg.extra_args.iter().cloned());
            args.extend(["-o".to_string(), "-".to_string()]);
            Ok(Box::new(WarmedCamera::start(WarmCamera::new(
                program,
                args,
                cfg.timeout(),
            ))))
        }
    }
}

/// The first of `names` found on `PATH`.
pub fn find_program(names: &[&str]) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(Error::Camera(format!(
        "none of {} found on PATH: install them with `sudo apt install rpicam-apps` (Raspberry Pi OS \
         Bookworm) or choose hardware.camera.backend = \"command\"",
        names.join(", ")
    )))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The last lines a program wrote to stderr, for error messages.
fn stderr_tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        "no message on stderr".into()
    } else {
        tail
    }
}

/// Checks that what a program printed is a whole JPEG (or a PNG) and wraps it.
pub fn photo_from_output(name: &str, bytes: Vec<u8>) -> Result<Photo> {
    if bytes.is_empty() {
        return Err(Error::Camera(format!("{name} printed nothing")));
    }
    match ImageFormat::sniff(&bytes) {
        Some(ImageFormat::Jpeg) => {
            // Walk the marker structure to the end-of-image marker: a JPEG cut short (a program killed
            // mid-write, a full disk) has none.
            if JpegSplitter::new().push(&bytes).is_empty() {
                return Err(Error::Camera(format!(
                    "{name} printed a truncated JPEG ({} bytes, no end-of-image marker)",
                    bytes.len()
                )));
            }
        }
        Some(ImageFormat::Png) => {}
        None => {
            let preview: String = String::from_utf8_lossy(&bytes[..bytes.len().min(60)])
                .escape_debug()
                .collect();
            return Err(Error::Camera(format!(
                "{name} printed {} bytes that are not a JPEG or PNG (they start with \"{preview}\")",
                bytes.len()
            )));
        }
    }
    Photo::from_bytes(bytes).ok_or_else(|| Error::Camera(format!("{name}: not an image")))
}

fn spawn_error(program: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Camera(format!("{} not found", program.display()))
    } else {
        Error::Camera(format!("cannot start {}: {e}", program.display()))
    }
}

/// A camera that runs a program per capture and reads one image from its standard output.
#[derive(Clone, Debug)]
pub struct CommandCamera {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl CommandCamera {
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args,
            timeout,
        }
    }

    fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string())
    }
}

#[async_trait]
impl Camera for CommandCamera {
    async fn capture(&self) -> Result<Photo> {
        let name = self.name();
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // On timeout the future below is dropped with the child, which kills it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error(&self.program, e))?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => {
                tracing::warn!(target: "facereko::camera", "{name} gave no photo within {:?}; killed", self.timeout);
                return Err(Error::CameraTimeout(self.timeout.as_millis() as u64));
            }
            Ok(Err(e)) => return Err(Error::Camera(format!("{name}: {e}"))),
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            // 126/127 are the shell's (and some exec emulations') "cannot execute" / "not found".
            let hint = match out.status.code() {
                Some(127) => ": program not found",
                Some(126) => ": program not executable",
                _ => "",
            };
            return Err(Error::Camera(format!(
                "{name} failed ({}{hint}): {}",
                out.status,
                stderr_tail(&out.stderr)
            )));
        }
        photo_from_output(&name, out.stdout).map_err(|e| match e {
            Error::Camera(msg) if !out.stderr.is_empty() => {
                Error::Camera(format!("{msg}; stderr: {}", stderr_tail(&out.stderr)))
            }
            e => e,
        })
    }

    fn describe(&self) -> String {
        format!(
            "command: {} {}",
            self.program.display(),
            self.args.join(" ")
        )
    }
}

// ---- kept-warm MJPEG stream --------------------------------------------------------------------------

/// Splits a stream of concatenated JPEGs (an MJPEG stream as `rpicam-vid --codec mjpeg -o -` writes it) into
/// frames by walking the JPEG marker structure, so an FF D9 inside a segment or in stuffed entropy data is
/// never taken for the end of a frame. Garbage between frames is skipped; a frame larger than 16 MB is
/// dropped.
#[derive(Debug, Default)]
pub struct JpegSplitter {
    buf: Vec<u8>,
    started: bool,
    pos: usize,
    in_scan: bool,
}

enum Step {
    Need,
    Frame(usize),
    Corrupt,
}

/// The largest frame a camera may deliver; the simulated camera's image files are held to it too.
pub const MAX_FRAME: usize = 16 << 20;

impl JpegSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the frames completed by them.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(data);
        let mut frames = Vec::new();
        loop {
            if !self.started {
                match self.buf.windows(2).position(|w| w == [0xFF, 0xD8]) {
                    Some(start) => {
                        self.buf.drain(..start);
                        self.started = true;
                        self.pos = 2;
                        self.in_scan = false;
                    }
                    None => {
                        let keep = usize::from(self.buf.last() == Some(&0xFF));
                        let cut = self.buf.len() - keep;
                        self.buf.drain(..cut);
                        break;
                    }
                }
            }
            match self.advance() {
                Step::Need => {
                    if self.buf.len() > MAX_FRAME {
                        tracing::warn!(target: "facereko::camera", "MJPEG frame over {MAX_FRAME} bytes dropped");
                        self.buf.clear();
                        self.started = false;
                    }
                    break;
                }
                Step::Frame(end) => {
                    frames.push(self.buf.drain(..end).collect());
                    self.started = false;
                }
                Step::Corrupt => {
                    self.buf.drain(..2);
                    self.started = false;
                }
            }
        }
        frames
    }

    fn advance(&mut self) -> Step {
        let b = &self.buf;
        let len = b.len();
        loop {
            if self.in_scan {
                // Entropy-coded data: FF 00 is a stuffed FF, FF D0..D7 are restart markers.
                loop {
                    if self.pos + 1 >= len {
                        return Step::Need;
                    }
                    if b[self.pos] == 0xFF {
                        let n = b[self.pos + 1];
                        if n == 0x00 || (0xD0..=0xD7).contains(&n) {
                            self.pos += 2;
                            continue;
                        }
                        if n == 0xFF {
                            self.pos += 1;
                            continue;
                        }
                        self.in_scan = false;
                        break;
                    }
                    self.pos += 1;
                }
            }
            if self.pos + 1 >= len {
                return Step::Need;
            }
            if b[self.pos] != 0xFF {
                return Step::Corrupt;
            }
            let m = b[self.pos + 1];
            match m {
                0xFF => self.pos += 1,
                0xD9 => return Step::Frame(self.pos + 2),
                0xD8 => return Step::Corrupt,
                0x01 | 0xD0..=0xD7 => self.pos += 2,
                _ => {
                    if self.pos + 3 >= len {
                        return Step::Need;
                    }
                    let seg = usize::from(u16::from_be_bytes([b[self.pos + 2], b[self.pos + 3]]));
                    if seg < 2 {
                        return Step::Corrupt;
                    }
                    self.pos += 2 + seg;
                    if m == 0xDA {
                        self.in_scan = true;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Latest {
    seq: u64,
    frame: Option<Arc<Vec<u8>>>,
    /// Which start of the process this is, and whether its output is still open.
    generation: u64,
    alive: bool,
}

#[derive(Debug)]
struct Running {
    child: Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// A camera kept running (`rpicam-vid --codec mjpeg -o -`): a capture returns the first frame that
/// *starts arriving after* the request, so the photo shows the person who just tapped, with no camera
/// start-up per tap. The process is started on the first capture (or by [`warm_up`](Self::warm_up)) and
/// restarted on the next capture if it died. Dropping the camera kills the process.
#[derive(Debug)]
pub struct WarmCamera {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
    latest: Arc<watch::Sender<Latest>>,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl WarmCamera {
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args,
            timeout,
            latest: Arc::new(watch::Sender::new(Latest::default())),
            running: tokio::sync::Mutex::new(None),
        }
    }

    fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string())
    }

    /// Starts the process if it is not running and waits for its first frame, so the first tap is fast.
    pub async fn warm_up(&self) -> Result<()> {
        self.capture().await.map(|_| ())
    }

    /// Makes sure the process runs; returns its stderr tail buffer.
    async fn ensure_running(&self) -> Result<Arc<Mutex<VecDeque<String>>>> {
        let mut running = self.running.lock().await;
        if let Some(r) = running.as_mut() {
            match r.child.try_wait() {
                Ok(None) => return Ok(r.stderr.clone()),
                Ok(Some(status)) => {
                    let tail = r.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    tracing::warn!(
                        target: "facereko::camera",
                        "{} exited ({status}): {}; restarting",
                        self.name(),
                        Vec::from(tail).join(" | ")
                    );
                }
                Err(e) => {
                    tracing::warn!(target: "facereko::camera", "{}: {e}; restarting", self.name())
                }
            }
        }
        *running = None;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| spawn_error(&self.program, e))?;
        let stderr_lines = Arc::new(Mutex::new(VecDeque::with_capacity(8)));
        if let Some(err) = child.stderr.take() {
            let lines = stderr_lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(err).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let mut l = lines.lock().unwrap_or_else(|p| p.into_inner());
                    if l.len() == 8 {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
        }
        let mut generation = 0;
        self.latest.send_modify(|l| {
            l.generation += 1;
            l.alive = true;
            generation = l.generation;
        });
        if let Some(mut out) = child.stdout.take() {
            let latest = self.latest.clone();
            tokio::spawn(async move {
                let mut splitter = JpegSplitter::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match out.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            for frame in splitter.push(&buf[..n]) {
                                latest.send_modify(|l| {
                                    l.seq += 1;
                                    l.frame = Some(Arc::new(frame));
                                });
                            }
                        }
                    }
                }
                latest.send_modify(|l| {
                    if l.generation == generation {
                        l.alive = false;
                    }
                });
            });
        }
        tracing::info!(target: "facereko::camera", "started {}", self.describe());
        *running = Some(Running {
            child,
            stderr: stderr_lines.clone(),
        });
        Ok(stderr_lines)
    }
}

/// A [`WarmCamera`] whose process is started in the background as soon as it is opened (when a tokio
/// runtime is running), so even the first tap after start-up costs no camera start-up.
#[derive(Clone, Debug)]
pub struct WarmedCamera(Arc<WarmCamera>);

impl WarmedCamera {
    pub fn start(camera: WarmCamera) -> Self {
        let camera = Arc::new(camera);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let warming = camera.clone();
            rt.spawn(async move {
                match warming.warm_up().await {
                    Ok(()) => tracing::info!(target: "facereko::camera", "camera warm: {}", warming.describe()),
                    Err(e) => tracing::warn!(target: "facereko::camera", "camera warm-up failed (retried at the next capture): {e}"),
                }
            });
        }
        Self(camera)
    }
}

#[async_trait]
impl Camera for WarmedCamera {
    async fn capture(&self) -> Result<Photo> {
        self.0.capture().await
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[async_trait]
impl Camera for WarmCamera {
    async fn capture(&self) -> Result<Photo> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let stderr = tokio::time::timeout_at(deadline, self.ensure_running())
            .await
            .map_err(|_| Error::CameraTimeout(self.timeout.as_millis() as u64))??;
        let mut rx = self.latest.subscribe();
        // A frame already complete was (at least partly) exposed before the tap; skip it and the one being
        // received now, whose start may also predate the request.
        let after = rx.borrow_and_update().seq + 1;
        let waited = tokio::time::timeout_at(deadline, async {
            loop {
                {
                    let l = rx.borrow_and_update();
                    if l.seq > after {
                        return l.frame.clone();
                    }
                    if !l.alive {
                        return None;
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match waited {
            Ok(Some(frame)) => photo_from_output(&self.name(), frame.as_ref().clone()),
            Ok(None) => {
                // Give the stderr reader a moment to catch the program's last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let tail = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                *self.running.lock().await = None;
                Err(Error::Camera(format!(
                    "{} stopped without a frame: {}",
                    self.name(),
                    if tail.is_empty() {
                        "no message on stderr".to_string()
                    } else {
                        Vec::from(tail).join(" | ")
                    }
                )))
            }
            Err(_) => Err(Error::CameraTimeout(self.timeout.as_millis() as u64)),
        }
    }

    fn describe(&self) -> String {
        format!(
            "kept warm: {} {}",
            self.program.display(),
            self.args.join(" ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal but structurally complete JPEG: SOI, an APP0 segment that contains FF D9, a scan header,
    /// entropy data with a stuffed FF 00 and a restart marker, EOI.
    fn fake_jpeg(tag: u8) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        j.extend([0xFF, 0xE0, 0x00, 0x06, 0xFF, 0xD9, tag, 0x00]);
        j.extend([0xFF, 0xDA, 0x00, 0x04, 0x01, 0x02]);
        j.extend([0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, tag]);
        j.extend([0xFF, 0xD9]);
        j
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// printf-ready octal escapes of `bytes`.
    fn octal(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("\\{b:03o}")).collect()
    }

    #[test]
    fn splitter_finds_whole_frames_in_any_chunking() {
        let a = fake_jpeg(0xAA);
        let b = fake_jpeg(0xBB);
        let mut stream = b"garbage".to_vec();
        stream.extend(&a);
        stream.extend(b"\x00\x00");
        stream.extend(&b);
        stream.extend(&a[..5]);
        for chunk in [1, 2, 3, 7, 1000] {
            let mut s = JpegSplitter::new();
            let frames: Vec<Vec<u8>> = stream.chunks(chunk).flat_map(|c| s.push(c)).collect();
            assert_eq!(frames, vec![a.clone(), b.clone()], "chunk size {chunk}");
        }
    }

    #[tokio::test]
    async fn command_camera_reads_a_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let jpeg = fake_jpeg(1);
        let p = script(
            dir.path(),
            "cam",
            &format!("echo warming up >&2\nprintf '{}'", octal(&jpeg)),
        );
        let cam = CommandCamera::new(&p, vec![], Duration::from_secs(10));
        let photo = cam.capture().await.unwrap();
        assert_eq!(photo.format, ImageFormat::Jpeg);
        assert_eq!(photo.bytes, jpeg);
    }

    #[tokio::test]
    async fn command_camera_that_hangs_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "hang", "exec sleep 30");
        let cam = CommandCamera::new(&p, vec![], Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = cam.capture().await.unwrap_err();
        assert!(matches!(err, Error::CameraTimeout(300)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn command_camera_that_prints_garbage_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "garbage", "echo 'ERROR: no cameras available'");
        let cam = CommandCamera::new(&p, vec![], Duration::from_secs(10));
        let err = cam.capture().await.unwrap_err().to_string();
        assert!(
            err.contains("not a JPEG or PNG") && err.contains("ERROR: no cameras available"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn command_camera_reports_exit_status_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "fails",
            "echo 'ERROR: *** no cameras available ***' >&2\nexit 1",
        );
        let cam = CommandCamera::new(&p, vec![], Duration::from_secs(10));
        let err = cam.capture().await.unwrap_err().to_string();
        assert!(
            err.contains("failed") && err.contains("no cameras available"),
            "{err}"
        );
        let missing = CommandCamera::new(dir.path().join("nope"), vec![], Duration::from_secs(1));
        let err = missing.capture().await.unwrap_err().to_string();
        assert!(err.contains("not found"), "{err}");
    }

    #[tokio::test]
    async fn truncated_jpeg_is_refused() {
        let jpeg = fake_jpeg(1);
        let err = photo_from_output("cam", jpeg[..jpeg.len() - 2].to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[tokio::test]
    async fn warm_camera_returns_a_fresh_frame_and_restarts_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        // An MJPEG "stream": a new frame every 50 ms, and the process ends after 10 frames.
        let frame = octal(&fake_jpeg(7));
        let p = script(
            dir.path(),
            "vid",
            &format!("i=0\nwhile [ $i -lt 10 ]; do printf '{frame}'; sleep 0.05; i=$((i+1)); done"),
        );
        let cam = WarmCamera::new(&p, vec![], Duration::from_secs(5));
        cam.warm_up().await.unwrap();
        let photo = cam.capture().await.unwrap();
        assert_eq!(photo.bytes, fake_jpeg(7));
        // Let the stream end; the next capture restarts the program.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let photo = cam.capture().await.unwrap();
        assert_eq!(photo.bytes, fake_jpeg(7));
    }

    #[tokio::test]
    async fn warm_camera_that_dies_at_once_reports_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "dead",
            "echo 'ERROR: no cameras available' >&2\nexit 1",
        );
        let cam = WarmCamera::new(&p, vec![], Duration::from_secs(5));
        let started = std::time::Instant::now();
        let err = cam.capture().await.unwrap_err().to_string();
        assert!(err.contains("no cameras available"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a dead camera is reported at once"
        );
    }

    /// The argument lists handed to rpicam-still and rpicam-vid, through fake programs that record them.
    #[tokio::test]
    async fn rpicam_backends_get_size_rate_and_extra_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("args");
        let frame = octal(&fake_jpeg(3));
        let still = script(
            dir.path(),
            "rpicam-still",
            &format!(
                "printf '%s\\n' \"$*\" > '{}'\nprintf '{frame}'",
                log.display()
            ),
        );
        let vid = script(
            dir.path(),
            "rpicam-vid",
            &format!(
                "printf '%s\\n' \"$*\" > '{}'\nwhile true; do printf '{frame}'; sleep 0.05; done",
                log.display()
            ),
        );
        let mut cfg = CameraConfig {
            backend: CameraBackend::RpicamStill,
            width: 640,
            height: 480,
            extra_args: vec!["--rotation".into(), "180".into()],
            ..CameraConfig::default()
        };
        let cam = open_camera_with(&cfg, |names| {
            assert_eq!(names, ["rpicam-still", "libcamera-still"]);
            Ok(still.clone())
        })
        .unwrap();
        assert_eq!(cam.capture().await.unwrap().bytes, fake_jpeg(3));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap().trim(),
            "-n -t 1 --immediate -e jpg --width 640 --height 480 --rotation 180 -o -"
        );

        cfg.backend = CameraBackend::RpicamVid;
        cfg.framerate = 15;
        let cam = open_camera_with(&cfg, |names| {
            assert_eq!(names, ["rpicam-vid", "libcamera-vid"]);
            Ok(vid.clone())
        })
        .unwrap();
        assert_eq!(cam.capture().await.unwrap().bytes, fake_jpeg(3));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap().trim(),
            "-n -t 0 --flush --codec mjpeg --framerate 15 --width 640 --height 480 --rotation 180 -o -"
        );
        assert!(cam.describe().starts_with("kept warm:"));
    }

    #[test]
    fn config_validation_names_the_key() {
        let cfg = CameraConfig {
            backend: CameraBackend::Command,
            ..CameraConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("hardware.camera.command"), "{err}");
        assert!(CameraConfig::default().validate().is_ok());
    }
}
