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

use crate::args::Flags;
use crate::stats::{median, range};
use crate::{cmd, setup};
use anyhow::{bail, Context, Result};
use std::process::{Command, Output};

/// The number between `prefix` and `suffix` on a line of a successful run's stdout.
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

pub fn run(args: &[String]) -> Result<()> {
    let flags = Flags::parse(
        args,
        &["--steps", "--batch", "--arch", "--repeats", "--mode"],
    )?;
    let steps = flags.count("--steps", 3)?;
    let batch = flags.count("--batch", 16)?;
    let repeats = flags.count("--repeats", 3)?;
    let arch = flags
        .text("--arch")
        .unwrap_or("resnext50_32x4d")
        .to_string();
    let modes = match flags.text("--mode") {
        None => vec!["train", "eval"],
        Some("train") => vec!["train"],
        Some("eval") => vec!["eval"],
        Some(other) => bail!("unknown --mode `{other}` (expected train or eval)"),
    };
    setup::run(&[])?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let bin = cmd::build_cli_release()?;
    let script = cmd::root().join("scripts/bench_torch.py");
    println!("| mode | setting | PyTorch img/s | resnext img/s | ratio (range) | PyTorch peak RSS MiB | resnext peak RSS MiB | torch.compile img/s | resnext / compile |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for mode in modes {
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
            let mut ours = Command::new(&bin);
            ours.args([
                "bench",
                mode,
                "--arch",
                &arch,
                "--batch",
                &batch.to_string(),
                "--precision",
                precision,
                "--steps",
                &steps.to_string(),
            ]);
            if channels_last {
                ours.arg("--channels-last");
            }
            if fold_bn {
                ours.arg("--fold-bn");
            }
            let mut theirs = Command::new(&python);
            theirs.arg(&script).args([
                mode,
                &arch,
                &batch.to_string(),
                precision,
                fmt,
                &steps.to_string(),
            ]);
            let mut compiled = Command::new(&python);
            // the same arguments (script first), compiled
            compiled.args(theirs.get_args()).arg("--compile");
            let (mut t_ours, mut t_theirs, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
            let (mut m_ours, mut m_theirs) = (0f64, 0f64);
            let (mut t_compiled, mut compiled_ratio) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                // resnext, PyTorch, PyTorch, resnext (ABBA): the sums cancel a drift of the
                // machine's speed that is linear over the round.
                let runs = [
                    ours.output()?,
                    theirs.output()?,
                    theirs.output()?,
                    ours.output()?,
                ];
                let mut sums = (0f64, 0f64);
                for (i, out) in runs.iter().enumerate() {
                    if i == 0 || i == 3 {
                        let v = field(out, "throughput: ", " img/s", "resnext bench")?;
                        sums.0 += v;
                        m_ours =
                            m_ours.max(field(out, "peak memory (RSS): ", " MiB", "resnext bench")?);
                    } else {
                        let v = field(out, "throughput: ", " img/s", "bench_torch.py")?;
                        sums.1 += v;
                        m_theirs = m_theirs.max(field(
                            out,
                            "peak memory (RSS): ",
                            " MiB",
                            "bench_torch.py",
                        )?);
                    }
                }
                t_ours.push(sums.0 / 2.0);
                t_theirs.push(sums.1 / 2.0);
                ratio.push(sums.0 / sums.1);
                if mode == "eval" {
                    let c = field(
                        &compiled.output()?,
                        "throughput: ",
                        " img/s",
                        "bench_torch.py --compile",
                    )?;
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
