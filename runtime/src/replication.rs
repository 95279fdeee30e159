//! The shard's log as a Raft group (openraft, through `ingressoja-cluster`).
//! A single node is a group of one voter on the same code path as a
//! cluster: the writer proposes each group commit as one Raft entry (the
//! batch's sale-log records), the log store (`WalLog`) keeps it in the
//! write-ahead log, and a reply waits for the entry's commit instead of for
//! a bare fsync. With one voter the commit is the local sync.
//!
//! The state machine is the shard's engines, still owned by the shard
//! thread: [`ShardMachine`] hands committed records to it. A leader's
//! shard applies each command as it comes and numbers the records it
//! makes; they are in its engines before they are proposed, so when they
//! commit the machine skips them, knowing them by the tag of the leadership
//! that numbered them ([`ShardBatch::numbered_by`]). Every other batch (a
//! follower's, the log's tail at start, another leader's) is replayed as
//! recovery replays it.
//!
//! A deposed leader's engines may hold records that never commit. They are
//! never answered (a reply waits for its commit) and are thrown away
//! before anything else is applied: when the machine meets a batch of
//! another leadership while the engines hold the node's own, or when the
//! node leads again, the shard rebuilds the committed state (snapshot and
//! log) first. A shard takes writes only once it leads and has applied its
//! whole log, so its next record always continues the log.
//!
//! [`ShardBatch::numbered_by`]: ingressoja_cluster::ShardBatch::numbered_by

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use ingressoja_cluster::wal_log::{AppliedAt, StoredSnapshot};
use ingressoja_cluster::{Applied as EntryApplied, NodeId, ShardBatch, ShardRaft};
use ingressoja_wal::{LogStore, Record};
use openraft::error::{InitializeError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Config, Entry, EntryPayload, LogId, OptionalSend, Raft, RaftSnapshotBuilder,
    ServerState, SnapshotMeta, SnapshotPolicy, StorageError, StorageIOError, StoredMembership,
};

use crate::Request;
use crate::attached::{self, Attached, Thaw};
use crate::clock::Clock;
use crate::raft_snapshots::{self, Snapshots};
use crate::shared::Shared;

/// A single node's id in its group of one.
pub const SINGLE_NODE: NodeId = 1;

/// Whether `membership` is a single node's group of one voter: node
/// [`SINGLE_NODE`] alone, known by no address (a cluster's members are
/// known by their peers address, so a cluster shrunk to node 1 is not).
pub fn is_single_node(membership: &StoredMembership<NodeId, BasicNode>) -> bool {
    let mut nodes = membership.membership().nodes();
    let only = nodes.next();
    nodes.next().is_none()
        && only.is_some_and(|(&id, node)| id == SINGLE_NODE && node.addr.is_empty())
}

/// How long a starting node waits to lead its group of one (an election
/// timeout, then a sync) before giving up.
pub(crate) const LEAD_DEADLINE: Duration = Duration::from_secs(30);

/// Entries between two of the group's snapshots on a replicated node (each
/// entry is a group commit: at a few hundred a second under load, one every
/// minute or so). Entries this far behind are also all a lagging member is
/// sent one by one; beyond that it gets the snapshot.
pub const SNAPSHOT_EVERY_ENTRIES: u64 = 20_000;

/// How long a leader of several voters may go without a majority's
/// answer before its shard stops taking writes (see
/// `Group::follow_leadership`): well beyond the longest election timeout,
/// so a slow heartbeat or two does not interrupt a sale.
pub const QUORUM_SILENCE_MS: u64 = 1_000;

/// Raft's timing for a group: heartbeats well inside the election timeout.
/// (Chosen from measurement when the cluster runs on real networks; a group
/// of one only waits out one election timeout when it starts.) A group of
/// one never builds the group's snapshots: no member needs one, and its own
/// snapshot files are what its recovery starts from.
pub fn config(replicated: bool) -> Result<Arc<Config>, GroupError> {
    let config = Config {
        cluster_name: "ingressoja-shard".into(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: if replicated {
            SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES)
        } else {
            SnapshotPolicy::Never
        },
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
    snapshots: Snapshots,
    clock: Arc<dyn Clock>,
    /// The state another layer keeps in this log (`attached.rs`).
    attached: Option<Attached>,
}

impl ShardMachine {
    /// The shard behind `requests`, whose state has applied `applied`,
    /// with the group's snapshots in `snapshots` and the attached state.
    pub(crate) fn new(
        requests: Sender<Request>,
        shared: Arc<Shared>,
        applied: AppliedAt,
        snapshots: Snapshots,
        clock: Arc<dyn Clock>,
        attached: Option<Attached>,
    ) -> ShardMachine {
        ShardMachine {
            requests,
            shared,
            applied,
            snapshots,
            clock,
            attached,
        }
    }

    /// Applies the attached records of committed `batches` (the leader's
    /// own too: the attached state takes only committed changes), before
    /// anything else learns they are applied: a proposal's answer and a
    /// follower's durable mark both come after this.
    fn apply_attached(&self, batches: &[ShardBatch]) -> Result<(), io::Error> {
        let Some(state) = &self.attached else {
            return Ok(());
        };
        let picked = attached::pick(
            batches.iter().flat_map(|batch| &batch.records),
            state.0.applied_seq(),
        )
        .map_err(io::Error::other)?;
        if picked.is_empty() {
            return Ok(());
        }
        tokio::task::block_in_place(|| state.0.apply(&picked)).map_err(|reason| {
            let reason = format!("the attached state refused committed records: {reason}");
            self.shared.poison(reason.clone());
            io::Error::other(reason)
        })
    }

    /// Sends the shard a request, waiting for room in its bounded channel
    /// without holding up this runtime's other tasks.
    fn send(&self, request: Request) -> Result<(), io::Error> {
        let sent = tokio::task::block_in_place(|| self.requests.send(request).is_ok());
        sent.then_some(())
            .ok_or_else(|| io::Error::other("the shard has stopped"))
    }

    /// Which of `batches` the shard must apply, in order, and whether it
    /// must first go back to the committed state through some record: the
    /// batches of the leadership whose records the engines hold are
    /// skipped (they are there already); the first batch of any other
    /// leadership, while they hold some, means those never commit.
    fn sort_out(&self, batches: Vec<ShardBatch>) -> (Option<u64>, Vec<Record>) {
        let mut holding = self.shared.holding.lock();
        let mut roll_back_to = None;
        let mut records = Vec::new();
        for batch in batches {
            let Some(last) = batch.records.last().map(|r| r.seq) else {
                continue;
            };
            if holding.numbered_by == Some(batch.numbered_by) {
                holding.applied_seq = last;
                continue;
            }
            if holding.numbered_by.take().is_some() {
                roll_back_to = Some(holding.applied_seq);
            }
            records.extend(batch.records);
            holding.applied_seq = last;
        }
        (roll_back_to, records)
    }

    /// Hands committed records to the shard and waits until it has them.
    async fn to_shard(&self, records: Vec<Record>) -> Result<(), io::Error> {
        let (done, applied) = tokio::sync::oneshot::channel();
        self.send(Request::Committed { records, done })?;
        applied
            .await
            .map_err(|_| io::Error::other("the shard has stopped"))?
            .map_err(io::Error::other)
    }
}

fn machine_error(error: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&error).into()
}

fn snapshot_error(
    meta: Option<&SnapshotMeta<NodeId, BasicNode>>,
    error: impl ToString,
) -> StorageError<NodeId> {
    let error = io::Error::other(error.to_string());
    StorageIOError::write_snapshot(meta.map(SnapshotMeta::signature), &error).into()
}

fn into_snapshot(stored: StoredSnapshot) -> Snapshot<ShardRaft> {
    Snapshot {
        meta: stored.meta,
        snapshot: Box::new(io::Cursor::new(stored.bytes)),
    }
}

/// Builds the group's snapshot of the state as applied when it was asked
/// for (see `raft_snapshots.rs`).
pub(crate) struct SnapshotBuilder {
    snapshots: Snapshots,
    clock: Arc<dyn Clock>,
    applied: AppliedAt,
    seq: u64,
    /// The attached state as applied through `seq`, to encode (behind a
    /// lock only because openraft wants the builder `Sync`).
    attached: Option<parking_lot::Mutex<Thaw>>,
}

impl RaftSnapshotBuilder<ShardRaft> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<ShardRaft>, StorageError<NodeId>> {
        let Some(last) = self.applied.log_id else {
            return Err(snapshot_error(
                None,
                "nothing applied to take a snapshot of",
            ));
        };
        let meta = SnapshotMeta {
            last_log_id: Some(last),
            last_membership: self.applied.membership.clone(),
            snapshot_id: format!("{}-{}-{}", last.leader_id.term, last.index, self.seq),
        };
        let snapshots = self.snapshots.clone();
        let (seq, taken_at_ms) = (self.seq, self.clock.now_ms());
        let thaw = self.attached.take().map(parking_lot::Mutex::into_inner);
        let built = tokio::task::spawn_blocking(move || {
            let attached = thaw.map(|thaw| thaw()).transpose()?;
            let stored = snapshots
                .build(seq, taken_at_ms, attached)
                .map(|bytes| StoredSnapshot { meta, seq, bytes });
            match stored {
                Ok(stored) => snapshots.save(&stored).map(|()| stored),
                // The log started over meanwhile (a snapshot from another
                // node was installed): that one is newer, and stands.
                Err(error) => match snapshots.current() {
                    Ok(Some(current)) if current.meta.last_log_id >= Some(last) => Ok(current),
                    _ => Err(error),
                },
            }
        })
        .await
        .map_err(|e| snapshot_error(None, e))?
        .map_err(|e| snapshot_error(None, e))?;
        Ok(into_snapshot(built))
    }
}

impl RaftStateMachine<ShardRaft> for ShardMachine {
    type SnapshotBuilder = SnapshotBuilder;

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
        let mut batches = Vec::new();
        let mut answers = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => batches.push(batch),
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
        // them): skipped, without a trip to the shard. This is not only
        // cheaper: the shard may be waiting on the writer, which waits on
        // this very commit, so asking it would deadlock.
        self.apply_attached(&batches).map_err(machine_error)?;
        let (roll_back_to, records) = self.sort_out(batches);
        if let Some(to) = roll_back_to {
            self.send(Request::RollBack { to }).map_err(machine_error)?;
        }
        if !records.is_empty() {
            self.to_shard(records).await.map_err(machine_error)?;
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Frozen here, between two applies, so that it is the state through
        // the same record as the shard's part; encoded later, off this task.
        // A state that cannot freeze fails the build (openraft tries again
        // at the next snapshot), not the node.
        let attached = self.attached.as_ref().map(|state| {
            let thaw = tokio::task::block_in_place(|| state.0.freeze()).unwrap_or_else(|reason| {
                Box::new(move || Err(format!("the attached state would not freeze: {reason}")))
            });
            parking_lot::Mutex::new(thaw)
        });
        SnapshotBuilder {
            attached,
            snapshots: self.snapshots.clone(),
            clock: self.clock.clone(),
            applied: self.applied.clone(),
            // Every record through the applied entry is committed, in the
            // log, and (on a leader) skipped or (elsewhere) applied.
            seq: self.shared.holding.lock().applied_seq,
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<std::io::Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(io::Cursor::new(Vec::new())))
    }

    /// A snapshot from the leader, for a node that lags behind its purged
    /// log: checked, made durable in the log (which starts over after it
    /// unless it holds its last entry), then handed to the shard, whose
    /// engines become the snapshot's state. A crash in between restarts
    /// from the installed snapshot (see `recovery::base_state`).
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<io::Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let snapshots = self.snapshots.clone();
        let stored_meta = meta.clone();
        let attached_state = self.attached.clone();
        let (state, seq) = tokio::task::spawn_blocking(move || {
            let (state, seq, attached) = raft_snapshots::decode(&bytes)?;
            // The attached state first: a crash before the log starts over
            // leaves it ahead of the log (through a committed record, which
            // the next install or the log's own entries bring the log to),
            // never behind a log that no longer holds what it missed.
            if let Some(state) = &attached_state {
                state.0.restore(seq, attached.as_deref())?;
            }
            let stored = StoredSnapshot {
                meta: stored_meta,
                seq,
                bytes,
            };
            snapshots.install(&stored).map(|()| (state, seq))
        })
        .await
        .map_err(|e| snapshot_error(Some(meta), e))?
        .map_err(|e| snapshot_error(Some(meta), e))?;
        {
            let mut holding = self.shared.holding.lock();
            holding.numbered_by = None;
            holding.applied_seq = seq;
        }
        let (done, installed) = tokio::sync::oneshot::channel();
        self.send(Request::Install {
            state: Box::new(state),
            seq,
            done,
        })
        .map_err(|e| snapshot_error(Some(meta), e))?;
        installed
            .await
            .map_err(|_| snapshot_error(Some(meta), "the shard has stopped"))?;
        self.applied = AppliedAt {
            log_id: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        tracing::info!(
            through = seq,
            entry = meta.last_log_id.map_or(0, |l| l.index),
            "installed the group's snapshot from the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<ShardRaft>>, StorageError<NodeId>> {
        let snapshots = self.snapshots.clone();
        let current = tokio::task::spawn_blocking(move || snapshots.current())
            .await
            .map_err(|e| snapshot_error(None, e))?
            .map_err(|e| snapshot_error(None, e))?;
        Ok(current.map(into_snapshot))
    }
}

/// Threads of a one-voter group's runtime. One: openraft's core, its state
/// machine worker and the log writer then hand a commit to each other as
/// task switches on one thread, not as wake-ups of another (the append's
/// fsync blocks that thread, but nothing else could use it meanwhile with
/// one proposal at a time). Measured in docs/BENCHMARKS.md against two.
const ALONE_WORKERS: usize = 1;

/// Threads of a replicated group's runtime. Two: the replication tasks
/// send a new entry to the followers while the core's append syncs it on
/// the leader's own disk.
const REPLICATED_WORKERS: usize = 2;

/// A running group: the Raft node and the tokio runtime it runs on (its
/// own, apart from the HTTP server's).
pub(crate) struct Group {
    /// The node.
    pub raft: Raft<ShardRaft>,
    /// The runtime openraft's tasks run on.
    pub tokio: tokio::runtime::Runtime,
}

/// How a node takes part in its shard's Raft group.
pub struct Member<N> {
    /// This node's id in the group.
    pub node: NodeId,
    /// Its connections to the other members.
    pub network: N,
    /// The voters that found the group, if this node is one of them: a
    /// new log is initialized with them (every founder with the same
    /// ones, which openraft allows); a log that has a group ignores them.
    /// A node added later starts with `None` and waits to be added.
    pub founders: Option<BTreeMap<NodeId, BasicNode>>,
}

impl Group {
    /// Starts this node in its group over `log`, founding it if asked and
    /// the log is new. Returns once the node runs; leading is for the
    /// group to decide (see [`Group::follow_leadership`]). Runs on a
    /// thread of its own, so a caller inside another tokio runtime may
    /// call it.
    pub fn start<S, N>(
        member: Member<N>,
        log: ingressoja_cluster::wal_log::WalLog<S>,
        machine: ShardMachine,
        config: Arc<Config>,
    ) -> Result<Group, GroupError>
    where
        S: LogStore + Clone + Sync + 'static,
        N: RaftNetworkFactory<ShardRaft>,
    {
        Group::start_on(REPLICATED_WORKERS, member, log, machine, config)
    }

    fn start_on<S, N>(
        workers: usize,
        member: Member<N>,
        log: ingressoja_cluster::wal_log::WalLog<S>,
        machine: ShardMachine,
        config: Arc<Config>,
    ) -> Result<Group, GroupError>
    where
        S: LogStore + Clone + Sync + 'static,
        N: RaftNetworkFactory<ShardRaft>,
    {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("ingressoja-raft")
            .enable_all()
            .build()
            .map_err(|e| GroupError::Start(e.to_string()))?;
        let Member {
            node,
            network,
            founders,
        } = member;
        let raft = on_own_thread(|| {
            tokio.block_on(async {
                let raft = Raft::new(node, config, network, log, machine)
                    .await
                    .map_err(|e| GroupError::Start(e.to_string()))?;
                let founded = raft
                    .is_initialized()
                    .await
                    .map_err(|e| GroupError::Start(e.to_string()))?;
                if let (false, Some(founders)) = (founded, founders) {
                    match raft.initialize(founders).await {
                        // Another founder's membership got here first.
                        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                        Err(error) => return Err(GroupError::Start(error.to_string())),
                    }
                }
                Ok::<_, GroupError>(raft)
            })
        })?;
        Ok(Group { raft, tokio })
    }

    /// Starts a group of one voter (this node) and waits until this node
    /// leads and has applied its whole log.
    pub fn start_alone<S: LogStore + Clone + Sync + 'static>(
        log: ingressoja_cluster::wal_log::WalLog<S>,
        machine: ShardMachine,
    ) -> Result<Group, GroupError> {
        // Everything in the log when it opened must be in the engines
        // before the shard numbers a record of its own (openraft's metrics
        // may say "leader" before they count the log's tail).
        let log_end = log
            .reader()
            .last_log_id()
            .map_err(|e| GroupError::Start(e.to_string()))?
            .map(|l| l.index);
        let member = Member {
            node: SINGLE_NODE,
            network: ingressoja_cluster::no_peers::NoPeers,
            founders: Some(BTreeMap::from([(SINGLE_NODE, BasicNode::default())])),
        };
        let group = Group::start_on(ALONE_WORKERS, member, log, machine, config(false)?)?;
        let led = on_own_thread(|| {
            group
                .tokio
                .block_on(group.raft.wait(Some(LEAD_DEADLINE)).metrics(
                    |m| {
                        let applied = m.last_applied.map(|l| l.index);
                        m.current_leader == Some(SINGLE_NODE)
                            && m.state.is_leader()
                            && applied >= m.last_log_index
                            && applied >= log_end
                    },
                    "this node leads and has applied its log",
                ))
        });
        if led.is_err() {
            group.stop();
            return Err(GroupError::NoLeader(LEAD_DEADLINE));
        }
        Ok(group)
    }

    /// Tells the shard when this node starts and stops leading: it leads
    /// once the group elected it and it has applied its whole log, ending
    /// in an entry of its own term (the blank entry a new leader appends
    /// first; or, for a leader that restarted into the same term, the tail
    /// its previous run wrote); it stops when the group says it no longer
    /// leads.
    pub fn follow_leadership(&self, node: NodeId, requests: Sender<Request>) {
        let mut metrics = self.raft.metrics();
        self.tokio.spawn(async move {
            let mut announced = None;
            loop {
                let (term, leads, caught_up) = {
                    let m = metrics.borrow();
                    // A leader of several voters that has not heard from a
                    // majority for a while is likely cut off (openraft 0.9
                    // has no check-quorum: it would stay leader until it
                    // hears of a higher term). Its shard stops taking writes,
                    // which are refused at once instead of waiting for a
                    // commit that cannot come; it takes them again once the
                    // majority answers and its whole log is applied.
                    let voters = m.membership_config.membership().voter_ids().count();
                    let heard = m
                        .millis_since_quorum_ack
                        .is_none_or(|ms| ms <= QUORUM_SILENCE_MS);
                    let leads = m.state == ServerState::Leader
                        && m.current_leader == Some(node)
                        && (voters <= 1 || heard);
                    // Its whole log applied, not only an entry of its term:
                    // a leader that restarts before anyone else is elected
                    // leads the same term again, and its log's tail (batches
                    // its previous run numbered, never known committed) is
                    // applied only once it commits them. Leading before
                    // would number new records over them.
                    let applied = m.last_applied.map(|l| l.index);
                    let caught_up = m
                        .last_applied
                        .is_some_and(|l| l.leader_id.term == m.current_term)
                        && applied >= m.last_log_index;
                    (m.current_term, leads, caught_up)
                };
                let request = if leads && caught_up && announced != Some(term) {
                    announced = Some(term);
                    Some(Request::Lead)
                } else if !leads && announced.is_some() {
                    announced = None;
                    Some(Request::StepDown)
                } else {
                    None
                };
                if let Some(request) = request
                    && !tokio::task::block_in_place(|| requests.send(request).is_ok())
                {
                    break;
                }
                if metrics.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    /// Builds the group's snapshot of everything applied now, then asks
    /// openraft to purge the entries it covers (see [`Runtime::take_group_snapshot`]).
    /// Returns the snapshot's last entry.
    ///
    /// [`Runtime::take_group_snapshot`]: crate::Runtime::take_group_snapshot
    pub fn take_snapshot(&self, deadline: Duration) -> Result<u64, String> {
        on_own_thread(|| {
            self.tokio.block_on(async {
                let applied = self.raft.metrics().borrow().last_applied.map(|l| l.index);
                self.raft
                    .trigger()
                    .snapshot()
                    .await
                    .map_err(|e| e.to_string())?;
                let built = self
                    .raft
                    .wait(Some(deadline))
                    .metrics(
                        |m| m.snapshot.map(|s| s.index) >= applied,
                        "the snapshot covers what was applied",
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let index = built.snapshot.map_or(0, |s| s.index);
                self.raft
                    .trigger()
                    .purge_log(index)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(index)
            })
        })
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
