//! A small keep-alive HTTP/1.1 JSON client on hyper's connection API: one
//! connection per virtual fan, as a phone would hold, no pooling; and a
//! server-sent event reader for the fan's stream, on a connection of its
//! own as a browser's `EventSource` would open.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// A connection to the server.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    /// `Bearer …` once the fan has a token.
    pub auth: Option<String>,
}

/// A failed exchange (the connection broke, or the server's answer was not
/// HTTP).
#[derive(Debug)]
pub struct Broken(pub String);

impl Client {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<Client, Broken> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
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
            auth: None,
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
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| Broken(format!("request: {e}")))?;
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
        })
    }

    /// Sends a request and reads the JSON answer.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), Broken> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if let Some(auth) = &self.auth {
            builder = builder.header("authorization", auth);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(Full::new(bytes))
            .map_err(|e| Broken(format!("request: {e}")))?;
        if self.sender.ready().await.is_err() {
            // The server closed this keep-alive connection while it sat idle
            // (a fan waiting for their turn on their stream longer than the
            // server's idle timeout). Nothing was sent on it, so a new
            // connection is safe for any request, as a browser would open.
            self.sender = Client::connect(&self.host).await?.sender;
            self.sender
                .ready()
                .await
                .map_err(|e| Broken(format!("connection: {e}")))?;
        }
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| Broken(format!("send: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Broken(format!("body: {e}")))?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// The messages of a server-sent event stream.
pub struct Events {
    body: Incoming,
    pending: String,
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
