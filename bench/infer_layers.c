/* Per-layer inference time of the benchmark models (bench/models.h), float
   and after nn_quantize (dynamic int8, the same weights), as nn_sequential
   runs them in evaluation mode with gradients off: a layer with its fused
   followers (Conv2d->ReLU, Linear->ReLU) is one step.  Each step's input
   is the model's own activation for Fashion-MNIST test images (random ones
   when the data is missing); each step is timed alone, best of `reps`
   calls, the float and int8 calls alternated, then the whole forward the
   same way.  Prints one line per step:
       <model> <batch> <step> <float us> <int8 us> <float / int8>
   (us per call, not per image), and "total" and "sum" (of the steps) lines.
   Build and run:
     gcc -O3 -march=native -fopenmp -I. bench/infer_layers.c -o build/bench_infer_layers -lm
     ./build/bench_infer_layers [threads] [batch] [reps] [mlp|cnn|both] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One step of m's children from child i on input in: the fused run when
   child i fuses with its followers (*used: how many it took), else its
   forward. */
static nn_tensor *step(nn_module *m, int i, nn_tensor *in, int *used) {
    nn_module *c = m->children[i];
    nn_tensor *y = NULL;
    *used = 0;
    if (c->fuse) *used = c->fuse(c, m->children + i + 1, m->nchildren - i - 1, in, &y);
    if (*used <= 0) {
        *used = 0;
        y = nn_forward(c, in);
    }
    return y;
}

/* Best time of reps calls of step i (or of the whole forward, i < 0) on a
   copy of x (shape s) in g. */
static double best_of(nn_module *m, int i, nn_graph *g, const float *x, nn_shape s, int reps, double *best) {
    int r, used = 0;
    for (r = 0; r < reps; r++) {
        nn_tensor *in, *y;
        double t0, t;
        nn_graph_reset(g);
        in = nn_tensor_from(g, x, s);
        t0 = nn_time();
        y = i < 0 ? nn_forward(m, in) : step(m, i, in, &used);
        t = nn_time() - t0;
        if (!y) return -1.0;
        if (t < *best) *best = t;
    }
    return (double)used;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, batch = argc > 2 ? atoi(argv[2]) : 1;
    int reps = argc > 3 ? atoi(argv[3]) : 2000, mdl;
    const char *which = argc > 4 ? argv[4] : "both";
    nn_dataset train, test;
    nn_graph *g = nn_graph_new(), *ga = nn_graph_new();
    float *img = (float *)malloc(sizeof(float) * (size_t)batch * 784);
    int real, i;
    nn_set_threads(threads);
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    real = nn_fashion_mnist(NULL, &train, &test);
    nn_seed(1);
    for (i = 0; i < batch * 784; i++)
        img[i] = real == 1 && test.n >= batch ? (float)test.x[i] / 255.0f : nn_rand_uniform();
    printf("data %s\n", real == 1 && test.n >= batch ? "fashion-mnist" : "random");
    nn_set_grad_enabled(g, 0);
    nn_set_grad_enabled(ga, 0);
    for (mdl = 0; mdl < 2; mdl++) {
        nn_module *net[2];
        nn_quantize_opts qo = {0};
        nn_save_opts so = {0};
        nn_load_opts lo = {0};
        void *buf = NULL;
        size_t size = 0;
        nn_tensor *act[2];
        double sum[2] = {0.0, 0.0}, tot[2] = {1e30, 1e30};
        int k, p;
        if (strcmp(which, "both") && strcmp(which, mdl ? "cnn" : "mlp")) continue;
        net[0] = mdl ? make_cnn() : make_mlp();
        net[1] = mdl ? make_cnn() : make_mlp();
        nn_save_mem(net[0], so, &buf, &size); /* the same weights, then int8 */
        nn_load_mem(net[1], buf, size, lo);
        nn_free(buf);
        nn_quantize(net[1], qo);
        nn_train_mode(net[0], 0);
        /* each model's activations, kept in ga: the input of its every step */
        for (k = 0; k < 2; k++) act[k] = nn_tensor_from(ga, img, mdl ? NN_SHAPE(batch, 1, 28, 28) : NN_SHAPE(batch, 784));
        for (i = 0; i < net[0]->nchildren;) {
            double best[2] = {1e30, 1e30};
            int used[2] = {0, 0};
            for (p = 0; p < 5; p++) /* alternated rounds */
                for (k = 0; k < 2; k++)
                    used[k] = (int)best_of(net[k], i, g, act[k]->data, nn_shape_of(act[k]), reps / 5 + 1, &best[k]);
            if (used[0] != used[1]) {
                fprintf(stderr, "infer_layers: the float and int8 models fuse differently at child %d\n", i);
                return 1;
            }
            printf("%s %d %d:%s%s%s %.2f %.2f %.2f\n", mdl ? "cnn" : "mlp", batch, i, net[1]->children[i]->type,
                   used[0] ? "+" : "", used[0] ? net[0]->children[i + 1]->type : "", 1e6 * best[0], 1e6 * best[1],
                   best[0] / best[1]);
            fflush(stdout);
            for (k = 0; k < 2; k++) {
                int u;
                sum[k] += best[k];
                act[k] = step(net[k], i, act[k], &u); /* (in ga: kept) */
            }
            i += 1 + used[0];
        }
        for (p = 0; p < 5; p++)
            for (k = 0; k < 2; k++)
                best_of(net[k], -1, g, img, mdl ? NN_SHAPE(batch, 1, 28, 28) : NN_SHAPE(batch, 784), reps / 5 + 1,
                        &tot[k]);
        printf("%s %d sum %.2f %.2f %.2f\n", mdl ? "cnn" : "mlp", batch, 1e6 * sum[0], 1e6 * sum[1], sum[0] / sum[1]);
        printf("%s %d total %.2f %.2f %.2f\n", mdl ? "cnn" : "mlp", batch, 1e6 * tot[0], 1e6 * tot[1],
               tot[0] / tot[1]);
        fflush(stdout);
        nn_graph_reset(ga);
        nn_module_free(net[0]);
        nn_module_free(net[1]);
    }
    nn_graph_free(g);
    nn_graph_free(ga);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    free(img);
    return 0;
}
