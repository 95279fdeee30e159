//! The network of a group with one voter (`make run`, a single node): it
//! has nobody to reach, and a message to anyone is answered "unreachable".
//! A one-voter group elects itself and commits on its own sync, so it never
//! sends one; this keeps the single node on the same code path as a
//! cluster without a listener.

use std::io;

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::types::{NodeId, ShardRaft};

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPeers;

/// A connection to nobody.
#[derive(Clone, Copy, Debug)]
pub struct Nobody(NodeId);

impl RaftNetworkFactory<ShardRaft> for NoPeers {
    type Network = Nobody;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Nobody {
        Nobody(target)
    }
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Nobody {
    fn unreachable(self) -> Unreachable {
        Unreachable::new(&io::Error::new(
            io::ErrorKind::NotConnected,
            format!("a single node has no peer {}", self.0),
        ))
    }
}

impl RaftNetwork<ShardRaft> for Nobody {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<ShardRaft>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<ShardRaft>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }
}
