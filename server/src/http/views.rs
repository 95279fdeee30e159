//! The JSON shapes of the API, as typed values: what fans and tools read.
//! Built from engine values; nothing here changes state. Logic (streams,
//! the hub, handlers) works on these types and on the engine's; bytes are
//! made once, at the edge (`reply.rs`, `sse.rs`), so renaming a field can
//! only change what is sent, never what the server decides.

use ingressoja_engine::{
    Cart, CloseReason, Engine, EventConfig, Order, OrderId, Phase, QueueStatus, Stats, Stock,
    Ticket,
};
use serde::Serialize;

use super::settings::EventTerms;

use super::pace::Pace;
use crate::runtime::EventId;

/// What an event's view is made of, copied out of the engine on the shard
/// (a few hundred bytes). The shard must not spend its time building views:
/// every fan's event page and every stream update reads an event, and the
/// shard is the one thread all of a sale's requests wait on.
/// [`EventView::of`] builds the view on the HTTP workers.
#[derive(Clone, Debug)]
pub struct EventFacts {
    id: EventId,
    config: EventConfig,
    stock: Vec<Stock>,
    stats: Stats,
}

impl EventFacts {
    /// The event's id.
    pub fn id(&self) -> EventId {
        self.id
    }

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

/// Where a sale is, as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Before opening.
    Scheduled,
    /// Admitting and selling.
    Open,
    /// Every ticket sold.
    SoldOut,
    /// The sale window ended.
    Ended,
}

impl From<Phase> for PhaseName {
    fn from(phase: Phase) -> PhaseName {
        match phase {
            Phase::Scheduled => PhaseName::Scheduled,
            Phase::Open => PhaseName::Open,
            Phase::Closed(CloseReason::SoldOut) => PhaseName::SoldOut,
            Phase::Closed(CloseReason::Ended) => PhaseName::Ended,
        }
    }
}

/// Why a line closed, as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReasonName {
    /// Every ticket sold.
    SoldOut,
    /// The sale window ended.
    Ended,
}

impl From<CloseReason> for CloseReasonName {
    fn from(reason: CloseReason) -> CloseReasonName {
        match reason {
            CloseReason::SoldOut => CloseReasonName::SoldOut,
            CloseReason::Ended => CloseReasonName::Ended,
        }
    }
}

/// An event with its live stock (`GET /api/events/{id}`, the event stream).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventView {
    /// The event's id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Where.
    pub venue: String,
    /// When the show starts.
    pub starts_at_ms: u64,
    /// When the pre-queue opens.
    pub prequeue_opens_at_ms: u64,
    /// When the sale opens.
    pub opens_at_ms: u64,
    /// When the sale closes.
    pub closes_at_ms: u64,
    /// Where the sale is.
    pub phase: PhaseName,
    /// Paused by an operator.
    pub paused: bool,
    /// Tickets per customer in this event.
    pub limit_per_customer: u16,
    /// The ticket types with their stock.
    pub ticket_types: Vec<TicketTypeView>,
    /// Buying needs the account's ticket holder (name and CPF).
    pub holder_required: bool,
    /// The line.
    pub queue: LineView,
}

/// A ticket type with its live stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TicketTypeView {
    /// Its index in the event.
    pub id: usize,
    /// Shown to fans.
    pub name: String,
    /// In centavos.
    pub price_cents: u64,
    /// Tickets that exist.
    pub capacity: u32,
    /// Free to add to a cart.
    pub available: u32,
    /// In someone's hold.
    pub held: u32,
    /// Sold.
    pub sold: u32,
    /// Per customer (0: only the event's limit).
    pub limit_per_customer: u16,
    /// Meia-entrada: half the price of this type, for fans with the right
    /// to it (a document shown at the gate); null for a full-price type.
    pub half_price_of: Option<usize>,
}

/// The line of an event, as everyone may see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineView {
    /// Joined so far.
    pub joined: u32,
    /// Placed in line and not yet admitted.
    pub waiting: u32,
    /// Places the admission cursor passed.
    pub served: u32,
    /// Shoppers now.
    pub active: u32,
    /// In the open arrival window's draw.
    pub in_draw: u32,
    /// When that draw happens.
    pub draw_at_ms: Option<u64>,
    /// The configured admission rate.
    pub admit_per_second: u32,
    /// Arrival windows' length (0: strict arrival order).
    pub arrival_window_ms: u64,
    /// The observed pace, on event streams only (absent elsewhere; null
    /// before anyone was admitted).
    #[serde(
        rename = "admitted_per_minute",
        skip_serializing_if = "Option::is_none"
    )]
    pub pace: Option<Pace>,
}

impl EventView {
    /// The view of an event (on an HTTP worker, from the shard's copy)
    /// under its terms of sale.
    pub fn of(facts: &EventFacts, terms: &EventTerms) -> EventView {
        let EventFacts {
            id,
            config,
            stock,
            stats,
        } = facts;
        let ticket_types = config
            .ticket_types
            .iter()
            .enumerate()
            .map(|(t, ticket_type)| {
                let counts = stock.get(t).copied();
                TicketTypeView {
                    id: t,
                    name: ticket_type.name.clone(),
                    price_cents: ticket_type.price_cents,
                    capacity: ticket_type.capacity,
                    available: counts.map_or(0, |s| s.available),
                    held: counts.map_or(0, |s| s.held),
                    sold: counts.map_or(0, |s| s.sold),
                    limit_per_customer: config.policy.per_type_limits.at(t),
                    half_price_of: terms.half_of(t),
                }
            })
            .collect();
        EventView {
            id: id.0,
            name: config.name.clone(),
            venue: config.venue.clone(),
            starts_at_ms: config.starts_at_ms,
            prequeue_opens_at_ms: config.schedule.prequeue_opens_at_ms,
            opens_at_ms: config.schedule.opens_at_ms,
            closes_at_ms: config.schedule.closes_at_ms,
            phase: stats.phase.into(),
            paused: stats.paused,
            limit_per_customer: config.policy.per_event_limit,
            holder_required: terms.holder_required,
            ticket_types,
            queue: LineView {
                joined: stats.joined,
                waiting: stats.waiting,
                served: stats.served,
                active: stats.active,
                in_draw: stats.in_draw,
                draw_at_ms: stats.draw_at_ms,
                admit_per_second: config.policy.admit_per_second,
                arrival_window_ms: config.policy.arrival_window_ms,
                pace: None,
            },
        }
    }

    /// An event's view for tests: `joined` fans, `served` admitted.
    #[cfg(test)]
    pub fn example(phase: PhaseName, joined: u32, served: u32) -> EventView {
        EventView {
            id: 0,
            name: "Show".into(),
            venue: "Arena".into(),
            starts_at_ms: 0,
            prequeue_opens_at_ms: 0,
            opens_at_ms: 0,
            closes_at_ms: 0,
            phase,
            paused: false,
            limit_per_customer: 4,
            ticket_types: Vec::new(),
            holder_required: false,
            queue: LineView {
                joined,
                waiting: joined.saturating_sub(served),
                served,
                active: 0,
                in_draw: 0,
                draw_at_ms: None,
                admit_per_second: 10,
                arrival_window_ms: 0,
                pace: Some(Pace::Unknown),
            },
        }
    }

    /// The view with the observed pace, as event streams carry it.
    pub fn with_pace(mut self, pace: Pace) -> EventView {
        self.queue.pace = Some(pace);
        self
    }

    /// The pace it carries (`Unknown` when it carries none).
    pub fn pace(&self) -> Pace {
        self.queue.pace.unwrap_or(Pace::Unknown)
    }
}

/// A waiting fan's estimate: the people ahead at the pace the line has
/// moved in the last minute (`pace.rs`); at the configured rate (the
/// engine's estimate, a lower bound) before anyone was admitted; `None`
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

/// Where a customer stands in the queue, as the API shows it. Places are
/// counted from 1 here (the engine counts from 0): this type is only ever
/// rendered, never read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum QueueView {
    /// Never joined.
    NotJoined,
    /// In the pre-queue.
    Prequeue {
        /// How many are in it so far.
        prequeue_len: u32,
    },
    /// Waiting for an arrival window's draw.
    Drawing {
        /// When the draw happens.
        draw_at_ms: u64,
        /// Placed and waiting: all ahead.
        people_ahead: u32,
        /// In this draw so far.
        in_draw: u32,
    },
    /// In line.
    Waiting {
        /// 1-based place in line.
        position: u32,
        /// Still ahead.
        people_ahead: u32,
        /// See [`estimated_wait`].
        estimated_wait_ms: Option<u64>,
    },
    /// Shopping.
    Shopping {
        /// When the turn started.
        admitted_at_ms: u64,
        /// Adding to the cart is allowed until here.
        window_ends_at_ms: u64,
        /// The hold's expiry, if any.
        hold_expires_at_ms: Option<u64>,
        /// What the fan bought in this event already (the limits per
        /// customer count it).
        owned: Items,
    },
    /// The turn came and ended.
    TurnOver,
    /// Left before their turn.
    Left,
    /// The line closed before their turn.
    Closed {
        /// Why.
        reason: CloseReasonName,
    },
}

impl QueueView {
    /// A customer's status with the line's observed pace.
    pub fn of(status: QueueStatus, pace: Pace) -> QueueView {
        match status {
            QueueStatus::NotJoined => QueueView::NotJoined,
            QueueStatus::PreQueue { prequeue_len } => QueueView::Prequeue { prequeue_len },
            QueueStatus::Drawing {
                draw_at_ms,
                people_ahead,
                in_draw,
            } => QueueView::Drawing {
                draw_at_ms,
                people_ahead,
                in_draw,
            },
            QueueStatus::Waiting {
                position,
                people_ahead,
                estimated_wait_ms,
            } => QueueView::Waiting {
                position: position.saturating_add(1),
                people_ahead,
                estimated_wait_ms: estimated_wait(people_ahead, estimated_wait_ms, pace),
            },
            QueueStatus::Shopping {
                admitted_at_ms,
                window_ends_at_ms,
                hold_expires_at_ms,
                owned,
            } => QueueView::Shopping {
                admitted_at_ms,
                window_ends_at_ms,
                hold_expires_at_ms,
                owned: Items(owned),
            },
            QueueStatus::TurnOver => QueueView::TurnOver,
            QueueStatus::Left => QueueView::Left,
            QueueStatus::Closed(reason) => QueueView::Closed {
                reason: reason.into(),
            },
        }
    }
}

/// Some tickets of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ItemView {
    /// The type's index.
    pub ticket_type: u8,
    /// How many.
    pub quantity: u16,
}

/// Every type's quantity in `items`, nonzero ones only.
pub fn items(counts: &ingressoja_engine::TypeCounts) -> Vec<ItemView> {
    counts
        .iter()
        .map(|(t, quantity)| ItemView {
            ticket_type: t.0,
            quantity,
        })
        .collect()
}

/// Counts per type, shown as a list of [`ItemView`] (nonzero ones only);
/// a copyable value where the view must stay `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Items(pub ingressoja_engine::TypeCounts);

impl Serialize for Items {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(t, quantity)| ItemView {
            ticket_type: t.0,
            quantity,
        }))
    }
}

/// A customer's cart (empty when they hold nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CartView {
    /// What is held.
    pub items: Vec<ItemView>,
    /// What it costs, in centavos.
    pub total_cents: u64,
    /// When the hold expires (null: nothing held).
    pub expires_at_ms: Option<u64>,
}

impl CartView {
    /// The view of a cart copied off the shard.
    pub fn of(cart: Option<Cart>) -> CartView {
        match cart {
            None => CartView {
                items: Vec::new(),
                total_cents: 0,
                expires_at_ms: None,
            },
            Some(cart) => CartView {
                items: items(&cart.items),
                total_cents: cart.total_cents,
                expires_at_ms: Some(cart.expires_at_ms),
            },
        }
    }
}

/// A fan's status in an event: their place and their cart (the personal
/// stream's `status` message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FanView {
    /// Their place.
    pub queue: QueueView,
    /// Their cart.
    pub cart: CartView,
    /// The `Last-Event-ID` a reconnecting stream sent (first message only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<u64>,
}

/// One ticket of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TicketView {
    /// Its number in the event.
    pub id: u32,
    /// Its type.
    pub ticket_type: u8,
    /// Its code, 32 hexadecimal digits.
    pub code: String,
    /// Its QR code, drawn off the request threads (see `fan_api.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
}

/// An order with its tickets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderView {
    /// The event.
    pub event: u64,
    /// The order's number in the event.
    pub id: u32,
    /// The number shown to people: see [`order_number`].
    pub number: String,
    /// When.
    pub placed_at_ms: u64,
    /// What was charged, in centavos.
    pub total_cents: u64,
    /// Its tickets.
    pub tickets: Vec<TicketView>,
}

impl OrderView {
    /// An order with its tickets (QR codes not yet drawn).
    pub fn of(
        event: EventId,
        id: OrderId,
        order: &Order,
        tickets: impl Iterator<Item = Ticket>,
    ) -> OrderView {
        OrderView {
            event: event.0,
            id: id.0,
            number: order_number(event.0, id.0),
            placed_at_ms: order.placed_at_ms,
            total_cents: order.total_cents,
            tickets: tickets
                .map(|t| TicketView {
                    id: t.id.0,
                    ticket_type: t.ticket_type.0,
                    code: format!("{:032X}", t.code),
                    qr_svg: None,
                })
                .collect(),
        }
    }

    /// Draws every ticket's QR code, for the fan's phone to show at the gate.
    pub fn draw_qr_codes(&mut self) {
        for ticket in &mut self.tickets {
            let text = ticket_qr_text(self.event, ticket.id.into(), &ticket.code);
            if let Ok(code) = qrcode::QrCode::new(text.as_bytes()) {
                let svg = code
                    .render::<qrcode::render::svg::Color>()
                    .min_dimensions(160, 160)
                    .build();
                ticket.qr_svg = Some(svg);
            }
        }
    }
}

/// The order number a fan reads, says to support and finds in their
/// e-mail: `IJ-` + the event + the order's place in it, counted from 1 and
/// zero-padded to six digits (`IJ-1-000001`). Unique (an order id is
/// unique within its event), stable (derived, never stored), and with no
/// letters after the prefix to mishear on the phone.
pub fn order_number(event: u64, order: u32) -> String {
    format!("IJ-{event}-{:06}", u64::from(order) + 1)
}

/// What a ticket's QR code holds: the event, the ticket and its code.
pub fn ticket_qr_text(event: u64, ticket: u64, code: &str) -> String {
    format!("INGRESSOJA:{event}:{ticket}:{code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(people_ahead: u32, pace: Pace) -> Option<u64> {
        // 500 admitted a second, as configured: the engine's lower bound.
        match QueueView::of(QueueStatus::waiting(100 + people_ahead, 100, 500), pace) {
            QueueView::Waiting {
                estimated_wait_ms, ..
            } => estimated_wait_ms,
            other => panic!("not waiting: {other:?}"),
        }
    }

    #[test]
    fn a_waiting_fans_estimate_follows_the_pace_of_the_line() {
        // Nobody admitted yet: the configured rate is all there is.
        assert_eq!(waiting(1_000, Pace::Unknown), Some(2_000));
        // The store is full and the line moves 60 a minute: 1 000 ahead is
        // about 17 minutes, not the 2 s of the configured rate.
        assert_eq!(waiting(1_000, Pace::PerMinute(60)), Some(1_000_000));
        // Faster than configured cannot be: the configured rate bounds it.
        assert_eq!(waiting(1_000, Pace::PerMinute(1_000_000)), Some(2_000));
        // Stopped for a minute, or next in line: nobody can say.
        assert_eq!(waiting(1_000, Pace::PerMinute(0)), None);
        assert_eq!(waiting(0, Pace::PerMinute(60)), None);
        assert_eq!(
            waiting(0, Pace::Unknown),
            None,
            "next in line before anyone was admitted: still no estimate"
        );
    }

    #[test]
    fn views_render_the_documented_shapes() {
        let view = QueueView::of(QueueStatus::waiting(30, 20, 10), Pace::Unknown);
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            serde_json::json!({"status": "waiting", "position": 31, "people_ahead": 10, "estimated_wait_ms": 1000}),
            "places are shown from 1"
        );
        assert_eq!(
            serde_json::to_value(QueueView::of(QueueStatus::NotJoined, Pace::Unknown)).unwrap(),
            serde_json::json!({"status": "not_joined"})
        );
        assert_eq!(
            serde_json::to_value(QueueView::of(
                QueueStatus::Closed(CloseReason::SoldOut),
                Pace::Unknown
            ))
            .unwrap(),
            serde_json::json!({"status": "closed", "reason": "sold_out"})
        );
        assert_eq!(
            serde_json::to_value(CartView::of(None)).unwrap(),
            serde_json::json!({"items": [], "total_cents": 0, "expires_at_ms": null})
        );
    }

    #[test]
    fn order_numbers_count_from_one_and_differ_by_event() {
        assert_eq!(order_number(1, 0), "IJ-1-000001");
        assert_eq!(order_number(12, 41), "IJ-12-000042");
        assert_ne!(order_number(1, 11), order_number(11, 1));
        // Past a million orders it grows rather than wraps.
        assert_eq!(order_number(1, 1_234_567), "IJ-1-1234568");
        assert_eq!(
            order_number(u64::MAX, u32::MAX),
            format!("IJ-{}-4294967296", u64::MAX)
        );
    }

    #[test]
    fn a_shopper_is_told_what_they_own_already() {
        let mut owned = ingressoja_engine::TypeCounts::default();
        owned.set(1, 2);
        let view = QueueView::of(
            QueueStatus::Shopping {
                admitted_at_ms: 5,
                window_ends_at_ms: 9,
                hold_expires_at_ms: None,
                owned,
            },
            Pace::Unknown,
        );
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            serde_json::json!({"status": "shopping", "admitted_at_ms": 5, "window_ends_at_ms": 9,
                "hold_expires_at_ms": null, "owned": [{"ticket_type": 1, "quantity": 2}]})
        );
    }

    #[test]
    fn the_pace_is_shown_on_streams_only() {
        let line = |pace| {
            let view = LineView {
                joined: 1,
                waiting: 0,
                served: 1,
                active: 1,
                in_draw: 0,
                draw_at_ms: None,
                admit_per_second: 10,
                arrival_window_ms: 0,
                pace,
            };
            serde_json::to_value(view).unwrap()
        };
        assert!(line(None).get("admitted_per_minute").is_none());
        assert!(line(Some(Pace::Unknown))["admitted_per_minute"].is_null());
        assert_eq!(line(Some(Pace::PerMinute(42)))["admitted_per_minute"], 42);
    }
}

/// A Pix checkout's answer: the charge to pay.
#[derive(Serialize)]
pub struct PixView {
    /// `awaiting_payment`: the order comes when the charge is paid (the
    /// fan's stream says `order_confirmed`; the same checkout again then
    /// answers with the order).
    pub status: &'static str,
    /// The charge.
    pub pix: PixChargeView,
}

/// A Pix charge as the payer sees it.
#[derive(Serialize)]
pub struct PixChargeView {
    /// The "copia e cola" code.
    pub code: String,
    /// The code as a QR code (SVG).
    pub qr_svg: String,
    /// What is charged, in centavos.
    pub amount_cents: u64,
    /// When it lapses (with the hold), Unix milliseconds.
    pub expires_at_ms: u64,
}
