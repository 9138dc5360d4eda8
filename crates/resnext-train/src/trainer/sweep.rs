//! The loop's side of the learning-rate finder ([`crate::lr_find`]): a trainer built from a
//! config outside any run directory (nothing is created or written), and optimiser steps at
//! learning rates the caller chooses, through the same step as training (micro-batches of
//! `train.accumulate`, class weights, mixup, precision, clipping).

use super::Trainer;
use crate::config::TrainConfig;
use crate::dist;
use crate::error::TrainError;
use crate::schedule::{Schedule, ScheduleSection};
use resnext_infer::run::Run;
use resnext_model::weights::{load_weights_from, HeadPolicy, WeightsFile};

/// Why a sweep ended before its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SweepEnd {
    /// Every step was taken, or the caller stopped.
    Done,
    /// The loss (or the weights) became non-finite at this 0-based step.
    NonFinite(usize),
}

impl Trainer {
    /// A trainer for `cfg` on its data and split, with fresh (or `init_weights`) weights, that
    /// belongs to no run directory: no lock is taken and nothing is written.
    pub(crate) fn detached(
        cfg: TrainConfig,
        init_weights: Option<&WeightsFile>,
    ) -> Result<Self, TrainError> {
        let split = super::start::data_split(&cfg)?;
        split.validate()?;
        // the run is only a name: `build` neither reads nor writes it
        let t = Self::build(cfg, Run::at(""), split, None, dist::single())?;
        if let Some(w) = init_weights {
            load_weights_from(&t.vs, w, HeadPolicy::ReplaceIfMismatched)?;
        }
        Ok(t)
    }

    /// Optimiser steps at `lrs[0]`, `lrs[1]`, ... over the training batches (epoch after epoch);
    /// after each, `record(step, lr, loss)` (the step's mean loss over its images) says whether
    /// to go on.
    pub(crate) fn sweep(
        &mut self,
        lrs: &[f64],
        mut record: impl FnMut(usize, f64, f64) -> bool,
    ) -> Result<SweepEnd, TrainError> {
        let accumulate = self.cfg.train.accumulate.max(1);
        let per_epoch = self.train.num_batches().max(1);
        let epochs = (lrs.len() * accumulate).div_ceil(per_epoch) as u64 + 1;
        let frozen = self.frozen_at(1);
        self.opt.set_frozen(frozen);
        let mut batches = self.train.epochs(1, epochs).enumerate();
        let mut group = Vec::with_capacity(accumulate);
        let mut step = 0;
        while step < lrs.len() {
            group.clear();
            for (bi, batch) in batches.by_ref().take(accumulate) {
                group.push((bi % per_epoch, batch?));
            }
            if group.is_empty() {
                break;
            }
            let lr = lrs[step];
            self.schedule = Schedule::new(&ScheduleSection::default(), lr, 1);
            let results = match self.train_step(&group, 1, 0.0, !frozen.batchnorm) {
                Ok((results, _)) => results,
                Err(TrainError::NonFinite { .. } | TrainError::NonFiniteWeights { .. }) => {
                    return Ok(SweepEnd::NonFinite(step))
                }
                Err(e) => return Err(e),
            };
            let (mut sum, mut images) = (0.0, 0usize);
            for ((_, batch), r) in group.iter().zip(results) {
                if let Some((loss, _)) = r {
                    sum += loss * batch.len() as f64;
                    images += batch.len();
                }
            }
            // a step whose batches were all skipped (one image) is not a step
            if images == 0 {
                continue;
            }
            if !record(step, lr, sum / images as f64) {
                break;
            }
            step += 1;
        }
        Ok(SweepEnd::Done)
    }
}
