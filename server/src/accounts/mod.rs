//! Accounts and how people prove who they are: registration and login with
//! argon2id passwords, TOTP second factor with recovery codes, sessions, and
//! login throttling. Everything here is storage and rules; the HTTP
//! handlers live in `http/account_api.rs`.
//!
//! - `service.rs`: the login flow (the API the server uses), over a store
//!   trait.
//! - `store.rs`: accounts and sessions in RocksDB (this node's copy, and
//!   the store the offline tools write).
//! - `replicated_store.rs`: the store the server runs on: local reads,
//!   changes through the replicated log.
//! - `password.rs`: argon2id hashing.
//! - `totp.rs`: TOTP codes (single use) and recovery codes.
//! - `throttle.rs`: growing delays after failed logins.
//! - `reset.rs`: password-reset tokens (single use, expiring, stateless).
//! - `holder.rs`: the ticket holder (name, CPF checked and kept only as a
//!   keyed digest).

pub mod holder;
pub mod password;
pub mod replicated_store;
pub mod reset;
pub mod service;
pub mod store;
pub mod throttle;
pub mod totp;

pub use service::{AccountService, AccountStore, AccountsError, Caller, LoginStep, Started};
pub use store::{Account, AccountError, Accounts, Session, TwoFactor, normalize_email};
