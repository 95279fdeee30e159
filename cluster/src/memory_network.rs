//! An in-memory network between Raft nodes of one process, for the
//! cluster tests: each node's messages go straight to the other node's
//! `Raft` handle, unless the test has cut either node off (a partition, or
//! a dead machine).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use parking_lot::Mutex;

use crate::types::{NodeId, ShardRaft};

#[derive(Default)]
struct Nodes {
    rafts: BTreeMap<NodeId, Raft<ShardRaft>>,
    cut_off: BTreeSet<NodeId>,
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

    /// The network of node `from`, for its `Raft`.
    pub fn network_of(&self, from: NodeId) -> NodeNetwork {
        NodeNetwork {
            router: self.clone(),
            from,
        }
    }

    /// `to`'s handle, if `from` can reach it.
    fn reach(&self, from: NodeId, to: NodeId) -> Result<Raft<ShardRaft>, Unreachable> {
        let nodes = self.0.lock();
        let unreachable = || {
            Unreachable::new(&io::Error::new(
                io::ErrorKind::NotConnected,
                format!("node {to} cannot be reached from node {from}"),
            ))
        };
        if nodes.cut_off.contains(&from) || nodes.cut_off.contains(&to) {
            return Err(unreachable());
        }
        nodes.rafts.get(&to).cloned().ok_or_else(unreachable)
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

impl RaftNetwork<ShardRaft> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ShardRaft>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        let to = self.router.reach(self.from, self.to)?;
        to.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<ShardRaft>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let to = self.router.reach(self.from, self.to)?;
        to.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        let to = self.router.reach(self.from, self.to)?;
        to.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}
