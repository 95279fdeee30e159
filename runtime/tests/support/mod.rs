//! What the runtime's tests share: a fixed clock reading and an event open
//! at it.
#![allow(dead_code)]

use ingressoja_engine::{
    Command, CustomerId, EventConfig, MINUTE_MS, Policy, Schedule, TicketType,
};
use ingressoja_runtime::{Applied, EventId, Runtime, RuntimeError};

/// The tests' "now" (2027-01-15), on a manual clock.
pub const NOW: u64 = 1_800_000_000_000;

/// An event opened a second before `NOW` (no pre-queue draw pending, its
/// tokens saved, so a fan who joins at `NOW` is admitted at once), for an
/// hour, the default policy with arrivals in strict order (the clock of
/// these tests never moves on its own to an arrival window's draw).
pub fn runtime_event(name: &str) -> EventConfig {
    EventConfig {
        name: name.into(),
        venue: "Loopback Arena".into(),
        starts_at_ms: NOW + 60 * MINUTE_MS,
        ticket_types: vec![TicketType {
            name: "Pista".into(),
            price_cents: 10_000,
            capacity: 100,
        }],
        schedule: Schedule::with_default_prequeue(NOW - 1_000, NOW + 60 * MINUTE_MS),
        policy: Policy {
            arrival_window_ms: 0,
            ..Policy::default()
        },
        shuffle_seed: 99,
    }
}

/// Customer `id` joins `event`; the durable outcome.
pub fn join(runtime: &Runtime, event: EventId, id: u64) -> Result<Applied, RuntimeError> {
    runtime
        .submit(
            event,
            Command::Join {
                customer: CustomerId(id),
            },
            None,
        )
        .and_then(|pending| pending.wait())
}
