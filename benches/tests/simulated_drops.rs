//! Seeded simulations of whole drops (20 000 fans, 2 000 tickets): the
//! recorded drop is replayed with the invariants checked after every batch,
//! the sale ends (sold out, or at closing when the types fans wanted ran out)
//! with no ticket left in a hold, and the log of transitions alone rebuilds
//! the same engine. A failure names its seed; `generate(.., seed)` replays it exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ingressoja_benches::drop_sim::generate;
use ingressoja_engine::{Engine, Phase};

#[test]
fn seeded_drops_end_cleanly_keep_invariants_and_replay_exactly() {
    for seed in 1..=5u64 {
        let drop = generate(20_000, 2_000, 30, seed).unwrap();
        let mut log = Vec::new();
        let mut engine = Engine::new(drop.config.clone()).unwrap();
        let mut out = Vec::new();
        for batch in drop.commands.chunks(256) {
            engine.prefetch(batch.iter().map(|(_, command)| command));
            for &(now_ms, command) in batch {
                let _ = engine.apply(command, now_ms, &mut out);
            }
            if let Err(violation) = engine.check_invariants() {
                panic!("seed {seed}: {violation}");
            }
            log.append(&mut out);
        }
        let stats = engine.stats();
        assert!(
            matches!(stats.phase, Phase::Closed(_)),
            "seed {seed}: {stats:?}"
        );
        assert_eq!(stats.tickets_held, 0, "seed {seed}: {stats:?}");
        assert!(stats.tickets_sold > 1_000, "seed {seed}: {stats:?}");
        let replayed = Engine::replay(drop.config.clone(), &log).unwrap();
        assert!(replayed == engine, "seed {seed}: replay diverged");
        let (recorded, transitions) = drop.replay(1024).unwrap();
        assert!(
            recorded == engine,
            "seed {seed}: the recorded drop is not deterministic"
        );
        assert_eq!(transitions, log.len() as u64, "seed {seed}");
    }
}
