/* "Don't decay the learning rate, increase the batch size" (Smith, Kindermans,
   Ying, Le 2018) on the Fashion-MNIST MLP (784-256-128-10, ReLU, SGD with
   momentum 0.9, lr 0.05, first batch 32), same number of epochs, three ways:

     decay LR        batch 32 throughout, lr / 4 at 1/3 and 2/3 of the epochs
     increase batch  lr 0.05 throughout, batch x4 at the same epochs (32, 128, 512)
     hybrid          batch x4 up to a cap of 128, then lr / 4 instead

   All three follow the same noise scale g = lr N / (B (1 - m)) epoch by
   epoch, so they should reach about the same test accuracy; growing the
   batch needs far fewer parameter updates.  Prints a table per epoch, the
   update counts, and writes increase_batch.svg (test accuracy against
   parameter updates).

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -fopenmp -I. examples/increase_batch.c -o increase_batch -lm
       ./increase_batch [epochs=6] [train-samples=60000]
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist
   (apt-get install dataset-fashion-mnist); NN_DATA=synthetic runs it on a
   generated stand-in dataset instead (and says so). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EPOCHS 60
static const char *names[3] = {"decay LR", "increase batch", "hybrid"};

/* Test accuracy in percent (evaluation mode, no gradients). */
static float evaluate(nn_module *net, const nn_dataset *ds, nn_graph *g) {
    nn_loader_opts lo;
    memset(&lo, 0, sizeof lo);
    return 100.0f * nn_accuracy(net, ds, g, lo);
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 6, limit = argc > 2 ? atoi(argv[2]) : 0, run, e;
    static float acc[3][MAX_EPOCHS], upd[3][MAX_EPOCHS];
    long updates[3];
    double secs[3];
    int m1, m2;
    nn_dataset train_set, test_set;
    int data; /* 1: Fashion-MNIST, 0: the generated stand-in */
    nn_graph *g = nn_graph_new();
    nn_ce_opts ce;
    nn_plot_series series[3];
    nn_plot_opts po;

    if (epochs < 3) epochs = 3;
    if (epochs > MAX_EPOCHS) epochs = MAX_EPOCHS;
    m1 = epochs / 3;
    m2 = (2 * epochs) / 3;
    memset(&ce, 0, sizeof ce);
    if ((data = nn_fashion_mnist(NULL, &train_set, &test_set)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0)
        printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST; the "
               "accuracies below say nothing about Fashion-MNIST ***\n");
    if (limit > 0 && limit < train_set.n) train_set.n = limit;
    printf("train %d, test %d samples, %d epochs, milestones after epochs %d and %d; %d threads\n",
           train_set.n, test_set.n, epochs, m1, m2, nn_get_threads());

    for (run = 0; run < 3; run++) {
        nn_module *net;
        nn_optim *opt;
        nn_loader *ld;
        nn_loader_opts lo;
        nn_sgd_opts so;
        nn_sched *s;
        double t0 = nn_time();
        nn_seed(42);
        net = nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 128), nn_relu(),
                            nn_linear(128, 10), NULL);
        memset(&so, 0, sizeof so);
        so.lr = 0.05f;
        so.momentum = 0.9f;
        opt = nn_sgd(net, so);
        memset(&lo, 0, sizeof lo);
        lo.batch_size = 32;
        lo.shuffle = 1;
        ld = nn_loader_new(&train_set, lo);
        if (run == 0) {
            nn_multistep_lr_opts ms;
            memset(&ms, 0, sizeof ms);
            ms.milestones[0] = m1;
            ms.milestones[1] = m2;
            ms.gamma = 0.25f;
            s = nn_multistep_lr(opt, ms);
        } else {
            nn_increase_batch_opts bo;
            memset(&bo, 0, sizeof bo);
            bo.loader = ld;
            bo.batch_size = 32;
            bo.dataset_size = train_set.n;
            bo.milestones[0] = m1;
            bo.milestones[1] = m2;
            bo.factor = 4.0f;
            bo.max_batch_size = run == 2 ? 128 : 0;
            s = nn_increase_batch(opt, bo);
        }
        updates[run] = 0;
        printf("\n%s\nepoch  batch      lr   noise scale  updates  train loss  test acc\n", names[run]);
        for (e = 0; e < epochs; e++) {
            nn_tensor *x, *loss;
            const int *y;
            double sum = 0.0;
            int n, nb = 0, batch = 0;
            float lr = nn_get_lr(opt);
            while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
                if (!batch) batch = n;
                loss = nn_cross_entropy(nn_forward(net, x), y, ce);
                nn_zero_grad(opt);
                nn_backward(loss);
                nn_step(opt);
                sum += nn_item(loss);
                nb++;
            }
            updates[run] += nb;
            upd[run][e] = (float)updates[run];
            acc[run][e] = evaluate(net, &test_set, g);
            printf("%5d  %5d  %6.4f  %11.1f  %7ld  %10.4f  %7.2f%%\n", e + 1, batch, (double)lr,
                   (double)lr * train_set.n / (batch * (1.0 - 0.9)), updates[run], sum / nb,
                   (double)acc[run][e]);
            fflush(stdout);
            nn_sched_step(s);   /* per epoch: the next epoch's lr or batch size */
        }
        secs[run] = nn_time() - t0;
        nn_sched_free(s);
        nn_loader_free(ld);
        nn_optim_free(opt);
        nn_module_free(net);
    }

    printf("\n%-15s  final test acc  parameter updates  seconds\n", "schedule");
    for (run = 0; run < 3; run++)
        printf("%-15s  %13.2f%%  %17ld  %7.1f\n", names[run], (double)acc[run][epochs - 1],
               updates[run], secs[run]);

    for (run = 0; run < 3; run++) {
        series[run].name = names[run];
        series[run].x = upd[run];
        series[run].y = acc[run];
        series[run].n = epochs;
    }
    memset(&po, 0, sizeof po);
    po.title = "Same epochs: test accuracy against parameter updates";
    po.xlabel = "parameter updates";
    po.ylabel = "test accuracy (%)";
    po.logx = 1;
    nn_plot_svg("increase_batch.svg", series, 3, po);
    printf("wrote increase_batch.svg\n");
    nn_graph_free(g);
    nn_dataset_free(&train_set);
    nn_dataset_free(&test_set);
    return 0;
}
