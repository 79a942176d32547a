//! The store's test suite, run against SQLite (always) and, with `--include-ignored`, MariaDB/MySQL and
//! PostgreSQL servers named by `FACEREKO_TEST_MYSQL_URL` / `FACEREKO_TEST_POSTGRES_URL`. Every case gets
//! a database of its own.

mod common;

use std::collections::HashSet;

use chrono::Duration;
use common::{attempt, jpeg, now, TestDb};
use facereko_domain::{CardUid, Event, Outcome, PersonId, WeeklySchedule, Window};
use facereko_store::{
    hash_password, verify_password, AccountUpdate, AttemptQuery, AuditQuery, Error, NewAccount,
    RetentionPolicy, Role, Store,
};

fn uid(s: &str) -> CardUid {
    s.parse().unwrap()
}

mod cases {
    use super::*;

    pub async fn migrations_apply_from_empty_and_rerun(t: &TestDb) {
        let s = &t.store;
        assert_eq!(s.schema_version().await.unwrap(), 7);
        assert_eq!(s.migrate().await.unwrap(), 7, "re-running is a no-op");
        // A second process opening the same database sees the schema and keeps the data.
        let id = s.add_person("Ada Lovelace").await.unwrap();
        let again = t.reopen().await;
        assert_eq!(again.schema_version().await.unwrap(), 7);
        assert_eq!(
            again.person(id).await.unwrap().unwrap().name,
            "Ada Lovelace"
        );
    }

    pub async fn a_newer_schema_is_refused(t: &TestDb) {
        t.exec(
            "INSERT INTO facereko_schema (version, description) VALUES (999, 'from the future')",
        )
        .await;
        let err = Store::open(&t.url, t.data_dir()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::SchemaTooNew {
                    found: 999,
                    supported: 7
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("newer than this FaceReko"),
            "{err}"
        );
    }

    pub async fn people_round_trip(t: &TestDb) {
        let s = &t.store;
        for bad in ["", "   ", &"x".repeat(101)] {
            assert!(
                matches!(s.add_person(bad).await, Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
        let ada = s.add_person("Ada Lovelace").await.unwrap();
        let alan = s.add_person("Alan Turing").await.unwrap();
        assert!(matches!(
            s.add_person("Ada Lovelace").await,
            Err(Error::Conflict(_))
        ));
        let mut p = s.person(ada).await.unwrap().unwrap();
        assert_eq!(
            (p.name.as_str(), p.active, p.cards.len()),
            ("Ada Lovelace", true, 0)
        );
        assert!(p.schedule.is_none() && p.valid_from.is_none());

        p.active = false;
        p.valid_from = Some(now() - Duration::days(1));
        p.valid_until = Some(now() + Duration::days(30));
        p.schedule = Some(WeeklySchedule {
            windows: vec![Window {
                days: vec![1, 2, 3, 4, 5],
                start_minute: 480,
                end_minute: 1080,
            }],
        });
        s.update_person(&p).await.unwrap();
        s.update_person(&p).await.unwrap(); // unchanged rows are not "missing" (MySQL counts changes)
        assert_eq!(s.person(ada).await.unwrap().unwrap(), p);
        assert_eq!(s.person_by_name("Ada Lovelace").await.unwrap().unwrap(), p);
        assert!(
            s.person_by_name("ada lovelace").await.unwrap().is_none(),
            "exact match"
        );
        assert!(s.person(PersonId(9999)).await.unwrap().is_none());

        let mut ghost = p.clone();
        ghost.id = PersonId(9999);
        ghost.name = "Ghost".into();
        assert!(matches!(
            s.update_person(&ghost).await,
            Err(Error::NotFound(_))
        ));
        let mut clash = p.clone();
        clash.id = alan;
        assert!(matches!(
            s.update_person(&clash).await,
            Err(Error::Conflict(_))
        ));

        let names: Vec<_> = s
            .list_people()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["Ada Lovelace", "Alan Turing"]);
        s.delete_person(alan).await.unwrap();
        assert!(s.person(alan).await.unwrap().is_none());
        assert!(matches!(
            s.delete_person(alan).await,
            Err(Error::NotFound(_))
        ));
    }

    pub async fn cards_belong_to_one_person(t: &TestDb) {
        let s = &t.store;
        let ada = s.add_person("Ada").await.unwrap();
        let bob = s.add_person("Bob").await.unwrap();
        let four = uid("04:A2:2B:19");
        let seven = uid("04:11:22:33:44:55:66");
        let ten = uid("00:11:22:33:44:55:66:77:88:99");
        s.add_card(ada, &four, Some("blue fob")).await.unwrap();
        s.add_card(ada, &seven, None).await.unwrap();
        s.add_card(bob, &ten, None).await.unwrap();
        match s.add_card(bob, &four, None).await {
            Err(Error::CardTaken { uid: u, owner }) => {
                assert_eq!((u, owner.as_str()), (four.clone(), "Ada"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.add_card(PersonId(4242), &uid("01:02:03:04"), None).await,
            Err(Error::NotFound(_))
        ));
        // Decimal-joined collisions of the original stay apart.
        s.add_card(bob, &uid("01:17:00:00"), None).await.unwrap();
        s.add_card(ada, &uid("0C:03:00:00"), None).await.unwrap();

        let (card, owner) = s.lookup_card(&four).await.unwrap().unwrap();
        assert_eq!(
            (card.label.as_deref(), card.active, owner.name.as_str()),
            (Some("blue fob"), true, "Ada")
        );
        assert_eq!(owner.cards.len(), 3, "the owner comes with all their cards");
        assert_eq!(s.lookup_card(&ten).await.unwrap().unwrap().1.id, bob);
        assert!(s.lookup_card(&uid("DE:AD:BE:EF")).await.unwrap().is_none());

        s.set_card_active(&four, false).await.unwrap();
        assert!(!s.lookup_card(&four).await.unwrap().unwrap().0.active);
        s.set_card_active(&four, false).await.unwrap();
        assert!(matches!(
            s.set_card_active(&uid("DE:AD:BE:EF"), true).await,
            Err(Error::NotFound(_))
        ));
        s.remove_card(&four).await.unwrap();
        assert!(s.lookup_card(&four).await.unwrap().is_none());
        assert!(matches!(
            s.remove_card(&four).await,
            Err(Error::NotFound(_))
        ));
        // Deleting a person frees their cards.
        s.delete_person(bob).await.unwrap();
        assert!(s.lookup_card(&ten).await.unwrap().is_none());
        s.add_card(ada, &ten, None).await.unwrap();
    }

    pub async fn an_attempt_is_stored_with_photo_and_outbox_event(t: &TestDb) {
        let s = &t.store;
        let ada = s.add_person("Ada").await.unwrap();
        s.add_card(ada, &uid("04:A2:2B:19"), None).await.unwrap();
        let person = s.person(ada).await.unwrap().unwrap();
        s.outbox_register_sink("front", "mqtt").await.unwrap();

        let new = attempt("front", Some(&person), Outcome::Granted, now());
        let photo = jpeg(7);
        let a = s.record_attempt(&new, Some(&photo)).await.unwrap();
        assert!(a.id > 0);
        let rel = a.photo.clone().unwrap();
        assert!(rel.starts_with("photos/attempts/"), "{rel}");
        let file = s.photo_path(&rel).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), photo.bytes);
        assert!(file.starts_with(t.data_dir()));
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(name.len(), 32, "128 random bits: {name}");

        let back = s.attempt(a.id).await.unwrap().unwrap();
        assert_eq!(back, a);
        assert_eq!(back.card_uid, Some(uid("04:A2:2B:19")));
        assert_eq!(back.similarity, Some(97.25));
        assert_eq!(back.confidence, Some(99.5));
        assert_eq!(back.distance, Some(0.3125));
        assert_eq!(back.timings.capture_ms, Some(150));
        assert_eq!(back.person.as_deref(), Some("Ada"));

        let pending = s.outbox_pending("front", "mqtt", 10).await.unwrap();
        assert_eq!(pending.len(), 1);
        match &pending[0].event {
            Event::Attempt { door_id, attempt } => {
                assert_eq!(door_id, "front");
                assert_eq!(attempt, &a);
            }
            other => panic!("{other:?}"),
        }

        // Without photo, unknown card.
        let mut unknown = attempt("front", None, Outcome::UnknownCard, now());
        unknown.card_uid = Some(uid("DE:AD:BE:EF"));
        let u = s.record_attempt(&unknown, None).await.unwrap();
        assert!(u.id > a.id && u.photo.is_none() && u.person_id.is_none());
        assert_eq!(s.attempt(u.id).await.unwrap().unwrap(), u);
        assert!(s.attempt(u.id + 100).await.unwrap().is_none());
        assert_eq!(s.count_attempts().await.unwrap(), 2);
        assert!(matches!(
            s.record_attempt(&attempt("", None, Outcome::NoFace, now()), None)
                .await,
            Err(Error::Invalid(_))
        ));
    }

    /// Regression: a date filter far in the past made every page walk all newer attempts (65 ms at a
    /// million rows); such pages now follow (time, id), and must still cover each attempt exactly once.
    pub async fn date_filtered_pages_follow_time_without_gaps(t: &TestDb) {
        let s = &t.store;
        let ada = s
            .person(s.add_person("Ada").await.unwrap())
            .await
            .unwrap()
            .unwrap();
        let start = now() - Duration::days(400);
        let mut old = Vec::new();
        for i in 0..23i64 {
            let p = if i % 2 == 0 { Some(&ada) } else { None };
            let a = s
                .record_attempt(
                    &attempt("front", p, Outcome::Granted, start + Duration::hours(i)),
                    None,
                )
                .await
                .unwrap();
            old.push((a.time, a.id, a.person_id));
        }
        // Newer attempts outside the window, and one stored late with an old time (as a spool replay is).
        for i in 0..10i64 {
            s.record_attempt(
                &attempt("front", None, Outcome::NoFace, now() - Duration::minutes(i)),
                None,
            )
            .await
            .unwrap();
        }
        let late = s
            .record_attempt(
                &attempt(
                    "front",
                    Some(&ada),
                    Outcome::Granted,
                    start + Duration::minutes(90),
                ),
                None,
            )
            .await
            .unwrap();
        old.push((late.time, late.id, late.person_id));
        old.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));

        let until = now() - Duration::days(365);
        for person in [None, Some(ada.id)] {
            let want: Vec<i64> = old
                .iter()
                .filter(|r| person.is_none() || r.2 == person)
                .map(|r| r.1)
                .collect();
            let mut seen = Vec::new();
            let mut q = AttemptQuery {
                limit: 5,
                until: Some(until),
                person,
                ..AttemptQuery::default()
            };
            loop {
                let page = s.attempts(&q).await.unwrap();
                if page.is_empty() {
                    break;
                }
                q.before_id = Some(page.last().unwrap().id);
                seen.extend(page.iter().map(|a| a.id));
            }
            assert_eq!(seen, want, "person {person:?}");
        }
    }

    pub async fn attempts_page_newest_first_with_filters(t: &TestDb) {
        let s = &t.store;
        let ada = s
            .person(s.add_person("Ada").await.unwrap())
            .await
            .unwrap()
            .unwrap();
        let bob = s
            .person(s.add_person("Bob").await.unwrap())
            .await
            .unwrap()
            .unwrap();
        let start = now() - Duration::hours(10);
        let mut ids = Vec::new();
        for i in 0..40i64 {
            let (p, o) = match i % 4 {
                0 => (Some(&ada), Outcome::Granted),
                1 => (Some(&ada), Outcome::FaceMismatch),
                2 => (Some(&bob), Outcome::Granted),
                _ => (None, Outcome::UnknownCard),
            };
            let door = if i % 5 == 0 { "back" } else { "front" };
            let a = s
                .record_attempt(&attempt(door, p, o, start + Duration::minutes(i)), None)
                .await
                .unwrap();
            ids.push(a.id);
        }
        let newest_first: Vec<i64> = ids.iter().rev().copied().collect();

        // Keyset paging covers everything exactly once.
        let mut seen = Vec::new();
        let mut q = AttemptQuery {
            limit: 7,
            ..AttemptQuery::default()
        };
        loop {
            let page = s.attempts(&q).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 7);
            q.before_id = Some(page.last().unwrap().id);
            seen.extend(page.iter().map(|a| a.id));
        }
        assert_eq!(seen, newest_first);
        assert_eq!(
            s.attempts(&AttemptQuery::default()).await.unwrap().len(),
            40
        );

        let ada_denied = s
            .attempts(&AttemptQuery {
                person: Some(ada.id),
                outcome: Some(Outcome::FaceMismatch),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ada_denied.len(), 10);
        assert!(ada_denied
            .iter()
            .all(|a| a.person_id == Some(ada.id) && a.outcome == Outcome::FaceMismatch));
        assert!(ada_denied.windows(2).all(|w| w[0].id > w[1].id));

        let granted = s
            .attempts(&AttemptQuery {
                outcome: Some(Outcome::Granted),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(granted.len(), 20);
        let back = s
            .attempts(&AttemptQuery {
                door_id: Some("back".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(back.len(), 8);
        let window = s
            .attempts(&AttemptQuery {
                from: Some(start + Duration::minutes(10)),
                until: Some(start + Duration::minutes(20)),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(window.len(), 10, "from inclusive, until exclusive");
        assert_eq!(window.first().unwrap().time, start + Duration::minutes(19));
        let bob_page = s
            .attempts(&AttemptQuery {
                person: Some(bob.id),
                limit: 3,
                before_id: Some(ids[30]),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            bob_page.iter().map(|a| a.id).collect::<Vec<_>>(),
            [ids[26], ids[22], ids[18]]
        );
    }

    pub async fn photo_paths_cannot_escape(t: &TestDb) {
        let s = &t.store;
        assert!(s.photo_path("photos/attempts/2026-11/0123.jpg").is_ok());
        for bad in [
            "../x",
            "/etc/passwd",
            "photos/../facereko.db",
            "spool.db",
            "photos",
        ] {
            assert!(matches!(s.photo_path(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    pub async fn armed_state_is_per_door_and_persists(t: &TestDb) {
        let s = &t.store;
        assert_eq!(s.armed("front").await.unwrap(), None);
        s.set_armed("front", true).await.unwrap();
        s.set_armed("back", false).await.unwrap();
        assert_eq!(s.armed("front").await.unwrap(), Some(true));
        s.set_armed("front", false).await.unwrap();
        s.set_armed("front", false).await.unwrap();
        assert_eq!(s.armed("front").await.unwrap(), Some(false));
        s.set_armed("front", true).await.unwrap();
        let again = t.reopen().await;
        assert_eq!(again.armed("front").await.unwrap(), Some(true));
        assert_eq!(again.armed("back").await.unwrap(), Some(false));
    }

    pub async fn configuration_set_in_the_web_app_is_kept_per_door(t: &TestDb) {
        let s = &t.store;
        assert!(s.config_overrides("front").await.unwrap().is_empty());
        s.set_config_override("front", "door.unlock_seconds", Some("7.5"))
            .await
            .unwrap();
        s.set_config_override("front", "time_zone", Some("Europe/Paris"))
            .await
            .unwrap();
        s.set_config_override("back", "door.unlock_seconds", Some("3"))
            .await
            .unwrap();
        // The armed flag shares the table and is not configuration.
        s.set_armed("front", true).await.unwrap();
        assert_eq!(
            s.config_overrides("front").await.unwrap(),
            [
                ("door.unlock_seconds".to_string(), "7.5".to_string()),
                ("time_zone".to_string(), "Europe/Paris".to_string())
            ]
        );
        s.set_config_override("front", "door.unlock_seconds", Some("8"))
            .await
            .unwrap();
        s.set_config_override("front", "time_zone", None)
            .await
            .unwrap();
        assert_eq!(
            s.config_overrides("front").await.unwrap(),
            [("door.unlock_seconds".to_string(), "8".to_string())]
        );
        assert_eq!(s.config_overrides("back").await.unwrap().len(), 1);
        assert_eq!(s.armed("front").await.unwrap(), Some(true));
        // Keys and values that the table cannot hold, or that are not keys, are refused.
        for key in ["", "Door.Mode", "a%b", &"k".repeat(60)] {
            assert!(
                s.set_config_override("front", key, Some("1"))
                    .await
                    .is_err(),
                "{key}"
            );
        }
        assert!(s
            .set_config_override("front", "door.mode", Some(&"x".repeat(256)))
            .await
            .is_err());
    }

    pub async fn the_audit_trail_keeps_changes_in_order_with_their_events(t: &TestDb) {
        use facereko_domain::{AuditVia, NewAudit};
        let s = &t.store;
        s.outbox_register_sink("front", "audit-test").await.unwrap();
        let at = |i: i64| now() - Duration::minutes(60 - i);
        for i in 0..30 {
            let e = s
                .record_audit(&NewAudit {
                    time: at(i),
                    door_id: if i % 3 == 0 { "back" } else { "front" }.into(),
                    actor: if i % 2 == 0 { "ada" } else { "grace" }.into(),
                    via: if i % 5 == 0 {
                        AuditVia::Api
                    } else {
                        AuditVia::Web
                    },
                    origin: Some("192.0.2.7".into()),
                    action: if i % 4 == 0 {
                        "card.remove"
                    } else {
                        "person.update"
                    }
                    .into(),
                    target: format!("person {i}"),
                    detail: "line one\nline two".into(),
                })
                .await
                .unwrap();
            assert_eq!(
                e.detail, "line one line two",
                "control characters become spaces"
            );
        }
        let all = s
            .audit_entries(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 30);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert_eq!(all[0].target, "person 29");
        assert_eq!(all[29].via, AuditVia::Api);
        assert_eq!(all[29].origin.as_deref(), Some("192.0.2.7"));
        // Filters: a family of actions, an actor, a door, a time window; counts agree.
        let q = AuditQuery {
            action: Some("card".into()),
            ..Default::default()
        };
        assert_eq!(s.count_audit(&q).await.unwrap(), 8);
        assert!(s
            .audit_entries(&q)
            .await
            .unwrap()
            .iter()
            .all(|e| e.action == "card.remove"));
        let q = AuditQuery {
            action: Some("card.remove".into()),
            actor: Some("ada".into()),
            door_id: Some("front".into()),
            ..Default::default()
        };
        // i in 0..30 with i % 4 == 0, i even, i % 3 != 0: 4, 8, 16, 20, 28.
        assert_eq!(s.count_audit(&q).await.unwrap(), 5);
        let q = AuditQuery {
            from: Some(at(10)),
            until: Some(at(20)),
            ..Default::default()
        };
        assert_eq!(s.count_audit(&q).await.unwrap(), 10);
        // A LIKE wildcard in a filter is only a character.
        let q = AuditQuery {
            action: Some("%".into()),
            ..Default::default()
        };
        assert_eq!(s.count_audit(&q).await.unwrap(), 0);
        // Keyset pages: 30 entries in pages of 7, none twice, none missing.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = s
                .audit_entries(&AuditQuery {
                    before_id: before,
                    limit: 7,
                    ..Default::default()
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            before = page.last().map(|e| e.id);
            seen.extend(page.into_iter().map(|e| e.id));
        }
        assert_eq!(seen.len(), 30);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 30);
        // Each entry is an event of its door's outbox, written with it.
        let events = s.outbox_pending("front", "audit-test", 100).await.unwrap();
        let audited: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Audit { entry, .. } => Some(entry.id),
                _ => None,
            })
            .collect();
        assert_eq!(audited.len(), 20, "the front door's 20 entries");
        // Bad input is refused before it is written.
        let bad = |action: &str, door: &str| NewAudit {
            time: now(),
            door_id: door.into(),
            actor: "x".into(),
            via: AuditVia::Cli,
            origin: None,
            action: action.into(),
            target: String::new(),
            detail: String::new(),
        };
        assert!(s.record_audit(&bad("", "front")).await.is_err());
        assert!(s.record_audit(&bad("Person.Add", "front")).await.is_err());
        assert!(s
            .record_audit(&bad("person.add", "no door!"))
            .await
            .is_err());
        assert_eq!(s.count_audit(&AuditQuery::default()).await.unwrap(), 30);
    }

    pub async fn directory_changes_follow_revisions_and_tombstones(t: &TestDb) {
        use facereko_store::DirectoryChange as C;
        let s = &t.store;
        let r0 = s.directory_rev().await.unwrap();
        let ada = s.add_person("Ada").await.unwrap();
        s.add_card(ada, &uid("04:A2:2B:19"), None).await.unwrap();
        s.add_card(ada, &uid("04:00:00:01"), None).await.unwrap();
        let face = s.add_face(ada, &[1.0, 0.0], "m", None).await.unwrap();
        let r1 = s.directory_rev().await.unwrap();
        assert_eq!(r1, r0 + 4, "one revision per change");

        let whole = s.directory_changes(-1).await.unwrap();
        assert_eq!(whole.rev, r1);
        assert_eq!(whole.changes.len(), 4);
        let revs: Vec<i64> = whole.changes.iter().map(C::rev).collect();
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "in revision order: {revs:?}"
        );

        s.set_card_active(&uid("04:A2:2B:19"), false).await.unwrap();
        s.remove_card(&uid("04:00:00:01")).await.unwrap();
        s.delete_face(face).await.unwrap();
        let step = s.directory_changes(r1).await.unwrap();
        assert_eq!(step.since, r1);
        match &step.changes[..] {
            [C::Card { card, .. }, C::CardDeleted { uid: gone, .. }, C::FaceDeleted { id, .. }] => {
                assert!(!card.active);
                assert_eq!(gone, &uid("04:00:00:01"));
                assert_eq!(*id, face);
            }
            other => panic!("unexpected changes {other:?}"),
        }
        // A failed change takes no revision.
        let r2 = s.directory_rev().await.unwrap();
        assert!(s.remove_card(&uid("04:00:00:01")).await.is_err());
        assert!(s.add_card(ada, &uid("04:A2:2B:19"), None).await.is_err());
        assert_eq!(s.directory_rev().await.unwrap(), r2);
        s.delete_person(ada).await.unwrap();
        let last = s.directory_changes(r2).await.unwrap();
        assert!(matches!(&last.changes[..], [C::PersonDeleted { id, .. }] if *id == ada));
    }

    pub async fn groups_and_holidays_are_directory_rows_read_with_people(t: &TestDb) {
        use chrono::NaiveDate;
        use facereko_domain::GroupId;
        use facereko_store::DirectoryChange as C;
        let s = &t.store;
        let office = WeeklySchedule {
            windows: vec![Window {
                days: vec![1, 2, 3, 4, 5],
                start_minute: 8 * 60,
                end_minute: 18 * 60,
            }],
        };
        // Names are checked like people's; a name is taken once.
        for bad in ["", "  ", &"g".repeat(101), "a\nb"] {
            assert!(
                matches!(s.add_group(bad).await, Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
        let r0 = s.directory_rev().await.unwrap();
        let staff = s.add_group(" Day staff ").await.unwrap();
        let night = s.add_group("Night").await.unwrap();
        assert!(matches!(
            s.add_group("Night").await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.rename_group(staff, "Night").await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.rename_group(GroupId(999_999), "Ghosts").await,
            Err(Error::NotFound(_))
        ));
        s.set_group_schedule(staff, Some(&office)).await.unwrap();
        assert_eq!(
            s.directory_rev().await.unwrap(),
            r0 + 3,
            "failures take none"
        );
        let g = s.group(staff).await.unwrap().unwrap();
        assert_eq!(
            (g.name.as_str(), g.schedule.as_ref()),
            ("Day staff", Some(&office))
        );

        // Many people at once: one revision; an unknown person or group changes nobody.
        let ada = s.add_person("Ada").await.unwrap();
        let bob = s.add_person("Bob").await.unwrap();
        let cy = s.add_person("Cy").await.unwrap();
        s.add_card(ada, &uid("04:A2:2B:19"), None).await.unwrap();
        let before = s.directory_rev().await.unwrap();
        assert!(matches!(
            s.assign_group(Some(staff), &[ada, PersonId(999_999)]).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.assign_group(Some(GroupId(999_999)), &[ada]).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(s.directory_rev().await.unwrap(), before);
        assert!(s.person(ada).await.unwrap().unwrap().group.is_none());
        assert_eq!(
            s.assign_group(Some(staff), &[ada, bob, ada]).await.unwrap(),
            2
        );
        assert_eq!(s.directory_rev().await.unwrap(), before + 1);
        let counts: Vec<(String, i64)> = s
            .groups()
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.group.name, g.members))
            .collect();
        assert_eq!(
            counts,
            [("Day staff".to_string(), 2), ("Night".to_string(), 0)]
        );

        // A person comes with their group's schedule, and follows it without one of their own.
        let (_, p) = s.lookup_card(&uid("04:A2:2B:19")).await.unwrap().unwrap();
        assert_eq!(p.group.as_ref().map(|g| g.id), Some(staff));
        assert_eq!(p.schedule, None);
        assert_eq!(p.effective_schedule(), Some(&office));
        // Saving the person (as the person page does) keeps them in their group.
        s.update_person(&p).await.unwrap();
        assert_eq!(
            s.person(ada).await.unwrap().unwrap().group.map(|g| g.id),
            Some(staff)
        );

        // Holidays: one per date, read with every person.
        let christmas = NaiveDate::from_ymd_opt(2026, 12, 25).unwrap();
        let new_year = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        let h1 = s.add_holiday(new_year, "New Year").await.unwrap();
        let h2 = s.add_holiday(christmas, "Christmas").await.unwrap();
        assert!(matches!(
            s.add_holiday(christmas, "Again").await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.add_holiday(christmas, "").await,
            Err(Error::Invalid(_))
        ));
        let listed = s.holidays().await.unwrap();
        assert_eq!(
            listed.iter().map(|h| (h.id, h.date)).collect::<Vec<_>>(),
            [(h2, christmas), (h1, new_year)]
        );
        assert_eq!(
            s.person(cy).await.unwrap().unwrap().holidays,
            [christmas, new_year]
        );
        let people = s.list_people().await.unwrap();
        assert!(people.iter().all(|p| p.holidays.len() == 2));
        assert_eq!(
            s.person_by_name("Bob")
                .await
                .unwrap()
                .unwrap()
                .group
                .map(|g| g.name),
            Some("Day staff".to_string())
        );

        // Everything above reaches a replica as directory changes.
        let whole = s.directory_changes(-1).await.unwrap();
        let groups = whole
            .changes
            .iter()
            .filter(|c| matches!(c, C::Group { .. }))
            .count();
        let holidays = whole
            .changes
            .iter()
            .filter(|c| matches!(c, C::Holiday { .. }))
            .count();
        assert_eq!((groups, holidays), (2, 2));
        assert!(whole.changes.iter().any(|c| matches!(c,
            C::Person { person, .. } if person.id == bob && person.group.as_ref().map(|g| g.id) == Some(staff))));

        let r1 = s.directory_rev().await.unwrap();
        assert_eq!(s.remove_holiday(h1).await.unwrap().name, "New Year");
        assert!(matches!(
            s.remove_holiday(h1).await,
            Err(Error::NotFound(_))
        ));
        s.set_group_schedule(staff, None).await.unwrap();
        s.delete_group(night).await.unwrap();
        assert!(matches!(
            s.delete_group(night).await,
            Err(Error::NotFound(_))
        ));
        match &s.directory_changes(r1).await.unwrap().changes[..] {
            [C::HolidayDeleted { id, .. }, C::Group { group, .. }, C::GroupDeleted { id: gone, .. }] =>
            {
                assert_eq!(*id, h1);
                assert_eq!((group.id, &group.schedule), (staff, &None));
                assert_eq!(*gone, night);
            }
            other => panic!("unexpected changes {other:?}"),
        }

        // Deleting a group leaves its members in none, with their own schedules.
        let mut b = s.person(bob).await.unwrap().unwrap();
        b.schedule = Some(office.clone());
        s.update_person(&b).await.unwrap();
        s.delete_group(staff).await.unwrap();
        let b = s.person(bob).await.unwrap().unwrap();
        assert_eq!((b.group, b.schedule), (None, Some(office)));
        assert!(s.groups().await.unwrap().is_empty());
        // Out of a group again: `None` takes people out.
        let g = s.add_group("Temps").await.unwrap();
        s.assign_group(Some(g), &[cy]).await.unwrap();
        s.assign_group(None, &[cy]).await.unwrap();
        assert!(s.person(cy).await.unwrap().unwrap().group.is_none());
        assert_eq!(s.assign_group(Some(g), &[]).await.unwrap(), 0);
    }

    /// Writers on several connections while a reader follows by revision: the reader's copy ends equal
    /// to the database (no change is skipped by a revision that commits late).
    pub async fn a_follower_by_revision_misses_no_concurrent_change(t: &TestDb) {
        use facereko_store::DirectoryChange as C;
        let s = t.store.clone();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..15 {
                        let id = s.add_person(&format!("w{w}-{i}")).await.unwrap();
                        if i % 3 == 0 {
                            s.delete_person(id).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        let mut copy = HashSet::new();
        let mut at = -1;
        let follow = |changes: facereko_store::DirectoryChanges, copy: &mut HashSet<PersonId>| {
            for c in changes.changes {
                match c {
                    C::Person { person, .. } => {
                        copy.insert(person.id);
                    }
                    C::PersonDeleted { id, .. } => {
                        copy.remove(&id);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            changes.rev
        };
        while !writers.iter().all(|w| w.is_finished()) {
            at = follow(s.directory_changes(at).await.unwrap(), &mut copy);
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        for w in writers {
            w.await.unwrap();
        }
        follow(s.directory_changes(at).await.unwrap(), &mut copy);
        let truth: HashSet<PersonId> = s
            .list_people()
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(truth.len(), 40);
        assert_eq!(copy, truth);
    }

    /// `fleet.share_photos`: an enrolment photo kept in the database too is readable where the file is
    /// not (another door's data directory); one not shared is not; deleting the face deletes the copy.
    pub async fn a_shared_enrolment_photo_is_readable_from_another_data_directory(t: &TestDb) {
        let sharing = Store::open_with(
            &t.url,
            t.data_dir(),
            &facereko_store::OpenOptions {
                share_face_photos: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let elsewhere_dir = tempfile::tempdir().unwrap();
        let elsewhere = Store::open(&t.url, elsewhere_dir.path()).await.unwrap();
        let ada = t.store.add_person("Ada").await.unwrap();
        let photo = jpeg(7);
        let shared = sharing
            .add_face(ada, &[1.0, 0.0], "m", Some(&photo))
            .await
            .unwrap();
        let local = t
            .store
            .add_face(ada, &[0.0, 1.0], "m", Some(&photo))
            .await
            .unwrap();
        let faces = t.store.faces(Some(ada)).await.unwrap();
        let path_of = |id: i64| {
            faces
                .iter()
                .find(|f| f.id == id)
                .unwrap()
                .photo
                .clone()
                .unwrap()
        };
        let (shared_path, local_path) = (path_of(shared), path_of(local));
        assert_eq!(
            elsewhere.read_photo(&shared_path).await.unwrap().bytes,
            photo.bytes
        );
        assert!(
            elsewhere.read_photo(&local_path).await.is_err(),
            "not shared"
        );
        assert_eq!(
            t.store.read_photo(&local_path).await.unwrap().bytes,
            photo.bytes
        );
        sharing.delete_face(shared).await.unwrap();
        assert_eq!(
            elsewhere.shared_face_photo(&shared_path).await.unwrap(),
            None
        );
        sharing.close().await;
        elsewhere.close().await;
    }

    pub async fn faces_round_trip_and_bump_the_version(t: &TestDb) {
        let s = &t.store;
        let ada = s.add_person("Ada").await.unwrap();
        let bob = s.add_person("Bob").await.unwrap();
        let v0 = s.faces_version().await.unwrap();
        let emb: Vec<f32> = (0..128).map(|i| (i as f32) / 128.0 - 0.5).collect();
        let f1 = s
            .add_face(ada, &emb, "dlib-resnet-v1", Some(&jpeg(1)))
            .await
            .unwrap();
        let v1 = s.faces_version().await.unwrap();
        assert_ne!(v0, v1);
        let f2 = s
            .add_face(bob, &[1.0, -2.5], "dlib-resnet-v1", None)
            .await
            .unwrap();
        let all = s.faces(None).await.unwrap();
        assert_eq!(all.iter().map(|f| f.id).collect::<Vec<_>>(), [f1, f2]);
        assert_eq!(all[0].embedding, emb);
        assert_eq!(all[0].model_id, "dlib-resnet-v1");
        let photo = s.photo_path(all[0].photo.as_deref().unwrap()).unwrap();
        assert_eq!(std::fs::read(&photo).unwrap(), jpeg(1).bytes);
        assert_eq!(s.faces(Some(bob)).await.unwrap().len(), 1);
        assert!(matches!(
            s.add_face(ada, &[], "m", None).await,
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            s.add_face(ada, &[f32::NAN], "m", None).await,
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            s.add_face(PersonId(999), &[1.0], "m", None).await,
            Err(Error::NotFound(_))
        ));

        let v2 = s.faces_version().await.unwrap();
        s.delete_face(f1).await.unwrap();
        assert!(!photo.exists(), "the enrolment photo goes with the face");
        let v3 = s.faces_version().await.unwrap();
        assert!(v3 != v2 && v3 != v1);
        assert!(matches!(s.delete_face(f1).await, Err(Error::NotFound(_))));
        // Another door sharing the database sees the same version.
        assert_eq!(t.reopen().await.faces_version().await.unwrap(), v3);
        s.delete_person(bob).await.unwrap();
        assert!(s.faces(None).await.unwrap().is_empty());
        assert_ne!(s.faces_version().await.unwrap(), v3);
    }

    pub async fn outbox_cursors_per_sink_and_door(t: &TestDb) {
        let s = &t.store;
        let ev = |armed| Event::Armed {
            door_id: "front".into(),
            armed,
            time: now(),
        };
        let old = s.enqueue_event("front", &ev(true)).await.unwrap();
        s.outbox_register_sink("front", "mqtt").await.unwrap();
        assert!(
            s.outbox_pending("front", "mqtt", 10)
                .await
                .unwrap()
                .is_empty(),
            "no history replay"
        );
        let a = s.enqueue_event("front", &ev(false)).await.unwrap();
        let b = s.enqueue_event("front", &ev(true)).await.unwrap();
        let other = s
            .enqueue_event(
                "back",
                &Event::Armed {
                    door_id: "back".into(),
                    armed: true,
                    time: now(),
                },
            )
            .await
            .unwrap();
        assert!(old < a && a < b && b < other);
        s.outbox_register_sink("front", "email").await.unwrap();
        let c = s.enqueue_event("front", &ev(false)).await.unwrap();

        let p = s.outbox_pending("front", "mqtt", 10).await.unwrap();
        assert_eq!(p.iter().map(|e| e.id).collect::<Vec<_>>(), [a, b, c]);
        assert_eq!(p[0].event, ev(false).clone_with_time(&p[0].event));
        assert_eq!(s.outbox_pending("front", "mqtt", 2).await.unwrap().len(), 2);
        assert_eq!(
            s.outbox_pending("front", "email", 10)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            [c]
        );
        assert!(matches!(
            s.outbox_pending("front", "sms", 10).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.outbox_ack("front", "sms", 1).await,
            Err(Error::NotFound(_))
        ));

        s.outbox_ack("front", "mqtt", b).await.unwrap();
        s.outbox_ack("front", "mqtt", a).await.unwrap(); // never backwards
        assert_eq!(
            s.outbox_pending("front", "mqtt", 10)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            [c]
        );
        s.outbox_register_sink("front", "mqtt").await.unwrap(); // re-registering keeps the cursor
        assert_eq!(
            s.outbox_pending("front", "mqtt", 10).await.unwrap().len(),
            1
        );

        let stats = s.outbox_stats("front").await.unwrap();
        assert_eq!(
            stats
                .iter()
                .map(|x| (x.sink.as_str(), x.pending))
                .collect::<Vec<_>>(),
            [("email", 1), ("mqtt", 1)]
        );
        assert!(stats.iter().all(|x| x.oldest_pending.is_some()));

        // Prune removes only what every sink of the door acknowledged.
        let future = now() + Duration::days(1);
        let pruned = s.outbox_prune(future).await.unwrap();
        // front: old, a, b (acked by both: email started at b); back: no sinks → its entry goes too.
        assert_eq!(pruned, 4);
        assert_eq!(
            s.outbox_pending("front", "mqtt", 10).await.unwrap().len(),
            1
        );
        s.outbox_ack("front", "mqtt", c).await.unwrap();
        s.outbox_ack("front", "email", c).await.unwrap();
        assert!(s
            .outbox_stats("front")
            .await
            .unwrap()
            .iter()
            .all(|x| x.pending == 0 && x.oldest_pending.is_none()));
        assert_eq!(
            s.outbox_prune(now() - Duration::days(1)).await.unwrap(),
            0,
            "too recent"
        );
        assert_eq!(s.outbox_prune(future).await.unwrap(), 1);
        // Ids keep growing after a prune.
        assert!(s.enqueue_event("front", &ev(true)).await.unwrap() > c);
    }

    pub async fn concurrent_writers_lose_nothing_and_keep_outbox_order(t: &TestDb) {
        let s = &t.store;
        let other = t.reopen().await; // a second process on the same database
        s.outbox_register_sink("front", "mqtt").await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let store = if w % 2 == 0 { s.clone() } else { other.clone() };
            tasks.push(tokio::spawn(async move {
                for i in 0..15 {
                    let photo = (i % 3 == 0).then(|| jpeg(i as u8));
                    store
                        .record_attempt(
                            &attempt("front", None, Outcome::UnknownCard, now()),
                            photo.as_ref(),
                        )
                        .await
                        .unwrap();
                    if i % 5 == 0 {
                        store.set_armed("front", i % 2 == 0).await.unwrap();
                    }
                }
            }));
        }
        // A sink reading while writers write must never skip an entry.
        let mut delivered = Vec::new();
        let reader = s.clone();
        for _ in 0..200 {
            let page = reader.outbox_pending("front", "mqtt", 7).await.unwrap();
            if let Some(last) = page.last() {
                reader.outbox_ack("front", "mqtt", last.id).await.unwrap();
            }
            delivered.extend(page.iter().map(|e| e.id));
            if delivered.len() == 60 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        delivered.extend(
            s.outbox_pending("front", "mqtt", 100)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id),
        );
        assert_eq!(delivered.len(), 60, "every attempt's event, once");
        assert!(delivered.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.count_attempts().await.unwrap(), 60);
        let photos: HashSet<_> = s
            .attempts(&AttemptQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter_map(|a| a.photo)
            .collect();
        assert_eq!(photos.len(), 20);
    }

    pub async fn a_photo_without_its_row_is_invisible_and_swept(t: &TestDb) {
        let s = &t.store;
        let kept = s
            .record_attempt(
                &attempt("front", None, Outcome::NoFace, now()),
                Some(&jpeg(1)),
            )
            .await
            .unwrap();
        let kept_path = s.photo_path(kept.photo.as_deref().unwrap()).unwrap();
        let face = s
            .add_face(
                s.add_person("Ada").await.unwrap(),
                &[1.0],
                "m",
                Some(&jpeg(2)),
            )
            .await
            .unwrap();
        let face_path = s
            .photo_path(s.faces(None).await.unwrap()[0].photo.as_deref().unwrap())
            .unwrap();
        // A crash between the photo's rename and the row's commit leaves a file named after a uuid no
        // row has; a crash mid-write leaves a temp file.
        let dir = kept_path.parent().unwrap();
        let orphan = dir.join("0123456789abcdef0123456789abcdef.jpg");
        std::fs::write(&orphan, jpeg(3).bytes).unwrap();
        let temp = dir.join(".fedcba9876543210fedcba9876543210.jpg.tmp");
        std::fs::write(&temp, b"partial").unwrap();
        let stray_face = t
            .data_dir()
            .join("photos/faces/00000000000000000000000000000000.jpg");
        std::fs::write(&stray_face, jpeg(4).bytes).unwrap();
        // Invisible: no attempt names it.
        assert!(s
            .attempts(&AttemptQuery::default())
            .await
            .unwrap()
            .iter()
            .all(|a| a.photo.as_deref()
                != Some("photos/attempts/x/0123456789abcdef0123456789abcdef.jpg")));

        // Young files are left alone: their row may be committing right now.
        assert_eq!(
            s.sweep_orphan_photos(now() - Duration::hours(1))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            s.sweep_orphan_photos(now() + Duration::minutes(1))
                .await
                .unwrap(),
            3
        );
        assert!(!orphan.exists() && !temp.exists() && !stray_face.exists());
        assert!(kept_path.exists() && face_path.exists());
        let _ = face;
    }

    pub async fn retention_deletes_old_photos_per_outcome(t: &TestDb) {
        let s = &t.store;
        let t0 = now();
        let old = t0 - Duration::days(100);
        let granted_old = s
            .record_attempt(
                &attempt("front", None, Outcome::Granted, old),
                Some(&jpeg(1)),
            )
            .await
            .unwrap();
        let denied_old = s
            .record_attempt(
                &attempt("front", None, Outcome::FaceMismatch, old),
                Some(&jpeg(2)),
            )
            .await
            .unwrap();
        let nf_mid = s
            .record_attempt(
                &attempt("front", None, Outcome::NoFace, t0 - Duration::days(20)),
                Some(&jpeg(3)),
            )
            .await
            .unwrap();
        let recent = s
            .record_attempt(
                &attempt("front", None, Outcome::FaceMismatch, t0),
                Some(&jpeg(4)),
            )
            .await
            .unwrap();
        let policy = RetentionPolicy {
            photo_days: 30,
            outcomes: [(Outcome::Granted, 0), (Outcome::NoFace, 10)]
                .into_iter()
                .collect(),
            every_hours: 24,
        };
        let report = s.purge_photos(&policy, t0).await.unwrap();
        assert_eq!(report.photos_deleted, 2);
        let gone = |a: &facereko_domain::Attempt| {
            !s.photo_path(a.photo.as_deref().unwrap()).unwrap().exists()
        };
        assert!(gone(&denied_old) && gone(&nf_mid));
        assert!(!gone(&granted_old) && !gone(&recent));
        assert_eq!(
            s.attempt(denied_old.id).await.unwrap().unwrap().photo,
            None,
            "row kept, photo cleared"
        );
        assert_eq!(s.attempt(nf_mid.id).await.unwrap().unwrap().photo, None);
        assert_eq!(
            s.attempt(granted_old.id).await.unwrap().unwrap().photo,
            granted_old.photo,
            "0 = forever"
        );
        assert_eq!(s.count_attempts().await.unwrap(), 4);
        assert_eq!(
            s.purge_photos(&policy, t0).await.unwrap().photos_deleted,
            0,
            "idempotent"
        );
    }

    pub async fn accounts_sessions_and_tokens(t: &TestDb) {
        let s = &t.store;
        let ada = s.add_person("Ada").await.unwrap();
        let hash = hash_password("correct horse");
        let new = NewAccount {
            username: "ada".into(),
            password_hash: hash.clone(),
            role: Role::Admin,
            person_id: Some(ada),
            card_uid: Some(uid("04:A2:2B:19")),
            must_change_password: false,
        };
        let id = s.add_account(&new).await.unwrap();
        assert!(matches!(s.add_account(&new).await, Err(Error::Conflict(_))));
        assert!(matches!(
            s.add_account(&NewAccount {
                username: "bad name".into(),
                ..new.clone()
            })
            .await,
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            s.add_account(&NewAccount {
                username: "plain".into(),
                password_hash: "hunter2".into(),
                ..new.clone()
            })
            .await,
            Err(Error::Invalid(_))
        ));
        let acc = s.account_by_username("ada").await.unwrap().unwrap();
        assert_eq!(
            (acc.id, acc.role, acc.person_id, acc.failed_logins),
            (id, Role::Admin, Some(ada), 0)
        );
        assert_eq!(acc.card_uid, Some(uid("04:A2:2B:19")));
        assert!(verify_password("correct horse", &acc.password_hash));
        assert!(
            !format!("{acc:?}").contains("argon2"),
            "hash redacted in Debug"
        );

        let until = now() + Duration::minutes(15);
        assert_eq!(s.record_login_failure(id, 3, until).await.unwrap(), 1);
        assert_eq!(s.record_login_failure(id, 3, until).await.unwrap(), 2);
        assert!(!s.account(id).await.unwrap().unwrap().is_locked(now()));
        assert_eq!(s.record_login_failure(id, 3, until).await.unwrap(), 3);
        let locked = s.account(id).await.unwrap().unwrap();
        assert!(locked.is_locked(now()) && !locked.is_locked(until));
        s.record_login_success(id).await.unwrap();
        let ok = s.account(id).await.unwrap().unwrap();
        assert!(ok.failed_logins == 0 && ok.locked_until.is_none() && ok.last_login.is_some());

        s.update_account(
            id,
            &AccountUpdate {
                role: Some(Role::Viewer),
                person_id: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let v = s.account(id).await.unwrap().unwrap();
        assert_eq!((v.role, v.person_id), (Role::Viewer, None));
        assert!(matches!(
            s.update_account(999, &AccountUpdate::default()).await,
            Err(Error::NotFound(_))
        ));

        let token = s.create_session(id, Duration::hours(1)).await.unwrap();
        let (session, who) = s.session(&token).await.unwrap().unwrap();
        assert_eq!((session.account_id, who.username.as_str()), (id, "ada"));
        assert!(s.session("not-a-token").await.unwrap().is_none());
        let expired = s.create_session(id, Duration::seconds(-1)).await.unwrap();
        assert!(s.session(&expired).await.unwrap().is_none(), "expired");
        s.delete_session(&token).await.unwrap();
        assert!(s.session(&token).await.unwrap().is_none());
        // A password change ends every other session of the account, not the one it was made in.
        let here = s.create_session(id, Duration::hours(1)).await.unwrap();
        let elsewhere = s.create_session(id, Duration::hours(1)).await.unwrap();
        // The other live one, and the expired one made above.
        assert_eq!(s.delete_other_sessions_of(id, &here).await.unwrap(), 2);
        assert!(s.session(&here).await.unwrap().is_some());
        assert!(s.session(&elsewhere).await.unwrap().is_none());
        s.delete_session(&here).await.unwrap();

        let (tid, api) = s
            .create_api_token(id, "home assistant", None)
            .await
            .unwrap();
        let (meta, who) = s.api_token(&api).await.unwrap().unwrap();
        assert_eq!(
            (meta.id, meta.name.as_str(), who.id),
            (tid, "home assistant", id)
        );
        assert!(meta.last_used.is_some());
        assert_eq!(s.api_tokens(Some(id)).await.unwrap().len(), 1);
        s.revoke_api_token(tid).await.unwrap();
        assert!(s.api_token(&api).await.unwrap().is_none());

        let live = s.create_session(id, Duration::hours(1)).await.unwrap();
        s.create_api_token(id, "x", None).await.unwrap();
        s.delete_account(id).await.unwrap();
        assert!(
            s.session(&live).await.unwrap().is_none(),
            "sessions go with the account"
        );
        assert!(s.api_tokens(None).await.unwrap().is_empty());
        assert!(s.list_accounts().await.unwrap().is_empty());
    }

    pub async fn invitations_are_single_use_and_expire(t: &TestDb) {
        let s = &t.store;
        let ada = s.add_person("Ada").await.unwrap();
        let (inv, code) = s.create_invitation(ada, Duration::hours(48)).await.unwrap();
        assert_eq!(inv.person_id, ada.0);
        assert_eq!(s.invitation(&code).await.unwrap().unwrap().id, inv.id);
        assert!(s.invitation("not-the-code").await.unwrap().is_none());
        assert_eq!(s.pending_invitations().await.unwrap().len(), 1);
        assert!(s.use_invitation(inv.id).await.unwrap());
        assert!(!s.use_invitation(inv.id).await.unwrap(), "used once only");
        assert!(s.invitation(&code).await.unwrap().is_none());
        assert!(s.pending_invitations().await.unwrap().is_empty());

        let (old, old_code) = s
            .create_invitation(ada, Duration::seconds(-1))
            .await
            .unwrap();
        assert!(s.invitation(&old_code).await.unwrap().is_none(), "expired");
        assert!(!s.use_invitation(old.id).await.unwrap());

        let (gone, gone_code) = s.create_invitation(ada, Duration::hours(1)).await.unwrap();
        s.revoke_invitation(gone.id).await.unwrap();
        assert!(s.invitation(&gone_code).await.unwrap().is_none());
        assert!(s.revoke_invitation(gone.id).await.is_err());

        let (_, with_person) = s.create_invitation(ada, Duration::hours(1)).await.unwrap();
        s.delete_person(ada).await.unwrap();
        assert!(
            s.invitation(&with_person).await.unwrap().is_none(),
            "goes with the person"
        );
        assert!(s.create_invitation(ada, Duration::hours(1)).await.is_err());
    }
}

/// Equality of events up to their timestamps (set inside the test at different instants).
trait SameEvent {
    fn clone_with_time(&self, other: &Event) -> Event;
}

impl SameEvent for Event {
    fn clone_with_time(&self, other: &Event) -> Event {
        match (self, other) {
            (Event::Armed { door_id, armed, .. }, Event::Armed { time, .. }) => Event::Armed {
                door_id: door_id.clone(),
                armed: *armed,
                time: *time,
            },
            _ => self.clone(),
        }
    }
}

macro_rules! case_list {
    ($m:ident) => {
        $m!(
            migrations_apply_from_empty_and_rerun,
            a_newer_schema_is_refused,
            people_round_trip,
            cards_belong_to_one_person,
            an_attempt_is_stored_with_photo_and_outbox_event,
            attempts_page_newest_first_with_filters,
            date_filtered_pages_follow_time_without_gaps,
            photo_paths_cannot_escape,
            armed_state_is_per_door_and_persists,
            faces_round_trip_and_bump_the_version,
            directory_changes_follow_revisions_and_tombstones,
            the_audit_trail_keeps_changes_in_order_with_their_events,
            groups_and_holidays_are_directory_rows_read_with_people,
            configuration_set_in_the_web_app_is_kept_per_door,
            a_shared_enrolment_photo_is_readable_from_another_data_directory,
            a_follower_by_revision_misses_no_concurrent_change,
            outbox_cursors_per_sink_and_door,
            concurrent_writers_lose_nothing_and_keep_outbox_order,
            a_photo_without_its_row_is_invisible_and_swept,
            retention_deletes_old_photos_per_outcome,
            accounts_sessions_and_tokens,
            invitations_are_single_use_and_expire
        );
    };
}

macro_rules! sqlite_cases {
    ($($name:ident),*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = TestDb::sqlite().await;
                    cases::$name(&t).await;
                    t.finish().await;
                }
            )*
        }
    };
}

macro_rules! mysql_cases {
    ($($name:ident),*) => {
        mod mysql {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs FACEREKO_TEST_MYSQL_URL (set by .ci/run)"]
                async fn $name() {
                    let t = TestDb::mysql().await;
                    cases::$name(&t).await;
                    t.finish().await;
                }
            )*
        }
    };
}

macro_rules! postgres_cases {
    ($($name:ident),*) => {
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs FACEREKO_TEST_POSTGRES_URL (set by .ci/run)"]
                async fn $name() {
                    let t = TestDb::postgres().await;
                    cases::$name(&t).await;
                    t.finish().await;
                }
            )*
        }
    };
}

case_list!(sqlite_cases);
case_list!(mysql_cases);
case_list!(postgres_cases);

#[tokio::test]
async fn an_in_memory_store_works_for_tools_and_tests() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open("sqlite::memory:", dir.path()).await.unwrap();
    let id = s.add_person("Ada").await.unwrap();
    s.record_attempt(&attempt("front", None, Outcome::NoFace, now()), None)
        .await
        .unwrap();
    assert_eq!(s.person(id).await.unwrap().unwrap().name, "Ada");
    assert_eq!(s.count_attempts().await.unwrap(), 1);
}

#[tokio::test]
async fn unknown_url_schemes_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open("oracle://scott:tiger@db/orcl", dir.path())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("tiger"), "{err}");
    assert!(err.to_string().contains("sqlite://"), "{err}");
}
