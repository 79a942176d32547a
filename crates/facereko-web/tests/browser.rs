//! End to end in real headless Chromium driven through chromedriver: first-run set-up, sign-in,
//! Deactivate/Activate, a simulated card tap appearing live on the home page, its photo, and a face
//! enrolled by upload. Screenshots of home and history are saved as test artefacts.
//!
//! Needs `FACEREKO_CHROMEDRIVER` (path of Debian's `chromedriver`; Chromium at `/usr/bin/chromium` or
//! `FACEREKO_CHROMIUM`). Screenshots go to `FACEREKO_SCREENSHOT_DIR` or `target/web-screenshots/`.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{jpeg, Fixture};
use facereko_domain::Mode;
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
    let chromium =
        std::env::var("FACEREKO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=412,915",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
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
