//! Input checks shared by every statistic: probability rows, labels, the positive class.

use crate::error::StatsError;

/// How far a probability row's sum may be from 1 (float32 softmax outputs are within 1e-6).
pub const SUM_TOLERANCE: f64 = 1e-4;

/// Checks `probs`: not empty, every row of one length of at least 2, every value a number in
/// [0, 1], every row summing to 1 within [`SUM_TOLERANCE`]. Returns the number of classes.
pub(crate) fn check_probs(probs: &[Vec<f64>]) -> Result<usize, StatsError> {
    let classes = probs.first().ok_or(StatsError::Empty)?.len();
    if classes < 2 {
        return Err(StatsError::TooFewClasses(classes));
    }
    for (index, row) in probs.iter().enumerate() {
        if row.len() != classes {
            return Err(StatsError::RowLength {
                index,
                expected: classes,
                got: row.len(),
            });
        }
        if let Some(&value) = row.iter().find(|&&p| !(0.0..=1.0).contains(&p)) {
            return Err(StatsError::BadProbability { index, value });
        }
        let sum: f64 = row.iter().sum();
        if !((sum - 1.0).abs() <= SUM_TOLERANCE) {
            return Err(StatsError::BadRowSum { index, sum });
        }
    }
    Ok(classes)
}

/// [`check_probs`], then one label per row, each a class. Returns the number of classes.
pub(crate) fn check(probs: &[Vec<f64>], labels: &[usize]) -> Result<usize, StatsError> {
    let classes = check_probs(probs)?;
    check_len("labels", probs.len(), labels.len())?;
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(StatsError::BadLabel {
            index,
            label,
            classes,
        });
    }
    Ok(classes)
}

pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), StatsError> {
    if got == expected {
        Ok(())
    } else {
        Err(StatsError::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

pub(crate) fn check_positive(positive: usize, classes: usize) -> Result<(), StatsError> {
    if positive < classes {
        Ok(())
    } else {
        Err(StatsError::BadPositive { positive, classes })
    }
}

/// Both positives and negatives of `class` among `labels`.
pub(crate) fn check_both(labels: &[usize], class: usize) -> Result<(), StatsError> {
    let positives = labels.iter().filter(|&&l| l == class).count();
    if positives == 0 {
        Err(StatsError::NoPositives(class))
    } else if positives == labels.len() {
        Err(StatsError::NoNegatives(class))
    } else {
        Ok(())
    }
}

/// The index of the largest value, the first on a tie (as `resnext_infer::metric::argmax`).
pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}
