//! A small server for load tests of the JSON API: an empty store, a simulated door, an admin token.
//! Prints `URL TOKEN` on stdout, then serves until killed.
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let b = support::bench(0).await;
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
