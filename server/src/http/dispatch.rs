//! Dispatch: a request's [`Route`] (parsed once, `route.rs`), its quota,
//! who is asking, the handler, and every answer turned into a response.
//! Unknown paths are 404, known paths with the wrong method 405 with
//! `Allow`; nothing a client sends can produce a 500.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use ingressoja_engine::CustomerId;
use serde::Serialize;

use super::error::ApiError;
use super::fan_api;
use super::reply::{Answer, answer};
use super::route::{AccountRoute, Needs, Route, UNROUTED_NAME, Unrouted};
use super::session::Identity;
use super::{App, account_api, admin_api, body, sandbox_api};
use crate::cluster::forward::{Decision, changes_the_sale};
use crate::runtime::EventId;

type HttpResponse = Response<BoxBody<Bytes, Infallible>>;

/// Answers one request from `remote`.
pub async fn handle(app: Arc<App>, remote: IpAddr, request: Request<Incoming>) -> HttpResponse {
    let started = std::time::Instant::now();
    // A request another node of the cluster forwarded names its fan (and
    // is answered here, never forwarded again).
    let forwarded_for = app
        .forwarder
        .as_ref()
        .and_then(|forwarder| forwarder.forwarded_for(request.headers()));
    let remote = forwarded_for.unwrap_or_else(|| {
        super::client_address::client_address(
            remote,
            request.headers(),
            &app.config.trusted_proxies,
        )
    });
    if request.method() == Method::GET && super::assets::is_asset(request.uri().path()) {
        let response = super::assets::serve(request.uri().path());
        app.metrics
            .observe("page", response.status().as_u16(), started.elapsed());
        return response;
    }
    let (name, response) =
        match Route::parse(request.method(), request.uri().path(), app.development()) {
            Ok((route, name)) => (
                name,
                here_or_leader(&app, remote, route, request, forwarded_for.is_some()).await,
            ),
            Err(unrouted) => (UNROUTED_NAME, unrouted_response(&request, unrouted)),
        };
    app.metrics
        .observe(name, response.status().as_u16(), started.elapsed());
    response
}

/// Answers a known route here, or has the leader answer it (a node of a
/// cluster that does not lead; see `cluster/forward.rs`). A write answered
/// here in a cluster names the log position it is in, for the fan's reads
/// on any node.
async fn here_or_leader(
    app: &Arc<App>,
    remote: IpAddr,
    route: Route,
    request: Request<Incoming>,
    forwarded: bool,
) -> HttpResponse {
    let Some(forwarder) = app.forwarder.as_ref() else {
        return routed(app, remote, route, request).await;
    };
    let decision = if forwarded {
        Decision::Here
    } else {
        forwarder
            .decide(&app.runtime, &route, request.headers())
            .await
    };
    match decision {
        Decision::Here => {}
        Decision::Forward => {
            app.metrics.forwarded.inc();
            return forwarder
                .forward(app, request, remote)
                .await
                .unwrap_or_else(|error| error_response(&error));
        }
        Decision::Behind => {
            let mut behind = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "catching_up",
                "this server has not caught up with what you were last shown; retry shortly",
            );
            behind.retry_after_s = Some(1);
            return error_response(&behind);
        }
    }
    let mut response = routed(app, remote, route, request).await;
    // Accounts change through the log too (`replicated`): the fan's next
    // request, on any node, waits until that node has the change.
    let changed = changes_the_sale(&route) || matches!(route, Route::Account(_));
    if changed && response.status().is_success() {
        let position = app
            .runtime
            .durable_seq()
            .max(crate::runtime::AttachedState::applied_seq(
                &**app.proposer.state(),
            ));
        forwarder.mark_seen(&mut response, position);
    }
    forwarder.mark_answered_here(&mut response);
    response
}

fn unrouted_response(request: &Request<Incoming>, unrouted: Unrouted) -> HttpResponse {
    let path = request.uri().path();
    match unrouted {
        Unrouted::NotFound => error_response(&ApiError::not_found(format!("no route {path}"))),
        Unrouted::MethodNotAllowed(allow) => {
            let error = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed on {path}", request.method()),
            );
            let mut response = error_response(&error);
            if let Ok(allow) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            response
        }
    }
}

/// The response to a known route.
async fn routed(
    app: &Arc<App>,
    remote: IpAddr,
    route: Route,
    request: Request<Incoming>,
) -> HttpResponse {
    let result = match route {
        Route::Metrics => return metrics(app).await,
        Route::EventStream(event) => stream(app, remote, event, false, request).await,
        Route::MyStream(event) => stream(app, remote, event, true, request).await,
        Route::Account(account) => accounts(app, remote, account, request).await,
        route => api(app, remote, route, request)
            .await
            .map(|(status, body)| json_response(status, body.into_bytes(), None)),
    };
    result.unwrap_or_else(|error| error_response(&error))
}

async fn metrics(app: &Arc<App>) -> HttpResponse {
    match app.metrics.render(app).await {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)).boxed());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Err(error) => error_response(&error),
    }
}

fn error_response(error: &ApiError) -> HttpResponse {
    json_response(error.status, Bytes::from(error.body()), error.retry_after_s)
}

fn json_response(status: StatusCode, body: Bytes, retry_after_s: Option<u32>) -> HttpResponse {
    let mut response = Response::new(Full::new(body).boxed());
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

fn identity(app: &App, request: &Request<Incoming>) -> Result<Identity, ApiError> {
    super::session::identify(app, request.method(), request.headers(), false)
}

/// Checks that `who` is what `needs` asks for.
async fn check_caller(
    app: &App,
    needs: Needs,
    who: Result<Identity, ApiError>,
) -> Result<Option<Identity>, ApiError> {
    match needs {
        Needs::Anyone => Ok(None),
        Needs::Fan => who.map(Some),
        Needs::Buyer(event) => {
            let who = who?;
            if app.settings.event(event).require_two_factor && !who.two_factor() {
                // An unknown event is a 404 whatever the login.
                fan_api::require_event(app, event).await?;
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "two_factor_required",
                    "this sale needs an account with two-factor login: turn it on, then log in again",
                ));
            }
            // A read of the holder only where the sale is named.
            if app.settings.holder_required(event)
                && account_api::holder_of(app, who.account.id)?.is_none()
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "holder_required",
                    "this sale needs the ticket holder's full name and CPF: add them to your account (PUT /api/me/holder)",
                ));
            }
            Ok(Some(who))
        }
        Needs::Admin => {
            let who = who?;
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
            Ok(Some(who))
        }
    }
}

/// The identity [`check_caller`] established: present for every route that
/// needs one (an absent one here is a dispatcher bug, answered as 401).
fn caller(who: Option<&Identity>) -> Result<&Identity, ApiError> {
    who.ok_or_else(|| ApiError::unauthorized("log in first"))
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

/// The two server-sent event streams (`mine`: the fan's own).
async fn stream(
    app: &Arc<App>,
    remote: IpAddr,
    event: EventId,
    mine: bool,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    fan_api::require_event(app, event).await?;
    let class = super::limits::Class::Read;
    if !mine {
        app.limits.check(class, remote, None)?;
        return super::sse::event_stream(app.clone(), event).await;
    }
    let who: CustomerId = identity(app, &request)?.customer;
    app.limits.check(class, remote, Some(who))?;
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

/// The account endpoints (see `account_api.rs`): answers may set or clear
/// the session cookie.
async fn accounts(
    app: &Arc<App>,
    remote: IpAddr,
    route: AccountRoute,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let (parts, body) = request.into_parts();
    if let Some(class) = Route::Account(route).class() {
        // Counted per address only: who is asking is not yet known.
        super::limits::shed(
            class,
            app.runtime.queue_depth(),
            app.runtime.queue_capacity(),
        )?;
        app.limits.check(class, remote, None)?;
    }
    let who = |pending| super::session::identify(app, &parts.method, &parts.headers, pending);
    let deadline = app.request_deadline();
    let reply = match route {
        AccountRoute::Register => {
            let credentials = body::json(&body::read(body, deadline).await?)?;
            account_api::register(app, remote, credentials).await
        }
        AccountRoute::Login => {
            let credentials = body::json(&body::read(body, deadline).await?)?;
            let previous = super::session::token_of(&parts.headers).map(|(token, _)| token);
            account_api::login(app, remote, previous, credentials).await
        }
        AccountRoute::LoginCode => {
            let who = who(true)?;
            let code = body::json(&body::read(body, deadline).await?)?;
            account_api::login_code(app, remote, who, code).await
        }
        AccountRoute::Logout => account_api::logout(app, remote, &who(true)?).await,
        AccountRoute::Me => account_api::me(app, &who(false)?),
        AccountRoute::Holder => {
            let who = who(false)?;
            let holder = body::json(&body::read(body, deadline).await?)?;
            account_api::set_holder(app, remote, who, holder).await
        }
        AccountRoute::PasswordChange => {
            let who = who(false)?;
            let change = body::json(&body::read(body, deadline).await?)?;
            account_api::change_password(app, remote, who, change).await
        }
        AccountRoute::ResetRequest => {
            let wanted = body::json(&body::read(body, deadline).await?)?;
            account_api::request_reset(app, remote, wanted).await
        }
        AccountRoute::ResetConfirm => {
            let reset = body::json(&body::read(body, deadline).await?)?;
            account_api::confirm_reset(app, remote, reset).await
        }
        AccountRoute::TwoFactorEnroll => account_api::enroll(app, remote, who(false)?).await,
        AccountRoute::TwoFactorConfirm => {
            let who = who(false)?;
            let confirmation = body::json(&body::read(body, deadline).await?)?;
            account_api::confirm(app, remote, who, confirmation).await
        }
        AccountRoute::DevSession => {
            let wanted = body::json(&body::read(body, deadline).await?)?;
            account_api::dev_session(app, wanted).await
        }
    }?;
    let mut response = json_response(reply.status, reply.body.into_bytes(), None);
    if let Some(cookie) = reply.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The JSON API: quota, caller, then the handler.
async fn api(app: &Arc<App>, remote: IpAddr, route: Route, request: Request<Incoming>) -> Answer {
    let who = identity(app, &request);
    if let Some(class) = route.class() {
        // The account is counted when the token is valid; an invalid one is
        // refused after the per-address check.
        let account = who.as_ref().ok().map(|who| who.customer);
        super::limits::shed(
            class,
            app.runtime.queue_depth(),
            app.runtime.queue_capacity(),
        )?;
        app.limits.check(class, remote, account)?;
    }
    let who = check_caller(app, route.needs(), who).await?;
    let who = who.as_ref();
    let customer = || caller(who).map(|who| who.customer);
    let deadline = app.request_deadline();
    // Only the routes that read a query pay for copying it.
    let query = |request: &Request<Incoming>| request.uri().query().unwrap_or("").to_owned();
    match route {
        Route::Healthz => health(app),
        Route::Readyz => readiness(app),
        Route::EventsList => fan_api::list_events(app).await,
        Route::EventGet(event) => fan_api::event(app, event).await,
        Route::JoinChallenge(event) => fan_api::challenge(app, event, customer()?, remote).await,
        Route::QueueJoin(event) => {
            let bytes = body::read(request.into_body(), deadline).await?;
            let proof = if bytes.is_empty() {
                None
            } else {
                Some(body::json(&bytes)?)
            };
            fan_api::join(app, event, customer()?, remote, proof).await
        }
        Route::QueueLeave(event) => fan_api::leave(app, event, customer()?, remote).await,
        Route::QueueStatus(event) => fan_api::queue_status(app, event, customer()?).await,
        Route::CartGet(event) => fan_api::cart(app, event, customer()?).await,
        Route::CartRelease(event) => fan_api::release(app, event, customer()?, remote).await,
        Route::CartSet(event) => {
            let selection = body::json(&body::read(request.into_body(), deadline).await?)?;
            fan_api::set_items(app, event, customer()?, remote, selection).await
        }
        Route::CartAdd(event) | Route::CartRemove(event) => {
            let add = matches!(route, Route::CartAdd(_));
            let items = body::json(&body::read(request.into_body(), deadline).await?)?;
            fan_api::change_items(app, event, customer()?, remote, items, add).await
        }
        Route::Checkout(event) => {
            let key = idempotency_key(&request)?;
            let order = body::json(&body::read(request.into_body(), deadline).await?)?;
            fan_api::checkout(app, event, customer()?, remote, &key, order).await
        }
        Route::MyOrders => fan_api::my_orders(app, customer()?, &query(&request)).await,
        Route::SandboxPix => {
            let paid = body::json(&body::read(request.into_body(), deadline).await?)?;
            sandbox_api::pay_pix(app, paid).await
        }
        Route::Admin(admin) => {
            let query = query(&request);
            let body = body::read(request.into_body(), deadline).await?;
            admin_api::handle(app, caller(who)?, remote, admin, &body, &query).await
        }
        // Answered before the JSON API (their own responses).
        Route::Metrics | Route::EventStream(_) | Route::MyStream(_) | Route::Account(_) => {
            Err(ApiError::not_found("no route"))
        }
    }
}

fn health(app: &App) -> Answer {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        durable_seq: u64,
    }
    match app.runtime.poisoned() {
        None => answer(
            StatusCode::OK,
            &Health {
                status: "ok",
                durable_seq: app.runtime.durable_seq(),
            },
        ),
        Some(_) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "log_failed",
            message: "the log failed; this process must be restarted".into(),
            retry_after_s: Some(10),
        }),
    }
}

fn readiness(app: &App) -> Answer {
    #[derive(Serialize)]
    struct Recovery {
        snapshot_seq: Option<u64>,
        replayed: u64,
        last_seq: u64,
        duration_ms: u64,
    }
    #[derive(Serialize)]
    struct Ready {
        ready: bool,
        /// `single` (a node on its own), `leader` (takes writes) or
        /// `follower` (forwards them): for load balancers' checks.
        role: &'static str,
        /// The node leading the group as far as this one knows.
        leader: Option<u64>,
        /// The last log position this node applied.
        applied_seq: u64,
        recovery: Recovery,
    }
    let report = app.runtime.recovery();
    let role = match (app.forwarder.is_some(), app.runtime.leads()) {
        (false, _) => "single",
        (true, true) => "leader",
        (true, false) => "follower",
    };
    let ready = Ready {
        ready: true,
        role,
        leader: app.forwarder.as_ref().and(app.runtime.leader()),
        applied_seq: app.runtime.durable_seq(),
        recovery: Recovery {
            snapshot_seq: report.snapshot_seq,
            replayed: report.replayed,
            last_seq: report.last_seq,
            duration_ms: report.duration_ms,
        },
    };
    answer(StatusCode::OK, &ready)
}
