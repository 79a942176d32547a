//! What only a real MySQL/PostgreSQL server shows: refused logins, an unreachable server, a server going
//! down mid-day (the spool), and the import of the original's MariaDB database.

mod common;

use std::time::Duration;

use common::relay::{server_addr, via, Outage};
use common::{
    attempt, drop_database, env_url, jpeg, now, with_database, DbGuard, TestDb, MYSQL_VAR,
    POSTGRES_VAR,
};
use facereko_domain::Outcome;
use facereko_store::{
    import_legacy, verify_password, AttemptQuery, Backend, Error, OpenOptions, Role, Store,
};

async fn spool_survives_an_outage(backend: Backend, admin: &str) {
    let (url, name) = TestDb::create_database(backend, admin).await;
    let _cleanup = DbGuard(backend, admin.to_string(), name.clone());
    let relay = Outage::relay_to(server_addr(&url)).await;
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        spool_retry: Duration::from_secs(1),
        ..OpenOptions::default()
    };
    let store = Store::open_with(&via(&url, relay.addr), dir.path(), &options)
        .await
        .unwrap();
    store.outbox_register_sink("front", "mqtt").await.unwrap();
    let before = store
        .record_attempt(&attempt("front", None, Outcome::UnknownCard, now()), None)
        .await
        .unwrap();
    assert!(before.id > 0);

    relay.cut();
    let during = attempt("front", None, Outcome::NoFace, now());
    let spooled = store.record_attempt(&during, Some(&jpeg(9))).await.unwrap();
    assert!(
        spooled.id < 0,
        "provisional id while the server is down: {spooled:?}"
    );
    let photo = store.photo_path(spooled.photo.as_deref().unwrap()).unwrap();
    assert!(photo.exists(), "the photo is kept for the replay");
    // Once the server is known to be down, the next attempts are spooled at once.
    let quick = std::time::Instant::now();
    let second = store
        .record_attempt(&attempt("front", None, Outcome::UnknownCard, now()), None)
        .await
        .unwrap();
    assert!(
        second.id < 0 && quick.elapsed() < Duration::from_millis(500),
        "{:?}",
        quick.elapsed()
    );
    assert_eq!(store.spooled().await.unwrap(), 2);
    // Reads fail clearly rather than hang.
    let err = store.attempts(&AttemptQuery::default()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    relay.restore();
    let mut waited = 0;
    while store.spooled().await.unwrap() > 0 {
        assert!(
            waited < 200,
            "the spool was not replayed after the server came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(store.replay_spool().await.unwrap(), 0);
    let all = store.attempts(&AttemptQuery::default()).await.unwrap();
    assert_eq!(all.len(), 3, "none lost, none twice");
    let replayed = &all[1];
    assert_eq!(
        (replayed.outcome, replayed.time),
        (Outcome::NoFace, during.time)
    );
    assert_eq!(replayed.photo, spooled.photo);
    let events = store.outbox_pending("front", "mqtt", 10).await.unwrap();
    assert_eq!(
        events.len(),
        3,
        "the replayed attempts reach the notifier too"
    );
    // The orphan sweep keeps the replayed photo (its row is committed now).
    assert_eq!(
        store
            .sweep_orphan_photos(now() + chrono::Duration::minutes(1))
            .await
            .unwrap(),
        0
    );
    assert!(photo.exists());

    drop(store);
    drop(relay);
    drop_database(backend, admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FACEREKO_TEST_MYSQL_URL (set by .ci/run)"]
async fn mysql_spool_survives_an_outage() {
    spool_survives_an_outage(Backend::MySql, &env_url(MYSQL_VAR)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FACEREKO_TEST_POSTGRES_URL (set by .ci/run)"]
async fn postgres_spool_survives_an_outage() {
    spool_survives_an_outage(Backend::Postgres, &env_url(POSTGRES_VAR)).await;
}

/// Regression: while the server was down every call waited out the 5 s pool timeout, so each tap at the
/// door took 5 s and the taps in between were dropped. Once a call has found the server down, the next
/// ones fail in well under 200 ms until a background probe sees it back.
async fn a_server_known_down_fails_fast(backend: Backend, admin: &str) {
    let (url, name) = TestDb::create_database(backend, admin).await;
    let _cleanup = DbGuard(backend, admin.to_string(), name.clone());
    let relay = Outage::relay_to(server_addr(&url)).await;
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        probe_every: Duration::from_millis(200),
        ..OpenOptions::default()
    };
    let store = Store::open_with(&via(&url, relay.addr), dir.path(), &options)
        .await
        .unwrap();
    let ada = store.add_person("Ada").await.unwrap();
    let uid: facereko_domain::CardUid = "04:A2:2B:19".parse().unwrap();
    store.add_card(ada, &uid, None).await.unwrap();
    assert!(store.lookup_card(&uid).await.unwrap().is_some());
    assert!(!store.known_down());

    relay.blackhole();
    // The first call finds out (it may wait out the connect timeout).
    let first = std::time::Instant::now();
    let err = store.lookup_card(&uid).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        first.elapsed() < Duration::from_secs(8),
        "{:?}",
        first.elapsed()
    );
    assert!(store.known_down());
    // Every later call, of any kind, fails at once.
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let err = store.lookup_card(&uid).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        let t = std::time::Instant::now();
        assert!(store.faces_version().await.unwrap_err().is_unavailable());
        assert!(store.armed("front").await.unwrap_err().is_unavailable());
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    }
    // An attempt goes to the spool at once.
    let t = std::time::Instant::now();
    let spooled = store
        .record_attempt(
            &attempt("front", None, Outcome::StoreUnavailable, now()),
            None,
        )
        .await
        .unwrap();
    assert!(spooled.id < 0, "{spooled:?}");
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    relay.restore();
    let back = std::time::Instant::now();
    while store.known_down() || store.spooled().await.unwrap() > 0 {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "the probe never saw the server back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.lookup_card(&uid).await.unwrap().is_some());
    let all = store.attempts(&AttemptQuery::default()).await.unwrap();
    assert_eq!(all.len(), 1, "the spooled attempt was replayed");
    assert_eq!(all[0].outcome, Outcome::StoreUnavailable);

    drop(store);
    drop(relay);
    drop_database(backend, admin, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FACEREKO_TEST_MYSQL_URL (set by .ci/run)"]
async fn mysql_known_down_fails_fast() {
    a_server_known_down_fails_fast(Backend::MySql, &env_url(MYSQL_VAR)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FACEREKO_TEST_POSTGRES_URL (set by .ci/run)"]
async fn postgres_known_down_fails_fast() {
    a_server_known_down_fails_fast(Backend::Postgres, &env_url(POSTGRES_VAR)).await;
}

#[tokio::test]
#[ignore = "needs FACEREKO_TEST_MYSQL_URL (set by .ci/run)"]
async fn mysql_refused_login_is_a_clear_error() {
    let url = env_url(MYSQL_VAR);
    let bad = via_user(&url, "facereko_nobody:wrong");
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&bad, dir.path()).await.unwrap_err();
    assert!(matches!(err, Error::LoginRefused { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("refused the login") && !text.contains("wrong"),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs FACEREKO_TEST_POSTGRES_URL (set by .ci/run)"]
async fn postgres_refused_login_is_a_clear_error() {
    let url = env_url(POSTGRES_VAR);
    let bad = via_user(&url, "facereko_nobody:wrong");
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&bad, dir.path()).await.unwrap_err();
    assert!(matches!(err, Error::LoginRefused { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong"), "{err}");
}

fn via_user(url: &str, userinfo: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{userinfo}@{host}")
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "mysql://door:secret@127.0.0.1:9/FaceReko",
        "postgres://door:secret@127.0.0.1:9/facereko",
    ] {
        let err = Store::open(url, dir.path()).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{url}: {err:?}");
        assert!(err.is_unavailable());
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

/// The original's schema, as its README describes it (plus the `cardUID` its code used).
const ORIGINAL_SCHEMA: &str = "
CREATE TABLE AccessLog (
    ID int(5) NOT NULL AUTO_INCREMENT PRIMARY KEY,
    Name varchar(50),
    Time datetime,
    Similarity decimal(10,2),
    Confidence decimal(10,2),
    Image varchar(30)
);
CREATE TABLE Login (
    Username varchar(30),
    Password varchar(30),
    cardUID varchar(30)
);
INSERT INTO Login VALUES ('admin', 'password123', '200201202203'), ('bob', 'hunter2', '41624325'),
    ('bad user', 'x', NULL), ('carol', 'pa55', NULL);
-- The original wrote face-detection confidence into Similarity and the match score into Confidence.
INSERT INTO AccessLog (Name, Time, Similarity, Confidence, Image) VALUES
    ('Ada', '2019-07-28 14:33:10', 99.98, 97.12, 'img1.jpg'),
    ('Bob', '2019-07-29 08:00:00', 99.50, 88.40, 'gone.jpg'),
    ('Ada', '2019-07-30 09:15:00', 99.91, 96.00, NULL);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FACEREKO_TEST_MYSQL_URL (set by .ci/run)"]
async fn the_original_database_imports_with_scores_in_their_right_columns() {
    use sqlx::Connection;
    let admin = env_url(MYSQL_VAR);
    let (legacy_url, name) = TestDb::create_database(Backend::MySql, &admin).await;
    let mut c = sqlx::MySqlConnection::connect(&legacy_url).await.unwrap();
    sqlx::raw_sql(ORIGINAL_SCHEMA)
        .execute(&mut c)
        .await
        .unwrap();
    drop(c);
    let images = tempfile::tempdir().unwrap();
    std::fs::write(images.path().join("img1.jpg"), jpeg(1).bytes).unwrap();

    let t = TestDb::sqlite().await;
    let s = &t.store;
    let ada = s.add_person("Ada").await.unwrap();
    let report = import_legacy(s, &legacy_url, Some(images.path()))
        .await
        .unwrap();

    assert_eq!(report.accounts_imported, ["admin", "bob", "carol"]);
    assert_eq!(report.users_to_rotate, ["admin", "bob", "carol"]);
    assert_eq!(
        report.accounts_skipped.len(),
        1,
        "{:?}",
        report.accounts_skipped
    );
    assert_eq!(report.accounts_skipped[0].0, "bad user");
    assert_eq!(report.cards_unresolved.len(), 1);
    assert_eq!(
        report.cards_unresolved[0].0, "bob",
        "41624325 has several readings"
    );
    let admin_acc = s.account_by_username("admin").await.unwrap().unwrap();
    assert!(admin_acc.password_hash.starts_with("$argon2id$"));
    assert!(verify_password("password123", &admin_acc.password_hash));
    assert!(admin_acc.must_change_password && admin_acc.role == Role::Admin);
    assert_eq!(admin_acc.card_uid.unwrap().to_string(), "C8:C9:CA:CB");

    assert_eq!((report.attempts_imported, report.photos_copied), (3, 1));
    assert_eq!(report.photos_missing, ["gone.jpg"]);
    let history = s.attempts(&AttemptQuery::default()).await.unwrap();
    assert_eq!(history.len(), 3);
    let first = history.last().unwrap();
    assert_eq!(
        first.similarity,
        Some(97.12),
        "match score from the original's Confidence column"
    );
    assert_eq!(
        first.confidence,
        Some(99.98),
        "detector confidence from its Similarity column"
    );
    assert_eq!(
        (first.outcome, first.person_id, first.door_id.as_str()),
        (Outcome::Granted, Some(ada), "legacy")
    );
    assert_eq!(
        std::fs::read(s.photo_path(first.photo.as_deref().unwrap()).unwrap()).unwrap(),
        jpeg(1).bytes
    );
    assert_eq!(history[1].person.as_deref(), Some("Bob"));
    assert_eq!(history[1].person_id, None, "no such person here");
    assert!(s.outbox_stats("legacy").await.unwrap().is_empty());

    // Running it again adds nothing.
    let again = import_legacy(s, &legacy_url, Some(images.path()))
        .await
        .unwrap();
    assert_eq!(
        (again.attempts_imported, again.attempts_already_present),
        (0, 3)
    );
    assert!(again.accounts_imported.is_empty());
    assert_eq!(s.count_attempts().await.unwrap(), 3);

    // A wrong password for the legacy server is a clear error too.
    let err = import_legacy(
        s,
        &with_database(&via_user(&admin, "facereko_nobody:x"), &name),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::LoginRefused { .. }), "{err:?}");
    drop_database(Backend::MySql, &admin, &name).await;
    t.finish().await;
}
