//! An operator changes a running sale's group with `ingressoja cluster`:
//! `status` shows every node's view, `add-node` brings a fourth node in
//! (it catches up with the log before it votes, and then answers from the
//! same state), `remove-node` takes one out, and the sale goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use support::cluster::{Cluster, Conn, DEADLINE, SECRET, create_event, fans};

mod support;

/// Polls `ingressoja cluster status` until every line for a reachable node
/// says `voters {…}` as given.
fn until_voters(cluster: &Cluster, voters: &str, nodes: &[usize]) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (ok, said) = cluster.cli(&["status"]);
        assert!(ok, "{said}");
        let agree = nodes.iter().all(|id| {
            said.lines().any(|l| {
                l.starts_with(&format!("node {id}:")) && l.contains(&format!("voters {voters}"))
            })
        });
        if agree {
            return said;
        }
        assert!(
            Instant::now() < deadline,
            "voters never became {voters}:\n{said}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `fan` (by token) is in the queue, as node `addr` sees it.
fn joined_on(addr: &str, token: &str) -> bool {
    let (status, body, _) = Conn::open(addr)
        .unwrap()
        .call("GET", "/api/events/0/queue", None, Some(token))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["status"] != "not_joined"
}

#[test]
fn an_operator_adds_a_node_that_catches_up_and_removes_another() {
    let mut cluster = Cluster::start(3);
    create_event(&cluster);
    let tokens = fans(&cluster, 10);
    let leader = cluster.leader(&tokens[9]);
    for token in &tokens[..9] {
        let (status, body, _) = Conn::open(&cluster.nodes[leader].http)
            .unwrap()
            .call("POST", "/api/events/0/queue", None, Some(&token[leader]))
            .unwrap();
        assert!(matches!(status, 200 | 201), "{body}");
    }
    let said = until_voters(&cluster, "{1, 2, 3}", &[1, 2, 3]);
    assert!(said.contains("Leader"), "{said}");

    // Without the cluster's secret a node tells nothing and changes nothing.
    let file = std::fs::read_to_string(cluster.dir.path().join("cluster.toml")).unwrap();
    let wrong = cluster.dir.path().join("wrong.toml");
    let other = "another-secret-that-is-long-enough-too";
    std::fs::write(&wrong, file.replace(SECRET, other)).unwrap();
    for args in [&["status"][..], &["remove-node", "--node", "2"]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
            .arg("cluster")
            .args(args)
            .arg("--cluster")
            .arg(&wrong)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("401"), "{args:?} without the secret: {said}");
    }
    until_voters(&cluster, "{1, 2, 3}", &[1, 2, 3]);

    // A fourth node: in the file, started (it waits, in no group), added.
    let four = cluster.add();
    cluster.spawn(four);
    let (ok, said) = cluster.cli(&["add-node", "--node", "4"]);
    assert!(ok, "{said}");
    until_voters(&cluster, "{1, 2, 3, 4}", &[1, 2, 3, 4]);
    // Its own state answers: the fans (the same accounts, made in the same
    // order on the new node too) are in the queue there.
    let tokens = fans(&cluster, 10);
    let deadline = Instant::now() + DEADLINE;
    while !tokens[..9]
        .iter()
        .all(|t| joined_on(&cluster.nodes[four].http, &t[four]))
    {
        assert!(Instant::now() < deadline, "node 4 never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Node 1 out; the other three go on.
    let (ok, said) = cluster.cli(&["remove-node", "--node", "1"]);
    assert!(ok, "{said}");
    until_voters(&cluster, "{2, 3, 4}", &[2, 3, 4]);
    drop(cluster.nodes[0].process.take());
    let leader = cluster.leader(&tokens[9]);
    assert_ne!(leader, 0, "a removed node leads nothing");
}
