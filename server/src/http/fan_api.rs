//! The fans' endpoints: events, queue, cart, checkout, orders, and the
//! development token. Each handler validates its input, turns it into one
//! engine command (or a read), and maps the outcome to JSON or an error.

use std::net::IpAddr;

use http::StatusCode;
use ingressoja_engine::{
    Command, CustomerId, Payment, QueueStatus, Reply, TicketTypeId, TypeCounts,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::App;
use super::error::ApiError;
pub use super::reply::Answer;
use super::reply::answer;
use super::shard_wait::{COMMIT_WAIT, read_state, within};
use super::views::{CartView, EventFacts, EventView, OrderView, QueueView};
use crate::payments::checkout::{CheckoutRequest, PixRequest, PixStart, pay, start_pix};
use crate::payments::gateway::card_digits;
use crate::runtime::EventId;

/// [`COMMIT_WAIT`] for a checkout, which also waits for the gateway (its
/// payment task goes on without the request: a retry finds the order, or
/// 409 while it runs).
const CHECKOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies a fan's command sent from `from` (logged with what it causes).
async fn apply(
    app: &App,
    event: EventId,
    command: Command,
    from: IpAddr,
) -> Result<Reply, ApiError> {
    let receiver = app.runtime.submit(event, command, Some(from))?;
    answer_of(app, event, command.customer(), receiver).await
}

/// [`apply`], then `read` the event as the command left it, in the same
/// trip through the shard (the view comes with the durable outcome).
async fn apply_then<R: Send + 'static>(
    app: &App,
    event: EventId,
    command: Command,
    from: IpAddr,
    read: impl FnOnce(&ingressoja_engine::Engine) -> R + Send + 'static,
) -> Result<(Reply, R), ApiError> {
    let receiver = app.runtime.submit_then(event, command, Some(from), read)?;
    let (applied, view) = within(COMMIT_WAIT, receiver).await?;
    let reply = outcome_of(app, event, command.customer(), applied)?;
    // A view is missing only when the event is, and then the outcome
    // already said so.
    let view = view.ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))?;
    Ok((reply, view))
}

/// A durable outcome as the fan's answer; a refusal is also told to the
/// fan's open streams.
async fn answer_of(
    app: &App,
    event: EventId,
    customer: Option<CustomerId>,
    pending: crate::runtime::Pending<crate::runtime::Applied>,
) -> Result<Reply, ApiError> {
    let applied = within(COMMIT_WAIT, pending).await?;
    outcome_of(app, event, customer, applied)
}

/// [`answer_of`] for an outcome already received.
fn outcome_of(
    app: &App,
    event: EventId,
    customer: Option<CustomerId>,
    applied: crate::runtime::Applied,
) -> Result<Reply, ApiError> {
    applied.outcome.map_err(|rejection| {
        let error = ApiError::from(rejection);
        if let Some(customer) = customer {
            app.hub.reject(event, customer, error.code, &error.message);
        }
        error
    })
}

/// `GET /api/events`
pub async fn list_events(app: &App) -> Answer {
    let events = read_state(app, |state| {
        state
            .events
            .iter()
            .map(|(&id, engine)| EventFacts::of(id, engine))
            .collect::<Vec<_>>()
    })
    .await?;
    #[derive(Serialize)]
    struct Events {
        events: Vec<EventView>,
    }
    let events = Events {
        events: events
            .iter()
            .map(|facts| EventView::of(facts, &app.settings.terms(facts.id())))
            .collect(),
    };
    answer(StatusCode::OK, &events)
}

/// `GET /api/events/{id}`
pub async fn event(app: &App, event: EventId) -> Answer {
    let found = read_state(app, move |state| {
        state.events.get(&event).map(|e| EventFacts::of(event, e))
    })
    .await?;
    let facts = found.ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))?;
    answer(
        StatusCode::OK,
        &EventView::of(&facts, &app.settings.terms(event)),
    )
}

/// A join's proof of work (see `pow.rs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinProof {
    challenge: String,
    solution: String,
}

/// 404 unless `event` exists.
pub async fn require_event(app: &App, event: EventId) -> Result<(), ApiError> {
    let exists = read_state(app, move |state| state.events.contains_key(&event)).await?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no event {}", event.0)))
    }
}

/// `GET /api/events/{id}/challenge`: a proof-of-work challenge for joining.
pub async fn challenge(app: &App, event: EventId, customer: CustomerId, from: IpAddr) -> Answer {
    require_event(app, event).await?;
    // Harder for an address many accounts joined from lately.
    let base = app.settings.event(event).pow_difficulty;
    let difficulty = app
        .pressure
        .next_challenge(base, event, from, app.clock.now_ms());
    let (challenge, expires_at_ms) =
        app.challenges
            .issue(event, customer.0, difficulty, app.clock.now_ms())?;
    #[derive(Serialize)]
    struct Challenge {
        challenge: String,
        difficulty: u8,
        expires_at_ms: u64,
    }
    let challenge = Challenge {
        challenge,
        difficulty,
        expires_at_ms,
    };
    answer(StatusCode::OK, &challenge)
}

/// `POST /api/events/{id}/queue`, with a solved challenge when the event
/// asks for proof of work. Joining again (already in line) needs none.
pub async fn join(
    app: &App,
    event: EventId,
    customer: CustomerId,
    from: IpAddr,
    proof: Option<JoinProof>,
) -> Answer {
    let difficulty = app.settings.event(event).pow_difficulty;
    if difficulty > 0 || app.pressure.has_quota() {
        let fresh = status_of(app, event, customer).await? == QueueStatus::NotJoined;
        if fresh {
            app.pressure.check_quota(event, from, app.clock.now_ms())?;
        }
        if difficulty > 0 && fresh {
            let proof = proof.ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "proof_of_work_required",
                    "solve a challenge from GET /api/events/{id}/challenge and send {challenge, solution}",
                )
            })?;
            app.challenges.check(
                &proof.challenge,
                &proof.solution,
                event,
                customer.0,
                difficulty,
                app.clock.now_ms(),
            )?;
        }
    }
    let command = Command::Join { customer };
    let (reply, place) =
        apply_then(app, event, command, from, move |e| e.queue_status(customer)).await?;
    let status = if reply == (Reply::Joined { fresh: true }) {
        app.pressure.record_join(event, from, app.clock.now_ms());
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    answer(status, &QueueView::of(place, pace(app, event)))
}

/// `DELETE /api/events/{id}/queue`: a shopper is done (their hold, if any,
/// is released and the slot goes to the next in line), or a fan still
/// waiting gives up their place.
pub async fn leave(app: &App, event: EventId, customer: CustomerId, from: IpAddr) -> Answer {
    let command = Command::Leave { customer };
    let (_, status) =
        apply_then(app, event, command, from, move |e| e.queue_status(customer)).await?;
    answer(StatusCode::OK, &QueueView::of(status, pace(app, event)))
}

/// How fast the event's line moves now (for waiting fans' estimates).
pub fn pace(app: &App, event: EventId) -> super::pace::Pace {
    app.hub.paces.pace(event, app.clock.now_ms())
}

/// Where `customer` stands in `event`'s line (404 for no such event).
async fn status_of(
    app: &App,
    event: EventId,
    customer: CustomerId,
) -> Result<QueueStatus, ApiError> {
    let status = read_state(app, move |state| {
        state.events.get(&event).map(|e| e.queue_status(customer))
    })
    .await?;
    status.ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))
}

/// `GET /api/events/{id}/queue`
pub async fn queue_status(app: &App, event: EventId, customer: CustomerId) -> Answer {
    let status = status_of(app, event, customer).await?;
    answer(StatusCode::OK, &QueueView::of(status, pace(app, event)))
}

/// `GET /api/events/{id}/cart`
pub async fn cart(app: &App, event: EventId, customer: CustomerId) -> Answer {
    let cart = read_state(app, move |state| {
        state.events.get(&event).map(|e| e.cart(customer))
    })
    .await?;
    let cart = cart.ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))?;
    answer(StatusCode::OK, &CartView::of(cart))
}

/// The body of cart changes: `{"items": [{"ticket_type": 0, "quantity": 2}]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsBody {
    items: Vec<ItemBody>,
    /// The fan declares the right to meia-entrada (needed to add a
    /// half-price type; the document is shown at the gate).
    #[serde(default)]
    half_price_declared: bool,
}

/// 400 unless a selection with meia-entrada types comes with the fan's
/// declaration of the right to it (as the big Brazilian sites ask before
/// the hold, so that nobody is turned away at the gate by surprise).
fn check_half_price(
    app: &App,
    event: EventId,
    items: &[ItemBody],
    declared: bool,
) -> Result<(), ApiError> {
    if declared {
        return Ok(());
    }
    let terms = app.settings.terms(event);
    let wants_half = items
        .iter()
        .any(|i| i.quantity > 0 && terms.half_of(usize::from(i.ticket_type)).is_some());
    if wants_half {
        return Err(ApiError::bad_request(
            "half_price_declaration_required",
            "meia-entrada needs half_price_declared: true (the right to it is checked at the gate)",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    ticket_type: u8,
    quantity: u16,
}

impl ItemsBody {
    fn counts(&self) -> Result<TypeCounts, ApiError> {
        if self.items.is_empty() || self.items.len() > ingressoja_engine::MAX_TICKET_TYPES {
            return Err(ApiError::bad_request(
                "invalid_items",
                "give between 1 and 16 items",
            ));
        }
        if self.items.iter().any(|i| i.quantity == 0) {
            return Err(ApiError::bad_request(
                "invalid_quantity",
                "quantities must be at least 1",
            ));
        }
        counts(&self.items)
    }
}

/// The counts `items` name (a type named twice counts both).
fn counts(items: &[ItemBody]) -> Result<TypeCounts, ApiError> {
    let pairs: Vec<(TicketTypeId, u16)> = items
        .iter()
        .map(|i| (TicketTypeId(i.ticket_type), i.quantity))
        .collect();
    TypeCounts::from_pairs(&pairs).ok_or_else(|| {
        ApiError::bad_request("invalid_items", "unknown ticket type or quantity too large")
    })
}

/// `POST /api/events/{id}/cart/items` (add) and `DELETE` (remove).
pub async fn change_items(
    app: &App,
    event: EventId,
    customer: CustomerId,
    from: IpAddr,
    body: ItemsBody,
    add: bool,
) -> Answer {
    let items = body.counts()?;
    if add {
        check_half_price(app, event, &body.items, body.half_price_declared)?;
    }
    let command = if add {
        Command::AddItems { customer, items }
    } else {
        Command::RemoveItems { customer, items }
    };
    let (_, cart) = apply_then(app, event, command, from, move |e| e.cart(customer)).await?;
    answer(StatusCode::OK, &CartView::of(cart))
}

/// The body of `PUT /api/events/{id}/cart`: the whole selection,
/// `{"items": [{"ticket_type": 0, "quantity": 2}, {"ticket_type": 1,
/// "quantity": 0}]}`. A quantity of 0 (or a type left out) is none of that
/// type; a type named twice counts both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionBody {
    items: Vec<ItemBody>,
    /// See [`ItemsBody`].
    #[serde(default)]
    half_price_declared: bool,
}

impl SelectionBody {
    fn counts(&self) -> Result<TypeCounts, ApiError> {
        if self.items.len() > ingressoja_engine::MAX_TICKET_TYPES {
            return Err(ApiError::bad_request(
                "invalid_items",
                "give at most 16 items",
            ));
        }
        counts(&self.items)
    }
}

/// `PUT /api/events/{id}/cart`: the hold becomes exactly the selection, in
/// one step (what is missing held all or none, what is over given back).
/// The same selection again changes nothing: a double tap or a retry holds
/// once.
pub async fn set_items(
    app: &App,
    event: EventId,
    customer: CustomerId,
    from: IpAddr,
    body: SelectionBody,
) -> Answer {
    let items = body.counts()?;
    check_half_price(app, event, &body.items, body.half_price_declared)?;
    let command = Command::SetItems { customer, items };
    let (_, cart) = apply_then(app, event, command, from, move |e| e.cart(customer)).await?;
    answer(StatusCode::OK, &CartView::of(cart))
}

/// `DELETE /api/events/{id}/cart`
pub async fn release(app: &App, event: EventId, customer: CustomerId, from: IpAddr) -> Answer {
    let command = Command::ReleaseHold { customer };
    let (_, cart) = apply_then(app, event, command, from, move |e| e.cart(customer)).await?;
    answer(StatusCode::OK, &CartView::of(cart))
}

/// How the fan pays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A card, charged now (`card_number` required).
    #[default]
    Card,
    /// Pix: the answer is a charge to pay; the order comes when it is paid.
    Pix,
}

/// The body of a checkout: `{"card_number": "4242 4242 4242 4242"}` (a
/// card), or `{"method": "pix"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    #[serde(default)]
    method: Method,
    card_number: Option<String>,
}

/// An Idempotency-Key, as the engine stores it: the first 128 bits of its
/// SHA-256.
pub fn idempotency_hash(key: &str) -> u128 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// `POST /api/events/{id}/checkout` with an `Idempotency-Key` header.
/// The same key answers with the same order, forever; while its payment is
/// in progress a repeat gets 409 `payment_in_progress` (retry shortly), so
/// a double tap never charges twice. See `payments/checkout.rs` for the
/// order of steps that keeps money and orders together across a crash.
pub async fn checkout(
    app: &std::sync::Arc<App>,
    event: EventId,
    customer: CustomerId,
    from: IpAddr,
    key: &str,
    body: CheckoutBody,
) -> Answer {
    let card = match (body.method, &body.card_number) {
        (Method::Card, Some(number)) => Some(card_digits(number).ok_or_else(|| {
            ApiError::bad_request("invalid_card", "a card number has 12 to 19 digits")
        })?),
        (Method::Card, None) => {
            return Err(ApiError::bad_request(
                "invalid_card",
                "a card payment needs card_number",
            ));
        }
        (Method::Pix, None) => None,
        (Method::Pix, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_method",
                "a Pix payment has no card_number",
            ));
        }
    };
    let key_hash = idempotency_hash(key);
    let (existing, hold) = read_state(app, move |state| {
        let engine = state.events.get(&event)?;
        let existing = engine
            .orders_of(customer)
            .find(|(_, o)| o.idempotency_key == key_hash)
            .map(|(id, _)| id);
        let hold = engine
            .cart(customer)
            .map(|c| (c.total_cents, c.expires_at_ms));
        Some((existing, hold))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))?;
    if let Some(order) = existing {
        return order_answer(app, event, customer, order, StatusCode::OK).await;
    }
    let Some((amount_cents, expires_at_ms)) = hold else {
        // No cart: let the engine say why (no hold, or it expired) without
        // charging anything; a rejected checkout changes nothing.
        let no_charge = Command::Checkout {
            customer,
            payment: Payment::Declined,
            idempotency_key: key_hash,
            ticket_seed: 0,
        };
        apply(app, event, no_charge, from).await?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_hold",
            "your cart is empty",
        ));
    };
    let Some(card) = card else {
        let request = PixRequest {
            checkout: crate::runtime::CheckoutKey {
                event,
                customer,
                idempotency_key: key_hash,
            },
            from,
            amount_cents,
            expires_at_ms,
        };
        return pix_answer(app, event, customer, request).await;
    };
    let request = Paying {
        event,
        customer,
        from,
        card,
        amount_cents,
        idempotency_key: key_hash,
    };
    match pay_in_task(app, request).await? {
        Ok(Reply::OrderPlaced { order, duplicate }) => {
            let status = if duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            order_answer(app, event, customer, order, status).await
        }
        Ok(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "unexpected_reply",
            "the checkout did not place an order",
        )),
        Err(rejection) => {
            let error = ApiError::from(rejection);
            app.hub.reject(event, customer, error.code, &error.message);
            Err(error)
        }
    }
}

/// A Pix checkout's answer: 202 with the charge to pay (its code, a QR
/// code of it, the amount and its end), or the engine's refusal.
async fn pix_answer(
    app: &std::sync::Arc<App>,
    event: EventId,
    customer: CustomerId,
    request: PixRequest,
) -> Answer {
    // A task of its own, as a card's payment: a client that hangs up must
    // not leave a payment logged with no charge issued.
    let task = {
        let app = app.clone();
        tokio::spawn(async move { start_pix(&app.runtime, app.gateway.as_ref(), request).await })
    };
    let started = tokio::time::timeout(CHECKOUT_WAIT, task)
        .await
        .map_err(|_| ApiError::outcome_unknown())?
        .map_err(|e| ApiError::internal("payment_task_failed", e))??;
    let charge = match started {
        PixStart::Awaiting(charge) => charge,
        PixStart::InProgress => {
            return Err(ApiError::from(
                crate::runtime::RuntimeError::PaymentInFlight,
            ));
        }
        PixStart::Refused(outcome) => {
            let rejection = match outcome {
                Err(rejection) => rejection,
                Ok(_) => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "unexpected_reply",
                        "the Pix charge was not issued",
                    ));
                }
            };
            let error = ApiError::from(rejection);
            app.hub.reject(event, customer, error.code, &error.message);
            return Err(error);
        }
    };
    let code = charge.code.clone();
    // QR codes are drawn off the request workers.
    let qr_svg = tokio::task::spawn_blocking(move || {
        qrcode::QrCode::new(code.as_bytes()).ok().map(|qr| {
            qr.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build()
        })
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    answer(
        StatusCode::ACCEPTED,
        &super::views::PixView {
            status: "awaiting_payment",
            pix: super::views::PixChargeView {
                code: charge.code,
                qr_svg,
                amount_cents: charge.amount_cents,
                expires_at_ms: charge.expires_at_ms,
            },
        },
    )
}

/// A checkout's payment, owned (it outlives the request).
struct Paying {
    event: EventId,
    customer: CustomerId,
    from: IpAddr,
    card: String,
    amount_cents: u64,
    idempotency_key: u128,
}

/// Runs the payment as a task of its own: a client that hangs up (or
/// times out) mid-payment must not cancel it between the charge and the
/// order. Its retry finds the order, or 409 while it is still running.
async fn pay_in_task(
    app: &std::sync::Arc<App>,
    paying: Paying,
) -> Result<ingressoja_engine::Outcome, ApiError> {
    let app = app.clone();
    let payment = tokio::spawn(async move {
        let request = CheckoutRequest {
            event: paying.event,
            customer: paying.customer,
            from: paying.from,
            card: &paying.card,
            amount_cents: paying.amount_cents,
            idempotency_key: paying.idempotency_key,
        };
        let outcome = pay(&app.runtime, app.gateway.as_ref(), request).await;
        // A new order (not a retry's answer) gets its receipt, written and
        // sent off this task: the answer does not wait for the mail.
        if let Ok(Ok(Reply::OrderPlaced {
            order,
            duplicate: false,
        })) = &outcome
        {
            tokio::spawn(send_receipt(
                app.clone(),
                paying.event,
                paying.customer,
                *order,
            ));
        }
        outcome
    });
    let finished = tokio::time::timeout(CHECKOUT_WAIT, payment)
        .await
        .map_err(|_| ApiError::outcome_unknown())?;
    Ok(finished.map_err(|e| ApiError::internal("payment_task_failed", e))??)
}

/// Mails the buyer the receipt of `order`: its number, the event, each
/// ticket with its code, the total, and where the tickets are. A failure
/// to read what it needs is logged; the order stands regardless.
pub(crate) async fn send_receipt(
    app: std::sync::Arc<App>,
    event: EventId,
    customer: CustomerId,
    order: ingressoja_engine::OrderId,
) {
    use crate::mail::letters::{Receipt, ReceiptTicket};
    let facts = read_state(&app, move |state| {
        let engine = state.events.get(&event)?;
        let placed = engine.order(order)?;
        let config = engine.config();
        let tickets: Vec<ReceiptTicket> = engine
            .tickets_of(order)
            .map(|ticket| {
                let kind = config.ticket_types.get(ticket.ticket_type.index());
                ReceiptTicket {
                    type_name: kind.map_or_else(String::new, |k| k.name.clone()),
                    price_cents: kind.map_or(0, |k| k.price_cents),
                    code: format!("{:032X}", ticket.code),
                }
            })
            .collect();
        // Only what the letter needs is copied off the shard.
        let event = (
            config.name.clone(),
            config.venue.clone(),
            config.starts_at_ms,
        );
        Some((event, placed.total_cents, tickets))
    })
    .await;
    let account = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let account = app.accounts.store().get(customer.0)?;
            let holder = app.proposer.state().accounts().holder(customer.0)?;
            Ok::<_, std::io::Error>(account.map(|a| (a, holder.map(|h| h.name))))
        })
        .await
    };
    match (facts, account) {
        (
            Ok(Some(((name, venue, starts_at_ms), total_cents, tickets))),
            Ok(Ok(Some((account, holder)))),
        ) => {
            let receipt = Receipt {
                holder,
                to: account.email,
                number: super::views::order_number(event.0, order.0),
                event: name,
                venue,
                starts_at_ms,
                total_cents,
                tickets,
                tickets_url: format!("{}/#/tickets", app.public_url()),
            };
            app.mail.send(receipt.letter());
        }
        _ => tracing::warn!(
            event = event.0,
            order = order.0,
            "no receipt: the order or its buyer could not be read"
        ),
    }
}

async fn order_answer(
    app: &App,
    event: EventId,
    customer: CustomerId,
    order: ingressoja_engine::OrderId,
    status: StatusCode,
) -> Answer {
    let found = read_state(app, move |state| {
        let engine = state.events.get(&event)?;
        let found = engine.order(order).filter(|o| o.customer == customer)?;
        Some((*found, engine.tickets_of(order).collect::<Vec<_>>()))
    })
    .await?;
    let (found, tickets) = found.ok_or_else(|| ApiError::not_found("no such order"))?;
    let orders = vec![OrderView::of(event, order, &found, tickets.into_iter())];
    let order = with_qr_codes(orders)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("no such order"))?;
    answer(status, &order)
}

/// Draws the tickets' QR codes (about half a millisecond each) on the
/// blocking pool, off the threads that serve requests.
async fn with_qr_codes(mut orders: Vec<OrderView>) -> Result<Vec<OrderView>, ApiError> {
    tokio::task::spawn_blocking(move || {
        orders.iter_mut().for_each(OrderView::draw_qr_codes);
        orders
    })
    .await
    .map_err(|e| ApiError::internal("qr_failed", e))
}

/// Orders per page of `GET /api/me/orders`, by default and at most.
pub const ORDERS_PER_PAGE: usize = 20;
/// A page stops taking orders once it holds this many tickets (it always
/// takes one), so a page costs a bounded number of QR codes.
pub const TICKETS_PER_PAGE: usize = 100;

/// Where a page of orders starts: after this (event, order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct OrderCursor(u64, u32);

impl OrderCursor {
    fn parse(text: &str) -> Option<OrderCursor> {
        let (event, order) = text.split_once('-')?;
        Some(OrderCursor(event.parse().ok()?, order.parse().ok()?))
    }
}

/// The query of `GET /api/me/orders`: `limit` (1–20) and `after` (the
/// `next` of the previous page).
fn orders_query(query: &str) -> Result<(usize, Option<OrderCursor>), ApiError> {
    let mut limit = ORDERS_PER_PAGE;
    let mut after = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=ORDERS_PER_PAGE).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("limit is a whole number from 1 to {ORDERS_PER_PAGE}"),
                        )
                    })?;
            }
            "after" => {
                after = Some(OrderCursor::parse(value).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", "after is the next of a previous page")
                })?);
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown parameter {name:?}: use limit and after"),
                ));
            }
        }
    }
    Ok((limit, after))
}

/// `GET /api/me/orders?limit=&after=`: the fan's orders, oldest first, a
/// page at a time (`next` is the `after` of the next page, null at the end).
pub async fn my_orders(app: &App, customer: CustomerId, query: &str) -> Answer {
    let (limit, after) = orders_query(query)?;
    // The shard copies one page of orders and their tickets; JSON and QR
    // codes (the slow part) are made off it.
    let (page, more) = read_state(app, move |state| {
        let mut mine = Vec::new();
        for (&event, engine) in &state.events {
            for (id, order) in engine.orders_of(customer) {
                if after.is_none_or(|a| OrderCursor(event.0, id.0) > a) {
                    mine.push((event, id, *order));
                }
            }
        }
        mine.sort_by_key(|&(event, id, _)| OrderCursor(event.0, id.0));
        let mut page = Vec::new();
        let mut tickets = 0;
        for &(event, id, order) in &mine {
            if page.len() == limit || (tickets >= TICKETS_PER_PAGE && !page.is_empty()) {
                break;
            }
            let engine = &state.events[&event];
            let its = engine.tickets_of(id).collect::<Vec<_>>();
            tickets += its.len();
            page.push((event, id, order, its));
        }
        let more = mine.len() > page.len();
        (page, more)
    })
    .await?;
    let next = more
        .then(|| {
            page.last()
                .map(|(event, id, _, _)| format!("{}-{}", event.0, id.0))
        })
        .flatten();
    let orders: Vec<OrderView> = page
        .into_iter()
        .map(|(event, id, order, tickets)| OrderView::of(event, id, &order, tickets.into_iter()))
        .collect();
    #[derive(Serialize)]
    struct Page {
        orders: Vec<OrderView>,
        next: Option<String>,
        /// Whose name the tickets carry (null if the account has none).
        holder: Option<super::account_api::HolderView>,
    }
    let holder = super::account_api::holder_of(app, customer.0)?;
    let page = Page {
        orders: with_qr_codes(orders).await?,
        next,
        holder: holder.as_ref().map(super::account_api::HolderView::of),
    };
    answer(StatusCode::OK, &page)
}
