//! Web accounts, browser sessions and API tokens (issue 5).
//!
//! Passwords are stored as Argon2id PHC strings (`$argon2id$v=19$…`); [`hash_password`] and
//! [`verify_password`] are here so the CLI, the web app and the legacy import agree on one format.
//! Session cookies and API tokens are random 256-bit values handed to the client once; the database keeps
//! only their SHA-256, so a leaked database cannot be replayed as a login.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use facereko_domain::{CardUid, PersonId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// What an account may do in the web app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: people, cards, faces, accounts, arm/disarm.
    Admin,
    /// Read-only: status and history.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(Error::Invalid(format!(
                "unknown role {other:?} (expected admin or viewer)"
            ))),
        }
    }
}

/// A stored account. `password_hash` is an Argon2id PHC string, never a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub person_id: Option<PersonId>,
    /// The card that was on the reader when the account was created (the original's `cardUID`).
    pub card_uid: Option<CardUid>,
    pub failed_logins: i64,
    pub locked_until: Option<DateTime<Utc>>,
    /// Set for imported accounts whose plaintext password had to be kept working.
    pub must_change_password: bool,
    pub created: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

impl Account {
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("person_id", &self.person_id)
            .field("card_uid", &self.card_uid)
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .field("must_change_password", &self.must_change_password)
            .finish_non_exhaustive()
    }
}

/// A new account; hash the password with [`hash_password`] first.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub person_id: Option<PersonId>,
    pub card_uid: Option<CardUid>,
    pub must_change_password: bool,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Changes to an account: `None` leaves a field as it is; `Some(None)` clears a nullable one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub person_id: Option<Option<PersonId>>,
    pub card_uid: Option<Option<CardUid>>,
    pub must_change_password: Option<bool>,
}

impl fmt::Debug for AccountUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountUpdate")
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("role", &self.role)
            .field("person_id", &self.person_id)
            .field("card_uid", &self.card_uid)
            .field("must_change_password", &self.must_change_password)
            .finish()
    }
}

/// A browser session (the token itself is only known to the browser).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub account_id: i64,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// An API token's metadata (the token itself was shown once at creation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub created: DateTime<Utc>,
    pub expires: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
}

/// A pending or spent invitation to create an account with a card (the code itself was shown once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: i64,
    /// The enrolled person whose card creates the account.
    pub person_id: i64,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// When the account was created with it; an invitation is good for one account.
    pub used: Option<DateTime<Utc>>,
}

/// The original's rule, kept: letters and digits, 1–30 characters (we also allow `.`, `_`, `-`).
pub fn validate_username(username: &str) -> Result<()> {
    let ok_len = (1..=30).contains(&username.chars().count());
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "username {username:?}: use 1-30 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// Argon2id hash (PHC string) of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    password_auth::generate_hash(password)
}

/// Whether `password` matches the PHC `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    password_auth::verify_password(password, hash).is_ok()
}

/// A new random secret for a session cookie or an API token: 32 random bytes as 64 hex characters.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database keeps of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert_ne!(hash_password("correct horse"), h, "salted");
    }

    #[test]
    fn usernames_follow_the_original_rule() {
        assert!(validate_username("ada").is_ok());
        assert!(validate_username("Ada_Lovelace-1.x").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username(&"a".repeat(31)).is_err());
        assert!(validate_username("a b").is_err());
        assert!(validate_username("ada'--").is_err());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_token());
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&new_token()));
        assert!("admin".parse::<Role>().is_ok() && "root".parse::<Role>().is_err());
    }
}
