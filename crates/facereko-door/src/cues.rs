//! Cue plans: the output changes the door will make, each at an instant, played by the controller's loop.
//!
//! Nothing here sleeps. A cue is a list of planned changes; the controller asks for the next due instant,
//! waits for it alongside taps and inputs, and applies what is due. Two groups never disturb each other:
//! the buzzer (beep patterns queue one after the other, with a gap so two beeps are heard as two), and the
//! lock (red/green/relay; a new unlock extends the current one).

use std::time::Duration;

use facereko_hardware::Output;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Buzzer,
    Lock,
}

/// One planned output change, with the words the log shows for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub at: Instant,
    pub output: Output,
    pub active: bool,
    pub label: String,
    group: Group,
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Cues {
    planned: Vec<Planned>,
    seq: u64,
    /// When the last planned beep ends.
    buzzer_free_at: Option<Instant>,
    /// When the current unlock ends.
    unlocked_until: Option<Instant>,
}

fn ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

impl Cues {
    fn push(&mut self, at: Instant, group: Group, output: Output, active: bool, label: String) {
        self.seq += 1;
        self.planned.push(Planned {
            at,
            output,
            active,
            label,
            group,
            seq: self.seq,
        });
    }

    /// Plans a beep pattern of `(on, off)` pairs. It starts at `now`, or, when another pattern is still
    /// playing or ended less than `gap` ago, `gap` after that one ends.
    pub fn beeps(&mut self, now: Instant, pattern: &[(Duration, Duration)], gap: Duration) {
        let mut t = match self.buzzer_free_at {
            Some(free) if free + gap > now => free + gap,
            _ => now,
        };
        let mut end = t;
        for &(on, off) in pattern {
            self.push(
                t,
                Group::Buzzer,
                Output::Buzzer,
                true,
                format!("buzzer on {}", ms(on)),
            );
            self.push(
                t + on,
                Group::Buzzer,
                Output::Buzzer,
                false,
                "buzzer off".into(),
            );
            end = t + on;
            t = t + on + off;
        }
        self.buzzer_free_at = Some(end);
    }

    /// Plans an unlock of `duration` from `now`: red off, green on, relay released; then green off, red on,
    /// relay locked. An unlock while unlocked moves the end, it does not stack.
    pub fn unlock(&mut self, now: Instant, duration: Duration) {
        self.planned.retain(|p| p.group != Group::Lock);
        self.push(now, Group::Lock, Output::Red, false, "red off".into());
        self.push(now, Group::Lock, Output::Green, true, "green on".into());
        self.push(
            now,
            Group::Lock,
            Output::Relay,
            true,
            format!("relay unlocked {}", ms(duration)),
        );
        let end = now + duration;
        self.push(end, Group::Lock, Output::Green, false, "green off".into());
        self.push(end, Group::Lock, Output::Red, true, "red on".into());
        self.push(
            end,
            Group::Lock,
            Output::Relay,
            false,
            "relay locked".into(),
        );
        self.unlocked_until = Some(end);
    }

    /// Forgets every plan (shutdown).
    pub fn clear(&mut self) {
        self.planned.clear();
        self.unlocked_until = None;
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.planned.iter().map(|p| p.at).min()
    }

    /// Removes and returns what is due at `now`, in plan order.
    pub fn take_due(&mut self, now: Instant) -> Vec<Planned> {
        let (mut due, rest): (Vec<_>, Vec<_>) = self.planned.drain(..).partition(|p| p.at <= now);
        self.planned = rest;
        due.sort_by_key(|p| (p.at, p.seq));
        if self.unlocked_until.is_some_and(|u| u <= now) {
            self.unlocked_until = None;
        }
        due
    }

    /// When the current unlock ends, if the door is unlocked.
    pub fn unlocked_until(&self) -> Option<Instant> {
        self.unlocked_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_millis(500);

    #[test]
    fn a_second_pattern_waits_for_the_first_and_a_gap() {
        let t0 = Instant::now();
        let mut c = Cues::default();
        c.beeps(t0, &[(S, Duration::ZERO)], S);
        c.beeps(
            t0 + Duration::from_millis(100),
            &[(Duration::from_secs(2), Duration::ZERO)],
            S,
        );
        let all = c.take_due(t0 + Duration::from_secs(10));
        let times: Vec<_> = all.iter().map(|p| (p.at - t0, p.active)).collect();
        assert_eq!(
            times,
            vec![
                (Duration::ZERO, true),
                (S, false),
                (Duration::from_millis(1000), true),
                (Duration::from_millis(3000), false)
            ]
        );
    }

    #[test]
    fn an_unlock_while_unlocked_moves_the_end() {
        let t0 = Instant::now();
        let mut c = Cues::default();
        c.unlock(t0, Duration::from_secs(10));
        assert_eq!(c.take_due(t0).len(), 3);
        c.unlock(t0 + Duration::from_secs(4), Duration::from_secs(10));
        assert_eq!(c.unlocked_until(), Some(t0 + Duration::from_secs(14)));
        assert_eq!(c.next_due(), Some(t0 + Duration::from_secs(4)));
        c.take_due(t0 + Duration::from_secs(4));
        assert_eq!(c.next_due(), Some(t0 + Duration::from_secs(14)));
        let relock = c.take_due(t0 + Duration::from_secs(14));
        let labels: Vec<_> = relock.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["green off", "red on", "relay locked"]);
        assert_eq!(c.unlocked_until(), None);
    }
}
