/* conv2d forward and forward+backward times of nn.h, per layer, batch 64:
   the benchmark model's two convs, a ResNet 3x3 64->64 layer on 32x32, a
   depthwise 3x3 and a 1x1 layer.  Prints one line per layer:
       <label> <forward ms> <forward+backward ms>     (medians over reps)
   Build and run (bench/pytorch/conv.py runs it alternately with PyTorch and
   prints the ratios):
     gcc -O3 -march=native -fopenmp -I. bench/conv.c -o build/bench_conv -lm
     ./build/bench_conv [threads] [reps] [label substring] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct layer {
    const char *label;
    int N, C, H, W, OC, K, stride, pad, groups, input_grad;
} layer;

static const layer layers[] = {
    {"model_conv1_1x28x28_32_5x5", 64, 1, 28, 28, 32, 5, 1, 0, 1, 0},
    {"model_conv2_32x12x12_64_5x5", 64, 32, 12, 12, 64, 5, 1, 0, 1, 1},
    {"resnet_64x32x32_64_3x3", 64, 64, 32, 32, 64, 3, 1, 1, 1, 1},
    {"depthwise_64x32x32_3x3", 64, 64, 32, 32, 64, 3, 1, 1, 64, 1},
    {"pointwise_64x32x32_128_1x1", 64, 64, 32, 32, 128, 1, 1, 0, 1, 1},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 20, li, r;
    nn_graph *g = nn_graph_new();
    double *tf = (double *)malloc(sizeof(double) * (size_t)reps);
    double *tb = (double *)malloc(sizeof(double) * (size_t)reps);
    nn_set_threads(threads);
    nn_seed(1);
    for (li = 0; li < (int)(sizeof layers / sizeof layers[0]); li++) {
        const layer *L = &layers[li];
        nn_conv_opts o = {0};
        nn_tensor *x0, *w, *b;
        if (argc > 3 && !strstr(L->label, argv[3])) continue;
        o.stride = L->stride;
        o.padding = L->pad;
        o.groups = L->groups;
        x0 = nn_randn(NULL, NN_SHAPE(L->N, L->C, L->H, L->W));
        w = nn_requires_grad(nn_rand(NULL, NN_SHAPE(L->OC, L->C / L->groups, L->K, L->K), -0.1f, 0.1f), 1);
        b = nn_requires_grad(nn_rand(NULL, NN_SHAPE(L->OC), -0.1f, 0.1f), 1);
        for (r = -2; r < reps; r++) { /* two warm-up rounds */
            double t0;
            nn_tensor *x, *y;
            nn_graph_reset(g);
            x = nn_tensor_from(g, x0->data, nn_shape_of(x0));
            nn_set_grad_enabled(g, 0);
            t0 = nn_time();
            y = nn_conv2d_op(x, w, b, o);
            if (r >= 0) tf[r] = nn_time() - t0;
            nn_set_grad_enabled(g, 1);
            nn_graph_reset(g);
            x = nn_tensor_from(g, x0->data, nn_shape_of(x0));
            if (L->input_grad) nn_requires_grad(x, 1);
            t0 = nn_time();
            y = nn_conv2d_op(x, w, b, o);
            nn_backward(nn_sum(y));
            if (r >= 0) tb[r] = nn_time() - t0;
        }
        qsort(tf, (size_t)reps, sizeof(double), cmp_double);
        qsort(tb, (size_t)reps, sizeof(double), cmp_double);
        printf("%s %.3f %.3f\n", L->label, 1e3 * tf[reps / 2], 1e3 * tb[reps / 2]);
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
