//! What can be asked of an event's allocator. Commands are plain `Copy`
//! values: the shard decodes a request into one, applies it, and never
//! allocates for it.

use serde::{Deserialize, Serialize};

use crate::config::{Policy, Schedule};
use crate::counts::TypeCounts;
use crate::ids::CustomerId;

/// A request to the allocator of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Take a place in the waiting queue. Joining again returns the same place.
    Join {
        /// Who joins.
        customer: CustomerId,
    },
    /// Reserve these tickets, all or none, adding them to the customer's hold
    /// (starting one if there is none). Needs an open admission window.
    AddItems {
        /// Whose cart.
        customer: CustomerId,
        /// How many of each type.
        items: TypeCounts,
    },
    /// Give back some of the held tickets.
    RemoveItems {
        /// Whose cart.
        customer: CustomerId,
        /// How many of each type.
        items: TypeCounts,
    },
    /// Make the hold exactly these tickets (zero of a type: none of it):
    /// what is missing is reserved, all or none, as [`Command::AddItems`]
    /// does, and what is over is given back, in one step. Asking again for
    /// the same selection changes nothing, so a double tap or a retry after
    /// a lost answer holds once.
    SetItems {
        /// Whose cart.
        customer: CustomerId,
        /// How many of each type, in all.
        items: TypeCounts,
    },
    /// Give back the whole hold.
    ReleaseHold {
        /// Whose cart.
        customer: CustomerId,
    },
    /// Turn the hold into an order, given what the payment gateway said.
    Checkout {
        /// Whose cart.
        customer: CustomerId,
        /// The gateway's answer.
        payment: Payment,
        /// A hash of the client's Idempotency-Key: a second checkout with the
        /// same key returns the first order and never sells again.
        idempotency_key: u128,
        /// 128 random bits from the server's CSPRNG from which the tickets'
        /// codes are derived; carried in the command so the engine stays
        /// deterministic and the codes stay unguessable.
        ticket_seed: u128,
    },
    /// The customer is done shopping: release the hold, free the slot for the
    /// next in line.
    Leave {
        /// Who leaves.
        customer: CustomerId,
    },
    /// Let time pass: open or close the sale, expire holds and admission
    /// windows, admit from the queue. The shard sends it at `next_deadline()`.
    Tick,
    /// Stop admitting and adding to carts (joins and payment of existing
    /// holds continue).
    Pause,
    /// Undo [`Command::Pause`].
    Resume,
    /// Replace the policy (limits may only grow once the sale is open).
    UpdatePolicy {
        /// The new policy.
        policy: Policy,
    },
    /// Move the sale window (the opening only before it has happened).
    Reschedule {
        /// The new schedule.
        schedule: Schedule,
    },
}

/// What the payment gateway answered for the amount of the hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payment {
    /// Captured. `amount_cents` is what was charged; it must equal the hold's
    /// total, or the cart changed after the charge was computed and nothing is
    /// sold (the server voids the charge).
    Approved {
        /// What was charged, in centavos.
        amount_cents: u64,
        /// The gateway's reference for the charge, kept on the order.
        payment_ref: u64,
    },
    /// The card was declined; the hold stays until it expires.
    Declined,
    /// The gateway failed or timed out; the hold stays until it expires.
    Failed,
}

impl Command {
    /// The customer a command acts for, if any (admin and time commands have none).
    pub fn customer(&self) -> Option<CustomerId> {
        match *self {
            Command::Join { customer }
            | Command::AddItems { customer, .. }
            | Command::RemoveItems { customer, .. }
            | Command::SetItems { customer, .. }
            | Command::ReleaseHold { customer }
            | Command::Checkout { customer, .. }
            | Command::Leave { customer } => Some(customer),
            Command::Tick
            | Command::Pause
            | Command::Resume
            | Command::UpdatePolicy { .. }
            | Command::Reschedule { .. } => None,
        }
    }
}
