//! `cargo xtask bench [--steps N] [--batch N] [--arch A] [--repeats N] [--mode train|eval]`:
//! ResNeXt train and eval throughput and peak memory of `resnext bench` and of PyTorch (`scripts/bench_torch.py`,
//! torchvision's model, run with the setup venv), setting by setting in one run, as a Markdown
//! table. Each setting runs `--repeats` rounds (default 3) of resnext, PyTorch, PyTorch, resnext
//! back to back (so a linear drift of the machine's speed cancels within a round); throughputs
//! are medians of the rounds' means, the ratio is the median of the per-round ratios (range in
//! brackets), peak memory the largest seen.
//!
//! In eval mode a fourth setting runs ours with `--fold-bn` (BatchNorm folded) against PyTorch's
//! bf16 channels-last, and every eval setting also times `torch.compile`d PyTorch once per round
//! (`scripts/bench_torch.py --compile`; compilation is in the untimed warmup).

use crate::flags::{self, Mode};
use crate::launch;
use crate::stats::{median, range};
use crate::{cmd, setup};
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;
use std::process::{Command, Output};

/// What `resnext bench --json` reports (the figures the benches read; it prints more).
#[derive(Debug, Deserialize)]
pub struct BenchReport {
    pub images_per_second: f64,
    pub forward_mult_adds: f64,
    /// None without Linux's `/proc/self/status`.
    pub peak_rss_mib: Option<f64>,
}

/// Runs `bin bench ARGS --json` and reads its report.
pub fn resnext_bench(bin: &Path, args: &[&str]) -> Result<BenchReport> {
    let out = cmd::output(
        Command::new(bin).arg("bench").args(args).arg("--json"),
        "resnext bench",
    )?;
    json_report(&out, "resnext bench")
}

/// The JSON object a `what --json` run printed on stdout.
pub(crate) fn json_report<T: DeserializeOwned>(out: &Output, what: &str) -> Result<T> {
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{what} --json printed no report: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The `throughput: N img/s` figure of a successful run of a Python script.
pub(crate) fn throughput(out: &Output, what: &str) -> Result<f64> {
    field(out, "throughput: ", " img/s", what)
}

/// The number between `prefix` and `suffix` on a line of a successful run's stdout (the Python
/// scripts' text).
pub(crate) fn field(out: &Output, prefix: &str, suffix: &str, what: &str) -> Result<f64> {
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .and_then(|n| n.trim().parse().ok())
        })
        .with_context(|| format!("{what} printed no `{prefix}` line"))
}

pub fn run(f: &flags::Bench) -> Result<()> {
    let modes = f.mode.map_or(vec![Mode::Train, Mode::Eval], |m| vec![m]);
    let (batch, steps) = (f.batch.to_string(), f.steps.to_string());
    setup::run(&Default::default())?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let bin = launch::build_cli_release()?;
    let script = cmd::root().join("scripts/bench_torch.py");
    println!("| mode | setting | PyTorch img/s | resnext img/s | ratio (range) | PyTorch peak RSS MiB | resnext peak RSS MiB | torch.compile img/s | resnext / compile |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for mode in modes {
        let mode_name = flags::name(mode);
        let mode = mode_name.as_str();
        let mut settings = vec![
            ("fp32", false, false),
            ("fp32", true, false),
            ("bf16", true, false),
        ];
        if mode == "eval" {
            settings.push(("bf16", true, true));
        }
        for (precision, channels_last, fold_bn) in settings {
            let fmt = if channels_last {
                "channels_last"
            } else {
                "nchw"
            };
            let mut ours = vec![mode, "--arch", &f.arch, "--batch", &batch];
            ours.extend(["--precision", precision, "--steps", &steps]);
            ours.extend(channels_last.then_some("--channels-last"));
            ours.extend(fold_bn.then_some("--fold-bn"));
            let mut theirs = Command::new(&python);
            theirs
                .arg(&script)
                .args([mode, &f.arch, &batch, precision, fmt, &steps]);
            let mut compiled = Command::new(&python);
            // the same arguments (script first), compiled
            compiled.args(theirs.get_args()).arg("--compile");
            // (img/s, peak RSS MiB) of one run of each
            let resnext = || -> Result<(f64, f64)> {
                let r = resnext_bench(&bin, &ours)?;
                let rss = r
                    .peak_rss_mib
                    .context("resnext bench reported no peak memory")?;
                Ok((r.images_per_second, rss))
            };
            let torch = |c: &mut Command| -> Result<(f64, f64)> {
                let out = c.output()?;
                Ok((
                    throughput(&out, "bench_torch.py")?,
                    field(&out, "peak memory (RSS): ", " MiB", "bench_torch.py")?,
                ))
            };
            let (mut t_ours, mut t_theirs, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
            let (mut m_ours, mut m_theirs) = (0f64, 0f64);
            let (mut t_compiled, mut compiled_ratio) = (Vec::new(), Vec::new());
            for _ in 0..f.repeats {
                // resnext, PyTorch, PyTorch, resnext (ABBA): the sums cancel a drift of the
                // machine's speed that is linear over the round.
                let (a, b) = (resnext()?, torch(&mut theirs)?);
                let (c, d) = (torch(&mut theirs)?, resnext()?);
                let sums = (a.0 + d.0, b.0 + c.0);
                m_ours = m_ours.max(a.1).max(d.1);
                m_theirs = m_theirs.max(b.1).max(c.1);
                t_ours.push(sums.0 / 2.0);
                t_theirs.push(sums.1 / 2.0);
                ratio.push(sums.0 / sums.1);
                if mode == "eval" {
                    let c = throughput(&compiled.output()?, "bench_torch.py --compile")?;
                    t_compiled.push(c);
                    compiled_ratio.push(sums.0 / 2.0 / c);
                }
            }
            let (lo, hi) = range(&ratio);
            let (compile_col, compile_ratio) = if t_compiled.is_empty() {
                ("—".to_string(), "—".to_string())
            } else {
                let (clo, chi) = range(&compiled_ratio);
                (
                    format!("{:.2}", median(&t_compiled)),
                    format!("{:.2}× ({clo:.2}–{chi:.2})", median(&compiled_ratio)),
                )
            };
            let setting = if fold_bn {
                format!("{precision} {fmt} + fold-bn (ours)")
            } else {
                format!("{precision} {fmt}")
            };
            println!(
                "| {mode} | {setting} | {:.2} | {:.2} | {:.2}× ({lo:.2}–{hi:.2}) | {m_theirs:.0} | {m_ours:.0} | {compile_col} | {compile_ratio} |",
                median(&t_theirs),
                median(&t_ours),
                median(&ratio)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_what_resnext_bench_json_prints() {
        // `resnext bench eval --arch custom ... --json`, verbatim
        let out = r#"{"ablated":null,"arch":"custom","batch":2,"channels_last":false,"device":"Cpu","forward_mult_adds":11169792,"images_per_second":458.83140916646505,"mode":"eval","peak_rss_mib":166.15234375,"precision":"fp32","seconds":0.008717799,"steps":2}"#;
        let r: super::BenchReport = serde_json::from_str(out).unwrap();
        assert_eq!(r.images_per_second, 458.83140916646505);
        assert_eq!(r.forward_mult_adds, 11169792.0);
        assert_eq!(r.peak_rss_mib, Some(166.15234375));
        let r: super::BenchReport = serde_json::from_str(
            r#"{"forward_mult_adds":1,"images_per_second":2.5,"peak_rss_mib":null}"#,
        )
        .unwrap();
        assert_eq!(r.peak_rss_mib, None);
    }
}
