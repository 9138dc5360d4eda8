//! Gradient accumulation (`train.accumulate`), stochastic weight averaging (`train.swa`), kept
//! epoch checkpoints and `resnext average`, and the training phase's quarter lines off a
//! terminal, on tiny models and synthetic data.

mod common;

use common::{ok, run, stderr};
use std::collections::HashMap;
use std::path::Path;

/// Every tensor of a safetensors file: (dtype, shape, raw bytes).
fn tensors(path: &Path) -> HashMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                (
                    format!("{:?}", v.dtype()),
                    v.shape().to_vec(),
                    v.data().to_vec(),
                ),
            )
        })
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The largest absolute difference between the float tensors two files share, BatchNorm's
/// statistics left out when `weights_only`.
fn max_diff(a: &Path, b: &Path, weights_only: bool) -> f32 {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(
        ta.keys().collect::<std::collections::BTreeSet<_>>(),
        tb.keys().collect::<std::collections::BTreeSet<_>>()
    );
    let mut worst = 0f32;
    for (name, (dtype, _, bytes)) in &ta {
        if dtype != "F32" || (weights_only && is_statistic(name)) {
            continue;
        }
        for (x, y) in f32s(bytes).iter().zip(f32s(&tb[name].2)) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

fn is_statistic(name: &str) -> bool {
    name.ends_with("running_mean")
        || name.ends_with("running_var")
        || name.ends_with("num_batches_tracked")
}

fn refused(args: &[&str], wanted: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(err.contains(wanted), "{args:?}: {err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn accumulation_steps_once_per_group_and_prints_training_quarters() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synth(dir.path(), 12);
    let cfg = common::tiny_config(dir.path(), &data, 2, "");
    let out = dir.path().join("acc");
    let o = run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--accumulate",
        "3",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // off a terminal the training phase prints quarter lines, with the true percentage
    let batches: usize = err
        .lines()
        .find_map(|l| l.strip_prefix("epoch 1: ")?.strip_suffix(" batches"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no batch count: {err}"));
    assert!(batches >= 4, "{batches} batches cannot show accumulation");
    assert!(
        err.contains(&format!("epoch 1: training: {batches}/{batches} (100%)")),
        "{err}"
    );
    assert!(err.contains("epoch 2: training: "), "{err}");
    let quarters = err
        .lines()
        .filter(|l| l.starts_with("epoch 1: training: "))
        .count();
    assert!((2..=4).contains(&quarters), "{err}");
    // the optimiser stepped ceil(batches / 3) times an epoch, the last step an epoch's rest
    let resume = tensors(&out.join("checkpoint.safetensors"));
    let step = i64::from_le_bytes(resume["optim.step"].2[..8].try_into().unwrap());
    assert_eq!(step as usize, 2 * batches.div_ceil(3), "{batches} batches");
    let resolved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(resolved.contains("accumulate = 3"), "{resolved}");
    for r in common::metrics_rows(&out) {
        let loss: f64 = r[1].parse().unwrap();
        assert!(loss.is_finite() && loss > 0.0);
    }
    refused(
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            dir.path().join("zero").to_str().unwrap(),
            "--accumulate",
            "0",
        ],
        "--accumulate 0",
    );
    // a run keeps its accumulation when resumed
    refused(
        &[
            "train",
            "--resume",
            out.to_str().unwrap(),
            "--accumulate",
            "2",
        ],
        "cannot be used with '--accumulate <N>'",
    );
}

#[test]
fn swa_resumes_like_an_uninterrupted_run_and_average_keeps_all_but_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = common::synth(d, 12);
    let extra = "accumulate = 2\nkeep_checkpoints = 2\nswa = { start_epoch = 2, lr = 0.0005 }";
    let cfg = common::tiny_config(d, &data, 3, extra);
    let straight = d.join("straight");
    let stdout_err = run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        straight.to_str().unwrap(),
    ]);
    assert!(stdout_err.status.success(), "{}", stderr(&stdout_err));
    assert!(
        stderr(&stdout_err).contains("swa: the average of 2 epochs' weights"),
        "{}",
        stderr(&stdout_err)
    );
    for f in [
        "swa.safetensors",
        "swa.json",
        "epoch-002.safetensors",
        "epoch-003.safetensors",
    ] {
        assert!(straight.join(f).is_file(), "missing {f}");
    }
    assert!(
        !straight.join("epoch-001.safetensors").exists(),
        "keep_checkpoints = 2 keeps the last two"
    );
    // the learning rate is SWA's from epoch 2 on
    let lrs: Vec<f64> = common::metrics_rows(&straight)
        .iter()
        .map(|r| r[5].parse().unwrap())
        .collect();
    assert_eq!(lrs, vec![0.001, 0.0005, 0.0005]);
    // killed after epoch 2 (a run of 2 epochs), resumed to 3: the same average
    let resumed = d.join("resumed");
    ok(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        resumed.to_str().unwrap(),
        "--epochs",
        "2",
    ]);
    ok(&[
        "train",
        "--resume",
        resumed.to_str().unwrap(),
        "--epochs",
        "3",
    ]);
    let swa = |r: &Path| r.join("swa.safetensors");
    let resumed_diff = max_diff(&swa(&straight), &swa(&resumed), false);
    assert!(resumed_diff < 1e-5, "resumed SWA differs by {resumed_diff}");
    // ...which is not just the last epoch's weights (a lost count would make it so)
    let from_last = max_diff(&swa(&straight), &straight.join("last.safetensors"), true);
    assert!(from_last > 1e-4, "the average equals the last weights");
    eprintln!("swa: resumed vs uninterrupted {resumed_diff:.3e}, average vs last {from_last:.3e}");
    // evaluated like best and last
    let ev = ok(&[
        "eval",
        "--run",
        straight.to_str().unwrap(),
        "--checkpoint",
        "swa",
    ]);
    assert!(ev.contains("confusion matrix"), "{ev}");

    // the average of one checkpoint twice: every weight bit-identical, statistics recomputed
    let e3 = straight.join("epoch-003.safetensors");
    let avg = ok(&[
        "average",
        straight.to_str().unwrap(),
        e3.to_str().unwrap(),
        e3.to_str().unwrap(),
    ]);
    assert!(avg.contains("the average of 2 checkpoints"), "{avg}");
    let (before, after) = (tensors(&e3), tensors(&straight.join("average.safetensors")));
    let mut stats_changed = 0;
    for (name, t) in &before {
        if is_statistic(name) {
            stats_changed += usize::from(after[name] != *t);
        } else {
            assert_eq!(after[name], *t, "{name} changed");
        }
    }
    assert!(stats_changed > 0, "the BatchNorm pass changed nothing");
    ok(&["average", straight.to_str().unwrap(), "--last", "2"]);
    let ev = ok(&[
        "eval",
        "--run",
        straight.to_str().unwrap(),
        "--checkpoint",
        "average",
    ]);
    assert!(ev.contains("confusion matrix"), "{ev}");

    // refusals, one line each
    let s = straight.to_str().unwrap();
    refused(&["average", s, "--last", "3"], "--last 3");
    refused(&["average", s, "--last", "0"], "--last must be at least 1");
    let c = cfg.to_str().unwrap();
    let o = d.join("refused");
    let o = o.to_str().unwrap();
    refused(
        &[
            "train",
            "--config",
            c,
            "--out",
            o,
            "--set",
            "train.swa={start_epoch=4,lr=0.1}",
        ],
        "start_epoch must be between 1 and train.epochs (3)",
    );
    refused(
        &[
            "train",
            "--config",
            c,
            "--out",
            o,
            "--set",
            "train.swa={start_epoch=2,lr=0.0}",
        ],
        "lr must be a finite number > 0",
    );
}
