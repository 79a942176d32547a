//! Which devices: one decision, made the same way for the daemon and for every one-off command.

use crate::bench::BenchSpec;
use crate::config::{HardwareConfig, HardwareMode};
use crate::{Error, Result};

/// The devices a door, or a one-off command, works with.
#[derive(Debug)]
pub enum Rig {
    /// Real devices: a Raspberry Pi was detected, or `hardware.mode = "pi"`.
    Pi,
    /// The bench rig of `hardware.mode = "bench"`: real drivers over software devices.
    Bench(Box<BenchSpec>),
    /// Simulated devices, and why.
    Simulated(String),
}

/// The largest bench description read.
const MAX_BENCH_SPEC: u64 = 1 << 20;

/// Decides the devices: `simulate` (the `--simulate` flag) wins, then `hardware.mode` — `"bench"` reads
/// and checks its description here, so a broken one is an error before anything opens — then the
/// detection of [`crate::pi::detect`] for `"auto"`.
pub fn select(cfg: &HardwareConfig, simulate: bool) -> Result<Rig> {
    if simulate {
        return Ok(Rig::Simulated("simulated devices (--simulate)".into()));
    }
    if cfg.mode == HardwareMode::Bench {
        let path = cfg.bench.as_deref().ok_or_else(|| {
            Error::Config(
                "hardware.mode = \"bench\" needs hardware.bench, the bench rig's JSON file".into(),
            )
        })?;
        let bytes = facereko_files::read_regular_file(path, MAX_BENCH_SPEC)
            .map_err(|e| Error::Config(format!("hardware.bench {}: {e}", path.display())))?;
        let spec: BenchSpec = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Config(format!(
                "hardware.bench {} is not a bench description: {e}",
                path.display()
            ))
        })?;
        return Ok(Rig::Bench(Box::new(spec)));
    }
    let detection = crate::pi::detect(cfg);
    Ok(if detection.real {
        Rig::Pi
    } else {
        Rig::Simulated(detection.summary)
    })
}

impl Rig {
    /// One line for the log and for the commands' output.
    pub fn describe(&self) -> String {
        match self {
            Rig::Pi => "real devices (Raspberry Pi)".into(),
            Rig::Bench(_) => {
                "bench rig (hardware.mode = \"bench\"): simulated MFRC522 behind the real \
                              driver, logged GPIO lines"
                    .into()
            }
            Rig::Simulated(why) => why.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn bench(path: Option<PathBuf>) -> HardwareConfig {
        HardwareConfig {
            mode: HardwareMode::Bench,
            bench: path,
            ..HardwareConfig::default()
        }
    }

    #[test]
    fn simulate_wins_over_every_mode() {
        let cfg = bench(Some("/nonexistent.json".into()));
        assert!(matches!(select(&cfg, true).unwrap(), Rig::Simulated(_)));
        let cfg = HardwareConfig {
            mode: HardwareMode::Simulated,
            ..HardwareConfig::default()
        };
        match select(&cfg, false).unwrap() {
            Rig::Simulated(why) => assert!(why.contains("hardware.mode"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_bench_rig_comes_from_its_configured_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("bench.json");
        std::fs::write(&spec, r#"{"reader": {"cards": [{"uid": "04:A2:2B:19"}]}}"#).unwrap();
        let rig = select(&bench(Some(spec.clone())), false).unwrap();
        let Rig::Bench(b) = &rig else {
            panic!("{rig:?}")
        };
        assert_eq!(b.reader.cards.len(), 1);
        assert!(rig.describe().contains("bench rig"));

        std::fs::write(&spec, "{not json").unwrap();
        let e = select(&bench(Some(spec)), false).unwrap_err().to_string();
        assert!(e.contains("is not a bench description"), "{e}");
        let e = select(&bench(Some(dir.path().into())), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = bench(None).validate().unwrap_err().to_string();
        assert!(e.contains("needs hardware.bench"), "{e}");
        let stray = HardwareConfig {
            bench: Some("/x.json".into()),
            ..HardwareConfig::default()
        };
        assert!(stray.validate().is_err());
    }
}
