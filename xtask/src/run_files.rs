//! The files of a run directory that xtask reads, named once: columns of an epoch row of
//! `metrics.csv`, the size of the training part of `split.json`, whether there is a `best.json`.

use anyhow::{Context, Result};
use std::path::Path;

/// One row per epoch under a header of column names.
pub const METRICS: &str = "metrics.csv";
/// `{"classes", "train", "val", "test"}`; `resnext data split --out` writes one too.
pub const SPLIT: &str = "split.json";
/// The best epoch's sidecar: there once a run can be served.
pub const BEST: &str = "best.json";

/// The values of `columns` (by header name) in the last epoch row of `run/metrics.csv`.
pub fn last_epoch(run: &Path, columns: &[&str]) -> Result<Vec<f64>> {
    epoch(run, columns, true)
}

/// The values of `columns` in the first epoch row of `run/metrics.csv`.
pub fn first_epoch(run: &Path, columns: &[&str]) -> Result<Vec<f64>> {
    epoch(run, columns, false)
}

fn epoch(run: &Path, columns: &[&str], last: bool) -> Result<Vec<f64>> {
    let path = run.join(METRICS);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let row: Vec<f64> = if last { lines.last() } else { lines.next() }
        .with_context(|| format!("{} has no epoch rows", path.display()))?
        .split(',')
        .map(|f| f.parse().unwrap_or(f64::NAN))
        .collect();
    columns
        .iter()
        .map(|name| {
            let i = header
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("{} has no `{name}` column", path.display()))?;
            row.get(i)
                .copied()
                .with_context(|| format!("{} has a short row", path.display()))
        })
        .collect()
}

/// Images in the train part of `dir/split.json` (a run's, or one `resnext data split` wrote).
pub fn train_images(dir: &Path) -> Result<usize> {
    let split = dir.join(SPLIT);
    let text = std::fs::read_to_string(&split)
        .with_context(|| format!("cannot read {}", split.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", split.display()))?;
    Ok(v["train"]
        .as_array()
        .with_context(|| format!("{} has no train list", split.display()))?
        .len())
}

/// Whether the run has a best epoch (`best.json`).
pub fn has_best(run: &Path) -> bool {
    run.join(BEST).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_columns_of_an_epoch_row_and_the_training_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METRICS), "epoch,a,b\n1,0.5,2\n2,0.25,3\n").unwrap();
        assert_eq!(
            last_epoch(dir.path(), &["b", "a"]).unwrap(),
            vec![3.0, 0.25]
        );
        assert_eq!(first_epoch(dir.path(), &["a"]).unwrap(), vec![0.5]);
        assert!(last_epoch(dir.path(), &["c"]).is_err());
        assert!(!has_best(dir.path()));
        std::fs::write(dir.path().join(BEST), "{}").unwrap();
        assert!(has_best(dir.path()));
        let split = dir.path().join(SPLIT);
        std::fs::write(&split, r#"{"train": ["x", "y", "z"], "val": []}"#).unwrap();
        assert_eq!(train_images(dir.path()).unwrap(), 3);
    }
}
