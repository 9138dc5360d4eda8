//! `resnext bench train|eval`: steady-state throughput of the network alone (random inputs, no
//! data loading) and peak memory, for the side-by-side comparison with PyTorch
//! (`cargo xtask bench`, `scripts/bench_torch.py`). `--json` prints the same figures as one JSON
//! object (what the xtask benches read).

use crate::args::{AblateArg, BenchArgs, BenchMode};
use anyhow::{bail, Result};
use resnext_model::{Ablation, ResNeXt};
use resnext_train::config::OptimSection;
use resnext_train::loss::cross_entropy;
use resnext_train::optim::Optimizer;
use resnext_train::precision::{prepare_input, with_autocast};
use std::process::ExitCode;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    let train = a.mode == BenchMode::Train;
    if a.batch == 0 || a.steps == 0 {
        bail!("--batch and --steps must be at least 1");
    }
    if a.batch > 4096 || !(32..=4096).contains(&a.image_size) || a.threads > 256 {
        bail!(
            "--batch must be at most 4096, --image-size between 32 and 4096, --threads at most 256"
        );
    }
    if a.fold_bn && train {
        bail!("--fold-bn is for inference: use it with `bench eval`");
    }
    let ablation = Ablation {
        batchnorm: a.ablate.contains(&AblateArg::Batchnorm),
        relu: a.ablate.contains(&AblateArg::Relu),
    };
    let opts = a.numerics.resolve(false)?;
    let (device, precision, channels_last) = (opts.device, opts.precision, opts.channels_last);
    if a.threads > 0 {
        tch::set_num_threads(a.threads as i32);
    }
    tch::manual_seed(0);
    let config = crate::source::model_config(&a.model, a.num_classes)?;
    let vs = VarStore::new(device);
    let mut net = ResNeXt::new(&vs.root(), &config)?;
    net.set_ablation(ablation);
    if a.fold_bn {
        net.fold_batchnorm()?;
    }
    if channels_last {
        resnext_model::weights::convert_to_channels_last(&vs)?;
    }
    let trainable: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    let mut opt = Optimizer::new(&OptimSection::default(), trainable, &net.parameter_roles());
    let s = a.image_size as i64;
    let x = Tensor::f_randn([a.batch as i64, 3, s, s], (Kind::Float, tch::Device::Cpu))?;
    let y = Tensor::f_randint(a.num_classes, [a.batch as i64], (Kind::Int64, device))?;
    let step = |opt: &mut Optimizer| -> Result<()> {
        let input = prepare_input(x.shallow_clone(), precision, channels_last, device)?;
        if train {
            let logits = with_autocast(precision, device, || net.f_forward_t(&input, true))?;
            let loss = cross_entropy(&logits, &y);
            opt.backward(&loss)?;
            opt.step(1e-4)?;
        } else {
            let logits = tch::no_grad(|| {
                with_autocast(precision, device, || net.f_forward_t(&input, false))
            })?;
            // waits for the forward pass (asynchronous on CUDA)
            logits.f_sum(Kind::Float)?.f_double_value(&[])?;
        }
        Ok(())
    };
    for _ in 0..a.warmup {
        step(&mut opt)?;
    }
    if let tch::Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    let start = Instant::now();
    for _ in 0..a.steps {
        step(&mut opt)?;
    }
    if let tch::Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    let secs = start.elapsed().as_secs_f64();
    let images = (a.batch * a.steps) as f64;
    let mult_adds = resnext_model::summary::forward_mult_adds(&config, s);
    let layout = if channels_last { " channels_last" } else { "" };
    let mode = if train { "train" } else { "eval" };
    if a.json {
        let report = serde_json::json!({
            "mode": mode,
            "arch": config.arch.to_string(),
            "batch": a.batch,
            "precision": precision.name(),
            "channels_last": channels_last,
            "device": format!("{device:?}"),
            "steps": a.steps,
            "seconds": secs,
            "forward_mult_adds": mult_adds,
            "ablated": (!ablation.is_none()).then(|| ablation.describe()),
            "peak_rss_mib": peak_rss_mib(),
            "images_per_second": images / secs,
        });
        println!("{report}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{mode} {} batch {} {}{layout} on {device:?}: {} steps in {secs:.2} s",
        config.arch,
        a.batch,
        precision.name(),
        a.steps,
    );
    println!("forward mult-adds: {mult_adds} per image");
    if !ablation.is_none() {
        println!(
            "ablated: {} skipped (a diagnostic network, not a ResNeXt)",
            ablation.describe()
        );
    }
    if let Some(m) = peak_rss_mib() {
        println!("peak memory (RSS): {m:.0} MiB");
    }
    println!("throughput: {:.2} img/s", images / secs);
    Ok(ExitCode::SUCCESS)
}
