//! Property tests: random events and random command sequences, applied to the
//! engine and to the reference model in `support/model.rs`. After every step
//! the answers must match, the observable state must match, and every
//! invariant must hold (the `Sale` harness checks them). At the end, replaying
//! the log and round-tripping a snapshot must both give the live state back.
//!
//! `make test` runs 10 000 cases; set PROPTEST_CASES for more.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod support;

use ingressoja_engine::{
    Command, CustomerId, Engine, EventConfig, MINUTE_MS, Payment, Policy, Schedule, TicketType,
    TypeCounts,
};
use proptest::prelude::*;
use support::Sale;
use support::model::Model;

const CUSTOMERS: u64 = 8;

/// A command as generated: a checkout's amount is chosen at run time, so it
/// can be the right one.
#[derive(Clone, Debug)]
enum Step {
    Join(u64),
    Add(u64, TypeCounts),
    Remove(u64, TypeCounts),
    Set(u64, TypeCounts),
    Release(u64),
    Pay {
        customer: u64,
        key: u128,
        payment: PaymentSpec,
    },
    Leave(u64),
    Tick,
    Pause,
    Resume,
    Policy(Policy),
    Reschedule(Schedule),
}

#[derive(Clone, Copy, Debug)]
enum PaymentSpec {
    RightAmount,
    WrongAmount,
    Declined,
    Failed,
}

fn customer() -> impl Strategy<Value = u64> {
    0..CUSTOMERS
}

/// Quantities of types 0..3 (type 2 rarely exists, to reach UnknownTicketType).
fn items() -> impl Strategy<Value = TypeCounts> {
    (0u16..3, 0u16..3, prop::bool::weighted(0.05)).prop_map(|(a, b, unknown)| {
        let mut counts = TypeCounts::ZERO;
        counts.set(0, a);
        counts.set(1, b);
        counts.set(2, u16::from(unknown));
        counts
    })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        1u32..4,
        1u32..4,
        1u64..4,
        1u64..4,
        1u16..6,
        1u16..4,
        1u16..4,
        2u32..12,
        prop_oneof![Just(100u16), Just(120), Just(300)],
        prop_oneof![Just(0u64), Just(10_000), Just(MINUTE_MS)],
        prop_oneof![Just(10_000u64), Just(MINUTE_MS), Just(60 * MINUTE_MS)],
    )
        .prop_map(
            |(
                max_active,
                rate,
                window_min,
                ttl_min,
                per_event,
                limit_a,
                limit_b,
                max_queue,
                overadmit,
                arrival_window,
                idle_after,
            )| {
                let mut policy = Policy {
                    max_active,
                    admit_per_second: rate,
                    overadmit_percent: overadmit,
                    arrival_window_ms: arrival_window,
                    idle_after_ms: idle_after,
                    admission_window_ms: window_min * MINUTE_MS,
                    hold_ttl_ms: ttl_min * MINUTE_MS,
                    per_event_limit: per_event,
                    max_queue_len: max_queue,
                    ..Policy::default()
                };
                policy.per_type_limits.set(0, limit_a);
                policy.per_type_limits.set(1, limit_b);
                policy
            },
        )
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (0u64..4, 0u64..4, 1u64..60).prop_map(|(pre, open_gap, length)| Schedule {
        prequeue_opens_at_ms: pre * MINUTE_MS,
        opens_at_ms: (pre + open_gap) * MINUTE_MS,
        closes_at_ms: (pre + open_gap + length) * MINUTE_MS,
    })
}

fn step() -> impl Strategy<Value = Step> {
    let payment = prop_oneof![
        6 => Just(PaymentSpec::RightAmount),
        1 => Just(PaymentSpec::WrongAmount),
        1 => Just(PaymentSpec::Declined),
        1 => Just(PaymentSpec::Failed),
    ];
    prop_oneof![
        25 => customer().prop_map(Step::Join),
        20 => (customer(), items()).prop_map(|(c, i)| Step::Add(c, i)),
        5 => (customer(), items()).prop_map(|(c, i)| Step::Remove(c, i)),
        10 => (customer(), items()).prop_map(|(c, i)| Step::Set(c, i)),
        4 => customer().prop_map(Step::Release),
        15 => (customer(), 0u128..4, payment).prop_map(|(customer, key, payment)| Step::Pay { customer, key, payment }),
        4 => customer().prop_map(Step::Leave),
        15 => Just(Step::Tick),
        2 => Just(Step::Pause),
        3 => Just(Step::Resume),
        2 => policy().prop_map(Step::Policy),
        1 => schedule().prop_map(Step::Reschedule),
    ]
}

/// Time between steps: mostly small, sometimes past a TTL.
fn pause_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..2_000,
        3 => 0u64..MINUTE_MS,
        1 => 0u64..5 * MINUTE_MS,
    ]
}

fn event() -> impl Strategy<Value = EventConfig> {
    (1u32..7, 0u32..5, policy(), any::<u64>()).prop_map(|(a, b, policy, seed)| {
        let mut ticket_types = vec![TicketType {
            name: "Pista".into(),
            price_cents: 1_500,
            capacity: a,
        }];
        if b > 0 {
            ticket_types.push(TicketType {
                name: "Camarote".into(),
                price_cents: 4_000,
                capacity: b,
            });
        }
        EventConfig {
            name: "Prop".into(),
            venue: "Model".into(),
            starts_at_ms: 0,
            ticket_types,
            schedule: Schedule {
                prequeue_opens_at_ms: MINUTE_MS,
                opens_at_ms: 2 * MINUTE_MS,
                closes_at_ms: 40 * MINUTE_MS,
            },
            policy,
            shuffle_seed: seed,
        }
    })
}

fn command(step: &Step, model: &Model) -> Command {
    let c = CustomerId;
    match *step {
        Step::Join(id) => Command::Join { customer: c(id) },
        Step::Add(id, items) => Command::AddItems {
            customer: c(id),
            items,
        },
        Step::Remove(id, items) => Command::RemoveItems {
            customer: c(id),
            items,
        },
        Step::Set(id, items) => Command::SetItems {
            customer: c(id),
            items,
        },
        Step::Release(id) => Command::ReleaseHold { customer: c(id) },
        Step::Pay {
            customer,
            key,
            payment,
        } => {
            let right = model.cart(c(customer)).map_or(0, |(_, _, total)| total);
            let payment = match payment {
                PaymentSpec::RightAmount => Payment::Approved {
                    amount_cents: right,
                    payment_ref: 1,
                },
                PaymentSpec::WrongAmount => Payment::Approved {
                    amount_cents: right + 1,
                    payment_ref: 1,
                },
                PaymentSpec::Declined => Payment::Declined,
                PaymentSpec::Failed => Payment::Failed,
            };
            Command::Checkout {
                customer: c(customer),
                payment,
                idempotency_key: key,
                ticket_seed: key ^ 0xABCD,
            }
        }
        Step::Leave(id) => Command::Leave { customer: c(id) },
        Step::Tick => Command::Tick,
        Step::Pause => Command::Pause,
        Step::Resume => Command::Resume,
        Step::Policy(policy) => Command::UpdatePolicy { policy },
        Step::Reschedule(schedule) => Command::Reschedule { schedule },
    }
}

fn assert_same_observable_state(sale: &Sale, model: &Model) -> Result<(), TestCaseError> {
    let engine = &sale.engine;
    let stats = engine.stats();
    prop_assert_eq!(stats.phase, model.phase);
    prop_assert_eq!(stats.paused, model.paused);
    prop_assert_eq!(stats.joined as usize, model.joiners.len());
    prop_assert_eq!(stats.served, model.served);
    prop_assert_eq!(stats.active, model.active());
    prop_assert!(
        stats.active <= engine.config().policy.max_active || model.policy.max_active < stats.active,
        "more shoppers than max_active allows"
    );
    for (t, stock) in engine.stock().iter().enumerate() {
        prop_assert_eq!(
            (stock.available, stock.held, stock.sold),
            (model.available[t], model.held[t], model.sold[t]),
            "type {}",
            t
        );
    }
    prop_assert_eq!(stats.orders as usize, model.orders.len());
    for id in 0..CUSTOMERS {
        let customer = CustomerId(id);
        prop_assert_eq!(
            engine.queue_status(customer),
            model.queue_status(customer),
            "status of {}",
            id
        );
        let cart = engine
            .cart(customer)
            .map(|c| (c.items, c.expires_at_ms, c.total_cents));
        prop_assert_eq!(cart, model.cart(customer), "cart of {}", id);
        prop_assert_eq!(
            engine.owned_by(customer),
            model.owned(customer),
            "owned by {}",
            id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000),
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_agrees_with_the_model_and_keeps_every_invariant(
        config in event(),
        steps in prop::collection::vec((pause_ms(), step()), 1..80),
    ) {
        let mut sale = Sale::new(config.clone());
        sale.at(0);
        let mut model = Model::new(&config);
        for (pause, step) in &steps {
            sale.later(*pause);
            let command = command(step, &model);
            let expected = model.apply(command, sale.now);
            let actual = sale.apply(command);
            prop_assert_eq!(actual, expected, "{:?} at {}", command, sale.now);
            assert_same_observable_state(&sale, &model)?;
            if let Some(deadline) = sale.engine.next_deadline() {
                prop_assert!(deadline > sale.now, "next deadline {} not after now {}", deadline, sale.now);
            }
        }
        // Replay rebuilds the live state from the log alone.
        let replayed = Engine::replay(config, &sale.log).unwrap();
        prop_assert_eq!(&replayed, &sale.engine);
        // A snapshot round trip does too (the derived indexes are rebuilt).
        let bytes = postcard::to_stdvec(&sale.engine).unwrap();
        let restored: Engine = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&restored, &sale.engine);
        restored.check_invariants().unwrap();
        // next_deadline may be early (dead queue entries; a restored engine
        // queues windows of holders too) but never late: ticking just before
        // it changes nothing, for the live and the restored engine alike.
        for engine in [&sale.engine, &restored] {
            if let Some(deadline) = engine.next_deadline()
                && deadline > sale.now + 1
            {
                let mut probe = engine.clone();
                let mut out = Vec::new();
                probe.apply(Command::Tick, deadline - 1, &mut out).unwrap();
                prop_assert!(
                    out.is_empty(),
                    "ticked at {} before the deadline {}: {:?}",
                    deadline - 1,
                    deadline,
                    out
                );
            }
        }
    }
}
