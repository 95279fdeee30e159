//! The invariants of an event, written as code. Tests run
//! [`Engine::check_invariants`] after every step; it is O(state), so it is
//! for tests, recovery checks and operators' tools, never the hot path.

use rustc_hash::FxHashMap;

use crate::counts::TypeCounts;
use crate::engine::{Engine, Phase};
use crate::ids::CustomerId;

/// A broken invariant, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation(pub String);

impl std::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvariantViolation {}

macro_rules! require {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(InvariantViolation(format!($($message)+)));
        }
    };
}

impl Engine {
    /// Checks every invariant:
    /// - per type, available + held + sold = capacity, held is what the holds
    ///   hold and sold is what the orders contain;
    /// - tickets are numbered consecutively across orders (none owned twice);
    /// - no customer holds and owns more than a per-type or per-event limit;
    /// - the queue index matches the queue, positions form a permutation,
    ///   and only admitted customers shop;
    /// - every shopper has a live deadline, holds are never empty;
    /// - the sale is closed once every ticket is sold.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_stock()?;
        self.check_orders()?;
        self.check_holdings()?;
        self.check_queue()?;
        self.check_shoppers()
    }

    fn check_stock(&self) -> Result<(), InvariantViolation> {
        let mut held = TypeCounts::ZERO;
        for (customer, shopper) in self.shoppers.iter() {
            if let Some(hold) = shopper.hold {
                require!(
                    !hold.items.is_empty(),
                    "customer {customer:?} has an empty hold"
                );
                held = held.checked_add(&hold.items).unwrap_or(held);
            }
        }
        let mut sold = [0u64; crate::MAX_TICKET_TYPES];
        for order in self.orders.orders() {
            for (t, q) in order.items.iter() {
                sold[t.index()] += u64::from(q);
            }
        }
        let (mut available_total, mut unsold_total) = (0u64, 0u64);
        for (t, stock) in self.inventory.types().iter().enumerate() {
            unsold_total += u64::from(stock.available) + u64::from(stock.held);
            let sum = u64::from(stock.available) + u64::from(stock.held) + u64::from(stock.sold);
            require!(
                sum == u64::from(stock.capacity),
                "type {t}: available {} + held {} + sold {} != capacity {}",
                stock.available,
                stock.held,
                stock.sold,
                stock.capacity
            );
            require!(
                u32::from(held.at(t)) == stock.held,
                "type {t}: holds contain {} but stock says {} held",
                held.at(t),
                stock.held
            );
            require!(
                sold[t] == u64::from(stock.sold),
                "type {t}: orders contain {} but stock says {} sold",
                sold[t],
                stock.sold
            );
            available_total += u64::from(stock.available);
        }
        require!(
            available_total == self.inventory.available_total(),
            "available total {} != sum over types {available_total}",
            self.inventory.available_total()
        );
        require!(
            unsold_total == self.inventory.unsold_total(),
            "unsold total {} != sum over types {unsold_total}",
            self.inventory.unsold_total()
        );
        if self.inventory.sold_out() {
            require!(
                matches!(self.phase, Phase::Closed(_)),
                "sold out but the sale is {:?}",
                self.phase
            );
        }
        Ok(())
    }

    fn check_orders(&self) -> Result<(), InvariantViolation> {
        let mut next_ticket = 0u32;
        let mut per_customer: FxHashMap<CustomerId, TypeCounts> = FxHashMap::default();
        for (index, order) in self.orders.orders().iter().enumerate() {
            require!(
                order.first_ticket.0 == next_ticket,
                "order {index} starts at ticket {} instead of {next_ticket}",
                order.first_ticket.0
            );
            require!(!order.items.is_empty(), "order {index} has no tickets");
            next_ticket += order.items.total();
            let owned = per_customer.entry(order.customer).or_default();
            *owned = owned.checked_add(&order.items).unwrap_or(*owned);
        }
        require!(
            next_ticket == self.orders.tickets_sold(),
            "orders hold {next_ticket} tickets, the book says {}",
            self.orders.tickets_sold()
        );
        for (customer, buyer) in self.orders.buyers() {
            let expected = per_customer.get(customer).copied().unwrap_or_default();
            require!(
                buyer.sold == expected,
                "customer {customer:?} owns {:?}, orders say {expected:?}",
                buyer.sold
            );
            let mut keys: Vec<u128> = self
                .orders
                .orders_of(*customer)
                .map(|(_, o)| o.idempotency_key)
                .collect();
            let count = keys.len();
            keys.sort_unstable();
            keys.dedup();
            require!(
                keys.len() == count,
                "customer {customer:?} has two orders with one idempotency key"
            );
        }
        require!(
            per_customer.len() == self.orders.buyers().count(),
            "buyers and orders disagree on who bought"
        );
        Ok(())
    }

    fn check_holdings(&self) -> Result<(), InvariantViolation> {
        let policy = &self.config.policy;
        let mut holdings: FxHashMap<CustomerId, TypeCounts> = FxHashMap::default();
        for (customer, buyer) in self.orders.buyers() {
            holdings.insert(*customer, buyer.sold);
        }
        for (customer, shopper) in self.shoppers.iter() {
            if let Some(hold) = shopper.hold {
                let entry = holdings.entry(*customer).or_default();
                *entry = entry.checked_add(&hold.items).unwrap_or(*entry);
            }
        }
        for (customer, counts) in &holdings {
            require!(
                counts.first_exceeding(&policy.per_type_limits).is_none(),
                "customer {customer:?} holds and owns {counts:?}, over a per-type limit"
            );
            require!(
                counts.total() <= u32::from(policy.per_event_limit),
                "customer {customer:?} holds and owns {}, over the per-event limit {}",
                counts.total(),
                policy.per_event_limit
            );
        }
        Ok(())
    }

    fn check_queue(&self) -> Result<(), InvariantViolation> {
        let queue = &self.queue;
        let len = queue.len();
        require!(
            queue.index_len() == queue.joiners().len(),
            "queue index has {} entries for {} joiners",
            queue.index_len(),
            len
        );
        for (join_number, &customer) in queue.joiners().iter().enumerate() {
            require!(
                queue.join_number(customer) == u32::try_from(join_number).ok(),
                "customer {customer:?} is indexed at {:?}, not {join_number}",
                queue.join_number(customer)
            );
        }
        require!(
            queue.served() <= len,
            "served {} > joined {len}",
            queue.served()
        );
        require!(
            queue.prequeue_len() <= len,
            "pre-queue longer than the queue"
        );
        require!(
            queue.is_open() == (self.phase != Phase::Scheduled),
            "queue open {} in phase {:?}",
            queue.is_open(),
            self.phase
        );
        let drawn = queue.drawn();
        require!(drawn <= len, "drawn {drawn} > joined {len}");
        require!(
            queue.served() <= drawn,
            "the cursor passed {} of {drawn} placed",
            queue.served()
        );
        require!(
            queue.window_ends_at_ms().is_some() || queue.pending() == 0,
            "{} arrivals pending with no window open",
            queue.pending()
        );
        if queue.is_open() {
            // Positions are exactly 0..drawn, each held by one customer and
            // each with the join numbers of its own window; the pending
            // have none.
            let mut taken = vec![false; drawn as usize];
            for join_number in 0..len {
                let position = queue.position(join_number);
                if join_number >= drawn {
                    require!(position.is_none(), "pending {join_number} has a place");
                    continue;
                }
                let Some(position) = position else {
                    return Err(InvariantViolation(format!(
                        "join number {join_number} has no position"
                    )));
                };
                require!(position < drawn, "position {position} beyond those placed");
                require!(!taken[position as usize], "position {position} taken twice");
                require!(
                    queue.customer_at(position)
                        == queue.joiners().get(join_number as usize).copied(),
                    "position {position} maps back to another customer"
                );
                taken[position as usize] = true;
            }
            require!(
                (queue.prequeue_len()..drawn)
                    .all(|j| queue.position(j) >= Some(queue.prequeue_len())),
                "an arrival was placed inside the pre-queue"
            );
        } else {
            require!(queue.served() == 0, "admitted before opening");
        }
        // Those who left: counted exactly while the cursor has not reached
        // them, and never shopping.
        let (mut left_total, mut left_ahead) = (0, 0);
        for (join_number, &customer) in (0..len).zip(queue.joiners()) {
            if !queue.has_left(join_number) {
                continue;
            }
            require!(
                self.shoppers.get(customer).is_none(),
                "customer {customer:?} left the line but shops"
            );
            left_total += 1;
            if !queue.is_served(join_number) {
                left_ahead += 1;
            }
        }
        require!(
            left_total == queue.left_total(),
            "{left_total} left the line, the queue counts {}",
            queue.left_total()
        );
        require!(
            left_ahead == queue.left_ahead_of_cursor(),
            "{left_ahead} who left are ahead of the cursor, the queue counts {}",
            queue.left_ahead_of_cursor()
        );
        Ok(())
    }

    fn check_shoppers(&self) -> Result<(), InvariantViolation> {
        let mut holds = 0u32;
        for (customer, shopper) in self.shoppers.iter() {
            let Some(join_number) = self.queue.join_number(*customer) else {
                return Err(InvariantViolation(format!(
                    "shopper {customer:?} never joined"
                )));
            };
            require!(
                self.queue.is_served(join_number),
                "shopper {customer:?} was never admitted"
            );
            holds += u32::from(shopper.hold.is_some());
        }
        require!(
            self.shoppers.len() <= self.queue.served(),
            "more shoppers than admitted"
        );
        require!(
            holds == self.shoppers.holds(),
            "{holds} holds counted as {}",
            self.shoppers.holds()
        );
        let (covered, entries) = self.shoppers.deadlines_cover_shoppers();
        require!(covered, "a shopper has no live deadline");
        require!(
            entries <= 6 * self.shoppers.iter().count() + 2048,
            "{entries} deadline entries for {} shoppers",
            self.shoppers.len()
        );
        Ok(())
    }
}
