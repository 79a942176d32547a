//! End to end in real headless Chromium driven through chromedriver: first-run set-up, sign-in,
//! Deactivate/Activate, a simulated card tap appearing live on the home page, its photo, and a face
//! enrolled by upload. Screenshots of home and history are saved as test artefacts.
//!
//! And every page at a desktop width (1280×900) and a phone's (390×844): none scrolls sideways, nothing
//! sticks out of the viewport (not even inside a sideways scroller), its key content is in view, and a
//! whole-page screenshot `<page>-<width>.png` is saved (a few also in dark mode, `<page>-390-dark.png`).
//!
//! Needs `FACEREKO_CHROMEDRIVER` (path of Debian's `chromedriver`; Chromium at `/usr/bin/chromium` or
//! `FACEREKO_CHROMIUM`). Screenshots go to `FACEREKO_SCREENSHOT_DIR` or `target/web-screenshots/`.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{jpeg, upload, Fixture};
use facereko_domain::{Mode, Outcome, PersonId};
use facereko_store::Role;
use facereko_vision::testing::Script;
use facereko_web::WebConfig;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_chromedriver() -> (Driver, u16) {
    let path = std::env::var("FACEREKO_CHROMEDRIVER").expect(
        "FACEREKO_CHROMEDRIVER must name the chromedriver binary (apt-get install chromium-driver)",
    );
    let port = free_port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (driver, port)
}

async fn browser(port: u16, profile: &std::path::Path) -> Client {
    browser_with(port, profile, &[]).await
}

/// A browser session with Chromium `extra` switches besides the usual ones.
async fn browser_with(port: u16, profile: &std::path::Path, extra: &[&str]) -> Client {
    let chromium =
        std::env::var("FACEREKO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=412,915".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("chromedriver session")
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("FACEREKO_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/web-screenshots")
        })
}

/// Polls a JavaScript expression until it is `true`.
async fn wait_true(c: &Client, expr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = c
            .execute(&format!("return !!({expr});"), vec![])
            .await
            .unwrap();
        if v == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FACEREKO_CHROMEDRIVER (set by .ci/run)"]
async fn a_manager_sets_up_signs_in_switches_the_door_and_sees_a_tap_live() {
    let (_driver, driver_port) = start_chromedriver().await;
    let f = Fixture::with(WebConfig::default(), Mode::CardFace).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let base = format!("http://{addr}");
    let profile = tempfile::tempdir().unwrap();
    let c = browser(driver_port, profile.path()).await;

    // First run: every page leads to set-up.
    c.goto(&format!("{base}/history")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/setup");
    let form = c.form(Locator::Css("form[action='/setup']")).await.unwrap();
    form.set_by_name("setup_code", f.state.setup_code())
        .await
        .unwrap();
    form.set_by_name("username", "manager").await.unwrap();
    form.set_by_name("password", "s3cret-pass").await.unwrap();
    form.set_by_name("password2", "s3cret-pass").await.unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Id("status")).await.unwrap();

    // Sign out and back in.
    c.find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("form[action='/login']"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("You are signed out"));
    let form = c.form(Locator::Css("form[action='/login']")).await.unwrap();
    form.set_by_name("username", "manager").await.unwrap();
    form.set_by_name("password", "wrong-password")
        .await
        .unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Css("p.error")).await.unwrap();
    assert!(text(&c).await.contains("Wrong username or password"));
    let form = c.form(Locator::Css("form[action='/login']")).await.unwrap();
    form.set_by_name("username", "manager").await.unwrap();
    form.set_by_name("password", "s3cret-pass").await.unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Id("status")).await.unwrap();

    // Deactivate, then activate.
    c.find(Locator::Id("deactivate"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("activate")).await.unwrap();
    assert_eq!(
        c.find(Locator::Id("st-system"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Offline"
    );
    assert!(!f.door.status().armed);
    c.find(Locator::Id("activate"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Id("deactivate"))
        .await
        .unwrap();
    assert_eq!(
        c.find(Locator::Id("st-system"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Active"
    );
    assert!(f.door.status().armed);

    // A card tap shows up live, without a reload.
    let ada = f.person_with_card("Ada Lovelace", "04:A2:2B:19").await;
    wait_true(
        &c,
        "document.getElementById('live-state').textContent === 'Live'",
        "the live stream",
    )
    .await;
    c.execute("window.__sameDocument = true; return null;", vec![])
        .await
        .unwrap();
    f.engine.push(Script::Match {
        person: None,
        similarity: 93.5,
    });
    f.tap("04:A2:2B:19");
    wait_true(
        &c,
        "document.querySelector('#attempts tr') && document.querySelector('#attempts tr').textContent.includes('Ada Lovelace')",
        "the new attempt row",
    )
    .await;
    assert_eq!(
        c.execute("return window.__sameDocument === true;", vec![])
            .await
            .unwrap(),
        json!(true)
    );
    let row = text(&c).await;
    assert!(row.contains("Granted") && row.contains("93.5 %"), "{row}");
    wait_true(
        &c,
        "document.getElementById('st-last').textContent.includes('Ada Lovelace')",
        "last attempt",
    )
    .await;
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("home.png"), c.screenshot().await.unwrap()).unwrap();

    // Its photo opens.
    c.find(Locator::Css("#attempts tr td.thumb a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let img = c
        .wait()
        .for_element(Locator::Css("img.photo"))
        .await
        .unwrap();
    let src = img.attr("src").await.unwrap().unwrap();
    assert!(src.starts_with("/photos/attempts/"), "{src}");
    wait_true(&c, "document.querySelector('img.photo').complete && document.querySelector('img.photo').naturalWidth === 320", "the photo").await;
    assert!(text(&c).await.to_lowercase().contains("similarity"));

    // The history page, for the record.
    c.goto(&format!("{base}/history")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("table.attempts"))
        .await
        .unwrap();
    wait_true(&c, "[...document.querySelectorAll('td.thumb img')].every(i => i.complete && i.naturalWidth > 0)", "thumbnails").await;
    std::fs::write(dir.join("history.png"), c.screenshot().await.unwrap()).unwrap();

    // Enrol a face by upload.
    let upload = profile.path().join("ada.jpg");
    std::fs::write(&upload, jpeg(240, 240)).unwrap();
    c.goto(&format!("{base}/people/{}", ada.0)).await.unwrap();
    let input = c.wait().for_element(Locator::Id("photo")).await.unwrap();
    input.send_keys(upload.to_str().unwrap()).await.unwrap();
    c.find(Locator::Id("upload-face"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("p.notice"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("Face enrolled"));
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 1);
    wait_true(&c, "document.querySelector('ul.faces img') && document.querySelector('ul.faces img').naturalWidth > 0", "the face thumbnail").await;

    c.close().await.unwrap();
    assert!(dir.join("home.png").exists() && dir.join("history.png").exists());
}

/// The screens every page is checked at: a desktop window and a 390 px phone (iPhone 12–15).
const WIDTHS: [(u32, u32); 2] = [(1280, 900), (390, 844)];

/// Makes the page's viewport `width`×`height` CSS pixels. Chrome's window size can include a frame,
/// so the window is set, measured from inside, and set again with the difference.
async fn set_viewport(c: &Client, width: u32, height: u32) {
    c.set_window_size(width, height).await.unwrap();
    let inner = c
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let (iw, ih) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
    let (w, h) = (i64::from(width), i64::from(height));
    if (iw, ih) != (w, h) {
        c.set_window_size((2 * w - iw) as u32, (2 * h - ih) as u32)
            .await
            .unwrap();
    }
    let client_width = c
        .execute("return document.documentElement.clientWidth;", vec![])
        .await
        .unwrap();
    assert_eq!(
        client_width,
        json!(width),
        "the viewport is not {width} px wide"
    );
}

/// Measures the page: its width against the viewport's, every element that sticks out of the viewport
/// (even inside a sideways scroller), and whether each key selector is shown and wholly inside it.
const LAYOUT: &str = r#"
const keys = arguments[0];
const de = document.documentElement, cw = de.clientWidth;
const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
  + (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\s+/).join('.') : '');
const path = e => { const p = []; for (let x = e; x && x !== document.body && p.length < 4; x = x.parentElement) p.unshift(name(x)); return p.join(' > '); };
const outside = r => r.left < -0.5 || r.right > cw + 0.5;
const sticking = [];
for (const e of document.body.querySelectorAll('*')) {
  const r = e.getBoundingClientRect();
  if (r.width > 1 && r.height > 1 && outside(r)) sticking.push(path(e) + ' [' + Math.round(r.left) + '..' + Math.round(r.right) + ']');
}
const missing = [];
for (const sel of keys) {
  const shown = [...document.querySelectorAll(sel)].filter(e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden');
  if (!shown.length) missing.push(sel + ': not shown');
  for (const e of shown) {
    const r = e.getBoundingClientRect();
    if (outside(r)) missing.push(sel + ': at ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
}
return { clientWidth: cw, scrollWidth: de.scrollWidth, height: de.scrollHeight, sticking: sticking.slice(0, 8), missing: missing };
"#;

/// Checks the current page at each of `widths`: no sideways scrolling, nothing outside the viewport,
/// every `keys` selector shown inside it; then saves `<page>-<width><suffix>.png` of the whole page.
async fn check_page(c: &Client, page: &str, keys: &[&str], widths: &[(u32, u32)], suffix: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for &(width, height) in widths {
        set_viewport(c, width, height).await;
        let m = c.execute(LAYOUT, vec![json!(keys)]).await.unwrap();
        let at = format!("{page} at {width} px{suffix}");
        assert!(
            m["scrollWidth"].as_u64().unwrap() <= m["clientWidth"].as_u64().unwrap(),
            "{at} scrolls sideways: {m}"
        );
        assert_eq!(m["sticking"], json!([]), "{at}: outside the viewport");
        assert_eq!(m["missing"], json!([]), "{at}: key content not in view");
        // The whole length of the page at this width, once its (lazy) images are in.
        let full = (m["height"].as_u64().unwrap() as u32).clamp(height, 6000);
        set_viewport(c, width, full).await;
        wait_true(
            c,
            "[...document.images].every(i => i.complete)",
            &format!("the images of {at}"),
        )
        .await;
        let file = dir.join(format!("{page}-{width}{suffix}.png"));
        std::fs::write(&file, c.screenshot().await.unwrap()).unwrap();
    }
}

async fn open(c: &Client, url: &str, ready: &str) {
    c.goto(url).await.unwrap();
    c.wait().for_element(Locator::Css(ready)).await.unwrap();
}

async fn sign_in(c: &Client, base: &str, username: &str) {
    open(c, &format!("{base}/login"), "form[action='/login']").await;
    let form = c.form(Locator::Css("form[action='/login']")).await.unwrap();
    form.set_by_name("username", username).await.unwrap();
    form.set_by_name("password", "password123").await.unwrap();
    form.submit().await.unwrap();
    c.wait().for_element(Locator::Id("status")).await.unwrap();
}

/// `/people/7?done=person_added` → 7.
fn person_id_in(location: &str) -> PersonId {
    let id = location
        .strip_prefix("/people/")
        .and_then(|r| r.split('?').next())
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("not a person page: {location}"));
    PersonId(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FACEREKO_CHROMEDRIVER (set by .ci/run)"]
async fn every_page_fits_a_desktop_and_a_390_px_phone_without_sideways_scrolling() {
    let (_driver, driver_port) = start_chromedriver().await;
    let f = Fixture::with(WebConfig::default(), Mode::CardFace).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // With a settings page, as a real door has.
    let app = facereko_web::router(
        f.state
            .clone()
            .with_settings(std::sync::Arc::new(common::FakeSettings::default())),
    );
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let base = format!("http://{addr}");
    let profile = tempfile::tempdir().unwrap();
    // Scrollbars take no room, as on a phone: the viewport is the page's whole width.
    let c = browser_with(driver_port, profile.path(), &["--hide-scrollbars"]).await;

    // Before the first account.
    open(&c, &format!("{base}/setup"), "form[action='/setup']").await;
    check_page(&c, "setup", &["form[action='/setup'] button"], &WIDTHS, "").await;

    // People with long names, cards with long labels, a face and attempts, all changed by an
    // administrator through the pages (so History's Changes has rows).
    let admin = f.admin().await;
    let _viewer = f.account("night-shift-viewer.backdoor", Role::Viewer).await;
    let long = "Maximiliane Wilhelmina Anastasia von Hohenzollern-Sigmaringen-Auersperg";
    let unbroken =
        "Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaftschaferswessenschafewaren";
    let mut people = Vec::new();
    for (name, uid, label) in [
        (
            long,
            "04:A2:2B:19",
            "Blue key fob from the front office, second drawer",
        ),
        (
            unbroken,
            "04:11:22:33:44:55:66",
            "Replacement-card-issued-after-the-original-was-lost",
        ),
        ("Ada Lovelace", "04:C3:D4:E5", ""),
    ] {
        let r = f
            .post("/people", &admin, &[("csrf", &admin.csrf), ("name", name)])
            .await;
        assert_eq!(r.status, axum::http::StatusCode::SEE_OTHER, "{}", r.text());
        let id = person_id_in(&r.location());
        let r = f
            .post(
                &format!("/people/{}/cards", id.0),
                &admin,
                &[("csrf", &admin.csrf), ("uid", uid), ("label", label)],
            )
            .await;
        assert_eq!(r.status, axum::http::StatusCode::SEE_OTHER, "{}", r.text());
        people.push(id);
    }
    let (maxi, wolfe, ada) = (people[0], people[1], people[2]);
    let r = upload(&f, &admin, wolfe, &jpeg(240, 240)).await;
    assert_eq!(r.status, axum::http::StatusCode::SEE_OTHER, "{}", r.text());
    f.attempt(Some((ada, "Ada Lovelace")), Outcome::NoFace, false)
        .await;
    f.attempt(None, Outcome::UnknownCard, true).await;
    f.attempt(Some((maxi, long)), Outcome::FaceMismatch, true)
        .await;
    f.attempt(Some((wolfe, unbroken)), Outcome::SpoofSuspected, true)
        .await;
    let granted = f
        .attempt(Some((wolfe, unbroken)), Outcome::Granted, true)
        .await;

    open(&c, &format!("{base}/login"), "form[action='/login']").await;
    check_page(&c, "login", &["form[action='/login'] button"], &WIDTHS, "").await;
    sign_in(&c, &base, "admin").await;

    let badges = "table.attempts td .badge";
    open(&c, &format!("{base}/"), "#attempts tr").await;
    check_page(
        &c,
        "home",
        &[
            "#status .facts",
            "#deactivate",
            "#unlock",
            "#camera",
            badges,
        ],
        &WIDTHS,
        "",
    )
    .await;

    open(&c, &format!("{base}/history"), "table.attempts").await;
    check_page(
        &c,
        "history",
        &[
            "nav.tabs a",
            badges,
            "table.attempts td.thumb img",
            "form.filters button",
        ],
        &WIDTHS,
        "",
    )
    .await;

    open(&c, &format!("{base}/history/{}", granted.id), "img.photo").await;
    check_page(
        &c,
        "attempt",
        &[
            "h1 .badge",
            "img.photo",
            "form[action$='/enrol'] select",
            "a.button",
        ],
        &WIDTHS,
        "",
    )
    .await;

    open(
        &c,
        &format!("{base}/history/{}/review", granted.id),
        "ul.faces",
    )
    .await;
    check_page(
        &c,
        "review",
        &["img.photo", "ul.faces img", "button.danger"],
        &WIDTHS,
        "",
    )
    .await;

    open(&c, &format!("{base}/people"), "main table").await;
    check_page(
        &c,
        "people",
        &["main table td a", "form[action='/people'] button"],
        &WIDTHS,
        "",
    )
    .await;

    let person = format!("{base}/people/{}", wolfe.0);
    open(&c, &person, "ul.faces img").await;
    check_page(
        &c,
        "person",
        &[
            "h1",
            "ul.cards button.danger",
            "#photo",
            "#upload-face",
            "ul.faces img",
            "#remove-person",
        ],
        &WIDTHS,
        "",
    )
    .await;

    // Groups and holidays, and one group with its schedule editor and members.
    let staff = f
        .store
        .add_group("Night-shift maintenance staff of the east wing")
        .await
        .unwrap();
    f.store.assign_group(Some(staff), &[wolfe]).await.unwrap();
    f.store
        .add_holiday(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 25).unwrap(),
            "Christmas Day",
        )
        .await
        .unwrap();
    open(&c, &format!("{base}/groups"), "#holidays").await;
    check_page(
        &c,
        "groups",
        &[
            "form[action='/groups'] button",
            "form[action='/holidays'] button",
        ],
        &WIDTHS,
        "",
    )
    .await;
    open(
        &c,
        &format!("{base}/groups/{}", staff.0),
        &format!("form[action='/groups/{}/schedule']", staff.0),
    )
    .await;
    check_page(
        &c,
        "group",
        &[&format!(
            "form[action='/groups/{}/schedule'] button",
            staff.0
        )],
        &WIDTHS,
        "",
    )
    .await;
    open(&c, &person, "ul.faces img").await;

    // A card's Remove… asks first (the confirmation page answers the POST).
    c.find(Locator::Css("ul.cards form[action$='/remove'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("confirm")).await.unwrap();
    check_page(
        &c,
        "confirm",
        &["section.confirm #confirm", "section.confirm a.button"],
        &WIDTHS,
        "",
    )
    .await;

    // An invitation and an API token, made here; the token is shown once with its copy button.
    open(
        &c,
        &format!("{base}/accounts"),
        "form[action='/accounts/invitations']",
    )
    .await;
    c.find(Locator::Css("form[action='/accounts/invitations'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let invite = c
        .wait()
        .for_element(Locator::Id("new-invite"))
        .await
        .unwrap();
    let invite = invite.attr("href").await.unwrap().unwrap();
    let form = c
        .form(Locator::Css("form[action='/accounts/tokens']"))
        .await
        .unwrap();
    form.set_by_name("name", "home-assistant-living-room-dashboard-and-garage")
        .await
        .unwrap();
    form.submit().await.unwrap();
    c.wait()
        .for_element(Locator::Css("code.token"))
        .await
        .unwrap();
    check_page(
        &c,
        "accounts",
        &[
            "code.token",
            "button.copy",
            "main table td.name",
            "main table button.danger",
            "details summary",
        ],
        &WIDTHS,
        "",
    )
    .await;

    open(&c, &format!("{base}/account"), "form[action='/account']").await;
    check_page(
        &c,
        "account",
        &["form[action='/account'] button"],
        &WIDTHS,
        "",
    )
    .await;

    open(&c, &format!("{base}/settings"), "#send-test").await;
    check_page(
        &c,
        "settings",
        &[
            "form[action='/settings/door.unlock_seconds'] button",
            "#send-test",
        ],
        &WIDTHS,
        "",
    )
    .await;
    assert!(text(&c).await.contains("set by FACEREKO_DOOR__MODE"));

    open(&c, &format!("{base}/history?what=changes"), "table.changes").await;
    check_page(
        &c,
        "changes",
        &[
            "nav.tabs a[aria-current=page]",
            "table.changes td",
            "form.filters button",
        ],
        &WIDTHS,
        "",
    )
    .await;
    assert!(text(&c).await.contains("token.create"));

    open(&c, &format!("{base}/people/999999"), "main h1").await;
    check_page(&c, "error", &["main a.button"], &WIDTHS, "").await;

    // Signed out: the invitation's page.
    c.find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .for_element(Locator::Css("form[action='/login']"))
        .await
        .unwrap();
    open(
        &c,
        &format!("{base}{invite}"),
        "form[action='/create-account']",
    )
    .await;
    check_page(
        &c,
        "create-account",
        &["form[action='/create-account'] button"],
        &WIDTHS,
        "",
    )
    .await;
    c.close().await.unwrap();

    // Dark mode at phone width, in a second browser that prefers it.
    let profile = tempfile::tempdir().unwrap();
    let c = browser_with(
        driver_port,
        profile.path(),
        &["--hide-scrollbars", "--force-dark-mode"],
    )
    .await;
    let phone = &WIDTHS[1..];
    sign_in(&c, &base, "admin").await;
    assert_eq!(
        c.execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches;",
            vec![]
        )
        .await
        .unwrap(),
        json!(true)
    );
    check_page(&c, "home", &[badges], phone, "-dark").await;
    open(&c, &format!("{base}/history?what=changes"), "table.changes").await;
    check_page(&c, "changes", &["nav.tabs a"], phone, "-dark").await;
    open(&c, &format!("{base}/history"), "table.attempts").await;
    check_page(&c, "history", &[badges], phone, "-dark").await;
    open(&c, &person, "ul.faces img").await;
    check_page(&c, "person", &["#photo"], phone, "-dark").await;
    c.find(Locator::Css("ul.cards form[action$='/remove'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("confirm")).await.unwrap();
    check_page(&c, "confirm", &["#confirm"], phone, "-dark").await;
    open(
        &c,
        &format!("{base}/accounts"),
        "form[action='/accounts/tokens']",
    )
    .await;
    let form = c
        .form(Locator::Css("form[action='/accounts/tokens']"))
        .await
        .unwrap();
    form.set_by_name("name", "dark").await.unwrap();
    form.submit().await.unwrap();
    c.wait()
        .for_element(Locator::Css("code.token"))
        .await
        .unwrap();
    check_page(
        &c,
        "accounts",
        &["code.token", "button.copy"],
        phone,
        "-dark",
    )
    .await;
    c.close().await.unwrap();
}
