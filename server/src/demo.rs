//! The demo drop: a small event played through the engine, narrated. It
//! shows every rule a newcomer should see once: the pre-queue draw at
//! opening, paced admission, atomic carts, a declined card, the per-customer
//! limit, an expired hold returning its tickets, idempotent checkout, and the
//! sell-out that closes the queue for everyone still waiting. It ends by
//! replaying the log and checking it rebuilds the same state.

use std::io::Write;

use ingressoja_engine::{
    Command, CustomerId, Engine, EventConfig, MINUTE_MS, Outcome, Payment, Policy, QueueStatus,
    Reply, Schedule, TicketType, TicketTypeId, Transition, TypeCounts,
};

/// 2026-12-01 20:00:00 UTC.
const OPENS_AT_MS: u64 = 1_796_155_200_000;
const PISTA: TicketTypeId = TicketTypeId(0);
const CAMAROTE: TicketTypeId = TicketTypeId(1);

type DemoResult = Result<(), Box<dyn std::error::Error>>;

fn config(seed: u64) -> EventConfig {
    EventConfig {
        name: "Noite de Verão".into(),
        venue: "Circo Voador, Rio de Janeiro".into(),
        starts_at_ms: OPENS_AT_MS + 14 * 24 * 60 * MINUTE_MS,
        ticket_types: vec![
            TicketType {
                name: "Pista".into(),
                price_cents: 18_000,
                capacity: 6,
            },
            TicketType {
                name: "Camarote".into(),
                price_cents: 42_000,
                capacity: 2,
            },
        ],
        schedule: Schedule::with_default_prequeue(OPENS_AT_MS, OPENS_AT_MS + 60 * MINUTE_MS),
        policy: Policy {
            max_active: 3,
            admit_per_second: 2,
            // 8 tickets serve two fans at the limit of 4; half as many
            // again lets a third in, since fans here buy fewer.
            overadmit_percent: 150,
            ..Policy::default()
        },
        shuffle_seed: seed,
    }
}

struct Demo<'w> {
    engine: Engine,
    config: EventConfig,
    now_ms: u64,
    log: Vec<Transition>,
    out: &'w mut dyn Write,
}

impl Demo<'_> {
    fn apply(&mut self, command: Command) -> Result<Outcome, std::io::Error> {
        let before = self.log.len();
        let outcome = self.engine.apply(command, self.now_ms, &mut self.log);
        for index in before..self.log.len() {
            let transition = self.log[index];
            self.narrate(&transition)?;
        }
        Ok(outcome)
    }

    fn say(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "{}  {text}", clock(self.now_ms))
    }

    fn fan(&self, id: u64) -> String {
        format!("fan-{id:02}")
    }

    fn items_text(&self, items: &TypeCounts) -> String {
        let parts: Vec<String> = items
            .iter()
            .map(|(t, q)| {
                let name = self
                    .config
                    .ticket_types
                    .get(t.index())
                    .map_or("?", |t| t.name.as_str());
                format!("{q} × {name}")
            })
            .collect();
        parts.join(" + ")
    }

    fn narrate(&mut self, transition: &Transition) -> std::io::Result<()> {
        let text = match *transition {
            Transition::Opened {
                prequeue_len,
                shuffle_seed,
                ..
            } => format!(
                "sale opens: the {prequeue_len} fans of the pre-queue are placed by the draw (seed {shuffle_seed:#x})"
            ),
            Transition::Joined { customer } => format!("{} joins the queue", self.fan(customer.0)),
            Transition::LeftQueue { customer } => {
                format!("{} gives up their place in line", self.fan(customer.0))
            }
            Transition::Admitted { count, .. } => {
                let served = self.engine.stats().served;
                let names: Vec<String> = (served - count..served)
                    .filter_map(|p| self.engine.customer_at(p))
                    .map(|c| self.fan(c.0))
                    .collect();
                format!(
                    "admitted: {} (their turn: 10 minutes to build a cart)",
                    names.join(", ")
                )
            }
            Transition::ItemsHeld {
                customer,
                items,
                expires_at_ms,
            } => format!(
                "{} holds {} until {}",
                self.fan(customer.0),
                self.items_text(&items),
                clock(expires_at_ms)
            ),
            Transition::ItemsReleased { customer, items } => {
                format!(
                    "{} gives back {}",
                    self.fan(customer.0),
                    self.items_text(&items)
                )
            }
            Transition::HoldExpired { customer } => {
                format!(
                    "{}'s hold expired: its tickets are back on sale",
                    self.fan(customer.0)
                )
            }
            Transition::OrderPlaced { customer, .. } => {
                let order = self.engine.orders_of(customer).next();
                let Some((id, order)) = order else {
                    return Ok(());
                };
                let codes: Vec<String> = self
                    .engine
                    .tickets_of(id)
                    .map(|t| format!("#{} {:.8}…", t.id.0, format!("{:032x}", t.code)))
                    .collect();
                format!(
                    "{} paid R$ {:.2}: order {} with tickets {}",
                    self.fan(customer.0),
                    order.total_cents as f64 / 100.0,
                    id.0,
                    codes.join(", ")
                )
            }
            Transition::SessionEnded { customer } => {
                format!(
                    "{}'s turn ends; the slot goes to the next in line",
                    self.fan(customer.0)
                )
            }
            Transition::Closed { reason, .. } => {
                let waiting = self.engine.stats().waiting;
                format!(
                    "queue closed ({reason:?}): the {waiting} fans still waiting are told at once"
                )
            }
            Transition::Paused { .. } => "sale paused by the operator".into(),
            Transition::Resumed { .. } => "sale resumed".into(),
            Transition::PolicyChanged { .. } | Transition::PolicyChangedV1 { .. } => {
                "policy changed".into()
            }
            Transition::ShopperIdle { customer } => format!(
                "{} holds nothing a minute into the turn: the next in line may come in",
                self.fan(customer.0)
            ),
            Transition::ArrivalWindowOpened { ends_at_ms } => format!(
                "arrivals after opening: everyone who joins until {} is drawn together",
                clock(ends_at_ms)
            ),
            Transition::ArrivalsDrawn { count, .. } => {
                format!("the {count} who arrived in that window are placed by a draw")
            }
            Transition::Rescheduled { .. } => "schedule changed".into(),
        };
        self.say(&text)
    }

    fn answer(&mut self, who: u64, what: &str, outcome: Outcome) -> std::io::Result<()> {
        let text = match outcome {
            Ok(Reply::OrderPlaced {
                duplicate: true,
                order,
            }) => {
                format!(
                    "{} {what} again with the same key: same order {} — nothing sold twice",
                    self.fan(who),
                    order.0
                )
            }
            Ok(_) => return Ok(()),
            Err(rejection) => format!("{} {what}: refused ({})", self.fan(who), rejection.code()),
        };
        self.say(&text)
    }

    fn add(&mut self, who: u64, pairs: &[(TicketTypeId, u16)]) -> std::io::Result<()> {
        let items = TypeCounts::from_pairs(pairs).unwrap_or(TypeCounts::ZERO);
        let outcome = self.apply(Command::AddItems {
            customer: CustomerId(who),
            items,
        })?;
        let what = format!("asks for {}", self.items_text(&items));
        self.answer(who, &what, outcome)
    }

    fn done(&mut self, who: u64) -> std::io::Result<()> {
        let outcome = self.apply(Command::Leave {
            customer: CustomerId(who),
        })?;
        self.answer(who, "is done", outcome)
    }

    fn pay(&mut self, who: u64, key: u128, approved: bool) -> std::io::Result<()> {
        let amount_cents = self
            .engine
            .cart(CustomerId(who))
            .map_or(0, |c| c.total_cents);
        let payment = if approved {
            Payment::Approved {
                amount_cents,
                payment_ref: u64::try_from(key).unwrap_or(0),
            }
        } else {
            Payment::Declined
        };
        let command = Command::Checkout {
            customer: CustomerId(who),
            payment,
            idempotency_key: key,
            ticket_seed: key.wrapping_mul(0x2545_F491_4F6C_DD1D_9E37_79B9_7F4A_7C15),
        };
        let outcome = self.apply(command)?;
        self.answer(who, "pays", outcome)
    }

    fn at(&mut self, now_ms: u64) -> std::io::Result<()> {
        self.now_ms = now_ms;
        self.apply(Command::Tick).map(|_| ())
    }
}

fn clock(ms: u64) -> String {
    let seconds = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Plays the demo drop, writing the story to `out`.
pub fn run(seed: u64, out: &mut dyn Write) -> DemoResult {
    let config = config(seed);
    let engine = Engine::new(config.clone())?;
    writeln!(
        out,
        "IngressoJa demo: \"{}\" at {}",
        config.name, config.venue
    )?;
    writeln!(
        out,
        "6 × Pista (R$ 180), 2 × Camarote (R$ 420); at most 3 shopping at once, 2 admitted per second, 4 tickets per fan\n"
    )?;
    let mut demo = Demo {
        engine,
        config,
        now_ms: OPENS_AT_MS - 20 * MINUTE_MS,
        log: Vec::new(),
        out,
    };

    // The pre-queue: five fans arrive early; arriving first gains nothing.
    for id in 1..=5 {
        let outcome = demo.apply(Command::Join {
            customer: CustomerId(id),
        })?;
        demo.answer(id, "joins", outcome)?;
        demo.now_ms += 90_000;
    }
    let status = demo.engine.queue_status(CustomerId(1));
    demo.say(&format!("fan-01 asks where they stand: {status:?}"))?;

    demo.at(OPENS_AT_MS)?;
    for id in 6..=9 {
        demo.now_ms += 400;
        let outcome = demo.apply(Command::Join {
            customer: CustomerId(id),
        })?;
        demo.answer(id, "joins", outcome)?;
    }
    // Admission is paced (2 a second, no burst at opening): three shoppers
    // by now.
    demo.at(OPENS_AT_MS + 2_000)?;
    let shoppers: Vec<u64> = (1..=9)
        .filter(|&id| {
            matches!(
                demo.engine.queue_status(CustomerId(id)),
                QueueStatus::Shopping { .. }
            )
        })
        .collect();
    let [a, b, c] = shoppers[..] else {
        return Err(format!("expected three shoppers, found {shoppers:?}").into());
    };

    demo.now_ms += 5_000;
    demo.add(a, &[(PISTA, 2), (CAMAROTE, 1)])?;
    demo.add(b, &[(CAMAROTE, 2)])?; // only one Camarote left: all or nothing
    demo.add(b, &[(PISTA, 3)])?;
    demo.add(c, &[(PISTA, 5)])?; // over the limit of 4
    demo.add(c, &[(PISTA, 1)])?;
    demo.now_ms += 30_000;
    demo.pay(a, 1001, false)?; // declined: nothing sold, the hold stays
    demo.now_ms += 10_000;
    demo.pay(a, 1002, true)?;
    demo.pay(a, 1002, true)?; // a retry with the same key
    demo.done(a)?; // the page says "done" after a purchase: the place is freed
    demo.now_ms += 20_000;
    demo.pay(b, 2001, true)?;
    demo.done(b)?;
    // fan c never pays: the hold expires and its ticket goes back on sale.
    if let Some(cart) = demo.engine.cart(CustomerId(c)) {
        demo.at(cart.expires_at_ms)?;
    }
    // Fan c's turn ends with the admission window; the next in line come
    // in (no sooner: the two tickets left serve one shopper, fan c).
    demo.at(OPENS_AT_MS + demo.config.policy.admission_window_ms + 2_000)?;
    let newcomer = (1..=9).find(|&id| {
        ![a, b, c].contains(&id)
            && matches!(
                demo.engine.queue_status(CustomerId(id)),
                QueueStatus::Shopping { .. }
            )
    });
    if let Some(d) = newcomer {
        demo.now_ms += 4_000;
        demo.add(d, &[(PISTA, 1), (CAMAROTE, 1)])?;
        demo.now_ms += 25_000;
        demo.pay(d, 3001, true)?;
    }

    let stats = demo.engine.stats();
    writeln!(demo.out)?;
    demo.say(&format!(
        "end: {} sold, {} held, {} available, {} orders, sale {:?}",
        stats.tickets_sold, stats.tickets_held, stats.tickets_available, stats.orders, stats.phase
    ))?;
    demo.engine.check_invariants()?;
    let replayed = Engine::replay(demo.config.clone(), &demo.log)?;
    let same = if replayed == demo.engine {
        "identical"
    } else {
        "DIFFERENT"
    };
    demo.say(&format!(
        "invariants hold; replaying the {} logged transitions rebuilds an {same} state",
        demo.log.len()
    ))?;
    if replayed != demo.engine {
        return Err("replay diverged from the live engine".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_sells_out_and_replays_for_several_draws() {
        for seed in [1, 2, 2026, 99] {
            let mut text = Vec::new();
            run(seed, &mut text).unwrap();
            let text = String::from_utf8(text).unwrap();
            assert!(
                text.contains("queue closed (SoldOut)"),
                "seed {seed}:\n{text}"
            );
            assert!(text.contains("nothing sold twice"), "seed {seed}:\n{text}");
            assert!(
                text.contains("refused (limit_reached)"),
                "seed {seed}:\n{text}"
            );
            assert!(text.contains("hold expired"), "seed {seed}:\n{text}");
            assert!(
                text.contains("rebuilds an identical state"),
                "seed {seed}:\n{text}"
            );
        }
    }
}
