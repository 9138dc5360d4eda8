//! The gallery of the most confident errors: the wrongly classified images with the highest
//! probability of their (wrong) predicted class, each with its Grad-CAM overlay of that class
//! (what drove the error), small PNGs inline as `data:` URIs.

use super::html::{base64, esc};
use crate::checkpoint::Checkpoint;
use crate::cv_dir::PredictionRow;
use crate::evaluate::RunOptions;
use crate::metric::argmax;
use crate::predictor::Predictor;
use crate::run::Run;
use std::path::PathBuf;

/// A wrong prediction and where to explain it from.
#[derive(Debug, Clone)]
pub struct ErrorCase {
    /// The run whose checkpoint made it (a cross-validation's fold).
    pub run: Run,
    pub checkpoint: Checkpoint,
    /// The data root its path is relative to.
    pub data_root: PathBuf,
    pub row: PredictionRow,
    /// Where it comes from (a fold's name), or empty.
    pub source: String,
}

impl ErrorCase {
    /// The predicted class and its probability.
    pub fn predicted(&self) -> (usize, f64) {
        let c = argmax(&self.row.probs);
        (c, self.row.probs.get(c).copied().unwrap_or(0.0))
    }
}

/// The errors among `rows`, most confident first (ties by path), at most `limit`.
pub fn most_confident_errors(cases: Vec<ErrorCase>, limit: usize) -> Vec<ErrorCase> {
    let mut errors: Vec<ErrorCase> = cases
        .into_iter()
        .filter(|c| argmax(&c.row.probs) != c.row.label)
        .collect();
    errors.sort_by(|a, b| {
        b.predicted()
            .1
            .total_cmp(&a.predicted().1)
            .then_with(|| a.row.path.cmp(&b.row.path))
    });
    errors.truncate(limit);
    errors
}

/// The Grad-CAM overlay (PNG, longest side at most `side`) of `case`'s predicted class.
fn overlay(
    predictor: &Predictor,
    case: &ErrorCase,
    side: u32,
) -> Result<Vec<u8>, crate::InferError> {
    let path = resnext_data::safe_path::resolve_under(&case.data_root, &case.row.path)?;
    let image = resnext_data::decode_file(&path, resnext_data::DecodeLimits::default())?;
    let heatmap = predictor.explain(&image, Some(case.predicted().0))?;
    heatmap.overlay_png_at_most(&image, side)
}

/// The gallery's HTML: one captioned overlay per case (a note where it cannot be drawn).
pub fn gallery_html(cases: &[ErrorCase], classes: &[String], side: u32) -> String {
    let name = |c: usize| {
        classes
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}"))
    };
    // one model in memory at a time: the overlays are drawn run by run (a cross-validation's
    // errors come from every fold), then shown in the cases' order
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&k| (cases[k].run.dir(), cases[k].checkpoint.name()));
    let mut pictures: Vec<Option<Result<Vec<u8>, String>>> = vec![None; cases.len()];
    let mut current: Option<((PathBuf, Checkpoint), Result<Predictor, String>)> = None;
    for k in order {
        let case = &cases[k];
        let key = (case.run.dir().to_path_buf(), case.checkpoint);
        if current.as_ref().map(|(c, _)| c) != Some(&key) {
            // the last run's model is dropped before the next is loaded
            drop(current.take());
            let p = case
                .run
                .predictor(case.checkpoint, RunOptions::cpu())
                .map_err(|e| e.to_string());
            current = Some((key, p));
        }
        pictures[k] = current.as_ref().map(|(_, p)| match p {
            Ok(p) => overlay(p, case, side).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        });
    }
    drop(current);
    let mut out = String::from("<div class=\"gallery\">");
    for (k, (case, picture)) in cases.iter().zip(pictures).enumerate() {
        let picture = picture.unwrap_or_else(|| Err("not drawn".into()));
        let (pred, p) = case.predicted();
        let body = match picture {
            Ok(png) => format!(
                "<img src=\"data:image/png;base64,{}\" alt=\"Grad-CAM of {} on {}\">",
                base64(&png),
                esc(&name(pred)),
                esc(&case.row.path)
            ),
            Err(e) => format!("<p class=\"note\">no overlay: {}</p>", esc(&e)),
        };
        let source = if case.source.is_empty() {
            String::new()
        } else {
            format!(" ({})", esc(&case.source))
        };
        out.push_str(&format!(
            "<figure id=\"error-{k}\">{body}<figcaption><strong>{}</strong> called <strong>{}</strong> (p = {p:.3}){source}<br>{}</figcaption></figure>",
            esc(&name(case.row.label)),
            esc(&name(pred)),
            esc(&case.row.path)
        ));
    }
    out.push_str("</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(path: &str, label: usize, probs: [f64; 2]) -> ErrorCase {
        ErrorCase {
            run: Run::at("run"),
            checkpoint: Checkpoint::Best,
            data_root: PathBuf::from("data"),
            row: PredictionRow {
                path: path.into(),
                label,
                probs: probs.to_vec(),
            },
            source: String::new(),
        }
    }

    #[test]
    fn errors_come_most_confident_first_and_bounded() {
        let cases = vec![
            case("a", 0, [0.9, 0.1]), // right
            case("b", 0, [0.4, 0.6]),
            case("c", 1, [0.95, 0.05]),
            case("d", 0, [0.2, 0.8]),
            case("e", 0, [0.2, 0.8]),
        ];
        let got: Vec<String> = most_confident_errors(cases, 3)
            .into_iter()
            .map(|c| c.row.path)
            .collect();
        assert_eq!(got, ["c", "d", "e"]);
    }
}
