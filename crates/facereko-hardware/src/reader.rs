//! A [`CardReader`] that polls a blocking RFID chip on a thread of its own, so SPI traffic never stalls the
//! async runtime. The thread re-initialises a reader that stops answering and publishes the reader's health
//! as a [`ReaderStatus`] (shown on the home page and by `doctor`).
//!
//! Card faults (a card that left mid-read, a CRC error, two cards at once) are logged and polling goes on;
//! reader faults (SPI errors, a chip that stopped answering or lost its configuration) flip the status to
//! [`ReaderStatus::Fault`] and the thread re-initialises the chip with a growing pause until it answers.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiDevice;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::mfrc522::{ChipInfo, Fault, Mfrc522};
use crate::{CardReader, CardTap, Error, Result};

/// A blocking RFID chip as the poller sees it. [`Mfrc522`] is the real one; tests use scripted fakes.
pub trait RfidChip: Send + 'static {
    /// Resets and configures the chip.
    fn init(&mut self) -> Result<ChipInfo, Fault>;
    /// One poll: `Ok(None)` when no (new) card is present.
    fn poll(&mut self) -> Result<Option<CardTap>, Fault>;
    /// A cheap check that the chip still answers and holds its configuration.
    fn check(&mut self) -> Result<(), Fault>;
}

impl<SPI, D, RST> RfidChip for Mfrc522<SPI, D, RST>
where
    SPI: SpiDevice + Send + 'static,
    D: DelayNs + Send + 'static,
    RST: OutputPin + Send + 'static,
{
    fn init(&mut self) -> Result<ChipInfo, Fault> {
        Mfrc522::init(self)
    }
    fn poll(&mut self) -> Result<Option<CardTap>, Fault> {
        self.read_card()
    }
    fn check(&mut self) -> Result<(), Fault> {
        Mfrc522::check(self)
    }
}

/// The reader's health, for the home page and `doctor`. As JSON: `{"state": "ok", "chip": "...",
/// "since": <unix seconds>}`, `{"state": "fault", "reason": "...", "since": ..., "retries": 3}`,
/// `{"state": "starting"}` or `{"state": "stopped"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReaderStatus {
    /// The poller has not finished its first initialisation yet.
    Starting,
    Ok {
        /// e.g. `MFRC522 v2.0 (VersionReg 0x92)`.
        chip: String,
        #[serde(serialize_with = "unix_seconds")]
        since: SystemTime,
    },
    Fault {
        reason: String,
        #[serde(serialize_with = "unix_seconds")]
        since: SystemTime,
        /// Re-initialisation attempts since the fault began.
        retries: u32,
    },
    /// The poller has stopped (the reader was dropped).
    Stopped,
}

fn unix_seconds<S: serde::Serializer>(
    t: &SystemTime,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    s.serialize_u64(secs)
}

impl ReaderStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, ReaderStatus::Ok { .. })
    }
}

impl std::fmt::Display for ReaderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReaderStatus::Starting => f.write_str("starting"),
            ReaderStatus::Ok { chip, .. } => write!(f, "ok: {chip}"),
            ReaderStatus::Fault {
                reason, retries, ..
            } => write!(f, "fault: {reason} ({retries} retries)"),
            ReaderStatus::Stopped => f.write_str("stopped"),
        }
    }
}

/// A cloneable view of the reader's status (the web app holds one).
#[derive(Clone, Debug)]
pub struct ReaderStatusHandle(Arc<Mutex<ReaderStatus>>);

impl ReaderStatusHandle {
    fn new(status: ReaderStatus) -> Self {
        Self(Arc::new(Mutex::new(status)))
    }

    pub fn get(&self) -> ReaderStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, status: ReaderStatus) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }
}

/// How the poller paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollOptions {
    /// Pause between polls.
    pub interval: Duration,
    /// How often a quiet reader is checked ([`RfidChip::check`]).
    pub check_every: Duration,
    /// First pause before re-initialising a faulty reader; doubles up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            check_every: Duration::from_secs(5),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(30),
        }
    }
}

/// Taps buffered between the poller and the controller; a full buffer drops taps (logged).
const TAP_QUEUE: usize = 16;

/// The polling [`CardReader`]. Dropping it stops the thread and releases the chip.
#[derive(Debug)]
pub struct PolledReader {
    rx: mpsc::Receiver<CardTap>,
    status: ReaderStatusHandle,
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl PolledReader {
    /// Starts polling `chip` on a new thread named `facereko-rfid`.
    pub fn spawn<C: RfidChip>(chip: C, options: PollOptions) -> Result<Self> {
        let (tx, rx) = mpsc::channel(TAP_QUEUE);
        let (stop_tx, stop_rx) = std_mpsc::channel();
        let status = ReaderStatusHandle::new(ReaderStatus::Starting);
        let thread_status = status.clone();
        let thread = thread::Builder::new()
            .name("facereko-rfid".into())
            .spawn(move || poll_loop(chip, options, tx, stop_rx, thread_status))?;
        Ok(Self {
            rx,
            status,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The reader's status now.
    pub fn status(&self) -> ReaderStatus {
        self.status.get()
    }

    /// A handle that keeps reporting the status after the reader moved into the controller.
    pub fn status_handle(&self) -> ReaderStatusHandle {
        self.status.clone()
    }
}

impl Drop for PolledReader {
    fn drop(&mut self) {
        // Closing the stop channel wakes the thread from its pause; it finishes at most one poll (bounded
        // by the driver's waits, well under 100 ms) and releases the SPI device.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl CardReader for PolledReader {
    async fn next_card(&mut self) -> Result<CardTap> {
        self.rx.recv().await.ok_or(Error::Closed("card reader"))
    }
}

/// Sleeps `d` unless told to stop; true when the poller must stop.
fn pause(stop: &std_mpsc::Receiver<()>, d: Duration) -> bool {
    !matches!(
        stop.recv_timeout(d),
        Err(std_mpsc::RecvTimeoutError::Timeout)
    )
}

fn poll_loop<C: RfidChip>(
    mut chip: C,
    opts: PollOptions,
    tx: mpsc::Sender<CardTap>,
    stop: std_mpsc::Receiver<()>,
    status: ReaderStatusHandle,
) {
    let mut ready = false;
    let mut retries: u32 = 0;
    let mut fault_since = SystemTime::now();
    let mut retry_delay = opts.retry_delay;
    let mut last_check = Instant::now();

    let mut fail = |status: &ReaderStatusHandle, reason: &Fault, retries: &mut u32| {
        if *retries == 0 {
            fault_since = SystemTime::now();
            tracing::error!(target: "facereko::reader", "card reader fault: {reason}");
        } else {
            tracing::debug!(target: "facereko::reader", "card reader still faulty: {reason}");
        }
        status.set(ReaderStatus::Fault {
            reason: reason.to_string(),
            since: fault_since,
            retries: *retries,
        });
        *retries += 1;
    };

    loop {
        if !ready {
            match chip.init() {
                Ok(info) => {
                    if retries > 0 {
                        tracing::info!(target: "facereko::reader", "card reader back: {info}");
                    } else {
                        tracing::info!(target: "facereko::reader", "card reader ready: {info}");
                    }
                    status.set(ReaderStatus::Ok {
                        chip: info.to_string(),
                        since: SystemTime::now(),
                    });
                    ready = true;
                    retries = 0;
                    retry_delay = opts.retry_delay;
                    last_check = Instant::now();
                }
                Err(e) => {
                    fail(&status, &e, &mut retries);
                    if pause(&stop, retry_delay) {
                        break;
                    }
                    retry_delay = (retry_delay * 2).min(opts.max_retry_delay);
                    continue;
                }
            }
        }

        match chip.poll() {
            Ok(Some(tap)) => match tx.try_send(tap) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(tap)) => {
                    tracing::warn!(target: "facereko::reader", "tap of {} dropped: nobody is reading taps", tap.uid);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            },
            Ok(None) => {}
            Err(e) if e.is_card_fault() => {
                tracing::info!(target: "facereko::reader", "card not read: {e}");
            }
            Err(e) => {
                fail(&status, &e, &mut retries);
                ready = false;
                if pause(&stop, retry_delay) {
                    break;
                }
                continue;
            }
        }

        if last_check.elapsed() >= opts.check_every {
            last_check = Instant::now();
            if let Err(e) = chip.check() {
                fail(&status, &e, &mut retries);
                ready = false;
            }
        }

        if tx.is_closed() || pause(&stop, opts.interval) {
            break;
        }
    }
    status.set(ReaderStatus::Stopped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A chip that plays a script of results; once the script is exhausted it reports no card.
    struct FakeChip {
        inits: VecDeque<Result<ChipInfo, Fault>>,
        polls: VecDeque<Result<Option<CardTap>, Fault>>,
        checks: VecDeque<Result<(), Fault>>,
        init_calls: Arc<Mutex<u32>>,
    }

    impl RfidChip for FakeChip {
        fn init(&mut self) -> Result<ChipInfo, Fault> {
            *self.init_calls.lock().unwrap() += 1;
            self.inits
                .pop_front()
                .unwrap_or(Ok(ChipInfo { version: 0x92 }))
        }
        fn poll(&mut self) -> Result<Option<CardTap>, Fault> {
            self.polls.pop_front().unwrap_or(Ok(None))
        }
        fn check(&mut self) -> Result<(), Fault> {
            self.checks.pop_front().unwrap_or(Ok(()))
        }
    }

    fn fast() -> PollOptions {
        PollOptions {
            interval: Duration::from_millis(1),
            check_every: Duration::from_secs(3600),
            retry_delay: Duration::from_millis(1),
            max_retry_delay: Duration::from_millis(4),
        }
    }

    fn tap(uid: &str) -> CardTap {
        CardTap {
            uid: uid.parse().unwrap(),
            atqa: Some(0x0004),
            sak: Some(0x08),
        }
    }

    async fn wait_for(reader: &PolledReader, want: impl Fn(&ReaderStatus) -> bool) -> ReaderStatus {
        for _ in 0..2000 {
            let s = reader.status();
            if want(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("status never matched; last: {}", reader.status());
    }

    #[tokio::test]
    async fn taps_arrive_and_card_faults_do_not_trip_the_reader() {
        let calls = Arc::new(Mutex::new(0));
        let chip = FakeChip {
            inits: VecDeque::new(),
            polls: VecDeque::from(vec![
                Ok(None),
                Err(Fault::CardLost { step: "select" }),
                Ok(Some(tap("04:A2:2B:19"))),
                Err(Fault::Crc { step: "SAK" }),
                Ok(Some(tap("04:11:22:33:44:55:66"))),
            ]),
            checks: VecDeque::new(),
            init_calls: calls.clone(),
        };
        let mut reader = PolledReader::spawn(chip, fast()).unwrap();
        assert_eq!(
            reader.next_card().await.unwrap().uid.to_string(),
            "04:A2:2B:19"
        );
        assert_eq!(
            reader.next_card().await.unwrap().uid.to_string(),
            "04:11:22:33:44:55:66"
        );
        assert!(reader.status().is_ok(), "{}", reader.status());
        assert_eq!(
            *calls.lock().unwrap(),
            1,
            "card faults must not re-initialise"
        );
    }

    #[tokio::test]
    async fn a_reader_that_stops_answering_is_reported_and_reinitialised() {
        let calls = Arc::new(Mutex::new(0));
        let dead = Fault::NotAnswering {
            register: "VersionReg",
            value: 0x00,
        };
        let chip = FakeChip {
            // Answers at start, then the first poll stalls, and two re-inits fail before it comes back.
            inits: VecDeque::from(vec![
                Ok(ChipInfo { version: 0x92 }),
                Err(dead.clone()),
                Err(dead.clone()),
                Ok(ChipInfo { version: 0x92 }),
            ]),
            polls: VecDeque::from(vec![
                Err(Fault::Stalled {
                    doing: "REQA",
                    register: "ComIrqReg",
                }),
                Ok(None),
                Ok(None),
                Ok(Some(tap("04:A2:2B:19"))),
            ]),
            checks: VecDeque::new(),
            init_calls: calls.clone(),
        };
        let mut reader = PolledReader::spawn(chip, fast()).unwrap();
        let handle = reader.status_handle();
        assert_eq!(
            reader.next_card().await.unwrap().uid.to_string(),
            "04:A2:2B:19"
        );
        assert_eq!(*calls.lock().unwrap(), 4);
        assert!(handle.get().is_ok());
        drop(reader);
        assert_eq!(handle.get(), ReaderStatus::Stopped);
    }

    #[tokio::test]
    async fn a_fault_names_the_register_while_it_lasts() {
        let dead = Fault::NotAnswering {
            register: "VersionReg",
            value: 0x00,
        };
        let chip = FakeChip {
            inits: (0..10_000).map(|_| Err(dead.clone())).collect(),
            polls: VecDeque::new(),
            checks: VecDeque::new(),
            init_calls: Arc::new(Mutex::new(0)),
        };
        let reader = PolledReader::spawn(chip, fast()).unwrap();
        let s = wait_for(
            &reader,
            |s| matches!(s, ReaderStatus::Fault { retries, .. } if *retries >= 2),
        )
        .await;
        let text = s.to_string();
        assert!(text.contains("VersionReg read 0x00"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["state"], "fault");
        assert!(json["since"].as_u64().unwrap() > 1_600_000_000, "{json}");
    }

    #[tokio::test]
    async fn a_failed_health_check_reinitialises() {
        let calls = Arc::new(Mutex::new(0));
        let chip = FakeChip {
            inits: VecDeque::new(),
            polls: VecDeque::new(),
            checks: VecDeque::from(vec![Err(Fault::LostConfiguration {
                register: "TModeReg",
                value: 0,
            })]),
            init_calls: calls.clone(),
        };
        let mut opts = fast();
        opts.check_every = Duration::ZERO;
        let reader = PolledReader::spawn(chip, opts).unwrap();
        for _ in 0..2000 {
            if *calls.lock().unwrap() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(*calls.lock().unwrap() >= 2);
        wait_for(&reader, ReaderStatus::is_ok).await;
    }
}
