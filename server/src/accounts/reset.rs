//! Password-reset tokens: single use, expiring, and checked on any node of
//! a cluster without storing anything.
//!
//! A token is `<account id>.<expiry ms>.<MAC>` where the MAC is
//! HMAC-SHA-256, keyed by the account's stored password hash, over a
//! label, the id, the expiry and the account's session epoch. Hence:
//! - it expires: the expiry is inside the MAC;
//! - it is single use: resetting changes the hash and bumps the epoch, so
//!   the MAC no longer matches (and changing the password any other way
//!   kills every outstanding link too);
//! - it works on every node: the hash and the epoch are replicated account
//!   state (a per-node secret would not be);
//! - it cannot be made without the database: the hash is an argon2id
//!   output over a random salt, never shown. Whoever holds a copy of the
//!   database could mint tokens, as they could crack passwords; that is
//!   the same trust a backup already needs.
//!
//! Accounts with no password (development sessions) have no key and get no
//! token.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Account;

/// How long a reset link works.
pub const RESET_TTL_MS: u64 = 30 * 60 * 1_000;
/// The MAC's label: a token for nothing else.
const LABEL: &[u8] = b"ingressoja password reset v1";

/// Why a token is refused (all the same to the caller: one message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not three parts, or not numbers and hex.
    Malformed,
    /// Past its expiry.
    Expired,
    /// The MAC does not match: forged, or the password changed since.
    Stale,
}

fn mac(account: &Account, expires_ms: u64) -> Option<Hmac<Sha256>> {
    if account.password_hash.is_empty() {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(account.password_hash.as_bytes()).ok()?;
    mac.update(LABEL);
    mac.update(&account.id.to_be_bytes());
    mac.update(&expires_ms.to_be_bytes());
    mac.update(&account.epoch.to_be_bytes());
    Some(mac)
}

/// A token for `account`, good until `now_ms` + [`RESET_TTL_MS`]; none for
/// an account without a password.
pub fn issue(account: &Account, now_ms: u64) -> Option<String> {
    let expires_ms = now_ms.saturating_add(RESET_TTL_MS);
    let tag = mac(account, expires_ms)?.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{}.{expires_ms}.{hex}", account.id))
}

/// The account id a token names, to look the account up before
/// [`check`]ing it.
pub fn account_of(token: &str) -> Result<u64, Refused> {
    let id = token.split('.').next().ok_or(Refused::Malformed)?;
    id.parse().map_err(|_| Refused::Malformed)
}

/// Whether `token` is good for `account` at `now_ms` (compared in constant
/// time).
pub fn check(account: &Account, token: &str, now_ms: u64) -> Result<(), Refused> {
    let mut parts = token.split('.');
    let (Some(id), Some(expires), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Malformed);
    };
    let expires_ms: u64 = expires.parse().map_err(|_| Refused::Malformed)?;
    if id.parse::<u64>() != Ok(account.id) || tag.len() != 64 {
        return Err(Refused::Malformed);
    }
    let tag: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(tag.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| Refused::Malformed)?;
    if now_ms > expires_ms {
        return Err(Refused::Expired);
    }
    let mac = mac(account, expires_ms).ok_or(Refused::Stale)?;
    mac.verify_slice(&tag).map_err(|_| Refused::Stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            id: 7,
            email: "ana@example.com".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            admin: false,
            created_ms: 0,
            epoch: 3,
            two_factor: None,
        }
    }

    #[test]
    fn a_token_works_until_it_expires() {
        let token = issue(&account(), 1_000).unwrap();
        assert_eq!(account_of(&token), Ok(7));
        assert_eq!(check(&account(), &token, 1_000), Ok(()));
        assert_eq!(check(&account(), &token, 1_000 + RESET_TTL_MS), Ok(()));
        assert_eq!(
            check(&account(), &token, 1_001 + RESET_TTL_MS),
            Err(Refused::Expired)
        );
    }

    #[test]
    fn a_token_dies_with_the_password_or_the_epoch_it_was_made_for() {
        let token = issue(&account(), 1_000).unwrap();
        let changed = Account {
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$b3V0cm8$b3V0cm8".into(),
            ..account()
        };
        assert_eq!(check(&changed, &token, 2_000), Err(Refused::Stale));
        let revoked = Account {
            epoch: 4,
            ..account()
        };
        assert_eq!(check(&revoked, &token, 2_000), Err(Refused::Stale));
    }

    #[test]
    fn forged_or_mangled_tokens_are_refused() {
        let token = issue(&account(), 1_000).unwrap();
        // A later expiry with the same MAC.
        let mut parts: Vec<&str> = token.split('.').collect();
        let later = (1_000 + 2 * RESET_TTL_MS).to_string();
        parts[1] = &later;
        assert_eq!(
            check(&account(), &parts.join("."), 2_000),
            Err(Refused::Stale)
        );
        // Another account's id.
        let other = Account { id: 8, ..account() };
        assert_eq!(check(&other, &token, 2_000), Err(Refused::Malformed));
        for bad in [
            "",
            "7",
            "7.1",
            "7.x.00",
            "7.1.zz",
            &format!("{token}.1"),
            "é.1.2",
        ] {
            assert!(check(&account(), bad, 2_000).is_err(), "{bad}");
        }
        assert_eq!(account_of("x.1.2"), Err(Refused::Malformed));
        // No password, no token.
        let dev = Account {
            password_hash: String::new(),
            ..account()
        };
        assert_eq!(issue(&dev, 1_000), None);
        assert_eq!(check(&dev, &token, 2_000), Err(Refused::Stale));
    }
}
