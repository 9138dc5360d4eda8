//! Metrics: the per-epoch row and `metrics.csv`, and the classification report of an evaluation
//! (per-class precision/recall/F1/support, macro and weighted averages, confusion matrix with
//! rows = true class, ROC-AUC and the binary ROC curve).

use serde::{Deserialize, Serialize};

/// One epoch of training, as a `metrics.csv` row (accuracies are fractions in 0..1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_s: f64,
    /// Seconds of the training phase spent waiting for the data loader (0 when every batch was
    /// ready before the model asked for it).
    #[serde(default)]
    pub data_wait_s: f64,
}

pub const CSV_HEADER: &str =
    "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s,data_wait_s";

impl EpochRow {
    pub fn csv(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.3},{:.3},{:.3}",
            self.epoch,
            self.train_loss,
            self.train_acc,
            self.val_loss,
            self.val_acc,
            self.lr,
            self.seconds,
            self.images_per_s,
            self.data_wait_s
        )
    }

    /// The line the original tutorial printed each epoch.
    pub fn log_line(&self) -> String {
        format!(
            "Epoch: {}, Train_acc: {:.2}%, Train_loss: {:.4}, Test_acc: {:.2}%, Test_loss: {:.4}, Lr: {}",
            self.epoch,
            self.train_acc * 100.0,
            self.train_loss,
            self.val_acc * 100.0,
            self.val_loss,
            self.lr
        )
    }

    pub fn parse_csv(line: &str) -> Option<Self> {
        let f: Vec<f64> = line
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .ok()?;
        // 8 columns before data_wait_s was added
        if f.len() != 8 && f.len() != 9 {
            return None;
        }
        Some(Self {
            epoch: f[0] as usize,
            train_loss: f[1],
            train_acc: f[2],
            val_loss: f[3],
            val_acc: f[4],
            lr: f[5],
            seconds: f[6],
            images_per_s: f[7],
            data_wait_s: f.get(8).copied().unwrap_or(0.0),
        })
    }
}

/// The whole `metrics.csv` text for these rows.
pub fn metrics_csv(rows: &[EpochRow]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&r.csv());
        s.push('\n');
    }
    s
}

/// Reads `metrics.csv` text back into rows.
pub fn parse_metrics_csv(text: &str) -> Vec<EpochRow> {
    text.lines()
        .skip(1)
        .filter_map(EpochRow::parse_csv)
        .collect()
}

/// A running mean of loss and accuracy over batches.
#[derive(Debug, Clone, Default)]
pub struct Running {
    pub loss_sum: f64,
    pub correct: f64,
    pub count: usize,
}

impl Running {
    pub fn add(&mut self, mean_loss: f64, correct: f64, n: usize) {
        self.loss_sum += mean_loss * n as f64;
        self.correct += correct;
        self.count += n;
    }
    pub fn loss(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.loss_sum / self.count as f64
        }
    }
    pub fn acc(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.correct / self.count as f64
        }
    }
}

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
    pub macro_avg: Averages,
    pub weighted: Averages,
    pub confusion_matrix: Vec<Vec<usize>>,
    /// Binary: AUC of the positive class (index 1); more classes: one-vs-rest macro average.
    /// None when a class is missing from the labels.
    pub roc_auc: Option<f64>,
    pub samples: usize,
}

fn safe_div(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Area under the ROC curve of `scores` for `positive` labels (Mann-Whitney U with mid-ranks
/// for ties). None when only one kind is present.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if positive[k] {
                rank_sum_pos += mid;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// The ROC curve: (false positive rate, true positive rate) points from (0,0) to (1,1).
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let n_pos = positive.iter().filter(|&&p| p).count().max(1) as f64;
    let n_neg = positive.iter().filter(|&&p| !p).count().max(1) as f64;
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut pts = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if positive[idx[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        pts.push((fp / n_neg, tp / n_pos));
    }
    pts
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
        let roc_auc = if k == 2 {
            let scores: Vec<f64> = probs.iter().map(|p| p[1]).collect();
            let pos: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
            roc_auc(&scores, &pos)
        } else {
            let aucs: Option<Vec<f64>> = (0..k)
                .map(|c| {
                    let scores: Vec<f64> = probs.iter().map(|p| p[c]).collect();
                    let pos: Vec<bool> = labels.iter().map(|&y| y == c).collect();
                    roc_auc(&scores, &pos)
                })
                .collect();
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
        s += &format!(
            "\naccuracy {:.4}   loss {:.4}   ROC-AUC {}\n",
            self.accuracy,
            self.loss,
            self.roc_auc
                .map(|a| format!("{a:.4}"))
                .unwrap_or_else(|| "n/a".into())
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

    /// The JSON of `eval.json`: keys loss, accuracy, per_class, macro, weighted,
    /// confusion_matrix, roc_auc (and samples).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "loss": self.loss,
            "accuracy": self.accuracy,
            "per_class": self.per_class,
            "macro": self.macro_avg,
            "weighted": self.weighted,
            "confusion_matrix": self.confusion_matrix,
            "roc_auc": self.roc_auc,
            "samples": self.samples,
        })
    }
}

pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_tied_scores() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(
            roc_auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
            Some(0.5)
        );
        // sklearn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.75
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.1], &[true]), None);
    }

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
        let j = r.to_json();
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
    fn csv_round_trip() {
        let r = EpochRow {
            epoch: 3,
            train_loss: 0.5,
            train_acc: 0.75,
            val_loss: 0.6,
            val_acc: 0.7,
            lr: 1e-4,
            seconds: 12.5,
            images_per_s: 14.2,
            data_wait_s: 0.25,
        };
        let text = metrics_csv(std::slice::from_ref(&r));
        assert!(text.starts_with(
            "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s,data_wait_s\n"
        ));
        assert_eq!(parse_metrics_csv(&text)[0], r);
        // a row written before the data_wait_s column reads back with 0
        let old = parse_metrics_csv("h\n3,0.5,0.75,0.6,0.7,1e-4,12.5,14.2\n");
        assert_eq!(old[0].data_wait_s, 0.0);
        assert_eq!(old[0].images_per_s, 14.2);
        assert!(r
            .log_line()
            .starts_with("Epoch: 3, Train_acc: 75.00%, Train_loss: 0.5000, Test_acc: 70.00%"));
    }
}
