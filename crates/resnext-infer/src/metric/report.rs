//! The classification report of an evaluation (per-class precision/recall/F1/support, macro and
//! weighted averages, confusion matrix with rows = true class, ROC-AUC), its text table, and
//! `eval.json` ([`EvalReport`]).

use super::argmax::argmax;
use super::roc::roc_auc;
use crate::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// The report `resnext eval` prints and writes to `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub loss: f64,
    pub accuracy: f64,
    pub per_class: Vec<ClassMetrics>,
    #[serde(rename = "macro")]
    pub macro_avg: Averages,
    pub weighted: Averages,
    pub confusion_matrix: Vec<Vec<usize>>,
    /// Binary: AUC of the positive class (index 1); more classes: one-vs-rest macro average.
    /// None when a class is missing from the labels.
    pub roc_auc: Option<f64>,
    /// Expected calibration error of the top class (15 bins); absent in older `eval.json`s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    pub samples: usize,
}

/// `eval.json`: the report plus what was evaluated. It round-trips through serde.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    #[serde(flatten)]
    pub report: Report,
    /// `val`, `test`, `train` or `all`.
    pub split: String,
    pub checkpoint: Checkpoint,
    pub tta: bool,
    pub classes: Vec<String>,
    /// Binary problems: (false positive rate, true positive rate) points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_curve: Option<Vec<(f64, f64)>>,
    /// The reliability diagram's 15 bins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<Vec<super::calibration::ReliabilityBin>>,
    /// Every metric with its 95% bootstrap interval over patients (the run's `group_regex`;
    /// images without one), and calibration intercept and slope; absent in older `eval.json`s,
    /// with `--bootstrap 0`, or when the part has one class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<resnext_stats::Summary>,
    /// With `--operating-point`: the threshold chosen on the validation part, and sensitivity,
    /// specificity, PPV and NPV at it on this part, with intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<super::operating_point::AtOperatingPoint>,
    /// With `--pauc-min-tpr`: the partial ROC-AUC above that sensitivity, with its interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_auc: Option<super::operating_point::PartialAuc>,
    /// With `--metadata FILE --by COLUMN`: every metric per value of the column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subgroups: Vec<super::subgroup::Subgroup>,
}

fn safe_div(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

impl Report {
    /// Builds the report from per-sample class probabilities, true labels and the mean loss.
    pub fn from_predictions(
        classes: &[String],
        probs: &[Vec<f64>],
        labels: &[usize],
        loss: f64,
    ) -> Self {
        let k = classes.len();
        let mut cm = vec![vec![0usize; k]; k];
        for (p, &y) in probs.iter().zip(labels) {
            let pred = argmax(p);
            cm[y][pred] += 1;
        }
        let n = labels.len();
        let correct: usize = (0..k).map(|i| cm[i][i]).sum();
        let mut per_class = Vec::with_capacity(k);
        for c in 0..k {
            let tp = cm[c][c] as f64;
            let predicted: usize = (0..k).map(|r| cm[r][c]).sum();
            let support: usize = cm[c].iter().sum();
            let precision = safe_div(tp, predicted as f64);
            let recall = safe_div(tp, support as f64);
            let f1 = safe_div(2.0 * precision * recall, precision + recall);
            per_class.push(ClassMetrics {
                class: classes[c].clone(),
                precision,
                recall,
                f1,
                support,
            });
        }
        let mean =
            |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / k.max(1) as f64;
        let wmean = |f: fn(&ClassMetrics) -> f64| {
            safe_div(
                per_class
                    .iter()
                    .map(|c| f(c) * c.support as f64)
                    .sum::<f64>(),
                n as f64,
            )
        };
        let macro_avg = Averages {
            precision: mean(|c| c.precision),
            recall: mean(|c| c.recall),
            f1: mean(|c| c.f1),
            support: n,
        };
        let weighted = Averages {
            precision: wmean(|c| c.precision),
            recall: wmean(|c| c.recall),
            f1: wmean(|c| c.f1),
            support: n,
        };
        let auc_of = |c: usize| {
            let scores: Vec<f64> = probs.iter().map(|p| p[c]).collect();
            let pos: Vec<bool> = labels.iter().map(|&y| y == c).collect();
            roc_auc(&scores, &pos)
        };
        let roc_auc = if k == 2 {
            auc_of(1)
        } else {
            let aucs: Option<Vec<f64>> = (0..k).map(auc_of).collect();
            aucs.map(|a| a.iter().sum::<f64>() / k as f64)
        };
        Self {
            loss,
            accuracy: safe_div(correct as f64, n as f64),
            per_class,
            macro_avg,
            weighted,
            confusion_matrix: cm,
            roc_auc,
            ece: (n > 0).then(|| super::calibration::ece(probs, labels)),
            samples: n,
        }
    }

    /// An aligned text table.
    pub fn table(&self) -> String {
        let w = self
            .per_class
            .iter()
            .map(|c| c.class.len())
            .max()
            .unwrap_or(5)
            .max(12);
        let mut s = format!(
            "{:<w$} {:>9} {:>9} {:>9} {:>9}\n",
            "class", "precision", "recall", "f1", "support"
        );
        for c in &self.per_class {
            s += &format!(
                "{:<w$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n",
                c.class, c.precision, c.recall, c.f1, c.support
            );
        }
        for (name, a) in [
            ("macro avg", &self.macro_avg),
            ("weighted avg", &self.weighted),
        ] {
            s += &format!(
                "{:<w$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n",
                name, a.precision, a.recall, a.f1, a.support
            );
        }
        let opt = |v: Option<f64>| v.map_or("n/a".into(), |a| format!("{a:.4}"));
        s += &format!(
            "\naccuracy {:.4}   loss {:.4}   ROC-AUC {}   ECE {}\n",
            self.accuracy,
            self.loss,
            opt(self.roc_auc),
            opt(self.ece)
        );
        s += "\nconfusion matrix (rows = true class, columns = predicted)\n";
        let names: Vec<&str> = self.per_class.iter().map(|c| c.class.as_str()).collect();
        let cw = names.iter().map(|n| n.len()).max().unwrap_or(4).max(6);
        s += &format!("{:<w$}", "");
        for n in &names {
            s += &format!(" {:>cw$}", n);
        }
        s.push('\n');
        for (i, row) in self.confusion_matrix.iter().enumerate() {
            s += &format!("{:<w$}", names[i]);
            for v in row {
                s += &format!(" {:>cw$}", v);
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_matches_hand_computation() {
        let classes = vec!["a".to_string(), "b".to_string()];
        // true: a a a b b ; pred: a a b b a
        let probs = vec![
            vec![0.9, 0.1],
            vec![0.8, 0.2],
            vec![0.3, 0.7],
            vec![0.2, 0.8],
            vec![0.6, 0.4],
        ];
        let labels = vec![0, 0, 0, 1, 1];
        let r = Report::from_predictions(&classes, &probs, &labels, 0.5);
        assert_eq!(r.confusion_matrix, vec![vec![2, 1], vec![1, 1]]);
        assert!((r.accuracy - 0.6).abs() < 1e-12);
        assert!((r.per_class[0].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.per_class[1].recall - 0.5).abs() < 1e-12);
        assert_eq!(r.per_class[0].support, 3);
        let wf1 = (r.per_class[0].f1 * 3.0 + r.per_class[1].f1 * 2.0) / 5.0;
        assert!((r.weighted.f1 - wf1).abs() < 1e-12);
        // positives (b) score 0.8 and 0.4, negatives 0.1, 0.2, 0.7: 5 of the 6 pairs are ordered
        assert!((r.roc_auc.unwrap() - 5.0 / 6.0).abs() < 1e-12);
        let j = serde_json::to_value(&r).unwrap();
        for k in [
            "loss",
            "accuracy",
            "per_class",
            "macro",
            "weighted",
            "confusion_matrix",
            "roc_auc",
        ] {
            assert!(j.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn eval_json_round_trips() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let r = Report::from_predictions(&classes, &[vec![0.9, 0.1], vec![0.2, 0.8]], &[0, 1], 0.1);
        let e = EvalReport {
            report: r,
            split: "val".into(),
            checkpoint: Checkpoint::Best,
            tta: false,
            classes,
            roc_curve: Some(vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]),
            reliability: Some(crate::metric::reliability(
                &[vec![0.9, 0.1], vec![0.2, 0.8]],
                &[0, 1],
                15,
            )),
            intervals: None,
            operating_point: None,
            partial_auc: None,
            subgroups: Vec::new(),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"macro\""), "{text}");
        assert_eq!(serde_json::from_str::<EvalReport>(&text).unwrap(), e);
    }
}
