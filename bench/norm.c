/* LayerNorm and GroupNorm forward and forward+backward times of nn.h on a
   [2048,256] batch of features and a [64,64,32,32] activation (LayerNorm
   over the last 1 / 3 dims, GroupNorm with 32 groups; weight, bias and the
   input all take gradients; the loss is sum(y)).  One line per case:
       <label> <forward ms> <forward+backward ms>     (medians over reps)
   Build and run (bench/pytorch/norm.py runs it alternately with PyTorch and
   prints the ratios):
     gcc -O3 -march=native -fopenmp -I. bench/norm.c -o build/bench_norm -lm
     ./build/bench_norm [threads] [reps] [label substring]
   On a loaded machine run the 2-thread comparison with --nn-passive. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ncase {
    const char *label;
    int gn;          /* 0: LayerNorm over the last k dims, 1: GroupNorm(32) */
    int k;
    int shape[4], ndim;
} ncase;

static const ncase cases[] = {
    {"layernorm_2048x256", 0, 1, {2048, 256, 0, 0}, 2},
    {"groupnorm32_2048x256", 1, 0, {2048, 256, 0, 0}, 2},
    {"layernorm_64x64x32x32", 0, 3, {64, 64, 32, 32}, 4},
    {"groupnorm32_64x64x32x32", 1, 0, {64, 64, 32, 32}, 4},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static nn_tensor *run(const ncase *c, nn_tensor *x, nn_tensor *w, nn_tensor *b) {
    return c->gn ? nn_group_norm_op(x, 32, w, b, 1e-5f) : nn_layer_norm_op(x, c->k, w, b, 1e-5f);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 20, ci, r, i;
    nn_graph *g = nn_graph_new();
    double *tf = (double *)malloc(sizeof(double) * (size_t)reps);
    double *tb = (double *)malloc(sizeof(double) * (size_t)reps);
    nn_set_threads(threads);
    nn_seed(1);
    for (ci = 0; ci < (int)(sizeof cases / sizeof cases[0]); ci++) {
        const ncase *c = &cases[ci];
        nn_shape s, ps;
        nn_tensor *x0, *w, *b;
        if (argc > 3 && !strstr(c->label, argv[3])) continue;
        s.ndim = c->ndim;
        for (i = 0; i < c->ndim; i++) s.d[i] = c->shape[i];
        ps.ndim = c->gn ? 1 : c->k;
        for (i = 0; i < ps.ndim; i++) ps.d[i] = c->gn ? c->shape[1] : c->shape[c->ndim - c->k + i];
        x0 = nn_randn(NULL, s);
        w = nn_requires_grad(nn_rand(NULL, ps, 0.5f, 1.5f), 1);
        b = nn_requires_grad(nn_rand(NULL, ps, -0.1f, 0.1f), 1);
        for (r = -2; r < reps; r++) { /* two warm-up rounds */
            double t0;
            nn_tensor *x;
            nn_graph_reset(g);
            x = nn_tensor_from(g, x0->data, s);
            nn_set_grad_enabled(g, 0);
            t0 = nn_time();
            run(c, x, w, b);
            if (r >= 0) tf[r] = nn_time() - t0;
            nn_set_grad_enabled(g, 1);
            nn_graph_reset(g);
            x = nn_requires_grad(nn_tensor_from(g, x0->data, s), 1);
            t0 = nn_time();
            nn_backward(nn_sum(run(c, x, w, b)));
            if (r >= 0) tb[r] = nn_time() - t0;
        }
        qsort(tf, (size_t)reps, sizeof(double), cmp_double);
        qsort(tb, (size_t)reps, sizeof(double), cmp_double);
        printf("%s %.3f %.3f\n", c->label, 1e3 * tf[reps / 2], 1e3 * tb[reps / 2]);
        fflush(stdout);
        nn_tensor_free(x0);
        nn_tensor_free(w);
        nn_tensor_free(b);
    }
    free(tf);
    free(tb);
    nn_graph_free(g);
    return 0;
}
