#!/bin/sh
# Before/after: the benchmarks of this folder for an older nn.h (a checkout or
# `git archive REV nn.h bench | tar x -C DIR`) and this tree, alternating, each
# side against its reference (OpenBLAS, PyTorch) in the same run.
# Usage: bench/compare.sh BASE_DIR [OUT_DIR]   (from the repository root)
BASE=${1:?usage: bench/compare.sh BASE_DIR [OUT_DIR]}; NEW=$(pwd); OUT=${2:-build/compare}
mkdir -p "$OUT"
for d in "$BASE" "$NEW"; do
  (cd "$d" && mkdir -p build && \
   gcc -O3 -march=native -fopenmp -I. bench/gemm.c -o build/gemm_bench -lopenblas -lm && \
   gcc -std=c99 -O3 -march=native -fopenmp -I. bench/conv.c -o build/bench_conv -lm) || exit 1
done
lscpu | grep 'Model name' > "$OUT/cpu.txt"
for r in 1 2; do for d in "$BASE" "$NEW"; do
  echo "== gemm $d round $r" >> "$OUT/gemm.txt"
  (cd "$d" && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE build/gemm_bench 5) >> "$OUT/gemm.txt" 2>&1
done; done
for t in 1 2; do for d in "$BASE" "$NEW"; do
  echo "== conv $d threads $t" >> "$OUT/conv.txt"
  (cd "$d" && env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
    /usr/bin/python3 bench/pytorch/conv.py --threads $t --rounds 2 --reps 5 --nn build/bench_conv) >> "$OUT/conv.txt" 2>&1
done; done
for d in "$BASE" "$NEW"; do
  echo "== mlp $d" >> "$OUT/mlp.txt"
  (cd "$d" && sh bench/train_mlp.sh 2 3) >> "$OUT/mlp.txt" 2>&1
done
echo "results in $OUT"
