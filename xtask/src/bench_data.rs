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
use serde::Deserialize;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// What `resnext data bench --json` reports (the figures this bench reads; it prints more).
#[derive(Debug, Deserialize)]
struct DataReport {
    images_per_second: f64,
    /// None without Linux's `/proc/self/stat`.
    cores_busy: Option<f64>,
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
                tv.push(bench::throughput(&o, "torchvision benchmark")?);
                // 1, 2, 2, 1 threads (ABBA): the ratio of the sums cancels a drift of the
                // machine's speed that is linear over the round.
                let run = |threads| report(rs_command(&bin, dir, kind, threads, epochs).output()?);
                let (a1, a2, b2, b1) = (run(1)?, run(2)?, run(2)?, run(1)?);
                one.push((a1.images_per_second + b1.images_per_second) / 2.0);
                two.push((a2.images_per_second + b2.images_per_second) / 2.0);
                busy.extend(a2.cores_busy.into_iter().chain(b2.cores_busy));
                // The machine's own ceiling: two independent 1-thread runs at the same time.
                let other = rs_command(&bin, dir, kind, 1, epochs)
                    .stdout(Stdio::piped())
                    .spawn()?;
                let a = run(1)?.images_per_second;
                let b = report(other.wait_with_output()?)?.images_per_second;
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

/// The report of a finished `resnext data bench --json` run.
fn report(out: Output) -> Result<DataReport> {
    let what = "resnext data bench";
    bench::json_report(&cmd::succeeded(out, what)?, what)
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
        "--json",
    ]);
    c
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_what_resnext_data_bench_json_prints() {
        // `resnext data bench --root D --threads 1 --image-size 32 --json`, verbatim
        let out = r#"{"checksum":-1.6555355787277222,"cores_busy":0.0,"cpu_ms_per_image":0.0,"cpu_seconds":0.0,"images":16,"images_per_second":1774.6126575135104,"seconds":0.009016052,"threads":1,"transform":"eval"}"#;
        let r: super::DataReport = serde_json::from_str(out).unwrap();
        assert_eq!(r.images_per_second, 1774.6126575135104);
        assert_eq!(r.cores_busy, Some(0.0));
        let r: super::DataReport =
            serde_json::from_str(r#"{"images_per_second":2.5,"cores_busy":null}"#).unwrap();
        assert_eq!(r.cores_busy, None);
    }
}
