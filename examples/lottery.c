/* Lottery tickets (Frankle & Carbin 2019) on Fashion-MNIST: LeNet-300-100
   (784-300-100-10, ReLU) trained with Adam (lr 1.2e-3, batch 128), then
   iterative magnitude pruning per layer (the output layer at half the
   rate) to 50, 80, 90, 95, 97 and 98.5% sparsity of the weights, rewinding
   the kept weights to their initial values (or to iteration k) before each
   retraining.  The control trains the same masks from a random
   re-initialization (nn_prune_reinit).  Prints sparsity vs test accuracy for
   both and writes lottery.svg (the plot) and lottery_mask.png (the first
   layer's mask of the first 64 hidden units, as 28x28 images).

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -I. examples/lottery.c -o lottery -lm
       ./lottery [epochs per round (4)] [rewind iteration k (0)] [train samples (60000)]
   Data: $NN_DATA, else /usr/share/datasets/fashion-mnist (NN_DATA=synthetic:
   a generated stand-in, said so in the output). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEVELS 7
static const float targets[LEVELS] = {0.0f, 0.5f, 0.8f, 0.9f, 0.95f, 0.97f, 0.985f};

/* Train for epochs over ld; at step rewind_k (if >= 0) take the pruner's
   rewind point.  Returns the test accuracy. */
static float train_round(nn_module *net, nn_pruner *p, nn_loader *ld, const nn_dataset *test,
                   nn_graph *g, int epochs, long rewind_k) {
    nn_adam_opts ao;
    nn_ce_opts ce;
    nn_loader_opts eval;
    nn_optim *opt;
    long step = 0;
    int e, n;
    float acc;
    memset(&ao, 0, sizeof ao);
    memset(&ce, 0, sizeof ce);
    memset(&eval, 0, sizeof eval);
    ao.lr = 1.2e-3f;
    opt = nn_adam(net, ao);
    nn_pruner_attach(p, opt);   /* masked weights stay 0 after every step */
    for (e = 0; e < epochs; e++) {
        nn_tensor *x;
        const int *y;
        while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
            if (step == rewind_k) nn_prune_set_rewind(p);
            nn_zero_grad(opt);
            nn_backward(nn_cross_entropy(nn_forward(net, x), y, ce));
            nn_step(opt);
            step++;
        }
    }
    nn_optim_free(opt);
    acc = nn_accuracy(net, test, g, eval);
    return acc;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 4, k = argc > 2 ? atoi(argv[2]) : 0;
    int ntrain = argc > 3 ? atoi(argv[3]) : 60000, data, lv, i;
    nn_dataset train_all, train, test;
    nn_loader_opts lo;
    nn_loader *ld;
    nn_module *net;
    nn_pruner *p;
    nn_prune_opts po;
    nn_graph *g;
    float sp[LEVELS], acc_ticket[LEVELS], acc_random[LEVELS], prev = 0.0f;
    double t0 = nn_time();

    if ((data = nn_fashion_mnist(NULL, &train_all, &test)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0) printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST ***\n");
    if (ntrain > 0 && ntrain < train_all.n) {
        int *idx = (int *)malloc((size_t)ntrain * sizeof(int));
        for (i = 0; i < ntrain; i++) idx[i] = i;
        nn_dataset_subset(&train_all, idx, ntrain, &train);
        free(idx);
        nn_dataset_free(&train_all);
    } else {
        train = train_all;
    }
    printf("LeNet-300-100 on %d training and %d test images, %d epochs per round, rewind to "
           "iteration %d\n", train.n, test.n, epochs, k);

    memset(&lo, 0, sizeof lo);
    memset(&po, 0, sizeof po);
    lo.batch_size = 128;
    lo.shuffle = 1;
    nn_seed(7);
    net = nn_sequential(nn_linear(784, 300), nn_relu(), nn_linear(300, 100), nn_relu(),
                        nn_linear(100, 10), NULL);
    p = nn_pruner_new(net, po);   /* 0.weight, 2.weight, 4.weight; rewind point = init */
    ld = nn_loader_new(&train, lo);
    g = nn_graph_new();

    printf("%9s %9s %9s %9s  %13s %13s\n", "sparsity", "fc1", "fc2", "out", "ticket acc",
           "random acc");
    for (lv = 0; lv < LEVELS; lv++) {
        if (lv > 0) {
            /* Prune from the last ticket's trained weights: each hidden layer
               keeps (1 - target) of its weights, the output layer half the cut. */
            float a = 1.0f - (1.0f - targets[lv]) / (1.0f - prev);
            nn_prune_magnitude_layer(p, 0, a);
            nn_prune_magnitude_layer(p, 1, a);
            nn_prune_magnitude_layer(p, 2, a * 0.5f);
            prev = targets[lv];
            /* The control first: the same masks, weights drawn afresh. */
            nn_seed(100 + (uint64_t)lv);
            nn_prune_reinit(p, 1000 + (uint64_t)lv);
            acc_random[lv] = train_round(net, p, ld, &test, g, epochs, -1);
            nn_prune_rewind(p);
        } else {
            acc_random[lv] = -1.0f;
        }
        nn_seed(100 + (uint64_t)lv);   /* the same data order for both */
        acc_ticket[lv] = train_round(net, p, ld, &test, g, epochs, lv == 0 ? k : -1);
        sp[lv] = nn_prune_sparsity(p, -1);
        printf("%8.2f%% %8.2f%% %8.2f%% %8.2f%%  %12.2f%% ", 100.0 * sp[lv],
               100.0 * nn_prune_sparsity(p, 0), 100.0 * nn_prune_sparsity(p, 1),
               100.0 * nn_prune_sparsity(p, 2), 100.0 * acc_ticket[lv]);
        if (acc_random[lv] >= 0.0f) printf("%12.2f%%\n", 100.0 * acc_random[lv]);
        else printf("%13s\n", "-");
        fflush(stdout);
    }
    printf("final masks:\n");
    nn_prune_print(p);
    {
        /* The plot: accuracy against the percentage of weights kept. */
        float kept[LEVELS], at[LEVELS], ar[LEVELS - 1], kr[LEVELS - 1];
        nn_plot_series s[2];
        nn_plot_opts pl;
        for (i = 0; i < LEVELS; i++) {
            kept[i] = 100.0f * (1.0f - sp[i]);
            at[i] = 100.0f * acc_ticket[i];
            if (i) {
                kr[i - 1] = kept[i];
                ar[i - 1] = 100.0f * acc_random[i];
            }
        }
        memset(s, 0, sizeof s);
        memset(&pl, 0, sizeof pl);
        s[0].name = "winning ticket (rewound)";
        s[0].x = kept; s[0].y = at; s[0].n = LEVELS;
        s[1].name = "same mask, random init";
        s[1].x = kr; s[1].y = ar; s[1].n = LEVELS - 1;
        pl.title = "Lottery tickets: LeNet-300-100 on Fashion-MNIST";
        pl.xlabel = "weights remaining (%)";
        pl.ylabel = "test accuracy (%)";
        pl.logx = 1;
        if (nn_plot_svg("lottery.svg", s, 2, pl) == NN_OK) printf("wrote lottery.svg\n");
    }
    {
        /* The first layer's mask: 64 hidden units, each a 28x28 picture. */
        nn_tensor *mk = nn_param(net, "0.weight_mask"), *img = nn_zeros(NULL, NN_SHAPE(64, 1, 28, 28));
        nn_png_grid_opts go;
        memset(&go, 0, sizeof go);
        memcpy(img->data, mk->data, 64 * 784 * sizeof(float));
        go.pad_value = 0.5f;
        if (nn_png_write_grid("lottery_mask.png", img, go) == NN_OK) printf("wrote lottery_mask.png\n");
        nn_tensor_free(img);
    }
    printf("%.0f s\n", nn_time() - t0);
    nn_graph_free(g);
    nn_loader_free(ld);
    nn_pruner_free(p);
    nn_module_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
