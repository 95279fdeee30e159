//! Payments across a crash: a payment logged as started survives the
//! restart (log replay or snapshot), and the settlement sweep finishes it by
//! what the sandbox provider's ledger says — an order placed and captured
//! when the hold still stands, the money given back when it does not, and a
//! reference the provider never saw refused for good.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ingressoja::payments::gateway::{Authorization, ChargeState, PaymentGateway};
use ingressoja::payments::sandbox::{SandboxGateway, ledger_dir};
use ingressoja::payments::settle::{SweepReport, sweep};
use ingressoja::runtime::{
    Clock, EventId, ManualClock, PendingPayment, Runtime, RuntimeOptions, Settlement,
};
use ingressoja_engine::{Command, CustomerId, Payment, Reply, TicketTypeId, TypeCounts};

mod support;

const FAN: CustomerId = CustomerId(1);
const CARD: &str = "4242424242424242";

struct Sale {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    tokio: tokio::runtime::Runtime,
}

impl Sale {
    /// An open event; fan 1 joined and holds two tickets (R$ 200).
    fn new() -> (Sale, Runtime, EventId) {
        let sale = Sale {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::at(support::NOW)),
            tokio: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
        };
        let runtime = sale.start();
        let event = runtime
            .create_event(support::runtime_event("Settle"))
            .and_then(|pending| pending.wait())
            .unwrap();
        runtime
            .submit(event, Command::Join { customer: FAN }, None)
            .and_then(|pending| pending.wait())
            .unwrap();
        let held = runtime
            .submit(
                event,
                Command::AddItems {
                    customer: FAN,
                    items: TypeCounts::single(TicketTypeId(0), 2).unwrap(),
                },
                None,
            )
            .and_then(|pending| pending.wait())
            .unwrap();
        assert!(matches!(held.outcome, Ok(Reply::Held { .. })));
        (sale, runtime, event)
    }

    fn start(&self) -> Runtime {
        Runtime::start(RuntimeOptions::new(self.dir.path()), self.clock.clone()).unwrap()
    }

    fn gateway(&self) -> SandboxGateway {
        SandboxGateway::open(&ledger_dir(self.dir.path())).unwrap()
    }

    /// Logs a payment of the fan's hold as started (durable).
    fn start_payment(&self, runtime: &Runtime, event: EventId, key: u128) -> PendingPayment {
        let payment = PendingPayment {
            event,
            customer: FAN,
            payment_ref: 1_000 + u64::try_from(key).unwrap(),
            amount_cents: 20_000,
            idempotency_key: key,
            started_at_ms: 0,
        };
        self.tokio
            .block_on(runtime.start_payment(payment, None).unwrap())
            .unwrap()
    }

    /// The process dies (the runtime is dropped) and starts again.
    fn restart(&self, runtime: Runtime) -> Runtime {
        drop(runtime);
        self.start()
    }

    fn sweep(&self, runtime: &Runtime, gateway: &SandboxGateway) -> SweepReport {
        self.tokio
            .block_on(sweep(
                runtime,
                gateway,
                support::NOW + 1,
                self.clock.now_ms(),
            ))
            .unwrap()
    }

    fn ledger(&self, gateway: &SandboxGateway, payment: &PendingPayment) -> ChargeState {
        self.tokio
            .block_on(gateway.status(payment.payment_ref))
            .unwrap()
    }
}

fn orders(runtime: &Runtime, event: EventId) -> Vec<(u128, u64)> {
    runtime
        .query(move |state| {
            state.events[&event]
                .orders_of(FAN)
                .map(|(_, o)| (o.idempotency_key, o.payment_ref))
                .collect()
        })
        .and_then(|pending| pending.wait())
        .unwrap()
}

fn in_flight(runtime: &Runtime) -> usize {
    runtime
        .query(|state| state.payments.len())
        .and_then(|pending| pending.wait())
        .unwrap()
}

#[test]
fn charged_but_no_order_when_the_process_died_the_order_is_placed_and_captured() {
    let (sale, runtime, event) = Sale::new();
    let gateway = sale.gateway();
    let payment = sale.start_payment(&runtime, event, 7);
    let approved = sale
        .tokio
        .block_on(gateway.authorize(payment.payment_ref, CARD, 20_000));
    assert_eq!(approved, Ok(Authorization::Approved));
    let runtime = sale.restart(runtime);
    assert_eq!(in_flight(&runtime), 1, "the started payment survived");
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.captured), (1, 1), "{report:?}");
    assert_eq!(orders(&runtime, event), vec![(7, payment.payment_ref)]);
    assert_eq!(
        sale.ledger(&gateway, &payment),
        ChargeState::Captured {
            amount_cents: 20_000
        }
    );
    assert_eq!(in_flight(&runtime), 0);
    // Settled for good: a restart finds nothing to do.
    let runtime = sale.restart(runtime);
    assert_eq!(sale.sweep(&runtime, &gateway), SweepReport::default());
}

#[test]
fn died_before_the_charge_the_reference_is_refused_for_good() {
    let (sale, runtime, event) = Sale::new();
    let gateway = sale.gateway();
    let payment = sale.start_payment(&runtime, event, 8);
    let runtime = sale.restart(runtime);
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.not_charged), (1, 1), "{report:?}");
    assert!(orders(&runtime, event).is_empty());
    // A request of the dead process that reaches the provider late is refused.
    let late = sale
        .tokio
        .block_on(gateway.authorize(payment.payment_ref, CARD, 20_000));
    assert_eq!(late, Ok(Authorization::Declined));
    assert_eq!(sale.ledger(&gateway, &payment), ChargeState::Voided);
}

#[test]
fn charged_but_the_hold_is_gone_the_money_goes_back() {
    let (sale, runtime, event) = Sale::new();
    let gateway = sale.gateway();
    let payment = sale.start_payment(&runtime, event, 9);
    sale.tokio
        .block_on(gateway.authorize(payment.payment_ref, CARD, 20_000))
        .unwrap();
    runtime
        .submit(event, Command::ReleaseHold { customer: FAN }, None)
        .and_then(|pending| pending.wait())
        .unwrap();
    let runtime = sale.restart(runtime);
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.given_back), (1, 1), "{report:?}");
    assert!(orders(&runtime, event).is_empty());
    assert_eq!(sale.ledger(&gateway, &payment), ChargeState::Voided);
}

#[test]
fn ordered_but_not_captured_when_the_process_died_it_is_captured() {
    let (sale, runtime, event) = Sale::new();
    let gateway = sale.gateway();
    let payment = sale.start_payment(&runtime, event, 10);
    sale.tokio
        .block_on(gateway.authorize(payment.payment_ref, CARD, 20_000))
        .unwrap();
    let placed = runtime
        .submit(
            event,
            Command::Checkout {
                customer: FAN,
                payment: Payment::Approved {
                    amount_cents: 20_000,
                    payment_ref: payment.payment_ref,
                },
                idempotency_key: 10,
                ticket_seed: 3,
            },
            None,
        )
        .and_then(|pending| pending.wait())
        .unwrap();
    assert!(matches!(placed.outcome, Ok(Reply::OrderPlaced { .. })));
    // A snapshot while the payment is in flight: it must carry it.
    runtime
        .snapshot()
        .and_then(|pending| pending.wait())
        .unwrap();
    let runtime = sale.restart(runtime);
    assert!(runtime.recovery().snapshot_seq.is_some());
    assert_eq!(in_flight(&runtime), 1);
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.captured), (1, 1), "{report:?}");
    assert_eq!(orders(&runtime, event).len(), 1, "no second order");
    assert!(matches!(
        sale.ledger(&gateway, &payment),
        ChargeState::Captured { .. }
    ));
}

#[test]
fn one_checkout_has_one_payment_in_flight_and_a_settlement_is_logged_once() {
    let (sale, runtime, event) = Sale::new();
    let payment = sale.start_payment(&runtime, event, 11);
    let again = sale.tokio.block_on(
        runtime
            .start_payment(
                PendingPayment {
                    payment_ref: 5,
                    ..payment
                },
                None,
            )
            .unwrap(),
    );
    assert!(
        matches!(
            again,
            Err(ingressoja::runtime::RuntimeError::PaymentInFlight)
        ),
        "{again:?}"
    );
    let settle = |runtime: &Runtime| {
        sale.tokio
            .block_on(
                runtime
                    .settle_payment(payment, Settlement::NotCharged)
                    .unwrap(),
            )
            .unwrap()
    };
    assert!(settle(&runtime), "the first settlement is logged");
    assert!(!settle(&runtime), "a second one changes nothing");
    let runtime = sale.restart(runtime);
    assert_eq!(in_flight(&runtime), 0);
}

/// The hold's end in these sales (the engine's hold from `Sale::new`).
fn hold_end(runtime: &Runtime, event: EventId) -> u64 {
    runtime
        .query(move |state| state.events[&event].cart(FAN).map(|c| c.expires_at_ms))
        .and_then(|pending| pending.wait())
        .unwrap()
        .expect("the fan holds tickets")
}

#[test]
fn an_unpaid_pix_charge_waits_for_its_end_then_is_voided_and_never_paid() {
    let (sale, runtime, event) = Sale::new();
    let gateway = sale.gateway();
    let payment = sale.start_payment(&runtime, event, 12);
    let end = hold_end(&runtime, event);
    let charge = sale
        .tokio
        .block_on(gateway.create_pix(payment.payment_ref, 20_000, end))
        .unwrap();
    // Restarted while the fan is still paying: the charge is left alone.
    let runtime = sale.restart(runtime);
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.left), (1, 1), "{report:?}");
    assert!(matches!(
        sale.ledger(&gateway, &payment),
        ChargeState::Awaiting { .. }
    ));
    // The hold ends: the charge is voided, not charged, and a bank that
    // pays it after is refused.
    sale.clock.set(end);
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.not_charged), (1, 1), "{report:?}");
    assert_eq!(sale.ledger(&gateway, &payment), ChargeState::Voided);
    assert_eq!(in_flight(&runtime), 0);
    let late = sale.tokio.block_on(gateway.pay_pix(&charge.code, end - 1));
    assert!(
        matches!(late, Err(ingressoja::payments::sandbox::PixRefusal::Lapsed)),
        "{late:?}"
    );
    assert!(orders(&runtime, event).is_empty());
}

#[test]
fn a_paid_pix_charge_becomes_the_order_while_the_hold_stands_else_goes_back() {
    let (sale, runtime, event) = Sale::new();
    let gateway = sale.gateway();
    let end = hold_end(&runtime, event);
    let paid = sale.start_payment(&runtime, event, 13);
    let charge = sale
        .tokio
        .block_on(gateway.create_pix(paid.payment_ref, 20_000, end))
        .unwrap();
    sale.tokio
        .block_on(gateway.pay_pix(&charge.code, support::NOW))
        .unwrap();
    // The notice was lost with the process: the sweep finds it paid.
    let runtime = sale.restart(runtime);
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.captured), (1, 1), "{report:?}");
    assert_eq!(orders(&runtime, event), vec![(13, paid.payment_ref)]);

    // Paid a moment before the end, told after the hold was released: no
    // order can be placed and the money goes back.
    let (sale, runtime, event) = Sale::new();
    let gateway = sale.gateway();
    let late = sale.start_payment(&runtime, event, 14);
    let charge = sale
        .tokio
        .block_on(gateway.create_pix(late.payment_ref, 20_000, end))
        .unwrap();
    sale.tokio
        .block_on(gateway.pay_pix(&charge.code, end - 1))
        .unwrap();
    runtime
        .submit(event, Command::ReleaseHold { customer: FAN }, None)
        .and_then(|pending| pending.wait())
        .unwrap();
    let report = sale.sweep(&runtime, &gateway);
    assert_eq!((report.found, report.given_back), (1, 1), "{report:?}");
    assert_eq!(sale.ledger(&gateway, &late), ChargeState::Refunded);
    assert!(orders(&runtime, event).is_empty());
}
