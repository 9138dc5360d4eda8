"""The machine's GEMM peak as libtorch reaches it: square matrix products in bf16 and fp32 on all
cores (the same oneDNN/MKL kernels the convolutions use), best of a few sizes and repeats.
Used by `cargo xtask bench-floor` to turn img/s into a share of the physical limit.

usage: python gemm_peak.py [bf16|fp32 ...]   (with the setup venv)
Prints `bf16 GEMM peak: N GFLOP/s` and `fp32 GEMM peak: N GFLOP/s`, for the precisions named
(default: both, bf16 only where the CPU computes it natively: emulated bf16 is one core and tens
of times slower, minutes per size)."""
import sys
import time

import torch


def peak(dtype):
    best = 0.0
    for n in (1024, 2048):
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        torch.mm(a, b)
        for _ in range(5):
            reps = 3
            start = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b)
            dt = (time.perf_counter() - start) / reps
            best = max(best, 2 * n**3 / dt / 1e9)
    return best


def main():
    torch.manual_seed(0)
    asked = sys.argv[1:]
    if not asked:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        asked = ["bf16", "fp32"] if native else ["fp32"]
        if not native:
            print("bf16 GEMM peak: not measured (this CPU has no native bf16)")
    for name in asked:
        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[name]
        print(f"{name} GEMM peak: {peak(dtype):.0f} GFLOP/s")


if __name__ == "__main__":
    main()
