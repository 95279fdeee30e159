//! The event `serve --demo` creates on first start, so a newcomer sees a
//! sale at once: open now, for a week, three ticket types and the
//! meia-entrada of the first (40 % of the tickets, as the law asks), sold
//! to named holders (name and CPF).

use ingressoja_engine::{EventConfig, MINUTE_MS, Policy, Schedule, TicketType};

use super::settings::{EventTerms, HalfPrice};

/// The demo event's terms: holders named, type 3 the meia-entrada of 0.
pub fn demo_terms() -> EventTerms {
    EventTerms {
        holder_required: true,
        half_price: vec![HalfPrice {
            ticket_type: 3,
            of: 0,
        }],
    }
}

/// A demo event whose sale opens at `now_ms`.
pub fn demo_event(now_ms: u64, shuffle_seed: u64) -> EventConfig {
    EventConfig {
        name: "Festival IngressoJá — demo".into(),
        venue: "Estádio do Morumbi, São Paulo".into(),
        starts_at_ms: now_ms + 30 * 24 * 60 * MINUTE_MS,
        ticket_types: vec![
            TicketType {
                name: "Pista".into(),
                price_cents: 25_000,
                capacity: 5_000,
            },
            TicketType {
                name: "Pista Premium".into(),
                price_cents: 45_000,
                capacity: 2_000,
            },
            TicketType {
                name: "Camarote".into(),
                price_cents: 90_000,
                capacity: 500,
            },
            TicketType {
                name: "Pista — meia-entrada".into(),
                price_cents: 12_500,
                capacity: 5_000,
            },
        ],
        schedule: Schedule {
            prequeue_opens_at_ms: now_ms,
            opens_at_ms: now_ms,
            closes_at_ms: now_ms + 7 * 24 * 60 * MINUTE_MS,
        },
        policy: Policy::default(),
        shuffle_seed,
    }
}
