//! Any node takes any request: a node that does not lead its shard sends
//! what must be answered by the leader there, one hop, and passes the
//! leader's answer back.
//!
//! - **Writes** (joining, the cart, checkout, the operators' changes to an
//!   event) are forwarded whenever this node does not take writes. If the
//!   leader cannot be reached or answers that it no longer leads (either
//!   way nothing was done), the request is sent once more, to the leader
//!   the group elects meanwhile (waited for, briefly); after that the fan
//!   gets this node's own "changing hands, retry" 503. A request the
//!   leader got and never answered (it died) is not sent again: it may
//!   have been done, and adding a ticket twice is not harmless; the fan
//!   is told the outcome is unknown (503 `outcome_unknown`). Checkout is
//!   safe to retry by its idempotency key.
//! - **Reads** are answered here, from this node's applied state, when it
//!   is at least as new as the last write the asking fan was answered:
//!   every answered write names the log position it is in (the `ij_seen`
//!   cookie, or the `X-IngressoJa-Seen` header for API clients), and a read
//!   that names a position this node has not applied waits for it briefly,
//!   then goes to the leader. The position is signed with a key derived
//!   from the cluster secret: one a client made up (to make followers wait
//!   and load the leader with reads) is ignored, as if none were named. Proof-of-work challenges come from the leader
//!   (the one that checks the answer).
//! - **One hop**: a forwarded request carries this cluster's forwarding
//!   token (derived from the cluster secret) and the fan's address; the
//!   leader trusts that address (for its per-address limits) only with the
//!   token, and never forwards such a request again.
//!
//! Forwards are bounded: at most [`MAX_IN_FLIGHT`] at once (beyond that,
//! 503 with Retry-After), each with a deadline and a bounded answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ingressoja_cluster::NodeId;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::accounts::{Account, Session};
use crate::http::App;
use crate::http::error::ApiError;
use crate::http::pow::{hex, unhex};
use crate::http::route::{AdminRoute, Route};
use crate::runtime::Runtime;

/// Forwards in flight at most, across all fans.
pub const MAX_IN_FLIGHT: usize = 512;
/// How long the leader may take to answer a forwarded request.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// The biggest answer passed back.
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// How long a write waits for the group to elect a leader before its one
/// retry (an election takes 150–300 ms).
const LEADER_WAIT: Duration = Duration::from_secs(2);
/// How long a read waits for this node to apply what its fan was shown.
const CATCH_UP_WAIT: Duration = Duration::from_millis(500);

/// The header a forwarded request carries the forwarding token in.
pub const FORWARDED_HEADER: &str = "x-ingressoja-forwarded";
/// The header a forwarded request carries the fan's address in.
pub const CLIENT_HEADER: &str = "x-ingressoja-client";
/// The header a forwarded request carries who is asking in: the session
/// was checked (and its CSRF token) by the node the fan reached.
pub const IDENTITY_HEADER: &str = "x-ingressoja-identity";
/// The biggest identity header read.
const MAX_IDENTITY_BYTES: usize = 2048;
/// The header (and cookie) naming the log position a fan was last shown.
pub const SEEN_HEADER: &str = "x-ingressoja-seen";
/// The cookie form of [`SEEN_HEADER`], for pages.
pub const SEEN_COOKIE: &str = "ij_seen";

/// Headers that describe one connection, not the request: never passed on
/// (the length is set again for the body as sent).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::HOST,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
    header::CONTENT_LENGTH,
];

type HttpResponse = Response<BoxBody<Bytes, Infallible>>;

/// What a node does with a request before handling it.
pub enum Decision {
    /// Handle it here.
    Here,
    /// Send it to the leader.
    Forward,
    /// Answer 503 (retry in a second): the fan was shown a log position
    /// this node has not applied within the catch-up wait, and the route
    /// is not one the leader answers for it (an event stream, an account
    /// step): answering here could deny them what they already saw (their
    /// session: a 401 they never earned).
    Behind,
}

/// This node's forwarding (see the module documentation).
pub struct Forwarder {
    node: NodeId,
    http_of: BTreeMap<NodeId, SocketAddr>,
    token: HeaderValue,
    /// Signs the log positions fans are shown (see [`Forwarder::mark_seen`]):
    /// keyed once, cloned per signature (every answered write and every
    /// read that names a position is signed or checked).
    seen_mac: Hmac<Sha256>,
    slots: tokio::sync::Semaphore,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The token a forwarded request proves itself with: only the cluster's
/// nodes know the secret it is derived from (the secret itself is never
/// sent on the fans' port).
fn forwarding_token(secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"ingressoja forwarding token\0")
        .chain_update(secret.as_bytes())
        .finalize();
    hex(&digest)
}

/// The key log positions are signed with: every node of the cluster
/// derives the same from the secret, so any node checks what another
/// signed.
fn seen_key(secret: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"ingressoja seen position key\0")
        .chain_update(secret.as_bytes())
        .finalize()
        .into()
}

/// Bytes of the HMAC kept in a signed position (96 bits: a client cannot
/// guess one in any number of tries it could make).
const SEEN_TAG_BYTES: usize = 12;

impl Forwarder {
    /// Node `node`'s forwarding, to the nodes' HTTP addresses `http_of`.
    pub fn new(
        node: NodeId,
        http_of: BTreeMap<NodeId, SocketAddr>,
        secret: &str,
    ) -> Result<Forwarder, http::header::InvalidHeaderValue> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Forwarder {
            node,
            http_of,
            token: HeaderValue::from_str(&forwarding_token(secret))?,
            seen_mac: <Hmac<Sha256> as Mac>::new_from_slice(&seen_key(secret))
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            slots: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            client,
        })
    }

    /// The fan's address, if `headers` are those of a request another node
    /// of this cluster forwarded (checked in constant time).
    pub fn forwarded_for(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let token = headers.get(FORWARDED_HEADER)?;
        if !bool::from(token.as_bytes().ct_eq(self.token.as_bytes())) {
            return None;
        }
        headers.get(CLIENT_HEADER)?.to_str().ok()?.parse().ok()
    }

    /// Who is asking, if `headers` are those of a request another node of
    /// this cluster forwarded with the identity it checked (see
    /// [`identity_header`]).
    pub fn forwarded_identity(&self, headers: &HeaderMap) -> Option<(Account, Session)> {
        self.forwarded_for(headers)?;
        let text = headers.get(IDENTITY_HEADER)?.to_str().ok()?;
        if text.len() > MAX_IDENTITY_BYTES {
            return None;
        }
        postcard::from_bytes(&unhex(text)?).ok()
    }

    /// Whether `route` is answered here or by the leader (see the module
    /// documentation). A fan who names a log position this node has not
    /// applied waits a little for it first, whatever the route: their
    /// session, or the account they just made on another node, is then
    /// known here too.
    pub async fn decide(&self, runtime: &Runtime, route: &Route, headers: &HeaderMap) -> Decision {
        // The leader answers itself: it has applied everything committed.
        if runtime.leads() {
            return Decision::Here;
        }
        let caught_up = self.catch_up(runtime, headers).await;
        // So does the node about to take the lead (its writes are refused
        // until it leads), but only once it has applied what the fan was
        // shown: elected, it may still be applying the log's committed
        // tail (a session made through the old leader, say).
        if runtime.leader() == Some(self.node) {
            return if caught_up {
                Decision::Here
            } else {
                Decision::Behind
            };
        }
        if changes_the_sale(route) || matches!(route, Route::JoinChallenge(_)) {
            return Decision::Forward;
        }
        match (caught_up, reads_the_sale(route)) {
            (true, _) => Decision::Here,
            (false, true) => Decision::Forward,
            (false, false) => Decision::Behind,
        }
    }

    /// Waits (briefly) until this node has applied the position the fan
    /// was last shown; whether it has (or none was named, or it leads).
    async fn catch_up(&self, runtime: &Runtime, headers: &HeaderMap) -> bool {
        let Some(seen) = self.seen(headers) else {
            return true;
        };
        let until = Instant::now() + CATCH_UP_WAIT;
        while runtime.durable_seq() < seen {
            if runtime.leads() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Sends `request` (from the fan at `client`) to the leader and returns
    /// its answer; once more to the next leader if that one no longer
    /// leads or cannot be reached.
    pub async fn forward(
        &self,
        app: &App,
        request: Request<Incoming>,
        client: IpAddr,
    ) -> Result<HttpResponse, ApiError> {
        let Ok(_slot) = self.slots.try_acquire() else {
            return Err(ApiError::from(crate::runtime::RuntimeError::Overloaded));
        };
        let runtime = &app.runtime;
        let (mut parts, body) = request.into_parts();
        // The fan's session is checked here, where it was made: the leader
        // is told who is asking (until accounts are the same on every
        // node, a session is only known where it was made).
        parts.headers.remove(IDENTITY_HEADER);
        if let Ok(who) = crate::http::session::identify(app, &parts.method, &parts.headers, false)
            && let Some(value) = identity_header(&who.account, &who.session)
        {
            parts.headers.insert(IDENTITY_HEADER, value);
        }
        let body = crate::http::body::read(body, app.request_deadline()).await?;
        let mut failed = None;
        for _ in 0..2 {
            let Some((leader, addr)) = self.leader(runtime, failed).await else {
                break;
            };
            match self.send(addr, &parts, body.clone(), client).await {
                Exchange::Answered(answer, body) if !says_not_leader(&answer, &body) => {
                    return Ok(Response::from_parts(answer, Full::new(body).boxed()));
                }
                // Nothing was done: another leader may take it.
                Exchange::Answered(..) | Exchange::NotSent => failed = Some(leader),
                // It may have been done: sending it again could do it
                // twice (a second ticket in the cart). The fan is told.
                Exchange::Unanswered => return Err(ApiError::outcome_unknown()),
            }
        }
        Err(ApiError::from(crate::runtime::RuntimeError::NotLeader))
    }

    /// The leader to send to: the one this node knows of (waited for while
    /// an election is under way); after `failed` did not take the request,
    /// the next one the group elects (or, if the group keeps the same one,
    /// that one again once the wait is over).
    async fn leader(
        &self,
        runtime: &Runtime,
        failed: Option<NodeId>,
    ) -> Option<(NodeId, SocketAddr)> {
        let until = Instant::now() + LEADER_WAIT;
        loop {
            let known = runtime
                .leader()
                .filter(|&id| id != self.node)
                .and_then(|id| Some((id, *self.http_of.get(&id)?)));
            let timed_out = Instant::now() >= until;
            match known {
                Some((id, addr)) if Some(id) != failed || timed_out => return Some((id, addr)),
                None if timed_out => return None,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// One exchange with the leader at `addr`.
    async fn send(
        &self,
        addr: SocketAddr,
        parts: &http::request::Parts,
        body: Bytes,
        client: IpAddr,
    ) -> Exchange {
        match self.try_send(addr, parts, body, client).await {
            Ok((answer, body)) => Exchange::Answered(answer, body),
            Err(sent) if sent => Exchange::Unanswered,
            Err(_) => Exchange::NotSent,
        }
    }

    /// [`Forwarder::send`]; the error says whether the request may have
    /// reached the leader.
    async fn try_send(
        &self,
        addr: SocketAddr,
        parts: &http::request::Parts,
        body: Bytes,
        client: IpAddr,
    ) -> Result<(http::response::Parts, Bytes), bool> {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(format!("http://{addr}{path}"))
            .body(Full::new(body))
            .map_err(|_| false)?;
        let headers = request.headers_mut();
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(name) && name != FORWARDED_HEADER && name != CLIENT_HEADER {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(FORWARDED_HEADER, self.token.clone());
        headers.insert(
            CLIENT_HEADER,
            HeaderValue::from_str(&client.to_string()).map_err(|_| false)?,
        );
        let exchange = async {
            // Only a failed connection is known not to have reached it.
            let answer = self
                .client
                .request(request)
                .await
                .map_err(|error| !error.is_connect())?;
            let (mut parts, body) = answer.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|_| true)?
                .to_bytes();
            for name in &HOP_BY_HOP {
                parts.headers.remove(name);
            }
            Ok((parts, body))
        };
        tokio::time::timeout(ANSWER_DEADLINE, exchange)
            .await
            .unwrap_or(Err(true))
    }
}

/// Who is asking, for the leader: the account without its secrets (the
/// password's hash, the second factor's secret and recovery codes stay
/// where they are) and the session, postcard in hex.
fn identity_header(account: &Account, session: &Session) -> Option<HeaderValue> {
    let mut account = account.clone();
    account.password_hash.clear();
    if let Some(two_factor) = &mut account.two_factor {
        two_factor.secret.clear();
        two_factor.recovery.clear();
    }
    let bytes = postcard::to_stdvec(&(account, session)).ok()?;
    HeaderValue::from_str(&hex(&bytes)).ok()
}

/// How one exchange with the leader went.
enum Exchange {
    /// It answered.
    Answered(http::response::Parts, Bytes),
    /// The request never reached it (no connection).
    NotSent,
    /// It was sent, and no answer came back (the leader died or hung).
    Unanswered,
}

/// The answer when the leader got a request and died (or hung) before
/// answering: it may or may not have been done.
/// Routes whose answer changes the sale: only the leader takes them.
pub fn changes_the_sale(route: &Route) -> bool {
    match route {
        Route::QueueJoin(_)
        | Route::QueueLeave(_)
        | Route::CartRelease(_)
        | Route::CartSet(_)
        | Route::CartAdd(_)
        | Route::CartRemove(_)
        | Route::Checkout(_)
        // The provider that issued the charge is the leader's.
        | Route::SandboxPix => true,
        Route::Admin(admin) => matches!(
            admin,
            AdminRoute::CreateEvent
                | AdminRoute::Policy(_)
                | AdminRoute::Schedule(_)
                | AdminRoute::Pause(_)
                | AdminRoute::Resume(_)
        ),
        _ => false,
    }
}

/// Routes that read the sale's state (answered here when fresh enough).
fn reads_the_sale(route: &Route) -> bool {
    matches!(
        route,
        Route::EventsList
            | Route::EventGet(_)
            | Route::QueueStatus(_)
            | Route::CartGet(_)
            | Route::MyOrders
    )
}

/// The position the fan was last shown, as sent: from the header, or the
/// cookie.
fn seen_value(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(SEEN_HEADER) {
        return value.to_str().ok().map(str::trim);
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SEEN_COOKIE)
        .map(|(_, value)| value)
}

impl Forwarder {
    /// The signature of `position`.
    fn seen_tag(&self, position: u64) -> String {
        let mut mac = self.seen_mac.clone();
        mac.update(position.to_string().as_bytes());
        hex(&mac.finalize().into_bytes()[..SEEN_TAG_BYTES])
    }

    /// `position` as this cluster shows it to fans: signed.
    pub fn signed_seen(&self, position: u64) -> String {
        format!("{position}.{}", self.seen_tag(position))
    }

    /// The log position the fan was last shown, if a node of this cluster
    /// signed it (anything else is as if nothing were named).
    fn seen(&self, headers: &HeaderMap) -> Option<u64> {
        let (position, tag) = seen_value(headers)?.split_once('.')?;
        let position = position.parse().ok()?;
        let expected = self.seen_tag(position);
        bool::from(tag.as_bytes().ct_eq(expected.as_bytes())).then_some(position)
    }

    /// Marks an answered write with the log position it is in, signed (see
    /// the module documentation): the header for API clients, the cookie
    /// for pages.
    pub fn mark_seen(&self, response: &mut HttpResponse, position: u64) {
        let signed = self.signed_seen(position);
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&signed) {
            headers.insert(SEEN_HEADER, value);
        }
        if let Ok(cookie) = HeaderValue::from_str(&format!(
            "{SEEN_COOKIE}={signed}; Path=/; HttpOnly; SameSite=Strict"
        )) {
            headers.append(header::SET_COOKIE, cookie);
        }
    }
}

/// Whether an answer is "this node does not lead" (nothing was done).
fn says_not_leader(answer: &http::response::Parts, body: &[u8]) -> bool {
    answer.status == StatusCode::SERVICE_UNAVAILABLE
        && serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["error"]["code"] == "not_leader")
}

/// The header naming the node that answered (for operators following a
/// request through the cluster, and the tests).
pub const ANSWERED_BY_HEADER: &str = "x-ingressoja-node";

impl Forwarder {
    /// Names this node as the one that answered.
    pub fn mark_answered_here(&self, response: &mut HttpResponse) {
        response
            .headers_mut()
            .insert(ANSWERED_BY_HEADER, HeaderValue::from(self.node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_of(secret: &str) -> Forwarder {
        Forwarder::new(1, BTreeMap::new(), secret).unwrap()
    }

    #[test]
    fn the_seen_position_comes_signed_from_the_header_or_the_cookie() {
        let forwarder = node_of("a secret of at least 32 chars....");
        let mut answer = Response::new(BoxBody::new(Full::new(Bytes::new())));
        forwarder.mark_seen(&mut answer, 42);
        let signed = answer.headers()[SEEN_HEADER].to_str().unwrap().to_string();
        assert!(signed.starts_with("42."), "{signed}");
        let cookie = answer.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            cookie.starts_with(&format!("ij_seen={signed};")),
            "{cookie}"
        );

        let mut headers = HeaderMap::new();
        assert_eq!(forwarder.seen(&headers), None);
        let cookies = format!("a=b; ij_seen={signed}; c=d");
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookies).unwrap());
        assert_eq!(forwarder.seen(&headers), Some(42));
        // The header wins over the cookie.
        headers.insert(SEEN_HEADER, HeaderValue::from_str(&signed).unwrap());
        assert_eq!(forwarder.seen(&headers), Some(42));
        // Made up, unsigned, or another position's signature: ignored.
        let (_, tag) = signed.split_once('.').unwrap();
        for forged in ["77", "nope", "99999999.00", &format!("43.{tag}")] {
            headers.insert(SEEN_HEADER, HeaderValue::from_str(forged).unwrap());
            assert_eq!(forwarder.seen(&headers), None, "{forged}");
        }
        // Another cluster's signature is not this one's.
        let other = node_of("another cluster's secret, 32 chars..");
        headers.insert(SEEN_HEADER, HeaderValue::from_str(&signed).unwrap());
        assert_eq!(other.seen(&headers), None);
    }

    #[test]
    fn only_a_request_with_this_clusters_token_names_its_fan() {
        let forwarder =
            Forwarder::new(1, BTreeMap::new(), "a secret of at least 32 chars....").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(CLIENT_HEADER, HeaderValue::from_static("203.0.113.9"));
        assert_eq!(forwarder.forwarded_for(&headers), None);
        headers.insert(FORWARDED_HEADER, HeaderValue::from_static("guess"));
        assert_eq!(forwarder.forwarded_for(&headers), None);
        let other = forwarding_token("another cluster's secret, 32 chars..");
        headers.insert(FORWARDED_HEADER, HeaderValue::from_str(&other).unwrap());
        assert_eq!(forwarder.forwarded_for(&headers), None);
        headers.insert(FORWARDED_HEADER, forwarder.token.clone());
        assert_eq!(
            forwarder.forwarded_for(&headers),
            Some("203.0.113.9".parse().unwrap())
        );
    }
}
