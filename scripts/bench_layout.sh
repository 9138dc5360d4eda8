#!/usr/bin/env bash
# NCHW against channels-last for each precision, the table behind `channels_last = "auto"`
# (docs/performance.md, "precision auto"). ABBA rounds of `resnext bench` (release build):
#
#   scripts/bench_layout.sh [ROUNDS]                         # this CPU as it is
#   ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 scripts/bench_layout.sh   # as a CPU without AVX-512
#   PRECISIONS=fp32 scripts/bench_layout.sh 2                 # one precision (emulated bf16 is slow)
#
# Prints one Markdown row per mode and precision: median img/s of each layout and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/resnext
rounds="${1:-1}"
one() { # mode precision layout-flag batch steps
    "$bin" bench "$1" --arch resnext50_32x4d --batch "$4" --steps "$5" --precision "$2" $3 2>/dev/null \
        | sed -n 's/^throughput: \([0-9.]*\) img\/s$/\1/p'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "| mode | precision | batch | NCHW img/s | channels-last img/s | channels-last / NCHW |"
echo "| --- | --- | --- | --- | --- | --- |"
for mode in train eval; do
    for precision in ${PRECISIONS:-fp32 bf16}; do
        batch=16; steps=3
        # emulated bf16 is 5-14x slower: a smaller measurement
        native=1
        grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo || native=0
        case "${ONEDNN_MAX_CPU_ISA:-ALL}" in ALL|DEFAULT|*BF16*|*AMX*|*AVX10*) ;; *) native=0 ;; esac
        if [ "$precision" = bf16 ] && [ "$native" = 0 ]; then batch=8; steps=2; fi
        a=(); b=()
        for _ in $(seq "$rounds"); do
            a+=("$(one "$mode" "$precision" "" "$batch" "$steps")")
            b+=("$(one "$mode" "$precision" --channels-last "$batch" "$steps")")
            b+=("$(one "$mode" "$precision" --channels-last "$batch" "$steps")")
            a+=("$(one "$mode" "$precision" "" "$batch" "$steps")")
        done
        ma=$(printf '%s\n' "${a[@]}" | median)
        mb=$(printf '%s\n' "${b[@]}" | median)
        echo "| $mode | $precision | $batch | $ma | $mb | $(awk -v x="$mb" -v y="$ma" 'BEGIN { printf "%.2f", x / y }') |"
    done
done
