//! `cargo xtask bench-floor [--steps N] [--repeats N] [--arch A] [--batch N] [--precision P]`:
//! where a training step's time goes, against the machine's physical limit. It measures the GEMM
//! peak (`scripts/gemm_peak.py`, before and after), then trains the network and three diagnostic
//! copies of it (`resnext bench train --ablate ...`: without BatchNorm, without ReLU, without
//! both) in rounds ordered A B C D D C B A, and prints each one's throughput as a share of the
//! limit `peak / (6 × forward mult-adds)` (forward once, backward twice, 2 FLOP a multiply-add).
//! The network without BatchNorm and ReLU is not a ResNeXt: it is what the convolutions, the
//! additions, pooling, the loss and Adam cost alone, the ceiling of any BatchNorm or ReLU kernel.

use crate::bench::{field, resnext_bench};
use crate::flags::{self, BenchFloor};
use crate::launch;
use crate::stats::{median, range};
use crate::{cmd, setup};
use anyhow::Result;
use std::process::Command;

/// The diagnostic variants, in the order of a half round.
const VARIANTS: [(&str, &str); 4] = [
    ("none", "the network"),
    ("batchnorm", "without BatchNorm"),
    ("relu", "without ReLU"),
    ("batchnorm,relu", "without BatchNorm and ReLU"),
];

/// The limit in training images per second: `peak_gflops` GFLOP/s over 6 × `mult_adds` FLOP.
pub(crate) fn limit_img_s(peak_gflops: f64, mult_adds: f64) -> f64 {
    peak_gflops * 1e9 / (6.0 * mult_adds)
}

pub fn run(f: &BenchFloor) -> Result<()> {
    let (steps, repeats, batch, arch) = (f.steps, f.repeats, f.batch, &f.arch);
    let precision = flags::name(f.precision);
    setup::run(&Default::default())?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let bin = launch::build_cli_release()?;
    let gemm = cmd::root().join("scripts/gemm_peak.py");
    let peak_line = format!("{precision} GEMM peak: ");
    let gemm_peak = || -> Result<f64> {
        let out = Command::new(&python).arg(&gemm).arg(&precision).output()?;
        field(&out, &peak_line, " GFLOP/s", "gemm_peak.py")
    };
    let peak_before = gemm_peak()?;

    let (b, n) = (batch.to_string(), steps.to_string());
    let mut args = vec![
        "train",
        "--arch",
        arch,
        "--batch",
        &b,
        "--precision",
        &precision,
    ];
    args.extend(["--channels-last", "--steps", &n, "--ablate"]);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut mult_adds = 0f64;
    for _ in 0..repeats {
        let order = (0..VARIANTS.len()).chain((0..VARIANTS.len()).rev());
        let mut sums = vec![0f64; VARIANTS.len()];
        for i in order {
            let r = resnext_bench(&bin, &[&args[..], &[VARIANTS[i].0]].concat())?;
            sums[i] += r.images_per_second;
            mult_adds = r.forward_mult_adds;
        }
        for (t, s) in times.iter_mut().zip(sums) {
            t.push(s / 2.0);
        }
    }
    let peak = peak_before.max(gemm_peak()?);
    let limit = limit_img_s(peak, mult_adds);
    println!(
        "{precision} GEMM peak {peak:.0} GFLOP/s (best of the runs before and after: {peak_before:.0} first); \
         {arch} {:.3} G forward mult-adds per image, {:.1} GFLOP per training image; \
         limit {limit:.2} img/s",
        mult_adds / 1e9,
        6.0 * mult_adds / 1e9
    );
    println!("| {precision} channels_last, batch {batch} | img/s (range) | ms per step | share of the limit |");
    println!("| --- | --- | --- | --- |");
    for ((_, name), t) in VARIANTS.iter().zip(&times) {
        let v = median(t);
        let (lo, hi) = range(t);
        println!(
            "| {name} | {v:.2} ({lo:.2}–{hi:.2}) | {:.0} | {:.1}% |",
            batch as f64 / v * 1e3,
            100.0 * v / limit
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn limit_of_the_issue_machine() {
        // 430 GFLOP/s and ResNeXt-50's 4.228 G multiply-adds: about 16.9 training images/s.
        let l = super::limit_img_s(430.0, 4.228e9);
        assert!((l - 16.95).abs() < 0.01, "{l}");
    }
}
