//! Durability figures, printed as a table: acknowledged transitions per
//! second through the runtime (engine + group-commit log, fsync per batch),
//! acknowledgement latency at several offered loads, recovery time after ten
//! million logged transitions (log only, and snapshot + tail), and how long
//! the shard pauses to copy its state for a snapshot, and the restart and
//! settlement of payments a crash left in flight. Not criterion: these are
//! latency distributions and one-off timings. Run with
//! `cargo bench --profile release -p ingressoja-benches --bench durable`
//! (`DURABLE_RECOVERY_TRANSITIONS` overrides the ten million;
//! `DURABLE_WINDOWS=64` runs the throughput table for those windows only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ingressoja::runtime::{Applied, EventId, Runtime, RuntimeOptions, SystemClock};
use ingressoja_engine::{Command, CustomerId, EventConfig, Policy, Schedule, TicketType};

/// An event whose queue takes every join (pre-queue open, nobody admitted),
/// so every request is exactly one logged transition.
fn event() -> EventConfig {
    ingressoja_benches::queue_only::queue_only_event("Durable Bench", "Disk")
}

fn start(dir: &std::path::Path, snapshot_every: u64) -> Runtime {
    let mut options = RuntimeOptions::new(dir);
    options.snapshot_every_records = snapshot_every;
    options.snapshot_every_ms = u64::MAX / 2;
    options.queue_capacity = 1 << 20;
    Runtime::start(options, Arc::new(SystemClock)).unwrap()
}

type Reply = ingressoja::runtime::Pending<Applied>;

/// Joins `count` fans from `first` on, `window` requests in flight; returns
/// the elapsed time.
fn closed_loop(
    runtime: &Runtime,
    event: EventId,
    first: u64,
    count: u64,
    window: usize,
) -> Duration {
    let started = Instant::now();
    let mut in_flight: VecDeque<Reply> = VecDeque::with_capacity(window);
    for id in first..first + count {
        if in_flight.len() == window {
            let reply = in_flight.pop_front().unwrap();
            reply.wait().unwrap();
        }
        in_flight.push_back(
            runtime
                .submit(
                    event,
                    Command::Join {
                        customer: CustomerId(id),
                    },
                    None,
                )
                .unwrap(),
        );
    }
    for reply in in_flight {
        reply.wait().unwrap();
    }
    started.elapsed()
}

fn throughput(dir: &std::path::Path) {
    let runtime = start(dir, u64::MAX);
    let event = runtime
        .create_event(event())
        .and_then(|pending| pending.wait())
        .unwrap();
    println!("\n## Acknowledged throughput (closed loop, one event, joins)");
    println!("| in flight | transitions | seconds | acknowledged/s | records per fsync |");
    println!("| --- | --- | --- | --- | --- |");
    let mut next = 0;
    // `DURABLE_WINDOWS=64,1024` runs only those (quick A/B rounds).
    let windows: Vec<usize> = std::env::var("DURABLE_WINDOWS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|w| w.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![64, 1_024, 16_384, 65_536]);
    for window in windows {
        let count = 400_000;
        let before = runtime.stats();
        let elapsed = closed_loop(&runtime, event, next, count, window);
        next += count;
        let after = runtime.stats();
        let batches = (after.batches_written - before.batches_written).max(1);
        println!(
            "| {window} | {count} | {:.2} | {:.0} | {:.0} |",
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64(),
            (after.records_written - before.records_written) as f64 / batches as f64
        );
    }
}

fn latency(dir: &std::path::Path) {
    let runtime = Arc::new(start(dir, u64::MAX));
    let event = runtime
        .create_event(event())
        .and_then(|pending| pending.wait())
        .unwrap();
    println!("\n## Acknowledgement latency at offered loads (open loop, 3 s each)");
    println!("| offered/s | achieved/s | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut next = 0u64;
    for rate in [10_000u64, 50_000, 100_000, 200_000] {
        let seconds = 3;
        let total = rate * seconds;
        let (sender, receiver) = crossbeam_channel::unbounded::<(Instant, Reply)>();
        let collector = std::thread::spawn(move || {
            let mut histogram = Histogram::<u64>::new(3).unwrap();
            for (sent, reply) in receiver {
                reply.wait().unwrap();
                histogram.record(sent.elapsed().as_micros() as u64).unwrap();
            }
            histogram
        });
        let started = Instant::now();
        for i in 0..total {
            // Pace: request i goes at i / rate seconds.
            let due = started + Duration::from_nanos(i * 1_000_000_000 / rate);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let sent = Instant::now();
            let reply = runtime
                .submit(
                    event,
                    Command::Join {
                        customer: CustomerId(next),
                    },
                    None,
                )
                .unwrap();
            next += 1;
            sender.send((sent, reply)).unwrap();
        }
        drop(sender);
        let histogram = collector.join().unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "| {rate} | {:.0} | {} | {} | {} | {} |",
            total as f64 / elapsed,
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
            histogram.max()
        );
    }
}

fn recovery(dir: &std::path::Path) {
    let transitions: u64 = std::env::var("DURABLE_RECOVERY_TRANSITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let log_only = dir.join("log-only");
    let with_snapshot = dir.join("with-snapshot");
    println!(
        "\n## Recovery after {transitions} logged transitions (one event, {transitions} queued fans)"
    );
    for (path, snapshot_every) in [(&log_only, u64::MAX), (&with_snapshot, 1_000_000)] {
        let runtime = start(path, snapshot_every);
        let event = runtime
            .create_event(event())
            .and_then(|pending| pending.wait())
            .unwrap();
        let write = closed_loop(&runtime, event, 0, transitions, 16_384);
        if snapshot_every != u64::MAX {
            // One more, on request, to time the copy of the full state.
            runtime
                .snapshot()
                .and_then(|pending| pending.wait())
                .unwrap();
            let paused_us = runtime.stats().last_snapshot_pause_us;
            println!(
                "- snapshot pause (shard copying its state, {transitions} fans queued): {:.1} ms",
                paused_us as f64 / 1000.0
            );
        }
        runtime.shutdown();
        let started = Instant::now();
        let recovered = start(path, snapshot_every);
        let elapsed = started.elapsed();
        let report = recovered.recovery().clone();
        println!(
            "- {}: written in {:.1} s; serving again after {:.2} s (snapshot at {:?}, {} records replayed)",
            if snapshot_every == u64::MAX {
                "log only"
            } else {
                "snapshot every 1 M"
            },
            write.as_secs_f64(),
            elapsed.as_secs_f64(),
            report.snapshot_seq,
            report.replayed
        );
        recovered.shutdown();
    }
}

/// An open event where every fan is admitted at once and may hold a ticket.
fn open_event(now_ms: u64) -> EventConfig {
    EventConfig {
        name: "Settlement Bench".into(),
        venue: "Disk".into(),
        starts_at_ms: now_ms + 3_600_000,
        ticket_types: vec![TicketType {
            name: "Pista".into(),
            price_cents: 100,
            capacity: 1_000_000,
        }],
        schedule: Schedule {
            prequeue_opens_at_ms: now_ms,
            opens_at_ms: now_ms,
            closes_at_ms: now_ms + 3_600_000,
        },
        policy: Policy {
            max_active: 1_000_000,
            admit_per_second: 1_000_000,
            max_queue_len: 1_000_000,
            ..Policy::default()
        },
        shuffle_seed: 1,
    }
}

/// Payments left in flight by a crash after the charge: N fans each hold
/// a ticket and their payment is logged as started and authorized at the
/// sandbox gateway, then the process stops. Times the restart (recovery)
/// and the settlement sweep that places and captures every order.
fn settlement(dir: &std::path::Path) {
    use ingressoja::payments::gateway::PaymentGateway;
    use ingressoja::payments::sandbox::{SandboxGateway, ledger_dir};
    use ingressoja::runtime::{ManualClock, PendingPayment};
    let payments: u64 = std::env::var("DURABLE_SETTLE_PAYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let now = 1_800_000_000_000;
    let clock = Arc::new(ManualClock::at(now));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let options = || {
        let mut options = RuntimeOptions::new(dir);
        options.queue_capacity = 1 << 20;
        options
    };
    let runtime = Runtime::start(options(), clock.clone()).unwrap();
    let event = runtime
        .create_event(open_event(now))
        .and_then(|pending| pending.wait())
        .unwrap();
    let one = ingressoja_engine::TypeCounts::single(ingressoja_engine::TicketTypeId(0), 1).unwrap();
    let gateway = SandboxGateway::open(&ledger_dir(dir)).unwrap();
    for id in 1..=payments {
        let customer = CustomerId(id);
        runtime
            .submit(event, Command::Join { customer }, None)
            .and_then(|pending| pending.wait())
            .unwrap();
    }
    clock.set(now + 10_000);
    runtime
        .submit(event, Command::Tick, None)
        .and_then(|pending| pending.wait())
        .unwrap();
    for id in 1..=payments {
        let customer = CustomerId(id);
        let held = runtime
            .submit(
                event,
                Command::AddItems {
                    customer,
                    items: one,
                },
                None,
            )
            .and_then(|pending| pending.wait())
            .unwrap();
        assert!(held.outcome.is_ok(), "{held:?}");
        let payment = PendingPayment {
            event,
            customer,
            payment_ref: id,
            amount_cents: 100,
            idempotency_key: u128::from(id),
            started_at_ms: 0,
        };
        tokio
            .block_on(runtime.start_payment(payment, None).unwrap())
            .unwrap();
        tokio
            .block_on(gateway.authorize(id, "4242424242424242", 100))
            .unwrap();
    }
    runtime.shutdown();
    let started = Instant::now();
    let recovered = Runtime::start(options(), clock.clone()).unwrap();
    let ready = started.elapsed();
    let started = Instant::now();
    let report = tokio
        .block_on(ingressoja::payments::settle::sweep(
            &recovered,
            &gateway,
            now + 20_000,
            now + 20_000,
        ))
        .unwrap();
    let swept = started.elapsed();
    println!(
        "\n## Restart with {payments} payments charged but not yet ordered\n\
         - serving again after {:.1} ms ({} records replayed)\n\
         - settlement sweep: {:.2} s ({:.0} payments/s): {} captured into orders, {} given back, {} left",
        ready.as_secs_f64() * 1000.0,
        recovered.recovery().replayed,
        swept.as_secs_f64(),
        payments as f64 / swept.as_secs_f64(),
        report.captured,
        report.given_back,
        report.left
    );
    recovered.shutdown();
}

fn main() {
    // criterion's harness passes flags like --bench; a filter argument other
    // than flags selects sections.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let dir = tempfile::tempdir().unwrap();
    if wanted("throughput") {
        throughput(&dir.path().join("throughput"));
    }
    if wanted("latency") {
        latency(&dir.path().join("latency"));
    }
    if wanted("recovery") {
        recovery(dir.path());
    }
    if wanted("settlement") {
        settlement(&dir.path().join("settlement"));
    }
}
