//! The settings page of a real daemon: a value set in the browser is checked like the file, kept, shown
//! with its source, recorded, and in force after a restart; a key the environment sets stays read-only.

mod common;

use common::web::{web_addr, Browser};
use common::{ok, Daemon};

const ENV: [(&str, &str); 1] = [("FACEREKO_DOOR__MODE", "card")];

fn settings_form(web: &mut Browser) -> String {
    let page = web.request("GET", "/settings", None);
    assert_eq!(page.status, 200, "{}", page.body);
    Browser::csrf(&page)
}

#[test]
fn a_value_set_in_the_browser_is_checked_kept_and_in_force_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(common::add_admin(
        data,
        &ENV,
        "boss",
        "correct horse battery"
    ));
    ok(data, &["people", "add", "Ada", "--card", "04:A2:2B:19"]);
    let daemon = Daemon::start_env(data, &["--simulate"], &ENV);
    let mut web = Browser::sign_in(web_addr(&daemon), "boss", "correct horse battery");

    let page = web.request("GET", "/settings", None);
    assert_eq!(page.status, 200);
    // The environment sets the mode: shown with its variable, no form for it.
    assert!(
        page.body.contains("set by FACEREKO_DOOR__MODE"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("action=\"/settings/door.mode\""));
    assert!(page
        .body
        .contains("action=\"/settings/door.unlock_seconds\""));
    assert!(page.body.contains("In force: <strong>10</strong>"));
    // Each input holds the value as the file would write it, so it can be saved as it is.
    assert!(
        page.body.contains("In force: <strong>local</strong>"),
        "{}",
        page.body
    );

    // The page refuses what the configuration file would, with the file's reason.
    let csrf = settings_form(&mut web);
    let bad = web.request(
        "POST",
        "/settings/door.unlock_seconds",
        Some(&[("csrf", &csrf), ("value", "-5")]),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("unlock_seconds"), "{}", bad.body);
    let bad = web.request(
        "POST",
        "/settings/time_zone",
        Some(&[("csrf", &csrf), ("value", "Mars/Olympus_Mons")]),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    let env_wins = web.request(
        "POST",
        "/settings/door.mode",
        Some(&[("csrf", &csrf), ("value", "face")]),
    );
    assert_eq!(env_wins.status, 400, "{}", env_wins.body);
    assert!(env_wins.body.contains("change it there"));

    // A good value: kept, in force at once (the unlock time needs no restart), in History's changes.
    let saved = web.request(
        "POST",
        "/settings/door.unlock_seconds",
        Some(&[("csrf", &csrf), ("value", "3")]),
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location.as_deref(), Some("/settings?done=saved_now"));
    let page = web.request("GET", "/settings?done=saved_now", None);
    assert!(page.body.contains("in force now"), "{}", page.body);
    assert!(
        page.body.contains("In force: <strong>3</strong>"),
        "{}",
        page.body
    );
    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    daemon.wait_log("relay unlocked 3 s");
    // Another setting waits for the restart.
    let zone = web.request(
        "POST",
        "/settings/time_zone",
        Some(&[("csrf", &csrf), ("value", "Europe/Paris")]),
    );
    assert_eq!(zone.location.as_deref(), Some("/settings?done=saved"));
    let page = web.request("GET", "/settings", None);
    assert!(
        page.body.contains("Europe/Paris at the next start"),
        "{}",
        page.body
    );
    let changes = web.request("GET", "/history?what=changes&action=setting", None);
    assert!(changes.body.contains("<code>setting.change</code>"));
    assert!(changes.body.contains("door.unlock_seconds"));

    // A test event for every sink.
    let sent = web.request("POST", "/settings/test", Some(&[("csrf", &csrf)]));
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(sent.location.as_deref(), Some("/settings?done=test"));

    // After a restart both are in force; the page says where the values come from.
    daemon.stop();
    let daemon = Daemon::start_env(data, &["--simulate"], &ENV);
    assert!(daemon
        .log()
        .contains("settings set in the web app: door.unlock_seconds, time_zone"));
    ok(data, &["sim", "tap", "04:A2:2B:19"]);
    let log = daemon.wait_log("relay unlocked 3 s");
    assert!(!log.contains("relay unlocked 10 s"), "{log}");
    let mut web = Browser::sign_in(web_addr(&daemon), "boss", "correct horse battery");
    let page = web.request("GET", "/settings", None);
    assert!(
        page.body.contains(
            "In force: <strong>3</strong> <small class=\"muted\">(set on this page)</small>"
        ),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("In force: <strong>Europe/Paris</strong>"));

    // Reset: back to the defaults.
    let csrf = Browser::csrf(&page);
    for key in ["door.unlock_seconds", "time_zone"] {
        let reset = web.request(
            "POST",
            &format!("/settings/{key}"),
            Some(&[("csrf", &csrf), ("action", "reset")]),
        );
        assert_eq!(reset.status, 303, "{}", reset.body);
    }
    daemon.stop();
    let daemon = Daemon::start_env(data, &["--simulate"], &ENV);
    assert!(!daemon.log().contains("settings set in the web app"));
    daemon.stop();
}
