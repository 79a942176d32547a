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
fn moved_photos_are_refused_and_real_head_turns_let_in_on_orl() {
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
            "--attacks",
            "3",
            "--seed",
            "17",
            "--json",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["people"], 12, "{out}");
    assert_eq!(r["bona_fide"], 24, "{out}");
    assert_eq!(r["attacks"], 72, "{out}");
    // The shipped threshold, on people and attack seeds other than the calibration's own seeds:
    // the floor is APCER ≤ 5 % at BPCER ≤ 5 %; this set has 24 bona fide windows, so one
    // refusal is 4.2 %.
    let at = &r["at_threshold"];
    assert_eq!(at["threshold"], 0.018, "{out}");
    let (apcer, bpcer) = (at["apcer"].as_f64().unwrap(), at["bpcer"].as_f64().unwrap());
    assert!(apcer <= 0.05, "APCER {apcer}: {out}");
    assert!(bpcer <= 0.05, "BPCER {bpcer}: {out}");
    // The challenge: no moved photo turns its head.
    assert_eq!(r["challenge_at_threshold"]["apcer"], 0.0, "{out}");
}
