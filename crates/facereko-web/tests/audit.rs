//! The audit trail: every administrative change and remote unlock made through the web app or the API is
//! recorded with who, how, from where and what changed, shown in History (administrators only), exported
//! as CSV and queued as an `audit` event for the notification sinks.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{jpeg, upload, Fixture, DOOR};
use facereko_domain::{AuditVia, Event};
use facereko_store::{AuditQuery, Role};

async fn trail(f: &Fixture) -> Vec<facereko_domain::AuditEntry> {
    let mut v = f
        .store
        .audit_entries(&AuditQuery {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    v.reverse();
    v
}

#[tokio::test]
async fn every_admin_change_and_unlock_is_in_the_trail_in_history_in_the_csv_and_sent_as_an_event()
{
    let f = Fixture::new().await;
    let admin = f.admin().await;
    f.store.outbox_register_sink(DOOR, "test").await.unwrap();
    let p = f.person_with_card("Ada", "04:A2:2B:19").await;
    let id = p.0.to_string();
    let ok = |r: &common::Resp| {
        assert!(
            r.status == StatusCode::SEE_OTHER || r.status == StatusCode::OK,
            "{} {}",
            r.status,
            r.text()
        )
    };
    // People, cards, faces.
    ok(&f
        .post(
            "/people",
            &admin,
            &[("csrf", &admin.csrf), ("name", "Grace")],
        )
        .await);
    ok(&f
        .post(
            &format!("/people/{id}"),
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("name", "Ada Lovelace"),
                ("valid_until", "2030-12-31"),
                ("w0_mon", "on"),
                ("w0_fri", "on"),
                ("w0_from", "07:00"),
                ("w0_to", "19:00"),
            ],
        )
        .await);
    ok(&f
        .post(
            &format!("/people/{id}/cards"),
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("uid", "04:11:22:33"),
                ("label", "blue fob"),
            ],
        )
        .await);
    ok(&f
        .post(
            &format!("/people/{id}/cards/04112233/active"),
            &admin,
            &[("csrf", &admin.csrf), ("active", "off")],
        )
        .await);
    ok(&f
        .post(
            &format!("/people/{id}/cards/04112233/remove"),
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await);
    ok(&upload(&f, &admin, p, &jpeg(64, 64)).await);
    let face = f.store.faces(Some(p)).await.unwrap()[0].id;
    ok(&f
        .post(
            &format!("/people/{id}/faces/{face}/delete"),
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await);
    // The door.
    ok(&f
        .post("/arm", &admin, &[("csrf", &admin.csrf), ("armed", "off")])
        .await);
    ok(&f
        .post(
            "/unlock",
            &admin,
            &[("csrf", &admin.csrf), ("confirm", "yes")],
        )
        .await);
    // Accounts and tokens.
    ok(&f
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
        .await);
    let me = f.store.account_by_username("admin").await.unwrap().unwrap();
    ok(&f
        .post(
            "/accounts/tokens",
            &admin,
            &[
                ("csrf", &admin.csrf),
                ("name", "panel"),
                ("account", &me.id.to_string()),
                ("expires_days", ""),
            ],
        )
        .await);

    let t = trail(&f).await;
    let actions: Vec<&str> = t.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "person.add",
            "person.update",
            "card.add",
            "card.disable",
            "card.remove",
            "face.add",
            "face.delete",
            "system.deactivate",
            "door.unlock",
            "account.add",
            "token.create",
        ]
    );
    for e in &t {
        assert_eq!(e.actor, "admin");
        assert_eq!(e.via, AuditVia::Web);
        assert_eq!(e.door_id, DOOR);
    }
    assert_eq!(t[0].target, "Grace");
    assert_eq!(t[1].target, "Ada Lovelace");
    assert!(
        t[1].detail.contains("name \"Ada\" → \"Ada Lovelace\""),
        "{}",
        t[1].detail
    );
    assert!(
        t[1].detail.contains("valid always → until 2030-12-31"),
        "{}",
        t[1].detail
    );
    assert!(
        t[1].detail.contains("schedule any time →"),
        "{}",
        t[1].detail
    );
    // A card is named as a viewer would see it: the trail also leaves the door as events.
    assert_eq!(t[2].detail, "card 04:11:••:•• (\"blue fob\")");
    assert!(t[4].detail.starts_with("card 04:11:••:••"));
    assert!(t[5].detail.contains("uploaded photo"));
    assert_eq!(t[10].target, "admin");
    assert!(t[10].detail.contains("\"panel\"") && t[10].detail.contains("never expires"));
    assert!(
        t.iter().all(|e| !e.detail.contains("04:11:22:33")),
        "no whole UID"
    );

    // Each is also an event for the sinks, in order, with the same entry.
    let events = f.store.outbox_pending(DOOR, "test", 500).await.unwrap();
    let audited: Vec<&facereko_domain::AuditEntry> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Audit { entry, .. } => Some(entry),
            _ => None,
        })
        .collect();
    assert_eq!(audited.len(), t.len());
    assert_eq!(audited[8], &t[8]);

    // History shows them to an administrator, filtered by family, and exports them.
    let r = f.get("/history?what=changes", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.text();
    assert!(page.contains("11 changes match."), "{page}");
    assert!(page.contains("<code>door.unlock</code>"));
    assert!(page.contains("Ada Lovelace"));
    let r = f.get("/history?what=changes&action=card", &admin).await;
    assert!(r.text().contains("3 changes match."), "{}", r.text());
    assert!(!r.text().contains("<code>person.add</code>"));
    let r = f.get("/history?what=changes&action=nonsense", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let csv = f.get("/history.csv?what=changes", &admin).await;
    assert_eq!(csv.status, StatusCode::OK);
    let csv = csv.text();
    assert!(
        csv.starts_with("id,local_time,utc_time,door,actor,via,origin,action,target,detail\r\n")
    );
    assert_eq!(csv.lines().count(), 1 + 11);
    assert!(csv.contains(",admin,web,,door.unlock,front,"));

    // Not to a viewer: the trail names addresses and accounts.
    let viewer = f.account("watcher", Role::Viewer).await;
    let r = f.get("/history?what=changes", &viewer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        f.get("/history.csv?what=changes", &viewer).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(!f
        .get("/history", &viewer)
        .await
        .text()
        .contains("what=changes"));
    assert!(f
        .get("/history", &admin)
        .await
        .text()
        .contains("what=changes"));
}

#[tokio::test]
async fn an_api_change_names_its_account_and_address_and_hostile_text_is_cut() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let me = f.store.account_by_username("admin").await.unwrap().unwrap();
    let (_, token) = f
        .store
        .create_api_token(me.id, "panel", None)
        .await
        .unwrap();
    let r = f
        .send(
            Request::post("/api/v1/arm")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-forwarded-for", "203.0.113.9")
                .body(Body::from("{\"armed\": false}"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = trail(&f).await;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].via, AuditVia::Api);
    assert_eq!(t[0].actor, "admin");
    assert_eq!(t[0].action, "system.deactivate");
    assert_eq!(
        t[0].origin, None,
        "a forwarded address is believed only behind a trusted proxy"
    );

    // A name with control characters and 5 000 characters: the person is refused or stored as the
    // store allows, and whatever reaches the trail is one bounded line.
    let long = format!("Eve\n\r\u{7}{}", "x".repeat(5000));
    let _ = f
        .post("/people", &admin, &[("csrf", &admin.csrf), ("name", &long)])
        .await;
    for e in trail(&f).await {
        assert!(e.target.chars().count() <= 300);
        assert!(!e.target.chars().any(char::is_control));
    }
    // The store refuses an action that is not one of ours.
    let bad = facereko_domain::NewAudit {
        time: chrono::Utc::now(),
        door_id: DOOR.into(),
        actor: "x".into(),
        via: AuditVia::Cli,
        origin: None,
        action: "DROP TABLE audit".into(),
        target: String::new(),
        detail: String::new(),
    };
    assert!(f.store.record_audit(&bad).await.is_err());
}
