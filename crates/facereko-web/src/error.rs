//! Errors: [`Error`] for the library's own failures (config), [`AppError`] for what a request can end in.
//!
//! Every `AppError` becomes a friendly page (or a JSON body under `/api/`) with a fitting status; the
//! details of internal failures go to the log only, tagged with a short reference the page shows.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Errors of the web crate outside a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    /// The store failed while the app was starting (reading whether any account exists).
    #[error("web app: {0}")]
    Store(#[from] facereko_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request failed, as the browser may see it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// Signed in, but not allowed (a viewer on an admin page).
    #[error("{0}")]
    Forbidden(String),
    /// Not signed in, or the token is unknown.
    #[error("sign in first")]
    Unauthorized,
    /// A form without the right CSRF token (stale page, or another site submitting it).
    #[error("this form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    TooMany(String),
    /// The body is bigger than the upload limit (bytes; 0 when unknown at the point of refusal).
    #[error("{}", too_large(*.0))]
    TooLarge(usize),
    #[error("{0}")]
    Conflict(String),
    /// The door controller or camera could not do it right now.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: the message goes to the log, the page shows a reference only.
    #[error("internal error: {0}")]
    Internal(String),
}

fn too_large(limit: usize) -> String {
    if limit == 0 {
        "The upload is too large.".into()
    } else {
        format!(
            "The upload is too large: the limit is {:.1} MiB.",
            limit as f64 / (1024.0 * 1024.0)
        )
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text a user sees; internal details are replaced by a log reference.
    pub fn public_message(&self) -> (String, Option<String>) {
        match self {
            AppError::Internal(detail) => {
                let reference = format!("{:08x}", rand::random::<u32>());
                tracing::error!(%reference, "request failed: {detail}");
                (
                    "Something went wrong on the server. The problem was logged.".into(),
                    Some(reference),
                )
            }
            AppError::NotFound => ("There is no such page.".into(), None),
            other => (other.to_string(), None),
        }
    }
}

impl From<facereko_store::Error> for AppError {
    fn from(e: facereko_store::Error) -> Self {
        use facereko_store::Error as S;
        match e {
            S::Invalid(m) => AppError::BadRequest(m),
            S::CardTaken { .. } | S::Conflict(_) => AppError::Conflict(e.to_string()),
            S::NotFound(_) => AppError::NotFound,
            other if other.is_unavailable() => {
                tracing::error!("store unavailable: {other}");
                AppError::Unavailable(
                    "The database cannot be reached right now; try again shortly.".into(),
                )
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<facereko_door::Error> for AppError {
    fn from(e: facereko_door::Error) -> Self {
        match e {
            facereko_door::Error::NoCard(_) => AppError::BadRequest(
                "No card was presented on the reader in time. Try again and hold the card on the reader."
                    .into(),
            ),
            facereko_door::Error::Stopped => {
                AppError::Unavailable("The door controller is not running.".into())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, reference) = self.public_message();
        let mut resp = crate::views::error_page(status, &message, reference.as_deref());
        if matches!(self, AppError::Unauthorized) {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The same failure as JSON, for `/api/v1`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl From<facereko_store::Error> for ApiError {
    fn from(e: facereko_store::Error) -> Self {
        ApiError(e.into())
    }
}

impl From<facereko_door::Error> for ApiError {
    fn from(e: facereko_door::Error) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let (message, reference) = self.0.public_message();
        let mut resp = (
            status,
            axum::Json(serde_json::json!({ "error": message, "reference": reference })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
