//! `cargo xtask bench [--steps N] [--batch N] [--arch A] [--repeats N]`: ResNeXt train and eval
//! throughput and peak memory of `resnext bench` and of PyTorch (`scripts/bench_torch.py`,
//! torchvision's model, run with the setup venv), setting by setting in one run, as a Markdown
//! table. Each setting runs `--repeats` rounds (default 3) of the two back to back, alternating
//! which goes first; throughputs are medians, the ratio is the median of the per-round ratios
//! (range in brackets), peak memory the largest seen.

use crate::stats::{median, range};
use crate::{cmd, setup};
use anyhow::{bail, Context, Result};
use std::process::{Command, Output};

fn field(out: &Output, prefix: &str, suffix: &str, what: &str) -> Result<f64> {
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
    let (mut steps, mut batch, mut arch) = (3usize, 16usize, "resnext50_32x4d".to_string());
    let mut repeats = 3usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--steps" => steps = val()?.parse().context("--steps")?,
            "--batch" => batch = val()?.parse().context("--batch")?,
            "--arch" => arch = val()?.clone(),
            "--repeats" => repeats = val()?.parse().context("--repeats")?,
            other => bail!(
                "unknown argument `{other}` (expected --steps N, --batch N, --arch A, --repeats N)"
            ),
        }
    }
    if steps == 0 || batch == 0 || repeats == 0 {
        bail!("--steps, --batch and --repeats must be at least 1");
    }
    setup::run(&[])?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let bin = cmd::build_cli_release()?;
    let script = cmd::root().join("scripts/bench_torch.py");
    println!("| mode | setting | PyTorch img/s | resnext img/s | ratio (range) | PyTorch peak RSS MiB | resnext peak RSS MiB |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for mode in ["train", "eval"] {
        for (precision, channels_last) in [("fp32", false), ("fp32", true), ("bf16", true)] {
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
            let mut theirs = Command::new(&python);
            theirs.arg(&script).args([
                mode,
                &arch,
                &batch.to_string(),
                precision,
                fmt,
                &steps.to_string(),
            ]);
            let (mut t_ours, mut t_theirs, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
            let (mut m_ours, mut m_theirs) = (0f64, 0f64);
            for round in 0..repeats {
                let (o, p) = if round % 2 == 0 {
                    let o = ours.output()?;
                    (o, theirs.output()?)
                } else {
                    let p = theirs.output()?;
                    (ours.output()?, p)
                };
                let (a, b) = (
                    field(&o, "throughput: ", " img/s", "resnext bench")?,
                    field(&p, "throughput: ", " img/s", "bench_torch.py")?,
                );
                t_ours.push(a);
                t_theirs.push(b);
                ratio.push(a / b);
                m_ours = m_ours.max(field(&o, "peak memory (RSS): ", " MiB", "resnext bench")?);
                m_theirs =
                    m_theirs.max(field(&p, "peak memory (RSS): ", " MiB", "bench_torch.py")?);
            }
            let (lo, hi) = range(&ratio);
            println!(
                "| {mode} | {precision} {fmt} | {:.2} | {:.2} | {:.2}× ({lo:.2}–{hi:.2}) | {m_theirs:.0} | {m_ours:.0} |",
                median(&t_theirs),
                median(&t_ours),
                median(&ratio)
            );
        }
    }
    Ok(())
}
