/* Core: status strings, error messages and the misuse hook, the RNG's
   reproducibility and moments, tensors and the graph arena, module names,
   and bitwise-reproducible training. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

static void test_status_and_version(void) {
    NN_TEST_CHECK(strcmp(nn_status_string(NN_OK), "ok") == 0, "NN_OK string");
    NN_TEST_CHECK(strcmp(nn_status_string(NN_ERR_FORMAT), "format error") == 0, "format string");
    NN_TEST_CHECK(strcmp(nn_version_string(), NN_VERSION_STRING) == 0, "version");
}

static void test_rng(void) {
    float a[1000], b[1000];
    double mean = 0, var = 0;
    int i, ones = 0, same = 1, hist[7] = {0};
    nn_seed(123);
    for (i = 0; i < 1000; i++) a[i] = nn_rand_normal();
    nn_seed(123);
    for (i = 0; i < 1000; i++) b[i] = nn_rand_normal();
    NN_TEST_CHECK(memcmp(a, b, sizeof a) == 0, "same seed, same normal draws");
    nn_seed(124);
    for (i = 0; i < 1000; i++) same &= nn_rand_normal() == a[i];
    NN_TEST_CHECK(!same, "another seed, other draws");
    nn_seed(5);
    for (i = 0; i < 100000; i++) {
        float z = nn_rand_normal();
        mean += (double)z;
        var += (double)z * (double)z;
    }
    mean /= 100000;
    var = var / 100000 - mean * mean;
    NN_TEST_CHECK(fabs(mean) < 0.02 && fabs(var - 1.0) < 0.03, "normal mean %g var %g", mean, var);
    for (i = 0; i < 100000; i++) {
        float u = nn_rand_uniform();
        if (u < 0.0f || u >= 1.0f) break;
        ones += nn_rand_bernoulli(0.3f);
        hist[nn_rand_below(7)]++;
    }
    NN_TEST_CHECK(i == 100000, "uniform in [0,1)");
    NN_TEST_CHECK(abs(ones - 30000) < 600, "bernoulli(0.3): %d of 100000", ones);
    for (i = 0; i < 7; i++) NN_TEST_CHECK(abs(hist[i] - 14286) < 500, "rand_below(7) bucket %d: %d", i, hist[i]);
}

static void test_tensors_and_arena(void) {
    nn_graph *g = nn_graph_new();
    float d[6] = {1, 2, 3, 4, 5, 6};
    nn_tensor *t, *r, *z;
    size_t cap;
    char buf[32];
    int i;
    t = nn_tensor_from(g, d, NN_SHAPE(2, 3));
    NN_TEST_CHECK(t && t->ndim == 2 && nn_numel(t) == 6 && nn_data(t)[5] == 6.0f, "tensor_from");
    NN_TEST_CHECK(((uintptr_t)nn_data(t) % NN_MEM_ALIGN) == 0, "data aligned to %d", NN_MEM_ALIGN);
    NN_TEST_CHECK(strcmp(nn_shape_str(nn_shape_of(t), buf, sizeof buf), "[2,3]") == 0, "shape string %s", buf);
    r = nn_reshape(t, NN_SHAPE(3, -1));
    NN_TEST_CHECK(r && r->shape[0] == 3 && r->shape[1] == 2 && r->data == t->data, "reshape is a view");
    z = nn_zeros(g, NN_SHAPE(4));
    NN_TEST_CHECK(z && z->data[3] == 0.0f, "zeros");
    z = nn_ones(g, NN_SHAPE(2, 2));
    NN_TEST_CHECK(z && z->data[3] == 1.0f, "ones");
    NN_TEST_CHECK(nn_item(nn_sum(t)) == 21.0f, "sum of 1..6");
    z = nn_zeros(g, NN_SHAPE(1000, 1000)); /* forces a second block */
    NN_TEST_CHECK(z != NULL, "large tensor");
    nn_graph_reset(g); /* the odd generations' tensor headers get their block */
    nn_tensor_from(g, d, NN_SHAPE(2, 3));
    nn_zeros(g, NN_SHAPE(1000, 1000));
    cap = nn_graph_capacity(g);
    for (i = 0; i < 5; i++) {
        nn_graph_reset(g);
        nn_tensor_from(g, d, NN_SHAPE(2, 3));
        nn_zeros(g, NN_SHAPE(1000, 1000));
    }
    NN_TEST_CHECK(nn_graph_capacity(g) == cap, "reset reuses the arena (%zu vs %zu bytes)", nn_graph_capacity(g), cap);
    t = nn_randn(NULL, NN_SHAPE(3));
    NN_TEST_CHECK(t && (t->flags & NN_TENSOR_PERSISTENT), "persistent tensor with g == NULL");
    nn_tensor_free(t);
    nn_graph_free(g);
}

static void test_misuse_messages(void) {
    nn_graph *g = nn_graph_new();
    nn_tensor *a = nn_zeros(g, NN_SHAPE(3, 4)), *b = nn_zeros(g, NN_SHAPE(5)), *r;
    int labels[3] = {0, 7, 1};
    nn_ce_opts ce = {0};
    nn_set_error_hook(nn_test_record_hook, NULL);
    r = nn_add(a, b);
    NN_TEST_CHECK(r == NULL && nn_test_msgs == 1, "bad broadcast returns NULL through the hook");
    NN_TEST_CHECK(strstr(nn_test_msg, "nn_add") && strstr(nn_test_msg, "[3,4]") && strstr(nn_test_msg, "[5]"),
                  "message names op and shapes: %s", nn_test_msg);
    r = nn_matmul(a, a);
    NN_TEST_CHECK(r == NULL && strstr(nn_test_msg, "nn_matmul") && strstr(nn_test_msg, "[3,4] x [3,4]"),
                  "matmul message: %s", nn_test_msg);
    r = nn_cross_entropy(a, labels, ce);
    NN_TEST_CHECK(r == NULL && strstr(nn_test_msg, "label 7"), "label range message: %s", nn_test_msg);
    r = nn_reshape(a, NN_SHAPE(5, -1));
    NN_TEST_CHECK(r == NULL && strstr(nn_test_msg, "nn_reshape"), "reshape message: %s", nn_test_msg);
    r = nn_sum_axis(a, 2, 0);
    NN_TEST_CHECK(r == NULL && strstr(nn_test_msg, "axis 2"), "axis message: %s", nn_test_msg);
    nn_backward(a);
    NN_TEST_CHECK(strstr(nn_test_msg, "nn_backward") != NULL, "backward of a non-scalar: %s", nn_test_msg);
    {
        /* A size that overflows the arena's rounding is an OOM, not a crash. */
        nn_tensor *huge = nn_zeros(g, NN_SHAPE(2147483647, 3, 715827883));
        NN_TEST_CHECK(huge == NULL && strstr(nn_error_string(), "too large"), "huge tensor: %s",
                      nn_error_string());
    }
    {
        /* The loader refuses an image shape that does not hold the samples. */
        nn_dataset ds;
        nn_loader_opts lo = {0};
        nn_dataset_synthetic(10, 1, &ds);
        ds.shape[1] = 20;
        lo.image_shape = 1;
        NN_TEST_CHECK(nn_loader_new(&ds, lo) == NULL && strstr(nn_test_msg, "image_shape"),
                      "loader shape check: %s", nn_test_msg);
        nn_dataset_free(&ds);
    }
    nn_set_error_hook(NULL, NULL);
    nn_graph_free(g);
}

static void test_param_names_and_modes(void) {
    nn_module *net = nn_sequential(nn_linear(4, 3), nn_relu(), nn_dropout(0.5f),
                                   nn_sequential(nn_linear(3, 2), NULL), NULL);
    nn_param *p;
    int n;
    p = nn_parameters(net, &n);
    NN_TEST_CHECK(n == 4, "4 parameters, got %d", n);
    if (n == 4) {
        NN_TEST_CHECK(strcmp(p[0].name, "0.weight") == 0 && strcmp(p[1].name, "0.bias") == 0 &&
                      strcmp(p[2].name, "3.0.weight") == 0 && strcmp(p[3].name, "3.0.bias") == 0,
                      "dotted names: %s %s %s %s", p[0].name, p[1].name, p[2].name, p[3].name);
        NN_TEST_CHECK(p[0].tensor->shape[0] == 3 && p[0].tensor->shape[1] == 4, "weight is [out,in]");
    }
    NN_TEST_CHECK(nn_parameter_count(net) == 4 * 3 + 3 + 3 * 2 + 2, "parameter count");
    nn_train_mode(net, 0);
    NN_TEST_CHECK(net->children[2]->training == 0 && net->children[3]->children[0]->training == 0,
                  "eval mode reaches every child");
    nn_module_free(net);
}

/* Two identical seeded runs give bitwise identical parameters. */
static void train_once(float *out, int n_out) {
    nn_dataset ds;
    nn_loader_opts lo = {0};
    nn_adam_opts ao = {0};
    nn_ce_opts ce = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_graph *g = nn_graph_new();
    nn_tensor *x;
    const int *y;
    nn_param *p;
    int n, s;
    nn_seed(99);
    nn_dataset_synthetic(600, 3, &ds);
    lo.batch_size = 50;
    lo.shuffle = 1;
    ld = nn_loader_new(&ds, lo);
    net = nn_sequential(nn_linear(784, 32), nn_tanh(), nn_dropout(0.2f), nn_linear(32, 10), NULL);
    opt = nn_adam(net, ao);
    for (s = 0; s < 30; s++) {
        nn_graph_reset(g);
        if (!nn_loader_next(ld, g, &x, &y)) nn_loader_next(ld, g, &x, &y);
        nn_zero_grad(opt);
        nn_backward(nn_cross_entropy(nn_forward(net, x), y, ce));
        nn_step(opt);
    }
    p = nn_parameters(net, &n);
    memcpy(out, p[0].tensor->data, sizeof(float) * (size_t)n_out);
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_loader_free(ld);
    nn_dataset_free(&ds);
}

static void test_reproducible_training(void) {
    static float a[784 * 32], b[784 * 32];
    train_once(a, 784 * 32);
    train_once(b, 784 * 32);
    NN_TEST_CHECK(memcmp(a, b, sizeof a) == 0, "same seed gives bitwise the same trained weights");
}

/* 1 and 2 threads give bitwise the same training run (kernels split only
   independent output tiles).  Shapes large enough for the threaded paths. */
static void train_threads(int threads, float *out, size_t n_out) {
    nn_graph *g = nn_graph_new();
    nn_module *net;
    nn_optim *opt;
    nn_sgd_opts so = {0};
    nn_ce_opts ce = {0};
    nn_tensor *x;
    int labels[128], s, i;
    nn_set_threads(threads);
    nn_seed(11);
    net = nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 10), NULL);
    so.lr = 0.05f;
    so.momentum = 0.9f;
    opt = nn_sgd(net, so);
    for (i = 0; i < 128; i++) labels[i] = i % 10;
    for (s = 0; s < 4; s++) {
        nn_graph_reset(g);
        x = nn_randn(g, NN_SHAPE(128, 784));
        nn_zero_grad(opt);
        nn_backward(nn_cross_entropy(nn_forward(net, x), labels, ce));
        nn_step(opt);
    }
    memcpy(out, nn_parameters(net, NULL)[0].tensor->data, n_out * sizeof(float));
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_set_threads(0);
}

static void test_threads_bitwise(void) {
    static float a[784 * 256], b[784 * 256];
    train_threads(1, a, 784 * 256);
    train_threads(2, b, 784 * 256);
    NN_TEST_CHECK(memcmp(a, b, sizeof a) == 0, "1 and 2 threads train bitwise the same (%d threads available)",
                  nn_get_threads());
}

/* The same at odd sizes, through the loader, with SGD and Adam: the threaded
   element-wise loops (loader, bias, ReLU, column sums, zeroing, updates) cut
   tensors whose sizes are not multiples of a vector.  Returns all parameters. */
static size_t train_threads_odd(int threads, int adam, float *out, size_t cap) {
    nn_graph *g = nn_graph_new();
    nn_dataset ds;
    nn_loader_opts lo = {0};
    nn_loader *ld;
    nn_module *net;
    nn_optim *opt;
    nn_param *ps;
    nn_ce_opts ce = {0};
    nn_tensor *x;
    const int *y;
    int s, i, np;
    size_t n = 0;
    nn_set_threads(threads);
    nn_seed(5);
    nn_dataset_synthetic(700, 2, &ds);
    lo.batch_size = 200;
    lo.shuffle = 1;
    ld = nn_loader_new(&ds, lo);
    net = nn_sequential(nn_linear(784, 201), nn_relu(), nn_linear(201, 201), nn_relu(),
                        nn_linear(201, 10), NULL);
    if (adam) {
        nn_adam_opts ao = {0};
        opt = nn_adam(net, ao);
    } else {
        nn_sgd_opts so = {0};
        so.lr = 0.05f;
        so.momentum = 0.9f;
        opt = nn_sgd(net, so);
    }
    for (s = 0; s < 5; s++) { /* the last batch of the epoch has 100 rows */
        nn_graph_reset(g);
        if (!nn_loader_next(ld, g, &x, &y)) nn_loader_next(ld, g, &x, &y);
        nn_zero_grad(opt);
        nn_backward(nn_cross_entropy(nn_forward(net, x), y, ce));
        nn_step(opt);
    }
    ps = nn_parameters(net, &np);
    for (i = 0; i < np; i++) {
        size_t k = ps[i].tensor->numel < cap - n ? ps[i].tensor->numel : cap - n;
        memcpy(out + n, ps[i].tensor->data, k * sizeof(float));
        n += k;
    }
    nn_loader_free(ld);
    nn_dataset_free(&ds);
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_set_threads(0);
    return n;
}

static void test_threads_bitwise_odd(void) {
    static float a[210000], b[210000];
    int adam;
    for (adam = 0; adam < 2; adam++) {
        size_t na = train_threads_odd(1, adam, a, 210000), nb = train_threads_odd(2, adam, b, 210000);
        NN_TEST_CHECK(na == nb && na == 784 * 201 + 201 + 201 * 201 + 201 + 201 * 10 + 10 &&
                      memcmp(a, b, na * sizeof(float)) == 0,
                      "1 and 2 threads train bitwise the same at odd sizes (%s)", adam ? "Adam" : "SGD");
    }
}

/* The loader: values, order, batch sizes, epoch ends, drop_last, shapes. */
static void test_loader(void) {
    nn_dataset ds;
    nn_loader_opts lo = {0};
    nn_loader *ld;
    nn_graph *g = nn_graph_new();
    nn_tensor *x;
    const int *y;
    int n, k, ok = 1, seen[103] = {0}, total = 0;
    size_t j;
    NN_TEST_CHECK(nn_dataset_synthetic(103, 9, &ds) == NN_OK, "synthetic");
    lo.batch_size = 10;
    ld = nn_loader_new(&ds, lo);
    NN_TEST_CHECK(nn_loader_batches(ld) == 11, "11 batches of <= 10 from 103");
    for (k = 0; (n = nn_loader_next(ld, g, &x, &y)) > 0; k++) {
        for (j = 0; j < x->numel; j++)
            ok &= x->data[j] == (float)ds.x[(size_t)k * 10 * 784 + j] * (1.0f / 255.0f);
        ok &= y[0] == ds.y[k * 10];
        NN_TEST_CHECK(x->ndim == 2 && x->shape[0] == n && x->shape[1] == 784, "batch shape");
    }
    NN_TEST_CHECK(ok && k == 11, "unshuffled batches equal the bytes / 255 (%d batches)", k);
    nn_loader_free(ld);
    lo.shuffle = 1;
    lo.drop_last = 1;
    lo.image_shape = 1;
    ld = nn_loader_new(&ds, lo);
    nn_loader_set_batch_size(ld, 25);
    while ((n = nn_loader_next(ld, g, &x, &y)) > 0) {
        NN_TEST_CHECK(n == 25 && x->ndim == 4 && x->shape[1] == 1 && x->shape[2] == 28, "image batches of 25");
        total += n;
        for (k = 0; k < n; k++) seen[y[k] < 10 ? 0 : 1]++;
    }
    NN_TEST_CHECK(total == 100, "drop_last keeps 4 full batches: %d samples", total);
    nn_loader_free(ld);
    {
        /* nn_accuracy restores the modes; a fixed classifier scores exactly. */
        nn_module *net = nn_sequential(nn_linear(784, 10), NULL);
        nn_loader_opts eo = {0};
        float acc;
        int correct = 0, i;
        memset(nn_parameters(net, NULL)[0].tensor->data, 0, sizeof(float) * 7840);
        nn_parameters(net, NULL)[1].tensor->data[3] = 1.0f; /* always predicts class 3 */
        for (i = 0; i < ds.n; i++) correct += ds.y[i] == 3;
        eo.batch_size = 7;
        acc = nn_accuracy(net, &ds, g, eo);
        NN_TEST_CHECK(fabsf(acc - (float)correct / (float)ds.n) < 1e-6f, "accuracy %g", (double)acc);
        NN_TEST_CHECK(net->training == 1, "training mode restored");
        nn_module_free(net);
    }
    nn_dataset_free(&ds);
    nn_graph_free(g);
}

/* Anomaly mode names the op that produced a NaN, in forward and backward. */
static void test_anomaly(void) {
    nn_graph *g = nn_graph_new();
    float v[3] = {1.0f, -1.0f, 4.0f};
    nn_tensor *x = nn_requires_grad(nn_tensor_from(g, v, NN_SHAPE(3)), 1), *y;
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_set_anomaly_detection(g, 1);
    y = nn_exp(nn_sqrt(x)); /* sqrt(-1) = NaN, caught when exp reads it */
    NN_TEST_CHECK(y == NULL && strstr(nn_test_msg, "nn_exp: anomaly") && strstr(nn_test_msg, "made by nn_sqrt"),
                  "forward anomaly: %s", nn_test_msg);
    nn_graph_reset(g);
    v[1] = 0.0f;
    x = nn_requires_grad(nn_tensor_from(g, v, NN_SHAPE(3)), 1);
    nn_backward(nn_sum(nn_sqrt(x))); /* d sqrt(x)/dx at 0 is inf */
    NN_TEST_CHECK(strstr(nn_test_msg, "nn_backward: anomaly") && strstr(nn_test_msg, "nn_sqrt"),
                  "backward anomaly: %s", nn_test_msg);
    nn_set_error_hook(NULL, NULL);
    nn_graph_free(g);
}

/* A failed state load leaves the optimizer as it was. */
static void test_state_all_or_nothing(void) {
    nn_module *net = nn_sequential(nn_linear(3, 2), NULL);
    nn_adam_opts ao = {0};
    nn_optim *a, *b;
    unsigned char buf[4096];
    size_t n;
    nn_status st;
    ao.lr = 0.01f;
    a = nn_adam(net, ao);
    ao.lr = 0.02f;
    ao.beta1 = 0.8f;
    b = nn_adam(net, ao);
    n = nn_optim_state_write(a, NULL, buf, sizeof buf);
    NN_TEST_CHECK(n > 24 && n <= sizeof buf, "state of %zu bytes", n);
    NN_TEST_CHECK(nn_optim_state_write(a, NULL, buf, 16) == n, "too small a buffer: size reported");
    n = nn_optim_state_write(a, NULL, buf, sizeof buf);
    st = nn_optim_state_read(b, NULL, buf, n - 7);
    NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "truncated"), "truncated: %s",
                  nn_error_string());
    NN_TEST_CHECK(fabsf(nn_get_lr(b) - 0.02f) < 1e-9f, "lr unchanged after a failed read: %g",
                  (double)nn_get_lr(b));
    NN_TEST_CHECK(nn_optim_state_read(b, NULL, buf, n) == NN_OK && fabsf(nn_get_lr(b) - 0.01f) < 1e-9f,
                  "a good read applies");
    nn_optim_free(a);
    nn_optim_free(b);
    nn_module_free(net);
}

static void test_no_grad_and_accumulation(void) {
    nn_graph *g = nn_graph_new();
    nn_tensor *w = nn_requires_grad(nn_ones(NULL, NN_SHAPE(3)), 1);
    float xs[3] = {1, 2, 3};
    nn_tensor *x = nn_tensor_from(g, xs, NN_SHAPE(3)), *y;
    int k;
    for (k = 0; k < 2; k++) nn_backward(nn_sum(nn_mul(w, x)));
    NN_TEST_CHECK(w->grad[0] == 2.0f && w->grad[2] == 6.0f, "gradients accumulate over two backward calls");
    nn_set_grad_enabled(g, 0);
    y = nn_mul(w, x);
    NN_TEST_CHECK(y->node == NULL && !nn_needs_grad(y), "no node recorded with gradients off");
    nn_set_grad_enabled(g, 1);
    nn_tensor_free(w);
    nn_graph_free(g);
}

int main(void) {
    test_status_and_version();
    test_rng();
    test_tensors_and_arena();
    test_misuse_messages();
    test_param_names_and_modes();
    test_reproducible_training();
    test_no_grad_and_accumulation();
    test_threads_bitwise();
    test_threads_bitwise_odd();
    test_loader();
    test_anomaly();
    test_state_all_or_nothing();
    return nn_test_summary("test_core");
}
