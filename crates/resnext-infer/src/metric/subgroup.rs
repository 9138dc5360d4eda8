//! One subgroup's figures in `eval.json` (computed by `crate::subgroups`).

use resnext_stats::Summary;
use serde::{Deserialize, Serialize};

/// Groups smaller than this are flagged: their intervals are too wide to read.
pub const MIN_SUBGROUP: usize = 20;

/// One subgroup's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subgroup {
    pub column: String,
    pub value: String,
    /// Images of the group in the part evaluated.
    pub n: usize,
    /// Below [`MIN_SUBGROUP`] images.
    pub small: bool,
    /// `None` when the group's metrics are undefined (one class only).
    pub intervals: Option<Summary>,
}
