/* Embedding a trained model in a C program: load a model file, run one
   input, read the class.  The model is the 784-256-128-10 ReLU MLP of
   examples/fashion_mlp.c; no other example writes a model file, so
   `--train` trains one (SGD with Nesterov momentum, a few seconds per
   epoch) and saves it as safetensors.  Then, with the model file:
       ./embed [model] [index]   classify Fashion-MNIST test image `index`
       ./embed [model] -         classify 784 raw bytes (28x28 grey, 0 = black
                                 background as in Fashion-MNIST) read from stdin
   It prints the class name, its probability, and the time of one inference
   (batch 1, evaluation mode, gradients off; the median of 200 calls after a
   warm-up, and the first call).  docs/inference.md explains the path.

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -I. examples/embed.c -o embed -lm
       ./embed --train 3 fashion_mlp.safetensors
       ./embed fashion_mlp.safetensors 0
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                            "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                            "Ankle boot"};

/* The architecture; the file holds only the weights, by name ("0.weight"). */
static nn_module *make_model(void) {
    return nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 128), nn_relu(),
                         nn_linear(128, 10), NULL);
}

/* Train for `epochs` epochs and save to path. */
static int train_and_save(int epochs, const char *path) {
    nn_dataset train, test;
    nn_loader_opts lo = {0};
    nn_sgd_opts so = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g;
    int epoch, rc = 0;
    if (nn_fashion_mnist(NULL, &train, &test) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    nn_seed(42);
    net = make_model();
    so.lr = 0.05f;
    so.momentum = 0.9f;
    so.nesterov = 1;
    opt = nn_sgd(net, so);
    lo.batch_size = 128;
    lo.shuffle = 1;
    ld = nn_loader_new(&train, lo);
    g = nn_graph_new();
    for (epoch = 1; epoch <= epochs; epoch++) {
        nn_tensor *x;
        const int *y;
        nn_loader_opts eval = {0};
        while (nn_graph_reset(g), nn_loader_next(ld, g, &x, &y) > 0) {
            nn_tensor *loss = nn_cross_entropy(nn_forward(net, x), y, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
        }
        printf("epoch %d: test accuracy %.2f%%\n", epoch, 100.0 * nn_accuracy(net, &test, g, eval));
    }
    if (nn_save(net, path) != NN_OK) {
        fprintf(stderr, "embed: %s\n", nn_error_string());
        rc = 1;
    } else {
        printf("saved %s (%zu parameters)\n", path, nn_parameter_count(net));
    }
    nn_graph_free(g);
    nn_loader_free(ld);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *path = "fashion_mlp.safetensors", *which = "0";
    unsigned char pixels[784];
    float input[784];
    double times[200], first;
    nn_load_opts lopts = {0};
    nn_module *net;
    nn_graph *g;
    nn_tensor *x, *probs = NULL;
    int label = -1, best = 0, i, k;

    if (argc > 1 && strcmp(argv[1], "--train") == 0)
        return train_and_save(argc > 2 ? atoi(argv[2]) : 3, argc > 3 ? argv[3] : path);
    if (argc > 1) path = argv[1];
    if (argc > 2) which = argv[2];

    /* The model: build the architecture, then load the weights. */
    net = make_model();
    if (nn_load(net, path, lopts) != NN_OK) {
        fprintf(stderr, "embed: %s\n(make one with: ./embed --train 3 %s)\n", nn_error_string(), path);
        nn_module_free(net);
        return 1;
    }
    nn_train_mode(net, 0);             /* evaluation: dropout off, running statistics */

    /* The input: a test image, or raw bytes from stdin. */
    if (strcmp(which, "-") == 0) {
        if (fread(pixels, 1, sizeof pixels, stdin) != sizeof pixels) {
            fprintf(stderr, "embed: stdin must hold 784 bytes (a 28x28 grey image)\n");
            nn_module_free(net);
            return 1;
        }
    } else {
        const char *dir = getenv("NN_DATA") ? getenv("NN_DATA") : "/usr/share/datasets/fashion-mnist";
        nn_dataset test;
        int idx = atoi(which);
        if (nn_mnist_load(dir, 0, &test) != NN_OK) {   /* the test set only */
            fprintf(stderr, "%s\n", nn_error_string());
            nn_module_free(net);
            return 1;
        }
        if (idx < 0 || idx >= test.n) idx = 0;
        memcpy(pixels, test.x + (size_t)idx * 784, sizeof pixels);
        label = test.y[idx];
        nn_dataset_free(&test);
    }
    for (i = 0; i < 784; i++) input[i] = (float)pixels[i] / 255.0f; /* as the loader scales */

    /* One inference: a graph with gradients off, reset before each call (the
       memory is reused: nothing is allocated after the first call). */
    g = nn_graph_new();
    nn_set_grad_enabled(g, 0);
    first = nn_time();
    for (k = -1; k < 200; k++) {
        double t0 = nn_time();
        nn_graph_reset(g);
        x = nn_tensor_from(g, input, NN_SHAPE(1, 784));
        probs = nn_softmax(nn_forward(net, x), 1);
        if (k < 0) first = nn_time() - first;
        else times[k] = nn_time() - t0;
    }
    qsort(times, 200, sizeof times[0], cmp_double);
    for (i = 1; i < 10; i++)
        if (probs->data[i] > probs->data[best]) best = i;
    printf("class %d %s, probability %.3f", best, class_names[best], (double)probs->data[best]);
    if (label >= 0) printf(" (label: %s)", class_names[label]);
    printf("\none inference: %.1f us (median of 200; the first call %.1f us), arena %zu bytes\n",
           1e6 * times[100], 1e6 * first, nn_graph_capacity(g));
    nn_graph_free(g);
    nn_module_free(net);
    return 0;
}
