//! `cargo xtask demo`: offline end to end. Draws a synthetic four-class dataset into `data/demo`,
//! trains `configs/demo.toml` into `runs/demo` and says where the results are.

use crate::launch;
use crate::{cmd, setup};
use anyhow::{Context, Result};

pub fn run() -> Result<()> {
    setup::run(&Default::default())?;
    // the dev build: minutes shorter on a fresh machine, as fast for this small training
    let bin = launch::build_cli_dev()?;
    let root = cmd::root();
    if !root.join("data/demo").is_dir() {
        let synth = ["--out", "data/demo", "--per-class", "150", "--size", "64"];
        cmd::resnext(&bin, "data synth", synth)?;
    }
    let run = root.join("runs/demo");
    if run.exists() {
        eprintln!("demo: replacing the previous demo run in {}", run.display());
        std::fs::remove_dir_all(&run)
            .with_context(|| format!("cannot remove {}", run.display()))?;
    }
    let start = std::time::Instant::now();
    let demo = ["--config", "configs/demo.toml", "--out", "runs/demo"];
    cmd::resnext(&bin, "train", demo)?;
    println!(
        "demo finished in {:.0} s. Results in {}: metrics.csv, curves.png, confusion_matrix.png, eval.json, best.safetensors.\n\
         Try: {} predict --run runs/demo data/demo/rings --top-k 2",
        start.elapsed().as_secs_f64(),
        run.display(),
        bin.strip_prefix(cmd::root()).unwrap_or(&bin).display()
    );
    Ok(())
}
