//! The account endpoints: register, log in (password, then the second
//! factor when enabled), log out, who am I, change the password, enroll in
//! two-factor, and the development-only session factory. Each answer that
//! starts or ends a session sets or clears the session cookie; every
//! outcome that matters to security goes to the audit log first.
//!
//! Passwords are checked off the async workers (argon2id takes tens of
//! milliseconds and 19 MiB), at most [`HASHING_AT_ONCE`] at a time; a login
//! for an unknown email spends the same work as a wrong password, and both
//! get the same answer.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::error::ApiError;
use super::session::{self, Identity};
use crate::accounts::store::{PENDING_TTL_MS, SESSION_TTL_MS};
use crate::accounts::{Account, AccountError, TwoFactor, normalize_email, password, totp};
use crate::audit::Entry;

/// Password hashes computed at once at most (each holds 19 MiB).
pub const HASHING_AT_ONCE: usize = 2;

/// An answer that may set the session cookie.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
    /// A `Set-Cookie` value.
    pub cookie: Option<String>,
}

/// Email and password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: String,
    password: String,
}

/// The second step of a login: a TOTP code or a recovery code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondFactor {
    code: Option<String>,
    recovery_code: Option<String>,
}

/// A password change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// A first code, confirming an enrollment.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    code: String,
}

/// Whose development session to make.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSession {
    email: String,
}

fn busy() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "overloaded",
        message: "too many logins at once; retry shortly".into(),
        retry_after_s: Some(2),
    }
}

fn storage(error: io::Error) -> ApiError {
    ApiError::internal("accounts_unavailable", error)
}

/// Runs blocking work (store writes) off the async workers.
async fn off_thread<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&App) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || work(&app))
        .await
        .map_err(|e| ApiError::internal("worker_failed", e))
}

/// Runs password hashing off the async workers, a few at a time.
async fn hashing<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&App) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let permit = tokio::time::timeout(Duration::from_secs(10), app.hashing.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let result = off_thread(app, work).await;
    drop(permit);
    result
}

/// Records an audit entry; an action that cannot be audited fails.
pub fn audit(
    app: &App,
    action: &str,
    account: Option<&Account>,
    email: Option<&str>,
    ip: IpAddr,
    detail: impl Into<String>,
) -> Result<(), ApiError> {
    // A synced write: the worker hands its other tasks on while it waits.
    tokio::task::block_in_place(|| {
        app.audit.record(Entry {
            at_ms: app.clock.now_ms(),
            action: action.into(),
            account: account.map(|a| a.id),
            email: email
                .map(str::to_string)
                .or_else(|| account.map(|a| a.email.clone())),
            ip: Some(ip.to_string()),
            detail: detail.into(),
            ..Entry::default()
        })
    })
    .map(|_| ())
    .map_err(|e| ApiError::internal("audit_failed", e))
}

/// What a client may know of an account.
pub fn account_view(account: &Account) -> Value {
    json!({
        "id": account.id,
        "email": account.email,
        "admin": account.admin,
        "two_factor": account.has_two_factor(),
    })
}

fn check_password_rules(password: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if length < password::MIN_LENGTH || password.len() > password::MAX_LENGTH {
        return Err(ApiError::bad_request(
            "weak_password",
            format!(
                "a password has at least {} characters (and at most {} bytes)",
                password::MIN_LENGTH,
                password::MAX_LENGTH
            ),
        ));
    }
    Ok(())
}

fn email_error(error: AccountError) -> ApiError {
    match error {
        AccountError::BadEmail(why) => ApiError::bad_request("invalid_email", why),
        AccountError::Taken => ApiError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "an account with this email exists; log in instead",
        ),
        AccountError::Io(e) => storage(e),
    }
}

/// Ends a session (a synced write, waited for off the async tasks).
fn revoke(app: &App, token: &str) -> Result<(), ApiError> {
    tokio::task::block_in_place(|| app.accounts.revoke_session(token)).map_err(storage)
}

/// Starts a session and answers with its cookie.
fn start_session(
    app: &App,
    account: &Account,
    awaiting_code: bool,
    two_factor: bool,
    status: StatusCode,
    mut body: Value,
) -> Result<Reply, ApiError> {
    let now = app.clock.now_ms();
    let (token, session) = tokio::task::block_in_place(|| {
        app.accounts
            .create_session(account, awaiting_code, two_factor, now)
    })
    .map_err(storage)?;
    let ttl = if awaiting_code {
        PENDING_TTL_MS
    } else {
        SESSION_TTL_MS
    };
    body["csrf_token"] = json!(session.csrf);
    body["session_expires_at_ms"] = json!(session.expires_ms);
    Ok(Reply {
        status,
        body,
        cookie: Some(session::cookie(
            &token,
            ttl / 1_000,
            app.config.secure_cookies,
        )),
    })
}

/// `POST /api/accounts`: a new account, logged in.
pub async fn register(app: &Arc<App>, ip: IpAddr, body: Credentials) -> Result<Reply, ApiError> {
    let email = normalize_email(&body.email).map_err(email_error)?;
    check_password_rules(&body.password)?;
    let now = app.clock.now_ms();
    let account = hashing(app, move |app| {
        let hash = password::hash(&body.password)
            .map_err(|e| AccountError::Io(io::Error::other(e.to_string())))?;
        app.accounts.create(&email, hash, false, now)
    })
    .await?
    .map_err(email_error)?;
    audit(app, "account_registered", Some(&account), None, ip, "")?;
    let body = json!({ "account": account_view(&account) });
    start_session(app, &account, false, false, StatusCode::CREATED, body)
}

fn too_many(wait_ms: u64) -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "too_many_attempts",
        message: "too many failed attempts; wait before trying again".into(),
        retry_after_s: Some(
            u32::try_from(wait_ms.div_ceil(1_000))
                .unwrap_or(u32::MAX)
                .max(1),
        ),
    }
}

/// Counts a failed attempt: audit entries for the failure and any lockout.
fn failed_attempt(
    app: &App,
    ip: IpAddr,
    email: &str,
    account: Option<&Account>,
    why: &str,
) -> Result<(), ApiError> {
    let lockouts = app.throttle.failed(ip, email, app.clock.now_ms());
    audit(app, "login_failed", account, Some(email), ip, why)?;
    for lockout in lockouts {
        let detail = format!(
            "{} locked for {} s after {} failures",
            lockout.kind,
            lockout.block_ms / 1_000,
            lockout.failures
        );
        audit(app, "login_lockout", account, Some(email), ip, detail)?;
    }
    Ok(())
}

/// `POST /api/session`: the password step of a login. With two-factor on,
/// the session it starts can only take the code (`/api/session/code`).
pub async fn login(
    app: &Arc<App>,
    ip: IpAddr,
    previous: Option<String>,
    body: Credentials,
) -> Result<Reply, ApiError> {
    let email = normalize_email(&body.email).unwrap_or_else(|_| body.email.trim().to_lowercase());
    let wait = app.throttle.wait_ms(ip, &email, app.clock.now_ms());
    if wait > 0 {
        return Err(too_many(wait));
    }
    let lookup = email.clone();
    let found = hashing(app, move |app| {
        let account = app.accounts.find(&lookup)?;
        Ok::<_, io::Error>(match account {
            Some(account) if password::verify(&body.password, &account.password_hash) => {
                Some(account)
            }
            Some(_) => None,
            None => {
                password::verify_nothing(&body.password);
                None
            }
        })
    })
    .await?
    .map_err(storage)?;
    let Some(account) = found else {
        failed_attempt(app, ip, &email, None, "wrong email or password")?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the email or the password is wrong",
        ));
    };
    app.throttle.succeeded(&email);
    // A login always starts a new session (no fixation): the old one ends.
    if let Some(previous) = previous {
        revoke(app, &previous)?;
    }
    if account.has_two_factor() {
        audit(
            app,
            "login_password_accepted",
            Some(&account),
            None,
            ip,
            "awaiting the second factor",
        )?;
        let body = json!({ "stage": "two_factor", "account": account_view(&account) });
        return start_session(app, &account, true, false, StatusCode::OK, body);
    }
    audit(
        app,
        "login_succeeded",
        Some(&account),
        None,
        ip,
        "password only",
    )?;
    let body = json!({ "stage": "done", "account": account_view(&account) });
    start_session(app, &account, false, false, StatusCode::OK, body)
}

/// Why a second factor was refused.
enum CodeError {
    Wrong,
    Io(io::Error),
}

impl From<io::Error> for CodeError {
    fn from(error: io::Error) -> CodeError {
        CodeError::Io(error)
    }
}

/// `POST /api/session/code`: the second step, with a TOTP code or a
/// recovery code; replaces the waiting session with a full one.
pub async fn login_code(
    app: &Arc<App>,
    ip: IpAddr,
    who: Identity,
    body: SecondFactor,
) -> Result<Reply, ApiError> {
    if !who.session.awaiting_code {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_logged_in",
            "this session is already logged in",
        ));
    }
    let email = who.account.email.clone();
    let wait = app.throttle.wait_ms(ip, &email, app.clock.now_ms());
    if wait > 0 {
        return Err(too_many(wait));
    }
    let now_s = app.clock.now_ms() / 1_000;
    let id = who.account.id;
    let used = off_thread(app, move |app| {
        app.accounts.update(id, |account| {
            let two_factor = account
                .two_factor
                .as_mut()
                .filter(|t| t.confirmed)
                .ok_or(CodeError::Wrong)?;
            if let Some(code) = &body.code {
                let step =
                    totp::accepted_step(&two_factor.secret, code, now_s, two_factor.last_step)
                        .ok_or(CodeError::Wrong)?;
                two_factor.last_step = step;
                return Ok("authenticator code".to_string());
            }
            let digest = totp::recovery_digest(body.recovery_code.as_deref().unwrap_or(""));
            let index = two_factor
                .recovery
                .iter()
                .position(|d| *d == digest)
                .ok_or(CodeError::Wrong)?;
            two_factor.recovery.remove(index);
            Ok(format!(
                "recovery code ({} left)",
                two_factor.recovery.len()
            ))
        })
    })
    .await?;
    let how = match used {
        Ok(how) => how,
        Err(CodeError::Io(e)) => return Err(storage(e)),
        Err(CodeError::Wrong) => {
            failed_attempt(
                app,
                ip,
                &email,
                Some(&who.account),
                "wrong or reused second-factor code",
            )?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_code",
                "the code is wrong, expired or already used",
            ));
        }
    };
    app.throttle.succeeded(&email);
    revoke(app, &who.token)?;
    let account = app
        .accounts
        .get(id)
        .map_err(storage)?
        .unwrap_or(who.account);
    audit(app, "login_succeeded", Some(&account), None, ip, how)?;
    let body = json!({ "stage": "done", "account": account_view(&account) });
    start_session(app, &account, false, true, StatusCode::OK, body)
}

/// `DELETE /api/session`: log out.
pub fn logout(app: &App, ip: IpAddr, who: &Identity) -> Result<Reply, ApiError> {
    revoke(app, &who.token)?;
    audit(
        app,
        "session_revoked",
        Some(&who.account),
        None,
        ip,
        "logout",
    )?;
    Ok(Reply {
        status: StatusCode::OK,
        body: json!({ "logged_out": true }),
        cookie: Some(session::clear_cookie(app.config.secure_cookies)),
    })
}

/// `GET /api/me`
pub fn me(who: &Identity) -> Reply {
    Reply {
        status: StatusCode::OK,
        body: json!({
            "account": account_view(&who.account),
            "csrf_token": who.session.csrf,
            "session_two_factor": who.session.two_factor,
            "session_expires_at_ms": who.session.expires_ms,
        }),
        cookie: None,
    }
}

/// `POST /api/me/password`: every other session of the account ends.
pub async fn change_password(
    app: &Arc<App>,
    ip: IpAddr,
    who: Identity,
    body: PasswordChange,
) -> Result<Reply, ApiError> {
    check_password_rules(&body.new_password)?;
    let email = who.account.email.clone();
    let wait = app.throttle.wait_ms(ip, &email, app.clock.now_ms());
    if wait > 0 {
        return Err(too_many(wait));
    }
    let id = who.account.id;
    let changed = hashing(app, move |app| {
        app.accounts.update(id, |account| {
            if !password::verify(&body.current_password, &account.password_hash) {
                return Ok(None);
            }
            account.password_hash =
                password::hash(&body.new_password).map_err(|e| io::Error::other(e.to_string()))?;
            // Every session of the old epoch is revoked at once.
            account.epoch = account.epoch.wrapping_add(1);
            Ok::<_, io::Error>(Some(account.clone()))
        })
    })
    .await?
    .map_err(storage)?;
    let Some(account) = changed else {
        failed_attempt(
            app,
            ip,
            &email,
            Some(&who.account),
            "wrong current password",
        )?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the current password is wrong",
        ));
    };
    audit(
        app,
        "password_changed",
        Some(&account),
        None,
        ip,
        "every session revoked",
    )?;
    let body = json!({ "account": account_view(&account) });
    start_session(
        app,
        &account,
        false,
        who.session.two_factor,
        StatusCode::OK,
        body,
    )
}

/// `POST /api/me/two-factor`: starts (or restarts) an enrollment.
pub async fn enroll(app: &Arc<App>, ip: IpAddr, who: Identity) -> Result<Reply, ApiError> {
    if who.account.has_two_factor() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "two_factor_enabled",
            "two-factor is already on",
        ));
    }
    let secret = totp::new_secret().map_err(|e| ApiError::internal("no_randomness", e))?;
    let enrollment = totp::enrollment(&secret, &who.account.email).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_email",
            "this email cannot name an authenticator entry",
        )
    })?;
    let id = who.account.id;
    off_thread(app, move |app| {
        app.accounts.update(id, |account| {
            account.two_factor = Some(TwoFactor {
                secret,
                confirmed: false,
                last_step: 0,
                recovery: Vec::new(),
            });
            Ok::<_, io::Error>(())
        })
    })
    .await?
    .map_err(storage)?;
    audit(
        app,
        "two_factor_enrollment_started",
        Some(&who.account),
        None,
        ip,
        "",
    )?;
    Ok(Reply {
        status: StatusCode::OK,
        body: json!({
            "secret": enrollment.secret_base32,
            "otpauth_uri": enrollment.uri,
            "qr_svg": enrollment.qr_svg,
        }),
        cookie: None,
    })
}

/// `POST /api/me/two-factor/confirm`: the first code turns two-factor on;
/// the answer holds the recovery codes, shown this once.
pub async fn confirm(
    app: &Arc<App>,
    ip: IpAddr,
    who: Identity,
    body: Confirmation,
) -> Result<Reply, ApiError> {
    let (codes, digests) =
        totp::recovery_codes().map_err(|e| ApiError::internal("no_randomness", e))?;
    let now_s = app.clock.now_ms() / 1_000;
    let id = who.account.id;
    let confirmed = off_thread(app, move |app| {
        app.accounts.update(id, |account| {
            let two_factor = account
                .two_factor
                .as_mut()
                .filter(|t| !t.confirmed)
                .ok_or(CodeError::Wrong)?;
            let step = totp::accepted_step(&two_factor.secret, &body.code, now_s, 0)
                .ok_or(CodeError::Wrong)?;
            two_factor.confirmed = true;
            two_factor.last_step = step;
            two_factor.recovery = digests;
            Ok(account.clone())
        })
    })
    .await?;
    let account = match confirmed {
        Ok(account) => account,
        Err(CodeError::Io(e)) => return Err(storage(e)),
        Err(CodeError::Wrong) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_code",
                "the code does not match: check the device's clock, or start the enrollment again",
            ));
        }
    };
    audit(app, "two_factor_enabled", Some(&account), None, ip, "")?;
    // Showing the code proves the second factor: the session is replaced
    // by one that has it.
    revoke(app, &who.token)?;
    let body = json!({ "account": account_view(&account), "recovery_codes": codes });
    start_session(app, &account, false, true, StatusCode::OK, body)
}

/// `POST /api/dev/session` (development mode only): a session for an
/// account made on the spot, without a password, for load tools and
/// tests. Such an account can never log in with a password.
pub async fn dev_session(app: &Arc<App>, body: DevSession) -> Result<Reply, ApiError> {
    let email = normalize_email(&body.email).map_err(email_error)?;
    let now = app.clock.now_ms();
    let account = off_thread(app, move |app| match app.accounts.find(&email)? {
        Some(account) => Ok(account),
        None => match app.accounts.create(&email, String::new(), false, now) {
            // Made by a request racing this one: use it.
            Err(AccountError::Taken) => app.accounts.find(&email)?.ok_or(AccountError::Taken),
            made => made,
        },
    })
    .await?
    .map_err(email_error)?;
    let (token, session) =
        tokio::task::block_in_place(|| app.accounts.create_session(&account, false, false, now))
            .map_err(storage)?;
    Ok(Reply {
        status: StatusCode::CREATED,
        body: json!({ "token": token, "account": account_view(&account), "csrf_token": session.csrf }),
        cookie: None,
    })
}
