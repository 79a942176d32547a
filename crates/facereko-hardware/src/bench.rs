//! A bench rig: the real MFRC522 driver, poller and GPIO mapping over software devices, so the installer's
//! commands (`card read`, `selftest`, `doctor`) can be run end to end without a Raspberry Pi.
//!
//! The daemon and the commands use it with `hardware.mode = "bench"` and `hardware.bench` naming a JSON
//! [`BenchSpec`] (see [`crate::select`]). The reader is a
//! [`SimulatedMfrc522`] behind [`Mfrc522`] and [`PolledReader`] (the same code that talks to spidev on a
//! Pi); the outputs are [`GpioOutputs`] over lines that append every physical level to a log file, so
//! polarity and the final safe state can be checked after the process has gone; the inputs are
//! [`GpioInputs`] over lines that follow a script of edges (debounce included). Only the bottom layer —
//! the bus and the pins — is pretend.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use facereko_domain::CardUid;
use serde::Deserialize;

use crate::config::{GpioConfig, Line, ReaderConfig};
use crate::gpio::{GpioInputs, GpioOutputs, InputLines, OutputLines};
use crate::mfrc522::{ChipInfo, Mfrc522, ThreadSleep};
use crate::mfrc522_sim::{SimCard, SimulatedMfrc522};
use crate::pi::{GpioReport, LineCheck};
use crate::reader::PolledReader;
use crate::{Error, Inputs, Outputs, Result};

/// What the bench rig pretends to have.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchSpec {
    pub reader: BenchReader,
    pub gpio: BenchGpio,
}

/// The simulated MFRC522.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchReader {
    /// What VersionReg reads (0x92 = 146 for an MFRC522 v2.0).
    pub version: u8,
    /// False: every register reads 0x00, as with a loose MISO wire or no power.
    pub answering: bool,
    /// Cards put on the reader, each after a delay from the moment the reader is opened.
    pub cards: Vec<BenchCard>,
}

impl Default for BenchReader {
    fn default() -> Self {
        Self {
            version: 0x92,
            answering: true,
            cards: Vec::new(),
        }
    }
}

/// One card for the bench reader; ATQA/SAK default to a typical card of the UID's length.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchCard {
    pub uid: String,
    #[serde(default)]
    pub atqa: Option<u16>,
    #[serde(default)]
    pub sak: Option<u8>,
    #[serde(default)]
    pub after_ms: u64,
}

/// The pretend GPIO chip.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BenchGpio {
    pub label: String,
    /// Number of lines on the chip (54 on a Pi 4).
    pub lines: u32,
    /// Lines held by another program: `[[23, "other-program"]]`.
    pub busy: Vec<(u32, String)>,
    /// Where output levels are appended, one `LINE 0|1` per write.
    pub log: Option<PathBuf>,
    /// Input edges: the line goes to `high` after `after_ms` from the moment the inputs are opened.
    pub edges: Vec<BenchEdge>,
}

impl Default for BenchGpio {
    fn default() -> Self {
        Self {
            label: "pinctrl-bcm2711".into(),
            lines: 54,
            busy: Vec::new(),
            log: None,
            edges: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchEdge {
    pub after_ms: u64,
    pub line: u32,
    pub high: bool,
}

fn bench_error(msg: String) -> Error {
    Error::Io(io::Error::other(msg))
}

impl BenchSpec {
    /// The simulated chip with its cards: those with `after_ms = 0` are on the reader at once, the others
    /// are placed by a helper thread when their time comes.
    fn chip(&self) -> Result<SimulatedMfrc522> {
        let sim = SimulatedMfrc522::new(self.reader.version);
        sim.set_answering(self.reader.answering);
        let mut later = Vec::new();
        for c in &self.reader.cards {
            let uid: CardUid = c
                .uid
                .parse()
                .map_err(|e| Error::Reader(format!("bench card {:?}: {e}", c.uid)))?;
            let mut card = SimCard::typical(uid);
            if let Some(a) = c.atqa {
                card.atqa = a;
            }
            if let Some(s) = c.sak {
                card.sak = s;
            }
            if c.after_ms == 0 {
                sim.place(card);
            } else {
                later.push((Duration::from_millis(c.after_ms), card));
            }
        }
        if !later.is_empty() {
            later.sort_by_key(|(d, _)| *d);
            let placer = sim.clone();
            std::thread::Builder::new()
                .name("facereko-bench-cards".into())
                .spawn(move || {
                    let start = Instant::now();
                    for (at, card) in later {
                        std::thread::sleep(at.saturating_sub(start.elapsed()));
                        placer.place(card);
                    }
                })?;
        }
        Ok(sim)
    }

    /// The bench reader, polled exactly as the Pi's (same driver, same poller, same options).
    pub fn open_card_reader(&self, reader: &ReaderConfig) -> Result<PolledReader> {
        PolledReader::spawn(
            Mfrc522::new(self.chip()?, ThreadSleep),
            reader.poll_options(),
        )
    }

    /// Like [`crate::pi::probe_reader`]: reset the chip and read its version register.
    pub fn probe_reader(&self) -> Result<ChipInfo> {
        let mut drv = Mfrc522::new(self.chip()?, ThreadSleep);
        Ok(drv.init()?)
    }

    /// A configured line as an offset on the bench chip (`GPIO17` names line 17).
    fn resolve(&self, key: &str, line: &Line) -> Result<Option<u32>> {
        let n = match line {
            Line::None => return Ok(None),
            Line::Offset(n) => *n,
            Line::Name(name) => name
                .strip_prefix("GPIO")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    bench_error(format!(
                        "hardware.gpio.{key}.line: no line named {name:?} on the bench chip"
                    ))
                })?,
        };
        if n >= self.gpio.lines {
            return Err(bench_error(format!(
                "hardware.gpio.{key}.line: {n} is beyond the {} lines of the bench chip",
                self.gpio.lines
            )));
        }
        Ok(Some(n))
    }

    fn busy(&self, line: u32) -> Option<&str> {
        self.gpio
            .busy
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, who)| who.as_str())
    }

    /// Like [`crate::pi::open_outputs`]: the outputs in the safe state, levels appended to the log.
    pub fn open_outputs(&self, gpio: &GpioConfig) -> Result<Arc<dyn Outputs>> {
        let map = gpio.output_map(|key, line| self.resolve(key, line))?;
        for (line, _) in map.safe_levels() {
            if let Some(who) = self.busy(line) {
                return Err(bench_error(format!(
                    "requesting output line(s) [{line}] on the bench chip: busy (held by {who})"
                )));
            }
        }
        let log = match &self.gpio.log {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| bench_error(format!("bench GPIO log {}: {e}", p.display())))?,
            ),
            None => None,
        };
        Ok(Arc::new(GpioOutputs::new(LoggedLines { log }, map)?))
    }

    /// Like [`crate::pi::open_inputs`]: the scripted edges through the real debouncer.
    pub fn open_inputs(&self, gpio: &GpioConfig) -> Result<Box<dyn Inputs>> {
        let map = gpio.input_map(|key, line| self.resolve(key, line))?;
        let mut levels = HashMap::new();
        for m in [map.door_contact, map.exit_button].into_iter().flatten() {
            levels.insert(m.line, m.level(false));
        }
        let mut edges = self.gpio.edges.clone();
        edges.sort_by_key(|e| e.after_ms);
        let lines = ScriptedLines {
            start: Instant::now(),
            edges: edges.into(),
            levels,
        };
        Ok(Box::new(GpioInputs::spawn(lines, map, gpio.debounce())?))
    }

    /// Like [`crate::pi::check_gpio`].
    pub fn check_gpio(&self, gpio: &GpioConfig, reader: &ReaderConfig) -> Result<GpioReport> {
        let mut wanted = gpio.named_lines();
        if reader.reset_line.is_wired() {
            wanted.push(("reader.reset_line", reader.reset_line.clone()));
        }
        let mut lines = Vec::new();
        for (key, line) in wanted {
            if let Some(offset) = self.resolve(key, &line)? {
                lines.push(LineCheck {
                    key: key.to_string(),
                    offset,
                    name: format!("GPIO{offset}"),
                    used_by: self.busy(offset).map(str::to_string),
                });
            }
        }
        Ok(GpioReport {
            chip: PathBuf::from("bench"),
            label: self.gpio.label.clone(),
            lines,
        })
    }
}

/// Output lines that append every write to a log file (flushed at once, so a killed process leaves a
/// complete record).
struct LoggedLines {
    log: Option<std::fs::File>,
}

impl OutputLines for LoggedLines {
    fn set_line(&mut self, line: u32, high: bool) -> io::Result<()> {
        tracing::debug!(target: "facereko::bench", "GPIO{line} {}", if high { "high" } else { "low" });
        if let Some(f) = self.log.as_mut() {
            writeln!(f, "{line} {}", u8::from(high))?;
            f.flush()?;
        }
        Ok(())
    }
}

/// Input lines that follow a script of edges in real time.
struct ScriptedLines {
    start: Instant,
    edges: std::collections::VecDeque<BenchEdge>,
    levels: HashMap<u32, bool>,
}

impl InputLines for ScriptedLines {
    fn wait_edges(&mut self, timeout: Duration) -> io::Result<Vec<u32>> {
        let Some(next) = self.edges.front() else {
            std::thread::sleep(timeout);
            return Ok(Vec::new());
        };
        let due = self.start + Duration::from_millis(next.after_ms);
        let now = Instant::now();
        if due > now + timeout {
            std::thread::sleep(timeout);
            return Ok(Vec::new());
        }
        std::thread::sleep(due.saturating_duration_since(now));
        let mut fired = Vec::new();
        while let Some(e) = self.edges.front() {
            if self.start + Duration::from_millis(e.after_ms) > Instant::now() {
                break;
            }
            self.levels.insert(e.line, e.high);
            fired.push(e.line);
            self.edges.pop_front();
        }
        Ok(fired)
    }

    fn is_high(&mut self, line: u32) -> io::Result<bool> {
        Ok(self.levels.get(&line).copied().unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CardReader, InputEvent, Output};

    fn spec(json: &str) -> BenchSpec {
        serde_json::from_str(json).unwrap()
    }

    #[tokio::test]
    async fn the_bench_reader_reads_a_seven_byte_card_through_the_driver() {
        let s = spec(r#"{"reader": {"cards": [{"uid": "04:11:22:33:44:55:66", "after_ms": 50}]}}"#);
        let cfg = ReaderConfig {
            poll_interval_ms: 10,
            ..ReaderConfig::default()
        };
        let mut reader = s.open_card_reader(&cfg).unwrap();
        let tap = tokio::time::timeout(Duration::from_secs(5), reader.next_card())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tap.uid.to_string(), "04:11:22:33:44:55:66");
        assert_eq!((tap.atqa, tap.sak), (Some(0x0044), Some(0x00)));
    }

    #[test]
    fn a_silent_bench_reader_names_the_version_register() {
        let s = spec(r#"{"reader": {"answering": false}}"#);
        let err = s.probe_reader().unwrap_err().to_string();
        assert!(
            err.contains("VersionReg") && err.contains("reset pin"),
            "{err}"
        );
        assert_eq!(spec("{}").probe_reader().unwrap().version, 0x92);
    }

    #[test]
    fn outputs_log_physical_levels_and_busy_lines_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("levels");
        let s = spec(&format!(
            r#"{{"gpio": {{"log": {:?}}}}}"#,
            log.display().to_string()
        ));
        let gpio = GpioConfig {
            relay: crate::config::OutputPin {
                line: Line::Offset(23),
                active_low: true,
            },
            ..GpioConfig::default()
        };
        let out = s.open_outputs(&gpio).unwrap();
        out.set(Output::Relay, true).unwrap();
        drop(out);
        let text = std::fs::read_to_string(&log).unwrap();
        let relay: Vec<&str> = text.lines().filter(|l| l.starts_with("23 ")).collect();
        // Safe at start (HIGH for active-low), released (LOW), safe again on drop.
        assert_eq!(relay, ["23 1", "23 0", "23 1"]);

        let busy = spec(r#"{"gpio": {"busy": [[17, "other"]]}}"#);
        let Err(err) = busy.open_outputs(&GpioConfig::default()) else {
            panic!("a busy line was requested");
        };
        let err = err.to_string();
        assert!(err.contains("busy"), "{err}");
        let report = busy
            .check_gpio(&GpioConfig::default(), &ReaderConfig::default())
            .unwrap();
        let red = report.lines.iter().find(|l| l.key == "red").unwrap();
        assert_eq!(red.used_by.as_deref(), Some("other"));
    }

    #[tokio::test]
    async fn scripted_inputs_are_debounced_like_real_ones() {
        let s = spec(
            r#"{"gpio": {"edges": [
                {"after_ms": 20, "line": 5, "high": true},
                {"after_ms": 200, "line": 6, "high": false},
                {"after_ms": 205, "line": 6, "high": true},
                {"after_ms": 210, "line": 6, "high": false}]}}"#,
        );
        let gpio = GpioConfig {
            door_contact: crate::config::InputPin {
                line: Line::Offset(5),
                ..Default::default()
            },
            exit_button: crate::config::InputPin {
                line: Line::Offset(6),
                active_low: true,
                ..Default::default()
            },
            debounce_ms: 30,
            ..GpioConfig::default()
        };
        let mut inputs = s.open_inputs(&gpio).unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let ev = tokio::time::timeout(Duration::from_secs(5), inputs.next_event())
                .await
                .unwrap()
                .unwrap();
            seen.push(ev);
        }
        assert_eq!(seen, [InputEvent::DoorOpened, InputEvent::ExitPressed]);
    }
}
