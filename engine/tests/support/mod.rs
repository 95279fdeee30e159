//! A harness for driving one event through a sale in tests: it keeps the
//! clock and the transition log, and checks every invariant after every
//! command, so no scenario can break one silently.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

pub mod model;

use ingressoja_engine::{
    Command, CustomerId, Engine, EventConfig, MINUTE_MS, Outcome, Payment, Policy, Schedule,
    TicketType, TicketTypeId, Transition, TypeCounts,
};

/// The pre-queue opens 30 minutes before the sale, which opens at one hour.
pub const OPENS_AT: u64 = 60 * MINUTE_MS;
pub const PREQUEUE_AT: u64 = OPENS_AT - 30 * MINUTE_MS;
pub const CLOSES_AT: u64 = OPENS_AT + 4 * 60 * MINUTE_MS;

pub const PISTA: TicketTypeId = TicketTypeId(0);
pub const CAMAROTE: TicketTypeId = TicketTypeId(1);

pub fn c(id: u64) -> CustomerId {
    CustomerId(id)
}

pub fn items(pairs: &[(TicketTypeId, u16)]) -> TypeCounts {
    TypeCounts::from_pairs(pairs).unwrap()
}

/// Two types: Pista (R$ 250, `pista` tickets) and Camarote (R$ 600,
/// `camarote` tickets; left out when 0), the default policy with arrivals
/// placed in strict order and the most over-admission (the scenarios of
/// fair admission set their own).
pub fn config(pista: u32, camarote: u32) -> EventConfig {
    let mut ticket_types = vec![TicketType {
        name: "Pista".into(),
        price_cents: 25_000,
        capacity: pista,
    }];
    if camarote > 0 {
        ticket_types.push(TicketType {
            name: "Camarote".into(),
            price_cents: 60_000,
            capacity: camarote,
        });
    }
    EventConfig {
        name: "Show de Teste".into(),
        venue: "Allianz Parque".into(),
        starts_at_ms: CLOSES_AT + 60 * MINUTE_MS,
        ticket_types,
        schedule: Schedule::with_default_prequeue(OPENS_AT, CLOSES_AT),
        policy: Policy {
            overadmit_percent: 1_000,
            arrival_window_ms: 0,
            ..Policy::default()
        },
        shuffle_seed: 0x5EED,
    }
}

pub struct Sale {
    pub engine: Engine,
    pub config: EventConfig,
    pub now: u64,
    pub log: Vec<Transition>,
    next_key: u128,
}

impl Sale {
    pub fn new(config: EventConfig) -> Sale {
        Sale {
            engine: Engine::new(config.clone()).unwrap(),
            config,
            now: PREQUEUE_AT,
            log: Vec::new(),
            next_key: 1,
        }
    }

    /// A sale with these ticket counts and policy tweaks, opened a second
    /// before `OPENS_AT` (so the admission bucket, empty at opening, has
    /// filled), with `admitted` customers 1..=admitted joined and admitted
    /// at `OPENS_AT`.
    pub fn open_with(
        pista: u32,
        camarote: u32,
        tweak: impl FnOnce(&mut Policy),
        admitted: u64,
    ) -> Sale {
        let mut config = config(pista, camarote);
        config.schedule.opens_at_ms = OPENS_AT - 1_000;
        tweak(&mut config.policy);
        let mut sale = Sale::new(config);
        sale.at(OPENS_AT - 1_000).tick().unwrap();
        sale.at(OPENS_AT);
        for id in 1..=admitted {
            sale.join(id).unwrap();
        }
        sale.tick().unwrap();
        sale
    }

    pub fn at(&mut self, now: u64) -> &mut Sale {
        self.now = now;
        self
    }

    pub fn later(&mut self, ms: u64) -> &mut Sale {
        self.now += ms;
        self
    }

    /// Applies a command now; checks the invariants.
    pub fn apply(&mut self, command: Command) -> Outcome {
        let before = self.log.len();
        let outcome = self.engine.apply(command, self.now, &mut self.log);
        if let Err(violation) = self.engine.check_invariants() {
            panic!(
                "{command:?} at {} broke an invariant: {violation}\nnew transitions: {:?}",
                self.now,
                &self.log[before..]
            );
        }
        if outcome.is_err() {
            // A rejection changes nothing but what time alone changes.
            let time_only = self.log[before..].iter().all(|t| {
                !matches!(
                    t,
                    Transition::Joined { .. }
                        | Transition::ItemsHeld { .. }
                        | Transition::ItemsReleased { .. }
                        | Transition::OrderPlaced { .. }
                )
            });
            assert!(
                time_only,
                "rejected {command:?} still changed state: {:?}",
                &self.log[before..]
            );
        }
        outcome
    }

    pub fn tick(&mut self) -> Outcome {
        self.apply(Command::Tick)
    }

    pub fn join(&mut self, id: u64) -> Outcome {
        self.apply(Command::Join { customer: c(id) })
    }

    pub fn add(&mut self, id: u64, pairs: &[(TicketTypeId, u16)]) -> Outcome {
        self.apply(Command::AddItems {
            customer: c(id),
            items: items(pairs),
        })
    }

    pub fn remove(&mut self, id: u64, pairs: &[(TicketTypeId, u16)]) -> Outcome {
        self.apply(Command::RemoveItems {
            customer: c(id),
            items: items(pairs),
        })
    }

    pub fn set(&mut self, id: u64, pairs: &[(TicketTypeId, u16)]) -> Outcome {
        self.apply(Command::SetItems {
            customer: c(id),
            items: items(pairs),
        })
    }

    pub fn release(&mut self, id: u64) -> Outcome {
        self.apply(Command::ReleaseHold { customer: c(id) })
    }

    pub fn leave(&mut self, id: u64) -> Outcome {
        self.apply(Command::Leave { customer: c(id) })
    }

    /// Pays for the hold with an approved charge of the right amount and a
    /// fresh idempotency key.
    pub fn pay(&mut self, id: u64) -> Outcome {
        let key = self.fresh_key();
        self.pay_with(id, key)
    }

    pub fn pay_with(&mut self, id: u64, key: u128) -> Outcome {
        let amount_cents = self.engine.cart(c(id)).map_or(0, |cart| cart.total_cents);
        self.checkout(
            id,
            key,
            Payment::Approved {
                amount_cents,
                payment_ref: 77,
            },
        )
    }

    pub fn checkout(&mut self, id: u64, key: u128, payment: Payment) -> Outcome {
        self.apply(Command::Checkout {
            customer: c(id),
            payment,
            idempotency_key: key,
            ticket_seed: key * 31 + 7,
        })
    }

    pub fn fresh_key(&mut self) -> u128 {
        self.next_key += 1;
        self.next_key
    }

    pub fn held(&self, t: TicketTypeId) -> u32 {
        self.engine.stock()[t.index()].held
    }

    pub fn available(&self, t: TicketTypeId) -> u32 {
        self.engine.stock()[t.index()].available
    }

    pub fn sold(&self, t: TicketTypeId) -> u32 {
        self.engine.stock()[t.index()].sold
    }

    /// The engine rebuilt from the log alone.
    pub fn replayed(&self) -> Engine {
        Engine::replay(self.config.clone(), &self.log).unwrap()
    }
}
