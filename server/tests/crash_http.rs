//! The crash test from the fan's side, through HTTP: fans on keep-alive
//! connections join, hold and pay against the `ingressoja` binary, some
//! double-submitting the same Idempotency-Key within milliseconds, some
//! giving up on an answer and retrying the key; the server is SIGKILLed
//! again and again (some kills right after a repeated key was answered) and
//! restarted on the same data. At the end:
//! - every acknowledged order is there with the same tickets and codes, and
//!   its key still answers with it (one key, one order, forever);
//! - every acknowledged hold still stands as it was acknowledged;
//! - every charge the sandbox gateway's ledger holds is captured into
//!   exactly one order, or was given back (nothing left authorized);
//! - available + held + sold = capacity, and no answer was a 5xx.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ingressoja::http::config::ServerConfig;
use ingressoja::http::settings::EventSecurity;
use ingressoja::http::{App, demo_event};
use ingressoja::payments::gateway::ChargeState;
use ingressoja::payments::sandbox::{LEDGER_FILE, ledger_dir, read_ledger};
use ingressoja::runtime::{EventId, Runtime, RuntimeOptions, SystemClock};
use serde_json::{Value, json};
use support::Process;

mod support;

const KILLS: usize = 12;
const THREADS: usize = 12;
const FANS_PER_THREAD: usize = 4;
const CARD: &str = "4242 4242 4242 4242";

/// A data directory with one open event (no proof of work, no two-factor:
/// the fans here hold development sessions), made in this process.
fn prepare(data: &Path) {
    let clock = Arc::new(SystemClock);
    let app = App::start(RuntimeOptions::new(data), ServerConfig::default(), clock).unwrap();
    let now = ingressoja::runtime::Clock::now_ms(&SystemClock);
    let mut event = demo_event::demo_event(now, 11);
    event.schedule.prequeue_opens_at_ms = now - 2;
    event.schedule.opens_at_ms = now - 1;
    event.policy.per_event_limit = 50;
    for t in 0..event.ticket_types.len() {
        event.policy.per_type_limits.set(t, 50);
    }
    event.policy.max_active = 10_000;
    app.runtime.create_event(event).unwrap().wait().unwrap();
    app.settings
        .set(
            EventId(0),
            EventSecurity {
                pow_difficulty: 0,
                require_two_factor: false,
            },
        )
        .unwrap();
}

fn spawn(dir: &Path, listen: &str) -> (Process, String, Duration) {
    let started = Instant::now();
    // A slow disk (5 ms before each group commit): what a fan is shown
    // stays unwritten long enough for a kill to land in between.
    let (server, addr) = support::serve_binary(
        listen,
        &dir.join("data"),
        &dir.join("server.toml"),
        &[("INGRESSOJA_SIMULATED_WRITE_DELAY_MS", "5")],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) =
            Conn::open(&addr).and_then(|mut c| c.call("GET", "/readyz", None, &[]))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::yield_now();
    }
    (server, addr, started.elapsed())
}

/// A keep-alive HTTP/1.1 connection, read by hand.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader })
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<()> {
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
        self.stream.write_all(head.as_bytes())
    }

    fn receive(&mut self) -> std::io::Result<(u16, Value)> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(std::io::Error::other("closed"));
        }
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// Pays for `token`'s hold with the key `key` (the test card).
    fn checkout(&mut self, token: &str, key: &str) -> std::io::Result<(u16, Value)> {
        let headers = [("Authorization", token), ("Idempotency-Key", key)];
        let pay = json!({ "card_number": CARD });
        self.call("POST", "/api/events/0/checkout", Some(&pay), &headers)
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> std::io::Result<(u16, Value)> {
        self.send(method, path, body, headers)?;
        self.receive()
    }
}

/// What the fans were told, shared by the fan threads.
#[derive(Default)]
struct Acks {
    /// Idempotency-Key → (fan's token, order id, its tickets' codes).
    orders: BTreeMap<String, (String, u64, Vec<String>)>,
    /// A fan's last acknowledged hold (expiry, items), while no checkout
    /// has been tried since.
    holds: HashMap<String, (u64, Value)>,
    /// Keys whose checkout got no answer (a kill): retried at the end.
    unanswered: BTreeMap<String, String>,
    /// 5xx answers seen.
    server_errors: Vec<String>,
}

/// Everything the fan threads share.
struct Shared {
    addr: String,
    acks: Mutex<Acks>,
    stop: AtomicBool,
    answered: AtomicU64,
    duplicates: mpsc::SyncSender<()>,
}

fn tokens(addr: &str, count: usize) -> Vec<String> {
    let mut conn = Conn::open(addr).unwrap();
    (0..count)
        .map(|i| {
            let (status, body) = conn
                .call(
                    "POST",
                    "/api/dev/session",
                    Some(&json!({ "email": format!("fan{i}@crash.invalid") })),
                    &[],
                )
                .unwrap();
            assert_eq!(status, 201, "{body}");
            format!("Bearer {}", body["token"].as_str().unwrap())
        })
        .collect()
}

/// One fan's next step, on `conn`; errors are connection errors (a kill).
fn fan_step(
    shared: &Shared,
    conn: &mut Conn,
    token: &str,
    round: u64,
    rng: &mut u64,
) -> std::io::Result<()> {
    let auth = [("Authorization", token)];
    let (status, _) = conn.call("POST", "/api/events/0/queue", None, &auth)?;
    note_status(shared, status, "join");
    let items = json!({ "items": [{ "ticket_type": 0, "quantity": 1 }] });
    // Until this add is answered, the cart is whatever it made it.
    shared.acks.lock().unwrap().holds.remove(token);
    let (status, cart) = conn.call("POST", "/api/events/0/cart/items", Some(&items), &auth)?;
    note_status(shared, status, "hold");
    if status != 200 {
        return Ok(());
    }
    shared.acks.lock().unwrap().holds.insert(
        token.to_string(),
        (
            cart["expires_at_ms"].as_u64().unwrap(),
            cart["items"].clone(),
        ),
    );
    *rng = ingressoja_engine::shuffle::mix64(*rng);
    if rng.is_multiple_of(5) {
        // Keeps the hold for now (the next round adds to it).
        return Ok(());
    }
    let key = format!("{}-{round}", &token[7..19]);
    {
        let mut acks = shared.acks.lock().unwrap();
        acks.holds.remove(token);
        acks.unanswered.insert(key.clone(), token.to_string());
    }
    *rng = ingressoja_engine::shuffle::mix64(*rng);
    let pay = json!({ "card_number": CARD });
    let headers = [("Authorization", token), ("Idempotency-Key", key.as_str())];
    match *rng % 4 {
        // A double tap: the same key on two connections at once.
        0 => {
            let mut second = Conn::open(&shared.addr)?;
            conn.send("POST", "/api/events/0/checkout", Some(&pay), &headers)?;
            second.send("POST", "/api/events/0/checkout", Some(&pay), &headers)?;
            let first = conn.receive()?;
            let again = second.receive()?;
            let first = until_answered(conn, first, &pay, &headers)?;
            let again = until_answered(&mut second, again, &pay, &headers)?;
            note_checkout(shared, &key, token, first);
            if note_checkout(shared, &key, token, again) {
                let _ = shared.duplicates.try_send(());
            }
        }
        // A client that gives up on the answer and retries the key on a
        // new connection.
        1 => {
            let mut impatient = Conn::open(&shared.addr)?;
            impatient.send("POST", "/api/events/0/checkout", Some(&pay), &headers)?;
            drop(impatient);
            let answer = conn.call("POST", "/api/events/0/checkout", Some(&pay), &headers)?;
            let answer = until_answered(conn, answer, &pay, &headers)?;
            if note_checkout(shared, &key, token, answer) {
                let _ = shared.duplicates.try_send(());
            }
        }
        _ => {
            let answer = conn.call("POST", "/api/events/0/checkout", Some(&pay), &headers)?;
            let answer = until_answered(conn, answer, &pay, &headers)?;
            note_checkout(shared, &key, token, answer);
        }
    }
    Ok(())
}

/// A client honouring 409 `payment_in_progress`: it asks again with the
/// same key until the payment has an outcome (polling, with a deadline).
fn until_answered(
    conn: &mut Conn,
    mut answer: (u16, Value),
    pay: &Value,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while answer.0 == 409 && answer.1["error"]["code"] == "payment_in_progress" {
        assert!(
            Instant::now() < deadline,
            "a payment stayed in progress for 30 s"
        );
        std::thread::yield_now();
        answer = conn.call("POST", "/api/events/0/checkout", Some(pay), headers)?;
    }
    Ok(answer)
}

fn note_status(shared: &Shared, status: u16, what: &str) {
    if status >= 500 {
        let mut acks = shared.acks.lock().unwrap();
        acks.server_errors.push(format!("{what}: {status}"));
    }
}

/// Records a checkout's answer; true when it answered with an order.
fn note_checkout(shared: &Shared, key: &str, token: &str, (status, body): (u16, Value)) -> bool {
    note_status(shared, status, "checkout");
    let mut acks = shared.acks.lock().unwrap();
    match status {
        200 | 201 => {
            let order = body["id"].as_u64().unwrap();
            let codes: Vec<String> = body["tickets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["code"].as_str().unwrap().to_string())
                .collect();
            if let Some(known) = acks.orders.get(key) {
                assert_eq!(
                    (known.1, &known.2),
                    (order, &codes),
                    "key {key} answered with two different orders"
                );
            }
            acks.orders
                .insert(key.to_string(), (token.to_string(), order, codes));
            if status == 201 {
                // A new order takes the whole cart (a key retried late pays
                // whatever the fan holds by then).
                acks.holds.remove(token);
            }
            acks.unanswered.remove(key);
            shared.answered.fetch_add(1, Ordering::Relaxed);
            true
        }
        // Still in progress: the key stays unanswered and is retried.
        409 if body["error"]["code"] == "payment_in_progress" => false,
        _ => {
            acks.unanswered.remove(key);
            false
        }
    }
}

fn fan_thread(shared: Arc<Shared>, tokens: Vec<String>, seed: u64) {
    let mut rng = seed;
    let mut conn: Option<Conn> = None;
    let mut round = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        round += 1;
        let token = &tokens[round as usize % tokens.len()];
        let live = match conn.as_mut() {
            Some(conn) => conn,
            None => match Conn::open(&shared.addr) {
                Ok(fresh) => conn.insert(fresh),
                Err(_) => {
                    std::thread::yield_now();
                    continue;
                }
            },
        };
        if fan_step(&shared, live, token, round, &mut rng).is_err() {
            conn = None;
        }
    }
}

/// Retries every unanswered key until it is answered (an order, or why
/// not), polling with a deadline.
fn settle_unanswered(shared: &Shared) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: Vec<(String, String)> = shared
            .acks
            .lock()
            .unwrap()
            .unanswered
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "keys never answered: {pending:?}"
        );
        let mut conn = Conn::open(&shared.addr).unwrap();
        for (key, token) in pending {
            let answer = conn.checkout(&token, &key).unwrap();
            note_checkout(shared, &key, &token, answer);
        }
    }
}

fn metric(addr: &str, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn acknowledged_orders_holds_and_charges_survive_repeated_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("server.toml"),
        "development = true\n[limits]\nreads_per_ip = 0\njoins_per_ip = 0\n\
         joins_per_account = 0\ncarts_per_ip = 0\ncarts_per_account = 0\n",
    )
    .unwrap();
    prepare(&dir.path().join("data"));
    let (mut server, addr, first_ready) = spawn(dir.path(), "127.0.0.1:0");
    let fans = tokens(&addr, THREADS * FANS_PER_THREAD);
    let (duplicates, duplicate_answered) = mpsc::sync_channel(1);
    let shared = Arc::new(Shared {
        addr: addr.clone(),
        acks: Mutex::new(Acks::default()),
        stop: AtomicBool::new(false),
        answered: AtomicU64::new(0),
        duplicates,
    });
    let threads: Vec<_> = fans
        .chunks(FANS_PER_THREAD)
        .enumerate()
        .map(|(i, mine)| {
            let (shared, mine) = (shared.clone(), mine.to_vec());
            std::thread::spawn(move || fan_thread(shared, mine, 7 + i as u64))
        })
        .collect();

    let mut ready_times = vec![first_ready];
    let mut kills_after_duplicate = 0;
    for kill in 0..KILLS {
        let deadline = Instant::now() + Duration::from_secs(60);
        let wanted = shared.answered.load(Ordering::Relaxed) + 3 + (kill as u64 * 7) % 11;
        if kill % 2 == 1 {
            // Right after a repeated key was answered with its order.
            while duplicate_answered.try_recv().is_ok() {}
            match duplicate_answered.recv_timeout(Duration::from_secs(30)) {
                Ok(()) => kills_after_duplicate += 1,
                Err(_) => panic!("no repeated key was answered in 30 s"),
            }
        } else {
            while shared.answered.load(Ordering::Relaxed) < wanted {
                assert!(Instant::now() < deadline, "no progress before kill {kill}");
                std::thread::yield_now();
            }
        }
        drop(server);
        let (restarted, _, ready) = spawn(dir.path(), &addr);
        server = restarted;
        ready_times.push(ready);
    }
    shared.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    settle_unanswered(&shared);

    let acks = std::mem::take(&mut *shared.acks.lock().unwrap());
    assert!(
        acks.server_errors.is_empty(),
        "5xx answers: {:?}",
        acks.server_errors
    );
    // Every acknowledged order, asked for again by its key.
    let mut conn = Conn::open(&addr).unwrap();
    for (key, (token, order, codes)) in &acks.orders {
        let (status, body) = conn.checkout(token, key).unwrap();
        assert_eq!(status, 200, "key {key}: {body}");
        assert_eq!(
            body["id"].as_u64(),
            Some(*order),
            "key {key} maps to another order"
        );
        let now: Vec<&str> = body["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            now,
            codes.iter().map(String::as_str).collect::<Vec<_>>(),
            "key {key}: codes changed"
        );
    }
    for (token, (expires_at_ms, items)) in &acks.holds {
        let (status, cart) = conn
            .call(
                "GET",
                "/api/events/0/cart",
                None,
                &[("Authorization", token.as_str())],
            )
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            (cart["expires_at_ms"].as_u64(), &cart["items"]),
            (Some(*expires_at_ms), items),
            "an acknowledged hold changed"
        );
    }
    // Every payment left in flight by a kill gets settled.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&addr, "ingressoja_payments_in_flight") != Some(0.0) {
        assert!(Instant::now() < deadline, "payments still in flight");
        std::thread::yield_now();
    }
    drop(conn);
    // A graceful stop, then the books: the ledger against the orders.
    let pid = server.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::yield_now();
    }
    let data = dir.path().join("data");
    let ledger = read_ledger(&ledger_dir(&data).join(LEDGER_FILE)).unwrap();
    let runtime = Runtime::start(RuntimeOptions::new(&data), Arc::new(SystemClock)).unwrap();
    let state = runtime
        .query(|state| state.clone())
        .and_then(|pending| pending.wait())
        .unwrap();
    state.check_invariants().unwrap();
    assert!(state.payments.is_empty(), "{:?}", state.payments);
    let engine = &state.events[&EventId(0)];
    let mut paid_by: HashMap<u64, u32> = HashMap::new();
    let mut keys = HashMap::new();
    let mut orders = 0;
    while let Some(order) = engine.order(ingressoja_engine::OrderId(orders)) {
        orders += 1;
        *paid_by.entry(order.payment_ref).or_default() += 1;
        assert!(
            keys.insert((order.customer, order.idempotency_key), orders)
                .is_none(),
            "one key, two orders"
        );
    }
    assert!(orders as usize >= acks.orders.len());
    let (mut captured, mut given_back, mut never_charged) = (0, 0, 0);
    for (reference, charge) in &ledger {
        match charge {
            ChargeState::Captured { .. } => {
                captured += 1;
                assert_eq!(
                    paid_by.get(reference),
                    Some(&1),
                    "charge {reference} pays no order"
                );
            }
            ChargeState::Voided | ChargeState::Refunded => given_back += 1,
            ChargeState::Declined | ChargeState::Unknown => never_charged += 1,
            ChargeState::Authorized { .. } => panic!("charge {reference} left authorized"),
            // This load pays by card only.
            ChargeState::Awaiting { .. } => panic!("charge {reference} is a Pix charge"),
        }
    }
    for (reference, count) in &paid_by {
        assert_eq!(*count, 1, "payment {reference} pays {count} orders");
        assert!(
            matches!(ledger.get(reference), Some(ChargeState::Captured { .. })),
            "an order whose payment {reference} was not captured"
        );
    }
    assert!(acks.orders.len() >= KILLS, "too little work between kills");
    let ready_ms: Vec<u128> = ready_times.iter().map(Duration::as_millis).collect();
    println!(
        "crash_http: {KILLS} kills ({kills_after_duplicate} right after a repeated key's answer), \
         {} acknowledged orders, lost 0, {} acknowledged holds standing, {} orders in the log, \
         ledger: {captured} captured, {given_back} given back, {never_charged} never charged, \
         0 left authorized; time to ready per start (ms): {ready_ms:?}",
        acks.orders.len(),
        acks.holds.len(),
        orders,
    );
}
