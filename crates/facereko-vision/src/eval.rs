//! `facereko eval`: how well the engine separates people, on a folder of `identity/photo` files.
//!
//! Every photo is described once through the same probe path the door uses. Genuine pairs are all
//! pairs of photos of one identity; impostor pairs all pairs across identities. A genuine pair with a
//! photo that has no usable face counts as a false reject (the door would not open); an impostor pair
//! needs two faces to be compared at all, so only those are counted. The threshold "at FAR x" is the
//! lowest similarity, rounded up to 0.01 %, that lets at most a share x of the impostor pairs through;
//! each engine's default threshold is its `threshold_at_far_1e-3` on `lfw-dev`.
//!
//! Multi-frame (`--probe-frames K`): for k = 1 … K, k photos of one identity are fused into one probe
//! (the door's rule, [`crate::fusion`]) and compared with one enrolment photo: of the same identity
//! (genuine, a photo not among the k) or of another (impostor). Only identities with at least
//! max(K, 2) photos take part, the same ones for every k, so the rows compare. An identity with many
//! photos contributes at most [`MAX_SETS`] evenly spread k-subsets per k.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::fusion::fuse_embeddings;
use crate::gallery::{similarity_percent, Embedding};
use crate::{Error, LocalEngine, Result};

/// At most this many k-subsets of one identity's photos are used per k.
pub const MAX_SETS: u64 = 50;

/// Something that turns an encoded photo into the embedding of its best usable face, with that face's
/// quality (0–1, the weight it gets when frames are fused).
pub trait Describe: Sync {
    /// `Ok(None)` for a photo with no usable face; `Err` for one that cannot be read.
    fn describe(&self, bytes: &[u8]) -> Result<Option<(Embedding, f32)>>;

    /// How many photos it can usefully describe at once.
    fn parallelism(&self) -> usize {
        1
    }

    /// The model's id, for the report.
    fn model_id(&self) -> String {
        String::new()
    }
}

impl Describe for LocalEngine {
    fn describe(&self, bytes: &[u8]) -> Result<Option<(Embedding, f32)>> {
        Ok(self
            .observe_blocking(bytes, 1)?
            .into_iter()
            .next()
            .map(|o| (o.embedding, o.quality.overall)))
    }

    fn parallelism(&self) -> usize {
        self.config().workers
    }

    fn model_id(&self) -> String {
        LocalEngine::model_id(self).to_string()
    }
}

/// Accuracy when `probe_frames` photos are fused into one probe ([`run`] with `probe_frames` > 0).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FramesReport {
    pub probe_frames: usize,
    /// Identities taking part (those with enough photos), the same for every row.
    pub identities: usize,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    /// False-accept and false-reject rates at the report's threshold, 0–1.
    pub far: f64,
    pub frr: f64,
    #[serde(rename = "tar_at_far_1e-3")]
    pub tar_at_far_1e_3: f64,
    #[serde(rename = "threshold_at_far_1e-3")]
    pub threshold_at_far_1e_3: f32,
    #[serde(rename = "tar_at_far_1e-4")]
    pub tar_at_far_1e_4: f64,
    #[serde(rename = "threshold_at_far_1e-4")]
    pub threshold_at_far_1e_4: f32,
    pub eer: f64,
}

/// The result of an evaluation; its JSON form is what `facereko eval --json` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// The id of the model evaluated (`dlib-resnet-v1+mirror`, `blazeface-mobilefacenet-v1+mirror`).
    pub model: String,
    /// Photos found (readable or not).
    pub photos: usize,
    pub identities: usize,
    /// Share of photos with no usable face (unreadable ones included), 0–1.
    pub no_face_rate: f64,
    /// Photos that could not be decoded at all.
    pub unreadable: usize,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    /// The threshold evaluated (similarity, 0–100).
    pub threshold: f32,
    /// False-accept rate at `threshold`, 0–1.
    pub far: f64,
    /// False-reject rate at `threshold`, 0–1.
    pub frr: f64,
    #[serde(rename = "tar_at_far_1e-3")]
    pub tar_at_far_1e_3: f64,
    #[serde(rename = "threshold_at_far_1e-3")]
    pub threshold_at_far_1e_3: f32,
    #[serde(rename = "tar_at_far_1e-4")]
    pub tar_at_far_1e_4: f64,
    #[serde(rename = "threshold_at_far_1e-4")]
    pub threshold_at_far_1e_4: f32,
    /// Equal error rate, 0–1.
    pub eer: f64,
    /// Mean time to decode, detect and describe one photo, in milliseconds.
    pub ms_per_photo: f64,
    /// With `--probe-frames K`: one row per k = 1 … K.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub multi_frame: Vec<FramesReport>,
}

/// Progress of [`run`]: photos described so far, of the total.
pub type ProgressFn<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Evaluates `engine` on `dir` (laid out `identity/photo.{jpg,jpeg,png}`) at `threshold`; with
/// `probe_frames` > 0, also fused probes of 1 … `probe_frames` photos.
pub fn run(
    dir: &Path,
    engine: &dyn Describe,
    threshold: f32,
    probe_frames: usize,
    progress: ProgressFn<'_>,
) -> Result<EvalReport> {
    let photos = list_photos(dir)?;
    let identities = photos.last().map_or(0, |p| p.0 + 1);
    let total = photos.len();
    let results: Mutex<Vec<Option<Described>>> = Mutex::new(vec![None; total]);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let threads = engine.parallelism().clamp(1, 16);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, path)) = photos.get(i) else {
                    break;
                };
                let started = Instant::now();
                let outcome = match std::fs::read(path) {
                    Ok(bytes) => match engine.describe(&bytes) {
                        Ok(Some((e, q))) => Outcome::Face(e, q),
                        Ok(None) => Outcome::NoFace,
                        Err(_) => Outcome::Unreadable,
                    },
                    Err(_) => Outcome::Unreadable,
                };
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                results.lock().unwrap_or_else(|p| p.into_inner())[i] =
                    Some(Described { outcome, ms });
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            });
        }
    });
    let results: Vec<Described> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|d| d.expect("every photo was described"))
        .collect();
    let labelled: Vec<(usize, &Outcome)> = photos
        .iter()
        .zip(&results)
        .map(|((id, _), d)| (*id, &d.outcome))
        .collect();
    let ms_per_photo = results.iter().map(|d| d.ms).sum::<f64>() / total.max(1) as f64;
    let mut report = score(&labelled, identities, threshold, ms_per_photo);
    report.model = engine.model_id();
    report.multi_frame = (1..=probe_frames)
        .map(|k| frames(&labelled, probe_frames.max(2), k, threshold))
        .collect();
    Ok(report)
}

#[derive(Clone, Debug)]
enum Outcome {
    /// The embedding and the face's quality.
    Face(Embedding, f32),
    NoFace,
    Unreadable,
}

impl Outcome {
    fn face(&self) -> Option<&Embedding> {
        match self {
            Outcome::Face(e, _) => Some(e),
            _ => None,
        }
    }
}

/// Genuine and impostor scores of `k`-photo fused probes against single enrolment photos, among the
/// identities with at least `min_photos` photos.
fn frames(
    photos: &[(usize, &Outcome)],
    min_photos: usize,
    k: usize,
    threshold: f32,
) -> FramesReport {
    let mut by_id: std::collections::BTreeMap<usize, Vec<&Outcome>> = Default::default();
    for (id, o) in photos {
        by_id.entry(*id).or_default().push(o);
    }
    by_id.retain(|_, v| v.len() >= min_photos);
    let enrolments: Vec<(usize, &Embedding)> = by_id
        .iter()
        .flat_map(|(id, v)| v.iter().filter_map(move |o| o.face().map(|e| (*id, e))))
        .collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (id, shots) in &by_id {
        for set in subsets(shots.len(), k, MAX_SETS) {
            let weighted: Vec<(&Embedding, f32)> = set
                .iter()
                .filter_map(|&i| match shots[i] {
                    Outcome::Face(e, q) => Some((e, *q)),
                    _ => None,
                })
                .collect();
            let probe = fuse_embeddings(&weighted);
            // Genuine: every photo of the same identity outside the set.
            for (i, o) in shots.iter().enumerate().filter(|(i, _)| !set.contains(i)) {
                genuine.push(match (&probe, o.face()) {
                    (Some(p), Some(e)) => similarity_percent(p.cosine(e)),
                    _ => f32::NEG_INFINITY,
                });
                let _ = i;
            }
            if let Some(p) = &probe {
                impostor.extend(
                    enrolments
                        .iter()
                        .filter(|(other, _)| other != id)
                        .map(|(_, e)| similarity_percent(p.cosine(e))),
                );
            }
        }
    }
    genuine.sort_by(|a, b| a.total_cmp(b));
    impostor.sort_by(|a, b| b.total_cmp(a));
    let (t3, tar3) = at_far(&genuine, &impostor, 1e-3);
    let (t4, tar4) = at_far(&genuine, &impostor, 1e-4);
    FramesReport {
        probe_frames: k,
        identities: by_id.len(),
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        far: far(&impostor, threshold),
        frr: 1.0 - tar(&genuine, threshold),
        tar_at_far_1e_3: tar3,
        threshold_at_far_1e_3: t3,
        tar_at_far_1e_4: tar4,
        threshold_at_far_1e_4: t4,
        eer: eer(&genuine, &impostor),
    }
}

/// The k-subsets of 0..n in lexicographic order, at most `cap` of them, evenly spread.
fn subsets(n: usize, k: usize, cap: u64) -> Vec<Vec<usize>> {
    if k == 0 || k > n {
        return Vec::new();
    }
    let total = (0..k as u64).fold(1u64, |acc, i| acc * (n as u64 - i) / (i + 1));
    let stride = total.div_ceil(cap.max(1));
    let mut out = Vec::new();
    let mut c: Vec<usize> = (0..k).collect();
    let mut index = 0u64;
    loop {
        if index.is_multiple_of(stride) {
            out.push(c.clone());
        }
        index += 1;
        // Next combination: bump the rightmost position that can move.
        let Some(i) = (0..k).rev().find(|&i| c[i] < n - k + i) else {
            break;
        };
        c[i] += 1;
        for j in i + 1..k {
            c[j] = c[j - 1] + 1;
        }
    }
    out
}

#[derive(Clone, Debug)]
struct Described {
    outcome: Outcome,
    ms: f64,
}

/// `(identity index, path)` of every photo, grouped by identity in name order.
fn list_photos(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let read = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(Error::io(format!("listing {}", d.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    let mut identity = 0;
    for sub in read(dir)?.into_iter().filter(|p| p.is_dir()) {
        let files: Vec<PathBuf> = read(&sub)?
            .into_iter()
            .filter(|p| facereko_domain::ImageFormat::from_path(p).is_some())
            .collect();
        if files.is_empty() {
            continue;
        }
        out.extend(files.into_iter().map(|f| (identity, f)));
        identity += 1;
    }
    if out.is_empty() {
        return Err(Error::Eval(format!(
            "no photos in {}: expected sub-folders per identity holding .jpg or .png files",
            dir.display()
        )));
    }
    if identity < 2 {
        return Err(Error::Eval(format!(
            "{} holds one identity; impostor pairs need at least two",
            dir.display()
        )));
    }
    Ok(out)
}

/// Pair scores and rates from described photos.
fn score(
    photos: &[(usize, &Outcome)],
    identities: usize,
    threshold: f32,
    ms_per_photo: f64,
) -> EvalReport {
    let mut genuine: Vec<f32> = Vec::new();
    let mut impostor: Vec<f32> = Vec::new();
    for (i, (id_a, a)) in photos.iter().enumerate() {
        for (id_b, b) in &photos[i + 1..] {
            let sim = match (a.face(), b.face()) {
                (Some(x), Some(y)) => Some(similarity_percent(x.cosine(y))),
                _ => None,
            };
            if id_a == id_b {
                // A genuine pair without two faces is a reject: below any threshold.
                genuine.push(sim.unwrap_or(f32::NEG_INFINITY));
            } else if let Some(s) = sim {
                impostor.push(s);
            }
        }
    }
    let unreadable = photos
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Unreadable))
        .count();
    let no_face = photos.iter().filter(|(_, o)| o.face().is_none()).count();
    genuine.sort_by(|a, b| a.total_cmp(b));
    impostor.sort_by(|a, b| b.total_cmp(a));
    let (t3, tar3) = at_far(&genuine, &impostor, 1e-3);
    let (t4, tar4) = at_far(&genuine, &impostor, 1e-4);
    EvalReport {
        model: String::new(),
        photos: photos.len(),
        identities,
        no_face_rate: no_face as f64 / photos.len().max(1) as f64,
        unreadable,
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        threshold,
        far: far(&impostor, threshold),
        frr: 1.0 - tar(&genuine, threshold),
        tar_at_far_1e_3: tar3,
        threshold_at_far_1e_3: t3,
        tar_at_far_1e_4: tar4,
        threshold_at_far_1e_4: t4,
        eer: eer(&genuine, &impostor),
        ms_per_photo,
        multi_frame: Vec::new(),
    }
}

/// Share of genuine scores (sorted ascending) at or above `t`.
fn tar(genuine: &[f32], t: f32) -> f64 {
    let below = genuine.partition_point(|&s| s < t);
    (genuine.len() - below) as f64 / genuine.len().max(1) as f64
}

/// Share of impostor scores (sorted descending) at or above `t`.
fn far(impostor: &[f32], t: f32) -> f64 {
    impostor.partition_point(|&s| s >= t) as f64 / impostor.len().max(1) as f64
}

/// The lowest threshold (rounded up to 0.01) letting at most `rate` of impostors through, and the TAR
/// there.
fn at_far(genuine: &[f32], impostor: &[f32], rate: f64) -> (f32, f64) {
    let allowed = (rate * impostor.len() as f64).floor() as usize;
    let t = match impostor.get(allowed) {
        // Strictly above the first impostor that must be refused.
        Some(&s) => {
            let mut t = ((s as f64 * 100.0).floor() / 100.0 + 0.01) as f32;
            while t <= s {
                t += 0.01;
            }
            t.min(100.0)
        }
        None => 0.0,
    };
    (t, tar(genuine, t))
}

/// Equal error rate: where the false-accept and false-reject rates cross.
fn eer(genuine: &[f32], impostor: &[f32]) -> f64 {
    let (mut lo, mut hi) = (0.0f32, 100.0f32);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if far(impostor, mid) > 1.0 - tar(genuine, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (far(impostor, hi) + 1.0 - tar(genuine, hi)) / 2.0
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |x: f64| format!("{:.2} %", x * 100.0);
        if !self.model.is_empty() {
            writeln!(f, "model             {}", self.model)?;
        }
        writeln!(
            f,
            "photos            {} of {} identities, {} with no usable face ({}), {} unreadable",
            self.photos,
            self.identities,
            (self.no_face_rate * self.photos as f64).round(),
            pct(self.no_face_rate),
            self.unreadable
        )?;
        writeln!(
            f,
            "pairs             {} genuine (same person), {} impostor (different people)",
            self.genuine_pairs, self.impostor_pairs
        )?;
        writeln!(
            f,
            "at threshold {:.2} %: false accepts {}, false rejects {}",
            self.threshold,
            pct(self.far),
            pct(self.frr)
        )?;
        writeln!(
            f,
            "for FAR ≤ 0.1 %:  threshold {:.2} %, true accepts {}",
            self.threshold_at_far_1e_3,
            pct(self.tar_at_far_1e_3)
        )?;
        writeln!(
            f,
            "for FAR ≤ 0.01 %: threshold {:.2} %, true accepts {}",
            self.threshold_at_far_1e_4,
            pct(self.tar_at_far_1e_4)
        )?;
        writeln!(f, "equal error rate  {}", pct(self.eer))?;
        writeln!(f, "time per photo    {:.1} ms", self.ms_per_photo)?;
        if let Some(first) = self.multi_frame.first() {
            writeln!(
                f,
                "fused probes      ({} identities; k photos fused against one enrolment photo)",
                first.identities
            )?;
            writeln!(
                f,
                "  k  genuine  impostor    TAR@FAR 0.1 %  TAR@FAR 0.01 %  FRR/FAR at {:.2} %",
                self.threshold
            )?;
            for r in &self.multi_frame {
                writeln!(
                    f,
                    "  {}  {:>7}  {:>9}    {:>8}       {:>8}        {} / {}",
                    r.probe_frames,
                    r.genuine_pairs,
                    r.impostor_pairs,
                    pct(r.tar_at_far_1e_3),
                    pct(r.tar_at_far_1e_4),
                    pct(r.frr),
                    pct(r.far)
                )?;
            }
        }
        write!(
            f,
            "(the threshold for FAR ≤ 0.1 % is the lowest similarity at which at most one impostor pair \
             in a thousand is accepted; set it as vision.threshold)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::EMBEDDING_DIM;

    fn face(axis: usize, tilt: f32) -> Outcome {
        Outcome::Face(unit(axis, tilt), 1.0)
    }

    fn unit(axis: usize, tilt: f32) -> Embedding {
        let mut v = vec![0.0; EMBEDDING_DIM];
        v[axis] = 1.0;
        v[EMBEDDING_DIM - 1] = tilt;
        Embedding::new(v).unwrap()
    }

    #[test]
    fn rates_from_known_scores() {
        // Identity 0: two photos on axis 0 (cosine ≈ 1). Identity 1: axis 1 and a no-face photo.
        // Identity 2: axis 2 twice, but tilted apart.
        let o = [
            face(0, 0.0),
            face(0, 0.1),
            face(1, 0.0),
            Outcome::NoFace,
            face(2, 1.0),
            face(2, -1.0),
        ];
        let photos: Vec<(usize, &Outcome)> = [0, 0, 1, 1, 2, 2].into_iter().zip(o.iter()).collect();
        let r = score(&photos, 3, 80.0, 12.0);
        assert_eq!(r.photos, 6);
        assert_eq!(r.genuine_pairs, 3);
        // Five faces in three identities: 10 pairs, 2 genuine with faces → 8 impostor pairs.
        assert_eq!(r.impostor_pairs, 8);
        assert!((r.no_face_rate - 1.0 / 6.0).abs() < 1e-9);
        // Genuine: ≈99.5 (accepted), no-face pair (rejected), axis-2 pair at cosine 0 (rejected).
        assert!((r.frr - 2.0 / 3.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.far, 0.0);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "photos",
            "no_face_rate",
            "genuine_pairs",
            "impostor_pairs",
            "threshold",
            "far",
            "frr",
            "tar_at_far_1e-3",
            "threshold_at_far_1e-3",
            "tar_at_far_1e-4",
            "threshold_at_far_1e-4",
            "ms_per_photo",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert!(r.to_string().contains("FAR ≤ 0.1 %"));
    }

    #[test]
    fn threshold_at_far_refuses_the_first_impostor_beyond_the_allowance() {
        // 2000 impostors from 0.00 to 99.95; FAR 1e-3 allows 2 of them.
        let impostor: Vec<f32> = (0..2000).rev().map(|i| i as f32 * 0.05).collect();
        let genuine = vec![99.0, 99.97, 100.0];
        let (t, tar_) = at_far(&genuine, &impostor, 1e-3);
        assert!(far(&impostor, t) <= 1e-3);
        assert!(t > impostor[2] && t <= impostor[2] + 0.011, "t = {t}");
        assert!((tar_ - 2.0 / 3.0).abs() < 1e-9);
        assert!(far(&impostor, t - 0.02) > 1e-3);
    }

    #[test]
    fn lists_identities_and_skips_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        for (id, files) in [
            ("ada", vec!["1.jpg", "2.PNG", "notes.txt"]),
            ("bob", vec!["a.jpeg"]),
            ("empty", vec![]),
        ] {
            std::fs::create_dir(tmp.path().join(id)).unwrap();
            for f in files {
                std::fs::write(tmp.path().join(id).join(f), b"x").unwrap();
            }
        }
        let l = list_photos(tmp.path()).unwrap();
        let ids: Vec<usize> = l.iter().map(|p| p.0).collect();
        assert_eq!(ids, vec![0, 0, 1]);
        struct Nothing;
        impl Describe for Nothing {
            fn describe(&self, _: &[u8]) -> Result<Option<(Embedding, f32)>> {
                Err(Error::Image("not a photo".into()))
            }
        }
        let r = run(tmp.path(), &Nothing, 80.0, 0, &|_, _| {}).unwrap();
        assert_eq!((r.photos, r.unreadable, r.identities), (3, 3, 2));
        assert_eq!(r.frr, 1.0);
    }

    #[test]
    fn subsets_enumerate_and_cap_evenly() {
        assert_eq!(
            subsets(4, 2, 50),
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(subsets(3, 3, 50), vec![vec![0, 1, 2]]);
        assert!(subsets(2, 3, 50).is_empty());
        // C(10, 3) = 120, capped at 50: every third one.
        let capped = subsets(10, 3, 50);
        assert_eq!(capped.len(), 40);
        assert_eq!(capped[1], vec![0, 1, 5]);
    }

    #[test]
    fn fused_probes_separate_people_better_than_single_photos() {
        // Two identities, 3 photos each. Each photo is its identity's axis plus noise along a shared
        // axis, so one photo can look like the other person, but the noise cancels when fused.
        let noisy = |axis: usize, noise: f32| {
            let mut v = vec![0.0; EMBEDDING_DIM];
            v[axis] = 1.0;
            v[10] = noise;
            Outcome::Face(Embedding::new(v).unwrap(), 1.0)
        };
        let o = [
            noisy(0, 1.2),
            noisy(0, -1.2),
            noisy(0, 0.0),
            noisy(1, 1.2),
            noisy(1, -1.2),
            Outcome::NoFace,
        ];
        let photos: Vec<(usize, &Outcome)> = [0, 0, 0, 1, 1, 1].into_iter().zip(o.iter()).collect();
        let one = frames(&photos, 3, 1, 50.0);
        let two = frames(&photos, 3, 2, 50.0);
        assert_eq!((one.identities, two.identities), (2, 2));
        // k = 1: each of 6 photos against the other 2 of its identity.
        assert_eq!(one.genuine_pairs, 12);
        // k = 2: 3 pairs per identity, each against the 1 photo left.
        assert_eq!(two.genuine_pairs, 6);
        assert!(two.eer <= one.eer, "{one:?} {two:?}");
        // A genuine pair whose enrolment photo has no face is a reject, as for single photos.
        assert!(two.frr > 0.0);
    }
}
