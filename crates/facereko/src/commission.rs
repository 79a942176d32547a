//! Commissioning a door: `card read`, `selftest outputs|inputs` and `doctor`, the three commands that make
//! a new installation work the first time.
//!
//! Which devices they use: a running daemon owns the reader, the outputs and the inputs, so `card read`
//! asks it for the next tap over the control socket rather than fighting for the SPI device, and the
//! self-tests refuse to run beside it. Without a daemon they open the real devices on a Raspberry Pi, the
//! bench rig when `FACEREKO_BENCH` names one (the real driver over a software MFRC522 and logged GPIO
//! lines, see `facereko_hardware::bench`), and otherwise say what the simulated devices can and cannot do.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use facereko_domain::CardUid;
use facereko_hardware::bench::{self, BenchSpec};
use facereko_hardware::reader::PolledReader;
use facereko_hardware::sim::{SimCamera, SimOutputs};
use facereko_hardware::{Camera, CardReader as _, CardTap, InputEvent, Output, Outputs};
use facereko_store::Store;
use facereko_vision::EngineKind;
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::control::{self, Request};

#[derive(Debug, Subcommand)]
pub enum CardCommand {
    /// Wait for a tap and show the card: UID, ATQA/SAK, card type and whether it belongs to someone.
    Read(CardReadArgs),
}

#[derive(Debug, Args)]
pub struct CardReadArgs {
    /// Keep printing taps until Ctrl-C (or until --timeout has passed).
    #[arg(long)]
    watch: bool,
    /// One JSON object per card (one per line with --watch).
    #[arg(long)]
    json: bool,
    /// Seconds to wait for a card (default 30); with --watch, how long to watch (default: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum SelftestCommand {
    /// Switch red, green, buzzer and relay on and off in turn; ends with everything safe, also on Ctrl-C.
    Outputs(OutputsArgs),
    /// Show door contact and exit button changes live until Ctrl-C (or --timeout).
    Inputs(InputsArgs),
}

#[derive(Debug, Args)]
pub struct OutputsArgs {
    /// How long each output stays on, in milliseconds.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u64).range(50..=10_000))]
    step_ms: u64,
    /// Use the simulated outputs even on a Raspberry Pi (the changes are printed).
    #[arg(long)]
    simulate: bool,
}

#[derive(Debug, Args)]
pub struct InputsArgs {
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// One JSON object for scripts.
    #[arg(long)]
    json: bool,
    /// Check the simulated devices even on a Raspberry Pi.
    #[arg(long)]
    simulate: bool,
}

// ---- which devices -------------------------------------------------------------------------------------

/// The devices a one-off command works with.
enum Rig {
    /// Real devices on a Raspberry Pi (or `hardware.mode = "pi"`).
    Pi,
    /// The bench rig named by `FACEREKO_BENCH`.
    Bench(Box<BenchSpec>),
    /// Simulated devices, and why.
    Simulated(String),
}

impl Rig {
    fn pick(config: &Config, simulate: bool) -> Result<Rig> {
        if let Some(path) = std::env::var_os(bench::ENV) {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("{} {}", bench::ENV, path.display()))?;
            let spec: BenchSpec = serde_json::from_str(&text).with_context(|| {
                format!("{} {} is not a bench spec", bench::ENV, path.display())
            })?;
            return Ok(Rig::Bench(Box::new(spec)));
        }
        if simulate {
            return Ok(Rig::Simulated("--simulate".into()));
        }
        let detection = facereko_hardware::pi::detect(&config.hardware);
        Ok(if detection.real {
            Rig::Pi
        } else {
            Rig::Simulated(detection.summary)
        })
    }

    fn describe(&self) -> String {
        match self {
            Rig::Pi => "real devices (Raspberry Pi)".into(),
            Rig::Bench(_) => format!(
                "bench rig ({}): simulated MFRC522 behind the real driver, logged GPIO lines",
                bench::ENV
            ),
            Rig::Simulated(why) => why.clone(),
        }
    }
}

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

// ---- card read -----------------------------------------------------------------------------------------

/// Where taps come from.
enum TapSource {
    /// The running daemon hands over its next tap.
    Daemon(PathBuf),
    /// A reader opened here.
    Reader(PolledReader),
}

/// Ask in slices: the daemon drops a wait as soon as its client's connection closes, and short requests
/// also bound a wait that a daemon of an older version would keep after a Ctrl-C.
const DAEMON_SLICE: Duration = Duration::from_secs(5);

impl TapSource {
    /// The next tap, or `None` once `deadline` has passed.
    async fn next(&mut self, deadline: Option<Instant>) -> Result<Option<CardTap>> {
        match self {
            TapSource::Reader(reader) => {
                let tap = match deadline {
                    None => reader.next_card().await,
                    Some(d) => match tokio::time::timeout_at(d.into(), reader.next_card()).await {
                        Ok(t) => t,
                        Err(_) => {
                            let status = reader.status();
                            if !status.is_ok() {
                                bail!("no card read: the card reader is not working ({status})");
                            }
                            return Ok(None);
                        }
                    },
                };
                Ok(Some(tap.context("reading the card reader")?))
            }
            TapSource::Daemon(data_dir) => loop {
                let slice = match deadline {
                    None => DAEMON_SLICE,
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Ok(None);
                        }
                        left.min(DAEMON_SLICE)
                    }
                };
                let req = Request::NextCard {
                    timeout_ms: slice.as_millis() as u64,
                };
                match control::request(data_dir, &req).await {
                    Ok(reply) => {
                        let d = &reply.data;
                        let uid: CardUid = d["uid"]
                            .as_str()
                            .context("the daemon's reply has no uid")?
                            .parse()
                            .context("the daemon sent a bad uid")?;
                        let mut tap = CardTap::new(uid);
                        tap.atqa = d["atqa"].as_u64().and_then(|v| u16::try_from(v).ok());
                        tap.sak = d["sak"].as_u64().and_then(|v| u8::try_from(v).ok());
                        return Ok(Some(tap));
                    }
                    Err(e) if e.to_string().starts_with("no card was presented") => continue,
                    Err(e) => return Err(e.context("asking the running daemon for the next card")),
                }
            },
        }
    }
}

/// One card as `card read --json` prints it.
#[derive(Debug, Serialize)]
struct CardReport {
    uid: String,
    uid_bytes: usize,
    atqa: Option<u16>,
    sak: Option<u8>,
    card_type: Option<String>,
    enrolled: bool,
    person: Option<PersonReport>,
    /// Set when the store could not be asked.
    store_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct PersonReport {
    id: i64,
    name: String,
    active: bool,
    card_active: bool,
}

async fn card_report(tap: &CardTap, store: Option<&Store>, store_err: Option<&str>) -> CardReport {
    let mut report = CardReport {
        uid: tap.uid.to_string(),
        uid_bytes: tap.uid.as_bytes().len(),
        atqa: tap.atqa,
        sak: tap.sak,
        card_type: tap.card_type().map(|t| t.to_string()),
        enrolled: false,
        person: None,
        store_error: store_err.map(str::to_string),
    };
    if let Some(store) = store {
        match store.lookup_card(&tap.uid).await {
            Ok(Some((card, person))) => {
                report.enrolled = true;
                report.person = Some(PersonReport {
                    id: person.id.0,
                    name: person.name,
                    active: person.active,
                    card_active: card.active,
                });
            }
            Ok(None) => {}
            Err(e) => report.store_error = Some(e.to_string()),
        }
    }
    report
}

fn print_card(r: &CardReport) {
    println!("card {}  ({}-byte UID)", r.uid, r.uid_bytes);
    match (r.atqa, r.sak) {
        (Some(atqa), Some(sak)) => println!(
            "  ATQA {atqa:#06x}, SAK {sak:#04x}: {}",
            r.card_type.as_deref().unwrap_or("unknown card type")
        ),
        _ => println!("  ATQA/SAK: not reported (simulated reader)"),
    }
    match (&r.person, &r.store_error) {
        (Some(p), _) => {
            let mut notes = Vec::new();
            if !p.active {
                notes.push("person disabled");
            }
            if !p.card_active {
                notes.push("card disabled");
            }
            println!(
                "  enrolled: {} (id {}){}",
                p.name,
                p.id,
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(", {}", notes.join(", "))
                }
            );
        }
        (None, Some(e)) => println!("  enrolled: unknown (database: {e})"),
        (None, None) => println!(
            "  not enrolled: `facereko people add \"NAME\" --card {}` or `facereko people add-card \"NAME\" {}`",
            r.uid, r.uid
        ),
    }
}

pub async fn card(data_dir: &Path, config_file: Option<&Path>, cmd: CardCommand) -> Result<()> {
    let CardCommand::Read(a) = cmd;
    let (config, _) = Config::load(config_file, data_dir)?;
    let mut source = if daemon_status(data_dir).await.is_some() {
        eprintln!("asking the running daemon for the next tap (it owns the reader)");
        TapSource::Daemon(data_dir.to_path_buf())
    } else {
        match Rig::pick(&config, false)? {
            Rig::Pi => TapSource::Reader(
                facereko_hardware::pi::open_card_reader(
                    &config.hardware.reader,
                    &config.hardware.gpio,
                )
                .context("opening the card reader")?,
            ),
            Rig::Bench(spec) => TapSource::Reader(
                spec.open_card_reader(&config.hardware.reader)
                    .context("opening the bench card reader")?,
            ),
            Rig::Simulated(why) => bail!(
                "no card reader here ({why}). The simulated reader lives in the daemon: start \
                 `facereko --data-dir {dir} serve --simulate`, run `card read` again and tap with \
                 `facereko --data-dir {dir} sim tap 04:A2:2B:19`",
                dir = data_dir.display()
            ),
        }
    };
    let url = config.database_url(data_dir);
    let (store, store_err) = match tokio::time::timeout(
        Duration::from_secs(15),
        Store::open_with(&url, data_dir, &(&config.store).into()),
    )
    .await
    {
        Ok(Ok(s)) => (Some(s), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (None, Some("no answer within 15 s".to_string())),
    };
    let timeout = match (a.timeout, a.watch) {
        (Some(s), _) => Some(Duration::from_secs(s)),
        (None, false) => Some(Duration::from_secs(30)),
        (None, true) => None,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    eprintln!(
        "waiting for a card{} (Ctrl-C to stop)",
        timeout.map_or(String::new(), |t| format!(" for {} s", t.as_secs()))
    );
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut seen = 0usize;
    loop {
        let tap = tokio::select! {
            t = source.next(deadline) => t?,
            _ = int.recv() => break,
            _ = term.recv() => break,
        };
        let Some(tap) = tap else {
            if a.watch {
                break;
            }
            bail!(
                "no card within {} s: hold the card flat on the reader (within 2 cm); `doctor` checks \
                 the reader",
                timeout.unwrap_or_default().as_secs()
            );
        };
        seen += 1;
        let report = card_report(&tap, store.as_ref(), store_err.as_deref()).await;
        if a.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            if seen > 1 {
                println!();
            }
            print_card(&report);
        }
        if !a.watch {
            break;
        }
    }
    if a.watch {
        eprintln!("{seen} card(s) read");
    }
    Ok(())
}

// ---- selftest ------------------------------------------------------------------------------------------

pub async fn selftest(
    data_dir: &Path,
    config_file: Option<&Path>,
    cmd: SelftestCommand,
) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    match cmd {
        SelftestCommand::Outputs(a) => selftest_outputs(data_dir, &config, a).await,
        SelftestCommand::Inputs(a) => selftest_inputs(data_dir, &config, a).await,
    }
}

/// Every output inactive: [`Outputs::lock_down`] (relay locked, buzzer and green off) and red off too.
fn all_off(outputs: &dyn Outputs) -> Result<()> {
    let locked = outputs.lock_down();
    let red = outputs.set(Output::Red, false);
    locked?;
    red?;
    Ok(())
}

async fn selftest_outputs(data_dir: &Path, config: &Config, a: OutputsArgs) -> Result<()> {
    if daemon_status(data_dir).await.is_some() {
        bail!(
            "a running `facereko serve` owns the outputs: stop it first (`sudo systemctl stop facereko`), \
             then run the self-test again"
        );
    }
    // Signals first, so a Ctrl-C at any moment from here on lands in the handler below.
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let rig = Rig::pick(config, a.simulate)?;
    let gpio = &config.hardware.gpio;
    let mut sim = None;
    let outputs: Arc<dyn Outputs> = match &rig {
        Rig::Pi => facereko_hardware::pi::open_outputs(gpio).context("opening the GPIO outputs")?,
        Rig::Bench(spec) => spec
            .open_outputs(gpio)
            .context("opening the bench outputs")?,
        Rig::Simulated(_) => {
            let s = SimOutputs::new();
            sim = Some(s.clone());
            Arc::new(s)
        }
    };
    println!("outputs: {}", rig.describe());
    if sim.is_some() {
        println!("  (nothing is wired: each change is printed and recorded)");
    } else {
        for (key, pin) in [
            ("red", &gpio.red),
            ("green", &gpio.green),
            ("buzzer", &gpio.buzzer),
            ("relay", &gpio.relay),
        ] {
            println!(
                "  {key:<7} {}{}",
                pin.line,
                if pin.active_low { " (active-low)" } else { "" }
            );
        }
    }
    facereko_hardware::safety::install_panic_lock_down(outputs.clone());
    let _guard = facereko_hardware::safety::LockDownGuard::new(outputs.clone());

    let step = Duration::from_millis(a.step_ms);
    let steps = [
        (Output::Red, "red LED", "look at the red LED"),
        (Output::Green, "green LED", "look at the green LED"),
        (Output::Buzzer, "buzzer", "listen for the buzzer"),
        (
            Output::Relay,
            "lock relay",
            "listen for the relay click; the door can be opened",
        ),
    ];
    let out = outputs.clone();
    let sequence = async move {
        all_off(out.as_ref())?;
        for (i, (output, name, hint)) in steps.iter().enumerate() {
            println!(
                "[{}/{}] {name} ON for {} ms: {hint}",
                i + 1,
                steps.len(),
                step.as_millis()
            );
            out.set(*output, true)?;
            tokio::time::sleep(step).await;
            out.set(*output, false)?;
            println!("      {name} off");
            tokio::time::sleep(step / 3).await;
        }
        anyhow::Ok(())
    };
    let interrupted = tokio::select! {
        r = sequence => { r?; None }
        _ = int.recv() => Some("SIGINT (Ctrl-C)"),
        _ = term.recv() => Some("SIGTERM"),
    };
    let safe = all_off(outputs.as_ref());
    if let Some(s) = &sim {
        let changes: Vec<String> = s
            .changes()
            .iter()
            .map(|c| format!("{} {}", c.output, if c.active { "on" } else { "off" }))
            .collect();
        println!("recorded changes: {}", changes.join(", "));
        let levels: Vec<String> = Output::ALL
            .iter()
            .map(|&o| format!("{o} {}", if s.level(o) { "on" } else { "off" }))
            .collect();
        println!("final levels: {}", levels.join(", "));
    }
    safe.context("could not drive every output to the safe state: check the wiring")?;
    println!("outputs safe: relay locked, buzzer off, green off, red off");
    if let Some(why) = interrupted {
        bail!("self-test interrupted by {why}; the outputs were left safe");
    }
    println!(
        "self-test done: if an output did not show, check its wire, its line in [hardware.gpio] and its \
         polarity (active_low)"
    );
    Ok(())
}

async fn selftest_inputs(data_dir: &Path, config: &Config, a: InputsArgs) -> Result<()> {
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let deadline = a
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let until = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let started = Instant::now();
    let stamp = move || format!("{:>8.3} s", started.elapsed().as_secs_f64());

    if daemon_status(data_dir).await.is_some() {
        // The daemon holds the input lines; what it makes of them shows in its status.
        println!(
            "the running daemon owns the inputs: showing its door and lock state (Ctrl-C to stop)"
        );
        let mut last: Option<(serde_json::Value, serde_json::Value)> = None;
        loop {
            let status = control::request(data_dir, &Request::Status).await?.data;
            let now = (status["door_open"].clone(), status["unlocked"].clone());
            if last.as_ref() != Some(&now) {
                let door = match now.0.as_bool() {
                    Some(true) => "open",
                    Some(false) => "closed",
                    None => "no door contact",
                };
                let lock = if now.1.as_bool() == Some(true) {
                    "unlocked"
                } else {
                    "locked"
                };
                println!("{} door {door}, lock {lock}", stamp());
                last = Some(now);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = int.recv() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = &mut until => return Ok(()),
            }
        }
    }

    let gpio = &config.hardware.gpio;
    let rig = Rig::pick(config, false)?;
    let mut inputs = match &rig {
        Rig::Simulated(why) => bail!(
            "no inputs here ({why}). The simulated inputs live in the daemon: start `facereko serve \
             --simulate` and run `selftest inputs` again to watch its door state"
        ),
        _ if !gpio.door_contact.line.is_wired() && !gpio.exit_button.line.is_wired() => {
            println!(
                "no door contact or exit button is wired: set hardware.gpio.door_contact.line and/or \
                 hardware.gpio.exit_button.line"
            );
            return Ok(());
        }
        Rig::Pi => facereko_hardware::pi::open_inputs(gpio).context("opening the GPIO inputs")?,
        Rig::Bench(spec) => spec.open_inputs(gpio).context("opening the bench inputs")?,
    };
    println!("inputs: {}", rig.describe());
    println!(
        "  door contact {}{}, exit button {}{}; debounce {} ms",
        gpio.door_contact.line,
        if gpio.door_contact.active_low {
            " (active-low)"
        } else {
            ""
        },
        gpio.exit_button.line,
        if gpio.exit_button.active_low {
            " (active-low)"
        } else {
            ""
        },
        gpio.debounce_ms
    );
    println!("open and close the door, press the exit button (Ctrl-C to stop)");
    let mut count = 0usize;
    loop {
        let ev = tokio::select! {
            ev = inputs.next_event() => ev,
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = &mut until => break,
        };
        match ev {
            Ok(ev) => {
                count += 1;
                let what = match ev {
                    InputEvent::DoorOpened => "door opened",
                    InputEvent::DoorClosed => "door closed",
                    InputEvent::ExitPressed => "exit button pressed",
                };
                println!("{} {what}", stamp());
            }
            Err(facereko_hardware::Error::Closed(_)) => break,
            Err(e) => println!("{} error: {e}", stamp()),
        }
    }
    println!("{count} change(s) seen");
    Ok(())
}

// ---- doctor --------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
pub(crate) struct Check {
    name: &'static str,
    status: Status,
    /// A failed required check makes `doctor` exit non-zero.
    required: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            required: true,
            detail: detail.into(),
            fix: None,
        }
    }
    pub(crate) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            status: Status::Fail,
            required: true,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub(crate) fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Skip,
            required: false,
            detail: detail.into(),
            fix: None,
        }
    }
    /// Marks the check optional: a failure becomes a warning.
    fn optional(mut self) -> Self {
        self.required = false;
        if self.status == Status::Fail {
            self.status = Status::Warn;
        }
        self
    }
    fn required_if(self, required: bool) -> Self {
        if required {
            self
        } else {
            self.optional()
        }
    }

    fn line(&self) -> String {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        let mut s = format!("{tag}  {:<9} {}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            s.push_str(" -- fix: ");
            s.push_str(fix);
        }
        s
    }
}

#[derive(Debug, Serialize)]
struct DoctorReport {
    ok: bool,
    devices: String,
    daemon_running: bool,
    checks: Vec<Check>,
}

const SPI_FIX: &str = "check that SPI is enabled (`ls /dev/spidev*`; `sudo raspi-config nonint do_spi 0` \
    or `dtparam=spi=on` in /boot/firmware/config.txt, then reboot), the wiring (SDA to CE0/GPIO8, SCK to \
    GPIO11, MOSI to GPIO10, MISO to GPIO9, 3.3 V not 5 V, GND) and the reset pin (RST to \
    hardware.reader.reset_line, GPIO25 by default)";

pub async fn doctor(data_dir: &Path, config_file: Option<&Path>, a: DoctorArgs) -> Result<()> {
    let mut checks = Vec::new();
    let config = match Config::load(config_file, data_dir) {
        Ok((c, path)) => {
            checks.push(Check::ok(
                "config",
                path.map_or("built-in defaults (no facereko.toml)".to_string(), |p| {
                    format!("{} parses and is valid", p.display())
                }),
            ));
            c
        }
        Err(e) => {
            checks.push(Check::fail(
                "config",
                format!("{e:#} (the checks below use the defaults)"),
                "correct the named key in facereko.toml or the FACEREKO_* variable",
            ));
            Config::default()
        }
    };
    let daemon = daemon_status(data_dir).await;
    let rig = Rig::pick(&config, a.simulate)?;

    checks.push(check_data_dir(data_dir));
    checks.push(check_database(data_dir, &config).await);
    let uses_camera = config.door.mode.uses_camera();
    let models = check_models(data_dir, &config).await;
    let models_ok = models.status == Status::Ok;
    checks.push(models.required_if(crate::rekognition::needs_local_engine(&config)));
    let (camera, frame) = check_camera(&config, &rig, daemon.is_some()).await;
    checks.push(camera.required_if(uses_camera));
    checks.push(check_face(data_dir, &config, models_ok, frame).await);
    checks.push(check_reader(&config, &rig, daemon.as_ref()).await);
    checks.push(check_gpio(&config, &rig, daemon.is_some()).await);
    checks.push(check_mqtt(&config).await);
    checks.push(check_smtp(&config).await);
    checks.push(check_collection(&config).await);
    checks.push(check_clock().await);

    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.required && c.status == Status::Fail)
        .map(|c| c.name)
        .collect();
    let report = DoctorReport {
        ok: failed.is_empty(),
        devices: rig.describe(),
        daemon_running: daemon.is_some(),
        checks,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "devices: {}{}",
            report.devices,
            if report.daemon_running {
                "; a daemon is running on this data directory"
            } else {
                ""
            }
        );
        for c in &report.checks {
            println!("{}", c.line());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} required check(s) failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    if !a.json {
        println!("all required checks passed");
    }
    Ok(())
}

fn check_data_dir(data_dir: &Path) -> Check {
    let probe = data_dir.join(format!(".doctor-{}", std::process::id()));
    let result =
        std::fs::write(&probe, b"facereko doctor\n").and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => Check::ok("data dir", format!("{} is writable", data_dir.display())),
        Err(e) => Check::fail(
            "data dir",
            format!("{} is not writable: {e}", data_dir.display()),
            format!(
                "give the service user the folder: `sudo chown -R facereko: {}`, or pass --data-dir",
                data_dir.display()
            ),
        ),
    }
}

async fn check_database(data_dir: &Path, config: &Config) -> Check {
    let url = config.database_url(data_dir);
    let shown = crate::cli::redact_url(&url);
    let fix = "check store.database_url (or FACEREKO_STORE__DATABASE_URL), that the database server runs and lets this user \
               in, then run `facereko migrate`";
    let options = (&config.store).into();
    let open = Store::open_with(&url, data_dir, &options);
    let store = match tokio::time::timeout(Duration::from_secs(20), open).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Check::fail("database", format!("{shown}: {e}"), fix),
        Err(_) => return Check::fail("database", format!("{shown}: no answer within 20 s"), fix),
    };
    let check = match store.schema_version().await {
        Ok(v) => Check::ok(
            "database",
            format!(
                "{shown} ({}) reachable, schema version {v}",
                store.backend()
            ),
        ),
        Err(e) => Check::fail("database", format!("{shown}: schema: {e}"), fix),
    };
    store.close().await;
    check
}

async fn check_models(data_dir: &Path, config: &Config) -> Check {
    let dir = config.vision.models_dir(data_dir);
    let shown = dir.clone();
    let kind = config.vision.local_engine;
    match tokio::task::spawn_blocking(move || facereko_vision::models::verify_engine(kind, &dir))
        .await
    {
        Ok(Ok(_)) => Check::ok(
            "models",
            format!(
                "{kind} face models in {} present, SHA-256 verified",
                shown.display()
            ),
        ),
        Ok(Err(e)) => {
            let fix = format!("run `{}`", facereko_vision::models::install_command(kind));
            // The error already ends with the command; say it once, as the fix.
            let detail = e.to_string();
            let detail = detail
                .strip_suffix(&format!(": {fix}"))
                .unwrap_or(&detail)
                .to_string();
            Check::fail("models", detail, fix)
        }
        Err(e) => Check::fail(
            "models",
            format!("checking the models: {e}"),
            "run doctor again",
        ),
    }
}

/// Width and height from a JPEG's SOF segment or a PNG's IHDR, without decoding the image.
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((w, h));
    }
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof && i + 9 <= bytes.len() {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return Some((u32::from(w), u32::from(h)));
        }
        if marker == 0xDA || len < 2 {
            return None;
        }
        i += 2 + len;
    }
    None
}

const CAMERA_FIX: &str =
    "check the camera cable and that `rpicam-hello --list-cameras` lists it (or \
    the [hardware.camera] command), and hardware.camera.timeout_ms";

/// The camera check, and the frame it took for the face check.
async fn check_camera(
    config: &Config,
    rig: &Rig,
    daemon: bool,
) -> (Check, Option<facereko_domain::Photo>) {
    let camera: Box<dyn Camera> = match rig {
        Rig::Pi | Rig::Bench(_) => {
            if daemon && matches!(rig, Rig::Pi) {
                return (
                    Check::skip(
                        "camera",
                        "the running daemon holds the camera (its attempts show whether it works)",
                    ),
                    None,
                );
            }
            match facereko_hardware::camera::open_camera(&config.hardware.camera) {
                Ok(c) => c,
                Err(e) => return (Check::fail("camera", e.to_string(), CAMERA_FIX), None),
            }
        }
        Rig::Simulated(_) => match &config.sim.camera {
            None => {
                let c = Check::fail(
                    "camera",
                    "simulated camera with no image (sim.camera is not set)",
                    "set sim.camera to an image file or folder, or `facereko sim image FILE` on a running daemon",
                );
                return (c.optional(), None);
            }
            Some(p) => match SimCamera::source_for(p) {
                Ok(s) => Box::new(SimCamera::new(s)),
                Err(e) => {
                    return (
                        Check::fail(
                            "camera",
                            format!("sim.camera: {e}"),
                            "point sim.camera at an image",
                        ),
                        None,
                    )
                }
            },
        },
    };
    let started = Instant::now();
    // Cameras bound their own time; this outer bound only guards against one that does not.
    let limit = config.hardware.camera.timeout() + Duration::from_secs(2);
    let shot = match tokio::time::timeout(limit, camera.capture()).await {
        Ok(r) => r,
        Err(_) => Err(facereko_hardware::Error::CameraTimeout(
            limit.as_millis() as u64
        )),
    };
    let ms = started.elapsed().as_millis();
    match shot {
        Ok(photo) => {
            let size = image_size(&photo.bytes)
                .map_or("size unknown".to_string(), |(w, h)| format!("{w}x{h}"));
            (
                Check::ok(
                    "camera",
                    format!(
                        "{}: first frame {size}, {} bytes, after {ms} ms",
                        camera.describe(),
                        photo.bytes.len()
                    ),
                ),
                Some(photo),
            )
        }
        Err(e) => (
            Check::fail("camera", format!("{}: {e}", camera.describe()), CAMERA_FIX),
            None,
        ),
    }
}

/// Optional: is a face found in the camera's frame? Never makes `doctor` fail.
async fn check_face(
    data_dir: &Path,
    config: &Config,
    models_ok: bool,
    frame: Option<facereko_domain::Photo>,
) -> Check {
    let Some(frame) = frame else {
        return Check::skip("face", "no frame from the camera to look at");
    };
    if !models_ok {
        return Check::skip("face", "needs the face models");
    }
    let engine = match crate::faces::load_engine(config, data_dir).await {
        Ok(e) => e,
        Err(e) => {
            return Check::fail("face", format!("{e:#}"), "run `facereko models install`")
                .optional()
        }
    };
    let found = tokio::task::spawn_blocking(move || engine.describe_blocking(&frame.bytes)).await;
    match found {
        Ok(Ok(Some(probe))) => Check::ok(
            "face",
            format!(
                "a face was found in the frame{}",
                probe
                    .face
                    .width_px
                    .map_or(String::new(), |w| format!(" ({w} px wide)"))
            ),
        )
        .optional(),
        Ok(Ok(None)) => Check::fail(
            "face",
            "no usable face in the frame",
            "stand in front of the camera at the door's distance, check focus and light, run doctor again",
        )
        .optional(),
        Ok(Err(e)) => Check::fail("face", e.to_string(), "check the camera's image format").optional(),
        Err(e) => Check::fail("face", e.to_string(), "run doctor again").optional(),
    }
}

async fn check_reader(config: &Config, rig: &Rig, daemon: Option<&serde_json::Value>) -> Check {
    let reader = &config.hardware.reader;
    match (rig, daemon) {
        (Rig::Simulated(why), _) => Check::skip("reader", format!("simulated card reader ({why})")),
        // The daemon polls the chip: probing it here would reset it under the daemon's feet.
        (_, Some(status)) => {
            let state = status["reader"].as_str().unwrap_or("unknown");
            if state.starts_with("ok") {
                Check::ok("reader", "the running daemon reports the card reader ok")
            } else {
                Check::fail(
                    "reader",
                    format!("the running daemon reports the card reader: {state}"),
                    SPI_FIX,
                )
            }
        }
        (Rig::Bench(spec), None) => match spec.probe_reader() {
            Ok(info) => Check::ok("reader", format!("{info} answers on the bench SPI bus")),
            Err(e) => Check::fail("reader", e.to_string(), SPI_FIX),
        },
        (Rig::Pi, None) => {
            if !reader.spi_device.exists() {
                return Check::fail(
                    "reader",
                    format!("SPI device {} is missing", reader.spi_device.display()),
                    SPI_FIX,
                );
            }
            let (r, g) = (reader.clone(), config.hardware.gpio.clone());
            match tokio::task::spawn_blocking(move || facereko_hardware::pi::probe_reader(&r, &g))
                .await
            {
                Ok(Ok(info)) => Check::ok(
                    "reader",
                    format!("{info} answers on {}", reader.spi_device.display()),
                ),
                Ok(Err(e)) => Check::fail("reader", e.to_string(), SPI_FIX),
                Err(e) => Check::fail("reader", e.to_string(), SPI_FIX),
            }
        }
    }
}

async fn check_gpio(config: &Config, rig: &Rig, daemon: bool) -> Check {
    let (gpio, reader) = (&config.hardware.gpio, &config.hardware.reader);
    let report = match rig {
        Rig::Simulated(why) => {
            return Check::skip("gpio", format!("simulated outputs and inputs ({why})"))
        }
        Rig::Bench(spec) => spec.check_gpio(gpio, reader),
        Rig::Pi => {
            let (g, r) = (gpio.clone(), reader.clone());
            match tokio::task::spawn_blocking(move || facereko_hardware::pi::check_gpio(&g, &r))
                .await
            {
                Ok(r) => r,
                Err(e) => return Check::fail("gpio", e.to_string(), "run doctor again"),
            }
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                "gpio",
                e.to_string(),
                "check hardware.gpio.chip and the line numbers, that /dev/gpiochip* exists and the user is \
                 in the `gpio` group",
            )
        }
    };
    let ours = |who: &str| who.starts_with("facereko");
    let held: Vec<String> = report
        .lines
        .iter()
        .filter_map(|l| {
            let who = l.used_by.as_deref()?;
            (!(daemon && ours(who))).then(|| format!("{} ({}) is held by {who}", l.name, l.key))
        })
        .collect();
    let lines: Vec<String> = report
        .lines
        .iter()
        .map(|l| format!("{} {}", l.key, l.name))
        .collect();
    if !held.is_empty() {
        return Check::fail(
            "gpio",
            format!("{} ({}): {}", report.label, report.chip.display(), held.join("; ")),
            "stop the program holding the line (see `gpioinfo`) or choose another line in [hardware.gpio]",
        );
    }
    Check::ok(
        "gpio",
        format!(
            "{} ({}): {} {}",
            report.label,
            report.chip.display(),
            lines.join(", "),
            if daemon {
                "free or held by the daemon"
            } else {
                "free"
            }
        ),
    )
}

/// A TCP connection to `host:port` within 5 s.
async fn reach(host: &str, port: u16) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// `doctor`: with the Rekognition engine, can this door reach the collection it searches?
async fn check_collection(config: &Config) -> Check {
    if config.vision.engine != EngineKind::Rekognition {
        return Check::skip("rekognition", "not used (vision.engine = local)");
    }
    #[cfg(feature = "aws")]
    {
        let name = &config.aws.collection;
        let client = match facereko_rekognition::client::CollectionClient::new(&config.aws).await {
            Ok(c) => c,
            Err(e) => {
                return Check::fail(
                    "rekognition",
                    e.to_string(),
                    "set [aws] region and credentials (or run `aws configure`)",
                )
            }
        };
        match client.list().await {
            Ok(list) if list.iter().any(|(id, _)| id == name) => match client.faces(name).await {
                Ok(faces) => Check::ok(
                    "rekognition",
                    format!("collection {name} reachable, {} faces indexed", faces.len()),
                ),
                Err(e) => Check::fail(
                    "rekognition",
                    e.to_string(),
                    "check the AWS key's permissions",
                ),
            },
            Ok(_) => Check::fail(
                "rekognition",
                format!("collection {name} does not exist"),
                format!("run `facereko collection create {name}` and `facereko collection sync`"),
            ),
            Err(e) => Check::fail(
                "rekognition",
                e.to_string(),
                "check the network, [aws] region and credentials",
            ),
        }
    }
    #[cfg(not(feature = "aws"))]
    Check::fail(
        "rekognition",
        crate::rekognition::NOT_BUILT,
        "build with `--features aws`",
    )
}

async fn check_mqtt(config: &Config) -> Check {
    let broker = match config.mqtt.broker() {
        Ok(Some(b)) => b,
        Ok(None) => return Check::skip("mqtt", "not configured (mqtt.url is not set)"),
        Err(e) => return Check::fail("mqtt", e.to_string(), "correct mqtt.url"),
    };
    match reach(&broker.host, broker.port).await {
        Ok(t) => Check::ok(
            "mqtt",
            format!(
                "broker {}:{} reachable over TCP in {} ms (TLS and login are checked by `serve`)",
                broker.host,
                broker.port,
                t.as_millis()
            ),
        ),
        Err(e) => Check::fail(
            "mqtt",
            format!("broker {}:{} unreachable: {e}", broker.host, broker.port),
            format!(
                "check mqtt.url, that the broker runs and that port {} is open between this door and it; \
                 events wait in the outbox meanwhile",
                broker.port
            ),
        ),
    }
}

async fn check_smtp(config: &Config) -> Check {
    let email = &config.email;
    let Some(host) = email
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    else {
        return Check::skip("smtp", "not configured (email.host is not set)");
    };
    let port = email.port();
    match reach(host, port).await {
        Ok(t) => Check::ok(
            "smtp",
            format!(
                "mail server {host}:{port} reachable over TCP in {} ms",
                t.as_millis()
            ),
        ),
        Err(e) => Check::fail(
            "smtp",
            format!("mail server {host}:{port} unreachable: {e}"),
            format!("check email.host and email.port, and that port {port} is open from this door"),
        ),
    }
}

async fn check_clock() -> Check {
    let now = chrono::Utc::now();
    let year = chrono::Datelike::year(&now);
    if !(2025..2100).contains(&year) {
        return Check::fail(
            "clock",
            format!("the system clock says {} (not plausible)", now.to_rfc3339()),
            "set the time: `sudo timedatectl set-ntp true` with network access, or fit an RTC module",
        );
    }
    let ntp = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::process::Command::new("timedatectl")
            .args(["show", "-p", "NTPSynchronized", "--value"])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let shown = now.format("%Y-%m-%d %H:%M:%S UTC");
    match ntp {
        Ok(Ok(out)) if out.status.success() => match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => Check::ok("clock", format!("{shown}, NTP synchronised")),
            other => Check::fail(
                "clock",
                format!("{shown}, not NTP synchronised (NTPSynchronized={other})"),
                "`sudo timedatectl set-ntp true` and allow NTP (UDP 123) from this door; logs and \
                     schedules depend on the time",
            )
            .optional(),
        },
        _ => Check::ok(
            "clock",
            format!("{shown} (plausible; NTP synchronisation unknown: timedatectl not available)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_size_reads_jpeg_and_png_headers() {
        // A minimal JPEG: SOI, an APP0 segment, then SOF0 with height 480 and width 640.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x01]);
        assert_eq!(image_size(&jpeg), Some((640, 480)));
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&720u32.to_be_bytes());
        assert_eq!(image_size(&png), Some((1280, 720)));
        assert_eq!(image_size(b"garbage"), None);
    }

    #[test]
    fn an_optional_failure_is_a_warning() {
        let c = Check::fail("face", "none", "stand there").optional();
        assert_eq!((c.status, c.required), (Status::Warn, false));
        assert!(c.line().starts_with("WARN  face"), "{}", c.line());
        assert!(c.line().contains("fix: stand there"));
    }
}
