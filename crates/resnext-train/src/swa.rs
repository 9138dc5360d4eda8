//! Weight averaging. Stochastic weight averaging (Izmailov et al. 2018), `train.swa =
//! { start_epoch, lr }`: from `start_epoch` on the learning rate is held at `lr` (a constant
//! SWA schedule, not SWALR's annealing) and after each epoch the weights join an equal-weight
//! running average (`torch.optim.swa_utils.AveragedModel`'s default); at the end BatchNorm's
//! running statistics are recomputed for the averaged weights ([`recompute_batchnorm`], as
//! `torch.optim.swa_utils.update_bn`) and the average is saved as the run's `swa` checkpoint.
//! [`crate::average`] averages saved checkpoints the same way.

use crate::ema::Ema;
use crate::error::TrainError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// `train.swa`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwaConfig {
    /// The first epoch (1-based) whose weights join the average; from its start the learning
    /// rate is `lr`.
    pub start_epoch: usize,
    /// The learning rate from `start_epoch` on (the schedule's is left).
    pub lr: f64,
}

impl SwaConfig {
    /// `epochs` is `train.epochs`: averaging must start within the run.
    pub fn validate(&self, epochs: usize) -> Result<(), TrainError> {
        let bad = |reason: String| TrainError::InvalidValue {
            key: "train.swa",
            reason,
        };
        if self.start_epoch < 1 || self.start_epoch > epochs {
            return Err(bad(format!(
                "start_epoch must be between 1 and train.epochs ({epochs}), got {}",
                self.start_epoch
            )));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad(format!(
                "lr must be a finite number > 0, got {}",
                self.lr
            )));
        }
        Ok(())
    }

    /// Whether epoch `epoch` (1-based) is averaged.
    pub fn averages(&self, epoch: usize) -> bool {
        epoch >= self.start_epoch
    }
}

/// The running average of SWA: an [`Ema`] whose decay after n averaged epochs is n / (n + 1),
/// which makes it the equal-weight mean of the n + 1 weights. Floating tensors (BatchNorm's
/// running statistics too, recomputed at the end anyway) are averaged, integer ones copied.
pub struct Swa {
    cfg: SwaConfig,
    count: usize,
    avg: Ema,
}

impl std::fmt::Debug for Swa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swa")
            .field("cfg", &self.cfg)
            .field("count", &self.count)
            .finish()
    }
}

/// The resume point's entry holding how many epochs are averaged.
const COUNT: &str = "swa.count";

impl Swa {
    /// An empty average over the live variables `vars`.
    pub fn new(cfg: SwaConfig, vars: Vec<(String, Tensor)>) -> Self {
        Self {
            cfg,
            count: 0,
            avg: Ema::new(0.0, vars).named("swa"),
        }
    }

    pub fn config(&self) -> &SwaConfig {
        &self.cfg
    }

    /// The number of weights averaged so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Adds the live weights to the average.
    pub fn update(&mut self) -> Result<(), TrainError> {
        let n = self.count as f64;
        self.avg.update_with(n / (n + 1.0))?;
        self.count += 1;
        Ok(())
    }

    /// Swaps the live weights with the average (call twice to swap back).
    pub fn swap(&mut self) -> Result<(), TrainError> {
        Ok(self.avg.swap()?)
    }

    /// The average and its count, for the resume point (`swa.*`, `swa.count`).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = self.avg.state_tensors();
        out.push((COUNT.into(), Tensor::from_slice(&[self.count as i64])));
        out
    }

    /// Restores [`Self::state_tensors`]; a resume point without them (written before SWA
    /// started, or by a run without it) is an error, so an average never restarts by accident.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
        let count = tensors.get(COUNT).ok_or_else(|| {
            TrainError::Torch(tch::TchError::FileFormat(format!(
                "the resume checkpoint lacks {COUNT} (train.swa was added to a run that did not have it)"
            )))
        })?;
        self.count = count.f_int64_value(&[0])?.max(0) as usize;
        self.avg.load_state(tensors)?;
        Ok(())
    }
}

/// Whether a variable is one of BatchNorm's running statistics (`running_mean`, `running_var`,
/// `num_batches_tracked`).
pub fn is_batchnorm_statistic(name: &str) -> bool {
    name.ends_with(".running_mean")
        || name.ends_with(".running_var")
        || name.ends_with(".num_batches_tracked")
}

/// Recomputes BatchNorm's running statistics for the current weights with one pass of
/// `forward` (a train-mode forward pass of the network owning `vars`, under `no_grad`) over
/// `batches`, as `torch.optim.swa_utils.update_bn`: the statistics are reset and become the
/// cumulative average over the batches (BatchNorm with momentum `None`); `num_batches_tracked`
/// counts the batches. Nothing but the running statistics changes. Batches of fewer than 2
/// images are left out (BatchNorm cannot take their statistics). Returns the batches used; with
/// none, the statistics are left as they were.
pub fn recompute_batchnorm(
    vars: &[(String, Tensor)],
    batches: impl Iterator<Item = Result<Tensor, TrainError>>,
    mut forward: impl FnMut(&Tensor) -> Result<(), TrainError>,
) -> Result<usize, TrainError> {
    // (statistic, its cumulative average, a copy of it as it was)
    let stats: Vec<(Tensor, Tensor, Tensor)> = vars
        .iter()
        .filter(|(n, _)| n.ends_with(".running_mean") || n.ends_with(".running_var"))
        .map(|(_, t)| {
            let zeros = t.f_detach()?.f_zeros_like()?;
            Ok((t.shallow_clone(), zeros.f_zeros_like()?, zeros.f_add(t)?))
        })
        .collect::<Result<_, tch::TchError>>()?;
    let counters: Vec<Tensor> = vars
        .iter()
        .filter(|(n, _)| n.ends_with(".num_batches_tracked"))
        .map(|(_, t)| t.shallow_clone())
        .collect();
    // BatchNorm's update is running ← (1 − m)·running + m·batch; from zero it is m·batch
    let unscale = 1.0 / resnext_model::layers::BN_MOMENTUM;
    let mut used = 0usize;
    let pass = tch::no_grad(|| -> Result<(), TrainError> {
        for x in batches {
            let x = x?;
            if x.size().first().copied().unwrap_or(0) < 2 {
                continue;
            }
            for (t, _, _) in &stats {
                t.shallow_clone().f_zero_().map(drop)?;
            }
            forward(&x)?;
            used += 1;
            let k = used as f64;
            for (t, cum, _) in &stats {
                // cum ← cum + (batch − cum) / k: the mean of the k batches' statistics
                let batch = t.f_mul_scalar(unscale)?;
                let step = batch.f_sub(cum)?.f_div_scalar(k)?;
                cum.shallow_clone().f_add_(&step).map(drop)?;
            }
        }
        Ok(())
    });
    tch::no_grad(|| -> Result<(), TrainError> {
        let keep = pass.is_err() || used == 0;
        for (t, cum, old) in &stats {
            t.shallow_clone().f_copy_(if keep { old } else { cum })?;
        }
        if !keep {
            for c in &counters {
                c.shallow_clone().f_fill_(used as i64).map(drop)?;
            }
        }
        Ok(())
    })?;
    pass?;
    Ok(used)
}

/// [`recompute_batchnorm`] for `net` (whose variables are `vs`'s) over one epoch (seed
/// `seed`) of `loader`, with `opts`' device and numerics: the images and batches it used.
pub fn batchnorm_pass(
    net: &resnext_model::ResNeXt,
    vs: &tch::nn::VarStore,
    loader: &resnext_data::Loader,
    seed: u64,
    opts: resnext_infer::evaluate::RunOptions,
) -> Result<(usize, usize), TrainError> {
    use resnext_infer::precision::{prepare_input, with_autocast};
    let vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    let images = std::cell::Cell::new(0usize);
    let batches = loader.epoch(seed).map(|b| {
        let b = b?;
        images.set(images.get() + b.len());
        let x = resnext_infer::evaluate::batch_tensor(&b)?;
        Ok(prepare_input(
            x,
            opts.precision,
            opts.channels_last,
            opts.device,
        )?)
    });
    let used = recompute_batchnorm(&vars, batches, |x| {
        with_autocast(opts.precision, opts.device, || net.f_forward_t(x, true)).map(drop)?;
        Ok(())
    })?;
    Ok((images.get(), used))
}

/// The equal-weight mean of several state dicts of one model, in the order of `first`'s names:
/// floating tensors averaged (in float64, stored in their kind), integer ones (BatchNorm's
/// `num_batches_tracked`) taken from the last. The dicts must hold the same names and shapes.
pub fn mean_state(dicts: &[HashMap<String, Tensor>]) -> Result<Vec<(String, Tensor)>, String> {
    let Some(first) = dicts.first() else {
        return Err("nothing to average".into());
    };
    let mut names: Vec<&String> = first.keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let t0 = &first[name];
        let mut parts = Vec::with_capacity(dicts.len());
        for (i, d) in dicts.iter().enumerate() {
            let t = d
                .get(name)
                .ok_or_else(|| format!("checkpoint {} lacks {name}", i + 1))?;
            if t.size() != t0.size() {
                return Err(format!(
                    "checkpoint {} holds {name} of shape {:?}, the first {:?}",
                    i + 1,
                    t.size(),
                    t0.size()
                ));
            }
            parts.push(t);
        }
        let mean = if t0.is_floating_point() {
            let mean = || -> Result<Tensor, tch::TchError> {
                let mut sum = t0.f_to_kind(Kind::Double)?.f_zeros_like()?;
                for t in &parts {
                    sum = sum.f_add(&t.f_to_kind(Kind::Double)?)?;
                }
                sum.f_div_scalar(parts.len() as f64)?.f_to_kind(t0.kind())
            };
            mean().map_err(|e| e.to_string())?
        } else {
            parts[parts.len() - 1].shallow_clone()
        };
        out.push((name.clone(), mean));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn the_running_average_is_the_mean_and_restores() {
        let w = Tensor::from_slice(&[0.0f32, 0.0]);
        let cfg = SwaConfig {
            start_epoch: 1,
            lr: 0.1,
        };
        let mut swa = Swa::new(cfg.clone(), vec![("w".into(), w.shallow_clone())]);
        let mut live = w.shallow_clone();
        for v in [1.0f32, 2.0, 6.0] {
            live.copy_(&Tensor::from_slice(&[v, -v]));
            swa.update().unwrap();
        }
        assert_eq!(swa.count(), 3);
        let saved: HashMap<String, Tensor> = swa.state_tensors().into_iter().collect();
        swa.swap().unwrap();
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![3.0, -3.0]);
        swa.swap().unwrap();
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![6.0, -6.0]);
        // a resumed average goes on from its count
        let mut again = Swa::new(cfg.clone(), vec![("w".into(), w.shallow_clone())]);
        again.load_state(&saved).unwrap();
        assert_eq!(again.count(), 3);
        live.copy_(&Tensor::from_slice(&[7.0f32, -7.0]));
        again.update().unwrap();
        again.swap().unwrap();
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![4.0, -4.0]);
        let mut fresh = Swa::new(cfg, vec![("w".into(), w.shallow_clone())]);
        assert!(fresh.load_state(&HashMap::new()).is_err());
    }

    #[test]
    fn the_mean_of_identical_weights_is_those_weights() {
        let t = Tensor::randn([3, 4], (Kind::Float, Device::Cpu)) * 1e3;
        let n = Tensor::from_slice(&[5i64]);
        let dict = || -> HashMap<String, Tensor> {
            [
                ("a.weight".into(), t.copy()),
                ("bn.num_batches_tracked".into(), n.copy()),
            ]
            .into()
        };
        let mean = mean_state(&[dict(), dict(), dict()]).unwrap();
        let got: HashMap<String, Tensor> = mean.into_iter().collect();
        assert!(got["a.weight"].equal(&t), "bit-identical");
        assert!(got["bn.num_batches_tracked"].equal(&n));
        let other: HashMap<String, Tensor> = [(
            "a.weight".into(),
            Tensor::zeros([3, 4], (Kind::Float, Device::Cpu)),
        )]
        .into();
        let d2 = || -> HashMap<String, Tensor> { [("a.weight".into(), t.copy())].into() };
        let half: HashMap<String, Tensor> =
            mean_state(&[d2(), other]).unwrap().into_iter().collect();
        assert!(half["a.weight"].allclose(&(&t / 2.0), 1e-6, 1e-6, false));
        let wrong: HashMap<String, Tensor> = [(
            "a.weight".into(),
            Tensor::zeros([4], (Kind::Float, Device::Cpu)),
        )]
        .into();
        assert!(mean_state(&[d2(), wrong]).unwrap_err().contains("shape"));
    }

    #[test]
    fn the_batchnorm_pass_changes_only_the_statistics() {
        tch::manual_seed(1);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let cfg = resnext_model::ModelConfig {
            arch: resnext_model::Arch::Custom,
            layers: [1, 1, 1, 1],
            groups: 2,
            width_per_group: 4,
            num_classes: 3,
            zero_init_residual: false,
        };
        let net = resnext_model::ResNeXt::new(&vs.root(), &cfg).unwrap();
        let vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        let before: HashMap<String, Tensor> =
            vars.iter().map(|(n, t)| (n.clone(), t.copy())).collect();
        let inputs: Vec<Tensor> = (0..3)
            .map(|i| Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu)) * (1.0 + i as f64))
            .collect();
        let batches = inputs.iter().map(|x| Ok(x.shallow_clone()));
        let used = recompute_batchnorm(&vars, batches, |x| {
            net.f_forward_t(x, true).map(drop)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(used, 3);
        let mut stats_changed = 0;
        for (n, t) in &vars {
            if is_batchnorm_statistic(n) {
                stats_changed += usize::from(!t.equal(&before[n]));
            } else {
                assert!(t.equal(&before[n]), "{n} changed");
            }
            if n.ends_with(".num_batches_tracked") {
                assert_eq!(t.int64_value(&[]), 3);
            }
        }
        assert!(stats_changed > 10, "the statistics were not recomputed");
        // the cumulative average: the stem's BatchNorm mean is the mean of the three batches'
        let stem: Vec<(String, Tensor)> = vars
            .iter()
            .filter(|(n, _)| n == "bn1.running_mean")
            .map(|(n, t)| (n.clone(), t.copy()))
            .collect();
        assert_eq!(stem.len(), 1, "the stem's BatchNorm is bn1");
        let conv = vars
            .iter()
            .find(|(n, _)| n == "conv1.weight")
            .map(|(_, t)| t.shallow_clone())
            .unwrap();
        let per_batch: Vec<Tensor> = inputs
            .iter()
            .map(|x| {
                x.conv2d(&conv, None::<Tensor>, [2, 2], [3, 3], [1, 1], 1)
                    .mean_dim([0, 2, 3].as_slice(), false, Kind::Float)
            })
            .collect();
        let expected = Tensor::stack(&per_batch, 0).mean_dim(0, false, Kind::Float);
        assert!(
            stem[0].1.allclose(&expected, 1e-4, 1e-5, false),
            "{:?} vs {:?}",
            stem[0].1,
            expected
        );
    }
}
