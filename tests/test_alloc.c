/* A training loop in steady state makes no allocation: every call through
   NN_MALLOC / NN_REALLOC is counted while the loop runs (the allocation
   hooks of tests/seams.h). */
#include <stdlib.h>
static long alloc_calls = 0, fail_at = -1;
/* Counts calls; the call numbered fail_at fails, to test out-of-memory paths. */
static void *count_malloc(size_t n) { return ++alloc_calls == fail_at ? NULL : malloc(n); }
static void *count_realloc(void *p, size_t n) { return ++alloc_calls == fail_at ? NULL : realloc(p, n); }
#ifndef NN_TEST_LINKED /* tests/run.sh links the shared implementation */
#include "impl.c"               /* with its test seams (tests/seams.h) */
#endif
#include "seams.h"
#include "nn.h"
#include "harness.h"
#include <string.h>

/* Train net with opt over ds for `steps` batches; returns the last loss. */
static float run_steps(nn_module *net, nn_optim *opt, nn_loader *ld, nn_graph *g, int steps) {
    float loss_value = 0.0f;
    int s;
    nn_ce_opts ce = {0};
    ce.label_smoothing = 0.1f;
    for (s = 0; s < steps; s++) {
        nn_tensor *x, *loss;
        const int *y;
        nn_graph_reset(g);
        if (!nn_loader_next(ld, g, &x, &y)) nn_loader_next(ld, g, &x, &y);
        loss = nn_cross_entropy(nn_forward(net, x), y, ce);
        nn_zero_grad(opt);
        nn_backward(loss);
        nn_clip_grad_norm_module(net, 5.0f); /* library walks, no allocation */
        nn_step(opt);
        loss_value = nn_item(loss);
    }
    return loss_value;
}

static void check_optimizer(int adam) {
    nn_dataset ds;
    nn_loader_opts lo = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g;
    long before;
    float loss;
    nn_seed(3);
    NN_TEST_CHECK(nn_dataset_synthetic(1000, 5, &ds) == NN_OK, "synthetic dataset");
    lo.batch_size = 100;
    lo.shuffle = 1;
    ld = nn_loader_new(&ds, lo);
    net = nn_sequential(nn_linear(784, 64), nn_relu(), nn_dropout(0.1f), nn_linear(64, 10), NULL);
    if (adam) {
        nn_adam_opts ao = {0};
        opt = nn_adam(net, ao);
    } else {
        nn_sgd_opts so = {0};
        so.lr = 0.05f;
        so.momentum = 0.9f;
        so.nesterov = 1;
        opt = nn_sgd(net, so);
    }
    g = nn_graph_new();
    run_steps(net, opt, ld, g, 3); /* warm up: the arena grows to its size */
    before = alloc_calls;
    loss = run_steps(net, opt, ld, g, 25); /* crosses two epoch boundaries */
    NN_TEST_CHECK(alloc_calls == before, "%s: %ld allocations in 25 steady-state steps",
                  adam ? "adam" : "sgd", alloc_calls - before);
    NN_TEST_CHECK(loss == loss && loss < 2.3f, "loss %g is finite and decreasing", (double)loss);
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_loader_free(ld);
    nn_dataset_free(&ds);
}

/* The same for a small CNN through every convolution path: the implicit GEMM
   (one input channel), the direct engine's forward, input and weight
   gradients (16 -> 16 channels, 3x3, padding 1), depthwise, batch norm and
   pooling.  Their buffers come from the graph arena. */
static void check_cnn(void) {
    nn_conv_opts c1 = {0}, c2 = {0}, dw = {0};
    nn_pool_opts po = {0};
    nn_adam_opts ao = {0};
    nn_ce_opts ce = {0};
    nn_module *net;
    nn_optim *opt;
    nn_graph *g = nn_graph_new();
    nn_tensor *x0;
    int labels[8], s, i;
    long before = 0;
    c1.kernel = 3; c1.padding = 1;
    c2.kernel = 3; c2.padding = 1;
    dw.kernel = 3; dw.padding = 1; dw.groups = 16;
    po.kernel = 2;
    nn_seed(5);
    net = nn_sequential(nn_conv2d(1, 16, c1), nn_relu(), nn_conv2d(16, 16, c2), nn_batchnorm2d(16),
                        nn_relu(), nn_conv2d(16, 16, dw), nn_maxpool2d(po), nn_flatten(),
                        nn_linear(16 * 6 * 6, 10), NULL);
    opt = nn_adam(net, ao);
    x0 = nn_randn(NULL, NN_SHAPE(8, 1, 12, 12));
    for (i = 0; i < 8; i++) labels[i] = i % 10;
    for (s = 0; s < 13; s++) {
        nn_tensor *x, *loss;
        if (s == 3) before = alloc_calls; /* after the arena has grown */
        nn_graph_reset(g);
        x = nn_tensor_from(g, x0->data, nn_shape_of(x0));
        loss = nn_cross_entropy(nn_forward(net, nn_requires_grad(x, 1)), labels, ce);
        nn_zero_grad(opt);
        nn_backward(loss);
        nn_step(opt);
    }
    NN_TEST_CHECK(alloc_calls == before, "cnn: %ld allocations in 10 steady-state steps",
                  alloc_calls - before);
    nn_tensor_free(x0);
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
}

static int misuse_calls = 0;
static void count_misuse(const char *msg, void *user) {
    (void)user;
    misuse_calls++;
    printf("  unexpected misuse report: %s\n", msg);
}

/* Every allocation of building a model can fail: the constructors return NULL
   with an out-of-memory message, never report misuse or abort, and leak
   nothing (LeakSanitizer checks that in the ASan build). */
static void check_out_of_memory(void) {
    int k, nulls = 0, oks = 0;
    nn_set_error_hook(count_misuse, NULL);
    for (k = 1; k <= 40; k++) {
        nn_module *net, *a, *d, *b;
        fail_at = alloc_calls + k;
        /* Children first (a failed child would end the varargs list early). */
        a = nn_linear(5, 4);
        d = nn_dropout(0.5f);
        b = nn_linear_nobias(4, 2);
        net = a && d && b ? nn_sequential(a, d, b, NULL) : NULL;
        if (!a || !d || !b) {
            nn_module_free(a);
            nn_module_free(d);
            nn_module_free(b);
        }
        fail_at = -1;
        if (net) {
            oks++;
        } else {
            nulls++;
            NN_TEST_CHECK(strstr(nn_error_string(), "out of memory") != NULL,
                          "failing allocation %d: message \"%s\"", k, nn_error_string());
        }
        nn_module_free(net);
    }
    NN_TEST_CHECK(misuse_calls == 0, "out of memory is never reported as misuse (%d)", misuse_calls);
    NN_TEST_CHECK(nulls > 0 && oks > 0, "some builds failed (%d), later ones succeeded (%d)", nulls, oks);
    nn_set_error_hook(NULL, NULL);
}

/* The loader runs an augmentation pipeline (every transform) on each batch
   with no allocation. */
static void check_augmenting_loader(void) {
    nn_dataset ds;
    nn_loader_opts lo;
    nn_loader *ld;
    nn_graph *g = nn_graph_new();
    nn_rng *r = nn_rng_new(5);
    nn_augment *a = nn_augment_new(r);
    nn_tensor *x;
    const int *y;
    long before;
    int step, got = 1;
    nn_erase_opts eo;
    memset(&eo, 0, sizeof eo);
    nn_augment_crop(a, 4, 1);
    nn_augment_hflip(a, 0.0f);
    nn_augment_vflip(a, 0.3f);
    nn_augment_translate(a, 3, 0.0f);
    nn_augment_affine(a, -30.0f, 30.0f, 0.8f, 1.2f, 0.0f);
    nn_augment_brightness(a, 0.2f);
    nn_augment_contrast(a, 0.2f);
    nn_augment_noise(a, 0.05f);
    nn_augment_cutout(a, 8, 0.0f);
    nn_augment_erase(a, eo);
    nn_augment_occlude(a, 2, 5, 0.5f);
    nn_dataset_synthetic(64, 1, &ds);
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 16;
    lo.shuffle = 1;
    lo.image_shape = 1;
    lo.rng = r;
    ld = nn_loader_new(&ds, lo);
    nn_loader_set_augment(ld, a);
    for (step = 0; step < 3; step++) {   /* warm up: scratch, arena */
        nn_graph_reset(g);
        if (nn_loader_next(ld, g, &x, &y) <= 0) nn_loader_next(ld, g, &x, &y);
    }
    before = alloc_calls;
    for (step = 0; step < 20; step++) {
        int b;
        nn_graph_reset(g);
        if ((b = nn_loader_next(ld, g, &x, &y)) == 0) b = nn_loader_next(ld, g, &x, &y);
        got &= b == 16 && x && x->ndim == 4;
    }
    NN_TEST_CHECK(got && alloc_calls == before, "the loader runs the pipeline on each batch with "
                  "no allocation (%ld calls)", alloc_calls - before);
    nn_loader_free(ld);
    nn_augment_free(a);
    nn_dataset_free(&ds);
    nn_graph_free(g);
    nn_rng_free(r);
}

/* An evaluation forward of the fused pairs (Conv2d->ReLU, Conv2d->BatchNorm2d
   ->ReLU folded, Linear->ReLU) allocates nothing per call, nor the same
   model after nn_quantize. */
static void check_fused_eval(void) {
    nn_graph *g = nn_graph_new();
    nn_pool_opts po = {2, 0, 0};
    nn_conv_opts c0 = {0}, c1 = {0};
    nn_module *cnn;
    int it, b;
    long before = 0;
    c0.kernel = c1.kernel = 3;
    c1.padding = 1;
    cnn = nn_sequential(nn_conv2d(1, 4, c0), nn_relu(), nn_maxpool2d(po), nn_conv2d(4, 8, c1),
                        nn_batchnorm2d(8), nn_relu(), nn_flatten(), nn_linear(8 * 3 * 3, 10), nn_relu(),
                        nn_linear(10, 3), NULL);
    nn_set_grad_enabled(g, 0);
    nn_train_mode(cnn, 0);
    for (it = 0; it < 4; it++) {
        if (it == 2) before = alloc_calls;
        for (b = 1; b <= 8; b += 7) {
            nn_graph_reset(g);
            nn_forward(cnn, nn_rand(g, NN_SHAPE(b, 1, 8, 8), -1.0f, 1.0f));
        }
    }
    NN_TEST_CHECK(alloc_calls == before, "fused eval forwards allocate nothing: %ld calls", alloc_calls - before);
    {   /* the same model quantized (int8 kernels, weights packed at nn_quantize) */
        nn_quantize_opts qo = {0};
        qo.small_conv = 1; /* its convolutions too (K = 9 and 36) */
        nn_quantize(cnn, qo);
        for (it = 0; it < 4; it++) {
            if (it == 2) before = alloc_calls;
            for (b = 1; b <= 8; b += 7) {
                nn_graph_reset(g);
                nn_forward(cnn, nn_rand(g, NN_SHAPE(b, 1, 8, 8), -1.0f, 1.0f));
            }
        }
        NN_TEST_CHECK(alloc_calls == before, "int8 eval forwards allocate nothing: %ld calls", alloc_calls - before);
    }
    nn_module_free(cnn);
    nn_graph_free(g);
}

/* Inference in evaluation mode with gradients off, where nn_sequential gives
   each layer's input back to the arena and keeps the output in place: batch 1
   and 16 of a small CNN (with a nested sequential) make no allocation per
   call once the arena has grown. */
static void check_eval_inference(void) {
    nn_conv_opts c = {0};
    nn_pool_opts po = {0};
    nn_module *net;
    nn_graph *g = nn_graph_new();
    nn_tensor *x0;
    int b, s, ok = 1;
    long before = 0;
    c.kernel = 3;
    po.kernel = 2;
    nn_seed(6);
    net = nn_sequential(nn_conv2d(1, 8, c), nn_relu(), nn_maxpool2d(po), nn_flatten(),
                        nn_sequential(nn_linear(8 * 5 * 5, 16), nn_relu(), NULL), nn_dropout(0.5f),
                        nn_linear(16, 10), NULL);
    nn_train_mode(net, 0);
    nn_set_grad_enabled(g, 0);
    x0 = nn_randn(NULL, NN_SHAPE(16, 1, 12, 12));
    for (b = 1; b <= 16; b += 15)
        for (s = 0; s < 12; s++) {
            nn_tensor *y;
            if (s == 3) before = alloc_calls; /* both header parities exist */
            nn_graph_reset(g);
            y = nn_forward(net, nn_tensor_from(g, x0->data, NN_SHAPE(b, 1, 12, 12)));
            ok &= y != NULL && y->numel == (size_t)b * 10;
            if (s == 11)
                NN_TEST_CHECK(alloc_calls == before, "eval inference at batch %d: %ld allocations "
                              "in 9 steady-state calls", b, alloc_calls - before);
        }
    NN_TEST_CHECK(ok, "every eval forward gave [batch, 10]");
    nn_tensor_free(x0);
    nn_graph_free(g);
    nn_module_free(net);
}

int main(void) {
    nn_test_malloc_hook = count_malloc;
    nn_test_realloc_hook = count_realloc;
    check_eval_inference();
    check_fused_eval();
    check_optimizer(0);
    check_optimizer(1);
    check_cnn();
    check_out_of_memory();
    check_augmenting_loader();
    return nn_test_summary("test_alloc");
}
