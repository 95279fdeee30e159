//! Login protection: failed logins are counted per address and per email
//! (known or not, so the throttle itself does not reveal which emails have
//! accounts). After a few free failures each further one blocks the key for
//! twice as long as the last (1 s, 2 s, 4 s … up to 15 minutes); a blocked
//! key gets 429 with Retry-After without its password being checked. A
//! success clears the email's count (not the address's: one shared address
//! may hold an attacker and a fan).
//!
//! Counts live in memory, bounded: idle keys are forgotten after an hour,
//! and past [`MAX_KEYS`] the oldest idle ones go first. A restart forgets
//! them; the audit log keeps every failure and lockout.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

/// Failures allowed per email before delays start.
pub const FREE_PER_EMAIL: u32 = 5;
/// Failures allowed per address before delays start (addresses are shared).
pub const FREE_PER_ADDRESS: u32 = 20;
/// The longest block.
pub const MAX_BLOCK_MS: u64 = 15 * 60 * 1_000;
/// Keys remembered at most.
pub const MAX_KEYS: usize = 100_000;
const IDLE_MS: u64 = 60 * 60 * 1_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Address(IpAddr),
    Email(String),
}

#[derive(Clone, Copy, Debug, Default)]
struct Failures {
    count: u32,
    blocked_until_ms: u64,
    last_ms: u64,
}

/// A block that just started, for the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// `address` or `email`.
    pub kind: &'static str,
    /// Failures so far.
    pub failures: u32,
    /// How long it lasts.
    pub block_ms: u64,
}

/// See the module documentation.
#[derive(Default)]
pub struct LoginThrottle {
    keys: Mutex<HashMap<Key, Failures>>,
}

impl LoginThrottle {
    /// How long until this address and email may try again (0: now).
    pub fn wait_ms(&self, address: IpAddr, email: &str, now_ms: u64) -> u64 {
        let keys = self.keys.lock();
        [Key::Address(address), Key::Email(email.to_string())]
            .iter()
            .filter_map(|key| keys.get(key))
            .map(|f| f.blocked_until_ms.saturating_sub(now_ms))
            .max()
            .unwrap_or(0)
    }

    /// Counts a failure; returns the blocks it started.
    pub fn failed(&self, address: IpAddr, email: &str, now_ms: u64) -> Vec<Lockout> {
        let mut keys = self.keys.lock();
        if keys.len() >= MAX_KEYS {
            forget_idle(&mut keys, now_ms);
        }
        let mut started = Vec::new();
        for (key, free, kind) in [
            (Key::Address(address), FREE_PER_ADDRESS, "address"),
            (Key::Email(email.to_string()), FREE_PER_EMAIL, "email"),
        ] {
            let failures = keys.entry(key).or_default();
            failures.count += 1;
            failures.last_ms = now_ms;
            if failures.count > free {
                let doublings = (failures.count - free - 1).min(20);
                let block_ms = (1_000u64 << doublings).min(MAX_BLOCK_MS);
                failures.blocked_until_ms = now_ms + block_ms;
                started.push(Lockout {
                    kind,
                    failures: failures.count,
                    block_ms,
                });
            }
        }
        started
    }

    /// A successful login: the email starts afresh.
    pub fn succeeded(&self, email: &str) {
        self.keys.lock().remove(&Key::Email(email.to_string()));
    }

    /// Forgets keys idle for an hour (called every minute).
    pub fn trim(&self, now_ms: u64) {
        forget_idle(&mut self.keys.lock(), now_ms);
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.keys.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn forget_idle(keys: &mut HashMap<Key, Failures>, now_ms: u64) {
    keys.retain(|_, f| f.blocked_until_ms > now_ms || now_ms.saturating_sub(f.last_ms) < IDLE_MS);
    if keys.len() >= MAX_KEYS {
        // Still full of recent keys: keep the blocked ones and the newest.
        let mut by_age: Vec<(Key, u64)> =
            keys.iter().map(|(k, f)| (k.clone(), f.last_ms)).collect();
        by_age.sort_by_key(|(_, last)| *last);
        for (key, _) in by_age.into_iter().take(MAX_KEYS / 10) {
            if keys.get(&key).is_some_and(|f| f.blocked_until_ms <= now_ms) {
                keys.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_block_for_doubling_times() {
        let throttle = LoginThrottle::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let now = 1_000_000;
        for _ in 0..FREE_PER_EMAIL {
            assert!(throttle.failed(ip, "a@b.c", now).is_empty());
            assert_eq!(throttle.wait_ms(ip, "a@b.c", now), 0);
        }
        let lockout = throttle.failed(ip, "a@b.c", now);
        assert_eq!(
            lockout,
            vec![Lockout {
                kind: "email",
                failures: 6,
                block_ms: 1_000
            }]
        );
        assert_eq!(throttle.wait_ms(ip, "a@b.c", now), 1_000);
        assert_eq!(
            throttle.wait_ms(ip, "other@b.c", now),
            0,
            "other emails are not blocked"
        );
        assert_eq!(throttle.failed(ip, "a@b.c", now + 1_000)[0].block_ms, 2_000);
        assert_eq!(throttle.failed(ip, "a@b.c", now + 3_000)[0].block_ms, 4_000);
        throttle.succeeded("a@b.c");
        assert_eq!(throttle.wait_ms(ip, "a@b.c", now + 3_000), 0);
    }

    #[test]
    fn blocks_are_capped_and_idle_keys_forgotten() {
        let throttle = LoginThrottle::default();
        let ip = IpAddr::from([10, 0, 0, 2]);
        let mut last = Vec::new();
        for i in 0..60 {
            last = throttle.failed(ip, &format!("{i}@x.y"), 0);
        }
        let address = last.iter().find(|l| l.kind == "address").unwrap();
        assert_eq!(address.block_ms, MAX_BLOCK_MS);
        throttle.trim(MAX_BLOCK_MS + IDLE_MS);
        assert!(throttle.is_empty());
    }
}
