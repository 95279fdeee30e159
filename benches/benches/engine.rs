//! Criterion benches of `Engine::apply`, one core, in memory, at drop sizes:
//! one million fans, one hundred thousand tickets. Each reports elements per
//! second, where an element is a transition (or, for admission, an admitted
//! customer: one `Admitted` transition admits many). Run with
//! `make bench` or `cargo bench -p ingressoja-benches --bench engine`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ingressoja_benches::drop_sim::{OPENS_AT_MS, drop_config, generate};
use ingressoja_engine::{
    Command, CustomerId, Engine, Payment, TicketTypeId, Transition, TypeCounts,
};

const FANS: u64 = 1_000_000;
const TICKETS: u32 = 100_000;
const SHOPPERS: u64 = 50_000;
/// The shard hands transitions to the log writer in batches of about this many
/// commands; the buffer is reused between batches.
const BATCH: usize = 1024;

fn apply_all(engine: &mut Engine, commands: impl Iterator<Item = (u64, Command)>) -> u64 {
    let mut out = Vec::with_capacity(BATCH * 2);
    let mut transitions = 0;
    for (i, (now, command)) in commands.enumerate() {
        let _ = engine.apply(command, now, &mut out);
        if i % BATCH == BATCH - 1 {
            transitions += out.len() as u64;
            out.clear();
        }
    }
    transitions + out.len() as u64
}

fn join(id: u64) -> Command {
    Command::Join {
        customer: CustomerId(id),
    }
}

/// An open sale with `fans` waiting and nobody admitted yet.
fn queue_of(fans: u64, max_active: u32, admit_per_second: u32) -> Engine {
    let mut config = drop_config(TICKETS);
    config.policy.max_active = max_active;
    config.policy.admit_per_second = admit_per_second;
    config.policy.per_event_limit = 8;
    let mut engine = Engine::new(config).unwrap();
    apply_all(&mut engine, (0..fans).map(|id| (OPENS_AT_MS - 1, join(id))));
    engine
}

/// `SHOPPERS` admitted customers, each holding two Pista tickets if `holding`.
fn shoppers(holding: bool) -> Engine {
    let mut engine = queue_of(SHOPPERS, SHOPPERS as u32, SHOPPERS as u32);
    apply_all(&mut engine, std::iter::once((OPENS_AT_MS, Command::Tick)));
    assert_eq!(engine.stats().active, SHOPPERS as u32);
    if holding {
        apply_all(
            &mut engine,
            (0..SHOPPERS).map(|id| (OPENS_AT_MS + 1, add_two(id))),
        );
    }
    engine
}

fn add_two(id: u64) -> Command {
    let items = TypeCounts::single(TicketTypeId(0), 2).unwrap();
    Command::AddItems {
        customer: CustomerId(id),
        items,
    }
}

fn bench_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FANS));
    group.bench_function("join_1M_fifo", |b| {
        b.iter_batched(
            || queue_of(0, 1, 1),
            |mut engine| apply_all(&mut engine, (0..FANS).map(|id| (OPENS_AT_MS + 1, join(id)))),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_admission(c: &mut Criterion) {
    let prepared = queue_of(FANS, FANS as u32, 100_000);
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FANS));
    // Ten ticks a second apart, each admitting 100 000 from a shuffled
    // pre-queue of a million.
    group.bench_function("admit_1M_from_prequeue", |b| {
        b.iter_batched(
            || prepared.clone(),
            |mut engine| {
                apply_all(
                    &mut engine,
                    (0..10).map(|s| (OPENS_AT_MS + s * 1_000, Command::Tick)),
                )
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
    let mut group = c.benchmark_group("engine");
    group.sample_size(20);
    group.throughput(Throughput::Elements(SHOPPERS));
    group.bench_function("add_to_cart_50k", |b| {
        b.iter_batched(
            || admitted.clone(),
            |mut engine| {
                apply_all(
                    &mut engine,
                    (0..SHOPPERS).map(|id| (OPENS_AT_MS + 2, add_two(id))),
                )
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("checkout_50k", |b| {
        b.iter_batched(
            || holding.clone(),
            |mut engine| {
                let pay = |id: u64| Command::Checkout {
                    customer: CustomerId(id),
                    payment: Payment::Approved {
                        amount_cents: 50_000,
                        payment_ref: id,
                    },
                    idempotency_key: u128::from(id),
                    ticket_seed: u128::from(id) << 64 | 0xFEED,
                };
                apply_all(
                    &mut engine,
                    (0..SHOPPERS).map(|id| (OPENS_AT_MS + 2, pay(id))),
                )
            },
            BatchSize::LargeInput,
        )
    });
    // One tick at the moment 50 000 holds expire together.
    group.bench_function("expire_50k_holds", |b| {
        b.iter_batched(
            || holding.clone(),
            |mut engine| {
                let mut out = Vec::with_capacity(2 * SHOPPERS as usize);
                engine.apply(Command::Tick, expiry_at, &mut out).unwrap();
                let expired = out
                    .iter()
                    .filter(|t| matches!(t, Transition::HoldExpired { .. }))
                    .count();
                assert_eq!(expired as u64, SHOPPERS);
                out.len()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_mixed_drop(c: &mut Criterion) {
    let drop = generate(FANS, TICKETS, 30, 7);
    let (engine, transitions) = drop.replay(BATCH);
    let stats = engine.stats();
    eprintln!(
        "mixed drop: {} commands, {transitions} transitions, {} sold, {} orders, phase {:?}",
        drop.commands.len(),
        stats.tickets_sold,
        stats.orders,
        stats.phase
    );
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(transitions));
    group.bench_function("mixed_drop_1M_fans_100k_tickets", |b| {
        b.iter(|| drop.replay(BATCH).1);
    });
    group.finish();
}

fn bench_status(c: &mut Criterion) {
    let mut engine = queue_of(FANS, 1, 1);
    apply_all(&mut engine, std::iter::once((OPENS_AT_MS, Command::Tick)));
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1_000));
    // What every SSE position update asks: a pseudo-random fan's place.
    group.bench_function("queue_status_1k_of_1M", |b| {
        b.iter(|| {
            (0..1_000u64)
                .map(|i| engine.queue_status(CustomerId(i * 999_983 % FANS)))
                .filter(|s| matches!(s, ingressoja_engine::QueueStatus::Waiting { .. }))
                .count()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_join,
    bench_admission,
    bench_carts,
    bench_mixed_drop,
    bench_status
);
criterion_main!(benches);
