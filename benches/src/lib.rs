//! Shared pieces of the benches and sizing checks.
//!
//! - [`drop_sim`]: a deterministic, realistic drop (pre-queue, arrival
//!   spike, carts, payments, abandonment) recorded as a command stream, so a
//!   bench can replay exactly the same drop against a fresh engine.
//! - [`counting_alloc`]: a global allocator that counts live bytes, for the
//!   memory figures.
//! - [`queue_only`]: the event the durability benches load (one record per
//!   join).
//!
//! Benches live in their own crate (as redb and meilisearch do) so ordinary
//! builds never compile criterion.

pub mod counting_alloc;
pub mod drop_sim;
pub mod queue_only;
