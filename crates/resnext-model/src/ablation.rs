//! Diagnostic ablations for performance analysis (not part of the ResNeXt of Xie et al. 2017):
//! a network that skips its BatchNorms and/or ReLUs runs the same convolutions, additions,
//! pooling and head, so timing it shows what the rest of a training step costs on its own.
//! An ablated network keeps every parameter (the state dict is unchanged) but is not a model
//! anyone should train: it is a measuring device for `resnext bench --ablate`.

use crate::error::ModelError;
use crate::layers::BatchNorm2d;
use tch::{TchError, Tensor};

/// Which layers a network skips. The default skips nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ablation {
    /// BatchNorm passes its input through (no statistics, no running-stat update).
    pub batchnorm: bool,
    /// ReLU passes its input through.
    pub relu: bool,
}

impl Ablation {
    /// Parses a comma-separated list of `batchnorm` and `relu`, or `none`.
    pub fn parse(list: &str) -> Result<Self, ModelError> {
        let mut a = Self::default();
        for item in list.split(',').map(str::trim) {
            match item {
                "batchnorm" => a.batchnorm = true,
                "relu" => a.relu = true,
                "none" => {}
                other => {
                    return Err(ModelError::InvalidConfig(format!(
                        "unknown ablation `{other}` (expected batchnorm, relu or none, comma-separated)"
                    )))
                }
            }
        }
        Ok(a)
    }

    /// True when nothing is skipped.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// The list `parse` reads back, e.g. `batchnorm,relu`, or `none`.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = [(self.batchnorm, "batchnorm"), (self.relu, "relu")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }

    /// `bn(xs)`, or `xs` itself when BatchNorm is ablated.
    pub(crate) fn batchnorm(
        &self,
        bn: &BatchNorm2d,
        xs: Tensor,
        train: bool,
    ) -> Result<Tensor, TchError> {
        if self.batchnorm {
            Ok(xs)
        } else {
            bn.forward_t(&xs, train)
        }
    }

    /// ReLU in place on a tensor the caller owns, or the tensor itself when ReLU is ablated.
    pub(crate) fn relu_(&self, mut t: Tensor) -> Result<Tensor, TchError> {
        if self.relu {
            Ok(t)
        } else {
            t.f_relu_()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_refuses_unknown_names() {
        assert_eq!(Ablation::parse("none").unwrap(), Ablation::default());
        let both = Ablation::parse("relu, batchnorm").unwrap();
        assert!(both.batchnorm && both.relu);
        assert_eq!(both.describe(), "batchnorm,relu");
        assert_eq!(Ablation::parse(&both.describe()).unwrap(), both);
        let err = Ablation::parse("batchnorm,dropout")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`dropout`"), "{err}");
    }
}
