//! Errors, one enum per operation, named by what failed.

use crate::format::Damage;

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store could not be read.
    #[error("cannot read the log: {0}")]
    Io(#[from] std::io::Error),
    /// A batch before the last one is damaged: data that was acknowledged
    /// is unreadable, so the log refuses to guess.
    #[error("the log is damaged at sequence {seq} (a batch before the tail): {damage}")]
    CorruptMiddle {
        /// The first sequence number of the damaged batch.
        seq: u64,
        /// What is wrong with it.
        damage: Damage,
    },
    /// Sequence numbers jump: a batch is missing.
    #[error("the log is missing records: expected sequence {expected}, found {found}")]
    Gap {
        /// The sequence number that should come next.
        expected: u64,
        /// The one that does.
        found: u64,
    },
    /// A batch does not link to the one before: one was replaced or removed.
    #[error("the hash chain is broken at sequence {seq}")]
    BrokenChain {
        /// The first sequence number of the batch whose link is wrong.
        seq: u64,
    },
    /// Recovery starts after a snapshot the log does not reach.
    #[error("the log ends at sequence {log_end} but the snapshot covers up to {anchor}")]
    ShorterThanSnapshot {
        /// The last sequence number in the log.
        log_end: u64,
        /// The snapshot's last sequence number.
        anchor: u64,
    },
    /// Recovery starts from a snapshot older than the log's origin: the
    /// records between them are not in this log.
    #[error(
        "the log starts after sequence {origin} (it restarted from a snapshot) but recovery \
         starts from sequence {anchor}"
    )]
    BeforeOrigin {
        /// The snapshot's last sequence number.
        anchor: u64,
        /// The last sequence number before the log's first record.
        origin: u64,
    },
    /// The caller's visitor refused a record (for example, replay failed).
    #[error("record {seq} was refused by recovery: {reason}")]
    Refused {
        /// The record.
        seq: u64,
        /// Why (the visitor's own error).
        reason: RefusedRecord,
    },
}

/// A visitor's reason to refuse a record while the log is opened.
pub type RefusedRecord = Box<dyn std::error::Error + Send + Sync>;

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// An earlier write failed; the log refuses every write after it, since
    /// what reached the disk is unknown. The process must restart and recover.
    #[error("the log is poisoned by an earlier failed write: {0}")]
    Poisoned(String),
    /// This write failed; the log is now poisoned.
    #[error("the write failed and poisoned the log: {0}")]
    Io(std::io::Error),
    /// The records do not continue the log's sequence.
    #[error("records must continue the log at sequence {expected}, got {found}")]
    OutOfSequence {
        /// The next sequence number the log expects.
        expected: u64,
        /// The first one given.
        found: u64,
    },
    /// The batch could not be encoded.
    #[error("cannot encode the batch: {0}")]
    Encode(#[from] postcard::Error),
}

/// A problem found walking the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The store could not be read.
    #[error("cannot read the log: {0}")]
    Io(#[from] std::io::Error),
    /// The first bad batch: where, and what is wrong.
    #[error("bad batch at sequence {seq}: {problem}")]
    Bad {
        /// The first sequence number of the batch.
        seq: u64,
        /// What is wrong.
        problem: String,
    },
}
