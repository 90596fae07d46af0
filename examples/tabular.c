/* Tabular data from CSV files: classification on the Wisconsin breast cancer
   set (569 samples, 30 features, 2 classes) and regression on the diabetes
   set (442 samples, 10 features, a disease-progression target).  Each gets a
   seeded train/validation/test split (60/20/20; stratified for the
   classes), standardization fit on the training split and applied to the
   others, and a small ReLU MLP trained with Adam through nn_fit.  Prints
   validation and test accuracy, and validation and test MSE (in the
   target's units, after undoing its standardization).

   Build and run (from the repository root):
       cc -std=c99 -O2 -I. examples/tabular.c -o tabular -lm
       ./tabular [data-dir]
   The CSV files are the ones scikit-learn ships; on Debian they come with
   `apt-get install python3-sklearn` in the default data-dir
   /usr/lib/python3/dist-packages/sklearn/datasets/data.  Without them the
   program says so and exits with status 1. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DIR "/usr/lib/python3/dist-packages/sklearn/datasets/data"

static int load(const char *dir, const char *file, nn_csv_opts o, nn_dataset *ds) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (nn_csv_read(path, o, ds) == NN_OK) return 1;
    fprintf(stderr, "%s\nThe scikit-learn data files are missing: install them with\n"
                    "    apt-get install python3-sklearn\nor pass the folder holding %s.\n",
            nn_error_string(), file);
    return 0;
}

/* Mean squared error of m on ds in the target's units (ts undoes the
   targets' standardization). */
static float eval_mse(nn_module *m, const nn_dataset *ds, const nn_standardizer *ts, nn_graph *g) {
    nn_loader_opts lo;
    nn_loader *l;
    nn_tensor *x, *t;
    double se = 0.0;
    int b, i, count = 0;
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 256;
    l = nn_loader_new(ds, lo);
    nn_train_mode(m, 0);
    nn_set_grad_enabled(g, 0);
    while (nn_graph_reset(g), (b = nn_loader_next_xy(l, g, &x, &t, NULL)) > 0) {
        nn_tensor *p = nn_forward(m, x);
        nn_standardize_rows(ts, p->data, (size_t)b, 1);
        nn_standardize_rows(ts, t->data, (size_t)b, 1);
        for (i = 0; i < b; i++) {
            double d = (double)p->data[i] - (double)t->data[i];
            se += d * d;
        }
        count += b;
    }
    nn_set_grad_enabled(g, 1);
    nn_train_mode(m, 1);
    nn_loader_free(l);
    return (float)(se / count);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : DEFAULT_DIR;
    nn_csv_opts o;
    nn_dataset all, xs, ys, tr, va, te;
    nn_standardizer fs, ts;
    nn_loader_opts lo;
    nn_adam_opts ao;
    nn_fit_opts fo;
    nn_history *h;
    nn_graph *g = nn_graph_new();
    nn_module *net;
    nn_optim *opt;

    /* --- classification: breast_cancer.csv ---------------------------------
       Its first line holds counts and class names ("569,30,malignant,benign"),
       then 30 features and a 0/1 label per row. */
    memset(&o, 0, sizeof o);
    o.skip_rows = 1;
    o.classes = 1;
    if (!load(dir, "breast_cancer.csv", o, &all)) return 1;
    nn_dataset_split(&all, 0.2f, 0.2f, 42, 1, &tr, &va, &te);
    printf("breast cancer: %d samples, %d features, %d classes; split %d/%d/%d\n", all.n,
           all.sample_size, all.nclasses, tr.n, va.n, te.n);
    nn_standardize_fit(&tr, 0, &fs);
    nn_standardize_apply(&fs, &tr);
    nn_standardize_apply(&fs, &va);
    nn_standardize_apply(&fs, &te);
    nn_seed(1);
    net = nn_sequential(nn_linear(30, 32), nn_relu(), nn_linear(32, 2), NULL);
    /* Keep the standardizer with the model: nn_save would store it. */
    nn_standardize_keep(&fs, net, "input");
    memset(&ao, 0, sizeof ao);
    ao.lr = 1e-3f;
    opt = nn_adam(net, ao);
    /* 50 epochs of minibatches of 32 (cross-entropy, accuracy), validated on va */
    memset(&fo, 0, sizeof fo);
    fo.epochs = 50;
    fo.batch_size = 32;
    fo.val = &va;
    fo.progress = NN_PROGRESS_QUIET;
    if (!(h = nn_fit(net, opt, &tr, fo))) return 1;
    memset(&lo, 0, sizeof lo);
    printf("  after %d epochs: train loss %.4f, val accuracy %.4f, test accuracy %.4f\n", h->epochs,
           (double)h->train_loss[h->epochs - 1], (double)h->val_metric[h->epochs - 1],
           (double)nn_accuracy(net, &te, g, lo));
    nn_history_free(h);
    nn_optim_free(opt);
    nn_module_free(net); /* frees the kept standardizer tensors too */
    nn_standardizer_free(&fs);
    nn_dataset_free(&all);
    nn_dataset_free(&tr);
    nn_dataset_free(&va);
    nn_dataset_free(&te);

    /* --- regression: diabetes_data_raw.csv(.gz), diabetes_target.csv(.gz) ---
       Space-separated, no header; the features and the target are in two
       files, read as feature-only sets (target "") and joined. */
    memset(&o, 0, sizeof o);
    o.delimiter = ' ';
    o.target = "";
    if (!load(dir, "diabetes_data_raw.csv.gz", o, &xs)) return 1;
    if (!load(dir, "diabetes_target.csv.gz", o, &ys)) return 1;
    if (xs.n != ys.n || ys.sample_size != 1) {
        fprintf(stderr, "diabetes: %d feature rows but %d target rows\n", xs.n, ys.n);
        return 1;
    }
    nn_dataset_tabular(xs.n, xs.sample_size, xs.features, NULL, ys.features, 1, &all);
    nn_dataset_free(&xs);
    nn_dataset_free(&ys);
    nn_dataset_split(&all, 0.2f, 0.2f, 42, 0, &tr, &va, &te);
    printf("diabetes: %d samples, %d features; split %d/%d/%d\n", all.n, all.sample_size, tr.n,
           va.n, te.n);
    nn_standardize_fit(&tr, 0, &fs);
    nn_standardize_fit(&tr, 1, &ts);
    nn_standardize_apply(&fs, &tr);
    nn_standardize_apply(&fs, &va);
    nn_standardize_apply(&fs, &te);
    nn_standardize_apply(&ts, &tr);
    nn_standardize_apply(&ts, &va);
    nn_standardize_apply(&ts, &te);
    nn_seed(1);
    net = nn_sequential(nn_linear(10, 16), nn_relu(), nn_linear(16, 1), NULL);
    memset(&ao, 0, sizeof ao);
    ao.lr = 1e-3f;
    ao.weight_decay = 1e-3f;
    opt = nn_adam(net, ao);
    /* 100 epochs, mean squared error on the standardized target */
    fo.epochs = 100;
    fo.loss = NN_FIT_MSE;
    if (!(h = nn_fit(net, opt, &tr, fo))) return 1;
    printf("  after %d epochs: train loss %.4f (standardized), val MSE %.1f, test MSE %.1f\n",
           h->epochs, (double)h->train_loss[h->epochs - 1], (double)eval_mse(net, &va, &ts, g),
           (double)eval_mse(net, &te, &ts, g));
    nn_history_free(h);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_standardizer_free(&fs);
    nn_standardizer_free(&ts);
    nn_dataset_free(&all);
    nn_dataset_free(&tr);
    nn_dataset_free(&va);
    nn_dataset_free(&te);
    nn_graph_free(g);
    return 0;
}
