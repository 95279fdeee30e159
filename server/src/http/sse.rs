//! Server-sent events: live state pushed to fans.
//!
//! - `GET /api/events/{id}/stream`: the event's state (stock, queue, phase)
//!   on connect, then each state the hub publishes (at most four a second,
//!   only when something changed, rendered once for every stream; see
//!   `hub.rs`).
//! - `GET /api/events/{id}/me/stream` (authenticated): the fan's status
//!   (place in line, turn, cart) on connect and whenever it changes, plus
//!   named events for their own changes: `admitted`, `hold`, `released`,
//!   `expiring_soon` (a minute before the hold expires), `hold_expired`,
//!   `order_confirmed`, `turn_over`, and `rejected` (with the error's code
//!   and message) when a request of theirs is refused.
//!
//! Messages carry the log sequence number as their id. Changes are published
//! only once durable, so a stream never shows what a crash could take back.
//! On reconnect (`Last-Event-ID`), the first message is the current state,
//! which already reflects everything missed. Each connection has a small
//! bounded buffer: a client that does not keep up is disconnected (and
//! reconnects to fresh state) rather than growing memory; a comment every 15 s
//! keeps proxies from closing idle streams.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame};
use ingressoja_engine::{CustomerId, QueueStatus, Transition};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::error::ApiError;
use super::hub::{Note, Published};
use super::{App, views};
use crate::runtime::EventId;
use crate::runtime::RuntimeError;

/// Messages buffered per connection before a slow client is dropped.
pub const BUFFER: usize = 32;
/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A response body fed by a bounded channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// One server-sent event message.
pub(super) fn message(event: &str, id: Option<u64>, data: &Value) -> Bytes {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    Bytes::from(format!("{id}event: {event}\ndata: {data}\n\n"))
}

fn response(body: BoxBody<Bytes, Infallible>) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx must not buffer a stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Counts a stream as open for as long as its task lives.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Open {
    fn new(app: &App) -> Open {
        app.metrics.sse_streams.inc();
        Open(app.metrics.sse_streams.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Sends without waiting: false when the client is gone or too far behind.
fn offer(sender: &mpsc::Sender<Bytes>, bytes: Bytes) -> bool {
    sender.try_send(bytes).is_ok()
}

/// A fan's status as the shard sees it.
enum Fetched {
    State(Value),
    /// The event does not exist.
    Gone,
    /// The shard's queue is full (or it stopped): try again later.
    Busy,
}

async fn customer_state(app: &App, event: EventId, customer: CustomerId) -> Fetched {
    // The shard only copies the fan's status and cart; JSON is made here.
    let query = app.runtime.query(move |state| {
        state
            .events
            .get(&event)
            .map(|engine| (engine.queue_status(customer), engine.cart(customer)))
    });
    let Ok(receiver) = query else {
        return Fetched::Busy;
    };
    match receiver.await {
        Ok(Ok(Some((queue, cart)))) => Fetched::State(json!({
            "queue": views::queue_status(queue, super::fan_api::pace(app, event)),
            "cart": views::cart_view(cart),
        })),
        Ok(Ok(None)) => Fetched::Gone,
        Ok(Err(_)) | Err(_) => Fetched::Busy,
    }
}

/// What the sale's newest published state means for a fan whose last known
/// status is `last`: the fan's new queue status when it follows from the
/// published cursor alone (a waiting fan not yet reached, a fan in the
/// pre-queue before opening), or `None` when only the shard can tell (their
/// turn may have come, the sale opened or closed). This keeps the cost of
/// 10 000 waiting fans' streams off the shard: it is asked once per fan when
/// the cursor reaches them, not once per fan per published change.
fn follow_locally(last: &Value, published: &Value) -> Option<Value> {
    let queue = &published["queue"];
    let served = u32::try_from(queue["served"].as_u64()?).ok()?;
    match (last["status"].as_str()?, published["phase"].as_str()?) {
        ("waiting", "open") => {
            let position = u32::try_from(last["position"].as_u64()?.checked_sub(1)?).ok()?;
            let rate = u32::try_from(queue["admit_per_second"].as_u64()?).ok()?;
            (position >= served).then(|| {
                views::queue_status(
                    QueueStatus::waiting(position, served, rate),
                    views::pace_of(published),
                )
            })
        }
        // Still in the same arrival window's draw: its size and the line
        // ahead come from the published counts.
        ("drawing", "open") if queue["draw_at_ms"] == last["draw_at_ms"] => {
            let waiting = queue["waiting"].as_u64()?;
            let in_draw = queue["in_draw"].as_u64()?;
            Some(views::queue_status(
                QueueStatus::Drawing {
                    draw_at_ms: last["draw_at_ms"].as_u64()?,
                    people_ahead: u32::try_from(waiting.saturating_sub(in_draw)).ok()?,
                    in_draw: u32::try_from(in_draw).ok()?,
                },
                views::pace_of(published),
            ))
        }
        ("prequeue", "scheduled") => {
            let prequeue_len = u32::try_from(queue["joined"].as_u64()?).ok()?;
            Some(views::queue_status(
                QueueStatus::PreQueue { prequeue_len },
                views::pace_of(published),
            ))
        }
        _ => None,
    }
}

/// The body of an event's stream: the first state, then each state the
/// hub publishes on the stream's lane, read straight from the watch channel
/// when hyper asks for more, with no task or buffer of its own. A client
/// that reads slowly is never behind by more than one state: the channel
/// holds only the newest, so memory per stream is constant.
struct EventBody {
    first: Option<Bytes>,
    changed: Changed,
    keep_alive: tokio::time::Interval,
    _open: Open,
}

type Lane = watch::Receiver<Option<Arc<Published>>>;
type Changed = Pin<Box<dyn Future<Output = Option<Lane>> + Send + Sync>>;

/// Resolves (handing the receiver back) once the lane has a new state.
fn next_change(mut lane: Lane) -> Changed {
    Box::pin(async move {
        lane.changed().await.ok()?;
        Some(lane)
    })
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        while let Poll::Ready(lane) = this.changed.as_mut().poll(cx) {
            // None: the hub is gone (shutting down); the stream ends.
            let Some(mut lane) = lane else {
                return Poll::Ready(None);
            };
            let latest = lane.borrow_and_update().clone();
            this.changed = next_change(lane);
            if let Some(latest) = latest {
                this.keep_alive.reset();
                return Poll::Ready(Some(Ok(Frame::data(latest.message.clone()))));
            }
        }
        if this.keep_alive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b": keep-alive\n\n",
            )))));
        }
        Poll::Pending
    }
}

/// The event's stream. Its first message is the state the hub last
/// published (at most a quarter second old), so 10 000 fans opening the
/// page in the same second do not each ask the shard; the shard is asked
/// only when nothing was published yet.
pub async fn event_stream(
    app: Arc<App>,
    event: EventId,
) -> Result<Response<BoxBody<Bytes, Infallible>>, ApiError> {
    let mut lane = app.hub.watch_event(event);
    let published = lane.borrow_and_update().clone();
    let first = match published {
        Some(published) => published.message.clone(),
        None => {
            let facts = app
                .runtime
                .query(move |state| {
                    state
                        .events
                        .get(&event)
                        .map(|e| views::EventFacts::of(event, e))
                })?
                .await
                .map_err(|_| ApiError::from(RuntimeError::Stopped))??
                .ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))?;
            message("state", None, &views::event(&facts))
        }
    };
    let start = tokio::time::Instant::now() + KEEP_ALIVE;
    let body = EventBody {
        first: Some(first),
        changed: next_change(lane),
        keep_alive: tokio::time::interval_at(start, KEEP_ALIVE),
        _open: Open::new(&app),
    };
    Ok(response(body.boxed()))
}

/// A named event for a change of the customer's own, if it is one.
fn personal(transition: &Transition) -> Option<(&'static str, Value)> {
    Some(match transition {
        Transition::ItemsHeld {
            items,
            expires_at_ms,
            ..
        } => (
            "hold",
            json!({ "added": items.iter().map(|(t, q)| json!({"ticket_type": t.0, "quantity": q})).collect::<Vec<_>>(), "expires_at_ms": expires_at_ms }),
        ),
        Transition::ItemsReleased { .. } => ("released", json!({})),
        Transition::HoldExpired { .. } => ("hold_expired", json!({})),
        Transition::OrderPlaced { .. } => ("order_confirmed", json!({})),
        Transition::SessionEnded { .. } => ("turn_over", json!({})),
        _ => return None,
    })
}

/// A fan is told their hold is expiring this long before it does.
pub const EXPIRING_SOON_MS: u64 = 60_000;

/// How long a stream waits before asking a busy shard again.
const RETRY: Duration = Duration::from_millis(500);

/// The customer's stream. `resumed_after` is the Last-Event-ID they sent.
pub fn customer_stream(
    app: Arc<App>,
    event: EventId,
    customer: CustomerId,
    resumed_after: Option<u64>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let (sender, receiver) = mpsc::channel(BUFFER);
    let mut own = app.hub.register(event, customer);
    let mut published = app.hub.watch_event(event);
    let open = Open::new(&app);
    tokio::spawn(async move {
        let _open = open;
        // In a spike the shard may be too busy to answer at once: the
        // stream waits for it rather than failing the fan.
        let mut last = loop {
            match customer_state(&app, event, customer).await {
                Fetched::State(state) => break state,
                Fetched::Gone => return,
                Fetched::Busy if sender.is_closed() => return,
                Fetched::Busy => tokio::time::sleep(RETRY).await,
            }
        };
        let mut first = last.clone();
        if let Some(seq) = resumed_after {
            first["resumed_after"] = json!(seq);
        }
        if !offer(&sender, message("status", None, &first)) {
            return;
        }
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        let retry = tokio::time::sleep(RETRY);
        tokio::pin!(retry);
        let mut stale = false;
        // The hold whose expiry is to be announced, and the last announced.
        let warning = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(warning);
        let (mut warn_for, mut warned) = (None, None);
        loop {
            // A hold not yet announced (none, once released or bought).
            let pending = last["cart"]["expires_at_ms"]
                .as_u64()
                .filter(|&at| Some(at) != warned);
            if pending != warn_for {
                warn_for = pending;
                if let Some(expires_at_ms) = pending {
                    let due = expires_at_ms.saturating_sub(EXPIRING_SOON_MS);
                    let wait = Duration::from_millis(due.saturating_sub(app.clock.now_ms()));
                    warning.as_mut().reset(tokio::time::Instant::now() + wait);
                }
            }
            let refresh = tokio::select! {
                note = own.recv() => match note {
                    // None: the hub dropped this stream for falling behind.
                    None => return,
                    Some(Note::Change(seq, transition)) => {
                        if let Some((name, data)) = personal(&transition)
                            && !offer(&sender, message(name, Some(seq), &data))
                        {
                            return;
                        }
                        true
                    }
                    Some(Note::Rejected { code, message: text }) => {
                        let data = json!({ "code": code, "message": text });
                        if !offer(&sender, message("rejected", None, &data)) {
                            return;
                        }
                        false
                    }
                },
                () = &mut warning, if warn_for.is_some() => {
                    let expires_at_ms = warn_for.take();
                    let data = json!({ "expires_at_ms": expires_at_ms });
                    if !offer(&sender, message("expiring_soon", None, &data)) {
                        return;
                    }
                    warned = expires_at_ms;
                    false
                }
                changed = published.changed() => {
                    if changed.is_err() { return; }
                    let sale = published.borrow_and_update().clone();
                    let local = sale.and_then(|sale| follow_locally(&last["queue"], &sale.state));
                    match local {
                        Some(queue) if queue == last["queue"] => false,
                        Some(queue) => {
                            last["queue"] = queue;
                            if !offer(&sender, message("status", None, &last)) {
                                return;
                            }
                            false
                        }
                        // Only a fan still waiting can be affected by the
                        // sale moving; the shard tells whether it is their turn.
                        None => matches!(last["queue"]["status"].as_str(), Some("waiting" | "prequeue" | "drawing")),
                    }
                }
                () = &mut retry, if stale => true,
                _ = keep_alive.tick() => {
                    if !offer(&sender, Bytes::from_static(b": keep-alive\n\n")) { return; }
                    false
                }
                () = sender.closed() => return,
            };
            if !refresh {
                continue;
            }
            let now = match customer_state(&app, event, customer).await {
                Fetched::State(now) => now,
                Fetched::Gone => return,
                Fetched::Busy => {
                    stale = true;
                    retry.as_mut().reset(tokio::time::Instant::now() + RETRY);
                    continue;
                }
            };
            stale = false;
            if now == last {
                continue;
            }
            let admitted =
                last["queue"]["status"] != "shopping" && now["queue"]["status"] == "shopping";
            if admitted && !offer(&sender, message("admitted", None, &now["queue"])) {
                return;
            }
            if !offer(&sender, message("status", None, &now)) {
                return;
            }
            last = now;
        }
    });
    response(ChannelBody(receiver).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_once_its_buffer_is_full() {
        let (sender, mut receiver) = mpsc::channel(BUFFER);
        for i in 0..BUFFER {
            assert!(
                offer(&sender, Bytes::from(format!("message {i}"))),
                "message {i} fits"
            );
        }
        // The stream task stops (and the body ends) on the first refusal.
        assert!(!offer(&sender, Bytes::from_static(b"one too many")));
        drop(sender);
        let mut delivered = 0;
        while receiver.recv().await.is_some() {
            delivered += 1;
        }
        assert_eq!(
            delivered, BUFFER,
            "memory per connection is bounded by the buffer"
        );
    }

    fn sale(phase: &str, joined: u64, served: u64) -> Value {
        json!({"phase": phase, "queue": {"joined": joined, "served": served, "admit_per_second": 10}})
    }

    #[test]
    fn a_waiting_fan_is_followed_from_the_cursor_until_it_reaches_them() {
        let waiting = json!({"status": "waiting", "position": 31, "people_ahead": 25});
        // 0-based place 30; 20 admitted: 10 ahead, a second at 10/s.
        assert_eq!(
            follow_locally(&waiting, &sale("open", 100, 20)),
            Some(
                json!({"status": "waiting", "position": 31, "people_ahead": 10, "estimated_wait_ms": 1000})
            )
        );
        assert_eq!(
            follow_locally(&waiting, &sale("open", 100, 30)).map(|q| q["people_ahead"].clone()),
            Some(json!(0)),
            "next in line, not yet admitted"
        );
        assert_eq!(
            follow_locally(&waiting, &sale("open", 100, 31)),
            None,
            "the cursor passed them: only the shard knows whether they shop"
        );
        assert_eq!(follow_locally(&waiting, &sale("sold_out", 100, 20)), None);
    }

    #[test]
    fn a_prequeued_fan_is_followed_until_the_sale_opens() {
        let prequeue = json!({"status": "prequeue", "prequeue_len": 5});
        assert_eq!(
            follow_locally(&prequeue, &sale("scheduled", 9, 0)),
            Some(json!({"status": "prequeue", "prequeue_len": 9}))
        );
        assert_eq!(follow_locally(&prequeue, &sale("open", 9, 0)), None);
        let shopping = json!({"status": "shopping"});
        assert_eq!(follow_locally(&shopping, &sale("open", 9, 5)), None);
    }

    #[test]
    fn messages_are_framed_with_id_event_and_data() {
        let framed = message("hold", Some(42), &json!({"a": 1}));
        assert_eq!(&framed[..], b"id: 42\nevent: hold\ndata: {\"a\":1}\n\n");
    }
}
