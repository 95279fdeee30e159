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
/// Over-admission runs from 100% (exactly the shoppers the unsold stock
/// serves at the limit) to 1 000%.
pub const OVERADMIT_PERCENT_RANGE: std::ops::RangeInclusive<u16> = 100..=1_000;
/// Arrival windows last at most five minutes (0 keeps strict arrival order).
pub const ARRIVAL_WINDOW_MAX_MS: u64 = 5 * MINUTE_MS;
/// A shopper becomes idle after 10 seconds to 60 minutes holding nothing.
pub const IDLE_AFTER_RANGE_MS: std::ops::RangeInclusive<u64> = 10_000..=60 * MINUTE_MS;
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
///
/// The serialized form is part of the log (event creation, policy changes):
/// a new field means a new wire form, with the old one kept in
/// [`PolicyV1`] so that logs written before still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Admission stops while this many customers are shopping.
    pub max_active: u32,
    /// At most this many customers are admitted per second (a token bucket
    /// that starts empty at opening and holds at most one second's worth).
    pub admit_per_second: u32,
    /// Admission also stops while the shoppers reach what the unsold stock
    /// can serve: `unsold × overadmit_percent / 100 / take`, `take` being
    /// the most one customer may buy. At 100 the shoppers can never outnumber
    /// the stock, so the order of the draw decides who buys; above it, a few
    /// more are let in to cover shoppers who leave without buying (a later
    /// fan then races an earlier one for the last tickets). See
    /// ARCHITECTURE.md, "Fair admission".
    pub overadmit_percent: u16,
    /// Fans who join after opening are drawn uniformly among those who
    /// joined in the same window of this many milliseconds (windows counted
    /// from the opening, served in order), as the pre-queue is drawn at
    /// opening: a faster connection buys nothing inside a window. 0 keeps
    /// strict arrival order.
    pub arrival_window_ms: u64,
    /// A shopper holding nothing this long after admission (or whose hold
    /// ends after that) stops counting against the stock: the next in line
    /// comes in. They keep their turn and count again if they hold. Covers
    /// fans who closed the page without leaving, so a stock-paced sale does
    /// not wait the whole admission window for them.
    pub idle_after_ms: u64,
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
    /// The defaults of DESIGN.md (2 000 active, 500 admissions/s, 10-minute
    /// window, 8-minute holds, 4 tickets per customer) and the fairness
    /// defaults measured for issue 11 (ARCHITECTURE.md, "Fair admission"):
    /// no over-admission, 10-second arrival windows.
    fn default() -> Policy {
        let mut per_type_limits = TypeCounts::ZERO;
        for t in 0..MAX_TICKET_TYPES {
            per_type_limits.set(t, 4);
        }
        Policy {
            max_active: 2_000,
            admit_per_second: 500,
            overadmit_percent: 100,
            arrival_window_ms: 10_000,
            idle_after_ms: MINUTE_MS,
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
        if !OVERADMIT_PERCENT_RANGE.contains(&self.overadmit_percent) {
            return Err(ConfigError::OveradmitOutOfRange);
        }
        if self.arrival_window_ms > ARRIVAL_WINDOW_MAX_MS {
            return Err(ConfigError::ArrivalWindowOutOfRange);
        }
        if !IDLE_AFTER_RANGE_MS.contains(&self.idle_after_ms) {
            return Err(ConfigError::IdleAfterOutOfRange);
        }
        Ok(())
    }

    /// The most one customer may buy in an event with `type_count` types:
    /// the per-event limit, or less when the per-type limits add up to less.
    pub fn take(&self, type_count: usize) -> u32 {
        let per_types: u32 = (0..type_count)
            .map(|t| u32::from(self.per_type_limits.at(t)))
            .sum();
        u32::from(self.per_event_limit).min(per_types).max(1)
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
    /// Over-admission outside 100-1 000%.
    OveradmitOutOfRange,
    /// An arrival window over five minutes.
    ArrivalWindowOutOfRange,
    /// An idle time outside 10 seconds to 60 minutes.
    IdleAfterOutOfRange,
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
            ConfigError::OveradmitOutOfRange => "overadmit_percent must be 100-1000",
            ConfigError::ArrivalWindowOutOfRange => {
                "arrival_window_ms must be 0-300000 (0 keeps arrival order)"
            }
            ConfigError::IdleAfterOutOfRange => "idle_after_ms must be 10000-3600000",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ConfigError {}

/// The wire form of [`Policy`] before over-admission and arrival windows
/// (issue 11), as logs written before hold it. Read only: events created
/// from it keep strict arrival order after opening (their fans were told
/// so) and get the default over-admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyV1 {
    /// See [`Policy::max_active`].
    pub max_active: u32,
    /// See [`Policy::admit_per_second`].
    pub admit_per_second: u32,
    /// See [`Policy::admission_window_ms`].
    pub admission_window_ms: u64,
    /// See [`Policy::hold_ttl_ms`].
    pub hold_ttl_ms: u64,
    /// See [`Policy::per_event_limit`].
    pub per_event_limit: u16,
    /// See [`Policy::per_type_limits`].
    pub per_type_limits: TypeCounts,
    /// See [`Policy::max_queue_len`].
    pub max_queue_len: u32,
}

impl From<PolicyV1> for Policy {
    fn from(old: PolicyV1) -> Policy {
        Policy {
            max_active: old.max_active,
            admit_per_second: old.admit_per_second,
            overadmit_percent: Policy::default().overadmit_percent,
            arrival_window_ms: 0,
            idle_after_ms: Policy::default().idle_after_ms,
            admission_window_ms: old.admission_window_ms,
            hold_ttl_ms: old.hold_ttl_ms,
            per_event_limit: old.per_event_limit,
            per_type_limits: old.per_type_limits,
            max_queue_len: old.max_queue_len,
        }
    }
}

/// The wire form of [`EventConfig`] with a [`PolicyV1`]: logs written before
/// issue 11 hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventConfigV1 {
    /// See [`EventConfig::name`].
    pub name: String,
    /// See [`EventConfig::venue`].
    pub venue: String,
    /// See [`EventConfig::starts_at_ms`].
    pub starts_at_ms: u64,
    /// See [`EventConfig::ticket_types`].
    pub ticket_types: Vec<TicketType>,
    /// See [`EventConfig::schedule`].
    pub schedule: Schedule,
    /// The old policy.
    pub policy: PolicyV1,
    /// See [`EventConfig::shuffle_seed`].
    pub shuffle_seed: u64,
}

impl From<EventConfigV1> for EventConfig {
    fn from(old: EventConfigV1) -> EventConfig {
        EventConfig {
            name: old.name,
            venue: old.venue,
            starts_at_ms: old.starts_at_ms,
            ticket_types: old.ticket_types,
            schedule: old.schedule,
            policy: old.policy.into(),
            shuffle_seed: old.shuffle_seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes written by the code before issue 11 (commit 015270e): an
    /// event configuration as logged at creation.
    const CONFIG_BEFORE_ISSUE_11: &str = "0453686f77054172656e61c096b10201055069737461a8c301ac02e807d00fc0a8a5049601f403c0cf2480a61d020404040404040404040404040404040480897aeeff8306";

    #[test]
    fn a_configuration_logged_before_arrival_windows_still_reads() {
        let old: EventConfigV1 = postcard::from_bytes(&unhex(CONFIG_BEFORE_ISSUE_11)).unwrap();
        let config = EventConfig::from(old);
        assert_eq!(config.name, "Show");
        assert_eq!(config.ticket_types[0].capacity, 300);
        assert_eq!(config.schedule.opens_at_ms, 2_000);
        assert_eq!(config.policy.max_active, 150);
        assert_eq!(config.policy.per_event_limit, 2);
        assert_eq!(config.policy.arrival_window_ms, 0, "old events keep FIFO");
        assert_eq!(config.shuffle_seed, 0xC0FFEE);
        config.validate().unwrap();
    }

    #[test]
    fn take_is_the_smaller_of_the_event_and_summed_type_limits() {
        let mut policy = Policy {
            per_event_limit: 6,
            ..Policy::default()
        };
        assert_eq!(policy.take(1), 4);
        assert_eq!(policy.take(2), 6);
        policy.per_event_limit = 2;
        assert_eq!(policy.take(3), 2);
    }
}
