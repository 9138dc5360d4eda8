//! Progress on every long command: on a terminal a bar with ETA, otherwise a line at each quarter.
//! All bars live in one [`MultiProgress`], and log lines go through [`LogWriter`], which hides the
//! bars while it writes, so a warning never breaks a bar.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use resnext_train::Progress;
use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
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
    let bar = multi().add(ProgressBar::new(total as u64));
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

/// Library progress drawn as bars or quarter lines.
#[derive(Debug, Default)]
pub struct Bars {
    bar: RefCell<Option<ProgressBar>>,
    label: RefCell<String>,
    total: Cell<usize>,
    done: Cell<usize>,
    quarter: Cell<usize>,
}

impl Bars {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Progress for Bars {
    fn begin(&self, label: &str, total: usize) {
        self.end();
        *self.label.borrow_mut() = label.to_string();
        self.total.set(total);
        self.done.set(0);
        self.quarter.set(0);
        if is_tty() {
            *self.bar.borrow_mut() = Some(bar(total, label));
        }
    }

    fn advance(&self, n: usize) {
        self.done.set(self.done.get() + n);
        if let Some(b) = &*self.bar.borrow() {
            b.inc(n as u64);
            return;
        }
        let total = self.total.get().max(1);
        let quarter = (4 * self.done.get() / total).min(4);
        if quarter > self.quarter.get() {
            self.quarter.set(quarter);
            eprintln!(
                "{}: {}/{} ({}%)",
                self.label.borrow(),
                self.done.get(),
                self.total.get(),
                25 * quarter
            );
        }
    }

    fn end(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
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
