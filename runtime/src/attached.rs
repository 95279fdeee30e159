//! State attached to the sale's log: what another layer (the server's
//! accounts, sessions, audit log and settings) keeps replicated through the
//! same Raft group as the sale, without the runtime knowing what it is.
//!
//! Its changes are records of the sale log (`LogEntry::Attached`, opaque
//! bytes) proposed with [`crate::Runtime::attach`]: numbered by the leader's
//! shard, group-committed with the sale's records, replicated, and answered
//! once committed. Unlike the sale's records they are applied **only once
//! committed**, on every node alike (the leader too), by the Raft state
//! machine in log order (`replication.rs`): the attached state never holds
//! a change a deposed leader numbered, so it never rolls back, and a node
//! reads it locally (a session check is no network hop).
//!
//! The state keeps itself (the server's: RocksDB column families, the last
//! record applied written in the same batch). At start the runtime replays
//! the committed attached records it missed (a crash between the log's
//! sync and the state's write) from the log; a member that lags behind the
//! purged log gets it inside the group's snapshot ([`AttachedState::freeze`]
//! on the sender, [`AttachedState::restore`] on the receiver, before the
//! log starts over after that snapshot).

use std::fmt;
use std::sync::Arc;

use ingressoja_wal::{LogStore, Record};

use crate::log_entry::{LogEntry, is_attached};

/// One committed change to the attached state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedRecord {
    /// Its record's number in the sale log.
    pub seq: u64,
    /// What the layer proposed.
    pub bytes: Vec<u8>,
}

/// Encodes the state as it was when frozen (run off the state machine).
pub type Thaw = Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>;

/// See the module documentation. Every method may block briefly (a
/// database write); none may wait on the runtime.
pub trait AttachedState: Send + Sync {
    /// The last record applied (0: none).
    fn applied_seq(&self) -> u64;
    /// Applies committed records, in log order, each after
    /// [`AttachedState::applied_seq`]. An error stops the node: its state
    /// would no longer be the log's.
    fn apply(&self, records: &[AttachedRecord]) -> Result<(), String>;
    /// Freezes the state as applied now (cheaply: the state machine waits)
    /// and returns what encodes it later, for the group's snapshot.
    fn freeze(&self) -> Result<Thaw, String>;
    /// Replaces the state with one another node encoded through record
    /// `seq` (`None`: it had none, the empty state), durably.
    fn restore(&self, seq: u64, encoded: Option<&[u8]>) -> Result<(), String>;
}

/// The attached state a runtime is started with ([`crate::RuntimeOptions`]).
#[derive(Clone)]
pub struct Attached(pub Arc<dyn AttachedState>);

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("applied_seq", &self.0.applied_seq())
            .finish()
    }
}

/// The attached records among `records` after record `after`, decoded.
/// A record tagged attached that does not decode is an error: the log
/// holds something this build cannot apply.
pub(crate) fn pick<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    after: u64,
) -> Result<Vec<AttachedRecord>, String> {
    let mut picked = Vec::new();
    for record in records {
        if record.seq <= after || !is_attached(&record.payload) {
            continue;
        }
        match LogEntry::decode(&record.payload) {
            Ok(LogEntry::Attached(bytes)) => picked.push(AttachedRecord {
                seq: record.seq,
                bytes,
            }),
            Ok(_) => unreachable!("the tag names only attached records"),
            Err(error) => return Err(format!("record {}: {error}", record.seq)),
        }
    }
    Ok(picked)
}

/// Records applied per call while catching up at start.
const CATCH_UP_CHUNK: usize = 1_024;

/// Applies to `state` the committed attached records of the log in `store`
/// after the last it applied, through record `through` (what recovery
/// replayed: committed). The state may lag the log after a crash between
/// the log's sync and the state's own write; it must not lag behind the
/// log's origin, whose records this node never had.
pub(crate) fn catch_up<S: LogStore>(
    store: &S,
    state: &dyn AttachedState,
    through: u64,
) -> Result<u64, String> {
    let from = state.applied_seq();
    if from >= through {
        return Ok(0);
    }
    let origin = ingressoja_wal::origin(store).map_err(|e| e.to_string())?;
    if from < origin {
        return Err(format!(
            "the attached state ends at record {from}, before the log's origin {origin}"
        ));
    }
    let mut applied = 0;
    let mut chunk = Vec::new();
    for record in ingressoja_wal::read_from(store, from + 1) {
        let record = record.map_err(|e| format!("reading the log: {e}"))?;
        if record.seq > through {
            break;
        }
        chunk.extend(pick(std::iter::once(&record), from)?);
        if chunk.len() >= CATCH_UP_CHUNK {
            applied += chunk.len() as u64;
            state.apply(&std::mem::take(&mut chunk))?;
        }
    }
    applied += chunk.len() as u64;
    if !chunk.is_empty() {
        state.apply(&chunk)?;
    }
    Ok(applied)
}
