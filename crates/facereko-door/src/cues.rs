//! Cue plans: the output changes the door will make, each at an instant, played by the controller's loop.
//!
//! Nothing here sleeps. A cue is a list of planned changes; the controller asks for the next due instant,
//! waits for it alongside taps and inputs, and applies what is due. Two groups never disturb each other:
//! the buzzer (beep patterns queue one after the other, with a gap so two beeps are heard as two), and the
//! lock (red/green/relay; a new unlock extends the current one).
//!
//! The buzzer queue is bounded: at most one pattern of each kind waits to start (a burst of denials is
//! heard as one more denial, not as one per tap), and a grant drops the denial beeps that have not sounded
//! yet, so the person who was let in hears it at once. A grant decided while the known-card beep still
//! sounds (the door decided from frames it had already seen) takes that beep over: one long beep.

use std::collections::HashSet;
use std::time::Duration;

use facereko_hardware::Output;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Buzzer,
    Lock,
}

/// What a beep pattern says; it decides how patterns queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beep {
    /// A known card: look at the camera.
    Known,
    /// Access granted.
    Grant,
    /// Access denied.
    Deny,
    /// Liveness challenge: turn your head.
    Challenge,
}

/// Which pattern, and which beep of it, a buzzer change belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag {
    kind: Beep,
    /// The pattern's first change: while it is still planned, the pattern has not started.
    first: bool,
    /// One beep (its on and its off) of one pattern.
    beep: u64,
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
    tag: Option<Tag>,
}

#[derive(Debug, Default)]
pub struct Cues {
    planned: Vec<Planned>,
    seq: u64,
    beeps: u64,
    /// When the last buzzer change already played happened.
    buzzer_played_until: Option<Instant>,
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
    fn push(
        &mut self,
        at: Instant,
        group: Group,
        output: Output,
        active: bool,
        label: String,
        tag: Option<Tag>,
    ) {
        self.seq += 1;
        self.planned.push(Planned {
            at,
            output,
            active,
            label,
            group,
            seq: self.seq,
            tag,
        });
    }

    /// Whether a pattern of `kind` is planned and has not started.
    fn waiting(&self, kind: Beep) -> bool {
        self.planned
            .iter()
            .any(|p| p.tag.is_some_and(|t| t.kind == kind && t.first))
    }

    /// When the buzzer is free: the end of the last planned beep, else of the last one played.
    fn buzzer_free_at(&self) -> Option<Instant> {
        self.planned
            .iter()
            .filter(|p| p.group == Group::Buzzer)
            .map(|p| p.at)
            .max()
            .or(self.buzzer_played_until)
    }

    /// Plans a beep pattern of `(on, off)` pairs. It starts at `now`, or, when another pattern is still
    /// playing or ended less than `gap` ago, `gap` after that one ends. A pattern of a kind that already
    /// waits to start is not queued again (returns `false`); a grant first drops every denial beep that has
    /// not sounded (a beep already sounding still ends on time).
    pub fn beeps(
        &mut self,
        now: Instant,
        kind: Beep,
        pattern: &[(Duration, Duration)],
        gap: Duration,
    ) -> bool {
        if self.waiting(kind) {
            return false;
        }
        let mut takes_over = false;
        if kind == Beep::Grant {
            let unsounded: HashSet<u64> = self
                .planned
                .iter()
                .filter_map(|p| p.tag.filter(|t| t.kind == Beep::Deny && p.active))
                .map(|t| t.beep)
                .collect();
            self.planned
                .retain(|p| !p.tag.is_some_and(|t| unsounded.contains(&t.beep)));
            // A grant decided while the known-card beep sounds takes it over: the buzzer stays on and
            // the grant's beep runs its full length from now, heard as one long beep.
            let sounding_known: HashSet<u64> = self
                .planned
                .iter()
                .filter(|p| p.at > now)
                .filter_map(|p| p.tag.filter(|t| t.kind == Beep::Known && !p.active))
                .filter(|t| {
                    !self
                        .planned
                        .iter()
                        .any(|q| q.active && q.tag.is_some_and(|u| u.beep == t.beep))
                })
                .map(|t| t.beep)
                .collect();
            takes_over = !sounding_known.is_empty();
            self.planned
                .retain(|p| !p.tag.is_some_and(|t| sounding_known.contains(&t.beep)));
        }
        let mut t = match self.buzzer_free_at() {
            _ if takes_over => now,
            Some(free) if free + gap > now => free + gap,
            _ => now,
        };
        for (i, &(on, off)) in pattern.iter().enumerate() {
            self.beeps += 1;
            let tag = Tag {
                kind,
                first: i == 0,
                beep: self.beeps,
            };
            let label = format!("buzzer on {}", ms(on));
            self.push(t, Group::Buzzer, Output::Buzzer, true, label, Some(tag));
            let tag = Tag {
                first: false,
                ..tag
            };
            let label = "buzzer off".to_string();
            self.push(
                t + on,
                Group::Buzzer,
                Output::Buzzer,
                false,
                label,
                Some(tag),
            );
            t = t + on + off;
        }
        true
    }

    /// Plans an unlock of `duration` from `now`: red off, green on, relay released; then green off, red on,
    /// relay locked. An unlock while unlocked moves the end, it does not stack.
    pub fn unlock(&mut self, now: Instant, duration: Duration) {
        self.planned.retain(|p| p.group != Group::Lock);
        self.push(now, Group::Lock, Output::Red, false, "red off".into(), None);
        self.push(
            now,
            Group::Lock,
            Output::Green,
            true,
            "green on".into(),
            None,
        );
        self.push(
            now,
            Group::Lock,
            Output::Relay,
            true,
            format!("relay unlocked {}", ms(duration)),
            None,
        );
        let end = now + duration;
        self.push(
            end,
            Group::Lock,
            Output::Green,
            false,
            "green off".into(),
            None,
        );
        self.push(end, Group::Lock, Output::Red, true, "red on".into(), None);
        self.push(
            end,
            Group::Lock,
            Output::Relay,
            false,
            "relay locked".into(),
            None,
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
        if let Some(last) = due
            .iter()
            .filter(|p| p.group == Group::Buzzer)
            .map(|p| p.at)
            .max()
        {
            self.buzzer_played_until = Some(self.buzzer_played_until.map_or(last, |t| t.max(last)));
        }
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
        c.beeps(t0, Beep::Known, &[(S, Duration::ZERO)], S);
        c.beeps(
            t0 + Duration::from_millis(100),
            Beep::Deny,
            &[(S, Duration::ZERO)],
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
                (Duration::from_millis(1500), false)
            ]
        );
    }

    #[test]
    fn a_grant_takes_over_a_sounding_known_beep_and_follows_a_finished_one() {
        let grant = [(Duration::from_secs(2), Duration::ZERO)];
        // Decided 100 ms into the known-card beep: one beep, ending 2 s after the decision.
        let t0 = Instant::now();
        let mut c = Cues::default();
        c.beeps(t0, Beep::Known, &[(S, Duration::ZERO)], S);
        c.take_due(t0);
        c.beeps(t0 + Duration::from_millis(100), Beep::Grant, &grant, S);
        let rest = buzzer(&mut c, t0, Duration::from_secs(10));
        assert_eq!(
            rest,
            vec![
                (Duration::from_millis(100), true),
                (Duration::from_millis(2100), false)
            ]
        );
        // Decided after the known-card beep ended: the grant waits for the gap.
        let mut c = Cues::default();
        c.beeps(t0, Beep::Known, &[(S, Duration::ZERO)], S);
        assert_eq!(buzzer(&mut c, t0, Duration::from_millis(600)).len(), 2);
        c.beeps(t0 + Duration::from_millis(700), Beep::Grant, &grant, S);
        let rest = buzzer(&mut c, t0, Duration::from_secs(10));
        assert_eq!(
            rest,
            vec![
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

    fn buzzer(c: &mut Cues, t0: Instant, until: Duration) -> Vec<(Duration, bool)> {
        c.take_due(t0 + until)
            .iter()
            .filter(|p| p.output == Output::Buzzer)
            .map(|p| (p.at - t0, p.active))
            .collect()
    }

    /// Regression: every denial queued its three beeps behind the others, so a burst of taps kept the
    /// buzzer going for minutes.
    #[test]
    fn denials_queue_at_most_one_pattern_behind_the_one_playing() {
        let t0 = Instant::now();
        let mut c = Cues::default();
        let deny = [(S, S), (S, S), (S, S)];
        assert!(c.beeps(t0, Beep::Deny, &deny, S));
        c.take_due(t0);
        assert!(c.beeps(t0 + S / 5, Beep::Deny, &deny, S), "one may wait");
        for i in 2..10 {
            assert!(
                !c.beeps(t0 + S / 5 * i, Beep::Deny, &deny, S),
                "a second one may not"
            );
        }
        let all = buzzer(&mut c, t0, Duration::from_secs(3600));
        assert_eq!(all.len(), 11, "two patterns of three beeps: {all:?}");
        assert_eq!(all.last().unwrap().0, Duration::from_millis(5500));
    }

    /// Regression: a grant's beep waited behind every queued denial.
    #[test]
    fn a_grant_drops_the_denial_beeps_not_yet_sounded() {
        let t0 = Instant::now();
        let mut c = Cues::default();
        let deny = [(S, S), (S, S), (S, S)];
        c.beeps(t0, Beep::Deny, &deny, S);
        c.beeps(t0, Beep::Deny, &deny, S);
        // 1.2 s: the second beep of the first denial is sounding.
        let played = buzzer(&mut c, t0, Duration::from_millis(1200));
        assert_eq!(played.last(), Some(&(Duration::from_millis(1000), true)));
        c.beeps(
            t0 + Duration::from_millis(1200),
            Beep::Grant,
            &[(Duration::from_secs(2), Duration::ZERO)],
            S,
        );
        let rest = buzzer(&mut c, t0, Duration::from_secs(3600));
        assert_eq!(
            rest,
            vec![
                (Duration::from_millis(1500), false),
                (Duration::from_millis(2000), true),
                (Duration::from_millis(4000), false),
            ],
            "the sounding beep ends on time, the grant follows after the gap"
        );
    }
}
