//! A fan is told their turn at once: each admission's notices name the
//! customers whose turn it started (the `Admitted` transition only counts
//! them), so the hub can route the news to those fans' own streams instead
//! of each waiting for the sale's published state to move. Notices are
//! published only once durable, like everything else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use ingressoja_engine::{Command, CustomerId, Policy, Transition};
use ingressoja_runtime::{ManualClock, Notice, Runtime, RuntimeOptions};

mod support;

fn received(notices: &mut tokio::sync::broadcast::Receiver<Notice>) -> Vec<Notice> {
    std::iter::from_fn(|| notices.try_recv().ok()).collect()
}

#[test]
fn each_admission_names_the_customers_whose_turn_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(support::NOW));
    let runtime = Runtime::start(RuntimeOptions::new(dir.path()), clock.clone()).unwrap();
    // Two shop at once: the third waits for a place.
    let mut config = support::runtime_event("Turns");
    config.policy = Policy {
        max_active: 2,
        ..config.policy
    };
    let event = runtime
        .create_event(config)
        .and_then(|pending| pending.wait())
        .unwrap();
    let mut notices = runtime.subscribe();
    for id in 1..=3 {
        let join = Command::Join {
            customer: CustomerId(id),
        };
        runtime
            .submit(event, join, None)
            .and_then(|pending| pending.wait())
            .unwrap();
    }
    let turns = |notices: &[Notice]| -> Vec<(u64, bool)> {
        notices
            .iter()
            .filter_map(|n| {
                let admitted = matches!(n.transition, Transition::Admitted { .. });
                n.turn_of.map(|c| (c.0, admitted))
            })
            .collect()
    };
    let first = received(&mut notices);
    assert_eq!(turns(&first), [(1, true), (2, true)], "{first:?}");
    // Each named turn carries the sequence number of its Admitted record.
    for named in first.iter().filter(|n| n.turn_of.is_some()) {
        assert!(first.iter().any(|n| n.turn_of.is_none()
            && n.seq == named.seq
            && matches!(n.transition, Transition::Admitted { .. })));
    }
    // Customer 1 is done: the place goes to customer 3, who is told.
    runtime
        .submit(
            event,
            Command::Leave {
                customer: CustomerId(1),
            },
            None,
        )
        .and_then(|pending| pending.wait())
        .unwrap();
    let second = received(&mut notices);
    assert_eq!(turns(&second), [(3, true)], "{second:?}");
}
