//! Who is asking. Until the accounts issue lands, a customer is identified by
//! a signed development token: `customer_id.expiry_ms.role.signature`, where
//! the role is `fan` or `admin` and the signature is HMAC-SHA256 over the
//! first three parts with a key held by the server. Tokens are handed out only by `POST /api/dev/token`, which exists
//! only when the server runs in development mode. Verification is constant
//! time (the `hmac` crate's `verify_slice`).

use hmac::{Hmac, Mac};
use ingressoja_engine::CustomerId;
use sha2::Sha256;

use super::error::ApiError;

/// How long a development token lasts.
pub const TOKEN_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// Who a token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The account.
    pub customer: CustomerId,
    /// Whether it may use the admin endpoints.
    pub admin: bool,
}

/// The signing key.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// A fresh random key (tokens do not survive a restart).
    pub fn random() -> Result<TokenKey, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(TokenKey(key))
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(message.as_bytes());
        mac
    }

    /// A token for `customer`, valid until `now_ms + TOKEN_TTL_MS`.
    pub fn issue(&self, customer: CustomerId, admin: bool, now_ms: u64) -> String {
        let role = if admin { "admin" } else { "fan" };
        let message = format!("{}.{}.{role}", customer.0, now_ms + TOKEN_TTL_MS);
        let signature = self.mac(&message).finalize().into_bytes();
        format!("{message}.{}", hex(&signature))
    }

    /// The customer a token names, if it is genuine and unexpired.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Identity, ApiError> {
        let invalid = || ApiError::unauthorized("the token is invalid or expired");
        let (message, signature) = token.rsplit_once('.').ok_or_else(invalid)?;
        let signature = unhex(signature).ok_or_else(invalid)?;
        self.mac(message)
            .verify_slice(&signature)
            .map_err(|_| invalid())?;
        let mut parts = message.split('.');
        let (Some(customer), Some(expires), Some(role), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let expires: u64 = expires.parse().map_err(|_| invalid())?;
        if expires <= now_ms {
            return Err(invalid());
        }
        let customer = customer.parse().map(CustomerId).map_err(|_| invalid())?;
        Ok(Identity {
            customer,
            admin: role == "admin",
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_customer_until_it_expires_and_resists_tampering() {
        let key = TokenKey::random().unwrap();
        let token = key.issue(CustomerId(42), false, 1_000);
        assert_eq!(
            key.verify(&token, 2_000).unwrap(),
            Identity {
                customer: CustomerId(42),
                admin: false
            }
        );
        let admin = key.issue(CustomerId(1), true, 1_000);
        assert!(key.verify(&admin, 2_000).unwrap().admin);
        let promoted = token.replacen(".fan.", ".admin.", 1);
        assert!(key.verify(&promoted, 2_000).is_err(), "the role is signed");
        assert!(key.verify(&token, 1_000 + TOKEN_TTL_MS).is_err());
        let forged = token.replacen("42", "43", 1);
        assert!(key.verify(&forged, 2_000).is_err());
        assert!(TokenKey::random().unwrap().verify(&token, 2_000).is_err());
        assert!(key.verify("garbage", 2_000).is_err());
    }
}
