//! History page server time with 1 000 000 attempts in SQLite (target: ≤ 30 ms per page), measured through
//! the whole router (session lookup, query, template) with `oneshot`.
//!
//! `cargo bench -p facereko-web --bench history` (set `FACEREKO_BENCH_ATTEMPTS` for another size).
//!
//! Measured on the shared 2-core sandbox (2026-11-28), 1 000 000 attempts over 463 days: every case —
//! newest, keyset page in the middle, by person, person+outcome, outcome, last 7 days, "until a year ago"
//! with and without a person — 0.77–0.96 ms. (Before date-filtered pages followed (time, id), "until a
//! year ago" took 65 ms and 139 ms with a person.)

#[path = "support/mod.rs"]
mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn history(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n: u64 = std::env::var("FACEREKO_BENCH_ATTEMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let b = rt.block_on(support::bench(n));
    let app = facereko_web::router(b.state.clone());
    let today = chrono::Local::now().date_naive();
    let week_ago = today - chrono::Duration::days(7);
    let p = b.people[3].0;
    let pages = [
        ("newest", "/history".to_string()),
        (
            "middle (keyset before=n/2)",
            format!("/history?before={}", n / 2),
        ),
        ("person", format!("/history?person={p}")),
        (
            "person+outcome",
            format!("/history?person={p}&outcome=face_mismatch"),
        ),
        (
            "outcome rare-ish",
            "/history?outcome=unknown_card".to_string(),
        ),
        (
            "last 7 days",
            format!("/history?from={week_ago}&to={today}"),
        ),
        (
            "a year ago",
            format!("/history?to={}", today - chrono::Duration::days(365)),
        ),
        (
            "person, a year ago",
            format!(
                "/history?person={p}&to={}",
                today - chrono::Duration::days(365)
            ),
        ),
    ];
    let mut group = c.benchmark_group(format!("history_{n}"));
    group.sample_size(30);
    for (name, path) in pages {
        let get = || {
            let app = app.clone();
            let req = Request::get(path.as_str())
                .header(header::COOKIE, b.cookie.clone())
                .body(Body::empty())
                .unwrap();
            async move {
                let resp = app.oneshot(req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                resp.into_body().collect().await.unwrap().to_bytes().len()
            }
        };
        let len = rt.block_on(get());
        assert!(len > 1000, "{name}: page of {len} bytes");
        group.bench_function(name, |bench| bench.iter(|| rt.block_on(get())));
    }
    group.finish();
}

criterion_group!(benches, history);
criterion_main!(benches);
