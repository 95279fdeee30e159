//! What the cluster tests share: waiting (with a deadline) for a leader
//! among some nodes, and for entries to be applied on some nodes; founding
//! a group of nodes 1 to 3.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use ingressoja_cluster::{NodeId, ShardRaft};
use openraft::{BasicNode, Config, Raft};

/// How long a test waits for the cluster before failing (paused-clock
/// tests pass it without waiting).
pub const DEADLINE: Option<Duration> = Some(Duration::from_secs(30));

/// Raft's timing for a test: 50 ms heartbeats, elections after a random
/// `election_ms` range.
pub fn config(election_ms: std::ops::RangeInclusive<u64>) -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: *election_ms.start(),
        election_timeout_max: *election_ms.end(),
        ..Config::default()
    };
    Arc::new(config.validate().unwrap())
}

/// Nodes 1, 2 and 3 form one group, from node 1.
pub async fn found_group<N: AsRef<Raft<ShardRaft>>>(nodes: &BTreeMap<NodeId, N>) {
    let members: BTreeMap<NodeId, BasicNode> =
        (1..=3).map(|id| (id, BasicNode::default())).collect();
    nodes[&1].as_ref().initialize(members).await.unwrap();
}

/// The leader that the first of `among` sees, once it is one of `among`.
pub async fn leader_among<N: AsRef<Raft<ShardRaft>>>(
    nodes: &BTreeMap<NodeId, N>,
    among: &[NodeId],
) -> NodeId {
    let metrics = nodes[&among[0]]
        .as_ref()
        .wait(DEADLINE)
        .metrics(
            |m| m.current_leader.is_some_and(|l| among.contains(&l)),
            "a leader among the connected nodes",
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

/// Waits until each of `ids` has applied entry `index`.
pub async fn applied_everywhere<N: AsRef<Raft<ShardRaft>>>(
    nodes: &BTreeMap<NodeId, N>,
    ids: &[NodeId],
    index: u64,
) {
    for id in ids {
        nodes[id]
            .as_ref()
            .wait(DEADLINE)
            .applied_index_at_least(Some(index), format!("node {id} applies {index}"))
            .await
            .unwrap();
    }
}
