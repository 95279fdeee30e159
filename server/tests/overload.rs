//! Overload over real HTTP: with the shard stalled and its channel filling,
//! newcomers are shed first (at half full) while an admitted fan's cart is
//! still queued; once the channel is full everyone gets 503 with a
//! Retry-After and a JSON error; when the shard catches up, service resumes
//! and nothing was lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use ingressoja::http::config::ServerConfig;
use support::{Server, call, call_raw, start_tuned, token};

const CAPACITY: usize = 8;

fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen in time");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn depth(server: &Server) -> usize {
    server.app.runtime.queue_depth()
}

#[test]
fn a_full_shard_sheds_newcomers_first_then_everyone_with_503() {
    let server = start_tuned(
        ServerConfig {
            development: true,
            ..ServerConfig::default()
        },
        |options| options.queue_capacity = CAPACITY,
    );
    let shopper = token(&server, 1);
    let newcomer = token(&server, 2);
    let (status, _) = call(
        &server,
        "POST",
        "/api/events/0/queue",
        &[("Authorization", shopper.as_str())],
        None,
    );
    assert_eq!(status, 201);

    // Stall the shard: it runs a read that waits for the test.
    let (resume, stalled) = std::sync::mpsc::channel::<()>();
    let _stall = server.app.runtime.query(move |_| {
        let _ = stalled.recv();
    });
    poll_until("the shard taking the stall", || depth(&server) == 0);
    let mut queued: Vec<_> = (0..CAPACITY / 2 + 1)
        .map(|_| server.app.runtime.query(|_| ()).unwrap())
        .collect();

    // More than half full: a newcomer is shed, with a reason and a delay.
    let shed = call_raw(
        &server,
        "POST",
        "/api/events/0/queue",
        &[("Authorization", newcomer.as_str())],
        None,
    );
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(
        shed.to_ascii_lowercase().contains("retry-after: "),
        "{shed}"
    );
    assert!(shed.contains(r#""code":"overloaded""#), "{shed}");

    // The admitted fan's cart is still taken (answered once the shard is back).
    let cart_addr = server.addr;
    let shopper_cart = shopper.clone();
    let cart = std::thread::spawn(move || {
        support::send(
            cart_addr,
            &format!(
                "POST /api/events/0/cart/items HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                 Authorization: {shopper_cart}\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n"
            ),
            br#"{"items":[{"ticket_type":0,"quantity":1}]}"#,
        )
    });
    let before = queued.len() + 1;
    poll_until("the cart entering the shard's channel", || {
        depth(&server) == before
    });

    // Full: now the shopper is refused too, rather than waiting unbounded.
    while let Ok(receiver) = server.app.runtime.query(|_| ()) {
        queued.push(receiver);
    }
    assert_eq!(depth(&server), CAPACITY);
    let full = call_raw(
        &server,
        "GET",
        "/api/events/0/cart",
        &[("Authorization", shopper.as_str())],
        None,
    );
    assert!(full.starts_with("HTTP/1.1 503"), "{full}");
    let refused = call_raw(
        &server,
        "DELETE",
        "/api/events/0/cart",
        &[("Authorization", shopper.as_str())],
        None,
    );
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: "),
        "{refused}"
    );
    assert!(refused.contains(r#""error":{"#), "{refused}");

    // The shard catches up: the queued cart went through, and the newcomer,
    // retrying, gets in.
    resume.send(()).unwrap();
    let (status, held) = cart.join().unwrap();
    assert_eq!(status, 200, "{held}");
    let (status, _) = call(
        &server,
        "POST",
        "/api/events/0/queue",
        &[("Authorization", newcomer.as_str())],
        None,
    );
    assert_eq!(status, 201);
    let (_, mine) = call(
        &server,
        "GET",
        "/api/events/0/cart",
        &[("Authorization", shopper.as_str())],
        None,
    );
    assert_eq!(mine["total_cents"].as_u64(), Some(25_000), "{mine}");
}
