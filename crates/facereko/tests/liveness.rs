//! Passive liveness with the real face engine: ORL people's own photos (real head turns) against
//! seeded print/screen attacks made from one of their photos.

mod common;

use std::path::PathBuf;

fn env_dir(var: &str) -> PathBuf {
    let v =
        std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set (scripts/test.sh sets it)"));
    PathBuf::from(v)
}

#[test]
#[ignore = "needs FACEREKO_MODELS_DIR and FACEREKO_FACES_DIR (set by scripts/test.sh)"]
fn real_head_turns_score_above_moved_photos_on_orl() {
    let models = env_dir("FACEREKO_MODELS_DIR");
    let orl = env_dir("FACEREKO_FACES_DIR").join("orl");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(
        data.join("facereko.toml"),
        format!(
            "[vision]\nmodels_dir = {:?}\n",
            models.display().to_string()
        ),
    )
    .unwrap();
    let out = common::ok(
        data,
        &[
            "eval-liveness",
            "--dir",
            orl.to_str().unwrap(),
            "--engine",
            "onnx",
            "--people",
            "12",
            "--frames",
            "5",
            "--seed",
            "17",
            "--json",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["people"], 12, "{out}");
    assert_eq!(r["bona_fide"], 24, "{out}");
    assert_eq!(r["attacks"], 24, "{out}");
    assert_eq!(r["bona_fide_unscored"], 0, "{out}");
    assert_eq!(r["attacks_unscored"], 0, "{out}");
    // What the keypoint check delivers today: real head turns leave clearly more non-planar motion
    // than a moved photo (medians 0.20 and 0.07 of the eye distance on this set), but BlazeFace's
    // keypoint noise on a moved photo overlaps the bona fide scores, so APCER at BPCER 5 % is far from
    // the 5 % target (88 % here, 84 % on all of ORL): this guards the separation, not the target.
    let median = |k: &str| {
        let mut v: Vec<f64> = r[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (bona, attacks) = (median("bona_fide_scores"), median("attack_scores"));
    assert!(bona > 2.0 * attacks, "medians {bona} vs {attacks}: {out}");
}
