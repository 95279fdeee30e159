//! A single node's point-in-time restore and the accounts kept beside the
//! sale: fans register before and after the chosen instant, the server
//! dies, and an operator restores its backup to that instant. The
//! accounts stay as the backup holds them (the restore rolls back the
//! sale, not them), and the server goes on taking new accounts: their
//! records, numbered anew after the cut, are applied, not taken for ones
//! the accounts had already applied before the cut (they were, until the
//! restore moved the accounts' position back to the cut).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use serde_json::json;
use support::{operator, send, serve_binary};

mod support;

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn post(addr: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let addr: SocketAddr = addr.parse().unwrap();
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    send(addr, &head, body.as_bytes())
}

fn register(addr: &str, email: &str) -> u16 {
    post(
        addr,
        "/api/accounts",
        &json!({ "email": email, "password": "uma senha bem comprida", "accept_terms": true }),
    )
    .0
}

fn logs_in(addr: &str, email: &str) -> bool {
    post(
        addr,
        "/api/session",
        &json!({ "email": email, "password": "uma senha bem comprida" }),
    )
    .0 == 200
}

#[test]
fn a_restore_to_an_instant_keeps_the_accounts_and_takes_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().join("data"), dir.path().join("server.toml"));
    std::fs::write(&config, "development = true\n").unwrap();
    let (server, addr) = serve_binary("127.0.0.1:0", &data, &config, &[]);
    assert_eq!(register(&addr, "before@example.com"), 201);
    // The instant to restore to: after the first account's record, before
    // the second's (the clock polled past it, not slept on).
    let instant = now_ms();
    while now_ms() <= instant + 1 {
        std::hint::spin_loop();
    }
    assert_eq!(register(&addr, "after@example.com"), 201);
    drop(server);

    let backup = dir.path().join("backup");
    let restored = dir.path().join("restored");
    operator(&[
        "backup",
        "create",
        backup.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let said = operator(&[
        "restore",
        backup.to_str().unwrap(),
        "--data",
        restored.to_str().unwrap(),
        "--until-time",
        &instant.to_string(),
    ]);
    assert!(
        said.contains("accounts, sessions and the audit log are kept"),
        "{said}"
    );

    let (_server, addr) = serve_binary("127.0.0.1:0", &restored, &config, &[]);
    assert!(logs_in(&addr, "before@example.com"));
    assert!(
        logs_in(&addr, "after@example.com"),
        "kept as the backup holds it"
    );
    assert_eq!(register(&addr, "new@example.com"), 201);
    assert!(
        logs_in(&addr, "new@example.com"),
        "an account made after the restore"
    );
}
