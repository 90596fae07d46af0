/* "Fix your classifier" (Hoffer, Hubara, Soudry 2018) on Fashion-MNIST: the
   same MLP, 784-256 (ReLU) -128 -10, twice, once with a learned final nn_linear
   (128 x 10 weights + 10 biases) and once with nn_hadamard_linear, whose
   weight is the fixed +-1 Hadamard matrix truncated to 10 classes and whose
   only trained parameter is a scalar scale.  Adam (lr 1e-3), batch 128, the
   same seed and data order for both.  Prints per epoch the test accuracy of
   each, then the number of trained parameters of each network and of its
   last layer, and writes hadamard.svg (test accuracy per epoch).  No ReLU
   before the classifier: H's first row is all ones, so on features >= 0 the
   fixed layer would always rank class 0 first.

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -I. examples/hadamard.c -o hadamard -lm
       ./hadamard [epochs (10)]
   Data: $NN_DATA, else /usr/share/datasets/fashion-mnist (NN_DATA=synthetic:
   a generated stand-in, said so in the output). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EPOCHS 100

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 10, data, v, e, n;
    nn_dataset train, test;
    nn_loader_opts lo, eval;
    nn_adam_opts ao;
    nn_ce_opts ce;
    nn_graph *g;
    float acc[2][MAX_EPOCHS], xs[MAX_EPOCHS];
    size_t trained[2], last[2];
    double secs[2];
    static const char *const names[2] = {"learned nn_linear(128, 10)", "fixed nn_hadamard_linear"};

    if (epochs < 1 || epochs > MAX_EPOCHS) epochs = 10;
    if ((data = nn_fashion_mnist(NULL, &train, &test)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0) printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST ***\n");
    memset(&lo, 0, sizeof lo);
    memset(&eval, 0, sizeof eval);
    memset(&ao, 0, sizeof ao);
    memset(&ce, 0, sizeof ce);
    lo.batch_size = 128;
    lo.shuffle = 1;
    ao.lr = 1e-3f;
    g = nn_graph_new();
    for (v = 0; v < 2; v++) {
        nn_module *net;
        nn_optim *opt;
        nn_loader *ld = nn_loader_new(&train, lo);
        double t0 = nn_time();
        nn_seed(42);
        net = nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 128),
                            v == 0 ? nn_linear(128, 10) : nn_hadamard_linear(128, 10, 0), NULL);
        opt = nn_adam(net, ao);
        trained[v] = nn_parameter_count(net);
        last[v] = nn_parameter_count(nn_child(net, "3"));
        nn_seed(1);   /* the same data order for both */
        for (e = 0; e < epochs; e++) {
            nn_tensor *x;
            const int *y;
            while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
                nn_zero_grad(opt);
                nn_backward(nn_cross_entropy(nn_forward(net, x), y, ce));
                nn_step(opt);
            }
            acc[v][e] = nn_accuracy(net, &test, g, eval);
        }
        secs[v] = nn_time() - t0;
        if (v == 1) printf("learned scale: %.4f\n", nn_param(net, "3.scale")->data[0]);
        nn_optim_free(opt);
        nn_loader_free(ld);
        nn_module_free(net);
    }
    printf("%5s %28s %28s\n", "epoch", names[0], names[1]);
    for (e = 0; e < epochs; e++) {
        printf("%5d %27.2f%% %27.2f%%\n", e + 1, 100.0 * acc[0][e], 100.0 * acc[1][e]);
        xs[e] = (float)(e + 1);
        acc[0][e] *= 100.0f;
        acc[1][e] *= 100.0f;
    }
    printf("%-28s %14s %18s %10s\n", "final layer", "trained params", "of which last layer", "seconds");
    for (v = 0; v < 2; v++)
        printf("%-28s %14zu %18zu %10.1f\n", names[v], trained[v], last[v], secs[v]);
    {
        nn_plot_series s[2];
        nn_plot_opts pl;
        memset(s, 0, sizeof s);
        memset(&pl, 0, sizeof pl);
        for (v = 0; v < 2; v++) {
            s[v].name = v ? "fixed Hadamard" : "learned linear";
            s[v].x = xs;
            s[v].y = acc[v];
            s[v].n = epochs;
        }
        pl.title = "Fashion-MNIST MLP: learned vs fixed Hadamard classifier";
        pl.xlabel = "epoch";
        pl.ylabel = "test accuracy (%)";
        if (nn_plot_svg("hadamard.svg", s, 2, pl) == NN_OK) printf("wrote hadamard.svg\n");
    }
    nn_graph_free(g);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
