/* Recurrent layers and embeddings: forward and forward+backward times of
   nn.h.  LSTM and GRU with batch 32, length 100, input 128, hidden 256; a
   2-layer bidirectional LSTM of the same sizes; an embedding 10000x256 on
   [32,100] indices (forward+backward includes clearing the weight's
   gradient, as PyTorch's backward allocates a zeroed one).  The loss is
   sum(output); the inputs need a gradient.  Prints one line per case:
       <label> <forward ms> <forward+backward ms>     (medians over reps)
   Build and run (bench/pytorch/rnn.py runs it alternately with PyTorch and
   prints the ratios):
     gcc -O3 -march=native -fopenmp -I. bench/rnn.c -o build/bench_rnn -lm
     ./build/bench_rnn [threads] [reps] [label substring] [adaptive]
   (adaptive 0: a fixed team whatever the load, nn_set_adaptive_threads(0)) */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bcase {
    const char *label;
    int kind; /* 0 LSTM, 1 GRU, 2 embedding */
    int layers, bidir;
} bcase;

static const bcase cases[] = {
    {"lstm_b32_t100_i128_h256", 0, 1, 0},
    {"gru_b32_t100_i128_h256", 1, 1, 0},
    {"lstm2_bi_b32_t100_i128_h256", 0, 2, 1},
    {"embedding_10000x256_on_32x100", 2, 0, 0},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 10, ci, r, k;
    const int T = 100, B = 32, I = 128, H = 256, V = 10000;
    nn_graph *g = nn_graph_new();
    double *tf = (double *)malloc(sizeof(double) * (size_t)reps);
    double *tb = (double *)malloc(sizeof(double) * (size_t)reps);
    int *idx = (int *)malloc(sizeof(int) * (size_t)(T * B));
    nn_set_threads(threads);
    if (argc > 4 && atoi(argv[4]) == 0) nn_set_adaptive_threads(0);
    nn_seed(1);
    for (k = 0; k < T * B; k++) idx[k] = (int)nn_rand_below((uint32_t)V);
    for (ci = 0; ci < (int)(sizeof cases / sizeof cases[0]); ci++) {
        const bcase *c = &cases[ci];
        nn_module *m;
        nn_tensor *x0 = nn_randn(NULL, NN_SHAPE(T, B, I));
        nn_rnn_opts o;
        nn_embedding_opts eo;
        if (argc > 3 && !strstr(c->label, argv[3])) {
            nn_tensor_free(x0);
            continue;
        }
        memset(&o, 0, sizeof o);
        memset(&eo, 0, sizeof eo);
        o.num_layers = c->layers;
        o.bidirectional = c->bidir;
        m = c->kind == 0 ? nn_lstm(I, H, o) : c->kind == 1 ? nn_gru(I, H, o) : nn_embedding(V, H, eo);
        for (r = -2; r < reps; r++) { /* two warm-up rounds */
            double t0;
            nn_tensor *x = NULL, *y;
            nn_graph_reset(g);
            if (c->kind != 2) x = nn_tensor_from(g, x0->data, nn_shape_of(x0));
            nn_set_grad_enabled(g, 0);
            t0 = nn_time();
            y = c->kind == 2 ? nn_embedding_lookup(m, idx, NN_SHAPE(B, T)) : nn_forward(m, x);
            if (r >= 0) tf[r] = nn_time() - t0;
            nn_set_grad_enabled(g, 1);
            nn_graph_reset(g);
            if (c->kind != 2) x = nn_requires_grad(nn_tensor_from(g, x0->data, nn_shape_of(x0)), 1);
            t0 = nn_time();
            if (c->kind == 2) {
                nn_tensor *w = nn_param(m, "weight");
                memset(w->grad, 0, w->numel * sizeof(float));
                y = nn_embedding_lookup(m, idx, NN_SHAPE(B, T));
            } else {
                y = nn_forward(m, x);
            }
            nn_backward(nn_sum(y));
            if (r >= 0) tb[r] = nn_time() - t0;
        }
        qsort(tf, (size_t)reps, sizeof(double), cmp_double);
        qsort(tb, (size_t)reps, sizeof(double), cmp_double);
        printf("%s %.3f %.3f\n", c->label, 1e3 * tf[reps / 2], 1e3 * tb[reps / 2]);
        fflush(stdout);
        nn_tensor_free(x0);
        nn_module_free(m);
    }
    free(tf);
    free(tb);
    free(idx);
    nn_graph_free(g);
    return 0;
}
