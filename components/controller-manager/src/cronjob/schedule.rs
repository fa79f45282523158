//! CronJob schedules: the syntax and the "next run" arithmetic of the cron library Kubernetes
//! uses (robfig/cron v3, `ParseStandard`), so that a schedule means the same thing — and
//! fails to parse with the same message — on kadm as on Kubernetes.
//!
//! Accepted: five fields `minute hour day-of-month month day-of-week`, each a comma list of
//! `*`, `?`, `N`, `N-M`, with an optional `/step` (`N/step` means `N-max/step`); month names
//! `jan`…`dec` and weekday names `sun`…`sat` (any case); weekdays 0–6 with 0 = Sunday; the
//! macros `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly` and
//! `@every <go duration>`; an optional `TZ=<zone> ` or `CRON_TZ=<zone> ` prefix.
//!
//! Day of month and day of week combine as in Vixie cron: if either field starts with `*`
//! or `?` (without a step above 1) both must match, otherwise either may.
//!
//! Times are computed on the wall clock of the schedule's zone with the library's quirks
//! kept on purpose: a wall time skipped by a daylight-saving jump never fires, and a
//! repeated wall hour can fire twice. Every search is bounded (five years ahead, and an
//! iteration cap), so no input makes it loop for long.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A schedule that does not parse; the message is the cron library's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

fn err(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// One parsed `spec.schedule`.
#[derive(Clone, PartialEq)]
pub struct Schedule {
    kind: Kind,
    /// The zone named by a `TZ=`/`CRON_TZ=` prefix; it wins over the caller's zone.
    zone: Option<TimeZone>,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("kind", &self.kind)
            .field("zone", &self.zone.as_ref().and_then(|z| z.iana_name()))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Fields(Fields),
    /// `@every`: a fixed delay of whole seconds (at least one) after the previous run.
    Every(i64),
}

/// The allowed values of each field as bit sets (bit n = value n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    /// Whether the day-of-month / day-of-week field was a star (see the module docs).
    dom_star: bool,
    dow_star: bool,
}

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Longest accepted schedule; real ones are a few dozen bytes.
const MAX_LEN: usize = 1024;
/// How far ahead `next` looks before it gives up (the library's limit).
const YEARS_AHEAD: i16 = 5;
/// Upper bound on the loop steps of one `next` call; five years of day steps is ~1,900.
const MAX_STEPS: u32 = 100_000;

impl Schedule {
    /// Parses a schedule as Kubernetes' cron library does.
    pub fn parse(spec: &str) -> Result<Self, ParseError> {
        if spec.len() > MAX_LEN {
            return Err(err(format!("schedule is longer than {MAX_LEN} characters")));
        }
        let mut spec = spec;
        let mut zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let (Some(eq), Some(space)) = (spec.find('='), spec.find(' ')) else {
                return Err(err(format!(
                    "provided bad location {spec}: a time zone prefix must be followed by a space and the schedule"
                )));
            };
            let name = &spec[eq + 1..space];
            zone = Some(
                TimeZone::get(name)
                    .map_err(|e| err(format!("provided bad location {name}: {e}")))?,
            );
            spec = spec[space..].trim();
        }
        let kind = if spec.starts_with('@') {
            descriptor(spec)?
        } else {
            let fields: Vec<&str> = spec.split_whitespace().collect();
            if fields.len() != 5 {
                return Err(err(format!(
                    "expected exactly 5 fields, found {}: [{}]",
                    fields.len(),
                    fields.join(" ")
                )));
            }
            let (dom, dom_star) = field(fields[2], &DOM)?;
            let (dow, dow_star) = field(fields[4], &DOW)?;
            Kind::Fields(Fields {
                minutes: field(fields[0], &MINUTES)?.0,
                hours: field(fields[1], &HOURS)?.0,
                dom,
                months: field(fields[3], &MONTHS)?.0,
                dow,
                dom_star,
                dow_star,
            })
        };
        Ok(Self { kind, zone })
    }

    /// Whether the schedule named its own zone with a `TZ=`/`CRON_TZ=` prefix.
    pub fn has_zone_prefix(&self) -> bool {
        self.zone.is_some()
    }

    /// The first run strictly after `after`, on the wall clock of the prefix zone if the
    /// schedule has one, else of `zone`. `None` when there is none within five years
    /// (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let zone = self.zone.as_ref().unwrap_or(zone);
        match self.kind {
            Kind::Every(secs) => {
                // The library adds the delay to the time with its fraction of a second cut.
                let whole = after.as_second() - i64::from(after.subsec_nanosecond() < 0);
                Timestamp::from_second(whole.checked_add(secs)?).ok()
            }
            Kind::Fields(f) => next_fields(&f, after, zone),
        }
    }
}

fn descriptor(spec: &str) -> Result<Kind, ParseError> {
    let all_days =
        |minutes: u64, hours: u64, dom: u64, months: u64, dow: u64, stars: (bool, bool)| {
            Kind::Fields(Fields {
                minutes,
                hours,
                dom,
                months,
                dow,
                dom_star: stars.0,
                dow_star: stars.1,
            })
        };
    let every = |b: &Bounds| bits(b.min, b.max, 1);
    Ok(match spec {
        "@yearly" | "@annually" => all_days(1, 1, 1 << 1, 1 << 1, every(&DOW), (false, true)),
        "@monthly" => all_days(1, 1, 1 << 1, every(&MONTHS), every(&DOW), (false, true)),
        "@weekly" => all_days(1, 1, every(&DOM), every(&MONTHS), 1, (true, false)),
        "@daily" | "@midnight" => {
            all_days(1, 1, every(&DOM), every(&MONTHS), every(&DOW), (true, true))
        }
        "@hourly" => all_days(
            1,
            every(&HOURS),
            every(&DOM),
            every(&MONTHS),
            every(&DOW),
            (true, true),
        ),
        _ => match spec.strip_prefix("@every ") {
            Some(d) => {
                let nanos = go_duration(d)
                    .map_err(|e| err(format!("failed to parse duration {spec}: {e}")))?;
                // Shorter than a second runs every second; fractions are cut.
                Kind::Every((nanos / 1_000_000_000).max(1) as i64)
            }
            None => return Err(err(format!("unrecognized descriptor: {spec}"))),
        },
    })
}

/// Parses a Go `time.Duration` string (`1h30m`, `90s`, `1.5h`, `-2m`) into nanoseconds.
fn go_duration(s: &str) -> Result<i128, String> {
    let orig = s;
    let invalid = || format!("time: invalid duration \"{orig}\"");
    let (neg, mut s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|b| *b != b'.' && !b.is_ascii_digit())
            .count();
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration \"{orig}\"")),
            other => {
                return Err(format!(
                    "time: unknown unit \"{other}\" in duration \"{orig}\""
                ));
            }
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(invalid)?;
        let mut div = 1i128;
        for d in frac_part.bytes().take(18) {
            div *= 10;
            value += i128::from(d - b'0') * scale / div;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if neg { -total } else { total })
}

/// One field: a comma list of ranges. Returns the bits and whether it counts as a star.
fn field(expr: &str, b: &Bounds) -> Result<(u64, bool), ParseError> {
    let mut out = 0;
    let mut star = false;
    for part in expr.split(',') {
        let (bits, s) = range(part, b)?;
        out |= bits;
        star |= s;
    }
    Ok((out, star))
}

fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), ParseError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut star) = if low_high[0] == "*" || low_high[0] == "?" {
        (b.min, b.max, true)
    } else {
        let start = int_or_name(low_high[0], b)?;
        let end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b)?,
            _ => return Err(err(format!("too many hyphens: {expr}"))),
        };
        (start, end, false)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = positive_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(err(format!("too many slashes: {expr}"))),
    };
    if start < b.min {
        return Err(err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        )));
    }
    if end > b.max {
        return Err(err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        )));
    }
    if start > end {
        return Err(err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(err(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    Ok((bits(start, end, step), star))
}

fn int_or_name(expr: &str, b: &Bounds) -> Result<u64, ParseError> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, v)) = b.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    positive_int(expr)
}

/// Go's `strconv.Atoi` plus the library's "negative number" check.
fn positive_int(expr: &str) -> Result<u64, ParseError> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax"
        )));
    }
    let n: i64 = expr.parse().map_err(|_| {
        err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": value out of range"
        ))
    })?;
    u64::try_from(n).map_err(|_| err(format!("negative number ({n}) not allowed: {expr}")))
}

/// Bits `start..=end` every `step` (`end` ≤ 59, so every bit fits).
fn bits(start: u64, end: u64, step: u64) -> u64 {
    let mut out = 0;
    let mut v = start;
    while v <= end && v < 64 {
        out |= 1 << v;
        v = match v.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    out
}

fn has(set: u64, v: i8) -> bool {
    (0..64).contains(&v) && set & (1 << v) != 0
}

fn day_matches(f: &Fields, dt: DateTime) -> bool {
    let dom = has(f.dom, dt.day());
    let dow = has(f.dow, dt.weekday().to_sunday_zero_offset());
    if f.dom_star || f.dow_star {
        dom && dow
    } else {
        dom || dow
    }
}

/// Go's `time.Date` in `zone`: a wall time skipped by a transition resolves with the offset
/// before it, a repeated one by the first offset lookup — exactly where Go lands, so runs
/// around daylight-saving changes happen when Kubernetes runs them.
fn go_date(dt: DateTime, zone: &TimeZone) -> Option<i64> {
    let local = Offset::UTC.to_timestamp(dt).ok()?.as_second();
    let first = zone.to_offset(Timestamp::from_second(local).ok()?);
    let mut offset = first.seconds();
    if offset != 0 {
        let utc = local - i64::from(offset);
        let second = zone.to_offset(Timestamp::from_second(utc).ok()?);
        if second != first {
            offset = second.seconds();
        }
    }
    Some(local - i64::from(offset))
}

/// Go's `AddDate(0, months, days)`: calendar arithmetic with overflowing days carried over
/// (Jan 31 + 1 month = Mar 3), the wall clock kept, then resolved like `time.Date`.
fn add_date(dt: DateTime, months: i32, days: i32, zone: &TimeZone) -> Option<i64> {
    let first = Date::new(dt.year(), dt.month(), 1).ok()?;
    let shifted = first
        .checked_add(jiff::Span::new().try_months(months).ok()?)
        .ok()?;
    let date = shifted
        .checked_add(
            jiff::Span::new()
                .try_days(i32::from(dt.day()) - 1 + days)
                .ok()?,
        )
        .ok()?;
    go_date(date.to_datetime(dt.time()), zone)
}

fn civil(t: i64, zone: &TimeZone) -> Option<DateTime> {
    Some(zone.to_datetime(Timestamp::from_second(t).ok()?))
}

fn next_fields(f: &Fields, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
    // Start at the next whole second.
    let whole = after.as_second() - i64::from(after.subsec_nanosecond() < 0);
    let mut t = whole.checked_add(1)?;
    let mut dt = civil(t, zone)?;
    let year_limit = dt.year().checked_add(YEARS_AHEAD)?;
    let mut added = false;
    let mut steps = 0u32;
    let mut step = || {
        steps += 1;
        steps <= MAX_STEPS
    };
    'wrap: loop {
        if !step() || dt.year() > year_limit {
            return None;
        }
        while !has(f.months, dt.month()) {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                t = go_date(
                    Date::new(dt.year(), dt.month(), 1)
                        .ok()?
                        .to_datetime(jiff::civil::Time::midnight()),
                    zone,
                )?;
                dt = civil(t, zone)?;
            }
            t = add_date(dt, 1, 0, zone)?;
            dt = civil(t, zone)?;
            if dt.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(f, dt) {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                t = go_date(dt.date().to_datetime(jiff::civil::Time::midnight()), zone)?;
                dt = civil(t, zone)?;
            }
            t = add_date(dt, 0, 1, zone)?;
            dt = civil(t, zone)?;
            // Midnight may not exist on a daylight-saving day: move back onto the day.
            let h = i64::from(dt.hour());
            if h != 0 {
                t += if h > 12 { (24 - h) * 3600 } else { -h * 3600 };
                dt = civil(t, zone)?;
            }
            if dt.day() == 1 {
                continue 'wrap;
            }
        }
        while !has(f.hours, dt.hour()) {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                t = go_date(
                    dt.date()
                        .to_datetime(jiff::civil::Time::new(dt.hour(), 0, 0, 0).ok()?),
                    zone,
                )?;
            }
            t = t.checked_add(3600)?;
            dt = civil(t, zone)?;
            if dt.hour() == 0 {
                continue 'wrap;
            }
        }
        while !has(f.minutes, dt.minute()) {
            if !step() {
                return None;
            }
            if !added {
                added = true;
                t -= t.rem_euclid(60);
            }
            t = t.checked_add(60)?;
            dt = civil(t, zone)?;
            if dt.minute() == 0 {
                continue 'wrap;
            }
        }
        if dt.second() != 0 {
            // Seconds only ever match 0: move to the next wall minute and look again.
            added = true;
            t = t.checked_add(60 - i64::from(dt.second()))?;
            dt = civil(t, zone)?;
            continue 'wrap;
        }
        return Timestamp::from_second(t).ok();
    }
}

/// The outcome of looking for the run that is due, as Kubernetes' `mostRecentScheduleTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The latest run time at or before `now`, if any since `earliest`.
    pub most_recent: Option<Timestamp>,
    /// More than 100 run times were missed (Kubernetes' `TooManyMissedTimes`).
    pub too_many_missed: bool,
}

/// How many missed runs Kubernetes tolerates before it warns.
pub const MISSED_LIMIT: i64 = 100;
/// Bound on the final walk to the most recent run (Kubernetes walks unbounded).
const WALK_LIMIT: u32 = 10_000;

/// The most recent run strictly after `earliest` and at or before `now`, computed the way
/// Kubernetes does: if two or more runs passed, the count is estimated from the distance
/// between the first two, and the walk to the latest starts one interval before the
/// estimate (exact for regular schedules and `@every`, close for irregular ones).
/// `Err` for a schedule whose first two runs are less than a second apart or never come.
pub fn most_recent(
    schedule: &Schedule,
    earliest: Timestamp,
    now: Timestamp,
    zone: &TimeZone,
) -> Result<Due, ParseError> {
    let none = Due {
        most_recent: None,
        too_many_missed: false,
    };
    let Some(t1) = schedule.next(earliest, zone) else {
        return Ok(none);
    };
    if now < t1 {
        return Ok(none);
    }
    let Some(t2) = schedule.next(t1, zone) else {
        return Ok(Due {
            most_recent: Some(t1),
            too_many_missed: false,
        });
    };
    if now < t2 {
        return Ok(Due {
            most_recent: Some(t1),
            too_many_missed: false,
        });
    }
    let between = t2.duration_since(t1).as_secs_f64().round() as i64;
    if between < 1 {
        return Err(err(
            "time difference between two schedules is less than 1 second",
        ));
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed = elapsed / between + 1;
    let back = (missed - 2).saturating_mul(between);
    let mut t = t1
        .checked_add(SignedDuration::from_secs(back))
        .unwrap_or(t1);
    let mut latest = None;
    for _ in 0..WALK_LIMIT {
        match schedule.next(t, zone) {
            Some(n) if n <= now => {
                latest = Some(n);
                t = n;
            }
            _ => break,
        }
    }
    Ok(Due {
        most_recent: latest,
        too_many_missed: missed > MISSED_LIMIT,
    })
}

#[cfg(test)]
mod tests;
