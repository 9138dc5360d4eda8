//! Repository rules as tests, as rust-analyzer's `tidy.rs` does, here in xtask so they need no
//! libtorch: every source file opens with a `//!` header; every file the project writes goes
//! through the one writer (`resnext_io::write_atomic`), not through a rename, `fs::write` or a
//! `File::create` of its own; and no crate's files import each other in a cycle. The rules that run the `resnext` binary (README and docs in step
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
    const ALLOWED: [(&str, &str, &str); 7] = [
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
            "crates/resnext-train/src/tensorboard/writer.rs",
            "OpenOptions::new()",
            "a TensorBoard event file is a stream, appended to as training goes and read live by \
             TensorBoard; created exclusively (create_new) in a `tb` folder that is no link",
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

    /// A crate's module path of each of its source files (`src/a/b.rs` and `src/a/b/mod.rs` are
    /// `a::b`; `lib.rs` and `main.rs` are the root).
    fn module_files(src: &Path) -> std::collections::BTreeMap<Vec<String>, PathBuf> {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        files
            .into_iter()
            .map(|f| {
                let rel = f.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                (parts, f)
            })
            .collect()
    }

    /// The files a file imports: every `crate::`, `self::` and `super::` path (in `use` or
    /// inline), and `use child::…` of its own submodules, resolved to the longest module path
    /// that is a file. Unit tests (after `#[cfg(test)]`) and comments are left out; `super::`
    /// inside a file with inline modules (generated code) is not resolved.
    fn imports(
        me: &[String],
        text: &str,
        modules: &std::collections::BTreeMap<Vec<String>, PathBuf>,
    ) -> std::collections::BTreeSet<PathBuf> {
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let inline_modules = code
            .lines()
            .any(|l| l.trim_start().starts_with("pub mod ") && l.trim_end().ends_with('{'));
        let mut out = std::collections::BTreeSet::new();
        let mut resolve = |full: Vec<String>| {
            for k in (0..=full.len()).rev() {
                if let Some(f) = modules.get(&full[..k]) {
                    out.insert(f.clone());
                    break;
                }
            }
        };
        // `use a::{b, c::d}` is `a::b` and `a::c::d`; other paths are words with `::`
        let mut words: Vec<String> = Vec::new();
        for stmt in code.split(';') {
            if let Some(tree) = stmt
                .trim_start()
                .strip_prefix("pub ")
                .unwrap_or(stmt.trim_start())
                .strip_prefix("use ")
            {
                expand_use("", tree.trim(), &mut words);
            }
        }
        words.extend(
            code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .filter(|w| w.contains("::") && !w.ends_with("::"))
                .map(str::to_string),
        );
        for w in &words {
            let mut parts: Vec<String> = w.split("::").map(str::to_string).collect();
            let head = parts.remove(0);
            let mut base: Vec<String> = match head.as_str() {
                "crate" => Vec::new(),
                "self" => me.to_vec(),
                "super" if !inline_modules => me[..me.len().saturating_sub(1)].to_vec(),
                _ => {
                    // `use child::…` in the parent
                    let mut child = me.to_vec();
                    child.push(head.clone());
                    if modules.contains_key(&child) {
                        child.extend(parts);
                        resolve(child);
                    }
                    continue;
                }
            };
            while parts.first().is_some_and(|p| p == "super") {
                base.pop();
                parts.remove(0);
            }
            base.extend(parts.into_iter().filter(|p| !p.is_empty()));
            resolve(base);
        }
        out
    }

    /// The paths a `use` tree names: `a::{b, c::{d, e}}` gives `a::b`, `a::c::d`, `a::c::e`.
    fn expand_use(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        match tree.find('{') {
            Some(open) if tree.ends_with('}') => {
                let head = format!("{prefix}{}", &tree[..open]);
                let inner = &tree[open + 1..tree.len() - 1];
                let (mut depth, mut start) = (0, 0);
                for (i, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            expand_use(&head, &inner[start..i], out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                expand_use(&head, &inner[start..], out);
            }
            _ if !tree.is_empty() => {
                let item = tree.split(" as ").next().unwrap_or(tree).trim();
                // `self` in a group names the module itself
                let path = format!("{prefix}{item}");
                out.push(path.strip_suffix("::self").unwrap_or(&path).to_string());
            }
            _ => {}
        }
    }

    #[test]
    fn no_crate_has_an_import_cycle_between_its_files() {
        let root = cmd::root();
        let mut srcs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
            .unwrap()
            .map(|e| e.unwrap().path().join("src"))
            .filter(|p| p.is_dir())
            .collect();
        srcs.push(root.join("xtask/src"));
        let mut cycles = Vec::new();
        for src in srcs {
            let modules = module_files(&src);
            let edges: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = modules
                .iter()
                .map(|(me, f)| {
                    let text = std::fs::read_to_string(f).unwrap();
                    let to = imports(me, &text, &modules)
                        .into_iter()
                        .filter(|t| t != f)
                        .collect();
                    (f.clone(), to)
                })
                .collect();
            // depth-first search; a grey node reached again closes a cycle
            fn visit(
                f: &PathBuf,
                edges: &std::collections::BTreeMap<PathBuf, Vec<PathBuf>>,
                state: &mut std::collections::BTreeMap<PathBuf, bool>,
                path: &mut Vec<PathBuf>,
                cycles: &mut Vec<String>,
            ) {
                state.insert(f.clone(), false);
                path.push(f.clone());
                for t in edges.get(f).into_iter().flatten() {
                    match state.get(t) {
                        Some(false) => {
                            let at = path.iter().position(|p| p == t).unwrap_or(0);
                            let names: Vec<String> =
                                path[at..].iter().chain([t]).map(|p| rel(p)).collect();
                            cycles.push(names.join(" -> "));
                        }
                        None => visit(t, edges, state, path, cycles),
                        Some(true) => {}
                    }
                }
                path.pop();
                state.insert(f.clone(), true);
            }
            let mut state = std::collections::BTreeMap::new();
            for f in edges.keys() {
                if !state.contains_key(f) {
                    visit(f, &edges, &mut state, &mut Vec::new(), &mut cycles);
                }
            }
        }
        assert!(
            cycles.is_empty(),
            "files that import each other (move the shared item to a file both import):\n{}",
            cycles.join("\n")
        );
    }
}
