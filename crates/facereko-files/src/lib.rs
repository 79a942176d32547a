//! FaceReko's two rules for files, written once for every crate.
//!
//! **Reading** a file a user named (a photo for the simulated camera or for enrolment, a secret for the
//! configuration, a stored photo read back) without trusting it to be an ordinary file.
//!
//! A path can name `/dev/zero`, a terminal or a named pipe as easily as a photo: `std::fs::read` on those
//! grows until memory runs out or blocks forever (opening a pipe waits for a writer). So the file is opened
//! without blocking, its type is checked on the open descriptor (no race with a rename), and the read
//! itself stops one byte past the limit, whatever the file's metadata claims.
//!
//! **Replacing** a file that matters (a stored photo, a Rekognition-compatible collection, a verified model
//! file) with [`replace_file`]: the new content goes to a temporary file beside it, is synced, renamed over
//! the old name and the folder entry synced, so a crash or a full disk at any point leaves the old file or
//! the new one, never half of one, and no temporary file behind on error.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `path` through `write` so that it is replaced whole or not at all (see the crate notes). A new
/// file gets permission bits `mode` (on Unix; `0o600` for personal data). The folder is created when
/// missing. `write` may fail with its own error type; failures of the file system convert into it.
pub fn replace_file<E: From<io::Error>>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "a file path needs a file name")
    })?;
    std::fs::create_dir_all(dir)?;
    // Unique among concurrent writers of the same file, in this process and others.
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the folder entry is.
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a regular file of at most `max_bytes` bytes. Anything else (a directory, device, pipe or socket)
/// is refused with [`io::ErrorKind::InvalidInput`], a longer file with [`io::ErrorKind::InvalidData`];
/// the messages do not repeat the path (callers add it).
pub fn read_regular_file(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", kind_of(&meta.file_type())),
        ));
    }
    let capacity = usize::try_from(meta.len().min(max_bytes)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {}", human_bytes(max_bytes)),
        ));
    }
    Ok(bytes)
}

/// Checks that `path` is a regular file now (for a path stored to be read later); the read checks again.
pub fn check_regular_file(path: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({})", kind_of(&meta.file_type())),
        ))
    }
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a named pipe returns at once instead of waiting for a writer. It does not change
    // reads of a regular file, and nothing else gets read. O_NOCTTY: a terminal never becomes ours.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

/// `16 MiB`, `64 KiB` or `100 bytes`.
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.jpg");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(read_regular_file(&f, 10).unwrap(), b"0123456789");
        let e = read_regular_file(&f, 9).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "larger than 9 bytes");
    }

    #[test]
    fn dev_zero_is_refused_without_reading() {
        // Regression: /dev/zero has length 0, so a check of metadata.len() let it through and the read grew
        // until memory ran out.
        let e = read_regular_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("character device"), "{e}");
        assert!(check_regular_file(Path::new("/dev/zero")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_named_pipe_is_refused_at_once() {
        // Regression: opening a named pipe blocked the reading thread until a writer came, forever.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.jpg");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_regular_file(&f, 1 << 20));
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a named pipe blocked");
        let e = result.unwrap_err();
        assert!(e.to_string().contains("named pipe"), "{e}");
        assert!(check_regular_file(&fifo).is_err());
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_regular_file(dir.path(), 10).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[test]
    fn a_replaced_file_has_the_new_content_and_owner_only_bits() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/photo.jpg");
        replace_file::<io::Error>(&f, 0o600, |w| std::io::Write::write_all(w, b"old")).unwrap();
        replace_file::<io::Error>(&f, 0o600, |w| std::io::Write::write_all(w, b"new")).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let bits = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(bits, 0o600);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_leaves_nothing_behind() {
        #[derive(Debug)]
        enum Failure {
            Checksum,
            Io(#[allow(dead_code)] io::Error),
        }
        impl From<io::Error> for Failure {
            fn from(e: io::Error) -> Self {
                Failure::Io(e)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("model.onnx");
        std::fs::write(&f, b"good").unwrap();
        let e = replace_file(&f, 0o644, |w| {
            std::io::Write::write_all(w, b"half")?;
            Err(Failure::Checksum)
        })
        .unwrap_err();
        assert!(matches!(e, Failure::Checksum), "{e:?}");
        assert_eq!(std::fs::read(&f).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(16 << 20), "16 MiB");
        assert_eq!(human_bytes(64 << 10), "64 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
