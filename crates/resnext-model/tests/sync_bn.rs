//! Synchronised BatchNorm over two "processes" (threads summing through a barrier) equals
//! ordinary BatchNorm on the whole batch: the logits, every parameter's gradient and the running
//! statistics.

use resnext_model::sync_bn::{StatsReducer, SyncBatchNorm};
use resnext_model::{ModelConfig, ResNeXt};
use std::sync::{Arc, Barrier, Mutex};
use tch::nn::VarStore;
use tch::{Device, Kind, TchError, Tensor};

/// Sums over `n` threads: every thread adds its values, then reads the total.
struct ThreadSum {
    barrier: Barrier,
    acc: Mutex<Vec<f64>>,
}

impl StatsReducer for ThreadSum {
    fn sum(&self, values: &mut [f64]) -> Result<(), TchError> {
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
    let mut n = build();
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

#[test]
fn two_processes_equal_one_on_the_whole_batch() {
    tch::set_num_threads(1);
    let x = Tensor::randn([8, 3, 32, 32], (Kind::Float, Device::Cpu)) * 2.0 + 0.5;
    let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 2, 1]);

    let reference = build();
    // copies taken before the reference's forward pass moves its running statistics
    let copies = [copy_of(&reference), copy_of(&reference)];
    let logits = reference.net.f_forward_t(&x, true).unwrap();
    let params = trainable(&reference.vs);
    let refs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let want = Tensor::run_backward(&[loss(&logits, &y, 8)], &refs, false, false);

    let reducer = Arc::new(ThreadSum {
        barrier: Barrier::new(2),
        acc: Mutex::new(Vec::new()),
    });
    let parts: Vec<_> = copies
        .into_iter()
        .zip(0..2i64)
        .map(|(mut net, r)| {
            let sync = SyncBatchNorm::new(reducer.clone());
            net.net.set_sync_batchnorm(Some(sync.clone()));
            let xr = x.narrow(0, 4 * r, 4);
            let yr = y.narrow(0, 4 * r, 4);
            std::thread::spawn(move || {
                tch::set_num_threads(1);
                let logits = net.net.f_forward_t(&xr, true).unwrap();
                let params = trainable(&net.vs);
                let refs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
                let grads = sync.backward(&loss(&logits, &yr, 8), &refs).unwrap();
                (net, logits.detach(), grads)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();

    let logits_sync = Tensor::cat(&[&parts[0].1, &parts[1].1], 0);
    let d = (&logits_sync - &logits).abs().max().double_value(&[]);
    assert!(d < 1e-4, "logits differ by {d}");
    for (i, (name, _)) in params.iter().enumerate() {
        let g = &parts[0].2[i] + &parts[1].2[i];
        let d = relative(&g, &want[i]);
        assert!(d < 1e-3, "{name}: gradients differ by {d} (relative)");
    }
    for (p, part) in parts.iter().enumerate() {
        for ((name, a), (_, b)) in buffers(&reference.vs).iter().zip(buffers(&part.0.vs)) {
            let d = (a - &b).abs().max().double_value(&[]);
            assert!(d < 1e-5, "process {p}: {name} differs by {d}");
        }
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
    let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 1, 2, 0]);
    let plain = build();
    let mut synced = copy_of(&plain);
    let logits = plain.net.f_forward_t(&x, true).unwrap();
    let params = trainable(&plain.vs);
    let refs: Vec<&Tensor> = params.iter().map(|(_, t)| t).collect();
    let want = Tensor::run_backward(&[loss(&logits, &y, 4)], &refs, false, false);
    let sync = SyncBatchNorm::new(Arc::new(Alone));
    synced.net.set_sync_batchnorm(Some(sync.clone()));
    let logits2 = synced.net.f_forward_t(&x, true).unwrap();
    let params2 = trainable(&synced.vs);
    let refs2: Vec<&Tensor> = params2.iter().map(|(_, t)| t).collect();
    let got = sync.backward(&loss(&logits2, &y, 4), &refs2).unwrap();
    for (i, (name, _)) in params.iter().enumerate() {
        let d = relative(&got[i], &want[i]);
        assert!(d < 1e-3, "{name}: gradients differ by {d} (relative)");
    }
    // eval mode is untouched by the hook
    let e1 = plain.net.f_forward_t(&x, false).unwrap();
    let e2 = synced.net.f_forward_t(&x, false).unwrap();
    assert!((e1 - e2).abs().max().double_value(&[]) < 1e-5);
}
