//! Commissioning a door: `card read`, `selftest outputs|inputs` and `doctor`, the three commands that make
//! a new installation work the first time.
//!
//! Which devices they use: a running daemon owns the reader, the outputs and the inputs, so `card read`
//! asks it for the next tap over the control socket rather than fighting for the SPI device, and the
//! self-tests refuse to run beside it. Without a daemon they open the devices `facereko_hardware::select`
//! picks, as the daemon does: the real ones on a Raspberry Pi, the bench rig with `hardware.mode =
//! "bench"` (the real driver over a software MFRC522 and logged GPIO lines, see
//! `facereko_hardware::bench`), and otherwise say what the simulated devices can and cannot do.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use facereko_domain::CardUid;
use facereko_hardware::reader::PolledReader;
use facereko_hardware::sim::{SimCamera, SimOutputs};
use facereko_hardware::{select, Rig};
use facereko_hardware::{Camera, CardReader as _, CardTap, InputEvent, Output, Outputs};
use facereko_store::Store;
use facereko_vision::EngineKind;
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::control::{self, Request};

mod card;
mod doctor;
mod selftest;

pub use card::{card, CardCommand};
pub use doctor::{doctor, DoctorArgs};
pub use selftest::{selftest, SelftestCommand};

// ---- which devices -------------------------------------------------------------------------------------

/// The running daemon's status, when one answers on this data directory's control socket.
async fn daemon_status(data_dir: &Path) -> Option<serde_json::Value> {
    if !control::socket_path(data_dir).exists() {
        return None;
    }
    let ask = control::request(data_dir, &Request::Status);
    match tokio::time::timeout(Duration::from_secs(3), ask).await {
        Ok(Ok(reply)) => Some(reply.data),
        _ => None,
    }
}
