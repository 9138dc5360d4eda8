//! Progress of long library operations (evaluation, plotting), reported to whoever draws it: the
//! CLI draws bars on a terminal and quarter lines otherwise; a library user may pass
//! [`NoProgress`].

/// Receives progress; every method has a do-nothing default.
pub trait Progress {
    /// A phase of `total` steps starts.
    fn begin(&self, _label: &str, _total: usize) {}
    /// `n` more steps are done.
    fn advance(&self, _n: usize) {}
    /// The phase is over.
    fn end(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
