//! Simulated devices: good enough to run the whole door on a laptop, and precise enough for tests.
//!
//! [`SimOutputs`] records every change with the time it happened (tokio's clock, so a test with a paused
//! clock sees exact durations). [`card_reader`] and [`inputs`] return the device and a cloneable handle that
//! feeds it; the daemon's control socket holds the handles. [`SimCamera`] returns the bytes of a file, or of
//! the files in a folder one after the other: regular files only, at most a real frame's size
//! ([`crate::camera::MAX_FRAME`]), so a device or a named pipe given as a photo is refused, never read.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use facereko_domain::{ImageFormat, Photo};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{Camera, CardReader, CardTap, Error, InputEvent, Inputs, Output, Outputs, Result};

/// Taps queued beyond this are refused rather than buffered without bound.
const QUEUE: usize = 64;

/// A simulated card reader, fed by a [`SimTapper`].
#[derive(Debug)]
pub struct SimCardReader {
    rx: mpsc::Receiver<CardTap>,
}

/// Hands cards to a [`SimCardReader`].
#[derive(Clone, Debug)]
pub struct SimTapper {
    tx: mpsc::Sender<CardTap>,
}

/// A simulated reader and the handle that taps cards on it.
pub fn card_reader() -> (SimCardReader, SimTapper) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (SimCardReader { rx }, SimTapper { tx })
}

impl SimTapper {
    /// Puts a card on the reader.
    pub fn tap(&self, tap: CardTap) -> Result<()> {
        self.tx.try_send(tap).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Reader("too many taps queued".into()),
            mpsc::error::TrySendError::Closed(_) => Error::Closed("simulated card reader"),
        })
    }
}

#[async_trait]
impl CardReader for SimCardReader {
    async fn next_card(&mut self) -> Result<CardTap> {
        self.rx
            .recv()
            .await
            .ok_or(Error::Closed("simulated card reader"))
    }
}

/// Simulated door contact and exit button, fed by a [`SimInputsHandle`].
#[derive(Debug)]
pub struct SimInputs {
    rx: mpsc::Receiver<InputEvent>,
}

#[derive(Clone, Debug)]
pub struct SimInputsHandle {
    tx: mpsc::Sender<InputEvent>,
}

pub fn inputs() -> (SimInputs, SimInputsHandle) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (SimInputs { rx }, SimInputsHandle { tx })
}

impl SimInputsHandle {
    pub fn send(&self, event: InputEvent) -> Result<()> {
        self.tx
            .try_send(event)
            .map_err(|_| Error::Closed("simulated inputs"))
    }
}

#[async_trait]
impl Inputs for SimInputs {
    async fn next_event(&mut self) -> Result<InputEvent> {
        self.rx
            .recv()
            .await
            .ok_or(Error::Closed("simulated inputs"))
    }
}

/// One recorded output change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub at: Instant,
    pub output: Output,
    pub active: bool,
}

#[derive(Debug, Default)]
struct OutputsState {
    levels: [bool; 4],
    log: Vec<Change>,
}

/// Simulated outputs that remember their levels and every change. Setting an output to the level it
/// already has is not recorded as a change.
#[derive(Clone, Debug, Default)]
pub struct SimOutputs {
    state: Arc<Mutex<OutputsState>>,
}

fn index(output: Output) -> usize {
    match output {
        Output::Red => 0,
        Output::Green => 1,
        Output::Buzzer => 2,
        Output::Relay => 3,
    }
}

impl SimOutputs {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, OutputsState> {
        // A panic while holding this lock cannot leave the log half-written, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current level of an output.
    pub fn level(&self, output: Output) -> bool {
        self.lock().levels[index(output)]
    }

    /// Every change so far, oldest first.
    pub fn changes(&self) -> Vec<Change> {
        self.lock().log.clone()
    }

    /// Forgets the recorded changes (levels are kept).
    pub fn clear(&self) {
        self.lock().log.clear();
    }
}

impl Outputs for SimOutputs {
    fn set(&self, output: Output, active: bool) -> Result<()> {
        let mut st = self.lock();
        let i = index(output);
        if st.levels[i] != active {
            st.levels[i] = active;
            st.log.push(Change {
                at: Instant::now(),
                output,
                active,
            });
            tracing::debug!(target: "facereko::sim", "{output} {}", if active { "on" } else { "off" });
        }
        Ok(())
    }
}

/// What the simulated camera sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraSource {
    /// Nothing set yet: captures fail with a message saying how to set one.
    Nothing,
    /// Always this file.
    File(PathBuf),
    /// The image files of this folder (sorted by name), one per capture, round and round.
    Folder(PathBuf),
    /// The image files of this folder played as a video at `fps` frames per second from when the
    /// source was set: a capture gets the frame showing at that moment, as a live camera would. At the
    /// end the stream starts over (`looped`) or keeps showing its last frame.
    Stream {
        dir: PathBuf,
        fps: u32,
        looped: bool,
    },
}

#[derive(Debug)]
struct CameraState {
    source: CameraSource,
    next: usize,
    /// When the source was set (a stream's time zero).
    since: tokio::time::Instant,
}

/// A camera that "sees" image files. Cloning shares the source, so the control socket can change what a
/// running daemon's camera sees.
#[derive(Clone, Debug)]
pub struct SimCamera {
    state: Arc<Mutex<CameraState>>,
}

impl SimCamera {
    pub fn new(source: CameraSource) -> Self {
        Self {
            state: Arc::new(Mutex::new(CameraState {
                source,
                next: 0,
                since: tokio::time::Instant::now(),
            })),
        }
    }

    /// A source from a path: a folder becomes [`CameraSource::Folder`], a regular file a
    /// [`CameraSource::File`]. The path must exist; a device, named pipe or socket is refused.
    pub fn source_for(path: &Path) -> Result<CameraSource> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Camera(format!("{}: {e}", path.display())))?;
        if meta.is_dir() {
            return Ok(CameraSource::Folder(path.to_path_buf()));
        }
        facereko_files::check_regular_file(path)
            .map_err(|e| Error::Camera(format!("{}: {e}", path.display())))?;
        Ok(CameraSource::File(path.to_path_buf()))
    }

    /// A stream source: `dir` must be a folder with at least one image; `fps` from 1 to 60.
    pub fn stream_source(dir: &Path, fps: u32, looped: bool) -> Result<CameraSource> {
        if !(1..=60).contains(&fps) {
            return Err(Error::Camera(format!(
                "a stream plays at 1 to 60 frames per second, not {fps}"
            )));
        }
        match Self::source_for(dir)? {
            CameraSource::Folder(dir) => {
                images_in(&dir)?;
                Ok(CameraSource::Stream { dir, fps, looped })
            }
            _ => Err(Error::Camera(format!(
                "{} is a file; a stream plays a folder of frames (for one image use `sim image`)",
                dir.display()
            ))),
        }
    }

    pub fn set_source(&self, source: CameraSource) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.source = source;
        st.next = 0;
        st.since = tokio::time::Instant::now();
    }

    pub fn source(&self) -> CameraSource {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .source
            .clone()
    }

    /// The file the next capture will read, advancing a folder's position.
    fn next_file(&self) -> Result<PathBuf> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match st.source.clone() {
            CameraSource::Nothing => Err(Error::Camera(
                "the simulated camera sees nothing yet: set an image with `facereko sim image FILE`"
                    .into(),
            )),
            CameraSource::File(p) => Ok(p),
            CameraSource::Folder(dir) => {
                let mut files = images_in(&dir)?;
                let i = st.next % files.len();
                st.next = i + 1;
                Ok(files.swap_remove(i))
            }
            CameraSource::Stream { dir, fps, looped } => {
                let mut files = images_in(&dir)?;
                let shown = st.since.elapsed().as_secs_f64() * f64::from(fps);
                let n = files.len();
                let i = if looped {
                    (shown as usize) % n
                } else {
                    (shown as usize).min(n - 1)
                };
                Ok(files.swap_remove(i))
            }
        }
    }
}

/// The image files of `dir`, sorted by name; none is an error.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Camera(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| ImageFormat::from_path(p).is_some() && p.is_file())
        .collect();
    if files.is_empty() {
        return Err(Error::Camera(format!(
            "{} holds no .jpg or .png file",
            dir.display()
        )));
    }
    files.sort();
    Ok(files)
}

#[async_trait]
impl Camera for SimCamera {
    async fn capture(&self) -> Result<Photo> {
        let path = self.next_file()?;
        let read = path.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            facereko_files::read_regular_file(&read, crate::camera::MAX_FRAME as u64)
        })
        .await
        .map_err(|e| Error::Camera(format!("{}: {e}", path.display())))?
        .map_err(|e| Error::Camera(format!("{}: {e}", path.display())))?;
        Photo::from_bytes(bytes)
            .ok_or_else(|| Error::Camera(format!("{} is neither a JPEG nor a PNG", path.display())))
    }

    fn describe(&self) -> String {
        match self.source() {
            CameraSource::Nothing => "simulated camera (no image set)".into(),
            CameraSource::File(p) => format!("simulated camera: {}", p.display()),
            CameraSource::Folder(p) => format!("simulated camera: folder {}", p.display()),
            CameraSource::Stream { dir, fps, looped } => format!(
                "simulated camera: stream of {} at {fps} frames/s{}",
                dir.display(),
                if looped { ", looped" } else { "" }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facereko_domain::CardUid;
    use std::time::Duration;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10];
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0";

    #[tokio::test]
    async fn tapper_feeds_the_reader_in_order() {
        let (mut reader, tapper) = card_reader();
        let a: CardUid = "04:A2:2B:19".parse().unwrap();
        let b: CardUid = "04:11:22:33:44:55:66".parse().unwrap();
        tapper.tap(CardTap::new(a.clone())).unwrap();
        tapper.tap(CardTap::new(b.clone())).unwrap();
        assert_eq!(reader.next_card().await.unwrap().uid, a);
        assert_eq!(reader.next_card().await.unwrap().uid, b);
        drop(tapper);
        assert!(matches!(reader.next_card().await, Err(Error::Closed(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn outputs_record_changes_with_time_and_skip_repeats() {
        let out = SimOutputs::new();
        let t0 = Instant::now();
        out.set(Output::Red, true).unwrap();
        out.set(Output::Red, true).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        out.set(Output::Red, false).unwrap();
        let log = out.changes();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].at - t0, std::time::Duration::from_millis(500));
        assert!(!out.level(Output::Red));
    }

    #[test]
    fn lock_down_releases_nothing() {
        let out = SimOutputs::new();
        for o in Output::ALL {
            out.set(o, true).unwrap();
        }
        out.lock_down().unwrap();
        assert!(!out.level(Output::Relay));
        assert!(!out.level(Output::Buzzer));
        assert!(!out.level(Output::Green));
    }

    #[tokio::test]
    async fn camera_cycles_through_a_folder_and_refuses_non_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.png"), PNG).unwrap();
        std::fs::write(dir.path().join("a.jpg"), JPEG).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a photo").unwrap();
        let cam = SimCamera::new(SimCamera::source_for(dir.path()).unwrap());
        assert_eq!(cam.capture().await.unwrap().bytes, JPEG);
        assert_eq!(cam.capture().await.unwrap().bytes, PNG);
        assert_eq!(cam.capture().await.unwrap().bytes, JPEG);

        let bad = dir.path().join("bad.jpg");
        std::fs::write(&bad, b"garbage").unwrap();
        cam.set_source(CameraSource::File(bad));
        let err = cam.capture().await.unwrap_err().to_string();
        assert!(err.contains("neither a JPEG nor a PNG"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_shows_the_frame_of_the_moment_and_holds_or_loops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Vec<u8>> = (0..3u8).map(|i| [JPEG, &[i]].concat()).collect();
        for (i, f) in frames.iter().enumerate() {
            std::fs::write(dir.path().join(format!("{i:03}.jpg")), f).unwrap();
        }
        let cam = SimCamera::new(CameraSource::Nothing);
        cam.set_source(SimCamera::stream_source(dir.path(), 5, false).unwrap());
        let at = |ms: u64| {
            let cam = cam.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                cam.capture().await.unwrap().bytes
            }
        };
        // Two captures in the same frame time see the same frame (a live camera, not a slideshow).
        assert_eq!(at(10).await, frames[0]);
        assert_eq!(at(10).await, frames[0]);
        assert_eq!(at(200).await, frames[1]);
        assert_eq!(at(200).await, frames[2]);
        assert_eq!(at(5000).await, frames[2], "the last frame stays");
        cam.set_source(SimCamera::stream_source(dir.path(), 5, true).unwrap());
        assert_eq!(at(610).await, frames[0], "looped: frame 3 is frame 0 again");
        assert!(cam.describe().contains("5 frames/s, looped"));

        let err = SimCamera::stream_source(dir.path(), 0, false).unwrap_err();
        assert!(err.to_string().contains("1 to 60"), "{err}");
        let err = SimCamera::stream_source(&dir.path().join("000.jpg"), 5, false).unwrap_err();
        assert!(err.to_string().contains("sim image"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = SimCamera::stream_source(empty.path(), 5, false).unwrap_err();
        assert!(err.to_string().contains("no .jpg or .png"), "{err}");
    }

    #[tokio::test]
    async fn camera_without_a_source_says_how_to_set_one() {
        let cam = SimCamera::new(CameraSource::Nothing);
        let err = cam.capture().await.unwrap_err().to_string();
        assert!(err.contains("facereko sim image"), "{err}");
    }

    fn mkfifo(path: &Path) {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
    }

    #[test]
    fn sim_image_refuses_devices_and_named_pipes() {
        // Regression: `sim image /dev/zero` was accepted and every tap read it until memory ran out.
        let err = SimCamera::source_for(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("door.jpg");
        mkfifo(&fifo);
        let err = SimCamera::source_for(&fifo).unwrap_err().to_string();
        assert!(err.contains("named pipe"), "{err}");
    }

    #[tokio::test]
    async fn a_capture_never_blocks_on_a_named_pipe_or_reads_a_device() {
        // Regression: a named pipe in the camera's folder (or put in place of its file) left one blocked
        // thread behind per tap, and /dev/zero was read without limit.
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("a.jpg");
        std::fs::write(&photo, JPEG).unwrap();
        let cam = SimCamera::new(SimCamera::source_for(&photo).unwrap());
        std::fs::remove_file(&photo).unwrap();
        mkfifo(&photo);
        let capture = tokio::time::timeout(std::time::Duration::from_secs(5), cam.capture());
        let err = capture
            .await
            .expect("the capture blocked on a named pipe")
            .unwrap_err()
            .to_string();
        assert!(err.contains("named pipe"), "{err}");

        cam.set_source(CameraSource::File("/dev/zero".into()));
        let capture = tokio::time::timeout(std::time::Duration::from_secs(5), cam.capture());
        let err = capture.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("character device"), "{err}");

        // In a folder, a pipe named like a photo is skipped.
        let folder = tempfile::tempdir().unwrap();
        mkfifo(&folder.path().join("a.jpg"));
        std::fs::write(folder.path().join("b.jpg"), JPEG).unwrap();
        cam.set_source(SimCamera::source_for(folder.path()).unwrap());
        assert_eq!(cam.capture().await.unwrap().bytes, JPEG);
        assert_eq!(cam.capture().await.unwrap().bytes, JPEG);
    }

    #[tokio::test]
    async fn a_capture_is_bounded_by_the_frame_size_not_the_file_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.jpg");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(crate::camera::MAX_FRAME as u64 + 1).unwrap();
        let cam = SimCamera::new(CameraSource::File(big));
        let err = cam.capture().await.unwrap_err().to_string();
        assert!(err.contains("larger than 16 MiB"), "{err}");
    }
}
