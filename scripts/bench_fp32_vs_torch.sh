#!/usr/bin/env bash
# fp32 against PyTorch on the same CPU, ABBA rounds (ours, PyTorch, PyTorch, ours): train in NCHW
# and channels-last against PyTorch eager, eval with BatchNorm folded against `torch.compile`.
# Python's torch needs the CUDA install's venv (`cargo xtask setup --cuda`) and torchvision 0.28.
#
#   PY=~/.cache/resnext/torch-2.13.0/bin/python scripts/bench_fp32_vs_torch.sh [ROUNDS]
#   (prefix ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 for AVX2 code)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/resnext
py="${PY:-$HOME/.cache/resnext/torch-2.13.0/bin/python}"
rounds="${1:-2}"
tp() { sed -n 's/^throughput: \([0-9.]*\) img\/s$/\1/p'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
row() { # label, ours-args, theirs-args
    local a=() b=()
    for _ in $(seq "$rounds"); do
        a+=("$($bin bench $2 2>/dev/null | tp)")
        b+=("$($py scripts/bench_torch.py $3 2>/dev/null | tp)")
        b+=("$($py scripts/bench_torch.py $3 2>/dev/null | tp)")
        a+=("$($bin bench $2 2>/dev/null | tp)")
    done
    local ma mb
    ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
    echo "| $1 | $mb | $ma | $(awk -v x="$ma" -v y="$mb" 'BEGIN { printf "%.2f", x / y }') |"
}
echo "| setting (ResNeXt-50, batch 16, fp32) | PyTorch img/s | resnext img/s | ratio |"
echo "| --- | --- | --- | --- |"
row "train NCHW vs eager" "train --arch resnext50_32x4d --batch 16 --steps 3" "train resnext50_32x4d 16 fp32 nchw 3"
row "train channels-last vs eager" "train --arch resnext50_32x4d --batch 16 --steps 3 --channels-last" "train resnext50_32x4d 16 fp32 channels_last 3"
row "eval NCHW fold-bn vs torch.compile NCHW" "eval --arch resnext50_32x4d --batch 16 --steps 4 --fold-bn" "eval resnext50_32x4d 16 fp32 nchw 4 1 --compile"
row "eval channels-last fold-bn vs torch.compile channels-last" "eval --arch resnext50_32x4d --batch 16 --steps 4 --fold-bn --channels-last" "eval resnext50_32x4d 16 fp32 channels_last 4 1 --compile"
