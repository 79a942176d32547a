//! The web app of a running daemon, from a test: its address and a minimal browser.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;

use super::Daemon;

/// The web app's address, from the daemon's start-up lines.
pub fn web_addr(d: &Daemon) -> SocketAddr {
    let log = d.wait_log("web app:");
    log.lines()
        .find_map(|l| l.trim().strip_prefix("web app:"))
        .map(|a| {
            a.trim()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .unwrap()
        })
        .unwrap()
}

/// A minimal browser: HTTP/1.1 over one connection per request, cookies kept by name.
pub struct Browser {
    addr: SocketAddr,
    cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn request(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let body = form
            .map(|f| {
                f.iter()
                    .map(|(k, v)| format!("{k}={}", v.replace('%', "%25").replace('&', "%26")))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default();
        let cookies = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut s = std::net::TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {cookies}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        let mut lines = head.lines();
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let mut location = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            match name.to_ascii_lowercase().as_str() {
                "set-cookie" => {
                    let pair = value.trim().split(';').next().unwrap();
                    if let Some((k, v)) = pair.split_once('=') {
                        self.cookies.insert(k.to_string(), v.to_string());
                    }
                }
                "location" => location = Some(value.trim().to_string()),
                _ => {}
            }
        }
        Page {
            status,
            location,
            body: body.to_string(),
        }
    }

    pub fn csrf(page: &Page) -> String {
        let at = page.body.find("name=\"csrf\" value=\"").expect("a form");
        let rest = &page.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    pub fn sign_in(addr: SocketAddr, user: &str, password: &str) -> Browser {
        let mut b = Browser {
            addr,
            cookies: HashMap::new(),
        };
        let login = b.request("GET", "/login", None);
        let csrf = Browser::csrf(&login);
        let done = b.request(
            "POST",
            "/login",
            Some(&[("csrf", &csrf), ("username", user), ("password", password)]),
        );
        assert_eq!(done.status, 303, "sign-in failed: {}", done.body);
        assert_ne!(done.location.as_deref(), Some("/login"), "sign-in refused");
        b
    }
}
