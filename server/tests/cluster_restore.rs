//! A whole cluster restored from one node's backup, the hard way: the
//! leader is cut off, takes joins it cannot commit (their fans are told the
//! outcome is unknown), and then every machine dies. What is left is the
//! old leader's disk, whose log ends in that never-committed tail. An
//! operator backs it up (`ingressoja backup create`), restores it
//! (`ingressoja restore`) onto the same node id, and starts the other two
//! nodes with empty data directories. The restored cluster elects a
//! leader, the empty nodes copy the sale from the restored one, and every
//! node holds what was committed - the joins and an account made before
//! the cut - and none of the stranded joins (restored whole, the tail would
//! be committed by the restored node when it leads). The cluster then
//! sells on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use support::cluster::{
    Cluster, Conn, DEADLINE, create_event, fans, joined_on, prepare, strand_joins,
};
use support::operator;

mod support;

#[test]
fn a_whole_cluster_is_restored_from_one_nodes_backup_without_its_uncommitted_tail() {
    let mut cluster = Cluster::start(3);
    create_event(&cluster);
    let tokens = fans(&cluster, 24);
    let probe = &tokens[23];
    let old = cluster.leader(probe);
    let old_addr = cluster.nodes[old].http.clone();
    for token in &tokens[..10] {
        let (status, body, _) = Conn::open(&old_addr)
            .unwrap()
            .call("POST", "/api/events/0/queue", None, Some(&token[old]))
            .unwrap();
        assert!(matches!(status, 200 | 201), "{status} {body}");
    }
    let account = json!({ "email": "kept@cluster.invalid", "password": "uma senha bem comprida", "accept_terms": true });
    let (status, body, _) = Conn::open(&old_addr)
        .unwrap()
        .call("POST", "/api/accounts", Some(&account), None)
        .unwrap();
    assert_eq!(status, 201, "{body}");

    // Cut off, the leader logs these joins but cannot commit them; each fan
    // hears that the outcome is unknown (or a refusal), never a yes.
    cluster.partition(&[cluster.nodes[old].id]);
    let stranded = strand_joins(&old_addr, tokens[10..20].iter().map(|t| t[old].clone()));
    let mut unknown = 0;
    for answer in stranded {
        match answer.join().unwrap() {
            Some((503, code)) if code == "outcome_unknown" => unknown += 1,
            Some((503, code)) if code == "not_leader" || code == "not_answered" => {}
            other => panic!("a stranded join was answered {other:?}"),
        }
    }
    assert!(unknown > 0, "no stranded join reached the old leader's log");

    // Every machine dies. The old leader's disk is what is left.
    for node in &mut cluster.nodes {
        drop(node.process.take());
    }
    let backup = cluster.dir.path().join("backup");
    operator(&[
        "backup",
        "create",
        backup.to_str().unwrap(),
        "--data",
        cluster.nodes[old].data.to_str().unwrap(),
    ]);
    let restored = cluster.dir.path().join("restored");
    let said = operator(&[
        "restore",
        backup.to_str().unwrap(),
        "--data",
        restored.to_str().unwrap(),
    ]);
    let left_out: u64 = said
        .split("a cluster member's backup")
        .nth(1)
        .and_then(|rest| rest.split(" record(s) after it").next())
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the restore did not say what it left out: {said}"));
    assert!(left_out > 0, "{said}");

    // The restored node keeps its id; the others start empty (prepared as
    // every node of these tests is: the administrator's local account).
    for (index, node) in cluster.nodes.iter_mut().enumerate() {
        node.data = if index == old {
            restored.clone()
        } else {
            let fresh = cluster.dir.path().join(format!("fresh{}", node.id));
            prepare(&fresh);
            fresh
        };
    }
    cluster.partition(&[]);
    for index in 0..3 {
        cluster.spawn(index);
    }

    // Every node, the empty ones included, holds what was committed and
    // none of the stranded joins.
    let deadline = Instant::now() + DEADLINE;
    for (index, node) in cluster.nodes.iter().enumerate() {
        for (fan, token) in tokens[..20].iter().enumerate() {
            let expected = fan < 10;
            while joined_on(&node.http, &token[index]) != Some(expected) {
                assert!(
                    Instant::now() < deadline,
                    "node {} never showed fan {fan} as {}",
                    node.id,
                    if expected { "joined" } else { "not joined" }
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let login =
            json!({ "email": "kept@cluster.invalid", "password": "uma senha bem comprida" });
        loop {
            let (status, body, _) = Conn::open(&node.http)
                .unwrap()
                .call("POST", "/api/session", Some(&login), None)
                .unwrap();
            if status == 200 {
                break;
            }
            assert!(
                status == 503 && Instant::now() < deadline,
                "the account made before the cut does not log in on node {}: {status} {body}",
                node.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // And the restored cluster sells on: a new join, seen by every node.
    let leader = cluster.leader(probe);
    let late = &tokens[21];
    let (status, body, _) = Conn::open(&cluster.nodes[leader].http)
        .unwrap()
        .call("POST", "/api/events/0/queue", None, Some(&late[leader]))
        .unwrap();
    assert!(matches!(status, 200 | 201), "{status} {body}");
    for (index, node) in cluster.nodes.iter().enumerate() {
        while joined_on(&node.http, &late[index]) != Some(true) {
            assert!(
                Instant::now() < deadline,
                "node {} missed a join after the restore",
                node.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
