//! `cargo xtask bench-serve [--clients N] [--requests M] [--curve 1,2,4,8] [--max-batch B]
//! [--precision bf16|fp32] [--root DIR] [--out PNG]`: `resnext serve` under load on loopback.
//!
//! ResNeXt-50 (random torchvision weights, 2 classes) is served from the release binary; N
//! client threads (keep-alive connections) send M photos in all, for each client count of the
//! curve. It prints throughput, p50/p95/p99 latency and the error count, and beside them the
//! network alone (`resnext bench eval`, same precision, batch min(N, B) and batch 1), so that
//! the ratios come from one run. The curve (throughput and latency against clients) is drawn
//! to `--out` (default `target/bench-serve/serve-curve.png`).

use crate::bench::resnext_bench;
use crate::flags::{self, BenchServe, Photos, Precision};
use crate::launch;
use crate::{bench_cold, cmd, setup};
use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Point {
    clients: usize,
    throughput: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    errors: usize,
}

pub fn run(f: &BenchServe) -> Result<()> {
    let (clients, requests, max_batch) = (f.clients, f.requests, f.max_batch);
    let precision = flags::name(f.precision);
    let fast: &[&str] = match f.precision {
        Precision::Bf16 => &["--precision", "bf16", "--channels-last", "--fold-bn"],
        Precision::Fp32 => &["--precision", "fp32", "--fold-bn"],
    };
    let mut curve = f.curve.clone();
    if !curve.contains(&clients) {
        curve.push(clients);
    }
    curve.sort_unstable();
    curve.dedup();

    setup::run(&Default::default())?;
    let python = setup::ensure_python_packages(&["torchvision==0.28.0", "safetensors"])?;
    let weights = bench_cold::random_resnext50(&python)?;
    let bin = launch::build_cli_release()?;
    let work = cmd::target_dir()?.join("bench-serve");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let photos = photos(&f.photos, &bin, &work)?;
    eprintln!("bench-serve: {} photos", photos.len());
    let bodies: Vec<Vec<u8>> = photos
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .collect::<Result<_>>()?;

    // the network alone, at the batch the clients can fill and at batch 1
    let full = clients.min(max_batch);
    let alone_full = bench_eval(&bin, fast, full)?;
    let alone_one = bench_eval(&bin, fast, 1)?;

    let mut server = Command::new(&bin);
    server
        .args([
            "serve",
            "--arch",
            "resnext50_32x4d",
            "--num-classes",
            "2",
            "--image-size",
            "224",
            "--addr",
            "127.0.0.1:0",
            "--queue",
            "1024",
            "--max-batch",
            &max_batch.to_string(),
            "--weights",
        ])
        .arg(&weights)
        .args(fast)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = server.spawn().context("cannot start resnext serve")?;
    let result = (|| -> Result<Vec<Point>> {
        let addr = server_addr(&mut child)?;
        let url = format!("http://{addr}/v1/predict");
        // warm-up: every batch size the curve will see
        load(
            &url,
            &bodies,
            *curve.last().unwrap_or(&1),
            curve.last().copied().unwrap_or(1) * 2,
        )?;
        curve
            .iter()
            .map(|&c| {
                let p = load(&url, &bodies, c, requests.max(c))?;
                eprintln!(
                    "  {c} clients: {:.1} img/s, p50 {:.0} ms, p99 {:.0} ms, {} errors",
                    p.throughput, p.p50, p.p99, p.errors
                );
                Ok(p)
            })
            .collect()
    })();
    stop(&mut child);
    let points = result?;

    println!("resnext serve, ResNeXt-50, {} (max batch {max_batch}), {requests} requests per point, {} photos", fast.join(" "), photos.len());
    println!("| clients | img/s | p50 ms | p95 ms | p99 ms | errors |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for p in &points {
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.0} | {} |",
            p.clients, p.throughput, p.p50, p.p95, p.p99, p.errors
        );
    }
    let at = points
        .iter()
        .find(|p| p.clients == clients)
        .context("no point at --clients")?;
    println!(
        "network alone (resnext bench eval, same flags): batch {full} {alone_full:.1} img/s, batch 1 {alone_one:.1} img/s"
    );
    println!(
        "{clients} clients: {:.1} img/s = {:.2}x the network alone at batch {full}",
        at.throughput,
        at.throughput / alone_full
    );
    let batch_ms = 1000.0 * full as f64 / alone_full;
    println!(
        "{clients} clients: p99 {:.0} ms against one batch of {full} ({batch_ms:.0} ms) + 5 ms wait",
        at.p99
    );
    if let Some(one) = points.iter().find(|p| p.clients == 1) {
        let forward_ms = 1000.0 / alone_one;
        println!(
            "1 client: p50 {:.0} ms against one forward pass at batch 1 ({forward_ms:.0} ms): +{:.0} ms",
            one.p50,
            one.p50 - forward_ms
        );
    }
    let out = f
        .out
        .clone()
        .unwrap_or_else(|| work.join("serve-curve.png"));
    draw(
        &points,
        &out,
        &format!("resnext serve, ResNeXt-50 {precision}, max batch {max_batch}"),
    )
    .map_err(|e| anyhow::anyhow!("drawing {}: {e}", out.display()))?;
    println!("curve: {}", out.display());
    Ok(())
}

/// The photos: `--root` or the MSLD photos of `../shared`, else 224-pixel synthetic images.
fn photos(given: &Photos, bin: &Path, work: &Path) -> Result<Vec<PathBuf>> {
    let root = match given.dir() {
        Ok(r) => r,
        Err(_) if given.root.is_none() => {
            let synth = work.join("photos");
            if !synth.exists() {
                let args = ["--per-class", "16", "--size", "224", "--out"].map(OsStr::new);
                cmd::resnext(
                    bin,
                    "data synth",
                    args.into_iter().chain([synth.as_os_str()]),
                )?;
            }
            synth
        }
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    collect(&root, &mut found)?;
    found.sort();
    if found.is_empty() {
        bail!("no photos under {}", root.display());
    }
    Ok(found)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// `resnext bench eval` img/s of ResNeXt-50 at `batch`.
fn bench_eval(bin: &Path, fast: &[&str], batch: usize) -> Result<f64> {
    let b = batch.to_string();
    let mut args = vec!["eval", "--arch", "resnext50_32x4d", "--steps", "6"];
    args.extend(["--batch", &b]);
    args.extend(fast);
    Ok(resnext_bench(bin, &args)?.images_per_second)
}

/// Reads the server's URL line.
fn server_addr(child: &mut Child) -> Result<String> {
    let out = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        if let Some(Ok(l)) = lines.next() {
            tx.send(l).ok();
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(300))
        .context("resnext serve printed no URL")?;
    line.split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(str::to_owned)
        .with_context(|| format!("no URL in {line:?}"))
}

fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SIGTERM: the server drains and exits 0
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .ok();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().ok();
        child.wait().ok();
    }
}

/// `clients` threads send `total` requests between them, each waiting for its answer.
fn load(url: &str, bodies: &[Vec<u8>], clients: usize, total: usize) -> Result<Point> {
    let per = total.div_ceil(clients);
    let start = Instant::now();
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(120)))
                        .build()
                        .into();
                    let mut lat = Vec::with_capacity(per);
                    let mut errors = 0;
                    for i in 0..per {
                        let body = &bodies[(c * per + i) % bodies.len()];
                        let t = Instant::now();
                        let ok = agent
                            .post(url)
                            .header("Content-Type", "application/octet-stream")
                            .send(&body[..])
                            .is_ok_and(|mut r| {
                                r.status() == 200 && r.body_mut().read_to_vec().is_ok()
                            });
                        if ok {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        } else {
                            errors += 1;
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let errors = results.iter().map(|r| r.1).sum();
    let mut lat: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1]
    };
    Ok(Point {
        clients,
        throughput: lat.len() as f64 / wall,
        p50: q(0.50),
        p95: q(0.95),
        p99: q(0.99),
        errors,
    })
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw(points: &[Point], out: &Path, title: &str) -> DrawResult {
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        include_bytes!("../../crates/resnext-infer/assets/DejaVuSans.ttf"),
    )
    .map_err(|_| "the embedded font could not be loaded")?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let size = (1000u32, 420u32);
    let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 20))?;
        let (left, right) = root.split_horizontally(500);
        let max_c = points.iter().map(|p| p.clients).max().unwrap_or(1) as f64;
        let max_t = points.iter().map(|p| p.throughput).fold(1.0, f64::max) * 1.15;
        let mut a = ChartBuilder::on(&left)
            .caption("throughput", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.5..max_c + 0.5, 0.0..max_t)?;
        a.configure_mesh()
            .x_desc("concurrent clients")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("images / s")
            .draw()?;
        a.draw_series(LineSeries::new(
            points.iter().map(|p| (p.clients as f64, p.throughput)),
            BLUE.stroke_width(2),
        ))?;
        a.draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.clients as f64, p.throughput), 4, BLUE.filled())),
        )?;
        let max_l = points.iter().map(|p| p.p99).fold(1.0, f64::max) * 1.15;
        let mut b = ChartBuilder::on(&right)
            .caption("latency", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.5..max_c + 0.5, 0.0..max_l)?;
        b.configure_mesh()
            .x_desc("concurrent clients")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("ms")
            .draw()?;
        for (name, color, f) in [
            ("p50", GREEN, (|p: &Point| p.p50) as fn(&Point) -> f64),
            ("p99", RED, |p: &Point| p.p99),
        ] {
            b.draw_series(LineSeries::new(
                points.iter().map(|p| (p.clients as f64, f(p))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
        b.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &rgb,
        size.0,
        size.1,
        image::ExtendedColorType::Rgb8,
    )?;
    resnext_io::write_atomic(out, &png)?;
    Ok(())
}
