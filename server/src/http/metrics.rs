//! Prometheus metrics (`GET /metrics`, prometheus-client): requests by route
//! and status, latency by route, and, read from the runtime at scrape time,
//! per-event queue length, admitted, active shoppers, holds and tickets, the
//! shard's channel depth, the log's batches, records, batch sizes and fsync
//! times (histograms, fed by the writer after each commit), and the
//! server-sent event streams open; and the node's place in its cluster
//! (Raft's term, role, leader, log and applied indexes, each follower's lag
//! on a leader, requests forwarded to the leader, the shared state's
//! applied position), read from openraft's metrics at scrape time.
//! Route labels are a fixed set of names, never raw paths, so the number of
//! series stays bounded whatever clients send.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::App;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: u64,
}

/// The node's place in its Raft group, as gauges.
struct RaftGauges {
    term: Gauge,
    leader: Gauge,
    leads: Gauge,
    last_log_index: Gauge,
    last_applied_index: Gauge,
    millis_since_quorum_ack: Gauge,
    lag: Family<PeerLabels, Gauge>,
    shared_applied_seq: Gauge,
}

impl RaftGauges {
    fn new(r: &mut Registry) -> RaftGauges {
        RaftGauges {
            term: register(
                r,
                "raft_term",
                "The Raft term this node is in",
                Gauge::default(),
            ),
            leader: register(
                r,
                "raft_leader",
                "The node leading the group as far as this one knows (0: none known)",
                Gauge::default(),
            ),
            leads: register(
                r,
                "raft_is_leader",
                "1 when this node leads its group and takes writes",
                Gauge::default(),
            ),
            last_log_index: register(
                r,
                "raft_last_log_index",
                "The last entry in this node's log",
                Gauge::default(),
            ),
            last_applied_index: register(
                r,
                "raft_last_applied_index",
                "The last entry this node applied (committed)",
                Gauge::default(),
            ),
            millis_since_quorum_ack: register(
                r,
                "raft_millis_since_quorum_ack",
                "On a leader: since a majority last answered (-1 elsewhere)",
                Gauge::default(),
            ),
            lag: register(
                r,
                "raft_replication_lag_entries",
                "On a leader: entries each member's log is behind this one's",
                Family::default(),
            ),
            shared_applied_seq: register(
                r,
                "shared_state_applied_seq",
                "The last log record applied to accounts, sessions, audit log and settings",
                Gauge::default(),
            ),
        }
    }
}

/// The registry and the metrics updated per request.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    waiting: Family<EventLabels, Gauge>,
    admitted: Family<EventLabels, Gauge>,
    active: Family<EventLabels, Gauge>,
    holds: Family<EventLabels, Gauge>,
    tickets_sold: Family<EventLabels, Gauge>,
    tickets_available: Family<EventLabels, Gauge>,
    shard_queue_depth: Gauge,
    wal_batches: Gauge,
    wal_records: Gauge,
    wal_last_append_us: Gauge,
    snapshot_pause_us: Gauge,
    /// Server-sent event streams open now (see `sse.rs`).
    pub sse_streams: Gauge,
    /// Connections refused because their address held too many.
    pub connections_refused: Counter,
    payments_in_flight: Gauge,
    /// Records per group commit.
    pub wal_batch_records: Histogram,
    /// Write + fsync time per group commit.
    pub wal_append_seconds: Histogram,
    /// Requests this node sent to its leader.
    pub forwarded: Counter,
    mails: Family<MailLabels, Counter>,
    raft: RaftGauges,
}

/// Registers `metric` under `name` and hands it back (the registry keeps a
/// handle to the same series).
fn register<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ingressoja");
        let r = &mut registry;
        // 50 µs to about 3.3 s.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
        });
        let per_event = Family::<EventLabels, Gauge>::default;
        Metrics {
            requests: register(
                r,
                "http_requests",
                "HTTP requests by route and status",
                Family::default(),
            ),
            latency: register(
                r,
                "http_request_duration_seconds",
                "Time to answer, by route",
                latency,
            ),
            waiting: register(
                r,
                "queue_waiting",
                "Fans waiting in the queue, per event",
                per_event(),
            ),
            admitted: register(
                r,
                "queue_admitted",
                "Fans admitted so far (now serving), per event",
                per_event(),
            ),
            active: register(
                r,
                "shoppers_active",
                "Fans shopping now, per event",
                per_event(),
            ),
            holds: register(
                r,
                "holds_active",
                "Carts holding tickets, per event",
                per_event(),
            ),
            tickets_sold: register(r, "tickets_sold", "Tickets sold, per event", per_event()),
            tickets_available: register(
                r,
                "tickets_available",
                "Tickets free to add to a cart, per event",
                per_event(),
            ),
            wal_batch_records: register(
                r,
                "wal_batch_records",
                "Records per group commit",
                Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            ),
            wal_append_seconds: register(
                r,
                "wal_append_seconds",
                "Write + fsync time per group commit",
                Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            ),
            connections_refused: register(
                r,
                "connections_refused",
                "Connections refused because their address already held max_connections_per_ip",
                Counter::default(),
            ),
            payments_in_flight: register(
                r,
                "payments_in_flight",
                "Payments logged as started and not yet settled with the gateway",
                Gauge::default(),
            ),
            shard_queue_depth: register(
                r,
                "shard_queue_depth",
                "Requests waiting for the shard",
                Gauge::default(),
            ),
            wal_batches: register(
                r,
                "wal_batches_written",
                "Group commits written to the log",
                Gauge::default(),
            ),
            wal_records: register(
                r,
                "wal_records_written",
                "Records written to the log",
                Gauge::default(),
            ),
            wal_last_append_us: register(
                r,
                "wal_last_append_microseconds",
                "Duration of the last write + fsync",
                Gauge::default(),
            ),
            snapshot_pause_us: register(
                r,
                "snapshot_pause_microseconds",
                "How long the shard paused for the last snapshot",
                Gauge::default(),
            ),
            sse_streams: register(
                r,
                "sse_streams_open",
                "Server-sent event streams open now",
                Gauge::default(),
            ),
            forwarded: register(
                r,
                "forwarded_requests",
                "Requests this node sent to its group's leader",
                Counter::default(),
            ),
            mails: register(
                r,
                "mails",
                "Letters by kind and outcome (delivered, failed; dropped ones are mail_outbox_dropped)",
                Family::default(),
            ),
            raft: RaftGauges::new(r),
            registry,
        }
    }

    /// Counts a letter's fate.
    pub fn mail(&self, kind: &'static str, delivered: bool) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.mails
            .get_or_create(&MailLabels { kind, outcome })
            .inc();
    }

    /// Registers the outbox's count of letters dropped because it was full.
    pub fn register_mail_dropped(&mut self, dropped: Counter) {
        self.registry.register(
            "mail_outbox_dropped",
            "Letters dropped because the outbox was full",
            dropped,
        );
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// The node's place in its group, from openraft's metrics.
    fn read_raft(&self, app: &App) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let raft = &self.raft;
        raft.shared_applied_seq
            .set(gauge(crate::runtime::AttachedState::applied_seq(
                &**app.proposer.state(),
            )));
        raft.leads.set(i64::from(app.runtime.leads()));
        let Some(group) = app.runtime.raft() else {
            return;
        };
        let m = group.metrics().borrow().clone();
        raft.term.set(gauge(m.current_term));
        raft.leader.set(gauge(m.current_leader.unwrap_or(0)));
        let last = m.last_log_index.unwrap_or(0);
        raft.last_log_index.set(gauge(last));
        raft.last_applied_index
            .set(gauge(m.last_applied.map_or(0, |l| l.index)));
        raft.millis_since_quorum_ack
            .set(m.millis_since_quorum_ack.map_or(-1, gauge));
        // Members that left keep their last figure until a restart: the
        // family is bounded by the nodes ever in the group.
        for (peer, matched) in m.replication.iter().flatten() {
            let behind = last.saturating_sub(matched.map_or(0, |l| l.index));
            raft.lag
                .get_or_create(&PeerLabels { peer: *peer })
                .set(gauge(behind));
        }
    }

    /// The text exposition, with the runtime's figures read now.
    pub async fn render(&self, app: &Arc<App>) -> Result<String, super::error::ApiError> {
        let stats = app.runtime.stats();
        let gauge_value = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.shard_queue_depth
            .set(gauge_value(app.runtime.queue_depth() as u64));
        self.wal_batches.set(gauge_value(stats.batches_written));
        self.wal_records.set(gauge_value(stats.records_written));
        self.wal_last_append_us
            .set(gauge_value(stats.last_append_us));
        self.snapshot_pause_us
            .set(gauge_value(stats.last_snapshot_pause_us));
        self.read_raft(app);
        let (events, payments_in_flight) = super::shard_wait::read_state(app, |state| {
            let events = state
                .events
                .iter()
                .map(|(id, engine)| (id.0, engine.stats()))
                .collect::<Vec<_>>();
            (events, state.payments.len())
        })
        .await?;
        self.payments_in_flight
            .set(gauge_value(payments_in_flight as u64));
        for (event, s) in events {
            let labels = EventLabels { event };
            self.waiting
                .get_or_create(&labels)
                .set(i64::from(s.waiting));
            self.admitted
                .get_or_create(&labels)
                .set(i64::from(s.admitted));
            self.active.get_or_create(&labels).set(i64::from(s.active));
            self.holds.get_or_create(&labels).set(i64::from(s.holds));
            self.tickets_sold
                .get_or_create(&labels)
                .set(gauge_value(s.tickets_sold));
            self.tickets_available
                .get_or_create(&labels)
                .set(gauge_value(s.tickets_available));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).map_err(|_| {
            super::error::ApiError::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "metrics_failed",
                "cannot encode metrics",
            )
        })?;
        Ok(text)
    }
}
