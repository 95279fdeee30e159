//! Stock per ticket type: available, held and sold, always summing to the
//! capacity. Every change moves tickets between the three counters in one
//! step, so the sum cannot drift.

use serde::{Deserialize, Serialize};

use crate::config::TicketType;
use crate::counts::TypeCounts;
use crate::ids::TicketTypeId;

/// The counters of one ticket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// Tickets that exist.
    pub capacity: u32,
    /// Free to add to a cart.
    pub available: u32,
    /// In someone's hold.
    pub held: u32,
    /// In someone's order.
    pub sold: u32,
}

/// The stock of every type of one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    types: Vec<Stock>,
    /// Sum of `available` over types, so "anything left?" is O(1).
    available_total: u64,
    /// Sum of `available + held` (not sold), for stock-paced admission,
    /// which asks on every command.
    unsold_total: u64,
}

impl Inventory {
    /// Everything available.
    pub fn new(ticket_types: &[TicketType]) -> Inventory {
        let types: Vec<Stock> = ticket_types
            .iter()
            .map(|t| Stock {
                capacity: t.capacity,
                available: t.capacity,
                held: 0,
                sold: 0,
            })
            .collect();
        let available_total = types.iter().map(|s| u64::from(s.available)).sum();
        Inventory {
            types,
            available_total,
            unsold_total: available_total,
        }
    }

    /// The counters per type, indexed by type id.
    pub fn types(&self) -> &[Stock] {
        &self.types
    }

    /// Tickets free to add to a cart, all types together.
    pub fn available_total(&self) -> u64 {
        self.available_total
    }

    /// Tickets not sold (available or held), all types together.
    pub fn unsold_total(&self) -> u64 {
        self.unsold_total
    }

    /// True when every ticket of every type is sold.
    pub fn sold_out(&self) -> bool {
        self.types.iter().all(|s| s.sold == s.capacity)
    }

    /// The first type of which fewer than requested are available.
    pub fn first_short(&self, items: &TypeCounts) -> Option<TicketTypeId> {
        items.iter().find_map(|(t, q)| {
            let stock = self.types.get(t.index())?;
            (u32::from(q) > stock.available).then_some(t)
        })
    }

    /// Moves `items` from available to held.
    pub(crate) fn hold(&mut self, items: &TypeCounts) {
        self.shift(items, |s, q| {
            s.available -= q;
            s.held += q;
        });
        self.available_total -= u64::from(items.total());
    }

    /// Moves `items` from held back to available.
    pub(crate) fn release(&mut self, items: &TypeCounts) {
        self.shift(items, |s, q| {
            s.held -= q;
            s.available += q;
        });
        self.available_total += u64::from(items.total());
    }

    /// Moves `items` from held to sold.
    pub(crate) fn sell(&mut self, items: &TypeCounts) {
        self.shift(items, |s, q| {
            s.held -= q;
            s.sold += q;
        });
        self.unsold_total -= u64::from(items.total());
    }

    /// Whether `items` could be held (checked before applying a logged
    /// transition of unknown origin).
    pub(crate) fn can_hold(&self, items: &TypeCounts) -> bool {
        items.first_beyond(self.types.len()).is_none() && self.first_short(items).is_none()
    }

    /// Whether `items` are all currently held by someone.
    pub(crate) fn holds_at_least(&self, items: &TypeCounts) -> bool {
        items.iter().all(|(t, q)| {
            self.types
                .get(t.index())
                .is_some_and(|s| s.held >= u32::from(q))
        })
    }

    // The callers guarantee the counters cover `items` (the engine validated
    // the command, or `Engine::apply_transition` checked the logged
    // transition), so the arithmetic is exact; overflow checks are on in
    // every profile and would stop a bug here rather than let stock drift.
    fn shift(&mut self, items: &TypeCounts, change: impl Fn(&mut Stock, u32)) {
        for (t, q) in items.iter() {
            let Some(stock) = self.types.get_mut(t.index()) else {
                unreachable!("ticket type {t:?} is not in the event");
            };
            change(stock, u32::from(q));
        }
    }
}
