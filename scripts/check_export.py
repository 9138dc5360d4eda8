"""Loads exported models the way their users will and prints their probabilities as JSON, for
the round-trip tests of `resnext export` (run with the setup venv's Python, which
`cargo xtask setup` gives torch, onnx and onnxruntime):

    python scripts/check_export.py --input x.f32 --shape 4,3,64,64 [--torchscript m.pt] [--onnx m.onnx]

- TorchScript: `torch.jit.load`, eval mode.
- ONNX: `onnx.checker.check_model(full_check=True)`, then ONNX Runtime on the CPU; the model's
  `metadata_props` are printed too.
"""

import argparse
import json

import numpy as np


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--torchscript")
    ap.add_argument("--onnx")
    a = ap.parse_args()
    shape = [int(v) for v in a.shape.split(",")]
    x = np.fromfile(a.input, dtype="<f4").reshape(shape)
    out = {}
    if a.torchscript:
        import torch

        m = torch.jit.load(a.torchscript)
        m.eval()
        with torch.no_grad():
            logits = m(torch.from_numpy(x)).numpy()
        out["torchscript"] = softmax(logits.astype(np.float64)).tolist()
    if a.onnx:
        import onnx
        import onnxruntime as ort

        model = onnx.load(a.onnx)
        onnx.checker.check_model(model, full_check=True)
        out["metadata"] = {p.key: p.value for p in model.metadata_props}
        sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
        (logits,) = sess.run(None, {sess.get_inputs()[0].name: x})
        out["onnx"] = softmax(logits.astype(np.float64)).tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
