//! A whole drop through HAProxy in front of three nodes (issue 14): the
//! stress tool's fans (sessions, joins, their own event streams, holds,
//! payments, declined cards, abandoned carts) reach the nodes only through
//! the balancer, and the leader is SIGKILLed mid-drop and started again on
//! its data. The fans' client retries what is safe to send again (reads,
//! joins, leaving, a checkout by its idempotency key) and reopens broken
//! streams, as the pages do. At the end the books must balance through the
//! API: available + held + sold = capacity, nothing held, the tickets the
//! fans were told they bought equal the tickets sold (no acknowledged
//! purchase lost, none made twice), and nobody over the limit; every node
//! holds the same figures. The drop's figures are printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod support;
use support::cluster::{Cluster, Conn, DEADLINE, create_event, fans};

/// Virtual fans in the drop.
const FANS: u64 = 400;

/// Tickets sold so far, as `addr` reports them.
fn sold(addr: &str) -> Option<u64> {
    let (status, event, _) = Conn::open(addr)
        .ok()?
        .call("GET", "/api/events/0", None, None)
        .ok()?;
    if status != 200 {
        return None;
    }
    let types = event["ticket_types"].as_array()?;
    Some(types.iter().filter_map(|t| t["sold"].as_u64()).sum())
}

/// Waits until `holds` does, or the drop ended (`done`).
fn until(what: &str, done: &AtomicU64, holds: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !holds() && done.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_drop_through_haproxy_survives_the_leader_killed_and_restarted() {
    let mut cluster = Cluster::start(3);
    create_event(&cluster);
    let probe = fans(&cluster, 1).remove(0);
    let balancer = cluster.balancer();

    let options = ingressoja_stress::Options {
        addr: balancer.addr.clone(),
        fans: FANS,
        event: 0,
        spike_seconds: 2,
        concurrency: 200,
        seed: 14,
    };
    let finished = Arc::new(AtomicU64::new(0));
    let ended = finished.clone();
    let running = std::thread::spawn(move || {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let summary = tokio.block_on(ingressoja_stress::run(options, |_| {}));
        ended.store(1, Ordering::Relaxed);
        summary
    });

    // Mid-drop: the leader dies with sales under way ...
    let front = balancer.addr.clone();
    until("sales under way", &finished, || {
        sold(&front).is_some_and(|s| s >= 20)
    });
    let leader = cluster.leader(&probe);
    let sold_at_kill = sold(&front).unwrap_or(0);
    let killed = Instant::now();
    drop(cluster.nodes[leader].process.take());
    // ... the sale goes on without it, through the balancer ...
    until("sales after the kill", &finished, || {
        sold(&front).is_some_and(|s| s >= sold_at_kill + 20)
    });
    let recovered = killed.elapsed();
    // ... and it comes back on its data and catches up.
    cluster.spawn(leader);

    let summary = running.join().unwrap().expect("the drop ran");
    println!(
        "drop through HAProxy, leader (node {}) SIGKILLed at {sold_at_kill} tickets sold, \
         selling again {recovered:?} later, restarted:\n{}",
        leader + 1,
        serde_json::to_string_pretty(&summary.json).unwrap()
    );
    assert!(summary.consistent, "the books do not balance");
    let codes = summary.json["responses_by_error_code"].as_object().unwrap();
    assert!(
        codes.keys().all(|code| !code.starts_with("broken")),
        "a fan's journey broke: {codes:?}"
    );

    // Every node, the restarted one included, ends with the same figures.
    let expected = summary.json["verification"]["sold"].as_u64();
    for addr in cluster.addrs() {
        let deadline = Instant::now() + DEADLINE;
        while sold(&addr) != expected {
            assert!(Instant::now() < deadline, "{addr} disagrees");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
