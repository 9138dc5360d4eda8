//! `cargo xtask gpu-check`: the checks for the day a machine with an NVIDIA GPU is at hand, in
//! one command.
//!
//! 1. `setup --cuda` (the full wheel set) when a GPU is present;
//! 2. a tiny training (custom ResNeXt on synthetic 32 px images, SGD, 1 epoch, 1 thread) on the
//!    CPU in fp32, and on CUDA in fp32, bf16 and fp16, each CUDA run's first-epoch training loss
//!    against the CPU's within a stated tolerance ([`TOLERANCE`]);
//! 3. `predict` (CUDA against CPU on the same weights), `export` (TorchScript and ONNX) and
//!    `serve` (one request on loopback) from the CUDA fp32 run;
//! 4. `resnext bench` against PyTorch (`scripts/bench_torch.py --device cuda`) on the same GPU.
//!
//! Without a GPU it runs the CPU side (training, predict, export), says that no GPU was found,
//! and exits 0. Nothing in it has run on a GPU yet.

use crate::bench::{resnext_bench, throughput};
use crate::launch;
use crate::{cmd, flags, run_files, setup};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Largest relative difference of the first epoch's training loss from the CPU fp32 run's: fp32
/// on CUDA differs by cuDNN's algorithms and summation order (and TF32 where libtorch enables it
/// for cuDNN convolutions: 10 bits of mantissa), bf16 and fp16 by their 8 and 11 bits, over the
/// epoch's 6 steps.
const TOLERANCE: [(&str, f64); 3] = [("fp32", 0.02), ("bf16", 0.05), ("fp16", 0.05)];

pub fn run() -> Result<()> {
    let gpu = setup::gpu_present();
    setup::run(&flags::Setup {
        cuda: gpu,
        ..Default::default()
    })?;
    let bin = launch::build_cli_release()?;
    let work = cmd::target_dir()?.join("gpu-check");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot remove {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let data = work.join("data");
    let resnext = |args: &[&str]| -> Result<std::process::Output> {
        cmd::output(
            Command::new(&bin).args(args),
            &format!("resnext {}", args.join(" ")),
        )
    };
    resnext(&[
        "data",
        "synth",
        "--out",
        s(&data),
        "--per-class",
        "16",
        "--size",
        "32",
    ])?;
    let config = work.join("tiny.toml");
    // SGD: its update is linear in the gradient, so precision shows as a proportional difference
    resnext_io::write_atomic(
        &config,
        resnext_testkit::tiny_sgd_config_text(&data, 1, "").as_bytes(),
    )?;
    let train = |name: &str, device: &str, precision: &str| -> Result<(PathBuf, f64)> {
        let out = work.join(name);
        resnext(&[
            "train",
            "--config",
            s(&config),
            "--out",
            s(&out),
            "--device",
            device,
            "--precision",
            precision,
        ])?;
        let loss = run_files::first_epoch(&out, &["train_loss"])?[0];
        Ok((out, loss))
    };
    let (cpu_run, cpu_loss) = train("cpu-fp32", "cpu", "fp32")?;
    println!("cpu fp32: first-epoch training loss {cpu_loss:.6}");
    let image = data.join("rings");
    let cpu_probs = predict(&resnext, &cpu_run, "cpu", &image)?;
    // TorchScript and ONNX exports of `run`, as STEM.pt and STEM.onnx
    let export = |run: &Path, stem: &str| -> Result<()> {
        for (format, ext) in [("torchscript", "pt"), ("onnx", "onnx")] {
            let out = work.join(format!("{stem}.{ext}"));
            resnext(&[
                "export",
                "--run",
                s(run),
                "--format",
                format,
                "--out",
                s(&out),
            ])?;
        }
        Ok(())
    };
    export(&cpu_run, "model")?;
    println!(
        "cpu: predict ({} images) and export (TorchScript, ONNX) work",
        cpu_probs.len()
    );
    if !gpu {
        println!(
            "gpu-check: no NVIDIA GPU found (no /dev/nvidia*, no nvidia-smi): ran the CPU side \
             only; the CUDA checks need a machine with a GPU"
        );
        return Ok(());
    }

    let mut failures = Vec::new();
    let mut cuda_runs = Vec::new();
    for (precision, tol) in TOLERANCE {
        let (run, loss) = train(&format!("cuda-{precision}"), "cuda", precision)?;
        let rel = (loss - cpu_loss).abs() / cpu_loss.abs().max(1e-12);
        let ok = rel <= tol;
        println!(
            "cuda {precision}: first-epoch training loss {loss:.6}, {rel:.2e} from the CPU's (tolerance {tol}) {}",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            failures.push(format!("cuda {precision} training"));
        }
        cuda_runs.push(run);
    }
    let cuda_run = &cuda_runs[0];
    let on_cuda = predict(&resnext, cuda_run, "cuda", &image)?;
    let on_cpu = predict(&resnext, cuda_run, "cpu", &image)?;
    let d = on_cuda
        .iter()
        .zip(&on_cpu)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0f64, f64::max);
    println!("predict: CUDA against CPU on the CUDA run's weights: {d:.2e} (tolerance 1e-3)");
    if d > 1e-3 {
        failures.push("predict on CUDA".into());
    }
    export(cuda_run, "cuda")?;
    println!("export: TorchScript and ONNX from the CUDA run");
    match serve_once(&bin, cuda_run, &image) {
        Ok(status) => println!("serve --device cuda: POST /v1/predict answered {status}"),
        Err(e) => {
            println!("serve --device cuda: FAILED: {e:#}");
            failures.push("serve on CUDA".into());
        }
    }
    bench_against_pytorch(&bin)?;
    if !failures.is_empty() {
        bail!("gpu-check failed: {}", failures.join(", "));
    }
    println!("gpu-check: every CUDA check passed");
    Ok(())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// The probabilities `resnext predict --json` gives for every image under `images`.
fn predict(
    resnext: &dyn Fn(&[&str]) -> Result<std::process::Output>,
    run: &Path,
    device: &str,
    images: &Path,
) -> Result<Vec<Vec<f64>>> {
    let o = resnext(&[
        "predict",
        "--run",
        s(run),
        "--device",
        device,
        "--json",
        s(images),
    ])?;
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).context("predict --json line")?;
        let probs: Vec<f64> = v["probs"]
            .as_array()
            .context("predict --json has no `probs`")?
            .iter()
            .map(|p| p.as_f64().unwrap_or(f64::NAN))
            .collect();
        out.push(probs);
    }
    if out.is_empty() {
        bail!("predict printed nothing for {}", images.display());
    }
    Ok(out)
}

/// Starts `resnext serve --device cuda` on a loopback port, posts one image, stops it; the
/// HTTP status line.
fn serve_once(bin: &Path, run: &Path, images: &Path) -> Result<String> {
    let image = std::fs::read_dir(images)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file())
        .context("no image to send")?;
    let body = std::fs::read(&image)?;
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--run",
            s(run),
            "--device",
            "cuda",
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start resnext serve")?;
    let result = (|| -> Result<String> {
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .with_context(|| format!("serve printed no address: {line}"))?
            .to_string();
        let mut conn = std::net::TcpStream::connect(&addr)?;
        conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        write!(
            conn,
            "POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        conn.write_all(&body)?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        let status = answer.lines().next().unwrap_or_default().to_string();
        if !status.contains(" 200") {
            bail!("{status}");
        }
        Ok(status)
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `resnext bench` and PyTorch eager on the GPU, ResNeXt-50 at batch 32, each setting once.
fn bench_against_pytorch(bin: &Path) -> Result<()> {
    let python = setup::ensure_python_packages(&["torchvision==0.28.0"])?;
    let script = cmd::root().join("scripts/bench_torch.py");
    println!("| mode | precision | layout | PyTorch img/s | resnext img/s | ratio |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for mode in ["train", "eval"] {
        for (precision, layout) in [
            ("fp32", "nchw"),
            ("bf16", "channels_last"),
            ("fp16", "channels_last"),
        ] {
            let mut ours = vec![mode, "--arch", "resnext50_32x4d", "--batch", "32"];
            ours.extend(["--steps", "20", "--warmup", "3", "--device", "cuda"]);
            ours.extend(["--precision", precision]);
            ours.extend((layout == "channels_last").then_some("--channels-last"));
            let mut theirs = Command::new(&python);
            theirs.arg(&script).args([
                mode,
                "resnext50_32x4d",
                "32",
                precision,
                layout,
                "20",
                "3",
                "--device",
                "cuda",
            ]);
            let a = resnext_bench(bin, &ours)?.images_per_second;
            let b = throughput(&theirs.output()?, "bench_torch.py")?;
            println!(
                "| {mode} | {precision} | {layout} | {b:.1} | {a:.1} | {:.2} |",
                a / b
            );
        }
    }
    Ok(())
}
