//! The shard's log as a Raft group (openraft, through `ingressoja-cluster`).
//! A single node is a group of one voter on the same code path as a
//! cluster: the writer proposes each group commit as one Raft entry (the
//! batch's sale-log records), the log store (`WalLog`) keeps it in the
//! write-ahead log, and a reply waits for the entry's commit instead of for
//! a bare fsync. With one voter the commit is the local sync.
//!
//! The state machine is the shard's engines, still owned by the shard
//! thread: [`ShardMachine`] hands committed records to it. The shard that
//! leads has its own records in its engines already (it applied the
//! commands that made them) and skips them by number; records from before
//! (the log's uncommitted tail at start, or another leader's) are replayed
//! as recovery replays them. A shard takes writes only once it leads and
//! has applied its whole log, so its next record always continues the log.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use ingressoja_cluster::wal_log::AppliedAt;
use ingressoja_cluster::{Applied as EntryApplied, NodeId, ShardRaft};
use ingressoja_wal::{LogStore, Record};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Config, Entry, EntryPayload, LogId, OptionalSend, Raft, RaftSnapshotBuilder,
    ServerState, SnapshotMeta, SnapshotPolicy, StorageError, StorageIOError, StoredMembership,
};

use crate::Request;
use crate::shared::Shared;

/// A single node's id in its group of one.
pub const SINGLE_NODE: NodeId = 1;

/// How long a starting node waits to lead its group of one (an election
/// timeout, then a sync) before giving up.
const LEAD_DEADLINE: Duration = Duration::from_secs(30);

/// Raft's timing for a group: heartbeats well inside the election timeout.
/// (Chosen from measurement when the cluster runs on real networks; a group
/// of one only waits out one election timeout when it starts.)
pub fn config() -> Result<Arc<Config>, GroupError> {
    let config = Config {
        cluster_name: "ingressoja-shard".into(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // The runtime writes its own snapshots; Raft ones come with
        // followers that need them (not yet).
        snapshot_policy: SnapshotPolicy::Never,
        ..Config::default()
    };
    let config = config
        .validate()
        .map_err(|e| GroupError::Start(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Why a group would not start.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// openraft refused the configuration or would not start.
    #[error("the Raft group would not start: {0}")]
    Start(String),
    /// The node did not come to lead its group in time.
    #[error("this node did not lead its group within {0:?}")]
    NoLeader(Duration),
}

/// The state machine (see the module documentation).
pub(crate) struct ShardMachine {
    requests: Sender<Request>,
    shared: Arc<Shared>,
    applied: AppliedAt,
}

impl ShardMachine {
    /// The shard behind `requests`, whose state has applied `applied`.
    pub(crate) fn new(
        requests: Sender<Request>,
        shared: Arc<Shared>,
        applied: AppliedAt,
    ) -> ShardMachine {
        ShardMachine {
            requests,
            shared,
            applied,
        }
    }

    /// Hands committed records to the shard and waits until it has them.
    async fn to_shard(&self, records: Vec<Record>) -> Result<(), io::Error> {
        let (done, applied) = tokio::sync::oneshot::channel();
        let request = Request::Committed { records, done };
        // The shard's channel is bounded: wait for room without holding up
        // this runtime's other tasks.
        let sent = tokio::task::block_in_place(|| self.requests.send(request).is_ok());
        if !sent {
            return Err(io::Error::other("the shard has stopped"));
        }
        applied
            .await
            .map_err(|_| io::Error::other("the shard has stopped"))?
            .map_err(io::Error::other)
    }
}

fn machine_error(error: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&error).into()
}

fn no_snapshots() -> StorageError<NodeId> {
    let error = io::Error::other("this node keeps its snapshots itself (not through Raft yet)");
    StorageIOError::write_snapshot(None, &error).into()
}

/// Raft snapshots are not taken yet (the runtime's own snapshotter writes
/// the shard's; shipping them to a follower comes with followers).
pub(crate) struct NoSnapshots;

impl RaftSnapshotBuilder<ShardRaft> for NoSnapshots {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ShardRaft>, StorageError<NodeId>> {
        Err(no_snapshots())
    }
}

impl RaftStateMachine<ShardRaft> for ShardMachine {
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        Ok((self.applied.log_id, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryApplied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<ShardRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        let mut answers = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => records.extend(batch.records),
                EntryPayload::Membership(membership) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            self.applied.log_id = Some(entry.log_id);
            answers.push(EntryApplied {
                index: entry.log_id.index,
            });
        }
        // A leader's own records are in its engines already (it numbered
        // them): skipped here, without a trip to the shard. This is not
        // only cheaper: the shard may be waiting on the writer, which
        // waits on this very commit, so asking it would deadlock.
        let held = self.shared.numbered();
        if records.last().is_some_and(|last| last.seq > held) {
            self.to_shard(records).await.map_err(machine_error)?;
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        NoSnapshots
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<std::io::Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Err(no_snapshots())
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, BasicNode>,
        _snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        Err(no_snapshots())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<ShardRaft>>, StorageError<NodeId>> {
        Ok(None)
    }
}

/// A running group: the Raft node and the tokio runtime it runs on (its
/// own, apart from the HTTP server's).
pub(crate) struct Group {
    /// The node.
    pub raft: Raft<ShardRaft>,
    /// The runtime openraft's tasks run on.
    pub tokio: tokio::runtime::Runtime,
}

impl Group {
    /// Starts a group of one voter (this node) over `log`, founding it if
    /// the log is new, and waits until this node leads and has applied its
    /// whole log. Runs on a thread of its own, so a caller inside another
    /// tokio runtime may call it.
    pub fn start_alone<S: LogStore + Clone + Sync + 'static>(
        log: ingressoja_cluster::wal_log::WalLog<S>,
        machine: ShardMachine,
    ) -> Result<Group, GroupError> {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ingressoja-raft")
            .enable_all()
            .build()
            .map_err(|e| GroupError::Start(e.to_string()))?;
        let config = config()?;
        // Everything in the log when it opened must be in the engines
        // before the shard numbers a record of its own (openraft's metrics
        // may say "leader" before they count the log's tail).
        let log_end = log
            .reader()
            .last_log_id()
            .map_err(|e| GroupError::Start(e.to_string()))?
            .map(|l| l.index);
        let raft = on_own_thread(|| {
            tokio.block_on(async {
                let raft = Raft::new(
                    SINGLE_NODE,
                    config,
                    ingressoja_cluster::no_peers::NoPeers,
                    log,
                    machine,
                )
                .await
                .map_err(|e| GroupError::Start(e.to_string()))?;
                let founded = raft
                    .is_initialized()
                    .await
                    .map_err(|e| GroupError::Start(e.to_string()))?;
                if !founded {
                    let members = [(SINGLE_NODE, BasicNode::default())];
                    raft.initialize(std::collections::BTreeMap::from(members))
                        .await
                        .map_err(|e| GroupError::Start(e.to_string()))?;
                }
                raft.wait(Some(LEAD_DEADLINE))
                    .metrics(
                        |m| {
                            let applied = m.last_applied.map(|l| l.index);
                            m.current_leader == Some(SINGLE_NODE)
                                && m.state.is_leader()
                                && applied >= m.last_log_index
                                && applied >= log_end
                        },
                        "this node leads and has applied its log",
                    )
                    .await
                    .map_err(|_| GroupError::NoLeader(LEAD_DEADLINE))?;
                Ok::<_, GroupError>(raft)
            })
        })?;
        Ok(Group { raft, tokio })
    }

    /// Until a deposed leader can rebuild its shard from committed state
    /// (not built: a group of one is never deposed), losing the lead
    /// poisons the runtime: its engines may hold records that will never
    /// commit, and nothing built on them may be answered.
    pub fn poison_if_deposed(&self, shared: Arc<Shared>) {
        let mut metrics = self.raft.metrics();
        self.tokio.spawn(async move {
            while metrics.changed().await.is_ok() {
                let state = metrics.borrow().state;
                if matches!(
                    state,
                    ServerState::Follower | ServerState::Candidate | ServerState::Learner
                ) {
                    shared.poison(format!(
                        "this node stopped leading its shard ({state:?}); restart it to rejoin"
                    ));
                    break;
                }
            }
        });
    }

    /// Stops the node and its runtime (on a thread of their own: a tokio
    /// runtime cannot be blocked on, or dropped, inside another).
    pub fn stop(self) {
        let Group { raft, tokio } = self;
        on_own_thread(move || {
            let _ = tokio.block_on(raft.shutdown());
            drop(raft);
            drop(tokio);
        });
    }
}

/// Runs `work` on a scoped thread of its own and returns what it returns.
fn on_own_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
