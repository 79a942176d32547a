//! Extractors that turn malformed input into a friendly 400 page instead of a bare framework error, and
//! the form extractors that check a form's CSRF token before its handler runs.
//!
//! CSRF: a state-changing form reaches its handler only through [`CsrfForm`] (signed in: the token is
//! derived from the session, see [`crate::auth`]), [`CsrfMultipart`] (the same, for uploads) or
//! [`PreCsrfForm`] (signed out: set-up, sign-in and account creation, with a double-submit cookie). The
//! form type a handler declares has no `csrf` field, the comparison is private to this module, and there
//! is no plain form extractor: a handler cannot take a form whose token was not checked, nor check one by
//! hand. `tests/router.rs` posts a forged token to every `POST` route the router declares.
//!
//! Refusals come in the order they had when each handler checked its token itself: the handler's
//! `CurrentUser`/`Admin` first (sign-in redirect, "not allowed"), then the path, then the form's shape
//! (400), then the token (403). [`CsrfForm`] reuses the session that extractor found (it is kept in the
//! request's extensions), so the session is looked up once.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Multipart, RawForm, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::auth::{csrf_cookie_name, read_cookie, same_secret, AuthRejection, CurrentUser};
use crate::error::AppError;
use crate::AppState;

/// Checks a signed-in form's token against its session's.
fn check_csrf(user: &CurrentUser, given: &str) -> Result<(), AppError> {
    if same_secret(&user.csrf, given) {
        Ok(())
    } else {
        Err(AppError::Csrf)
    }
}

/// The token field every form carries.
#[derive(Deserialize)]
struct Token {
    csrf: String,
}

/// A form that has nothing but its token (a button: sign out, remove, revoke...).
#[derive(Deserialize)]
pub(crate) struct NoFields {}

fn bad_form(e: impl std::fmt::Display) -> AppError {
    tracing::debug!("bad form: {e}");
    AppError::BadRequest("The form was incomplete or had a value of the wrong kind.".into())
}

/// A urlencoded body's token and the rest of the form, with the friendly rejections `axum::Form` had
/// here: 413 for a body over the limit, 400 for anything else, a missing or repeated `csrf` field
/// included. The body is read once and deserialised twice, as `T` (which ignores the token's field) and
/// as [`Token`]; `#[serde(flatten)]` would do it in one pass but cannot read numbers from a form.
async fn token_and_form<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
) -> Result<(String, T), AppError> {
    let bytes = match RawForm::from_request(req, state).await {
        Ok(RawForm(bytes)) => bytes,
        Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(AppError::TooLarge(0))
        }
        Err(e) => return Err(bad_form(e)),
    };
    let Token { csrf } = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
    let form = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
    Ok((csrf, form))
}

/// A signed-in form whose `csrf` field matched the session's token: the form `T`, which has no `csrf`
/// field of its own. The session is the one the handler's `CurrentUser` or `Admin` (declared before this
/// extractor) found; without such an extractor this one signs the request in itself, with the same
/// redirects.
pub(crate) struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AuthRejection;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let user = CurrentUser::from_request_parts(&mut parts, state).await?;
        let (token, form) = token_and_form(Request::from_parts(parts, body), state)
            .await
            .map_err(AuthRejection::Error)?;
        check_csrf(&user, &token).map_err(AuthRejection::Error)?;
        Ok(CsrfForm(form))
    }
}

/// A signed-out form (set-up, sign-in, account creation) whose `csrf` field matched the browser's CSRF
/// cookie (double submit): the form `T`, which has no `csrf` field of its own.
pub(crate) struct PreCsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for PreCsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let cookie = read_cookie(req.headers(), csrf_cookie_name(state.config.secure_cookies));
        let (token, form) = token_and_form(req, state).await?;
        match cookie {
            Some(t) if same_secret(&t, &token) => Ok(PreCsrfForm(form)),
            _ => Err(AppError::Csrf),
        }
    }
}

/// A signed-in `multipart/form-data` upload whose token was checked before anything else in it is read.
/// The token must be the first field (the page's form puts it there, and browsers send fields in page
/// order); anything else first, or a second `csrf` field later, is refused as a forged form.
#[derive(Debug)]
pub(crate) struct CsrfMultipart {
    fields: Multipart,
    limit: usize,
}

/// One field of an upload, read whole (within the body limit).
#[derive(Debug)]
pub(crate) struct UploadField {
    pub name: Option<String>,
    pub bytes: Bytes,
}

/// A failed read of an upload: 413 over the body limit, 400 otherwise.
fn upload_error(limit: usize, e: axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge(limit)
    } else {
        AppError::BadRequest("The upload was incomplete; try again.".into())
    }
}

impl FromRequest<AppState> for CsrfMultipart {
    /// The session's refusals, axum's own for a body that is not multipart (the security layer turns it
    /// into a page), and [`AppError`] for the rest.
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let user = CurrentUser::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut fields = Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let limit = state.config.upload_limit_bytes;
        let token = match fields.next_field().await {
            Ok(Some(field)) if field.name() == Some("csrf") => {
                field.text().await.map_err(|e| upload_error(limit, e))
            }
            // Nothing, or something else first: refused unread.
            Ok(_) => Err(AppError::Csrf),
            Err(e) => Err(upload_error(limit, e)),
        };
        token
            .and_then(|t| check_csrf(&user, &t))
            .map_err(IntoResponse::into_response)?;
        Ok(CsrfMultipart { fields, limit })
    }
}

impl CsrfMultipart {
    /// The next field after the token, read whole.
    pub(crate) async fn next_field(&mut self) -> Result<Option<UploadField>, AppError> {
        let limit = self.limit;
        let Some(field) = self
            .fields
            .next_field()
            .await
            .map_err(|e| upload_error(limit, e))?
        else {
            return Ok(None);
        };
        let name = field.name().map(str::to_string);
        if name.as_deref() == Some("csrf") {
            return Err(AppError::Csrf);
        }
        let bytes = field.bytes().await.map_err(|e| upload_error(limit, e))?;
        Ok(Some(UploadField { name, bytes }))
    }
}

/// `axum::extract::Query`, with a friendly rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, with a friendly rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        tracing::debug!("bad query: {e}");
        AppError::BadRequest("The address has a parameter of the wrong kind.".into())
    }
}

impl From<PathRejection> for AppError {
    fn from(e: PathRejection) -> Self {
        tracing::debug!("bad path: {e}");
        AppError::BadRequest("The address is not valid.".into())
    }
}

/// The TCP peer's address when the server was started with connect info (absent in `oneshot` tests).
pub struct Peer(pub Option<axum::extract::ConnectInfo<std::net::SocketAddr>>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .cloned(),
        ))
    }
}
