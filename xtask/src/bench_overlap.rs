//! `cargo xtask bench-overlap [--root DIR] [--repeats N]`: is data loading hidden behind compute?
//! For fp32 NCHW (the tutorial's setting) and bf16 channels-last it trains `configs/overlap.toml`
//! (ResNeXt-50, batch 16, full batches, RandomResizedCrop + flip decoded every epoch, no cache)
//! for 2 epochs and reads the second (steady-state) epoch's training-phase throughput and data
//! wait from `metrics.csv`; around it, `resnext bench train` runs the same number of steps of the
//! same model, batch and precision on ready-made tensors (before and after, averaged, so a linear
//! drift of the machine cancels). Prints how much longer the epoch took than its steps alone.

use crate::bench::resnext_bench;
use crate::flags::BenchOverlap;
use crate::launch;
use crate::stats::median;
use crate::{cmd, run_files, setup};
use anyhow::{bail, Context, Result};
use std::process::Command;

const EPOCHS: usize = 2;

pub fn run(f: &BenchOverlap) -> Result<()> {
    let root = f.photos.dir()?;
    setup::run(&Default::default())?;
    let bin = launch::build_cli_release()?;
    let config = cmd::root().join("configs/overlap.toml");
    // the same split as the training runs (val 0.2, seed 0) tells the full batches per epoch
    let work = cmd::target_dir()?.join("bench-overlap");
    std::fs::create_dir_all(&work)?;
    cmd::output(
        Command::new(&bin)
            .args(["data", "split", "--root"])
            .arg(&root)
            .args(["--val", "0.2", "--seed", "0", "--out"])
            .arg(work.join(run_files::SPLIT)),
        "resnext data split",
    )?;
    // full batches of 16 per epoch
    let steps = run_files::train_images(&work)? / 16;
    if steps == 0 {
        bail!("{} has fewer than 16 training images", root.display());
    }
    println!("| setting | steps alone img/s | epoch {EPOCHS} training phase img/s | epoch longer than its steps by | data wait s / training phase s |");
    println!("| --- | --- | --- | --- | --- |");
    for (precision, channels_last) in [("fp32", false), ("bf16", true)] {
        let (layout, short) = if channels_last {
            ("channels_last", "cl")
        } else {
            ("nchw", "nchw")
        };
        let setting = format!("{precision} {layout}");
        let run_dir = work.join(format!("{precision}-{short}"));
        let n = steps.to_string();
        let mut args = vec!["train", "--arch", "resnext50_32x4d", "--batch", "16"];
        args.extend(["--precision", precision, "--steps", &n]);
        args.extend(channels_last.then_some("--channels-last"));
        let bench = || resnext_bench(&bin, &args).map(|r| r.images_per_second);
        let (mut alone, mut epoch, mut longer) = (Vec::new(), Vec::new(), Vec::new());
        let (mut waits, mut phases) = (Vec::new(), Vec::new());
        for _ in 0..f.repeats {
            if run_dir.exists() {
                std::fs::remove_dir_all(&run_dir)
                    .with_context(|| format!("cannot remove {}", run_dir.display()))?;
            }
            let before = bench()?;
            cmd::output(
                Command::new(&bin)
                    .arg("train")
                    .arg("--config")
                    .arg(&config)
                    .arg("--data")
                    .arg(&root)
                    .arg("--out")
                    .arg(&run_dir)
                    .args(["--epochs", &EPOCHS.to_string()])
                    .args(["--set", &format!("train.precision=\"{precision}\"")])
                    .args(["--set", &format!("train.channels_last={channels_last}")]),
                "resnext train",
            )?;
            let after = bench()?;
            let v = run_files::last_epoch(&run_dir, &["images_per_s", "data_wait_s"])?;
            let (ips, wait) = (v[0], v[1]);
            if run_files::train_images(&run_dir)? / 16 != steps {
                bail!("the run's split differs from `resnext data split`'s");
            }
            let b = (before + after) / 2.0;
            alone.push(b);
            epoch.push(ips);
            longer.push(b / ips - 1.0);
            waits.push(wait);
            phases.push((steps * 16) as f64 / ips);
        }
        println!(
            "| {setting} | {:.2} | {:.2} | {:+.1}% | {:.2} / {:.1} |",
            median(&alone),
            median(&epoch),
            100.0 * median(&longer),
            median(&waits),
            median(&phases)
        );
    }
    Ok(())
}
