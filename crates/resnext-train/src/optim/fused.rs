//! Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) fused into one pass over the
//! memory of each CPU fp32 parameter, as PyTorch's `Adam(fused=True)` CPU kernel does.
//!
//! The update as separate libtorch kernels (`lerp_`, `mul`, `sqrt`, `addcdiv_`, …) streams the
//! parameter, gradient and moments through memory about 18 times per step; fused, it reads
//! p, g, m, v once and writes p, m, v once. On ResNeXt-50 (25 M parameters) that is the
//! difference between ~150 ms and ~20 ms a step on the development machine (docs/performance.md).
//! Tensors this kernel cannot take (not CPU, not fp32, strided differently from the parameter,
//! overlapping) go back to the kernel-by-kernel path in [`super::Optimizer::step`].

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Elements per parallel work item: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 16;

/// The constants of one Adam step, folded as PyTorch's fused kernel folds them.
#[derive(Debug, Clone, Copy)]
pub(super) struct AdamStep {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// lr / (1 − β1ᵗ).
    pub step_size: f32,
    /// 1 / √(1 − β2ᵗ).
    pub inv_sqrt_bc2: f32,
    /// Adam's L2 term added to the gradient (0 for AdamW or no decay).
    pub l2: f32,
    /// AdamW's decoupled factor the parameter is multiplied by first (1 for Adam).
    pub decoupled: f32,
}

impl AdamStep {
    /// One element: returns (p, m, v) after the step.
    #[inline(always)]
    fn apply(&self, p: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let p = p * self.decoupled;
        let g = g + self.l2 * p;
        let m = m + (1.0 - self.beta1) * (g - m);
        let v = self.beta2 * v + (1.0 - self.beta2) * g * g;
        let denom = v.sqrt() * self.inv_sqrt_bc2 + self.eps;
        (p - self.step_size * m / denom, m, v)
    }
}

/// One parameter's four tensors, checked to be plain fp32 CPU memory of identical layout.
pub(super) struct Operands {
    /// The addresses of p, g, m and v.
    ptrs: [usize; 4],
    len: usize,
    step: AdamStep,
}

/// The (size, stride) of each dim of `t` but those of size 1, whose stride does not matter.
fn layout(t: &Tensor) -> Vec<(i64, i64)> {
    t.size()
        .into_iter()
        .zip(t.stride())
        .filter(|&(size, _)| size != 1)
        .collect()
}

/// True when `t` is fp32 on the CPU and its elements cover one dense block of memory without
/// overlap (row-major, channels-last or any other permutation of a dense layout).
fn dense_f32_cpu(t: &Tensor) -> bool {
    if t.device() != Device::Cpu || t.kind() != Kind::Float {
        return false;
    }
    let mut dims = layout(t);
    dims.sort_unstable_by_key(|&(size, stride)| (stride, size));
    let mut expected = 1;
    for (size, stride) in dims {
        if stride != expected {
            return false;
        }
        expected *= size;
    }
    true
}

impl Operands {
    /// The operands of one parameter, or `None` when the fused kernel cannot take them.
    pub(super) fn new(
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        step: AdamStep,
    ) -> Option<Self> {
        let all = [p, g, m, v];
        // dense, of the same shape, and the same strides where they matter (dims of size 1 have
        // any stride)
        let want = layout(p);
        let like_p = |t: &&Tensor| dense_f32_cpu(t) && t.size() == p.size() && layout(t) == want;
        if !all.iter().all(like_p) {
            return None;
        }
        let ptrs = all.map(|t| t.data_ptr() as usize);
        // four distinct blocks: the same memory twice would be a data race below
        let len = p.numel();
        let bytes = len * std::mem::size_of::<f32>();
        if !no_overlap(ptrs.map(|a| (a, a + bytes))) {
            return None;
        }
        Some(Self { ptrs, len, step })
    }
}

/// Runs the update of every parameter in `ops`, split into chunks over `pool`'s threads (on the
/// calling thread without a pool).
///
/// # Safety
/// [`Operands`] holds raw addresses, not the tensors: every tensor that an operand was made from
/// must stay alive, unmoved and untouched by anything else until this returns.
#[allow(unsafe_code)]
pub(super) unsafe fn run(pool: Option<&rayon::ThreadPool>, ops: &[Operands]) {
    let items: Vec<(usize, usize, usize)> = ops
        .iter()
        .enumerate()
        .flat_map(|(i, op)| {
            (0..op.len)
                .step_by(CHUNK)
                .map(move |start| (i, start, (op.len - start).min(CHUNK)))
        })
        .collect();
    let work = |&(i, start, len): &(usize, usize, usize)| update(&ops[i], start, len);
    match pool {
        // tied parameters (one tensor listed twice) are updated one after the other, as unfused
        Some(pool) if disjoint(ops) => pool.install(|| items.par_iter().for_each(work)),
        _ => items.iter().for_each(work),
    }
}

/// True when no two operands of different parameters share memory.
fn disjoint(ops: &[Operands]) -> bool {
    no_overlap(ops.iter().flat_map(|op| {
        let end = op.len * std::mem::size_of::<f32>();
        op.ptrs.map(|a| (a, a + end))
    }))
}

/// True when no two of the address ranges [start, end) overlap.
fn no_overlap(ranges: impl IntoIterator<Item = (usize, usize)>) -> bool {
    let mut ranges: Vec<_> = ranges.into_iter().collect();
    ranges.sort_unstable();
    ranges.windows(2).all(|w| w[0].1 <= w[1].0)
}

/// Elements [start, start + len) of one parameter.
#[allow(unsafe_code)]
fn update(op: &Operands, start: usize, len: usize) {
    // SAFETY: `Operands::new` checked that p, g, m and v are dense fp32 blocks of `op.len`
    // elements on the CPU with no two overlapping, and the caller keeps the tensors alive;
    // work items of one parameter cover disjoint ranges [start, start + len), and items run
    // in parallel only when `disjoint` found no memory shared between parameters, so no two
    // threads touch the same element.
    let [p, g, m, v] = op.ptrs;
    let (p, g, m, v) = unsafe {
        (
            std::slice::from_raw_parts_mut((p as *mut f32).add(start), len),
            std::slice::from_raw_parts((g as *const f32).add(start), len),
            std::slice::from_raw_parts_mut((m as *mut f32).add(start), len),
            std::slice::from_raw_parts_mut((v as *mut f32).add(start), len),
        )
    };
    let s = op.step;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        (*p, *m, *v) = s.apply(*p, g, *m, *v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> AdamStep {
        AdamStep {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step_size: 0.01,
            inv_sqrt_bc2: 1.0,
            l2: 0.0,
            decoupled: 1.0,
        }
    }

    #[test]
    fn dense_layouts_are_recognised() {
        let t = Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        assert!(dense_f32_cpu(&t));
        let cl = t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(dense_f32_cpu(&cl));
        assert!(!dense_f32_cpu(&t.narrow(1, 0, 2)), "a slice has gaps");
        assert!(!dense_f32_cpu(&t.to_kind(Kind::Double)));
        let expanded = Tensor::zeros([1, 5], (Kind::Float, Device::Cpu)).expand([4, 5], false);
        assert!(!dense_f32_cpu(&expanded), "broadcast rows overlap");
    }

    #[test]
    fn mismatched_or_shared_operands_are_refused() {
        let p = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        let g = p.ones_like();
        let (m, v) = (p.zeros_like(), p.zeros_like());
        assert!(Operands::new(&p, &g, &m, &v, step()).is_some());
        assert!(
            Operands::new(&p, &g, &m, &m, step()).is_none(),
            "m and v share memory"
        );
        let gt = g.tr().contiguous().tr();
        assert!(
            Operands::new(&p, &gt, &m, &v, step()).is_none(),
            "strides differ"
        );
        // a 1×1 convolution weight stored channels-last has the same memory order as its
        // contiguous gradient: only the strides of the size-1 dims differ
        let w = Tensor::zeros([8, 4, 1, 1], (Kind::Float, Device::Cpu));
        let w_cl = w.as_strided([8, 4, 1, 1], [4, 1, 4, 4], None);
        assert_ne!(w_cl.stride(), w.stride());
        let (m, v) = (w_cl.zeros_like(), w_cl.zeros_like());
        assert!(Operands::new(&w_cl, &w.ones_like(), &m, &v, step()).is_some());
    }
}
