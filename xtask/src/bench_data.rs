//! `cargo xtask bench-data [--root DIR] [--epochs N]`: the data pipeline against torchvision's
//! ImageFolder + single-process DataLoader, side by side in one run, on the given photos and on a
//! 1024×768 re-encoding of them (where decoding dominates). Prints a Markdown table with ratios, each
//! figure the best of three interleaved runs.

use crate::{cmd, setup};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const REPEATS: usize = 3;

fn throughput(out: &std::process::Output, what: &str) -> Result<f64> {
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    text.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("throughput: ")
                .and_then(|r| r.strip_suffix(" img/s"))
                .and_then(|n| n.parse().ok())
        })
        .with_context(|| format!("{what} printed no throughput line"))
}

pub fn run(args: &[String]) -> Result<()> {
    let mut root: Option<PathBuf> = None;
    let mut epochs = 10usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => root = Some(PathBuf::from(it.next().context("--root needs a folder")?)),
            "--epochs" => {
                epochs = it
                    .next()
                    .context("--epochs needs a number")?
                    .parse()
                    .context("--epochs")?
            }
            other => bail!("unknown argument `{other}` (expected --root DIR, --epochs N)"),
        }
    }
    let root = root.unwrap_or_else(|| cmd::root().join("../shared/datasets/msld-original"));
    if !root.is_dir() {
        bail!("{} is not a folder; pass --root DIR", root.display());
    }
    setup::run(&[])?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let bin = cmd::build_cli_release()?;
    let script = cmd::root().join("scripts/bench_torchvision_data.py");
    let large = cmd::root().join("target/bench-data/large-1024x768");
    let status = Command::new(&python)
        .arg(&script)
        .args(["--make-large"])
        .arg(&root)
        .arg(&large)
        .args(["1024", "768"])
        .status()?;
    if !status.success() {
        bail!("making the 1024x768 copy failed");
    }
    println!("| photos | transform | torchvision (1 process) img/s | resnext-data 1 thread | resnext-data 2 threads | 2 threads vs torchvision | 1 → 2 threads |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (label, dir, epochs) in [
        ("MSLD 224×224", root.as_path(), epochs),
        (
            "MSLD re-encoded 1024×768",
            large.as_path(),
            (epochs / 5).max(1),
        ),
    ] {
        for kind in ["eval", "train"] {
            // best of three interleaved runs for each side: the machine is shared and noisy
            let (mut tv, mut one, mut two) = (0f64, 0f64, 0f64);
            for _ in 0..REPEATS {
                let o = Command::new(&python)
                    .arg(&script)
                    .arg(dir)
                    .arg(kind)
                    .arg(epochs.to_string())
                    .output()?;
                tv = tv.max(throughput(&o, "torchvision benchmark")?);
                one = one.max(throughput(
                    &rs(&bin, dir, kind, 1, epochs)?,
                    "resnext data bench",
                )?);
                two = two.max(throughput(
                    &rs(&bin, dir, kind, 2, epochs)?,
                    "resnext data bench",
                )?);
            }
            println!(
                "| {label} | {kind} | {tv:.0} | {one:.0} | {two:.0} | {:.2}× | {:.2}× |",
                two / tv,
                two / one
            );
        }
    }
    Ok(())
}

fn rs(
    bin: &Path,
    dir: &Path,
    kind: &str,
    threads: usize,
    epochs: usize,
) -> Result<std::process::Output> {
    Ok(Command::new(bin)
        .args(["data", "bench", "--root"])
        .arg(dir)
        .args([
            "--transform",
            kind,
            "--threads",
            &threads.to_string(),
            "--epochs",
            &epochs.to_string(),
        ])
        .output()?)
}
