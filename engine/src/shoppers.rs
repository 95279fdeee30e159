//! Admitted customers ("shoppers"), their holds, and when each must be looked
//! at again.
//!
//! A shopper exists from admission until their turn ends: the admission
//! window passes with no hold, the hold ends after the window has passed, or
//! they leave. The number of shoppers is the "active shoppers" count that
//! admission control compares with `max_active`, so this map is bounded by it.
//!
//! Each shopper has exactly one deadline: the hold's expiry if they hold
//! tickets, otherwise the end of their admission window. Deadlines live in a
//! min-heap with lazy deletion: an entry is live only while it equals the
//! shopper's current deadline, stale entries are dropped when they surface,
//! and the heap is rebuilt whenever stale entries outnumber live ones, so it
//! never holds more than about twice the shoppers. Finding what is due costs
//! O(log n) per due item, never a scan.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::counts::TypeCounts;
use crate::ids::CustomerId;

/// Tickets reserved for one customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// What is held (never empty: an emptied hold ends).
    pub items: TypeCounts,
    /// Fixed by the first item; later additions do not extend it.
    pub expires_at_ms: u64,
}

/// An admitted customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shopper {
    /// Adding to the cart is allowed until here.
    pub window_ends_at_ms: u64,
    /// The cart, if any.
    pub hold: Option<Hold>,
    /// The last hold ended by expiry (so a late checkout hears "expired"
    /// rather than "no hold").
    pub hold_expired: bool,
}

impl Shopper {
    /// When this shopper must be looked at again.
    pub fn deadline_ms(&self) -> u64 {
        match self.hold {
            Some(hold) => hold.expires_at_ms,
            None => self.window_ends_at_ms,
        }
    }
}

/// Heap entries beyond this many more than the shoppers trigger a rebuild.
const STALE_SLACK: usize = 1024;

/// All shoppers of one event.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "ShoppersRecord", into = "ShoppersRecord")]
pub struct Shoppers {
    by_customer: FxHashMap<CustomerId, Shopper>,
    /// Min-heap of (deadline, customer); derived from `by_customer`.
    deadlines: BinaryHeap<Reverse<(u64, CustomerId)>>,
    /// Shoppers with a hold, kept so stats are O(1).
    holds: u32,
}

impl PartialEq for Shoppers {
    fn eq(&self, other: &Shoppers) -> bool {
        // The heap is derived; its layout depends on when stale entries were
        // dropped, which is not state.
        self.by_customer == other.by_customer && self.holds == other.holds
    }
}

impl Eq for Shoppers {}

impl Shoppers {
    /// How many customers are shopping (the active count).
    pub fn len(&self) -> u32 {
        u32::try_from(self.by_customer.len()).unwrap_or(u32::MAX)
    }

    /// True when nobody is shopping.
    pub fn is_empty(&self) -> bool {
        self.by_customer.is_empty()
    }

    /// How many shoppers hold tickets.
    pub fn holds(&self) -> u32 {
        self.holds
    }

    /// The shopper record of a customer.
    pub fn get(&self, customer: CustomerId) -> Option<&Shopper> {
        self.by_customer.get(&customer)
    }

    /// Every shopper, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&CustomerId, &Shopper)> {
        self.by_customer.iter()
    }

    /// The earliest deadline in the heap. It may belong to a stale entry, so
    /// it is a lower bound: waking at it is at worst a wasted tick.
    pub fn peek_deadline_ms(&self) -> Option<u64> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _))| *deadline)
    }

    /// A shopper whose deadline is at or before `now_ms`, dropping stale heap
    /// entries on the way. The caller must change that shopper's deadline or
    /// end their turn before asking again.
    pub(crate) fn next_due(&mut self, now_ms: u64) -> Option<CustomerId> {
        while let Some(&Reverse((deadline, customer))) = self.deadlines.peek() {
            if deadline > now_ms {
                return None;
            }
            let live = self
                .by_customer
                .get(&customer)
                .is_some_and(|s| s.deadline_ms() == deadline);
            if live {
                return Some(customer);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Starts a turn.
    pub(crate) fn admit(&mut self, customer: CustomerId, window_ends_at_ms: u64) {
        let shopper = Shopper {
            window_ends_at_ms,
            hold: None,
            hold_expired: false,
        };
        self.by_customer.insert(customer, shopper);
        self.schedule(customer, window_ends_at_ms);
    }

    /// Adds to the customer's hold, starting one that expires at
    /// `expires_at_ms` if there is none.
    pub(crate) fn hold(&mut self, customer: CustomerId, items: &TypeCounts, expires_at_ms: u64) {
        let Some(shopper) = self.by_customer.get_mut(&customer) else {
            return;
        };
        match &mut shopper.hold {
            Some(hold) => {
                hold.items = hold.items.checked_add(items).unwrap_or(hold.items);
            }
            None => {
                shopper.hold = Some(Hold {
                    items: *items,
                    expires_at_ms,
                });
                shopper.hold_expired = false;
                self.holds += 1;
                self.schedule(customer, expires_at_ms);
            }
        }
    }

    /// Takes `items` out of the hold; an emptied hold ends.
    pub(crate) fn release(&mut self, customer: CustomerId, items: &TypeCounts) {
        let Some(shopper) = self.by_customer.get_mut(&customer) else {
            return;
        };
        let Some(hold) = &mut shopper.hold else {
            return;
        };
        hold.items = hold.items.checked_sub(items).unwrap_or(TypeCounts::ZERO);
        if hold.items.is_empty() {
            self.end_hold(customer, false);
        }
    }

    /// Ends the hold, returning what it held. `expired` records why.
    pub(crate) fn end_hold(&mut self, customer: CustomerId, expired: bool) -> TypeCounts {
        let Some(shopper) = self.by_customer.get_mut(&customer) else {
            return TypeCounts::ZERO;
        };
        let Some(hold) = shopper.hold.take() else {
            return TypeCounts::ZERO;
        };
        shopper.hold_expired = expired;
        let window_ends_at_ms = shopper.window_ends_at_ms;
        self.holds -= 1;
        self.schedule(customer, window_ends_at_ms);
        hold.items
    }

    /// Ends the turn, returning the hold's items if one was left (the engine
    /// never ends a turn with a hold, but a logged transition is not trusted).
    pub(crate) fn end(&mut self, customer: CustomerId) -> TypeCounts {
        let items = self.end_hold(customer, false);
        self.by_customer.remove(&customer);
        items
    }

    fn schedule(&mut self, customer: CustomerId, deadline_ms: u64) {
        if self.deadlines.len() > 2 * self.by_customer.len() + STALE_SLACK {
            self.rebuild_deadlines();
        }
        self.deadlines.push(Reverse((deadline_ms, customer)));
    }

    fn rebuild_deadlines(&mut self) {
        self.deadlines = self
            .by_customer
            .iter()
            .map(|(&customer, shopper)| Reverse((shopper.deadline_ms(), customer)))
            .collect();
    }

    /// Whether every shopper's current deadline has a heap entry, and how
    /// many entries the heap has (for invariant checks).
    pub(crate) fn deadlines_cover_shoppers(&self) -> (bool, usize) {
        let entries: rustc_hash::FxHashSet<(u64, CustomerId)> =
            self.deadlines.iter().map(|Reverse(entry)| *entry).collect();
        let covered = self
            .by_customer
            .iter()
            .all(|(&customer, shopper)| entries.contains(&(shopper.deadline_ms(), customer)));
        (covered, self.deadlines.len())
    }
}

/// The serialized form: the heap is rebuilt on load.
#[derive(Serialize, Deserialize)]
struct ShoppersRecord {
    by_customer: FxHashMap<CustomerId, Shopper>,
}

impl From<ShoppersRecord> for Shoppers {
    fn from(record: ShoppersRecord) -> Shoppers {
        let holds = record
            .by_customer
            .values()
            .filter(|s| s.hold.is_some())
            .count();
        let mut shoppers = Shoppers {
            by_customer: record.by_customer,
            deadlines: BinaryHeap::new(),
            holds: u32::try_from(holds).unwrap_or(u32::MAX),
        };
        shoppers.rebuild_deadlines();
        shoppers
    }
}

impl From<Shoppers> for ShoppersRecord {
    fn from(shoppers: Shoppers) -> ShoppersRecord {
        ShoppersRecord {
            by_customer: shoppers.by_customer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TicketTypeId;

    fn two_tickets() -> TypeCounts {
        TypeCounts::single(TicketTypeId(0), 2).unwrap()
    }

    #[test]
    fn the_deadline_follows_the_hold_then_the_window() {
        let mut shoppers = Shoppers::default();
        let c = CustomerId(7);
        shoppers.admit(c, 1_000);
        assert_eq!(shoppers.next_due(999), None);
        shoppers.hold(c, &two_tickets(), 500);
        assert_eq!(shoppers.next_due(499), None);
        assert_eq!(shoppers.next_due(500), Some(c));
        shoppers.end_hold(c, true);
        // The hold's entry is stale now; the window's is live.
        assert_eq!(shoppers.next_due(999), None);
        assert_eq!(shoppers.next_due(1_000), Some(c));
        assert!(shoppers.get(c).unwrap().hold_expired);
    }

    #[test]
    fn stale_entries_are_bounded_however_often_a_cart_churns() {
        let mut shoppers = Shoppers::default();
        let c = CustomerId(1);
        shoppers.admit(c, u64::MAX);
        for i in 0..100_000u64 {
            shoppers.hold(c, &two_tickets(), 10 + i);
            shoppers.release(c, &two_tickets());
        }
        assert!(
            shoppers.deadlines.len() <= 2 + STALE_SLACK + 2,
            "{}",
            shoppers.deadlines.len()
        );
        assert!(shoppers.deadlines_cover_shoppers().0);
    }
}
