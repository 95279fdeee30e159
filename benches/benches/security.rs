//! Criterion benches of the security work per request: an argon2id hash
//! (registration, password change) and verification (login), a TOTP check,
//! a proof-of-work check (server side, per join), and solving one at the
//! default difficulty (what a fan's device spends; native code here, the
//! browser's figure is in docs/BENCHMARKS.md).
//! Run with `cargo bench --profile release -p ingressoja-benches --bench security`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ingressoja::accounts::{password, totp};
use ingressoja::http::pow::{Challenges, solve};
use ingressoja::http::settings::DEFAULT_POW_DIFFICULTY;
use ingressoja::runtime::EventId;

fn passwords(c: &mut Criterion) {
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("argon2id hash (19 MiB, t=2)", |b| {
        b.iter(|| password::hash("correct horse battery staple").unwrap());
    });
    let stored = password::hash("correct horse battery staple").unwrap();
    group.bench_function("argon2id verify", |b| {
        b.iter(|| password::verify("correct horse battery staple", &stored));
    });
    group.finish();
}

fn codes(c: &mut Criterion) {
    let secret = b"12345678901234567890";
    let code = totp::code_at(secret, 1_800_000_000);
    c.bench_function("totp accept (3 steps compared)", |b| {
        b.iter(|| totp::accepted_step(secret, &code, 1_800_000_000, 0));
    });
}

fn proof_of_work(c: &mut Criterion) {
    let challenges = Challenges::new([9; 32]);
    let mut group = c.benchmark_group("proof of work");
    // One clock for every call of the closure: time only moves forward.
    let mut n = 0u64;
    group.bench_function("issue + check (server, per join)", |b| {
        b.iter(|| {
            n += 1;
            // A second apart: used challenges expire and are forgotten, as
            // in a real spike, instead of filling the bounded set.
            let now = n * 1_000;
            let (challenge, _) = challenges.issue(EventId(0), n, 4, now).unwrap();
            let solution = solve(&challenge, 4);
            challenges
                .check(&challenge, &solution, EventId(0), n, 4, now + 1)
                .unwrap();
        });
    });
    group.sample_size(20);
    group.bench_function(
        format!("solve at the default difficulty ({DEFAULT_POW_DIFFICULTY} bits, native)"),
        |b| {
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                let (challenge, _) = challenges
                    .issue(EventId(0), n, DEFAULT_POW_DIFFICULTY, 0)
                    .unwrap();
                solve(&challenge, DEFAULT_POW_DIFFICULTY)
            });
        },
    );
    group.finish();
}

criterion_group!(benches, passwords, codes, proof_of_work);
criterion_main!(benches);
