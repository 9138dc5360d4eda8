//! Seeded, stratified train/val/test splits, optionally grouped so that no group (a patient, a
//! source photo) straddles two parts. Photos of one patient in both train and val inflate
//! validation accuracy; MSLD names them `P13_1.jpg`, `P13_2.jpg`, so `^([^_.]+)` is its key.

use crate::error::DataError;
use crate::rng::Rng;
use crate::scan::{ImageFolder, Sample};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How to split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Fraction of each class for validation.
    pub val: f64,
    /// Fraction of each class for a held-out test part.
    pub test: f64,
    pub seed: u64,
    /// A regex whose first capture group, applied to the file name, is the group key.
    pub group_regex: Option<String>,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            val: 0.2,
            test: 0.0,
            seed: 0,
            group_regex: None,
        }
    }
}

/// A split: class names and, per part, paths relative to the dataset root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub classes: Vec<String>,
    pub train: Vec<String>,
    pub val: Vec<String>,
    #[serde(default)]
    pub test: Vec<String>,
}

pub(crate) fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl SplitConfig {
    pub fn validate(&self) -> Result<Option<Regex>, DataError> {
        let ok = |f: f64| (0.0..1.0).contains(&f);
        if !ok(self.val) || !ok(self.test) || self.val + self.test >= 1.0 {
            return Err(DataError::InvalidSplit(format!(
                "val ({}) and test ({}) must be fractions in [0, 1) that leave room for training",
                self.val, self.test
            )));
        }
        match &self.group_regex {
            None => Ok(None),
            Some(re) => {
                let regex = Regex::new(re).map_err(|e| {
                    DataError::InvalidSplit(format!("group regex `{re}`: {}", regex_reason(&e)))
                })?;
                if regex.captures_len() < 2 {
                    return Err(DataError::InvalidSplit(format!(
                        "group regex `{re}` has no capture group"
                    )));
                }
                Ok(Some(regex))
            }
        }
    }

    /// The group key of a sample: the regex's first capture on the file name, else the path.
    pub(crate) fn group_key(regex: Option<&Regex>, sample: &Sample) -> String {
        let key = Self::key_of(regex, &rel_string(&sample.path));
        if regex.is_some() && key.starts_with("f:") {
            tracing::warn!(file = %sample.path.display(), "group regex does not match; the file is its own group");
        }
        key
    }

    /// The samples of `folder` by their group key.
    pub(crate) fn groups<'a>(
        regex: Option<&Regex>,
        folder: &'a ImageFolder,
    ) -> BTreeMap<String, Vec<&'a Sample>> {
        let mut groups: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
        for s in &folder.samples {
            groups.entry(Self::group_key(regex, s)).or_default().push(s);
        }
        groups
    }

    /// The group of a relative path (`class/file`): `g:` and the regex's first capture on the
    /// file name, or `f:` and the path itself (its own group).
    fn key_of(regex: Option<&Regex>, rel: &str) -> String {
        let file_name = rel.rsplit('/').next().unwrap_or(rel);
        match regex.and_then(|re| re.captures(file_name)?.get(1)) {
            Some(m) => format!("g:{}", m.as_str()),
            None => format!("f:{rel}"),
        }
    }

    /// The group (patient) of each of `paths` (relative, as in `split.json`), by the rule the
    /// split used: what a bootstrap over patients resamples.
    pub fn groups_of(&self, paths: &[String]) -> Result<Vec<String>, DataError> {
        let regex = self.validate()?;
        Ok(paths
            .iter()
            .map(|p| Self::key_of(regex.as_ref(), p))
            .collect())
    }

    /// Splits `folder`. Within each class (a group counts for its majority class), groups are
    /// shuffled with the seed and dealt to test, then val, then train until each part holds its
    /// share of images. Depends only on the sorted sample list and the seed.
    pub fn split(&self, folder: &ImageFolder) -> Result<Split, DataError> {
        let groups = Self::groups(self.validate()?.as_ref(), folder);
        let mut split = Split {
            classes: folder.classes.clone(),
            train: vec![],
            val: vec![],
            test: vec![],
        };
        for (class, mut class_groups) in by_majority_class(&groups, folder.classes.len())
            .into_iter()
            .enumerate()
        {
            let total: usize = class_groups.iter().map(|g| g.1.len()).sum();
            let mut rng = Rng::keyed(self.seed, &[crate::rng::stream::SPLIT, class as u64]);
            rng.shuffle(&mut class_groups);
            let want_test = (total as f64 * self.test).round() as usize;
            let want_val = (total as f64 * self.val).round() as usize;
            let (mut n_test, mut n_val) = (0usize, 0usize);
            for (_, members) in class_groups {
                let size = members.len();
                // A group goes to a part while that part is short of its share and taking the
                // group overshoots by less than it would undershoot otherwise.
                let fits = |have: usize, want: usize| {
                    have < want && (have + size).saturating_sub(want) <= want - have
                };
                let part = if fits(n_test, want_test) {
                    n_test += size;
                    &mut split.test
                } else if fits(n_val, want_val) {
                    n_val += size;
                    &mut split.val
                } else {
                    &mut split.train
                };
                part.extend(members.iter().map(|s| rel_string(&s.path)));
            }
        }
        split.train.sort();
        split.val.sort();
        split.test.sort();
        Ok(split)
    }
}

/// `groups` by class: each under the class most of its samples have (ties go to the lower
/// index).
pub(crate) fn by_majority_class<'g, 'a>(
    groups: &'g BTreeMap<String, Vec<&'a Sample>>,
    n_classes: usize,
) -> Vec<Vec<(&'g String, &'g Vec<&'a Sample>)>> {
    let mut by_class = vec![Vec::new(); n_classes];
    for (key, members) in groups {
        let mut counts = vec![0usize; n_classes];
        for s in members {
            counts[s.label] += 1;
        }
        let class = counts
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |c| c.0);
        by_class[class].push((key, members));
    }
    by_class
}

/// Writes `value` as pretty JSON, atomically (a temporary file, then a rename).
pub(crate) fn save_json<T: Serialize>(value: &T, path: &Path) -> Result<(), DataError> {
    let json = serde_json::to_string_pretty(value).map_err(|e| DataError::SplitFile {
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(resnext_io::write_atomic(path, (json + "\n").as_bytes())?)
}

/// Reads a JSON file (a regular file only) into `T`.
pub(crate) fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DataError> {
    let bytes = crate::safe_path::read_regular(path)?;
    serde_json::from_slice(&bytes).map_err(|e| DataError::SplitFile {
        path: path.into(),
        reason: e.to_string(),
    })
}

impl Split {
    /// Writes the split as JSON (atomically: temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        save_json(self, path)
    }

    pub fn load(path: &Path) -> Result<Split, DataError> {
        let split: Split = load_json(path)?;
        split.validate().map_err(|e| DataError::SplitFile {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(split)
    }

    /// Every entry is a plain relative path under one of the split's classes, and no image is in
    /// two places (the same image in train and val would leak).
    pub fn validate(&self) -> Result<(), DataError> {
        let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        for (part, paths) in [
            ("train", &self.train),
            ("val", &self.val),
            ("test", &self.test),
        ] {
            for p in paths {
                crate::safe_path::check_relative(p)?;
                let class = p.split('/').next().unwrap_or_default();
                if !self.classes.iter().any(|c| c == class) || !p.contains('/') {
                    return Err(DataError::InvalidSplit(format!(
                        "path `{p}` is not under any class of the split {:?}",
                        self.classes
                    )));
                }
                if let Some(first) = seen.insert(p.as_str(), part) {
                    return Err(DataError::InvalidSplit(format!(
                        "`{p}` is in {first} and in {part}: an image may be in one part only"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The samples of one part with labels from the split's classes: the class of a path is its
    /// first component. Checks that every class is known and every file exists under `root`.
    pub fn samples(&self, part: &[String], root: &Path) -> Result<Vec<Sample>, DataError> {
        self.samples_with(part, root, false)
    }

    /// [`Self::samples`]; with `follow_links`, a file may be a link to anywhere (a data root
    /// assembled from links into a photo store), else it must resolve inside `root`.
    pub fn samples_with(
        &self,
        part: &[String],
        root: &Path,
        follow_links: bool,
    ) -> Result<Vec<Sample>, DataError> {
        if !root.is_dir() {
            return Err(DataError::RootMissing(root.to_path_buf()));
        }
        let canon_root = root.canonicalize().map_err(|e| DataError::io(root, e))?;
        part.iter()
            .map(|p| {
                crate::safe_path::check_relative(p)?;
                let class = p.split('/').next().unwrap_or_default();
                let label = self
                    .classes
                    .iter()
                    .position(|c| c == class)
                    .ok_or_else(|| {
                        DataError::InvalidSplit(format!(
                            "path `{p}` is not under any class of the split {:?}",
                            self.classes
                        ))
                    })?;
                if follow_links {
                    if !std::fs::metadata(root.join(p)).is_ok_and(|m| m.is_file()) {
                        return Err(DataError::InvalidSplit(format!(
                            "`{p}` is in the split but not a file under {}",
                            root.display()
                        )));
                    }
                } else {
                    crate::safe_path::resolve_under_canonical(root, &canon_root, p)?;
                }
                Ok(Sample {
                    path: PathBuf::from(p),
                    label,
                })
            })
            .collect()
    }

    /// Checks that the split's classes are those of the dataset at hand.
    pub fn check_classes(&self, classes: &[String]) -> Result<(), DataError> {
        if self.classes != classes {
            return Err(DataError::InvalidSplit(format!(
                "the split's classes {:?} differ from the dataset's {:?}",
                self.classes, classes
            )));
        }
        Ok(())
    }
}

/// The reason of a regex error in one line (its Display repeats the pattern over several lines
/// with a caret under the fault).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().next().unwrap_or("invalid regex"))
        .to_string()
}
