//! The stress tool against an in-process server: a small drop sells out,
//! every fan waits for its turn on its event stream and leaves when done,
//! and the tool's own verification (stock adds up, no hold left, what the
//! fans bought equals what was sold, nobody over the limit) passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ingressoja::http::config::ServerConfig;
use ingressoja::http::limits::LimitsConfig;
use ingressoja::http::settings::EventSecurity;
use ingressoja::http::{App, serve};
use ingressoja::runtime::{Clock, Runtime, RuntimeOptions, SystemClock};
use ingressoja_engine::{EventConfig, Policy, Schedule, TicketType};

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
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock);
    let runtime = Runtime::start(RuntimeOptions::new(dir.path()), clock.clone()).unwrap();
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
    // The event as an operator would make it for a load test: a small
    // proof of work, no two-factor (virtual fans have no authenticator).
    let now = SystemClock.now_ms();
    let event = runtime.create_event(event_config(now)).unwrap();
    let app = Arc::new(App::new(runtime, config, clock).unwrap());
    app.settings
        .set(
            event,
            EventSecurity {
                pow_difficulty: 8,
                require_two_factor: false,
            },
        )
        .unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let summary = tokio.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async move {
            let _ = stopped.await;
        }));
        let options = Options {
            addr,
            fans: 400,
            event: u64::from(event.0),
            spike_seconds: 1,
            concurrency: 400,
            seed: 5,
        };
        let summary = run(options, |_| {}).await.unwrap();
        let _ = stop.send(());
        let _ = server.await;
        summary
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
