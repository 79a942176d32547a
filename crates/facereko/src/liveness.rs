//! `eval-liveness`: passive liveness (the `facereko-liveness` planarity score) measured with the real
//! face engine on a folder of people. Bona fide sequences are a person's own photos in name order (real
//! pose changes), in windows of `--frames`; attack sequences are one of their photos moved and
//! re-rendered by the seeded print/screen generator. Reports ISO/IEC 30107-3 APCER and BPCER.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use facereko_liveness::metrics::{threshold_for_bpcer, ErrorRates};
use facereko_liveness::planarity::{sequence_score, Aggregate, Pt};
use facereko_liveness::{attack, challenge, DEFAULT_THRESHOLD};
use facereko_vision::{LocalEngine, LocalEngineKind};
use serde::Serialize;

use crate::config::Config;
use crate::models::{engine_config, load, parse_engines, Engines};

#[derive(Debug, Args)]
pub struct EvalLivenessArgs {
    /// A folder laid out `person/photo.png`; people with at least 3 photos are used.
    #[arg(long)]
    dir: PathBuf,
    /// Frames per sequence (bona fide windows and attacks alike).
    #[arg(long, default_value_t = 5)]
    frames: usize,
    /// Seed of the attack generator (the same seed gives the same attacks).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only the first N people (name order).
    #[arg(long)]
    people: Option<usize>,
    /// Score at or above which a sequence is taken for live (default: the calibrated one).
    #[arg(long)]
    threshold: Option<f64>,
    /// Which local engines: onnx, dlib, onnx,dlib or all (default: `vision.local_engine`).
    #[arg(long, value_parser = parse_engines)]
    engine: Option<Engines>,
    /// JSON instead of text: one object for one engine, an array of them for several.
    #[arg(long)]
    json: bool,
}

/// The figures of one engine.
#[derive(Debug, Serialize)]
pub struct LivenessReport {
    pub engine: String,
    pub people: usize,
    pub frames: usize,
    pub seed: u64,
    pub bona_fide: usize,
    pub attacks: usize,
    /// Sequences with a face in fewer than 2 frames or no usable fit: refused, and counted so.
    pub bona_fide_unscored: usize,
    pub attacks_unscored: usize,
    /// At the threshold in use (max over frame pairs).
    pub at_threshold: ErrorRates,
    /// At the highest threshold with BPCER ≤ 5 % on this set (max over frame pairs).
    pub calibrated_max: Option<ErrorRates>,
    /// The same with the median over frame pairs.
    pub calibrated_median: Option<ErrorRates>,
    pub bona_fide_scores: Vec<f64>,
    pub attack_scores: Vec<f64>,
    /// The head-turn challenge (yaw range over the sequence) at `challenge::TURN_THRESHOLD`. ORL's
    /// people were not asked to turn: their small, unprompted turns make its BPCER a pessimistic bound.
    pub challenge_at_threshold: ErrorRates,
    /// The challenge at the highest threshold with BPCER ≤ 5 % on this set.
    pub challenge_calibrated: Option<ErrorRates>,
    pub bona_fide_turns: Vec<f64>,
    pub attack_turns: Vec<f64>,
}

impl std::fmt::Display for LivenessReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |v: f64| v * 100.0;
        writeln!(
            f,
            "{}: {} people, {} bona fide and {} attack sequences of {} frames (seed {})",
            self.engine, self.people, self.bona_fide, self.attacks, self.frames, self.seed
        )?;
        writeln!(
            f,
            "  unscored (no face in 2 frames or no usable fit; refused): {} bona fide, {} attacks",
            self.bona_fide_unscored, self.attacks_unscored
        )?;
        let r = &self.at_threshold;
        write!(
            f,
            "  threshold {:.4}: APCER {:.1} %  BPCER {:.1} %",
            r.threshold,
            pct(r.apcer),
            pct(r.bpcer)
        )?;
        for (name, c) in [
            ("max", &self.calibrated_max),
            ("median", &self.calibrated_median),
        ] {
            if let Some(c) = c {
                write!(
                    f,
                    "\n  BPCER ≤ 5 % ({name} over pairs): threshold {:.4}, APCER {:.1} %, BPCER {:.1} %",
                    c.threshold,
                    pct(c.apcer),
                    pct(c.bpcer)
                )?;
            }
        }
        let c = &self.challenge_at_threshold;
        write!(
            f,
            "\n  challenge (head turn, yaw range ≥ {:.2}): APCER {:.1} %, BPCER {:.1} % (unprompted turns)",
            c.threshold,
            pct(c.apcer),
            pct(c.bpcer)
        )?;
        if let Some(c) = &self.challenge_calibrated {
            write!(
                f,
                "\n  challenge at BPCER ≤ 5 %: yaw range {:.3}, APCER {:.1} %, BPCER {:.1} %",
                c.threshold,
                pct(c.apcer),
                pct(c.bpcer)
            )?;
        }
        Ok(())
    }
}

pub async fn eval(data_dir: &Path, config_file: Option<&Path>, a: EvalLivenessArgs) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    if !(2..=10).contains(&a.frames) {
        bail!("--frames is 2 to 10");
    }
    let kinds = a
        .engine
        .clone()
        .map_or_else(|| vec![config.vision.local_engine], |e| e.0);
    let people = list_people(&a.dir, a.people)?;
    let mut reports = Vec::new();
    for kind in kinds {
        let vision = engine_config(&config.vision, kind);
        let engine = Arc::new(load(&vision, data_dir).await?);
        let (people, frames, seed, json) = (people.clone(), a.frames, a.seed, a.json);
        let threshold = a.threshold.unwrap_or(DEFAULT_THRESHOLD);
        let report = tokio::task::spawn_blocking(move || {
            run(&engine, kind, &people, frames, seed, threshold, json)
        })
        .await??;
        if !a.json {
            eprintln!();
            println!("{report}\n");
        }
        reports.push(report);
    }
    if a.json {
        let text = match reports.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            many => serde_json::to_string_pretty(many)?,
        };
        println!("{text}");
    }
    Ok(())
}

/// Each person's photos in name order, people with at least 3.
fn list_people(dir: &Path, limit: Option<usize>) -> Result<Vec<Vec<PathBuf>>> {
    let read = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("listing {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for sub in read(dir)?.into_iter().filter(|p| p.is_dir()) {
        let photos: Vec<PathBuf> = read(&sub)?
            .into_iter()
            .filter(|p| facereko_domain::ImageFormat::from_path(p).is_some())
            .collect();
        if photos.len() >= 3 {
            out.push(photos);
        }
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
    }
    if out.is_empty() {
        bail!(
            "no people with 3 or more photos in {}: expected sub-folders per person",
            dir.display()
        );
    }
    Ok(out)
}

/// The indices of the eyes among the engine's keypoints: BlazeFace's two eye centres, dlib's two
/// outer eye corners.
fn eyes(kind: LocalEngineKind) -> (usize, usize) {
    match kind {
        LocalEngineKind::Onnx => facereko_liveness::BLAZEFACE_EYES,
        LocalEngineKind::Dlib => (0, 2),
    }
}

/// The keypoints and the yaw of the best face in each frame that has one.
fn keypoints(engine: &LocalEngine, frames: &[image::RgbImage]) -> Result<(Vec<Vec<Pt>>, Vec<f64>)> {
    let (mut points, mut yaws) = (Vec::new(), Vec::new());
    let pt = |p: &facereko_vision::geometry::Point| [f64::from(p.x), f64::from(p.y)];
    for f in frames {
        if let Some(o) = engine.observe_image(f, 1)?.into_iter().next() {
            points.push(o.keypoints.iter().map(pt).collect());
            yaws.extend(challenge::yaw(
                [pt(&o.eyes[0]), pt(&o.eyes[1])],
                pt(&o.nose),
            ));
        }
    }
    Ok((points, yaws))
}

/// The challenge's score: the yaw range; unscorable is −∞ (refused).
fn turn_score(yaws: &[f64]) -> f64 {
    challenge::turn(yaws).unwrap_or(f64::NEG_INFINITY)
}

/// Scores (max, median) of a sequence; unscorable ones are −∞ (refused).
fn score(points: &[Vec<Pt>], eyes: (usize, usize)) -> (f64, f64) {
    let s = |agg| sequence_score(points, eyes, agg).unwrap_or(f64::NEG_INFINITY);
    (s(Aggregate::Max), s(Aggregate::Median))
}

fn run(
    engine: &LocalEngine,
    kind: LocalEngineKind,
    people: &[Vec<PathBuf>],
    frames: usize,
    seed: u64,
    threshold: f64,
    quiet: bool,
) -> Result<LivenessReport> {
    let max_side = 8192;
    let eyes = eyes(kind);
    let (mut bona, mut bona_med, mut att, mut att_med) = (vec![], vec![], vec![], vec![]);
    let (mut bona_turn, mut att_turn) = (vec![], vec![]);
    for (pi, photos) in people.iter().enumerate() {
        if !quiet {
            eprint!("\r{kind}: person {}/{}", pi + 1, people.len());
        }
        let decoded = photos
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                facereko_vision::decode::decode_rgb(&bytes, max_side)
                    .with_context(|| format!("decoding {}", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        // Non-overlapping windows of `frames` photos; fewer photos than that make one window.
        let windows: Vec<&[image::RgbImage]> = if decoded.len() < frames {
            vec![&decoded[..]]
        } else {
            decoded.chunks_exact(frames).collect()
        };
        for (wi, window) in windows.iter().enumerate() {
            let (points, yaws) = keypoints(engine, window)?;
            let (m, md) = score(&points, eyes);
            bona.push(m);
            bona_med.push(md);
            bona_turn.push(turn_score(&yaws));
            // One attack per bona fide window, from the window's first photo, with its own seed.
            let s = seed
                .wrapping_mul(1_000_003)
                .wrapping_add((pi as u64) << 16)
                .wrapping_add(wi as u64);
            let seq = attack::generate(&window[0], s, frames);
            let (points, yaws) = keypoints(engine, &seq.frames)?;
            let (m, md) = score(&points, eyes);
            att.push(m);
            att_med.push(md);
            att_turn.push(turn_score(&yaws));
        }
    }
    let calibrated =
        |b: &[f64], a: &[f64]| threshold_for_bpcer(b, 0.05).map(|t| ErrorRates::at(b, a, t));
    let unscored = |v: &[f64]| v.iter().filter(|s| s.is_infinite()).count();
    Ok(LivenessReport {
        engine: kind.to_string(),
        people: people.len(),
        frames,
        seed,
        bona_fide: bona.len(),
        attacks: att.len(),
        bona_fide_unscored: unscored(&bona),
        attacks_unscored: unscored(&att),
        at_threshold: ErrorRates::at(&bona, &att, threshold),
        calibrated_max: calibrated(&bona, &att),
        calibrated_median: calibrated(&bona_med, &att_med),
        challenge_at_threshold: ErrorRates::at(&bona_turn, &att_turn, challenge::TURN_THRESHOLD),
        challenge_calibrated: calibrated(&bona_turn, &att_turn),
        bona_fide_turns: bona_turn,
        attack_turns: att_turn,
        bona_fide_scores: bona,
        attack_scores: att,
    })
}
