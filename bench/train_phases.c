/* Where a training step's time goes: the MLP of bench/train_mlp.c (or the CNN
   of bench/train_cnn.c with "cnn") timed phase by phase over whole epochs:
   the loader (with the graph reset), the forward pass, the loss, nn_zero_grad,
   nn_backward and nn_step.  Prints, per phase, wall milliseconds per epoch,
   its share of the epoch and the process CPU time (clock(), all threads)
   over the wall time, which tells a phase that keeps both threads busy
   (about 2 at 2 threads) from one that runs alone or waits (about 1).
   Build and run:
     gcc -O3 -march=native -fopenmp -I. bench/train_phases.c -o build/train_phases -lm
     ./build/train_phases [threads] [epochs] [mlp|cnn] [adaptive]
   (adaptive 0: a fixed team whatever the load, nn_set_adaptive_threads(0)) */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { LOAD, FWD, LOSS, ZERO, BWD, STEP, NPHASE };
static const char *names[NPHASE] = {"loader", "forward", "loss", "zero_grad", "backward", "step"};
static double wall[NPHASE], cpu[NPHASE];
static double t_last;
static clock_t c_last;

/* Charge the time since the last mark to phase p. */
static void mark(int p) {
    double t = nn_time();
    clock_t c = clock();
    if (p >= 0) {
        wall[p] += t - t_last;
        cpu[p] += (double)(c - c_last) / (double)CLOCKS_PER_SEC;
    }
    t_last = t;
    c_last = c;
}

int main(int argc, char **argv) {
    const char *dir = getenv("NN_DATA") ? getenv("NN_DATA") : "/usr/share/datasets/fashion-mnist";
    int threads = argc > 1 ? atoi(argv[1]) : 1, epochs = argc > 2 ? atoi(argv[2]) : 2;
    int cnn = argc > 3 && strcmp(argv[3], "cnn") == 0, epoch, p;
    nn_dataset train;
    nn_loader_opts lo = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g;
    double total_w = 0.0, total_c = 0.0;
    if (nn_mnist_load(dir, 1, &train) != NN_OK) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    nn_set_threads(threads);
    if (argc > 4) nn_set_adaptive_threads(atoi(argv[4]));
    nn_seed(1);
    lo.batch_size = 128;
    lo.shuffle = 1;
    if (cnn) {
        nn_adam_opts ao = {0};
        net = make_cnn();
        ao.lr = 1e-3f;
        opt = nn_adam(net, ao);
        lo.image_shape = 1;
    } else {
        nn_sgd_opts so = {0};
        net = make_mlp();
        so.lr = 0.05f;
        so.momentum = 0.9f;
        opt = nn_sgd(net, so);
    }
    ld = nn_loader_new(&train, lo);
    g = nn_graph_new();
    for (epoch = 0; epoch < epochs; epoch++) {
        nn_tensor *x, *out, *loss;
        const int *y;
        if (epoch == 1) memset(wall, 0, sizeof wall), memset(cpu, 0, sizeof cpu);
        mark(-1);
        while (nn_graph_reset(g), nn_loader_next(ld, g, &x, &y) > 0) {
            mark(LOAD);
            out = nn_forward(net, x);
            mark(FWD);
            loss = nn_cross_entropy(out, y, ce);
            mark(LOSS);
            nn_zero_grad(opt);
            mark(ZERO);
            nn_backward(loss);
            mark(BWD);
            nn_step(opt);
            mark(STEP);
        }
        mark(LOAD); /* the call that ended the epoch */
    }
    for (p = 0; p < NPHASE; p++) total_w += wall[p], total_c += cpu[p];
    printf("%s threads=%d: %d epochs after the first, per epoch:\n", cnn ? "cnn" : "mlp", threads,
           epochs > 1 ? epochs - 1 : 1);
    for (p = 0; p < NPHASE; p++) {
        double e = epochs > 1 ? epochs - 1 : 1;
        printf("  %-10s %8.1f ms  %5.1f%%  cpu/wall %.2f\n", names[p], 1e3 * wall[p] / e,
               100.0 * wall[p] / total_w, wall[p] > 0.0 ? cpu[p] / wall[p] : 0.0);
    }
    printf("  %-10s %8.1f ms          cpu/wall %.2f\n", "total",
           1e3 * total_w / (epochs > 1 ? epochs - 1 : 1), total_c / total_w);
    nn_loader_free(ld);
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&train);
    return 0;
}
