/* Causal attention forward and forward+backward times of nn.h: multi-head
   self-attention (batch 8, length 256, embedding 256, 4 heads, batch_first,
   the input and every parameter take gradients, loss sum(y)) and the bare
   fused scaled dot-product attention of its heads ([8,4,256,64]).  One line
   per case:
       <label> <forward ms> <forward+backward ms>     (medians over reps)
   Build and run (bench/pytorch/attn.py runs it alternately with PyTorch and
   prints the ratios):
     gcc -O3 -march=native -fopenmp -I. bench/attn.c -o build/bench_attn -lm
     ./build/bench_attn [threads] [reps] [label substring] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *labels[2] = {"mha_causal_8x256x256_h4", "sdpa_causal_8x4x256x64"};

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 10, ci, r, t;
    nn_graph *g = nn_graph_new();
    double *tf = (double *)malloc(sizeof(double) * (size_t)reps);
    double *tb = (double *)malloc(sizeof(double) * (size_t)reps);
    nn_mha_opts mo;
    nn_mha_args ma;
    nn_sdpa_opts so;
    nn_module *m;
    nn_tensor *x0, *qkv0[3];
    nn_set_threads(threads);
    nn_seed(1);
    memset(&mo, 0, sizeof mo);
    memset(&ma, 0, sizeof ma);
    memset(&so, 0, sizeof so);
    mo.batch_first = 1;
    ma.is_causal = 1;
    so.is_causal = 1;
    m = nn_multihead_attention(256, 4, mo);
    x0 = nn_randn(NULL, NN_SHAPE(8, 256, 256));
    for (t = 0; t < 3; t++) qkv0[t] = nn_randn(NULL, NN_SHAPE(8, 4, 256, 64));
    for (ci = 0; ci < 2; ci++) {
        if (argc > 3 && !strstr(labels[ci], argv[3])) continue;
        for (r = -2; r < reps; r++) { /* two warm-up rounds */
            double t0;
            int pass;
            for (pass = 0; pass < 2; pass++) {
                nn_tensor *y, *in[3];
                nn_graph_reset(g);
                nn_set_grad_enabled(g, pass);
                t0 = nn_time();
                if (ci == 0) {
                    in[0] = nn_tensor_from(g, x0->data, nn_shape_of(x0));
                    if (pass) nn_requires_grad(in[0], 1);
                    y = nn_mha_forward(m, in[0], in[0], in[0], &ma);
                } else {
                    for (t = 0; t < 3; t++) {
                        in[t] = nn_tensor_from(g, qkv0[t]->data, nn_shape_of(qkv0[t]));
                        if (pass) nn_requires_grad(in[t], 1);
                    }
                    y = nn_scaled_dot_product_attention(in[0], in[1], in[2], so);
                }
                if (pass) nn_backward(nn_sum(y));
                if (r >= 0) (pass ? tb : tf)[r] = nn_time() - t0;
            }
        }
        qsort(tf, (size_t)reps, sizeof(double), cmp_double);
        qsort(tb, (size_t)reps, sizeof(double), cmp_double);
        printf("%s %.3f %.3f\n", labels[ci], 1e3 * tf[reps / 2], 1e3 * tb[reps / 2]);
        fflush(stdout);
    }
    nn_set_grad_enabled(g, 1);
    for (t = 0; t < 3; t++) nn_tensor_free(qkv0[t]);
    nn_tensor_free(x0);
    nn_module_free(m);
    free(tf);
    free(tb);
    nn_graph_free(g);
    return 0;
}
