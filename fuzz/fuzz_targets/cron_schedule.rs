//! CronJob schedules: `after(u32 LE) now-delta(u32 LE) spec`. A parsed schedule's next run
//! is after the given time (and, on a clock without DST, the first one), and Kubernetes'
//! most-recent estimate stays between `earliest` and `now`.
#![no_main]

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use kadm_fuzz::schedule::{Schedule, most_recent};
use libfuzzer_sys::fuzz_target;

/// 2020-01-01T00:00:00Z: inputs count seconds from here (to year 2156).
const BASE: i64 = 1_577_836_800;

fn new_york() -> Option<&'static TimeZone> {
    static ZONE: OnceLock<Option<TimeZone>> = OnceLock::new();
    ZONE.get_or_init(|| TimeZone::get("America/New_York").ok())
        .as_ref()
}

fn seconds(bytes: &[u8]) -> i64 {
    i64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let after = Timestamp::from_second(BASE + seconds(&data[0..4])).unwrap();
    let now =
        Timestamp::from_second(BASE + seconds(&data[0..4]) + seconds(&data[4..8]) % (400 * 86_400))
            .unwrap();
    let Ok(spec) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let Ok(schedule) = Schedule::parse(spec) else {
        return;
    };
    let mut zones = vec![TimeZone::UTC];
    zones.extend(new_york().cloned());
    for zone in &zones {
        if let Some(next) = schedule.next(after, zone) {
            assert!(next > after, "{spec:?}: next({after}) = {next}");
            // Without DST every run in (next - 1s, next] is `next`: the search did not
            // skip one. `@every` counts from its start instead, so it is left out.
            let every = spec.split_whitespace().any(|w| w == "@every");
            if zone == &TimeZone::UTC && !schedule.has_zone_prefix() && !every {
                let just_before = next - jiff::SignedDuration::from_secs(1);
                if just_before >= after {
                    assert_eq!(
                        schedule.next(just_before, zone),
                        Some(next),
                        "{spec:?} from {just_before}"
                    );
                }
            }
        }
        if let Ok(due) = most_recent(&schedule, after, now, zone)
            && let Some(m) = due.most_recent
        {
            assert!(
                m > after && m <= now,
                "{spec:?}: most recent {m} outside ({after}, {now}]"
            );
        }
    }
});
