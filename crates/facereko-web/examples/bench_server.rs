//! A small server for load tests of the JSON API: an empty store, a simulated door, an admin token.
//! Prints `URL TOKEN` on stdout, then serves until killed. A second argument sets
//! `web.api_token_cache_seconds` (0 = look the token up in the database on every request).
//!
//! ```text
//! cargo run --release -p facereko-web --example bench_server -- 127.0.0.1:5055 &
//! wrk -t2 -c64 -d20s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:5055/api/v1/status
//! ```

#[path = "../benches/support/mod.rs"]
mod support;

use std::net::SocketAddr;

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5055".into())
        .parse()
        .expect("address like 127.0.0.1:5055");
    let cache: u32 = std::env::args()
        .nth(2)
        .map(|v| v.parse().expect("cache seconds"))
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = facereko_web::WebConfig {
            api_token_cache_seconds: cache,
            ..facereko_web::WebConfig::default()
        };
        let b = support::bench_with(0, config).await;
        let app = facereko_web::router(b.state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        println!("http://{} {}", listener.local_addr().unwrap(), b.token);
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
}
