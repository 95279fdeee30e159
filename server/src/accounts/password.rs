//! Password hashing: argon2id with OWASP's recommended minimum parameters
//! (19 MiB of memory, 2 passes, 1 lane), a random 16-byte salt per
//! password, stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) so
//! the parameters can be raised later and old hashes still verify.
//!
//! Each hash costs tens of milliseconds and 19 MiB on purpose: callers run
//! it off the async workers and bound how many run at once.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory per hash, in KiB.
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over the memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
/// The shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// The longest (argon2 takes any length; this bounds the work per request).
pub const MAX_LENGTH: usize = 256;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .unwrap_or_else(|_| unreachable!("the constant parameters are valid"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with a fresh salt.
pub fn hash(password: &str) -> Result<String, getrandom::Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt =
        SaltString::encode_b64(&salt).unwrap_or_else(|_| unreachable!("16 bytes is a valid salt"));
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .unwrap_or_else(|_| unreachable!("hashing with valid parameters cannot fail"))
        .to_string())
}

/// Whether `password` matches the stored PHC string (false for a malformed
/// one, such as the empty hash of an account that has no password).
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the same work as [`verify`] on a password that cannot match, so
/// that a login for an unknown email takes as long as a wrong password and
/// does not reveal which emails have accounts.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("not a password anyone has").unwrap_or_default());
    let _ = verify(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_records_its_parameters() {
        let stored = hash("correct horse battery").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterz", &stored));
        assert!(!verify("correct horse battery", ""));
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
    }
}
