//! `cargo xtask bench [--steps N] [--batch N] [--arch A]`: ResNeXt train and eval throughput and
//! peak memory of `resnext bench` and of PyTorch (`scripts/bench_torch.py`, torchvision's model,
//! run with the setup venv), setting by setting in one run, as a Markdown table with ratios.

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
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--steps" => steps = val()?.parse().context("--steps")?,
            "--batch" => batch = val()?.parse().context("--batch")?,
            "--arch" => arch = val()?.clone(),
            other => bail!("unknown argument `{other}` (expected --steps N, --batch N, --arch A)"),
        }
    }
    setup::run(&[])?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let bin = cmd::build_cli_release()?;
    let script = cmd::root().join("scripts/bench_torch.py");
    println!("| mode | setting | PyTorch img/s | resnext img/s | ratio | PyTorch peak RSS MiB | resnext peak RSS MiB |");
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
            let ours = ours.output()?;
            let theirs = Command::new(&python)
                .arg(&script)
                .args([
                    mode,
                    &arch,
                    &batch.to_string(),
                    precision,
                    fmt,
                    &steps.to_string(),
                ])
                .output()?;
            let (t_ours, t_theirs) = (
                field(&ours, "throughput: ", " img/s", "resnext bench")?,
                field(&theirs, "throughput: ", " img/s", "bench_torch.py")?,
            );
            let (m_ours, m_theirs) = (
                field(&ours, "peak memory (RSS): ", " MiB", "resnext bench")?,
                field(&theirs, "peak memory (RSS): ", " MiB", "bench_torch.py")?,
            );
            println!("| {mode} | {precision} {fmt} | {t_theirs:.2} | {t_ours:.2} | {:.2}× | {m_theirs:.0} | {m_ours:.0} |", t_ours / t_theirs);
        }
    }
    Ok(())
}
