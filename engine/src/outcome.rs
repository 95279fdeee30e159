//! What applying a command answers: a reply, or a rejection saying why
//! nothing changed. Rejections are ordinary values, not errors: a sold-out
//! show or a customer at their limit is the normal course of a drop.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::ids::{OrderId, TicketTypeId};

/// The answer to a command.
pub type Outcome = Result<Reply, Rejection>;

/// What a command achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// In the queue. `fresh` is false when the customer was already in it and
    /// keeps the same place.
    Joined {
        /// A new entry rather than the existing one.
        fresh: bool,
    },
    /// The hold now has the requested items and expires at `expires_at_ms`.
    Held {
        /// When the hold expires.
        expires_at_ms: u64,
    },
    /// Items went back to stock; `hold_expires_at_ms` is `None` when the hold
    /// is now empty and gone.
    Released {
        /// When what is left of the hold expires.
        hold_expires_at_ms: Option<u64>,
    },
    /// The hold became this order. `duplicate` is true when the
    /// idempotency key had already placed it and nothing new was sold.
    OrderPlaced {
        /// The order.
        order: OrderId,
        /// A retry answered with the first result.
        duplicate: bool,
    },
    /// The customer's turn ended.
    Left,
    /// Done; for time, admin and no-op commands.
    Done,
}

/// Which per-customer limit a request would break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Limit {
    /// The limit of one ticket type.
    PerType(TicketTypeId),
    /// The limit over all types of the event.
    PerEvent,
}

/// Why a command changed nothing. For each command they are checked in the
/// order listed here (request shape, then the sale, then the customer, then
/// limits, then stock, then payment), so a request has exactly one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rejection {
    /// A cart request with no tickets in it.
    EmptyItems,
    /// A cart request naming a type the event does not sell.
    UnknownTicketType(TicketTypeId),
    /// The queue has not opened yet (before the pre-queue).
    QueueNotOpen,
    /// The sale has not opened yet.
    SaleNotOpen,
    /// The sale window is over.
    SaleClosed,
    /// Every ticket is sold.
    SoldOut,
    /// The operator paused the sale.
    Paused,
    /// The queue is at `max_queue_len`.
    QueueFull,
    /// The customer never joined this event's queue.
    NotInQueue,
    /// The customer is still waiting for their turn.
    NotAdmitted,
    /// The customer's turn is over (admission window passed, or they left).
    AdmissionExpired,
    /// There is no hold to act on.
    NoHold,
    /// The hold expired before this request.
    HoldExpired,
    /// Removing more of a type than the hold has.
    NotInCart(TicketTypeId),
    /// The request would put the customer over a limit.
    LimitReached(Limit),
    /// Not enough tickets of a type are left.
    InsufficientStock(TicketTypeId),
    /// The gateway declined the card.
    PaymentDeclined,
    /// The gateway failed.
    PaymentFailed,
    /// The charge does not match the hold's total.
    AmountMismatch {
        /// What the hold costs.
        expected_cents: u64,
    },
    /// An admin change was refused.
    InvalidConfig(ConfigError),
}

impl Rejection {
    /// A stable snake_case code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::EmptyItems => "empty_items",
            Rejection::UnknownTicketType(_) => "unknown_ticket_type",
            Rejection::QueueNotOpen => "queue_not_open",
            Rejection::SaleNotOpen => "sale_not_open",
            Rejection::SaleClosed => "sale_closed",
            Rejection::SoldOut => "sold_out",
            Rejection::Paused => "paused",
            Rejection::QueueFull => "queue_full",
            Rejection::NotInQueue => "not_in_queue",
            Rejection::NotAdmitted => "not_admitted",
            Rejection::AdmissionExpired => "admission_expired",
            Rejection::NoHold => "no_hold",
            Rejection::HoldExpired => "hold_expired",
            Rejection::NotInCart(_) => "not_in_cart",
            Rejection::LimitReached(_) => "limit_reached",
            Rejection::InsufficientStock(_) => "insufficient_stock",
            Rejection::PaymentDeclined => "payment_declined",
            Rejection::PaymentFailed => "payment_failed",
            Rejection::AmountMismatch { .. } => "amount_mismatch",
            Rejection::InvalidConfig(_) => "invalid_config",
        }
    }
}
