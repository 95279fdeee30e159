//! Sizing check: one million fans in one event's queue fit in 64 MiB of
//! engine memory (DESIGN.md). Memory is counted by a wrapping allocator, so
//! the figure is exact and does not depend on machine load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingressoja_benches::counting_alloc::{CountingAlloc, live_bytes, peak_bytes, reset_peak};
use ingressoja_benches::drop_sim::{OPENS_AT_MS, drop_config};
use ingressoja_engine::{Command, CustomerId, Engine};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

const MIB: usize = 1024 * 1024;

#[test]
fn a_million_queued_fans_fit_in_64_mib() {
    let mut config = drop_config(100_000);
    config.policy.max_active = 1; // keep nearly everyone waiting
    let before = live_bytes();
    reset_peak();
    let mut engine = Engine::new(config).unwrap();
    let mut out = Vec::new();
    for id in 0..1_000_000u64 {
        engine
            .apply(
                Command::Join {
                    customer: CustomerId(id * 7_919),
                },
                OPENS_AT_MS - 1,
                &mut out,
            )
            .unwrap();
        out.clear();
    }
    // A second after opening (no burst at the opening instant): one admitted.
    engine
        .apply(Command::Tick, OPENS_AT_MS + 1_000, &mut out)
        .unwrap();
    drop(out);
    let engine_bytes = live_bytes() - before;
    let peak = peak_bytes() - before;
    assert_eq!(engine.stats().waiting, 999_999);
    println!(
        "1M queued: {:.1} MiB live, {:.1} MiB peak while growing",
        engine_bytes as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    assert!(
        engine_bytes <= 64 * MIB,
        "{engine_bytes} bytes for 1M queued fans"
    );
}
