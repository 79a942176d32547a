//! `[hardware]`: which devices to use and how they are wired.
//!
//! The default is the wiring documented in the README's "Raspberry Pi" section: the MFRC522 on SPI0 CE0
//! with its reset on GPIO25 (the wiring of the MFRC522 Python library the original used), red LED GPIO17,
//! green LED GPIO27, buzzer GPIO22, lock relay GPIO23 (all active-high), door contact and exit button not
//! wired. Lines are BCM GPIO numbers (offsets on the Pi's main GPIO chip) or line names such as `"GPIO17"`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::camera::CameraConfig;
use crate::gpio::{InputMap, LineMap, OutputMap};
use crate::reader::PollOptions;
use crate::{Error, Result};

/// Real or simulated devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HardwareMode {
    /// Real devices on a Raspberry Pi with SPI enabled, simulated ones elsewhere (see [`crate::pi::detect`]).
    Auto,
    /// Real devices; failing to open them is an error.
    Pi,
    /// Simulated devices everywhere.
    Simulated,
    /// The bench rig (see [`crate::bench`]): the real MFRC522 driver, poller and GPIO mapping over
    /// software devices described by the JSON file `hardware.bench`, for trying the installer's commands
    /// and the daemon end to end without a Raspberry Pi.
    Bench,
}

/// `[hardware]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardwareConfig {
    pub mode: HardwareMode,
    /// The bench rig's description (JSON, see [`crate::bench::BenchSpec`]) for `mode = "bench"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench: Option<PathBuf>,
    pub reader: ReaderConfig,
    pub gpio: GpioConfig,
    pub camera: CameraConfig,
}

impl Default for HardwareConfig {
    fn default() -> Self {
        Self {
            mode: HardwareMode::Auto,
            bench: None,
            reader: ReaderConfig::default(),
            gpio: GpioConfig::default(),
            camera: CameraConfig::default(),
        }
    }
}

impl HardwareConfig {
    pub fn validate(&self) -> Result<()> {
        match (self.mode, &self.bench) {
            (HardwareMode::Bench, None) => {
                return Err(Error::Config(
                    "hardware.mode = \"bench\" needs hardware.bench, the bench rig's JSON file"
                        .into(),
                ))
            }
            (HardwareMode::Bench, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Error::Config(
                    "hardware.bench is only read with hardware.mode = \"bench\"".into(),
                ))
            }
        }
        self.reader.validate()?;
        self.gpio.validate()?;
        self.camera.validate()?;
        // The reader's reset line is on the same chip as the outputs: it must not double as one.
        if let Line::Offset(reset) = self.reader.reset_line {
            for (name, pin) in self.gpio.named_lines() {
                if pin == Line::Offset(reset) {
                    return Err(Error::Reader(format!(
                        "hardware.reader.reset_line: GPIO {reset} is also hardware.gpio.{name}.line"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A GPIO line: an offset on the chip (the BCM GPIO number on a Pi), a line name (`"GPIO17"`), or
/// `"none"` when the signal is not wired. Written in TOML as `17`, `"GPIO17"` or `"none"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "LineRepr", into = "LineRepr")]
pub enum Line {
    None,
    Offset(u32),
    Name(String),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LineRepr {
    Number(i64),
    Text(String),
}

impl TryFrom<LineRepr> for Line {
    type Error = String;

    fn try_from(r: LineRepr) -> std::result::Result<Self, String> {
        match r {
            LineRepr::Number(n) => u32::try_from(n)
                .map(Line::Offset)
                .map_err(|_| format!("line {n} is not a GPIO number (0 or more)")),
            LineRepr::Text(s) => {
                let t = s.trim();
                if t.is_empty() || t.eq_ignore_ascii_case("none") {
                    Ok(Line::None)
                } else if let Ok(n) = t.parse::<u32>() {
                    Ok(Line::Offset(n))
                } else {
                    Ok(Line::Name(t.to_string()))
                }
            }
        }
    }
}

impl From<Line> for LineRepr {
    fn from(l: Line) -> Self {
        match l {
            Line::None => LineRepr::Text("none".into()),
            Line::Offset(n) => LineRepr::Number(i64::from(n)),
            Line::Name(s) => LineRepr::Text(s),
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::None => f.write_str("none"),
            Line::Offset(n) => write!(f, "GPIO{n}"),
            Line::Name(s) => f.write_str(s),
        }
    }
}

impl Line {
    pub fn is_wired(&self) -> bool {
        !matches!(self, Line::None)
    }
}

/// `[hardware.reader]`: the MFRC522.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderConfig {
    /// The spidev node: SPI0 with chip select CE0 is `/dev/spidev0.0`.
    pub spi_device: PathBuf,
    pub spi_speed_hz: u32,
    /// The line wired to the reader's RST (NRSTPD) pin, or `"none"` (soft reset only).
    pub reset_line: Line,
    /// Pause between polls for a card.
    pub poll_interval_ms: u64,
    /// How often a quiet reader is checked for answering and holding its configuration.
    pub check_interval_ms: u64,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            spi_device: PathBuf::from("/dev/spidev0.0"),
            spi_speed_hz: 1_000_000,
            reset_line: Line::Offset(25),
            poll_interval_ms: 100,
            check_interval_ms: 5000,
        }
    }
}

impl ReaderConfig {
    pub fn validate(&self) -> Result<()> {
        let bad =
            |key: &str, why: &str| Err(Error::Reader(format!("hardware.reader.{key}: {why}")));
        if !(10_000..=10_000_000).contains(&self.spi_speed_hz) {
            return bad(
                "spi_speed_hz",
                "must be between 10000 and 10000000 (the MFRC522 allows 10 MHz)",
            );
        }
        if !(10..=5000).contains(&self.poll_interval_ms) {
            return bad("poll_interval_ms", "must be between 10 and 5000");
        }
        if !(100..=600_000).contains(&self.check_interval_ms) {
            return bad("check_interval_ms", "must be between 100 and 600000");
        }
        if self.spi_device.as_os_str().is_empty() {
            return bad("spi_device", "is empty");
        }
        Ok(())
    }

    pub fn poll_options(&self) -> PollOptions {
        PollOptions {
            interval: Duration::from_millis(self.poll_interval_ms),
            check_every: Duration::from_millis(self.check_interval_ms),
            ..PollOptions::default()
        }
    }
}

/// One output line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputPin {
    pub line: Line,
    /// True when the device is on at the LOW level (many relay boards).
    pub active_low: bool,
}

impl Default for OutputPin {
    fn default() -> Self {
        Self {
            line: Line::None,
            active_low: false,
        }
    }
}

impl OutputPin {
    fn at(n: u32) -> Self {
        Self {
            line: Line::Offset(n),
            active_low: false,
        }
    }
}

/// Pull resistor for an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bias {
    PullUp,
    PullDown,
    /// No pull resistor (an external one is fitted).
    Disabled,
}

/// One input line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputPin {
    pub line: Line,
    /// True when the input is active (door open / button pressed) at the LOW level.
    pub active_low: bool,
    pub bias: Bias,
}

impl Default for InputPin {
    fn default() -> Self {
        Self {
            line: Line::None,
            active_low: false,
            bias: Bias::PullUp,
        }
    }
}

/// `[hardware.gpio]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpioConfig {
    /// The GPIO chip: `"auto"` finds the Pi's main chip by label (`pinctrl-rp1` on a Pi 5,
    /// `pinctrl-bcm2711` on a Pi 4, `pinctrl-bcm2835` before), or give a label, `gpiochip0` or a path.
    pub chip: String,
    pub red: OutputPin,
    pub green: OutputPin,
    pub buzzer: OutputPin,
    /// Active releases the lock.
    pub relay: OutputPin,
    /// Active means the door is open. A reed contact to GND with the pull-up reads HIGH when open.
    pub door_contact: InputPin,
    /// Active means pressed. A push button to GND with the pull-up reads LOW when pressed.
    pub exit_button: InputPin,
    /// An input must be stable this long before a change counts.
    pub debounce_ms: u64,
}

impl Default for GpioConfig {
    fn default() -> Self {
        Self {
            chip: "auto".into(),
            red: OutputPin::at(17),
            green: OutputPin::at(27),
            buzzer: OutputPin::at(22),
            relay: OutputPin::at(23),
            door_contact: InputPin {
                line: Line::None,
                active_low: false,
                bias: Bias::PullUp,
            },
            exit_button: InputPin {
                line: Line::None,
                active_low: true,
                bias: Bias::PullUp,
            },
            debounce_ms: 50,
        }
    }
}

impl GpioConfig {
    /// Every wired line with its config key.
    pub fn named_lines(&self) -> Vec<(&'static str, Line)> {
        [
            ("red", &self.red.line),
            ("green", &self.green.line),
            ("buzzer", &self.buzzer.line),
            ("relay", &self.relay.line),
            ("door_contact", &self.door_contact.line),
            ("exit_button", &self.exit_button.line),
        ]
        .into_iter()
        .filter(|(_, l)| l.is_wired())
        .map(|(n, l)| (n, l.clone()))
        .collect()
    }

    pub fn validate(&self) -> Result<()> {
        if self.chip.trim().is_empty() {
            return Err(Error::Inputs(
                "hardware.gpio.chip: is empty (use \"auto\")".into(),
            ));
        }
        if self.debounce_ms > 5000 {
            return Err(Error::Inputs(
                "hardware.gpio.debounce_ms: must be at most 5000".into(),
            ));
        }
        let lines = self.named_lines();
        for (i, (name, line)) in lines.iter().enumerate() {
            if let Some((other, _)) = lines[..i].iter().find(|(_, l)| l == line) {
                return Err(Error::Inputs(format!(
                    "hardware.gpio.{name}.line: {line} is already used by hardware.gpio.{other}.line"
                )));
            }
        }
        Ok(())
    }

    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms)
    }

    /// The output map once every line name has been resolved to an offset by `resolve`.
    pub fn output_map(
        &self,
        mut resolve: impl FnMut(&str, &Line) -> Result<Option<u32>>,
    ) -> Result<OutputMap> {
        let mut one = |name: &str, p: &OutputPin| -> Result<Option<LineMap>> {
            Ok(resolve(name, &p.line)?.map(|line| LineMap {
                line,
                active_low: p.active_low,
            }))
        };
        Ok(OutputMap {
            red: one("red", &self.red)?,
            green: one("green", &self.green)?,
            buzzer: one("buzzer", &self.buzzer)?,
            relay: one("relay", &self.relay)?,
        })
    }

    /// The input map once every line name has been resolved to an offset by `resolve`.
    pub fn input_map(
        &self,
        mut resolve: impl FnMut(&str, &Line) -> Result<Option<u32>>,
    ) -> Result<InputMap> {
        let mut one = |name: &str, p: &InputPin| -> Result<Option<LineMap>> {
            Ok(resolve(name, &p.line)?.map(|line| LineMap {
                line,
                active_low: p.active_low,
            }))
        };
        Ok(InputMap {
            door_contact: one("door_contact", &self.door_contact)?,
            exit_button: one("exit_button", &self.exit_button)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_wiring_and_valid() {
        let cfg = HardwareConfig::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.reader.spi_device, PathBuf::from("/dev/spidev0.0"));
        assert_eq!(cfg.reader.reset_line, Line::Offset(25));
        let map = cfg
            .gpio
            .output_map(|_, l| {
                Ok(match l {
                    Line::Offset(n) => Some(*n),
                    _ => None,
                })
            })
            .unwrap();
        assert_eq!(map.red, Some(LineMap::active_high(17)));
        assert_eq!(map.relay, Some(LineMap::active_high(23)));
    }

    #[test]
    fn lines_parse_from_numbers_names_and_none() {
        let cfg: HardwareConfig = toml::from_str(
            r#"
            mode = "pi"
            [reader]
            reset_line = "none"
            [gpio]
            red = { line = "GPIO5" }
            relay = { line = 26, active_low = true }
            exit_button = { line = "6", active_low = true, bias = "pull-up" }
            [camera]
            backend = "command"
            command = ["fswebcam", "-q", "-"]
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.mode, HardwareMode::Pi);
        assert_eq!(cfg.reader.reset_line, Line::None);
        assert_eq!(cfg.gpio.red.line, Line::Name("GPIO5".into()));
        assert_eq!(cfg.gpio.relay.line, Line::Offset(26));
        assert!(cfg.gpio.relay.active_low);
        assert_eq!(cfg.gpio.exit_button.line, Line::Offset(6));
        assert_eq!(
            cfg.gpio.green.line,
            Line::Offset(27),
            "unset keys keep defaults"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = toml::from_str::<HardwareConfig>("[gpio]\nred = { line = 17, colour = 1 }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");

        let mut cfg = HardwareConfig::default();
        cfg.gpio.buzzer.line = Line::Offset(17);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("hardware.gpio.buzzer.line") && err.contains("hardware.gpio.red.line"),
            "{err}"
        );

        let mut cfg = HardwareConfig::default();
        cfg.gpio.relay.line = Line::Offset(25);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("hardware.reader.reset_line"), "{err}");

        let mut cfg = HardwareConfig::default();
        cfg.reader.poll_interval_ms = 0;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("hardware.reader.poll_interval_ms"), "{err}");
    }

    #[test]
    fn example_toml_shows_exactly_the_defaults() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            hardware: HardwareConfig,
        }
        let file: File = toml::from_str(include_str!("../example.toml")).unwrap();
        assert_eq!(file.hardware, HardwareConfig::default());
    }

    #[test]
    fn round_trips_through_toml() {
        let cfg = HardwareConfig::default();
        let text = toml::to_string(&cfg).unwrap();
        let back: HardwareConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }
}
