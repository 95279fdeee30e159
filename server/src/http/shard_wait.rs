//! How long a request waits for the shard: a change until it is committed,
//! a read until what it shows is durable. Without a bound, a leader cut off
//! from its group (or a stalled disk) would hold every such request, and
//! the task serving it, until healed; with one, the fan is told (503) and
//! may retry, through another node if this one no longer leads.

use super::App;
use super::error::ApiError;

/// How long a request waits for its change to be committed before the fan
/// is told the outcome is unknown (503 `outcome_unknown`): a leader cut off
/// from its group, or a stalled disk, would otherwise hold it until healed.
/// The change itself goes on (and may yet commit, or be dropped).
pub const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `pending`'s answer, or `outcome_unknown` after `wait` (a change).
pub async fn within<T, E>(
    wait: std::time::Duration,
    pending: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    answered_within(wait, ApiError::outcome_unknown, pending).await
}

/// `pending`'s answer, or `timed_out()` after `wait`.
async fn answered_within<T, E>(
    wait: std::time::Duration,
    timed_out: fn() -> ApiError,
    pending: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    match tokio::time::timeout(wait, pending).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(timed_out()),
    }
}

/// Reads the shard's state with `read`, once what it shows is durable
/// (bounded by [`COMMIT_WAIT`]: 503 `not_answered` after).
pub async fn read_state<R: Send + 'static>(
    app: &App,
    read: impl FnOnce(&crate::runtime::ShardState) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let receiver = app.runtime.query(read)?;
    // A read waits until what it shows is durable: on a leader cut off
    // from its group, that may be never.
    answered_within(COMMIT_WAIT, ApiError::not_answered, receiver).await
}
