/* Inference latency: per-image microseconds of the benchmark MLP
   (784-256-128-10) and CNN (conv5x5x32-pool-conv5x5x64-pool-fc128-fc10) at
   batch 1, 8 and 256, in evaluation mode with gradients off, best of
   `passes` passes over 2,000 test images (Fashion-MNIST; random inputs when
   the data is missing, said on stderr and in a "data" line).  Weights are
   the untrained initialization: the time does not depend on their values.
   Prints one line per model and batch:
       <model> <batch> <us per image>
   and the same model after nn_quantize (dynamic int8, the same weights) as
   model "mlp-int8" / "cnn-int8", its passes alternated with the float ones.
   bench/pytorch/infer.py runs it alternately with PyTorch and prints both
   side by side.  Build and run:
     gcc -O3 -march=native -fopenmp -I. bench/infer.c -o build/bench_infer -lm
     ./build/bench_infer [threads] [passes] [mlp|cnn|both] */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "models.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIMG 2000


/* One pass over the whole batches of the NIMG images: seconds per image. */
static double pass(nn_module *net, nn_graph *g, const float *x, int batch, int image) {
    int nb = NIMG / batch, b;
    double t0 = nn_time();
    float sink = 0.0f;
    for (b = 0; b < nb; b++) {
        nn_tensor *in, *y;
        nn_graph_reset(g);
        in = image ? nn_tensor_from(g, x + (size_t)b * batch * 784, NN_SHAPE(batch, 1, 28, 28))
                   : nn_tensor_from(g, x + (size_t)b * batch * 784, NN_SHAPE(batch, 784));
        y = nn_forward(net, in);
        sink += y->data[0];
    }
    if (sink != sink) fprintf(stderr, "(NaN)\n");
    return (nn_time() - t0) / (double)(nb * batch);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, passes = argc > 2 ? atoi(argv[2]) : 5;
    const char *which = argc > 3 ? argv[3] : "both";
    static const int batches[3] = {1, 8, 256};
    nn_dataset train, test;
    float *x = (float *)malloc(sizeof(float) * NIMG * 784);
    nn_graph *g = nn_graph_new();
    int real, i, m, k, p;
    nn_set_threads(threads);
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    real = nn_fashion_mnist(NULL, &train, &test);
    nn_seed(1);
    if (real == 1 && test.n >= NIMG) {
        for (i = 0; i < NIMG * 784; i++) x[i] = (float)test.x[i] / 255.0f;
        printf("data fashion-mnist\n");
    } else {
        for (i = 0; i < NIMG * 784; i++) x[i] = nn_rand_uniform();
        fprintf(stderr, "infer: Fashion-MNIST missing, timing random inputs\n");
        printf("data random\n");
    }
    nn_set_grad_enabled(g, 0);
    for (m = 0; m < 2; m++) {
        nn_module *net;
        if (strcmp(which, "both") && strcmp(which, m ? "cnn" : "mlp")) continue;
        nn_module *qnet;
        nn_quantize_opts qo = {0};
        nn_save_opts so = {0};
        nn_load_opts lo = {0};
        void *buf = NULL;
        size_t size = 0;
        double qbest[3];
        net = m ? make_cnn() : make_mlp();
        qnet = m ? make_cnn() : make_mlp();
        nn_save_mem(net, so, &buf, &size); /* the same weights, then int8 */
        nn_load_mem(qnet, buf, size, lo);
        NN_FREE(buf);
        nn_quantize(qnet, qo);
        nn_train_mode(net, 0);
        for (k = 0; k < 3; k++) {
            double best = 1e30;
            pass(net, g, x, batches[k], m); /* warm-up */
            pass(qnet, g, x, batches[k], m);
            qbest[k] = 1e30;
            for (p = 0; p < passes; p++) {
                double t = pass(net, g, x, batches[k], m), tq = pass(qnet, g, x, batches[k], m);
                if (t < best) best = t;
                if (tq < qbest[k]) qbest[k] = tq;
            }
            printf("%s %d %.2f\n", m ? "cnn" : "mlp", batches[k], 1e6 * best);
            fflush(stdout);
        }
        for (k = 0; k < 3; k++) printf("%s-int8 %d %.2f\n", m ? "cnn" : "mlp", batches[k], 1e6 * qbest[k]);
        fflush(stdout);
        nn_module_free(net);
        nn_module_free(qnet);
    }
    nn_graph_free(g);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    free(x);
    return 0;
}
