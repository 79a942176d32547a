//! Homographies: the 3×3 projective transforms by which every point of a flat object (a photo, a
//! screen) moves between two camera frames, whatever way the object is moved or tilted. The attack
//! generator moves its photos by them, and the dense-motion check ([`crate::motion`]) fits one to a
//! face's tracked points to see whether the face moved as a plane.

// Matrix code reads clearer with indices than with iterator chains.
#![allow(clippy::needless_range_loop)]

use crate::{Error, Result};

/// A point in image pixels.
pub type Pt = [f64; 2];

/// The line between two eyes given in either order: the left one in the image, the right one, the
/// vector from left to right and its length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EyeLine {
    pub left: Pt,
    pub right: Pt,
    pub along: Pt,
    pub distance: f64,
}

impl EyeLine {
    pub fn new(eyes: [Pt; 2]) -> Self {
        let (left, right) = if eyes[0][0] <= eyes[1][0] {
            (eyes[0], eyes[1])
        } else {
            (eyes[1], eyes[0])
        };
        let along = [right[0] - left[0], right[1] - left[1]];
        EyeLine {
            left,
            right,
            along,
            distance: (along[0] * along[0] + along[1] * along[1]).sqrt(),
        }
    }

    /// The point halfway between the eyes.
    pub fn middle(&self) -> Pt {
        [
            (self.left[0] + self.right[0]) / 2.0,
            (self.left[1] + self.right[1]) / 2.0,
        ]
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn some_homography(k: f64) -> Homography {
        let (c, s) = ((0.1 * k).cos() * 1.05, (0.1 * k).sin() * 1.05);
        Homography([[c, -s, 12.0 * k], [s, c, -7.0 * k], [3e-4 * k, -2e-4, 1.0]])
    }

    #[test]
    fn the_fit_recovers_an_exact_homography_and_its_inverse_undoes_it() {
        let src: Vec<Pt> = vec![
            [288.0, 240.0],
            [352.0, 240.0],
            [320.0, 270.0],
            [320.0, 300.0],
            [250.0, 260.0],
            [390.0, 262.0],
        ];
        let h = some_homography(1.0);
        let dst: Vec<Pt> = src.iter().map(|p| h.apply(*p).unwrap()).collect();
        let fit = fit_homography(&src, &dst).unwrap();
        let back = fit.inverse().unwrap();
        for p in [[0.0, 0.0], [100.0, 50.0], [400.0, 300.0]] {
            let (a, b) = (h.apply(p).unwrap(), fit.apply(p).unwrap());
            assert!(
                (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6,
                "{a:?} {b:?}"
            );
            let r = back.apply(b).unwrap();
            assert!((r[0] - p[0]).abs() < 1e-6 && (r[1] - p[1]).abs() < 1e-6);
        }
    }

    #[test]
    fn too_few_or_unpaired_points_are_errors() {
        let p: Vec<Pt> = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 3.0]];
        assert!(fit_homography(&p[..3], &p[..3]).is_err());
        assert!(fit_homography(&p, &p[..4]).is_err());
        assert!(fit_homography(&p[..4], &p[..4]).is_ok());
    }
}
