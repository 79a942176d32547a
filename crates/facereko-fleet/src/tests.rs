//! The replica against a central store on SQLite (the SQL that reads changes is the same on every
//! backend; `crates/facereko/tests/fleet.rs` runs doors against MariaDB and PostgreSQL).

use super::*;
use chrono::TimeZone;
use facereko_domain::{WeeklySchedule, Window};

struct Site {
    _dir: tempfile::TempDir,
    central: Store,
    replica: Arc<Replica>,
}

async fn site(config: FleetConfig) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let central_dir = dir.path().join("central");
    let door_dir = dir.path().join("door");
    let central = Store::open(&Store::default_url(&central_dir), &central_dir)
        .await
        .unwrap();
    let replica = Replica::open("front", central.clone(), &door_dir, &config)
        .await
        .unwrap();
    Site {
        _dir: dir,
        central,
        replica,
    }
}

fn uid(s: &str) -> CardUid {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_first_sync_copies_everything_then_only_changes_reach_the_replica() {
    let s = site(FleetConfig::default()).await;
    let ada = s.central.add_person("Ada").await.unwrap();
    s.central
        .add_card(ada, &uid("04:A2:2B:19"), Some("blue"))
        .await
        .unwrap();
    let face = s
        .central
        .add_face(ada, &[0.5, -0.25], "model-a", None)
        .await
        .unwrap();
    let store = FleetStore::new(s.replica.clone());
    assert!(
        matches!(store.directory(), Directory::Refused(_)),
        "no copy yet"
    );

    let first = s.replica.sync().await.unwrap().expect("a whole copy");
    assert_eq!((first.from, first.changes), (-1, 3));
    let (card, person) = store
        .lookup_card(&uid("04:A2:2B:19"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (card.label.as_deref(), person.name.as_str()),
        (Some("blue"), "Ada")
    );
    let faces = s.replica.local().faces(None).await.unwrap();
    assert_eq!(faces.len(), 1);
    assert_eq!(
        (faces[0].id, &faces[0].embedding[..]),
        (face, &[0.5, -0.25][..])
    );
    assert_eq!(store.directory(), Directory::Trusted);

    // Nothing changed: the check confirms the copy without applying anything.
    assert_eq!(s.replica.sync().await.unwrap(), None);

    // A schedule, a disabled card, a second card, then one removed.
    let mut p = s.central.person(ada).await.unwrap().unwrap();
    p.schedule = Some(WeeklySchedule {
        windows: vec![Window {
            days: vec![1, 2, 3, 4, 5],
            start_minute: 8 * 60,
            end_minute: 18 * 60,
        }],
    });
    s.central.update_person(&p).await.unwrap();
    s.central
        .set_card_active(&uid("04:A2:2B:19"), false)
        .await
        .unwrap();
    s.central
        .add_card(ada, &uid("04:00:00:01"), None)
        .await
        .unwrap();
    s.central.remove_card(&uid("04:00:00:01")).await.unwrap();
    let v0 = s.replica.local().faces_version().await.unwrap();
    let step = s.replica.sync().await.unwrap().unwrap();
    assert_eq!(step.from, first.to);
    // Only the rows that changed: the person, the card, the added-then-removed card's tombstone.
    assert_eq!(step.changes, 3);
    let (card, person) = store
        .lookup_card(&uid("04:A2:2B:19"))
        .await
        .unwrap()
        .unwrap();
    assert!(!card.active);
    assert_eq!(person.schedule, p.schedule);
    assert!(store
        .lookup_card(&uid("04:00:00:01"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.replica.local().faces_version().await.unwrap(),
        v0,
        "faces did not change"
    );

    // Removing the person takes their cards and faces from the replica too, and the gallery notices.
    s.central.delete_person(ada).await.unwrap();
    s.replica.sync().await.unwrap().unwrap();
    assert!(store
        .lookup_card(&uid("04:A2:2B:19"))
        .await
        .unwrap()
        .is_none());
    assert!(s.replica.local().faces(None).await.unwrap().is_empty());
    assert_ne!(s.replica.local().faces_version().await.unwrap(), v0);
}

#[tokio::test]
async fn a_card_given_back_and_names_swapped_end_up_as_in_the_central_database() {
    let s = site(FleetConfig::default()).await;
    let a = s.central.add_person("Ada").await.unwrap();
    let b = s.central.add_person("Bob").await.unwrap();
    let card = uid("04:11:22:33");
    s.central.add_card(a, &card, None).await.unwrap();
    s.replica.sync().await.unwrap();

    // The card moves from Ada to Bob, and the two swap names, all between two syncs.
    s.central.remove_card(&card).await.unwrap();
    s.central.add_card(b, &card, Some("moved")).await.unwrap();
    let rename = |id, name: &str| {
        let central = s.central.clone();
        let name = name.to_string();
        async move {
            let mut p = central.person(id).await.unwrap().unwrap();
            p.name = name;
            central.update_person(&p).await.unwrap();
        }
    };
    rename(a, "tmp").await;
    rename(b, "Ada").await;
    rename(a, "Bob").await;
    s.replica.sync().await.unwrap().unwrap();

    let local = s.replica.local();
    let (c, owner) = local.lookup_card(&card).await.unwrap().unwrap();
    assert_eq!((owner.id, c.label.as_deref()), (b, Some("moved")));
    assert_eq!(local.person(a).await.unwrap().unwrap().name, "Bob");
    assert_eq!(local.person(b).await.unwrap().unwrap().name, "Ada");
}

#[tokio::test]
async fn group_schedules_and_holidays_reach_the_replica_and_change_what_the_door_decides() {
    use chrono::NaiveDate;
    let s = site(FleetConfig::default()).await;
    let store = FleetStore::new(s.replica.clone());
    let hours = |from: u16, to: u16| WeeklySchedule {
        windows: vec![Window {
            days: vec![1, 2, 3, 4, 5],
            start_minute: from * 60,
            end_minute: to * 60,
        }],
    };
    let cleaners = s.central.add_group("Cleaners").await.unwrap();
    s.central
        .set_group_schedule(cleaners, Some(&hours(8, 18)))
        .await
        .unwrap();
    let ada = s.central.add_person("Ada").await.unwrap();
    let bob = s.central.add_person("Bob").await.unwrap();
    s.central
        .add_card(ada, &uid("04:A2:2B:19"), None)
        .await
        .unwrap();
    s.central
        .assign_group(Some(cleaners), &[ada, bob])
        .await
        .unwrap();
    s.replica.sync().await.unwrap().unwrap();

    // Tuesday 2026-12-01, read as local time (the door's zone is not the point here).
    let tuesday = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let admits = |hour: u32| {
        let store = store.clone();
        async move {
            let (_, p) = store
                .lookup_card(&uid("04:A2:2B:19"))
                .await
                .unwrap()
                .unwrap();
            p.admits_at(now, tuesday.and_hms_opt(hour, 0, 0).unwrap())
        }
    };
    assert!(
        admits(12).await && !admits(20).await,
        "the group's day hours"
    );

    // The group moves to evenings: the door follows after a sync, not before.
    s.central
        .set_group_schedule(cleaners, Some(&hours(18, 23)))
        .await
        .unwrap();
    assert!(admits(12).await, "not synced yet");
    let step = s.replica.sync().await.unwrap().unwrap();
    assert_eq!(step.changes, 1, "only the group row");
    assert!(
        !admits(12).await && admits(20).await,
        "the group's new hours"
    );

    // A holiday closes the day for everyone with a schedule, and removing it opens it again.
    let holiday = s
        .central
        .add_holiday(tuesday, "Founders' day")
        .await
        .unwrap();
    s.replica.sync().await.unwrap().unwrap();
    assert!(!admits(20).await, "a holiday");
    assert_eq!(s.replica.local().holidays().await.unwrap().len(), 1);
    s.central.remove_holiday(holiday).await.unwrap();
    s.replica.sync().await.unwrap().unwrap();
    assert!(admits(20).await);
    assert!(s.replica.local().holidays().await.unwrap().is_empty());

    // Groups swap names, one is deleted and its name taken again, all between two syncs.
    let night = s.central.add_group("Night").await.unwrap();
    s.replica.sync().await.unwrap().unwrap();
    s.central.rename_group(cleaners, "tmp").await.unwrap();
    s.central.rename_group(night, "Cleaners").await.unwrap();
    s.central.rename_group(cleaners, "Night").await.unwrap();
    let temps = s.central.add_group("Temps").await.unwrap();
    s.central.assign_group(Some(temps), &[bob]).await.unwrap();
    s.central.delete_group(temps).await.unwrap();
    let temps2 = s.central.add_group("Temps").await.unwrap();
    s.replica.sync().await.unwrap().unwrap();
    let local = s.replica.local();
    let names = |gs: Vec<facereko_store::GroupSummary>| {
        gs.into_iter()
            .map(|g| (g.group.id, g.group.name, g.members))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(local.groups().await.unwrap()),
        names(s.central.groups().await.unwrap())
    );
    assert_eq!(
        names(local.groups().await.unwrap()),
        [
            (night, "Cleaners".to_string(), 0),
            (cleaners, "Night".to_string(), 1),
            (temps2, "Temps".to_string(), 0)
        ]
    );
    assert!(local.person(bob).await.unwrap().unwrap().group.is_none());

    // Deleting Ada's group: she has no schedule left at the door.
    s.central.delete_group(cleaners).await.unwrap();
    s.replica.sync().await.unwrap().unwrap();
    assert!(admits(3).await, "any time");
}

/// Regression: a whole copy failed on a foreign key when a card was given before its owner changed
/// (rows come at their latest revision, so the card came before its owner).
#[tokio::test]
async fn a_whole_copy_takes_rows_that_come_before_the_rows_they_name() {
    let s = site(FleetConfig::default()).await;
    let ada = s.central.add_person("Ada").await.unwrap();
    s.central
        .add_card(ada, &uid("04:A2:2B:19"), None)
        .await
        .unwrap();
    let mut p = s.central.person(ada).await.unwrap().unwrap();
    p.name = "Ada L.".into();
    s.central.update_person(&p).await.unwrap();
    let night = s.central.add_group("Night").await.unwrap();
    s.central.assign_group(Some(night), &[ada]).await.unwrap();
    s.central.rename_group(night, "Nights").await.unwrap();
    s.replica.sync().await.unwrap().unwrap();
    let (_, owner) = s
        .replica
        .local()
        .lookup_card(&uid("04:A2:2B:19"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.name, "Ada L.");
    assert_eq!(owner.group.map(|g| g.name), Some("Nights".to_string()));
}

#[tokio::test]
async fn a_door_keeps_deciding_from_its_copy_while_the_central_database_is_gone() {
    let s = site(FleetConfig::default()).await;
    let ada = s.central.add_person("Ada").await.unwrap();
    s.central
        .add_card(ada, &uid("04:A2:2B:19"), None)
        .await
        .unwrap();
    s.replica.sync().await.unwrap();
    let store = FleetStore::new(s.replica.clone());

    s.central.close().await;
    let err = s.replica.sync().await.unwrap_err();
    assert!(s.replica.status().error.is_some(), "{err}");
    let (_, person) = store
        .lookup_card(&uid("04:A2:2B:19"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(person.id, ada);
    assert_eq!(store.directory(), Directory::Trusted, "young enough");
    assert!(s
        .replica
        .status()
        .summary(Utc::now())
        .contains("central database"));
}

#[tokio::test]
async fn the_copy_survives_a_restart_with_its_age() {
    let dir = tempfile::tempdir().unwrap();
    let central = Store::open(
        &Store::default_url(&dir.path().join("c")),
        &dir.path().join("c"),
    )
    .await
    .unwrap();
    let ada = central.add_person("Ada").await.unwrap();
    central
        .add_card(ada, &uid("04:A2:2B:19"), None)
        .await
        .unwrap();
    let door = dir.path().join("door");
    let config = FleetConfig::default();
    let r = Replica::open("front", central.clone(), &door, &config)
        .await
        .unwrap();
    r.sync().await.unwrap();
    let synced = r.status().synced_at.unwrap();
    drop(r);
    let again = Replica::open("front", central.clone(), &door, &config)
        .await
        .unwrap();
    let st = again.status();
    assert_eq!(st.synced_at, Some(synced));
    assert!(st.rev.unwrap() > 0);
    assert!(again
        .local()
        .lookup_card(&uid("04:A2:2B:19"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_central_database_behind_the_replica_is_copied_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, c2) = (dir.path().join("c1"), dir.path().join("c2"));
    let first = Store::open(&Store::default_url(&c1), &c1).await.unwrap();
    let a = first.add_person("Ada").await.unwrap();
    first.add_card(a, &uid("04:00:00:0A"), None).await.unwrap();
    first.add_card(a, &uid("04:00:00:0B"), None).await.unwrap();
    let door = dir.path().join("door");
    let r = Replica::open("front", first, &door, &FleetConfig::default())
        .await
        .unwrap();
    r.sync().await.unwrap();
    drop(r);
    // An older database (restored from a backup): fewer revisions, other people.
    let restored = Store::open(&Store::default_url(&c2), &c2).await.unwrap();
    restored.add_person("Bob").await.unwrap();
    let r = Replica::open("front", restored, &door, &FleetConfig::default())
        .await
        .unwrap();
    let report = r.sync().await.unwrap().unwrap();
    assert_eq!(report.from, -1);
    let people = r.local().list_people().await.unwrap();
    assert_eq!(
        people.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["Bob"]
    );
    assert!(r
        .local()
        .lookup_card(&uid("04:00:00:0A"))
        .await
        .unwrap()
        .is_none());
}

#[test]
fn past_max_staleness_the_rule_decides_what_the_door_may_do() {
    let synced = Utc.with_ymd_and_hms(2026, 12, 4, 8, 0, 0).unwrap();
    let status = ReplicaStatus {
        rev: Some(7),
        synced_at: Some(synced),
        max_staleness_secs: 3600,
        when_stale: "deny".into(),
        ..ReplicaStatus::default()
    };
    let fresh = synced + chrono::Duration::minutes(59);
    let old = synced + chrono::Duration::minutes(61);
    for rule in [WhenStale::Alarm, WhenStale::CardOnly, WhenStale::Deny] {
        assert_eq!(directory(&status, rule, fresh), Directory::Trusted);
    }
    assert_eq!(
        directory(&status, WhenStale::Alarm, old),
        Directory::Trusted
    );
    let Directory::CardOnly(why) = directory(&status, WhenStale::CardOnly, old) else {
        panic!("card only")
    };
    assert!(
        why.contains("1 h 1 min old (fleet.max_staleness 1h)"),
        "{why}"
    );
    assert!(matches!(
        directory(&status, WhenStale::Deny, old),
        Directory::Refused(_)
    ));
    assert!(status.summary(old).contains("STALE"));
    assert!(!status.summary(fresh).contains("STALE"));
    let never = ReplicaStatus::default();
    assert!(matches!(
        directory(&never, WhenStale::Alarm, old),
        Directory::Refused(_)
    ));
}

#[tokio::test]
async fn the_sync_loop_copies_at_start_and_again_at_once_on_a_wake() {
    // A poll far longer than the test: only the wake can bring the second change in time.
    let config = FleetConfig {
        poll_secs: 3600,
        ..FleetConfig::default()
    };
    let s = site(config).await;
    let task = s.replica.spawn();
    let mut status = s.replica.watch_status();
    // The first copy, at start.
    let soon = Duration::from_secs(10);
    tokio::time::timeout(soon, status.wait_for(|st| st.rev.is_some()))
        .await
        .unwrap()
        .unwrap();
    let rev0 = s.replica.status().rev.unwrap();
    s.central.add_person("Ada").await.unwrap();
    s.replica.wake();
    tokio::time::timeout(soon, status.wait_for(|st| st.rev > Some(rev0)))
        .await
        .unwrap()
        .unwrap();
    task.abort();
}

#[tokio::test]
async fn a_stale_replica_raises_one_alarm_per_stale_period() {
    let config = FleetConfig {
        poll_secs: 1,
        max_staleness: "1s".parse().unwrap(),
        ..FleetConfig::default()
    };
    let s = site(config).await;
    s.central
        .outbox_register_sink("front", "test")
        .await
        .unwrap();
    let alarms = || async {
        s.central
            .outbox_pending("front", "test", 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| {
                matches!(
                    e.event,
                    Event::Alarm {
                        alarm: Alarm::ReplicaStale,
                        ..
                    }
                )
            })
            .count()
    };
    let mut alarm = StaleAlarm::default();
    s.replica.sync().await.unwrap();
    alarm.check(&s.replica).await;
    assert_eq!(alarms().await, 0, "fresh");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alarm.check(&s.replica).await;
    alarm.check(&s.replica).await;
    assert_eq!(alarms().await, 1, "one alarm while it stays stale");
    s.replica.sync().await.unwrap();
    alarm.check(&s.replica).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alarm.check(&s.replica).await;
    assert_eq!(
        alarms().await,
        2,
        "stale again after being fresh: a new alarm"
    );
}
