//! USB webcams read natively through V4L2 (`hardware.camera.backend = "v4l2"`, Linux only).
//!
//! Why native: the `command` camera starts a program per photo, and a webcam started per tap spends a second
//! or more on start-up and auto-exposure. This backend keeps the webcam streaming, like the kept-warm
//! `rpicam-vid` in [`crate::camera`], with no program in between and with errors that name the device. The
//! ioctls and mmap buffers are the `linuxvideo` crate's: it declares the kernel structures in Rust, so it
//! needs neither bindgen nor libclang (the `v4l` crate needs both), and this crate keeps no `unsafe`.
//!
//! What it does: a background thread opens the device, negotiates MJPEG (or JPEG) at `width`×`height` or,
//! when the webcam does not offer that size, the nearest one it does ([`nearest_size`]), asks for
//! `framerate`, and streams into mmap buffers, keeping the newest whole frame. A capture returns the first
//! whole frame that started arriving after the request (the `rpicam-vid` rule: the photo shows who just
//! tapped), within `timeout_ms` or [`Error::CameraTimeout`]. A webcam without MJPEG or JPEG is refused with
//! the formats it does offer.
//!
//! A frame error: every frame is checked before it is kept ([`complete_jpeg`]). A buffer the driver flags
//! as corrupt, or a JPEG that is cut short (no end-of-image marker) or malformed, is skipped and counted
//! (logged at the 1st, 10th, 100th, … one), never decoded here and never a panic; a capture that saw only
//! such frames says so instead of only timing out. An MJPEG frame without Huffman tables (many UVC webcams
//! leave them out, relying on the standard ones) gets the standard tables of JPEG Annex K inserted before
//! its scan, as ffmpeg does, so any JPEG decoder reads it.
//!
//! Unplugging: the thread ends on the device's error (ENODEV or EIO when the webcam goes away), or when no
//! whole frame came for `max(timeout_ms, 5 s)`; a capture waiting then fails at once with the reason. The
//! next capture opens the device again, and fails with the device path and `ls /dev/video*` while it is
//! missing, until the webcam is back. Dropping the camera stops the thread and closes the device.
//!
//! Tests: everything but the ioctls is tested here without a device (this crate's CI has none): the frame
//! checks, the format and size choice, the error for a missing device, and the capture thread (fresh
//! frames, skipped frames, unplug and reopen, stop on drop) streaming from a scripted source instead of
//! V4L2. The one test that streams from a real webcam is ignored unless `FACEREKO_TEST_V4L2_DEVICE` names
//! one: `FACEREKO_TEST_V4L2_DEVICE=/dev/video0 cargo test -p facereko-hardware v4l2 -- --ignored`.

use std::path::Path;

use crate::camera_config::CameraConfig;
use crate::mjpeg::JpegSplitter;
use crate::{Camera, Error, Result};

/// The Motion-JPEG fourcc: JPEG frames that may leave out the Huffman tables.
pub const MJPG: [u8; 4] = *b"MJPG";
/// The JPEG fourcc: whole JFIF frames.
pub const JPEG: [u8; 4] = *b"JPEG";

/// Opens the V4L2 camera of `cfg` (already validated). The device is opened on a background thread, at once
/// when a tokio runtime is running (so the first tap costs no start-up) and otherwise at the first capture;
/// errors come from [`Camera::capture`].
pub fn open(cfg: &CameraConfig) -> Result<Box<dyn Camera>> {
    #[cfg(target_os = "linux")]
    {
        Ok(Box::new(V4l2Camera::start(cfg)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(Error::Camera(format!(
            "hardware.camera.backend = \"v4l2\" ({}): V4L2 is only on Linux; on this system use \
             backend = \"command\" with a program that prints a JPEG",
            cfg.device.display()
        )))
    }
}

/// A fourcc as text (`MJPG`, `YUYV`), unprintable bytes escaped.
pub fn fourcc_name(fourcc: [u8; 4]) -> String {
    fourcc
        .iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// The format to stream from what `device` offers: MJPEG, else JPEG. Anything else would need decoding
/// and re-encoding on the door's CPU, so it is refused with the formats on offer.
pub fn choose_format(device: &Path, offered: &[[u8; 4]]) -> Result<[u8; 4]> {
    for wanted in [MJPG, JPEG] {
        if offered.contains(&wanted) {
            return Ok(wanted);
        }
    }
    let list = if offered.is_empty() {
        "no capture format at all".to_string()
    } else {
        offered
            .iter()
            .map(|f| fourcc_name(*f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::Camera(format!(
        "{} offers no MJPEG (it offers {list}): a camera module on the ribbon cable uses backend = \
         \"rpicam-vid\"; a webcam without MJPEG can go through backend = \"command\" with ffmpeg or fswebcam",
        device.display()
    )))
}

/// The frame sizes a device offers for one format (`VIDIOC_ENUM_FRAMESIZES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSizes {
    /// A list of sizes (`width`, `height`): what USB webcams report.
    Discrete(Vec<(u32, u32)>),
    /// Any size from `min` to `max` in steps of `step` (a step of 1 is the "continuous" kind).
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
    },
}

/// The size to ask for: `want` when offered, else the offered size nearest to it (the smallest sum of the
/// width and height differences; of two equally near, the larger). `None` when nothing is offered.
pub fn nearest_size(sizes: &FrameSizes, want: (u32, u32)) -> Option<(u32, u32)> {
    match sizes {
        FrameSizes::Discrete(list) => list.iter().copied().min_by_key(|&(w, h)| {
            let distance = u64::from(w.abs_diff(want.0)) + u64::from(h.abs_diff(want.1));
            (distance, std::cmp::Reverse(u64::from(w) * u64::from(h)))
        }),
        FrameSizes::Stepwise { min, max, step } => Some((
            nearest_step(want.0, min.0, max.0, step.0),
            nearest_step(want.1, min.1, max.1, step.1),
        )),
    }
}

/// The value nearest to `want` of `min`, `min + step`, … up to `max` (of two equally near, the larger).
fn nearest_step(want: u32, min: u32, max: u32, step: u32) -> u32 {
    let max = max.max(min);
    let step = u64::from(step.max(1));
    let offset = u64::from(want.clamp(min, max) - min);
    let below = offset / step * step;
    // Halfway rounds up: of two equally near sizes, the larger (as for a list of sizes).
    let nearest = if 2 * (offset - below) >= step && u64::from(min) + below + step <= u64::from(max)
    {
        below + step
    } else {
        below
    };
    // `min + nearest` is at most `max`, so it fits.
    u32::try_from(u64::from(min) + nearest).unwrap_or(max)
}

/// The standard Huffman tables of JPEG Annex K.3 (luminance and chrominance, DC and AC) as one DHT segment:
/// the tables an MJPEG frame without a DHT segment is coded with (the AVI MJPEG convention).
const STANDARD_DHT: &[u8] = &[
    0xFF, 0xC4, 0x01, 0xA2, // DHT, length 418
    // DC luminance (class 0, table 0): code counts for lengths 1..=16, then the 12 symbols.
    0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, //
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, //
    // AC luminance (class 1, table 0): 162 symbols.
    0x10, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D, //
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, //
    0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, //
    0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, //
    0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, //
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, //
    0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, //
    0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, //
    0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, //
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, //
    0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, //
    0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, //
    0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, //
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, //
    0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, //
    // DC chrominance (class 0, table 1).
    0x01, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, //
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, //
    // AC chrominance (class 1, table 1): 162 symbols.
    0x11, 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77, //
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, //
    0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, //
    0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, //
    0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, //
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, //
    0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, //
    0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, //
    0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, //
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, //
    0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, //
    0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, //
    0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, //
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, //
    0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];

/// Checks one frame as a webcam delivered it and returns it as a JPEG any decoder reads: cut at its
/// end-of-image marker (drivers may pad a frame), with the standard Huffman tables inserted before the scan
/// when the frame has none. `Err` says what is wrong with the frame (for skipping it and for the log).
pub fn complete_jpeg(frame: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if frame.is_empty() {
        return Err("an empty frame".into());
    }
    if !frame.starts_with(&[0xFF, 0xD8]) {
        let start: Vec<String> = frame.iter().take(4).map(|b| format!("{b:02X}")).collect();
        return Err(format!(
            "{} bytes that are not a JPEG (they start with {})",
            frame.len(),
            start.join(" ")
        ));
    }
    // The splitter walks the marker structure to the end-of-image marker. The frame it returns must be
    // this frame's beginning: after a broken structure it would look for a later start-of-image marker
    // (an embedded thumbnail, say).
    let whole = JpegSplitter::new()
        .push(frame)
        .into_iter()
        .next()
        .filter(|f| frame.starts_with(f))
        .ok_or_else(|| {
            format!(
                "a truncated or corrupt JPEG ({} bytes, no end-of-image marker after the scan)",
                frame.len()
            )
        })?;
    // The segments before the first scan: is there a frame header, and a Huffman table?
    let (mut pos, mut has_sof, mut has_dht) = (2usize, false, false);
    let scan = loop {
        let (Some(&0xFF), Some(&marker)) = (whole.get(pos), whole.get(pos + 1)) else {
            return Err("a corrupt JPEG (a segment without its marker)".into());
        };
        match marker {
            0xFF => {
                pos += 1;
                continue;
            }
            // Markers without a length (as the splitter reads them).
            0x01 | 0xD0..=0xD7 => {
                pos += 2;
                continue;
            }
            0xDA => break pos,
            0xD9 => return Err("a JPEG without any scan".into()),
            0xC4 => has_dht = true,
            0xC0..=0xCF if !matches!(marker, 0xC8 | 0xCC) => has_sof = true,
            _ => {}
        }
        let len = match (whole.get(pos + 2), whole.get(pos + 3)) {
            (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return Err("a corrupt JPEG (a segment cut short)".into()),
        };
        pos += 2 + len;
    };
    if !has_sof {
        return Err("a corrupt JPEG (no frame header before the scan)".into());
    }
    if has_dht {
        return Ok(whole);
    }
    let mut fixed = Vec::with_capacity(whole.len() + STANDARD_DHT.len());
    fixed.extend_from_slice(&whole[..scan]);
    fixed.extend_from_slice(STANDARD_DHT);
    fixed.extend_from_slice(&whole[scan..]);
    Ok(fixed)
}

/// Whether to log the `n`th skipped frame: the 1st, 10th, 100th, …
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn worth_logging(n: u64) -> bool {
    let mut k = n;
    while k >= 10 && k.is_multiple_of(10) {
        k /= 10;
    }
    k == 1
}

#[cfg(target_os = "linux")]
pub use linux::V4l2Camera;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::AsFd;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use facereko_domain::Photo;
    use linuxvideo::format::{self, PixFormat, PixelFormat};
    use linuxvideo::stream::ReadStream;
    use linuxvideo::{BufType, CapabilityFlags, Device, Fract};
    use nix::errno::Errno;
    use nix::libc;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use tokio::sync::watch;

    use super::{
        choose_format, complete_jpeg, fourcc_name, nearest_size, worth_logging, FrameSizes,
    };
    use crate::camera_config::CameraConfig;
    use crate::mjpeg::photo_from_output;
    use crate::{Camera, Error, Result};

    /// How long the capture thread waits in one poll(2) before it looks at its stop flag.
    const POLL_SLICE: Duration = Duration::from_millis(200);
    /// The shortest time without a whole frame after which the stream counts as stalled and is reopened.
    const MIN_STALL: Duration = Duration::from_secs(5);

    /// What the configuration asks of the device.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Request {
        width: u32,
        height: u32,
        framerate: u32,
    }

    /// The capture thread's news, shared with the captures.
    #[derive(Debug, Default)]
    struct Latest {
        /// Whole frames kept so far, and the newest.
        seq: u64,
        frame: Option<Arc<Vec<u8>>>,
        /// Frames skipped so far, and why the last one was.
        refused: u64,
        last_refusal: Option<String>,
        /// Which start of the thread this is, whether it still streams, and why it stopped.
        generation: u64,
        alive: bool,
        ended: Option<String>,
        /// What the device agreed to (`MJPG 1280x720 at 10 fps`), once it has.
        negotiated: Option<String>,
    }

    #[derive(Debug)]
    struct Running {
        stop: Arc<AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            // The thread sees the flag within one poll slice, then stops streaming and closes the device.
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    #[derive(Debug)]
    struct Stream {
        device: PathBuf,
        request: Request,
        open: Opener,
        timeout: Duration,
        latest: Arc<watch::Sender<Latest>>,
        running: tokio::sync::Mutex<Option<Running>>,
    }

    /// A V4L2 webcam kept streaming MJPEG on a background thread (see the module notes). The stream is
    /// started as soon as the camera is made (when a tokio runtime is running) or at the first capture,
    /// and reopened by the next capture after it ended (an unplugged webcam, a stalled stream).
    #[derive(Clone, Debug)]
    pub struct V4l2Camera(Arc<Stream>);

    impl V4l2Camera {
        /// Makes the camera; when a tokio runtime is running, opens the device in the background at once
        /// so even the first tap costs no start-up.
        pub fn start(cfg: &CameraConfig) -> Self {
            let camera = Self::new(cfg);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let warming = camera.clone();
                rt.spawn(async move {
                    match warming.warm_up().await {
                        Ok(()) => tracing::info!(target: "facereko::camera", "camera warm: {}", warming.describe()),
                        Err(e) => tracing::warn!(target: "facereko::camera", "camera warm-up failed (retried at the next capture): {e}"),
                    }
                });
            }
            camera
        }

        /// Makes the camera without touching the device.
        pub fn new(cfg: &CameraConfig) -> Self {
            Self::with_opener(cfg, open_v4l2)
        }

        /// [`new`](Self::new) with the source given (tests stream from a scripted one).
        pub(super) fn with_opener(cfg: &CameraConfig, open: Opener) -> Self {
            Self(Arc::new(Stream {
                device: cfg.device.clone(),
                open,
                request: Request {
                    width: cfg.width,
                    height: cfg.height,
                    framerate: cfg.framerate,
                },
                timeout: cfg.timeout(),
                latest: Arc::new(watch::Sender::new(Latest::default())),
                running: tokio::sync::Mutex::new(None),
            }))
        }

        /// Opens the device if it is not streaming and waits for a frame, so the first tap is fast.
        pub async fn warm_up(&self) -> Result<()> {
            self.capture().await.map(|_| ())
        }
    }

    impl Stream {
        fn name(&self) -> String {
            self.device.display().to_string()
        }

        /// Makes sure the capture thread runs, starting it (again) when it is not.
        async fn ensure_running(&self) -> Result<()> {
            let mut running = self.running.lock().await;
            if let Some(r) = running.as_ref() {
                // The thread marks its stream ended only after it closed the device, so a new one may
                // open it then even if the old thread has not quite returned.
                if !r.thread.is_finished() && self.latest.borrow().alive {
                    return Ok(());
                }
                let why = self.latest.borrow().ended.clone().unwrap_or_default();
                tracing::info!(target: "facereko::camera", "{why}; opening {} again", self.name());
            }
            *running = None;
            let stop = Arc::new(AtomicBool::new(false));
            let mut generation = 0;
            self.latest.send_modify(|l| {
                l.generation += 1;
                l.alive = true;
                l.ended = None;
                generation = l.generation;
            });
            let thread = {
                let (device, request, open, latest, stop) = (
                    self.device.clone(),
                    self.request,
                    self.open,
                    self.latest.clone(),
                    stop.clone(),
                );
                let stall = self.timeout.max(MIN_STALL);
                std::thread::Builder::new()
                    .name("facereko-v4l2".into())
                    .spawn(move || {
                        capture_thread(&device, request, open, stall, latest, &stop, generation)
                    })
            };
            match thread {
                Ok(thread) => {
                    *running = Some(Running { stop, thread });
                    Ok(())
                }
                Err(e) => {
                    let why = format!("cannot start the V4L2 capture thread: {e}");
                    self.latest.send_modify(|l| {
                        l.alive = false;
                        l.ended = Some(why.clone());
                    });
                    Err(Error::Camera(why))
                }
            }
        }
    }

    #[async_trait]
    impl Camera for V4l2Camera {
        async fn capture(&self) -> Result<Photo> {
            let s = &self.0;
            let timeout_ms = s.timeout.as_millis() as u64;
            let deadline = tokio::time::Instant::now() + s.timeout;
            tokio::time::timeout_at(deadline, s.ensure_running())
                .await
                .map_err(|_| Error::CameraTimeout(timeout_ms))??;
            let mut rx = s.latest.subscribe();
            // A frame already whole was exposed before the tap; skip it and the one arriving now, whose
            // exposure may also have started before the request.
            let (after, refused_before) = {
                let l = rx.borrow_and_update();
                (l.seq + 1, l.refused)
            };
            let waited = tokio::time::timeout_at(deadline, async {
                loop {
                    {
                        let l = rx.borrow_and_update();
                        if l.seq > after {
                            if let Some(frame) = &l.frame {
                                return Ok(frame.clone());
                            }
                        }
                        if !l.alive {
                            return Err(l
                                .ended
                                .clone()
                                .unwrap_or_else(|| format!("{} stopped streaming", s.name())));
                        }
                    }
                    if rx.changed().await.is_err() {
                        return Err(format!("{} stopped streaming", s.name()));
                    }
                }
            })
            .await;
            match waited {
                Ok(Ok(frame)) => photo_from_output(&s.name(), frame.as_ref().clone()),
                // The next capture opens the device again (ensure_running sees the stream ended).
                Ok(Err(why)) => Err(Error::Camera(why)),
                Err(_) => {
                    let l = s.latest.borrow();
                    let refused = l.refused - refused_before;
                    if refused == 0 {
                        Err(Error::CameraTimeout(timeout_ms))
                    } else {
                        Err(Error::Camera(format!(
                            "{} sent {refused} frame(s) in {timeout_ms} ms but not one whole JPEG (the \
                             last: {})",
                            s.name(),
                            l.last_refusal.as_deref().unwrap_or("?")
                        )))
                    }
                }
            }
        }

        fn describe(&self) -> String {
            let s = &self.0;
            match &s.latest.borrow().negotiated {
                Some(n) => format!("v4l2: {} ({n}, kept streaming)", s.name()),
                None => format!(
                    "v4l2: {} (MJPEG {}x{} at {} fps asked, kept streaming)",
                    s.name(),
                    s.request.width,
                    s.request.height,
                    s.request.framerate
                ),
            }
        }
    }

    /// Marks the thread's generation ended, with the reason, when the thread ends: also when it unwinds from
    /// a panic, so a capture never waits for a thread that is gone.
    struct Ended<'a> {
        device: &'a Path,
        latest: &'a watch::Sender<Latest>,
        generation: u64,
        reason: Option<String>,
    }

    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            let reason = self.reason.take().unwrap_or_else(|| {
                format!(
                    "{}: the V4L2 capture thread failed on an answer from the driver that it did not \
                     expect (see the log)",
                    self.device.display()
                )
            });
            self.latest.send_modify(|l| {
                if l.generation == self.generation {
                    l.alive = false;
                    l.ended = Some(reason);
                }
            });
        }
    }

    fn capture_thread(
        device: &Path,
        request: Request,
        open: Opener,
        stall: Duration,
        latest: Arc<watch::Sender<Latest>>,
        stop: &AtomicBool,
        generation: u64,
    ) {
        let mut ended = Ended {
            device,
            latest: &latest,
            generation,
            reason: None,
        };
        let reason = match stream_frames(device, request, open, stall, &latest, stop) {
            Ok(()) => format!("{} closed", device.display()),
            Err(why) => why,
        };
        if !stop.load(Ordering::Relaxed) {
            tracing::warn!(target: "facereko::camera", "{reason}");
        }
        ended.reason = Some(reason);
    }

    /// What the capture thread got from its source in one wait.
    #[derive(Debug)]
    pub(super) enum Got {
        /// No frame within the wait.
        Nothing,
        /// A frame as the device delivered it (checked by [`complete_jpeg`] next).
        Frame(Vec<u8>),
        /// A frame the driver itself marked as corrupt.
        Corrupt(String),
    }

    /// Where the capture thread's frames come from: the V4L2 stream, or in tests a scripted source.
    pub(super) trait Source {
        /// Waits up to `wait` for the next frame. `Err` ends the stream (the device is gone or broken).
        fn next(&mut self, wait: Duration) -> std::result::Result<Got, String>;
    }

    /// Opens a source: the device, what it agreed to (for the log and `describe`), or why not.
    pub(super) type Opener =
        fn(&Path, Request) -> std::result::Result<(Box<dyn Source>, String), String>;

    /// Opens the device and keeps the newest whole frame in `latest` until `stop` or an error.
    fn stream_frames(
        device: &Path,
        request: Request,
        open: Opener,
        stall: Duration,
        latest: &watch::Sender<Latest>,
        stop: &AtomicBool,
    ) -> std::result::Result<(), String> {
        let (mut source, negotiated) = open(device, request)?;
        tracing::info!(target: "facereko::camera", "{}: streaming {negotiated}", device.display());
        latest.send_modify(|l| l.negotiated = Some(negotiated));
        let mut last_whole = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let checked = match source.next(POLL_SLICE)? {
                Got::Nothing => None,
                Got::Frame(bytes) => Some(complete_jpeg(&bytes)),
                Got::Corrupt(why) => Some(Err(why)),
            };
            match checked {
                Some(Ok(jpeg)) => {
                    last_whole = Instant::now();
                    latest.send_modify(|l| {
                        l.seq += 1;
                        l.frame = Some(Arc::new(jpeg));
                    });
                }
                Some(Err(why)) => {
                    let mut n = 0;
                    latest.send_modify(|l| {
                        l.refused += 1;
                        n = l.refused;
                        l.last_refusal = Some(why.clone());
                    });
                    if worth_logging(n) {
                        tracing::warn!(target: "facereko::camera", "{}: frame skipped: {why} ({n} skipped so far)", device.display());
                    }
                }
                None => {}
            }
            if last_whole.elapsed() > stall {
                return Err(format!(
                    "{} gave no whole frame for {} ms: the stream stalled",
                    device.display(),
                    stall.as_millis()
                ));
            }
        }
    }

    /// The V4L2 stream as a [`Source`].
    struct V4l2Source {
        device: PathBuf,
        stream: ReadStream,
    }

    impl Source for V4l2Source {
        fn next(&mut self, wait: Duration) -> std::result::Result<Got, String> {
            let device = &self.device;
            let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            let wait = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, wait) {
                Ok(0) | Err(Errno::EINTR) => return Ok(Got::Nothing),
                Ok(_) => {}
                Err(e) => return Err(device_error(device, "waiting for a frame", &e.into())),
            }
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if !revents.contains(PollFlags::POLLIN) {
                // POLLERR without a frame: the queue is broken (typically the webcam was unplugged); a
                // dequeue now could block.
                return Err(format!(
                    "{} reported an error while streaming ({revents:?}): was the webcam unplugged?",
                    device.display()
                ));
            }
            self.stream
                .dequeue(|buf| {
                    Ok(if buf.is_error() {
                        Got::Corrupt("the driver marked the frame as corrupt".to_string())
                    } else {
                        Got::Frame(buf.to_vec())
                    })
                })
                .map_err(|e| device_error(device, "reading a frame", &e))
        }
    }

    /// The [`Opener`] of real devices.
    fn open_v4l2(
        device: &Path,
        request: Request,
    ) -> std::result::Result<(Box<dyn Source>, String), String> {
        let (stream, negotiated) = open_stream(device, request)?;
        let source = V4l2Source {
            device: device.to_path_buf(),
            stream,
        };
        Ok((Box::new(source), negotiated))
    }

    /// Opens `device`, negotiates the format, size and rate, and starts streaming. Returns the stream and
    /// what was agreed, for the log.
    fn open_stream(
        device: &Path,
        request: Request,
    ) -> std::result::Result<(ReadStream, String), String> {
        let dev = Device::open(device).map_err(|e| open_error(device, &e))?;
        let caps = dev
            .capabilities()
            .map_err(|e| open_error(device, &e))?
            .device_capabilities();
        if !caps.contains(CapabilityFlags::VIDEO_CAPTURE) {
            return Err(format!(
                "{} is not a video capture device (webcams often have two /dev/video nodes, and only the \
                 first captures: `ls /dev/video*`)",
                device.display()
            ));
        }
        if !caps.contains(CapabilityFlags::STREAMING) {
            return Err(format!(
                "{} cannot stream into mmap buffers (no V4L2 streaming I/O)",
                device.display()
            ));
        }
        let offered = dev
            .formats(BufType::VIDEO_CAPTURE)
            .map(|f| f.map(|f| f.pixel_format().as_fourcc()))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| device_error(device, "listing its formats", &e))?;
        let fourcc = choose_format(device, &offered).map_err(|e| match e {
            Error::Camera(why) => why,
            e => e.to_string(),
        })?;
        let pixel_format = PixelFormat::from_fourcc(fourcc);
        let want = (request.width, request.height);
        let size = match dev.frame_sizes(pixel_format) {
            Ok(sizes) => nearest_size(&frame_sizes(&sizes), want),
            Err(e) => {
                tracing::debug!(target: "facereko::camera", "{}: no frame size list ({e}); asking for {}x{}", device.display(), want.0, want.1);
                None
            }
        }
        .unwrap_or(want);
        let capture = dev
            .video_capture(PixFormat::new(size.0, size.1, pixel_format))
            .map_err(|e| device_error(device, "setting the format", &e))?;
        let got = capture.format();
        if got.pixel_format() != pixel_format {
            return Err(format!(
                "{} did not keep {} (it switched to {})",
                device.display(),
                fourcc_name(fourcc),
                fourcc_name(got.pixel_format().as_fourcc())
            ));
        }
        let got_size = (got.width(), got.height());
        if got_size != want {
            tracing::info!(
                target: "facereko::camera",
                "{}: {}x{} is not offered; using {}x{}",
                device.display(), want.0, want.1, got_size.0, got_size.1
            );
        }
        let rate = match capture.set_frame_interval(Fract::new(1, request.framerate.max(1))) {
            Ok(interval) if interval.numerator() > 0 => format!(
                " at {} fps",
                (f64::from(interval.denominator()) / f64::from(interval.numerator())).round()
            ),
            Ok(_) => String::new(),
            Err(e) => {
                tracing::info!(target: "facereko::camera", "{}: cannot set {} fps ({e}); using the webcam's rate", device.display(), request.framerate);
                String::new()
            }
        };
        let negotiated = format!(
            "{} {}x{}{rate}",
            fourcc_name(fourcc),
            got_size.0,
            got_size.1
        );
        let stream = capture
            .into_stream()
            .map_err(|e| device_error(device, "starting the stream", &e))?;
        Ok((stream, negotiated))
    }

    fn frame_sizes(sizes: &format::FrameSizes) -> FrameSizes {
        match sizes {
            format::FrameSizes::Discrete(list) => {
                FrameSizes::Discrete(list.iter().map(|s| (s.width(), s.height())).collect())
            }
            format::FrameSizes::Stepwise(s) => FrameSizes::Stepwise {
                min: (s.min_width(), s.min_height()),
                max: (s.max_width(), s.max_height()),
                step: (s.step_width(), s.step_height()),
            },
            format::FrameSizes::Continuous(s) => FrameSizes::Stepwise {
                min: (s.min_width(), s.min_height()),
                max: (s.max_width(), s.max_height()),
                step: (1, 1),
            },
        }
    }

    /// Why `device` could not be opened, with what to do about it.
    pub(super) fn open_error(device: &Path, e: &io::Error) -> String {
        let d = device.display();
        match (e.kind(), e.raw_os_error()) {
            (io::ErrorKind::NotFound, _) => format!(
                "{d} does not exist: is the webcam plugged in? `ls /dev/video*` lists the video devices \
                 (and /dev/v4l/by-id/ names them by model)"
            ),
            (io::ErrorKind::PermissionDenied, _) => format!(
                "{d}: permission denied: the service user must be in the `video` group (`sudo usermod -aG \
                 video facereko`)"
            ),
            (_, Some(libc::ENOTTY)) | (_, Some(libc::EINVAL)) => format!(
                "{d} is not a V4L2 device (it does not answer VIDIOC_QUERYCAP): `ls /dev/video*` lists \
                 the video devices"
            ),
            _ => device_error(device, "opening it", e),
        }
    }

    /// A device error while streaming, saying whether the webcam is gone or busy.
    fn device_error(device: &Path, doing: &str, e: &io::Error) -> String {
        let d = device.display();
        match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::EIO) | Some(libc::ENXIO) | Some(libc::EPIPE) => {
                format!("{d} failed {doing} ({e}): the webcam was unplugged or reset")
            }
            Some(libc::EBUSY) => format!(
                "{d} is busy ({doing}): another program is using the webcam (`fuser {d}` names it)"
            ),
            _ => format!("{d} failed {doing}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::camera_config::CameraBackend;

    /// A real JPEG made with the `image` crate's encoder (which writes the standard Huffman tables).
    fn real_jpeg() -> Vec<u8> {
        let img = image::RgbImage::from_fn(48, 32, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    }

    /// `jpeg` without its DHT segments, as an MJPEG webcam sends it.
    fn without_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        loop {
            assert_eq!(jpeg[pos], 0xFF);
            let marker = jpeg[pos + 1];
            if marker == 0xDA {
                out.extend_from_slice(&jpeg[pos..]);
                return out;
            }
            let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
            if marker != 0xC4 {
                out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
    }

    fn decode(jpeg: &[u8]) -> image::ImageResult<image::DynamicImage> {
        image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
    }

    #[test]
    fn the_standard_huffman_tables_are_well_formed() {
        let len = usize::from(u16::from_be_bytes([STANDARD_DHT[2], STANDARD_DHT[3]]));
        assert_eq!(len + 2, STANDARD_DHT.len());
        let mut pos = 4;
        let mut classes = Vec::new();
        while pos < STANDARD_DHT.len() {
            let class = STANDARD_DHT[pos];
            let symbols: usize = STANDARD_DHT[pos + 1..pos + 17]
                .iter()
                .map(|&n| usize::from(n))
                .sum();
            classes.push((class, symbols));
            pos += 17 + symbols;
        }
        assert_eq!(pos, STANDARD_DHT.len());
        assert_eq!(classes, [(0x00, 12), (0x10, 162), (0x01, 12), (0x11, 162)]);
    }

    #[test]
    fn mjpeg_without_huffman_tables_gets_the_standard_ones() {
        let original = real_jpeg();
        let stripped = without_dht(&original);
        assert!(stripped.len() < original.len());
        // What the webcam sent is not readable as it is...
        assert!(decode(&stripped).is_err(), "a JPEG without DHT decoded");
        // ...and is, pixel for pixel, once the standard tables are in.
        let fixed = complete_jpeg(&stripped).unwrap();
        assert_eq!(fixed.len(), stripped.len() + STANDARD_DHT.len());
        assert_eq!(
            decode(&fixed).unwrap().to_rgb8(),
            decode(&original).unwrap().to_rgb8()
        );
        // A JPEG that has its tables is returned as it is.
        assert_eq!(complete_jpeg(&original).unwrap(), original);
    }

    #[test]
    fn broken_frames_are_refused_with_a_reason_not_a_panic() {
        let jpeg = real_jpeg();
        let stripped = without_dht(&jpeg);
        let err = complete_jpeg(&jpeg[..jpeg.len() / 2]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = complete_jpeg(&stripped[..stripped.len() - 2]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let err = complete_jpeg(b"\x00\x00\x00\x00garbage").unwrap_err();
        assert!(
            err.contains("not a JPEG") && err.contains("00 00 00 00"),
            "{err}"
        );
        assert!(complete_jpeg(&[]).unwrap_err().contains("empty"));
        // SOI then EOI: no frame header, no scan.
        assert!(complete_jpeg(&[0xFF, 0xD8, 0xFF, 0xD9]).is_err());
        // Every cut and a flipped byte at every place: an answer, never a panic.
        for cut in 0..jpeg.len() {
            let _ = complete_jpeg(&jpeg[..cut]);
            let _ = complete_jpeg(&stripped[..cut.min(stripped.len())]);
        }
        for i in 0..jpeg.len() {
            let mut bad = jpeg.clone();
            bad[i] ^= 0xFF;
            let _ = complete_jpeg(&bad);
        }
    }

    #[test]
    fn padding_after_the_end_of_image_is_cut() {
        let jpeg = real_jpeg();
        let mut padded = jpeg.clone();
        padded.extend([0u8; 300]);
        assert_eq!(complete_jpeg(&padded).unwrap(), jpeg);
    }

    #[test]
    fn mjpeg_is_chosen_then_jpeg_and_anything_else_is_named() {
        let dev = Path::new("/dev/video0");
        assert_eq!(choose_format(dev, &[*b"YUYV", MJPG, JPEG]).unwrap(), MJPG);
        assert_eq!(choose_format(dev, &[*b"YUYV", JPEG]).unwrap(), JPEG);
        let err = choose_format(dev, &[*b"YUYV", *b"NV12", *b"RG10"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/video0")
                && err.contains("no MJPEG")
                && err.contains("YUYV, NV12, RG10"),
            "{err}"
        );
        let err = choose_format(dev, &[]).unwrap_err().to_string();
        assert!(err.contains("no capture format"), "{err}");
        assert_eq!(fourcc_name(*b"Y16 "), "Y16");
        assert_eq!(fourcc_name([b'A', 0, 1, b'B']), "A\\x00\\x01B");
    }

    #[test]
    fn the_nearest_offered_size_is_asked_for() {
        let webcam = FrameSizes::Discrete(vec![
            (640, 480),
            (800, 600),
            (1280, 960),
            (1920, 1080),
            (320, 240),
        ]);
        assert_eq!(nearest_size(&webcam, (800, 600)), Some((800, 600)));
        // 1280x720 is not offered: 1280x960 is 240 away, 800x600 is 600, 1920x1080 is 1000.
        assert_eq!(nearest_size(&webcam, (1280, 720)), Some((1280, 960)));
        assert_eq!(nearest_size(&webcam, (4000, 3000)), Some((1920, 1080)));
        assert_eq!(nearest_size(&webcam, (64, 64)), Some((320, 240)));
        // Equally near: the larger.
        let tie = FrameSizes::Discrete(vec![(600, 400), (700, 500)]);
        assert_eq!(nearest_size(&tie, (650, 450)), Some((700, 500)));
        assert_eq!(
            nearest_size(&FrameSizes::Discrete(vec![]), (640, 480)),
            None
        );

        let stepwise = FrameSizes::Stepwise {
            min: (160, 120),
            max: (1920, 1080),
            step: (16, 8),
        };
        assert_eq!(nearest_size(&stepwise, (1280, 720)), Some((1280, 720)));
        // 1000 = 160 + 52.5 steps of 16: halfway, so the larger, 1008; 701 -> 704 (120 + 73 steps of 8).
        assert_eq!(nearest_size(&stepwise, (1000, 701)), Some((1008, 704)));
        assert_eq!(nearest_size(&stepwise, (1006, 699)), Some((1008, 696)));
        assert_eq!(nearest_size(&stepwise, (8192, 64)), Some((1920, 120)));
        // A max that is no whole number of steps above min: never past max.
        let odd = FrameSizes::Stepwise {
            min: (100, 100),
            max: (130, 130),
            step: (20, 0),
        };
        assert_eq!(nearest_size(&odd, (130, 130)), Some((120, 130)));
    }

    #[test]
    fn skipped_frames_are_logged_sparingly() {
        let logged: Vec<u64> = (1..=2000).filter(|&n| worth_logging(n)).collect();
        assert_eq!(logged, [1, 10, 100, 1000]);
    }

    #[test]
    fn config_takes_backend_v4l2_and_a_device() {
        let cfg: CameraConfig = toml::from_str(
            "backend = \"v4l2\"\ndevice = \"/dev/v4l/by-id/usb-cam-video-index0\"\n",
        )
        .unwrap();
        assert_eq!(cfg.backend, CameraBackend::V4l2);
        assert_eq!(
            cfg.device,
            PathBuf::from("/dev/v4l/by-id/usb-cam-video-index0")
        );
        assert_eq!(cfg.width, CameraConfig::default().width);
        cfg.validate().unwrap();

        let cfg: CameraConfig = toml::from_str("backend = \"v4l2\"\n").unwrap();
        assert_eq!(cfg.device, PathBuf::from("/dev/video0"));

        let cfg = CameraConfig {
            backend: CameraBackend::V4l2,
            device: PathBuf::new(),
            ..CameraConfig::default()
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("hardware.camera.device"), "{err}");
        assert!(toml::to_string(&CameraConfig::default())
            .unwrap()
            .contains("device = \"/dev/video0\""));
    }

    #[cfg(not(target_os = "linux"))]
    #[test]
    fn elsewhere_v4l2_says_it_is_only_on_linux() {
        let cfg = CameraConfig {
            backend: CameraBackend::V4l2,
            ..CameraConfig::default()
        };
        let err = crate::v4l2::open(&cfg).err().unwrap().to_string();
        assert!(err.contains("only on Linux"), "{err}");
    }

    #[cfg(target_os = "linux")]
    mod on_linux {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};

        use super::*;
        use crate::v4l2::linux::{self, Got, Source};

        fn v4l2_config(device: PathBuf) -> CameraConfig {
            CameraConfig {
                backend: CameraBackend::V4l2,
                device,
                timeout_ms: 2000,
                ..CameraConfig::default()
            }
        }

        #[tokio::test]
        async fn a_missing_device_is_named_with_what_to_do() {
            let dir = tempfile::tempdir().unwrap();
            let missing = dir.path().join("video7");
            let cam = crate::v4l2::open(&v4l2_config(missing.clone())).unwrap();
            assert!(cam.describe().contains("video7"), "{}", cam.describe());
            let started = Instant::now();
            let err = cam.capture().await.unwrap_err().to_string();
            assert!(
                err.contains(&missing.display().to_string()) && err.contains("ls /dev/video*"),
                "{err}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "a missing device is reported at once"
            );
            // Every capture tries again, and says the same while the device is missing.
            let err = cam.capture().await.unwrap_err().to_string();
            assert!(err.contains("does not exist"), "{err}");
        }

        #[tokio::test]
        async fn a_file_that_is_no_video_device_is_refused() {
            let file = tempfile::NamedTempFile::new().unwrap();
            let cam = V4l2Camera::new(&v4l2_config(file.path().to_path_buf()));
            let err = cam.capture().await.unwrap_err().to_string();
            assert!(
                err.contains("is not a V4L2 device") && err.contains("ls /dev/video*"),
                "{err}"
            );
        }

        /// A scripted webcam: a frame every [`FRAME_PERIOD`] while the file at the device path exists, the
        /// file's content being the frame; removing the file unplugs it.
        struct FileWebcam {
            path: PathBuf,
            next_at: Instant,
        }

        const FRAME_PERIOD: Duration = Duration::from_millis(40);

        impl Source for FileWebcam {
            fn next(&mut self, wait: Duration) -> std::result::Result<Got, String> {
                let now = Instant::now();
                if now < self.next_at {
                    std::thread::sleep((self.next_at - now).min(wait));
                    if Instant::now() < self.next_at {
                        return Ok(Got::Nothing);
                    }
                }
                self.next_at += FRAME_PERIOD;
                std::fs::read(&self.path).map(Got::Frame).map_err(|_| {
                    format!(
                        "{} failed reading a frame: the webcam was unplugged",
                        self.path.display()
                    )
                })
            }
        }

        fn open_file_webcam(
            device: &Path,
            _: linux::Request,
        ) -> std::result::Result<(Box<dyn Source>, String), String> {
            if !device.exists() {
                return Err(format!("{} does not exist", device.display()));
            }
            let webcam = FileWebcam {
                path: device.to_path_buf(),
                next_at: Instant::now(),
            };
            Ok((Box::new(webcam), "MJPG 48x32 at 25 fps".into()))
        }

        /// Plugs the scripted webcam in (again) showing `frame`; written whole, never half.
        fn show(device: &Path, frame: &[u8]) {
            let tmp = device.with_extension("tmp");
            std::fs::write(&tmp, frame).unwrap();
            std::fs::rename(&tmp, device).unwrap();
        }

        /// A second, different real JPEG.
        fn other_jpeg() -> Vec<u8> {
            let img = image::GrayImage::from_fn(40, 24, |x, _| image::Luma([(x * 6) as u8]));
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new(&mut out)
                .encode_image(&img)
                .unwrap();
            out
        }

        #[tokio::test]
        async fn a_capture_takes_a_fresh_frame_and_an_unplugged_webcam_is_reopened() {
            let dir = tempfile::tempdir().unwrap();
            let device = dir.path().join("video0");
            let (a, b) = (real_jpeg(), other_jpeg());
            show(&device, &a);
            let cam = V4l2Camera::with_opener(&v4l2_config(device.clone()), open_file_webcam);
            assert_eq!(cam.capture().await.unwrap().bytes, a);
            assert!(cam.describe().contains("MJPG 48x32"), "{}", cam.describe());
            // The webcam now sees someone else: the next capture shows them, not a frame from before.
            show(&device, &b);
            assert_eq!(cam.capture().await.unwrap().bytes, b);

            // Unplugged: the capture fails at once with the reason...
            std::fs::remove_file(&device).unwrap();
            let started = Instant::now();
            let err = cam.capture().await.unwrap_err().to_string();
            assert!(err.contains("unplugged"), "{err}");
            assert!(started.elapsed() < Duration::from_secs(1), "{err}");
            // ...the next one tries to open it again...
            let err = cam.capture().await.unwrap_err().to_string();
            assert!(err.contains("does not exist"), "{err}");
            // ...and once it is back, captures work again.
            show(&device, &a);
            assert_eq!(cam.capture().await.unwrap().bytes, a);
        }

        #[tokio::test]
        async fn frames_that_are_not_whole_jpegs_are_skipped_and_reported() {
            let dir = tempfile::tempdir().unwrap();
            let device = dir.path().join("video0");
            let jpeg = real_jpeg();
            show(&device, &jpeg[..jpeg.len() - 40]);
            let cfg = CameraConfig {
                timeout_ms: 600,
                ..v4l2_config(device.clone())
            };
            let cam = V4l2Camera::with_opener(&cfg, open_file_webcam);
            let err = cam.capture().await.unwrap_err().to_string();
            assert!(
                err.contains("not one whole JPEG") && err.contains("truncated"),
                "{err}"
            );
            // MJPEG without Huffman tables is completed, and the stream went on all along.
            show(&device, &without_dht(&jpeg));
            let photo = cam.capture().await.unwrap();
            assert_eq!(
                decode(&photo.bytes).unwrap().to_rgb8(),
                decode(&jpeg).unwrap().to_rgb8()
            );
        }

        static FROZEN_CLOSED: AtomicBool = AtomicBool::new(false);

        /// A webcam that streams nothing; it notes when the capture thread closes it.
        struct FrozenWebcam;

        impl Source for FrozenWebcam {
            fn next(&mut self, wait: Duration) -> std::result::Result<Got, String> {
                std::thread::sleep(wait);
                Ok(Got::Nothing)
            }
        }

        impl Drop for FrozenWebcam {
            fn drop(&mut self) {
                FROZEN_CLOSED.store(true, Ordering::SeqCst);
            }
        }

        #[tokio::test]
        async fn a_silent_webcam_times_out_and_dropping_the_camera_closes_it() {
            fn open_frozen(
                _: &Path,
                _: linux::Request,
            ) -> std::result::Result<(Box<dyn Source>, String), String> {
                Ok((Box::new(FrozenWebcam), "MJPG 640x480".into()))
            }
            let cfg = CameraConfig {
                timeout_ms: 300,
                ..v4l2_config(PathBuf::from("/dev/video9"))
            };
            let cam = V4l2Camera::with_opener(&cfg, open_frozen);
            let err = cam.capture().await.unwrap_err();
            assert!(matches!(err, Error::CameraTimeout(300)), "{err}");
            assert!(!FROZEN_CLOSED.load(Ordering::SeqCst));
            drop(cam);
            let started = Instant::now();
            while !FROZEN_CLOSED.load(Ordering::SeqCst) {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "the capture thread did not stop"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// Streams from a real webcam: `FACEREKO_TEST_V4L2_DEVICE=/dev/video0 cargo test -p
        /// facereko-hardware v4l2 -- --ignored`.
        #[tokio::test]
        #[ignore = "needs a V4L2 device: set FACEREKO_TEST_V4L2_DEVICE=/dev/video0"]
        async fn a_real_webcam_gives_fresh_whole_jpegs() {
            let device = std::env::var("FACEREKO_TEST_V4L2_DEVICE")
                .expect("set FACEREKO_TEST_V4L2_DEVICE to a V4L2 device, e.g. /dev/video0");
            let cfg = CameraConfig {
                width: 640,
                height: 480,
                timeout_ms: 10_000,
                ..v4l2_config(PathBuf::from(device))
            };
            let cam = V4l2Camera::new(&cfg);
            cam.warm_up().await.unwrap();
            let describe = cam.describe();
            assert!(
                describe.contains("MJPG") || describe.contains("JPEG"),
                "{describe}"
            );
            let mut previous = Vec::new();
            for _ in 0..3 {
                let photo = cam.capture().await.unwrap();
                assert_eq!(photo.format, facereko_domain::ImageFormat::Jpeg);
                let img = decode(&photo.bytes).expect("the webcam's frame decodes");
                assert!(img.width() >= 64 && img.height() >= 64);
                assert_ne!(photo.bytes, previous, "each capture is a new frame");
                previous = photo.bytes;
            }
        }
    }
}
