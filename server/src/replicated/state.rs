//! The shared state as this node applied it: the `accounts`, `sessions`,
//! `audit` and `settings` column families, changed only by committed
//! [`Write`]s in log order (the runtime's `AttachedState`), so every node
//! holds the same bytes at the same record. Each change is one RocksDB
//! write that also records the last record applied (`attached:applied` in
//! `settings`); it is not synced, because the log is: after a power cut the
//! runtime replays what the state missed.
//!
//! Reads are local: [`SharedState::accounts`] (sessions, accounts),
//! [`SharedState::settings`]. A node that proposed a change waits here
//! until it has applied it ([`SharedState::wait_applied`]) and reads what
//! applying decided ([`SharedState::outcome`]).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rocksdb::{DB, IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::accounts::store::{
    ACCOUNTS, SESSIONS, account_key, cpf_key, decode, email_key, encode, holder_key, to_io,
};
use crate::accounts::{Account, AccountStore, Accounts};
use crate::audit::{AUDIT, AuditChain};
use crate::http::settings::{SETTINGS_FAMILY, Settings, shared_secret_key};
use crate::runtime::attached::Thaw;
use crate::runtime::{AttachedRecord, AttachedState, EventId};

use super::write::{Outcome, Write};

/// Where the last record applied is kept (in `settings`).
const APPLIED_KEY: &[u8] = b"attached:applied";
/// The settings keys that are shared (the rest, such as this node's
/// proof-of-work key, are the node's own).
const SHARED_SETTINGS: &[&[u8]] = &[b"event:", b"terms:", b"shared-secret:"];
/// Outcomes kept for the nodes that proposed them: far more than can be
/// in flight (a proposer reads its outcome right after applying it).
const OUTCOMES_KEPT: usize = 65_536;

/// See the module documentation.
pub struct SharedState {
    db: Arc<DB>,
    accounts: Accounts,
    audit: AuditChain,
    settings: Arc<Settings>,
    applied: Mutex<u64>,
    applied_moved: Condvar,
    outcomes: Mutex<VecDeque<(u64, Outcome)>>,
    unsynced: WriteOptions,
}

/// The shared state as encoded in the group's snapshot: every key of the
/// shared families.
#[derive(Serialize, Deserialize)]
struct Encoded {
    families: Vec<(String, Vec<Pair>)>,
}

/// A key and its value.
type Pair = (Vec<u8>, Vec<u8>);

fn shared_key(family: &str, key: &[u8]) -> bool {
    family != SETTINGS_FAMILY || SHARED_SETTINGS.iter().any(|p| key.starts_with(p))
}

impl SharedState {
    /// The state in `db` (opened with the server's column families).
    pub fn open(db: Arc<DB>) -> io::Result<Arc<SharedState>> {
        let settings = Arc::new(Settings::open(db.clone())?);
        let applied = applied_position(&db)?;
        Ok(Arc::new(SharedState {
            accounts: Accounts::open(db.clone())?,
            audit: AuditChain::open(db.clone())?,
            settings,
            db,
            applied: Mutex::new(applied),
            applied_moved: Condvar::new(),
            outcomes: Mutex::new(VecDeque::new()),
            unsynced: WriteOptions::default(),
        }))
    }

    /// Accounts and sessions, read locally.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The events' security settings, read locally.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    /// Waits until record `seq` is applied here, at most `wait`; whether it
    /// is.
    pub fn wait_applied(&self, seq: u64, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut applied = self.applied.lock();
        while *applied < seq {
            if self
                .applied_moved
                .wait_until(&mut applied, until)
                .timed_out()
            {
                return *applied >= seq;
            }
        }
        true
    }

    /// What applying record `seq` decided, if it is still known.
    pub fn outcome(&self, seq: u64) -> Option<Outcome> {
        let outcomes = self.outcomes.lock();
        let at = outcomes.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(outcomes[at].1.clone())
    }

    /// Applies one change: one write with the position.
    fn apply_one(&self, seq: u64, write: Write) -> io::Result<Outcome> {
        let mut batch = WriteBatch::default();
        batch.put_cf(settings_family(&self.db)?, APPLIED_KEY, seq.to_be_bytes());
        let commit = |batch: &mut WriteBatch| {
            self.db
                .write_opt(std::mem::take(batch), &self.unsynced)
                .map_err(to_io)
        };
        let outcome = match write {
            Write::CreateAccount {
                email,
                password_hash,
                admin,
                created_ms,
            } => {
                let family = family(&self.db, ACCOUNTS)?;
                if self.accounts.find(&email)?.is_some() {
                    Outcome::Taken
                } else {
                    let id = self.accounts.next_id()?;
                    let account = Account {
                        id,
                        email: email.clone(),
                        password_hash,
                        admin,
                        created_ms,
                        epoch: 0,
                        two_factor: None,
                    };
                    batch.put_cf(family, email_key(&email), id.to_be_bytes());
                    batch.put_cf(family, account_key(id), encode(&account)?);
                    batch.put_cf(family, b"next", (id + 1).to_be_bytes());
                    Outcome::Created(id)
                }
            }
            Write::UpdateAccount { before, after } => {
                let stored = self.accounts.get(before.id)?;
                if stored.as_ref() == Some(&*before) && after.id == before.id {
                    batch.put_cf(
                        family(&self.db, ACCOUNTS)?,
                        account_key(after.id),
                        encode(&*after)?,
                    );
                    Outcome::Done
                } else {
                    Outcome::Conflict
                }
            }
            Write::StartSession { key, session } => {
                batch.put_cf(family(&self.db, SESSIONS)?, key, encode(&session)?);
                Outcome::Done
            }
            Write::EndSession { key } => {
                batch.delete_cf(family(&self.db, SESSIONS)?, key);
                Outcome::Done
            }
            Write::Audit(entry) => {
                let seq = self.audit.chain(*entry, &mut batch, commit)?;
                return Ok(Outcome::Audited(seq));
            }
            Write::EventSecurity { event, security } => {
                Settings::put(&self.db, &mut batch, EventId(event), security)?;
                commit(&mut batch)?;
                self.settings.remember(EventId(event), security);
                return Ok(Outcome::Done);
            }
            Write::EventTerms { event, terms } => {
                Settings::put_terms(&self.db, &mut batch, EventId(event), &terms)?;
                commit(&mut batch)?;
                self.settings.remember_terms(EventId(event), terms);
                return Ok(Outcome::Done);
            }
            Write::SharedSecret { name, secret } => {
                // The first secret under a name stays: every node that asked
                // for one reads the same back.
                if self.settings.shared_secret(&name)?.is_none() {
                    batch.put_cf(
                        family(&self.db, SETTINGS_FAMILY)?,
                        shared_secret_key(&name),
                        secret,
                    );
                }
                Outcome::Done
            }
            Write::SetHolder { account, holder } => {
                let accounts = family(&self.db, ACCOUNTS)?;
                let owner = self.accounts.cpf_owner(&holder.cpf_hash)?;
                if self.accounts.get(account)?.is_none() {
                    Outcome::Conflict
                } else if owner.is_some_and(|o| o != account) {
                    Outcome::Taken
                } else if self.accounts.holder(account)?.is_some() {
                    Outcome::Conflict
                } else {
                    batch.put_cf(accounts, cpf_key(&holder.cpf_hash), account.to_be_bytes());
                    batch.put_cf(accounts, holder_key(account), encode(&holder)?);
                    Outcome::Done
                }
            }
        };
        commit(&mut batch)?;
        Ok(outcome)
    }

    /// Marks `seq` applied with `outcome` and wakes whoever waits for it.
    fn applied(&self, seq: u64, outcome: Option<Outcome>) {
        if let Some(outcome) = outcome {
            let mut outcomes = self.outcomes.lock();
            if outcomes.len() >= OUTCOMES_KEPT {
                outcomes.pop_front();
            }
            outcomes.push_back((seq, outcome));
        }
        *self.applied.lock() = seq;
        self.applied_moved.notify_all();
    }

    /// Every shared key, as of `snapshot` (read options carrying it).
    fn encode_all(db: &DB, read: impl Fn() -> ReadOptions) -> Result<Vec<u8>, String> {
        let mut families = Vec::new();
        for name in [ACCOUNTS, SESSIONS, AUDIT, SETTINGS_FAMILY] {
            let cf = db
                .cf_handle(name)
                .ok_or_else(|| format!("no column family {name}"))?;
            let mut pairs = Vec::new();
            for item in db.iterator_cf_opt(cf, read(), IteratorMode::Start) {
                let (key, value) = item.map_err(|e| e.into_string())?;
                if shared_key(name, &key) {
                    pairs.push((key.into_vec(), value.into_vec()));
                }
            }
            families.push((name.to_owned(), pairs));
        }
        postcard::to_stdvec(&Encoded { families }).map_err(|e| e.to_string())
    }
}

/// The last record the shared state in the (stopped) database at
/// `db_path` applied: a backup's, before it is restored. 0 when it has
/// none (a backup from before the state moved into the log).
pub fn applied_in(db_path: &std::path::Path) -> io::Result<u64> {
    let families = DB::list_cf(&rocksdb::Options::default(), db_path).map_err(to_io)?;
    if !families.iter().any(|f| f == SETTINGS_FAMILY) {
        return Ok(0);
    }
    let db = ingressoja_wal::rocks::open_db_read_only(db_path, &[SETTINGS_FAMILY])?;
    applied_position(&db)
}

/// The last record the shared state in `db` applied (0: none).
fn applied_position(db: &DB) -> io::Result<u64> {
    match db
        .get_cf(settings_family(db)?, APPLIED_KEY)
        .map_err(to_io)?
    {
        Some(bytes) => Ok(u64::from_be_bytes(bytes.as_slice().try_into().map_err(
            |_| io::Error::other("the attached state's position is damaged"),
        )?)),
        None => Ok(0),
    }
}

/// Moves the shared state of the restored data directory `data` back to
/// record `seq` without changing its contents: a single node's
/// point-in-time restore rolls the sale back and keeps the accounts,
/// sessions and audit log as the backup holds them (an administrator made
/// offline with `admin create --data` is in them and in no log, so they
/// cannot be rebuilt). Without it, the records the restored log numbers
/// anew after `seq` would be taken for ones already applied, and skipped.
pub fn reposition(data: &crate::runtime::DataDir, seq: u64) -> io::Result<()> {
    let db = data.open_db(crate::COLUMN_FAMILIES)?;
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    db.put_cf_opt(
        settings_family(&db)?,
        APPLIED_KEY,
        seq.to_be_bytes(),
        &synced,
    )
    .map_err(to_io)
}

/// Empties the shared state of the restored data directory `data` (its
/// node's own settings stay), to be rebuilt from the log when the node
/// starts: a restore that cut the log before what the state had applied
/// (accounts, sessions, audit entries made after the chosen point) must
/// not keep them. Refused when the log does not begin at its first record
/// (a member that joined from a group snapshot): the state could not be
/// rebuilt.
pub fn rewind(data: &crate::runtime::DataDir) -> io::Result<()> {
    let db = data.open_db(crate::COLUMN_FAMILIES)?;
    let origin = ingressoja_wal::origin(&crate::runtime::DataDir::wal_store(db.clone())?)?;
    if origin > 0 {
        return Err(io::Error::other(format!(
            "this log begins after record {origin} (its node joined from a group \
             snapshot): the accounts it holds cannot be rebuilt to an earlier point; \
             restore to a later point, or from a node that holds the whole log"
        )));
    }
    SharedState::open(db)?
        .restore(0, None)
        .map_err(io::Error::other)
}

fn family<'a>(db: &'a DB, name: &str) -> io::Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| io::Error::other(format!("no column family {name}")))
}

fn settings_family(db: &DB) -> io::Result<&rocksdb::ColumnFamily> {
    family(db, SETTINGS_FAMILY)
}

impl AttachedState for SharedState {
    fn applied_seq(&self) -> u64 {
        *self.applied.lock()
    }

    fn apply(&self, records: &[AttachedRecord]) -> Result<(), String> {
        for record in records {
            // A change this build cannot read is not skipped: the state
            // would no longer be the log's, so the node stops.
            let write: Write = decode(&record.bytes)
                .map_err(|e| format!("attached record {}: {e}", record.seq))?;
            let outcome = self
                .apply_one(record.seq, write)
                .map_err(|e| format!("attached record {}: {e}", record.seq))?;
            self.applied(record.seq, Some(outcome));
        }
        Ok(())
    }

    fn freeze(&self) -> Result<Thaw, String> {
        // A RocksDB snapshot borrows the database, so it is taken on the
        // thread that encodes it; the state machine waits only until it is
        // taken (no change can slip in: changes are applied by the state
        // machine, which is waiting here).
        let db = self.db.clone();
        let (taken, is_taken) = std::sync::mpsc::sync_channel(1);
        let (done, encoded) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("ingressoja-freeze".into())
            .spawn(move || {
                let snapshot = db.snapshot();
                let _ = taken.send(());
                let result = SharedState::encode_all(&db, || {
                    let mut read = ReadOptions::default();
                    read.set_snapshot(&snapshot);
                    read
                });
                let _ = done.send(result);
            })
            .map_err(|e| e.to_string())?;
        is_taken
            .recv()
            .map_err(|_| "the freezing thread ended".to_string())?;
        Ok(Box::new(move || {
            encoded
                .recv()
                .map_err(|_| "the freezing thread ended".to_string())?
        }))
    }

    fn restore(&self, seq: u64, encoded: Option<&[u8]>) -> Result<(), String> {
        let decoded = match encoded {
            Some(bytes) => {
                postcard::from_bytes::<Encoded>(bytes)
                    .map_err(|e| format!("the shared state sent is damaged: {e}"))?
                    .families
            }
            None => Vec::new(),
        };
        let mut batch = WriteBatch::default();
        for name in [ACCOUNTS, SESSIONS, AUDIT, SETTINGS_FAMILY] {
            let cf = family(&self.db, name).map_err(|e| e.to_string())?;
            for item in self.db.iterator_cf(cf, IteratorMode::Start) {
                let (key, _) = item.map_err(|e| e.into_string())?;
                if shared_key(name, &key) {
                    batch.delete_cf(cf, key);
                }
            }
        }
        for (name, pairs) in decoded {
            let cf = family(&self.db, &name).map_err(|e| e.to_string())?;
            for (key, value) in pairs {
                if shared_key(&name, &key) {
                    batch.put_cf(cf, key, value);
                }
            }
        }
        let settings = settings_family(&self.db).map_err(|e| e.to_string())?;
        batch.put_cf(settings, APPLIED_KEY, seq.to_be_bytes());
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        self.db
            .write_opt(batch, &synced)
            .map_err(|e| e.into_string())?;
        self.audit.reload().map_err(|e| e.to_string())?;
        self.settings.reload().map_err(|e| e.to_string())?;
        self.outcomes.lock().clear();
        self.applied(seq, None);
        tracing::info!(
            through = seq,
            "took the shared state from the group's snapshot"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Session;
    use crate::audit::Entry;
    use crate::http::settings::EventSecurity;
    use crate::runtime::DataDir;

    fn state() -> (tempfile::TempDir, Arc<SharedState>) {
        let dir = tempfile::tempdir().unwrap();
        let db = DataDir::create(dir.path())
            .unwrap()
            .open_db(crate::COLUMN_FAMILIES)
            .unwrap();
        (dir, SharedState::open(db).unwrap())
    }

    fn record(seq: u64, write: &Write) -> AttachedRecord {
        AttachedRecord {
            seq,
            bytes: postcard::to_stdvec(write).unwrap(),
        }
    }

    fn create(email: &str) -> Write {
        Write::CreateAccount {
            email: email.into(),
            password_hash: "hash".into(),
            admin: false,
            created_ms: 7,
        }
    }

    fn session(account: u64) -> Session {
        Session {
            account,
            epoch: 0,
            created_ms: 1,
            expires_ms: 1_000,
            awaiting_code: false,
            two_factor: true,
            csrf: "c".into(),
        }
    }

    /// Applies `writes` as records `first..` and returns their outcomes.
    fn apply(state: &SharedState, first: u64, writes: &[Write]) -> Vec<Outcome> {
        let records: Vec<_> = writes
            .iter()
            .enumerate()
            .map(|(i, w)| record(first + i as u64, w))
            .collect();
        state.apply(&records).unwrap();
        (first..first + writes.len() as u64)
            .map(|seq| state.outcome(seq).unwrap())
            .collect()
    }

    #[test]
    fn accounts_get_ids_in_log_order_and_an_email_once() {
        let (_dir, state) = state();
        let outcomes = apply(
            &state,
            3,
            &[create("a@x.io"), create("b@x.io"), create("a@x.io")],
        );
        assert_eq!(
            outcomes,
            [Outcome::Created(1), Outcome::Created(2), Outcome::Taken]
        );
        assert_eq!(state.accounts().find("b@x.io").unwrap().unwrap().id, 2);
        assert_eq!(state.applied_seq(), 5);
        assert!(state.wait_applied(5, Duration::ZERO));
        assert!(!state.wait_applied(6, Duration::from_millis(1)));
    }

    #[test]
    fn an_edit_applies_only_over_the_account_it_read() {
        let (_dir, state) = state();
        apply(&state, 1, &[create("a@x.io")]);
        let read = state.accounts().get(1).unwrap().unwrap();
        // Two nodes read the same account and both accept a code.
        let mut first = read.clone();
        first.epoch = 1;
        let mut second = read.clone();
        second.admin = true;
        let edits = [
            Write::UpdateAccount {
                before: Box::new(read.clone()),
                after: Box::new(first.clone()),
            },
            Write::UpdateAccount {
                before: Box::new(read),
                after: Box::new(second),
            },
        ];
        assert_eq!(apply(&state, 2, &edits), [Outcome::Done, Outcome::Conflict]);
        assert_eq!(state.accounts().get(1).unwrap().unwrap(), first);
    }

    #[test]
    fn sessions_start_and_end_and_audit_entries_chain() {
        let (_dir, state) = state();
        let key = crate::accounts::store::session_key("token");
        let entry = |action: &str| {
            Write::Audit(Box::new(Entry {
                action: action.into(),
                ..Entry::default()
            }))
        };
        let outcomes = apply(
            &state,
            1,
            &[
                create("a@x.io"),
                Write::StartSession {
                    key,
                    session: session(1),
                },
                entry("login"),
                entry("logout"),
            ],
        );
        assert_eq!(outcomes[2..], [Outcome::Audited(1), Outcome::Audited(2)]);
        assert!(state.accounts().session("token", 10).unwrap().is_some());
        apply(&state, 5, &[Write::EndSession { key }]);
        assert!(state.accounts().session("token", 10).unwrap().is_none());
        let verified = crate::audit::verify(&state.db).unwrap().unwrap();
        assert_eq!(verified.entries, 2);
    }

    #[test]
    fn a_frozen_state_restores_elsewhere_as_it_was_when_frozen() {
        let (_dir, from) = state();
        let security = EventSecurity {
            pow_difficulty: 3,
            require_two_factor: false,
        };
        apply(
            &from,
            1,
            &[
                create("a@x.io"),
                Write::EventSecurity { event: 9, security },
            ],
        );
        let thaw = from.freeze().unwrap();
        // Changed after freezing: not in what was frozen.
        apply(&from, 3, &[create("late@x.io")]);
        let encoded = thaw().unwrap();

        let (_other, to) = state();
        apply(&to, 1, &[create("stale@x.io")]);
        to.restore(2, Some(&encoded)).unwrap();
        assert_eq!(to.applied_seq(), 2);
        assert!(to.accounts().find("stale@x.io").unwrap().is_none());
        assert!(to.accounts().find("late@x.io").unwrap().is_none());
        assert_eq!(to.accounts().find("a@x.io").unwrap().unwrap().id, 1);
        assert_eq!(to.settings().event(EventId(9)), security);
        // It goes on from there as the other node did.
        assert_eq!(apply(&to, 3, &[create("late@x.io")]), [Outcome::Created(2)]);
    }
}
