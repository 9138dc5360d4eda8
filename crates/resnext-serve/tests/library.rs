//! `resnext-serve` used as a library, in process: bind on an ephemeral 127.0.0.1 port, load a
//! predictor on the model thread, answer a prediction, report readiness and metrics, and stop
//! when the shutdown future completes; admission that covers the decode of an abandoned request.

use resnext_data::TransformConfig;
use resnext_infer::{Predictor, RunOptions};
use resnext_model::weights::{state_dict, write_tensors_atomic};
use resnext_model::{ModelConfig, ResNeXt};
use resnext_serve::{ServeConfig, Server};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_library_user_serves_a_predictor() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("tiny.safetensors");
    let model = ModelConfig::custom([1, 1, 1, 1], 2, 4, 3);
    {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _net = ResNeXt::new(&vs.root(), &model).unwrap();
        write_tensors_atomic(&state_dict(&vs), &weights).unwrap();
    }
    let mut png = Vec::new();
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 128]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let config = ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..ServeConfig::default()
        };
        let w = weights.clone();
        let server = Server::bind(config, move || {
            Predictor::from_weights(&w, &model, TransformConfig::resize_exact(32), RunOptions::cpu())
        })
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let meta = server.ready().wait().await.unwrap();
        assert_eq!(meta.classes, ["class 0", "class 1", "class 2"]);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            stop_rx.await.ok();
        }));
        let answer = tokio::task::spawn_blocking(move || {
            let mut req = format!(
                "POST /v1/predict?top_k=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
                png.len()
            )
            .into_bytes();
            req.extend_from_slice(&png);
            let predict = http(addr, &req);
            let ready = http(addr, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let metrics = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            (predict, ready, metrics)
        })
        .await
        .unwrap();
        assert!(answer.0.starts_with("HTTP/1.1 200"), "{}", answer.0);
        let body: serde_json::Value =
            serde_json::from_str(answer.0.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        let probs: Vec<f64> = body["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect();
        assert_eq!(probs.len(), 3);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert_eq!(body["top_k"].as_array().unwrap().len(), 2);
        assert!(answer.1.starts_with("HTTP/1.1 200"), "{}", answer.1);
        assert!(answer.2.contains("resnext_requests_total{route=\"/v1/predict\",status=\"200\"} 1"), "{}", answer.2);
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), serving)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    });
}

/// Random weights of a tiny 3-class network in `dir`, and a loader for them.
fn tiny_loader(dir: &Path) -> impl FnOnce() -> Result<Predictor, resnext_infer::InferError> + Send {
    let weights = dir.join("tiny.safetensors");
    let model = ModelConfig::custom([1, 1, 1, 1], 2, 4, 3);
    {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _net = ResNeXt::new(&vs.root(), &model).unwrap();
        write_tensors_atomic(&state_dict(&vs), &weights).unwrap();
    }
    move || {
        Predictor::from_weights(
            &weights,
            &model,
            TransformConfig::resize_exact(32),
            RunOptions::cpu(),
        )
    }
}

fn predict_request(png: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        png.len()
    )
    .into_bytes();
    req.extend_from_slice(png);
    req
}

/// Polls `/metrics` until `done` holds (at most a minute: a bound, not a timing).
fn metrics_until(addr: std::net::SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let m = http(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if done(&m) {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never {what}:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_abandoned_request_keeps_its_place_until_its_decode_ends() {
    let dir = tempfile::tempdir().unwrap();
    let load = tiny_loader(dir.path());
    let mut png = Vec::new();
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 128]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // one blocking thread, held by a gate: a decode (which runs there) is as slow as the test
    // wants, without depending on how fast this machine decodes
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let (addr, stop, serving) = rt.block_on(async move {
        let config = ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            queue: 1,
            ..ServeConfig::default()
        };
        let server = Server::bind(config, load).await.unwrap();
        let addr = server.local_addr().unwrap();
        server.ready().wait().await.unwrap();
        tokio::task::spawn_blocking(move || gate.recv().ok());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            stopped.await.ok();
        }));
        (addr, stop, serving)
    });

    // A: admitted, its decode waits for the blocking thread; then its client gives up
    let mut a = std::net::TcpStream::connect(addr).unwrap();
    a.write_all(&predict_request(&png)).unwrap();
    metrics_until(addr, "admitted A", |m| {
        m.contains("resnext_queue_depth 1\n")
    });
    drop(a);
    // the abandoned request is counted (499), and its place stays taken: its decode is still to run
    let m = metrics_until(addr, "counted the abandoned request", |m| {
        m.contains("resnext_requests_total{route=\"/v1/predict\",status=\"499\"} 1\n")
    });
    assert!(m.contains("resnext_queue_depth 1\n"), "{m}");
    // B: the queue of 1 is full until that decode ends
    let b = http(addr, &predict_request(&png));
    assert!(b.starts_with("HTTP/1.1 503"), "{b}");
    assert!(
        b.contains("application/json") && b.contains("queue is full"),
        "{b}"
    );
    assert!(b.to_ascii_lowercase().contains("retry-after: 1"), "{b}");

    // the decode runs, ends, and gives the place back
    open.send(()).unwrap();
    metrics_until(addr, "freed A's place", |m| {
        m.contains("resnext_queue_depth 0\n")
    });
    let c = http(addr, &predict_request(&png));
    assert!(c.starts_with("HTTP/1.1 200"), "{c}");

    stop.send(()).unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), serving)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    });
}
