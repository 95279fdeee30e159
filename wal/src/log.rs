//! `Wal`: the log itself. Opening is always open-or-recover; appends are
//! synced batches; an append that fails poisons the log.
//!
//! Opening walks the batches from the one holding the recovery anchor (the
//! last sequence number a snapshot covers) to the end, checking each batch's
//! hash, its link to the one before, and that sequence numbers continue
//! without a gap, and hands every record after the anchor to the caller (who
//! replays it). A damaged *last* batch is a torn tail, a write that was never
//! acknowledged: it is cut, and the cut is reported. Damage anywhere before
//! the tail, a gap, or a broken link refuses to open, naming the sequence
//! number: the log will not guess about data that was acknowledged.
//! The whole chain, from the first batch, is checked by [`verify`].

use crate::error::{AppendError, OpenError, VerifyError};
use crate::format::{
    BatchBody, Damage, FORMAT_VERSION, GENESIS, Hash, Record, RecordFrame, decode_batch,
    encode_batch,
};
use crate::store::{LogStore, SideWrite};

/// What opening found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Batches read and checked.
    pub batches_checked: u64,
    /// Records handed to the caller (those after the anchor).
    pub records_replayed: u64,
    /// The torn tail that was cut, if any.
    pub cut: Option<TailCut>,
    /// The last sequence number in the log after opening (0 if empty).
    pub last_seq: u64,
}

/// A torn last batch, removed at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// The key (first sequence number) of the batch.
    pub seq: u64,
    /// How many bytes it had.
    pub bytes: usize,
    /// What was wrong with it.
    pub damage: Damage,
}

/// What a full walk of the chain found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainSummary {
    /// Batches in the log.
    pub batches: u64,
    /// Records in the log.
    pub records: u64,
    /// The last sequence number (0 if empty).
    pub last_seq: u64,
    /// The hash of the last batch (the head of the chain).
    pub head: Hash,
}

/// Where the chain stands while walking it.
struct Chain {
    next_seq: u64,
    head: Hash,
}

/// Why a batch does not continue the chain.
enum Problem {
    Damaged(Damage),
    KeyMismatch,
    Gap { expected: u64, found: u64 },
    Broken,
}

impl Problem {
    fn describe(&self) -> String {
        match self {
            Problem::Damaged(damage) => damage.to_string(),
            Problem::KeyMismatch => "stored under another sequence number".into(),
            Problem::Gap { expected, found } => {
                format!("expected sequence {expected}, found {found}")
            }
            Problem::Broken => "does not link to the batch before (hash chain broken)".into(),
        }
    }
}

impl Chain {
    /// Checks that `bytes`, stored under `key`, is the next batch.
    fn accept(&mut self, key: u64, bytes: &[u8]) -> Result<BatchBody, Problem> {
        let (body, hash) = decode_batch(bytes).map_err(Problem::Damaged)?;
        if body.first_seq() != key {
            return Err(Problem::KeyMismatch);
        }
        if body.first_seq() != self.next_seq {
            return Err(Problem::Gap {
                expected: self.next_seq,
                found: body.first_seq(),
            });
        }
        if body.prev_hash != self.head {
            return Err(Problem::Broken);
        }
        self.next_seq = body.last_seq() + 1;
        self.head = hash;
        Ok(body)
    }
}

/// The side key under which a log that restarted after a snapshot keeps
/// its origin: the sequence number before its first record and the hash
/// its first batch links to (8 bytes big-endian, then 32).
const ORIGIN_KEY: &[u8] = b"~wal-origin";

/// Where the chain starts: at the genesis, or after the origin of a log
/// that restarted after a snapshot ([`Wal::restart_after`]).
fn origin_chain<S: LogStore>(store: &S) -> std::io::Result<Chain> {
    let Some(bytes) = store.side_get(ORIGIN_KEY)? else {
        return Ok(Chain {
            next_seq: 1,
            head: GENESIS,
        });
    };
    let (seq, head) = bytes
        .split_first_chunk::<8>()
        .and_then(|(seq, head)| Some((u64::from_be_bytes(*seq), Hash::try_from(head).ok()?)))
        .ok_or_else(|| std::io::Error::other("the log's origin is not 40 bytes"))?;
    Ok(Chain {
        next_seq: seq + 1,
        head,
    })
}

/// The last sequence number before the log's first record: 0, or where a
/// log that restarted after a snapshot starts ([`Wal::restart_after`]).
pub fn origin<S: LogStore>(store: &S) -> std::io::Result<u64> {
    Ok(origin_chain(store)?.next_seq - 1)
}

/// The log over a store.
pub struct Wal<S: LogStore> {
    store: S,
    chain: Chain,
    poisoned: Option<String>,
}

impl<S: LogStore> Wal<S> {
    /// Opens (and if needed recovers) the log, handing every record after
    /// `anchor_seq` to `replay` in order. `anchor_seq` is the last sequence
    /// number covered by the snapshot recovery starts from (0 for none).
    pub fn open(
        mut store: S,
        anchor_seq: u64,
        mut replay: impl FnMut(&Record) -> Result<(), crate::error::RefusedRecord>,
    ) -> Result<(Wal<S>, OpenReport), OpenError> {
        let mut report = OpenReport::default();
        let (start, mut chain) = Self::chain_before_anchor(&store, anchor_seq)?;
        let mut torn = None;
        {
            let mut entries = store.scan_from(start).peekable();
            while let Some(entry) = entries.next() {
                let (key, bytes) = entry?;
                let is_last = entries.peek().is_none();
                let body = match chain.accept(key, &bytes) {
                    Ok(body) => body,
                    Err(Problem::Damaged(damage)) if is_last => {
                        torn = Some(TailCut {
                            seq: key,
                            bytes: bytes.len(),
                            damage,
                        });
                        break;
                    }
                    Err(Problem::Damaged(damage)) => {
                        return Err(OpenError::CorruptMiddle { seq: key, damage });
                    }
                    Err(Problem::Gap { expected, found }) => {
                        return Err(OpenError::Gap { expected, found });
                    }
                    Err(Problem::KeyMismatch | Problem::Broken) => {
                        return Err(OpenError::BrokenChain { seq: key });
                    }
                };
                report.batches_checked += 1;
                for frame in body.records.iter().filter(|f| f.record.seq > anchor_seq) {
                    replay(&frame.record).map_err(|reason| OpenError::Refused {
                        seq: frame.record.seq,
                        reason,
                    })?;
                    report.records_replayed += 1;
                }
            }
        }
        if let Some(cut) = torn {
            store.delete_from(cut.seq)?;
            report.cut = Some(cut);
        }
        report.last_seq = chain.next_seq - 1;
        if report.last_seq < anchor_seq {
            return Err(OpenError::ShorterThanSnapshot {
                log_end: report.last_seq,
                anchor: anchor_seq,
            });
        }
        Ok((
            Wal {
                store,
                chain,
                poisoned: None,
            },
            report,
        ))
    }

    /// Where the walk starts (the batch holding the anchor) and the chain
    /// state just before it, read from the batch before that one.
    fn chain_before_anchor(store: &S, anchor_seq: u64) -> Result<(u64, Chain), OpenError> {
        let genesis = origin_chain(store)?;
        if anchor_seq < genesis.next_seq - 1 {
            return Err(OpenError::BeforeOrigin {
                anchor: anchor_seq,
                origin: genesis.next_seq - 1,
            });
        }
        if anchor_seq == 0 {
            return Ok((0, genesis));
        }
        let Some((start, _)) = store.at_or_before(anchor_seq)? else {
            return Ok((0, genesis));
        };
        let Some((before, bytes)) = store.at_or_before(start.saturating_sub(1))? else {
            return Ok((start, genesis));
        };
        if before >= start {
            return Ok((start, genesis));
        }
        let (body, head) = decode_batch(&bytes).map_err(|damage| OpenError::CorruptMiddle {
            seq: before,
            damage,
        })?;
        Ok((
            start,
            Chain {
                next_seq: body.last_seq() + 1,
                head,
            },
        ))
    }

    /// The sequence number the next record must have.
    pub fn next_seq(&self) -> u64 {
        self.chain.next_seq
    }

    /// The hash of the last batch.
    pub fn head(&self) -> Hash {
        self.chain.head
    }

    /// Why the log refuses writes, if it does.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Appends `records` as one batch, durably: it returns only once the
    /// batch is synced. The records must continue the sequence.
    pub fn append(
        &mut self,
        committed_at_ms: u64,
        records: Vec<Record>,
    ) -> Result<(), AppendError> {
        self.append_with(committed_at_ms, records, &[])
    }

    /// Appends `records` as one batch (none is fine) together with `side`
    /// writes, in one durable write (see [`crate::store`]). A failure
    /// poisons the log, as for [`Wal::append`].
    pub fn append_with(
        &mut self,
        committed_at_ms: u64,
        records: Vec<Record>,
        side: &[SideWrite],
    ) -> Result<(), AppendError> {
        if let Some(reason) = &self.poisoned {
            return Err(AppendError::Poisoned(reason.clone()));
        }
        let Some(first) = records.first().map(|r| r.seq) else {
            if side.is_empty() {
                return Ok(());
            }
            if let Err(error) = self.store.write_synced(None, side) {
                self.poisoned = Some(error.to_string());
                return Err(AppendError::Io(error));
            }
            return Ok(());
        };
        let expected = self.chain.next_seq;
        if let Some((offset, record)) = (0u64..).zip(&records).find(|(i, r)| r.seq != expected + i)
        {
            return Err(AppendError::OutOfSequence {
                expected: expected + offset,
                found: record.seq,
            });
        }
        let last = first + records.len() as u64 - 1;
        let body = BatchBody {
            version: FORMAT_VERSION,
            prev_hash: self.chain.head,
            committed_at_ms,
            records: records.into_iter().map(RecordFrame::new).collect(),
        };
        let (bytes, hash) = encode_batch(&body)?;
        if let Err(error) = self.store.write_synced(Some((first, &bytes)), side) {
            self.poisoned = Some(error.to_string());
            return Err(AppendError::Io(error));
        }
        self.chain = Chain {
            next_seq: last + 1,
            head: hash,
        };
        Ok(())
    }

    /// Throws every record away and starts the log over after `last_seq`,
    /// its first batch linking to `head`, together with `side`, in one
    /// durable write: for a replica that installs a snapshot of the state
    /// through `last_seq` taken on another node (the records before it are
    /// in the snapshot, and in the other nodes' logs). A failure poisons
    /// the log.
    pub fn restart_after(
        &mut self,
        last_seq: u64,
        head: Hash,
        side: &[SideWrite],
    ) -> Result<(), AppendError> {
        if let Some(reason) = &self.poisoned {
            return Err(AppendError::Poisoned(reason.clone()));
        }
        let mut origin = last_seq.to_be_bytes().to_vec();
        origin.extend_from_slice(&head);
        let mut writes = side.to_vec();
        writes.push(SideWrite::Put(ORIGIN_KEY.to_vec(), origin));
        if let Err(error) = self.store.reset_synced(&writes) {
            self.poisoned = Some(error.to_string());
            return Err(AppendError::Io(error));
        }
        self.chain = Chain {
            next_seq: last_seq + 1,
            head,
        };
        Ok(())
    }

    /// Removes every record after `seq` (for a point-in-time restore): later
    /// batches are deleted and the batch holding `seq` is rewritten to end
    /// there.
    pub fn truncate_after(&mut self, seq: u64) -> Result<(), AppendError> {
        let holding = self.store.at_or_before(seq).map_err(AppendError::Io)?;
        let origin = origin_chain(&self.store).map_err(AppendError::Io)?;
        if seq < origin.next_seq - 1 {
            return Err(AppendError::Io(std::io::Error::other(format!(
                "the log starts after record {}: it cannot end at {seq}",
                origin.next_seq - 1
            ))));
        }
        let (key, bytes) = match holding {
            Some(entry) if seq > 0 => entry,
            _ => {
                self.store.delete_from(0).map_err(AppendError::Io)?;
                self.chain = origin;
                return Ok(());
            }
        };
        let (mut body, mut head) = decode_batch(&bytes).map_err(|damage| {
            AppendError::Io(std::io::Error::other(format!(
                "batch {key} is damaged: {damage}"
            )))
        })?;
        if body.last_seq() > seq {
            body.records.retain(|f| f.record.seq <= seq);
            let (bytes, hash) = encode_batch(&body)?;
            self.store
                .put_synced(key, &bytes)
                .map_err(AppendError::Io)?;
            head = hash;
        }
        self.store.delete_from(seq + 1).map_err(AppendError::Io)?;
        self.chain = Chain {
            next_seq: body.last_seq() + 1,
            head,
        };
        Ok(())
    }

    /// The records from `seq` on, in order, each checked on its own
    /// (hash and checksums), for inspection and restore.
    pub fn read_from(&self, seq: u64) -> impl Iterator<Item = Result<Record, VerifyError>> + '_ {
        read_from(&self.store, seq)
    }

    /// The store, for tools that read it directly.
    pub fn store(&self) -> &S {
        &self.store
    }
}

/// Reads records from `seq` on from a store (see [`Wal::read_from`]).
pub fn read_from<S: LogStore>(
    store: &S,
    seq: u64,
) -> impl Iterator<Item = Result<Record, VerifyError>> + '_ {
    let start = match store.at_or_before(seq) {
        Ok(found) => found.map_or(0, |(key, _)| key),
        Err(error) => {
            return Box::new(std::iter::once(Err(VerifyError::Io(error))))
                as Box<dyn Iterator<Item = _>>;
        }
    };
    let batches = store.scan_from(start).map(|entry| {
        let (key, bytes) = entry?;
        batch_records(key, &bytes)
    });
    Box::new(records_of(batches).filter(move |r| r.as_ref().map_or(true, |r| r.seq >= seq)))
}

/// Reads records newest first, from the last one at or before `seq` back
/// to the first (for audit queries, which want the latest events and stop
/// early). Each batch is checked on its own, as in [`read_from`]; one
/// reverse seek per batch.
pub fn read_back<S: LogStore>(
    store: &S,
    seq: u64,
) -> impl Iterator<Item = Result<Record, VerifyError>> + '_ {
    let mut next_key = Some(seq);
    let batches = std::iter::from_fn(move || {
        let key = next_key?;
        let found = match store.at_or_before(key) {
            Ok(found) => found?,
            Err(error) => {
                next_key = None;
                return Some(Err(VerifyError::Io(error)));
            }
        };
        let (batch_key, bytes) = found;
        // Batches are keyed by their first record, so the one before this
        // ends just below its key.
        next_key = batch_key.checked_sub(1);
        let records = batch_records(batch_key, &bytes).map(|mut records| {
            records.reverse();
            records
        });
        if records.is_err() {
            // Nothing before a damaged batch can be trusted to follow it.
            next_key = None;
        }
        Some(records)
    });
    records_of(batches).filter(move |r| r.as_ref().map_or(true, |r| r.seq <= seq))
}

/// The records of the batch stored under `key`, checked (hash and
/// checksums); damage is named by the key.
fn batch_records(key: u64, bytes: &[u8]) -> Result<Vec<Record>, VerifyError> {
    decode_batch(bytes)
        .map(|(body, _)| body.records.into_iter().map(|f| f.record).collect())
        .map_err(|damage| VerifyError::Bad {
            seq: key,
            problem: damage.to_string(),
        })
}

/// Decoded batches as one run of records; a batch that failed to decode is
/// one error in the run.
fn records_of(
    batches: impl Iterator<Item = Result<Vec<Record>, VerifyError>>,
) -> impl Iterator<Item = Result<Record, VerifyError>> {
    batches.flat_map(
        |batch| -> Box<dyn Iterator<Item = Result<Record, VerifyError>>> {
            match batch {
                Ok(records) => Box::new(records.into_iter().map(Ok)),
                Err(error) => Box::new(std::iter::once(Err(error))),
            }
        },
    )
}

/// Walks the whole chain from the first batch and names the first bad one.
pub fn verify<S: LogStore>(
    store: &S,
    mut progress: impl FnMut(u64),
) -> Result<ChainSummary, VerifyError> {
    let mut chain = origin_chain(store)?;
    let mut summary = ChainSummary::default();
    for entry in store.scan_from(0) {
        let (key, bytes) = entry?;
        let body = chain
            .accept(key, &bytes)
            .map_err(|problem| VerifyError::Bad {
                seq: key,
                problem: problem.describe(),
            })?;
        summary.batches += 1;
        summary.records += body.records.len() as u64;
        progress(body.last_seq());
    }
    summary.last_seq = chain.next_seq - 1;
    summary.head = chain.head;
    Ok(summary)
}
