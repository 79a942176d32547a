//! spidev and GPIO character device glue (Linux only).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gpiocdev::chip::Chip;
use gpiocdev::line::{Bias as CdevBias, EdgeDetection, Value};
use gpiocdev::Request;
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::SpidevDevice;

use super::{GpioReport, LineCheck};
use crate::config::{Bias, GpioConfig, Line, ReaderConfig};
use crate::gpio::{GpioInputs, GpioOutputs, InputLines, OutputLines};
use crate::mfrc522::{ChipInfo, Mfrc522, SelfTest, ThreadSleep};
use crate::reader::PolledReader;
use crate::{Error, Inputs, Outputs, Result};

/// Labels of the Raspberry Pi's header GPIO chip, newest board first.
const PI_CHIP_LABELS: [&str; 3] = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"];
const CONSUMER: &str = "facereko";

fn gpio_error(msg: String) -> Error {
    Error::Io(io::Error::other(msg))
}

/// Finds the GPIO chip: `auto` (the Pi's header chip by label), a label, a name (`gpiochip0`) or a path.
fn find_chip(spec: &str) -> Result<(Chip, String)> {
    let paths = gpiocdev::chip::chips().map_err(|e| {
        gpio_error(format!(
            "no GPIO chip is accessible ({e}): the kernel needs the GPIO character device \
             (/dev/gpiochip*) and the user the `gpio` group"
        ))
    })?;
    let mut seen = Vec::new();
    for p in paths {
        if let Ok(chip) = Chip::from_path(&p) {
            if let Ok(info) = chip.info() {
                seen.push((chip, info.name, info.label));
            }
        }
    }
    if seen.is_empty() {
        return Err(gpio_error(
            "no GPIO chip is accessible: /dev/gpiochip* is missing or the user is not in the `gpio` group"
                .into(),
        ));
    }
    let found = if spec == "auto" {
        PI_CHIP_LABELS
            .iter()
            .find_map(|want| seen.iter().position(|(_, _, label)| label == want))
    } else {
        seen.iter().position(|(chip, name, label)| {
            label == spec || name == spec || chip.path() == Path::new(spec)
        })
    };
    match found {
        Some(i) => {
            let (chip, _, label) = seen.swap_remove(i);
            Ok((chip, label))
        }
        None => {
            let list: Vec<String> = seen
                .iter()
                .map(|(c, _, l)| format!("{} ({l})", c.path().display()))
                .collect();
            let wanted = if spec == "auto" {
                format!("a Raspberry Pi GPIO chip ({})", PI_CHIP_LABELS.join(", "))
            } else {
                format!("GPIO chip {spec:?}")
            };
            Err(gpio_error(format!(
                "hardware.gpio.chip: {wanted} not found; this system has {}",
                list.join(", ")
            )))
        }
    }
}

/// Resolves a configured line to an offset on `chip`.
fn resolve(chip: &Chip, key: &str, line: &Line) -> Result<Option<u32>> {
    match line {
        Line::None => Ok(None),
        Line::Offset(n) => {
            let lines = chip
                .info()
                .map_err(|e| gpio_error(format!("{}: {e}", chip.path().display())))?
                .num_lines;
            if *n >= lines {
                return Err(gpio_error(format!(
                    "hardware.gpio.{key}.line: {n} is beyond the {lines} lines of {}",
                    chip.path().display()
                )));
            }
            Ok(Some(*n))
        }
        Line::Name(name) => chip
            .find_line_info(name)
            .map(|info| Some(info.offset))
            .ok_or_else(|| {
                gpio_error(format!(
                    "hardware.gpio.{key}.line: no line named {name:?} on {}",
                    chip.path().display()
                ))
            }),
    }
}

fn request_error(what: &str, chip: &Path, lines: &[u32], e: gpiocdev::Error) -> Error {
    gpio_error(format!(
        "requesting {what} line(s) {lines:?} on {}: {e} (another program may hold them: see `gpioinfo`; \
         the user needs the `gpio` group)",
        chip.display()
    ))
}

/// Output lines held in one request; levels are physical (polarity is applied by [`GpioOutputs`]).
struct CdevOutputLines {
    req: Request,
}

impl OutputLines for CdevOutputLines {
    fn set_line(&mut self, line: u32, high: bool) -> io::Result<()> {
        self.req
            .set_value(line, if high { Value::Active } else { Value::Inactive })
            .map_err(io::Error::other)
    }
}

pub(super) fn open_outputs(cfg: &GpioConfig) -> Result<Arc<dyn Outputs>> {
    let (chip, label) = find_chip(&cfg.chip)?;
    let map = cfg.output_map(|key, line| resolve(&chip, key, line))?;
    let safe = map.safe_levels();
    if safe.is_empty() {
        return Err(gpio_error(
            "hardware.gpio: no output is wired (red, green, buzzer and relay are all \"none\")"
                .into(),
        ));
    }
    let mut b = Request::builder();
    b.on_chip(chip.path()).with_consumer(CONSUMER);
    // Request each line already at its safe level, so not even a glitch unlocks the door.
    for &(line, high) in &safe {
        b.with_line(line)
            .as_output(if high { Value::Active } else { Value::Inactive });
    }
    let lines: Vec<u32> = safe.iter().map(|(l, _)| *l).collect();
    let req = b
        .request()
        .map_err(|e| request_error("output", chip.path(), &lines, e))?;
    tracing::info!(target: "facereko::gpio", "outputs on {} ({label}): {map:?}", chip.path().display());
    Ok(Arc::new(GpioOutputs::new(CdevOutputLines { req }, map)?))
}

/// Input lines with edge detection on both edges.
struct CdevInputLines {
    req: Request,
}

impl InputLines for CdevInputLines {
    fn wait_edges(&mut self, timeout: Duration) -> io::Result<Vec<u32>> {
        let mut lines = Vec::new();
        if self
            .req
            .wait_edge_event(timeout)
            .map_err(io::Error::other)?
        {
            while self.req.has_edge_event().map_err(io::Error::other)? {
                let ev = self.req.read_edge_event().map_err(io::Error::other)?;
                lines.push(ev.offset);
            }
        }
        Ok(lines)
    }

    fn is_high(&mut self, line: u32) -> io::Result<bool> {
        Ok(self.req.value(line).map_err(io::Error::other)? == Value::Active)
    }
}

pub(super) fn open_inputs(cfg: &GpioConfig) -> Result<Box<dyn Inputs>> {
    if !cfg.door_contact.line.is_wired() && !cfg.exit_button.line.is_wired() {
        tracing::info!(target: "facereko::gpio", "no door contact or exit button wired");
        let none = crate::gpio::InputMap::default();
        return Ok(Box::new(GpioInputs::spawn(NoInputs, none, cfg.debounce())?));
    }
    let (chip, _) = find_chip(&cfg.chip)?;
    let map = cfg.input_map(|key, line| resolve(&chip, key, line))?;
    let mut b = Request::builder();
    b.on_chip(chip.path()).with_consumer(CONSUMER);
    let mut lines = Vec::new();
    for (m, pin) in [
        (map.door_contact, &cfg.door_contact),
        (map.exit_button, &cfg.exit_button),
    ] {
        if let Some(m) = m {
            lines.push(m.line);
            b.with_line(m.line)
                .as_input()
                .with_bias(match pin.bias {
                    Bias::PullUp => CdevBias::PullUp,
                    Bias::PullDown => CdevBias::PullDown,
                    Bias::Disabled => CdevBias::Disabled,
                })
                .with_edge_detection(EdgeDetection::BothEdges);
        }
    }
    if lines.is_empty() {
        return Ok(Box::new(GpioInputs::spawn(NoInputs, map, cfg.debounce())?));
    }
    let req = b
        .request()
        .map_err(|e| request_error("input", chip.path(), &lines, e))?;
    Ok(Box::new(GpioInputs::spawn(
        CdevInputLines { req },
        map,
        cfg.debounce(),
    )?))
}

/// Stands in when no input is wired (the spawned inputs then never start a thread).
struct NoInputs;

impl InputLines for NoInputs {
    fn wait_edges(&mut self, timeout: Duration) -> io::Result<Vec<u32>> {
        std::thread::sleep(timeout);
        Ok(Vec::new())
    }
    fn is_high(&mut self, _line: u32) -> io::Result<bool> {
        Ok(false)
    }
}

/// The reader's reset line as an embedded-hal output pin.
struct CdevPin {
    req: Request,
    offset: u32,
}

#[derive(Debug)]
struct PinError(#[allow(dead_code)] gpiocdev::Error);

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

impl embedded_hal::digital::ErrorType for CdevPin {
    type Error = PinError;
}

impl embedded_hal::digital::OutputPin for CdevPin {
    fn set_low(&mut self) -> std::result::Result<(), PinError> {
        self.req
            .set_value(self.offset, Value::Inactive)
            .map_err(PinError)
    }
    fn set_high(&mut self) -> std::result::Result<(), PinError> {
        self.req
            .set_value(self.offset, Value::Active)
            .map_err(PinError)
    }
}

type PiReader = Mfrc522<SpidevDevice, ThreadSleep, CdevPin>;

fn open_mfrc522(reader: &ReaderConfig, gpio: &GpioConfig) -> Result<PiReader> {
    let path = &reader.spi_device;
    let spi_hint = |e: &dyn std::fmt::Display| {
        Error::Reader(format!(
            "hardware.reader.spi_device {}: {e}; enable SPI (`sudo raspi-config nonint do_spi 0`, or \
             `dtparam=spi=on` in /boot/firmware/config.txt, then reboot) and put the user in the `spi` group",
            path.display()
        ))
    };
    let mut spi = SpidevDevice::open(path).map_err(|e| spi_hint(&e))?;
    spi.configure(
        &SpidevOptions::new()
            .bits_per_word(8)
            .max_speed_hz(reader.spi_speed_hz)
            .mode(SpiModeFlags::SPI_MODE_0)
            .build(),
    )
    .map_err(|e| spi_hint(&e))?;
    let reset = match &reader.reset_line {
        Line::None => None,
        line => {
            let (chip, _) = find_chip(&gpio.chip)?;
            let Some(offset) = resolve(&chip, "reader.reset", line)? else {
                return Ok(Mfrc522::with_optional_reset(spi, ThreadSleep, None));
            };
            let req = Request::builder()
                .on_chip(chip.path())
                .with_consumer("facereko-rfid-reset")
                .with_line(offset)
                .as_output(Value::Active)
                .request()
                .map_err(|e| request_error("reader reset", chip.path(), &[offset], e))?;
            Some(CdevPin { req, offset })
        }
    };
    Ok(Mfrc522::with_optional_reset(spi, ThreadSleep, reset))
}

pub(super) fn open_card_reader(reader: &ReaderConfig, gpio: &GpioConfig) -> Result<PolledReader> {
    let chip = open_mfrc522(reader, gpio)?;
    PolledReader::spawn(chip, reader.poll_options())
}

pub(super) fn probe_reader(reader: &ReaderConfig, gpio: &GpioConfig) -> Result<ChipInfo> {
    let mut chip = open_mfrc522(reader, gpio)?;
    let info = chip.init()?;
    // Leave the antenna off: the daemon (or the next command) initialises the chip again anyway.
    let _ = chip.antenna_off();
    Ok(info)
}

pub(super) fn self_test_reader(reader: &ReaderConfig, gpio: &GpioConfig) -> Result<SelfTest> {
    let mut chip = open_mfrc522(reader, gpio)?;
    chip.init()?;
    let outcome = chip.self_test()?;
    let _ = chip.antenna_off();
    Ok(outcome)
}

pub(super) fn check_gpio(gpio: &GpioConfig, reader: &ReaderConfig) -> Result<GpioReport> {
    let (chip, label) = find_chip(&gpio.chip)?;
    let mut lines = Vec::new();
    let mut wanted = gpio.named_lines();
    if reader.reset_line.is_wired() {
        wanted.push(("reader.reset_line", reader.reset_line.clone()));
    }
    for (key, line) in wanted {
        let Some(offset) = resolve(&chip, key, &line)? else {
            continue;
        };
        let info = chip
            .line_info(offset)
            .map_err(|e| gpio_error(format!("line {offset} on {}: {e}", chip.path().display())))?;
        lines.push(LineCheck {
            key: key.to_string(),
            offset,
            name: info.name,
            used_by: info.used.then(|| {
                if info.consumer.is_empty() {
                    "the kernel".to_string()
                } else {
                    info.consumer
                }
            }),
        });
    }
    Ok(GpioReport {
        chip: PathBuf::from(chip.path()),
        label,
        lines,
    })
}
