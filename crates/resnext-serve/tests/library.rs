//! `resnext-serve` used as a library, in process: bind on an ephemeral 127.0.0.1 port, load a
//! predictor on the model thread, answer a prediction, report readiness and metrics, and stop
//! when the shutdown future completes; admission that covers the decode of an abandoned request;
//! the OpenAPI document, through a real validator, and every route it lists answering as listed.

use resnext_data::TransformConfig;
use resnext_infer::{Predictor, RunOptions};
use resnext_model::weights::{state_dict, write_tensors_atomic};
use resnext_model::{ModelConfig, ResNeXt};
use resnext_serve::{ServeConfig, Server};
use std::collections::BTreeSet;
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

/// A server of the tiny model with `config` on an ephemeral 127.0.0.1 port, running while `f`
/// talks to it (on a blocking thread), then stopped.
fn serving<T: Send + 'static>(
    config: ServeConfig,
    f: impl FnOnce(std::net::SocketAddr) -> T + Send + 'static,
) -> T {
    let dir = tempfile::tempdir().unwrap();
    let load = tiny_loader(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let config = ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..config
        };
        let server = Server::bind(config, load).await.unwrap();
        let addr = server.local_addr().unwrap();
        server.ready().wait().await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            stopped.await.ok();
        }));
        let out = tokio::task::spawn_blocking(move || f(addr)).await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), serving)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        out
    })
}

/// One answer: status, headers (names lowercase) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn exchange(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    Reply {
        status: status.parse().unwrap(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
        body: out[split + 4..].to_vec(),
    }
}

/// The setup venv's Python (`.libtorch` is `<venv>/lib/python3.X/site-packages/torch`, as the
/// export round-trip tests find it) when it imports `module`; else a counted skip.
fn venv_python(module: &str, why: &str) -> Option<std::path::PathBuf> {
    let lib = Path::new(option_env!("RESNEXT_LIBTORCH_LIB").unwrap_or(""));
    let python = lib
        .join("../../../../..")
        .canonicalize()
        .map(|venv| venv.join("bin/python"))
        .unwrap_or_default();
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        resnext_testkit::skip(why);
    }
    ok.then_some(python)
}

#[test]
fn the_openapi_document_passes_a_validator() {
    let Some(python) = venv_python(
        "openapi_spec_validator",
        "needs the setup venv's Python with openapi-spec-validator (cargo xtask setup installs it)",
    ) else {
        return;
    };
    let doc = serving(ServeConfig::default(), |addr| {
        exchange(addr, "GET", "/openapi.json", &[], b"")
    });
    assert_eq!(doc.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &[u8]| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(&python)
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            said + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, said) = check("openapi.json", &doc.body);
    assert!(ok, "{said}");
    assert_eq!(doc.json()["openapi"], "3.1.0");
    // the validator does refuse: the same document with a response lacking its description
    let mut broken = doc.json();
    broken["paths"]["/healthz"]["get"]["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("description");
    let (ok, said) = check("broken.json", broken.to_string().as_bytes());
    assert!(!ok && said.contains("description"), "{said}");
}

/// The top-level properties and required keys of `schema`, through `$ref` and `allOf`.
fn schema_keys(
    doc: &serde_json::Value,
    schema: &serde_json::Value,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut schema = schema;
    while let Some(r) = schema["$ref"].as_str() {
        schema = doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("dangling {r}"));
    }
    let (mut props, mut required) = (BTreeSet::new(), BTreeSet::new());
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = schema_keys(doc, part);
        props.extend(p);
        required.extend(r);
    }
    props.extend(
        schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone()),
    );
    required.extend(
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|k| k.as_str().unwrap().to_owned()),
    );
    (props, required)
}

/// Whether `reply` is one of the answers `op` documents: its status, its media type, its
/// headers, and a JSON body's top-level keys (all among the schema's properties, every required
/// one there).
fn documented(
    doc: &serde_json::Value,
    op: &serde_json::Value,
    reply: &Reply,
) -> Result<(), String> {
    let status = reply.status.to_string();
    let answer = &op["responses"][&status];
    if answer.is_null() {
        return Err(format!("status {status} is not documented"));
    }
    let media = reply.header("content-type").unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim();
    let Some(content) = answer["content"].get(media) else {
        return Err(format!("{status} with {media} is not documented"));
    };
    for name in answer["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, _)| n)
    {
        if reply.header(&name.to_ascii_lowercase()).is_none() {
            return Err(format!("no header {name}"));
        }
    }
    if media != "application/json" {
        return Ok(());
    }
    let (props, required) = schema_keys(doc, &content["schema"]);
    let body = reply.json();
    let keys: BTreeSet<String> = body
        .as_object()
        .ok_or_else(|| format!("not an object: {body}"))?
        .keys()
        .cloned()
        .collect();
    // a schema without properties is a free-form object (the document itself)
    if !props.is_empty() && !keys.is_subset(&props) || !required.is_subset(&keys) {
        return Err(format!(
            "keys {keys:?}, documented {props:?}, required {required:?}"
        ));
    }
    Ok(())
}

#[test]
fn every_documented_route_answers_as_documented() {
    let mut png = Vec::new();
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 128]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let config = ServeConfig {
        api_key: Some("k3y-for-tests".into()),
        ..ServeConfig::default()
    };
    let checked = serving(config, move |addr| {
        let doc = exchange(addr, "GET", "/openapi.json", &[], b"").json();
        let error = serde_json::json!({ "$ref": "#/components/schemas/ErrorBody" });
        let mut checked = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                // a valid request: each documented query parameter with a value of its type,
                // the image as the body, the key where the operation names it
                let mut query = Vec::new();
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let value = match p["schema"]["type"].as_str() {
                        Some("integer") => p["schema"]["minimum"].to_string(),
                        Some("boolean") => "true".into(),
                        _ => continue,
                    };
                    query.push(format!("{}={value}", p["name"].as_str().unwrap()));
                }
                let target = format!("{path}?{}", query.join("&"));
                let keyed = op["security"].to_string().contains("api_key");
                let body: &[u8] = if op["requestBody"].is_null() {
                    b""
                } else {
                    &png
                };
                let mut headers = vec![("Content-Type", "image/png")];
                if keyed {
                    headers.push(("Authorization", "Bearer k3y-for-tests"));
                }
                let method = method.to_ascii_uppercase();
                let reply = exchange(addr, &method, &target, &headers, body);
                assert_eq!(reply.status, 200, "{method} {target}");
                documented(&doc, op, &reply).unwrap_or_else(|e| panic!("{method} {target}: {e}"));
                checked.push(format!("{method} {path}"));
                // the error shape, where the key is missing (one request more per keyed route)
                if keyed {
                    let reply = exchange(addr, &method, path, &headers[..1], body);
                    assert_eq!(reply.status, 401, "{method} {path} without the key");
                    documented(&doc, op, &reply).unwrap();
                    assert_eq!(
                        schema_keys(&doc, &error).0,
                        reply.json().as_object().unwrap().keys().cloned().collect()
                    );
                }
            }
        }
        // and the check can fail: a reply with a key the schema lacks, or a status not listed
        let wrong = Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"status": "ok", "extra": 1}"#.to_vec(),
        };
        let healthz = &doc["paths"]["/healthz"]["get"];
        assert!(documented(&doc, healthz, &wrong).is_err());
        assert!(documented(
            &doc,
            healthz,
            &Reply {
                status: 418,
                ..wrong
            }
        )
        .is_err());
        checked
    });
    assert_eq!(checked.len(), 8, "{checked:?}");
}
