//! `ingressoja crash-load`: the runtime under steady load, for the crash
//! tests. It recovers the data directory, creates its event on first start,
//! then keeps up to 64 requests in flight from a few thousand virtual fans
//! (join, add to cart, pay, release) until killed, or until its parent
//! process is gone. For every acknowledged
//! hold and purchase it appends a line `SEQ KIND CUSTOMER` to the acks file,
//! only after the reply arrived (that is, after the batch was synced), with
//! one unbuffered write per line, so every complete line is a promise the
//! log must keep after a SIGKILL.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use ingressoja_engine::shuffle::mix64;
use ingressoja_engine::{
    Command, CustomerId, EventConfig, Payment, Policy, Schedule, TicketType, TicketTypeId,
    Transition, TypeCounts,
};

use crate::runtime::{Applied, EventId, Runtime, RuntimeError, RuntimeOptions, SystemClock};

/// Fans and tickets are plenty for a whole crash test (at most four
/// tickets per fan, so acknowledgements keep coming for ~100 000 holds and
/// purchases before the sale runs dry).
const FANS: u64 = 25_000;
const IN_FLIGHT: usize = 64;

/// The event every crash-load run uses.
pub fn event_config() -> EventConfig {
    EventConfig {
        name: "Crash Test Drop".into(),
        venue: "Loopback".into(),
        starts_at_ms: u64::MAX / 4,
        ticket_types: vec![
            TicketType {
                name: "Pista".into(),
                price_cents: 10_000,
                capacity: 200_000,
            },
            TicketType {
                name: "Camarote".into(),
                price_cents: 30_000,
                capacity: 20_000,
            },
        ],
        schedule: Schedule {
            prequeue_opens_at_ms: 0,
            opens_at_ms: 1,
            closes_at_ms: u64::MAX / 4,
        },
        policy: Policy {
            max_active: 100_000,
            admit_per_second: 100_000,
            ..Policy::default()
        },
        shuffle_seed: 0x00C2_A511,
    }
}

/// Runs until killed (or until the runtime fails).
pub fn run(data: &Path, acks: &Path, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut options = RuntimeOptions::new(data);
    // Snapshots often, so kills land around them too.
    options.snapshot_every_records = 5_000;
    let runtime = Runtime::start(options, Arc::new(SystemClock))?;
    let existing = runtime
        .query(|state| state.events.keys().next().copied())?
        .wait()?;
    let event = match existing {
        Some(event) => event,
        None => runtime.create_event(event_config())?.wait()?,
    };
    let mut acks = OpenOptions::new().create(true).append(true).open(acks)?;
    let mut rng = seed;
    let mut in_flight = VecDeque::new();
    loop {
        while in_flight.len() < IN_FLIGHT {
            rng = mix64(rng.wrapping_add(0x9E37_79B9_7F4A_7C15));
            let command = next_command(&runtime, event, rng)?;
            match runtime.submit(event, command, None) {
                Ok(receiver) => in_flight.push_back(receiver),
                Err(RuntimeError::Overloaded) => break,
                Err(error) => return Err(error.into()),
            }
        }
        let Some(receiver) = in_flight.pop_front() else {
            continue;
        };
        let applied = receiver.wait()?;
        record_acks(&mut acks, &applied)?;
    }
}

fn next_command(runtime: &Runtime, event: EventId, rng: u64) -> Result<Command, RuntimeError> {
    let customer = CustomerId(rng % FANS);
    Ok(match (rng >> 20) % 10 {
        0..=2 => Command::Join { customer },
        3..=5 => {
            let ticket_type = TicketTypeId(u8::from((rng >> 40).is_multiple_of(5)));
            let quantity = 1 + u16::from((rng >> 44).is_multiple_of(2));
            let items = TypeCounts::single(ticket_type, quantity).unwrap_or(TypeCounts::ZERO);
            Command::AddItems { customer, items }
        }
        6..=8 => {
            let amount_cents = runtime
                .query(move |state| {
                    state
                        .events
                        .get(&event)
                        .and_then(|e| e.cart(customer))
                        .map_or(0, |c| c.total_cents)
                })?
                .wait()?;
            let key = u128::from(mix64(rng));
            Command::Checkout {
                customer,
                payment: Payment::Approved {
                    amount_cents,
                    payment_ref: rng,
                },
                idempotency_key: key,
                ticket_seed: key << 64 | u128::from(rng),
            }
        }
        _ => Command::ReleaseHold { customer },
    })
}

fn record_acks(acks: &mut std::fs::File, applied: &Applied) -> std::io::Result<()> {
    let first_seq = applied.last_seq + 1 - applied.transitions.len() as u64;
    let mut lines = String::new();
    for (seq, transition) in (first_seq..).zip(&applied.transitions) {
        match transition {
            Transition::ItemsHeld { customer, .. } => {
                lines.push_str(&format!("{seq} held {}\n", customer.0))
            }
            Transition::OrderPlaced { customer, .. } => {
                lines.push_str(&format!("{seq} order {}\n", customer.0))
            }
            _ => {}
        }
    }
    if !lines.is_empty() {
        acks.write_all(lines.as_bytes())?;
    }
    Ok(())
}
