//! The audit log: who did what, when and from where, for everything that is
//! not a sale transition: registrations, logins (success and failure),
//! lockouts, two-factor changes, session revocations, and every admin
//! action. Sale transitions are audited by the write-ahead log itself,
//! which records each with its customer and time and is hash-chained the
//! same way; `ingressoja audit verify` checks both chains.
//!
//! Storage: column family `audit` of the sale's database. Entry `seq` is
//! stored under `r` + seq (big endian) as postcard `{entry, prev, seal}`:
//! `seal` is the SHA-256 of the entry and `prev`, and `prev` is the previous
//! entry's seal (zeros for the first); `head` holds the last seq and seal,
//! written in the same batch. A changed byte anywhere in an entry breaks its
//! own seal, so `verify` names exactly that entry; an entry rewritten with a
//! fresh seal breaks the next entry's link (or the head), and removing or
//! reordering entries breaks the sequence. Every append is synced before the action it records is
//! answered.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Column family of the audit log.
pub const AUDIT: &str = "audit";
const HEAD: &[u8] = b"head";

/// One audit entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// What, a stable snake_case name (`login_failed`, `event_paused` …).
    pub action: String,
    /// Who: the account acting, if known.
    pub account: Option<u64>,
    /// The email given (for failures, possibly of no account).
    pub email: Option<String>,
    /// The event concerned, for admin actions on one.
    pub event: Option<u64>,
    /// From where: the client's address.
    pub ip: Option<String>,
    /// Anything else, as short text.
    pub detail: String,
}

/// Who did what, from where: everything an audited action says, before the
/// log numbers, stamps and chains it ([`AuditLog::act`]). Accounts, the
/// operators' endpoints and the command line all audit through this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Action {
    /// What, a stable snake_case name.
    pub name: &'static str,
    /// The account acting, if known.
    pub account: Option<u64>,
    /// The email given or the account's.
    pub email: Option<String>,
    /// The event concerned.
    pub event: Option<u64>,
    /// From where: a client's address, or "command line".
    pub from: String,
    /// Anything else, as short text.
    pub detail: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    entry: Entry,
    prev: [u8; 32],
    seal: [u8; 32],
}

/// The seal of an entry chained to `prev`.
fn seal(entry: &Entry, prev: &[u8; 32]) -> io::Result<[u8; 32]> {
    let bytes = postcard::to_stdvec(&(entry, prev)).map_err(io::Error::other)?;
    Ok(Sha256::digest(&bytes).into())
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct Head {
    seq: u64,
    hash: [u8; 32],
}

/// The first broken link `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq}: {reason}")]
pub struct Broken {
    /// The first entry that fails.
    pub seq: u64,
    /// How.
    pub reason: String,
}

fn to_io(error: rocksdb::Error) -> io::Error {
    io::Error::other(error.into_string())
}

fn entry_key(seq: u64) -> Vec<u8> {
    [b"r".as_slice(), &seq.to_be_bytes()].concat()
}

fn family(db: &DB) -> io::Result<&rocksdb::ColumnFamily> {
    db.cf_handle(AUDIT)
        .ok_or_else(|| io::Error::other(format!("no column family {AUDIT}")))
}

/// Where audit entries go to be numbered, chained and stored: straight
/// into this database ([`AuditChain`], for tools and tests), or through the
/// replicated log (`replicated::Proposer`), which every node applies with
/// its own [`AuditChain`].
pub trait AuditSink: Send + Sync {
    /// Appends `entry` (its `seq` is assigned); durable when this returns.
    fn append(&self, entry: Entry) -> io::Result<u64>;
}

/// Numbers, seals and stores entries in the `audit` column family, each
/// chained to the last.
pub struct AuditChain {
    db: Arc<DB>,
    head: Mutex<Head>,
    synced: WriteOptions,
}

impl AuditChain {
    /// The chain in `db` (which has the `audit` column family).
    pub fn open(db: Arc<DB>) -> io::Result<AuditChain> {
        let head = read_head(&db)?;
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        Ok(AuditChain {
            db,
            head: Mutex::new(head),
            synced,
        })
    }

    /// Reads the head again (the column family was replaced underneath).
    pub fn reload(&self) -> io::Result<()> {
        *self.head.lock() = read_head(&self.db)?;
        Ok(())
    }

    /// Numbers and seals `entry` into `batch`, and calls `write` with it:
    /// the chain moves on only if the write succeeds. Its seq.
    pub fn chain(
        &self,
        mut entry: Entry,
        batch: &mut WriteBatch,
        write: impl FnOnce(&mut WriteBatch) -> io::Result<()>,
    ) -> io::Result<u64> {
        let audit = family(&self.db)?;
        let mut head = self.head.lock();
        entry.seq = head.seq + 1;
        let seq = entry.seq;
        let next = Head {
            seq,
            hash: seal(&entry, &head.hash)?,
        };
        let stored = postcard::to_stdvec(&Stored {
            entry,
            prev: head.hash,
            seal: next.hash,
        })
        .map_err(io::Error::other)?;
        batch.put_cf(audit, entry_key(seq), &stored);
        batch.put_cf(
            audit,
            HEAD,
            postcard::to_stdvec(&next).map_err(io::Error::other)?,
        );
        write(batch)?;
        *head = next;
        Ok(seq)
    }
}

impl AuditSink for AuditChain {
    fn append(&self, entry: Entry) -> io::Result<u64> {
        self.chain(entry, &mut WriteBatch::default(), |batch| {
            self.db
                .write_opt(std::mem::take(batch), &self.synced)
                .map_err(to_io)
        })
    }
}

fn read_head(db: &DB) -> io::Result<Head> {
    match db.get_cf(family(db)?, HEAD).map_err(to_io)? {
        Some(bytes) => postcard::from_bytes(&bytes)
            .map_err(|e| io::Error::other(format!("the audit head is damaged: {e}"))),
        None => Ok(Head::default()),
    }
}

/// The audit log: actions recorded through a sink, queries read locally.
pub struct AuditLog {
    db: Arc<DB>,
    sink: Arc<dyn AuditSink>,
}

impl AuditLog {
    /// The audit log in `db` (which has the `audit` column family),
    /// written straight into it.
    pub fn open(db: Arc<DB>) -> io::Result<AuditLog> {
        let chain = Arc::new(AuditChain::open(db.clone())?);
        Ok(AuditLog { db, sink: chain })
    }

    /// The audit log in `db`, written through `sink`.
    pub fn over(db: Arc<DB>, sink: Arc<dyn AuditSink>) -> AuditLog {
        AuditLog { db, sink }
    }

    /// Records an action, stamped `at_ms`: appended and durable before this
    /// returns; its sequence number.
    pub fn act(&self, at_ms: u64, action: Action) -> io::Result<u64> {
        self.record(Entry {
            seq: 0,
            at_ms,
            action: action.name.into(),
            account: action.account,
            email: action.email,
            event: action.event,
            ip: Some(action.from),
            detail: action.detail,
        })
    }

    /// Appends `entry` (its `seq` is assigned); returns its seq.
    fn record(&self, entry: Entry) -> io::Result<u64> {
        self.sink.append(entry)
    }

    /// Entries matching `filter`, newest first, at most `limit`.
    pub fn query(&self, filter: &Filter, limit: usize) -> io::Result<Vec<Entry>> {
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            family(&self.db)?,
            IteratorMode::From(&entry_key(u64::MAX), Direction::Reverse),
        ) {
            let (key, value) = item.map_err(to_io)?;
            if !key.starts_with(b"r") {
                continue;
            }
            let Ok(stored) = postcard::from_bytes::<Stored>(&value) else {
                continue;
            };
            if filter
                .since_ms
                .is_some_and(|since| stored.entry.at_ms < since)
            {
                break;
            }
            if filter.matches(&stored.entry) {
                found.push(stored.entry);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }
}

/// Which entries a query wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this account's.
    pub account: Option<u64>,
    /// Only entries naming this (normalized) e-mail: those of an e-mail
    /// that has no account (failed logins with it, say).
    pub email: Option<String>,
    /// Only about this event.
    pub event: Option<u64>,
    /// At or after.
    pub since_ms: Option<u64>,
    /// At or before.
    pub until_ms: Option<u64>,
}

impl Filter {
    /// Whether `entry` is one the query wants.
    pub fn matches(&self, entry: &Entry) -> bool {
        self.account.is_none_or(|a| entry.account == Some(a))
            && self
                .email
                .as_ref()
                .is_none_or(|e| entry.email.as_ref() == Some(e))
            && self.event.is_none_or(|e| entry.event == Some(e))
            && self.since_ms.is_none_or(|t| entry.at_ms >= t)
            && self.until_ms.is_none_or(|t| entry.at_ms <= t)
    }
}

/// What `verify` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
}

/// Checks the whole chain in `db`; names the first broken link.
pub fn verify(db: &DB) -> io::Result<Result<Verified, Broken>> {
    let broken = |seq, reason: String| Ok(Err(Broken { seq, reason }));
    let mut prev = [0u8; 32];
    let mut expected = 1;
    for item in db.iterator_cf(family(db)?, IteratorMode::From(b"r", Direction::Forward)) {
        let (key, value) = item.map_err(to_io)?;
        if !key.starts_with(b"r") {
            break;
        }
        let Ok(seq_bytes) = <[u8; 8]>::try_from(&key[1..]) else {
            return broken(expected, "a key of the chain is malformed".into());
        };
        let seq = u64::from_be_bytes(seq_bytes);
        if seq != expected {
            return broken(expected, format!("is missing (the next stored is {seq})"));
        }
        let Ok(stored) = postcard::from_bytes::<Stored>(&value) else {
            return broken(seq, "cannot be read: its bytes were changed".into());
        };
        if stored.entry.seq != seq {
            return broken(seq, format!("says it is record {}", stored.entry.seq));
        }
        if seal(&stored.entry, &stored.prev)? != stored.seal {
            return broken(
                seq,
                "does not match its seal: its bytes were changed".into(),
            );
        }
        if stored.prev != prev {
            return broken(
                seq,
                format!(
                    "does not follow record {}: one of them was rewritten",
                    seq - 1
                ),
            );
        }
        prev = stored.seal;
        expected += 1;
    }
    let last = expected - 1;
    let head: Head = match db.get_cf(family(db)?, HEAD).map_err(to_io)? {
        Some(bytes) => match postcard::from_bytes(&bytes) {
            Ok(head) => head,
            Err(_) => return broken(last, "the chain's head cannot be read".into()),
        },
        None if last == 0 => Head::default(),
        None => return broken(last, "the chain's head is missing".into()),
    };
    if head.seq != last {
        return broken(
            last.min(head.seq) + 1,
            format!("the head says the chain ends at {}", head.seq),
        );
    }
    if head.hash != prev {
        return broken(
            last,
            "does not match the chain's head: it was rewritten".into(),
        );
    }
    Ok(Ok(Verified { entries: last }))
}

/// Entries stamped at or after `since_ms`, oldest first.
pub fn since(db: &DB, since_ms: u64) -> io::Result<impl Iterator<Item = io::Result<Entry>> + '_> {
    let entries = db
        .iterator_cf(family(db)?, IteratorMode::From(b"r", Direction::Forward))
        .map_while(|item| match item {
            Ok((key, value)) if key.starts_with(b"r") => Some(Ok((key, value))),
            Ok(_) => None,
            Err(error) => Some(Err(to_io(error))),
        })
        .filter_map(move |item| {
            let stored = item.and_then(|(key, value)| {
                postcard::from_bytes::<Stored>(&value)
                    .map_err(|e| io::Error::other(format!("audit record {key:?} is damaged: {e}")))
            });
            match stored {
                Ok(stored) if stored.entry.at_ms < since_ms => None,
                Ok(stored) => Some(Ok(stored.entry)),
                Err(error) => Some(Err(error)),
            }
        });
    Ok(entries)
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
mod tests {
    use super::*;

    fn log() -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let db = ingressoja_wal::open_db(dir.path(), &[AUDIT]).unwrap();
        (dir, AuditLog::open(db).unwrap())
    }

    fn entry(at_ms: u64, action: &str, account: u64) -> Entry {
        Entry {
            at_ms,
            action: action.into(),
            account: Some(account),
            ..Entry::default()
        }
    }

    #[test]
    fn a_chain_verifies_and_answers_queries_newest_first() {
        let (_dir, log) = log();
        for i in 1..=5 {
            assert_eq!(log.record(entry(i * 10, "login", i % 2)).unwrap(), i);
        }
        assert_eq!(verify(&log.db).unwrap(), Ok(Verified { entries: 5 }));
        let mine = log
            .query(
                &Filter {
                    account: Some(1),
                    ..Filter::default()
                },
                10,
            )
            .unwrap();
        assert_eq!(
            mine.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![5, 3, 1]
        );
        let recent = log
            .query(
                &Filter {
                    since_ms: Some(30),
                    ..Filter::default()
                },
                2,
            )
            .unwrap();
        assert_eq!(recent.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 4]);
        let exported: Vec<u64> = since(&log.db, 40)
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(exported, vec![4, 5]);
    }

    #[test]
    fn any_changed_byte_names_the_altered_record() {
        for (target, position) in (1..=3u64).flat_map(|t| [(t, 0.0), (t, 0.5), (t, 1.0)]) {
            let (_dir, log) = log();
            for i in 1..=3 {
                log.record(entry(i, "login", 7)).unwrap();
            }
            let audit = family(&log.db).unwrap();
            let mut bytes = log.db.get_cf(audit, entry_key(target)).unwrap().unwrap();
            let at = ((bytes.len() - 1) as f64 * position) as usize;
            bytes[at] ^= 1;
            log.db.put_cf(audit, entry_key(target), bytes).unwrap();
            let broken = verify(&log.db).unwrap().unwrap_err();
            assert_eq!(broken.seq, target, "byte {at}: {broken}");
        }
    }

    #[test]
    fn a_removed_record_is_named_and_reopening_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let db = ingressoja_wal::open_db(dir.path(), &[AUDIT]).unwrap();
        AuditLog::open(db.clone())
            .unwrap()
            .record(entry(1, "a", 1))
            .unwrap();
        let reopened = AuditLog::open(db.clone()).unwrap();
        assert_eq!(reopened.record(entry(2, "b", 1)).unwrap(), 2);
        reopened.record(entry(3, "c", 1)).unwrap();
        assert_eq!(verify(&db).unwrap(), Ok(Verified { entries: 3 }));
        db.delete_cf(family(&db).unwrap(), entry_key(2)).unwrap();
        assert_eq!(verify(&db).unwrap().unwrap_err().seq, 2);
    }
}
