//! The operators' side of the peer listener: found the group, add or
//! remove a voter, and report each node's view (`ingressoja cluster
//! init|add-node|remove-node|status`). JSON bodies, the cluster secret
//! like every peer message; membership changes go through openraft (a
//! joint consensus), never around it.

use std::collections::{BTreeMap, BTreeSet};

use ingressoja_cluster::{NodeId, ShardRaft};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft};
use serde::{Deserialize, Serialize};

/// The paths.
pub mod path {
    /// `POST`: found the group with these voters (`Founders`).
    pub const INIT: &str = "/cluster/init";
    /// `POST`: add a voter (`AddNode`), on the leader.
    pub const ADD: &str = "/cluster/add";
    /// `POST`: remove a voter (`RemoveNode`), on the leader.
    pub const REMOVE: &str = "/cluster/remove";
    /// `GET`: this node's view (`NodeStatus`).
    pub const STATUS: &str = "/cluster/status";
}

/// The voters that found the group, each with its peers address.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Founders {
    /// Id → peers address.
    pub nodes: BTreeMap<NodeId, String>,
}

/// A node to add as a voter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddNode {
    /// Its id.
    pub id: NodeId,
    /// Its peers address.
    pub peers: String,
}

/// A voter to remove.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoveNode {
    /// Its id.
    pub id: NodeId,
}

/// What a node knows of the group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Its id.
    pub id: NodeId,
    /// Leader, Follower, Candidate or Learner.
    pub state: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its log's last index.
    pub last_log_index: Option<u64>,
    /// The last entry it applied.
    pub applied_index: Option<u64>,
    /// The voters, as its membership says.
    pub voters: BTreeSet<NodeId>,
    /// The learners (catching up, not voting).
    pub learners: BTreeSet<NodeId>,
}

/// How a membership request ended: a status and a message for the CLI.
pub struct Outcome {
    /// 200 done; 409 not the leader (ask another node); 400 refused.
    pub status: u16,
    /// What happened, for the operator.
    pub message: String,
}

impl Outcome {
    fn done(message: String) -> Outcome {
        Outcome {
            status: 200,
            message,
        }
    }

    fn failed(error: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Outcome {
        let status = match &error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => 409,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(_)) => 400,
            RaftError::Fatal(_) => 503,
        };
        Outcome {
            status,
            message: error.to_string(),
        }
    }
}

/// This node's view.
pub fn status(raft: &Raft<ShardRaft>) -> NodeStatus {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    NodeStatus {
        id: metrics.id,
        state: format!("{:?}", metrics.state),
        term: metrics.current_term,
        leader: metrics.current_leader,
        last_log_index: metrics.last_log_index,
        applied_index: metrics.last_applied.map(|l| l.index),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    }
}

/// Founds the group (a node already in one says so; that is fine when
/// the founders are the same, which the CLI guarantees by sending every
/// node the same file).
pub async fn init(raft: &Raft<ShardRaft>, founders: Founders) -> Outcome {
    let members: BTreeMap<NodeId, BasicNode> = founders
        .nodes
        .into_iter()
        .map(|(id, addr)| (id, BasicNode::new(addr)))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => Outcome::done("founded".into()),
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            Outcome::done("already in a group".into())
        }
        Err(error) => Outcome {
            status: 400,
            message: error.to_string(),
        },
    }
}

/// Adds a voter: first as a learner, waiting until it has caught up with
/// the log, then promoted (the two steps openraft requires, so a new node
/// never counts toward a majority before it holds the log).
pub async fn add(raft: &Raft<ShardRaft>, node: AddNode) -> Outcome {
    if let Err(error) = raft
        .add_learner(node.id, BasicNode::new(node.peers), true)
        .await
    {
        return Outcome::failed(error);
    }
    let voters = BTreeSet::from([node.id]);
    match raft
        .change_membership(ChangeMembers::AddVoterIds(voters), false)
        .await
    {
        Ok(done) => Outcome::done(format!("node {} votes from entry {}", node.id, done.log_id)),
        Err(error) => Outcome::failed(error),
    }
}

/// Removes a voter (it stops getting the log).
pub async fn remove(raft: &Raft<ShardRaft>, node: RemoveNode) -> Outcome {
    let voters = BTreeSet::from([node.id]);
    match raft
        .change_membership(ChangeMembers::RemoveVoters(voters), false)
        .await
    {
        Ok(done) => Outcome::done(format!("node {} removed at entry {}", node.id, done.log_id)),
        Err(error) => Outcome::failed(error),
    }
}
