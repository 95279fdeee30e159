//! A fan's checkout, in the order that keeps money and orders together
//! across a crash at any point:
//!
//! 1. log `PaymentStarted` (durable) with a fresh payment reference;
//! 2. ask the provider to authorize under that reference;
//! 3. place the order (the engine's checkout, durable);
//! 4. capture (order placed) or void (no order), then log `PaymentSettled`.
//!
//! With Pix, 2 issues a charge (a "copia e cola" code) payable until the
//! hold ends, and the request ends there: 3 and 4 come when the provider
//! says it was paid (`settle.rs`, the same steps the sweep takes), or the
//! charge lapses with the hold and is voided.
//!
//! A crash after 1 leaves the payment in flight, and the settlement sweep
//! (`settle.rs`) finishes it from the provider's status. An answer that
//! cannot be trusted (a provider error, a runtime failure) also leaves it
//! to the sweep instead of guessing.

use std::net::IpAddr;

use ingressoja_engine::{CustomerId, Outcome, Payment, Reply};

use super::gateway::{Authorization, ChargeState, PaymentGateway, PixCharge};
use super::{place_order, random_u64, record_settlement, submit_checkout};
use crate::runtime::{CheckoutKey, EventId, PendingPayment, Runtime, RuntimeError, Settlement};

/// One checkout, as the fan asked for it.
#[derive(Clone, Copy, Debug)]
pub struct CheckoutRequest<'a> {
    /// The event.
    pub event: EventId,
    /// Who pays.
    pub customer: CustomerId,
    /// From where (logged with the order).
    pub from: IpAddr,
    /// The card's digits.
    pub card: &'a str,
    /// The hold's total when the checkout began.
    pub amount_cents: u64,
    /// Hash of the Idempotency-Key.
    pub idempotency_key: u128,
}

/// Pays for the hold and places the order; the outcome is the engine's
/// (an order, or why not). `PaymentInFlight` while another payment of the
/// same checkout is in progress.
pub async fn pay(
    runtime: &Runtime,
    gateway: &dyn PaymentGateway,
    request: CheckoutRequest<'_>,
) -> Result<Outcome, RuntimeError> {
    let started = runtime.start_payment(
        PendingPayment {
            event: request.event,
            customer: request.customer,
            payment_ref: random_u64()?,
            amount_cents: request.amount_cents,
            idempotency_key: request.idempotency_key,
            started_at_ms: 0,
        },
        Some(request.from),
    )?;
    let payment = started.await?;
    let authorization = gateway
        .authorize(payment.payment_ref, request.card, payment.amount_cents)
        .await;
    match authorization {
        Ok(Authorization::Approved) => {
            let applied = place_order(runtime, &payment, Some(request.from)).await?;
            let ours = match applied.outcome {
                Ok(Reply::OrderPlaced {
                    duplicate: false, ..
                }) => true,
                Ok(Reply::OrderPlaced {
                    order,
                    duplicate: true,
                }) => order_paid_by(runtime, &payment, order).await?,
                _ => false,
            };
            let settlement = if ours {
                Settlement::Captured
            } else {
                Settlement::Voided
            };
            finish(runtime, gateway, payment, settlement).await;
            Ok(applied.outcome)
        }
        Ok(Authorization::Declined) => {
            record_settlement(runtime, payment, Settlement::NotCharged).await?;
            refused(runtime, payment.checkout(), request.from, Payment::Declined).await
        }
        Err(error) => {
            // Unknown: a provider that timed out may still have charged.
            // Voiding makes sure it never will under this reference; if
            // even that fails, the sweep settles it later.
            tracing::warn!(%error, payment = payment.payment_ref, "authorization failed");
            if gateway.void(payment.payment_ref).await.is_ok() {
                record_settlement(runtime, payment, Settlement::NotCharged).await?;
            }
            refused(runtime, payment.checkout(), request.from, Payment::Failed).await
        }
    }
}

/// A Pix checkout, as the fan asked for it.
#[derive(Clone, Copy, Debug)]
pub struct PixRequest {
    /// The checkout (event, customer, hash of the Idempotency-Key).
    pub checkout: CheckoutKey,
    /// From where.
    pub from: IpAddr,
    /// The hold's total.
    pub amount_cents: u64,
    /// When the hold ends: the charge lapses with it.
    pub expires_at_ms: u64,
}

/// How a Pix checkout's request ends.
#[derive(Clone, Debug)]
pub enum PixStart {
    /// The charge to pay (a retry of the same checkout gets it again).
    Awaiting(PixCharge),
    /// Another payment of this checkout is in progress (a card's, or a
    /// paid charge being settled): ask again shortly.
    InProgress,
    /// The engine's refusal (the provider failed, nothing is owed).
    Refused(Outcome),
}

/// Logs the payment and issues its Pix charge, or gives back the charge
/// this checkout already has.
pub async fn start_pix(
    runtime: &Runtime,
    gateway: &dyn PaymentGateway,
    request: PixRequest,
) -> Result<PixStart, RuntimeError> {
    let key = request.checkout;
    let in_flight = (runtime.query(move |state| state.payments.get(&key).copied())?).await?;
    if let Some(payment) = in_flight {
        let reference = payment.payment_ref;
        return Ok(match gateway.status(reference).await {
            Ok(ChargeState::Awaiting {
                amount_cents,
                expires_at_ms,
            }) => match gateway
                .create_pix(reference, amount_cents, expires_at_ms)
                .await
            {
                Ok(charge) => PixStart::Awaiting(charge),
                Err(_) => PixStart::InProgress,
            },
            _ => PixStart::InProgress,
        });
    }
    let started = runtime.start_payment(
        PendingPayment {
            event: key.event,
            customer: key.customer,
            payment_ref: random_u64()?,
            amount_cents: request.amount_cents,
            idempotency_key: key.idempotency_key,
            started_at_ms: 0,
        },
        Some(request.from),
    )?;
    let payment = started.await?;
    let issued = gateway
        .create_pix(
            payment.payment_ref,
            payment.amount_cents,
            request.expires_at_ms,
        )
        .await;
    match issued {
        Ok(charge) => Ok(PixStart::Awaiting(charge)),
        Err(error) => {
            // As with a card: make sure it can never be paid, or leave it
            // to the sweep, which does the same.
            tracing::warn!(%error, payment = payment.payment_ref, "Pix charge not issued");
            if gateway.void(payment.payment_ref).await.is_ok() {
                record_settlement(runtime, payment, Settlement::NotCharged).await?;
            }
            let outcome = refused(runtime, key, request.from, Payment::Failed).await?;
            Ok(PixStart::Refused(outcome))
        }
    }
}

/// Whether `order` (placed under the same key) is the one this payment
/// paid for: only if a sweep placed it with this very payment meanwhile.
async fn order_paid_by(
    runtime: &Runtime,
    payment: &PendingPayment,
    order: ingressoja_engine::OrderId,
) -> Result<bool, RuntimeError> {
    let (event, payment_ref) = (payment.event, payment.payment_ref);
    let paid_by = (runtime.query(move |state| {
        let engine = state.events.get(&event)?;
        engine.order(order).map(|o| o.payment_ref)
    })?)
    .await?;
    Ok(paid_by == Some(payment_ref))
}

/// Captures (the order stands) or voids (no order came of it), then logs
/// the settlement; true once it is no longer in flight. A provider that
/// fails here leaves the payment in flight for the sweep, which asks for
/// its status and does the same.
pub(crate) async fn finish(
    runtime: &Runtime,
    gateway: &dyn PaymentGateway,
    payment: PendingPayment,
    settlement: Settlement,
) -> bool {
    let done = match settlement {
        Settlement::Captured => gateway.capture(payment.payment_ref).await,
        Settlement::Voided => gateway.void(payment.payment_ref).await,
        Settlement::Refunded => gateway.refund(payment.payment_ref).await,
        Settlement::NotCharged => Ok(()),
    };
    let logged = match done {
        Ok(()) => record_settlement(runtime, payment, settlement)
            .await
            .map(|_| ()),
        Err(error) => Err(RuntimeError::Durability(error.to_string())),
    };
    if let Err(error) = &logged {
        tracing::warn!(%error, payment = payment.payment_ref, ?settlement, "left for the settlement sweep");
    }
    logged.is_ok()
}

/// The engine's answer to a checkout whose payment did not go through (the
/// hold stays; the engine says why in its order of precedence).
async fn refused(
    runtime: &Runtime,
    checkout: CheckoutKey,
    from: IpAddr,
    payment: Payment,
) -> Result<Outcome, RuntimeError> {
    let applied = submit_checkout(runtime, checkout, payment, Some(from)).await?;
    Ok(applied.outcome)
}
