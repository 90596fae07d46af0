/* Random versus grid search (Bergstra & Bengio 2012) with the same number of
   trials, on the learning rate and weight decay of SGD with momentum 0.9
   training a 784-128-10 ReLU MLP on Fashion-MNIST.  Each trial trains from
   the same initialization for `epochs` epochs on a 12000-image subset of the
   training set and is scored by its accuracy on 6000 held-out training
   images (validation).  Grid: 4 x 4 points, log-spaced; random: 16 draws
   from the same log-uniform ranges.  A third run is random search with
   successive halving (27 trials at a third of the epochs, the best 9 at
   all of them) and a refinement round of 8 trials around the best.  Prints
   each table, the best validation accuracy each found and the test accuracy
   of that configuration; writes search_random.csv, search_grid.csv and
   search.svg (each trial's validation accuracy against its lr).

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -I. examples/search.c -o search -lm
       ./search [epochs per trial (2)] [trials (16)]
   Data: $NN_DATA, else /usr/share/datasets/fashion-mnist. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct task {
    nn_dataset train, val, test;
    nn_graph *g;
    int epochs;
    float last_test;   /* test accuracy of the last trained configuration */
} task;

/* Train with lr = v[0], weight decay = v[1] for budget thirds of an epoch;
   return the validation accuracy. */
static double objective(const double *v, int budget, void *user) {
    task *t = (task *)user;
    nn_sgd_opts so;
    nn_loader_opts lo, eval;
    nn_ce_opts ce;
    nn_module *net;
    nn_optim *opt;
    nn_loader *ld;
    int n, batches, b = 0;
    double acc;
    memset(&so, 0, sizeof so);
    memset(&lo, 0, sizeof lo);
    memset(&eval, 0, sizeof eval);
    memset(&ce, 0, sizeof ce);
    nn_seed(5);   /* the same initialization and data order for every trial */
    net = nn_sequential(nn_linear(784, 128), nn_relu(), nn_linear(128, 10), NULL);
    so.lr = (float)v[0];
    so.weight_decay = (float)v[1];
    so.momentum = 0.9f;
    opt = nn_sgd(net, so);
    lo.batch_size = 64;
    lo.shuffle = 1;
    ld = nn_loader_new(&t->train, lo);
    batches = nn_loader_batches(ld) * budget / 3;   /* budget in thirds of an epoch */
    while (b < batches) {
        nn_tensor *x;
        const int *y;
        nn_graph_reset(t->g);
        if ((n = nn_loader_next(ld, t->g, &x, &y)) <= 0) continue;   /* next epoch */
        nn_zero_grad(opt);
        nn_backward(nn_cross_entropy(nn_forward(net, x), y, ce));
        nn_step(opt);
        b++;
    }
    acc = nn_accuracy(net, &t->val, t->g, eval);
    t->last_test = nn_accuracy(net, &t->test, t->g, eval);
    nn_loader_free(ld);
    nn_optim_free(opt);
    nn_module_free(net);
    return acc < 0.0 ? NAN : acc;   /* a diverged run (NaN loss) scores 0.1 anyway */
}

/* Sort points by x (the plot joins them in order). */
static void sort_xy(float *x, float *y, int n) {
    int i, j;
    for (i = 1; i < n; i++)
        for (j = i; j > 0 && x[j] < x[j - 1]; j--) {
            float a = x[j], b = y[j];
            x[j] = x[j - 1]; y[j] = y[j - 1];
            x[j - 1] = a; y[j - 1] = b;
        }
}

static float test_of(task *t, const double *best) {
    objective(best, 3 * t->epochs, t);
    return t->last_test;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 2, trials = argc > 2 ? atoi(argv[2]) : 16, data, i, k;
    nn_dataset all;
    task t;
    nn_hparam sp[2];
    nn_search_opts so;
    nn_search_result rr, gr, hr;
    int *idx;
    double t0 = nn_time();
    float test_r, test_g, test_h;

    memset(&t, 0, sizeof t);
    if ((data = nn_fashion_mnist(NULL, &all, &t.test)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0) printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST ***\n");
    /* Subsets: 12000 training and 6000 validation images from the training set. */
    idx = (int *)malloc(18000 * sizeof(int));
    for (i = 0; i < 18000; i++) idx[i] = i;
    nn_dataset_subset(&all, idx, 12000, &t.train);
    nn_dataset_subset(&all, idx + 12000, 6000, &t.val);
    free(idx);
    nn_dataset_free(&all);
    t.g = nn_graph_new();
    t.epochs = epochs;
    printf("MLP 784-128-10, SGD momentum 0.9, %d epochs per trial on %d images, validation %d, "
           "test %d\n", epochs, t.train.n, t.val.n, t.test.n);

    memset(sp, 0, sizeof sp);
    sp[0].name = "lr"; sp[0].kind = NN_HP_LOG_UNIFORM; sp[0].lo = 1e-3; sp[0].hi = 1.0;
    sp[1].name = "weight_decay"; sp[1].kind = NN_HP_LOG_UNIFORM; sp[1].lo = 1e-6; sp[1].hi = 1e-1;
    memset(&so, 0, sizeof so);
    so.trials = trials;
    so.seed = 1;
    so.maximize = 1;
    so.budget = 3 * epochs;
    printf("\n== random search, %d trials ==\n", trials);
    so.csv_path = "search_random.csv";
    nn_random_search(sp, 2, objective, &t, so, &rr);
    test_r = test_of(&t, rr.best_values);
    for (k = 1; k * k <= trials; k++) {}
    k--;
    printf("\n== grid search, %d x %d = %d trials ==\n", k, k, k * k);
    so.grid_points = k;
    so.csv_path = "search_grid.csv";
    nn_grid_search(sp, 2, objective, &t, so, &gr);
    test_g = test_of(&t, gr.best_values);
    printf("\n== random search with successive halving (eta 3) and 8 refinement trials ==\n");
    so.grid_points = 0;
    so.trials = 27;
    so.halving = 1;
    so.refine_trials = 8;
    so.csv_path = NULL;
    nn_random_search(sp, 2, objective, &t, so, &hr);
    test_h = test_of(&t, hr.best_values);

    printf("\n%-34s %7s %10s %12s %9s %9s\n", "search", "trials", "lr", "weight_decay", "val acc",
           "test acc");
    printf("%-34s %7d %10.4g %12.4g %8.2f%% %8.2f%%\n", "random", rr.ntrials, rr.best_values[0],
           rr.best_values[1], 100.0 * rr.best_score, 100.0 * test_r);
    printf("%-34s %7d %10.4g %12.4g %8.2f%% %8.2f%%\n", "grid", gr.ntrials, gr.best_values[0],
           gr.best_values[1], 100.0 * gr.best_score, 100.0 * test_g);
    printf("%-34s %7d %10.4g %12.4g %8.2f%% %8.2f%%\n", "random + halving + refinement", hr.ntrials,
           hr.best_values[0], hr.best_values[1], 100.0 * hr.best_score, 100.0 * test_h);
    {
        /* The trials in the (log lr, log wd) plane. */
        float x[2][64], y[2][64];
        nn_plot_series s[2];
        nn_plot_opts pl;
        memset(s, 0, sizeof s);
        memset(&pl, 0, sizeof pl);
        for (i = 0; i < rr.ntrials && i < 64; i++) {
            x[0][i] = (float)rr.values[2 * i];
            y[0][i] = (float)rr.scores[i] * 100.0f;
        }
        for (i = 0; i < gr.ntrials && i < 64; i++) {
            x[1][i] = (float)gr.values[2 * i];
            y[1][i] = (float)gr.scores[i] * 100.0f;
        }
        sort_xy(x[0], y[0], rr.ntrials < 64 ? rr.ntrials : 64);
        sort_xy(x[1], y[1], gr.ntrials < 64 ? gr.ntrials : 64);
        s[0].name = "random"; s[0].x = x[0]; s[0].y = y[0]; s[0].n = rr.ntrials < 64 ? rr.ntrials : 64;
        s[1].name = "grid"; s[1].x = x[1]; s[1].y = y[1]; s[1].n = gr.ntrials < 64 ? gr.ntrials : 64;
        pl.title = "Validation accuracy of each trial against its learning rate";
        pl.xlabel = "learning rate";
        pl.ylabel = "validation accuracy (%)";
        pl.logx = 1;
        if (nn_plot_svg("search.svg", s, 2, pl) == NN_OK) printf("wrote search.svg\n");
    }
    printf("%.0f s\n", nn_time() - t0);
    nn_search_free(&rr);
    nn_search_free(&gr);
    nn_search_free(&hr);
    nn_graph_free(t.g);
    nn_dataset_free(&t.train);
    nn_dataset_free(&t.val);
    nn_dataset_free(&t.test);
    return 0;
}
