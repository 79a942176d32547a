//! Sessions, CSRF tokens, sign-in rate limits and API bearer tokens.
//!
//! Sessions live in the store (only the SHA-256 of the cookie value is kept there); the cookie is
//! HttpOnly, SameSite=Strict, `Secure` (with the `__Host-` prefix) behind TLS. The store keeps the
//! absolute expiry; the idle expiry is tracked here, in memory, per session (after a restart a session
//! counts as active from its first request).
//!
//! CSRF: a signed-in form carries a token derived from the session secret (SHA-256 with a fixed label), so
//! no extra state is needed and a token is useless without the cookie. Forms shown before sign-in (setup,
//! sign-in, card-based account creation) use a double-submit cookie instead. Tokens are compared in
//! constant time, by the form extractors in `extract` (`CsrfForm`, `CsrfMultipart`, `PreCsrfForm`), never
//! by a handler.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use facereko_store::{Account, Role};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, AppError};
use crate::AppState;

/// Name of the session cookie; `__Host-` (which browsers only accept over HTTPS) when cookies are secure.
pub(crate) fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-facereko_session"
    } else {
        "facereko_session"
    }
}

pub(crate) fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-facereko_csrf"
    } else {
        "facereko_csrf"
    }
}

/// A `Set-Cookie` value with the flags every FaceReko cookie has.
pub(crate) fn cookie(name: &str, value: &str, secure: bool, max_age: Option<i64>) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        s.push_str("; Secure");
    }
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The value of cookie `name` from the request headers. A name sent more than once counts as absent: a
/// sibling subdomain or a script on plain HTTP can plant a second cookie of the same name, and which one a
/// server would read first is up to the browser's ordering, so neither is trusted. (Hence no cookie jar
/// such as `axum_extra`'s: it keeps one cookie per name, so a duplicate could no longer be told apart.)
pub(crate) fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string());
    let value = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(value)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The CSRF token of a session.
pub(crate) fn csrf_for_session(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"facereko-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Constant-time equality of two secrets (`subtle`); an empty secret never matches.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The client address: the TCP peer, or the last `X-Forwarded-For` entry when configured to trust it.
pub(crate) fn client_ip(
    parts_headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
    trust_forwarded: bool,
) -> Option<IpAddr> {
    if trust_forwarded {
        if let Some(ip) = parts_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    connect.map(|c| c.0.ip())
}

/// Mutable, in-memory state of the web app: idle tracking, sign-in limits, the API token cache.
#[derive(Debug)]
pub(crate) struct Runtime {
    last_seen: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    tokens: Mutex<HashMap<String, (Account, Instant)>>,
    /// Held while a request waits for a card on the reader: one waiter at a time.
    pub(crate) card_wait: tokio::sync::Mutex<()>,
    /// Ends the wait of a "Tap now" (its Cancel button).
    pub(crate) card_cancel: tokio::sync::Notify,
    /// Thumbnails made so far, by photo path (bounded; dropped wholesale when full).
    pub(crate) thumbs: Mutex<HashMap<String, std::sync::Arc<Vec<u8>>>>,
    /// One thumbnail decode at a time: a Pi has few cores and the door comes first.
    pub(crate) thumb_decode: tokio::sync::Mutex<()>,
    /// Serialises first-run set-up, so two browsers cannot both create "the first" admin.
    pub(crate) setup: tokio::sync::Mutex<()>,
    /// Set once an account is known to exist (accounts are never all removed through the app).
    pub(crate) has_accounts: std::sync::atomic::AtomicBool,
    /// The one-time code `/setup` asks for (see [`new_setup_code`]).
    pub(crate) setup_code: String,
    /// A secret just created (an API token, an invitation code), waiting for the page the creating
    /// form redirects to: by session, shown once, then gone.
    reveal: Mutex<HashMap<String, (Reveal, Instant)>>,
    /// Photos whose face looks like another person's, waiting for an administrator's confirmation.
    pending_faces: Mutex<HashMap<String, PendingFace>>,
}

/// A photo held back from enrolment until confirmed (see [`Runtime::hold_face`]).
#[derive(Clone, Debug)]
pub(crate) struct PendingFace {
    /// The session that uploaded it: no other may confirm it.
    session: String,
    pub(crate) person: facereko_domain::PersonId,
    pub(crate) photo: facereko_domain::Photo,
    /// Where the photo came from, for the audit trail ("from an uploaded photo").
    pub(crate) source: String,
    /// Whom it looks like, for the audit trail.
    pub(crate) looks_like: String,
    at: Instant,
}

/// How long a held photo waits, and how many are held at most (each may be a few MiB).
const PENDING_FOR: Duration = Duration::from_secs(600);
const PENDING_MAX: usize = 16;

/// A secret shown once after the redirect that follows its creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reveal {
    Token(String),
    Invitation(String),
}

/// How long a created secret waits for its page.
const REVEAL_FOR: Duration = Duration::from_secs(300);

/// A set-up code: 12 characters from an alphabet without look-alikes (no 0/O, 1/I/L), shown `ABCD-EFGH-JKMN`;
/// 60 bits, and guessing is bounded by the per-address sign-in limit.
pub(crate) fn new_setup_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    let chars: Vec<char> = (0..12)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether `given` is `code`, ignoring case, dashes and spaces as people type them.
pub(crate) fn setup_code_matches(code: &str, given: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    same_secret(&norm(code), &norm(given))
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            last_seen: Default::default(),
            failures: Default::default(),
            tokens: Default::default(),
            card_wait: Default::default(),
            card_cancel: Default::default(),
            thumbs: Default::default(),
            thumb_decode: Default::default(),
            setup: Default::default(),
            has_accounts: Default::default(),
            setup_code: new_setup_code(),
            reveal: Default::default(),
            pending_faces: Default::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    /// Records activity; `false` when the session was idle too long.
    fn touch(&self, token: &str, idle: Duration) -> bool {
        let key = hex::encode(facereko_store::token_hash(token));
        let now = Instant::now();
        let mut map = lock(&self.last_seen);
        if map.len() > 10_000 {
            map.retain(|_, t| now.duration_since(*t) < idle);
        }
        match map.insert(key, now) {
            Some(prev) => now.duration_since(prev) < idle,
            None => true,
        }
    }

    pub(crate) fn forget_session(&self, token: &str) {
        lock(&self.last_seen).remove(&hex::encode(facereko_store::token_hash(token)));
    }

    /// Failed sign-ins from `ip` within `window`.
    pub(crate) fn failures_from(&self, ip: IpAddr, window: Duration) -> usize {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        let Some(q) = map.get_mut(&ip) else { return 0 };
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        q.len()
    }

    /// When the oldest failure counted for `ip` stops counting.
    pub(crate) fn address_free_in(&self, ip: IpAddr, window: Duration) -> Duration {
        let now = Instant::now();
        lock(&self.failures)
            .get(&ip)
            .and_then(|q| q.front().copied())
            .map(|t| window.saturating_sub(now.duration_since(t)))
            .unwrap_or_default()
    }

    /// Counts a password check from `ip` before it runs. `false` when `ip` already has `cap` failures
    /// within `window`: refuse without hashing. A check that then succeeds calls [`Self::attempt_succeeded`].
    pub(crate) fn begin_attempt(&self, ip: IpAddr, window: Duration, cap: usize) -> bool {
        if self.failures_from(ip, window) >= cap {
            return false;
        }
        self.record_failure(ip, cap);
        true
    }

    /// The check counted by [`Self::begin_attempt`] succeeded: it no longer counts as a failure.
    pub(crate) fn attempt_succeeded(&self, ip: IpAddr) {
        if let Some(q) = lock(&self.failures).get_mut(&ip) {
            q.pop_back();
        }
    }

    pub(crate) fn record_failure(&self, ip: IpAddr, cap: usize) {
        let mut map = lock(&self.failures);
        if map.len() > 50_000 {
            map.clear();
        }
        let q = map.entry(ip).or_default();
        q.push_back(Instant::now());
        while q.len() > cap.max(1) * 2 {
            q.pop_front();
        }
    }

    fn cached_token(&self, key: &str, ttl: Duration) -> Option<Account> {
        let map = lock(&self.tokens);
        map.get(key)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(a, _)| a.clone())
    }

    fn cache_token(&self, key: String, account: Account) {
        let mut map = lock(&self.tokens);
        if map.len() > 1000 {
            map.clear();
        }
        map.insert(key, (account, Instant::now()));
    }

    /// Keeps `secret` for the next page of the session with `token` (replacing one not yet shown).
    pub(crate) fn keep_reveal(&self, token: &str, secret: Reveal) {
        let key = hex::encode(facereko_store::token_hash(token));
        let mut map = lock(&self.reveal);
        map.retain(|_, (_, at)| at.elapsed() < REVEAL_FOR);
        map.insert(key, (secret, Instant::now()));
    }

    /// The secret kept for this session, once.
    pub(crate) fn take_reveal(&self, token: &str) -> Option<Reveal> {
        let key = hex::encode(facereko_store::token_hash(token));
        lock(&self.reveal)
            .remove(&key)
            .filter(|(_, at)| at.elapsed() < REVEAL_FOR)
            .map(|(s, _)| s)
    }

    /// Holds a photo for the session of `token` until confirmed; the key its confirmation form carries.
    pub(crate) fn hold_face(
        &self,
        token: &str,
        person: facereko_domain::PersonId,
        photo: facereko_domain::Photo,
        source: String,
        looks_like: String,
    ) -> String {
        let mut key = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
        let key = hex::encode(key);
        let mut map = lock(&self.pending_faces);
        map.retain(|_, p| p.at.elapsed() < PENDING_FOR);
        while map.len() >= PENDING_MAX {
            let oldest = map.iter().min_by_key(|(_, p)| p.at).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        let session = hex::encode(facereko_store::token_hash(token));
        map.insert(
            key.clone(),
            PendingFace {
                session,
                person,
                photo,
                source,
                looks_like,
                at: Instant::now(),
            },
        );
        key
    }

    /// The photo held under `key` for this session, once.
    pub(crate) fn take_face(&self, token: &str, key: &str) -> Option<PendingFace> {
        let session = hex::encode(facereko_store::token_hash(token));
        let mut map = lock(&self.pending_faces);
        let fits = map
            .get(key)
            .is_some_and(|p| p.session == session && p.at.elapsed() < PENDING_FOR);
        fits.then(|| map.remove(key)).flatten()
    }

    /// Forgets every cached token (after a revocation or an account change).
    pub(crate) fn clear_token_cache(&self) {
        lock(&self.tokens).clear();
    }
}

/// The signed-in account of a page request.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub account: Account,
    pub(crate) token: String,
    pub(crate) csrf: String,
    /// The client's address (for the audit trail), when the server knows it.
    pub(crate) from: Option<IpAddr>,
}

impl CurrentUser {
    /// The user of the session `token` (its CSRF token derived from it), from address `from`.
    pub(crate) fn new(account: Account, token: String, from: Option<IpAddr>) -> Self {
        Self {
            csrf: csrf_for_session(&token),
            account,
            token,
            from,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.account.role == Role::Admin
    }
}

impl crate::views::SignedIn for CurrentUser {
    fn username(&self) -> &str {
        &self.account.username
    }
    fn is_admin(&self) -> bool {
        CurrentUser::is_admin(self)
    }
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Why a page request has no user: where the browser goes instead.
#[derive(Debug)]
pub enum AuthRejection {
    /// No account exists yet.
    Setup,
    SignIn {
        next: String,
        expired: bool,
    },
    /// Signed in, but the password must be changed before anything else.
    ChangePassword,
    Error(AppError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Setup => Redirect::to("/setup").into_response(),
            AuthRejection::SignIn { next, expired } => {
                let mut to = format!("/login?next={}", crate::views::url_encode(&next));
                if expired {
                    to.push_str("&expired=1");
                }
                Redirect::to(&to).into_response()
            }
            AuthRejection::ChangePassword => Redirect::to("/account").into_response(),
            AuthRejection::Error(e) => e.into_response(),
        }
    }
}

/// Whether any account exists (cached once true).
pub(crate) async fn has_accounts(state: &AppState) -> Result<bool, AppError> {
    use std::sync::atomic::Ordering;
    if state.runtime.has_accounts.load(Ordering::Relaxed) {
        return Ok(true);
    }
    let any = !state.store.list_accounts().await?.is_empty();
    if any {
        state.runtime.has_accounts.store(true, Ordering::Relaxed);
    }
    Ok(any)
}

/// The session of a request, if it has a live one (no redirects; for pages that work either way).
pub(crate) async fn session_user(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<CurrentUser>, AuthRejection> {
    let name = session_cookie_name(state.config.secure_cookies);
    let Some(token) = read_cookie(&parts.headers, name) else {
        return Ok(None);
    };
    let found = state
        .store
        .session(&token)
        .await
        .map_err(|e| AuthRejection::Error(e.into()))?;
    let Some((_session, account)) = found else {
        return Ok(None);
    };
    if account.is_locked(Utc::now()) {
        return Ok(None);
    }
    let idle = Duration::from_secs(u64::from(state.config.session_idle_minutes) * 60);
    if !state.runtime.touch(&token, idle) {
        state.runtime.forget_session(&token);
        let _ = state.store.delete_session(&token).await;
        return Err(AuthRejection::SignIn {
            next: next_of(parts),
            expired: true,
        });
    }
    let from = client_ip(
        &parts.headers,
        parts.extensions.get::<ConnectInfo<SocketAddr>>(),
        state.config.trust_forwarded_for,
    );
    Ok(Some(CurrentUser::new(account, token, from)))
}

/// Whether the session of `token` still exists and its account may sign in (for long-lived responses
/// such as the live stream, which outlive the check made when they started). A store error counts as not
/// live: the browser reconnects and is checked afresh.
pub(crate) async fn session_is_live(state: &AppState, token: &str) -> bool {
    live_account(state, token).await.is_some()
}

/// The account of the session `token` while it may still sign in; `None` for a session that is gone or
/// an account that is locked or disabled, and when the store cannot say.
pub(crate) async fn live_account(state: &AppState, token: &str) -> Option<Account> {
    match state.store.session(token).await {
        Ok(Some((_, account))) if !account.is_locked(Utc::now()) => Some(account),
        _ => None,
    }
}

fn next_of(parts: &Parts) -> String {
    if parts.method == axum::http::Method::GET {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())
    } else {
        "/".into()
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A second look in the same request (a form's CSRF check after the handler's `Admin`) reuses the
        // first: one store lookup, one idle-time touch.
        if let Some(u) = parts.extensions.get::<CurrentUser>() {
            return Ok(u.clone());
        }
        if !has_accounts(state).await.map_err(AuthRejection::Error)? {
            return Err(AuthRejection::Setup);
        }
        match session_user(parts, state).await? {
            // An account imported with its old plaintext password must choose a new one first.
            Some(u)
                if u.account.must_change_password
                    && !matches!(parts.uri.path(), "/account" | "/logout") =>
            {
                Err(AuthRejection::ChangePassword)
            }
            Some(u) => {
                parts.extensions.insert(u.clone());
                Ok(u)
            }
            None => Err(AuthRejection::SignIn {
                next: next_of(parts),
                expired: false,
            }),
        }
    }
}

/// A signed-in admin; a viewer gets a "not allowed" page.
#[derive(Clone, Debug)]
pub struct Admin(pub CurrentUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(Admin(user))
        } else {
            Err(AuthRejection::Error(AppError::Forbidden(
                "Only an administrator can do this. Your account can view status and history."
                    .into(),
            )))
        }
    }
}

/// The account behind an API request's `Authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub struct ApiUser(pub Account);

impl ApiUser {
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError(AppError::Forbidden(
                "this token's account is a viewer: read-only".into(),
            )))
        }
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| {
                !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .ok_or(ApiError(AppError::Unauthorized))?;
        let key = hex::encode(facereko_store::token_hash(token));
        let ttl = Duration::from_secs(u64::from(state.config.api_token_cache_seconds));
        if let Some(account) = state.runtime.cached_token(&key, ttl) {
            return Ok(ApiUser(account));
        }
        let (_meta, account) = state
            .store
            .api_token(token)
            .await?
            .ok_or(ApiError(AppError::Unauthorized))?;
        if account.is_locked(Utc::now()) {
            return Err(ApiError(AppError::Unauthorized));
        }
        if !ttl.is_zero() {
            state.runtime.cache_token(key, account.clone());
        }
        Ok(ApiUser(account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_equal_and_not_empty() {
        assert!(same_secret("abc123", "abc123"));
        assert!(!same_secret("abc123", "abc124"));
        assert!(!same_secret("abc123", "abc12"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn cookies_are_parsed_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; facereko_session=abc123; b=2"),
        );
        assert_eq!(
            read_cookie(&h, "facereko_session").as_deref(),
            Some("abc123")
        );
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("facereko_session=../etc"),
        );
        assert_eq!(read_cookie(&h, "facereko_session"), None);
    }

    #[test]
    fn csrf_tokens_depend_on_the_session_and_compare_exactly() {
        let a = csrf_for_session("aaaa");
        assert_ne!(a, csrf_for_session("aaab"));
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &a[1..]));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn sessions_idle_longer_than_allowed_end() {
        let rt = Runtime::default();
        assert!(
            rt.touch("abc", Duration::from_secs(60)),
            "first sight counts as activity"
        );
        assert!(rt.touch("abc", Duration::from_secs(60)));
        assert!(
            !rt.touch("abc", Duration::ZERO),
            "idle for longer than allowed"
        );
        rt.forget_session("abc");
        assert!(
            rt.touch("abc", Duration::ZERO),
            "forgotten sessions start afresh"
        );
    }

    #[test]
    fn address_failures_expire_with_the_window() {
        let rt = Runtime::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            rt.record_failure(ip, 5);
        }
        assert_eq!(rt.failures_from(ip, Duration::from_secs(60)), 3);
        assert_eq!(rt.failures_from(ip, Duration::ZERO), 0);
    }
}
