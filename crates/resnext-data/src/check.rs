//! A whole-folder health check: classes and their image counts, and every file that does not
//! decode, with its reason.

use crate::decode::{decode_file, DecodeLimits};
use crate::error::DataError;
use crate::scan::scan;
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassCount {
    pub name: String,
    /// Images of the class that decode.
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadFile {
    /// Relative to the dataset root.
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub classes: Vec<ClassCount>,
    pub bad: Vec<BadFile>,
    /// Files that are not images by their extension.
    #[serde(skip)]
    pub ignored: Vec<PathBuf>,
    /// Entries named like images that are not regular files, with their kind.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Scans `root` and decodes every image in parallel, telling `begin` the number of images once
/// scanned and calling `done(1)` from the workers after each image (for progress).
pub fn check_with(
    root: &Path,
    limits: DecodeLimits,
    begin: &dyn Fn(usize),
    done: &(dyn Fn(usize) + Sync),
) -> Result<CheckReport, DataError> {
    let folder = scan(root)?;
    begin(folder.samples.len());
    let results: Vec<Option<String>> = folder
        .samples
        .par_iter()
        .map(|s| {
            let r = match decode_file(&folder.abs_path(s), limits) {
                Ok(_) => None,
                Err(DataError::BadImage { reason, .. }) => Some(reason),
                Err(e) => Some(e.to_string()),
            };
            done(1);
            r
        })
        .collect();
    let mut counts = vec![0usize; folder.classes.len()];
    let mut bad = Vec::new();
    for (s, r) in folder.samples.iter().zip(results) {
        match r {
            None => counts[s.label] += 1,
            Some(reason) => bad.push(BadFile {
                path: s.path.to_string_lossy().into_owned(),
                reason,
            }),
        }
    }
    let classes = folder
        .classes
        .iter()
        .zip(counts)
        .map(|(name, count)| ClassCount {
            name: name.clone(),
            count,
        })
        .collect();
    Ok(CheckReport {
        classes,
        bad,
        ignored: folder.ignored,
        skipped: folder.skipped,
    })
}
