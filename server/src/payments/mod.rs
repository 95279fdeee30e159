//! Payments as a durable two-step: the intent is logged before the
//! provider is asked, the outcome after, so a crash at any point leaves a
//! record that the settlement sweep takes back to the provider. Every
//! approved charge ends as an order (captured) or given back (voided or
//! refunded); one Idempotency-Key never maps to two orders (the engine's
//! rule) and never has two payments in flight (the shard's rule).
//!
//! - `gateway.rs`: the provider's interface (authorize, capture, void,
//!   refund, status), keyed by our payment reference.
//! - `pix.rs`: Pix "copia e cola" codes (BR Code payloads).
//! - `sandbox.rs`: the sandbox provider, with its own synced ledger.
//! - `checkout.rs`: a fan's checkout: log, authorize, order, capture, log;
//!   or, with Pix, log and issue the charge (the order comes when the
//!   provider says it was paid, through the settlement).
//! - `settle.rs`: the sweep that settles payments left in flight (at start,
//!   after a crash, and periodically).

pub mod checkout;
pub mod gateway;
pub mod pix;
pub mod sandbox;
pub mod settle;

use std::net::IpAddr;

use crate::runtime::{Applied, CheckoutKey, PendingPayment, Runtime, RuntimeError, Settlement};
use ingressoja_engine::{Command, Payment};

/// A fresh, unguessable, non-zero 64-bit value from the operating system.
pub(crate) fn random_u64() -> Result<u64, RuntimeError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|_| RuntimeError::Durability("the system has no random source".into()))?;
    Ok(u64::from_le_bytes(bytes).max(1))
}

/// A fresh 128-bit ticket seed.
pub(crate) fn random_seed() -> Result<u128, RuntimeError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| RuntimeError::Durability("the system has no random source".into()))?;
    Ok(u128::from_le_bytes(bytes))
}

/// Logs a settlement and waits until it is durable; false if another
/// settled the payment first.
pub(crate) async fn record_settlement(
    runtime: &Runtime,
    payment: PendingPayment,
    settlement: Settlement,
) -> Result<bool, RuntimeError> {
    (runtime.settle_payment(payment, settlement)?).await
}

/// Places the order an authorized payment pays for (from `from`, when a
/// fan's request), and waits for the durable outcome.
pub(crate) async fn place_order(
    runtime: &Runtime,
    payment: &PendingPayment,
    from: Option<IpAddr>,
) -> Result<Applied, RuntimeError> {
    let approved = Payment::Approved {
        amount_cents: payment.amount_cents,
        payment_ref: payment.payment_ref,
    };
    submit_checkout(runtime, payment.checkout(), approved, from).await
}

/// The engine's checkout of `checkout` with what the gateway said, once
/// durable (the engine decides: an order, or why not).
pub(crate) async fn submit_checkout(
    runtime: &Runtime,
    checkout: CheckoutKey,
    payment: Payment,
    from: Option<IpAddr>,
) -> Result<Applied, RuntimeError> {
    let command = Command::Checkout {
        customer: checkout.customer,
        payment,
        idempotency_key: checkout.idempotency_key,
        ticket_seed: random_seed()?,
    };
    (runtime.submit(checkout.event, command, from)?).await
}
