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
use ingressoja_engine::{Cart, CustomerId, QueueStatus};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::App;
use super::error::ApiError;
use super::fan_stream::{EXPIRING_SOON_MS, FanStream, Input, Next};
use super::hub::{Note, Published};
use super::views::{EventFacts, EventView};
use crate::runtime::EventId;

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

/// One server-sent event message: `data` rendered here, once.
pub(super) fn message(event: &str, id: Option<u64>, data: &impl Serialize) -> Bytes {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    // Our views always render; should one ever fail, the client gets an
    // empty object rather than a broken stream.
    let data = serde_json::to_string(data).unwrap_or_else(|error| {
        tracing::error!(%error, event, "a stream message did not render");
        "{}".into()
    });
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
            let facts = super::shard_wait::read_state(&app, move |state| {
                state.events.get(&event).map(|e| EventFacts::of(event, e))
            })
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))?;
            message(
                "state",
                None,
                &EventView::of(&facts, &app.settings.terms(event)),
            )
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

/// How long a stream waits before asking a busy shard again.
const RETRY: Duration = Duration::from_millis(500);

/// A fan's status as the shard sees it.
enum Fetched {
    State(QueueStatus, Option<Cart>),
    /// The event does not exist.
    Gone,
    /// The shard's queue is full (or it stopped): try again later.
    Busy,
}

async fn customer_state(app: &App, event: EventId, customer: CustomerId) -> Fetched {
    // The shard only copies the fan's status and cart.
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
        Ok(Some((queue, cart))) => Fetched::State(queue, cart),
        Ok(None) => Fetched::Gone,
        Err(_) => Fetched::Busy,
    }
}

/// Sends every message of `next`: false when the client is gone or behind.
fn send_all(sender: &mpsc::Sender<Bytes>, next: &Next) -> bool {
    next.send.iter().all(|m| offer(sender, m.frame()))
}

/// The customer's stream. `resumed_after` is the Last-Event-ID they sent.
/// What to send is decided by [`FanStream`] (`fan_stream.rs`); this is the
/// loop that feeds it its inputs and sends what it says.
pub fn customer_stream(
    app: Arc<App>,
    event: EventId,
    customer: CustomerId,
    resumed_after: Option<u64>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let (sender, receiver) = mpsc::channel(BUFFER);
    let own = app.hub.register(event, customer);
    let published = app.hub.watch_event(event);
    let open = Open::new(&app);
    tokio::spawn(async move {
        let _open = open;
        follow_fan(
            &app,
            event,
            customer,
            resumed_after,
            &sender,
            own,
            published,
        )
        .await;
    });
    response(ChannelBody(receiver).boxed())
}

/// The fan's stream, started from the shard's answer, its first message
/// sent; `None` when the stream is over before it started. In a spike the
/// shard may be too busy to answer at once: the stream waits for it rather
/// than failing the fan.
async fn start_fan(
    app: &App,
    event: EventId,
    customer: CustomerId,
    resumed_after: Option<u64>,
    sender: &mpsc::Sender<Bytes>,
) -> Option<FanStream> {
    let (stream, first) = loop {
        match customer_state(app, event, customer).await {
            Fetched::State(status, cart) => {
                let pace = super::fan_api::pace(app, event);
                break FanStream::start(status, cart, pace, resumed_after);
            }
            Fetched::Gone => return None,
            Fetched::Busy if sender.is_closed() => return None,
            Fetched::Busy => tokio::time::sleep(RETRY).await,
        }
    };
    offer(sender, first.frame()).then_some(stream)
}

/// The timer of a hold's expiry warning, armed for the hold the fan's
/// stream has yet to announce.
struct ExpiryWarning {
    timer: Pin<Box<tokio::time::Sleep>>,
    armed_for: Option<u64>,
}

impl ExpiryWarning {
    fn new() -> ExpiryWarning {
        ExpiryWarning {
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed_for: None,
        }
    }

    /// Re-arms for `pending` (the hold's expiry) when it changed.
    fn follow(&mut self, pending: Option<u64>, now_ms: u64) {
        if pending == self.armed_for {
            return;
        }
        self.armed_for = pending;
        if let Some(expires_at_ms) = pending {
            let due = expires_at_ms.saturating_sub(EXPIRING_SOON_MS);
            let wait = Duration::from_millis(due.saturating_sub(now_ms));
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + wait);
        }
    }

    fn armed(&self) -> bool {
        self.armed_for.is_some()
    }

    /// Waits for the warning (only poll it while [`Self::armed`]); the
    /// expiry it warns of.
    async fn due(&mut self) -> u64 {
        self.timer.as_mut().await;
        self.armed_for.take().unwrap_or_default()
    }
}

/// The loop of [`customer_stream`]; returns when the stream ends.
async fn follow_fan(
    app: &App,
    event: EventId,
    customer: CustomerId,
    resumed_after: Option<u64>,
    sender: &mpsc::Sender<Bytes>,
    mut own: mpsc::Receiver<Note>,
    mut published: watch::Receiver<Option<Arc<Published>>>,
) {
    let pace = || super::fan_api::pace(app, event);
    let Some(mut stream) = start_fan(app, event, customer, resumed_after, sender).await else {
        return;
    };
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    let retry = tokio::time::sleep(RETRY);
    tokio::pin!(retry);
    let mut stale = false;
    let mut expiry = ExpiryWarning::new();
    loop {
        expiry.follow(stream.expiry_to_announce(), app.clock.now_ms());
        let next = tokio::select! {
            note = own.recv() => match note {
                // None: the hub dropped this stream for falling behind.
                None => return,
                Some(note) => stream.step(Input::Own(note)),
            },
            expires_at_ms = expiry.due(), if expiry.armed() => {
                stream.step(Input::ExpiryDue(expires_at_ms))
            }
            changed = published.changed() => {
                if changed.is_err() { return; }
                let sale = published.borrow_and_update().clone();
                match sale {
                    Some(sale) => stream.step(Input::Sale(&sale.view)),
                    None => continue,
                }
            }
            () = &mut retry, if stale => Next { send: Vec::new(), ask_shard: true },
            _ = keep_alive.tick() => {
                if !offer(sender, Bytes::from_static(b": keep-alive\n\n")) { return; }
                continue;
            }
            () = sender.closed() => return,
        };
        if !send_all(sender, &next) {
            return;
        }
        if !next.ask_shard {
            continue;
        }
        let (status, cart) = match customer_state(app, event, customer).await {
            Fetched::State(status, cart) => (status, cart),
            Fetched::Gone => return,
            Fetched::Busy => {
                stale = true;
                retry.as_mut().reset(tokio::time::Instant::now() + RETRY);
                continue;
            }
        };
        stale = false;
        if !send_all(sender, &stream.step(Input::Fetched(status, cart, pace()))) {
            return;
        }
    }
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

    #[test]
    fn messages_are_framed_with_id_event_and_data() {
        let framed = message("hold", Some(42), &serde_json::json!({"a": 1}));
        assert_eq!(&framed[..], b"id: 42\nevent: hold\ndata: {\"a\":1}\n\n");
    }
}
