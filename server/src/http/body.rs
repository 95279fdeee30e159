//! Reading request bodies: bounded in size (a body over the limit is 413, not
//! memory) and in time (408), JSON only, unknown fields refused (the types say
//! `deny_unknown_fields`), every decoding problem a 400 that names it.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`], or one
/// that has not all arrived within `deadline` (408: a client that sends a
/// body slowly or never must not hold a connection and a task for free).
pub async fn read(body: Incoming, deadline: std::time::Duration) -> Result<Bytes, ApiError> {
    let collected = tokio::time::timeout(deadline, Limited::new(body, MAX_BODY_BYTES).collect())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    deadline.as_millis()
                ),
            )
        })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
            ))
        }
        Err(_) => Err(ApiError::bad_request(
            "body_unreadable",
            "the request body could not be read",
        )),
    }
}

/// Decodes a JSON body.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let code = match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed_json"
            }
            serde_json::error::Category::Data => "invalid_field",
            serde_json::error::Category::Io => "body_unreadable",
        };
        ApiError::bad_request(code, format!("invalid JSON body: {error}"))
    })
}
