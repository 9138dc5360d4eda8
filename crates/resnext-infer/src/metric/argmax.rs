//! The predicted class of a probability (or logit) row.

/// The index of the largest value (the first on ties; NaN never wins).
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
