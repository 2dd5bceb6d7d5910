//! UTC calendar periods for spend limits: a day starts at 00:00 UTC, a month at 00:00 UTC on
//! its 1st. No time zones, no leap seconds (Unix time).

const MS_PER_DAY: i64 = 86_400_000;

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A spend period containing an instant: its start (ms) and its label (`20261124`, `202611`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
    pub label: u32,
}

/// The UTC day containing `ms`.
pub fn utc_day(ms: i64) -> Period {
    let days = ms.div_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    Period {
        start_ms: days * MS_PER_DAY,
        end_ms: (days + 1) * MS_PER_DAY,
        label: u32::try_from(y.clamp(0, 9999)).unwrap_or(0) * 10_000 + m * 100 + d,
    }
}

/// The UTC calendar month containing `ms`.
pub fn utc_month(ms: i64) -> Period {
    let (y, m, _) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    Period {
        start_ms: days_from_civil(y, m, 1) * MS_PER_DAY,
        end_ms: days_from_civil(ny, nm, 1) * MS_PER_DAY,
        label: u32::try_from(y.clamp(0, 9999)).unwrap_or(0) * 100 + m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        // 2026-11-24T13:00:00Z
        let ms = 1_795_525_200_000;
        let d = utc_day(ms);
        assert_eq!(d.label, 20_261_124);
        assert_eq!(d.start_ms, 1_795_478_400_000);
        assert_eq!(d.end_ms - d.start_ms, 86_400_000);
        let m = utc_month(ms);
        assert_eq!(m.label, 202_611);
        assert_eq!(m.start_ms, 1_793_491_200_000); // 2026-11-01T00:00:00Z
        assert_eq!(m.end_ms, 1_796_083_200_000); // 2026-12-01T00:00:00Z
        assert_eq!(utc_month(0).label, 197_001);
        // A leap day.
        assert_eq!(
            utc_day(days_from_civil(2028, 2, 29) * 86_400_000).label,
            20_280_229
        );
        assert_eq!(
            utc_month(days_from_civil(2028, 12, 31) * 86_400_000).end_ms,
            days_from_civil(2029, 1, 1) * 86_400_000
        );
    }

    proptest! {
        #[test]
        fn periods_contain_their_instant(ms in 0i64..8_000_000_000_000) {
            for p in [utc_day(ms), utc_month(ms)] {
                prop_assert!(p.start_ms <= ms && ms < p.end_ms);
            }
            let days = ms.div_euclid(86_400_000);
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
