//! Named holders and meia-entrada over the API: an event that requires
//! holders sells only to accounts with one (full name, CPF with its check
//! digits right); a CPF has one account, so a second account with the same
//! CPF (however written) cannot buy; a holder is set once; the CPF is
//! never stored in clear anywhere in the data directory. Meia-entrada types
//! cost half their full-price type, are at least 40 % of the tickets, and
//! are held only with the fan's declaration of the right to them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Server, admin_token, call, start, token};

const CPF: &str = "529.982.247-25";

fn event_body(types: Value) -> String {
    json!({
        "name": "Show Nominal", "venue": "Arena", "starts_at_ms": 1_800_100_000_000u64,
        "opens_at_ms": 1_799_999_999_000u64, "closes_at_ms": 1_800_090_000_000u64,
        "ticket_types": types,
        "policy": {"arrival_window_ms": 0, "max_active": 100, "pow_difficulty": 0,
                   "require_two_factor": false, "require_holder": true}
    })
    .to_string()
}

fn create(server: &Server, admin: &str, types: Value) -> (u16, Value) {
    call(
        server,
        "POST",
        "/api/admin/events",
        &[("Authorization", admin)],
        Some(&event_body(types)),
    )
}

fn set_holder(server: &Server, fan: &str, name: &str, cpf: &str) -> (u16, Value) {
    let body = json!({ "name": name, "cpf": cpf }).to_string();
    call(
        server,
        "PUT",
        "/api/me/holder",
        &[("Authorization", fan)],
        Some(&body),
    )
}

fn select(server: &Server, fan: &str, event: u64, body: Value) -> (u16, Value) {
    call(
        server,
        "PUT",
        &format!("/api/events/{event}/cart"),
        &[("Authorization", fan)],
        Some(&body.to_string()),
    )
}

fn code(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"]["code"].as_str())
}

#[test]
fn meia_entrada_types_must_halve_a_full_price_type_and_make_40_percent() {
    let server = start();
    let admin = admin_token(&server, 100);
    let pista = json!({"name": "Pista", "price_cents": 10_001, "capacity": 60});
    for (types, why) in [
        (
            json!([pista, {"name": "Meia", "price_cents": 5_001, "capacity": 40, "half_price_of": 0}]),
            "half of 10 001 is 5 000",
        ),
        (
            json!([pista, {"name": "Meia", "price_cents": 5_000, "capacity": 39, "half_price_of": 0}]),
            "39 of 99 is under 40 %",
        ),
        (
            json!([pista, {"name": "Meia", "price_cents": 5_000, "capacity": 40, "half_price_of": 1}]),
            "a type is not its own meia",
        ),
        (
            json!([pista, {"name": "Meia", "price_cents": 5_000, "capacity": 40, "half_price_of": 7}]),
            "no type 7",
        ),
    ] {
        let refused = create(&server, &admin, types);
        assert_eq!(
            code(&refused),
            (400, Some("invalid_config")),
            "{why}: {}",
            refused.1
        );
    }
    let (status, event) = create(
        &server,
        &admin,
        json!([pista, {"name": "Pista meia", "price_cents": 5_000, "capacity": 40, "half_price_of": 0}]),
    );
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["holder_required"], true);
    assert_eq!(event["ticket_types"][0]["half_price_of"], Value::Null);
    assert_eq!(event["ticket_types"][1]["half_price_of"], 0);
    // The public view says it too.
    let id = event["id"].as_u64().unwrap();
    let (_, public) = call(&server, "GET", &format!("/api/events/{id}"), &[], None);
    assert_eq!(public["ticket_types"][1]["half_price_of"], 0);
}

#[test]
fn a_sale_with_named_holders_sells_to_one_account_per_cpf() {
    let server = start();
    let admin = admin_token(&server, 100);
    let (status, event) = create(
        &server,
        &admin,
        json!([
            {"name": "Pista", "price_cents": 10_000, "capacity": 60},
            {"name": "Pista meia", "price_cents": 5_000, "capacity": 40, "half_price_of": 0}
        ]),
    );
    assert_eq!(status, 201, "{event}");
    let id = event["id"].as_u64().unwrap();
    let ana = token(&server, 31);
    let me = [("Authorization", ana.as_str())];
    call(
        &server,
        "POST",
        &format!("/api/events/{id}/queue"),
        &me,
        None,
    );
    let pista = json!({"items": [{"ticket_type": 0, "quantity": 1}]});
    assert_eq!(
        code(&select(&server, &ana, id, pista.clone())),
        (403, Some("holder_required"))
    );

    for (name, cpf, error) in [
        ("Ana Souza", "529.982.247-24", "invalid_cpf"),
        ("Ana Souza", "111.111.111-11", "invalid_cpf"),
        ("Ana Souza", "5299822472", "invalid_cpf"),
        ("Ana", CPF, "invalid_name"),
        ("Ana <script>", CPF, "invalid_name"),
    ] {
        assert_eq!(
            code(&set_holder(&server, &ana, name, cpf)),
            (400, Some(error)),
            "{name} {cpf}"
        );
    }
    let (status, set) = set_holder(&server, &ana, "  Ana   Souza ", CPF);
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        set["holder"],
        json!({"name": "Ana Souza", "cpf": "•••.•••.•••-25"})
    );
    // A retry is the same answer; another holder is refused.
    assert_eq!(set_holder(&server, &ana, "Ana Souza", "52998224725").0, 200);
    assert_eq!(
        code(&set_holder(&server, &ana, "Ana Lima", "111.444.777-35")),
        (409, Some("holder_set"))
    );
    let (_, whoami) = call(&server, "GET", "/api/me", &me, None);
    assert_eq!(whoami["holder"]["name"], "Ana Souza");

    // The same CPF, written another way, on another account: refused, so
    // that account can never buy in this sale.
    let bia = token(&server, 32);
    assert_eq!(
        code(&set_holder(&server, &bia, "Bia Souza", " 52998224725 ")),
        (409, Some("cpf_taken"))
    );
    call(
        &server,
        "POST",
        &format!("/api/events/{id}/queue"),
        &[("Authorization", bia.as_str())],
        None,
    );
    assert_eq!(
        code(&select(&server, &bia, id, pista.clone())),
        (403, Some("holder_required"))
    );

    // Meia-entrada needs the declaration.
    let meia = json!({"items": [{"ticket_type": 1, "quantity": 2}]});
    assert_eq!(
        code(&select(&server, &ana, id, meia)),
        (400, Some("half_price_declaration_required"))
    );
    let declared =
        json!({"items": [{"ticket_type": 1, "quantity": 2}], "half_price_declared": true});
    let (status, cart) = select(&server, &ana, id, declared);
    assert_eq!(
        (status, cart["total_cents"].as_u64()),
        (200, Some(10_000)),
        "{cart}"
    );
    let (status, order) = call(
        &server,
        "POST",
        &format!("/api/events/{id}/checkout"),
        &[
            ("Authorization", ana.as_str()),
            ("Idempotency-Key", "meia-1"),
        ],
        Some(r#"{"card_number":"4242424242424242"}"#),
    );
    assert_eq!(status, 201, "{order}");
    let (_, orders) = call(&server, "GET", "/api/me/orders", &me, None);
    assert_eq!(orders["holder"]["name"], "Ana Souza");
    let receipt = server
        .wait_for_letters("fan31@test.invalid", "receipt", 1)
        .remove(0);
    assert!(
        receipt.text.contains("Titular: Ana Souza"),
        "{}",
        receipt.text
    );

    // The audit trail names the holder, never the CPF.
    let (_, trail) = call(
        &server,
        "GET",
        "/api/admin/audit?email=fan31@test.invalid",
        &[("Authorization", admin.as_str())],
        None,
    );
    let trail = trail.to_string();
    assert!(trail.contains("Ana Souza"), "{trail}");
    assert!(
        !trail.contains("529.982") && !trail.contains("52998"),
        "{trail}"
    );
}

#[test]
fn no_cpf_is_written_in_clear_to_the_data_directory() {
    let server = start();
    let fan = token(&server, 33);
    assert_eq!(set_holder(&server, &fan, "Caio Prado", CPF).0, 200);
    let data = server.app.runtime.data_dir().to_path_buf();
    // Flushed to table files too, not only the write-ahead logs.
    server.app.proposer.state().accounts().flush().unwrap();
    let (mut files, mut names) = (0, 0);
    let mut stack = vec![data];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            // The scan can see clear text: the name is stored as it is.
            if bytes.windows(10).any(|w| w == b"Caio Prado") {
                names += 1;
            }
            for clear in ["52998224725", "529.982.247-25", "529982247"] {
                assert!(
                    !bytes.windows(clear.len()).any(|w| w == clear.as_bytes()),
                    "{} holds the CPF in clear",
                    path.display()
                );
            }
            // Nor as the digits' bytes (a binary encoding of the array).
            let digits: Vec<u8> = "52998224725".bytes().map(|b| b - b'0').collect();
            assert!(
                !bytes.windows(digits.len()).any(|w| w == digits),
                "{} holds the CPF's digits",
                path.display()
            );
        }
    }
    assert!(files > 5, "the data directory was read ({files} files)");
    assert!(
        names > 0,
        "the scan finds what is stored in clear (the name)"
    );
}

/// Many accounts racing for one CPF at once (a scalper's farm, each
/// account with the same buyer's CPF, written every which way): exactly
/// one gets it; every other is told `cpf_taken`, and none has a holder.
#[test]
fn accounts_racing_for_one_cpf_get_it_once() {
    let server = start();
    let fans: Vec<String> = (0..8).map(|n| token(&server, 60 + n)).collect();
    let spellings = [
        "529.982.247-25",
        "52998224725",
        "529 982 247 25",
        "529982247-25",
    ];
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let racing: Vec<_> = fans
            .iter()
            .enumerate()
            .map(|(n, fan)| {
                let (server, cpf) = (&server, spellings[n % spellings.len()]);
                scope.spawn(move || set_holder(server, fan, "Maria da Silva", cpf))
            })
            .collect();
        racing.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let won: Vec<usize> = (0..answers.len())
        .filter(|&n| answers[n].0 == 200)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (n, answer) in answers.iter().enumerate() {
        if n != won[0] {
            assert_eq!(code(answer), (409, Some("cpf_taken")), "{answer:?}");
        }
        let (_, me) = call(
            &server,
            "GET",
            "/api/me",
            &[("Authorization", fans[n].as_str())],
            None,
        );
        assert_eq!(me["holder"].is_null(), n != won[0], "{me}");
    }
}
