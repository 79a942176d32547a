//! `doctor`: one line per thing a door needs (data folder, database, models, camera, face, reader, GPIO,
//! Rekognition, MQTT, SMTP, clock), what is wrong and how to fix it; `--json` for scripts.

use super::*;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// One JSON object for scripts.
    #[arg(long)]
    json: bool,
    /// Check the simulated devices even on a Raspberry Pi.
    #[arg(long)]
    simulate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
pub(crate) struct Check {
    name: &'static str,
    status: Status,
    /// A failed required check makes `doctor` exit non-zero.
    required: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            required: true,
            detail: detail.into(),
            fix: None,
        }
    }
    pub(crate) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            status: Status::Fail,
            required: true,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub(crate) fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Skip,
            required: false,
            detail: detail.into(),
            fix: None,
        }
    }
    /// Marks the check optional: a failure becomes a warning.
    fn optional(mut self) -> Self {
        self.required = false;
        if self.status == Status::Fail {
            self.status = Status::Warn;
        }
        self
    }
    fn required_if(self, required: bool) -> Self {
        if required {
            self
        } else {
            self.optional()
        }
    }

    fn line(&self) -> String {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        let mut s = format!("{tag}  {:<9} {}", self.name, self.detail);
        if let Some(fix) = &self.fix {
            s.push_str(" -- fix: ");
            s.push_str(fix);
        }
        s
    }
}

#[derive(Debug, Serialize)]
struct DoctorReport {
    ok: bool,
    devices: String,
    daemon_running: bool,
    checks: Vec<Check>,
}

const SPI_FIX: &str = "check that SPI is enabled (`ls /dev/spidev*`; `sudo raspi-config nonint do_spi 0` \
    or `dtparam=spi=on` in /boot/firmware/config.txt, then reboot), the wiring (SDA to CE0/GPIO8, SCK to \
    GPIO11, MOSI to GPIO10, MISO to GPIO9, 3.3 V not 5 V, GND) and the reset pin (RST to \
    hardware.reader.reset_line, GPIO25 by default)";

pub async fn doctor(data_dir: &Path, config_file: Option<&Path>, a: DoctorArgs) -> Result<()> {
    let mut checks = Vec::new();
    let config = match Config::load(config_file, data_dir) {
        Ok((c, path)) => {
            checks.push(Check::ok(
                "config",
                path.map_or("built-in defaults (no facereko.toml)".to_string(), |p| {
                    format!("{} parses and is valid", p.display())
                }),
            ));
            c
        }
        Err(e) => {
            checks.push(Check::fail(
                "config",
                format!("{e:#} (the checks below use the defaults)"),
                "correct the named key in facereko.toml or the FACEREKO_* variable",
            ));
            Config::default()
        }
    };
    let daemon = daemon_status(data_dir).await;
    let rig = select(&config.hardware, a.simulate)?;

    checks.push(check_data_dir(data_dir));
    checks.push(check_database(data_dir, &config).await);
    checks.push(check_replica(data_dir, &config, daemon.as_ref()).await);
    let uses_camera = config.door.mode.uses_camera();
    let models = check_models(data_dir, &config).await;
    let models_ok = models.status == Status::Ok;
    checks.push(models.required_if(crate::rekognition::needs_local_engine(&config)));
    let (camera, frame) = check_camera(&config, &rig, daemon.is_some()).await;
    checks.push(camera.required_if(uses_camera));
    checks.push(check_face(data_dir, &config, models_ok, frame).await);
    checks.push(check_reader(&config, &rig, daemon.as_ref()).await);
    checks.push(check_gpio(&config, &rig, daemon.is_some()).await);
    checks.push(check_mqtt(&config).await);
    checks.push(check_smtp(&config).await);
    checks.push(check_collection(&config).await);
    checks.push(check_clock().await);

    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.required && c.status == Status::Fail)
        .map(|c| c.name)
        .collect();
    let report = DoctorReport {
        ok: failed.is_empty(),
        devices: rig.describe(),
        daemon_running: daemon.is_some(),
        checks,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "devices: {}{}",
            report.devices,
            if report.daemon_running {
                "; a daemon is running on this data directory"
            } else {
                ""
            }
        );
        for c in &report.checks {
            println!("{}", c.line());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} required check(s) failed: {}",
            failed.len(),
            failed.join(", ")
        );
    }
    if !a.json {
        println!("all required checks passed");
    }
    Ok(())
}

fn check_data_dir(data_dir: &Path) -> Check {
    let probe = data_dir.join(format!(".doctor-{}", std::process::id()));
    let result =
        std::fs::write(&probe, b"facereko doctor\n").and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => Check::ok("data dir", format!("{} is writable", data_dir.display())),
        Err(e) => Check::fail(
            "data dir",
            format!("{} is not writable: {e}", data_dir.display()),
            format!(
                "give the service user the folder: `sudo chown -R facereko: {}`, or pass --data-dir",
                data_dir.display()
            ),
        ),
    }
}

async fn check_database(data_dir: &Path, config: &Config) -> Check {
    let url = config.database_url(data_dir);
    let shown = crate::cli::redact_url(&url);
    let fix = "check store.database_url (or FACEREKO_STORE__DATABASE_URL), that the database server runs and lets this user \
               in, then run `facereko migrate`";
    let options = (&config.store).into();
    let open = Store::open_with(&url, data_dir, &options);
    let store = match tokio::time::timeout(Duration::from_secs(20), open).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Check::fail("database", format!("{shown}: {e}"), fix),
        Err(_) => return Check::fail("database", format!("{shown}: no answer within 20 s"), fix),
    };
    let check = match store.schema_version().await {
        Ok(v) => Check::ok(
            "database",
            format!(
                "{shown} ({}) reachable, schema version {v}",
                store.backend()
            ),
        ),
        Err(e) => Check::fail("database", format!("{shown}: schema: {e}"), fix),
    };
    store.close().await;
    check
}

/// A door of a site decides from its replica: say how old it is, and fail when it is stale or missing.
async fn check_replica(
    data_dir: &Path,
    config: &Config,
    daemon: Option<&serde_json::Value>,
) -> Check {
    let backend = facereko_store::backend_of(&config.database_url(data_dir));
    if !backend.is_some_and(|b| config.fleet.replica_for(b)) {
        return Check::skip(
            "replica",
            "not used: this door decides from its own SQLite database (fleet.replica)",
        );
    }
    let fix = "start the daemon while the central database is reachable (it copies it at start, then every \
               fleet.poll_secs); see the `database` line";
    let from_daemon = daemon
        .and_then(|d| d.get("replica"))
        .and_then(|r| serde_json::from_value::<facereko_fleet::ReplicaStatus>(r.clone()).ok());
    let status = match from_daemon {
        Some(s) => s,
        None => match facereko_fleet::Replica::inspect(data_dir, &config.fleet).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Check::fail(
                    "replica",
                    format!(
                    "no copy of the central database in {} yet: taps are refused until there is",
                    data_dir.join(facereko_fleet::REPLICA_FILE).display()
                ),
                    fix,
                )
            }
            Err(e) => return Check::fail("replica", e.to_string(), fix),
        },
    };
    let now = chrono::Utc::now();
    if status.rev.is_none() || status.stale(now) {
        Check::fail("replica", status.summary(now), fix)
    } else {
        Check::ok("replica", status.summary(now))
    }
}

async fn check_models(data_dir: &Path, config: &Config) -> Check {
    let dir = config.vision.models_dir(data_dir);
    let shown = dir.clone();
    let kind = config.vision.local_engine;
    match tokio::task::spawn_blocking(move || facereko_vision::models::verify_engine(kind, &dir))
        .await
    {
        Ok(Ok(_)) => Check::ok(
            "models",
            format!(
                "{kind} face models in {} present, SHA-256 verified",
                shown.display()
            ),
        ),
        Ok(Err(e)) => {
            let fix = format!("run `{}`", facereko_vision::models::install_command(kind));
            // The error already ends with the command; say it once, as the fix.
            let detail = e.to_string();
            let detail = detail
                .strip_suffix(&format!(": {fix}"))
                .unwrap_or(&detail)
                .to_string();
            Check::fail("models", detail, fix)
        }
        Err(e) => Check::fail(
            "models",
            format!("checking the models: {e}"),
            "run doctor again",
        ),
    }
}

/// Width and height from a JPEG's or PNG's header, without decoding the pixels.
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

const CAMERA_FIX: &str =
    "check the camera cable and that `rpicam-hello --list-cameras` lists it (or \
    the [hardware.camera] command), and hardware.camera.timeout_ms";

/// The camera check, and the frame it took for the face check.
async fn check_camera(
    config: &Config,
    rig: &Rig,
    daemon: bool,
) -> (Check, Option<facereko_domain::Photo>) {
    let camera: Box<dyn Camera> = match rig {
        Rig::Pi | Rig::Bench(_) => {
            if daemon && matches!(rig, Rig::Pi) {
                return (
                    Check::skip(
                        "camera",
                        "the running daemon holds the camera (its attempts show whether it works)",
                    ),
                    None,
                );
            }
            match facereko_hardware::camera::open_camera(&config.hardware.camera) {
                Ok(c) => c,
                Err(e) => return (Check::fail("camera", e.to_string(), CAMERA_FIX), None),
            }
        }
        Rig::Simulated(_) => match &config.sim.camera {
            None => {
                let c = Check::fail(
                    "camera",
                    "simulated camera with no image (sim.camera is not set)",
                    "set sim.camera to an image file or folder, or `facereko sim image FILE` on a running daemon",
                );
                return (c.optional(), None);
            }
            Some(p) => match SimCamera::source_for(p) {
                Ok(s) => Box::new(SimCamera::new(s)),
                Err(e) => {
                    return (
                        Check::fail(
                            "camera",
                            format!("sim.camera: {e}"),
                            "point sim.camera at an image",
                        ),
                        None,
                    )
                }
            },
        },
    };
    let started = Instant::now();
    // Cameras bound their own time; this outer bound only guards against one that does not.
    let limit = config.hardware.camera.timeout() + Duration::from_secs(2);
    let shot = match tokio::time::timeout(limit, camera.capture()).await {
        Ok(r) => r,
        Err(_) => Err(facereko_hardware::Error::CameraTimeout(
            limit.as_millis() as u64
        )),
    };
    let ms = started.elapsed().as_millis();
    match shot {
        Ok(photo) => {
            let size = image_size(&photo.bytes)
                .map_or("size unknown".to_string(), |(w, h)| format!("{w}x{h}"));
            (
                Check::ok(
                    "camera",
                    format!(
                        "{}: first frame {size}, {} bytes, after {ms} ms",
                        camera.describe(),
                        photo.bytes.len()
                    ),
                ),
                Some(photo),
            )
        }
        Err(e) => (
            Check::fail("camera", format!("{}: {e}", camera.describe()), CAMERA_FIX),
            None,
        ),
    }
}

/// Optional: is a face found in the camera's frame? Never makes `doctor` fail.
async fn check_face(
    data_dir: &Path,
    config: &Config,
    models_ok: bool,
    frame: Option<facereko_domain::Photo>,
) -> Check {
    let Some(frame) = frame else {
        return Check::skip("face", "no frame from the camera to look at");
    };
    if !models_ok {
        return Check::skip("face", "needs the face models");
    }
    let engine = match crate::faces::load_engine(config, data_dir).await {
        Ok(e) => e,
        Err(e) => {
            return Check::fail("face", format!("{e:#}"), "run `facereko models install`")
                .optional()
        }
    };
    let found = tokio::task::spawn_blocking(move || engine.describe_blocking(&frame.bytes)).await;
    match found {
        Ok(Ok(Some(probe))) => Check::ok(
            "face",
            format!(
                "a face was found in the frame{}",
                probe
                    .face
                    .width_px
                    .map_or(String::new(), |w| format!(" ({w} px wide)"))
            ),
        )
        .optional(),
        Ok(Ok(None)) => Check::fail(
            "face",
            "no usable face in the frame",
            "stand in front of the camera at the door's distance, check focus and light, run doctor again",
        )
        .optional(),
        Ok(Err(e)) => Check::fail("face", e.to_string(), "check the camera's image format").optional(),
        Err(e) => Check::fail("face", e.to_string(), "run doctor again").optional(),
    }
}

async fn check_reader(config: &Config, rig: &Rig, daemon: Option<&serde_json::Value>) -> Check {
    let reader = &config.hardware.reader;
    match (rig, daemon) {
        (Rig::Simulated(why), _) => Check::skip("reader", format!("simulated card reader ({why})")),
        // The daemon polls the chip: probing it here would reset it under the daemon's feet.
        (_, Some(status)) => {
            let state = status["reader"].as_str().unwrap_or("unknown");
            if state.starts_with("ok") {
                Check::ok("reader", "the running daemon reports the card reader ok")
            } else {
                Check::fail(
                    "reader",
                    format!("the running daemon reports the card reader: {state}"),
                    SPI_FIX,
                )
            }
        }
        (Rig::Bench(spec), None) => match spec.probe_reader() {
            Ok(info) => Check::ok("reader", format!("{info} answers on the bench SPI bus")),
            Err(e) => Check::fail("reader", e.to_string(), SPI_FIX),
        },
        (Rig::Pi, None) => {
            if !reader.spi_device.exists() {
                return Check::fail(
                    "reader",
                    format!("SPI device {} is missing", reader.spi_device.display()),
                    SPI_FIX,
                );
            }
            let (r, g) = (reader.clone(), config.hardware.gpio.clone());
            match tokio::task::spawn_blocking(move || facereko_hardware::pi::probe_reader(&r, &g))
                .await
            {
                Ok(Ok(info)) => Check::ok(
                    "reader",
                    format!("{info} answers on {}", reader.spi_device.display()),
                ),
                Ok(Err(e)) => Check::fail("reader", e.to_string(), SPI_FIX),
                Err(e) => Check::fail("reader", e.to_string(), SPI_FIX),
            }
        }
    }
}

async fn check_gpio(config: &Config, rig: &Rig, daemon: bool) -> Check {
    let (gpio, reader) = (&config.hardware.gpio, &config.hardware.reader);
    let report = match rig {
        Rig::Simulated(why) => {
            return Check::skip("gpio", format!("simulated outputs and inputs ({why})"))
        }
        Rig::Bench(spec) => spec.check_gpio(gpio, reader),
        Rig::Pi => {
            let (g, r) = (gpio.clone(), reader.clone());
            match tokio::task::spawn_blocking(move || facereko_hardware::pi::check_gpio(&g, &r))
                .await
            {
                Ok(r) => r,
                Err(e) => return Check::fail("gpio", e.to_string(), "run doctor again"),
            }
        }
    };
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                "gpio",
                e.to_string(),
                "check hardware.gpio.chip and the line numbers, that /dev/gpiochip* exists and the user is \
                 in the `gpio` group",
            )
        }
    };
    let ours = |who: &str| who.starts_with("facereko");
    let held: Vec<String> = report
        .lines
        .iter()
        .filter_map(|l| {
            let who = l.used_by.as_deref()?;
            (!(daemon && ours(who))).then(|| format!("{} ({}) is held by {who}", l.name, l.key))
        })
        .collect();
    let lines: Vec<String> = report
        .lines
        .iter()
        .map(|l| format!("{} {}", l.key, l.name))
        .collect();
    if !held.is_empty() {
        return Check::fail(
            "gpio",
            format!("{} ({}): {}", report.label, report.chip.display(), held.join("; ")),
            "stop the program holding the line (see `gpioinfo`) or choose another line in [hardware.gpio]",
        );
    }
    Check::ok(
        "gpio",
        format!(
            "{} ({}): {} {}",
            report.label,
            report.chip.display(),
            lines.join(", "),
            if daemon {
                "free or held by the daemon"
            } else {
                "free"
            }
        ),
    )
}

/// A TCP connection to `host:port` within 5 s.
async fn reach(host: &str, port: u16) -> Result<Duration, String> {
    let started = Instant::now();
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// `doctor`: with the Rekognition engine, can this door reach the collection it searches?
async fn check_collection(config: &Config) -> Check {
    if config.vision.engine != EngineKind::Rekognition {
        return Check::skip("rekognition", "not used (vision.engine = local)");
    }
    #[cfg(feature = "aws")]
    {
        let name = &config.aws.collection;
        let client = match facereko_rekognition::client::CollectionClient::new(&config.aws).await {
            Ok(c) => c,
            Err(e) => {
                return Check::fail(
                    "rekognition",
                    e.to_string(),
                    "set [aws] region and credentials (or run `aws configure`)",
                )
            }
        };
        match client.list().await {
            Ok(list) if list.iter().any(|(id, _)| id == name) => match client.faces(name).await {
                Ok(faces) => Check::ok(
                    "rekognition",
                    format!("collection {name} reachable, {} faces indexed", faces.len()),
                ),
                Err(e) => Check::fail(
                    "rekognition",
                    e.to_string(),
                    "check the AWS key's permissions",
                ),
            },
            Ok(_) => Check::fail(
                "rekognition",
                format!("collection {name} does not exist"),
                format!("run `facereko collection create {name}` and `facereko collection sync`"),
            ),
            Err(e) => Check::fail(
                "rekognition",
                e.to_string(),
                "check the network, [aws] region and credentials",
            ),
        }
    }
    #[cfg(not(feature = "aws"))]
    Check::fail(
        "rekognition",
        crate::rekognition::NOT_BUILT,
        "build with `--features aws`",
    )
}

async fn check_mqtt(config: &Config) -> Check {
    let broker = match config.mqtt.broker() {
        Ok(Some(b)) => b,
        Ok(None) => return Check::skip("mqtt", "not configured (mqtt.url is not set)"),
        Err(e) => return Check::fail("mqtt", e.to_string(), "correct mqtt.url"),
    };
    match reach(&broker.host, broker.port).await {
        Ok(t) => Check::ok(
            "mqtt",
            format!(
                "broker {}:{} reachable over TCP in {} ms (TLS and login are checked by `serve`)",
                broker.host,
                broker.port,
                t.as_millis()
            ),
        ),
        Err(e) => Check::fail(
            "mqtt",
            format!("broker {}:{} unreachable: {e}", broker.host, broker.port),
            format!(
                "check mqtt.url, that the broker runs and that port {} is open between this door and it; \
                 events wait in the outbox meanwhile",
                broker.port
            ),
        ),
    }
}

async fn check_smtp(config: &Config) -> Check {
    let email = &config.email;
    let Some(host) = email
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    else {
        return Check::skip("smtp", "not configured (email.host is not set)");
    };
    let port = email.port();
    match reach(host, port).await {
        Ok(t) => Check::ok(
            "smtp",
            format!(
                "mail server {host}:{port} reachable over TCP in {} ms",
                t.as_millis()
            ),
        ),
        Err(e) => Check::fail(
            "smtp",
            format!("mail server {host}:{port} unreachable: {e}"),
            format!("check email.host and email.port, and that port {port} is open from this door"),
        ),
    }
}

async fn check_clock() -> Check {
    let now = chrono::Utc::now();
    let year = chrono::Datelike::year(&now);
    if !(2025..2100).contains(&year) {
        return Check::fail(
            "clock",
            format!("the system clock says {} (not plausible)", now.to_rfc3339()),
            "set the time: `sudo timedatectl set-ntp true` with network access, or fit an RTC module",
        );
    }
    let ntp = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::process::Command::new("timedatectl")
            .args(["show", "-p", "NTPSynchronized", "--value"])
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let shown = now.format("%Y-%m-%d %H:%M:%S UTC");
    match ntp {
        Ok(Ok(out)) if out.status.success() => match String::from_utf8_lossy(&out.stdout).trim() {
            "yes" => Check::ok("clock", format!("{shown}, NTP synchronised")),
            other => Check::fail(
                "clock",
                format!("{shown}, not NTP synchronised (NTPSynchronized={other})"),
                "`sudo timedatectl set-ntp true` and allow NTP (UDP 123) from this door; logs and \
                     schedules depend on the time",
            )
            .optional(),
        },
        _ => Check::ok(
            "clock",
            format!("{shown} (plausible; NTP synchronisation unknown: timedatectl not available)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_size_reads_jpeg_and_png_headers() {
        let encode = |w, h, format| {
            let mut out = std::io::Cursor::new(Vec::new());
            image::RgbImage::new(w, h)
                .write_to(&mut out, format)
                .unwrap();
            out.into_inner()
        };
        let jpeg = encode(640, 480, image::ImageFormat::Jpeg);
        assert_eq!(image_size(&jpeg), Some((640, 480)));
        let png = encode(1280, 720, image::ImageFormat::Png);
        assert_eq!(image_size(&png), Some((1280, 720)));
        assert_eq!(image_size(&jpeg[..jpeg.len().min(20)]), None);
        assert_eq!(image_size(b"garbage"), None);
    }

    #[test]
    fn an_optional_failure_is_a_warning() {
        let c = Check::fail("face", "none", "stand there").optional();
        assert_eq!((c.status, c.required), (Status::Warn, false));
        assert!(c.line().starts_with("WARN  face"), "{}", c.line());
        assert!(c.line().contains("fix: stand there"));
    }
}
