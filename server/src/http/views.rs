//! The JSON shapes of the API: what fans and tools read. Built from engine
//! values; nothing here changes state.

use ingressoja_engine::{
    CloseReason, Engine, EventConfig, Order, Phase, QueueStatus, Stats, Stock, Ticket,
};
use serde_json::{Value, json};

use super::pace::Pace;
use crate::runtime::EventId;

/// What an event's view is made of, copied out of the engine on the shard
/// (a few hundred bytes). The shard must not spend its time building JSON:
/// every fan's event page and every stream update reads an event, and the
/// shard is the one thread all of a sale's requests wait on. [`event`]
/// renders it on the HTTP workers.
#[derive(Clone, Debug)]
pub struct EventFacts {
    id: EventId,
    config: EventConfig,
    stock: Vec<Stock>,
    stats: Stats,
}

impl EventFacts {
    /// Copies what the view needs (on the shard).
    pub fn of(id: EventId, engine: &Engine) -> EventFacts {
        EventFacts {
            id,
            config: engine.config().clone(),
            stock: engine.stock().to_vec(),
            stats: engine.stats(),
        }
    }
}

/// An event with its live stock.
pub fn event(facts: &EventFacts) -> Value {
    let EventFacts {
        id,
        config,
        stock,
        stats,
    } = facts;
    let types: Vec<Value> = config
        .ticket_types
        .iter()
        .enumerate()
        .map(|(t, ticket_type)| {
            let counts = stock.get(t).copied();
            json!({
                "id": t,
                "name": ticket_type.name,
                "price_cents": ticket_type.price_cents,
                "capacity": ticket_type.capacity,
                "available": counts.map_or(0, |s| s.available),
                "held": counts.map_or(0, |s| s.held),
                "sold": counts.map_or(0, |s| s.sold),
                "limit_per_customer": config.policy.per_type_limits.at(t),
            })
        })
        .collect();
    json!({
        "id": id.0,
        "name": config.name,
        "venue": config.venue,
        "starts_at_ms": config.starts_at_ms,
        "prequeue_opens_at_ms": config.schedule.prequeue_opens_at_ms,
        "opens_at_ms": config.schedule.opens_at_ms,
        "closes_at_ms": config.schedule.closes_at_ms,
        "phase": phase(stats.phase),
        "paused": stats.paused,
        "limit_per_customer": config.policy.per_event_limit,
        "ticket_types": types,
        "queue": {
            "joined": stats.joined,
            "waiting": stats.waiting,
            "served": stats.served,
            "active": stats.active,
            "in_draw": stats.in_draw,
            "draw_at_ms": stats.draw_at_ms,
            "admit_per_second": config.policy.admit_per_second,
            "arrival_window_ms": config.policy.arrival_window_ms,
        },
    })
}

/// A waiting fan's estimate: the people ahead at the pace the line has
/// moved in the last minute (`pace.rs`); at the configured rate (the
/// engine's estimate, a lower bound) before anyone was admitted; `null`
/// when the line has not moved for a minute, or when nobody is ahead and
/// the fan waits for a free place: then nobody can say how long.
fn estimated_wait(people_ahead: u32, at_configured_rate_ms: u64, pace: Pace) -> Option<u64> {
    match pace {
        _ if people_ahead == 0 => None,
        Pace::Unknown => Some(at_configured_rate_ms),
        Pace::PerMinute(0) => None,
        Pace::PerMinute(per_minute) => {
            let from_pace = (u64::from(people_ahead) * 60_000).div_ceil(per_minute);
            Some(from_pace.max(at_configured_rate_ms))
        }
    }
}

/// Adds the observed pace to an event's view (for streams that follow a
/// waiting fan's place from the published state): `queue.admitted_per_minute`,
/// `null` while unknown.
pub fn add_pace(event_view: &mut Value, pace: Pace) {
    let per_minute = match pace {
        Pace::Unknown => Value::Null,
        Pace::PerMinute(n) => json!(n),
    };
    if let Some(queue) = event_view.get_mut("queue").and_then(Value::as_object_mut) {
        queue.insert("admitted_per_minute".into(), per_minute);
    }
}

/// The pace an event view carries (see [`add_pace`]).
pub fn pace_of(event_view: &Value) -> Pace {
    event_view["queue"]["admitted_per_minute"]
        .as_u64()
        .map_or(Pace::Unknown, Pace::PerMinute)
}

fn phase(phase: Phase) -> &'static str {
    match phase {
        Phase::Scheduled => "scheduled",
        Phase::Open => "open",
        Phase::Closed(CloseReason::SoldOut) => "sold_out",
        Phase::Closed(CloseReason::Ended) => "ended",
    }
}

/// Where a customer stands in the queue.
pub fn queue_status(status: QueueStatus, pace: Pace) -> Value {
    match status {
        QueueStatus::NotJoined => json!({ "status": "not_joined" }),
        QueueStatus::PreQueue { prequeue_len } => {
            json!({ "status": "prequeue", "prequeue_len": prequeue_len })
        }
        QueueStatus::Drawing {
            draw_at_ms,
            people_ahead,
            in_draw,
        } => json!({
            "status": "drawing",
            "draw_at_ms": draw_at_ms,
            "people_ahead": people_ahead,
            "in_draw": in_draw,
        }),
        QueueStatus::Waiting {
            position,
            people_ahead,
            estimated_wait_ms,
        } => json!({
            "status": "waiting",
            "position": position + 1,
            "people_ahead": people_ahead,
            "estimated_wait_ms": estimated_wait(people_ahead, estimated_wait_ms, pace),
        }),
        QueueStatus::Shopping {
            admitted_at_ms,
            window_ends_at_ms,
            hold_expires_at_ms,
        } => json!({
            "status": "shopping",
            "admitted_at_ms": admitted_at_ms,
            "window_ends_at_ms": window_ends_at_ms,
            "hold_expires_at_ms": hold_expires_at_ms,
        }),
        QueueStatus::TurnOver => json!({ "status": "turn_over" }),
        QueueStatus::Left => json!({ "status": "left" }),
        QueueStatus::Closed(reason) => json!({
            "status": "closed",
            "reason": match reason { CloseReason::SoldOut => "sold_out", CloseReason::Ended => "ended" },
        }),
    }
}

/// A customer's cart (empty when they hold nothing), rendered off the
/// shard: the shard only copies the cart.
pub fn cart_view(cart: Option<ingressoja_engine::Cart>) -> Value {
    match cart {
        None => json!({ "items": [], "total_cents": 0, "expires_at_ms": null }),
        Some(cart) => json!({
            "items": cart.items.iter().map(|(t, q)| json!({ "ticket_type": t.0, "quantity": q })).collect::<Vec<_>>(),
            "total_cents": cart.total_cents,
            "expires_at_ms": cart.expires_at_ms,
        }),
    }
}

/// An order with its tickets.
pub fn order(
    event: EventId,
    id: ingressoja_engine::OrderId,
    order: &Order,
    tickets: impl Iterator<Item = Ticket>,
) -> Value {
    json!({
        "event": event.0,
        "id": id.0,
        "placed_at_ms": order.placed_at_ms,
        "total_cents": order.total_cents,
        "tickets": tickets.map(|t| json!({
            "id": t.id.0,
            "ticket_type": t.ticket_type.0,
            "code": format!("{:032X}", t.code),
        })).collect::<Vec<_>>(),
    })
}

/// What a ticket's QR code holds: the event, the ticket and its code.
pub fn ticket_qr_text(event: u64, ticket: u64, code: &str) -> String {
    format!("INGRESSOJA:{event}:{ticket}:{code}")
}

/// Adds an SVG QR code to every ticket of an order view, for the fan's
/// phone to show at the gate.
pub fn add_ticket_qr_codes(order: &mut Value) {
    let event = order["event"].as_u64().unwrap_or(0);
    let Some(tickets) = order["tickets"].as_array_mut() else {
        return;
    };
    for ticket in tickets {
        let text = ticket_qr_text(
            event,
            ticket["id"].as_u64().unwrap_or(0),
            ticket["code"].as_str().unwrap_or(""),
        );
        if let Ok(code) = qrcode::QrCode::new(text.as_bytes()) {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(160, 160)
                .build();
            ticket["qr_svg"] = json!(svg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(people_ahead: u32, pace: Pace) -> Value {
        // 500 admitted a second, as configured: the engine's lower bound.
        queue_status(QueueStatus::waiting(100 + people_ahead, 100, 500), pace)
    }

    #[test]
    fn a_waiting_fans_estimate_follows_the_pace_of_the_line() {
        // Nobody admitted yet: the configured rate is all there is.
        assert_eq!(waiting(1_000, Pace::Unknown)["estimated_wait_ms"], 2_000);
        // The store is full and the line moves 60 a minute: 1 000 ahead is
        // about 17 minutes, not the 2 s of the configured rate.
        assert_eq!(
            waiting(1_000, Pace::PerMinute(60))["estimated_wait_ms"],
            1_000_000
        );
        // Faster than configured cannot be: the configured rate bounds it.
        assert_eq!(
            waiting(1_000, Pace::PerMinute(1_000_000))["estimated_wait_ms"],
            2_000
        );
        // Stopped for a minute, or next in line: nobody can say.
        assert!(waiting(1_000, Pace::PerMinute(0))["estimated_wait_ms"].is_null());
        assert!(waiting(0, Pace::PerMinute(60))["estimated_wait_ms"].is_null());
        assert!(
            waiting(0, Pace::Unknown)["estimated_wait_ms"].is_null(),
            "next in line before anyone was admitted: still no estimate"
        );
        assert_eq!(waiting(0, Pace::PerMinute(60))["people_ahead"], 0);
    }

    #[test]
    fn the_pace_travels_in_the_event_view() {
        let mut view = json!({ "queue": { "served": 3 } });
        assert_eq!(pace_of(&view), Pace::Unknown);
        add_pace(&mut view, Pace::PerMinute(42));
        assert_eq!(view["queue"]["admitted_per_minute"], 42);
        assert_eq!(pace_of(&view), Pace::PerMinute(42));
        add_pace(&mut view, Pace::Unknown);
        assert_eq!(pace_of(&view), Pace::Unknown);
    }
}
