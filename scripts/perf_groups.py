#!/usr/bin/env python3
"""Shares of a `perf record` profile by kind of work, from sample counts (not perf's rounded
percentages): the table of docs/performance.md's "where the training step goes".

usage: python3 scripts/perf_groups.py PERF.DATA [PERF.DATA ...]"""
import collections
import re
import subprocess
import sys


def kind(dso, sym):
    s = sym.lower()
    if dso.startswith("[JIT]") or "brgemm" in s or "jit_" in s:
        return "convolution kernels"
    if "dnnl::impl::cpu::x64::" in s and ("conv" in s or "gemm" in s):
        return "convolution kernels"
    if "im2col" in s or "col2im" in s:
        return "im2col/col2im"
    if "batch_norm" in s or "batchnorm" in s:
        return "BatchNorm"
    if dso.startswith("libgomp"):
        return "OpenMP waits"
    if "threshold" in s or "relu" in s or "clamp_min" in s:
        return "ReLU"
    if "python" in dso:
        return "Python, GC"
    if dso.startswith("[kernel"):
        return "kernel"
    if "vectorizedloop2d" in s:
        return "other element-wise"
    if "max_pool" in s:
        return "max pool"
    return "the rest"


def main():
    line = re.compile(r"\s+[\d.]+%\s+(\d+)\s+(\S+(?: tid \d+)?)\s+\[.\]\s+(.*)")
    for data in sys.argv[1:]:
        report = subprocess.run(
            ["perf", "report", "-i", data, "--no-children", "-n", "--sort", "dso,sym",
             "--stdio", "-g", "none"],
            capture_output=True, text=True, check=True).stdout
        counts, total = collections.Counter(), 0
        for m in filter(None, map(line.match, report.splitlines())):
            n = int(m.group(1))
            total += n
            counts[kind(m.group(2), m.group(3))] += n
        shares = ", ".join(f"{k} {100 * n / total:.1f}%" for k, n in counts.most_common())
        print(f"{data} ({total} samples): {shares}")


if __name__ == "__main__":
    main()
