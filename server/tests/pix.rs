//! Paying with Pix over the API: the checkout answers 202 with a charge
//! (a "copia e cola" code and its QR code) and no order; the same checkout
//! again gets the same charge; the bank's payment (the sandbox's
//! `POST /api/sandbox/pix`) makes the order arrive by itself, with its
//! receipt, while the hold stands; after the hold ends the code can no
//! longer be paid. Every hostile variant of the bank's call is a 4xx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, call, join_and_hold, start, token};

const TWO_PISTA: &str = r#"{"items":[{"ticket_type":0,"quantity":2}]}"#;

fn checkout(server: &Server, fan: &str, key: &str, body: &str) -> (u16, Value) {
    call(
        server,
        "POST",
        "/api/events/0/checkout",
        &[("Authorization", fan), ("Idempotency-Key", key)],
        Some(body),
    )
}

fn bank_pays(server: &Server, code: &str) -> (u16, Value) {
    let body = serde_json::json!({ "code": code }).to_string();
    call(server, "POST", "/api/sandbox/pix", &[], Some(&body))
}

fn orders(server: &Server, fan: &str) -> Vec<Value> {
    let (status, body) = call(
        server,
        "GET",
        "/api/me/orders",
        &[("Authorization", fan)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["orders"].as_array().unwrap().clone()
}

/// Polls (at most 10 s) until the fan has `count` orders.
fn wait_for_orders(server: &Server, fan: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = orders(server, fan);
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} orders, not {count}",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_pix_charge_paid_by_the_bank_becomes_the_order_by_itself() {
    let server = start();
    let fan = token(&server, 21);
    join_and_hold(&server, &fan, TWO_PISTA);
    let (_, cart) = call(
        &server,
        "GET",
        "/api/events/0/cart",
        &[("Authorization", fan.as_str())],
        None,
    );

    let (status, charge) = checkout(&server, &fan, "pix-1", r#"{"method":"pix"}"#);
    assert_eq!(status, 202, "{charge}");
    assert_eq!(charge["status"], "awaiting_payment");
    let pix = &charge["pix"];
    let code = pix["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("000201"), "a BR Code: {code}");
    assert!(code.contains("br.gov.bcb.pix"));
    assert_eq!(pix["amount_cents"], cart["total_cents"]);
    assert_eq!(
        pix["expires_at_ms"], cart["expires_at_ms"],
        "the charge lapses with the hold"
    );
    assert!(pix["qr_svg"].as_str().unwrap().starts_with("<?xml"));
    assert!(
        orders(&server, &fan).is_empty(),
        "no order before it is paid"
    );

    // A double tap, or a second tab: the same charge, not a second one.
    let (status, again) = checkout(&server, &fan, "pix-1", r#"{"method":"pix"}"#);
    assert_eq!((status, &again["pix"]["code"]), (202, &pix["code"]));

    assert_eq!(
        bank_pays(&server, &code),
        (200, serde_json::json!({"status":"paid"}))
    );
    let placed = wait_for_orders(&server, &fan, 1);
    assert_eq!(placed[0]["total_cents"], cart["total_cents"]);
    assert_eq!(placed[0]["tickets"].as_array().unwrap().len(), 2);
    // The page that asks again with its key gets the order.
    let (status, order) = checkout(&server, &fan, "pix-1", r#"{"method":"pix"}"#);
    assert_eq!((status, &order["number"]), (200, &placed[0]["number"]));
    let receipt = server
        .wait_for_letters("fan21@test.invalid", "receipt", 1)
        .remove(0);
    assert!(receipt.subject.contains(order["number"].as_str().unwrap()));

    // Paid once: the bank cannot pay it again.
    let (status, twice) = bank_pays(&server, &code);
    assert_eq!(
        (status, twice["error"]["code"].as_str()),
        (409, Some("pix_already_paid"))
    );
    let ledger = ingressoja::payments::sandbox::read_ledger(
        &ingressoja::payments::sandbox::ledger_dir(server.app.runtime.data_dir())
            .join(ingressoja::payments::sandbox::LEDGER_FILE),
    )
    .unwrap();
    let captured = ledger
        .values()
        .filter(|s| {
            matches!(
                s,
                ingressoja::payments::gateway::ChargeState::Captured { .. }
            )
        })
        .count();
    assert_eq!(captured, 1, "one charge taken: {ledger:?}");
}

#[test]
fn a_pix_charge_lapses_with_the_hold_and_is_never_paid() {
    let server = start();
    let fan = token(&server, 22);
    join_and_hold(&server, &fan, TWO_PISTA);
    let (status, charge) = checkout(&server, &fan, "pix-2", r#"{"method":"pix"}"#);
    assert_eq!(status, 202, "{charge}");
    let code = charge["pix"]["code"].as_str().unwrap().to_owned();
    let end = charge["pix"]["expires_at_ms"].as_u64().unwrap();
    server.clock.set(end);
    let (status, refused) = bank_pays(&server, &code);
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (410, Some("pix_expired"))
    );
    assert!(orders(&server, &fan).is_empty());
}

#[test]
fn hostile_pix_calls_are_told_what_is_wrong() {
    let server = start();
    let fan = token(&server, 23);
    join_and_hold(&server, &fan, TWO_PISTA);
    let (status, body) = checkout(
        &server,
        &fan,
        "pix-3",
        r#"{"method":"pix","card_number":"4242424242424242"}"#,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_method"))
    );
    let (status, body) = checkout(&server, &fan, "pix-3", r#"{"method":"boleto"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = checkout(&server, &fan, "pix-3", r#"{}"#);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_card"))
    );

    let (status, charge) = checkout(&server, &fan, "pix-3", r#"{"method":"pix"}"#);
    assert_eq!(status, 202, "{charge}");
    let code = charge["pix"]["code"].as_str().unwrap();
    // A card with the same key while the Pix charge awaits: one payment
    // in flight per checkout.
    let (status, body) = checkout(
        &server,
        &fan,
        "pix-3",
        r#"{"card_number":"4242424242424242"}"#,
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("payment_in_progress"))
    );

    let edited = code.replacen("5802BR", "5802AR", 1);
    for (bad, status, error) in [
        ("", 400, "invalid_pix_code"),
        ("not a code at all", 400, "invalid_pix_code"),
        (edited.as_str(), 400, "invalid_pix_code"),
        (&"9".repeat(600), 400, "invalid_pix_code"),
    ] {
        let (got, body) = bank_pays(&server, bad);
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(error)),
            "{bad}"
        );
    }
    // A well-formed code no charge was issued for.
    let unknown = ingressoja::payments::pix::copia_e_cola(42, 100);
    assert_eq!(bank_pays(&server, &unknown).0, 404);
    let (status, _) = call(
        &server,
        "POST",
        "/api/sandbox/pix",
        &[],
        Some(r#"{"code":1}"#),
    );
    assert_eq!(status, 400);
    assert!(orders(&server, &fan).is_empty());
}
