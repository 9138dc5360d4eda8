//! Progress on every long command: on a terminal a bar with ETA, otherwise a line at each quarter.
//! All bars live in one [`MultiProgress`], and log lines go through [`LogWriter`], which hides the
//! bars while it writes, so a warning never breaks a bar.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use resnext_train::Progress;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::OnceLock;

/// The process's bars.
pub fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// True when stderr is a terminal (bars); false means quarter lines.
pub fn is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `total` steps with `prefix` before it, in the process's [`MultiProgress`].
pub fn bar(total: usize, prefix: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = ProgressBar::new(total as u64).with_style(style);
    multi().add(bar.with_prefix(prefix.to_string()))
}

/// Progress drawn as a bar on a terminal or a line per quarter otherwise; shareable between
/// threads (rayon workers report through [`Bars::advance`]).
#[derive(Debug, Default)]
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    label: Mutex<String>,
    total: AtomicUsize,
    done: AtomicUsize,
    quarter: AtomicUsize,
}

impl Bars {
    pub fn new() -> Self {
        Self::default()
    }

    /// A started phase.
    pub fn started(label: &str, total: usize) -> Self {
        let b = Self::new();
        b.begin(label, total);
        b
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Progress for Bars {
    fn begin(&self, label: &str, total: usize) {
        self.end();
        *Self::lock(&self.label) = label.to_string();
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.quarter.store(0, Ordering::Relaxed);
        if is_tty() {
            *Self::lock(&self.bar) = Some(bar(total, label));
        }
    }

    fn advance(&self, n: usize) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(b) = &*Self::lock(&self.bar) {
            b.inc(n as u64);
            return;
        }
        let total = self.total.load(Ordering::Relaxed).max(1);
        // decided and printed under one lock, so that workers' lines come in order
        let label = Self::lock(&self.label);
        let done = done.max(self.done.load(Ordering::Relaxed)).min(total);
        if let Some((quarter, line)) =
            quarter_line(&label, done, total, self.quarter.load(Ordering::Relaxed))
        {
            self.quarter.store(quarter, Ordering::Relaxed);
            eprintln!("{line}");
        }
    }

    fn end(&self) {
        if let Some(b) = Self::lock(&self.bar).take() {
            b.finish_and_clear();
        }
    }
}

/// The line to print off a terminal when `done` of `total` steps crosses a quarter above
/// `printed` (the last quarter printed): that quarter and the line, with the true percentage
/// (`plotting: 1/3 (33%)`, not the quarter's 25%).
fn quarter_line(label: &str, done: usize, total: usize, printed: usize) -> Option<(usize, String)> {
    let total = total.max(1);
    let done = done.min(total);
    let quarter = (4 * done / total).min(4);
    (quarter > printed).then(|| {
        (
            quarter,
            format!("{label}: {done}/{total} ({}%)", 100 * done / total),
        )
    })
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.end();
    }
}

/// A stderr writer for tracing that suspends the bars while a line is written.
#[derive(Debug, Default)]
pub struct LogWriter {
    buf: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        multi().suspend(|| std::io::stderr().write_all(&buf))
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // A log line that cannot reach stderr has nowhere else to go.
        self.flush().ok();
    }
}

#[cfg(test)]
mod tests {
    use super::quarter_line;

    #[test]
    fn quarter_lines_print_the_true_percentage() {
        assert_eq!(
            quarter_line("plotting", 1, 3, 0),
            Some((1, "plotting: 1/3 (33%)".to_string()))
        );
        assert_eq!(
            quarter_line("plotting", 2, 3, 1),
            Some((2, "plotting: 2/3 (66%)".to_string()))
        );
        assert_eq!(
            quarter_line("plotting", 3, 3, 2),
            Some((4, "plotting: 3/3 (100%)".to_string()))
        );
        // nothing new below the next quarter, nothing past the end
        assert_eq!(quarter_line("x", 2, 10, 0), None);
        assert_eq!(quarter_line("x", 12, 10, 4), None);
        assert_eq!(
            quarter_line("x", 5, 10, 1),
            Some((2, "x: 5/10 (50%)".to_string()))
        );
    }
}
