//! Keeps docs and code in step, as rust-analyzer's `tidy` test does: every source file opens with
//! a `//!` header saying what it is; every `resnext` subcommand is in the README; every config
//! key is in `docs/config.md`; every run-directory file is in the README.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

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

#[test]
fn every_source_file_has_a_header() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut missing = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        // resnext-model's build script is included by two others, where `//!` cannot stand
        let included_build_script =
            f.ends_with("resnext-model/build.rs") && first.starts_with("// ");
        if !first.starts_with("//!") && !included_build_script {
            missing.push(f.strip_prefix(root()).unwrap_or(f).display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "files without a `//!` header: {missing:?}"
    );
}

/// The subcommands `resnext [SUB] --help` lists.
fn subcommands(args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push("--help");
    let help = common::ok(&a);
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

#[test]
fn every_subcommand_is_in_the_readme() {
    let readme = read("README.md");
    let top = subcommands(&[]);
    assert!(top.len() >= 7, "{top:?}");
    for c in &top {
        assert!(
            readme.contains(&format!("resnext {c}")),
            "README.md does not mention `resnext {c}`"
        );
    }
    for c in subcommands(&["data"]) {
        assert!(
            readme.contains(&format!("resnext data {c}"))
                || readme
                    .lines()
                    .any(|l| l.contains("resnext data") && l.contains(&c)),
            "README.md does not mention `resnext data {c}`"
        );
    }
}

/// `pub name:` fields of the struct `name` in `src`.
fn fields(src: &str, name: &str) -> Vec<String> {
    let start = src
        .find(&format!("pub struct {name} {{"))
        .unwrap_or_else(|| panic!("no struct {name}"));
    let body = &src[start..];
    let end = body.find("\n}").unwrap();
    body[..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .filter(|n| !n.contains(' '))
        .collect()
}

#[test]
fn every_config_key_is_in_the_config_docs() {
    let docs = read("docs/config.md");
    let train = read("crates/resnext-train/src/config.rs");
    let transform = read("crates/resnext-data/src/transform/config.rs");
    let mix = read("crates/resnext-data/src/mix.rs");
    let mut keys = Vec::new();
    for s in [
        "TrainConfig",
        "ModelSection",
        "DataSection",
        "OptimSection",
        "ScheduleSection",
        "TrainSection",
        "LossSection",
    ] {
        keys.extend(fields(&train, s));
    }
    for s in [
        "TransformConfig",
        "RandomResizedCropConfig",
        "ColorJitterConfig",
        "RandomErasingConfig",
    ] {
        keys.extend(fields(&transform, s));
    }
    keys.extend(fields(&mix, "MixConfig"));
    assert!(keys.len() > 50, "{keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| {
            // a key in backticks, a section header `[k]`, or a key inside an inline table
            ![
                format!("`{k}`"),
                format!("[{k}]"),
                format!("{k} ="),
                format!("{{ {k}"),
                format!(", {k}"),
            ]
            .iter()
            .any(|form| docs.contains(form.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md does not document {missing:?}"
    );
}

#[test]
fn every_run_file_is_in_the_readme() {
    let readme = read("README.md");
    let run = read("crates/resnext-train/src/run.rs");
    let names: Vec<&str> = run
        .lines()
        .filter(|l| l.trim_start().starts_with("RunFile::"))
        .filter_map(|l| {
            l.split_once("=> \"")
                .map(|(_, r)| r.trim_end_matches("\","))
        })
        .collect();
    assert!(names.len() >= 12, "{names:?}");
    for n in names {
        assert!(readme.contains(n), "README.md does not mention `{n}`");
    }
}

#[test]
fn every_route_and_serve_flag_is_in_the_serving_docs() {
    let docs = read("docs/serving.md");
    let server = read("crates/resnext-serve/src/server.rs");
    let routes: Vec<&str> = server
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(".route(\""))
        .filter_map(|r| r.split('"').next())
        .collect();
    assert!(routes.len() >= 7, "{routes:?}");
    for r in routes {
        assert!(
            docs.contains(&format!(" {r}")),
            "docs/serving.md does not document {r}"
        );
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_resnext"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches([',', '.', ')']))
        // `--flag[=<VALUE>]`: a flag whose value is optional
        .map(|w| w.split('[').next().unwrap_or(w))
        .filter(|w| *w != "--help")
        .collect();
    assert!(flags.len() >= 15, "{flags:?}");
    for f in flags {
        assert!(docs.contains(f), "docs/serving.md does not mention {f}");
    }
}
