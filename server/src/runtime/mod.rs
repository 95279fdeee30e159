//! The durable runtime: a shard thread that owns the events, a log writer
//! thread that group-commits, and a snapshot thread, started after recovery.
//!
//! A request goes: caller → bounded channel → shard (apply, number the
//! transitions as log records) → writer (one synced append for everything
//! queued) → reply. A reply is sent only once its transitions are durable,
//! so nothing acknowledged is ever lost; a full channel refuses new requests
//! at once (`Overloaded`, which the HTTP layer turns into 503).
//!
//! - `shard.rs`: the shard loop, ticks, snapshots triggers.
//! - `writer.rs`: group commit and poisoning.
//! - `snapshotter.rs`: writes snapshots once the log covers them.
//! - `recovery.rs`: snapshot + log replay at start; `ShardState`.
//! - `shared.rs`: the durability watermark and figures.
//! - `log_entry.rs`: what a log record holds; `clock.rs`: time sources;
//!   `data_dir.rs`: the data directory's layout.

pub mod clock;
pub mod data_dir;
pub mod log_entry;
pub mod recovery;
mod shard;
pub mod shared;
mod snapshotter;
mod writer;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use ingressoja_engine::{Command, ConfigError, Engine, EventConfig, Outcome, Transition};
use ingressoja_wal::LogStore;
use tokio::sync::oneshot;

pub use clock::{Clock, ManualClock, SystemClock};
pub use data_dir::DataDir;
pub use log_entry::{EventId, LogEntry};
pub use recovery::{RecoveryReport, ShardState};
pub use shared::RuntimeStats;
pub use writer::Notice;

/// Notices buffered per subscriber before it lags.
pub const NOTICE_BUFFER: usize = 65_536;

/// Knobs of the runtime, with defaults sized for a 2-core machine.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// The data directory.
    pub data_dir: PathBuf,
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
}

impl RuntimeOptions {
    /// The defaults, for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> RuntimeOptions {
        RuntimeOptions {
            data_dir: data_dir.into(),
            queue_capacity: 65_536,
            max_batch: 4_096,
            writer_queue: 64,
            snapshot_every_records: 1_000_000,
            snapshot_every_ms: 5 * 60_000,
            snapshots_kept: 3,
        }
    }
}

/// A read the shard runs on an event's engine right after applying a
/// command to it (see [`Runtime::submit_then`]).
pub type AfterApply = Box<dyn FnOnce(&Engine) + Send>;

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
}

pub(crate) enum Request {
    Apply {
        event: EventId,
        command: Command,
        /// The client's address, for a fan's own request (logged with the
        /// transitions it causes).
        from: Option<IpAddr>,
        /// A read of the event right after the command (see [`AfterApply`]).
        after: Option<AfterApply>,
        reply: oneshot::Sender<Result<Applied, RuntimeError>>,
    },
    CreateEvent {
        config: Box<EventConfig>,
        reply: oneshot::Sender<Result<EventId, RuntimeError>>,
    },
    Read(Box<dyn FnOnce(&ShardState) + Send>),
    Snapshot {
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Shutdown,
}

/// A running shard with its writer and snapshot threads.
pub struct Runtime {
    requests: Sender<Request>,
    shared: Arc<shared::Shared>,
    threads: Vec<JoinHandle<()>>,
    recovery: RecoveryReport,
    /// The database, for online backups (absent when started on another store).
    db: Option<Arc<rocksdb::DB>>,
    snapshots_path: PathBuf,
    /// Durable changes, for server-sent events.
    notices: writer::Notices,
}

impl Runtime {
    /// Recovers the data directory and starts the threads.
    pub fn start(options: RuntimeOptions, clock: Arc<dyn Clock>) -> Result<Runtime, StartError> {
        let data = DataDir::create(&options.data_dir)?;
        let db = data.open_db()?;
        let store = DataDir::wal_store(db.clone())?;
        let mut runtime = Runtime::start_on(store, options, clock)?;
        runtime.db = Some(db);
        Ok(runtime)
    }

    /// Like [`Runtime::start`], with the log in `store` (tests inject faults
    /// through it); snapshots still live in the data directory.
    pub fn start_on<S: LogStore + 'static>(
        store: S,
        options: RuntimeOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Runtime, StartError> {
        let data = DataDir::create(&options.data_dir)?;
        let snapshots = data.snapshots(options.snapshots_kept)?;
        let (state, wal, recovery) = recovery::recover(store, &snapshots)?;
        log_recovery(&recovery);
        let shared = Arc::new(shared::Shared::new(recovery.last_seq));
        let (requests, request_rx) = crossbeam_channel::bounded(options.queue_capacity);
        let (writer_tx, writer_rx) = crossbeam_channel::bounded(options.writer_queue);
        let (snapshot_tx, snapshot_rx) = crossbeam_channel::bounded(2);
        let now = clock.now_ms();
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
        };
        let (notices, _) = tokio::sync::broadcast::channel(NOTICE_BUFFER);
        let writer_notices = notices.clone();
        let writer_shared = shared.clone();
        let snapshot_shared = shared.clone();
        let threads = vec![
            spawn("ingressoja-shard", move || shard.run(request_rx))?,
            spawn("ingressoja-wal", move || {
                writer::run(wal, writer_rx, writer_shared, writer_notices)
            })?,
            spawn("ingressoja-snap", move || {
                snapshotter::run(snapshots, snapshot_rx, snapshot_shared)
            })?,
        ];
        Ok(Runtime {
            requests,
            shared,
            threads,
            recovery,
            db: None,
            snapshots_path: data.snapshots_path(),
            notices,
        })
    }

    /// The database (absent when started on another store), shared with
    /// accounts, sessions, the audit log and settings.
    pub fn db(&self) -> Option<Arc<rocksdb::DB>> {
        self.db.clone()
    }

    /// What recovery found at start.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Queues a command; the receiver gets the outcome once it is durable.
    /// A full queue refuses at once with [`RuntimeError::Overloaded`].
    pub fn submit(
        &self,
        event: EventId,
        command: Command,
    ) -> Result<oneshot::Receiver<Result<Applied, RuntimeError>>, RuntimeError> {
        self.submit_from(event, command, None)
    }

    /// [`Runtime::submit`] for a fan's request from `from`: the transitions
    /// it causes for that fan are logged with the address.
    pub fn submit_from(
        &self,
        event: EventId,
        command: Command,
        from: Option<IpAddr>,
    ) -> Result<oneshot::Receiver<Result<Applied, RuntimeError>>, RuntimeError> {
        self.submit_then(event, command, from, None)
    }

    /// [`Runtime::submit_from`], and `after` runs on the event's engine
    /// right after the command is applied (on the shard, before anything
    /// else touches the event): the answer's view of the state costs no
    /// second trip through the shard's queue, and shows exactly the state
    /// the command left. It must be a quick read; its result should only be
    /// used once the durable reply has come.
    pub fn submit_then(
        &self,
        event: EventId,
        command: Command,
        from: Option<IpAddr>,
        after: Option<AfterApply>,
    ) -> Result<oneshot::Receiver<Result<Applied, RuntimeError>>, RuntimeError> {
        let (reply, receiver) = oneshot::channel();
        self.offer(Request::Apply {
            event,
            command,
            from,
            after,
            reply,
        })?;
        Ok(receiver)
    }

    /// Applies a command and waits for its durable outcome (not for use
    /// inside an async runtime).
    pub fn apply(&self, event: EventId, command: Command) -> Result<Applied, RuntimeError> {
        self.submit(event, command)?
            .blocking_recv()
            .map_err(|_| RuntimeError::Stopped)?
    }

    /// Creates an event; returns its id once its creation is durable.
    pub fn create_event(&self, config: EventConfig) -> Result<EventId, RuntimeError> {
        let (reply, receiver) = oneshot::channel();
        self.offer(Request::CreateEvent {
            config: Box::new(config),
            reply,
        })?;
        receiver
            .blocking_recv()
            .map_err(|_| RuntimeError::Stopped)?
    }

    /// Runs a read on the shard's state (it may include changes not yet
    /// durable: reads are advisory, acknowledgements are not).
    pub fn read<R: Send + 'static>(
        &self,
        read: impl FnOnce(&ShardState) -> R + Send + 'static,
    ) -> Result<R, RuntimeError> {
        let (reply, receiver) = oneshot::channel();
        self.offer(Request::Read(Box::new(move |state| {
            let _ = reply.send(read(state));
        })))?;
        receiver.blocking_recv().map_err(|_| RuntimeError::Stopped)
    }

    /// Queues a read of the shard's state; the receiver gets its result
    /// (for async callers; see [`Runtime::read`] about durability).
    pub fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&ShardState) -> R + Send + 'static,
    ) -> Result<oneshot::Receiver<R>, RuntimeError> {
        let (reply, receiver) = oneshot::channel();
        self.offer(Request::Read(Box::new(move |state| {
            let _ = reply.send(read(state));
        })))?;
        Ok(receiver)
    }

    /// Queues an event's creation; the receiver gets its id once durable.
    pub fn submit_event(
        &self,
        config: EventConfig,
    ) -> Result<oneshot::Receiver<Result<EventId, RuntimeError>>, RuntimeError> {
        let (reply, receiver) = oneshot::channel();
        self.offer(Request::CreateEvent {
            config: Box::new(config),
            reply,
        })?;
        Ok(receiver)
    }

    /// Queues a snapshot; the receiver gets the sequence number it covers
    /// once written (for async callers).
    pub fn request_snapshot(&self) -> Result<oneshot::Receiver<Result<u64, String>>, RuntimeError> {
        let (reply, receiver) = oneshot::channel();
        self.offer(Request::Snapshot { reply })?;
        Ok(receiver)
    }

    /// Takes a snapshot now; returns the sequence number it covers once written.
    pub fn snapshot(&self) -> Result<u64, RuntimeError> {
        let (reply, receiver) = oneshot::channel();
        self.offer(Request::Snapshot { reply })?;
        match receiver.blocking_recv() {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(reason)) => Err(RuntimeError::Durability(reason)),
            Err(_) => Err(RuntimeError::Stopped),
        }
    }

    /// Writes a consistent backup to `target` while the sale runs.
    pub fn backup(&self, target: &std::path::Path) -> Result<(), crate::ops::backup::BackupError> {
        let db = self.db.as_ref().ok_or_else(|| {
            crate::ops::backup::BackupError::Checkpoint(
                "this runtime's log is not in RocksDB".into(),
            )
        })?;
        crate::ops::backup::create_backup(db, &self.snapshots_path, target)
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
    }

    fn offer(&self, request: Request) -> Result<(), RuntimeError> {
        match self.requests.try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(RuntimeError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(RuntimeError::Stopped),
        }
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
