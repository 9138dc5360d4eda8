//! PNG figures of a run, drawn with plotters (no Python): the training curves as in the original
//! tutorial's figure (accuracy and loss, train vs validation), and, from `eval.json`, the
//! confusion matrix as a heatmap with counts and the binary ROC curve. Behind the `plot` feature,
//! so that users who only train do not build plotters.
//!
//! Each figure is drawn on any plotters backend ([`DrawingArea`] of a `DrawingBackend`): a PNG
//! here, an SVG string for `report.html` (`svg`), from the same drawing code.

use crate::error::InferError;
use crate::metric::{EpochRow, ReliabilityBin};
use crate::progress::Progress;
use crate::run::{Run, RunFile};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

pub(crate) fn register_font() -> Result<(), InferError> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(InferError::Plot(
            "the embedded font could not be loaded".into(),
        ))
    }
}

pub(crate) type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// The size of the training curves' figure.
pub(crate) const CURVES_SIZE: (u32, u32) = (1400, 560);
/// The size of the ROC, PR and reliability figures.
pub(crate) const SQUARE_SIZE: (u32, u32) = (760, 700);

/// A drawing area of any backend.
pub(crate) type AreaOf<DB> = DrawingArea<DB, plotters::coord::Shift>;

/// A figure of `size` drawn by `draw` as an SVG document (text as `<text>` in the reader's
/// sans-serif, escaped by plotters).
pub(crate) fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&AreaOf<SVGBackend>) -> DrawResult,
) -> Result<String, InferError> {
    register_font()?;
    let mut out = String::new();
    let drawn = || -> DrawResult {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    };
    drawn().map_err(|e| InferError::Plot(e.to_string()))?;
    Ok(out)
}

/// What a figure is drawn on: an RGB buffer that becomes a PNG in memory, written to its file by
/// the one writer (`resnext_io`), so a figure is complete or absent and never replaces what is
/// not a regular file.
#[derive(Default)]
pub(crate) struct Canvas {
    size: (u32, u32),
    rgb: Vec<u8>,
}

impl Canvas {
    /// A white drawing area of `size` pixels.
    fn area(&mut self, size: (u32, u32)) -> Area<'_> {
        self.size = size;
        self.rgb = vec![255; size.0 as usize * size.1 as usize * 3];
        BitMapBackend::with_buffer(&mut self.rgb, size).into_drawing_area()
    }

    fn png(&self) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(
            &self.rgb,
            self.size.0,
            self.size.1,
            image::ExtendedColorType::Rgb8,
        )?;
        Ok(out)
    }
}

/// Draws a figure and writes it to `out` as a PNG (atomically).
fn atomic_png(out: &Path, draw: impl FnOnce(&mut Canvas) -> DrawResult) -> DrawResult {
    resnext_io::check_target(out)?;
    let mut canvas = Canvas::default();
    draw(&mut canvas)?;
    resnext_io::write_atomic(out, &canvas.png()?)?;
    Ok(())
}

/// The training curves (accuracy and loss per epoch, train and validation) on an area of
/// [`CURVES_SIZE`].
pub(crate) fn draw_curves<DB: DrawingBackend>(root: &AreaOf<DB>, rows: &[EpochRow]) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let max_epoch = rows.iter().map(|r| r.epoch).max().unwrap_or(1) as f64;
    let x_range = if max_epoch <= 1.0 {
        0.5..1.5
    } else {
        1.0..max_epoch
    };
    type Series = (&'static str, fn(&EpochRow) -> f64, RGBColor);
    let specs: [(&str, &str, [Series; 2]); 2] = [
        (
            "Accuracy",
            "accuracy (%)",
            [
                ("train", |r| r.train_acc * 100.0, BLUE),
                ("validation", |r| r.val_acc * 100.0, RED),
            ],
        ),
        (
            "Loss",
            "cross-entropy loss",
            [
                ("train", |r| r.train_loss, BLUE),
                ("validation", |r| r.val_loss, RED),
            ],
        ),
    ];
    for (panel, (title, ylabel, series)) in panels.iter().zip(specs) {
        let values: Vec<f64> = series
            .iter()
            .flat_map(|(_, f, _)| rows.iter().map(f))
            .filter(|v| v.is_finite())
            .collect();
        let (mut lo, mut hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        if title == "Accuracy" {
            lo = (lo - 5.0).max(0.0);
            hi = (hi + 5.0).min(100.0);
        } else {
            lo = (lo * 0.9).max(0.0);
            hi *= 1.1;
        }
        if hi - lo < 1e-6 {
            hi = lo + 1.0;
        }
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{title} per epoch"), ("sans-serif", 30))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(x_range.clone(), lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(ylabel)
            .axis_desc_style(("sans-serif", 22))
            .label_style(("sans-serif", 18))
            .x_labels(rows.len().clamp(2, 12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        for (name, f, color) in series {
            let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.epoch as f64, f(r))).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
                .label(name)
                .legend(legend_line(color.stroke_width(3)));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
        }
        let position = if title == "Loss" {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        };
        draw_legend(&mut chart, 20, position)?;
    }
    root.present()?;
    Ok(())
}

/// The cell side of a confusion matrix of `k` classes.
fn confusion_cell(k: usize) -> u32 {
    (520 / k.max(1)).clamp(60, 200) as u32
}

/// The size of the confusion matrix's figure for `k` classes.
pub(crate) fn confusion_size(k: usize) -> (u32, u32) {
    let side = confusion_cell(k) * k.max(1) as u32;
    (side + 330, side + 220)
}

/// The confusion matrix (rows: true class) with counts and row percentages, on an area of
/// [`confusion_size`].
pub(crate) fn draw_confusion<DB: DrawingBackend>(
    root: &AreaOf<DB>,
    classes: &[String],
    cm: &[Vec<usize>],
    title: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let k = cm.len().max(1);
    let cell = confusion_cell(k) as i32;
    let side = cell * k as i32;
    root.fill(&WHITE)?;
    put(root, title, (20, 15), 28)?;
    let x0 = 220i32;
    let y0 = 70i32;
    let max = cm.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    for (i, row) in cm.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (j, &v) in row.iter().enumerate() {
            let t = v as f64 / max;
            // white to dark blue
            let color = RGBColor(
                (255.0 - t * 220.0) as u8,
                (255.0 - t * 180.0) as u8,
                (255.0 - t * 90.0) as u8,
            );
            let (cx, cy) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
            for style in [color.filled(), BLACK.stroke_width(1)] {
                root.draw(&Rectangle::new([(cx, cy), (cx + cell, cy + cell)], style))?;
            }
            let text_color = if t > 0.5 { WHITE } else { BLACK };
            let pct = if total > 0 {
                format!("{:.0}%", 100.0 * v as f64 / total as f64)
            } else {
                String::new()
            };
            let centred = |size: u32| {
                TextStyle::from(("sans-serif", size).into_font())
                    .color(&text_color)
                    .pos(Pos::new(HPos::Center, VPos::Center))
            };
            let middle = (cx + cell / 2, cy + cell / 2);
            root.draw(&Text::new(
                v.to_string(),
                (middle.0, middle.1 - 12),
                centred(28),
            ))?;
            root.draw(&Text::new(pct, (middle.0, middle.1 + 18), centred(18)))?;
        }
    }
    for (i, name) in classes.iter().enumerate() {
        let at = i as i32 * cell;
        put(root, name, (20, y0 + at + cell / 2 - 10), 20)?;
        put(root, name, (x0 + at + 8, y0 + side + 12), 20)?;
    }
    put(root, "predicted class →", (x0, y0 + side + 50), 22)?;
    put(root, "rows: true class", (20, y0 + side + 50), 22)?;
    let note = "cell: count and % of the true class";
    put(root, note, (20, y0 + side + 85), 18)?;
    root.present()?;
    Ok(())
}

/// Draws `text` on `area` at `pos`, `size` points.
fn put<DB: DrawingBackend>(area: &AreaOf<DB>, text: &str, pos: (i32, i32), size: u32) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.draw(&Text::new(text, pos, ("sans-serif", size)))?;
    Ok(())
}

fn draw_roc<DB: DrawingBackend>(
    root: &AreaOf<DB>,
    points: &[(f64, f64)],
    auc: f64,
    positive: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let mut chart = unit_chart(
        root,
        &format!("ROC curve (positive class: {positive})"),
        (26, 22, 18),
        ("false positive rate", "true positive rate"),
    )?;
    chart
        .draw_series(LineSeries::new(points.to_vec(), RED.stroke_width(3)))?
        .label(format!("model (AUC = {auc:.3})"))
        .legend(legend_line(RED.stroke_width(3)));
    draw_chance(&mut chart)?;
    draw_legend(&mut chart, 20, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

/// A ROC chart's chance diagonal, grey, labelled `chance` (the PNG's and the report's).
pub(crate) fn draw_chance<DB: DrawingBackend>(chart: &mut UnitChart<'_, DB>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let grey = BLACK.mix(0.5).stroke_width(2);
    chart
        .draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], grey))?
        .label("chance")
        .legend(legend_line(grey));
    Ok(())
}

/// A chart over the unit square (the ROC, PR and reliability figures).
pub(crate) type UnitChart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart on `area` over the unit square, captioned, its axes described by `(x, y)`; `sizes`
/// are the fonts' of the caption, the axis descriptions and the tick labels.
pub(crate) fn unit_chart<'a, DB: DrawingBackend>(
    area: &'a AreaOf<DB>,
    caption: &str,
    sizes: (u32, u32, u32),
    (x, y): (&str, &str),
) -> Result<UnitChart<'a, DB>, Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", sizes.0))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .axis_desc_style(("sans-serif", sizes.1))
        .label_style(("sans-serif", sizes.2))
        .draw()?;
    Ok(chart)
}

/// A legend entry: a short line in `style`.
pub(crate) fn legend_line(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style)
}

/// The chart's legend, `size` points, boxed in white at `position`.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    size: u32,
    position: SeriesLabelPosition,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .label_font(("sans-serif", size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()?;
    Ok(())
}

type Area<'a> = AreaOf<BitMapBackend<'a>>;

/// Accuracy against confidence per bin, with the diagonal of perfect calibration.
pub(crate) fn draw_reliability<DB: DrawingBackend>(
    area: &AreaOf<DB>,
    bins: &[ReliabilityBin],
    ece: f64,
    title: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let mut chart = unit_chart(
        area,
        &format!("{title}: ECE {ece:.3}"),
        (24, 20, 16),
        ("confidence (top-class probability)", "accuracy"),
    )?;
    chart.draw_series(bins.iter().filter(|b| b.count > 0).map(|b| {
        Rectangle::new(
            [(b.lower, 0.0), (b.upper, b.accuracy)],
            BLUE.mix(0.55).filled(),
        )
    }))?;
    chart.draw_series(
        bins.iter()
            .filter(|b| b.count > 0)
            .map(|b| Circle::new((b.confidence, b.accuracy), 4, RED.filled())),
    )?;
    chart.draw_series(LineSeries::new(
        vec![(0.0, 0.0), (1.0, 1.0)],
        BLACK.mix(0.5).stroke_width(2),
    ))?;
    Ok(())
}

/// One fold's numbers for [`plot_cv`].
#[derive(Debug, Clone)]
pub struct CvFoldPlot {
    pub name: String,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub roc_auc: Option<f64>,
    pub ece: f64,
    pub roc_curve: Option<Vec<(f64, f64)>>,
}

/// Each fold's accuracy, macro F1, ROC-AUC and ECE as bars.
pub(crate) fn draw_fold_metrics<DB: DrawingBackend>(
    area: &AreaOf<DB>,
    folds: &[CvFoldPlot],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    type Metric = (&'static str, RGBColor, fn(&CvFoldPlot) -> f64);
    let metrics: [Metric; 4] = [
        ("accuracy", BLUE, |f| f.accuracy),
        ("macro F1", GREEN, |f| f.macro_f1),
        ("ROC-AUC", MAGENTA, |f| f.roc_auc.unwrap_or(0.0)),
        ("ECE", RED, |f| f.ece),
    ];
    let n = folds.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption("per-fold test metrics", ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..n as f64, 0.0..1.05f64)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            folds.get(i).map(|f| f.name.clone()).unwrap_or_default()
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    for (m, (name, color, value)) in metrics.iter().enumerate() {
        chart
            .draw_series(folds.iter().enumerate().map(|(i, f)| {
                let x0 = i as f64 + 0.1 + m as f64 * 0.2;
                Rectangle::new([(x0, 0.0), (x0 + 0.18, value(f))], color.mix(0.7).filled())
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
    }
    draw_legend(&mut chart, 16, SeriesLabelPosition::UpperRight)
}

/// `cv.png`: per-fold metrics, the pooled confusion matrix, one ROC curve per fold and the pooled
/// reliability diagram.
pub fn plot_cv(
    out: &Path,
    folds: &[CvFoldPlot],
    classes: &[String],
    pooled_cm: &[Vec<usize>],
    pooled_reliability: &[ReliabilityBin],
) -> Result<(), InferError> {
    register_font()?;
    atomic_png(out, |t| {
        let root = t.area((2400, 620));
        root.fill(&WHITE)?;
        let parts = root.split_evenly((1, 4));
        draw_reliability(
            &parts[3],
            pooled_reliability,
            crate::metric::calibration::ece_of(pooled_reliability),
            "Pooled reliability",
        )?;
        draw_fold_metrics(&parts[0], folds)?;
        // pooled confusion matrix
        let area = &parts[1];
        put(area, "pooled confusion matrix (rows: true)", (20, 15), 22)?;
        let k = pooled_cm.len().max(1);
        let cell = (380 / k).clamp(40, 190) as i32;
        let (x0, y0) = (160i32, 90i32);
        let max = pooled_cm
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        for (i, row) in pooled_cm.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let t = v as f64 / max;
                let shade = (255.0 * (1.0 - 0.8 * t)) as u8;
                let (x, y) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
                area.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(shade, shade, 255).filled(),
                ))?;
                let at = (x + cell / 2 - 12, y + cell / 2 - 10);
                put(area, &v.to_string(), at, 22)?;
            }
            let name: String = classes
                .get(i)
                .map(|c| c.chars().take(16).collect())
                .unwrap_or_default();
            let at = i as i32 * cell;
            put(area, &name, (10, y0 + at + cell / 2 - 8), 16)?;
            put(area, &name, (x0 + at + 4, y0 - 24), 16)?;
        }
        // ROC per fold
        let mut chart = ChartBuilder::on(&parts[2])
            .caption("ROC per fold", ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (i, f) in folds.iter().enumerate() {
            if let (Some(pts), Some(auc)) = (&f.roc_curve, f.roc_auc) {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                    .label(format!("{} (AUC {auc:.3})", f.name))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
        }
        chart.draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.4).stroke_width(1),
        ))?;
        draw_legend(&mut chart, 14, SeriesLabelPosition::LowerRight)?;
        root.present()?;
        Ok(())
    })
    .map_err(|e| InferError::Plot(format!("drawing {}: {e}", out.display())))
}

impl Run {
    /// Draws every figure the run's files allow; returns the paths written.
    pub fn plot(&self, progress: &dyn Progress) -> Result<Vec<PathBuf>, InferError> {
        register_font()?;
        let rows = self.metrics()?;
        if rows.is_empty() {
            return Err(InferError::NoEpochs(self.path(RunFile::Metrics)));
        }
        let eval = self.eval_report()?;
        let figures = 1 + eval.as_ref().map_or(0, |e| {
            1 + usize::from(e.roc_curve.is_some() && e.report.roc_auc.is_some())
                + usize::from(e.reliability.is_some())
        });
        progress.begin("plotting", figures);
        let mut written = Vec::new();
        let draw =
            |file: RunFile, f: &dyn Fn(&mut Canvas) -> DrawResult| -> Result<PathBuf, InferError> {
                let p = self.path(file);
                atomic_png(&p, f)
                    .map_err(|e| InferError::Plot(format!("drawing {}: {e}", p.display())))?;
                progress.advance(1);
                Ok(p)
            };
        written.push(draw(RunFile::Curves, &|t| {
            draw_curves(&t.area(CURVES_SIZE), &rows)
        })?);
        if let Some(e) = &eval {
            let title = format!("Confusion matrix ({} split)", e.split);
            let cm = &e.report.confusion_matrix;
            written.push(draw(RunFile::ConfusionMatrix, &|t| {
                draw_confusion(&t.area(confusion_size(cm.len())), &e.classes, cm, &title)
            })?);
            if let (Some(pts), Some(auc)) = (&e.roc_curve, e.report.roc_auc) {
                let positive = e
                    .classes
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| "class 1".into());
                written.push(draw(RunFile::Roc, &|t| {
                    draw_roc(&t.area(SQUARE_SIZE), pts, auc, &positive)
                })?);
            }
            if let Some(bins) = &e.reliability {
                let ece = e.report.ece.unwrap_or(0.0);
                written.push(draw(RunFile::Reliability, &|t| {
                    let root = t.area(SQUARE_SIZE);
                    root.fill(&WHITE)?;
                    draw_reliability(
                        &root,
                        bins,
                        ece,
                        &format!("Reliability ({} split)", e.split),
                    )?;
                    root.present()?;
                    Ok(())
                })?);
            }
        }
        progress.end();
        Ok(written)
    }
}

/// A figure of `size` drawn by `draw`, as PNG bytes.
fn png_of(
    size: (u32, u32),
    draw: impl FnOnce(&AreaOf<BitMapBackend>) -> DrawResult,
) -> Result<Vec<u8>, InferError> {
    register_font()?;
    let mut canvas = Canvas::default();
    let drawn = || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let root = canvas.area(size);
        draw(&root)?;
        root.present()?;
        drop(root);
        canvas.png()
    };
    drawn().map_err(|e| InferError::Plot(e.to_string()))
}

/// The confusion matrix (rows: true class) as `confusion_matrix.png` draws it: PNG bytes and
/// their size (TensorBoard's per-epoch image).
pub fn confusion_matrix_png(
    classes: &[String],
    cm: &[Vec<u64>],
    title: &str,
) -> Result<(Vec<u8>, (u32, u32)), InferError> {
    let size = confusion_size(cm.len());
    let cm: Vec<Vec<usize>> = cm
        .iter()
        .map(|r| r.iter().map(|&v| v as usize).collect())
        .collect();
    let png = png_of(size, |root| draw_confusion(root, classes, &cm, title))?;
    Ok((png, size))
}

/// The learning-rate finder's curve: `(lr, loss, smoothed loss)` per step on a logarithmic
/// learning-rate axis, and the suggested rate (with its rule's name) as a vertical line; PNG
/// bytes.
pub fn lr_find_png(
    points: &[(f64, f64, f64)],
    suggestion: Option<(f64, &str)>,
) -> Result<Vec<u8>, InferError> {
    let finite = |v: &f64| v.is_finite() && *v > 0.0;
    let lrs: Vec<f64> = points.iter().map(|p| p.0).filter(finite).collect();
    let smoothed: Vec<f64> = points
        .iter()
        .map(|p| p.2)
        .filter(|v| v.is_finite())
        .collect();
    let (x_lo, x_hi) = lrs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (x_lo, x_hi) = if lrs.is_empty() || x_hi <= x_lo {
        (1e-7, 10.0)
    } else {
        (x_lo, x_hi)
    };
    // the smoothed curve sets the scale: the raw losses near divergence would flatten it
    let lo = smoothed.iter().copied().fold(f64::MAX, f64::min);
    let first = smoothed.first().copied().unwrap_or(1.0);
    let hi = smoothed
        .iter()
        .copied()
        .fold(f64::MIN, f64::max)
        .min(first.abs() * 2.0 + 1e-9);
    let (y_lo, y_hi) = if smoothed.is_empty() || hi <= lo {
        (0.0, 1.0)
    } else {
        let pad = (hi - lo) * 0.08;
        (lo - pad, hi + pad)
    };
    png_of(SQUARE_SIZE, |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption("Learning-rate finder", ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), y_lo..y_hi)?;
        chart
            .configure_mesh()
            .x_desc("learning rate (log scale)")
            .y_desc("training loss")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .axis_desc_style(("sans-serif", 22))
            .label_style(("sans-serif", 18))
            .draw()?;
        let inside = |y: f64| y.is_finite() && (y_lo..=y_hi).contains(&y);
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .filter(|p| finite(&p.0) && inside(p.1))
                    .map(|p| (p.0, p.1)),
                BLUE.mix(0.3).stroke_width(1),
            ))?
            .label("loss")
            .legend(legend_line(BLUE.mix(0.3).into()));
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .filter(|p| finite(&p.0) && inside(p.2))
                    .map(|p| (p.0, p.2)),
                BLUE.stroke_width(3),
            ))?
            .label("smoothed")
            .legend(legend_line(BLUE.stroke_width(3)));
        if let Some((lr, rule)) = suggestion.filter(|s| finite(&s.0)) {
            chart
                .draw_series(LineSeries::new(
                    vec![(lr, y_lo), (lr, y_hi)],
                    RED.stroke_width(2),
                ))?
                .label(format!("suggested ({rule}): {lr:.2e}"))
                .legend(legend_line(RED.stroke_width(2)));
        }
        draw_legend(&mut chart, 20, SeriesLabelPosition::UpperLeft)
    })
}
