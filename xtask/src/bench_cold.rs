//! `cargo xtask bench-cold [--repeats N]`: cold start, a new process predicting one photo with
//! ResNeXt-50: `resnext predict --weights W --arch resnext50_32x4d --num-classes 2 --json PHOTO`
//! against the equivalent Python script (`scripts/cold_python.py`: start Python, import torch and
//! torchvision, load the state dict, preprocess, forward). Both use the same random torchvision
//! weights (made once into the target directory) and the same photo. Rounds of resnext, Python,
//! Python, resnext; medians of the wall times and of the per-round ratios.

use crate::flags::BenchCold;
use crate::launch;
use crate::stats::{median, range};
use crate::{cmd, setup};
use anyhow::{Context, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Random torchvision ResNeXt-50 weights with 2 classes (made once, by torchvision, into the
/// target directory): a model to time, not to trust.
pub fn random_resnext50(python: &Path) -> Result<PathBuf> {
    let work = cmd::target_dir()?.join("bench-cold");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let weights = work.join("resnext50_32x4d-random.safetensors");
    if !weights.exists() {
        let mut c = Command::new(python);
        c.arg(cmd::root().join("scripts/cold_python.py"))
            .arg("--make-weights")
            .arg(&weights);
        cmd::run(c, "cold_python.py --make-weights")?;
    }
    Ok(weights)
}

pub fn run(f: &BenchCold) -> Result<()> {
    let repeats = f.repeats;
    setup::run(&Default::default())?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0", "safetensors"])?;
    let bin = launch::build_cli_release()?;
    let work = cmd::target_dir()?.join("bench-cold");
    let script = cmd::root().join("scripts/cold_python.py");
    let weights = random_resnext50(&python)?;
    let photos = work.join("photos");
    if !photos.exists() {
        let synth = ["--per-class", "1", "--size", "224", "--out"].map(OsStr::new);
        cmd::resnext(
            &bin,
            "data synth",
            synth.into_iter().chain([photos.as_os_str()]),
        )?;
    }
    let photo = photos.join("dots/dots_0000.png");
    let mut ours = Command::new(&bin);
    ours.args([
        "predict",
        "--arch",
        "resnext50_32x4d",
        "--num-classes",
        "2",
        "--json",
        "--weights",
    ])
    .arg(&weights)
    .arg(&photo);
    let mut theirs = Command::new(&python);
    theirs
        .arg(&script)
        .arg("--weights")
        .arg(&weights)
        .arg("--photo")
        .arg(&photo);
    let time = |c: &mut Command, what: &str| -> Result<f64> {
        let start = Instant::now();
        cmd::output(c, what)?;
        Ok(start.elapsed().as_secs_f64())
    };
    // one untimed run each: the page cache holds the libraries and the weights for both
    time(&mut ours, "resnext predict")?;
    time(&mut theirs, "cold_python.py")?;
    let (mut t_ours, mut t_theirs, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        let a = time(&mut ours, "resnext predict")?;
        let b = time(&mut theirs, "cold_python.py")?;
        let c = time(&mut theirs, "cold_python.py")?;
        let d = time(&mut ours, "resnext predict")?;
        t_ours.push((a + d) / 2.0);
        t_theirs.push((b + c) / 2.0);
        ratio.push((a + d) / (b + c));
    }
    let (lo, hi) = range(&ratio);
    println!("| cold start, one photo | Python s | resnext s | resnext / Python (range) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| ResNeXt-50, {repeats} rounds | {:.2} | {:.2} | {:.2} ({lo:.2}–{hi:.2}) |",
        median(&t_theirs),
        median(&t_ours),
        median(&ratio)
    );
    Ok(())
}
