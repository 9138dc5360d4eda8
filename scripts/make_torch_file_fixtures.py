"""Makes the `torch.save` fixtures of crates/resnext-model/tests/torch_file.rs, in
crates/resnext-model/tests/fixtures/torch/ (committed; the tests never run Python):

    ~/.cache/resnext/torch-2.13.0/bin/pip install safetensors
    ~/.cache/resnext/torch-2.13.0/bin/python scripts/make_torch_file_fixtures.py

- zip.pth / legacy.pth: one OrderedDict in both formats: float32, a view into a shared storage
  (offset and strides), float16, bfloat16, an int64 scalar, a transposed (non-contiguous) view.
- wrapped.pth: {"state_dict": the same with DataParallel's `module.` prefix, "epoch": 3}.
- expected.safetensors: the tensors as they should read back (contiguous).
- ambiguous.pth: {"state_dict": the same, "model": the same with every float + 1, "epoch": 5}:
  readers must be told which (`--key`).
- hostile_legacy.pth, hostile_zip.pth: pickles that call `os.system` / `builtins.eval`; a reader
  that executed them would run a command. Ours must refuse them, naming the global.
"""

import collections
import io
import os
import pickle
import zipfile

import torch
from safetensors.torch import save_file

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "resnext-model", "tests", "fixtures", "torch",
)


class System:
    def __reduce__(self):
        return (os.system, ("echo this-must-never-run",))


class Eval:
    def __reduce__(self):
        return (eval, ("1+1",))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    base = torch.arange(12, dtype=torch.float32)
    m = torch.randn(3, 4)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(2, 3)
    sd["shared.base"] = base
    sd["shared.view"] = base[2:8].view(2, 3)
    sd["half"] = torch.randn(4).half()
    sd["bf16"] = torch.randn(4).bfloat16()
    sd["count"] = torch.tensor(7)
    sd["transposed"] = m.t()
    torch.save(sd, os.path.join(OUT, "zip.pth"))
    torch.save(sd, os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)
    wrapped = {"state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items()), "epoch": 3}
    torch.save(wrapped, os.path.join(OUT, "wrapped.pth"))
    save_file({k: v.clone().contiguous() for k, v in sd.items()}, os.path.join(OUT, "expected.safetensors"))
    # two candidate dicts: a reader must be told which (--key); "model" holds every float + 1
    other = collections.OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in sd.items())
    torch.save({"state_dict": sd, "model": other, "epoch": 5}, os.path.join(OUT, "ambiguous.pth"))
    with open(os.path.join(OUT, "hostile_legacy.pth"), "wb") as f:
        f.write(pickle.dumps(System(), protocol=2))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Eval(), protocol=2))
        z.writestr("archive/version", "3\n")
    with open(os.path.join(OUT, "hostile_zip.pth"), "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main()
