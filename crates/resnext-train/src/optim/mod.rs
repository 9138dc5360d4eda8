//! Optimisers with state the project owns, so a run resumes exactly: Adam (Kingma & Ba 2015),
//! AdamW (Loshchilov & Hutter 2019) and SGD with momentum/Nesterov, following PyTorch's update
//! rules, one file per rule (`adam.rs`, `sgd.rs`), each with its own settings; `config.rs` is
//! `[optim]`. Weight decay can leave BatchNorm parameters and biases alone; which parameters
//! those are, and which is the head, comes from the network's structure
//! (`ResNeXt::parameter_roles`), not from their names.

pub mod adam;
pub mod config;
mod fused;
pub mod sgd;

use crate::error::TrainError;
use config::{OptimSection, UpdateRule};
use resnext_model::network::ParamRole;
use resnext_model::sync_bn::SyncBatchNorm;
use tch::{Kind, TchError, Tensor};

/// A trainable parameter and its optimiser state.
struct Slot {
    name: String,
    param: Tensor,
    decay: bool,
    role: ParamRole,
    /// Adam's moments.
    moments: adam::Moments,
    /// SGD's momentum buffer.
    momentum: Option<Tensor>,
    /// The gradient from [`Optimizer::backward`]; `None` falls back to the parameter's `.grad`.
    grad: Option<Tensor>,
}

impl Slot {
    /// The gradient of this step, if any.
    fn grad(&self) -> Option<Tensor> {
        let own = self.grad.as_ref().map(Tensor::shallow_clone);
        own.or_else(|| Some(self.param.grad()).filter(Tensor::defined))
    }
}

/// Which parameters an epoch leaves alone (fine-tuning): no gradient is computed for them and
/// no update (nor weight decay, nor optimiser state) touches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frozen {
    /// Everything but the head.
    pub backbone: bool,
    /// BatchNorm weights and biases.
    pub batchnorm: bool,
}

pub struct Optimizer {
    cfg: OptimSection,
    slots: Vec<Slot>,
    frozen: Frozen,
    /// Steps taken (Adam's bias correction uses it).
    pub step: i64,
    /// Threads of the fused Adam update, made at the first step with libtorch's thread count
    /// (the update runs between backward and forward, when libtorch's own pool is idle);
    /// `Some(None)` when no pool could be made, and the update runs on the calling thread.
    pool: Option<Option<rayon::ThreadPool>>,
    /// Whether Adam may use the fused CPU kernel (on by default).
    fuse: bool,
    /// Parameters the fused kernel updated in the last step.
    fused_last: usize,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("rule", &self.cfg.rule.name())
            .field("params", &self.slots.len())
            .field("step", &self.step)
            .finish()
    }
}

impl Optimizer {
    /// `params` are (name, tensor) pairs of the trainable variables (the names key the saved
    /// state); `roles` says what each tensor is in the network (`ResNeXt::parameter_roles`), a
    /// tensor without one being a plain weight.
    pub fn new(
        cfg: &OptimSection,
        mut params: Vec<(String, Tensor)>,
        roles: &[(Tensor, ParamRole)],
    ) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let role_of = |t: &Tensor| {
            roles
                .iter()
                .find(|(r, _)| r.data_ptr() == t.data_ptr())
                .map_or(ParamRole::WEIGHT, |(_, role)| *role)
        };
        let slots = params
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, param)| {
                let role = role_of(&param);
                Slot {
                    name,
                    decay: cfg.decay_norm_and_bias || !(role.norm || role.bias),
                    role,
                    param,
                    moments: adam::Moments::default(),
                    momentum: None,
                    grad: None,
                }
            })
            .collect();
        Self {
            cfg: cfg.clone(),
            slots,
            frozen: Frozen::default(),
            step: 0,
            pool: None,
            fuse: true,
            fused_last: 0,
        }
    }

    /// Turns the fused CPU Adam kernel on or off (it is on by default; off, every parameter takes
    /// the kernel-by-kernel path that other devices use). For comparisons and benchmarks.
    pub fn set_fused(&mut self, on: bool) {
        self.fuse = on;
    }

    /// Freezes (or thaws) parameter groups from the next backward pass on.
    pub fn set_frozen(&mut self, frozen: Frozen) {
        self.frozen = frozen;
    }

    fn active(frozen: Frozen, s: &Slot) -> bool {
        !(frozen.backbone && !s.role.head) && !(frozen.batchnorm && s.role.norm)
    }

    /// Computes the gradients of `loss` with respect to the parameters into fresh tensors (as
    /// PyTorch's `zero_grad(set_to_none=True)` + `backward()`): nothing is zeroed beforehand and
    /// nothing accumulates into `.grad`, which saves two passes over the gradients every step.
    pub fn backward(&mut self, loss: &Tensor) -> Result<(), TrainError> {
        self.backward_into(loss, None, false)
    }

    /// [`Self::backward`], through the cuts of synchronised BatchNorm when `sync` is given; with
    /// `accumulate`, the gradients are added to those of the backward passes since the last
    /// step (gradient accumulation's later micro-batches).
    pub fn backward_into(
        &mut self,
        loss: &Tensor,
        sync: Option<&SyncBatchNorm>,
        accumulate: bool,
    ) -> Result<(), TrainError> {
        // The last step's gradients go first, so they never coexist with the new ones.
        if !accumulate {
            for s in &mut self.slots {
                s.grad = None;
            }
        }
        let frozen = self.frozen;
        let params: Vec<&Tensor> = self
            .slots
            .iter()
            .filter(|s| Self::active(frozen, s))
            .map(|s| &s.param)
            .collect();
        let grads = match sync {
            Some(sync) => sync.backward(loss, &params)?,
            None => Tensor::f_run_backward(&[loss], &params, false, false)?,
        };
        let active = self.slots.iter_mut().filter(|s| Self::active(frozen, s));
        for (s, g) in active.zip(grads) {
            if !g.defined() {
                continue;
            }
            match &mut s.grad {
                Some(sum) if accumulate => {
                    tch::no_grad(|| sum.f_add_(&g).map(drop))?;
                }
                slot => *slot = Some(g),
            }
        }
        Ok(())
    }

    /// The gradient slot of every parameter this step updates, in name order (the same on every
    /// process): for summing gradients across processes. A `None` is a parameter the loss did
    /// not reach.
    pub fn active_grads_mut(&mut self) -> impl Iterator<Item = (&Tensor, &mut Option<Tensor>)> {
        let frozen = self.frozen;
        self.slots
            .iter_mut()
            .filter(move |s| Self::active(frozen, s))
            .map(|s| (&s.param, &mut s.grad))
    }

    /// The global L2 norm of the gradients.
    pub fn grad_norm(&self) -> f64 {
        tch::no_grad(|| {
            let mut total = 0.0;
            for s in &self.slots {
                if let Some(g) = s.grad() {
                    let n = g.norm().double_value(&[]);
                    total += n * n;
                }
            }
            total.sqrt()
        })
    }

    /// True when every parameter is finite (no NaN or infinity).
    pub fn params_finite(&self) -> Result<bool, TchError> {
        tch::no_grad(|| {
            for s in &self.slots {
                if s.param.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Scales gradients so their global norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64, TchError> {
        let norm = self.grad_norm();
        if norm > max_norm && norm.is_finite() {
            self.scale_grads(max_norm / (norm + 1e-6))?;
        }
        Ok(norm)
    }

    /// Multiplies every gradient by `factor` in place (clipping, loss-scale removal).
    pub fn scale_grads(&mut self, factor: f64) -> Result<(), TchError> {
        tch::no_grad(|| {
            for s in &self.slots {
                if let Some(mut g) = s.grad() {
                    g.f_mul_scalar_(factor).map(drop)?;
                }
            }
            Ok(())
        })
    }

    /// One update with learning rate `lr`; it consumes the gradients from [`Self::backward`].
    pub fn step(&mut self, lr: f64) -> Result<(), TchError> {
        self.step += 1;
        let t = self.step as f64;
        let c = &self.cfg;
        let wd = c.weight_decay;
        // Parameters the fused kernel takes, with the gradients they read kept alive until it ran.
        let mut fused_ops = Vec::new();
        let mut alive = Vec::new();
        tch::no_grad(|| -> Result<(), TchError> {
            let frozen = self.frozen;
            for s in self.slots.iter_mut().filter(|s| Self::active(frozen, s)) {
                let Some(g) = s.grad() else {
                    continue;
                };
                let lr = if s.role.head { lr * c.head_lr_mult } else { lr };
                let g = g.to_kind(Kind::Float);
                let decay = if s.decay { wd } else { 0.0 };
                match &c.rule {
                    UpdateRule::Adam(a) | UpdateRule::AdamW(a) => {
                        let decoupled = matches!(c.rule, UpdateRule::AdamW(_));
                        let keep = g.shallow_clone();
                        let (p, m) = (&mut s.param, &mut s.moments);
                        if let Some(op) =
                            adam::update(a, decoupled, p, g, m, lr, decay, t, self.fuse)?
                        {
                            fused_ops.push(op);
                            alive.push(keep);
                        }
                    }
                    UpdateRule::Sgd(sgd) => {
                        sgd::update(sgd, &mut s.param, g, &mut s.momentum, lr, decay)?;
                    }
                }
            }
            Ok(())
        })?;
        self.fused_last = fused_ops.len();
        if !fused_ops.is_empty() {
            let pool = self.pool.get_or_insert_with(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(tch::get_num_threads().max(1) as usize)
                    .thread_name(|i| format!("resnext-optim-{i}"))
                    .build()
                    .ok()
            });
            // SAFETY: every operand's parameter, gradient and moments are alive here: the
            // parameters and moments in `self.slots`, the gradients in `alive`, dropped below.
            #[allow(unsafe_code)]
            unsafe {
                fused::run(pool.as_ref(), &fused_ops)
            };
        }
        drop(alive);
        // Spent: freeing them now keeps them out of the next forward pass's peak memory.
        for s in &mut self.slots {
            s.grad = None;
        }
        Ok(())
    }

    /// The state as named tensors (for the resume checkpoint), prefixed `optim.`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("optim.step".to_string(), Tensor::from_slice(&[self.step]))];
        for s in &self.slots {
            for (kind, t) in [
                ("exp_avg", &s.moments.exp_avg),
                ("exp_avg_sq", &s.moments.exp_avg_sq),
                ("momentum", &s.momentum),
            ] {
                if let Some(t) = t {
                    out.push((
                        format!("optim.{kind}.{}", s.name),
                        t.detach().to_device(tch::Device::Cpu).contiguous(),
                    ));
                }
            }
        }
        out
    }

    /// Restores the state saved by [`state_tensors`](Self::state_tensors).
    /// `path` names the resume checkpoint in errors.
    pub fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
        path: &std::path::Path,
    ) -> Result<(), TrainError> {
        let step = tensors
            .get("optim.step")
            .ok_or_else(|| TrainError::BadResume {
                path: path.to_path_buf(),
                reason: "lacks optim.step".into(),
            })?;
        self.step = step.int64_value(&[0]);
        for s in &mut self.slots {
            let device = s.param.device();
            let get = |kind: &str| -> Result<Option<Tensor>, TrainError> {
                match tensors.get(&format!("optim.{kind}.{}", s.name)) {
                    None => Ok(None),
                    Some(t) if t.size() != s.param.size() => Err(TrainError::BadResume {
                        path: path.to_path_buf(),
                        reason: format!(
                            "holds optimiser state for {} of shape {:?}; the config's model needs {:?}",
                            s.name,
                            t.size(),
                            s.param.size()
                        ),
                    }),
                    Some(t) => Ok(Some(t.f_to_device(device)?.f_to_kind(Kind::Float)?)),
                }
            };
            s.moments.exp_avg = get("exp_avg")?;
            s.moments.exp_avg_sq = get("exp_avg_sq")?;
            s.momentum = get("momentum")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::adam::AdamConfig;
    use super::sgd::SgdConfig;
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum OptimizerKind {
        Adam,
        AdamW,
        Sgd,
    }

    fn rule(kind: OptimizerKind, momentum: f64, nesterov: bool) -> UpdateRule {
        match kind {
            OptimizerKind::Adam => UpdateRule::Adam(AdamConfig::default()),
            OptimizerKind::AdamW => UpdateRule::AdamW(AdamConfig::default()),
            OptimizerKind::Sgd => UpdateRule::Sgd(SgdConfig { momentum, nesterov }),
        }
    }

    /// Three steps on loss = Σ c·w + ½ Σ w² (gradient c + w) against the textbook update rules
    /// (PyTorch's `torch.optim` definitions) computed in f64.
    fn run(kind: OptimizerKind, weight_decay: f64, nesterov: bool, fuse: bool) {
        let cfg = OptimSection {
            rule: rule(kind, 0.9, nesterov),
            weight_decay,
            decay_norm_and_bias: true,
            ..OptimSection::default()
        };
        let w0 = [0.5f64, -1.5, 2.0, 0.01];
        let c = [0.3f64, -0.2, 1.0, -4.0];
        let w = Tensor::from_slice(&w0.map(|x| x as f32)).set_requires_grad(true);
        let ct = Tensor::from_slice(&c.map(|x| x as f32));
        let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.shallow_clone())], &[]);
        opt.set_fused(fuse);
        let lr = 0.05;
        let (mut rw, mut m, mut v, mut buf) = (w0, [0.0; 4], [0.0; 4], [0.0; 4]);
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        for t in 1..=3 {
            let loss = (&w * &ct).sum(Kind::Float) + (&w * &w).sum(Kind::Float) * 0.5;
            opt.backward(&loss).unwrap();
            opt.step(lr).unwrap();
            for i in 0..4 {
                let mut g = c[i] + rw[i];
                match kind {
                    OptimizerKind::AdamW => rw[i] *= 1.0 - lr * weight_decay,
                    _ => g += weight_decay * rw[i],
                }
                match kind {
                    OptimizerKind::Adam | OptimizerKind::AdamW => {
                        m[i] = b1 * m[i] + (1.0 - b1) * g;
                        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                        let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
                        rw[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
                    }
                    OptimizerKind::Sgd => {
                        buf[i] = if t == 1 { g } else { 0.9 * buf[i] + g };
                        rw[i] -= lr * if nesterov { g + 0.9 * buf[i] } else { buf[i] };
                    }
                }
            }
            let got = Vec::<f32>::try_from(w.detach()).unwrap();
            for i in 0..4 {
                assert!(
                    (got[i] as f64 - rw[i]).abs() < 1e-5,
                    "{kind:?} (fused {fuse}) step {t} w[{i}]: {} vs {}",
                    got[i],
                    rw[i]
                );
            }
        }
    }

    #[test]
    fn updates_follow_the_textbook_rules() {
        for fuse in [true, false] {
            run(OptimizerKind::Adam, 0.0, false, fuse);
            run(OptimizerKind::Adam, 0.1, false, fuse);
            run(OptimizerKind::AdamW, 0.1, false, fuse);
        }
        run(OptimizerKind::Sgd, 0.0, false, true);
        run(OptimizerKind::Sgd, 0.01, true, true);
    }

    /// The fused kernel and the kernel-by-kernel path give the same parameters and moments on a
    /// channels-last 4-D weight large enough to be split across threads, with weight decay.
    #[test]
    fn fused_and_unfused_adam_agree() {
        for kind in [OptimizerKind::Adam, OptimizerKind::AdamW] {
            let cfg = OptimSection {
                rule: rule(kind, 0.0, false),
                weight_decay: 0.05,
                ..OptimSection::default()
            };
            tch::manual_seed(3);
            // 147,456 elements: three work items of the fused kernel
            let w0 = Tensor::randn([256, 64, 3, 3], (Kind::Float, tch::Device::Cpu));
            let w0 = resnext_infer::precision::to_channels_last(&w0);
            let x = Tensor::randn([256, 64, 3, 3], (Kind::Float, tch::Device::Cpu));
            let mut out = Vec::new();
            for fuse in [true, false] {
                let w = w0.copy().set_requires_grad(true);
                let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.shallow_clone())], &[]);
                opt.set_fused(fuse);
                for _ in 0..3 {
                    let loss = (&w * &x).sin().sum(Kind::Float);
                    opt.backward(&loss).unwrap();
                    opt.step(0.01).unwrap();
                    assert_eq!(opt.fused_last, usize::from(fuse));
                }
                let m = opt.slots[0].moments.exp_avg.as_ref().unwrap().copy();
                out.push((w.detach(), m));
            }
            let (a, b) = (&out[0], &out[1]);
            let dw = (&a.0 - &b.0).abs().max().double_value(&[]);
            let dm = (&a.1 - &b.1).abs().max().double_value(&[]);
            assert!(
                dw < 1e-6 && dm < 1e-6,
                "{kind:?}: weights differ by {dw}, moments by {dm}"
            );
            let moved = (&a.0 - &w0).abs().max().double_value(&[]);
            assert!(moved > 1e-3, "{kind:?}: the weights did not move ({moved})");
        }
    }

    #[test]
    fn gradients_do_not_accumulate_across_steps() {
        let cfg: OptimSection = toml::from_str("name = \"sgd\"\nmomentum = 0.0").unwrap();
        let w = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.shallow_clone())], &[]);
        for _ in 0..2 {
            opt.backward(&(&w * 3.0).sum(Kind::Float)).unwrap();
            assert!((opt.grad_norm() - 3.0).abs() < 1e-6);
            opt.step(0.1).unwrap();
        }
        assert!(!w.grad().defined(), "backward must not fill .grad");
    }

    /// With zero gradients only weight decay moves a parameter: the 4-D weight decays, the 1-D
    /// BatchNorm bias stays put, unless `decay_norm_and_bias` is on.
    #[test]
    fn weight_decay_leaves_batchnorm_and_biases_alone() {
        for (kind, norm_and_bias) in [
            (OptimizerKind::Sgd, false),
            (OptimizerKind::AdamW, false),
            (OptimizerKind::Sgd, true),
        ] {
            let cfg = OptimSection {
                rule: rule(kind, 0.0, false),
                weight_decay: 0.5,
                decay_norm_and_bias: norm_and_bias,
                ..OptimSection::default()
            };
            let conv =
                Tensor::ones([2, 2, 1, 1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            let bias = Tensor::ones([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            // the roles, not the names, say which is a BatchNorm parameter
            let mut opt = Optimizer::new(
                &cfg,
                vec![
                    ("a".into(), conv.shallow_clone()),
                    ("b".into(), bias.shallow_clone()),
                ],
                &[(bias.shallow_clone(), ParamRole::NORM)],
            );
            // a loss whose gradient is zero everywhere
            let loss =
                ((&conv * 0.0).sum(Kind::Float) + (&bias * 0.0).sum(Kind::Float)).sum(Kind::Float);
            opt.backward(&loss).unwrap();
            opt.step(0.1).unwrap();
            let conv_after = conv.double_value(&[0, 0, 0, 0]);
            let bias_after = bias.double_value(&[0]);
            assert!(
                conv_after < 1.0 - 1e-3,
                "{kind:?}: the conv weight did not decay ({conv_after})"
            );
            if norm_and_bias {
                assert!(
                    bias_after < 1.0 - 1e-3,
                    "{kind:?}: decay_norm_and_bias must decay the bias"
                );
            } else {
                assert_eq!(bias_after, 1.0, "{kind:?}: the bias decayed");
            }
        }
    }

    #[test]
    fn clipping_scales_the_global_norm_down_and_leaves_small_gradients_alone() {
        let cfg: OptimSection = toml::from_str("name = \"sgd\"\nmomentum = 0.0").unwrap();
        let a = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[0.0f32]).set_requires_grad(true);
        let mut opt = Optimizer::new(
            &cfg,
            vec![
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            &[],
        );
        // gradients (3, 0) and (4): global norm 5
        let loss = || {
            (&a * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float) + (&b * 4.0).sum(Kind::Float)
        };
        opt.backward(&loss()).unwrap();
        let before = opt.clip_grad_norm(1.0).unwrap();
        assert!((before - 5.0).abs() < 1e-5);
        assert!((opt.grad_norm() - 1.0).abs() < 1e-4, "{}", opt.grad_norm());
        opt.step(1.0).unwrap();
        // SGD with lr 1 moves by minus the clipped gradient: (3, 0, 4) / 5
        assert!((a.double_value(&[0]) + 0.6).abs() < 1e-4);
        assert!((b.double_value(&[0]) + 0.8).abs() < 1e-4);
        opt.backward(&loss()).unwrap();
        assert!((opt.clip_grad_norm(10.0).unwrap() - 5.0).abs() < 1e-5);
        assert!(
            (opt.grad_norm() - 5.0).abs() < 1e-5,
            "below the limit nothing changes"
        );
    }
}
