//! Grouped, stratified k-fold cross-validation. A group (a patient, via `group_regex`) is never
//! split between folds; within each class, groups are dealt to the fold holding the fewest images
//! of that class, largest groups first, so that each class's per-fold counts differ by at most
//! one group. Every image is in exactly one test fold per repeat. Inside a fold's training part a
//! grouped validation split (the same [`SplitConfig`] as training) picks the checkpoint.
//!
//! The assignment depends only on the sorted sample list, the group regex, K, the repeat and the
//! seed.

use crate::error::DataError;
use crate::rng::{stream, Rng};
use crate::scan::ImageFolder;
use crate::split::{by_majority_class, load_json, rel_string, save_json, Split, SplitConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How to fold.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldConfig {
    /// K.
    pub k: usize,
    /// Independent assignments with different shuffles.
    pub repeats: usize,
    pub seed: u64,
    pub group_regex: Option<String>,
    /// Fraction of each fold's training part held out for validation (checkpoint choice).
    pub val: f64,
}

/// `folds.json`: every image's group and its test fold in each repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folds {
    pub k: usize,
    pub repeats: usize,
    pub seed: u64,
    pub group_regex: Option<String>,
    pub classes: Vec<String>,
    /// One entry per image, sorted by path.
    pub images: Vec<FoldImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoldImage {
    /// Relative to the data root, `/`-separated.
    pub path: String,
    pub class: String,
    pub group: String,
    /// The test fold of this image in each repeat.
    pub folds: Vec<usize>,
}

impl FoldConfig {
    pub fn validate(&self) -> Result<(), DataError> {
        if self.k < 2 {
            return Err(DataError::InvalidSplit(format!(
                "cross-validation needs at least 2 folds, got {}",
                self.k
            )));
        }
        if self.repeats == 0 {
            return Err(DataError::InvalidSplit("repeats must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.val) || self.val == 0.0 {
            return Err(DataError::InvalidSplit(format!(
                "the validation fraction of a fold's training part must be in (0, 1), got {}",
                self.val
            )));
        }
        Ok(())
    }

    /// Assigns every image of `folder` to a test fold, in each repeat.
    pub fn assign(&self, folder: &ImageFolder) -> Result<Folds, DataError> {
        self.validate()?;
        let split_cfg = SplitConfig {
            group_regex: self.group_regex.clone(),
            ..SplitConfig::default()
        };
        let groups = SplitConfig::groups(split_cfg.validate()?.as_ref(), folder);
        if groups.len() < self.k {
            return Err(DataError::InvalidSplit(format!(
                "{} folds need at least {} groups; {} has {}",
                self.k,
                self.k,
                folder.root.display(),
                groups.len()
            )));
        }
        let n_classes = folder.classes.len();
        // A class whose images all come from one group (patient) is tested, in the fold that holds
        // it, by a model that never trained on it: refused. Fewer groups than folds leaves some
        // fold without a test image of it: said loudly.
        let mut class_groups = vec![std::collections::BTreeSet::new(); n_classes];
        for (key, members) in &groups {
            for s in members {
                class_groups[s.label].insert(key);
            }
        }
        let unit = if self.group_regex.is_some() {
            "groups (patients)"
        } else {
            "images"
        };
        for (c, g) in class_groups.iter().enumerate() {
            let class = &folder.classes[c];
            if g.len() < 2 {
                return Err(DataError::InvalidSplit(format!(
                    "class `{class}` has images of only {} of the {unit}: the fold that tests them would train on none of them; add {unit} of `{class}`, or leave the class out",
                    g.len()
                )));
            }
            if g.len() < self.k {
                tracing::warn!(
                    "class `{class}` has images of only {} {unit}, fewer than the {} folds: {} fold(s) test no `{class}` image, and their per-fold metrics leave it out (the pooled ones do not)",
                    g.len(),
                    self.k,
                    self.k - g.len()
                );
            }
        }
        // groups by majority class (ties to the lower index), as the train/val split does
        let by_class = by_majority_class(&groups, n_classes);
        let mut fold_of: BTreeMap<&String, Vec<usize>> = BTreeMap::new();
        for repeat in 0..self.repeats {
            let mut totals = vec![0usize; self.k];
            for (class, class_groups) in by_class.iter().enumerate() {
                let mut order = class_groups.clone();
                Rng::keyed(self.seed, &[stream::FOLDS, repeat as u64, class as u64])
                    .shuffle(&mut order);
                // largest first (stable: the shuffle breaks ties)
                order.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
                let mut counts = vec![0usize; self.k];
                for (key, members) in order {
                    let f = (0..self.k)
                        .min_by_key(|&f| (counts[f], totals[f], f))
                        .unwrap_or(0);
                    counts[f] += members.len();
                    totals[f] += members.len();
                    fold_of.entry(key).or_default().push(f);
                }
            }
        }
        let mut images = Vec::with_capacity(folder.samples.len());
        for (key, members) in &groups {
            for s in members {
                images.push(FoldImage {
                    path: rel_string(&s.path),
                    class: folder.classes[s.label].clone(),
                    group: key.clone(),
                    folds: fold_of[key].clone(),
                });
            }
        }
        images.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Folds {
            k: self.k,
            repeats: self.repeats,
            seed: self.seed,
            group_regex: self.group_regex.clone(),
            classes: folder.classes.clone(),
            images,
        })
    }
}

impl Folds {
    /// Each image's group (patient), by its relative path.
    pub fn group_of(&self) -> std::collections::HashMap<&str, &str> {
        self.images
            .iter()
            .map(|i| (i.path.as_str(), i.group.as_str()))
            .collect()
    }

    /// The split of one fold: its test part, and a grouped train/val split of the rest
    /// (`val` of the rest, seeded by the repeat and fold).
    pub fn split(
        &self,
        folder: &ImageFolder,
        repeat: usize,
        fold: usize,
        val: f64,
    ) -> Result<Split, DataError> {
        if repeat >= self.repeats || fold >= self.k {
            return Err(DataError::InvalidSplit(format!(
                "fold {fold} of repeat {repeat} does not exist ({} folds, {} repeats)",
                self.k, self.repeats
            )));
        }
        let test_paths: std::collections::HashSet<&str> = self
            .images
            .iter()
            .filter(|i| i.folds[repeat] == fold)
            .map(|i| i.path.as_str())
            .collect();
        let mut rest = folder.clone();
        rest.samples
            .retain(|s| !test_paths.contains(rel_string(&s.path).as_str()));
        let inner = SplitConfig {
            val,
            test: 0.0,
            seed: Rng::keyed(
                self.seed,
                &[stream::FOLDS, repeat as u64, 1 << 20 | fold as u64],
            )
            .next_u64(),
            group_regex: self.group_regex.clone(),
        };
        let mut split = inner.split(&rest)?;
        split.test = test_paths.into_iter().map(str::to_owned).collect();
        split.test.sort();
        Ok(split)
    }

    /// Writes `folds.json` atomically.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        save_json(self, path)
    }

    pub fn load(path: &Path) -> Result<Folds, DataError> {
        load_json(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Sample;
    use std::collections::{HashMap, HashSet};
    use std::path::PathBuf;

    /// `patients` patients per class, each with 1 to 4 photos, named `P<n>_<i>.jpg`.
    fn folder(patients: usize) -> ImageFolder {
        let classes = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let mut samples = Vec::new();
        let mut n = 0;
        for (label, class) in classes.iter().enumerate() {
            for p in 0..patients {
                n += 1;
                for i in 0..(1 + (p * 7 + label) % 4) {
                    samples.push(Sample {
                        path: PathBuf::from(format!("{class}/P{n}_{i}.jpg")),
                        label,
                    });
                }
            }
        }
        samples.sort_by(|a, b| a.path.cmp(&b.path));
        ImageFolder {
            root: PathBuf::from("/data"),
            classes,
            samples,
            ignored: vec![],
            skipped: vec![],
        }
    }

    fn config(k: usize, repeats: usize) -> FoldConfig {
        FoldConfig {
            k,
            repeats,
            seed: 7,
            group_regex: Some("^([^_.]+)".into()),
            val: 0.125,
        }
    }

    #[test]
    fn groups_never_cross_folds_and_every_image_is_tested_once() {
        let f = folder(11);
        for k in [2, 3, 5] {
            let folds = config(k, 2).assign(&f).unwrap();
            assert_eq!(folds.images.len(), f.samples.len());
            for r in 0..2 {
                let mut group_fold: HashMap<&str, usize> = HashMap::new();
                for img in &folds.images {
                    let fold = img.folds[r];
                    assert!(fold < k);
                    assert_eq!(
                        *group_fold.entry(&img.group).or_insert(fold),
                        fold,
                        "{img:?}"
                    );
                }
                // each image in exactly one test part; train, val and test disjoint
                let mut tested = HashSet::new();
                for fold in 0..k {
                    let s = folds.split(&f, r, fold, 0.125).unwrap();
                    for p in &s.test {
                        assert!(tested.insert(p.clone()), "{p} tested twice");
                    }
                    let train: HashSet<_> = s.train.iter().collect();
                    let val: HashSet<_> = s.val.iter().collect();
                    assert!(!s.val.is_empty());
                    assert!(train.is_disjoint(&val));
                    assert!(s
                        .test
                        .iter()
                        .all(|p| !train.contains(p) && !val.contains(p)));
                    assert_eq!(s.train.len() + s.val.len() + s.test.len(), f.samples.len());
                    // no patient in two parts of one fold either
                    let group = |p: &String| {
                        p.split('/')
                            .nth(1)
                            .unwrap()
                            .split('_')
                            .next()
                            .unwrap()
                            .to_owned()
                    };
                    let gt: HashSet<_> = s.train.iter().map(group).collect();
                    let gv: HashSet<_> = s.val.iter().map(group).collect();
                    let gs: HashSet<_> = s.test.iter().map(group).collect();
                    assert!(gt.is_disjoint(&gv) && gt.is_disjoint(&gs) && gv.is_disjoint(&gs));
                }
                assert_eq!(tested.len(), f.samples.len());
            }
        }
    }

    #[test]
    fn classes_are_stratified_within_one_group() {
        let f = folder(13);
        let folds = config(3, 1).assign(&f).unwrap();
        let biggest = 4;
        for class in &f.classes {
            let mut per_fold = [0usize; 3];
            for img in folds.images.iter().filter(|i| &i.class == class) {
                per_fold[img.folds[0]] += 1;
            }
            let spread = per_fold.iter().max().unwrap() - per_fold.iter().min().unwrap();
            assert!(spread <= biggest, "{class}: {per_fold:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_folds_and_repeats_differ() {
        let f = folder(9);
        let a = config(3, 2).assign(&f).unwrap();
        assert_eq!(a, config(3, 2).assign(&f).unwrap());
        let r0: Vec<usize> = a.images.iter().map(|i| i.folds[0]).collect();
        let r1: Vec<usize> = a.images.iter().map(|i| i.folds[1]).collect();
        assert_ne!(r0, r1, "a repeat is another shuffle");
        let mut other = config(3, 2);
        other.seed = 8;
        assert_ne!(a, other.assign(&f).unwrap());
    }

    #[test]
    fn too_few_groups_or_folds_are_refused() {
        let f = folder(1);
        assert!(config(4, 1)
            .assign(&f)
            .unwrap_err()
            .to_string()
            .contains("groups"));
        assert!(config(1, 1)
            .assign(&f)
            .unwrap_err()
            .to_string()
            .contains("2 folds"));
    }
}
