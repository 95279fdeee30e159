//! A handler's successful answer: a status and a body rendered to JSON
//! bytes once, from a typed value. Nothing after a handler can read a body
//! back: decisions are made on typed values, bytes are only sent.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use super::error::ApiError;

/// A JSON body, already rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json(Bytes);

impl Json {
    /// Renders `value`. Our views always render (no maps with non-string
    /// keys, no failing serializers); a failure is the server's own, a 500.
    pub fn of(value: &impl Serialize) -> Result<Json, ApiError> {
        serde_json::to_vec(value)
            .map(|bytes| Json(Bytes::from(bytes)))
            .map_err(|e| ApiError::internal("render_failed", e))
    }

    /// The bytes to send.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// A handler's answer: a status and a rendered body, or an error.
pub type Answer = Result<(StatusCode, Json), ApiError>;

/// Answers `status` with `value` rendered.
pub fn answer(status: StatusCode, value: &impl Serialize) -> Answer {
    Ok((status, Json::of(value)?))
}
