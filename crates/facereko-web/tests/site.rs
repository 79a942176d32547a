//! A door of a site: the home page's Site card (this door's replica, every door's state), signed commands
//! to the other doors, and the history's door filter.

mod common;

use std::sync::{Arc, Mutex};

use chrono::Utc;
use common::{Fixture, DOOR};
use facereko_domain::{NewAttempt, Outcome, StageTimings};
use facereko_store::Role;
use facereko_web::{SiteCommand, SiteDoor, SiteView};

#[derive(Debug, Default)]
struct FakeSite {
    sent: Mutex<Vec<(String, SiteCommand)>>,
    stale: bool,
}

impl SiteView for FakeSite {
    fn replica(&self) -> Option<(String, bool)> {
        Some(("revision 42, confirmed 3 s ago".into(), self.stale))
    }

    fn doors(&self) -> Vec<SiteDoor> {
        vec![
            SiteDoor {
                door_id: "back-yard".into(),
                online: true,
                armed: Some(false),
                door: Some("locked".into()),
                seen: Utc::now(),
            },
            SiteDoor {
                door_id: DOOR.into(),
                online: true,
                armed: Some(true),
                door: Some("unlocked".into()),
                seen: Utc::now(),
            },
            SiteDoor {
                door_id: "garage".into(),
                online: false,
                armed: None,
                door: None,
                seen: Utc::now(),
            },
        ]
    }

    fn can_command(&self) -> bool {
        true
    }

    fn command(&self, door_id: &str, command: SiteCommand) -> Result<(), String> {
        self.sent.lock().unwrap().push((door_id.into(), command));
        Ok(())
    }
}

fn with_site(mut f: Fixture, site: Arc<FakeSite>) -> Fixture {
    f.state = f.state.clone().with_site(site);
    f.app = facereko_web::router(f.state.clone());
    f
}

#[tokio::test]
async fn the_home_page_shows_the_replica_and_every_door_of_the_site() {
    let site = Arc::new(FakeSite::default());
    let f = with_site(Fixture::new().await, site.clone());
    let admin = f.admin().await;
    let home = f.get("/", &admin).await;
    assert_eq!(home.status, 200);
    let page = home.text();
    assert!(
        page.contains("This door's copy of the cards and faces: revision 42, confirmed 3 s ago")
    );
    assert!(page.contains("href=\"/history?door=back-yard\""), "{page}");
    assert!(page.contains("(this door)"));
    assert!(
        page.contains("<strong>Offline</strong>"),
        "garage is offline"
    );
    assert!(
        page.contains("<td data-label=\"Last attempt\">none yet</td>"),
        "no attempt at back-yard yet"
    );
    // Remote buttons for the other doors that are online only.
    assert!(page.contains("action=\"/site/back-yard/unlock\""));
    assert!(!page.contains("action=\"/site/garage/unlock\""));
    assert!(!page.contains(&format!("action=\"/site/{DOOR}/unlock\"")));

    let viewer = f.account("watcher", Role::Viewer).await;
    let page = f.get("/", &viewer).await.text();
    assert!(page.contains("revision 42"), "viewers see the site too");
    assert!(
        !page.contains("/site/back-yard/unlock"),
        "but no remote buttons"
    );

    // A door on its own has no Site card.
    let alone = Fixture::new().await;
    let admin = alone.admin().await;
    assert!(!alone.get("/", &admin).await.text().contains("id=\"site\""));
}

#[tokio::test]
async fn a_stale_replica_is_shown_as_a_warning() {
    let site = Arc::new(FakeSite {
        stale: true,
        ..FakeSite::default()
    });
    let f = with_site(Fixture::new().await, site);
    let admin = f.admin().await;
    let page = f.get("/", &admin).await.text();
    assert!(page.contains("<p id=\"replica\" class=\"warn\">"), "{page}");
}

#[tokio::test]
async fn an_admin_sends_a_signed_command_to_another_door_and_nobody_else_can() {
    let site = Arc::new(FakeSite::default());
    let f = with_site(Fixture::new().await, site.clone());
    let admin = f.admin().await;
    let home = f.get("/", &admin).await;
    let csrf = home.csrf();
    // Unlocking another door asks first; only the confirmation sends the command.
    let r = f
        .post("/site/back-yard/unlock", &admin, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Unlock back-yard now?"));
    assert!(site.sent.lock().unwrap().is_empty());
    let r = f
        .post(
            "/site/back-yard/unlock",
            &admin,
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/?done=command_sent");
    let r = f
        .post("/site/back-yard/arm", &admin, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        *site.sent.lock().unwrap(),
        vec![
            ("back-yard".to_string(), SiteCommand::Unlock),
            ("back-yard".to_string(), SiteCommand::Arm)
        ]
    );
    let page = f.get("/?done=command_sent", &admin).await.text();
    assert!(page.contains("The command was sent to the other door"));

    // Refused: without the form's token, this door (its own buttons do that), a bad name, a viewer.
    let r = f.post("/site/back-yard/unlock", &admin, &[]).await;
    assert_eq!(r.status, 400);
    let r = f
        .post("/site/back-yard/unlock", &admin, &[("csrf", "forged")])
        .await;
    assert_eq!(r.status, 403);
    let r = f
        .post(&format!("/site/{DOOR}/unlock"), &admin, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 400);
    let r = f
        .post("/site/back%2Fyard/unlock", &admin, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 400);
    let r = f
        .post("/site/back-yard/explode", &admin, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 404);
    let viewer = f.account("watcher", Role::Viewer).await;
    let vcsrf = f.get("/", &viewer).await.csrf();
    let r = f
        .post("/site/back-yard/unlock", &viewer, &[("csrf", &vcsrf)])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(site.sent.lock().unwrap().len(), 2, "nothing else was sent");
}

#[tokio::test]
async fn history_filters_by_door_once_there_is_more_than_one() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    f.attempt(None, Outcome::UnknownCard, false).await;
    assert!(
        !f.get("/history", &admin)
            .await
            .text()
            .contains("name=\"door\""),
        "one door: no door filter"
    );
    f.store
        .record_attempt(
            &NewAttempt {
                time: Utc::now(),
                door_id: "back-yard".into(),
                card_uid: None,
                person_id: None,
                person_name: None,
                outcome: Outcome::NoFace,
                similarity: None,
                distance: None,
                confidence: None,
                timings: StageTimings::default(),
                detail: None,
            },
            None,
        )
        .await
        .unwrap();
    let page = f.get("/history", &admin).await.text();
    assert!(
        page.contains("<option value=\"back-yard\">back-yard</option>"),
        "{page}"
    );
    let page = f.get("/history?door=back-yard", &admin).await.text();
    assert!(page.contains("<span class=\"badge no_face\">"), "{page}");
    assert!(
        !page.contains("<span class=\"badge unknown_card\">"),
        "only back-yard's attempts"
    );
    assert!(page.contains("<option value=\"back-yard\" selected>"));
    let csv = f.get("/history.csv?door=back-yard", &admin).await.text();
    assert_eq!(
        csv.lines().count(),
        2,
        "header and back-yard's one attempt: {csv}"
    );
    let r = f.get("/history?door=a%2Fb", &admin).await;
    assert_eq!(r.status, 400);
}
