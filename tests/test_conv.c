/* Convolution, pooling, batch norm and CNN activations: values and gradients
   against PyTorch (tests/golden/conv.txt, made by make_golden_conv.py),
   finite-difference gradient checks, module construction, shape-error
   messages, and bitwise equality between 1 and N threads.
   Run from the repository root, or pass the golden directory as argv[1]. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- golden file reader ("nn.h-golden-conv 1") ---- */

static FILE *gf;

static int tok(char *buf, size_t size) {
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%ds", (int)size - 1);
    return fscanf(gf, fmt, buf) == 1;
}
static int expect(const char *word) {
    char t[64];
    if (!tok(t, sizeof t) || strcmp(t, word) != 0) {
        printf("golden: expected %s\n", word);
        return 0;
    }
    return 1;
}
static int read_int(int *v) { return fscanf(gf, "%d", v) == 1; }
static int read_float(float *v) {
    double d;
    if (fscanf(gf, "%lf", &d) != 1) return 0;
    *v = (float)d;
    return 1;
}
/* "t <ndim> <dims> <values>" into a new tensor of g (NULL g: persistent). */
static nn_tensor *read_tensor(nn_graph *g) {
    nn_shape s;
    nn_tensor *t;
    size_t i;
    int d;
    memset(&s, 0, sizeof s);
    if (!expect("t") || !read_int(&s.ndim) || s.ndim < 0 || s.ndim > NN_MAX_DIMS) return NULL;
    for (d = 0; d < s.ndim; d++)
        if (!read_int(&s.d[d])) return NULL;
    t = nn_zeros(g, s);
    for (i = 0; i < t->numel; i++)
        if (!read_float(&t->data[i])) return NULL;
    return t;
}

/* ---- running an op by name ---- */

static nn_tensor *run_op(const char *op, const int *ia, const float *fa, nn_tensor **in, int nin) {
    if (!strcmp(op, "conv2d") || !strcmp(op, "conv1d") || !strcmp(op, "convt2d")) {
        nn_conv_opts o;
        nn_tensor *b = nin > 2 ? in[2] : NULL;
        memset(&o, 0, sizeof o);
        o.stride = ia[0];
        o.padding = ia[1];
        o.dilation = ia[2];
        o.groups = ia[3];
        o.output_padding = ia[4];
        if (!strcmp(op, "conv2d")) return nn_conv2d_op(in[0], in[1], b, o);
        if (!strcmp(op, "conv1d")) return nn_conv1d_op(in[0], in[1], b, o);
        return nn_conv_transpose2d_op(in[0], in[1], b, o);
    }
    if (strstr(op, "pool1d") || strstr(op, "pool2d")) {
        nn_pool_opts o;
        o.kernel = ia[0];
        o.stride = ia[1];
        o.padding = ia[2];
        if (!strcmp(op, "maxpool2d")) return nn_maxpool2d_op(in[0], o);
        if (!strcmp(op, "avgpool2d")) return nn_avgpool2d_op(in[0], o);
        if (!strcmp(op, "maxpool1d")) return nn_maxpool1d_op(in[0], o);
        return nn_avgpool1d_op(in[0], o);
    }
    if (!strcmp(op, "gap")) return nn_global_avgpool_op(in[0]);
    if (!strcmp(op, "upsample")) return nn_upsample_nearest2d_op(in[0], ia[0]);
    if (!strcmp(op, "leaky")) return nn_leaky_relu_op(in[0], fa[0]);
    if (!strcmp(op, "elu")) return nn_elu_op(in[0], fa[0]);
    if (!strcmp(op, "gelu")) return nn_gelu_op(in[0]);
    if (!strcmp(op, "silu")) return nn_silu_op(in[0]);
    printf("unknown op %s\n", op);
    return NULL;
}

/* sum(op(in) * w) as a double, with gradients off. */
static double weighted_loss(nn_graph *g, const char *op, const int *ia, const float *fa,
                            nn_tensor **in, int nin, const nn_tensor *w) {
    int was = nn_set_grad_enabled(g, 0);
    nn_tensor *y = run_op(op, ia, fa, in, nin);
    double acc = 0.0;
    size_t i;
    nn_set_grad_enabled(g, was);
    for (i = 0; i < y->numel; i++) acc += (double)y->data[i] * (double)w->data[i];
    return acc;
}

/* Central finite differences of sum(op * w) for up to `probes` elements of
   each input, against the analytic gradients in[i]->grad.  1 when all agree. */
static int fd_check(nn_graph *g, const char *name, const char *op, const int *ia, const float *fa,
                    nn_tensor **in, int nin, const nn_tensor *w, int probes) {
    int i, ok = 1;
    for (i = 0; i < nin; i++) {
        size_t n = in[i]->numel, step = n / (size_t)probes + 1, k;
        for (k = (size_t)i % step; k < n; k += step) {
            float keep = in[i]->data[k], h = 1e-2f;
            double up, down, num, ana = (double)in[i]->grad[k];
            in[i]->data[k] = keep + h;
            up = weighted_loss(g, op, ia, fa, in, nin, w);
            in[i]->data[k] = keep - h;
            down = weighted_loss(g, op, ia, fa, in, nin, w);
            in[i]->data[k] = keep;
            num = (up - down) / (2.0 * (double)h);
            /* max pooling is piecewise linear: a probe that crosses a tie
               point is not a failure of the gradient */
            if (fabs(num - ana) > 2e-2 + 2e-2 * fabs(ana) && strncmp(op, "maxpool", 7) != 0) {
                printf("  fd %s input %d [%zu]: numeric %.6g analytic %.6g\n", name, i, k, num, ana);
                ok = 0;
            }
        }
    }
    NN_TEST_CHECK(ok, "finite differences %s", name);
    return ok;
}

static int same_shape(const nn_tensor *a, const nn_tensor *b) {
    int d;
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static void golden_case(nn_graph *g) {
    char name[64], op[32], what[128];
    int ia[8] = {0}, nia, nfa, nin, i;
    float fa[4] = {0};
    nn_tensor *in[3], *want, *w, *y, *loss;
    if (!tok(name, sizeof name) || !tok(op, sizeof op) || !read_int(&nia)) return;
    for (i = 0; i < nia; i++) read_int(&ia[i]);
    expect("fargs");
    read_int(&nfa);
    for (i = 0; i < nfa; i++) read_float(&fa[i]);
    expect("in");
    read_int(&nin);
    nn_graph_reset(g);
    for (i = 0; i < nin; i++) in[i] = nn_requires_grad(read_tensor(g), 1);
    expect("out");
    want = read_tensor(g);
    expect("w");
    w = read_tensor(g);
    y = run_op(op, ia, fa, in, nin);
    NN_TEST_CHECK(same_shape(y, want), "%s: output shape %s", name, y ? "differs" : "NULL");
    if (!same_shape(y, want)) return;
    snprintf(what, sizeof what, "%s value", name);
    nn_test_close(y->data, want->data, y->numel, 1e-4f, 1e-4f, what);
    loss = nn_sum(nn_mul(y, w));
    nn_backward(loss);
    expect("grad");
    read_int(&i);
    for (i = 0; i < nin; i++) {
        nn_tensor *gw = read_tensor(g);
        snprintf(what, sizeof what, "%s grad of input %d", name, i);
        NN_TEST_CHECK(in[i]->grad != NULL, "%s: no gradient", what);
        if (in[i]->grad) nn_test_close(in[i]->grad, gw->data, gw->numel, 1e-4f, 2e-4f, what);
    }
    expect("end");
    if (in[0]->numel < 4000) fd_check(g, name, op, ia, fa, in, nin, w, 12);
}

/* ---- batch norm: train steps and eval against torch.nn.BatchNorm ---- */

static void golden_bn(nn_graph *g) {
    char name[64], tag[16], what[128];
    int steps, s, k;
    float momentum, eps;
    nn_tensor *init[4];
    nn_module *m;
    nn_param *ps, *bs;
    int np, nb;
    if (!tok(name, sizeof name) || !read_int(&steps) || !read_float(&momentum) || !read_float(&eps))
        return;
    expect("init");
    for (k = 0; k < 4; k++) init[k] = read_tensor(NULL);
    m = init[0]->ndim == 1 && strstr(name, "bn2d") ? nn_batchnorm2d(init[0]->shape[0])
                                                   : nn_batchnorm1d(init[0]->shape[0]);
    nn_batchnorm_set(m, momentum, eps);
    ps = nn_parameters(m, &np);
    NN_TEST_CHECK(np == 2 && !strcmp(ps[0].name, "weight") && !strcmp(ps[1].name, "bias"),
                  "%s: parameters weight, bias", name);
    memcpy(ps[0].tensor->data, init[0]->data, init[0]->numel * sizeof(float));
    memcpy(ps[1].tensor->data, init[1]->data, init[1]->numel * sizeof(float));
    bs = nn_buffers(m, &nb);
    NN_TEST_CHECK(nb == 3 && !strcmp(bs[0].name, "running_mean") && !strcmp(bs[1].name, "running_var") &&
                      !strcmp(bs[2].name, "num_batches_tracked"),
                  "%s: buffers running_mean, running_var, num_batches_tracked", name);
    nn_test_close(bs[0].tensor->data, init[2]->data, init[2]->numel, 0.0f, 0.0f, "bn initial running_mean");
    nn_test_close(bs[1].tensor->data, init[3]->data, init[3]->numel, 0.0f, 0.0f, "bn initial running_var");
    for (s = 0; s <= steps; s++) {
        nn_tensor *x, *w, *y, *want;
        int train = s < steps;
        const char *parts[6] = {"y", "dx", "dweight", "dbias", "running_mean", "running_var"};
        tok(tag, sizeof tag);
        nn_graph_reset(g);
        nn_train_mode(m, train);
        x = nn_requires_grad(read_tensor(g), 1);
        w = read_tensor(g);
        memset(ps[0].tensor->grad, 0, ps[0].tensor->numel * sizeof(float));
        memset(ps[1].tensor->grad, 0, ps[1].tensor->numel * sizeof(float));
        y = nn_forward(m, x);
        nn_backward(nn_sum(nn_mul(y, w)));
        for (k = 0; k < (train ? 6 : 4); k++) {
            const float *got = k == 0 ? y->data : k == 1 ? x->grad : k == 2 ? ps[0].tensor->grad
                             : k == 3 ? ps[1].tensor->grad : k == 4 ? bs[0].tensor->data : bs[1].tensor->data;
            want = read_tensor(g);
            snprintf(what, sizeof what, "%s %s %s step %d", name, tag, parts[k], s);
            nn_test_close(got, want->data, want->numel, 1e-4f, 1e-4f, what);
        }
    }
    NN_TEST_CHECK((bs[2].tensor->flags & NN_TENSOR_INT64) &&
                      ((const int64_t *)(void *)bs[2].tensor->data)[0] == (int64_t)steps,
                  "%s: num_batches_tracked %lld", name,
                  (long long)((const int64_t *)(void *)bs[2].tensor->data)[0]);
    expect("end");
    for (k = 0; k < 4; k++) nn_tensor_free(init[k]);
    nn_module_free(m);
}

/* Finite differences of batch norm in training mode (the statistics depend
   on every input), with weight and bias, on a small [3,2,2,3] input. */
static double bn_loss(nn_graph *g, nn_tensor *x, nn_tensor *ga, nn_tensor *be, nn_tensor *w) {
    int was = nn_set_grad_enabled(g, 0);
    nn_tensor *y = nn_batch_norm_op(x, NULL, NULL, ga, be, 1, 0.1f, 1e-5f);
    double acc = 0.0;
    size_t i;
    nn_set_grad_enabled(g, was);
    for (i = 0; i < y->numel; i++) acc += (double)y->data[i] * (double)w->data[i];
    return acc;
}
static void bn_fd(nn_graph *g) {
    nn_tensor *x, *ga, *be, *w, *in[3];
    int i, ok = 1;
    size_t k;
    nn_graph_reset(g);
    nn_seed(3);
    x = nn_requires_grad(nn_randn(g, NN_SHAPE(3, 2, 2, 3)), 1);
    ga = nn_requires_grad(nn_rand(g, NN_SHAPE(2), 0.5f, 1.5f), 1);
    be = nn_requires_grad(nn_randn(g, NN_SHAPE(2)), 1);
    w = nn_randn(g, NN_SHAPE(3, 2, 2, 3));
    nn_backward(nn_sum(nn_mul(nn_batch_norm_op(x, NULL, NULL, ga, be, 1, 0.1f, 1e-5f), w)));
    in[0] = x;
    in[1] = ga;
    in[2] = be;
    for (i = 0; i < 3; i++) {
        for (k = 0; k < in[i]->numel; k++) {
            float keep = in[i]->data[k], h = 1e-2f;
            double up, down, num;
            in[i]->data[k] = keep + h;
            up = bn_loss(g, x, ga, be, w);
            in[i]->data[k] = keep - h;
            down = bn_loss(g, x, ga, be, w);
            in[i]->data[k] = keep;
            num = (up - down) / (2.0 * (double)h);
            if (fabs(num - (double)in[i]->grad[k]) > 1e-2 + 1e-2 * fabs(num)) {
                printf("  bn fd input %d [%zu]: numeric %.6g analytic %.6g\n", i, k, num,
                       (double)in[i]->grad[k]);
                ok = 0;
            }
        }
    }
    NN_TEST_CHECK(ok, "batch norm training: finite differences");
}

/* ---- shape errors through an installed hook ---- */

static char last_error[512];
static int error_count;
static void record_error(const char *msg, void *user) {
    (void)user;
    snprintf(last_error, sizeof last_error, "%s", msg);
    error_count++;
}
static void expect_error(nn_tensor *result, const char *what, const char *must1, const char *must2) {
    NN_TEST_CHECK(result == NULL, "%s: returns NULL", what);
    NN_TEST_CHECK(error_count == 1 && strstr(last_error, must1) && (!must2 || strstr(last_error, must2)),
                  "%s: message \"%s\" names %s %s", what, last_error, must1, must2 ? must2 : "");
    error_count = 0;
    last_error[0] = 0;
}

static void shape_errors(nn_graph *g) {
    nn_conv_opts o;
    nn_pool_opts po;
    nn_tensor *x, *w, *w1;
    nn_module *bn;
    nn_graph_reset(g);
    nn_set_error_hook(record_error, NULL);
    memset(&o, 0, sizeof o);
    memset(&po, 0, sizeof po);
    x = nn_zeros(g, NN_SHAPE(2, 3, 8, 8));
    w = nn_zeros(g, NN_SHAPE(4, 2, 3, 3));
    expect_error(nn_conv2d_op(x, w, NULL, o), "channel mismatch", "nn_conv2d", "[4,2,3,3]");
    w = nn_zeros(g, NN_SHAPE(4, 3, 5, 5));
    x = nn_zeros(g, NN_SHAPE(1, 3, 2, 3));
    o.padding = 1;
    expect_error(nn_conv2d_op(x, w, NULL, o), "kernel larger than padded input", "nn_conv2d",
                 "[1,3,2,3]");
    o.padding = 0;
    o.dilation = 3;
    x = nn_zeros(g, NN_SHAPE(1, 3, 9, 9));
    w1 = nn_zeros(g, NN_SHAPE(4, 3, 5, 5));
    expect_error(nn_conv2d_op(x, w1, NULL, o), "dilated kernel larger than input", "nn_conv2d", "dilation 3");
    o.dilation = 0;
    o.groups = 2;
    x = nn_zeros(g, NN_SHAPE(1, 3, 9, 9));
    expect_error(nn_conv2d_op(x, w, NULL, o), "groups do not divide channels", "nn_conv2d", "groups=2");
    o.groups = 0;
    expect_error(nn_conv2d_op(x, w, nn_zeros(g, NN_SHAPE(5)), o), "bias size", "nn_conv2d", "[5]");
    expect_error(nn_conv2d_op(nn_zeros(g, NN_SHAPE(3, 9, 9)), w, NULL, o), "3-D input to conv2d",
                 "nn_conv2d", "[N,C,H,W]");
    expect_error(nn_conv1d_op(nn_zeros(g, NN_SHAPE(2, 2, 7)), nn_zeros(g, NN_SHAPE(3, 3, 3)), NULL, o),
                 "conv1d channel mismatch", "nn_conv1d", "[2,2,7]");
    o.stride = 2;
    o.output_padding = 2;
    expect_error(nn_conv_transpose2d_op(nn_zeros(g, NN_SHAPE(1, 4, 3, 3)), nn_zeros(g, NN_SHAPE(4, 2, 3, 3)), NULL, o),
                 "output_padding too large", "nn_conv_transpose2d", "output_padding 2");
    o.output_padding = 0;
    o.stride = 0;
    expect_error(nn_conv_transpose2d_op(nn_zeros(g, NN_SHAPE(1, 3, 3, 3)), nn_zeros(g, NN_SHAPE(4, 2, 3, 3)), NULL, o),
                 "transposed channel mismatch", "nn_conv_transpose2d", "[1,3,3,3]");
    po.kernel = 5;
    expect_error(nn_maxpool2d_op(nn_zeros(g, NN_SHAPE(1, 1, 4, 4)), po), "pool kernel too large",
                 "nn_maxpool2d", "[1,1,4,4]");
    po.kernel = 2;
    po.padding = 2;
    expect_error(nn_avgpool2d_op(nn_zeros(g, NN_SHAPE(1, 1, 4, 4)), po), "pool padding > kernel/2",
                 "nn_avgpool2d", "padding=2");
    po.padding = 0;
    expect_error(nn_maxpool1d_op(nn_zeros(g, NN_SHAPE(1, 4, 4, 4)), po), "4-D input to maxpool1d",
                 "nn_maxpool1d", "[1,4,4,4]");
    expect_error(nn_batch_norm_op(nn_zeros(g, NN_SHAPE(2, 3, 4)), NULL, NULL, nn_zeros(g, NN_SHAPE(4)), NULL,
                                  1, 0.1f, 1e-5f),
                 "batch norm weight size", "nn_batch_norm", "[2,3,4]");
    expect_error(nn_batch_norm_op(nn_zeros(g, NN_SHAPE(1, 3)), NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f),
                 "batch norm of one value per channel", "nn_batch_norm", "more than one value");
    bn = nn_batchnorm2d(3);
    expect_error(nn_forward(bn, nn_zeros(g, NN_SHAPE(2, 3))), "2-D input to batchnorm2d", "nn_forward(BatchNorm2d): needs x", "[2,3]");
    nn_module_free(bn);
    o.kernel = 0;
    NN_TEST_CHECK(nn_conv2d(3, 4, o) == NULL && strstr(last_error, "kernel is required"),
                  "nn_conv2d without a kernel: %s", last_error);
    error_count = 0;
    nn_set_error_hook(NULL, NULL);
}

/* ---- modules: parameters, names, init bounds, output shapes ---- */

static void modules(nn_graph *g) {
    nn_conv_opts o, dw;
    nn_pool_opts po;
    nn_module *net;
    nn_param *ps;
    int np, i, in_bounds = 1;
    nn_tensor *x, *y;
    float bound;
    memset(&o, 0, sizeof o);
    memset(&po, 0, sizeof po);
    nn_seed(7);
    o.kernel = 3;
    o.padding = 1;
    po.kernel = 2;
    dw = o;
    dw.groups = 8;
    net = nn_sequential(nn_conv2d(3, 8, o), nn_batchnorm2d(8), nn_leaky_relu(0.0f), nn_maxpool2d(po),
                        nn_conv2d(8, 8, dw), nn_silu(), nn_avgpool2d(po),
                        nn_upsample_nearest2d(2), nn_gelu(), nn_elu(0.0f), nn_global_avgpool(),
                        nn_flatten(), nn_linear(8, 4), NULL);
    ps = nn_parameters(net, &np);
    NN_TEST_CHECK(np == 8 && !strcmp(ps[0].name, "0.weight") && !strcmp(ps[1].name, "0.bias") &&
                      !strcmp(ps[2].name, "1.weight") && !strcmp(ps[4].name, "4.weight"),
                  "module parameter names (%d parameters)", np);
    NN_TEST_CHECK(ps[0].tensor->ndim == 4 && ps[0].tensor->shape[0] == 8 && ps[0].tensor->shape[1] == 3 &&
                      ps[4].tensor->shape[1] == 1,
                  "conv weight shapes [8,3,3,3] and depthwise [8,1,3,3]");
    bound = 1.0f / sqrtf(27.0f);
    for (i = 0; i < (int)ps[0].tensor->numel; i++)
        if (fabsf(ps[0].tensor->data[i]) > bound) in_bounds = 0;
    for (i = 0; i < 8; i++)
        if (fabsf(ps[1].tensor->data[i]) > bound) in_bounds = 0;
    NN_TEST_CHECK(in_bounds, "conv init within 1/sqrt(fan_in)");
    nn_graph_reset(g);
    x = nn_randn(g, NN_SHAPE(2, 3, 8, 8));
    y = nn_forward(net, x);
    NN_TEST_CHECK(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 4, "CNN forward shape");
    nn_backward(nn_sum(y));
    NN_TEST_CHECK(ps[0].tensor->grad && ps[4].tensor->grad, "CNN backward reaches the convs");
    nn_module_free(net);

    o.groups = 2;
    o.kernel = 3;
    o.stride = 2;
    o.padding = 1;
    o.output_padding = 1;
    o.no_bias = 1;
    net = nn_conv_transpose2d(4, 6, o);
    ps = nn_parameters(net, &np);
    NN_TEST_CHECK(np == 1 && ps[0].tensor->shape[0] == 4 && ps[0].tensor->shape[1] == 3,
                  "conv_transpose2d weight [in, out/groups, k, k], no bias");
    nn_graph_reset(g);
    y = nn_forward(net, nn_randn(g, NN_SHAPE(1, 4, 5, 5)));
    NN_TEST_CHECK(y && y->shape[1] == 6 && y->shape[2] == 10 && y->shape[3] == 10,
                  "conv_transpose2d output 10x10");
    nn_module_free(net);
    o.groups = 0;
    o.output_padding = 0;
    o.stride = 0;
    o.no_bias = 0;
    net = nn_sequential(nn_conv1d(2, 3, o), nn_batchnorm1d(3), nn_maxpool1d(po), nn_avgpool1d(po), NULL);
    nn_graph_reset(g);
    y = nn_forward(net, nn_randn(g, NN_SHAPE(2, 2, 12)));
    NN_TEST_CHECK(y && y->ndim == 3 && y->shape[1] == 3 && y->shape[2] == 3, "conv1d stack output [2,3,3]");
    nn_module_free(net);
}

#if defined(_OPENMP) && !defined(NN_NO_OPENMP) /* the library runs OpenMP threads */
/* The same conv step at 1 and 2 threads gives bitwise the same numbers. */
static void thread_determinism(nn_graph *g) {
    nn_conv_opts o;
    nn_tensor *x, *w, *b, *y;
    float *keep[4];
    size_t sizes[4];
    int t, k, same = 1;
    memset(&o, 0, sizeof o);
    o.padding = 1;
    for (t = 1; t <= 2; t++) {
        nn_set_threads(t);
        nn_graph_reset(g);
        nn_seed(11);
        x = nn_requires_grad(nn_randn(g, NN_SHAPE(16, 8, 12, 12)), 1);
        w = nn_requires_grad(nn_randn(g, NN_SHAPE(16, 8, 3, 3)), 1);
        b = nn_requires_grad(nn_randn(g, NN_SHAPE(16)), 1);
        y = nn_batch_norm_op(nn_conv2d_op(x, w, b, o), NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f);
        nn_backward(nn_sum(nn_mul(y, y)));
        {
            float *src[4];
            src[0] = y->data; src[1] = x->grad; src[2] = w->grad; src[3] = b->grad;
            sizes[0] = y->numel; sizes[1] = x->numel; sizes[2] = w->numel; sizes[3] = b->numel;
            for (k = 0; k < 4; k++) {
                if (t == 1) {
                    keep[k] = (float *)malloc(sizes[k] * sizeof(float));
                    memcpy(keep[k], src[k], sizes[k] * sizeof(float));
                } else {
                    same &= memcmp(keep[k], src[k], sizes[k] * sizeof(float)) == 0;
                    free(keep[k]);
                }
            }
        }
    }
    nn_set_threads(0);
    NN_TEST_CHECK(same, "conv + batch norm forward/backward bitwise equal at 1 and 2 threads");
}
#endif

/* Plain loops: y = conv(x, w) (no bias) and, for a weight r on y, the
   gradients gx = dL/dx and gw = dL/dw of L = sum(r y), in double. */
static void naive_conv(const float *x, const float *w, const float *r, int N, int C, int H, int W,
                       int F, int K, int S, int P, int D, int G, int OH, int OW, float *y, float *gx,
                       float *gw) {
    int n, f, oh, ow, c, kh, kw, Cg = C / G, Fg = F / G;
    size_t nx = (size_t)N * C * H * W, nw = (size_t)F * Cg * K * K, i;
    double *dx = (double *)calloc(nx, sizeof(double)), *dw = (double *)calloc(nw, sizeof(double));
    if (!dx || !dw) {
        NN_TEST_CHECK(0, "naive_conv: out of memory");
        free(dx);
        free(dw);
        return;
    }
    for (n = 0; n < N; n++)
        for (f = 0; f < F; f++)
            for (oh = 0; oh < OH; oh++)
                for (ow = 0; ow < OW; ow++) {
                    double acc = 0.0;
                    size_t yi = (((size_t)n * F + f) * OH + oh) * OW + ow;
                    for (c = 0; c < Cg; c++)
                        for (kh = 0; kh < K; kh++)
                            for (kw = 0; kw < K; kw++) {
                                int ih = oh * S - P + kh * D, iw = ow * S - P + kw * D;
                                size_t xi, wi = (((size_t)f * Cg + c) * K + kh) * K + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                xi = (((size_t)n * C + (size_t)(f / Fg * Cg + c)) * H + ih) * W + iw;
                                acc += (double)x[xi] * w[wi];
                                dx[xi] += (double)r[yi] * w[wi];
                                dw[wi] += (double)r[yi] * x[xi];
                            }
                    y[yi] = (float)acc;
                }
    for (i = 0; i < nx; i++) gx[i] = (float)dx[i];
    for (i = 0; i < nw; i++) gw[i] = (float)dw[i];
    free(dx);
    free(dw);
}

/* Random geometries through nn_conv2d_op against the loops above: sums long
   enough for the direct engine (forward and input gradient) and shorter ones,
   ragged rows, images read in place (no padding, rows of whole blocks),
   filter counts around the vector panel, groups, dilation, padding up to and
   past the kernel's reach.  x feeds two convolutions, so
   its gradient is written fresh by one and accumulated by the other. */
static void direct_engine_sweep(nn_graph *g) {
    static const int geo[][9] = {
        /* N, C, H, W, F, K, P, D, G */
        {3, 8, 7, 13, 5, 3, 1, 1, 1},   {2, 16, 9, 8, 6, 3, 2, 2, 2},  {2, 4, 12, 17, 33, 5, 0, 1, 1},
        {2, 8, 5, 5, 3, 3, 3, 1, 1},    {4, 32, 6, 6, 64, 3, 1, 1, 1}, {1, 64, 4, 30, 7, 1, 0, 1, 1},
        {2, 24, 8, 9, 48, 3, 1, 1, 3},  {3, 12, 11, 4, 17, 3, 1, 1, 1}, {2, 72, 3, 3, 2, 3, 1, 1, 1},
        {2, 7, 10, 25, 40, 3, 1, 1, 1},   {3, 16, 7, 10, 20, 3, 0, 1, 1}, {2, 8, 9, 12, 36, 3, 0, 2, 1},
        /* tap columns that skip the left and right padding (the benchmark
           CNN's conv2, whose input gradient pads dy by 4; wide kernels;
           dilated taps; rows of ragged tiles) */
        {2, 32, 12, 12, 64, 5, 0, 1, 1}, {2, 16, 9, 20, 24, 5, 2, 1, 1}, {2, 8, 6, 14, 16, 7, 3, 1, 1},
        {2, 16, 10, 19, 32, 3, 2, 2, 1}, {2, 12, 5, 29, 8, 5, 4, 1, 1},
    };
    int t;
    for (t = 0; t < (int)(sizeof geo / sizeof geo[0]); t++) {
        int N = geo[t][0], C = geo[t][1], H = geo[t][2], W = geo[t][3], F = geo[t][4], K = geo[t][5];
        int P = geo[t][6], D = geo[t][7], G = geo[t][8], ext = D * (K - 1) + 1;
        int OH = H + 2 * P - ext + 1, OW = W + 2 * P - ext + 1;
        nn_conv_opts o;
        nn_tensor *x, *w, *w2, *r, *r2, *y, *y2;
        float *ry, *rgx, *rgw, *rgx2, *rgw2, *sum;
        size_t nx = (size_t)N * C * H * W, i;
        char what[96];
        memset(&o, 0, sizeof o);
        o.padding = P;
        o.dilation = D;
        o.groups = G;
        nn_graph_reset(g);
        nn_seed(100 + (unsigned)t);
        x = nn_requires_grad(nn_randn(g, NN_SHAPE(N, C, H, W)), 1);
        w = nn_requires_grad(nn_randn(g, NN_SHAPE(F, C / G, K, K)), 1);
        w2 = nn_randn(g, NN_SHAPE(F, C / G, K, K));
        r = nn_randn(g, NN_SHAPE(N, F, OH, OW));
        r2 = nn_randn(g, NN_SHAPE(N, F, OH, OW));
        y = nn_conv2d_op(x, w, NULL, o);
        y2 = nn_conv2d_op(x, w2, NULL, o);
        nn_backward(nn_add(nn_sum(nn_mul(y, r)), nn_sum(nn_mul(y2, r2))));
        ry = (float *)malloc(sizeof(float) * y->numel);
        rgx = (float *)malloc(sizeof(float) * nx);
        rgx2 = (float *)malloc(sizeof(float) * nx);
        rgw = (float *)malloc(sizeof(float) * w->numel);
        rgw2 = (float *)malloc(sizeof(float) * w->numel);
        sum = (float *)malloc(sizeof(float) * nx);
        naive_conv(x->data, w2->data, r2->data, N, C, H, W, F, K, 1, P, D, G, OH, OW, ry, rgx2, rgw2);
        naive_conv(x->data, w->data, r->data, N, C, H, W, F, K, 1, P, D, G, OH, OW, ry, rgx, rgw);
        for (i = 0; i < nx; i++) sum[i] = rgx[i] + rgx2[i];
        snprintf(what, sizeof what, "direct sweep %d (N%d C%d %dx%d F%d k%d p%d d%d g%d)", t, N, C, H,
                 W, F, K, P, D, G);
        nn_test_close(y->data, ry, y->numel, 1e-4f, 1e-4f, what);
        NN_TEST_CHECK(x->grad && w->grad, "%s: gradients", what);
        if (x->grad) nn_test_close(x->grad, sum, nx, 1e-4f, 1e-4f, what);
        if (w->grad) nn_test_close(w->grad, rgw, w->numel, 1e-4f, 1e-4f, what);
        free(ry); free(rgx); free(rgx2); free(rgw); free(rgw2); free(sum);
    }
}

/* 2x2 / stride 2 max pooling (the vectorized path) against a brute-force
   reference: ties keep the first maximum in scan order, a NaN wins over any
   number and the first NaN wins over later ones; widths below, at and above
   a vector of outputs, and an odd width whose last column is dropped. */
static void maxpool_edges(nn_graph *g) {
    static const int widths[] = {2, 7, 24, 32, 33, 40, 66};
    int wi;
    for (wi = 0; wi < (int)(sizeof widths / sizeof widths[0]); wi++) {
        int W = widths[wi], H = 6, OH = H / 2, OW = W / 2, i, oh, ow, bad_y = 0, bad_g = 0;
        nn_pool_opts po;
        nn_tensor *x, *y;
        nn_graph_reset(g);
        x = nn_requires_grad(nn_zeros(g, NN_SHAPE(2, 3, H, W)), 1);
        for (i = 0; i < (int)x->numel; i++) {
            unsigned r = (unsigned)i * 2654435761u >> 7;
            x->data[i] = (float)(r % 5) - 2.0f; /* many ties */
            if (r % 23 == 0) x->data[i] = NAN;
        }
        memset(&po, 0, sizeof po);
        po.kernel = 2;
        y = nn_maxpool2d_op(x, po);
        nn_backward(nn_sum(y));
        for (i = 0; i < 6; i++) {
            const float *xp = x->data + (size_t)i * H * W, *gp = x->grad + (size_t)i * H * W;
            for (oh = 0; oh < OH; oh++)
                for (ow = 0; ow < OW; ow++) {
                    int k, best = (2 * oh) * W + 2 * ow;
                    for (k = 1; k < 4; k++) {
                        int at = (2 * oh + k / 2) * W + 2 * ow + k % 2;
                        float v = xp[at], b = xp[best];
                        if (v > b || (v != v && b == b)) best = at;
                    }
                    {
                        float got = y->data[((size_t)i * OH + oh) * OW + ow], want = xp[best];
                        if (!(got == want || (got != got && want != want))) bad_y++;
                        if (gp[best] < 1.0f) bad_g++; /* the winner got the gradient */
                    }
                }
            {
                int n = 0;
                float total = 0.0f;
                for (n = 0; n < H * W; n++) total += gp[n];
                if (total != (float)(OH * OW)) bad_g++;
            }
        }
        NN_TEST_CHECK(bad_y == 0 && bad_g == 0, "maxpool 2x2 width %d: %d wrong values, %d wrong gradients",
                      W, bad_y, bad_g);
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    char path[512], t[32];
    int version = 0, cases = 0;
    nn_graph *g = nn_graph_new();
    snprintf(path, sizeof path, "%s/conv.txt", dir);
    gf = fopen(path, "r");
    NN_TEST_CHECK(gf != NULL, "open %s (run from the repository root or pass the golden dir)", path);
    if (gf) {
        NN_TEST_CHECK(expect("nn.h-golden-conv") && read_int(&version) && version == 1, "golden magic");
        while (tok(t, sizeof t)) {
            if (!strcmp(t, "case")) golden_case(g);
            else if (!strcmp(t, "bn")) golden_bn(g);
            else {
                printf("golden: unexpected token %s\n", t);
                break;
            }
            cases++;
        }
        fclose(gf);
        NN_TEST_CHECK(cases >= 40, "golden cases read: %d", cases);
    }
    bn_fd(g);
    shape_errors(g);
    maxpool_edges(g);
    direct_engine_sweep(g);
    modules(g);
#if defined(_OPENMP) && !defined(NN_NO_OPENMP) /* the library runs OpenMP threads */
    thread_determinism(g);
#endif
    nn_graph_free(g);
    return nn_test_summary("test_conv");
}
