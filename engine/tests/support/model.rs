//! A reference model of the domain rules, written for obviousness rather
//! than speed: linear scans, one record per customer, no heaps or indexes.
//! Property tests run random command sequences through both the engine and
//! this model and require the same answers and the same observable state.
//! The only engine piece it reuses is `Shuffle` (tested on its own for being
//! a uniform bijection), because the draw must agree for positions to agree.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, BTreeSet};

use ingressoja_engine::shuffle::{Shuffle, derive_seed};
use ingressoja_engine::{
    CloseReason, Command, ConfigError, CustomerId, EventConfig, Limit, OrderId, Outcome, Payment,
    Phase, Policy, QueueStatus, Rejection, Reply, Schedule, TicketTypeId, TypeCounts,
};

#[derive(Clone, Debug, Default)]
pub struct ModelCustomer {
    pub shopping: bool,
    pub admitted_at: u64,
    pub idle_at: u64,
    pub idle: bool,
    pub window_end: u64,
    pub hold: Option<(TypeCounts, u64)>,
    pub hold_expired: bool,
    pub sold: TypeCounts,
}

#[derive(Clone, Debug)]
pub struct ModelOrder {
    pub customer: CustomerId,
    pub items: TypeCounts,
    pub key: u128,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub policy: Policy,
    pub schedule: Schedule,
    pub prices: Vec<u64>,
    pub capacity: Vec<u32>,
    pub available: Vec<u32>,
    pub held: Vec<u32>,
    pub sold: Vec<u32>,
    pub seed: u64,
    pub phase: Phase,
    pub paused: bool,
    pub joiners: Vec<CustomerId>,
    pub prequeue_len: u32,
    /// Arrival windows drawn: first join number, length, seed.
    pub windows: Vec<(u32, u32, u64)>,
    /// Join numbers below this have a place in line.
    pub drawn: u32,
    /// When the open arrival window is drawn.
    pub window_end: Option<u64>,
    pub served: u32,
    /// Who left the line before their turn.
    pub left: BTreeSet<CustomerId>,
    pub customers: BTreeMap<CustomerId, ModelCustomer>,
    pub orders: Vec<ModelOrder>,
    /// Admission tokens, in thousandths, as of `bucket_at`.
    pub bucket_milli: u64,
    pub bucket_at: u64,
}

impl Model {
    pub fn new(config: &EventConfig) -> Model {
        let capacity: Vec<u32> = config.ticket_types.iter().map(|t| t.capacity).collect();
        Model {
            policy: config.policy,
            schedule: config.schedule,
            prices: config.ticket_types.iter().map(|t| t.price_cents).collect(),
            available: capacity.clone(),
            held: vec![0; capacity.len()],
            sold: vec![0; capacity.len()],
            capacity,
            seed: config.shuffle_seed,
            phase: Phase::Scheduled,
            paused: false,
            joiners: Vec::new(),
            prequeue_len: 0,
            windows: Vec::new(),
            drawn: 0,
            window_end: None,
            served: 0,
            left: BTreeSet::new(),
            customers: BTreeMap::new(),
            orders: Vec::new(),
            bucket_milli: 0,
            bucket_at: 0,
        }
    }

    pub fn apply(&mut self, command: Command, now: u64) -> Outcome {
        self.advance(now);
        let outcome = self.decide(command, now);
        self.advance(now);
        outcome
    }

    // ----- time -----

    fn advance(&mut self, now: u64) {
        if self.phase == Phase::Scheduled && now >= self.schedule.opens_at_ms {
            self.phase = Phase::Open;
            self.prequeue_len = self.joiners.len() as u32;
            self.drawn = self.prequeue_len;
            self.bucket_milli = 0;
            self.bucket_at = self.schedule.opens_at_ms.min(now);
        }
        if self.phase == Phase::Open && now >= self.schedule.closes_at_ms {
            self.phase = Phase::Closed(CloseReason::Ended);
        }
        let ids: Vec<CustomerId> = self.customers.keys().copied().collect();
        for id in ids {
            let customer = self.customers.get_mut(&id).unwrap();
            if !customer.shopping {
                continue;
            }
            if let Some((items, expires)) = customer.hold
                && expires <= now
            {
                customer.hold = None;
                customer.hold_expired = true;
                for (t, q) in items.iter() {
                    self.held[t.index()] -= u32::from(q);
                    self.available[t.index()] += u32::from(q);
                }
            }
            self.settle_turn(id, now);
        }
        if self.window_end.is_some_and(|end| end <= now) {
            let len = self.joiners.len() as u32;
            if len > self.drawn {
                let seed = derive_seed(self.seed, self.drawn);
                self.windows.push((self.drawn, len - self.drawn, seed));
            }
            self.drawn = len;
            self.window_end = None;
        }
        self.admit(now);
    }

    /// A shopper holding nothing: the turn ends past the window, or they
    /// become idle past their idle time.
    fn settle_turn(&mut self, id: CustomerId, now: u64) {
        let customer = self.customers.get_mut(&id).unwrap();
        if !customer.shopping || customer.hold.is_some() {
            return;
        }
        if customer.window_end <= now {
            customer.shopping = false;
        } else if customer.idle_at <= now {
            customer.idle = true;
        }
    }

    fn tokens(&self, now: u64) -> u64 {
        let rate = u64::from(self.policy.admit_per_second);
        let elapsed = now.saturating_sub(self.bucket_at);
        (self.bucket_milli + elapsed * rate).min(rate * 1000)
    }

    fn admit(&mut self, now: u64) {
        let active = self.customers.values().filter(|c| c.shopping).count() as u32;
        let counted = self
            .customers
            .values()
            .filter(|c| c.shopping && !c.idle)
            .count() as u32;
        let waiting = self.admissible();
        let available: u32 = self.available.iter().sum();
        let held: u32 = self.held.iter().sum();
        // Stock-paced: no more shoppers than the unsold tickets serve at
        // the most one customer may take, times the over-admission.
        let take = u32::from(self.policy.per_event_limit).min(
            (0..self.capacity.len())
                .map(|t| u32::from(self.policy.per_type_limits.at(t)))
                .sum(),
        );
        let servable = (u64::from(available + held) * u64::from(self.policy.overadmit_percent))
            .div_ceil(100 * u64::from(take)) as u32;
        let room = servable
            .saturating_sub(counted)
            .min(self.policy.max_active.saturating_sub(active));
        if self.phase != Phase::Open || self.paused || available == 0 || waiting == 0 || room == 0 {
            return;
        }
        let tokens = (self.tokens(now) / 1000) as u32;
        let count = waiting.min(room).min(tokens);
        if count == 0 {
            return;
        }
        for _ in 0..count {
            // Those who left are stepped over.
            while self.left.contains(&self.customer_at(self.served)) {
                self.served += 1;
            }
            let id = self.customer_at(self.served);
            let window_end = now + self.policy.admission_window_ms;
            let customer = self.customers.entry(id).or_default();
            customer.shopping = true;
            customer.admitted_at = now;
            customer.idle_at = now + self.policy.idle_after_ms;
            customer.idle = false;
            customer.window_end = window_end;
            customer.hold = None;
            customer.hold_expired = false;
            self.served += 1;
        }
        self.bucket_milli = self.tokens(now) - u64::from(count) * 1000;
        self.bucket_at = self.bucket_at.max(now);
    }

    // ----- the queue, by brute force -----

    /// Placed in line, not passed, not left.
    fn admissible(&self) -> u32 {
        if self.phase == Phase::Scheduled {
            return 0;
        }
        (self.served..self.drawn)
            .filter(|&p| !self.left.contains(&self.customer_at(p)))
            .count() as u32
    }

    /// Joined after opening, not drawn yet, still there.
    fn in_draw(&self) -> u32 {
        (self.drawn..self.joiners.len() as u32)
            .filter(|&j| !self.left.contains(&self.joiners[j as usize]))
            .count() as u32
    }

    /// Only for join numbers below `drawn`.
    fn position_of_join(&self, join: u32) -> u32 {
        if join < self.prequeue_len {
            return Shuffle::new(self.seed, self.prequeue_len).forward(join);
        }
        for &(start, len, seed) in &self.windows {
            if (start..start + len).contains(&join) {
                return start + Shuffle::new(seed, len).forward(join - start);
            }
        }
        join
    }

    fn customer_at(&self, position: u32) -> CustomerId {
        (0..self.drawn)
            .find(|&j| self.position_of_join(j) == position)
            .map(|j| self.joiners[j as usize])
            .unwrap()
    }

    fn join_number(&self, id: CustomerId) -> Option<u32> {
        self.joiners.iter().position(|&c| c == id).map(|j| j as u32)
    }

    fn is_served(&self, id: CustomerId) -> bool {
        self.phase != Phase::Scheduled
            && self
                .join_number(id)
                .is_some_and(|j| j < self.drawn && self.position_of_join(j) < self.served)
    }

    fn shopping(&self, id: CustomerId) -> Option<&ModelCustomer> {
        self.customers.get(&id).filter(|c| c.shopping)
    }

    fn absent(&self, id: CustomerId) -> Rejection {
        if self.join_number(id).is_none() {
            Rejection::NotInQueue
        } else if self.is_served(id) {
            Rejection::AdmissionExpired
        } else {
            Rejection::NotAdmitted
        }
    }

    fn closed(reason: CloseReason) -> Rejection {
        match reason {
            CloseReason::SoldOut => Rejection::SoldOut,
            CloseReason::Ended => Rejection::SaleClosed,
        }
    }

    fn total_cents(&self, items: &TypeCounts) -> u64 {
        items
            .iter()
            .map(|(t, q)| self.prices[t.index()] * u64::from(q))
            .sum()
    }

    fn check_items(&self, items: &TypeCounts) -> Result<(), Rejection> {
        if items.is_empty() {
            return Err(Rejection::EmptyItems);
        }
        match items.iter().find(|(t, _)| t.index() >= self.capacity.len()) {
            Some((t, _)) => Err(Rejection::UnknownTicketType(t)),
            None => Ok(()),
        }
    }

    // ----- commands -----

    fn decide(&mut self, command: Command, now: u64) -> Outcome {
        match command {
            Command::Join { customer } => self.join(customer, now),
            Command::AddItems { customer, items } => self.add(customer, items, now),
            Command::RemoveItems { customer, items } => self.remove(customer, Some(items), now),
            Command::SetItems { customer, items } => self.set(customer, items, now),
            Command::ReleaseHold { customer } => self.remove(customer, None, now),
            Command::Checkout {
                customer,
                payment,
                idempotency_key,
                ..
            } => self.checkout(customer, payment, idempotency_key, now),
            Command::Leave { customer } => self.leave(customer),
            Command::Tick => Ok(Reply::Done),
            Command::Pause | Command::Resume => {
                if let Phase::Closed(reason) = self.phase {
                    return Err(Self::closed(reason));
                }
                self.paused = command == Command::Pause;
                Ok(Reply::Done)
            }
            Command::UpdatePolicy { policy } => self.update_policy(policy, now),
            Command::Reschedule { schedule } => self.reschedule(schedule),
        }
    }

    fn join(&mut self, id: CustomerId, now: u64) -> Outcome {
        if self.join_number(id).is_some() {
            return Ok(Reply::Joined { fresh: false });
        }
        match self.phase {
            Phase::Scheduled if now < self.schedule.prequeue_opens_at_ms => {
                return Err(Rejection::QueueNotOpen);
            }
            Phase::Closed(reason) => return Err(Self::closed(reason)),
            _ => {}
        }
        if self.joiners.len() as u32 >= self.policy.max_queue_len {
            return Err(Rejection::QueueFull);
        }
        let window = self.policy.arrival_window_ms;
        if self.phase == Phase::Open && window > 0 && self.window_end.is_none() {
            let opens = self.schedule.opens_at_ms;
            self.window_end = Some(opens + ((now - opens) / window + 1) * window);
        }
        let placed_at_once = self.phase == Phase::Open
            && self.policy.arrival_window_ms == 0
            && self.drawn == self.joiners.len() as u32;
        self.joiners.push(id);
        if placed_at_once {
            self.drawn += 1;
        }
        Ok(Reply::Joined { fresh: true })
    }

    /// Per type, then in all: what the customer would hold (`holding` of
    /// type `t`) plus what they bought must stay within the limits.
    fn check_limits(
        &self,
        sold: &TypeCounts,
        holding: impl Fn(usize) -> u32,
    ) -> Result<(), Rejection> {
        let mut total = 0u32;
        for t in 0..self.capacity.len() {
            let wanted = holding(t) + u32::from(sold.at(t));
            if wanted > u32::from(self.policy.per_type_limits.at(t)) {
                return Err(Rejection::LimitReached(Limit::PerType(TicketTypeId(
                    t as u8,
                ))));
            }
            total += wanted;
        }
        if total > u32::from(self.policy.per_event_limit) {
            return Err(Rejection::LimitReached(Limit::PerEvent));
        }
        Ok(())
    }

    fn add(&mut self, id: CustomerId, items: TypeCounts, now: u64) -> Outcome {
        self.check_items(&items)?;
        match self.phase {
            Phase::Scheduled => return Err(Rejection::SaleNotOpen),
            Phase::Closed(reason) => return Err(Self::closed(reason)),
            Phase::Open if self.paused => return Err(Rejection::Paused),
            Phase::Open => {}
        }
        let Some(customer) = self.shopping(id).cloned() else {
            return Err(self.absent(id));
        };
        if now >= customer.window_end {
            return Err(Rejection::AdmissionExpired);
        }
        let held = customer.hold.map_or(TypeCounts::ZERO, |(h, _)| h);
        self.check_limits(&customer.sold, |t| {
            u32::from(held.at(t)) + u32::from(items.at(t))
        })?;
        for (t, q) in items.iter() {
            if u32::from(q) > self.available[t.index()] {
                return Err(Rejection::InsufficientStock(t));
            }
        }
        for (t, q) in items.iter() {
            self.available[t.index()] -= u32::from(q);
            self.held[t.index()] += u32::from(q);
        }
        let expires = customer
            .hold
            .map_or(now + self.policy.hold_ttl_ms, |(_, e)| e);
        let record = self.customers.get_mut(&id).unwrap();
        record.hold = Some((held.checked_add(&items).unwrap(), expires));
        record.hold_expired = false;
        record.idle = false;
        Ok(Reply::Held {
            expires_at_ms: expires,
        })
    }

    /// The hold becomes `items`: a selection that only shrinks is a
    /// removal; one that grows is checked whole (limits on what the fan
    /// ends up with, stock for what is added) and then taken as it is.
    fn set(&mut self, id: CustomerId, items: TypeCounts, now: u64) -> Outcome {
        if let Some(t) = items.first_beyond(self.capacity.len()) {
            return Err(Rejection::UnknownTicketType(t));
        }
        let Some(customer) = self.shopping(id).cloned() else {
            return Err(self.absent(id));
        };
        let held = customer.hold.map_or(TypeCounts::ZERO, |(h, _)| h);
        if held == items {
            return Ok(match customer.hold {
                Some((_, expires)) => Reply::Held {
                    expires_at_ms: expires,
                },
                None => Reply::Released {
                    hold_expires_at_ms: None,
                },
            });
        }
        let types = self.capacity.len();
        if (0..types).all(|t| items.at(t) <= held.at(t)) {
            return self.remove(id, Some(held.checked_sub(&items).unwrap()), now);
        }
        match self.phase {
            Phase::Scheduled => return Err(Rejection::SaleNotOpen),
            Phase::Closed(reason) => return Err(Self::closed(reason)),
            Phase::Open if self.paused => return Err(Rejection::Paused),
            Phase::Open => {}
        }
        if now >= customer.window_end {
            return Err(Rejection::AdmissionExpired);
        }
        self.check_limits(&customer.sold, |t| u32::from(items.at(t)))?;
        for t in 0..types {
            let added = u32::from(items.at(t).saturating_sub(held.at(t)));
            if added > self.available[t] {
                return Err(Rejection::InsufficientStock(TicketTypeId(t as u8)));
            }
        }
        for t in 0..types {
            let (now_held, before) = (u32::from(items.at(t)), u32::from(held.at(t)));
            self.held[t] = self.held[t] + now_held - before;
            self.available[t] = self.available[t] + before - now_held;
        }
        let expires = customer
            .hold
            .map_or(now + self.policy.hold_ttl_ms, |(_, e)| e);
        let record = self.customers.get_mut(&id).unwrap();
        record.hold = Some((items, expires));
        record.hold_expired = false;
        record.idle = false;
        Ok(Reply::Held {
            expires_at_ms: expires,
        })
    }

    fn remove(&mut self, id: CustomerId, items: Option<TypeCounts>, now: u64) -> Outcome {
        if let Some(items) = &items {
            self.check_items(items)?;
        }
        let Some(customer) = self.shopping(id).cloned() else {
            return Err(self.absent(id));
        };
        let Some((held, expires)) = customer.hold else {
            return Err(if customer.hold_expired {
                Rejection::HoldExpired
            } else {
                Rejection::NoHold
            });
        };
        let items = items.unwrap_or(held);
        if let Some(t) = items.first_exceeding(&held) {
            return Err(Rejection::NotInCart(t));
        }
        for (t, q) in items.iter() {
            self.held[t.index()] -= u32::from(q);
            self.available[t.index()] += u32::from(q);
        }
        let left = held.checked_sub(&items).unwrap();
        let record = self.customers.get_mut(&id).unwrap();
        if left.is_empty() {
            record.hold = None;
            record.hold_expired = false;
            self.settle_turn(id, now);
            Ok(Reply::Released {
                hold_expires_at_ms: None,
            })
        } else {
            record.hold = Some((left, expires));
            Ok(Reply::Released {
                hold_expires_at_ms: Some(expires),
            })
        }
    }

    fn checkout(&mut self, id: CustomerId, payment: Payment, key: u128, now: u64) -> Outcome {
        if let Some(index) = self
            .orders
            .iter()
            .position(|o| o.customer == id && o.key == key)
        {
            return Ok(Reply::OrderPlaced {
                order: OrderId(index as u32),
                duplicate: true,
            });
        }
        let Some(customer) = self.shopping(id).cloned() else {
            return Err(Rejection::NoHold);
        };
        let Some((held, _)) = customer.hold else {
            return Err(if customer.hold_expired {
                Rejection::HoldExpired
            } else {
                Rejection::NoHold
            });
        };
        match payment {
            Payment::Declined => return Err(Rejection::PaymentDeclined),
            Payment::Failed => return Err(Rejection::PaymentFailed),
            Payment::Approved { amount_cents, .. } => {
                let expected_cents = self.total_cents(&held);
                if amount_cents != expected_cents {
                    return Err(Rejection::AmountMismatch { expected_cents });
                }
            }
        }
        for (t, q) in held.iter() {
            self.held[t.index()] -= u32::from(q);
            self.sold[t.index()] += u32::from(q);
        }
        let order = OrderId(self.orders.len() as u32);
        self.orders.push(ModelOrder {
            customer: id,
            items: held,
            key,
        });
        let record = self.customers.get_mut(&id).unwrap();
        record.sold = record.sold.checked_add(&held).unwrap();
        record.hold = None;
        record.hold_expired = false;
        // Done once the limits leave nothing more to buy.
        let sold = record.sold;
        let more = sold.total() < u32::from(self.policy.per_event_limit)
            && (0..self.capacity.len()).any(|t| sold.at(t) < self.policy.per_type_limits.at(t));
        if more {
            self.settle_turn(id, now);
        } else {
            record.shopping = false;
        }
        if self.sold == self.capacity {
            self.phase = Phase::Closed(CloseReason::SoldOut);
        }
        Ok(Reply::OrderPlaced {
            order,
            duplicate: false,
        })
    }

    fn leave(&mut self, id: CustomerId) -> Outcome {
        let Some(customer) = self.shopping(id).cloned() else {
            // Waiting (or in the pre-queue): gives up the place, once.
            // Anyone who joined may leave again: it changes nothing.
            if self.join_number(id).is_none() {
                return Err(Rejection::NotInQueue);
            }
            if !self.left.contains(&id) && !self.is_served(id) {
                self.left.insert(id);
            }
            return Ok(Reply::Left);
        };
        if let Some((held, _)) = customer.hold {
            for (t, q) in held.iter() {
                self.held[t.index()] -= u32::from(q);
                self.available[t.index()] += u32::from(q);
            }
        }
        let record = self.customers.get_mut(&id).unwrap();
        record.hold = None;
        record.hold_expired = false;
        record.shopping = false;
        Ok(Reply::Left)
    }

    fn update_policy(&mut self, policy: Policy, now: u64) -> Outcome {
        policy
            .validate(self.capacity.len())
            .map_err(Rejection::InvalidConfig)?;
        let types = self.capacity.len();
        let shrinks = policy.per_event_limit < self.policy.per_event_limit
            || (0..types).any(|t| policy.per_type_limits.at(t) < self.policy.per_type_limits.at(t));
        if self.phase != Phase::Scheduled && shrinks {
            return Err(Rejection::InvalidConfig(
                ConfigError::LimitShrinksDuringSale,
            ));
        }
        if policy != self.policy {
            self.bucket_milli = self.tokens(now);
            self.bucket_at = self.bucket_at.max(now);
            self.policy = policy;
        }
        Ok(Reply::Done)
    }

    fn reschedule(&mut self, schedule: Schedule) -> Outcome {
        schedule.validate().map_err(Rejection::InvalidConfig)?;
        match self.phase {
            Phase::Closed(reason) => return Err(Self::closed(reason)),
            Phase::Open
                if schedule.opens_at_ms != self.schedule.opens_at_ms
                    || schedule.prequeue_opens_at_ms != self.schedule.prequeue_opens_at_ms =>
            {
                return Err(Rejection::InvalidConfig(ConfigError::AlreadyOpened));
            }
            _ => {}
        }
        self.schedule = schedule;
        Ok(Reply::Done)
    }

    // ----- what the engine must agree with -----

    pub fn queue_status(&self, id: CustomerId) -> QueueStatus {
        let Some(join) = self.join_number(id) else {
            return QueueStatus::NotJoined;
        };
        if let Some(customer) = self.shopping(id) {
            return QueueStatus::Shopping {
                admitted_at_ms: customer.admitted_at,
                window_ends_at_ms: customer.window_end,
                hold_expires_at_ms: customer.hold.map(|(_, e)| e),
                owned: customer.sold,
            };
        }
        if self.left.contains(&id) {
            return QueueStatus::Left;
        }
        if self.is_served(id) {
            return QueueStatus::TurnOver;
        }
        if let Phase::Closed(reason) = self.phase {
            return QueueStatus::Closed(reason);
        }
        if self.phase == Phase::Scheduled {
            return QueueStatus::PreQueue {
                prequeue_len: self.joiners.len() as u32,
            };
        }
        if join >= self.drawn {
            return QueueStatus::Drawing {
                draw_at_ms: self.window_end.unwrap(),
                people_ahead: self.admissible(),
                in_draw: self.in_draw(),
            };
        }
        let position = self.position_of_join(join);
        let people_ahead = position - self.served;
        let rate = u64::from(self.policy.admit_per_second);
        QueueStatus::Waiting {
            position,
            people_ahead,
            estimated_wait_ms: (u64::from(people_ahead) * 1000).div_ceil(rate),
        }
    }

    pub fn cart(&self, id: CustomerId) -> Option<(TypeCounts, u64, u64)> {
        let (items, expires) = self.shopping(id)?.hold?;
        Some((items, expires, self.total_cents(&items)))
    }

    pub fn owned(&self, id: CustomerId) -> TypeCounts {
        self.customers.get(&id).map_or(TypeCounts::ZERO, |c| c.sold)
    }

    pub fn active(&self) -> u32 {
        self.customers.values().filter(|c| c.shopping).count() as u32
    }
}
