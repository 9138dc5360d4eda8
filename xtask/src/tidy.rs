//! Repository rules as tests, as rust-analyzer's `tidy.rs` does, here in xtask so they need no
//! libtorch: every source file opens with a `//!` header, and every file the project writes goes
//! through the one writer (`resnext_io::write_atomic`), not through a rename, `fs::write` or a
//! `File::create` of its own. The rules that run the `resnext` binary (README and docs in step
//! with its commands and config keys) stay in `crates/resnext-cli/tests/tidy.rs`.

#[cfg(test)]
mod tests {
    use crate::cmd;
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name()
                    .is_some_and(|n| n == "target" || n == "fixtures")
                {
                    continue;
                }
                rust_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    fn workspace_files() -> Vec<PathBuf> {
        let root = cmd::root();
        let mut files = Vec::new();
        rust_files(&root.join("crates"), &mut files);
        rust_files(&root.join("xtask"), &mut files);
        assert!(files.len() > 50, "found only {} files", files.len());
        files
    }

    fn rel(p: &Path) -> String {
        p.strip_prefix(cmd::root())
            .unwrap_or(p)
            .display()
            .to_string()
    }

    #[test]
    fn every_source_file_has_a_header() {
        let mut missing = Vec::new();
        for f in workspace_files() {
            let text = std::fs::read_to_string(&f).unwrap();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            // resnext-model's build script is included by two others, where `//!` cannot stand
            let included_build_script =
                f.ends_with("resnext-model/build.rs") && first.starts_with("// ");
            if !first.starts_with("//!") && !included_build_script {
                missing.push(rel(&f));
            }
        }
        assert!(
            missing.is_empty(),
            "files without a `//!` header: {missing:?}"
        );
    }

    /// What writes a file behind the one writer's back.
    const WRITES: [&str; 7] = [
        "fs::rename(",
        "fs::write(",
        "File::create(",
        "File::create_new(",
        "OpenOptions::new()",
        "BitMapBackend::new(",
        "serialize_to_file(",
    ];

    /// The writes that are not whole files replaced at once, each with why. Anything else is a
    /// second writer.
    const ALLOWED: [(&str, &str, &str); 6] = [
        ("crates/resnext-io/src/lib.rs", "", "the one writer itself"),
        (
            "crates/resnext-infer/src/run.rs",
            "OpenOptions::new()",
            "the run's lock file: opened, locked and never replaced",
        ),
        (
            "crates/resnext-testkit/src/lib.rs",
            "OpenOptions::new()",
            "the test suite's skip log, appended to by every test binary",
        ),
        (
            "xtask/src/download/http.rs",
            "OpenOptions::new()",
            "a resumable download appends to its `.part` file",
        ),
        (
            "xtask/src/download/",
            "fs::rename(",
            "a verified download or an extracted staging folder moved into place",
        ),
        (
            "xtask/src/download/archive.rs",
            "File::create_new(",
            "archive entries streamed into a fresh staging folder",
        ),
    ];

    #[test]
    fn every_file_is_written_by_the_one_writer() {
        let mut found = Vec::new();
        for f in workspace_files() {
            let name = rel(&f);
            // tests build their inputs however they like
            if name.contains("/tests/") || name.contains("/benches/") || name.ends_with("build.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // a file's unit tests come last, after `#[cfg(test)]`
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (i, line) in code.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for w in WRITES {
                    let allowed = ALLOWED.iter().any(|(file, what, _)| {
                        name.starts_with(file) && (what.is_empty() || *what == w)
                    });
                    if line.contains(w) && !allowed {
                        found.push(format!("{name}:{}: {}", i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "write through `resnext_io::write_atomic` instead:\n{}",
            found.join("\n")
        );
    }
}
