//! End to end: the real binary, simulated hardware, SQLite in a temporary data directory.

mod common;

use common::{facereko, ok, wait_attempts, Daemon};

#[test]
fn a_tapped_card_is_decided_cued_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let added = ok(
        data,
        &["people", "add", "Ada Lovelace", "--card", "04:a2:2b:19"],
    );
    assert!(added.contains("04:A2:2B:19"), "{added}");
    let listed = ok(data, &["people", "list"]);
    assert!(
        listed.contains("Ada Lovelace") && listed.contains("04:A2:2B:19"),
        "{listed}"
    );

    let daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);
    let banner = daemon.log();
    assert!(
        banner.contains(&data.canonicalize().unwrap().display().to_string()),
        "prints where its data is:\n{banner}"
    );

    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    let log = daemon.wait_log("relay unlocked 10 s");
    assert!(log.contains("green on"), "{log}");
    assert!(log.contains("buzzer on 2 s"), "{log}");

    ok(data, &["sim", "tap", "DE:AD:BE:EF"]);
    let attempts = wait_attempts(data, 2);
    // Newest first.
    assert_eq!(attempts[0]["outcome"], "unknown_card");
    assert_eq!(attempts[0]["card_uid"], "DE:AD:BE:EF");
    assert_eq!(attempts[1]["outcome"], "granted");
    assert_eq!(attempts[1]["person"], "Ada Lovelace");
    for a in &attempts {
        for key in ["time", "card_uid", "person", "outcome", "similarity"] {
            assert!(a.get(key).is_some(), "attempt lacks {key}: {a}");
        }
    }
    let log = daemon.wait_log("buzzer on 500 ms");
    assert!(log.contains("card DE:AD:BE:EF tapped"), "{log}");

    let table = ok(data, &["attempts", "list"]);
    assert!(
        table.contains("unknown_card") && table.contains("granted"),
        "{table}"
    );

    let status = daemon.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[test]
fn the_offline_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    ok(
        data,
        &["people", "add", "Ada Lovelace", "--card", "04:A2:2B:19"],
    );
    let daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);
    ok(data, &["disarm"]);
    let first = daemon.stop();
    assert!(first.success());

    let daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);
    let status: serde_json::Value = serde_json::from_str(&ok(data, &["status", "--json"])).unwrap();
    assert_eq!(status["armed"], false, "{status}");
    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    daemon.wait_log("ignored: system is Offline");
    assert_eq!(ok(data, &["attempts", "list", "--json"]).trim(), "[]");
    daemon.stop();
}

#[test]
fn a_second_daemon_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let daemon = Daemon::start(data, &["--simulate", "--mode", "card"]);
    let out = facereko(data, &["serve", "--simulate", "--mode", "card"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    daemon.stop();
}

#[test]
fn malformed_card_uids_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (uid, why) in [
        ("04:A2:2B", "3 bytes"),
        ("04:A2:2B:ZZ", "unexpected character 'Z'"),
        ("1234567", "odd number"),
    ] {
        let out = facereko(dir.path(), &["people", "add", "Eve", "--card", uid]);
        assert!(!out.status.success(), "{uid} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{uid}: {err}");
        let out = facereko(dir.path(), &["sim", "tap", uid]);
        assert!(!out.status.success());
    }
    // Nothing was added by the refused commands.
    assert!(ok(dir.path(), &["people", "list", "--json"]).trim() == "[]");
}

#[test]
fn sim_commands_without_a_daemon_say_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = facereko(dir.path(), &["sim", "tap", "04:A2:2B:19"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serve --simulate"), "{err}");
}

#[test]
fn a_broken_config_file_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("facereko.toml"),
        "[door]\nmode = \"doorbell\"\n",
    )
    .unwrap();
    let out = facereko(dir.path(), &["serve", "--simulate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mode") && err.contains("facereko.toml"),
        "{err}"
    );
}

#[test]
fn the_web_app_is_served_next_to_the_door() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--simulate", "--mode", "card"]);
    let log = daemon.wait_log("web app:");
    let addr = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("web app:"))
        .map(|a| {
            a.trim()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        })
        .unwrap();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    // No account yet: the home page sends the visitor to first-run setup, and shows nothing itself.
    let status = reply.lines().next().unwrap_or_default().to_string();
    assert!(status.contains("303") || status.contains("302"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("location: /setup"),
        "{reply}"
    );
    // ... and the set-up code it asks for is printed to the console (and journal) only.
    let log = daemon.wait_log("set-up code");
    let code = log
        .split("set-up code ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(code.len(), 14, "a code like ABCD-EFGH-JKMN: {log}");
    daemon.stop();
}

/// Changes made with the command line are in the audit trail, with the system user and `cli`.
#[tokio::test]
async fn command_line_changes_are_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("USER", "maria"),
        ("SUDO_USER", ""),
        ("SSH_CONNECTION", "192.0.2.4 50022 192.0.2.1 22"),
    ];
    common::ok_env(
        dir.path(),
        &["people", "add", "Ada", "--card", "04:A2:2B:19"],
        &env,
    );
    common::ok_env(dir.path(), &["people", "disable", "Ada"], &env);
    common::ok_env(
        dir.path(),
        &["people", "add-card", "Ada", "04:00:00:01"],
        &env,
    );
    let url = format!("sqlite://{}", dir.path().join("facereko.db").display());
    let store = facereko_store::Store::open(&url, dir.path()).await.unwrap();
    let mut trail = store
        .audit_entries(&facereko_store::AuditQuery::default())
        .await
        .unwrap();
    trail.reverse();
    let seen: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("person.add", "Ada", ""),
            ("card.add", "Ada", "card 04:A2:••:••"),
            ("person.update", "Ada", "disabled"),
            ("card.add", "Ada", "card 04:00:••:••"),
        ]
    );
    for e in &trail {
        assert_eq!(e.actor, "maria");
        assert_eq!(e.via, facereko_domain::AuditVia::Cli);
        assert_eq!(e.origin.as_deref(), Some("ssh from 192.0.2.4"));
    }
}

#[test]
fn an_admin_account_can_be_added_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    assert!(common::add_admin(
        dir.path(),
        &[],
        "admin",
        "correct horse battery"
    ));
    let list = ok(dir.path(), &["accounts", "list"]);
    assert!(list.contains("admin") && list.contains("Admin"), "{list}");
    // A bad username is refused before any password is asked for.
    let out = facereko(dir.path(), &["accounts", "add", "bad name!"]);
    assert!(!out.status.success());
}
