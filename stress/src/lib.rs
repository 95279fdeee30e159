//! The stress tool: a whole drop against a running server over real HTTP.
//!
//! An operator creates the event (admin API: capacity, policy, proof-of-work
//! difficulty, and `require_two_factor: false`, since virtual fans have no
//! authenticator); the server must run in development mode, which hands the
//! fans sessions. The tool sends `fans` virtual fans at the event in a
//! front-loaded arrival spike. Each fan takes a session, solves the join's
//! proof of work, joins the queue, waits for its turn on its
//! own server-sent event stream (a second connection, as a browser's
//! `EventSource`), puts one to three tickets in its cart, then pays (some
//! after a declined card) or abandons the cart, and leaves the queue. 429 and 503 are retried after their
//! Retry-After, as a real client would. Every step's latency goes into an
//! HdrHistogram. At the end it verifies through the API that, for every
//! ticket type, available + held + sold = capacity, nothing is left in a
//! hold, the tickets the fans report buying add up to the tickets sold, and
//! nobody bought more than the limit.
//!
//! - `client.rs`: the keep-alive JSON client and the event-stream reader.
//! - `watch.rs`: watchers holding many event streams open (`--watch`).
//! - `fairness.rs`: populations that differ in network or accounts, and
//!   who gets the tickets (`--fairness`).
//! - `main.rs`: arguments, progress bar, printing and the JSON summary.

pub mod client;
pub mod fairness;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

use client::{Broken, Client};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// `host:port` of the server.
    pub addr: String,
    /// Virtual fans.
    pub fans: u64,
    /// The event the drop is for.
    pub event: u64,
    /// Fans arrive within this many seconds (front-loaded).
    pub spike_seconds: u64,
    /// Fans in flight at once at most.
    pub concurrency: usize,
    /// Seeds the fans' choices.
    pub seed: u64,
}

/// Latencies and counts, shared by the fans.
#[derive(Default)]
pub struct Report {
    steps: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    codes: Mutex<BTreeMap<String, u64>>,
    bought: Mutex<u64>,
    over_limit: Mutex<u64>,
    fans_done: std::sync::atomic::AtomicU64,
}

impl Report {
    fn record(&self, step: &'static str, started: Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut steps = self.steps.lock();
        let histogram = steps.entry(step).or_insert_with(|| {
            Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
        });
        let _ = histogram.record(micros.max(1));
    }

    fn count(&self, code: &str) {
        *self.codes.lock().entry(code.to_string()).or_default() += 1;
    }

    /// Fans that finished their journey.
    pub fn fans_done(&self) -> u64 {
        self.fans_done.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Summary {
    /// Everything measured, as JSON.
    pub json: Value,
    /// Whether every consistency check passed.
    pub consistent: bool,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether sending `method path` again is harmless when its answer was
/// lost (the node died mid-request behind a balancer): reads, leaving and
/// releasing, joining (a second join returns the same place), taking a
/// session, and anything with an Idempotency-Key (a checkout). Only adding
/// to the cart is not: the fan does not know whether it held, and leaves
/// (which gives any hold back) instead.
fn safe_to_resend(method: &Method, path: &str, headers: &[(&str, &str)]) -> bool {
    *method != Method::POST
        || path.ends_with("/queue")
        || path == "/api/dev/session"
        || headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
}

/// One request, retried after Retry-After on 429/503 (at most 30 times);
/// and, when safe to send again ([`safe_to_resend`]), on a new connection
/// after the balancer answered 502/504 or the connection broke.
async fn call(
    client: &mut Client,
    report: &Report,
    step: &'static str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(StatusCode, Value), Broken> {
    let resend = safe_to_resend(&method, path, headers);
    for _ in 0..30 {
        let started = Instant::now();
        let (status, answer) = match client.call(method.clone(), path, headers, body).await {
            Ok(answered) => answered,
            Err(Broken(_)) if resend => {
                report.count("connection_lost");
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Err(Broken(again)) = client.reconnect().await {
                    report.count(&again);
                }
                continue;
            }
            // Not safe to send again (adding to the cart): the fan does not
            // know whether it held, and moves on (leaving gives any hold
            // back), on a new connection.
            Err(Broken(reason)) => {
                report.count("connection_lost_unsafe");
                client.reconnect().await?;
                let lost = json!({ "error": { "code": "connection_lost", "message": reason } });
                return Ok((StatusCode::BAD_GATEWAY, lost));
            }
        };
        report.record(step, started);
        let lost = status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT;
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
            || (lost && resend)
        {
            report.count(answer["error"]["code"].as_str().unwrap_or(if lost {
                "balancer_lost_it"
            } else {
                "shed"
            }));
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if !status.is_success() {
            report.count(answer["error"]["code"].as_str().unwrap_or("http_error"));
        }
        return Ok((status, answer));
    }
    Err(Broken("gave up after 30 retries".into()))
}

/// How a fan waits for their turn: on their own server-sent event stream,
/// as the waiting room page does, reconnecting (with Last-Event-ID semantics:
/// the first message is the current state) if the server closes it. True
/// once they are shopping; false if their turn will not come (sale closed,
/// turn over) or ten minutes passed.
async fn wait_for_turn(
    options: &Options,
    report: &Report,
    fan: &Client,
    base: &str,
) -> Result<bool, Broken> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let path = format!("{base}/me/stream");
    while Instant::now() < deadline {
        let started = Instant::now();
        let mut connection = Client::connect(&options.addr).await?;
        connection.auth.clone_from(&fan.auth);
        connection.seen.clone_from(&fan.seen);
        let mut events = match connection.stream(&path).await {
            Ok(events) => events,
            // Refused (a 4xx other than 429): coming back will not help.
            Err(Broken(reason))
                if reason.starts_with("stream: 4") && !reason.starts_with("stream: 429") =>
            {
                return Err(Broken(reason));
            }
            Err(Broken(reason)) => {
                // Shed (429/503), or the balancer lost it (502): come back
                // later, as EventSource would.
                report.count(&reason);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        report.record("stream_open", started);
        let remaining = deadline.saturating_duration_since(Instant::now());
        loop {
            let Ok(next) = tokio::time::timeout(remaining, events.next()).await else {
                return Ok(false);
            };
            // A stream that breaks (its node died behind the balancer) is
            // opened again, as EventSource does; its first message is the
            // fan's state then, so nothing is missed.
            let next = match next {
                Ok(next) => next,
                Err(Broken(_)) => {
                    report.count("stream_lost");
                    break;
                }
            };
            let Some((name, data)) = next else {
                report.count("stream_closed_by_server");
                break;
            };
            let status = if name == "admitted" {
                "shopping"
            } else {
                data["queue"]["status"].as_str().unwrap_or("")
            };
            match status {
                "shopping" => return Ok(true),
                "waiting" | "prequeue" | "" => {}
                _ => return Ok(false),
            }
        }
    }
    Ok(false)
}

/// Leaves the queue when done, giving the slot to the next in line (409
/// when the turn already ended: nothing to give back).
async fn leave(client: &mut Client, report: &Report, base: &str) -> Result<(), Broken> {
    let path = format!("{base}/queue");
    call(client, report, "leave", Method::DELETE, &path, &[], None)
        .await
        .map(|_| ())
}

/// Gives the whole cart back.
async fn release(client: &mut Client, report: &Report, base: &str) -> Result<(), Broken> {
    let path = format!("{base}/cart");
    call(client, report, "release", Method::DELETE, &path, &[], None)
        .await
        .map(|_| ())
}

async fn fan(
    options: Arc<Options>,
    report: Arc<Report>,
    event: u64,
    limit: u64,
    id: u64,
) -> Result<(), Broken> {
    let rng = mix(options.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut client = Client::connect(&options.addr).await?;
    let email = format!("stress-{}-{id}@load.invalid", options.seed);
    let (_, session) = call(
        &mut client,
        &report,
        "session",
        Method::POST,
        "/api/dev/session",
        &[],
        Some(&json!({ "email": email })),
    )
    .await?;
    let Some(token) = session["token"].as_str() else {
        return Err(Broken(format!("no session: {session}")));
    };
    client.auth = Some(format!("Bearer {token}"));
    let base = format!("/api/events/{event}");
    let (_, challenge) = call(
        &mut client,
        &report,
        "challenge",
        Method::GET,
        &format!("{base}/challenge"),
        &[],
        None,
    )
    .await?;
    let started = Instant::now();
    let proof = match (
        challenge["challenge"].as_str(),
        challenge["difficulty"].as_u64(),
    ) {
        (Some(text), Some(difficulty)) if difficulty > 0 => {
            let (text, difficulty) = (
                text.to_string(),
                u8::try_from(difficulty).unwrap_or(u8::MAX),
            );
            // CPU work: off the async workers, as a browser's Web Worker.
            let solution = tokio::task::spawn_blocking(move || {
                let solution = pow_solution(&text, difficulty);
                (text, solution)
            })
            .await
            .map_err(|e| Broken(format!("solver: {e}")))?;
            report.record("proof_of_work", started);
            Some(json!({ "challenge": solution.0, "solution": solution.1 }))
        }
        _ => None,
    };
    call(
        &mut client,
        &report,
        "join",
        Method::POST,
        &format!("{base}/queue"),
        &[],
        proof.as_ref(),
    )
    .await?;
    let waiting = Instant::now();
    if !wait_for_turn(&options, &report, &client, &base).await? {
        leave(&mut client, &report, &base).await?;
        return Ok(());
    }
    report.record("wait_for_turn", waiting);
    let preferred = match rng % 10 {
        0..=5 => 0,
        6..=8 => 1,
        _ => 2,
    };
    let quantity = 1 + (rng >> 8) % 3;
    let mut status = StatusCode::CONFLICT;
    // Another fan's hold may come back (abandoned, expired, declined): a
    // fan who found nothing settles for one ticket of any type and tries
    // again for a while, as someone watching the stock on the page would.
    for attempt in 0..40u64 {
        let (ticket_type, quantity) = if attempt == 0 {
            (preferred, quantity)
        } else {
            ((preferred + attempt) % 3, 1)
        };
        let items = json!({ "items": [{ "ticket_type": ticket_type, "quantity": quantity }] });
        let (answer, error) = call(
            &mut client,
            &report,
            "hold",
            Method::POST,
            &format!("{base}/cart/items"),
            &[],
            Some(&items),
        )
        .await?;
        status = answer;
        if status.is_success() || error["error"]["code"] != "insufficient_stock" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !status.is_success() {
        return leave(&mut client, &report, &base).await;
    }
    let intent = (rng >> 16) % 100;
    if intent < 20 {
        // Abandons the cart, then the queue.
        release(&mut client, &report, &base).await?;
        return leave(&mut client, &report, &base).await;
    }
    let key = format!("stress-{id}");
    let headers = [("idempotency-key", key.as_str())];
    if intent < 30 {
        let declined = json!({ "card_number": "4000000000000002" });
        let decline_key = format!("stress-{id}-declined");
        call(
            &mut client,
            &report,
            "checkout",
            Method::POST,
            &format!("{base}/checkout"),
            &[("idempotency-key", decline_key.as_str())],
            Some(&declined),
        )
        .await?;
    }
    let card = json!({ "card_number": "4242424242424242" });
    let (status, order) = call(
        &mut client,
        &report,
        "checkout",
        Method::POST,
        &format!("{base}/checkout"),
        &headers,
        Some(&card),
    )
    .await?;
    if status.is_success() {
        let bought = order["tickets"].as_array().map_or(0, |t| t.len() as u64);
        *report.bought.lock() += bought;
        if bought > limit {
            *report.over_limit.lock() += 1;
        }
    }
    // Done (paid, or gave up after a failed payment): leaving gives back
    // any hold and the shopping slot to the next in line at once.
    leave(&mut client, &report, &base).await
}

/// A solution of a join challenge: SHA-256(challenge ":" n) with
/// `difficulty` leading zero bits (what the waiting room's worker does).
pub fn pow_solution(challenge: &str, difficulty: u8) -> String {
    use sha2::{Digest, Sha256};
    (0u64..)
        .find(|n| {
            let digest = Sha256::digest(format!("{challenge}:{n}").as_bytes());
            let zeros = digest
                .iter()
                .position(|b| *b != 0)
                .map_or(256, |i| i * 8 + digest[i].leading_zeros() as usize);
            zeros >= usize::from(difficulty)
        })
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Runs the drop; `progress` is called as fans finish.
pub async fn run(
    options: Options,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Summary, Broken> {
    let options = Arc::new(options);
    let report = Arc::new(Report::default());
    let mut reader = Client::connect(&options.addr).await?;
    let event_id = options.event;
    let (status, event) = reader
        .call(Method::GET, &format!("/api/events/{event_id}"), &[], None)
        .await?;
    if status != StatusCode::OK {
        return Err(Broken(format!("no event {event_id} ({status}): {event}")));
    }
    let limit = event["limit_per_customer"].as_u64().unwrap_or(0);

    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let progress = Arc::new(progress);
    let mut tasks = tokio::task::JoinSet::new();
    let spike_ms = options.spike_seconds.max(1) * 1_000;
    for id in 1..=options.fans {
        // Front-loaded: the earlier of two uniform draws.
        let a = mix(options.seed ^ id) % spike_ms;
        let b = mix(options.seed ^ id ^ 0xABCD) % spike_ms;
        let arrival = started + Duration::from_millis(a.min(b));
        let (options, report, permits, progress) = (
            options.clone(),
            report.clone(),
            permits.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            tokio::time::sleep_until(arrival.into()).await;
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            if let Err(Broken(reason)) = fan(options, report.clone(), event_id, limit, id).await {
                // The reason's start: what broke and its status, without
                // the details that would make every count its own.
                let what: String = reason.chars().take(32).collect();
                report.count(&format!("broken: {what}"));
            }
            let done = report
                .fans_done
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            progress(done);
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();

    // A fresh connection: the server closes idle keep-alive connections,
    // and this one sat idle through the drop.
    let mut reader = Client::connect(&options.addr).await?;
    let (_, event) = reader
        .call(Method::GET, &format!("/api/events/{event_id}"), &[], None)
        .await?;
    let mut consistent = true;
    let mut sold_total = 0;
    let mut held_total = 0;
    for ticket_type in event["ticket_types"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let n = |k: &str| ticket_type[k].as_u64().unwrap_or(u64::MAX);
        consistent &=
            n("available") + n("held") + n("sold") == n("capacity") && n("sold") <= n("capacity");
        sold_total += n("sold");
        held_total += n("held");
    }
    let bought = *report.bought.lock();
    let over_limit = *report.over_limit.lock();
    consistent &= held_total == 0 && bought == sold_total && over_limit == 0;

    let steps: BTreeMap<&str, Value> = report
        .steps
        .lock()
        .iter()
        .map(|(step, h)| {
            (*step, json!({
                "count": h.len(),
                "p50_us": h.value_at_quantile(0.5), "p90_us": h.value_at_quantile(0.9),
                "p99_us": h.value_at_quantile(0.99), "p999_us": h.value_at_quantile(0.999), "max_us": h.max(),
            }))
        })
        .collect();
    let requests: u64 = report.steps.lock().values().map(|h| h.len()).sum();
    let json = json!({
        "fans": options.fans,
        "tickets": sold_total + held_total + event["ticket_types"].as_array().map_or(0, |ts| ts.iter().map(|t| t["available"].as_u64().unwrap_or(0)).sum()),
        "seconds": elapsed.as_secs_f64(),
        "requests": requests,
        "requests_per_second": requests as f64 / elapsed.as_secs_f64().max(0.001),
        "steps": steps,
        "responses_by_error_code": *report.codes.lock(),
        "verification": {
            "sold": sold_total, "held_at_end": held_total, "bought_by_fans": bought,
            "fans_over_limit": over_limit, "consistent": consistent,
        },
    });
    Ok(Summary { json, consistent })
}
