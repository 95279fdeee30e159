//! How a node changes the shared state: the change is logged by the
//! leader's shard (this node's own when it leads, otherwise the leader's,
//! reached over the peers' API at [`ATTACH_PATH`]), and the answer waits
//! until this node has applied it, so that whatever the node reads next
//! includes it. Calls block (a commit, a network hop): callers run them off
//! their async workers, as they do for password hashing.
//!
//! Sent again only when nothing was done: the leader could not be reached
//! or answered that it no longer leads. A change the leader took and never
//! answered may have been made; it is not sent twice (a second account, a
//! second session), and the caller is told the outcome is unknown.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::SendRequest;
use ingressoja_cluster::NodeId;
use serde::{Deserialize, Serialize};

use crate::accounts::holder::Holder;
use crate::audit::{AuditSink, Entry};
use crate::cluster::PEER_AUTH_SCHEME;
use crate::http::settings::{EventSecurity, EventTerms};
use crate::runtime::{Attacher, EventId, RuntimeError};

use super::state::SharedState;
use super::write::{Outcome, Write};

/// The peers' API path a follower proposes a change to the leader on.
pub const ATTACH_PATH: &str = "/cluster/attach";
/// How long a change may take to commit and be applied here.
const COMMIT_WAIT: Duration = Duration::from_secs(10);
/// How long a change waits for the group to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// The biggest answer read from the leader.
const MAX_ANSWER_BYTES: usize = 1024;

/// What the leader answers a proposed change.
#[derive(Debug, Serialize, Deserialize)]
pub enum AttachAnswer {
    /// Committed as record `seq`; what applying it decided on the leader,
    /// for a command-line tool that has no copy of its own.
    Committed {
        /// The record.
        seq: u64,
        /// What applying it decided.
        outcome: Option<Outcome>,
    },
    /// Not done: this node does not lead.
    NotLeader,
    /// Not done, for this reason (overloaded, stopped).
    Refused(String),
    /// Logged, and then the leader could not tell whether it committed.
    Unknown(String),
}

/// The other nodes, for a follower to reach its leader.
struct Peers {
    node: NodeId,
    addrs: BTreeMap<NodeId, String>,
    secret: String,
}

/// See the module documentation.
pub struct Proposer {
    attacher: Attacher,
    state: Arc<SharedState>,
    peers: Option<Peers>,
    /// The HTTP/2 connection to the leader, shared by every change this
    /// node sends it (one connection multiplexes them; a connection per
    /// change overran the leader's peer listener in a spike of logins).
    to_leader: parking_lot::Mutex<Option<(NodeId, SendRequest<Full<Bytes>>)>>,
}

/// One try at the leader.
enum Try {
    Committed(u64),
    /// Nothing was done: another leader may take it.
    NotDone(String),
    /// It may have been done.
    Unknown(String),
}

impl Proposer {
    /// Proposes through `attacher` (a single node: its own shard).
    pub fn new(attacher: Attacher, state: Arc<SharedState>) -> Proposer {
        Proposer {
            attacher,
            state,
            peers: None,
            to_leader: parking_lot::Mutex::new(None),
        }
    }

    /// The same for node `node` of a cluster, whose peers listen at
    /// `addrs` and know `secret`.
    pub fn in_cluster(
        mut self,
        node: NodeId,
        addrs: BTreeMap<NodeId, String>,
        secret: &str,
    ) -> Proposer {
        self.peers = Some(Peers {
            node,
            addrs,
            secret: secret.to_owned(),
        });
        self
    }

    /// The nodes' peers' addresses and the cluster secret (none on a
    /// single node).
    pub fn peers(&self) -> Option<(&BTreeMap<NodeId, String>, &str)> {
        self.peers
            .as_ref()
            .map(|peers| (&peers.addrs, peers.secret.as_str()))
    }

    /// The shared state this proposes to.
    pub fn state(&self) -> &Arc<SharedState> {
        &self.state
    }

    /// Logs `write`, waits until this node has applied it, and returns
    /// what applying it decided.
    pub fn propose(&self, write: &Write) -> io::Result<Outcome> {
        let bytes = postcard::to_stdvec(write).map_err(io::Error::other)?;
        let seq = self.commit(bytes)?;
        if !self.state.wait_applied(seq, COMMIT_WAIT) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("record {seq} committed but not applied here within {COMMIT_WAIT:?}"),
            ));
        }
        self.state.outcome(seq).ok_or_else(|| {
            io::Error::other(format!("the outcome of record {seq} is no longer known"))
        })
    }

    /// Sets an event's security settings on every node.
    pub fn set_event_security(&self, event: EventId, security: EventSecurity) -> io::Result<()> {
        self.propose(&Write::EventSecurity {
            event: event.0,
            security,
        })
        .map(|_| ())
    }

    /// Sets an event's terms of sale on every node.
    pub fn set_event_terms(&self, event: EventId, terms: EventTerms) -> io::Result<()> {
        self.propose(&Write::EventTerms {
            event: event.0,
            terms,
        })
        .map(|_| ())
    }

    /// The secret `name` every node shares: read here, or made (the first
    /// node to propose one wins, so all read the same).
    pub fn shared_secret(&self, name: &str) -> io::Result<[u8; 32]> {
        if let Some(secret) = self.state.settings().shared_secret(name)? {
            return Ok(secret);
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
        self.propose(&Write::SharedSecret {
            name: name.to_owned(),
            secret,
        })?;
        self.state
            .settings()
            .shared_secret(name)?
            .ok_or_else(|| io::Error::other(format!("the shared secret {name} was not kept")))
    }

    /// Sets an account's ticket holder: `Done`, `Taken` (the CPF has
    /// another account) or `Conflict` (a holder is set already).
    pub fn set_holder(&self, account: u64, holder: Holder) -> io::Result<Outcome> {
        self.propose(&Write::SetHolder { account, holder })
    }

    /// Has the change committed by the leader; its record's number.
    fn commit(&self, bytes: Vec<u8>) -> io::Result<u64> {
        let until = Instant::now() + LEADER_WAIT;
        loop {
            let attempt = match &self.peers {
                Some(peers) if !self.attacher.leads() => match self.attacher.leader() {
                    Some(leader) if leader != peers.node => self.at_leader(peers, leader, &bytes),
                    _ => Try::NotDone("no leader is known yet".into()),
                },
                _ => self.here(bytes.clone()),
            };
            match attempt {
                Try::Committed(seq) => return Ok(seq),
                Try::Unknown(why) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the change may or may not have been made: {why}"),
                    ));
                }
                Try::NotDone(why) if Instant::now() >= until => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("no leader took the change: {why}"),
                    ));
                }
                Try::NotDone(_) => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Logs through this node's own shard.
    fn here(&self, bytes: Vec<u8>) -> Try {
        // Refused at the door (overloaded, stopped): nothing was queued.
        let pending = match self.attacher.attach(bytes) {
            Ok(pending) => pending,
            Err(error) => return Try::NotDone(error.to_string()),
        };
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                match handle.block_on(async { tokio::time::timeout(COMMIT_WAIT, pending).await }) {
                    Ok(answer) => answer,
                    Err(_) => return Try::Unknown(format!("no commit within {COMMIT_WAIT:?}")),
                }
            }
            // A tool without an async runtime.
            Err(_) => pending.wait(),
        };
        match answer {
            Ok(seq) => Try::Committed(seq),
            // Refused before it was proposed: nothing was done.
            Err(RuntimeError::NotLeader) if self.peers.is_some() => {
                Try::NotDone("this node no longer leads".into())
            }
            Err(error) => Try::Unknown(error.to_string()),
        }
    }

    /// Sends the change to `leader` over the peers' API.
    fn at_leader(&self, peers: &Peers, leader: NodeId, bytes: &[u8]) -> Try {
        let Some(addr) = peers.addrs.get(&leader) else {
            return Try::NotDone(format!("node {leader} is not in the cluster file"));
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return Try::NotDone("no async runtime to reach the leader with".into());
        };
        let body = Bytes::copy_from_slice(bytes);
        let cached = self
            .to_leader
            .lock()
            .as_ref()
            .filter(|(node, sender)| *node == leader && !sender.is_closed())
            .map(|(_, sender)| sender.clone());
        let exchange = async {
            let sender = match cached {
                Some(sender) => sender,
                None => {
                    let sender = crate::cluster::transport::open(addr)
                        .await
                        .map_err(Sent::No)?;
                    *self.to_leader.lock() = Some((leader, sender.clone()));
                    sender
                }
            };
            post(sender, &peers.secret, body).await
        };
        let answered = handle.block_on(async { tokio::time::timeout(COMMIT_WAIT, exchange).await });
        if !matches!(answered, Ok(Ok(_))) {
            // A broken or stuck connection is not used again.
            *self.to_leader.lock() = None;
        }
        match answered {
            Err(_) => Try::Unknown(format!("node {leader} did not answer in time")),
            Ok(Err(Sent::No(error))) => Try::NotDone(format!("node {leader}: {error}")),
            Ok(Err(Sent::Maybe(error))) => Try::Unknown(format!("node {leader}: {error}")),
            Ok(Ok(answer)) => match postcard::from_bytes::<AttachAnswer>(&answer) {
                Ok(AttachAnswer::Committed { seq, .. }) => Try::Committed(seq),
                Ok(AttachAnswer::NotLeader) => Try::NotDone(format!("node {leader} does not lead")),
                Ok(AttachAnswer::Refused(why)) => Try::NotDone(format!("node {leader}: {why}")),
                Ok(AttachAnswer::Unknown(why)) => Try::Unknown(format!("node {leader}: {why}")),
                Err(error) => Try::Unknown(format!("node {leader} answered {error}")),
            },
        }
    }
}

/// Whether a failed exchange may have reached the leader.
enum Sent {
    No(io::Error),
    Maybe(io::Error),
}

/// POSTs `body` to a peers' listener over `sender`.
async fn post(
    mut sender: SendRequest<Full<Bytes>>,
    secret: &str,
    body: Bytes,
) -> Result<Bytes, Sent> {
    sender
        .ready()
        .await
        .map_err(|e| Sent::No(io::Error::other(e)))?;
    let request = hyper::Request::post(ATTACH_PATH)
        .header(
            hyper::header::AUTHORIZATION,
            format!("{PEER_AUTH_SCHEME}{secret}"),
        )
        .header(hyper::header::CONTENT_TYPE, "application/postcard")
        .body(Full::new(body))
        .map_err(|e| Sent::No(io::Error::other(e)))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Sent::Maybe(io::Error::other(e)))?;
    let status = response.status();
    let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| Sent::Maybe(io::Error::other(e.to_string())))?
        .to_bytes();
    if status != hyper::StatusCode::OK {
        let said = String::from_utf8_lossy(&answer).into_owned();
        return Err(Sent::Maybe(io::Error::other(format!("{status}: {said}"))));
    }
    Ok(answer)
}

/// The leader's side of [`ATTACH_PATH`]: logs the change through its shard
/// and says what applying it decided here.
pub async fn answer_attach(
    attacher: &Attacher,
    state: &SharedState,
    bytes: Vec<u8>,
) -> AttachAnswer {
    let pending = match attacher.attach(bytes) {
        Ok(pending) => pending,
        Err(RuntimeError::NotLeader) => return AttachAnswer::NotLeader,
        Err(error) => return AttachAnswer::Refused(error.to_string()),
    };
    match tokio::time::timeout(COMMIT_WAIT, pending).await {
        // Applied here before the commit was answered.
        Ok(Ok(seq)) => AttachAnswer::Committed {
            seq,
            outcome: state.outcome(seq),
        },
        // Refused before it was proposed: nothing done, the follower may
        // send it to the next leader.
        Ok(Err(RuntimeError::NotLeader)) => AttachAnswer::NotLeader,
        // Proposed, then deposed (`Deposed`), or the log failed: whether
        // it commits is for the next leader to say; never re-sent.
        Ok(Err(error)) => AttachAnswer::Unknown(error.to_string()),
        Err(_) => AttachAnswer::Unknown("no commit in time".into()),
    }
}

/// Has a change committed by a running cluster, for a command-line tool
/// (no node of its own): each node of `nodes` (peer addresses) in turn
/// until the leader takes it. The record and what applying it decided.
pub fn propose_to_cluster(
    nodes: &[String],
    secret: &str,
    write: &Write,
) -> io::Result<(u64, Option<Outcome>)> {
    let bytes = Bytes::from(postcard::to_stdvec(write).map_err(io::Error::other)?);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let until = Instant::now() + LEADER_WAIT;
    let mut said = Vec::new();
    loop {
        for addr in nodes {
            let sent = tokio.block_on(async {
                let exchange = async {
                    let sender = crate::cluster::transport::open(addr)
                        .await
                        .map_err(Sent::No)?;
                    post(sender, secret, bytes.clone()).await
                };
                tokio::time::timeout(COMMIT_WAIT, exchange).await
            });
            let answer = match sent {
                Ok(Ok(answer)) => answer,
                Ok(Err(Sent::No(error))) => {
                    said.push(format!("{addr}: {error}"));
                    continue;
                }
                Ok(Err(Sent::Maybe(error))) => {
                    return Err(io::Error::other(format!(
                        "{addr} may or may not have made the change: {error}"
                    )));
                }
                Err(_) => {
                    return Err(io::Error::other(format!(
                        "{addr} did not answer in time: the change may or may not be made"
                    )));
                }
            };
            match postcard::from_bytes::<AttachAnswer>(&answer) {
                Ok(AttachAnswer::Committed { seq, outcome }) => return Ok((seq, outcome)),
                Ok(AttachAnswer::NotLeader) => said.push(format!("{addr}: not the leader")),
                Ok(AttachAnswer::Refused(why)) => said.push(format!("{addr}: {why}")),
                Ok(AttachAnswer::Unknown(why)) => {
                    return Err(io::Error::other(format!(
                        "{addr}: the change may or may not be made: {why}"
                    )));
                }
                Err(error) => return Err(io::Error::other(format!("{addr} answered {error}"))),
            }
        }
        if Instant::now() >= until {
            return Err(io::Error::other(format!(
                "no node took the change: {}",
                said.join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl AuditSink for Proposer {
    fn append(&self, entry: Entry) -> io::Result<u64> {
        match self.propose(&Write::Audit(Box::new(entry)))? {
            Outcome::Audited(seq) => Ok(seq),
            other => Err(io::Error::other(format!(
                "an audit entry was applied as {other:?}"
            ))),
        }
    }
}
