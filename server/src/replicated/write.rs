//! What a change to the shared state says (see the module documentation
//! of `replicated`), and what applying it decided. Postcard numbers enum
//! variants in order: a new kind of change is a new variant at the end.

use serde::{Deserialize, Serialize};

use crate::accounts::holder::Holder;
use crate::accounts::{Account, Session};
use crate::audit::Entry;
use crate::http::settings::{EventSecurity, EventTerms};

/// One change, as logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// A new account: given the next free id when applied, refused if the
    /// email has an account by then.
    CreateAccount {
        /// Normalized.
        email: String,
        /// argon2id, hashed by the proposing node.
        password_hash: String,
        /// May use the admin endpoints.
        admin: bool,
        /// When it was asked for.
        created_ms: u64,
    },
    /// An account's edit: applied only if the stored account is still
    /// `before` (compare-and-set).
    UpdateAccount {
        /// As the proposer read it.
        before: Box<Account>,
        /// As it is to be.
        after: Box<Account>,
    },
    /// A session starts (keyed by its token's SHA-256: the token itself is
    /// never logged).
    StartSession {
        /// SHA-256 of the token.
        key: [u8; 32],
        /// The session.
        session: Session,
    },
    /// A session ends.
    EndSession {
        /// SHA-256 of the token.
        key: [u8; 32],
    },
    /// An audit entry, numbered and chained when applied.
    Audit(Box<Entry>),
    /// An event's security settings.
    EventSecurity {
        /// The event's id.
        event: u64,
        /// Its settings.
        security: EventSecurity,
    },
    /// An event's terms of sale (meia-entrada types, holder required).
    EventTerms {
        /// The event's id.
        event: u64,
        /// Its terms.
        terms: EventTerms,
    },
    /// A secret all nodes share (the CPF key), kept only if none is stored
    /// under the name yet: the first proposal wins, the others read it.
    SharedSecret {
        /// Its name.
        name: String,
        /// A fresh random value from the proposing node.
        secret: [u8; 32],
    },
    /// An account's ticket holder (name and keyed CPF digest): `Taken` if
    /// another account has the CPF, `Conflict` if this one has a holder
    /// already (set once) or does not exist.
    SetHolder {
        /// The account.
        account: u64,
        /// The holder.
        holder: Holder,
    },
}

/// What applying a change decided (the same on every node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done.
    Done,
    /// The account was made with this id.
    Created(u64),
    /// The email (or, for a holder, the CPF) has an account.
    Taken,
    /// The account changed since it was read: nothing was done.
    Conflict,
    /// The audit entry got this number.
    Audited(u64),
}
