//! Token buckets in exact integer arithmetic, the same in-process and in Redis.
//!
//! A [`Limit`] holds `capacity` tokens and refills continuously at `per_minute` tokens per minute.
//! Levels are kept in units of 1/60,000 token, so one millisecond refills exactly `per_minute`
//! units: no floating point, no drift, and every value stays below 2^53 so a Redis Lua script
//! (whose numbers are doubles) computes the very same results.

/// Units per token: one minute in milliseconds.
pub const UNITS_PER_TOKEN: u64 = 60_000;
/// Largest capacity whose level fits exactly in a double (2^53 units).
pub const MAX_CAPACITY: u64 = (1u64 << 53) / UNITS_PER_TOKEN;

/// A rate limit: a burst of `capacity`, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    capacity: u64,
    per_minute: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("a limit must allow at least 1 per minute")]
    Zero,
    #[error("a limit may be at most {MAX_CAPACITY}")]
    TooLarge,
}

impl Limit {
    /// The usual per-minute limit: a burst of `per_minute`, refilled over one minute.
    pub fn per_minute(per_minute: u64) -> Result<Self, LimitError> {
        Self::new(per_minute, per_minute)
    }

    pub fn new(capacity: u64, per_minute: u64) -> Result<Self, LimitError> {
        if capacity == 0 || per_minute == 0 {
            return Err(LimitError::Zero);
        }
        if capacity > MAX_CAPACITY || per_minute > MAX_CAPACITY {
            return Err(LimitError::TooLarge);
        }
        Ok(Self {
            capacity,
            per_minute,
        })
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Tokens refilled per minute.
    pub fn per_minute_rate(&self) -> u64 {
        self.per_minute
    }

    fn full(&self) -> u64 {
        self.capacity * UNITS_PER_TOKEN
    }

    /// The bucket's level at `now_ms`, refilled since its last update (a clock that went back
    /// refills nothing).
    fn level_at(&self, bucket: Option<Bucket>, now_ms: u64) -> (u64, u64) {
        match bucket {
            None => (self.full(), now_ms),
            Some(b) => {
                let elapsed = now_ms.saturating_sub(b.at_ms);
                let refill = elapsed.saturating_mul(self.per_minute);
                (
                    b.level.saturating_add(refill).min(self.full()),
                    now_ms.max(b.at_ms),
                )
            }
        }
    }

    fn ms_to_refill(&self, units: u64) -> u64 {
        units.div_ceil(self.per_minute)
    }

    /// Takes `cost` tokens if the bucket holds them.
    pub fn take(&self, bucket: Option<Bucket>, now_ms: u64, cost: u64) -> Decision {
        let (level, at_ms) = self.level_at(bucket, now_ms);
        let need = cost.saturating_mul(UNITS_PER_TOKEN);
        let (admitted, level, retry_after_ms) = if need <= level {
            (true, level - need, 0)
        } else if need > self.full() {
            (false, level, u64::MAX)
        } else {
            (false, level, self.ms_to_refill(need - level))
        };
        Decision {
            admitted,
            bucket: Bucket { level, at_ms },
            remaining: level / UNITS_PER_TOKEN,
            retry_after_ms,
            reset_ms: self.ms_to_refill(self.full() - level),
        }
    }

    /// Leases up to `want` whole tokens out of a bucket to one replica, which then spends them
    /// without asking the shared state again: only what lies above half the bucket is ever
    /// leased, so near a limit every replica takes the exact path. Returns the tokens granted
    /// and the bucket without them.
    pub fn grant(&self, bucket: Bucket, want: u64) -> (u64, Bucket) {
        let spare = bucket.level.saturating_sub(self.full() / 2);
        let granted = want.min(spare / UNITS_PER_TOKEN);
        let level = bucket.level - granted * UNITS_PER_TOKEN;
        (granted, Bucket { level, ..bucket })
    }

    /// Whole tokens left and ms until full, for a bucket at `level` units.
    pub fn window(&self, level: u64) -> (u64, u64) {
        let level = level.min(self.full());
        (
            level / UNITS_PER_TOKEN,
            self.ms_to_refill(self.full() - level),
        )
    }

    /// Corrects an earlier take once the real cost is known: `delta > 0` takes more (as much as
    /// the bucket holds; usage already happened), `delta < 0` gives back (up to full).
    pub fn adjust(&self, bucket: Option<Bucket>, now_ms: u64, delta: i64) -> Bucket {
        let (level, at_ms) = self.level_at(bucket, now_ms);
        let units = delta.unsigned_abs().saturating_mul(UNITS_PER_TOKEN);
        let level = if delta >= 0 {
            level.saturating_sub(units)
        } else {
            level.saturating_add(units).min(self.full())
        };
        Bucket { level, at_ms }
    }
}

/// A bucket's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// In units of 1/60,000 token.
    pub level: u64,
    /// When it was last updated (server clock, Unix milliseconds).
    pub at_ms: u64,
}

/// The outcome of one [`Limit::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// The state to store.
    pub bucket: Bucket,
    /// Whole tokens left (for `x-ratelimit-remaining-*`).
    pub remaining: u64,
    /// When a refused take would succeed (`retry-after`); `u64::MAX` if never (cost > capacity).
    pub retry_after_ms: u64,
    /// When the bucket is full again (`x-ratelimit-reset-*`).
    pub reset_ms: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_burst_admits_exactly_the_limit_then_says_when_to_retry() {
        let limit = Limit::per_minute(10).unwrap();
        let mut bucket = None;
        for i in 0..10 {
            let d = limit.take(bucket, 1_000, 1);
            assert!(d.admitted, "request {i}");
            assert_eq!(d.remaining, 9 - i);
            bucket = Some(d.bucket);
        }
        let d = limit.take(bucket, 1_000, 1);
        assert!(!d.admitted);
        assert_eq!(d.retry_after_ms, 6_000, "one token per 6 s");
        assert_eq!(d.reset_ms, 60_000);
        assert!(!limit.take(bucket, 6_999, 1).admitted);
        assert!(limit.take(bucket, 7_000, 1).admitted);
    }

    #[test]
    fn costs_above_capacity_never_pass_and_adjustments_are_bounded() {
        let limit = Limit::new(100, 60).unwrap();
        let d = limit.take(None, 0, 101);
        assert_eq!((d.admitted, d.retry_after_ms), (false, u64::MAX));
        let b = limit.adjust(None, 0, 250);
        assert_eq!(b.level, 0);
        let b = limit.adjust(Some(b), 0, -30);
        assert_eq!(b.level, 30 * UNITS_PER_TOKEN);
        let b = limit.adjust(Some(b), 0, -1_000);
        assert_eq!(b.level, 100 * UNITS_PER_TOKEN);
        assert_eq!(Limit::new(0, 1), Err(LimitError::Zero));
        assert_eq!(
            Limit::per_minute(MAX_CAPACITY + 1),
            Err(LimitError::TooLarge)
        );
    }

    #[test]
    fn only_the_upper_half_of_a_bucket_is_ever_leased() {
        let limit = Limit::per_minute(100).unwrap();
        let d = limit.take(None, 0, 10);
        let (granted, b) = limit.grant(d.bucket, 30);
        assert_eq!(granted, 30);
        assert_eq!(b.level, 60 * UNITS_PER_TOKEN);
        let (granted, b) = limit.grant(b, 30);
        assert_eq!(granted, 10, "only down to half full");
        assert_eq!(b.level, 50 * UNITS_PER_TOKEN);
        assert_eq!(limit.grant(b, 30).0, 0);
        assert_eq!(limit.window(b.level), (50, 30_000));
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let limit = Limit::per_minute(60).unwrap();
        let d = limit.take(None, 10_000, 60);
        let back = limit.take(Some(d.bucket), 5_000, 1);
        assert!(!back.admitted);
        assert_eq!(back.bucket.at_ms, 10_000);
    }

    proptest! {
        #[test]
        fn never_admits_more_than_capacity_plus_refill(
            capacity in 1u64..1_000,
            per_minute in 1u64..100_000,
            steps in prop::collection::vec((0u64..5_000, 0u64..50), 1..200),
        ) {
            let limit = Limit::new(capacity, per_minute).unwrap();
            let (mut now, mut bucket, mut admitted_units) = (1_000_000u64, None, 0u128);
            let start = now;
            for (dt, cost) in steps {
                now += dt;
                let d = limit.take(bucket, now, cost);
                if d.admitted {
                    admitted_units += u128::from(cost) * u128::from(UNITS_PER_TOKEN);
                }
                bucket = Some(d.bucket);
                let allowance = u128::from(capacity) * u128::from(UNITS_PER_TOKEN)
                    + u128::from(now - start) * u128::from(per_minute);
                prop_assert!(admitted_units <= allowance);
            }
        }

        #[test]
        fn retry_after_is_exact(
            capacity in 1u64..1_000,
            per_minute in 1u64..100_000,
            drained in 0u64..1_000,
            cost in 1u64..1_000,
        ) {
            let limit = Limit::new(capacity, per_minute).unwrap();
            let start = limit.take(None, 0, drained.min(capacity));
            let d = limit.take(Some(start.bucket), 0, cost);
            if !d.admitted && d.retry_after_ms != u64::MAX {
                let r = d.retry_after_ms;
                prop_assert!(limit.take(Some(d.bucket), r, cost).admitted);
                prop_assert!(r == 0 || !limit.take(Some(d.bucket), r - 1, cost).admitted);
            }
            prop_assert!(d.bucket.level < (1u64 << 53));
        }
    }
}
