//! The admission rate limit: a token bucket in integer milli-tokens.
//!
//! `admit_per_second` tokens accrue per second up to one second's worth;
//! each admission spends one. The bucket starts empty at opening: a full
//! one let a second's worth of fans in at the opening instant, all racing
//! for the same holds, which made the order of the draw meaningless. Time comes in as an argument and
//! the bucket only moves forward, so the same transitions give the same
//! bucket on replay. Integer milli-tokens avoid float drift between the live
//! engine and a replay on another machine.

use serde::{Deserialize, Serialize};

const MILLI: u64 = 1_000;

/// The bucket's state at `last_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionBucket {
    tokens_milli: u64,
    last_ms: u64,
}

impl AdmissionBucket {
    /// An empty bucket at `at_ms` (the sale opens with no burst).
    pub fn empty(at_ms: u64) -> AdmissionBucket {
        AdmissionBucket {
            tokens_milli: 0,
            last_ms: at_ms,
        }
    }

    /// Whole tokens available at `now_ms`.
    pub fn tokens_at(&self, now_ms: u64, rate_per_second: u32) -> u32 {
        let whole = self.refilled(now_ms, rate_per_second) / MILLI;
        u32::try_from(whole).unwrap_or(u32::MAX)
    }

    /// Spends `count` tokens at `at_ms`.
    pub fn take(&mut self, at_ms: u64, count: u32, rate_per_second: u32) {
        let refilled = self.refilled(at_ms, rate_per_second);
        self.tokens_milli = refilled.saturating_sub(u64::from(count) * MILLI);
        self.last_ms = self.last_ms.max(at_ms);
    }

    /// Accrues up to `at_ms` at the old rate before a rate change.
    pub fn settle(&mut self, at_ms: u64, rate_per_second: u32) {
        self.tokens_milli = self.refilled(at_ms, rate_per_second);
        self.last_ms = self.last_ms.max(at_ms);
    }

    /// When the next whole token is there.
    pub fn next_token_at(&self, rate_per_second: u32) -> u64 {
        let missing = MILLI.saturating_sub(self.tokens_milli);
        let rate = u64::from(rate_per_second.max(1));
        // rate_per_second tokens/s is rate_per_second milli-tokens per ms.
        self.last_ms.saturating_add(missing.div_ceil(rate))
    }

    fn refilled(&self, now_ms: u64, rate_per_second: u32) -> u64 {
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        let accrued = elapsed_ms.saturating_mul(u64::from(rate_per_second));
        self.tokens_milli
            .saturating_add(accrued)
            .min(capacity_milli(rate_per_second))
    }
}

fn capacity_milli(rate_per_second: u32) -> u64 {
    u64::from(rate_per_second.max(1)) * MILLI
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accrues_at_the_rate_and_caps_at_one_second() {
        let bucket = AdmissionBucket::empty(0);
        assert_eq!(bucket.tokens_at(0, 500), 0, "no burst at opening");
        assert_eq!(bucket.next_token_at(500), 2);
        assert_eq!(bucket.tokens_at(1, 500), 0);
        assert_eq!(bucket.tokens_at(2, 500), 1);
        assert_eq!(bucket.tokens_at(100, 500), 50);
        assert_eq!(bucket.tokens_at(60_000, 500), 500);
    }

    #[test]
    fn time_going_backwards_accrues_nothing() {
        let mut bucket = AdmissionBucket::empty(1_000);
        assert_eq!(bucket.tokens_at(500, 10), 0);
        bucket.take(500, 0, 10);
        assert_eq!(bucket.tokens_at(1_100, 10), 1);
    }
}
