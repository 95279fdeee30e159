//! A whole drop, simulated in virtual time and recorded as commands.
//!
//! The driver plays the fans: a share of them join during the 30-minute
//! pre-queue, the rest arrive in a spike in the first minute after opening
//! (front-loaded). The shard's ticks come every 100 ms. When customers are
//! admitted, most build a cart a few seconds later (1 to 4 tickets, types
//! weighted 60/30/10), most of those pay (some after a declined card),
//! some remove a ticket first, some abandon their cart to expire. The driver
//! reacts to the engine's answers, so the recorded stream is a coherent drop;
//! replaying it against a fresh engine repeats it exactly (the engine is
//! deterministic), which is what the benches time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ingressoja_engine::shuffle::mix64;
use ingressoja_engine::{
    Command, ConfigError, CustomerId, Engine, EventConfig, MINUTE_MS, Payment, Phase, Policy,
    Reply, Schedule, TicketType, TicketTypeId, Transition, TypeCounts,
};

/// 2026-12-01 20:00 UTC, in ms since the epoch.
pub const OPENS_AT_MS: u64 = 1_796_155_200_000;
const TICK_MS: u64 = 100;

/// A recorded drop.
pub struct Drop {
    /// The event.
    pub config: EventConfig,
    /// Every command the shard applied, with its time.
    pub commands: Vec<(u64, Command)>,
}

impl Drop {
    /// Applies the whole drop to a fresh engine, in batches of `batch`
    /// commands as the shard drains them: each batch is prefetched, applied,
    /// and its transitions handed to `on_batch`. Returns the engine.
    pub fn replay_with(
        &self,
        batch: usize,
        mut on_batch: impl FnMut(&[Transition]),
    ) -> Result<Engine, ConfigError> {
        let mut engine = Engine::new(self.config.clone())?;
        let mut out = Vec::with_capacity(batch * 4);
        for chunk in self.commands.chunks(batch.max(1)) {
            engine.prefetch(chunk.iter().map(|(_, command)| command));
            for &(now_ms, command) in chunk {
                // Rejections are part of the drop.
                let _ = engine.apply(command, now_ms, &mut out);
            }
            on_batch(&out);
            out.clear();
        }
        Ok(engine)
    }

    /// Replays the drop and counts its transitions.
    pub fn replay(&self, batch: usize) -> Result<(Engine, u64), ConfigError> {
        let mut transitions = 0u64;
        let engine = self.replay_with(batch, |out| transitions += out.len() as u64)?;
        Ok((engine, transitions))
    }

    /// How many transitions of each kind the drop produces, most first.
    pub fn transition_mix(&self) -> Result<Vec<(&'static str, u64)>, ConfigError> {
        let mut counts: Vec<(&'static str, u64)> = Vec::new();
        self.replay_with(1024, |out| {
            for transition in out {
                let kind = transition.kind();
                match counts.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, count)) => *count += 1,
                    None => counts.push((kind, 1)),
                }
            }
        })?;
        counts.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
        Ok(counts)
    }
}

/// The event of the benchmark drop: `tickets` tickets in three types, the
/// default limits, 20 000 active shoppers admitted at 5 000 per second.
pub fn drop_config(tickets: u32) -> EventConfig {
    let pista = tickets * 6 / 10;
    let premium = tickets * 3 / 10;
    let camarote = tickets.saturating_sub(pista + premium).max(1);
    EventConfig {
        name: "Turnê de Verão".into(),
        venue: "Estádio do Morumbi".into(),
        starts_at_ms: OPENS_AT_MS + 30 * 24 * 60 * MINUTE_MS,
        ticket_types: vec![
            TicketType {
                name: "Pista".into(),
                price_cents: 25_000,
                capacity: pista.max(1),
            },
            TicketType {
                name: "Pista Premium".into(),
                price_cents: 45_000,
                capacity: premium.max(1),
            },
            TicketType {
                name: "Camarote".into(),
                price_cents: 90_000,
                capacity: camarote,
            },
        ],
        schedule: Schedule::with_default_prequeue(OPENS_AT_MS, OPENS_AT_MS + 4 * 60 * MINUTE_MS),
        policy: Policy {
            max_active: 20_000,
            admit_per_second: 5_000,
            ..Policy::default()
        },
        shuffle_seed: 0xD120_2026,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Tick,
    Join(u64),
    Add(u64),
    Remove(u64),
    Pay(u64),
    Decline(u64),
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Simulates a drop of `customers` fans for `tickets` tickets, `prequeue_percent`
/// of whom join before opening.
pub fn generate(
    customers: u64,
    tickets: u32,
    prequeue_percent: u64,
    seed: u64,
) -> Result<Drop, ConfigError> {
    let config = drop_config(tickets);
    let mut engine = Engine::new(config.clone())?;
    let mut rng = Rng(seed);
    let mut events: BinaryHeap<Reverse<(u64, u64, Action)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut push = |events: &mut BinaryHeap<_>, at: u64, action| {
        sequence += 1;
        events.push(Reverse((at, sequence, action)));
    };
    let prequeue_at = config.schedule.prequeue_opens_at_ms;
    for id in 0..customers {
        let at = if rng.chance(prequeue_percent) {
            prequeue_at + rng.below(OPENS_AT_MS - prequeue_at)
        } else {
            // The spike: the earlier of two uniform draws over a minute.
            OPENS_AT_MS + rng.below(60_000).min(rng.below(60_000))
        };
        push(&mut events, at, Action::Join(id));
    }
    push(&mut events, OPENS_AT_MS, Action::Tick);

    let expected = customers.saturating_add(4 * u64::from(tickets));
    let mut commands = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let mut out = Vec::new();
    while let Some(Reverse((now, _, action))) = events.pop() {
        let customer = |id| CustomerId(id);
        let command = match action {
            Action::Tick => Command::Tick,
            Action::Join(id) => Command::Join {
                customer: customer(id),
            },
            Action::Add(id) => {
                let ticket_type = match rng.below(10) {
                    0..=5 => 0,
                    6..=8 => 1,
                    _ => 2,
                };
                let quantity = 1 + u16::try_from(rng.below(4)).unwrap_or(0);
                let items = TypeCounts::single(TicketTypeId(ticket_type), quantity)
                    .unwrap_or(TypeCounts::ZERO);
                Command::AddItems {
                    customer: customer(id),
                    items,
                }
            }
            Action::Remove(id) => {
                let Some(cart) = engine.cart(customer(id)) else {
                    continue;
                };
                let Some((ticket_type, _)) = cart.items.iter().next() else {
                    continue;
                };
                let items = TypeCounts::single(ticket_type, 1).unwrap_or(TypeCounts::ZERO);
                Command::RemoveItems {
                    customer: customer(id),
                    items,
                }
            }
            Action::Pay(id) | Action::Decline(id) => {
                let amount_cents = engine.cart(customer(id)).map_or(0, |c| c.total_cents);
                let payment = if matches!(action, Action::Decline(_)) {
                    Payment::Declined
                } else {
                    Payment::Approved {
                        amount_cents,
                        payment_ref: id,
                    }
                };
                let key = u128::from(rng.next());
                Command::Checkout {
                    customer: customer(id),
                    payment,
                    idempotency_key: key,
                    ticket_seed: key.rotate_left(64) ^ u128::from(rng.next()),
                }
            }
        };
        out.clear();
        let outcome = engine.apply(command, now, &mut out);
        commands.push((now, command));
        // The fans react.
        for transition in &out {
            if let Transition::Admitted { count, .. } = *transition {
                let served = engine.stats().served;
                for position in served - count..served {
                    if let Some(id) = engine.customer_at(position)
                        && rng.chance(85)
                    {
                        push(
                            &mut events,
                            now + 2_000 + rng.below(18_000),
                            Action::Add(id.0),
                        );
                    }
                }
            }
        }
        match (action, outcome) {
            (Action::Add(id), Ok(Reply::Held { .. })) => {
                let roll = rng.below(100);
                let at = now + 10_000 + rng.below(50_000);
                if roll < 10 {
                    push(&mut events, at, Action::Remove(id));
                    push(&mut events, at + 5_000, Action::Pay(id));
                } else if roll < 20 {
                    push(&mut events, at, Action::Decline(id));
                    push(&mut events, at + 8_000, Action::Pay(id));
                } else if roll < 85 {
                    push(&mut events, at, Action::Pay(id));
                }
                // Otherwise the cart is abandoned and expires.
            }
            (Action::Tick, _) if !matches!(engine.phase(), Phase::Closed(_)) => {
                push(&mut events, now + TICK_MS, Action::Tick);
            }
            _ => {}
        }
    }
    Ok(Drop { config, commands })
}
