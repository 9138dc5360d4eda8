//! Top-1, balanced accuracy, ECE and macro averages against scikit-learn (and numpy for
//! specificity, NPV and ECE), tests/reference.py.

mod common;
use common::close;
use resnext_stats::{ece, macro_metrics, StatsError};

// reference.py, "multi-class"
const LABELS: [usize; 24] = [
    1, 2, 2, 2, 1, 1, 2, 2, 1, 1, 2, 1, 2, 1, 2, 0, 2, 2, 1, 1, 1, 0, 2, 0,
];
const PROBS: [[f64; 3]; 24] = [
    [0.232, 0.149, 0.619],
    [0.456, 0.022, 0.522],
    [0.43, 0.292, 0.278],
    [0.013, 0.504, 0.483],
    [0.472, 0.474, 0.054],
    [0.501, 0.221, 0.278],
    [0.385, 0.165, 0.45],
    [0.051, 0.218, 0.731],
    [0.19, 0.788, 0.022],
    [0.319, 0.489, 0.192],
    [0.069, 0.004, 0.927],
    [0.118, 0.214, 0.668],
    [0.377, 0.18, 0.443],
    [0.345, 0.567, 0.088],
    [0.101, 0.074, 0.825],
    [0.454, 0.492, 0.054],
    [0.428, 0.119, 0.453],
    [0.367, 0.148, 0.485],
    [0.627, 0.33, 0.043],
    [0.128, 0.768, 0.104],
    [0.286, 0.508, 0.206],
    [0.637, 0.352, 0.011],
    [0.238, 0.12, 0.642],
    [0.028, 0.937, 0.035],
];

fn probs() -> Vec<Vec<f64>> {
    PROBS.iter().map(|r| r.to_vec()).collect()
}

#[test]
fn macro_averages_match_scikit_learn() {
    let m = macro_metrics(&probs(), &LABELS).unwrap();
    close(m.accuracy.unwrap(), 0.6666666666666666, 1e-12);
    // balanced_accuracy_score and recall_score(average="macro")
    close(m.balanced_accuracy.unwrap(), 0.5838383838383838, 1e-12);
    close(m.sensitivity.unwrap(), 0.5838383838383838, 1e-12);
    close(m.specificity.unwrap(), 0.8296703296703297, 1e-12);
    close(m.ppv.unwrap(), 0.5782828282828283, 1e-12);
    close(m.npv.unwrap(), 0.8264957264957266, 1e-12);
    close(m.f1.unwrap(), 0.5784916837548416, 1e-12);
    // roc_auc_score(multi_class="ovr"), average_precision_score on label_binarize
    close(m.roc_auc.unwrap(), 0.7583139083139083, 1e-12);
    close(m.pr_auc.unwrap(), 0.6576861679529663, 1e-12);
    close(m.ece.unwrap(), 0.21812499999999999, 1e-12);
    close(ece(&probs(), &LABELS).unwrap(), 0.21812499999999999, 1e-12);
}

#[test]
fn a_class_never_predicted_leaves_the_macro_ppv_undefined() {
    let p = vec![
        vec![0.6, 0.3, 0.1],
        vec![0.2, 0.7, 0.1],
        vec![0.5, 0.2, 0.3],
        vec![0.3, 0.6, 0.1],
    ];
    let m = macro_metrics(&p, &[0, 1, 2, 1]).unwrap();
    assert_eq!(m.ppv, None);
    // class 2 is missed: recalls 1, 1, 0
    close(m.balanced_accuracy.unwrap(), 2.0 / 3.0, 1e-15);
    close(m.accuracy.unwrap(), 0.75, 1e-15);
}

#[test]
fn macro_averages_run_over_the_classes_present() {
    // class 2 has no image: the averages are over classes 0 and 1
    let p = vec![
        vec![0.6, 0.3, 0.1],
        vec![0.2, 0.7, 0.1],
        vec![0.3, 0.6, 0.1],
    ];
    let m = macro_metrics(&p, &[0, 1, 0]).unwrap();
    close(m.sensitivity.unwrap(), (0.5 + 1.0) / 2.0, 1e-15);
    close(m.roc_auc.unwrap(), 1.0, 1e-15);
}

#[test]
fn one_class_is_refused() {
    let p = vec![vec![0.6, 0.4], vec![0.3, 0.7]];
    assert_eq!(macro_metrics(&p, &[1, 1]), Err(StatsError::NoNegatives(1)));
    // the ECE needs no second class
    // top classes 0 (0.6, wrong) and 1 (0.7, right), in different bins
    close(ece(&p, &[1, 1]).unwrap(), 0.5 * 0.6 + 0.5 * 0.3, 1e-15);
}
