//! An in-process server for the stress tool's tests: a fresh runtime with
//! one event, in development mode (sessions for virtual fans), the event
//! made as an operator would for a load test (a small proof of work, no
//! two-factor: virtual fans have no authenticator), served on a loopback
//! port for as long as the given client runs.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::future::Future;
use std::sync::Arc;

use ingressoja::http::config::ServerConfig;
use ingressoja::http::settings::EventSecurity;
use ingressoja::http::{App, serve};
use ingressoja::runtime::{Clock, RuntimeOptions, SystemClock};
use ingressoja_engine::EventConfig;

/// The wall clock's now, for building the event's schedule.
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}

/// Serves `event` with `config` and runs `client(addr, event_id)` against
/// it; the server stops when the client is done.
pub fn with_server<F, T>(
    event: EventConfig,
    config: ServerConfig,
    client: impl FnOnce(String, u64) -> F,
) -> T
where
    F: Future<Output = T>,
{
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock);
    let app = Arc::new(App::start(RuntimeOptions::new(dir.path()), config, clock).unwrap());
    let event = app.runtime.create_event(event).unwrap().wait().unwrap();
    let security = EventSecurity {
        pow_difficulty: 8,
        require_two_factor: false,
    };
    app.settings.set(event, security).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async move {
            let _ = stopped.await;
        }));
        let result = client(addr, event.0).await;
        let _ = stop.send(());
        let _ = server.await;
        result
    })
}
