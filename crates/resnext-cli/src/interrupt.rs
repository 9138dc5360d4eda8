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

/// A closed stdout or stderr (`resnext predict DIR | head -1`) ends the process as it ends
/// other Unix tools, by SIGPIPE, instead of a panic in `println!` (Rust ignores SIGPIPE, so the
/// write fails). Not for `serve`, whose sockets must not kill it.
#[allow(unsafe_code)]
pub fn die_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Holds SIGINT, SIGTERM and SIGHUP pending (blocked on this thread and every thread it starts)
/// until [`release_stop_signals`]: `serve` installs its draining handlers once its runtime runs,
/// and a signal that arrives while it starts must wait for them rather than kill it.
pub fn hold_stop_signals() {
    #[cfg(unix)]
    stop_signals(libc::SIG_BLOCK);
}

/// Delivers what [`hold_stop_signals`] held, to the handlers installed since.
pub fn release_stop_signals() {
    #[cfg(unix)]
    stop_signals(libc::SIG_UNBLOCK);
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn stop_signals(how: libc::c_int) {
    // SAFETY: an empty set filled with three signals, then this thread's mask changed; no
    // memory is shared.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
