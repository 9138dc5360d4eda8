//! The statistics reviewers of medical classifiers ask for, over predictions (one probability
//! row per image, rows summing to 1) and labels, in pure Rust (no libtorch): confusion metrics
//! at a threshold ([`binary`]), ROC-AUC, PR-AUC and the ISIC 2024 partial AUC ([`auc`]),
//! calibration intercept and slope ([`mod@calibration`]), pointwise bootstrap bands of the ROC
//! and PR curves ([`bands`]), percentile bootstrap intervals that
//! resample patients ([`mod@bootstrap`]), operating points ([`operating_point`]), DeLong's test of
//! two AUCs ([`mod@delong`]), McNemar's test of paired correctness ([`mod@mcnemar`]), macro averages
//! ([`multiclass`]) and a [`summary()`] of them all with intervals, serialisable as JSON.
//!
//! Every function checks its input and returns a [`StatsError`] rather than panicking: no
//! images, mismatched lengths, rows of different lengths, a probability that is NaN or outside
//! [0, 1], a row not summing to 1 (within [`SUM_TOLERANCE`]), a label or positive class
//! out of range, a statistic needing both positives and negatives given one kind.

pub mod auc;
pub mod bands;
pub mod binary;
pub mod bootstrap;
pub mod calibration;
pub mod delong;
mod error;
mod input;
pub mod mcnemar;
pub mod multiclass;
pub mod normal;
pub mod operating_point;
pub mod summary;

pub use auc::{pauc_min_tpr, pr_auc, roc_auc};
pub use bands::{curve_bands, BandPoint, CurveBands};
pub use binary::{confusion, BinaryMetrics, Confusion};
pub use bootstrap::{bootstrap, bootstrap_paired, BootstrapOptions, Groups, Interval};
pub use calibration::{calibration, Calibration};
pub use delong::{delong, DeLong};
pub use error::StatsError;
pub use input::SUM_TOLERANCE;
pub use mcnemar::{mcnemar, McNemar, McNemarMethod};
pub use multiclass::{ece, macro_metrics, MacroMetrics};
pub use operating_point::{apply, choose, Criterion, OperatingPoint};
pub use summary::{
    summary, ClassCalibration, ClassMetrics, Metrics, Mode, Summary, SummaryOptions,
};
