//! Three runtimes, one shard replicated among them over the in-process
//! network (`ingressoja_cluster::memory_network`), on real Raft timing: a
//! leader cut off from the others or stopped is replaced, what it
//! acknowledged survives, what it numbered and never committed never shows
//! (not in an answer, not in any node's state), and every node ends with
//! the same state. The state attached to the log (`attached.rs`, here a
//! list kept in memory) takes only committed changes, the same on every
//! node, from the log, a restart's catch-up or the group's snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingressoja_cluster::NodeId;
use ingressoja_cluster::memory_network::{NodeNetwork, Router};
use ingressoja_engine::{Command, CustomerId, QueueStatus};
use ingressoja_runtime::attached::Thaw;
use ingressoja_runtime::{
    Attached, AttachedRecord, AttachedState, EventId, ManualClock, Member, Pending, Runtime,
    RuntimeError, RuntimeOptions, ShardState,
};
use ingressoja_wal::MemStore;
use openraft::BasicNode;
use parking_lot::Mutex;

mod support;

/// Longer than any election here takes (150–300 ms timeouts), by far.
const DEADLINE: Duration = Duration::from_secs(30);

const NODES: [NodeId; 3] = [1, 2, 3];

struct Node {
    store: MemStore,
    dir: tempfile::TempDir,
    attached: Arc<Kept>,
    runtime: Option<Runtime>,
}

/// An attached state that keeps every change it applied, in order.
#[derive(Default)]
struct Kept(Mutex<(u64, Vec<Vec<u8>>)>);

impl Kept {
    fn changes(&self) -> Vec<Vec<u8>> {
        self.0.lock().1.clone()
    }
}

impl AttachedState for Kept {
    fn applied_seq(&self) -> u64 {
        self.0.lock().0
    }

    fn apply(&self, records: &[AttachedRecord]) -> Result<(), String> {
        let mut kept = self.0.lock();
        for record in records {
            assert!(record.seq > kept.0, "applied twice or out of order");
            kept.0 = record.seq;
            kept.1.push(record.bytes.clone());
        }
        Ok(())
    }

    fn freeze(&self) -> Result<Thaw, String> {
        let changes = self.changes();
        Ok(Box::new(move || Ok(postcard::to_stdvec(&changes).unwrap())))
    }

    fn restore(&self, seq: u64, encoded: Option<&[u8]>) -> Result<(), String> {
        let changes = encoded.map_or(Vec::new(), |bytes| postcard::from_bytes(bytes).unwrap());
        *self.0.lock() = (seq, changes);
        Ok(())
    }
}

struct Cluster {
    router: Router,
    nodes: BTreeMap<NodeId, Node>,
}

fn start(
    router: &Router,
    id: NodeId,
    store: MemStore,
    dir: &Path,
    attached: &Arc<Kept>,
) -> Runtime {
    let founders = NODES.map(|n| (n, BasicNode::default()));
    let member: Member<NodeNetwork> = Member {
        node: id,
        network: router.network_of(id),
        founders: Some(BTreeMap::from(founders)),
    };
    let clock = Arc::new(ManualClock::at(support::NOW));
    let mut options = RuntimeOptions::new(dir);
    options.attached = Some(Attached(attached.clone()));
    let runtime = Runtime::start_member(store, options, clock, member).unwrap();
    router.add(id, runtime.raft().unwrap());
    runtime
}

impl Cluster {
    fn start() -> Cluster {
        let router = Router::default();
        let nodes = NODES
            .into_iter()
            .map(|id| {
                let store = MemStore::default();
                let dir = tempfile::tempdir().unwrap();
                let attached = Arc::new(Kept::default());
                let runtime = start(&router, id, store.clone(), dir.path(), &attached);
                let node = Node {
                    store,
                    dir,
                    attached,
                    runtime: Some(runtime),
                };
                (id, node)
            })
            .collect();
        Cluster { router, nodes }
    }

    fn runtime(&self, id: NodeId) -> &Runtime {
        self.nodes[&id].runtime.as_ref().unwrap()
    }

    /// The node among `among` that takes writes, once one does: it is
    /// asked to create an event (the proof it leads), which is returned.
    fn leader_among(&self, among: &[NodeId]) -> (NodeId, EventId) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            for &id in among {
                let created = self
                    .runtime(id)
                    .create_event(support::runtime_event("Replicated"))
                    .and_then(Pending::wait);
                match created {
                    Ok(event) => return (id, event),
                    Err(RuntimeError::NotLeader | RuntimeError::Deposed) => {}
                    Err(other) => panic!("node {id}: {other}"),
                }
            }
            assert!(Instant::now() < deadline, "no leader among {among:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A node's state; `None` while it holds records of a leadership
    /// that ended and has not yet learned what the new leader kept (a
    /// read of that state is refused rather than answered).
    fn state(&self, id: NodeId) -> Option<ShardState> {
        match self.runtime(id).query(Clone::clone).unwrap().wait() {
            Ok(state) => Some(state),
            Err(RuntimeError::NotLeader) => None,
            Err(other) => panic!("node {id}: {other}"),
        }
    }

    /// Waits until every running node holds the same state, and returns it.
    fn converged(&self) -> ShardState {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let states: Option<Vec<ShardState>> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.runtime.is_some())
                .map(|(&id, _)| self.state(id))
                .collect();
            if let Some(states) = states
                && states.windows(2).all(|pair| pair[0] == pair[1])
            {
                return states.into_iter().next().unwrap();
            }
            assert!(Instant::now() < deadline, "the nodes never agreed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every running node's attached state holds the same
    /// changes, and returns them.
    fn attached_converged(&self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let kept: Vec<Vec<Vec<u8>>> = self
                .nodes
                .values()
                .filter(|n| n.runtime.is_some())
                .map(|n| n.attached.changes())
                .collect();
            if kept.windows(2).all(|pair| pair[0] == pair[1]) {
                return kept.into_iter().next().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "the attached states never agreed: {kept:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Logs `change` to the attached state through whichever of `among`
/// leads.
fn attach_through_leader(cluster: &Cluster, among: &[NodeId], change: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        for &id in among {
            match cluster
                .runtime(id)
                .attach(change.to_vec())
                .and_then(Pending::wait)
            {
                Ok(_) => return,
                Err(RuntimeError::NotLeader | RuntimeError::Deposed) => {}
                Err(other) => panic!("node {id}: {other}"),
            }
        }
        assert!(Instant::now() < deadline, "no leader took {change:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn join(runtime: &Runtime, event: EventId, fan: u64) -> Pending<ingressoja_runtime::Applied> {
    let command = Command::Join {
        customer: CustomerId(fan),
    };
    runtime.submit(event, command, None).unwrap()
}

fn joined(state: &ShardState, event: EventId, fan: u64) -> bool {
    state.events[&event].queue_status(CustomerId(fan)) != QueueStatus::NotJoined
}

#[test]
fn a_cut_off_leader_acknowledges_nothing_and_what_it_numbered_never_shows() {
    let cluster = Cluster::start();
    let (old, event) = cluster.leader_among(&NODES);
    for fan in 0..200 {
        join(cluster.runtime(old), event, fan).wait().unwrap();
    }

    // Cut off, the leader still applies these (its engines number them)
    // but cannot commit them.
    cluster.router.cut_off(old, true);
    let stranded: Vec<_> = (1_000..1_050)
        .map(|fan| join(cluster.runtime(old), event, fan))
        .collect();
    let stranded_change = cluster.runtime(old).attach(b"stranded".to_vec()).unwrap();

    let others: Vec<NodeId> = NODES.into_iter().filter(|&n| n != old).collect();
    let (new, _) = cluster.leader_among(&others);
    for fan in 2_000..2_200 {
        join(cluster.runtime(new), event, fan).wait().unwrap();
    }
    let seq = cluster
        .runtime(new)
        .attach(b"kept".to_vec())
        .unwrap()
        .wait()
        .unwrap();
    // Answered once committed, and applied on the node that answered.
    assert_eq!(cluster.nodes[&new].attached.applied_seq(), seq);
    assert!(
        !cluster.nodes[&old]
            .attached
            .changes()
            .contains(&b"stranded".to_vec())
    );

    // Healed, the old leader learns it was deposed: its stranded requests
    // are refused, never acknowledged.
    cluster.router.cut_off(old, false);
    // Proposed before the cut (deposed: unknown to it) or not (refused).
    assert!(matches!(
        stranded_change.wait(),
        Err(RuntimeError::NotLeader | RuntimeError::Deposed)
    ));
    assert_eq!(cluster.attached_converged(), [b"kept".to_vec()]);
    for pending in stranded {
        match pending.wait() {
            Err(RuntimeError::NotLeader | RuntimeError::Deposed) => {}
            other => panic!("a stranded request was answered {other:?}"),
        }
    }
    let state = cluster.converged();
    for fan in (0..200).chain(2_000..2_200) {
        assert!(joined(&state, event, fan), "acknowledged fan {fan} lost");
    }
    for fan in 1_000..1_050 {
        assert!(
            !joined(&state, event, fan),
            "unacknowledged fan {fan} shows"
        );
    }
    assert!(
        cluster.runtime(old).stats().rollbacks >= 1,
        "the old leader's engines held the stranded joins and had to drop them"
    );
    // The old leader follows now; a write sent to it is refused.
    let refused = join(cluster.runtime(old), event, 5_000).wait();
    if cluster.runtime(old).leader() != Some(old) {
        assert_eq!(refused.unwrap_err(), RuntimeError::NotLeader);
    }
}

#[test]
fn a_stopped_leader_is_replaced_and_catches_up_when_it_restarts() {
    let mut cluster = Cluster::start();
    let (old, event) = cluster.leader_among(&NODES);
    // Logged before the joins, whose commits carry its commit with them:
    // the restart below replays it from the log (the log's tail, not yet
    // known committed, is the group's to apply instead).
    cluster
        .runtime(old)
        .attach(b"before".to_vec())
        .unwrap()
        .wait()
        .unwrap();
    for fan in 0..100 {
        join(cluster.runtime(old), event, fan).wait().unwrap();
    }
    cluster.router.cut_off(old, true);
    cluster
        .nodes
        .get_mut(&old)
        .unwrap()
        .runtime
        .take()
        .unwrap()
        .shutdown();

    let others: Vec<NodeId> = NODES.into_iter().filter(|&n| n != old).collect();
    let (new, _) = cluster.leader_among(&others);
    for fan in 100..300 {
        join(cluster.runtime(new), event, fan).wait().unwrap();
    }
    attach_through_leader(&cluster, &others, b"after");

    // Back from its disk (the same store), it catches up from the leader;
    // its attached state lost everything (as after a power cut that the
    // log survived) and catches up from its own log first.
    let node = cluster.nodes.get_mut(&old).unwrap();
    node.attached = Arc::new(Kept::default());
    let node = &cluster.nodes[&old];
    let restarted = start(
        &cluster.router,
        old,
        node.store.clone(),
        node.dir.path(),
        &node.attached,
    );
    assert_eq!(
        node.attached.changes(),
        [b"before".to_vec()],
        "the attached state did not catch up from the log at start"
    );
    cluster.router.cut_off(old, false);
    cluster.nodes.get_mut(&old).unwrap().runtime = Some(restarted);
    let state = cluster.converged();
    for fan in 0..300 {
        assert!(joined(&state, event, fan), "acknowledged fan {fan} lost");
    }
    state.check_invariants().unwrap();
    assert_eq!(
        cluster.attached_converged(),
        [b"before".to_vec(), b"after".to_vec()]
    );
}

#[test]
fn a_followers_subscribers_see_what_the_leader_commits() {
    let cluster = Cluster::start();
    let (leader, event) = cluster.leader_among(&NODES);
    let follower = NODES.into_iter().find(|&n| n != leader).unwrap();
    let mut changes = cluster.runtime(follower).subscribe();
    join(cluster.runtime(leader), event, 42).wait().unwrap();
    let fan = Some(CustomerId(42));
    let (mut joined, mut turn) = (false, false);
    let deadline = Instant::now() + DEADLINE;
    while !(joined && turn) {
        match changes.try_recv() {
            Ok(notice) if notice.event == event && notice.transition.customer() == fan => {
                joined = true;
            }
            // The event is open with room: the join starts the fan's turn.
            Ok(notice) if notice.event == event && notice.turn_of == fan => turn = true,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "the follower published nothing");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_single_nodes_data_does_not_start_as_a_cluster_member() {
    let (store, dir) = (MemStore::default(), tempfile::tempdir().unwrap());
    let clock = Arc::new(ManualClock::at(support::NOW));
    let alone = Runtime::start_on(store.clone(), RuntimeOptions::new(dir.path()), clock).unwrap();
    alone
        .create_event(support::runtime_event("Alone"))
        .unwrap()
        .wait()
        .unwrap();
    alone.shutdown();
    // Its log is a group of one voter: as a member it would lead that group
    // alone, beside the cluster's leader.
    let router = Router::default();
    let member: Member<NodeNetwork> = Member {
        node: 1,
        network: router.network_of(1),
        founders: None,
    };
    let clock = Arc::new(ManualClock::at(support::NOW));
    let refused = Runtime::start_member(store, RuntimeOptions::new(dir.path()), clock, member);
    assert!(
        matches!(refused, Err(ingressoja_runtime::StartError::SingleNodeData)),
        "{:?}",
        refused.err()
    );
}

/// Joins `fan` through whichever of `among` leads, until one acknowledges
/// it (a leader may be replaced meanwhile: its refusal is retried). A
/// retry may find the fan already in line (the engine's answer says so),
/// if the refused attempt made it into the log after all: the line is
/// checked at the end either way.
fn join_through_leader(cluster: &Cluster, among: &[NodeId], event: EventId, fan: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        for &id in among {
            match join(cluster.runtime(id), event, fan).wait() {
                Ok(_) => return,
                Err(RuntimeError::NotLeader | RuntimeError::Deposed) => {}
                Err(other) => panic!("node {id}: {other}"),
            }
        }
        assert!(Instant::now() < deadline, "no leader took fan {fan}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `id`'s Raft metrics satisfy `holds`.
fn wait_metrics(
    cluster: &Cluster,
    id: NodeId,
    what: &str,
    holds: impl Fn(&openraft::RaftMetrics<NodeId, BasicNode>) -> bool,
) {
    let raft = cluster.runtime(id).raft().unwrap();
    let deadline = Instant::now() + DEADLINE;
    while !holds(&raft.metrics().borrow()) {
        assert!(Instant::now() < deadline, "node {id}: never {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_member_behind_the_purged_log_catches_up_from_the_snapshot_and_restarts_from_it() {
    let mut cluster = Cluster::start();
    let (leader, event) = cluster.leader_among(&NODES);
    for fan in 0..100 {
        join_through_leader(&cluster, &NODES, event, fan);
    }
    let lagging = NODES.into_iter().find(|&n| n != leader).unwrap();
    cluster.router.cut_off(lagging, true);
    let node = cluster.nodes.get_mut(&lagging).unwrap();
    node.runtime.take().unwrap().shutdown();
    let running: Vec<NodeId> = NODES.into_iter().filter(|&n| n != lagging).collect();
    for fan in 100..300 {
        join_through_leader(&cluster, &running, event, fan);
    }
    attach_through_leader(&cluster, &running, b"while away");

    // The running nodes snapshot and purge every entry the lagging one
    // misses: the only way back for it is the snapshot.
    for &id in &running {
        let index = cluster.runtime(id).take_group_snapshot(DEADLINE).unwrap();
        wait_metrics(&cluster, id, "purged its log", |m| {
            m.purged.map(|p| p.index) >= Some(index)
        });
    }

    let node = &cluster.nodes[&lagging];
    let (store, dir) = (node.store.clone(), node.dir.path().to_path_buf());
    let attached = node.attached.clone();
    let restarted = start(&cluster.router, lagging, store.clone(), &dir, &attached);
    let installs = restarted.installs();
    assert_eq!(*installs.borrow(), 0, "installed before it was reached");
    cluster.router.cut_off(lagging, false);
    cluster.nodes.get_mut(&lagging).unwrap().runtime = Some(restarted);
    wait_metrics(&cluster, lagging, "installed a snapshot", |m| {
        m.snapshot.is_some()
    });
    // Its subscribers are told: the jump comes with no notices.
    let deadline = Instant::now() + DEADLINE;
    while *installs.borrow() == 0 {
        assert!(
            Instant::now() < deadline,
            "subscribers were not told of the installed snapshot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = cluster.converged();
    for fan in 0..300 {
        assert!(joined(&state, event, fan), "acknowledged fan {fan} lost");
    }
    state.check_invariants().unwrap();
    // Its attached state came in the snapshot too.
    assert_eq!(cluster.attached_converged(), [b"while away".to_vec()]);
    // Its log started over after the snapshot (the records it had were
    // older than the purged entries).
    let origin = ingressoja_wal::origin(&store).unwrap();
    assert!(origin > 0, "the log did not start over after the snapshot");

    // It goes on from there as a follower, and restarts from the
    // installed snapshot and its log after it.
    for fan in 300..320 {
        join_through_leader(&cluster, &NODES, event, fan);
    }
    cluster.converged();
    cluster.router.cut_off(lagging, true);
    let node = cluster.nodes.get_mut(&lagging).unwrap();
    node.runtime.take().unwrap().shutdown();
    let again = start(&cluster.router, lagging, store.clone(), &dir, &attached);
    assert!(
        again.recovery().snapshot_seq >= Some(origin),
        "recovery did not start from the installed snapshot"
    );
    cluster.router.cut_off(lagging, false);
    cluster.nodes.get_mut(&lagging).unwrap().runtime = Some(again);
    for fan in 320..330 {
        join_through_leader(&cluster, &running, event, fan);
    }
    let state = cluster.converged();
    for fan in 0..330 {
        assert!(joined(&state, event, fan), "acknowledged fan {fan} lost");
    }
    state.check_invariants().unwrap();
}
