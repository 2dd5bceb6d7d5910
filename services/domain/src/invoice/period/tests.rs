#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

/// Milliseconds since the epoch of a UTC date and time.
fn utc(y: i16, m: i8, d: i8, h: i8, min: i8) -> i64 {
    jiff::civil::date(y, m, d)
        .at(h, min, 0, 0)
        .to_zoned_datetime(TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

#[test]
fn calendar_months_in_utc_by_default() {
    let rule = PeriodRule::default();
    let p = rule.period_at(utc(2026, 12, 7, 5, 0)).unwrap();
    assert_eq!(
        (p.start_ms, p.end_ms),
        (utc(2026, 12, 1, 0, 0), utc(2027, 1, 1, 0, 0))
    );
    assert_eq!(p.label(), "2026-12");
    assert_eq!(rule.next(&p).unwrap().label(), "2027-01");
}

#[test]
fn an_anchor_past_the_months_end_is_its_last_day() {
    let rule = PeriodRule::new(31, "UTC").unwrap();
    let p = rule.period_at(utc(2026, 2, 15, 0, 0)).unwrap();
    assert_eq!(
        (p.start_ms, p.end_ms),
        (utc(2026, 1, 31, 0, 0), utc(2026, 2, 28, 0, 0))
    );
    assert_eq!(p.label(), "2026-01");
    let q = rule.next(&p).unwrap();
    assert_eq!(
        (q.start_ms, q.end_ms),
        (utc(2026, 2, 28, 0, 0), utc(2026, 3, 31, 0, 0))
    );
}

#[test]
fn local_midnight_across_daylight_saving_changes() {
    // Paris: CET (UTC+1) in winter, CEST (UTC+2) from the last Sunday of March.
    let rule = PeriodRule::new(1, "Europe/Paris").unwrap();
    let p = rule.period_at(utc(2026, 3, 15, 12, 0)).unwrap();
    assert_eq!(p.start_ms, utc(2026, 2, 28, 23, 0), "1 March 00:00 CET");
    assert_eq!(p.end_ms, utc(2026, 3, 31, 22, 0), "1 April 00:00 CEST");
    // The last hour of March in UTC is already April in Paris.
    assert_eq!(
        rule.period_at(utc(2026, 3, 31, 22, 30)).unwrap().label(),
        "2026-04"
    );
    // Santiago's clocks skip midnight (00:00 → 01:00) on 6 September 2026: the period starts
    // at the first instant after the gap.
    let rule = PeriodRule::new(6, "America/Santiago").unwrap();
    let p = rule.period_at(utc(2026, 9, 20, 0, 0)).unwrap();
    assert_eq!(
        p.start_ms,
        utc(2026, 9, 6, 4, 0),
        "01:00 -03, right after the gap"
    );
}

#[test]
fn bad_rules_are_refused() {
    assert_eq!(
        PeriodRule::new(0, "UTC").unwrap_err(),
        PeriodError::AnchorDay(0)
    );
    assert_eq!(
        PeriodRule::new(32, "UTC").unwrap_err(),
        PeriodError::AnchorDay(32)
    );
    assert!(matches!(
        PeriodRule::new(1, "Mars/Olympus").unwrap_err(),
        PeriodError::TimeZone(_)
    ));
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
];

proptest! {
    /// Every instant (2000–2100) is in exactly one period: the one `period_at` gives contains it,
    /// its neighbours do not, and consecutive periods meet end to start.
    #[test]
    fn every_instant_is_in_exactly_one_period(
        at in 946_684_800_000i64..4_102_444_800_000,
        anchor in 1u8..=31,
        zone in 0usize..ZONES.len(),
    ) {
        let rule = PeriodRule::new(anchor, ZONES[zone]).unwrap();
        let p = rule.period_at(at).unwrap();
        prop_assert!(p.contains(at), "{p:?} {at}");
        let next = rule.next(&p).unwrap();
        prop_assert_eq!(next.start_ms, p.end_ms);
        prop_assert!(!next.contains(at));
        let before = rule.period_at(p.start_ms - 1).unwrap();
        prop_assert_eq!(before.end_ms, p.start_ms);
        prop_assert!(!before.contains(at));
        prop_assert_eq!(rule.period_at(p.start_ms).unwrap(), p);
        // 28 to 31 days, give or take the daylight-saving hour (and Lord Howe's half hour).
        let days = (p.end_ms - p.start_ms) as f64 / 86_400_000.0;
        prop_assert!((27.9..=31.1).contains(&days), "{days} days: {p:?}");
    }
}
