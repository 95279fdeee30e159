//! Every route the server answers, in one table: method, path template,
//! metrics name, and what each parses to. A request's path is split and
//! matched once ([`Route::parse`], which also gives the route's
//! metrics name); from then on the dispatcher (`dispatch.rs`) works on a
//! typed [`Route`] that knows its quota class (for rate limits) and who
//! must be asking.
//! `docs/openapi.yaml` describes exactly this table (a test checks both
//! ways), and 405's `Allow` header is read from it.

use http::Method;

use super::limits::Class;
use crate::runtime::EventId;

/// A request the server knows how to answer, with what its path carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
    /// `GET /api/events`
    EventsList,
    /// `GET /api/events/{event}`
    EventGet(EventId),
    /// `GET /api/events/{event}/stream`
    EventStream(EventId),
    /// `POST /api/events/{event}/queue`
    QueueJoin(EventId),
    /// `GET /api/events/{event}/queue`
    QueueStatus(EventId),
    /// `DELETE /api/events/{event}/queue`
    QueueLeave(EventId),
    /// `GET /api/events/{event}/me/stream`
    MyStream(EventId),
    /// `GET /api/events/{event}/cart`
    CartGet(EventId),
    /// `DELETE /api/events/{event}/cart`
    CartRelease(EventId),
    /// `PUT /api/events/{event}/cart`: the hold becomes this selection.
    CartSet(EventId),
    /// `POST /api/events/{event}/cart/items`
    CartAdd(EventId),
    /// `DELETE /api/events/{event}/cart/items`
    CartRemove(EventId),
    /// `POST /api/events/{event}/checkout`
    Checkout(EventId),
    /// `GET /api/events/{event}/challenge`
    JoinChallenge(EventId),
    /// `GET /api/me/orders`
    MyOrders,
    /// `POST /api/sandbox/pix`: the payer's bank pays a Pix code (the
    /// sandbox provider's stand-in for a bank app).
    SandboxPix,
    /// An account route (`account_api.rs`): answers may set the cookie.
    Account(AccountRoute),
    /// An operator's route (`admin_api.rs`).
    Admin(AdminRoute),
}

/// The account routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountRoute {
    /// `POST /api/accounts`
    Register,
    /// `POST /api/session`
    Login,
    /// `POST /api/session/code`
    LoginCode,
    /// `DELETE /api/session`
    Logout,
    /// `GET /api/me`
    Me,
    /// `POST /api/me/password`
    PasswordChange,
    /// `PUT /api/me/holder`
    Holder,
    /// `POST /api/password-reset`
    ResetRequest,
    /// `POST /api/password-reset/confirm`
    ResetConfirm,
    /// `POST /api/me/two-factor`
    TwoFactorEnroll,
    /// `POST /api/me/two-factor/confirm`
    TwoFactorConfirm,
    /// `POST /api/dev/session` (development mode only)
    DevSession,
}

/// The operators' routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRoute {
    /// `POST /api/admin/events`
    CreateEvent,
    /// `PUT /api/admin/events/{event}/policy`
    Policy(EventId),
    /// `PUT /api/admin/events/{event}/schedule`
    Schedule(EventId),
    /// `POST /api/admin/events/{event}/pause`
    Pause(EventId),
    /// `POST /api/admin/events/{event}/resume`
    Resume(EventId),
    /// `POST /api/admin/snapshot`
    Snapshot,
    /// `GET /api/admin/stats`
    Stats,
    /// `GET /api/admin/audit`
    Audit,
    /// `POST /api/admin/backup`
    Backup,
}

/// Who must be asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Anyone (or the route checks itself: account routes, streams).
    Anyone,
    /// A logged-in fan.
    Fan,
    /// A fan allowed to buy in the event (two factors where it asks).
    Buyer(EventId),
    /// An administrator who logged in with two factors.
    Admin,
}

/// Why a path has no route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unrouted {
    /// No such path (404).
    NotFound,
    /// The path exists with other methods (405), listed for `Allow`.
    MethodNotAllowed(String),
}

type Make = fn(EventId) -> Route;

/// One row of the table.
struct Row {
    method: &'static str,
    template: &'static str,
    name: &'static str,
    make: Make,
}

const fn row(method: &'static str, template: &'static str, name: &'static str, make: Make) -> Row {
    Row {
        method,
        template,
        name,
        make,
    }
}

/// The table: every route, once. `{event}` is an event id.
const TABLE: &[Row] = &[
    row("GET", "/healthz", "healthz", |_| Route::Healthz),
    row("GET", "/readyz", "readyz", |_| Route::Readyz),
    row("GET", "/metrics", "metrics", |_| Route::Metrics),
    row("GET", "/api/events", "events_list", |_| Route::EventsList),
    row("GET", "/api/events/{event}", "event_get", Route::EventGet),
    row(
        "GET",
        "/api/events/{event}/stream",
        "event_stream",
        Route::EventStream,
    ),
    row(
        "POST",
        "/api/events/{event}/queue",
        "queue_join",
        Route::QueueJoin,
    ),
    row(
        "GET",
        "/api/events/{event}/queue",
        "queue_status",
        Route::QueueStatus,
    ),
    row(
        "DELETE",
        "/api/events/{event}/queue",
        "queue_leave",
        Route::QueueLeave,
    ),
    row(
        "GET",
        "/api/events/{event}/me/stream",
        "my_stream",
        Route::MyStream,
    ),
    row(
        "GET",
        "/api/events/{event}/cart",
        "cart_get",
        Route::CartGet,
    ),
    row(
        "DELETE",
        "/api/events/{event}/cart",
        "cart_release",
        Route::CartRelease,
    ),
    row(
        "PUT",
        "/api/events/{event}/cart",
        "cart_set",
        Route::CartSet,
    ),
    row(
        "POST",
        "/api/events/{event}/cart/items",
        "cart_add",
        Route::CartAdd,
    ),
    row(
        "DELETE",
        "/api/events/{event}/cart/items",
        "cart_remove",
        Route::CartRemove,
    ),
    row(
        "POST",
        "/api/events/{event}/checkout",
        "checkout",
        Route::Checkout,
    ),
    row(
        "GET",
        "/api/events/{event}/challenge",
        "join_challenge",
        Route::JoinChallenge,
    ),
    row("GET", "/api/me/orders", "my_orders", |_| Route::MyOrders),
    row("POST", "/api/sandbox/pix", "sandbox_pix", |_| {
        Route::SandboxPix
    }),
    row("POST", "/api/accounts", "register", |_| {
        Route::Account(AccountRoute::Register)
    }),
    row("POST", "/api/session", "login", |_| {
        Route::Account(AccountRoute::Login)
    }),
    row("POST", "/api/session/code", "login_code", |_| {
        Route::Account(AccountRoute::LoginCode)
    }),
    row("DELETE", "/api/session", "logout", |_| {
        Route::Account(AccountRoute::Logout)
    }),
    row("GET", "/api/me", "me", |_| Route::Account(AccountRoute::Me)),
    row("PUT", "/api/me/holder", "holder", |_| {
        Route::Account(AccountRoute::Holder)
    }),
    row("POST", "/api/me/password", "password_change", |_| {
        Route::Account(AccountRoute::PasswordChange)
    }),
    row("POST", "/api/password-reset", "password_reset", |_| {
        Route::Account(AccountRoute::ResetRequest)
    }),
    row(
        "POST",
        "/api/password-reset/confirm",
        "password_reset_confirm",
        |_| Route::Account(AccountRoute::ResetConfirm),
    ),
    row("POST", "/api/me/two-factor", "two_factor_enroll", |_| {
        Route::Account(AccountRoute::TwoFactorEnroll)
    }),
    row(
        "POST",
        "/api/me/two-factor/confirm",
        "two_factor_confirm",
        |_| Route::Account(AccountRoute::TwoFactorConfirm),
    ),
    row("POST", "/api/dev/session", "dev_session", |_| {
        Route::Account(AccountRoute::DevSession)
    }),
    row("POST", "/api/admin/events", "admin", |_| {
        Route::Admin(AdminRoute::CreateEvent)
    }),
    row("PUT", "/api/admin/events/{event}/policy", "admin", |e| {
        Route::Admin(AdminRoute::Policy(e))
    }),
    row("PUT", "/api/admin/events/{event}/schedule", "admin", |e| {
        Route::Admin(AdminRoute::Schedule(e))
    }),
    row("POST", "/api/admin/events/{event}/pause", "admin", |e| {
        Route::Admin(AdminRoute::Pause(e))
    }),
    row("POST", "/api/admin/events/{event}/resume", "admin", |e| {
        Route::Admin(AdminRoute::Resume(e))
    }),
    row("POST", "/api/admin/snapshot", "admin", |_| {
        Route::Admin(AdminRoute::Snapshot)
    }),
    row("GET", "/api/admin/stats", "admin", |_| {
        Route::Admin(AdminRoute::Stats)
    }),
    row("GET", "/api/admin/audit", "admin", |_| {
        Route::Admin(AdminRoute::Audit)
    }),
    row("POST", "/api/admin/backup", "admin", |_| {
        Route::Admin(AdminRoute::Backup)
    }),
];

/// The development-only route (unknown outside development mode).
const DEV_SESSION: &str = "/api/dev/session";

/// The metrics name of a request that matched no route.
pub const UNROUTED_NAME: &str = "other";

/// Every route as (method, path template): what `docs/openapi.yaml` must
/// describe.
pub fn templates() -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLE.iter().map(|row| (row.method, row.template))
}

/// Whether `path` fits `template`; the event id if the template has one
/// (`Some(None)`: a fit with an event id that is not a number: no such
/// event, a 404).
fn fit(template: &str, path: &str) -> Option<Option<EventId>> {
    let mut parts = template.trim_matches('/').split('/');
    let mut segments = path.trim_matches('/').split('/');
    let mut event = Some(EventId(0));
    loop {
        match (parts.next(), segments.next()) {
            (None, None) => return Some(event),
            (Some("{event}"), Some(segment)) => event = segment.parse().ok().map(EventId),
            (Some(part), Some(segment)) if part == segment => {}
            _ => return None,
        }
    }
}

impl Route {
    /// The route of `method` on `path`, parsed once, with its fixed name
    /// for metrics (never the raw path) read off the row that matched. The
    /// development-only route is unknown unless `development`.
    pub fn parse(
        method: &Method,
        path: &str,
        development: bool,
    ) -> Result<(Route, &'static str), Unrouted> {
        let mut allowed: Vec<&str> = Vec::new();
        for row in TABLE {
            if row.template == DEV_SESSION && !development {
                continue;
            }
            let Some(event) = fit(row.template, path) else {
                continue;
            };
            if row.method != method.as_str() {
                if !allowed.contains(&row.method) {
                    allowed.push(row.method);
                }
                continue;
            }
            // A path whose event id is not a number names no event.
            return event
                .map(|event| ((row.make)(event), row.name))
                .ok_or(Unrouted::NotFound);
        }
        if allowed.is_empty() {
            Err(Unrouted::NotFound)
        } else {
            Err(Unrouted::MethodNotAllowed(allowed.join(", ")))
        }
    }

    /// The event its path names, if any.
    pub fn event(self) -> Option<EventId> {
        match self {
            Route::EventGet(e)
            | Route::EventStream(e)
            | Route::QueueJoin(e)
            | Route::QueueStatus(e)
            | Route::QueueLeave(e)
            | Route::MyStream(e)
            | Route::CartGet(e)
            | Route::CartRelease(e)
            | Route::CartSet(e)
            | Route::CartAdd(e)
            | Route::CartRemove(e)
            | Route::Checkout(e)
            | Route::JoinChallenge(e)
            | Route::Admin(
                AdminRoute::Policy(e)
                | AdminRoute::Schedule(e)
                | AdminRoute::Pause(e)
                | AdminRoute::Resume(e),
            ) => Some(e),
            Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::EventsList
            | Route::MyOrders
            | Route::SandboxPix
            | Route::Account(_)
            | Route::Admin(
                AdminRoute::CreateEvent
                | AdminRoute::Snapshot
                | AdminRoute::Stats
                | AdminRoute::Audit
                | AdminRoute::Backup,
            ) => None,
        }
    }

    /// Which quota it counts against (health checks and metrics: none;
    /// reading your own account: none).
    pub fn class(self) -> Option<Class> {
        match self {
            Route::Healthz | Route::Readyz | Route::Metrics => None,
            Route::Account(AccountRoute::Me) => None,
            Route::QueueJoin(_) => Some(Class::Join),
            Route::CartRelease(_)
            | Route::CartSet(_)
            | Route::CartAdd(_)
            | Route::CartRemove(_)
            | Route::Checkout(_)
            | Route::SandboxPix => Some(Class::Cart),
            // Account writes count against the cart/checkout quota; failed
            // logins also meet the growing delays of `accounts/throttle.rs`.
            Route::Account(_) => Some(Class::Cart),
            Route::EventsList
            | Route::EventGet(_)
            | Route::EventStream(_)
            | Route::QueueStatus(_)
            | Route::QueueLeave(_)
            | Route::MyStream(_)
            | Route::CartGet(_)
            | Route::JoinChallenge(_)
            | Route::MyOrders
            | Route::Admin(_) => Some(Class::Read),
        }
    }

    /// Who must be asking (checked by the dispatcher before the handler).
    pub fn needs(self) -> Needs {
        match self {
            Route::CartAdd(e) | Route::CartSet(e) | Route::Checkout(e) => Needs::Buyer(e),
            Route::JoinChallenge(_)
            | Route::QueueJoin(_)
            | Route::QueueStatus(_)
            | Route::QueueLeave(_)
            | Route::CartGet(_)
            | Route::CartRelease(_)
            | Route::CartRemove(_)
            | Route::MyOrders => Needs::Fan,
            Route::Admin(_) => Needs::Admin,
            Route::Healthz
            | Route::Readyz
            | Route::Metrics
            | Route::EventsList
            | Route::EventGet(_)
            | Route::EventStream(_)
            | Route::MyStream(_)
            | Route::SandboxPix
            | Route::Account(_) => Needs::Anyone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_in_the_table_parses_back_to_itself() {
        for row in TABLE {
            let method: Method = row.method.parse().unwrap();
            let path = row.template.replace("{event}", "7");
            let (route, name) = Route::parse(&method, &path, true).unwrap();
            assert_eq!(
                route,
                (row.make)(EventId(7)),
                "{} {}",
                row.method,
                row.template
            );
            assert_eq!(name, row.name, "{} {}", row.method, row.template);
            let has_event = row.template.contains("{event}");
            assert_eq!(
                route.event(),
                has_event.then_some(EventId(7)),
                "{}",
                row.template
            );
        }
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        assert_eq!(
            Route::parse(&Method::GET, "/api/nothing", true),
            Err(Unrouted::NotFound)
        );
        assert_eq!(
            Route::parse(&Method::PATCH, "/api/events/3/queue", true),
            Err(Unrouted::MethodNotAllowed("POST, GET, DELETE".into()))
        );
        assert_eq!(
            Route::parse(&Method::GET, "/api/events/x", true),
            Err(Unrouted::NotFound),
            "an event id that is not a number names no event"
        );
        assert_eq!(
            Route::parse(&Method::POST, "/api/dev/session", false),
            Err(Unrouted::NotFound),
            "the development route does not exist outside development"
        );
        assert_eq!(
            Route::parse(&Method::GET, "/api/events/", true),
            Ok((Route::EventsList, "events_list")),
            "a trailing slash is the same path"
        );
    }

    #[test]
    fn quotas_and_identities_follow_the_route() {
        assert_eq!(Route::QueueJoin(EventId(0)).class(), Some(Class::Join));
        assert_eq!(Route::Checkout(EventId(0)).class(), Some(Class::Cart));
        assert_eq!(Route::CartGet(EventId(0)).class(), Some(Class::Read));
        assert_eq!(Route::Healthz.class(), None);
        assert_eq!(
            Route::Checkout(EventId(2)).needs(),
            Needs::Buyer(EventId(2))
        );
        assert_eq!(Route::CartRemove(EventId(2)).needs(), Needs::Fan);
        assert_eq!(Route::Admin(AdminRoute::Stats).needs(), Needs::Admin);
    }
}
