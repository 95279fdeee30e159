//! E-mail to fans: the receipt of a purchase, the password-reset link, and
//! notices of security changes (two-factor turned on, password changed).
//!
//! - `letters.rs` writes them (Brazilian Portuguese first, then English),
//!   from typed facts, with nothing secret but the reset link itself.
//! - `outbox.rs` sends them off the request path: a bounded queue drained
//!   by one task, through an SMTP server (lettre; `[mail] smtp_url`), or into
//!   the log when none is configured (`make run`), retrying a transient
//!   failure a few times.
//!
//! Mail is a courtesy on top of what is durable, never part of it: the
//! order is in "Meus ingressos" whether or not its receipt arrives, and a
//! reset link can be asked for again. So the queue lives in memory, and a
//! full queue or a crash loses letters rather than slowing a sale (see
//! ARCHITECTURE.md).

pub mod letters;
pub mod outbox;

pub use letters::Letter;
pub use outbox::{MailConfig, Outbox, Transport};
