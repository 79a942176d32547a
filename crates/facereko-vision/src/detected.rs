//! What a pipeline (ONNX or dlib) found in one photo, before the quality gate: the types both pipelines
//! hand to [`crate::local`]. A leaf module, so the pipelines and the engine that drives them do not
//! import each other.

use crate::geometry::{Point, Rect};
use crate::quality;

/// A face a pipeline detected, in photo pixels, before the gate.
pub(crate) struct Face {
    pub rect: Rect,
    /// Box width as the gate measures it.
    pub width_px: u32,
    pub keypoints: Vec<Point>,
    pub eyes: [Point; 2],
    pub nose: Point,
    pub score: Option<f32>,
    /// What kind of nose point `nose` is.
    pub limits: quality::PoseLimits,
    pub native: Native,
}

/// What each pipeline needs to embed a face it detected.
pub(crate) enum Native {
    Dlib(DlibFace),
    /// Right eye, left eye, nose tip, mouth: the alignment points.
    Onnx([Point; 4]),
}

/// Per-photo state a pipeline keeps between detecting and embedding.
pub(crate) enum PhotoState {
    /// The photo in dlib's format, reused for the embedding.
    Dlib(dlib_face_recognition::ImageMatrix),
    None,
}

/// What a pipeline saw in one photo.
pub(crate) struct Found {
    pub faces: Vec<Face>,
    pub state: PhotoState,
}

/// What a dlib face carries for its embedding: the landmarks on the full photo, and dlib's box.
pub(crate) struct DlibFace {
    pub rect: dlib_face_recognition::Rectangle,
    pub landmarks: dlib_face_recognition::FaceLandmarks,
}
