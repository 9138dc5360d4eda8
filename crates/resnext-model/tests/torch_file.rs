//! Reading `torch.save` files (fixtures made by `scripts/make_torch_file_fixtures.py` with
//! PyTorch 2.13): both formats, views into shared storages, fp16/bf16, a wrapped dict with the
//! `module.` prefix, and pickles that would run a command, which must be refused.
//!
//! The hostile files further down (deep nesting, memo bombs, expanded views, zip bombs,
//! big-endian archives, whole pickled models, checkpoints with foreign objects) are written by
//! hand in the tests: [`P`] writes a pickle opcode by opcode as `torch.save` does (protocol 2),
//! [`zip_pth`] and [`legacy_pth`] wrap it in either format.

mod common;

use resnext_model::torch_file::read_torch_file;
use std::collections::HashMap;
use tch::{Kind, Tensor};

fn expected() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(common::fixture("torch/expected.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn check(read: Vec<(String, Tensor)>) {
    let want = expected();
    assert_eq!(
        read.len(),
        want.len(),
        "{:?}",
        read.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, t) in read {
        let w = &want[&name];
        assert_eq!(t.kind(), w.kind(), "{name}");
        assert_eq!(t.size(), w.size(), "{name}");
        let diff = (t.to_kind(Kind::Double) - w.to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(diff, 0.0, "{name}");
    }
}

/// A model with a variable of each tensor's shape, zero: floating tensors as trainable
/// variables, integer ones (`count`, like `num_batches_tracked`) as buffers of their own kind.
fn var_store_like(want: &HashMap<String, Tensor>) -> tch::nn::VarStore {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    for (name, t) in want {
        let parts: Vec<&str> = name.split('.').collect();
        let (last, dirs) = parts.split_last().unwrap();
        let p = dirs.iter().fold(vs.root(), |p, d| &p / *d);
        if t.is_floating_point() {
            drop(p.var(last, &t.size(), tch::nn::Init::Const(0.0)));
        } else {
            drop(p.add(
                last,
                Tensor::zeros(t.size(), (t.kind(), tch::Device::Cpu)),
                false,
            ));
        }
    }
    vs
}

#[test]
fn both_formats_read_back_every_tensor_exactly() {
    for f in ["torch/zip.pth", "torch/legacy.pth"] {
        check(read_torch_file(&common::fixture(f), None).unwrap());
    }
}

#[test]
fn wrapped_dicts_and_the_module_prefix() {
    let p = common::fixture("torch/wrapped.pth");
    check(read_torch_file(&p, None).unwrap());
    check(read_torch_file(&p, Some("state_dict")).unwrap());
    let e = read_torch_file(&p, Some("model")).unwrap_err().to_string();
    assert!(e.contains("`model`"), "{e}");
}

#[test]
fn pickles_that_would_run_code_are_refused_naming_the_global() {
    for (f, global) in [
        ("torch/hostile_legacy.pth", "system"),
        ("torch/hostile_zip.pth", "eval"),
    ] {
        let e = read_torch_file(&common::fixture(f), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refuses the global") && e.contains(global),
            "{f}: {e}"
        );
    }
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let bytes = std::fs::read(common::fixture("torch/legacy.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        let p = dir.path().join("cut.pth");
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(read_torch_file(&p, None).is_err(), "cut at {cut}");
    }
    let zip = std::fs::read(common::fixture("torch/zip.pth")).unwrap();
    let p = dir.path().join("cut.zip.pth");
    std::fs::write(&p, &zip[..zip.len() / 2]).unwrap();
    assert!(read_torch_file(&p, None).is_err());
}

/// `load_weights` (behind `--init-weights` and `predict --weights`) takes `.pth` files as they
/// are: the same values as the safetensors twin, cast to the model's dtypes.
#[test]
fn load_weights_takes_torch_save_files() {
    use resnext_model::weights::{load_weights, HeadPolicy};
    let want = expected();
    for f in ["torch/zip.pth", "torch/legacy.pth", "torch/wrapped.pth"] {
        let vs = var_store_like(&want);
        let report = load_weights(&vs, &common::fixture(f), HeadPolicy::Strict).unwrap();
        assert_eq!(report.loaded.len(), want.len(), "{f}");
        for (name, var) in vs.variables() {
            let diff = (var.to_kind(Kind::Double) - want[&name].to_kind(Kind::Double))
                .abs()
                .max()
                .double_value(&[]);
            assert_eq!(diff, 0.0, "{f}: {name}");
        }
    }
}

/// A dict with both `state_dict` and `model` is refused without a key, and the key chooses
/// (`--key` of convert, train, cv, predict, export and serve).
#[test]
fn a_key_chooses_between_candidate_dicts() {
    use resnext_model::weights::{load_weights_from, HeadPolicy, WeightsFile};
    let p = common::fixture("torch/ambiguous.pth");
    let e = read_torch_file(&p, None).unwrap_err().to_string();
    assert!(e.contains("--key"), "{e}");
    let want = expected();
    for (key, offset) in [("state_dict", 0.0), ("model", 1.0)] {
        let vs = var_store_like(&want);
        let file = WeightsFile::new(&p).with_key(Some(key.to_string()));
        load_weights_from(&vs, &file, HeadPolicy::Strict).unwrap();
        for (name, var) in vs.variables() {
            let w = &want[&name];
            // `v + 1` in the tensor's own dtype, as the script computed it
            let w = if w.is_floating_point() {
                (w + offset).to_kind(Kind::Double)
            } else {
                w.to_kind(Kind::Double)
            };
            let diff = (var.to_kind(Kind::Double) - w)
                .abs()
                .max()
                .double_value(&[]);
            assert_eq!(diff, 0.0, "{key}: {name}");
        }
    }
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let bad = WeightsFile::new(&p).with_key(Some("optimizer".into()));
    let e = load_weights_from(&vs, &bad, HeadPolicy::Strict)
        .unwrap_err()
        .to_string();
    assert!(e.contains("optimizer"), "{e}");
    // the error says which keys there are to choose from
    assert!(
        e.contains("`state_dict`") && e.contains("`model`"),
        "the choices are not named: {e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-written hostile files.

/// A pickle, opcode by opcode (protocol 2, as `torch.save` writes it).
struct P(Vec<u8>);

impl P {
    fn new() -> Self {
        P(vec![0x80, 2])
    }
    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.raw(format!("c{module}\n{name}\n").as_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.raw(b"X")
            .raw(&(s.len() as u32).to_le_bytes())
            .raw(s.as_bytes())
    }
    /// LONG1 of 8 bytes: any i64.
    fn int(&mut self, v: i64) -> &mut Self {
        self.raw(&[0x8a, 8]).raw(&v.to_le_bytes())
    }
    /// LONG_BINPUT
    fn put(&mut self, k: u32) -> &mut Self {
        self.raw(b"r").raw(&k.to_le_bytes())
    }
    /// LONG_BINGET
    fn get(&mut self, k: u32) -> &mut Self {
        self.raw(b"j").raw(&k.to_le_bytes())
    }
    fn ints(&mut self, v: &[i64]) -> &mut Self {
        self.raw(b"(");
        v.iter().for_each(|&x| {
            self.int(x);
        });
        self.raw(b"t")
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` of the storage
    /// `key` (`torch.<storage>`, `numel` elements), as `torch.save` writes a tensor.
    fn tensor(
        &mut self,
        storage: &str,
        key: &str,
        numel: i64,
        offset: i64,
        size: &[i64],
        stride: &[i64],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .raw(b"((")
            .str("storage")
            .global("torch", storage)
            .str(key)
            .str("cpu")
            .int(numel)
            .raw(b"tQ")
            .int(offset)
            .ints(size)
            .ints(stride)
            .raw(&[0x89])
            .global("collections", "OrderedDict")
            .raw(b")Rt")
            .raw(b"R")
    }
    /// A contiguous float tensor of shape `size` over all of the storage `key`.
    fn floats(&mut self, key: &str, size: &[i64]) -> &mut Self {
        let numel = size.iter().product();
        let mut stride = vec![1; size.len()];
        for d in (0..size.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * size[d + 1];
        }
        self.tensor("FloatStorage", key, numel, 0, size, &stride)
    }
    /// An OrderedDict, as `torch.save` starts a state dict; its items follow, then `u`.
    fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").raw(b")R(")
    }
    /// [`P::ordered_dict`], memoised as `k` (before its items, as the pickler does).
    fn ordered_dict_put(&mut self, k: u32) -> &mut Self {
        self.global("collections", "OrderedDict")
            .raw(b")R")
            .put(k)
            .raw(b"(")
    }
    fn stop(&mut self) -> Vec<u8> {
        self.raw(b".");
        std::mem::take(&mut self.0)
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A zip-format `torch.save` file: `archive/data.pkl`, `byteorder`, one stored entry per storage,
/// and `extra` entries as given (name under `archive/`, bytes, compression).
fn zip_pth(
    pkl: &[u8],
    byteorder: &str,
    storages: &[(&str, Vec<u8>)],
    extra: &[(&str, Vec<u8>, zip::CompressionMethod)],
) -> Vec<u8> {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("archive/data.pkl", stored).unwrap();
    w.write_all(pkl).unwrap();
    w.start_file("archive/byteorder", stored).unwrap();
    w.write_all(byteorder.as_bytes()).unwrap();
    for (key, bytes) in storages {
        w.start_file(format!("archive/data/{key}"), stored).unwrap();
        w.write_all(bytes).unwrap();
    }
    for (name, bytes, method) in extra {
        let o = SimpleFileOptions::default()
            .compression_method(*method)
            .large_file(bytes.len() >= u32::MAX as usize);
        w.start_file(format!("archive/{name}"), o).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.start_file("archive/version", stored).unwrap();
    w.write_all(b"3\n").unwrap();
    w.finish().unwrap().into_inner()
}

/// A legacy-format `torch.save` file: magic number, protocol, system info, the object pickle,
/// the storage keys, then each storage as an 8-byte element count and its bytes.
fn legacy_pth(object: &[u8], storages: &[(&str, u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0x80, 2, 0x8a, 10];
    out.extend_from_slice(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    out.push(b'.');
    out.extend_from_slice(&P::new().raw(b"M\xe9\x03").stop());
    out.extend_from_slice(
        &P::new()
            .raw(b"}(")
            .str("protocol_version")
            .raw(b"M\xe9\x03")
            .str("little_endian")
            .raw(&[0x88])
            .raw(b"u")
            .stop(),
    );
    out.extend_from_slice(object);
    let mut keys = P::new();
    keys.raw(b"](");
    for (k, _, _) in storages {
        keys.str(k);
    }
    out.extend_from_slice(&keys.raw(b"e").stop());
    for (_, numel, bytes) in storages {
        out.extend_from_slice(&numel.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Writes `bytes` to a fresh file and reads it.
fn read_bytes(bytes: &[u8], key: Option<&str>) -> Result<Vec<(String, Tensor)>, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hostile.pth");
    std::fs::write(&p, bytes).unwrap();
    read_torch_file(&p, key).map_err(|e| e.to_string())
}

/// A state dict `{"w": 4 floats, "x": <what `value` writes>}` in the zip format.
fn dict_with(value: impl FnOnce(&mut P)) -> Vec<u8> {
    let mut p = P::new();
    p.ordered_dict().str("w").floats("0", &[4]).str("x");
    value(&mut p);
    let pkl = p.raw(b"u").stop();
    zip_pth(
        &pkl,
        "little",
        &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))],
        &[],
    )
}

fn err_of(r: Result<Vec<(String, Tensor)>, String>) -> String {
    match r {
        Ok(t) => panic!(
            "read {} tensors: {:?}",
            t.len(),
            t.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ),
        Err(e) => e,
    }
}

/// A million nested lists (a 2 MB file) used to overflow the stack while they were dropped: the
/// reader refuses them at depth 1000, in a thread with a 256 KiB stack (`serve`'s model thread
/// has a small one). Nesting made through shared lists, which looks shallow while it is built,
/// is caught when the state dict is walked.
#[test]
fn a_million_nested_lists_are_refused_within_a_256_kib_stack() {
    const N: usize = 1_000_000;
    let nested = dict_with(|p| {
        p.raw(&vec![b']'; N]).raw(&vec![b'a'; N - 1]);
    });
    // lists L0..Ln, then L_k.append(L_k+1) in order: each is empty when it is appended
    const M: u32 = 100_000;
    let chained = dict_with(|p| {
        p.raw(b"](");
        for k in 0..=M {
            p.raw(b"]").put(k);
        }
        p.raw(b"e(");
        for k in 0..M {
            p.get(k).get(k + 1).raw(b"a");
        }
        // every list is also in the outer list under "x", one level down
        p.raw(b"e").str("chain").get(0);
    });
    for (what, bytes) in [("nested", nested), ("chained", chained)] {
        let reader = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || read_bytes(&bytes, None).map(|t| t.len()))
            .unwrap();
        let e = reader
            .join()
            .unwrap_or_else(|_| panic!("{what}: the reader panicked"))
            .expect_err(what);
        assert!(e.contains("nested deeper than 1000"), "{what}: {e}");
    }
}

/// A list that holds itself: refused inside the state dict (the walk ends), harmless outside.
#[test]
fn a_list_that_contains_itself_ends_the_walk() {
    let cyclic = dict_with(|p| {
        p.raw(b"]").put(0).get(0).raw(b"a");
    });
    let e = err_of(read_bytes(&cyclic, None));
    assert!(e.contains("holds itself"), "{e}");
    let pkl = P::new()
        .raw(b"}(")
        .str("state_dict")
        .ordered_dict()
        .str("w")
        .floats("0", &[4])
        .raw(b"u")
        .str("loops")
        .raw(b"]")
        .put(0)
        .get(0)
        .raw(b"a")
        .raw(b"u")
        .stop();
    let outside = zip_pth(
        &pkl,
        "little",
        &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))],
        &[],
    );
    let read = read_bytes(&outside, None).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, "w");
}

/// "Billion laughs": 30 levels of tuples of ten references to the level below is 10³⁰ values if
/// a memo read copies; shared, the 1.4 KB file reads at once.
#[test]
fn memo_references_are_shared_so_billion_laughs_stay_small() {
    // BINPUT k / BINGET k: two bytes each
    let laughs = |p: &mut P| {
        p.raw(b"]q\x00");
        for k in 1..=30u8 {
            p.raw(b"(");
            for _ in 0..10 {
                p.raw(&[b'h', k - 1]);
            }
            p.raw(&[b't', b'q', k]);
        }
    };
    let bytes = dict_with(laughs);
    assert!(bytes.len() < 1500, "{}", bytes.len());
    let read = read_bytes(&bytes, None).unwrap();
    assert_eq!(read.len(), 1);
    // alone, it is not a state dict, and is told so
    let mut p = P::new();
    laughs(&mut p);
    let alone = zip_pth(&p.stop(), "little", &[], &[]);
    let e = err_of(read_bytes(&alone, None));
    assert!(e.contains("is not a dict of tensors"), "{e}");
}

/// A dict referenced twice is one dict, also when it is filled after it was memoised (as the
/// pickler writes `{"a": sd, "b": sd}`): a memo read is the object, not a copy of it then.
#[test]
fn a_dict_under_two_keys_is_the_same_dict() {
    let pkl = P::new()
        .raw(b"}(")
        .str("state_dict")
        .ordered_dict_put(1)
        .str("w")
        .floats("0", &[4])
        .raw(b"u")
        .str("also")
        .get(1)
        .raw(b"u")
        .stop();
    let bytes = zip_pth(
        &pkl,
        "little",
        &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))],
        &[],
    );
    let read = read_bytes(&bytes, Some("also")).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, "w");
}

/// The work budget: a pickle of 8 M items is refused as a bomb, naming the limit.
#[test]
fn the_work_budget_refuses_a_pickle_of_millions_of_items() {
    let n = resnext_model::torch_file::MAX_WORK;
    let bytes = dict_with(|p| {
        p.raw(b"](").raw(&vec![b'N'; n]).raw(b"e");
    });
    let e = err_of(read_bytes(&bytes, None));
    assert!(
        e.contains("pickle bomb") && e.contains(&n.to_string()),
        "{e}"
    );
}

/// Views must lie inside their storages, with checked arithmetic, and the tensors read may take
/// at most 2 × their storages' bytes + 64 MiB: a 500-byte stride-0 view of 16384 × 16384 floats
/// used to make 1 GiB. Each error names the tensor.
#[test]
fn views_outside_their_storage_or_past_the_budget_are_refused_naming_the_tensor() {
    // what, storage elements, offset, size, stride, the error
    type Case = (
        &'static str,
        i64,
        i64,
        &'static [i64],
        &'static [i64],
        &'static str,
    );
    let cases: [Case; 10] = [
        (
            "expanded",
            1,
            0,
            &[16384, 16384],
            &[0, 0],
            "more than twice",
        ),
        ("negative size", 4, 0, &[-1, 4], &[4, 1], "negative size"),
        ("negative stride", 4, 3, &[4], &[-1], "negative stride"),
        (
            "negative offset",
            4,
            -1,
            &[1],
            &[1],
            "negative storage offset",
        ),
        ("overflow", 4, 0, &[i64::MAX, 4], &[1, 1], "overflows"),
        (
            "stride overflow",
            4,
            0,
            &[2, 2],
            &[i64::MAX, 1],
            "reaches element",
        ),
        (
            "outside",
            4,
            0,
            &[10],
            &[1],
            "reaches element 9 of storage 0, which holds 4",
        ),
        ("dims", 4, 0, &[1, 1], &[1], "2 sizes but 1 strides"),
        // empty, but libtorch's contiguous strides of the other sizes overflow
        (
            "empty, huge",
            4,
            0,
            &[0, 1 << 40, 1 << 40],
            &[0, 0, 0],
            "overflows",
        ),
        (
            "empty, far",
            4,
            1 << 62,
            &[0],
            &[1],
            "starts at element 4611686018427387904",
        ),
    ];
    for (what, numel, offset, size, stride, want) in cases {
        let pkl = P::new()
            .ordered_dict()
            .str("good")
            .floats("g", &[4])
            .str("bad")
            .tensor("FloatStorage", "0", numel, offset, size, stride)
            .raw(b"u")
            .stop();
        let data = f32_bytes(&vec![0.5; numel as usize]);
        let good = f32_bytes(&[1.0; 4]);
        let zipped = zip_pth(
            &pkl,
            "little",
            &[("g", good.clone()), ("0", data.clone())],
            &[],
        );
        let legacy = legacy_pth(&pkl[..], &[("g", 4, good), ("0", numel as u64, data)]);
        for (format, bytes) in [("zip", zipped), ("legacy", legacy)] {
            let e = err_of(read_bytes(&bytes, None));
            assert!(
                e.contains("tensor `bad`") && e.contains(want),
                "{what} ({format}): {e}"
            );
        }
    }
    // an expanded view within the budget is still read
    let pkl = P::new()
        .ordered_dict()
        .str("row")
        .tensor("FloatStorage", "0", 1, 0, &[3, 1000], &[0, 0])
        .raw(b"u")
        .stop();
    let read = read_bytes(
        &zip_pth(&pkl, "little", &[("0", f32_bytes(&[2.5]))], &[]),
        None,
    )
    .unwrap();
    assert_eq!(read[0].1.size(), [3, 1000]);
    assert_eq!(read[0].1.sum(Kind::Double).double_value(&[]), 7500.0);
}

/// Only the entries a tensor needs are read: an unused zip bomb (64 MiB of zeros, deflated) and
/// an unused damaged entry are never opened. A needed entry must be stored (torch.save never
/// compresses) and hold exactly its storage's bytes; data.pkl is read up to 64 MiB.
#[test]
fn only_the_entries_tensors_need_are_read_stored_and_exactly_sized() {
    use zip::CompressionMethod::{Deflated, Stored};
    let pkl = P::new()
        .ordered_dict()
        .str("w")
        .floats("0", &[4])
        .raw(b"u")
        .stop();
    let four = f32_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let mut bytes = zip_pth(
        &pkl,
        "little",
        &[("0", four.clone())],
        &[
            ("data/bomb", vec![0u8; 64 << 20], Deflated),
            (
                "data/damaged",
                b"DAMAGED-ENTRY-DAMAGED-ENTRY".to_vec(),
                Stored,
            ),
        ],
    );
    assert!(bytes.len() < 1 << 20, "{}", bytes.len());
    // damage the stored entry's bytes: its CRC no longer matches, so reading it would fail
    let at = bytes
        .windows(7)
        .position(|w| w == b"DAMAGED")
        .expect("the entry's bytes");
    bytes[at] = b'X';
    let read = read_bytes(&bytes, None).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].1.size(), [4]);

    let compressed = zip_pth(&pkl, "little", &[], &[("data/0", four.clone(), Deflated)]);
    let e = err_of(read_bytes(&compressed, None));
    assert!(
        e.contains("is compressed") && e.contains("torch.save never compresses"),
        "{e}"
    );

    for (len, what) in [(20, "holds 20 bytes"), (8, "holds 8 bytes")] {
        let sized = zip_pth(&pkl, "little", &[("0", vec![0u8; len])], &[]);
        let e = err_of(read_bytes(&sized, None));
        assert!(e.contains(what) && e.contains("declares 4 elements"), "{e}");
    }

    let missing = zip_pth(&pkl, "little", &[], &[]);
    let e = err_of(read_bytes(&missing, None));
    assert!(e.contains("storage 0 is missing"), "{e}");

    // a data.pkl that inflates past 64 MiB is not read to its end
    let mut big = P::new();
    big.raw(b"](").raw(&vec![b'N'; 64 << 20]).raw(b"e");
    let big = big.stop();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "archive/data.pkl",
        zip::write::SimpleFileOptions::default().compression_method(Deflated),
    )
    .unwrap();
    std::io::Write::write_all(&mut w, &big).unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let e = err_of(read_bytes(&bytes, None));
    assert!(e.contains("data.pkl is larger than 67108864 bytes"), "{e}");
}

/// `archive/byteorder` = `big`: every element is byte-swapped (each element size); any other
/// value than `little` or `big` is refused.
#[test]
fn big_endian_archives_are_swapped_and_unknown_byte_orders_refused() {
    let values = [1.5f64, -2.25, 3.0, 100.0];
    let kinds = [
        ("FloatStorage", Kind::Float),
        ("DoubleStorage", Kind::Double),
        ("HalfStorage", Kind::Half),
        ("BFloat16Storage", Kind::BFloat16),
        ("LongStorage", Kind::Int64),
        ("IntStorage", Kind::Int),
        ("ShortStorage", Kind::Int16),
        ("CharStorage", Kind::Int8),
        ("ByteStorage", Kind::Uint8),
        ("BoolStorage", Kind::Bool),
    ];
    let mut p = P::new();
    p.ordered_dict();
    let mut storages = Vec::new();
    let mut want = HashMap::new();
    for (k, (storage, kind)) in kinds.iter().enumerate() {
        let t = Tensor::from_slice(&values).abs().to_kind(*kind);
        let n = t.numel();
        let mut le = vec![0u8; n * kind.elt_size_in_bytes()];
        t.copy_data_u8(&mut le, n);
        let be: Vec<u8> = le
            .chunks(kind.elt_size_in_bytes())
            .flat_map(|e| e.iter().rev().copied())
            .collect();
        let key = k.to_string();
        p.str(storage).tensor(storage, &key, 4, 0, &[4], &[1]);
        storages.push((key, be));
        want.insert(storage.to_string(), t);
    }
    let pkl = p.raw(b"u").stop();
    let storages: Vec<(&str, Vec<u8>)> = storages
        .iter()
        .map(|(k, b)| (k.as_str(), b.clone()))
        .collect();
    let read = read_bytes(&zip_pth(&pkl, "big", &storages, &[]), None).unwrap();
    assert_eq!(read.len(), kinds.len());
    for (name, t) in read {
        let w = &want[&name];
        assert_eq!(t.kind(), w.kind(), "{name}");
        assert!(t.equal(w), "{name}: {t:?} != {w:?}");
    }
    for order in ["middle", "", "little\n"] {
        let e = err_of(read_bytes(&zip_pth(&pkl, order, &storages, &[]), None));
        assert!(e.contains("only `little` and `big`"), "{order:?}: {e}");
    }
}

/// An integer or boolean tensor for a floating variable is refused, naming it; BatchNorm's int64
/// `num_batches_tracked` into its int64 variable loads.
#[test]
fn integer_tensors_are_not_cast_into_floating_variables() {
    use resnext_model::weights::{load_weights, HeadPolicy};
    let model = || {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        drop(root.var("w", &[4], tch::nn::Init::Const(0.0)));
        drop((&root / "bn").add(
            "num_batches_tracked",
            Tensor::zeros([], (Kind::Int64, tch::Device::Cpu)),
            false,
        ));
        vs
    };
    let file = |w_storage: &str, w_bytes: Vec<u8>| {
        let pkl = P::new()
            .ordered_dict()
            .str("w")
            .tensor(w_storage, "0", 4, 0, &[4], &[1])
            .str("bn.num_batches_tracked")
            .tensor("LongStorage", "1", 1, 0, &[], &[])
            .raw(b"u")
            .stop();
        zip_pth(
            &pkl,
            "little",
            &[("0", w_bytes), ("1", 7i64.to_le_bytes().to_vec())],
            &[],
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.pth");
    std::fs::write(&p, file("FloatStorage", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))).unwrap();
    let vs = model();
    load_weights(&vs, &p, HeadPolicy::Strict).unwrap();
    assert_eq!(vs.variables()["bn.num_batches_tracked"].int64_value(&[]), 7);
    assert_eq!(vs.variables()["w"].double_value(&[3]), 4.0);
    for (storage, bytes, kind) in [
        (
            "LongStorage",
            [1i64, 2, 3, 4]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            "int64",
        ),
        ("BoolStorage", vec![1u8, 0, 1, 0], "bool"),
    ] {
        std::fs::write(&p, file(storage, bytes)).unwrap();
        let vs = model();
        let e = load_weights(&vs, &p, HeadPolicy::Strict)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tensor `w` is ") && e.contains(kind) && e.contains("float32"),
            "{e}"
        );
        assert_eq!(
            vs.variables()["w"].double_value(&[3]),
            0.0,
            "the model is untouched"
        );
    }
}

/// A module object's pickle (`torch.save(model)`): `torchvision.models…`, `torch.nn.modules…`, or
/// any class built with a module's `__dict__` (`_parameters`, `_modules`) is named as a whole
/// pickled model, with the advice to save its state_dict.
#[test]
fn a_whole_pickled_model_is_named_as_such() {
    // __main__.Net(): NEWOBJ, then BUILD with {"training": True, "_parameters": {}, "_modules":
    // {"conv": torch.nn.modules.conv.Conv2d with a parameter}}
    let module = |p: &mut P, module: &str, class: &str| {
        p.global(module, class)
            .raw(b")\x81}(")
            .str("training")
            .raw(&[0x88]);
        p.str("_parameters").ordered_dict().str("weight");
        p.global("torch._utils", "_rebuild_parameter").raw(b"(");
        p.floats("0", &[4])
            .raw(&[0x88])
            .ordered_dict()
            .raw(b"u")
            .raw(b"tR");
        p.raw(b"u")
            .str("_modules")
            .ordered_dict()
            .raw(b"u")
            .raw(b"ub");
    };
    let four = || vec![("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))];
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "__main__.Net",
            {
                let mut p = P::new();
                module(&mut p, "__main__", "Net");
                zip_pth(&p.stop(), "little", &four(), &[])
            },
            None,
        ),
        (
            "torchvision.models.resnet.ResNet",
            {
                let mut p = P::new();
                p.global("torchvision.models.resnet", "ResNet")
                    .raw(b")\x81");
                zip_pth(&p.stop(), "little", &[], &[])
            },
            None,
        ),
        (
            "torch.nn.modules.conv.Conv2d",
            {
                let mut p = P::new();
                p.raw(b"}(")
                    .str("model")
                    .global("torch.nn.modules.conv", "Conv2d");
                p.raw(b")R").str("epoch").int(3).raw(b"u");
                zip_pth(&p.stop(), "little", &[], &[])
            },
            None,
        ),
        (
            "__main__.Net",
            {
                let mut p = P::new();
                p.raw(b"}(").str("model");
                module(&mut p, "__main__", "Net");
                p.str("epoch").int(3).raw(b"u");
                zip_pth(&p.stop(), "little", &four(), &[])
            },
            Some("model"),
        ),
    ];
    for (global, bytes, key) in cases {
        let e = err_of(read_bytes(&bytes, key));
        assert!(
            e.contains(&format!("refuses the global `{global}`"))
                && e.contains(
                    "whole pickled model (torch.save(model)); save model.state_dict() instead"
                ),
            "{global}: {e}"
        );
    }
    // a global that is no model keeps the plain message
    for f in ["torch/hostile_legacy.pth", "torch/hostile_zip.pth"] {
        let e = read_torch_file(&common::fixture(f), None)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("whole pickled model"), "{f}: {e}");
    }
}

/// A Lightning checkpoint: its `state_dict` names every tensor under `model.`, and its
/// `hyper_parameters` hold a `pathlib.PosixPath` (and an `AttributeDict` filled by SETITEMS). It
/// loads, with and without `--key state_dict`, the prefix removed because the model's names
/// then match.
#[test]
fn a_lightning_checkpoint_loads_under_its_model_prefix() {
    use resnext_model::weights::{load_weights_from, HeadPolicy, WeightsFile};
    let mut p = P::new();
    p.raw(b"}(").str("epoch").int(3).str("global_step").int(120);
    p.str("pytorch-lightning_version").str("2.1.0");
    p.str("state_dict").ordered_dict();
    p.str("model.w").floats("0", &[4]);
    p.str("model.bn.num_batches_tracked")
        .tensor("LongStorage", "1", 1, 0, &[], &[]);
    p.raw(b"u");
    p.str("hyper_parameters");
    p.global("lightning_fabric.utilities.data", "AttributeDict")
        .raw(b")\x81(");
    p.str("data_dir")
        .global("pathlib", "PosixPath")
        .raw(b"(")
        .str("/data")
        .raw(b"tR");
    p.str("lr").raw(b"G").raw(&0.1f64.to_be_bytes()).raw(b"u");
    p.str("optimizer_states")
        .raw(b"](}(")
        .str("lr")
        .raw(b"G")
        .raw(&0.1f64.to_be_bytes());
    p.raw(b"ue").raw(b"u");
    let bytes = zip_pth(
        &p.stop(),
        "little",
        &[
            ("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0])),
            ("1", 9i64.to_le_bytes().to_vec()),
        ],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.ckpt");
    std::fs::write(&path, &bytes).unwrap();
    let read = read_torch_file(&path, None).unwrap();
    let mut names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["model.bn.num_batches_tracked", "model.w"]);
    for key in [None, Some("state_dict".to_string())] {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        drop(root.var("w", &[4], tch::nn::Init::Const(0.0)));
        drop((&root / "bn").add(
            "num_batches_tracked",
            Tensor::zeros([], (Kind::Int64, tch::Device::Cpu)),
            false,
        ));
        let file = WeightsFile::new(&path).with_key(key.clone());
        let report = load_weights_from(&vs, &file, HeadPolicy::Strict).unwrap();
        assert_eq!(report.loaded.len(), 2, "{key:?}");
        assert_eq!(vs.variables()["w"].double_value(&[1]), 2.0);
        assert_eq!(vs.variables()["bn.num_batches_tracked"].int64_value(&[]), 9);
    }
    // a prefix whose removal does not give the model's names stays, and the error names a
    // missing tensor as before
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    drop(vs.root().var("other", &[4], tch::nn::Init::Const(0.0)));
    let e = load_weights_from(&vs, &WeightsFile::new(&path), HeadPolicy::Strict)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lacks tensor `other`"), "{e}");
}

/// Objects outside the entry asked for (timm's `args`, an `argparse.Namespace` built by NEWOBJ
/// and BUILD) are inert placeholders: the state dict reads. Asking for them, or a placeholder
/// inside the state dict, is refused naming the global. Nothing is ever called.
#[test]
fn objects_outside_the_chosen_entry_are_inert_placeholders() {
    let timm = |extra: &dyn Fn(&mut P)| {
        let mut p = P::new();
        p.raw(b"}(")
            .str("state_dict")
            .ordered_dict()
            .str("w")
            .floats("0", &[4]);
        extra(&mut p);
        p.raw(b"u")
            .str("args")
            .global("argparse", "Namespace")
            .raw(b")\x81}(");
        p.str("model")
            .str("resnet50")
            .str("lr")
            .raw(b"G")
            .raw(&0.5f64.to_be_bytes());
        p.raw(b"ub").str("epoch").int(10).raw(b"u");
        zip_pth(
            &p.stop(),
            "little",
            &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))],
            &[],
        )
    };
    let ok = timm(&|_| {});
    for key in [None, Some("state_dict")] {
        let read = read_bytes(&ok, key).unwrap();
        assert_eq!(read.len(), 1, "{key:?}");
    }
    let e = err_of(read_bytes(&ok, Some("args")));
    assert!(e.contains("refuses the global `argparse.Namespace`"), "{e}");
    // a placeholder inside the state dict, or inside a list in it
    let inside = timm(&|p| {
        p.str("hook")
            .global("os", "system")
            .raw(b"(")
            .str("echo no")
            .raw(b"tR");
    });
    let nested = timm(&|p| {
        p.str("hooks")
            .raw(b"](")
            .global("builtins", "eval")
            .raw(b"(")
            .str("1")
            .raw(b"tRe");
    });
    for (bytes, global) in [(inside, "os.system"), (nested, "builtins.eval")] {
        for key in [None, Some("state_dict")] {
            let e = err_of(read_bytes(&bytes, key));
            assert!(
                e.contains(&format!("refuses the global `{global}`")),
                "{key:?}: {e}"
            );
        }
    }
}

/// Opcodes a state dict never uses stay refused, naming the opcode: the extension registry
/// (EXT1/2/4), INST and OBJ, DUP, POP, text persistent ids, byte strings, sets.
#[test]
fn opcodes_a_state_dict_never_uses_are_still_refused() {
    for (what, body, op) in [
        ("EXT1", &b"\x82\x01"[..], "0x82"),
        ("EXT2", b"\x83\x01\x00", "0x83"),
        ("EXT4", b"\x84\x01\x00\x00\x00", "0x84"),
        ("INST", b"(ios\nsystem\n", "0x69"),
        ("OBJ", b"(cos\nsystem\nX\x02\x00\x00\x00lso", "0x6f"),
        ("DUP", b"N2", "0x32"),
        ("POP", b"NN0", "0x30"),
        ("PERSID", b"P0\n", "0x50"),
        ("BINBYTES", b"B\x01\x00\x00\x00x", "0x42"),
        ("EMPTY_SET", b"\x8f", "0x8f"),
    ] {
        let pkl = P::new().raw(body).stop();
        let e = err_of(read_bytes(&zip_pth(&pkl, "little", &[], &[]), None));
        assert!(
            e.contains(&format!("unsupported pickle opcode {op}")),
            "{what}: {e}"
        );
    }
}

/// Files that are not `torch.save` state dicts say what they are.
#[test]
fn a_torchscript_module_and_a_safetensors_file_are_named_as_such() {
    let pkl = P::new().ordered_dict().stop();
    let stored = zip::CompressionMethod::Stored;
    let scripted = zip_pth(
        &pkl,
        "little",
        &[],
        &[
            ("constants.pkl", pkl.clone(), stored),
            ("code/__torch__.py", b"x".to_vec(), stored),
        ],
    );
    let e = err_of(read_bytes(&scripted, None));
    assert!(
        e.contains("TorchScript") && e.contains("state_dict()"),
        "{e}"
    );
    // an 8-byte header length, then the JSON header
    let mut st = 2u64.to_le_bytes().to_vec();
    st.extend(b"{}");
    let e = err_of(read_bytes(&st, None));
    assert!(e.contains("is a safetensors file"), "{e}");
}
