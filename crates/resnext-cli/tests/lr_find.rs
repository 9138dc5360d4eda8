//! `resnext lr-find`: on the synthetic patterns, the suggested learning rate falls in the range
//! where training at a fixed rate lowers the loss best (measured here, by training at each
//! decade); the CSV is monotone in the rate; a sweep into rates that blow up stops early; run and
//! cross-validation directories are refused, and nothing is written into them.

mod common;

use common::{ok, run, stderr, synth, tiny_config};
use std::path::Path;

/// The tiny model (Adam) on 4 pattern classes of 60 images: 23 steps an epoch.
fn config(dir: &Path) -> std::path::PathBuf {
    let data = synth(dir, 60);
    tiny_config(dir, &data, 2, "")
}

/// `lr_find.csv`'s rows: (step, lr, loss, smoothed).
fn sweep_rows(out: &Path) -> Vec<(usize, f64, f64, f64)> {
    let text = std::fs::read_to_string(out.join("lr_find.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,lr,loss,smoothed"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

/// The suggestion `lr-find` printed.
fn suggested(stdout: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("suggested learning rate: "))
        .unwrap_or_else(|| panic!("no suggestion in {stdout}"));
    line["suggested learning rate: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_suggestion_falls_where_fixed_rates_train_best() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = cfg.to_str().unwrap();

    // the known good range: train 2 epochs at each decade; the good rates lower the last
    // epoch's loss below the start (ln 4) by at least a fifth of what the best rate does
    let rates = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
    let mut last_loss = Vec::new();
    for lr in rates {
        let out = dir.path().join(format!("fixed-{lr}"));
        let o = run(&[
            "train",
            "--config",
            c,
            "--out",
            out.to_str().unwrap(),
            "--set",
            &format!("optim.lr={lr}"),
        ]);
        // a rate that blows the loss up is not in the range
        let loss = if o.status.success() {
            let rows = common::metrics_rows(&out);
            rows.last().unwrap()[1].parse::<f64>().unwrap()
        } else {
            f64::INFINITY
        };
        last_loss.push(if loss.is_finite() {
            loss
        } else {
            f64::INFINITY
        });
    }
    let initial = (4f64).ln();
    let gain: Vec<f64> = last_loss.iter().map(|l| initial - l).collect();
    let best = gain.iter().copied().fold(f64::MIN, f64::max);
    assert!(best > 0.15, "no rate trains: {last_loss:?}");
    let good: Vec<f64> = rates
        .iter()
        .zip(&gain)
        .filter(|(_, g)| **g >= 0.2 * best)
        .map(|(r, _)| *r)
        .collect();
    // within half a decade of the good rates (the grid is one a decade)
    let (lo, hi) = (good[0] / 10f64.sqrt(), good[good.len() - 1] * 10f64.sqrt());

    let out = dir.path().join("sweep");
    let stdout = ok(&[
        "lr-find",
        "--config",
        c,
        "--out",
        out.to_str().unwrap(),
        "--start-lr",
        "1e-5",
        "--end-lr",
        "10",
        "--steps",
        "300",
    ]);
    let lr = suggested(&stdout);
    assert!(stdout.contains("(valley rule)"), "{stdout}");
    assert!(
        (lo..=hi).contains(&lr),
        "suggested {lr:e} outside {lo:e}..{hi:e}; fixed rates {rates:?} ended at losses {last_loss:?}"
    );
    let rows = sweep_rows(&out);
    assert!(rows.len() >= 20, "{}", rows.len());
    assert!(rows
        .windows(2)
        .all(|w| w[1].1 > w[0].1 && w[1].0 == w[0].0 + 1));
    assert!(rows.iter().all(|r| r.2.is_finite() && r.3.is_finite()));
    let png = std::fs::read(out.join("lr_find.png")).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert!(img.width() > 100 && img.height() > 100);

    let steepest = dir.path().join("steepest");
    let stdout = ok(&[
        "lr-find",
        "--config",
        c,
        "--out",
        steepest.to_str().unwrap(),
        "--start-lr",
        "1e-5",
        "--end-lr",
        "10",
        "--steps",
        "300",
        "--suggest",
        "steepest",
    ]);
    assert!(stdout.contains("(steepest rule)"), "{stdout}");
    let s = suggested(&stdout);
    assert!(
        (lo..=hi).contains(&s),
        "steepest {s:e} outside {lo:e}..{hi:e}; fixed rates {rates:?} ended at losses {last_loss:?}"
    );
}

#[test]
fn divergence_stops_the_sweep_early_and_run_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = cfg.to_str().unwrap();
    let out = dir.path().join("to-1e6");
    let o = run(&[
        "lr-find",
        "--config",
        c,
        "--out",
        out.to_str().unwrap(),
        "--start-lr",
        "1e-3",
        "--end-lr",
        "1e6",
        "--steps",
        "200",
    ]);
    let err = stderr(&o);
    let rows = sweep_rows(&out);
    assert!(rows.len() < 200, "{} rows; {err}", rows.len());
    assert!(err.contains("stopped at step"), "{err}");
    assert!(rows.last().unwrap().1 < 1e6);

    // a run directory, a folder inside one, a cross-validation directory: refused, untouched
    let run_dir = dir.path().join("run");
    ok(&[
        "train",
        "--config",
        c,
        "--out",
        run_dir.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    let before = std::fs::read_dir(&run_dir).unwrap().count();
    let cv = dir.path().join("cv");
    std::fs::create_dir(&cv).unwrap();
    std::fs::write(cv.join("folds.json"), b"{}").unwrap();
    // --epochs means nothing to a sweep of --steps: refused before anything is made
    let unused = dir.path().join("unused");
    let o = run(&[
        "lr-find",
        "--config",
        c,
        "--out",
        unused.to_str().unwrap(),
        "--epochs",
        "3",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--epochs 3") && err.contains("--steps"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!unused.exists());
    // so is an epoch count given through --set, and the help does not offer --epochs
    let o = run(&[
        "lr-find",
        "--config",
        c,
        "--out",
        unused.to_str().unwrap(),
        "--set",
        "train.epochs=3",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("train.epochs=3") && err.contains("--steps"),
        "{err}"
    );
    assert!(!unused.exists());
    let help = run(&["lr-find", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--steps") && !help.contains("--epochs"),
        "{help}"
    );
    for (target, says) in [
        (run_dir.clone(), "is a run directory"),
        (run_dir.join("sub"), "is a run directory"),
        (cv.clone(), "is a cross-validation directory"),
    ] {
        let o = run(&["lr-find", "--config", c, "--out", target.to_str().unwrap()]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(says), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!target.join("lr_find.csv").exists());
    }
    assert!(!run_dir.join("sub").exists());
    let after = std::fs::read_dir(&run_dir).unwrap().count();
    assert_eq!(before, after);
    // bad flags name themselves
    let o = run(&[
        "lr-find",
        "--config",
        c,
        "--out",
        "x",
        "--start-lr",
        "1",
        "--end-lr",
        "0.1",
    ]);
    assert!(stderr(&o).contains("--end-lr"), "{}", stderr(&o));
}
