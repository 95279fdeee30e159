//! The API's error model: every failure is a status code and a JSON body
//! `{"error":{"code":"…","message":"…"}}` naming the problem. Client mistakes
//! are 4xx, overload is 429/503 with Retry-After, and only the server's own
//! failures are 5xx.

use http::StatusCode;
use ingressoja_engine::Rejection;

use crate::runtime::RuntimeError;

/// An error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable snake_case code.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Seconds for a Retry-After header, when retrying later may succeed.
    pub retry_after_s: Option<u32>,
}

impl ApiError {
    /// An error with no Retry-After.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401: who is asking is unknown.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 503: the change was handed on and never confirmed (the server
    /// holding the sale stopped answering, or cannot commit): it may have
    /// been done, or may yet be. The fan looks before trying again; a
    /// second "add a ticket" is not harmless.
    pub fn outcome_unknown() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "outcome_unknown",
            message: "the sale did not confirm your request in time: look at your place in line \
                      or your cart before trying again"
                .into(),
            retry_after_s: Some(1),
        }
    }

    /// 503: a read the sale did not answer in time (what it would show
    /// is not durable yet: a leader cut off from its group).
    pub fn not_answered() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "not_answered",
            message: "the sale did not answer in time; retry shortly".into(),
            retry_after_s: Some(1),
        }
    }

    /// 500: the server's own failure (logged here, not shown to the client).
    pub fn internal(code: &'static str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(code, %error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            "the server failed; try again",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } }).to_string()
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        // Every rejection named: a new one must be given its status here.
        let status = match rejection {
            Rejection::EmptyItems
            | Rejection::UnknownTicketType(_)
            | Rejection::InvalidConfig(_) => StatusCode::BAD_REQUEST,
            Rejection::PaymentDeclined => StatusCode::PAYMENT_REQUIRED,
            Rejection::PaymentFailed => StatusCode::BAD_GATEWAY,
            Rejection::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
            // The state of the sale or of the fan's turn says no.
            Rejection::QueueNotOpen
            | Rejection::SaleNotOpen
            | Rejection::SaleClosed
            | Rejection::SoldOut
            | Rejection::Paused
            | Rejection::NotInQueue
            | Rejection::NotAdmitted
            | Rejection::AdmissionExpired
            | Rejection::NoHold
            | Rejection::HoldExpired
            | Rejection::NotInCart(_)
            | Rejection::LimitReached(_)
            | Rejection::InsufficientStock(_)
            | Rejection::AmountMismatch { .. } => StatusCode::CONFLICT,
        };
        let message = match rejection {
            Rejection::EmptyItems => "the request has no tickets in it".to_string(),
            Rejection::UnknownTicketType(t) => format!("the event has no ticket type {}", t.0),
            Rejection::QueueNotOpen => "the queue has not opened yet".into(),
            Rejection::SaleNotOpen => "the sale has not opened yet".into(),
            Rejection::SaleClosed => "the sale is over".into(),
            Rejection::SoldOut => "sold out".into(),
            Rejection::Paused => "the sale is paused; your place is kept".into(),
            Rejection::QueueFull => "the queue is full".into(),
            Rejection::NotInQueue => "join the queue first".into(),
            Rejection::NotAdmitted => "it is not your turn yet".into(),
            Rejection::AdmissionExpired => "your turn is over".into(),
            Rejection::NoHold => "your cart is empty".into(),
            Rejection::HoldExpired => "your hold expired and the tickets went back on sale".into(),
            Rejection::NotInCart(t) => format!("your cart has fewer tickets of type {}", t.0),
            Rejection::LimitReached(_) => "that would put you over the limit per customer".into(),
            Rejection::InsufficientStock(t) => format!("not enough tickets of type {} left", t.0),
            Rejection::PaymentDeclined => "the card was declined; your hold is kept".into(),
            Rejection::PaymentFailed => "the payment gateway failed; your hold is kept".into(),
            Rejection::AmountMismatch { expected_cents } => {
                format!("your cart changed; it now costs {expected_cents} cents")
            }
            Rejection::InvalidConfig(error) => error.to_string(),
        };
        let mut error = ApiError::new(status, rejection.code(), message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            error.retry_after_s = Some(5);
        }
        error
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> ApiError {
        match error {
            RuntimeError::Overloaded => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "overloaded",
                message: "too many requests right now; retry shortly".into(),
                retry_after_s: Some(1),
            },
            RuntimeError::UnknownEvent(event) => {
                ApiError::not_found(format!("no event {}", event.0))
            }
            RuntimeError::InvalidConfig(error) => {
                ApiError::bad_request("invalid_config", error.to_string())
            }
            RuntimeError::PaymentInFlight => ApiError {
                status: StatusCode::CONFLICT,
                code: "payment_in_progress",
                message:
                    "this checkout's payment is still in progress; retry shortly for its order"
                        .into(),
                retry_after_s: Some(1),
            },
            // Only the operators' snapshot asks for one, and it names the
            // failure itself; anywhere else it is the server's own trouble.
            RuntimeError::SnapshotFailed(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "snapshot_failed",
                message: "the snapshot could not be written; the log keeps everything".into(),
                retry_after_s: Some(10),
            },
            // Between leaders (or while a node takes the lead at start):
            // nothing was applied, and the same request succeeds shortly.
            RuntimeError::NotLeader => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "not_leader",
                message: "this sale is changing hands between servers; retry shortly".into(),
                retry_after_s: Some(1),
            },
            // Proposed, then the lead moved: the change may still commit.
            RuntimeError::Deposed => ApiError::outcome_unknown(),
            RuntimeError::Durability(_) | RuntimeError::Stopped => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: "the sale cannot record anything right now".into(),
                retry_after_s: Some(10),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_and_failures_map_to_retryable_503s_and_client_mistakes_to_4xx() {
        let overloaded = ApiError::from(RuntimeError::Overloaded);
        assert_eq!(
            (overloaded.status, overloaded.code, overloaded.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded", Some(1))
        );
        // Between leaders nothing was applied: a retry is safe and soon.
        let moving = ApiError::from(RuntimeError::NotLeader);
        assert_eq!(
            (moving.status, moving.code, moving.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, "not_leader", Some(1))
        );
        let failed = ApiError::from(RuntimeError::Durability("disk".into()));
        assert_eq!(
            (failed.status, failed.retry_after_s.is_some()),
            (StatusCode::SERVICE_UNAVAILABLE, true)
        );
        assert_eq!(
            ApiError::from(Rejection::EmptyItems).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::from(Rejection::SoldOut).status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::from(Rejection::PaymentDeclined).status,
            StatusCode::PAYMENT_REQUIRED
        );
        let body: serde_json::Value =
            serde_json::from_str(&ApiError::from(Rejection::SoldOut).body()).unwrap();
        assert_eq!(body["error"]["code"], "sold_out");
    }
}
