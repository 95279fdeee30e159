//! The waiting queue: one entry per customer, a shuffled pre-queue, then
//! shuffled arrival windows (or strict arrival order).
//!
//! Every joiner gets the next join number. Those who joined before opening
//! (join numbers `0..prequeue_len`) are placed by the seeded draw of
//! [`Shuffle`]. Later joiners are *pending* until their arrival window ends;
//! then the window's joiners (join numbers `start..start + len`) are placed
//! at positions `start..start + len` by a draw of their own ([`Draw`]). So
//! windows stay in arrival order and a join number's range of positions is
//! its window's: a position's join number is found by a binary search over
//! the windows, and a fan who joined with no window (window length 0)
//! stands at their join number. Only positions below `drawn` exist; the
//! cursor never passes it. The now-serving cursor `served` counts
//! positions passed; people ahead of a customer is plain arithmetic,
//! `position - served` (counting those ahead who left the line: an upper
//! bound).
//!
//! A waiting customer may leave the line: a bit per join number marks them,
//! and the cursor steps over them when it reaches them, so a fan who gave
//! up never takes a shopper's place. Each position is stepped over once.
//!
//! Memory per entry: 8 bytes in `joiners`, 8 to 16 bytes in the
//! [`JoinIndex`], one bit in `left`; about 120 bytes per arrival window
//! drawn (one every window length at most: 8 640 a day at 10 s). Nothing
//! here scans the queue.

use serde::{Deserialize, Serialize};

use crate::ids::CustomerId;
use crate::join_index::JoinIndex;
use crate::shuffle::Shuffle;

/// The draw of one arrival window: join numbers `start..start + len` take
/// positions `start..start + len` in the order of `shuffle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    start: u32,
    shuffle: Shuffle,
}

impl Draw {
    fn end(&self) -> u32 {
        self.start + self.shuffle.len()
    }
}

/// The queue of one event.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(from = "QueueRecord", into = "QueueRecord")]
pub struct Queue {
    /// Customers in join order; the join number is the index.
    joiners: Vec<CustomerId>,
    /// The index of `joiners`, so joining twice finds the same entry. Derived
    /// from `joiners`: not serialized, rebuilt on load.
    join_numbers: JoinIndex,
    /// The draw of the pre-queue; empty until opening.
    shuffle: Shuffle,
    /// Whether the pre-queue has been drawn.
    opened: bool,
    /// The arrival windows drawn since opening, in order.
    draws: Vec<Draw>,
    /// Join numbers `0..drawn` have a place in line; later ones are pending
    /// (in the pre-queue before opening, in an arrival window after).
    drawn: u32,
    /// Of the pending, how many left the line.
    left_pending: u32,
    /// When the pending arrivals are drawn, once a window is open.
    window_ends_at_ms: Option<u64>,
    /// Positions `0..served` have been passed (the now-serving cursor):
    /// admitted, or stepped over because they had left.
    served: u32,
    /// Join numbers of those who left the line, a bit each (64 per word).
    left: Vec<u64>,
    /// Of those, how many the cursor has not passed yet.
    left_ahead_of_cursor: u32,
    /// How many ever left the line.
    left_total: u32,
}

impl PartialEq for Queue {
    fn eq(&self, other: &Queue) -> bool {
        // join_numbers is derived from joiners.
        self.joiners == other.joiners
            && self.shuffle == other.shuffle
            && self.opened == other.opened
            && self.draws == other.draws
            && self.drawn == other.drawn
            && self.left_pending == other.left_pending
            && self.window_ends_at_ms == other.window_ends_at_ms
            && self.served == other.served
            && self.left == other.left
            && self.left_ahead_of_cursor == other.left_ahead_of_cursor
            && self.left_total == other.left_total
    }
}

impl Eq for Queue {}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            joiners: Vec::new(),
            join_numbers: JoinIndex::default(),
            shuffle: Shuffle::new(0, 0),
            opened: false,
            draws: Vec::new(),
            drawn: 0,
            left_pending: 0,
            window_ends_at_ms: None,
            served: 0,
            left: Vec::new(),
            left_ahead_of_cursor: 0,
            left_total: 0,
        }
    }
}

impl Queue {
    /// How many have joined.
    pub fn len(&self) -> u32 {
        // Bounded by max_queue_len, a u32.
        u32::try_from(self.joiners.len()).unwrap_or(u32::MAX)
    }

    /// True when nobody has joined.
    pub fn is_empty(&self) -> bool {
        self.joiners.is_empty()
    }

    /// How many joined before opening (0 before opening).
    pub fn prequeue_len(&self) -> u32 {
        self.shuffle.len()
    }

    /// Whether the pre-queue has been drawn.
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// How many positions have been admitted.
    pub fn served(&self) -> u32 {
        self.served
    }

    /// How many are still waiting for admission (0 before opening: the
    /// pre-queue has no order yet), pending arrivals included; those who
    /// left do not count.
    pub fn waiting(&self) -> u32 {
        if self.opened {
            self.len() - self.served - self.left_ahead_of_cursor
        } else {
            0
        }
    }

    /// How many could be admitted now: placed in line, not passed, still
    /// there (the pending arrivals wait for their draw).
    pub fn admissible(&self) -> u32 {
        if self.opened {
            (self.drawn - self.served) - (self.left_ahead_of_cursor - self.left_pending)
        } else {
            0
        }
    }

    /// Joined after opening and not drawn yet (those who left included).
    pub fn pending(&self) -> u32 {
        if self.opened {
            self.len() - self.drawn
        } else {
            0
        }
    }

    /// Of the pending, how many are still there.
    pub fn in_draw(&self) -> u32 {
        self.pending() - if self.opened { self.left_pending } else { 0 }
    }

    /// When the open arrival window ends, if one is open.
    pub fn window_ends_at_ms(&self) -> Option<u64> {
        self.window_ends_at_ms
    }

    /// Join numbers below this have a place in line.
    pub fn drawn(&self) -> u32 {
        self.drawn
    }

    /// The arrival windows drawn so far.
    pub fn draws(&self) -> usize {
        self.draws.len()
    }

    /// True when the customer with this join number left the line.
    pub fn has_left(&self, join_number: u32) -> bool {
        let (word, mask) = left_bit(join_number);
        self.left.get(word).is_some_and(|w| w & mask != 0)
    }

    /// How many who left the line the cursor has not reached yet.
    pub fn left_ahead_of_cursor(&self) -> u32 {
        self.left_ahead_of_cursor
    }

    /// How many ever left the line.
    pub fn left_total(&self) -> u32 {
        self.left_total
    }

    /// How many were admitted: positions passed, less those stepped over.
    pub fn admitted(&self) -> u32 {
        self.served - (self.left_total - self.left_ahead_of_cursor)
    }

    /// Marks a waiting customer as gone (the caller checked they joined,
    /// are not served and have not left).
    pub(crate) fn leave(&mut self, join_number: u32) {
        let (word, mask) = left_bit(join_number);
        if self.left.len() <= word {
            self.left.resize(word + 1, 0);
        }
        self.left[word] |= mask;
        self.left_ahead_of_cursor += 1;
        self.left_total += 1;
        if join_number >= self.drawn {
            self.left_pending += 1;
        }
    }

    /// The customer's join number, if they joined.
    pub fn join_number(&self, customer: CustomerId) -> Option<u32> {
        self.join_numbers.get(customer, &self.joiners)
    }

    /// Starts bringing the customer's index entry into cache (see
    /// [`JoinIndex::touch`]).
    pub fn touch(&self, customer: CustomerId) -> u32 {
        self.join_numbers.touch(customer)
    }

    /// The place in line of join number `join_number` (0 is first), once the
    /// sale has opened.
    /// `None` before opening and for pending arrivals.
    pub fn position(&self, join_number: u32) -> Option<u32> {
        if !self.opened || join_number >= self.drawn {
            return None;
        }
        if join_number < self.shuffle.len() {
            return Some(self.shuffle.forward(join_number));
        }
        Some(match self.draw_of(join_number) {
            Some(draw) => draw.start + draw.shuffle.forward(join_number - draw.start),
            None => join_number,
        })
    }

    /// The arrival window's draw covering join number (= position) `n`, if
    /// `n` was drawn in one (rather than joining in strict order).
    fn draw_of(&self, n: u32) -> Option<&Draw> {
        let after = self.draws.partition_point(|d| d.start <= n);
        let draw = self.draws.get(after.checked_sub(1)?)?;
        (n < draw.end()).then_some(draw)
    }

    /// Who stands at `position`.
    pub fn customer_at(&self, position: u32) -> Option<CustomerId> {
        if !self.opened || position >= self.drawn {
            return None;
        }
        self.joiners
            .get(self.join_number_at(position) as usize)
            .copied()
    }

    /// True when the customer with this join number has been admitted.
    pub fn is_served(&self, join_number: u32) -> bool {
        self.position(join_number).is_some_and(|p| p < self.served)
    }

    /// Appends a customer (the caller checked they are not in the queue).
    /// In `arrival_order` (after opening, with no arrival window) the
    /// customer is placed at once, at their join number, unless a window's
    /// arrivals are pending: then they are drawn with them.
    pub(crate) fn push(&mut self, customer: CustomerId, arrival_order: bool) {
        let join_number = self.len();
        self.join_numbers.insert(customer, join_number);
        self.joiners.push(customer);
        if arrival_order && self.opened && self.drawn == join_number {
            self.drawn += 1;
        }
    }

    /// Draws the pre-queue: everyone who joined so far.
    pub(crate) fn open(&mut self, seed: u64) {
        self.shuffle = Shuffle::new(seed, self.len());
        self.opened = true;
        self.drawn = self.len();
        self.left_pending = 0;
    }

    /// Opens an arrival window: the pending arrivals are drawn at
    /// `ends_at_ms`.
    pub(crate) fn open_window(&mut self, ends_at_ms: u64) {
        self.window_ends_at_ms = Some(ends_at_ms);
    }

    /// Places the pending arrivals behind everyone placed, in the order of
    /// the draw keyed with `seed`, and closes the window.
    pub(crate) fn draw(&mut self, seed: u64) {
        let count = self.len() - self.drawn;
        if count > 0 {
            self.draws.push(Draw {
                start: self.drawn,
                shuffle: Shuffle::new(seed, count),
            });
        }
        self.drawn = self.len();
        self.left_pending = 0;
        self.window_ends_at_ms = None;
    }

    /// Advances the cursor to the next customer still in line and returns
    /// them (stepping over those who left).
    pub(crate) fn admit_next(&mut self) -> Option<CustomerId> {
        if !self.opened {
            return None;
        }
        loop {
            if self.served >= self.drawn {
                return None;
            }
            // One inverse of the draw per position: it is most of an
            // admission's cost in a shuffled pre-queue.
            let join_number = self.join_number_at(self.served);
            // Every drawn place maps to someone who joined.
            let Some(&customer) = self.joiners.get(join_number as usize) else {
                unreachable!(
                    "place {} maps to join {join_number}, of {}",
                    self.served,
                    self.joiners.len()
                );
            };
            self.served += 1;
            if self.has_left(join_number) {
                // Everyone who left ahead of the cursor was counted when
                // they left: the count covers the one stepped over here.
                assert!(
                    self.left_ahead_of_cursor > 0,
                    "a leaver ahead of the cursor was not counted"
                );
                self.left_ahead_of_cursor -= 1;
                continue;
            }
            return Some(customer);
        }
    }

    /// The join number at `position` (once open).
    fn join_number_at(&self, position: u32) -> u32 {
        if position < self.shuffle.len() {
            return self.shuffle.inverse(position);
        }
        match self.draw_of(position) {
            Some(draw) => draw.start + draw.shuffle.inverse(position - draw.start),
            None => position,
        }
    }

    /// The customers in join order (for invariant checks and exports).
    pub fn joiners(&self) -> &[CustomerId] {
        &self.joiners
    }

    /// The index, for invariant checks.
    pub(crate) fn index_len(&self) -> usize {
        self.join_numbers.len()
    }
}

/// Where a join number's bit is in `Queue::left`: the word, and the mask.
fn left_bit(join_number: u32) -> (usize, u64) {
    (join_number as usize / 64, 1 << (join_number % 64))
}

/// The serialized form: the index is rebuilt from `joiners` on load, which
/// halves the size of a snapshot of a full queue.
#[derive(Serialize, Deserialize)]
struct QueueRecord {
    joiners: Vec<CustomerId>,
    shuffle: Shuffle,
    opened: bool,
    draws: Vec<Draw>,
    drawn: u32,
    left_pending: u32,
    window_ends_at_ms: Option<u64>,
    served: u32,
    left: Vec<u64>,
    left_ahead_of_cursor: u32,
    left_total: u32,
}

impl From<QueueRecord> for Queue {
    fn from(record: QueueRecord) -> Queue {
        let join_numbers = JoinIndex::build(&record.joiners);
        Queue {
            joiners: record.joiners,
            join_numbers,
            shuffle: record.shuffle,
            opened: record.opened,
            draws: record.draws,
            drawn: record.drawn,
            left_pending: record.left_pending,
            window_ends_at_ms: record.window_ends_at_ms,
            served: record.served,
            left: record.left,
            left_ahead_of_cursor: record.left_ahead_of_cursor,
            left_total: record.left_total,
        }
    }
}

impl From<Queue> for QueueRecord {
    fn from(queue: Queue) -> QueueRecord {
        QueueRecord {
            joiners: queue.joiners,
            shuffle: queue.shuffle,
            opened: queue.opened,
            draws: queue.draws,
            drawn: queue.drawn,
            left_pending: queue.left_pending,
            window_ends_at_ms: queue.window_ends_at_ms,
            served: queue.served,
            left: queue.left,
            left_ahead_of_cursor: queue.left_ahead_of_cursor,
            left_total: queue.left_total,
        }
    }
}
