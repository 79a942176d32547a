//! Photos on disk: random names, written atomically, never reachable outside the photo folder.
//!
//! Layout under the data directory:
//! - `photos/attempts/YYYY-MM/<32 hex>.jpg` — named after the attempt's random 128-bit uuid, which is also
//!   a unique column of `attempts`: the orphan sweep can tell in one indexed lookup whether a file belongs
//!   to a committed row.
//! - `photos/faces/<32 hex>.jpg` — enrolment photos.
//!
//! A photo is written to `.<name>.tmp`, fsynced, renamed, and the directory fsynced, before the row that
//! references it is committed. A crash in between leaves a file no row names: invisible (nothing links to
//! it) and removed by [`crate::Store::sweep_orphan_photos`].

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use facereko_domain::Photo;

use crate::{Error, Result};

/// The folder under the data directory that holds every photo.
pub const PHOTOS_DIR: &str = "photos";

#[derive(Clone, Debug)]
pub(crate) struct Photos {
    data_dir: PathBuf,
}

impl Photos {
    pub(crate) fn new(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join(PHOTOS_DIR);
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&root).map_err(|e| Error::io(&root, e))?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
        })
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.data_dir.join(PHOTOS_DIR)
    }

    /// The relative path an attempt photo with this uuid gets.
    pub(crate) fn attempt_relative(uuid: &[u8; 16], time: DateTime<Utc>, photo: &Photo) -> String {
        format!(
            "{PHOTOS_DIR}/attempts/{}/{}.{}",
            time.format("%Y-%m"),
            hex::encode(uuid),
            photo.format.extension()
        )
    }

    pub(crate) fn face_relative(name: &[u8; 16], photo: &Photo) -> String {
        format!(
            "{PHOTOS_DIR}/faces/{}.{}",
            hex::encode(name),
            photo.format.extension()
        )
    }

    /// Absolute path of a relative photo path, refusing anything that could leave the photo folder.
    pub(crate) fn resolve(&self, relative: &str) -> Result<PathBuf> {
        let refuse = || {
            Error::Invalid(format!(
                "photo path {relative:?} is not inside {PHOTOS_DIR}/"
            ))
        };
        let path = Path::new(relative);
        let mut components = path.components();
        if components.next() != Some(Component::Normal(PHOTOS_DIR.as_ref())) {
            return Err(refuse());
        }
        let mut depth = 0;
        for c in components {
            match c {
                Component::Normal(s) if !s.to_string_lossy().contains('\\') => depth += 1,
                _ => return Err(refuse()),
            }
        }
        if depth == 0 {
            return Err(refuse());
        }
        Ok(self.data_dir.join(path))
    }

    /// Writes `photo` at `relative` atomically and durably (temp file, fsync, rename, fsync dir).
    pub(crate) async fn write(&self, relative: &str, photo: &Photo) -> Result<()> {
        let path = self.resolve(relative)?;
        let bytes = photo.bytes.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| Error::io(relative, std::io::Error::other(e)))?
    }

    /// Removes a photo; a file that is already gone is fine.
    pub(crate) async fn remove(&self, relative: &str) -> Result<()> {
        let path = self.resolve(relative)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Every file under `photos/` last modified before `before`, as relative paths (temp files included).
    pub(crate) async fn files_older_than(&self, before: DateTime<Utc>) -> Result<Vec<String>> {
        let root = self.root();
        let data_dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root];
            while let Some(dir) = stack.pop() {
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(&dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io(&dir, e))?;
                    let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
                    if meta.is_dir() {
                        stack.push(entry.path());
                        continue;
                    }
                    let modified: DateTime<Utc> = meta
                        .modified()
                        .map_err(|e| Error::io(entry.path(), e))?
                        .into();
                    if modified < before {
                        if let Ok(rel) = entry.path().strip_prefix(&data_dir) {
                            out.push(rel.to_string_lossy().into_owned());
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::io("photos", std::io::Error::other(e)))?
    }
}

/// Reads a regular file of at most `limit` bytes (a device, a pipe or a bigger file is refused).
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    facereko_files::read_regular_file(path, limit).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            Error::Invalid(format!("{}: {e}", path.display()))
        }
        _ => Error::io(path, e),
    })
}

/// Writes a photo whole or not at all, readable by the daemon's user only (faces are personal data).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    facereko_files::replace_file(path, 0o600, |f| f.write_all(bytes))
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_back_is_bounded_and_only_from_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.jpg");
        fs::write(&f, [0xFF; 100]).unwrap();
        assert_eq!(read_bounded(&f, 100).unwrap().len(), 100);
        let err = read_bounded(&f, 99).unwrap_err().to_string();
        assert!(err.contains("larger than 99 bytes"), "{err}");
        assert!(err.contains("a.jpg"), "the error names the file: {err}");
        let err = read_bounded(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        // A stored photo is written whole, owner-only, with nothing left beside it.
        let g = dir.path().join("photos/attempts/b.jpg");
        write_atomic(&g, &[1, 2, 3]).unwrap();
        assert_eq!(read_bounded(&g, 3).unwrap(), [1, 2, 3]);
        assert_eq!(fs::read_dir(g.parent().unwrap()).unwrap().count(), 1);
        // A device would never end; it is refused before any read.
        let err = read_bounded(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn paths_outside_the_photo_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let photos = Photos::new(dir.path()).unwrap();
        assert_eq!(
            photos.resolve("photos/attempts/2026-11/ab.jpg").unwrap(),
            dir.path().join("photos/attempts/2026-11/ab.jpg")
        );
        for bad in [
            "../etc/passwd",
            "photos/../facereko.db",
            "/etc/passwd",
            "photos",
            "photos/",
            "facereko.db",
            "photos/./../x",
            "photos/a\\..\\..\\x",
            "",
        ] {
            assert!(photos.resolve(bad).is_err(), "{bad:?} accepted");
        }
    }
}
