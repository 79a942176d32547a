//! Commissioning commands end to end: `card read`, `selftest` and `doctor` on the real binary, against the
//! simulated devices (through a running daemon) and against the bench rig (the real MFRC522 driver over a
//! software chip, GPIO lines logged to a file).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, facereko, ok, wait_attempts, Daemon};

/// `facereko --data-dir DIR ARGS…` with extra environment (the bench spec).
fn command(data_dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("FACEREKO_CONFIG")
        .env_remove("FACEREKO_HARDWARE__MODE")
        .env_remove("FACEREKO_HARDWARE__BENCH")
        .env("FACEREKO_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The environment that puts the commands on the bench rig described by `spec`.
fn on_bench(spec: &Path) -> [(&'static str, &Path); 2] {
    [
        ("FACEREKO_HARDWARE__MODE", Path::new("bench")),
        ("FACEREKO_HARDWARE__BENCH", spec),
    ]
}

fn run(data_dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    command(data_dir, args, env).output().expect("run facereko")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes a bench spec and returns its path.
fn bench(dir: &Path, json: &str) -> std::path::PathBuf {
    let p = dir.join("bench.json");
    std::fs::write(&p, json).unwrap();
    p
}

/// The one doctor line for `name`.
fn doctor_line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(name)))
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

/// Runs `card read` in the background and taps `uid` on the daemon's simulated reader until it returns:
/// a tap that lands before the command is waiting goes to the door instead, and the next one is caught.
fn read_tapped(data: &Path, uid: &str, args: &[&str]) -> Output {
    let mut read = vec!["card", "read", "--timeout", "30"];
    read.extend_from_slice(args);
    let child = command(data, &read, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() {
        assert!(Instant::now() < deadline, "card read never returned");
        std::thread::sleep(Duration::from_millis(300));
        if !waiter.is_finished() {
            let _ = facereko(data, &["sim", "tap", uid]);
        }
    }
    let out = waiter.join().unwrap();
    assert!(out.status.success(), "card read (pid {id}): {}", text(&out));
    out
}

#[test]
fn card_read_takes_taps_from_the_daemon_and_names_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(
        data,
        &["people", "add", "Ada Lovelace", "--card", "04:A2:2B:19"],
    );
    let daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);

    let out = read_tapped(data, "04:a2:2b:19", &["--json"]);
    let card: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(card["uid"], "04:A2:2B:19");
    assert_eq!(card["uid_bytes"], 4);
    assert_eq!(card["enrolled"], true);
    assert_eq!(card["person"]["name"], "Ada Lovelace");
    assert!(
        text(&out).contains("asking the running daemon"),
        "{}",
        text(&out)
    );

    let out = read_tapped(data, "04:11:22:33:44:55:66", &[]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("card 04:11:22:33:44:55:66  (7-byte UID)"),
        "{shown}"
    );
    assert!(shown.contains("not enrolled"), "{shown}");
    assert!(shown.contains("not reported (simulated reader)"), "{shown}");
    assert!(daemon.stop().success());
}

#[test]
fn card_read_without_a_daemon_on_simulated_devices_says_how_to_tap() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["card", "read", "--timeout", "1"], &[]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("serve --simulate") && t.contains("sim tap"),
        "{t}"
    );
}

#[test]
fn card_read_on_the_bench_reader_gives_uid_atqa_sak_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(
        data,
        &[
            "people",
            "add",
            "Grace Hopper",
            "--card",
            "04:11:22:33:44:55:66",
        ],
    );

    let spec = bench(data, r#"{"reader": {"cards": [{"uid": "04:A2:2B:19"}]}}"#);
    let out = run(
        data,
        &["card", "read", "--json", "--timeout", "10"],
        &on_bench(&spec),
    );
    assert!(out.status.success(), "{}", text(&out));
    let card: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(card["uid"], "04:A2:2B:19");
    assert_eq!(card["atqa"], 4);
    assert_eq!(card["sak"], 8);
    assert_eq!(card["card_type"], "MIFARE Classic 1K");
    assert_eq!(card["enrolled"], false);

    // A 7-byte Ultralight put on the reader a moment after the command started waiting.
    let spec = bench(
        data,
        r#"{"reader": {"cards": [{"uid": "04:11:22:33:44:55:66", "after_ms": 400}]}}"#,
    );
    let out = run(data, &["card", "read", "--timeout", "10"], &on_bench(&spec));
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("card 04:11:22:33:44:55:66  (7-byte UID)"),
        "{shown}"
    );
    assert!(
        shown.contains("ATQA 0x0044, SAK 0x00: MIFARE Ultralight / NTAG"),
        "{shown}"
    );
    assert!(shown.contains("enrolled: Grace Hopper"), "{shown}");

    // --watch prints both cards of a collision, one after the other, then stops at --timeout.
    let spec = bench(
        data,
        r#"{"reader": {"cards": [{"uid": "04:A2:2B:19"}, {"uid": "08:11:22:33", "after_ms": 300}]}}"#,
    );
    let out = run(
        data,
        &["card", "read", "--watch", "--json", "--timeout", "3"],
        &on_bench(&spec),
    );
    assert!(out.status.success(), "{}", text(&out));
    let uids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["uid"].to_string())
        .collect();
    assert_eq!(uids, ["\"04:A2:2B:19\"", "\"08:11:22:33\""]);
}

#[test]
fn card_read_on_a_dead_reader_times_out_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let spec = bench(dir.path(), r#"{"reader": {"answering": false}}"#);
    let out = run(
        dir.path(),
        &["card", "read", "--timeout", "2"],
        &on_bench(&spec),
    );
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("not working") && t.contains("VersionReg read 0x00"),
        "{t}"
    );
}

#[test]
fn doctor_names_the_register_of_a_reader_that_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let spec = bench(data, r#"{"reader": {"answering": false}}"#);
    let out = run(data, &["doctor"], &on_bench(&spec));
    assert!(!out.status.success(), "a dead reader fails doctor");
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    let line = doctor_line(&t, "reader");
    assert!(line.starts_with("FAIL"), "{line}");
    for needle in [
        "VersionReg read 0x00",
        "SPI is enabled",
        "wiring",
        "reset pin",
    ] {
        assert!(line.contains(needle), "{needle:?} missing: {line}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reader"),
        "the error names the failed check"
    );
}

#[test]
fn doctor_names_the_install_command_for_missing_models() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let out = run(data, &["doctor", "--json"], &[]);
    assert!(!out.status.success(), "card+face needs the models");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().unwrap();
    let models = checks.iter().find(|c| c["name"] == "models").unwrap();
    assert_eq!(models["status"], "fail");
    assert!(
        models["fix"]
            .as_str()
            .unwrap()
            .contains("facereko models install"),
        "{models}"
    );
    for name in ["config", "data dir", "database"] {
        let c = checks.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(c["status"], "ok", "{c}");
    }
    // NTP may or may not be synchronised where the tests run; only a wrong clock is a failure.
    let clock = checks.iter().find(|c| c["name"] == "clock").unwrap();
    assert!(
        clock["status"] == "ok" || clock["status"] == "warn",
        "{clock}"
    );

    // A card-only door does not need them: the same finding is a warning and doctor passes.
    std::fs::write(data.join("facereko.toml"), "[door]\nmode = \"card\"\n").unwrap();
    let out = run(data, &["doctor"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(doctor_line(&t, "models").starts_with("WARN"), "{t}");
    assert!(t.contains("facereko models install"), "{t}");
}

#[test]
fn doctor_passes_on_a_healthy_bench_door_and_reports_the_chip_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(data.join("facereko.toml"), "[door]\nmode = \"card\"\n").unwrap();
    let spec = bench(data, "{}");
    let out = run(data, &["doctor"], &on_bench(&spec));
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        doctor_line(&t, "reader").contains("MFRC522 v2.0 (VersionReg 0x92)"),
        "{t}"
    );
    let gpio = doctor_line(&t, "gpio");
    assert!(
        gpio.starts_with("ok") && gpio.contains("relay GPIO23"),
        "{gpio}"
    );

    // A line held by another program fails the GPIO check.
    let spec = bench(data, r#"{"gpio": {"busy": [[23, "pigpiod"]]}}"#);
    let out = run(data, &["doctor"], &on_bench(&spec));
    assert!(!out.status.success());
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    let gpio = doctor_line(&t, "gpio");
    assert!(
        gpio.starts_with("FAIL") && gpio.contains("held by pigpiod"),
        "{gpio}"
    );
}

#[test]
fn doctor_reports_a_camera_that_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("facereko.toml"),
        "[hardware.camera]\nbackend = \"command\"\ncommand = [\"sleep\", \"30\"]\ntimeout_ms = 300\n",
    )
    .unwrap();
    let spec = bench(data, "{}");
    let started = Instant::now();
    let out = run(data, &["doctor"], &on_bench(&spec));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "doctor waited for the camera"
    );
    assert!(!out.status.success());
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    let camera = doctor_line(&t, "camera");
    assert!(
        camera.starts_with("FAIL") && camera.contains("no frame within 300 ms"),
        "{camera}"
    );
    assert!(camera.contains("fix:"), "{camera}");
    assert!(doctor_line(&t, "face").starts_with("skip"), "{t}");
}

#[test]
fn doctor_reports_an_unreachable_broker_and_mail_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        data.join("facereko.toml"),
        format!(
            "[door]\nmode = \"card\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n\
             [email]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nto = [\"ops@example.org\"]\n"
        ),
    )
    .unwrap();
    let out = run(data, &["doctor", "--json"], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["mqtt", "smtp"] {
        let c = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        assert_eq!(c["status"], "fail", "{c}");
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("127.0.0.1:{port} unreachable")),
            "{c}"
        );
        assert!(
            c["fix"].as_str().unwrap().contains(&port.to_string()),
            "{c}"
        );
    }
}

/// Starts `selftest outputs`, waits for `line` on its output, sends SIGINT, and returns everything it said.
fn interrupt_selftest(
    data: &Path,
    env: &[(&str, &Path)],
    at: &str,
) -> (std::process::ExitStatus, String) {
    let mut child = command(data, &["selftest", "outputs", "--step-ms", "1000"], env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut said = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains(at) {
            break;
        }
    }
    assert!(said.contains(at), "never reached {at:?}:\n{said}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for line in lines {
        said.push_str(&line.unwrap());
        said.push('\n');
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    said.push_str(&err);
    (status, said)
}

#[test]
fn selftest_outputs_interrupted_half_way_leaves_the_simulated_outputs_safe() {
    let dir = tempfile::tempdir().unwrap();
    let (status, said) = interrupt_selftest(dir.path(), &[], "[4/4] lock relay ON");
    assert!(!status.success(), "an interrupted self-test is not a pass");
    assert!(said.contains("interrupted by SIGINT"), "{said}");
    assert!(
        said.contains("recorded changes: red on, red off, green on, green off, buzzer on, buzzer off, relay on, relay off"),
        "{said}"
    );
    assert!(
        said.contains("final levels: red off, green off, buzzer off, relay off"),
        "{said}"
    );
}

/// The last level written to each line of a bench GPIO log.
fn last_levels(log: &Path) -> std::collections::HashMap<u32, u8> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let (line, level) = l.split_once(' ').unwrap();
            (line.parse().unwrap(), level.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_daemon_runs_on_the_bench_rig_and_its_decision_reaches_the_relay_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(
        data,
        &["people", "add", "Ada Lovelace", "--card", "04:A2:2B:19"],
    );
    let log = data.join("levels.log");
    // The card is put on the reader once the daemon has had time to start.
    let spec = bench(
        data,
        &format!(
            r#"{{"reader": {{"cards": [{{"uid": "04:A2:2B:19", "after_ms": 1500}}]}},
                 "gpio": {{"log": {:?}}}}}"#,
            log.display().to_string()
        ),
    );
    let spec = spec.display().to_string();
    let daemon = Daemon::start_env(
        data,
        &["--mode", "card"],
        &[
            ("FACEREKO_HARDWARE__MODE", "bench"),
            ("FACEREKO_HARDWARE__BENCH", &spec),
        ],
    );
    let attempts = wait_attempts(data, 1);
    assert_eq!(attempts[0]["outcome"], "granted", "{attempts:?}");
    assert_eq!(attempts[0]["person"], "Ada Lovelace");
    assert!(daemon.log().contains("bench rig"), "{}", daemon.log());
    // The relay line (23 by default) was driven on through the real GPIO mapping, and is off again
    // once the daemon has stopped.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap().contains("23 1") {
        assert!(Instant::now() < deadline, "the relay was never energised");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon.stop().success());
    assert_eq!(last_levels(&log)[&23], 0, "relay locked after stop");
}

#[test]
fn selftest_outputs_on_gpio_respects_polarity_and_ends_safe_when_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // A relay board that switches on LOW, as many do.
    std::fs::write(
        data.join("facereko.toml"),
        "[hardware.gpio.relay]\nline = 23\nactive_low = true\n",
    )
    .unwrap();
    let log = data.join("levels.log");
    let spec = bench(
        data,
        &format!(r#"{{"gpio": {{"log": {:?}}}}}"#, log.display().to_string()),
    );

    // Interrupted while the buzzer sounds.
    let (status, said) = interrupt_selftest(data, &on_bench(&spec), "[3/4] buzzer ON");
    assert!(!status.success());
    assert!(said.contains("outputs safe"), "{said}");
    let levels = last_levels(&log);
    assert_eq!(levels[&22], 0, "buzzer silent");
    assert_eq!(levels[&23], 1, "active-low relay locked (HIGH)");
    assert_eq!(levels[&27], 0);
    assert_eq!(levels[&17], 0);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .any(|l| l == "22 1"),
        "the buzzer was switched on before the interrupt"
    );

    // A full run switches every output on exactly once, relay at the LOW level.
    std::fs::remove_file(&log).unwrap();
    let out = run(
        data,
        &["selftest", "outputs", "--step-ms", "50"],
        &on_bench(&spec),
    );
    assert!(out.status.success(), "{}", text(&out));
    let writes = std::fs::read_to_string(&log).unwrap();
    let on: Vec<&str> = writes
        .lines()
        .filter(|l| matches!(*l, "17 1" | "27 1" | "22 1" | "23 0"))
        .collect();
    assert_eq!(on, ["17 1", "27 1", "22 1", "23 0"], "{writes}");
    let levels = last_levels(&log);
    assert_eq!(
        (levels[&17], levels[&27], levels[&22], levels[&23]),
        (0, 0, 0, 1)
    );
}

#[test]
fn selftest_outputs_refuses_to_fight_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--simulate", "--mode", "card"]);
    let out = run(dir.path(), &["selftest", "outputs"], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("owns the outputs"), "{}", text(&out));
    assert!(daemon.stop().success());
}

#[test]
fn selftest_inputs_shows_debounced_changes_live() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("facereko.toml"),
        "[hardware.gpio]\ndebounce_ms = 30\n[hardware.gpio.door_contact]\nline = 5\n\
         [hardware.gpio.exit_button]\nline = 6\nactive_low = true\n",
    )
    .unwrap();
    // Door opens, closes; the exit button bounces then is pressed (LOW) and released.
    let spec = bench(
        data,
        r#"{"gpio": {"edges": [
            {"after_ms": 100, "line": 5, "high": true},
            {"after_ms": 400, "line": 5, "high": false},
            {"after_ms": 700, "line": 6, "high": false},
            {"after_ms": 705, "line": 6, "high": true},
            {"after_ms": 710, "line": 6, "high": false},
            {"after_ms": 900, "line": 6, "high": true}]}}"#,
    );
    let out = run(
        data,
        &["selftest", "inputs", "--timeout", "2"],
        &on_bench(&spec),
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    let events: Vec<&str> = t
        .lines()
        .filter_map(|l| l.split_once(" s ").map(|(_, e)| e))
        .collect();
    assert_eq!(
        events,
        ["door opened", "door closed", "exit button pressed"],
        "{t}"
    );
    assert!(t.contains("3 change(s) seen"), "{t}");
}

#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
fn doctor_verifies_the_models_and_finds_a_face_in_the_camera_frame() {
    let var = |v: &str| {
        std::env::var(v).unwrap_or_else(|_| panic!("{v} is not set (scripts/test.sh sets it)"))
    };
    let models = var("FACEREKO_MODELS_DIR");
    let photo = Path::new(&var("FACEREKO_FACES_DIR")).join("lfw-dev/Aaron_Sorkin/01.jpg");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("facereko.toml"),
        format!(
            "[vision]\nmodels_dir = {models:?}\n[sim]\ncamera = {:?}\n",
            photo.display().to_string()
        ),
    )
    .unwrap();
    let out = run(data, &["doctor", "--simulate"], &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        doctor_line(&t, "models").contains("SHA-256 verified"),
        "{t}"
    );
    let camera = doctor_line(&t, "camera");
    assert!(
        camera.starts_with("ok") && camera.contains("first frame 250x250"),
        "{camera}"
    );
    assert!(
        doctor_line(&t, "face").starts_with("ok  ") && t.contains("a face was found"),
        "{t}"
    );
}
