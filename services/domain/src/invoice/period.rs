//! A tenant's billing periods: monthly, each starting on the anchor day of the month at local
//! midnight in the tenant's IANA time zone (a day past the month's end is its last day; a midnight
//! skipped by a daylight-saving change is the first instant after the gap), kept as UTC instants.
//! Consecutive periods tile time: each ends where the next starts, so every instant is in exactly
//! one period.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Why a period cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("the anchor day must be between 1 and 31, not {0}")]
    AnchorDay(u8),
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("the instant is outside the supported calendar")]
    OutOfRange,
    #[error("{0:?} is not a period (YYYY-MM)")]
    Label(String),
}

/// One billing period: `[start_ms, end_ms)` in milliseconds since the epoch (UTC), and the year
/// and month of its start in the tenant's time zone, which name it (`2026-12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
    pub year: i16,
    pub month: i8,
}

impl Period {
    pub fn contains(&self, at_ms: i64) -> bool {
        self.start_ms <= at_ms && at_ms < self.end_ms
    }

    /// `YYYY-MM`, the period's name.
    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// An RFC 3339 instant (`2026-12-07T10:00:00Z`, `2026-12-07T11:00:00+01:00`) in milliseconds
/// since the epoch.
pub fn parse_instant(text: &str) -> Option<i64> {
    let t: Timestamp = text.trim().parse().ok()?;
    Some(t.as_millisecond())
}

/// When a tenant's periods start: the anchor day (1–31) at midnight in a time zone.
#[derive(Debug, Clone)]
pub struct PeriodRule {
    anchor_day: i8,
    tz: TimeZone,
}

impl Default for PeriodRule {
    /// Calendar months in UTC.
    fn default() -> Self {
        Self {
            anchor_day: 1,
            tz: TimeZone::UTC,
        }
    }
}

impl PeriodRule {
    /// `anchor_day` 1–31; `time_zone` an IANA name (`Europe/Paris`) from the bundled database.
    pub fn new(anchor_day: u8, time_zone: &str) -> Result<Self, PeriodError> {
        if !(1..=31).contains(&anchor_day) {
            return Err(PeriodError::AnchorDay(anchor_day));
        }
        let tz =
            TimeZone::get(time_zone).map_err(|_| PeriodError::TimeZone(time_zone.to_owned()))?;
        Ok(Self {
            anchor_day: i8::try_from(anchor_day).map_err(|_| PeriodError::AnchorDay(anchor_day))?,
            tz,
        })
    }

    /// The period that contains `at_ms`.
    pub fn period_at(&self, at_ms: i64) -> Result<Period, PeriodError> {
        let at = Timestamp::from_millisecond(at_ms).map_err(|_| PeriodError::OutOfRange)?;
        let local = at.to_zoned_datetime(self.tz.clone()).date();
        let (mut year, mut month) = (local.year(), local.month());
        if at_ms < self.start_of(year, month)? {
            (year, month) = previous(year, month);
        }
        self.period_from(year, month)
    }

    /// The local calendar date (`YYYY-MM-DD`) of an instant in the rule's time zone.
    pub fn local_date(&self, at_ms: i64) -> Result<String, PeriodError> {
        let at = Timestamp::from_millisecond(at_ms).map_err(|_| PeriodError::OutOfRange)?;
        Ok(at.to_zoned_datetime(self.tz.clone()).date().to_string())
    }

    /// The period after `p`.
    pub fn next(&self, p: &Period) -> Result<Period, PeriodError> {
        let (year, month) = following(p.year, p.month);
        self.period_from(year, month)
    }

    /// The period named `YYYY-MM` (the one that starts in that month).
    pub fn named(&self, label: &str) -> Result<Period, PeriodError> {
        let bad = || PeriodError::Label(label.to_owned());
        let (y, m) = label.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i16 = y.parse().map_err(|_| bad())?;
        let month: i8 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) {
            return Err(bad());
        }
        self.period_from(year, month)
    }

    fn period_from(&self, year: i16, month: i8) -> Result<Period, PeriodError> {
        let (next_year, next_month) = following(year, month);
        Ok(Period {
            start_ms: self.start_of(year, month)?,
            end_ms: self.start_of(next_year, next_month)?,
            year,
            month,
        })
    }

    /// The first instant of the period that starts in `year`-`month`.
    fn start_of(&self, year: i16, month: i8) -> Result<i64, PeriodError> {
        let first = Date::new(year, month, 1).map_err(|_| PeriodError::OutOfRange)?;
        let day = self.anchor_day.min(first.days_in_month());
        let start = Date::new(year, month, day)
            .and_then(|d| d.to_zoned_datetime(self.tz.clone()))
            .map_err(|_| PeriodError::OutOfRange)?;
        Ok(start.timestamp().as_millisecond())
    }
}

fn following(year: i16, month: i8) -> (i16, i8) {
    if month == 12 {
        (year.saturating_add(1), 1)
    } else {
        (year, month + 1)
    }
}

fn previous(year: i16, month: i8) -> (i16, i8) {
    if month == 1 {
        (year.saturating_sub(1), 12)
    } else {
        (year, month - 1)
    }
}

#[cfg(test)]
mod tests;
