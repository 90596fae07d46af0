/* Fashion-MNIST with the MLP of `make demo` (784-256-128-10, ReLU, SGD with
   Nesterov momentum, batch 128) trained through nn_fit: 10% of the training
   set held out (stratified, seeded) for validation, the lr cut by 5 when the
   validation loss stalls (reduce-on-plateau, fed by nn_fit), early stopping
   with patience 4 restoring the best weights, a checkpoint every 5 epochs
   and one of the best model, a CSV log and SVG learning curves refreshed
   every epoch.  Then the test set: accuracy, top-2 accuracy, the confusion
   matrix (a table and an SVG heat map) and the classification report.

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -fopenmp -I. examples/fashion_fit.c -o fashion_fit -lm
       ./fashion_fit [max_epochs] [--resume]
   Writes fashion_fit.csv, fashion_fit.svg, fashion_fit_confusion.svg,
   fashion_fit.ckpt and fashion_fit_best.ckpt in the current directory;
   --resume continues an interrupted run from fashion_fit.ckpt.  Data comes
   from $NN_DATA, else /usr/share/datasets/fashion-mnist; NN_DATA=synthetic
   runs on a generated stand-in (and says so). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const classes[10] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal", "Shirt", "Sneaker", "Bag", "Boot"};

int main(int argc, char **argv) {
    int epochs = 40, resume = 0, i, cm[100], data;
    nn_dataset train, test;
    nn_module *net;
    nn_optim *opt;
    nn_sched *plateau;
    nn_sgd_opts so = {0};
    nn_reduce_on_plateau_opts rp = {0};
    nn_fit_opts fo = {0};
    nn_loader_opts eval = {0};
    nn_history *h;
    nn_graph *g;
    nn_prf macro;
    float acc;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--resume") == 0) resume = 1;
        else epochs = atoi(argv[i]);
    }
    if ((data = nn_fashion_mnist(NULL, &train, &test)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0)
        printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST ***\n");
    printf("train %d, test %d samples; %d threads\n", train.n, test.n, nn_get_threads());

    nn_seed(42);
    net = nn_sequential(nn_linear(784, 256), nn_relu(),
                        nn_linear(256, 128), nn_relu(),
                        nn_linear(128, 10), NULL);
    nn_summary(net, NN_SHAPE(128, 784));
    so.lr = 0.05f;
    so.momentum = 0.9f;
    so.nesterov = 1;
    opt = nn_sgd(net, so);
    rp.factor = 0.2f;
    rp.patience = 1;
    plateau = nn_reduce_on_plateau(opt, rp);

    fo.epochs = epochs;
    fo.batch_size = 128;
    fo.val_split = 0.1f;
    fo.split_seed = 1;
    fo.stratified = 1;
    fo.sched = plateau;               /* stepped once per epoch with the validation loss */
    fo.stop.rule = NN_STOP_PATIENCE;  /* monitor: the validation loss (the default) */
    fo.stop.patience = 4;
    fo.stop.min_delta = 1e-3f;
    fo.checkpoint = "fashion_fit.ckpt";
    fo.checkpoint_every = 5;
    fo.best_checkpoint = "fashion_fit_best.ckpt";
    fo.resume = resume;
    fo.csv_log = "fashion_fit.csv";
    fo.svg = "fashion_fit.svg";
    if (!(h = nn_fit(net, opt, &train, fo))) {
        fprintf(stderr, "nn_fit: %s\n", nn_error_string());
        return 1;
    }
    printf("%d epochs, best %d (val_loss %.4f, val_accuracy %.4f)%s\n", h->epochs, h->best_epoch + 1,
           (double)h->val_loss[h->best_epoch], (double)h->val_metric[h->best_epoch],
           h->restored ? ", its weights restored" : "");

    g = nn_graph_new();
    acc = nn_accuracy(net, &test, g, eval);
    nn_confusion_matrix(net, &test, g, eval, cm);
    printf("\ntest accuracy %.2f%%\n\nconfusion matrix (rows: true class, columns: predicted)\n",
           100.0 * acc);
    nn_confusion_print(cm, 10, classes, stdout);
    nn_confusion_svg("fashion_fit_confusion.svg", cm, 10, classes, "Fashion-MNIST test set: MLP");
    printf("\n");
    nn_classification_report(cm, 10, classes, stdout);
    nn_precision_recall_f1(cm, 10, NULL, &macro, NULL);
    printf("\nmacro F1 %.4f; curves in fashion_fit.svg, confusion in fashion_fit_confusion.svg\n",
           (double)macro.f1);

    nn_history_free(h);
    nn_graph_free(g);
    nn_sched_free(plateau);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
