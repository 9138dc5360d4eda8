//! What `resnext serve` is told: address, batching, limits, key and CORS. Checked once, in
//! [`ServeConfig::validate`], before anything binds or loads.

use crate::error::ServeError;
use resnext_data::DecodeLimits;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest `max_batch`: more is memory, not speed, on any machine this runs on.
pub const MAX_BATCH: usize = 1024;

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
    /// The one origin allowed to call the API from a browser; `None` sends no CORS headers.
    pub cors: Option<String>,
    /// A request (body read, decode, model) that takes longer gets 408.
    pub request_timeout: Duration,
    /// A client that has not sent its headers by then is disconnected.
    pub header_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
    /// The same decode limits as training.
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
            cors: None,
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            decode: DecodeLimits::default(),
        }
    }
}

impl ServeConfig {
    pub fn validate(&self) -> Result<(), ServeError> {
        let bad = |what: String| Err(ServeError::Config(what));
        if self.max_batch == 0 || self.max_batch > MAX_BATCH {
            return bad(format!(
                "max_batch {} is out of range (1..={MAX_BATCH})",
                self.max_batch
            ));
        }
        if self.queue == 0 {
            return bad("queue must be at least 1".into());
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
        if let Some(origin) = &self.cors {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && origin.bytes().all(|b| b.is_ascii_graphic()));
            if !ok {
                return bad(format!(
                    "CORS origin `{origin}` is not an origin like https://example.org (scheme and host, no path) or *"
                ));
            }
        }
        Ok(())
    }
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
        bad(|c| c.max_body = 0, "max_body");
        bad(|c| c.api_key = Some("short".into()), "API key");
        bad(|c| c.api_key = Some("has a space".into()), "API key");
        bad(|c| c.cors = Some("https://a.example/".into()), "CORS");
        bad(|c| c.cors = Some("a.example".into()), "CORS");
        let ok = ServeConfig {
            cors: Some("https://a.example".into()),
            api_key: Some("0123456789abcdef".into()),
            ..ServeConfig::default()
        };
        ok.validate().unwrap();
    }
}
