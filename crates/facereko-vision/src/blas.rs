//! Keeping OpenBLAS from competing with our own workers for the CPU.
//!
//! dlib's network multiplies matrices through OpenBLAS, which by default starts one thread per core for
//! every product. With a busy door (camera, web, the other worker) those threads fight for the same
//! cores: measured here, a 640×480 frame took about twice as long (≈ 110 ms instead of ≈ 54 ms).
//! OpenBLAS reads `OPENBLAS_NUM_THREADS` once, when the shared library is loaded, before `main` runs,
//! so setting the variable from inside the process is too late; the only fix from the inside is to
//! start the process again with the variable set.

use std::ffi::OsString;

/// The variable and the value the engine wants.
pub const VAR: &str = "OPENBLAS_NUM_THREADS";

/// Call first thing in `main`, before any thread or runtime starts: if `OPENBLAS_NUM_THREADS` is
/// unset, replaces the current process with itself, same arguments, with the variable set to 1.
/// Returns only when nothing needed doing (`Ok`) or the re-exec failed (`Err`; carry on, just slower).
/// A value the user set explicitly is respected.
pub fn reexec_single_threaded() -> std::io::Result<()> {
    if std::env::var_os(VAR).is_some() {
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from(&exe));
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(VAR, "1")
        .exec();
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in a child process started by the test below: re-executes itself and checks the result.
    #[test]
    fn child_side() {
        if std::env::var_os("FACEREKO_BLAS_CHILD").is_none() {
            return;
        }
        reexec_single_threaded().expect("re-exec");
        // Only reached in the re-executed process (or when the variable was already set).
        assert_eq!(std::env::var(VAR).as_deref(), Ok("1"));
    }

    #[test]
    fn an_unset_variable_is_set_by_starting_again() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "blas::tests::child_side",
                "--nocapture",
                "--test-threads=1",
            ])
            .env_remove(VAR)
            .env("FACEREKO_BLAS_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
    }
}
