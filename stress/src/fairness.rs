//! Fairness by measurement: who gets the tickets when populations of fans
//! differ only in their network or their number of accounts.
//!
//! Each population has its own round trip (added on its own sockets, see
//! [`Link`]) and its own client addresses: fans stand at one loopback address
//! each, a bot farm's accounts share one. Fans behave as the sale page does:
//! the page is open (challenge solved) before they join, they wait on their
//! event stream, hold up to the limit, pay, and say they are done. Bots poll
//! their place instead of waiting on a stream, at a rate of their choosing.
//! Everyone arrives either during the pre-queue or in the first
//! `within_ms` after opening.
//!
//! The report gives, per population: its share of the fans, of the buyers
//! (with a 95% interval) and of the tickets, the median place in line, and
//! the median time from a turn starting (the server's `admitted_at_ms`) to
//! the client learning of it. A fair sale gives each population its share
//! of the fans, within the interval.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::client::{Broken, Client, Link};
use crate::{mix, pow_solution};

/// How a population's clients behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// A fan with the sale page: one address each, waits on the stream.
    Fan,
    /// A bot farm: every account behind one address, polling its place
    /// every `poll_ms`.
    Bot {
        /// Between two polls.
        poll_ms: u64,
    },
}

/// One population of clients.
#[derive(Clone, Debug)]
pub struct Population {
    /// Shown in the report.
    pub name: String,
    /// How many accounts.
    pub accounts: u32,
    /// Round trip added to each of their exchanges.
    pub rtt: Duration,
    /// Fan or bot.
    pub behaviour: Behaviour,
}

/// When everyone arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Spread over the pre-queue, before opening.
    PreQueue,
    /// Spread over the first `within_ms` after opening.
    AfterOpening {
        /// The spread.
        within_ms: u64,
    },
}

/// A fairness run against a running server and one event, made for it:
/// one ticket type, no two-factor, development mode on (sessions for
/// virtual fans).
#[derive(Clone, Debug)]
pub struct FairnessOptions {
    /// `host:port` of the server.
    pub addr: String,
    /// The event.
    pub event: u64,
    /// Who comes.
    pub populations: Vec<Population>,
    /// When they come.
    pub arrival: Arrival,
    /// Seeds arrival times.
    pub seed: u64,
    /// Gives up on a client after this long.
    pub deadline: Duration,
}

/// What one client ended with.
#[derive(Clone, Copy, Debug, Default)]
struct Outcome {
    tickets: u64,
    /// 1-based place in line, once known.
    place: Option<u64>,
    /// From the turn's start (server clock) to the client knowing it.
    learned_ms: Option<u64>,
    /// Ended in an error (counted, reported).
    broken: bool,
    /// The join's answer said the pre-queue (before opening).
    prequeued: bool,
}

/// The measured result.
#[derive(Debug)]
pub struct FairnessReport {
    /// Everything, as JSON (populations, totals).
    pub json: Value,
    /// Per population, in the order given: (share of accounts, share of
    /// tickets), both in 0..=1.
    pub shares: Vec<(f64, f64)>,
    /// Tickets sold / capacity at the end.
    pub sold: u64,
    /// Capacity of the event.
    pub capacity: u64,
    /// Clients that ended in an error.
    pub broken: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The client address of account `index` of population `population`: one
/// address each for fans, one for a whole bot farm.
fn address(population: usize, behaviour: Behaviour, index: u32) -> IpAddr {
    let p = u8::try_from(population + 1).unwrap_or(u8::MAX);
    match behaviour {
        Behaviour::Bot { .. } => IpAddr::V4(Ipv4Addr::new(127, p, 255, 254)),
        Behaviour::Fan => {
            let [_, _, hi, lo] = index.to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(127, p, hi, lo.max(1)))
        }
    }
}

/// One request; 429/503 answers are retried after their Retry-After (at
/// most `tries` times), as the page and any bot would.
async fn call(
    client: &mut Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<(StatusCode, Value), Broken> {
    for _ in 0..200 {
        let (status, answer) = client.call(method.clone(), path, headers, body).await?;
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        return Ok((status, answer));
    }
    Err(Broken(format!("{path}: still refused after 200 tries")))
}

/// Where a status says the client stands, if waiting; the learning time if
/// it says shopping.
fn read_status(queue: &Value, outcome: &mut Outcome) -> Option<bool> {
    match queue["status"].as_str()? {
        "waiting" => {
            outcome.place = outcome.place.or(queue["position"].as_u64());
            None
        }
        "shopping" => {
            let admitted = queue["admitted_at_ms"].as_u64().unwrap_or(0);
            // Admitted before any "waiting" status: the place stays unknown.
            outcome.learned_ms = Some(now_ms().saturating_sub(admitted));
            Some(true)
        }
        "prequeue" | "drawing" => None,
        _ => Some(false),
    }
}

/// Waits on the event stream until the turn comes (true) or cannot (false).
async fn wait_on_stream(
    addr: &str,
    link: Link,
    auth: Option<String>,
    base: &str,
    deadline: Instant,
    outcome: &mut Outcome,
) -> Result<bool, Broken> {
    while Instant::now() < deadline {
        let mut connection = Client::connect_over(addr, link).await?;
        connection.auth.clone_from(&auth);
        let Ok(mut events) = connection.stream(&format!("{base}/me/stream")).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Ok(next) = tokio::time::timeout(remaining, events.next()).await else {
                return Ok(false);
            };
            let Some((name, data)) = next? else { break };
            let queue = if name == "admitted" {
                &data
            } else {
                &data["queue"]
            };
            if let Some(turn) = read_status(queue, outcome) {
                return Ok(turn);
            }
        }
    }
    Ok(false)
}

/// Polls the place until the turn comes (true) or cannot (false).
async fn wait_by_polling(
    client: &mut Client,
    base: &str,
    poll: Duration,
    deadline: Instant,
    outcome: &mut Outcome,
) -> Result<bool, Broken> {
    let path = format!("{base}/queue");
    while Instant::now() < deadline {
        let (status, queue) = client.call(Method::GET, &path, &[], None).await?;
        if status.is_success()
            && let Some(turn) = read_status(&queue, outcome)
        {
            return Ok(turn);
        }
        tokio::time::sleep(poll).await;
    }
    Ok(false)
}

/// Holds as many as the limit allows and stock has (fewer when short),
/// pays, and says it is done. Returns the tickets bought.
async fn buy(client: &mut Client, base: &str, limit: u64, key: &str) -> Result<u64, Broken> {
    let items = format!("{base}/cart/items");
    let mut held = 0;
    for quantity in (1..=limit).rev() {
        let body = json!({ "items": [{ "ticket_type": 0, "quantity": quantity }] });
        let (status, answer) = call(client, Method::POST, &items, &[], Some(&body)).await?;
        if status.is_success() {
            held = quantity;
            break;
        }
        if answer["error"]["code"] != "insufficient_stock" {
            break;
        }
    }
    let mut bought = 0;
    if held > 0 {
        let card = json!({ "card_number": "4242424242424242" });
        let headers = [("idempotency-key", key)];
        let (status, order) = call(
            client,
            Method::POST,
            &format!("{base}/checkout"),
            &headers,
            Some(&card),
        )
        .await?;
        if status.is_success() {
            bought = order["tickets"].as_array().map_or(0, |t| t.len() as u64);
        }
    }
    // Done: the place goes to the next in line at once.
    call(client, Method::DELETE, &format!("{base}/queue"), &[], None).await?;
    Ok(bought)
}

/// One client's whole visit.
#[allow(clippy::too_many_arguments)]
async fn visit(
    options: Arc<FairnessOptions>,
    population: usize,
    index: u32,
    arrive_at: Instant,
    limit: u64,
    deadline: Instant,
) -> Result<Outcome, Broken> {
    let spec = &options.populations[population];
    let link = Link {
        from: Some(address(population, spec.behaviour, index)),
        rtt: spec.rtt,
    };
    let base = format!("/api/events/{}", options.event);
    let mut outcome = Outcome::default();
    let mut client = Client::connect_over(&options.addr, link).await?;
    // Logged in before the sale (not part of the race).
    let email = format!("fair-{}-{population}-{index}@load.invalid", options.seed);
    let (_, session) = call(
        &mut client,
        Method::POST,
        "/api/dev/session",
        &[],
        Some(&json!({ "email": email })),
    )
    .await?;
    client.auth = session["token"].as_str().map(|t| format!("Bearer {t}"));
    let prepared = matches!(options.arrival, Arrival::PreQueue);
    // Before the pre-queue, the page is open and its challenge solved (the
    // page does this while the sale is not yet open). Arriving after
    // opening, the fan loads the page and solves it then.
    let proof = if prepared {
        let proof = solve(&mut client, &base).await?;
        tokio::time::sleep_until(arrive_at.into()).await;
        proof
    } else {
        tokio::time::sleep_until(arrive_at.into()).await;
        // The page loads the event and the challenge together.
        let (event, challenge) = tokio::join!(
            async {
                let mut page = Client::connect_over(&options.addr, link).await?;
                page.call(Method::GET, &base, &[], None).await
            },
            solve(&mut client, &base)
        );
        event?;
        challenge?
    };
    let proof = Some(proof).filter(|p| !p.is_null());
    let (status, joined) = call(
        &mut client,
        Method::POST,
        &format!("{base}/queue"),
        &[],
        proof.as_ref(),
    )
    .await?;
    if status == StatusCode::CONFLICT {
        // Sold out or closed before this client came: nothing to win.
        return Ok(outcome);
    }
    if !status.is_success() {
        return Err(Broken(format!("join: {status} {joined}")));
    }
    outcome.prequeued = joined["status"] == "prequeue";
    let turn = match read_status(&joined, &mut outcome) {
        Some(turn) => turn,
        None => match spec.behaviour {
            Behaviour::Fan => {
                let auth = client.auth.clone();
                wait_on_stream(&options.addr, link, auth, &base, deadline, &mut outcome).await?
            }
            Behaviour::Bot { poll_ms } => {
                let poll = Duration::from_millis(poll_ms);
                wait_by_polling(&mut client, &base, poll, deadline, &mut outcome).await?
            }
        },
    };
    if turn {
        let key = format!("fair-{population}-{index}");
        outcome.tickets = buy(&mut client, &base, limit, &key).await?;
    }
    Ok(outcome)
}

/// Fetches a challenge and solves it (off the async workers, as a page's
/// Web Worker); the join's body.
async fn solve(client: &mut Client, base: &str) -> Result<Value, Broken> {
    let (_, challenge) = call(client, Method::GET, &format!("{base}/challenge"), &[], None).await?;
    let text = challenge["challenge"].as_str().unwrap_or("").to_string();
    let difficulty = u8::try_from(challenge["difficulty"].as_u64().unwrap_or(0)).unwrap_or(u8::MAX);
    if difficulty == 0 {
        return Ok(Value::Null);
    }
    let solution = tokio::task::spawn_blocking(move || {
        let solution = pow_solution(&text, difficulty);
        json!({ "challenge": text, "solution": solution })
    })
    .await
    .map_err(|e| Broken(format!("solver: {e}")))?;
    Ok(solution)
}

/// The median of `values` (0 when empty).
fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Runs the populations against the event and reports.
pub async fn run(options: FairnessOptions) -> Result<FairnessReport, Broken> {
    let mut reader = Client::connect(&options.addr).await?;
    let base = format!("/api/events/{}", options.event);
    let (status, event) = reader.call(Method::GET, &base, &[], None).await?;
    if status != StatusCode::OK {
        return Err(Broken(format!(
            "no event {} ({status}): {event}",
            options.event
        )));
    }
    let limit = event["limit_per_customer"].as_u64().unwrap_or(1);
    let opens_at = event["opens_at_ms"].as_u64().unwrap_or(0);
    let prequeue_at = event["prequeue_opens_at_ms"].as_u64().unwrap_or(0);
    let now = now_ms();
    let started = Instant::now();
    let at = move |ms: u64| started + Duration::from_millis(ms.saturating_sub(now));
    // Arrival times: uniform over the pre-queue (ending half a second
    // before opening, so that nobody's join races the opening), or over
    // the first `within_ms` after opening.
    let (from, span) = match options.arrival {
        Arrival::PreQueue => {
            let from = prequeue_at.max(now);
            (
                from,
                opens_at.saturating_sub(500).saturating_sub(from).max(1),
            )
        }
        Arrival::AfterOpening { within_ms } => (opens_at, within_ms.max(1)),
    };
    let deadline = started + options.deadline;
    let options = Arc::new(options);
    let outcomes: Arc<Mutex<Vec<Vec<Outcome>>>> = Arc::new(Mutex::new(
        options.populations.iter().map(|_| Vec::new()).collect(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (population, spec) in options.populations.iter().enumerate() {
        for index in 0..spec.accounts {
            let salt = (population as u64) << 32 | u64::from(index);
            let arrive = from + mix(options.seed ^ mix(salt)) % span;
            let (options, outcomes) = (options.clone(), outcomes.clone());
            tasks.spawn(async move {
                let outcome = visit(options, population, index, at(arrive), limit, deadline)
                    .await
                    .unwrap_or_else(|Broken(reason)| {
                        eprintln!("client {population}/{index}: {reason}");
                        Outcome {
                            broken: true,
                            ..Outcome::default()
                        }
                    });
                outcomes.lock()[population].push(outcome);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();

    let mut reader = Client::connect(&options.addr).await?;
    let (_, event) = reader.call(Method::GET, &base, &[], None).await?;
    let types = event["ticket_types"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sold: u64 = types.iter().map(|t| t["sold"].as_u64().unwrap_or(0)).sum();
    let capacity: u64 = types
        .iter()
        .map(|t| t["capacity"].as_u64().unwrap_or(0))
        .sum();

    let outcomes = outcomes.lock();
    let accounts: u64 = options
        .populations
        .iter()
        .map(|p| u64::from(p.accounts))
        .sum();
    let tickets: u64 = outcomes.iter().flatten().map(|o| o.tickets).sum();
    let buyers: u64 = outcomes.iter().flatten().filter(|o| o.tickets > 0).count() as u64;
    let broken: u64 = outcomes.iter().flatten().filter(|o| o.broken).count() as u64;
    let mut rows = Vec::new();
    let mut shares = Vec::new();
    for (spec, group) in options.populations.iter().zip(outcomes.iter()) {
        let share_of_accounts = f64::from(spec.accounts) / accounts.max(1) as f64;
        let won: u64 = group.iter().map(|o| o.tickets).sum();
        let bought = group.iter().filter(|o| o.tickets > 0).count() as f64;
        let share_of_tickets = won as f64 / tickets.max(1) as f64;
        let share_of_buyers = bought / buyers.max(1) as f64;
        // Normal interval of a proportion over the buyers.
        let margin =
            1.96 * (share_of_buyers * (1.0 - share_of_buyers) / buyers.max(1) as f64).sqrt();
        let mut places: Vec<u64> = group
            .iter()
            .filter_map(|o| o.place)
            .filter(|&p| p > 0)
            .collect();
        let mut learned: Vec<u64> = group.iter().filter_map(|o| o.learned_ms).collect();
        rows.push(json!({
            "population": spec.name,
            "accounts": spec.accounts,
            "rtt_ms": spec.rtt.as_secs_f64() * 1_000.0,
            "behaviour": match spec.behaviour { Behaviour::Fan => "fan".to_string(), Behaviour::Bot { poll_ms } => format!("bot polling every {poll_ms} ms") },
            "share_of_accounts": share_of_accounts,
            "share_of_buyers": share_of_buyers,
            "share_of_buyers_95": [share_of_buyers - margin, share_of_buyers + margin],
            "share_of_tickets": share_of_tickets,
            "tickets": won,
            "median_place": median(&mut places),
            "median_learned_turn_ms": median(&mut learned),
            "turns": learned.len(),
            "joined_before_opening": group.iter().filter(|o| o.prequeued).count(),
            "broken": group.iter().filter(|o| o.broken).count(),
        }));
        shares.push((share_of_accounts, share_of_tickets));
    }
    let json = json!({
        "arrival": match options.arrival { Arrival::PreQueue => "pre-queue".to_string(), Arrival::AfterOpening { within_ms } => format!("within {within_ms} ms after opening") },
        "seconds": elapsed.as_secs_f64(),
        "capacity": capacity,
        "sold": sold,
        "buyers": buyers,
        "broken": broken,
        "populations": rows,
    });
    Ok(FairnessReport {
        json,
        shares,
        sold,
        capacity,
        broken,
    })
}
