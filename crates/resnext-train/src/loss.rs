//! Cross-entropy on logits (never on softmax outputs: the original tutorial's double softmax),
//! with label smoothing (Szegedy et al. 2016) and soft targets for Mixup/CutMix.

use tch::{Kind, Tensor};

/// Mean over the batch of −Σ q·log softmax(logits), with q the targets smoothed by ε:
/// q ← (1 − ε)·q + ε/C. `targets` is [N, C] of probabilities. It panics on a libtorch error, as
/// tch's operators do; [`weighted_soft_cross_entropy`] returns it.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor, smoothing: f64) -> Tensor {
    weighted_soft_cross_entropy(logits, targets, smoothing, None).unwrap()
}

/// [`soft_cross_entropy`] with class weights: each sample's loss is weighted by its target's
/// weight (`Σ_c target_c · w_c`) and the mean is taken over those weights, as PyTorch's
/// `cross_entropy(weight=…)` does for hard labels.
pub fn weighted_soft_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    smoothing: f64,
    weights: Option<&Tensor>,
) -> Result<Tensor, tch::TchError> {
    let logits = logits.f_to_kind(Kind::Float)?;
    let c = logits.size()[1] as f64;
    let q = if smoothing > 0.0 {
        targets
            .f_mul_scalar(1.0 - smoothing)?
            .f_add_scalar(smoothing / c)?
    } else {
        targets.shallow_clone()
    };
    let per_sample = q
        .f_mul(&logits.f_log_softmax(1, Kind::Float)?)?
        .f_sum_dim_intlist(1, false, Kind::Float)?
        .f_neg()?;
    let Some(w) = weights else {
        return per_sample.f_mean(Kind::Float);
    };
    let sw = targets
        .f_mul(&w.f_unsqueeze(0)?)?
        .f_sum_dim_intlist(1, false, Kind::Float)?;
    per_sample
        .f_mul(&sw)?
        .f_sum(Kind::Float)?
        .f_div(&sw.f_sum(Kind::Float)?)
}

pub use resnext_infer::evaluate::cross_entropy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_equals_hard_on_one_hot_and_smoothing_matches_definition() {
        let logits = Tensor::from_slice(&[2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0]).view([2, 3]);
        let labels = Tensor::from_slice(&[0i64, 2]);
        let onehot = labels.one_hot(3).to_kind(Kind::Float);
        let a = soft_cross_entropy(&logits, &onehot, 0.0).double_value(&[]);
        let b = cross_entropy(&logits, &labels).double_value(&[]);
        assert!((a - b).abs() < 1e-6);
        let s = soft_cross_entropy(&logits, &onehot, 0.1).double_value(&[]);
        let logp = logits.log_softmax(1, Kind::Float);
        let uniform = -(logp.mean_dim(1, false, Kind::Float))
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((s - (0.9 * b + 0.1 * uniform)).abs() < 1e-6);
    }
}
