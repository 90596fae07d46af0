/* Fashion-MNIST with a 784-256-128-10 ReLU MLP: SGD with Nesterov momentum,
   batch 128, the learning rate on a one-cycle schedule (peak 0.1, momentum
   cycled 0.95 -> 0.85 -> 0.95).  Prints per epoch: training loss, training
   and test accuracy, seconds.  Measured: 89.3% test accuracy after 10 epochs,
   0.7 s per epoch at 1 thread.

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -fopenmp -I. examples/fashion_mlp.c -o fashion_mlp -lm
       ./fashion_mlp [epochs]
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist
   (apt-get install dataset-fashion-mnist); without it the program says how
   to get it and stops.  NN_DATA=synthetic runs it on a generated stand-in
   dataset instead (and says so). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 10, epoch, i, pred[128];
    nn_dataset train, test;
    int data; /* 1: Fashion-MNIST, 0: the generated stand-in */
    nn_loader_opts lo = {0};
    nn_sgd_opts so = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g;
    nn_sched *sched;
    nn_onecycle_opts oc = {0};

    if ((data = nn_fashion_mnist(NULL, &train, &test)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0)
        printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST; the "
               "accuracies below say nothing about Fashion-MNIST ***\n");
    printf("train %d, test %d samples; %d threads\n", train.n, test.n, nn_get_threads());

    nn_seed(42);
    net = nn_sequential(nn_linear(784, 256), nn_relu(),
                        nn_linear(256, 128), nn_relu(),
                        nn_linear(128, 10), NULL);
    so.lr = 0.05f;
    so.momentum = 0.9f;
    so.nesterov = 1;
    opt = nn_sgd(net, so);
    lo.batch_size = 128;
    lo.shuffle = 1;
    ld = nn_loader_new(&train, lo);
    /* One cycle over the whole run, stepped per batch. */
    oc.max_lr = 0.1f;
    oc.epochs = epochs;
    oc.steps_per_epoch = nn_loader_batches(ld);
    sched = nn_onecycle(opt, oc);
    g = nn_graph_new();

    printf("epoch   loss    train   test    seconds\n");
    for (epoch = 1; epoch <= epochs; epoch++) {
        double t0 = nn_time(), loss_sum = 0.0;
        int n, batches = 0, correct = 0, seen = 0;
        nn_tensor *x, *logits, *loss;
        const int *y;
        while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
            logits = nn_forward(net, x);
            loss = nn_cross_entropy(logits, y, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
            nn_sched_step(sched);
            loss_sum += nn_item(loss);
            batches++;
            nn_argmax_rows(logits, pred);
            for (i = 0; i < n; i++) correct += pred[i] == y[i];
            seen += n;
        }
        {
            double secs = nn_time() - t0;
            nn_loader_opts eval = {0};
            float test_acc = nn_accuracy(net, &test, g, eval);
            printf("%5d  %6.4f  %6.2f%%  %6.2f%%  %6.2f\n", epoch, loss_sum / batches,
                   100.0 * correct / seen, 100.0 * test_acc, secs);
            fflush(stdout);
        }
    }
    nn_graph_free(g);
    nn_loader_free(ld);
    nn_sched_free(sched);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
