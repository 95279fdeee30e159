//! Server-sent events over real HTTP: the event's stream follows the sale,
//! a fan's stream tells them they were admitted and follows their cart to
//! the order, in log order with ids, and a reconnect with Last-Event-ID
//! starts from the current state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{call, join_and_hold, open_stream, read_until, start, token};

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
