//! Weekly schedules as text, one window per line: `Mon-Fri 08:00-18:00`, `Sat,Sun 10:00-14:00`,
//! `Fri 22:00-06:00` (past midnight). Easy to type on a phone and to read back.

use facereko_domain::{WeeklySchedule, Window};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn day(s: &str) -> Option<u8> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() < 2 {
        return None;
    }
    DAYS.iter()
        .position(|d| {
            let full = match *d {
                "Mon" => "monday",
                "Tue" => "tuesday",
                "Wed" => "wednesday",
                "Thu" => "thursday",
                "Fri" => "friday",
                "Sat" => "saturday",
                _ => "sunday",
            };
            full.starts_with(&s) && s.len() >= 2
        })
        .map(|i| i as u8 + 1)
}

fn minute(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// Parses the text; blank text means "no schedule" (`None`, any time).
pub fn parse(text: &str) -> Result<Option<WeeklySchedule>, String> {
    let mut windows = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| {
            format!("schedule line {n} ({line:?}): {why}. Write e.g. Mon-Fri 08:00-18:00")
        };
        let (days_part, times) = line
            .rsplit_once(' ')
            .ok_or_else(|| bad("days and times are needed"))?;
        let mut days = Vec::new();
        for token in days_part
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if let Some((a, b)) = token.split_once('-') {
                let (a, b) = (
                    day(a).ok_or_else(|| bad("unknown day"))?,
                    day(b).ok_or_else(|| bad("unknown day"))?,
                );
                let mut d = a;
                loop {
                    days.push(d);
                    if d == b {
                        break;
                    }
                    d = d % 7 + 1;
                }
            } else {
                days.push(day(token).ok_or_else(|| bad("unknown day"))?);
            }
        }
        if days.is_empty() {
            return Err(bad("no day given"));
        }
        days.sort_unstable();
        days.dedup();
        let (start, end) = times
            .split_once('-')
            .ok_or_else(|| bad("times must be HH:MM-HH:MM"))?;
        let start_minute = minute(start)
            .filter(|m| *m < 1440)
            .ok_or_else(|| bad("bad start time"))?;
        let end_minute = minute(end)
            .filter(|m| *m >= 1)
            .ok_or_else(|| bad("bad end time"))?;
        if start_minute == end_minute {
            return Err(bad("start and end are the same"));
        }
        windows.push(Window {
            days,
            start_minute,
            end_minute,
        });
    }
    Ok((!windows.is_empty()).then_some(WeeklySchedule { windows }))
}

fn hm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The text form of a schedule (what [`parse`] reads back).
pub fn format(s: Option<&WeeklySchedule>) -> String {
    let Some(s) = s else { return String::new() };
    s.windows
        .iter()
        .map(|w| {
            let mut days = w.days.clone();
            days.sort_unstable();
            days.dedup();
            // Runs of consecutive days become ranges.
            let mut parts = Vec::new();
            let mut i = 0;
            while i < days.len() {
                let mut j = i;
                while j + 1 < days.len() && days[j + 1] == days[j] + 1 {
                    j += 1;
                }
                let name = |d: u8| {
                    DAYS.get(usize::from(d).saturating_sub(1))
                        .copied()
                        .unwrap_or("?")
                };
                parts.push(if j > i + 1 {
                    format!("{}-{}", name(days[i]), name(days[j]))
                } else if j == i + 1 {
                    format!("{},{}", name(days[i]), name(days[j]))
                } else {
                    name(days[i]).to_string()
                });
                i = j + 1;
            }
            format!(
                "{} {}-{}",
                parts.join(","),
                hm(w.start_minute),
                hm(w.end_minute)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_round_trip_as_text() {
        let text = "Mon-Fri 08:00-18:00\nSat,Sun 10:00-14:00\nFri 22:00-06:00\nWed 00:00-24:00";
        let s = parse(text).unwrap().unwrap();
        assert_eq!(s.windows[0].days, vec![1, 2, 3, 4, 5]);
        assert_eq!(s.windows[1].days, vec![6, 7]);
        assert_eq!(s.windows[2].start_minute, 22 * 60);
        assert_eq!(s.windows[3].end_minute, 1440);
        assert_eq!(format(Some(&s)), text);
        assert_eq!(parse("  \n ").unwrap(), None);
        assert_eq!(
            parse("monday 9:00-17:30").unwrap().unwrap().windows[0].days,
            vec![1]
        );
        assert_eq!(
            parse("Sat-Mon 10:00-11:00").unwrap().unwrap().windows[0].days,
            vec![1, 6, 7]
        );
    }

    #[test]
    fn bad_lines_are_explained() {
        for bad in [
            "Mon 25:00-26:00",
            "Funday 08:00-09:00",
            "Mon 08:00",
            "08:00-09:00",
            "Mon 08:00-08:00",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("schedule line 1"), "{bad}: {e}");
        }
    }
}
