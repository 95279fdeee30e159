//! An in-memory network between Raft nodes of one process, for the
//! cluster tests: each node's messages go straight to the other node's
//! `Raft` handle, unless the test has cut either node off (a partition, or
//! a dead machine). A deterministic simulation also turns on seeded
//! [`Faults`]: messages lost, late, or delivered twice, drawn from one
//! seed, waiting on tokio's (paused) clock.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::types::{NodeId, ShardRaft};

#[derive(Default)]
struct Nodes {
    rafts: BTreeMap<NodeId, Raft<ShardRaft>>,
    cut_off: BTreeSet<NodeId>,
    faults: Option<Faults>,
}

/// Seeded dice for every message: lost (the sender hears so after
/// [`Faults::LOSS_NOTICED_MS`]), delivered late, or delivered twice (the
/// second answer is the one returned: Raft must not care).
pub struct Faults {
    rng: StdRng,
    /// The chance that a message is lost.
    pub lose: f64,
    /// The chance that a delivered message is delivered twice.
    pub twice: f64,
    /// Delivery takes up to this long (uniformly drawn).
    pub max_delay_ms: u64,
}

impl Faults {
    /// How long a sender waits before it learns its message was lost.
    pub const LOSS_NOTICED_MS: u64 = 20;

    /// The simulation's faults from `seed`: 5% lost, 3% twice, up to 40 ms late.
    pub fn seeded(seed: u64) -> Faults {
        Faults {
            rng: StdRng::seed_from_u64(seed),
            lose: 0.05,
            twice: 0.03,
            max_delay_ms: 40,
        }
    }
}

/// What the dice say about one message.
enum Fate {
    Lost,
    Delivered { delay_ms: u64, twice: bool },
}

/// Who can reach whom. Clones share it.
#[derive(Clone, Default)]
pub struct Router(Arc<Mutex<Nodes>>);

impl Router {
    /// Makes `raft` reachable as `id`.
    pub fn add(&self, id: NodeId, raft: Raft<ShardRaft>) {
        self.0.lock().rafts.insert(id, raft);
    }

    /// Cuts `id` off from every other node (or reconnects it).
    pub fn cut_off(&self, id: NodeId, cut: bool) {
        let mut nodes = self.0.lock();
        if cut {
            nodes.cut_off.insert(id);
        } else {
            nodes.cut_off.remove(&id);
        }
    }

    /// Turns seeded faults on (`Some`) or off.
    pub fn set_faults(&self, faults: Option<Faults>) {
        self.0.lock().faults = faults;
    }

    /// Takes `id`'s handle out of the network (its node is stopped).
    pub fn remove(&self, id: NodeId) {
        self.0.lock().rafts.remove(&id);
    }

    /// The network of node `from`, for its `Raft`.
    pub fn network_of(&self, from: NodeId) -> NodeNetwork {
        NodeNetwork {
            router: self.clone(),
            from,
        }
    }

    /// `to`'s handle, if `from` can reach it, and the message's fate.
    fn reach(&self, from: NodeId, to: NodeId) -> Result<(Raft<ShardRaft>, Fate), Unreachable> {
        let mut nodes = self.0.lock();
        let unreachable = || {
            Unreachable::new(&io::Error::new(
                io::ErrorKind::NotConnected,
                format!("node {to} cannot be reached from node {from}"),
            ))
        };
        if nodes.cut_off.contains(&from) || nodes.cut_off.contains(&to) {
            return Err(unreachable());
        }
        let raft = nodes.rafts.get(&to).cloned().ok_or_else(unreachable)?;
        let fate = match &mut nodes.faults {
            None => Fate::Delivered {
                delay_ms: 0,
                twice: false,
            },
            Some(faults) => {
                if faults.rng.gen_bool(faults.lose) {
                    Fate::Lost
                } else {
                    Fate::Delivered {
                        delay_ms: faults.rng.gen_range(0..=faults.max_delay_ms),
                        twice: faults.rng.gen_bool(faults.twice),
                    }
                }
            }
        };
        Ok((raft, fate))
    }
}

/// One node's network factory.
pub struct NodeNetwork {
    router: Router,
    from: NodeId,
}

/// A connection from one node to another.
pub struct Connection {
    router: Router,
    from: NodeId,
    to: NodeId,
}

impl RaftNetworkFactory<ShardRaft> for NodeNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            router: self.router.clone(),
            from: self.from,
            to: target,
        }
    }
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Sends one message to `$self.to` by its fate.
macro_rules! deliver {
    ($self:ident, $rpc:ident, $method:ident) => {{
        let (to, fate) = $self
            .router
            .reach($self.from, $self.to)
            .map_err(RPCError::Unreachable)?;
        match fate {
            Fate::Lost => {
                tokio::time::sleep(Duration::from_millis(Faults::LOSS_NOTICED_MS)).await;
                let error = io::Error::new(io::ErrorKind::TimedOut, "lost");
                Err(RPCError::Network(NetworkError::new(&error)))
            }
            Fate::Delivered { delay_ms, twice } => {
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                if twice {
                    let _ = to.$method($rpc.clone()).await;
                }
                to.$method($rpc)
                    .await
                    .map_err(|e| RPCError::RemoteError(RemoteError::new($self.to, e)))
            }
        }
    }};
}

impl RaftNetwork<ShardRaft> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ShardRaft>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        deliver!(self, rpc, append_entries)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<ShardRaft>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        deliver!(self, rpc, install_snapshot)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        deliver!(self, rpc, vote)
    }
}
