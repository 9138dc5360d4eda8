//! The summary: its estimates are the standalone functions' values, it is deterministic, it
//! round-trips through JSON, and doubling every image of every patient changes no interval.

mod common;
use common::{binary, close, Lcg};
use resnext_stats::{
    calibration, confusion, ece, macro_metrics, pr_auc, roc_auc, summary, BootstrapOptions, Groups,
    Interval, Mode, StatsError, Summary, SummaryOptions,
};
use serde_json::Value;

fn options(n_resamples: usize) -> SummaryOptions {
    SummaryOptions {
        bootstrap: BootstrapOptions {
            n_resamples,
            seed: 11,
            level: 0.95,
        },
        ..SummaryOptions::default()
    }
}

/// 90 images of 30 patients (3 each), binary, noisy scores.
fn binary_set() -> (Vec<Vec<f64>>, Vec<usize>, Vec<String>) {
    let mut rng = Lcg(5);
    let labels: Vec<usize> = (0..90).map(|_| usize::from(rng.uniform() < 0.4)).collect();
    let scores: Vec<f64> = labels
        .iter()
        .map(|&l| (0.3 + 0.3 * l as f64 + 0.25 * rng.normal()).clamp(0.01, 0.99))
        .collect();
    let patients = (0..90).map(|i| format!("p{}", i / 3)).collect();
    (binary(&scores), labels, patients)
}

/// 120 images of 3 classes, one image per patient.
fn multiclass_set() -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut rng = Lcg(8);
    let labels: Vec<usize> = (0..120).map(|i| i % 3).collect();
    let probs = labels
        .iter()
        .map(|&l| {
            let z: Vec<f64> = (0..3)
                .map(|c| if c == l { 1.0 } else { 0.0 } + rng.normal())
                .collect();
            let total: f64 = z.iter().map(|v| v.exp()).sum();
            z.iter().map(|v| v.exp() / total).collect()
        })
        .collect();
    (probs, labels)
}

fn estimate(i: Option<Interval>) -> f64 {
    i.expect("defined").estimate
}

#[test]
fn binary_estimates_are_the_standalone_values() {
    let (p, y, patients) = binary_set();
    let g = Groups::new(&patients).unwrap();
    let s = summary(&p, &y, Some(&g), &options(300)).unwrap();
    assert_eq!((s.images, s.groups, s.classes), (90, 30, 2));
    assert_eq!(
        s.mode,
        Mode::Binary {
            positive: 1,
            threshold: 0.5
        }
    );
    let m = confusion(&p, &y, 1, 0.5).unwrap().metrics();
    assert_eq!(estimate(s.metrics.sensitivity), m.sensitivity.unwrap());
    assert_eq!(estimate(s.metrics.specificity), m.specificity.unwrap());
    assert_eq!(estimate(s.metrics.ppv), m.ppv.unwrap());
    assert_eq!(estimate(s.metrics.npv), m.npv.unwrap());
    assert_eq!(estimate(s.metrics.f1), m.f1.unwrap());
    assert_eq!(estimate(s.metrics.accuracy), m.accuracy.unwrap());
    assert_eq!(
        estimate(s.metrics.balanced_accuracy),
        m.balanced_accuracy.unwrap()
    );
    assert_eq!(estimate(s.metrics.roc_auc), roc_auc(&p, &y, 1).unwrap());
    assert_eq!(estimate(s.metrics.pr_auc), pr_auc(&p, &y, 1).unwrap());
    assert_eq!(estimate(s.metrics.ece), ece(&p, &y).unwrap());
    assert!(s.per_class.is_empty());
    let c = calibration(&p, &y, 1).unwrap();
    assert_eq!(s.calibration.len(), 1);
    // the summary's fits start from the whole set's: the same maximum to within 1e-10
    close(estimate(s.calibration[0].intercept), c.intercept, 1e-9);
    close(estimate(s.calibration[0].slope), c.slope, 1e-9);
    for i in [
        s.metrics.accuracy,
        s.metrics.sensitivity,
        s.metrics.specificity,
        s.metrics.roc_auc,
    ] {
        let i = i.unwrap();
        assert!(i.low <= i.estimate && i.estimate <= i.high, "{i:?}");
        assert_eq!(i.resamples_used, 300);
    }
}

#[test]
fn multiclass_gives_macro_and_per_class() {
    let (p, y) = multiclass_set();
    let s = summary(&p, &y, None, &options(200)).unwrap();
    assert_eq!(
        (s.groups, s.mode, s.class_counts.clone()),
        (120, Mode::Multiclass, vec![40; 3])
    );
    let m = macro_metrics(&p, &y).unwrap();
    assert_eq!(estimate(s.metrics.accuracy), m.accuracy.unwrap());
    assert_eq!(
        estimate(s.metrics.balanced_accuracy),
        m.balanced_accuracy.unwrap()
    );
    assert_eq!(estimate(s.metrics.f1), m.f1.unwrap());
    assert_eq!(estimate(s.metrics.roc_auc), m.roc_auc.unwrap());
    assert_eq!(estimate(s.metrics.pr_auc), m.pr_auc.unwrap());
    assert_eq!(estimate(s.metrics.ece), m.ece.unwrap());
    assert_eq!(s.per_class.len(), 3);
    assert_eq!(s.calibration.len(), 3);
    for c in 0..3 {
        assert_eq!(s.per_class[c].class, c);
        assert_eq!(
            estimate(s.per_class[c].roc_auc),
            roc_auc(&p, &y, c).unwrap()
        );
        close(
            estimate(s.calibration[c].slope),
            calibration(&p, &y, c).unwrap().slope,
            1e-9,
        );
    }
}

#[test]
fn the_same_options_give_the_same_summary_and_json_round_trips() {
    let (p, y, patients) = binary_set();
    let g = Groups::new(&patients).unwrap();
    let a = summary(&p, &y, Some(&g), &options(200)).unwrap();
    let b = summary(&p, &y, Some(&g), &options(200)).unwrap();
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).unwrap();
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["mode"]["kind"], "binary");
    assert!(v["metrics"]["roc_auc"]["low"].is_f64());
}

/// Every number of `a` equals `b`'s within `tol`, the image counts apart.
fn same_numbers(a: &Value, b: &Value, tol: f64, path: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if !["images", "class_counts"].contains(&k.as_str()) {
                    same_numbers(v, &y[k], tol, &format!("{path}.{k}"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                same_numbers(v, w, tol, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tol, "{path}: {x} vs {y}");
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

#[test]
fn doubling_every_image_of_every_patient_changes_no_interval() {
    for (p, y) in [
        {
            let (p, y, _) = binary_set();
            (p, y)
        },
        multiclass_set(),
    ] {
        let n = y.len();
        let p2: Vec<Vec<f64>> = p.iter().flat_map(|r| [r.clone(), r.clone()]).collect();
        let y2: Vec<usize> = y.iter().flat_map(|&l| [l, l]).collect();
        let g2 = Groups::new(&(0..2 * n).map(|i| i / 2).collect::<Vec<_>>()).unwrap();
        let once = summary(&p, &y, None, &options(200)).unwrap();
        let twice = summary(&p2, &y2, Some(&g2), &options(200)).unwrap();
        same_numbers(
            &serde_json::to_value(&once).unwrap(),
            &serde_json::to_value(&twice).unwrap(),
            1e-9,
            "summary",
        );
    }
}

#[test]
fn refusals() {
    let (p, y, _) = binary_set();
    let wrong = Groups::singletons(10).unwrap();
    assert_eq!(
        summary(&p, &y, Some(&wrong), &options(10))
            .unwrap_err()
            .to_string(),
        "groups has 10 entries for 90 images"
    );
    let mut o = options(10);
    o.positive = 2;
    assert!(matches!(
        summary(&p, &y, None, &o),
        Err(StatsError::BadPositive { .. })
    ));
    o.positive = 1;
    o.threshold = f64::NAN;
    assert!(matches!(
        summary(&p, &y, None, &o),
        Err(StatsError::Invalid(_))
    ));
    assert_eq!(
        summary(&[], &[], None, &options(10)),
        Err(StatsError::Empty)
    );
}

#[test]
fn an_undefined_metric_is_null() {
    // nothing reaches the threshold: PPV undefined on the whole set
    let (p, y, _) = binary_set();
    let mut o = options(50);
    o.threshold = 1.0;
    let s = summary(&p, &y, None, &o).unwrap();
    assert_eq!(s.metrics.ppv, None);
    assert_eq!(s.metrics.sensitivity.unwrap().estimate, 0.0);
    let v = serde_json::to_value(&s).unwrap();
    assert!(v["metrics"]["ppv"].is_null());
}
