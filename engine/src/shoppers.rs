//! Admitted customers ("shoppers"), their holds, and when each must be looked
//! at again.
//!
//! A shopper exists from admission until their turn ends: the admission
//! window passes with no hold, the hold ends after the window has passed, or
//! they leave. The number of shoppers is the "active shoppers" count that
//! admission control compares with `max_active`, so this map is bounded by it.
//!
//! A shopper who holds nothing once `idle_at_ms` has passed (admission plus
//! the policy's idle time) is *idle*: still shopping, but no longer counted
//! against what the stock can serve, so a fan who closed the tab delays the
//! next in line by the idle time, not by the whole admission window. Holding
//! again makes them count again.
//!
//! When a shopper must be looked at again is kept in two queues: admission
//! windows in the order they end, holds in the order they expire. With a
//! steady clock and a fixed TTL both are pushed in time order, so pushing and
//! popping is O(1) (a TTL lowered mid-sale or a clock stepping back falls back
//! to a sorted insert). Entries are deleted lazily: one is live only while it
//! matches the shopper's current window, idle time or hold, and the queues
//! are compacted whenever dead entries outnumber the live bound (three a
//! shopper), so they never hold more than about six entries a shopper. A window entry that comes due while its shopper
//! still holds tickets is dropped: the turn then ends when the hold does
//! (the engine checks the window whenever a hold ends). Finding what is due
//! never scans.

use std::collections::VecDeque;

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
    /// When the turn started (the admission).
    pub admitted_at_ms: u64,
    /// Adding to the cart is allowed until here.
    pub window_ends_at_ms: u64,
    /// Holding nothing from here on makes the shopper idle.
    pub idle_at_ms: u64,
    /// Idle: not counted against the stock (see the module documentation).
    pub idle: bool,
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

/// Queue entries beyond this many more than twice the live bound (three a
/// shopper) trigger a compaction.
const STALE_SLACK: usize = 1024;

/// Deadlines of one kind, earliest first.
#[derive(Clone, Debug, Default)]
struct Deadlines(VecDeque<(u64, CustomerId)>);

impl Deadlines {
    fn push(&mut self, deadline_ms: u64, customer: CustomerId) {
        match self.0.back() {
            Some(&(last, _)) if deadline_ms < last => {
                let at = self.0.partition_point(|&(d, _)| d <= deadline_ms);
                self.0.insert(at, (deadline_ms, customer));
            }
            _ => self.0.push_back((deadline_ms, customer)),
        }
    }

    fn front(&self) -> Option<(u64, CustomerId)> {
        self.0.front().copied()
    }

    fn pop(&mut self) {
        self.0.pop_front();
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn sorted(mut entries: Vec<(u64, CustomerId)>) -> Deadlines {
        entries.sort_unstable();
        Deadlines(entries.into())
    }
}

/// All shoppers of one event.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "ShoppersRecord", into = "ShoppersRecord")]
pub struct Shoppers {
    by_customer: FxHashMap<CustomerId, Shopper>,
    /// When admission windows end; derived from `by_customer`.
    windows: Deadlines,
    /// When holds expire; derived from `by_customer`.
    expiries: Deadlines,
    /// When shoppers become idle if they hold nothing; derived.
    idles: Deadlines,
    /// Shoppers with a hold, kept so stats are O(1).
    holds: u32,
    /// Idle shoppers, likewise.
    idle: u32,
}

impl PartialEq for Shoppers {
    fn eq(&self, other: &Shoppers) -> bool {
        // The deadline queues are derived; which dead entries they still
        // hold depends on when they were dropped, which is not state.
        self.by_customer == other.by_customer
            && self.holds == other.holds
            && self.idle == other.idle
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

    /// How many shoppers are idle.
    pub fn idle(&self) -> u32 {
        self.idle
    }

    /// Shoppers counted against the stock: all but the idle.
    pub fn counted(&self) -> u32 {
        self.len() - self.idle
    }

    /// The shopper record of a customer.
    pub fn get(&self, customer: CustomerId) -> Option<&Shopper> {
        self.by_customer.get(&customer)
    }

    /// Every shopper, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&CustomerId, &Shopper)> {
        self.by_customer.iter()
    }

    /// The earliest deadline queued. It may belong to a dead entry, so it is
    /// a lower bound: waking at it is at worst a wasted tick.
    pub fn peek_deadline_ms(&self) -> Option<u64> {
        let window = self.windows.front().map(|(d, _)| d);
        let expiry = self.expiries.front().map(|(d, _)| d);
        let idle = self.idles.front().map(|(d, _)| d);
        window.into_iter().chain(expiry).chain(idle).min()
    }

    /// Takes the next shopper whose hold expires, whose window ends with
    /// no hold, or who becomes idle holding nothing, at or before `now_ms`,
    /// with their record, dropping dead entries on the way. The entry is
    /// consumed: the caller must end that hold (an expiry), that turn (a
    /// window end) or mark them idle, which it always can.
    pub(crate) fn take_due(&mut self, now_ms: u64) -> Option<(CustomerId, Shopper)> {
        loop {
            let window = self.windows.front().filter(|&(d, _)| d <= now_ms);
            let expiry = self.expiries.front().filter(|&(d, _)| d <= now_ms);
            let idle = self.idles.front().filter(|&(d, _)| d <= now_ms);
            match (expiry, window) {
                (None, None) => {
                    let (deadline, customer) = idle?;
                    self.idles.pop();
                    let shopper = self.get(customer).copied();
                    // A holder's entry is dropped: the engine marks them
                    // idle when the hold ends, if it ends after this.
                    if let Some(shopper) = shopper
                        && shopper.idle_at_ms == deadline
                        && !shopper.idle
                        && shopper.hold.is_none()
                    {
                        return Some((customer, shopper));
                    }
                }
                (Some((deadline, customer)), _) => {
                    self.expiries.pop();
                    let shopper = self.get(customer).copied();
                    if let Some(shopper) = shopper
                        && shopper.hold.is_some_and(|h| h.expires_at_ms == deadline)
                    {
                        return Some((customer, shopper));
                    }
                }
                (None, Some((deadline, customer))) => {
                    self.windows.pop();
                    let shopper = self.get(customer).copied();
                    // A holder's window entry is dropped: the turn ends with the hold.
                    if let Some(shopper) = shopper
                        && shopper.window_ends_at_ms == deadline
                        && shopper.hold.is_none()
                    {
                        return Some((customer, shopper));
                    }
                }
            }
        }
    }

    /// Starts a turn.
    pub(crate) fn admit(
        &mut self,
        customer: CustomerId,
        admitted_at_ms: u64,
        window_ends_at_ms: u64,
        idle_at_ms: u64,
    ) {
        let shopper = Shopper {
            admitted_at_ms,
            window_ends_at_ms,
            idle_at_ms,
            idle: false,
            hold: None,
            hold_expired: false,
        };
        self.by_customer.insert(customer, shopper);
        self.compact_if_needed();
        self.windows.push(window_ends_at_ms, customer);
        if idle_at_ms < window_ends_at_ms {
            self.idles.push(idle_at_ms, customer);
        }
    }

    /// Marks a shopper idle (holding nothing past their idle time).
    pub(crate) fn set_idle(&mut self, customer: CustomerId) {
        if let Some(shopper) = self.by_customer.get_mut(&customer)
            && !shopper.idle
        {
            shopper.idle = true;
            self.idle += 1;
        }
    }

    /// Adds to the customer's hold, starting one that expires at
    /// `expires_at_ms` if there is none.
    pub(crate) fn hold(&mut self, customer: CustomerId, items: &TypeCounts, expires_at_ms: u64) {
        // The engine holds only for a shopper (a command checks the turn, a
        // logged transition is checked before it is applied).
        let Some(shopper) = self.by_customer.get_mut(&customer) else {
            unreachable!("a hold for {customer:?}, who is not shopping");
        };
        if shopper.idle {
            // Holding again: counted again.
            shopper.idle = false;
            self.idle -= 1;
        }
        match &mut shopper.hold {
            Some(hold) => {
                // Within the per-customer limits (at most 50 a type).
                hold.items = hold.items.checked_add(items).unwrap_or_else(|| {
                    unreachable!(
                        "{customer:?}'s hold overflowed: {:?} + {items:?}",
                        hold.items
                    )
                });
            }
            None => {
                shopper.hold = Some(Hold {
                    items: *items,
                    expires_at_ms,
                });
                shopper.hold_expired = false;
                self.holds += 1;
                self.compact_if_needed();
                self.expiries.push(expires_at_ms, customer);
            }
        }
    }

    /// Takes `items` out of the hold; an emptied hold ends.
    pub(crate) fn release(&mut self, customer: CustomerId, items: &TypeCounts) {
        // Only what a shopper holds is released (checked as for `hold`).
        let Some(hold) = self
            .by_customer
            .get_mut(&customer)
            .and_then(|shopper| shopper.hold.as_mut())
        else {
            unreachable!("a release for {customer:?}, who holds nothing");
        };
        hold.items = hold.items.checked_sub(items).unwrap_or_else(|| {
            unreachable!("{customer:?} released {items:?} but holds {:?}", hold.items)
        });
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
        self.holds -= 1;
        hold.items
    }

    /// Ends the turn, returning the hold's items if one was left (the engine
    /// never ends a turn with a hold, but a logged transition is not trusted).
    pub(crate) fn end(&mut self, customer: CustomerId) -> TypeCounts {
        let items = self.end_hold(customer, false);
        if self.by_customer.remove(&customer).is_some_and(|s| s.idle) {
            self.idle -= 1;
        }
        items
    }

    fn compact_if_needed(&mut self) {
        let entries = self.windows.len() + self.expiries.len() + self.idles.len();
        // Up to three live entries a shopper (window, idle time, hold):
        // compacting once the dead ones outnumber them keeps it amortized O(1).
        if entries > 6 * self.by_customer.len() + STALE_SLACK {
            let shoppers = &self.by_customer;
            self.windows
                .0
                .retain(|&(d, c)| shoppers.get(&c).is_some_and(|s| s.window_ends_at_ms == d));
            self.expiries.0.retain(|&(d, c)| {
                shoppers
                    .get(&c)
                    .and_then(|s| s.hold)
                    .is_some_and(|h| h.expires_at_ms == d)
            });
            self.idles.0.retain(|&(d, c)| {
                shoppers
                    .get(&c)
                    .is_some_and(|s| !s.idle && s.idle_at_ms == d)
            });
        }
    }

    fn rebuild_deadlines(&mut self) {
        let shoppers = self.by_customer.iter();
        self.windows =
            Deadlines::sorted(shoppers.map(|(&c, s)| (s.window_ends_at_ms, c)).collect());
        let holders = self
            .by_customer
            .iter()
            .filter_map(|(&c, s)| Some((s.hold?.expires_at_ms, c)));
        self.expiries = Deadlines::sorted(holders.collect());
        let idles = self
            .by_customer
            .iter()
            .filter(|(_, s)| !s.idle && s.idle_at_ms < s.window_ends_at_ms)
            .map(|(&c, s)| (s.idle_at_ms, c));
        self.idles = Deadlines::sorted(idles.collect());
    }

    /// Whether every shopper's current deadline is queued (a holder's expiry,
    /// a non-holder's window end), and how many entries are queued, for
    /// invariant checks.
    pub(crate) fn deadlines_cover_shoppers(&self) -> (bool, usize) {
        let windows: rustc_hash::FxHashSet<(u64, CustomerId)> =
            self.windows.0.iter().copied().collect();
        let expiries: rustc_hash::FxHashSet<(u64, CustomerId)> =
            self.expiries.0.iter().copied().collect();
        let idles: rustc_hash::FxHashSet<(u64, CustomerId)> =
            self.idles.0.iter().copied().collect();
        let covered = self
            .by_customer
            .iter()
            .all(|(&customer, shopper)| match shopper.hold {
                Some(hold) => expiries.contains(&(hold.expires_at_ms, customer)),
                None => {
                    windows.contains(&(shopper.window_ends_at_ms, customer))
                        && (shopper.idle
                            || shopper.idle_at_ms >= shopper.window_ends_at_ms
                            || idles.contains(&(shopper.idle_at_ms, customer)))
                }
            });
        let entries = self.windows.len() + self.expiries.len() + self.idles.len();
        (covered, entries)
    }
}

/// The serialized form: the heap is rebuilt on load.
#[derive(Serialize, Deserialize)]
struct ShoppersRecord {
    by_customer: FxHashMap<CustomerId, Shopper>,
}

impl From<ShoppersRecord> for Shoppers {
    fn from(record: ShoppersRecord) -> Shoppers {
        let count = |f: fn(&Shopper) -> bool| {
            let n = record.by_customer.values().filter(|s| f(s)).count();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        let (holds, idle) = (count(|s| s.hold.is_some()), count(|s| s.idle));
        let mut shoppers = Shoppers {
            by_customer: record.by_customer,
            windows: Deadlines::default(),
            expiries: Deadlines::default(),
            idles: Deadlines::default(),
            holds,
            idle,
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

    fn due(shoppers: &mut Shoppers, now_ms: u64) -> Option<CustomerId> {
        shoppers.take_due(now_ms).map(|(customer, _)| customer)
    }

    // Impossible states stop the shard (and recovery replays the durable
    // log) instead of being absorbed into drifting counts.
    #[test]
    #[should_panic(expected = "who holds nothing")]
    fn releasing_what_nobody_holds_is_a_bug_that_stops_the_engine() {
        Shoppers::default().release(CustomerId(9), &two_tickets());
    }

    #[test]
    #[should_panic(expected = "who is not shopping")]
    fn holding_for_someone_not_shopping_is_a_bug_that_stops_the_engine() {
        Shoppers::default().hold(CustomerId(9), &two_tickets(), 1_000);
    }

    #[test]
    fn the_deadline_follows_the_hold_then_the_window() {
        let mut shoppers = Shoppers::default();
        let c = CustomerId(7);
        shoppers.admit(c, 0, 1_000, u64::MAX);
        assert_eq!(due(&mut shoppers, 999), None);
        shoppers.hold(c, &two_tickets(), 500);
        assert_eq!(due(&mut shoppers, 499), None);
        assert_eq!(due(&mut shoppers, 500), Some(c));
        shoppers.end_hold(c, true);
        // The hold's entry was taken; the window's is still queued.
        assert_eq!(due(&mut shoppers, 999), None);
        assert_eq!(due(&mut shoppers, 1_000), Some(c));
        assert!(shoppers.get(c).unwrap().hold_expired);
    }

    #[test]
    fn stale_entries_are_bounded_however_often_a_cart_churns() {
        let mut shoppers = Shoppers::default();
        let c = CustomerId(1);
        shoppers.admit(c, 0, u64::MAX, u64::MAX);
        for i in 0..100_000u64 {
            shoppers.hold(c, &two_tickets(), 10 + i);
            shoppers.release(c, &two_tickets());
        }
        let (covered, entries) = shoppers.deadlines_cover_shoppers();
        assert!(entries <= 2 + STALE_SLACK + 2, "{entries}");
        assert!(covered);
    }

    #[test]
    fn a_deadline_pushed_out_of_order_is_still_found_first() {
        let mut shoppers = Shoppers::default();
        shoppers.admit(CustomerId(1), 0, 5_000, u64::MAX);
        shoppers.admit(CustomerId(2), 0, 1_000, u64::MAX); // the window was shortened
        assert_eq!(shoppers.peek_deadline_ms(), Some(1_000));
        assert_eq!(due(&mut shoppers, 1_000), Some(CustomerId(2)));
    }

    #[test]
    fn a_window_that_ends_during_a_hold_waits_for_the_hold() {
        let mut shoppers = Shoppers::default();
        let c = CustomerId(3);
        shoppers.admit(c, 0, 1_000, u64::MAX);
        shoppers.hold(c, &two_tickets(), 2_000);
        assert_eq!(due(&mut shoppers, 1_500), None);
        assert_eq!(due(&mut shoppers, 2_000), Some(c));
    }
}
