//! The HTTP front: hyper 1 on tokio, a JSON API over the durable runtime.
//!
//! - `route.rs`: the route table, parsed once into a typed `Route`;
//!   `dispatch.rs`: quotas, who is asking, handler, response.
//! - `admin_api.rs`: the operators' endpoints (admin role);
//! - `sandbox_api.rs`: the sandbox provider's stand-in for a bank app
//!   (pays a Pix code);
//! - `fan_api.rs`: the fans' endpoints; `views.rs`: their typed JSON
//!   shapes; `reply.rs`: a handler's answer, rendered once;
//!   `sse.rs`: server-sent event streams; `fan_stream.rs`: what a fan's
//!   own stream sends next (pure); `hub.rs`: their fan-out;
//!   `pace.rs`: how fast each line moves (for waiting fans' estimates).
//! - `error.rs`: the error model; `body.rs`: bounded JSON bodies;
//!   `client_address.rs`: the client's address, behind trusted proxies too.
//! - `library_errors.rs`: JSON bodies for the errors hyper answers itself.
//! - `account_api.rs`: register, login with two factors, logout, password,
//!   enrollment; `session.rs`: who is asking (session cookie or bearer
//!   token) and CSRF; `pow.rs`: proof-of-work challenges at queue join;
//!   `settings.rs`: per-event security settings.
//! - `assets.rs`: the web pages (`server/web/`), embedded in the binary.
//! - `config.rs`: configuration (TOML + environment);
//!   `limits.rs`: rate limits per address and account; `metrics.rs`:
//!   Prometheus metrics.
//!
//! Connections are bounded by a semaphore (`max_connections`) and per
//! address (`connections.rs`), request headers and then bodies must each
//! arrive within `request_timeout_ms`, and shutdown stops
//! accepting, lets in-flight requests finish (their replies are durable
//! before they are sent) and waits up to ten seconds for connections to close.

pub mod account_api;
pub mod address_pressure;
pub mod admin_api;
pub mod assets;
pub mod body;
pub mod client_address;
pub mod config;
pub mod connections;
pub mod demo_event;
pub mod dispatch;
pub mod error;
pub mod fan_api;
pub mod fan_stream;
pub mod hub;
pub mod library_errors;
pub mod limits;
pub mod metrics;
pub mod pace;
pub mod pow;
pub mod reply;
pub mod route;
pub mod sandbox_api;
pub mod session;
pub mod settings;
pub mod shard_wait;
pub mod sse;
pub mod views;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::accounts::AccountService;
use crate::accounts::replicated_store::ReplicatedAccounts;
use crate::audit::AuditLog;
use crate::payments::gateway::PaymentGateway;
use crate::payments::sandbox::{SandboxGateway, ledger_dir};
use crate::replicated::{Proposer, SharedState};
use crate::runtime::Attached;
use crate::runtime::{Clock, DataDir, Runtime, RuntimeOptions};
use config::ServerConfig;

/// Everything a request handler needs.
pub struct App {
    /// The durable runtime.
    pub runtime: Runtime,
    /// The configuration.
    pub config: ServerConfig,
    /// Accounts, sessions and the login flow.
    pub accounts: AccountService,
    /// The audit log (shared with the accounts service).
    pub audit: Arc<AuditLog>,
    /// Per-event security settings (read here; set through `proposer`).
    pub settings: Arc<settings::Settings>,
    /// Changes the state every node shares (accounts, sessions, audit
    /// log, settings) through the replicated log.
    pub proposer: Arc<Proposer>,
    /// Proof-of-work challenges.
    pub challenges: pow::Challenges,
    /// Recent joins per client address, for the proof of work's surcharge
    /// and the per-address quota.
    pub pressure: address_pressure::AddressPressure,
    /// Bounds concurrent password hashing.
    pub hashing: tokio::sync::Semaphore,
    /// Takes payments.
    pub gateway: Arc<dyn PaymentGateway>,
    /// The same provider, for what only the sandbox does (paying a Pix
    /// code as a bank would, telling paid charges).
    pub sandbox: Arc<SandboxGateway>,
    /// The time for token expiry.
    pub clock: Arc<dyn Clock>,
    /// Rate limits.
    pub limits: limits::Limits,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Fans-out durable changes to the event streams.
    pub hub: hub::Hub,
    /// A cluster node's forwarding to its leader (none on a single node).
    pub forwarder: Option<crate::cluster::forward::Forwarder>,
    /// Letters to fans (receipts, reset links, security notices).
    pub mail: Arc<crate::mail::Outbox>,
    /// The address this server was reached at when `[mail] public_url` is
    /// not set: `http://` + the bound listening address (set by `serve`).
    pub bound: std::sync::OnceLock<String>,
}

impl App {
    /// Opens the data directory's database with the server's column
    /// families beside the sale log, recovers and starts the runtime on it,
    /// and builds the app over both.
    pub fn start(
        mut options: RuntimeOptions,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<App> {
        let db = DataDir::create(&options.data_dir)?.open_db(crate::COLUMN_FAMILIES)?;
        let shared = SharedState::open(db.clone())?;
        options.attached = Some(Attached(shared.clone()));
        let runtime =
            Runtime::start_in(db.clone(), options, clock.clone()).map_err(std::io::Error::other)?;
        let proposer = Proposer::new(runtime.attacher(), shared);
        App::new(runtime, db, proposer, config, clock)
    }

    /// [`App::start`] for node `member` of a replicated sale: its shard's
    /// log is one of the group's replicas, and it takes writes only while
    /// it leads. `peers` are the nodes' peer addresses and `secret` the
    /// cluster's (a follower proposes changes to shared state to the
    /// leader there).
    pub fn start_member(
        mut options: RuntimeOptions,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
        member: crate::runtime::Member<crate::cluster::transport::PeerNetwork>,
        peers: std::collections::BTreeMap<ingressoja_cluster::NodeId, String>,
        secret: &str,
    ) -> std::io::Result<App> {
        let db = DataDir::create(&options.data_dir)?.open_db(crate::COLUMN_FAMILIES)?;
        let shared = SharedState::open(db.clone())?;
        options.attached = Some(Attached(shared.clone()));
        let node = member.node;
        let runtime = Runtime::start_member_in(db.clone(), options, clock.clone(), member)
            .map_err(std::io::Error::other)?;
        let proposer = Proposer::new(runtime.attacher(), shared).in_cluster(node, peers, secret);
        App::new(runtime, db, proposer, config, clock)
    }

    /// An app over a started runtime and the database its server-side
    /// state lives in (opened with [`crate::COLUMN_FAMILIES`]), changed
    /// through `proposer`, with a fresh token key, the sandbox payment
    /// gateway (its ledger beside the data), and limits and metrics from
    /// the configuration.
    fn new(
        runtime: Runtime,
        db: Arc<rocksdb::DB>,
        proposer: Proposer,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<App> {
        let proposer = Arc::new(proposer);
        let settings = proposer.state().settings().clone();
        let audit = Arc::new(AuditLog::over(db.clone(), proposer.clone()));
        let challenges = pow::Challenges::new(settings.secret("pow")?);
        let mut metrics = metrics::Metrics::new();
        let transport = crate::mail::Transport::of(&config.mail).map_err(std::io::Error::other)?;
        let mail = Arc::new(
            crate::mail::Outbox::new(&config.mail, transport).map_err(std::io::Error::other)?,
        );
        metrics.register_mail_dropped(mail.dropped.clone());
        let (records, append) = (
            metrics.wal_batch_records.clone(),
            metrics.wal_append_seconds.clone(),
        );
        runtime.observe_commits(move |count, micros| {
            records.observe(count as f64);
            append.observe(micros as f64 / 1e6);
        });
        let sandbox = Arc::new(SandboxGateway::open(&ledger_dir(runtime.data_dir()))?);
        let gateway: Arc<dyn PaymentGateway> = sandbox.clone();
        Ok(App {
            runtime,
            accounts: AccountService::new(
                Arc::new(ReplicatedAccounts::new(proposer.clone())),
                audit.clone(),
                clock.clone(),
            ),
            audit,
            settings,
            proposer,
            challenges,
            pressure: address_pressure::AddressPressure::new(&config.limits),
            hashing: tokio::sync::Semaphore::new(account_api::HASHING_AT_ONCE),
            gateway,
            sandbox,
            clock,
            limits: limits::Limits::new(&config.limits),
            metrics,
            hub: hub::Hub::default(),
            forwarder: None,
            mail,
            bound: std::sync::OnceLock::new(),
            config,
        })
    }

    /// Where fans reach the site, for links in letters (no trailing `/`).
    pub fn public_url(&self) -> String {
        match (&self.config.mail.public_url, self.bound.get()) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(bound)) => bound.clone(),
            (None, None) => format!("http://{}", self.config.listen),
        }
    }

    /// How long a request's headers, and then its body, may take to arrive.
    pub fn request_deadline(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms.max(1))
    }

    /// Whether development endpoints are on.
    pub fn development(&self) -> bool {
        self.config.development || self.config.demo
    }
}

/// `N` bytes from the operating system's random source, or a 500 naming the
/// problem (ticket codes and shuffle seeds must never be predictable).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], error::ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| {
        error::ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "no_randomness",
            "the server has no random source",
        )
    })?;
    Ok(bytes)
}

/// Pending connections the kernel may queue before `accept` (capped by
/// `net.core.somaxconn`). Tokio's default of 1 024 overflows in an arrival
/// spike, and an overflowing SYN queue makes phones retry after a second
/// or more.
const LISTEN_BACKLOG: u32 = 8_192;

/// Binds the listening socket with a backlog sized for arrival spikes.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let (stop, stopped) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(app.config.max_connections.max(1)));
    let per_address = Arc::new(connections::PerAddress::new(
        app.config.max_connections_per_ip.max(1),
        app.config.trusted_proxies.clone(),
    ));
    let header_timeout = app.request_deadline();
    let mut connections = JoinSet::new();
    if let Ok(address) = listener.local_addr() {
        let _ = app.bound.set(format!("http://{address}"));
    }
    let hub = tokio::spawn(hub::Hub::run(app.clone()));
    let counted = app.clone();
    let mail = tokio::spawn(app.mail.clone().run(move |kind, sent| {
        counted
            .metrics
            .mail(kind, sent == crate::mail::outbox::Sent::Delivered);
    }));
    let payments = tokio::spawn(settle_payments(app.clone()));
    let (told, paid) = tokio::sync::mpsc::channel(PIX_NOTICES);
    app.sandbox.on_pix_paid(told);
    let pix = tokio::spawn(confirm_pix(app.clone(), paid));
    let mut trim = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(shutdown);
    loop {
        // Waiting for a connection permit is part of the accept branch, so
        // that shutdown is seen even while every permit is taken.
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = trim.tick() => {
                app.limits.trim();
                app.hub.forget_closed();
                app.accounts.trim_throttle();
                app.challenges.trim(app.clock.now_ms());
                app.pressure.trim(app.clock.now_ms());
            }
            accepted = connections::accept(&listener, &permits) => {
                let Some((stream, remote, permit)) = accepted else { continue };
                let Some(slot) = per_address.take(remote.ip()) else {
                    connections.spawn(connections::refuse(stream, &app.metrics));
                    continue;
                };
                let app = app.clone();
                let mut stopped = stopped.clone();
                connections.spawn(async move {
                    let _held = (permit, slot);
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(dispatch::handle(app, remote.ip(), request).await) }
                    });
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .serve_connection(
                            TokioIo::new(library_errors::JsonLibraryErrors::new(stream)),
                            service,
                        );
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = stopped.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    let _ = stop.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(10), drained).await;
    // Letters of the last requests (a receipt) get a few seconds to leave.
    let posted = async {
        while app.mail.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), posted).await;
    hub.abort();
    payments.abort();
    pix.abort();
    mail.abort();
}

/// Paid Pix charges told and not yet settled, at most; a notice that finds
/// no room is not lost (the sweep finds the charge captured).
const PIX_NOTICES: usize = 1_024;

/// Settles each Pix payment the provider says was paid, as it is told (a
/// real provider's webhook): the order is placed while the hold stands
/// and the charge kept, else the money goes back (`settle.rs`); a new
/// order gets its receipt. The fan's page hears of the order on its
/// stream (`order_confirmed`).
async fn confirm_pix(app: Arc<App>, mut paid: tokio::sync::mpsc::Receiver<u64>) {
    use crate::payments::settle::settle;
    use crate::runtime::Settlement;
    while let Some(reference) = paid.recv().await {
        let found = match app.runtime.query(move |state| {
            state
                .payments
                .values()
                .find(|p| p.payment_ref == reference)
                .copied()
        }) {
            Ok(pending) => pending.await.ok().flatten(),
            Err(_) => None,
        };
        let Some(payment) = found else {
            // Settled already (by the sweep), or another node's.
            continue;
        };
        let now_ms = app.clock.now_ms();
        match settle(&app.runtime, app.gateway.as_ref(), payment, now_ms).await {
            Ok(Some(Settlement::Captured)) => {
                let (event, customer, key) =
                    (payment.event, payment.customer, payment.idempotency_key);
                let order = app.runtime.query(move |state| {
                    state.events.get(&event).and_then(|engine| {
                        engine
                            .orders_of(customer)
                            .find(|(_, o)| o.idempotency_key == key)
                            .map(|(id, _)| id)
                    })
                });
                if let Ok(pending) = order
                    && let Ok(Some(order)) = pending.await
                {
                    tokio::spawn(fan_api::send_receipt(app.clone(), event, customer, order));
                }
            }
            Ok(other) => {
                tracing::info!(
                    payment = reference,
                    ?other,
                    "a paid Pix charge was not kept"
                );
            }
            Err(error) => {
                tracing::warn!(%error, payment = reference, "Pix payment left for the sweep");
            }
        }
    }
}

/// Settles payments left in flight: at once everything a previous process
/// left (recovery), then every few seconds what a request left unfinished
/// for longer than the grace.
async fn settle_payments(app: Arc<App>) {
    use crate::payments::settle::{GRACE_MS, SWEEP_EVERY_MS, sweep};
    let mut cutoff_ms = app.clock.now_ms();
    let mut every = tokio::time::interval(Duration::from_millis(SWEEP_EVERY_MS));
    loop {
        every.tick().await;
        if !app.runtime.leads() {
            // Settling writes to the log: the leader's job. A node that
            // starts leading sweeps everything left in flight.
            cutoff_ms = app.clock.now_ms();
            continue;
        }
        let now_ms = app.clock.now_ms();
        if let Err(error) = sweep(&app.runtime, app.gateway.as_ref(), cutoff_ms, now_ms).await {
            tracing::warn!(%error, "payment sweep failed");
        }
        cutoff_ms = app.clock.now_ms().saturating_sub(GRACE_MS);
    }
}
