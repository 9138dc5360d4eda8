//! hyper answers a request it cannot parse by itself, before any of our code sees it: a malformed
//! request line or header, a bad or repeated `Content-Length`, HTTP/0.9 or an unknown version
//! (400), a head over [`MAX_HEAD`] (431), a target over hyper's 65534 bytes (414). Those answers
//! have an empty body. [`JsonErrors`] wraps the connection and rewrites them, recognisable by
//! their shape, into the `{"error": "<one line>"}` of every other error. A client that starts
//! HTTP/2 with prior knowledge (its connection preface, to which hyper's HTTP/1 server says
//! nothing) gets a JSON 505 instead of a closed connection.

use crate::config::MAX_HEAD;
use crate::error::ErrorBody;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose writes pass through, except hyper's own error answers, which become JSON.
#[derive(Debug)]
pub struct JsonErrors<T> {
    io: T,
    /// A rewritten answer still to be written, and how much of it is.
    pending: Vec<u8>,
    written: usize,
    /// Whether anything was read yet (the HTTP/2 preface is only looked for at the start).
    started: bool,
}

impl<T> JsonErrors<T> {
    pub fn new(io: T) -> Self {
        Self {
            io,
            pending: Vec::new(),
            written: 0,
            started: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if !self.started && buf.filled().len() > before {
            self.started = true;
            if buf.filled()[before..].starts_with(b"PRI * HTTP/2.0") {
                // answer in HTTP/1.1, which the client may read, and end the reading: hyper then
                // shuts the connection down, which writes the answer first
                let body = serde_json::to_string(&ErrorBody {
                    error: "this server speaks HTTP/1.1 only, not HTTP/2".into(),
                })
                .unwrap_or_default();
                self.pending = format!(
                    "HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes();
                buf.set_filled(before);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(answer) = rewrite(buf) {
            // the whole head is taken now; hyper flushes (or shuts down) next, which writes it
            self.pending = answer;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    /// One buffer a write (hyper then flattens its writes), so that an answer's head comes whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// hyper's own answer to an unparsable request, rewritten with a JSON body; `None` for anything
/// else. Its shape: one whole head and nothing after it, status 400, 414 or 431,
/// `content-length: 0` and no content type. Our own errors always have a JSON body.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    if head.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let message = match status.get(..4)? {
        "400 " => "the request is not valid HTTP/1.1: a malformed request line or header, or a \
                   bad or repeated Content-Length"
            .to_owned(),
        "414 " => "the request target is over 65534 bytes".to_owned(),
        "431 " => {
            format!("the request head (request line and headers) is over the {MAX_HEAD}-byte limit")
        }
        _ => return None,
    };
    let headers: Vec<(&str, &str)> = lines.map(|h| h.split_once(':')).collect::<Option<_>>()?;
    let is = |name: &str, wanted: &str| name.eq_ignore_ascii_case(wanted);
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| is(n, "content-length"))
        .map(|(_, v)| v.trim())
        .collect();
    if lengths.is_empty()
        || lengths.iter().any(|v| *v != "0")
        || headers.iter().any(|(n, _)| is(n, "content-type"))
    {
        return None;
    }
    let body = serde_json::to_string(&ErrorBody { error: message }).unwrap_or_default();
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers.iter().filter(|(n, _)| !is(n, "content-length")) {
        out.push_str(&format!("{name}:{value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_error_answers_are_rewritten() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 01:15:47 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(hyper_400).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{out}"
        );
        assert!(head.contains("\r\nconnection: close\r\n") && head.contains("\r\ndate: "));
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{out}"
        );
        assert!(!head.contains("content-length: 0"), "{out}");
        let j: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(j["error"].as_str().unwrap().contains("not valid HTTP"));
        let out =
            rewrite(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        assert!(String::from_utf8(out).unwrap().contains("65536-byte limit"));

        for other in [
            // our own errors: JSON already
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            // a successful answer, another status, a head with a body after it
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n",
            // part of a head, or a body chunk
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"{\"error\": \"x\"}",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(rewrite(other).is_none(), "{:?}", String::from_utf8_lossy(other));
        }
    }
}
