//! Extractors that turn malformed input into a friendly 400 page instead of a bare framework error.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// `axum::Form`, with a friendly rejection.
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(e) => {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    return Err(AppError::TooLarge(0));
                }
                tracing::debug!("bad form: {e}");
                Err(AppError::BadRequest(
                    "The form was incomplete or had a value of the wrong kind.".into(),
                ))
            }
        }
    }
}

/// `axum::extract::Query`, with a friendly rejection.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => {
                tracing::debug!("bad query: {e}");
                Err(AppError::BadRequest(
                    "The address has a parameter of the wrong kind.".into(),
                ))
            }
        }
    }
}

/// `axum::extract::Path`, with a friendly rejection.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => {
                tracing::debug!("bad path: {e}");
                Err(AppError::BadRequest("The address is not valid.".into()))
            }
        }
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
