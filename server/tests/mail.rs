//! What the server mails, read from its outbox: a purchase's receipt (once,
//! however often the checkout is retried), the password-reset link (single
//! use, expiring, never saying whether an address has an account, one a
//! minute per address), and the notices of a password or two-factor
//! change. The SMTP path itself is tried in the browser tests, against a
//! real SMTP receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{
    NOW, PASSWORD, admin_token, call, call_raw, join_and_hold, session_cookie, start, token,
};

/// Registers `email` with the test password; the session's bearer header.
fn register(server: &support::Server, email: &str) -> String {
    let body =
        format!("{{\"email\":\"{email}\",\"password\":\"{PASSWORD}\",\"accept_terms\":true}}");
    let raw = call_raw(server, "POST", "/api/accounts", &[], Some(&body));
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");
    format!("Bearer {}", session_cookie(&raw))
}

fn login(server: &support::Server, email: &str, password: &str) -> u16 {
    let body = serde_json::json!({ "email": email, "password": password }).to_string();
    call(server, "POST", "/api/session", &[], Some(&body)).0
}

fn ask_reset(server: &support::Server, email: &str) {
    let body = serde_json::json!({ "email": email }).to_string();
    let (status, answer) = call(server, "POST", "/api/password-reset", &[], Some(&body));
    assert_eq!(
        (status, answer),
        (202, serde_json::json!({"requested": true}))
    );
}

/// The token in a reset letter's link.
fn token_in(letter: &ingressoja::mail::Letter, server: &support::Server) -> String {
    let prefix = format!("http://{}/#/reset/", server.addr);
    let start = letter.text.find(&prefix).expect("a link to this server") + prefix.len();
    letter.text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn reset(server: &support::Server, token: &str, password: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "token": token, "new_password": password }).to_string();
    call(
        server,
        "POST",
        "/api/password-reset/confirm",
        &[],
        Some(&body),
    )
}

#[test]
fn a_purchase_mails_one_receipt_with_the_order_number_and_every_ticket() {
    let server = start();
    let fan = token(&server, 7);
    join_and_hold(
        &server,
        &fan,
        r#"{"items":[{"ticket_type":0,"quantity":2}]}"#,
    );
    let pay = |key: &str| {
        call(
            &server,
            "POST",
            "/api/events/0/checkout",
            &[("Authorization", fan.as_str()), ("Idempotency-Key", key)],
            Some(r#"{"card_number":"4242 4242 4242 4242"}"#),
        )
    };
    let (status, order) = pay("recibo-1");
    assert_eq!(status, 201, "{order}");
    let receipt = server
        .wait_for_letters("fan7@test.invalid", "receipt", 1)
        .remove(0);
    let number = order["number"].as_str().unwrap();
    assert_eq!(number, "IJ-0-000001");
    assert!(receipt.subject.contains(number), "{}", receipt.subject);
    for ticket in order["tickets"].as_array().unwrap() {
        let code = ticket["code"].as_str().unwrap();
        let grouped: Vec<String> = code
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into())
            .collect();
        assert!(
            receipt.text.contains(&grouped.join(" ")),
            "{code} in {}",
            receipt.text
        );
    }
    assert!(
        receipt
            .text
            .contains(&format!("http://{}/#/tickets", server.addr))
    );

    // The retry of a lost answer gets the same order, and no second receipt:
    // a later letter (FIFO outbox) arrives, and still one receipt.
    let (status, again) = pay("recibo-1");
    assert_eq!((status, &again["number"]), (200, &order["number"]));
    register(&server, "barreira@example.com");
    ask_reset(&server, "barreira@example.com");
    server.wait_for_letters("barreira@example.com", "password_reset", 1);
    assert_eq!(
        server
            .wait_for_letters("fan7@test.invalid", "receipt", 1)
            .len(),
        1
    );
}

#[test]
fn a_reset_link_sets_a_new_password_once_and_ends_every_session() {
    let server = start();
    let session = register(&server, "ana@example.com");
    ask_reset(&server, "Ana@Example.com ");
    let letter = server
        .wait_for_letters("ana@example.com", "password_reset", 1)
        .remove(0);
    let token = token_in(&letter, &server);
    assert!(letter.text.contains("30 minutos"), "{}", letter.text);

    let (status, error) = reset(&server, &token, "curta");
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("weak_password"))
    );
    let (status, done) = reset(&server, &token, "uma senha nova e comprida");
    assert_eq!((status, done), (200, serde_json::json!({"reset": true})));
    assert_eq!(
        login(&server, "ana@example.com", "uma senha nova e comprida"),
        200
    );
    assert_eq!(login(&server, "ana@example.com", PASSWORD), 401);
    let (status, _) = call(
        &server,
        "GET",
        "/api/me",
        &[("Authorization", session.as_str())],
        None,
    );
    assert_eq!(status, 401, "the sessions from before the reset ended");
    // The owner is told.
    let notice = server
        .wait_for_letters("ana@example.com", "security_notice", 1)
        .remove(0);
    assert_eq!(notice.subject, "Sua senha foi trocada");

    // Used once: the same link again is refused, and changes nothing.
    let (status, error) = reset(&server, &token, "outra senha bem comprida");
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_reset_token"))
    );
    assert_eq!(
        login(&server, "ana@example.com", "uma senha nova e comprida"),
        200
    );
    // A forged one (another expiry under the same MAC) too.
    let mut parts: Vec<&str> = token.split('.').collect();
    let later = (NOW + 3_600_000).to_string();
    parts[1] = &later;
    assert_eq!(
        reset(&server, &parts.join("."), "outra senha bem comprida").0,
        400
    );
    for junk in ["", "x", "1.2.3", "99999.1.00"] {
        assert_eq!(
            reset(&server, junk, "outra senha bem comprida").0,
            400,
            "{junk:?}"
        );
    }
}

#[test]
fn a_reset_link_expires_after_thirty_minutes() {
    let server = start();
    register(&server, "bia@example.com");
    ask_reset(&server, "bia@example.com");
    let letter = server
        .wait_for_letters("bia@example.com", "password_reset", 1)
        .remove(0);
    let token = token_in(&letter, &server);
    server.clock.set(NOW + 30 * 60 * 1_000 + 1);
    let (status, error) = reset(&server, &token, "uma senha nova e comprida");
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_reset_token"))
    );
    assert_eq!(
        login(&server, "bia@example.com", PASSWORD),
        200,
        "the password is unchanged"
    );
}

#[test]
fn reset_requests_say_nothing_of_accounts_and_send_one_link_a_minute() {
    let server = start();
    register(&server, "caio@example.com");
    // An address of no account: the same answer, and nothing is sent.
    ask_reset(&server, "ninguem@example.com");
    ask_reset(&server, "caio@example.com");
    ask_reset(&server, "caio@example.com");
    server.wait_for_letters("caio@example.com", "password_reset", 1);
    // A minute later a new request sends again; then (FIFO) nothing had
    // gone to the address of no account, and the second request of the
    // first minute sent nothing.
    server.clock.set(NOW + 60_000);
    ask_reset(&server, "caio@example.com");
    assert_eq!(
        server
            .wait_for_letters("caio@example.com", "password_reset", 2)
            .len(),
        2
    );
    assert!(server.letters_to("ninguem@example.com").is_empty());
    // A malformed address is the client's mistake, said as such.
    let (status, error) = call(
        &server,
        "POST",
        "/api/password-reset",
        &[],
        Some(r#"{"email":"not an address"}"#),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_email"))
    );
}

#[test]
fn turning_on_two_factor_is_told_to_the_owner() {
    let server = start();
    admin_token(&server, 5);
    let notice = server
        .wait_for_letters("admin5@test.invalid", "security_notice", 1)
        .remove(0);
    assert_eq!(notice.subject, "Verificação em duas etapas ativada");
    assert!(
        notice.text.contains("127.0.0.1"),
        "from where: {}",
        notice.text
    );
}
