//! `eval-liveness`: passive liveness (the `facereko-liveness` dense-motion score) and the head-turn
//! challenge measured with the real face engine on a folder of people. Bona fide sequences are a
//! person's own photos in name order (real pose changes), in windows of `--frames`; attack sequences
//! are one of their photos moved and re-rendered by the seeded print/screen generator,
//! `--attacks` per window. Reports ISO/IEC 30107-3 APCER and BPCER and the time the check adds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use facereko_liveness::metrics::{threshold_for_bpcer, ErrorRates};
use facereko_liveness::motion::{self, FaceCrop};
use facereko_liveness::{attack, challenge};
use facereko_vision::LocalEngine;
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
    /// Attack sequences per bona fide window, each with its own seed (more attacks, a tighter APCER).
    #[arg(long, default_value_t = 1)]
    attacks: usize,
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
    /// Sequences with a face in fewer than 2 frames or too few tracked pairs: refused, and counted so.
    pub bona_fide_unscored: usize,
    pub attacks_unscored: usize,
    /// Passive (dense motion) at the threshold in use.
    pub at_threshold: ErrorRates,
    /// Passive at the highest threshold with BPCER ≤ 5 % on this set.
    pub calibrated: Option<ErrorRates>,
    pub bona_fide_scores: Vec<f64>,
    pub attack_scores: Vec<f64>,
    /// Time to cut the faces out and score one sequence, milliseconds: median and largest. The
    /// engine's own detection of each frame is not in it (the door has already done that).
    pub ms_per_sequence_median: f64,
    pub ms_per_sequence_max: f64,
    /// The head-turn challenge (yaw range over the sequence) at `challenge::TURN_THRESHOLD`, the dense
    /// motion check passing on the turn's ends and middle too (as the door checks a turn). ORL's people were not asked to turn: their small, unprompted turns
    /// make its BPCER a pessimistic bound.
    pub challenge_at_threshold: ErrorRates,
    pub bona_fide_turns: Vec<f64>,
    pub attack_turns: Vec<f64>,
    /// Each person's photos taken together as one turn (all their poses): how many people reached
    /// the challenge's yaw range, and how many of those the dense check on the turn's ends and middle
    /// then refused — the share of real turns the challenge's second step costs.
    pub people_turned: usize,
    pub people_turned_refused: usize,
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
            "  unscored (no face in 2 frames or too few tracked pairs; refused): {} bona fide, {} attacks",
            self.bona_fide_unscored, self.attacks_unscored
        )?;
        let r = &self.at_threshold;
        write!(
            f,
            "  passive, threshold {:.4}: APCER {:.1} %  BPCER {:.1} %",
            r.threshold,
            pct(r.apcer),
            pct(r.bpcer)
        )?;
        if let Some(c) = &self.calibrated {
            write!(
                f,
                "\n  passive at BPCER ≤ 5 %: threshold {:.4}, APCER {:.1} %, BPCER {:.1} %",
                c.threshold,
                pct(c.apcer),
                pct(c.bpcer)
            )?;
        }
        write!(
            f,
            "\n  passive check time per sequence: median {:.1} ms, largest {:.1} ms",
            self.ms_per_sequence_median, self.ms_per_sequence_max
        )?;
        let c = &self.challenge_at_threshold;
        write!(
            f,
            "\n  challenge (head turn, yaw range ≥ {:.2}, and passive): APCER {:.1} %, BPCER {:.1} % (unprompted turns)",
            c.threshold,
            pct(c.apcer),
            pct(c.bpcer)
        )?;
        write!(
            f,
            "\n  each person's photos as one turn: {} of {} people reach the yaw range; the passive check on their turn refuses {}",
            self.people_turned, self.people, self.people_turned_refused
        )
    }
}

pub async fn eval(data_dir: &Path, config_file: Option<&Path>, a: EvalLivenessArgs) -> Result<()> {
    let (config, _) = Config::load(config_file, data_dir)?;
    if !(2..=10).contains(&a.frames) {
        bail!("--frames is 2 to 10");
    }
    if !(1..=20).contains(&a.attacks) {
        bail!("--attacks is 1 to 20");
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
        let (people, json) = (people.clone(), a.json);
        let set = Set {
            frames: a.frames,
            seed: a.seed,
            attacks: a.attacks,
            threshold: a.threshold.unwrap_or(motion::THRESHOLD),
        };
        let report = tokio::task::spawn_blocking(move || {
            run(&engine, &kind.to_string(), &people, set, json)
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

/// What one evaluation generates and where it draws the line.
#[derive(Clone, Copy, Debug)]
struct Set {
    frames: usize,
    seed: u64,
    attacks: usize,
    threshold: f64,
}

/// The scores of one sequence: dense motion (−∞ when unscorable: refused), the yaw range, and the
/// challenge's dense motion on the turn's ends and middle.
struct Scored {
    motion: f64,
    turn: f64,
    turn_motion: f64,
    millis: f64,
}

/// A frame's face: the frame, its eyes and its yaw.
type Face<'a> = (&'a image::RgbImage, [[f64; 2]; 2], f64);

/// The best face of each frame that has one (and a yaw).
fn faces<'a>(engine: &LocalEngine, frames: &'a [image::RgbImage]) -> Result<Vec<Face<'a>>> {
    let pt = |p: &facereko_vision::geometry::Point| [f64::from(p.x), f64::from(p.y)];
    let mut out = Vec::new();
    for f in frames {
        if let Some(o) = engine.observe_image(f, 1)?.into_iter().next() {
            let eyes = [pt(&o.eyes[0]), pt(&o.eyes[1])];
            if let Some(yaw) = challenge::yaw(eyes, pt(&o.nose)) {
                out.push((f, eyes, yaw));
            }
        }
    }
    Ok(out)
}

/// The faces cut out as the door cuts them, and their yaws (faces that cannot be cut are left out).
fn cut(faces: &[Face]) -> (Vec<FaceCrop>, Vec<f64>) {
    faces
        .iter()
        .filter_map(|(f, eyes, yaw)| FaceCrop::new(f, *eyes).ok().map(|c| (c, *yaw)))
        .unzip()
}

/// A score, or −∞ (refused) when there is none.
fn or_refused(r: facereko_liveness::Result<f64>) -> f64 {
    r.unwrap_or(f64::NEG_INFINITY)
}

/// The challenge's motion check: the turn's ends and middle, as the door checks a turn.
fn turn_motion(crops: Vec<FaceCrop>, yaws: &[f64]) -> f64 {
    let mut crops: Vec<Option<FaceCrop>> = crops.into_iter().map(Some).collect();
    let ends: Vec<FaceCrop> = challenge::turn_frames(yaws)
        .into_iter()
        .filter_map(|i| crops[i].take())
        .collect();
    or_refused(motion::turn_score(&ends))
}

/// Finds the best face in each frame, then scores the sequence as the door does.
fn score(engine: &LocalEngine, frames: &[image::RgbImage]) -> Result<Scored> {
    let found = faces(engine, frames)?;
    let started = Instant::now();
    let (crops, yaws) = cut(&found);
    let motion = or_refused(motion::sequence_score(&crops));
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Scored {
        motion,
        turn: challenge::turn(&yaws).unwrap_or(f64::NEG_INFINITY),
        turn_motion: turn_motion(crops, &yaws),
        millis,
    })
}

fn run(
    engine: &LocalEngine,
    engine_name: &str,
    people: &[Vec<PathBuf>],
    set: Set,
    quiet: bool,
) -> Result<LivenessReport> {
    let max_side = 8192;
    let (mut bona, mut att) = (Vec::<Scored>::new(), Vec::<Scored>::new());
    let (mut people_turned, mut people_turned_refused) = (0, 0);
    for (pi, photos) in people.iter().enumerate() {
        if !quiet {
            eprint!("\r{engine_name}: person {}/{}", pi + 1, people.len());
        }
        let decoded = photos
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                facereko_vision::decode::decode_rgb(&bytes, max_side)
                    .with_context(|| format!("decoding {}", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        // All the person's photos as one turn: the challenge only (no passive score needed).
        let (crops, yaws) = cut(&faces(engine, &decoded)?);
        if challenge::turn(&yaws).is_some_and(|t| t >= challenge::TURN_THRESHOLD) {
            people_turned += 1;
            if turn_motion(crops, &yaws) < set.threshold {
                people_turned_refused += 1;
            }
        }
        // Non-overlapping windows of `frames` photos; fewer photos than that make one window.
        let windows: Vec<&[image::RgbImage]> = if decoded.len() < set.frames {
            vec![&decoded[..]]
        } else {
            decoded.chunks_exact(set.frames).collect()
        };
        for (wi, window) in windows.iter().enumerate() {
            bona.push(score(engine, window)?);
            // Attacks from the window's first photo, each with its own seed.
            for k in 0..set.attacks {
                let s = set
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((pi as u64) << 16)
                    .wrapping_add(wi as u64)
                    .wrapping_add((k as u64) << 40);
                let seq = attack::generate(&window[0], s, set.frames);
                att.push(score(engine, &seq.frames)?);
            }
        }
    }
    let motion = |v: &[Scored]| v.iter().map(|s| s.motion).collect::<Vec<f64>>();
    // The challenge passes when the head turned far enough and its ends and middle did not move as
    // one plane.
    let turn = |v: &[Scored]| {
        v.iter()
            .map(|s| {
                if s.turn_motion >= set.threshold {
                    s.turn
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect::<Vec<f64>>()
    };
    let (bona_m, att_m) = (motion(&bona), motion(&att));
    let (bona_t, att_t) = (turn(&bona), turn(&att));
    let unscored = |v: &[f64]| v.iter().filter(|s| s.is_infinite()).count();
    let mut millis: Vec<f64> = bona.iter().chain(&att).map(|s| s.millis).collect();
    millis.sort_by(f64::total_cmp);
    Ok(LivenessReport {
        engine: engine_name.to_string(),
        people: people.len(),
        frames: set.frames,
        seed: set.seed,
        bona_fide: bona.len(),
        attacks: att.len(),
        bona_fide_unscored: unscored(&bona_m),
        attacks_unscored: unscored(&att_m),
        at_threshold: ErrorRates::at(&bona_m, &att_m, set.threshold),
        calibrated: threshold_for_bpcer(&bona_m, 0.05).map(|t| ErrorRates::at(&bona_m, &att_m, t)),
        ms_per_sequence_median: millis.get(millis.len() / 2).copied().unwrap_or(0.0),
        ms_per_sequence_max: millis.last().copied().unwrap_or(0.0),
        challenge_at_threshold: ErrorRates::at(&bona_t, &att_t, challenge::TURN_THRESHOLD),
        people_turned,
        people_turned_refused,
        bona_fide_turns: bona_t,
        attack_turns: att_t,
        bona_fide_scores: bona_m,
        attack_scores: att_m,
    })
}
