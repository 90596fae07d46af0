/* Post-training int8 weights (nn_quantize, docs/quantization.md) on the
   benchmark MLP (784-256-128-10) and CNN (conv5x5x32-pool-conv5x5x64-pool-
   fc128-fc10) of bench/infer.c: trains each briefly on Fashion-MNIST (SGD
   with Nesterov momentum, batch 128), then prints the float, dynamic int8
   and weight-only int8 test accuracy, the model file sizes and the
   per-image latency at batch 1 (1 thread, eval mode, gradients off); exits
   1 when an int8 accuracy is more than 0.5 points from the float one.

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -I. examples/quantize.c -o quantize -lm
       ./quantize [mlp_epochs] [cnn_epochs]      (defaults 2 and 1)
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist;
   NN_DATA=synthetic runs on a generated stand-in (and says so). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static nn_module *make(int cnn) {
    nn_conv_opts conv = {0};
    nn_pool_opts pool = {0};
    conv.kernel = 5;
    pool.kernel = 2;
    if (!cnn)
        return nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 128), nn_relu(),
                             nn_linear(128, 10), NULL);
    return nn_sequential(nn_conv2d(1, 32, conv), nn_relu(), nn_maxpool2d(pool),
                         nn_conv2d(32, 64, conv), nn_relu(), nn_maxpool2d(pool), nn_flatten(),
                         nn_linear(1024, 128), nn_relu(), nn_linear(128, 10), NULL);
}

static void train(nn_module *net, const nn_dataset *ds, int cnn, int epochs, nn_graph *g) {
    nn_loader_opts lo = {0};
    nn_sgd_opts so = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_optim *opt;
    nn_tensor *x;
    const int *y;
    int e;
    so.lr = cnn ? 0.03f : 0.05f;
    so.momentum = 0.9f;
    so.nesterov = 1;
    opt = nn_sgd(net, so);
    lo.batch_size = 128;
    lo.shuffle = 1;
    lo.image_shape = cnn;
    ld = nn_loader_new(ds, lo);
    nn_train_mode(net, 1);
    for (e = 0; e < epochs; e++)
        while (nn_graph_reset(g), nn_loader_next(ld, g, &x, &y) > 0) {
            nn_tensor *loss = nn_cross_entropy(nn_forward(net, x), y, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
        }
    nn_train_mode(net, 0);
    nn_loader_free(ld);
    nn_optim_free(opt);
}

/* Median-free simple figure: best of 3 passes over n test images, batch 1. */
static double latency_us(nn_module *net, const nn_dataset *ds, int cnn, nn_graph *g, int n) {
    float *x = (float *)malloc(sizeof(float) * 784);
    double best = 1e30;
    int p, i, k;
    int was = nn_set_grad_enabled(g, 0);
    for (p = 0; p < 4; p++) {
        double t0 = nn_time();
        for (i = 0; i < n; i++) {
            for (k = 0; k < 784; k++) x[k] = (float)ds->x[(size_t)i * 784 + k] / 255.0f;
            nn_graph_reset(g);
            nn_forward(net, cnn ? nn_tensor_from(g, x, NN_SHAPE(1, 1, 28, 28)) : nn_tensor_from(g, x, NN_SHAPE(1, 784)));
        }
        if (p > 0 && nn_time() - t0 < best) best = nn_time() - t0; /* pass 0 warms up */
    }
    nn_set_grad_enabled(g, was);
    free(x);
    return 1e6 * best / n;
}

int main(int argc, char **argv) {
    int epochs[2], cnn, data, status = 0;
    float facc = 0.0f;
    nn_dataset tr, te;
    nn_graph *g = nn_graph_new();
    epochs[0] = argc > 1 ? atoi(argv[1]) : 2;
    epochs[1] = argc > 2 ? atoi(argv[2]) : 1;
    if ((data = nn_fashion_mnist(NULL, &tr, &te)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0) printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST ***\n");
    nn_set_threads(1);
    printf("model  epochs  mode         test acc  file bytes  us/image (batch 1)\n");
    for (cnn = 0; cnn < 2; cnn++) {
        static const char *const names[3] = {"float", "int8", "weight-only"};
        nn_loader_opts ev = {0};
        nn_save_opts so = {0};
        nn_load_opts lo = {0};
        void *fbuf = NULL;
        size_t fsize = 0;
        int mode;
        nn_module *net;
        nn_seed(42);
        net = make(cnn);
        train(net, &tr, cnn, epochs[cnn], g);
        nn_save_mem(net, so, &fbuf, &fsize); /* the float weights, to quantize two ways */
        ev.image_shape = cnn;
        for (mode = 0; mode < 3; mode++) {
            nn_module *m = net;
            void *qbuf = NULL;
            size_t qsize = fsize;
            float acc;
            if (mode > 0) {
                nn_quantize_opts qo = {0};
                m = make(cnn);
                nn_load_mem(m, fbuf, fsize, lo);
                qo.mode = mode == 1 ? NN_QUANT_DYNAMIC : NN_QUANT_WEIGHT_ONLY;
                nn_quantize(m, qo);
                nn_save_mem(m, so, &qbuf, &qsize);
                nn_free(qbuf);
            }
            acc = nn_accuracy(m, &te, g, ev);
            printf("%-5s  %6d  %-11s  %7.2f%%  %10zu  %8.1f\n", cnn ? "cnn" : "mlp", epochs[cnn], names[mode],
                   100.0 * acc, qsize, latency_us(m, &te, cnn, g, 2000));
            fflush(stdout);
            if (mode == 0) facc = acc;
            else if (fabsf(acc - facc) > 0.005f) { /* the bar: int8 within 0.5 points of float */
                printf("  %s %s: %.2f points from float, over the 0.5 allowed\n", cnn ? "cnn" : "mlp", names[mode],
                       100.0 * fabsf(acc - facc));
                status = 1;
            }
            if (m != net) nn_module_free(m);
        }
        nn_free(fbuf);
        nn_module_free(net);
    }
    nn_graph_free(g);
    nn_dataset_free(&tr);
    nn_dataset_free(&te);
    return status;
}
