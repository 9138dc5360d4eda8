//! `report.html`: an evaluation (a run directory) or a cross-validation (a cv directory) as one
//! self-contained page that people open instead of reading JSON. Figures are inline SVG, the
//! Grad-CAM overlays inline PNG `data:` URIs, the stylesheet inline; the page has no script and
//! its Content-Security-Policy allows no request at all. It reads on a phone (one column, tables
//! scroll sideways).
//!
//! Every number in the tables is read from the struct serialised to `eval.json` or `cv.json`
//! (nothing computed a second time) and tagged with its JSON pointer there (`html.rs`). What
//! those files do not hold is read from beside them: `metrics.csv` (training curves),
//! `split.json` or `folds.json` (the data), the config, and each image's probabilities
//! (`eval_predictions.json`, a fold's `predictions.json`) for the ROC and PR bands (patient
//! bootstrap, [`resnext_stats::curve_bands`], with `eval.json`'s resamples and seed) and the
//! gallery of the most confident errors (Grad-CAM of the predicted class, `gallery.rs`).
//!
//! - [`Run::report_html`] / [`Run::write_report`]: a run's page, from what is on disk.
//! - [`CvReport`], [`cv_report_html`], [`write_cv_report`]: a cross-validation's page, from its
//!   `cv.json` contents (which the training crate defines) and its directory.

pub mod figures;
pub mod gallery;
pub mod html;
pub mod predictions;
pub mod sections;

use crate::checkpoint::Checkpoint;
/// A fold's directory name, for [`CvRow::name`].
pub use crate::cv_dir::fold_name;
use crate::cv_dir::{CvDir, PredictionRow};
use crate::error::InferError;
use crate::metric::operating_point::{AtOperatingPoint, PartialAuc};
use crate::metric::subgroup::Subgroup;
use crate::metric::ReliabilityBin;
use crate::plot::CvFoldPlot;
use crate::run::{Run, RunFile};
use figures::{Banded, Curve};
use gallery::ErrorCase;
use html::{count, esc, figure, inline_svg, note, num, opt_num, table, Page};
use resnext_stats::{BootstrapOptions, CurveBands, Groups, Mode, Summary};
use sections::{Card, PartCounts};
use std::path::{Path, PathBuf};

const CONFUSION_CAPTION: &str =
    "Rows: true class; columns: predicted class; each cell its count and the share of its row.";

// What a section says when the files have nothing for it (HTML).
const NO_INTERVALS: &str = "no intervals (evaluated with --bootstrap 0, or one class only).";
const NO_PREDICTIONS: &str = "no per-image predictions of this evaluation (eval_predictions.json): run <code>resnext eval</code> again for the curves and the gallery.";
const NO_OPERATING_POINT: &str = "none chosen: <code>resnext eval --positive CLASS --operating-point sensitivity=0.95|specificity=0.90|youden</code> chooses one on the validation part.";
const NO_SUBGROUPS: &str = "none: <code>resnext eval --metadata FILE.csv --by COLUMN</code> reports every metric per group (skin tone, site, source).";
const NO_CV_OPERATING_POINT: &str =
    "none chosen: <code>resnext cv --positive CLASS --operating-point SPEC</code>.";
const NO_CV_SUBGROUPS: &str = "none: <code>resnext cv --metadata FILE.csv --by COLUMN</code> reports every metric of the pooled out-of-fold predictions per group.";

/// How much the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOptions {
    /// The most confident errors shown (0: no gallery, no model loaded).
    pub gallery: usize,
    /// The longest side of a gallery overlay, in pixels.
    pub overlay_side: u32,
    /// Points of the ROC and PR bands' grid.
    pub band_points: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            gallery: 8,
            overlay_side: 256,
            band_points: 51,
        }
    }
}

/// The classes whose curves are drawn: the positive one of a binary problem, every class of a
/// multi-class one.
fn banded_classes(
    intervals: Option<&Summary>,
    op: Option<&AtOperatingPoint>,
    k: usize,
) -> Vec<usize> {
    if k == 2 {
        let positive = op
            .map(|o| o.point.positive_index)
            .or(intervals.and_then(|s| match s.mode {
                Mode::Binary { positive, .. } => Some(positive),
                Mode::Multiclass => None,
            }))
            .unwrap_or(1);
        vec![positive.min(1)]
    } else {
        (0..k).collect()
    }
}

/// Per-image predictions and their patients.
struct Scored {
    probs: Vec<Vec<f64>>,
    labels: Vec<usize>,
    groups: Vec<String>,
}

/// The ROC and PR figures with their bands, from per-image predictions and their patients.
fn curve_figures(
    scored: &Scored,
    classes: &[String],
    which: &[usize],
    intervals: Option<&Summary>,
    at: &str,
    opts: &ReportOptions,
) -> String {
    let bootstrap = intervals.map_or(BootstrapOptions::default(), |s| s.bootstrap);
    let (probs, labels) = (&scored.probs, &scored.labels);
    let g = match Groups::new(&scored.groups) {
        Ok(g) => g,
        Err(e) => return format!("<p class=\"note\">no curves: {}</p>", esc(&e.to_string())),
    };
    let mut bands: Vec<(usize, CurveBands)> = Vec::new();
    let mut notes = String::new();
    for &c in which {
        match resnext_stats::curve_bands(probs, labels, c, Some(&g), &bootstrap, opts.band_points) {
            Ok(b) => bands.push((c, b)),
            Err(e) => {
                notes += &format!(
                    "<p class=\"note\">no curve of {}: {}</p>",
                    esc(&classes[c]),
                    esc(&e.to_string())
                )
            }
        }
    }
    if bands.is_empty() {
        return notes;
    }
    let name = |c: usize| classes.get(c).cloned().unwrap_or_default();
    // the legends' AUCs are the intervals' (eval.json), not recomputed
    let auc_of = |c: usize, roc: bool| -> Option<resnext_stats::Interval> {
        let s = intervals?;
        let (roc_auc, pr_auc) = match s.mode {
            Mode::Binary { .. } => (s.metrics.roc_auc, s.metrics.pr_auc),
            Mode::Multiclass => {
                let pc = s.per_class.iter().find(|p| p.class == c)?;
                (pc.roc_auc, pc.pr_auc)
            }
        };
        if roc {
            roc_auc
        } else {
            pr_auc
        }
    };
    let legend = |c: usize, roc: bool| match auc_of(c, roc) {
        Some(i) => format!(
            "{} ({} {:.3} [{:.3}, {:.3}])",
            name(c),
            if roc { "AUC" } else { "AP" },
            i.estimate,
            i.low,
            i.high
        ),
        None => name(c),
    };
    let level = bootstrap.level * 100.0;
    let caption = |what: &str| {
        format!(
            "{what}, with pointwise {level:.0}% bootstrap bands (shaded) over {} patients, {} resamples, seed {}{}.",
            g.len(),
            bootstrap.n_resamples,
            bootstrap.seed,
            if intervals.is_none() { " (the defaults: this evaluation stored no intervals)" } else { "" }
        )
    };
    let mut out = notes;
    for (curve, id, title, what, key) in [
        (
            Curve::Roc,
            "fig-roc",
            "ROC curve",
            "ROC curve (vertical averaging)",
            "roc_auc",
        ),
        (
            Curve::Pr,
            "fig-pr",
            "Precision-recall curve",
            "Precision-recall curve (interpolated precision)",
            "pr_auc",
        ),
    ] {
        let items: Vec<Banded> = bands
            .iter()
            .map(|(c, b)| Banded {
                bands: b,
                label: legend(*c, curve == Curve::Roc),
            })
            .collect();
        let svg = figures::banded(curve, title, &items);
        let legend_values: String = bands
            .iter()
            .filter_map(|(c, _)| {
                let i = auc_of(*c, curve == Curve::Roc)?;
                let ptr = match intervals.map(|s| s.mode) {
                    Some(Mode::Binary { .. }) => format!("{at}/metrics/{key}"),
                    _ => {
                        let k = intervals?.per_class.iter().position(|p| p.class == *c)?;
                        format!("{at}/per_class/{k}/{key}")
                    }
                };
                Some(format!(
                    " {}: {}",
                    esc(&name(*c)),
                    html::interval(&ptr, &Some(i))
                ))
            })
            .collect();
        out += &match svg {
            Ok(s) => figure(
                id,
                &inline_svg(&s),
                &format!("{}{legend_values}", caption(what)),
            ),
            Err(e) => format!("<p class=\"note\">{}</p>", esc(&e.to_string())),
        };
    }
    out
}

fn svg_or_note(id: &str, svg: Result<String, InferError>, caption: &str) -> String {
    match svg {
        Ok(s) => figure(id, &inline_svg(&s), caption),
        Err(e) => note(&format!("figure not drawn: {}", esc(&e.to_string()))),
    }
}

/// The reliability section: the diagram and its bins' numbers.
fn reliability_section(
    bins: &[ReliabilityBin],
    ece: Option<f64>,
    at: &str,
    ece_at: &str,
) -> String {
    let mut out = svg_or_note(
        "fig-reliability",
        figures::reliability(bins, ece.unwrap_or(0.0), "Reliability"),
        "Accuracy against confidence (top-class probability) per bin; the diagonal is perfect calibration.",
    );
    out += &format!("<p>ECE (15 bins): {}.</p>", opt_num(ece_at, ece));
    let rows: Vec<Vec<String>> = bins
        .iter()
        .enumerate()
        .filter(|(_, b)| b.count > 0)
        .map(|(i, b)| {
            vec![
                format!("{:.3}–{:.3}", b.lower, b.upper),
                count(&format!("{at}/{i}/count"), b.count),
                num(&format!("{at}/{i}/confidence"), b.confidence),
                num(&format!("{at}/{i}/accuracy"), b.accuracy),
            ]
        })
        .collect();
    out += "<details><summary>the bins</summary>";
    out += &table(
        "reliability-table",
        &["confidence", "images", "mean confidence", "accuracy"],
        &rows,
    );
    out += "</details>";
    out
}

fn gallery_section(cases: &[ErrorCase], classes: &[String], opts: &ReportOptions) -> String {
    if cases.is_empty() {
        return figure(
            "fig-gallery",
            "<p class=\"note\">no errors to show.</p>",
            "The most confident errors.",
        );
    }
    figure(
        "fig-gallery",
        &gallery::gallery_html(cases, classes, opts.overlay_side),
        &format!(
            "The {} most confident errors (highest probability of the wrong class), each with the Grad-CAM of the class it was called: red is what drove that call; the dimmed border is what the network did not see.",
            cases.len()
        ),
    )
}

/// The checkpoint a cross-validation's fold was tested with (its `eval.json`: `best` unless
/// `cv --checkpoint` said otherwise) and the data root of its images.
fn fold_checkpoint(run: &Run) -> (Checkpoint, PathBuf) {
    let which = run
        .eval_report()
        .ok()
        .flatten()
        .map_or(Checkpoint::Best, |r| r.checkpoint);
    let root = run.info(which).map(|i| i.data_root).unwrap_or_default();
    (which, root)
}

/// The name of a checkpoint's model for the card.
fn model_line(run: &Run, which: Checkpoint) -> String {
    match run.info(which) {
        Ok(info) => format!(
            "ResNeXt {} (layers {:?}, {} groups × {} channels), {}×{} input, {} weights of epoch {}.",
            esc(&format!("{:?}", info.model.arch)),
            info.model.layers,
            info.model.groups,
            info.model.width_per_group,
            info.image_size[0],
            info.image_size[1],
            which.name(),
            info.epoch
        ),
        Err(e) => format!("unknown ({})", esc(&e.to_string())),
    }
}

fn folder_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Run {
    /// The page of the run's last evaluation (`eval.json`), from what is on disk.
    pub fn report_html(&self, opts: &ReportOptions) -> Result<String, InferError> {
        let e = self.eval_report()?.ok_or_else(|| InferError::NotARun {
            dir: self.dir().to_path_buf(),
            reason: "it has no eval.json yet: run `resnext eval` first",
        })?;
        let classes = &e.classes;
        let mut page = Page::default();
        let split = self.split().ok();
        let config = self.read_text(RunFile::Config).ok();
        // the data
        let mut parts = Vec::new();
        if let Some(s) = &split {
            for (name, paths) in [("train", &s.train), ("val", &s.val), ("test", &s.test)] {
                let groups = self.groups_of_paths(paths)?;
                parts.push(PartCounts::of(name, paths, &groups, classes));
            }
        }
        let mut data = format!(
            "<p>{} classes: {}. Patients are the run's <code>data.group_regex</code> groups{}.</p>",
            classes.len(),
            sections::class_list(classes),
            if self.group_regex().is_some() {
                ""
            } else {
                " (none set: each image its own)"
            }
        );
        data += &match &split {
            Some(_) => sections::data_table(&parts, classes, "part"),
            None => note("no split.json"),
        };
        page.section("data", "Data", data);
        page.section(
            "config",
            "Config",
            sections::config_block(
                "config.toml: the fully resolved training config",
                config.as_deref(),
            ),
        );
        // the metrics
        let mut metrics = format!(
            "<p>The <strong>{}</strong> part, {} weights{}.</p>",
            esc(&e.split),
            e.checkpoint.name(),
            if e.tta {
                ", with flip test-time augmentation"
            } else {
                ""
            }
        );
        metrics += &match &e.intervals {
            Some(s) => sections::intervals_tables("/intervals", s, classes),
            None => note(NO_INTERVALS),
        };
        metrics += "<h3>Classification report</h3>";
        metrics += &sections::report_tables(&e.report);
        page.section("metrics", "Metrics", metrics);
        // training curves
        let rows = self.metrics().unwrap_or_default();
        page.section(
            "curves",
            "Training curves",
            if rows.is_empty() {
                note("no epochs in metrics.csv")
            } else {
                svg_or_note(
                    "fig-curves",
                    figures::curves(&rows),
                    "Accuracy and loss per epoch, train and validation (metrics.csv).",
                )
            },
        );
        page.section(
            "confusion",
            "Confusion matrix",
            svg_or_note(
                "fig-confusion",
                figures::confusion(
                    classes,
                    &e.report.confusion_matrix,
                    &format!("Confusion matrix ({} part)", e.split),
                ),
                CONFUSION_CAPTION,
            ),
        );
        // the curves and the gallery need each image's prediction
        let preds = self.predictions_of(&e)?;
        let curves = match &preds {
            Some(p) => {
                let (probs, labels) = p.probs_labels();
                let paths: Vec<String> = p.images.iter().map(|r| r.path.clone()).collect();
                let scored = Scored {
                    probs,
                    labels,
                    groups: self.groups_of_paths(&paths)?,
                };
                let which = banded_classes(
                    e.intervals.as_ref(),
                    e.operating_point.as_ref(),
                    classes.len(),
                );
                curve_figures(
                    &scored,
                    classes,
                    &which,
                    e.intervals.as_ref(),
                    "/intervals",
                    opts,
                )
            }
            None => note(NO_PREDICTIONS),
        };
        page.section("roc-pr", "ROC and precision-recall", curves);
        page.section(
            "calibration",
            "Reliability",
            match &e.reliability {
                Some(bins) => reliability_section(bins, e.report.ece, "/reliability", "/ece"),
                None => note("no reliability bins in this eval.json"),
            },
        );
        page.section(
            "operating-point",
            "Operating point",
            match &e.operating_point {
                Some(op) => {
                    sections::operating_point("/operating_point", op, e.partial_auc.as_ref())
                }
                None => note(NO_OPERATING_POINT),
            },
        );
        page.section(
            "subgroups",
            "Subgroups",
            if e.subgroups.is_empty() {
                note(NO_SUBGROUPS)
            } else {
                sections::subgroups(&e.subgroups)
            },
        );
        let gallery = match (&preds, opts.gallery) {
            (Some(p), n) if n > 0 => {
                let root = match &p.data_root {
                    Some(r) => r.clone(),
                    None => self
                        .info(e.checkpoint)
                        .map(|i| i.data_root)
                        .unwrap_or_default(),
                };
                let cases = p
                    .images
                    .iter()
                    .map(|row| ErrorCase {
                        run: self.clone(),
                        checkpoint: e.checkpoint,
                        data_root: root.clone(),
                        row: row.clone(),
                        source: String::new(),
                    })
                    .collect();
                gallery_section(&gallery::most_confident_errors(cases, n), classes, opts)
            }
            _ => "<p class=\"note\">no gallery (no per-image predictions, or a gallery of 0).</p>"
                .into(),
        };
        page.section("errors", "Most confident errors", gallery);
        let train = parts.iter().find(|p| p.name == "train");
        let card = Card {
            classes,
            model: model_line(self, e.checkpoint),
            training: match (train, self.info(e.checkpoint)) {
                (Some(t), Ok(info)) => format!(
                    "{} images of {} patients from the folder <code>{}</code> ({}).",
                    t.images,
                    t.patients,
                    esc(&folder_name(&info.data_root)),
                    t.class_counts(classes)
                ),
                _ => "unknown (no split.json or sidecar).".into(),
            },
            evaluation: format!(
                "The {} part: {} images{}.",
                esc(&e.split),
                e.report.samples,
                e.intervals
                    .as_ref()
                    .and_then(|s| s.metrics.accuracy)
                    .map_or(String::new(), |a| format!(
                        " of {} patients; accuracy {a}",
                        e.intervals.as_ref().map_or(0, |s| s.groups)
                    ))
            ),
            accuracy: e.intervals.as_ref().and_then(|s| s.metrics.accuracy),
            subgroups: !e.subgroups.is_empty(),
        };
        page.section("model-card", "Model card", sections::model_card(&card));
        Ok(page.render(
            &format!("Evaluation of {}", folder_name(self.dir())),
            &format!(
                "{} part, {} images, {} weights",
                e.split,
                e.report.samples,
                e.checkpoint.name()
            ),
        ))
    }

    /// Writes the run's page to `out` (default `report.html` in the run); returns the path.
    pub fn write_report(
        &self,
        out: Option<&Path>,
        opts: &ReportOptions,
    ) -> Result<PathBuf, InferError> {
        let path = out.map_or_else(|| self.path(RunFile::Report), Path::to_path_buf);
        let html = self.report_html(opts)?;
        resnext_io::write_atomic(&path, html.as_bytes())?;
        Ok(path)
    }
}

/// One row of a cross-validation's metrics (a fold, their mean or std, the pooled ones), as
/// `cv.json` holds it at `pointer`.
#[derive(Debug, Clone, PartialEq)]
pub struct CvRow {
    pub name: String,
    pub pointer: String,
    pub n: Option<usize>,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub roc_auc: Option<f64>,
    pub ece: Option<f64>,
}

/// A fold's run directory.
#[derive(Debug, Clone, PartialEq)]
struct CvFold {
    name: String,
    dir: PathBuf,
    repeat: usize,
    fold: usize,
}

/// What a cross-validation's page shows: `cv.json`'s contents (the training crate's
/// `CvSummary`, given field by field) and its directory, whose `folds.json` and folds'
/// predictions are read ([`CvDir`]).
#[derive(Debug, Clone)]
pub struct CvReport<'a> {
    pub dir: &'a Path,
    pub classes: &'a [String],
    pub folds: Vec<CvRow>,
    pub mean: CvRow,
    pub std: CvRow,
    pub pooled: CvRow,
    pub confusion_matrix: &'a [Vec<usize>],
    pub reliability: &'a [ReliabilityBin],
    pub intervals: Option<&'a Summary>,
    pub operating_point: Option<&'a AtOperatingPoint>,
    pub partial_auc: Option<&'a PartialAuc>,
    pub subgroups: &'a [Subgroup],
}

fn cv_metrics_table(rows: &[&CvRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let p = &r.pointer;
            vec![
                esc(&r.name),
                r.n.map_or(String::new(), |n| count(&format!("{p}/n"), n)),
                num(&format!("{p}/accuracy"), r.accuracy),
                num(&format!("{p}/macro_precision"), r.macro_precision),
                num(&format!("{p}/macro_recall"), r.macro_recall),
                num(&format!("{p}/macro_f1"), r.macro_f1),
                opt_num(&format!("{p}/roc_auc"), r.roc_auc),
                opt_num(&format!("{p}/ece"), r.ece),
            ]
        })
        .collect();
    table(
        "folds-table",
        &[
            "fold",
            "images",
            "accuracy",
            "macro precision",
            "macro recall",
            "macro F1",
            "ROC-AUC",
            "ECE",
        ],
        &body,
    )
}

/// The page of a cross-validation.
pub fn cv_report_html(cv: &CvReport, opts: &ReportOptions) -> Result<String, InferError> {
    let classes = cv.classes;
    let mut page = Page::default();
    let dir = CvDir::open(cv.dir)?;
    let folds = &dir.folds;
    let fold_runs: Vec<CvFold> = (0..folds.repeats)
        .flat_map(|repeat| (0..folds.k).map(move |fold| (repeat, fold)))
        .map(|(repeat, fold)| {
            let name = fold_name(folds.repeats, repeat, fold);
            CvFold {
                dir: cv.dir.join(&name),
                name,
                repeat,
                fold,
            }
        })
        .collect();
    // the data: each fold's test images
    let count = |name: &str, of: &dyn Fn(&resnext_data::folds::FoldImage) -> bool| {
        let imgs: Vec<_> = folds.images.iter().filter(|i| of(i)).collect();
        let paths: Vec<String> = imgs.iter().map(|i| i.path.clone()).collect();
        let groups: Vec<String> = imgs.iter().map(|i| i.group.clone()).collect();
        PartCounts::of(name, &paths, &groups, classes)
    };
    let parts: Vec<PartCounts> = fold_runs
        .iter()
        .map(|f| count(&f.name, &|i| i.folds.get(f.repeat) == Some(&f.fold)))
        .collect();
    let all = count("all", &|_| true);
    let mut data = format!(
        "<p>{} classes: {}. {} images of {} patients in {} folds{}; every patient's images are in one fold (folds.json).</p>",
        classes.len(),
        sections::class_list(classes),
        all.images,
        all.patients,
        folds.k,
        if folds.repeats > 1 { format!(", {} repeats", folds.repeats) } else { String::new() }
    );
    let mut rows = parts.clone();
    rows.push(all.clone());
    data += &sections::data_table(&rows, classes, "test fold");
    page.section("data", "Data", data);
    let settings =
        std::fs::read_to_string(cv.dir.join(crate::cv_dir::CvFile::Settings.name())).ok();
    page.section(
        "config",
        "Config",
        sections::config_block(
            "cv.toml: the settings every fold trains with",
            settings.as_deref(),
        ),
    );
    let mut metrics = String::from("<h3>Pooled out-of-fold predictions</h3>");
    metrics += &match cv.intervals {
        Some(s) => sections::intervals_tables("/pooled/intervals", s, classes),
        None => note("no intervals (--bootstrap 0, or one class only)."),
    };
    metrics += "<h3>Each fold's test metrics</h3>";
    let mut table_rows: Vec<&CvRow> = cv.folds.iter().collect();
    table_rows.extend([&cv.mean, &cv.std, &cv.pooled]);
    metrics += &cv_metrics_table(&table_rows);
    let plots: Vec<CvFoldPlot> = cv
        .folds
        .iter()
        .map(|f| CvFoldPlot {
            name: f.name.clone(),
            accuracy: f.accuracy,
            macro_f1: f.macro_f1,
            roc_auc: f.roc_auc,
            ece: f.ece.unwrap_or(0.0),
            roc_curve: None,
        })
        .collect();
    metrics += &svg_or_note(
        "fig-folds",
        figures::fold_metrics(&plots),
        "Each fold's test accuracy, macro F1, ROC-AUC and ECE.",
    );
    page.section("metrics", "Metrics", metrics);
    // each fold's training curves
    let mut curves = String::new();
    for (i, f) in fold_runs.iter().enumerate() {
        let rows = Run::at(&f.dir).metrics().unwrap_or_default();
        curves += &if rows.is_empty() {
            format!("<p class=\"note\">{}: no epochs</p>", esc(&f.name))
        } else {
            svg_or_note(
                &format!("fig-curves-{i}"),
                figures::curves(&rows),
                &format!("{}: accuracy and loss per epoch.", esc(&f.name)),
            )
        };
    }
    page.section("curves", "Training curves", curves);
    page.section(
        "confusion",
        "Confusion matrix",
        svg_or_note(
            "fig-confusion",
            figures::confusion(classes, cv.confusion_matrix, "Pooled confusion matrix"),
            "Every fold's test predictions together. Rows: true class; columns: predicted class.",
        ),
    );
    // the pooled out-of-fold predictions, with their patients (folds.json's groups)
    let groups = dir.groups();
    let curves = if dir.predictions.is_empty() {
        note("no out-of-fold predictions.")
    } else {
        let scored = Scored {
            probs: dir
                .predictions
                .iter()
                .map(|p| p.prediction.probs.clone())
                .collect(),
            labels: dir.predictions.iter().map(|p| p.prediction.label).collect(),
            groups,
        };
        let which = banded_classes(cv.intervals, cv.operating_point, classes.len());
        curve_figures(
            &scored,
            classes,
            &which,
            cv.intervals,
            "/pooled/intervals",
            opts,
        )
    };
    page.section("roc-pr", "ROC and precision-recall", curves);
    page.section(
        "calibration",
        "Reliability",
        reliability_section(
            cv.reliability,
            cv.pooled.ece,
            "/pooled/reliability",
            "/pooled/ece",
        ),
    );
    page.section(
        "operating-point",
        "Operating point",
        match cv.operating_point {
            Some(op) => format!(
                "<p class=\"note\">Cross-fitted: each fold was decided at the threshold chosen on the other folds' out-of-fold predictions; the threshold below, to deploy, is chosen on all of them.</p>{}",
                sections::operating_point("/operating_point", op, cv.partial_auc)
            ),
            None => note(NO_CV_OPERATING_POINT),
        },
    );
    page.section(
        "subgroups",
        "Subgroups",
        if cv.subgroups.is_empty() {
            note(NO_CV_SUBGROUPS)
        } else {
            sections::subgroups(cv.subgroups)
        },
    );
    // the checkpoint each fold was tested with (`cv --checkpoint`, its eval.json) and its data
    let tested: std::collections::HashMap<&str, (Checkpoint, PathBuf)> = fold_runs
        .iter()
        .map(|f| (f.name.as_str(), fold_checkpoint(&Run::at(&f.dir))))
        .collect();
    let gallery = if opts.gallery > 0 {
        let cases: Vec<ErrorCase> = dir
            .predictions
            .iter()
            .map(|p| {
                let name = fold_name(folds.repeats, p.repeat, p.fold);
                let (checkpoint, root) = tested
                    .get(name.as_str())
                    .cloned()
                    .unwrap_or((Checkpoint::Best, PathBuf::new()));
                ErrorCase {
                    run: Run::at(cv.dir.join(&name)),
                    checkpoint,
                    data_root: root,
                    row: PredictionRow::from(&p.prediction),
                    source: name,
                }
            })
            .collect();
        gallery_section(
            &gallery::most_confident_errors(cases, opts.gallery),
            classes,
            opts,
        )
    } else {
        note("no gallery (a gallery of 0).")
    };
    page.section("errors", "Most confident errors", gallery);
    let first = fold_runs.first().map(|f| Run::at(&f.dir));
    let card = Card {
        classes,
        model: first.as_ref().map_or_else(
            || "unknown".into(),
            |r| {
                format!(
                    "{} Each fold trains its own model of these settings.",
                    model_line(r, fold_checkpoint(r).0)
                )
            },
        ),
        training: format!(
            "{} images of {} patients ({}); each fold's model trains on the other folds.",
            all.images,
            all.patients,
            all.class_counts(classes)
        ),
        evaluation: format!(
            "{}-fold cross-validation: {} out-of-fold predictions{}.",
            folds.k,
            cv.pooled.n.unwrap_or(0),
            cv.intervals
                .and_then(|s| s.metrics.accuracy)
                .map_or(String::new(), |a| format!("; pooled accuracy {a}"))
        ),
        accuracy: cv.intervals.and_then(|s| s.metrics.accuracy),
        subgroups: false,
    };
    page.section("model-card", "Model card", sections::model_card(&card));
    Ok(page.render(
        &format!("Cross-validation {}", folder_name(cv.dir)),
        &format!(
            "{} folds, {} out-of-fold predictions",
            folds.k,
            cv.pooled.n.unwrap_or(0)
        ),
    ))
}

/// Writes a cross-validation's page to `out` (default `report.html` in its directory).
pub fn write_cv_report(
    cv: &CvReport,
    out: Option<&Path>,
    opts: &ReportOptions,
) -> Result<PathBuf, InferError> {
    let path = out.map_or_else(
        || cv.dir.join(crate::cv_dir::CvFile::Report.name()),
        Path::to_path_buf,
    );
    let html = cv_report_html(cv, opts)?;
    resnext_io::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}
