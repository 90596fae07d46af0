/* The FMA peak of this machine, measured: a timed loop of independent
   multiply-add chains (AVX-512, else AVX2+FMA, else plain C) on one thread or
   a team.  Shared by bench/gemm.c and bench/cores.c; include after nn.h (it
   uses nn_time). */
#ifndef NN_BENCH_PEAK_H
#define NN_BENCH_PEAK_H
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

/* ---- peak FMA throughput, measured ----
   fma_chains runs CHAINS independent multiply-add chains for iters steps
   (enough chains to cover the FMA latency on every port) and returns their
   sum, which the caller stores, so the loop cannot be elided; the seed comes
   from the caller at run time, so it cannot be folded either. */
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
/* one body for both vector widths */
#if defined(__AVX512F__)
#define PEAK_ISA "AVX-512 _mm512_fmadd_ps"
#define LANES 16
#define VEC __m512
#define VSET1 _mm512_set1_ps
#define VFMA _mm512_fmadd_ps
#define VADD _mm512_add_ps
#define VSTORE _mm512_storeu_ps
#else
#define PEAK_ISA "AVX2 _mm256_fmadd_ps"
#define LANES 8
#define VEC __m256
#define VSET1 _mm256_set1_ps
#define VFMA _mm256_fmadd_ps
#define VADD _mm256_add_ps
#define VSTORE _mm256_storeu_ps
#endif
#define CHAINS 12
static float fma_chains(long iters, float seed) {
    VEC a[CHAINS], s;
    const VEC b = VSET1(0.999f), c = VSET1(seed * 1e-3f);
    float out[LANES], sum = 0.0f;
    long it;
    int i;
    for (i = 0; i < CHAINS; i++) a[i] = VSET1(seed + (float)i);
    for (it = 0; it < iters; it++)
        for (i = 0; i < CHAINS; i++) a[i] = VFMA(a[i], b, c);
    s = a[0];
    for (i = 1; i < CHAINS; i++) s = VADD(s, a[i]);
    /* a store, not _mm512_reduce_add_ps: g++ 12 warns inside that one */
    VSTORE(out, s);
    for (i = 0; i < LANES; i++) sum += out[i];
    return sum;
}
#else
#define PEAK_ISA "plain C (as the compiler vectorizes it)"
#define CHAINS 16
#define LANES 8
static float fma_chains(long iters, float seed) {
    float a[CHAINS * LANES], b = 0.999f, c = seed * 1e-3f, sum = 0.0f;
    long it;
    int i;
    for (i = 0; i < CHAINS * LANES; i++) a[i] = seed + (float)i;
    for (it = 0; it < iters; it++)
        for (i = 0; i < CHAINS * LANES; i++) a[i] = a[i] * b + c;
    for (i = 0; i < CHAINS * LANES; i++) sum += a[i];
    return sum;
}
#endif
#define FLOPS_PER_ITER (2.0 * CHAINS * LANES)

static volatile float peak_sink;
static volatile float peak_seed = 1.0f;

/* Seconds for nt threads to run iters steps each (the team's wall time). */
static double fma_seconds(int nt, long iters) {
    float seed = peak_seed, sum = 0.0f;
    double t0 = nn_time(), t;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(+ : sum)
    sum += fma_chains(iters, seed + (float)omp_get_thread_num());
#else
    (void)nt;
    sum = fma_chains(iters, seed);
#endif
    t = nn_time() - t0;
    peak_sink = sum;
    return t;
}

/* Steps per thread for about 20 ms at the 1-thread rate.  (Calibrating a
   team instead would let one scheduling delay of the second thread, common
   on a loaded machine, shrink every later run to a few microseconds of work
   behind milliseconds of delay.) */
static long peak_iters(void) {
    long iters = 20000;
    double t;
    int pass;
    for (pass = 0; pass < 2; pass++) {
        t = fma_seconds(1, iters);
        iters = (long)(iters * 0.02 / (t > 1e-6 ? t : 1e-6));
        if (iters < 1000) iters = 1000;
    }
    return iters;
}

/* GFLOP/s of nt threads together: the best of 5 runs of iters steps each. */
static double measure_peak(int nt, long iters) {
    double best = 0.0;
    int r;
    fma_seconds(nt, 1000); /* start the team's threads */
    for (r = 0; r < 5; r++) {
        double g = nt * (double)iters * FLOPS_PER_ITER / fma_seconds(nt, iters) * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

#endif /* NN_BENCH_PEAK_H */
