//! AWS Signature Version 4 for requests with their whole body in memory: `sign` (feature `testing`, for
//! tests that talk to the Rekognition-compatible endpoint without the SDK) and [`verify`] (used by the
//! endpoint to refuse anything not signed with a configured key).
//!
//! Verification follows AWS's rules: the `Authorization` header names the key, the credential scope
//! (`date/region/service/aws4_request`) and the signed headers, which must include `host` and
//! `x-amz-date`; the request time must be within 15 minutes of ours; the body's SHA-256 is part of what
//! is signed, so a body cannot be swapped; the signature is compared in constant time.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's `x-amz-date` may be from our clock, either way (AWS's own limit).
pub const MAX_SKEW: TimeDelta = TimeDelta::minutes(15);

/// An access key the endpoint accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused; the variants follow AWS's error codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header at all.
    #[error("Missing Authentication Token")]
    Missing,
    /// A malformed `Authorization` header or date.
    #[error("{0}")]
    Incomplete(String),
    /// The access key is not one we know.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// Wrong scope, stale date or a signature that does not match.
    #[error("{0}")]
    Invalid(String),
}

impl SigError {
    /// The AWS error code a client expects for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::Incomplete(_) => "IncompleteSignatureException",
            SigError::UnknownKey => "UnrecognizedClientException",
            SigError::Invalid(_) => "InvalidSignatureException",
        }
    }
}

/// A request as signed: method, path and query as sent on the wire, headers, whole body.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Everything but RFC 3986's unreserved characters is percent-encoded, as SigV4 wants.
const SIGV4_ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, SIGV4_ENCODED).to_string()
}

fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The canonical URI of a non-S3 service: each segment of the path as sent, encoded once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `name:value` lines of the signed headers (values of repeated headers joined by commas, spaces
/// collapsed), or `None` when a signed header is missing.
fn canonical_headers(headers: &[(String, String)], signed: &[&str]) -> Option<String> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return None;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Some(out)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn string_to_sign(
    req: &Request<'_>,
    signed: &[&str],
    amz_date: &str,
    scope: &str,
) -> Option<String> {
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers(req.headers, signed)?,
        signed.join(";"),
        hex_sha256(req.body)
    );
    Some(format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    ))
}

/// Signs `req` (whose headers must include `host`) at `now` with the AWS SDK's own signer
/// (`aws-sigv4`), so tests never sign and verify with the same code: returns the headers to add
/// (`x-amz-date`, `x-amz-content-sha256`, `authorization`). For tests of the endpoint only (feature
/// `testing`): the product verifies signatures, and the AWS SDK signs its own requests.
#[cfg(any(test, feature = "testing"))]
pub fn sign(
    req: &Request<'_>,
    key: &Key,
    region: &str,
    service: &str,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "facereko-test",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now.into())
        .settings(settings)
        .build()
        .expect("every signing parameter is set")
        .into();
    let host = header(req.headers, "host").unwrap_or("localhost");
    let query = if req.query.is_empty() {
        String::new()
    } else {
        format!("?{}", req.query)
    };
    let uri = format!("http://{host}{}{query}", req.path);
    let signable = SignableRequest::new(
        req.method,
        uri,
        req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(req.body),
    )
    .expect("a signable request");
    let (instructions, _) = sign(signable, &params)
        .expect("signing with aws-sigv4")
        .into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The key a request claims to be signed with, from its headers alone: lets a server refuse an
/// unsigned request, or one from a stranger, before reading its body. [`verify`] still decides.
pub fn claimed_key<'k>(headers: &[(String, String)], keys: &'k [Key]) -> Result<&'k Key, SigError> {
    let auth = header(headers, "authorization").ok_or(SigError::Missing)?;
    let key_id = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .ok_or_else(|| {
            SigError::Incomplete("Authorization header requires 'Credential' parameter".into())
        })?;
    keys.iter()
        .find(|k| k.access_key_id == key_id)
        .ok_or(SigError::UnknownKey)
}

/// Checks that `req` was signed for `service` with one of `keys` within [`MAX_SKEW`] of `now`;
/// returns the key that signed it.
pub fn verify<'k>(
    req: &Request<'_>,
    keys: &'k [Key],
    service: &str,
    now: DateTime<Utc>,
) -> Result<&'k Key, SigError> {
    let auth = header(req.headers, "authorization").ok_or(SigError::Missing)?;
    let rest = auth
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            SigError::Incomplete(format!("Authorization header must use {ALGORITHM}"))
        })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let incomplete = |what: &str| {
        SigError::Incomplete(format!("Authorization header requires '{what}' parameter"))
    };
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;

    let mut cred = credential.splitn(5, '/');
    let (Some(key_id), Some(date), Some(region), Some(svc), Some(terminator)) = (
        cred.next(),
        cred.next(),
        cred.next(),
        cred.next(),
        cred.next(),
    ) else {
        return Err(SigError::Incomplete(
            "Credential must be <key>/<date>/<region>/<service>/aws4_request".into(),
        ));
    };
    let key = keys
        .iter()
        .find(|k| k.access_key_id == key_id)
        .ok_or(SigError::UnknownKey)?;
    if svc != service || terminator != "aws4_request" {
        return Err(SigError::Invalid(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    let mut sorted = signed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted != signed
        || signed
            .iter()
            .any(|h| h.is_empty() || *h != h.to_ascii_lowercase())
    {
        return Err(SigError::Incomplete(
            "SignedHeaders must be lower-case names, sorted, without repeats".into(),
        ));
    }
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return Err(SigError::Invalid(
            "'Host' and 'X-Amz-Date' must be signed headers".into(),
        ));
    }
    let amz_date = header(req.headers, "x-amz-date")
        .ok_or_else(|| SigError::Incomplete("X-Amz-Date header is missing".into()))?;
    let when = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            SigError::Incomplete(format!("X-Amz-Date {amz_date:?} is not yyyymmddThhmmssZ"))
        })?
        .and_utc();
    if !amz_date.starts_with(date) {
        return Err(SigError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from X-Amz-Date: {date} != {}",
            &amz_date[..8.min(amz_date.len())]
        )));
    }
    if (now - when).abs() > MAX_SKEW {
        return Err(SigError::Invalid(format!(
            "Signature expired: {amz_date} is now earlier or later than {} by more than 15 minutes",
            now.format("%Y%m%dT%H%M%SZ")
        )));
    }
    if let Some(claimed) = header(req.headers, "x-amz-content-sha256") {
        if claimed != "UNSIGNED-PAYLOAD" && !claimed.eq_ignore_ascii_case(&hex_sha256(req.body)) {
            return Err(SigError::Invalid(
                "The provided x-amz-content-sha256 header does not match what was computed.".into(),
            ));
        }
    }
    let scope = format!("{date}/{region}/{svc}/aws4_request");
    let sts = string_to_sign(req, &signed, amz_date, &scope)
        .ok_or_else(|| SigError::Invalid("a signed header is missing from the request".into()))?;
    let given = hex::decode(signature).map_err(|_| SigError::Invalid(MISMATCH.into()))?;
    let mut m = HmacSha256::new_from_slice(&signing_key(&key.secret_access_key, date, region, svc))
        .expect("HMAC takes keys of any length");
    m.update(sts.as_bytes());
    m.verify_slice(&given)
        .map_err(|_| SigError::Invalid(MISMATCH.into()))?;
    Ok(key)
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.";

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    /// AWS's published SigV4 test suite, case `get-vanilla-query-order-key-case`.
    #[test]
    fn matches_the_aws_test_suite() {
        let headers = vec![
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ];
        let req = Request {
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &headers,
            body: b"",
        };
        let signed = ["host", "x-amz-date"];
        let sts = string_to_sign(
            &req,
            &signed,
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
        )
        .unwrap();
        let sig = hex::encode(hmac(
            &signing_key(&key().secret_access_key, "20150830", "us-east-1", "service"),
            sts.as_bytes(),
        ));
        assert_eq!(
            sig,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    fn signed_request(body: &[u8], at: DateTime<Utc>) -> Vec<(String, String)> {
        let mut headers = vec![
            ("host".to_string(), "127.0.0.1:8085".to_string()),
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            (
                "x-amz-target".to_string(),
                "RekognitionService.ListCollections".to_string(),
            ),
        ];
        let added = sign(
            &Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body,
            },
            &key(),
            "eu-west-1",
            "rekognition",
            at,
        );
        headers.extend(added);
        headers
    }

    fn check(
        headers: &[(String, String)],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SigError> {
        verify(
            &Request {
                method: "POST",
                path: "/",
                query: "",
                headers,
                body,
            },
            &[key()],
            "rekognition",
            now,
        )
        .map(|_| ())
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_is_refused() {
        let now = Utc::now();
        let body = br#"{"MaxResults":10}"#;
        let headers = signed_request(body, now);
        check(&headers, body, now).unwrap();

        // Another body.
        let e = check(&headers, br#"{"MaxResults":11}"#, now).unwrap_err();
        assert_eq!(e.code(), "InvalidSignatureException");
        // Another operation.
        let mut other = headers.clone();
        other[2].1 = "RekognitionService.DeleteCollection".into();
        assert_eq!(
            check(&other, body, now).unwrap_err().code(),
            "InvalidSignatureException"
        );
        // Another key.
        let wrong = Key {
            secret_access_key: "not-the-secret".into(),
            ..key()
        };
        let e = verify(
            &Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body,
            },
            &[wrong],
            "rekognition",
            now,
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidSignatureException");
    }

    #[test]
    fn unknown_keys_missing_headers_and_old_requests_are_refused() {
        let now = Utc::now();
        let body = b"{}";
        let headers = signed_request(body, now);
        assert_eq!(check(&[], body, now).unwrap_err(), SigError::Missing);
        let unknown: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.replace("AKIDEXAMPLE", "AKIDOTHER")))
            .collect();
        assert_eq!(
            check(&unknown, body, now).unwrap_err(),
            SigError::UnknownKey
        );
        assert_eq!(
            claimed_key(&unknown, &[key()]).unwrap_err(),
            SigError::UnknownKey
        );
        assert_eq!(claimed_key(&headers, &[key()]).unwrap(), &key());
        assert_eq!(claimed_key(&[], &[key()]).unwrap_err(), SigError::Missing);
        let stale = check(&headers, body, now + TimeDelta::minutes(16)).unwrap_err();
        assert!(stale.to_string().contains("Signature expired"), "{stale}");
        check(&headers, body, now + TimeDelta::minutes(14)).unwrap();
        let garbled: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1")))
            .collect();
        assert_eq!(
            check(&garbled, body, now).unwrap_err().code(),
            "IncompleteSignatureException"
        );
        // A signature for another service is not accepted here.
        let mut other = vec![("host".to_string(), "h".to_string())];
        let added = sign(
            &Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &other,
                body,
            },
            &key(),
            "eu-west-1",
            "sns",
            now,
        );
        other.extend(added);
        assert!(check(&other, body, now)
            .unwrap_err()
            .to_string()
            .contains("correct service"));
    }
}
