//! Scanning and splitting rules.

mod common;

use resnext_data::scan::scan;
use resnext_data::split::{Split, SplitConfig};
use resnext_data::DataError;
use std::collections::HashSet;

#[test]
fn classes_sorted_and_labels_follow_sorted_names() {
    let dir = tempfile::tempdir().unwrap();
    // created in reverse order so read_dir order is unlikely to be sorted
    common::make_folder(
        dir.path(),
        &["zebra", "Monkey Pox", "Others", "éclair"],
        3,
        (8, 8),
    );
    let f = scan(dir.path()).unwrap();
    assert_eq!(f.classes, vec!["Monkey Pox", "Others", "zebra", "éclair"]);
    for s in &f.samples {
        let class = s
            .path
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        assert_eq!(f.classes[s.label], class);
    }
    let paths: Vec<_> = f.samples.iter().map(|s| s.path.clone()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
}

#[test]
fn extensions_any_case_hidden_skipped_others_reported_nested_found() {
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["a", "b"], 1, (8, 8));
    let img = common::gradient(8, 8, [1, 2, 3]);
    img.save_with_format(dir.path().join("a/UPPER.JPG"), image::ImageFormat::Jpeg)
        .unwrap();
    img.save_with_format(dir.path().join("a/x.Png"), image::ImageFormat::Png)
        .unwrap();
    std::fs::create_dir_all(dir.path().join("a/nested deeper")).unwrap();
    img.save(dir.path().join("a/nested deeper/n.png")).unwrap();
    img.save(dir.path().join("a/.hidden.png")).unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::write(dir.path().join("a/notes.txt"), "hi").unwrap();
    let f = scan(dir.path()).unwrap();
    assert_eq!(f.classes, vec!["a", "b"]);
    let names: Vec<String> = f
        .samples
        .iter()
        .map(|s| s.path.to_string_lossy().to_string())
        .collect();
    assert!(names.contains(&"a/UPPER.JPG".to_string()), "{names:?}");
    assert!(names.contains(&"a/x.Png".to_string()));
    assert!(names.contains(&"a/nested deeper/n.png".to_string()));
    assert!(!names.iter().any(|n| n.contains(".hidden")));
    assert_eq!(f.class_counts(), vec![4, 1]);
    assert_eq!(f.ignored, vec![std::path::PathBuf::from("a/notes.txt")]);
}

#[test]
fn symlinks_followed_without_looping() {
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["a", "b"], 2, (8, 8));
    std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("a/loop")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    common::make_folder(outside.path(), &["c"], 2, (8, 8));
    std::os::unix::fs::symlink(outside.path().join("c"), dir.path().join("c_link")).unwrap();
    let f = scan(dir.path()).unwrap();
    assert_eq!(f.classes, vec!["a", "b", "c_link"]);
    assert_eq!(f.class_counts(), vec![2, 2, 2]);
}

#[test]
fn empty_root_single_class_and_empty_class_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(scan(dir.path()), Err(DataError::NoClasses(_))));
    assert!(matches!(
        scan(&dir.path().join("nope")),
        Err(DataError::RootMissing(_))
    ));
    common::make_folder(dir.path(), &["only"], 2, (8, 8));
    let err = scan(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::SingleClass { .. }), "{err}");
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    std::fs::write(dir.path().join("empty/readme.txt"), "x").unwrap();
    let err = scan(dir.path()).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

fn grouped_folder(dir: &std::path::Path) {
    // 30 patients per class with 1..=4 photos each, named P<id>_<k>.png, plus lone photos "<n>.png"
    for (c, class) in ["Monkey Pox", "Others"].iter().enumerate() {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).unwrap();
        let img = common::gradient(4, 4, [c as u8, 0, 0]);
        for p in 0..30 {
            for k in 0..(1 + (p * 7 + c) % 4) {
                img.save(d.join(format!("P{}{p}_{k}.png", c))).unwrap();
            }
        }
        for n in 0..5 {
            img.save(d.join(format!("{}{n}.png", 90 + c))).unwrap();
        }
    }
}

#[test]
fn grouped_split_keeps_each_patient_in_one_part_and_is_stratified() {
    let dir = tempfile::tempdir().unwrap();
    grouped_folder(dir.path());
    let f = scan(dir.path()).unwrap();
    let cfg = SplitConfig {
        val: 0.2,
        test: 0.1,
        seed: 42,
        group_regex: Some("^([^_.]+)".into()),
    };
    let s = cfg.split(&f).unwrap();
    let key = |p: &String| {
        p.rsplit('/')
            .next()
            .unwrap()
            .split(['_', '.'])
            .next()
            .unwrap()
            .to_string()
    };
    let parts = [&s.train, &s.val, &s.test];
    for (i, a) in parts.iter().enumerate() {
        for b in parts.iter().skip(i + 1) {
            let ka: HashSet<String> = a.iter().map(key).collect();
            let kb: HashSet<String> = b.iter().map(key).collect();
            assert!(
                ka.is_disjoint(&kb),
                "a group straddles two parts: {:?}",
                ka.intersection(&kb).collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(s.train.len() + s.val.len() + s.test.len(), f.samples.len());
    // stratified: each class near its share in val
    for class in &f.classes {
        let total = f
            .samples
            .iter()
            .filter(|x| &f.classes[x.label] == class)
            .count() as f64;
        let val = s
            .val
            .iter()
            .filter(|p| p.starts_with(&format!("{class}/")))
            .count() as f64;
        assert!((val / total - 0.2).abs() < 0.08, "{class}: {val}/{total}");
        let test = s
            .test
            .iter()
            .filter(|p| p.starts_with(&format!("{class}/")))
            .count() as f64;
        assert!((test / total - 0.1).abs() < 0.08, "{class}: {test}/{total}");
    }
}

#[test]
fn ungrouped_split_has_exact_per_class_counts_and_seed_matters() {
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["a", "b"], 10, (4, 4));
    let f = scan(dir.path()).unwrap();
    let s = SplitConfig {
        val: 0.2,
        ..Default::default()
    }
    .split(&f)
    .unwrap();
    assert_eq!(s.val.iter().filter(|p| p.starts_with("a/")).count(), 2);
    assert_eq!(s.val.iter().filter(|p| p.starts_with("b/")).count(), 2);
    assert_eq!(s.train.len(), 16);
    let s2 = SplitConfig {
        val: 0.2,
        seed: 1,
        ..Default::default()
    }
    .split(&f)
    .unwrap();
    let s3 = SplitConfig {
        val: 0.2,
        seed: 2,
        ..Default::default()
    }
    .split(&f)
    .unwrap();
    assert!(
        s2.val != s3.val || s2.val != s.val,
        "different seeds should usually differ"
    );
}

#[test]
fn same_seed_same_split_whatever_the_thread_count_and_creation_order() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    grouped_folder(d1.path());
    // same files created in another order
    let mut files: Vec<_> = walk(d1.path());
    files.reverse();
    for rel in files {
        let dst = d2.path().join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(d1.path().join(&rel), dst).unwrap();
    }
    let cfg = SplitConfig {
        val: 0.25,
        test: 0.0,
        seed: 7,
        group_regex: Some("^([^_.]+)".into()),
    };
    let a = cfg.split(&scan(d1.path()).unwrap()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = pool.install(|| cfg.split(&scan(d2.path()).unwrap()).unwrap());
    assert_eq!(a, b);
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for c in std::fs::read_dir(root).unwrap() {
        let c = c.unwrap().path();
        for f in std::fs::read_dir(&c).unwrap() {
            out.push(f.unwrap().path().strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

#[test]
fn split_json_round_trips_and_reloads_samples() {
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["Monkey Pox", "Others"], 5, (4, 4));
    let f = scan(dir.path()).unwrap();
    let s = SplitConfig::default().split(&f).unwrap();
    let path = dir.path().join("split.json");
    s.save(&path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4);
    for k in ["classes", "train", "val", "test"] {
        assert!(json.get(k).is_some(), "missing {k}");
    }
    let back = Split::load(&path).unwrap();
    assert_eq!(back, s);
    let val = back.samples(&back.val, dir.path()).unwrap();
    assert_eq!(val.len(), 2);
    for v in &val {
        assert!(f.samples.contains(v));
    }
    // a split naming a file that is gone is an error naming it
    std::fs::remove_file(dir.path().join(&back.val[0])).unwrap();
    let err = back.samples(&back.val, dir.path()).unwrap_err();
    assert!(err.to_string().contains(&back.val[0]), "{err}");
}

#[test]
fn bad_split_settings_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["a", "b"], 3, (4, 4));
    let f = scan(dir.path()).unwrap();
    assert!(SplitConfig {
        val: 1.2,
        ..Default::default()
    }
    .split(&f)
    .is_err());
    assert!(SplitConfig {
        val: 0.6,
        test: 0.5,
        ..Default::default()
    }
    .split(&f)
    .is_err());
    let e = SplitConfig {
        group_regex: Some("^[^_]+".into()),
        ..Default::default()
    }
    .split(&f)
    .unwrap_err();
    assert!(e.to_string().contains("capture group"), "{e}");
    assert!(SplitConfig {
        group_regex: Some("(".into()),
        ..Default::default()
    }
    .split(&f)
    .is_err());
}

#[test]
#[cfg(target_os = "linux")]
fn non_utf8_class_folder_is_a_named_error() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    common::make_folder(dir.path(), &["a", "b"], 2, (8, 8));
    let bad = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9 latin-1"));
    std::fs::create_dir(&bad).unwrap();
    let err = scan(dir.path()).unwrap_err();
    assert!(
        matches!(err, DataError::NonUtf8Class(ref p) if *p == bad),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("not valid UTF-8") && msg.contains("latin-1"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}
