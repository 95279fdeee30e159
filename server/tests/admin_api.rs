//! The operators' endpoints over HTTP: only an administrator may use them;
//! events are created and reconfigured through them with the engine's bounds
//! enforced, and a paused sale refuses carts until resumed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{NOW, admin_token, call, join_and_hold, start, token};

const NEW_EVENT: &str = r#"{
    "name": "Show Extra", "venue": "Arena", "starts_at_ms": 1800100000000,
    "opens_at_ms": 1799999999000, "closes_at_ms": 1800090000000,
    "ticket_types": [{"name": "Pista", "price_cents": 10000, "capacity": 50, "limit_per_customer": 2}],
    "policy": {"arrival_window_ms": 0, "max_active": 100, "pow_difficulty": 0, "require_two_factor": false}
}"#;

#[test]
fn only_administrators_use_the_admin_endpoints() {
    let server = start();
    let fan = token(&server, 1);
    let (status, error) = call(
        &server,
        "POST",
        "/api/admin/events",
        &[("Authorization", fan.as_str())],
        Some(NEW_EVENT),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = call(&server, "GET", "/api/admin/stats", &[], None);
    assert_eq!(status, 401);
}

#[test]
fn an_operator_creates_configures_pauses_and_snapshots_a_sale() {
    let server = start();
    let admin = admin_token(&server, 100);
    let ops = [("Authorization", admin.as_str())];
    let (status, event) = call(&server, "POST", "/api/admin/events", &ops, Some(NEW_EVENT));
    assert_eq!(status, 201, "{event}");
    assert_eq!(
        (
            event["id"].as_u64(),
            event["ticket_types"][0]["limit_per_customer"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        event["prequeue_opens_at_ms"].as_u64(),
        Some(NOW - 1_000 - 30 * 60_000),
        "30-minute pre-queue by default"
    );

    let (status, error) = call(
        &server,
        "POST",
        "/api/admin/events",
        &ops,
        Some(
            r#"{"name":"x","venue":"y","starts_at_ms":1,"opens_at_ms":1,"closes_at_ms":2,"ticket_types":[]}"#,
        ),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_config")),
        "{error}"
    );

    let (status, updated) = call(
        &server,
        "PUT",
        "/api/admin/events/1/policy",
        &ops,
        Some(r#"{"hold_ttl_ms": 120000}"#),
    );
    assert_eq!(status, 200, "{updated}");
    let (status, error) = call(
        &server,
        "PUT",
        "/api/admin/events/1/policy",
        &ops,
        Some(r#"{"hold_ttl_ms": 1}"#),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_config")),
        "{error}"
    );

    // Pausing stops carts; resuming lets them through.
    let (status, paused) = call(&server, "POST", "/api/admin/events/0/pause", &ops, None);
    assert_eq!((status, paused["paused"].as_bool()), (200, Some(true)));
    let fan = token(&server, 7);
    let me = [("Authorization", fan.as_str())];
    call(&server, "POST", "/api/events/0/queue", &me, None);
    let items = Some(r#"{"items":[{"ticket_type":0,"quantity":1}]}"#);
    let (status, error) = call(&server, "POST", "/api/events/0/cart/items", &me, items);
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("paused"))
    );
    call(&server, "POST", "/api/admin/events/0/resume", &ops, None);
    let (status, _) = call(&server, "POST", "/api/events/0/cart/items", &me, items);
    assert_eq!(status, 200);

    let (status, snapshot) = call(&server, "POST", "/api/admin/snapshot", &ops, None);
    assert_eq!(status, 201, "{snapshot}");
    assert!(snapshot["snapshot_seq"].as_u64().unwrap() > 0);
    let (status, stats) = call(&server, "GET", "/api/admin/stats", &ops, None);
    assert_eq!(status, 200);
    assert_eq!(stats["events"].as_array().unwrap().len(), 2, "{stats}");
    assert_eq!(
        stats["events"][0]["tickets_held"].as_u64(),
        Some(1),
        "{stats}"
    );
}

#[test]
fn sale_actions_are_audited_with_who_what_when_and_where_from() {
    let server = start();
    let admin = admin_token(&server, 101);
    let ops = [("Authorization", admin.as_str())];
    let fan = token(&server, 7);
    let me = [("Authorization", fan.as_str())];
    join_and_hold(
        &server,
        &fan,
        r#"{"items":[{"ticket_type":0,"quantity":2}]}"#,
    );
    let (status, order) = call(
        &server,
        "POST",
        "/api/events/0/checkout",
        &[
            ("Authorization", fan.as_str()),
            ("Idempotency-Key", "audit-1"),
        ],
        Some(r#"{"card_number":"4242 4242 4242 4242"}"#),
    );
    assert_eq!(status, 201, "{order}");
    let (_, who) = call(&server, "GET", "/api/me", &me, None);
    let account = who["account"]["id"].as_u64().unwrap();

    let (status, trail) = call(
        &server,
        "GET",
        &format!("/api/admin/audit?log=sale&account={account}&event=0"),
        &ops,
        None,
    );
    assert_eq!(status, 200, "{trail}");
    assert_eq!(trail["complete"], true);
    let seen: Vec<(&str, &str)> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["ip"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("payment_settled", "-"),
            ("order_placed", "127.0.0.1"),
            ("payment_started", "127.0.0.1"),
            ("items_held", "127.0.0.1"),
            ("joined", "127.0.0.1"),
        ],
        "newest first, each from the fan's address: {trail}"
    );
    let held = &trail["entries"][3];
    assert_eq!(
        held["detail"].as_str().unwrap().split(" until ").next(),
        Some("type 0 × 2")
    );
    assert_eq!(held["account"], account);
    assert!(held["at_ms"].as_u64().unwrap() >= NOW, "{held}");
    // The detail's facts, typed, for the operators' page to name and format.
    assert_eq!(
        held["items"],
        serde_json::json!([{"ticket_type": 0, "quantity": 2}])
    );
    assert!(held["until_ms"].as_u64().unwrap() > held["at_ms"].as_u64().unwrap());
    assert_eq!(trail["entries"][2]["amount_cents"], order["total_cents"]);

    // By e-mail (as an operator knows a fan), the same entries; upper case
    // and %-encoding as a form sends them.
    let email = who["account"]["email"].as_str().unwrap().to_uppercase();
    let (status, by_email) = call(
        &server,
        "GET",
        &format!(
            "/api/admin/audit?log=sale&event=0&email={}",
            email.replace('@', "%40")
        ),
        &ops,
        None,
    );
    assert_eq!(status, 200, "{by_email}");
    assert_eq!(by_email["entries"], trail["entries"]);
    // The accounts' log by e-mail: the operator's own logins.
    let (_, operator) = call(&server, "GET", "/api/me", &ops, None);
    let (status, logins) = call(
        &server,
        "GET",
        "/api/admin/audit?email=Admin101%40test.invalid",
        &ops,
        None,
    );
    assert_eq!(status, 200, "{logins}");
    let whose: Vec<&serde_json::Value> = logins["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["account"])
        .collect();
    assert!(
        !whose.is_empty() && whose.iter().all(|a| **a == operator["account"]["id"]),
        "{logins}"
    );
    // A filter longer than any e-mail is the client's mistake (bounded).
    let long = format!("/api/admin/audit?email={}", "0".repeat(255));
    let (status, error) = call(&server, "GET", &long, &ops, None);
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_query")),
        "{error}"
    );
    // An e-mail of no account: what names it (a failed login) in the
    // accounts' log, nothing in the sale log.
    let wrong = r#"{"email":"ninguem@example.com","password":"not the password at all"}"#;
    let (status, _) = call(&server, "POST", "/api/session", &[], Some(wrong));
    assert_eq!(status, 401);
    let (status, failed) = call(
        &server,
        "GET",
        "/api/admin/audit?email=ninguem%40example.com",
        &ops,
        None,
    );
    assert_eq!(status, 200, "{failed}");
    assert_eq!(
        failed["entries"].as_array().map(Vec::len),
        Some(1),
        "{failed}"
    );
    assert_eq!(failed["entries"][0]["action"], "login_failed", "{failed}");
    // An e-mail of no account: nothing in the sale log.
    let (status, nobody) = call(
        &server,
        "GET",
        "/api/admin/audit?log=sale&email=ninguem%40example.com",
        &ops,
        None,
    );
    assert_eq!(
        (status, nobody["entries"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{nobody}"
    );

    // The default log is the accounts' one; an unknown log is the client's mistake.
    let (status, accounts) = call(&server, "GET", "/api/admin/audit", &ops, None);
    assert_eq!((status, accounts["log"].as_str()), (200, Some("audit")));
    let (status, error) = call(&server, "GET", "/api/admin/audit?log=sales", &ops, None);
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
}

/// The addresses the sale trail holds for account `account`'s joins.
fn join_addresses(server: &support::Server, admin: &str, account: u64) -> Vec<String> {
    let (status, trail) = call(
        server,
        "GET",
        &format!("/api/admin/audit?log=sale&account={account}"),
        &[("Authorization", admin)],
        None,
    );
    assert_eq!(status, 200, "{trail}");
    trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "joined")
        .map(|e| e["ip"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_address_is_the_fans_and_elsewhere_it_is_ignored() {
    for (trusted, expected) in [(vec![], "127.0.0.1"), (vec!["127.0.0.1"], "203.0.113.5")] {
        let server = support::start_configured(ingressoja::http::config::ServerConfig {
            development: true,
            trusted_proxies: trusted.iter().map(|a| a.parse().unwrap()).collect(),
            ..ingressoja::http::config::ServerConfig::default()
        });
        let admin = admin_token(&server, 102);
        let fan = token(&server, 8);
        let (status, joined) = call(
            &server,
            "POST",
            "/api/events/0/queue",
            &[
                ("Authorization", fan.as_str()),
                ("X-Forwarded-For", "198.51.100.66, 203.0.113.5"),
            ],
            None,
        );
        assert_eq!(status, 201, "{joined}");
        let (_, who) = call(
            &server,
            "GET",
            "/api/me",
            &[("Authorization", fan.as_str())],
            None,
        );
        let account = who["account"]["id"].as_u64().unwrap();
        assert_eq!(
            join_addresses(&server, &admin, account),
            vec![expected.to_string()],
            "trusted proxies {trusted:?}"
        );
    }
}
