/* How far apart this machine's first two cores are, measured: what a
   2-thread figure on a virtual machine depends on.  Three numbers:
   - the FMA peak of 1 thread and of 2 at once (about 2x: two cores' worth
     of arithmetic; about 1x: the host put both vCPUs on one physical core);
   - the round trip of a cache line between the two threads (one writes a
     flag, the other answers): tens of ns between cores sharing a cache,
     hundreds across the chip's dies;
   - how fast a thread reads 256 KB that the other thread has just written,
     against 256 KB it wrote itself (an activation or a gradient crossing
     cores between two training ops; both fit in a core's L2).
   Build and run (the MLP's 2-thread figures in docs/performance.md come with
   these; bench/train_mlp.sh prints them before and after its rounds):
     gcc -O3 -march=native -fopenmp -I. bench/cores.c -o build/bench_cores -lm
     ./build/bench_cores
   One line: rtt_ns=... fma_1t=... fma_2t=... fma_ratio=... own_read_gbs=...
   other_read_gbs=... (the read is libc's memchr over the buffer). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TRIPS = 100000, READ_BYTES = 262144, READ_REPS = 31 };

#ifdef _OPENMP
#include "peak.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A flag alone in its cache line: thread 0 writes odd values, thread 1
   answers each with the next even one. */
static struct { volatile int v; char pad[60]; } flag;

static int flag_get(void) { return __atomic_load_n(&flag.v, __ATOMIC_ACQUIRE); }
static void flag_set(int x) { __atomic_store_n(&flag.v, x, __ATOMIC_RELEASE); }

/* Nanoseconds per round trip of the flag between the two threads: best of 3. */
static double round_trip_ns(void) {
    double best = 1e30;
    int rep;
    for (rep = 0; rep < 3; rep++) {
        double t0 = 0.0, t1 = 0.0;
        flag_set(0);
#pragma omp parallel num_threads(2)
        {
            int i;
            if (omp_get_num_threads() < 2) {
                /* one thread: no partner to answer */
            } else if (omp_get_thread_num() == 0) {
                t0 = nn_time();
                for (i = 0; i < TRIPS; i++) {
                    flag_set(2 * i + 1);
                    while (flag_get() != 2 * i + 2) {}
                }
                t1 = nn_time();
            } else {
                for (i = 0; i < TRIPS; i++) {
                    while (flag_get() != 2 * i + 1) {}
                    flag_set(2 * i + 2);
                }
            }
        }
        if (t1 > t0 && (t1 - t0) * 1e9 / TRIPS < best) best = (t1 - t0) * 1e9 / TRIPS;
    }
    return best < 1e30 ? best : 0.0;
}

static const void *volatile read_sink;

/* GB/s of thread 1 scanning READ_BYTES of buf just after thread `writer`
   filled it: median of READ_REPS.  The scan is libc's memchr for a byte
   that is not there (as fast a read as the machine has, whatever the
   compiler makes of a loop). */
static double read_gbs(unsigned char *buf, int writer) {
    double sec[READ_REPS];
    int rep;
    for (rep = 0; rep < READ_REPS; rep++) {
        double t = 0.0;
#pragma omp parallel num_threads(2)
        {
            int me = omp_get_thread_num();
            if (me == writer) memset(buf, 2 + 2 * (rep & 1), READ_BYTES);
#pragma omp barrier
            if (me == 1) {
                double t0 = nn_time();
                read_sink = memchr(buf, 1, READ_BYTES);
                t = nn_time() - t0;
            }
        }
        sec[rep] = t;
    }
    qsort(sec, READ_REPS, sizeof sec[0], cmp_double);
    if (sec[READ_REPS / 2] <= 0.0) return 0.0; /* (no second thread) */
    return (double)READ_BYTES / sec[READ_REPS / 2] * 1e-9;
}
#endif

int main(void) {
#ifdef _OPENMP
    long iters = peak_iters();
    double f1 = measure_peak(1, iters), f2 = measure_peak(2, iters);
    double rtt = round_trip_ns();
    unsigned char *buf = (unsigned char *)malloc(READ_BYTES);
    double own, other;
    if (!buf) return 1;
    memset(buf, 0, READ_BYTES);
    own = read_gbs(buf, 1);
    other = read_gbs(buf, 0);
    printf("cores: rtt_ns=%.0f fma_1t=%.1f fma_2t=%.1f fma_ratio=%.2f own_read_gbs=%.1f "
           "other_read_gbs=%.1f\n", rtt, f1, f2, f2 / f1, own, other);
    free(buf);
    if (rtt == 0.0) printf("cores: OpenMP gave one thread; nothing between two was measured\n");
#else
    printf("cores: built without OpenMP; nothing to measure between two threads\n");
#endif
    return 0;
}
