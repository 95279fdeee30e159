//! Crash tests: the runtime runs under load in a child process
//! (`ingressoja crash-load`) and is killed with SIGKILL at seeded random
//! moments, at least 20 times. After each kill the data directory is
//! recovered here and checked: every acknowledged hold and purchase is in the
//! log at the sequence number it was acknowledged with, the recovered state
//! holds every acknowledged purchase, and every invariant holds (so nothing
//! is sold twice and nobody is over a limit). Then the child restarts on the
//! same data and the load goes on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use ingressoja_engine::shuffle::mix64;
use support::crash::{acked, recover_and_check, spawn_child, wait_for_acks};

mod support;

const KILLS: u64 = 22;

#[test]
fn sigkill_under_load_loses_nothing_acknowledged_and_sells_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acks = dir.path().join("acks.txt");
    let mut rng = 0x5EED_u64;
    for round in 0..KILLS {
        let mut child = spawn_child(&data, &acks, round + 1);
        // Kill at a random moment: after between 20 and 400 more acks.
        rng = mix64(rng);
        let before = acked(&acks).len();
        wait_for_acks(&mut child.0, &acks, before + 20 + (rng % 380) as usize);
        drop(child); // SIGKILL, then reap
        recover_and_check(&data, &acked(&acks), round);
    }
    let total = acked(&acks);
    assert!(
        total.iter().any(|(_, kind, _)| kind == "order"),
        "the load never bought anything"
    );
    eprintln!(
        "{KILLS} kills, {} acknowledged holds and purchases checked",
        total.len()
    );
}
