//! `cargo xtask bench-data [--root DIR] [--epochs N] [--repeats N]`: the data pipeline against
//! torchvision's ImageFolder + single-process DataLoader, side by side in one run, on the given
//! photos and on a 1024×768 re-encoding of them (where decoding dominates). Prints a Markdown
//! table: throughputs are medians of `--repeats` rounds (default 5), each round running
//! torchvision, then 1, 2, 2 and 1 threads back to back (the means of the two runs of each cancel
//! a linear drift), then two 1-thread runs at once (the machine's own ceiling); ratios are medians
//! of the per-round ratios (with their range), so the slow drifts of a shared VM cancel within a
//! round instead of picking outliers. resnext runs `--epochs` passes (default 60) over the given
//! photos and a tenth of them over the large ones; torchvision, several times slower, a third of
//! each, so that its runs take about as long as ours and a round stays short.

use crate::flags::BenchData;
use crate::launch;
use crate::stats::{median, range};
use crate::{bench, cmd, setup};
use anyhow::{bail, Result};
use std::path::Path;
use std::process::Command;

/// The `throughput: N img/s` figure of a run (resnext's or the torchvision script's).
fn throughput(out: &std::process::Output, what: &str) -> Result<f64> {
    bench::field(out, "throughput: ", " img/s", what)
}

pub fn run(f: &BenchData) -> Result<()> {
    let (epochs, repeats) = (f.epochs, f.repeats);
    let root = f.photos.dir()?;
    setup::run(&Default::default())?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let bin = launch::build_cli_release()?;
    let script = cmd::root().join("scripts/bench_torchvision_data.py");
    let large = cmd::target_dir()?.join("bench-data/large-1024x768");
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
    println!("| photos | transform | torchvision (1 process) img/s | resnext-data 1 thread | resnext-data 2 threads | 2 threads vs torchvision | 1 → 2 threads (range) | two 1-thread processes at once vs one | cores busy at 2 threads |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (label, dir, epochs) in [
        ("MSLD 224×224", root.as_path(), epochs),
        (
            "MSLD re-encoded 1024×768",
            large.as_path(),
            (epochs / 10).max(1),
        ),
    ] {
        for kind in ["eval", "train"] {
            let (mut tv, mut one, mut two) = (Vec::new(), Vec::new(), Vec::new());
            let (mut pair, mut busy) = (Vec::new(), Vec::new());
            for _ in 0..repeats {
                let o = Command::new(&python)
                    .arg(&script)
                    .arg(dir)
                    .arg(kind)
                    .arg((epochs / 3).max(1).to_string())
                    .output()?;
                tv.push(throughput(&o, "torchvision benchmark")?);
                // 1, 2, 2, 1 threads (ABBA): the ratio of the sums cancels a drift of the
                // machine's speed that is linear over the round.
                let run = |threads| -> Result<(f64, Option<f64>)> {
                    let out = rs(&bin, dir, kind, threads, epochs)?;
                    Ok((throughput(&out, "resnext data bench")?, cores_busy(&out)))
                };
                let (a1, a2, b2, b1) = (run(1)?, run(2)?, run(2)?, run(1)?);
                one.push((a1.0 + b1.0) / 2.0);
                two.push((a2.0 + b2.0) / 2.0);
                busy.extend(a2.1.into_iter().chain(b2.1));
                // The machine's own ceiling: two independent 1-thread runs at the same time.
                let other = rs_command(&bin, dir, kind, 1, epochs)
                    .stdout(std::process::Stdio::piped())
                    .spawn()?;
                let a = throughput(&rs(&bin, dir, kind, 1, epochs)?, "resnext data bench")?;
                let b = throughput(&other.wait_with_output()?, "resnext data bench")?;
                pair.push(a + b);
            }
            let vs_tv: Vec<f64> = two.iter().zip(&tv).map(|(a, b)| a / b).collect();
            let scaling: Vec<f64> = two.iter().zip(&one).map(|(a, b)| a / b).collect();
            let ceiling: Vec<f64> = pair.iter().zip(&one).map(|(a, b)| a / b).collect();
            let (lo, hi) = range(&scaling);
            let busy = if busy.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.2}", median(&busy))
            };
            println!(
                "| {label} | {kind} | {:.0} | {:.0} | {:.0} | {:.2}× | {:.2}× ({lo:.2}–{hi:.2}) | {:.2}× | {busy} |",
                median(&tv),
                median(&one),
                median(&two),
                median(&vs_tv),
                median(&scaling),
                median(&ceiling),
            );
        }
    }
    Ok(())
}

/// The `cpu: …, N cores busy, …` figure of a `resnext data bench` run.
fn cores_busy(out: &std::process::Output) -> Option<f64> {
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.strip_prefix("cpu: ")?
            .split(", ")
            .find_map(|p| p.strip_suffix(" cores busy")?.parse().ok())
    })
}

fn rs(
    bin: &Path,
    dir: &Path,
    kind: &str,
    threads: usize,
    epochs: usize,
) -> Result<std::process::Output> {
    Ok(rs_command(bin, dir, kind, threads, epochs).output()?)
}

fn rs_command(bin: &Path, dir: &Path, kind: &str, threads: usize, epochs: usize) -> Command {
    let mut c = Command::new(bin);
    c.args(["data", "bench", "--root"]).arg(dir).args([
        "--transform",
        kind,
        "--threads",
        &threads.to_string(),
        "--epochs",
        &epochs.to_string(),
    ]);
    c
}
