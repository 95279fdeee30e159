//! The log writer task: group commit. It takes every job the shard has
//! queued and proposes all their records as one Raft entry (which the log
//! store writes as one batch with one sync), and answers the jobs'
//! requests, in order, once the entry is committed: on a single node, once
//! it is synced. A failed write poisons the log; that job and every later
//! one are answered with the error, and the process reports itself
//! unhealthy instead of guessing what reached the disk.

use std::sync::Arc;
use std::time::Instant;

use ingressoja_wal::Record;
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;

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
    /// The tag of the leadership the shard numbered the records under.
    pub numbered_by: u64,
    /// The batch's records, numbered by the shard.
    pub records: Vec<Record>,
    /// The batch's changes, to publish once durable.
    pub notices: Vec<Notice>,
    /// Answers to send once the records are durable, in order.
    pub completions: Vec<Completion>,
}

impl WriteJob {
    /// An empty job of leadership `numbered_by`.
    pub fn new(numbered_by: u64) -> WriteJob {
        WriteJob {
            numbered_by,
            records: Vec::new(),
            notices: Vec::new(),
            completions: Vec::new(),
        }
    }
}

/// The Raft group the writer proposes to.
pub type Proposer = openraft::Raft<ingressoja_cluster::ShardRaft>;

/// One group commit on its way: what to do once Raft has committed it.
struct InFlight {
    /// Raft's answer, if the group had records and was proposed.
    answer: Option<Answer>,
    last_seq: Option<u64>,
    count: u64,
    started: Instant,
    completions: Vec<Completion>,
    notices: Vec<Notice>,
}

type Answer = tokio::sync::oneshot::Receiver<
    Result<
        openraft::raft::ClientWriteResponse<ingressoja_cluster::ShardRaft>,
        openraft::error::ClientWriteError<ingressoja_cluster::NodeId, openraft::BasicNode>,
    >,
>;

/// Runs until the shard drops its sender: each group of queued jobs is
/// proposed as one Raft entry, and answered once it is committed; the jobs
/// that queue meanwhile form the next group. One proposal at a time is the
/// group commit: openraft 0.9 syncs every proposal on its own (one append
/// per client write, each awaited before the next), so proposing each job
/// as it comes would cost one fsync per job (measured: p50 latency 25–40
/// ms at 10 000 requests/s instead of 1 ms).
pub async fn run(
    proposer: Proposer,
    mut jobs: Receiver<WriteJob>,
    shared: Arc<Shared>,
    notices: Notices,
    simulated_delay: std::time::Duration,
) {
    let mut last_proposed = shared.durable_seq();
    let mut last_tag = None;
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        if !simulated_delay.is_zero() {
            // Fault injection only (see `RuntimeOptions`): a slow disk.
            tokio::time::sleep(simulated_delay).await;
        }
        // A group is one leadership's: a job numbered under another waits
        // for the next group.
        let tag = first.numbered_by;
        let mut group = vec![first];
        let mut records = group[0].records.len();
        while records < MAX_GROUP_RECORDS {
            match jobs.try_recv() {
                Ok(job) if job.numbered_by == tag => {
                    records += job.records.len();
                    group.push(job);
                }
                Ok(job) => {
                    next = Some(job);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if shared.live() != tag {
            tracing::debug!(
                tag,
                live = shared.live(),
                "refusing a group of an ended leadership"
            );
            // Numbered under a leadership that has ended: its records are
            // not proposed (a later leadership's log goes on without them)
            // and anything answered from that state waits for nothing.
            refuse(group, &shared);
            continue;
        }
        if last_tag != Some(tag)
            && let Some(first) = group.iter().find_map(|job| job.records.first())
        {
            // A new leadership numbers on from the log it found, which is
            // not what the last one proposed.
            last_tag = Some(tag);
            last_proposed = first.seq - 1;
        }
        let flight = propose(&proposer, group, &shared, &mut last_proposed).await;
        answer(flight, tag, &shared, &notices).await;
    }
}

/// Answers a group numbered under a leadership that has ended: nothing of
/// it was committed by this node, and the client retries (through the new
/// leader). A poisoned log says so instead: nothing is coming back here.
fn refuse(group: Vec<WriteJob>, shared: &Shared) {
    let error = shared.refusal();
    for job in group {
        for completion in job.completions {
            completion(Err(error.clone()));
        }
    }
}

/// One group's records, answers and notices, checked.
struct Gathered {
    records: Vec<Record>,
    completions: Vec<Completion>,
    notices: Vec<Notice>,
}

/// Joins a group's jobs, checking that their records continue the log
/// (`last_proposed` is the last record proposed so far).
fn gather(group: Vec<WriteJob>, shared: &Shared, last_proposed: u64) -> Gathered {
    let mut records = Vec::with_capacity(group.iter().map(|j| j.records.len()).sum());
    let mut completions = Vec::new();
    let mut notices = Vec::new();
    for job in group {
        records.extend(job.records);
        completions.extend(job.completions);
        notices.extend(job.notices);
    }
    // The shard numbers records one after another, and jobs arrive in the
    // order it sent them: a gap or a repeat would be a log that replays to
    // something else than what was answered.
    assert!(
        records
            .windows(2)
            .all(|pair| pair[0].seq + 1 == pair[1].seq),
        "a batch's records are not consecutive"
    );
    if let (None, Some(first)) = (shared.poisoned(), records.first()) {
        assert_eq!(
            first.seq,
            last_proposed + 1,
            "a batch does not follow the log"
        );
    }
    Gathered {
        records,
        completions,
        notices,
    }
}

async fn propose(
    proposer: &Proposer,
    group: Vec<WriteJob>,
    shared: &Shared,
    last_proposed: &mut u64,
) -> InFlight {
    let numbered_by = group.first().map_or(0, |job| job.numbered_by);
    let Gathered {
        records,
        completions,
        notices,
    } = gather(group, shared, *last_proposed);
    let last_seq = records.last().map(|r| r.seq);
    let count = records.len() as u64;
    let started = Instant::now();
    let answer = match (shared.poisoned(), last_seq) {
        (None, Some(last)) => {
            let batch = ingressoja_cluster::ShardBatch {
                records,
                numbered_by,
            };
            match proposer.client_write_ff(batch).await {
                Ok(answer) => {
                    *last_proposed = last;
                    Some(answer)
                }
                Err(fatal) => {
                    shared.poison(format!("the Raft group stopped: {fatal}"));
                    None
                }
            }
        }
        _ => None,
    };
    InFlight {
        answer,
        last_seq,
        count,
        started,
        completions,
        notices,
    }
}

/// Answers a group once its entry is committed (or known never to be).
/// An entry this node no longer leads for (deposed before it committed,
/// or it was never the leader) ends the leadership `tag`: the group and
/// every later one numbered under it are answered `NotLeader`, and the
/// shard rolls back what it numbered when it learns what the new leader
/// kept. A Raft group that stops leaves the engines ahead of the log: the
/// runtime is poisoned, as by a failed sync.
async fn answer(flight: InFlight, tag: u64, shared: &Shared, notices: &Notices) {
    let mut deposed = false;
    let outcome = match flight.answer {
        Some(answer) => match answer.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(openraft::error::ClientWriteError::ForwardToLeader(_))) => {
                deposed = true;
                Ok(())
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("the Raft group stopped".to_string()),
        },
        None => Ok(()),
    };
    if let Err(reason) = outcome {
        shared.poison(reason);
    }
    if deposed {
        tracing::warn!(
            "a proposal found this node no longer leading; refusing its leadership's writes"
        );
        shared.end_live(tag);
    }
    let result = match shared.poisoned() {
        Some(reason) => Err(RuntimeError::Durability(reason)),
        None if deposed => Err(RuntimeError::Deposed),
        None => Ok(()),
    };
    if result.is_ok()
        && let Some(last_seq) = flight.last_seq
    {
        let elapsed_us = u64::try_from(flight.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        shared.set_durable(last_seq);
        shared.record(|s| {
            s.batches_written += 1;
            s.records_written += flight.count;
            s.last_append_us = elapsed_us;
        });
        shared.committed(flight.count, elapsed_us);
        for notice in flight.notices {
            // No subscriber is fine: nobody is listening.
            let _ = notices.send(notice);
        }
    }
    for completion in flight.completions {
        completion(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> Record {
        Record {
            seq,
            timestamp_ms: 1,
            payload: vec![7],
        }
    }

    fn gather_records(proposed: u64, seqs: &[u64]) -> Vec<u64> {
        let shared = Shared::new(proposed);
        let job = WriteJob {
            numbered_by: 1,
            records: seqs.iter().copied().map(record).collect(),
            notices: Vec::new(),
            completions: Vec::new(),
        };
        let gathered = gather(vec![job], &shared, proposed);
        gathered.records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn a_batch_that_continues_the_log_is_proposed() {
        assert_eq!(gather_records(2, &[3, 4]), vec![3, 4]);
    }

    // A log that skips or repeats a number replays to something other than
    // what was answered: the writer stops instead of proposing it.
    #[test]
    #[should_panic(expected = "not consecutive")]
    fn a_batch_with_a_gap_stops_the_writer() {
        gather_records(0, &[1, 3]);
    }

    #[test]
    #[should_panic(expected = "does not follow the log")]
    fn a_batch_that_does_not_follow_the_log_stops_the_writer() {
        gather_records(2, &[5, 6]);
    }
}
