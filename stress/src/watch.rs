//! Watchers: many fans with the sale's page open, each holding the event's
//! server-sent event stream and reading every update, to load a server with
//! open streams while something else is measured (`--watch N`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::Client;

/// What the watchers have seen so far.
#[derive(Default)]
pub struct Watching {
    /// Streams open now.
    pub open: AtomicU64,
    /// Messages received over all streams.
    pub messages: AtomicU64,
    /// Streams that failed to open or were closed by the server (each is
    /// reopened after a second).
    pub failures: AtomicU64,
}

/// Opens `streams` streams of `event` at `addr` and keeps them open and read
/// for as long as the returned future runs.
pub async fn watch(addr: String, event: u64, streams: u64, watching: Arc<Watching>) {
    let path = format!("/api/events/{event}/stream");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..streams {
        let (addr, path, watching) = (addr.clone(), path.clone(), watching.clone());
        tasks.spawn(async move {
            loop {
                if let Ok(client) = Client::connect(&addr).await
                    && let Ok(mut events) = client.stream(&path).await
                {
                    watching.open.fetch_add(1, Ordering::Relaxed);
                    while let Ok(Some(_)) = events.next_block().await {
                        watching.messages.fetch_add(1, Ordering::Relaxed);
                    }
                    watching.open.fetch_sub(1, Ordering::Relaxed);
                }
                watching.failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
