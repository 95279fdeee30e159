//! `ingressoja cluster init|status|add-node|remove-node`: the operators'
//! membership commands, sent to the nodes' peer listeners (named in the
//! cluster file, with its secret). A change goes to each node in turn until
//! the leader takes it; the others answer 409.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;

use super::PEER_AUTH_SCHEME;
use super::file::ClusterFile;
use super::membership::{self, AddNode, Founders, NodeStatus, RemoveNode};

/// A status or a founding answers at once; adding a node waits until it
/// has caught up with the log.
const QUICK: Duration = Duration::from_secs(10);
const CATCH_UP: Duration = Duration::from_secs(600);

/// An answer's body is short.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterCliError {
    /// No node could be reached, or none did it.
    #[error("{0}")]
    Failed(String),
    /// The command's own runtime would not start.
    #[error("cannot start: {0}")]
    Io(#[from] io::Error),
}

/// One request to a node's peers' listener: a JSON answer, within `within`.
pub(crate) async fn send(
    addr: &str,
    secret: &str,
    path: &str,
    body: Option<Vec<u8>>,
    within: Duration,
) -> io::Result<(u16, serde_json::Value)> {
    let exchange = async {
        let mut sender = super::transport::open(addr).await?;
        sender.ready().await.map_err(io::Error::other)?;
        let method = if body.is_some() { "POST" } else { "GET" };
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(
                hyper::header::AUTHORIZATION,
                format!("{PEER_AUTH_SCHEME}{secret}"),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(io::Error::other)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| io::Error::other(e.to_string()))?
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok((status, value))
    };
    tokio::time::timeout(within, exchange).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {within:?}"),
        )
    })?
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn body(value: &impl Serialize) -> Result<Vec<u8>, ClusterCliError> {
    serde_json::to_vec(value).map_err(|e| ClusterCliError::Failed(e.to_string()))
}

fn said(answer: &serde_json::Value) -> String {
    answer["message"]
        .as_str()
        .or_else(|| answer["error"].as_str())
        .map_or_else(|| answer.to_string(), str::to_string)
}

/// Founds the group with the file's nodes: every node is told the same
/// founders; one that took it is enough.
pub fn init(file: &ClusterFile) -> Result<Vec<String>, ClusterCliError> {
    let founders = Founders {
        nodes: file
            .founders()
            .into_iter()
            .map(|(id, node)| (id, node.addr))
            .collect(),
    };
    let founders = body(&founders)?;
    let runtime = runtime()?;
    let mut lines = Vec::new();
    let mut founded = false;
    for node in &file.nodes {
        let path = membership::path::INIT;
        let answer = runtime.block_on(send(
            &node.peers.to_string(),
            &file.secret,
            path,
            Some(founders.clone()),
            QUICK,
        ));
        lines.push(match answer {
            Ok((200, answer)) => {
                founded = true;
                format!("node {}: {}", node.id, said(&answer))
            }
            Ok((status, answer)) => format!("node {}: {status} {}", node.id, said(&answer)),
            Err(error) => format!("node {}: unreachable ({error})", node.id),
        });
    }
    if founded {
        Ok(lines)
    } else {
        Err(ClusterCliError::Failed(lines.join("\n")))
    }
}

/// A node's view, or why it could not be had.
pub type Seen = Result<NodeStatus, String>;

/// Each node's view, by id.
pub fn status(file: &ClusterFile) -> Result<Vec<(u64, Seen)>, ClusterCliError> {
    let runtime = runtime()?;
    Ok(file
        .nodes
        .iter()
        .map(|node| {
            let answer = runtime.block_on(send(
                &node.peers.to_string(),
                &file.secret,
                membership::path::STATUS,
                None,
                QUICK,
            ));
            let status = match answer {
                Ok((200, value)) => serde_json::from_value(value).map_err(|e| e.to_string()),
                Ok((status, value)) => Err(format!("{status} {}", said(&value))),
                Err(error) => Err(format!("unreachable ({error})")),
            };
            (node.id, status)
        })
        .collect())
}

/// Sends a membership change to each node until the leader takes it.
fn change(file: &ClusterFile, path: &str, request: Vec<u8>) -> Result<String, ClusterCliError> {
    let runtime = runtime()?;
    let mut tried = Vec::new();
    for node in &file.nodes {
        let answer = runtime.block_on(send(
            &node.peers.to_string(),
            &file.secret,
            path,
            Some(request.clone()),
            CATCH_UP,
        ));
        match answer {
            Ok((200, answer)) => return Ok(said(&answer)),
            Ok((409, _)) => tried.push(format!("node {}: not the leader", node.id)),
            Ok((status, answer)) => {
                return Err(ClusterCliError::Failed(format!(
                    "node {}: {status} {}",
                    node.id,
                    said(&answer)
                )));
            }
            Err(error) => tried.push(format!("node {}: unreachable ({error})", node.id)),
        }
    }
    Err(ClusterCliError::Failed(format!(
        "no leader took it:\n{}",
        tried.join("\n")
    )))
}

/// Adds node `id` (named in the file, and running) as a voter.
pub fn add_node(file: &ClusterFile, id: u64) -> Result<String, ClusterCliError> {
    let node = file
        .node(id)
        .ok_or_else(|| ClusterCliError::Failed(format!("node {id} is not in the cluster file")))?;
    let request = AddNode {
        id,
        peers: node.peers.to_string(),
    };
    change(file, membership::path::ADD, body(&request)?)
}

/// Removes voter `id`.
pub fn remove_node(file: &ClusterFile, id: u64) -> Result<String, ClusterCliError> {
    change(file, membership::path::REMOVE, body(&RemoveNode { id })?)
}
