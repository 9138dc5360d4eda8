//! Metrics, one concern per file:
//! - [`epoch`]: the per-epoch row and `metrics.csv`;
//! - [`running`]: running means over batches;
//! - [`roc`]: ROC-AUC and the ROC curve;
//! - [`report`]: the classification report, its table and `eval.json`;
//! - [`calibration`]: ECE, reliability bins and temperature scaling;
//! - [`argmax`]: the predicted class of a row.

pub mod argmax;
pub mod calibration;
pub mod epoch;
pub mod operating_point;
pub mod report;
pub mod roc;
pub mod running;
pub mod subgroup;

pub use argmax::argmax;
pub use calibration::{ece, fit_temperature, reliability, ReliabilityBin, ECE_BINS};
pub use epoch::{metrics_csv, parse_metrics_csv, EpochRow, CSV_HEADER};
pub use report::{Averages, ClassMetrics, EvalReport, Report};
pub use roc::{roc_auc, roc_curve};
pub use running::Running;
