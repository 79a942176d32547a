//! The Raspberry Pi: deciding whether to use real devices ([`detect`]) and opening them (MFRC522 on spidev,
//! outputs and inputs on the GPIO character device, the configured camera).
//!
//! Everything here is Linux glue around the portable pieces ([`crate::mfrc522`], [`crate::reader`],
//! [`crate::gpio`], [`crate::camera`]); on other systems the `open_*` functions return an error that says
//! so, and [`detect`] picks the simulated devices.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::camera::open_camera;
use crate::config::{GpioConfig, HardwareConfig, HardwareMode, ReaderConfig};
use crate::mfrc522::{ChipInfo, SelfTest};
use crate::reader::{PolledReader, ReaderStatusHandle};
use crate::{Camera, Inputs, Outputs, Result};

#[cfg(target_os = "linux")]
mod linux;

/// Where the device tree names the board.
pub const MODEL_PATH: &str = "/proc/device-tree/model";

/// What [`detect`] decided, and why, for the start-up log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// Use the real devices (`true`) or the simulated ones.
    pub real: bool,
    /// The board model from the device tree, when there is one.
    pub model: Option<String>,
    /// One line for the log: which devices and why.
    pub summary: String,
}

/// Decides between real and simulated devices: `hardware.mode = "auto"` uses the real ones on a Raspberry
/// Pi (by `/proc/device-tree/model`) whose SPI device exists, and the simulated ones elsewhere. The CLI's
/// `--simulate` should win over this (check it first).
pub fn detect(cfg: &HardwareConfig) -> Detection {
    detect_with(cfg, Path::new(MODEL_PATH), &cfg.reader.spi_device)
}

/// [`detect`] with the model file and SPI device given (tests point them into a temporary folder).
pub fn detect_with(cfg: &HardwareConfig, model_path: &Path, spi_device: &Path) -> Detection {
    let model = std::fs::read(model_path).ok().map(|b| {
        String::from_utf8_lossy(&b)
            .trim_end_matches('\0')
            .trim()
            .to_string()
    });
    let on = model.as_deref().unwrap_or("this machine");
    match cfg.mode {
        HardwareMode::Simulated => Detection {
            real: false,
            summary: "simulated devices (hardware.mode = \"simulated\")".into(),
            model,
        },
        HardwareMode::Bench => Detection {
            real: false,
            summary: "bench rig (hardware.mode = \"bench\")".into(),
            model,
        },
        HardwareMode::Pi => Detection {
            real: true,
            summary: format!("real devices on {on} (hardware.mode = \"pi\")"),
            model,
        },
        HardwareMode::Auto => {
            let is_pi = model.as_deref().is_some_and(|m| m.contains("Raspberry Pi"));
            if !is_pi {
                return Detection {
                    real: false,
                    summary: format!(
                        "simulated devices: no Raspberry Pi detected ({} {}); set hardware.mode = \"pi\" \
                         to use real devices on another board",
                        model_path.display(),
                        if model.is_some() {
                            format!("says {on:?}")
                        } else {
                            "is missing".to_string()
                        }
                    ),
                    model,
                };
            }
            if !spi_device.exists() {
                return Detection {
                    real: false,
                    summary: format!(
                        "simulated devices: {on} found but {} is missing, so SPI is not enabled \
                         (`sudo raspi-config nonint do_spi 0` or `dtparam=spi=on` in \
                         /boot/firmware/config.txt, then reboot)",
                        spi_device.display()
                    ),
                    model,
                };
            }
            Detection {
                real: true,
                summary: format!(
                    "real devices on {on}: MFRC522 on {}, GPIO, camera",
                    spi_device.display()
                ),
                model,
            }
        }
    }
}

/// Every real device, opened in the safe order: outputs first (driven to the safe state at once), then
/// the inputs, the reader and the camera.
pub struct PiDevices {
    pub outputs: Arc<dyn Outputs>,
    pub inputs: Box<dyn Inputs>,
    pub reader: PolledReader,
    /// Keep a clone for the home page: it outlives the reader moving into the controller.
    pub reader_status: ReaderStatusHandle,
    pub camera: Box<dyn Camera>,
}

impl std::fmt::Debug for PiDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiDevices")
            .field("reader", &self.reader_status.get())
            .field("camera", &self.camera.describe())
            .finish()
    }
}

/// Opens every real device from `cfg` (validated here).
pub fn open(cfg: &HardwareConfig) -> Result<PiDevices> {
    cfg.validate()?;
    let outputs = open_outputs(&cfg.gpio)?;
    let inputs = open_inputs(&cfg.gpio)?;
    let reader = open_card_reader(&cfg.reader, &cfg.gpio)?;
    let reader_status = reader.status_handle();
    let camera = open_camera(&cfg.camera)?;
    Ok(PiDevices {
        outputs,
        inputs,
        reader,
        reader_status,
        camera,
    })
}

/// The four outputs on the GPIO chip, already in the safe state (every output inactive: relay locked).
/// Dropping the last handle drives them safe again before the lines are released.
pub fn open_outputs(cfg: &GpioConfig) -> Result<Arc<dyn Outputs>> {
    #[cfg(target_os = "linux")]
    {
        linux::open_outputs(cfg)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cfg;
        Err(not_linux())
    }
}

/// Door contact and exit button, debounced. With neither wired, the returned inputs never report.
pub fn open_inputs(cfg: &GpioConfig) -> Result<Box<dyn Inputs>> {
    #[cfg(target_os = "linux")]
    {
        linux::open_inputs(cfg)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cfg;
        Err(not_linux())
    }
}

/// The MFRC522 on `reader.spi_device`, polled on its own thread. Opening succeeds even when the chip does
/// not answer yet: the poller keeps re-initialising it and [`PolledReader::status`] says why it fails.
/// Only a missing or inaccessible SPI device (or reset line) is an error here.
pub fn open_card_reader(reader: &ReaderConfig, gpio: &GpioConfig) -> Result<PolledReader> {
    #[cfg(target_os = "linux")]
    {
        linux::open_card_reader(reader, gpio)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (reader, gpio);
        Err(not_linux())
    }
}

/// For `doctor`: opens the SPI device, resets the chip and reads its version register, then lets go.
/// The error names the register that failed and what to check.
pub fn probe_reader(reader: &ReaderConfig, gpio: &GpioConfig) -> Result<ChipInfo> {
    #[cfg(target_os = "linux")]
    {
        linux::probe_reader(reader, gpio)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (reader, gpio);
        Err(not_linux())
    }
}

/// For `doctor --deep`/commissioning: the datasheet's digital self-test of the MFRC522 (about 100 ms; the
/// chip is re-initialised afterwards). Clones without a published reference report
/// [`SelfTest::NoReference`].
pub fn self_test_reader(reader: &ReaderConfig, gpio: &GpioConfig) -> Result<SelfTest> {
    #[cfg(target_os = "linux")]
    {
        linux::self_test_reader(reader, gpio)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (reader, gpio);
        Err(not_linux())
    }
}

/// One configured line as `doctor` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineCheck {
    /// The config key (`red`, `relay`, `door_contact`, `reset`, …).
    pub key: String,
    pub offset: u32,
    /// The line's name on the chip (`GPIO17`), when it has one.
    pub name: String,
    /// Who holds the line now, if anyone (`facereko` when the daemon runs).
    pub used_by: Option<String>,
}

/// The GPIO chip found by label and the state of every configured line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GpioReport {
    pub chip: PathBuf,
    pub label: String,
    pub lines: Vec<LineCheck>,
}

/// For `doctor`: finds the chip and checks every configured line exists and who holds it, without
/// requesting any line.
pub fn check_gpio(gpio: &GpioConfig, reader: &ReaderConfig) -> Result<GpioReport> {
    #[cfg(target_os = "linux")]
    {
        linux::check_gpio(gpio, reader)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (gpio, reader);
        Err(not_linux())
    }
}

#[cfg(not(target_os = "linux"))]
fn not_linux() -> crate::Error {
    crate::Error::Io(std::io::Error::other(
        "real door hardware needs Linux (spidev and the GPIO character device); use the simulated devices",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(model: Option<&[u8]>, spi: bool) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let model_path = dir.path().join("model");
        if let Some(m) = model {
            std::fs::write(&model_path, m).unwrap();
        }
        let spi_path = dir.path().join("spidev0.0");
        if spi {
            std::fs::write(&spi_path, b"").unwrap();
        }
        (dir, model_path, spi_path)
    }

    #[test]
    fn a_pi_with_spi_uses_the_real_devices() {
        let (_d, model, spi) = setup(Some(b"Raspberry Pi 4 Model B Rev 1.4\0"), true);
        let det = detect_with(&HardwareConfig::default(), &model, &spi);
        assert!(det.real, "{}", det.summary);
        assert_eq!(det.model.as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
    }

    #[test]
    fn a_pi_without_spi_is_simulated_and_says_how_to_enable_it() {
        let (_d, model, spi) = setup(Some(b"Raspberry Pi 5 Model B Rev 1.0\0"), false);
        let det = detect_with(&HardwareConfig::default(), &model, &spi);
        assert!(!det.real);
        assert!(
            det.summary.contains("raspi-config nonint do_spi 0"),
            "{}",
            det.summary
        );
    }

    #[test]
    fn a_laptop_is_simulated_unless_forced() {
        let (_d, model, spi) = setup(None, true);
        let det = detect_with(&HardwareConfig::default(), &model, &spi);
        assert!(!det.real);
        assert!(
            det.summary.contains("no Raspberry Pi detected"),
            "{}",
            det.summary
        );

        let forced = HardwareConfig {
            mode: HardwareMode::Pi,
            ..HardwareConfig::default()
        };
        assert!(detect_with(&forced, &model, &spi).real);

        let (_d, model, spi) = setup(Some(b"Raspberry Pi 4 Model B\0"), true);
        let sim = HardwareConfig {
            mode: HardwareMode::Simulated,
            ..HardwareConfig::default()
        };
        assert!(!detect_with(&sim, &model, &spi).real);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn without_gpio_chips_opening_outputs_fails_with_a_hint() {
        // This machine has no /dev/gpiochip*; on a Pi this test would find one, so skip it there.
        if std::path::Path::new("/dev/gpiochip0").exists() {
            return;
        }
        let Err(err) = open_outputs(&GpioConfig::default()) else {
            panic!("outputs opened without a GPIO chip");
        };
        let err = err.to_string();
        assert!(err.contains("GPIO"), "{err}");
        // With no input wired, opening the inputs needs no GPIO chip at all.
        assert!(open_inputs(&GpioConfig::default()).is_ok());
        let err = probe_reader(
            &ReaderConfig {
                spi_device: "/nonexistent/spidev9.9".into(),
                reset_line: crate::config::Line::None,
                ..ReaderConfig::default()
            },
            &GpioConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("spidev9.9") && err.contains("SPI"), "{err}");
    }
}
