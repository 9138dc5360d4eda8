//! `resnext data check|split|stats|bench`.

use crate::args::{BenchTransform, DataCommand};
use crate::progress::Bars;
use anyhow::{bail, Result};
use resnext_data::check::check_with;
use resnext_data::scan::scan;
use resnext_data::split::SplitConfig;
use resnext_data::stats::channel_stats_with;
use resnext_data::{DecodeLimits, Loader, LoaderConfig, Transform, TransformConfig};
use resnext_train::Progress as _;
use std::process::ExitCode;
use std::time::Instant;

pub fn run(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Check { root, json } => {
            let bars = Bars::new();
            let report = check_with(
                &root,
                DecodeLimits::default(),
                &|n| bars.begin("checking", n),
                &|n| bars.advance(n),
            )?;
            bars.end();
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{:<32} {:>8}", "class", "images");
                for c in &report.classes {
                    println!("{:<32} {:>8}", c.name, c.count);
                }
                for i in &report.ignored {
                    println!("ignored (not an image): {}", i.display());
                }
                for (p, kind) in &report.skipped {
                    println!("skipped (not a regular file: {kind}): {}", p.display());
                }
                for b in &report.bad {
                    println!("bad: {}: {}", b.path, b.reason);
                }
                println!("{} bad file(s)", report.bad.len());
            }
            Ok(if report.bad.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        DataCommand::Split {
            root,
            val,
            test,
            seed,
            group_regex,
            out,
        } => {
            if resnext_data::safe_path::is_inside(&out, &root) {
                bail!(
                    "--out {} is inside the data root {}; write the split elsewhere",
                    out.display(),
                    root.display()
                );
            }
            resnext_train::owned::refuse_owned(&out, "--out")?;
            let folder = scan(&root)?;
            let split = SplitConfig {
                val,
                test,
                seed,
                group_regex,
            }
            .split(&folder)?;
            split.save(&out)?;
            println!(
                "train {} / val {} / test {} images of {} classes -> {}",
                split.train.len(),
                split.val.len(),
                split.test.len(),
                split.classes.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Stats { root, json } => {
            let folder = scan(&root)?;
            let paths: Vec<_> = folder.samples.iter().map(|s| folder.abs_path(s)).collect();
            let bars = Bars::started("measuring", paths.len());
            let stats = channel_stats_with(&paths, DecodeLimits::default(), &|n| bars.advance(n))?;
            bars.end();
            if json {
                println!("{}", serde_json::to_string(&stats)?);
            } else {
                println!("images: {}", stats.images);
                println!(
                    "mean = [{:.4}, {:.4}, {:.4}]",
                    stats.mean[0], stats.mean[1], stats.mean[2]
                );
                println!(
                    "std = [{:.4}, {:.4}, {:.4}]",
                    stats.std[0], stats.std[1], stats.std[2]
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Synth {
            out,
            per_class,
            size,
            seed,
            force,
        } => {
            if !(1..=100_000).contains(&per_class) || !(16..=1024).contains(&size) {
                bail!("--per-class must be between 1 and 100000 and --size between 16 and 1024");
            }
            let non_empty = std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some());
            if non_empty && !force {
                bail!(
                    "{} is not empty; choose a new folder or add --force to write into it",
                    out.display()
                );
            }
            if out.exists() && !out.is_dir() {
                bail!("{} exists and is not a folder", out.display());
            }
            let n = resnext_data::synth::write_dataset(&out, per_class, size, seed)?;
            println!(
                "wrote {n} images of {} classes to {}",
                resnext_data::synth::CLASSES.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Bench {
            root,
            transform,
            threads,
            epochs,
            batch_size,
            image_size,
            json,
        } => {
            let (tc, transform) = match transform {
                BenchTransform::Eval => (TransformConfig::resize_exact(image_size), "eval"),
                BenchTransform::Train => (TransformConfig::rrc_flip(image_size), "train"),
            };
            if epochs == 0 || batch_size == 0 {
                bail!("--epochs and --batch-size must be at least 1");
            }
            let folder = scan(&root)?;
            let mut cfg = LoaderConfig::new(batch_size, folder.classes.len());
            cfg.shuffle = true;
            cfg.threads = threads;
            let loader = Loader::new(&folder.root, &folder.samples, Transform::new(tc)?, cfg)?;
            let cpu_start = process_cpu_seconds();
            let start = Instant::now();
            let mut images = 0usize;
            let mut checksum = 0f64;
            let bars = Bars::started("decoding", folder.samples.len() * epochs);
            for batch in loader.epochs(0, epochs as u64) {
                let batch = batch?;
                images += batch.len();
                bars.advance(batch.len());
                if let Some(a) = batch.f32() {
                    checksum += a[[0, 0, 0, 0]] as f64;
                }
            }
            bars.end();
            let secs = start.elapsed().as_secs_f64();
            let cpu = process_cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
            let threads_used = loader.threads();
            if json {
                let report = serde_json::json!({
                    "images": images,
                    "seconds": secs,
                    "threads": threads_used,
                    "transform": transform,
                    "checksum": checksum,
                    "cpu_seconds": cpu,
                    "cores_busy": cpu.map(|c| c / secs),
                    "cpu_ms_per_image": cpu.map(|c| 1e3 * c / images.max(1) as f64),
                    "images_per_second": images as f64 / secs,
                });
                println!("{report}");
                return Ok(ExitCode::SUCCESS);
            }
            println!("images: {images} in {secs:.3} s ({threads_used} threads, transform {transform}, checksum {checksum:.3})");
            if let Some(cpu) = cpu {
                // whether the workers were kept busy: CPU seconds over wall seconds
                println!(
                    "cpu: {cpu:.2} s, {:.2} cores busy, {:.2} ms of CPU per image",
                    cpu / secs,
                    1e3 * cpu / images.max(1) as f64
                );
            }
            println!("throughput: {:.1} img/s", images as f64 / secs);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, in clock ticks of
/// 1/100 s), or None elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the command name, which is in parentheses and may hold spaces
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
