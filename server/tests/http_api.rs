//! The JSON API over real HTTP on a loopback port: a fan's whole path
//! (token, queue, cart, checkout, idempotent retry, orders), payment
//! failures, and a table of bad inputs that must each get a 4xx with a JSON
//! error naming the problem, never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use ingressoja::http::limits::LimitsConfig;
use support::{call, join_and_hold, start, start_configured, start_with, token};

#[test]
fn a_fan_queues_carts_pays_once_and_sees_the_tickets() {
    let server = start();
    let auth = token(&server, 1);
    let me = [("Authorization", auth.as_str())];
    let (status, queued) = call(&server, "POST", "/api/events/0/queue", &me, None);
    assert_eq!(
        (status, queued["status"].as_str()),
        (201, Some("shopping")),
        "{queued}"
    );
    let (status, _) = call(&server, "POST", "/api/events/0/queue", &me, None);
    assert_eq!(status, 200, "joining again keeps the place");

    let (status, cart) = call(
        &server,
        "POST",
        "/api/events/0/cart/items",
        &me,
        Some(r#"{"items":[{"ticket_type":0,"quantity":2}]}"#),
    );
    assert_eq!(
        (status, cart["total_cents"].as_u64()),
        (200, Some(50_000)),
        "{cart}"
    );

    let pay = [
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", "order-1"),
    ];
    let card = Some(r#"{"card_number":"4242 4242 4242 4242"}"#);
    let (status, order) = call(&server, "POST", "/api/events/0/checkout", &pay, card);
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(order["tickets"][0]["code"].as_str().unwrap().len(), 32);

    let (status, again) = call(&server, "POST", "/api/events/0/checkout", &pay, card);
    assert_eq!(
        (status, &again["id"]),
        (200, &order["id"]),
        "the same key returns the same order"
    );

    let (status, orders) = call(&server, "GET", "/api/me/orders", &me, None);
    assert_eq!(status, 200);
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "{orders}");
    let (_, event) = call(&server, "GET", "/api/events/0", &[], None);
    assert_eq!(
        event["ticket_types"][0]["sold"].as_u64(),
        Some(2),
        "{event}"
    );
}

/// `PUT /api/events/{id}/cart`: the hold becomes the selection. The same
/// selection sent twice (a double tap, a retry after a lost answer) holds
/// once; a different one moves the hold to it in one step; an empty one
/// gives it back; a selection that cannot be held whole changes nothing.
#[test]
fn a_selection_put_twice_holds_once_and_the_hold_follows_the_selection() {
    let server = start();
    let auth = token(&server, 1);
    let me = [("Authorization", auth.as_str())];
    let (status, _) = call(&server, "POST", "/api/events/0/queue", &me, None);
    assert_eq!(status, 201);
    let two = Some(r#"{"items":[{"ticket_type":0,"quantity":2},{"ticket_type":1,"quantity":0}]}"#);
    let (status, first) = call(&server, "PUT", "/api/events/0/cart", &me, two);
    assert_eq!(
        (status, first["total_cents"].as_u64()),
        (200, Some(50_000)),
        "{first}"
    );
    let (status, again) = call(&server, "PUT", "/api/events/0/cart", &me, two);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first, "the same selection again holds nothing more");
    let (_, event) = call(&server, "GET", "/api/events/0", &[], None);
    assert_eq!(
        event["ticket_types"][0]["held"].as_u64(),
        Some(2),
        "{event}"
    );

    let other =
        Some(r#"{"items":[{"ticket_type":0,"quantity":1},{"ticket_type":1,"quantity":1}]}"#);
    let (status, moved) = call(&server, "PUT", "/api/events/0/cart", &me, other);
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["items"].as_array().unwrap().len(), 2, "{moved}");
    assert_eq!(
        moved["expires_at_ms"], first["expires_at_ms"],
        "the hold keeps its expiry"
    );

    let too_many = Some(r#"{"items":[{"ticket_type":0,"quantity":5}]}"#);
    let (status, refused) = call(&server, "PUT", "/api/events/0/cart", &me, too_many);
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("limit_reached")),
        "{refused}"
    );
    let (_, kept) = call(&server, "GET", "/api/events/0/cart", &me, None);
    assert_eq!(
        kept["items"], moved["items"],
        "a refused selection changes nothing"
    );

    let (status, emptied) = call(
        &server,
        "PUT",
        "/api/events/0/cart",
        &me,
        Some(r#"{"items":[]}"#),
    );
    assert_eq!(status, 200, "{emptied}");
    assert_eq!(emptied["items"].as_array().unwrap().len(), 0, "{emptied}");
    let unknown = Some(r#"{"items":[{"ticket_type":9,"quantity":1}]}"#);
    let (status, body) = call(&server, "PUT", "/api/events/0/cart", &me, unknown);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn declined_and_failed_payments_sell_nothing_and_keep_the_hold() {
    let server = start();
    let auth = token(&server, 2);
    let me = [("Authorization", auth.as_str())];
    join_and_hold(
        &server,
        &auth,
        r#"{"items":[{"ticket_type":1,"quantity":1}]}"#,
    );
    let pay = [
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", "try-1"),
    ];
    let (status, error) = call(
        &server,
        "POST",
        "/api/events/0/checkout",
        &pay,
        Some(r#"{"card_number":"4000000000000002"}"#),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (402, Some("payment_declined")),
        "{error}"
    );
    let pay = [
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", "try-2"),
    ];
    let (status, error) = call(
        &server,
        "POST",
        "/api/events/0/checkout",
        &pay,
        Some(r#"{"card_number":"4000000000000119"}"#),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (502, Some("payment_failed")),
        "{error}"
    );
    let (_, cart) = call(&server, "GET", "/api/events/0/cart", &me, None);
    assert_eq!(cart["total_cents"].as_u64(), Some(45_000), "{cart}");
    let (_, event) = call(&server, "GET", "/api/events/0", &[], None);
    assert_eq!(event["ticket_types"][1]["sold"].as_u64(), Some(0));
}

/// Method, path, headers, body, expected status, expected error code.
type BadInput<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    u16,
    &'a str,
);

#[test]
fn bad_input_gets_a_4xx_with_a_json_error_never_a_500() {
    let server = start();
    let auth = token(&server, 3);
    let me = [("Authorization", auth.as_str())];
    call(&server, "POST", "/api/events/0/queue", &me, None);
    let with_key = [("Authorization", auth.as_str()), ("Idempotency-Key", "k")];
    let too_big = format!(
        r#"{{"items":[{{"ticket_type":0,"quantity":1}}],"pad":"{}"}}"#,
        "x".repeat(20_000)
    );
    let cases: Vec<BadInput> = vec![
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some("{not json"),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":0,"quantity":1}],"x":1}"#),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":"zero","quantity":1}]}"#),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":0,"quantity":0}]}"#),
            400,
            "invalid_quantity",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":0,"quantity":-1}]}"#),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":0,"quantity":70000}]}"#),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[]}"#),
            400,
            "invalid_items",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":9,"quantity":1}]}"#),
            400,
            "unknown_ticket_type",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":0,"quantity":5}]}"#),
            409,
            "limit_reached",
        ),
        (
            "POST",
            "/api/events/0/cart/items",
            &me,
            Some(&too_big),
            413,
            "body_too_large",
        ),
        (
            "POST",
            "/api/events/99/cart/items",
            &me,
            Some(r#"{"items":[{"ticket_type":0,"quantity":1}]}"#),
            404,
            "not_found",
        ),
        ("GET", "/api/events/nope", &[], None, 404, "not_found"),
        ("GET", "/api/events/0/cart", &[], None, 401, "unauthorized"),
        (
            "GET",
            "/api/events/0/cart",
            &[("Authorization", "Bearer 1.99999999999999.abcd")],
            None,
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/api/events/0/checkout",
            &me,
            Some(r#"{"card_number":"4242424242424242"}"#),
            400,
            "missing_idempotency_key",
        ),
        (
            "POST",
            "/api/events/0/checkout",
            &with_key,
            Some(r#"{"card_number":"42"}"#),
            400,
            "invalid_card",
        ),
        (
            "POST",
            "/api/events/0/checkout",
            &with_key,
            Some(r#"{"card_number":"4242424242424242"}"#),
            409,
            "no_hold",
        ),
        (
            "PATCH",
            "/api/events/0/cart",
            &me,
            None,
            405,
            "method_not_allowed",
        ),
        (
            "PUT",
            "/api/events/0/cart",
            &me,
            None,
            400,
            "malformed_json",
        ),
        ("GET", "/nowhere", &[], None, 404, "not_found"),
    ];
    for (method, path, headers, body, status, code) in cases {
        let (got, error) = call(&server, method, path, headers, body);
        assert_eq!(
            (got, error["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:?}: {error}"
        );
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, health) = call(&server, "GET", "/healthz", &[], None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

#[test]
fn a_client_over_its_quota_gets_429_with_retry_after() {
    let server = start_with(LimitsConfig {
        joins_per_account: 1,
        ..LimitsConfig::default()
    });
    let auth = token(&server, 9);
    let me = [("Authorization", auth.as_str())];
    let statuses: Vec<u16> = (0..3)
        .map(|_| call(&server, "POST", "/api/events/0/queue", &me, None).0)
        .collect();
    assert_eq!(statuses, vec![201, 200, 429]);
    let head = "POST /api/events/0/queue HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n";
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(stream, "{head}Authorization: {auth}\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("retry-after: "), "{raw}");
    assert!(raw.contains("\"rate_limited\""), "{raw}");
    // Other accounts, and other kinds of request, are not affected.
    let other = token(&server, 10);
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/events/0/queue",
            &[("Authorization", other.as_str())],
            None
        )
        .0,
        201
    );
    assert_eq!(call(&server, "GET", "/api/events/0/cart", &me, None).0, 200);
}

#[test]
fn metrics_count_requests_by_route_and_show_the_sale() {
    let server = start();
    let auth = token(&server, 11);
    join_and_hold(
        &server,
        &auth,
        r#"{"items":[{"ticket_type":0,"quantity":1}]}"#,
    );
    call(&server, "GET", "/api/events/7", &[], None);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for expected in [
        r#"ingressoja_http_requests_total{route="queue_join",status="201"} 1"#,
        r#"ingressoja_http_requests_total{route="cart_add",status="200"} 1"#,
        r#"ingressoja_http_requests_total{route="event_get",status="404"} 1"#,
        r#"ingressoja_holds_active{event="0"} 1"#,
        r#"ingressoja_queue_admitted{event="0"} 1"#,
        "ingressoja_http_request_duration_seconds_bucket",
        "ingressoja_wal_records_written",
        "ingressoja_sse_streams_open 0",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // The join and the hold were each a durable group commit.
    for histogram in [
        "ingressoja_wal_batch_records",
        "ingressoja_wal_append_seconds",
    ] {
        let count: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{histogram}_count ")))
            .unwrap_or_else(|| panic!("no {histogram} in\n{text}"))
            .trim()
            .parse()
            .unwrap();
        assert!(count >= 2, "{histogram}: {count} commits");
    }
}

#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = start_configured(ingressoja::http::config::ServerConfig {
        development: true,
        request_timeout_ms: 300,
        ..Default::default()
    });
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: slow")
        .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    // The server closes the connection (EOF), after at most a 408, well
    // before our own 10 s read timeout.
    let _ = stream.read_to_end(&mut rest);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "still open after {:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[test]
fn a_fan_who_leaves_gives_back_the_hold_and_the_slot() {
    let server = start();
    let auth = token(&server, 31);
    let me = [("Authorization", auth.as_str())];
    join_and_hold(
        &server,
        &auth,
        r#"{"items":[{"ticket_type":2,"quantity":2}]}"#,
    );
    let (status, left) = call(&server, "DELETE", "/api/events/0/queue", &me, None);
    assert_eq!(
        (status, left["status"].as_str()),
        (200, Some("turn_over")),
        "{left}"
    );
    let (_, event) = call(&server, "GET", "/api/events/0", &[], None);
    assert_eq!(
        event["ticket_types"][2]["held"].as_u64(),
        Some(0),
        "{event}"
    );
    // A double tap or a retry after a timeout: leaving again is answered
    // the same and changes nothing.
    let (status, again) = call(&server, "DELETE", "/api/events/0/queue", &me, None);
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("turn_over")),
        "{again}"
    );
}

/// An event with a single shopper's place, open now; fans 41, 42 and 43
/// join in that order (41 shops, the others wait). The server (reads not
/// rate-limited, so a test may poll), the queue's path and the fans' bearer
/// header values.
fn one_place_three_fans() -> (support::Server, String, Vec<String>) {
    let server = start_with(LimitsConfig {
        reads_per_ip: 0,
        ..LimitsConfig::default()
    });
    let admin = support::admin_token(&server, 9);
    let one_place = r#"{
        "name": "Um Lugar", "venue": "Arena", "starts_at_ms": 1800100000000,
        "opens_at_ms": 1799999999000, "closes_at_ms": 1800090000000,
        "ticket_types": [{"name": "Pista", "price_cents": 10000, "capacity": 50}],
        "policy": {"arrival_window_ms": 0, "max_active": 1, "pow_difficulty": 0, "require_two_factor": false}
    }"#;
    let (status, created) = call(
        &server,
        "POST",
        "/api/admin/events",
        &[("Authorization", admin.as_str())],
        Some(one_place),
    );
    assert_eq!(status, 201, "{created}");
    let queue = format!("/api/events/{}/queue", created["id"]);
    let fans: Vec<String> = (41..=43).map(|n| token(&server, n)).collect();
    for fan in &fans {
        let (status, _) = call(&server, "POST", &queue, &[("Authorization", fan)], None);
        assert_eq!(status, 201);
    }
    (server, queue, fans)
}

#[test]
fn a_waiting_fans_estimate_follows_the_admissions_the_line_has_seen() {
    let (server, queue, fans) = one_place_three_fans();
    // One admission in the sale's first second: a pace of 60 a minute, so
    // the one person ahead is a second's wait, not the 2 ms the configured
    // 500 a second would say. The hub learns of admissions once they are
    // durable, hence the wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, status) = call(&server, "GET", &queue, &[("Authorization", &fans[2])], None);
        assert_eq!(status["people_ahead"], 1, "{status}");
        if status["estimated_wait_ms"] == 1_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the estimate never followed the pace: {status}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_waiting_fan_who_leaves_gives_the_place_to_those_behind() {
    let (server, queue, fans) = one_place_three_fans();
    let status_of = |fan: &str| call(&server, "GET", &queue, &[("Authorization", fan)], None).1;
    assert_eq!(status_of(&fans[0])["status"], "shopping");
    assert_eq!(status_of(&fans[2])["people_ahead"], 1);

    // The second fan gives up while waiting.
    let (status, left) = call(
        &server,
        "DELETE",
        &queue,
        &[("Authorization", &fans[1])],
        None,
    );
    assert_eq!(
        (status, left["status"].as_str()),
        (200, Some("left")),
        "{left}"
    );
    let (status, again) = call(
        &server,
        "DELETE",
        &queue,
        &[("Authorization", &fans[1])],
        None,
    );
    assert_eq!((status, again["status"].as_str()), (200, Some("left")));

    // The first is done: the place goes to the third, stepping over the second.
    call(
        &server,
        "DELETE",
        &queue,
        &[("Authorization", &fans[0])],
        None,
    );
    assert_eq!(status_of(&fans[2])["status"], "shopping");
    assert_eq!(status_of(&fans[1])["status"], "left");
}
