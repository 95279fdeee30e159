//! What a fan's own stream sends next: a pure state machine, with no
//! channels, timers or shard in it (`sse.rs` runs it). It keeps the fan's
//! status as typed engine values (a place in line counted from 0), what it
//! last showed them, and which hold's expiry it announced; each input (a
//! change of theirs, the sale's newest published state, the shard's answer,
//! a due expiry warning) gives the messages to send and whether the shard
//! must be asked for the fan's status.
//!
//! Following a waiting fan from the published state keeps the cost of
//! 10 000 waiting fans' streams off the shard: it is asked once per fan
//! when the admission cursor reaches them, not once per fan per published
//! change.

use bytes::Bytes;
use ingressoja_engine::{Cart, QueueStatus, Transition};
use serde::Serialize;

use super::hub::Note;
use super::pace::Pace;
use super::views::{CartView, EventView, FanView, ItemView, PhaseName, QueueView, items};

/// A fan is told their hold is expiring this long before it does.
pub const EXPIRING_SOON_MS: u64 = 60_000;

/// A message of a fan's own stream, typed until it is framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FanMessage {
    /// Their place and cart (`status`).
    Status(FanView),
    /// Their turn came (`admitted`, with their new place).
    Admitted(QueueView),
    /// A durable change of theirs, at this log sequence number.
    Change(u64, Personal),
    /// A request of theirs was refused (`rejected`).
    Rejected {
        /// The error's code.
        code: &'static str,
        /// What to tell them.
        message: String,
    },
    /// Their hold expires in a minute (`expiring_soon`).
    ExpiringSoon {
        /// When.
        expires_at_ms: u64,
    },
}

/// A fan's own change, as their stream names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Personal {
    /// `hold`: tickets added to their hold.
    Hold {
        /// What was added.
        added: Vec<ItemView>,
        /// When the hold expires.
        expires_at_ms: u64,
    },
    /// `released`
    Released,
    /// `hold_expired`
    HoldExpired,
    /// `order_confirmed`
    OrderConfirmed,
    /// `turn_over`
    TurnOver,
}

impl Personal {
    /// The named event for a change of the customer's own, if it is one.
    pub fn of(transition: &Transition) -> Option<Personal> {
        Some(match transition {
            Transition::ItemsHeld {
                items: held,
                expires_at_ms,
                ..
            } => Personal::Hold {
                added: items(held),
                expires_at_ms: *expires_at_ms,
            },
            Transition::ItemsReleased { .. } => Personal::Released,
            Transition::HoldExpired { .. } => Personal::HoldExpired,
            Transition::OrderPlaced { .. } => Personal::OrderConfirmed,
            Transition::SessionEnded { .. } => Personal::TurnOver,
            _ => return None,
        })
    }
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Added<'a> {
    added: &'a [ItemView],
    expires_at_ms: u64,
}

#[derive(Serialize)]
struct Refusal<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Expiring {
    expires_at_ms: u64,
}

impl FanMessage {
    /// The server-sent event, framed.
    pub fn frame(&self) -> Bytes {
        use super::sse::message;
        match self {
            FanMessage::Status(view) => message("status", None, view),
            FanMessage::Admitted(queue) => message("admitted", None, queue),
            FanMessage::Change(seq, personal) => {
                let id = Some(*seq);
                match personal {
                    Personal::Hold {
                        added,
                        expires_at_ms,
                    } => {
                        let added = Added {
                            added,
                            expires_at_ms: *expires_at_ms,
                        };
                        message("hold", id, &added)
                    }
                    Personal::Released => message("released", id, &Empty {}),
                    Personal::HoldExpired => message("hold_expired", id, &Empty {}),
                    Personal::OrderConfirmed => message("order_confirmed", id, &Empty {}),
                    Personal::TurnOver => message("turn_over", id, &Empty {}),
                }
            }
            FanMessage::Rejected {
                code,
                message: text,
            } => message(
                "rejected",
                None,
                &Refusal {
                    code,
                    message: text,
                },
            ),
            FanMessage::ExpiringSoon { expires_at_ms } => message(
                "expiring_soon",
                None,
                &Expiring {
                    expires_at_ms: *expires_at_ms,
                },
            ),
        }
    }
}

/// Something the stream's loop saw.
#[derive(Debug)]
pub enum Input<'a> {
    /// A note of the fan's own, from the hub.
    Own(Note),
    /// The expiry warning of this hold is due.
    ExpiryDue(u64),
    /// The sale's newest published state.
    Sale(&'a EventView),
    /// The shard's answer: the fan's status and cart, and the line's pace.
    Fetched(QueueStatus, Option<Cart>, Pace),
}

/// What to do after an input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Next {
    /// Send these, in order.
    pub send: Vec<FanMessage>,
    /// Ask the shard for the fan's status (and feed it back as `Fetched`).
    pub ask_shard: bool,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct FanStream {
    status: QueueStatus,
    cart: Option<Cart>,
    shown: FanView,
    warned: Option<u64>,
}

impl FanStream {
    /// A stream starting from the shard's answer, and its first message
    /// (carrying the `Last-Event-ID` the client resumed after).
    pub fn start(
        status: QueueStatus,
        cart: Option<Cart>,
        pace: Pace,
        resumed_after: Option<u64>,
    ) -> (FanStream, FanMessage) {
        let shown = FanView {
            queue: QueueView::of(status, pace),
            cart: CartView::of(cart),
            resumed_after: None,
        };
        let first = FanView {
            resumed_after,
            ..shown.clone()
        };
        let stream = FanStream {
            status,
            cart,
            shown,
            warned: None,
        };
        (stream, FanMessage::Status(first))
    }

    /// The hold whose expiry is still to be announced, if any.
    pub fn expiry_to_announce(&self) -> Option<u64> {
        self.cart
            .map(|cart| cart.expires_at_ms)
            .filter(|&at| Some(at) != self.warned)
    }

    /// What `input` means for the fan.
    pub fn step(&mut self, input: Input<'_>) -> Next {
        match input {
            Input::Own(Note::Change(seq, transition)) => Next {
                send: Personal::of(&transition)
                    .map(|personal| FanMessage::Change(seq, personal))
                    .into_iter()
                    .collect(),
                ask_shard: true,
            },
            Input::Own(Note::Rejected { code, message }) => Next {
                send: vec![FanMessage::Rejected { code, message }],
                ask_shard: false,
            },
            Input::ExpiryDue(expires_at_ms) => {
                self.warned = Some(expires_at_ms);
                Next {
                    send: vec![FanMessage::ExpiringSoon { expires_at_ms }],
                    ask_shard: false,
                }
            }
            Input::Sale(sale) => match follow_locally(self.status, sale) {
                Some(status) => {
                    self.status = status;
                    let queue = QueueView::of(status, sale.pace());
                    if queue == self.shown.queue {
                        return Next::default();
                    }
                    self.shown.queue = queue;
                    Next {
                        send: vec![FanMessage::Status(self.shown.clone())],
                        ask_shard: false,
                    }
                }
                // Only a fan still waiting can be affected by the sale
                // moving; the shard tells whether it is their turn.
                None => Next {
                    send: Vec::new(),
                    ask_shard: matches!(
                        self.status,
                        QueueStatus::Waiting { .. }
                            | QueueStatus::PreQueue { .. }
                            | QueueStatus::Drawing { .. }
                    ),
                },
            },
            Input::Fetched(status, cart, pace) => {
                let now = FanView {
                    queue: QueueView::of(status, pace),
                    cart: CartView::of(cart),
                    resumed_after: None,
                };
                let was_shopping = matches!(self.status, QueueStatus::Shopping { .. });
                self.status = status;
                self.cart = cart;
                if now == self.shown {
                    return Next::default();
                }
                let mut send = Vec::new();
                if !was_shopping && matches!(status, QueueStatus::Shopping { .. }) {
                    send.push(FanMessage::Admitted(now.queue));
                }
                send.push(FanMessage::Status(now.clone()));
                self.shown = now;
                Next {
                    send,
                    ask_shard: false,
                }
            }
        }
    }
}

/// What the sale's newest published state means for a fan whose status is
/// `last`: their new status when it follows from the published state alone
/// (a waiting fan not yet reached, a fan in the same arrival window's draw,
/// a fan in the pre-queue before opening), or `None` when only the shard
/// can tell (their turn may have come, the sale opened or closed).
pub fn follow_locally(last: QueueStatus, sale: &EventView) -> Option<QueueStatus> {
    let line = &sale.queue;
    match (last, sale.phase) {
        (QueueStatus::Waiting { position, .. }, PhaseName::Open) => (position >= line.served)
            .then(|| QueueStatus::waiting(position, line.served, line.admit_per_second)),
        // Still in the same arrival window's draw: its size and the line
        // ahead come from the published counts.
        (QueueStatus::Drawing { draw_at_ms, .. }, PhaseName::Open)
            if line.draw_at_ms == Some(draw_at_ms) =>
        {
            Some(QueueStatus::Drawing {
                draw_at_ms,
                people_ahead: line.waiting.saturating_sub(line.in_draw),
                in_draw: line.in_draw,
            })
        }
        (QueueStatus::PreQueue { .. }, PhaseName::Scheduled) => Some(QueueStatus::PreQueue {
            prequeue_len: line.joined,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use ingressoja_engine::{CustomerId, TicketTypeId, TypeCounts};

    use super::*;

    fn sale(phase: PhaseName, joined: u32, served: u32) -> EventView {
        EventView::example(phase, joined, served)
    }

    fn waiting_at(position: u32) -> FanStream {
        FanStream::start(
            QueueStatus::waiting(position, 0, 10),
            None,
            Pace::Unknown,
            None,
        )
        .0
    }

    fn shown_queue(next: &Next) -> Option<QueueView> {
        next.send.iter().find_map(|m| match m {
            FanMessage::Status(view) => Some(view.queue),
            _ => None,
        })
    }

    #[test]
    fn a_waiting_fan_is_followed_from_the_cursor_until_it_reaches_them() {
        // 0-based place 30; 20 admitted: 10 ahead, a second at 10/s.
        let mut stream = waiting_at(30);
        let next = stream.step(Input::Sale(&sale(PhaseName::Open, 100, 20)));
        assert_eq!(
            shown_queue(&next),
            Some(QueueView::Waiting {
                position: 31,
                people_ahead: 10,
                estimated_wait_ms: Some(1_000)
            })
        );
        assert!(!next.ask_shard, "the cursor alone says where they are");
        // The same state again: nothing new to send.
        assert_eq!(
            stream.step(Input::Sale(&sale(PhaseName::Open, 100, 20))),
            Next::default()
        );
        let next = stream.step(Input::Sale(&sale(PhaseName::Open, 100, 30)));
        assert!(
            matches!(
                shown_queue(&next),
                Some(QueueView::Waiting {
                    people_ahead: 0,
                    ..
                })
            ),
            "next in line, not yet admitted"
        );
        let next = stream.step(Input::Sale(&sale(PhaseName::Open, 100, 31)));
        assert_eq!(
            next,
            Next {
                send: Vec::new(),
                ask_shard: true
            },
            "the cursor passed them: only the shard knows whether they shop"
        );
        let mut closed = waiting_at(30);
        assert!(
            closed
                .step(Input::Sale(&sale(PhaseName::SoldOut, 100, 20)))
                .ask_shard
        );
    }

    #[test]
    fn a_prequeued_fan_is_followed_until_the_sale_opens() {
        let prequeue = QueueStatus::PreQueue { prequeue_len: 5 };
        assert_eq!(
            follow_locally(prequeue, &sale(PhaseName::Scheduled, 9, 0)),
            Some(QueueStatus::PreQueue { prequeue_len: 9 })
        );
        assert_eq!(follow_locally(prequeue, &sale(PhaseName::Open, 9, 0)), None);
        let shopping = QueueStatus::Shopping {
            admitted_at_ms: 1,
            window_ends_at_ms: 2,
            hold_expires_at_ms: None,
            owned: TypeCounts::default(),
        };
        assert_eq!(follow_locally(shopping, &sale(PhaseName::Open, 9, 5)), None);
        let mut stream = FanStream::start(shopping, None, Pace::Unknown, None).0;
        assert_eq!(
            stream.step(Input::Sale(&sale(PhaseName::Open, 9, 5))),
            Next::default(),
            "a shopper's place does not move with the line"
        );
    }

    #[test]
    fn a_fan_in_a_draw_is_followed_while_the_same_draw_is_open() {
        let drawing = QueueStatus::Drawing {
            draw_at_ms: 500,
            people_ahead: 3,
            in_draw: 1,
        };
        let mut open = sale(PhaseName::Open, 20, 10);
        open.queue.waiting = 12;
        open.queue.in_draw = 4;
        open.queue.draw_at_ms = Some(500);
        assert_eq!(
            follow_locally(drawing, &open),
            Some(QueueStatus::Drawing {
                draw_at_ms: 500,
                people_ahead: 8,
                in_draw: 4
            })
        );
        open.queue.draw_at_ms = Some(600);
        assert_eq!(follow_locally(drawing, &open), None, "drawn: ask the shard");
    }

    #[test]
    fn a_turn_is_announced_once_then_the_status_follows() {
        let (mut stream, first) = FanStream::start(
            QueueStatus::waiting(0, 0, 10),
            None,
            Pace::Unknown,
            Some(41),
        );
        let FanMessage::Status(first) = first else {
            panic!("the first message is the status")
        };
        assert_eq!(
            first.resumed_after,
            Some(41),
            "the first says where it resumed"
        );
        let shopping = QueueStatus::Shopping {
            admitted_at_ms: 1,
            window_ends_at_ms: 600_000,
            hold_expires_at_ms: None,
            owned: TypeCounts::default(),
        };
        let next = stream.step(Input::Fetched(shopping, None, Pace::Unknown));
        assert_eq!(next.send.len(), 2);
        assert!(matches!(
            next.send[0],
            FanMessage::Admitted(QueueView::Shopping { .. })
        ));
        let FanMessage::Status(status) = &next.send[1] else {
            panic!("then the status")
        };
        assert_eq!(
            status.resumed_after, None,
            "only the first message carries it"
        );
        // The same answer again sends nothing.
        assert_eq!(
            stream.step(Input::Fetched(shopping, None, Pace::Unknown)),
            Next::default()
        );
    }

    #[test]
    fn own_changes_are_named_and_refusals_told() {
        let mut stream = waiting_at(3);
        let fan = CustomerId(7);
        let mut held = TypeCounts::default();
        held.set(0, 2);
        let next = stream.step(Input::Own(Note::Change(
            9,
            Transition::ItemsHeld {
                customer: fan,
                items: held,
                expires_at_ms: 70_000,
            },
        )));
        assert_eq!(
            next.send,
            vec![FanMessage::Change(
                9,
                Personal::Hold {
                    added: vec![ItemView {
                        ticket_type: TicketTypeId(0).0,
                        quantity: 2
                    }],
                    expires_at_ms: 70_000
                }
            )]
        );
        assert!(next.ask_shard, "a change of theirs changes their status");
        assert_eq!(
            &next.send[0].frame()[..],
            b"id: 9\nevent: hold\ndata: {\"added\":[{\"ticket_type\":0,\"quantity\":2}],\"expires_at_ms\":70000}\n\n"
        );
        let next = stream.step(Input::Own(Note::Rejected {
            code: "sold_out",
            message: "sold out".into(),
        }));
        assert!(!next.ask_shard);
        assert_eq!(
            &next.send[0].frame()[..],
            b"event: rejected\ndata: {\"code\":\"sold_out\",\"message\":\"sold out\"}\n\n"
        );
    }

    #[test]
    fn a_holds_expiry_is_announced_once() {
        let shopping = QueueStatus::Shopping {
            admitted_at_ms: 1,
            window_ends_at_ms: 600_000,
            hold_expires_at_ms: Some(90_000),
            owned: TypeCounts::default(),
        };
        let mut held = TypeCounts::default();
        held.set(0, 1);
        let cart = Cart {
            items: held,
            expires_at_ms: 90_000,
            total_cents: 100,
        };
        let (mut stream, _) = FanStream::start(shopping, Some(cart), Pace::Unknown, None);
        assert_eq!(stream.expiry_to_announce(), Some(90_000));
        let next = stream.step(Input::ExpiryDue(90_000));
        assert_eq!(
            next.send,
            vec![FanMessage::ExpiringSoon {
                expires_at_ms: 90_000
            }]
        );
        assert_eq!(stream.expiry_to_announce(), None, "announced once");
        // A new hold (a later expiry) is announced again.
        let later = Cart {
            expires_at_ms: 120_000,
            ..cart
        };
        stream.step(Input::Fetched(shopping, Some(later), Pace::Unknown));
        assert_eq!(stream.expiry_to_announce(), Some(120_000));
    }
}
