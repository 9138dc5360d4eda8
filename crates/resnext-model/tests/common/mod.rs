//! Finding `../shared` through `RESNEXT_SHARED`: when the variable is set, missing files are a
//! failure; without it the test is skipped with a printed reason.

use std::path::PathBuf;

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
