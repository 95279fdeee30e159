//! The snapshot thread: serializes a copy of the shard's state and writes it
//! once the log is durable up to the copy's sequence number (so no snapshot
//! ever holds a transition the log might lose). The shard only pays for the
//! copy; serializing and writing happen here.

use std::sync::Arc;

use crossbeam_channel::Receiver;
use ingressoja_snapshots::SnapshotDir;

use super::recovery::ShardState;
use super::shared::Shared;
use crate::RuntimeError;

/// A copy of the shard's state to write.
pub struct SnapshotJob {
    /// The last sequence number the copy includes.
    pub last_seq: u64,
    /// The shard's generation when it copied (see `Shared::roll_back`).
    pub generation: u64,
    /// When the copy was taken.
    pub taken_at_ms: u64,
    /// The copy.
    pub state: ShardState,
    /// Told the outcome (operators' "snapshot now" requests).
    pub done: Vec<tokio::sync::oneshot::Sender<Result<u64, RuntimeError>>>,
}

/// Runs until the shard drops its sender.
pub fn run(dir: SnapshotDir, jobs: Receiver<SnapshotJob>, shared: Arc<Shared>) {
    while let Ok(job) = jobs.recv() {
        let result = if shared.wait_durable(job.last_seq, job.generation) {
            dir.write(job.last_seq, job.taken_at_ms, &job.state)
                .map(|_| job.last_seq)
                .map_err(|e| RuntimeError::SnapshotFailed(e.to_string()))
        } else {
            Err(RuntimeError::SnapshotFailed(
                "the copy will never be all committed (the log is poisoned, or this node \
                 lost the lead and threw away what it had not committed)"
                    .into(),
            ))
        };
        if let Ok(seq) = result {
            shared.record(|s| {
                s.snapshots_written += 1;
                s.last_snapshot_seq = seq;
            });
        }
        for done in job.done {
            // The requester may have gone away; the snapshot stands anyway.
            let _ = done.send(result.clone());
        }
    }
}
