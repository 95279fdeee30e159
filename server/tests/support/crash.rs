//! The crash tests' load: `ingressoja crash-load` in a child process that
//! writes every acknowledgement to a file, and the check that recovers the
//! killed child's data and finds every acknowledged hold and purchase in its
//! log and state. Shared by the SIGKILL test and the power-loss test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingressoja::runtime::{LogEntry, Runtime, RuntimeOptions, ShardState, SystemClock};
use ingressoja_engine::{CustomerId, Transition};

/// Kills the child however the test ends, so a failing test leaves no
/// process running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_child(data: &Path, acks: &Path, seed: u64) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_ingressoja"))
        .args(["crash-load", "--data"])
        .arg(data)
        .arg("--acks")
        .arg(acks)
        .args(["--seed", &seed.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Killed(child)
}

/// Complete lines of the acks file (a kill can cut the last one short).
pub fn acked(acks: &Path) -> Vec<(u64, String, u64)> {
    let text = std::fs::read_to_string(acks).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let seq = parts.next().unwrap().parse().unwrap();
            let kind = parts.next().unwrap().to_string();
            let customer = parts.next().unwrap().parse().unwrap();
            (seq, kind, customer)
        })
        .collect()
}

/// Waits (polling, with a deadline) until at least `count` acks are written.
pub fn wait_for_acks(child: &mut Child, acks: &Path, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked(acks).len() < count {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the load process exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "no progress: {} of {count} acks",
            acked(acks).len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts the runtime on the killed server's data, as a restart would
/// (snapshot, committed records, then the log's tail through the Raft
/// group), and checks every acknowledgement against its log and state.
pub fn recover_and_check(data: &Path, acks: &[(u64, String, u64)], round: u64) {
    let runtime = Runtime::start(RuntimeOptions::new(data), Arc::new(SystemClock))
        .unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
    let report = runtime.recovery().clone();
    let last_acked = acks.iter().map(|(seq, _, _)| *seq).max().unwrap_or(0);
    assert!(
        report.last_seq >= last_acked,
        "round {round}: log ends at {} before ack {last_acked}",
        report.last_seq
    );
    let state = runtime.query(ShardState::clone).unwrap().wait().unwrap();
    let wal = runtime.sale_log().unwrap();

    // What the log holds at every acknowledged sequence number.
    let first = acks.iter().map(|(seq, _, _)| *seq).min().unwrap_or(1);
    let mut logged: HashMap<u64, (String, u64)> = HashMap::new();
    for record in ingressoja_wal::read_from(&wal, first) {
        let record = record.unwrap();
        if let Some((_, transition)) = LogEntry::decode(&record.payload)
            .ok()
            .and_then(|e| e.transition())
        {
            match transition {
                Transition::ItemsHeld { customer, .. } => {
                    logged.insert(record.seq, ("held".into(), customer.0))
                }
                Transition::OrderPlaced { customer, .. } => {
                    logged.insert(record.seq, ("order".into(), customer.0))
                }
                _ => None,
            };
        }
    }
    for (seq, kind, customer) in acks {
        assert_eq!(
            logged.get(seq),
            Some(&(kind.clone(), *customer)),
            "round {round}: acknowledged {kind} of customer {customer} at {seq} is not in the log"
        );
    }
    check_state(&state, acks, round);
    runtime.shutdown();
}

pub fn check_state(state: &ShardState, acks: &[(u64, String, u64)], round: u64) {
    let engine = state.events.values().next().expect("the event exists");
    engine
        .check_invariants()
        .unwrap_or_else(|v| panic!("round {round}: {v}"));
    let mut orders_acked: HashMap<u64, usize> = HashMap::new();
    for (_, kind, customer) in acks {
        if kind == "order" {
            *orders_acked.entry(*customer).or_default() += 1;
        }
    }
    for (customer, count) in orders_acked {
        let owned = engine.orders_of(CustomerId(customer)).count();
        assert!(
            owned >= count,
            "round {round}: customer {customer} acknowledged {count} orders, owns {owned}"
        );
    }
}
