//! Replication figures (issue 13). First, durable joins through a single
//! node (a group of one voter) and through three voters, in one run. Then a
//! new member's catch-up from the group's snapshot: two nodes
//! of a three-voter group (in one process, over the in-process network, on
//! RocksDB in temporary directories) take a sale of a million queued fans;
//! the leader builds the group's snapshot and purges its log behind it;
//! then the third node starts on an empty disk and catches up: it can only
//! do so from the snapshot. Printed: how long the fans took to join
//! through the group, the snapshot's build, and the catch-up (from the new
//! node's start to its having applied everything the leader had), with the
//! ratios between them (these machines are shared: ratios, not lone
//! times). Not criterion: one-off timings. Run with
//! `cargo bench --profile release -p ingressoja-benches --bench catch_up`
//! (`CATCH_UP_FANS` overrides the million).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ingressoja::runtime::{
    Applied, DataDir, EventId, Member, Pending, Runtime, RuntimeError, RuntimeOptions, SystemClock,
};
use ingressoja_cluster::NodeId;
use ingressoja_cluster::memory_network::{NodeNetwork, Router};
use ingressoja_engine::{Command, CustomerId, EventConfig};
use openraft::BasicNode;

const DEADLINE: Duration = Duration::from_secs(600);

/// Every join is one logged transition (the pre-queue is open, nobody is
/// admitted): a million fans is a million records in the queue.
fn event() -> EventConfig {
    ingressoja_benches::queue_only::queue_only_event("Catch-up Bench", "Memory")
}

fn start(router: &Router, id: NodeId, dir: &Path, founding: bool) -> Runtime {
    let founders = [1, 2, 3].map(|n| (n, BasicNode::default()));
    let member: Member<NodeNetwork> = Member {
        node: id,
        network: router.network_of(id),
        founders: founding.then(|| BTreeMap::from(founders)),
    };
    let mut options = RuntimeOptions::new(dir);
    options.queue_capacity = 1 << 20;
    let db = DataDir::create(dir).unwrap().open_db(&[]).unwrap();
    let runtime = Runtime::start_member_in(db, options, Arc::new(SystemClock), member).unwrap();
    router.add(id, runtime.raft().unwrap());
    runtime
}

/// The node of `nodes` that takes writes, and the event it created.
fn leader(nodes: &[&Runtime]) -> (usize, EventId) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        for (index, node) in nodes.iter().enumerate() {
            match node.create_event(event()).and_then(Pending::wait) {
                Ok(event) => return (index, event),
                Err(RuntimeError::NotLeader) => {}
                Err(other) => panic!("{other}"),
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The node of `nodes` that takes writes now, waited for.
fn leading<'a>(nodes: &[&'a Runtime]) -> &'a Runtime {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(node) = nodes.iter().find(|n| n.leads()) {
            return node;
        }
        assert!(Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Joins `fans` fans through whichever of `nodes` leads, 8192 in flight:
/// the elapsed time, each acknowledgement's latency (from its submission
/// to its answer being taken, in microseconds; a closed loop, so queueing
/// counts), and how many joins a change of leader sent again.
fn join_all(nodes: &[&Runtime], event: EventId, fans: u64) -> (Duration, Histogram<u64>, u64) {
    let mut latency = Histogram::<u64>::new(3).unwrap();
    let mut resent = 0;
    let started = Instant::now();
    let mut in_flight: VecDeque<(u64, Instant, Pending<Applied>)> = VecDeque::with_capacity(8192);
    let submit = |fan: u64| {
        let join = Command::Join {
            customer: CustomerId(fan),
        };
        (
            fan,
            Instant::now(),
            leading(nodes).submit(event, join, None).unwrap(),
        )
    };
    let mut next = 0;
    while next < fans || !in_flight.is_empty() {
        if next < fans && in_flight.len() < 8192 {
            in_flight.push_back(submit(next));
            next += 1;
            continue;
        }
        let (fan, sent, reply) = in_flight.pop_front().unwrap();
        match reply.wait() {
            Ok(_) => latency
                .record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX))
                .unwrap(),
            // The leader changed (on two shared cores, a starved heartbeat
            // is an election): sent again to the next one.
            Err(RuntimeError::NotLeader | RuntimeError::Deposed) => {
                resent += 1;
                in_flight.push_back(submit(fan));
            }
            Err(other) => panic!("{other}"),
        }
    }
    (started.elapsed(), latency, resent)
}

/// Acknowledged joins per second, p50 and p99 latency (ms), as a table row.
fn row(name: &str, fans: u64, (took, latency, resent): &(Duration, Histogram<u64>, u64)) -> String {
    format!(
        "| {name} | {:.0} | {:.1} | {:.1} | {resent} |",
        fans as f64 / took.as_secs_f64(),
        latency.value_at_quantile(0.5) as f64 / 1e3,
        latency.value_at_quantile(0.99) as f64 / 1e3
    )
}

/// The same joins through a single node (a group of one voter) and
/// through three voters in this process: acknowledged durable joins per
/// second and latency, in one run.
fn throughput(fans: u64) {
    let single_dir = tempfile::tempdir().unwrap();
    let mut options = RuntimeOptions::new(single_dir.path());
    options.queue_capacity = 1 << 20;
    let single = Runtime::start(options, Arc::new(SystemClock)).unwrap();
    let event = single.create_event(event()).unwrap().wait().unwrap();
    let alone = join_all(&[&single], event, fans);
    single.shutdown();

    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Router::default();
    let nodes: Vec<Runtime> = (1..=3)
        .map(|id| start(&router, id, dirs[id as usize - 1].path(), true))
        .collect();
    let refs: Vec<&Runtime> = nodes.iter().collect();
    let (_, event) = leader(&refs);
    let three = join_all(&refs, event, fans);
    for node in nodes {
        node.shutdown();
    }
    println!("durable joins, {fans} fans, 8192 in flight, RocksDB in temporary directories");
    println!("| group | joins/s | p50 ms | p99 ms | sent again (leader changes) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!("{}", row("one voter (the single node)", fans, &alone));
    println!("{}", row("three voters, one process", fans, &three));
    println!(
        "three voters / one voter, throughput: {:.2}",
        alone.0.as_secs_f64() / three.0.as_secs_f64()
    );
    println!();
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let fans: u64 = std::env::var("CATCH_UP_FANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    throughput(fans);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Router::default();
    let one = start(&router, 1, dirs[0].path(), true);
    let two = start(&router, 2, dirs[1].path(), true);
    let nodes = [&one, &two];
    let (_, event) = leader(&nodes);
    let (filled, _, _) = join_all(&nodes, event, fans);
    let leader = leading(&nodes);
    let through = leader.durable_seq();

    let started = Instant::now();
    let index = leader.take_group_snapshot(DEADLINE).unwrap();
    let built = started.elapsed();
    let raft = leader.raft().unwrap();
    let deadline = Instant::now() + DEADLINE;
    while raft.metrics().borrow().purged.map(|p| p.index) < Some(index) {
        assert!(Instant::now() < deadline, "the leader never purged");
        std::thread::sleep(Duration::from_millis(5));
    }

    // The new member: an empty disk, the group's snapshot its only way in.
    let started = Instant::now();
    let three = start(&router, 3, dirs[2].path(), false);
    let deadline = Instant::now() + DEADLINE;
    while three.durable_seq() < through {
        assert!(Instant::now() < deadline, "the new member never caught up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let caught_up = started.elapsed();
    let installed = three.raft().unwrap().metrics().borrow().snapshot;
    assert!(
        installed.is_some(),
        "the new member did not install a snapshot"
    );
    let queued = three
        .query(move |s| s.events[&event].stats().joined)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(u64::from(queued), fans, "the new member's queue");

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("catch-up of a new member from the group's snapshot, {fans} queued fans");
    println!("| step | ms | ratio to the catch-up |");
    println!("| --- | ---: | ---: |");
    println!(
        "| {fans} joins through the group (two voters of three) | {:.0} | {:.1} |",
        ms(filled),
        ms(filled) / ms(caught_up)
    );
    println!(
        "| the leader builds the snapshot (through record {through}) | {:.0} | {:.2} |",
        ms(built),
        ms(built) / ms(caught_up)
    );
    println!(
        "| the new member: start to applied everything | {:.0} | 1.0 |",
        ms(caught_up)
    );
    three.shutdown();
    two.shutdown();
    one.shutdown();
}
