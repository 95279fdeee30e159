//! An event's configuration: what is for sale, when, and the policies that
//! shape the drop (admission rate, active shoppers, hold TTL, limits).
//!
//! The ticket types are fixed when the event is created; the schedule and the
//! policy may change later through logged commands, with the restrictions that
//! keep the invariants true (limits never shrink once the sale is open).

use serde::{Deserialize, Serialize};

use crate::counts::{MAX_TICKET_TYPES, TypeCounts};

/// One minute, the unit most policy bounds are stated in.
pub const MINUTE_MS: u64 = 60_000;
/// Holds last between 1 and 30 minutes (DESIGN.md), 8 by default.
pub const HOLD_TTL_MIN_MS: u64 = MINUTE_MS;
/// See [`HOLD_TTL_MIN_MS`].
pub const HOLD_TTL_MAX_MS: u64 = 30 * MINUTE_MS;
/// An admitted customer has between 1 and 60 minutes to build a cart.
pub const ADMISSION_WINDOW_MIN_MS: u64 = MINUTE_MS;
/// See [`ADMISSION_WINDOW_MIN_MS`].
pub const ADMISSION_WINDOW_MAX_MS: u64 = 60 * MINUTE_MS;
/// Prices stop at R$ 100 million, so a total of any cart fits a `u64`.
pub const MAX_PRICE_CENTS: u64 = 10_000_000_000;

/// A kind of ticket: name, price and how many exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketType {
    /// Shown to fans ("Pista", "Camarote").
    pub name: String,
    /// Price in centavos (BRL).
    pub price_cents: u64,
    /// How many tickets of this type exist in total.
    pub capacity: u32,
}

/// When the queue and the sale open and close, in milliseconds since the Unix
/// epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Joining the queue is allowed from here; everyone who joins before
    /// `opens_at_ms` is shuffled at opening. Equal to `opens_at_ms` for no
    /// pre-queue.
    pub prequeue_opens_at_ms: u64,
    /// The pre-queue is shuffled and admission starts.
    pub opens_at_ms: u64,
    /// No more joins, admissions or additions to carts; holds made before may
    /// still be paid until they expire.
    pub closes_at_ms: u64,
}

impl Schedule {
    /// A schedule with the default pre-queue of 30 minutes before opening.
    pub fn with_default_prequeue(opens_at_ms: u64, closes_at_ms: u64) -> Schedule {
        Schedule {
            prequeue_opens_at_ms: opens_at_ms.saturating_sub(30 * MINUTE_MS),
            opens_at_ms,
            closes_at_ms,
        }
    }

    /// Checks the order of the three instants.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.prequeue_opens_at_ms > self.opens_at_ms || self.opens_at_ms >= self.closes_at_ms {
            return Err(ConfigError::ScheduleOutOfOrder);
        }
        Ok(())
    }
}

/// The knobs of a drop. All may change during the sale except that limits
/// may only grow once it is open (so nobody is ever over a limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Admission stops while this many customers are shopping.
    pub max_active: u32,
    /// At most this many customers are admitted per second (a token bucket
    /// with one second of burst).
    pub admit_per_second: u32,
    /// How long an admitted customer may take to build a cart.
    pub admission_window_ms: u64,
    /// How long a hold lasts from its first item; later additions do not
    /// extend it.
    pub hold_ttl_ms: u64,
    /// Tickets one customer may hold and own in this event, all types and
    /// orders together.
    pub per_event_limit: u16,
    /// Tickets of each type one customer may hold and own, across orders.
    pub per_type_limits: TypeCounts,
    /// The queue refuses joins beyond this many entries, so memory stays
    /// bounded whatever arrives (1 M entries take about 45 MiB).
    pub max_queue_len: u32,
}

impl Default for Policy {
    /// The defaults of DESIGN.md: 2 000 active, 500 admissions/s, 10-minute
    /// window, 8-minute holds, 4 tickets per customer.
    fn default() -> Policy {
        let mut per_type_limits = TypeCounts::ZERO;
        for t in 0..MAX_TICKET_TYPES {
            per_type_limits.set(t, 4);
        }
        Policy {
            max_active: 2_000,
            admit_per_second: 500,
            admission_window_ms: 10 * MINUTE_MS,
            hold_ttl_ms: 8 * MINUTE_MS,
            per_event_limit: 4,
            per_type_limits,
            max_queue_len: 2_000_000,
        }
    }
}

impl Policy {
    /// Checks every bound for an event with `type_count` ticket types.
    pub fn validate(&self, type_count: usize) -> Result<(), ConfigError> {
        if self.max_active == 0 {
            return Err(ConfigError::ZeroMaxActive);
        }
        if self.admit_per_second == 0 {
            return Err(ConfigError::ZeroAdmissionRate);
        }
        if !(ADMISSION_WINDOW_MIN_MS..=ADMISSION_WINDOW_MAX_MS).contains(&self.admission_window_ms)
        {
            return Err(ConfigError::AdmissionWindowOutOfRange);
        }
        if !(HOLD_TTL_MIN_MS..=HOLD_TTL_MAX_MS).contains(&self.hold_ttl_ms) {
            return Err(ConfigError::HoldTtlOutOfRange);
        }
        if self.per_event_limit == 0 || (0..type_count).any(|t| self.per_type_limits.at(t) == 0) {
            return Err(ConfigError::ZeroLimit);
        }
        if self.max_queue_len == 0 {
            return Err(ConfigError::ZeroQueueLength);
        }
        Ok(())
    }

    /// The first limit that `self` lowers compared with `before`, if any.
    pub fn shrinks_limits_of(&self, before: &Policy, type_count: usize) -> bool {
        self.per_event_limit < before.per_event_limit
            || (0..type_count).any(|t| self.per_type_limits.at(t) < before.per_type_limits.at(t))
    }
}

/// Everything the allocator needs to know about one event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventConfig {
    /// Shown to fans.
    pub name: String,
    /// Where the show happens.
    pub venue: String,
    /// When the show starts (ms since the epoch); informational.
    pub starts_at_ms: u64,
    /// What is for sale; a type's id is its index here.
    pub ticket_types: Vec<TicketType>,
    /// When the queue and sale open and close.
    pub schedule: Schedule,
    /// The knobs of the drop.
    pub policy: Policy,
    /// Keys the pre-queue shuffle. Generated from the operating system's
    /// random source when the event is created, never shown to fans before
    /// opening (so nobody can predict the order), and logged so replay is
    /// exact and the draw can be audited afterwards.
    pub shuffle_seed: u64,
}

impl EventConfig {
    /// Checks the whole configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        if self.ticket_types.is_empty() {
            return Err(ConfigError::NoTicketTypes);
        }
        if self.ticket_types.len() > MAX_TICKET_TYPES {
            return Err(ConfigError::TooManyTicketTypes);
        }
        for ticket_type in &self.ticket_types {
            if ticket_type.name.trim().is_empty() {
                return Err(ConfigError::EmptyName);
            }
            if ticket_type.capacity == 0 {
                return Err(ConfigError::ZeroCapacity);
            }
            if ticket_type.price_cents > MAX_PRICE_CENTS {
                return Err(ConfigError::PriceTooHigh);
            }
        }
        self.schedule.validate()?;
        self.policy.validate(self.ticket_types.len())
    }

    /// Total tickets across all types.
    pub fn total_capacity(&self) -> u64 {
        self.ticket_types
            .iter()
            .map(|t| u64::from(t.capacity))
            .sum()
    }
}

/// Why a configuration, policy or schedule was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfigError {
    /// The event or a ticket type has no name.
    EmptyName,
    /// An event must sell at least one ticket type.
    NoTicketTypes,
    /// More than [`MAX_TICKET_TYPES`] ticket types.
    TooManyTicketTypes,
    /// A ticket type with no tickets.
    ZeroCapacity,
    /// A price above [`MAX_PRICE_CENTS`].
    PriceTooHigh,
    /// Not `prequeue_opens_at <= opens_at < closes_at`.
    ScheduleOutOfOrder,
    /// The opening can no longer move: the sale has opened.
    AlreadyOpened,
    /// `max_active` of zero would admit nobody; pause the sale instead.
    ZeroMaxActive,
    /// An admission rate of zero would admit nobody; pause the sale instead.
    ZeroAdmissionRate,
    /// Admission window outside 1–60 minutes.
    AdmissionWindowOutOfRange,
    /// Hold TTL outside 1–30 minutes.
    HoldTtlOutOfRange,
    /// A per-customer limit of zero.
    ZeroLimit,
    /// Once the sale is open, limits may grow but not shrink: shrinking would
    /// put customers who already bought over the limit.
    LimitShrinksDuringSale,
    /// A queue that can hold nobody.
    ZeroQueueLength,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ConfigError::EmptyName => "names must not be empty",
            ConfigError::NoTicketTypes => "an event needs at least one ticket type",
            ConfigError::TooManyTicketTypes => "an event has at most 16 ticket types",
            ConfigError::ZeroCapacity => "a ticket type needs a capacity of at least 1",
            ConfigError::PriceTooHigh => "a price is at most 10 000 000 000 cents",
            ConfigError::ScheduleOutOfOrder => {
                "the schedule must satisfy prequeue_opens_at <= opens_at < closes_at"
            }
            ConfigError::AlreadyOpened => "the sale has opened: its opening can no longer move",
            ConfigError::ZeroMaxActive => "max_active must be at least 1 (pause the sale instead)",
            ConfigError::ZeroAdmissionRate => {
                "admit_per_second must be at least 1 (pause the sale instead)"
            }
            ConfigError::AdmissionWindowOutOfRange => "the admission window must be 1-60 minutes",
            ConfigError::HoldTtlOutOfRange => "the hold TTL must be 1-30 minutes",
            ConfigError::ZeroLimit => "per-customer limits must be at least 1",
            ConfigError::LimitShrinksDuringSale => {
                "limits may grow but not shrink once the sale is open"
            }
            ConfigError::ZeroQueueLength => "max_queue_len must be at least 1",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ConfigError {}
