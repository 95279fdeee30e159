//! A cluster of `ingressoja serve --cluster` processes on loopback for the
//! tests, with a bare HTTP/1.1 client: the cluster file, each node's data
//! directory prepared (an administrator, the event's settings), the group
//! founded with `ingressoja cluster init`, and the helpers that find the
//! leader, log in, create the sale and make fans.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ingressoja::http::settings::{EventSecurity, Settings};
use ingressoja::runtime::{DataDir, EventId};
use serde_json::{Value, json};

use super::Process;

pub const PASSWORD: &str = "correct horse battery staple";
pub const SECRET: &str = "loopback-cluster-secret-of-32-characters";
/// Liveness only: far beyond the seconds a failover takes.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// An answer's headers, names in lower case.
pub type Headers = Vec<(String, String)>;

/// A keep-alive HTTP/1.1 connection, read by hand.
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader })
    }

    /// Waits up to `wait` for each answer (5 s by default).
    pub fn patient(self, wait: Duration) -> std::io::Result<Conn> {
        self.stream.set_read_timeout(Some(wait))?;
        Ok(self)
    }

    /// Status, JSON body and the `Set-Cookie` session value, if any.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        auth: Option<&str>,
    ) -> std::io::Result<(u16, Value, Option<String>)> {
        let extra: Vec<(&str, String)> = auth
            .map(|auth| ("Authorization", auth.to_string()))
            .into_iter()
            .collect();
        let (status, body, headers) = self.exchange(method, path, body, &extra)?;
        let cookie = headers
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .find_map(|(_, value)| value.strip_prefix("ij_session="))
            .and_then(|session| session.split(';').next())
            .map(str::to_string);
        Ok((status, body, cookie))
    }

    /// Status, JSON body and every header (names in lower case), sending
    /// `headers` besides the usual ones.
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> std::io::Result<(u16, Value, Headers)> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
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
        let (mut length, mut received) = (0, Vec::new());
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
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                length = value.trim().parse().unwrap_or(0);
            }
            received.push((name, value.trim().to_string()));
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, body, received))
    }
}

/// A free loopback port for a node, kept for its life (restarts too).
///
/// Below the kernel's ephemeral range (32768 and up): a port taken there
/// and let go can be handed to any outgoing connection in the meantime -
/// the fans' thousands of them - and the node then fails to bind it (a
/// cluster test once failed so under CI's load). Ports are drawn from a
/// per-process sequence, so tests in one binary never pick the same, and
/// each is checked free by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = u16::try_from(LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN);
}

pub struct Node {
    pub id: usize,
    pub http: String,
    pub peers: String,
    pub data: PathBuf,
    pub process: Option<Process>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    /// Where the nodes' data directories go (`dir` unless a test puts
    /// them on a disk of its own).
    pub data_root: Option<PathBuf>,
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
    /// which each node keeps itself), starts `count` nodes and founds the
    /// group (`ingressoja cluster init`).
    pub fn start(count: usize) -> Cluster {
        Cluster::start_on(count, None)
    }

    /// [`Cluster::start`] with the nodes' data directories under
    /// `data_root` (the power-loss test's forgetful disk).
    pub fn start_on(count: usize, data_root: Option<&Path>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Every fan comes from 127.0.0.1: no per-address quotas here.
        // HAProxy (`Cluster::balancer`) connects from 127.0.0.1 too.
        let config = "development = true\ntrusted_proxies = [\"127.0.0.1\"]\n\
                      [limits]\nreads_per_ip = 0\njoins_per_ip = 0\n\
                      joins_per_account = 0\ncarts_per_ip = 0\ncarts_per_account = 0\n";
        std::fs::write(dir.path().join("server.toml"), config).unwrap();
        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
            data_root: data_root.map(Path::to_path_buf),
        };
        for _ in 0..count {
            cluster.add();
        }
        for index in 0..count {
            cluster.spawn(index);
        }
        let deadline = Instant::now() + DEADLINE;
        while !cluster.cli(&["init"]).0 {
            assert!(Instant::now() < deadline, "the group was never founded");
            std::thread::sleep(Duration::from_millis(20));
        }
        cluster
    }

    /// A new node in the cluster file (not started): free ports, a
    /// prepared data directory. Returns its index.
    pub fn add(&mut self) -> usize {
        let id = self.nodes.len() + 1;
        let (peers, http) = (free_port(), free_port());
        let root = self.data_root.clone();
        let data = root
            .as_deref()
            .unwrap_or(self.dir.path())
            .join(format!("node{id}"));
        prepare(&data);
        self.nodes.push(Node {
            id,
            http: format!("127.0.0.1:{http}"),
            peers: format!("127.0.0.1:{peers}"),
            data,
            process: None,
        });
        let mut file = format!("secret = \"{SECRET}\"\n");
        for node in &self.nodes {
            file.push_str(&format!(
                "[[nodes]]\nid = {}\npeers = \"{}\"\nhttp = \"{}\"\n",
                node.id, node.peers, node.http
            ));
        }
        std::fs::write(self.dir.path().join("cluster.toml"), file).unwrap();
        self.nodes.len() - 1
    }

    fn partition_file(&self) -> PathBuf {
        self.dir.path().join("partition")
    }

    /// Cuts nodes `ids` off from every other (none: heals), through the
    /// nodes' partition switch (`cluster::transport::Partition`).
    pub fn partition(&self, ids: &[usize]) {
        let lines: String = ids.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(self.partition_file(), lines).unwrap();
    }

    /// Runs `ingressoja cluster ARGS --cluster FILE`: whether it succeeded,
    /// and what it printed.
    /// HAProxy (Debian's) in front of the nodes, configured by
    /// `ingressoja cluster haproxy-config`, on a free loopback port; stopped
    /// when dropped.
    pub fn balancer(&self) -> Balancer {
        let addr = format!("127.0.0.1:{}", free_port());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
            .args(["cluster", "haproxy-config", "--listen", &addr, "--cluster"])
            .arg(self.file())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let config = self.dir.path().join("haproxy.cfg");
        std::fs::write(&config, &out.stdout).unwrap();
        let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("haproxy");
        let log = std::fs::File::create(self.dir.path().join("haproxy.log")).unwrap();
        let process = std::process::Command::new(haproxy)
            .args(["-W", "-db", "-f"])
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("haproxy (Debian's haproxy; `make test` installs it)");
        let mut balancer = Balancer { process, addr };
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(&balancer.addr).is_err() {
            assert!(
                balancer.process.try_wait().unwrap().is_none(),
                "HAProxy stopped: {}",
                std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "HAProxy never listened");
            std::thread::sleep(Duration::from_millis(10));
        }
        balancer
    }

    /// The cluster file.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("cluster.toml")
    }

    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
            .arg("cluster")
            .args(args)
            .arg("--cluster")
            .arg(self.dir.path().join("cluster.toml"))
            .output()
            .unwrap();
        let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
        said.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), said)
    }

    pub fn spawn(&mut self, index: usize) {
        let node = &self.nodes[index];
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
            .env("INGRESSOJA_TEST_PARTITION_FILE", self.partition_file())
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
        if !serving {
            let log = std::fs::read_to_string(self.dir.path().join(format!("node{}.log", node.id)));
            panic!(
                "node {} did not start; its log:\n{}",
                node.id,
                log.unwrap_or_default()
            );
        }
        self.nodes[index].process = Some(process);
    }

    /// Node `id`'s log (appended to across restarts), kept for a failure's
    /// post-mortem: `KEEP_CLUSTER_LOGS=dir` copies them there.
    pub fn log(&self, id: usize) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node{id}.log")))
            .unwrap()
    }

    /// The running nodes' http addresses (all nodes', in order).
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.http.clone()).collect()
    }

    /// Which node takes writes now: the one whose `/readyz` says it leads,
    /// where `probe` then joins (200). (Any node answers a join, through
    /// the leader: the role tells them apart.)
    pub fn leader(&self, probe: &[String]) -> usize {
        self.leader_but(probe, None)
    }

    /// [`Cluster::leader`] among the nodes but `paused`.
    pub fn leader_but(&self, probe: &[String], paused: Option<usize>) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            for (index, node) in self.nodes.iter().enumerate() {
                if node.process.is_none() || paused == Some(index) {
                    continue;
                }
                let leads = Conn::open(&node.http)
                    .and_then(|mut c| c.call("GET", "/readyz", None, None))
                    .is_ok_and(|(status, body, _)| status == 200 && body["role"] == "leader");
                if !leads {
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
    pub fn signal(&self, index: usize, signal: &str) {
        let command = format!("kill -{signal} {}", self.pid(index));
        let sent = std::process::Command::new("sh")
            .args(["-c", &command])
            .status()
            .unwrap();
        assert!(sent.success(), "{command}");
    }

    pub fn pid(&self, index: usize) -> String {
        self.nodes[index]
            .process
            .as_ref()
            .unwrap()
            .0
            .id()
            .to_string()
    }
}

/// HAProxy in front of a [`Cluster`].
pub struct Balancer {
    process: std::process::Child,
    /// Where fans reach it.
    pub addr: String,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// An administrator and the event's settings (no proof of work, no
/// second factor for fans) in a node's own database.
pub fn prepare(data: &Path) {
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
    // The same bytes on every node (one hash, one salt): the nodes then
    // start from the same shared state, which the log's changes, applied
    // alike everywhere (compare-and-set included), keep the same.
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| ingressoja::accounts::password::hash(PASSWORD).unwrap());
    let accounts = ingressoja::accounts::Accounts::open(db).unwrap();
    ingressoja::accounts::AccountStore::create(
        &accounts,
        "ops@cluster.invalid",
        hash.clone(),
        true,
        0,
    )
    .unwrap();
}

/// Logs the administrator in on `addr` with both factors.
pub fn admin(addr: &str) -> String {
    let mut conn = Conn::open(addr).unwrap();
    let login = json!({ "email": "ops@cluster.invalid", "password": PASSWORD });
    // Right after the group is founded a second election may be under
    // way: the login is refused (503) until a leader takes it.
    let deadline = Instant::now() + DEADLINE;
    let (status, body, cookie) = loop {
        let answer = conn
            .call("POST", "/api/session", Some(&login), None)
            .unwrap();
        if answer.0 != 503 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
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
pub fn create_event(cluster: &Cluster) {
    let now = ingressoja::runtime::Clock::now_ms(&ingressoja::runtime::SystemClock);
    let event = json!({
        "name": "Replicated", "venue": "Loopback Arena", "starts_at_ms": now + 3_600_000,
        "opens_at_ms": now - 1_000, "closes_at_ms": now + 3_000_000,
        "ticket_types": [{"name": "Pista", "price_cents": 10000, "capacity": 10000, "limit_per_customer": 4}],
        "policy": {"arrival_window_ms": 0, "max_active": 10000, "pow_difficulty": 0, "require_two_factor": false}
    });
    // One login: sessions are the same on every node.
    let admin = admin(&cluster.addrs()[0]);
    let deadline = Instant::now() + DEADLINE;
    loop {
        for addr in cluster.addrs() {
            let mut conn = Conn::open(&addr).unwrap();
            let (status, body, _) = conn
                .call("POST", "/api/admin/events", Some(&event), Some(&admin))
                .unwrap();
            match status {
                201 => {
                    assert_eq!(body["id"], 0, "{body}");
                    return;
                }
                503 => assert_eq!(body["error"]["code"], "not_leader", "{body}"),
                // The session is not applied on that node yet.
                401 => {}
                _ => panic!("creating the event: {status} {body}"),
            }
        }
        assert!(Instant::now() < deadline, "no node created the event");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Development sessions for fans `0..count` on every node, in the same
/// order: the same customers everywhere. Returns each fan's token per node.
pub fn fans(cluster: &Cluster, count: usize) -> Vec<Vec<String>> {
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

/// Whether the fan is in event 0's queue as node `addr` sees it; `None`
/// while that node does not answer (a deposed leader before its roll-back,
/// a node still starting).
pub fn joined_on(addr: &str, token: &str) -> Option<bool> {
    let (status, body, _) = Conn::open(addr)
        .ok()?
        .call("GET", "/api/events/0/queue", None, Some(token))
        .ok()?;
    (status == 200).then(|| body["status"] != "not_joined")
}

/// Joins sent to a cut-off leader at `addr`, one thread per fan, each
/// patient (30 s): the leader must answer them itself. Each thread gives
/// the status and error code it got (`None`: no answer).
pub fn strand_joins(
    addr: &str,
    tokens: impl IntoIterator<Item = String>,
) -> Vec<std::thread::JoinHandle<Option<(u16, Value)>>> {
    tokens
        .into_iter()
        .map(|token| {
            let addr = addr.to_owned();
            std::thread::spawn(move || {
                let (status, body, _) = Conn::open(&addr)
                    .ok()?
                    .patient(Duration::from_secs(30))
                    .ok()?
                    .call("POST", "/api/events/0/queue", None, Some(&token))
                    .ok()?;
                Some((status, body["error"]["code"].clone()))
            })
        })
        .collect()
}
