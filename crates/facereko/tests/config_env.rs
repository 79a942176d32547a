//! End to end: `FACEREKO_*` environment variables reach the real binary, and a bad one stops it with one
//! error naming the variable.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, facereko_env, ok, wait_attempts, Daemon};
use serde_json::{json, Value};

/// Runs `facereko --data-dir DIR serve --simulate --mode card` with `env`; it must fail within 30 s. Returns its
/// standard error.
fn serve_must_fail(data: &Path, env: &[(&str, &str)]) -> String {
    let mut child = Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args([
            "serve",
            "--simulate",
            "--mode",
            "card",
            "--bind",
            "127.0.0.1:0",
        ])
        .env_remove("FACEREKO_CONFIG")
        .env("FACEREKO_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(!status.success(), "serve succeeded with {env:?}: {err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started with {env:?} instead of refusing it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `facereko config show` with `env`: the effective configuration and the standard error.
fn config_show(data: &Path, env: &[(&str, &str)]) -> (Value, String) {
    let out = facereko_env(data, &["config", "show"], env);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "config show with {env:?} failed: {err}"
    );
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

#[test]
fn environment_variables_override_the_file_in_the_running_door() {
    // Regression: FACEREKO_DOOR__UNLOCK_SECONDS, FACEREKO_MQTT__URL, FACEREKO_DOOR_ID and every other
    // FACEREKO_* key were silently ignored.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("facereko.toml"),
        "door_id = \"front\"\n[door]\nunlock_seconds = 10.0\n",
    )
    .unwrap();
    ok(
        data,
        &["people", "add", "Ada Lovelace", "--card", "04:A2:2B:19"],
    );
    let daemon = Daemon::start_env(
        data,
        &["--simulate", "--mode", "card"],
        &[
            ("FACEREKO_DOOR_ID", "back"),
            ("FACEREKO_DOOR__UNLOCK_SECONDS", "2"),
            ("FACEREKO_MQTT__URL", "mqtt://127.0.0.1:9"),
        ],
    );
    let status: Value = serde_json::from_str(&ok(data, &["status", "--json"])).unwrap();
    assert_eq!(status["door_id"], "back", "{status}");
    let sinks = status["notify"]["sinks"].to_string();
    assert!(sinks.contains("mqtt"), "MQTT is on: {status}");

    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    daemon.wait_log("relay unlocked 2 s");
    let attempts = wait_attempts(data, 1);
    assert_eq!(attempts[0]["outcome"], "granted");
    assert_eq!(attempts[0]["door_id"], "back");
    daemon.stop();
}

#[test]
fn a_bad_environment_variable_stops_serve_and_names_the_variable() {
    // Regression: these started the door on local SQLite and the defaults without a word.
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("FACEREKO_DOOR__UNLOCK_SECONDS", "abc"),
        ("FACEREKO_STORE__DATABASE_URL", "oracle://x"),
        ("FACEREKO_DOOR__UNLOK_SECONDS", "3"),
        ("FACEREKO_MQTT__URL", "http://broker"),
        ("FACEREKO_MQTT__PASSWORD_FILE", "/nonexistent/credential"),
        ("FACEREKO_DATABASE_URL", "mysql://door@db/FaceReko"),
    ] {
        let err = serve_must_fail(dir.path(), &[(var, value)]);
        assert!(err.contains(var), "{var}={value}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "one error: {err}"
        );
    }
    let err = serve_must_fail(
        dir.path(),
        &[("FACEREKO_MQTT__PASSWORD_FILE", "/nonexistent/credential")],
    );
    assert!(err.contains("/nonexistent/credential"), "{err}");
}

#[test]
fn the_database_url_and_its_file_variable_pick_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let elsewhere = dir.path().join("elsewhere.db");
    let url = format!("sqlite://{}", elsewhere.display());
    let out = facereko_env(
        &data,
        &["people", "add", "Ada"],
        &[("FACEREKO_STORE__DATABASE_URL", &url)],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(elsewhere.exists());
    assert!(!data.join("facereko.db").exists());

    // The systemd credential way: the URL (with its password, for a server) in a file.
    let credential = dir.path().join("database-url");
    let from_file = dir.path().join("from-file.db");
    std::fs::write(&credential, format!("sqlite://{}\n", from_file.display())).unwrap();
    let out = facereko_env(
        &data,
        &["people", "add", "Grace"],
        &[(
            "FACEREKO_STORE__DATABASE_URL_FILE",
            &credential.display().to_string(),
        )],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(from_file.exists());
    assert!(!data.join("facereko.db").exists());
}

#[test]
fn command_line_variables_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-env");
    let out = Command::new(bin())
        .arg("migrate")
        .env("FACEREKO_DATA_DIR", &data)
        .env("FACEREKO_LOG", "debug")
        .env_remove("FACEREKO_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(data.join("facereko.db").exists());

    let file = dir.path().join("elsewhere.toml");
    std::fs::write(&file, "door_id = \"from-file\"\n").unwrap();
    let (shown, err) = config_show(&data, &[("FACEREKO_CONFIG", &file.display().to_string())]);
    assert_eq!(shown["door_id"], "from-file");
    assert!(err.contains("elsewhere.toml"), "{err}");
}

/// Every `FACEREKO_…` name in these files.
fn documented_names() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut names = BTreeSet::new();
    for file in [
        "README.md",
        "facereko.example.toml",
        "packaging/systemd/facereko.service",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for (i, _) in text.match_indices("FACEREKO_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // `FACEREKO_<SECTION>__<KEY>` and `FACEREKO_*` are patterns, not names.
            if !name.ends_with('_') {
                names.insert(name);
            }
        }
    }
    names
}

/// A variable, its test value, other variables it needs, a JSON pointer into `config show` and the value
/// expected there.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, Value);

#[test]
fn every_documented_variable_does_what_the_documentation_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-a-file-0123456789-abcdefghijklmnop\n").unwrap();
    let secret = secret.display().to_string();
    let db_url = dir.path().join("database-url");
    std::fs::write(&db_url, "mysql://door1:hunter2@db.example/FaceReko\n").unwrap();
    let db_url = db_url.display().to_string();
    let config_file = dir.path().join("other.toml");
    std::fs::write(&config_file, "door_id = \"other\"\n").unwrap();
    let config_file = config_file.display().to_string();
    let data_s = data.display().to_string();
    let hidden = json!("***");

    let mysql = "mysql://door1:hunter2@db.example/FaceReko";
    let shown_mysql = json!("mysql://door1:***@db.example/FaceReko");
    let user = ("FACEREKO_MQTT__USERNAME", "door");
    let cases: Vec<Case> = vec![
        (
            "FACEREKO_DOOR_ID",
            "door-7",
            vec![],
            "/door_id",
            json!("door-7"),
        ),
        (
            "FACEREKO_DOOR__UNLOCK_SECONDS",
            "5",
            vec![],
            "/door/unlock_seconds",
            json!(5.0),
        ),
        (
            "FACEREKO_FLEET__MAX_STALENESS",
            "15m",
            vec![],
            "/fleet/max_staleness",
            json!("15m"),
        ),
        (
            "FACEREKO_FLEET__WHEN_STALE",
            "deny",
            vec![],
            "/fleet/when_stale",
            json!("deny"),
        ),
        (
            "FACEREKO_STORE__DATABASE_URL",
            mysql,
            vec![],
            "/store/database_url",
            shown_mysql.clone(),
        ),
        (
            "FACEREKO_STORE__DATABASE_URL_FILE",
            &db_url,
            vec![],
            "/store/database_url",
            shown_mysql,
        ),
        (
            "FACEREKO_HARDWARE__GPIO__RELAY__LINE",
            "26",
            vec![],
            "/hardware/gpio/relay/line",
            json!(26),
        ),
        (
            "FACEREKO_WEB__BIND",
            "127.0.0.1:5001",
            vec![],
            "/web/bind",
            json!("127.0.0.1:5001"),
        ),
        (
            "FACEREKO_MQTT__URL",
            "mqtt://127.0.0.1:1883",
            vec![],
            "/mqtt/url",
            json!("mqtt://127.0.0.1:1883"),
        ),
        (
            "FACEREKO_MQTT__PASSWORD",
            "pw",
            vec![user],
            "/mqtt/password",
            hidden.clone(),
        ),
        (
            "FACEREKO_MQTT__PASSWORD_FILE",
            &secret,
            vec![user],
            "/mqtt/password",
            hidden.clone(),
        ),
        (
            "FACEREKO_MQTT__COMMANDS__SECRET",
            "0123456789abcdef",
            vec![],
            "/mqtt/commands/secret",
            hidden.clone(),
        ),
        (
            "FACEREKO_MQTT__COMMANDS__SECRET_FILE",
            &secret,
            vec![],
            "/mqtt/commands/secret",
            hidden.clone(),
        ),
        (
            "FACEREKO_EMAIL__PASSWORD",
            "pw",
            vec![],
            "/email/password",
            hidden.clone(),
        ),
        (
            "FACEREKO_EMAIL__PASSWORD_FILE",
            &secret,
            vec![],
            "/email/password",
            hidden.clone(),
        ),
        (
            "FACEREKO_AWS__ACCESS_KEY_ID",
            "AKIAEXAMPLE",
            vec![],
            "/aws/access_key_id",
            hidden.clone(),
        ),
        (
            "FACEREKO_AWS__ACCESS_KEY_ID_FILE",
            &secret,
            vec![],
            "/aws/access_key_id",
            hidden.clone(),
        ),
        (
            "FACEREKO_AWS__SECRET_ACCESS_KEY",
            "pw",
            vec![],
            "/aws/secret_access_key",
            hidden.clone(),
        ),
        (
            "FACEREKO_AWS__SECRET_ACCESS_KEY_FILE",
            &secret,
            vec![],
            "/aws/secret_access_key",
            hidden.clone(),
        ),
        (
            "FACEREKO_REKOGNITION_API__SECRET_ACCESS_KEY",
            "pw",
            vec![],
            "/rekognition_api/secret_access_key",
            hidden.clone(),
        ),
        (
            "FACEREKO_REKOGNITION_API__SECRET_ACCESS_KEY_FILE",
            &secret,
            vec![],
            "/rekognition_api/secret_access_key",
            hidden,
        ),
        (
            "FACEREKO_CONFIG",
            &config_file,
            vec![],
            "/door_id",
            json!("other"),
        ),
    ];
    // Not configuration: the data directory and log filter (command-line options) and the test suites'
    // locations. They must not disturb the configuration.
    let not_config = [
        ("FACEREKO_DATA_DIR", data_s.as_str()),
        ("FACEREKO_LOG", "debug"),
        (
            "FACEREKO_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:3306/test",
        ),
        (
            "FACEREKO_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        ),
        ("FACEREKO_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"),
        ("FACEREKO_TEST_PYTHON", "/usr/bin/python3"),
        ("FACEREKO_MODELS_DIR", "/models"),
        ("FACEREKO_FACES_DIR", "/faces"),
        ("FACEREKO_CHROMEDRIVER", "/usr/bin/chromedriver"),
    ];

    // Shown in the README as mistakes: each must stop the program naming itself.
    let refused = [
        ("FACEREKO_DOOR__UNLOK_SECONDS", "5"),
        ("FACEREKO_DOOR_UNLOCK_SECONDS", "5"),
        ("FACEREKO_DATABASE_URL", "mysql://door1@db.example/FaceReko"),
    ];

    let documented = documented_names();
    let tested: BTreeSet<&str> = cases
        .iter()
        .map(|c| c.0)
        .chain(not_config.iter().map(|c| c.0))
        .chain(refused.iter().map(|c| c.0))
        .collect();
    let untested: Vec<&String> = documented
        .iter()
        .filter(|n| !tested.contains(n.as_str()))
        .collect();
    assert!(
        untested.is_empty(),
        "documented but not exercised here: {untested:?}"
    );
    assert!(
        documented.contains("FACEREKO_STORE__DATABASE_URL_FILE"),
        "the _FILE variables are documented: {documented:?}"
    );

    let (defaults, _) = config_show(&data, &[]);
    for (name, value, extra, pointer, expected) in &cases {
        if !documented.contains(*name) {
            continue;
        }
        let mut env = extra.clone();
        env.push((name, value));
        let (shown, err) = config_show(&data, &env);
        assert_eq!(
            shown.pointer(pointer),
            Some(expected),
            "{name}={value} should set {pointer}"
        );
        assert_ne!(
            defaults.pointer(pointer),
            Some(expected),
            "{name}: the test value must differ from the default"
        );
        if *name != "FACEREKO_CONFIG" {
            assert!(err.contains(name), "config show names {name}: {err}");
        }
        assert!(!shown.to_string().contains("hunter2"), "{shown}");
    }
    for (name, value) in refused {
        let out = facereko_env(&data, &["config", "show"], &[(name, value)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(err.contains(name), "{name}: {err}");
    }
    for (name, value) in not_config {
        if !documented.contains(name) {
            continue;
        }
        let (shown, err) = config_show(&data, &[(name, value)]);
        assert_eq!(shown, defaults, "{name} is not configuration");
        assert!(
            err.contains("no FACEREKO_* configuration variables"),
            "{name}: {err}"
        );
    }
}
