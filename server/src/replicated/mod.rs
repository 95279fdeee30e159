//! The server's state every node of a cluster shares: accounts, sessions,
//! two-factor state, the audit log and the per-event security settings.
//! They are changes in the sale's own replicated log (the runtime's
//! *attached state*, `LogEntry::Attached`): one log, one leader, one group
//! commit for the sale and for accounts, and one backup of both.
//!
//! - `write.rs`: [`Write`], what a change says (postcard in the log), and
//!   [`Outcome`], what applying it decided.
//! - `state.rs`: [`SharedState`], the column families as every node applies
//!   the committed changes, in log order and deterministically (the
//!   runtime's `AttachedState`); reads are local (a session check is no
//!   network hop).
//! - `proposer.rs`: [`Proposer`], how any node proposes a change: to its
//!   own shard when it leads, otherwise to the leader over the peers' API,
//!   then waits until its own copy has applied it (read-your-writes).
//!
//! A change that depends on what it read (an account's edit: a two-factor
//! step accepted, a password changed) is a compare-and-set: it names the
//! account as it was read and applies only if it still is, so two nodes
//! racing on one account cannot both win (a TOTP code accepted on one node
//! is refused on another: the step is committed, not cached). Password
//! hashing happens before a change is proposed, never while applying.

pub mod proposer;
pub mod state;
pub mod write;

pub use proposer::Proposer;
pub use state::SharedState;
pub use write::{Outcome, Write};
