//! `facereko backup FILE` and `facereko restore FILE`: the door's data in one archive.
//!
//! The archive is a gzip'd tar with the embedded SQLite database (a consistent copy made by SQLite
//! itself with `VACUUM INTO`, so it is safe while the daemon runs), every photo (`photos/`), the data
//! directory's `facereko.toml` if there is one, and a small `MANIFEST.json`. Face models are not in it:
//! `facereko models install` brings them back. A MySQL/PostgreSQL database is backed up with its
//! server's tools.
//!
//! Restoring never half-replaces anything: the archive is unpacked and its database opened (and
//! migrated) in a staging folder first; only then are the database and the photos moved into place,
//! the previous ones kept beside them as `*.before-restore`. It refuses while a daemon runs on the data
//! directory, and over an existing database without `--force`.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use facereko_store::Store;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::json;

use crate::config::Config;
use crate::control::{self, Request};

const DB: &str = "facereko.db";
const PHOTOS: &str = "photos";
const CONFIG: &str = "facereko.toml";
const MANIFEST: &str = "MANIFEST.json";
const KEPT: &str = "before-restore";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to write (a new file; `.tar.gz` by convention).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive written by `facereko backup`.
    pub file: PathBuf,
    /// Replace an existing database (the current one and its photos are kept as `*.before-restore`).
    #[arg(long)]
    pub force: bool,
}

pub async fn backup(data_dir: &Path, config_file: Option<&Path>, a: BackupArgs) -> Result<()> {
    if a.file.exists() {
        bail!("{} already exists: name a new file", a.file.display());
    }
    let store = crate::cli::open_store(data_dir, config_file).await?;
    let staging = tempfile::tempdir_in(data_dir)
        .with_context(|| format!("a staging folder in {}", data_dir.display()))?;
    let db = staging.path().join(DB);
    store.backup_database(&db).await?;
    store.close().await;

    let dir = match a.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let partial = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    let photos = data_dir.join(PHOTOS);
    let photo_count = count_files(&photos);
    let config = data_dir.join(CONFIG);
    {
        let gz = GzEncoder::new(partial.as_file(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.follow_symlinks(false);
        let manifest = json!({
            "format": 1,
            "created": chrono::Utc::now(),
            "version": env!("CARGO_PKG_VERSION"),
            "photos": photo_count,
        });
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, MANIFEST, bytes.as_slice())?;
        tar.append_path_with_name(&db, DB)?;
        if photos.is_dir() {
            tar.append_dir_all(PHOTOS, &photos)?;
        }
        if config.is_file() {
            tar.append_path_with_name(&config, CONFIG)?;
        }
        tar.into_inner()?.finish()?;
    }
    partial.as_file().sync_all()?;
    partial
        .persist_noclobber(&a.file)
        .with_context(|| format!("writing {}", a.file.display()))?;
    println!(
        "backup written to {}: the database, {photo_count} photos{}",
        a.file.display(),
        if config.is_file() {
            ", facereko.toml"
        } else {
            ""
        }
    );
    Ok(())
}

pub async fn restore(data_dir: &Path, config_file: Option<&Path>, a: RestoreArgs) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    let url = config.database_url(data_dir);
    if url != Store::default_url(data_dir) {
        bail!(
            "restore writes the embedded SQLite database in {}; this door uses {}: restore that \
             database with its server's tools",
            data_dir.display(),
            crate::cli::redact_url(&url)
        );
    }
    if control::request(data_dir, &Request::Status).await.is_ok() {
        bail!(
            "a daemon is running on {}: stop it first (systemctl stop facereko)",
            data_dir.display()
        );
    }
    let db = data_dir.join(DB);
    if db.exists() && !a.force {
        bail!(
            "{} already has a database; `--force` replaces it (the current database and photos are \
             kept as *.{KEPT})",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir)?;
    let staging = tempfile::tempdir_in(data_dir)?;
    unpack(&a.file, staging.path())?;
    if !staging.path().join(DB).is_file() {
        bail!(
            "{} is not a FaceReko backup: it holds no {DB}",
            a.file.display()
        );
    }
    // The database must open (and is brought to this version's schema) before anything is replaced.
    let check = Store::open(&Store::default_url(staging.path()), staging.path())
        .await
        .with_context(|| format!("the database in {} does not open", a.file.display()))?;
    check.close().await;

    for name in [DB, "facereko.db-wal", "facereko.db-shm", PHOTOS] {
        let current = data_dir.join(name);
        if current.exists() {
            let kept = data_dir.join(format!("{name}.{KEPT}"));
            if kept.exists() {
                bail!(
                    "{} exists from an earlier restore: move it away first",
                    kept.display()
                );
            }
            std::fs::rename(&current, &kept)
                .with_context(|| format!("keeping {}", current.display()))?;
        }
    }
    std::fs::rename(staging.path().join(DB), &db)?;
    let photos = staging.path().join(PHOTOS);
    if photos.is_dir() {
        std::fs::rename(&photos, data_dir.join(PHOTOS))?;
    }
    let config = staging.path().join(CONFIG);
    let config_note = if !config.is_file() {
        String::new()
    } else if data_dir.join(CONFIG).exists() {
        let aside = data_dir.join(format!("{CONFIG}.from-backup"));
        std::fs::rename(&config, &aside)?;
        format!(
            "; this folder's facereko.toml is unchanged, the backup's is {}",
            aside.display()
        )
    } else {
        std::fs::rename(&config, data_dir.join(CONFIG))?;
        ", facereko.toml".into()
    };
    println!(
        "restored {} into {}: the database, {} photos{config_note}",
        a.file.display(),
        data_dir.display(),
        count_files(&data_dir.join(PHOTOS))
    );
    Ok(())
}

/// Unpacks only what a backup holds (the database, photos, the config, the manifest) as plain files
/// and folders; anything else — other names, links, devices, paths that climb out — is refused.
fn unpack(archive: &Path, into: &Path) -> Result<()> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut ar = tar::Archive::new(GzDecoder::new(file));
    ar.set_preserve_permissions(false);
    let entries = ar
        .entries()
        .with_context(|| format!("{} is not a gzip'd tar archive", archive.display()))?;
    for entry in entries {
        let mut e = entry.with_context(|| format!("reading {}", archive.display()))?;
        let path = e.path()?.into_owned();
        let first = path.components().next();
        let known = matches!(first, Some(Component::Normal(n)) if [DB, PHOTOS, CONFIG, MANIFEST].iter().any(|k| n == *k));
        let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
        let kind = e.header().entry_type();
        if !known || !plain || !(kind.is_file() || kind.is_dir()) {
            bail!(
                "{} holds {:?}, which no FaceReko backup has: not restored",
                archive.display(),
                path
            );
        }
        e.unpack_in(into)
            .with_context(|| format!("unpacking {}", path.display()))?;
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let t = e.file_type();
            match t {
                Ok(t) if t.is_dir() => count_files(&e.path()),
                Ok(t) if t.is_file() => 1,
                _ => 0,
            }
        })
        .sum()
}
