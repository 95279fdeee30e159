//! The log writer thread: group commit. It takes every job the shard has
//! queued, writes all their records as one batch with one fsync, and only
//! then answers the jobs' requests, in order. A failed write poisons the log;
//! that job and every later one are answered with the error, and the process
//! reports itself unhealthy instead of guessing what reached the disk.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use ingressoja_wal::{LogStore, Record, Wal};

use super::RuntimeError;
use super::shared::Shared;

/// Group commits stop growing at this many records, so one batch stays a
/// bounded value in the store (about 4 MiB at typical record sizes).
pub const MAX_GROUP_RECORDS: usize = 65_536;

/// Called once a job's records are durable (or are known never to be).
pub type Completion = Box<dyn FnOnce(Result<(), RuntimeError>) + Send>;

/// A durable change, published to subscribers (server-sent events) once its
/// batch is synced, never before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Which event changed.
    pub event: crate::EventId,
    /// The change's log sequence number (used as the SSE event id).
    pub seq: u64,
    /// What changed.
    pub transition: ingressoja_engine::Transition,
    /// For a `Transition::Admitted`, one notice more per customer whose
    /// turn it started, naming them (the transition only counts them): their
    /// streams are told at once instead of finding out when the sale's
    /// published state next moves. `None` on the transition's own notice.
    pub turn_of: Option<ingressoja_engine::CustomerId>,
}

/// Where notices go: a bounded ring; a subscriber that falls behind by more
/// than its capacity is told it lagged and must re-read the state.
pub type Notices = tokio::sync::broadcast::Sender<Notice>;

/// What the shard hands over per batch.
pub struct WriteJob {
    /// The batch's records, numbered by the shard.
    pub records: Vec<Record>,
    /// The batch's changes, to publish once durable.
    pub notices: Vec<Notice>,
    /// The shard's time stamp for the batch.
    pub stamped_at_ms: u64,
    /// Answers to send once the records are durable, in order.
    pub completions: Vec<Completion>,
}

/// Runs until the shard drops its sender.
pub fn run<S: LogStore>(
    mut wal: Wal<S>,
    jobs: Receiver<WriteJob>,
    shared: Arc<Shared>,
    notices: Notices,
    simulated_delay: std::time::Duration,
) {
    while let Ok(first) = jobs.recv() {
        if !simulated_delay.is_zero() {
            // Fault injection only (see `RuntimeOptions`): a slow disk.
            std::thread::sleep(simulated_delay);
        }
        let mut group = vec![first];
        let mut records = group[0].records.len();
        while records < MAX_GROUP_RECORDS {
            match jobs.try_recv() {
                Ok(job) => {
                    records += job.records.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        commit(&mut wal, group, &shared, &notices);
    }
}

fn commit<S: LogStore>(wal: &mut Wal<S>, group: Vec<WriteJob>, shared: &Shared, notices: &Notices) {
    let stamped_at_ms = group.iter().map(|j| j.stamped_at_ms).max().unwrap_or(0);
    let mut records = Vec::with_capacity(group.iter().map(|j| j.records.len()).sum());
    let mut completions = Vec::new();
    let mut published = Vec::new();
    for job in group {
        records.extend(job.records);
        completions.extend(job.completions);
        published.extend(job.notices);
    }
    let last_seq = records.last().map(|r| r.seq);
    // The shard numbers records one after another, and jobs arrive in the
    // order it sent them: a gap or a repeat would be a log that replays to
    // something else than what was answered.
    assert!(
        records
            .windows(2)
            .all(|pair| pair[0].seq + 1 == pair[1].seq),
        "a batch's records are not consecutive"
    );
    if let (None, Some(first)) = (wal.poisoned(), records.first()) {
        assert_eq!(
            first.seq,
            shared.durable_seq() + 1,
            "a batch does not follow the durable log"
        );
    }
    let count = records.len() as u64;
    let started = Instant::now();
    let result = match (wal.poisoned(), last_seq) {
        (Some(reason), _) => Err(RuntimeError::Durability(reason.to_string())),
        (None, None) => Ok(()),
        (None, Some(last_seq)) => match wal.append(stamped_at_ms, records) {
            Ok(()) => {
                let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                shared.set_durable(last_seq);
                shared.record(|s| {
                    s.batches_written += 1;
                    s.records_written += count;
                    s.last_append_us = elapsed_us;
                });
                shared.committed(count, elapsed_us);
                Ok(())
            }
            Err(error) => {
                shared.poison(error.to_string());
                Err(RuntimeError::Durability(error.to_string()))
            }
        },
    };
    if result.is_ok() {
        for notice in published {
            // No subscriber is fine: nobody is listening.
            let _ = notices.send(notice);
        }
    }
    for completion in completions {
        completion(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use ingressoja_wal::MemStore;

    use super::*;

    fn record(seq: u64) -> Record {
        Record {
            seq,
            timestamp_ms: 1,
            payload: vec![7],
        }
    }

    fn commit_records(durable: u64, seqs: &[u64]) {
        let (mut wal, _) = Wal::open(MemStore::default(), 0, |_| Ok(())).unwrap();
        if durable > 0 {
            wal.append(1, (1..=durable).map(record).collect()).unwrap();
        }
        let shared = Shared::new(durable);
        let (notices, _) = tokio::sync::broadcast::channel(8);
        let job = WriteJob {
            records: seqs.iter().copied().map(record).collect(),
            notices: Vec::new(),
            stamped_at_ms: 1,
            completions: Vec::new(),
        };
        commit(&mut wal, vec![job], &shared, &notices);
        assert_eq!(shared.durable_seq(), *seqs.last().unwrap());
    }

    #[test]
    fn a_batch_that_continues_the_log_is_committed() {
        commit_records(2, &[3, 4]);
    }

    // A log that skips or repeats a number replays to something other than
    // what was answered: the writer stops instead of writing it.
    #[test]
    #[should_panic(expected = "not consecutive")]
    fn a_batch_with_a_gap_stops_the_writer() {
        commit_records(0, &[1, 3]);
    }

    #[test]
    #[should_panic(expected = "does not follow the durable log")]
    fn a_batch_that_does_not_follow_the_durable_log_stops_the_writer() {
        commit_records(2, &[5, 6]);
    }
}
