/* Fashion-MNIST with a small convolutional network:
       conv(1->32, 5x5, pad 2) - BatchNorm - ReLU - maxpool 2     [32,14,14]
       conv(32->64, 5x5, pad 2) - BatchNorm - ReLU - maxpool 2    [64,7,7]
       flatten - linear(3136->128) - ReLU - dropout(0.3) - linear(128->10)
   trained with Adam (lr 1e-3, stepped down over the last three epochs), batch
   128, with random horizontal flips of the training images.  Prints per epoch: training loss, training and test accuracy, seconds.
   Measured: 91.2% test accuracy after 5 epochs (target 92%; see docs/cnn.md).

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -fopenmp -I. examples/fashion_cnn.c -o fashion_cnn -lm
       ./fashion_cnn [epochs]
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist
   (apt-get install dataset-fashion-mnist). Without it, a generated
   stand-in dataset is used so the program still runs. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>

/* Mirror each image of the batch x [B,1,H,W] left-right with probability
   1/2: clothes look the same mirrored, so this is free extra data. */
static void random_flip(nn_tensor *x) {
    int b, c, h, w, B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    for (b = 0; b < B; b++) {
        if (nn_rand_uniform() < 0.5f) continue;
        for (c = 0; c < C; c++)
            for (h = 0; h < H; h++) {
                float *row = nn_data(x) + (((size_t)b * C + c) * H + h) * W;
                for (w = 0; w < W / 2; w++) {
                    float t = row[w];
                    row[w] = row[W - 1 - w];
                    row[W - 1 - w] = t;
                }
            }
    }
}

/* Accuracy of net over ds, in evaluation mode (batch norm uses its running
   statistics, dropout is off) without recording gradients. */
static float evaluate(nn_module *net, const nn_dataset *ds, nn_graph *g) {
    nn_loader_opts lo = {0};
    nn_loader *ld;
    nn_tensor *x;
    const int *y;
    int n, i, correct = 0, total = 0, pred[500];
    lo.batch_size = 500;
    lo.image_shape = 1;
    ld = nn_loader_new(ds, lo);
    nn_train_mode(net, 0);
    nn_set_grad_enabled(g, 0);
    while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
        nn_argmax_rows(nn_forward(net, x), pred);
        for (i = 0; i < n; i++) correct += pred[i] == y[i];
        total += n;
    }
    nn_set_grad_enabled(g, 1);
    nn_train_mode(net, 1);
    nn_loader_free(ld);
    return total ? (float)correct / (float)total : 0.0f;
}

int main(int argc, char **argv) {
    const char *dir = getenv("NN_DATA") ? getenv("NN_DATA") : "/usr/share/datasets/fashion-mnist";
    int epochs = argc > 1 ? atoi(argv[1]) : 5, epoch, i, pred[128];
    nn_dataset train, test;
    nn_loader_opts lo = {0};
    nn_conv_opts conv = {0};
    nn_pool_opts pool = {0};
    nn_adam_opts ao = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g;

    if (nn_mnist_load(dir, 1, &train) != NN_OK || nn_mnist_load(dir, 0, &test) != NN_OK) {
        fprintf(stderr,
                "Fashion-MNIST not found (%s).\n"
                "Get it with:  apt-get install dataset-fashion-mnist\n"
                "or point NN_DATA at a folder with the four IDX files.\n"
                "Training on a generated stand-in dataset instead.\n",
                nn_error_string());
        if (nn_dataset_synthetic(12000, 1, &train) != NN_OK ||
            nn_dataset_synthetic(2000, 2, &test) != NN_OK) {
            fprintf(stderr, "%s\n", nn_error_string());
            return 1;
        }
    }
    printf("train %d, test %d samples; %d threads\n", train.n, test.n, nn_get_threads());

    nn_seed(42);
    conv.kernel = 5;
    conv.padding = 2;   /* "same" size: 28x28 stays 28x28 */
    pool.kernel = 2;    /* stride defaults to the kernel: halves H and W */
    net = nn_sequential(nn_conv2d(1, 32, conv), nn_batchnorm2d(32), nn_relu(), nn_maxpool2d(pool),
                        nn_conv2d(32, 64, conv), nn_batchnorm2d(64), nn_relu(), nn_maxpool2d(pool),
                        nn_flatten(),
                        nn_linear(64 * 7 * 7, 128), nn_relu(), nn_dropout(0.3f),
                        nn_linear(128, 10), NULL);
    printf("%zu parameters\n", nn_parameter_count(net));
    ao.lr = 1e-3f;
    opt = nn_adam(net, ao);
    lo.batch_size = 128;
    lo.shuffle = 1;
    lo.image_shape = 1; /* batches as [B,1,28,28] */
    ld = nn_loader_new(&train, lo);
    g = nn_graph_new();

    printf("epoch   loss    train   test    seconds\n");
    for (epoch = 1; epoch <= epochs; epoch++) {
        double t0 = nn_time(), loss_sum = 0.0;
        int n, batches = 0, correct = 0, seen = 0;
        nn_tensor *x, *logits, *loss;
        const int *y;
        /* 1e-3, then 5e-4, 2e-4, 5e-5 for the last three epochs */
        if (epochs >= 4 && epoch > epochs - 3) nn_set_lr(opt, 1e-3f * (epoch == epochs ? 0.05f : epoch == epochs - 1 ? 0.2f : 0.5f));
        while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
            random_flip(x);
            logits = nn_forward(net, x);
            loss = nn_cross_entropy(logits, y, ce);
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
            loss_sum += nn_item(loss);
            batches++;
            nn_argmax_rows(logits, pred);
            for (i = 0; i < n; i++) correct += pred[i] == y[i];
            seen += n;
        }
        {
            double secs = nn_time() - t0;
            float test_acc = evaluate(net, &test, g);
            printf("%5d  %6.4f  %6.2f%%  %6.2f%%  %6.2f\n", epoch, loss_sum / batches,
                   100.0 * correct / seen, 100.0 * test_acc, secs);
            fflush(stdout);
        }
    }
    nn_graph_free(g);
    nn_loader_free(ld);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return 0;
}
