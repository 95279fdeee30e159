//! Three nodes whose Raft logs are write-ahead logs: the leader's batches
//! land in every node's sale log under the same sequence numbers; a leader
//! cut off from the others writes a batch that never commits, a successor
//! numbers its own batch from the same place, and when the old leader is
//! back its uncommitted records are cut and replaced: every node ends with
//! the same sale log, and every chain verifies. The log writers are real
//! threads, so time here is real time (timeouts are short).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ingressoja_cluster::memory::MemoryMachine;
use ingressoja_cluster::memory_network::Router;
use ingressoja_cluster::wal_log::WalLog;
use ingressoja_cluster::{NodeId, ShardBatch, ShardRaft};
use ingressoja_wal::{MemStore, Record, read_from};
use openraft::Raft;
use openraft::storage::RaftLogStorage;
use support::{applied_everywhere, found_group, leader_among};

struct Node {
    raft: Raft<ShardRaft>,
    store: MemStore,
}

impl Node {
    /// The sale log as this node holds it: (seq, payload) of each record.
    fn sale_log(&self) -> Vec<(u64, String)> {
        read_from(&self.store, 1)
            .map(|r| {
                let r = r.unwrap();
                (r.seq, String::from_utf8(r.payload).unwrap())
            })
            .collect()
    }

    /// What a shard would number next: the log's next record.
    fn batch(&self, payloads: &[&str]) -> ShardBatch {
        let next = self.sale_log().last().map_or(1, |(seq, _)| seq + 1);
        ShardBatch {
            records: (next..)
                .zip(payloads)
                .map(|(seq, payload)| Record {
                    seq,
                    timestamp_ms: seq,
                    payload: payload.as_bytes().to_vec(),
                })
                .collect(),
            numbered_by: 1,
        }
    }
}

impl AsRef<Raft<ShardRaft>> for Node {
    fn as_ref(&self) -> &Raft<ShardRaft> {
        &self.raft
    }
}

async fn start(router: &Router, id: NodeId) -> Node {
    let config = support::config(300..=600);
    let store = MemStore::default();
    let opened = WalLog::open(store.clone(), 0, |_| Ok(())).unwrap();
    let raft = Raft::new(
        id,
        config,
        router.network_of(id),
        opened.log,
        MemoryMachine::default(),
    )
    .await
    .unwrap();
    router.add(id, raft.clone());
    Node { raft, store }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_ends_with_the_same_sale_log_after_a_deposed_leaders_batch_is_cut() {
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(&router, id).await);
    }
    found_group(&nodes).await;

    let leader = leader_among(&nodes, &[1, 2, 3]).await;
    let batch = nodes[&leader].batch(&["joined", "held", "bought"]);
    let first = nodes[&leader].raft.client_write(batch).await.unwrap();
    applied_everywhere(&nodes, &[1, 2, 3], first.log_id.index).await;
    let committed: Vec<(u64, String)> = vec![
        (1, "joined".into()),
        (2, "held".into()),
        (3, "bought".into()),
    ];
    for (id, node) in &nodes {
        assert_eq!(node.sale_log(), committed, "node {id}");
    }

    // Alone, the old leader still logs (and syncs) what it is asked, as
    // records 4 and 5; they never reach a majority.
    router.cut_off(leader, true);
    let alone = nodes[&leader].batch(&["deposed 4", "deposed 5"]);
    let lost = tokio::time::timeout(
        Duration::from_secs(3),
        nodes[&leader].raft.client_write(alone),
    )
    .await;
    assert!(
        !matches!(lost, Ok(Ok(_))),
        "a minority acknowledged: {lost:?}"
    );
    assert_eq!(
        nodes[&leader].sale_log().len(),
        5,
        "written, never committed"
    );

    let others: Vec<NodeId> = (1..=3).filter(|&id| id != leader).collect();
    let successor = leader_among(&nodes, &others).await;
    let batch = nodes[&successor].batch(&["successor 4"]);
    assert_eq!(batch.records[0].seq, 4, "the successor numbers on from 3");
    let second = nodes[&successor].raft.client_write(batch).await.unwrap();
    applied_everywhere(&nodes, &others, second.log_id.index).await;

    router.cut_off(leader, false);
    applied_everywhere(&nodes, &[leader], second.log_id.index).await;
    let mut expected = committed;
    expected.push((4, "successor 4".into()));
    for (id, node) in &nodes {
        assert_eq!(node.sale_log(), expected, "node {id}");
        let chain = ingressoja_wal::verify(&node.store, |_| {}).unwrap();
        assert_eq!(chain.last_seq, 4, "node {id}'s chain");
    }

    // Stopped and opened again, a node's log still holds every entry and
    // its vote: it restarts as the same replica.
    let term = nodes[&leader].raft.metrics().borrow().current_term;
    for node in nodes.values() {
        node.raft.shutdown().await.unwrap();
    }
    let node = nodes.remove(&leader).unwrap();
    drop(node.raft);
    let mut replayed = Vec::new();
    let mut reopened = WalLog::open(node.store.clone(), 0, |r| {
        replayed.push(r.seq);
        Ok(())
    })
    .unwrap();
    let state = reopened.log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(second.log_id));
    let vote = reopened.log.read_vote().await.unwrap().unwrap();
    assert_eq!(vote.leader_id().term, term);
    assert!(
        replayed.len() <= 4 && replayed.iter().copied().eq(1..=replayed.len() as u64),
        "only committed records, in order: {replayed:?}"
    );
}
