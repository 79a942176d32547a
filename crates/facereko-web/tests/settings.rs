//! The settings page's routes with a fake door behind them: administrators only, values checked by the
//! door before they are kept, keys set elsewhere read-only, every change in the audit trail.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{FakeSettings, Fixture, DOOR};
use facereko_store::Role;

#[tokio::test]
async fn settings_are_checked_kept_and_recorded_and_only_for_administrators() {
    let mut f = Fixture::new().await;
    let fake = Arc::new(FakeSettings::default());
    f.state = f.state.clone().with_settings(fake.clone());
    f.app = facereko_web::router(f.state.clone());
    let admin = f.admin().await;
    let page = f.get("/settings", &admin).await;
    assert_eq!(page.status, StatusCode::OK);
    let t = page.text();
    assert!(t.contains("set by FACEREKO_DOOR__MODE") && t.contains("mqtt: connected"));
    assert!(!t.contains("action=\"/settings/door.mode\""));
    let viewer = f.account("watcher", Role::Viewer).await;
    assert_eq!(
        f.get("/settings", &viewer).await.status,
        StatusCode::FORBIDDEN
    );
    let post = |key: &'static str, pairs: Vec<(&'static str, &'static str)>| {
        let f = &f;
        let admin = &admin;
        async move {
            let mut all = vec![("csrf", admin.csrf.as_str())];
            all.extend(pairs);
            f.post(&format!("/settings/{key}"), admin, &all).await
        }
    };
    // Refused by the door's check, by the source, or unknown: nothing kept.
    let r = post("door.unlock_seconds", vec![("value", "-1")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("must be more than 0"));
    assert_eq!(
        post("door.mode", vec![("value", "face")]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post("web.bind", vec![("value", "0.0.0.0:80")]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post("door.unlock_seconds", vec![("value", "  ")])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert!(f.store.config_overrides(DOOR).await.unwrap().is_empty());
    // Kept, and recorded.
    let r = post("door.unlock_seconds", vec![("value", "4.5")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        f.store.config_overrides(DOOR).await.unwrap(),
        [("door.unlock_seconds".to_string(), "4.5".to_string())]
    );
    let r = post("door.unlock_seconds", vec![("action", "reset")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(f.store.config_overrides(DOOR).await.unwrap().is_empty());
    // A viewer cannot post, nor send a test event.
    let r = f
        .post(
            "/settings/door.unlock_seconds",
            &viewer,
            &[("csrf", &viewer.csrf), ("value", "9")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = f
        .post("/settings/test", &viewer, &[("csrf", &viewer.csrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = f
        .post("/settings/test", &admin, &[("csrf", &admin.csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(*fake.tests.lock().unwrap(), ["admin"]);
    let trail = f
        .store
        .audit_entries(&facereko_store::AuditQuery {
            action: Some("setting".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["setting.test", "setting.change", "setting.change"]
    );
    assert_eq!(
        trail[1].detail,
        "back to the default (at the next start; was 10)"
    );
    assert_eq!(trail[2].detail, "10 → 4.5 (at the next start)");
}

#[tokio::test]
async fn without_settings_the_page_is_not_there() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    assert_eq!(
        f.get("/settings", &admin).await.status,
        StatusCode::NOT_FOUND
    );
}
