/* Seconds per epoch and peak memory of the Fashion-MNIST MLP
   (784-256-128-10 ReLU, batch 128, SGD lr 0.05 momentum 0.9) in nn.h.
   bench/pytorch/train_mlp.py is the same program in PyTorch;
   bench/train_mlp.sh runs both, alternating, and prints the ratios.
   Usage: train_mlp [threads] [epochs]   (data: $NN_DATA or the Debian path) */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *dir = getenv("NN_DATA") ? getenv("NN_DATA") : "/usr/share/datasets/fashion-mnist";
    int threads = argc > 1 ? atoi(argv[1]) : 1, epochs = argc > 2 ? atoi(argv[2]) : 3;
    int epoch;
    float test_acc;
    double secs[64];
    nn_dataset train, test;
    nn_loader_opts lo = {0}, eo = {0};
    nn_sgd_opts so = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g;
    nn_tensor *x;
    const int *y;
    struct rusage ru;

    if (epochs > 64) epochs = 64;
    if (nn_mnist_load(dir, 1, &train) != NN_OK || nn_mnist_load(dir, 0, &test) != NN_OK) {
        fprintf(stderr, "%s\n(apt-get install dataset-fashion-mnist)\n", nn_error_string());
        return 1;
    }
    nn_set_threads(threads);
    nn_seed(1);
    net = make_mlp();
    so.lr = 0.05f;
    so.momentum = 0.9f;
    opt = nn_sgd(net, so);
    lo.batch_size = 128;
    lo.shuffle = 1;
    ld = nn_loader_new(&train, lo);
    g = nn_graph_new();
    for (epoch = 0; epoch < epochs; epoch++) {
        double t0 = nn_time();
        while (nn_graph_reset(g), nn_loader_next(ld, g, &x, &y) > 0) {
            nn_tensor *loss = nn_cross_entropy(nn_forward(net, x), y, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
        }
        secs[epoch] = nn_time() - t0;
    }
    test_acc = nn_accuracy(net, &test, g, eo); /* batches of 1000 (the default) */
    getrusage(RUSAGE_SELF, &ru);
    qsort(secs, (size_t)epochs, sizeof secs[0], cmp_double);
    printf("nn.h threads=%d epochs=%d median_epoch_s=%.3f peak_rss_mb=%.1f test_acc=%.4f\n",
           threads, epochs, secs[epochs / 2], (double)ru.ru_maxrss / 1024.0,
           (double)test_acc);
    nn_loader_free(ld);
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
