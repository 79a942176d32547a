//! How usable a face is: the gate that refuses non-faces and turned heads, and a 0–1 quality score per
//! face that picks and weighs the frames a multi-frame decision fuses.
//!
//! Both engines give the same three points here: the centres of the two eyes and the nose (dlib: the base
//! of the nose, BlazeFace: its tip). Pose is read from them: *roll* is the tilt of the eye line, *yaw* how
//! far the nose sits sideways from the middle of the eyes, as a share of the eye distance. The tip of the
//! nose stands further out of the face than its base, so it swings about twice as far for the same turn
//! of the head: each kind of nose point has its own [`PoseLimits`].
//!
//! The score's parts, each 0–1 (1 = good): sharpness (variance of the Laplacian of the face, at a fixed
//! scale so small and large faces compare), size (box width against twice the smallest accepted face),
//! frontal pose (yaw and roll) and exposure (mean brightness and clipped pixels of the face). The overall
//! score is their product: one bad part makes a bad frame, whatever the others.

use image::RgbImage;

use crate::geometry::{Point, Rect};

/// The parts of a face's quality, each 0–1, and their product.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quality {
    pub sharpness: f32,
    pub size: f32,
    pub pose: f32,
    pub exposure: f32,
    /// `sharpness × size × pose × exposure`.
    pub overall: f32,
}

impl Quality {
    fn new(sharpness: f32, size: f32, pose: f32, exposure: f32) -> Self {
        let c = |v: f32| {
            if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let (sharpness, size, pose, exposure) = (c(sharpness), c(size), c(pose), c(exposure));
        Self {
            sharpness,
            size,
            pose,
            exposure,
            overall: sharpness * size * pose * exposure,
        }
    }
}

/// Head pose read from the eyes and nose.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// Tilt of the eye line, degrees (0 = level).
    pub roll_deg: f32,
    /// Sideways offset of the nose from the eyes' middle, as a share of the eye distance (0 = frontal,
    /// about 0.5 = the nose in line with an eye: a profile).
    pub yaw: f32,
    /// How far the nose hangs below the eye line, as a share of the eye distance.
    pub drop: f32,
    /// Distance between the eyes, pixels.
    pub eye_distance: f32,
}

impl Pose {
    /// `eyes` in either order.
    pub fn from_points(eyes: [Point; 2], nose: Point) -> Option<Self> {
        let (a, b) = if eyes[0].x <= eyes[1].x {
            (eyes[0], eyes[1])
        } else {
            (eyes[1], eyes[0])
        };
        let (ex, ey) = (b.x - a.x, b.y - a.y);
        let d = (ex * ex + ey * ey).sqrt();
        if d.is_nan() || d <= 1e-3 {
            return None;
        }
        let (ux, uy) = (ex / d, ey / d);
        let c = Point::mid(a, b);
        let (nx, ny) = (nose.x - c.x, nose.y - c.y);
        Some(Self {
            roll_deg: uy.atan2(ux).to_degrees(),
            yaw: (ux * nx + uy * ny) / d,
            drop: (ux * ny - uy * nx) / d,
            eye_distance: d,
        })
    }
}

/// How far the nose point may sit from a frontal face's, per kind of point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoseLimits {
    /// Largest |yaw| accepted; the pose score falls to 0 there.
    pub max_yaw: f32,
    /// Accepted range of the nose's drop below the eye line.
    pub min_drop: f32,
    pub max_drop: f32,
}

/// dlib's base of the nose: beyond either eye sideways is a profile.
pub const NOSE_BASE: PoseLimits = PoseLimits {
    max_yaw: 0.5,
    min_drop: 0.2,
    max_drop: 1.5,
};

/// BlazeFace's tip of the nose. Measured on `lfw-dev`: with the base's limits 2.41 % of its photos
/// (turned or lowered heads that MobileFaceNet still matches well) were refused and the true-accept
/// rate at FAR 0.1 % was 93.5 %; with these, 0.12 % and 97.9 %.
pub const NOSE_TIP: PoseLimits = PoseLimits {
    max_yaw: 1.2,
    min_drop: 0.0,
    max_drop: 1.5,
};

/// Rejects false faces (clothing, background) and heads turned too far for a good embedding: eyes a
/// plausible distance apart for the box, roll under ≈ 40°, the nose below the eyes and not too far
/// sideways (`limits`), and every keypoint near the box.
pub fn plausible(
    rect: &Rect,
    eyes: [Point; 2],
    nose: Point,
    keypoints: &[Point],
    limits: PoseLimits,
) -> bool {
    let Some(p) = Pose::from_points(eyes, nose) else {
        return false;
    };
    let width = rect.width().max(1.0);
    if !(0.2..=0.8).contains(&(p.eye_distance / width)) {
        return false;
    }
    // tan(40°) ≈ 0.84: the eye line closer to horizontal than vertical.
    if p.roll_deg.abs() > 40.0 {
        return false;
    }
    if !(limits.min_drop..=limits.max_drop).contains(&p.drop) || p.yaw.abs() > limits.max_yaw {
        return false;
    }
    let slack = width * 0.5;
    keypoints.iter().all(|q| {
        q.x >= rect.left - slack
            && q.x <= rect.right + slack
            && q.y >= rect.top - slack
            && q.y <= rect.bottom + slack
    })
}

/// Side of the grey square the sharpness and exposure are measured on.
const PROBE_SIDE: u32 = 64;

/// The quality of the face in `rect` of `img`; `min_face_px` is the smallest face the gate accepts.
pub fn assess(
    img: &RgbImage,
    rect: &Rect,
    eyes: [Point; 2],
    nose: Point,
    min_face_px: u32,
    limits: PoseLimits,
) -> Quality {
    let grey = grey_square(img, rect, PROBE_SIDE);
    let sharpness = sharpness_score(laplacian_variance(&grey, PROBE_SIDE as usize));
    let size = rect.width() / (2.0 * min_face_px.max(1) as f32);
    let pose = Pose::from_points(eyes, nose).map_or(0.0, |p| pose_score(p, limits));
    Quality::new(sharpness, size, pose, exposure_score(&grey))
}

/// 1 for a level, frontal face; 0 at the largest yaw `limits` accept or a roll of 40°.
pub fn pose_score(p: Pose, limits: PoseLimits) -> f32 {
    let yaw = 1.0 - (p.yaw.abs() / limits.max_yaw).min(1.0);
    let roll = 1.0 - (p.roll_deg.abs() / 40.0).min(1.0);
    yaw * roll
}

/// Laplacian variance → 0–1: about 0.5 at a variance of 60 (a soft but usable face at 64×64), near 1
/// for crisp faces, near 0 for motion blur.
pub fn sharpness_score(variance: f32) -> f32 {
    variance / (variance + 60.0)
}

/// Mean brightness in the comfortable band 70–180 of 255 scores 1, falling to 0 at 10 and 245; pixels
/// clipped to black or white take their share off.
pub fn exposure_score(grey: &[f32]) -> f32 {
    if grey.is_empty() {
        return 0.0;
    }
    let n = grey.len() as f32;
    let mean = grey.iter().sum::<f32>() / n;
    let band = if mean < 70.0 {
        (mean - 10.0) / 60.0
    } else if mean > 180.0 {
        (245.0 - mean) / 65.0
    } else {
        1.0
    };
    let clipped = grey
        .iter()
        .filter(|&&v| !(4.0..=251.0).contains(&v))
        .count() as f32
        / n;
    band.clamp(0.0, 1.0) * (1.0 - clipped)
}

/// The face box, resampled (nearest neighbour of area means) to `side`×`side` grey values 0–255.
fn grey_square(img: &RgbImage, rect: &Rect, side: u32) -> Vec<f32> {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let l = rect.left.clamp(0.0, w - 1.0);
    let t = rect.top.clamp(0.0, h - 1.0);
    let r = rect.right.clamp(l + 1.0, w);
    let b = rect.bottom.clamp(t + 1.0, h);
    let (sx, sy) = ((r - l) / side as f32, (b - t) / side as f32);
    let px = img.as_raw();
    let mut out = Vec::with_capacity((side * side) as usize);
    for j in 0..side {
        for i in 0..side {
            // Average a 2×2 sample inside each cell: cheap, and tames noise in large faces.
            let mut acc = 0.0;
            for (fx, fy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let x = ((l + (i as f32 + fx) * sx) as u32).min(img.width() - 1);
                let y = ((t + (j as f32 + fy) * sy) as u32).min(img.height() - 1);
                let k = ((y * img.width() + x) * 3) as usize;
                acc += 0.299 * px[k] as f32 + 0.587 * px[k + 1] as f32 + 0.114 * px[k + 2] as f32;
            }
            out.push(acc / 4.0);
        }
    }
    out
}

/// Variance of the 4-neighbour Laplacian over the inner pixels of a `side`×`side` grey square.
pub fn laplacian_variance(grey: &[f32], side: usize) -> f32 {
    if side < 3 || grey.len() < side * side {
        return 0.0;
    }
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..side - 1 {
        for x in 1..side - 1 {
            let c = grey[y * side + x];
            let l = grey[y * side + x - 1]
                + grey[y * side + x + 1]
                + grey[(y - 1) * side + x]
                + grey[(y + 1) * side + x]
                - 4.0 * c;
            sum += l as f64;
            sum2 += (l as f64) * (l as f64);
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean).max(0.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eyes(l: (f32, f32), r: (f32, f32)) -> [Point; 2] {
        [Point::new(l.0, l.1), Point::new(r.0, r.1)]
    }

    #[test]
    fn pose_of_a_frontal_a_turned_and_a_tilted_face() {
        let frontal =
            Pose::from_points(eyes((40.0, 50.0), (80.0, 50.0)), Point::new(60.0, 70.0)).unwrap();
        assert!(frontal.roll_deg.abs() < 1e-4 && frontal.yaw.abs() < 1e-4);
        assert!((frontal.drop - 0.5).abs() < 1e-4);
        assert!((pose_score(frontal, NOSE_BASE) - 1.0).abs() < 1e-6);
        // Eyes given right-to-left: same pose.
        let swapped =
            Pose::from_points(eyes((80.0, 50.0), (40.0, 50.0)), Point::new(60.0, 70.0)).unwrap();
        assert_eq!(frontal, swapped);
        // Nose in line with an eye: a profile, score 0.
        let turned =
            Pose::from_points(eyes((40.0, 50.0), (80.0, 50.0)), Point::new(80.0, 70.0)).unwrap();
        assert!((turned.yaw - 0.5).abs() < 1e-4);
        assert_eq!(pose_score(turned, NOSE_BASE), 0.0);
        // The same offset of a nose *tip* is a moderate turn.
        assert!((pose_score(turned, NOSE_TIP) - (1.0 - 0.5 / 1.2)).abs() < 1e-4);
        // 20° roll halves the roll part.
        let t = 20f32.to_radians();
        let tilted = Pose::from_points(
            eyes((0.0, 0.0), (40.0 * t.cos(), 40.0 * t.sin())),
            Point::new(
                20.0 * t.cos() - 20.0 * t.sin(),
                20.0 * t.sin() + 20.0 * t.cos(),
            ),
        )
        .unwrap();
        assert!((tilted.roll_deg - 20.0).abs() < 1e-3, "{tilted:?}");
        assert!((pose_score(tilted, NOSE_BASE) - 0.5).abs() < 1e-3);
    }

    #[test]
    fn the_gate_refuses_profiles_upside_down_faces_and_stray_keypoints() {
        let rect = Rect {
            left: 20.0,
            top: 20.0,
            right: 120.0,
            bottom: 120.0,
        };
        let e = eyes((50.0, 55.0), (90.0, 55.0));
        let nose = Point::new(70.0, 80.0);
        let b = NOSE_BASE;
        assert!(plausible(&rect, e, nose, &[nose], b));
        assert!(
            !plausible(&rect, e, Point::new(95.0, 80.0), &[], b),
            "profile"
        );
        assert!(
            !plausible(&rect, e, Point::new(70.0, 30.0), &[], b),
            "nose above the eyes"
        );
        assert!(
            !plausible(&rect, eyes((68.0, 55.0), (72.0, 55.0)), nose, &[], b),
            "eyes too close for the box"
        );
        assert!(
            !plausible(&rect, e, nose, &[Point::new(400.0, 60.0)], b),
            "keypoint far outside"
        );
        // A nose tip 0.6 eye distances to the side: a turned head, still usable; a base there is not.
        let side = Point::new(94.0, 80.0);
        assert!(plausible(&rect, e, side, &[], NOSE_TIP));
        assert!(!plausible(&rect, e, side, &[], NOSE_BASE));
        assert!(
            !plausible(&rect, e, Point::new(130.0, 80.0), &[], NOSE_TIP),
            "profile"
        );
    }

    #[test]
    fn sharp_faces_score_higher_than_blurred_ones() {
        // A checkerboard (sharp edges) against a smooth ramp of the same range.
        let side = 32;
        let sharp: Vec<f32> = (0..side * side)
            .map(|i| {
                if ((i % side) / 4 + (i / side) / 4) % 2 == 0 {
                    60.0
                } else {
                    190.0
                }
            })
            .collect();
        let smooth: Vec<f32> = (0..side * side)
            .map(|i| 60.0 + (i % side) as f32 * 4.0)
            .collect();
        let (vs, vb) = (
            laplacian_variance(&sharp, side),
            laplacian_variance(&smooth, side),
        );
        assert!(vs > 1000.0 && vb < 1e-3, "{vs} {vb}");
        assert!(sharpness_score(vs) > 0.9 && sharpness_score(vb) < 0.01);
    }

    #[test]
    fn exposure_penalises_dark_bright_and_clipped_faces() {
        assert_eq!(exposure_score(&[120.0; 100]), 1.0);
        assert!(exposure_score(&[20.0; 100]) < 0.2);
        assert!(exposure_score(&[240.0; 100]) < 0.1);
        let mut half_clipped = vec![120.0; 100];
        half_clipped[..50].fill(255.0);
        // Mean 187.5: just above the band, and half the pixels clipped.
        assert!(exposure_score(&half_clipped) < 0.5);
    }

    #[test]
    fn overall_is_the_product_and_a_tiny_face_scores_low() {
        let img = RgbImage::from_fn(200, 200, |x, y| {
            let v = if (x / 5 + y / 5) % 2 == 0 { 70 } else { 180 };
            image::Rgb([v, v, v])
        });
        let e = eyes((80.0, 90.0), (120.0, 90.0));
        let nose = Point::new(100.0, 110.0);
        let big = Rect {
            left: 50.0,
            top: 50.0,
            right: 150.0,
            bottom: 150.0,
        };
        let q = assess(&img, &big, e, nose, 50, NOSE_BASE);
        assert!(
            q.size >= 1.0 && q.pose > 0.99 && q.exposure > 0.9 && q.sharpness > 0.5,
            "{q:?}"
        );
        assert!((q.overall - q.sharpness * q.size * q.pose * q.exposure).abs() < 1e-6);
        let small = Rect {
            left: 90.0,
            top: 90.0,
            right: 110.0,
            bottom: 110.0,
        };
        assert!(assess(&img, &small, e, nose, 50, NOSE_BASE).size < 0.25);
    }
}
