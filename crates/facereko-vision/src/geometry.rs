//! Points, boxes and the similarity transform that aligns a face for the ONNX embedder.
//!
//! MobileFaceNet was trained on faces warped so that the eyes, nose tip and mouth sit on a fixed
//! template in a 112×112 crop; a face not aligned the same way embeds worse. The transform is the
//! least-squares similarity (rotation, uniform scale, shift; no reflection) from the detector's
//! keypoints onto that template, which in 2-D has a closed form (Umeyama's method without the SVD).

use image::RgbImage;

/// A point in photo pixels (x to the right, y down).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    pub fn mid(a: Point, b: Point) -> Point {
        Point::new((a.x + b.x) / 2.0, (a.y + b.y) / 2.0)
    }

    pub fn dist(self, o: Point) -> f32 {
        ((self.x - o.x).powi(2) + (self.y - o.y).powi(2)).sqrt()
    }
}

/// A box in photo pixels: left/top inclusive edges, right/bottom exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Rect {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

impl Rect {
    pub fn width(&self) -> f32 {
        (self.right - self.left).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.bottom - self.top).max(0.0)
    }

    pub fn centre(&self) -> Point {
        Point::new(
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        )
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Intersection over union, 0–1.
    pub fn iou(&self, o: &Rect) -> f32 {
        let w = (self.right.min(o.right) - self.left.max(o.left)).max(0.0);
        let h = (self.bottom.min(o.bottom) - self.top.max(o.top)).max(0.0);
        let inter = w * h;
        let union = self.area() + o.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// Where the right eye, left eye, nose tip and mouth centre of an aligned face sit in the 112×112 crop
/// (the ArcFace template; the mouth is the mid-point of its two mouth corners).
pub const TEMPLATE_112: [Point; 4] = [
    Point::new(38.2946, 51.6963),
    Point::new(73.5318, 51.5014),
    Point::new(56.0252, 71.7366),
    Point::new(56.1396, 92.2848),
];

/// `dst = [a −b; b a]·src + (tx, ty)`: a similarity transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// The least-squares similarity taking `src[i]` to `dst[i]`; `None` when the source points coincide.
    pub fn estimate(src: &[Point], dst: &[Point]) -> Option<Self> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let mean = |p: &[Point]| {
            let (sx, sy) = p[..n].iter().fold((0.0f64, 0.0f64), |(x, y), q| {
                (x + q.x as f64, y + q.y as f64)
            });
            (sx / n as f64, sy / n as f64)
        };
        let (msx, msy) = mean(src);
        let (mdx, mdy) = mean(dst);
        let (mut num_a, mut num_b, mut den) = (0.0f64, 0.0f64, 0.0f64);
        for (s, d) in src[..n].iter().zip(&dst[..n]) {
            let (x, y) = (s.x as f64 - msx, s.y as f64 - msy);
            let (u, v) = (d.x as f64 - mdx, d.y as f64 - mdy);
            num_a += x * u + y * v;
            num_b += x * v - y * u;
            den += x * x + y * y;
        }
        if den < 1e-9 {
            return None;
        }
        let (a, b) = (num_a / den, num_b / den);
        Some(Self {
            a: a as f32,
            b: b as f32,
            tx: (mdx - (a * msx - b * msy)) as f32,
            ty: (mdy - (b * msx + a * msy)) as f32,
        })
    }

    pub fn apply(&self, p: Point) -> Point {
        Point::new(
            self.a * p.x - self.b * p.y + self.tx,
            self.b * p.x + self.a * p.y + self.ty,
        )
    }

    /// The transform going the other way (crop → photo).
    pub fn inverse(&self) -> Self {
        let s = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / s, -self.b / s);
        Self {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        }
    }
}

/// Warps `img` by `to_crop` into a `side`×`side` crop, sampled bilinearly (outside the photo is black),
/// written as planar RGB floats `(v − 127.5) / 128` into `out` (3·side² values: all R, then G, then B).
/// With `mirror`, the crop is also written flipped left–right into `mirror_out`.
pub fn warp_normalised(
    img: &RgbImage,
    to_crop: &Similarity,
    side: usize,
    out: &mut [f32],
    mut mirror_out: Option<&mut [f32]>,
) {
    let inv = to_crop.inverse();
    let (w, h) = (img.width() as i64, img.height() as i64);
    let px = img.as_raw();
    let plane = side * side;
    for v in 0..side {
        for u in 0..side {
            let s = inv.apply(Point::new(u as f32, v as f32));
            let (x0, y0) = (s.x.floor(), s.y.floor());
            let (fx, fy) = (s.x - x0, s.y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let mut rgb = [0.0f32; 3];
            for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                    let (x, y) = (x0 + dx, y0 + dy);
                    if x < 0 || y < 0 || x >= w || y >= h {
                        continue;
                    }
                    let wgt = wx * wy;
                    let i = ((y * w + x) * 3) as usize;
                    for c in 0..3 {
                        rgb[c] += wgt * px[i + c] as f32;
                    }
                }
            }
            for c in 0..3 {
                let val = (rgb[c] - 127.5) / 128.0;
                out[c * plane + v * side + u] = val;
                if let Some(m) = mirror_out.as_deref_mut() {
                    m[c * plane + v * side + (side - 1 - u)] = val;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Point, b: Point) -> bool {
        a.dist(b) < 1e-3
    }

    #[test]
    fn a_known_similarity_is_recovered_exactly() {
        // 30° rotation, scale 0.5, shift (10, −4).
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let t = Similarity {
            a: 0.5 * c,
            b: 0.5 * s,
            tx: 10.0,
            ty: -4.0,
        };
        let src = [
            Point::new(100.0, 120.0),
            Point::new(160.0, 118.0),
            Point::new(131.0, 150.0),
            Point::new(130.0, 180.0),
        ];
        let dst: Vec<Point> = src.iter().map(|&p| t.apply(p)).collect();
        let e = Similarity::estimate(&src, &dst).unwrap();
        assert!(
            (e.a - t.a).abs() < 1e-4 && (e.b - t.b).abs() < 1e-4,
            "{e:?}"
        );
        assert!(
            (e.tx - t.tx).abs() < 1e-2 && (e.ty - t.ty).abs() < 1e-2,
            "{e:?}"
        );
        for p in src {
            assert!(close(e.inverse().apply(e.apply(p)), p));
        }
    }

    #[test]
    fn keypoints_of_a_face_land_near_the_template() {
        // A face twice the template's size, shifted: its keypoints map onto the template.
        let src: Vec<Point> = TEMPLATE_112
            .iter()
            .map(|p| Point::new(p.x * 2.0 + 40.0, p.y * 2.0 + 25.0))
            .collect();
        let t = Similarity::estimate(&src, &TEMPLATE_112).unwrap();
        for (s, d) in src.iter().zip(TEMPLATE_112) {
            assert!(close(t.apply(*s), d), "{:?} → {:?}", s, t.apply(*s));
        }
        assert!(Similarity::estimate(&[Point::default(); 4], &TEMPLATE_112).is_none());
    }

    #[test]
    fn warping_with_the_identity_copies_pixels_and_mirrors_them() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 7]));
        let id = Similarity {
            a: 1.0,
            b: 0.0,
            tx: 0.0,
            ty: 0.0,
        };
        let (mut out, mut mir) = (vec![0.0; 3 * 16], vec![0.0; 3 * 16]);
        warp_normalised(&img, &id, 4, &mut out, Some(&mut mir));
        let norm = |v: u8| (v as f32 - 127.5) / 128.0;
        // Red plane, row 2, column 3 = pixel (3, 2).
        assert!((out[2 * 4 + 3] - norm(90)).abs() < 1e-6);
        // Green plane.
        assert!((out[16 + 2 * 4 + 3] - norm(60)).abs() < 1e-6);
        // The mirror holds column 3 at column 0.
        assert!((mir[2 * 4] - norm(90)).abs() < 1e-6);
        // Sampling outside the photo gives black.
        let shifted = Similarity { tx: 6.0, ..id };
        warp_normalised(&img, &shifted, 4, &mut out, None);
        assert!((out[0] - norm(0)).abs() < 1e-6, "outside is black");
    }

    #[test]
    fn iou_of_boxes() {
        let a = Rect {
            left: 0.0,
            top: 0.0,
            right: 10.0,
            bottom: 10.0,
        };
        let b = Rect {
            left: 5.0,
            top: 0.0,
            right: 15.0,
            bottom: 10.0,
        };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&Rect::default()), 0.0);
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
    }
}
