/* The fast paths of the training step (issue #16):
   - a parameter's first gradient since nn_zero_grad is written by the linear
     backward's product with beta 0 (no read of the zeroed buffer): the
     gradients equal those of the accumulate path (the buffers first touched
     by nn_grad_buffer, so the backward adds), and a hand-computed reference;
     a second backward still adds; a weight used twice sums both uses;
   - the one-thread paths that skip the parallel region (column sums,
     activation backward, the SGD step, the loader): 1 and 2 threads give
     bitwise the same parameters after some steps and the same batches;
   - a linear backward's dX and dW run as a pair, one per thread: bitwise the
     same at 1 and 2 threads, equal to the reference products. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define IN 300
#define HID 256
#define OUT 10
#define ROWS 16

static void fill(float *x, size_t n, unsigned seed) {
    size_t i;
    for (i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

/* Copies of every parameter's gradient of net, concatenated. */
static size_t grads_of(nn_module *net, float *dst) {
    int n, i;
    size_t k = 0;
    nn_param *ps = nn_parameters(net, &n);
    for (i = 0; i < n; i++) {
        const float *g = nn_grad(ps[i].tensor);
        if (g) memcpy(dst + k, g, ps[i].tensor->numel * sizeof(float));
        else memset(dst + k, 0, ps[i].tensor->numel * sizeof(float));
        k += ps[i].tensor->numel;
    }
    return k;
}

static size_t params_of(nn_module *net, float *dst) {
    int n, i;
    size_t k = 0;
    nn_param *ps = nn_parameters(net, &n);
    for (i = 0; i < n; i++) {
        memcpy(dst + k, ps[i].tensor->data, ps[i].tensor->numel * sizeof(float));
        k += ps[i].tensor->numel;
    }
    return k;
}

static int same(const float *a, const float *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!(a[i] == b[i])) return 0;
    return 1;
}

static nn_tensor *mlp_loss(nn_module *net, nn_graph *g, const float *xd, const int *y) {
    nn_tensor *x = nn_tensor_from(g, xd, NN_SHAPE(ROWS, IN));
    nn_ce_opts ce;
    memset(&ce, 0, sizeof ce);
    return nn_cross_entropy(nn_forward(net, x), y, ce);
}

static nn_module *make_mlp(void) {
    nn_seed(7);
    return nn_sequential(nn_linear(IN, HID), nn_relu(), nn_linear(HID, OUT), NULL);
}

#define NPAR ((size_t)HID * IN + HID + (size_t)OUT * HID + OUT)

/* The overwrite path against the accumulate path and against accumulation. */
static void test_overwrite_grads(void) {
    static float xd[ROWS * IN], ga[NPAR], gb[NPAR], gc[NPAR];
    int y[ROWS], i, n;
    nn_module *net = make_mlp();
    nn_sgd_opts so;
    nn_optim *opt;
    nn_graph *g = nn_graph_new();
    nn_param *ps;
    size_t k;
    memset(&so, 0, sizeof so);
    so.lr = 0.1f;
    opt = nn_sgd(net, so);
    fill(xd, sizeof xd / sizeof *xd, 3u);
    for (i = 0; i < ROWS; i++) y[i] = (i * 7) % OUT;
    /* fill the buffers with a gradient, then clear: the next backward overwrites */
    nn_backward(mlp_loss(net, g, xd, y));
    nn_zero_grad(opt);
    nn_graph_reset(g);
    nn_backward(mlp_loss(net, g, xd, y));
    k = grads_of(net, ga);
    NN_TEST_CHECK(k == NPAR, "parameter count %zu", k);
    /* the accumulate path: every buffer touched (zeroed) by hand first */
    nn_zero_grad(opt);
    ps = nn_parameters(net, &n);
    for (i = 0; i < n; i++) nn_grad_buffer(ps[i].tensor);
    nn_graph_reset(g);
    nn_backward(mlp_loss(net, g, xd, y));
    grads_of(net, gb);
    NN_TEST_CHECK(same(ga, gb, NPAR), "first gradient after zero_grad == the accumulated one");
    /* a second backward adds */
    nn_graph_reset(g);
    nn_backward(mlp_loss(net, g, xd, y));
    grads_of(net, gc);
    /* (the weights' product adds its sum to the buffer: exact; the bias adds
       row by row: to rounding) */
    for (k = 0; k < NPAR && fabsf(gc[k] - 2.0f * ga[k]) <= 1e-6f * fabsf(ga[k]) + 1e-9f; k++) {}
    NN_TEST_CHECK(k == NPAR, "a second backward adds (element %zu)", k);
    for (k = 0; k < (size_t)HID * IN && gc[k] == ga[k] + ga[k]; k++) {}
    NN_TEST_CHECK(k == (size_t)HID * IN, "the weights' second gradient adds exactly (element %zu)", k);
    /* nn_grad is NULL after zero_grad until a backward */
    nn_zero_grad(opt);
    ps = nn_parameters(net, &n);
    NN_TEST_CHECK(nn_grad(ps[0].tensor) == NULL && nn_grad(ps[3].tensor) == NULL,
                  "no gradient after zero_grad");
    nn_optim_free(opt);
    nn_module_free(net);
    nn_graph_free(g);
}

/* One linear layer, loss = sum(out): dW[j][k] = sum_i x[i][k], db[j] = rows;
   the weight used twice in one graph gets both uses. */
static void test_linear_reference(void) {
    static float xd[ROWS * 40];
    nn_module *lin;
    nn_sgd_opts so;
    nn_optim *opt;
    nn_graph *g = nn_graph_new();
    nn_tensor *x, *w, *b;
    const float *gw, *gbias;
    double want;
    int i, k, ok = 1, okb = 1, ok2 = 1;
    nn_seed(3);
    lin = nn_linear(40, 24);
    memset(&so, 0, sizeof so);
    so.lr = 0.1f;
    opt = nn_sgd(lin, so);
    fill(xd, sizeof xd / sizeof *xd, 11u);
    w = nn_param_get(lin, "weight");
    b = nn_param_get(lin, "bias");
    nn_backward(nn_sum(nn_forward(lin, nn_tensor_from(g, xd, NN_SHAPE(ROWS, 40)))));
    nn_zero_grad(opt); /* old values in the buffers */
    nn_graph_reset(g);
    x = nn_tensor_from(g, xd, NN_SHAPE(ROWS, 40));
    nn_backward(nn_sum(nn_forward(lin, x)));
    gw = nn_grad(w);
    gbias = nn_grad(b);
    for (k = 0; k < 40; k++) {
        want = 0.0;
        for (i = 0; i < ROWS; i++) want += (double)xd[i * 40 + k];
        for (i = 0; i < 24; i++) ok &= fabs((double)gw[i * 40 + k] - want) < 1e-5;
    }
    for (i = 0; i < 24; i++) okb &= gbias[i] == (float)ROWS;
    NN_TEST_CHECK(gw && ok, "dW = column sums of x");
    NN_TEST_CHECK(gbias && okb, "db = rows");
    /* the weight in two linear ops of one graph: twice the gradient */
    nn_zero_grad(opt);
    nn_graph_reset(g);
    x = nn_tensor_from(g, xd, NN_SHAPE(ROWS, 40));
    nn_backward(nn_add(nn_sum(nn_linear_op(x, w, b)), nn_sum(nn_linear_op(x, w, NULL))));
    gw = nn_grad(w);
    gbias = nn_grad(b);
    for (k = 0; k < 40; k++) {
        want = 0.0;
        for (i = 0; i < ROWS; i++) want += (double)xd[i * 40 + k];
        for (i = 0; i < 24; i++) ok2 &= fabs((double)gw[i * 40 + k] - 2.0 * want) < 2e-5;
    }
    for (i = 0; i < 24; i++) ok2 &= gbias[i] == (float)ROWS;
    NN_TEST_CHECK(gw && gbias && ok2, "a weight used twice: both gradients, the bias once");
    nn_optim_free(opt);
    nn_module_free(lin);
    nn_graph_free(g);
}

/* Three SGD-momentum steps of the MLP at 1 and at 2 threads: bitwise the
   same parameters (the sizes cross the element-wise threading threshold). */
static void train_steps(int threads, float *out) {
    static float xd[ROWS * IN];
    int y[ROWS], i, s;
    nn_module *net;
    nn_sgd_opts so;
    nn_optim *opt;
    nn_graph *g = nn_graph_new();
    nn_set_threads(threads);
    net = make_mlp();
    memset(&so, 0, sizeof so);
    so.lr = 0.05f;
    so.momentum = 0.9f;
    opt = nn_sgd(net, so);
    fill(xd, sizeof xd / sizeof *xd, 5u);
    for (i = 0; i < ROWS; i++) y[i] = (i * 3) % OUT;
    for (s = 0; s < 3; s++) {
        nn_graph_reset(g);
        nn_zero_grad(opt);
        nn_backward(mlp_loss(net, g, xd, y));
        nn_step(opt);
    }
    params_of(net, out);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_graph_free(g);
    nn_set_threads(0);
}

static void test_threads_bitwise(void) {
    static float p1[NPAR], p2[NPAR], p0[NPAR];
    nn_module *net = make_mlp();
    params_of(net, p0);
    nn_module_free(net);
    train_steps(1, p1);
    train_steps(2, p2);
    NN_TEST_CHECK(memcmp(p1, p2, sizeof p1) == 0, "SGD steps: 1 and 2 threads bitwise equal");
    NN_TEST_CHECK(memcmp(p0, p1, sizeof p1) != 0, "the steps changed the parameters");
}

/* The loader's batch at 1 and 2 threads (128 x 784 bytes: a threaded pass). */
static void test_loader_threads(void) {
    enum { N = 300, S = 784, B = 128 };
    static unsigned char xb[N * S];
    static float b1[B * S], b2[B * S];
    static int y[N];
    nn_dataset ds;
    nn_loader_opts lo;
    nn_loader *ld;
    nn_graph *g = nn_graph_new();
    nn_tensor *x;
    const int *lab;
    int i, t, lab1[B], okl = 1, okv = 1;
    for (i = 0; i < N * S; i++) xb[i] = (unsigned char)((i * 131 + 7) & 255);
    for (i = 0; i < N; i++) y[i] = i % 10;
    memset(&ds, 0, sizeof ds);
    ds.n = N;
    ds.sample_size = S;
    ds.shape[0] = 1;
    ds.shape[1] = 28;
    ds.shape[2] = 28;
    ds.nclasses = 10;
    ds.x = xb;
    ds.y = y;
    memset(&lo, 0, sizeof lo);
    lo.batch_size = B;
    lo.shuffle = 1;
    for (t = 1; t <= 2; t++) {
        nn_rng *r = nn_rng_new(9);
        lo.rng = r;
        nn_set_threads(t);
        ld = nn_loader_new(&ds, lo);
        nn_graph_reset(g);
        NN_TEST_CHECK(nn_loader_next(ld, g, &x, &lab) == B, "a full batch");
        memcpy(t == 1 ? b1 : b2, x->data, sizeof b1);
        if (t == 1) memcpy(lab1, lab, sizeof lab1);
        else
            for (i = 0; i < B; i++) okl &= lab1[i] == lab[i];
        for (i = 0; i < B; i++) {
            /* each row is one sample scaled by 1/255: its label says which */
            int k = (int)lab[i], j;
            (void)k;
            for (j = 0; j < 3; j++) okv &= x->data[(size_t)i * S + j] >= 0.0f && x->data[(size_t)i * S + j] <= 1.0f;
        }
        nn_loader_free(ld);
        nn_rng_free(r);
    }
    nn_set_threads(0);
    NN_TEST_CHECK(memcmp(b1, b2, sizeof b1) == 0 && okl, "loader: 1 and 2 threads give the same batch");
    NN_TEST_CHECK(okv, "pixels in [0, 1]");
    nn_graph_free(g);
}

/* A linear layer's backward whose input and weight both need a gradient:
   dX and dW run as a pair, one per thread, at 2 threads (the 10-wide layer,
   each product too small to split, and a 128-wide one, each big enough to
   split).  1 and 2 threads give bitwise the same gradients, and they match
   the reference products; the gradients after a second backward (beta 1)
   still agree. */
static void test_pair_backward(void) {
    enum { R = 128, I = 128 };
    static const int outs[2] = {10, 128};
    static float xd[R * I], gy[R * 128], gref[R * I], got[2][R * I + 128 * I + 128];
    int c, t, i, ok = 1;
    for (c = 0; c < 2; c++) {
        int O = outs[c];
        nn_module *lin;
        nn_tensor *w, *b;
        fill(xd, (size_t)R * I, 21u);
        fill(gy, (size_t)R * O, 22u);
        for (t = 1; t <= 2; t++) {
            nn_graph *g = nn_graph_new();
            nn_tensor *x, *y;
            nn_set_threads(t);
            nn_seed(5);
            lin = nn_linear(I, O);
            w = nn_param_get(lin, "weight");
            b = nn_param_get(lin, "bias");
            x = nn_requires_grad(nn_tensor_from(g, xd, NN_SHAPE(R, I)), 1);
            /* loss = sum(y * gy): dL/dy = gy */
            y = nn_forward(lin, x);
            nn_backward(nn_sum(nn_mul(y, nn_tensor_from(g, gy, NN_SHAPE(R, O)))));
            memcpy(got[t - 1], nn_grad(x), sizeof(float) * R * I);
            memcpy(got[t - 1] + R * I, nn_grad(w), sizeof(float) * (size_t)O * I);
            memcpy(got[t - 1] + R * I + O * I, nn_grad(b), sizeof(float) * (size_t)O);
            if (t == 1) {
                /* the references: dX = gy W, dW = gy^T x */
                nn_sgemm_ref(0, 0, R, I, O, 1.0f, gy, O, w->data, I, 0.0f, gref, I);
                for (i = 0; i < R * I; i++) ok &= fabsf(gref[i] - got[0][i]) <= 1e-4f;
                nn_sgemm_ref(1, 0, O, I, R, 1.0f, gy, O, xd, I, 0.0f, gref, I);
                for (i = 0; i < O * I; i++) ok &= fabsf(gref[i] - got[0][R * I + i]) <= 1e-4f;
            }
            /* a second backward adds to the weight's gradient (beta 1) */
            nn_graph_reset(g);
            x = nn_requires_grad(nn_tensor_from(g, xd, NN_SHAPE(R, I)), 1);
            y = nn_forward(lin, x);
            nn_backward(nn_sum(nn_mul(y, nn_tensor_from(g, gy, NN_SHAPE(R, O)))));
            for (i = 0; i < O * I; i++) ok &= nn_grad(w)[i] == got[t - 1][R * I + i] * 2.0f;
            nn_module_free(lin);
            nn_graph_free(g);
        }
        NN_TEST_CHECK(memcmp(got[0], got[1], sizeof(float) * (size_t)(R * I + O * I + O)) == 0,
                      "linear %d -> %d backward: 1 and 2 threads bitwise equal", I, O);
    }
    nn_set_threads(0);
    NN_TEST_CHECK(ok, "the paired dX and dW match the reference products; a second backward adds");
}

int main(void) {
    test_overwrite_grads();
    test_linear_reference();
    test_threads_bitwise();
    test_loader_threads();
    test_pair_backward();
    return nn_test_summary("test_trainfast");
}
