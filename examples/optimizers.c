/* SGD, momentum, Nesterov, Adam, AdamW, RAdam and Ranger on the
   Fashion-MNIST MLP (784-256-128-10, ReLU), same budget, same initial
   weights, same batch order.  Prints the test accuracy after every epoch and
   writes two plots: optimizers_loss.svg (training loss, smoothed, against
   epochs) and optimizers_acc.svg (test accuracy per epoch).

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -fopenmp -I. examples/optimizers.c -o optimizers -lm
       ./optimizers [epochs=3] [train-samples=60000]
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist
   (apt-get install dataset-fashion-mnist); NN_DATA=synthetic runs it on a
   generated stand-in dataset instead (and says so). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOPT 7
#define MAX_EPOCHS 50
#define MAX_POINTS 4096

static const char *names[NOPT] = {"SGD", "SGD+momentum", "Nesterov", "Adam", "AdamW", "RAdam", "Ranger"};

static nn_optim *make_optimizer(int k, nn_module *net) {
    nn_sgd_opts s; nn_adam_opts a; nn_adamw_opts w; nn_radam_opts r; nn_ranger_opts rg;
    memset(&s, 0, sizeof s); memset(&a, 0, sizeof a); memset(&w, 0, sizeof w);
    memset(&r, 0, sizeof r); memset(&rg, 0, sizeof rg);
    s.lr = 0.05f;
    switch (k) {
    case 0: return nn_sgd(net, s);
    case 1: s.momentum = 0.9f; return nn_sgd(net, s);
    case 2: s.momentum = 0.9f; s.nesterov = 1; return nn_sgd(net, s);
    case 3: a.lr = 1e-3f; return nn_adam(net, a);
    case 4: w.lr = 1e-3f; w.weight_decay = 0.01f; return nn_adamw(net, w);
    case 5: r.lr = 1e-3f; return nn_radam(net, r);
    default: rg.lr = 1e-3f; return nn_ranger(net, rg);
    }
}

/* Accuracy and mean loss of net over ds, without recording gradients. */
static float evaluate(nn_module *net, const nn_dataset *ds, nn_graph *g, float *loss_out) {
    nn_loader_opts lo;
    nn_loader *ld;
    nn_tensor *x, *logits;
    const int *y;
    nn_ce_opts ce;
    int n, i, correct = 0, total = 0, pred[1000];
    double loss = 0.0;
    memset(&lo, 0, sizeof lo);
    memset(&ce, 0, sizeof ce);
    lo.batch_size = 1000;
    ld = nn_loader_new(ds, lo);
    nn_train_mode(net, 0);
    nn_set_grad_enabled(g, 0);
    while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
        logits = nn_forward(net, x);
        loss += (double)nn_item(nn_cross_entropy(logits, y, ce)) * n;
        nn_argmax_rows(logits, pred);
        for (i = 0; i < n; i++) correct += pred[i] == y[i];
        total += n;
    }
    nn_set_grad_enabled(g, 1);
    nn_train_mode(net, 1);
    nn_loader_free(ld);
    *loss_out = (float)(loss / total);
    return (float)correct / (float)total;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 3, limit = argc > 2 ? atoi(argv[2]) : 0, k, e;
    static float acc[NOPT][MAX_EPOCHS], tloss[NOPT][MAX_EPOCHS], ep_x[MAX_EPOCHS + 1];
    static float curve_x[NOPT][MAX_POINTS], curve_y[NOPT][MAX_POINTS];
    int npoints[NOPT];
    double secs[NOPT];
    nn_dataset train, test;
    int data; /* 1: Fashion-MNIST, 0: the generated stand-in */
    nn_graph *g = nn_graph_new();
    nn_ce_opts ce;
    nn_plot_series series[NOPT];
    nn_plot_opts po;

    if (epochs < 1) epochs = 1;
    if (epochs > MAX_EPOCHS) epochs = MAX_EPOCHS;
    memset(&ce, 0, sizeof ce);
    if ((data = nn_fashion_mnist(NULL, &train, &test)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0)
        printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST; the "
               "accuracies below say nothing about Fashion-MNIST ***\n");
    if (limit > 0 && limit < train.n) train.n = limit;   /* a prefix, for quick runs */
    printf("train %d, test %d samples, %d epochs, batch 128; %d threads\n", train.n, test.n, epochs,
           nn_get_threads());

    for (k = 0; k < NOPT; k++) {
        nn_module *net;
        nn_optim *opt;
        nn_loader *ld;
        nn_loader_opts lo;
        double t0 = nn_time(), avg = 0.0;
        int step = 0, batches;
        nn_seed(42);   /* same weights and batch order for every optimizer */
        net = nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 128), nn_relu(),
                            nn_linear(128, 10), NULL);
        opt = make_optimizer(k, net);
        memset(&lo, 0, sizeof lo);
        lo.batch_size = 128;
        lo.shuffle = 1;
        ld = nn_loader_new(&train, lo);
        batches = nn_loader_batches(ld);
        npoints[k] = 0;
        for (e = 0; e < epochs; e++) {
            nn_tensor *x, *loss;
            const int *y;
            double sum = 0.0;
            int n, nb = 0;
            float test_loss;
            while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
                loss = nn_cross_entropy(nn_forward(net, x), y, ce);
                nn_zero_grad(opt);
                nn_backward(loss);
                nn_step(opt);
                sum += nn_item(loss);
                nb++;
                step++;
                avg = 0.98 * avg + 0.02 * nn_item(loss);
                if (step % 10 == 0 && npoints[k] < MAX_POINTS) {
                    curve_x[k][npoints[k]] = (float)step / (float)batches;
                    curve_y[k][npoints[k]++] = (float)(avg / (1.0 - pow(0.98, step)));
                }
            }
            tloss[k][e] = (float)(sum / nb);
            acc[k][e] = 100.0f * evaluate(net, &test, g, &test_loss);
            printf("%-13s epoch %d  train loss %.4f  test loss %.4f  test acc %.2f%%\n", names[k],
                   e + 1, (double)tloss[k][e], (double)test_loss, (double)acc[k][e]);
            fflush(stdout);
        }
        secs[k] = nn_time() - t0;
        nn_loader_free(ld);
        nn_optim_free(opt);
        nn_module_free(net);
    }

    printf("\ntest accuracy (%%) after each epoch\n%-13s", "optimizer");
    for (e = 0; e < epochs; e++) printf("  ep%-4d", e + 1);
    printf("  final loss  seconds\n");
    for (k = 0; k < NOPT; k++) {
        printf("%-13s", names[k]);
        for (e = 0; e < epochs; e++) printf("  %6.2f", (double)acc[k][e]);
        printf("  %10.4f  %7.1f\n", (double)tloss[k][epochs - 1], secs[k]);
    }

    memset(&po, 0, sizeof po);
    for (k = 0; k < NOPT; k++) {
        series[k].name = names[k];
        series[k].x = curve_x[k];
        series[k].y = curve_y[k];
        series[k].n = npoints[k];
    }
    po.title = "Fashion-MNIST MLP: training loss (smoothed)";
    po.xlabel = "epoch";
    po.ylabel = "cross-entropy";
    po.logy = 1;
    if (nn_plot_svg("optimizers_loss.svg", series, NOPT, po) != NN_OK) fprintf(stderr, "%s\n", nn_error_string());
    for (e = 0; e < epochs; e++) ep_x[e] = (float)(e + 1);
    for (k = 0; k < NOPT; k++) {
        series[k].x = ep_x;
        series[k].y = acc[k];
        series[k].n = epochs;
    }
    po.title = "Fashion-MNIST MLP: test accuracy";
    po.ylabel = "test accuracy (%)";
    po.logy = 0;
    if (nn_plot_svg("optimizers_acc.svg", series, NOPT, po) != NN_OK) fprintf(stderr, "%s\n", nn_error_string());
    printf("wrote optimizers_loss.svg and optimizers_acc.svg\n");
    nn_graph_free(g);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
