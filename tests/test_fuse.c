/* Fusion in nn_sequential.  With gradients off: Linear->ReLU and
   Conv2d->ReLU with the ReLU in the product's write-back, Conv2d->BatchNorm2d
   (->ReLU) with the batch norm folded into cached weights, the direct
   engine's weights packed once; the caches see every parameter change; the
   product's epilogue (bias, ReLU) at every batch size against
   nn_sgemm_ref.  In training too: Linear->ReLU as one node and
   ReLU->MaxPool as one pooling, bitwise the modules one by one.  (That a
   fused eval forward allocates nothing is in tests/test_alloc.c, which has
   the allocator hooks.) */
#ifndef NN_TEST_LINKED
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The children of seq one by one (nn_forward on each: never fused). */
static nn_tensor *unfused(nn_module *seq, nn_tensor *x) {
    int i;
    for (i = 0; i < seq->nchildren && x; i++) x = nn_forward(seq->children[i], x);
    return x;
}

/* max |a - b| / max(1, |b|) over the elements (1e30 on a shape mismatch). */
static double rel_diff(const nn_tensor *a, const nn_tensor *b) {
    double worst = 0.0;
    size_t i;
    if (!a || !b || a->numel != b->numel) return 1e30;
    for (i = 0; i < a->numel; i++) {
        double d = fabs((double)a->data[i] - (double)b->data[i]) / fmax(1.0, fabs((double)b->data[i]));
        if (!(d <= worst)) worst = d != d ? 1e30 : d;
    }
    return worst;
}

static nn_tensor *input(nn_graph *g, nn_shape s) { return nn_rand(g, s, -1.0f, 1.0f); }

/* fused (the sequential) against the children one by one, with gradients
   off, at batch sizes 1, 3, 8; returns the worst relative difference. */
static double compare(nn_module *seq, nn_graph *g, nn_shape s) {
    static const int batches[3] = {1, 3, 8};
    double worst = 0.0;
    int k;
    for (k = 0; k < 3; k++) {
        nn_tensor *x, *a, *b;
        double d;
        nn_graph_reset(g);
        s.d[0] = batches[k];
        x = input(g, s);
        a = nn_forward(seq, x);
        b = unfused(seq, x);
        d = rel_diff(a, b);
        if (d > worst) worst = d;
    }
    return worst;
}

static nn_conv_opts conv_opts(int k, int pad) {
    nn_conv_opts o;
    memset(&o, 0, sizeof o);
    o.kernel = k;
    o.padding = pad;
    return o;
}

/* Random batch-norm statistics and affine parameters (C channels). */
static void randomize_bn(nn_module *bn, int C) {
    int c;
    for (c = 0; c < C; c++) {
        nn_param_get(bn, "running_mean")->data[c] = nn_rand_uniform() - 0.5f;
        nn_param_get(bn, "running_var")->data[c] = 0.5f + nn_rand_uniform();
        nn_param_get(bn, "weight")->data[c] = 0.5f + nn_rand_uniform();
        nn_param_get(bn, "bias")->data[c] = nn_rand_uniform() - 0.5f;
    }
    nn_module_changed(bn);
}

static void test_pairs(void) {
    nn_graph *g = nn_graph_new();
    nn_module *mlp, *c1, *c2, *cbn, *cbn2;
    nn_set_grad_enabled(g, 0);
    nn_seed(11);
    mlp = nn_sequential(nn_linear(13, 7), nn_relu(), nn_linear(7, 5), nn_relu(), nn_linear(5, 3), NULL);
    nn_train_mode(mlp, 0);
    NN_TEST_CHECK(compare(mlp, g, NN_SHAPE(1, 13)) == 0.0, "Linear->ReLU fused: the same bits");
    /* the implicit GEMM (9 taps) and the direct engine (8 x 9 = 72 taps) */
    c1 = nn_sequential(nn_conv2d(1, 5, conv_opts(3, 1)), nn_relu(), NULL);
    c2 = nn_sequential(nn_conv2d(8, 19, conv_opts(3, 1)), nn_relu(), nn_conv2d(19, 6, conv_opts(3, 0)),
                       nn_relu(), NULL);
    nn_train_mode(c1, 0);
    nn_train_mode(c2, 0);
    NN_TEST_CHECK(compare(c1, g, NN_SHAPE(1, 1, 7, 9)) == 0.0, "Conv2d->ReLU (implicit GEMM) fused");
    NN_TEST_CHECK(compare(c2, g, NN_SHAPE(1, 8, 9, 7)) == 0.0, "Conv2d->ReLU (direct engine) fused");
    /* training mode with gradients off: the ReLU fused, nothing cached */
    nn_train_mode(c2, 1);
    NN_TEST_CHECK(compare(c2, g, NN_SHAPE(1, 8, 9, 7)) == 0.0, "Conv2d->ReLU in training mode");
    /* batch norm folded, with and without the ReLU after it */
    cbn = nn_sequential(nn_conv2d(8, 12, conv_opts(3, 1)), nn_batchnorm2d(12), nn_relu(), NULL);
    cbn2 = nn_sequential(nn_conv2d(2, 4, conv_opts(3, 0)), nn_batchnorm2d(4), NULL);
    randomize_bn(cbn->children[1], 12);
    randomize_bn(cbn2->children[1], 4);
    nn_train_mode(cbn, 0);
    nn_train_mode(cbn2, 0);
    NN_TEST_CHECK(compare(cbn, g, NN_SHAPE(1, 8, 6, 6)) < 1e-5, "Conv2d->BN->ReLU folded (%g)",
                  compare(cbn, g, NN_SHAPE(1, 8, 6, 6)));
    NN_TEST_CHECK(compare(cbn2, g, NN_SHAPE(1, 2, 5, 5)) < 1e-5, "Conv2d->BN folded");
    /* in training mode batch norm is not folded (batch statistics) */
    nn_train_mode(cbn2, 1);
    NN_TEST_CHECK(compare(cbn2, g, NN_SHAPE(1, 2, 5, 5)) < 1e-6, "Conv2d->BN in training mode");
    /* weight-normed layers (their forward computes the weight): never fused
       with the weight they do not use */
    {
        nn_module *wl = nn_sequential(nn_weight_norm(nn_linear(6, 5), "weight", 0), nn_relu(), NULL);
        nn_module *wc = nn_sequential(nn_weight_norm(nn_conv2d(2, 3, conv_opts(3, 1)), "weight", 0),
                                      nn_relu(), NULL);
        nn_train_mode(wl, 0);
        nn_train_mode(wc, 0);
        NN_TEST_CHECK(compare(wl, g, NN_SHAPE(1, 6)) == 0.0, "weight-normed Linear->ReLU");
        NN_TEST_CHECK(compare(wc, g, NN_SHAPE(1, 2, 5, 5)) == 0.0, "weight-normed Conv2d->ReLU");
        nn_module_free(wl);
        nn_module_free(wc);
    }
    nn_module_free(mlp);
    nn_module_free(c1);
    nn_module_free(c2);
    nn_module_free(cbn);
    nn_module_free(cbn2);
    nn_graph_free(g);
}

/* Run x through seq fused (gradients off) and one by one: equal within tol? */
static int agrees(nn_module *seq, nn_graph *g, const float *xv, double tol) {
    nn_tensor *x, *a, *b;
    int was = nn_set_grad_enabled(g, 0);
    double d;
    nn_graph_reset(g);
    x = nn_tensor_from(g, xv, NN_SHAPE(2, 3, 5, 5));
    a = nn_forward(seq, x);
    b = unfused(seq, x);
    d = rel_diff(a, b);
    nn_set_grad_enabled(g, was);
    return d < tol;
}

/* The caches follow the parameters: an optimizer step, nn_load, a
   training-mode forward moving the running statistics, a direct write
   declared with nn_module_changed. */
static void test_invalidation(void) {
    nn_graph *g = nn_graph_new();
    nn_module *seq, *conv, *bn;
    nn_optim *opt;
    nn_sgd_opts so;
    nn_load_opts lo;
    nn_save_opts sv;
    void *buf = NULL;
    size_t size = 0;
    float xv[2 * 3 * 5 * 5];
    nn_tensor *x, *y;
    int i;
    nn_seed(5);
    for (i = 0; i < 150; i++) xv[i] = nn_rand_uniform() * 2.0f - 1.0f;
    /* 3 x 9 x 3 = 81 taps: the direct engine with packed weights */
    seq = nn_sequential(nn_conv2d(3, 9, conv_opts(3, 1)), nn_batchnorm2d(9), nn_relu(), NULL);
    conv = seq->children[0];
    bn = seq->children[1];
    randomize_bn(bn, 9);
    nn_train_mode(seq, 0);
    NN_TEST_CHECK(agrees(seq, g, xv, 1e-5), "folded at first");
    memset(&sv, 0, sizeof sv);
    NN_TEST_CHECK(nn_save_mem(seq, sv, &buf, &size) == NN_OK, "saved");
    /* an SGD step in evaluation mode (gradients on: not fused) */
    memset(&so, 0, sizeof so);
    so.lr = 0.5f;
    opt = nn_sgd(seq, so);
    nn_graph_reset(g);
    x = nn_tensor_from(g, xv, NN_SHAPE(2, 3, 5, 5));
    y = nn_forward(seq, x);
    nn_zero_grad(opt);
    nn_backward(nn_sum(nn_mul(y, y)));
    nn_step(opt);
    NN_TEST_CHECK(agrees(seq, g, xv, 1e-5), "an optimizer step is seen");
    /* nn_load of the saved state */
    memset(&lo, 0, sizeof lo);
    NN_TEST_CHECK(nn_load_mem(seq, buf, size, lo) == NN_OK, "loaded");
    NN_TEST_CHECK(agrees(seq, g, xv, 1e-5), "nn_load is seen");
    /* a training-mode forward of the batch norm alone moves its statistics */
    bn->training = 1;
    nn_graph_reset(g);
    nn_forward(bn, nn_rand(g, NN_SHAPE(4, 9, 3, 3), 0.0f, 3.0f));
    bn->training = 0;
    NN_TEST_CHECK(agrees(seq, g, xv, 1e-5), "a running-statistics update is seen");
    /* a direct write, declared */
    nn_param_get(conv, "weight")->data[0] += 1.0f;
    nn_param_get(bn, "running_var")->data[0] = 4.0f;
    nn_module_changed(seq);
    NN_TEST_CHECK(agrees(seq, g, xv, 1e-5), "nn_module_changed is seen");
    /* Conv->ReLU alone (no batch norm): the packed weights follow a step */
    {
        nn_module *cr = nn_sequential(nn_conv2d(3, 9, conv_opts(3, 1)), nn_relu(), NULL);
        nn_optim *o2;
        nn_train_mode(cr, 0);
        NN_TEST_CHECK(agrees(cr, g, xv, 1e-6), "Conv->ReLU packed");
        o2 = nn_sgd(cr, so);
        nn_set_grad_enabled(g, 1);
        nn_graph_reset(g);
        y = nn_forward(cr, nn_tensor_from(g, xv, NN_SHAPE(2, 3, 5, 5)));
        nn_zero_grad(o2);
        nn_backward(nn_sum(nn_mul(y, y)));
        nn_step(o2);
        NN_TEST_CHECK(agrees(cr, g, xv, 1e-6), "packed weights follow a step");
        nn_optim_free(o2);
        nn_module_free(cr);
    }
    nn_free(buf);
    nn_optim_free(opt);
    nn_module_free(seq);
    nn_graph_free(g);
}

/* Linear layers (the product's epilogue: bias and ReLU in the write-back)
   at M = 1..16 with odd sizes against nn_sgemm_ref plus the bias and ReLU,
   and nn_sgemm's small kernel against nn_sgemm_ref in every layout. */
static void test_kernels(void) {
    nn_graph *g = nn_graph_new();
    static const int NK[3][2] = {{1, 1}, {7, 13}, {37, 67}};
    int m, s, worst_at = -1, ta, tb;
    double worst = 0.0, worst_g = 0.0;
    nn_set_grad_enabled(g, 0);
    nn_seed(2);
    for (s = 0; s < 3; s++) {
        int N = NK[s][0], K = NK[s][1], j;
        nn_module *seq = nn_sequential(nn_linear(K, N), nn_relu(), NULL);
        nn_tensor *w = nn_param_get(seq, "0.weight"), *b = nn_param_get(seq, "0.bias");
        for (m = 1; m <= 16; m++) {
            nn_tensor *x, *y;
            float ref[16 * 37];
            nn_graph_reset(g);
            x = input(g, NN_SHAPE(m, K));
            y = nn_forward(seq, x);
            nn_sgemm_ref(0, 1, m, N, K, 1.0f, x->data, K, w->data, K, 0.0f, ref, N);
            for (j = 0; j < m * N; j++) {
                float r = ref[j] + b->data[j % N];
                double d = fabs((double)y->data[j] - (double)(r < 0.0f ? 0.0f : r));
                if (d > worst) worst = d, worst_at = m;
            }
        }
        nn_module_free(seq);
    }
    NN_TEST_CHECK(worst < 1e-5, "Linear->ReLU at M = 1..16 against nn_sgemm_ref: %g (M=%d)", worst,
                  worst_at);
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++)
            for (m = 1; m <= 16; m++) {
                int N = 2 * m + 3, K = 3 * m + 2, i;
                float A[16 * 50], B[50 * 35], C[16 * 35], R[16 * 35];
                for (i = 0; i < m * K; i++) A[i] = nn_rand_uniform() - 0.5f;
                for (i = 0; i < K * N; i++) B[i] = nn_rand_uniform() - 0.5f;
                for (i = 0; i < m * N; i++) C[i] = R[i] = nn_rand_uniform();
                nn_sgemm(ta, tb, m, N, K, 1.5f, A, ta ? m : K, B, tb ? K : N, 0.5f, C, N);
                nn_sgemm_ref(ta, tb, m, N, K, 1.5f, A, ta ? m : K, B, tb ? K : N, 0.5f, R, N);
                for (i = 0; i < m * N; i++) {
                    double d = fabs((double)C[i] - (double)R[i]);
                    if (d > worst_g) worst_g = d;
                }
            }
    NN_TEST_CHECK(worst_g < 1e-5, "nn_sgemm at M = 1..16, odd N and K, all layouts: %g", worst_g);
    nn_graph_free(g);
}

/* bitwise equal arrays of n floats */
static int same_bits(const float *a, const float *b, size_t n) {
    return a && b && memcmp(a, b, n * sizeof(float)) == 0;
}

/* seq on x in training, fused (the sequential) and unfused (its children
   one by one), each followed by the backward of sum(out * r) with the same
   r; checks the output, x's gradient and the gradients of layer 0's weight
   and bias (when with_params) bitwise.  what names the case. */
static void check_training_bitwise(nn_graph *g, nn_module *seq, nn_tensor *x, int with_params,
                                   const char *what) {
    float *keep[2][4] = {{0}};
    size_t n[4] = {0, 0, 0, 0};
    int pass, k, ok = 1;
    for (pass = 0; pass < 2; pass++) {
        nn_tensor *out, *r, *par[2] = {NULL, NULL};
        if (with_params) par[0] = nn_param_get(seq, "0.weight"), par[1] = nn_param_get(seq, "0.bias");
        for (k = 0; k < 2; k++)
            if (par[k] && par[k]->grad) memset(par[k]->grad, 0, par[k]->numel * sizeof(float));
        if (x->grad) memset(x->grad, 0, x->numel * sizeof(float));
        out = pass ? unfused(seq, x) : nn_forward(seq, x);
        if (!out) {
            ok = 0;
            break;
        }
        nn_seed(77); /* the same weights r in both passes */
        r = nn_rand(g, nn_shape_of(out), -1.0f, 1.0f);
        nn_backward(nn_sum(nn_mul(out, r)));
        n[0] = out->numel;
        n[1] = x->numel;
        n[2] = par[0] ? par[0]->numel : 0;
        n[3] = par[1] ? par[1]->numel : 0;
        for (k = 0; k < 4; k++) {
            const float *src = k == 0 ? out->data : k == 1 ? x->grad : n[k] ? par[k - 2]->grad : NULL;
            keep[pass][k] = (float *)malloc((n[k] ? n[k] : 1) * sizeof(float));
            if (!keep[pass][k] || (n[k] && !src)) ok = 0;
            else if (n[k]) memcpy(keep[pass][k], src, n[k] * sizeof(float));
        }
    }
    NN_TEST_CHECK(ok && same_bits(keep[0][0], keep[1][0], n[0]), "%s: the output bitwise", what);
    NN_TEST_CHECK(ok && same_bits(keep[0][1], keep[1][1], n[1]), "%s: the input gradient bitwise", what);
    NN_TEST_CHECK(ok && same_bits(keep[0][2], keep[1][2], n[2]) && same_bits(keep[0][3], keep[1][3], n[3]),
                  "%s: layer 0's weight and bias gradients bitwise", what);
    for (pass = 0; pass < 2; pass++)
        for (k = 0; k < 4; k++) free(keep[pass][k]);
}

/* ReLU->MaxPool runs as one max pooling with the ReLU on its output, in
   training with gradients on too (max and ReLU commute): the output, the
   input gradient and the conv's parameter gradients bitwise those of the
   modules run one by one, with all-negative windows (ties at zero), 2-D and
   1-D, the 2x2 fast path and padded windows; without the conv, a NaN. */
static void test_relu_pool_training(void) {
    static const int cfg[][6] = {/* dims, kernel, stride, padding, width, conv */
                                 {2, 2, 2, 0, 12, 1}, {2, 3, 2, 1, 11, 1}, {1, 2, 2, 0, 16, 1},
                                 {1, 3, 1, 1, 9, 1},  {2, 2, 2, 0, 10, 0}, {2, 3, 3, 1, 9, 0}};
    nn_graph *g = nn_graph_new();
    int t;
    for (t = 0; t < (int)(sizeof cfg / sizeof cfg[0]); t++) {
        int dims = cfg[t][0], W = cfg[t][4], conv = cfg[t][5], C = conv ? 4 : 3;
        char what[64];
        nn_pool_opts po;
        nn_conv_opts co = conv_opts(3, 1);
        nn_module *seq;
        nn_tensor *x;
        memset(&po, 0, sizeof po);
        po.kernel = cfg[t][1];
        po.stride = cfg[t][2];
        po.padding = cfg[t][3];
        if (dims == 2)
            seq = conv ? nn_sequential(nn_conv2d(3, C, co), nn_relu(), nn_maxpool2d(po), NULL)
                       : nn_sequential(nn_relu(), nn_maxpool2d(po), NULL);
        else
            seq = nn_sequential(nn_conv1d(3, C, co), nn_relu(), nn_maxpool1d(po), NULL);
        nn_graph_reset(g);
        nn_seed(5 + (unsigned)t);
        x = nn_requires_grad(input(g, dims == 2 ? NN_SHAPE(2, 3, W, W) : NN_SHAPE(2, 3, W)), 1);
        if (!conv) x->data[7] = NAN; /* the maximum of one window */
        snprintf(what, sizeof what, "ReLU->MaxPool%dd fused in training (case %d)", dims, t);
        check_training_bitwise(g, seq, x, conv, what);
        nn_module_free(seq);
    }
    nn_graph_free(g);
}

/* Linear->ReLU fused in training (one node whose backward masks by the
   output) against the modules one by one: the output, the input gradient
   and the first layer's parameter gradients bitwise, at batch sizes that
   take the small kernel and the blocked GEMM. */
static void test_linear_relu_training(void) {
    static const int cfg[][3] = {{1, 7, 5}, {3, 9, 17}, {37, 70, 33}, {128, 96, 64}};
    nn_graph *g = nn_graph_new();
    int t;
    for (t = 0; t < (int)(sizeof cfg / sizeof cfg[0]); t++) {
        int M = cfg[t][0], in_f = cfg[t][1], hid = cfg[t][2];
        char what[80];
        nn_module *seq = nn_sequential(nn_linear(in_f, hid), nn_relu(), nn_linear(hid, 3), nn_relu(), NULL);
        nn_tensor *x;
        nn_graph_reset(g);
        nn_seed(11 + (unsigned)t);
        x = nn_requires_grad(input(g, NN_SHAPE(M, in_f)), 1);
        snprintf(what, sizeof what, "Linear->ReLU fused in training (batch %d, %d->%d)", M, in_f, hid);
        check_training_bitwise(g, seq, x, 1, what);
        nn_module_free(seq);
    }
    nn_graph_free(g);
}

/* A child that returns a stored (graph-less) tensor: the next child's
   fusion sees that tensor, not the sequential's input, and must run it
   unfused (it dereferenced the missing graph before). */
static nn_tensor *stored_out;
static nn_tensor *stored_forward(nn_module *m, nn_tensor *x) {
    (void)m, (void)x;
    return stored_out;
}
static void test_graphless_child(void) {
    nn_graph *g = nn_graph_new();
    nn_pool_opts po;
    int grad;
    memset(&po, 0, sizeof po);
    po.kernel = po.stride = 2;
    for (grad = 0; grad < 2; grad++) {
        nn_module *lin = nn_sequential(nn_module_new("Stored", stored_forward), nn_linear(4, 3), nn_relu(), NULL);
        nn_module *pool = nn_sequential(nn_module_new("Stored", stored_forward), nn_relu(),
                                        nn_maxpool2d(po), NULL);
        nn_tensor *x, *y, *ref;
        nn_graph_reset(g);
        nn_set_grad_enabled(g, grad);
        nn_train_mode(lin, grad);
        nn_train_mode(pool, grad);
        x = input(g, NN_SHAPE(2, 4));
        stored_out = nn_randn(NULL, NN_SHAPE(2, 4));
        y = nn_forward(lin, x);
        ref = nn_relu_op(nn_forward(lin->children[1], stored_out));
        NN_TEST_CHECK(y && rel_diff(y, ref) == 0.0,
                      "a graph-less tensor into Linear->ReLU (gradients %s): run unfused, the same values",
                      grad ? "on" : "off");
        nn_tensor_free(stored_out);
        stored_out = nn_randn(NULL, NN_SHAPE(1, 2, 4, 4));
        y = nn_forward(pool, x);
        ref = nn_maxpool2d_op(nn_relu_op(stored_out), po);
        NN_TEST_CHECK(y && rel_diff(y, ref) == 0.0,
                      "a graph-less tensor into ReLU->MaxPool (gradients %s): the same values",
                      grad ? "on" : "off");
        nn_tensor_free(stored_out);
        nn_module_free(lin);
        nn_module_free(pool);
    }
    nn_set_grad_enabled(g, 1);
    nn_graph_free(g);
}

int main(void) {
    nn_set_threads(1);
    test_graphless_child();
    test_linear_relu_training();
    test_pairs();
    test_invalidation();
    test_kernels();
    test_relu_pool_training();
    return nn_test_summary("test_fuse");
}
