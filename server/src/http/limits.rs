//! Rate limits (governor), per client address and per account, with separate
//! quotas for reads, queue joins, and cart or checkout requests: a bot
//! hammering the join endpoint does not slow down fans paying for their
//! tickets. Over a quota the answer is 429 with Retry-After. The keyed stores
//! forget idle keys when [`Limits::trim`] runs (every minute), so memory
//! stays bounded by the clients active in the last minute.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::StatusCode;
use ingressoja_engine::CustomerId;
use serde::Deserialize;

use super::error::ApiError;

/// Requests per second allowed, with bursts of twice that; 0 turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Reads (GET) per client address.
    pub reads_per_ip: u32,
    /// Queue joins per client address.
    pub joins_per_ip: u32,
    /// Queue joins per account.
    pub joins_per_account: u32,
    /// Cart changes and checkouts per client address.
    pub carts_per_ip: u32,
    /// Cart changes and checkouts per account.
    pub carts_per_account: u32,
    /// Join challenges of an event one address may ask for in ten minutes
    /// before its proof of work gets harder (`address_pressure.rs`); 0
    /// turns that off.
    pub pow_free_joins_per_address: u32,
    /// At most this many bits (each doubles the work) are added.
    pub pow_max_extra_bits: u8,
    /// Joins of an event from one address in ten minutes beyond which the
    /// next is refused (429); 0, the default, sets no quota.
    pub joins_per_address_per_event: u32,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            reads_per_ip: 200,
            joins_per_ip: 20,
            joins_per_account: 2,
            carts_per_ip: 100,
            carts_per_account: 10,
            pow_free_joins_per_address: 20,
            pow_max_extra_bits: 3,
            joins_per_address_per_event: 0,
        }
    }
}

/// Which quota a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Reading state.
    Read,
    /// Joining a queue.
    Join,
    /// Changing a cart or paying.
    Cart,
}

type ByIp = Option<DefaultKeyedRateLimiter<IpAddr>>;
type ByAccount = Option<DefaultKeyedRateLimiter<u64>>;

/// The limiters.
pub struct Limits {
    reads_by_ip: ByIp,
    joins_by_ip: ByIp,
    joins_by_account: ByAccount,
    carts_by_ip: ByIp,
    carts_by_account: ByAccount,
    clock: DefaultClock,
}

fn keyed<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Limits {
    /// Limiters for these quotas.
    pub fn new(config: &LimitsConfig) -> Limits {
        Limits {
            reads_by_ip: keyed(config.reads_per_ip),
            joins_by_ip: keyed(config.joins_per_ip),
            joins_by_account: keyed(config.joins_per_account),
            carts_by_ip: keyed(config.carts_per_ip),
            carts_by_account: keyed(config.carts_per_account),
            clock: DefaultClock::default(),
        }
    }

    /// Counts a request; refuses it when over a quota.
    pub fn check(
        &self,
        class: Class,
        ip: IpAddr,
        account: Option<CustomerId>,
    ) -> Result<(), ApiError> {
        let (by_ip, by_account) = match class {
            Class::Read => (&self.reads_by_ip, &None),
            Class::Join => (&self.joins_by_ip, &self.joins_by_account),
            Class::Cart => (&self.carts_by_ip, &self.carts_by_account),
        };
        if let Some(limiter) = by_ip {
            limiter
                .check_key(&ip)
                .map_err(|n| self.refusal(n.wait_time_from(self.clock.now())))?;
        }
        if let (Some(limiter), Some(account)) = (by_account, account) {
            limiter
                .check_key(&account.0)
                .map_err(|n| self.refusal(n.wait_time_from(self.clock.now())))?;
        }
        Ok(())
    }

    fn refusal(&self, wait: std::time::Duration) -> ApiError {
        let seconds = u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX);
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("too many requests; retry in {seconds} s"),
            retry_after_s: Some(seconds),
        }
    }

    /// Forgets keys idle long enough to be back at a full quota.
    pub fn trim(&self) {
        for limiter in [&self.reads_by_ip, &self.joins_by_ip, &self.carts_by_ip]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [&self.joins_by_account, &self.carts_by_account]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Load shedding by priority. New arrivals (queue joins, reads) are refused
/// once the shard's channel is half full, so the fans already shopping keep
/// their latency; carts and checkouts are refused only when it is full (by
/// the runtime itself).
pub fn shed(class: Class, depth: usize, capacity: usize) -> Result<(), ApiError> {
    let newcomer = matches!(class, Class::Join | Class::Read);
    if newcomer && depth.saturating_mul(2) > capacity {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "overloaded",
            message: "the sale is very busy; your request was not queued, retry shortly".into(),
            retry_after_s: Some(2),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_over_its_join_quota_is_refused_with_a_retry_after() {
        let limits = Limits::new(&LimitsConfig {
            joins_per_account: 1,
            ..LimitsConfig::default()
        });
        let ip = IpAddr::from([127, 0, 0, 1]);
        let me = Some(CustomerId(1));
        assert!(limits.check(Class::Join, ip, me).is_ok());
        assert!(limits.check(Class::Join, ip, me).is_ok(), "a burst of two");
        let refused = limits.check(Class::Join, ip, me).unwrap_err();
        assert_eq!(
            (refused.status, refused.code),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
        assert!(refused.retry_after_s.is_some_and(|s| s >= 1));
        assert!(
            limits.check(Class::Join, ip, Some(CustomerId(2))).is_ok(),
            "other accounts are unaffected"
        );
        assert!(
            limits.check(Class::Cart, ip, me).is_ok(),
            "other classes are unaffected"
        );
    }

    #[test]
    fn newcomers_are_shed_at_half_capacity_shoppers_only_when_full() {
        assert!(shed(Class::Join, 50, 100).is_ok());
        let refused = shed(Class::Join, 51, 100).unwrap_err();
        assert_eq!(
            (refused.status, refused.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, Some(2))
        );
        assert!(shed(Class::Read, 51, 100).is_err());
        assert!(
            shed(Class::Cart, 99, 100).is_ok(),
            "admitted fans keep going"
        );
    }

    #[test]
    fn a_zero_quota_turns_the_limit_off() {
        let limits = Limits::new(&LimitsConfig {
            reads_per_ip: 0,
            ..LimitsConfig::default()
        });
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..10_000 {
            assert!(limits.check(Class::Read, ip, None).is_ok());
        }
    }
}
