//! `selftest outputs|inputs`: each output switched in turn, each input watched, on a door no daemon runs.

use super::*;

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
    let rig = select(&config.hardware, a.simulate)?;
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
    let rig = select(&config.hardware, false)?;
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
