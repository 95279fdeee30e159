//! The hub between the runtime's notices and the server-sent event streams,
//! so that thousands of open streams cost work proportional to what they
//! show, not to everything that happens.
//!
//! One task consumes the runtime's durable notices. Per event it keeps a
//! `watch` channel holding the latest published state; an event with changes
//! is re-read and published at most every [`PUBLISH_EVERY`], so a stream of
//! that event wakes at most that often whatever the traffic. A fan's own
//! changes (hold, expiry, order, turn over) are routed to that fan's streams
//! only, through small bounded channels; a full one means the fan's client
//! is not keeping up, and its stream is closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ingressoja_engine::{CustomerId, Transition};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use super::{App, views};
use crate::runtime::EventId;

/// An event's state is published at most this often.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// A fan's own changes buffered per stream before it is cut off.
pub const PERSONAL_BUFFER: usize = 32;

/// The latest published state of an event: its view and the log sequence
/// number of the newest change it includes.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The event's JSON view.
    pub state: Value,
    /// The newest change included.
    pub seq: u64,
}

type Personal = mpsc::Sender<(u64, Transition)>;

/// See the module documentation.
#[derive(Default)]
pub struct Hub {
    events: Mutex<HashMap<EventId, watch::Sender<Option<Arc<Published>>>>>,
    personal: Mutex<HashMap<(EventId, CustomerId), Vec<Personal>>>,
}

impl Hub {
    /// The published state of an event, to watch.
    pub fn watch_event(&self, event: EventId) -> watch::Receiver<Option<Arc<Published>>> {
        self.events
            .lock()
            .entry(event)
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// A channel of the fan's own changes in this event.
    pub fn register(
        &self,
        event: EventId,
        customer: CustomerId,
    ) -> mpsc::Receiver<(u64, Transition)> {
        let (sender, receiver) = mpsc::channel(PERSONAL_BUFFER);
        self.personal
            .lock()
            .entry((event, customer))
            .or_default()
            .push(sender);
        receiver
    }

    fn route(&self, event: EventId, customer: CustomerId, seq: u64, transition: Transition) {
        let mut personal = self.personal.lock();
        if let Some(senders) = personal.get_mut(&(event, customer)) {
            // A closed stream, or one too far behind, is dropped here.
            senders.retain(|sender| sender.try_send((seq, transition)).is_ok());
            if senders.is_empty() {
                personal.remove(&(event, customer));
            }
        }
    }

    /// Forgets the streams of fans who went away. A fan's entry is also
    /// cleaned when a change of theirs is routed; this catches those who
    /// leave and never change anything again, so the map stays bounded by
    /// the open streams.
    pub fn forget_closed(&self) {
        self.personal.lock().retain(|_, senders| {
            senders.retain(|sender| !sender.is_closed());
            !senders.is_empty()
        });
    }

    fn watched(&self) -> Vec<EventId> {
        let mut events = self.events.lock();
        // Forget events nobody watches any more.
        events.retain(|_, sender| sender.receiver_count() > 0);
        events.keys().copied().collect()
    }

    fn publish(&self, event: EventId, published: Published) {
        if let Some(sender) = self.events.lock().get(&event) {
            sender.send_replace(Some(Arc::new(published)));
        }
    }

    /// The hub's task: consumes the runtime's notices until they end.
    pub async fn run(app: Arc<App>) {
        let hub = &app.hub;
        let mut notices = app.runtime.subscribe();
        let mut dirty: HashMap<EventId, u64> = HashMap::new();
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(notice) => {
                        dirty.insert(notice.event, notice.seq);
                        if let Some(customer) = notice.transition.customer() {
                            hub.route(notice.event, customer, notice.seq, notice.transition);
                        }
                    }
                    // Fell behind: everything watched is re-read.
                    Err(RecvError::Lagged(_)) => {
                        for event in hub.watched() {
                            dirty.entry(event).or_insert(0);
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = publish.tick(), if !dirty.is_empty() => {
                    let watched = hub.watched();
                    for (event, seq) in dirty.drain() {
                        if !watched.contains(&event) {
                            continue;
                        }
                        let view = app.runtime.query(move |state| state.events.get(&event).map(|e| views::event(event, e)));
                        let Ok(receiver) = view else { continue };
                        if let Ok(Some(state)) = receiver.await {
                            hub.publish(event, Published { state, seq });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fans_stream_that_falls_behind_is_dropped_from_routing() {
        let hub = Hub::default();
        let (event, fan) = (EventId(0), CustomerId(1));
        let mut own = hub.register(event, fan);
        let change = Transition::HoldExpired { customer: fan };
        for seq in 0..PERSONAL_BUFFER as u64 {
            hub.route(event, fan, seq, change);
        }
        assert!(hub.personal.lock().contains_key(&(event, fan)));
        hub.route(event, fan, 999, change);
        assert!(
            !hub.personal.lock().contains_key(&(event, fan)),
            "the stream is dropped, not grown"
        );
        let mut delivered = 0;
        while own.recv().await.is_some() {
            delivered += 1;
        }
        assert_eq!(delivered, PERSONAL_BUFFER, "then its stream ends");
        // Other fans are never sent someone else's changes.
        let mut other = hub.register(event, CustomerId(2));
        hub.route(event, fan, 1_000, change);
        assert!(other.try_recv().is_err());
    }

    #[test]
    fn streams_of_fans_who_left_are_forgotten() {
        let hub = Hub::default();
        let gone = hub.register(EventId(0), CustomerId(1));
        let _stays = hub.register(EventId(0), CustomerId(2));
        drop(gone);
        hub.forget_closed();
        let personal = hub.personal.lock();
        assert!(!personal.contains_key(&(EventId(0), CustomerId(1))));
        assert!(personal.contains_key(&(EventId(0), CustomerId(2))));
    }

    #[test]
    fn events_nobody_watches_are_forgotten() {
        let hub = Hub::default();
        let watcher = hub.watch_event(EventId(3));
        assert_eq!(hub.watched(), vec![EventId(3)]);
        drop(watcher);
        assert!(hub.watched().is_empty());
    }
}
