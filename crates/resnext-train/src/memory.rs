//! Keeping freed memory inside the process between training steps.
//!
//! A ResNeXt step allocates and frees activations of tens of MiB each. glibc's malloc serves
//! blocks above its mmap threshold (at most 32 MiB) with `mmap` and unmaps them on `free`, and
//! trims the heap's free top back to the kernel, so every step page-faults and zeroes the same
//! gigabytes again: on the development machine a third of a ResNeXt-50 training step's CPU time
//! was spent in the kernel doing that (see `docs/performance.md`). PyTorch leaves glibc's defaults
//! in place; this module lets a training process keep freed blocks for reuse instead. Peak
//! resident memory stays what the largest step needs, as the step's blocks are reused.

/// Environment variable that turns [`retain_freed_memory`] off when set to `0`.
pub const ENV_SWITCH: &str = "RESNEXT_RETAIN_MEMORY";

/// Asks glibc's malloc to serve every block from its heaps (no `mmap` per block) and never to
/// trim them, so memory freed by one step is reused by the next without page faults. Process-wide;
/// call it once at startup, before heavy allocation. Returns whether the setting was applied:
/// false on other C libraries, when `RESNEXT_RETAIN_MEMORY=0`, or when glibc refused.
pub fn retain_freed_memory() -> bool {
    if std::env::var(ENV_SWITCH).is_ok_and(|v| v.trim() == "0") {
        return false;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn apply() -> bool {
    // SAFETY: mallopt only changes malloc's tuning parameters; glibc serialises it with its own
    // arena locks, and both values are documented ones (mallopt(3): M_MMAP_MAX 0 disables mmap
    // for allocations, M_TRIM_THRESHOLD -1 disables trimming).
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn applies_on_glibc_and_large_blocks_still_work() {
        if std::env::var(super::ENV_SWITCH).is_ok_and(|v| v.trim() == "0") {
            resnext_testkit::skip(&format!("{}=0 is set", super::ENV_SWITCH));
            return;
        }
        assert!(super::retain_freed_memory());
        // blocks far above the former mmap threshold come from the heap and are reusable
        for round in 0..3u8 {
            let mut v = vec![round; 64 << 20];
            v[(64 << 20) - 1] = 7;
            assert_eq!(v[12345], round);
            assert_eq!(v[(64 << 20) - 1], 7);
        }
    }
}
