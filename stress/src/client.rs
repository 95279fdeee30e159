//! A small keep-alive HTTP/1.1 JSON client on hyper's connection API: one
//! connection per virtual fan, as a phone would hold, no pooling; and a
//! server-sent event reader for the fan's stream, on a connection of its
//! own as a browser's `EventSource` would open.
//!
//! A client may stand somewhere else on the network ([`Link`]): it connects
//! from its own loopback address (127.0.0.0/8 is all local on Linux, so each
//! virtual fan can be a distinct client address to the server's per-address
//! limits) and adds a round trip's latency to every exchange, half each way
//! (this kernel has no netem: the delay is added here, on the client's own
//! sockets).

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Where a client stands: its address, and the round trip to the server.
#[derive(Clone, Copy, Debug, Default)]
pub struct Link {
    /// The local address to connect from (`None`: the system's choice).
    pub from: Option<std::net::IpAddr>,
    /// Added to every exchange: half before sending, half after the answer;
    /// a connection costs one more (the TCP handshake).
    pub rtt: std::time::Duration,
}

impl Link {
    /// Half a round trip: what one direction costs.
    pub fn one_way(&self) -> std::time::Duration {
        self.rtt / 2
    }
}

/// A connection to the server.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    link: Link,
    /// When the connection last carried an exchange.
    last_used: std::time::Instant,
    /// `Bearer …` once the fan has a token.
    pub auth: Option<String>,
    /// The log position the fan was last shown (`X-IngressoJa-Seen`),
    /// sent back with every request as a browser sends the `ij_seen`
    /// cookie: behind a balancer, the node a request lands on waits until
    /// it has what the fan already saw (their session, their place).
    pub seen: Option<String>,
}

/// The header a cluster marks its answers with (see `seen`).
const SEEN: &str = "x-ingressoja-seen";

/// A connection idle this long is replaced before use: the server closes
/// idle keep-alive connections after its request deadline (10 s), and a
/// request sent as it does so is lost in flight (a browser opens a new
/// connection then, and so does this client, before the race can happen).
const REUSE_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(4);

/// A failed exchange (the connection broke, or the server's answer was not
/// HTTP).
#[derive(Debug)]
pub struct Broken(pub String);

impl Client {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<Client, Broken> {
        Client::connect_over(addr, Link::default()).await
    }

    /// Connects to `addr` (`host:port`) over `link`.
    pub async fn connect_over(addr: &str, link: Link) -> Result<Client, Broken> {
        tokio::time::sleep(link.rtt).await;
        let stream = match link.from {
            None => tokio::net::TcpStream::connect(addr).await,
            Some(from) => {
                let target = tokio::net::lookup_host(addr)
                    .await
                    .map_err(|e| Broken(format!("resolve: {e}")))?
                    .next()
                    .ok_or_else(|| Broken(format!("resolve: no address for {addr}")))?;
                let socket = if from.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(|e| Broken(format!("socket: {e}")))?;
                socket
                    .bind(std::net::SocketAddr::new(from, 0))
                    .map_err(|e| Broken(format!("bind {from}: {e}")))?;
                socket.connect(target).await
            }
        }
        .map_err(|e| Broken(format!("connect: {e}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Broken(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Client {
            sender,
            host: addr.to_string(),
            link,
            last_used: std::time::Instant::now(),
            auth: None,
            seen: None,
        })
    }

    /// Opens a server-sent event stream at `path` on this connection (which
    /// then serves nothing else).
    pub async fn stream(self, path: &str) -> Result<Events, Broken> {
        let mut sender = self.sender;
        let mut builder = Request::builder()
            .uri(path)
            .header("host", &self.host)
            .header("accept", "text/event-stream");
        if let Some(auth) = &self.auth {
            builder = builder.header("authorization", auth);
        }
        if let Some(seen) = &self.seen {
            builder = builder.header(SEEN, seen);
        }
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| Broken(format!("request: {e}")))?;
        tokio::time::sleep(self.link.one_way()).await;
        sender
            .ready()
            .await
            .map_err(|e| Broken(format!("connection: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Broken(format!("send: {e}")))?;
        if !response.status().is_success() {
            return Err(Broken(format!("stream: {}", response.status())));
        }
        Ok(Events {
            body: response.into_body(),
            pending: String::new(),
            delay: self.link.one_way(),
        })
    }

    /// Drops this connection for a new one (after it broke).
    pub async fn reconnect(&mut self) -> Result<(), Broken> {
        self.sender = Client::connect_over(&self.host, self.link).await?.sender;
        self.last_used = std::time::Instant::now();
        Ok(())
    }

    /// Sends a request and reads the JSON answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Broken> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let build = || {
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("host", &self.host);
            if let Some(auth) = &self.auth {
                builder = builder.header("authorization", auth);
            }
            if let Some(seen) = &self.seen {
                builder = builder.header(SEEN, seen);
            }
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            if body.is_some() {
                builder = builder.header("content-type", "application/json");
            }
            builder
                .body(Full::new(bytes.clone()))
                .map_err(|e| Broken(format!("request: {e}")))
        };
        let request = build()?;
        let retry = build()?;
        if self.last_used.elapsed() > REUSE_IDLE_FOR {
            self.sender = Client::connect_over(&self.host, self.link).await?.sender;
        }
        self.last_used = std::time::Instant::now();
        if self.sender.ready().await.is_err() {
            // The server closed this keep-alive connection while it sat idle
            // (a fan waiting for their turn on their stream longer than the
            // server's idle timeout). Nothing was sent on it, so a new
            // connection is safe for any request, as a browser would open.
            self.sender = Client::connect_over(&self.host, self.link).await?.sender;
            self.sender
                .ready()
                .await
                .map_err(|e| Broken(format!("connection: {e}")))?;
        }
        tokio::time::sleep(self.link.one_way()).await;
        let response = match self.sender.send_request(request).await {
            Ok(response) => response,
            // The server closed the idle connection as the request left:
            // hyper hands a request back only when none of it was written,
            // so it is safe to send again on a new connection, once.
            Err(error) if error.is_canceled() => {
                self.sender = Client::connect_over(&self.host, self.link).await?.sender;
                self.sender
                    .send_request(retry)
                    .await
                    .map_err(|e| Broken(format!("send: {e}")))?
            }
            Err(error) => return Err(Broken(format!("send: {error}"))),
        };
        let status = response.status();
        if let Some(seen) = response.headers().get(SEEN).and_then(|v| v.to_str().ok()) {
            self.seen = Some(seen.to_owned());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Broken(format!("body: {e}")))?
            .to_bytes();
        tokio::time::sleep(self.link.one_way()).await;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// The messages of a server-sent event stream.
pub struct Events {
    body: Incoming,
    pending: String,
    /// Each message reaches the reader this much after the server sent it.
    delay: std::time::Duration,
}

/// Messages longer than this mean the stream is not what it should be.
const MAX_MESSAGE: usize = 64 * 1024;

impl Events {
    /// The next message as (event name, data), or `None` once the server
    /// closed the stream. Comments (keep-alives) are skipped.
    pub async fn next(&mut self) -> Result<Option<(String, Value)>, Broken> {
        loop {
            let Some(block) = self.next_block().await? else {
                return Ok(None);
            };
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_string();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            if !data.is_empty() {
                tokio::time::sleep(self.delay).await;
                return Ok(Some((
                    name,
                    serde_json::from_str(&data).unwrap_or(Value::Null),
                )));
            }
        }
    }

    /// The next block of lines up to a blank line, unparsed (for watchers
    /// that count messages and must not spend the CPU the server needs).
    pub async fn next_block(&mut self) -> Result<Option<String>, Broken> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                return Ok(Some(self.pending.drain(..end + 2).collect()));
            }
            if self.pending.len() > MAX_MESSAGE {
                return Err(Broken("stream: message too long".into()));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| Broken(format!("stream: {e}")))?;
            if let Ok(data) = frame.into_data() {
                self.pending.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}
