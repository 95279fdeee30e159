//! The entries a log appended last, kept in memory for the reads that
//! follow at once.
//!
//! openraft 0.9 reads every entry back from the log store after appending
//! it: the state machine worker to apply it, the replication tasks to send
//! it. From the store that is a range scan of the entries' side keys and
//! of the records, each batch decoded and its checksum and hash checked
//! again: about 35 µs of the 70 µs a one-voter commit spent outside its
//! fsync (measured, docs/BENCHMARKS.md). This cache answers those reads
//! from the entries as they were appended.
//!
//! It holds a contiguous run of the log's newest entries, bounded in bytes,
//! and is changed under the log's write lock together with the store:
//! filled after a durable append (never before: nothing unsynced is ever
//! read from it), cut on a truncation, trimmed on a purge and emptied when
//! a snapshot is installed. A read it cannot answer whole goes to the
//! store, so the cache changes how fast a read is, never what it returns.

use std::collections::VecDeque;

use openraft::{Entry, EntryPayload};

use crate::types::{NodeId, ShardRaft};

/// Bytes of record payload the cache holds at most: a few group commits
/// of the largest size, enough for the followers a little behind.
pub const MAX_BYTES: usize = 16 << 20;

/// What a record costs beside its payload (its number, time stamp, and
/// the vector's own header), for the bound.
const RECORD_OVERHEAD: usize = 48;

/// The newest entries (see the module documentation).
#[derive(Debug)]
pub struct RecentEntries {
    entries: VecDeque<Entry<ShardRaft>>,
    bytes: usize,
    max_bytes: usize,
}

fn size(entry: &Entry<ShardRaft>) -> usize {
    match &entry.payload {
        EntryPayload::Normal(batch) => batch
            .records
            .iter()
            .map(|record| record.payload.len() + RECORD_OVERHEAD)
            .sum(),
        EntryPayload::Blank | EntryPayload::Membership(_) => RECORD_OVERHEAD,
    }
}

impl RecentEntries {
    /// An empty cache of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> RecentEntries {
        RecentEntries {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
        }
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|e| e.log_id.index)
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }

    /// Takes `entries`, just made durable at the log's end (by value: the
    /// append path hands over its own copy). Entries that do not continue
    /// the cached run (the log went on without the cache: after it was
    /// emptied) start a new run.
    pub fn appended(&mut self, entries: Vec<Entry<ShardRaft>>) {
        for entry in entries {
            let bytes = size(&entry);
            let continues = self
                .last_index()
                .is_none_or(|last| last + 1 == entry.log_id.index);
            if bytes > self.max_bytes || !continues {
                // A gap, or larger than the whole cache (read from the
                // store): what follows starts a new run.
                self.clear();
            }
            if bytes > self.max_bytes {
                continue;
            }
            self.entries.push_back(entry);
            self.bytes += bytes;
            while self.bytes > self.max_bytes {
                let Some(oldest) = self.entries.pop_front() else {
                    break;
                };
                self.bytes -= size(&oldest);
            }
        }
    }

    /// Forgets the entries from `index` on (a truncation).
    pub fn truncated(&mut self, index: u64) {
        while self.last_index().is_some_and(|last| last >= index) {
            if let Some(entry) = self.entries.pop_back() {
                self.bytes -= size(&entry);
            }
        }
    }

    /// Forgets the entries through `index` (a purge).
    pub fn purged(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            if let Some(entry) = self.entries.pop_front() {
                self.bytes -= size(&entry);
            }
        }
    }

    /// Forgets everything (a snapshot replaced the log's start or all of
    /// it).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries `from..to`, if the cache holds every one of them; an
    /// open or empty range is left to the store.
    pub fn get(&self, from: u64, to: u64) -> Option<Vec<Entry<ShardRaft>>> {
        let first = self.first_index()?;
        let last = self.last_index()?;
        if from >= to || from < first || to - 1 > last {
            return None;
        }
        let skip = usize::try_from(from - first).ok()?;
        let take = usize::try_from(to - from).ok()?;
        Some(self.entries.iter().skip(skip).take(take).cloned().collect())
    }

    /// The last record at or before entry `index`, named `log_id`, if the
    /// cache holds that entry and, at or before it, one with records.
    pub fn seq_through(&self, log_id: openraft::LogId<NodeId>) -> Option<u64> {
        let first = self.first_index()?;
        let at = usize::try_from(log_id.index.checked_sub(first)?).ok()?;
        if self.entries.get(at)?.log_id != log_id {
            return None;
        }
        self.entries
            .iter()
            .take(at + 1)
            .rev()
            .find_map(|entry| match &entry.payload {
                EntryPayload::Normal(batch) => batch.records.last().map(|r| r.seq),
                EntryPayload::Blank | EntryPayload::Membership(_) => None,
            })
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ingressoja_wal::Record;
    use openraft::{CommittedLeaderId, LogId};

    use super::*;
    use crate::types::ShardBatch;

    fn log_id(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 0), index)
    }

    fn batch(index: u64, seqs: std::ops::RangeInclusive<u64>, payload: usize) -> Entry<ShardRaft> {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(ShardBatch {
                records: seqs
                    .map(|seq| Record {
                        seq,
                        timestamp_ms: 1,
                        payload: vec![0; payload],
                    })
                    .collect(),
                numbered_by: 7,
            }),
        }
    }

    fn blank(index: u64) -> Entry<ShardRaft> {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(entries: &[Entry<ShardRaft>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn a_read_is_answered_only_when_every_entry_of_it_is_held() {
        let mut cache = RecentEntries::new(MAX_BYTES);
        cache.appended(vec![batch(3, 1..=2, 8), blank(4), batch(5, 3..=3, 8)]);
        assert_eq!(cache.get(3, 6).as_deref().map(indexes), Some(vec![3, 4, 5]));
        assert_eq!(cache.get(4, 5).as_deref().map(indexes), Some(vec![4]));
        assert!(cache.get(2, 4).is_none(), "entry 2 is not held");
        assert!(cache.get(5, 7).is_none(), "entry 6 does not exist yet");
        assert!(
            cache.get(5, 5).is_none(),
            "an empty range goes to the store"
        );
    }

    #[test]
    fn entries_that_do_not_continue_the_run_start_a_new_one() {
        let mut cache = RecentEntries::new(MAX_BYTES);
        cache.appended(vec![batch(1, 1..=1, 8), batch(2, 2..=2, 8)]);
        cache.appended(vec![batch(9, 3..=3, 8)]);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(1, 3).is_none());
        assert_eq!(cache.get(9, 10).as_deref().map(indexes), Some(vec![9]));
    }

    #[test]
    fn a_truncation_and_a_purge_forget_their_entries() {
        let mut cache = RecentEntries::new(MAX_BYTES);
        cache.appended(vec![
            blank(1),
            batch(2, 1..=1, 8),
            batch(3, 2..=2, 8),
            blank(4),
        ]);
        cache.truncated(3);
        assert!(cache.get(3, 4).is_none());
        assert_eq!(cache.get(1, 3).as_deref().map(indexes), Some(vec![1, 2]));
        cache.purged(1);
        assert!(cache.get(1, 3).is_none());
        assert_eq!(cache.get(2, 3).as_deref().map(indexes), Some(vec![2]));
        // A new leader's entry at the truncated index continues the run.
        cache.appended(vec![batch(3, 2..=4, 8)]);
        assert_eq!(cache.get(2, 4).as_deref().map(indexes), Some(vec![2, 3]));
    }

    #[test]
    fn the_oldest_entries_go_when_the_bytes_run_out_and_an_oversized_one_is_not_kept() {
        let one = (100 + RECORD_OVERHEAD) * 10;
        let mut cache = RecentEntries::new(one * 2);
        cache.appended(vec![batch(1, 1..=10, 100), batch(2, 11..=20, 100)]);
        assert_eq!(cache.len(), 2);
        cache.appended(vec![batch(3, 21..=30, 100)]);
        assert_eq!(indexes(&cache.get(2, 4).unwrap_or_default()), vec![2, 3]);
        assert!(cache.get(1, 2).is_none());
        cache.appended(vec![batch(4, 31..=60, 100)]);
        assert!(
            cache.is_empty(),
            "an entry larger than the cache is left to the store"
        );
        cache.appended(vec![batch(5, 61..=61, 100)]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_last_record_through_an_entry_is_found_behind_entries_without_records() {
        let mut cache = RecentEntries::new(MAX_BYTES);
        cache.appended(vec![batch(1, 1..=4, 8), blank(2), blank(3)]);
        assert_eq!(cache.seq_through(log_id(3)), Some(4));
        assert_eq!(cache.seq_through(log_id(1)), Some(4));
        let other_term = LogId::new(CommittedLeaderId::new(2, 0), 3);
        assert_eq!(cache.seq_through(other_term), None, "another entry at 3");
        cache.purged(1);
        assert_eq!(
            cache.seq_through(log_id(3)),
            None,
            "no records held before it"
        );
    }
}
