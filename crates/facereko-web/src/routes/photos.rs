//! Photos, only to signed-in users: `/photos/<path under the photo folder>` with its random, unguessable
//! name, `Cache-Control: private`; `?thumb=1` gives a small JPEG made on demand and kept in memory only
//! (so a photo purged by retention leaves no copy behind).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::extract::{Path, Query};
use crate::views::valid_photo_path;
use crate::AppState;

/// Thumbnail size in pixels (longest side).
pub const THUMB_SIDE: u32 = 160;
/// Memory kept for thumbnails before the cache is emptied.
const THUMB_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A path under the photo folder as the store names photos: `attempts/2026-11/<hex>.jpg`,
/// `faces/<hex>.png`. Anything else (dot segments, odd characters, other extensions) is refused.

#[derive(Deserialize)]
pub(crate) struct PhotoQuery {
    thumb: Option<String>,
}

fn image_response(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            ),
        ],
        body,
    )
        .into_response()
}

/// A stored photo's bytes: the file, or for an enrolment photo taken at another door of the site, its
/// copy in the database (`fleet.share_photos`).
async fn stored(
    state: &AppState,
    relative: &str,
    path: &std::path::Path,
) -> Result<Vec<u8>, AppError> {
    match tokio::fs::read(path).await {
        Ok(b) => Ok(b),
        Err(_) if relative.starts_with(&format!("{}/faces/", facereko_store::PHOTOS_DIR)) => state
            .store
            .shared_face_photo(relative)
            .await?
            .ok_or(AppError::NotFound),
        Err(_) => Err(AppError::NotFound),
    }
}

pub(crate) async fn photo(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(rest): Path<String>,
    Query(q): Query<PhotoQuery>,
) -> Result<Response, AppError> {
    if !valid_photo_path(&rest) {
        return Err(AppError::BadRequest("That is not a photo address.".into()));
    }
    // Enrolment photos are what a face is recognised by: administrators only.
    if rest.starts_with("faces/") && !user.is_admin() {
        return Err(AppError::Forbidden(
            "Enrolment photos are shown to administrators only.".into(),
        ));
    }
    let relative = format!("{}/{rest}", facereko_store::PHOTOS_DIR);
    let path = state
        .store
        .photo_path(&relative)
        .map_err(|_| AppError::BadRequest("That is not a photo address.".into()))?;
    let content_type = if rest.to_ascii_lowercase().ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    if q.thumb.is_some() {
        // Only a photo still on disk is served from (or kept in) the cache: one purged by retention
        // leaves no copy behind. A shared copy from the database is made into a thumbnail each time.
        let on_disk = tokio::fs::metadata(&path).await.is_ok();
        let cached = on_disk
            .then(|| {
                state
                    .runtime
                    .thumbs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&relative)
                    .cloned()
            })
            .flatten();
        if let Some(t) = cached {
            return Ok(image_response("image/jpeg", t.as_ref().clone()));
        }
        let bytes = stored(&state, &relative, &path).await?;
        let _one = state.runtime.thumb_decode.lock().await;
        let max = state.config.max_image_side.max(4096);
        let thumb =
            tokio::task::spawn_blocking(move || crate::images::thumbnail(&bytes, THUMB_SIDE, max))
                .await
                .map_err(|e| AppError::Internal(format!("thumbnail task: {e}")))?
                .ok_or_else(|| AppError::BadRequest("The stored photo cannot be read.".into()))?;
        let thumb = Arc::new(thumb);
        if on_disk {
            let mut cache = state
                .runtime
                .thumbs
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let used: usize = cache.values().map(|v| v.len()).sum();
            if used + thumb.len() > THUMB_CACHE_BYTES {
                cache.clear();
            }
            cache.insert(relative, thumb.clone());
        }
        return Ok(image_response("image/jpeg", thumb.as_ref().clone()));
    }
    let bytes = stored(&state, &relative, &path).await?;
    Ok(image_response(content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::valid_photo_path;

    #[test]
    fn only_photo_shaped_paths_pass() {
        assert!(valid_photo_path("attempts/2026-11/0a1b2c.jpg"));
        assert!(valid_photo_path("faces/0a1b2c.png"));
        for bad in [
            "../facereko.db",
            "attempts/../../etc/passwd.jpg",
            "attempts/.hidden.jpg",
            "attempts//x.jpg",
            "attempts/x.db",
            "attempts/x%2e.jpg",
            "attempts/x y.jpg",
            "/etc/x.jpg",
        ] {
            assert!(!valid_photo_path(bad), "{bad}");
        }
    }
}
