//! The listener other nodes' Raft messages arrive on (HTTP/2 only, its own
//! address, never the fans'): the shared secret first, then a bounded
//! postcard body, handed to this node's Raft; its answer (or its refusal,
//! a Raft error the sender understands) goes back as postcard. The
//! operators' membership commands (`membership.rs`) come here too, as
//! JSON, and a follower's changes to the shared state
//! (`replicated/proposer.rs`), for the leader to log. Anything else gets a 4xx naming the problem.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ingressoja_cluster::ShardRaft;
use openraft::Raft;
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::membership;
use super::transport::path;
use super::{MAX_MESSAGE_BYTES, PEER_AUTH_SCHEME};
use crate::replicated::SharedState;
use crate::replicated::proposer::{ATTACH_PATH, answer_attach};
use crate::runtime::Attacher;

/// Peer connections at once (a handful of nodes, a few each).
const MAX_PEER_CONNECTIONS: usize = 64;

/// A message's body must arrive within this long.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What serving a peer needs.
struct Peers {
    raft: Raft<ShardRaft>,
    attacher: Attacher,
    shared: Arc<SharedState>,
    secret: Arc<str>,
}

/// Serves peers on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    raft: Raft<ShardRaft>,
    attacher: Attacher,
    shared: Arc<SharedState>,
    secret: &str,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let peers = Arc::new(Peers {
        raft,
        attacher,
        shared,
        secret: Arc::from(secret),
    });
    let permits = Arc::new(Semaphore::new(MAX_PEER_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a peer connection failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peers = peers.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let peers = peers.clone();
                async move { Ok::<_, Infallible>(handle(&peers, request).await) }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(64)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

fn authorized(peers: &Peers, request: &Request<Incoming>) -> bool {
    let shown = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(PEER_AUTH_SCHEME))
        .unwrap_or("");
    bool::from(shown.as_bytes().ct_eq(peers.secret.as_bytes()))
}

async fn handle(peers: &Peers, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if !authorized(peers, &request) {
        return plain(StatusCode::UNAUTHORIZED, "wrong or missing cluster secret");
    }
    let raft = &peers.raft;
    let path = request.uri().path().to_owned();
    if path == membership::path::STATUS {
        return json(200, &membership::status(raft));
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "peer messages are POSTed");
    }
    let body = Limited::new(request.into_body(), MAX_MESSAGE_BYTES).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "message too large or cut"),
        Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, "message body too slow"),
    };
    match path.as_str() {
        path::APPEND => answer(&body, |rpc| raft.append_entries(rpc)).await,
        path::VOTE => answer(&body, |rpc| raft.vote(rpc)).await,
        path::SNAPSHOT => answer(&body, |rpc| raft.install_snapshot(rpc)).await,
        membership::path::INIT => operate(&body, |f| membership::init(raft, f)).await,
        membership::path::ADD => operate(&body, |n| membership::add(raft, n)).await,
        membership::path::REMOVE => operate(&body, |n| membership::remove(raft, n)).await,
        ATTACH_PATH => {
            let answer = answer_attach(&peers.attacher, &peers.shared, body.to_vec()).await;
            match postcard::to_stdvec(&answer) {
                Ok(bytes) => Response::new(Full::new(Bytes::from(bytes))),
                Err(_) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot encode the answer",
                ),
            }
        }
        _ => plain(StatusCode::NOT_FOUND, "no such peer message"),
    }
}

fn json(status: u16, value: &impl Serialize) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            *response.status_mut() = status;
            response
        }
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the answer",
        ),
    }
}

/// An operator's request: a JSON body, and what came of it.
async fn operate<Req, Fut>(body: &[u8], call: impl FnOnce(Req) -> Fut) -> Response<Full<Bytes>>
where
    Req: DeserializeOwned,
    Fut: std::future::Future<Output = membership::Outcome>,
{
    let request = match serde_json::from_slice::<Req>(body) {
        Ok(request) => request,
        Err(error) => {
            let said = serde_json::json!({ "error": format!("bad request: {error}") });
            return json(400, &said);
        }
    };
    let outcome = call(request).await;
    json(
        outcome.status,
        &serde_json::json!({ "message": outcome.message }),
    )
}

/// Decodes a message, hands it to Raft and encodes what Raft said.
async fn answer<Req, Resp, Fut>(body: &[u8], call: impl FnOnce(Req) -> Fut) -> Response<Full<Bytes>>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Resp>,
{
    let Ok(rpc) = postcard::from_bytes::<Req>(body) else {
        return plain(StatusCode::BAD_REQUEST, "not a message of this version");
    };
    match postcard::to_stdvec(&call(rpc).await) {
        Ok(bytes) => Response::new(Full::new(Bytes::from(bytes))),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the answer",
        ),
    }
}
