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
use facereko_domain::Photo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::{Camera, Error, Result};

pub use crate::camera_config::{CameraBackend, CameraConfig};
pub use crate::mjpeg::{photo_from_output, JpegSplitter, MAX_FRAME};

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
    use facereko_domain::ImageFormat;

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
