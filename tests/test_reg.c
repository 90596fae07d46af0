/* Regularizers (>>regularizers): the dropout family, information dropout,
   residual blocks with stochastic depth, Shake-Shake and ShakeDrop,
   penalties, max-norm, SGDW, mixup and CutMix.  Training statistics within
   confidence bounds, evaluation outputs exactly, gradients by finite
   differences with the noise held fixed (the generator reseeded before each
   evaluation), the forward/backward coefficients of Shake-Shake and
   ShakeDrop against the draws replayed by hand, alpha dropout against
   PyTorch (tests/golden/reg.txt, made by make_golden_reg.py), determinism
   at 1 and 2 threads, and the misuse messages. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <string.h>
#include <stdlib.h>

static nn_graph *G;
static nn_rng *R;

/* Exactly one report holding s1 and (when given) s2; then cleared. */
static void reported(const char *what, const char *s1, const char *s2) {
    int ok = nn_test_msgs == 1 && strstr(nn_test_msg, s1) && (!s2 || strstr(nn_test_msg, s2));
    NN_TEST_CHECK(ok, "%s: %d reports, last \"%s\" (want \"%s\" %s)", what, nn_test_msgs, nn_test_msg,
                  s1, s2 ? s2 : "");
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

/* A persistent leaf of shape s with values v_i = a sin(b i + c) (+ d). */
static nn_tensor *leaf(nn_shape s, float a, float b, float c, float d) {
    nn_tensor *t = nn_zeros(NULL, s);
    size_t i;
    for (i = 0; i < t->numel; i++) t->data[i] = a * sinf(b * (float)i + c) + d;
    return nn_requires_grad(t, 1);
}

/* sum(y * w) with fixed weights w_i = cos(0.7 i): a loss whose gradient at y is w. */
static float W[8192];
static nn_tensor *wsum(nn_tensor *y) {
    nn_tensor *w = nn_tensor_from(y->graph ? y->graph : G, W, nn_shape_of(y));
    return nn_sum(nn_mul(y, w));
}

static double mean_of(const float *v, size_t n) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)v[i];
    return s / (double)n;
}
static double var_of(const float *v, size_t n) {
    double m = mean_of(v, n), s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) s += ((double)v[i] - m) * ((double)v[i] - m);
    return s / (double)(n - 1);
}

/* ---- finite differences with the noise held fixed ---- */

typedef nn_tensor *(*loss_fn)(nn_tensor **in, void *ctx);

/* Analytic gradients of fn's loss at the inputs against central differences,
   R reseeded with seed before every evaluation. */
static void gradcheck(const char *what, loss_fn fn, nn_tensor **in, int nin, void *ctx,
                      uint64_t seed, float eps, double tol) {
    int k, ok = 1;
    double worst = 0.0;
    size_t i;
    for (k = 0; k < nin; k++) memset(in[k]->grad, 0, in[k]->numel * sizeof(float));
    nn_graph_reset(G);
    nn_rng_seed(R, seed);
    nn_backward(fn(in, ctx));
    for (k = 0; k < nin; k++) {
        float *an = (float *)malloc(in[k]->numel * sizeof(float));
        memcpy(an, in[k]->grad, in[k]->numel * sizeof(float));
        for (i = 0; i < in[k]->numel; i++) {
            float keep = in[k]->data[i];
            double lp, lm, fd, err;
            in[k]->data[i] = keep + eps;
            nn_graph_reset(G);
            nn_rng_seed(R, seed);
            lp = nn_item(fn(in, ctx));
            in[k]->data[i] = keep - eps;
            nn_graph_reset(G);
            nn_rng_seed(R, seed);
            lm = nn_item(fn(in, ctx));
            in[k]->data[i] = keep;
            fd = (lp - lm) / (2.0 * (double)eps);
            err = fabs(fd - (double)an[i]) / (1.0 + fabs(fd));
            if (err > worst) worst = err;
            if (err > tol) {
                if (ok) printf("  %s: input %d [%zu]: analytic %.6g, numeric %.6g\n", what, k, i,
                               (double)an[i], fd);
                ok = 0;
            }
        }
        free(an);
    }
    NN_TEST_CHECK(ok, "%s: gradients match finite differences (worst %.2g)", what, worst);
}

/* ---- the dropout family ---- */

static void test_channel_dropout(void) {
    nn_tensor *x = nn_ones(NULL, NN_SHAPE(32, 32, 2, 3)), *y;
    size_t c, j, dropped = 0, per = 6;
    int whole = 1;
    float p = 0.3f;
    nn_graph_reset(G);
    nn_rng_seed(R, 1);
    y = nn_dropout2d_op(x, p, 1, R);
    for (c = 0; c < 32 * 32; c++) {
        float v = y->data[c * per];
        for (j = 1; j < per; j++) whole &= y->data[c * per + j] == v;
        whole &= v == 0.0f || fabsf(v - 1.0f / (1.0f - p)) < 1e-6f;
        dropped += v == 0.0f;
    }
    NN_TEST_CHECK(whole, "dropout2d: whole channels, kept ones scaled by 1/(1-p)");
    /* 1024 channels: sd of the rate 0.0143; 4.5 sd */
    NN_TEST_CHECK(fabs((double)dropped / 1024.0 - 0.3) < 0.065, "dropout2d: drop rate %g",
                  (double)dropped / 1024.0);
    NN_TEST_CHECK(nn_dropout2d_op(x, p, 0, R) == x, "dropout2d: the identity in evaluation");
    nn_tensor_free(x);

    x = nn_ones(NULL, NN_SHAPE(40, 25, 3));
    dropped = 0;
    whole = 1;
    y = nn_dropout1d_op(x, 0.5f, 1, R);
    for (c = 0; c < 1000; c++) {
        for (j = 1; j < 3; j++) whole &= y->data[c * 3 + j] == y->data[c * 3];
        dropped += y->data[c * 3] == 0.0f;
    }
    NN_TEST_CHECK(whole, "dropout1d: whole channels");
    NN_TEST_CHECK(fabs((double)dropped / 1000.0 - 0.5) < 0.075, "dropout1d: drop rate %g",
                  (double)dropped / 1000.0);
    nn_tensor_free(x);
}

static void test_alpha_dropout(const char *dir) {
    golden_file gf;
    int k;
    nn_tensor *x = nn_randn(NULL, NN_SHAPE(40000)), *z = nn_zeros(NULL, NN_SHAPE(2000)), *y;
    nn_tensor *one = nn_ones(NULL, NN_SHAPE(2000));
    if (!gold_open(&gf, dir, "reg.txt")) {
        NN_TEST_CHECK(0, "reg.txt opens");
        return;
    }
    for (k = 0; k < 3; k++) {
        float p, a, kept0, dropped, tmean, tvar;
        size_t i, nd = 0;
        int vals = 1;
        double m, v;
        if (!gold_expect(&gf, "alpha") || !gold_float(&gf, &p) || !gold_float(&gf, &a) ||
            !gold_float(&gf, &kept0) || !gold_float(&gf, &dropped) || !gold_float(&gf, &tmean) ||
            !gold_float(&gf, &tvar)) {
            NN_TEST_CHECK(0, "reg.txt parses");
            break;
        }
        nn_graph_reset(G);
        y = nn_alpha_dropout_op(z, p, 1, R);
        for (i = 0; i < 2000; i++) {
            vals &= fabsf(y->data[i] - kept0) < 1e-6f || fabsf(y->data[i] - dropped) < 1e-6f;
            nd += fabsf(y->data[i] - dropped) < 1e-6f;
        }
        NN_TEST_CHECK(vals, "alpha dropout p=%g: a kept 0 gives %g and a dropped unit %g, as "
                      "F.alpha_dropout", (double)p, (double)kept0, (double)dropped);
        NN_TEST_CHECK(fabs((double)nd / 2000.0 - (double)p) < 4.5 * sqrt((double)p * (1.0 - (double)p) / 2000.0),
                      "alpha dropout p=%g: drop rate %g", (double)p, (double)nd / 2000.0);
        y = nn_alpha_dropout_op(one, p, 1, R);
        vals = 1;
        for (i = 0; i < 2000; i++)
            vals &= fabsf(y->data[i] - (a + kept0)) < 1e-6f || fabsf(y->data[i] - dropped) < 1e-6f;
        NN_TEST_CHECK(vals, "alpha dropout p=%g: slope a = %g as torch", (double)p, (double)a);
        y = nn_alpha_dropout_op(x, p, 1, R);
        m = mean_of(y->data, y->numel);
        v = var_of(y->data, y->numel);
        /* 40000 draws: the mean's sd is 0.005, the variance's about 0.01-0.02 */
        NN_TEST_CHECK(fabs(m - (double)tmean) < 0.025 && fabs(v - (double)tvar) < 0.07,
                      "alpha dropout p=%g: N(0,1) keeps mean %.4f var %.4f (torch: %.4f %.4f)",
                      (double)p, m, v, (double)tmean, (double)tvar);
    }
    gold_close(&gf);
    NN_TEST_CHECK(nn_alpha_dropout_op(x, 0.2f, 0, R) == x, "alpha dropout: identity in eval");
    nn_tensor_free(x);
    nn_tensor_free(z);
    nn_tensor_free(one);
}

static void test_gaussian(void) {
    nn_tensor *one = nn_ones(NULL, NN_SHAPE(50000)), *zero = nn_zeros(NULL, NN_SHAPE(50000)), *y;
    double m, v;
    nn_graph_reset(G);
    y = nn_gaussian_dropout_op(one, 0.2f, 1, R);
    m = mean_of(y->data, y->numel);
    v = var_of(y->data, y->numel);
    /* e ~ N(1, 0.25): the mean's sd 0.0022, the variance's 0.0016 */
    NN_TEST_CHECK(fabs(m - 1.0) < 0.012 && fabs(v - 0.25) < 0.01,
                  "Gaussian dropout: noise mean %.4f var %.4f (want 1, p/(1-p) = 0.25)", m, v);
    y = nn_gaussian_noise_op(zero, 0.3f, 1, R);
    m = mean_of(y->data, y->numel);
    v = var_of(y->data, y->numel);
    NN_TEST_CHECK(fabs(m) < 0.007 && fabs(v - 0.09) < 0.004,
                  "Gaussian noise: mean %.4f var %.4f (want 0, 0.09)", m, v);
    NN_TEST_CHECK(nn_gaussian_dropout_op(one, 0.2f, 0, R) == one &&
                  nn_gaussian_noise_op(one, 0.3f, 0, R) == one, "Gaussian: identity in eval");
    nn_tensor_free(one);
    nn_tensor_free(zero);
}

static void test_locked_dropout(void) {
    nn_tensor *x = nn_ones(NULL, NN_SHAPE(6, 20, 50)), *y;
    size_t t, i, dropped = 0;
    int same = 1;
    nn_graph_reset(G);
    y = nn_locked_dropout_op(x, 0.4f, 0, 1, R);
    for (t = 1; t < 6; t++)
        for (i = 0; i < 1000; i++) same &= y->data[t * 1000 + i] == y->data[i];
    for (i = 0; i < 1000; i++) dropped += y->data[i] == 0.0f;
    NN_TEST_CHECK(same, "locked dropout: one mask for every time step ([T,N,H], axis 0)");
    NN_TEST_CHECK(fabs((double)dropped / 1000.0 - 0.4) < 0.07, "locked dropout: rate %g",
                  (double)dropped / 1000.0);
    y = nn_locked_dropout_op(x, 0.4f, 1, 1, R);   /* batch first [N,T,H] */
    same = 1;
    for (t = 0; t < 6; t++)
        for (i = 1; i < 20; i++) {
            size_t h;
            for (h = 0; h < 50; h++) same &= y->data[(t * 20 + i) * 50 + h] == y->data[t * 1000 + h];
        }
    NN_TEST_CHECK(same, "locked dropout: time axis 1 shares the mask along dimension 1");
    NN_TEST_CHECK(nn_locked_dropout_op(x, 0.4f, 0, 0, R) == x, "locked dropout: identity in eval");
    nn_tensor_free(x);
}

typedef struct op_ctx {
    int which;
    float p;
} op_ctx;

static nn_tensor *noise_loss(nn_tensor **in, void *c) {
    const op_ctx *o = (const op_ctx *)c;
    switch (o->which) {
    case 0: return wsum(nn_dropout2d_op(in[0], o->p, 1, R));
    case 1: return wsum(nn_alpha_dropout_op(in[0], o->p, 1, R));
    case 2: return wsum(nn_gaussian_dropout_op(in[0], o->p, 1, R));
    case 3: return wsum(nn_gaussian_noise_op(in[0], o->p, 1, R));
    case 4: return wsum(nn_locked_dropout_op(in[0], o->p, 1, 1, R));
    case 5: return wsum(nn_dropconnect_linear_op(in[0], in[1], in[2], o->p, 1, R));
    default: return wsum(nn_dropout1d_op(in[0], o->p, 1, R));
    }
}

static void test_family_grads(void) {
    static const char *const names[] = {"dropout2d", "alpha dropout", "Gaussian dropout",
                                        "Gaussian noise", "locked dropout", "DropConnect",
                                        "dropout1d"};
    nn_tensor *x4 = leaf(NN_SHAPE(2, 3, 2, 2), 1.0f, 0.9f, 0.1f, 0.0f);
    nn_tensor *x3 = leaf(NN_SHAPE(2, 3, 4), 1.0f, 0.7f, 0.3f, 0.0f);
    nn_tensor *w = leaf(NN_SHAPE(3, 4), 0.5f, 1.3f, 0.2f, 0.0f), *b = leaf(NN_SHAPE(3), 0.3f, 2.0f, 0.0f, 0.1f);
    nn_tensor *in[3];
    op_ctx c;
    int k;
    for (k = 0; k < 7; k++) {
        c.which = k;
        c.p = k == 3 ? 0.5f : 0.3f;
        in[0] = k == 0 ? x4 : x3;
        in[1] = w;
        in[2] = b;
        gradcheck(names[k], noise_loss, in, k == 5 ? 3 : 1, &c, 77u + (uint64_t)k, 1e-2f, 2e-3);
    }
    /* DropConnect: eval is the plain linear layer; training uses M o W / (1-p) */
    {
        nn_tensor *e, *y, *l;
        float one_hot[4] = {0, 1, 0, 0};
        int ok = 1, nz = 0, i;
        nn_graph_reset(G);
        y = nn_dropconnect_linear_op(x3, w, b, 0.5f, 0, R);
        l = nn_linear_op(x3, w, b);
        NN_TEST_CHECK(memcmp(y->data, l->data, y->numel * sizeof(float)) == 0,
                      "DropConnect: evaluation is x W^T + b exactly");
        e = nn_tensor_from(G, one_hot, NN_SHAPE(1, 4));
        y = nn_dropconnect_linear_op(e, w, NULL, 0.5f, 1, R);
        for (i = 0; i < 3; i++) {
            float v = y->data[i], full = 2.0f * w->data[i * 4 + 1];
            ok &= v == 0.0f || fabsf(v - full) < 1e-6f;
            nz += v != 0.0f;
        }
        NN_TEST_CHECK(ok, "DropConnect: each weight is dropped or scaled by 1/(1-p)");
        (void)nz;
    }
    nn_tensor_free(x4);
    nn_tensor_free(x3);
    nn_tensor_free(w);
    nn_tensor_free(b);
}

static void test_family_modules(void) {
    nn_module *net = nn_sequential(nn_dropconnect_linear(4, 3, 0.5f), nn_gaussian_noise(0.1f),
                                   nn_alpha_dropout(0.1f), NULL);
    nn_tensor *x = nn_ones(NULL, NN_SHAPE(2, 4)), *y1, *y2, *e;
    nn_rng *r2 = nn_rng_new(5);
    int n;
    NN_TEST_CHECK(net && nn_param(net, "0.weight") && nn_param(net, "0.bias"),
                  "DropConnectLinear: parameters weight and bias as torch.nn.Linear");
    n = nn_module_set_rng(net, r2);
    NN_TEST_CHECK(n == 3, "nn_module_set_rng reaches the 3 regularizers (got %d)", n);
    nn_graph_reset(G);
    nn_rng_seed(r2, 9);
    y1 = nn_forward(net, x);
    nn_rng_seed(r2, 9);
    y2 = nn_forward(net, x);
    NN_TEST_CHECK(memcmp(y1->data, y2->data, 6 * sizeof(float)) == 0,
                  "modules draw from their own generator: same seed, same output");
    nn_train_mode(net, 0);
    y1 = nn_forward(net, x);
    e = nn_linear_op(x, nn_param(net, "0.weight"), nn_param(net, "0.bias"));
    NN_TEST_CHECK(memcmp(y1->data, e->data, 6 * sizeof(float)) == 0,
                  "the family's modules in evaluation: the plain linear layer");
    nn_module_free(net);
    nn_rng_free(r2);
    nn_tensor_free(x);
}

/* ---- information dropout ---- */

typedef struct info_ctx {
    nn_info_dropout_opts o;
    int training;
} info_ctx;

static nn_tensor *info_loss(nn_tensor **in, void *c) {
    const info_ctx *ic = (const info_ctx *)c;
    nn_tensor *kl, *z = nn_info_dropout_op(in[0], in[1], ic->training, ic->o, R, &kl);
    return nn_add(wsum(z), nn_mul_scalar(kl, 0.7f));
}

static double softplus_d(double h) { return h > 0 ? h + log1p(exp(-h)) : log1p(exp(h)); }

static void test_info_dropout(void) {
    nn_tensor *h = leaf(NN_SHAPE(3, 5), 2.0f, 0.77f, 0.4f, 0.3f);
    nn_tensor *s = leaf(NN_SHAPE(3, 5), 1.5f, 1.31f, 0.2f, 0.0f), *in[2], *z, *kl;
    info_ctx c;
    int act;
    memset(&c, 0, sizeof c);
    for (act = 0; act < 2; act++) {
        double want = 0.0;
        size_t i;
        int ok = 1;
        c.o.activation = act;
        c.o.max_alpha = 0.6f;
        c.o.prior_mu = act ? -0.3f : 0.0f;
        c.o.prior_sigma = act ? 1.5f : 0.0f;
        for (i = 0; i < 15; i++) {
            double sg = 1.0 / (1.0 + exp(-(double)s->data[i])), al = 0.001 + 0.6 * sg;
            if (act == NN_INFO_RELU) {
                want += -log(al / 0.601);
            } else {
                double f = softplus_d((double)h->data[i]), L = log(f > 1e-4 ? f : 1e-4);
                want += log(1.5 / al) + (al * al + (L + 0.3) * (L + 0.3)) / (2.0 * 2.25) - 0.5;
            }
        }
        want /= 3.0;
        nn_graph_reset(G);
        z = nn_info_dropout_op(h, s, 0, c.o, R, &kl);
        NN_TEST_CHECK(fabs((double)nn_item(kl) - want) < 1e-5 * (1.0 + fabs(want)),
                      "information dropout %s: KL %.7g against the formula in double %.7g",
                      act ? "softplus/log-normal" : "ReLU/log-uniform", (double)nn_item(kl), want);
        for (i = 0; i < 15; i++) {
            double f = act ? softplus_d((double)h->data[i]) : (h->data[i] > 0 ? (double)h->data[i] : 0.0);
            ok &= fabs((double)z->data[i] - f) < 1e-6 * (1.0 + f);
        }
        NN_TEST_CHECK(ok, "information dropout: evaluation gives z = f(h)");
        in[0] = h;
        in[1] = s;
        c.training = 1;
        gradcheck(act ? "information dropout (softplus), z and KL" : "information dropout (ReLU), z and KL",
                  info_loss, in, 2, &c, 31u, 1e-2f, 3e-3);
    }
    /* the noise: log(z / f(h)) / alpha ~ N(0, 1) */
    {
        nn_tensor *hb = nn_full(NULL, NN_SHAPE(100, 200), 1.5f), *sb = nn_zeros(NULL, NN_SHAPE(100, 200));
        float *u = (float *)malloc(20000 * sizeof(float));
        double al = 0.001 + 0.7 * 0.5, m, v;
        size_t i;
        nn_info_dropout_opts o;
        memset(&o, 0, sizeof o);
        nn_graph_reset(G);
        z = nn_info_dropout_op(hb, sb, 1, o, R, NULL);
        for (i = 0; i < 20000; i++) u[i] = (float)(log((double)z->data[i] / 1.5) / al);
        m = mean_of(u, 20000);
        v = var_of(u, 20000);
        NN_TEST_CHECK(fabs(m) < 0.04 && fabs(v - 1.0) < 0.05,
                      "information dropout: log-noise / alpha has mean %.4f var %.4f (want 0, 1)", m, v);
        free(u);
        nn_tensor_free(hb);
        nn_tensor_free(sb);
    }
    /* the module and the KL sum */
    {
        nn_info_dropout_opts o;
        nn_module *m;
        nn_tensor *x = nn_ones(NULL, NN_SHAPE(2, 4)), *k;
        memset(&o, 0, sizeof o);
        m = nn_sequential(nn_info_dropout(nn_linear(4, 3), nn_linear(4, 3), o), nn_relu(),
                          nn_info_dropout(nn_linear(3, 2), nn_linear(3, 2), o), NULL);
        NN_TEST_CHECK(m && nn_param(m, "0.layer.weight") && nn_param(m, "2.alpha.bias"),
                      "InformationDropout: children layer and alpha");
        nn_graph_reset(G);
        NN_TEST_CHECK(nn_info_dropout_kl(m) == NULL, "no KL before a forward in this graph");
        nn_forward(m, x);
        k = nn_info_dropout_kl(m);
        NN_TEST_CHECK(k && nn_item(k) > 0.0f && nn_backward(nn_add(nn_sum(nn_forward(m, x)), k)) == NN_OK,
                      "nn_info_dropout_kl sums the two KL terms and backpropagates");
        nn_graph_reset(G);
        NN_TEST_CHECK(nn_info_dropout_kl(m) == NULL, "the KL terms are forgotten at the reset");
        nn_module_free(m);
        nn_tensor_free(x);
    }
    nn_tensor_free(h);
    nn_tensor_free(s);
}

/* ---- stochastic depth, ShakeDrop, Shake-Shake ---- */

static nn_residual_opts ropts(int mode) {
    nn_residual_opts o;
    memset(&o, 0, sizeof o);
    o.mode = mode;
    o.rng = R;
    return o;
}

static void test_depth_rates(void) {
    nn_tensor *f = nn_ones(NULL, NN_SHAPE(4000, 2)), *y;
    nn_residual_opts o = ropts(NN_RESIDUAL_STOCHASTIC_DEPTH);
    int l, ok = 1;
    o.layers = 4;
    for (l = 1; l <= 4; l++) {
        double p = 1.0 - l / 4.0 * 0.5, kept = 0.0;
        size_t i;
        int whole = 1;
        o.layer = l;
        nn_graph_reset(G);
        y = nn_stochastic_depth_op(f, 1, o);
        for (i = 0; i < 4000; i++) {
            kept += (double)y->data[2 * i];
            whole &= y->data[2 * i + 1] == y->data[2 * i] && (y->data[2 * i] == 0.0f || y->data[2 * i] == 1.0f);
        }
        kept /= 4000.0;
        ok &= whole && fabs(kept - p) < 4.5 * sqrt(p * (1 - p) / 4000.0) + 1e-9;
        if (!whole || fabs(kept - p) >= 4.5 * sqrt(p * (1 - p) / 4000.0) + 1e-9)
            printf("  block %d: survival %g, want %g\n", l, kept, p);
        y = nn_stochastic_depth_op(f, 0, o);
        ok &= fabsf(y->data[0] - nn_linear_decay_survival(l, 4, 0.5f)) == 0.0f;
    }
    NN_TEST_CHECK(ok, "stochastic depth: per-sample survival 1 - l/L (1 - p_L) at each depth, "
                  "evaluation scales by p_l");
    NN_TEST_CHECK(nn_linear_decay_survival(4, 4, 0.5f) == 0.5f && nn_linear_decay_survival(0, 4, 0.5f) == 1.0f &&
                  nn_linear_decay_survival(1, 4, 0.5f) == 0.875f, "the linear decay rule");
    /* batch gates: one draw for the whole batch */
    {
        size_t i;
        int same = 1;
        o.gate = NN_GATE_BATCH;
        o.layer = 2;
        nn_graph_reset(G);
        y = nn_stochastic_depth_op(f, 1, o);
        for (i = 1; i < 8000; i++) same &= y->data[i] == y->data[0];
        NN_TEST_CHECK(same, "stochastic depth: NN_GATE_BATCH drops the branch for the whole batch");
    }
    /* ShakeDrop: the mean forward coefficient is E = p_l (alpha in [-1,1]) */
    {
        nn_residual_opts s = ropts(NN_RESIDUAL_SHAKEDROP);
        double m;
        s.layer = 3;
        s.layers = 6;   /* p_l = 0.75 */
        nn_graph_reset(G);
        y = nn_shakedrop_op(f, 1, s);
        m = mean_of(y->data, 8000);
        /* the coefficient's variance is (1-p)(1/3) + ... <= 0.1: sd of the mean < 0.005 */
        NN_TEST_CHECK(fabs(m - 0.75) < 0.025, "ShakeDrop: mean coefficient %.4f (want p_l = 0.75)", m);
        y = nn_shakedrop_op(f, 0, s);
        NN_TEST_CHECK(y->data[0] == 0.75f && y->data[7999] == 0.75f,
                      "ShakeDrop: evaluation x + E[b + alpha - b alpha] F = p_l F");
        s.alpha_lo = 0.0f;
        s.alpha_hi = 1.0f;
        y = nn_shakedrop_op(f, 0, s);
        NN_TEST_CHECK(fabsf(y->data[0] - 0.875f) < 1e-7f, "ShakeDrop: alpha in [0,1] evaluates to p + (1-p)/2");
    }
    nn_tensor_free(f);
}

/* Replay the draws of the gate ops by hand and compare forward and backward. */
static void test_shake_coefficients(void) {
    nn_tensor *f1 = leaf(NN_SHAPE(5, 2, 3), 1.0f, 0.61f, 0.0f, 0.2f);
    nn_tensor *f2 = leaf(NN_SHAPE(5, 2, 3), 1.0f, 0.37f, 1.0f, -0.1f), *y;
    nn_rng *rep = nn_rng_new(0);
    int variant, n, i, fok, bok;
    for (variant = 0; variant < 3; variant++) {
        nn_residual_opts o = ropts(NN_RESIDUAL_SHAKE_SHAKE);
        float al[5], be[5];
        o.shake = variant;
        nn_rng_seed(R, 100);
        nn_rng_seed(rep, 100);
        for (n = 0; n < 5; n++) {
            al[n] = nn_rng_uniform(rep);
            be[n] = variant == NN_SHAKE_SHAKE ? nn_rng_uniform(rep) : variant == NN_SHAKE_KEEP ? al[n] : 0.5f;
        }
        memset(f1->grad, 0, 30 * sizeof(float));
        memset(f2->grad, 0, 30 * sizeof(float));
        nn_graph_reset(G);
        y = nn_shake_shake_op(f1, f2, 1, o);
        nn_backward(wsum(y));
        fok = bok = 1;
        for (i = 0; i < 30; i++) {
            n = i / 6;
            fok &= fabsf(y->data[i] - (al[n] * f1->data[i] + (1.0f - al[n]) * f2->data[i])) < 1e-6f;
            bok &= fabsf(f1->grad[i] - be[n] * W[i]) < 1e-6f && fabsf(f2->grad[i] - (1.0f - be[n]) * W[i]) < 1e-6f;
        }
        NN_TEST_CHECK(fok && bok, "Shake-Shake variant %d: forward alpha per image, backward %s",
                      variant, variant == 0 ? "an independent beta" : variant == 1 ? "0.5" : "alpha");
    }
    {
        nn_residual_opts o = ropts(NN_RESIDUAL_SHAKE_SHAKE);
        nn_graph_reset(G);
        y = nn_shake_shake_op(f1, f2, 0, o);
        fok = 1;
        for (i = 0; i < 30; i++) fok &= y->data[i] == 0.5f * f1->data[i] + 0.5f * f2->data[i];
        NN_TEST_CHECK(fok, "Shake-Shake: evaluation 0.5 f1 + 0.5 f2");
    }
    /* ShakeDrop: b ~ Bernoulli(p), alpha ~ U[-1,1], beta ~ U[0,1], in that order per sample */
    {
        nn_residual_opts o = ropts(NN_RESIDUAL_SHAKEDROP);
        float cf[5], cb[5];
        int dropped = 0;
        o.survival = 0.4f;
        nn_rng_seed(R, 7);
        nn_rng_seed(rep, 7);
        for (n = 0; n < 5; n++) {
            float b = (float)(nn_rng_uniform(rep) < 0.4f), a = -1.0f + 2.0f * nn_rng_uniform(rep);
            float be = nn_rng_uniform(rep);
            cf[n] = b + a - b * a;
            cb[n] = b + be - b * be;
            dropped += b == 0.0f;
        }
        memset(f1->grad, 0, 30 * sizeof(float));
        nn_graph_reset(G);
        y = nn_shakedrop_op(f1, 1, o);
        nn_backward(wsum(y));
        fok = bok = 1;
        for (i = 0; i < 30; i++) {
            n = i / 6;
            fok &= fabsf(y->data[i] - cf[n] * f1->data[i]) < 1e-6f;
            bok &= fabsf(f1->grad[i] - cb[n] * W[i]) < 1e-6f;
        }
        NN_TEST_CHECK(fok && bok && dropped > 0,
                      "ShakeDrop: forward (b + alpha - b alpha), backward (b + beta - b beta) per "
                      "sample (%d of 5 perturbed)", dropped);
    }
    /* channel gates: one draw per (sample, channel) */
    {
        nn_residual_opts o = ropts(NN_RESIDUAL_SHAKEDROP);
        int ok = 1;
        o.gate = NN_GATE_CHANNEL;
        o.survival = 0.3f;
        nn_graph_reset(G);
        y = nn_shakedrop_op(f1, 1, o);
        for (i = 0; i < 30; i++) {
            int base = i / 3 * 3;
            ok &= fabsf(y->data[i] * f1->data[base] - y->data[base] * f1->data[i]) < 1e-5f;
        }
        NN_TEST_CHECK(ok, "ShakeDrop: NN_GATE_CHANNEL, one coefficient per sample and channel");
    }
    nn_rng_free(rep);
    nn_tensor_free(f1);
    nn_tensor_free(f2);
}

typedef struct gate_ctx {
    int kind;
    nn_residual_opts o;
} gate_ctx;
static nn_tensor *gate_loss(nn_tensor **in, void *c) {
    const gate_ctx *g = (const gate_ctx *)c;
    if (g->kind == 0) return wsum(nn_stochastic_depth_op(in[0], 1, g->o));
    if (g->kind == 1) return wsum(nn_shakedrop_op(in[0], 1, g->o));
    return wsum(nn_shake_shake_op(in[0], in[1], 1, g->o));
}

static void test_gate_grads(void) {
    nn_tensor *f1 = leaf(NN_SHAPE(4, 3), 1.0f, 0.5f, 0.0f, 0.0f), *f2 = leaf(NN_SHAPE(4, 3), 1.0f, 0.8f, 1.0f, 0.0f);
    nn_tensor *in[2];
    gate_ctx c;
    in[0] = f1;
    in[1] = f2;
    c.kind = 0;
    c.o = ropts(NN_RESIDUAL_STOCHASTIC_DEPTH);
    gradcheck("stochastic depth", gate_loss, in, 1, &c, 3u, 1e-2f, 2e-3);
    /* forward = backward coefficient: shake-keep, and ShakeDrop with beta's range = alpha's */
    c.kind = 2;
    c.o = ropts(NN_RESIDUAL_SHAKE_SHAKE);
    c.o.shake = NN_SHAKE_KEEP;
    gradcheck("Shake-Shake (shake-keep)", gate_loss, in, 2, &c, 4u, 1e-2f, 2e-3);
    c.kind = 1;
    c.o = ropts(NN_RESIDUAL_SHAKEDROP);
    c.o.survival = 0.5f;
    c.o.beta_lo = -1.0f;   /* beta then draws what alpha draws... from its own uniform: */
    c.o.beta_hi = 1.0f;    /* not the same number, so this checks the op differs from FD */
    {
        /* With different coefficients the gradient must NOT be the forward's
           derivative: compare the analytic gradient with finite differences of
           the forward and expect a mismatch on a perturbed sample. */
        nn_tensor *y, *l;
        double fd, an;
        float keep;
        int i, differs = 0;
        c.o.beta_lo = 0.0f;
        c.o.beta_hi = 0.0f;
        for (i = 0; i < 12 && !differs; i++) {
            memset(f1->grad, 0, 12 * sizeof(float));
            nn_graph_reset(G);
            nn_rng_seed(R, 12);
            y = nn_shakedrop_op(f1, 1, c.o);
            l = wsum(y);
            nn_backward(l);
            an = f1->grad[i];
            keep = f1->data[i];
            f1->data[i] = keep + 1e-2f;
            nn_graph_reset(G);
            nn_rng_seed(R, 12);
            fd = nn_item(wsum(nn_shakedrop_op(f1, 1, c.o)));
            f1->data[i] = keep - 1e-2f;
            nn_graph_reset(G);
            nn_rng_seed(R, 12);
            fd = (fd - (double)nn_item(wsum(nn_shakedrop_op(f1, 1, c.o)))) / 2e-2;
            f1->data[i] = keep;
            differs = fabs(fd - an) > 1e-2;
        }
        NN_TEST_CHECK(differs, "ShakeDrop: the backward coefficient differs from the forward's "
                      "derivative on a perturbed sample");
    }
    nn_tensor_free(f1);
    nn_tensor_free(f2);
}

/* ---- the residual block ---- */

static int body_calls = 0;
static nn_tensor *counting_forward(nn_module *m, nn_tensor *x) {
    (void)m;
    body_calls++;
    return nn_mul_scalar(x, 1.0f);
}

static void test_residual_block(void) {
    nn_residual_opts o = ropts(NN_RESIDUAL_PLAIN);
    nn_module *body = nn_sequential(nn_linear(3, 3), nn_relu(), nn_linear(3, 3), NULL);
    nn_module *blk = nn_residual(NULL, body, NULL, NULL, o), *pre;
    nn_tensor *x = leaf(NN_SHAPE(2, 3), 1.0f, 0.9f, 0.0f, 0.0f), *y, *f, *e;
    int i, ok = 1;
    nn_graph_reset(G);
    y = nn_forward(blk, x);
    f = nn_forward(body, x);
    for (i = 0; i < 6; i++) ok &= y->data[i] == x->data[i] + f->data[i];
    NN_TEST_CHECK(ok && nn_child(blk, "body") == body && nn_param(blk, "body.2.weight"),
                  "Residual: y = x + body(x), child \"body\"");
    nn_module_free(blk);

    /* pre-activation, projection shortcut, post ReLU */
    o.post_relu = 1;
    pre = nn_tanh();
    blk = nn_residual(pre, nn_linear(3, 4), NULL, nn_linear_nobias(3, 4), o);
    nn_graph_reset(G);
    y = nn_forward(blk, x);
    {
        nn_tensor *a = nn_tanh_op(x);
        e = nn_relu_op(nn_add(nn_linear_op(a, nn_param(blk, "shortcut.weight"), NULL),
                              nn_linear_op(a, nn_param(blk, "body.weight"), nn_param(blk, "body.bias"))));
    }
    NN_TEST_CHECK(y && y->shape[1] == 4 && memcmp(y->data, e->data, 8 * sizeof(float)) == 0 &&
                  nn_child(blk, "preact") == pre && nn_child(blk, "shortcut"),
                  "Residual: relu(shortcut(a) + body(a)), a = preact(x)");
    nn_module_free(blk);

    /* stochastic depth block in eval: x + p_l body(x) */
    o = ropts(NN_RESIDUAL_STOCHASTIC_DEPTH);
    o.layer = 1;
    o.layers = 2;
    body = nn_linear(3, 3);
    blk = nn_residual(NULL, body, NULL, NULL, o);
    nn_train_mode(blk, 0);
    nn_graph_reset(G);
    y = nn_forward(blk, x);
    f = nn_forward(body, x);
    ok = 1;
    for (i = 0; i < 6; i++) ok &= fabsf(y->data[i] - (x->data[i] + 0.75f * f->data[i])) < 1e-6f;
    NN_TEST_CHECK(ok, "Residual with stochastic depth, evaluation: x + p_l F(x)");
    nn_module_free(blk);

    /* stochastic depth with batch gates: a dropped branch is not run */
    o.gate = NN_GATE_BATCH;
    o.survival = 0.5f;
    body_calls = 0;
    blk = nn_residual(NULL, nn_module_new("Counter", counting_forward), NULL, NULL, o);
    ok = 1;
    {
        int runs = 0;
        for (i = 0; i < 200; i++) {
            int before = body_calls, j;
            nn_graph_reset(G);
            y = nn_forward(blk, x);
            runs += body_calls - before;
            for (j = 0; j < 6; j++)
                ok &= y->data[j] == (body_calls > before ? 2.0f * x->data[j] : x->data[j]);
        }
        NN_TEST_CHECK(ok && runs > 70 && runs < 130, "stochastic depth, NN_GATE_BATCH: the branch "
                      "runs in %d of 200 batches (p = 0.5), y = x when dropped", runs);
    }
    nn_module_free(blk);

    /* Shake-Shake block: two bodies, eval 0.5/0.5 */
    o = ropts(NN_RESIDUAL_SHAKE_SHAKE);
    blk = nn_residual(NULL, nn_linear(3, 3), nn_linear(3, 3), NULL, o);
    nn_train_mode(blk, 0);
    nn_graph_reset(G);
    y = nn_forward(blk, x);
    f = nn_add(nn_mul_scalar(nn_forward(nn_child(blk, "body"), x), 0.5f),
               nn_mul_scalar(nn_forward(nn_child(blk, "body2"), x), 0.5f));
    ok = 1;
    for (i = 0; i < 6; i++) ok &= fabsf(y->data[i] - (x->data[i] + f->data[i])) < 1e-6f;
    NN_TEST_CHECK(ok, "Residual with Shake-Shake, evaluation: x + 0.5 F1 + 0.5 F2");
    nn_train_mode(blk, 1);
    nn_graph_reset(G);
    NN_TEST_CHECK(nn_backward(nn_sum(nn_forward(blk, x))) == NN_OK &&
                  nn_grad(nn_param(blk, "body2.weight")), "Shake-Shake block trains both branches");
    nn_module_free(blk);
    nn_tensor_free(x);
}

/* ---- penalties, max-norm, SGDW ---- */

static void test_penalties(void) {
    nn_module *m = nn_sequential(nn_linear(3, 2), nn_relu(), nn_linear(2, 2), NULL);
    nn_tensor *w0 = nn_param(m, "0.weight"), *w2 = nn_param(m, "2.weight"), *b0 = nn_param(m, "0.bias");
    nn_tensor *pen, *a;
    double s1 = 0, s2 = 0;
    size_t i;
    int ok = 1;
    w0->data[1] = 0.0f; /* sign(0) = 0 */
    for (i = 0; i < 6; i++) { s1 += fabs((double)w0->data[i]); s2 += (double)w0->data[i] * (double)w0->data[i]; }
    for (i = 0; i < 4; i++) { s1 += fabs((double)w2->data[i]); s2 += (double)w2->data[i] * (double)w2->data[i]; }
    NN_TEST_CHECK(nn_name_match("*.weight", "0.weight") && !nn_name_match("*.weight", "0.bias") &&
                  nn_name_match("0.*", "0.bias") && nn_name_match("?.w*t", "2.weight") &&
                  !nn_name_match("0.", "0.weight") && nn_name_match("*", "") &&
                  nn_name_match("a*b*c", "axxbyyc") && !nn_name_match("a*b*c", "axxbyy"),
                  "nn_name_match: glob semantics");
    nn_graph_reset(G);
    pen = nn_penalty(m, "*.weight", 0.3f, 0.2f);
    NN_TEST_CHECK(fabs((double)nn_item(pen) - (0.3 * s1 + 0.2 * s2)) < 1e-6 * (1 + 0.3 * s1 + 0.2 * s2),
                  "elastic net: l1 sum|w| + l2 sum w^2 over the weights (%g vs %g)",
                  (double)nn_item(pen), 0.3 * s1 + 0.2 * s2);
    NN_TEST_CHECK(fabs((double)nn_item(nn_l1_penalty(m, "*.weight")) - s1) < 1e-6 * (1 + s1) &&
                  fabs((double)nn_item(nn_l2_penalty(m, "*.weight")) - s2) < 1e-6 * (1 + s2),
                  "L1 and L2 penalties against their formulas");
    nn_backward(pen);
    for (i = 0; i < 6; i++) {
        float v = w0->data[i], want = 0.3f * (float)((v > 0) - (v < 0)) + 0.4f * v;
        ok &= fabsf(nn_grad(w0)[i] - want) < 1e-6f;
    }
    NN_TEST_CHECK(ok && nn_grad(w0)[1] == 0.0f && nn_grad(b0) == NULL,
                  "penalty gradient l1 sign(w) + 2 l2 w; biases untouched");
    /* activity penalty: (l1 sum|a| + l2 sum a^2)/N */
    {
        float av[6] = {1, -2, 0.5f, 0, 3, -1};
        nn_tensor *al = nn_requires_grad(nn_tensor_from(NULL, av, NN_SHAPE(2, 3)), 1);
        nn_graph_reset(G);
        a = nn_activity_penalty(al, 0.1f, 0.01f);
        NN_TEST_CHECK(fabsf(nn_item(a) - (0.1f * 7.5f + 0.01f * 15.25f) / 2.0f) < 1e-6f,
                      "activity penalty (l1 sum|a| + l2 sum a^2)/N: %g", (double)nn_item(a));
        nn_backward(a);
        NN_TEST_CHECK(fabsf(al->grad[1] - (-0.1f - 0.04f) / 2.0f) < 1e-7f && al->grad[3] == 0.0f,
                      "activity penalty gradient");
        nn_tensor_free(al);
    }
    nn_module_free(m);
}

static void test_max_norm(void) {
    float v[6] = {3, 4, 0, 0.3f, 0.4f, 0};
    nn_tensor *w = nn_tensor_from(NULL, v, NN_SHAPE(2, 3));
    nn_module *m;
    nn_optim *opt;
    nn_sgd_opts so;
    nn_tensor *x, *wt;
    int step, r, ok = 1, cnt;
    nn_max_norm(w, 1.0f);
    NN_TEST_CHECK(fabsf(w->data[0] - 0.6f) < 1e-6f && fabsf(w->data[1] - 0.8f) < 1e-6f &&
                  w->data[3] == 0.3f && w->data[4] == 0.4f,
                  "nn_max_norm: a row of norm 5 scaled to 1, a row of norm 0.5 left alone");
    nn_tensor_free(w);
    m = nn_sequential(nn_linear(5, 4), NULL);
    memset(&so, 0, sizeof so);
    so.lr = 2.0f;
    opt = nn_sgd(m, so);
    cnt = nn_optim_max_norm(opt, "*.weight", 0.5f);
    NN_TEST_CHECK(cnt == 1, "nn_optim_max_norm matches 0.weight");
    x = nn_ones(NULL, NN_SHAPE(3, 5));
    wt = nn_param(m, "0.weight");
    for (step = 0; step < 4; step++) {
        nn_graph_reset(G);
        nn_zero_grad(opt);
        nn_backward(nn_mul_scalar(nn_sum(nn_forward(m, x)), -1.0f));
        nn_step(opt);
        for (r = 0; r < 4; r++) {
            double sq = 0;
            int j;
            for (j = 0; j < 5; j++) sq += (double)wt->data[r * 5 + j] * (double)wt->data[r * 5 + j];
            ok &= sqrt(sq) <= 0.5 * (1 + 1e-6);
        }
    }
    NN_TEST_CHECK(ok, "max-norm: every row of the weight has norm <= c after each step");
    nn_optim_free(opt);
    nn_module_free(m);
    nn_tensor_free(x);
}

static void test_sgdw(void) {
    nn_module *m = nn_linear_nobias(2, 1);
    nn_tensor *w = nn_param(m, "weight"), *x;
    nn_sgd_opts so;
    nn_optim *opt;
    float p[2], buf[2] = {0, 0}, xv[2] = {0.5f, -1.5f};
    int t, j, ok = 1;
    memset(&so, 0, sizeof so);
    so.lr = 0.1f;
    so.momentum = 0.9f;
    so.weight_decay = 0.05f;
    opt = nn_sgdw(m, so);
    p[0] = w->data[0];
    p[1] = w->data[1];
    x = nn_tensor_from(NULL, xv, NN_SHAPE(1, 2));
    for (t = 1; t <= 3; t++) {
        nn_graph_reset(G);
        nn_zero_grad(opt);
        nn_backward(nn_sum(nn_pow(nn_forward(m, x), 2.0f)));  /* d/dw = 2 (w.x) x */
        {
            float y = p[0] * xv[0] + p[1] * xv[1];
            for (j = 0; j < 2; j++) {
                float g = 2.0f * y * xv[j];
                p[j] *= (float)(1.0 - 0.1 * 0.05);       /* decoupled: p *= 1 - lr wd */
                buf[j] = t == 1 ? g : 0.9f * buf[j] + g;  /* momentum on the raw gradient */
                p[j] -= 0.1f * buf[j];
            }
        }
        nn_step(opt);
        for (j = 0; j < 2; j++) ok &= fabsf(w->data[j] - p[j]) < 1e-6f * (1.0f + fabsf(p[j]));
    }
    NN_TEST_CHECK(ok, "SGDW: p *= 1 - lr wd, then SGD with momentum on the raw gradient "
                  "(%g %g vs %g %g)", (double)w->data[0], (double)w->data[1], (double)p[0], (double)p[1]);
    nn_optim_free(opt);
    nn_module_free(m);
    nn_tensor_free(x);
}

/* ---- mixup and CutMix ---- */

static void test_mixup(void) {
    float xv[6 * 4], lam = 0;
    int labels[6] = {0, 1, 2, 3, 4, 5}, i, j, ok = 1, seen[6] = {0};
    nn_tensor *x, *y, *t;
    float b[4000];
    double m, v, a = 0.4;
    for (i = 0; i < 4000; i++) b[i] = nn_sample_beta(R, 0.4f, 0.4f);
    m = mean_of(b, 4000);
    v = var_of(b, 4000);
    /* Beta(0.4,0.4): mean 0.5, var 1/(4 (2a+1)) = 0.1389; sd of the mean 0.0059 */
    NN_TEST_CHECK(fabs(m - 0.5) < 0.03 && fabs(v - 1.0 / (4.0 * (2 * a + 1))) < 0.012,
                  "Beta(0.4, 0.4) draws: mean %.4f var %.4f (want 0.5, %.4f)", m, v,
                  1.0 / (4.0 * (2 * a + 1)));
    for (i = 0; i < 4000; i++) b[i] = nn_sample_beta(R, 2.0f, 5.0f);
    NN_TEST_CHECK(fabs(mean_of(b, 4000) - 2.0 / 7.0) < 0.015, "Beta(2,5) mean %.4f (want %.4f)",
                  mean_of(b, 4000), 2.0 / 7.0);
    for (i = 0; i < 24; i++) xv[i] = (float)(i / 4) * 10.0f + (float)(i % 4);
    x = nn_tensor_from(NULL, xv, NN_SHAPE(6, 4));
    nn_graph_reset(G);
    y = nn_mixup(x, labels, 6, 0.4f, R, &t, &lam);
    for (i = 0; i < 6; i++) {
        int other = -1;
        float sum = 0;
        for (j = 0; j < 6; j++) {
            float want = (j == i ? lam : 0.0f);
            sum += t->data[i * 6 + j];
            if (j != i && t->data[i * 6 + j] > 0) other = j;
            (void)want;
        }
        if (other < 0) other = i;   /* paired with itself */
        seen[other]++;
        ok &= fabsf(sum - 1.0f) < 1e-6f;
        for (j = 0; j < 4; j++)
            ok &= fabsf(y->data[i * 4 + j] - (lam * xv[i * 4 + j] + (1 - lam) * xv[other * 4 + j])) < 1e-4f;
    }
    for (i = 0; i < 6; i++) ok &= seen[i] == 1 || lam == 1.0f || lam == 0.0f;
    NN_TEST_CHECK(ok && lam > 0 && lam < 1, "mixup: x~ = lambda x + (1-lambda) x[pi], targets "
                  "lambda onehot(y) + (1-lambda) onehot(y[pi]), pi a permutation (lambda %g)", (double)lam);
    nn_tensor_free(x);
    /* CutMix: the image i holds value i; the other image's pixel share is 1 - lambda */
    {
        float img[4 * 1 * 8 * 8];
        int lab[4] = {0, 1, 2, 3};
        for (i = 0; i < 256; i++) img[i] = (float)(i / 64);
        x = nn_tensor_from(NULL, img, NN_SHAPE(4, 1, 8, 8));
        ok = 1;
        for (j = 0; j < 5; j++) {
            nn_graph_reset(G);
            y = nn_cutmix(x, lab, 4, 1.0f, R, &t, &lam);
            for (i = 0; i < 4; i++) {
                int k, foreign = 0, other = i;
                for (k = 0; k < 64; k++)
                    if (y->data[i * 64 + k] != (float)i) {
                        foreign++;
                        other = (int)y->data[i * 64 + k];
                    }
                if (other != i) {
                    ok &= fabsf((float)foreign / 64.0f - (1.0f - lam)) < 1e-6f;
                    ok &= fabsf(t->data[i * 4 + other] - (1.0f - lam)) < 1e-6f &&
                          fabsf(t->data[i * 4 + i] - lam) < 1e-6f;
                }
            }
        }
        NN_TEST_CHECK(ok, "CutMix: lambda = 1 - box area / image area, targets mixed with it");
        nn_tensor_free(x);
    }
}

/* ---- determinism at 1 and 2 threads ---- */

static void train_run(int threads, float *out, size_t n) {
    nn_residual_opts o;
    nn_module *net;
    nn_optim *opt;
    nn_sgd_opts so;
    nn_rng *r = nn_rng_new(2024);
    float xv[8 * 6];
    int labels[8], step, i;
    nn_param *ps;
    int count;
    size_t k = 0;
    nn_set_threads(threads);
    nn_set_thread_rng(r);
    memset(&o, 0, sizeof o);
    o.mode = NN_RESIDUAL_SHAKEDROP;
    o.layer = 1;
    o.layers = 2;
    net = nn_sequential(nn_linear(6, 8),
                        nn_residual(NULL, nn_sequential(nn_linear(8, 8), nn_relu(), nn_linear(8, 8), NULL), NULL, NULL, o),
                        nn_gaussian_noise(0.1f), nn_dropout(0.2f), nn_linear(8, 3), NULL);
    memset(&so, 0, sizeof so);
    so.lr = 0.05f;
    so.momentum = 0.9f;
    so.weight_decay = 1e-3f;
    opt = nn_sgdw(net, so);
    for (i = 0; i < 48; i++) xv[i] = sinf(0.37f * (float)i);
    for (i = 0; i < 8; i++) labels[i] = i % 3;
    for (step = 0; step < 5; step++) {
        nn_tensor *x, *t, *logits, *loss;
        nn_graph_reset(G);
        x = nn_mixup(nn_tensor_from(G, xv, NN_SHAPE(8, 6)), labels, 3, 0.4f, NULL, &t, NULL);
        logits = nn_forward(net, x);
        /* soft-target cross-entropy from existing ops: -mean_n sum_c t log softmax */
        loss = nn_mul_scalar(nn_sum(nn_mul(t, nn_log_softmax(logits, 1))), -1.0f / 8.0f);
        loss = nn_add(loss, nn_penalty(net, "*.weight", 1e-4f, 1e-4f));
        nn_zero_grad(opt);
        nn_backward(loss);
        nn_step(opt);
    }
    ps = nn_parameters(net, &count);
    for (i = 0; i < count; i++) {
        size_t j;
        for (j = 0; j < ps[i].tensor->numel && k < n; j++) out[k++] = ps[i].tensor->data[j];
    }
    nn_set_thread_rng(NULL);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_rng_free(r);
}

static void test_determinism(void) {
    static float a[400], b[400], c[400];
    train_run(1, a, 400);
    train_run(2, b, 400);
    train_run(1, c, 400);
    NN_TEST_CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(a, c, sizeof a) == 0,
                  "the same seed gives bitwise the same run at 1 and 2 threads");
    nn_set_threads(0);
}

/* ---- misuse ---- */

static void test_misuse(void) {
    nn_tensor *x = nn_ones(NULL, NN_SHAPE(2, 3, 2, 2)), *x2 = nn_ones(NULL, NN_SHAPE(2, 3));
    nn_residual_opts o;
    nn_info_dropout_opts io;
    nn_module *m;
    int labels[2] = {0, 1};
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_graph_reset(G);
    NN_TEST_CHECK(nn_dropout2d_op(x, 1.0f, 1, R) == NULL, "p = 1 refused");
    reported("dropout2d p=1", "nn_dropout2d_op: p must be in [0,1), got 1", NULL);
    nn_dropout1d_op(x, -0.1f, 1, R);
    reported("dropout1d p<0", "nn_dropout1d_op: p must be in [0,1), got -0.1", NULL);
    nn_alpha_dropout_op(x, 0.0f / 0.0f, 1, R);
    reported("alpha dropout NaN", "nn_alpha_dropout_op: p must be in [0,1)", NULL);
    nn_gaussian_dropout_op(x, 1.5f, 0, R);
    reported("Gaussian dropout p>1 even in eval", "nn_gaussian_dropout_op: p must be in [0,1)", NULL);
    nn_gaussian_noise_op(x, -1.0f, 1, R);
    reported("noise sigma<0", "nn_gaussian_noise_op: sigma must be finite and >= 0", NULL);
    nn_dropout2d_op(x2, 0.5f, 1, R);
    reported("dropout2d on 2-D", "nn_dropout2d_op: needs x [N,C,H,W], got [2,3]", NULL);
    nn_locked_dropout_op(x2, 0.5f, 3, 1, R);
    reported("locked axis", "nn_locked_dropout_op: axis 3 out of range", NULL);
    nn_dropconnect_linear_op(x2, x, NULL, 0.5f, 1, R);
    reported("dropconnect shapes", "nn_dropconnect_linear_op: x [2,3], weight [2,3,2,2]", NULL);
    NN_TEST_CHECK(nn_dropout(1.5f) == NULL && nn_dropout2d(1.0f) == NULL, "modules refuse bad p");
    nn_test_msgs = 0;
    NN_TEST_CHECK(nn_alpha_dropout(-0.5f) == NULL, "alpha dropout module refuses p < 0");
    reported("alpha module", "nn_alpha_dropout: p must be in [0,1), got -0.5", NULL);
    nn_mixup(x2, labels, 3, 0.0f, R, NULL, NULL);
    reported("mixup alpha 0", "nn_mixup: alpha must be finite and > 0, got 0", NULL);
    nn_cutmix(x, labels, 3, -1.0f, R, NULL, NULL);
    reported("cutmix alpha<0", "nn_cutmix: alpha must be finite and > 0, got -1", NULL);
    nn_cutmix(x2, labels, 3, 1.0f, R, NULL, NULL);
    reported("cutmix 2-D", "nn_cutmix: needs x [N,C,H,W], got [2,3]", NULL);
    labels[1] = 3;
    nn_tensor *tt;
    nn_mixup(x2, labels, 3, 1.0f, R, &tt, NULL);
    reported("mixup label", "nn_mixup: label 3 of sample 1 is outside [0,3)", NULL);
    nn_sample_beta(R, 1.0f, 0.0f);
    reported("beta b=0", "nn_sample_beta: alpha must be finite and > 0, got 1 and 0", NULL);
    memset(&o, 0, sizeof o);
    o.mode = NN_RESIDUAL_SHAKEDROP;
    o.survival = 1.5f;
    nn_shakedrop_op(x, 1, o);
    reported("survival > 1", "nn_shakedrop_op: survival 1.5 and p_last 0 must be in (0,1]", NULL);
    o.survival = 0.5f;
    o.alpha_lo = 1.0f;
    o.alpha_hi = -1.0f;
    nn_shakedrop_op(x, 1, o);
    reported("range", "nn_shakedrop_op: ranges must be finite with lo <= hi, got alpha [1, -1]", NULL);
    memset(&o, 0, sizeof o);
    o.layer = 5;
    o.layers = 4;
    nn_stochastic_depth_op(x, 1, o);
    reported("layer > layers", "0 <= layer <= layers (got layer 5 of 4)", NULL);
    memset(&o, 0, sizeof o);
    nn_shake_shake_op(x, x2, 1, o);
    reported("shake shapes", "nn_shake_shake_op: needs branches [N,...]", "[2,3,2,2] and [2,3]");
    o.mode = NN_RESIDUAL_SHAKE_SHAKE;
    NN_TEST_CHECK(nn_residual(NULL, nn_linear(3, 3), NULL, NULL, o) == NULL, "Shake-Shake needs body2");
    reported("residual body2", "nn_residual: needs a body and a body2 for Shake-Shake", NULL);
    o.mode = NN_RESIDUAL_PLAIN;
    m = nn_residual(NULL, nn_linear(3, 4), NULL, NULL, o);
    nn_graph_reset(G);
    NN_TEST_CHECK(nn_forward(m, x2) == NULL, "a body changing the shape needs a projection");
    reported("residual shapes", "nn_forward(Residual): nn_residual: the shortcut gives [2,3] but the body [2,4]", NULL);
    nn_module_free(m);
    m = nn_linear(3, 2);
    nn_penalty(m, "*.gamma", 1.0f, 0.0f);
    reported("penalty pattern", "nn_penalty: pattern \"*.gamma\" matches no parameter", NULL);
    nn_penalty(m, "*", -1.0f, 0.0f);
    reported("penalty l1<0", "nn_penalty: l1 and l2 must be finite and >= 0, got -1 and 0", NULL);
    nn_max_norm(x2, 0.0f);
    reported("max norm c=0", "nn_max_norm: needs a tensor and a finite c > 0, got [2,3] and 0", NULL);
    nn_module_free(m);
    memset(&io, 0, sizeof io);
    io.activation = 7;
    nn_info_dropout_op(x2, x2, 1, io, R, NULL);
    reported("info activation", "nn_info_dropout_op: bad options activation=7", NULL);
    io.activation = 0;
    nn_info_dropout_op(x2, x, 1, io, R, NULL);
    reported("info shapes", "nn_info_dropout_op: needs h and s of one shape [N,...], got [2,3] and [2,3,2,2]", NULL);
    nn_set_error_hook(NULL, NULL);
    nn_tensor_free(x);
    nn_tensor_free(x2);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    int i;
    (void)gold_tensor_read; /* golden.h's tensor readers: this file reads numbers only */
    (void)gold_tensor_free;
    (void)gold_same_shape;
    for (i = 0; i < 8192; i++) W[i] = cosf(0.7f * (float)i);
    G = nn_graph_new();
    R = nn_rng_new(12345);
    nn_seed(3);
    test_channel_dropout();
    test_alpha_dropout(dir);
    test_gaussian();
    test_locked_dropout();
    test_family_grads();
    test_family_modules();
    test_info_dropout();
    test_depth_rates();
    test_shake_coefficients();
    test_gate_grads();
    test_residual_block();
    test_penalties();
    test_max_norm();
    test_sgdw();
    test_mixup();
    test_determinism();
    test_misuse();
    nn_rng_free(R);
    nn_graph_free(G);
    return nn_test_summary("test_reg");
}
