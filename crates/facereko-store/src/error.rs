//! The store's one error type.

use std::path::PathBuf;

use facereko_domain::CardUid;

/// Everything the store can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input the store will not accept (empty name, oversized label, bad photo path, …).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The card is already registered to someone.
    #[error("card {uid} already belongs to {owner}")]
    CardTaken { uid: CardUid, owner: String },
    /// The named thing does not exist (`"person 7"`, `"card 04:A2:2B:19"`, …).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is already used (`"person \"Ada\""`, `"account \"admin\""`).
    #[error("{0} already exists")]
    Conflict(String),
    /// The URL's scheme is none the store knows.
    #[error(
        "unsupported database URL {0:?}: expected sqlite://PATH, sqlite::memory:, mysql://USER@HOST/DB \
         or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl(String),
    /// The URL names a backend this binary was built without.
    #[error(
        "database URL {url:?} needs the {backend} backend, which this binary was built without \
         (rebuild facereko-store with feature \"{feature}\")"
    )]
    BackendNotCompiled {
        url: String,
        backend: &'static str,
        feature: &'static str,
    },
    /// The server is up but refused the credentials or the database.
    #[error("the database server at {url} refused the login: {message}")]
    LoginRefused { url: String, message: String },
    /// The server could not be reached (down, network, pool timeout).
    #[error("the database at {url} is unreachable: {message}")]
    Unavailable { url: String, message: String },
    /// The database was migrated by a newer FaceReko.
    #[error(
        "the database schema is version {found}, newer than this FaceReko supports ({supported}); \
         upgrade FaceReko instead of downgrading the database"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// A row that does not decode into a domain value (hand-edited database?).
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// File system trouble in the photo folder or the spool.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The original's database could not be imported.
    #[error("legacy import: {0}")]
    Legacy(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The store's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the failure means "the server is not there right now" (worth spooling and retrying),
    /// as opposed to a refused statement.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Db(e) => is_connection_error(e),
            _ => false,
        }
    }

    pub(crate) fn unique_violation(&self) -> bool {
        matches!(self, Error::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    pub(crate) fn foreign_key_violation(&self) -> bool {
        matches!(self, Error::Db(sqlx::Error::Database(e)) if e.is_foreign_key_violation())
    }
}

pub(crate) fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
    ) || matches!(e, sqlx::Error::Protocol(m) if m.contains("closed") || m.contains("EOF"))
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some("***")) {
            Ok(()) => parsed.to_string(),
            Err(()) => format!("{}://***", parsed.scheme()),
        },
        Ok(_) => url.to_string(),
        // Not a URL at all: show nothing that could be a credential.
        Err(_) if url.contains('@') => {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            format!("{scheme}://*** (not a valid URL)")
        }
        Err(_) => url.to_string(),
    }
}

/// Turns a connect failure into `LoginRefused` / `Unavailable` with the URL (password redacted).
#[cfg_attr(not(any(feature = "mysql", feature = "postgres")), allow(dead_code))]
pub(crate) fn connect_error(url: &str, e: sqlx::Error) -> Error {
    let url = redact_url(url);
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().map(|c| c.to_string()).unwrap_or_default();
        // 28000/28P01: bad user or password; 42000 (MySQL 1044/1049) and 3D000 (PostgreSQL): no access
        // to / no such database.
        if matches!(
            code.as_str(),
            "28000" | "28P01" | "42000" | "3D000" | "1044" | "1045"
        ) || db.message().contains("Access denied")
        {
            return Error::LoginRefused {
                url,
                message: db.message().to_string(),
            };
        }
    }
    if is_connection_error(&e) {
        return Error::Unavailable {
            url,
            message: e.to_string(),
        };
    }
    Error::Db(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("mysql://door:s3cret@db.example:3306/FaceReko"),
            "mysql://door:***@db.example:3306/FaceReko"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("mysql://u:p@ss@h/db"),
            "mysql://u:***@h/db",
            "an @ in the password"
        );
    }
}
