//! Instants as people read them on a page.

use tollgate_domain::calendar::civil_from_days;

/// `YYYY-MM-DD HH:MM:SS UTC` of milliseconds since the epoch.
pub(crate) fn utc(ms: i64) -> String {
    let day = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(day);
    let s = ms.rem_euclid(86_400_000) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn instants_read_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::utc(1_795_478_400_000 + 3_723_000),
            "2026-11-24 01:02:03 UTC"
        );
    }
}
