//! The page of `resnext serve` in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, installed by `cargo xtask setup --browser`).
//! It opens the page, uploads a photo, sees the predicted class and the bars, turns on the
//! Grad-CAM overlay and saves screenshots (laptop and phone width) under `target/`.

mod common;

use common::server::{images, tiny_run, Served};
use fantoccini::{ClientBuilder, Locator};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[test]
fn the_page_classifies_an_uploaded_photo_and_shows_the_overlay() {
    let Some((driver, chromium)) = common::browser::chromium() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-browser");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    let (run, data) = tiny_run(&dir);
    // a photo of MSLD where ../shared is there, a demo image where it is not
    let photo = std::env::var_os("RESNEXT_SHARED")
        .map(|s| PathBuf::from(s).join("datasets/msld-original/Monkey Pox"))
        .filter(|d| d.is_dir())
        .and_then(|d| images_in(&d).into_iter().next())
        .unwrap_or_else(|| images(&data)[0].clone());
    let expected = common::ok(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--json",
        photo.to_str().unwrap(),
    ]);
    let expected: serde_json::Value = serde_json::from_str(expected.trim()).unwrap();
    let label = expected["label"].as_str().unwrap().to_owned();

    let server = Served::start(&["--run", run.to_str().unwrap()], &[]);
    let driver = common::browser::Driver::start(&driver);
    let url = driver.url();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
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
                         "--disable-gpu", "--window-size=1280,860"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session");
        let result = async {
            client.goto(&format!("http://{}/", server.addr)).await?;
            // the model line says the page reached the API
            wait_text(&client, "#model", |t| t.contains("4 classes")).await?;
            let notice = client.find(Locator::Id("notice")).await?.text().await?;
            assert!(notice.contains("not a diagnosis"), "{notice}");
            client
                .find(Locator::Id("file"))
                .await?
                .send_keys(photo.to_str().unwrap())
                .await?;
            let top = wait_text(&client, "#top", |t| !t.is_empty() && t != "—" && t != "…").await?;
            assert_eq!(top, label, "the page names predict's class");
            let bars = client.find_all(Locator::Css("#bars .bar")).await?;
            assert_eq!(bars.len(), 4);
            let best = client.find(Locator::Css("#bars .bar.best")).await?;
            assert_eq!(best.attr("data-class").await?.as_deref(), Some(label.as_str()));
            let widths = client
                .execute(
                    "return [...document.querySelectorAll('#bars .fill')].map(e => parseFloat(e.style.width));",
                    vec![],
                )
                .await?;
            let sum: f64 = widths
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_f64().unwrap())
                .sum();
            assert!((sum - 100.0).abs() < 0.5, "bars sum to {sum}%");
            // the overlay
            client.find(Locator::Id("overlay-toggle")).await?.click().await?;
            let start = Instant::now();
            loop {
                let shown = client
                    .execute(
                        "const o = document.getElementById('overlay'); return o.classList.contains('on') && !o.hidden && o.naturalWidth > 0;",
                        vec![],
                    )
                    .await?;
                if shown == serde_json::Value::Bool(true) {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(60), "no overlay");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            std::fs::write(shots.join("serve-page.png"), client.screenshot().await?).unwrap();
            client.set_window_size(390, 844).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let overflow = client
                .execute(
                    "return document.documentElement.scrollWidth > window.innerWidth + 1;",
                    vec![],
                )
                .await?;
            assert_eq!(overflow, serde_json::Value::Bool(false), "no sideways scrolling at phone width");
            std::fs::write(shots.join("serve-page-phone.png"), client.screenshot().await?)
                .unwrap();
            Ok::<_, fantoccini::error::CmdError>(())
        }
        .await;
        client.close().await.ok();
        result.expect("the page works");
    });
    eprintln!("screenshots: {}", shots.join("serve-page*.png").display());
}

fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    v.sort();
    v
}

async fn wait_text(
    client: &fantoccini::Client,
    css: &str,
    ok: impl Fn(&str) -> bool,
) -> Result<String, fantoccini::error::CmdError> {
    let start = Instant::now();
    loop {
        let t = client.find(Locator::Css(css)).await?.text().await?;
        if ok(&t) {
            return Ok(t);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{css} still says {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
