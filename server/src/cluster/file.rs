//! The cluster file: which nodes hold the sale, where each listens for its
//! peers and for fans, and the secret the peers share.
//!
//! ```toml
//! secret = "at least 32 characters, the same on every node"
//!
//! [[nodes]]
//! id = 1
//! peers = "10.0.0.1:7101"   # Raft messages from the other nodes
//! http = "10.0.0.1:8080"    # fans and operators
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use ingressoja_runtime::Member;
use openraft::BasicNode;
use serde::Deserialize;

use super::transport::PeerNetwork;

/// The shortest shared secret accepted.
pub const MIN_SECRET_CHARS: usize = 32;

/// A node as the cluster file names it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Its id (nonzero, unique).
    pub id: u64,
    /// Where it listens for the other nodes.
    pub peers: SocketAddr,
    /// Where it serves fans and operators.
    pub http: SocketAddr,
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// What a node shows its peers.
    pub secret: String,
    /// The nodes that found the group.
    pub nodes: Vec<NodeEntry>,
}

/// Why a cluster file is refused.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    /// It could not be read.
    #[error("cannot read the cluster file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// It is not a cluster file.
    #[error("the cluster file {path} is not valid: {error}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        error: toml::de::Error,
    },
    /// It parses but makes no cluster.
    #[error("the cluster file is not usable: {0}")]
    Invalid(String),
}

impl ClusterFile {
    /// Reads and checks a cluster file.
    pub fn load(path: &Path) -> Result<ClusterFile, ClusterFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| ClusterFileError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let file: ClusterFile = toml::from_str(&text).map_err(|error| ClusterFileError::Parse {
            path: path.display().to_string(),
            error,
        })?;
        file.check()?;
        Ok(file)
    }

    /// Ids unique and nonzero, addresses unique, a secret long enough.
    pub fn check(&self) -> Result<(), ClusterFileError> {
        let invalid = |why: String| Err(ClusterFileError::Invalid(why));
        if self.secret.chars().count() < MIN_SECRET_CHARS {
            return invalid(format!(
                "the secret must have at least {MIN_SECRET_CHARS} characters"
            ));
        }
        if self.nodes.is_empty() {
            return invalid("it names no node".into());
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut addresses = std::collections::BTreeSet::new();
        for node in &self.nodes {
            if node.id == 0 {
                return invalid("node ids start at 1".into());
            }
            if !ids.insert(node.id) {
                return invalid(format!("node {} is named twice", node.id));
            }
            for address in [node.peers, node.http] {
                if !addresses.insert(address) {
                    return invalid(format!("address {address} is used twice"));
                }
            }
        }
        Ok(())
    }

    /// The node with this id.
    pub fn node(&self, id: u64) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The founding voters, each known by its peers address.
    pub fn founders(&self) -> BTreeMap<u64, BasicNode> {
        self.nodes
            .iter()
            .map(|n| (n.id, BasicNode::new(n.peers.to_string())))
            .collect()
    }

    /// How node `id` takes part in the group: it never founds it by itself
    /// (`ingressoja cluster init` does, once; a node added later waits to
    /// be added).
    pub fn member(&self, id: u64) -> Result<Member<PeerNetwork>, ClusterFileError> {
        if self.node(id).is_none() {
            return Err(ClusterFileError::Invalid(format!(
                "node {id} is not in the cluster file"
            )));
        }
        Ok(Member {
            node: id,
            network: PeerNetwork::new(id, &self.secret),
            founders: None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> Result<ClusterFile, ClusterFileError> {
        let file: ClusterFile = toml::from_str(text).map_err(|error| ClusterFileError::Parse {
            path: "test".into(),
            error,
        })?;
        file.check()?;
        Ok(file)
    }

    fn three(secret: &str) -> String {
        let mut text = format!("secret = \"{secret}\"\n");
        for id in 1..=3 {
            text.push_str(&format!(
                "[[nodes]]\nid = {id}\npeers = \"127.0.0.1:710{id}\"\nhttp = \"127.0.0.1:810{id}\"\n"
            ));
        }
        text
    }

    #[test]
    fn three_nodes_found_the_group_known_by_their_peer_addresses() {
        let file = parse(&three(SECRET)).unwrap();
        let founders = file.founders();
        assert_eq!(founders.len(), 3);
        assert_eq!(founders[&2].addr, "127.0.0.1:7102");
        assert_eq!(file.member(3).unwrap().node, 3);
        assert!(file.member(4).is_err(), "not in the file");
    }

    #[test]
    fn a_short_secret_a_repeated_id_or_address_and_unknown_keys_are_refused() {
        let short = parse(&three("short")).unwrap_err().to_string();
        assert!(short.contains("at least 32"), "{short}");
        let twice = three(SECRET).replace("id = 3", "id = 2");
        assert!(
            parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("named twice")
        );
        let shared = three(SECRET).replace("127.0.0.1:8103", "127.0.0.1:7101");
        assert!(
            parse(&shared)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
        let typo = three(SECRET).replace("peers =", "peer =");
        assert!(matches!(parse(&typo), Err(ClusterFileError::Parse { .. })));
        let none = format!("secret = \"{SECRET}\"\nnodes = []\n");
        assert!(parse(&none).unwrap_err().to_string().contains("no node"));
    }
}
