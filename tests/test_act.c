/* Activations: values and gradients of every activation op against PyTorch
   (tests/golden/act.txt, made by make_golden_act.py; grids through the
   kinks and large |x|), the modules giving their ops' results with PyTorch's
   type names, finite-difference gradient checks, PReLU's per-channel weight
   gradient, softplus, log-sigmoid and tanhshrink against their formulas in
   double over wide ranges (several beta and thresholds), stability at
   large |x| and NaN, a value not depending on its position in the array
   or the thread count (vector body, padded tail), and the misuse messages
   for bad options.  The same golden data is checked in every configuration
   tests/run.sh builds (SIMD and scalar).
   Run from the repository root, or pass the golden directory as argv[1]. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ops and modules by name ---- */

/* The element-wise activations with their options (fa) as test cases. */
typedef struct act_case {
    const char *name;     /* the golden file's op name */
    int nf;
    float fa[2];
    const char *type;     /* the module's type */
} act_case;

static nn_tensor *run_op(const char *op, const float *fa, nn_tensor **in) {
    nn_tensor *x = in[0];
    if (!strcmp(op, "relu")) return nn_relu_op(x);
    if (!strcmp(op, "sigmoid")) return nn_sigmoid_op(x);
    if (!strcmp(op, "tanh")) return nn_tanh_op(x);
    if (!strcmp(op, "leaky")) return nn_leaky_relu_op(x, fa[0]);
    if (!strcmp(op, "elu")) return nn_elu_op(x, fa[0]);
    if (!strcmp(op, "gelu")) return nn_gelu_op(x);
    if (!strcmp(op, "gelu_tanh")) return nn_gelu_tanh_op(x);
    if (!strcmp(op, "silu")) return nn_silu_op(x);
    if (!strcmp(op, "selu")) return nn_selu_op(x);
    if (!strcmp(op, "celu")) return nn_celu_op(x, fa[0]);
    if (!strcmp(op, "softplus")) return nn_softplus_op(x, fa[0], fa[1]);
    if (!strcmp(op, "softsign")) return nn_softsign_op(x);
    if (!strcmp(op, "mish")) return nn_mish_op(x);
    if (!strcmp(op, "hardtanh")) return nn_hardtanh_op(x, fa[0], fa[1]);
    if (!strcmp(op, "relu6")) return nn_relu6_op(x);
    if (!strcmp(op, "hardsigmoid")) return nn_hardsigmoid_op(x);
    if (!strcmp(op, "hardswish")) return nn_hardswish_op(x);
    if (!strcmp(op, "logsigmoid")) return nn_logsigmoid_op(x);
    if (!strcmp(op, "tanhshrink")) return nn_tanhshrink_op(x);
    if (!strcmp(op, "threshold")) return nn_threshold_op(x, fa[0], fa[1]);
    if (!strcmp(op, "prelu")) return nn_prelu_op(x, in[1]);
    if (!strcmp(op, "softmax")) return nn_softmax(x, (int)fa[0]);
    if (!strcmp(op, "log_softmax")) return nn_log_softmax(x, (int)fa[0]);
    printf("unknown op %s\n", op);
    return NULL;
}

/* The module of an op (NULL for prelu: its weight is a parameter). */
static nn_module *make_module(const char *op, const float *fa) {
    if (!strcmp(op, "relu")) return nn_relu();
    if (!strcmp(op, "sigmoid")) return nn_sigmoid();
    if (!strcmp(op, "tanh")) return nn_tanh();
    if (!strcmp(op, "leaky")) return nn_leaky_relu(fa[0]);
    if (!strcmp(op, "elu")) return nn_elu(fa[0]);
    if (!strcmp(op, "gelu")) return nn_gelu();
    if (!strcmp(op, "gelu_tanh")) return nn_gelu_tanh();
    if (!strcmp(op, "silu")) return nn_silu();
    if (!strcmp(op, "selu")) return nn_selu();
    if (!strcmp(op, "celu")) return nn_celu(fa[0]);
    if (!strcmp(op, "softplus")) return nn_softplus(fa[0], fa[1]);
    if (!strcmp(op, "softsign")) return nn_softsign();
    if (!strcmp(op, "mish")) return nn_mish();
    if (!strcmp(op, "hardtanh")) return nn_hardtanh(fa[0], fa[1]);
    if (!strcmp(op, "relu6")) return nn_relu6();
    if (!strcmp(op, "hardsigmoid")) return nn_hardsigmoid();
    if (!strcmp(op, "hardswish")) return nn_hardswish();
    if (!strcmp(op, "logsigmoid")) return nn_logsigmoid();
    if (!strcmp(op, "tanhshrink")) return nn_tanhshrink();
    if (!strcmp(op, "threshold")) return nn_threshold(fa[0], fa[1]);
    if (!strcmp(op, "softmax")) return nn_softmax_module((int)fa[0]);
    if (!strcmp(op, "log_softmax")) return nn_log_softmax_module((int)fa[0]);
    return NULL;
}

static const char *const module_types[][2] = {
    {"relu", "ReLU"}, {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"}, {"leaky", "LeakyReLU"},
    {"elu", "ELU"}, {"gelu", "GELU"}, {"gelu_tanh", "GELU"}, {"silu", "SiLU"}, {"selu", "SELU"},
    {"celu", "CELU"}, {"softplus", "Softplus"}, {"softsign", "Softsign"}, {"mish", "Mish"},
    {"hardtanh", "Hardtanh"}, {"relu6", "ReLU6"}, {"hardsigmoid", "Hardsigmoid"},
    {"hardswish", "Hardswish"}, {"logsigmoid", "LogSigmoid"}, {"tanhshrink", "Tanhshrink"},
    {"threshold", "Threshold"}, {"softmax", "Softmax"}, {"log_softmax", "LogSoftmax"}};

static const char *module_type(const char *op) {
    size_t i;
    for (i = 0; i < sizeof module_types / sizeof module_types[0]; i++)
        if (!strcmp(module_types[i][0], op)) return module_types[i][1];
    return "?";
}

/* ---- golden values and gradients ---- */

static nn_tensor *gold_to(nn_graph *g, golden_file *gf) {
    gold_tensor t;
    nn_tensor *r;
    if (!gold_tensor_read(gf, &t)) return NULL;
    r = nn_tensor_from(g, t.v, t.shape);
    gold_tensor_free(&t);
    return r;
}

static int bitwise_same(const float *a, const float *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(isnan(a[i]) && isnan(b[i]))) return 0;
    return 1;
}

static void test_golden(const char *dir) {
    golden_file gf;
    char tok[64], name[64], op[64], what[160];
    int cases = 0;
    nn_graph *g = nn_graph_new();
    if (!gold_open(&gf, dir, "act.txt")) {
        NN_TEST_CHECK(0, "golden act.txt readable");
        nn_graph_free(g);
        return;
    }
    while (gold_tok(&gf, tok, sizeof tok)) {
        float fa[2] = {0.0f, 0.0f};
        int nf, nin, i;
        nn_tensor *in[2], *yg, *w, *gr[2], *y, *loss;
        nn_module *m;
        if (strcmp(tok, "case") != 0 || !gold_tok(&gf, name, sizeof name) || !gold_tok(&gf, op, sizeof op) ||
            !gold_int(&gf, &nf) || nf > 2) {
            NN_TEST_CHECK(0, "golden record starts with case, got %s", tok);
            break;
        }
        for (i = 0; i < nf; i++) gold_float(&gf, &fa[i]);
        gold_int(&gf, &nin);
        nn_graph_reset(g);
        for (i = 0; i < nin; i++) in[i] = nn_requires_grad(gold_to(g, &gf), 1);
        yg = gold_to(g, &gf);
        w = gold_to(g, &gf);
        for (i = 0; i < nin; i++) gr[i] = gold_to(g, &gf);
        if (!gold_expect(&gf, "end")) break;
        cases++;
        y = run_op(op, fa, in);
        if (!y || !gold_same_shape(y, nn_shape_of(yg))) {
            NN_TEST_CHECK(0, "%s: output shape", name);
            continue;
        }
        snprintf(what, sizeof what, "%s value", name);
        nn_test_close(y->data, yg->data, y->numel, 2e-6f, 1e-6f, what);
        loss = nn_sum(nn_mul(y, w));
        NN_TEST_CHECK(nn_backward(loss) == NN_OK, "%s backward", name);
        for (i = 0; i < nin; i++) {
            snprintf(what, sizeof what, "%s grad %d", name, i);
            NN_TEST_CHECK(nn_grad(in[i]) != NULL, "%s: a gradient reached input %d", name, i);
            if (nn_grad(in[i])) nn_test_close(nn_grad(in[i]), gr[i]->data, gr[i]->numel, 1e-5f, 2e-6f, what);
        }
        /* the module runs the op: the same bits, PyTorch's class name */
        m = make_module(op, fa);
        if (m) {
            nn_tensor *ym = nn_forward(m, in[0]);
            NN_TEST_CHECK(!strcmp(m->type, module_type(op)), "%s: module type %s", name, m->type);
            NN_TEST_CHECK(ym && bitwise_same(ym->data, y->data, y->numel), "%s: module = op", name);
            nn_module_free(m);
        }
    }
    gold_close(&gf);
    NN_TEST_CHECK(cases == 36, "golden cases read: %d", cases);
    nn_graph_free(g);
}

/* ---- finite differences ---- */

/* Element-wise: d sum(w f(x)) / dx_i = w_i (f(x_i + h) - f(x_i - h)) / 2h,
   at random points kept 3h away from the kinks. */
static void test_gradcheck(void) {
    static const act_case cs[] = {
        {"relu", 0, {0, 0}, 0}, {"sigmoid", 0, {0, 0}, 0}, {"tanh", 0, {0, 0}, 0},
        {"leaky", 1, {0.2f, 0}, 0}, {"elu", 1, {1.3f, 0}, 0}, {"gelu", 0, {0, 0}, 0},
        {"gelu_tanh", 0, {0, 0}, 0}, {"silu", 0, {0, 0}, 0}, {"selu", 0, {0, 0}, 0},
        {"celu", 1, {0.6f, 0}, 0}, {"softplus", 2, {1.5f, 4.0f}, 0}, {"softsign", 0, {0, 0}, 0},
        {"mish", 0, {0, 0}, 0}, {"hardtanh", 2, {-1.5f, 2.0f}, 0}, {"relu6", 0, {0, 0}, 0},
        {"hardsigmoid", 0, {0, 0}, 0}, {"hardswish", 0, {0, 0}, 0}, {"logsigmoid", 0, {0, 0}, 0},
        {"tanhshrink", 0, {0, 0}, 0}, {"threshold", 2, {0.7f, -1.0f}, 0}};
    const float kinks[] = {0.0f, 3.0f, -3.0f, 6.0f, -1.5f, 2.0f, 0.7f, 4.0f / 1.5f};
    enum { NP = 40 };
    const float h = 1e-2f;
    float x[NP], xp[NP], xm[NP], w[NP];
    size_t c;
    int i, k;
    nn_graph *g = nn_graph_new();
    nn_rng *r = nn_rng_new(7);
    for (i = 0; i < NP; i++) {
        float v;
        int near;
        do {
            v = (nn_rng_uniform(r) * 2.0f - 1.0f) * 7.0f;
            for (near = 0, k = 0; k < (int)(sizeof kinks / sizeof kinks[0]); k++)
                if (fabsf(v - kinks[k]) < 3.0f * h) near = 1;
        } while (near);
        x[i] = v;
        xp[i] = v + h;
        xm[i] = v - h;
        w[i] = nn_rng_normal(r);
    }
    for (c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        nn_tensor *in, *xin, *y, *yp, *ym;
        int ok = 1, worst = 0;
        double worst_ex = -1e30;
        nn_graph_reset(g);
        in = xin = nn_requires_grad(nn_tensor_from(g, x, NN_SHAPE(NP)), 1);
        y = run_op(cs[c].name, cs[c].fa, &in);
        nn_backward(nn_sum(nn_mul(y, nn_tensor_from(g, w, NN_SHAPE(NP)))));
        in = nn_tensor_from(g, xp, NN_SHAPE(NP));
        yp = run_op(cs[c].name, cs[c].fa, &in);
        in = nn_tensor_from(g, xm, NN_SHAPE(NP));
        ym = run_op(cs[c].name, cs[c].fa, &in);
        for (i = 0; i < NP; i++) {
            double num = (double)w[i] * ((double)yp->data[i] - (double)ym->data[i]) / (double)(xp[i] - xm[i]);
            double an = (double)nn_grad(xin)[i];
            double ex = fabs(an - num) - (2e-3 + 2e-3 * fmax(fabs(an), fabs(num)));
            if (!(ex <= 0.0)) ok = 0;
            if (ex > worst_ex) worst_ex = ex, worst = i;
        }
        NN_TEST_CHECK(ok, "gradcheck %s: worst at x=%g (excess %g)", cs[c].name, (double)x[worst], worst_ex);
    }
    nn_rng_free(r);
    nn_graph_free(g);
}

/* PReLU: per-channel weight gradient by finite differences on the weights,
   the module's parameter, and a model training its slope. */
static void test_prelu(void) {
    nn_graph *g = nn_graph_new();
    nn_module *m = nn_prelu(3, 0.25f);
    nn_tensor *x, *y, *wp, *t;
    float xv[2 * 3 * 4], wv[2 * 3 * 4], wgrad[3];
    int i, c, np = 0;
    nn_param *ps = nn_parameters(m, &np);
    for (i = 0; i < 24; i++) {
        xv[i] = (float)sin(1.3 * i + 0.2) * 2.0f;
        wv[i] = (float)cos(0.7 * i);
    }
    NN_TEST_CHECK(np == 1 && !strcmp(ps[0].name, "weight") && ps[0].tensor->ndim == 1 &&
                  ps[0].tensor->shape[0] == 3 && ps[0].tensor->data[2] == 0.25f &&
                  !strcmp(m->type, "PReLU"), "PReLU has weight [3] = 0.25");
    wp = nn_param(m, "weight");
    wp->data[0] = 0.1f;
    wp->data[1] = -0.4f;
    wp->data[2] = 0.9f;
    x = nn_tensor_from(g, xv, NN_SHAPE(2, 3, 4));
    y = nn_forward(m, x);
    nn_backward(nn_sum(nn_mul(y, nn_tensor_from(g, wv, NN_SHAPE(2, 3, 4)))));
    memcpy(wgrad, nn_grad(wp), sizeof wgrad);
    for (c = 0; c < 3; c++) {
        double want = 0.0;
        for (i = 0; i < 24; i++)
            if ((i / 4) % 3 == c && xv[i] <= 0.0f) want += (double)xv[i] * (double)wv[i];
        NN_TEST_CHECK(fabs((double)wgrad[c] - want) < 1e-5, "PReLU dweight[%d] %g vs %g", c,
                      (double)wgrad[c], want);
    }
    /* finite differences over the slopes (L is linear in them: exact) */
    for (c = 0; c < 3; c++) {
        float keep = wp->data[c];
        double lp, lm;
        nn_graph_reset(g);
        t = nn_tensor_from(g, wv, NN_SHAPE(2, 3, 4));
        wp->data[c] = keep + 0.01f;
        lp = (double)nn_item(nn_sum(nn_mul(nn_prelu_op(nn_tensor_from(g, xv, NN_SHAPE(2, 3, 4)), wp), t)));
        wp->data[c] = keep - 0.01f;
        lm = (double)nn_item(nn_sum(nn_mul(nn_prelu_op(nn_tensor_from(g, xv, NN_SHAPE(2, 3, 4)), wp), t)));
        wp->data[c] = keep;
        NN_TEST_CHECK(fabs((lp - lm) / 0.02 - (double)wgrad[c]) < 1e-3, "PReLU FD dweight[%d]", c);
    }
    nn_module_free(m);
    /* a single slope over any shape */
    m = nn_prelu(1, 0.25f);
    nn_graph_reset(g);
    x = nn_tensor_from(g, xv, NN_SHAPE(24));
    y = nn_forward(m, x);
    NN_TEST_CHECK(y && y->data[1] == (xv[1] > 0 ? xv[1] : 0.25f * xv[1]), "PReLU one slope over a vector");
    /* 1 and 2 threads: the same bits for dx and dweight (chunked sums) */
    {
        enum { NB = 70003 };
        float *xb = (float *)malloc(NB * sizeof(float)), *gx1 = (float *)malloc(NB * sizeof(float)), gw1;
        int nt = nn_get_threads(), same;
        for (i = 0; i < NB; i++) xb[i] = (float)sin(0.61 * i) * 3.0f;
        nn_set_threads(1);
        nn_graph_reset(g);
        x = nn_requires_grad(nn_tensor_from(g, xb, NN_SHAPE(NB)), 1);
        wp = nn_param(m, "weight");
        wp->grad[0] = 0.0f;
        nn_backward(nn_sum(nn_forward(m, x)));
        memcpy(gx1, nn_grad(x), NB * sizeof(float));
        gw1 = wp->grad[0];
        nn_set_threads(2);
        nn_graph_reset(g);
        x = nn_requires_grad(nn_tensor_from(g, xb, NN_SHAPE(NB)), 1);
        wp->grad[0] = 0.0f;
        nn_backward(nn_sum(nn_forward(m, x)));
        same = !memcmp(gx1, nn_grad(x), NB * sizeof(float)) && !memcmp(&gw1, &wp->grad[0], sizeof gw1);
        NN_TEST_CHECK(same, "PReLU backward: 1 and 2 threads agree bitwise");
        nn_set_threads(nt);
        free(xb);
        free(gx1);
    }
    nn_module_free(m);
    nn_graph_free(g);
}

/* ---- accuracy over wide ranges (the vector log1p, exponential and tanh) ----
   Against the formula in double on a dense grid; z = beta x is rounded to
   float first, as the op (and PyTorch) computes it.  Softplus's log(1 + u)
   for u = e^-|z| in (0, 1] is covered by |z| <= 17; beyond, it is e^-|z|.
   Values below e^-87.7 (denormals) may come out 0: absolute slack 1e-38. */
static double rel_excess(double got, double want, double ulps, double abs_slack) {
    return fabs(got - want) - (ulps * 5.9604645e-8 * fabs(want) + abs_slack);
}

static void test_accuracy(void) {
    enum { NA = 24001 };
    static const float betas[3][2] = {{1.0f, 20.0f}, {0.5f, 20.0f}, {2.5f, 5.0f}};
    nn_graph *g = nn_graph_new();
    float *xv = (float *)malloc(NA * sizeof(float));
    int i, c;
    for (i = 0; i < NA; i++) /* dense in [-30, 30], then out to +-120 */
        xv[i] = i < 20001 ? -30.0f + 60.0f * (float)i / 20000.0f : (float)((i - 20001) % 2 ? 1 : -1) * (30.0f + 0.0225f * (float)(i - 20001));
    for (c = 0; c < 3; c++) {
        float beta = betas[c][0], th = betas[c][1];
        nn_tensor *x = nn_requires_grad(nn_tensor_from(g, xv, NN_SHAPE(NA)), 1);
        nn_tensor *y = nn_softplus_op(x, beta, th);
        double wy = -1e30, wg = -1e30, xy = 0.0, xg = 0.0;
        nn_backward(nn_sum(y));
        for (i = 0; i < NA; i++) {
            float zf = xv[i] * beta;
            double z = (double)zf, want, dwant, ey, eg;
            if (z > (double)th) {
                want = (double)xv[i];
                dwant = 1.0;
            } else {
                want = (fmax(z, 0.0) + log1p(exp(-fabs(z)))) / (double)beta;
                dwant = 1.0 / (1.0 + exp(-z));
            }
            ey = rel_excess((double)y->data[i], want, 4.0, 1e-38);
            eg = rel_excess((double)nn_grad(x)[i], dwant, 4.0, 1e-38);
            if (ey > wy) wy = ey, xy = (double)xv[i];
            if (eg > wg) wg = eg, xg = (double)xv[i];
        }
        NN_TEST_CHECK(wy <= 0.0, "softplus(beta=%g, threshold=%g) within 4 ulp of log1p(exp) in double: worst at x=%g (excess %g)",
                      (double)beta, (double)th, xy, wy);
        NN_TEST_CHECK(wg <= 0.0, "softplus'(beta=%g, threshold=%g) within 4 ulp of sigmoid(beta x): worst at x=%g (excess %g)",
                      (double)beta, (double)th, xg, wg);
        nn_graph_reset(g);
    }
    {
        nn_tensor *x = nn_requires_grad(nn_tensor_from(g, xv, NN_SHAPE(NA)), 1), *y = nn_logsigmoid_op(x);
        double w = -1e30, wx = 0.0;
        for (i = 0; i < NA; i++) {
            double z = (double)xv[i], e = rel_excess((double)y->data[i], fmin(z, 0.0) - log1p(exp(-fabs(z))), 4.0, 1e-38);
            if (e > w) w = e, wx = z;
        }
        NN_TEST_CHECK(w <= 0.0, "logsigmoid within 4 ulp of the double formula: worst at x=%g (excess %g)", wx, w);
        nn_graph_reset(g);
    }
    {
        /* tanhshrink: the rational tanh is within 3.5e-7 of tanh (x - tanh x
           then rounds once more); its gradient tanh^2 within 7e-7 */
        nn_tensor *x = nn_requires_grad(nn_tensor_from(g, xv, NN_SHAPE(NA)), 1), *y = nn_tanhshrink_op(x);
        double wy = -1e30, wg = -1e30, xy = 0.0, xg = 0.0;
        nn_backward(nn_sum(y));
        for (i = 0; i < NA; i++) {
            double z = (double)xv[i], t = tanh(z);
            double ey = rel_excess((double)y->data[i], z - t, 1.0, 3.5e-7);
            double eg = rel_excess((double)nn_grad(x)[i], t * t, 1.0, 7e-7);
            if (ey > wy) wy = ey, xy = z;
            if (eg > wg) wg = eg, xg = z;
        }
        NN_TEST_CHECK(wy <= 0.0, "tanhshrink within 3.5e-7 + 1 ulp of x - tanh x: worst at x=%g (excess %g)", xy, wy);
        NN_TEST_CHECK(wg <= 0.0, "tanhshrink' within 7e-7 + 1 ulp of tanh^2: worst at x=%g (excess %g)", xg, wg);
    }
    free(xv);
    nn_graph_free(g);
}

/* The kinds built on the exponential (nn__vexp_r's polynomial, the expm1,
   the reciprocal nn__vrcp, the rational erf), value and gradient against
   their formulas in double on the dense grid of test_accuracy: within ulps
   of the value plus an absolute slack.  The ELU family's gradient comes
   from the output (alpha + y), so its slack is y's rounding, 6e-8 alpha. */
typedef struct exp_case {
    const char *name;
    float fa[2];
    double uy, ay, ug, ag; /* value: ulps, absolute; gradient: ulps, absolute */
} exp_case;

static double ref_value(const char *op, const float *fa, double x, double *d) {
    const double sa = 1.6732632423543772, ss = 1.0507009873554805, pi = 3.14159265358979323846;
    if (!strcmp(op, "elu")) {
        *d = x > 0 ? 1.0 : fa[0] * exp(x);
        return x > 0 ? x : fa[0] * expm1(x);
    }
    if (!strcmp(op, "selu")) {
        *d = ss * (x > 0 ? 1.0 : sa * exp(x));
        return ss * (x > 0 ? x : sa * expm1(x));
    }
    if (!strcmp(op, "celu")) {
        *d = x > 0 ? 1.0 : exp(x / fa[0]);
        return x > 0 ? x : fa[0] * expm1(x / fa[0]);
    }
    if (!strcmp(op, "gelu")) {
        *d = 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * pi);
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    }
    if (!strcmp(op, "gelu_tanh")) {
        double k = sqrt(2.0 / pi), u = k * (x + 0.044715 * x * x * x), t = tanh(u);
        *d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
        return 0.5 * x * (1.0 + t);
    }
    if (!strcmp(op, "silu")) {
        double s = 1.0 / (1.0 + exp(-x));
        *d = s * (1.0 + x * (1.0 - s));
        return x * s;
    }
    if (!strcmp(op, "mish")) {
        double sp = x > 30 ? x : log1p(exp(x)), t = tanh(sp), s = 1.0 / (1.0 + exp(-x));
        *d = t + x * s * (1.0 - t * t);
        return x * t;
    }
    if (!strcmp(op, "tanh")) {
        double t = tanh(x);
        *d = 1.0 - t * t;
        return t;
    }
    { /* sigmoid */
        double s = 1.0 / (1.0 + exp(-x));
        *d = s * (1.0 - s);
        return s;
    }
}

static void test_accuracy_exp(void) {
    enum { NA = 24001 };
    static const exp_case cs[] = {
        {"elu", {1.0f, 0}, 4, 1e-38, 4, 1e-7},     {"elu", {0.3f, 0}, 4, 1e-38, 4, 3e-8},
        {"selu", {0, 0}, 4, 1e-38, 4, 1.8e-7},     {"celu", {1.7f, 0}, 4, 1e-38, 4, 1e-7},
        {"celu", {-2.0f, 0}, 4, 1e-38, 4, 1e-7},   {"gelu", {0, 0}, 4, 1e-6, 8, 3e-7},
        {"gelu_tanh", {0, 0}, 10, 1e-9, 8, 3e-7},  {"silu", {0, 0}, 4, 1e-36, 4, 1e-7},
        {"mish", {0, 0}, 6, 1e-36, 8, 1e-7},       {"tanh", {0, 0}, 4, 1e-38, 4, 4e-7},
        {"sigmoid", {0, 0}, 4, 1e-38, 4, 1.2e-7}};
    nn_graph *g = nn_graph_new();
    float *xv = (float *)malloc(NA * sizeof(float));
    size_t c;
    int i;
    for (i = 0; i < NA; i++) /* dense in [-30, 30], then out to +-120 */
        xv[i] = i < 20001 ? -30.0f + 60.0f * (float)i / 20000.0f : (float)((i - 20001) % 2 ? 1 : -1) * (30.0f + 0.0225f * (float)(i - 20001));
    for (c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        nn_tensor *in = nn_requires_grad(nn_tensor_from(g, xv, NN_SHAPE(NA)), 1), *x = in, *y;
        double wy = -1e30, wg = -1e30, xy = 0.0, xg = 0.0;
        y = run_op(cs[c].name, cs[c].fa, &in);
        nn_backward(nn_sum(y));
        for (i = 0; i < NA; i++) {
            double d, want = ref_value(cs[c].name, cs[c].fa, (double)xv[i], &d), ey, eg;
            if (fabs(want) > 3.4028235e38) want = copysign(INFINITY, want); /* past float: inf, as the op */
            if (fabs(d) > 3.4028235e38) d = copysign(INFINITY, d);
            ey = (double)y->data[i] == want ? -1.0 : rel_excess((double)y->data[i], want, cs[c].uy, cs[c].ay);
            eg = (double)nn_grad(x)[i] == d ? -1.0 : rel_excess((double)nn_grad(x)[i], d, cs[c].ug, cs[c].ag);
            if (!(ey <= wy)) wy = ey, xy = (double)xv[i];
            if (!(eg <= wg)) wg = eg, xg = (double)xv[i];
        }
        NN_TEST_CHECK(wy <= 0.0, "%s(%g) within %g ulp + %g of the double formula: worst at x=%g (excess %g)",
                      cs[c].name, (double)cs[c].fa[0], cs[c].uy, cs[c].ay, xy, wy);
        NN_TEST_CHECK(wg <= 0.0, "%s'(%g) within %g ulp + %g of the double formula: worst at x=%g (excess %g)",
                      cs[c].name, (double)cs[c].fa[0], cs[c].ug, cs[c].ag, xg, wg);
        nn_graph_reset(g);
    }
    free(xv);
    nn_graph_free(g);
}

/* ---- stability, NaN, position and thread independence ---- */

static const act_case all_kinds[] = {
    {"relu", 0, {0, 0}, 0}, {"sigmoid", 0, {0, 0}, 0}, {"tanh", 0, {0, 0}, 0},
    {"leaky", 1, {0.01f, 0}, 0}, {"elu", 1, {1.0f, 0}, 0}, {"gelu", 0, {0, 0}, 0},
    {"gelu_tanh", 0, {0, 0}, 0}, {"silu", 0, {0, 0}, 0}, {"selu", 0, {0, 0}, 0},
    {"celu", 1, {1.0f, 0}, 0}, {"softplus", 2, {1.0f, 20.0f}, 0}, {"softsign", 0, {0, 0}, 0},
    {"mish", 0, {0, 0}, 0}, {"hardtanh", 2, {-1.0f, 1.0f}, 0}, {"relu6", 0, {0, 0}, 0},
    {"hardsigmoid", 0, {0, 0}, 0}, {"hardswish", 0, {0, 0}, 0}, {"logsigmoid", 0, {0, 0}, 0},
    {"tanhshrink", 0, {0, 0}, 0}, {"threshold", 2, {0.5f, -1.0f}, 0}};
#define NKINDS (int)(sizeof all_kinds / sizeof all_kinds[0])

static void test_stability(void) {
    nn_graph *g = nn_graph_new();
    float big[6] = {-100.0f, 100.0f, -1e30f, 1e30f, -INFINITY, INFINITY}, nanv[1] = {NAN};
    nn_tensor *x = nn_tensor_from(g, big, NN_SHAPE(6)), *y;
    int k;
    size_t i;
    y = nn_logsigmoid_op(x);
    NN_TEST_CHECK(y->data[0] == -100.0f && y->data[1] <= 0.0f && y->data[1] > -1e-30f && y->data[2] == -1e30f,
                  "logsigmoid(-100) = -100, (100) = -0, (-1e30) = -1e30: %g %g %g", (double)y->data[0],
                  (double)y->data[1], (double)y->data[2]);
    y = nn_softplus_op(x, 1.0f, 20.0f);
    NN_TEST_CHECK(y->data[0] >= 0.0f && y->data[0] < 1e-30f && y->data[1] == 100.0f && y->data[5] == INFINITY,
                  "softplus(-100) ~ 0, (100) = 100, (inf) = inf");
    y = nn_mish_op(x);
    NN_TEST_CHECK(fabsf(y->data[0]) < 1e-30f && y->data[1] == 100.0f && y->data[3] == 1e30f,
                  "mish(-100) ~ 0, (100) = 100, (1e30) = 1e30");
    for (k = 0; k < NKINDS; k++) {
        nn_tensor *xg = nn_requires_grad(nn_tensor_from(g, big, NN_SHAPE(4)), 1), *yk;
        int finite = 1;
        yk = run_op(all_kinds[k].name, all_kinds[k].fa, &xg);
        nn_backward(nn_sum(yk));
        for (i = 0; i < 4; i++) finite &= isfinite(yk->data[i]) && isfinite(nn_grad(xg)[i]);
        NN_TEST_CHECK(finite, "%s finite with finite gradient at +-100 and +-1e30", all_kinds[k].name);
        xg = nn_tensor_from(g, nanv, NN_SHAPE(1));
        yk = run_op(all_kinds[k].name, all_kinds[k].fa, &xg);
        NN_TEST_CHECK(isnan(yk->data[0]), "%s(NaN) is NaN (as torch)", all_kinds[k].name);
    }
    nn_graph_free(g);
}

/* A value is the same bits wherever it falls (vector body or padded tail,
   any thread's share) and at any thread count. */
static void test_positions(void) {
    enum { N = 37, NBIG = 70003 };
    nn_graph *g = nn_graph_new();
    float *xb = (float *)malloc(NBIG * sizeof(float)), *y1 = (float *)malloc(NBIG * sizeof(float));
    float *g1 = (float *)malloc(NBIG * sizeof(float));
    int k, i, nt = nn_get_threads();
    for (i = 0; i < NBIG; i++) xb[i] = (float)sin(0.37 * i) * 8.0f;
    for (k = 0; k < NKINDS; k++) {
        nn_tensor *x = nn_requires_grad(nn_tensor_from(g, xb, NN_SHAPE(N)), 1), *y, *one;
        float ya[N], ga[N];
        int same = 1;
        y = run_op(all_kinds[k].name, all_kinds[k].fa, &x);
        nn_backward(nn_sum(y));
        memcpy(ya, y->data, sizeof ya);
        memcpy(ga, nn_grad(x), sizeof ga);
        for (i = 0; i < N; i++) {
            one = nn_requires_grad(nn_tensor_from(g, xb + i, NN_SHAPE(1)), 1);
            y = run_op(all_kinds[k].name, all_kinds[k].fa, &one);
            nn_backward(nn_sum(y));
            same &= bitwise_same(y->data, ya + i, 1) && bitwise_same(nn_grad(one), ga + i, 1);
        }
        NN_TEST_CHECK(same, "%s: an element alone = the same element in an array of 37", all_kinds[k].name);
        /* threads: 1 vs 2 on 70003 floats */
        nn_set_threads(1);
        nn_graph_reset(g);
        x = nn_requires_grad(nn_tensor_from(g, xb, NN_SHAPE(NBIG)), 1);
        y = run_op(all_kinds[k].name, all_kinds[k].fa, &x);
        nn_backward(nn_sum(y));
        memcpy(y1, y->data, NBIG * sizeof(float));
        memcpy(g1, nn_grad(x), NBIG * sizeof(float));
        nn_set_threads(2);
        nn_graph_reset(g);
        x = nn_requires_grad(nn_tensor_from(g, xb, NN_SHAPE(NBIG)), 1);
        y = run_op(all_kinds[k].name, all_kinds[k].fa, &x);
        nn_backward(nn_sum(y));
        NN_TEST_CHECK(bitwise_same(y->data, y1, NBIG) && bitwise_same(nn_grad(x), g1, NBIG),
                      "%s: 1 and 2 threads agree bitwise", all_kinds[k].name);
        nn_set_threads(nt);
        nn_graph_reset(g);
    }
    free(xb);
    free(y1);
    free(g1);
    nn_graph_free(g);
}

/* ---- misuse ---- */

static void reported(const char *what, const char *want) {
    NN_TEST_CHECK(nn_test_msgs == 1 && strstr(nn_test_msg, want) != NULL, "%s: %d reports, last \"%s\" (want \"%s\")",
                  what, nn_test_msgs, nn_test_msg, want);
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

static void test_misuse(void) {
    nn_graph *g = nn_graph_new();
    float v[12] = {0};
    nn_tensor *x = nn_tensor_from(g, v, NN_SHAPE(2, 3, 2)), *w2 = nn_ones(g, NN_SHAPE(2));
    nn_module *m;
    nn_set_error_hook(nn_test_record_hook, NULL);
    NN_TEST_CHECK(nn_hardtanh_op(x, 2.0f, 1.0f) == NULL, "hardtanh min > max");
    reported("hardtanh op", "nn_hardtanh_op: needs min_val < max_val, got min_val=2, max_val=1");
    NN_TEST_CHECK(nn_hardtanh(1.0f, 1.0f) == NULL, "Hardtanh min == max");
    reported("hardtanh module", "nn_hardtanh: needs min_val < max_val, got min_val=1, max_val=1");
    NN_TEST_CHECK(nn_softplus_op(x, 0.0f, 20.0f) == NULL, "softplus beta 0");
    reported("softplus op", "nn_softplus_op: needs beta > 0 (finite) and a threshold that is a number, got beta=0, threshold=20");
    NN_TEST_CHECK(nn_softplus(-1.0f, 20.0f) == NULL, "Softplus beta < 0");
    reported("softplus module", "nn_softplus: needs beta > 0");
    NN_TEST_CHECK(nn_softplus_op(x, 1.0f, NAN) == NULL, "softplus threshold NaN");
    reported("softplus NaN", "threshold=nan");
    NN_TEST_CHECK(nn_celu_op(x, 0.0f) == NULL, "celu alpha 0");
    reported("celu op", "nn_celu_op: alpha must be finite and not 0, got 0");
    NN_TEST_CHECK(nn_celu(INFINITY) == NULL, "CELU alpha inf");
    reported("celu module", "nn_celu: alpha must be finite");
    NN_TEST_CHECK(nn_threshold_op(x, NAN, 0.0f) == NULL, "threshold NaN");
    reported("threshold", "nn_threshold_op: threshold is NaN");
    NN_TEST_CHECK(nn_prelu_op(x, w2) == NULL, "prelu weight [2] for 3 channels");
    reported("prelu op", "nn_prelu_op: weight [2] must be [1] or [C] for x [N,C,...], got x [2,3,2]");
    NN_TEST_CHECK(nn_prelu(0, 0.25f) == NULL, "PReLU 0 parameters");
    reported("prelu module", "nn_prelu: num_parameters must be at least 1, got 0");
    m = nn_prelu(4, 0.25f);
    NN_TEST_CHECK(nn_forward(m, x) == NULL, "PReLU(4) on 3 channels");
    reported("prelu forward", "nn_forward(PReLU): nn_prelu_op: weight [4]");
    nn_module_free(m);
    m = nn_softmax_module(3);
    NN_TEST_CHECK(nn_forward(m, x) == NULL, "Softmax(dim=3) on 3 dims");
    reported("softmax module", "nn_forward(Softmax): nn_softmax: axis 3 out of range for shape [2,3,2]");
    nn_module_free(m);
    m = nn_hardtanh(-1.0f, 1.0f);
    NN_TEST_CHECK(nn_forward(m, NULL) == NULL, "Hardtanh on NULL");
    reported("hardtanh NULL", "nn_forward: NULL input");
    nn_module_free(m);
    NN_TEST_CHECK(nn_selu_op(NULL) == NULL, "selu NULL");
    reported("selu NULL", "nn_selu_op: input 0 is NULL");
    nn_set_error_hook(NULL, NULL);
    nn_graph_free(g);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    test_golden(dir);
    test_gradcheck();
    test_prelu();
    test_accuracy();
    test_accuracy_exp();
    test_stability();
    test_positions();
    test_misuse();
    return nn_test_summary("test_act");
}
