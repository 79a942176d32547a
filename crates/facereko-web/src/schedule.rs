//! Weekly schedules as text, one window per line: `Mon-Fri 08:00-18:00`, `Sat,Sun 10:00-14:00`,
//! `Fri 22:00-06:00` (past midnight) — how pages, the audit trail and the command line show them — and
//! as the day/time range editor of the person and group pages: rows of day checkboxes and two
//! `<input type="time">`, posted as plain form fields (`w0_mon=on&w0_from=08:00&w0_to=18:00`) and read
//! here, so the editor needs no script.

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

/// [`format()`] on one line ("Mon-Fri 08:00-18:00; Sat 09:00-12:00"), for lists and the audit trail.
pub fn one_line(s: Option<&WeeklySchedule>) -> String {
    format(s).replace('\n', "; ")
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

/// The field names of the editor's day checkboxes, Monday first: `w<row>_<key>`.
pub const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The most rows the editor posts (filled ones and the empty ones to add more).
pub const MAX_ROWS: usize = 20;

/// Empty rows shown under the filled ones, for adding more.
pub const SPARE_ROWS: usize = 3;

/// One day checkbox of an editor row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayBox {
    pub key: &'static str,
    pub label: &'static str,
    pub on: bool,
}

/// One row of the editor: which days, from when, to when (`HH:MM`, empty in a blank row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditorRow {
    pub index: usize,
    pub days: Vec<DayBox>,
    pub from: String,
    pub to: String,
}

fn row(index: usize, on: impl Fn(u8) -> bool, from: String, to: String) -> EditorRow {
    EditorRow {
        index,
        days: DAY_KEYS
            .iter()
            .zip(DAYS)
            .enumerate()
            .map(|(i, (key, label))| DayBox {
                key,
                label,
                on: on(i as u8 + 1),
            })
            .collect(),
        from,
        to,
    }
}

/// The editor's rows for a schedule: one per window, then [`SPARE_ROWS`] empty ones (within
/// [`MAX_ROWS`]). Midnight as an end is shown as `00:00`, which the editor reads back as midnight.
pub fn editor_rows(s: Option<&WeeklySchedule>) -> Vec<EditorRow> {
    let windows = s.map_or(&[][..], |s| &s.windows[..]);
    let mut rows: Vec<EditorRow> = windows
        .iter()
        .take(MAX_ROWS)
        .enumerate()
        .map(|(i, w)| {
            row(
                i,
                |d| w.days.contains(&d),
                hm(w.start_minute),
                hm(w.end_minute % 1440),
            )
        })
        .collect();
    while rows.len() < (windows.len() + SPARE_ROWS).min(MAX_ROWS) {
        rows.push(row(rows.len(), |_| false, String::new(), String::new()));
    }
    rows
}

/// The editor's rows as they were posted (to show a refused form again as typed), with empty ones
/// after them.
pub fn rows_as_posted(fields: &[(String, String)]) -> Vec<EditorRow> {
    let get = |name: String| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.chars().take(8).collect::<String>())
    };
    let mut rows: Vec<EditorRow> = (0..MAX_ROWS)
        .map(|i| {
            row(
                i,
                |d| get(format!("w{i}_{}", DAY_KEYS[usize::from(d) - 1])).is_some(),
                get(format!("w{i}_from")).unwrap_or_default(),
                get(format!("w{i}_to")).unwrap_or_default(),
            )
        })
        .collect();
    let used = rows
        .iter()
        .rposition(|r| r.days.iter().any(|d| d.on) || !r.from.is_empty() || !r.to.is_empty())
        .map_or(0, |i| i + 1);
    rows.truncate((used + SPARE_ROWS).min(MAX_ROWS));
    rows
}

/// A time from an `<input type="time">`: `HH:MM`, or `HH:MM:SS` with zero seconds.
fn input_time(s: &str) -> Option<u16> {
    let s = s.trim();
    let hm = match s.len() {
        5 => s,
        8 if s.ends_with(":00") => &s[..5],
        _ => return None,
    };
    let (h, m) = hm.split_once(':')?;
    if h.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Reads the editor's fields (`w<row>_<day>=on`, `w<row>_from`, `w<row>_to`) from a posted form; other
/// fields are left alone. A row with nothing in it is skipped; no filled row means no schedule
/// (`None`). A range that ends at or before its start runs past midnight, and `00:00` as an end means
/// midnight.
pub fn from_form(fields: &[(String, String)]) -> Result<Option<WeeklySchedule>, String> {
    #[derive(Default)]
    struct Posted {
        days: Vec<u8>,
        from: Option<String>,
        to: Option<String>,
    }
    let mut posted: std::collections::BTreeMap<usize, Posted> = Default::default();
    for (key, value) in fields {
        let Some((index, part)) = key
            .strip_prefix('w')
            .and_then(|k| k.split_once('_'))
            .filter(|(i, _)| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let index: usize = index
            .parse()
            .ok()
            .filter(|i| *i < MAX_ROWS)
            .ok_or_else(|| format!("The schedule has at most {MAX_ROWS} rows."))?;
        let row = posted.entry(index).or_default();
        match part {
            "from" => row.from = Some(value.clone()),
            "to" => row.to = Some(value.clone()),
            day => match DAY_KEYS.iter().position(|d| *d == day) {
                Some(d) if value == "on" => row.days.push(d as u8 + 1),
                Some(_) => {}
                None => return Err("The schedule form had a field it does not know.".into()),
            },
        }
    }
    let mut windows = Vec::new();
    for (index, mut r) in posted {
        let n = index + 1;
        let from = r.from.as_deref().map(str::trim).unwrap_or_default();
        let to = r.to.as_deref().map(str::trim).unwrap_or_default();
        if r.days.is_empty() && from.is_empty() && to.is_empty() {
            continue;
        }
        if r.days.is_empty() {
            return Err(format!("Schedule row {n}: tick at least one day."));
        }
        if from.is_empty() || to.is_empty() {
            return Err(format!(
                "Schedule row {n}: give both a start and an end time."
            ));
        }
        let start_minute = input_time(from)
            .ok_or_else(|| format!("Schedule row {n}: the start time must look like 08:00."))?;
        let end_minute = input_time(to)
            .ok_or_else(|| format!("Schedule row {n}: the end time must look like 18:00."))?;
        let end_minute = if end_minute == 0 { 1440 } else { end_minute };
        if start_minute == end_minute {
            return Err(format!(
                "Schedule row {n}: the start and the end are the same time."
            ));
        }
        r.days.sort_unstable();
        r.days.dedup();
        windows.push(Window {
            days: r.days,
            start_minute,
            end_minute,
        });
    }
    Ok((!windows.is_empty()).then_some(WeeklySchedule { windows }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_editor_reads_rows_of_days_and_times() {
        let s = from_form(&fields(&[
            ("name", "Ada"),
            ("w0_mon", "on"),
            ("w0_tue", "on"),
            ("w0_fri", "on"),
            ("w0_from", "08:00"),
            ("w0_to", "18:00"),
            ("w1_from", ""),
            ("w1_to", ""),
            ("w2_sat", "on"),
            ("w2_from", "22:00:00"),
            ("w2_to", "06:30"),
            ("w3_sun", "on"),
            ("w3_from", "00:00"),
            ("w3_to", "00:00"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            format(Some(&s)),
            "Mon,Tue,Fri 08:00-18:00\nSat 22:00-06:30\nSun 00:00-24:00"
        );
        assert_eq!(s.windows[2].end_minute, 1440, "to 00:00 is midnight");
        // Nothing filled in: no schedule.
        assert_eq!(
            from_form(&fields(&[
                ("w0_from", ""),
                ("w0_to", ""),
                ("schedule", "x")
            ]))
            .unwrap(),
            None
        );
        // What the editor shows reads back the same.
        let rows = editor_rows(Some(&s));
        assert_eq!(rows.len(), 3 + SPARE_ROWS);
        assert_eq!(
            (rows[2].from.as_str(), rows[2].to.as_str()),
            ("00:00", "00:00")
        );
        let mut posted = Vec::new();
        for r in &rows {
            for d in r.days.iter().filter(|d| d.on) {
                posted.push((format!("w{}_{}", r.index, d.key), "on".to_string()));
            }
            posted.push((format!("w{}_from", r.index), r.from.clone()));
            posted.push((format!("w{}_to", r.index), r.to.clone()));
        }
        assert_eq!(from_form(&posted).unwrap(), Some(s));
        assert_eq!(rows_as_posted(&posted), rows);
        assert_eq!(editor_rows(None).len(), SPARE_ROWS);
    }

    #[test]
    fn bad_editor_rows_are_explained() {
        for (pairs, why) in [
            (
                &[("w0_mon", "on"), ("w0_from", "25:00"), ("w0_to", "26:00")][..],
                "start time",
            ),
            (
                &[("w0_mon", "on"), ("w0_from", "08:00"), ("w0_to", "8pm")],
                "end time",
            ),
            (
                &[("w0_mon", "on"), ("w0_from", "08:00")],
                "both a start and an end",
            ),
            (
                &[("w3_from", "08:00"), ("w3_to", "09:00")],
                "row 4: tick at least one day",
            ),
            (
                &[("w0_mon", "on"), ("w0_from", "08:00"), ("w0_to", "08:00")],
                "the same time",
            ),
            (&[("w20_mon", "on")], "at most 20 rows"),
            (&[("w99999999999999999999999_mon", "on")], "at most 20 rows"),
            (&[("w0_funday", "on")], "does not know"),
            (
                &[("w0_mon", "on"), ("w0_from", "-1:00"), ("w0_to", "09:00")],
                "start time",
            ),
        ] {
            let pairs: Vec<(&str, &str)> = pairs.to_vec();
            let e = from_form(&fields(&pairs)).unwrap_err();
            assert!(e.contains(why), "{pairs:?}: {e}");
        }
    }

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
