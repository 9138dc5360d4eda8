//! Ctrl-C during training: the run is left as the last finished epoch wrote it (every file is
//! written atomically), so the process says how to continue and exits 130, as shells expect of
//! SIGINT.

use std::sync::OnceLock;

static MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();

/// From now on SIGINT prints `message` to stderr and exits 130.
pub fn on_sigint_say(message: String) {
    if MESSAGE.set(message.into_bytes()).is_ok() {
        install();
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn install() {
    extern "C" fn handler(_: libc::c_int) {
        // Only async-signal-safe calls: write(2) of a buffer set before the handler, _exit(2).
        if let Some(m) = MESSAGE.get() {
            // SAFETY: the buffer is valid and immutable for the life of the process.
            unsafe {
                libc::write(2, m.as_ptr().cast(), m.len());
            }
        }
        // SAFETY: _exit ends the process without running anything else.
        unsafe { libc::_exit(130) }
    }
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    unsafe {
        libc::signal(
            libc::SIGINT,
            handler as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

#[cfg(not(unix))]
fn install() {}
