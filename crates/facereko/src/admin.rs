//! Administration commands: accounts, retention purge, and the import of the original system's data.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Subcommand;
use facereko_store::{hash_password, NewAccount, Role};

use crate::cli::open_store;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Add a web app account. The password is read from standard input (asked for on a terminal).
    Add {
        /// Letters and digits, up to 30 characters.
        username: String,
        /// Full rights (people, cards, faces, accounts, arm/disarm); without it, a read-only viewer.
        #[arg(long)]
        admin: bool,
    },
    /// List the accounts.
    List,
}

/// Reads a password: from a terminal without echo, else one line of standard input.
fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("password (at least 8 characters): ");
        let _ = std::io::stderr().flush();
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read.context("reading the password")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(password)
}

pub async fn accounts(
    data_dir: &Path,
    config_file: Option<&Path>,
    cmd: AccountsCommand,
) -> Result<()> {
    let store = open_store(data_dir, config_file).await?;
    match cmd {
        AccountsCommand::Add { username, admin } => {
            if username.is_empty()
                || username.chars().count() > 30
                || !username.chars().all(|c| c.is_ascii_alphanumeric())
            {
                bail!("a username is 1 to 30 letters and digits");
            }
            if store.account_by_username(&username).await?.is_some() {
                bail!("the account {username:?} already exists");
            }
            let password = read_password()?;
            let role = if admin { Role::Admin } else { Role::Viewer };
            store
                .add_account(&NewAccount {
                    username: username.clone(),
                    password_hash: hash_password(&password),
                    role,
                    person_id: None,
                    card_uid: None,
                    must_change_password: false,
                })
                .await?;
            if let Ok((config, _)) = Config::load(config_file, data_dir) {
                let role = format!("role {role}");
                crate::cli::audit(&store, &config, "account.add", &username, role).await;
            }
            println!(
                "account {username} added ({})",
                if admin { "admin" } else { "viewer" }
            );
        }
        AccountsCommand::List => {
            let list = store.list_accounts().await?;
            if list.is_empty() {
                println!("no accounts yet: open the web app for first-run setup, or `facereko accounts add NAME --admin`");
            }
            for a in list {
                println!("{:<30} {:?}", a.username, a.role);
            }
        }
    }
    Ok(())
}

pub async fn purge(data_dir: &Path, config_file: Option<&Path>) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    let store = open_store(data_dir, config_file).await?;
    let r = store
        .purge_photos(&config.store.retention, Utc::now())
        .await?;
    println!(
        "deleted {} expired attempt photos and {} orphan files; pruned {} delivered events and {} expired sessions",
        r.photos_deleted, r.orphans_deleted, r.outbox_pruned, r.sessions_purged
    );
    Ok(())
}

pub async fn import_legacy(
    data_dir: &Path,
    config_file: Option<&Path>,
    url: &str,
    photos: Option<PathBuf>,
) -> Result<()> {
    let store = open_store(data_dir, config_file).await?;
    let r = facereko_store::import_legacy(&store, url, photos.as_deref())
        .await
        .with_context(|| format!("importing from {}", crate::cli::redact_url(url)))?;
    println!(
        "imported {} accounts and {} attempts ({} were already here)",
        r.accounts_imported.len(),
        r.attempts_imported,
        r.attempts_already_present
    );
    for (user, why) in &r.accounts_skipped {
        println!("  skipped account {user}: {why}");
    }
    for (user, raw) in &r.cards_unresolved {
        println!("  card of {user} ({raw:?}) is ambiguous in the old format: link it by hand");
    }
    if !r.users_to_rotate.is_empty() {
        println!(
            "The original stored these passwords in plain text; they are hashed now, and each must be changed at the next sign-in: {}",
            r.users_to_rotate.join(", ")
        );
    }
    Ok(())
}
