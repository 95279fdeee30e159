//! Transitions: every change to an event's state, as a value.
//!
//! The engine decides (validating a command against the state) and then
//! applies transitions, and nothing else changes state. So the transitions of
//! a sale are a complete record: the write-ahead log stores them, replaying
//! them onto a fresh engine rebuilds identical state, and notifications are
//! derived from them. Each carries exactly what replay needs and nothing that
//! can be derived (an order's id is its index, an admitted customer is the one
//! at the next position).

use serde::{Deserialize, Serialize};

use crate::config::{Policy, PolicyV1, Schedule};
use crate::counts::TypeCounts;
use crate::ids::CustomerId;

/// Why the queue closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CloseReason {
    /// Every ticket was sold.
    SoldOut,
    /// The sale window ended.
    Ended,
}

/// One change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    /// The sale opened: the `prequeue_len` who joined before are placed by the
    /// draw keyed with `shuffle_seed`, later joiners queue in arrival order.
    Opened {
        /// When.
        at_ms: u64,
        /// How many joined before opening.
        prequeue_len: u32,
        /// The draw's seed, published here for audit.
        shuffle_seed: u64,
    },
    /// The queue closed: nobody else joins or is admitted, and everyone still
    /// waiting is told at once.
    Closed {
        /// When.
        at_ms: u64,
        /// Sold out or ended.
        reason: CloseReason,
    },
    /// A customer took the next join number.
    Joined {
        /// Who.
        customer: CustomerId,
    },
    /// The next `count` positions in line were admitted at `at_ms`; each has
    /// until `at_ms + admission_window_ms` to build a cart.
    Admitted {
        /// When.
        at_ms: u64,
        /// How many.
        count: u32,
    },
    /// Tickets reserved into a hold. `expires_at_ms` is set when the hold is
    /// new and repeated (unchanged) when items are added to an existing hold.
    ItemsHeld {
        /// Whose hold.
        customer: CustomerId,
        /// What was added.
        items: TypeCounts,
        /// When the hold expires.
        expires_at_ms: u64,
    },
    /// Tickets given back from a hold by the customer; an empty hold ends.
    ItemsReleased {
        /// Whose hold.
        customer: CustomerId,
        /// What was given back.
        items: TypeCounts,
    },
    /// A hold reached its TTL; its tickets returned to stock.
    HoldExpired {
        /// Whose hold.
        customer: CustomerId,
    },
    /// A hold became an order with tickets. The order's id is the number of
    /// orders before it; its tickets follow the last ticket sold.
    OrderPlaced {
        /// Whose hold.
        customer: CustomerId,
        /// When.
        at_ms: u64,
        /// From which the tickets' codes are derived.
        ticket_seed: u128,
        /// Hash of the Idempotency-Key that placed the order.
        idempotency_key: u128,
        /// The gateway's reference for the charge.
        payment_ref: u64,
    },
    /// A shopper's turn ended (window over with no hold, hold over after the
    /// window, or left): the slot goes to the next in line.
    SessionEnded {
        /// Whose turn.
        customer: CustomerId,
    },
    /// Admission and additions to carts stopped.
    Paused {
        /// When.
        at_ms: u64,
    },
    /// Admission and additions to carts resumed.
    Resumed {
        /// When.
        at_ms: u64,
    },
    /// A policy took effect, in the wire form before issue 11: read from
    /// old logs, never written.
    PolicyChangedV1 {
        /// When (admissions before it are paced by the old rate).
        at_ms: u64,
        /// The new policy.
        policy: PolicyV1,
    },
    /// A new schedule took effect.
    Rescheduled {
        /// The new schedule.
        schedule: Schedule,
    },
    /// A customer still waiting gave up their place: the cursor will step
    /// over them. (Last, so that logs written before it keep their
    /// variant numbers.)
    LeftQueue {
        /// Who.
        customer: CustomerId,
    },
    /// The first fan to join after opening since the last draw opened an
    /// arrival window: everyone who joins until `ends_at_ms` is drawn
    /// together then.
    ArrivalWindowOpened {
        /// When the window's joiners are drawn (a multiple of the window
        /// length after the opening).
        ends_at_ms: u64,
    },
    /// The `count` fans who joined in the window that just ended were
    /// placed, behind everyone placed before, in the order of the draw
    /// keyed with `seed` (derived from the event's secret seed and the
    /// window's first join number, published here for audit).
    ArrivalsDrawn {
        /// When.
        at_ms: u64,
        /// How many were drawn.
        count: u32,
        /// The draw's seed.
        seed: u64,
    },
    /// A new policy took effect.
    PolicyChanged {
        /// When (admissions before it are paced by the old rate).
        at_ms: u64,
        /// The new policy.
        policy: Policy,
    },
    /// A shopper held nothing past their idle time: they keep their turn
    /// but no longer count against the stock (the next in line comes in).
    ShopperIdle {
        /// Who.
        customer: CustomerId,
    },
}

impl Transition {
    /// The variant's name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Transition::Opened { .. } => "opened",
            Transition::Closed { .. } => "closed",
            Transition::Joined { .. } => "joined",
            Transition::Admitted { .. } => "admitted",
            Transition::ItemsHeld { .. } => "items_held",
            Transition::ItemsReleased { .. } => "items_released",
            Transition::HoldExpired { .. } => "hold_expired",
            Transition::OrderPlaced { .. } => "order_placed",
            Transition::SessionEnded { .. } => "session_ended",
            Transition::Paused { .. } => "paused",
            Transition::Resumed { .. } => "resumed",
            Transition::PolicyChanged { .. } | Transition::PolicyChangedV1 { .. } => {
                "policy_changed"
            }
            Transition::Rescheduled { .. } => "rescheduled",
            Transition::LeftQueue { .. } => "left_queue",
            Transition::ArrivalWindowOpened { .. } => "arrival_window_opened",
            Transition::ArrivalsDrawn { .. } => "arrivals_drawn",
            Transition::ShopperIdle { .. } => "shopper_idle",
        }
    }

    /// The customer a transition is about, if any; per-customer notifications
    /// are routed by it.
    pub fn customer(&self) -> Option<CustomerId> {
        match *self {
            Transition::Joined { customer }
            | Transition::ItemsHeld { customer, .. }
            | Transition::ItemsReleased { customer, .. }
            | Transition::HoldExpired { customer }
            | Transition::OrderPlaced { customer, .. }
            | Transition::SessionEnded { customer }
            | Transition::ShopperIdle { customer }
            | Transition::LeftQueue { customer } => Some(customer),
            Transition::Opened { .. }
            | Transition::Closed { .. }
            | Transition::Admitted { .. }
            | Transition::Paused { .. }
            | Transition::Resumed { .. }
            | Transition::PolicyChanged { .. }
            | Transition::PolicyChangedV1 { .. }
            | Transition::Rescheduled { .. }
            | Transition::ArrivalWindowOpened { .. }
            | Transition::ArrivalsDrawn { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Transition::PolicyChanged` as the code before issue 11 (commit
    /// 015270e) logged it.
    const POLICY_CHANGE_BEFORE_ISSUE_11: [u8; 33] = [
        0x0b, 0xb8, 0x17, 0x96, 0x01, 0xf4, 0x03, 0xc0, 0xcf, 0x24, 0x80, 0xa6, 0x1d, 0x02, 0x04,
        0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
        0x80, 0x89, 0x7a,
    ];

    #[test]
    fn a_policy_change_logged_before_arrival_windows_still_reads() {
        let old: Transition = postcard::from_bytes(&POLICY_CHANGE_BEFORE_ISSUE_11).unwrap();
        let Transition::PolicyChangedV1 { at_ms, policy } = old else {
            panic!("read as {old:?}");
        };
        assert_eq!(at_ms, 3_000);
        assert_eq!(policy.max_active, 150);
        assert_eq!(policy.per_event_limit, 2);
        assert_eq!(Policy::from(policy).arrival_window_ms, 0);
    }
}
