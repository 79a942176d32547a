//! The Rekognition-compatible endpoint: `POST /` with `X-Amz-Target: RekognitionService.<Operation>`,
//! signed with SigV4 by a configured access key, answered by a [`Describer`] (the local engine) over
//! [`Collections`] kept in the data directory.
//!
//! Operations: `CreateCollection`, `ListCollections`, `DeleteCollection`, `IndexFaces`, `ListFaces`,
//! `DeleteFaces`, `SearchFacesByImage`, `CompareFaces`. Images come as `Bytes` only. Similarities are
//! on Rekognition's scale ([`crate::describe::rekognition_similarity`]); `Confidence` is left out, as
//! the local detector gives none.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use chrono::Utc;
use facereko_aws::sigv4::{self, Key};
use facereko_domain::Secret;
use facereko_vision::{FaceBox, PhotoFaces};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::collections::{Collections, StoredFace};
use crate::describe::{DescribeError, Describer};
use crate::protocol::*;
use crate::{Error, Result};

/// The `[rekognition_api]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Serve the endpoint (with `facereko serve`).
    pub enabled: bool,
    /// Where to listen; loopback unless opened up on purpose.
    pub bind: SocketAddr,
    /// The access key clients sign with (`aws configure` on their side).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Where collections are kept; `None` means `<data_dir>/rekognition`.
    pub dir: Option<std::path::PathBuf>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 8085)),
            access_key_id: None,
            secret_access_key: None,
            dir: None,
        }
    }
}

impl EndpointConfig {
    /// Checks the section; an enabled endpoint needs a key of at least 16/32 characters.
    pub fn validate(&self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let bad = |key: &str, reason: &str| {
            Err(Error::Config {
                key: format!("rekognition_api.{key}"),
                reason: reason.into(),
            })
        };
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                if id.len() < 16 || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return bad(
                        "access_key_id",
                        "must be 16–128 letters and digits (like AWS access key ids)",
                    );
                }
                if secret.expose().len() < 32 {
                    return bad(
                        "secret_access_key",
                        "must be at least 32 characters (make one with `openssl rand -base64 30`)",
                    );
                }
            }
            _ => {
                return bad(
                    "access_key_id",
                    "and `secret_access_key` must be set: the endpoint refuses unsigned requests",
                )
            }
        }
        Ok(())
    }

    /// The configured key (after [`EndpointConfig::validate`]).
    pub fn key(&self) -> Option<Key> {
        Some(Key {
            access_key_id: self.access_key_id.clone()?,
            secret_access_key: self.secret_access_key.as_ref()?.expose().to_string(),
        })
    }
}

/// Largest request accepted: a 5 MB image as base64, plus room for the rest of the JSON.
pub const MAX_REQUEST_BYTES: usize = MAX_IMAGE_BYTES / 3 * 4 + 64 * 1024;

/// The endpoint's state.
#[derive(Clone, Debug)]
pub struct Endpoint {
    describer: Arc<dyn Describer>,
    collections: Collections,
    keys: Arc<Vec<Key>>,
    /// One photo at a time: the engine is shared with the door, which must never queue behind a
    /// script indexing a folder of photos for more than one photo's time.
    faces: Arc<tokio::sync::Semaphore>,
}

impl Endpoint {
    pub fn new(describer: Arc<dyn Describer>, collections: Collections, keys: Vec<Key>) -> Self {
        Self {
            describer,
            collections,
            keys: Arc::new(keys),
            faces: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    pub fn collections(&self) -> &Collections {
        &self.collections
    }
}

/// The endpoint's router: every request is `POST /`.
pub fn router(endpoint: Endpoint) -> Router {
    Router::new().fallback(handle).with_state(endpoint)
}

fn reply(status: StatusCode, body: Value, error_code: Option<&str>) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    h.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(&new_uuid()).expect("a UUID is a valid header value"),
    );
    if let Some(code) = error_code.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert("x-amzn-errortype", code);
    }
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            self.body(),
            Some(self.code),
        )
    }
}

async fn handle(
    State(ep): State<Endpoint>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let op = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or(&target)
        .to_string();
    let result = async {
        if method != Method::POST || uri.path() != "/" {
            return Err(ApiError::new(
                404,
                "UnknownOperationException",
                "only POST / with an X-Amz-Target header is served",
            ));
        }
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let refused = |e: sigv4::SigError| {
            let status = if matches!(e, sigv4::SigError::Incomplete(_)) {
                400
            } else {
                403
            };
            ApiError::new(status, e.code(), e.to_string())
        };
        // Strangers are refused before their body is read.
        sigv4::claimed_key(&pairs, &ep.keys).map_err(refused)?;
        let body = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    413,
                    "ImageTooLargeException",
                    format!("the request is larger than {MAX_REQUEST_BYTES} bytes"),
                )
            })?;
        let key = sigv4::verify(
            &sigv4::Request {
                method: method.as_str(),
                path: uri.path(),
                query: uri.query().unwrap_or(""),
                headers: &pairs,
                body: &body,
            },
            &ep.keys,
            "rekognition",
            Utc::now(),
        )
        .map_err(refused)?;
        let region = region_of(&pairs);
        if !target.starts_with(TARGET_PREFIX) {
            return Err(ApiError::new(
                400,
                "UnknownOperationException",
                format!("X-Amz-Target {target:?} is not a RekognitionService operation"),
            ));
        }
        let key_id = key.access_key_id.clone();
        dispatch(&ep, &op, &body, &region)
            .await
            .map(|v| (v, key_id))
    }
    .await;
    let ms = started.elapsed().as_millis();
    match result {
        Ok((value, key)) => {
            tracing::info!(op, key, ms, "rekognition endpoint: 200");
            reply(StatusCode::OK, value, None)
        }
        Err(e) => {
            tracing::info!(
                op,
                ms,
                code = e.code,
                "rekognition endpoint: {}: {}",
                e.status,
                e.message
            );
            e.into_response()
        }
    }
}

/// The region the client signed for (shown in ARNs).
fn region_of(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .and_then(|(_, v)| v.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("local")
        .to_string()
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "SerializationException",
            format!("the request body: {e}"),
        )
    })
}

async fn dispatch(ep: &Endpoint, op: &str, body: &Bytes, region: &str) -> Result<Value, ApiError> {
    match op {
        "CreateCollection" => create_collection(ep, parse(body)?, region).await,
        "ListCollections" => list_collections(ep, parse(body)?).await,
        "DeleteCollection" => delete_collection(ep, parse(body)?).await,
        "IndexFaces" => index_faces(ep, parse(body)?).await,
        "ListFaces" => list_faces(ep, parse(body)?).await,
        "DeleteFaces" => delete_faces(ep, parse(body)?).await,
        "SearchFacesByImage" => search_faces_by_image(ep, parse(body)?).await,
        "CompareFaces" => compare_faces(ep, parse(body)?).await,
        other => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("{other} is not served by this endpoint"),
        )),
    }
}

fn image_bytes(image: &Image, field: &str) -> Result<Vec<u8>, ApiError> {
    if image.s3_object.is_some() {
        return Err(ApiError::invalid(format!(
            "{field}.S3Object is not supported here: send the image as {field}.Bytes"
        )));
    }
    let Some(b64) = &image.bytes else {
        return Err(ApiError::invalid(format!("{field}.Bytes is required")));
    };
    if b64.len() > MAX_IMAGE_BYTES / 3 * 4 + 4 {
        return Err(ApiError::new(
            400,
            "ImageTooLargeException",
            format!("{field} is larger than 5 MB"),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| {
            ApiError::new(
                400,
                "InvalidImageFormatException",
                format!("{field}.Bytes is not base64"),
            )
        })?;
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(ApiError::new(
            400,
            "ImageTooLargeException",
            format!("{field} is larger than 5 MB"),
        ));
    }
    Ok(bytes)
}

async fn describe(
    ep: &Endpoint,
    bytes: Vec<u8>,
    max_faces: usize,
    thorough: bool,
) -> Result<PhotoFaces, ApiError> {
    let d = ep.describer.clone();
    let _turn = ep
        .faces
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the endpoint is stopping"))?;
    tokio::task::spawn_blocking(move || d.describe(&bytes, max_faces, thorough))
        .await
        .map_err(|e| ApiError::internal(format!("face task failed: {e}")))?
        .map_err(|e| match e {
            DescribeError::BadImage(m) => ApiError::new(
                400,
                "InvalidImageFormatException",
                format!("Request has invalid image format: {m}"),
            ),
            DescribeError::Engine(m) => {
                tracing::error!("rekognition endpoint: face engine: {m}");
                ApiError::internal("the face engine failed")
            }
        })
}

fn bbox(photo: &PhotoFaces, f: &FaceBox) -> BoundingBox {
    let (w, h) = (
        f64::from(photo.width.max(1)),
        f64::from(photo.height.max(1)),
    );
    let ratio = |v: u32, of: f64| (f64::from(v) / of * 1e6).round() / 1e6;
    BoundingBox {
        width: ratio(f.width, w),
        height: ratio(f.height, h),
        left: ratio(f.left, w),
        top: ratio(f.top, h),
    }
}

fn face_of(s: &StoredFace, model: &str) -> Face {
    Face {
        face_id: s.face_id.clone(),
        bounding_box: s.bounding_box,
        image_id: s.image_id.clone(),
        external_image_id: s.external_image_id.clone(),
        confidence: s.confidence,
        index_faces_model_version: model.to_string(),
    }
}

fn threshold(t: Option<f32>, field: &str) -> Result<f32, ApiError> {
    let t = t.unwrap_or(DEFAULT_MATCH_THRESHOLD);
    if !(t.is_finite() && (0.0..=100.0).contains(&t)) {
        return Err(ApiError::invalid(format!("{field} must be from 0 to 100")));
    }
    Ok(t)
}

fn bounded(v: Option<u32>, default: u32, max: u32, field: &str) -> Result<usize, ApiError> {
    let v = v.unwrap_or(default);
    if v < 1 || v > max {
        return Err(ApiError::invalid(format!(
            "{field} must be from 1 to {max}"
        )));
    }
    Ok(v as usize)
}

/// A collection's faces must have been indexed with the model this endpoint runs.
fn same_model(c: &crate::collections::Collection, model: &str) -> Result<(), ApiError> {
    if c.model != model && !c.faces.is_empty() {
        return Err(ApiError::invalid(format!(
            "collection {} holds faces of model {} and this endpoint runs {model}: delete and index the faces again",
            c.collection_id, c.model
        )));
    }
    Ok(())
}

async fn create_collection(
    ep: &Endpoint,
    r: CreateCollectionRequest,
    region: &str,
) -> Result<Value, ApiError> {
    let model = ep.describer.model();
    let id = r.collection_id.clone();
    ep.collections
        .with(move |l| l.create(&id, &model).map(|_| ()))
        .await?;
    Ok(json!({
        "StatusCode": 200,
        "CollectionArn": format!("arn:aws:rekognition:{region}:000000000000:collection/{}", r.collection_id),
        "FaceModelVersion": ep.describer.model(),
    }))
}

async fn list_collections(ep: &Endpoint, r: ListCollectionsRequest) -> Result<Value, ApiError> {
    let max = bounded(r.max_results, 1000, 4096, "MaxResults")?;
    let after = r.next_token.clone();
    let (ids, models, more) = ep
        .collections
        .with(move |l| {
            let all = l.ids()?;
            let page: Vec<String> = all
                .into_iter()
                .filter(|id| after.as_ref().is_none_or(|a| id > a))
                .collect();
            let more = page.len() > max;
            let page: Vec<String> = page.into_iter().take(max).collect();
            let mut models = Vec::new();
            for id in &page {
                models.push(l.get(id)?.model.clone());
            }
            Ok((page, models, more))
        })
        .await?;
    let mut v = json!({ "CollectionIds": ids, "FaceModelVersions": models });
    if more {
        v["NextToken"] = json!(ids.last());
    }
    Ok(v)
}

async fn delete_collection(ep: &Endpoint, r: DeleteCollectionRequest) -> Result<Value, ApiError> {
    ep.collections
        .with(move |l| l.delete(&r.collection_id))
        .await?;
    Ok(json!({ "StatusCode": 200 }))
}

async fn index_faces(ep: &Endpoint, r: IndexFacesRequest) -> Result<Value, ApiError> {
    if let Some(x) = &r.external_image_id {
        if !valid_external_image_id(x) {
            return Err(ApiError::invalid(
                "ExternalImageId must match [a-zA-Z0-9_.\\-:]+ (1–255 characters)",
            ));
        }
    }
    let max = bounded(r.max_faces, 100, 100, "MaxFaces")?;
    let id = r.collection_id.clone();
    // The collection must exist before the (slow) face work.
    ep.collections.with(move |l| l.get(&id).map(|_| ())).await?;
    let photo = describe(ep, image_bytes(&r.image, "Image")?, max, true).await?;
    let model = ep.describer.model();
    let image_id = new_uuid();
    let now = Utc::now();
    let records: Vec<(StoredFace, BoundingBox)> = photo
        .faces
        .iter()
        .map(|f| {
            let b = bbox(&photo, f);
            (
                StoredFace {
                    face_id: new_uuid(),
                    image_id: image_id.clone(),
                    external_image_id: r.external_image_id.clone(),
                    bounding_box: b,
                    confidence: None,
                    embedding: f.embedding.clone(),
                    indexed_at: now,
                },
                b,
            )
        })
        .collect();
    let stored: Vec<StoredFace> = records.iter().map(|(s, _)| s.clone()).collect();
    let (id, m) = (r.collection_id.clone(), model.clone());
    ep.collections
        .with(move |l| {
            l.update(&id, |c| {
                same_model(c, &m)?;
                c.model = m.clone();
                c.faces.extend(stored);
                Ok(())
            })
        })
        .await?;
    let face_records: Vec<FaceRecord> = records
        .iter()
        .map(|(s, b)| FaceRecord {
            face: face_of(s, &model),
            face_detail: FaceDetail {
                bounding_box: *b,
                confidence: None,
            },
        })
        .collect();
    let mut unindexed: Vec<UnindexedFace> = Vec::new();
    for _ in photo.faces.len()..photo.usable {
        unindexed.push(UnindexedFace {
            reasons: vec!["EXCEEDS_MAX_FACES"],
            face_detail: None,
        });
    }
    for _ in photo.usable..photo.detected {
        unindexed.push(UnindexedFace {
            reasons: vec!["LOW_QUALITY"],
            face_detail: None,
        });
    }
    Ok(json!({
        "FaceRecords": face_records,
        "UnindexedFaces": unindexed,
        "FaceModelVersion": model,
    }))
}

async fn list_faces(ep: &Endpoint, r: ListFacesRequest) -> Result<Value, ApiError> {
    let max = bounded(r.max_results, 1000, 4096, "MaxResults")?;
    let model = ep.describer.model();
    let (faces, more) = ep
        .collections
        .with(move |l| {
            let c = l.get(&r.collection_id)?;
            let wanted: Option<std::collections::HashSet<String>> =
                r.face_ids.map(|ids| ids.into_iter().collect());
            let page: Vec<&StoredFace> = c
                .faces
                .iter()
                .filter(|f| r.next_token.as_ref().is_none_or(|t| &f.face_id > t))
                .filter(|f| wanted.as_ref().is_none_or(|w| w.contains(&f.face_id)))
                .collect();
            let more = page.len() > max;
            Ok((
                page.into_iter().take(max).cloned().collect::<Vec<_>>(),
                more,
            ))
        })
        .await?;
    let shown: Vec<Face> = faces.iter().map(|f| face_of(f, &model)).collect();
    let mut v = json!({ "Faces": shown, "FaceModelVersion": model });
    if more {
        v["NextToken"] = json!(faces.last().map(|f| f.face_id.clone()));
    }
    Ok(v)
}

async fn delete_faces(ep: &Endpoint, r: DeleteFacesRequest) -> Result<Value, ApiError> {
    if r.face_ids.is_empty() || r.face_ids.len() > 4096 {
        return Err(ApiError::invalid("FaceIds must hold 1 to 4096 face ids"));
    }
    if let Some(bad) = r.face_ids.iter().find(|id| !valid_face_id(id)) {
        return Err(ApiError::invalid(format!("{bad:?} is not a face id")));
    }
    let (deleted, missing) = ep
        .collections
        .with(move |l| {
            l.update(&r.collection_id, |c| {
                let wanted: std::collections::HashSet<&String> = r.face_ids.iter().collect();
                let before: std::collections::HashSet<String> =
                    c.faces.iter().map(|f| f.face_id.clone()).collect();
                c.faces.retain(|f| !wanted.contains(&f.face_id));
                let (deleted, missing): (Vec<String>, Vec<String>) = r
                    .face_ids
                    .iter()
                    .cloned()
                    .partition(|id| before.contains(id));
                Ok((deleted, missing))
            })
        })
        .await?;
    let unsuccessful: Vec<UnsuccessfulFaceDeletion> = missing
        .into_iter()
        .map(|face_id| UnsuccessfulFaceDeletion {
            face_id,
            reasons: vec!["FACE_NOT_FOUND"],
        })
        .collect();
    Ok(json!({ "DeletedFaces": deleted, "UnsuccessfulFaceDeletions": unsuccessful }))
}

async fn search_faces_by_image(
    ep: &Endpoint,
    r: SearchFacesByImageRequest,
) -> Result<Value, ApiError> {
    let max = bounded(r.max_faces, 100, 4096, "MaxFaces")?;
    let t = threshold(r.face_match_threshold, "FaceMatchThreshold")?;
    let id = r.collection_id.clone();
    ep.collections.with(move |l| l.get(&id).map(|_| ())).await?;
    let photo = describe(ep, image_bytes(&r.image, "Image")?, 1, false).await?;
    let Some(probe) = photo.faces.first() else {
        return Err(ApiError::invalid(
            "There are no faces in the image. Should be at least 1.",
        ));
    };
    let model = ep.describer.model();
    let (d, m, embedding) = (ep.describer.clone(), model.clone(), probe.embedding.clone());
    let matches = ep
        .collections
        .with(move |l| {
            let c = l.get(&r.collection_id)?;
            same_model(c, &m)?;
            let mut out = Vec::new();
            for f in &c.faces {
                let s = d.similarity(&embedding, &f.embedding);
                if s >= t {
                    out.push(FaceMatch {
                        similarity: score(s),
                        face: face_of(f, &m),
                    });
                }
            }
            out.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            out.truncate(max);
            Ok(out)
        })
        .await?;
    Ok(json!({
        "SearchedFaceBoundingBox": bbox(&photo, probe),
        "FaceMatches": matches,
        "FaceModelVersion": model,
    }))
}

async fn compare_faces(ep: &Endpoint, r: CompareFacesRequest) -> Result<Value, ApiError> {
    let t = threshold(r.similarity_threshold, "SimilarityThreshold")?;
    let source = describe(ep, image_bytes(&r.source_image, "SourceImage")?, 1, false).await?;
    let target = describe(ep, image_bytes(&r.target_image, "TargetImage")?, 100, false).await?;
    let Some(probe) = source.faces.first() else {
        return Err(ApiError::invalid(
            "Request has invalid parameters: there is no face in SourceImage",
        ));
    };
    let mut matches = Vec::new();
    let mut unmatched = Vec::new();
    for f in &target.faces {
        let s = ep.describer.similarity(&probe.embedding, &f.embedding);
        let face = FaceDetail {
            bounding_box: bbox(&target, f),
            confidence: None,
        };
        if s >= t {
            matches.push(CompareFacesMatch {
                similarity: score(s),
                face,
            });
        } else {
            unmatched.push(face);
        }
    }
    matches.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
    Ok(json!({
        "SourceImageFace": FaceDetail { bounding_box: bbox(&source, probe), confidence: None },
        "FaceMatches": matches,
        "UnmatchedFaces": unmatched,
    }))
}

/// Serves the endpoint on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    endpoint: Endpoint,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(endpoint))
        .with_graceful_shutdown(stop)
        .await
}
