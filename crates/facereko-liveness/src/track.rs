//! Point tracking between two grey images: Shi–Tomasi corners and pyramidal Lucas–Kanade.
//!
//! The textbook method (Shi & Tomasi 1994, "Good features to track"; Bouguet 2000, "Pyramidal
//! implementation of the Lucas Kanade feature tracker"), written out here because it is two hundred
//! lines and the workspace has no computer-vision library. A corner is a pixel whose 5×5 structure tensor
//! has a large smallest eigenvalue (it can be located in both directions); a point is tracked by
//! solving, coarse to fine over an image pyramid, for the shift that best matches its 11×11 window in the
//! second image. A tracker that cannot solve (a flat window, a point leaving the image) says so.

/// A grey image, intensities 0–1, row-major.
#[derive(Clone, Debug)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub px: Vec<f32>,
}

impl Gray {
    pub fn new(width: usize, height: usize) -> Self {
        Gray {
            width,
            height,
            px: vec![0.0; width * height],
        }
    }

    fn at(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.width as isize - 1) as usize;
        let y = y.clamp(0, self.height as isize - 1) as usize;
        self.px[y * self.width + x]
    }

    /// Bilinear sample at `(x, y)` (pixel centres at integers), edges clamped.
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as isize, y0 as isize);
        let top = self.at(x0, y0) * (1.0 - fx) + self.at(x0 + 1, y0) * fx;
        let bottom = self.at(x0, y0 + 1) * (1.0 - fx) + self.at(x0 + 1, y0 + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// The 11×11 window centred on `(x, y)`, row by row, into `out`. Every sample of a window has the
    /// same fractional offset, so the bilinear weights are computed once; a window that reaches past
    /// an edge takes the clamped path.
    fn window(&self, x: f32, y: f32, out: &mut [f32]) {
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as isize - RADIUS, y0 as isize - RADIUS);
        let side = 2 * RADIUS + 1;
        let inside = x0 >= 0
            && y0 >= 0
            && x0 + side < self.width as isize
            && y0 + side < self.height as isize;
        if !inside {
            for (k, (dy, dx)) in window().enumerate() {
                out[k] = self.sample(x + dx, y + dy);
            }
            return;
        }
        let (w00, w10, w01, w11) = (
            (1.0 - fx) * (1.0 - fy),
            fx * (1.0 - fy),
            (1.0 - fx) * fy,
            fx * fy,
        );
        let (side, x0, y0) = (side as usize, x0 as usize, y0 as usize);
        for (r, row) in out.chunks_exact_mut(side).enumerate() {
            let top = &self.px[(y0 + r) * self.width + x0..][..side + 1];
            let bottom = &self.px[(y0 + r + 1) * self.width + x0..][..side + 1];
            for (c, v) in row.iter_mut().enumerate() {
                *v = w00 * top[c] + w10 * top[c + 1] + w01 * bottom[c] + w11 * bottom[c + 1];
            }
        }
    }

    /// Half the size: a [1 2 1] blur in both directions, then every other pixel.
    fn half(&self) -> Gray {
        let (w, h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let mut out = Gray::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let (cx, cy) = (2 * x as isize, 2 * y as isize);
                let mut sum = 0.0;
                for (dy, wy) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                    for (dx, wx) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                        sum += wx * wy * self.at(cx + dx, cy + dy);
                    }
                }
                out.px[y * w + x] = sum / 16.0;
            }
        }
        out
    }

    /// Scharr derivatives in x and y.
    fn gradients(&self) -> (Gray, Gray) {
        let (w, h) = (self.width, self.height);
        let (mut gx, mut gy) = (Gray::new(w, h), Gray::new(w, h));
        for y in 0..h as isize {
            for x in 0..w as isize {
                let a = |dx: isize, dy: isize| self.at(x + dx, y + dy);
                let i = y as usize * w + x as usize;
                gx.px[i] = (3.0 * (a(1, -1) - a(-1, -1))
                    + 10.0 * (a(1, 0) - a(-1, 0))
                    + 3.0 * (a(1, 1) - a(-1, 1)))
                    / 32.0;
                gy.px[i] = (3.0 * (a(-1, 1) - a(-1, -1))
                    + 10.0 * (a(0, 1) - a(0, -1))
                    + 3.0 * (a(1, 1) - a(1, -1)))
                    / 32.0;
            }
        }
        (gx, gy)
    }
}

#[derive(Debug)]
struct Level {
    img: Gray,
    gx: Gray,
    gy: Gray,
}

/// An image with its coarser copies and their gradients, built once per frame.
#[derive(Debug)]
pub struct Pyramid {
    levels: Vec<Level>,
}

/// Half-width of the tracking window (11×11).
const RADIUS: isize = 5;
/// Newton steps per level at most, and the step size below which a level is done.
const ITERATIONS: usize = 30;
const EPSILON: f32 = 0.01;
/// A window whose structure tensor's smallest eigenvalue (per pixel) is below this cannot be located.
const MIN_EIGEN: f32 = 1e-5;

impl Pyramid {
    /// `levels` levels (at least 1), each half the size of the one below.
    pub fn new(img: Gray, levels: usize) -> Self {
        let mut out: Vec<Level> = Vec::with_capacity(levels.max(1));
        let mut current = img;
        loop {
            let (gx, gy) = current.gradients();
            let next = (out.len() + 1 < levels.max(1)).then(|| current.half());
            out.push(Level {
                img: current,
                gx,
                gy,
            });
            match next {
                Some(n) => current = n,
                None => break,
            }
        }
        Pyramid { levels: out }
    }

    /// The full-size image.
    pub fn base(&self) -> &Gray {
        &self.levels[0].img
    }

    /// Up to `max` corners of the full-size image, strongest first, at least `min_distance` apart and
    /// `margin` pixels inside the image; only corners at least 1 % as strong as the strongest.
    pub fn corners(&self, max: usize, min_distance: f32, margin: usize) -> Vec<[f32; 2]> {
        let l = &self.levels[0];
        let (w, h) = (l.img.width, l.img.height);
        if w <= 2 * margin + 2 || h <= 2 * margin + 2 {
            return Vec::new();
        }
        let mut strength = Gray::new(w, h);
        for y in margin..h - margin {
            for x in margin..w - margin {
                let (mut a, mut b, mut c) = (0.0f32, 0.0f32, 0.0f32);
                for dy in -2..=2 {
                    for dx in -2..=2 {
                        let (ix, iy) = (
                            l.gx.at(x as isize + dx, y as isize + dy),
                            l.gy.at(x as isize + dx, y as isize + dy),
                        );
                        a += ix * ix;
                        b += ix * iy;
                        c += iy * iy;
                    }
                }
                strength.px[y * w + x] = min_eigen(a, b, c);
            }
        }
        let best = strength.px.iter().copied().fold(0.0f32, f32::max);
        if best <= 0.0 {
            return Vec::new();
        }
        let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
        for y in margin..h - margin {
            for x in margin..w - margin {
                let s = strength.px[y * w + x];
                if s < 0.01 * best {
                    continue;
                }
                let local_max = (-1..=1).all(|dy: isize| {
                    (-1..=1).all(|dx: isize| strength.at(x as isize + dx, y as isize + dy) <= s)
                });
                if local_max {
                    candidates.push((s, x, y));
                }
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut out: Vec<[f32; 2]> = Vec::new();
        let d2 = min_distance * min_distance;
        for (_, x, y) in candidates {
            let p = [x as f32, y as f32];
            if out
                .iter()
                .all(|q| (q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2) >= d2)
            {
                out.push(p);
                if out.len() == max {
                    break;
                }
            }
        }
        out
    }

    /// Where `p` of this image is in `to`, by pyramidal Lucas–Kanade; `None` when the window cannot be
    /// located or leaves the image.
    pub fn track(&self, to: &Pyramid, p: [f32; 2]) -> Option<[f32; 2]> {
        let levels = self.levels.len().min(to.levels.len());
        let mut guess = [0.0f32; 2];
        let side = (2 * RADIUS + 1) as usize;
        let mut template = vec![0.0f32; side * side];
        let mut grad_x = vec![0.0f32; side * side];
        let mut grad_y = vec![0.0f32; side * side];
        let mut moved = vec![0.0f32; side * side];
        for level in (0..levels).rev() {
            let (a, b) = (&self.levels[level], &to.levels[level]);
            let scale = 1.0 / (1u32 << level) as f32;
            let q = [p[0] * scale, p[1] * scale];
            a.img.window(q[0], q[1], &mut template);
            a.gx.window(q[0], q[1], &mut grad_x);
            a.gy.window(q[0], q[1], &mut grad_y);
            let (mut gxx, mut gxy, mut gyy) = (0.0f32, 0.0f32, 0.0f32);
            for (gx, gy) in grad_x.iter().zip(&grad_y) {
                gxx += gx * gx;
                gxy += gx * gy;
                gyy += gy * gy;
            }
            let side2 = (side * side) as f32;
            let template_mean = template.iter().sum::<f32>() / side2;
            let det = gxx * gyy - gxy * gxy;
            if min_eigen(gxx, gxy, gyy) / side2 <= MIN_EIGEN || det <= 0.0 {
                return None;
            }
            let mut v = [0.0f32; 2];
            for _ in 0..ITERATIONS {
                let (cx, cy) = (q[0] + guess[0] + v[0], q[1] + guess[1] + v[1]);
                if !inside(&b.img, cx, cy, if level == 0 { RADIUS as f32 } else { 0.0 }) {
                    return None;
                }
                // Both windows less their means: a change of brightness between the frames (a
                // lamp, a reflection, the camera's exposure) is not taken for motion.
                b.img.window(cx, cy, &mut moved);
                let offset = template_mean - moved.iter().sum::<f32>() / side2;
                let (mut bx, mut by) = (0.0f32, 0.0f32);
                for k in 0..side * side {
                    let diff = template[k] - moved[k] - offset;
                    bx += diff * grad_x[k];
                    by += diff * grad_y[k];
                }
                let eta = [(gyy * bx - gxy * by) / det, (gxx * by - gxy * bx) / det];
                v[0] += eta[0];
                v[1] += eta[1];
                if eta[0].abs() < EPSILON && eta[1].abs() < EPSILON {
                    break;
                }
            }
            guess = if level == 0 {
                [guess[0] + v[0], guess[1] + v[1]]
            } else {
                [2.0 * (guess[0] + v[0]), 2.0 * (guess[1] + v[1])]
            };
        }
        let out = [p[0] + guess[0], p[1] + guess[1]];
        (out[0].is_finite() && out[1].is_finite()).then_some(out)
    }
}

/// The offsets of the tracking window, `(dy, dx)`.
fn window() -> impl Iterator<Item = (f32, f32)> {
    (-RADIUS..=RADIUS).flat_map(|dy| (-RADIUS..=RADIUS).map(move |dx| (dy as f32, dx as f32)))
}

fn inside(img: &Gray, x: f32, y: f32, margin: f32) -> bool {
    x >= margin
        && y >= margin
        && x <= img.width as f32 - 1.0 - margin
        && y <= img.height as f32 - 1.0 - margin
}

/// The smaller eigenvalue of the symmetric matrix `[[a, b], [b, c]]`.
fn min_eigen(a: f32, b: f32, c: f32) -> f32 {
    (a + c) / 2.0 - (((a - c) / 2.0).powi(2) + b * b).sqrt()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A smooth, textured test picture: blobs of several sizes, so every window has structure.
    pub(crate) fn texture(width: usize, height: usize, shift: [f32; 2]) -> Gray {
        let mut g = Gray::new(width, height);
        for y in 0..height {
            for x in 0..width {
                let (u, v) = (x as f32 - shift[0], y as f32 - shift[1]);
                g.px[y * width + x] = 0.5
                    + 0.2 * (u * 0.31).sin() * (v * 0.23).cos()
                    + 0.15 * ((u + 2.0 * v) * 0.11).sin()
                    + 0.1 * ((3.0 * u - v) * 0.07).cos();
            }
        }
        g
    }

    #[test]
    fn a_shifted_picture_is_tracked_to_a_tenth_of_a_pixel() {
        let a = Pyramid::new(texture(120, 120, [0.0, 0.0]), 3);
        let b = Pyramid::new(texture(120, 120, [4.3, -2.7]), 3);
        let corners = a.corners(60, 5.0, 16);
        assert!(corners.len() >= 30, "{} corners", corners.len());
        for p in corners {
            let q = a.track(&b, p).expect("tracked");
            assert!(
                (q[0] - p[0] - 4.3).abs() < 0.1 && (q[1] - p[1] + 2.7).abs() < 0.1,
                "{p:?} → {q:?}"
            );
        }
    }

    #[test]
    fn a_flat_window_is_not_tracked_and_corners_keep_their_distance() {
        let flat = Pyramid::new(Gray::new(64, 64), 2);
        assert!(flat.corners(10, 3.0, 6).is_empty());
        assert_eq!(flat.track(&flat, [32.0, 32.0]), None);
        let a = Pyramid::new(texture(80, 80, [0.0, 0.0]), 2);
        let c = a.corners(100, 6.0, 8);
        for (i, p) in c.iter().enumerate() {
            for q in &c[i + 1..] {
                assert!((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) >= 36.0);
            }
            assert!(p[0] >= 8.0 && p[1] >= 8.0 && p[0] < 72.0 && p[1] < 72.0);
        }
    }
}
