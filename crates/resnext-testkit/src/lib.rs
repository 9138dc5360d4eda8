//! Helpers the workspace's tests share (a dev-dependency only, never published):
//! - [`shared`]: data and fixtures in `../shared`, found through `RESNEXT_SHARED`;
//! - [`can_mount_tmpfs`]: whether a small file system can be mounted to fill it (full-disk tests);
//! - [`proptest_cases`]: the case count of the fuzz properties, `PROPTEST_CASES` or a default.

use std::path::PathBuf;
use std::process::Command;

/// `rel` under `RESNEXT_SHARED`. Without the variable the test is skipped: `None`, with a printed
/// reason. With it, a missing file is a failure.
pub fn shared(rel: &str) -> Option<PathBuf> {
    match std::env::var_os("RESNEXT_SHARED") {
        None => {
            eprintln!(
                "skipped: RESNEXT_SHARED is not set, so `{rel}` from ../shared is not available"
            );
            None
        }
        Some(root) => {
            let p = PathBuf::from(root).join(rel);
            assert!(
                p.exists(),
                "RESNEXT_SHARED is set but {} does not exist",
                p.display()
            );
            Some(p)
        }
    }
}

/// True when this machine lets an unprivileged user namespace mount a small tmpfs
/// (`unshare -r -m`); prints why a test is skipped when it does not.
pub fn can_mount_tmpfs() -> bool {
    let ok = Command::new("unshare")
        .args([
            "-r",
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=64k tmpfs /tmp",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: `unshare -r -m` cannot mount a small tmpfs here (no user namespaces)");
    }
    ok
}

/// Cases per fuzz property: `PROPTEST_CASES` when set (long campaigns), else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
