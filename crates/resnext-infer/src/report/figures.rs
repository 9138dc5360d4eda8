//! The report's figures as inline SVG: the training curves, the confusion matrix, the
//! reliability diagram and the per-fold metrics are `plot.rs`'s drawings on plotters' SVG
//! backend; the ROC and PR curves with their bootstrap bands are drawn here.

use crate::error::InferError;
use crate::metric::{EpochRow, ReliabilityBin};
use crate::plot::{
    confusion_size, draw_confusion, draw_curves, draw_fold_metrics, draw_legend, draw_reliability,
    legend_line, svg, unit_chart, AreaOf, CvFoldPlot, DrawResult, CURVES_SIZE, SQUARE_SIZE,
};
use plotters::prelude::*;
use resnext_stats::CurveBands;

/// The training curves of `metrics.csv`.
pub fn curves(rows: &[EpochRow]) -> Result<String, InferError> {
    svg(CURVES_SIZE, |a| draw_curves(a, rows))
}

/// A confusion matrix (rows: true class).
pub fn confusion(classes: &[String], cm: &[Vec<usize>], title: &str) -> Result<String, InferError> {
    svg(confusion_size(cm.len()), |a| {
        draw_confusion(a, classes, cm, title)
    })
}

/// The reliability diagram.
pub fn reliability(bins: &[ReliabilityBin], ece: f64, title: &str) -> Result<String, InferError> {
    svg(SQUARE_SIZE, |a| draw_reliability(a, bins, ece, title))
}

/// Each fold's test metrics as bars.
pub fn fold_metrics(folds: &[CvFoldPlot]) -> Result<String, InferError> {
    svg((1000, 520), |a| draw_fold_metrics(a, folds))
}

/// Which curve of a [`CurveBands`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    Roc,
    Pr,
}

/// One class's curve to draw, with its legend.
pub struct Banded<'a> {
    pub bands: &'a CurveBands,
    pub label: String,
}

/// The ROC or PR curves of some classes, each exact line over its shaded pointwise band.
pub fn banded(curve: Curve, title: &str, classes: &[Banded]) -> Result<String, InferError> {
    svg(SQUARE_SIZE, |a| draw_banded(a, curve, title, classes))
}

fn draw_banded<DB: DrawingBackend>(
    area: &AreaOf<DB>,
    curve: Curve,
    title: &str,
    classes: &[Banded],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let descs = match curve {
        Curve::Roc => ("false positive rate", "true positive rate"),
        Curve::Pr => ("recall (sensitivity)", "precision (PPV)"),
    };
    let mut chart = unit_chart(area, title, (24, 20, 16), descs)?;
    for (k, c) in classes.iter().enumerate() {
        let color = if classes.len() == 1 {
            RED.to_rgba()
        } else {
            Palette99::pick(k).to_rgba()
        };
        let (points, line) = match curve {
            Curve::Roc => (&c.bands.roc, &c.bands.roc_curve),
            Curve::Pr => (&c.bands.pr, &c.bands.pr_curve),
        };
        let mut outline: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.high)).collect();
        outline.extend(points.iter().rev().map(|p| (p.x, p.low)));
        chart.draw_series(std::iter::once(Polygon::new(
            outline,
            color.mix(0.18).filled(),
        )))?;
        let line = match curve {
            Curve::Roc => line.clone(),
            // drawn as scikit-learn's precision_recall_curve: a step at each recall
            Curve::Pr => {
                let mut steps = Vec::with_capacity(2 * line.len() + 1);
                let mut prev = line.first().map_or(1.0, |&(_, p)| p);
                steps.push((0.0, prev));
                for &(r, p) in line {
                    steps.push((r, prev));
                    steps.push((r, p));
                    prev = p;
                }
                steps
            }
        };
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(3)))?
            .label(c.label.clone())
            .legend(legend_line(color.stroke_width(3)));
    }
    if curve == Curve::Roc {
        crate::plot::draw_chance(&mut chart)?;
    }
    let position = match curve {
        Curve::Roc => SeriesLabelPosition::LowerRight,
        Curve::Pr => SeriesLabelPosition::LowerLeft,
    };
    draw_legend(&mut chart, 18, position)
}
