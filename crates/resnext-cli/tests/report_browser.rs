//! `report.html` of a run and of a cross-validation directory: written by `eval` and `cv`,
//! regenerated alike by `resnext report DIR`, one file with nothing to fetch, every string from
//! disk escaped; then opened in headless Chromium over WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by `cargo xtask setup --browser`): no console error, no network
//! request, every figure there, every number tagged in the page equal to the one in
//! `eval.json`/`cv.json` at its JSON pointer, screenshots at laptop and phone width (no sideways
//! scrolling on the phone). Without Chromium the browser half is skipped and said.

mod common;

use common::{ok, synth, tiny_config};
use fantoccini::{Client, ClientBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Synthetic images grouped ten by ten within a class (`checker_000`, `checker_001`, ...).
const GROUPS: &str = r#"--set=data.group_regex="^([a-z]+_\\d{3})""#;

/// A class whose name would be markup if the page did not escape it.
const NASTY: &str = "rings<b>&amp;";

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// What holds for the page's file, with or without a browser.
fn check_file(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    assert!(
        html.contains("default-src 'none'; img-src data:; style-src 'unsafe-inline'"),
        "no CSP"
    );
    assert!(!html.contains("<script"), "a script");
    // the only URL is the SVG namespace, which is a name, not a request
    let urls = html.matches("http://").count() + html.matches("https://").count();
    assert_eq!(
        urls,
        html.matches("http://www.w3.org/2000/svg").count(),
        "a URL besides the SVG namespace"
    );
    assert!(!html.contains(" src=\"http") && !html.contains("url("));
    assert!(html.contains("not a diagnostic device"));
    assert!(!html.contains("<b>&amp;"), "a class name not escaped");
    assert!(
        html.contains("rings&lt;b&gt;&amp;amp;"),
        "the class name escaped"
    );
}

/// The browser console's entries since the last call (chromedriver's log endpoint, over a plain
/// HTTP/1.1 request: the reply's `Content-Length` bytes, the connection kept open by the driver).
async fn console(client: &Client, port: u16) -> Vec<serde_json::Value> {
    use std::io::{Read, Write};
    let id = client.session_id().await.unwrap().expect("a session id");
    let body = br#"{"type":"browser"}"#;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /session/{id}/se/log HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let v: serde_json::Value = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the driver closed: {}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length");
            if raw.len() >= end + 4 + len {
                break serde_json::from_slice(&raw[end + 4..end + 4 + len]).unwrap();
            }
        }
    };
    v["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no browser log: {v}"))
        .clone()
}

async fn js(client: &Client, script: &str) -> serde_json::Value {
    client.execute(script, vec![]).await.unwrap()
}

/// Opens `page` and checks it: no console error (a page that makes one first shows that they are
/// seen), no request, the figures `figures` (ids) drawn, every tagged number equal to `json`'s at
/// its pointer (at least `min_numbers` of them, `must` among them, `…/` a prefix), screenshots `shots`-laptop.png
/// and `shots`-phone.png.
fn check_in_browser(
    page: &Path,
    json: &serde_json::Value,
    figures: &[&str],
    must: &[&str],
    min_numbers: usize,
    shots: &Path,
) {
    let Some((driver, chromium)) = common::browser::chromium() else {
        return;
    };
    let driver = common::browser::Driver::start(&driver);
    let port = driver.port;
    // a page that breaks the same policy: its console error must be seen
    let control = page.with_file_name("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\"></head><body><img src=\"http://127.0.0.1:9/x.png\"></body></html>",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,800"],
            }),
        );
        caps.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({"browser": "ALL"}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        client.set_window_size(1280, 800).await.unwrap();
        let url = |p: &Path| format!("file://{}", p.canonicalize().unwrap().display());
        client.goto(&url(&control)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = console(&client, port).await;
        assert!(
            seen.iter().any(|e| e["level"] == "SEVERE"),
            "the control page's blocked request left no console error: {seen:?}"
        );

        client.goto(&url(page)).await.unwrap();
        let start = Instant::now();
        while js(&client, "return document.readyState;").await != "complete" {
            assert!(start.elapsed() < Duration::from_secs(60), "the page did not load");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let log = console(&client, port).await;
        let bad: Vec<_> = log
            .iter()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .collect();
        assert!(bad.is_empty(), "console: {bad:?}");
        let requests = js(
            &client,
            "return performance.getEntriesByType('resource').map(e => e.name);",
        )
        .await;
        assert_eq!(requests, serde_json::json!([]), "the page fetched something");
        // every figure there, and drawn
        for id in figures {
            let size = js(
                &client,
                &format!(
                    "const f = document.getElementById('{id}'); if (!f || f.tagName !== 'FIGURE') return null; const g = f.querySelector('svg, img'); if (!g) return null; const r = g.getBoundingClientRect(); return [r.width, r.height, g.tagName === 'IMG' ? g.naturalWidth : 1];"
                ),
            )
            .await;
            let v: Vec<f64> = size
                .as_array()
                .unwrap_or_else(|| panic!("figure #{id} missing"))
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert!(v.iter().all(|&x| x > 0.0), "figure #{id} not drawn: {v:?}");
        }
        let count = js(&client, "return document.querySelectorAll('figure[id^=fig-]').length;").await;
        assert!(count.as_u64().unwrap() >= figures.len() as u64);
        // the escaped class name is text, not a <b> element
        assert_eq!(js(&client, "return document.querySelectorAll('b').length;").await, 0);
        let header = js(&client, "return document.querySelector('#data-table thead').textContent;").await;
        assert!(header.as_str().unwrap().contains(NASTY), "{header}");
        // the numbers are the file's
        let tagged = js(
            &client,
            "return [...document.querySelectorAll('[data-json]')].map(e => [e.dataset.json, e.dataset.value, e.textContent]);",
        )
        .await;
        let tagged = tagged.as_array().unwrap();
        assert!(tagged.len() >= min_numbers, "{} numbers tagged", tagged.len());
        for t in tagged {
            let (ptr, value, text) = (
                t[0].as_str().unwrap(),
                t[1].as_str().unwrap(),
                t[2].as_str().unwrap(),
            );
            let want = json
                .pointer(ptr)
                .unwrap_or_else(|| panic!("{ptr} is not in the file"));
            let want = want.as_f64().unwrap_or_else(|| panic!("{ptr} is {want}"));
            let got: f64 = value.parse().unwrap();
            assert_eq!(got, want, "{ptr}");
            let shown = if want.fract() == 0.0 && !text.contains('.') {
                format!("{want}")
            } else {
                format!("{want:.4}")
            };
            assert_eq!(text, shown, "{ptr} is shown as {text}");
        }
        for m in must {
            // `…/` a prefix, else the pointer itself
            let there = |t: &serde_json::Value| {
                let p = t[0].as_str().unwrap_or("");
                if m.ends_with('/') {
                    p.starts_with(m)
                } else {
                    p == *m
                }
            };
            assert!(tagged.iter().any(there), "{m} is not in the page");
        }
        std::fs::write(shots.with_extension("laptop.png"), client.screenshot().await.unwrap())
            .unwrap();
        client.set_window_size(390, 844).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let widths = js(
            &client,
            "return [document.documentElement.scrollWidth, window.innerWidth];",
        )
        .await;
        let (scroll, inner) = (widths[0].as_f64().unwrap(), widths[1].as_f64().unwrap());
        assert!(inner <= 400.0, "the window is {inner} px wide");
        assert!(scroll <= inner, "sideways scrolling at phone width: {scroll} > {inner}");
        std::fs::write(shots.with_extension("phone.png"), client.screenshot().await.unwrap())
            .unwrap();
        client.close().await.ok();
    });
    for k in ["laptop", "phone"] {
        let p = shots.with_extension(format!("{k}.png"));
        let png = std::fs::read(&p).unwrap();
        assert!(
            png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a screenshot",
            p.display()
        );
        eprintln!("screenshot: {}", p.display());
    }
}

/// Synthetic data with one class renamed to markup.
fn data(dir: &Path, per_class: usize) -> PathBuf {
    let data = synth(dir, per_class);
    std::fs::rename(data.join("rings"), data.join(NASTY)).unwrap();
    data
}

/// A metadata CSV giving every image a `site`.
fn metadata(dir: &Path, data: &Path) -> PathBuf {
    let mut csv = String::from("path,site\n");
    let mut k = 0;
    let mut classes: Vec<_> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    classes.sort();
    for c in classes {
        let mut files: Vec<_> = std::fs::read_dir(&c)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let rel = format!(
                "{}/{}",
                c.file_name().unwrap().to_str().unwrap(),
                f.file_name().unwrap().to_str().unwrap()
            );
            csv.push_str(&format!("{rel},{}\n", ["arm", "leg"][k % 2]));
            k += 1;
        }
    }
    let p = dir.join("meta.csv");
    std::fs::write(&p, csv).unwrap();
    p
}

#[test]
fn a_run_report_is_one_offline_page_whose_numbers_are_eval_json() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-run");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let data = data(&dir, 30);
    let cfg = tiny_config(&dir, &data, 2, "");
    let run = dir.join("run");
    let (c, r) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    ok(&[
        "train",
        "--config",
        c,
        "--out",
        r,
        GROUPS,
        "--set",
        "data.test=0.25",
    ]);
    let meta = metadata(&dir, &data);
    let printed = ok(&[
        "eval",
        "--run",
        r,
        "--split",
        "test",
        "--bootstrap",
        "200",
        "--positive",
        "dots",
        "--operating-point",
        "youden",
        "--pauc-min-tpr",
        "0.8",
        "--metadata",
        meta.to_str().unwrap(),
        "--by",
        "site",
    ]);
    let page = run.join("report.html");
    assert!(
        printed.contains(&format!("-> {}", page.display())),
        "{printed}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    check_file(&html);
    let eval = read_json(&run.join("eval.json"));
    assert!(eval["subgroups"].as_array().is_some_and(|s| !s.is_empty()));
    // the gallery: at most 8 errors, each an inline PNG
    let shown = html.matches("data:image/png;base64,").count();
    let errors = eval["samples"].as_u64().unwrap()
        - (0..4)
            .map(|i| eval["confusion_matrix"][i][i].as_u64().unwrap())
            .sum::<u64>();
    assert_eq!(
        shown as u64,
        errors.min(8),
        "gallery of {shown} for {errors} errors"
    );
    // `resnext report` regenerates the same page from the files
    std::fs::remove_file(&page).unwrap();
    let again = ok(&["report", r]);
    assert!(again.contains("report.html"), "{again}");
    assert_eq!(std::fs::read_to_string(&page).unwrap(), html);
    let other = dir.join("elsewhere.html");
    ok(&[
        "report",
        r,
        "--out",
        other.to_str().unwrap(),
        "--gallery",
        "0",
    ]);
    assert!(!std::fs::read_to_string(&other)
        .unwrap()
        .contains("data:image/png"));
    // not over a run's own file, and not a folder that is neither
    let o = common::run(&[
        "report",
        r,
        "--out",
        run.join("eval.json").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert_eq!(
        common::stderr(&o).trim().lines().count(),
        1,
        "{}",
        common::stderr(&o)
    );
    let o = common::run(&["report", dir.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", common::stdout(&o));
    check_in_browser(
        &page,
        &eval,
        &[
            "fig-curves",
            "fig-confusion",
            "fig-roc",
            "fig-pr",
            "fig-reliability",
            "fig-gallery",
        ],
        &[
            "/accuracy",
            "/intervals/metrics/accuracy/estimate",
            "/intervals/metrics/roc_auc/low",
            "/intervals/per_class/0/sensitivity/high",
            "/intervals/calibration/0/slope/estimate",
            "/operating_point/threshold",
            "/operating_point/sensitivity/estimate",
            "/partial_auc/pauc/estimate",
            "/subgroups/0/n",
            "/reliability/",
        ],
        100,
        &dir.join("report"),
    );
}

#[test]
fn a_binary_run_report_bands_the_positive_class() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-binary");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let data = data(&dir, 30);
    for c in ["dots", "stripes"] {
        std::fs::remove_dir_all(data.join(c)).unwrap();
    }
    let cfg = tiny_config(&dir, &data, 1, "");
    let run = dir.join("run");
    let (c, r) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    ok(&[
        "train",
        "--config",
        c,
        "--out",
        r,
        GROUPS,
        "--set",
        "data.test=0.25",
    ]);
    ok(&["eval", "--run", r, "--split", "test", "--bootstrap", "200"]);
    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    check_file(&html);
    // one curve a figure: the positive class (1), its AUC in the legend
    let eval = read_json(&run.join("eval.json"));
    assert_eq!(
        eval["intervals"]["mode"]["kind"], "binary",
        "{}",
        eval["intervals"]
    );
    check_in_browser(
        &page,
        &eval,
        &[
            "fig-curves",
            "fig-confusion",
            "fig-roc",
            "fig-pr",
            "fig-reliability",
            "fig-gallery",
        ],
        &[
            "/roc_auc",
            "/intervals/metrics/roc_auc/estimate",
            "/intervals/metrics/pr_auc/high",
            "/intervals/calibration/0/intercept/low",
        ],
        60,
        &dir.join("report"),
    );
}

#[test]
fn a_cv_report_is_one_offline_page_whose_numbers_are_cv_json() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-cv");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let data = data(&dir, 12);
    let cfg = tiny_config(&dir, &data, 1, "");
    let out = dir.join("cv");
    let o = out.to_str().unwrap();
    let meta = metadata(&dir, &data);
    let args = [
        "cv",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        o,
        GROUPS,
        "--folds",
        "3",
        "--bootstrap",
        "200",
        "--positive",
        "dots",
        "--operating-point",
        "youden",
        "--pauc-min-tpr",
        "0.8",
        "--metadata",
        meta.to_str().unwrap(),
        "--by",
        "site",
    ];
    let printed = ok(&args);
    let page = out.join("report.html");
    assert!(
        printed.contains(&format!("-> {}", page.display())),
        "{printed}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    check_file(&html);
    std::fs::remove_file(&page).unwrap();
    ok(&["report", o]);
    assert_eq!(std::fs::read_to_string(&page).unwrap(), html);
    // the page is no reason to refuse running the same cv again
    let again = ok(&args);
    assert!(again.contains("report.html"), "{again}");
    let cv = read_json(&out.join("cv.json"));
    check_in_browser(
        &page,
        &cv,
        &[
            "fig-folds",
            "fig-curves-0",
            "fig-curves-1",
            "fig-curves-2",
            "fig-confusion",
            "fig-roc",
            "fig-pr",
            "fig-reliability",
            "fig-gallery",
        ],
        &[
            "/pooled/intervals/metrics/accuracy/estimate",
            "/pooled/accuracy",
            "/folds/2/accuracy",
            "/mean/macro_f1",
            "/std/accuracy",
            "/operating_point/threshold",
            "/partial_auc/pauc/estimate",
            "/subgroups/1/intervals/metrics/accuracy/low",
            "/pooled/reliability/",
        ],
        60,
        &dir.join("report"),
    );
}
