//! The hub between the runtime's notices and the server-sent event streams,
//! so that thousands of open streams cost work proportional to what they
//! show, not to everything that happens.
//!
//! One task consumes the runtime's durable notices. Per event it keeps the
//! latest published state, rendered once as the stream message every
//! watcher sends as is (10 000 streams must not mean 10 000 serializations
//! per update). A changed event is re-read at most every 10 ms, and each
//! stream sees at most one update per [`PUBLISH_EVERY`] whatever the
//! traffic. Streams are spread over [`LANES`] watch channels published in
//! turn, one lane per tick: waking 10 000 streams at the same instant would
//! queue every other request behind them (a latency spike every quarter
//! second); in lanes, each 2 ms tick wakes a 125th of them. A fan's own changes (hold,
//! expiry, order, turn over) are routed to that fan's streams only, through
//! small bounded channels; a full one means the fan's client is not keeping
//! up, and its stream is closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ingressoja_engine::{CustomerId, Transition};
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use super::App;
use super::views::{EventFacts, EventView};
use crate::runtime::EventId;

/// A stream sees an event's state at most this often.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Streams of an event are spread over this many lanes, published in turn.
/// What a publication costs the requests queued behind it is the size of
/// one lane (each woken stream is a task and a socket write on the same
/// workers), so lanes are many and small: 10 000 streams wake 80 at a time.
pub const LANES: usize = 125;
/// The hub publishes one lane per tick.
pub const TICK: Duration = Duration::from_millis(250 / LANES as u64);
// A full turn of the lanes is one publication period: every stream sees the
// newest state within PUBLISH_EVERY, and no tick is lost to rounding.
const _: () = assert!(250 % LANES == 0 && 250 / LANES >= 1);
const _: () = assert!(TICK.as_millis() * LANES as u128 == PUBLISH_EVERY.as_millis());

/// A changed event is re-read from the shard at most every this many ticks
/// (every 10 ms): often enough for the published state to be fresh, rarely
/// enough that the re-reads cost the shard nothing to speak of.
pub const REREAD_EVERY_TICKS: usize = 5;
/// A fan's own changes buffered per stream before it is cut off.
pub const PERSONAL_BUFFER: usize = 32;

/// The latest published state of an event: its view, the log sequence
/// number of the newest change it includes, and the stream message.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The event's view, with the line's pace.
    pub view: EventView,
    /// The newest change included.
    pub seq: u64,
    /// `state` as a server-sent event message, rendered once for all.
    pub message: Bytes,
}

type Lane = watch::Sender<Option<Arc<Published>>>;

/// An event's lanes and what was last published.
struct Watched {
    lanes: Vec<Lane>,
    latest: Option<Arc<Published>>,
    next_lane: AtomicUsize,
}

impl Watched {
    fn new() -> Watched {
        Watched {
            lanes: (0..LANES).map(|_| watch::channel(None).0).collect(),
            latest: None,
            next_lane: AtomicUsize::new(0),
        }
    }

    fn watchers(&self) -> usize {
        self.lanes.iter().map(watch::Sender::receiver_count).sum()
    }
}

/// What a fan's own streams are told.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// A durable change of theirs, at this log sequence number.
    Change(u64, Transition),
    /// A request of theirs was refused (the error's code and message), so
    /// every open page of theirs can say why, not only the one that asked.
    Rejected {
        /// The error code, as in the API's JSON errors.
        code: &'static str,
        /// What to tell the fan.
        message: String,
    },
}

type Personal = mpsc::Sender<Note>;

/// See the module documentation.
#[derive(Default)]
pub struct Hub {
    events: Mutex<HashMap<EventId, Watched>>,
    personal: Mutex<HashMap<(EventId, CustomerId), Vec<Personal>>>,
    /// Holds that expired per event since this process started (for the
    /// dashboard's funnel; the engine counts what is, not what expired).
    expired: Mutex<HashMap<EventId, u64>>,
    /// How fast each line moves, from the admissions seen.
    pub paces: super::pace::Paces,
}

impl Hub {
    /// The published state of an event, to watch (on the next lane in
    /// turn, so the watchers of an event spread evenly).
    pub fn watch_event(&self, event: EventId) -> watch::Receiver<Option<Arc<Published>>> {
        let mut events = self.events.lock();
        let watched = events.entry(event).or_insert_with(Watched::new);
        let lane = watched.next_lane.fetch_add(1, Ordering::Relaxed) % LANES;
        watched.lanes[lane].subscribe()
    }

    /// A channel of the fan's own changes in this event.
    pub fn register(&self, event: EventId, customer: CustomerId) -> mpsc::Receiver<Note> {
        let (sender, receiver) = mpsc::channel(PERSONAL_BUFFER);
        self.personal
            .lock()
            .entry((event, customer))
            .or_default()
            .push(sender);
        receiver
    }

    fn route(&self, event: EventId, customer: CustomerId, seq: u64, transition: Transition) {
        self.deliver(event, customer, &Note::Change(seq, transition));
    }

    /// Tells the fan's open streams that a request of theirs was refused.
    pub fn reject(&self, event: EventId, customer: CustomerId, code: &'static str, message: &str) {
        let note = Note::Rejected {
            code,
            message: message.to_string(),
        };
        self.deliver(event, customer, &note);
    }

    fn deliver(&self, event: EventId, customer: CustomerId, note: &Note) {
        let mut personal = self.personal.lock();
        if let Some(senders) = personal.get_mut(&(event, customer)) {
            // A closed stream, or one too far behind, is dropped here.
            senders.retain(|sender| sender.try_send(note.clone()).is_ok());
            if senders.is_empty() {
                personal.remove(&(event, customer));
            }
        }
    }

    /// Holds of `event` that expired since the process started.
    pub fn expired_holds(&self, event: EventId) -> u64 {
        self.expired.lock().get(&event).copied().unwrap_or(0)
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
        events.retain(|_, watched| watched.watchers() > 0);
        events.keys().copied().collect()
    }

    /// Marks every watched event to be re-read: the notices of some
    /// changes never came (the hub lagged, or the shard installed a
    /// snapshot).
    fn reread_all(&self, dirty: &mut HashMap<EventId, u64>) {
        for event in self.watched() {
            dirty.entry(event).or_insert(0);
        }
    }

    /// Records an event's newest state (rendered once here).
    fn update(&self, event: EventId, view: EventView, seq: u64) {
        let message = super::sse::message("state", Some(seq), &view);
        if let Some(watched) = self.events.lock().get_mut(&event) {
            watched.latest = Some(Arc::new(Published { view, seq, message }));
        }
    }

    /// Publishes every event's newest state on `lane`, where it is new.
    fn publish_lane(&self, lane: usize) {
        for watched in self.events.lock().values() {
            let Some(latest) = &watched.latest else {
                continue;
            };
            watched.lanes[lane % LANES].send_if_modified(|current| {
                let stale = current.as_ref().is_none_or(|c| c.seq != latest.seq);
                if stale {
                    *current = Some(latest.clone());
                }
                stale
            });
        }
    }

    /// The hub's task: consumes the runtime's notices until they end.
    pub async fn run(app: Arc<App>) {
        let hub = &app.hub;
        let mut notices = app.runtime.subscribe();
        let mut installs = app.runtime.installs();
        let mut installs_open = true;
        let mut dirty: HashMap<EventId, u64> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ticks: usize = 0;
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(notice) if notice.turn_of.is_some() => {
                        if let Some(customer) = notice.turn_of {
                            hub.route(notice.event, customer, notice.seq, notice.transition);
                        }
                    }
                    Ok(notice) => {
                        dirty.insert(notice.event, notice.seq);
                        match notice.transition {
                            Transition::HoldExpired { .. } => {
                                *hub.expired.lock().entry(notice.event).or_default() += 1;
                            }
                            Transition::Admitted { at_ms, count } => {
                                hub.paces.admitted(notice.event, at_ms, count);
                            }
                            _ => {}
                        }
                        if let Some(customer) = notice.transition.customer() {
                            hub.route(notice.event, customer, notice.seq, notice.transition);
                        }
                    }
                    // Fell behind: everything watched is re-read.
                    Err(RecvError::Lagged(_)) => hub.reread_all(&mut dirty),
                    Err(RecvError::Closed) => return,
                },
                // The shard took a snapshot of the group in place of its
                // state (a follower far behind): the changes it skipped
                // came with no notices, so everything watched is re-read.
                changed = installs.changed(), if installs_open => match changed {
                    Ok(()) => hub.reread_all(&mut dirty),
                    Err(_) => installs_open = false,
                },
                _ = tick.tick() => {
                    if ticks.is_multiple_of(REREAD_EVERY_TICKS) && !dirty.is_empty() {
                        let watched = hub.watched();
                        let mut due = std::mem::take(&mut dirty).into_iter();
                        while let Some((event, seq)) = due.next() {
                            if !watched.contains(&event) {
                                continue;
                            }
                            let facts = super::shard_wait::read_state(&app, move |state| {
                                state.events.get(&event).map(|e| EventFacts::of(event, e))
                            })
                            .await;
                            match facts {
                                Ok(Some(facts)) => {
                                    let pace = super::fan_api::pace(&app, event);
                                    hub.update(event, EventView::of(&facts, &app.settings.terms(event)).with_pace(pace), seq);
                                }
                                Ok(None) => {}
                                // Not durable within the commit wait (a
                                // leader cut off from its group) or refused:
                                // this and the rest are read again next
                                // time, instead of holding the streams'
                                // lanes until the group heals.
                                Err(_) => {
                                    dirty.insert(event, seq);
                                    dirty.extend(due);
                                    break;
                                }
                            }
                        }
                    }
                    hub.publish_lane(ticks % LANES);
                    ticks = ticks.wrapping_add(1);
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

    #[tokio::test]
    async fn watchers_are_spread_over_lanes_published_in_turn() {
        let hub = Hub::default();
        let event = EventId(0);
        let mut watchers: Vec<_> = (0..LANES * 2).map(|_| hub.watch_event(event)).collect();
        let view = EventView::example(crate::http::views::PhaseName::Open, 1, 0);
        hub.update(event, view, 7);
        hub.publish_lane(0);
        let woken = |watchers: &mut Vec<watch::Receiver<Option<Arc<Published>>>>| {
            watchers
                .iter_mut()
                .filter(|w| w.has_changed().unwrap_or(false))
                .count()
        };
        assert_eq!(woken(&mut watchers), 2, "one lane: a LANES-th of them");
        for lane in 1..LANES {
            hub.publish_lane(lane);
        }
        assert_eq!(woken(&mut watchers), LANES * 2, "a full turn reaches all");
        let published = watchers[3].borrow_and_update().clone().unwrap();
        assert_eq!(published.seq, 7);
        assert!(published.message.starts_with(b"id: 7\nevent: state\n"));
        // Nothing new: a second turn wakes nobody.
        for watcher in &mut watchers {
            watcher.borrow_and_update();
        }
        for lane in 0..LANES {
            hub.publish_lane(lane);
        }
        assert_eq!(woken(&mut watchers), 0);
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
