//! `resnext cv --metadata F.csv --by COLUMN` and `--positive C --pauc-min-tpr T`: every metric
//! of the pooled out-of-fold predictions per subgroup, with its size, and the partial AUC, in
//! cv.json (new fields) and printed; and eval.json and cv.json written before these fields (and
//! before the intervals and operating points) still read.

mod common;

use common::{synth, tiny_config, tiny_cv};
use std::collections::HashMap;
use std::path::Path;

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn cv_reports_subgroups_and_the_partial_auc_over_out_of_fold_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let data = synth(dir.path(), 12);
    let cfg = tiny_config(dir.path(), &data, 1, "");
    // tone A for images 0..8 of a class, B for the rest; "rings" not listed
    let mut csv = String::from("path,tone\n");
    let mut tone_of = HashMap::new();
    for class in ["checker", "dots", "stripes"] {
        for i in 0..12 {
            let path = format!("{class}/{class}_{i:04}.png");
            let tone = if i < 8 { "A" } else { "B" };
            csv += &format!("{path},{tone}\n");
            tone_of.insert(path, tone.to_string());
        }
    }
    let meta = dir.path().join("meta.csv");
    std::fs::write(&meta, csv).unwrap();
    let out = dir.path().join("cv");
    let printed = tiny_cv(
        &cfg,
        &out,
        &[
            "--bootstrap",
            "200",
            "--metadata",
            meta.to_str().unwrap(),
            "--by",
            "tone",
            "--positive",
            "dots",
            "--pauc-min-tpr",
            "0.8",
        ],
    );
    assert!(
        printed.contains("pooled out-of-fold, tone = A (24 images"),
        "{printed}"
    );
    assert!(
        printed.contains("pooled out-of-fold, tone = B (12 images, under 20: too few to read)"),
        "{printed}"
    );
    assert!(
        printed.contains("pooled out-of-fold, partial AUC of `dots` above sensitivity 0.8"),
        "{printed}"
    );
    let cv = read_json(&out.join("cv.json"));
    let groups = cv["subgroups"].as_array().unwrap();
    let n: Vec<(&str, u64, bool)> = groups
        .iter()
        .map(|g| {
            (
                g["value"].as_str().unwrap(),
                g["n"].as_u64().unwrap(),
                g["small"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        n,
        [
            ("(not listed)", 12, true),
            ("A", 24, false),
            ("B", 12, true)
        ],
        "{cv}"
    );
    // each subgroup's accuracy is that of its rows of oof.csv (true and predicted class)
    let oof = std::fs::read_to_string(out.join("oof.csv")).unwrap();
    let mut right: HashMap<String, (usize, usize)> = HashMap::new();
    for row in common::csv_rows(&oof) {
        let tone = tone_of
            .get(&row[0])
            .cloned()
            .unwrap_or_else(|| "(not listed)".into());
        let e = right.entry(tone).or_default();
        e.0 += usize::from(row[3] == row[4]);
        e.1 += 1;
    }
    for g in groups {
        let (r, total) = right[g["value"].as_str().unwrap()];
        let acc = &g["intervals"]["metrics"]["accuracy"];
        assert!(
            (acc["estimate"].as_f64().unwrap() - r as f64 / total as f64).abs() < 1e-9,
            "{g}"
        );
        assert!(acc["low"].as_f64().unwrap() <= acc["high"].as_f64().unwrap());
    }
    let p = &cv["partial_auc"];
    assert_eq!(p["positive"], "dots", "{p}");
    assert_eq!(p["min_tpr"], 0.8, "{p}");
    let pauc = &p["pauc"];
    let est = pauc["estimate"].as_f64().unwrap();
    assert!((0.0..=0.2 + 1e-9).contains(&est), "{p}");
    assert!(pauc["low"].as_f64().unwrap() <= est && est <= pauc["high"].as_f64().unwrap());

    // cv.json as written before issue 27 (no intervals, operating point, partial AUC or
    // subgroups) reads into today's summary
    let mut old = cv.clone();
    for key in ["operating_point", "partial_auc", "subgroups"] {
        old.as_object_mut().unwrap().remove(key);
    }
    old["pooled"].as_object_mut().unwrap().remove("intervals");
    let back: resnext_train::cv::CvSummary = serde_json::from_value(old).unwrap();
    assert!(back.subgroups.is_empty() && back.partial_auc.is_none());
    assert!(back.pooled.intervals.is_none() && back.operating_point.is_none());
    assert_eq!(back.pooled.n, 48);
    // today's reads too, whole
    let now: resnext_train::cv::CvSummary = serde_json::from_value(cv.clone()).unwrap();
    assert_eq!(now.subgroups.len(), 3);

    // a fold's eval.json likewise, through Run::eval_report
    let fold = out.join("fold-0");
    let mut eval = read_json(&fold.join("eval.json"));
    assert!(eval.get("intervals").is_some(), "{eval}");
    for key in ["intervals", "operating_point", "partial_auc", "subgroups"] {
        eval.as_object_mut().unwrap().remove(key);
    }
    std::fs::write(fold.join("eval.json"), eval.to_string()).unwrap();
    let report = resnext_train::Run::at(&fold)
        .eval_report()
        .unwrap()
        .expect("eval.json is there");
    assert!(report.intervals.is_none() && report.subgroups.is_empty());
    assert_eq!(report.split, "test");

    // a bad --pauc-min-tpr is refused before any fold trains
    let o = common::run(&[
        "cv",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().join("cv2").to_str().unwrap(),
        "--positive",
        "dots",
        "--pauc-min-tpr",
        "1.5",
    ]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("1.5 must be in [0, 1)"),
        "{}",
        common::stderr(&o)
    );
    assert!(!dir.path().join("cv2/fold-0").exists());
}
