//! The subset of Rekognition's JSON protocol (`application/x-amz-json-1.1`, operation in
//! `X-Amz-Target: RekognitionService.<Operation>`) that the endpoint speaks: request and response
//! shapes with Rekognition's field names, and errors as AWS clients parse them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub const TARGET_PREFIX: &str = "RekognitionService.";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Rekognition's limit for image bytes sent in a request.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Rekognition's default `FaceMatchThreshold` / `SimilarityThreshold`.
pub const DEFAULT_MATCH_THRESHOLD: f32 = 80.0;

/// An error as Rekognition reports it: HTTP status, `__type` code and message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterException", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(400, "ResourceNotFoundException", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalServerError", message)
    }
    /// The JSON body: `{"__type": .., "message": ..}` (both spellings of the message key are read by
    /// AWS clients; `Message` is what Rekognition sends).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.code, "Message": self.message })
    }
}

/// An image: only `Bytes` (base64 in JSON); S3 objects cannot be fetched by a door.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    pub bytes: Option<String>,
    pub s3_object: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateCollectionRequest {
    pub collection_id: String,
    #[serde(default)]
    pub tags: Option<HashMap<String, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListCollectionsRequest {
    pub next_token: Option<String>,
    pub max_results: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteCollectionRequest {
    pub collection_id: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexFacesRequest {
    pub collection_id: String,
    pub image: Image,
    pub external_image_id: Option<String>,
    pub max_faces: Option<u32>,
    pub quality_filter: Option<String>,
    pub detection_attributes: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFacesRequest {
    pub collection_id: String,
    pub next_token: Option<String>,
    pub max_results: Option<u32>,
    pub face_ids: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteFacesRequest {
    pub collection_id: String,
    pub face_ids: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SearchFacesByImageRequest {
    pub collection_id: String,
    pub image: Image,
    pub max_faces: Option<u32>,
    pub face_match_threshold: Option<f32>,
    pub quality_filter: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompareFacesRequest {
    pub source_image: Image,
    pub target_image: Image,
    pub similarity_threshold: Option<f32>,
    pub quality_filter: Option<String>,
}

/// A box as ratios of the image's width and height.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BoundingBox {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub top: f64,
}

/// An indexed face.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Face {
    pub face_id: String,
    pub bounding_box: BoundingBox,
    pub image_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_image_id: Option<String>,
    /// Detector confidence; left out when the detector gives none (the local HOG detector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    pub index_faces_model_version: String,
}

/// A face found in a request's image.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FaceDetail {
    pub bounding_box: BoundingBox,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FaceRecord {
    pub face: Face,
    pub face_detail: FaceDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnindexedFace {
    pub reasons: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face_detail: Option<FaceDetail>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FaceMatch {
    pub similarity: f64,
    pub face: Face,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompareFacesMatch {
    pub similarity: f64,
    pub face: FaceDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnsuccessfulFaceDeletion {
    pub face_id: String,
    pub reasons: Vec<&'static str>,
}

/// A score as sent: `f64`, rounded to 0.001 as Rekognition's are (an `f32` widened as-is would show
/// as 94.06999969482422).
pub fn score(s: f32) -> f64 {
    (f64::from(s) * 1000.0).round() / 1000.0
}

/// Rekognition's pattern for `ExternalImageId`.
pub fn valid_external_image_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-:".contains(&b))
}

/// Rekognition's pattern for face ids (a UUID).
pub fn valid_face_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| {
            matches!(i, 8 | 13 | 18 | 23) == (b == b'-') && (b == b'-' || b.is_ascii_hexdigit())
        })
}

/// A random (version 4) UUID, as Rekognition's face and image ids are.
pub fn new_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_valid_face_ids_and_differ() {
        let (a, b) = (new_uuid(), new_uuid());
        assert!(valid_face_id(&a) && valid_face_id(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!valid_face_id("../../etc/passwd"));
        assert!(!valid_face_id("0123456789abcdef0123456789abcdef0123"));
    }

    #[test]
    fn external_image_ids_follow_rekognitions_pattern() {
        assert!(valid_external_image_id("17:42"));
        assert!(valid_external_image_id("Yi_Ming"));
        assert!(!valid_external_image_id("Yi Ming"));
        assert!(!valid_external_image_id(""));
    }

    #[test]
    fn requests_parse_with_rekognitions_field_names() {
        let r: SearchFacesByImageRequest = serde_json::from_str(
            r#"{"CollectionId":"home","Image":{"Bytes":"AAAA"},"MaxFaces":1,"FaceMatchThreshold":85}"#,
        )
        .unwrap();
        assert_eq!(r.collection_id, "home");
        assert_eq!(r.image.bytes.as_deref(), Some("AAAA"));
        assert_eq!((r.max_faces, r.face_match_threshold), (Some(1), Some(85.0)));
        let e = ApiError::invalid("There are no faces in the image. Should be at least 1.");
        assert_eq!(
            e.body()["__type"],
            serde_json::json!("InvalidParameterException")
        );
    }
}
