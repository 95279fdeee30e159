//! A small keep-alive HTTP/1.1 JSON client on hyper's connection API: one
//! connection per virtual fan, as a phone would hold, no pooling.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
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
        self.sender
            .ready()
            .await
            .map_err(|e| Broken(format!("connection: {e}")))?;
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
