//! HTTP(S) download into a `.part` file with Range resume, a progress bar and retries of
//! transfers that are cut off. Nothing here retries an HTTP error status: a 404 or 500 is
//! reported as it is.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::OpenOptions;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// How many times a cut-off transfer is resumed within one command.
pub const RETRIES: u32 = 3;

/// Downloads `url` into `part`, resuming from `part`'s current length when the server honours
/// Range requests (it says which on stderr). `authorization` is sent as the `Authorization`
/// header.
pub fn fetch(url: &str, authorization: Option<&str>, part: &Path) -> Result<()> {
    if part.is_file() {
        eprintln!("resuming {url} from byte {}", file_len(part));
    } else {
        eprintln!("downloading {url}");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("resnext-rs-xtask/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut retries = 0;
    loop {
        match attempt(&agent, url, authorization, part)? {
            Attempt::Complete => return Ok(()),
            Attempt::CutOff(why) => {
                let have = file_len(part);
                if retries == RETRIES {
                    bail!(
                        "the transfer of {url} was cut off ({why}) after {} bytes, {RETRIES} \
                         resumes tried; run the same command again to resume from {}",
                        have,
                        part.display()
                    );
                }
                retries += 1;
                eprintln!(
                    "transfer cut off at {have} bytes ({why}); resuming ({retries}/{RETRIES})"
                );
                std::thread::sleep(Duration::from_millis(500 * u64::from(retries)));
            }
        }
    }
}

enum Attempt {
    Complete,
    CutOff(String),
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn attempt(
    agent: &ureq::Agent,
    url: &str,
    authorization: Option<&str>,
    part: &Path,
) -> Result<Attempt> {
    let have = file_len(part);
    let mut req = agent.get(url);
    if have > 0 {
        req = req.header("Range", format!("bytes={have}-"));
    }
    if let Some(auth) = authorization {
        req = req.header("Authorization", auth);
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        // Connection refused, DNS failure, TLS error: not a cut-off transfer, report it.
        Err(e) if have == 0 => return Err(anyhow!(e)).context(format!("cannot fetch {url}")),
        Err(e) => return Ok(Attempt::CutOff(e.to_string())),
    };
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_range = header("content-range");
    let (start, total) = match status {
        200 => (0, resp.body().content_length()),
        206 => {
            let (start, total) = content_range
                .as_deref()
                .and_then(parse_content_range)
                .ok_or_else(|| anyhow!("{url}: partial response without a valid Content-Range"))?;
            if start != have {
                // The server sent another piece than asked for: start over.
                std::fs::remove_file(part)
                    .with_context(|| format!("removing {}", part.display()))?;
                return Ok(Attempt::CutOff(format!(
                    "server resumed at byte {start} instead of {have}"
                )));
            }
            (start, total)
        }
        416 if have > 0 => {
            // Nothing left to send: the part file is complete if its length is the total.
            let total = content_range.as_deref().and_then(|c| {
                c.strip_prefix("bytes */")
                    .and_then(|t| t.trim().parse::<u64>().ok())
            });
            if total == Some(have) {
                return Ok(Attempt::Complete);
            }
            std::fs::remove_file(part).with_context(|| format!("removing {}", part.display()))?;
            return Ok(Attempt::CutOff(
                "the partial file is longer than the server's".into(),
            ));
        }
        _ => {
            let reason = resp
                .status()
                .canonical_reason()
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            bail!("the server answered {status}{reason} for {url}");
        }
    };
    if status == 200 && have > 0 {
        eprintln!("the server does not resume downloads; starting again from byte 0");
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .with_context(|| format!("opening {}", part.display()))?;
    let mut progress = Progress::new(start, total);
    let mut reader = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    // what cut the transfer off, if anything
    let cut = loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e.to_string()),
        };
        // A write error (a full disk) is not a network fault: report it, keep what was saved.
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {}", part.display()))?;
        done += n as u64;
        progress.update(done);
    };
    file.sync_all()
        .with_context(|| format!("writing {}", part.display()))?;
    progress.finish();
    match (cut, total) {
        (Some(why), _) => Ok(Attempt::CutOff(why)),
        (None, Some(t)) if done < t => Ok(Attempt::CutOff(format!("{done} of {t} bytes received"))),
        _ => Ok(Attempt::Complete),
    }
}

/// Parses `bytes START-END/TOTAL` (TOTAL may be `*`).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// A progress bar on stderr: redrawn in place on a terminal, a line every 25% otherwise.
struct Progress {
    total: Option<u64>,
    started_at: u64,
    start: Instant,
    last_draw: Option<Instant>,
    last_quarter: u64,
    done: u64,
    tty: bool,
}

impl Progress {
    fn new(started_at: u64, total: Option<u64>) -> Self {
        Self {
            total,
            started_at,
            start: Instant::now(),
            last_draw: None,
            last_quarter: 0,
            done: started_at,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64) {
        self.done = done;
        if self.tty {
            if self
                .last_draw
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
            {
                return;
            }
            self.last_draw = Some(Instant::now());
            eprint!("\r{}", self.line(done));
        } else if let Some(total) = self.total.filter(|&t| t > 0) {
            let quarter = done * 4 / total;
            if quarter > self.last_quarter {
                self.last_quarter = quarter;
                eprintln!("{}", self.line(done));
            }
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = (done - self.started_at) as f64 / secs / 1e6;
        let mb = done as f64 / 1e6;
        match self.total.filter(|&t| t > 0) {
            Some(total) => {
                let frac = (done as f64 / total as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                format!(
                    "[{}{}] {:5.1}% {mb:.1}/{:.1} MB {rate:.2} MB/s",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    frac * 100.0,
                    total as f64 / 1e6
                )
            }
            None => format!("{mb:.1} MB {rate:.2} MB/s"),
        }
    }

    fn finish(&mut self) {
        if self.tty && self.last_draw.is_some() {
            eprintln!("\r{}", self.line(self.done));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
