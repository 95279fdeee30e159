//! The operators' endpoints (admin role): create an event, change its policy
//! or schedule, pause and resume the sale, take a snapshot or a backup, read
//! the stats and the audit trail. [`handle`] runs each and records every
//! action that changes something in the audit log, in one place.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use ingressoja_engine::{Command, EventConfig, MINUTE_MS, Policy, Schedule, TicketType};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::reply::{Answer, answer};
use super::route::AdminRoute;
use super::session::Identity;
use super::settings::{HalfPrice, MAX_POW_DIFFICULTY};
use super::shard_wait::{COMMIT_WAIT, read_state, within};
use super::views::{EventFacts, EventView};
use super::{App, body};
use crate::runtime::{EventId, RuntimeError};

/// A ticket type in an event's creation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketTypeBody {
    name: String,
    price_cents: u64,
    capacity: u32,
    #[serde(default = "default_limit")]
    limit_per_customer: u16,
    /// This type is the meia-entrada of the type at this index (half its
    /// price, for fans with the right to it).
    half_price_of: Option<u8>,
}

/// The least share of an event's tickets offered as meia-entrada when it
/// offers any (Lei 12.933/2013, art. 1º, § 10: 40 % of the total).
pub const HALF_PRICE_SHARE_PERCENT: u64 = 40;

/// The meia-entrada types of a new event: each halves a full-price type
/// (its price is half of that type's, rounded down in the fan's favour),
/// and together they are at least [`HALF_PRICE_SHARE_PERCENT`] of the
/// tickets.
fn half_prices(types: &[TicketTypeBody]) -> Result<Vec<HalfPrice>, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_config", message);
    let mut half_price = Vec::new();
    for (index, kind) in types.iter().enumerate() {
        let Some(of) = kind.half_price_of else {
            continue;
        };
        let full = types
            .get(usize::from(of))
            .filter(|full| usize::from(of) != index && full.half_price_of.is_none())
            .ok_or_else(|| {
                invalid(format!(
                    "ticket type {index}: half_price_of names a full-price type of this event"
                ))
            })?;
        if kind.price_cents != full.price_cents / 2 {
            return Err(invalid(format!(
                "ticket type {index}: meia-entrada costs half of {} ({} cents)",
                full.name,
                full.price_cents / 2
            )));
        }
        let index = u8::try_from(index).map_err(|_| invalid("too many ticket types".into()))?;
        half_price.push(HalfPrice {
            ticket_type: index,
            of,
        });
    }
    if !half_price.is_empty() {
        let all: u64 = types.iter().map(|t| u64::from(t.capacity)).sum();
        let half: u64 = types
            .iter()
            .filter(|t| t.half_price_of.is_some())
            .map(|t| u64::from(t.capacity))
            .sum();
        if half * 100 < all * HALF_PRICE_SHARE_PERCENT {
            return Err(invalid(format!(
                "meia-entrada must be at least {HALF_PRICE_SHARE_PERCENT}% of the tickets \
                 (Lei 12.933/2013): {half} of {all}"
            )));
        }
    }
    Ok(half_price)
}

fn default_limit() -> u16 {
    4
}

/// The most tickets one customer may hold and buy of an event (per type and
/// in all). A drop sells to many fans, not to a few; and every ticket a fan
/// owns is a line in their order list and a QR code on their phone, so
/// this bound is also what keeps one fan's answers small.
pub const MAX_CUSTOMER_LIMIT: u16 = 50;

/// The longest event, venue or ticket type name (what a ticket and a phone
/// screen can show).
pub const MAX_NAME_CHARS: usize = 200;

/// 400 unless every name is not blank and at most [`MAX_NAME_CHARS`].
fn check_names(body: &NewEventBody) -> Result<(), ApiError> {
    let names = [body.name.as_str(), body.venue.as_str()]
        .into_iter()
        .chain(body.ticket_types.iter().map(|t| t.name.as_str()));
    for name in names {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::bad_request(
                "invalid_config",
                format!("names are not blank and have at most {MAX_NAME_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

/// 400 unless every per-customer limit is within [`MAX_CUSTOMER_LIMIT`].
fn check_limits(policy: &Policy) -> Result<(), ApiError> {
    let too_high = policy.per_event_limit > MAX_CUSTOMER_LIMIT
        || policy
            .per_type_limits
            .iter()
            .any(|(_, limit)| limit > MAX_CUSTOMER_LIMIT);
    if too_high {
        return Err(ApiError::bad_request(
            "invalid_config",
            format!("per-customer limits are at most {MAX_CUSTOMER_LIMIT}"),
        ));
    }
    Ok(())
}

/// Policy fields; any left out keep their current (or default) value.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    max_active: Option<u32>,
    admit_per_second: Option<u32>,
    overadmit_percent: Option<u16>,
    arrival_window_ms: Option<u64>,
    idle_after_ms: Option<u64>,
    admission_window_ms: Option<u64>,
    hold_ttl_ms: Option<u64>,
    per_event_limit: Option<u16>,
    per_type_limits: Option<Vec<u16>>,
    max_queue_len: Option<u32>,
    /// Leading zero bits of the join's proof of work (server-side setting).
    pow_difficulty: Option<u8>,
    /// Whether buying needs a two-factor login (server-side setting).
    require_two_factor: Option<bool>,
    /// Whether buying needs the account's ticket holder, name and CPF
    /// (server-side setting; one account per CPF).
    require_holder: Option<bool>,
}

impl PolicyBody {
    /// Applies the server-side settings to `event` (they live outside the
    /// engine: see `settings.rs`).
    fn apply_security(&self, app: &App, event: EventId) -> Result<(), ApiError> {
        let mut security = app.settings.event(event);
        if let Some(difficulty) = self.pow_difficulty {
            if difficulty > MAX_POW_DIFFICULTY {
                return Err(ApiError::bad_request(
                    "invalid_config",
                    format!("pow_difficulty is at most {MAX_POW_DIFFICULTY}"),
                ));
            }
            security.pow_difficulty = difficulty;
        }
        security.require_two_factor = self
            .require_two_factor
            .unwrap_or(security.require_two_factor);
        if security != app.settings.event(event) {
            tokio::task::block_in_place(|| app.proposer.set_event_security(event, security))
                .map_err(|e| ApiError::internal("settings_unavailable", e))?;
        }
        Ok(())
    }

    /// Applies the terms of sale to `event`: whether a holder is required
    /// and, at creation, its meia-entrada types.
    fn apply_terms(
        &self,
        app: &App,
        event: EventId,
        half_price: Option<Vec<HalfPrice>>,
    ) -> Result<(), ApiError> {
        let mut terms = app.settings.terms(event);
        terms.holder_required = self.require_holder.unwrap_or(terms.holder_required);
        if let Some(half_price) = half_price {
            terms.half_price = half_price;
        }
        if terms != app.settings.terms(event) {
            tokio::task::block_in_place(|| app.proposer.set_event_terms(event, terms))
                .map_err(|e| ApiError::internal("settings_unavailable", e))?;
        }
        Ok(())
    }

    fn apply_to(&self, mut policy: Policy) -> Result<Policy, ApiError> {
        policy.max_active = self.max_active.unwrap_or(policy.max_active);
        policy.admit_per_second = self.admit_per_second.unwrap_or(policy.admit_per_second);
        policy.overadmit_percent = self.overadmit_percent.unwrap_or(policy.overadmit_percent);
        policy.arrival_window_ms = self.arrival_window_ms.unwrap_or(policy.arrival_window_ms);
        policy.idle_after_ms = self.idle_after_ms.unwrap_or(policy.idle_after_ms);
        policy.admission_window_ms = self
            .admission_window_ms
            .unwrap_or(policy.admission_window_ms);
        policy.hold_ttl_ms = self.hold_ttl_ms.unwrap_or(policy.hold_ttl_ms);
        policy.per_event_limit = self.per_event_limit.unwrap_or(policy.per_event_limit);
        policy.max_queue_len = self.max_queue_len.unwrap_or(policy.max_queue_len);
        if let Some(limits) = &self.per_type_limits {
            if limits.len() > ingressoja_engine::MAX_TICKET_TYPES {
                return Err(ApiError::bad_request(
                    "invalid_config",
                    "at most 16 per-type limits",
                ));
            }
            for (t, &limit) in limits.iter().enumerate() {
                policy.per_type_limits.set(t, limit);
            }
        }
        Ok(policy)
    }
}

/// The body of `POST /api/admin/events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEventBody {
    name: String,
    venue: String,
    starts_at_ms: u64,
    opens_at_ms: u64,
    closes_at_ms: u64,
    prequeue_opens_at_ms: Option<u64>,
    ticket_types: Vec<TicketTypeBody>,
    #[serde(default)]
    policy: PolicyBody,
}

/// The body of `PUT /api/admin/events/{id}/schedule`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    prequeue_opens_at_ms: u64,
    opens_at_ms: u64,
    closes_at_ms: u64,
}

/// Runs an administrator's request (`who` already checked by the
/// dispatcher) and records what it changed in the audit log: who, from
/// where, what, on which event.
pub async fn handle(
    app: &Arc<App>,
    who: &Identity,
    remote: IpAddr,
    route: AdminRoute,
    body: &Bytes,
    query: &str,
) -> Answer {
    // What a change asked for, as the audit trail keeps it.
    let asked = || String::from_utf8_lossy(body).chars().take(500).collect();
    let record = |action: &'static str, event: Option<EventId>, detail: String| {
        record(app, who, remote, action, event, detail)
    };
    match route {
        AdminRoute::CreateEvent => {
            let view = create_event(app, body::json(body)?).await?;
            record("event_created", Some(EventId(view.id)), view.name.clone())?;
            answer(StatusCode::CREATED, &view)
        }
        AdminRoute::Policy(event) => {
            let view = update_policy(app, event, body::json(body)?).await?;
            record("policy_changed", Some(event), asked())?;
            answer(StatusCode::OK, &view)
        }
        AdminRoute::Schedule(event) => {
            let view = reschedule(app, event, body::json(body)?).await?;
            record("schedule_changed", Some(event), asked())?;
            answer(StatusCode::OK, &view)
        }
        AdminRoute::Pause(event) | AdminRoute::Resume(event) => {
            let paused = matches!(route, AdminRoute::Pause(_));
            let view = pause(app, event, paused).await?;
            let action = if paused {
                "sale_paused"
            } else {
                "sale_resumed"
            };
            record(action, Some(event), String::new())?;
            answer(StatusCode::OK, &view)
        }
        AdminRoute::Snapshot => {
            let taken = json!({ "snapshot_seq": snapshot(app).await? });
            record("snapshot_taken", None, taken.to_string())?;
            answer(StatusCode::CREATED, &taken)
        }
        AdminRoute::Backup => {
            let taken = json!({ "backup": backup(app).await? });
            record("backup_taken", None, taken.to_string())?;
            answer(StatusCode::CREATED, &taken)
        }
        AdminRoute::Stats => stats(app).await,
        AdminRoute::Audit => audit_query(app, query),
    }
}

/// Records an administrator's action in the audit log.
fn record(
    app: &App,
    who: &Identity,
    remote: IpAddr,
    action: &'static str,
    event: Option<EventId>,
    detail: String,
) -> Result<(), ApiError> {
    let action = crate::audit::Action {
        name: action,
        account: Some(who.account.id),
        email: Some(who.account.email.clone()),
        event: event.map(|e| e.0),
        from: remote.to_string(),
        detail,
    };
    // A synced write: the worker hands its other tasks on while it waits.
    tokio::task::block_in_place(|| app.audit.act(app.clock.now_ms(), action))
        .map(|_| ())
        .map_err(|e| ApiError::internal("audit_failed", e))
}

async fn event_view(app: &App, event: EventId) -> Result<EventView, ApiError> {
    let view = read_state(app, move |state| {
        state.events.get(&event).map(|e| EventFacts::of(event, e))
    })
    .await?;
    view.map(|facts| EventView::of(&facts, &app.settings.terms(event)))
        .ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))
}

/// `POST /api/admin/events`: the new event's view.
pub async fn create_event(app: &App, body: NewEventBody) -> Result<EventView, ApiError> {
    check_names(&body)?;
    let mut policy = body.policy.apply_to(Policy::default())?;
    for (t, ticket_type) in body.ticket_types.iter().enumerate() {
        policy
            .per_type_limits
            .set(t, ticket_type.limit_per_customer);
    }
    check_limits(&policy)?;
    let half_price = half_prices(&body.ticket_types)?;
    let seed = super::random_bytes::<8>()?;
    let config = EventConfig {
        name: body.name,
        venue: body.venue,
        starts_at_ms: body.starts_at_ms,
        ticket_types: body
            .ticket_types
            .into_iter()
            .map(|t| TicketType {
                name: t.name,
                price_cents: t.price_cents,
                capacity: t.capacity,
            })
            .collect(),
        schedule: Schedule {
            prequeue_opens_at_ms: body
                .prequeue_opens_at_ms
                .unwrap_or(body.opens_at_ms.saturating_sub(30 * MINUTE_MS)),
            opens_at_ms: body.opens_at_ms,
            closes_at_ms: body.closes_at_ms,
        },
        policy,
        shuffle_seed: u64::from_le_bytes(seed),
    };
    if body
        .policy
        .pow_difficulty
        .is_some_and(|d| d > MAX_POW_DIFFICULTY)
    {
        return Err(ApiError::bad_request(
            "invalid_config",
            format!("pow_difficulty is at most {MAX_POW_DIFFICULTY}"),
        ));
    }
    let event = within(COMMIT_WAIT, app.runtime.create_event(config)?).await?;
    body.policy.apply_security(app, event)?;
    body.policy.apply_terms(app, event, Some(half_price))?;
    event_view(app, event).await
}

async fn command(app: &App, event: EventId, command: Command) -> Result<EventView, ApiError> {
    let applied = within(COMMIT_WAIT, app.runtime.submit(event, command, None)?).await?;
    applied.outcome.map_err(ApiError::from)?;
    event_view(app, event).await
}

/// `PUT /api/admin/events/{id}/policy`
pub async fn update_policy(
    app: &App,
    event: EventId,
    body: PolicyBody,
) -> Result<EventView, ApiError> {
    let current = read_state(app, move |state| {
        state.events.get(&event).map(|e| e.config().policy)
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no event {}", event.0)))?;
    let policy = body.apply_to(current)?;
    check_limits(&policy)?;
    command(app, event, Command::UpdatePolicy { policy }).await?;
    body.apply_security(app, event)?;
    body.apply_terms(app, event, None)?;
    event_view(app, event).await
}

/// `PUT /api/admin/events/{id}/schedule`
pub async fn reschedule(
    app: &App,
    event: EventId,
    body: ScheduleBody,
) -> Result<EventView, ApiError> {
    let schedule = Schedule {
        prequeue_opens_at_ms: body.prequeue_opens_at_ms,
        opens_at_ms: body.opens_at_ms,
        closes_at_ms: body.closes_at_ms,
    };
    command(app, event, Command::Reschedule { schedule }).await
}

/// `POST /api/admin/events/{id}/pause` and `/resume`
pub async fn pause(app: &App, event: EventId, paused: bool) -> Result<EventView, ApiError> {
    command(
        app,
        event,
        if paused {
            Command::Pause
        } else {
            Command::Resume
        },
    )
    .await
}

/// `POST /api/admin/snapshot`: the log sequence number it covers.
pub async fn snapshot(app: &App) -> Result<u64, ApiError> {
    match app.runtime.snapshot()?.await {
        Ok(seq) => Ok(seq),
        Err(RuntimeError::SnapshotFailed(reason)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "snapshot_failed",
            reason,
        )),
        Err(other) => Err(other.into()),
    }
}

/// How long the dashboard waits for a node's view of the cluster.
const NODE_STATUS_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// One node as the dashboard's cluster panel shows it.
#[derive(Serialize)]
struct NodeView {
    id: u64,
    /// Answered within [`NODE_STATUS_WAIT`] (its figures are absent
    /// otherwise).
    reachable: bool,
    /// This node's own row.
    this_node: bool,
    state: Option<String>,
    term: Option<u64>,
    leader: Option<u64>,
    applied_index: Option<u64>,
    /// Entries behind the furthest log among the nodes that answered.
    lag: Option<u64>,
}

/// Every node of the cluster, each asked on its peers' listener at once
/// (none on a single node).
async fn cluster_view(app: &App) -> Option<Vec<NodeView>> {
    let (addrs, secret) = app.proposer.peers()?;
    let this = app.runtime.raft().map(|raft| raft.metrics().borrow().id);
    let mut asks = tokio::task::JoinSet::new();
    for (&id, addr) in addrs {
        let (addr, secret) = (addr.clone(), secret.to_owned());
        asks.spawn(async move {
            let path = crate::cluster::membership::path::STATUS;
            let answer =
                crate::cluster::cli::send(&addr, &secret, path, None, NODE_STATUS_WAIT).await;
            let status = match answer {
                Ok((200, body)) => {
                    serde_json::from_value::<crate::cluster::membership::NodeStatus>(body).ok()
                }
                _ => None,
            };
            (id, status)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        if let Ok(answer) = joined {
            answers.push(answer);
        }
    }
    answers.sort_by_key(|(id, _)| *id);
    let furthest = answers
        .iter()
        .filter_map(|(_, s)| s.as_ref()?.last_log_index)
        .max();
    Some(
        answers
            .into_iter()
            .map(|(id, status)| NodeView {
                id,
                reachable: status.is_some(),
                this_node: Some(id) == this,
                lag: status
                    .as_ref()
                    .and_then(|s| Some(furthest?.saturating_sub(s.applied_index.unwrap_or(0)))),
                applied_index: status.as_ref().and_then(|s| s.applied_index),
                leader: status.as_ref().and_then(|s| s.leader),
                term: status.as_ref().map(|s| s.term),
                state: status.map(|s| s.state),
            })
            .collect(),
    )
}

/// One event's figures in `GET /api/admin/stats`.
#[derive(Serialize)]
struct EventStats {
    event: u64,
    joined: u32,
    waiting: u32,
    admitted: u32,
    left: u32,
    active: u32,
    idle: u32,
    in_draw: u32,
    holds: u32,
    tickets_held: u64,
    tickets_sold: u64,
    tickets_available: u64,
    orders: u32,
    paused: bool,
    phase: String,
    holds_expired: u64,
}

/// `GET /api/admin/stats`
pub async fn stats(app: &App) -> Answer {
    let events = read_state(app, |state| {
        state
            .events
            .iter()
            .map(|(&id, engine)| (id, engine.stats()))
            .collect::<Vec<_>>()
    })
    .await?;
    let events: Vec<EventStats> = events
        .into_iter()
        .map(|(id, s)| EventStats {
            event: id.0,
            joined: s.joined,
            waiting: s.waiting,
            admitted: s.admitted,
            left: s.left,
            active: s.active,
            idle: s.idle,
            in_draw: s.in_draw,
            holds: s.holds,
            tickets_held: s.tickets_held,
            tickets_sold: s.tickets_sold,
            tickets_available: s.tickets_available,
            orders: s.orders,
            paused: s.paused,
            phase: format!("{:?}", s.phase),
            holds_expired: app.hub.expired_holds(id),
        })
        .collect();
    let runtime = app.runtime.stats();
    answer(
        StatusCode::OK,
        &json!({
            "events": events,
            "log": {
                "durable_seq": app.runtime.durable_seq(),
                "batches_written": runtime.batches_written,
                "records_written": runtime.records_written,
                "last_append_us": runtime.last_append_us,
            },
            "snapshots": {
                "written": runtime.snapshots_written,
                "last_seq": runtime.last_snapshot_seq,
                "last_pause_us": runtime.last_snapshot_pause_us,
            },
            "shard_queue_depth": app.runtime.queue_depth(),
            "cluster": cluster_view(app).await,
        }),
    )
}

/// Sale-log records an audit query reads back from the end at most: a
/// query must answer in well under a second while the sale runs.
const SALE_QUERY_BUDGET: u64 = 500_000;

/// `GET /api/admin/audit?log=&account=&email=&event=&since_ms=&until_ms=&limit=`:
/// entries newest first (at most 1 000), from the audit log (`log=audit`,
/// the default: accounts, sessions, admin actions) or the sale log
/// (`log=sale`: every sale transition, with the fan's address for what
/// their own requests did; the newest half a million records are searched,
/// and `complete` says whether that reached back far enough).
pub fn audit_query(app: &App, query: &str) -> Answer {
    let mut filter = crate::audit::Filter::default();
    let mut limit = 100;
    let mut sale_log = false;
    let mut email = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.as_ref(), value.as_ref());
        let number = || {
            value.parse::<u64>().map_err(|_| {
                ApiError::bad_request("invalid_query", format!("{name} must be a whole number"))
            })
        };
        match name {
            "log" => {
                sale_log = match value {
                    "audit" => false,
                    "sale" => true,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            "log is audit or sale",
                        ));
                    }
                }
            }
            "account" => filter.account = Some(number()?),
            "email" if value.len() > crate::accounts::store::MAX_EMAIL => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "email is at most {} characters",
                        crate::accounts::store::MAX_EMAIL
                    ),
                ));
            }
            "email" => email = Some(value.to_owned()),
            "event" => filter.event = Some(number()?),
            "since_ms" => filter.since_ms = Some(number()?),
            "until_ms" => filter.until_ms = Some(number()?),
            "limit" => limit = usize::try_from(number()?.clamp(1, 1_000)).unwrap_or(1_000),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown parameter {name:?} (log, account, email, event, since_ms, until_ms, limit)"
                    ),
                ));
            }
        }
    }
    // By e-mail: the account's entries (the sale log knows accounts, not
    // e-mails); an e-mail of no account: the entries naming it (a failed
    // login with it, say), none in the sale log.
    if let Some(given) = email.filter(|e| !e.trim().is_empty()) {
        let normal = crate::accounts::normalize_email(&given)
            .unwrap_or_else(|_| given.trim().to_lowercase());
        let found = tokio::task::block_in_place(|| app.accounts.store().find(&normal))
            .map_err(|e| ApiError::internal("accounts_unavailable", e))?;
        match found {
            Some(account) if filter.account.is_some_and(|a| a != account.id) => {
                filter.email = Some(normal);
            }
            Some(account) => filter.account = Some(account.id),
            None => filter.email = Some(normal),
        }
    }
    if sale_log {
        return sale_audit(app, &filter, limit);
    }
    let entries = tokio::task::block_in_place(|| app.audit.query(&filter, limit))
        .map_err(|e| ApiError::internal("audit_unavailable", e))?;
    answer(
        StatusCode::OK,
        &json!({ "log": "audit", "entries": entries }),
    )
}

fn sale_audit(app: &App, filter: &crate::audit::Filter, limit: usize) -> Answer {
    let store = app
        .runtime
        .sale_log()
        .ok_or_else(|| ApiError::internal("audit_unavailable", "this runtime keeps no sale log"))?;
    let found = tokio::task::block_in_place(|| {
        crate::sale_trail::query(&store, filter, limit, SALE_QUERY_BUDGET)
    })
    .map_err(|e| ApiError::internal("audit_unavailable", e))?;
    answer(
        StatusCode::OK,
        &json!({
            "log": "sale",
            "entries": found.entries,
            "scanned": found.scanned,
            "complete": found.complete,
        }),
    )
}

/// `POST /api/admin/backup`: an online, consistent backup into
/// `DATA/backups/backup-<ms>` (checked with `ingressoja backup verify`);
/// its directory.
pub async fn backup(app: &std::sync::Arc<App>) -> Result<String, ApiError> {
    let target = app
        .config
        .data
        .join("backups")
        .join(format!("backup-{}", app.clock.now_ms()));
    let worker = app.clone();
    let path = target.clone();
    tokio::task::spawn_blocking(move || worker.runtime.backup(&path))
        .await
        .map_err(|e| ApiError::internal("worker_failed", e))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backup_failed",
                e.to_string(),
            )
        })?;
    Ok(target.display().to_string())
}
