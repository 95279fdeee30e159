//! Accounts across a cluster's nodes (issue 14), three `ingressoja serve
//! --cluster` processes on loopback: an account made on one node logs in
//! on another; a TOTP code accepted on one node is refused on every other
//! (the last accepted step is committed, not cached); a session ended on
//! one node (logout, a password change) is refused on the others as soon
//! as they apply the change, and at once for a client that names the
//! position it was shown (`X-IngressoJa-Seen`, as pages do by cookie).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::cluster::{Cluster, Conn, DEADLINE};

const PASSWORD: &str = "correct horse battery staple";

/// A client that carries the log position it was last shown from node to
/// node, as a browser carries the `ij_seen` cookie.
#[derive(Default)]
struct Client {
    seen: Option<String>,
}

struct Answer {
    status: u16,
    body: Value,
    session: Option<String>,
}

impl Client {
    fn call(
        &mut self,
        addr: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut headers = Vec::new();
        if let Some(token) = token {
            headers.push(("Authorization", format!("Bearer {token}")));
        }
        if let Some(seen) = &self.seen {
            headers.push(("X-IngressoJa-Seen", seen.clone()));
        }
        let mut conn = Conn::open(addr).unwrap();
        let (status, body, answered) = conn.exchange(method, path, body, &headers).unwrap();
        let header = |name: &str| {
            answered
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        if let Some(seen) = header("x-ingressoja-seen") {
            self.seen = Some(seen);
        }
        let session = answered
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .find_map(|(_, value)| value.strip_prefix("ij_session="))
            .and_then(|session| session.split(';').next())
            .filter(|session| !session.is_empty())
            .map(str::to_string);
        Answer {
            status,
            body,
            session,
        }
    }
}

fn code_at(secret: &[u8], unix_seconds: u64) -> String {
    ingressoja::accounts::totp::code_at(secret, unix_seconds)
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until `token` is refused on `addr` by a client that names no
/// position (an attacker holding a copied token); how long it took.
fn refused_within_deadline(addr: &str, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        let status = Client::default()
            .call(addr, "GET", "/api/me", None, Some(token))
            .status;
        if status == 401 {
            return started.elapsed();
        }
        assert_eq!(status, 200, "GET /api/me on {addr}");
        assert!(
            started.elapsed() < DEADLINE,
            "{addr} kept taking an ended session"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_account_its_codes_and_its_sessions_are_the_same_on_every_node() {
    let cluster = Cluster::start(3);
    let nodes = cluster.addrs();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut fan = Client::default();
    let email = json!({ "email": "fan@cluster.invalid", "password": PASSWORD });

    // Registered on A, logged in on B.
    let registration =
        json!({ "email": "fan@cluster.invalid", "password": PASSWORD, "accept_terms": true });
    let registered = fan.call(a, "POST", "/api/accounts", Some(&registration), None);
    assert_eq!(registered.status, 201, "{}", registered.body);
    let login = fan.call(b, "POST", "/api/session", Some(&email), None);
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(
        login.body["account"]["id"],
        registered.body["account"]["id"]
    );
    let first = login.session.unwrap();

    // Two-factor enrolled on C, confirmed on A.
    let enrolled = fan.call(c, "POST", "/api/me/two-factor", None, Some(&first));
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    let secret = totp_rs::Secret::Encoded(enrolled.body["secret"].as_str().unwrap().into())
        .to_bytes()
        .unwrap();
    let now = now_s();
    let confirm = json!({ "code": code_at(&secret, now) });
    let confirmed = fan.call(
        a,
        "POST",
        "/api/me/two-factor/confirm",
        Some(&confirm),
        Some(&first),
    );
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let second = confirmed.session.unwrap();

    // The code accepted on A is refused on B, in a new login.
    let waiting = fan.call(b, "POST", "/api/session", Some(&email), None);
    assert_eq!(waiting.body["stage"], "two_factor", "{}", waiting.body);
    let waiting = waiting.session.unwrap();
    let replayed = fan.call(
        b,
        "POST",
        "/api/session/code",
        Some(&confirm),
        Some(&waiting),
    );
    assert_eq!(replayed.status, 401, "replayed on B: {}", replayed.body);

    // The next step's code is accepted on C, for the login begun on B ...
    let next = json!({ "code": code_at(&secret, now + 30) });
    let done = fan.call(c, "POST", "/api/session/code", Some(&next), Some(&waiting));
    assert_eq!(done.status, 200, "{}", done.body);
    let third = done.session.unwrap();
    // ... and refused on A, by another device that saw it (a new login
    // from a client that never talked to C: no position named).
    let mut other = Client::default();
    let elsewhere = other.call(a, "POST", "/api/session", Some(&email), None);
    assert_eq!(elsewhere.body["stage"], "two_factor", "{}", elsewhere.body);
    let pending = elsewhere.session.unwrap();
    // A may not have applied C's change yet: its edit of the account then
    // names the account as it was, and the log, where C's came first,
    // refuses it; A reads again and refuses the code.
    let again = other.call(a, "POST", "/api/session/code", Some(&next), Some(&pending));
    assert_eq!(
        again.status, 401,
        "a used code was accepted on A: {}",
        again.body
    );
    assert_eq!(
        again.body["error"]["code"], "invalid_code",
        "{}",
        again.body
    );

    // Logged out on B: refused on A at once for the fan who was shown the
    // logout, and for anyone within the replication lag.
    let out = fan.call(b, "DELETE", "/api/session", None, Some(&third));
    assert_eq!(out.status, 200, "{}", out.body);
    let after = fan.call(a, "GET", "/api/me", None, Some(&third));
    assert_eq!(after.status, 401, "an ended session was taken on A");
    let lag = refused_within_deadline(c, &third);
    println!("a logout on B reached C within {lag:?}");

    // A password change on C ends the session made on A everywhere.
    assert_eq!(
        fan.call(a, "GET", "/api/me", None, Some(&second)).status,
        200
    );
    let change = json!({ "current_password": PASSWORD, "new_password": "another horse battery" });
    let changed = fan.call(c, "POST", "/api/me/password", Some(&change), Some(&second));
    assert!(changed.status < 300, "{} {}", changed.status, changed.body);
    let lag = refused_within_deadline(b, &second);
    println!("a password change on C reached B within {lag:?}");
    assert_eq!(
        fan.call(a, "GET", "/api/me", None, Some(&second)).status,
        401
    );
    let old = fan.call(b, "POST", "/api/session", Some(&email), None);
    assert_eq!(
        old.status, 401,
        "the old password still logs in: {}",
        old.body
    );
}

/// An administrator made on the running cluster (`admin create --cluster`,
/// through its leader) logs in on any node; the dashboard's cluster panel
/// shows every node as the nodes themselves report, and `/metrics` names
/// each node's place in the group.
#[test]
fn operators_make_an_administrator_anywhere_and_see_every_node() {
    let cluster = Cluster::start(3);
    let nodes = cluster.addrs();
    // Once the group has settled on a leader (a second election may follow
    // the founding; a change caught in one is reported as maybe made, and
    // the tool does not guess).
    let admin = support::cluster::admin(&nodes[1]);
    let mut made = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
        .args([
            "admin",
            "create",
            "chief@cluster.invalid",
            "--password-stdin",
            "--cluster",
        ])
        .arg(cluster.file())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut made.stdin.take().unwrap(),
        format!("{PASSWORD}\n").as_bytes(),
    )
    .unwrap();
    let made = made.wait_with_output().unwrap();
    assert!(
        made.status.success(),
        "{}{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );
    // Committed through the leader: every node has it once it applies it.
    let chief = json!({ "email": "chief@cluster.invalid", "password": PASSWORD });
    for node in &nodes {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let login = Client::default().call(node, "POST", "/api/session", Some(&chief), None);
            if login.status == 200 {
                break;
            }
            assert_eq!(login.status, 401, "{}", login.body);
            assert!(
                Instant::now() < deadline,
                "{node} never knew the administrator"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    let token = admin.trim_start_matches("Bearer ");
    let mut client = Client::default();
    let stats = client.call(&nodes[2], "GET", "/api/admin/stats", None, Some(token));
    assert_eq!(stats.status, 200, "{}", stats.body);
    let panel = stats.body["cluster"].as_array().unwrap();
    assert_eq!(panel.len(), 3, "{}", stats.body);
    assert!(panel.iter().all(|n| n["reachable"] == true), "{panel:?}");
    assert_eq!(panel.iter().filter(|n| n["state"] == "Leader").count(), 1);
    assert_eq!(panel.iter().filter(|n| n["this_node"] == true).count(), 1);
    assert_eq!(panel[2]["this_node"], true, "asked node 3");

    // A backup taken on a follower (any replica holds the whole sale and
    // the shared state) checks out with the offline tool.
    let follower = nodes
        .iter()
        .find(|addr| text_of(addr, "/readyz").contains("\"role\":\"follower\""))
        .unwrap();
    let backup = client.call(follower, "POST", "/api/admin/backup", None, Some(token));
    assert_eq!(backup.status, 201, "{}", backup.body);
    let path = backup.body["backup"].as_str().unwrap().to_owned();
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
        .args(["backup", "verify", &path])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "a follower's backup does not verify: {}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    let text = text_of(&nodes[2], "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for name in [
        "ingressoja_raft_term",
        "ingressoja_raft_leader",
        "ingressoja_raft_is_leader",
        "ingressoja_raft_last_applied_index",
        "ingressoja_forwarded_requests_total",
        "ingressoja_shared_state_applied_seq",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
}

/// A GET's body as text (the metrics are not JSON).
fn text_of(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}
