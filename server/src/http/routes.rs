//! Dispatch: method and path to handler, identity from the bearer token, and
//! every answer turned into a JSON response. Unknown paths are 404, known
//! paths with the wrong method 405; nothing a client sends can produce a 500.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use ingressoja_engine::CustomerId;
use serde_json::{Value, json};

use super::account_api;
use super::admin_api;
use super::error::ApiError;
use super::fan_api::{self, Answer};
use super::limits::Class;
use super::session::Identity;
use super::{App, body};
use crate::runtime::EventId;

/// Answers one request from `remote`.
pub async fn handle(
    app: Arc<App>,
    remote: IpAddr,
    request: Request<Incoming>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let started = std::time::Instant::now();
    let remote = super::client_address::client_address(
        remote,
        request.headers(),
        &app.config.trusted_proxies,
    );
    if request.method() == Method::GET && super::assets::is_asset(request.uri().path()) {
        let response = super::assets::serve(request.uri().path());
        app.metrics
            .observe("page", response.status().as_u16(), started.elapsed());
        return response;
    }
    let name = {
        let segments: Vec<&str> = request.uri().path().trim_matches('/').split('/').collect();
        route_name(request.method(), &segments)
    };
    let response = if name == "metrics" {
        match app.metrics.render(&app).await {
            Ok(text) => {
                let mut response = Response::new(Full::new(Bytes::from(text)).boxed());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            Err(error) => json_response(error.status, &error.body(), error.retry_after_s),
        }
    } else if ACCOUNT_ROUTES.contains(&name) {
        match accounts(&app, remote, name, request).await {
            Ok(reply) => {
                let mut response = json_response(reply.status, &reply.body.to_string(), None);
                if let Some(cookie) = reply.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                    response.headers_mut().insert(header::SET_COOKIE, cookie);
                }
                response
            }
            Err(error) => json_response(error.status, &error.body(), error.retry_after_s),
        }
    } else if name == "event_stream" || name == "my_stream" {
        match stream(&app, remote, request).await {
            Ok(response) => response,
            Err(error) => json_response(error.status, &error.body(), error.retry_after_s),
        }
    } else {
        let path = request.uri().path().to_owned();
        match route(&app, remote, request).await {
            Ok((status, value)) => json_response(status, &value.to_string(), None),
            Err(error) => {
                let mut response = json_response(error.status, &error.body(), error.retry_after_s);
                if error.status == StatusCode::METHOD_NOT_ALLOWED
                    && let Ok(allow) = HeaderValue::from_str(&allowed_methods(&path))
                {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
                response
            }
        }
    };
    app.metrics
        .observe(name, response.status().as_u16(), started.elapsed());
    response
}

/// Every route: method, path template, metrics name. `docs/openapi.yaml`
/// describes exactly these (a test checks both ways), and a test checks each
/// template routes to its name.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "healthz"),
    ("GET", "/readyz", "readyz"),
    ("GET", "/metrics", "metrics"),
    ("GET", "/api/events", "events_list"),
    ("GET", "/api/events/{event}", "event_get"),
    ("GET", "/api/events/{event}/stream", "event_stream"),
    ("POST", "/api/events/{event}/queue", "queue_join"),
    ("GET", "/api/events/{event}/queue", "queue_status"),
    ("DELETE", "/api/events/{event}/queue", "queue_leave"),
    ("GET", "/api/events/{event}/me/stream", "my_stream"),
    ("GET", "/api/events/{event}/cart", "cart_get"),
    ("DELETE", "/api/events/{event}/cart", "cart_release"),
    ("POST", "/api/events/{event}/cart/items", "cart_add"),
    ("DELETE", "/api/events/{event}/cart/items", "cart_remove"),
    ("POST", "/api/events/{event}/checkout", "checkout"),
    ("GET", "/api/events/{event}/challenge", "join_challenge"),
    ("GET", "/api/me/orders", "my_orders"),
    ("POST", "/api/accounts", "register"),
    ("POST", "/api/session", "login"),
    ("POST", "/api/session/code", "login_code"),
    ("DELETE", "/api/session", "logout"),
    ("GET", "/api/me", "me"),
    ("POST", "/api/me/password", "password_change"),
    ("POST", "/api/me/two-factor", "two_factor_enroll"),
    ("POST", "/api/me/two-factor/confirm", "two_factor_confirm"),
    ("POST", "/api/dev/session", "dev_session"),
    ("POST", "/api/admin/events", "admin"),
    ("PUT", "/api/admin/events/{event}/policy", "admin"),
    ("PUT", "/api/admin/events/{event}/schedule", "admin"),
    ("POST", "/api/admin/events/{event}/pause", "admin"),
    ("POST", "/api/admin/events/{event}/resume", "admin"),
    ("POST", "/api/admin/snapshot", "admin"),
    ("GET", "/api/admin/stats", "admin"),
    ("GET", "/api/admin/audit", "admin"),
    ("POST", "/api/admin/backup", "admin"),
];

/// A fixed name per route, for metrics (never the raw path).
fn route_name(method: &Method, segments: &[&str]) -> &'static str {
    match (method, segments) {
        (&Method::GET, ["healthz"]) => "healthz",
        (&Method::GET, ["readyz"]) => "readyz",
        (&Method::GET, ["metrics"]) => "metrics",
        (&Method::GET, ["api", "events"]) => "events_list",
        (&Method::GET, ["api", "events", _]) => "event_get",
        (&Method::POST, ["api", "events", _, "queue"]) => "queue_join",
        (&Method::GET, ["api", "events", _, "queue"]) => "queue_status",
        (&Method::DELETE, ["api", "events", _, "queue"]) => "queue_leave",
        (&Method::GET, ["api", "events", _, "stream"]) => "event_stream",
        (&Method::GET, ["api", "events", _, "me", "stream"]) => "my_stream",
        (&Method::GET, ["api", "events", _, "cart"]) => "cart_get",
        (&Method::DELETE, ["api", "events", _, "cart"]) => "cart_release",
        (&Method::POST, ["api", "events", _, "cart", "items"]) => "cart_add",
        (&Method::DELETE, ["api", "events", _, "cart", "items"]) => "cart_remove",
        (&Method::POST, ["api", "events", _, "checkout"]) => "checkout",
        (&Method::GET, ["api", "events", _, "challenge"]) => "join_challenge",
        (&Method::GET, ["api", "me", "orders"]) => "my_orders",
        (&Method::POST, ["api", "accounts"]) => "register",
        (&Method::POST, ["api", "session"]) => "login",
        (&Method::POST, ["api", "session", "code"]) => "login_code",
        (&Method::DELETE, ["api", "session"]) => "logout",
        (&Method::GET, ["api", "me"]) => "me",
        (&Method::POST, ["api", "me", "password"]) => "password_change",
        (&Method::POST, ["api", "me", "two-factor"]) => "two_factor_enroll",
        (&Method::POST, ["api", "me", "two-factor", "confirm"]) => "two_factor_confirm",
        (&Method::POST, ["api", "dev", "session"]) => "dev_session",
        (_, ["api", "admin", ..]) => "admin",
        _ => "other",
    }
}

fn json_response(
    status: StatusCode,
    body: &str,
    retry_after_s: Option<u32>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(seconds) = retry_after_s {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still come: the connection cannot be
        // reused for a next request.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn event_id(text: &str) -> Result<EventId, ApiError> {
    text.parse()
        .map(EventId)
        .map_err(|_| ApiError::not_found(format!("no event {text:?}")))
}

/// The customer a request acts for (the session is looked up once per
/// request, in `route`, and passed here).
fn customer(who: &Result<Identity, ApiError>) -> Result<CustomerId, ApiError> {
    who.as_ref().map(|who| who.customer).map_err(Clone::clone)
}

/// An administrator's identity: the admin role, and a login that showed
/// the second factor.
fn admin(who: &Result<Identity, ApiError>) -> Result<&Identity, ApiError> {
    let who = who.as_ref().map_err(Clone::clone)?;
    if !who.account.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs an administrator",
        ));
    }
    if !who.two_factor() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "two_factor_required",
            "administrators log in with two factors",
        ));
    }
    Ok(who)
}

/// A buyer's identity: where the event asks for it, a login that showed
/// the second factor.
async fn buyer(
    app: &App,
    event: EventId,
    who: &Result<Identity, ApiError>,
) -> Result<CustomerId, ApiError> {
    let who = who.as_ref().map_err(Clone::clone)?;
    if app.settings.event(event).require_two_factor && !who.two_factor() {
        // An unknown event is a 404 whatever the login.
        fan_api::require_event(app, event).await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "two_factor_required",
            "this sale needs an account with two-factor login: turn it on, then log in again",
        ));
    }
    Ok(who.customer)
}

fn identity(app: &App, request: &Request<Incoming>) -> Result<Identity, ApiError> {
    super::session::identify(app, request.method(), request.headers(), false)
}

/// Records an administrator's action in the audit log.
fn audit_admin(
    app: &App,
    who: &Identity,
    remote: IpAddr,
    action: &str,
    event: Option<EventId>,
    detail: String,
) -> Result<(), ApiError> {
    tokio::task::block_in_place(|| {
        app.audit.record(crate::audit::Entry {
            at_ms: app.clock.now_ms(),
            action: action.into(),
            account: Some(who.account.id),
            email: Some(who.account.email.clone()),
            event: event.map(|e| e.0),
            ip: Some(remote.to_string()),
            detail,
            ..crate::audit::Entry::default()
        })
    })
    .map(|_| ())
    .map_err(|e| ApiError::internal("audit_failed", e))
}

fn idempotency_key(request: &Request<Incoming>) -> Result<String, ApiError> {
    let missing = || {
        ApiError::bad_request(
            "missing_idempotency_key",
            "send an Idempotency-Key header (1-255 visible characters)",
        )
    };
    let key = request
        .headers()
        .get("idempotency-key")
        .ok_or_else(missing)?;
    let key = key.to_str().map_err(|_| missing())?;
    let valid = (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(key.to_string())
    } else {
        Err(missing())
    }
}

/// Which quota a request counts against (health checks count against none).
fn class_of(method: &Method, segments: &[&str]) -> Option<Class> {
    match (method, segments) {
        (_, ["healthz" | "readyz" | "metrics"]) => None,
        (&Method::POST, ["api", "events", _, "queue"]) => Some(Class::Join),
        (_, ["api", "events", _, "cart" | "checkout", ..]) if method != Method::GET => {
            Some(Class::Cart)
        }
        _ => Some(Class::Read),
    }
}

/// The two server-sent event streams.
async fn stream(
    app: &Arc<App>,
    remote: IpAddr,
    request: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, ApiError> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let event = event_id(segments.get(2).copied().unwrap_or(""))?;
    fan_api::require_event(app, event).await?;
    if segments.get(3) == Some(&"stream") {
        app.limits.check(Class::Read, remote, None)?;
        return super::sse::event_stream(app.clone(), event).await;
    }
    let who = customer(&identity(app, &request))?;
    app.limits.check(Class::Read, remote, Some(who))?;
    let resumed_after = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Ok(super::sse::customer_stream(
        app.clone(),
        event,
        who,
        resumed_after,
    ))
}

/// Routes whose answers may set or clear the session cookie.
const ACCOUNT_ROUTES: &[&str] = &[
    "register",
    "login",
    "login_code",
    "logout",
    "me",
    "password_change",
    "two_factor_enroll",
    "two_factor_confirm",
    "dev_session",
];

/// The account endpoints (see `account_api.rs`).
async fn accounts(
    app: &Arc<App>,
    remote: IpAddr,
    name: &str,
    request: Request<Incoming>,
) -> Result<account_api::Reply, ApiError> {
    let (parts, body) = request.into_parts();
    if name != "me" {
        // Writes count against the cart/checkout quota per address; failed
        // logins also meet the growing delays of `accounts/throttle.rs`.
        super::limits::shed(
            Class::Cart,
            app.runtime.queue_depth(),
            app.runtime.queue_capacity(),
        )?;
        app.limits.check(Class::Cart, remote, None)?;
    }
    let who = |pending| super::session::identify(app, &parts.method, &parts.headers, pending);
    match name {
        "register" => {
            let credentials = body::json(&body::read(body, app.request_deadline()).await?)?;
            account_api::register(app, remote, credentials).await
        }
        "login" => {
            let credentials = body::json(&body::read(body, app.request_deadline()).await?)?;
            let previous = super::session::token_of(&parts.headers).map(|(token, _)| token);
            account_api::login(app, remote, previous, credentials).await
        }
        "login_code" => {
            let who = who(true)?;
            let code = body::json(&body::read(body, app.request_deadline()).await?)?;
            account_api::login_code(app, remote, who, code).await
        }
        "logout" => account_api::logout(app, remote, &who(true)?),
        "me" => Ok(account_api::me(&who(false)?)),
        "password_change" => {
            let who = who(false)?;
            let change = body::json(&body::read(body, app.request_deadline()).await?)?;
            account_api::change_password(app, remote, who, change).await
        }
        "two_factor_enroll" => account_api::enroll(app, remote, who(false)?).await,
        "two_factor_confirm" => {
            let who = who(false)?;
            let confirmation = body::json(&body::read(body, app.request_deadline()).await?)?;
            account_api::confirm(app, remote, who, confirmation).await
        }
        "dev_session" if app.development() => {
            let wanted = body::json(&body::read(body, app.request_deadline()).await?)?;
            account_api::dev_session(app, wanted).await
        }
        _ => Err(ApiError::not_found(format!(
            "no route {}",
            parts.uri.path()
        ))),
    }
}

async fn route(app: &Arc<App>, remote: IpAddr, request: Request<Incoming>) -> Answer {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let who = identity(app, &request);
    if let Some(class) = class_of(&method, &segments) {
        // The account is counted when the token is valid; an invalid one is
        // refused by the handler after the per-address check.
        let account = customer(&who).ok();
        super::limits::shed(
            class,
            app.runtime.queue_depth(),
            app.runtime.queue_capacity(),
        )?;
        app.limits.check(class, remote, account)?;
    }
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => health(app),
        (&Method::GET, ["readyz"]) => Ok((
            StatusCode::OK,
            json!({ "ready": true, "recovery": recovery(app) }),
        )),
        (&Method::GET, ["api", "events"]) => fan_api::list_events(app).await,
        (&Method::GET, ["api", "events", id]) => fan_api::event(app, event_id(id)?).await,
        (&Method::GET, ["api", "events", id, "challenge"]) => {
            let event = event_id(id)?;
            let who = customer(&who)?;
            fan_api::challenge(app, event, who, remote).await
        }
        (&Method::POST, ["api", "events", id, "queue"]) => {
            let (event, who) = (event_id(id)?, customer(&who)?);
            let bytes = body::read(request.into_body(), app.request_deadline()).await?;
            let proof = if bytes.is_empty() {
                None
            } else {
                Some(body::json(&bytes)?)
            };
            fan_api::join(app, event, who, remote, proof).await
        }
        (&Method::DELETE, ["api", "events", id, "queue"]) => {
            let (event, who) = (event_id(id)?, customer(&who)?);
            fan_api::leave(app, event, who, remote).await
        }
        (&Method::GET, ["api", "events", id, "queue"]) => {
            let (event, who) = (event_id(id)?, customer(&who)?);
            fan_api::queue_status(app, event, who).await
        }
        (&Method::GET, ["api", "events", id, "cart"]) => {
            let (event, who) = (event_id(id)?, customer(&who)?);
            fan_api::cart(app, event, who).await
        }
        (&Method::DELETE, ["api", "events", id, "cart"]) => {
            let (event, who) = (event_id(id)?, customer(&who)?);
            fan_api::release(app, event, who, remote).await
        }
        (&Method::POST | &Method::DELETE, ["api", "events", id, "cart", "items"]) => {
            let event = event_id(id)?;
            let add = method == Method::POST;
            let who = if add {
                buyer(app, event, &who).await?
            } else {
                customer(&who)?
            };
            let items =
                body::json(&body::read(request.into_body(), app.request_deadline()).await?)?;
            fan_api::change_items(app, event, who, remote, items, add).await
        }
        (&Method::POST, ["api", "events", id, "checkout"]) => {
            let event = event_id(id)?;
            let who = buyer(app, event, &who).await?;
            let key = idempotency_key(&request)?;
            let order =
                body::json(&body::read(request.into_body(), app.request_deadline()).await?)?;
            fan_api::checkout(app, event, who, remote, &key, order).await
        }
        (&Method::GET, ["api", "me", "orders"]) => {
            fan_api::my_orders(app, customer(&who)?, request.uri().query().unwrap_or("")).await
        }
        (&Method::POST, ["api", "admin", "events"]) => {
            let who = admin(&who)?;
            let new = body::json(&body::read(request.into_body(), app.request_deadline()).await?)?;
            let (status, view) = admin_api::create_event(app, new).await?;
            let event = view["id"]
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .map(EventId);
            let name = view["name"].as_str().unwrap_or("").to_string();
            audit_admin(app, who, remote, "event_created", event, name)?;
            Ok((status, view))
        }
        (&Method::PUT, ["api", "admin", "events", id, "policy"]) => {
            let event = event_id(id)?;
            let who = admin(&who)?;
            let bytes = body::read(request.into_body(), app.request_deadline()).await?;
            let policy = body::json(&bytes)?;
            let answer = admin_api::update_policy(app, event, policy).await?;
            let detail = String::from_utf8_lossy(&bytes).chars().take(500).collect();
            audit_admin(app, who, remote, "policy_changed", Some(event), detail)?;
            Ok(answer)
        }
        (&Method::PUT, ["api", "admin", "events", id, "schedule"]) => {
            let event = event_id(id)?;
            let who = admin(&who)?;
            let bytes = body::read(request.into_body(), app.request_deadline()).await?;
            let schedule = body::json(&bytes)?;
            let answer = admin_api::reschedule(app, event, schedule).await?;
            let detail = String::from_utf8_lossy(&bytes).chars().take(500).collect();
            audit_admin(app, who, remote, "schedule_changed", Some(event), detail)?;
            Ok(answer)
        }
        (&Method::POST, ["api", "admin", "events", id, action @ ("pause" | "resume")]) => {
            let event = event_id(id)?;
            let who = admin(&who)?;
            let answer = admin_api::pause(app, event, *action == "pause").await?;
            let name = if *action == "pause" {
                "sale_paused"
            } else {
                "sale_resumed"
            };
            audit_admin(app, who, remote, name, Some(event), String::new())?;
            Ok(answer)
        }
        (&Method::POST, ["api", "admin", "snapshot"]) => {
            let who = admin(&who)?;
            let answer = admin_api::snapshot(app).await?;
            audit_admin(
                app,
                who,
                remote,
                "snapshot_taken",
                None,
                answer.1.to_string(),
            )?;
            Ok(answer)
        }
        (&Method::POST, ["api", "admin", "backup"]) => {
            let who = admin(&who)?;
            let answer = admin_api::backup(app).await?;
            audit_admin(app, who, remote, "backup_taken", None, answer.1.to_string())?;
            Ok(answer)
        }
        (&Method::GET, ["api", "admin", "stats"]) => {
            admin(&who)?;
            admin_api::stats(app).await
        }
        (&Method::GET, ["api", "admin", "audit"]) => {
            admin(&who)?;
            admin_api::audit(app, request.uri().query().unwrap_or(""))
        }
        (_, segments) if is_known_path(segments, app.development()) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )),
        _ => Err(ApiError::not_found(format!("no route {path}"))),
    }
}

/// The methods `ROUTES` serves on `path`, for a 405's `Allow` header
/// (RFC 9110: a 405 must say what is allowed).
pub fn allowed_methods(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut methods: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, template, _)| {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
        })
        .map(|&(method, _, _)| method)
        .collect();
    methods.dedup();
    methods.join(", ")
}

fn is_known_path(segments: &[&str], development: bool) -> bool {
    matches!(
        segments,
        ["healthz"]
            | ["readyz"]
            | ["metrics"]
            | ["api", "events"]
            | ["api", "events", _]
            | ["api", "events", _, "queue" | "cart" | "checkout" | "stream"]
            | ["api", "events", _, "me", "stream"]
            | ["api", "events", _, "cart", "items"]
            | ["api", "events", _, "challenge"]
            | ["api", "me"]
            | ["api", "me", "orders" | "password" | "two-factor"]
            | ["api", "me", "two-factor", "confirm"]
            | ["api", "accounts"]
            | ["api", "session"]
            | ["api", "session", "code"]
            | [
                "api",
                "admin",
                "events" | "snapshot" | "stats" | "audit" | "backup"
            ]
            | [
                "api",
                "admin",
                "events",
                _,
                "policy" | "schedule" | "pause" | "resume"
            ]
    ) || (development && segments == ["api", "dev", "session"])
}

fn health(app: &App) -> Answer {
    match app.runtime.poisoned() {
        None => Ok((
            StatusCode::OK,
            json!({ "status": "ok", "durable_seq": app.runtime.durable_seq() }),
        )),
        Some(_) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "log_failed",
            message: "the log failed; this process must be restarted".into(),
            retry_after_s: Some(10),
        }),
    }
}

fn recovery(app: &App) -> Value {
    let report = app.runtime.recovery();
    json!({
        "snapshot_seq": report.snapshot_seq,
        "replayed": report.replayed,
        "last_seq": report.last_seq,
        "duration_ms": report.duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_template_reaches_its_handler() {
        for &(method, template, name) in ROUTES {
            let method: Method = method.parse().unwrap();
            let path = template.replace("{event}", "0");
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            assert_eq!(route_name(&method, &segments), name, "{method} {template}");
            assert!(
                is_known_path(&segments, true),
                "{template} is not a known path"
            );
        }
    }
}
