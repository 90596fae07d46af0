/* How far apart this machine's first two cores are, measured: what a
   2-thread figure on a virtual machine depends on.  Three numbers:
   - the FMA peak of 1 thread and of 2 at once (about 2x: two cores' worth
     of arithmetic; about 1x: the host put both vCPUs on one physical core);
   - the round trip of a cache line between the two threads (one writes a
     flag, the other answers): shortest between hardware threads of one
     core, longer between cores, longest across a chip's dies or sockets;
   - how fast a thread reads 256 KB that the other thread has just written,
     against 256 KB it wrote itself (an activation or a gradient crossing
     cores between two training ops; 256 KB fits in a recent core's L2).
   The threads are not bound to CPUs: they are placed as OpenMP places the
   library's own teams.
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

/* The team size a 2-thread region gets (1 under OMP_THREAD_LIMIT=1). */
static int team_of_two(void) {
    int n = 1;
#pragma omp parallel num_threads(2)
    {
#pragma omp master
        n = omp_get_num_threads();
    }
    return n;
}

/* A flag with a cache line of padding on each side, so it shares its line
   with nothing: thread 0 writes odd values, thread 1 answers each with the
   next even one; -1 tells thread 1 to stop. */
static struct { char before[64]; int v; char after[64]; } flag;

static int flag_get(void) { return __atomic_load_n(&flag.v, __ATOMIC_ACQUIRE); }
static void flag_set(int x) { __atomic_store_n(&flag.v, x, __ATOMIC_RELEASE); }
static void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause(); /* (lets a hardware-thread sibling run) */
#endif
}

/* Nanoseconds per round trip of the flag between the two threads: best of
   3 runs of up to TRIPS trips or 0.5 s (two threads on one CPU would make
   each trip a scheduler slice). */
static double round_trip_ns(void) {
    double best = 1e30;
    int rep;
    for (rep = 0; rep < 3; rep++) {
        double t0 = 0.0, t1 = 0.0;
        int done = 0;
        flag_set(0);
#pragma omp parallel num_threads(2)
        {
            int i, v;
            if (omp_get_thread_num() == 0) {
                t0 = nn_time();
                for (i = 0; i < TRIPS; i++) {
                    if ((i & 255) == 255 && nn_time() - t0 > 0.5) break;
                    flag_set(2 * i + 1);
                    while (flag_get() != 2 * i + 2) spin_pause();
                }
                t1 = nn_time();
                done = i;
                flag_set(-1);
            } else {
                for (i = 0;; i++) {
                    while ((v = flag_get()) != 2 * i + 1 && v != -1) spin_pause();
                    if (v == -1) break;
                    flag_set(2 * i + 2);
                }
            }
        }
        if (done > 0 && (t1 - t0) * 1e9 / done < best) best = (t1 - t0) * 1e9 / done;
    }
    return best;
}

static const void *volatile read_sink;

/* GB/s of thread 1 scanning READ_BYTES of buf just after it filled it
   itself (own) and just after thread 0 did (other), medians of READ_REPS
   each, the two cases alternating.  The scan is libc's memchr for a byte
   that is not there (as fast a read as the machine has, whatever the
   compiler makes of a loop). */
static void read_gbs(unsigned char *buf, double *own, double *other) {
    double sec[2][READ_REPS];
    int rep, c;
    for (rep = 0; rep < 2 * READ_REPS; rep++) {
        int writer = rep & 1; /* 1: own, 0: other */
        double t = 0.0;
#pragma omp parallel num_threads(2)
        {
            int me = omp_get_thread_num();
            if (me == writer) memset(buf, 2 + 2 * ((rep >> 1) & 1), READ_BYTES);
#pragma omp barrier
            if (me == 1) {
                double t0 = nn_time();
                read_sink = memchr(buf, 1, READ_BYTES);
                t = nn_time() - t0;
            }
        }
        sec[writer][rep >> 1] = t;
    }
    for (c = 0; c < 2; c++) qsort(sec[c], READ_REPS, sizeof sec[c][0], cmp_double);
    *own = (double)READ_BYTES / sec[1][READ_REPS / 2] * 1e-9;
    *other = (double)READ_BYTES / sec[0][READ_REPS / 2] * 1e-9;
}
#endif

int main(void) {
#ifdef _OPENMP
    long iters = peak_iters();
    double f1 = measure_peak(1, iters), f2, rtt, own, other;
    unsigned char *buf;
    if (team_of_two() < 2) {
        printf("cores: fma_1t=%.1f; OpenMP gives one thread, so nothing between two is measured\n",
               f1);
        return 0;
    }
    f2 = measure_peak(2, iters);
    rtt = round_trip_ns();
    if (!(buf = (unsigned char *)malloc(READ_BYTES))) return 1;
    memset(buf, 0, READ_BYTES);
    read_gbs(buf, &own, &other);
    printf("cores: rtt_ns=%.0f fma_1t=%.1f fma_2t=%.1f fma_ratio=%.2f own_read_gbs=%.1f "
           "other_read_gbs=%.1f\n", rtt, f1, f2, f2 / f1, own, other);
    free(buf);
#else
    printf("cores: built without OpenMP; nothing to measure between two threads\n");
#endif
    return 0;
}
