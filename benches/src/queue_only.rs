//! The event the durability benches load: every join is one logged
//! transition (the pre-queue is open, nobody is ever admitted, the queue
//! takes fifty million), so a count of joins is a count of records.

use ingressoja_engine::{EventConfig, Policy, Schedule, TicketType};

/// See the module documentation; `name` and `venue` label it.
pub fn queue_only_event(name: &str, venue: &str) -> EventConfig {
    EventConfig {
        name: name.into(),
        venue: venue.into(),
        starts_at_ms: u64::MAX / 4,
        ticket_types: vec![TicketType {
            name: "Pista".into(),
            price_cents: 1,
            capacity: 1,
        }],
        schedule: Schedule {
            prequeue_opens_at_ms: 0,
            opens_at_ms: u64::MAX / 8,
            closes_at_ms: u64::MAX / 4,
        },
        policy: Policy {
            max_queue_len: 50_000_000,
            ..Policy::default()
        },
        shuffle_seed: 1,
    }
}
