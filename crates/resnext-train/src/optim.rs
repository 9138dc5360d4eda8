//! Optimisers with state the project owns, so a run resumes exactly: Adam (Kingma & Ba 2015),
//! AdamW (Loshchilov & Hutter 2019) and SGD with momentum/Nesterov, following PyTorch's update
//! rules. Weight decay can leave BatchNorm parameters and biases (every 1-D tensor) alone.

mod fused;

use crate::config::{OptimSection, OptimizerKind};
use crate::error::TrainError;
use resnext_model::sync_bn::SyncBatchNorm;
use tch::{Kind, TchError, Tensor};

/// A trainable parameter and its optimiser state.
struct Slot {
    name: String,
    param: Tensor,
    decay: bool,
    /// The classifier head (`fc.*`).
    head: bool,
    /// A BatchNorm weight or bias.
    batchnorm: bool,
    exp_avg: Option<Tensor>,
    exp_avg_sq: Option<Tensor>,
    momentum: Option<Tensor>,
    /// The gradient from [`Optimizer::backward`]; `None` falls back to the parameter's `.grad`.
    grad: Option<Tensor>,
}

impl Slot {
    /// The gradient of this step, if any.
    fn grad(&self) -> Option<Tensor> {
        match &self.grad {
            Some(g) => Some(g.shallow_clone()),
            None => {
                let g = self.param.grad();
                g.defined().then_some(g)
            }
        }
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

/// A BatchNorm parameter by its torchvision name (`bn1`, `layer1.0.bn2`, `layer1.0.downsample.1`).
pub fn is_batchnorm(name: &str) -> bool {
    let parent = name.rsplit_once('.').map_or("", |(p, _)| p);
    let last = parent.rsplit('.').next().unwrap_or("");
    last.starts_with("bn") || parent.ends_with("downsample.1")
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
            .field("kind", &self.cfg.name)
            .field("params", &self.slots.len())
            .field("step", &self.step)
            .finish()
    }
}

impl Optimizer {
    /// `params` are (name, tensor) pairs of the trainable variables.
    pub fn new(cfg: &OptimSection, mut params: Vec<(String, Tensor)>) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = params
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, param)| {
                let decay = cfg.decay_norm_and_bias || param.dim() > 1;
                let head = name.starts_with("fc.");
                let batchnorm = is_batchnorm(&name);
                Slot {
                    name,
                    param,
                    decay,
                    head,
                    batchnorm,
                    exp_avg: None,
                    exp_avg_sq: None,
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
        !(frozen.backbone && !s.head) && !(frozen.batchnorm && s.batchnorm)
    }

    /// Forgets the gradients of the last step.
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.grad = None;
            if s.param.grad().defined() {
                s.param.zero_grad();
            }
        }
    }

    /// Computes the gradients of `loss` with respect to the parameters into fresh tensors (as
    /// PyTorch's `zero_grad(set_to_none=True)` + `backward()`): nothing is zeroed beforehand and
    /// nothing accumulates into `.grad`, which saves two passes over the gradients every step.
    pub fn backward(&mut self, loss: &Tensor) -> Result<(), TrainError> {
        self.backward_with(loss, None)
    }

    /// [`Self::backward`], through the cuts of synchronised BatchNorm when `sync` is given.
    pub fn backward_with(
        &mut self,
        loss: &Tensor,
        sync: Option<&SyncBatchNorm>,
    ) -> Result<(), TrainError> {
        // The last step's gradients go first, so they never coexist with the new ones.
        for s in &mut self.slots {
            s.grad = None;
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
            s.grad = g.defined().then_some(g);
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
    // `g = g + x` on purpose: `g += x` would add in place into the parameter's .grad.
    #[allow(clippy::assign_op_pattern)]
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
            for s in &mut self.slots {
                if !Self::active(frozen, s) {
                    continue;
                }
                let Some(g) = s.grad() else {
                    continue;
                };
                let lr = if s.head { lr * c.head_lr_mult } else { lr };
                let mut g = g.to_kind(Kind::Float);
                let decay = if s.decay { wd } else { 0.0 };
                match c.name {
                    OptimizerKind::Adam | OptimizerKind::AdamW => {
                        let adamw = c.name == OptimizerKind::AdamW;
                        let (b1, b2) = (c.betas[0], c.betas[1]);
                        let step_size = lr / (1.0 - b1.powf(t));
                        let sqrt_bc2 = (1.0 - b2.powf(t)).sqrt();
                        let m = s.exp_avg.get_or_insert_with(|| s.param.zeros_like());
                        let v = s.exp_avg_sq.get_or_insert_with(|| s.param.zeros_like());
                        let constants = fused::AdamStep {
                            beta1: b1 as f32,
                            beta2: b2 as f32,
                            eps: c.eps as f32,
                            step_size: step_size as f32,
                            inv_sqrt_bc2: (1.0 / sqrt_bc2) as f32,
                            l2: if adamw { 0.0 } else { decay as f32 },
                            decoupled: if adamw {
                                (1.0 - lr * decay) as f32
                            } else {
                                1.0
                            },
                        };
                        let fusable = self
                            .fuse
                            .then(|| fused::Operands::new(&s.param, &g, m, v, constants));
                        if let Some(op) = fusable.flatten() {
                            fused_ops.push(op);
                            alive.push(g);
                            continue;
                        }
                        if adamw && decay > 0.0 {
                            s.param.f_mul_scalar_(1.0 - lr * decay).map(drop)?;
                        } else if decay > 0.0 {
                            g = g + &s.param * decay;
                        }
                        // PyTorch's single-tensor Adam, with the constants folded so that the
                        // update is 7 kernels and 2 temporaries per parameter:
                        // m ← lerp(m, g, 1-β1); v ← lerp(v, g², 1-β2);
                        // p ← p + m / ((√v/√bc2 + eps) · (-bc1/lr)).
                        m.f_lerp_(&g, 1.0 - b1).map(drop)?;
                        v.f_lerp_(&(&g * &g), 1.0 - b2).map(drop)?;
                        let mut denom = v.sqrt();
                        denom
                            .f_mul_scalar_(-1.0 / (sqrt_bc2 * step_size))
                            .map(drop)?;
                        denom.f_add_scalar_(-c.eps / step_size).map(drop)?;
                        s.param.f_addcdiv_(m, &denom).map(drop)?;
                    }
                    OptimizerKind::Sgd => {
                        if decay > 0.0 {
                            g = g + &s.param * decay;
                        }
                        if c.momentum > 0.0 {
                            let buf = match &mut s.momentum {
                                Some(b) => {
                                    b.f_mul_scalar_(c.momentum).map(drop)?;
                                    b.f_add_(&g).map(drop)?;
                                    b.shallow_clone()
                                }
                                None => {
                                    let b = g.copy();
                                    s.momentum = Some(b.shallow_clone());
                                    b
                                }
                            };
                            g = if c.nesterov {
                                g + buf * c.momentum
                            } else {
                                buf
                            };
                        }
                        s.param.f_sub_(&(g * lr)).map(drop)?;
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
                ("exp_avg", &s.exp_avg),
                ("exp_avg_sq", &s.exp_avg_sq),
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
            s.exp_avg = get("exp_avg")?;
            s.exp_avg_sq = get("exp_avg_sq")?;
            s.momentum = get("momentum")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three steps on loss = Σ c·w + ½ Σ w² (gradient c + w) against the textbook update rules
    /// (PyTorch's `torch.optim` definitions) computed in f64.
    fn run(kind: OptimizerKind, weight_decay: f64, nesterov: bool, fuse: bool) {
        let cfg = OptimSection {
            name: kind,
            weight_decay,
            nesterov,
            momentum: 0.9,
            decay_norm_and_bias: true,
            ..toml::from_str("").unwrap()
        };
        let w0 = [0.5f64, -1.5, 2.0, 0.01];
        let c = [0.3f64, -0.2, 1.0, -4.0];
        let w = Tensor::from_slice(&w0.map(|x| x as f32)).set_requires_grad(true);
        let ct = Tensor::from_slice(&c.map(|x| x as f32));
        let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.shallow_clone())]);
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
                name: kind,
                weight_decay: 0.05,
                ..toml::from_str("").unwrap()
            };
            tch::manual_seed(3);
            // 147,456 elements: three work items of the fused kernel
            let w0 = Tensor::randn([256, 64, 3, 3], (Kind::Float, tch::Device::Cpu));
            let w0 = resnext_infer::precision::to_channels_last(&w0);
            let x = Tensor::randn([256, 64, 3, 3], (Kind::Float, tch::Device::Cpu));
            let mut out = Vec::new();
            for fuse in [true, false] {
                let w = w0.copy().set_requires_grad(true);
                let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.shallow_clone())]);
                opt.set_fused(fuse);
                for _ in 0..3 {
                    let loss = (&w * &x).sin().sum(Kind::Float);
                    opt.backward(&loss).unwrap();
                    opt.step(0.01).unwrap();
                    assert_eq!(opt.fused_last, usize::from(fuse));
                }
                let m = opt.slots[0].exp_avg.as_ref().unwrap().copy();
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
        let mut opt = Optimizer::new(&cfg, vec![("w".into(), w.shallow_clone())]);
        for _ in 0..2 {
            opt.backward(&(&w * 3.0).sum(Kind::Float)).unwrap();
            assert!((opt.grad_norm() - 3.0).abs() < 1e-6);
            opt.step(0.1).unwrap();
        }
        assert!(!w.grad().defined(), "backward must not fill .grad");
    }

    /// With zero gradients only weight decay moves a parameter: the 4-D weight decays, the 1-D
    /// BatchNorm weight and bias stay put, unless `decay_norm_and_bias` is on.
    #[test]
    fn weight_decay_leaves_batchnorm_and_biases_alone() {
        for (kind, norm_and_bias) in [
            (OptimizerKind::Sgd, false),
            (OptimizerKind::AdamW, false),
            (OptimizerKind::Sgd, true),
        ] {
            let cfg = OptimSection {
                name: kind,
                weight_decay: 0.5,
                decay_norm_and_bias: norm_and_bias,
                momentum: 0.0,
                ..toml::from_str("").unwrap()
            };
            let conv =
                Tensor::ones([2, 2, 1, 1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            let bias = Tensor::ones([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            let mut opt = Optimizer::new(
                &cfg,
                vec![
                    ("layer.conv.weight".into(), conv.shallow_clone()),
                    ("layer.bn.bias".into(), bias.shallow_clone()),
                ],
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
