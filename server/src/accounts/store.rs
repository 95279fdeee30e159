//! Accounts and sessions in RocksDB, in two column families of the sale's
//! database (`accounts`, `sessions`), each write synced before it is
//! reported done.
//!
//! - `accounts`: `e:` + normalized email → account id (8 bytes, big endian);
//!   `a:` + id → the account (postcard); `next` → the next id;
//!   `h:` + id → the account's ticket holder (postcard, `holder.rs`);
//!   `c:` + keyed CPF digest → the account id (one account per CPF).
//! - `sessions`: SHA-256 of the session token → the session (postcard). The
//!   token itself is never stored, so a copy of the database lets nobody in.
//!
//! A session is valid while unexpired and while its `epoch` equals the
//! account's: changing the password bumps the epoch, which revokes every
//! session of the account at once without finding them.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use rocksdb::{DB, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::service::{AccountStore, Change};

/// Column family of accounts.
pub const ACCOUNTS: &str = "accounts";
/// Column family of sessions.
pub const SESSIONS: &str = "sessions";
/// How long a logged-in session lasts.
pub const SESSION_TTL_MS: u64 = 12 * 60 * 60 * 1_000;
/// How long a login waiting for its second factor lasts.
pub const PENDING_TTL_MS: u64 = 5 * 60 * 1_000;
/// The longest email accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Also the customer id in every sale.
    pub id: u64,
    /// Normalized (trimmed, lower case).
    pub email: String,
    /// argon2id PHC string; empty for development accounts (no password
    /// login is possible).
    pub password_hash: String,
    /// May use the admin endpoints (with two factors).
    pub admin: bool,
    /// When it was made.
    pub created_ms: u64,
    /// Sessions of another epoch are revoked.
    pub epoch: u32,
    /// The second factor, once enrollment started.
    pub two_factor: Option<TwoFactor>,
}

impl Account {
    /// Whether the second factor is on (enrolled and confirmed).
    pub fn has_two_factor(&self) -> bool {
        self.two_factor.as_ref().is_some_and(|t| t.confirmed)
    }
}

/// An account's TOTP secret and recovery codes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoFactor {
    /// The shared secret.
    pub secret: Vec<u8>,
    /// Whether a first code confirmed it.
    pub confirmed: bool,
    /// The last time step whose code was accepted.
    pub last_step: u64,
    /// Digests of the recovery codes not yet used.
    pub recovery: Vec<[u8; 32]>,
}

/// A session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Whose.
    pub account: u64,
    /// The account's epoch when it was made.
    pub epoch: u32,
    /// When it was made.
    pub created_ms: u64,
    /// When it ends.
    pub expires_ms: u64,
    /// The password was right; the second factor is still to come. Such a
    /// session can only finish the login.
    pub awaiting_code: bool,
    /// The second factor was shown in this login (or at enrollment).
    pub two_factor: bool,
    /// The anti-CSRF token, sent back by pages in `X-CSRF-Token`.
    pub csrf: String,
}

/// Why an email is refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not an email address.
    #[error("{0}")]
    BadEmail(&'static str),
    /// Someone has it.
    #[error("an account with this email exists")]
    Taken,
    /// The store failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// See the module documentation.
pub struct Accounts {
    db: Arc<DB>,
    /// Serializes read-modify-write of accounts (registration, 2FA steps);
    /// these are rare next to the sale's traffic.
    writes: Mutex<()>,
    synced: WriteOptions,
}

pub(crate) fn to_io(error: rocksdb::Error) -> io::Error {
    io::Error::other(error.into_string())
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| io::Error::other(format!("a stored record is damaged: {e}")))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(io::Error::other)
}

pub(crate) fn account_key(id: u64) -> Vec<u8> {
    [b"a:".as_slice(), &id.to_be_bytes()].concat()
}

pub(crate) fn holder_key(id: u64) -> Vec<u8> {
    [b"h:".as_slice(), &id.to_be_bytes()].concat()
}

pub(crate) fn cpf_key(digest: &[u8; 32]) -> Vec<u8> {
    [b"c:".as_slice(), digest].concat()
}

pub(crate) fn email_key(email: &str) -> Vec<u8> {
    [b"e:".as_slice(), email.as_bytes()].concat()
}

/// The stored key of a session token.
pub(crate) fn session_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Trims and lower-cases an email, refusing what is not one.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL {
        return Err(AccountError::BadEmail("an email has 3 to 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(AccountError::BadEmail("an email has an @"));
    };
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email
            .chars()
            .all(|c| c.is_alphanumeric() || "@.+-_'".contains(c));
    if !valid {
        return Err(AccountError::BadEmail("this is not an email address"));
    }
    Ok(email)
}

impl Accounts {
    /// Accounts in `db`, which must have the two column families.
    pub fn open(db: Arc<DB>) -> io::Result<Accounts> {
        for family in [ACCOUNTS, SESSIONS] {
            if db.cf_handle(family).is_none() {
                return Err(io::Error::other(format!("no column family {family}")));
            }
        }
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        Ok(Accounts {
            db,
            writes: Mutex::new(()),
            synced,
        })
    }

    /// Writes what the accounts hold in memory to table files (tests that
    /// read the files; RocksDB does it by itself as memory fills).
    pub fn flush(&self) -> io::Result<()> {
        self.db.flush_cf(self.family(ACCOUNTS)?).map_err(to_io)
    }

    /// The ticket holder of account `id`, if set.
    pub fn holder(&self, id: u64) -> io::Result<Option<super::holder::Holder>> {
        let accounts = self.family(ACCOUNTS)?;
        match self
            .db
            .get_pinned_cf(accounts, holder_key(id))
            .map_err(to_io)?
        {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The account whose holder has the CPF of this digest, if any.
    pub fn cpf_owner(&self, digest: &[u8; 32]) -> io::Result<Option<u64>> {
        let accounts = self.family(ACCOUNTS)?;
        let Some(id) = self.db.get_cf(accounts, cpf_key(digest)).map_err(to_io)? else {
            return Ok(None);
        };
        let id = <[u8; 8]>::try_from(id.as_slice())
            .map_err(|_| io::Error::other("a CPF index entry is damaged"))?;
        Ok(Some(u64::from_be_bytes(id)))
    }

    /// The id the next account gets.
    pub(crate) fn next_id(&self) -> io::Result<u64> {
        let accounts = self.family(ACCOUNTS)?;
        Ok(match self.db.get_cf(accounts, b"next").map_err(to_io)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| io::Error::other("the account counter is damaged"))?,
            ),
            // Account 0 is never handed out: it means "nobody" in logs.
            None => 1,
        })
    }

    fn family(&self, name: &str) -> io::Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| io::Error::other(format!("no column family {name}")))
    }
}

impl AccountStore for Accounts {
    /// Makes an account; `email` must be normalized.
    fn create(
        &self,
        email: &str,
        password_hash: String,
        admin: bool,
        now_ms: u64,
    ) -> Result<Account, AccountError> {
        let accounts = self.family(ACCOUNTS)?;
        let _writing = self.writes.lock();
        if self
            .db
            .get_cf(accounts, email_key(email))
            .map_err(to_io)?
            .is_some()
        {
            return Err(AccountError::Taken);
        }
        let id = self.next_id()?;
        let account = Account {
            id,
            email: email.to_string(),
            password_hash,
            admin,
            created_ms: now_ms,
            epoch: 0,
            two_factor: None,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(accounts, email_key(email), id.to_be_bytes());
        batch.put_cf(accounts, account_key(id), encode(&account)?);
        batch.put_cf(accounts, b"next", (id + 1).to_be_bytes());
        self.db.write_opt(batch, &self.synced).map_err(to_io)?;
        Ok(account)
    }

    /// The account with this id.
    fn get(&self, id: u64) -> io::Result<Option<Account>> {
        let accounts = self.family(ACCOUNTS)?;
        match self
            .db
            .get_pinned_cf(accounts, account_key(id))
            .map_err(to_io)?
        {
            Some(bytes) => decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The account with this (normalized) email.
    fn find(&self, email: &str) -> io::Result<Option<Account>> {
        let accounts = self.family(ACCOUNTS)?;
        let Some(id) = self.db.get_cf(accounts, email_key(email)).map_err(to_io)? else {
            return Ok(None);
        };
        let id = u64::from_be_bytes(
            id.as_slice()
                .try_into()
                .map_err(|_| io::Error::other("an email index entry is damaged"))?,
        );
        self.get(id)
    }

    /// Edits an account under the write lock: stored (synced) when
    /// `change` says so, untouched otherwise.
    fn update(
        &self,
        id: u64,
        change: &mut dyn FnMut(&mut Account) -> Change,
    ) -> io::Result<Option<Account>> {
        let _writing = self.writes.lock();
        let mut account = self
            .get(id)?
            .ok_or_else(|| io::Error::other(format!("no account {id}")))?;
        if change(&mut account) == Change::Refuse {
            return Ok(None);
        }
        let accounts = self.family(ACCOUNTS)?;
        self.db
            .put_cf_opt(accounts, account_key(id), encode(&account)?, &self.synced)
            .map_err(to_io)?;
        Ok(Some(account))
    }

    /// Starts a session for `account`; returns its token (shown once).
    fn create_session(
        &self,
        account: &Account,
        awaiting_code: bool,
        two_factor: bool,
        now_ms: u64,
    ) -> io::Result<(String, Session)> {
        let (token, session) = new_session(account, awaiting_code, two_factor, now_ms)?;
        let sessions = self.family(SESSIONS)?;
        self.db
            .put_cf_opt(
                sessions,
                session_key(&token),
                encode(&session)?,
                &self.synced,
            )
            .map_err(to_io)?;
        Ok((token, session))
    }

    /// The live session with this token, and its account.
    fn session(&self, token: &str, now_ms: u64) -> io::Result<Option<(Session, Account)>> {
        let sessions = self.family(SESSIONS)?;
        let Some(bytes) = self
            .db
            .get_pinned_cf(sessions, session_key(token))
            .map_err(to_io)?
        else {
            return Ok(None);
        };
        let session: Session = decode(&bytes)?;
        if session.expires_ms <= now_ms {
            return Ok(None);
        }
        let Some(account) = self.get(session.account)? else {
            return Ok(None);
        };
        if account.epoch != session.epoch {
            return Ok(None);
        }
        Ok(Some((session, account)))
    }

    /// Ends a session (logout, or a login that replaced it).
    fn revoke_session(&self, token: &str) -> io::Result<()> {
        let sessions = self.family(SESSIONS)?;
        self.db
            .delete_cf_opt(sessions, session_key(token), &self.synced)
            .map_err(to_io)
    }
}

/// A new session of `account` and its token (random; shown once).
pub(crate) fn new_session(
    account: &Account,
    awaiting_code: bool,
    two_factor: bool,
    now_ms: u64,
) -> io::Result<(String, Session)> {
    let token = random_hex(32)?;
    let session = Session {
        account: account.id,
        epoch: account.epoch,
        created_ms: now_ms,
        expires_ms: now_ms
            + if awaiting_code {
                PENDING_TTL_MS
            } else {
                SESSION_TTL_MS
            },
        awaiting_code,
        two_factor,
        csrf: random_hex(16)?,
    };
    Ok((token, session))
}

/// `bytes` random bytes as hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = ingressoja_wal::open_db(dir.path(), &[ACCOUNTS, SESSIONS]).unwrap();
        (dir, Accounts::open(db).unwrap())
    }

    #[test]
    fn emails_are_normalized_and_unique() {
        let (_dir, accounts) = store();
        assert_eq!(
            normalize_email("  Fan@Example.COM ").unwrap(),
            "fan@example.com"
        );
        for bad in [
            "",
            "fan",
            "fan@",
            "@x.com",
            "fan@com",
            "fan@x.com.",
            "a b@x.com",
            "a:b@x.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        let first = accounts
            .create("fan@example.com", String::new(), false, 5)
            .unwrap();
        assert_eq!(first.id, 1);
        assert!(matches!(
            accounts.create("fan@example.com", String::new(), false, 6),
            Err(AccountError::Taken)
        ));
        assert_eq!(
            accounts
                .create("two@example.com", String::new(), false, 7)
                .unwrap()
                .id,
            2
        );
        assert_eq!(accounts.find("fan@example.com").unwrap(), Some(first));
    }

    #[test]
    fn sessions_expire_are_revoked_and_end_with_a_new_epoch() {
        let (_dir, accounts) = store();
        let account = accounts
            .create("fan@example.com", String::new(), false, 0)
            .unwrap();
        let (token, session) = accounts
            .create_session(&account, false, false, 1_000)
            .unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(
            accounts.session(&token, 2_000).unwrap().map(|(s, _)| s),
            Some(session.clone())
        );
        assert!(
            accounts
                .session(&token, session.expires_ms)
                .unwrap()
                .is_none(),
            "expired"
        );
        assert!(accounts.session("not-a-token", 2_000).unwrap().is_none());
        accounts
            .update(account.id, &mut |a| {
                a.epoch += 1;
                Change::Store
            })
            .unwrap();
        assert!(
            accounts.session(&token, 2_000).unwrap().is_none(),
            "new epoch"
        );
        let account = accounts.get(account.id).unwrap().unwrap();
        let (token, _) = accounts
            .create_session(&account, false, false, 3_000)
            .unwrap();
        accounts.revoke_session(&token).unwrap();
        assert!(
            accounts.session(&token, 3_001).unwrap().is_none(),
            "revoked"
        );
    }
}
