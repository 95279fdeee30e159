//! A partition of real processes (the nodes' partition switch: this kernel
//! has no netem): the leader cut off from both other nodes acknowledges
//! none of the joins sent to it (those it took tell their fans, while still
//! cut off, that the outcome is unknown), the other two elect a leader and
//! go on, and once healed every node holds the same queue: every
//! acknowledged join, none of the stranded ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use support::cluster::{Cluster, Conn, DEADLINE, create_event, fans, joined_on, strand_joins};

mod support;

fn join(addr: &str, token: &str) -> Option<u16> {
    let (status, _, _) = Conn::open(addr)
        .ok()?
        .call("POST", "/api/events/0/queue", None, Some(token))
        .ok()?;
    Some(status)
}

#[test]
fn a_cut_off_leader_acknowledges_nothing_and_the_nodes_agree_after_healing() {
    let cluster = Cluster::start(3);
    create_event(&cluster);
    let tokens = fans(&cluster, 32);
    let probe = &tokens[30];
    let old = cluster.leader(probe);
    let old_addr = cluster.nodes[old].http.clone();
    for token in &tokens[..10] {
        assert!(matches!(join(&old_addr, &token[old]), Some(200 | 201)));
    }

    cluster.partition(&[cluster.nodes[old].id]);
    // Sent to the cut-off leader: it applies them but cannot commit them.
    // The fans are patient (30 s): the leader must answer them itself.
    let stranded = strand_joins(&old_addr, tokens[10..20].iter().map(|t| t[old].clone()));
    let new = cluster.leader_but(probe, Some(old));
    for token in &tokens[20..30] {
        let status = join(&cluster.nodes[new].http, &token[new]);
        assert!(matches!(status, Some(200 | 201)), "{status:?}");
    }
    // Cut off past its quorum silence, the old leader refuses a write at
    // once (503 not_leader) instead of holding it until the partition
    // heals. (A request it took before then waits for its commit, up to the
    // client's 5 s read timeout here, so it is asked again.)
    let deadline = Instant::now() + DEADLINE;
    loop {
        match join(&old_addr, &tokens[31][old]) {
            Some(503) => break,
            Some(status) => panic!("the cut-off leader answered a write with {status}"),
            None => assert!(
                Instant::now() < deadline,
                "the cut-off leader never refused a write it cannot commit"
            ),
        }
    }

    // Still cut off, the old leader answers every stranded join itself,
    // none acknowledged: those it had proposed and cannot commit are told
    // the outcome is unknown (after its commit wait) instead of being held
    // until the partition heals; those still queued when it stopped leading
    // are refused (not_leader, or not_answered for the read before it).
    let mut unknown = 0;
    for answer in stranded {
        let answer = answer.join().unwrap();
        match &answer {
            Some((503, code)) if code == "outcome_unknown" => unknown += 1,
            // Refused before it was proposed, or its first read (the fan's
            // place) timed out: not acknowledged either way.
            Some((503, code)) if code == "not_leader" || code == "not_answered" => {}
            _ => panic!("a stranded join was answered {answer:?}"),
        }
    }
    assert!(unknown > 0, "no stranded join had reached the log");
    cluster.partition(&[]);
    let deadline = Instant::now() + DEADLINE;
    for (index, node) in cluster.nodes.iter().enumerate() {
        for (fan, token) in tokens[..30].iter().enumerate() {
            let expected = !(10..20).contains(&fan);
            loop {
                // Until then the node may still be catching up, or (the
                // old leader) refusing reads until it has rolled back.
                if joined_on(&node.http, &token[index]) == Some(expected) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never agreed on fan {fan}",
                    node.id
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
