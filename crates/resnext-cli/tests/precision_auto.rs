//! `precision = "auto"` and `channels_last = "auto"`: the run's first line says what was chosen
//! and why, the sidecar records what ran, a resumed run resolves `auto` again on its machine, and
//! an explicit bf16 on a CPU without native bf16 warns once.
//!
//! A CPU without native bf16 is had on any machine by capping oneDNN's instruction set
//! (`ONEDNN_MAX_CPU_ISA=AVX2`), which also keeps libtorch off bf16 instructions.

mod common;

use common::{synth, tiny_config};
use std::path::Path;
use std::process::{Command, Output};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `resnext ARGS`, with oneDNN capped at AVX2 when `no_bf16`.
fn resnext(args: &[&str], no_bf16: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resnext"));
    c.args(args);
    if no_bf16 {
        c.env("ONEDNN_MAX_CPU_ISA", "AVX2");
    } else {
        c.env_remove("ONEDNN_MAX_CPU_ISA")
            .env_remove("DNNL_MAX_CPU_ISA");
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "resnext {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What the sidecar says ran: (precision, channels_last).
fn ran(run: &Path) -> (String, bool) {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("last.json")).unwrap()).unwrap();
    (
        v["precision"].as_str().unwrap().to_string(),
        v["channels_last"].as_bool().unwrap(),
    )
}

/// Whether this machine computes bf16 natively, as the binary sees it without a cap (which
/// [`resnext`] removes from its environment).
fn native_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
        c.lines().find(|l| l.starts_with("flags")).is_some_and(|l| {
            l.split_whitespace()
                .any(|f| f == "avx512_bf16" || f == "amx_bf16")
        })
    })
}

#[test]
fn auto_says_what_it_chose_records_it_and_resolves_again_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 4);
    let cfg = tiny_config(
        dir.path(),
        &data,
        1,
        "precision = \"auto\"\nchannels_last = \"auto\"",
    );
    let run = dir.path().join("run");
    // a CPU without native bf16: fp32 channels-last, said on the first two lines
    let o = resnext(&["train", "--config", s(&cfg), "--out", s(&run)], true);
    let err = stderr(&o);
    let first = err.lines().next().unwrap_or_default();
    assert_eq!(
        first, "precision auto → fp32 (this CPU has no AVX512-BF16/AMX-BF16)",
        "{err}"
    );
    assert!(
        err.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("channels_last auto → true")),
        "{err}"
    );
    assert!(!err.contains("warning:"), "{err}");
    assert_eq!(ran(&run), ("fp32".to_string(), true));
    // the config keeps `auto`, so the resumed run resolves it on its own machine
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("precision = \"auto\""), "{config}");
    let o = resnext(&["train", "--resume", s(&run), "--epochs", "2"], false);
    let err = stderr(&o);
    let want = if native_bf16() {
        ("bf16".to_string(), true)
    } else {
        ("fp32".to_string(), true)
    };
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.starts_with(&format!("precision auto → {}", want.0))),
        "{err}"
    );
    assert_eq!(ran(&run), want);
}

#[test]
fn explicit_bf16_without_native_bf16_runs_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 4);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    let run = dir.path().join("run");
    let o = resnext(
        &[
            "train",
            "--config",
            s(&cfg),
            "--out",
            s(&run),
            "--precision",
            "bf16",
            "--channels-last",
        ],
        true,
    );
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("no native bf16") && warnings[0].contains("auto"),
        "{err}"
    );
    assert_eq!(ran(&run), ("bf16".to_string(), true));
    // fp32 asked for says nothing
    let o = resnext(
        &[
            "eval",
            "--run",
            s(&run),
            "--precision",
            "fp32",
            "--no-write",
        ],
        true,
    );
    assert!(!stderr(&o).contains("precision"), "{}", stderr(&o));
    // eval and predict take auto too, and say what it chose
    let o = resnext(
        &[
            "eval",
            "--run",
            s(&run),
            "--precision",
            "auto",
            "--channels-last=auto",
            "--no-write",
        ],
        true,
    );
    assert!(
        stderr(&o).starts_with("precision auto → fp32 (this CPU has no AVX512-BF16/AMX-BF16)\nchannels_last auto → true"),
        "{}",
        stderr(&o)
    );
    let o = resnext(
        &[
            "predict",
            "--run",
            s(&run),
            "--precision",
            "bf16",
            s(&data.join("rings")),
        ],
        true,
    );
    assert_eq!(
        stderr(&o)
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .count(),
        1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_choices_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 4);
    for (extra, needle) in [
        ("precision = \"fp8\"", "precision"),
        ("channels_last = \"sometimes\"", "channels_last"),
    ] {
        let cfg = tiny_config(dir.path(), &data, 1, extra);
        let o = Command::new(env!("CARGO_BIN_EXE_resnext"))
            .args([
                "train",
                "--config",
                s(&cfg),
                "--out",
                s(&dir.path().join("x")),
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(needle), "{err}");
        assert!(!dir.path().join("x").exists());
    }
}
