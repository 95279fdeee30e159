//! `Engine`: the allocator of one event, and the only place its state changes.
//!
//! `apply(command, now_ms, out)` runs in three steps, always in this order:
//! 1. let time pass to `now_ms`: open or close the sale, expire what is due,
//!    admit from the queue;
//! 2. decide the command against the state: a rejection, or transitions;
//! 3. let time act again: a join or a freed slot may admit someone at once,
//!    and a new schedule may open or close the sale at once.
//!
//! Deciding only reads the state. Every change goes through `emit`, which
//! applies one [`Transition`] with `evolve` and appends it to `out`, so the
//! transitions appended by `apply` are exactly what changed, and
//! [`Engine::apply_transition`] replaying them on a fresh engine yields the
//! same state. Nothing here reads a clock, does IO, or scans the queue or
//! the holds.

use serde::{Deserialize, Serialize};

use crate::admission::AdmissionBucket;
use crate::command::{Command, Payment};
use crate::config::{ConfigError, EventConfig, Policy, Schedule};
use crate::counts::TypeCounts;
use crate::ids::CustomerId;
use crate::inventory::Inventory;
use crate::orders::OrderBook;
use crate::outcome::{Limit, Outcome, Rejection, Reply};
use crate::queue::Queue;
use crate::shoppers::{Shopper, Shoppers};
use crate::transition::{CloseReason, Transition};

/// Where the sale is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Before opening (the pre-queue may be accepting joins).
    Scheduled,
    /// Open: admitting and selling.
    Open,
    /// Over: sold out or ended. Final.
    Closed(CloseReason),
}

/// The allocator of one event. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    pub(crate) config: EventConfig,
    pub(crate) phase: Phase,
    pub(crate) paused: bool,
    pub(crate) queue: Queue,
    pub(crate) inventory: Inventory,
    pub(crate) shoppers: Shoppers,
    pub(crate) orders: OrderBook,
    pub(crate) admission: AdmissionBucket,
}

/// A logged transition that cannot apply to the state it was replayed onto:
/// the log is not this event's, is out of order, or was altered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionError {
    /// The offending transition.
    pub transition: Transition,
    /// What did not fit.
    pub reason: &'static str,
}

impl std::fmt::Display for TransitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transition {:?} cannot apply: {}",
            self.transition, self.reason
        )
    }
}

impl std::error::Error for TransitionError {}

/// Why an event could not be rebuilt from its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// The logged configuration is invalid.
    Config(ConfigError),
    /// The transition at `index` (0-based) does not fit.
    Transition {
        /// Its place in the replayed sequence.
        index: u64,
        /// What was wrong.
        error: TransitionError,
    },
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Config(error) => write!(f, "invalid event configuration: {error}"),
            ReplayError::Transition { index, error } => write!(f, "at transition {index}: {error}"),
        }
    }
}

impl std::error::Error for ReplayError {}

impl Engine {
    /// A new event, nothing joined, nothing sold.
    pub fn new(config: EventConfig) -> Result<Engine, ConfigError> {
        config.validate()?;
        Ok(Engine {
            inventory: Inventory::new(&config.ticket_types),
            config,
            phase: Phase::Scheduled,
            paused: false,
            queue: Queue::default(),
            shoppers: Shoppers::default(),
            orders: OrderBook::default(),
            admission: AdmissionBucket::default(),
        })
    }

    /// Rebuilds an event from its configuration and its logged transitions.
    pub fn replay<'a>(
        config: EventConfig,
        transitions: impl IntoIterator<Item = &'a Transition>,
    ) -> Result<Engine, ReplayError> {
        let mut engine = Engine::new(config).map_err(ReplayError::Config)?;
        for (index, transition) in (0u64..).zip(transitions) {
            engine
                .apply_transition(transition)
                .map_err(|error| ReplayError::Transition { index, error })?;
        }
        Ok(engine)
    }

    /// Applies a command at `now_ms`, appending every resulting transition to
    /// `out` (time-driven ones included), and answers it.
    pub fn apply(&mut self, command: Command, now_ms: u64, out: &mut Vec<Transition>) -> Outcome {
        self.advance(now_ms, out);
        let outcome = self.decide(command, now_ms, out);
        // Again: the command may have freed a slot (admit the next in line)
        // or moved the schedule to an instant already past (open or close).
        self.advance(now_ms, out);
        outcome
    }

    /// Touches the memory a batch of commands will need before the batch is
    /// applied (the prefetch phase of TigerBeetle's state machine). A join
    /// looks its customer up in an index of up to millions of entries, which
    /// cannot stay in cache: applied one by one, each join waits for its own
    /// miss; touched together first, the misses overlap. Reads only: it
    /// changes no state and may be skipped.
    pub fn prefetch<'a>(&self, commands: impl IntoIterator<Item = &'a Command>) {
        let mut touched = 0u32;
        for command in commands {
            if let Command::Join { customer } = command {
                touched ^= self.queue.touch(*customer);
            }
        }
        std::hint::black_box(touched);
    }

    /// The earliest instant at which a [`Command::Tick`] would change
    /// something: opening, closing, an expiry, or the next admission token
    /// while someone waits and there is room. It may be early (a dead entry in
    /// a deadline queue) but never late, and after `apply` at `now` it is
    /// always later than `now`, so a shard that sleeps until it never spins.
    pub fn next_deadline(&self) -> Option<u64> {
        let schedule = &self.config.schedule;
        let phase_change = match self.phase {
            Phase::Scheduled => Some(schedule.opens_at_ms),
            Phase::Open => Some(schedule.closes_at_ms),
            Phase::Closed(_) => None,
        };
        [
            phase_change,
            self.shoppers.peek_deadline_ms(),
            self.next_admission_ms(),
            self.queue.window_ends_at_ms(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Applies one logged transition after checking it fits the state, so a
    /// log from elsewhere or an altered one is refused rather than applied.
    pub fn apply_transition(&mut self, transition: &Transition) -> Result<(), TransitionError> {
        self.check_applicable(transition)
            .map_err(|reason| TransitionError {
                transition: *transition,
                reason,
            })?;
        self.evolve(transition);
        Ok(())
    }

    // ----- time -----

    fn advance(&mut self, now_ms: u64, out: &mut Vec<Transition>) {
        let schedule = self.config.schedule;
        if self.phase == Phase::Scheduled && now_ms >= schedule.opens_at_ms {
            let transition = Transition::Opened {
                at_ms: now_ms,
                prequeue_len: self.queue.len(),
                shuffle_seed: self.config.shuffle_seed,
            };
            self.emit(transition, out);
        }
        if self.phase == Phase::Open && now_ms >= schedule.closes_at_ms {
            self.emit(
                Transition::Closed {
                    at_ms: now_ms,
                    reason: CloseReason::Ended,
                },
                out,
            );
        }
        while let Some((customer, shopper)) = self.shoppers.take_due(now_ms) {
            self.expire(customer, shopper, now_ms, out);
        }
        // Drawn whatever the phase (paused or closed too): a window left
        // open would be a deadline in the past, and the shard would spin.
        if self
            .queue
            .window_ends_at_ms()
            .is_some_and(|end| end <= now_ms)
        {
            let drawn = Transition::ArrivalsDrawn {
                at_ms: now_ms,
                count: self.queue.pending(),
                seed: self.window_seed(),
            };
            self.emit(drawn, out);
        }
        self.admit(now_ms, out);
    }

    /// The seed of the next arrival window's draw: the event's secret seed
    /// keyed by the window's first join number, so every window is drawn
    /// differently and nobody can compute a draw before opening.
    fn window_seed(&self) -> u64 {
        crate::shuffle::derive_seed(self.config.shuffle_seed, self.queue.drawn())
    }

    /// When an arrival window opened at `now_ms` ends: windows are counted
    /// from the opening, so "the first ten seconds" is one draw whatever the
    /// instant of the first join.
    fn window_end(&self, now_ms: u64) -> u64 {
        let window = self.config.policy.arrival_window_ms.max(1);
        let opens = self.config.schedule.opens_at_ms;
        let index = now_ms.saturating_sub(opens) / window;
        opens.saturating_add(index.saturating_add(1).saturating_mul(window))
    }

    /// Handles a shopper whose deadline has come (see `Shoppers::take_due`):
    /// the hold expires, and the turn ends if the window has passed too.
    fn expire(
        &mut self,
        customer: CustomerId,
        shopper: Shopper,
        now_ms: u64,
        out: &mut Vec<Transition>,
    ) {
        if shopper.hold.is_some() {
            self.emit(Transition::HoldExpired { customer }, out);
        }
        self.end_turn_if_over(customer, now_ms, out);
    }

    /// For a shopper who holds nothing: the turn ends if the window has
    /// passed; otherwise they become idle if their idle time has.
    fn end_turn_if_over(&mut self, customer: CustomerId, now_ms: u64, out: &mut Vec<Transition>) {
        let Some(shopper) = self.shoppers.get(customer).copied() else {
            return;
        };
        if shopper.hold.is_some() {
            return;
        }
        if shopper.window_ends_at_ms <= now_ms {
            self.emit(Transition::SessionEnded { customer }, out);
        } else if !shopper.idle && shopper.idle_at_ms <= now_ms {
            self.emit(Transition::ShopperIdle { customer }, out);
        }
    }

    fn admit(&mut self, now_ms: u64, out: &mut Vec<Transition>) {
        // Cheapest first: this runs twice per command.
        if !self.someone_to_admit() {
            return;
        }
        let tokens = self
            .admission
            .tokens_at(now_ms, self.config.policy.admit_per_second);
        if tokens == 0 {
            return;
        }
        let count = self.queue.admissible().min(self.shopper_room()).min(tokens);
        if count > 0 {
            self.emit(
                Transition::Admitted {
                    at_ms: now_ms,
                    count,
                },
                out,
            );
        }
    }

    /// Open, not paused, tickets left and someone placed in line.
    fn someone_to_admit(&self) -> bool {
        self.phase == Phase::Open
            && !self.paused
            && self.inventory.available_total() > 0
            && self.queue.admissible() > 0
    }

    /// Whether the next token would admit someone.
    fn admitting(&self) -> bool {
        self.someone_to_admit() && self.shopper_room() > 0
    }

    /// How many more may shop: below `max_active`, and below what the
    /// unsold stock can serve (see [`Policy::overadmit_percent`]) counting
    /// the shoppers who are not idle. Unsold counts held tickets, since their
    /// holders are among the shoppers.
    fn shopper_room(&self) -> u32 {
        let policy = &self.config.policy;
        // max_active bounds everyone shopping (checked first: it is free);
        // the stock, those counted.
        let by_load = policy.max_active.saturating_sub(self.shoppers.len());
        if by_load == 0 {
            return 0;
        }
        let unsold = self.inventory.unsold_total();
        let take = u64::from(policy.take(self.config.ticket_types.len()));
        let servable = (unsold * u64::from(policy.overadmit_percent)).div_ceil(100 * take);
        let servable = u32::try_from(servable).unwrap_or(u32::MAX);
        servable
            .saturating_sub(self.shoppers.counted())
            .min(by_load)
    }

    fn next_admission_ms(&self) -> Option<u64> {
        self.admitting().then(|| {
            self.admission
                .next_token_at(self.config.policy.admit_per_second)
        })
    }

    // ----- decisions -----

    fn decide(&mut self, command: Command, now_ms: u64, out: &mut Vec<Transition>) -> Outcome {
        match command {
            Command::Join { customer } => self.join(customer, now_ms, out),
            Command::AddItems { customer, items } => self.add_items(customer, items, now_ms, out),
            Command::RemoveItems { customer, items } => {
                self.remove_items(customer, Some(items), now_ms, out)
            }
            Command::SetItems { customer, items } => self.set_items(customer, items, now_ms, out),
            Command::ReleaseHold { customer } => self.remove_items(customer, None, now_ms, out),
            Command::Checkout {
                customer,
                payment,
                idempotency_key,
                ticket_seed,
            } => self.checkout(customer, payment, idempotency_key, ticket_seed, now_ms, out),
            Command::Leave { customer } => self.leave(customer, out),
            Command::Tick => Ok(Reply::Done),
            Command::Pause => self.set_paused(true, now_ms, out),
            Command::Resume => self.set_paused(false, now_ms, out),
            Command::UpdatePolicy { policy } => self.update_policy(policy, now_ms, out),
            Command::Reschedule { schedule } => self.reschedule(schedule, out),
        }
    }

    fn join(&mut self, customer: CustomerId, now_ms: u64, out: &mut Vec<Transition>) -> Outcome {
        if self.queue.join_number(customer).is_some() {
            return Ok(Reply::Joined { fresh: false });
        }
        match self.phase {
            Phase::Scheduled if now_ms < self.config.schedule.prequeue_opens_at_ms => {
                return Err(Rejection::QueueNotOpen);
            }
            Phase::Closed(reason) => return Err(closed_rejection(reason)),
            Phase::Scheduled | Phase::Open => {}
        }
        if self.queue.len() >= self.config.policy.max_queue_len {
            return Err(Rejection::QueueFull);
        }
        let windowed = self.config.policy.arrival_window_ms > 0;
        if self.phase == Phase::Open && windowed && self.queue.window_ends_at_ms().is_none() {
            let ends_at_ms = self.window_end(now_ms);
            self.emit(Transition::ArrivalWindowOpened { ends_at_ms }, out);
        }
        self.emit(Transition::Joined { customer }, out);
        Ok(Reply::Joined { fresh: true })
    }

    fn add_items(
        &mut self,
        customer: CustomerId,
        items: TypeCounts,
        now_ms: u64,
        out: &mut Vec<Transition>,
    ) -> Outcome {
        self.check_items(&items)?;
        self.check_selling()?;
        let shopper = *self
            .shoppers
            .get(customer)
            .ok_or_else(|| self.absent(customer))?;
        let held = shopper.hold.map_or(TypeCounts::ZERO, |h| h.items);
        let expires_at_ms = self.hold_more(customer, &shopper, &held, items, now_ms, out)?;
        Ok(Reply::Held { expires_at_ms })
    }

    /// Whether tickets may be added to holds now.
    fn check_selling(&self) -> Result<(), Rejection> {
        match self.phase {
            Phase::Scheduled => Err(Rejection::SaleNotOpen),
            Phase::Closed(reason) => Err(closed_rejection(reason)),
            Phase::Open if self.paused => Err(Rejection::Paused),
            Phase::Open => Ok(()),
        }
    }

    /// Adds `more` to the hold of `shopper`, who keeps `kept` of what they
    /// hold (the rest is being given back in the same step), all or none:
    /// within their turn, the limits (on `kept` + `more` + what they own)
    /// and the stock. The hold keeps its expiry (a new one gets the TTL),
    /// which is returned.
    fn hold_more(
        &mut self,
        customer: CustomerId,
        shopper: &Shopper,
        kept: &TypeCounts,
        more: TypeCounts,
        now_ms: u64,
        out: &mut Vec<Transition>,
    ) -> Result<u64, Rejection> {
        if now_ms >= shopper.window_ends_at_ms {
            return Err(Rejection::AdmissionExpired);
        }
        self.check_limits(customer, kept, &more)?;
        if let Some(short) = self.inventory.first_short(&more) {
            return Err(Rejection::InsufficientStock(short));
        }
        let expires_at_ms = match shopper.hold {
            Some(hold) => hold.expires_at_ms,
            None => now_ms.saturating_add(self.config.policy.hold_ttl_ms),
        };
        self.emit(
            Transition::ItemsHeld {
                customer,
                items: more,
                expires_at_ms,
            },
            out,
        );
        Ok(expires_at_ms)
    }

    /// Makes the hold exactly `items`: the increase is checked as an
    /// addition would be (against the limits as the hold ends up), the
    /// decrease given back; nothing happens unless all of it can.
    fn set_items(
        &mut self,
        customer: CustomerId,
        items: TypeCounts,
        now_ms: u64,
        out: &mut Vec<Transition>,
    ) -> Outcome {
        if let Some(unknown) = items.first_beyond(self.config.ticket_types.len()) {
            return Err(Rejection::UnknownTicketType(unknown));
        }
        let shopper = *self
            .shoppers
            .get(customer)
            .ok_or_else(|| self.absent(customer))?;
        let held = shopper.hold.map_or(TypeCounts::ZERO, |h| h.items);
        let (mut more, mut fewer, mut kept) =
            (TypeCounts::ZERO, TypeCounts::ZERO, TypeCounts::ZERO);
        for t in 0..self.config.ticket_types.len() {
            let (want, have) = (items.at(t), held.at(t));
            more.set(t, want.saturating_sub(have));
            fewer.set(t, have.saturating_sub(want));
            kept.set(t, want.min(have));
        }
        if more.is_empty() && fewer.is_empty() {
            return Ok(match shopper.hold {
                Some(hold) => Reply::Held {
                    expires_at_ms: hold.expires_at_ms,
                },
                None => Reply::Released {
                    hold_expires_at_ms: None,
                },
            });
        }
        if more.is_empty() {
            return self.remove_items(customer, Some(fewer), now_ms, out);
        }
        self.check_selling()?;
        // Held first, released after: the hold never empties in between, so
        // it keeps its expiry.
        let expires_at_ms = self.hold_more(customer, &shopper, &kept, more, now_ms, out)?;
        if !fewer.is_empty() {
            self.emit(
                Transition::ItemsReleased {
                    customer,
                    items: fewer,
                },
                out,
            );
        }
        Ok(Reply::Held { expires_at_ms })
    }

    /// Removes `items`, or the whole hold when `items` is `None`.
    fn remove_items(
        &mut self,
        customer: CustomerId,
        items: Option<TypeCounts>,
        now_ms: u64,
        out: &mut Vec<Transition>,
    ) -> Outcome {
        if let Some(items) = &items {
            self.check_items(items)?;
        }
        let shopper = *self
            .shoppers
            .get(customer)
            .ok_or_else(|| self.absent(customer))?;
        let Some(hold) = shopper.hold else {
            return Err(if shopper.hold_expired {
                Rejection::HoldExpired
            } else {
                Rejection::NoHold
            });
        };
        let items = items.unwrap_or(hold.items);
        if let Some(missing) = items.first_exceeding(&hold.items) {
            return Err(Rejection::NotInCart(missing));
        }
        self.emit(Transition::ItemsReleased { customer, items }, out);
        self.end_turn_if_over(customer, now_ms, out);
        let remains = self.shoppers.get(customer).and_then(|s| s.hold);
        Ok(Reply::Released {
            hold_expires_at_ms: remains.map(|h| h.expires_at_ms),
        })
    }

    fn checkout(
        &mut self,
        customer: CustomerId,
        payment: Payment,
        idempotency_key: u128,
        ticket_seed: u128,
        now_ms: u64,
        out: &mut Vec<Transition>,
    ) -> Outcome {
        if let Some(order) = self.orders.find_by_key(customer, idempotency_key) {
            return Ok(Reply::OrderPlaced {
                order,
                duplicate: true,
            });
        }
        let shopper = *self.shoppers.get(customer).ok_or(Rejection::NoHold)?;
        let Some(hold) = shopper.hold else {
            return Err(if shopper.hold_expired {
                Rejection::HoldExpired
            } else {
                Rejection::NoHold
            });
        };
        let payment_ref = match payment {
            Payment::Declined => return Err(Rejection::PaymentDeclined),
            Payment::Failed => return Err(Rejection::PaymentFailed),
            Payment::Approved {
                amount_cents,
                payment_ref,
            } => {
                let expected_cents = self.total_cents(&hold.items);
                if amount_cents != expected_cents {
                    return Err(Rejection::AmountMismatch { expected_cents });
                }
                payment_ref
            }
        };
        let order =
            crate::ids::OrderId(u32::try_from(self.orders.orders().len()).unwrap_or(u32::MAX));
        let placed = Transition::OrderPlaced {
            customer,
            at_ms: now_ms,
            ticket_seed,
            idempotency_key,
            payment_ref,
        };
        self.emit(placed, out);
        if self.can_buy_more(customer) {
            self.end_turn_if_over(customer, now_ms, out);
        } else {
            // Done: the slot goes to the next in line now, not when the
            // admission window ends (a buyer kept it for ten minutes, and a
            // bot account could freeze the line just by staying).
            self.emit(Transition::SessionEnded { customer }, out);
        }
        if self.inventory.sold_out() {
            self.emit(
                Transition::Closed {
                    at_ms: now_ms,
                    reason: CloseReason::SoldOut,
                },
                out,
            );
        }
        Ok(Reply::OrderPlaced {
            order,
            duplicate: false,
        })
    }

    /// A shopper's turn ends (the hold goes back); a customer still waiting
    /// gives up their place, so their turn never takes a shopper's slot.
    /// Leaving twice changes nothing.
    fn leave(&mut self, customer: CustomerId, out: &mut Vec<Transition>) -> Outcome {
        let Some(&shopper) = self.shoppers.get(customer) else {
            let join_number = self.queue.join_number(customer);
            return match join_number {
                Some(j) if !self.queue.is_served(j) && !self.queue.has_left(j) => {
                    self.emit(Transition::LeftQueue { customer }, out);
                    Ok(Reply::Left)
                }
                // Left already, or the turn is over (done, expired, left as
                // a shopper): leaving again changes nothing and says so, so
                // a retried or double-tapped "leave" is answered the same.
                Some(_) => Ok(Reply::Left),
                None => Err(Rejection::NotInQueue),
            };
        };
        if let Some(hold) = shopper.hold {
            self.emit(
                Transition::ItemsReleased {
                    customer,
                    items: hold.items,
                },
                out,
            );
        }
        self.emit(Transition::SessionEnded { customer }, out);
        Ok(Reply::Left)
    }

    fn set_paused(&mut self, paused: bool, now_ms: u64, out: &mut Vec<Transition>) -> Outcome {
        if let Phase::Closed(reason) = self.phase {
            return Err(closed_rejection(reason));
        }
        if self.paused != paused {
            let transition = if paused {
                Transition::Paused { at_ms: now_ms }
            } else {
                Transition::Resumed { at_ms: now_ms }
            };
            self.emit(transition, out);
        }
        Ok(Reply::Done)
    }

    fn update_policy(&mut self, policy: Policy, now_ms: u64, out: &mut Vec<Transition>) -> Outcome {
        let type_count = self.config.ticket_types.len();
        policy
            .validate(type_count)
            .map_err(Rejection::InvalidConfig)?;
        if self.phase != Phase::Scheduled
            && policy.shrinks_limits_of(&self.config.policy, type_count)
        {
            return Err(Rejection::InvalidConfig(
                ConfigError::LimitShrinksDuringSale,
            ));
        }
        if policy != self.config.policy {
            self.emit(
                Transition::PolicyChanged {
                    at_ms: now_ms,
                    policy,
                },
                out,
            );
        }
        Ok(Reply::Done)
    }

    fn reschedule(&mut self, schedule: Schedule, out: &mut Vec<Transition>) -> Outcome {
        schedule.validate().map_err(Rejection::InvalidConfig)?;
        let current = self.config.schedule;
        match self.phase {
            Phase::Closed(reason) => return Err(closed_rejection(reason)),
            Phase::Open
                if schedule.opens_at_ms != current.opens_at_ms
                    || schedule.prequeue_opens_at_ms != current.prequeue_opens_at_ms =>
            {
                return Err(Rejection::InvalidConfig(ConfigError::AlreadyOpened));
            }
            Phase::Open | Phase::Scheduled => {}
        }
        if schedule != current {
            self.emit(Transition::Rescheduled { schedule }, out);
        }
        Ok(Reply::Done)
    }

    // ----- checks shared by decisions -----

    fn check_items(&self, items: &TypeCounts) -> Result<(), Rejection> {
        if items.is_empty() {
            return Err(Rejection::EmptyItems);
        }
        match items.first_beyond(self.config.ticket_types.len()) {
            Some(unknown) => Err(Rejection::UnknownTicketType(unknown)),
            None => Ok(()),
        }
    }

    /// Per type, then per event: held plus owned plus requested must stay
    /// within the limit.
    fn check_limits(
        &self,
        customer: CustomerId,
        held: &TypeCounts,
        requested: &TypeCounts,
    ) -> Result<(), Rejection> {
        let policy = &self.config.policy;
        let owned = self.orders.sold_to(customer);
        let total = held
            .checked_add(&owned)
            .and_then(|c| c.checked_add(requested))
            .ok_or(Rejection::LimitReached(Limit::PerEvent))?;
        if let Some(over) = total.first_exceeding(&policy.per_type_limits) {
            return Err(Rejection::LimitReached(Limit::PerType(over)));
        }
        if total.total() > u32::from(policy.per_event_limit) {
            return Err(Rejection::LimitReached(Limit::PerEvent));
        }
        Ok(())
    }

    /// Whether the limits leave the customer anything more to buy.
    fn can_buy_more(&self, customer: CustomerId) -> bool {
        let policy = &self.config.policy;
        let owned = self.orders.sold_to(customer);
        owned.total() < u32::from(policy.per_event_limit)
            && (0..self.config.ticket_types.len())
                .any(|t| owned.at(t) < policy.per_type_limits.at(t))
    }

    /// Why a customer who is not shopping cannot act.
    fn absent(&self, customer: CustomerId) -> Rejection {
        match self.queue.join_number(customer) {
            None => Rejection::NotInQueue,
            Some(join_number) if self.queue.is_served(join_number) => Rejection::AdmissionExpired,
            Some(_) => Rejection::NotAdmitted,
        }
    }

    /// What `items` cost, in centavos. Prices and quantities are bounded so
    /// this cannot overflow; saturating keeps it total regardless.
    pub fn total_cents(&self, items: &TypeCounts) -> u64 {
        items
            .iter()
            .map(|(t, q)| {
                let price = self
                    .config
                    .ticket_types
                    .get(t.index())
                    .map_or(0, |t| t.price_cents);
                price.saturating_mul(u64::from(q))
            })
            .fold(0u64, u64::saturating_add)
    }

    // ----- state changes -----

    fn emit(&mut self, transition: Transition, out: &mut Vec<Transition>) {
        self.evolve(&transition);
        out.push(transition);
    }

    /// Applies a transition. The only function that changes state; it trusts
    /// its input (decisions validated it, or `check_applicable` did).
    fn evolve(&mut self, transition: &Transition) {
        match *transition {
            Transition::Opened {
                at_ms,
                shuffle_seed,
                ..
            } => {
                self.queue.open(shuffle_seed);
                self.phase = Phase::Open;
                // Empty at the scheduled opening (the shard ticks then), so
                // no burst; a sale first touched after its opening has been
                // accruing since (at most a second's worth, as always).
                let opened_at = self.config.schedule.opens_at_ms.min(at_ms);
                self.admission = AdmissionBucket::empty(opened_at);
            }
            Transition::Closed { reason, .. } => self.phase = Phase::Closed(reason),
            Transition::Joined { customer } => {
                let arrival_order = self.config.policy.arrival_window_ms == 0;
                self.queue.push(customer, arrival_order);
            }
            Transition::ArrivalWindowOpened { ends_at_ms } => self.queue.open_window(ends_at_ms),
            Transition::ArrivalsDrawn { seed, .. } => self.queue.draw(seed),
            Transition::ShopperIdle { customer } => self.shoppers.set_idle(customer),
            Transition::Admitted { at_ms, count } => {
                let policy = &self.config.policy;
                let window_ends_at_ms = at_ms.saturating_add(policy.admission_window_ms);
                let idle_at_ms = at_ms.saturating_add(policy.idle_after_ms);
                for _ in 0..count {
                    if let Some(customer) = self.queue.admit_next() {
                        self.shoppers
                            .admit(customer, at_ms, window_ends_at_ms, idle_at_ms);
                    }
                }
                self.admission
                    .take(at_ms, count, self.config.policy.admit_per_second);
            }
            Transition::ItemsHeld {
                customer,
                items,
                expires_at_ms,
            } => {
                self.inventory.hold(&items);
                self.shoppers.hold(customer, &items, expires_at_ms);
            }
            Transition::ItemsReleased { customer, items } => {
                self.inventory.release(&items);
                self.shoppers.release(customer, &items);
            }
            Transition::HoldExpired { customer } => {
                let items = self.shoppers.end_hold(customer, true);
                self.inventory.release(&items);
            }
            Transition::OrderPlaced {
                customer,
                at_ms,
                ticket_seed,
                idempotency_key,
                payment_ref,
            } => {
                let items = self.shoppers.end_hold(customer, false);
                self.inventory.sell(&items);
                let total_cents = self.total_cents(&items);
                self.orders.place(
                    customer,
                    items,
                    total_cents,
                    at_ms,
                    payment_ref,
                    idempotency_key,
                    ticket_seed,
                );
            }
            Transition::SessionEnded { customer } => {
                let items = self.shoppers.end(customer);
                self.inventory.release(&items);
            }
            Transition::Paused { .. } => self.paused = true,
            Transition::Resumed { .. } => self.paused = false,
            Transition::PolicyChanged { at_ms, policy } => self.change_policy(at_ms, policy),
            Transition::PolicyChangedV1 { at_ms, policy } => {
                self.change_policy(at_ms, policy.into());
            }
            Transition::Rescheduled { schedule } => self.config.schedule = schedule,
            Transition::LeftQueue { customer } => {
                if let Some(join_number) = self.queue.join_number(customer) {
                    self.queue.leave(join_number);
                }
            }
        }
    }

    fn change_policy(&mut self, at_ms: u64, policy: Policy) {
        self.admission
            .settle(at_ms, self.config.policy.admit_per_second);
        self.config.policy = policy;
    }

    /// The preconditions `evolve` relies on, for transitions read from a log.
    fn check_applicable(&self, transition: &Transition) -> Result<(), &'static str> {
        let shopper = |customer| {
            self.shoppers
                .get(customer)
                .ok_or("the customer is not shopping")
        };
        let holding = |customer| shopper(customer)?.hold.ok_or("the customer holds nothing");
        match *transition {
            Transition::Opened {
                prequeue_len,
                shuffle_seed,
                ..
            } => {
                ensure(self.phase == Phase::Scheduled, "the sale is already open")?;
                ensure(
                    prequeue_len == self.queue.len(),
                    "the pre-queue length differs",
                )?;
                ensure(
                    shuffle_seed == self.config.shuffle_seed,
                    "the shuffle seed differs",
                )
            }
            Transition::Closed { .. } => ensure(
                !matches!(self.phase, Phase::Closed(_)),
                "the sale is already closed",
            ),
            Transition::Joined { customer } => {
                ensure(
                    self.queue.join_number(customer).is_none(),
                    "the customer already joined",
                )?;
                ensure(self.queue.len() < u32::MAX, "the queue is full")
            }
            Transition::Admitted { count, .. } => {
                ensure(self.phase == Phase::Open, "the sale is not open")?;
                ensure(count <= self.queue.admissible(), "fewer are waiting")
            }
            Transition::ArrivalWindowOpened { .. } => {
                ensure(self.queue.is_open(), "the sale has not opened")?;
                ensure(
                    self.queue.window_ends_at_ms().is_none(),
                    "a window is already open",
                )
            }
            Transition::ArrivalsDrawn { count, seed, .. } => {
                ensure(
                    self.queue.window_ends_at_ms().is_some(),
                    "no arrival window is open",
                )?;
                ensure(count == self.queue.pending(), "the arrivals differ")?;
                ensure(seed == self.window_seed(), "the draw's seed differs")
            }
            Transition::ItemsHeld {
                customer,
                items,
                expires_at_ms,
            } => {
                let shopper = shopper(customer)?;
                ensure(!items.is_empty(), "no items")?;
                ensure(
                    self.inventory.can_hold(&items),
                    "the items are not available",
                )?;
                if let Some(hold) = shopper.hold {
                    ensure(
                        hold.expires_at_ms == expires_at_ms,
                        "a hold's expiry cannot move",
                    )?;
                    ensure(
                        hold.items.checked_add(&items).is_some(),
                        "the hold overflows",
                    )?;
                }
                Ok(())
            }
            Transition::ItemsReleased { customer, items } => {
                let hold = holding(customer)?;
                ensure(!items.is_empty(), "no items")?;
                ensure(
                    items.first_exceeding(&hold.items).is_none(),
                    "the items are not held",
                )
            }
            Transition::HoldExpired { customer } => holding(customer).map(|_| ()),
            Transition::OrderPlaced { customer, .. } => {
                let hold = holding(customer)?;
                ensure(
                    self.inventory.holds_at_least(&hold.items),
                    "the held stock is missing",
                )
            }
            Transition::SessionEnded { customer } => ensure(
                shopper(customer)?.hold.is_none(),
                "the customer still holds tickets",
            ),
            Transition::ShopperIdle { customer } => {
                let shopper = shopper(customer)?;
                ensure(shopper.hold.is_none(), "the customer holds tickets")?;
                ensure(!shopper.idle, "the customer is idle already")
            }
            Transition::Paused { .. } | Transition::Resumed { .. } => Ok(()),
            Transition::PolicyChanged { policy, .. } => policy
                .validate(self.config.ticket_types.len())
                .map_err(|_| "the policy is invalid"),
            Transition::PolicyChangedV1 { policy, .. } => Policy::from(policy)
                .validate(self.config.ticket_types.len())
                .map_err(|_| "the policy is invalid"),
            Transition::Rescheduled { schedule } => {
                schedule.validate().map_err(|_| "the schedule is invalid")
            }
            Transition::LeftQueue { customer } => {
                let join_number = self
                    .queue
                    .join_number(customer)
                    .ok_or("the customer is not in the queue")?;
                ensure(
                    !self.queue.has_left(join_number),
                    "the customer already left",
                )?;
                ensure(
                    !self.queue.is_served(join_number),
                    "the customer's turn came",
                )?;
                ensure(
                    self.shoppers.get(customer).is_none(),
                    "the customer is shopping",
                )
            }
        }
    }
}

fn ensure(condition: bool, reason: &'static str) -> Result<(), &'static str> {
    if condition { Ok(()) } else { Err(reason) }
}

fn closed_rejection(reason: CloseReason) -> Rejection {
    match reason {
        CloseReason::SoldOut => Rejection::SoldOut,
        CloseReason::Ended => Rejection::SaleClosed,
    }
}
