//! Response hardening applied to every route: security headers, no caching of pages, a same-origin check
//! on state-changing requests, and friendly pages in place of bare framework errors.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::AppState;

/// Nothing from elsewhere, no inline code, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    if !is_api
        && !matches!(*req.method(), Method::GET | Method::HEAD)
        && !same_origin(&req, state.config.trust_forwarded_for)
    {
        return AppError::Forbidden("This request came from another site and was refused.".into())
            .into_response();
    }
    let session = crate::auth::read_cookie(
        req.headers(),
        crate::auth::session_cookie_name(state.config.secure_cookies),
    );
    // Where a failed form came from (this site only), for the error page's way back.
    let back = (!matches!(*req.method(), Method::GET | Method::HEAD))
        .then(|| local_referer(&req))
        .flatten();
    let mut resp = next.run(req).await;
    if let (Some(page), Some(token)) = (
        resp.extensions().get::<crate::views::ErrorPage>().cloned(),
        session.filter(|_| !is_api),
    ) {
        // The friendly page again, now with the menu of whoever is signed in.
        if let Some(account) = crate::auth::live_account(&state, &token).await {
            let user = crate::auth::CurrentUser::new(account, token, None);
            let mut again = page.render(Some(&user), back.as_deref());
            // Whatever else the first page carried (a cookie, an authentication challenge) stays.
            let own: Vec<_> = again.headers().keys().cloned().collect();
            for (name, value) in resp.headers() {
                if !own.contains(name) {
                    again.headers_mut().append(name.clone(), value.clone());
                }
            }
            resp = again;
        }
    }
    let status = resp.status();
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html") || v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_html {
        // A bare framework error (405, 413, 415, a rejected extractor): show it as a page or JSON.
        let err = match status {
            StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge(state.config.upload_limit_bytes),
            StatusCode::METHOD_NOT_ALLOWED => {
                AppError::BadRequest("This address does not accept that kind of request.".into())
            }
            StatusCode::NOT_FOUND => AppError::NotFound,
            s if s.is_server_error() => AppError::Internal(format!("bare {s} response")),
            _ => AppError::BadRequest("The request could not be understood.".into()),
        };
        let mut replaced = if is_api {
            crate::error::ApiError(err).into_response()
        } else {
            err.into_response()
        };
        *replaced.status_mut() = status;
        resp = replaced;
    }
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Not `no-referrer`: browsers then send `Origin: null` on form posts, which the origin check refuses.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if state.config.secure_cookies {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The path of a same-site `Referer` (`/people/3`), for a link back to the page a form was on.
fn local_referer(req: &Request<Body>) -> Option<String> {
    let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
    let host = req.headers().get(header::HOST)?.to_str().ok()?;
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let (src_host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !src_host.eq_ignore_ascii_case(host) {
        return None;
    }
    let path = crate::views::safe_next(Some(path));
    (path != "/").then_some(path)
}

/// A browser's state-changing request must come from this site: `Origin` (or, without it, `Referer`)
/// names the same host as `Host` (or, behind a trusted proxy, `X-Forwarded-Host`). Requests with neither
/// (non-browser clients) are left to the CSRF check.
fn same_origin(req: &Request<Body>, behind_proxy: bool) -> bool {
    let forwarded = behind_proxy
        .then(|| req.headers().get("x-forwarded-host"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    let host = forwarded.or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
    });
    let source = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match (source, host) {
        (None, _) => true,
        (Some("null"), _) => false,
        (Some(src), Some(host)) => {
            let rest = src
                .strip_prefix("https://")
                .or_else(|| src.strip_prefix("http://"))
                .unwrap_or("");
            let src_host = rest.split('/').next().unwrap_or("");
            src_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => false,
    }
}
