//! `cargo xtask bench-dist [--root DIR] [--repeats N] [--np N] [--batches 32,64]`: data-parallel
//! training against one process on the same cores. It trains `configs/dist.toml` (ResNeXt-50,
//! bf16 channels-last, cached images) for 2 epochs at each global batch size as
//! `mpirun -np N resnext train` with one libtorch thread per rank, and as one process with N
//! threads, in alternating order, and reads the second (steady-state) epoch's training-phase throughput and
//! gradient-sum time from `metrics.csv`.
//! Needs the `mpi` feature's packages (`cargo xtask setup --mpi`).

use crate::flags::BenchDist;
use crate::launch;
use crate::stats::{median, range};
use crate::{cmd, run_files, setup};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

pub fn run(f: &BenchDist) -> Result<()> {
    let (repeats, np) = (f.repeats, f.np);
    let root = f.photos.dir()?;
    setup::run(&Default::default())?;
    if !setup::mpi_available() {
        bail!("bench-dist needs MPI: run `cargo xtask setup --mpi` first");
    }
    let bin = launch::build_cli_release()?;
    let config = cmd::root().join("configs/dist.toml");
    let work = cmd::target_dir()?.join("bench-dist");
    std::fs::create_dir_all(&work)?;
    let train = |ranks: usize, batch: usize, dir: &Path| -> Result<(f64, f64)> {
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
            .args(["--set", "data.threads=1"])
            .args(["--set", &format!("data.batch_size={batch}")]);
        cmd::output(&mut c, &format!("training on {ranks} process(es)"))?;
        // (images/s of the training phase, seconds in gradient sums) of the last epoch
        let v = run_files::last_epoch(dir, &["images_per_s", "allreduce_s"])?;
        Ok((v[0], v[1]))
    };
    let one_dir = work.join("one");
    let many_dir = work.join("ranks");
    println!("ResNeXt-50 bf16 channels-last, epoch 2 training phase ({repeats} rounds, medians):");
    println!("| global batch | 1 process × {np} threads img/s | {np} ranks × 1 thread img/s | ratio (range) | gradient sum per step | share of a step |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for &batch in &f.batches {
        let (mut one, mut many, mut reduce, mut share) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut ratios = Vec::new();
        for r in 0..repeats {
            eprintln!("bench-dist: batch {batch}, round {}/{repeats}", r + 1);
            // the order alternates from round to round (AB, BA, …), so that a drift of the VM's
            // speed falls on both settings alike
            let first = if r % 2 == 0 { 1 } else { np };
            let mut alone = 0.0;
            let (mut ips, mut secs) = (0.0, 0.0);
            for ranks in [first, if first == 1 { np } else { 1 }] {
                let measured = train(ranks, batch, if ranks == 1 { &one_dir } else { &many_dir })?;
                if ranks == 1 {
                    alone = measured.0;
                } else {
                    (ips, secs) = measured;
                }
            }
            one.push(alone);
            ratios.push(ips / alone);
            // full batches of `batch` in the train part of the run's split
            let steps = run_files::train_images(&many_dir)? / batch;
            let per_step = secs / steps.max(1) as f64;
            many.push(ips);
            reduce.push(per_step);
            share.push(per_step / (batch as f64 / ips));
        }
        let (o, m) = (median(&one), median(&many));
        let (lo, hi) = range(&ratios);
        println!(
            "| {batch} | {o:.2} | {m:.2} | {:.3} ({lo:.3}–{hi:.3}) | {:.0} ms | {:.1}% |",
            median(&ratios),
            median(&reduce) * 1000.0,
            median(&share) * 100.0
        );
    }
    Ok(())
}
