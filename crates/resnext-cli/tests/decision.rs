//! The decision at a run's operating point where a model answers: `resnext serve`'s
//! `/v1/predict` (on an ephemeral 127.0.0.1 port) and `resnext predict --json` carry `decision`
//! when the checkpoint's sidecar has an operating point, and not otherwise.

mod common;

use common::http::post;
use common::server::{images, tiny_run, Served};
use std::path::Path;

/// `predict --json` on `photo`: its one line.
fn predicted(run: &str, photo: &Path) -> serde_json::Value {
    let line = common::ok(&["predict", "--run", run, "--json", photo.to_str().unwrap()]);
    serde_json::from_str(line.trim()).unwrap()
}

/// `/v1/predict` on `photo` from a server of `run`.
fn served(run: &str, photo: &Path) -> serde_json::Value {
    let s = Served::start(&["--run", run], &[]);
    let r = post(&s.addr, "/v1/predict", &std::fs::read(photo).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn serve_and_predict_decide_only_with_an_operating_point() {
    let dir = tempfile::tempdir().unwrap();
    let (run, data) = tiny_run(dir.path());
    let r = run.to_str().unwrap();
    let photos = images(&data);
    let photo = &photos[0];

    // no operating point in the sidecar: no decision anywhere
    let sidecar = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(run.join("best.json")).unwrap()).unwrap()
    };
    assert!(sidecar().get("operating_point").is_none());
    let before = served(r, photo);
    assert!(before.get("probs").is_some(), "{before}");
    assert!(before.get("decision").is_none(), "{before}");
    assert!(predicted(r, photo).get("decision").is_none());

    // eval chooses one on the validation part and stores it: both answer with the decision
    common::ok(&[
        "eval",
        "--run",
        r,
        "--split",
        "train",
        "--positive",
        "dots",
        "--operating-point",
        "youden",
        "--bootstrap",
        "50",
    ]);
    let op = sidecar()["operating_point"].clone();
    let threshold = op["threshold"].as_f64().unwrap();
    assert_eq!(op["positive"], "dots", "{op}");
    let s = Served::start(&["--run", r], &[]);
    for photo in photos.iter().step_by(5) {
        let reply = post(&s.addr, "/v1/predict", &std::fs::read(photo).unwrap());
        assert_eq!(reply.status, 200, "{}", reply.text());
        let a = reply.json();
        let d = &a["decision"];
        assert_eq!(d["threshold"].as_f64().unwrap(), threshold, "{a}");
        let dots = a["probs"][1].as_f64().unwrap(); // classes sorted: checker, dots, ...
        let positive = d["positive"].as_bool().unwrap();
        // the probability is float32 on the wire, the threshold float64
        if (dots - threshold).abs() > 1e-6 {
            assert_eq!(positive, dots >= threshold, "{a}");
        }
        assert_eq!(
            d["label"],
            if positive { "dots" } else { "not dots" },
            "{a}"
        );
        // predict --json says the same
        let p = predicted(r, photo);
        assert_eq!(p["decision"], *d, "{p} vs {a}");
    }
}
