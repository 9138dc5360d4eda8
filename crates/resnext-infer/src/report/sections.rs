//! The report's tables and text, each from the struct that is serialised to `eval.json` or
//! `cv.json` (numbers tagged with their JSON pointer, see `html.rs`): the data per part or fold,
//! the config, the metrics with their intervals, the operating point, the subgroups, and the
//! model card.

use super::html::{count, esc, interval, num, opt_num, table};
use crate::metric::operating_point::{AtOperatingPoint, PartialAuc};
use crate::metric::subgroup::Subgroup;
use crate::metric::Report;
use resnext_stats::{Interval, Metrics, Mode, Summary};

/// Images of one part (or fold) of the data: how many, of how many patients, per class.
#[derive(Debug, Clone, PartialEq)]
pub struct PartCounts {
    pub name: String,
    pub images: usize,
    pub patients: usize,
    pub per_class: Vec<usize>,
}

impl PartCounts {
    /// Counts `paths` (ImageFolder paths: the first component is the class) and their patients.
    pub fn of(name: &str, paths: &[String], groups: &[String], classes: &[String]) -> Self {
        let mut per_class = vec![0; classes.len()];
        for p in paths {
            let class = p.split('/').next().unwrap_or("");
            if let Some(i) = classes.iter().position(|c| c == class) {
                per_class[i] += 1;
            }
        }
        let patients: std::collections::BTreeSet<&String> = groups.iter().collect();
        Self {
            name: name.to_string(),
            images: paths.len(),
            patients: patients.len(),
            per_class,
        }
    }

    /// `class: count` of each class, escaped, separated by commas.
    pub fn class_counts(&self, classes: &[String]) -> String {
        let counts = classes.iter().zip(&self.per_class);
        counts
            .map(|(c, n)| format!("{}: {n}", esc(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The class names, escaped and in bold, separated by commas.
pub fn class_list(classes: &[String]) -> String {
    classes
        .iter()
        .map(|c| format!("<strong>{}</strong>", esc(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The data table: one row per part or fold.
pub fn data_table(parts: &[PartCounts], classes: &[String], first: &str) -> String {
    let mut header = vec![esc(first), "images".into(), "patients".into()];
    header.extend(classes.iter().map(|c| esc(c)));
    let rows: Vec<Vec<String>> = parts
        .iter()
        .map(|p| {
            let mut r = vec![esc(&p.name), p.images.to_string(), p.patients.to_string()];
            r.extend(p.per_class.iter().map(|n| n.to_string()));
            r
        })
        .collect();
    table("data-table", &header, &rows)
}

/// A config file's text, escaped.
pub fn config_block(name: &str, text: Option<&str>) -> String {
    match text {
        Some(t) => format!(
            "<details><summary>{}</summary><pre id=\"config\">{}</pre></details>",
            esc(name),
            esc(t)
        ),
        None => format!("<p class=\"note\">no {} in the directory</p>", esc(name)),
    }
}

/// The headline metrics with their intervals, per-class intervals (multi-class) and the
/// calibration, from a [`Summary`] at JSON pointer `at`.
pub fn intervals_tables(at: &str, s: &Summary, classes: &[String]) -> String {
    let name = |c: usize| esc(classes.get(c).map_or("?", |s| s.as_str()));
    let b = &s.bootstrap;
    let unit = if s.groups == s.images {
        "images (no patient grouping)".to_string()
    } else {
        format!("patients ({} images)", s.images)
    };
    let mode = match s.mode {
        Mode::Binary {
            positive,
            threshold,
        } => format!(
            "positive class <strong>{}</strong>, called positive at probability ≥ {threshold}",
            name(positive)
        ),
        Mode::Multiclass => {
            "top-1 decisions; sensitivity to F1 and the AUCs are macro averages of one-vs-rest"
                .into()
        }
    };
    let mut out = format!(
        "<p class=\"note\">{:.0}% percentile bootstrap intervals over {} {unit}, {} resamples, seed {}; {mode}.</p>",
        b.level * 100.0,
        count(&format!("{at}/groups"), s.groups),
        count(&format!("{at}/bootstrap/n_resamples"), b.n_resamples),
        b.seed
    );
    let rows: Vec<Vec<String>> = s
        .metrics
        .named()
        .into_iter()
        .map(|(key, label, v)| {
            vec![
                label.to_string(),
                interval(&format!("{at}/metrics/{key}"), &v),
                v.map_or(String::new(), |i| {
                    format!("{} of {}", i.resamples_used, b.n_resamples)
                }),
            ]
        })
        .collect();
    out += &table(
        "metrics-table",
        &[
            "metric",
            &format!("estimate [{:.0}% interval]", b.level * 100.0),
            "resamples used",
        ],
        &rows,
    );
    if let Some(first) = s.per_class.first() {
        out += "<h3>Each class against the rest</h3>";
        let rows: Vec<Vec<String>> = s
            .per_class
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut r = vec![name(c.class)];
                r.extend(
                    c.named()
                        .map(|(k, _, v)| interval(&format!("{at}/per_class/{i}/{k}"), &v)),
                );
                r
            })
            .collect();
        let mut header = vec!["class".to_string()];
        header.extend(first.named().map(|(_, label, _)| label.to_string()));
        out += &table("per-class-intervals", &header, &rows);
    }
    out += "<h3>Calibration</h3><p class=\"note\">Calibration-in-the-large (intercept, 0 is calibrated) and slope (1 is calibrated; below 1: predictions too extreme) of each class's probability (Van Calster et al. 2019).</p>";
    let rows: Vec<Vec<String>> = s
        .calibration
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                name(c.class),
                interval(&format!("{at}/calibration/{i}/intercept"), &c.intercept),
                interval(&format!("{at}/calibration/{i}/slope"), &c.slope),
            ]
        })
        .collect();
    out += &table("calibration-table", &["class", "intercept", "slope"], &rows);
    out
}

/// The classification report's point estimates (`eval.json`'s top level).
pub fn report_tables(r: &Report) -> String {
    let mut out = format!(
        "<p>{} images; accuracy {}, macro F1 {}, ROC-AUC {}, ECE {}, loss {}.</p>",
        count("/samples", r.samples),
        num("/accuracy", r.accuracy),
        num("/macro/f1", r.macro_avg.f1),
        opt_num("/roc_auc", r.roc_auc),
        opt_num("/ece", r.ece),
        num("/loss", r.loss),
    );
    let mut rows: Vec<Vec<String>> = r
        .per_class
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                esc(&c.class),
                num(&format!("/per_class/{i}/precision"), c.precision),
                num(&format!("/per_class/{i}/recall"), c.recall),
                num(&format!("/per_class/{i}/f1"), c.f1),
                count(&format!("/per_class/{i}/support"), c.support),
            ]
        })
        .collect();
    for (key, label, a) in [
        ("macro", "macro average", &r.macro_avg),
        ("weighted", "weighted average", &r.weighted),
    ] {
        rows.push(vec![
            label.to_string(),
            num(&format!("/{key}/precision"), a.precision),
            num(&format!("/{key}/recall"), a.recall),
            num(&format!("/{key}/f1"), a.f1),
            count(&format!("/{key}/support"), a.support),
        ]);
    }
    out += &table(
        "report-table",
        &["class", "precision", "recall", "F1", "support"],
        &rows,
    );
    out
}

/// The operating point (at JSON pointer `at`) and, if any, the partial AUC (`/partial_auc`).
pub fn operating_point(at: &str, op: &AtOperatingPoint, pauc: Option<&PartialAuc>) -> String {
    let p = &op.point;
    let mut out = format!(
        "<p>Positive class <strong>{}</strong>, criterion <code>{}</code>: threshold {} on its probability, chosen on <strong>{}</strong> ({} images), reported on <strong>{}</strong> ({} images). The threshold is never chosen on the part it is reported on.</p>",
        esc(&p.positive),
        esc(&p.criterion),
        num(&format!("{at}/threshold"), p.threshold),
        esc(&p.chosen_on),
        count(&format!("{at}/chosen_on_images"), p.chosen_on_images),
        esc(&op.reported_on),
        count(&format!("{at}/images"), op.images),
    );
    let rows: Vec<Vec<String>> = [
        ("sensitivity", "sensitivity", &op.sensitivity),
        ("specificity", "specificity", &op.specificity),
        ("ppv", "PPV", &op.ppv),
        ("npv", "NPV", &op.npv),
    ]
    .into_iter()
    .map(|(k, label, v)| vec![label.to_string(), interval(&format!("{at}/{k}"), v)])
    .collect();
    out += &table(
        "operating-point-table",
        &["at the threshold", "estimate [interval]"],
        &rows,
    );
    if let Some(a) = pauc {
        out += &format!(
            "<p>Partial ROC-AUC of <strong>{}</strong> above sensitivity {} (ISIC 2024; range 0 to {:.2}): {}.</p>",
            esc(&a.positive),
            num("/partial_auc/min_tpr", a.min_tpr),
            1.0 - a.min_tpr,
            interval("/partial_auc/pauc", &a.pauc)
        );
    }
    out
}

/// One table per subgroup column: each value's size and metrics with intervals.
pub fn subgroups(groups: &[Subgroup]) -> String {
    let mut out = format!(
        "<p class=\"note\">Groups under {} images are flagged: their intervals are too wide to read.</p>",
        crate::metric::subgroup::MIN_SUBGROUP
    );
    let mut columns: Vec<&str> = Vec::new();
    for g in groups {
        if !columns.contains(&g.column.as_str()) {
            columns.push(&g.column);
        }
    }
    // the metrics of the subgroup tables: all but balanced accuracy, F1 and PR-AUC
    let shown = |m: Metrics| {
        m.named()
            .into_iter()
            .filter(|(k, ..)| !matches!(*k, "balanced_accuracy" | "f1" | "pr_auc"))
    };
    for (c, column) in columns.iter().enumerate() {
        out += &format!("<h3>By <code>{}</code></h3>", esc(column));
        let rows: Vec<Vec<String>> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.column == *column)
            .map(|(i, g)| {
                let flag = if g.small {
                    " <span class=\"small-flag\">small</span>"
                } else {
                    ""
                };
                let mut r = vec![
                    format!("{}{flag}", esc(&g.value)),
                    count(&format!("/subgroups/{i}/n"), g.n),
                ];
                let m = g
                    .intervals
                    .as_ref()
                    .map_or(Metrics::default(), |s| s.metrics);
                r.extend(shown(m).map(|(k, _, v)| {
                    interval(&format!("/subgroups/{i}/intervals/metrics/{k}"), &v)
                }));
                r
            })
            .collect();
        let mut header = vec![esc(column), "images".to_string()];
        header.extend(shown(Metrics::default()).map(|(_, l, _)| l.to_string()));
        out += &table(&format!("subgroups-{c}"), &header, &rows);
    }
    out
}

/// What the model card says.
pub struct Card<'a> {
    pub classes: &'a [String],
    /// The model (architecture, input size, checkpoint).
    pub model: String,
    /// The training data (its folder's name and counts).
    pub training: String,
    /// What it was evaluated on and the headline figure.
    pub evaluation: String,
    /// The accuracy interval, whose width is a limitation of its own.
    pub accuracy: Option<Interval>,
    pub subgroups: bool,
}

/// The model card: intended use, model, training data, evaluation, limitations.
pub fn model_card(c: &Card) -> String {
    let classes = class_list(c.classes);
    let width = c.accuracy.map_or(String::new(), |i| {
        format!(
            " The accuracy's {:.0}% interval is {:.1} points wide: a smaller test set, or one patient more or less, moves it.",
            i.level * 100.0,
            (i.high - i.low) * 100.0
        )
    });
    let subgroups = if c.subgroups {
        "The subgroup tables above are the only measure of how it does across groups; small groups are flagged."
    } else {
        "It was not evaluated per subgroup (skin tone, body site, camera, source): skin-lesion models are known to lose accuracy on darker skin (Daneshjou et al. 2022). Run <code>resnext eval --metadata FILE.csv --by COLUMN</code>."
    };
    format!(
        "<dl class=\"card\" id=\"model-card\">\
<dt>Intended use</dt><dd>Research and teaching: studying how a ResNeXt image classifier separates {classes} in photos like the ones it was trained on. <strong>Not a diagnostic device</strong>: it must not be used to diagnose, screen or triage anyone, nor in place of a clinician.</dd>\
<dt>Model</dt><dd>{}</dd>\
<dt>Training data</dt><dd>{}</dd>\
<dt>Evaluation</dt><dd>{}</dd>\
<dt>Limitations</dt><dd><ul>\
<li>Only photos like the training data: other cameras, lighting, skin tones, body sites or diseases not among its classes give answers with no known accuracy.{width}</li>\
<li>{subgroups}</li>\
<li>The probabilities are calibrated only as far as the calibration table and the reliability diagram show; a threshold is only as good as the part it was chosen on.</li>\
<li>No prospective or external validation: every figure here is retrospective, on data from the same collection.</li>\
</ul></dd></dl>",
        c.model, c.training, c.evaluation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_count_images_patients_and_classes() {
        let classes = ["a".to_string(), "b<".to_string()];
        let paths = ["a/1.png", "a/2.png", "b</3.png", "x/4.png"].map(String::from);
        let groups = ["p1", "p1", "p2", "p3"].map(String::from);
        let p = PartCounts::of("test", &paths, &groups, &classes);
        assert_eq!((p.images, p.patients, p.per_class), (4, 3, vec![2, 1]));
        let t = data_table(
            &[PartCounts::of("t", &paths, &groups, &classes)],
            &classes,
            "part",
        );
        assert!(t.contains("<th>b&lt;</th>") && !t.contains("b<"), "{t}");
    }
}
