//! A TCP relay in front of a server (a database, an MQTT broker) that a test can cut and restore, like a
//! network outage. Shared by the store's server tests and the daemon's site tests
//! (`crates/facereko/tests/fleet.rs` includes this file by path).

#![allow(dead_code)] // each including test uses its own subset

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP relay in front of a database server that the test can cut and restore, like a network outage.
pub struct Outage {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// While set (and not up), connections are accepted and then never answered, like a host whose
    /// packets vanish: a client waits out its whole connect timeout.
    blackhole: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Outage {
    pub async fn relay_to(target: SocketAddr) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let blackhole = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        let (blackhole2, held2) = (blackhole.clone(), held.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    if blackhole2.load(Ordering::SeqCst) {
                        held2.lock().unwrap().push(client); // never answered
                    } else {
                        drop(client); // refused, as far as the client can tell
                    }
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Outage {
            addr,
            up,
            blackhole,
            held,
            links,
            accept,
        }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Cuts the open connections and swallows new ones without a word.
    pub fn blackhole(&self) {
        self.blackhole.store(true, Ordering::SeqCst);
        self.cut();
    }

    pub fn restore(&self) {
        self.blackhole.store(false, Ordering::SeqCst);
        self.held.lock().unwrap().clear();
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `scheme://auth@host:port/db` → same URL through `relay`.
pub fn via(url: &str, relay: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let auth = authority
        .rsplit_once('@')
        .map(|(a, _)| format!("{a}@"))
        .unwrap_or_default();
    format!("{scheme}://{auth}{relay}/{path}")
}

pub fn server_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.replace("localhost", "127.0.0.1");
    host.parse().unwrap()
}
