/* The LR range test (Smith 2017), then one-cycle against step decay at the
   rate it found, on the Fashion-MNIST MLP (784-256-128-10, ReLU, SGD with
   momentum 0.9, batch 128).

   1. nn_lr_find sweeps the lr exponentially from 1e-6 to 10 over 200 steps,
      records the smoothed loss, stops when it diverges, suggests a rate and
      writes lr_finder.csv and lr_finder.svg.
   2. Two runs of the same epochs from the same weights with peak lr
      L = (lr at the loss minimum)/10: one-cycle (max_lr L, momentum cycled
      0.95 -> 0.85 -> 0.95) and step decay (L, x0.1 at 50% and 75% of the
      epochs).  Prints the test accuracy reached per epoch and writes
      lr_finder_acc.svg.

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -fopenmp -I. examples/lr_finder.c -o lr_finder -lm
       ./lr_finder [epochs=4] [train-samples=60000]
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist
   (apt-get install dataset-fashion-mnist); NN_DATA=synthetic runs it on a
   generated stand-in dataset instead (and says so). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EPOCHS 50

typedef struct batch_source {
    nn_module *net;
    nn_loader *ld;
    nn_graph *g;
} batch_source;

/* The LR finder's step: forward and backward on the next batch. */
static float next_batch_loss(void *user) {
    batch_source *b = (batch_source *)user;
    nn_tensor *x, *loss;
    const int *y;
    nn_ce_opts ce;
    memset(&ce, 0, sizeof ce);
    nn_graph_reset(b->g);
    if (!nn_loader_next(b->ld, b->g, &x, &y)) nn_loader_next(b->ld, b->g, &x, &y); /* new epoch */
    loss = nn_cross_entropy(nn_forward(b->net, x), y, ce);
    nn_backward(loss);
    return nn_item(loss);
}

/* Test accuracy in percent (evaluation mode, no gradients). */
static float evaluate(nn_module *net, const nn_dataset *ds, nn_graph *g) {
    nn_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    return 100.0f * nn_accuracy(net, ds, g, lo);
}

static nn_module *make_net(void) {
    nn_seed(42);
    return nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 128), nn_relu(),
                         nn_linear(128, 10), NULL);
}

static nn_optim *make_sgd(nn_module *net, float lr) {
    nn_sgd_opts s;
    memset(&s, 0, sizeof s);
    s.lr = lr;
    s.momentum = 0.9f;
    return nn_sgd(net, s);
}

/* Train with schedule kind 0 = one-cycle, 1 = step decay; acc[e] per epoch. */
static void train(int kind, float peak, int epochs, const nn_dataset *tr, const nn_dataset *te,
                  nn_graph *g, float *acc) {
    nn_module *net = make_net();
    nn_optim *opt = make_sgd(net, peak);
    nn_loader_opts lo;
    nn_loader *ld;
    nn_sched *s;
    nn_ce_opts ce;
    int e, batches;
    memset(&lo, 0, sizeof lo);
    memset(&ce, 0, sizeof ce);
    lo.batch_size = 128;
    lo.shuffle = 1;
    ld = nn_loader_new(tr, lo);
    batches = nn_loader_batches(ld);
    if (kind == 0) {
        nn_onecycle_opts oc;
        memset(&oc, 0, sizeof oc);
        oc.max_lr = peak;
        oc.epochs = epochs;
        oc.steps_per_epoch = batches;
        s = nn_onecycle(opt, oc);   /* stepped per iteration */
    } else {
        nn_multistep_lr_opts ms;
        memset(&ms, 0, sizeof ms);
        ms.milestones[0] = epochs / 2 > 0 ? epochs / 2 : 1;
        ms.milestones[1] = (3 * epochs) / 4 > ms.milestones[0] ? (3 * epochs) / 4 : 0;
        ms.gamma = 0.1f;
        s = nn_multistep_lr(opt, ms); /* stepped per epoch */
    }
    for (e = 0; e < epochs; e++) {
        nn_tensor *x, *loss;
        const int *y;
        double sum = 0.0;
        int nb = 0;
        float lr_start = nn_get_lr(opt);
        while (nn_graph_reset(g), nn_loader_next(ld, g, &x, &y) > 0) {
            loss = nn_cross_entropy(nn_forward(net, x), y, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
            if (kind == 0) nn_sched_step(s);
            sum += nn_item(loss);
            nb++;
        }
        if (kind == 1) nn_sched_step(s);
        acc[e] = evaluate(net, te, g);
        printf("%-10s epoch %d  lr %.4f -> %.4f  train loss %.4f  test acc %.2f%%\n",
               kind ? "step" : "one-cycle", e + 1, (double)lr_start, (double)nn_get_lr(opt),
               sum / nb, (double)acc[e]);
        fflush(stdout);
    }
    nn_sched_free(s);
    nn_loader_free(ld);
    nn_optim_free(opt);
    nn_module_free(net);
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 4, limit = argc > 2 ? atoi(argv[2]) : 0, e;
    static float acc[2][MAX_EPOCHS], ep[MAX_EPOCHS];
    nn_dataset train_set, test_set;
    int data; /* 1: Fashion-MNIST, 0: the generated stand-in */
    nn_graph *g = nn_graph_new();
    nn_lr_find_opts fo;
    nn_lr_find_result r;
    nn_loader_opts lo;
    batch_source src;
    nn_optim *opt;
    nn_plot_series series[2];
    nn_plot_opts po;
    float peak;

    if (epochs < 1) epochs = 1;
    if (epochs > MAX_EPOCHS) epochs = MAX_EPOCHS;
    if ((data = nn_fashion_mnist(NULL, &train_set, &test_set)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0)
        printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST; the "
               "accuracies below say nothing about Fashion-MNIST ***\n");
    if (limit > 0 && limit < train_set.n) train_set.n = limit;
    printf("train %d, test %d samples; %d threads\n", train_set.n, test_set.n, nn_get_threads());

    /* 1. the range test */
    src.net = make_net();
    src.g = g;
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 128;
    lo.shuffle = 1;
    src.ld = nn_loader_new(&train_set, lo);
    opt = make_sgd(src.net, 0.01f);
    memset(&fo, 0, sizeof fo);
    fo.start_lr = 1e-6f;
    fo.end_lr = 10.0f;
    fo.num_steps = 200;
    if (nn_lr_find(opt, next_batch_loss, &src, fo, &r) != NN_OK) {
        fprintf(stderr, "nn_lr_find: %s\n", nn_error_string());
        return 1;
    }
    printf("\nLR range test: %d steps (stopped at lr %.3g), minimum smoothed loss %.4f at lr %.3g\n",
           r.n, (double)r.lr[r.n - 1], (double)r.smoothed[r.best], (double)r.lr[r.best]);
    printf("suggestion (steepest fall): %.3g    minimum/10: %.3g\n", (double)r.suggestion,
           (double)r.lr_min_div10);
    printf("     lr        loss   smoothed\n");
    for (e = 0; e < r.n; e += r.n / 12 > 0 ? r.n / 12 : 1)
        printf("%10.3g  %8.4f  %8.4f\n", (double)r.lr[e], (double)r.loss[e], (double)r.smoothed[e]);
    nn_lr_find_write_csv(&r, "lr_finder.csv");
    nn_lr_find_write_svg(&r, "lr_finder.svg");
    printf("wrote lr_finder.csv and lr_finder.svg\n\n");
    peak = r.lr_min_div10;
    nn_lr_find_free(&r);
    nn_optim_free(opt);
    nn_loader_free(src.ld);
    nn_module_free(src.net);

    /* 2. one-cycle against step decay at that rate */
    printf("peak lr %.3g for both schedules, %d epochs\n", (double)peak, epochs);
    train(0, peak, epochs, &train_set, &test_set, g, acc[0]);
    train(1, peak, epochs, &train_set, &test_set, g, acc[1]);
    printf("\ntest accuracy (%%) per epoch\nepoch  one-cycle  step-decay\n");
    for (e = 0; e < epochs; e++) {
        printf("%5d  %9.2f  %10.2f\n", e + 1, (double)acc[0][e], (double)acc[1][e]);
        ep[e] = (float)(e + 1);
    }
    series[0].name = "one-cycle";
    series[1].name = "step decay";
    for (e = 0; e < 2; e++) {
        series[e].x = ep;
        series[e].y = acc[e];
        series[e].n = epochs;
    }
    memset(&po, 0, sizeof po);
    po.title = "One-cycle vs step decay at the range test's rate";
    po.xlabel = "epoch";
    po.ylabel = "test accuracy (%)";
    nn_plot_svg("lr_finder_acc.svg", series, 2, po);
    printf("wrote lr_finder_acc.svg\n");
    nn_graph_free(g);
    nn_dataset_free(&train_set);
    nn_dataset_free(&test_set);
    return 0;
}
