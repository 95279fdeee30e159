//! Server-sent events over real HTTP: the event's stream follows the sale,
//! a fan's stream tells them they were admitted and follows their cart to
//! the order, in log order with ids, and a reconnect with Last-Event-ID
//! starts from the current state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{admin_token, call, join_and_hold, open_stream, read_until, start, token};

#[test]
fn the_event_stream_follows_the_stock() {
    let server = start();
    let mut stream = open_stream(&server, "/api/events/0/stream", &[]);
    let mut seen = String::new();
    let head = read_until(&mut stream, &mut seen, "event: state");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    read_until(&mut stream, &mut seen, "\n\n");

    let auth = token(&server, 21);
    join_and_hold(
        &server,
        &auth,
        r#"{"items":[{"ticket_type":2,"quantity":3}]}"#,
    );
    // A later state shows the three Camarote tickets held.
    read_until(&mut stream, &mut seen, r#""available":497"#);
}

#[test]
fn a_fans_stream_follows_them_from_admission_to_the_order() {
    let server = start();
    let auth = token(&server, 22);
    let me = [("Authorization", auth.as_str())];
    let mut stream = open_stream(&server, "/api/events/0/me/stream", &me);
    let mut seen = String::new();
    let first = read_until(&mut stream, &mut seen, "\n\n");
    assert!(
        first.contains("event: status") && first.contains("not_joined"),
        "{first}"
    );

    call(&server, "POST", "/api/events/0/queue", &me, None);
    read_until(&mut stream, &mut seen, "event: admitted");
    call(
        &server,
        "POST",
        "/api/events/0/cart/items",
        &me,
        Some(r#"{"items":[{"ticket_type":0,"quantity":1}]}"#),
    );
    let hold = read_until(&mut stream, &mut seen, "event: hold\n");
    let pay = [
        ("Authorization", auth.as_str()),
        ("Idempotency-Key", "sse-1"),
    ];
    call(
        &server,
        "POST",
        "/api/events/0/checkout",
        &pay,
        Some(r#"{"card_number":"4242424242424242"}"#),
    );
    let order = read_until(&mut stream, &mut seen, "event: order_confirmed\n");

    // Ids are log sequence numbers, increasing.
    let id = |text: &str| -> u64 {
        let line = text.lines().rev().find(|l| l.starts_with("id: ")).unwrap();
        line[4..].trim().parse().unwrap()
    };
    assert!(id(&hold) < id(&order), "{hold}\n{order}");
}

#[test]
fn a_reconnect_with_last_event_id_starts_from_the_current_state() {
    let server = start();
    let auth = token(&server, 23);
    join_and_hold(
        &server,
        &auth,
        r#"{"items":[{"ticket_type":1,"quantity":2}]}"#,
    );
    let resume = [("Authorization", auth.as_str()), ("Last-Event-ID", "3")];
    let mut stream = open_stream(&server, "/api/events/0/me/stream", &resume);
    let mut seen = String::new();
    let first = read_until(&mut stream, &mut seen, "\n\n");
    assert!(first.contains(r#""resumed_after":3"#), "{first}");
    assert!(
        first.contains(r#""total_cents":90000"#),
        "the cart as it is now: {first}"
    );

    let (status, error) = call(&server, "GET", "/api/events/0/me/stream", &[], None);
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = call(&server, "GET", "/api/events/5/stream", &[], None);
    assert_eq!(status, 404);
}

#[test]
fn waiting_fans_see_their_place_move_and_their_turn_come() {
    let server = start();
    let admin = admin_token(&server, 100);
    let one_at_a_time = r#"{
        "name": "Show Pequeno", "venue": "Bar", "starts_at_ms": 1800100000000,
        "opens_at_ms": 1799999999000, "closes_at_ms": 1800090000000,
        "ticket_types": [{"name": "Pista", "price_cents": 10000, "capacity": 50}],
        "policy": {"arrival_window_ms": 0, "max_active": 1, "pow_difficulty": 0, "require_two_factor": false}
    }"#;
    let (status, event) = call(
        &server,
        "POST",
        "/api/admin/events",
        &[("Authorization", admin.as_str())],
        Some(one_at_a_time),
    );
    assert_eq!(status, 201, "{event}");
    let [first, second, third] = [41, 42, 43].map(|fan| token(&server, fan));
    for auth in [&first, &second, &third] {
        let (status, joined) = call(
            &server,
            "POST",
            "/api/events/1/queue",
            &[("Authorization", auth.as_str())],
            None,
        );
        assert_eq!(status, 201, "{joined}");
    }
    let mut streams = [&second, &third].map(|auth| {
        open_stream(
            &server,
            "/api/events/1/me/stream",
            &[("Authorization", auth.as_str())],
        )
    });
    let mut seen = [String::new(), String::new()];
    read_until(&mut streams[0], &mut seen[0], r#""people_ahead":0"#);
    read_until(&mut streams[1], &mut seen[1], r#""people_ahead":1"#);

    // The shopper leaves: the second fan's turn comes, the third moves up.
    let (status, _) = call(
        &server,
        "DELETE",
        "/api/events/1/queue",
        &[("Authorization", first.as_str())],
        None,
    );
    assert_eq!(status, 200);
    read_until(&mut streams[0], &mut seen[0], "event: admitted");
    seen[1].clear();
    read_until(
        &mut streams[1],
        &mut seen[1],
        r#""status":"waiting","position":3,"people_ahead":0"#,
    );
}

#[test]
fn a_fan_is_told_of_a_hold_expiring_soon_and_of_a_refused_request() {
    let server = start();
    let admin = admin_token(&server, 100);
    let short_holds = r#"{
        "name": "Show Rápido", "venue": "Bar", "starts_at_ms": 1800100000000,
        "opens_at_ms": 1799999999000, "closes_at_ms": 1800090000000,
        "ticket_types": [{"name": "Pista", "price_cents": 10000, "capacity": 50, "limit_per_customer": 2}],
        "policy": {"arrival_window_ms": 0, "hold_ttl_ms": 60000, "pow_difficulty": 0, "require_two_factor": false}
    }"#;
    let (status, event) = call(
        &server,
        "POST",
        "/api/admin/events",
        &[("Authorization", admin.as_str())],
        Some(short_holds),
    );
    assert_eq!(status, 201, "{event}");
    let auth = token(&server, 51);
    let me = [("Authorization", auth.as_str())];
    assert_eq!(
        call(&server, "POST", "/api/events/1/queue", &me, None).0,
        201
    );
    let mut stream = open_stream(&server, "/api/events/1/me/stream", &me);
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: status");

    // Over the limit: refused, and the fan's page hears why.
    let (status, _) = call(
        &server,
        "POST",
        "/api/events/1/cart/items",
        &me,
        Some(r#"{"items":[{"ticket_type":0,"quantity":3}]}"#),
    );
    assert_eq!(status, 409);
    let refused = read_until(&mut stream, &mut seen, r#""code":"limit_reached""#);
    assert!(refused.contains("event: rejected"), "{refused}");

    // A one-minute hold is within the last minute at once.
    let (status, _) = call(
        &server,
        "POST",
        "/api/events/1/cart/items",
        &me,
        Some(r#"{"items":[{"ticket_type":0,"quantity":1}]}"#),
    );
    assert_eq!(status, 200);
    seen.clear();
    let warned = read_until(&mut stream, &mut seen, "event: expiring_soon");
    read_until(&mut stream, &mut seen, r#""expires_at_ms":1800000060000"#);
    assert!(
        warned.contains("event: hold\n"),
        "the hold comes first: {warned}"
    );
}
