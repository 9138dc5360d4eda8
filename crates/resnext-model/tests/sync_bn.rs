//! Synchronised BatchNorm over two "processes" (threads summing through a barrier) equals
//! ordinary BatchNorm on the whole batch: the logits, every parameter's gradient and the running
//! statistics.
//!
//! Both sides run in float64. In float32 the comparison measures luck more than the
//! synchronisation: the gradient is discontinuous at every ReLU input of 0 and every max-pool
//! near-tie, and about one draw in ten of this test's input puts a value within float32 rounding
//! of such a kink, which two ways of summing (two processes, or another CPU's kernels) resolve to
//! different sides. One flipped decision moves `bn1.bias`'s gradient (a sum over 2048 positions
//! that nearly cancels, since every path from it enters a BatchNorm) by up to 1.7e-2 of its
//! largest value, against 1e-5 without one (`scripts/sync_bn_flips.py`, 200 draws). That is the
//! 2.4e-2 an AVX2-only CPU showed. In float64 such a value must lie within 1e-16 of the kink.
//!
//! The tolerance is derived on the test's own input: the float32 against float64 difference of
//! the plain network, in float32 roundoffs, times float64's roundoff, times 100 for sums taken in
//! another order. It is an upper bound (a flip in float32 only raises it) and stays far below
//! what a synchronised BatchNorm without its cross-process terms gives (checked).

use resnext_model::sync_bn::{StatsReducer, SyncBatchNorm};
use resnext_model::{ModelConfig, ResNeXt};
use std::sync::{Arc, Barrier, Mutex};
use tch::nn::VarStore;
use tch::{Device, Kind, TchError, Tensor};

/// Which cross-process terms a [`ThreadSum`] adds.
#[derive(Clone, Copy, PartialEq)]
enum Terms {
    /// Statistics forward and gradient terms backward: synchronised BatchNorm.
    All,
    /// Only the forward statistics (a synchronised BatchNorm whose backward lost its cross-rank
    /// terms). The forward's sums have 2·C + 1 values, the backward's 2·C.
    ForwardOnly,
    /// None: per-process BatchNorm.
    None,
}

/// Sums over `n` threads: every thread adds its values, then reads the total.
struct ThreadSum {
    barrier: Barrier,
    acc: Mutex<Vec<f64>>,
    terms: Terms,
}

impl ThreadSum {
    fn new(n: usize, terms: Terms) -> Arc<Self> {
        Arc::new(Self {
            barrier: Barrier::new(n),
            acc: Mutex::new(Vec::new()),
            terms,
        })
    }
}

impl StatsReducer for ThreadSum {
    fn sum(&self, values: &mut [f64]) -> Result<(), TchError> {
        let forward = values.len() % 2 == 1;
        if self.terms == Terms::None || (self.terms == Terms::ForwardOnly && !forward) {
            return Ok(());
        }
        if self.barrier.wait().is_leader() {
            *self.acc.lock().unwrap() = vec![0.0; values.len()];
        }
        self.barrier.wait();
        {
            let mut acc = self.acc.lock().unwrap();
            assert_eq!(acc.len(), values.len(), "threads out of step");
            for (a, v) in acc.iter_mut().zip(values.iter()) {
                *a += v;
            }
        }
        self.barrier.wait();
        values.copy_from_slice(&self.acc.lock().unwrap());
        self.barrier.wait();
        Ok(())
    }
}

fn tiny() -> ModelConfig {
    ModelConfig::custom([1, 1, 1, 1], 2, 4, 3)
}

struct Net {
    vs: VarStore,
    net: ResNeXt,
}

/// The largest difference relative to the largest value of `want` (fp32 rounding of sums taken
/// in another order: about 1e-5 here).
fn relative(got: &Tensor, want: &Tensor) -> f64 {
    let scale = want.abs().max().double_value(&[]).max(1e-6);
    (got - want).abs().max().double_value(&[]) / scale
}

fn build() -> Net {
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), &tiny()).unwrap();
    Net { vs, net }
}

/// A network with `like`'s weights (copied: libtorch's generator is global and the tests of this
/// file run in parallel, so a seed would not give the same draws).
fn copy_of(like: &Net) -> Net {
    copy_in(like, Kind::Float)
}

/// [`copy_of`] with every variable in `kind` (float64: parameters, gradients and statistics).
fn copy_in(like: &Net, kind: Kind) -> Net {
    let mut n = build();
    if kind == Kind::Double {
        n.vs.double();
    }
    n.vs.copy(&like.vs).unwrap();
    n
}

fn trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn buffers(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| n.ends_with("running_mean") || n.ends_with("running_var"))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Loss on samples `range` of the batch, scaled so the processes' losses add up to the mean
/// over the whole batch.
fn loss(logits: &Tensor, labels: &Tensor, whole: i64) -> Tensor {
    let n = labels.size()[0];
    logits.cross_entropy_for_logits(labels) * (n as f64 / whole as f64)
}

/// What one side of a comparison gives: logits, the gradients of [`trainable`] in order, and
/// the networks afterwards (their running statistics).
struct Side {
    logits: Tensor,
    grads: Vec<Tensor>,
    nets: Vec<Net>,
}

/// Ordinary BatchNorm on the whole batch, in `x`'s dtype.
fn plain(net: Net, x: &Tensor, y: &Tensor) -> Side {
    let logits = net.net.f_forward_t(x, true).unwrap();
    let params = trainable(&net.vs);
    let refs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let grads = Tensor::run_backward(&[loss(&logits, y, x.size()[0])], &refs, false, false);
    Side {
        logits: logits.detach(),
        grads,
        nets: vec![net],
    }
}

/// Two threads, each with half the batch and its own copy of the network, BatchNorm through a
/// [`ThreadSum`] with `terms`; the gradients summed over the threads.
fn two_processes(copies: [Net; 2], x: &Tensor, y: &Tensor, terms: Terms) -> Side {
    let whole = x.size()[0];
    let half = whole / 2;
    let reducer = ThreadSum::new(2, terms);
    let parts: Vec<_> = copies
        .into_iter()
        .zip(0..2i64)
        .map(|(mut net, r)| {
            let sync = SyncBatchNorm::new(reducer.clone());
            net.net.set_sync_batchnorm(Some(sync.clone()));
            let xr = x.narrow(0, half * r, half);
            let yr = y.narrow(0, half * r, half);
            std::thread::spawn(move || {
                tch::set_num_threads(1);
                let logits = net.net.f_forward_t(&xr, true).unwrap();
                let params = trainable(&net.vs);
                let refs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
                let grads = sync.backward(&loss(&logits, &yr, whole), &refs).unwrap();
                (net, logits.detach(), grads)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let logits = Tensor::cat(&[&parts[0].1, &parts[1].1], 0);
    let grads = (0..parts[0].2.len())
        .map(|i| &parts[0].2[i] + &parts[1].2[i])
        .collect();
    Side {
        logits,
        grads,
        nets: parts.into_iter().map(|p| p.0).collect(),
    }
}

/// The largest [`relative`] difference over logits and gradients, and where.
fn worst(a: &Side, b: &Side, names: &[String]) -> (f64, String) {
    let mut w = (relative(&a.logits, &b.logits), "logits".to_string());
    for (i, name) in names.iter().enumerate() {
        let d = relative(
            &a.grads[i].to_kind(Kind::Double),
            &b.grads[i].to_kind(Kind::Double),
        );
        if d > w.0 {
            w = (d, name.clone());
        }
    }
    w
}

/// float32's and float64's unit roundoff.
const U32: f64 = f32::EPSILON as f64 / 2.0;
const U64: f64 = f64::EPSILON / 2.0;

#[test]
fn two_processes_equal_one_on_the_whole_batch() {
    tch::set_num_threads(1);
    let x = Tensor::randn([8, 3, 32, 32], (Kind::Double, Device::Cpu)) * 2.0 + 0.5;
    let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 2, 1]);
    let reference = build();
    // copies taken before any forward pass moves running statistics
    let copies = |kind| [copy_in(&reference, kind), copy_in(&reference, kind)];
    let names: Vec<String> = trainable(&reference.vs).into_iter().map(|p| p.0).collect();

    // How much this network amplifies rounding on this input: ordinary BatchNorm in float32
    // against float64, in units of float32's roundoff.
    let want = plain(copy_in(&reference, Kind::Double), &x, &y);
    let want32 = plain(copy_of(&reference), &x.to_kind(Kind::Float), &y);
    let (err32, at) = worst(&want32, &want, &names);
    let amplification = (err32 / U32).max(1.0);
    // float64 rounds 2^29 times finer; 100× that for sums taken in another order
    let tol = 100.0 * amplification * U64;
    let got = two_processes(copies(Kind::Double), &x, &y, Terms::All);
    let (d, name) = worst(&got, &want, &names);
    let sync32 = two_processes(copies(Kind::Float), &x.to_kind(Kind::Float), &y, Terms::All);
    let (d32, name32) = worst(&sync32, &want, &names);
    eprintln!(
        "float32 against float64: one process {err32:.3e} ({at}, amplification {amplification:.3e}), \
         two synchronised {d32:.3e} ({name32}); float64 two against one {d:.3e} ({name}), \
         tolerance {tol:.3e}"
    );
    assert!(
        d <= tol,
        "{name}: two processes differ from one by {d:.3e} (relative), more than {tol:.3e}"
    );

    // The running statistics agree as closely (the variance's E[x²] − mean² loses digits where
    // the mean dwarfs the spread, as ATen's running update does not: 10⁴ roundoffs allowed).
    let stats_tol = tol.max(1e4 * U64);
    for (p, net) in got.nets.iter().enumerate() {
        for ((name, a), (_, b)) in buffers(&want.nets[0].vs).iter().zip(buffers(&net.vs)) {
            let d = relative(&b, a);
            assert!(
                d <= stats_tol,
                "process {p}: {name} differs by {d:.3e} (relative)"
            );
        }
    }

    // The comparison fails without the cross-process terms, backward only or all of them.
    for terms in [Terms::ForwardOnly, Terms::None] {
        let broken = two_processes(copies(Kind::Double), &x, &y, terms);
        let (d, name) = worst(&broken, &want, &names);
        assert!(
            d > 1e3 * tol,
            "without cross-process terms ({}) the difference is only {d:.3e} ({name})",
            if terms == Terms::None {
                "all"
            } else {
                "backward"
            }
        );
    }
}

#[test]
fn one_process_equals_plain_batchnorm() {
    tch::set_num_threads(1);
    struct Alone;
    impl StatsReducer for Alone {
        fn sum(&self, _: &mut [f64]) -> Result<(), TchError> {
            Ok(())
        }
    }
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Double, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 1, 2, 0]);
    let reference = build();
    let names: Vec<String> = trainable(&reference.vs).into_iter().map(|p| p.0).collect();
    let want = plain(copy_in(&reference, Kind::Double), &x, &y);
    let want32 = plain(copy_of(&reference), &x.to_kind(Kind::Float), &y);
    let amplification = (worst(&want32, &want, &names).0 / U32).max(1.0);
    let tol = 100.0 * amplification * U64;

    let mut synced = copy_in(&reference, Kind::Double);
    let sync = SyncBatchNorm::new(Arc::new(Alone));
    synced.net.set_sync_batchnorm(Some(sync.clone()));
    let logits = synced.net.f_forward_t(&x, true).unwrap();
    let params = trainable(&synced.vs);
    let refs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let grads = sync.backward(&loss(&logits, &y, 4), &refs).unwrap();
    let got = Side {
        logits: logits.detach(),
        grads,
        nets: vec![],
    };
    let (d, name) = worst(&got, &want, &names);
    assert!(
        d <= tol,
        "{name}: gradients differ by {d:.3e} (relative), more than {tol:.3e}"
    );
    // float32 through the same code: the tolerance of float32 on this input
    let x32 = x.to_kind(Kind::Float);
    let mut synced32 = copy_of(&reference);
    let sync = SyncBatchNorm::new(Arc::new(Alone));
    synced32.net.set_sync_batchnorm(Some(sync.clone()));
    let params = trainable(&synced32.vs);
    let refs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let logits = synced32.net.f_forward_t(&x32, true).unwrap();
    let grads = sync.backward(&loss(&logits, &y, 4), &refs).unwrap();
    let got32 = Side {
        logits: logits.detach(),
        grads,
        nets: vec![],
    };
    let (d, name) = worst(&got32, &want, &names);
    let tol32 = 100.0 * amplification * U32;
    assert!(
        d <= tol32,
        "float32 {name}: differs by {d:.3e}, more than {tol32:.3e}"
    );
    // eval mode is untouched by the hook (neither network has trained)
    let mut fresh = copy_of(&reference);
    fresh
        .net
        .set_sync_batchnorm(Some(SyncBatchNorm::new(Arc::new(Alone))));
    let e1 = reference.net.f_forward_t(&x32, false).unwrap();
    let e2 = fresh.net.f_forward_t(&x32, false).unwrap();
    assert!((e1 - e2).abs().max().double_value(&[]) == 0.0);
}
