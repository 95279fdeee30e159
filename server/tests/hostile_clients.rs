//! Clients that do what real ones do under stress, over real HTTP: a body
//! that never arrives, one address opening connection after connection, a
//! shutdown while every connection permit is taken, a double tap on "Pagar",
//! a fan with many orders, an operator asking for an absurd limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ingressoja::http::config::ServerConfig;
use ingressoja::http::limits::LimitsConfig;
use ingressoja::payments::gateway::ChargeState;
use ingressoja::payments::sandbox::{LEDGER_FILE, ledger_dir, read_ledger};
use serde_json::Value;

mod support;

use support::{admin_token, call, call_raw, join_and_hold, start_configured, token};

const SLOW_CARD: &str = r#"{"card_number":"4000 0000 0000 0259"}"#;
const GOOD_CARD: &str = r#"{"card_number":"4242 4242 4242 4242"}"#;
const ONE_PISTA: &str = r#"{"items":[{"ticket_type":0,"quantity":1}]}"#;

fn config(tune: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut config = ServerConfig {
        development: true,
        limits: LimitsConfig {
            reads_per_ip: 0,
            joins_per_ip: 0,
            joins_per_account: 0,
            carts_per_ip: 0,
            carts_per_account: 0,
            pow_free_joins_per_address: 0,
            pow_max_extra_bits: 0,
            joins_per_address_per_event: 0,
        },
        ..ServerConfig::default()
    };
    tune(&mut config);
    config
}

/// Reads whatever the server sends until it closes (or 30 s pass).
fn read_answer(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

fn poll_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not reached in 10 s");
        std::thread::yield_now();
    }
}

#[test]
fn a_body_that_never_arrives_gets_a_408_with_json_and_the_connection_back() {
    let server = start_configured(config(|c| c.request_timeout_ms = 300));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(
            b"POST /api/accounts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .unwrap();
    let answer = read_answer(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[test]
fn one_address_cannot_take_every_connection() {
    let server = start_configured(config(|c| c.max_connections_per_ip = 3));
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    // Three keep-alive connections, each answered once and then left open.
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream.write_all(healthz).unwrap();
            let mut first = [0u8; 12];
            stream.read_exact(&mut first).unwrap();
            assert_eq!(&first, b"HTTP/1.1 200");
            stream
        })
        .collect();
    let mut fourth = TcpStream::connect(server.addr).unwrap();
    let refused = read_answer(&mut fourth);
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused:?}");
    assert!(
        refused.contains(r#""code":"too_many_connections""#),
        "{refused}"
    );
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"));
    // Closing one gives its place back.
    drop(held.pop());
    poll_until("a place given back", || {
        let raw = call_raw(&server, "GET", "/healthz", &[], None);
        raw.starts_with("HTTP/1.1 200")
    });
}

#[test]
fn shutdown_is_seen_while_every_connection_permit_is_taken() {
    let mut server = start_configured(config(|c| {
        c.max_connections = 1;
        c.request_timeout_ms = 500;
    }));
    // The one permit: a request whose body is slow.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"POST /api/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n{")
        .unwrap();
    // A second connection waits for a permit.
    let _waiting = TcpStream::connect(server.addr).unwrap();
    assert!(
        server.shut_down_within(Duration::from_secs(8)),
        "the serve loop did not stop while its permits were taken"
    );
}

#[test]
fn a_double_tap_on_pay_charges_once_and_answers_with_one_order() {
    let server = start_configured(config(|_| {}));
    let fan = token(&server, 1);
    join_and_hold(&server, &fan, ONE_PISTA);
    let tap = |card: &'static str| {
        let (addr, fan) = (server.addr, fan.clone());
        std::thread::spawn(move || {
            let head = format!(
                "POST /api/events/0/checkout HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                 Authorization: {fan}\r\nIdempotency-Key: tap-1\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                card.len()
            );
            support::send(addr, &head, card.as_bytes())
        })
    };
    // The first tap's payment is slow (2 s at the gateway)...
    let first = tap(SLOW_CARD);
    let runtime = &server.app.runtime;
    poll_until("the first payment in flight", || {
        runtime
            .query(|state| state.payments.len())
            .and_then(|pending| pending.wait())
            .unwrap()
            == 1
    });
    // ...so the second, with the same key, finds it in progress.
    let me = [
        ("Authorization", fan.as_str()),
        ("Idempotency-Key", "tap-1"),
    ];
    let raw = call_raw(
        &server,
        "POST",
        "/api/events/0/checkout",
        &me,
        Some(GOOD_CARD),
    );
    assert!(raw.starts_with("HTTP/1.1 409"), "{raw}");
    assert!(raw.contains(r#""code":"payment_in_progress""#), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
    let (status, order) = first.join().unwrap();
    assert_eq!(status, 201, "{order}");
    // A retry (Retry-After honoured) gets the same order.
    let (status, again) = call(
        &server,
        "POST",
        "/api/events/0/checkout",
        &me,
        Some(GOOD_CARD),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], order["id"]);
    assert_eq!(again["tickets"], order["tickets"]);
    // One charge at the gateway, captured.
    let ledger = read_ledger(&ledger_dir(runtime.data_dir()).join(LEDGER_FILE)).unwrap();
    let charges: Vec<_> = ledger.values().collect();
    assert!(
        matches!(charges.as_slice(), [ChargeState::Captured { .. }]),
        "{charges:?}"
    );
    assert!(
        runtime
            .query(|state| state.payments.is_empty())
            .and_then(|pending| pending.wait())
            .unwrap()
    );
}

#[test]
fn a_fan_with_many_orders_gets_them_a_page_at_a_time() {
    let server = start_configured(config(|_| {}));
    let fan = token(&server, 1);
    let me = [("Authorization", fan.as_str())];
    for n in 0..3 {
        join_and_hold(&server, &fan, ONE_PISTA);
        let key = format!("order-{n}");
        let pay = [me[0], ("Idempotency-Key", key.as_str())];
        let (status, order) = call(
            &server,
            "POST",
            "/api/events/0/checkout",
            &pay,
            Some(GOOD_CARD),
        );
        assert_eq!(status, 201, "{order}");
    }
    let (status, first) = call(&server, "GET", "/api/me/orders?limit=2", &me, None);
    assert_eq!(status, 200, "{first}");
    let ids = |page: &Value| -> Vec<u64> {
        page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&first), vec![0, 1]);
    let next = first["next"].as_str().unwrap().to_string();
    let (status, second) = call(
        &server,
        "GET",
        &format!("/api/me/orders?after={next}"),
        &me,
        None,
    );
    assert_eq!(status, 200, "{second}");
    assert_eq!((ids(&second), &second["next"]), (vec![2], &Value::Null));
    assert!(second["orders"][0]["tickets"][0]["qr_svg"].is_string());
    for bad in ["limit=0", "limit=21", "after=x", "page=2"] {
        let (status, error) = call(&server, "GET", &format!("/api/me/orders?{bad}"), &me, None);
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{bad}"
        );
    }
}

#[test]
fn per_customer_limits_are_capped() {
    let server = start_configured(config(|_| {}));
    let admin = admin_token(&server, 100);
    let ops = [("Authorization", admin.as_str())];
    let event = r#"{
        "name": "Show", "venue": "Arena", "starts_at_ms": 1800100000000,
        "opens_at_ms": 1799999999000, "closes_at_ms": 1800090000000,
        "ticket_types": [{"name": "Pista", "price_cents": 100, "capacity": 70000, "limit_per_customer": 51}]
    }"#;
    let (status, error) = call(&server, "POST", "/api/admin/events", &ops, Some(event));
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_config")),
        "{error}"
    );
    let (status, error) = call(
        &server,
        "PUT",
        "/api/admin/events/0/policy",
        &ops,
        Some(r#"{"per_event_limit": 65535}"#),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_config")),
        "{error}"
    );
}

#[test]
fn a_405_says_which_methods_are_allowed() {
    let server = start_configured(config(|_| {}));
    let raw = call_raw(&server, "PATCH", "/api/events/0/cart", &[], None);
    assert!(raw.starts_with("HTTP/1.1 405"), "{raw}");
    assert!(raw.contains("allow: GET, DELETE, PUT\r\n"), "{raw}");
    assert!(raw.contains(r#""code":"method_not_allowed""#), "{raw}");
    let raw = call_raw(&server, "PATCH", "/api/events/0/queue", &[], None);
    assert!(raw.contains("allow: POST, GET, DELETE\r\n"), "{raw}");
}

#[test]
fn requests_hyper_cannot_parse_still_get_json_errors() {
    let server = start_configured(config(|_| {}));
    let long_url = format!(
        "GET /api/events?{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(70_000)
    );
    let mut flood = String::from("GET /healthz HTTP/1.1\r\nHost: t\r\n");
    for i in 0..200 {
        flood.push_str(&format!("X-Flood-{i}: 1\r\n"));
    }
    flood.push_str("\r\n");
    let cases = [
        (long_url, "414", "uri_too_long"),
        (flood, "431", "headers_too_large"),
        (
            "POST /api/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_string(),
            "400",
            "malformed_request",
        ),
        (
            "GET /api/\x01events HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            "400",
            "malformed_request",
        ),
    ];
    for (request, status, code) in cases {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let _ = stream.write_all(request.as_bytes());
        let answer = read_answer(&mut stream);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{status}: {answer:?}"
        );
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let json: Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], code, "{answer}");
    }
    let (status, _) = call(&server, "GET", "/healthz", &[], None);
    assert_eq!(status, 200, "the server carries on");
}

#[test]
fn two_tabs_paying_one_hold_with_two_keys_buy_once_and_the_other_charge_goes_back() {
    let server = start_configured(config(|_| {}));
    let fan = token(&server, 1);
    join_and_hold(&server, &fan, ONE_PISTA);
    let (addr, slow_fan) = (server.addr, fan.clone());
    // Tab A pays slowly (2 s at the gateway)...
    let tab_a = std::thread::spawn(move || {
        let head = format!(
            "POST /api/events/0/checkout HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
             Authorization: {slow_fan}\r\nIdempotency-Key: tab-a\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            SLOW_CARD.len()
        );
        support::send(addr, &head, SLOW_CARD.as_bytes())
    });
    let runtime = &server.app.runtime;
    poll_until("tab A's payment in flight", || {
        runtime
            .query(|state| state.payments.len())
            .and_then(|pending| pending.wait())
            .unwrap()
            == 1
    });
    // ...while tab B, with its own key, pays the same hold at once.
    let tab_b = [
        ("Authorization", fan.as_str()),
        ("Idempotency-Key", "tab-b"),
    ];
    let (status, order) = call(
        &server,
        "POST",
        "/api/events/0/checkout",
        &tab_b,
        Some(GOOD_CARD),
    );
    assert_eq!(status, 201, "{order}");
    let (status, refused) = tab_a.join().unwrap();
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("no_hold")),
        "{refused}"
    );
    let (_, mine) = call(&server, "GET", "/api/me/orders", &[tab_b[0]], None);
    assert_eq!(mine["orders"].as_array().unwrap().len(), 1, "{mine}");
    let ledger = read_ledger(&ledger_dir(runtime.data_dir()).join(LEDGER_FILE)).unwrap();
    let mut states: Vec<String> = ledger.values().map(|s| format!("{s:?}")).collect();
    states.sort();
    assert_eq!(
        states,
        vec![
            "Captured { amount_cents: 25000 }".to_string(),
            "Voided".to_string()
        ],
        "one charge taken, the other given back"
    );
    assert!(
        runtime
            .query(|state| state.payments.is_empty())
            .and_then(|pending| pending.wait())
            .unwrap()
    );
}
