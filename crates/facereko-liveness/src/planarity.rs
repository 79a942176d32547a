//! Is the motion of a face's keypoints across frames one plane's motion?
//!
//! Every point of a flat photo or screen moves between two camera frames by exactly one homography (a
//! 3×3 projective transform), whatever way it is moved or tilted. A real head is not flat: the ear
//! tragions lie 8–10 cm behind the plane of the eyes and mouth and the nose tip 2–3 cm in front of it, so
//! when the head turns, the keypoints move by parallax that no single homography explains. The score of
//! a pair of frames is the transfer error left after the best homography (normalised DLT, least squares
//! over all keypoints) relative to the inter-ocular distance; the score of a sequence is a high order
//! statistic over its frame pairs.
//!
//! A homography has 8 degrees of freedom, two per point: six keypoints (BlazeFace) leave 4 residual
//! degrees of freedom per pair, five (dlib) leave 2. Fewer than five points cannot show parallax at all.

// Matrix code reads clearer with indices than with iterator chains.
#![allow(clippy::needless_range_loop)]

use crate::{Error, Result};

/// A point in image pixels.
pub type Pt = [f64; 2];

/// Fewer points than this fit every pair exactly (8 unknowns, 2 equations per point).
pub const MIN_POINTS: usize = 5;

/// A 3×3 projective transform, row-major, `h[2][2]` normalised to 1 where possible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Homography(pub [[f64; 3]; 3]);

impl Homography {
    pub const IDENTITY: Homography =
        Homography([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);

    /// The image of `p`; `None` when it maps to infinity.
    pub fn apply(&self, p: Pt) -> Option<Pt> {
        let h = &self.0;
        let w = h[2][0] * p[0] + h[2][1] * p[1] + h[2][2];
        if w.abs() < 1e-12 {
            return None;
        }
        Some([
            (h[0][0] * p[0] + h[0][1] * p[1] + h[0][2]) / w,
            (h[1][0] * p[0] + h[1][1] * p[1] + h[1][2]) / w,
        ])
    }

    /// `self` after `first`.
    pub fn after(&self, first: &Homography) -> Homography {
        Homography(mat_mul(&self.0, &first.0))
    }

    /// The inverse transform; `None` when singular.
    pub fn inverse(&self) -> Option<Homography> {
        let m = &self.0;
        let c = |r0: usize, r1: usize, c0: usize, c1: usize| {
            m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
        };
        let det = m[0][0] * c(1, 2, 1, 2) - m[0][1] * c(1, 2, 0, 2) + m[0][2] * c(1, 2, 0, 1);
        if det.abs() < 1e-15 {
            return None;
        }
        let inv = [
            [c(1, 2, 1, 2), -c(0, 2, 1, 2), c(0, 1, 1, 2)],
            [-c(1, 2, 0, 2), c(0, 2, 0, 2), -c(0, 1, 0, 2)],
            [c(1, 2, 0, 1), -c(0, 2, 0, 1), c(0, 1, 0, 1)],
        ];
        Some(Homography(inv.map(|row| row.map(|v| v / det))))
    }
}

fn mat_mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// Hartley's normalisation: centroid to the origin, mean distance √2.
fn normaliser(pts: &[Pt]) -> [[f64; 3]; 3] {
    let n = pts.len() as f64;
    let cx = pts.iter().map(|p| p[0]).sum::<f64>() / n;
    let cy = pts.iter().map(|p| p[1]).sum::<f64>() / n;
    let mean = pts
        .iter()
        .map(|p| ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt())
        .sum::<f64>()
        / n;
    let s = if mean > 1e-12 {
        2f64.sqrt() / mean
    } else {
        1.0
    };
    [[s, 0.0, -s * cx], [0.0, s, -s * cy], [0.0, 0.0, 1.0]]
}

/// The homography that maps `src` onto `dst` best in the algebraic least-squares sense (normalised DLT:
/// the eigenvector of AᵀA with the smallest eigenvalue, by Jacobi rotations).
pub fn fit_homography(src: &[Pt], dst: &[Pt]) -> Result<Homography> {
    if src.len() != dst.len() {
        return Err(Error::Points(format!(
            "{} points in one frame and {} in the other",
            src.len(),
            dst.len()
        )));
    }
    if src.len() < 4 {
        return Err(Error::Points(format!(
            "a homography needs at least 4 points, got {}",
            src.len()
        )));
    }
    let (ts, td) = (normaliser(src), normaliser(dst));
    let (ns, nd) = (Homography(ts), Homography(td));
    let mut ata = [[0.0f64; 9]; 9];
    for (s, d) in src.iter().zip(dst) {
        let s = ns.apply(*s).unwrap_or(*s);
        let d = nd.apply(*d).unwrap_or(*d);
        let (x, y, u, v) = (s[0], s[1], d[0], d[1]);
        let rows = [
            [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u],
            [0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v],
        ];
        for r in &rows {
            for i in 0..9 {
                for j in 0..9 {
                    ata[i][j] += r[i] * r[j];
                }
            }
        }
    }
    let h = smallest_eigenvector(ata);
    let hn = Homography([[h[0], h[1], h[2]], [h[3], h[4], h[5]], [h[6], h[7], h[8]]]);
    let td_inv = nd
        .inverse()
        .ok_or_else(|| Error::Points("all points of a frame coincide".into()))?;
    let mut out = td_inv.after(&hn).after(&ns);
    let w = out.0[2][2];
    if w.abs() > 1e-12 {
        out.0 = out.0.map(|row| row.map(|v| v / w));
    }
    Ok(out)
}

/// Cyclic Jacobi eigen-decomposition of a symmetric 9×9 matrix; the eigenvector of the smallest
/// eigenvalue.
fn smallest_eigenvector(mut a: [[f64; 9]; 9]) -> [f64; 9] {
    let mut v = [[0.0f64; 9]; 9];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..9)
            .flat_map(|i| (0..9).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..8 {
            for q in p + 1..9 {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..9 {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..9 {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let min = (0..9)
        .min_by(|&i, &j| a[i][i].total_cmp(&a[j][j]))
        .unwrap_or(8);
    std::array::from_fn(|k| v[k][min])
}

/// The largest transfer error, in pixels, of `src` → `dst` under the best homography: how far the
/// worst keypoint is from where one plane's motion would put it.
pub fn pair_residual(src: &[Pt], dst: &[Pt]) -> Result<f64> {
    let h = fit_homography(src, dst)?;
    let mut worst = 0.0f64;
    for (s, d) in src.iter().zip(dst) {
        let e = match h.apply(*s) {
            Some(p) => ((p[0] - d[0]).powi(2) + (p[1] - d[1]).powi(2)).sqrt(),
            None => f64::INFINITY,
        };
        // A degenerate fit (points on a line, a point sent to infinity) says nothing about depth; an
        // infinite score would count as the most live of all.
        if !e.is_finite() {
            return Err(Error::Points(
                "the keypoints admit no usable homography".into(),
            ));
        }
        worst = worst.max(e);
    }
    Ok(worst)
}

/// How a sequence's pair residuals become one score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// The largest pair residual: one clear head turn is enough.
    Max,
    /// The median pair residual: needs parallax in most pairs, steadier against one bad detection.
    Median,
}

/// The score of a sequence of frames, each the same keypoints in the same order: the transfer error
/// left after the best homography, relative to the inter-ocular distance, over every pair of frames,
/// aggregated. `eyes` are the indices of the two eye keypoints. High means 3-D (live); a flat photo or
/// screen scores near the detector's noise.
pub fn sequence_score(
    frames: &[Vec<Pt>],
    eyes: (usize, usize),
    aggregate: Aggregate,
) -> Result<f64> {
    if frames.len() < 2 {
        return Err(Error::Points(format!(
            "a sequence needs at least 2 frames, got {}",
            frames.len()
        )));
    }
    let n = frames[0].len();
    if n < MIN_POINTS {
        return Err(Error::Points(format!(
            "{n} keypoints cannot show parallax: at least {MIN_POINTS} are needed"
        )));
    }
    if eyes.0 >= n || eyes.1 >= n {
        return Err(Error::Points(format!("eye index out of {n} keypoints")));
    }
    let iod = |f: &[Pt]| {
        let (a, b) = (f[eyes.0], f[eyes.1]);
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    };
    let mut scores = Vec::new();
    for i in 0..frames.len() {
        for j in i + 1..frames.len() {
            let (a, b) = (&frames[i], &frames[j]);
            let d = (iod(a) + iod(b)) / 2.0;
            if d < 1e-6 {
                return Err(Error::Points("the eyes coincide".into()));
            }
            // Both directions: the transfer error is measured in the destination frame only.
            let r = pair_residual(a, b)?.max(pair_residual(b, a)?);
            let score = r / d;
            if !score.is_finite() {
                return Err(Error::Points("a frame pair gave no finite score".into()));
            }
            scores.push(score);
        }
    }
    scores.sort_by(f64::total_cmp);
    Ok(match aggregate {
        Aggregate::Max => scores[scores.len() - 1],
        Aggregate::Median => scores[scores.len() / 2],
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A head in millimetres, camera axes (x right, y down, z away from the camera), origin between the
    /// eyes: right eye, left eye, nose tip, mouth, right tragion, left tragion — BlazeFace's order.
    pub(crate) const HEAD_MM: [[f64; 3]; 6] = [
        [-32.0, 0.0, 0.0],
        [32.0, 0.0, 0.0],
        [0.0, 35.0, -25.0],
        [0.0, 70.0, -5.0],
        [-75.0, 20.0, 90.0],
        [75.0, 20.0, 90.0],
    ];

    /// The head turned by `yaw`/`pitch` degrees about a point 90 mm behind the eyes, 600 mm in front of
    /// a pinhole camera with a 500-pixel focal length, in pixels.
    pub(crate) fn project_head(yaw: f64, pitch: f64) -> Vec<Pt> {
        let (y, p) = (yaw.to_radians(), pitch.to_radians());
        HEAD_MM
            .iter()
            .map(|&[x, yy, z]| {
                let z = z - 90.0;
                let (x1, z1) = (x * y.cos() + z * y.sin(), -x * y.sin() + z * y.cos());
                let (y2, z2) = (yy * p.cos() - z1 * p.sin(), yy * p.sin() + z1 * p.cos());
                let depth = 600.0 + 90.0 + z2;
                [320.0 + 500.0 * x1 / depth, 240.0 + 500.0 * y2 / depth]
            })
            .collect()
    }

    fn warp(h: &Homography, pts: &[Pt]) -> Vec<Pt> {
        pts.iter().map(|p| h.apply(*p).unwrap()).collect()
    }

    fn some_homography(k: f64) -> Homography {
        let (c, s) = ((0.1 * k).cos() * 1.05, (0.1 * k).sin() * 1.05);
        Homography([[c, -s, 12.0 * k], [s, c, -7.0 * k], [3e-4 * k, -2e-4, 1.0]])
    }

    #[test]
    fn the_fit_recovers_an_exact_homography() {
        let src = project_head(0.0, 0.0);
        let h = some_homography(1.0);
        let fit = fit_homography(&src, &warp(&h, &src)).unwrap();
        for p in [[0.0, 0.0], [100.0, 50.0], [400.0, 300.0]] {
            let (a, b) = (h.apply(p).unwrap(), fit.apply(p).unwrap());
            assert!(
                (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6,
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn a_photo_moved_by_homographies_scores_zero() {
        let photo = project_head(0.0, 0.0);
        let frames: Vec<Vec<Pt>> = (0..5)
            .map(|k| warp(&some_homography(k as f64), &photo))
            .collect();
        for agg in [Aggregate::Max, Aggregate::Median] {
            let s = sequence_score(&frames, (0, 1), agg).unwrap();
            assert!(s < 1e-6, "{agg:?}: {s}");
        }
    }

    #[test]
    fn a_head_turned_ten_degrees_scores_clearly_higher() {
        let frames = vec![project_head(0.0, 0.0), project_head(10.0, 0.0)];
        let s = sequence_score(&frames, (0, 1), Aggregate::Max).unwrap();
        // One pixel of keypoint noise on a 53-pixel eye distance is about 0.02.
        assert!(s > 0.04, "{s}");
        let nod = vec![project_head(0.0, 0.0), project_head(0.0, 10.0)];
        assert!(sequence_score(&nod, (0, 1), Aggregate::Max).unwrap() > 0.04);
    }

    /// Regression: a sequence whose score was infinite (a degenerate fit on dlib's keypoints) counted
    /// as the most live of all, accepted at any threshold; now it is unscored, which is refused.
    #[test]
    fn a_non_finite_pair_is_an_error_not_an_infinite_score() {
        let a = project_head(0.0, 0.0);
        let mut b = project_head(5.0, 0.0);
        b[3] = [f64::INFINITY, 0.0];
        let r = sequence_score(&[a, b], (0, 1), Aggregate::Max);
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn too_few_points_or_frames_are_errors() {
        let f = project_head(0.0, 0.0);
        assert!(sequence_score(std::slice::from_ref(&f), (0, 1), Aggregate::Max).is_err());
        let four: Vec<Pt> = f[..4].to_vec();
        assert!(sequence_score(&[four.clone(), four], (0, 1), Aggregate::Max).is_err());
        assert!(fit_homography(&f, &f[..5]).is_err());
    }
}
