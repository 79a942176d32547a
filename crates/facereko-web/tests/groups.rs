//! The Groups page: groups with a weekly schedule template, many people added at once, site-wide
//! holidays, and the person page's group select and day/time range editor. Administrators edit, viewers
//! read; every change is in the audit trail; hostile input changes nothing.

mod common;

use axum::http::StatusCode;
use chrono::NaiveDate;
use common::{Browser, Fixture};
use facereko_domain::GroupId;
use facereko_store::{AuditQuery, Role};

/// The actions of the audit trail, oldest first.
async fn actions(f: &Fixture) -> Vec<(String, String, String)> {
    let mut v = f
        .store
        .audit_entries(&AuditQuery {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    v.reverse();
    v.into_iter()
        .map(|e| (e.action, e.target, e.detail))
        .collect()
}

fn redirected(r: &common::Resp, to: &str) {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert!(r.location().starts_with(to), "{} → {}", to, r.location());
}

async fn add_group(f: &Fixture, admin: &Browser, name: &str) -> GroupId {
    let r = f
        .post("/groups", admin, &[("csrf", &admin.csrf), ("name", name)])
        .await;
    redirected(&r, "/groups/");
    let id = r.location()["/groups/".len()..]
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    GroupId(id)
}

/// Mon–Fri 08:00–18:00 as the editor posts it.
const OFFICE: &[(&str, &str)] = &[
    ("w0_mon", "on"),
    ("w0_tue", "on"),
    ("w0_wed", "on"),
    ("w0_thu", "on"),
    ("w0_fri", "on"),
    ("w0_from", "08:00"),
    ("w0_to", "18:00"),
    ("w1_from", ""),
    ("w1_to", ""),
];

async fn post_with(f: &Fixture, path: &str, b: &Browser, extra: &[(&str, &str)]) -> common::Resp {
    let mut pairs = vec![("csrf", b.csrf.as_str())];
    pairs.extend_from_slice(extra);
    f.post(path, b, &pairs).await
}

#[tokio::test]
async fn a_group_gets_a_schedule_and_many_people_at_once_then_goes() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let bob = f.person_with_card("Bob", "04:00:00:02").await;
    let cy = f.person_with_card("Cy", "04:00:00:03").await;
    let page = f.get("/groups", &admin).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("No group yet."));
    assert!(page
        .text()
        .contains("href=\"/groups\" aria-current=\"page\""));

    let g = add_group(&f, &admin, "  Cleaners ").await;
    let base = format!("/groups/{g}");
    let r = post_with(&f, &format!("{base}/schedule"), &admin, OFFICE).await;
    redirected(&r, &format!("{base}?done=schedule_saved"));
    let group = f.store.group(g).await.unwrap().unwrap();
    assert_eq!(group.name, "Cleaners");
    assert_eq!(
        group.schedule.as_ref().unwrap().windows[0].days,
        [1, 2, 3, 4, 5]
    );

    // "Add to group" with two people ticked: one change for both.
    let rev = f.store.directory_rev().await.unwrap();
    let r = post_with(
        &f,
        &format!("{base}/members"),
        &admin,
        &[("person", &ada.to_string()), ("person", &bob.to_string())],
    )
    .await;
    redirected(&r, &format!("{base}?done=members_added"));
    assert_eq!(f.store.directory_rev().await.unwrap(), rev + 1);
    for p in [ada, bob] {
        let p = f.store.person(p).await.unwrap().unwrap();
        assert_eq!(p.group.map(|g| g.id), Some(g));
    }
    assert!(f.store.person(cy).await.unwrap().unwrap().group.is_none());
    let list = f.get("/groups", &admin).await.text();
    assert!(
        list.contains("Cleaners") && list.contains("Mon-Fri 08:00-18:00"),
        "{list}"
    );
    // The people list names each one's group, linked.
    let people = f.get("/people", &admin).await.text();
    assert_eq!(
        people
            .matches(&format!("<a href=\"/groups/{g}\">Cleaners</a>"))
            .count(),
        2,
        "{people}"
    );
    let page = f.get(&base, &admin).await.text();
    assert!(page.contains("name=\"w0_fri\" checked"), "{page}");
    // Cy is offered for adding; Ada and Bob are members.
    assert!(page.contains(&format!("name=\"person\" value=\"{cy}\"")));
    // Ada's page: in the group, following its hours.
    let person = f.get(&format!("/people/{ada}"), &admin).await.text();
    assert!(
        person.contains(&format!("<option value=\"{g}\" selected>Cleaners</option>")),
        "{person}"
    );
    assert!(
        person.contains("The door applies: Mon-Fri 08:00-18:00 (the group's)."),
        "{person}"
    );

    // Rename, take Bob out, then remove the group (asked first).
    redirected(
        &post_with(&f, &base, &admin, &[("name", "Night cleaners")]).await,
        &format!("{base}?done=renamed"),
    );
    redirected(
        &post_with(
            &f,
            &format!("{base}/members/remove"),
            &admin,
            &[("person", &bob.to_string())],
        )
        .await,
        &format!("{base}?done=members_removed"),
    );
    assert!(f.store.person(bob).await.unwrap().unwrap().group.is_none());
    let ask = post_with(&f, &format!("{base}/remove"), &admin, &[]).await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask
        .text()
        .contains("Remove the group Night cleaners (1 members)?"));
    assert!(
        f.store.group(g).await.unwrap().is_some(),
        "not before confirming"
    );
    redirected(
        &post_with(&f, &format!("{base}/remove"), &admin, &[("confirm", "yes")]).await,
        "/groups?done=group_removed",
    );
    assert!(f.store.group(g).await.unwrap().is_none());
    assert!(f.store.person(ada).await.unwrap().unwrap().group.is_none());

    let trail = actions(&f).await;
    let names: Vec<&str> = trail.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "group.add",
            "group.schedule",
            "group.members",
            "group.rename",
            "group.members",
            "group.remove"
        ]
    );
    assert_eq!(trail[1].2, "schedule no hours → Mon-Fri 08:00-18:00");
    assert!(trail[2].2.contains("added Ada, Bob (2)"), "{:?}", trail[2]);
    assert_eq!(trail[3].2, "name \"Cleaners\" → \"Night cleaners\"");
    assert_eq!(trail[4].2, "removed Bob");
    // History filters the trail by the new families.
    let h = f.get("/history?what=changes&action=group", &admin).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text());
    assert!(h.text().contains("group.rename") || h.text().contains("Night cleaners"));
    assert_eq!(
        f.get("/history?what=changes&action=holiday", &admin)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn holidays_are_added_listed_and_removed() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let r = post_with(
        &f,
        "/holidays",
        &admin,
        &[("date", "2026-12-25"), ("name", "Christmas Day")],
    )
    .await;
    redirected(&r, "/groups?done=holiday_added");
    let listed = f.store.holidays().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].date,
        NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()
    );
    let page = f.get("/groups", &admin).await.text();
    assert!(
        page.contains("2026-12-25") && page.contains("Friday") && page.contains("Christmas Day")
    );
    // One holiday per date.
    let again = post_with(
        &f,
        "/holidays",
        &admin,
        &[("date", "2026-12-25"), ("name", "Again")],
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    // A person with a schedule now carries the date; one without is not affected.
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let p = f.store.person(ada).await.unwrap().unwrap();
    assert_eq!(p.holidays, [listed[0].date]);
    let r = post_with(
        &f,
        &format!("/holidays/{}/remove", listed[0].id),
        &admin,
        &[],
    )
    .await;
    redirected(&r, "/groups?done=holiday_removed");
    assert!(f.store.holidays().await.unwrap().is_empty());
    let trail = actions(&f).await;
    assert_eq!(
        trail,
        [
            (
                "holiday.add".to_string(),
                "Christmas Day".to_string(),
                "2026-12-25 (Friday)".to_string()
            ),
            (
                "holiday.remove".to_string(),
                "Christmas Day".to_string(),
                "2026-12-25".to_string()
            )
        ]
    );
}

#[tokio::test]
async fn the_person_page_sets_the_group_and_edits_day_time_ranges() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let g = add_group(&f, &admin, "Day staff").await;
    let base = format!("/people/{ada}");
    let page = f.get(&base, &admin).await.text();
    assert!(
        !page.contains("<textarea name=\"schedule\""),
        "the free text is gone"
    );
    assert!(page.contains("type=\"time\" name=\"w0_from\""), "{page}");
    assert!(page.contains("name=\"w2_sun\""), "spare rows to add more");
    let gid = g.to_string();
    let mut form = vec![("name", "Ada"), ("active", "on"), ("group", gid.as_str())];
    form.extend_from_slice(&[
        ("w0_sat", "on"),
        ("w0_sun", "on"),
        ("w0_from", "22:00"),
        ("w0_to", "06:00"),
    ]);
    redirected(
        &post_with(&f, &base, &admin, &form).await,
        &format!("{base}?done=saved"),
    );
    let p = f.store.person(ada).await.unwrap().unwrap();
    assert_eq!(p.group.map(|g| g.id), Some(g));
    let w = &p.schedule.unwrap().windows[0];
    assert_eq!(
        (w.days.as_slice(), w.start_minute, w.end_minute),
        (&[6, 7][..], 22 * 60, 6 * 60)
    );
    let trail = actions(&f).await;
    let (_, _, detail) = trail.last().unwrap();
    assert!(
        detail.contains("schedule any time → Sat,Sun 22:00-06:00")
            && detail.contains("group none → \"Day staff\""),
        "{detail}"
    );
    // Every row emptied: no schedule of her own, so the group's (here: none, any time).
    redirected(
        &post_with(
            &f,
            &base,
            &admin,
            &[
                ("name", "Ada"),
                ("active", "on"),
                ("group", gid.as_str()),
                ("w0_from", ""),
                ("w0_to", ""),
            ],
        )
        .await,
        &format!("{base}?done=saved"),
    );
    let p = f.store.person(ada).await.unwrap().unwrap();
    assert!(p.schedule.is_none() && p.group.is_some());
    // No group.
    redirected(
        &post_with(
            &f,
            &base,
            &admin,
            &[("name", "Ada"), ("active", "on"), ("group", "")],
        )
        .await,
        &format!("{base}?done=saved"),
    );
    assert!(f.store.person(ada).await.unwrap().unwrap().group.is_none());
}

#[tokio::test]
async fn hostile_input_is_refused_and_changes_nothing() {
    let f = Fixture::new().await;
    let admin = f.admin().await;
    let ada = f.person_with_card("Ada", "04:A2:2B:19").await;
    let g = add_group(&f, &admin, "Cleaners").await;
    let base = format!("/groups/{g}");
    let long = "x".repeat(10_000);
    let rev = f.store.directory_rev().await.unwrap();

    // Bad times: the editor comes back with the error and the rows as typed.
    for (rows, why) in [
        (
            &[("w0_mon", "on"), ("w0_from", "25:00"), ("w0_to", "26:00")][..],
            "the start time",
        ),
        (
            &[
                ("w0_mon", "on"),
                ("w0_from", "08:00"),
                ("w0_to", "<script>"),
            ],
            "the end time",
        ),
        (
            &[("w0_mon", "on"), ("w0_from", "08:00")],
            "both a start and an end",
        ),
        (
            &[("w0_from", "08:00"), ("w0_to", "09:00")],
            "tick at least one day",
        ),
        (
            &[("w0_mon", "on"), ("w0_from", "08:00"), ("w0_to", "08:00")],
            "the same time",
        ),
        (&[("w5000_mon", "on")], "at most 20 rows"),
        (&[("w0_caturday", "on")], "does not know"),
    ] {
        let r = post_with(&f, &format!("{base}/schedule"), &admin, rows).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{rows:?}");
        let t = r.text();
        assert!(t.contains(why), "{rows:?}: {t}");
        assert!(!t.contains("<script>"), "escaped");
    }
    let r = post_with(
        &f,
        &format!("{base}/schedule"),
        &admin,
        &[("w0_tue", "on"), ("w0_from", "07:30"), ("w0_to", "99:99")],
    )
    .await;
    let t = r.text();
    assert!(
        t.contains("name=\"w0_tue\" checked") && t.contains("value=\"07:30\""),
        "kept as typed: {t}"
    );
    // The same on the person page.
    let r = post_with(
        &f,
        &format!("/people/{ada}"),
        &admin,
        &[
            ("name", "Ada"),
            ("w0_mon", "on"),
            ("w0_from", "8 am"),
            ("w0_to", "18:00"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Schedule row 1: the start time"));

    // A 10 000-character name, for a group, a rename and a holiday.
    for (path, extra) in [
        ("/groups".to_string(), vec![("name", long.as_str())]),
        (base.clone(), vec![("name", long.as_str())]),
        (
            "/holidays".to_string(),
            vec![("date", "2026-12-25"), ("name", long.as_str())],
        ),
    ] {
        let r = post_with(&f, &path, &admin, &extra).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(r.text().contains("at most 100 characters"), "{path}");
    }
    // Names that are blank or taken, dates that are not dates.
    assert_eq!(
        post_with(&f, "/groups", &admin, &[("name", "   ")])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post_with(&f, "/groups", &admin, &[("name", "Cleaners")])
            .await
            .status,
        StatusCode::CONFLICT
    );
    for date in ["2026-02-30", "25/12/2026", "", "2026-12-25T00:00"] {
        let r = post_with(&f, "/holidays", &admin, &[("date", date), ("name", "Nope")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{date}");
    }

    // Unknown groups, holidays and people.
    for path in ["/groups/999999", "/groups/abc"] {
        let r = f.get(path, &admin).await;
        assert!(
            matches!(r.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {}",
            r.status
        );
    }
    for path in [
        "/groups/999999/schedule",
        "/groups/999999/members",
        "/groups/999999/remove",
        "/groups/999999",
        "/holidays/999999/remove",
    ] {
        let r = post_with(
            &f,
            path,
            &admin,
            &[
                ("name", "X"),
                ("person", &ada.to_string()),
                ("confirm", "yes"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text());
    }
    for people in [
        vec![("person", "999999")],
        vec![("person", "not-a-number")],
        vec![("person", "")],
        vec![],
    ] {
        let r = post_with(&f, &format!("{base}/members"), &admin, &people).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{people:?}");
    }
    // A person and an unknown one together: nobody is added.
    let r = post_with(
        &f,
        &format!("{base}/members"),
        &admin,
        &[("person", &ada.to_string()), ("person", "999999")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(f.store.person(ada).await.unwrap().unwrap().group.is_none());
    // Taking someone who is not a member "out of" the group.
    let r = post_with(
        &f,
        &format!("{base}/members/remove"),
        &admin,
        &[("person", &ada.to_string())],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // An unknown group on the person page.
    for bad in ["999999", "abc", &long] {
        let r = post_with(
            &f,
            &format!("/people/{ada}"),
            &admin,
            &[("name", "Ada renamed"), ("group", bad)],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert!(r.text().contains("That group does not exist"));
    }
    assert_eq!(f.store.person(ada).await.unwrap().unwrap().name, "Ada");

    // A viewer reads the pages but every post is refused.
    let viewer = f.account("viewer", Role::Viewer).await;
    let list = f.get("/groups", &viewer).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text().contains("Cleaners") && !list.text().contains("Add group"));
    let page = f.get(&base, &viewer).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text().contains("Save schedule") && !page.text().contains("Add to group"));
    let hid = f
        .store
        .add_holiday(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), "New Year")
        .await
        .unwrap();
    let rev = rev + 1;
    for path in [
        "/groups".to_string(),
        base.clone(),
        format!("{base}/schedule"),
        format!("{base}/members"),
        format!("{base}/members/remove"),
        format!("{base}/remove"),
        "/holidays".to_string(),
        format!("/holidays/{hid}/remove"),
    ] {
        let mut form = vec![
            ("name", "Mallory"),
            ("person", "1"),
            ("date", "2026-12-24"),
            ("confirm", "yes"),
        ];
        form.extend_from_slice(OFFICE);
        let r = post_with(&f, &path, &viewer, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing changed: only the holiday added directly above took a revision.
    assert_eq!(f.store.directory_rev().await.unwrap(), rev);
    let group = f.store.group(g).await.unwrap().unwrap();
    assert_eq!((group.name.as_str(), group.schedule), ("Cleaners", None));
    assert_eq!(f.store.holidays().await.unwrap().len(), 1);
    assert_eq!(
        actions(&f)
            .await
            .iter()
            .map(|(a, _, _)| a.as_str())
            .collect::<Vec<_>>(),
        ["group.add"]
    );
}
