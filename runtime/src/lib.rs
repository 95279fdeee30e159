//! The durable runtime: a shard thread that owns the events, a log writer
//! task that group-commits (on the Raft group's runtime, beside openraft's
//! core), and a snapshot thread, started after recovery;
//! and the operators' tools over its data (backup, restore, log tools). It
//! knows events, commands and the sale log; nothing of HTTP, JSON or
//! accounts.
//!
//! # API boundary
//! [`Runtime`] is the whole interface of a running sale: every request
//! (`submit`, `submit_then`, `create_event`, `query`, `snapshot`,
//! `start_payment`, `settle_payment`) returns a [`Pending`] answer at once,
//! which async callers `.await` and threads [`Pending::wait`] for. Its
//! errors are [`RuntimeError`]; `subscribe` streams durable changes; the sale
//! log is read through [`SaleLog`], never through the database handle.
//!
//! A request goes: caller → bounded channel → shard (apply, number the
//! transitions as log records) → writer (one synced append for everything
//! queued) → reply. A reply is sent only once its transitions are durable,
//! so nothing acknowledged is ever lost; a full channel refuses new requests
//! at once (`Overloaded`, which the HTTP layer turns into 503).
//!
//! - `shard.rs`: the shard loop, ticks, snapshots triggers.
//! - `writer.rs`: group commit (one Raft entry per group) and poisoning.
//! - `replication.rs`: the shard's log as a Raft group (a single node is a
//!   group of one voter), and the state machine that feeds the shard.
//! - `snapshotter.rs`: writes snapshots once the log covers them.
//! - `recovery.rs`: snapshot + log replay at start; `ShardState`.
//! - `shared.rs`: the durability watermark and figures.
//! - `attached.rs`: the state another layer keeps in the same log (the
//!   server's accounts), applied once committed on every node.
//! - `log_entry.rs`: what a log record holds; `clock.rs`: time sources;
//!   `data_dir.rs`: the data directory's layout; `sale_log.rs`: reading the
//!   sale log while the sale runs.
//! - `backup.rs`, `restore.rs`, `log_tools.rs`: `ingressoja backup`,
//!   `restore`, `wal verify|inspect`; `progress.rs`: their progress bars.

pub mod attached;
pub mod backup;
pub mod clock;
pub mod data_dir;
pub mod log_entry;
pub mod log_tools;
pub mod progress;
mod raft_snapshots;
pub mod recovery;
pub mod replication;
pub mod restore;
pub mod sale_log;
mod shard;
pub mod shared;
mod snapshotter;
mod writer;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use ingressoja_engine::{Command, ConfigError, Engine, EventConfig, Outcome, Transition};
use ingressoja_wal::LogStore;
use tokio::sync::oneshot;

pub use attached::{Attached, AttachedRecord, AttachedState};
pub use clock::{Clock, ManualClock, SystemClock};
pub use data_dir::DataDir;
pub use log_entry::{CheckoutKey, EventId, LogEntry, PendingPayment, Settlement, ShardId};
pub use recovery::{MAX_PENDING_PAYMENTS, RecoveryReport, ShardState};
pub use sale_log::SaleLog;
pub use shared::RuntimeStats;
pub use writer::Notice;

pub use ingressoja_cluster::no_peers::NoPeers;
pub use replication::Member;

/// Notices buffered per subscriber before it lags.
pub const NOTICE_BUFFER: usize = 65_536;

/// Knobs of the runtime, with defaults sized for a 2-core machine.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// This shard's number in the cluster: the high part of the ids of the
    /// events it creates (0 on a single node).
    pub shard: ShardId,
    /// Requests waiting for the shard; beyond this they are refused.
    pub queue_capacity: usize,
    /// Requests the shard applies per batch at most.
    pub max_batch: usize,
    /// Batches waiting for the writer; beyond this the shard waits.
    pub writer_queue: usize,
    /// A snapshot is taken after this many records...
    pub snapshot_every_records: u64,
    /// ...or this long, whichever comes first (if anything changed).
    pub snapshot_every_ms: u64,
    /// Snapshots kept on disk.
    pub snapshots_kept: usize,
    /// Fault injection for tests: the writer waits this long before each
    /// group commit, as a slow disk would, widening the window in which a
    /// change is applied but not yet in the log (0 = off; never set it in
    /// production).
    pub simulated_write_delay_ms: u64,
    /// The state another layer keeps in this log (`attached.rs`), if any.
    pub attached: Option<Attached>,
}

impl RuntimeOptions {
    /// The defaults, for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> RuntimeOptions {
        RuntimeOptions {
            data_dir: data_dir.into(),
            shard: ShardId::default(),
            queue_capacity: 65_536,
            max_batch: 4_096,
            writer_queue: 64,
            snapshot_every_records: 1_000_000,
            snapshot_every_ms: 5 * 60_000,
            snapshots_kept: 3,
            simulated_write_delay_ms: 0,
            attached: None,
        }
    }
}

/// What the shard does once a command's transitions are durable (or known
/// never to be): answer the requester.
type Respond = Box<dyn FnOnce(Result<Applied, RuntimeError>) + Send>;

/// Run by the shard right after applying a command, on the event's engine
/// as the command left it (`None` if there is no such event); it returns
/// how to answer once the command is durable. This is how a command's
/// answer carries a view of the state without a second trip through the
/// shard, and without that view escaping before it is durable.
type AfterApply = Box<dyn FnOnce(Option<&Engine>) -> Respond + Send>;

/// Run by the shard on its state; it returns how to hand the result over
/// once everything the state contained is durable (or known never to be).
type DurableRead = Box<dyn FnOnce(&ShardState) -> writer::Completion + Send>;

/// An answer the runtime sends once it is durable (or why it never will
/// be): `.await` it in async code, [`Pending::wait`] for it on a thread.
/// `Stopped` if the runtime dropped the request.
#[derive(Debug)]
#[must_use = "a request's answer says whether it was applied"]
pub struct Pending<T>(oneshot::Receiver<Result<T, RuntimeError>>);

impl<T> Pending<T> {
    fn channel() -> (oneshot::Sender<Result<T, RuntimeError>>, Pending<T>) {
        let (reply, receiver) = oneshot::channel();
        (reply, Pending(receiver))
    }

    /// Blocks the thread until the answer comes (never inside an async
    /// runtime's worker).
    pub fn wait(self) -> Result<T, RuntimeError> {
        self.0.blocking_recv().map_err(|_| RuntimeError::Stopped)?
    }

    /// The answer if it has come, without waiting (`None`: not yet).
    pub fn try_now(&mut self) -> Option<Result<T, RuntimeError>> {
        match self.0.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(RuntimeError::Stopped)),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, RuntimeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.map_err(|_| RuntimeError::Stopped)?)
    }
}

/// What applying a command gave, once durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The engine's answer.
    pub outcome: Outcome,
    /// What changed (time-driven changes included).
    pub transitions: Vec<Transition>,
    /// The log sequence number of the last record written so far, which
    /// covers these transitions.
    pub last_seq: u64,
}

/// Why a request got no outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The shard's queue is full: shed, retry later.
    #[error("the sale is overloaded; retry shortly")]
    Overloaded,
    /// No event with this id.
    #[error("no event {}", .0.0)]
    UnknownEvent(EventId),
    /// The event configuration was refused.
    #[error("invalid event configuration: {0}")]
    InvalidConfig(ConfigError),
    /// The log failed; nothing more is acknowledged until a restart.
    #[error("the log failed: {0}")]
    Durability(String),
    /// The runtime is shutting down or has stopped.
    #[error("the runtime has stopped")]
    Stopped,
    /// A payment of the same checkout is already in flight.
    #[error("a payment of this checkout is already in progress")]
    PaymentInFlight,
    /// A snapshot could not be written (the sale goes on; the log has
    /// everything).
    #[error("the snapshot failed: {0}")]
    SnapshotFailed(String),
    /// This node does not lead its shard's Raft group (yet): nothing was
    /// applied; retry (through the leader).
    #[error("this node does not lead its shard right now; retry shortly")]
    NotLeader,
    /// This node lost the lead after proposing the change and before it
    /// committed: the next leader may still commit it or drop it. Not to
    /// be sent again blindly (it could be done twice); its effect shows
    /// once the group settles.
    #[error("the lead changed while this was being logged; it may or may not have been made")]
    Deposed,
}

/// Why the runtime did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be used.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// Recovery refused the stored data.
    #[error("recovery failed: {0}")]
    Recovery(#[from] recovery::RecoveryError),
    /// The shard's Raft group would not start.
    #[error(transparent)]
    Group(#[from] replication::GroupError),
    /// A cluster member was started on a single node's data directory,
    /// whose log is a group of one voter: it would lead that group alone
    /// beside the cluster's, and two leaders would sell the same tickets.
    #[error(
        "this data directory holds a single node's sale (a group of one voter); \
         a cluster member needs a directory of its own (moving a single node's \
         sale into a cluster is not built yet)"
    )]
    SingleNodeData,
    /// The attached state could not catch up with the log.
    #[error("the attached state: {0}")]
    Attached(String),
}

pub(crate) enum Request {
    Apply {
        event: EventId,
        command: Command,
        /// The client's address, for a fan's own request (logged with the
        /// transitions it causes).
        from: Option<IpAddr>,
        /// The read right after the command and the answer (see [`AfterApply`]).
        after: AfterApply,
    },
    CreateEvent {
        config: Box<EventConfig>,
        reply: oneshot::Sender<Result<EventId, RuntimeError>>,
    },
    /// A read; its result is handed over only once the log is durable up
    /// to the last record the state it saw contained.
    Read(DurableRead),
    Snapshot {
        reply: oneshot::Sender<Result<u64, RuntimeError>>,
    },
    StartPayment {
        payment: PendingPayment,
        from: Option<IpAddr>,
        reply: oneshot::Sender<Result<PendingPayment, RuntimeError>>,
    },
    SettlePayment {
        payment: PendingPayment,
        settlement: Settlement,
        reply: oneshot::Sender<Result<bool, RuntimeError>>,
    },
    /// A change to the attached state: logged, answered with its record's
    /// number once committed.
    Attach {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<u64, RuntimeError>>,
    },
    /// Records the Raft group committed, for the engines (see
    /// `replication.rs`); answered once they are applied.
    Committed {
        records: Vec<ingressoja_wal::Record>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// This shard now leads and has applied its whole log: it takes writes.
    Lead,
    /// This node no longer leads: it takes no more writes.
    StepDown,
    /// The group's snapshot from another node, installed in the log: the
    /// engines become its state (through record `seq`).
    Install {
        state: Box<recovery::ShardState>,
        seq: u64,
        done: oneshot::Sender<()>,
    },
    /// The state machine met a batch of another leadership while the
    /// engines held this node's own uncommitted ones: back to the
    /// committed state through record `to`, before the batch is applied.
    RollBack {
        to: u64,
    },
    Shutdown,
}

/// A running shard with its writer and snapshot threads.
pub struct Runtime {
    requests: Sender<Request>,
    shared: Arc<shared::Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The shard's Raft group (stopped after the threads).
    group: Option<replication::Group>,
    recovery: RecoveryReport,
    /// The database, for online backups and reading the sale log (absent
    /// when started on another store). Never handed out.
    db: Option<Arc<rocksdb::DB>>,
    snapshots_path: PathBuf,
    /// The data directory.
    data_dir: PathBuf,
    /// Durable changes, for server-sent events.
    notices: writer::Notices,
    /// How many snapshots of the group the shard has taken in place of its
    /// state (see [`Runtime::installs`]).
    installs: tokio::sync::watch::Receiver<u64>,
}

impl Runtime {
    /// Recovers the data directory and starts the threads, with only the
    /// sale in the database (tools, tests, crash load).
    pub fn start(options: RuntimeOptions, clock: Arc<dyn Clock>) -> Result<Runtime, StartError> {
        let db = DataDir::create(&options.data_dir)?.open_db(&[])?;
        Runtime::start_in(db, options, clock)
    }

    /// [`Runtime::start`] on a database the caller opened with the column
    /// families it keeps beside the sale log ([`DataDir::open_db`]): the
    /// server keeps accounts, sessions, its audit log and settings there,
    /// so that one backup checkpoint covers all of them at one instant.
    pub fn start_in(
        db: Arc<rocksdb::DB>,
        options: RuntimeOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Runtime, StartError> {
        let store = DataDir::wal_store(db.clone())?;
        let mut runtime = Runtime::start_on(store, options, clock)?;
        runtime.db = Some(db);
        Ok(runtime)
    }

    /// [`Runtime::start_in`] for a member of a replicated group (see
    /// [`Runtime::start_member`]).
    pub fn start_member_in<N>(
        db: Arc<rocksdb::DB>,
        options: RuntimeOptions,
        clock: Arc<dyn Clock>,
        member: Member<N>,
    ) -> Result<Runtime, StartError>
    where
        N: openraft::network::RaftNetworkFactory<ingressoja_cluster::ShardRaft>,
    {
        let store = DataDir::wal_store(db.clone())?;
        let mut runtime = Runtime::start_member(store, options, clock, member)?;
        runtime.db = Some(db);
        Ok(runtime)
    }

    /// Like [`Runtime::start`], with the log in `store` (tests inject faults
    /// through it); snapshots still live in the data directory. The node
    /// is a group of one voter, and leads before this returns.
    pub fn start_on<S: LogStore + Clone + Sync + 'static>(
        store: S,
        options: RuntimeOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Runtime, StartError> {
        Runtime::launch(store, options, clock, None::<Member<NoPeers>>)
    }

    /// Starts this node as `member` of its shard's replicated group, with
    /// the log in `store`. It follows until the group elects it; a write
    /// sent meanwhile is refused with [`RuntimeError::NotLeader`].
    pub fn start_member<S, N>(
        store: S,
        options: RuntimeOptions,
        clock: Arc<dyn Clock>,
        member: Member<N>,
    ) -> Result<Runtime, StartError>
    where
        S: LogStore + Clone + Sync + 'static,
        N: openraft::network::RaftNetworkFactory<ingressoja_cluster::ShardRaft>,
    {
        Runtime::launch(store, options, clock, Some(member))
    }

    fn launch<S, N>(
        store: S,
        options: RuntimeOptions,
        clock: Arc<dyn Clock>,
        member: Option<Member<N>>,
    ) -> Result<Runtime, StartError>
    where
        S: LogStore + Clone + Sync + 'static,
        N: openraft::network::RaftNetworkFactory<ingressoja_cluster::ShardRaft>,
    {
        let data = DataDir::create(&options.data_dir)?;
        let options_dir = options.data_dir.clone();
        let snapshots = data.snapshots(options.snapshots_kept)?;
        let rebuild_from = (store.clone(), data.snapshots(options.snapshots_kept)?);
        let rebuild: shard::Rebuild = Box::new(move |through| {
            recovery::rebuild_through(&rebuild_from.0, &rebuild_from.1, through)
        });
        let group_snapshots = (store.clone(), data.snapshots(options.snapshots_kept)?);
        let attached_log = store.clone();
        let (state, opened, mut recovery) = recovery::recover(store, &snapshots)?;
        if let Some(attached) = &options.attached {
            let applied = attached::catch_up(&attached_log, &*attached.0, recovery.last_seq)
                .map_err(StartError::Attached)?;
            if applied > 0 {
                tracing::info!(applied, "the attached state caught up with the log");
            }
        }
        let replayed_at_open = recovery.last_seq;
        let applied = opened
            .log
            .reader()
            .applied_at(recovery.last_seq, opened.committed.map(|c| c.log_id.index))
            .map_err(recovery::RecoveryError::Io)?;
        if member.is_some() && replication::is_single_node(&applied.membership) {
            return Err(StartError::SingleNodeData);
        }
        let shared = Arc::new(shared::Shared::new(recovery.last_seq));
        let write_delay = std::time::Duration::from_millis(options.simulated_write_delay_ms);
        let (requests, request_rx) = crossbeam_channel::bounded(options.queue_capacity);
        let (writer_tx, writer_rx) = tokio::sync::mpsc::channel(options.writer_queue.max(1));
        let (snapshot_tx, snapshot_rx) = crossbeam_channel::bounded(2);
        let now = clock.now_ms();
        let (notices, _) = tokio::sync::broadcast::channel(NOTICE_BUFFER);
        let (installs_tx, installs) = tokio::sync::watch::channel(0);
        let machine_clock = clock.clone();
        let attached = options.attached.clone();
        let shard = shard::Shard {
            state,
            next_seq: recovery.last_seq + 1,
            clock,
            writer: writer_tx,
            snapshots: snapshot_tx,
            shared: shared.clone(),
            options,
            last_now_ms: now,
            last_tick_ms: 0,
            records_since_snapshot: 0,
            last_snapshot_ms: now,
            leading: false,
            numbered_by: 0,
            rebuild,
            notices: notices.clone(),
            installs: installs_tx,
        };
        let shard_thread = spawn("ingressoja-shard", move || shard.run(request_rx))?;
        // The shard follows until the group elects this node and it has
        // applied the log's tail that was not known committed.
        let machine = replication::ShardMachine::new(
            requests.clone(),
            shared.clone(),
            applied,
            Arc::new(raft_snapshots::OnDisk {
                log: opened.log.clone(),
                store: group_snapshots.0,
                snapshots: group_snapshots.1,
            }),
            machine_clock,
            attached,
        );
        let alone = member.is_none();
        let (node, group) = match member {
            None => (
                replication::SINGLE_NODE,
                replication::Group::start_alone(opened.log, machine),
            ),
            Some(member) => (
                member.node,
                replication::config(true).and_then(|config| {
                    replication::Group::start(member, opened.log, machine, config)
                }),
            ),
        };
        let stop_shard = || {
            let _ = requests.send(Request::Shutdown);
        };
        let group = match group {
            Ok(group) => group,
            Err(error) => {
                stop_shard();
                let _ = shard_thread.join();
                return Err(error.into());
            }
        };
        group.follow_leadership(node, requests.clone());
        // A single node serves once it leads, as before there was a group.
        if alone && !shared.wait_live(replication::LEAD_DEADLINE) {
            stop_shard();
            let _ = shard_thread.join();
            group.stop();
            return Err(replication::GroupError::NoLeader(replication::LEAD_DEADLINE).into());
        }
        recovery.last_seq = shared.durable_seq();
        recovery.replayed += recovery.last_seq - replayed_at_open;
        recovery.cut = opened.cut;
        log_recovery(&recovery);
        let writer_notices = notices.clone();
        let writer_shared = shared.clone();
        let snapshot_shared = shared.clone();
        // The writer is a task beside openraft's core on the group's
        // runtime, not a thread of its own: a proposal and its answer are
        // then task switches, not thread wake-ups (measured in
        // docs/BENCHMARKS.md: they were a quarter of a commit's time at low
        // concurrency). A thread waits for it, so that stopping joins it as
        // it joins the others.
        let writer_task = group.tokio.spawn(writer::run(
            group.raft.clone(),
            writer_rx,
            writer_shared,
            writer_notices,
            write_delay,
        ));
        let writer_tokio = group.tokio.handle().clone();
        let threads = vec![
            shard_thread,
            spawn("ingressoja-wal", move || {
                if let Err(error) = writer_tokio.block_on(writer_task) {
                    tracing::error!(%error, "the log writer task ended abnormally");
                }
            })?,
            spawn("ingressoja-snap", move || {
                snapshotter::run(snapshots, snapshot_rx, snapshot_shared)
            })?,
        ];
        Ok(Runtime {
            requests,
            shared,
            threads,
            group: Some(group),
            recovery,
            db: None,
            snapshots_path: data.snapshots_path(),
            data_dir: options_dir,
            notices,
            installs,
        })
    }

    /// A reader of the sale log as it is written (absent when started on
    /// another store): for audit queries while the sale runs.
    pub fn sale_log(&self) -> Option<SaleLog> {
        let db = self.db.clone()?;
        SaleLog::open(db).ok()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// What recovery found at start.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Queues a command; its outcome comes once durable. A full queue
    /// refuses at once with [`RuntimeError::Overloaded`]. `from` is the
    /// client's address for a fan's own request: the transitions it causes
    /// for that fan are logged with it.
    pub fn submit(
        &self,
        event: EventId,
        command: Command,
        from: Option<IpAddr>,
    ) -> Result<Pending<Applied>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        self.offer_apply(event, command, from, move |_| {
            Box::new(move |applied| {
                let _ = reply.send(applied);
            })
        })?;
        Ok(pending)
    }

    /// [`Runtime::submit`], and `read` runs on the event's engine right
    /// after the command is applied (on the shard, before anything else
    /// touches the event): the answer's view of the state costs no second
    /// trip through the shard's queue, and shows exactly the state the
    /// command left. The view comes with the durable outcome, never before
    /// it (`None` only if the event does not exist, which the outcome says).
    /// It must be a quick read.
    pub fn submit_then<R: Send + 'static>(
        &self,
        event: EventId,
        command: Command,
        from: Option<IpAddr>,
        read: impl FnOnce(&Engine) -> R + Send + 'static,
    ) -> Result<Pending<(Applied, Option<R>)>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        self.offer_apply(event, command, from, move |engine| {
            let view = engine.map(read);
            Box::new(move |applied| {
                let _ = reply.send(applied.map(|applied| (applied, view)));
            })
        })?;
        Ok(pending)
    }

    fn offer_apply(
        &self,
        event: EventId,
        command: Command,
        from: Option<IpAddr>,
        after: impl FnOnce(Option<&Engine>) -> Respond + Send + 'static,
    ) -> Result<(), RuntimeError> {
        self.offer(Request::Apply {
            event,
            command,
            from,
            after: Box::new(after),
        })
    }

    /// Queues an event's creation; its id comes once the creation is durable.
    pub fn create_event(&self, config: EventConfig) -> Result<Pending<EventId>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        self.offer(Request::CreateEvent {
            config: Box::new(config),
            reply,
        })?;
        Ok(pending)
    }

    /// Queues a read of the shard's state. The shard runs it in turn, but
    /// its result comes only once the log is durable up to the last change
    /// that state contained: nothing a read shows can vanish in a crash (a
    /// fan never sees an order, a ticket code, a hold or a place that a
    /// restart would take back). It costs at most the wait for the group
    /// commit in flight, never an fsync of its own; with nothing pending it
    /// is answered at once. `Durability` if the log failed.
    pub fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&ShardState) -> R + Send + 'static,
    ) -> Result<Pending<R>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        self.offer(Request::Read(Box::new(move |state| {
            let value = read(state);
            Box::new(move |durable: Result<(), RuntimeError>| {
                let _ = reply.send(durable.map(|()| value));
            })
        })))?;
        Ok(pending)
    }

    /// Queues a snapshot; the answer is the sequence number it covers, once
    /// written.
    pub fn snapshot(&self) -> Result<Pending<u64>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        self.offer(Request::Snapshot { reply })?;
        Ok(pending)
    }

    /// Logs that a payment is about to be asked of the gateway; the answer
    /// is the payment as recorded (stamped with the shard's time) once
    /// durable. Refused with `PaymentInFlight` while another payment of the
    /// same checkout is, `Overloaded` beyond [`MAX_PENDING_PAYMENTS`].
    /// `started_at_ms` is ignored; `from` is the fan's address (logged).
    pub fn start_payment(
        &self,
        payment: PendingPayment,
        from: Option<IpAddr>,
    ) -> Result<Pending<PendingPayment>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        self.offer(Request::StartPayment {
            payment,
            from,
            reply,
        })?;
        Ok(pending)
    }

    /// Logs how a started payment ended; the answer is `true` once durable,
    /// or `false` (nothing logged) if it was no longer in flight: someone
    /// else settled it first.
    pub fn settle_payment(
        &self,
        payment: PendingPayment,
        settlement: Settlement,
    ) -> Result<Pending<bool>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        self.offer(Request::SettlePayment {
            payment,
            settlement,
            reply,
        })?;
        Ok(pending)
    }

    /// Logs a change to the attached state (see `attached.rs`); the answer
    /// is its record's number once committed, when this node's attached
    /// state has applied it too (the Raft group answers a proposal after
    /// applying it). `NotLeader` on a node that does not lead.
    pub fn attach(&self, bytes: Vec<u8>) -> Result<Pending<u64>, RuntimeError> {
        self.attacher().attach(bytes)
    }

    /// A handle that logs changes to the attached state, for the layer
    /// that owns it (it cannot hold the runtime it is started with).
    pub fn attacher(&self) -> Attacher {
        Attacher {
            requests: self.requests.clone(),
            shared: self.shared.clone(),
            metrics: self.group.as_ref().map(|group| group.raft.metrics()),
        }
    }

    /// Writes a consistent backup to `target` while the sale runs.
    pub fn backup(&self, target: &std::path::Path) -> Result<(), backup::BackupError> {
        let db = self.db.as_ref().ok_or_else(|| {
            backup::BackupError::Checkpoint("this runtime's log is not in RocksDB".into())
        })?;
        backup::create_backup(db, &self.snapshots_path, target)
    }

    /// Calls `observer(records, micros)` after every group commit, from
    /// the log writer's thread (it must be quick); false if one is set.
    pub fn observe_commits(&self, observer: impl Fn(u64, u64) + Send + Sync + 'static) -> bool {
        self.shared.observe_commits(Box::new(observer))
    }

    /// Figures for metrics.
    pub fn stats(&self) -> RuntimeStats {
        self.shared.stats()
    }

    /// Subscribes to durable changes of every event, in log order.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Counts the group snapshots this node's shard installed in place of
    /// its state (a follower too far behind the leader's purged log).
    /// Such a jump comes with no notices of the changes it skipped: a
    /// subscriber re-reads everything it shows when the count moves, as
    /// after lagging.
    pub fn installs(&self) -> tokio::sync::watch::Receiver<u64> {
        self.installs.clone()
    }

    /// How many requests the shard's channel holds at most.
    pub fn queue_capacity(&self) -> usize {
        self.requests.capacity().unwrap_or(usize::MAX)
    }

    /// Requests waiting for the shard (the channel's depth).
    pub fn queue_depth(&self) -> usize {
        self.requests.len()
    }

    /// The last durable sequence number.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq()
    }

    /// Why the runtime refuses writes, if it does (unhealthy).
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// This node's Raft handle, for the transport that brings the group's
    /// messages to it (and the operators' membership commands).
    pub fn raft(&self) -> Option<openraft::Raft<ingressoja_cluster::ShardRaft>> {
        self.group.as_ref().map(|group| group.raft.clone())
    }

    /// Takes the group's snapshot of everything this node applied, and
    /// has its log's entries through it purged (openraft purges once no
    /// member is being sent them; the sale log's records stay: they are
    /// the audit trail). A member that lags behind the purged entries
    /// catches up from the snapshot. Returns the snapshot's last entry.
    /// A group builds one by itself every
    /// [`replication::SNAPSHOT_EVERY_ENTRIES`] entries; this is for
    /// operators (before adding a node to a long sale) and tests.
    pub fn take_group_snapshot(&self, deadline: std::time::Duration) -> Result<u64, RuntimeError> {
        let group = self.group.as_ref().ok_or(RuntimeError::Stopped)?;
        group
            .take_snapshot(deadline)
            .map_err(RuntimeError::SnapshotFailed)
    }

    /// Whether this node takes writes now (it leads its shard's group and
    /// has applied its whole log).
    pub fn leads(&self) -> bool {
        self.shared.live() != 0
    }

    /// The node leading this shard's group as far as this node knows.
    pub fn leader(&self) -> Option<ingressoja_cluster::NodeId> {
        let group = self.group.as_ref()?;
        group.raft.metrics().borrow().current_leader
    }

    /// Stops accepting requests, lets the shard finish its batch and the
    /// writer flush everything queued, and waits for all threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // A full queue still takes the shutdown request: it waits its turn.
        let _ = self.requests.send(Request::Shutdown);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // Every answer is out (the writer waited for its commits): the
        // group can go.
        if let Some(group) = self.group.take() {
            group.stop();
        }
    }

    fn offer(&self, request: Request) -> Result<(), RuntimeError> {
        match self.requests.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(RuntimeError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(RuntimeError::Stopped),
        }
    }
}

/// [`Runtime::attach`] and who leads, without the runtime (see
/// [`Runtime::attacher`]). Once the runtime stops, every call is refused
/// with `Stopped`.
#[derive(Clone)]
pub struct Attacher {
    requests: Sender<Request>,
    shared: Arc<shared::Shared>,
    metrics: Option<
        tokio::sync::watch::Receiver<
            openraft::RaftMetrics<ingressoja_cluster::NodeId, openraft::BasicNode>,
        >,
    >,
}

impl Attacher {
    /// See [`Runtime::attach`].
    pub fn attach(&self, bytes: Vec<u8>) -> Result<Pending<u64>, RuntimeError> {
        let (reply, pending) = Pending::channel();
        match self.requests.try_send(Request::Attach { bytes, reply }) {
            Ok(()) => Ok(pending),
            Err(TrySendError::Full(_)) => Err(RuntimeError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(RuntimeError::Stopped),
        }
    }

    /// Whether this node's shard takes writes.
    pub fn leads(&self) -> bool {
        self.shared.live() != 0
    }

    /// The node leading the group as far as this node knows.
    pub fn leader(&self) -> Option<ingressoja_cluster::NodeId> {
        self.metrics.as_ref()?.borrow().current_leader
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

fn log_recovery(report: &RecoveryReport) {
    for skipped in &report.skipped_snapshots {
        tracing::warn!(snapshot = %skipped, "skipped an unreadable snapshot");
    }
    if let Some(cut) = &report.cut {
        tracing::warn!(
            from_seq = cut.seq,
            bytes = cut.bytes,
            damage = %cut.damage,
            "cut a torn tail from the log: a batch never acknowledged"
        );
    }
    tracing::info!(
        snapshot_seq = report.snapshot_seq,
        replayed = report.replayed,
        last_seq = report.last_seq,
        duration_ms = report.duration_ms,
        "recovered"
    );
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
}
