//! `facereko serve`: builds the door from the configuration and runs it until SIGINT/SIGTERM.

use std::future::IntoFuture;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use facereko_domain::Mode;
use facereko_door::{DoorHandle, Parts};
use facereko_hardware::sim::{self, CameraSource, SimCamera, SimOutputs};
use facereko_hardware::{Camera, CardReader, Inputs, Outputs};
use facereko_store::Store;
use facereko_vision::{EngineKind, FaceEngine};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::control;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Use simulated card reader, camera, outputs and inputs even on a Raspberry Pi.
    #[arg(long)]
    simulate: bool,
    /// Override the configured mode: card, card+face or face.
    #[arg(long, value_parser = crate::parse_mode)]
    mode: Option<Mode>,
    /// Address and port of the web app (overrides `web.bind`).
    #[arg(long)]
    bind: Option<String>,
}

/// The devices the door runs with, and the handles the control socket may drive.
struct Devices {
    reader: Box<dyn CardReader>,
    camera: Arc<dyn Camera>,
    outputs: Arc<dyn Outputs>,
    inputs: Option<Box<dyn Inputs>>,
    targets_tapper: Option<sim::SimTapper>,
    targets_camera: Option<SimCamera>,
    /// Keeps the simulated inputs' channel open (a closed one ends the controller's input task).
    _inputs_handle: Option<sim::SimInputsHandle>,
    summary: String,
}

fn simulated(config: &Config) -> Result<Devices> {
    let (reader, tapper) = sim::card_reader();
    let (inputs, inputs_handle) = sim::inputs();
    let source = match &config.sim.camera {
        Some(p) => {
            SimCamera::source_for(p).with_context(|| format!("sim.camera {}", p.display()))?
        }
        None => CameraSource::Nothing,
    };
    let camera = SimCamera::new(source);
    Ok(Devices {
        reader: Box::new(reader),
        camera: Arc::new(camera.clone()),
        outputs: Arc::new(SimOutputs::new()),
        inputs: Some(Box::new(inputs)),
        targets_tapper: Some(tapper),
        targets_camera: Some(camera),
        _inputs_handle: Some(inputs_handle),
        summary: "simulated".into(),
    })
}

fn real(config: &Config) -> Result<Devices> {
    let pi = facereko_hardware::pi::open(&config.hardware)
        .context("opening the Raspberry Pi devices (use --simulate to run without them)")?;
    Ok(Devices {
        reader: Box::new(pi.reader),
        camera: Arc::from(pi.camera),
        outputs: pi.outputs,
        inputs: Some(pi.inputs),
        targets_tapper: None,
        targets_camera: None,
        _inputs_handle: None,
        summary: "Raspberry Pi".into(),
    })
}

/// The bench rig's devices: its reader, outputs and inputs behind the real drivers, the simulated camera.
fn bench(config: &Config, spec: &facereko_hardware::bench::BenchSpec) -> Result<Devices> {
    let hw = &config.hardware;
    let outputs = spec.open_outputs(&hw.gpio)?;
    let inputs = spec.open_inputs(&hw.gpio)?;
    let reader = spec.open_card_reader(&hw.reader)?;
    let sim = simulated(config)?;
    Ok(Devices {
        reader: Box::new(reader),
        outputs,
        inputs: Some(inputs),
        targets_tapper: None,
        _inputs_handle: None,
        summary: "bench rig".into(),
        ..sim
    })
}

/// Opens the devices `facereko_hardware::select` picks (simulated with `--simulate` or off a Raspberry Pi).
fn open_devices(config: &Config, simulate: bool) -> Result<Devices> {
    let rig = facereko_hardware::select(&config.hardware, simulate)?;
    tracing::info!("{}", rig.describe());
    match rig {
        facereko_hardware::Rig::Pi => real(config),
        facereko_hardware::Rig::Bench(spec) => bench(config, &spec),
        facereko_hardware::Rig::Simulated(_) => simulated(config),
    }
}

/// SIGINT/SIGTERM, handled from the moment the outputs are open: the handler drives the outputs to the
/// safe state itself, then tells the rest of the daemon to stop. It does not rely on the door controller,
/// which may not be running yet (the database is still being reached) or may be stuck.
struct Signals {
    rx: tokio::sync::watch::Receiver<Option<&'static str>>,
}

impl Signals {
    fn install(outputs: Arc<dyn Outputs>) -> Result<Signals> {
        // Registered here, before any await: a signal from now on is ours, not the default "terminate".
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let (tx, rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                match outputs.lock_down() {
                    Ok(()) => tracing::info!(
                        target: "facereko::safety",
                        "{name}: relay locked, buzzer and green off; stopping"
                    ),
                    Err(e) => {
                        tracing::error!(target: "facereko::safety", "{name}: lock-down failed: {e}")
                    }
                }
                tx.send_replace(Some(name));
            }
        });
        Ok(Signals { rx })
    }

    /// Waits for SIGINT or SIGTERM (the outputs are already safe when it returns).
    async fn requested(&mut self) -> &'static str {
        loop {
            if let Some(name) = *self.rx.borrow_and_update() {
                return name;
            }
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// What runs once the daemon has started.
struct Running {
    store: Store,
    door: DoorHandle,
    task: tokio::task::JoinHandle<()>,
    notifier: facereko_notify::NotifierHandle,
    endpoint: Option<crate::rekognition::RunningEndpoint>,
    web_stop: tokio::sync::oneshot::Sender<()>,
    web_task: tokio::task::JoinHandle<std::io::Result<()>>,
    control_task: tokio::task::JoinHandle<()>,
    /// The site parts: the replica's sync loop and the MQTT change signal (dropped at the end).
    fleet: Option<crate::fleet::Fleet>,
    /// Keeps the simulated inputs' channel open for as long as the door runs.
    _inputs_handle: Option<sim::SimInputsHandle>,
}

pub async fn run(data_dir: &Path, config_file: Option<&Path>, args: ServeArgs) -> Result<()> {
    let (mut config, config_path) = Config::load(config_file, data_dir)?;
    if let Some(mode) = args.mode {
        config.door.mode = mode;
    }
    if let Some(bind) = args.bind {
        config.web.bind = bind.parse().with_context(|| {
            format!("--bind {bind:?} is not an address:port such as 0.0.0.0:5000")
        })?;
    }
    let listener = control::bind(data_dir).await?;

    // The outputs first, in the safe state, with the signal and panic handlers on them: whatever happens
    // while the database is reached or the models load, the lock stays locked and a signal locks it.
    let devices = open_devices(&config, args.simulate)?;
    devices
        .outputs
        .lock_down()
        .context("driving the outputs to the safe state")?;
    tracing::info!(
        target: "facereko::safety",
        "outputs in the safe state: relay locked, buzzer and green off"
    );
    facereko_hardware::safety::install_panic_lock_down(devices.outputs.clone());
    let mut signals = Signals::install(devices.outputs.clone())?;

    let starting = start(
        data_dir,
        &config,
        config_path.as_deref(),
        args.mode,
        listener,
        devices,
    );
    let running = tokio::select! {
        r = starting => r?,
        name = signals.requested() => {
            tracing::info!("{name} while starting: stopped before the door ran");
            let _ = std::fs::remove_file(control::socket_path(data_dir));
            return Ok(());
        }
    };
    let Running {
        store,
        door,
        mut task,
        notifier,
        endpoint,
        web_stop,
        web_task,
        control_task,
        fleet,
        _inputs_handle,
    } = running;

    let outcome = tokio::select! {
        name = signals.requested() => {
            tracing::info!("{name}: stopping the door");
            Ok(())
        }
        res = &mut task => Err(anyhow::anyhow!("the door controller stopped unexpectedly: {res:?}")),
    };
    if outcome.is_ok() {
        door.shutdown().await;
        let _ = task.await;
    }
    let _ = web_stop.send(());
    if tokio::time::timeout(std::time::Duration::from_secs(5), web_task)
        .await
        .is_err()
    {
        tracing::warn!("web app did not stop within 5 s");
    }
    if let Some(ep) = endpoint {
        ep.stop().await;
    }
    notifier.shutdown().await;
    drop(fleet);
    store.close().await;
    control_task.abort();
    let _ = std::fs::remove_file(control::socket_path(data_dir));
    outcome
}

/// Everything after the devices: database, face engine, web app, the door itself, control socket.
async fn start(
    data_dir: &Path,
    config: &Config,
    config_path: Option<&Path>,
    cli_mode: Option<facereko_domain::Mode>,
    listener: tokio::net::UnixListener,
    devices: Devices,
) -> Result<Running> {
    let url = config.database_url(data_dir);
    let mut options: facereko_store::OpenOptions = (&config.store).into();
    // A door with a copy of the directory decides from it: it starts even while the server is away.
    options.start_when_down = crate::fleet::has_copy(data_dir, config, &url).await;
    options.share_face_photos = config.fleet.share_photos;
    let store = Store::open_with(&url, data_dir, &options)
        .await
        .with_context(|| format!("opening the database {}", crate::cli::redact_url(&url)))?;
    // The values set on the settings page, between the defaults and the file; the command line's
    // `--mode` and `--bind` still win.
    let bind = config.web.bind;
    let mut config =
        crate::settings::with_web_values(config.clone(), config_path, data_dir, &store).await;
    config.web.bind = bind;
    if let Some(mode) = cli_mode {
        config.door.mode = mode;
    }
    let config = &config;
    let fleet = crate::fleet::start(data_dir, config, &store).await?;
    // Where the door reads cards, people and faces: its replica on a site, else the store itself.
    let directory = fleet
        .as_ref()
        .and_then(|f| f.replica.as_ref())
        .map_or_else(|| store.clone(), |r| r.local().clone());

    let local = match crate::faces::load_engine(config, data_dir).await {
        Ok(engine) => Some(engine),
        Err(e) if crate::rekognition::needs_local_engine(config) => return Err(e),
        Err(e) => {
            tracing::info!(
                "face engine not loaded ({e:#}): card mode needs none, enrolling faces does"
            );
            None
        }
    };
    let gallery = match &local {
        Some(engine) => {
            let sync = facereko_enrol::GallerySync::start(directory.clone(), engine.clone())
                .await
                .context("loading the enrolled faces")?;
            tracing::info!(
                "local face engine {}: threshold {:.2} %",
                config.vision.local_engine,
                config.vision.threshold()
            );
            facereko_enrol::gallery::spawn_gallery_sync(
                sync.clone(),
                std::time::Duration::from_secs(2),
            );
            Some(sync)
        }
        None => None,
    };
    let crate::rekognition::Engines {
        door: engine,
        indexer,
    } = crate::rekognition::engines(config, local.as_ref()).await?;
    // The door's engine checks the gallery is current at the start of each decision.
    let engine = match (engine, gallery) {
        (Some(e), Some(sync)) => {
            Some(Arc::new(facereko_enrol::FreshGallery::new(e, sync)) as Arc<dyn FaceEngine>)
        }
        (e, _) => e,
    };
    let endpoint = crate::rekognition::start_endpoint(config, data_dir, local.as_ref()).await?;
    let web_listener = tokio::net::TcpListener::bind(config.web.bind)
        .await
        .with_context(|| {
            format!(
                "the web app cannot listen on {} (web.bind / --bind)",
                config.web.bind
            )
        })?;
    let web_addr = web_listener.local_addr()?;

    println!(
        "FaceReko door {:?}, mode {}",
        config.door_id, config.door.mode
    );
    println!("  data directory: {}", data_dir.display());
    println!(
        "  configuration:  {}",
        config_path.map_or("built-in defaults (no facereko.toml)".to_string(), |p| p
            .display()
            .to_string())
    );
    println!("  web app:        http://{web_addr}/");
    println!(
        "  face engine:    {}",
        match (&engine, config.vision.engine) {
            (None, _) => "none (card mode)".to_string(),
            (Some(_), EngineKind::Rekognition) => format!(
                "rekognition, collection {}, threshold {} %, fallback {}",
                config.aws.collection, config.aws.face_match_threshold, config.vision.fallback
            ),
            (Some(_), _) => format!(
                "local ({}), threshold {:.2} %",
                config.vision.local_engine,
                config.vision.threshold()
            ),
        }
    );
    if let Some(ep) = &endpoint {
        println!(
            "  rekognition api: http://{} (SigV4, key {})",
            ep.addr,
            config
                .rekognition_api
                .access_key_id
                .as_deref()
                .unwrap_or("")
        );
    }
    println!("  database:       {}", crate::cli::redact_url(&url));
    println!("  photos:         {}", data_dir.join("photos").display());
    println!(
        "  control socket: {}",
        control::socket_path(data_dir).display()
    );
    println!(
        "  devices:        {} ({})",
        devices.summary,
        devices.camera.describe()
    );
    println!(
        "  tap a card:     facereko --data-dir {} sim tap 04:A2:2B:19",
        data_dir.display()
    );

    let door_store: Arc<dyn facereko_door::DoorStore> =
        match fleet.as_ref().and_then(|f| f.replica.clone()) {
            Some(replica) => Arc::new(facereko_fleet::FleetStore::new(replica)),
            None => Arc::new(store.clone()),
        };
    let parts = Parts {
        store: door_store,
        engine,
        camera: devices.camera.clone(),
        outputs: devices.outputs.clone(),
    };
    let (door, task) = facereko_door::start(
        &config.door_id,
        config.door.clone(),
        parts,
        devices.reader,
        devices.inputs,
    )
    .await?;
    let notifier = start_notifier(&store, config, &door).await?;
    tokio::spawn(store.clone().run_retention(config.store.retention.clone()));
    let enroller = crate::faces::WebEnrolment(facereko_enrol::FaceEnrolment::new(
        store.clone(),
        local,
        indexer,
    ));
    let mut web = facereko_web::AppState::new(
        store.clone(),
        door.clone(),
        Arc::new(enroller),
        config.web.clone(),
    )?
    .with_threshold(match config.vision.engine {
        EngineKind::Rekognition => config.aws.face_match_threshold,
        _ => config.vision.threshold(),
    });
    if let Some(site) = fleet.as_ref().and_then(crate::fleet::Fleet::site_view) {
        web = web.with_site(site);
    }
    match crate::settings::DoorSettings::new(
        data_dir,
        config_path,
        config.clone(),
        store.clone(),
        notifier.clone(),
        door.clone(),
    ) {
        Ok(s) => web = web.with_settings(Arc::new(s)),
        Err(e) => tracing::warn!("the settings page is off: {e:#}"),
    }
    // First run: the set-up code `/setup` asks for goes to the console and the journal only.
    if let Err(e) = web.announce_setup(&format!("http://{web_addr}")).await {
        tracing::warn!("cannot tell whether an account exists yet: {e}");
    }
    let (web_stop, web_stopped) = tokio::sync::oneshot::channel::<()>();
    let web_task = tokio::spawn(
        axum::serve(
            web_listener,
            facereko_web::router(web).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = web_stopped.await;
        })
        .into_future(),
    );
    let control_task = tokio::spawn(control::serve(
        listener,
        control::Targets {
            door: door.clone(),
            tapper: devices.targets_tapper,
            camera: devices.targets_camera,
            notifier: Some(notifier.clone()),
            replica: fleet.as_ref().and_then(|f| f.replica.clone()),
        },
    ));
    Ok(Running {
        store,
        door,
        task,
        notifier,
        endpoint,
        web_stop,
        web_task,
        control_task,
        fleet,
        _inputs_handle: devices._inputs_handle,
    })
}

/// Starts the notifier over the store's outbox, wakes it on every door event, and hands MQTT commands
/// (when enabled) to the door.
async fn start_notifier(
    store: &Store,
    config: &Config,
    door: &DoorHandle,
) -> Result<facereko_notify::NotifierHandle> {
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel(16);
    // The door's state now, for the retained MQTT state at every connect.
    let live = |s: &facereko_door::DoorStatus| facereko_notify::LiveState {
        armed: s.armed,
        unlocked: s.unlocked,
        door_open: s.door_open,
    };
    let mut status = door.watch_status();
    let (live_tx, live_rx) = tokio::sync::watch::channel(live(&status.borrow_and_update()));
    tokio::spawn(async move {
        while status.changed().await.is_ok() {
            let now = live(&status.borrow_and_update());
            live_tx.send_if_modified(|s| std::mem::replace(s, now) != now);
        }
    });
    let notifier = facereko_notify::spawn(
        store.clone(),
        &config.door_id,
        &config.notify(),
        Some(cmd_tx),
        Some(live_rx),
    )
    .await
    .context("starting notifications")?;
    let d = door.clone();
    let audit_store = store.clone();
    let audit_door = config.door_id.to_string();
    tokio::spawn(async move {
        use facereko_notify::DoorCommand;
        while let Some(req) = cmd_rx.recv().await {
            tracing::info!("command {:?} from {}", req.command, req.origin);
            let res = match req.command {
                DoorCommand::Arm => d.arm(true).await,
                DoorCommand::Disarm => d.arm(false).await,
                DoorCommand::Unlock => d.unlock(&req.origin).await,
            };
            if let Err(e) = res {
                tracing::warn!("command {:?} from {} failed: {e}", req.command, req.origin);
                continue;
            }
            let action = match req.command {
                DoorCommand::Arm => "system.activate",
                DoorCommand::Disarm => "system.deactivate",
                DoorCommand::Unlock => "door.unlock",
            };
            let entry = facereko_domain::NewAudit {
                time: req.received,
                door_id: audit_door.clone(),
                actor: "mqtt".into(),
                via: facereko_domain::AuditVia::Mqtt,
                origin: Some(req.origin.clone()),
                action: action.into(),
                target: audit_door.clone(),
                detail: "signed command".into(),
            };
            if let Err(e) = audit_store.record_audit(&entry).await {
                tracing::error!("the audit trail did not record command {action}: {e}");
            }
        }
    });
    let mut events = door.subscribe();
    let n = notifier.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => n.wake(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(notifier)
}
