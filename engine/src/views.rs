//! Read-only questions the server asks an engine: a customer's place in line,
//! their cart, their orders and tickets, stock, and sale-wide stats. All are
//! O(1) or proportional to the customer's own holdings.

use serde::{Deserialize, Serialize};

use crate::config::EventConfig;
use crate::counts::TypeCounts;
use crate::engine::{Engine, Phase};
use crate::ids::{CustomerId, OrderId, TicketId};
use crate::inventory::Stock;
use crate::orders::{Order, Ticket};
use crate::transition::CloseReason;

/// Where a customer stands in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueStatus {
    /// Never joined.
    NotJoined,
    /// Joined before opening; their place is drawn at opening.
    PreQueue {
        /// How many are in the pre-queue so far.
        prequeue_len: u32,
    },
    /// Joined after opening; their place is drawn, among those who joined
    /// in the same arrival window, when the window ends. Everyone already
    /// placed is ahead.
    Drawing {
        /// When the draw happens.
        draw_at_ms: u64,
        /// Placed in line and still waiting: all ahead of this fan.
        people_ahead: u32,
        /// In this window's draw so far, this fan included.
        in_draw: u32,
    },
    /// Waiting for their turn.
    Waiting {
        /// 0-based place in line.
        position: u32,
        /// How many are still ahead (`position - served`; those ahead who
        /// left the line are counted until the cursor steps over them).
        people_ahead: u32,
        /// `people_ahead` at the admission rate; a lower bound, since
        /// admission also waits for free slots.
        estimated_wait_ms: u64,
    },
    /// Admitted and shopping.
    Shopping {
        /// When the turn started.
        admitted_at_ms: u64,
        /// Adding to the cart is allowed until here.
        window_ends_at_ms: u64,
        /// The hold's expiry, if they hold tickets.
        hold_expires_at_ms: Option<u64>,
        /// What they bought in this event already: the limits count it, so
        /// a fan can be shown only the quantities they may still take.
        owned: TypeCounts,
    },
    /// Their turn came and ended.
    TurnOver,
    /// They left the line before their turn.
    Left,
    /// The queue closed before their turn.
    Closed(CloseReason),
}

impl QueueStatus {
    /// The status of a fan waiting at 0-based `position` once `served` fans
    /// have been admitted. Public so that a stream can follow a waiting
    /// fan's place from the event's published cursor alone, without asking
    /// the shard for every fan at every step.
    pub fn waiting(position: u32, served: u32, admit_per_second: u32) -> QueueStatus {
        let people_ahead = position.saturating_sub(served);
        let rate = u64::from(admit_per_second.max(1));
        QueueStatus::Waiting {
            position,
            people_ahead,
            estimated_wait_ms: (u64::from(people_ahead) * 1_000).div_ceil(rate),
        }
    }
}

/// A customer's cart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// What is held.
    pub items: TypeCounts,
    /// When the hold expires.
    pub expires_at_ms: u64,
    /// What it costs, in centavos.
    pub total_cents: u64,
}

/// Sale-wide counters for dashboards and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Where the sale is.
    pub phase: Phase,
    /// Whether an operator paused it.
    pub paused: bool,
    /// Everyone who ever joined.
    pub joined: u32,
    /// Still waiting for their turn (those in an arrival window's draw
    /// included).
    pub waiting: u32,
    /// Joined after opening, waiting for their arrival window's draw.
    pub in_draw: u32,
    /// When the open arrival window is drawn, if one is open.
    pub draw_at_ms: Option<u64>,
    /// Positions the now-serving cursor has passed: admitted, or stepped
    /// over because they had left the line.
    pub served: u32,
    /// Admitted so far.
    pub admitted: u32,
    /// Gave up their place in line before their turn.
    pub left: u32,
    /// Shopping now.
    pub active: u32,
    /// Of them, idle: holding nothing past their idle time, not counted
    /// against the stock.
    pub idle: u32,
    /// Shoppers holding tickets.
    pub holds: u32,
    /// Tickets in holds.
    pub tickets_held: u64,
    /// Tickets sold.
    pub tickets_sold: u64,
    /// Tickets free to add to a cart.
    pub tickets_available: u64,
    /// Orders placed.
    pub orders: u32,
}

impl Engine {
    /// The event's configuration, with the current policy and schedule.
    pub fn config(&self) -> &EventConfig {
        &self.config
    }

    /// Where the sale is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether an operator paused the sale.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Where a customer stands.
    pub fn queue_status(&self, customer: CustomerId) -> QueueStatus {
        let Some(join_number) = self.queue.join_number(customer) else {
            return QueueStatus::NotJoined;
        };
        if let Some(shopper) = self.shoppers.get(customer) {
            return QueueStatus::Shopping {
                admitted_at_ms: shopper.admitted_at_ms,
                window_ends_at_ms: shopper.window_ends_at_ms,
                hold_expires_at_ms: shopper.hold.map(|h| h.expires_at_ms),
                owned: self.orders.sold_to(customer),
            };
        }
        if self.queue.has_left(join_number) {
            return QueueStatus::Left;
        }
        if self.queue.is_served(join_number) {
            return QueueStatus::TurnOver;
        }
        if let Phase::Closed(reason) = self.phase {
            return QueueStatus::Closed(reason);
        }
        match self.queue.position(join_number) {
            None if self.queue.is_open() => QueueStatus::Drawing {
                // A pending fan always has an open window (or the window
                // has just been drawn in this same step: then they have a
                // position). The opening is the fallback, never the case.
                draw_at_ms: self
                    .queue
                    .window_ends_at_ms()
                    .unwrap_or(self.config.schedule.opens_at_ms),
                people_ahead: self.queue.admissible(),
                in_draw: self.queue.in_draw(),
            },
            None => QueueStatus::PreQueue {
                prequeue_len: self.queue.len(),
            },
            Some(position) => QueueStatus::waiting(
                position,
                self.queue.served(),
                self.config.policy.admit_per_second,
            ),
        }
    }

    /// Who stands at a 0-based place in line, once the sale has opened. After
    /// `Transition::Admitted { count }`, the admitted are those at positions
    /// `served - count .. served`: this is how their notifications are routed.
    pub fn customer_at(&self, position: u32) -> Option<CustomerId> {
        if position >= self.queue.len() {
            return None;
        }
        self.queue.customer_at(position)
    }

    /// Positions the now-serving cursor has passed (see [`Stats::served`]),
    /// without building the rest of the stats.
    pub fn served(&self) -> u32 {
        self.queue.served()
    }

    /// Who was admitted at positions `from..served()` (those stepped over
    /// because they had left are not): after an `apply`, with `from` the
    /// cursor before it, the customers whose turn the apply started, so a
    /// server can tell each of them at once rather than each asking.
    pub fn admitted_since(&self, from: u32) -> Vec<CustomerId> {
        (from..self.queue.served())
            .filter_map(|position| self.queue.customer_at(position))
            .filter(|&customer| {
                self.queue
                    .join_number(customer)
                    .is_some_and(|j| !self.queue.has_left(j))
            })
            .collect()
    }

    /// A customer's cart, if they hold tickets.
    pub fn cart(&self, customer: CustomerId) -> Option<Cart> {
        let hold = self.shoppers.get(customer)?.hold?;
        Some(Cart {
            items: hold.items,
            expires_at_ms: hold.expires_at_ms,
            total_cents: self.total_cents(&hold.items),
        })
    }

    /// Stock per ticket type, indexed by type id.
    pub fn stock(&self) -> &[Stock] {
        self.inventory.types()
    }

    /// What a customer owns per type, across orders.
    pub fn owned_by(&self, customer: CustomerId) -> TypeCounts {
        self.orders.sold_to(customer)
    }

    /// A customer's orders, newest first.
    pub fn orders_of(&self, customer: CustomerId) -> impl Iterator<Item = (OrderId, &Order)> {
        self.orders.orders_of(customer)
    }

    /// One order.
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.order(id)
    }

    /// The tickets of an order.
    pub fn tickets_of(&self, id: OrderId) -> impl Iterator<Item = Ticket> + '_ {
        self.orders.tickets_of(id)
    }

    /// One ticket.
    pub fn ticket(&self, id: TicketId) -> Option<Ticket> {
        self.orders.ticket(id)
    }

    /// Sale-wide counters.
    pub fn stats(&self) -> Stats {
        let stock = self.inventory.types();
        Stats {
            phase: self.phase,
            paused: self.paused,
            joined: self.queue.len(),
            waiting: self.queue.waiting(),
            in_draw: self.queue.in_draw(),
            draw_at_ms: self.queue.window_ends_at_ms(),
            served: self.queue.served(),
            admitted: self.queue.admitted(),
            left: self.queue.left_total(),
            active: self.shoppers.len(),
            idle: self.shoppers.idle(),
            holds: self.shoppers.holds(),
            tickets_held: stock.iter().map(|s| u64::from(s.held)).sum(),
            tickets_sold: stock.iter().map(|s| u64::from(s.sold)).sum(),
            tickets_available: self.inventory.available_total(),
            orders: u32::try_from(self.orders.orders().len()).unwrap_or(u32::MAX),
        }
    }
}
