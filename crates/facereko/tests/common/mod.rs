//! Fixtures for end-to-end tests: the real `facereko` binary on a temporary data directory.

#![allow(dead_code)] // each test file uses its own subset

pub mod web;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_facereko"))
}

/// Runs `facereko --data-dir DIR ARGS…` to completion.
pub fn facereko(data_dir: &Path, args: &[&str]) -> Output {
    facereko_env(data_dir, args, &[])
}

/// [`facereko`] with these environment variables set as well.
pub fn facereko_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("FACEREKO_CONFIG")
        .env("FACEREKO_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("run facereko")
}

/// `facereko accounts add USERNAME --admin`, typing `password` at its prompt; whether it succeeded.
pub fn add_admin(data_dir: &Path, env: &[(&str, &str)], username: &str, password: &str) -> bool {
    use std::io::Write;
    let mut child = Command::new(bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["accounts", "add", username, "--admin"])
        .env_remove("FACEREKO_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run facereko accounts add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait().unwrap().success()
}

/// Runs a command that must succeed and returns its standard output.
pub fn ok(data_dir: &Path, args: &[&str]) -> String {
    ok_env(data_dir, args, &[])
}

/// [`ok`] with these environment variables set as well.
pub fn ok_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = facereko_env(data_dir, args, env);
    assert!(
        out.status.success(),
        "facereko {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running `facereko serve`; killed (SIGKILL) if the test forgets to stop it.
pub struct Daemon {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl Daemon {
    pub fn start(data_dir: &Path, args: &[&str]) -> Daemon {
        Self::start_env(data_dir, args, &[])
    }

    /// [`Daemon::start`] with these environment variables set as well.
    pub fn start_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = data_dir.join(format!("serve-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .env_remove("FACEREKO_CONFIG")
            .env("FACEREKO_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start facereko serve");
        let d = Daemon {
            child: Some(child),
            data_dir: data_dir.to_path_buf(),
            log,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = facereko(&self.data_dir, &["status", "--json"]);
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("daemon did not become ready:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `attempts list --json` until it holds `n` attempts.
pub fn wait_attempts(data_dir: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ok(data_dir, &["attempts", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        if list.len() >= n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "only {} attempts: {out}",
            list.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
