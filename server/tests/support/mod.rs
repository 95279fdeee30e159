//! A server on a loopback port for tests, and a bare HTTP/1.1 client: a
//! request is written by hand and the answer read raw, exactly as a client
//! would see it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingressoja::http::config::ServerConfig;
use ingressoja::http::limits::LimitsConfig;
use ingressoja::http::settings::EventSecurity;
use ingressoja::http::{App, demo_event, serve};
use ingressoja::runtime::{EventId, ManualClock, RuntimeOptions};
use serde_json::Value;

pub mod cluster;
pub mod crash;

pub const NOW: u64 = 1_800_000_000_000;

/// An event for runtime tests: one type (Pista, 100 tickets at R$ 100),
/// open from a second before `NOW` (the admission rate has a second of
/// tokens saved, so a fan who joins at `NOW` is admitted at once), for an
/// hour, the default policy with arrivals in strict order (the clock of
/// these tests never moves on its own to an arrival window's draw).
pub fn runtime_event(name: &str) -> ingressoja_engine::EventConfig {
    use ingressoja_engine::{EventConfig, MINUTE_MS, Policy, Schedule, TicketType};
    EventConfig {
        name: name.into(),
        venue: "Loopback Arena".into(),
        starts_at_ms: NOW + 60 * MINUTE_MS,
        ticket_types: vec![TicketType {
            name: "Pista".into(),
            price_cents: 10_000,
            capacity: 100,
        }],
        schedule: Schedule::with_default_prequeue(NOW - 1_000, NOW + 60 * MINUTE_MS),
        policy: Policy {
            arrival_window_ms: 0,
            ..Policy::default()
        },
        shuffle_seed: 99,
    }
}

pub struct Server {
    pub addr: SocketAddr,
    /// Every letter the server sent (its outbox writes here, not to SMTP).
    pub mail: Arc<parking_lot::Mutex<Vec<ingressoja::mail::Letter>>>,
    /// The server's state, for tests that reach behind the API.
    pub app: Arc<App>,
    /// The server's clock, which tests move.
    pub clock: Arc<ManualClock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
    tokio: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Asks the server to shut down; true if its serve loop has returned
    /// (drained) within `limit`, polling.
    pub fn shut_down_within(&mut self, limit: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(served) = self.served.as_ref() else {
            return true;
        };
        let deadline = Instant::now() + limit;
        while !served.is_finished() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        std::mem::replace(
            &mut self.tokio,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        )
        .shutdown_timeout(std::time::Duration::from_secs(5));
    }
}

pub fn start() -> Server {
    start_with(LimitsConfig::default())
}

pub fn start_with(limits: LimitsConfig) -> Server {
    start_configured(ServerConfig {
        development: true,
        limits,
        ..ServerConfig::default()
    })
}

pub fn start_configured(config: ServerConfig) -> Server {
    start_tuned(config, |_| {})
}

/// A server whose runtime options `tune` adjusts (a small shard queue, …).
pub fn start_tuned(config: ServerConfig, tune: impl FnOnce(&mut RuntimeOptions)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(NOW));
    let mut options = RuntimeOptions::new(dir.path());
    tune(&mut options);
    let mut app = App::start(options, config, clock.clone()).unwrap();
    let mail = Arc::new(parking_lot::Mutex::new(Vec::new()));
    app.mail = Arc::new(
        ingressoja::mail::Outbox::new(
            &app.config.mail,
            ingressoja::mail::Transport::Memory(mail.clone()),
        )
        .unwrap(),
    );
    let app = Arc::new(app);
    // Opened a second ago, arrivals in strict order: see `runtime_event`.
    let mut event = demo_event::demo_event(NOW - 1_000, 7);
    event.policy.arrival_window_ms = 0;
    app.runtime.create_event(event).unwrap().wait().unwrap();
    // The demo event without proof of work or two-factor, so that tests of
    // other things need neither; `security.rs` tests both on its own event.
    app.settings
        .set(
            EventId(0),
            EventSecurity {
                pow_difficulty: 0,
                require_two_factor: false,
            },
        )
        .unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio.spawn(serve(listener, app.clone(), async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        mail,
        app,
        clock,
        stop: Some(stop),
        served: Some(served),
        tokio,
        _dir: dir,
    }
}

impl Server {
    /// The letters sent to `to` so far, oldest first.
    pub fn letters_to(&self, to: &str) -> Vec<ingressoja::mail::Letter> {
        self.mail
            .lock()
            .iter()
            .filter(|l| l.to == to)
            .cloned()
            .collect()
    }

    /// Waits (polling, at most 10 s) until `to` has been sent `count`
    /// letters of `kind`, and returns them.
    pub fn wait_for_letters(
        &self,
        to: &str,
        kind: &str,
        count: usize,
    ) -> Vec<ingressoja::mail::Letter> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<_> = self
                .letters_to(to)
                .into_iter()
                .filter(|l| l.kind == kind)
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{to} got {} {kind} letter(s), not {count}: {:?}",
                found.len(),
                self.mail.lock()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends one request (HTTP/1.1, connection closed after) and returns the
/// status and the JSON body.
pub fn send(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Value) {
    parse(&send_raw(addr, head, body))
}

/// The status and JSON body of a raw answer.
fn parse(text: &str) -> (u16, Value) {
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let json = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// Sends one request and returns the whole answer as text, headers and all.
pub fn send_raw(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    // A server that never answers fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

pub fn call(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    parse(&call_raw(server, method, path, headers, body))
}

/// Like [`call`], returning the whole answer as text, headers and all.
pub fn call_raw(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> String {
    let body = body.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    send_raw(server.addr, &head, body.as_bytes())
}

/// A development session (a bearer header value) for fan `n`: the same `n`
/// is the same account.
pub fn token(server: &Server, n: u64) -> String {
    let body = format!("{{\"email\":\"fan{n}@test.invalid\"}}");
    let (status, body) = call(server, "POST", "/api/dev/session", &[], Some(&body));
    assert_eq!(status, 201, "{body}");
    format!("Bearer {}", body["token"].as_str().unwrap())
}

/// Joins event 0 as `auth` (a `Bearer …` header value) and holds `items`
/// (an items JSON body); the fan is admitted at once in the demo event.
pub fn join_and_hold(server: &Server, auth: &str, items: &str) {
    let me = [("Authorization", auth)];
    call(server, "POST", "/api/events/0/queue", &me, None);
    let (status, cart) = call(server, "POST", "/api/events/0/cart/items", &me, Some(items));
    assert_eq!(status, 200, "{cart}");
}

/// The password test accounts are made with.
pub const PASSWORD: &str = "correct horse battery staple";

/// The session token a response set in its cookie.
pub fn session_cookie(raw: &str) -> String {
    raw.lines()
        .find_map(|line| {
            let lower = line.to_ascii_lowercase();
            lower.starts_with("set-cookie: ij_session=").then(|| {
                line["set-cookie: ij_session=".len()..]
                    .split(';')
                    .next()
                    .unwrap()
                    .to_string()
            })
        })
        .unwrap_or_else(|| panic!("no session cookie in\n{raw}"))
}

/// The TOTP secret stored for an account.
pub fn secret_of(server: &Server, email: &str) -> Vec<u8> {
    let account = server.app.accounts.store().find(email).unwrap().unwrap();
    account.two_factor.unwrap().secret
}

/// An administrator `n` as an operator gets one: made as `ingressoja admin
/// create` makes it, logged in with the password, two-factor enrolled and
/// confirmed with a code; a bearer header value of that two-factor session.
pub fn admin_token(server: &Server, n: u64) -> String {
    let email = format!("admin{n}@test.invalid");
    let hash = ingressoja::accounts::password::hash(PASSWORD).unwrap();
    server
        .app
        .accounts
        .store()
        .create(&email, hash, true, NOW)
        .unwrap();
    let credentials = format!("{{\"email\":\"{email}\",\"password\":\"{PASSWORD}\"}}");
    let raw = call_raw(server, "POST", "/api/session", &[], Some(&credentials));
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let bearer = format!("Bearer {}", session_cookie(&raw));
    let me = [("Authorization", bearer.as_str())];
    let (status, enrollment) = call(server, "POST", "/api/me/two-factor", &me, None);
    assert_eq!(status, 200, "{enrollment}");
    let now_s = ingressoja::runtime::Clock::now_ms(server.clock.as_ref()) / 1_000;
    let code = ingressoja::accounts::totp::code_at(&secret_of(server, &email), now_s);
    let raw = call_raw(
        server,
        "POST",
        "/api/me/two-factor/confirm",
        &me,
        Some(&format!("{{\"code\":\"{code}\"}}")),
    );
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    format!("Bearer {}", session_cookie(&raw))
}

/// Opens a stream (`GET path` with these headers) and returns the socket.
pub fn open_stream(server: &Server, path: &str, headers: &[(&str, &str)]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    stream
}

/// Reads from a stream until `needle` has appeared (polling, 10 s deadline);
/// returns everything read.
pub fn read_until(stream: &mut TcpStream, seen: &mut String, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = [0u8; 8192];
    while !seen.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "{needle:?} never arrived; got:\n{seen}"
        );
        match stream.read(&mut buffer) {
            Ok(0) => panic!("the stream closed before {needle:?}; got:\n{seen}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buffer[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let at = seen.find(needle).unwrap() + needle.len();
    let through = seen[..at].to_string();
    seen.replace_range(..at, "");
    through
}

/// The `ingressoja` binary serving in a process of its own; killed (SIGKILL)
/// when dropped, however the test ends.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `ingressoja serve --listen LISTEN --data DATA --config CONFIG`
/// with `env` set, and waits for the line that says where it listens: the
/// process and its address (`host:port`).
pub fn serve_binary(
    listen: &str,
    data: &std::path::Path,
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> (Process, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
        .args(["serve", "--listen", listen, "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("serving on http://"))
        .expect("the server says where it listens");
    let addr = line.rsplit("http://").next().unwrap().trim().to_string();
    (process, addr)
}

/// Runs `ingressoja ARGS` as an operator would and returns what it printed
/// (stdout, then stderr); fails the test, saying that, when it fails.
pub fn operator(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ingressoja"))
        .args(args)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ingressoja {args:?}: {said}");
    said
}
