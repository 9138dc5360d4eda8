//! Metrics per subgroup (skin tone, site, source): a CSV of image metadata (a column `path`,
//! relative to the data root as in `split.json`, and any others) names each image's group in a
//! column, and every metric with its patient-bootstrap interval is reported per group, with its
//! size; groups below a minimum are reported but flagged.

use crate::error::InferError;
pub use crate::metric::subgroup::{Subgroup, MIN_SUBGROUP};
use crate::run_eval::{intervals, SamplePrediction};
use resnext_stats::BootstrapOptions;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The fields of one CSV line (double quotes around a field, `""` inside one).
fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = out.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => {
                if let Some(f) = out.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    out.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Each image's value of `column` in the metadata CSV at `path`.
pub fn read_metadata(path: &Path, column: &str) -> Result<HashMap<String, String>, InferError> {
    let bad = |reason: String| InferError::read(path, reason);
    let bytes = resnext_data::safe_path::read_regular(path)?;
    if bytes.len() > 64 << 20 {
        return Err(bad("is over 64 MiB".into()));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text".into()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = fields(lines.next().ok_or_else(|| bad("is empty".into()))?);
    let find = |name: &str| header.iter().position(|h| h == name);
    let p = find("path").ok_or_else(|| bad("has no `path` column".into()))?;
    let c = find(column).ok_or_else(|| {
        bad(format!(
            "has no column `{column}` (its columns: {})",
            header.join(", ")
        ))
    })?;
    let mut out = HashMap::new();
    for (i, line) in lines.enumerate() {
        let f = fields(line);
        let (Some(k), Some(v)) = (f.get(p), f.get(c)) else {
            return Err(bad(format!("line {} has too few fields", i + 2)));
        };
        if out.insert(k.clone(), v.clone()).is_some() {
            return Err(bad(format!("lists `{k}` twice")));
        }
    }
    Ok(out)
}

/// The figures of each value of `column` among `preds` (patients `groups`); images the metadata
/// does not list form the group `(not listed)`.
pub fn subgroups(
    column: &str,
    metadata: &HashMap<String, String>,
    preds: &[SamplePrediction],
    groups: &[String],
    bootstrap: &BootstrapOptions,
    positive: Option<usize>,
) -> Vec<Subgroup> {
    let mut by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in preds.iter().enumerate() {
        let v = metadata
            .get(&p.path)
            .cloned()
            .unwrap_or_else(|| "(not listed)".into());
        by.entry(v).or_default().push(i);
    }
    by.into_iter()
        .map(|(value, idx)| {
            let probs: Vec<Vec<f64>> = idx.iter().map(|&i| preds[i].probs.clone()).collect();
            let labels: Vec<usize> = idx.iter().map(|&i| preds[i].label).collect();
            let g: Vec<String> = idx.iter().map(|&i| groups[i].clone()).collect();
            Subgroup {
                column: column.to_string(),
                value,
                n: idx.len(),
                small: idx.len() < MIN_SUBGROUP,
                intervals: intervals(&probs, &labels, &g, bootstrap, positive),
            }
        })
        .collect()
}

/// A subgroup as one printed line (`eval` and `cv`): its size, flagged when small, and its
/// accuracy, sensitivity, specificity and ROC-AUC with their intervals.
pub fn line(g: &Subgroup) -> String {
    let m = g.intervals.as_ref().map(|i| i.metrics);
    let pick = |f: fn(&resnext_stats::Metrics) -> Option<resnext_stats::Interval>| {
        m.and_then(|m| f(&m))
            .map_or("n/a".to_string(), |i| i.to_string())
    };
    format!(
        "{} = {} ({} images{}): accuracy {}, sensitivity {}, specificity {}, ROC-AUC {}",
        g.column,
        g.value,
        g.n,
        if g.small {
            format!(", under {MIN_SUBGROUP}: too few to read")
        } else {
            String::new()
        },
        pick(|m| m.accuracy),
        pick(|m| m.sensitivity),
        pick(|m| m.specificity),
        pick(|m| m.roc_auc)
    )
}
