//! The web front's files (`server/web/`), embedded in the binary so that
//! `make run` serves the pages with nothing else to build or install. The
//! pages use hash routes (`/#/event/0`), so the server only serves these
//! few paths, each with a strict Content-Security-Policy: scripts, styles
//! and workers from this origin only, no inline scripts, no framing.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;

/// (path, content type, contents).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/app.js"),
    ),
    (
        "/i18n.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/i18n.js"),
    ),
    (
        "/admin.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/admin.js"),
    ),
    (
        "/calendar.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/calendar.js"),
    ),
    (
        "/legal.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/legal.js"),
    ),
    (
        "/pow-worker.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/pow-worker.js"),
    ),
    (
        "/sha256.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/sha256.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/style.css"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_bytes!("../../web/favicon.svg"),
    ),
];

const CSP: &str = "default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// Whether `path` is one of the page's files.
pub fn is_asset(path: &str) -> bool {
    path == "/index.html" || FILES.iter().any(|(p, _, _)| *p == path)
}

/// The response for a page file (404 JSON for anything else).
pub fn serve(path: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let path = if path == "/index.html" { "/" } else { path };
    let Some((_, content_type, contents)) = FILES.iter().find(|(p, _, _)| *p == path) else {
        let mut response = Response::new(
            Full::new(Bytes::from_static(
                br#"{"error":{"code":"not_found","message":"no such page"}}"#,
            ))
            .boxed(),
        );
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let mut response = Response::new(Full::new(Bytes::from_static(contents)).boxed());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Embedded in the binary: a new release changes them, so revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_served_with_their_type_and_a_strict_policy() {
        let page = serve("/");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert_eq!(
            serve("/app.js").headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(serve("/secret").status(), StatusCode::NOT_FOUND);
        assert!(is_asset("/index.html") && !is_asset("/api/events"));
    }
}
