//! Reading the state dicts that `torch.save` writes, without Python and without executing
//! anything: both the zip format (PyTorch ≥ 1.6: `archive/data.pkl` plus one file per storage)
//! and the legacy format (a magic-number pickle, the protocol and system info, the object pickle,
//! the storage keys, then the raw storages).
//!
//! The pickle is interpreted by a small machine that knows the opcodes a state dict uses and an
//! allow-list of globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter` and the typed storages (`torch.FloatStorage`, …). Nothing
//! else is ever interpreted. Any other global (`os.system`, `argparse.Namespace`, a model class)
//! becomes an inert placeholder: calling it (REDUCE, NEWOBJ) or setting its state (BUILD) gives
//! another placeholder, and the file is refused, naming the global, only when a placeholder is
//! part of the entry that is returned. So a checkpoint's `args` or `hyper_parameters` do not get
//! in the way of its `state_dict`, and a whole pickled model is named as such. Opcodes outside
//! the machine's set are refused, naming the opcode.
//!
//! Bounds, so that a small file cannot make the reader use much memory, time or stack:
//! - values are shared, never copied: the memo holds handles into one arena of containers, so
//!   BINGET is O(1), and no function recurses over a value (the arena drops flat);
//! - containers nested deeper than [`MAX_DEPTH`] are refused, while they are built and again
//!   when the returned entry is walked (which also refuses a container that holds itself);
//! - a pickle may take at most [`MAX_WORK`] steps (opcodes run plus items put into containers);
//!   `data.pkl` is read up to [`MAX_PICKLE_BYTES`];
//! - every tensor view must lie inside its storage (checked arithmetic: negative sizes or
//!   strides and overflowing products are errors naming the tensor), and the tensors returned
//!   may hold at most twice the bytes of the storages they use plus [`MATERIALISE_SLACK`]
//!   (an expanded, stride-0 view is the only way past that);
//! - only the zip entries that a returned tensor needs are read (plus `data.pkl` and
//!   `byteorder`), each stored, never compressed (as `torch.save` writes them), holding exactly
//!   the bytes its storage declares.
//!
//! A zip archive whose `byteorder` is `big` has its storages byte-swapped. The legacy format
//! always stores little-endian data (PyTorch converts on big-endian hosts).

use crate::error::ModelError;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use tch::{Kind, Tensor};

/// Containers (tuples, lists, dicts) nested deeper than this are refused; a state dict, even
/// inside a training checkpoint, needs fewer than 10 levels.
pub const MAX_DEPTH: usize = 1000;

/// The most work one pickle may take: one unit per opcode run and per item put into a tuple,
/// list or dict. A state dict takes about 50 per tensor, so this allows some 150 000 tensors.
pub const MAX_WORK: usize = 1 << 23;

/// The largest `data.pkl` read from a zip archive (a state dict's is ~100 bytes per tensor).
pub const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// The tensors returned may hold at most 2 × the bytes of the storages they view plus this.
/// Views of one storage (tied weights, slices) fit; an expanded view of a small storage does not.
pub const MATERIALISE_SLACK: u64 = 64 << 20;

/// Dimensions of one tensor.
const MAX_DIMS: usize = 64;

/// A value on the pickle machine's stack. Containers, storages, tensors and refused globals are
/// handles into the [`Heap`], so copying a value (memo, stack) is O(1) and dropping one never
/// recurses.
#[derive(Debug, Clone)]
enum V {
    None,
    /// A bool or float: state dicts carry them (`requires_grad`, metadata) but never read them.
    Scalar,
    Int(i64),
    /// A LONG1 wider than 8 bytes (the legacy magic number), little-endian two's complement.
    Long(Rc<[u8]>),
    Str(Rc<str>),
    Tuple(usize),
    List(usize),
    /// Items alternate key, value.
    Dict(usize),
    Global(Global),
    /// A global outside the allow-list, or what calling or building one gave: never interpreted.
    Refused(usize),
    Storage(usize),
    Tensor(usize),
}

/// The globals a state dict may name.
#[derive(Debug, Clone, Copy)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(Kind),
}

#[derive(Debug)]
struct Container {
    items: Vec<V>,
    /// 1 + the depth of the deepest container put into it, when it was put there.
    depth: usize,
}

#[derive(Debug)]
struct StorageRef {
    kind: Kind,
    key: Rc<str>,
    /// Elements, as the persistent id declares them (and the file must hold).
    numel: Option<u64>,
}

#[derive(Debug)]
struct TensorRef {
    storage: usize,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

#[derive(Debug)]
struct RefusedRef {
    /// `module.name` of the global.
    name: String,
    /// Whether it looks like a pickled `nn.Module` (its module, or the state it was built with).
    model: bool,
}

/// Everything the pickles of one file built.
struct Heap<'p> {
    path: &'p Path,
    containers: Vec<Container>,
    storages: Vec<StorageRef>,
    storage_index: HashMap<Rc<str>, usize>,
    tensors: Vec<TensorRef>,
    refused: Vec<RefusedRef>,
    work: usize,
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::ReadWeights {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A name from the file, fit for a one-line message.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(200)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
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

/// Modules whose classes are networks or their layers.
fn is_model_module(module: &str) -> bool {
    [
        "torch.nn.modules",
        "torch.nn.parallel",
        "torchvision.models",
        "timm.models",
    ]
    .iter()
    .any(|m| module == *m || module.starts_with(&format!("{m}.")))
}

impl<'p> Heap<'p> {
    fn new(path: &'p Path) -> Self {
        Self {
            path,
            containers: Vec::new(),
            storages: Vec::new(),
            storage_index: HashMap::new(),
            tensors: Vec::new(),
            refused: Vec::new(),
            work: 0,
        }
    }

    fn bad(&self, reason: impl Into<String>) -> ModelError {
        bad(self.path, reason)
    }

    fn charge(&mut self, n: usize) -> Result<(), ModelError> {
        self.work = self.work.saturating_add(n);
        if self.work > MAX_WORK {
            return Err(self.bad(format!(
                "the pickle takes more than {MAX_WORK} steps (a state dict takes about 50 per \
                 tensor): refused as a pickle bomb"
            )));
        }
        Ok(())
    }

    fn depth_of(&self, v: &V) -> usize {
        match v {
            V::Tuple(c) | V::List(c) | V::Dict(c) => self.containers[*c].depth,
            _ => 0,
        }
    }

    fn too_deep(&self) -> ModelError {
        self.bad(format!(
            "containers are nested deeper than {MAX_DEPTH} levels (a state dict needs fewer than 10)"
        ))
    }

    fn container(&mut self, items: Vec<V>) -> Result<usize, ModelError> {
        self.charge(items.len() + 1)?;
        let depth = 1 + items.iter().map(|v| self.depth_of(v)).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        self.containers.push(Container { items, depth });
        Ok(self.containers.len() - 1)
    }

    fn extend(&mut self, c: usize, items: Vec<V>) -> Result<(), ModelError> {
        self.charge(items.len())?;
        let inner = items.iter().map(|v| self.depth_of(v)).max().unwrap_or(0);
        let depth = self.containers[c].depth.max(inner + 1);
        if depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        let target = &mut self.containers[c];
        target.depth = depth;
        target.items.extend(items);
        Ok(())
    }

    fn items(&self, c: usize) -> &[V] {
        &self.containers[c].items
    }

    fn refuse(&mut self, name: String, model: bool) -> V {
        self.refused.push(RefusedRef { name, model });
        V::Refused(self.refused.len() - 1)
    }

    /// What calling or building the placeholder `r` gives: another placeholder.
    fn refused_again(&mut self, r: usize) -> V {
        let (name, model) = (self.refused[r].name.clone(), self.refused[r].model);
        self.refuse(name, model)
    }

    fn resolve(&mut self, module: &str, name: &str) -> V {
        // a memoised long string named many times costs O(1) each: only its start is kept
        let start = |s: &str| match s.char_indices().nth(200) {
            Some((at, _)) => format!("{}…", &s[..at]),
            None => s.to_string(),
        };
        match global(module, name) {
            Some(g) => V::Global(g),
            None => self.refuse(
                format!("{}.{}", start(module), start(name)),
                is_model_module(module),
            ),
        }
    }

    fn refused_error(&self, r: usize) -> ModelError {
        let g = &self.refused[r];
        let name = shown(&g.name);
        if g.model {
            self.bad(format!(
                "refuses the global `{name}`: this is a whole pickled model (torch.save(model)); \
                 save model.state_dict() instead (nothing in the file was run)"
            ))
        } else {
            self.bad(format!(
                "refuses the global `{name}`: a state dict names only tensors, storages and \
                 OrderedDict (nothing in the file was run)"
            ))
        }
    }

    /// Whether a BUILD state is an `nn.Module`'s `__dict__` (`Module.__init__` sets
    /// `_parameters` second; only the first 32 keys are looked at, so a BUILD costs O(1)).
    fn is_module_state(&self, state: &V) -> bool {
        let dict = match state {
            V::Dict(c) => Some(*c),
            V::Tuple(c) => match self.items(*c).first() {
                Some(V::Dict(d)) => Some(*d),
                _ => None,
            },
            _ => None,
        };
        dict.is_some_and(|d| {
            self.items(d).chunks(2).take(32).any(|kv| {
                matches!(&kv[0], V::Str(k) if matches!(&**k, "_parameters" | "_modules" | "_buffers"))
            })
        })
    }

    /// A persistent id: `('storage', storage type, key, location, numel[, view metadata])`.
    fn persistent_load(&mut self, pid: V) -> Result<V, ModelError> {
        let V::Tuple(c) = pid else {
            return Err(self.bad("a persistent id that is not a tuple"));
        };
        // only the first 6 items mean anything (a pid reused many times costs O(1) each)
        let items: Vec<V> = self.items(c).iter().take(6).cloned().collect();
        if let Some(V::Refused(r)) = items.iter().find(|v| matches!(v, V::Refused(_))) {
            return Ok(self.refused_again(*r));
        }
        let (kind, key) = match items.as_slice() {
            [V::Str(tag), V::Global(Global::Storage(kind)), V::Str(key), ..]
                if &**tag == "storage" =>
            {
                (*kind, key.clone())
            }
            _ => return Err(self.bad("a persistent id that is not a storage")),
        };
        if key.len() > 128 {
            // torch.save's keys are numbers; a long one would cost its length at every use
            return Err(self.bad(format!(
                "storage key {} is longer than 128 bytes",
                shown(&key)
            )));
        }
        let numel = match items.get(4) {
            None | Some(V::None) => None,
            Some(V::Int(n)) if *n >= 0 => Some(*n as u64),
            Some(_) => {
                return Err(self.bad(format!(
                    "storage {} has a size that is not a count",
                    shown(&key)
                )))
            }
        };
        if !matches!(items.get(5), None | Some(V::None)) {
            return Err(self.bad(format!(
                "storage {} is a storage view (the legacy format of PyTorch before 1.0), which \
                 is not supported; save it again with a current PyTorch",
                shown(&key)
            )));
        }
        if let Some(&s) = self.storage_index.get(&key) {
            let known = &self.storages[s];
            if known.kind != kind
                || (known.numel.is_some() && numel.is_some() && known.numel != numel)
            {
                return Err(self.bad(format!(
                    "storage {} is named with two types or sizes",
                    shown(&key)
                )));
            }
            return Ok(V::Storage(s));
        }
        self.storages.push(StorageRef {
            kind,
            key: key.clone(),
            numel,
        });
        self.storage_index.insert(key, self.storages.len() - 1);
        Ok(V::Storage(self.storages.len() - 1))
    }

    fn ints(&self, v: &V, what: &str) -> Result<Vec<i64>, ModelError> {
        let (V::Tuple(c) | V::List(c)) = v else {
            return Err(self.bad(format!("a tensor {what} that is not a tuple")));
        };
        let items = self.items(*c);
        if items.len() > MAX_DIMS {
            return Err(self.bad(format!("a tensor with more than {MAX_DIMS} dimensions")));
        }
        items
            .iter()
            .map(|x| match x {
                V::Int(n) => Ok(*n),
                _ => Err(self.bad(format!("a tensor {what} that is not an integer"))),
            })
            .collect()
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    fn rebuild_tensor(&mut self, args: &V) -> Result<V, ModelError> {
        let V::Tuple(c) = args else {
            return Err(self.bad("REDUCE without an argument tuple"));
        };
        let items: Vec<V> = self.items(*c).iter().take(4).cloned().collect();
        match items.as_slice() {
            [V::Refused(r), ..] => Ok(self.refused_again(*r)),
            [V::Storage(storage), V::Int(offset), size, stride, ..] => {
                let size = self.ints(size, "size")?;
                let stride = self.ints(stride, "stride")?;
                self.tensors.push(TensorRef {
                    storage: *storage,
                    offset: *offset,
                    size,
                    stride,
                });
                Ok(V::Tensor(self.tensors.len() - 1))
            }
            _ => Err(self.bad("_rebuild_tensor_v2 with unexpected arguments")),
        }
    }

    fn reduce(&mut self, callable: V, args: V) -> Result<V, ModelError> {
        match callable {
            V::Refused(r) => Ok(self.refused_again(r)),
            V::Global(Global::OrderedDict) => Ok(V::Dict(self.container(Vec::new())?)),
            V::Global(Global::RebuildTensorV2) => self.rebuild_tensor(&args),
            V::Global(Global::RebuildParameter) => {
                let V::Tuple(c) = args else {
                    return Err(self.bad("REDUCE without an argument tuple"));
                };
                match self.items(c).first().cloned() {
                    Some(t @ V::Tensor(_)) => Ok(t),
                    Some(V::Refused(r)) => Ok(self.refused_again(r)),
                    _ => Err(self.bad("_rebuild_parameter without a tensor")),
                }
            }
            _ => Err(self.bad("REDUCE of something that is not allowed")),
        }
    }

    fn new_object(&mut self, class: V) -> Result<V, ModelError> {
        match class {
            V::Refused(r) => Ok(self.refused_again(r)),
            V::Global(Global::OrderedDict) => Ok(V::Dict(self.container(Vec::new())?)),
            _ => Err(self.bad("NEWOBJ of something that is not allowed")),
        }
    }
}

/// Interprets one pickle starting at `data[0]`; returns the value and the bytes it took.
fn unpickle(data: &[u8], heap: &mut Heap<'_>) -> Result<(V, usize), ModelError> {
    let path = heap.path;
    let mut stack: Vec<V> = Vec::new();
    // where each open MARK began on the stack; nothing below the last one may be popped
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u32, V> = HashMap::new();
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Result<&[u8], ModelError> {
        let s = i
            .checked_add(n)
            .and_then(|end| data.get(*i..end))
            .ok_or_else(|| bad(path, "the pickle ends early"))?;
        *i += n;
        Ok(s)
    };
    let u32le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let pop = |stack: &mut Vec<V>, marks: &[usize]| {
        if stack.len() <= marks.last().copied().unwrap_or(0) {
            return Err(bad(path, "the pickle pops an empty stack"));
        }
        stack
            .pop()
            .ok_or_else(|| bad(path, "the pickle pops an empty stack"))
    };
    let pop_mark = |stack: &mut Vec<V>, marks: &mut Vec<usize>| -> Result<Vec<V>, ModelError> {
        let at = marks
            .pop()
            .ok_or_else(|| bad(path, "the pickle has no MARK"))?;
        Ok(stack.split_off(at.min(stack.len())))
    };
    // the value on top of the stack, which an APPEND, SETITEM or BUILD changes
    let top = |stack: &[V], marks: &[usize], what: &str| -> Result<V, ModelError> {
        if stack.len() <= marks.last().copied().unwrap_or(0) {
            return Err(bad(path, format!("{what} on an empty stack")));
        }
        stack
            .last()
            .cloned()
            .ok_or_else(|| bad(path, format!("{what} on an empty stack")))
    };
    loop {
        let op = take(&mut i, 1)?[0];
        heap.charge(1)?;
        match op {
            0x80 => {
                take(&mut i, 1)?; // PROTO
            }
            0x95 => {
                take(&mut i, 8)?; // FRAME
            }
            b'.' => {
                let v = pop(&mut stack, &marks)?;
                return Ok((v, i));
            }
            b'(' => marks.push(stack.len()),
            b')' => stack.push(V::Tuple(heap.container(Vec::new())?)),
            b']' => stack.push(V::List(heap.container(Vec::new())?)),
            b'}' => stack.push(V::Dict(heap.container(Vec::new())?)),
            b'N' => stack.push(V::None),
            0x88 | 0x89 => stack.push(V::Scalar),
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
                    stack.push(V::Long(Rc::from(b)));
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
                        usize::try_from(u64::from_le_bytes(a)).unwrap_or(usize::MAX)
                    }
                    _ => take(&mut i, 1)?[0] as usize,
                };
                let s = take(&mut i, n)?;
                stack.push(V::Str(Rc::from(String::from_utf8_lossy(s))));
            }
            b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'q' => take(&mut i, 1)?[0] as u32,
                    b'r' => u32le(take(&mut i, 4)?),
                    _ => memo.len() as u32,
                };
                let v = top(&stack, &marks, "MEMOIZE")?;
                memo.insert(k, v);
            }
            b'h' | b'j' => {
                let k = if op == b'h' {
                    take(&mut i, 1)?[0] as u32
                } else {
                    u32le(take(&mut i, 4)?)
                };
                // a handle: the memo's object itself, shared, as Python's pickle does
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
                let g = heap.resolve(&module, &name);
                stack.push(g);
            }
            0x93 => {
                let name = pop(&mut stack, &marks)?;
                let module = pop(&mut stack, &marks)?;
                let (V::Str(m), V::Str(n)) = (module, name) else {
                    return Err(bad(path, "STACK_GLOBAL without strings"));
                };
                let g = heap.resolve(&m, &n);
                stack.push(g);
            }
            b't' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(V::Tuple(heap.container(items)?));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < marks.last().copied().unwrap_or(0) + n {
                    return Err(bad(path, "the pickle's stack is too short"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(V::Tuple(heap.container(items)?));
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack, &marks)?]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                match top(&stack, &marks, "APPEND")? {
                    V::List(c) => heap.extend(c, items)?,
                    // appending to something refused changes nothing that is ever read
                    V::Refused(_) => {}
                    _ => return Err(bad(path, "APPEND outside a list")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack, &marks)?;
                    let k = pop(&mut stack, &marks)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack, &mut marks)?
                };
                if items.len() % 2 != 0 {
                    return Err(bad(path, "SETITEMS with a key but no value"));
                }
                match top(&stack, &marks, "SETITEMS")? {
                    V::Dict(c) => heap.extend(c, items)?,
                    V::Refused(_) => {}
                    _ => return Err(bad(path, "SETITEMS outside a dict")),
                }
            }
            b'Q' => {
                let pid = pop(&mut stack, &marks)?;
                let v = heap.persistent_load(pid)?;
                stack.push(v);
            }
            b'R' => {
                let args = pop(&mut stack, &marks)?;
                let callable = pop(&mut stack, &marks)?;
                let v = heap.reduce(callable, args)?;
                stack.push(v);
            }
            0x81 | 0x92 => {
                // NEWOBJ cls args, NEWOBJ_EX cls args kwargs
                if op == 0x92 {
                    pop(&mut stack, &marks)?;
                }
                pop(&mut stack, &marks)?;
                let class = pop(&mut stack, &marks)?;
                let v = heap.new_object(class)?;
                stack.push(v);
            }
            b'b' => {
                // BUILD: object state (OrderedDict's `_metadata`, a parameter's hooks) is
                // ignored; a refused object built with a module's `__dict__` is a model
                let state = pop(&mut stack, &marks)?;
                if let V::Refused(r) = top(&stack, &marks, "BUILD")? {
                    if heap.is_module_state(&state) {
                        heap.refused[r].model = true;
                    }
                }
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

/// Where each storage's bytes are, once the format has found them.
type Bytes<'a> = HashMap<usize, Cow<'a, [u8]>>;

/// The named tensors of a `torch.save` file. `key` picks a wrapped dict (`"state_dict"`,
/// `"model"`); without it a single wrapper of either name is unwrapped. A `module.` prefix
/// (DataParallel/DDP) is removed. Objects the allow-list does not know are an error only when
/// they are inside the dict returned (see the module's documentation for that and the bounds).
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
    let mut heap = Heap::new(path);
    if bytes.starts_with(b"PK\x03\x04") {
        read_zip(&bytes, key, &mut heap)
    } else {
        read_legacy(&bytes, key, &mut heap)
    }
}

/// The dict the caller asked for (see [`read_torch_file`]).
fn choose(heap: &Heap<'_>, object: &V, key: Option<&str>) -> Result<usize, ModelError> {
    let d = match object {
        V::Dict(d) => *d,
        V::Refused(r) => return Err(heap.refused_error(*r)),
        _ => return Err(heap.bad("is not a dict of tensors")),
    };
    let pairs = heap.items(d);
    // the last value under `name` (a later key replaces an earlier one, as in Python)
    let wrapped = |name: &str| {
        pairs.chunks(2).rev().find_map(|kv| match kv {
            [V::Str(s), V::Dict(inner)] if &**s == name => Some(Ok(*inner)),
            [V::Str(s), V::Refused(r)] if &**s == name => Some(Err(heap.refused_error(*r))),
            _ => None,
        })
    };
    // the keys that hold a dict: what --key can choose
    let choices = || {
        let keys: Vec<String> = pairs
            .chunks(2)
            .filter_map(|kv| match kv {
                [V::Str(s), V::Dict(_)] => Some(format!("`{}`", shown(s))),
                _ => None,
            })
            .take(20)
            .collect();
        if keys.is_empty() {
            "no key holds a dict".to_string()
        } else {
            format!("the keys that hold a dict: {}", keys.join(", "))
        }
    };
    if let Some(k) = key {
        return wrapped(k).unwrap_or_else(|| {
            Err(heap.bad(format!(
                "has no dict under the key `{}` ({})",
                shown(k),
                choices()
            )))
        });
    }
    if pairs.chunks(2).any(|kv| matches!(kv, [_, V::Tensor(_)])) {
        return Ok(d);
    }
    match (wrapped("state_dict"), wrapped("model")) {
        (Some(Ok(_)), Some(Ok(_))) => {
            Err(heap.bad("holds both `state_dict` and `model`: choose one with --key"))
        }
        (Some(Ok(s)), _) | (_, Some(Ok(s))) => Ok(s),
        (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
        (None, None) => {
            let refused = pairs.chunks(2).find_map(|kv| match kv {
                [_, V::Refused(r)] => Some(*r),
                _ => None,
            });
            match refused {
                Some(r) => Err(heap.refused_error(r)),
                None => Err(heap.bad(format!(
                    "holds no tensors and no `state_dict` or `model` dict ({}; choose one with --key)",
                    choices()
                ))),
            }
        }
    }
}

/// The named tensors of the dict `d`, after checking that nothing refused is inside it, that
/// no container inside it holds itself, and that it is nested at most [`MAX_DEPTH`] deep: an
/// iterative depth-first walk that visits each container once and knows each one's height.
fn entries(heap: &Heap<'_>, d: usize) -> Result<Vec<(String, usize)>, ModelError> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; heap.containers.len()];
    let mut height = vec![0usize; heap.containers.len()];
    let (mut first, mut model) = (None, None);
    // the path from `d`: each container and the index of its next item
    let mut path: Vec<(usize, usize)> = vec![(d, 0)];
    state[d] = OPEN;
    while let Some(&mut (c, ref mut next)) = path.last_mut() {
        let Some(v) = heap.items(c).get(*next) else {
            path.pop();
            state[c] = DONE;
            let h = 1 + heap
                .items(c)
                .iter()
                .map(|v| match v {
                    V::Tuple(x) | V::List(x) | V::Dict(x) => height[*x],
                    _ => 0,
                })
                .max()
                .unwrap_or(0);
            height[c] = h;
            if h > MAX_DEPTH {
                return Err(heap.too_deep());
            }
            continue;
        };
        *next += 1;
        match v {
            V::Tuple(x) | V::List(x) | V::Dict(x) => match state[*x] {
                NEW => {
                    state[*x] = OPEN;
                    path.push((*x, 0));
                    if path.len() > MAX_DEPTH {
                        return Err(heap.too_deep());
                    }
                }
                OPEN => {
                    return Err(heap.bad(
                        "a container in the state dict holds itself (a state dict never does)",
                    ))
                }
                _ => {}
            },
            V::Refused(r) => {
                first = first.or(Some(*r));
                if heap.refused[*r].model {
                    model = model.or(Some(*r));
                }
            }
            _ => {}
        }
    }
    if let Some(r) = model.or(first) {
        return Err(heap.refused_error(r));
    }
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    // one long name memoised and used for every entry would cost its length each time
    let mut name_bytes = 0usize;
    for kv in heap.items(d).chunks(2) {
        let [V::Str(name), V::Tensor(t)] = kv else {
            continue;
        };
        name_bytes += name.len();
        if name_bytes as u64 > MAX_PICKLE_BYTES {
            return Err(heap.bad(format!(
                "the names of its tensors take more than {MAX_PICKLE_BYTES} bytes"
            )));
        }
        let name = name.strip_prefix("module.").unwrap_or(name).to_string();
        match at.get(&name) {
            // the same key again replaces the value, as Python's dict does
            Some(&k) => out[k].1 = *t,
            None => {
                at.insert(name.clone(), out.len());
                out.push((name, *t));
            }
        }
    }
    if out.is_empty() {
        return Err(heap.bad("holds no tensors"));
    }
    Ok(out)
}

/// The storages the tensors use, each once.
fn used_storages(heap: &Heap<'_>, entries: &[(String, usize)]) -> Vec<usize> {
    let mut used: Vec<usize> = entries
        .iter()
        .map(|(_, t)| heap.tensors[*t].storage)
        .collect();
    used.sort_unstable();
    used.dedup();
    used
}

/// Checks every tensor's view against its storage (whose size is known by now) and the total
/// the tensors would take against the budget, before anything is allocated.
fn check_views(heap: &Heap<'_>, entries: &[(String, usize)]) -> Result<(), ModelError> {
    let mut storage_bytes: u64 = 0;
    for s in used_storages(heap, entries) {
        let st = &heap.storages[s];
        let n = st.numel.unwrap_or(0);
        storage_bytes = storage_bytes.saturating_add(n.saturating_mul(elt(st.kind)));
    }
    let budget = storage_bytes
        .saturating_mul(2)
        .saturating_add(MATERIALISE_SLACK);
    let mut total: u64 = 0;
    for (name, t) in entries {
        let t = &heap.tensors[*t];
        let st = &heap.storages[t.storage];
        let name = shown(name);
        let whose = |what: String| heap.bad(format!("tensor `{name}` {what}"));
        if t.size.len() != t.stride.len() {
            return Err(whose(format!(
                "has {} sizes but {} strides",
                t.size.len(),
                t.stride.len()
            )));
        }
        if t.size.iter().any(|&s| s < 0) {
            return Err(whose(format!("has a negative size {:?}", t.size)));
        }
        if t.stride.iter().any(|&s| s < 0) {
            return Err(whose(format!("has a negative stride {:?}", t.stride)));
        }
        if t.offset < 0 {
            return Err(whose(format!("has a negative storage offset {}", t.offset)));
        }
        let overflow = || whose(format!("has sizes {:?} whose product overflows", t.size));
        let numel = t
            .size
            .iter()
            .try_fold(1u64, |n, &s| n.checked_mul(s as u64))
            .ok_or_else(overflow)?;
        let bytes = numel.checked_mul(elt(st.kind)).ok_or_else(overflow)?;
        // libtorch computes contiguous strides from the sizes even of an empty tensor: their
        // product without the zeros, and each stride, must fit in an i64
        let strides_fit = t
            .size
            .iter()
            .filter(|&&s| s > 0)
            .try_fold(1u64, |n, &s| n.checked_mul(s as u64))
            .is_some_and(|n| n <= i64::MAX as u64 / elt(st.kind));
        if !strides_fit {
            return Err(overflow());
        }
        let have = st.numel.unwrap_or(0);
        if t.offset as u64 > have {
            return Err(whose(format!(
                "starts at element {} of storage {}, which holds {have}",
                t.offset,
                shown(&st.key)
            )));
        }
        if numel > 0 {
            // the highest element the view touches must be inside the storage
            let reach = t
                .size
                .iter()
                .zip(&t.stride)
                .try_fold(t.offset as u128, |r, (&size, &stride)| {
                    r.checked_add((size as u128 - 1).checked_mul(stride as u128)?)
                })
                .ok_or_else(overflow)?;
            if reach >= have as u128 {
                return Err(whose(format!(
                    "reaches element {reach} of storage {}, which holds {have}",
                    shown(&st.key)
                )));
            }
        }
        total = total.saturating_add(bytes);
        if total > budget {
            return Err(whose(format!(
                "takes the tensors read to {total} bytes, more than twice the {storage_bytes} \
                 bytes of their storages plus {} MiB: an expanded or overlapping view, which a \
                 state dict's parameters never are",
                MATERIALISE_SLACK >> 20
            )));
        }
    }
    Ok(())
}

fn elt(kind: Kind) -> u64 {
    kind.elt_size_in_bytes() as u64
}

/// The tensors, each a contiguous copy of its view (storages are made into tensors once).
fn materialise(
    heap: &Heap<'_>,
    entries: Vec<(String, usize)>,
    bytes: &Bytes<'_>,
) -> Result<Vec<(String, Tensor)>, ModelError> {
    let mut storages: HashMap<usize, Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        let t = &heap.tensors[t];
        let st = &heap.storages[t.storage];
        let storage = match storages.get(&t.storage) {
            Some(s) => s.shallow_clone(),
            None => {
                let raw = bytes
                    .get(&t.storage)
                    .ok_or_else(|| heap.bad(format!("storage {} is missing", shown(&st.key))))?;
                let numel = (raw.len() as u64 / elt(st.kind)) as i64;
                let s = Tensor::f_from_data_size(raw, &[numel], st.kind)?;
                storages.insert(t.storage, s.shallow_clone());
                s
            }
        };
        let tensor = storage
            .f_as_strided(&t.size, &t.stride, Some(t.offset))?
            .f_contiguous()?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// Reverses the bytes of each element (a big-endian archive on a little-endian host).
fn swap_bytes(raw: &mut [u8], kind: Kind) {
    let n = kind.elt_size_in_bytes();
    if n > 1 {
        raw.chunks_exact_mut(n).for_each(|e| e.reverse());
    }
}

/// Reads at most `limit` bytes of an entry; more is an error.
fn read_bounded(r: impl Read, limit: u64, what: &str, path: &Path) -> Result<Vec<u8>, ModelError> {
    let mut v = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut v)
        .map_err(|e| bad(path, format!("{what}: {e}")))?;
    if v.len() as u64 > limit {
        return Err(bad(path, format!("{what} is larger than {limit} bytes")));
    }
    Ok(v)
}

fn read_zip(
    bytes: &[u8],
    key: Option<&str>,
    heap: &mut Heap<'_>,
) -> Result<Vec<(String, Tensor)>, ModelError> {
    let path = heap.path;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(path, format!("not a readable zip ({e})")))?;
    // torch.jit.save's archives hold code and constants beside their data.pkl
    let scripted = zip.file_names().any(|n| match n {
        Ok(n) => n.ends_with("/constants.pkl") || n.contains("/code/"),
        Err(_) => false,
    });
    if scripted {
        return Err(bad(
            path,
            "is a TorchScript module (torch.jit.save), not a state dict: save model.state_dict() with torch.save",
        ));
    }
    let pkl = zip
        .file_names()
        .find_map(|n| match n {
            Ok(n) if n.ends_with("/data.pkl") || n == "data.pkl" => Some(n.into_owned()),
            _ => None,
        })
        .ok_or_else(|| bad(path, "the zip has no data.pkl (is it a torch.save file?)"))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let data = {
        let f = zip
            .by_name(&pkl)
            .map_err(|e| bad(path, format!("{}: {e}", shown(&pkl))))?;
        read_bounded(f, MAX_PICKLE_BYTES, &shown(&pkl), path)?
    };
    let big_endian = match zip.by_name(&format!("{prefix}byteorder")) {
        Ok(f) => {
            let order = read_bounded(f, 16, "byteorder", path)?;
            match order.as_slice() {
                b"little" => false,
                b"big" => true,
                other => {
                    return Err(bad(
                        path,
                        format!(
                            "its byteorder is `{}`; only `little` and `big` exist",
                            shown(&String::from_utf8_lossy(other))
                        ),
                    ))
                }
            }
        }
        // archives older than PyTorch 1.10 have no byteorder entry: little-endian
        Err(zip::result::ZipError::FileNotFound) => false,
        Err(e) => return Err(bad(path, format!("byteorder: {e}"))),
    };
    let (object, _) = unpickle(&data, heap)?;
    drop(data);
    let d = choose(heap, &object, key)?;
    let entries = entries(heap, d)?;
    let used = used_storages(heap, &entries);
    // each storage's entry must be stored and hold exactly the bytes its storage declares
    for &s in &used {
        let st = &heap.storages[s];
        let name = format!("{prefix}data/{}", st.key);
        let f = zip
            .by_name(&name)
            .map_err(|e| bad(path, format!("storage {} is missing ({e})", shown(&st.key))))?;
        if f.compression() != zip::CompressionMethod::Stored {
            return Err(bad(
                path,
                format!(
                    "entry {} is compressed ({}); torch.save never compresses, so this was not \
                     written by it",
                    shown(&name),
                    f.compression()
                ),
            ));
        }
        let e = elt(st.kind);
        let numel = match st.numel {
            Some(n) => n,
            None if f.size() % e == 0 => f.size() / e,
            None => {
                return Err(bad(
                    path,
                    format!("entry {} is not a whole number of elements", shown(&name)),
                ))
            }
        };
        if numel.checked_mul(e) != Some(f.size()) {
            return Err(bad(
                path,
                format!(
                    "entry {} holds {} bytes, but its storage declares {numel} elements of {e} bytes",
                    shown(&name),
                    f.size()
                ),
            ));
        }
        heap.storages[s].numel = Some(numel);
    }
    check_views(heap, &entries)?;
    let mut raw: Bytes<'_> = HashMap::new();
    for &s in &used {
        let st = &heap.storages[s];
        let name = format!("{prefix}data/{}", st.key);
        let want = st.numel.unwrap_or(0).saturating_mul(elt(st.kind));
        let f = zip
            .by_name(&name)
            .map_err(|e| bad(path, format!("{}: {e}", shown(&name))))?;
        let mut v = read_bounded(f, want, &shown(&name), path)?;
        if v.len() as u64 != want {
            return Err(bad(
                path,
                format!(
                    "entry {} ends after {} of its {want} bytes",
                    shown(&name),
                    v.len()
                ),
            ));
        }
        if big_endian {
            swap_bytes(&mut v, st.kind);
        }
        raw.insert(s, Cow::Owned(v));
    }
    materialise(heap, entries, &raw)
}

/// The legacy format's magic number, 0x1950a86a20f9469cfc6c, as LONG1 writes it.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

fn read_legacy(
    bytes: &[u8],
    key: Option<&str>,
    heap: &mut Heap<'_>,
) -> Result<Vec<(String, Tensor)>, ModelError> {
    let path = heap.path;
    if !bytes.starts_with(&[0x80]) {
        // safetensors: an 8-byte header length, then the JSON header
        if bytes.get(8) == Some(&b'{') {
            return Err(bad(
                path,
                "is a safetensors file: it needs no conversion (give it to --weights or --init-weights as it is)",
            ));
        }
        return Err(bad(path, "is neither safetensors, a zip nor a pickle"));
    }
    let mut at = 0;
    let mut next = |heap: &mut Heap<'_>| -> Result<V, ModelError> {
        let rest = bytes
            .get(at..)
            .ok_or_else(|| bad(path, "the file ends early"))?;
        let (v, n) = unpickle(rest, heap)?;
        at += n;
        Ok(v)
    };
    // magic number, protocol version, system info
    match next(heap)? {
        V::Long(m) if *m == LEGACY_MAGIC => {}
        V::Refused(r) => return Err(heap.refused_error(r)),
        _ => {
            return Err(bad(
                path,
                "is a pickle without torch.save's magic number (not a torch.save file)",
            ))
        }
    }
    for _ in 0..2 {
        if let V::Refused(r) = next(heap)? {
            return Err(heap.refused_error(r));
        }
    }
    let object = next(heap)?;
    let keys = next(heap)?;
    let V::List(keys) = keys else {
        return Err(bad(path, "the legacy storage list is not a list"));
    };
    // the storages follow in the list's order, each an 8-byte element count and its elements
    let mut found: HashMap<usize, (usize, usize)> = HashMap::new();
    for k in heap.items(keys).to_vec() {
        let V::Str(key) = k else {
            return Err(bad(path, "a legacy storage key that is not a string"));
        };
        let s = *heap.storage_index.get(&key).ok_or_else(|| {
            bad(
                path,
                format!("storage {} is listed but no tensor names it", shown(&key)),
            )
        })?;
        let head = at
            .checked_add(8)
            .and_then(|end| bytes.get(at..end))
            .ok_or_else(|| bad(path, "the file ends inside the storages"))?;
        let mut a = [0u8; 8];
        a.copy_from_slice(head);
        let numel = u64::from_le_bytes(a);
        at += 8;
        let st = &heap.storages[s];
        if st.numel.is_some_and(|n| n != numel) {
            return Err(bad(
                path,
                format!(
                    "storage {} holds {numel} elements but is declared with {}",
                    shown(&key),
                    st.numel.unwrap_or(0)
                ),
            ));
        }
        let len = numel
            .checked_mul(elt(st.kind))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= bytes.len() - at)
            .ok_or_else(|| {
                bad(
                    path,
                    format!("the file ends inside storage {}", shown(&key)),
                )
            })?;
        heap.storages[s].numel = Some(numel);
        found.insert(s, (at, len));
        at += len;
    }
    let d = choose(heap, &object, key)?;
    let entries = entries(heap, d)?;
    let mut raw: Bytes<'_> = HashMap::new();
    for s in used_storages(heap, &entries) {
        let &(from, len) = found.get(&s).ok_or_else(|| {
            bad(
                path,
                format!("storage {} is missing", shown(&heap.storages[s].key)),
            )
        })?;
        raw.insert(s, Cow::Borrowed(&bytes[from..from + len]));
    }
    check_views(heap, &entries)?;
    materialise(heap, entries, &raw)
}
