//! `card read`: the next tap, from the running daemon (which still decides it) or from the reader itself,
//! with what the store knows about the card.

use super::*;

#[derive(Debug, Subcommand)]
pub enum CardCommand {
    /// Wait for a tap and show the card: UID, ATQA/SAK, card type and whether it belongs to someone.
    Read(CardReadArgs),
}

#[derive(Debug, Args)]
pub struct CardReadArgs {
    /// Keep printing taps until Ctrl-C (or until --timeout has passed).
    #[arg(long)]
    watch: bool,
    /// One JSON object per card (one per line with --watch).
    #[arg(long)]
    json: bool,
    /// Seconds to wait for a card (default 30); with --watch, how long to watch (default: until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

/// Where taps come from.
enum TapSource {
    /// The running daemon hands over its next tap.
    Daemon(PathBuf),
    /// A reader opened here.
    Reader(PolledReader),
}

/// Ask in slices: the daemon drops a wait as soon as its client's connection closes, and short requests
/// also bound a wait that a daemon of an older version would keep after a Ctrl-C.
const DAEMON_SLICE: Duration = Duration::from_secs(5);

impl TapSource {
    /// The next tap, or `None` once `deadline` has passed.
    async fn next(&mut self, deadline: Option<Instant>) -> Result<Option<CardTap>> {
        match self {
            TapSource::Reader(reader) => {
                let tap = match deadline {
                    None => reader.next_card().await,
                    Some(d) => match tokio::time::timeout_at(d.into(), reader.next_card()).await {
                        Ok(t) => t,
                        Err(_) => {
                            let status = reader.status();
                            if !status.is_ok() {
                                bail!("no card read: the card reader is not working ({status})");
                            }
                            return Ok(None);
                        }
                    },
                };
                Ok(Some(tap.context("reading the card reader")?))
            }
            TapSource::Daemon(data_dir) => loop {
                let slice = match deadline {
                    None => DAEMON_SLICE,
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Ok(None);
                        }
                        left.min(DAEMON_SLICE)
                    }
                };
                let req = Request::NextCard {
                    timeout_ms: slice.as_millis() as u64,
                };
                match control::request(data_dir, &req).await {
                    Ok(reply) => {
                        let d = &reply.data;
                        let uid: CardUid = d["uid"]
                            .as_str()
                            .context("the daemon's reply has no uid")?
                            .parse()
                            .context("the daemon sent a bad uid")?;
                        let mut tap = CardTap::new(uid);
                        tap.atqa = d["atqa"].as_u64().and_then(|v| u16::try_from(v).ok());
                        tap.sak = d["sak"].as_u64().and_then(|v| u8::try_from(v).ok());
                        return Ok(Some(tap));
                    }
                    Err(e) if e.to_string().starts_with("no card was presented") => continue,
                    Err(e) => return Err(e.context("asking the running daemon for the next card")),
                }
            },
        }
    }
}

/// One card as `card read --json` prints it.
#[derive(Debug, Serialize)]
struct CardReport {
    uid: String,
    uid_bytes: usize,
    atqa: Option<u16>,
    sak: Option<u8>,
    card_type: Option<String>,
    enrolled: bool,
    person: Option<PersonReport>,
    /// Set when the store could not be asked.
    store_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct PersonReport {
    id: i64,
    name: String,
    active: bool,
    card_active: bool,
}

async fn card_report(tap: &CardTap, store: Option<&Store>, store_err: Option<&str>) -> CardReport {
    let mut report = CardReport {
        uid: tap.uid.to_string(),
        uid_bytes: tap.uid.as_bytes().len(),
        atqa: tap.atqa,
        sak: tap.sak,
        card_type: tap.card_type().map(|t| t.to_string()),
        enrolled: false,
        person: None,
        store_error: store_err.map(str::to_string),
    };
    if let Some(store) = store {
        match store.lookup_card(&tap.uid).await {
            Ok(Some((card, person))) => {
                report.enrolled = true;
                report.person = Some(PersonReport {
                    id: person.id.0,
                    name: person.name,
                    active: person.active,
                    card_active: card.active,
                });
            }
            Ok(None) => {}
            Err(e) => report.store_error = Some(e.to_string()),
        }
    }
    report
}

fn print_card(r: &CardReport) {
    println!("card {}  ({}-byte UID)", r.uid, r.uid_bytes);
    match (r.atqa, r.sak) {
        (Some(atqa), Some(sak)) => println!(
            "  ATQA {atqa:#06x}, SAK {sak:#04x}: {}",
            r.card_type.as_deref().unwrap_or("unknown card type")
        ),
        _ => println!("  ATQA/SAK: not reported (simulated reader)"),
    }
    match (&r.person, &r.store_error) {
        (Some(p), _) => {
            let mut notes = Vec::new();
            if !p.active {
                notes.push("person disabled");
            }
            if !p.card_active {
                notes.push("card disabled");
            }
            println!(
                "  enrolled: {} (id {}){}",
                p.name,
                p.id,
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(", {}", notes.join(", "))
                }
            );
        }
        (None, Some(e)) => println!("  enrolled: unknown (database: {e})"),
        (None, None) => println!(
            "  not enrolled: `facereko people add \"NAME\" --card {}` or `facereko people add-card \"NAME\" {}`",
            r.uid, r.uid
        ),
    }
}

pub async fn card(data_dir: &Path, config_file: Option<&Path>, cmd: CardCommand) -> Result<()> {
    let CardCommand::Read(a) = cmd;
    let (config, _) = Config::load(config_file, data_dir)?;
    let mut source = if daemon_status(data_dir).await.is_some() {
        eprintln!("asking the running daemon for the next tap (it owns the reader)");
        TapSource::Daemon(data_dir.to_path_buf())
    } else {
        match select(&config.hardware, false)? {
            Rig::Pi => TapSource::Reader(
                facereko_hardware::pi::open_card_reader(
                    &config.hardware.reader,
                    &config.hardware.gpio,
                )
                .context("opening the card reader")?,
            ),
            Rig::Bench(spec) => TapSource::Reader(
                spec.open_card_reader(&config.hardware.reader)
                    .context("opening the bench card reader")?,
            ),
            Rig::Simulated(why) => bail!(
                "no card reader here ({why}). The simulated reader lives in the daemon: start \
                 `facereko --data-dir {dir} serve --simulate`, run `card read` again and tap with \
                 `facereko --data-dir {dir} sim tap 04:A2:2B:19`",
                dir = data_dir.display()
            ),
        }
    };
    let url = config.database_url(data_dir);
    let (store, store_err) = match tokio::time::timeout(
        Duration::from_secs(15),
        Store::open_with(&url, data_dir, &(&config.store).into()),
    )
    .await
    {
        Ok(Ok(s)) => (Some(s), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (None, Some("no answer within 15 s".to_string())),
    };
    let timeout = match (a.timeout, a.watch) {
        (Some(s), _) => Some(Duration::from_secs(s)),
        (None, false) => Some(Duration::from_secs(30)),
        (None, true) => None,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    eprintln!(
        "waiting for a card{} (Ctrl-C to stop)",
        timeout.map_or(String::new(), |t| format!(" for {} s", t.as_secs()))
    );
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut seen = 0usize;
    loop {
        let tap = tokio::select! {
            t = source.next(deadline) => t?,
            _ = int.recv() => break,
            _ = term.recv() => break,
        };
        let Some(tap) = tap else {
            if a.watch {
                break;
            }
            bail!(
                "no card within {} s: hold the card flat on the reader (within 2 cm); `doctor` checks \
                 the reader",
                timeout.unwrap_or_default().as_secs()
            );
        };
        seen += 1;
        let report = card_report(&tap, store.as_ref(), store_err.as_deref()).await;
        if a.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            if seen > 1 {
                println!();
            }
            print_card(&report);
        }
        if !a.watch {
            break;
        }
    }
    if a.watch {
        eprintln!("{seen} card(s) read");
    }
    Ok(())
}
