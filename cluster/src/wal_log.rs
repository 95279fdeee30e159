//! A shard's Raft log kept in its write-ahead log (`ingressoja_wal`).
//!
//! The records of every replicated batch are the sale log's own records,
//! under their own sequence numbers, in the same hash-chained, checksummed
//! batches as on a single node: every tool that reads the sale log (audit,
//! restore, the fan's trail) reads a replica's log unchanged. What Raft says
//! about each entry (its log id, and which records it holds, or that it is
//! a blank or membership entry) is kept in the log's side keyspace, written
//! in the same durable write as the records; the vote, the last purged log
//! id and the last known commit live there too.
//!
//! Appends are written in the call, one batch with one sync per call, and
//! openraft is told they are flushed only after the sync. openraft 0.9
//! waits for each append's flush before it appends again, and hands over
//! in one call every client write that queued meanwhile: that is the group
//! commit, and a writer thread of our own would only add two thread hops to
//! every commit (measured: p50 commit latency 40 ms with one under load on
//! two cores). A failed write poisons the log and is reported to openraft,
//! which stops the node rather than guess what reached the disk. Writes
//! are serialized by a lock; readers read the newest entries from memory
//! (`recent_entries.rs`: openraft reads each entry back right after
//! appending it) and the rest from the store.
//!
//! Records already in the log when it first opens as a Raft log (a single
//! node's sale from before replication) are its *base*: the Raft log
//! starts after them.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use ingressoja_wal::{LogStore, OpenError, Record, SideWrite, Wal, read_from};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, Membership, OptionalSend, RaftLogReader, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::recent_entries::{self, RecentEntries};
use crate::types::{NodeId, ShardBatch, ShardRaft};

/// Keys of the side keyspace.
mod key {
    pub const BASE: &[u8] = b"b";
    pub const COMMITTED: &[u8] = b"c";
    pub const ENTRIES: &[u8] = b"e";
    pub const ENTRIES_END: &[u8] = b"f";
    pub const PURGED: &[u8] = b"p";
    pub const PURGED_MEMBERSHIP: &[u8] = b"m";
    pub const SNAPSHOT: &[u8] = b"s";
    pub const VOTE: &[u8] = b"v";

    /// Entries sort by index: `e` and the index, big-endian.
    pub fn entry(index: u64) -> Vec<u8> {
        let mut key = ENTRIES.to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        key
    }
}

/// What the side keyspace says about one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct EntryMeta {
    log_id: LogId<NodeId>,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    Blank,
    Membership(Membership<NodeId, BasicNode>),
    /// A batch as first written, before batches said who numbered them
    /// (read, never written: postcard names variants by position, so the
    /// new form is a variant of its own).
    Records {
        first_seq: u64,
        count: u64,
    },
    /// A batch: `count` records from `first_seq` (none is allowed), and
    /// the tag of the leadership that numbered them
    /// ([`ShardBatch::numbered_by`]).
    Batch {
        first_seq: u64,
        count: u64,
        numbered_by: u64,
    },
}

impl Kind {
    /// The first record and the count, for a batch.
    fn records(&self) -> Option<(u64, u64)> {
        match *self {
            Kind::Records { first_seq, count }
            | Kind::Batch {
                first_seq, count, ..
            } => Some((first_seq, count)),
            Kind::Blank | Kind::Membership(_) => None,
        }
    }

    /// The first record of a batch that has any.
    fn first_seq(&self) -> Option<u64> {
        self.records()
            .and_then(|(first_seq, count)| (count > 0).then_some(first_seq))
    }

    /// The last record of a batch that has any.
    fn last_seq(&self) -> Option<u64> {
        self.records()
            .and_then(|(first_seq, count)| (count > 0).then(|| first_seq + count - 1))
    }
}

/// A log position with the last sale-log record at or before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Through {
    /// The Raft log position.
    pub log_id: LogId<NodeId>,
    /// The last record's sequence number up to there.
    pub seq: u64,
}

/// The group's newest snapshot, kept in the side keyspace: what this node
/// sends a member that lags behind the log's purged entries, and what a
/// node that installed one starts from (see [`WalLog::install_snapshot`]).
/// The bytes are opaque here (the runtime's snapshot file format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// Raft's description: the last entry and the membership it covers.
    pub meta: SnapshotMeta<NodeId, BasicNode>,
    /// The last record it covers.
    pub seq: u64,
    /// The state.
    pub bytes: Vec<u8>,
}

/// The group's newest snapshot held in `store` (see [`StoredSnapshot`]),
/// for recovery, which reads the store before the log opens.
pub fn stored_snapshot<S: LogStore>(store: &S) -> io::Result<Option<StoredSnapshot>> {
    match store.side_get(key::SNAPSHOT)? {
        Some(bytes) => Ok(Some(decode("snapshot", &bytes)?)),
        None => Ok(None),
    }
}

/// What a copy of a Raft log (a backup, a dead node's disk) says about
/// its commit, for a restore that must not bring back what the group may
/// never have committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownCommit {
    /// The last record known committed: the furthest of the commit the log
    /// recorded, its purge mark, its group snapshot and its base. The real
    /// commit may have been further (the record lags a little), never
    /// behind.
    pub seq: u64,
    /// The last record whose entries are gone from the Raft log (purged,
    /// or covered by the group snapshot): a restore cannot cut before it.
    pub compacted: u64,
    /// The voters of the newest membership the log holds (one: a single
    /// node's group, whose every flushed record is committed).
    pub voters: usize,
}

/// [`KnownCommit`] for the log in `store`; `None` when it is not a Raft log
/// (it never opened as one).
pub fn known_commit<S: LogStore + Clone + Sync + 'static>(
    store: &S,
) -> io::Result<Option<KnownCommit>> {
    let Some(base) = store.side_get(key::BASE)? else {
        return Ok(None);
    };
    let base: u64 = decode("base", &base)?;
    let reader = WalLogReader {
        store: store.clone(),
        recent: Arc::new(Mutex::new(RecentEntries::new(0))),
    };
    let committed: Option<Through> = match store.side_get(key::COMMITTED)? {
        Some(bytes) => Some(decode("commit", &bytes)?),
        None => None,
    };
    let purged = reader.purged()?;
    let snapshot = reader.current_snapshot()?;
    let compacted = purged
        .map(|p| p.seq)
        .max(snapshot.as_ref().map(|s| s.seq))
        .unwrap_or(base);
    let mut membership =
        reader
            .metas(0, None)?
            .into_iter()
            .rev()
            .find_map(|meta| match meta.kind {
                Kind::Membership(membership) => Some(membership),
                _ => None,
            });
    if membership.is_none() {
        let purged = reader.purged_membership()?;
        if purged.log_id().is_some() {
            membership = Some(purged.membership().clone());
        }
    }
    if membership.is_none() {
        membership = snapshot.map(|s| s.meta.last_membership.membership().clone());
    }
    let voters = membership.map_or(0, |m| m.voter_ids().count());
    Ok(Some(KnownCommit {
        seq: committed.map_or(0, |c| c.seq).max(compacted).max(base),
        compacted: compacted.max(base),
        voters,
    }))
}

/// Why the log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum WalLogError {
    /// The write-ahead log itself would not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading or writing the store failed.
    #[error("the Raft log's store failed: {0}")]
    Io(#[from] io::Error),
    /// The side keyspace holds something this version cannot read.
    #[error("the Raft log's entry {0} is unreadable")]
    Unreadable(String),
    /// The side keyspace says there are records the log does not hold.
    #[error("the Raft log says record {claimed} is logged, but the log ends at {ends}")]
    Missing {
        /// The last record the entries name.
        claimed: u64,
        /// The log's last record.
        ends: u64,
    },
}

fn unreadable(what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("unreadable {what}: {error}"))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| unreadable(what, e))
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| unreadable("value to write", e))
}

/// The Raft log over a write-ahead log (see the module documentation).
/// Clones share the writer.
#[derive(Clone)]
pub struct WalLog<S: LogStore + Clone + Sync + 'static> {
    writer: Arc<Mutex<Writer<S>>>,
    reader: WalLogReader<S>,
}

/// Reads entries: the newest from memory, the rest from the store.
#[derive(Clone)]
pub struct WalLogReader<S: LogStore + Clone + Sync + 'static> {
    store: S,
    /// The entries appended last (see `recent_entries.rs`); changed only
    /// under the writer's lock, together with the store.
    recent: Arc<Mutex<RecentEntries>>,
}

/// What opening found.
#[derive(Debug)]
pub struct Opened<S: LogStore + Clone + Sync + 'static> {
    /// The log, ready for openraft.
    pub log: WalLog<S>,
    /// The last commit the log knows of (it may lag the real one: openraft
    /// learns the rest from the leader).
    pub committed: Option<Through>,
    /// The last record before the Raft log began.
    pub base_seq: u64,
    /// Records handed to `replay`.
    pub replayed: u64,
    /// The log's last record after opening (committed or not).
    pub last_seq: u64,
    /// A torn last batch the log cut (a write never acknowledged).
    pub cut: Option<ingressoja_wal::TailCut>,
}

impl<S: LogStore + Clone + Sync + 'static> Debug for WalLog<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalLog")
    }
}

impl<S: LogStore + Clone + Sync + 'static> WalLog<S> {
    /// Opens (and recovers) the log in `store`. `replay` is handed every
    /// record after `anchor_seq` (the last one a snapshot covers) up to the
    /// last known commit, in order: records after it may never commit, and
    /// are applied when openraft says they have. Records that no entry
    /// names (a write whose entries were cut, a crash between a truncation's
    /// two writes) are removed.
    pub fn open(
        store: S,
        anchor_seq: u64,
        mut replay: impl FnMut(&Record) -> Result<(), ingressoja_wal::RefusedRecord>,
    ) -> Result<Opened<S>, WalLogError> {
        let reader = WalLogReader {
            store: store.clone(),
            recent: Arc::new(Mutex::new(RecentEntries::new(recent_entries::MAX_BYTES))),
        };
        let committed: Option<Through> = match reader.store.side_get(key::COMMITTED)? {
            Some(bytes) => Some(decode("commit", &bytes)?),
            None => None,
        };
        let base: Option<u64> = match reader.store.side_get(key::BASE)? {
            Some(bytes) => Some(decode("base", &bytes)?),
            None => None,
        };
        // The base is history from before Raft: committed by definition.
        // With no base recorded yet, the log opens as a Raft log for the
        // first time, and all of it will be the base.
        let replay_upto = match base {
            Some(base) => committed.map_or(base, |c| c.seq.max(base)),
            None => u64::MAX,
        };
        let mut replayed = 0;
        let (mut wal, report) = Wal::open(store, anchor_seq, |record| {
            if record.seq <= replay_upto {
                replayed += 1;
                replay(record)
            } else {
                Ok(())
            }
        })?;
        let logged = wal.next_seq() - 1;
        let base_seq = match base {
            Some(base) => base,
            None => {
                // First opened as a Raft log: what is there is the base.
                let bytes = encode(&logged)?;
                wal.append_with(0, Vec::new(), &[SideWrite::Put(key::BASE.to_vec(), bytes)])
                    .map_err(io::Error::other)?;
                logged
            }
        };
        let named = reader.reconcile(&mut wal, base_seq)?;
        if named > logged {
            return Err(WalLogError::Missing {
                claimed: named,
                ends: logged,
            });
        }
        if named < logged {
            wal.truncate_after(named).map_err(io::Error::other)?;
        }
        // A commit the log no longer holds (cut by a point-in-time
        // restore) is forgotten: openraft must not be told of an entry
        // that is not there.
        let purged = reader.purged()?;
        let committed = match committed {
            Some(through)
                if reader.meta(through.log_id.index)?.map(|m| m.log_id) != Some(through.log_id)
                    && purged.is_none_or(|p| p.log_id < through.log_id) =>
            {
                wal.append_with(
                    0,
                    Vec::new(),
                    // [c, c\0) holds exactly the key `c`.
                    &[SideWrite::DeleteRange(
                        key::COMMITTED.to_vec(),
                        [key::COMMITTED, &[0]].concat(),
                    )],
                )
                .map_err(io::Error::other)?;
                None
            }
            other => other,
        };
        let last_seq = wal.next_seq() - 1;
        let writer = Writer {
            wal,
            reader: reader.clone(),
            committed,
            committed_written: committed,
            base_seq,
            snapshot_covers: None,
        };
        Ok(Opened {
            log: WalLog {
                writer: Arc::new(Mutex::new(writer)),
                reader,
            },
            committed,
            base_seq,
            replayed,
            last_seq,
            cut: report.cut,
        })
    }

    /// Keeps `snapshot` as the group's newest one this node holds (one
    /// durable write; the entries it covers stay until openraft purges
    /// them).
    /// An older one than the log holds (built while a newer one was being
    /// installed) is dropped.
    pub fn save_snapshot(&self, snapshot: &StoredSnapshot) -> io::Result<()> {
        let bytes = encode(snapshot)?;
        let mut writer = self.writer.lock();
        let held = match writer.snapshot_covers {
            Some(covers) => covers,
            None => writer
                .reader
                .current_snapshot()?
                .and_then(|held| held.meta.last_log_id),
        };
        if held.is_some() && held >= snapshot.meta.last_log_id {
            writer.snapshot_covers = Some(held);
            return Ok(());
        }
        writer.write_side(vec![SideWrite::Put(key::SNAPSHOT.to_vec(), bytes)])?;
        writer.snapshot_covers = Some(snapshot.meta.last_log_id);
        Ok(())
    }

    /// Installs a snapshot another node took: after this the log holds it
    /// as its newest, its entries through the snapshot's are purged, and
    /// its commit is at least the snapshot's. If the log has the snapshot's
    /// last entry, its later records stay (they continue the snapshot);
    /// otherwise every record goes and the log starts over after the
    /// snapshot's last one, its chain continuing from `head`. Either way in
    /// one durable write: a crash leaves the log as it was or as installed.
    pub fn install_snapshot(&self, snapshot: &StoredSnapshot, head: [u8; 32]) -> io::Result<()> {
        let Some(last) = snapshot.meta.last_log_id else {
            return Err(io::Error::other("a snapshot of no entry"));
        };
        let through = Through {
            log_id: last,
            seq: snapshot.seq,
        };
        let mut writer = self.writer.lock();
        writer.reader.recent.lock().clear();
        let holds_last = writer.reader.meta(last.index)?.map(|m| m.log_id) == Some(last)
            && writer.reader.seq_through(last.index, writer.base_seq)? == snapshot.seq;
        let side = vec![
            SideWrite::Put(key::SNAPSHOT.to_vec(), encode(snapshot)?),
            SideWrite::Put(key::PURGED.to_vec(), encode(&through)?),
            SideWrite::Put(
                key::PURGED_MEMBERSHIP.to_vec(),
                encode(&snapshot.meta.last_membership)?,
            ),
        ];
        let committed = writer
            .committed
            .filter(|c| c.log_id > last)
            .unwrap_or(through);
        writer.committed = Some(committed);
        // Unknown until the write below is done (a failure poisons the log).
        writer.snapshot_covers = None;
        if holds_last {
            let mut side = side;
            side.push(SideWrite::DeleteRange(
                key::entry(0),
                key::entry(last.index + 1),
            ));
            writer.write_side(side)?;
            writer.snapshot_covers = Some(Some(last));
            return Ok(());
        }
        let mut side = side;
        side.push(SideWrite::DeleteRange(
            key::ENTRIES.to_vec(),
            key::ENTRIES_END.to_vec(),
        ));
        side.push(SideWrite::Put(key::COMMITTED.to_vec(), encode(&committed)?));
        writer.committed_written = Some(committed);
        writer
            .wal
            .restart_after(snapshot.seq, head, &side)
            .map_err(io::Error::other)?;
        writer.snapshot_covers = Some(Some(last));
        Ok(())
    }

    /// The sequence number the log's next record gets: what a leader
    /// numbers its next batch from (every record appended counts, committed
    /// or not).
    pub fn next_seq(&self) -> u64 {
        self.writer.lock().wal.next_seq()
    }

    /// A reader of the log (for the state machine's own lookups).
    pub fn reader(&self) -> WalLogReader<S> {
        self.reader.clone()
    }
}

/// What a state machine holding the records up to some sequence number
/// has applied, in Raft's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedAt {
    /// The last entry applied.
    pub log_id: Option<LogId<NodeId>>,
    /// The membership as of that entry.
    pub membership: StoredMembership<NodeId, BasicNode>,
}

impl<S: LogStore + Clone + Sync + 'static> WalLogReader<S> {
    /// What a state holding every record up to `seq` has applied: each
    /// entry whose records it holds, and entries without records up to
    /// `committed` (an uncommitted entry is never claimed: a new leader may
    /// still cut it). An entry the state holds only part of (a snapshot
    /// taken inside a group commit) is not claimed; openraft applies it
    /// again, and the records already held are skipped by number. Reads
    /// every entry: done once, at start.
    pub fn applied_at(&self, seq: u64, committed: Option<u64>) -> io::Result<AppliedAt> {
        let mut applied = AppliedAt::default();
        if let Some(purged) = self.purged()?
            && purged.seq <= seq
        {
            applied.log_id = Some(purged.log_id);
            applied.membership = self.purged_membership()?;
        }
        for meta in self.metas(0, None)? {
            let claimed = match meta.kind.last_seq() {
                Some(last) => last <= seq,
                None => committed.is_some_and(|c| meta.log_id.index <= c),
            };
            if !claimed {
                break;
            }
            applied.log_id = Some(meta.log_id);
            if let Kind::Membership(membership) = meta.kind {
                applied.membership = StoredMembership::new(Some(meta.log_id), membership);
            }
        }
        Ok(applied)
    }

    fn meta(&self, index: u64) -> io::Result<Option<EntryMeta>> {
        match self.store.side_get(&key::entry(index))? {
            Some(bytes) => Ok(Some(decode("entry", &bytes)?)),
            None => Ok(None),
        }
    }

    fn metas(&self, from: u64, to: Option<u64>) -> io::Result<Vec<EntryMeta>> {
        let end = to.map_or_else(|| key::ENTRIES_END.to_vec(), key::entry);
        self.store
            .side_range(&key::entry(from), &end)?
            .into_iter()
            .map(|(_, bytes)| decode("entry", &bytes))
            .collect()
    }

    /// The last entry's log id (none in an empty log).
    pub fn last_log_id(&self) -> io::Result<Option<LogId<NodeId>>> {
        Ok(self.last_meta()?.map(|m| m.log_id))
    }

    fn last_meta(&self) -> io::Result<Option<EntryMeta>> {
        match self.store.side_last(key::ENTRIES, key::ENTRIES_END)? {
            Some((_, bytes)) => Ok(Some(decode("entry", &bytes)?)),
            None => Ok(None),
        }
    }

    /// The membership as of the last purged entry (its entry is gone).
    fn purged_membership(&self) -> io::Result<StoredMembership<NodeId, BasicNode>> {
        match self.store.side_get(key::PURGED_MEMBERSHIP)? {
            Some(bytes) => decode("purged membership", &bytes),
            None => Ok(StoredMembership::default()),
        }
    }

    /// The group's newest snapshot this node holds.
    pub fn current_snapshot(&self) -> io::Result<Option<StoredSnapshot>> {
        stored_snapshot(&self.store)
    }

    fn purged(&self) -> io::Result<Option<Through>> {
        match self.store.side_get(key::PURGED)? {
            Some(bytes) => Ok(Some(decode("purge mark", &bytes)?)),
            None => Ok(None),
        }
    }

    /// The last record at or before entry `index`.
    fn seq_through(&self, index: u64, base_seq: u64) -> io::Result<u64> {
        let mut at = index;
        loop {
            let meta = self.meta(at)?;
            if let Some(last) = meta.as_ref().and_then(|m| m.kind.last_seq()) {
                return Ok(last);
            }
            match meta {
                Some(_) if at > 0 => at -= 1,
                _ => {
                    let purged = self.purged()?;
                    return Ok(purged.map_or(base_seq, |p| p.seq));
                }
            }
        }
    }

    /// Drops entries that name records the log lost (a torn last write)
    /// and returns the last record the remaining entries name. An entry
    /// the log's end falls inside (only a point-in-time restore cuts there)
    /// is shortened to the records kept, so a restore keeps what it asked
    /// for.
    fn reconcile<L: LogStore>(&self, wal: &mut Wal<L>, base_seq: u64) -> io::Result<u64> {
        let logged = wal.next_seq() - 1;
        while let Some(meta) = self.last_meta()? {
            let named = self.seq_through(meta.log_id.index, base_seq)?;
            if named <= logged {
                return Ok(named);
            }
            let index = meta.log_id.index;
            let shortened = match meta.kind {
                Kind::Records { first_seq, .. } if first_seq <= logged => Some(Kind::Records {
                    first_seq,
                    count: logged - first_seq + 1,
                }),
                Kind::Batch {
                    first_seq,
                    numbered_by,
                    ..
                } if first_seq <= logged => Some(Kind::Batch {
                    first_seq,
                    count: logged - first_seq + 1,
                    numbered_by,
                }),
                _ => None,
            };
            let change = match shortened {
                Some(kind) => {
                    let kept = EntryMeta {
                        log_id: meta.log_id,
                        kind,
                    };
                    SideWrite::Put(key::entry(index), encode(&kept)?)
                }
                _ => SideWrite::DeleteRange(key::entry(index), key::ENTRIES_END.to_vec()),
            };
            wal.append_with(0, Vec::new(), &[change])
                .map_err(io::Error::other)?;
        }
        Ok(self.purged()?.map_or(base_seq, |p| p.seq))
    }

    fn entries(&self, from: u64, to: Option<u64>) -> io::Result<Vec<Entry<ShardRaft>>> {
        let metas = self.metas(from, to)?;
        let first_seq = metas.iter().find_map(|m| m.kind.first_seq());
        let mut records = first_seq
            .map(|seq| read_from(&self.store, seq))
            .into_iter()
            .flatten();
        let mut entries = Vec::with_capacity(metas.len());
        for meta in metas {
            let payload = match meta.kind {
                Kind::Blank => EntryPayload::Blank,
                Kind::Membership(membership) => EntryPayload::Membership(membership),
                Kind::Records { first_seq, count }
                | Kind::Batch {
                    first_seq, count, ..
                } => {
                    let numbered_by = match meta.kind {
                        Kind::Batch { numbered_by, .. } => numbered_by,
                        _ => 0,
                    };
                    let mut batch = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                    for seq in first_seq..first_seq + count {
                        let record = records
                            .next()
                            .ok_or_else(|| io::Error::other(format!("record {seq} is missing")))?
                            .map_err(io::Error::other)?;
                        if record.seq != seq {
                            return Err(io::Error::other(format!(
                                "entry {} names record {seq}, the log has {}",
                                meta.log_id.index, record.seq
                            )));
                        }
                        batch.push(record);
                    }
                    EntryPayload::Normal(ShardBatch {
                        records: batch,
                        numbered_by,
                    })
                }
            };
            entries.push(Entry {
                log_id: meta.log_id,
                payload,
            });
        }
        Ok(entries)
    }
}

fn read_error(error: io::Error) -> StorageError<NodeId> {
    StorageIOError::read_logs(&error).into()
}

fn write_error(error: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&error).into()
}

impl<S: LogStore + Clone + Sync + 'static> RaftLogReader<ShardRaft> for WalLogReader<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<ShardRaft>>, StorageError<NodeId>> {
        let from = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        if to.is_some_and(|to| to <= from) {
            return Ok(Vec::new());
        }
        let cached = to.and_then(|to| self.recent.lock().get(from, to));
        match cached {
            Some(entries) => Ok(entries),
            None => self.entries(from, to).map_err(read_error),
        }
    }
}

impl<S: LogStore + Clone + Sync + 'static> RaftLogReader<ShardRaft> for WalLog<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<ShardRaft>>, StorageError<NodeId>> {
        self.reader.try_get_log_entries(range).await
    }
}

impl<S: LogStore + Clone + Sync + 'static> RaftLogStorage<ShardRaft> for WalLog<S> {
    type LogReader = WalLogReader<S>;

    async fn get_log_state(&mut self) -> Result<LogState<ShardRaft>, StorageError<NodeId>> {
        let purged = self.reader.purged().map_err(read_error)?.map(|p| p.log_id);
        let last = self.reader.last_meta().map_err(read_error)?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.map(|m| m.log_id).or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let bytes = encode(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.writer
            .lock()
            .write_side(vec![SideWrite::Put(key::VOTE.to_vec(), bytes)])
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let bytes = self
            .reader
            .store
            .side_get(key::VOTE)
            .map_err(|e| StorageError::from(StorageIOError::read_vote(&e)))?;
        bytes
            .map(|b| decode("vote", &b))
            .transpose()
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    /// Kept in memory and written with the next append: a commit the log
    /// forgets in a crash is learned again from the leader, and an extra
    /// sync per commit would double the cost of every batch.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.writer.lock().note_commit(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let bytes = self
            .reader
            .store
            .side_get(key::COMMITTED)
            .map_err(read_error)?;
        let committed: Option<Through> = bytes
            .map(|b| decode("commit", &b))
            .transpose()
            .map_err(read_error)?;
        Ok(committed.map(|c| c.log_id))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<ShardRaft>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<ShardRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let written = self
            .writer
            .lock()
            .write_entries(entries.into_iter().collect());
        // Flushed means synced: the callback comes after the write returns.
        callback.log_io_completed(written);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.writer.lock().truncate(log_id).map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.writer.lock().purge(log_id).map_err(write_error)
    }
}

/// What writes the log (behind the lock).
struct Writer<S: LogStore + Clone + Sync + 'static> {
    wal: Wal<S>,
    reader: WalLogReader<S>,
    /// The newest commit openraft reported.
    committed: Option<Through>,
    /// The newest one written.
    committed_written: Option<Through>,
    /// The last record before entry 1 (fixed once the log first opens).
    base_seq: u64,
    /// The last entry the held snapshot covers, once known (`None`: not
    /// read yet). Snapshots are written only under this lock, so after the
    /// first read it is kept here, not decoded from the store again.
    snapshot_covers: Option<Option<LogId<NodeId>>>,
}

impl<S: LogStore + Clone + Sync + 'static> Writer<S> {
    fn note_commit(&mut self, committed: Option<LogId<NodeId>>) {
        let Some(log_id) = committed else { return };
        // A commit is named with the last record it covers, so that opening
        // replays exactly what was committed. Unknown here (not yet
        // written, or purged): wait for a later one.
        let recent = self.reader.recent.lock().seq_through(log_id);
        if let Some(seq) = recent {
            self.committed = Some(Through { log_id, seq });
        } else if let Ok(Some(meta)) = self.reader.meta(log_id.index)
            && meta.log_id == log_id
            && let Ok(seq) = self.reader.seq_through(log_id.index, self.base_seq)
        {
            self.committed = Some(Through { log_id, seq });
        }
    }

    /// Side writes that say when the commit moved on, if it did.
    fn commit_writes(&mut self) -> io::Result<Vec<SideWrite>> {
        let Some(committed) = self.committed else {
            return Ok(Vec::new());
        };
        if self.committed_written == Some(committed) {
            return Ok(Vec::new());
        }
        let bytes = encode(&committed)?;
        self.committed_written = self.committed;
        Ok(vec![SideWrite::Put(key::COMMITTED.to_vec(), bytes)])
    }

    fn write_side(&mut self, mut side: Vec<SideWrite>) -> io::Result<()> {
        side.extend(self.commit_writes()?);
        self.wal
            .append_with(0, Vec::new(), &side)
            .map_err(io::Error::other)
    }

    /// Writes `entries` durably, and keeps them for the reads that follow.
    fn write_entries(&mut self, entries: Vec<Entry<ShardRaft>>) -> io::Result<()> {
        let kept = entries.clone();
        self.write_durably(entries)?;
        self.reader.recent.lock().appended(kept);
        Ok(())
    }

    fn write_durably(&mut self, entries: Vec<Entry<ShardRaft>>) -> io::Result<()> {
        let mut next_seq = self.wal.next_seq();
        let mut records = Vec::new();
        let mut side = Vec::with_capacity(entries.len() + 1);
        let mut stamped_at_ms = 0;
        for entry in entries {
            let kind = match entry.payload {
                EntryPayload::Blank => Kind::Blank,
                EntryPayload::Membership(membership) => Kind::Membership(membership),
                EntryPayload::Normal(batch) => {
                    let first_seq = next_seq;
                    for record in &batch.records {
                        // The leader's records continue its log, and this
                        // log is a prefix of it: anything else is a replica
                        // that would diverge, refused before a byte is
                        // written.
                        if record.seq != next_seq {
                            return Err(io::Error::other(format!(
                                "entry {} starts at record {}, this log continues at {next_seq}",
                                entry.log_id.index, record.seq
                            )));
                        }
                        next_seq += 1;
                        stamped_at_ms = stamped_at_ms.max(record.timestamp_ms);
                    }
                    let count = batch.records.len() as u64;
                    records.extend(batch.records);
                    Kind::Batch {
                        first_seq,
                        count,
                        numbered_by: batch.numbered_by,
                    }
                }
            };
            let meta = EntryMeta {
                log_id: entry.log_id,
                kind,
            };
            side.push(SideWrite::Put(
                key::entry(entry.log_id.index),
                encode(&meta)?,
            ));
        }
        side.extend(self.commit_writes()?);
        self.wal
            .append_with(stamped_at_ms, records, &side)
            .map_err(io::Error::other)
    }

    fn truncate(&mut self, from: LogId<NodeId>) -> io::Result<()> {
        // Forgotten first: no read may find a cut entry in memory once the
        // store has lost it (a failed write poisons the log anyway).
        self.reader.recent.lock().truncated(from.index);
        let cut = self.reader.metas(from.index, None)?;
        let first_seq = cut.iter().find_map(|m| m.kind.first_seq());
        // The entries go first: records no entry names are removed on the
        // next open if the second write is lost.
        self.write_side(vec![SideWrite::DeleteRange(
            key::entry(from.index),
            key::ENTRIES_END.to_vec(),
        )])?;
        if let Some(first_seq) = first_seq {
            self.wal
                .truncate_after(first_seq - 1)
                .map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn purge(&mut self, upto: LogId<NodeId>) -> io::Result<()> {
        // The records stay: the sale log is the audit trail. Only what Raft
        // says about the entries goes.
        let seq = self.reader.seq_through(upto.index, self.base_seq)?;
        let mark = encode(&Through { log_id: upto, seq })?;
        let mut side = vec![
            SideWrite::DeleteRange(key::entry(0), key::entry(upto.index + 1)),
            SideWrite::Put(key::PURGED.to_vec(), mark),
        ];
        // The membership as of the purge goes with it: applied state after
        // a restart names it, and its entry is about to go.
        let membership = self
            .reader
            .metas(0, Some(upto.index + 1))?
            .into_iter()
            .rev()
            .find_map(|meta| match meta.kind {
                Kind::Membership(membership) => {
                    Some(StoredMembership::new(Some(meta.log_id), membership))
                }
                _ => None,
            });
        if let Some(membership) = membership {
            side.push(SideWrite::Put(
                key::PURGED_MEMBERSHIP.to_vec(),
                encode(&membership)?,
            ));
        }
        self.reader.recent.lock().purged(upto.index);
        self.write_side(side)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use ingressoja_wal::{Faults, MemStore};
    use openraft::CommittedLeaderId;

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn record(seq: u64) -> Record {
        Record {
            seq,
            timestamp_ms: 1_000 + seq,
            payload: format!("record {seq}").into_bytes(),
        }
    }

    fn batch(term: u64, index: u64, seqs: std::ops::RangeInclusive<u64>) -> Entry<ShardRaft> {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(ShardBatch {
                records: seqs.map(record).collect(),
                // Each term's leader tags its batches its own way; the
                // round trips below check the tag comes back.
                numbered_by: 1_000 + term,
            }),
        }
    }

    fn blank(term: u64, index: u64) -> Entry<ShardRaft> {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Blank,
        }
    }

    /// A writer over `store`, opened as the log would be (without the
    /// thread: tests call it directly).
    fn writer(store: &MemStore, replayed: &mut Vec<u64>) -> Writer<MemStore> {
        let (wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
        drop(wal);
        let opened = WalLog::open(store.clone(), 0, |r| {
            replayed.push(r.seq);
            Ok(())
        })
        .unwrap();
        drop(opened.log);
        let (wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
        Writer {
            wal,
            reader: WalLogReader {
                store: store.clone(),
                recent: Arc::new(Mutex::new(RecentEntries::new(recent_entries::MAX_BYTES))),
            },
            committed: opened.committed,
            committed_written: opened.committed,
            base_seq: opened.base_seq,
            snapshot_covers: None,
        }
    }

    fn seqs(store: &MemStore) -> Vec<u64> {
        read_from(store, 1).map(|r| r.unwrap().seq).collect()
    }

    #[test]
    fn a_batchs_records_are_the_sale_logs_records_and_read_back_as_entries() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        let entries = vec![blank(1, 1), batch(1, 2, 1..=3), batch(1, 3, 4..=4)];
        w.write_entries(entries.clone()).unwrap();
        assert_eq!(seqs(&store), vec![1, 2, 3, 4]);
        assert_eq!(w.reader.entries(1, None).unwrap(), entries);
        assert_eq!(w.reader.entries(3, Some(4)).unwrap(), entries[2..]);
    }

    #[test]
    fn a_batch_written_before_batches_were_tagged_reads_back_untagged() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2)]).unwrap();
        // What the previous version wrote for the same entry.
        let old = EntryMeta {
            log_id: log_id(1, 1),
            kind: Kind::Records {
                first_seq: 1,
                count: 2,
            },
        };
        w.write_side(vec![SideWrite::Put(key::entry(1), encode(&old).unwrap())])
            .unwrap();
        let mut expected = batch(1, 1, 1..=2);
        if let EntryPayload::Normal(batch) = &mut expected.payload {
            batch.numbered_by = 0;
        }
        assert_eq!(w.reader.entries(1, None).unwrap(), vec![expected]);
    }

    #[test]
    fn a_batch_that_does_not_continue_the_log_is_refused_before_a_byte_is_written() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2)]).unwrap();
        let refused = w.write_entries(vec![batch(1, 2, 3..=3), batch(1, 3, 5..=5)]);
        assert!(refused.unwrap_err().to_string().contains("continues at 4"));
        assert_eq!(seqs(&store), vec![1, 2]);
        assert_eq!(w.reader.entries(1, None).unwrap().len(), 1);
    }

    #[test]
    fn truncating_cuts_the_entries_and_their_records_and_the_log_goes_on_from_there() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2), blank(1, 2), batch(1, 3, 3..=5)])
            .unwrap();
        w.truncate(log_id(1, 2)).unwrap();
        assert_eq!(seqs(&store), vec![1, 2]);
        // A new leader's batch numbers its records from the cut.
        w.write_entries(vec![blank(2, 2), batch(2, 3, 3..=3)])
            .unwrap();
        assert_eq!(seqs(&store), vec![1, 2, 3]);
        let terms: Vec<_> = w
            .reader
            .entries(1, None)
            .unwrap()
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect();
        assert_eq!(terms, vec![(1, 1), (2, 2), (2, 3)]);
    }

    /// What openraft reads: through the reader, memory first.
    fn read(w: &Writer<MemStore>, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut reader = w.reader.clone();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(reader.try_get_log_entries(from..to))
            .unwrap()
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[test]
    fn a_read_after_a_truncation_or_a_purge_is_what_the_store_holds() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2), blank(1, 2), batch(1, 3, 3..=5)])
            .unwrap();
        assert_eq!(read(&w, 1, 4), vec![(1, 1), (1, 2), (1, 3)]);
        w.truncate(log_id(1, 2)).unwrap();
        assert_eq!(read(&w, 1, 4), vec![(1, 1)], "truncated entries read back");
        w.write_entries(vec![blank(2, 2), batch(2, 3, 3..=3)])
            .unwrap();
        assert_eq!(read(&w, 1, 4), vec![(1, 1), (2, 2), (2, 3)]);
        w.purge(log_id(2, 2)).unwrap();
        assert_eq!(read(&w, 1, 4), vec![(2, 3)], "purged entries read back");
        let entries = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(w.reader.clone().try_get_log_entries(3..4))
            .unwrap();
        assert_eq!(
            entries,
            vec![batch(2, 3, 3..=3)],
            "records read back intact"
        );
    }

    #[test]
    fn opening_replays_only_what_was_committed_and_keeps_the_rest_for_raft() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2)]).unwrap();
        w.note_commit(Some(log_id(1, 1)));
        // The commit rides on the next write.
        w.write_entries(vec![batch(1, 2, 3..=4)]).unwrap();
        drop(w);
        let mut replayed = Vec::new();
        let w = writer(&store, &mut replayed);
        assert_eq!(
            replayed,
            vec![1, 2],
            "records 3 and 4 are not known committed"
        );
        assert_eq!(
            w.committed,
            Some(Through {
                log_id: log_id(1, 1),
                seq: 2
            })
        );
        assert_eq!(
            w.reader.entries(1, None).unwrap().len(),
            2,
            "both entries kept"
        );
    }

    #[test]
    fn entries_naming_records_a_torn_write_lost_are_dropped_when_opening() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2)]).unwrap();
        store.inject(Faults {
            tear_next_write_at: Some(5),
            ..Faults::default()
        });
        assert!(w.write_entries(vec![batch(1, 2, 3..=4)]).is_err());
        drop(w);
        let w = writer(&store, &mut Vec::new());
        assert_eq!(seqs(&store), vec![1, 2]);
        let entries = w.reader.entries(1, None).unwrap();
        assert_eq!(entries, vec![batch(1, 1, 1..=2)]);
    }

    #[test]
    fn a_truncation_cut_short_by_a_crash_is_finished_when_opening() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2), batch(1, 2, 3..=5)])
            .unwrap();
        // The truncation's first write (the entries) lands; the crash comes
        // before its second (the records).
        w.write_side(vec![SideWrite::DeleteRange(
            key::entry(2),
            key::ENTRIES_END.to_vec(),
        )])
        .unwrap();
        drop(w);
        let w = writer(&store, &mut Vec::new());
        assert_eq!(seqs(&store), vec![1, 2], "records no entry names are cut");
        assert_eq!(
            w.wal.next_seq(),
            3,
            "the next entry numbers on from the cut"
        );
    }

    #[test]
    fn a_failed_sync_poisons_the_log_for_every_later_write() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        store.inject(Faults {
            fail_next_sync: true,
            ..Faults::default()
        });
        assert!(w.write_entries(vec![batch(1, 1, 1..=1)]).is_err());
        assert!(w.write_entries(vec![batch(1, 1, 1..=1)]).is_err());
        assert!(w.truncate(log_id(1, 1)).is_err());
        assert!(seqs(&store).is_empty());
    }

    #[test]
    fn a_log_from_before_replication_is_the_base_the_raft_log_continues() {
        let store = MemStore::default();
        let (mut wal, _) = Wal::open(store.clone(), 0, |_| Ok(())).unwrap();
        wal.append(1, vec![record(1), record(2)]).unwrap();
        drop(wal);
        let mut replayed = Vec::new();
        let mut w = writer(&store, &mut replayed);
        assert_eq!(replayed, vec![1, 2], "the base is history: replayed");
        assert!(w.reader.entries(0, None).unwrap().is_empty());
        w.write_entries(vec![blank(1, 1), batch(1, 2, 3..=3)])
            .unwrap();
        drop(w);
        // Opened again, nothing is cut: the base is not "records no entry
        // names".
        let w = writer(&store, &mut Vec::new());
        assert_eq!(seqs(&store), vec![1, 2, 3]);
        assert_eq!(w.reader.seq_through(1, 2).unwrap(), 2);
        assert_eq!(w.reader.seq_through(2, 2).unwrap(), 3);
    }

    #[test]
    fn a_point_in_time_restore_keeps_every_record_it_asked_for() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2), batch(1, 2, 3..=6)])
            .unwrap();
        w.note_commit(Some(log_id(1, 2)));
        w.write_entries(vec![blank(1, 3)]).unwrap();
        // The restore cuts records after 4, inside entry 2.
        w.wal.truncate_after(4).unwrap();
        drop(w);
        let mut replayed = Vec::new();
        let w = writer(&store, &mut replayed);
        assert_eq!(seqs(&store), vec![1, 2, 3, 4]);
        assert_eq!(
            w.reader.entries(1, None).unwrap(),
            vec![batch(1, 1, 1..=2), batch(1, 2, 3..=4)]
        );
        // The commit named entry 2 whole; entry 2 is still there (shorter),
        // so it stands, and replay gives what the log holds of it.
        assert_eq!(replayed, vec![1, 2, 3, 4]);
    }

    #[test]
    fn purging_forgets_the_entries_but_keeps_the_sale_log() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![batch(1, 1, 1..=2), batch(1, 2, 3..=3), blank(1, 3)])
            .unwrap();
        w.purge(log_id(1, 2)).unwrap();
        assert_eq!(seqs(&store), vec![1, 2, 3]);
        assert_eq!(w.reader.entries(0, None).unwrap(), vec![blank(1, 3)]);
        assert_eq!(
            w.reader.purged().unwrap(),
            Some(Through {
                log_id: log_id(1, 2),
                seq: 3
            })
        );
        assert_eq!(w.reader.seq_through(3, 0).unwrap(), 3);
    }

    #[test]
    fn a_copy_of_the_log_knows_its_commit_its_compaction_and_its_voters() {
        let store = MemStore::default();
        assert_eq!(known_commit(&store).unwrap(), None, "not a Raft log yet");
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![
            membership_entry(1, 1, &[1, 2, 3]),
            batch(1, 2, 1..=2),
            batch(1, 3, 3..=5),
        ])
        .unwrap();
        w.note_commit(Some(log_id(1, 2)));
        // The commit is written with the next write, which leaves a tail
        // past it that the group may never commit.
        w.write_entries(vec![batch(1, 4, 6..=7)]).unwrap();
        assert_eq!(
            known_commit(&store).unwrap(),
            Some(KnownCommit {
                seq: 2,
                compacted: 0,
                voters: 3
            })
        );
        // Purged through entry 3: committed and compacted through record 5,
        // the membership kept with the purge mark.
        w.purge(log_id(1, 3)).unwrap();
        assert_eq!(
            known_commit(&store).unwrap(),
            Some(KnownCommit {
                seq: 5,
                compacted: 5,
                voters: 3
            })
        );

        let single = MemStore::default();
        let mut w = writer(&single, &mut Vec::new());
        w.write_entries(vec![membership_entry(1, 1, &[1]), batch(1, 2, 1..=1)])
            .unwrap();
        assert_eq!(known_commit(&single).unwrap().unwrap().voters, 1);
    }

    fn membership_entry(term: u64, index: u64, voters: &[NodeId]) -> Entry<ShardRaft> {
        let voters: std::collections::BTreeSet<NodeId> = voters.iter().copied().collect();
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Membership(Membership::new(vec![voters], None)),
        }
    }

    fn snapshot_through(term: u64, index: u64, seq: u64) -> StoredSnapshot {
        let membership = Membership::new(vec![[1, 2, 3].into_iter().collect()], None);
        StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(log_id(term, index)),
                last_membership: StoredMembership::new(Some(log_id(1, 1)), membership),
                snapshot_id: format!("{term}-{index}"),
            },
            seq,
            bytes: b"the state through the snapshot".to_vec(),
        }
    }

    fn open(store: &MemStore, anchor: u64) -> (Opened<MemStore>, Vec<u64>) {
        let mut replayed = Vec::new();
        let opened = WalLog::open(store.clone(), anchor, |r| {
            replayed.push(r.seq);
            Ok(())
        })
        .unwrap();
        (opened, replayed)
    }

    #[test]
    fn a_read_after_a_snapshot_is_installed_is_what_the_store_holds() {
        let store = MemStore::default();
        let (opened, _) = open(&store, 0);
        let w = opened.log.writer.clone();
        w.lock()
            .write_entries(vec![batch(1, 1, 1..=2), batch(1, 2, 3..=3)])
            .unwrap();
        assert_eq!(read(&w.lock(), 1, 3), vec![(1, 1), (1, 2)]);
        opened
            .log
            .install_snapshot(&snapshot_through(3, 40, 100), [9; 32])
            .unwrap();
        assert_eq!(
            read(&w.lock(), 1, 3),
            vec![],
            "entries the snapshot replaced"
        );
    }

    #[test]
    fn a_snapshot_older_than_the_one_held_is_dropped() {
        let store = MemStore::default();
        let (opened, _) = open(&store, 0);
        let held = |log: &WalLog<MemStore>| {
            log.reader()
                .current_snapshot()
                .unwrap()
                .map(|s| s.meta.snapshot_id)
        };
        opened
            .log
            .save_snapshot(&snapshot_through(1, 5, 10))
            .unwrap();
        opened
            .log
            .save_snapshot(&snapshot_through(1, 3, 6))
            .unwrap();
        assert_eq!(held(&opened.log).as_deref(), Some("1-5"));
        opened
            .log
            .save_snapshot(&snapshot_through(1, 7, 12))
            .unwrap();
        assert_eq!(held(&opened.log).as_deref(), Some("1-7"));
        // One installed from the leader counts as held too.
        opened
            .log
            .install_snapshot(&snapshot_through(3, 40, 100), [9; 32])
            .unwrap();
        opened
            .log
            .save_snapshot(&snapshot_through(2, 9, 20))
            .unwrap();
        assert_eq!(held(&opened.log).as_deref(), Some("3-40"));
        drop(opened);
        // Reopened, the held one is read from the store again.
        let (opened, _) = open(&store, 100);
        opened
            .log
            .save_snapshot(&snapshot_through(3, 20, 50))
            .unwrap();
        assert_eq!(held(&opened.log).as_deref(), Some("3-40"));
        opened
            .log
            .save_snapshot(&snapshot_through(3, 41, 101))
            .unwrap();
        assert_eq!(held(&opened.log).as_deref(), Some("3-41"));
    }

    #[test]
    fn a_log_that_lacks_a_snapshots_entry_starts_over_after_it_and_reopens_there() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        // A lagging follower: two records of an old leader, never committed.
        w.write_entries(vec![batch(1, 1, 1..=2)]).unwrap();
        drop(w);
        let (opened, _) = open(&store, 0);
        let snapshot = snapshot_through(3, 40, 100);
        opened.log.install_snapshot(&snapshot, [9; 32]).unwrap();
        assert_eq!(opened.log.next_seq(), 101);
        assert_eq!(seqs(&store), Vec::<u64>::new(), "its old records are gone");
        assert_eq!(ingressoja_wal::origin(&store).unwrap(), 100);
        opened
            .log
            .writer
            .lock()
            .write_entries(vec![batch(3, 41, 101..=102), blank(3, 42)])
            .unwrap();
        opened.log.writer.lock().note_commit(Some(log_id(3, 41)));
        opened
            .log
            .writer
            .lock()
            .write_entries(vec![blank(3, 43)])
            .unwrap();
        drop(opened);

        // Reopened from the snapshot: the committed records after it are
        // replayed, openraft is told what was purged, and the applied state
        // names the snapshot's membership (its entry is long gone).
        let (opened, replayed) = open(&store, 100);
        assert_eq!(replayed, vec![101, 102]);
        let reader = opened.log.reader();
        assert_eq!(reader.current_snapshot().unwrap(), Some(snapshot.clone()));
        assert_eq!(
            reader.purged().unwrap(),
            Some(Through {
                log_id: log_id(3, 40),
                seq: 100
            })
        );
        let applied = reader.applied_at(102, Some(41)).unwrap();
        assert_eq!(applied.log_id, Some(log_id(3, 41)));
        assert_eq!(applied.membership, snapshot.meta.last_membership);
        let entries = reader.entries(0, None).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![41, 42, 43]
        );
        // A snapshot older than where the log starts over is refused.
        assert!(WalLog::open(store.clone(), 50, |_| Ok(())).is_err());
    }

    #[test]
    fn a_log_that_holds_a_snapshots_entry_keeps_its_records_and_forgets_the_entries() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![
            membership_entry(1, 1, &[1, 2, 3]),
            batch(1, 2, 1..=3),
            batch(1, 3, 4..=5),
        ])
        .unwrap();
        drop(w);
        let (opened, _) = open(&store, 0);
        let mut snapshot = snapshot_through(1, 2, 3);
        snapshot.meta.last_membership = StoredMembership::new(
            Some(log_id(1, 1)),
            Membership::new(vec![[1, 2, 3].into_iter().collect()], None),
        );
        opened.log.install_snapshot(&snapshot, [9; 32]).unwrap();
        assert_eq!(seqs(&store), vec![1, 2, 3, 4, 5]);
        assert_eq!(ingressoja_wal::origin(&store).unwrap(), 0);
        let reader = opened.log.reader();
        assert_eq!(
            reader
                .entries(0, None)
                .unwrap()
                .iter()
                .map(|e| e.log_id.index)
                .collect::<Vec<_>>(),
            vec![3]
        );
        drop(opened);
        // Reopened from the snapshot, the commit it implies replays
        // nothing beyond it (entry 3 is not known committed).
        let (_, replayed) = open(&store, 3);
        assert_eq!(replayed, Vec::<u64>::new());
    }

    #[test]
    fn a_log_whose_entry_conflicts_with_the_snapshot_starts_over() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        // Entry 2 of term 1; the snapshot's entry 2 is of term 2.
        w.write_entries(vec![batch(1, 1, 1..=2), batch(1, 2, 3..=6)])
            .unwrap();
        drop(w);
        let (opened, _) = open(&store, 0);
        opened
            .log
            .install_snapshot(&snapshot_through(2, 2, 4), [9; 32])
            .unwrap();
        assert_eq!(seqs(&store), Vec::<u64>::new());
        assert_eq!(opened.log.next_seq(), 5);
    }

    #[test]
    fn purging_keeps_the_membership_for_the_applied_state() {
        let store = MemStore::default();
        let mut w = writer(&store, &mut Vec::new());
        w.write_entries(vec![
            membership_entry(1, 1, &[1, 2]),
            batch(1, 2, 1..=2),
            membership_entry(1, 3, &[1, 2, 3]),
            batch(1, 4, 3..=3),
        ])
        .unwrap();
        w.purge(log_id(1, 3)).unwrap();
        let applied = w.reader.applied_at(3, Some(4)).unwrap();
        assert_eq!(applied.log_id, Some(log_id(1, 4)));
        let voters: Vec<NodeId> = applied.membership.membership().voter_ids().collect();
        assert_eq!(voters, vec![1, 2, 3]);
    }
}
