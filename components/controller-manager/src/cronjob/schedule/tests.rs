use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn utc() -> TimeZone {
    TimeZone::UTC
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).expect("zone in the system tz database")
}

fn next(spec: &str, after: &str, z: &TimeZone) -> Option<String> {
    Schedule::parse(spec)
        .expect("parses")
        .next(ts(after), z)
        .map(|t| t.to_string())
}

fn parse_err(spec: &str) -> String {
    Schedule::parse(spec)
        .expect_err("must not parse")
        .to_string()
}

/// The next `n` runs after `after`, in UTC.
fn runs(spec: &str, after: &str, n: usize, z: &TimeZone) -> Vec<String> {
    let s = Schedule::parse(spec).expect("parses");
    let mut t = ts(after);
    let mut out = Vec::new();
    for _ in 0..n {
        t = s.next(t, z).expect("a next run");
        out.push(t.to_string());
    }
    out
}

#[test]
fn fields_expand_lists_ranges_steps_and_names() {
    let f = |spec: &str| match Schedule::parse(spec).expect("parses").kind {
        Kind::Fields(f) => f,
        Kind::Every(_) => panic!("not a field schedule"),
    };
    let m = f("0,15,30-32 * * * *");
    assert_eq!(m.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 31 | 1 << 32);
    assert_eq!(f("*/20 * * * *").minutes, 1 | 1 << 20 | 1 << 40);
    assert_eq!(f("10/20 * * * *").minutes, 1 << 10 | 1 << 30 | 1 << 50);
    assert_eq!(f("10-40/15 * * * *").minutes, 1 << 10 | 1 << 25 | 1 << 40);
    assert_eq!(f("* 9-17/4 * * *").hours, 1 << 9 | 1 << 13 | 1 << 17);
    assert_eq!(
        f("* * * JAN,mar-May *").months,
        1 << 1 | 1 << 3 | 1 << 4 | 1 << 5
    );
    assert_eq!(f("* * * * Mon-FRI").dow, 0b11_1110);
    assert_eq!(f("* * * * sun,sat").dow, 1 | 1 << 6);
    assert_eq!(f("* * ? * *").dom, bits(1, 31, 1));
    let stars = f("* * * * 1");
    assert!(stars.dom_star && !stars.dow_star);
    // A step above one is no star any more; a step of one still is.
    assert!(!f("* * */2 * 1").dom_star);
    assert!(f("* * */1 * 1").dom_star);
    assert!(f("* * 1 * */1").dow_star);
}

#[test]
fn macros_mean_what_the_cron_library_says() {
    let z = utc();
    assert_eq!(
        next("@hourly", "2024-05-05T10:20:00Z", &z).as_deref(),
        Some("2024-05-05T11:00:00Z")
    );
    for daily in ["@daily", "@midnight"] {
        assert_eq!(
            next(daily, "2024-05-05T10:20:00Z", &z).as_deref(),
            Some("2024-05-06T00:00:00Z")
        );
    }
    // 2024-05-05 is a Sunday: the next Sunday midnight is the 12th.
    assert_eq!(
        next("@weekly", "2024-05-05T10:20:00Z", &z).as_deref(),
        Some("2024-05-12T00:00:00Z")
    );
    assert_eq!(
        next("@monthly", "2024-05-05T10:20:00Z", &z).as_deref(),
        Some("2024-06-01T00:00:00Z")
    );
    for yearly in ["@yearly", "@annually"] {
        assert_eq!(
            next(yearly, "2024-05-05T10:20:00Z", &z).as_deref(),
            Some("2025-01-01T00:00:00Z")
        );
    }
    assert_eq!(parse_err("@often"), "unrecognized descriptor: @often");
    assert_eq!(parse_err("@HOURLY"), "unrecognized descriptor: @HOURLY");
}

#[test]
fn every_adds_whole_seconds_to_the_previous_run() {
    let z = utc();
    assert_eq!(
        next("@every 90s", "2024-05-05T10:20:00.750Z", &z).as_deref(),
        Some("2024-05-05T10:21:30Z")
    );
    assert_eq!(
        next("@every 1h30m", "2024-05-05T10:20:00Z", &z).as_deref(),
        Some("2024-05-05T11:50:00Z")
    );
    assert_eq!(
        next("@every 1.5m", "2024-05-05T10:20:00Z", &z).as_deref(),
        Some("2024-05-05T10:21:30Z")
    );
    // Below a second (or negative) runs every second, as the library clamps it.
    assert_eq!(
        next("@every 500ms", "2024-05-05T10:20:00Z", &z).as_deref(),
        Some("2024-05-05T10:20:01Z")
    );
    assert_eq!(
        next("@every -5m", "2024-05-05T10:20:00Z", &z).as_deref(),
        Some("2024-05-05T10:20:01Z")
    );
    assert!(parse_err("@every").contains("unrecognized descriptor"));
    assert_eq!(
        parse_err("@every 5"),
        "failed to parse duration @every 5: time: missing unit in duration \"5\""
    );
    assert_eq!(
        parse_err("@every 5d"),
        "failed to parse duration @every 5d: time: unknown unit \"d\" in duration \"5d\""
    );
    assert!(parse_err("@every 1h..2m").contains("invalid duration"));
}

#[test]
fn next_run_is_strictly_after_and_on_the_minute() {
    let z = utc();
    assert_eq!(
        next("*/15 * * * *", "2024-05-05T10:07:30Z", &z).as_deref(),
        Some("2024-05-05T10:15:00Z")
    );
    // Exactly on a run: the following one.
    assert_eq!(
        next("*/15 * * * *", "2024-05-05T10:15:00Z", &z).as_deref(),
        Some("2024-05-05T10:30:00Z")
    );
    assert_eq!(
        next("* * * * *", "2024-05-05T10:15:59.999Z", &z).as_deref(),
        Some("2024-05-05T10:16:00Z")
    );
    assert_eq!(
        next("59 23 31 12 *", "2024-05-05T10:15:00Z", &z).as_deref(),
        Some("2024-12-31T23:59:00Z")
    );
    assert_eq!(
        runs("0 9-17/4 * * *", "2024-05-05T00:00:00Z", 4, &z),
        [
            "2024-05-05T09:00:00Z",
            "2024-05-05T13:00:00Z",
            "2024-05-05T17:00:00Z",
            "2024-05-06T09:00:00Z"
        ]
    );
}

#[test]
fn day_of_month_and_weekday_combine_like_vixie_cron() {
    let z = utc();
    // Both restricted: either matches. 2024-05-06 is a Monday.
    assert_eq!(
        runs("0 0 1 * 1", "2024-04-29T12:00:00Z", 3, &z),
        [
            "2024-05-01T00:00:00Z",
            "2024-05-06T00:00:00Z",
            "2024-05-13T00:00:00Z"
        ]
    );
    // One is a star: both must match (Mondays only).
    assert_eq!(
        runs("0 0 * * 1", "2024-04-29T12:00:00Z", 2, &z),
        ["2024-05-06T00:00:00Z", "2024-05-13T00:00:00Z"]
    );
    // "*/2" is not a star: Friday the 13th or any odd day.
    assert_eq!(
        runs("0 0 */2 * 5", "2024-09-10T12:00:00Z", 3, &z),
        [
            "2024-09-11T00:00:00Z",
            "2024-09-13T00:00:00Z",
            "2024-09-15T00:00:00Z"
        ]
    );
}

#[test]
fn rare_and_impossible_dates() {
    let z = utc();
    assert_eq!(
        next("0 0 29 2 *", "2025-03-01T00:00:00Z", &z).as_deref(),
        Some("2028-02-29T00:00:00Z")
    );
    assert_eq!(next("0 0 30 2 *", "2025-03-01T00:00:00Z", &z), None);
    assert_eq!(next("0 0 31 4,6,9,11 *", "2025-03-01T00:00:00Z", &z), None);
    // Friday the 13th, both restricted fields… as an AND through "*": none special.
    assert_eq!(
        next("0 0 31 * *", "2024-04-01T00:00:00Z", &z).as_deref(),
        Some("2024-05-31T00:00:00Z")
    );
}

#[test]
fn time_zones_from_the_spec_and_from_a_prefix() {
    let berlin = zone("Europe/Berlin");
    // Winter: UTC+1.
    assert_eq!(
        next("0 9 * * *", "2024-01-10T00:00:00Z", &berlin).as_deref(),
        Some("2024-01-10T08:00:00Z")
    );
    // Summer: UTC+2.
    assert_eq!(
        next("0 9 * * *", "2024-07-10T00:00:00Z", &berlin).as_deref(),
        Some("2024-07-10T07:00:00Z")
    );
    // A prefix wins over the zone the caller passes.
    let s = Schedule::parse("CRON_TZ=Asia/Tokyo 0 9 * * *").expect("parses");
    assert!(s.has_zone_prefix());
    assert_eq!(
        s.next(ts("2024-01-10T01:00:00Z"), &berlin)
            .map(|t| t.to_string()),
        Some("2024-01-11T00:00:00Z".into())
    );
    let s = Schedule::parse("TZ=UTC   @hourly").expect("parses");
    assert_eq!(
        s.next(ts("2024-01-10T01:10:00Z"), &berlin)
            .map(|t| t.to_string()),
        Some("2024-01-10T02:00:00Z".into())
    );
    assert!(
        parse_err("TZ=Mars/Olympus 0 9 * * *").starts_with("provided bad location Mars/Olympus")
    );
    assert!(parse_err("TZ=UTC").starts_with("provided bad location"));
}

#[test]
fn daylight_saving_gaps_are_skipped_and_repeats_run_twice() {
    let ny = zone("America/New_York");
    // 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    assert_eq!(
        runs("30 2 * * *", "2024-03-09T12:00:00Z", 2, &ny),
        ["2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"]
    );
    // 2024-11-03: 01:00–02:00 happens twice (EDT, then EST); the library runs both.
    assert_eq!(
        runs("30 1 * * *", "2024-11-03T04:00:00Z", 3, &ny),
        [
            "2024-11-03T05:30:00Z",
            "2024-11-03T06:30:00Z",
            "2024-11-04T06:30:00Z"
        ]
    );
    // Hourly runs stay an hour apart across the jump.
    assert_eq!(
        runs("0 * * * *", "2024-03-10T06:30:00Z", 3, &ny),
        [
            "2024-03-10T07:00:00Z",
            "2024-03-10T08:00:00Z",
            "2024-03-10T09:00:00Z"
        ]
    );
    // A midnight that does not exist (Santiago, 2024-09-08 00:00 → 01:00) is skipped.
    let santiago = zone("America/Santiago");
    assert_eq!(
        runs("0 0 * * *", "2024-09-06T12:00:00Z", 3, &santiago),
        [
            "2024-09-07T04:00:00Z",
            "2024-09-09T03:00:00Z",
            "2024-09-10T03:00:00Z"
        ]
    );
}

#[test]
fn errors_carry_the_cron_library_messages() {
    assert_eq!(
        parse_err("* * * *"),
        "expected exactly 5 fields, found 4: [* * * *]"
    );
    assert_eq!(parse_err(""), "expected exactly 5 fields, found 0: []");
    assert_eq!(
        parse_err("0 0 * * * *"),
        "expected exactly 5 fields, found 6: [0 0 * * * *]"
    );
    assert_eq!(
        parse_err("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(
        parse_err("* * 0 * *"),
        "beginning of range (0) below minimum (1): 0"
    );
    assert_eq!(
        parse_err("* * * * 7"),
        "end of range (7) above maximum (6): 7"
    );
    assert_eq!(
        parse_err("5-1 * * * *"),
        "beginning of range (5) beyond end of range (1): 5-1"
    );
    assert_eq!(
        parse_err("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(parse_err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(parse_err("1/2/3 * * * *"), "too many slashes: 1/2/3");
    assert_eq!(
        parse_err("x * * * *"),
        "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        parse_err("1,,2 * * * *"),
        "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
    );
    assert_eq!(
        parse_err("99999999999999999999 * * * *"),
        "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value out of range"
    );
    assert!(parse_err("* * * foo *").contains("failed to parse int from foo"));
    assert!(parse_err(&"* ".repeat(600)).contains("longer than"));
}

#[test]
fn most_recent_counts_missed_runs_like_kubernetes() {
    let z = utc();
    let every_minute = Schedule::parse("* * * * *").expect("parses");
    // Nothing due yet.
    let d = most_recent(
        &every_minute,
        ts("2024-05-05T10:00:10Z"),
        ts("2024-05-05T10:00:50Z"),
        &z,
    )
    .expect("ok");
    assert_eq!(d.most_recent, None);
    // Exactly one due.
    let d = most_recent(
        &every_minute,
        ts("2024-05-05T10:00:10Z"),
        ts("2024-05-05T10:01:50Z"),
        &z,
    )
    .expect("ok");
    assert_eq!(d.most_recent, Some(ts("2024-05-05T10:01:00Z")));
    // Five missed: the latest, not too many.
    let d = most_recent(
        &every_minute,
        ts("2024-05-05T10:00:00Z"),
        ts("2024-05-05T10:05:30Z"),
        &z,
    )
    .expect("ok");
    assert_eq!(d.most_recent, Some(ts("2024-05-05T10:05:00Z")));
    assert!(!d.too_many_missed);
    // Two hundred missed: still the latest, and flagged.
    let d = most_recent(
        &every_minute,
        ts("2024-05-05T10:00:00Z"),
        ts("2024-05-05T13:20:30Z"),
        &z,
    )
    .expect("ok");
    assert_eq!(d.most_recent, Some(ts("2024-05-05T13:20:00Z")));
    assert!(d.too_many_missed);
    // An irregular schedule (weekdays 06:30, 10:30, 14:30): over a weekend.
    let irregular = Schedule::parse("30 6-16/4 * * 1-5").expect("parses");
    let d = most_recent(
        &irregular,
        ts("2024-05-03T15:00:00Z"),
        ts("2024-05-06T11:00:00Z"),
        &z,
    )
    .expect("ok");
    assert_eq!(d.most_recent, Some(ts("2024-05-06T10:30:00Z")));
    // @every: exact multiples of the delay after the earliest time.
    let every = Schedule::parse("@every 7m").expect("parses");
    let d = most_recent(
        &every,
        ts("2024-05-05T10:00:00Z"),
        ts("2024-05-05T11:00:00Z"),
        &z,
    )
    .expect("ok");
    assert_eq!(d.most_recent, Some(ts("2024-05-05T10:56:00Z")));
    // A schedule that never runs has nothing due.
    let never = Schedule::parse("0 0 30 2 *").expect("parses");
    let d = most_recent(
        &never,
        ts("2024-05-05T10:00:00Z"),
        ts("2034-05-05T10:00:00Z"),
        &z,
    )
    .expect("ok");
    assert_eq!(d.most_recent, None);
}

#[test]
fn arbitrary_input_never_panics_or_hangs() {
    // A deterministic generator over the characters schedules are made of.
    const ALPHABET: &[u8] = b"0123456789*?/-, @abcdefhjlmnorstuvwyATZCRON_=\t";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let z = zone("Europe/London");
    let start = std::time::Instant::now();
    let mut parsed = 0;
    const TOKENS: &[&str] = &[
        "*", "?", "*/7", "0", "5", "13", "29", "31", "1-5", "2-30/3", "10/15", "mon-fri",
        "jan,jul", "sun", "0,30", "59", "23", "2", "6", "12",
    ];
    for i in 0..20_000 {
        let s: String = if i % 2 == 0 {
            let len = (rnd() % 24) as usize;
            (0..len)
                .map(|_| ALPHABET[(rnd() % ALPHABET.len() as u64) as usize] as char)
                .collect()
        } else {
            (0..5)
                .map(|_| TOKENS[(rnd() % TOKENS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        };
        if let Ok(sched) = Schedule::parse(&s) {
            parsed += 1;
            let t = Timestamp::from_second((rnd() % 4_000_000_000) as i64).expect("ts");
            if let Some(n) = sched.next(t, &z) {
                assert!(n > t, "{s:?}: {n} not after {t}");
            }
        }
    }
    for s in [
        "TZ=",
        "TZ= ",
        "CRON_TZ=",
        "@every ",
        "@every 9223372036854775807h",
        "- * * * *",
        "*/ * * * *",
        "/ * * * *",
        "*-* * * * *",
        "\u{00e9} * * * *",
        "0 0 31 2 *",
        "59 23 29 2 1",
        "@every .s",
        "@every 1.s",
        "@every 0",
    ] {
        if let Ok(sched) = Schedule::parse(s) {
            let _ = sched.next(ts("2024-02-29T23:59:59Z"), &z);
        }
    }
    assert!(
        parsed > 0,
        "the generator should produce some valid schedules"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}
