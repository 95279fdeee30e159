//! The sale log as an audit trail, end to end through the runtime: what a
//! fan's request did is logged with the request's address; what time did
//! (a hold that expired before the request was applied) and what happened
//! to other fans is logged with none, read back from disk after shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;

use ingressoja::audit::Filter;
use ingressoja::runtime::{DataDir, EventId, ManualClock, Runtime, RuntimeOptions};
use ingressoja_engine::{Command, CustomerId, MINUTE_MS, Reply, TicketTypeId, TypeCounts};

mod support;

const OPENS_AT: u64 = support::NOW;

fn send(runtime: &Runtime, event: EventId, command: Command, from: &str) -> Reply {
    let from: IpAddr = from.parse().unwrap();
    runtime
        .submit(event, command, Some(from))
        .unwrap()
        .wait()
        .unwrap()
        .outcome
        .unwrap()
}

fn hold(customer: u64, quantity: u16) -> Command {
    Command::AddItems {
        customer: CustomerId(customer),
        items: TypeCounts::single(TicketTypeId(0), quantity).unwrap(),
    }
}

#[test]
fn a_fans_requests_carry_their_address_and_what_time_did_carries_none() {
    let root = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(OPENS_AT + 1_000));
    let runtime = Runtime::start(RuntimeOptions::new(root.path()), clock.clone()).unwrap();
    let event = runtime
        .create_event(support::runtime_event("Trail Test"))
        .and_then(|pending| pending.wait())
        .unwrap();
    let ana = "203.0.113.10";
    send(
        &runtime,
        event,
        Command::Join {
            customer: CustomerId(1),
        },
        ana,
    );
    send(&runtime, event, hold(1, 2), ana);
    send(
        &runtime,
        event,
        Command::Join {
            customer: CustomerId(2),
        },
        "198.51.100.20",
    );
    // Ana's hold (8 minutes) has expired when her next request comes, inside
    // her turn (10 minutes): the expiry is time's doing, the new hold hers.
    clock.set(OPENS_AT + 1_000 + 9 * MINUTE_MS);
    send(&runtime, event, hold(1, 1), ana);
    runtime.shutdown();

    let db = DataDir::create(root.path()).unwrap().open_db(&[]).unwrap();
    let store = ingressoja_wal::RocksStore::new(db, "wal").unwrap();
    let anas = Filter {
        account: Some(1),
        ..Filter::default()
    };
    let found = ingressoja::sale_trail::query(&store, &anas, 100, 1_000).unwrap();
    let trail: Vec<(&str, Option<&str>)> = found
        .entries
        .iter()
        .rev()
        .map(|e| (e.action.as_str(), e.ip.as_deref()))
        .collect();
    assert_eq!(
        trail,
        vec![
            ("joined", Some(ana)),
            ("items_held", Some(ana)),
            ("hold_expired", None),
            // Holding nothing past the idle time: time's doing too.
            ("shopper_idle", None),
            ("items_held", Some(ana)),
        ]
    );
    let everyone = ingressoja::sale_trail::query(&store, &Filter::default(), 100, 1_000).unwrap();
    let bias: Vec<Option<&str>> = everyone
        .entries
        .iter()
        .filter(|e| e.account == Some(2))
        .map(|e| e.ip.as_deref())
        .collect();
    assert_eq!(
        bias,
        vec![None, Some("198.51.100.20")],
        "Bia joined; time made her idle (newest first)"
    );
    let nobodys: Vec<&str> = everyone
        .entries
        .iter()
        .filter(|e| e.account.is_none())
        .map(|e| e.action.as_str())
        .collect();
    assert!(
        everyone
            .entries
            .iter()
            .filter(|e| e.account.is_none())
            .all(|e| e.ip.is_none()),
        "{nobodys:?}"
    );
    assert!(nobodys.contains(&"admitted"), "{nobodys:?}");
}
