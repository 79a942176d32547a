//! The door's hardware boundary: a card reader, a camera, the outputs (red and green LEDs, buzzer, lock
//! relay) and the inputs (door contact, exit button).
//!
//! Every device is a trait with a real implementation and a simulated one in [`sim`], so the whole system
//! runs on a laptop and tests can assert the exact sequence and timing of every output change.
//!
//! The one design decision a newcomer must know: outputs speak in *active* levels, not pin levels.
//! `set(Output::Relay, true)` means "lock released" whatever the wiring's polarity; an implementation maps
//! that to the pin. [`Outputs::lock_down`] is the fail-secure state (relay locked, buzzer and green off)
//! that start-up, shutdown and a crashed controller all fall back to.
//!
//! Where things are: [`mfrc522`] is the RFID driver over any embedded-hal 1.0 `SpiDevice` and [`reader`]
//! polls it on its own thread (re-initialising a reader that stops answering, with a [`reader::ReaderStatus`]
//! for the home page); [`gpio`] maps outputs and inputs to line levels (polarity, debounce); [`camera`] runs
//! `rpicam-vid` kept warm, `rpicam-still` or any command that prints a JPEG; [`config`] is the `[hardware]`
//! section; [`pi`] detects a Raspberry Pi and opens the real devices (spidev, GPIO character device);
//! [`safety`] locks the door down on panic, signal and exit; [`card_type`] names a card from ATQA/SAK;

use std::fmt;

use async_trait::async_trait;
use facereko_domain::{CardUid, Photo};

pub mod bench;
pub mod camera;
pub mod camera_config;
pub mod card_type;
pub mod config;
pub mod gpio;
pub mod mfrc522;
pub mod mfrc522_sim;
pub mod mjpeg;
pub mod pi;
pub mod reader;
pub mod safety;
mod select;
pub mod sim;
pub mod v4l2;
pub use select::{select, Rig};

/// Errors of the hardware crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `[hardware]` setting that cannot work.
    #[error("{0}")]
    Config(String),
    #[error("card reader: {0}")]
    Reader(String),
    #[error("camera: {0}")]
    Camera(String),
    #[error("camera gave no frame within {0} ms")]
    CameraTimeout(u64),
    #[error("output {output}: {reason}")]
    Output { output: Output, reason: String },
    #[error("inputs: {0}")]
    Inputs(String),
    #[error("{0} is closed")]
    Closed(&'static str),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One card seen on the reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardTap {
    pub uid: CardUid,
    /// Answer To Request, type A (from REQA/WUPA), when the reader reports it.
    pub atqa: Option<u16>,
    /// Select Acknowledge of the last cascade level, when the reader reports it.
    pub sak: Option<u8>,
}

impl CardTap {
    pub fn new(uid: CardUid) -> Self {
        Self {
            uid,
            atqa: None,
            sak: None,
        }
    }
}

/// A card reader. A card resting on the reader may be reported on every poll: debouncing is the
/// controller's job, not the reader's.
#[async_trait]
pub trait CardReader: Send {
    /// Waits for the next card. An error is a reader fault (the caller logs it and asks again);
    /// [`Error::Closed`] means no card will ever come again.
    async fn next_card(&mut self) -> Result<CardTap>;
}

/// A camera that takes one still photo on request.
#[async_trait]
pub trait Camera: Send + Sync {
    /// Takes a photo. Implementations bound the time they take and report [`Error::CameraTimeout`].
    async fn capture(&self) -> Result<Photo>;
    /// What this camera is, for logs and `doctor` (`simulated: ./photos`, `rpicam-still`, …).
    fn describe(&self) -> String;
}

/// The door's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Output {
    Red,
    Green,
    Buzzer,
    /// Active means the lock is released (door can open).
    Relay,
}

impl Output {
    pub const ALL: [Output; 4] = [Output::Red, Output::Green, Output::Buzzer, Output::Relay];

    pub fn as_str(self) -> &'static str {
        match self {
            Output::Red => "red",
            Output::Green => "green",
            Output::Buzzer => "buzzer",
            Output::Relay => "relay",
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// LEDs, buzzer and lock relay. Setting an output is quick and never blocks on I/O for long, so it is a
/// plain method; `Send + Sync` lets a shutdown hook drive the safe state from any thread.
pub trait Outputs: Send + Sync {
    /// Drives `output` active (`true`) or inactive.
    fn set(&self, output: Output, active: bool) -> Result<()>;

    /// The fail-secure state: lock relay locked, buzzer silent, green off. Tries every output even when one
    /// fails and reports the first failure.
    fn lock_down(&self) -> Result<()> {
        let mut first = Ok(());
        for (output, level) in [
            (Output::Relay, false),
            (Output::Buzzer, false),
            (Output::Green, false),
        ] {
            if let Err(e) = self.set(output, level) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

/// A change on one of the door's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputEvent {
    DoorOpened,
    DoorClosed,
    ExitPressed,
}

/// Door contact and exit button.
#[async_trait]
pub trait Inputs: Send {
    /// Waits for the next (debounced) change. [`Error::Closed`] means none will come again.
    async fn next_event(&mut self) -> Result<InputEvent>;
}
