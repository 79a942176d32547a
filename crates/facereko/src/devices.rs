//! Devices for one-off commands, chosen like the daemon chooses them: the real ones on a Raspberry Pi,
//! the simulated ones elsewhere.

use anyhow::{bail, Context, Result};
use facereko_hardware::sim::SimCamera;
use facereko_hardware::Camera;

use crate::config::Config;

/// The configured camera for one-off commands (`photo`): the real one on a Raspberry Pi, else the simulated
/// one with `sim.camera`.
pub fn open_camera(config: &Config, simulate: bool) -> Result<Box<dyn Camera>> {
    if let facereko_hardware::Rig::Pi = facereko_hardware::select(&config.hardware, simulate)? {
        return Ok(facereko_hardware::camera::open_camera(
            &config.hardware.camera,
        )?);
    }
    let Some(p) = &config.sim.camera else {
        bail!("no camera here: on a laptop set `sim.camera` (an image file or folder) in facereko.toml");
    };
    Ok(Box::new(SimCamera::new(
        SimCamera::source_for(p).with_context(|| format!("sim.camera {}", p.display()))?,
    )))
}
