//! How many join challenges one client address asked for, and how many
//! accounts joined from it, per event over the last ten minutes, and what
//! that costs the next one from there: a harder proof of work (a bot farm's
//! hundred accounts behind one address pay more per account, while a
//! household pays nothing extra), and optionally a quota of joins per
//! address per event. The surcharge counts challenges, not joins: counting
//! joins would let a farm fetch all its challenges first, cheap, and join
//! after.
//!
//! The trade-off: many real fans share one address (mobile carriers' NAT,
//! a university, an office), and nothing here can tell them from a farm.
//! The first `pow_free_joins_per_address` challenges to an address cost the
//! event's difficulty; each doubling beyond adds a bit (twice the work), up
//! to `pow_max_extra_bits`. The defaults (20 free, at most 3 more bits:
//! eight times the work, about 8 s instead of 1 s on a phone at the usual
//! difficulty) leave a fan behind a busy carrier address slower to join but
//! never refused; a quota (`joins_per_address_per_event`, off by default)
//! refuses outright and is for events that accept that cost. The fairness
//! of the draw does not depend on either: a farm's accounts are drawn like
//! anyone's and win their share of the accounts (see `stress/tests/
//! fairness.rs`); these only make accounts costlier to bring.
//!
//! Bounded: at most [`MAX_ADDRESSES`] addresses are remembered; past that,
//! a new address is counted as fresh (no surcharge) until the minute's trim
//! forgets those idle for the window.

use std::collections::HashMap;
use std::net::IpAddr;

use http::StatusCode;
use parking_lot::Mutex;

use super::error::ApiError;
use super::limits::LimitsConfig;
use crate::runtime::EventId;

/// Joins are counted over this window, from an address's first.
pub const WINDOW_MS: u64 = 10 * 60_000;
/// Addresses remembered at most.
pub const MAX_ADDRESSES: usize = 200_000;

#[derive(Clone, Copy, Debug)]
struct Count {
    challenges: u32,
    joins: u32,
    since_ms: u64,
}

/// The counts and the policy read from the limits' configuration.
pub struct AddressPressure {
    counts: Mutex<HashMap<(EventId, IpAddr), Count>>,
    free: u32,
    max_extra_bits: u8,
    quota: u32,
}

/// Extra bits of proof of work after `joins` from one address: none up to
/// `free`, then one more per doubling, at most `max`.
pub fn extra_bits(joins: u32, free: u32, max: u8) -> u8 {
    if free == 0 || joins < free {
        return 0;
    }
    let doublings = (joins / free).ilog2() + 1;
    u8::try_from(doublings).unwrap_or(u8::MAX).min(max)
}

impl AddressPressure {
    /// From the configured limits.
    pub fn new(limits: &LimitsConfig) -> AddressPressure {
        AddressPressure {
            counts: Mutex::new(HashMap::new()),
            free: limits.pow_free_joins_per_address,
            max_extra_bits: limits.pow_max_extra_bits,
            quota: limits.joins_per_address_per_event,
        }
    }

    /// Whether joins are refused past a quota.
    pub fn has_quota(&self) -> bool {
        self.quota > 0
    }

    fn count(&self, event: EventId, from: IpAddr, now_ms: u64) -> Count {
        self.counts
            .lock()
            .get(&(event, from))
            .filter(|c| now_ms.saturating_sub(c.since_ms) < WINDOW_MS)
            .copied()
            .unwrap_or(Count {
                challenges: 0,
                joins: 0,
                since_ms: now_ms,
            })
    }

    /// The difficulty of the next challenge for `from`, which this counts:
    /// the event's, plus the surcharge of the challenges the address asked
    /// for lately (never above 32 bits).
    pub fn next_challenge(&self, base: u8, event: EventId, from: IpAddr, now_ms: u64) -> u8 {
        if base == 0 {
            return 0;
        }
        let asked = self.count(event, from, now_ms).challenges;
        self.update(event, from, now_ms, |c| {
            c.challenges = c.challenges.saturating_add(1);
        });
        let extra = extra_bits(asked, self.free, self.max_extra_bits);
        base.saturating_add(extra).min(32)
    }

    /// Refuses a join from an address that used up the event's quota.
    pub fn check_quota(&self, event: EventId, from: IpAddr, now_ms: u64) -> Result<(), ApiError> {
        if self.quota == 0 || self.count(event, from, now_ms).joins < self.quota {
            return Ok(());
        }
        Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "address_join_quota",
            message: format!(
                "{} accounts already joined this line from your network; try again later",
                self.quota
            ),
            retry_after_s: Some(u32::try_from(WINDOW_MS / 1_000).unwrap_or(u32::MAX)),
        })
    }

    /// Counts a join (a fresh one: rejoining is free).
    pub fn record_join(&self, event: EventId, from: IpAddr, now_ms: u64) {
        self.update(event, from, now_ms, |c| c.joins = c.joins.saturating_add(1));
    }

    fn update(&self, event: EventId, from: IpAddr, now_ms: u64, change: impl FnOnce(&mut Count)) {
        let mut counts = self.counts.lock();
        if counts.len() >= MAX_ADDRESSES && !counts.contains_key(&(event, from)) {
            return;
        }
        let fresh = Count {
            challenges: 0,
            joins: 0,
            since_ms: now_ms,
        };
        let count = counts.entry((event, from)).or_insert(fresh);
        if now_ms.saturating_sub(count.since_ms) >= WINDOW_MS {
            *count = fresh;
        }
        change(count);
    }

    /// Forgets windows that ended (called every minute).
    pub fn trim(&self, now_ms: u64) {
        self.counts
            .lock()
            .retain(|_, c| now_ms.saturating_sub(c.since_ms) < WINDOW_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_surcharge_is_a_bit_per_doubling_past_the_free_joins_and_capped() {
        let bits: Vec<u8> = [0, 19, 20, 39, 40, 80, 160, 10_000]
            .iter()
            .map(|&j| extra_bits(j, 20, 3))
            .collect();
        assert_eq!(bits, [0, 0, 1, 1, 2, 3, 3, 3]);
        assert_eq!(extra_bits(1_000, 0, 3), 0, "0 free turns it off");
    }

    #[test]
    fn a_farm_behind_one_address_pays_more_and_its_neighbours_do_not() {
        let limits = LimitsConfig {
            joins_per_address_per_event: 50,
            ..LimitsConfig::default()
        };
        let pressure = AddressPressure::new(&limits);
        let (event, farm, fan) = (
            EventId(0),
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2]),
        );
        // A farm fetching its challenges before joining pays as it asks.
        let asked: Vec<u8> = (0..45)
            .map(|_| pressure.next_challenge(18, event, farm, 1_000))
            .collect();
        assert_eq!(
            (asked[19], asked[20], asked[39], asked[40]),
            (18, 19, 19, 20)
        );
        assert_eq!(pressure.next_challenge(18, event, fan, 1_000), 18);
        assert_eq!(
            pressure.next_challenge(18, EventId(1), farm, 1_000),
            18,
            "per event"
        );
        assert_eq!(
            pressure.next_challenge(0, event, farm, 1_000),
            0,
            "off stays off"
        );
        // The quota counts joins.
        assert!(pressure.check_quota(event, farm, 1_000).is_ok());
        for _ in 0..50 {
            pressure.record_join(event, farm, 1_000);
        }
        let refused = pressure.check_quota(event, farm, 1_000).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::TOO_MANY_REQUESTS, "address_join_quota")
        );
        assert!(pressure.check_quota(event, fan, 1_000).is_ok());
        // Ten minutes on, the address starts afresh.
        assert!(pressure.check_quota(event, farm, 1_000 + WINDOW_MS).is_ok());
        pressure.trim(1_000 + WINDOW_MS);
        assert_eq!(
            pressure.next_challenge(18, event, farm, 1_000 + WINDOW_MS),
            18
        );
    }
}
