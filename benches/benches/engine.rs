//! Criterion benches of `Engine::apply`, one core, in memory, at drop sizes:
//! one million fans, one hundred thousand tickets. Each reports elements per
//! second, where an element is a transition (or, for admission, an admitted
//! customer: one `Admitted` transition admits many). Commands are built
//! before timing starts; what is timed is what the shard does per batch:
//! prefetch, apply each command, hand the transitions on.
//! Run with `make bench` or `cargo bench -p ingressoja-benches --bench engine`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ingressoja_benches::drop_sim::{OPENS_AT_MS, drop_config, generate};
use ingressoja_engine::{
    Command, CustomerId, Engine, Payment, QueueStatus, TicketTypeId, Transition, TypeCounts,
};

const FANS: u64 = 1_000_000;
const TICKETS: u32 = 100_000;
const SHOPPERS: u64 = 50_000;
/// The shard drains commands in batches of about this many.
const BATCH: usize = 1024;

type Commands = Vec<(u64, Command)>;

fn apply_all(engine: &mut Engine, commands: &[(u64, Command)]) -> u64 {
    apply_batches(engine, commands, true)
}

fn apply_batches(engine: &mut Engine, commands: &[(u64, Command)], prefetch: bool) -> u64 {
    let mut out = Vec::with_capacity(BATCH * 2);
    let mut transitions = 0;
    for batch in commands.chunks(BATCH) {
        if prefetch {
            engine.prefetch(batch.iter().map(|(_, command)| command));
        }
        for &(now, command) in batch {
            let _ = engine.apply(command, now, &mut out);
        }
        transitions += out.len() as u64;
        out.clear();
    }
    transitions
}

fn joins(ids: std::ops::Range<u64>, now: u64) -> Commands {
    ids.map(|id| {
        (
            now,
            Command::Join {
                customer: CustomerId(id),
            },
        )
    })
    .collect()
}

fn add_one(id: u64, now: u64) -> (u64, Command) {
    let items = TypeCounts::single(TicketTypeId(0), 1).unwrap();
    (
        now,
        Command::AddItems {
            customer: CustomerId(id),
            items,
        },
    )
}

fn pay(id: u64, now: u64) -> (u64, Command) {
    let payment = Payment::Approved {
        amount_cents: 25_000,
        payment_ref: id,
    };
    let key = u128::from(id);
    let command = Command::Checkout {
        customer: CustomerId(id),
        payment,
        idempotency_key: key,
        ticket_seed: key << 64 | 0xFEED,
    };
    (now, command)
}

/// A sale with `fans` in the pre-queue, not yet open.
fn queue_of(fans: u64, max_active: u32, admit_per_second: u32) -> Engine {
    queue_with(fans, max_active, admit_per_second, TICKETS)
}

/// The same with `tickets` for sale. These benches time the engine's
/// mechanics, so the stock caps admission as little as it can (1 000%
/// over-admission) and arrivals are placed in order.
fn queue_with(fans: u64, max_active: u32, admit_per_second: u32, tickets: u32) -> Engine {
    let mut config = drop_config(tickets);
    config.policy.max_active = max_active;
    config.policy.admit_per_second = admit_per_second;
    config.policy.overadmit_percent = 1_000;
    config.policy.arrival_window_ms = 0;
    let mut engine = Engine::new(config).unwrap();
    apply_all(&mut engine, &joins(0..fans, OPENS_AT_MS - 1));
    engine
}

/// `SHOPPERS` admitted customers, each holding one Pista ticket if `holding`
/// (60 000 Pista tickets exist, so every add succeeds).
fn shoppers(holding: bool) -> Engine {
    let mut engine = queue_of(SHOPPERS, SHOPPERS as u32, SHOPPERS as u32);
    // Opened, then a second of tokens (no burst at the opening instant).
    apply_all(
        &mut engine,
        &[
            (OPENS_AT_MS, Command::Tick),
            (OPENS_AT_MS + 1_000, Command::Tick),
        ],
    );
    assert_eq!(engine.stats().active, SHOPPERS as u32);
    if holding {
        let adds: Commands = (0..SHOPPERS)
            .map(|id| add_one(id, OPENS_AT_MS + 1))
            .collect();
        apply_all(&mut engine, &adds);
    }
    engine
}

fn bench_join(c: &mut Criterion) {
    let commands = joins(0..FANS, OPENS_AT_MS + 1);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FANS));
    for (name, prefetch) in [
        ("join_1M_fifo", true),
        ("join_1M_fifo_without_prefetch", false),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || queue_of(0, 1, 1),
                |mut engine| {
                    let transitions = apply_batches(&mut engine, &commands, prefetch);
                    (engine, transitions)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn bench_admission(c: &mut Criterion) {
    // 400 000 tickets serve the million at 1 000% over-admission.
    let mut prepared = queue_with(FANS, FANS as u32, 100_000, 400_000);
    apply_all(&mut prepared, &[(OPENS_AT_MS, Command::Tick)]);
    // Ten ticks a second apart after opening, each admitting 100 000 from
    // a shuffled pre-queue of a million.
    let ticks: Commands = (1..=10)
        .map(|s| (OPENS_AT_MS + s * 1_000, Command::Tick))
        .collect();
    let mut check = prepared.clone();
    apply_all(&mut check, &ticks);
    assert_eq!(check.stats().admitted, FANS as u32, "every fan admitted");
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FANS));
    group.bench_function("admit_1M_from_prequeue", |b| {
        b.iter_batched(
            || prepared.clone(),
            |mut engine| {
                let transitions = apply_all(&mut engine, &ticks);
                (engine, transitions)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_carts(c: &mut Criterion) {
    let admitted = shoppers(false);
    let holding = shoppers(true);
    let expiry_at = OPENS_AT_MS + 1 + holding.config().policy.hold_ttl_ms;
    let adds: Commands = (0..SHOPPERS)
        .map(|id| add_one(id, OPENS_AT_MS + 2))
        .collect();
    let payments: Commands = (0..SHOPPERS).map(|id| pay(id, OPENS_AT_MS + 2)).collect();
    let mut group = c.benchmark_group("engine");
    group.sample_size(20);
    group.throughput(Throughput::Elements(SHOPPERS));
    group.bench_function("add_to_cart_50k", |b| {
        b.iter_batched(
            || admitted.clone(),
            |mut engine| {
                let transitions = apply_all(&mut engine, &adds);
                (engine, transitions)
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("checkout_50k", |b| {
        b.iter_batched(
            || holding.clone(),
            |mut engine| {
                let transitions = apply_all(&mut engine, &payments);
                (engine, transitions)
            },
            BatchSize::LargeInput,
        )
    });
    // One tick at the moment 50 000 holds expire together.
    group.bench_function("expire_50k_holds", |b| {
        b.iter_batched(
            || (holding.clone(), Vec::with_capacity(2 * SHOPPERS as usize)),
            |(mut engine, mut out)| {
                engine.apply(Command::Tick, expiry_at, &mut out).unwrap();
                let expired = out
                    .iter()
                    .filter(|t| matches!(t, Transition::HoldExpired { .. }));
                assert_eq!(expired.count() as u64, SHOPPERS);
                (engine, out)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_mixed_drop(c: &mut Criterion) {
    let drop = generate(FANS, TICKETS, 30, 7).unwrap();
    let (engine, transitions) = drop.replay(BATCH).unwrap();
    let stats = engine.stats();
    eprintln!(
        "mixed drop: {} commands, {transitions} transitions, {} sold, {} orders, phase {:?}",
        drop.commands.len(),
        stats.tickets_sold,
        stats.orders,
        stats.phase
    );
    eprintln!(
        "mixed drop, served {}; transitions by kind: {:?}",
        stats.served,
        drop.transition_mix().unwrap()
    );
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(transitions));
    group.bench_function("mixed_drop_1M_fans_100k_tickets", |b| {
        b.iter(|| drop.replay(BATCH).unwrap());
    });
    group.finish();
}

fn bench_status(c: &mut Criterion) {
    let mut engine = queue_of(FANS, 1, 1);
    apply_all(&mut engine, &[(OPENS_AT_MS, Command::Tick)]);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1_000));
    // What every SSE position update asks: a pseudo-random fan's place.
    group.bench_function("queue_status_1k_of_1M", |b| {
        b.iter(|| {
            (0..1_000u64)
                .map(|i| engine.queue_status(CustomerId(i * 999_983 % FANS)))
                .filter(|s| matches!(s, QueueStatus::Waiting { .. }))
                .count()
        })
    });
    group.finish();
}

/// The fixed cost of a command: an idle tick, and joins into a queue small
/// enough to stay in cache (compare with `join_1M_fifo` for the cost of
/// the index's cache misses).
fn bench_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(10_000));
    let ticks: Commands = (0..10_000)
        .map(|i| (OPENS_AT_MS + 1 + i, Command::Tick))
        .collect();
    let mut idle = queue_of(0, 1, 1);
    apply_all(&mut idle, &[(OPENS_AT_MS, Command::Tick)]);
    group.bench_function("tick_idle_10k", |b| {
        b.iter_batched(
            || idle.clone(),
            |mut engine| (apply_all(&mut engine, &ticks), engine),
            BatchSize::SmallInput,
        )
    });
    let small = joins(0..10_000, OPENS_AT_MS + 1);
    group.bench_function("join_10k_in_cache", |b| {
        b.iter_batched(
            || queue_of(0, 1, 1),
            |mut engine| (apply_all(&mut engine, &small), engine),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_overhead,
    bench_join,
    bench_admission,
    bench_carts,
    bench_mixed_drop,
    bench_status
);
criterion_main!(benches);
