//! A node of a replicated sale: the cluster file that names the nodes, and
//! the transport that carries a shard's Raft messages between them
//! (HTTP/2, postcard bodies). The Raft group itself, and what it
//! replicates, live in the runtime; HTTP lives here, as all HTTP does.
//!
//! - `file.rs`: the TOML cluster file (`--cluster`), checked as it loads.
//! - `transport.rs`: this node's connections to the others (openraft's
//!   `RaftNetwork`), bounded and with deadlines.
//! - `peer_api.rs`: the listener the other nodes' messages arrive on.
//! - `membership.rs`: found the group, add and remove voters, each node's
//!   view (served on the peer listener).
//! - `cli.rs`: `ingressoja cluster init|status|add-node|remove-node`.
//! - `haproxy.rs`: the load balancer's configuration from the cluster file
//!   (`ingressoja cluster haproxy-config`).
//! - `nginx.rs`: the same for nginx (`ingressoja cluster nginx-config`),
//!   and what nginx open source cannot do (active health checks).
//! - `forward.rs`: a node that does not lead sends writes (and reads it is
//!   too far behind for) to the leader, one hop.

pub mod cli;
pub mod file;
pub mod forward;
pub mod haproxy;
pub mod membership;
pub mod nginx;
pub mod peer_api;
pub mod transport;

/// Messages between nodes are postcard; a bigger one is refused. Raft
/// sends at most `replication::config(true).max_payload_entries` entries per
/// message, each at most one group commit.
pub const MAX_MESSAGE_BYTES: usize = 128 << 20;

/// The header and scheme peers authenticate with.
pub const PEER_AUTH_SCHEME: &str = "Bearer ";
