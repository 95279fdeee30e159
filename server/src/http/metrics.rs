//! Prometheus metrics (`GET /metrics`, prometheus-client): requests by route
//! and status, latency by route, and, read from the runtime at scrape time,
//! per-event queue length, admitted, active shoppers, holds and tickets, the
//! shard's channel depth, the log's batches, records, batch sizes and fsync
//! times (histograms, fed by the writer after each commit), and the
//! server-sent event streams open.
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
struct EventLabels {
    event: u64,
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
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to about 3.3 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<EventLabels, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let waiting = gauge(
            &mut registry,
            "queue_waiting",
            "Fans waiting in the queue, per event",
        );
        let admitted = gauge(
            &mut registry,
            "queue_admitted",
            "Fans admitted so far (now serving), per event",
        );
        let active = gauge(
            &mut registry,
            "shoppers_active",
            "Fans shopping now, per event",
        );
        let holds = gauge(
            &mut registry,
            "holds_active",
            "Carts holding tickets, per event",
        );
        let tickets_sold = gauge(&mut registry, "tickets_sold", "Tickets sold, per event");
        let tickets_available = gauge(
            &mut registry,
            "tickets_available",
            "Tickets free to add to a cart, per event",
        );
        let wal_batch_records = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        registry.register(
            "wal_batch_records",
            "Records per group commit",
            wal_batch_records.clone(),
        );
        let wal_append_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "wal_append_seconds",
            "Write + fsync time per group commit",
            wal_append_seconds.clone(),
        );
        let single = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections refused because their address already held max_connections_per_ip",
            connections_refused.clone(),
        );
        Metrics {
            connections_refused,
            payments_in_flight: single(
                &mut registry,
                "payments_in_flight",
                "Payments logged as started and not yet settled with the gateway",
            ),
            shard_queue_depth: single(
                &mut registry,
                "shard_queue_depth",
                "Requests waiting for the shard",
            ),
            wal_batches: single(
                &mut registry,
                "wal_batches_written",
                "Group commits written to the log",
            ),
            wal_records: single(
                &mut registry,
                "wal_records_written",
                "Records written to the log",
            ),
            wal_last_append_us: single(
                &mut registry,
                "wal_last_append_microseconds",
                "Duration of the last write + fsync",
            ),
            snapshot_pause_us: single(
                &mut registry,
                "snapshot_pause_microseconds",
                "How long the shard paused for the last snapshot",
            ),
            sse_streams: single(
                &mut registry,
                "sse_streams_open",
                "Server-sent event streams open now",
            ),
            wal_batch_records,
            wal_append_seconds,
            registry,
            requests,
            latency,
            waiting,
            admitted,
            active,
            holds,
            tickets_sold,
            tickets_available,
        }
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
        let receiver = app.runtime.query(|state| {
            let events = state
                .events
                .iter()
                .map(|(id, engine)| (id.0, engine.stats()))
                .collect::<Vec<_>>();
            (events, state.payments.len())
        })?;
        let (events, payments_in_flight) = receiver.await?;
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
