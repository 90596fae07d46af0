/* Every activation's forward + backward on 1M floats against a memory copy
   of the same bytes, in the same run.  The forward reads x and writes y (8
   bytes a float), the backward reads x (or y) and the incoming gradient and
   writes dx (12 bytes): the reference is memcpy of 4 + 6 = 10 bytes a float
   (the same traffic; split over the threads when there are several), timed
   alternately with the activations.  Prints one
   line per activation:
       <name> <copy ms> <nn f+b ms> <nn fwd ms> <ratio f+b / copy>
   (medians over reps).  The backward is the op's own node (the tape's step,
   with the incoming gradient set by hand), so no loss pass is timed.
   Build and run (bench/pytorch/act.py runs it alternately with PyTorch and
   prints both side by side):
     gcc -O3 -march=native -fopenmp -I. bench/act.c -o build/bench_act -lm
     ./build/bench_act [threads] [reps] [name substring] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEL (1 << 20)

static const char *const names[] = {
    "relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "celu", "gelu", "gelu_tanh", "silu",
    "softplus", "softsign", "mish", "hardtanh", "relu6", "hardsigmoid", "hardswish", "logsigmoid",
    "tanhshrink", "threshold", "prelu"};

static nn_tensor *run(int k, nn_tensor *x, nn_tensor *w) {
    switch (k) {
    case 0: return nn_relu_op(x);
    case 1: return nn_sigmoid_op(x);
    case 2: return nn_tanh_op(x);
    case 3: return nn_leaky_relu_op(x, 0.01f);
    case 4: return nn_elu_op(x, 1.0f);
    case 5: return nn_selu_op(x);
    case 6: return nn_celu_op(x, 1.0f);
    case 7: return nn_gelu_op(x);
    case 8: return nn_gelu_tanh_op(x);
    case 9: return nn_silu_op(x);
    case 10: return nn_softplus_op(x, 1.0f, 20.0f);
    case 11: return nn_softsign_op(x);
    case 12: return nn_mish_op(x);
    case 13: return nn_hardtanh_op(x, -1.0f, 1.0f);
    case 14: return nn_relu6_op(x);
    case 15: return nn_hardsigmoid_op(x);
    case 16: return nn_hardswish_op(x);
    case 17: return nn_logsigmoid_op(x);
    case 18: return nn_tanhshrink_op(x);
    case 19: return nn_threshold_op(x, 0.1f, 20.0f);
    default: return nn_prelu_op(x, w);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* The reference copy at the benchmark's thread count: at 2 threads the
   activations read and write through both cores, so must the copy. */
static void copy_bytes(char *dst, const char *src, size_t n, int threads) {
#ifdef _OPENMP
    int t;
    size_t chunk = (n / (size_t)threads + 63) & ~(size_t)63;
#pragma omp parallel for num_threads(threads)
    for (t = 0; t < threads; t++) {
        size_t lo = (size_t)t * chunk, hi = lo + chunk < n ? lo + chunk : n;
        if (lo < hi) memcpy(dst + lo, src + lo, hi - lo);
    }
#else
    (void)threads;
    memcpy(dst, src, n);
#endif
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 30, k, r;
    nn_graph *g = nn_graph_new();
    float *x0 = (float *)malloc(NEL * sizeof(float)), *gy = (float *)malloc(NEL * sizeof(float));
    char *src = (char *)malloc((size_t)NEL * 10), *dst = (char *)malloc((size_t)NEL * 10);
    double *tc = (double *)malloc(sizeof(double) * (size_t)reps);
    double *tf = (double *)malloc(sizeof(double) * (size_t)reps);
    double *tb = (double *)malloc(sizeof(double) * (size_t)reps);
    nn_tensor *w = nn_requires_grad(nn_full(NULL, NN_SHAPE(1), 0.25f), 1);
    nn_set_threads(threads);
    nn_seed(1);
    for (k = 0; k < NEL; k++) {
        x0[k] = 3.0f * nn_rand_normal();
        gy[k] = nn_rand_normal();
    }
    memset(src, 1, (size_t)NEL * 10);
    memset(dst, 0, (size_t)NEL * 10);
    for (k = 0; k < (int)(sizeof names / sizeof names[0]); k++) {
        if (argc > 3 && !strstr(names[k], argv[3])) continue;
        for (r = -3; r < reps; r++) { /* warm-up rounds */
            double t0, t1, t2;
            nn_tensor *x, *y;
            /* the copy: the same 10 bytes a float */
            t0 = nn_time();
            copy_bytes(dst, src, (size_t)NEL * 10, threads);
            t1 = nn_time();
            if (r >= 0) tc[r] = t1 - t0;
            nn_graph_reset(g);
            x = nn_requires_grad(nn_tensor_from(g, x0, NN_SHAPE(NEL)), 1);
            w->grad[0] = 0.0f;
            t0 = nn_time();
            y = run(k, x, w);
            t1 = nn_time();
            y->grad = gy; /* the incoming gradient, then the op's backward step */
            y->node->backward(y->node);
            t2 = nn_time();
            y->grad = NULL;
            if (r >= 0) {
                tf[r] = t1 - t0;
                tb[r] = t2 - t0;
            }
        }
        {
            double c = median(tc, reps), f = median(tf, reps), b = median(tb, reps);
            printf("%s %.3f %.3f %.3f %.2f\n", names[k], 1e3 * c, 1e3 * b, 1e3 * f, b / c);
            fflush(stdout);
        }
    }
    nn_tensor_free(w);
    nn_graph_free(g);
    free(x0);
    free(gy);
    free(src);
    free(dst);
    free(tc);
    free(tf);
    free(tb);
    return 0;
}
