//! `cargo xtask bench-dist [--root DIR] [--repeats N] [--np N]`: data-parallel training against
//! one process on the same cores. It trains `configs/dist.toml` (ResNeXt-50, bf16 channels-last,
//! global batch 32, cached images) for 2 epochs as `mpirun -np N resnext train` with one libtorch
//! thread per rank, and as one process with N threads, alternately, and reads the second
//! (steady-state) epoch's training-phase throughput and gradient-sum time from `metrics.csv`.
//! Needs the `mpi` feature's packages (`cargo xtask setup --mpi`).

use crate::args::Flags;
use crate::stats::median;
use crate::{cmd, setup};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// (images/s of the training phase, seconds in gradient sums) of the last epoch.
fn last_epoch(run: &Path) -> Result<(f64, f64)> {
    let path = run.join("metrics.csv");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("{} has no `{name}` column", path.display()))
    };
    let (ips, reduce) = (col("images_per_s")?, col("allreduce_s")?);
    let last: Vec<f64> = lines
        .last()
        .with_context(|| format!("{} has no epoch rows", path.display()))?
        .split(',')
        .map(|f| f.parse().unwrap_or(f64::NAN))
        .collect();
    Ok((last[ips], last[reduce]))
}

/// Full batches of `batch` in the train part of a run's split.
fn steps(run: &Path, batch: usize) -> Result<usize> {
    let path = run.join("split.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let n = v["train"]
        .as_array()
        .with_context(|| format!("{} has no train list", path.display()))?
        .len();
    Ok(n / batch)
}

pub fn run(args: &[String]) -> Result<()> {
    let flags = Flags::parse(args, &["--root", "--repeats", "--np"])?;
    let repeats = flags.count("--repeats", 2)?;
    let np = flags.count("--np", 2)?;
    let root = flags.photos_root()?;
    setup::run(&[])?;
    if !setup::mpi_available() {
        bail!("bench-dist needs MPI: run `cargo xtask setup --mpi` first");
    }
    let bin = cmd::build_cli_release()?;
    let config = cmd::root().join("configs/dist.toml");
    let work = cmd::target_dir()?.join("bench-dist");
    std::fs::create_dir_all(&work)?;
    let train = |ranks: usize, dir: &Path| -> Result<(f64, f64)> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        let threads = if ranks > 1 { 1 } else { np };
        let mut c = if ranks > 1 {
            let mut c = Command::new("mpirun");
            c.args([
                "-np",
                &ranks.to_string(),
                "--oversubscribe",
                "--bind-to",
                "none",
            ])
            .args(["--mca", "btl", "self,vader"])
            .args(["--mca", "btl_vader_single_copy_mechanism", "none"])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        c.arg("train")
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(&root)
            .arg("--out")
            .arg(dir)
            .args(["--set", &format!("train.threads={threads}")])
            .args(["--set", "data.threads=1"]);
        let out = c.output()?;
        if !out.status.success() {
            bail!(
                "training on {ranks} process(es) failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        last_epoch(dir)
    };
    let one_dir = work.join("one");
    let many_dir = work.join("ranks");
    let (mut one, mut many, mut reduce) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..repeats {
        eprintln!("bench-dist: round {}/{repeats}", r + 1);
        one.push(train(1, &one_dir)?.0);
        let (ips, secs) = train(np, &many_dir)?;
        many.push(ips);
        reduce.push(secs / steps(&many_dir, 32)? as f64);
    }
    let (o, m, red) = (median(&one), median(&many), median(&reduce));
    println!("ResNeXt-50 bf16 channels-last, global batch 32, epoch 2 training phase ({repeats} rounds, medians):");
    println!("| setting | img/s | gradient sum per step |");
    println!("| --- | --- | --- |");
    println!("| 1 process × {np} libtorch threads | {o:.2} | — |");
    println!(
        "| {np} ranks × 1 libtorch thread (mpirun) | {m:.2} | {:.0} ms |",
        red * 1000.0
    );
    println!("ratio {np} ranks / 1 process: {:.3}", m / o);
    Ok(())
}
