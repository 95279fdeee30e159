//! Proof of work at queue join: the server hands a signed challenge to a
//! logged-in fan for one event; the fan's browser finds a `solution` such
//! that SHA-256(`challenge` + ":" + `solution`) starts with `difficulty`
//! zero bits, and sends both with the join. A bot farm pays that CPU per
//! account and per attempt; a fan pays it once, in about a second.
//!
//! The challenge is `event.account.expires_ms.difficulty.nonce.signature`,
//! the signature an HMAC-SHA256 over the rest with a key kept in the
//! settings (so it survives restarts), checked in constant time. A
//! challenge is bound to its account and event, expires after
//! [`CHALLENGE_TTL_MS`], and is accepted once: used nonces are remembered
//! until they expire (bounded by [`MAX_REMEMBERED`]; past that, new joins
//! are asked to retry rather than the set growing).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use http::StatusCode;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::runtime::EventId;

/// How long a challenge may be worked on.
pub const CHALLENGE_TTL_MS: u64 = 5 * 60 * 1_000;
/// Used challenges remembered at most.
pub const MAX_REMEMBERED: usize = 1_000_000;

/// Issues and checks challenges.
pub struct Challenges {
    key: [u8; 32],
    used: Mutex<HashMap<[u8; 16], u64>>,
}

fn refused(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// Leading zero bits of a digest.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether `solution` solves `challenge` at `difficulty`.
pub fn solves(challenge: &str, solution: &str, difficulty: u8) -> bool {
    let digest = Sha256::digest(format!("{challenge}:{solution}").as_bytes());
    leading_zero_bits(&digest) >= u32::from(difficulty)
}

/// Finds a solution by counting up (what the browser's worker does; used
/// by tests and tools).
pub fn solve(challenge: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|n| solves(challenge, n, difficulty))
        .unwrap_or_default()
}

impl Challenges {
    /// Challenges signed with `key`.
    pub fn new(key: [u8; 32]) -> Challenges {
        Challenges {
            key,
            used: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(message.as_bytes());
        mac
    }

    /// A challenge for `account` to join `event`.
    pub fn issue(
        &self,
        event: EventId,
        account: u64,
        difficulty: u8,
        now_ms: u64,
    ) -> Result<(String, u64), ApiError> {
        let nonce = super::random_bytes::<16>()?;
        let expires_ms = now_ms + CHALLENGE_TTL_MS;
        let message = format!(
            "{}.{account}.{expires_ms}.{difficulty}.{}",
            event.0,
            hex(&nonce)
        );
        let signature = self.mac(&message).finalize().into_bytes();
        Ok((format!("{message}.{}", hex(&signature)), expires_ms))
    }

    /// Checks a join's proof of work and uses up its challenge.
    pub fn check(
        &self,
        challenge: &str,
        solution: &str,
        event: EventId,
        account: u64,
        difficulty: u8,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let invalid = || {
            refused(
                "proof_of_work_invalid",
                "the challenge is not one this server issued for you and this event",
            )
        };
        let (message, signature) = challenge.rsplit_once('.').ok_or_else(invalid)?;
        let signature = unhex(signature).ok_or_else(invalid)?;
        self.mac(message)
            .verify_slice(&signature)
            .map_err(|_| invalid())?;
        let parts: Vec<&str> = message.split('.').collect();
        let [for_event, for_account, expires_ms, signed_difficulty, nonce] = parts.as_slice()
        else {
            return Err(invalid());
        };
        if *for_event != event.0.to_string() || *for_account != account.to_string() {
            return Err(invalid());
        }
        let expires_ms: u64 = expires_ms.parse().map_err(|_| invalid())?;
        let signed_difficulty: u8 = signed_difficulty.parse().map_err(|_| invalid())?;
        let nonce: [u8; 16] = unhex(nonce)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(invalid)?;
        if expires_ms <= now_ms {
            return Err(refused(
                "proof_of_work_expired",
                "the challenge expired: ask for a new one",
            ));
        }
        // A challenge issued before the operator raised the difficulty is
        // not enough any more.
        if signed_difficulty < difficulty {
            return Err(refused(
                "proof_of_work_too_easy",
                "the difficulty went up: ask for a new challenge",
            ));
        }
        if solution.len() > 32 || !solves(challenge, solution, signed_difficulty) {
            return Err(refused(
                "proof_of_work_wrong",
                "the solution does not solve the challenge",
            ));
        }
        let mut used = self.used.lock();
        if used.len() >= MAX_REMEMBERED {
            used.retain(|_, expires| *expires > now_ms);
            if used.len() >= MAX_REMEMBERED {
                return Err(ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "overloaded",
                    message: "too many joins at once; retry shortly".into(),
                    retry_after_s: Some(5),
                });
            }
        }
        if used.insert(nonce, expires_ms).is_some() {
            return Err(refused(
                "proof_of_work_reused",
                "this challenge was already used: ask for a new one",
            ));
        }
        Ok(())
    }

    /// Forgets used challenges that expired (called every minute).
    pub fn trim(&self, now_ms: u64) {
        self.used.lock().retain(|_, expires| *expires > now_ms);
    }
}

/// Lower-case hex of `bytes` (also the cluster's forwarding headers).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower- or upper-case hex; `None` if it is not hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0, 0b0001_0000]), 19);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }

    #[test]
    fn a_challenge_is_accepted_once_for_its_account_and_event_until_it_expires() {
        let challenges = Challenges::new([7; 32]);
        let (event, me, now) = (EventId(3), 42, 1_000);
        let (challenge, expires) = challenges.issue(event, me, 8, now).unwrap();
        assert_eq!(expires, now + CHALLENGE_TTL_MS);
        let solution = solve(&challenge, 8);
        let code = |r: Result<(), ApiError>| r.err().map(|e| e.code);
        assert_eq!(
            code(challenges.check(&challenge, "x", event, me, 8, now)),
            Some("proof_of_work_wrong")
        );
        assert_eq!(
            code(challenges.check(&challenge, &solution, event, 43, 8, now)),
            Some("proof_of_work_invalid")
        );
        assert_eq!(
            code(challenges.check(&challenge, &solution, EventId(4), me, 8, now)),
            Some("proof_of_work_invalid")
        );
        assert_eq!(
            code(challenges.check(&challenge, &solution, event, me, 9, now)),
            Some("proof_of_work_too_easy")
        );
        assert_eq!(
            code(challenges.check(&challenge, &solution, event, me, 8, expires)),
            Some("proof_of_work_expired")
        );
        let forged = challenge.replacen(".8.", ".1.", 1);
        assert_eq!(
            code(challenges.check(&forged, &solve(&forged, 1), event, me, 1, now)),
            Some("proof_of_work_invalid")
        );
        assert_eq!(
            code(challenges.check(&challenge, &solution, event, me, 8, now)),
            None
        );
        assert_eq!(
            code(challenges.check(&challenge, &solution, event, me, 8, now)),
            Some("proof_of_work_reused")
        );
        challenges.trim(expires);
        assert!(challenges.used.lock().is_empty());
    }
}
