//! The payment provider's interface, shaped like a real one's (card
//! processors and Pix providers alike): authorize, capture, void, refund and
//! a status lookup, every call keyed by *our* payment reference so that the
//! provider can make each one idempotent. Nothing here knows the engine or
//! HTTP; `checkout.rs` and `settle.rs` drive it, `sandbox.rs` implements it.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// Our reference for one payment, chosen before the provider is asked and
/// logged first: the provider's idempotency key.
pub type PaymentRef = u64;

/// What a provider's call comes to, or why it did not.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// An authorization's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// The amount is reserved on the card; capture or void it.
    Approved,
    /// The card was declined; nothing is reserved.
    Declined,
}

/// Where a payment stands at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ChargeState {
    /// The provider never saw this reference.
    Unknown,
    /// Declined at authorization.
    Declined,
    /// A Pix charge issued and not yet paid; after `expires_at_ms` it can
    /// no longer be paid.
    Awaiting {
        /// The amount, in centavos.
        amount_cents: u64,
        /// When the charge lapses (the hold's end).
        expires_at_ms: u64,
    },
    /// Reserved, not yet taken.
    Authorized {
        /// The amount, in centavos.
        amount_cents: u64,
    },
    /// Taken.
    Captured {
        /// The amount, in centavos.
        amount_cents: u64,
    },
    /// Released before capture, or refused for good before it was ever
    /// authorized (a later authorization under the reference is declined).
    Voided,
    /// Taken, then given back.
    Refunded,
}

/// A Pix charge as the payer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PixCharge {
    /// The "copia e cola" payload (also what the QR code holds).
    pub code: String,
    /// The amount, in centavos.
    pub amount_cents: u64,
    /// When it lapses.
    pub expires_at_ms: u64,
}

/// Why a provider's call has no answer: the outcome is unknown (a timeout
/// may still have charged), so the caller leaves the payment for the
/// settlement sweep rather than guessing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The provider failed or could not be reached.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the call in this state (capturing a voided
    /// payment, voiding a captured one).
    #[error("the payment provider refused: {0}")]
    Refused(String),
}

/// A payment provider. Every call is idempotent per reference: repeating
/// one after a crash or a timeout never charges twice.
pub trait PaymentGateway: Send + Sync + 'static {
    /// Reserves `amount_cents` on the card under `payment`.
    fn authorize<'a>(
        &'a self,
        payment: PaymentRef,
        card: &'a str,
        amount_cents: u64,
    ) -> GatewayFuture<'a, Authorization>;
    /// Issues a Pix charge of `amount_cents` under `payment`, payable
    /// until `expires_at_ms`; the same reference gets the same charge back.
    /// Once paid, the charge is `Captured` (Pix has no separate capture)
    /// and the provider says so asynchronously (see `PixPaid`); a charge
    /// never paid is voided when it lapses.
    fn create_pix(
        &self,
        payment: PaymentRef,
        amount_cents: u64,
        expires_at_ms: u64,
    ) -> GatewayFuture<'_, PixCharge>;
    /// Takes an authorized amount.
    fn capture(&self, payment: PaymentRef) -> GatewayFuture<'_, ()>;
    /// Releases an authorization; on a reference the provider never saw, it
    /// makes sure none will ever be authorized under it.
    fn void(&self, payment: PaymentRef) -> GatewayFuture<'_, ()>;
    /// Gives a captured amount back.
    fn refund(&self, payment: PaymentRef) -> GatewayFuture<'_, ()>;
    /// Where the payment stands.
    fn status(&self, payment: PaymentRef) -> GatewayFuture<'_, ChargeState>;
}

/// The provider's notice that a Pix charge was paid (its webhook): the
/// server settles the payment as the sweep would, at once.
pub type PixPaid = tokio::sync::mpsc::Sender<PaymentRef>;

/// Keeps the digits of a card number; `None` unless 12 to 19 digits (spaces
/// and dashes allowed between them).
pub fn card_digits(card: &str) -> Option<String> {
    let digits: String = card.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let valid = (12..=19).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
    valid.then_some(digits)
}
