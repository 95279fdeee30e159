//! The account endpoints: register, log in (password, then the second
//! factor when enabled), log out, who am I, change the password, reset a
//! forgotten one by an e-mailed link, enroll in two-factor, and the
//! development-only session factory. Changes that protect an account (the
//! password, two-factor) are told to its owner by e-mail. The flow and its
//! rules (throttling, session rotation, auditing) are the accounts service's
//! (`accounts/service.rs`); here requests become its calls, and its results
//! become JSON and the session cookie.
//!
//! The service's calls block (argon2id takes tens of milliseconds and 19
//! MiB): they run off the async workers, those that hash at most
//! [`HASHING_AT_ONCE`] at a time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::App;
use super::error::ApiError;
use super::reply::Json;
use super::session::{self, Identity};
use crate::accounts::holder::{self, Holder};
use crate::accounts::store::{PENDING_TTL_MS, SESSION_TTL_MS};
use crate::accounts::{Account, AccountService, AccountsError, Caller, LoginStep, Started};
use crate::mail::letters::{self, Change};
use crate::replicated::write::Outcome;

/// Password hashes computed at once at most (each holds 19 MiB).
pub const HASHING_AT_ONCE: usize = 2;

/// An answer that may set the session cookie.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Json,
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

/// A registration: email, password, and the fan's acceptance of the terms
/// of use and the privacy notice (LGPD: consent is explicit, never assumed).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    email: String,
    password: String,
    #[serde(default)]
    accept_terms: bool,
}

/// The version of the terms of use and privacy notice a registration
/// accepts (the pages `#/terms` and `#/privacy` show it); kept with the
/// account's audit entry.
pub const TERMS_VERSION: &str = "2026-12-01";

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

/// A password-reset request: `{"email": "…"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    email: String,
}

/// A new password with a reset link's token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    token: String,
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

/// A change to accounts (or its audit entry) that was not committed
/// (`replicated::Proposer`): nothing was done and no leader took it (an
/// election), or it may have been (the leader died mid-change). Either is
/// the client's to retry, never a 500.
fn uncommitted(error: &std::io::Error) -> Option<ApiError> {
    match error.kind() {
        std::io::ErrorKind::WouldBlock => {
            Some(ApiError::from(crate::runtime::RuntimeError::NotLeader))
        }
        std::io::ErrorKind::TimedOut => Some(ApiError::outcome_unknown()),
        _ => None,
    }
}

/// Every refusal of the accounts service, as the API says it.
fn api_error(error: AccountsError) -> ApiError {
    match error {
        AccountsError::BadEmail(why) => ApiError::bad_request("invalid_email", why),
        AccountsError::Taken => ApiError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "an account with this email exists; log in instead",
        ),
        AccountsError::WeakPassword => ApiError::bad_request(
            "weak_password",
            format!(
                "a password has at least {} characters (and at most {} bytes)",
                crate::accounts::password::MIN_LENGTH,
                crate::accounts::password::MAX_LENGTH
            ),
        ),
        AccountsError::InvalidCredentials => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the email or the password is wrong",
        ),
        AccountsError::WrongCurrentPassword => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the current password is wrong",
        ),
        AccountsError::TooMany { wait_ms } => ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_attempts",
            message: "too many failed attempts; wait before trying again".into(),
            retry_after_s: Some(
                u32::try_from(wait_ms.div_ceil(1_000))
                    .unwrap_or(u32::MAX)
                    .max(1),
            ),
        },
        AccountsError::AlreadyLoggedIn => ApiError::new(
            StatusCode::CONFLICT,
            "already_logged_in",
            "this session is already logged in",
        ),
        AccountsError::InvalidCode => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_code",
            "the code is wrong, expired or already used",
        ),
        AccountsError::TwoFactorEnabled => ApiError::new(
            StatusCode::CONFLICT,
            "two_factor_enabled",
            "two-factor is already on",
        ),
        AccountsError::EnrollmentCodeMismatch => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
            "the code does not match: check the device's clock, or start the enrollment again",
        ),
        AccountsError::UnfitForAuthenticator => ApiError::bad_request(
            "invalid_email",
            "this email cannot name an authenticator entry",
        ),
        AccountsError::NoRandomness(e) => ApiError::internal("no_randomness", e),
        AccountsError::Storage(e) => {
            uncommitted(&e).unwrap_or_else(|| ApiError::internal("accounts_unavailable", e))
        }
        AccountsError::Audit(e) => {
            uncommitted(&e).unwrap_or_else(|| ApiError::internal("audit_failed", e))
        }
        AccountsError::InvalidResetToken => ApiError::bad_request(
            "invalid_reset_token",
            "the reset link is invalid, expired or already used: ask for a new one",
        ),
    }
}

/// Runs a call of the accounts service off the async workers.
async fn off_thread<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&AccountService) -> Result<T, AccountsError> + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || work(&app.accounts))
        .await
        .map_err(|e| ApiError::internal("worker_failed", e))?
        .map_err(api_error)
}

/// [`off_thread`] for calls that hash a password: a few at a time.
async fn hashing<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&AccountService) -> Result<T, AccountsError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = tokio::time::timeout(Duration::from_secs(10), app.hashing.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let result = off_thread(app, work).await;
    drop(permit);
    result
}

/// The caller as the accounts service knows them.
fn caller(who: &Identity) -> Caller {
    Caller {
        token: who.token.clone(),
        session: who.session.clone(),
        account: who.account.clone(),
    }
}

/// What a client may know of an account.
#[derive(Serialize)]
pub struct AccountView {
    id: u64,
    email: String,
    admin: bool,
    two_factor: bool,
}

impl AccountView {
    /// The view of `account`.
    pub fn of(account: &Account) -> AccountView {
        AccountView {
            id: account.id,
            email: account.email.clone(),
            admin: account.admin,
            two_factor: account.has_two_factor(),
        }
    }
}

/// An answer that starts a session: `body`'s fields, then the session's
/// CSRF token and expiry, and the cookie.
fn with_session(
    app: &App,
    started: &Started,
    status: StatusCode,
    body: impl Serialize,
) -> Result<Reply, ApiError> {
    #[derive(Serialize)]
    struct WithSession<B> {
        #[serde(flatten)]
        body: B,
        csrf_token: String,
        session_expires_at_ms: u64,
    }
    let ttl = if started.session.awaiting_code {
        PENDING_TTL_MS
    } else {
        SESSION_TTL_MS
    };
    let body = WithSession {
        body,
        csrf_token: started.session.csrf.clone(),
        session_expires_at_ms: started.session.expires_ms,
    };
    Ok(Reply {
        status,
        body: Json::of(&body)?,
        cookie: Some(session::cookie(
            &started.token,
            ttl / 1_000,
            app.config.secure_cookies,
        )),
    })
}

#[derive(Serialize)]
struct AccountBody {
    account: AccountView,
}

#[derive(Serialize)]
struct Stage {
    stage: &'static str,
    account: AccountView,
}

/// `POST /api/accounts`: a new account, logged in.
pub async fn register(app: &Arc<App>, ip: IpAddr, body: Registration) -> Result<Reply, ApiError> {
    if !body.accept_terms {
        return Err(ApiError::bad_request(
            "terms_required",
            "accept the terms of use and the privacy notice to open an account (accept_terms: true)",
        ));
    }
    let started = hashing(app, move |accounts| {
        accounts.register(&body.email, &body.password, TERMS_VERSION, ip)
    })
    .await?;
    let view = AccountBody {
        account: AccountView::of(&started.account),
    };
    with_session(app, &started, StatusCode::CREATED, view)
}

/// `POST /api/session`: the password step of a login. With two-factor on,
/// the session it starts can only take the code (`/api/session/code`).
pub async fn login(
    app: &Arc<App>,
    ip: IpAddr,
    previous: Option<String>,
    body: Credentials,
) -> Result<Reply, ApiError> {
    let step = hashing(app, move |accounts| {
        accounts.login(&body.email, &body.password, previous.as_deref(), ip)
    })
    .await?;
    let (stage, started) = match step {
        LoginStep::AwaitingCode(started) => ("two_factor", started),
        LoginStep::Done(started) => ("done", started),
    };
    let view = Stage {
        stage,
        account: AccountView::of(&started.account),
    };
    with_session(app, &started, StatusCode::OK, view)
}

/// `POST /api/session/code`: the second step, with a TOTP code or a
/// recovery code; replaces the waiting session with a full one.
pub async fn login_code(
    app: &Arc<App>,
    ip: IpAddr,
    who: Identity,
    body: SecondFactor,
) -> Result<Reply, ApiError> {
    let caller = caller(&who);
    let started = off_thread(app, move |accounts| {
        let (code, recovery) = (body.code.as_deref(), body.recovery_code.as_deref());
        accounts.login_code(&caller, code, recovery, ip)
    })
    .await?;
    let view = Stage {
        stage: "done",
        account: AccountView::of(&started.account),
    };
    with_session(app, &started, StatusCode::OK, view)
}

/// `DELETE /api/session`: log out.
pub async fn logout(app: &Arc<App>, ip: IpAddr, who: &Identity) -> Result<Reply, ApiError> {
    let caller = caller(who);
    off_thread(app, move |accounts| accounts.logout(&caller, ip)).await?;
    #[derive(Serialize)]
    struct LoggedOut {
        logged_out: bool,
    }
    Ok(Reply {
        status: StatusCode::OK,
        body: Json::of(&LoggedOut { logged_out: true })?,
        cookie: Some(session::clear_cookie(app.config.secure_cookies)),
    })
}

/// A ticket holder as the account's owner sees it (the CPF masked).
#[derive(Serialize)]
pub struct HolderView {
    /// The full name printed on tickets.
    pub name: String,
    /// The CPF with only its check digits.
    pub cpf: String,
}

impl HolderView {
    /// The view of `holder`.
    pub fn of(holder: &Holder) -> HolderView {
        HolderView {
            name: holder.name.clone(),
            cpf: holder.masked_cpf(),
        }
    }
}

/// The ticket holder of account `id`, read here.
pub fn holder_of(app: &App, id: u64) -> Result<Option<Holder>, ApiError> {
    app.proposer
        .state()
        .accounts()
        .holder(id)
        .map_err(|e| ApiError::internal("accounts_unavailable", e))
}

/// `PUT /api/me/holder`: `{"name": "Maria da Silva", "cpf": "529.982.247-25"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderBody {
    name: String,
    cpf: String,
}

/// `PUT /api/me/holder`: the account's ticket holder, set once (a retry
/// with the same name and CPF answers the same). 409 `cpf_taken` if the
/// CPF is another account's: one account per CPF, so a per-customer limit
/// is a per-CPF limit. The CPF is kept only as a keyed digest and its
/// check digits; the audit log has the name, never the CPF.
pub async fn set_holder(
    app: &Arc<App>,
    ip: IpAddr,
    who: Identity,
    body: HolderBody,
) -> Result<Reply, ApiError> {
    if body.name.len() > 4 * holder::MAX_NAME || body.cpf.len() > 32 {
        return Err(ApiError::bad_request(
            "invalid_holder",
            "the name has at most 120 characters and the CPF 11 digits",
        ));
    }
    let id = who.account.id;
    let task = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            let key = app
                .proposer
                .shared_secret(holder::CPF_KEY_NAME)
                .map_err(|e| ApiError::internal("accounts_unavailable", e))?;
            let holder = holder::holder(&key, &body.name, &body.cpf).map_err(|e| match e {
                holder::HolderError::BadCpf => ApiError::bad_request("invalid_cpf", e.to_string()),
                holder::HolderError::BadName => {
                    ApiError::bad_request("invalid_name", e.to_string())
                }
            })?;
            let outcome = app
                .proposer
                .set_holder(id, holder.clone())
                .map_err(|e| ApiError::internal("accounts_unavailable", e))?;
            let stored = holder_of(&app, id)?;
            Ok::<_, ApiError>((outcome, holder, stored))
        })
    };
    let (outcome, holder, stored) = task
        .await
        .map_err(|e| ApiError::internal("worker_failed", e))??;
    let audit = |name: &'static str, detail: String| {
        let (app, account) = (app.clone(), who.account.clone());
        // The answer does not wait for the audit entry's replication.
        tokio::task::spawn_blocking(move || {
            if let Err(error) = app.accounts.audit(name, Some(&account), None, ip, detail) {
                tracing::warn!(%error, "holder change not audited");
            }
        });
    };
    match outcome {
        Outcome::Done => {
            audit(
                "holder_set",
                format!("{} · CPF {}", holder.name, holder.masked_cpf()),
            );
        }
        Outcome::Taken => {
            audit("holder_refused", "the CPF is another account's".into());
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cpf_taken",
                "this CPF is the ticket holder of another account: one account per CPF",
            ));
        }
        _ if stored.as_ref() == Some(&holder) => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "holder_set",
                "this account's ticket holder is set already; support can correct it",
            ));
        }
    }
    #[derive(Serialize)]
    struct HolderBodyView {
        holder: HolderView,
    }
    Ok(Reply {
        status: StatusCode::OK,
        body: Json::of(&HolderBodyView {
            holder: HolderView::of(&holder),
        })?,
        cookie: None,
    })
}

/// `GET /api/me`
pub fn me(app: &App, who: &Identity) -> Result<Reply, ApiError> {
    #[derive(Serialize)]
    struct Me<'a> {
        account: AccountView,
        /// The ticket holder (null until set).
        holder: Option<HolderView>,
        csrf_token: &'a str,
        session_two_factor: bool,
        session_expires_at_ms: u64,
    }
    let me = Me {
        account: AccountView::of(&who.account),
        holder: holder_of(app, who.account.id)?.as_ref().map(HolderView::of),
        csrf_token: &who.session.csrf,
        session_two_factor: who.session.two_factor,
        session_expires_at_ms: who.session.expires_ms,
    };
    Ok(Reply {
        status: StatusCode::OK,
        body: Json::of(&me)?,
        cookie: None,
    })
}

/// `POST /api/me/password`: every other session of the account ends.
pub async fn change_password(
    app: &Arc<App>,
    ip: IpAddr,
    who: Identity,
    body: PasswordChange,
) -> Result<Reply, ApiError> {
    let caller = caller(&who);
    let started = hashing(app, move |accounts| {
        accounts.change_password(&caller, &body.current_password, &body.new_password, ip)
    })
    .await?;
    notify(app, &started.account, Change::PasswordChanged, ip);
    let view = AccountBody {
        account: AccountView::of(&started.account),
    };
    with_session(app, &started, StatusCode::OK, view)
}

/// Tells an account's owner, by e-mail, that something protecting it
/// changed (a change they did not make is how a stolen account is noticed).
fn notify(app: &App, account: &Account, change: Change, ip: IpAddr) {
    let now = app.clock.now_ms();
    app.mail.send(letters::security_notice(
        &account.email,
        change,
        now,
        &ip.to_string(),
    ));
}

/// `POST /api/password-reset`: mails a single-use link to choose a new
/// password, valid 30 minutes, when the address has an account (at most
/// one a minute per address). Always 202 with the same body: the answer
/// tells nobody whether an address has an account.
pub async fn request_reset(
    app: &Arc<App>,
    ip: IpAddr,
    body: ResetRequest,
) -> Result<Reply, ApiError> {
    let issued = off_thread(app, move |accounts| accounts.request_reset(&body.email, ip)).await?;
    if let Some((account, token)) = issued {
        let link = format!("{}/#/reset/{token}", app.public_url());
        let minutes = crate::accounts::reset::RESET_TTL_MS / 60_000;
        app.mail
            .send(letters::password_reset(&account.email, &link, minutes));
    }
    #[derive(Serialize)]
    struct Requested {
        requested: bool,
    }
    Ok(Reply {
        status: StatusCode::ACCEPTED,
        body: Json::of(&Requested { requested: true })?,
        cookie: None,
    })
}

/// `POST /api/password-reset/confirm`: the new password, with the link's
/// token. Every session of the account ends; the fan then logs in (with
/// their second factor, if on). The owner is told by e-mail.
pub async fn confirm_reset(
    app: &Arc<App>,
    ip: IpAddr,
    body: ResetConfirm,
) -> Result<Reply, ApiError> {
    let account = hashing(app, move |accounts| {
        accounts.reset_password(&body.token, &body.new_password, ip)
    })
    .await?;
    notify(app, &account, Change::PasswordChanged, ip);
    #[derive(Serialize)]
    struct Reset {
        reset: bool,
    }
    Ok(Reply {
        status: StatusCode::OK,
        body: Json::of(&Reset { reset: true })?,
        cookie: None,
    })
}

/// `POST /api/me/two-factor`: starts (or restarts) an enrollment.
pub async fn enroll(app: &Arc<App>, ip: IpAddr, who: Identity) -> Result<Reply, ApiError> {
    let caller = caller(&who);
    let enrollment = off_thread(app, move |accounts| accounts.enroll(&caller, ip)).await?;
    #[derive(Serialize)]
    struct Enrollment {
        secret: String,
        otpauth_uri: String,
        qr_svg: String,
    }
    let enrollment = Enrollment {
        secret: enrollment.secret_base32,
        otpauth_uri: enrollment.uri,
        qr_svg: enrollment.qr_svg,
    };
    Ok(Reply {
        status: StatusCode::OK,
        body: Json::of(&enrollment)?,
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
    let caller = caller(&who);
    let (started, codes) = off_thread(app, move |accounts| {
        accounts.confirm(&caller, &body.code, ip)
    })
    .await?;
    #[derive(Serialize)]
    struct Confirmed {
        account: AccountView,
        recovery_codes: Vec<String>,
    }
    notify(app, &started.account, Change::TwoFactorOn, ip);
    let view = Confirmed {
        account: AccountView::of(&started.account),
        recovery_codes: codes,
    };
    with_session(app, &started, StatusCode::OK, view)
}

/// `POST /api/dev/session` (development mode only): a session for an
/// account made on the spot, without a password, for load tools and
/// tests. Such an account can never log in with a password.
pub async fn dev_session(app: &Arc<App>, body: DevSession) -> Result<Reply, ApiError> {
    let started = off_thread(app, move |accounts| accounts.dev_session(&body.email)).await?;
    #[derive(Serialize)]
    struct DevStarted {
        token: String,
        account: AccountView,
        csrf_token: String,
    }
    let view = DevStarted {
        account: AccountView::of(&started.account),
        csrf_token: started.session.csrf,
        token: started.token,
    };
    Ok(Reply {
        status: StatusCode::CREATED,
        body: Json::of(&view)?,
        cookie: None,
    })
}
