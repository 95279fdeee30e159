//! Two-factor codes (RFC 6238 TOTP: HMAC-SHA-1, 6 digits, 30-second steps,
//! one step of clock drift either way) through `totp-rs`, and recovery
//! codes.
//!
//! A code is accepted at most once: the account remembers the last time
//! step it accepted, and only later steps pass, so a code seen over a
//! shoulder (or replayed by a proxy) is useless once used. Recovery codes
//! are 16 random base-32 characters (80 bits), shown once and stored as
//! SHA-256 digests: their entropy makes a slow hash unnecessary.

use qrcode::QrCode;
use qrcode::render::svg;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Digits per code.
pub const DIGITS: usize = 6;
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Steps of drift accepted either way.
pub const SKEW: u64 = 1;
/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "IngressoJa";
/// Recovery codes per enrollment.
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What a fan needs to add the account to an authenticator app.
#[derive(Clone, Debug)]
pub struct Enrollment {
    /// The secret in base 32 (for typing in by hand, or `oathtool -b`).
    pub secret_base32: String,
    /// The `otpauth://totp/…` URI.
    pub uri: String,
    /// The URI as a QR code, an SVG image.
    pub qr_svg: String,
}

/// A fresh 160-bit secret (RFC 4226's recommended length).
pub fn new_secret() -> Result<Vec<u8>, getrandom::Error> {
    let mut secret = vec![0u8; 20];
    getrandom::fill(&mut secret)?;
    Ok(secret)
}

fn totp(secret: &[u8], email: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        // Drift is handled below, step by step, to know which step matched.
        0,
        STEP_SECONDS,
        secret.to_vec(),
        Some(ISSUER.to_string()),
        email.to_string(),
    )
    .ok()
}

/// The enrollment data for `secret` and the account's email.
pub fn enrollment(secret: &[u8], email: &str) -> Option<Enrollment> {
    let totp = totp(secret, email)?;
    let uri = totp.get_url();
    let qr_svg = QrCode::new(uri.as_bytes())
        .ok()?
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Some(Enrollment {
        secret_base32: totp.get_secret_base32(),
        uri,
        qr_svg,
    })
}

/// The code for `secret` at `unix_seconds` (for tests and tools).
pub fn code_at(secret: &[u8], unix_seconds: u64) -> String {
    totp(secret, "x")
        .map(|t| t.generate(unix_seconds))
        .unwrap_or_default()
}

/// The time step `code` matches at `unix_seconds` (± [`SKEW`]), if it is
/// later than `last_used`; compared in constant time.
pub fn accepted_step(secret: &[u8], code: &str, unix_seconds: u64, last_used: u64) -> Option<u64> {
    let totp = totp(secret, "x")?;
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_seconds / STEP_SECONDS;
    let mut matched = None;
    // Every candidate is compared, so timing does not tell which one matched.
    for step in now.saturating_sub(SKEW)..=now + SKEW {
        let expected = totp.generate(step * STEP_SECONDS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && step > last_used {
            matched = Some(step);
        }
    }
    matched
}

/// Ten fresh recovery codes (shown once) and their digests (stored).
pub fn recovery_codes() -> Result<(Vec<String>, Vec<[u8; 32]>), getrandom::Error> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        let chars: String = bytes
            .iter()
            .map(|b| char::from(BASE32[usize::from(b % 32)]))
            .collect();
        codes.push(format!(
            "{}-{}-{}-{}",
            &chars[..4],
            &chars[4..8],
            &chars[8..12],
            &chars[12..]
        ));
    }
    let digests = codes.iter().map(|c| recovery_digest(c)).collect();
    Ok((codes, digests))
}

/// The stored form of a recovery code, as typed (case, dashes and spaces do
/// not matter).
pub fn recovery_digest(code: &str) -> [u8; 32] {
    let normalized: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(normalized.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_test_vector() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(code_at(secret, 1_111_111_109), "081804");
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_only_once() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_109;
        let code = code_at(secret, now);
        let step = accepted_step(secret, &code, now, 0).unwrap();
        assert_eq!(step, now / STEP_SECONDS);
        assert_eq!(
            accepted_step(secret, &code, now + 30, 0),
            Some(step),
            "one step late"
        );
        assert_eq!(
            accepted_step(secret, &code, now + 60, 0),
            None,
            "two steps late"
        );
        assert_eq!(accepted_step(secret, &code, now, step), None, "replayed");
        assert_eq!(accepted_step(secret, "12345", now, 0), None);
        assert_eq!(accepted_step(secret, "abcdef", now, 0), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_match_their_digest_however_typed() {
        let (codes, digests) = recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = digests.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let typed = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(recovery_digest(&typed), digests[3]);
    }

    #[test]
    fn enrollment_gives_a_uri_and_a_qr_code() {
        let e = enrollment(b"12345678901234567890", "fan@example.com").unwrap();
        assert!(
            e.uri
                .starts_with("otpauth://totp/IngressoJa:fan%40example.com?"),
            "{}",
            e.uri
        );
        assert!(
            e.uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{}",
            e.uri
        );
        assert!(e.qr_svg.contains("<svg"));
    }
}
