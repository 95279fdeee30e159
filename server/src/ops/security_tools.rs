//! `ingressoja admin create` and `ingressoja audit verify|export`.
//!
//! `admin create` opens the database for writing, so the server must be
//! stopped (RocksDB's lock says so otherwise); the audit tools open it
//! read-only and work beside a running server.

use std::io::{BufRead, Write};
use std::path::Path;

use crate::accounts::{AccountStore, Accounts, normalize_email, password, store::random_hex};
use crate::audit::{self, Action, AuditLog};
use crate::cluster::file::ClusterFile;
use crate::replicated::proposer::propose_to_cluster;
use crate::replicated::{Outcome, Write as SharedWrite};
use crate::runtime::DataDir;

type ToolResult<T> = Result<T, Box<dyn std::error::Error>>;

/// What `admin create` made.
#[derive(Debug)]
pub struct CreatedAdmin {
    /// The account id.
    pub id: u64,
    /// The normalized email.
    pub email: String,
    /// The password, when one was generated (shown once).
    pub generated_password: Option<String>,
}

/// The normalized email and the password (read, or generated: `true`),
/// checked against the password rules.
fn admin_credentials(
    email: &str,
    password: Option<&mut dyn BufRead>,
) -> ToolResult<(String, String, bool)> {
    let email = normalize_email(email)?;
    let (password, generated) = match password {
        Some(input) => {
            let mut line = String::new();
            input.read_line(&mut line)?;
            (line.trim_end_matches(['\r', '\n']).to_string(), false)
        }
        None => (random_hex(12)?, true),
    };
    if password.chars().count() < password::MIN_LENGTH {
        return Err(format!(
            "a password has at least {} characters",
            password::MIN_LENGTH
        )
        .into());
    }
    Ok((email, password, generated))
}

/// [`create_admin`] on a running cluster (the nodes of `file`): proposed
/// to its leader through the peers' listener, as every change to accounts
/// is, so every node has it; audited the same way.
pub fn create_admin_in_cluster(
    file: &ClusterFile,
    email: &str,
    password: Option<&mut dyn BufRead>,
) -> ToolResult<CreatedAdmin> {
    let (email, password, generated) = admin_credentials(email, password)?;
    let nodes: Vec<String> = file.nodes.iter().map(|n| n.peers.to_string()).collect();
    let now = crate::runtime::Clock::now_ms(&crate::runtime::SystemClock);
    let create = SharedWrite::CreateAccount {
        email: email.clone(),
        password_hash: password::hash(&password)?,
        admin: true,
        created_ms: now,
    };
    let id = match propose_to_cluster(&nodes, &file.secret, &create)? {
        (_, Some(Outcome::Created(id))) => id,
        (_, Some(Outcome::Taken)) => return Err(format!("{email} has an account already").into()),
        (seq, other) => return Err(format!("record {seq} was applied as {other:?}").into()),
    };
    let entry = audit::Entry {
        at_ms: now,
        action: "admin_created".into(),
        account: Some(id),
        email: Some(email.clone()),
        ip: Some("command line".into()),
        detail: "ingressoja admin create --cluster".into(),
        ..audit::Entry::default()
    };
    propose_to_cluster(&nodes, &file.secret, &SharedWrite::Audit(Box::new(entry)))?;
    Ok(CreatedAdmin {
        id,
        email,
        generated_password: generated.then_some(password),
    })
}

/// Makes an administrator account. The password is read from `password`
/// (one line) or, when `None`, generated and returned.
pub fn create_admin(
    data: &Path,
    email: &str,
    password: Option<&mut dyn BufRead>,
) -> ToolResult<CreatedAdmin> {
    let (email, password, generated) = admin_credentials(email, password)?;
    let data = DataDir::create(data)?;
    let db = data.open_db(crate::COLUMN_FAMILIES).map_err(|e| {
        format!(
            "cannot open {} ({e}); is the server running? stop it first",
            data.db_path().display()
        )
    })?;
    let accounts = Accounts::open(db.clone())?;
    let hash = password::hash(&password)?;
    let now = crate::runtime::Clock::now_ms(&crate::runtime::SystemClock);
    let account = accounts.create(&email, hash, true, now)?;
    let action = Action {
        name: "admin_created",
        account: Some(account.id),
        email: Some(email.clone()),
        event: None,
        from: "command line".into(),
        detail: "ingressoja admin create".into(),
    };
    AuditLog::open(db)?.act(now, action)?;
    Ok(CreatedAdmin {
        id: account.id,
        email,
        generated_password: generated.then_some(password),
    })
}

/// What `audit verify` checked.
#[derive(Debug)]
pub struct AuditSummary {
    /// Audit entries in an unbroken chain.
    pub audit_entries: u64,
    /// Sale-log batches in an unbroken chain.
    pub log_batches: u64,
    /// Sale-log records.
    pub log_records: u64,
}

/// Checks both chains: the audit log's and the sale log's. The error names
/// the first broken link.
pub fn verify(data: &Path) -> ToolResult<AuditSummary> {
    let data = DataDir::create(data)?;
    let db = ingressoja_wal::open_db_read_only(&data.db_path(), &[crate::audit::AUDIT])?;
    let audit_entries = match audit::verify(&db)? {
        Ok(verified) => verified.entries,
        Err(broken) => return Err(broken.into()),
    };
    drop(db);
    let log = crate::runtime::log_tools::verify_log(&data.db_path())?;
    Ok(AuditSummary {
        audit_entries,
        log_batches: log.batches,
        log_records: log.records,
    })
}

/// What `audit export` wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// Lines from the audit log (accounts, sessions, admin actions).
    pub audit: u64,
    /// Lines from the sale log (every sale transition).
    pub sale: u64,
}

/// Writes both logs' entries at or after `since_ms` as JSON lines, merged
/// in time order, each tagged with its log (`"log": "audit"` or `"sale"`).
pub fn export(data: &Path, since_ms: u64, out: &mut impl Write) -> ToolResult<Exported> {
    let data = DataDir::create(data)?;
    let db = ingressoja_wal::open_db_read_only(&data.db_path(), &[crate::audit::AUDIT])?;
    let store = crate::runtime::log_tools::open_read_only(&data.db_path())?;
    let mut audit_entries = audit::since(&db, since_ms)?.peekable();
    let mut sale_entries = crate::sale_trail::since(&store, since_ms).peekable();
    let mut exported = Exported::default();
    loop {
        let audit_next = match audit_entries.peek() {
            Some(Ok(entry)) => Some(entry.at_ms),
            Some(Err(_)) => Some(0),
            None => None,
        };
        let sale_next = match sale_entries.peek() {
            Some(Ok(entry)) => Some(entry.at_ms),
            Some(Err(_)) => Some(0),
            None => None,
        };
        let take_audit = match (audit_next, sale_next) {
            (None, None) => break,
            (Some(a), Some(s)) => a <= s,
            (a, _) => a.is_some(),
        };
        if take_audit {
            if let Some(entry) = audit_entries.next() {
                crate::sale_trail::write_line("audit", &entry?, out)?;
                exported.audit += 1;
            }
        } else if let Some(entry) = sale_entries.next() {
            crate::sale_trail::write_line("sale", &entry?, out)?;
            exported.sale += 1;
        }
    }
    Ok(exported)
}
