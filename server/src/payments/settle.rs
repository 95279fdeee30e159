//! The settlement sweep: every payment logged as started and never settled
//! (its request died with the process, or the provider failed mid-way) is
//! taken to the provider and finished by what the provider says:
//!
//! | provider says | and the order | then |
//! | --- | --- | --- |
//! | never saw it | — | void (so it never will), not charged |
//! | a Pix charge awaiting payment | — | left until it lapses, then voided |
//! | declined / voided / refunded | — | logged as such |
//! | authorized or captured | stands, paid by it | capture |
//! | authorized or captured | none, hold still stands | place it, capture |
//! | authorized or captured | none possible (hold gone, other payment) | void or refund |
//!
//! Run once at start for everything in flight (no request of an earlier
//! process can still be running) and periodically for payments older than
//! [`GRACE_MS`] (a live checkout finishes its own well within that).

use ingressoja_engine::Reply;

use super::checkout::finish;
use super::gateway::{ChargeState, PaymentGateway};
use super::{place_order, record_settlement};
use crate::runtime::{PendingPayment, Runtime, RuntimeError, Settlement};

/// A payment is left to its own request for this long before the periodic
/// sweep takes it over (requests time out long before).
pub const GRACE_MS: u64 = 60_000;
/// How often the periodic sweep runs.
pub const SWEEP_EVERY_MS: u64 = 10_000;
/// Payments settled per sweep at most (the next sweep takes the rest).
pub const MAX_PER_SWEEP: usize = 10_000;

/// What a sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Payments it found in flight.
    pub found: u64,
    /// Captured into their order.
    pub captured: u64,
    /// Voided or refunded: approved money given back.
    pub given_back: u64,
    /// Never charged.
    pub not_charged: u64,
    /// Left in flight (the provider failed; the next sweep retries).
    pub left: u64,
}

/// Settles every payment in flight that started before `cutoff_ms`; it is
/// `now_ms` (Pix charges unpaid before their end are left to be paid).
pub async fn sweep(
    runtime: &Runtime,
    gateway: &dyn PaymentGateway,
    cutoff_ms: u64,
    now_ms: u64,
) -> Result<SweepReport, RuntimeError> {
    let pending: Vec<PendingPayment> = (runtime.query(move |state| {
        state
            .payments
            .values()
            .filter(|p| p.started_at_ms < cutoff_ms)
            .take(MAX_PER_SWEEP)
            .copied()
            .collect()
    })?)
    .await?;
    let mut report = SweepReport {
        found: pending.len() as u64,
        ..SweepReport::default()
    };
    for payment in pending {
        match settle(runtime, gateway, payment, now_ms).await {
            Ok(Some(Settlement::Captured)) => report.captured += 1,
            Ok(Some(Settlement::Voided | Settlement::Refunded)) => report.given_back += 1,
            Ok(Some(Settlement::NotCharged)) => report.not_charged += 1,
            Ok(None) => report.left += 1,
            Err(error) => {
                tracing::warn!(%error, payment = payment.payment_ref, "settlement failed");
                report.left += 1;
            }
        }
    }
    if report.found > 0 {
        tracing::info!(?report, "settled payments left in flight");
    }
    Ok(report)
}

/// Settles one payment at `now_ms`; `None` if it is still in flight
/// afterwards. Also what a paid Pix charge's notice runs.
pub(crate) async fn settle(
    runtime: &Runtime,
    gateway: &dyn PaymentGateway,
    payment: PendingPayment,
    now_ms: u64,
) -> Result<Option<Settlement>, RuntimeError> {
    let status = match gateway.status(payment.payment_ref).await {
        Ok(status) => status,
        Err(error) => {
            tracing::warn!(%error, payment = payment.payment_ref, "provider status unknown");
            return Ok(None);
        }
    };
    let settlement = match status {
        ChargeState::Awaiting { expires_at_ms, .. } if now_ms < expires_at_ms => return Ok(None),
        // Lapsed unpaid: voiding makes sure it never will be paid.
        ChargeState::Unknown | ChargeState::Awaiting { .. } => {
            if gateway.void(payment.payment_ref).await.is_err() {
                return Ok(None);
            }
            Settlement::NotCharged
        }
        ChargeState::Declined => Settlement::NotCharged,
        ChargeState::Voided => Settlement::Voided,
        ChargeState::Refunded => Settlement::Refunded,
        ChargeState::Authorized { .. } | ChargeState::Captured { .. } => {
            let settlement = if order_stands(runtime, &payment).await? {
                Settlement::Captured
            } else if matches!(status, ChargeState::Captured { .. }) {
                Settlement::Refunded
            } else {
                Settlement::Voided
            };
            let settled = finish(runtime, gateway, payment, settlement).await;
            return Ok(settled.then_some(settlement));
        }
    };
    record_settlement(runtime, payment, settlement).await?;
    Ok(Some(settlement))
}

/// Whether this payment pays for an order: the one already placed under
/// its key with its reference, or one placed now while the hold stands.
async fn order_stands(runtime: &Runtime, payment: &PendingPayment) -> Result<bool, RuntimeError> {
    let (event, customer, key) = (payment.event, payment.customer, payment.idempotency_key);
    let placed_by = (runtime.query(move |state| {
        let engine = state.events.get(&event)?;
        engine
            .orders_of(customer)
            .find(|(_, o)| o.idempotency_key == key)
            .map(|(_, o)| o.payment_ref)
    })?)
    .await?;
    match placed_by {
        Some(reference) => Ok(reference == payment.payment_ref),
        None => {
            let applied = place_order(runtime, payment, None).await?;
            Ok(matches!(
                applied.outcome,
                Ok(Reply::OrderPlaced {
                    duplicate: false,
                    ..
                })
            ))
        }
    }
}
