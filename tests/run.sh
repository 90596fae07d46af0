#!/bin/sh
# Builds every tests/test_*.c in each configuration this machine can run
# (scalar, native SIMD, AVX2, OpenMP, AddressSanitizer+UBSan, clang, NEON under
# qemu, the file formats big-endian under qemu-s390x), plus the hygiene builds, runs them, and ends with "N passed, N failed".
# Usage: tests/run.sh [build-dir]   (run from the repository root)
B=${1:-build/test}
mkdir -p "$B"
passed=0
failed=0

have() { command -v "$1" >/dev/null 2>&1; }
cpu_has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }

# count <name> <output file>: add the "N passed, M failed" figures a test printed
# to this configuration's counters (kept in files: configurations run as
# parallel jobs).
count() {
    line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' "$2" | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $1: no summary line (crashed?)"; tail -n 20 "$2"; failed=$((failed + 1)); return
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" != 0 ]; then grep '^FAIL\|mismatch' "$2" | head -n 20; fi
    echo "  $1: $p passed, $f failed"
}

# runs_in <test> <config>: whether a test runs in that configuration.  The
# tests of the vector kernels' paths run in every one; the rest run the same
# code in every build and are covered by native, omp, clang and asan (AVX2
# on a machine that has AVX-512, the scalar build and NEON run only the
# former); a few run only in the configurations they are about.
runs_in() {
    case $1 in
    test_kernels) list="native scalar avx2 asan neon" ;;         # the SIMD kernels of each ISA
    test_rng|test_checkpoint) list="native omp asan" ;;            # streams, thread teams, resume at 1 and 2 threads
    test_alloc|test_autograd_hard|test_data|test_io|test_modules_hard)
        list="native asan" ;;                                      # io, data, alloc, modules, autograd
    test_gemm|test_conv|test_act|test_norm|test_ops|test_infer|test_attn|test_seq|test_loss|test_optimizers|test_quant|test_fuse|test_rnnmt)
        list="native scalar avx2 omp clang asan neon" ;;           # the vector kernels
    *) list="native omp clang asan" ;;
    esac
    case " $list " in *" $2 "*) return 0 ;; esac
    return 1
}

# build_run <config> <runner> <compiler and flags...>: build and run every test
# in one configuration; its counts go to $B/<config>.res.
build_run() {
    cfg=$1; runner=$2; shift 2
    passed=0; failed=0; t_cfg=$(date +%s)
    echo "== $cfg: $*"
    impl="$B/impl.$cfg.o"
    if ! "$@" -Itests -I. -c tests/impl.c -o "$impl" >"$impl.build" 2>&1 || [ -s "$impl.build" ]; then
        echo "FAIL impl.$cfg: build failed or warned"; head -n 20 "$impl.build"; failed=$((failed + 1))
        echo "$passed $failed" > "$B/$cfg.res"; return
    fi
    for src in ${SRCS:-tests/test_*.c}; do
        name=$(basename "$src" .c)
        exe="$B/$name.$cfg"
        if [ -z "$SRCS" ] && ! runs_in "$name" "$cfg"; then continue; fi
        # A test that guards its NN_IMPLEMENTATION links the shared object
        # (tests/impl.c: allocation and write hooks and private functions
        # and state are reached through tests/seams.h); one that compiled
        # the implementation itself would be slow to build (none does).
        if grep -q '^#ifndef NN_TEST_LINKED' "$src"; then
            def=-DNN_TEST_LINKED; link="$impl"
        else
            def=""; link=""
        fi
        if ! "$@" $def -Itests -I. "$src" $link -o "$exe" -lm >"$exe.build" 2>&1; then
            echo "FAIL $name.$cfg: build failed"; head -n 20 "$exe.build"; failed=$((failed + 1)); continue
        fi
        if [ -s "$exe.build" ]; then
            echo "FAIL $name.$cfg: warnings"; head -n 20 "$exe.build"; failed=$((failed + 1))
        fi
        $runner "$exe" >"$exe.out" 2>&1
        count "$name.$cfg" "$exe.out"
    done
    echo "$passed $failed" > "$B/$cfg.res"
    echo "  ($cfg took $(( $(date +%s) - t_cfg )) s)"
}

W="-std=c99 -Wall -Wextra -Wpedantic"
ASAN="-O1 -g -march=native -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# The two jobs share the cores: threads that sleep when idle do not starve each other.
export OMP_WAIT_POLICY=passive
# The hygiene builds and the documentation and example checks run at the
# end of the two jobs (each on its own core); their counts go to $B/<part>.res.
hyg() { # hyg <what> <command...>: a build that must succeed without a warning
    what=$1; shift
    out="$B/hyg.$hyg_job.out"
    if "$@" >"$out" 2>&1 && [ ! -s "$out" ]; then passed=$((passed + 1)); echo "  ok: $what"
    else failed=$((failed + 1)); echo "FAIL hygiene: $what"; head -n 20 "$out"; fi
}
STRICT="-Wall -Wextra -Wpedantic -Werror"
hygiene_builds() {
    passed=0; failed=0; t_hyg=$(date +%s); hyg_job=hygiene
    echo "== hygiene builds"
    hyg "nn.h alone under -Wshadow -Wdouble-promotion -Wstrict-prototypes (gcc, clang)" sh -c "gcc -std=c99 $STRICT -Wshadow -Wdouble-promotion -Wstrict-prototypes -march=native -fopenmp -I. -c tests/hygiene/tu1.c -o $B/tu1.o && if command -v clang >/dev/null; then clang -std=c99 $STRICT -Wshadow -Wdouble-promotion -Wstrict-prototypes -I. -c tests/hygiene/tu1.c -o $B/tu1c.o; fi"
    hyg "gcc C99 two translation units" sh -c "gcc -std=c99 $STRICT -I. tests/hygiene/tu1.c tests/hygiene/tu2.c -o $B/two_tu -lm && $B/two_tu"
    hyg "gcc C99 NN_STATIC" sh -c "gcc -std=c99 $STRICT -I. -DNN_STATIC tests/hygiene/static_main.c -o $B/static_tu -lm && $B/static_tu"
    hyg "g++ C++ two translation units (-O2 -march=native -fopenmp)" sh -c "g++ -x c++ $STRICT -O2 -march=native -fopenmp -I. tests/hygiene/tu1.c tests/hygiene/tu2.c -o $B/two_tu_cpp -lm && $B/two_tu_cpp"
    if have clang; then
        hyg "clang C99 and clang++" sh -c "clang -std=c99 $STRICT -I. tests/hygiene/tu1.c tests/hygiene/tu2.c -o $B/two_tu_clang -lm && clang++ -x c++ $STRICT -I. tests/hygiene/tu1.c tests/hygiene/tu2.c -o $B/two_tu_clangpp -lm"
    fi
    echo "$passed $failed" > "$B/hygiene.res"
    echo "  (hygiene builds took $(( $(date +%s) - t_hyg )) s)"
}
doc_and_example_checks() {
    passed=0; failed=0; t_doc=$(date +%s); hyg_job=docs
    echo "== documentation blocks and examples"
    # Every C block of README.md and docs/*.md and the front-page example of nn.h,
    # each a counted pass or fail (tests/doc_blocks.sh says how blocks are marked).
    sh tests/doc_blocks.sh "$B/docs" > "$B/docs.out" 2>&1
    grep '^FAIL\|^    ' "$B/docs.out" | head -n 40
    count "documentation code blocks" "$B/docs.out" > "$B/docs.count"
    tail -n 1 "$B/docs.count"
    echo "  (documentation blocks took $(( $(date +%s) - t_doc )) s)"
    t_ex=$(date +%s)
    # The examples' own code (the implementation they include is built above in
    # every configuration; NN__IMPLEMENTATION_DONE skips it here).
    for ex in examples/*.c; do
        hyg "example $ex builds" gcc -std=c99 $STRICT -O1 -DNN__IMPLEMENTATION_DONE -I. -c "$ex" -o "$B/example.o"
    done
    echo "  (examples took $(( $(date +%s) - t_ex )) s)"
    echo "$passed $failed" > "$B/docs.res"
    echo "  (documentation blocks and examples took $(( $(date +%s) - t_doc )) s)"
}
rm -f "$B"/*.res
# Two jobs, one per core, of about the same CPU time (compiling the
# implementation once per configuration and the tests against it dominates;
# asan, the slowest configuration, starts first).
(
    build_run asan "" gcc $W $ASAN
    if have aarch64-linux-gnu-gcc && have qemu-aarch64; then
        build_run neon "qemu-aarch64 -L /usr/aarch64-linux-gnu" aarch64-linux-gnu-gcc $W -O2
    else
        echo "== NEON skipped (needs gcc-aarch64-linux-gnu and qemu-user)"
    fi
    # Big-endian: the file readers and writers (safetensors, checkpoints, CSV, IDX)
    # must read and write the same bytes on either byte order.
    if have s390x-linux-gnu-gcc && have qemu-s390x; then
        SRCS="tests/test_io.c tests/test_checkpoint.c tests/test_csv.c tests/test_data.c"
        build_run bigendian "qemu-s390x -L /usr/s390x-linux-gnu" s390x-linux-gnu-gcc $W -O2
        SRCS=
    else
        echo "== big-endian skipped (needs gcc-s390x-linux-gnu and qemu-user)"
    fi
    doc_and_example_checks
) > "$B/job_neon.log" 2>&1 &
(
    build_run native "" gcc $W -O2 -march=native
    build_run scalar "" gcc $W -O2 -DNN_NO_SIMD
    if cpu_has avx2 && cpu_has fma; then build_run avx2 "" gcc $W -O2 -mavx2 -mfma; fi
    build_run omp "" gcc $W -O2 -march=native -fopenmp
    if have clang; then build_run clang "" clang $W -O2 -march=native; fi
    hygiene_builds
) > "$B/job_main.log" 2>&1
wait
cat "$B/job_main.log" "$B/job_neon.log"
passed=0; failed=0
for r in "$B"/*.res; do
    read p f < "$r"
    passed=$((passed + p)); failed=$((failed + f))
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
