//! The stress tool against an in-process server: a small drop sells out,
//! every fan waits for its turn on its event stream and leaves when done,
//! and the tool's own verification (stock adds up, no hold left, what the
//! fans bought equals what was sold, nobody over the limit) passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingressoja::http::config::ServerConfig;
use ingressoja::http::limits::LimitsConfig;
use ingressoja_engine::{EventConfig, Policy, Schedule, TicketType};

mod support;

/// 100 tickets over three types, opening in a second.
fn event_config(now: u64) -> EventConfig {
    let ticket = |name: &str, price_cents, capacity| TicketType {
        name: name.into(),
        price_cents,
        capacity,
    };
    EventConfig {
        name: "Stress drop".into(),
        venue: "Loopback".into(),
        starts_at_ms: now + 86_400_000,
        ticket_types: vec![
            ticket("Pista", 25_000, 60),
            ticket("Pista Premium", 45_000, 30),
            ticket("Camarote", 90_000, 10),
        ],
        schedule: Schedule {
            prequeue_opens_at_ms: now,
            opens_at_ms: now + 1_000,
            closes_at_ms: now + 3_600_000,
        },
        policy: Policy {
            max_active: 400,
            admit_per_second: 2_000,
            ..Policy::default()
        },
        shuffle_seed: 5,
    }
}
use ingressoja_stress::{Options, run};

#[test]
fn a_small_drop_sells_out_and_verifies() {
    let off = LimitsConfig {
        reads_per_ip: 0,
        joins_per_ip: 0,
        joins_per_account: 0,
        carts_per_ip: 0,
        carts_per_account: 0,
        // Every virtual fan joins from the one loopback address.
        pow_free_joins_per_address: 0,
        pow_max_extra_bits: 0,
        joins_per_address_per_event: 0,
    };
    let config = ServerConfig {
        development: true,
        limits: off,
        // Every virtual fan connects from this one address.
        max_connections_per_ip: 100_000,
        ..ServerConfig::default()
    };
    let event = event_config(support::now_ms());
    let summary = support::with_server(event, config, |addr, event| async move {
        let options = Options {
            addr,
            fans: 400,
            event,
            spike_seconds: 1,
            concurrency: 400,
            seed: 5,
        };
        run(options, |_| {}).await.unwrap()
    });
    let verification = &summary.json["verification"];
    assert!(summary.consistent, "{}", summary.json);
    assert_eq!(verification["sold"].as_u64(), Some(100), "{}", summary.json);
    let steps = &summary.json["steps"];
    assert!(steps["checkout"]["count"].as_u64().unwrap() > 0);
    // Every fan waited on its own event stream, and left when done.
    assert!(
        steps["stream_open"]["count"].as_u64().unwrap() >= 400,
        "{steps}"
    );
    assert_eq!(
        steps["proof_of_work"]["count"].as_u64(),
        Some(400),
        "{steps}"
    );
    // Admission is paced by the stock: a turn came to those the 100
    // tickets could serve (fans take 1 to 3), the others were told it sold
    // out on their stream.
    let turns = steps["wait_for_turn"]["count"].as_u64().unwrap();
    assert!((34..400).contains(&turns), "{turns} turns: {steps}");
    assert_eq!(steps["leave"]["count"].as_u64(), Some(400), "{steps}");
}
