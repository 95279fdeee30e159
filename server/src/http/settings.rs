//! Per-event settings the HTTP layer enforces (the engine knows nothing of
//! accounts, bots or Brazilian law): the proof-of-work difficulty at queue
//! join and whether buying needs a two-factor login (`EventSecurity`,
//! `event:` + id); which ticket types are meia-entrada and whether buyers
//! must name the ticket holder with a CPF (`EventTerms`, `terms:` + id).
//! Stored in the `settings` column family (postcard), synced, and kept in
//! memory for the hot path; an event without an entry has the defaults.
//! Secrets every node shares (`shared-secret:` + name) live here too.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use parking_lot::RwLock;
use rocksdb::{DB, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::runtime::EventId;

/// Column family of server settings (per-event security settings, the
/// proof-of-work key).
pub const SETTINGS_FAMILY: &str = "settings";

/// Leading zero bits of the default proof of work: 262 144 SHA-256 hashes
/// expected, 0.4 s for JavaScript on one core of the 2-core test machine
/// (`node benches/pow/rate.mjs`: 0.65 M hashes/s), so about a second on a
/// phone two or three times slower.
pub const DEFAULT_POW_DIFFICULTY: u8 = 18;
/// The highest difficulty an operator may set (about 16 M hashes).
pub const MAX_POW_DIFFICULTY: u8 = 24;

/// See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSecurity {
    /// Leading zero bits a join's proof of work needs (0: none).
    pub pow_difficulty: u8,
    /// Carts and checkout need a login with two factors.
    pub require_two_factor: bool,
}

impl Default for EventSecurity {
    fn default() -> EventSecurity {
        EventSecurity {
            pow_difficulty: DEFAULT_POW_DIFFICULTY,
            require_two_factor: true,
        }
    }
}

/// An event's terms of sale (a record of its own, so that the security
/// settings' stored and logged form stays as it was).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTerms {
    /// Carts and checkout need the account's ticket holder (name and CPF):
    /// one account per CPF, so the per-customer limit is per CPF too.
    pub holder_required: bool,
    /// The meia-entrada (half-price) types, each with the type it halves.
    pub half_price: Vec<HalfPrice>,
}

/// A meia-entrada type: half the price of `of`, for fans who show the
/// right document at the gate (Lei 12.933/2013).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalfPrice {
    /// The half-price type's index.
    pub ticket_type: u8,
    /// The full-price type it halves.
    pub of: u8,
}

impl EventTerms {
    /// The full-price type `ticket_type` halves, if it is meia-entrada.
    pub fn half_of(&self, ticket_type: usize) -> Option<usize> {
        self.half_price
            .iter()
            .find(|h| usize::from(h.ticket_type) == ticket_type)
            .map(|h| usize::from(h.of))
    }
}

/// The settings of every event.
pub struct Settings {
    db: Arc<DB>,
    events: RwLock<HashMap<EventId, EventSecurity>>,
    terms: RwLock<HashMap<EventId, EventTerms>>,
}

fn terms_key(event: EventId) -> Vec<u8> {
    [b"terms:".as_slice(), &event.0.to_be_bytes()].concat()
}

/// Where a shared secret is kept.
pub fn shared_secret_key(name: &str) -> Vec<u8> {
    [b"shared-secret:".as_slice(), name.as_bytes()].concat()
}

/// Every stored event's terms.
fn load_terms(db: &DB) -> io::Result<HashMap<EventId, EventTerms>> {
    let mut terms = HashMap::new();
    for item in db.prefix_iterator_cf(family(db)?, b"terms:") {
        let (k, v) = item.map_err(|e| io::Error::other(e.into_string()))?;
        let Some(Ok(id)) = k.strip_prefix(b"terms:").map(<[u8; 8]>::try_from) else {
            break;
        };
        let stored = postcard::from_bytes(&v)
            .map_err(|e| io::Error::other(format!("event terms are damaged: {e}")))?;
        terms.insert(EventId(u64::from_be_bytes(id)), stored);
    }
    Ok(terms)
}

fn key(event: EventId) -> Vec<u8> {
    [b"event:".as_slice(), &event.0.to_be_bytes()].concat()
}

fn family(db: &DB) -> io::Result<&rocksdb::ColumnFamily> {
    db.cf_handle(SETTINGS_FAMILY)
        .ok_or_else(|| io::Error::other(format!("no column family {SETTINGS_FAMILY}")))
}

/// Every stored setting.
fn load(db: &DB) -> io::Result<HashMap<EventId, EventSecurity>> {
    let mut events = HashMap::new();
    for item in db.prefix_iterator_cf(family(db)?, b"event:") {
        let (k, v) = item.map_err(|e| io::Error::other(e.into_string()))?;
        // Ids were 4 bytes before events were numbered per shard; the
        // same event's id read either way is the same number.
        let id = match k.strip_prefix(b"event:") {
            Some(id) if id.len() == 8 => <[u8; 8]>::try_from(id).map(u64::from_be_bytes),
            Some(id) if id.len() == 4 => {
                <[u8; 4]>::try_from(id).map(|id| u32::from_be_bytes(id).into())
            }
            _ => break,
        };
        let Ok(id) = id else { break };
        let security = postcard::from_bytes(&v)
            .map_err(|e| io::Error::other(format!("event settings are damaged: {e}")))?;
        events.insert(EventId(id), security);
    }
    Ok(events)
}

impl Settings {
    /// Loads every stored setting.
    pub fn open(db: Arc<DB>) -> io::Result<Settings> {
        let events = load(&db)?;
        let terms = load_terms(&db)?;
        Ok(Settings {
            db,
            events: RwLock::new(events),
            terms: RwLock::new(terms),
        })
    }

    /// Loads them again (the column family was replaced underneath).
    pub fn reload(&self) -> io::Result<()> {
        *self.events.write() = load(&self.db)?;
        *self.terms.write() = load_terms(&self.db)?;
        Ok(())
    }

    /// Puts an event's terms in `batch` (see [`Settings::remember_terms`]).
    pub fn put_terms(
        db: &DB,
        batch: &mut rocksdb::WriteBatch,
        event: EventId,
        terms: &EventTerms,
    ) -> io::Result<()> {
        let bytes = postcard::to_stdvec(terms).map_err(io::Error::other)?;
        batch.put_cf(family(db)?, terms_key(event), bytes);
        Ok(())
    }

    /// Takes an event's terms written with [`Settings::put_terms`].
    pub fn remember_terms(&self, event: EventId, terms: EventTerms) {
        self.terms.write().insert(event, terms);
    }

    /// An event's terms (none required, no meia-entrada, if never set).
    pub fn terms(&self, event: EventId) -> EventTerms {
        self.terms.read().get(&event).cloned().unwrap_or_default()
    }

    /// Whether buying in `event` needs a ticket holder (hot path: no copy).
    pub fn holder_required(&self, event: EventId) -> bool {
        self.terms
            .read()
            .get(&event)
            .is_some_and(|t| t.holder_required)
    }

    /// A secret every node holds the same (set through the replicated log;
    /// see `Write::SharedSecret`), if it was set.
    pub fn shared_secret(&self, name: &str) -> io::Result<Option<[u8; 32]>> {
        let stored = self
            .db
            .get_cf(family(&self.db)?, shared_secret_key(name))
            .map_err(|e| io::Error::other(e.into_string()))?;
        stored
            .map(|bytes| {
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| io::Error::other(format!("the shared secret {name} is damaged")))
            })
            .transpose()
    }

    /// Puts an event's settings in `batch` (see [`Settings::remember`]).
    pub fn put(
        db: &DB,
        batch: &mut rocksdb::WriteBatch,
        event: EventId,
        security: EventSecurity,
    ) -> io::Result<()> {
        let bytes = postcard::to_stdvec(&security).map_err(io::Error::other)?;
        let family = family(db)?;
        batch.put_cf(family, key(event), bytes);
        // The 4-byte key of before shard numbers goes in the same write, so
        // it can never be read back over the new one.
        if let Ok(old) = u32::try_from(event.0) {
            batch.delete_cf(family, [b"event:".as_slice(), &old.to_be_bytes()].concat());
        }
        Ok(())
    }

    /// Takes an event's settings written with [`Settings::put`].
    pub fn remember(&self, event: EventId, security: EventSecurity) {
        self.events.write().insert(event, security);
    }

    /// An event's settings.
    pub fn event(&self, event: EventId) -> EventSecurity {
        self.events.read().get(&event).copied().unwrap_or_default()
    }

    /// Stores an event's settings (synced).
    pub fn set(&self, event: EventId, security: EventSecurity) -> io::Result<()> {
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        let mut batch = rocksdb::WriteBatch::default();
        Settings::put(&self.db, &mut batch, event, security)?;
        self.db
            .write_opt(batch, &synced)
            .map_err(|e| io::Error::other(e.into_string()))?;
        self.events.write().insert(event, security);
        Ok(())
    }

    /// A secret kept in the settings (generated on first use), such as the
    /// proof-of-work signing key: it survives restarts, so challenges
    /// handed out before one still verify after it.
    pub fn secret(&self, name: &str) -> io::Result<[u8; 32]> {
        let settings = family(&self.db)?;
        let key = [b"secret:".as_slice(), name.as_bytes()].concat();
        if let Some(bytes) = self
            .db
            .get_cf(settings, &key)
            .map_err(|e| io::Error::other(e.into_string()))?
        {
            return <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| io::Error::other(format!("the secret {name} is damaged")));
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
        let mut synced = WriteOptions::default();
        synced.set_sync(true);
        self.db
            .put_cf_opt(settings, &key, secret, &synced)
            .map_err(|e| io::Error::other(e.into_string()))?;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_stored_under_the_old_four_byte_ids_are_read_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let db = ingressoja_wal::open_db(dir.path(), &[SETTINGS_FAMILY]).unwrap();
        let old = EventSecurity {
            pow_difficulty: 12,
            require_two_factor: false,
        };
        let old_key = [b"event:".as_slice(), &1u32.to_be_bytes()].concat();
        db.put_cf(
            family(&db).unwrap(),
            old_key,
            postcard::to_stdvec(&old).unwrap(),
        )
        .unwrap();
        let settings = Settings::open(db.clone()).unwrap();
        assert_eq!(settings.event(EventId(1)), old, "read under its old key");
        let new = EventSecurity {
            pow_difficulty: 3,
            require_two_factor: true,
        };
        settings.set(EventId(1), new).unwrap();
        // Event 1's old key sorts after event 0's new one but before event
        // 1's: it must be gone, or it would be read back over the new value.
        settings.set(EventId(0), new).unwrap();
        drop(settings);
        let reopened = Settings::open(db).unwrap();
        assert_eq!(reopened.event(EventId(1)), new);
        assert_eq!(reopened.event(EventId(0)), new);
    }
}
