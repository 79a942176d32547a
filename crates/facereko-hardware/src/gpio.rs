//! GPIO outputs (LEDs, buzzer, lock relay) and inputs (door contact, exit button) over any line backend:
//! the Linux GPIO character device on a Pi ([`crate::pi`]), recording fakes in tests.
//!
//! Polarity is applied here, not by the kernel: the backend only ever sees physical levels, so a test of
//! the recording fake checks exactly what a multimeter on the pin would show. Outputs start in the safe
//! state (everything inactive, so the relay is locked) and return to it when dropped.

use std::collections::HashMap;
use std::io;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{Error, InputEvent, Inputs, Output, Outputs, Result};

/// Where one signal is wired: a line offset on the GPIO chip (the BCM GPIO number on a Pi) and whether
/// "active" is the low level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineMap {
    pub line: u32,
    pub active_low: bool,
}

impl LineMap {
    pub fn active_high(line: u32) -> Self {
        Self {
            line,
            active_low: false,
        }
    }

    pub fn active_low(line: u32) -> Self {
        Self {
            line,
            active_low: true,
        }
    }

    /// The physical level for an active/inactive state.
    pub fn level(self, active: bool) -> bool {
        active != self.active_low
    }
}

/// Which line drives which output; `None` means not wired (setting it does nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputMap {
    pub red: Option<LineMap>,
    pub green: Option<LineMap>,
    pub buzzer: Option<LineMap>,
    pub relay: Option<LineMap>,
}

impl OutputMap {
    pub fn get(&self, output: Output) -> Option<LineMap> {
        match output {
            Output::Red => self.red,
            Output::Green => self.green,
            Output::Buzzer => self.buzzer,
            Output::Relay => self.relay,
        }
    }

    /// Every wired line with the physical level of its inactive (safe) state.
    pub fn safe_levels(&self) -> Vec<(u32, bool)> {
        Output::ALL
            .iter()
            .filter_map(|&o| self.get(o))
            .map(|m| (m.line, m.level(false)))
            .collect()
    }
}

/// A set of output lines that can be driven to physical levels.
pub trait OutputLines: Send {
    fn set_line(&mut self, line: u32, high: bool) -> io::Result<()>;
}

/// [`Outputs`] on GPIO lines.
pub struct GpioOutputs<L: OutputLines> {
    lines: Mutex<L>,
    map: OutputMap,
}

impl<L: OutputLines> std::fmt::Debug for GpioOutputs<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpioOutputs")
            .field("map", &self.map)
            .finish()
    }
}

impl<L: OutputLines> GpioOutputs<L> {
    /// Takes the lines and drives every output inactive: relay locked, buzzer silent, LEDs off.
    pub fn new(lines: L, map: OutputMap) -> Result<Self> {
        let me = Self {
            lines: Mutex::new(lines),
            map,
        };
        let mut first = Ok(());
        for o in Output::ALL {
            if let Err(e) = me.set(o, false) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first.map(|()| me)
    }

    pub fn map(&self) -> &OutputMap {
        &self.map
    }

    fn lines(&self) -> Result<MutexGuard<'_, L>> {
        // Never block for good: the panic hook locks the door down, possibly on the very thread that
        // panicked while holding this lock. Another thread holds it for microseconds at most, so a bounded
        // wait tells the two cases apart. A poisoned lock is fine: setting a line is never half-done.
        for _ in 0..200 {
            match self.lines.try_lock() {
                Ok(g) => return Ok(g),
                Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {
                    thread::sleep(Duration::from_micros(500))
                }
            }
        }
        Err(Error::Io(io::Error::other(
            "GPIO outputs busy for 100 ms (held by a panicking thread?)",
        )))
    }
}

impl<L: OutputLines> Outputs for GpioOutputs<L> {
    fn set(&self, output: Output, active: bool) -> Result<()> {
        let Some(m) = self.map.get(output) else {
            return Ok(());
        };
        self.lines()?
            .set_line(m.line, m.level(active))
            .map_err(|e| Error::Output {
                output,
                reason: format!("GPIO line {}: {e}", m.line),
            })
    }
}

impl<L: OutputLines> Drop for GpioOutputs<L> {
    fn drop(&mut self) {
        if let Err(e) = self.lock_down() {
            tracing::error!(target: "facereko::gpio", "could not drive the outputs safe on release: {e}");
        }
    }
}

/// Recording output lines for tests and `selftest` dry runs: remembers every level written, in order.
/// Clones share the record.
#[derive(Clone, Debug, Default)]
pub struct RecordingLines {
    state: Arc<Mutex<RecordingState>>,
}

#[derive(Debug, Default)]
struct RecordingState {
    levels: HashMap<u32, bool>,
    log: Vec<(u32, bool)>,
    failing: Vec<u32>,
}

impl RecordingLines {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, RecordingState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The physical level last written to `line`.
    pub fn level(&self, line: u32) -> Option<bool> {
        self.state().levels.get(&line).copied()
    }

    /// Every write, oldest first, as `(line, high)`.
    pub fn log(&self) -> Vec<(u32, bool)> {
        self.state().log.clone()
    }

    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    /// Makes writes to `line` fail from now on (a line claimed by someone else, a dead chip).
    pub fn fail_line(&self, line: u32) {
        self.state().failing.push(line);
    }
}

impl OutputLines for RecordingLines {
    fn set_line(&mut self, line: u32, high: bool) -> io::Result<()> {
        let mut st = self.state();
        if st.failing.contains(&line) {
            return Err(io::Error::other("line unavailable"));
        }
        st.levels.insert(line, high);
        st.log.push((line, high));
        Ok(())
    }
}

// ---- inputs ------------------------------------------------------------------------------------------

/// Input lines with edge detection.
pub trait InputLines: Send + 'static {
    /// Waits up to `timeout` for edges on any line and returns the lines that saw one (empty on timeout).
    fn wait_edges(&mut self, timeout: Duration) -> io::Result<Vec<u32>>;
    /// The physical level of a line now.
    fn is_high(&mut self, line: u32) -> io::Result<bool>;
}

/// Which line is the door contact (active = door open) and which the exit button (active = pressed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputMap {
    pub door_contact: Option<LineMap>,
    pub exit_button: Option<LineMap>,
}

/// Debounce by quiet time: after the last edge, the line must stay quiet for `period`; then its level is
/// sampled and, if it differs from the last stable level, that is one change. Bounces of any length
/// shorter than `period` therefore give no event, and a press always gives exactly one.
#[derive(Clone, Copy, Debug)]
pub struct Debouncer {
    stable: bool,
    last_edge: Option<Instant>,
    period: Duration,
}

impl Debouncer {
    pub fn new(initial: bool, period: Duration) -> Self {
        Self {
            stable: initial,
            last_edge: None,
            period,
        }
    }

    pub fn stable(&self) -> bool {
        self.stable
    }

    /// An edge was seen at `now`: restart the quiet time.
    pub fn edge(&mut self, now: Instant) {
        self.last_edge = Some(now);
    }

    /// When the line should next be sampled, if an edge is pending.
    pub fn due(&self) -> Option<Instant> {
        self.last_edge.map(|t| t + self.period)
    }

    /// Feeds the sampled level once [`due`](Self::due) has passed; `Some(level)` when that is a change.
    pub fn settle(&mut self, now: Instant, level: bool) -> Option<bool> {
        match self.due() {
            Some(due) if now >= due => {
                self.last_edge = None;
                if level != self.stable {
                    self.stable = level;
                    Some(level)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// [`Inputs`] on GPIO lines, debounced on a thread of its own. Dropping it stops the thread.
#[derive(Debug)]
pub struct GpioInputs {
    rx: Option<mpsc::Receiver<Result<InputEvent>>>,
    stop: Option<std_mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Door,
    Exit,
}

/// The longest the input thread blocks before checking whether it should stop.
const INPUT_TICK: Duration = Duration::from_millis(200);

impl GpioInputs {
    /// Starts watching the mapped lines. With no line mapped, [`Inputs::next_event`] simply never returns.
    pub fn spawn<L: InputLines>(mut lines: L, map: InputMap, debounce: Duration) -> Result<Self> {
        let mut watched = Vec::new();
        for (kind, m) in [
            (Kind::Door, map.door_contact),
            (Kind::Exit, map.exit_button),
        ] {
            if let Some(m) = m {
                let active = lines
                    .is_high(m.line)
                    .map_err(|e| Error::Inputs(format!("reading GPIO line {}: {e}", m.line)))?
                    != m.active_low;
                if matches!(kind, Kind::Door) {
                    tracing::info!(target: "facereko::gpio", "door is {} at start", if active { "open" } else { "closed" });
                }
                watched.push((kind, m, Debouncer::new(active, debounce)));
            }
        }
        if watched.is_empty() {
            return Ok(Self {
                rx: None,
                stop: None,
                thread: None,
            });
        }
        let (tx, rx) = mpsc::channel(64);
        let (stop_tx, stop_rx) = std_mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("facereko-inputs".into())
            .spawn(move || input_loop(lines, watched, tx, stop_rx))?;
        Ok(Self {
            rx: Some(rx),
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for GpioInputs {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[async_trait]
impl Inputs for GpioInputs {
    async fn next_event(&mut self) -> Result<InputEvent> {
        match self.rx.as_mut() {
            Some(rx) => rx.recv().await.unwrap_or(Err(Error::Closed("GPIO inputs"))),
            None => std::future::pending().await,
        }
    }
}

fn input_loop<L: InputLines>(
    mut lines: L,
    mut watched: Vec<(Kind, LineMap, Debouncer)>,
    tx: mpsc::Sender<Result<InputEvent>>,
    stop: std_mpsc::Receiver<()>,
) {
    loop {
        if !matches!(stop.try_recv(), Err(std_mpsc::TryRecvError::Empty)) || tx.is_closed() {
            return;
        }
        let now = Instant::now();
        let timeout = watched
            .iter()
            .filter_map(|(_, _, d)| d.due())
            .min()
            .map(|due| due.saturating_duration_since(now))
            .unwrap_or(INPUT_TICK)
            .min(INPUT_TICK);
        match lines.wait_edges(timeout) {
            Ok(edged) => {
                let now = Instant::now();
                for line in edged {
                    for (_, m, d) in watched.iter_mut() {
                        if m.line == line {
                            d.edge(now);
                        }
                    }
                }
            }
            Err(e) => {
                if tx
                    .blocking_send(Err(Error::Inputs(format!("waiting for GPIO edges: {e}"))))
                    .is_err()
                {
                    return;
                }
                // Do not spin on a persistent error; the stop channel still ends the pause early.
                if !matches!(
                    stop.recv_timeout(Duration::from_secs(1)),
                    Err(std_mpsc::RecvTimeoutError::Timeout)
                ) {
                    return;
                }
                continue;
            }
        }
        let now = Instant::now();
        for (kind, m, d) in watched.iter_mut() {
            if d.due().is_some_and(|due| now >= due) {
                let level = match lines.is_high(m.line) {
                    Ok(high) => high != m.active_low,
                    Err(e) => {
                        let msg = format!("reading GPIO line {}: {e}", m.line);
                        if tx.blocking_send(Err(Error::Inputs(msg))).is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let event = match (d.settle(now, level), *kind) {
                    (Some(true), Kind::Door) => Some(InputEvent::DoorOpened),
                    (Some(false), Kind::Door) => Some(InputEvent::DoorClosed),
                    (Some(true), Kind::Exit) => Some(InputEvent::ExitPressed),
                    _ => None,
                };
                if let Some(ev) = event {
                    tracing::debug!(target: "facereko::gpio", "input {ev:?}");
                    if tx.blocking_send(Ok(ev)).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: u32 = 17;
    const GREEN: u32 = 27;
    const BUZZER: u32 = 22;
    const RELAY: u32 = 23;

    fn map(relay_active_low: bool) -> OutputMap {
        OutputMap {
            red: Some(LineMap::active_high(RED)),
            green: Some(LineMap::active_high(GREEN)),
            buzzer: Some(LineMap::active_high(BUZZER)),
            relay: Some(LineMap {
                line: RELAY,
                active_low: relay_active_low,
            }),
        }
    }

    #[test]
    fn outputs_start_safe_with_polarity_respected() {
        let rec = RecordingLines::new();
        let _out = GpioOutputs::new(rec.clone(), map(true)).unwrap();
        // Active-low relay: locked (inactive) is the HIGH level.
        assert_eq!(rec.level(RELAY), Some(true));
        assert_eq!(rec.level(BUZZER), Some(false));
        assert_eq!(rec.level(GREEN), Some(false));
        assert_eq!(rec.level(RED), Some(false));
    }

    /// The granted and denied cue sequences of the door controller, as `Outputs` calls, produce exactly
    /// these pin writes.
    #[test]
    fn cue_sequences_give_the_exact_pin_levels() {
        for active_low in [false, true] {
            let rec = RecordingLines::new();
            let out = GpioOutputs::new(rec.clone(), map(active_low)).unwrap();
            out.set(Output::Red, true).unwrap(); // idle: red on
            rec.clear_log();
            let unlocked = !active_low;
            let locked = active_low;

            // Known card: one short beep.
            out.set(Output::Buzzer, true).unwrap();
            out.set(Output::Buzzer, false).unwrap();
            // Granted: red off, green on, relay unlocked, long beep; later green off, red on, relay locked.
            out.set(Output::Red, false).unwrap();
            out.set(Output::Green, true).unwrap();
            out.set(Output::Relay, true).unwrap();
            out.set(Output::Buzzer, true).unwrap();
            out.set(Output::Buzzer, false).unwrap();
            out.set(Output::Green, false).unwrap();
            out.set(Output::Red, true).unwrap();
            out.set(Output::Relay, false).unwrap();
            // Denied: three beeps, red stays on.
            for _ in 0..3 {
                out.set(Output::Buzzer, true).unwrap();
                out.set(Output::Buzzer, false).unwrap();
            }
            let mut expected = vec![
                (BUZZER, true),
                (BUZZER, false),
                (RED, false),
                (GREEN, true),
                (RELAY, unlocked),
                (BUZZER, true),
                (BUZZER, false),
                (GREEN, false),
                (RED, true),
                (RELAY, locked),
            ];
            for _ in 0..3 {
                expected.extend([(BUZZER, true), (BUZZER, false)]);
            }
            assert_eq!(rec.log(), expected, "relay active_low = {active_low}");
            assert_eq!(rec.level(RED), Some(true));
        }
    }

    #[test]
    fn lock_down_and_drop_leave_the_door_locked_and_quiet() {
        let rec = RecordingLines::new();
        let out = GpioOutputs::new(rec.clone(), map(true)).unwrap();
        out.set(Output::Relay, true).unwrap();
        out.set(Output::Buzzer, true).unwrap();
        out.set(Output::Green, true).unwrap();
        assert_eq!(
            rec.level(RELAY),
            Some(false),
            "active-low relay released = LOW"
        );
        out.lock_down().unwrap();
        assert_eq!(rec.level(RELAY), Some(true));
        assert_eq!(rec.level(BUZZER), Some(false));
        assert_eq!(rec.level(GREEN), Some(false));

        out.set(Output::Relay, true).unwrap();
        drop(out);
        assert_eq!(
            rec.level(RELAY),
            Some(true),
            "dropping the outputs locks the door"
        );
    }

    #[test]
    fn lock_down_still_locks_when_another_line_fails() {
        let rec = RecordingLines::new();
        let out = GpioOutputs::new(rec.clone(), map(false)).unwrap();
        out.set(Output::Relay, true).unwrap();
        out.set(Output::Green, true).unwrap();
        rec.fail_line(BUZZER);
        let err = out.lock_down().unwrap_err().to_string();
        assert!(err.contains("buzzer") && err.contains("line 22"), "{err}");
        assert_eq!(rec.level(RELAY), Some(false));
        assert_eq!(rec.level(GREEN), Some(false));
    }

    #[test]
    fn unwired_outputs_are_ignored() {
        let rec = RecordingLines::new();
        let out = GpioOutputs::new(
            rec.clone(),
            OutputMap {
                red: Some(LineMap::active_high(RED)),
                ..OutputMap::default()
            },
        )
        .unwrap();
        out.set(Output::Relay, true).unwrap();
        assert_eq!(rec.log(), vec![(RED, false)]);
    }

    #[test]
    fn debouncer_waits_for_quiet_and_reports_one_change() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debouncer::new(false, ms(30));
        d.edge(t0);
        d.edge(t0 + ms(5));
        d.edge(t0 + ms(9));
        assert_eq!(d.due(), Some(t0 + ms(39)));
        assert_eq!(d.settle(t0 + ms(20), true), None, "not quiet long enough");
        assert_eq!(d.settle(t0 + ms(39), true), Some(true));
        assert_eq!(d.due(), None);
        // A glitch that returns to the stable level is no change.
        d.edge(t0 + ms(100));
        assert_eq!(d.settle(t0 + ms(131), true), None);
        assert!(d.stable());
    }

    /// Input lines driven from the test through a channel: each message is a burst of level changes that
    /// reaches the kernel together (a bounce), so a slow test thread cannot split one bounce in two.
    struct ScriptedInputs {
        levels: HashMap<u32, bool>,
        rx: std_mpsc::Receiver<Vec<(u32, bool)>>,
    }

    impl InputLines for ScriptedInputs {
        fn wait_edges(&mut self, timeout: Duration) -> io::Result<Vec<u32>> {
            let mut edged = Vec::new();
            if let Ok(burst) = self.rx.recv_timeout(timeout) {
                for (line, level) in burst {
                    self.levels.insert(line, level);
                    edged.push(line);
                }
            }
            Ok(edged)
        }
        fn is_high(&mut self, line: u32) -> io::Result<bool> {
            Ok(self.levels.get(&line).copied().unwrap_or(false))
        }
    }

    async fn next(inputs: &mut GpioInputs) -> InputEvent {
        tokio::time::timeout(Duration::from_secs(5), inputs.next_event())
            .await
            .expect("an input event")
            .unwrap()
    }

    #[tokio::test]
    async fn bouncing_inputs_give_one_event_each() {
        const DOOR: u32 = 24;
        const EXIT: u32 = 5;
        let (tx, rx) = std_mpsc::channel();
        let lines = ScriptedInputs {
            // Door closed (low), exit button released (high, active-low with pull-up).
            levels: HashMap::from([(DOOR, false), (EXIT, true)]),
            rx,
        };
        let mut inputs = GpioInputs::spawn(
            lines,
            InputMap {
                door_contact: Some(LineMap::active_high(DOOR)),
                exit_button: Some(LineMap::active_low(EXIT)),
            },
            Duration::from_millis(20),
        )
        .unwrap();
        // The door opens with contact bounce.
        tx.send([true, false, true, false, true].map(|l| (DOOR, l)).to_vec())
            .unwrap();
        assert_eq!(next(&mut inputs).await, InputEvent::DoorOpened);
        // The exit button is pressed (low) with bounce, then released: one press.
        tx.send([false, true, false].map(|l| (EXIT, l)).to_vec())
            .unwrap();
        assert_eq!(next(&mut inputs).await, InputEvent::ExitPressed);
        tx.send(vec![(EXIT, true), (DOOR, false)]).unwrap();
        assert_eq!(next(&mut inputs).await, InputEvent::DoorClosed);
        // Nothing else is pending.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), inputs.next_event())
                .await
                .is_err()
        );
    }
}
