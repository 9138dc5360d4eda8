//! What the benches read back from a run directory: columns of the last `metrics.csv` row and
//! the size of the split's training part.

use anyhow::{Context, Result};
use std::path::Path;

/// The values of `columns` (by header name) in the last epoch row of `run/metrics.csv`.
pub fn last_epoch(run: &Path, columns: &[&str]) -> Result<Vec<f64>> {
    let path = run.join("metrics.csv");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let last: Vec<f64> = lines
        .last()
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
            last.get(i)
                .copied()
                .with_context(|| format!("{} has a short last row", path.display()))
        })
        .collect()
}

/// Images in the train part of a split file (`split.json`).
pub fn train_images(split: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(split)
        .with_context(|| format!("cannot read {}", split.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", split.display()))?;
    Ok(v["train"]
        .as_array()
        .with_context(|| format!("{} has no train list", split.display()))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_columns_of_the_last_row_and_the_training_count() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("metrics.csv"),
            "epoch,a,b\n1,0.5,2\n2,0.25,3\n",
        )
        .unwrap();
        assert_eq!(
            last_epoch(dir.path(), &["b", "a"]).unwrap(),
            vec![3.0, 0.25]
        );
        assert!(last_epoch(dir.path(), &["c"]).is_err());
        let split = dir.path().join("split.json");
        std::fs::write(&split, r#"{"train": ["x", "y", "z"], "val": []}"#).unwrap();
        assert_eq!(train_images(&split).unwrap(), 3);
    }
}
