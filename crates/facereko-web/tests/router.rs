//! Every route and every refusal, through the router with `oneshot` (no network).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{jpeg, upload, Browser, Fixture, DOOR};
use facereko_domain::{Mode, Outcome, PersonId};
use facereko_store::Role;
use facereko_web::WebConfig;

#[tokio::test]
async fn first_run_goes_to_setup_which_creates_the_admin_and_then_is_gone() {
    let f = Fixture::new().await;
    let mut b = Browser::default();
    for path in ["/", "/history", "/login", "/people"] {
        let r = f.get(path, &b).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.location(), "/setup", "{path}");
    }
    let page = f.get("/setup", &b).await;
    assert_eq!(page.status, StatusCode::OK);
    b.absorb(&page);
    let csrf = page.csrf();
    let code = f.state.setup_code().to_string();
    // Without the set-up code printed in the daemon's log, or with a wrong one: refused.
    for wrong in ["", "AAAA-BBBB-CCCC"] {
        let r = f
            .post(
                "/setup",
                &b,
                &[
                    ("csrf", &csrf),
                    ("setup_code", wrong),
                    ("username", "intruder"),
                    ("password", "longpassword"),
                    ("password2", "longpassword"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{wrong:?}");
        assert!(r.text().contains("not the set-up code"), "{}", r.text());
    }
    assert!(f.store.list_accounts().await.unwrap().is_empty());
    // Typed in lower case and without dashes it still matches.
    let typed = code.replace('-', "").to_lowercase();
    // Wrong CSRF token: refused.
    let r = f
        .post(
            "/setup",
            &b,
            &[
                ("csrf", "x"),
                ("setup_code", &code),
                ("username", "boss"),
                ("password", "longpassword"),
                ("password2", "longpassword"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Mismatched passwords: the page explains.
    let r = f
        .post(
            "/setup",
            &b,
            &[
                ("csrf", &csrf),
                ("setup_code", &code),
                ("username", "boss"),
                ("password", "longpassword"),
                ("password2", "other"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("differ"));
    let r = f
        .post(
            "/setup",
            &b,
            &[
                ("csrf", &csrf),
                ("setup_code", &typed),
                ("username", "boss"),
                ("password", "longpassword"),
                ("password2", "longpassword"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/");
    b.absorb(&r);
    assert!(r.header("set-cookie").contains("HttpOnly"));
    assert!(r.header("set-cookie").contains("SameSite=Strict"));
    let home = f.get("/", &b).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text().contains("Sign out boss"));
    let acc = f.store.account_by_username("boss").await.unwrap().unwrap();
    assert_eq!(acc.role, Role::Admin);
    assert!(acc.password_hash.starts_with("$argon2id$"));
    // Set-up is gone for everyone now.
    assert_eq!(
        f.get("/setup", &Browser::default()).await.status,
        StatusCode::NOT_FOUND
    );
    let r = f
        .post(
            "/setup",
            &b,
            &[
                ("csrf", &csrf),
                ("setup_code", &code),
                ("username", "evil"),
                ("password", "longpassword"),
                ("password2", "longpassword"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn nothing_is_reachable_without_a_session_or_token() {
    let f = Fixture::new().await;
    let _admin = f.admin().await;
    let a = f.attempt(None, Outcome::UnknownCard, true).await;
    let photo = format!("/{}", a.photo.unwrap());
    let nobody = Browser::default();
    for path in [
        "/",
        "/history",
        "/history.csv",
        "/history/1",
        "/history/1/review",
        "/people",
        "/people/1",
        "/accounts",
        "/events",
        photo.as_str(),
    ] {
        let r = f.get(path, &nobody).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            r.location().starts_with("/login?next="),
            "{path}: {}",
            r.location()
        );
    }
    for path in [
        "/arm",
        "/unlock",
        "/people",
        "/accounts",
        "/logout",
        "/people/1/faces",
    ] {
        let r = f.post(path, &nobody, &[("csrf", "x")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
    }
    for path in ["/api/v1/status", "/api/v1/attempts", "/api/v1/people"] {
        let r = f.get(path, &nobody).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.header("content-type").starts_with("application/json"));
        assert_eq!(r.header("www-authenticate"), "Bearer");
    }
    let r = f
        .send(
            Request::get("/api/v1/status")
                .header(header::AUTHORIZATION, "Bearer 0123456789abcdef")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_locks_the_account_after_repeated_failures_and_says_until_when() {
    let f = Fixture::with(
        WebConfig {
            login_max_failures: 3,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let _ = f.admin().await;
    let mut b = Browser::default();
    let page = f.get("/login", &b).await;
    b.absorb(&page);
    let csrf = page.csrf();
    for _ in 0..2 {
        let r = f
            .post(
                "/login",
                &b,
                &[
                    ("csrf", &csrf),
                    ("username", "admin"),
                    ("password", "wrong-one"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.text().contains("Wrong username or password"));
    }
    let r = f
        .post(
            "/login",
            &b,
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", "wrong-one"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().contains("locked until"), "{}", r.text());
    // Even the right password is refused while locked.
    let r = f
        .post(
            "/login",
            &b,
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().contains("locked"));
    // A stale or foreign form is refused before anything is checked.
    let r = f
        .post(
            "/login",
            &b,
            &[
                ("csrf", "nope"),
                ("username", "admin"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Unknown users get the same answer as wrong passwords.
    let r = f
        .post(
            "/login",
            &b,
            &[
                ("csrf", &csrf),
                ("username", "ghost"),
                ("password", "whatever1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_is_counted_before_any_is_hashed() {
    // Regression: every request passed the per-address check before the first failure was recorded,
    // so a burst of guesses all ran Argon2 at once (~19 MiB each) and none was refused.
    let f = Fixture::with(
        WebConfig {
            address_max_failures: 5,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let _ = f.admin().await;
    let mut b = Browser::default();
    let page = f.get("/login", &b).await;
    b.absorb(&page);
    let csrf = page.csrf();
    let guesses = (0..40).map(|i| {
        let password = format!("guess-{i}");
        // An unknown name: checked against a dummy hash all the same, and no account lock-out interferes.
        let pairs = [
            ("csrf", csrf.as_str()),
            ("username", "ghost"),
            ("password", password.as_str()),
        ];
        let body = common::form(&pairs);
        let req = Request::post("/login")
            .header(header::COOKIE, b.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        f.send(req)
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked, 5, "only the address's allowance is checked");
    assert_eq!(refused, 35);
}

#[tokio::test]
async fn the_current_password_check_is_limited_like_a_sign_in() {
    let f = Fixture::with(
        WebConfig {
            address_max_failures: 3,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let b = f.account("ada", Role::Viewer).await;
    let change = |current: &'static str| {
        let form = [
            ("csrf", b.csrf.clone()),
            ("current", current.to_string()),
            ("password", "newpass12".to_string()),
            ("password2", "newpass12".to_string()),
        ];
        let f = &f;
        let b = &b;
        async move {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.post("/account", b, &pairs).await
        }
    };
    for _ in 0..3 {
        assert_eq!(change("wrong-guess").await.status, StatusCode::BAD_REQUEST);
    }
    // Even the right password is not checked now.
    let r = change("password123").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().contains("Too many"), "{}", r.text());
}

#[tokio::test]
async fn sign_in_refuses_an_address_with_too_many_failures() {
    let f = Fixture::with(
        WebConfig {
            address_max_failures: 2,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let _ = f.admin().await;
    let mut b = Browser::default();
    let page = f.get("/login", &b).await;
    b.absorb(&page);
    let csrf = page.csrf();
    let attempt = |user: &'static str, password: &'static str| {
        let mut req = Request::post("/login")
            .header(header::COOKIE, b.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(common::form(&[
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
            ])))
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [192, 0, 2, 7],
                4000,
            ))));
        req
    };
    assert_eq!(
        f.send(attempt("a1", "x")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        f.send(attempt("a2", "x")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = f.send(attempt("admin", "password123")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().contains("network address"), "{}", r.text());
}

#[tokio::test]
async fn activate_and_deactivate_need_an_admin_a_post_and_the_csrf_token() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    assert!(f.door.status().armed);
    // No state change on GET.
    assert_eq!(
        f.get("/arm?armed=off", &admin).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // Wrong token.
    let r = f
        .post("/arm", &admin, &[("csrf", "bad"), ("armed", "off")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("expired"));
    // Another site posting with the user's cookies.
    let r = f
        .send(
            Request::post("/arm")
                .header(header::COOKIE, admin.cookie_header())
                .header(header::ORIGIN, "http://evil.example")
                .header(header::HOST, "door.local:5000")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(common::form(&[
                    ("csrf", &admin.csrf),
                    ("armed", "off"),
                ])))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(f.door.status().armed);
    let r = f
        .post("/arm", &admin, &[("csrf", &admin.csrf), ("armed", "off")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(f.store.armed(DOOR).await.unwrap(), Some(false));
    let home = f.get(&r.location(), &admin).await;
    assert!(home.text().contains("Offline"));
    assert!(home.text().contains("id=\"activate\""));
    let r = f
        .post("/arm", &admin, &[("csrf", &admin.csrf), ("armed", "on")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(f.store.armed(DOOR).await.unwrap(), Some(true));
    // A viewer sees the state but cannot change it.
    let viewer = f.account("watcher", Role::Viewer).await;
    let home = f.get("/", &viewer).await;
    assert!(home.text().contains("Active"));
    assert!(!home.text().contains("id=\"deactivate\""));
    let r = f
        .post("/arm", &viewer, &[("csrf", &viewer.csrf), ("armed", "off")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(f.door.status().armed);
    assert_eq!(
        f.get("/accounts", &viewer).await.status,
        StatusCode::FORBIDDEN
    );
    let r = f.post("/unlock", &viewer, &[("csrf", &viewer.csrf)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // "Unlock door now" asks first (a page with a form, no script needed); only the confirmation
    // unlocks.
    let r = f.post("/unlock", &admin, &[("csrf", &admin.csrf)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.text();
    assert!(t.contains("Unlock front now?") && t.contains("name=\"confirm\" value=\"yes\""));
    assert!(
        t.contains("<nav aria-label=\"Main\">"),
        "the page keeps the navigation"
    );
    assert!(!f.door.status().unlocked);
    let r = f
        .post(
            "/unlock",
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_carry_a_strict_csp_and_are_not_cached() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let r = f.get("/", &admin).await;
    let csp = r.header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.header("x-frame-options"), "DENY");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(!r.text().contains("<script>"), "no inline script");
    for asset in ["/assets/style.css", "/assets/live.js", "/assets/icon.svg"] {
        let r = f.get(asset, &Browser::default()).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert!(!r.bytes.is_empty());
    }
}

#[tokio::test]
async fn unknown_pages_and_bad_input_get_friendly_pages() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let r = f.get("/no/such/page", &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("content-type").starts_with("text/html"));
    assert!(r.text().contains("There is no such page"));
    let r = f.get("/history/abc", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("not valid"));
    let r = f.get("/history/999999", &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = f.get("/api/v1/nothing", &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("content-type").starts_with("application/json"));
    // SQL injection attempts are plain bad requests.
    for q in [
        "person=1%20OR%201%3D1",
        "outcome=granted'--",
        "from=2026-01-01'%3B",
        "before=-1",
    ] {
        let r = f.get(&format!("/history?{q}"), &admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
    }
    // Missing form fields.
    let r = f.post("/arm", &admin, &[("csrf", &admin.csrf)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("form was incomplete"));
}

#[tokio::test]
async fn history_pages_by_keyset_filters_and_exports_csv() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    for i in 0..60 {
        let outcome = if i % 3 == 0 {
            Outcome::Granted
        } else {
            Outcome::FaceMismatch
        };
        f.attempt(Some((ada, "Ada")), outcome, i % 2 == 0).await;
    }
    f.attempt(None, Outcome::UnknownCard, false).await;
    let r = f.get("/history", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.text();
    assert_eq!(t.matches("<tr id=\"attempt-").count(), 50);
    assert!(t.contains("attempt-61") && !t.contains("attempt-11\""));
    // Each similarity beside the threshold the door needs; the detector's confidence under it (there
    // is no column of its own: most engines report none).
    assert!(t.contains("Similarity") && !t.contains("Face confidence"));
    assert!(t.contains("91.2 % — needs 92.8 %"), "{t}");
    assert!(t.contains("face 100 %") || t.contains("face 99 %"));
    assert!(t.contains("61 attempts match."), "a count of every match");
    let next = t.split("rel=\"next\"").next().unwrap();
    let href = &next[next.rfind("href=\"").unwrap() + 6..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    assert_eq!(href, "/history?before=12");
    let r = f.get(&href, &admin).await;
    assert_eq!(r.text().matches("<tr id=\"attempt-").count(), 11);
    assert!(!r.text().contains("rel=\"next\""));
    assert!(r.text().contains("Newest"));
    // Filter: outcome and person.
    let r = f
        .get(
            &format!("/history?person={}&outcome=granted", ada.0),
            &admin,
        )
        .await;
    assert_eq!(r.text().matches("<tr id=\"attempt-").count(), 20);
    assert!(r.text().contains("20 attempts match."));
    let r = f.get("/history?outcome=unknown_card", &admin).await;
    assert!(r.text().contains("1 attempt matches."));
    assert_eq!(r.text().matches("<tr id=\"attempt-").count(), 1);
    // Dates: today has everything, yesterday nothing.
    let today = chrono::Local::now().date_naive();
    let r = f
        .get(&format!("/history?from={today}&to={today}"), &admin)
        .await;
    assert_eq!(r.text().matches("<tr id=\"attempt-").count(), 50);
    let y = today.pred_opt().unwrap();
    let r = f.get(&format!("/history?to={y}"), &admin).await;
    assert_eq!(r.text().matches("<tr id=\"attempt-").count(), 0);
    assert!(r.text().contains("No attempts match."));
    // CSV of the current filter.
    let r = f.get("/history.csv?outcome=granted", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("text/csv"));
    assert!(r.header("content-disposition").contains("attachment"));
    let csv = r.text();
    assert!(csv.starts_with("id,local_time,utc_time,door,person"));
    assert_eq!(csv.lines().count(), 1 + 20);
    assert!(csv
        .lines()
        .nth(1)
        .unwrap()
        .contains(",Ada,04:A2:2B:19,granted,91.25,99.50,"));
    let all = f.get("/history.csv", &admin).await.text();
    assert_eq!(all.lines().count(), 1 + 61);
}

#[tokio::test]
async fn csv_cells_cannot_become_spreadsheet_formulas() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let p = f.store.add_person("=HYPERLINK(\"x\")").await.unwrap();
    f.attempt(Some((p, "=HYPERLINK(\"x\")")), Outcome::Granted, false)
        .await;
    let csv = f.get("/history.csv", &admin).await.text();
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
}

#[tokio::test]
async fn photos_go_only_to_signed_in_users_privately_and_paths_cannot_escape() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let a = f.attempt(None, Outcome::UnknownCard, true).await;
    let rel = a.photo.clone().unwrap();
    assert!(rel.starts_with("photos/attempts/"));
    let r = f.get(&format!("/{rel}"), &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "image/jpeg");
    assert!(r.header("cache-control").starts_with("private"));
    assert_eq!(r.bytes, std::fs::read(f.dir.path().join(&rel)).unwrap());
    let t = f.get(&format!("/{rel}?thumb=1"), &admin).await;
    assert_eq!(t.status, StatusCode::OK);
    assert!(t.header("cache-control").starts_with("private"));
    image::load_from_memory(&t.bytes).unwrap();
    // The attempt page shows it with both figures labelled.
    let page = f.get(&format!("/history/{}", a.id), &admin).await;
    assert!(page.text().contains(&format!("src=\"/{rel}\"")));
    for path in [
        "/photos/../facereko.db",
        "/photos/attempts/..%2f..%2ffacereko.db",
        "/photos/%2e%2e/facereko.db",
        "/photos/attempts/x.db",
        "/photos/.hidden.jpg",
    ] {
        let r = f.get(path, &admin).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status
        );
        assert!(!r.text().contains("SQLite"), "{path}");
    }
    let r = f
        .get(
            "/photos/attempts/2026-11/00000000000000000000000000000000.jpg",
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn faces_are_enrolled_from_uploads_and_bad_images_are_refused() {
    let f = Fixture::with(
        WebConfig {
            upload_limit_bytes: 256 * 1024,
            max_image_side: 1000,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let r = upload(&f, &admin, ada, &jpeg(200, 150)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.location(), format!("/people/{}?done=face_added", ada.0));
    let faces = f.store.faces(Some(ada)).await.unwrap();
    assert_eq!(faces.len(), 1);
    let page = f.get(&r.location(), &admin).await;
    assert!(page.text().contains("Face enrolled"));
    assert!(page.text().contains("?thumb=1"));
    // Corrupt image.
    let mut broken = jpeg(200, 150);
    broken.truncate(broken.len() / 2);
    let r = upload(&f, &admin, ada, &broken).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("damaged"), "{}", r.text());
    // Not an image.
    let r = upload(&f, &admin, ada, b"#!/bin/sh\nrm -rf /\n").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("not a JPEG or PNG"));
    // Too many pixels (refused from the header).
    let r = upload(&f, &admin, ada, &jpeg(1200, 10)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("1200×10"), "{}", r.text());
    // Bigger than the upload limit.
    let big = vec![0xFFu8; 300 * 1024];
    let r = upload(&f, &admin, ada, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    assert!(r.header("content-type").starts_with("text/html"));
    // The enroller found no face.
    let r = upload(&f, &admin, ada, &jpeg(20, 20)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("no usable face"));
    // Wrong CSRF, and a viewer.
    let mut forged = admin.clone();
    forged.csrf = "forged".into();
    assert_eq!(
        upload(&f, &forged, ada, &jpeg(200, 150)).await.status,
        StatusCode::FORBIDDEN
    );
    let viewer = f.account("viewer", Role::Viewer).await;
    assert_eq!(
        upload(&f, &viewer, ada, &jpeg(200, 150)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 1);
    // Take one with the door camera, then delete it.
    let r = f
        .post(
            &format!("/people/{}/faces/capture", ada.0),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let faces = f.store.faces(Some(ada)).await.unwrap();
    assert_eq!(faces.len(), 2);
    let r = f
        .post(
            &format!("/people/{}/faces/{}/delete", ada.0, faces[0].id),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "a confirmation first");
    assert!(r.text().contains("Delete this enrolled face"));
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 2);
    let r = f
        .post(
            &format!("/people/{}/faces/{}/delete", ada.0, faces[0].id),
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 1);
    // A face of someone else cannot be deleted through this person's address.
    let bob = f.store.add_person("Bob").await.unwrap();
    let left = f.store.faces(Some(ada)).await.unwrap()[0].id;
    let r = f
        .post(
            &format!("/people/{}/faces/{left}/delete", bob.0),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn people_cards_validity_and_schedules_are_edited() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let r = f
        .post(
            "/people",
            &admin,
            &[("csrf", &admin.csrf), ("name", "Grace Hopper")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let grace = f
        .store
        .person_by_name("Grace Hopper")
        .await
        .unwrap()
        .unwrap();
    let base = format!("/people/{}", grace.id);
    let r = f
        .post(
            &base,
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("name", "Grace Hopper"),
                ("active", "on"),
                ("valid_from", "2026-01-01"),
                ("valid_until", "2026-12-31"),
                // The day/time range editor: Mon–Fri 08:00–18:00, then Sat 10:00–12:00.
                ("w0_mon", "on"),
                ("w0_tue", "on"),
                ("w0_wed", "on"),
                ("w0_thu", "on"),
                ("w0_fri", "on"),
                ("w0_from", "08:00"),
                ("w0_to", "18:00"),
                ("w1_sat", "on"),
                ("w1_from", "10:00"),
                ("w1_to", "12:00"),
                ("w2_from", ""),
                ("w2_to", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let g = f.store.person(grace.id).await.unwrap().unwrap();
    let s = g.schedule.unwrap();
    assert_eq!(s.windows.len(), 2);
    assert_eq!(s.windows[0].days, vec![1, 2, 3, 4, 5]);
    assert!(g.valid_from.is_some() && g.valid_until.is_some());
    let page = f.get(&base, &admin).await.text();
    assert!(
        page.contains("Mon-Fri 08:00-18:00")
            && page.contains("2026-12-31")
            && page.contains("name=\"w1_sat\" checked")
            && page.contains("name=\"w1_from\" value=\"10:00\""),
        "{page}"
    );
    // A bad schedule is explained.
    let r = f
        .post(
            &base,
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("name", "Grace Hopper"),
                ("w0_mon", "on"),
                ("w0_from", "25:00"),
                ("w0_to", "26:00"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Schedule row 1: the start time"));
    // Disable (checkbox absent).
    let r = f
        .post(
            &base,
            &admin,
            &[("csrf", &admin.csrf), ("name", "Grace Hopper")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!f.store.person(grace.id).await.unwrap().unwrap().active);
    // Cards typed in.
    let r = f
        .post(
            &format!("{base}/cards"),
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("uid", "04 a2 2b 19"),
                ("label", "blue fob"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let r = f
        .post(
            &format!("{base}/cards"),
            &admin,
            &[("csrf", &admin.csrf), ("uid", "04:A2:2B")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("4, 7 or 10"));
    let other = f.store.add_person("Other").await.unwrap();
    let r = f
        .post(
            &format!("/people/{}/cards", other.0),
            &admin,
            &[("csrf", &admin.csrf), ("uid", "04A22B19")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("already belongs to Grace Hopper"));
    // Disable, then remove; another person's address cannot touch it.
    let r = f
        .post(
            &format!("/people/{}/cards/04A22B19/remove", other.0),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = f
        .post(
            &format!("{base}/cards/04A22B19/active"),
            &admin,
            &[("csrf", &admin.csrf), ("active", "off")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let uid = "04:A2:2B:19".parse().unwrap();
    assert!(!f.store.lookup_card(&uid).await.unwrap().unwrap().0.active);
    let r = f
        .post(
            &format!("{base}/cards/04A22B19/remove"),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "a confirmation first");
    assert!(r.text().contains("Remove card 04:A2:2B:19"));
    assert!(f.store.lookup_card(&uid).await.unwrap().is_some());
    let r = f
        .post(
            &format!("{base}/cards/04A22B19/remove"),
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(f.store.lookup_card(&uid).await.unwrap().is_none());
    // Tap now: the next card on the reader.
    let tapper = f.tapper.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tapper
            .tap(facereko_hardware::CardTap::new(
                "04:11:22:33:44:55:66".parse().unwrap(),
            ))
            .unwrap();
    });
    let r = f
        .post(
            &format!("{base}/cards/tap"),
            &admin,
            &[("csrf", &admin.csrf), ("label", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let p = f.store.person(grace.id).await.unwrap().unwrap();
    assert_eq!(p.cards[0].uid.to_string(), "04:11:22:33:44:55:66");
    // Viewers read but do not write.
    let viewer = f.account("viewer", Role::Viewer).await;
    let page = f.get(&base, &viewer).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text().contains("Tap now"));
    let r = f
        .post(
            "/people",
            &viewer,
            &[("csrf", &viewer.csrf), ("name", "Mallory")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(f.get("/people", &viewer).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tap_now_explains_when_no_card_comes() {
    let f = Fixture::with(
        WebConfig {
            card_wait_seconds: 1,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let admin = f.admin().await;
    let p = f.store.add_person("Ada").await.unwrap();
    let page = f.get(&format!("/people/{}", p.0), &admin).await.text();
    assert!(page.contains("data-wait=\"1\"") && page.contains("id=\"tap-cancel\""));
    // No card: back to the person page, saying so, with the label as typed.
    let r = f
        .post(
            &format!("/people/{}/cards/tap", p.0),
            &admin,
            &[("csrf", &admin.csrf), ("label", "blue fob & co")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location(),
        format!(
            "/people/{}?tap=timeout&label=blue%20fob%20%26%20co#tap-now",
            p.0
        )
    );
    let page = f.get(&r.location(), &admin).await;
    assert_eq!(page.status, StatusCode::OK);
    let t = page.text();
    assert!(
        t.contains("No card was presented on the reader within 1 s"),
        "{t}"
    );
    assert!(
        t.contains("value=\"blue fob &#38; co\""),
        "the label is kept: {t}"
    );
    assert!(t.contains("<nav aria-label=\"Main\">"));
}

#[tokio::test]
async fn tap_now_can_be_cancelled_and_a_later_card_is_not_taken() {
    let f = Fixture::with(
        WebConfig {
            card_wait_seconds: 30,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let admin = f.admin().await;
    let p = f.store.add_person("Ada").await.unwrap();
    let waiting = {
        let app = f.app.clone();
        let req = Request::post(format!("/people/{}/cards/tap", p.0))
            .header(header::COOKIE, admin.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(common::form(&[("csrf", &admin.csrf)])))
            .unwrap();
        tokio::spawn(async move {
            use tower::ServiceExt;
            app.oneshot(req).await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While one waits, a second "Tap now" is told the reader is busy, not kept waiting.
    let busy = f
        .post(
            &format!("/people/{}/cards/tap", p.0),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(busy.status, StatusCode::SEE_OTHER);
    assert!(busy.location().contains("tap=busy"));
    let started = std::time::Instant::now();
    let r = f
        .post(
            &format!("/people/{}/cards/tap/cancel", p.0),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let done = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the wait ends at once")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()[header::LOCATION],
        format!("/people/{}?done=tap_cancelled", p.0)
    );
    // A card tapped after the cancel is an ordinary tap, not this person's new card.
    f.tap("04:A2:2B:19");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(f.store.person(p).await.unwrap().unwrap().cards.is_empty());
    let page = f
        .get(&format!("/people/{}?done=tap_cancelled", p.0), &admin)
        .await;
    assert!(page.text().contains("Stopped waiting for a card."));
}

#[tokio::test]
async fn a_refused_form_comes_back_with_what_was_typed_and_error_pages_keep_the_menu() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let p = f.person_with_card("Ada", "04:A2:2B:19").await;
    let base = format!("/people/{}", p.0);
    // A malformed UID: the person page again, 400, the error above and the typed text in the form.
    let r = f
        .post(
            &format!("{base}/cards"),
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("uid", "04:ZZ<b>"),
                ("label", "spare"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let t = r.text();
    assert!(t.contains("role=\"alert\""), "{t}");
    assert!(
        t.contains("value=\"04:ZZ&#60;b&#62;\"") && t.contains("value=\"spare\""),
        "{t}"
    );
    assert!(t.contains("<nav aria-label=\"Main\">"));
    // A card someone else holds: the same, as a conflict.
    f.person_with_card("Bob", "04:00:00:01").await;
    let r = f
        .post(
            &format!("{base}/cards"),
            &admin,
            &[("csrf", &admin.csrf), ("uid", "04:00:00:01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("Bob") && r.text().contains("value=\"04:00:00:01\""));
    // The person form with a bad date keeps every field as typed, and nothing is saved.
    let r = f
        .post(
            &base,
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("name", "Ada King"),
                ("valid_from", "2026-12-31"),
                ("valid_until", "2026-01-01"),
                ("w0_mon", "on"),
                ("w0_from", "08:00"),
                ("w0_to", "18:00"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let t = r.text();
    assert!(t.contains("The last day is before the first day."));
    assert!(t.contains("value=\"Ada King\"") && t.contains("value=\"2026-12-31\""));
    assert!(
        t.contains("name=\"w0_mon\" checked") && t.contains("name=\"w0_to\" value=\"18:00\""),
        "the schedule rows as typed"
    );
    assert!(
        !t.contains("name=\"active\" checked"),
        "unticked stays unticked"
    );
    assert_eq!(f.store.person(p).await.unwrap().unwrap().name, "Ada");
    // Any other error page keeps the menu of who is signed in, and links back to the form's page.
    let (ct, body) = common::multipart(&admin.csrf, b"not an image at all");
    let r = f
        .send(
            Request::post(format!("{base}/faces"))
                .header(header::COOKIE, admin.cookie_header())
                .header(header::CONTENT_TYPE, ct)
                .header(header::HOST, "door.local")
                .header(header::REFERER, format!("http://door.local{base}"))
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let t = r.text();
    assert!(
        t.contains("<nav aria-label=\"Main\">") && t.contains("Sign out admin"),
        "{t}"
    );
    assert!(t.contains(&format!("href=\"{base}\" id=\"back\"")), "{t}");
    // Signed out, the same page has no menu.
    let r = f.get("/no/such/page", &common::Browser::default()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.text().contains("<nav aria-label=\"Main\">"));
    let r = f.get("/no/such/page", &admin).await;
    assert!(r.text().contains("<nav aria-label=\"Main\">"));
}

#[tokio::test]
async fn an_attempt_photo_can_be_enrolled_and_reviewed() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let a = f.attempt(Some((ada, "Ada")), Outcome::Granted, true).await;
    let page = f.get(&format!("/history/{}", a.id), &admin).await.text();
    assert!(page.contains("Add this photo to") && page.contains("This was not Ada"));
    let ada_option = format!("<option value=\"{}\" selected>Ada</option>", ada.0);
    assert!(
        page.contains(&ada_option),
        "a granted face is Ada's: {page}"
    );
    // A face that did not match Ada is not offered as hers.
    let mismatch = f
        .attempt(Some((ada, "Ada")), Outcome::FaceMismatch, true)
        .await;
    let page = f
        .get(&format!("/history/{}", mismatch.id), &admin)
        .await
        .text();
    assert!(!page.contains(&ada_option), "{page}");
    assert!(page.contains("<option value=\"\" selected disabled>Choose who this is…</option>"));
    assert!(page.contains("did not pass as Ada"));
    let r = f
        .post(
            &format!("/history/{}/enrol", a.id),
            &admin,
            &[("csrf", &admin.csrf), ("person", &ada.0.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 1);
    let review = f.get(&format!("/history/{}/review", a.id), &admin).await;
    assert_eq!(review.status, StatusCode::OK);
    assert!(review.text().contains("Delete face") && review.text().contains("Disable card"));
    let viewer = f.account("viewer", Role::Viewer).await;
    assert_eq!(
        f.get(&format!("/history/{}/review", a.id), &viewer)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = f
        .post(
            &format!("/history/{}/enrol", a.id),
            &viewer,
            &[("csrf", &viewer.csrf), ("person", &ada.0.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn accounts_are_added_reset_and_disabled_and_the_last_admin_stays() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let page = f.get("/accounts", &admin).await;
    assert_eq!(page.status, StatusCode::OK);
    let r = f
        .post(
            "/accounts",
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("username", "clerk"),
                ("password", "clerkpass1"),
                ("password2", "clerkpass1"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let r = f
        .post(
            "/accounts",
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("username", "bad name!"),
                ("password", "clerkpass1"),
                ("password2", "clerkpass1"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let clerk = f.store.account_by_username("clerk").await.unwrap().unwrap();
    assert_eq!(clerk.role, Role::Viewer);
    let clerk_browser = f.sign_in("clerk", "clerkpass1").await;
    // Disable: the clerk's session ends and sign-in is refused with an explanation.
    let r = f
        .post(
            &format!("/accounts/{}/disable", clerk.id),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        f.get("/", &clerk_browser).await.status,
        StatusCode::SEE_OTHER
    );
    let mut b = Browser::default();
    let p = f.get("/login", &b).await;
    b.absorb(&p);
    let r = f
        .post(
            "/login",
            &b,
            &[
                ("csrf", &p.csrf()),
                ("username", "clerk"),
                ("password", "clerkpass1"),
            ],
        )
        .await;
    assert!(r.text().contains("disabled"), "{}", r.text());
    // Reset password re-enables; it is not a sign-in of the clerk.
    let last_login = || async {
        f.store
            .account_by_username("clerk")
            .await
            .unwrap()
            .unwrap()
            .last_login
    };
    let signed_in = last_login().await;
    assert!(signed_in.is_some());
    let r = f
        .post(
            &format!("/accounts/{}/password", clerk.id),
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("password", "newpass123"),
                ("password2", "newpass123"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        last_login().await,
        signed_in,
        "a password reset is not a sign-in"
    );
    f.sign_in("clerk", "newpass123").await;
    assert!(last_login().await > signed_in, "a sign-in is");
    // Promote, then the last-admin rule.
    let r = f
        .post(
            &format!("/accounts/{}/role", clerk.id),
            &admin,
            &[("csrf", &admin.csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let me = f.store.account_by_username("admin").await.unwrap().unwrap();
    let r = f
        .post(
            &format!("/accounts/{}/disable", me.id),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = f
        .post(
            &format!("/accounts/{}/role", clerk.id),
            &admin,
            &[("csrf", &admin.csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = f
        .post(
            &format!("/accounts/{}/role", me.id),
            &admin,
            &[("csrf", &admin.csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("last enabled administrator"));
    // Sign out ends the session.
    let r = f.post("/logout", &admin, &[("csrf", &admin.csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(f.get("/", &admin).await.status, StatusCode::SEE_OTHER);
}

/// Sends the create-account form and taps `uid` on the reader shortly after (or no card at all).
async fn create_with_tap(
    f: &Fixture,
    b: &Browser,
    csrf: &str,
    invite: &str,
    username: &str,
    uid: Option<&str>,
) -> common::Resp {
    if let Some(uid) = uid {
        let tapper = f.tapper.clone();
        let uid: facereko_domain::CardUid = uid.parse().unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tapper.tap(facereko_hardware::CardTap::new(uid)).unwrap();
        });
    }
    f.post(
        "/create-account",
        b,
        &[
            ("csrf", csrf),
            ("username", username),
            ("password", "adapass12"),
            ("password2", "adapass12"),
            ("invite", invite),
        ],
    )
    .await
}

/// Issues an invitation through the accounts page and returns its code.
async fn invite(f: &Fixture, admin: &Browser, person: PersonId) -> String {
    let r = f
        .post(
            "/accounts/invitations",
            admin,
            &[("csrf", &admin.csrf), ("person", &person.0.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.location(), "/accounts?done=invitation#invitations");
    let t = f.get("/accounts?done=invitation", admin).await.text();
    let link = "id=\"new-invite\" href=\"/create-account?invite=";
    let i = t.find(link).expect("the link is shown") + link.len();
    t[i..i + t[i..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn create_account_without_an_invitation_explains_and_waits_for_no_card() {
    let f = Fixture::with(
        WebConfig {
            signup_tap_seconds: 30,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let _admin = f.admin().await;
    f.person_with_card("Ada", "04:A2:2B:19").await;
    let mut b = Browser::default();
    let page = f.get("/create-account", &b).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text().contains("needs an invitation"),
        "{}",
        page.text()
    );
    assert!(
        !page.text().contains("name=\"password\""),
        "no form is offered"
    );
    b.absorb(&page);
    // The form is not offered, but a hand-made post carries the double-submit cookie's token.
    let csrf = b
        .cookies
        .iter()
        .find_map(|c| c.strip_prefix("facereko_csrf="))
        .unwrap()
        .to_string();
    let started = std::time::Instant::now();
    let r = create_with_tap(&f, &b, &csrf, "", "ada", Some("04:A2:2B:19")).await;
    assert!(started.elapsed() < Duration::from_secs(5), "no card wait");
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("needs an invitation"));
    assert!(f.store.account_by_username("ada").await.unwrap().is_none());
    // A made-up invitation is refused too, without waiting for a card.
    let page = f.get("/create-account?invite=0123456789abcdef", &b).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("not valid"));
    let started = std::time::Instant::now();
    let r = create_with_tap(&f, &b, &csrf, "0123456789abcdef", "ada", None).await;
    assert!(started.elapsed() < Duration::from_secs(5), "no card wait");
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Forged form.
    let r = create_with_tap(&f, &b, "zzz", "", "ada4", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_invitation_creates_one_account_with_the_invited_persons_own_card() {
    let f = Fixture::with(
        WebConfig {
            signup_tap_seconds: 2,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let _bob = f.person_with_card("Bob", "04:B0:B0:01").await;
    let code = invite(&f, &admin, ada).await;
    // The accounts page lists it as pending, without the code.
    let list = f.get("/accounts", &admin).await;
    assert!(
        list.text().contains("/accounts/invitations/"),
        "{}",
        list.text()
    );
    assert!(!list.text().contains(&code));

    let mut b = Browser::default();
    let page = f.get(&format!("/create-account?invite={code}"), &b).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("name=\"password\""));
    b.absorb(&page);
    let csrf = page.csrf();
    // Someone else's enrolled card: one generic refusal naming neither card nor owner.
    let r = create_with_tap(&f, &b, &csrf, &code, "ada", Some("04:B0:B0:01")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("cannot be used to create an account"));
    assert!(
        !r.text().contains("04:B0") && !r.text().contains("Bob"),
        "{}",
        r.text()
    );
    // An unknown card: the same sentence.
    let r = create_with_tap(&f, &b, &csrf, &code, "ada", Some("DE:AD:BE:EF")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("cannot be used to create an account"));
    assert!(!r.text().contains("DE:AD"), "{}", r.text());
    // No card within the wait.
    let r = create_with_tap(&f, &b, &csrf, &code, "ada", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("No card was presented"));
    // Ada's own card: a viewer account linked to Ada.
    let r = create_with_tap(&f, &b, &csrf, &code, "ada", Some("04:A2:2B:19")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let acc = f.store.account_by_username("ada").await.unwrap().unwrap();
    assert_eq!(acc.role, Role::Viewer);
    assert_eq!(acc.person_id, Some(ada));
    // The invitation is spent.
    assert!(f.store.invitation(&code).await.unwrap().is_none());
    let r = create_with_tap(&f, &b, &csrf, &code, "ada2", None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("not valid"));
    assert!(f.store.account_by_username("ada2").await.unwrap().is_none());
    // Ada has an account now: she is no longer offered for invitations, and one is refused.
    let r = f
        .post(
            "/accounts/invitations",
            &admin,
            &[("csrf", &admin.csrf), ("person", &ada.0.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_admin_sees_and_withdraws_pending_invitations() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let code = invite(&f, &admin, ada).await;
    let pending = f.store.pending_invitations().await.unwrap();
    assert_eq!(pending.len(), 1);
    let viewer = f.account("clerk", Role::Viewer).await;
    let r = f
        .post(
            &format!("/accounts/invitations/{}/revoke", pending[0].id),
            &viewer,
            &[("csrf", &viewer.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = f
        .post(
            &format!("/accounts/invitations/{}/revoke", pending[0].id),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(f.store.pending_invitations().await.unwrap().is_empty());
    let page = f
        .get(
            &format!("/create-account?invite={code}"),
            &Browser::default(),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Viewers cannot issue invitations.
    let r = f
        .post(
            "/accounts/invitations",
            &viewer,
            &[("csrf", &viewer.csrf), ("person", &ada.0.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn open_self_signup_takes_only_an_enrolled_card_without_an_account() {
    let f = Fixture::with(
        WebConfig {
            signup_tap_seconds: 2,
            self_signup: true,
            address_max_failures: 3,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let _admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let mut b = Browser::default();
    let page = f.get("/create-account", &b).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("name=\"password\""));
    b.absorb(&page);
    let csrf = page.csrf();
    let r = create_with_tap(&f, &b, &csrf, "", "ada", Some("DE:AD:BE:EF")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(!r.text().contains("DE:AD"), "{}", r.text());
    let r = create_with_tap(&f, &b, &csrf, "", "ada", Some("04:A2:2B:19")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        f.store
            .account_by_username("ada")
            .await
            .unwrap()
            .unwrap()
            .person_id,
        Some(ada)
    );
    // The same card again: the generic refusal, no username.
    let r = create_with_tap(&f, &b, &csrf, "", "ada2", Some("04:A2:2B:19")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("cannot be used to create an account"));
    assert!(!r.text().contains("(ada)"), "{}", r.text());
    // Three failures from this address: refused before any card wait.
    let _ = create_with_tap(&f, &b, &csrf, "", "ada3", Some("DE:AD:BE:EF")).await;
    let started = std::time::Instant::now();
    let r = create_with_tap(&f, &b, &csrf, "", "ada4", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn the_api_answers_bearer_tokens_by_role() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let me = f.store.account_by_username("admin").await.unwrap().unwrap();
    // Created through the page, shown once.
    let r = f
        .post(
            "/accounts/tokens",
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("name", "home-assistant"),
                ("account", &me.id.to_string()),
                ("expires_days", "30"),
            ],
        )
        .await;
    // Post, redirect, get: the token is on the page the form leads to, once; reloading that page
    // neither shows it again nor makes a second token.
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(r.location(), "/accounts?done=token");
    let t = f.get("/accounts?done=token", &admin).await.text();
    let i = t.find("id=\"new-token\">").unwrap() + 15;
    let token = t[i..i + 64].to_string();
    assert!(t.contains("data-copy=\"new-token\""), "a copy button");
    let again = f.get("/accounts?done=token", &admin).await.text();
    assert!(!again.contains(&token) && !again.contains("id=\"new-token\""));
    assert!(again.contains("shown once already"));
    assert_eq!(f.store.api_tokens(None).await.unwrap().len(), 1);
    let call = |method: &str, path: &str, token: &str, body: Option<&str>| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        b.body(
            body.map(|s| Body::from(s.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap()
    };
    let r = f.send(call("GET", "/api/v1/status", &token, None)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(v["door_id"], DOOR);
    assert_eq!(v["armed"], true);
    let r = f
        .send(call(
            "POST",
            "/api/v1/arm",
            &token,
            Some("{\"armed\": false}"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(v["armed"], false);
    let r = f
        .send(call("POST", "/api/v1/arm", &token, Some("nonsense")))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    for _ in 0..3 {
        f.attempt(Some((ada, "Ada")), Outcome::Granted, false).await;
    }
    let r = f
        .send(call("GET", "/api/v1/attempts?limit=2", &token, None))
        .await;
    let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(v["attempts"].as_array().unwrap().len(), 2);
    let next = v["next_before"].as_i64().unwrap();
    let r = f
        .send(call(
            "GET",
            &format!("/api/v1/attempts?limit=2&before={next}"),
            &token,
            None,
        ))
        .await;
    let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(v["attempts"].as_array().unwrap().len(), 1);
    let r = f
        .send(call("GET", "/api/v1/attempts?outcome=bogus", &token, None))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = f.send(call("GET", "/api/v1/people", &token, None)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(v[0]["name"], "Ada");
    assert_eq!(v[0]["cards"][0]["uid"], "04:A2:2B:19");
    // A viewer's token reads but cannot arm.
    let viewer = f.store.account_by_username("admin").await.unwrap().unwrap();
    let _ = viewer;
    let _v = f.account("viewer", Role::Viewer).await;
    let vid = f
        .store
        .account_by_username("viewer")
        .await
        .unwrap()
        .unwrap()
        .id;
    let (_, vtoken) = f.store.create_api_token(vid, "dash", None).await.unwrap();
    assert_eq!(
        f.send(call("GET", "/api/v1/status", &vtoken, None))
            .await
            .status,
        StatusCode::OK
    );
    // ... and sees card UIDs masked: in `card` mode a UID is the whole credential.
    let r = f.send(call("GET", "/api/v1/people", &vtoken, None)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(v[0]["cards"][0]["uid"], "04:A2:••:••");
    let r = f.send(call("GET", "/api/v1/attempts", &vtoken, None)).await;
    let v: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(v["attempts"][0]["card_uid"], "04:A2:••:••");
    let r = f
        .send(call(
            "POST",
            "/api/v1/arm",
            &vtoken,
            Some("{\"armed\": true}"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Revoked in the app: refused at once.
    let tokens = f.store.api_tokens(Some(me.id)).await.unwrap();
    let r = f
        .post(
            &format!("/accounts/tokens/{}/revoke", tokens[0].id),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        f.send(call("GET", "/api/v1/status", &token, None))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn ended_sessions_lead_back_to_sign_in() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    assert_eq!(f.get("/", &admin).await.status, StatusCode::OK);
    let token = admin
        .cookies
        .iter()
        .find(|c| c.starts_with("facereko_session="))
        .unwrap();
    f.store
        .delete_session(token.trim_start_matches("facereko_session="))
        .await
        .unwrap();
    let r = f.get("/history?outcome=granted", &admin).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login?next=/history%3Foutcome%3Dgranted");
}

#[tokio::test]
async fn a_next_parameter_cannot_send_anyone_off_the_site() {
    // Regression: `next=/%09/evil.example` became `Location: /\t/evil.example`, which browsers follow
    // to //evil.example.
    let f = Fixture::new().await;
    let admin = f.admin().await;
    for next in [
        "/%09/evil.example",
        "/%0a/evil.example",
        "//evil.example",
        "/%5Cevil",
    ] {
        let r = f.get(&format!("/login?next={next}"), &admin).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(r.location(), "/", "{next}");
    }
    let r = f.get("/login?next=/history%3Fpage%3D2", &admin).await;
    assert_eq!(r.location(), "/history?page=2");
    // The sign-in form's hidden field gets the same treatment.
    let _other = f.account("clerk", Role::Viewer).await;
    let mut b = Browser::default();
    let page = f.get("/login?next=/%09/evil.example", &b).await;
    assert!(!page.text().contains("evil.example"), "{}", page.text());
    b.absorb(&page);
    let csrf = page.csrf();
    let r = f
        .post(
            "/login",
            &b,
            &[
                ("csrf", &csrf),
                ("username", "clerk"),
                ("password", "password123"),
                ("next", "/\t/evil.example"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/");
}

#[tokio::test]
async fn viewers_see_names_and_history_with_masked_card_uids_and_no_enrolment_photos() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let viewer = f.account("clerk", Role::Viewer).await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    f.attempt(Some((ada, "Ada")), Outcome::Granted, true).await;
    for page in ["/history", "/", &format!("/people/{}", ada.0)] {
        let seen = f.get(page, &viewer).await.text();
        assert!(!seen.contains("04:A2:2B:19"), "{page}: {seen}");
        assert!(seen.contains("04:A2:••:••"), "{page}: {seen}");
        assert!(
            f.get(page, &admin).await.text().contains("04:A2:2B:19"),
            "{page}"
        );
    }
    let csv = f.get("/history.csv", &viewer).await.text();
    assert!(
        csv.contains("04:A2:••:••") && !csv.contains("04:A2:2B:19"),
        "{csv}"
    );
    let face = "/photos/faces/0123456789abcdef0123456789abcdef.jpg";
    assert_eq!(f.get(face, &viewer).await.status, StatusCode::FORBIDDEN);
    assert_ne!(f.get(face, &admin).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_planted_second_session_cookie_is_not_trusted() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    assert_eq!(f.get("/", &admin).await.status, StatusCode::OK);
    let mut planted = admin.clone();
    planted
        .cookies
        .push("facereko_session=0123456789abcdef0123456789abcdef".into());
    let r = f.get("/", &planted).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login"), "{}", r.location());
    // The planted one first makes no difference.
    planted.cookies.rotate_right(1);
    assert_eq!(f.get("/", &planted).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn accounts_with_a_carried_over_password_must_change_it_first() {
    let f = Fixture::new().await;
    let _admin = f.admin().await;
    f.store
        .add_account(&facereko_store::NewAccount {
            username: "legacy".into(),
            password_hash: facereko_store::hash_password("oldpass1"),
            role: Role::Viewer,
            person_id: None,
            card_uid: None,
            must_change_password: true,
        })
        .await
        .unwrap();
    let mut b = Browser::default();
    let page = f.get("/login", &b).await;
    b.absorb(&page);
    let r = f
        .post(
            "/login",
            &b,
            &[
                ("csrf", &page.csrf()),
                ("username", "legacy"),
                ("password", "oldpass1"),
            ],
        )
        .await;
    b.absorb(&r);
    let r = f.get("/history", &b).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/account");
    let me = f.get("/account", &b).await;
    assert!(me.text().contains("Choose a new password"));
    b.csrf = me.csrf();
    let r = f
        .post(
            "/account",
            &b,
            &[
                ("csrf", &b.csrf),
                ("current", "wrong"),
                ("password", "newpass12"),
                ("password2", "newpass12"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = f
        .post(
            "/account",
            &b,
            &[
                ("csrf", &b.csrf),
                ("current", "oldpass1"),
                ("password", "newpass12"),
                ("password2", "newpass12"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(f.get("/history", &b).await.status, StatusCode::OK);
    f.sign_in("legacy", "newpass12").await;
}

#[tokio::test]
async fn events_stream_status_then_new_attempts() {
    let f = Fixture::with(WebConfig::default(), Mode::Card).await;
    let admin = f.admin().await;
    f.person_with_card("Ada", "04:A2:2B:19").await;
    let resp = tower::ServiceExt::oneshot(
        f.app.clone(),
        Request::get("/events")
            .header(header::COOKIE, admin.cookie_header())
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "event: status").await;
    f.tap("04:A2:2B:19");
    read_until(&mut body, &mut seen, "event: attempt").await;
    assert!(seen.contains("Ada") && seen.contains("Granted"), "{seen}");
}

/// Whether the stream ends (the server closes it) within `within`.
async fn ends_within(body: &mut Body, within: Duration) -> bool {
    use http_body_util::BodyExt;
    tokio::time::timeout(within, async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_their_live_streams() {
    let f = Fixture::with(WebConfig::default(), Mode::Card).await;
    let elsewhere = f.account("ada", Role::Admin).await;
    let open_stream = |b: &Browser| {
        tower::ServiceExt::oneshot(
            f.app.clone(),
            Request::get("/events")
                .header(header::COOKIE, b.cookie_header())
                .body(Body::empty())
                .unwrap(),
        )
    };
    let resp = open_stream(&elsewhere).await.unwrap();
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "event: status").await;

    // The owner changes the password in another browser.
    let here = f.sign_in("ada", "password123").await;
    let r = f
        .post(
            "/account",
            &here,
            &[
                ("csrf", &here.csrf),
                ("current", "password123"),
                ("password", "newpass12"),
                ("password2", "newpass12"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(
        ends_within(&mut body, home_recheck() + Duration::from_secs(3)).await,
        "the old session's live stream kept streaming"
    );
    assert_eq!(f.get("/", &elsewhere).await.status, StatusCode::SEE_OTHER);
    assert_eq!(f.get("/", &here).await.status, StatusCode::OK);

    // Signing out ends that browser's stream too.
    let resp = open_stream(&here).await.unwrap();
    let mut body = resp.into_body();
    read_until(&mut body, &mut String::new(), "event: status").await;
    let r = f.post("/logout", &here, &[("csrf", &here.csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(ends_within(&mut body, home_recheck() + Duration::from_secs(3)).await);
}

/// How often a live stream re-checks its session (`SESSION_RECHECK` in the crate).
fn home_recheck() -> Duration {
    Duration::from_secs(5)
}

async fn read_until(body: &mut Body, seen: &mut String, want: &str) {
    use http_body_util::BodyExt;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(want) {
            let frame = body.frame().await.unwrap().unwrap();
            if let Ok(data) = frame.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?} in {seen}"));
}

#[tokio::test]
async fn form_posts_through_a_trusted_proxy_check_the_forwarded_host() {
    let f = Fixture::with(
        WebConfig {
            trust_forwarded_for: true,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let admin = f.admin().await;
    let post = |origin: &str| {
        Request::post("/arm")
            .header(header::COOKIE, admin.cookie_header())
            .header(header::HOST, "127.0.0.1:5000")
            .header("x-forwarded-host", "door.example.org")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(common::form(&[
                ("csrf", &admin.csrf),
                ("armed", "off"),
            ])))
            .unwrap()
    };
    assert_eq!(
        f.send(post("https://evil.example")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(f.send(post("null")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.send(post("https://door.example.org")).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(!f.door.status().armed);
}

// ---------------------------------------------------------------- every form's CSRF token

/// Every route that takes a `POST`, as declared in `src/routes/mod.rs` (where the router lists all of
/// them), with its `{parameters}` still in.
fn declared_post_routes() -> Vec<String> {
    let source = include_str!("../src/routes/mod.rs");
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find(".route(") {
        let call = &rest[i + ".route(".len()..];
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(j, _)| j)
            .expect("a .route( call is closed");
        let args = &call[..end];
        let path = args
            .split('"')
            .nth(1)
            .expect("a route starts with its path");
        if args.contains("post(") {
            found.push(path.to_string());
        }
        rest = &call[end..];
    }
    found
}

/// Uploads: the token travels in a multipart body.
const MULTIPART_ROUTES: &[&str] = &["/people/{id}/faces"];

/// Every field any form of the app has, with a value each form accepts: a request with these and a
/// forged token gets as far as the token check on every route, so only that check can refuse it. A new
/// form with a field not listed here needs it added.
const EVERY_FIELD: &[(&str, &str)] = &[
    ("armed", "off"),
    ("name", "Mallory"),
    ("active", "off"),
    ("valid_from", ""),
    ("valid_until", ""),
    ("schedule", ""),
    ("group", ""),
    ("date", "2026-12-25"),
    ("w0_mon", "on"),
    ("w0_from", "08:00"),
    ("w0_to", "18:00"),
    ("uid", "04:A2:2B:20"),
    ("label", "stolen"),
    ("username", "mallory"),
    ("password", "longpassword"),
    ("password2", "longpassword"),
    ("current", "password123"),
    ("role", "admin"),
    ("account", "1"),
    ("person", "1"),
    ("expires_days", ""),
    ("setup_code", "AAAA-BBBB-CCCC"),
    ("invite", ""),
    ("next", "/"),
    ("pending", "00"),
    ("value", "1"),
    ("action", "save"),
    ("confirm", "yes"),
];

/// A `multipart/form-data` body of `(name, file name, contents)` parts.
fn multipart_of(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----facerekoBoundaryQ2x9";
    let mut body = Vec::new();
    for (name, file, contents) in parts {
        let file = file
            .map(|f| format!("; filename=\"{f}\"\r\nContent-Type: image/jpeg"))
            .unwrap_or_default();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(contents);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_multipart(
    f: &Fixture,
    path: &str,
    b: &Browser,
    parts: &[(&str, Option<&str>, &[u8])],
) -> common::Resp {
    let (ct, body) = multipart_of(parts);
    f.send(
        Request::post(path)
            .header(header::COOKIE, b.cookie_header())
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

fn is_csrf_refusal(r: &common::Resp) -> bool {
    r.status == StatusCode::FORBIDDEN && r.text().contains("did not come from this site")
}

#[tokio::test]
async fn every_post_route_refuses_a_forged_or_missing_csrf_token() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let attempt = f.attempt(Some((ada, "Ada")), Outcome::Granted, true).await;
    let armed = f.door.status().armed;
    let routes = declared_post_routes();
    for known in [
        "/arm",
        "/login",
        "/logout",
        "/people/{id}/faces",
        "/accounts/tokens/{id}/revoke",
        "/api/v1/arm",
    ] {
        assert!(
            routes.iter().any(|r| r == known),
            "{known} not found among {routes:?}"
        );
    }
    assert!(routes.len() >= 26, "{routes:?}");
    let photo = jpeg(200, 150);
    let mut checked = 0;
    for route in &routes {
        let path = route
            .replace("{id}", &ada.0.to_string())
            .replace("{uid}", "04A22B19")
            .replace("{face}", "1")
            .replace("{door}", "back-yard")
            .replace("{command}", "unlock")
            .replace("{key}", "door.unlock_seconds");
        assert!(!path.contains('{'), "a parameter to fill in: {route}");
        if route.starts_with("/api/") {
            // The API takes bearer tokens only, which a browser never sends by itself: a session cookie
            // gets nowhere, so there is no form token to check.
            let r = f.post(&path, &admin, &[("armed", "false")]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{route}");
            continue;
        }
        if MULTIPART_ROUTES.contains(&route.as_str()) {
            let forged = post_multipart(
                &f,
                &path,
                &admin,
                &[("csrf", None, b"forged"), ("photo", Some("me.jpg"), &photo)],
            )
            .await;
            assert!(
                is_csrf_refusal(&forged),
                "{route}: {} {}",
                forged.status,
                forged.text()
            );
            let missing =
                post_multipart(&f, &path, &admin, &[("photo", Some("me.jpg"), &photo)]).await;
            assert!(
                is_csrf_refusal(&missing),
                "{route}: {} {}",
                missing.status,
                missing.text()
            );
            checked += 1;
            continue;
        }
        let mut forged = vec![("csrf", "forged")];
        forged.extend_from_slice(EVERY_FIELD);
        let r = f.post(&path, &admin, &forged).await;
        assert!(is_csrf_refusal(&r), "{route}: {} {}", r.status, r.text());
        let r = f.post(&path, &admin, EVERY_FIELD).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || is_csrf_refusal(&r),
            "{route} without a token: {} {}",
            r.status,
            r.text()
        );
        checked += 1;
    }
    assert!(checked >= 25, "{checked} routes checked");
    // Nothing happened: the door, the people, the accounts and the session are as they were.
    assert_eq!(f.door.status().armed, armed);
    let people = f.store.list_people().await.unwrap();
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].name, "Ada");
    assert_eq!(people[0].cards.len(), 1);
    assert!(people[0].cards[0].active);
    assert!(f.store.faces(Some(ada)).await.unwrap().is_empty());
    assert_eq!(f.store.list_accounts().await.unwrap().len(), 1);
    assert_eq!(f.get("/", &admin).await.status, StatusCode::OK);
    assert!(
        f.get(&format!("/history/{}", attempt.id), &admin)
            .await
            .status
            == StatusCode::OK
    );
}

#[tokio::test]
async fn an_upload_is_refused_unread_unless_its_token_comes_first() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let path = format!("/people/{}/faces", ada.0);
    let photo = jpeg(200, 150);
    let token = admin.csrf.clone();
    // The photo before the token.
    let r = post_multipart(
        &f,
        &path,
        &admin,
        &[
            ("photo", Some("me.jpg"), &photo),
            ("csrf", None, token.as_bytes()),
        ],
    )
    .await;
    assert!(is_csrf_refusal(&r), "{} {}", r.status, r.text());
    // A second token after the photo.
    let r = post_multipart(
        &f,
        &path,
        &admin,
        &[
            ("csrf", None, token.as_bytes()),
            ("photo", Some("me.jpg"), &photo),
            ("csrf", None, b"forged"),
        ],
    )
    .await;
    assert!(is_csrf_refusal(&r), "{} {}", r.status, r.text());
    assert!(f.store.faces(Some(ada)).await.unwrap().is_empty());
    // Not multipart at all: a friendly 400 page, as before.
    let r = f.post(&path, &admin, &[("csrf", &token)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.header("content-type").starts_with("text/html"));
    // The token first, then the photo: enrolled.
    let r = post_multipart(
        &f,
        &path,
        &admin,
        &[
            ("csrf", None, token.as_bytes()),
            ("photo", Some("me.jpg"), &photo),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn form_refusals_come_in_the_same_order_as_before_the_token_check() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let viewer = f.account("viewer", Role::Viewer).await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let forged = [("csrf", "forged"), ("uid", "04:A2:2B:20")];
    // Not signed in: to the sign-in page, whatever the path or the form.
    let r = f
        .post("/people/abc/cards", &Browser::default(), &forged)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with("/login"), "{}", r.location());
    // A viewer: not allowed, before the path and the token are looked at.
    let r = f.post("/people/abc/cards", &viewer, &forged).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("Only an administrator"), "{}", r.text());
    // An admin: a bad path, then an incomplete form, then the token.
    let r = f.post("/people/abc/cards", &admin, &forged).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let cards = format!("/people/{}/cards", ada.0);
    let r = f.post(&cards, &admin, &[("csrf", "forged")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("incomplete"), "{}", r.text());
    let r = f.post(&cards, &admin, &forged).await;
    assert!(is_csrf_refusal(&r), "{} {}", r.status, r.text());
    // A token given twice is a malformed form, as it was.
    let r = f
        .post(
            &cards,
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("csrf", &admin.csrf),
                ("uid", "04:A2:2B:20"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Everything right: done.
    let r = f
        .post(
            &cards,
            &admin,
            &[("csrf", &admin.csrf), ("uid", "04:A2:2B:20")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    // A signed-out form: the cookie and the field must match.
    let mut b = Browser::default();
    let page = f.get("/login", &b).await;
    b.absorb(&page);
    let login = |csrf: &'static str| {
        [
            ("csrf", csrf),
            ("username", "admin"),
            ("password", "password123"),
        ]
    };
    let r = f.post("/login", &b, &login("forged")).await;
    assert!(is_csrf_refusal(&r), "{} {}", r.status, r.text());
    let r = f
        .post("/login", &Browser::default(), &login("forged"))
        .await;
    assert!(is_csrf_refusal(&r), "{} {}", r.status, r.text());
}

#[tokio::test]
async fn admins_see_what_the_door_camera_sees_now_and_viewers_only_when_allowed() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let r = f.get("/camera.jpg", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "image/jpeg");
    assert!(r.header("cache-control").contains("no-store"));
    assert_eq!(r.bytes, std::fs::read(&f.camera_jpeg).unwrap());
    let home = f.get("/", &admin).await.text();
    assert!(
        home.contains(r#"id="camera" class="camera-live" src="/camera.jpg""#),
        "{home}"
    );
    // A preview beside "Take a photo with the door camera" on a person's page.
    let ada = f.store.add_person("Ada").await.unwrap();
    let page = f.get(&format!("/people/{}", ada.0), &admin).await.text();
    assert!(
        page.contains(r#"class="camera-live" src="/camera.jpg""#),
        "{page}"
    );

    let viewer = f.account("watcher", Role::Viewer).await;
    let r = f.get("/camera.jpg", &viewer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!f.get("/", &viewer).await.text().contains("/camera.jpg"));
    let r = f.get("/camera.jpg", &Browser::default()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // Unless a setting lets viewers see it.
    let open = Fixture::with(
        WebConfig {
            viewers_see_camera: true,
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    open.admin().await;
    let viewer = open.account("watcher", Role::Viewer).await;
    assert_eq!(
        open.get("/camera.jpg", &viewer).await.status,
        StatusCode::OK
    );
    assert!(open.get("/", &viewer).await.text().contains("/camera.jpg"));

    // A camera that gives nothing is a friendly 503, not a broken picture.
    std::fs::remove_file(&f.camera_jpeg).unwrap();
    let r = f.get("/camera.jpg", &admin).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("gives no picture"), "{}", r.text());
}

#[tokio::test]
async fn the_people_list_says_who_the_door_would_let_in_now() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let now = chrono::Utc::now();
    let day = chrono::Duration::days(1);
    type Change<'a> = &'a dyn Fn(&mut facereko_domain::Person);
    let cases: [(&str, Change, &str); 5] = [
        ("Ada", &|_| {}, "enabled"),
        (
            "Bob",
            &|p| p.valid_until = Some(now - day),
            "<strong>expired</strong>",
        ),
        ("Cleo", &|p| p.active = false, "<strong>disabled</strong>"),
        (
            "Dan",
            &|p| p.valid_from = Some(now + day),
            "<strong>not valid yet</strong>",
        ),
        (
            "Eve",
            // A schedule with no window: never.
            &|p| p.schedule = Some(facereko_domain::WeeklySchedule::default()),
            "<strong>outside schedule now</strong>",
        ),
    ];
    for (name, change, _) in &cases {
        let id = f.store.add_person(name).await.unwrap();
        let mut p = f.store.person(id).await.unwrap().unwrap();
        change(&mut p);
        f.store.update_person(&p).await.unwrap();
    }
    let page = f.get("/people", &admin).await.text();
    for (name, _, state) in &cases {
        let row = page
            .split("<tr>")
            .find(|r| r.contains(&format!(">{name}</a>")))
            .unwrap_or_else(|| panic!("{name} is listed: {page}"));
        assert!(row.contains(&format!(">{state}</td>")), "{name}: {row}");
    }
}

#[tokio::test]
async fn a_person_is_removed_only_once_confirmed_and_their_attempts_stay() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    upload(&f, &admin, ada, &jpeg(64, 64)).await;
    let a = f.attempt(Some((ada, "Ada")), Outcome::Granted, true).await;
    let page = f.get(&format!("/people/{}", ada.0), &admin).await.text();
    assert!(page.contains("id=\"remove-person\""));
    let viewer = f.account("watcher", Role::Viewer).await;
    assert!(!f
        .get(&format!("/people/{}", ada.0), &viewer)
        .await
        .text()
        .contains("remove-person"));
    let r = f
        .post(
            &format!("/people/{}/remove", ada.0),
            &viewer,
            &[("csrf", &viewer.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The first post asks, naming what goes with them.
    let r = f
        .post(
            &format!("/people/{}/remove", ada.0),
            &admin,
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text()
            .contains("Remove Ada with 1 card and 1 enrolled face?"),
        "{}",
        r.text()
    );
    assert!(f.store.person(ada).await.unwrap().is_some());
    let r = f
        .post(
            &format!("/people/{}/remove", ada.0),
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/people?done=person_removed");
    assert!(f.store.person(ada).await.unwrap().is_none());
    let uid = "04:A2:2B:19".parse().unwrap();
    assert!(f.store.lookup_card(&uid).await.unwrap().is_none());
    assert!(f.store.faces(Some(ada)).await.unwrap().is_empty());
    let kept = f.store.attempt(a.id).await.unwrap().unwrap();
    assert_eq!(kept.person.as_deref(), Some("Ada"));
    // Gone is gone: a second removal is a 404, not a second audit entry.
    let r = f
        .post(
            &format!("/people/{}/remove", ada.0),
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let trail = f
        .store
        .audit_entries(&facereko_store::AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(
        trail.iter().filter(|e| e.action == "person.remove").count(),
        1
    );
    assert_eq!(trail[0].detail, "with 1 card and 1 face");
}

#[tokio::test]
async fn a_face_like_another_persons_is_enrolled_only_when_an_admin_confirms() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let bob = f.person_with_card("Bob", "04:B0:B0:B0").await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    assert_eq!(
        upload(&f, &admin, bob, &jpeg(64, 64)).await.status,
        StatusCode::SEE_OTHER,
        "the first face is like nobody's"
    );
    // The test enroller finds every face alike: Ada's photo "looks like Bob".
    let r = upload(&f, &admin, ada, &jpeg(64, 64)).await;
    assert_eq!(r.status, StatusCode::OK);
    let t = r.text();
    assert!(
        t.contains("This face looks like Bob: 100.0 % alike, and the door opens from 92.8 %."),
        "{t}"
    );
    assert!(t.contains("Enrol it for Ada anyway?"));
    assert!(
        f.store.faces(Some(ada)).await.unwrap().is_empty(),
        "held, not enrolled"
    );
    let key = {
        let i = t.find("name=\"pending\" value=\"").unwrap() + 22;
        t[i..i + 32].to_string()
    };
    let action = format!("/people/{}/faces/confirm", ada.0);
    // Another administrator's session cannot confirm what this one was shown.
    let other = f.account("second", facereko_store::Role::Admin).await;
    let r = f
        .post(
            &action,
            &other,
            &[("csrf", &other.csrf), ("pending", &key), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Nor can it be confirmed for someone else.
    let r = f
        .post(
            &format!("/people/{}/faces/confirm", bob.0),
            &admin,
            &[("csrf", &admin.csrf), ("pending", &key), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The wrong person's attempt used the key up: a held photo is confirmed once, by its uploader,
    // for its person. Upload again and confirm properly.
    let r = upload(&f, &admin, ada, &jpeg(64, 64)).await;
    let t = r.text();
    let key = {
        let i = t.find("name=\"pending\" value=\"").unwrap() + 22;
        t[i..i + 32].to_string()
    };
    let r = f
        .post(
            &action,
            &admin,
            &[("csrf", &admin.csrf), ("pending", &key), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 1);
    let trail = f
        .store
        .audit_entries(&facereko_store::AuditQuery::default())
        .await
        .unwrap();
    assert!(
        trail[0].detail.ends_with(
            "from an uploaded photo, confirmed although it looks like Bob (100.0 %, needs 92.8 %)"
        ),
        "{}",
        trail[0].detail
    );
    // Used once: the same key again is refused.
    let r = f
        .post(
            &action,
            &admin,
            &[("csrf", &admin.csrf), ("pending", &key), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(f.store.faces(Some(ada)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_people_list_is_searched_by_name_or_card_and_paged_with_counts() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    for i in 0..120 {
        f.person_with_card(
            &format!("Person {i:03}"),
            &format!("04:00:{:02X}:{:02X}", i / 256, i % 256),
        )
        .await;
    }
    let ada = f.person_with_card("Ada Lovelace", "04:A2:2B:19").await;
    upload(&f, &admin, ada, &jpeg(64, 64)).await;
    let rows = |t: &str| t.matches("<td class=\"name\">").count();
    // Page 1 of 3, with a count and page links.
    let t = f.get("/people", &admin).await.text();
    assert_eq!(rows(&t), 50);
    assert!(t.contains("1–50 of 121 people."), "{t}");
    assert!(t.contains("href=\"/people?page=3\"") && t.contains("rel=\"next\""));
    let t = f.get("/people?page=3", &admin).await.text();
    assert_eq!(rows(&t), 21);
    assert!(t.contains("101–121 of 121 people.") && t.contains("rel=\"prev\""));
    assert!(!t.contains("rel=\"next\""));
    // A page past the end shows the last one; a page that is not a number is refused.
    assert_eq!(rows(&f.get("/people?page=99", &admin).await.text()), 21);
    assert_eq!(
        f.get("/people?page=-1", &admin).await.status,
        StatusCode::BAD_REQUEST
    );
    // By name, any case; by a card UID with or without colons, or part of one.
    let t = f.get("/people?q=lovelace", &admin).await.text();
    assert_eq!(rows(&t), 1);
    assert!(
        t.contains("Ada Lovelace") && t.contains("1–1 of 1 matching “lovelace” (of 121 people)."),
        "{t}"
    );
    assert!(t.contains("?thumb=1"), "an administrator sees a thumbnail");
    for q in ["04A22B19", "04:a2:2b:19", "2B:19"] {
        let t = f
            .get(&format!("/people?q={}", common::enc(q)), &admin)
            .await
            .text();
        assert_eq!(rows(&t), 1, "{q}");
        assert!(t.contains("Ada Lovelace"));
    }
    let t = f.get("/people?q=person%2001", &admin).await.text();
    assert_eq!(rows(&t), 10, "Person 010–019");
    let t = f.get("/people?q=nobody-here", &admin).await.text();
    assert_eq!(rows(&t), 0);
    assert!(t.contains("Nobody matches “nobody-here”."));
    // A viewer searches names only and sees no enrolment photos.
    let viewer = f.account("watcher", Role::Viewer).await;
    let t = f.get("/people?q=2B:19", &viewer).await.text();
    assert_eq!(rows(&t), 0, "card UIDs are not searchable by a viewer");
    let t = f.get("/people?q=ada", &viewer).await.text();
    assert_eq!(rows(&t), 1);
    assert!(!t.contains("?thumb=1"));
    // Hostile input: too long is refused, markup is only text.
    let long = "x".repeat(101);
    assert_eq!(
        f.get(&format!("/people?q={long}"), &admin).await.status,
        StatusCode::BAD_REQUEST
    );
    let t = f.get("/people?q=%3Cscript%3E", &admin).await.text();
    assert!(!t.contains("<script>x") && !t.contains("value=\"<script>"));
}

#[tokio::test]
async fn history_filters_by_time_of_day_even_across_midnight() {
    let f = Fixture::with(
        WebConfig {
            time_zone: facereko_web::TimeZone::parse("Europe/Paris").unwrap(),
            ..WebConfig::default()
        },
        Mode::CardFace,
    )
    .await;
    let admin = f.admin().await;
    // One attempt at each whole hour (Paris time) of 2026-11-02, 24 hours; Paris is UTC+1 then.
    for h in 0..24u32 {
        let time = chrono::NaiveDate::from_ymd_opt(2026, 11, 2)
            .unwrap()
            .and_hms_opt(h, 30, 0)
            .unwrap()
            .and_utc()
            - chrono::Duration::hours(1);
        f.store
            .record_attempt(
                &facereko_domain::NewAttempt {
                    time,
                    door_id: DOOR.into(),
                    card_uid: None,
                    person_id: None,
                    person_name: Some(format!("At {h:02}:30")),
                    outcome: Outcome::UnknownCard,
                    similarity: None,
                    distance: None,
                    confidence: None,
                    timings: facereko_domain::StageTimings::default(),
                    detail: None,
                },
                None,
            )
            .await
            .unwrap();
    }
    let names = |t: &str| -> Vec<String> {
        t.split(">At ")
            .skip(1)
            .map(|s| s[..5].to_string())
            .collect()
    };
    let t = f
        .get("/history?after=09:00&until=11:59", &admin)
        .await
        .text();
    assert_eq!(names(&t), ["11:30", "10:30", "09:30"], "{t}");
    assert!(t.contains("3 attempts match.") && t.contains("value=\"09:00\""));
    // Across midnight: 22:00 to 01:00.
    let t = f
        .get("/history?after=22:00&until=01:00", &admin)
        .await
        .text();
    assert_eq!(names(&t), ["23:30", "22:30", "00:30"]);
    // The CSV follows the same window.
    let csv = f
        .get("/history.csv?after=22:00&until=01:00", &admin)
        .await
        .text();
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
    assert!(csv.contains("2026-11-02 23:30:00"));
    // A time that is not one is refused.
    assert_eq!(
        f.get("/history?after=25:00", &admin).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_stopped_controller_is_said_plainly_instead_of_a_stale_state() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let t = f.get("/", &admin).await.text();
    assert!(!t.contains("id=\"stopped\""));
    assert!(t.contains(">Active<") && t.contains(">Locked<"));
    f.door.shutdown().await;
    let t = f.get("/", &admin).await.text();
    assert!(
        t.contains("id=\"stopped\"") && t.contains("door controller is not running"),
        "{t}"
    );
    assert!(!t.contains(">Active<") && !t.contains(">Locked<"), "{t}");
    assert!(t.contains("id=\"st-lock\">Unknown<"));
}
