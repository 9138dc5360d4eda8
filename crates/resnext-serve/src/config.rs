//! What `resnext serve` is told: address, batching, limits, key and CORS. Checked once, in
//! [`ServeConfig::validate`], before anything binds or loads.

use crate::error::ServeError;
use resnext_data::DecodeLimits;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest `max_batch`: more is memory, not speed, on any machine this runs on.
pub const MAX_BATCH: usize = 1024;

/// Largest `queue`: each admitted request may hold its body and a decoded image.
pub const MAX_QUEUE: usize = 4096;

/// Bytes one request's decode may hold by default (see [`DecodeLimits::max_alloc`]): an RGB8
/// photo at the pixel limit, [`resnext_data::decode::MAX_PIXELS`], just fits; 16-bit RGBA fits up
/// to 24 Mpx. Concurrent decodes are bounded by the blocking pool and the queue.
pub const SERVE_DECODE_ALLOC: u64 = 256 << 20;

/// Longest request target (path and query) in bytes; longer gets 414.
pub const MAX_URI: usize = 8 << 10;

/// Largest request head (request line and headers) in bytes; larger gets 431. hyper's read buffer
/// is capped at this size, so it is also what one connection buffers.
pub const MAX_HEAD: usize = 64 << 10;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (default `127.0.0.1:8080`; loopback unless told otherwise).
    pub addr: SocketAddr,
    /// Most requests in one forward pass.
    pub max_batch: usize,
    /// How long the model thread waits for a batch to fill once a request is in hand.
    pub max_wait: Duration,
    /// Most requests admitted at once (decoding, waiting or in the model); beyond it, 503.
    pub queue: usize,
    /// Largest request body in bytes; beyond it, 413.
    pub max_body: usize,
    /// When set, `/v1/*` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// The origins (`scheme://host[:port]`, or the one `*`) allowed to call the API from a
    /// browser; empty sends no CORS headers.
    pub cors: Vec<String>,
    /// A request (body read, decode, model) that takes longer gets 408.
    pub request_timeout: Duration,
    /// A client that has not sent its headers by then is disconnected.
    pub header_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
    /// The decode limits: training's sides and pixel count, and a memory budget of its own for
    /// one decode ([`SERVE_DECODE_ALLOC`] by default; training allows 1 GiB).
    pub decode: DecodeLimits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch: 16,
            max_wait: Duration::from_millis(5),
            queue: 64,
            max_body: 16 << 20,
            api_key: None,
            cors: Vec::new(),
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            decode: DecodeLimits {
                max_alloc: SERVE_DECODE_ALLOC,
                ..DecodeLimits::default()
            },
        }
    }
}

impl ServeConfig {
    pub fn validate(&self) -> Result<(), ServeError> {
        let bad = |what: String| Err(ServeError::Config(what));
        for (name, n, top) in [
            ("max_batch", self.max_batch, MAX_BATCH),
            ("queue", self.queue, MAX_QUEUE),
        ] {
            if !(1..=top).contains(&n) {
                return bad(format!("{name} {n} is out of range (1..={top})"));
            }
        }
        if self.max_body == 0 {
            return bad("max_body must be at least 1 byte".into());
        }
        if self.max_wait > Duration::from_secs(10) {
            return bad(format!(
                "max_wait {} ms is over 10 s: every request would wait that long",
                self.max_wait.as_millis()
            ));
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("header_timeout", self.header_timeout),
        ] {
            if d.is_zero() {
                return bad(format!("{name} must be above zero"));
            }
        }
        if let Some(key) = &self.api_key {
            if key.len() < 8 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return bad(
                    "the API key must be at least 8 visible ASCII characters, no spaces".into(),
                );
            }
        }
        if self.cors.len() > 1 && self.cors.iter().any(|o| o == "*") {
            return bad("CORS origin `*` allows every origin: give it alone, not in a list".into());
        }
        for origin in &self.cors {
            check_origin(origin).map_err(|why| {
                ServeError::Config(format!(
                    "CORS origin `{origin}` is not an origin like https://example.org or \
                     http://localhost:3000 (scheme, host and port, no path) or *: {why}"
                ))
            })?;
        }
        Ok(())
    }
}

/// `*`, or `http[s]://host[:port]` as a browser sends it in `Origin`: lowercase, no path, query,
/// user or default port.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .map(|r| (r, "443"))
        .or_else(|| origin.strip_prefix("http://").map(|r| (r, "80")));
    let Some((rest, default_port)) = rest else {
        return Err("the scheme must be http:// or https://");
    };
    if rest.contains(['/', '?', '#']) {
        return Err("an origin has no path, query or fragment (not even a trailing /)");
    }
    if rest.contains('@') {
        return Err("an origin has no user name");
    }
    if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("browsers send the origin in lowercase");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, p)) => match p.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return Err("junk after the IPv6 address"),
            },
            None => return Err("an unclosed [ in the host"),
        }
    } else {
        rest.split_once(':')
            .map_or((rest, None), |(h, p)| (h, Some(p)))
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
        && !host.starts_with(['.', '-']);
    if !host_ok {
        return Err("the host must be a name or an address (letters, digits, - and .)");
    }
    if let Some(p) = port {
        if p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || !matches!(p.parse::<u32>(), Ok(1..=65535))
        {
            return Err("the port must be a number from 1 to 65535");
        }
        if p == default_port {
            return Err("browsers leave the scheme's default port out of the origin");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_named() {
        ServeConfig::default().validate().unwrap();
        let bad = |f: fn(&mut ServeConfig), needle: &str| {
            let mut c = ServeConfig::default();
            f(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        };
        bad(|c| c.max_batch = 0, "max_batch");
        bad(|c| c.max_batch = MAX_BATCH + 1, "max_batch");
        bad(|c| c.queue = 0, "queue");
        bad(|c| c.queue = MAX_QUEUE + 1, "1..=4096");
        bad(|c| c.max_body = 0, "max_body");
        bad(|c| c.api_key = Some("short".into()), "API key");
        bad(|c| c.api_key = Some("has a space".into()), "API key");
        for origin in [
            "https://a.example/",
            "a.example",
            "http://a,http://b",
            "https://a.example/path",
            "https://A.example",
            "https://a.example:443",
            "http://a.example:99999",
            "https://user@a.example",
            "ftp://a.example",
            "https://",
            "",
        ] {
            let c = ServeConfig {
                cors: vec![origin.to_owned()],
                ..ServeConfig::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("CORS") && e.contains(origin), "{origin}: {e}");
        }
        bad(
            |c| c.cors = vec!["*".into(), "https://a.example".into()],
            "alone",
        );
        let ok = ServeConfig {
            cors: vec![
                "https://a.example".into(),
                "http://localhost:3000".into(),
                "http://127.0.0.1:8080".into(),
                "http://[::1]:8080".into(),
            ],
            api_key: Some("0123456789abcdef".into()),
            ..ServeConfig::default()
        };
        ok.validate().unwrap();
    }
}
