//! The allocator of one event: a pure, deterministic state machine.
//!
//! `Engine::apply(command, now_ms, out)` validates a [`Command`] against the
//! state and either rejects it with a [`Rejection`] (a value, not an error)
//! or changes the state through [`Transition`]s, which it appends to `out`.
//! No IO, no clock (time is an argument), no threads, no async: the shard
//! that owns an engine supplies all of that, and replaying the transitions
//! onto a fresh engine rebuilds identical state.
//!
//! # Layout
//! - [`engine`]: `Engine`: apply (advance time, decide, admit), evolve,
//!   replay, next deadline.
//! - [`command`], [`transition`], [`outcome`]: the values that go in and
//!   come out.
//! - [`config`]: event configuration, schedule, policy and their bounds.
//! - [`queue`]: the waiting queue; [`join_index`]: its customer index;
//!   [`shuffle`]: the pre-queue draw.
//! - [`admission`]: the admission-rate token bucket.
//! - [`shoppers`]: admitted customers, holds and their deadlines.
//! - [`inventory`]: stock per ticket type.
//! - [`orders`]: orders, tickets and their codes, what each customer owns.
//! - [`counts`]: `TypeCounts`, a quantity per ticket type.
//! - [`views`]: read-only queries; [`invariants`]: the invariants as code.

pub mod admission;
pub mod command;
pub mod config;
pub mod counts;
pub mod engine;
pub mod ids;
pub mod invariants;
pub mod inventory;
pub mod join_index;
pub mod orders;
pub mod outcome;
pub mod queue;
pub mod shoppers;
pub mod shuffle;
pub mod transition;
pub mod views;

pub use command::{Command, Payment};
pub use config::{ConfigError, EventConfig, MINUTE_MS, Policy, Schedule, TicketType};
pub use counts::{MAX_TICKET_TYPES, TypeCounts};
pub use engine::{Engine, Phase, ReplayError, TransitionError};
pub use ids::{CustomerId, OrderId, TicketId, TicketTypeId};
pub use invariants::InvariantViolation;
pub use inventory::Stock;
pub use orders::{Order, Ticket};
pub use outcome::{Limit, Outcome, Rejection, Reply};
pub use transition::{CloseReason, Transition};
pub use views::{Cart, QueueStatus, Stats};
