//! A burst of 200 parallel wrong sign-ins, each from its own address (so the per-address limit cannot
//! help), through the whole router, while the door decides a tap every 100 ms. Prints the process's extra
//! resident memory at the peak of the burst and the door's tap → decision times with and without it.
//! Targets: under 150 MB extra, and decisions as fast as without the burst.
//!
//! `cargo bench -p facereko-web --bench login_burst` (Linux: reads `/proc/self/status`).
//!
//! Measured on the shared 2-core sandbox (2026-12-04): 40.6 MB extra at the peak (two 19 MiB working
//! memories, one per core, reused), all 200 answered in 2.9 s; door decisions median 1.7 ms, max 29.9 ms
//! during the burst against 1.8 / 2.1 ms quiet. With the checks queued one per core but each allocating
//! its own memory: 344.6 MB extra (the allocator kept every thread's 19 MiB); unbounded, 200 × 19 MiB.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use facereko_domain::{CardUid, Event};
use facereko_hardware::CardTap;
use facereko_web::WebConfig;
use tower::ServiceExt;

/// Parallel wrong sign-ins (`FACEREKO_BENCH_GUESSES` for another number).
fn guesses() -> usize {
    std::env::var("FACEREKO_BENCH_GUESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}
const TAPS: u8 = 20;

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Taps `TAPS` cards 100 ms apart and returns each tap's time to its decision, in ms.
async fn decisions(b: &support::Bench, first: u8) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..TAPS {
        let mut events = b.state.door.subscribe();
        let uid: CardUid = format!("04:00:{:02X}:{:02X}", first, i).parse().unwrap();
        let t = Instant::now();
        b.tapper.tap(CardTap::new(uid.clone())).unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Ok(Event::Attempt { attempt, .. }))
                    if attempt.card_uid.as_ref() == Some(&uid) =>
                {
                    break
                }
                Ok(Ok(_)) => continue,
                other => panic!("no decision for {uid}: {other:?}"),
            }
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

fn summary(ms: &mut [f64]) -> String {
    ms.sort_by(|a, b| a.total_cmp(b));
    format!(
        "median {:.1} ms, max {:.1} ms",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = support::bench_with(0, WebConfig::default()).await;
        let app = facereko_web::router(b.state.clone());
        let page = app
            .clone()
            .oneshot(Request::get("/login").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cookie = page.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body = http_body_util::BodyExt::collect(page.into_body())
            .await
            .unwrap()
            .to_bytes();
        let html = String::from_utf8_lossy(&body);
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();

        let mut quiet = decisions(&b, 1).await;
        // Peak RSS from here on: writing 5 to clear_refs resets VmHWM.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before_kb = status_kb("VmRSS:");
        let started = Instant::now();
        let burst = (0..guesses()).map(|i| {
            let app = app.clone();
            let mut req = Request::post("/login")
                .header(header::COOKIE, &cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "csrf={csrf}&username=bench&password=wrong-guess-{i}"
                )))
                .unwrap();
            let peer = SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 40000));
            req.extensions_mut().insert(ConnectInfo(peer));
            tokio::spawn(async move { app.oneshot(req).await.unwrap().status() })
        });
        let burst: Vec<_> = burst.collect();
        let mut busy = decisions(&b, 2).await;
        let mut refused = 0;
        for h in burst {
            let status = h.await.unwrap();
            assert_ne!(status, StatusCode::SEE_OTHER, "a wrong password signed in");
            if status == StatusCode::TOO_MANY_REQUESTS {
                refused += 1;
            }
        }
        let took = started.elapsed();
        let peak_kb = status_kb("VmHWM:");
        println!(
            "{n} parallel wrong sign-ins from {n} addresses: all answered in {:.1} s \
             ({refused} refused by a lock-out)",
            took.as_secs_f64(),
            n = guesses()
        );
        println!(
            "resident memory: {:.1} MB before, peak {:.1} MB during: {:.1} MB extra (target < 150 MB)",
            before_kb as f64 / 1024.0,
            peak_kb as f64 / 1024.0,
            peak_kb.saturating_sub(before_kb) as f64 / 1024.0
        );
        println!("door decisions, quiet:       {}", summary(&mut quiet));
        println!("door decisions, during burst: {}", summary(&mut busy));
    });
}
