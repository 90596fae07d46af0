#define _DEFAULT_SOURCE /* usleep */
/* nn_sgemm beside OpenBLAS cblas_sgemm in the same run: GFLOP/s (median of
   alternating repetitions), the ratio nn/OpenBLAS and percent of peak, at 1
   and 2 threads.  The peak is measured at start-up by a timed loop of
   independent FMA chains (AVX-512, else AVX2+FMA, else plain C) at 1 thread
   and at each team size used, so it reflects this machine's clock and load
   today.  Build and run (let OpenBLAS pick its best kernel):
     gcc -O3 -march=native -fopenmp -I. bench/gemm.c -o gemm_bench -lopenblas -lm
     env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./gemm_bench [reps] [filter]
   filter: only rows whose label contains it ("" for all); threads: a list
   of digits such as 12 (the default) or 2. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

/* OpenBLAS extensions (declared in its cblas.h; repeated for other headers). */
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

#include "peak.h"

/* peak[nt]: measured GFLOP/s of nt threads (0 when not measured). */
static double peak[10];

typedef struct shape {
    const char *label;
    int ta, tb, M, N, K;
} shape;

static const shape shapes[] = {
    {"square 64", 0, 0, 64, 64, 64},
    {"square 128", 0, 0, 128, 128, 128},
    {"square 256", 0, 0, 256, 256, 256},
    {"square 512", 0, 0, 512, 512, 512},
    {"square 1024", 0, 0, 1024, 1024, 1024},
    {"square 2048", 0, 0, 2048, 2048, 2048},
    /* MLP 784-256-128-10, batch 128: forward x W^T (NT), backward dX = dY W
       (NN) and dW = dY^T X (TN). */
    {"fwd 128x784x256 NT", 0, 1, 128, 256, 784},
    {"dX  128x784x256 NN", 0, 0, 128, 784, 256},
    {"dW  128x784x256 TN", 1, 0, 256, 784, 128},
    {"fwd 128x256x128 NT", 0, 1, 128, 128, 256},
    {"dX  128x256x128 NN", 0, 0, 128, 256, 128},
    {"dW  128x256x128 TN", 1, 0, 128, 256, 128},
    {"fwd 128x128x10 NT", 0, 1, 128, 10, 128},
    {"dX  128x128x10 NN", 0, 0, 128, 128, 10},
    {"dW  128x128x10 TN", 1, 0, 10, 128, 128},
    /* batch 256, 784 -> 128 */
    {"fwd 256x784x128 NT", 0, 1, 256, 128, 784},
    {"dX  256x784x128 NN", 0, 0, 256, 784, 128},
    {"dW  256x784x128 TN", 1, 0, 128, 784, 256},
};

typedef struct operands {
    const shape *s;
    float *A, *B, *C;
    int lda, ldb, ldc;
} operands;

static void call_nn(const operands *o) {
    const shape *s = o->s;
    nn_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, o->A, o->lda, o->B, o->ldb, 0.0f, o->C, o->ldc);
}

static void call_blas(const operands *o) {
    const shape *s = o->s;
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f, o->A, o->lda,
                o->B, o->ldb, 0.0f, o->C, o->ldc);
}

static int cur_threads = 1;

/* Seconds per call over a batch of n calls, after one untimed call.  With
   threads, each side's idle workers keep spinning for a while after its last
   call (OpenBLAS's pthreads for up to ~2^28 cycles, libgomp's for ~1 ms) and
   would steal the other side's cores: pause until they have gone to sleep. */
static double time_batch(void (*fn)(const operands *), const operands *o, int n) {
    double t0, t;
    int i;
    fn(o);
    t0 = nn_time();
    for (i = 0; i < n; i++) fn(o);
    t = (nn_time() - t0) / n;
    if (cur_threads > 1) usleep(fn == call_blas ? 200000 : 20000);
    return t;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    const char *filter = argc > 2 && argv[2][0] ? argv[2] : NULL;
    const char *tlist = argc > 3 ? argv[3] : "12";
    size_t si;
    int ti;
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    printf("OpenBLAS core: %s   OPENBLAS_CORETYPE=%s\n", openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
    /* The peak at 1 thread, at the whole OpenMP team and at each thread
       count asked for; a count that cannot be measured (no OpenMP) falls
       back to that many times the 1-thread peak. */
    {
        int team = 1, k;
        long iters;
#ifdef _OPENMP
        team = omp_get_max_threads();
        if (team > 9) team = 9;
#endif
        /* OpenBLAS's worker threads start at load time and spin (yielding)
           for up to ~2^28 cycles before they sleep; measured meanwhile, the
           peak of two threads can come out at half.  Wait them out. */
        usleep(200000);
        iters = peak_iters();
        peak[1] = measure_peak(1, iters);
        printf("measured FMA peak (%s, %d chains, best of 5): 1 thread %.1f GFLOP/s", PEAK_ISA,
               CHAINS, peak[1]);
        for (k = 2; k <= 9; k++) {
            int want = k == team || strchr(tlist, '0' + k) != NULL;
            if (!want) continue;
#ifdef _OPENMP
            peak[k] = measure_peak(k, iters);
            printf(", %d threads %.1f GFLOP/s%s", k, peak[k], k == team ? " (team)" : "");
#else
            peak[k] = k * peak[1];
            printf(", %d threads %.1f GFLOP/s (%d x 1 thread, no OpenMP)", k, peak[k], k);
#endif
        }
        printf("\n");
        usleep(20000); /* let the team's workers go to sleep */
    }
    printf("median (and best) of %d alternating repetitions; %%pk: of the measured peak at the "
           "row's thread count\n\n", reps);
    printf("%-20s %3s %9s %9s %6s %6s %6s | %8s %8s %6s\n", "shape", "thr", "nn GF/s",
           "blas GF/s", "ratio", "nn %pk", "bl %pk", "nn best", "bl best", "ratio");
    for (ti = 0; tlist[ti] >= '1' && tlist[ti] <= '9'; ti++) {
        int nt = tlist[ti] - '0';
        nn_set_threads(nt);
        cur_threads = nt;
        openblas_set_num_threads(nt);
        for (si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const shape *s = &shapes[si];
            operands o;
            size_t na = (size_t)s->M * s->K, nb = (size_t)s->K * s->N, nc = (size_t)s->M * s->N, i;
            double tn[64], tb[64], flops = 2.0 * s->M * s->N * s->K, one, gn, gb, bn, bb;
            int n, r;
            if (filter && !strstr(s->label, filter)) continue;
            o.s = s;
            o.A = (float *)malloc(na * sizeof(float));
            o.B = (float *)malloc(nb * sizeof(float));
            o.C = (float *)malloc(nc * sizeof(float));
            for (i = 0; i < na; i++) o.A[i] = nn_rand_uniform() - 0.5f;
            for (i = 0; i < nb; i++) o.B[i] = nn_rand_uniform() - 0.5f;
            o.lda = s->ta ? s->M : s->K;
            o.ldb = s->tb ? s->K : s->N;
            o.ldc = s->N;
            /* Batches of about 20 ms each. */
            one = time_batch(call_blas, &o, 1);
            n = (int)(0.02 / (one > 1e-9 ? one : 1e-9));
            if (n < 1) n = 1;
            for (r = 0; r < reps; r++) {
                if (r & 1) {
                    tb[r] = time_batch(call_blas, &o, n);
                    tn[r] = time_batch(call_nn, &o, n);
                } else {
                    tn[r] = time_batch(call_nn, &o, n);
                    tb[r] = time_batch(call_blas, &o, n);
                }
            }
            qsort(tn, (size_t)reps, sizeof(double), cmp_double);
            qsort(tb, (size_t)reps, sizeof(double), cmp_double);
            gn = flops / tn[reps / 2] * 1e-9;
            gb = flops / tb[reps / 2] * 1e-9;
            bn = flops / tn[0] * 1e-9;
            bb = flops / tb[0] * 1e-9;
            printf("%-20s %3d %9.1f %9.1f %6.2f %5.0f%% %5.0f%% | %8.1f %8.1f %6.2f\n", s->label,
                   nt, gn, gb, gn / gb, 100.0 * gn / peak[nt],
                   100.0 * gb / peak[nt], bn, bb, bn / bb);
            fflush(stdout);
            free(o.A);
            free(o.B);
            free(o.C);
        }
    }
    return 0;
}
