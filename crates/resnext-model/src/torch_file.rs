//! Reading the state dicts that `torch.save` writes, without Python and without executing
//! anything: both the zip format (PyTorch ≥ 1.6: `archive/data.pkl` plus one file per storage)
//! and the legacy format (a magic-number pickle, the protocol and system info, the object pickle,
//! the storage keys, then the raw storages).
//!
//! The pickle is interpreted by a small machine that knows the opcodes a state dict uses and an
//! allow-list of globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter` and the typed storages (`torch.FloatStorage`, …). Any other
//! global (`os.system`, `builtins.eval`, …) or opcode is refused with an error naming it.
//! Tensors may be views into shared storages (offset and strides are honoured).

use crate::error::ModelError;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

/// A value on the pickle machine's stack.
#[derive(Debug, Clone)]
enum V {
    None,
    /// A bool or float: state dicts carry them (`requires_grad`, metadata) but never read them.
    Scalar,
    Int(i64),
    Str(String),
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>),
    Global(Global),
    Storage {
        kind: Kind,
        key: String,
    },
    Tensor(TensorRef),
    Mark,
}

/// The globals a state dict may name.
#[derive(Debug, Clone, Copy)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(Kind),
}

#[derive(Debug, Clone)]
struct TensorRef {
    kind: Kind,
    key: String,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::ReadWeights {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch", "FloatStorage") => Global::Storage(Kind::Float),
        ("torch", "DoubleStorage") => Global::Storage(Kind::Double),
        ("torch", "HalfStorage") => Global::Storage(Kind::Half),
        ("torch", "BFloat16Storage") => Global::Storage(Kind::BFloat16),
        ("torch", "LongStorage") => Global::Storage(Kind::Int64),
        ("torch", "IntStorage") => Global::Storage(Kind::Int),
        ("torch", "ShortStorage") => Global::Storage(Kind::Int16),
        ("torch", "CharStorage") => Global::Storage(Kind::Int8),
        ("torch", "ByteStorage") => Global::Storage(Kind::Uint8),
        ("torch", "BoolStorage") => Global::Storage(Kind::Bool),
        _ => return None,
    })
}

/// Interprets one pickle starting at `data[0]`; returns the value and the bytes it took.
fn unpickle(data: &[u8], path: &Path) -> Result<(V, usize), ModelError> {
    let mut stack: Vec<V> = Vec::new();
    let mut memo: HashMap<u32, V> = HashMap::new();
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Result<&[u8], ModelError> {
        let s = data
            .get(*i..*i + n)
            .ok_or_else(|| bad(path, "the pickle ends early"))?;
        *i += n;
        Ok(s)
    };
    let u32le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let pop = |stack: &mut Vec<V>| {
        stack
            .pop()
            .ok_or_else(|| bad(path, "the pickle's stack is empty"))
    };
    let pop_mark = |stack: &mut Vec<V>| -> Result<Vec<V>, ModelError> {
        let at = stack
            .iter()
            .rposition(|v| matches!(v, V::Mark))
            .ok_or_else(|| bad(path, "the pickle has no MARK"))?;
        let items = stack.split_off(at + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = *take(&mut i, 1)?.first().unwrap_or(&0);
        match op {
            0x80 => {
                take(&mut i, 1)?; // PROTO
            }
            0x95 => {
                take(&mut i, 8)?; // FRAME
            }
            b'.' => {
                let v = pop(&mut stack)?;
                return Ok((v, i));
            }
            b'(' => stack.push(V::Mark),
            b')' => stack.push(V::Tuple(Vec::new())),
            b']' => stack.push(V::List(Vec::new())),
            b'}' => stack.push(V::Dict(Vec::new())),
            b'N' => stack.push(V::None),
            0x88 => stack.push(V::Scalar),
            0x89 => stack.push(V::Scalar),
            b'K' => {
                let b = take(&mut i, 1)?[0];
                stack.push(V::Int(b as i64));
            }
            b'M' => {
                let b = take(&mut i, 2)?;
                stack.push(V::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
            }
            b'J' => {
                let b = take(&mut i, 4)?;
                stack.push(V::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64));
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes
                let n = take(&mut i, 1)?[0] as usize;
                let b = take(&mut i, n)?;
                if n > 8 {
                    // only the legacy magic number is this long; its value is checked by bytes
                    stack.push(V::Int(i64::MIN));
                } else {
                    let mut v: i64 = 0;
                    for (k, &byte) in b.iter().enumerate() {
                        v |= (byte as i64) << (8 * k);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    stack.push(V::Int(v));
                }
            }
            b'G' => {
                take(&mut i, 8)?;
                stack.push(V::Scalar);
            }
            b'X' | 0x8c | b'U' | b'T' | 0x8d => {
                let n = match op {
                    b'X' | b'T' => u32le(take(&mut i, 4)?) as usize,
                    0x8d => {
                        let b = take(&mut i, 8)?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        u64::from_le_bytes(a) as usize
                    }
                    _ => take(&mut i, 1)?[0] as usize,
                };
                let s = take(&mut i, n)?;
                stack.push(V::Str(String::from_utf8_lossy(s).into_owned()));
            }
            b'q' => {
                let k = take(&mut i, 1)?[0] as u32;
                let top = stack
                    .last()
                    .cloned()
                    .ok_or_else(|| bad(path, "BINPUT on an empty stack"))?;
                memo.insert(k, top);
            }
            b'r' => {
                let k = u32le(take(&mut i, 4)?);
                let top = stack
                    .last()
                    .cloned()
                    .ok_or_else(|| bad(path, "BINPUT on an empty stack"))?;
                memo.insert(k, top);
            }
            0x94 => {
                let k = memo.len() as u32;
                let top = stack
                    .last()
                    .cloned()
                    .ok_or_else(|| bad(path, "MEMOIZE on an empty stack"))?;
                memo.insert(k, top);
            }
            b'h' | b'j' => {
                let k = if op == b'h' {
                    take(&mut i, 1)?[0] as u32
                } else {
                    u32le(take(&mut i, 4)?)
                };
                let v = memo.get(&k).cloned().ok_or_else(|| {
                    bad(path, format!("the pickle reads memo {k} before writing it"))
                })?;
                stack.push(v);
            }
            b'c' => {
                let rest = &data[i..];
                let line = |s: &[u8]| s.iter().position(|&c| c == b'\n');
                let a = line(rest).ok_or_else(|| bad(path, "GLOBAL without a module"))?;
                let module = String::from_utf8_lossy(&rest[..a]).into_owned();
                let b = line(&rest[a + 1..]).ok_or_else(|| bad(path, "GLOBAL without a name"))?;
                let name = String::from_utf8_lossy(&rest[a + 1..a + 1 + b]).into_owned();
                i += a + b + 2;
                let g = global(&module, &name).ok_or_else(|| {
                    bad(path, format!("refuses the global `{module}.{name}`: a state dict names only tensors, storages and OrderedDict (nothing in the file was run)"))
                })?;
                stack.push(V::Global(g));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                let (V::Str(m), V::Str(n)) = (module, name) else {
                    return Err(bad(path, "STACK_GLOBAL without strings"));
                };
                let g = global(&m, &n).ok_or_else(|| {
                    bad(path, format!("refuses the global `{m}.{n}`: a state dict names only tensors, storages and OrderedDict (nothing in the file was run)"))
                })?;
                stack.push(V::Global(g));
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(V::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(bad(path, "the pickle's stack is too short"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(V::Tuple(items));
            }
            b'a' => {
                let v = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(V::List(l)) => l.push(v),
                    _ => return Err(bad(path, "APPEND outside a list")),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(V::List(l)) => l.extend(items),
                    _ => return Err(bad(path, "APPENDS outside a list")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack)?
                };
                match stack.last_mut() {
                    Some(V::Dict(d)) => {
                        for pair in items.chunks(2) {
                            if let [k, v] = pair {
                                d.push((k.clone(), v.clone()));
                            }
                        }
                    }
                    _ => return Err(bad(path, "SETITEMS outside a dict")),
                }
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                let V::Tuple(t) = pid else {
                    return Err(bad(path, "a persistent id that is not a tuple"));
                };
                match t.as_slice() {
                    [V::Str(tag), V::Global(Global::Storage(kind)), V::Str(key), ..]
                        if tag == "storage" =>
                    {
                        stack.push(V::Storage {
                            kind: *kind,
                            key: key.clone(),
                        })
                    }
                    _ => return Err(bad(path, "a persistent id that is not a storage")),
                }
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                let V::Tuple(args) = args else {
                    return Err(bad(path, "REDUCE without an argument tuple"));
                };
                let v = match callable {
                    V::Global(Global::OrderedDict) => V::Dict(Vec::new()),
                    V::Global(Global::RebuildTensorV2) => rebuild_tensor(&args, path)?,
                    V::Global(Global::RebuildParameter) => match args.into_iter().next() {
                        Some(t @ V::Tensor(_)) => t,
                        _ => return Err(bad(path, "_rebuild_parameter without a tensor")),
                    },
                    _ => return Err(bad(path, "REDUCE of something that is not allowed")),
                };
                stack.push(v);
            }
            b'b' => {
                // BUILD: object state (OrderedDict's `_metadata`, a parameter's hooks): ignored
                pop(&mut stack)?;
            }
            other => {
                return Err(bad(
                    path,
                    format!("unsupported pickle opcode 0x{other:02x} at byte {}", i - 1),
                ))
            }
        }
    }
}

fn ints(v: &V, path: &Path) -> Result<Vec<i64>, ModelError> {
    match v {
        V::Tuple(items) | V::List(items) => items
            .iter()
            .map(|x| match x {
                V::Int(n) => Ok(*n),
                _ => Err(bad(path, "a tensor size or stride that is not an integer")),
            })
            .collect(),
        _ => Err(bad(path, "a tensor size or stride that is not a tuple")),
    }
}

fn rebuild_tensor(args: &[V], path: &Path) -> Result<V, ModelError> {
    let [V::Storage { kind, key }, V::Int(offset), size, stride, ..] = args else {
        return Err(bad(path, "_rebuild_tensor_v2 with unexpected arguments"));
    };
    Ok(V::Tensor(TensorRef {
        kind: *kind,
        key: key.clone(),
        offset: *offset,
        size: ints(size, path)?,
        stride: ints(stride, path)?,
    }))
}

/// The named tensors of a `torch.save` file. `key` picks a wrapped dict (`"state_dict"`,
/// `"model"`); without it a single wrapper of either name is unwrapped. A `module.` prefix
/// (DataParallel/DDP) is removed.
pub fn read_torch_file(
    path: &Path,
    key: Option<&str>,
) -> Result<Vec<(String, Tensor)>, ModelError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(bad(path, "not a regular file")),
        Err(e) => return Err(bad(path, e.to_string())),
    }
    let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
    let (object, storages) = if bytes.starts_with(b"PK\x03\x04") {
        read_zip(&bytes, path)?
    } else {
        read_legacy(&bytes, path)?
    };
    let dict = pick_dict(object, key, path)?;
    let mut out = Vec::new();
    for (k, v) in dict {
        let (V::Str(name), V::Tensor(t)) = (k, v) else {
            continue;
        };
        let raw = storages
            .get(&t.key)
            .ok_or_else(|| bad(path, format!("storage {} is missing", t.key)))?;
        let tensor = materialise(raw, &t, path)?;
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        out.push((name, tensor));
    }
    if out.is_empty() {
        return Err(bad(path, "holds no tensors"));
    }
    Ok(out)
}

fn pick_dict(object: V, key: Option<&str>, path: &Path) -> Result<Vec<(V, V)>, ModelError> {
    let V::Dict(d) = object else {
        return Err(bad(path, "is not a dict of tensors"));
    };
    let wrapped = |name: &str| {
        d.iter().find_map(|(k, v)| match (k, v) {
            (V::Str(s), V::Dict(inner)) if s == name => Some(inner.clone()),
            _ => None,
        })
    };
    if let Some(k) = key {
        return wrapped(k).ok_or_else(|| bad(path, format!("has no dict under the key `{k}`")));
    }
    let has_tensors = d.iter().any(|(_, v)| matches!(v, V::Tensor(_)));
    if has_tensors {
        return Ok(d);
    }
    match (wrapped("state_dict"), wrapped("model")) {
        (Some(s), None) | (None, Some(s)) => Ok(s),
        (Some(_), Some(_)) => Err(bad(
            path,
            "holds both `state_dict` and `model`: choose one with --key",
        )),
        (None, None) => Err(bad(
            path,
            "holds no tensors (and no `state_dict` or `model` dict)",
        )),
    }
}

fn materialise(raw: &[u8], t: &TensorRef, path: &Path) -> Result<Tensor, ModelError> {
    let elt = t.kind.elt_size_in_bytes();
    let numel = (raw.len() / elt) as i64;
    // the highest element the view reaches must be inside the storage
    let reach: i64 = t.offset
        + t.size
            .iter()
            .zip(&t.stride)
            .map(|(&s, &st)| (s - 1).max(0) * st)
            .sum::<i64>();
    if t.size.len() != t.stride.len()
        || t.offset < 0
        || t.stride.iter().any(|&s| s < 0)
        || (numel > 0 && reach >= numel)
        || (numel == 0 && t.size.iter().product::<i64>() > 0)
    {
        return Err(bad(
            path,
            format!("a tensor reaches outside its storage {}", t.key),
        ));
    }
    let storage = Tensor::f_from_data_size(raw, &[numel], t.kind)?;
    Ok(storage
        .f_as_strided(&t.size, &t.stride, Some(t.offset))?
        .f_contiguous()?)
}

type Storages = HashMap<String, Vec<u8>>;

fn read_zip(bytes: &[u8], path: &Path) -> Result<(V, Storages), ModelError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(path, format!("not a readable zip ({e})")))?;
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|c| c.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(path, format!("a zip entry name is unreadable ({e})")))?;
    let pkl = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .ok_or_else(|| bad(path, "the zip has no data.pkl (is it a torch.save file?)"))?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let read = |zip: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>, ModelError> {
        let mut f = zip
            .by_name(name)
            .map_err(|e| bad(path, format!("{name}: {e}")))?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)
            .map_err(|e| bad(path, e.to_string()))?;
        Ok(v)
    };
    let data = read(&mut zip, &pkl)?;
    let (object, _) = unpickle(&data, path)?;
    let mut storages = Storages::new();
    for n in &names {
        if let Some(key) = n.strip_prefix(&format!("{prefix}data/")) {
            if !key.contains('/') {
                storages.insert(key.to_string(), read(&mut zip, n)?);
            }
        }
    }
    Ok((object, storages))
}

fn read_legacy(bytes: &[u8], path: &Path) -> Result<(V, Storages), ModelError> {
    if !bytes.starts_with(&[0x80]) {
        return Err(bad(path, "is neither safetensors, a zip nor a pickle"));
    }
    let mut at = 0;
    // magic number, protocol version, system info
    for _ in 0..3 {
        let (_, n) = unpickle(&bytes[at..], path)?;
        at += n;
    }
    let (object, n) = unpickle(&bytes[at..], path)?;
    at += n;
    let (keys, n) = unpickle(&bytes[at..], path)?;
    at += n;
    let V::List(keys) = keys else {
        return Err(bad(path, "the legacy storage list is not a list"));
    };
    // the element size of each storage comes from the tensors that use it
    let mut kinds: HashMap<String, Kind> = HashMap::new();
    collect_kinds(&object, &mut kinds);
    let mut storages = Storages::new();
    for k in keys {
        let V::Str(key) = k else {
            return Err(bad(path, "a legacy storage key that is not a string"));
        };
        let head = bytes
            .get(at..at + 8)
            .ok_or_else(|| bad(path, "the file ends inside the storages"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(head);
        let numel = u64::from_le_bytes(a) as usize;
        at += 8;
        let elt = kinds.get(&key).map_or(4, |k| k.elt_size_in_bytes());
        let len = numel
            .checked_mul(elt)
            .ok_or_else(|| bad(path, "a storage too large"))?;
        let raw = bytes
            .get(at..at + len)
            .ok_or_else(|| bad(path, "the file ends inside a storage"))?;
        storages.insert(key, raw.to_vec());
        at += len;
    }
    Ok((object, storages))
}

fn collect_kinds(v: &V, out: &mut HashMap<String, Kind>) {
    match v {
        V::Tensor(t) => {
            out.insert(t.key.clone(), t.kind);
        }
        V::Dict(d) => {
            for (k, v) in d {
                collect_kinds(k, out);
                collect_kinds(v, out);
            }
        }
        V::Tuple(items) | V::List(items) => items.iter().for_each(|x| collect_kinds(x, out)),
        _ => {}
    }
}
