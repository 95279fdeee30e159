//! The pace the line moves at: admissions per minute observed over the last
//! minute, per event, from the durable `Admitted` notices. A waiting fan's
//! estimated wait is people ahead ÷ pace. The configured admission rate is
//! only a ceiling: once the store is full (`max_active` shoppers), the line
//! moves as fast as shoppers finish, which only observation tells.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::runtime::EventId;

/// How far back the pace looks.
pub const PACE_WINDOW_MS: u64 = 60_000;
/// Admissions are at least 10 ms apart (the shard's shortest tick), so a
/// minute holds at most 6 000 of them; the bound keeps a clock that jumps
/// from growing the list.
const MAX_SAMPLES: usize = 6_000;

/// Admissions of one event: (when, how many), oldest first.
#[derive(Debug, Default)]
struct Admissions {
    samples: VecDeque<(u64, u32)>,
    /// The sum of the samples' counts, kept as samples come and go, so a
    /// fan's status (asked on every poll and stream update) costs no walk.
    in_samples: u64,
    /// The first admission ever seen, so that a sale younger than the window
    /// is not measured over time it has not been running.
    first_at_ms: Option<u64>,
}

/// What the line's pace is known to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Nobody has been admitted yet (in this process): only the configured
    /// rate is known.
    Unknown,
    /// Admissions per minute over the last minute (0: the line is stopped,
    /// every shopper's slot is taken and nobody has finished).
    PerMinute(u64),
}

/// Shown as admissions per minute, null while unknown.
impl serde::Serialize for Pace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Pace::Unknown => serializer.serialize_none(),
            Pace::PerMinute(n) => serializer.serialize_some(n),
        }
    }
}

/// Every event's admissions (see the module documentation).
#[derive(Debug, Default)]
pub struct Paces {
    events: Mutex<HashMap<EventId, Admissions>>,
}

impl Admissions {
    /// Drops samples older than `since`, and the oldest beyond the bound.
    fn trim(&mut self, since: u64) {
        while let Some(&(at_ms, count)) = self.samples.front() {
            if at_ms >= since && self.samples.len() <= MAX_SAMPLES {
                break;
            }
            self.samples.pop_front();
            self.in_samples -= u64::from(count);
        }
    }
}

impl Paces {
    /// Records `count` fans admitted at `at_ms`.
    pub fn admitted(&self, event: EventId, at_ms: u64, count: u32) {
        let mut events = self.events.lock();
        let admissions = events.entry(event).or_default();
        admissions.first_at_ms.get_or_insert(at_ms);
        admissions.samples.push_back((at_ms, count));
        admissions.in_samples += u64::from(count);
        admissions.trim(at_ms.saturating_sub(PACE_WINDOW_MS));
    }

    /// The pace of `event` at `now_ms`.
    pub fn pace(&self, event: EventId, now_ms: u64) -> Pace {
        let mut events = self.events.lock();
        let Some(admissions) = events.get_mut(&event) else {
            return Pace::Unknown;
        };
        let Some(first_at_ms) = admissions.first_at_ms else {
            return Pace::Unknown;
        };
        let since = now_ms.saturating_sub(PACE_WINDOW_MS);
        admissions.trim(since);
        // At least a second, so that the first admissions do not read as a
        // pace of millions a minute.
        let span_ms = now_ms.saturating_sub(since.max(first_at_ms)).max(1_000);
        Pace::PerMinute(admissions.in_samples * 60_000 / span_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000_000;

    #[test]
    fn the_pace_is_what_was_admitted_in_the_last_minute() {
        let paces = Paces::default();
        let event = EventId(0);
        assert_eq!(paces.pace(event, T), Pace::Unknown);
        // 500 a second for the sale's first ten seconds...
        for second in 0..10 {
            paces.admitted(event, T + second * 1_000, 500);
        }
        assert_eq!(paces.pace(event, T + 10_000), Pace::PerMinute(30_000));
        // ...then the store is full: one fan a second as shoppers finish.
        for second in 10..130 {
            paces.admitted(event, T + second * 1_000, 1);
        }
        assert_eq!(paces.pace(event, T + 130_000), Pace::PerMinute(60));
        // Nobody finishes for a minute: the line has stopped.
        assert_eq!(paces.pace(event, T + 191_000), Pace::PerMinute(0));
        assert_eq!(paces.pace(EventId(1), T), Pace::Unknown, "per event");
    }

    #[test]
    fn a_jumping_clock_cannot_grow_the_samples_past_their_bound() {
        let paces = Paces::default();
        for i in 0..(MAX_SAMPLES as u64 * 2) {
            // Every sample at the same instant: none is old enough to trim.
            paces.admitted(EventId(0), T, u32::try_from(i % 2).unwrap());
        }
        assert!(paces.events.lock()[&EventId(0)].samples.len() <= MAX_SAMPLES);
    }
}
