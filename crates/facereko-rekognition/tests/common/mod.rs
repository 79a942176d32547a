//! Shared fixtures: an endpoint over the colour describer, and signed requests to it.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use facereko_aws::sigv4::{self, Key};
use facereko_rekognition::collections::Collections;
use facereko_rekognition::describe::sim::ColourDescriber;
use facereko_rekognition::Endpoint;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const KEY_ID: &str = "AKIAFACEREKOTEST01";
pub const SECRET: &str = "a-test-secret-that-is-long-enough-0123";

pub fn key() -> Key {
    Key {
        access_key_id: KEY_ID.into(),
        secret_access_key: SECRET.into(),
    }
}

pub fn endpoint(dir: &std::path::Path) -> Endpoint {
    Endpoint::new(
        Arc::new(ColourDescriber::default()),
        Collections::open(dir.join("rekognition")).unwrap(),
        vec![key()],
    )
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A request to `op` signed with `key`.
pub fn signed(op: &str, body: &Value, key: &Key) -> Request<Body> {
    let body = body.to_string().into_bytes();
    let headers = vec![
        ("host".to_string(), "127.0.0.1:8085".to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        (
            "x-amz-target".to_string(),
            format!("RekognitionService.{op}"),
        ),
    ];
    let added = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: &body,
        },
        key,
        "eu-west-1",
        "rekognition",
        chrono::Utc::now(),
    );
    let mut b = Request::post("/");
    for (n, v) in headers.iter().chain(&added) {
        b = b.header(n, v);
    }
    b.body(Body::from(body)).unwrap()
}

/// Sends `req` and returns the status, the error type header and the JSON body.
pub async fn send(ep: &Endpoint, req: Request<Body>) -> (u16, Option<String>, Value) {
    let r = facereko_rekognition::endpoint::router(ep.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, kind, v)
}

pub async fn call(ep: &Endpoint, op: &str, body: Value) -> (u16, Option<String>, Value) {
    send(ep, signed(op, &body, &key())).await
}
