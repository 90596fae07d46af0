/* The benchmark CNN trained on Fashion-MNIST with nn.h:
       conv(1->32, 5x5) - ReLU - maxpool 2 - conv(32->64, 5x5) - ReLU - maxpool 2
       - flatten - linear(1024->128) - ReLU - linear(128->10)
   Adam lr 1e-3, batch 128.  Prints one line per epoch:
       epoch <i> seconds <training seconds> test_acc <percent> peak_mb <max RSS>
   bench/pytorch/train_cnn.py trains the same model in PyTorch and runs this
   program alternately with it.  Build and run:
     gcc -O3 -march=native -fopenmp -I. bench/train_cnn.c -o build/bench_train_cnn -lm
     ./build/bench_train_cnn [threads] [epochs] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

/* Peak resident memory in MB: VmHWM from /proc (getrusage's ru_maxrss would
   report a parent's peak when started from a bigger process, e.g. the
   Python driver), else ru_maxrss. */
static double peak_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    struct rusage ru;
    if (f) {
        while (fgets(line, sizeof line, f)) {
            long kb;
            if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
                fclose(f);
                return (double)kb / 1024.0;
            }
        }
        fclose(f);
    }
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

/* Test accuracy: batches of 500 images, evaluation mode, no gradients. */
static float evaluate(nn_module *net, const nn_dataset *ds, nn_graph *g) {
    nn_loader_opts lo = {0};
    lo.batch_size = 500;
    lo.image_shape = 1;
    return nn_accuracy(net, ds, g, lo);
}

int main(int argc, char **argv) {
    const char *dir = getenv("NN_DATA") ? getenv("NN_DATA") : "/usr/share/datasets/fashion-mnist";
    int threads = argc > 1 ? atoi(argv[1]) : 1, epochs = argc > 2 ? atoi(argv[2]) : 1, epoch;
    nn_dataset train, test;
    nn_loader_opts lo = {0};
    nn_adam_opts ao = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g;
    nn_set_threads(threads);
    if (nn_mnist_load(dir, 1, &train) != NN_OK || nn_mnist_load(dir, 0, &test) != NN_OK) {
        fprintf(stderr, "train_cnn: %s\n", nn_error_string());
        return 1;
    }
    nn_seed(1);
    net = make_cnn();
    ao.lr = 1e-3f;
    opt = nn_adam(net, ao);
    lo.batch_size = 128;
    lo.shuffle = 1;
    lo.image_shape = 1;
    ld = nn_loader_new(&train, lo);
    g = nn_graph_new();
    for (epoch = 1; epoch <= epochs; epoch++) {
        double t0 = nn_time(), secs, acc;
        nn_tensor *x;
        const int *y;
        while (nn_graph_reset(g), nn_loader_next(ld, g, &x, &y) > 0) {
            nn_tensor *loss = nn_cross_entropy(nn_forward(net, x), y, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
        }
        secs = nn_time() - t0;
        /* evaluated first: C leaves the order of printf's arguments open, and
           the peak must include the evaluation's memory */
        acc = 100.0 * (double)evaluate(net, &test, g);
        printf("epoch %d seconds %.3f test_acc %.2f peak_mb %.1f\n", epoch, secs, acc, peak_mb());
        fflush(stdout);
    }
    nn_graph_free(g);
    nn_loader_free(ld);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
