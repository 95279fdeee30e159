//! Three `ingressoja serve` processes on loopback hold one sale, its log
//! replicated by Raft among them. Fans on every node join and hold while
//! the leader is SIGKILLed again and again (and restarted on its data), and
//! paused once with SIGSTOP for longer than an election. At the end, on the
//! leader and on every other node's state:
//! - every acknowledged join is in the queue and every acknowledged hold
//!   still stands as it was acknowledged;
//! - available + held + sold = capacity;
//! - the time from each kill to the first successful write is printed
//!   (docs/BENCHMARKS.md keeps the figures; the test only bounds it by a
//!   generous deadline, as liveness).
//!
//! Fans hold development sessions made on every node in the same order, so
//! they are the same customers everywhere (accounts and per-event settings
//! are still each node's own until issue 14 replicates them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingressoja::http::settings::{EventSecurity, Settings};
use ingressoja::runtime::{DataDir, EventId};
use serde_json::{Value, json};
use support::Process;

mod support;

const NODES: usize = 3;
const KILLS: usize = 10;
const THREADS: usize = 6;
const FANS_PER_THREAD: usize = 8;
const PASSWORD: &str = "correct horse battery staple";
const SECRET: &str = "loopback-cluster-secret-of-32-characters";
/// Liveness only: far beyond the seconds a failover takes.
const DEADLINE: Duration = Duration::from_secs(60);

/// A keep-alive HTTP/1.1 connection, read by hand.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader })
    }

    /// Status, JSON body and the `Set-Cookie` session value, if any.
    fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        auth: Option<&str>,
    ) -> std::io::Result<(u16, Value, Option<String>)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(auth) = auth {
            head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        self.stream.write_all(head.as_bytes())?;
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(std::io::Error::other("closed"));
        }
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let (mut length, mut cookie) = (0, None);
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
            if name.eq_ignore_ascii_case("set-cookie")
                && let Some(session) = value.trim().strip_prefix("ij_session=")
            {
                cookie = session.split(';').next().map(str::to_string);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, body, cookie))
    }
}

/// A free loopback port (bound, then let go for the node to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    id: usize,
    http: String,
    data: PathBuf,
    process: Option<Process>,
}

struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            drop(node.process.take());
        }
        if let Ok(keep) = std::env::var("KEEP_CLUSTER_LOGS") {
            for node in &self.nodes {
                let name = format!("node{}.log", node.id);
                let _ = std::fs::create_dir_all(&keep);
                let _ = std::fs::copy(self.dir.path().join(&name), Path::new(&keep).join(&name));
            }
        }
    }
}

impl Cluster {
    /// Writes the cluster file and prepares each node's data directory
    /// (an administrator account and the event's security settings,
    /// which each node keeps itself), then starts the nodes.
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut file = format!("secret = \"{SECRET}\"\n");
        let mut nodes = Vec::new();
        for id in 1..=NODES {
            let (peers, http) = (free_port(), free_port());
            file.push_str(&format!(
                "[[nodes]]\nid = {id}\npeers = \"127.0.0.1:{peers}\"\nhttp = \"127.0.0.1:{http}\"\n"
            ));
            let data = dir.path().join(format!("node{id}"));
            prepare(&data);
            nodes.push(Node {
                id,
                http: format!("127.0.0.1:{http}"),
                data,
                process: None,
            });
        }
        std::fs::write(dir.path().join("cluster.toml"), file).unwrap();
        // Every fan comes from 127.0.0.1: no per-address quotas here.
        let config = "development = true\n[limits]\nreads_per_ip = 0\njoins_per_ip = 0\n\
                      joins_per_account = 0\ncarts_per_ip = 0\ncarts_per_account = 0\n";
        std::fs::write(dir.path().join("server.toml"), config).unwrap();
        let mut cluster = Cluster { dir, nodes };
        for index in 0..NODES {
            cluster.spawn(index);
        }
        cluster
    }

    fn spawn(&mut self, index: usize) {
        let node = &self.nodes[index];
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
            .arg("serve")
            .arg("--cluster")
            .arg(self.dir.path().join("cluster.toml"))
            .arg("--node")
            .arg(node.id.to_string())
            .arg("--data")
            .arg(&node.data)
            .arg("--config")
            .arg(self.dir.path().join("server.toml"))
            .stdout(std::process::Stdio::piped())
            .stderr(self.log(node.id))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let process = Process(child);
        let serving = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("serving on http://"));
        assert!(serving, "node {} did not start", node.id);
        self.nodes[index].process = Some(process);
    }

    /// Node `id`'s log (appended to across restarts), kept for a failure's
    /// post-mortem: `KEEP_CLUSTER_LOGS=dir` copies them there.
    fn log(&self, id: usize) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .unwrap()
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.http.clone()).collect()
    }

    /// Which node takes writes now: the one where `probe` joins (200).
    fn leader(&self, probe: &[String]) -> usize {
        self.leader_but(probe, None)
    }

    /// [`Cluster::leader`] among the nodes but `paused`.
    fn leader_but(&self, probe: &[String], paused: Option<usize>) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            for (index, node) in self.nodes.iter().enumerate() {
                if node.process.is_none() || paused == Some(index) {
                    continue;
                }
                let joined = Conn::open(&node.http).and_then(|mut c| {
                    c.call("POST", "/api/events/0/queue", None, Some(&probe[index]))
                });
                if matches!(joined, Ok((200 | 201, _, _))) {
                    return index;
                }
            }
            assert!(Instant::now() < deadline, "no node took a write");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to node `index` through the shell's
    /// own `kill` (no procps needed, no unsafe code here).
    fn signal(&self, index: usize, signal: &str) {
        let command = format!("kill -{signal} {}", self.pid(index));
        let sent = std::process::Command::new("sh")
            .args(["-c", &command])
            .status()
            .unwrap();
        assert!(sent.success(), "{command}");
    }

    fn pid(&self, index: usize) -> String {
        self.nodes[index]
            .process
            .as_ref()
            .unwrap()
            .0
            .id()
            .to_string()
    }
}

/// An administrator and the event's settings (no proof of work, no
/// second factor for fans) in a node's own database.
fn prepare(data: &Path) {
    let db = DataDir::create(data)
        .unwrap()
        .open_db(ingressoja::COLUMN_FAMILIES)
        .unwrap();
    Settings::open(db.clone())
        .unwrap()
        .set(
            EventId(0),
            EventSecurity {
                pow_difficulty: 0,
                require_two_factor: false,
            },
        )
        .unwrap();
    let accounts = ingressoja::accounts::Accounts::open(db).unwrap();
    let hash = ingressoja::accounts::password::hash(PASSWORD).unwrap();
    ingressoja::accounts::AccountStore::create(&accounts, "ops@cluster.invalid", hash, true, 0)
        .unwrap();
}

/// Logs the administrator in on `addr` with both factors.
fn admin(addr: &str) -> String {
    let mut conn = Conn::open(addr).unwrap();
    let login = json!({ "email": "ops@cluster.invalid", "password": PASSWORD });
    let (status, body, cookie) = conn
        .call("POST", "/api/session", Some(&login), None)
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let bearer = format!("Bearer {}", cookie.unwrap());
    let (status, enrollment, _) = conn
        .call("POST", "/api/me/two-factor", None, Some(&bearer))
        .unwrap();
    assert_eq!(status, 200, "{enrollment}");
    let secret = totp_rs::Secret::Encoded(enrollment["secret"].as_str().unwrap().to_string())
        .to_bytes()
        .unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = json!({ "code": ingressoja::accounts::totp::code_at(&secret, now_s) });
    let (status, body, cookie) = conn
        .call(
            "POST",
            "/api/me/two-factor/confirm",
            Some(&code),
            Some(&bearer),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    format!("Bearer {}", cookie.unwrap())
}

/// Creates the sale through whichever node leads.
fn create_event(cluster: &Cluster) {
    let now = ingressoja::runtime::Clock::now_ms(&ingressoja::runtime::SystemClock);
    let event = json!({
        "name": "Replicated", "venue": "Loopback Arena", "starts_at_ms": now + 3_600_000,
        "opens_at_ms": now - 1_000, "closes_at_ms": now + 3_000_000,
        "ticket_types": [{"name": "Pista", "price_cents": 10000, "capacity": 10000, "limit_per_customer": 4}],
        "policy": {"arrival_window_ms": 0, "max_active": 10000, "pow_difficulty": 0, "require_two_factor": false}
    });
    let admins: Vec<String> = cluster.addrs().iter().map(|a| admin(a)).collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        for (addr, admin) in cluster.addrs().iter().zip(&admins) {
            let mut conn = Conn::open(addr).unwrap();
            let (status, body, _) = conn
                .call("POST", "/api/admin/events", Some(&event), Some(admin))
                .unwrap();
            match status {
                201 => {
                    assert_eq!(body["id"], 0, "{body}");
                    return;
                }
                503 => assert_eq!(body["error"]["code"], "not_leader", "{body}"),
                _ => panic!("creating the event: {status} {body}"),
            }
        }
        assert!(Instant::now() < deadline, "no node created the event");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Development sessions for fans `0..count` on every node, in the same
/// order: the same customers everywhere. Returns each fan's token per node.
fn fans(cluster: &Cluster, count: usize) -> Vec<Vec<String>> {
    let mut tokens = vec![Vec::new(); count];
    for addr in cluster.addrs() {
        let mut conn = Conn::open(&addr).unwrap();
        for (fan, per_node) in tokens.iter_mut().enumerate() {
            let email = json!({ "email": format!("fan{fan}@cluster.invalid") });
            let (status, body, _) = conn
                .call("POST", "/api/dev/session", Some(&email), None)
                .unwrap();
            assert_eq!(status, 201, "{body}");
            per_node.push(format!("Bearer {}", body["token"].as_str().unwrap()));
        }
    }
    tokens
}

/// What the fans were told.
#[derive(Default)]
struct Acks {
    joined: std::collections::BTreeSet<usize>,
    /// A fan's last acknowledged cart items, while no change is in flight.
    holds: HashMap<usize, Value>,
    server_errors: Vec<String>,
}

struct Load {
    addrs: Vec<String>,
    tokens: Vec<Vec<String>>,
    acks: Mutex<Acks>,
    stop: AtomicBool,
    /// Where the fans think the leader is.
    guess: AtomicUsize,
    writes: AtomicUsize,
}

impl Load {
    /// The node the fans think leads.
    fn guessed(&self) -> usize {
        self.guess.load(Ordering::Relaxed)
    }

    /// `node` refused (or is down): the fans try the next one, unless
    /// another fan moved on already.
    fn move_on_from(&self, node: usize) {
        let next = (node + 1) % NODES;
        let _ = self
            .guess
            .compare_exchange(node, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// One request by `fan` at the guessed leader; on a refusal or a dead
    /// node the guess moves on. `None`: no answer (a dead node).
    fn post(
        &self,
        fan: usize,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let node = self.guessed();
        let answer = Conn::open(&self.addrs[node])
            .and_then(|mut c| c.call(method, path, body, Some(&self.tokens[fan][node])));
        let Ok((status, body, _)) = answer else {
            self.move_on_from(node);
            return None;
        };
        if status == 503 && body["error"]["code"] == "not_leader" {
            self.move_on_from(node);
        } else if status >= 500 {
            let mut acks = self.acks.lock().unwrap();
            acks.server_errors
                .push(format!("{method} {path}: {status} {body}"));
        }
        Some((status, body))
    }

    /// Joins (once acknowledged, for good), then adds a ticket to the cart
    /// or takes it out again, turn by turn (so the per-customer limit
    /// never stops the load).
    fn fan_step(&self, fan: usize, round: usize) {
        if let Some((200 | 201, _)) = self.post(fan, "POST", "/api/events/0/queue", None) {
            self.acks.lock().unwrap().joined.insert(fan);
        }
        // Until this change is answered, the cart is whatever it made it.
        self.acks.lock().unwrap().holds.remove(&fan);
        let items = json!({ "items": [{ "ticket_type": 0, "quantity": 1 }] });
        let method = if round.is_multiple_of(2) {
            "POST"
        } else {
            "DELETE"
        };
        if let Some((200, cart)) = self.post(fan, method, "/api/events/0/cart/items", Some(&items))
        {
            self.writes.fetch_add(1, Ordering::Relaxed);
            let mut acks = self.acks.lock().unwrap();
            acks.holds.insert(fan, cart["items"].clone());
        }
    }
}

fn fan_thread(load: Arc<Load>, fans: Vec<usize>) {
    let mut round = 0;
    while !load.stop.load(Ordering::Relaxed) {
        let fan = fans[round % fans.len()];
        load.fan_step(fan, round / fans.len());
        round += 1;
    }
}

/// Waits until at least `more` holds beyond `since` are acknowledged.
fn until_writes(load: &Load, since: usize, more: usize) {
    let deadline = Instant::now() + DEADLINE;
    while load.writes.load(Ordering::Relaxed) < since + more {
        assert!(Instant::now() < deadline, "the load made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn three_nodes_hold_a_drop_through_leader_kills_and_a_pause() {
    let mut cluster = Cluster::start();
    create_event(&cluster);
    let fan_count = THREADS * FANS_PER_THREAD;
    // The probe fans (one per node, the last ids) measure failovers.
    let tokens = fans(&cluster, fan_count + 1);
    let probe = tokens[fan_count].clone();
    let load = Arc::new(Load {
        addrs: cluster.addrs(),
        tokens: tokens[..fan_count].to_vec(),
        acks: Mutex::new(Acks::default()),
        stop: AtomicBool::new(false),
        guess: AtomicUsize::new(0),
        writes: AtomicUsize::new(0),
    });
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let load = load.clone();
            let fans = (t * FANS_PER_THREAD..(t + 1) * FANS_PER_THREAD).collect();
            std::thread::spawn(move || fan_thread(load, fans))
        })
        .collect();

    let mut failovers = Vec::new();
    for kill in 0..=KILLS {
        until_writes(&load, load.writes.load(Ordering::Relaxed), 50);
        let leader = cluster.leader(&probe);
        eprintln!("round {kill}: node {} leads", leader + 1);
        let killed = Instant::now();
        if kill == KILLS {
            // Once, a pause longer than an election instead of a kill: the
            // paused leader wakes up deposed and must not answer from what
            // it numbered before.
            cluster.signal(leader, "STOP");
            let _ = cluster.leader_but(&probe, Some(leader));
            failovers.push(killed.elapsed());
            cluster.signal(leader, "CONT");
        } else {
            drop(cluster.nodes[leader].process.take());
            let _ = cluster.leader(&probe);
            failovers.push(killed.elapsed());
            cluster.spawn(leader);
        }
    }
    until_writes(&load, load.writes.load(Ordering::Relaxed), 50);
    load.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }

    let acks = load.acks.lock().unwrap();
    assert!(acks.server_errors.is_empty(), "{:?}", acks.server_errors);
    let leader = cluster.leader(&probe);
    let mut conn = Conn::open(&cluster.nodes[leader].http).unwrap();
    for &fan in &acks.joined {
        let token = &load.tokens[fan][leader];
        let (status, body, _) = conn
            .call("GET", "/api/events/0/queue", None, Some(token))
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_ne!(body["status"], "not_joined", "fan {fan}'s join was lost");
    }
    for (&fan, items) in &acks.holds {
        let token = &load.tokens[fan][leader];
        let (status, cart, _) = conn
            .call("GET", "/api/events/0/cart", None, Some(token))
            .unwrap();
        assert_eq!(status, 200, "{cart}");
        assert_eq!(
            &cart["items"], items,
            "fan {fan}'s acknowledged hold changed"
        );
    }
    let (status, event, _) = conn.call("GET", "/api/events/0", None, None).unwrap();
    assert_eq!(status, 200, "{event}");
    for kind in event["ticket_types"].as_array().unwrap() {
        let counted = ["available", "held", "sold"]
            .iter()
            .map(|k| kind[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(counted, kind["capacity"].as_u64().unwrap(), "{kind}");
    }
    failovers.sort();
    let ms: Vec<u128> = failovers.iter().map(Duration::as_millis).collect();
    println!(
        "kill to first acknowledged write, ms (sorted, {} failovers): {ms:?}; p50 {} ms, max {} ms; {} holds acknowledged",
        ms.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        load.writes.load(Ordering::Relaxed)
    );
}
