//! The login flow as a service: register, log in in two steps (the password,
//! then a TOTP or recovery code when two-factor is on), log out, change the
//! password, enroll in two-factor. It owns the rules around them: throttling
//! after failed attempts, a new session at every login (no fixation), every
//! session revoked by a password change, and an audit entry for every
//! outcome that matters to security, written before the answer.
//!
//! No HTTP here: `http/account_api.rs` turns requests into calls and
//! results into JSON and cookies. Calls block (argon2id hashing, synced
//! writes): callers run them off their async workers. Accounts and sessions
//! live behind [`AccountStore`], so that a later store can replicate them
//! across nodes without changing the flow.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use crate::audit::{Action, AuditLog};
use crate::runtime::Clock;

use super::store::{Account, AccountError, Session, TwoFactor, normalize_email};
use super::throttle::LoginThrottle;
use super::{password, reset, totp};

/// What a change of an account decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Store the edited account.
    Store,
    /// Store nothing.
    Refuse,
}

/// Where accounts and sessions are kept. Object-safe, so the service does
/// not care which store it runs on.
pub trait AccountStore: Send + Sync {
    /// Makes an account; `email` is normalized.
    fn create(
        &self,
        email: &str,
        password_hash: String,
        admin: bool,
        now_ms: u64,
    ) -> Result<Account, AccountError>;
    /// The account with this id.
    fn get(&self, id: u64) -> io::Result<Option<Account>>;
    /// The account with this (normalized) email.
    fn find(&self, email: &str) -> io::Result<Option<Account>>;
    /// Edits an account atomically: `change` sees the stored account and
    /// says whether to store its edit; the account as stored, or `None`
    /// when refused.
    fn update(
        &self,
        id: u64,
        change: &mut dyn FnMut(&mut Account) -> Change,
    ) -> io::Result<Option<Account>>;
    /// Starts a session; its token (shown once) and the session.
    fn create_session(
        &self,
        account: &Account,
        awaiting_code: bool,
        two_factor: bool,
        now_ms: u64,
    ) -> io::Result<(String, Session)>;
    /// The live session with this token, and its account.
    fn session(&self, token: &str, now_ms: u64) -> io::Result<Option<(Session, Account)>>;
    /// Ends a session.
    fn revoke_session(&self, token: &str) -> io::Result<()>;
}

/// Why the service said no.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The email is not one.
    #[error("{0}")]
    BadEmail(&'static str),
    /// An account with this email exists.
    #[error("an account with this email exists")]
    Taken,
    /// The new password breaks the length rules.
    #[error("the password is too short or too long")]
    WeakPassword,
    /// Wrong email or password (the same answer for both).
    #[error("the email or the password is wrong")]
    InvalidCredentials,
    /// The current password given with a change is wrong.
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    /// Too many failures: wait this long.
    #[error("too many failed attempts")]
    TooMany {
        /// How long.
        wait_ms: u64,
    },
    /// The session already has both factors.
    #[error("this session is already logged in")]
    AlreadyLoggedIn,
    /// A second factor that is wrong, expired or used.
    #[error("the code is wrong, expired or already used")]
    InvalidCode,
    /// Enrolling when two-factor is on.
    #[error("two-factor is already on")]
    TwoFactorEnabled,
    /// The enrollment's first code does not match.
    #[error("the code does not match the enrollment")]
    EnrollmentCodeMismatch,
    /// The email cannot name an authenticator entry.
    #[error("this email cannot name an authenticator entry")]
    UnfitForAuthenticator,
    /// No randomness for a secret.
    #[error("no randomness: {0}")]
    NoRandomness(getrandom::Error),
    /// The store failed.
    #[error("accounts storage: {0}")]
    Storage(#[from] io::Error),
    /// The audit log failed: the action is refused, not left unaudited.
    #[error("audit log: {0}")]
    Audit(io::Error),
    /// A password-reset link that is malformed, expired, used or forged.
    #[error("the reset link is invalid, expired or already used")]
    InvalidResetToken,
}

impl From<AccountError> for AccountsError {
    fn from(error: AccountError) -> AccountsError {
        match error {
            AccountError::BadEmail(why) => AccountsError::BadEmail(why),
            AccountError::Taken => AccountsError::Taken,
            AccountError::Io(error) => AccountsError::Storage(error),
        }
    }
}

/// A session just started: the account, its token (shown once) and the
/// session.
#[derive(Debug)]
pub struct Started {
    /// The account as stored.
    pub account: Account,
    /// The session's token.
    pub token: String,
    /// The session.
    pub session: Session,
}

/// Where a password login stands.
#[derive(Debug)]
pub enum LoginStep {
    /// Two-factor is on: the session can only take the code.
    AwaitingCode(Started),
    /// Logged in.
    Done(Started),
}

/// A logged-in (or half logged-in) caller: their session's token, the
/// session and the account.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The session's token.
    pub token: String,
    /// The session.
    pub session: Session,
    /// The account.
    pub account: Account,
}

/// See the module documentation.
pub struct AccountService {
    store: Arc<dyn AccountStore>,
    audit: Arc<AuditLog>,
    throttle: LoginThrottle,
    clock: Arc<dyn Clock>,
    /// When each address last got a reset link: one a minute at most, so
    /// the form cannot flood somebody's mailbox. Bounded (see
    /// [`RESET_ADDRESSES`]) and trimmed with the throttle.
    resets_sent: parking_lot::Mutex<std::collections::HashMap<String, u64>>,
}

/// How often one address may be sent a reset link.
pub const RESET_EVERY_MS: u64 = 60_000;
/// Addresses remembered for [`RESET_EVERY_MS`] at most; past this, requests
/// for new addresses send nothing until the minute passes (a flood of
/// reset requests is an attack, not fans).
pub const RESET_ADDRESSES: usize = 100_000;

fn check_password_rules(password: &str) -> Result<(), AccountsError> {
    let length = password.chars().count();
    if length < password::MIN_LENGTH || password.len() > password::MAX_LENGTH {
        return Err(AccountsError::WeakPassword);
    }
    Ok(())
}

impl AccountService {
    /// A service over `store`, auditing into `audit`.
    pub fn new(
        store: Arc<dyn AccountStore>,
        audit: Arc<AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> AccountService {
        AccountService {
            store,
            audit,
            throttle: LoginThrottle::default(),
            clock,
            resets_sent: Default::default(),
        }
    }

    /// The store (for tools and tests that make accounts directly).
    pub fn store(&self) -> &dyn AccountStore {
        self.store.as_ref()
    }

    /// The live session with this token, and its account.
    pub fn session(&self, token: &str) -> io::Result<Option<(Session, Account)>> {
        self.store.session(token, self.clock.now_ms())
    }

    /// Forgets throttling state that expired (bounded memory).
    pub fn trim_throttle(&self) {
        let now = self.clock.now_ms();
        self.throttle.trim(now);
        self.resets_sent
            .lock()
            .retain(|_, at| now.saturating_sub(*at) < RESET_EVERY_MS);
    }

    /// Failed-attempt records kept (for metrics).
    pub fn throttled(&self) -> usize {
        self.throttle.len()
    }

    /// Writes an account's action to the audit log (the account's e-mail
    /// unless `email` names another).
    pub(crate) fn audit(
        &self,
        name: &'static str,
        account: Option<&Account>,
        email: Option<&str>,
        from: IpAddr,
        detail: impl Into<String>,
    ) -> Result<(), AccountsError> {
        let action = Action {
            name,
            account: account.map(|a| a.id),
            email: email
                .map(str::to_string)
                .or_else(|| account.map(|a| a.email.clone())),
            event: None,
            from: from.to_string(),
            detail: detail.into(),
        };
        self.audit
            .act(self.clock.now_ms(), action)
            .map(|_| ())
            .map_err(AccountsError::Audit)
    }

    fn start(
        &self,
        account: Account,
        awaiting_code: bool,
        two_factor: bool,
    ) -> Result<Started, AccountsError> {
        let (token, session) =
            self.store
                .create_session(&account, awaiting_code, two_factor, self.clock.now_ms())?;
        Ok(Started {
            account,
            token,
            session,
        })
    }

    fn throttled_wait(&self, from: IpAddr, email: &str) -> Result<(), AccountsError> {
        match self.throttle.wait_ms(from, email, self.clock.now_ms()) {
            0 => Ok(()),
            wait_ms => Err(AccountsError::TooMany { wait_ms }),
        }
    }

    /// Counts a failed attempt: audit entries for the failure and any lockout.
    fn failed_attempt(
        &self,
        from: IpAddr,
        email: &str,
        account: Option<&Account>,
        why: &str,
    ) -> Result<(), AccountsError> {
        let lockouts = self.throttle.failed(from, email, self.clock.now_ms());
        self.audit("login_failed", account, Some(email), from, why)?;
        for lockout in lockouts {
            let detail = format!(
                "{} locked for {} s after {} failures",
                lockout.kind,
                lockout.block_ms / 1_000,
                lockout.failures
            );
            self.audit("login_lockout", account, Some(email), from, detail)?;
        }
        Ok(())
    }

    /// A new account, logged in; `terms` is the version of the terms of
    /// use and privacy notice its owner accepted, kept in the audit log
    /// (when, from where, which text: the record of consent LGPD asks for).
    pub fn register(
        &self,
        email: &str,
        password: &str,
        terms: &str,
        from: IpAddr,
    ) -> Result<Started, AccountsError> {
        let email = normalize_email(email)?;
        check_password_rules(password)?;
        let hash = password::hash(password).map_err(|e| io::Error::other(e.to_string()))?;
        let account = self
            .store
            .create(&email, hash, false, self.clock.now_ms())?;
        let consent = format!("accepted the terms of use and privacy notice of {terms}");
        self.audit("account_registered", Some(&account), None, from, consent)?;
        self.start(account, false, false)
    }

    /// The password step of a login; `previous` is the session it replaces
    /// (ended: a login always starts a new one). An unknown email costs the
    /// same work as a wrong password and gets the same answer.
    pub fn login(
        &self,
        email: &str,
        password: &str,
        previous: Option<&str>,
        from: IpAddr,
    ) -> Result<LoginStep, AccountsError> {
        let email = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        self.throttled_wait(from, &email)?;
        let found = match self.store.find(&email)? {
            Some(account) if password::verify(password, &account.password_hash) => Some(account),
            Some(_) => None,
            None => {
                password::verify_nothing(password);
                None
            }
        };
        let Some(account) = found else {
            self.failed_attempt(from, &email, None, "wrong email or password")?;
            return Err(AccountsError::InvalidCredentials);
        };
        self.throttle.succeeded(&email);
        if let Some(previous) = previous {
            self.store.revoke_session(previous)?;
        }
        if account.has_two_factor() {
            let detail = "awaiting the second factor";
            self.audit(
                "login_password_accepted",
                Some(&account),
                None,
                from,
                detail,
            )?;
            return self
                .start(account, true, false)
                .map(LoginStep::AwaitingCode);
        }
        self.audit(
            "login_succeeded",
            Some(&account),
            None,
            from,
            "password only",
        )?;
        self.start(account, false, false).map(LoginStep::Done)
    }

    /// The second step, with a TOTP code (each step accepted once) or a
    /// recovery code (each once); replaces the waiting session with a full
    /// one.
    pub fn login_code(
        &self,
        caller: &Caller,
        code: Option<&str>,
        recovery_code: Option<&str>,
        from: IpAddr,
    ) -> Result<Started, AccountsError> {
        if !caller.session.awaiting_code {
            return Err(AccountsError::AlreadyLoggedIn);
        }
        let email = caller.account.email.clone();
        self.throttled_wait(from, &email)?;
        let now_s = self.clock.now_ms() / 1_000;
        let mut how = String::new();
        let changed = self.store.update(caller.account.id, &mut |account| {
            let Some(two_factor) = account.two_factor.as_mut().filter(|t| t.confirmed) else {
                return Change::Refuse;
            };
            if let Some(code) = code {
                let accepted =
                    totp::accepted_step(&two_factor.secret, code, now_s, two_factor.last_step);
                let Some(step) = accepted else {
                    return Change::Refuse;
                };
                two_factor.last_step = step;
                how = "authenticator code".into();
                return Change::Store;
            }
            let digest = totp::recovery_digest(recovery_code.unwrap_or(""));
            let Some(index) = two_factor.recovery.iter().position(|d| *d == digest) else {
                return Change::Refuse;
            };
            two_factor.recovery.remove(index);
            how = format!("recovery code ({} left)", two_factor.recovery.len());
            Change::Store
        })?;
        let Some(account) = changed else {
            let why = "wrong or reused second-factor code";
            self.failed_attempt(from, &email, Some(&caller.account), why)?;
            return Err(AccountsError::InvalidCode);
        };
        self.throttle.succeeded(&email);
        self.store.revoke_session(&caller.token)?;
        self.audit("login_succeeded", Some(&account), None, from, how)?;
        self.start(account, false, true)
    }

    /// Logs out: the session ends.
    pub fn logout(&self, caller: &Caller, from: IpAddr) -> Result<(), AccountsError> {
        self.store.revoke_session(&caller.token)?;
        self.audit(
            "session_revoked",
            Some(&caller.account),
            None,
            from,
            "logout",
        )
    }

    /// Changes the password: every session of the account ends (a new
    /// epoch), and a new one starts for the caller, keeping its second
    /// factor.
    pub fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
        from: IpAddr,
    ) -> Result<Started, AccountsError> {
        check_password_rules(new)?;
        let email = caller.account.email.clone();
        self.throttled_wait(from, &email)?;
        let changed = self.set_password(caller.account.id, new, &|account| {
            password::verify(current, &account.password_hash)
        })?;
        let Some(account) = changed else {
            let why = "wrong current password";
            self.failed_attempt(from, &email, Some(&caller.account), why)?;
            return Err(AccountsError::WrongCurrentPassword);
        };
        self.audit(
            "password_changed",
            Some(&account),
            None,
            from,
            "every session revoked",
        )?;
        self.start(account, false, caller.session.two_factor)
    }

    /// Sets account `id`'s password to `new` if `allowed` says so of the
    /// account as stored (checked again if the edit races another): every
    /// session of the old epoch is revoked at once. The account as stored,
    /// or `None` when refused.
    fn set_password(
        &self,
        id: u64,
        new: &str,
        allowed: &dyn Fn(&Account) -> bool,
    ) -> Result<Option<Account>, AccountsError> {
        let hash = password::hash(new).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(self.store.update(id, &mut |account| {
            if !allowed(account) {
                return Change::Refuse;
            }
            account.password_hash = hash.clone();
            account.epoch = account.epoch.wrapping_add(1);
            Change::Store
        })?)
    }

    /// A password-reset request for `email`: the account and a token for
    /// its link when the address has an account with a password and was
    /// not sent one in the last minute; `None` otherwise. The caller
    /// answers the same either way, so the form tells nobody which
    /// addresses have accounts. Audited, with the address given.
    pub fn request_reset(
        &self,
        email: &str,
        from: IpAddr,
    ) -> Result<Option<(Account, String)>, AccountsError> {
        let email = normalize_email(email)?;
        let now = self.clock.now_ms();
        let account = self.store.find(&email)?;
        let token = account.as_ref().and_then(|a| reset::issue(a, now));
        let due = {
            let mut sent = self.resets_sent.lock();
            let recent = sent
                .get(&email)
                .is_some_and(|at| now.saturating_sub(*at) < RESET_EVERY_MS);
            let room = sent.len() < RESET_ADDRESSES || sent.contains_key(&email);
            let due = token.is_some() && !recent && room;
            if due {
                sent.insert(email.clone(), now);
            }
            due
        };
        let detail = match (&account, due) {
            (None, _) => "no account with this address: nothing sent",
            (Some(_), true) => "link sent",
            (Some(_), false) => "nothing sent (no password, or a link sent in the last minute)",
        };
        self.audit(
            "password_reset_requested",
            account.as_ref(),
            Some(&email),
            from,
            detail,
        )?;
        Ok(match (account, token) {
            (Some(account), Some(token)) if due => Some((account, token)),
            _ => None,
        })
    }

    /// Sets a new password with a reset link's token: every session ends
    /// (a new epoch), which also spends the token. No session is started:
    /// the fan logs in, with their second factor if they have one (a
    /// mailbox alone never gets past two-factor). The account, for the
    /// notice to its owner.
    pub fn reset_password(
        &self,
        token: &str,
        new: &str,
        from: IpAddr,
    ) -> Result<Account, AccountsError> {
        check_password_rules(new)?;
        let id = reset::account_of(token).map_err(|_| AccountsError::InvalidResetToken)?;
        let known = self
            .store
            .get(id)?
            .ok_or(AccountsError::InvalidResetToken)?;
        // Guessing tokens meets the same growing delays as guessing
        // passwords, per address and per account.
        self.throttled_wait(from, &known.email)?;
        let now = self.clock.now_ms();
        let changed = self.set_password(id, new, &|account| {
            reset::check(account, token, now).is_ok()
        })?;
        let Some(account) = changed else {
            let why = "invalid, expired or used reset link";
            self.failed_attempt(from, &known.email, Some(&known), why)?;
            return Err(AccountsError::InvalidResetToken);
        };
        self.audit(
            "password_reset",
            Some(&account),
            None,
            from,
            "by e-mail link; every session revoked",
        )?;
        Ok(account)
    }

    /// Starts (or restarts) a two-factor enrollment: the secret to show.
    pub fn enroll(&self, caller: &Caller, from: IpAddr) -> Result<totp::Enrollment, AccountsError> {
        if caller.account.has_two_factor() {
            return Err(AccountsError::TwoFactorEnabled);
        }
        let secret = totp::new_secret().map_err(AccountsError::NoRandomness)?;
        let enrollment = totp::enrollment(&secret, &caller.account.email)
            .ok_or(AccountsError::UnfitForAuthenticator)?;
        self.store.update(caller.account.id, &mut |account| {
            account.two_factor = Some(TwoFactor {
                secret: secret.clone(),
                confirmed: false,
                last_step: 0,
                recovery: Vec::new(),
            });
            Change::Store
        })?;
        let account = Some(&caller.account);
        self.audit("two_factor_enrollment_started", account, None, from, "")?;
        Ok(enrollment)
    }

    /// The enrollment's first code turns two-factor on; the caller's session
    /// is replaced by one with both factors. Also the recovery codes, shown
    /// this once.
    pub fn confirm(
        &self,
        caller: &Caller,
        code: &str,
        from: IpAddr,
    ) -> Result<(Started, Vec<String>), AccountsError> {
        let (codes, digests) = totp::recovery_codes().map_err(AccountsError::NoRandomness)?;
        let now_s = self.clock.now_ms() / 1_000;
        let confirmed = self.store.update(caller.account.id, &mut |account| {
            let Some(two_factor) = account.two_factor.as_mut().filter(|t| !t.confirmed) else {
                return Change::Refuse;
            };
            let Some(step) = totp::accepted_step(&two_factor.secret, code, now_s, 0) else {
                return Change::Refuse;
            };
            two_factor.confirmed = true;
            two_factor.last_step = step;
            two_factor.recovery = digests.clone();
            Change::Store
        })?;
        let account = confirmed.ok_or(AccountsError::EnrollmentCodeMismatch)?;
        self.audit("two_factor_enabled", Some(&account), None, from, "")?;
        // Showing the code proves the second factor.
        self.store.revoke_session(&caller.token)?;
        Ok((self.start(account, false, true)?, codes))
    }

    /// A session for an account made on the spot without a password
    /// (development mode only: load tools and tests). Such an account can
    /// never log in with a password.
    pub fn dev_session(&self, email: &str) -> Result<Started, AccountsError> {
        let email = normalize_email(email)?;
        let account = match self.store.find(&email)? {
            Some(account) => account,
            None => match self
                .store
                .create(&email, String::new(), false, self.clock.now_ms())
            {
                Ok(account) => account,
                // Made by a request racing this one: use it.
                Err(AccountError::Taken) => self.store.find(&email)?.ok_or(AccountsError::Taken)?,
                Err(other) => return Err(other.into()),
            },
        };
        self.start(account, false, false)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use parking_lot::Mutex;

    use super::*;
    use crate::runtime::ManualClock;

    /// Accounts in memory: the flow runs on any [`AccountStore`].
    #[derive(Default)]
    struct MemoryStore {
        accounts: Mutex<Vec<Account>>,
        sessions: Mutex<HashMap<String, Session>>,
        made: std::sync::atomic::AtomicU64,
    }

    impl AccountStore for MemoryStore {
        fn create(
            &self,
            email: &str,
            password_hash: String,
            admin: bool,
            now_ms: u64,
        ) -> Result<Account, AccountError> {
            let mut accounts = self.accounts.lock();
            if accounts.iter().any(|a| a.email == email) {
                return Err(AccountError::Taken);
            }
            let account = Account {
                id: accounts.len() as u64 + 1,
                email: email.into(),
                password_hash,
                admin,
                created_ms: now_ms,
                epoch: 0,
                two_factor: None,
            };
            accounts.push(account.clone());
            Ok(account)
        }

        fn get(&self, id: u64) -> io::Result<Option<Account>> {
            Ok(self.accounts.lock().iter().find(|a| a.id == id).cloned())
        }

        fn find(&self, email: &str) -> io::Result<Option<Account>> {
            Ok(self
                .accounts
                .lock()
                .iter()
                .find(|a| a.email == email)
                .cloned())
        }

        fn update(
            &self,
            id: u64,
            change: &mut dyn FnMut(&mut Account) -> Change,
        ) -> io::Result<Option<Account>> {
            let mut accounts = self.accounts.lock();
            let Some(stored) = accounts.iter_mut().find(|a| a.id == id) else {
                return Err(io::Error::other("no such account"));
            };
            let mut edited = stored.clone();
            Ok(match change(&mut edited) {
                Change::Store => {
                    *stored = edited.clone();
                    Some(edited)
                }
                Change::Refuse => None,
            })
        }

        fn create_session(
            &self,
            account: &Account,
            awaiting_code: bool,
            two_factor: bool,
            now_ms: u64,
        ) -> io::Result<(String, Session)> {
            let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let token = format!("t{n}");
            let session = Session {
                account: account.id,
                epoch: account.epoch,
                created_ms: now_ms,
                expires_ms: now_ms + 60_000,
                awaiting_code,
                two_factor,
                csrf: "c".into(),
            };
            self.sessions.lock().insert(token.clone(), session.clone());
            Ok((token, session))
        }

        fn session(&self, token: &str, now_ms: u64) -> io::Result<Option<(Session, Account)>> {
            let Some(session) = self.sessions.lock().get(token).cloned() else {
                return Ok(None);
            };
            let account = self.get(session.account)?;
            Ok(account
                .filter(|a| a.epoch == session.epoch && session.expires_ms > now_ms)
                .map(|a| (session, a)))
        }

        fn revoke_session(&self, token: &str) -> io::Result<()> {
            self.sessions.lock().remove(token);
            Ok(())
        }
    }

    const FROM: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9));
    const PASSWORD: &str = "correct horse battery";

    fn service() -> (AccountService, Arc<AuditLog>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = ingressoja_wal::open_db(dir.path(), &[crate::audit::AUDIT]).unwrap();
        let audit = Arc::new(AuditLog::open(db).unwrap());
        let clock = Arc::new(ManualClock::at(1_800_000_000_000));
        let store = Arc::new(MemoryStore::default());
        (AccountService::new(store, audit.clone(), clock), audit, dir)
    }

    fn caller(started: &Started) -> Caller {
        Caller {
            token: started.token.clone(),
            session: started.session.clone(),
            account: started.account.clone(),
        }
    }

    fn actions(audit: &AuditLog) -> Vec<String> {
        let mut entries = audit.query(&crate::audit::Filter::default(), 100).unwrap();
        entries.reverse();
        entries.into_iter().map(|e| e.action).collect()
    }

    #[test]
    fn the_login_flow_runs_on_any_store_and_audits_every_outcome() {
        let (accounts, audit, _dir) = service();
        let made = accounts
            .register("Ana@Example.com ", PASSWORD, "2026-12-01", FROM)
            .unwrap();
        assert_eq!(made.account.email, "ana@example.com");
        assert!(matches!(
            accounts.login("ana@example.com", "wrong password!!", None, FROM),
            Err(AccountsError::InvalidCredentials)
        ));
        let step = accounts
            .login("ana@example.com", PASSWORD, Some(&made.token), FROM)
            .unwrap();
        let LoginStep::Done(logged_in) = step else {
            panic!("no second factor yet")
        };
        assert!(
            accounts.session(&made.token).unwrap().is_none(),
            "a login ends the session it replaces"
        );
        // Two-factor on: the code of the current step, once.
        let enrollment = accounts.enroll(&caller(&logged_in), FROM).unwrap();
        assert!(enrollment.uri.starts_with("otpauth://totp/"));
        let secret = accounts
            .store()
            .get(made.account.id)
            .unwrap()
            .unwrap()
            .two_factor
            .unwrap()
            .secret;
        let now_s = 1_800_000_000;
        let code = totp::code_at(&secret, now_s);
        let (confirmed, recovery) = accounts.confirm(&caller(&logged_in), &code, FROM).unwrap();
        assert_eq!(recovery.len(), 10);
        assert!(confirmed.session.two_factor);
        let LoginStep::AwaitingCode(pending) = accounts
            .login("ana@example.com", PASSWORD, None, FROM)
            .unwrap()
        else {
            panic!("two-factor is on")
        };
        assert!(
            matches!(
                accounts.login_code(&caller(&pending), Some(&code), None, FROM),
                Err(AccountsError::InvalidCode)
            ),
            "the step used to confirm cannot log in again"
        );
        let full = accounts
            .login_code(&caller(&pending), None, Some(&recovery[0]), FROM)
            .unwrap();
        assert!(full.session.two_factor && !full.session.awaiting_code);
        assert_eq!(
            actions(&audit),
            [
                "account_registered",
                "login_failed",
                "login_succeeded",
                "two_factor_enrollment_started",
                "two_factor_enabled",
                "login_password_accepted",
                "login_failed",
                "login_succeeded",
            ]
        );
    }

    #[test]
    fn a_password_change_ends_every_session_of_the_account() {
        let (accounts, _audit, _dir) = service();
        let first = accounts
            .register("bia@example.com", PASSWORD, "2026-12-01", FROM)
            .unwrap();
        let LoginStep::Done(second) = accounts
            .login("bia@example.com", PASSWORD, None, FROM)
            .unwrap()
        else {
            panic!("password only")
        };
        assert!(matches!(
            accounts.change_password(
                &caller(&second),
                "not it at all",
                "a new password here",
                FROM
            ),
            Err(AccountsError::WrongCurrentPassword)
        ));
        let changed = accounts
            .change_password(&caller(&second), PASSWORD, "a new password here", FROM)
            .unwrap();
        assert!(accounts.session(&first.token).unwrap().is_none());
        assert!(accounts.session(&second.token).unwrap().is_none());
        assert!(accounts.session(&changed.token).unwrap().is_some());
    }
}
