//! One epoch of training as a row of `metrics.csv`: the CSV format, written and read back, and
//! the epoch line printed to the terminal.

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
    /// Seconds of the training phase spent summing gradients across processes (data-parallel
    /// training; 0 on one process).
    #[serde(default)]
    pub allreduce_s: f64,
}

pub const CSV_HEADER: &str =
    "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s,data_wait_s,allreduce_s";

impl EpochRow {
    /// Every value after `epoch`, named by its `metrics.csv` column, in the file's order
    /// (TensorBoard's per-epoch scalars).
    pub fn values(&self) -> [(&'static str, f64); 9] {
        [
            ("train_loss", self.train_loss),
            ("train_acc", self.train_acc),
            ("val_loss", self.val_loss),
            ("val_acc", self.val_acc),
            ("lr", self.lr),
            ("seconds", self.seconds),
            ("images_per_s", self.images_per_s),
            ("data_wait_s", self.data_wait_s),
            ("allreduce_s", self.allreduce_s),
        ]
    }

    pub fn csv(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.3},{:.3},{:.3},{:.3}",
            self.epoch,
            self.train_loss,
            self.train_acc,
            self.val_loss,
            self.val_acc,
            self.lr,
            self.seconds,
            self.images_per_s,
            self.data_wait_s,
            self.allreduce_s
        )
    }

    /// The line the original tutorial printed each epoch (the learning rate in one format,
    /// scientific with 4 significant digits, whatever its size).
    pub fn log_line(&self) -> String {
        format!(
            "Epoch: {}, Train_acc: {:.2}%, Train_loss: {:.4}, Test_acc: {:.2}%, Test_loss: {:.4}, Lr: {:.3e}",
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
        // 8 columns before data_wait_s was added, 9 before allreduce_s
        if !(8..=10).contains(&f.len()) {
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
            allreduce_s: f.get(9).copied().unwrap_or(0.0),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_named_as_the_csv_columns() {
        let row = EpochRow::parse_csv("1,0,0,0,0,0,0,0,0,0").unwrap();
        let names: Vec<&str> = row.values().iter().map(|v| v.0).collect();
        assert_eq!(names.join(","), CSV_HEADER.trim_start_matches("epoch,"));
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
            allreduce_s: 0.5,
        };
        let text = metrics_csv(std::slice::from_ref(&r));
        assert!(text.starts_with(
            "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s,data_wait_s,allreduce_s\n"
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

    #[test]
    fn the_learning_rate_prints_in_one_format() {
        let mut r = parse_metrics_csv("h\n1,0.5,0.75,0.6,0.7,2e-5,1,1\n")[0].clone();
        assert!(r.log_line().ends_with("Lr: 2.000e-5"), "{}", r.log_line());
        r.lr = 0.0019594929736144974;
        assert!(r.log_line().ends_with("Lr: 1.959e-3"), "{}", r.log_line());
    }
}
