//! The one error type of the crate: every refusal of bad input, each a one-line message naming the
//! problem.

use thiserror::Error;

/// Why a statistic could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    #[error("no images")]
    Empty,
    #[error("{what} has {got} entries for {expected} images")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("image {index} has {got} probabilities, image 0 has {expected}")]
    RowLength {
        index: usize,
        expected: usize,
        got: usize,
    },
    #[error("a probability row needs at least 2 classes, got {0}")]
    TooFewClasses(usize),
    #[error("probability {value} of image {index} is not a number in [0, 1]")]
    BadProbability { index: usize, value: f64 },
    #[error("the probabilities of image {index} sum to {sum}, not 1")]
    BadRowSum { index: usize, sum: f64 },
    #[error("label {label} of image {index} is not a class below {classes}")]
    BadLabel {
        index: usize,
        label: usize,
        classes: usize,
    },
    #[error("positive class {positive} is not a class below {classes}")]
    BadPositive { positive: usize, classes: usize },
    #[error("class {0} has no images, the statistic needs positives and negatives")]
    NoPositives(usize),
    #[error("every image is of class {0}, the statistic needs positives and negatives")]
    NoNegatives(usize),
    #[error("DeLong's test needs at least 2 positive and 2 negative images, got {positives} and {negatives}")]
    TooFewForDeLong { positives: usize, negatives: usize },
    #[error("the AUC difference has zero variance: the two models rank the images alike")]
    ZeroVariance,
    #[error(
        "calibration of class {0}: all predicted probabilities are equal, the slope is undefined"
    )]
    ConstantPredictions(usize),
    #[error("calibration slope of class {0} is unbounded: the predictions separate the class from the rest")]
    Separated(usize),
    #[error("calibration fit of class {class} did not converge in {iterations} iterations")]
    NoConvergence { class: usize, iterations: usize },
    #[error("the statistic is undefined on the whole set")]
    Undefined,
    #[error("the statistic is undefined on every one of the {0} resamples")]
    NoUsableResample(usize),
    /// An argument out of its range, or an operating point that does not parse.
    #[error("{0}")]
    Invalid(String),
}
