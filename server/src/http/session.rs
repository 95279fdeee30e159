//! Who is asking: a session token, from the `ij_session` cookie (pages) or
//! an `Authorization: Bearer` header (tools, apps), looked up in the
//! account store on every request (unexpired, and of the account's current
//! epoch, so logout and password changes take effect at once).
//!
//! Cookie-authenticated requests that change state must carry the
//! session's anti-CSRF token in `X-CSRF-Token` (compared in constant time):
//! another site can make a browser send the cookie, never the header. A
//! bearer token is never sent by a browser on its own, so it needs none.
//! The cookie is `HttpOnly` (scripts cannot read it), `SameSite=Strict`,
//! and `Secure` when `secure_cookies` is set (serving over TLS).

use http::{HeaderMap, Method, header};
use ingressoja_engine::CustomerId;
use subtle::ConstantTimeEq;

use super::App;
use super::error::ApiError;
use crate::accounts::{Account, Session};

/// The session cookie's name.
pub const COOKIE: &str = "ij_session";
/// The anti-CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated request's account and session.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The account, as the customer of every sale.
    pub customer: CustomerId,
    /// The account.
    pub account: Account,
    /// The session.
    pub session: Session,
    /// The session's token.
    pub token: String,
    /// Whether it came in a cookie (then CSRF applies).
    pub by_cookie: bool,
}

impl Identity {
    /// Whether this login showed a second factor.
    pub fn two_factor(&self) -> bool {
        self.session.two_factor
    }
}

/// The session token a request carries, and whether it is a cookie.
pub fn token_of(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
        return Some((token.to_string(), false));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then(|| (value.to_string(), true))
        })
}

/// The identity of a request. `awaiting_code` admits a session whose login
/// still needs its second factor (only the step that provides it).
pub fn identify(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    awaiting_code: bool,
) -> Result<Identity, ApiError> {
    // Forwarded by another node of the cluster, which checked the session
    // and its CSRF token (see `cluster/forward.rs`).
    if let Some((account, session)) = app
        .forwarder
        .as_ref()
        .and_then(|forwarder| forwarder.forwarded_identity(headers))
        && !session.awaiting_code
    {
        return Ok(Identity {
            customer: CustomerId(account.id),
            account,
            session,
            token: String::new(),
            by_cookie: false,
        });
    }
    let (token, by_cookie) = token_of(headers).ok_or_else(|| {
        ApiError::unauthorized("log in first (session cookie or Authorization: Bearer)")
    })?;
    if token.len() > 128 {
        return Err(ApiError::unauthorized("the session is invalid or expired"));
    }
    let (session, account) = app
        .accounts
        .session(&token)
        .map_err(|e| ApiError::internal("sessions_unavailable", e))?
        .ok_or_else(|| ApiError::unauthorized("the session is invalid or expired"))?;
    if session.awaiting_code && !awaiting_code {
        return Err(ApiError::unauthorized(
            "finish logging in with your two-factor code",
        ));
    }
    if by_cookie && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let sent = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                "csrf_failed",
                "send the session's X-CSRF-Token header with this request",
            ));
        }
    }
    Ok(Identity {
        customer: CustomerId(account.id),
        account,
        session,
        token,
        by_cookie,
    })
}

/// A `Set-Cookie` value holding `token` for `max_age_s` seconds.
pub fn cookie(token: &str, max_age_s: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// A `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(token_of(&headers), None);
        headers.insert(header::COOKIE, "a=1; ij_session=abc; b=2".parse().unwrap());
        assert_eq!(token_of(&headers), Some(("abc".into(), true)));
        headers.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(token_of(&headers), Some(("xyz".into(), false)));
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site() {
        assert_eq!(
            cookie("t", 60, true),
            "ij_session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
