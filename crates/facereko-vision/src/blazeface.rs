//! BlazeFace's output decoding: anchors, boxes, keypoints and weighted non-maximum suppression.
//!
//! BlazeFace (MediaPipe) predicts, for each of 896 fixed anchors, a score and 16 numbers: the face box's
//! centre offset and size, then six keypoints (right eye, left eye, nose tip, mouth centre, right ear,
//! left ear; "right" is the person's right, on the left of a photo of them), all in input pixels
//! relative to the anchor's centre. The two models used here differ only in input size (128 for faces
//! that fill much of the picture, 256 for smaller ones) and so in stride: the anchors of a model are
//! 2 per cell of a stride-`s` grid, then 6 per cell of a stride-`2s` grid.
//!
//! Overlapping detections of one face are blended, weighted by score (MediaPipe's "weighted" NMS),
//! which steadies the keypoints that alignment depends on.

use crate::geometry::{Point, Rect};

/// Keypoints BlazeFace predicts per face.
pub const KEYPOINTS: usize = 6;
/// Numbers per anchor in the regressor output: box (4) and keypoints (2 each).
pub const REGRESSORS: usize = 4 + 2 * KEYPOINTS;
/// Anchors per model: 2 per cell at the fine stride, 6 per cell at the coarse one.
pub fn anchor_count(input: usize) -> usize {
    let fine = input / 8 / (input / 128);
    let coarse = fine / 2;
    fine * fine * 2 + coarse * coarse * 6
}

/// Index of each keypoint in [`Detection::keypoints`].
pub mod kp {
    pub const RIGHT_EYE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const NOSE_TIP: usize = 2;
    pub const MOUTH: usize = 3;
}

/// One face found, in the coordinates the caller chose (input pixels, then photo pixels).
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub score: f32,
    pub rect: Rect,
    pub keypoints: [Point; KEYPOINTS],
}

/// Anchor centres, normalised to 0–1, in the model's output order.
pub fn anchors(input: usize) -> Vec<Point> {
    // Front model (128): strides 8 and 16; back model (256): 16 and 32. Both give 16×16 and 8×8 grids.
    let fine_stride = 8 * (input / 128);
    let mut out = Vec::with_capacity(anchor_count(input));
    for (stride, per_cell) in [(fine_stride, 2), (fine_stride * 2, 6)] {
        let n = input / stride;
        for y in 0..n {
            for x in 0..n {
                let c = Point::new((x as f32 + 0.5) / n as f32, (y as f32 + 0.5) / n as f32);
                out.extend(std::iter::repeat_n(c, per_cell));
            }
        }
    }
    out
}

/// Decodes the raw outputs: `scores[i]` is anchor `i`'s logit, `regressors[i*16..]` its numbers.
/// Keeps anchors scoring at least `min_score` (0–1); coordinates come back in input pixels.
pub fn decode(
    input: usize,
    anchors: &[Point],
    scores: &[f32],
    regressors: &[f32],
    min_score: f32,
) -> Vec<Detection> {
    let size = input as f32;
    // Comparing logits avoids a sigmoid per anchor: score ≥ p ⇔ logit ≥ ln(p / (1 − p)).
    let min_logit = (min_score / (1.0 - min_score)).ln();
    let mut out = Vec::new();
    for (i, (&logit, a)) in scores.iter().zip(anchors).enumerate() {
        if logit.is_nan() || logit < min_logit {
            continue;
        }
        let Some(r) = regressors.get(i * REGRESSORS..(i + 1) * REGRESSORS) else {
            break;
        };
        let (cx, cy) = (r[0] + a.x * size, r[1] + a.y * size);
        let (w, h) = (r[2], r[3]);
        let mut keypoints = [Point::default(); KEYPOINTS];
        for (k, p) in keypoints.iter_mut().enumerate() {
            *p = Point::new(r[4 + 2 * k] + a.x * size, r[5 + 2 * k] + a.y * size);
        }
        out.push(Detection {
            score: 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp()),
            rect: Rect {
                left: cx - w / 2.0,
                top: cy - h / 2.0,
                right: cx + w / 2.0,
                bottom: cy + h / 2.0,
            },
            keypoints,
        });
    }
    out
}

/// Weighted non-maximum suppression: each group of detections overlapping the best remaining one by
/// more than `iou` becomes one detection, box and keypoints averaged by score, with the best score.
pub fn weighted_nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = dets.first().cloned() {
        let (group, rest): (Vec<Detection>, Vec<Detection>) =
            dets.into_iter().partition(|d| best.rect.iou(&d.rect) > iou);
        // `group` holds `best` itself (IoU 1).
        let total: f32 = group.iter().map(|d| d.score).sum();
        let avg = |f: &dyn Fn(&Detection) -> f32| {
            group.iter().map(|d| d.score * f(d)).sum::<f32>() / total
        };
        let mut keypoints = [Point::default(); KEYPOINTS];
        for (k, p) in keypoints.iter_mut().enumerate() {
            *p = Point::new(avg(&|d| d.keypoints[k].x), avg(&|d| d.keypoints[k].y));
        }
        out.push(Detection {
            score: best.score,
            rect: Rect {
                left: avg(&|d| d.rect.left),
                top: avg(&|d| d.rect.top),
                right: avg(&|d| d.rect.right),
                bottom: avg(&|d| d.rect.bottom),
            },
            keypoints,
        });
        dets = rest;
    }
    out
}

/// Plain NMS across two models' detections: where they overlap, the higher score wins.
pub fn merge(a: Vec<Detection>, b: Vec<Detection>, iou: f32) -> Vec<Detection> {
    let mut all: Vec<Detection> = a.into_iter().chain(b).collect();
    all.sort_by(|x, y| y.score.total_cmp(&x.score));
    let mut out: Vec<Detection> = Vec::new();
    for d in all {
        if out.iter().all(|o| o.rect.iou(&d.rect) <= iou) {
            out.push(d);
        }
    }
    out
}

/// How a photo was fitted into the square input: scaled by `scale`, then shifted by `(dx, dy)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub dx: f32,
    pub dy: f32,
    /// Size of the scaled photo inside the square.
    pub width: u32,
    pub height: u32,
}

impl Letterbox {
    /// Fits a `w`×`h` photo, aspect kept, centred in an `input`-pixel square.
    pub fn fit(w: u32, h: u32, input: u32) -> Self {
        let scale = input as f32 / w.max(h) as f32;
        let width = ((w as f32 * scale).round() as u32).clamp(1, input);
        let height = ((h as f32 * scale).round() as u32).clamp(1, input);
        Self {
            scale,
            dx: ((input - width) / 2) as f32,
            dy: ((input - height) / 2) as f32,
            width,
            height,
        }
    }

    /// From input pixels back to photo pixels.
    pub fn to_photo(&self, p: Point) -> Point {
        Point::new((p.x - self.dx) / self.scale, (p.y - self.dy) / self.scale)
    }

    pub fn detection_to_photo(&self, d: Detection) -> Detection {
        let tl = self.to_photo(Point::new(d.rect.left, d.rect.top));
        let br = self.to_photo(Point::new(d.rect.right, d.rect.bottom));
        Detection {
            score: d.score,
            rect: Rect {
                left: tl.x,
                top: tl.y,
                right: br.x,
                bottom: br.y,
            },
            keypoints: d.keypoints.map(|p| self.to_photo(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_models_have_896_anchors_on_16_and_8_grids() {
        for input in [128, 256] {
            let a = anchors(input);
            assert_eq!(a.len(), 896);
            assert_eq!(anchor_count(input), 896);
            // First two anchors share the first fine cell's centre.
            assert_eq!(a[0], Point::new(0.5 / 16.0, 0.5 / 16.0));
            assert_eq!(a[1], a[0]);
            // Fine grid: 512 anchors; the coarse grid starts after, 6 per cell.
            assert_eq!(a[512], Point::new(0.5 / 8.0, 0.5 / 8.0));
            assert_eq!(a[517], a[512]);
            assert_eq!(a[518], Point::new(1.5 / 8.0, 0.5 / 8.0));
            assert_eq!(a[895], Point::new(7.5 / 8.0, 7.5 / 8.0));
        }
    }

    fn raw(n: usize, hits: &[(usize, f32, [f32; REGRESSORS])]) -> (Vec<f32>, Vec<f32>) {
        let mut scores = vec![-10.0; n];
        let mut regs = vec![0.0; n * REGRESSORS];
        for (i, logit, r) in hits {
            scores[*i] = *logit;
            regs[i * REGRESSORS..(i + 1) * REGRESSORS].copy_from_slice(r);
        }
        (scores, regs)
    }

    #[test]
    fn decoding_adds_the_anchor_centre_and_keeps_confident_anchors() {
        let a = anchors(128);
        let mut r = [0.0; REGRESSORS];
        r[0] = 2.0; // centre x offset
        r[1] = -3.0;
        r[2] = 40.0; // width
        r[3] = 30.0;
        r[4] = -10.0; // right eye x offset
        r[5] = -5.0;
        // Anchor 512 is the coarse grid's first cell, centred at (8, 8) input pixels.
        let (scores, regs) = raw(896, &[(512, 2.0, r), (600, -1.0, r)]);
        let d = decode(128, &a, &scores, &regs, 0.5);
        assert_eq!(
            d.len(),
            1,
            "the anchor with logit −1 (score 0.27) is dropped"
        );
        let d = &d[0];
        assert!((d.score - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6);
        assert_eq!(d.rect.centre(), Point::new(10.0, 5.0));
        assert_eq!((d.rect.width(), d.rect.height()), (40.0, 30.0));
        assert_eq!(d.keypoints[kp::RIGHT_EYE], Point::new(-2.0, 3.0));
        assert_eq!(d.keypoints[kp::LEFT_EYE], Point::new(8.0, 8.0));
    }

    fn det(score: f32, left: f32, eye_x: f32) -> Detection {
        Detection {
            score,
            rect: Rect {
                left,
                top: 0.0,
                right: left + 10.0,
                bottom: 10.0,
            },
            keypoints: [Point::new(eye_x, 1.0); KEYPOINTS],
        }
    }

    #[test]
    fn weighted_nms_blends_one_face_and_keeps_another_apart() {
        let out = weighted_nms(
            vec![det(0.6, 1.0, 4.0), det(0.9, 0.0, 2.0), det(0.8, 50.0, 55.0)],
            0.3,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        // Box and keypoints averaged by score: (0.9·0 + 0.6·1) / 1.5.
        assert!((out[0].rect.left - 0.4).abs() < 1e-6, "{:?}", out[0]);
        assert!((out[0].keypoints[0].x - (0.9 * 2.0 + 0.6 * 4.0) / 1.5).abs() < 1e-5);
        assert_eq!(out[1].rect.left, 50.0);
    }

    #[test]
    fn merging_two_models_keeps_the_higher_score_per_face() {
        let out = merge(
            vec![det(0.7, 0.0, 1.0), det(0.9, 100.0, 1.0)],
            vec![det(0.95, 1.0, 3.0)],
            0.3,
        );
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].score, out[0].keypoints[0].x), (0.95, 3.0));
        assert_eq!(out[1].rect.left, 100.0);
    }

    #[test]
    fn letterbox_maps_input_pixels_back_to_the_photo() {
        // 640×480 into 256: scale 0.4, 256×192, shifted down 32.
        let l = Letterbox::fit(640, 480, 256);
        assert_eq!((l.width, l.height, l.dx, l.dy), (256, 192, 0.0, 32.0));
        let p = l.to_photo(Point::new(128.0, 128.0));
        assert!(
            (p.x - 320.0).abs() < 1e-3 && (p.y - 240.0).abs() < 1e-3,
            "{p:?}"
        );
        // A portrait 92×112 into 128: scaled up, shifted right.
        let l = Letterbox::fit(92, 112, 128);
        assert_eq!((l.width, l.height), (105, 128));
        assert_eq!(l.dx, 11.0);
        let p = l.to_photo(Point::new(11.0, 0.0));
        assert!(p.x.abs() < 1e-3 && p.y.abs() < 1e-3);
    }
}
