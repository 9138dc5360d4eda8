//! Keeps docs and code in step, as rust-analyzer's `tidy` test does: every `resnext` subcommand is
//! in the README; every config key is in `docs/config.md`; every run-directory file is in the
//! README. The rules that need no binary (source headers, the one writer) are in
//! `xtask/src/tidy.rs`.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
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
    // the components of [optim] and [schedule] own their keys, in their own files
    let optim = read("crates/resnext-train/src/optim/config.rs");
    let adam = read("crates/resnext-train/src/optim/adam.rs");
    let sgd = read("crates/resnext-train/src/optim/sgd.rs");
    let schedule = read("crates/resnext-train/src/schedule.rs");
    let transform = read("crates/resnext-data/src/transform/config.rs");
    let mix = read("crates/resnext-data/src/mix.rs");
    let mut keys = Vec::new();
    for s in [
        "TrainConfig",
        "ModelSection",
        "DataSection",
        "TrainSection",
        "LossSection",
    ] {
        keys.extend(fields(&train, s));
    }
    for (src, s) in [
        (&optim, "OptimSection"),
        (&adam, "AdamConfig"),
        (&sgd, "SgdConfig"),
        (&schedule, "ScheduleSection"),
        (&schedule, "StepConfig"),
        (&schedule, "CosineConfig"),
    ] {
        // `rule` is the section's `name` with the component's own keys
        keys.extend(fields(src, s).into_iter().filter(|k| k != "rule"));
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
    let run = read("crates/resnext-infer/src/run.rs");
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
    // the route table: `Route::Name => "/path",`
    let table = read("crates/resnext-serve/src/routes.rs");
    let routes: Vec<&str> = table
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Route::"))
        .filter_map(|l| l.split_once("=> \"")?.1.split('"').next())
        .collect();
    assert!(routes.len() >= 8, "{routes:?}");
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
