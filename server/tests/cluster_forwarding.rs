//! Any node takes any request (three `ingressoja serve --cluster`
//! processes on loopback): a follower sends writes to the leader and passes
//! its answer back, answered writes name their log position, and a read
//! that names a position its node has not applied goes to the leader,
//! unless the position is made up (it is signed); a fan cannot pose as a
//! forwarding node.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ingressoja::cluster::forward::Forwarder;
use serde_json::{Value, json};
use support::cluster::{Cluster, Conn, DEADLINE, Headers, SECRET, create_event, fans};

mod support;

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, String)],
) -> (u16, Value, Headers) {
    Conn::open(addr)
        .unwrap()
        .exchange(method, path, body, headers)
        .unwrap()
}

/// The node that answered, by its id.
fn answered_by(headers: &Headers) -> usize {
    header(headers, "x-ingressoja-node")
        .expect("every answer in a cluster names its node")
        .parse()
        .unwrap()
}

#[test]
fn any_node_takes_writes_and_a_fan_reads_its_own_writes_on_any_node() {
    let cluster = Cluster::start(3);
    create_event(&cluster);
    let tokens = fans(&cluster, 7);
    let probe = &tokens[6];
    let leader = cluster.leader(probe);
    let leader_id = cluster.nodes[leader].id;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let addr = |index: usize| cluster.nodes[index].http.clone();
    let auth = |fan: usize, index: usize| ("Authorization", tokens[fan][index].clone());

    for fan in 0..6 {
        let (write_at, read_at) = (followers[fan % 2], followers[(fan + 1) % 2]);
        // The join, sent to a follower, is answered by the leader.
        let (status, body, headers) = call(
            &addr(write_at),
            "POST",
            "/api/events/0/queue",
            None,
            &[auth(fan, write_at)],
        );
        assert!(matches!(status, 200 | 201), "{status} {body}");
        assert_eq!(answered_by(&headers), leader_id);
        assert!(header(&headers, "x-ingressoja-seen").is_some());

        // A ticket in the cart, through the same follower, once the fan's
        // turn comes.
        let items = json!({ "items": [{ "ticket_type": 0, "quantity": 1 }] });
        let deadline = Instant::now() + DEADLINE;
        let (cart, seen) = loop {
            let (status, body, headers) = call(
                &addr(write_at),
                "POST",
                "/api/events/0/cart/items",
                Some(&items),
                &[auth(fan, write_at)],
            );
            if status == 200 {
                let seen = header(&headers, "x-ingressoja-seen").unwrap().to_string();
                break (body, seen);
            }
            assert!(Instant::now() < deadline, "never held: {status} {body}");
            std::thread::sleep(Duration::from_millis(20));
        };

        // Read on the other follower with the position it was shown: the
        // hold is there, whoever answers.
        let (status, read, _) = call(
            &addr(read_at),
            "GET",
            "/api/events/0/cart",
            None,
            &[auth(fan, read_at), ("X-IngressoJa-Seen", seen.clone())],
        );
        assert_eq!(status, 200, "{read}");
        assert_eq!(read["items"], cart["items"], "fan {fan} read a stale cart");
    }

    // A read that names a position no node has reached (signed with the
    // cluster's key, as only a node can) waits briefly, then goes to the
    // leader; one that names a made-up position (unsigned, or with another
    // position's signature) is answered where it lands, as one that names
    // none: a client cannot make followers wait and send its reads to the
    // leader.
    let follower = followers[0];
    let signer = Forwarder::new(0, BTreeMap::new(), SECRET).unwrap();
    let far_ahead = signer.signed_seen(u64::MAX / 2);
    let (status, _, headers) = call(
        &addr(follower),
        "GET",
        "/api/events/0/cart",
        None,
        &[auth(0, follower), ("X-IngressoJa-Seen", far_ahead)],
    );
    assert_eq!(status, 200);
    assert_eq!(answered_by(&headers), leader_id);
    let last_seen = signer.signed_seen(5);
    let (position, tag) = last_seen.split_once('.').unwrap();
    let made_up = [
        (u64::MAX / 2).to_string(),
        format!("{}.{tag}", u64::MAX / 2),
        format!("{}.{tag}", position.parse::<u64>().unwrap() + 1_000_000),
    ];
    for made_up in made_up {
        let started = Instant::now();
        let (status, _, headers) = call(
            &addr(follower),
            "GET",
            "/api/events/0/cart",
            None,
            &[auth(0, follower), ("X-IngressoJa-Seen", made_up.clone())],
        );
        assert_eq!(status, 200);
        assert_eq!(
            answered_by(&headers),
            cluster.nodes[follower].id,
            "{made_up} was believed"
        );
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{made_up}: the follower waited for it"
        );
    }
    let (status, _, headers) = call(
        &addr(follower),
        "GET",
        "/api/events/0/cart",
        None,
        &[auth(0, follower)],
    );
    assert_eq!(status, 200);
    assert_eq!(answered_by(&headers), cluster.nodes[follower].id);

    // A fan posing as a forwarding node, naming another fan (or an
    // administrator) as who is asking, is not believed: no session, 401.
    let posed = [
        ("X-IngressoJa-Forwarded", "0".repeat(64)),
        ("X-IngressoJa-Client", "203.0.113.7".to_string()),
        ("X-IngressoJa-Identity", "00".repeat(40)),
    ];
    let (status, body, _) = call(&addr(leader), "POST", "/api/events/0/queue", None, &posed);
    assert_eq!(status, 401, "{body}");
}

/// The fan's place in line as node `index` sees it (`tokens`: the fan's
/// session on each node).
fn queue_status(cluster: &Cluster, index: usize, tokens: &[String]) -> Value {
    let (status, body, _) = call(
        &cluster.nodes[index].http,
        "GET",
        "/api/events/0/queue",
        None,
        &[("Authorization", tokens[index].clone())],
    );
    assert_eq!(status, 200, "{body}");
    body["status"].clone()
}

/// A write the leader received and never answered (stopped mid-request) is
/// not sent again to the next leader - it may have been done, and adding a
/// ticket twice is not harmless: the fan is told the outcome is unknown
/// (503 `outcome_unknown`, with Retry-After), and a retry, once the fan
/// has looked, does it once.
#[test]
fn a_write_the_leader_never_answered_is_reported_unknown_and_not_sent_again() {
    let cluster = Cluster::start(3);
    create_event(&cluster);
    let tokens = fans(&cluster, 2);
    let leader = cluster.leader(&tokens[1]);
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    // The leader stops; at once (before the followers' election timeout)
    // a join reaches a follower, which still sends it to the leader.
    cluster.signal(leader, "STOP");
    let started = Instant::now();
    let (status, body, headers) = Conn::open(&cluster.nodes[follower].http)
        .unwrap()
        .patient(Duration::from_secs(30))
        .unwrap()
        .exchange(
            "POST",
            "/api/events/0/queue",
            None,
            &[("Authorization", tokens[0][follower].clone())],
        )
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "outcome_unknown", "{body}");
    assert!(header(&headers, "retry-after").is_some(), "no Retry-After");
    eprintln!("outcome_unknown after {:?}", started.elapsed());

    // Not sent again: the new leader never saw the join.
    let new_leader = cluster.leader_but(&tokens[1], Some(leader));
    assert!(others.contains(&new_leader));
    let (status, body, _) = call(
        &cluster.nodes[new_leader].http,
        "GET",
        "/api/events/0/queue",
        None,
        &[("Authorization", tokens[0][new_leader].clone())],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["status"], "not_joined",
        "the join was sent again: {body}"
    );

    // The old leader comes back deposed and does nothing with it; the fan
    // looks, then joins once.
    cluster.signal(leader, "CONT");
    let (status, body, _) = call(
        &cluster.nodes[follower].http,
        "POST",
        "/api/events/0/queue",
        None,
        &[("Authorization", tokens[0][follower].clone())],
    );
    assert!(matches!(status, 200 | 201), "{status} {body}");
    assert_ne!(queue_status(&cluster, new_leader, &tokens[0]), "not_joined");
}

/// A checkout answered through one follower, its leader then killed, and
/// the same checkout (same Idempotency-Key) sent again through the other
/// follower to the new leader: the same order comes back, nothing is sold
/// twice (the key is in the replicated engine, not in a node's memory).
#[test]
fn a_checkout_retried_across_a_failover_through_a_follower_sells_once() {
    let mut cluster = Cluster::start(3);
    create_event(&cluster);
    let tokens = fans(&cluster, 2);
    let leader = cluster.leader(&tokens[1]);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (first, second) = (followers[0], followers[1]);
    let fan = |index: usize| ("Authorization", tokens[0][index].clone());
    let (status, body, _) = call(
        &cluster.nodes[first].http,
        "POST",
        "/api/events/0/queue",
        None,
        &[fan(first)],
    );
    assert!(matches!(status, 200 | 201), "{status} {body}");
    let items = json!({ "items": [{ "ticket_type": 0, "quantity": 2 }] });
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body, _) = call(
            &cluster.nodes[first].http,
            "POST",
            "/api/events/0/cart/items",
            Some(&items),
            &[fan(first)],
        );
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never held: {status} {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let card = json!({ "card_number": "4242 4242 4242 4242" });
    let pay = |index: usize| [fan(index), ("Idempotency-Key", "failover-1".to_string())];
    let (status, order, _) = call(
        &cluster.nodes[first].http,
        "POST",
        "/api/events/0/checkout",
        Some(&card),
        &pay(first),
    );
    assert_eq!(status, 201, "{order}");

    // The leader dies; the fan, unsure, pays again through another node.
    drop(cluster.nodes[leader].process.take());
    let deadline = Instant::now() + DEADLINE;
    let again = loop {
        let (status, body, _) = call(
            &cluster.nodes[second].http,
            "POST",
            "/api/events/0/checkout",
            Some(&card),
            &pay(second),
        );
        match status {
            // The group is electing: retry, as the Retry-After says.
            503 => assert!(Instant::now() < deadline, "no new leader: {body}"),
            _ => break (status, body),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(again.0, 200, "{}", again.1);
    assert_eq!(again.1["id"], order["id"], "a second order: {}", again.1);
    assert_eq!(again.1["tickets"], order["tickets"]);

    let new_leader = cluster.leader_but(&tokens[1], Some(leader));
    let (_, event, _) = call(
        &cluster.nodes[new_leader].http,
        "GET",
        "/api/events/0",
        None,
        &[],
    );
    assert_eq!(event["ticket_types"][0]["sold"], 2, "{event}");
    let (status, orders, _) = call(
        &cluster.nodes[new_leader].http,
        "GET",
        "/api/me/orders",
        None,
        &[fan(new_leader)],
    );
    assert_eq!(status, 200, "{orders}");
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "{orders}");
}
