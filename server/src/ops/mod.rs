//! Operators' tools of the server's own data behind the `ingressoja`
//! subcommands: `security_tools.rs` has `admin create`, `audit verify` and
//! `audit export`. The sale's tools (backup, restore, `wal verify|inspect`)
//! are the runtime's (`ingressoja_runtime::{backup, restore, log_tools}`).

pub mod security_tools;
