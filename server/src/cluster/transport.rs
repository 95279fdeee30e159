//! This node's side of the Raft transport: one HTTP/2 connection per peer,
//! opened on first use and again after it breaks, each message a postcard
//! body POSTed to the peer's `peer_api` with the shared secret. Every call
//! has openraft's deadline for it (its `hard_ttl`) and a bounded answer;
//! openraft paces retries to a peer that cannot be reached.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ingressoja_cluster::{NodeId, ShardRaft};
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{MAX_MESSAGE_BYTES, PEER_AUTH_SCHEME};

/// How long opening a connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The paths of the peer API.
pub mod path {
    /// `AppendEntries` (and heartbeats).
    pub const APPEND: &str = "/raft/append";
    /// `RequestVote`.
    pub const VOTE: &str = "/raft/vote";
    /// `InstallSnapshot`.
    pub const SNAPSHOT: &str = "/raft/snapshot";
}

/// This node's connections to its peers (openraft's network factory).
#[derive(Clone)]
pub struct PeerNetwork {
    node: NodeId,
    secret: Arc<str>,
    partition: Option<Arc<Partition>>,
}

impl PeerNetwork {
    /// Node `node`'s connections, showing `secret`.
    pub fn new(node: NodeId, secret: &str) -> PeerNetwork {
        PeerNetwork {
            node,
            secret: Arc::from(secret),
            partition: None,
        }
    }

    /// The same, with the partition switch of the tests (see
    /// [`Partition`]).
    pub fn with_partition(mut self, partition: Option<Partition>) -> PeerNetwork {
        self.partition = partition.map(Arc::new);
        self
    }
}

/// Fault injection for the tests (never set it in production): a file
/// that names, one per line, the nodes cut off from every other. A node
/// reads it before each message and neither sends to a cut-off node nor,
/// when cut off itself, sends at all: a partition of real processes,
/// where the kernel offers no netem. Set by the environment variable
/// `INGRESSOJA_TEST_PARTITION_FILE`.
#[derive(Debug)]
pub struct Partition {
    file: std::path::PathBuf,
}

impl Partition {
    /// The switch in `file` (absent or empty: nobody is cut off).
    pub fn new(file: std::path::PathBuf) -> Partition {
        Partition { file }
    }

    fn cuts(&self, from: NodeId, to: NodeId) -> bool {
        let Ok(text) = std::fs::read_to_string(&self.file) else {
            return false;
        };
        text.lines()
            .filter_map(|line| line.trim().parse::<NodeId>().ok())
            .any(|cut| cut == from || cut == to)
    }
}

impl RaftNetworkFactory<ShardRaft> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            from: self.node,
            target,
            addr: node.addr.clone(),
            secret: self.secret.clone(),
            sender: None,
            partition: self.partition.clone(),
        }
    }
}

/// A connection to one peer.
pub struct PeerConnection {
    from: NodeId,
    target: NodeId,
    addr: String,
    secret: Arc<str>,
    sender: Option<SendRequest<Full<Bytes>>>,
    partition: Option<Arc<Partition>>,
}

/// Why one exchange failed, before openraft's error types.
enum Failure {
    /// No connection could be made: openraft backs off.
    Unreachable(io::Error),
    /// The connection broke, timed out or the answer was unusable.
    Network(io::Error),
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerConnection {
    /// POSTs `request` to `path` and reads the peer's answer, within `ttl`.
    async fn call<Req, Resp, E>(&mut self, path: &str, request: &Req, ttl: Duration) -> Rpc<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if let Some(partition) = &self.partition
            && partition.cuts(self.from, self.target)
        {
            let cut = io::Error::new(io::ErrorKind::NotConnected, "partitioned (test switch)");
            return Err(RPCError::Unreachable(Unreachable::new(&cut)));
        }
        let body = postcard::to_stdvec(request)
            .map_err(|e| RPCError::Network(NetworkError::new(&io::Error::other(e))))?;
        let exchanged = match tokio::time::timeout(ttl, self.exchange(path, body)).await {
            Ok(exchanged) => exchanged,
            Err(_) => {
                // The connection may be stuck: the next call opens another.
                self.sender = None;
                Err(Failure::Network(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("node {} did not answer within {ttl:?}", self.target),
                )))
            }
        };
        let bytes = match exchanged {
            Ok(bytes) => bytes,
            Err(Failure::Unreachable(e)) => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Err(Failure::Network(e)) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        let answer: Result<Resp, RaftError<NodeId, E>> = postcard::from_bytes(&bytes)
            .map_err(|e| RPCError::Network(NetworkError::new(&io::Error::other(e))))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn exchange(&mut self, path: &str, body: Vec<u8>) -> Result<Bytes, Failure> {
        let sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        let mut sender = sender;
        sender.ready().await.map_err(|e| {
            Failure::Network(io::Error::other(format!(
                "connection to node {}: {e}",
                self.target
            )))
        })?;
        let request = hyper::Request::post(path)
            .header(
                hyper::header::AUTHORIZATION,
                format!("{PEER_AUTH_SCHEME}{}", self.secret),
            )
            .header(hyper::header::CONTENT_TYPE, "application/postcard")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Network(io::Error::other(e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Network(io::Error::other(e)))?;
        // The connection is good: keep it for the next message.
        self.sender = Some(sender);
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_MESSAGE_BYTES)
            .collect()
            .await
            .map_err(|e| Failure::Network(io::Error::other(e.to_string())))?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            let said = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(Failure::Network(io::Error::other(format!(
                "node {} answered {status}: {said}",
                self.target
            ))));
        }
        Ok(body)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        open(&self.addr).await.map_err(|e| {
            Failure::Unreachable(io::Error::new(
                e.kind(),
                format!("node {} at {}: {e}", self.target, self.addr),
            ))
        })
    }
}

/// Opens an HTTP/2 connection to a peer listener at `addr` (within
/// [`CONNECT_TIMEOUT`]); the connection's driver runs on its own task and
/// ends when either side closes.
pub async fn open(addr: &str) -> io::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    // Heartbeats are small and late ones start elections.
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

impl RaftNetwork<ShardRaft> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ShardRaft>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        self.call(path::APPEND, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<ShardRaft>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(path::SNAPSHOT, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        self.call(path::VOTE, &rpc, option.hard_ttl()).await
    }
}
