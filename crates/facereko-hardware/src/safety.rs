//! Fail-secure helpers: whatever ends the daemon (a panic anywhere, SIGINT, SIGTERM, `main` returning), the
//! outputs are driven to [`Outputs::lock_down`] first.
//!
//! The panic hook runs for *every* panic, also one that tokio would catch in a task: a panic anywhere
//! locks the door and silences the buzzer, cutting a running unlock short. That is the fail-secure choice.

use std::sync::Arc;

use crate::Outputs;

/// Installs a panic hook that locks the outputs down and then runs the previous hook (which prints the
/// message). Call once, right after opening the outputs.
pub fn install_panic_lock_down(outputs: Arc<dyn Outputs>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Err(e) = outputs.lock_down() {
            eprintln!("facereko: could not lock the door down after a panic: {e}");
        }
        previous(info);
    }));
}

/// Locks the outputs down when dropped: hold one in `main` so every way out of it (return, `?`, unwinding)
/// leaves the door locked.
pub struct LockDownGuard(Arc<dyn Outputs>);

impl LockDownGuard {
    pub fn new(outputs: Arc<dyn Outputs>) -> Self {
        Self(outputs)
    }
}

impl std::fmt::Debug for LockDownGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockDownGuard")
    }
}

impl Drop for LockDownGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.lock_down() {
            tracing::error!(target: "facereko::safety", "lock-down on exit failed: {e}");
        }
    }
}

/// Waits for SIGINT or SIGTERM, locks the outputs down at once, and returns the signal's name so the caller
/// can shut the rest down in order.
#[cfg(unix)]
pub async fn lock_down_on_signal(outputs: Arc<dyn Outputs>) -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    if let Err(e) = outputs.lock_down() {
        tracing::error!(target: "facereko::safety", "lock-down on {name} failed: {e}");
    } else {
        tracing::info!(target: "facereko::safety", "{name}: door locked down");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimOutputs;
    use crate::Output;

    #[test]
    fn the_guard_locks_down_on_unwinding() {
        let out = SimOutputs::new();
        let shared: Arc<dyn Outputs> = Arc::new(out.clone());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = LockDownGuard::new(shared.clone());
            shared.set(Output::Relay, true).unwrap();
            shared.set(Output::Buzzer, true).unwrap();
            panic!("controller crashed");
        }));
        assert!(result.is_err());
        assert!(!out.level(Output::Relay));
        assert!(!out.level(Output::Buzzer));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_locks_the_door() {
        let out = SimOutputs::new();
        out.set(Output::Relay, true).unwrap();
        let task = tokio::spawn(lock_down_on_signal(Arc::new(out.clone())));
        // Let the task install its handlers before the signal is raised.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let name = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(name, "SIGTERM");
        assert!(!out.level(Output::Relay));
    }
}
