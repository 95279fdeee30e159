//! JSON bodies for the answers hyper writes on its own. A request hyper
//! cannot parse (a URL over its limit, a header flood, bytes that are not a
//! path, two Content-Length headers) never reaches our handlers: hyper
//! answers it itself with a bare status and no body, then closes. Every
//! error of this API is a JSON body naming the problem, so the connection's
//! writes pass through [`JsonLibraryErrors`], which recognises such an
//! answer (a 4xx or 5xx head with `content-length: 0` and no content type:
//! every answer of ours has a content type) and writes the same status with
//! a JSON body instead.
//!
//! The wrapper says it cannot write vectored, so hyper hands it each
//! answer's head in one contiguous buffer (it flattens them).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO whose writes are checked for hyper's own error answers.
#[derive(Debug)]
pub struct JsonLibraryErrors<T> {
    inner: T,
    /// A rewritten answer being written: its bytes, how many are written,
    /// and how many bytes of hyper's buffer it stands for.
    rewriting: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonLibraryErrors<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> JsonLibraryErrors<T> {
        JsonLibraryErrors {
            inner,
            rewriting: None,
        }
    }
}

/// The JSON answer that replaces hyper's bare one in `buffer`, if it is one.
pub fn rewrite(buffer: &[u8]) -> Option<Vec<u8>> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if head_end != buffer.len() {
        return None;
    }
    let head = std::str::from_utf8(buffer).ok()?.to_ascii_lowercase();
    let status_line = head.lines().next()?;
    let status: u16 = status_line
        .strip_prefix("http/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let bare = head.contains("\r\ncontent-length: 0\r\n") && !head.contains("\r\ncontent-type:");
    if !(400..600).contains(&status) || !bare {
        return None;
    }
    let (code, message) = match status {
        414 => ("uri_too_long", "the URL is too long"),
        431 => (
            "headers_too_large",
            "the request has too many or too large headers",
        ),
        400 => (
            "malformed_request",
            "the request is not valid HTTP/1.1 (its request line, path or headers)",
        ),
        505 => ("http_version_not_supported", "use HTTP/1.1"),
        _ => ("malformed_request", "the request could not be read"),
    };
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    let reason = buffer
        .get(9..)
        .and_then(|rest| rest.split(|&b| b == b'\r').next())
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    Some(
        format!(
            "HTTP/1.1 {reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> JsonLibraryErrors<T> {
    /// Writes what is left of a rewritten answer; `Ready(Ok(n))` with the
    /// length of hyper's buffer once all of it is written.
    fn poll_rewriting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, stands_for)) = self.rewriting.as_mut() {
            if *written == bytes.len() {
                let stands_for = *stands_for;
                self.rewriting = None;
                return Poll::Ready(Ok(stands_for));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonLibraryErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonLibraryErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.rewriting.is_none() {
            // Only a buffer that starts an answer can be one of hyper's.
            match buf
                .starts_with(b"HTTP/1.1 ")
                .then(|| rewrite(buf))
                .flatten()
            {
                Some(bytes) => self.rewriting = Some((bytes, 0, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        self.poll_rewriting(cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_error_from_hyper_becomes_json_and_ours_pass_untouched() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(rewrite(bare).unwrap_or_default()).unwrap_or_default();
        assert!(
            json.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{json}"
        );
        assert!(json.ends_with(r#"{"error":{"code":"headers_too_large","message":"the request has too many or too large headers"}}"#), "{json}");
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(rewrite(ok).is_none());
    }
}
