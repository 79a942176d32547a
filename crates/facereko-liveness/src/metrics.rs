//! ISO/IEC 30107-3 error rates of a presentation-attack detector whose score is high for a live face.
//!
//! APCER: the share of attack presentations *accepted* as bona fide (score ≥ threshold). BPCER: the share
//! of bona fide presentations *refused* (score < threshold). A presentation that could not be scored
//! (no face found in enough frames) is refused: for an attack that is a success of the door, for a
//! bona fide user a refusal, so both are counted that way.

use serde::Serialize;

/// The share of `attacks` accepted at `threshold`; 0 when there are none.
pub fn apcer(attacks: &[f64], threshold: f64) -> f64 {
    share(attacks, |s| s != f64::NEG_INFINITY && s >= threshold)
}

/// The share of `bona_fide` refused at `threshold`; 0 when there are none.
pub fn bpcer(bona_fide: &[f64], threshold: f64) -> f64 {
    share(bona_fide, |s| s == f64::NEG_INFINITY || s < threshold)
}

fn share(scores: &[f64], hit: impl Fn(f64) -> bool) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&s| hit(s)).count() as f64 / scores.len() as f64
}

/// The highest threshold whose BPCER on `bona_fide` is at most `max_bpcer`: the one that refuses the
/// most attacks for that cost. Unscored presentations are passed as `f64::NEG_INFINITY` and are refused
/// at every threshold (here and in [`apcer`]/[`bpcer`]); `None` when they alone exceed `max_bpcer`,
/// or without bona fide scores.
pub fn threshold_for_bpcer(bona_fide: &[f64], max_bpcer: f64) -> Option<f64> {
    let mut s: Vec<f64> = bona_fide.to_vec();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let allowed = (max_bpcer * s.len() as f64 + 1e-9).floor() as usize;
    let t = s[allowed.min(s.len() - 1)];
    (t != f64::NEG_INFINITY).then_some(t)
}

/// The error rates at one threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorRates {
    pub threshold: f64,
    pub apcer: f64,
    pub bpcer: f64,
}

impl ErrorRates {
    pub fn at(bona_fide: &[f64], attacks: &[f64], threshold: f64) -> Self {
        ErrorRates {
            threshold,
            apcer: apcer(attacks, threshold),
            bpcer: bpcer(bona_fide, threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_accepted_attacks_and_refused_bona_fide() {
        let bona = [0.1, 0.2, 0.3, 0.4];
        let attacks = [0.01, 0.02, 0.25];
        assert_eq!(apcer(&attacks, 0.2), 1.0 / 3.0);
        assert_eq!(bpcer(&bona, 0.2), 0.25);
        assert_eq!(apcer(&attacks, 0.3), 0.0);
        assert_eq!(bpcer(&[], 0.3), 0.0);
    }

    #[test]
    fn the_threshold_for_a_bpcer_refuses_no_more_than_that() {
        let bona: Vec<f64> = (1..=40).map(|i| i as f64).collect();
        // 5 % of 40 = 2 may be refused: the threshold is the third lowest score.
        let t = threshold_for_bpcer(&bona, 0.05).unwrap();
        assert_eq!(t, 3.0);
        assert!(bpcer(&bona, t) <= 0.05);
        assert!(bpcer(&bona, t + 0.5) > 0.05);
        // Unscored bona fide presentations are refused whatever the threshold.
        let with_unscored = [f64::NEG_INFINITY, 5.0, 6.0];
        assert_eq!(threshold_for_bpcer(&with_unscored, 0.0), None);
        assert_eq!(threshold_for_bpcer(&with_unscored, 0.34), Some(5.0));
        assert_eq!(bpcer(&with_unscored, f64::NEG_INFINITY), 1.0 / 3.0);
        assert_eq!(apcer(&[f64::NEG_INFINITY], f64::NEG_INFINITY), 0.0);
        assert_eq!(threshold_for_bpcer(&[], 0.05), None);
    }
}
