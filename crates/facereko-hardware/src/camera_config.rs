//! `[hardware.camera]`: which camera backend and its settings (a leaf, so the backends in `camera` and
//! `v4l2` share it without depending on each other).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
