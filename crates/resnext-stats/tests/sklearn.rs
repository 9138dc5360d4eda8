//! Live reference check: the same synthetic predictions (several seeds, tied scores, binary and
//! multi-class) go to resnext-stats and to scikit-learn, statsmodels and a numpy port of Sun &
//! Xu's fast DeLong (`scripts/sklearn_reference.py`, run with the setup venv's Python), and every
//! point estimate must agree to 1e-9 (DeLong's standard error, z and p to 1e-6). Skipped, counted,
//! when the venv or its scikit-learn/statsmodels is absent (`cargo xtask setup` installs them).

mod common;
use common::Lcg;
use resnext_stats::{
    calibration, delong, pauc_min_tpr, summary, BootstrapOptions, Interval, Summary, SummaryOptions,
};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TOL: f64 = 1e-9;
const DELONG_TOL: f64 = 1e-6;

/// The setup venv's Python with the reference packages (`LIBTORCH`, which `.cargo/config.toml`
/// sets for every crate, is the venv's torch), or None with a counted skip.
fn reference_python() -> Option<PathBuf> {
    let lib = option_env!("LIBTORCH").map_or(String::new(), |l| format!("{l}/lib"));
    resnext_testkit::venv_python(
        &lib,
        "sklearn, statsmodels, scipy, numpy",
        "needs the setup venv's Python with scikit-learn and statsmodels (cargo xtask setup installs them)",
    )
}

/// The script's answers to `cases`, one per case.
fn reference(python: &Path, cases: &Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sklearn_reference.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answers.len(), cases.as_array().unwrap().len());
    answers
}

/// Probabilities in hundredths (so that scores tie), every row summing to 1 exactly as an
/// integer count of hundredths; a label-dependent signal so that the AUCs are not 0.5.
fn case(seed: u64, n: usize, classes: usize) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut rng = Lcg(seed);
    let labels: Vec<usize> = (0..n)
        .map(|i| {
            if i < classes {
                i // every class present
            } else {
                ((rng.uniform() * classes as f64) as usize).min(classes - 1)
            }
        })
        .collect();
    let probs = labels
        .iter()
        .map(|&y| {
            let w: Vec<f64> = (0..classes)
                .map(|c| (0.9 * rng.normal() + if c == y { 1.0 } else { 0.0 }).exp())
                .collect();
            let total: f64 = w.iter().sum();
            let mut hundredths: Vec<u32> = w
                .iter()
                .map(|x| ((x / total * 100.0).round() as u32).clamp(1, 98))
                .collect();
            // the largest absorbs the rounding, keeping every share in 1..=99
            let sum: u32 = hundredths.iter().sum();
            let top = (0..classes).max_by_key(|&c| hundredths[c]).unwrap_or(0);
            hundredths[top] = hundredths[top] + 100 - sum;
            hundredths.iter().map(|&h| f64::from(h) / 100.0).collect()
        })
        .collect();
    (probs, labels)
}

/// A second model's binary rows, correlated with the first's scores (for DeLong).
fn second_model(probs: &[Vec<f64>], labels: &[usize], seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Lcg(seed);
    probs
        .iter()
        .zip(labels)
        .map(|(p, &y)| {
            let s = (0.5 * p[1] + 0.5 * (0.45 + 0.15 * y as f64 + 0.2 * rng.normal()))
                .clamp(0.01, 0.99);
            let s = (s * 100.0).round() / 100.0;
            vec![1.0 - s, s]
        })
        .collect()
}

fn close(what: &str, got: Option<f64>, want: &Value, tol: f64) {
    match (got, want.as_f64()) {
        (Some(g), Some(w)) => assert!(
            (g - w).abs() <= tol,
            "{what}: ours {g}, reference {w} (difference {:e})",
            (g - w).abs()
        ),
        (None, None) => {}
        (g, _) => panic!("{what}: ours {g:?}, reference {want}"),
    }
}

fn estimate(i: &Option<Interval>) -> Option<f64> {
    i.map(|i| i.estimate)
}

fn ours(probs: &[Vec<f64>], labels: &[usize], positive: usize, threshold: f64) -> Summary {
    let options = SummaryOptions {
        // the estimates are on the whole set; one resample keeps it quick
        bootstrap: BootstrapOptions {
            n_resamples: 1,
            seed: 0,
            level: 0.95,
        },
        positive,
        threshold,
    };
    summary(probs, labels, None, &options).unwrap()
}

fn compare_headline(label: &str, s: &Summary, r: &Value) {
    let m = &s.metrics;
    for (name, got) in [
        ("accuracy", &m.accuracy),
        ("balanced_accuracy", &m.balanced_accuracy),
        ("sensitivity", &m.sensitivity),
        ("specificity", &m.specificity),
        ("ppv", &m.ppv),
        ("npv", &m.npv),
        ("f1", &m.f1),
        ("roc_auc", &m.roc_auc),
        ("pr_auc", &m.pr_auc),
        ("ece", &m.ece),
    ] {
        close(&format!("{label} {name}"), estimate(got), &r[name], TOL);
    }
}

fn compare_calibration(label: &str, probs: &[Vec<f64>], labels: &[usize], s: &Summary, r: &Value) {
    let want = r["calibration"].as_array().unwrap();
    assert_eq!(want.len(), s.calibration.len(), "{label}");
    for (c, w) in s.calibration.iter().zip(want) {
        assert_eq!(w["class"], json!(c.class));
        close(
            &format!("{label} calibration intercept {}", c.class),
            estimate(&c.intercept),
            &w["intercept"],
            TOL,
        );
        close(
            &format!("{label} calibration slope {}", c.class),
            estimate(&c.slope),
            &w["slope"],
            TOL,
        );
        // the fit alone, outside the summary, too
        let alone = calibration(probs, labels, c.class).unwrap();
        close(
            &format!("{label} calibration() intercept"),
            Some(alone.intercept),
            &w["intercept"],
            TOL,
        );
        close(
            &format!("{label} calibration() slope"),
            Some(alone.slope),
            &w["slope"],
            TOL,
        );
    }
}

#[test]
fn point_estimates_equal_scikit_learns() {
    let Some(python) = reference_python() else {
        return;
    };
    // binary: several seeds, sizes, positive classes, thresholds (0.5, and one at a tied score),
    // minimum sensitivities of the partial AUC; a second model for DeLong
    let mut cases = Vec::new();
    let mut ours_binary = Vec::new();
    for (k, &(seed, n, positive, threshold, min_tpr)) in [
        (1u64, 40usize, 1usize, 0.5, 0.8),
        (2, 120, 1, 0.37, 0.5),
        (3, 300, 0, 0.5, 0.9),
        (4, 75, 1, 0.62, 0.0),
        (5, 500, 1, 0.2, 0.8),
        (6, 60, 0, 0.71, 0.95),
    ]
    .iter()
    .enumerate()
    {
        let (probs, labels) = case(seed, n, 2);
        let b = second_model(&probs, &labels, 100 + seed);
        cases.push(json!({
            "probs": probs, "labels": labels, "positive": positive, "threshold": threshold,
            "min_tpr": min_tpr, "b": b,
        }));
        ours_binary.push((k, probs, labels, b, positive, threshold, min_tpr));
    }
    // multi-class: 3, 4 and 6 classes
    let mut ours_multi = Vec::new();
    for &(seed, n, classes) in &[
        (11u64, 90usize, 3usize),
        (12, 200, 4),
        (13, 400, 6),
        (14, 150, 3),
    ] {
        let (probs, labels) = case(seed, n, classes);
        cases.push(json!({"probs": probs, "labels": labels}));
        ours_multi.push((seed, probs, labels));
    }
    let answers = reference(&python, &Value::Array(cases));

    let mut ties = 0;
    for (k, probs, labels, b, positive, threshold, min_tpr) in &ours_binary {
        let r = &answers[*k];
        let label = format!("binary case {k}");
        let mut scores: Vec<f64> = probs.iter().map(|p| p[*positive]).collect();
        scores.sort_by(f64::total_cmp);
        ties += scores.windows(2).filter(|w| w[0] == w[1]).count();
        let s = ours(probs, labels, *positive, *threshold);
        assert!(s.per_class.is_empty());
        compare_headline(&label, &s, r);
        compare_calibration(&label, probs, labels, &s, r);
        // the project's partial AUC is the ISIC 2024 metric: equal to the challenge's code and
        // to scikit-learn's McClish-standardised max_fpr area turned back into a raw area
        let pauc = pauc_min_tpr(probs, labels, *positive, *min_tpr).unwrap();
        close(
            &format!("{label} pAUC (ISIC)"),
            Some(pauc),
            &r["pauc_isic"],
            TOL,
        );
        close(
            &format!("{label} pAUC (McClish inverted)"),
            Some(pauc),
            &r["pauc_mcclish_inverted"],
            TOL,
        );
        let d = delong(probs, b, labels, *positive).unwrap();
        let want = &r["delong"];
        for (name, got) in [
            ("auc_a", d.auc_a),
            ("auc_b", d.auc_b),
            ("se", d.se),
            ("z", d.z),
            ("p_value", d.p_value),
        ] {
            close(
                &format!("{label} DeLong {name}"),
                Some(got),
                &want[name],
                DELONG_TOL,
            );
        }
        assert!(d.difference.abs() > 1e-3, "{label}: the two models differ");
    }
    assert!(ties > 100, "the scores tie ({ties} tied neighbours)");

    for (k, (seed, probs, labels)) in ours_multi.iter().enumerate() {
        let r = &answers[ours_binary.len() + k];
        let label = format!("multi-class seed {seed}");
        let s = ours(probs, labels, 1, 0.5);
        compare_headline(&label, &s, r);
        let want = r["per_class"].as_array().unwrap();
        assert_eq!(want.len(), s.per_class.len());
        for (c, w) in s.per_class.iter().zip(want) {
            assert_eq!(w["class"], json!(c.class));
            for (name, got) in [
                ("sensitivity", &c.sensitivity),
                ("specificity", &c.specificity),
                ("ppv", &c.ppv),
                ("npv", &c.npv),
                ("f1", &c.f1),
                ("roc_auc", &c.roc_auc),
                ("pr_auc", &c.pr_auc),
            ] {
                close(
                    &format!("{label} class {} {name}", c.class),
                    estimate(got),
                    &w[name],
                    TOL,
                );
            }
        }
        compare_calibration(&label, probs, labels, &s, r);
    }
}

#[test]
fn the_comparison_can_fail() {
    // the check is not vacuous: a prediction changed on one image moves the reference away
    let Some(python) = reference_python() else {
        return;
    };
    let (probs, labels) = case(21, 80, 2);
    let mut flipped = labels.clone();
    flipped[7] = 1 - flipped[7];
    let r = reference(
        &python,
        &json!([{"probs": probs, "labels": flipped, "positive": 1, "threshold": 0.5,
                 "min_tpr": 0.8, "b": null}]),
    );
    let s = ours(&probs, &labels, 1, 0.5);
    let got = estimate(&s.metrics.roc_auc).unwrap();
    let want = r[0]["roc_auc"].as_f64().unwrap();
    assert!((got - want).abs() > TOL, "{got} vs {want}");
    assert!(r[0].get("delong").is_none());
}
