#!/bin/sh
# nn.h vs PyTorch on the Fashion-MNIST MLP, alternating the two sides, at 1 and
# 2 threads; prints each run, the medians and the ratios, and bench/cores.c's
# measure of the two cores (before and after the rounds: on a virtual machine
# the 2-thread figures follow where the host put the vCPUs).
# Usage: bench/train_mlp.sh [rounds] [epochs]   (from the repository root)
ROUNDS=${1:-3}; EPOCHS=${2:-3}
mkdir -p build
cc -std=gnu99 -O3 -march=native -fopenmp -I. bench/train_mlp.c -o build/bench_train_mlp -lm || exit 1
cc -std=gnu99 -O3 -march=native -fopenmp -I. bench/cores.c -o build/bench_cores -lm || exit 1
before=$(build/bench_cores)
out=build/train_mlp.txt; : > $out
for r in $(seq 1 $ROUNDS); do
  for t in 1 2; do
    OMP_NUM_THREADS=$t build/bench_train_mlp $t $EPOCHS | tee -a $out
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
      /usr/bin/python3 bench/pytorch/train_mlp.py $t $EPOCHS | tee -a $out
  done
done
python3 - "$out" <<'PY'
import sys, re, statistics as st
rows = [dict(kv.split("=") for kv in l.split()[1:]) | {"who": l.split()[0]} for l in open(sys.argv[1])]
med = lambda who, t, k: st.median(float(r[k]) for r in rows if r["who"] == who and r["threads"] == str(t))
print("\nmedians over rounds (seconds per epoch, peak RSS MB, test accuracy)")
for t in (1, 2):
    a, b = med("nn.h", t, "median_epoch_s"), med("pytorch", t, "median_epoch_s")
    print(f"threads={t}: nn.h {a:.3f} s  pytorch {b:.3f} s  speedup {b/a:.2f}x | "
          f"rss nn.h {med('nn.h', t, 'peak_rss_mb'):.0f} MB pytorch {med('pytorch', t, 'peak_rss_mb'):.0f} MB "
          f"(ratio {med('nn.h', t, 'peak_rss_mb')/med('pytorch', t, 'peak_rss_mb'):.2f}) | "
          f"acc nn.h {med('nn.h', t, 'test_acc'):.4f} pytorch {med('pytorch', t, 'test_acc'):.4f}")
print(f"nn.h 2-thread speedup over its 1 thread: {med('nn.h',1,'median_epoch_s')/med('nn.h',2,'median_epoch_s'):.2f}x")
PY
echo "before the rounds: $before"
echo "after the rounds:  $(build/bench_cores)"
