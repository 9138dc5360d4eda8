//! `resnext serve` from the outside, on ephemeral 127.0.0.1 ports: every endpoint, answers equal
//! to `resnext predict`'s, concurrent clients, every bad input of the table in the docs (each
//! followed by a good request), a full queue, the API key, CORS, slow clients, and a SIGTERM or
//! SIGHUP that lets the request in flight finish.

mod common;

use common::http::{self, connect, head, multipart, post, read_reply, request, Reply};
use common::server::{images, tiny_run, Served};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// One tiny run for the whole file (trained once).
fn fixture() -> &'static (PathBuf, PathBuf) {
    static RUN: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-api");
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        tiny_run(&dir)
    })
}

fn run_dir() -> &'static str {
    fixture().0.to_str().unwrap()
}

/// `resnext predict --json` on `files`: probabilities by file.
fn predicted(files: &[PathBuf], extra: &[&str]) -> Vec<Vec<f64>> {
    let mut args = vec!["predict", "--run", run_dir(), "--json"];
    args.extend_from_slice(extra);
    let names: Vec<String> = files.iter().map(|p| p.to_string_lossy().into()).collect();
    args.extend(names.iter().map(String::as_str));
    common::ok(&args)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["probs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn probs(r: &Reply) -> Vec<f64> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn assert_close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-4, "{what}: {a:?} vs {b:?}");
    }
}

fn good_request(s: &Served, img: &[u8]) {
    let r = post(&s.addr, "/v1/predict", img);
    assert_eq!(
        r.status,
        200,
        "a good request after a bad one: {}",
        r.text()
    );
}

/// A PNG whose header claims `w`×`h` pixels (the data is a tiny real image's).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::new(4, 4)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    // IHDR: 8 signature bytes, length (4), "IHDR" (4), width, height, ..., CRC over type+data
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn jpeg_bytes() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
    });
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    bytes
}

#[test]
fn every_endpoint_answers_as_documented() {
    let (_, data) = fixture();
    let files = images(data);
    let s = Served::start(&["--run", run_dir()], &[]);
    let a = s.addr.as_str();

    let r = http::get(a, "/healthz");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    let r = http::get(a, "/readyz");
    assert_eq!(r.status, 200, "{}", r.text());

    let page = http::get(a, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = page.text();
    assert!(
        html.contains("not a diagnosis"),
        "the page says it is a research model"
    );
    for remote in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
        "url(http",
    ] {
        assert!(
            !html.contains(remote),
            "the page loads nothing remote: {remote}"
        );
    }

    let m = http::get(a, "/v1/model").json();
    assert_eq!(m["classes"].as_array().unwrap().len(), 4);
    assert_eq!(m["image_size"], serde_json::json!([32, 32]));
    assert!(m["mean"].is_array() && m["std"].is_array() && m["epoch"] == 1);
    assert!(m.get("data_root").is_none(), "no server path leaks: {m}");
    assert!(!m.to_string().contains(data.to_str().unwrap()));

    // raw body and multipart give `resnext predict`'s answer
    let expected = predicted(&files[..3], &[]);
    for (f, want) in files[..3].iter().zip(&expected) {
        let bytes = std::fs::read(f).unwrap();
        let raw = post(a, "/v1/predict", &bytes);
        assert_close(&probs(&raw), want, "raw body");
        let j = raw.json();
        let class = j["class"].as_u64().unwrap() as usize;
        assert_eq!(j["label"], m["classes"][class]);
        assert_eq!(j["logits"].as_array().unwrap().len(), 4);
        assert!(j.get("path").is_none() && j.get("top_k").is_none());
        let (ct, body) = multipart("file", "photo.png", &bytes);
        let form = request(a, "POST", "/v1/predict", &[("Content-Type", &ct)], &body);
        assert_close(&probs(&form), want, "multipart");
        let typed = request(
            a,
            "POST",
            "/v1/predict",
            &[("Content-Type", "image/png")],
            &bytes,
        );
        assert_close(&probs(&typed), want, "image/png");
    }
    // top_k and tta
    let bytes = std::fs::read(&files[0]).unwrap();
    let r = post(a, "/v1/predict?top_k=2", &bytes).json();
    let top = r["top_k"].as_array().unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!(top[0]["class"], r["class"]);
    assert!(top[0]["prob"].as_f64() >= top[1]["prob"].as_f64());
    let tta = post(a, "/v1/predict?tta=true", &bytes);
    assert_close(&probs(&tta), &predicted(&files[..1], &["--tta"])[0], "tta");

    // Grad-CAM: a PNG the size of the photo, of the class asked for (index or name)
    for q in [
        "/v1/explain",
        "/v1/explain?class=2",
        "/v1/explain?class=rings",
    ] {
        let r = post(a, q, &bytes);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("image/png"));
        let overlay = image::load_from_memory(&r.body).unwrap();
        let photo = image::open(&files[0]).unwrap();
        assert_eq!(
            (overlay.width(), overlay.height()),
            (photo.width(), photo.height())
        );
        if q != "/v1/explain" {
            assert_eq!(r.header("x-class"), Some("2"), "{q}");
        }
    }

    // a photo larger than 1024 pixels a side is explained at 1024 on its longest side, its
    // aspect kept: drawing and encoding cost the same for any photo
    let wide = image::RgbImage::from_fn(1500, 1000, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut wide_png = Vec::new();
    wide.write_to(
        &mut std::io::Cursor::new(&mut wide_png),
        image::ImageFormat::Png,
    )
    .unwrap();
    let r = post(a, "/v1/explain", &wide_png);
    assert_eq!(r.status, 200, "{}", r.text());
    let overlay = image::load_from_memory(&r.body).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (1024, 683));

    let metrics = http::get(a, "/metrics");
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let t = metrics.text();
    for needle in [
        "resnext_requests_total{route=\"/v1/predict\",status=\"200\"}",
        "resnext_request_duration_seconds_bucket{le=\"+Inf\"}",
        "resnext_batch_size_count",
        "resnext_queue_depth 0",
        "resnext_model_ready 1",
    ] {
        assert!(t.contains(needle), "{needle} missing from:\n{t}");
    }
}

#[test]
fn bad_input_gets_its_status_and_the_server_keeps_answering() {
    let (_, data) = fixture();
    let good = std::fs::read(&images(data)[0]).unwrap();
    let s = Served::start(&["--run", run_dir(), "--max-body", "64KiB"], &[]);
    let a = s.addr.as_str();
    let jpeg = jpeg_bytes();
    let (form_ct, form_body) = multipart("image", "photo.png", &good);
    let cases: Vec<(&str, Reply, &[u16])> = vec![
        ("empty body", post(a, "/v1/predict", b""), &[400]),
        (
            "not an image",
            post(a, "/v1/predict", b"{\"hello\": 1}"),
            &[415, 422],
        ),
        (
            "truncated JPEG",
            post(a, "/v1/predict", &jpeg[..jpeg.len() / 2]),
            &[422],
        ),
        (
            "decompression bomb",
            post(a, "/v1/predict", &png_claiming(60_000, 60_000)),
            &[422],
        ),
        (
            "wrong multipart field",
            request(
                a,
                "POST",
                "/v1/predict",
                &[("Content-Type", &form_ct)],
                &form_body,
            ),
            &[400],
        ),
        ("top_k=0", post(a, "/v1/predict?top_k=0", &good), &[400]),
        ("top_k=99", post(a, "/v1/predict?top_k=99", &good), &[400]),
        ("top_k=two", post(a, "/v1/predict?top_k=two", &good), &[400]),
        ("tta=maybe", post(a, "/v1/predict?tta=maybe", &good), &[400]),
        ("tta=", post(a, "/v1/predict?tta=", &good), &[400]),
        (
            "unknown parameter",
            post(a, "/v1/predict?topk=2", &good),
            &[400],
        ),
        (
            "repeated parameter",
            post(a, "/v1/predict?top_k=1&top_k=2", &good),
            &[400],
        ),
        (
            "unknown explain parameter",
            post(a, "/v1/explain?klass=1", &good),
            &[400],
        ),
        (
            "multipart/mixed",
            request(
                a,
                "POST",
                "/v1/predict",
                &[("Content-Type", "multipart/mixed; boundary=xyz")],
                b"--xyz\r\n\r\nhello\r\n--xyz--\r\n",
            ),
            &[415],
        ),
        (
            "16000x16000 pixels",
            post(a, "/v1/predict", &png_claiming(16_000, 16_000)),
            &[422],
        ),
        (
            "16000x16000 pixels to explain",
            post(a, "/v1/explain", &png_claiming(16_000, 16_000)),
            &[422],
        ),
        (
            "a 9000-byte target",
            post(a, &format!("/v1/predict?top_k={}", "1".repeat(9000)), &good),
            &[414],
        ),
        ("class=9", post(a, "/v1/explain?class=9", &good), &[400]),
        ("unknown route", http::get(a, "/etc/passwd"), &[404]),
        ("path traversal", http::get(a, "/../../etc/passwd"), &[404]),
        ("wrong method", http::get(a, "/v1/predict"), &[405]),
        (
            "body over --max-body",
            post(a, "/v1/predict", &vec![0u8; 65 * 1024]),
            &[413],
        ),
    ];
    // what some errors must name
    let names: &[(&str, &str)] = &[
        ("tta=", "tta ``"),
        ("unknown parameter", "unknown query parameter `topk`"),
        ("repeated parameter", "`top_k` is given more than once"),
        ("unknown explain parameter", "`klass`"),
        ("multipart/mixed", "`multipart/mixed`"),
        ("16000x16000 pixels", "16000x16000"),
        ("16000x16000 pixels to explain", "Mpx"),
        ("a 9000-byte target", "8192"),
    ];
    for (what, r, statuses) in cases {
        assert!(
            statuses.contains(&r.status),
            "{what}: {} {}",
            r.status,
            r.text()
        );
        let msg = r.error();
        eprintln!("{what}: {} {msg}", r.status);
        if let Some((_, needle)) = names.iter().find(|(w, _)| *w == what) {
            assert!(msg.contains(needle), "{what}: {msg}");
        }
        good_request(&s, &good);
    }

    // 413 from the announced length alone: the server answers before the body is sent
    let mut c = connect(a);
    c.write_all(&head(
        "POST",
        "/v1/predict",
        &[("Content-Type", "image/jpeg")],
        Some(1 << 30),
    ))
    .unwrap();
    c.write_all(&good).unwrap();
    let r = read_reply(&mut c);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("65536"), "{}", r.text());
    good_request(&s, &good);

    // a chunked body that runs over the limit
    let mut c = connect(a);
    c.write_all(&head(
        "POST",
        "/v1/predict",
        &[("Transfer-Encoding", "chunked")],
        None,
    ))
    .unwrap();
    let chunk = vec![7u8; 32 * 1024];
    for _ in 0..3 {
        c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .unwrap();
        if c.write_all(&chunk).is_err() || c.write_all(b"\r\n").is_err() {
            break;
        }
    }
    c.write_all(b"0\r\n\r\n").ok();
    let r = read_reply(&mut c);
    assert_eq!(r.status, 413, "{}", r.text());
    r.error();
    good_request(&s, &good);

    // requests hyper cannot parse, which it answers itself before any route sees them: JSON too
    let mut big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big_header.extend_from_slice(&[b'a'; 70_000]);
    big_header.extend_from_slice(b"\r\n\r\n");
    let raw: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a bad Content-Length",
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two Content-Lengths",
            b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
                .to_vec(),
            400,
        ),
        ("HTTP/0.9", b"GET /\r\n\r\n".to_vec(), 400),
        (
            "a malformed header",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_vec(),
            400,
        ),
        ("a 70 KB header", big_header, 431),
        (
            "HTTP/2 with prior knowledge",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            505,
        ),
    ];
    for (what, bytes, status) in raw {
        let mut c = connect(a);
        c.write_all(&bytes).unwrap();
        let r = read_reply(&mut c);
        assert_eq!(r.status, status, "{what}: {}", r.text());
        eprintln!("{what}: {} {}", r.status, r.error());
        good_request(&s, &good);
    }
    assert!(
        !s.stderr().contains("panicked"),
        "the server panicked:\n{}",
        s.stderr()
    );
}

#[test]
fn concurrent_clients_get_predicts_answers() {
    let (_, data) = fixture();
    let files = images(data);
    let expected = predicted(&files, &[]);
    let s = Served::start(&["--run", run_dir(), "--max-batch", "16"], &[]);
    let addr = s.addr.clone();
    let bodies: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|client| {
                let (addr, bodies, expected) = (&addr, &bodies, &expected);
                scope.spawn(move || {
                    for i in 0..25 {
                        let k = (client * 25 + i) % bodies.len();
                        let r = post(addr, "/v1/predict", &bodies[k]);
                        assert_close(&probs(&r), &expected[k], "concurrent");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let t = http::get(&addr, "/metrics").text();
    assert!(
        t.contains("resnext_requests_total{route=\"/v1/predict\",status=\"200\"} 200"),
        "{t}"
    );
    let batches: u64 = t
        .lines()
        .find_map(|l| l.strip_prefix("resnext_batch_size_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=200).contains(&batches), "{batches} forward passes");
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let (_, data) = fixture();
    let s = Served::start(
        &["--run", run_dir(), "--queue", "1", "--max-batch", "1"],
        &[],
    );
    // a larger photo: a few milliseconds of decoding holds the one place in the queue
    let big = image::RgbImage::from_fn(1200, 900, |x, y| {
        image::Rgb([(x ^ y) as u8, (x * 3) as u8, (y * 7) as u8])
    });
    let mut body = Vec::new();
    big.write_to(
        &mut std::io::Cursor::new(&mut body),
        image::ImageFormat::Png,
    )
    .unwrap();
    let mut busy = 0;
    for _round in 0..5 {
        let barrier = std::sync::Barrier::new(16);
        let replies: Vec<Reply> = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..16)
                .map(|_| {
                    let (addr, body, barrier) = (&s.addr, &body, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        post(addr, "/v1/predict", body)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &replies {
            match r.status {
                200 => {}
                503 => {
                    busy += 1;
                    assert_eq!(r.header("retry-after"), Some("1"));
                    assert!(r.error().contains("queue is full"), "{}", r.text());
                }
                other => panic!("{other}: {}", r.text()),
            }
        }
        if busy > 0 {
            break;
        }
    }
    assert!(
        busy > 0,
        "16 simultaneous requests never filled a queue of 1"
    );
    good_request(&s, &std::fs::read(&images(data)[0]).unwrap());
}

#[test]
fn an_api_key_guards_the_api_and_cors_is_off_unless_asked() {
    let (_, data) = fixture();
    let good = std::fs::read(&images(data)[0]).unwrap();
    let s = Served::start(
        &["--run", run_dir()],
        &[("RESNEXT_API_KEY", "correct-horse-battery")],
    );
    let a = s.addr.as_str();
    let r = post(a, "/v1/predict", &good);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    r.error();
    let wrong = request(
        a,
        "POST",
        "/v1/predict",
        &[("Authorization", "Bearer not-the-key")],
        &good,
    );
    assert_eq!(wrong.status, 401);
    let right = request(
        a,
        "POST",
        "/v1/predict",
        &[("Authorization", "Bearer correct-horse-battery")],
        &good,
    );
    assert_eq!(right.status, 200, "{}", right.text());
    assert_eq!(http::get(a, "/v1/model").status, 401);
    // the page and the probes stay open: the page asks for the key
    assert_eq!(http::get(a, "/").status, 200);
    assert_eq!(http::get(a, "/healthz").status, 200);
    // no CORS headers without --cors
    let r = request(
        a,
        "GET",
        "/healthz",
        &[("Origin", "https://elsewhere.example")],
        &[],
    );
    assert!(r.header("access-control-allow-origin").is_none());
    drop(s);

    // a comma-separated list of origins, and a repeated flag: every one of them is allowed
    let s = Served::start(
        &[
            "--run",
            run_dir(),
            "--cors",
            "https://app.example,http://localhost:3000",
            "--cors",
            "http://127.0.0.1:8000",
        ],
        &[],
    );
    for origin in [
        "https://app.example",
        "http://localhost:3000",
        "http://127.0.0.1:8000",
    ] {
        let pre = request(
            &s.addr,
            "OPTIONS",
            "/v1/predict",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
            ],
            &[],
        );
        assert_eq!(
            pre.header("access-control-allow-origin"),
            Some(origin),
            "{:?}",
            pre.headers
        );
    }
    let other = request(
        &s.addr,
        "GET",
        "/healthz",
        &[("Origin", "https://evil.example")],
        &[],
    );
    assert!(other.header("access-control-allow-origin").is_none());
}

#[test]
fn slow_clients_time_out() {
    let (_, data) = fixture();
    let good = std::fs::read(&images(data)[0]).unwrap();
    let s = Served::start(&["--run", run_dir(), "--timeout-s", "1"], &[]);
    // headers never finished: the server closes the connection (with --timeout-s 1 the headers
    // get 1 s); a server that kept it open would leave this read to time out after 30 s
    let mut c = connect(&s.addr);
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let closed = std::io::Read::read_to_end(&mut c, &mut buf);
    assert!(
        closed.is_ok(),
        "the stalled connection stayed open: {closed:?}"
    );
    // a body that stops half-way: 408
    let mut c = connect(&s.addr);
    c.write_all(&head("POST", "/v1/predict", &[], Some(good.len())))
        .unwrap();
    c.write_all(&good[..good.len() / 2]).unwrap();
    let r = read_reply(&mut c);
    assert_eq!(r.status, 408, "{}", r.text());
    r.error();
    good_request(&s, &good);
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    drains_on(libc::SIGTERM);
}

/// A closed terminal or a supervisor's reload-or-stop: SIGHUP drains like SIGTERM (it used to
/// kill the server at once, exit 129).
#[test]
fn sighup_drains_like_sigterm() {
    drains_on(libc::SIGHUP);
}

fn drains_on(signal: i32) {
    let (_, data) = fixture();
    let files = images(data);
    let good = std::fs::read(&files[0]).unwrap();
    let want = predicted(&files[..1], &[]);
    let mut s = Served::start(&["--run", run_dir()], &[]);
    // a request whose body is half sent: in flight
    let mut c = connect(&s.addr);
    c.write_all(&head("POST", "/v1/predict", &[], Some(good.len())))
        .unwrap();
    let half = good.len() / 2;
    c.write_all(&good[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.signal(signal);
    std::thread::sleep(Duration::from_millis(300));
    // a new request while it drains: 503
    let late = post(&s.addr, "/v1/predict", &good);
    assert_eq!(late.status, 503, "{}", late.text());
    assert!(late.error().contains("shutting down"));
    // the one in flight completes
    c.write_all(&good[half..]).unwrap();
    let r = read_reply(&mut c);
    assert_close(&probs(&r), &want[0], "in flight at the signal");
    let status = s.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
}

#[test]
fn bad_serve_arguments_are_one_line_errors() {
    let run = run_dir();
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "--run", run, "--max-batch", "0"], "max-batch"),
        (&["serve", "--run", run, "--queue", "0"], "queue"),
        (
            &["serve", "--run", run, "--queue", "1000000000000"],
            "1..=4096",
        ),
        (&["serve", "--run", run, "--queue", "4097"], "1..=4096"),
        (&["serve", "--run", run, "--timeout-s", "0"], "1..=3600"),
        (
            &[
                "serve",
                "--run",
                run,
                "--cors",
                "http://a.example,http://b.example/x",
            ],
            "http://b.example/x",
        ),
        (
            &["serve", "--run", run, "--cors", "https://a.example:443"],
            "default port",
        ),
        (
            &["serve", "--run", run, "--max-body", "12 parsecs"],
            "size unit",
        ),
        (
            &["serve", "--run", run, "--max-body", "18446744073709551615"],
            "1GiB",
        ),
        (
            &[
                "serve",
                "--run",
                run,
                "--max-wait-ms",
                "18446744073709551615",
            ],
            "--max-wait-ms",
        ),
        (&["serve", "--run", run, "--api-key", "short"], "API key"),
        (
            &["serve", "--run", run, "--cors", "example.org/x"],
            "CORS origin",
        ),
        (&["serve", "--run", "/nonexistent/run"], "/nonexistent/run"),
    ];
    for (args, needle) in cases {
        let o = common::run(args);
        let err = common::stderr(&o);
        assert!(!o.status.success(), "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // the port is taken
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = common::run(&["serve", "--run", run, "--addr", &addr]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("cannot listen"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn folded_batchnorm_serves_the_same_answers() {
    let (_, data) = fixture();
    let files = images(data);
    let want = predicted(&files[..4], &[]);
    let s = Served::start(&["--run", run_dir(), "--fold-bn"], &[]);
    for (f, w) in files[..4].iter().zip(&want) {
        let r = post(&s.addr, "/v1/predict", &std::fs::read(f).unwrap());
        assert_close(&probs(&r), w, "--fold-bn");
    }
}
