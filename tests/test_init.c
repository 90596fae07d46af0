/* Initializers (>>init): fans, gains and every rule's std against PyTorch
   (tests/golden/init.txt, made by make_golden_init.py), the drawn statistics
   within confidence bounds, orthogonality and torch's sign convention, eye and
   dirac exactly, truncated normal's moments and bounds, sparse's zeros per
   column, nn_init_apply's patterns, the forward hook, LSUV's post-condition,
   Fixup's zeros and scaling, and the misuse messages.
   Run from the repository root, or pass the golden directory as argv[1]. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

/* Exactly one report since the last check, holding s1 and s2 (if given). */
static void reported(const char *what, const char *s1, const char *s2) {
    int ok = nn_test_msgs == 1 && strstr(nn_test_msg, s1) && (!s2 || strstr(nn_test_msg, s2));
    NN_TEST_CHECK(ok, "%s: %d reports, last \"%s\" (want \"%s\" %s)", what, nn_test_msgs, nn_test_msg, s1,
                  s2 ? s2 : "");
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

/* ---- moments of draws ---- */
typedef struct moments {
    double n, mean, std, maxabs;
} moments;
static void mom_add(moments *m, double *s, double *ss, const nn_tensor *t) {
    size_t i;
    for (i = 0; i < t->numel; i++) {
        double v = t->data[i];
        *s += v;
        *ss += v * v;
        if (fabs(v) > m->maxabs) m->maxabs = fabs(v);
    }
    m->n += (double)t->numel;
}
static void mom_done(moments *m, double s, double ss) {
    m->mean = s / m->n;
    m->std = sqrt(ss / m->n - m->mean * m->mean);
}

/* Draw into a tensor of shape until at least 12000 values, with init(t). */
typedef nn_tensor *(*draw_fn)(nn_tensor *t, const void *arg, nn_rng *r);
static moments draws(nn_shape shape, draw_fn fn, const void *arg, nn_rng *r) {
    moments m;
    double s = 0.0, ss = 0.0;
    nn_tensor *t = nn_zeros(NULL, shape);
    memset(&m, 0, sizeof m);
    while (m.n < 12000.0) {
        fn(t, arg, r);
        mom_add(&m, &s, &ss, t);
    }
    mom_done(&m, s, ss);
    nn_tensor_free(t);
    return m;
}

/* The sample std and mean within 5 standard errors of std and 0; kurt is
   the distribution's kurtosis (3 normal, 1.8 uniform). */
static void check_std(const char *what, moments m, double std, double kurt) {
    double rel = 5.0 * sqrt((kurt - 1.0) / (4.0 * m.n));
    NN_TEST_CHECK(fabs(m.std / std - 1.0) < rel && fabs(m.mean) < 5.0 * std / sqrt(m.n),
                  "%s: sample std %.6g mean %.3g over %.0f draws, want std %.6g (+-%.2g%%)", what,
                  m.std, m.mean, m.n, std, 100.0 * rel);
}

static nn_tensor *d_kaiming_n(nn_tensor *t, const void *a, nn_rng *r) {
    return nn_init_kaiming_normal(t, *(const nn_init_opts *)a, r);
}
static nn_tensor *d_kaiming_u(nn_tensor *t, const void *a, nn_rng *r) {
    return nn_init_kaiming_uniform(t, *(const nn_init_opts *)a, r);
}
static nn_tensor *d_xavier_n(nn_tensor *t, const void *a, nn_rng *r) {
    return nn_init_xavier_normal(t, *(const float *)a, r);
}
static nn_tensor *d_xavier_u(nn_tensor *t, const void *a, nn_rng *r) {
    return nn_init_xavier_uniform(t, *(const float *)a, r);
}
static nn_tensor *d_lecun_n(nn_tensor *t, const void *a, nn_rng *r) {
    (void)a;
    return nn_init_lecun_normal(t, r);
}
static nn_tensor *d_lecun_u(nn_tensor *t, const void *a, nn_rng *r) {
    (void)a;
    return nn_init_lecun_uniform(t, r);
}
static nn_tensor *d_trunc(nn_tensor *t, const void *a, nn_rng *r) {
    const float *p = (const float *)a;
    return nn_init_trunc_normal(t, p[0], p[1], p[2], p[3], r);
}

/* ---- golden file ---- */
static FILE *gf;
static int tok(char *buf, size_t size) {
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%ds", (int)size - 1);
    return fscanf(gf, fmt, buf) == 1;
}
static int rint_(void) {
    char b[64];
    return tok(b, sizeof b) ? atoi(b) : -1;
}
static double rdbl(void) {
    char b[64];
    return tok(b, sizeof b) ? strtod(b, NULL) : 0.0 / 0.0;
}
static nn_shape rshape(void) {
    nn_shape s;
    int i;
    s.ndim = rint_();
    for (i = 0; i < s.ndim && i < NN_MAX_DIMS; i++) s.d[i] = rint_();
    return s;
}

static void golden(const char *dir, nn_rng *r) {
    char path[512], kind[64], name[64], mode[16];
    int fans = 0, gains = 0, ks = 0, xs = 0, tns = 0, ended = 0;
    snprintf(path, sizeof path, "%s/init.txt", dir);
    gf = fopen(path, "r");
    NN_TEST_CHECK(gf != NULL, "open %s (run from the repository root or pass the golden dir)", path);
    if (!gf) return;
    NN_TEST_CHECK(tok(kind, sizeof kind) && !strcmp(kind, "nn.h-golden-init") && rint_() == 1,
                  "golden magic");
    while (tok(kind, sizeof kind)) {
        if (!strcmp(kind, "end")) {
            ended = 1;
            break;
        } else if (!strcmp(kind, "fan")) {
            nn_shape s = rshape();
            int wi = rint_(), wo = rint_(), fi = -1, fo = -1;
            nn_tensor *t = nn_zeros(NULL, s);
            int rc = nn_calculate_fan(t, &fi, &fo);
            NN_TEST_CHECK(rc == 0 && fi == wi && fo == wo, "fan of %dd [%d,%d,...]: %d %d, torch %d %d",
                          s.ndim, s.d[0], s.d[1], fi, fo, wi, wo);
            nn_tensor_free(t);
            fans++;
        } else if (!strcmp(kind, "gain")) {
            double param, want;
            float got;
            tok(name, sizeof name);
            param = rdbl();
            want = rdbl();
            got = nn_calculate_gain(name, (float)param);
            NN_TEST_CHECK(fabs((double)got - want) < 1e-6 * want, "calculate_gain(%s, %g) = %.9g, torch %.9g",
                          name, param, (double)got, want);
            gains++;
        } else if (!strcmp(kind, "kaiming")) {
            nn_shape s = rshape();
            nn_init_opts o;
            double a, std;
            char what[160];
            moments mn, mu;
            tok(mode, sizeof mode);
            tok(name, sizeof name);
            a = rdbl();
            std = rdbl();
            memset(&o, 0, sizeof o);
            o.a = (float)a;
            o.mode = !strcmp(mode, "fan_out") ? NN_FAN_OUT : NN_FAN_IN;
            o.nonlinearity = strcmp(name, "leaky_relu") ? name : NULL; /* NULL: the default */
            mn = draws(s, d_kaiming_n, &o, r);
            mu = draws(s, d_kaiming_u, &o, r);
            snprintf(what, sizeof what, "kaiming_normal %dd [%d,%d] %s %s a=%g", s.ndim, s.d[0],
                     s.d[1], mode, name, a);
            check_std(what, mn, std, 3.0);
            what[7] = 'U'; /* "kaiming_Uniform" */
            check_std(what, mu, std, 1.8);
            NN_TEST_CHECK(mu.maxabs <= sqrt(3.0) * std * (1 + 1e-6), "%s: |w| %.6g within sqrt 3 std",
                          what, mu.maxabs);
            if (!strcmp(name, "linear") && o.mode == NN_FAN_IN) {
                check_std("lecun_normal", draws(s, d_lecun_n, NULL, r), std, 3.0);
                mu = draws(s, d_lecun_u, NULL, r);
                check_std("lecun_uniform", mu, std, 1.8);
                NN_TEST_CHECK(mu.maxabs <= sqrt(3.0) * std * (1 + 1e-6), "lecun_uniform bound");
            }
            ks++;
        } else if (!strcmp(kind, "xavier")) {
            nn_shape s = rshape();
            float gain = (float)rdbl();
            double std = rdbl();
            moments mu;
            check_std("xavier_normal", draws(s, d_xavier_n, &gain, r), std, 3.0);
            mu = draws(s, d_xavier_u, &gain, r);
            check_std("xavier_uniform", mu, std, 1.8);
            NN_TEST_CHECK(mu.maxabs <= sqrt(3.0) * std * (1 + 1e-6), "xavier_uniform bound");
            xs++;
        } else if (!strcmp(kind, "tn")) {
            float p[4];
            double wm, ws;
            moments m;
            double s = 0.0, ss = 0.0, lo = 1e30, hi = -1e30;
            nn_tensor *t = nn_zeros(NULL, NN_SHAPE(20000));
            size_t i;
            for (i = 0; i < 4; i++) p[i] = (float)rdbl();
            wm = rdbl();
            ws = rdbl();
            memset(&m, 0, sizeof m);
            d_trunc(t, p, r);
            mom_add(&m, &s, &ss, t);
            mom_done(&m, s, ss);
            for (i = 0; i < t->numel; i++) {
                if ((double)t->data[i] < lo) lo = t->data[i];
                if ((double)t->data[i] > hi) hi = t->data[i];
            }
            NN_TEST_CHECK(fabs(m.mean - wm) < 5.0 * ws / sqrt(m.n) &&
                          fabs(m.std / ws - 1.0) < 5.0 * sqrt(0.5 / m.n) * 1.5,
                          "trunc_normal(%g, %g, %g, %g): mean %.5g std %.5g, want %.5g %.5g",
                          (double)p[0], (double)p[1], (double)p[2], (double)p[3], m.mean, m.std, wm, ws);
            NN_TEST_CHECK(lo >= (double)p[2] && hi <= (double)p[3], "trunc_normal within [%g, %g]: [%g, %g]",
                          (double)p[2], (double)p[3], lo, hi);
            nn_tensor_free(t);
            tns++;
        } else {
            NN_TEST_CHECK(0, "golden: unknown record %s", kind);
            break;
        }
    }
    NN_TEST_CHECK(ended && fans == 9 && gains == 15 && ks == 40 && xs == 8 && tns == 4,
                  "golden records: %d fans %d gains %d kaiming %d xavier %d tn", fans, gains, ks, xs, tns);
    fclose(gf);
}

/* ---- the simple rules ---- */
static void simple(nn_rng *r) {
    nn_tensor *t = nn_zeros(NULL, NN_SHAPE(100, 200)), *e;
    moments m;
    double s = 0.0, ss = 0.0;
    size_t i;
    int ok = 1;
    memset(&m, 0, sizeof m);
    nn_init_uniform(t, -1.0f, 3.0f, r);
    mom_add(&m, &s, &ss, t);
    mom_done(&m, s, ss);
    for (i = 0; i < t->numel; i++) ok &= t->data[i] >= -1.0f && t->data[i] < 3.0f;
    NN_TEST_CHECK(ok && fabs(m.mean - 1.0) < 5 * 4 / sqrt(12 * m.n) &&
                  fabs(m.std / (4 / sqrt(12.0)) - 1) < 0.01, "uniform(-1, 3): mean %g std %g", m.mean, m.std);
    memset(&m, 0, sizeof m);
    s = ss = 0.0;
    nn_init_normal(t, 2.0f, 0.5f, r);
    mom_add(&m, &s, &ss, t);
    mom_done(&m, s, ss);
    NN_TEST_CHECK(fabs(m.mean - 2.0) < 5 * 0.5 / sqrt(m.n) && fabs(m.std / 0.5 - 1) < 0.02,
                  "normal(2, 0.5): mean %g std %g", m.mean, m.std);
    nn_init_constant(t, 0.25f);
    for (ok = 1, i = 0; i < t->numel; i++) ok &= t->data[i] == 0.25f;
    NN_TEST_CHECK(ok, "constant");
    nn_init_ones(t);
    for (ok = 1, i = 0; i < t->numel; i++) ok &= t->data[i] == 1.0f;
    NN_TEST_CHECK(ok, "ones");
    NN_TEST_CHECK(nn_init_zeros(t) == t, "zeros returns its tensor");
    for (ok = 1, i = 0; i < t->numel; i++) ok &= t->data[i] == 0.0f;
    NN_TEST_CHECK(ok, "zeros");
    nn_tensor_free(t);

    /* eye, exactly, square and both rectangles */
    {
        int shapes[3][2] = {{4, 4}, {3, 5}, {5, 2}}, k, a, b;
        for (k = 0; k < 3; k++) {
            e = nn_full(NULL, NN_SHAPE(shapes[k][0], shapes[k][1]), 7.0f);
            nn_init_eye(e);
            for (ok = 1, a = 0; a < shapes[k][0]; a++)
                for (b = 0; b < shapes[k][1]; b++) ok &= e->data[a * shapes[k][1] + b] == (a == b ? 1.0f : 0.0f);
            NN_TEST_CHECK(ok, "eye [%d,%d]", shapes[k][0], shapes[k][1]);
            nn_tensor_free(e);
        }
    }
    /* dirac: element by element, and the convolution it makes is the identity */
    {
        nn_tensor *w = nn_full(NULL, NN_SHAPE(6, 2, 3, 3), 5.0f), *w1 = nn_randn(NULL, NN_SHAPE(4, 3, 5));
        int o, c, y, x, n1 = 0;
        nn_init_dirac(w, 2); /* per group 3 outputs, 2 inputs: d < 2 */
        for (ok = 1, o = 0; o < 6; o++)
            for (c = 0; c < 2; c++)
                for (y = 0; y < 3; y++)
                    for (x = 0; x < 3; x++) {
                        float want = (o % 3 == c && c < 2 && y == 1 && x == 1) ? 1.0f : 0.0f;
                        ok &= w->data[((o * 2 + c) * 3 + y) * 3 + x] == want;
                    }
        NN_TEST_CHECK(ok, "dirac [6,2,3,3] groups 2, exactly");
        nn_init_dirac(w1, 1);
        for (ok = 1, o = 0; o < 4; o++)
            for (c = 0; c < 3; c++)
                for (x = 0; x < 5; x++) {
                    float v = w1->data[(o * 3 + c) * 5 + x];
                    ok &= v == ((o == c && x == 2) ? 1.0f : 0.0f);
                    n1 += v == 1.0f;
                }
        NN_TEST_CHECK(ok && n1 == 3, "dirac [4,3,5]: %d ones", n1);
        nn_tensor_free(w);
        nn_tensor_free(w1);
    }
    {
        nn_graph *g = nn_graph_new();
        nn_tensor *w = nn_zeros(NULL, NN_SHAPE(3, 3, 3, 3)), *x = nn_randn(g, NN_SHAPE(2, 3, 5, 4)), *y;
        nn_conv_opts co;
        memset(&co, 0, sizeof co);
        co.padding = 1;
        nn_init_dirac(w, 1);
        y = nn_conv2d_op(x, w, NULL, co);
        NN_TEST_CHECK(y && y->numel == x->numel && nn_test_close(y->data, x->data, x->numel, 0, 0, "dirac conv"),
                      "conv2d with a dirac weight is the identity");
        nn_tensor_free(w);
        nn_graph_free(g);
    }
}

/* ---- orthogonal ---- */
static void orthogonal(void) {
    int shapes[5][3] = {{5, 3, 0}, {3, 5, 0}, {8, 2, 3}, {16, 16, 0}, {4, 30, 0}}, k;
    for (k = 0; k < 5; k++) {
        int rows = shapes[k][0], cols = shapes[k][1] * (shapes[k][2] ? shapes[k][2] : 1), i, j, l;
        nn_shape s = shapes[k][2] ? NN_SHAPE(shapes[k][0], shapes[k][1], shapes[k][2])
                                  : NN_SHAPE(shapes[k][0], shapes[k][1]);
        nn_tensor *w = nn_zeros(NULL, s);
        nn_rng *r = nn_rng_new(77 + (uint64_t)k), *r2 = nn_rng_new(77 + (uint64_t)k);
        float gain = k == 3 ? 2.0f : 1.0f, *G = (float *)malloc(sizeof(float) * (size_t)(rows * cols));
        double worst = 0.0, below = 0.0, mindiag = 1e30;
        int tall = rows >= cols, n = tall ? cols : rows;
        nn_init_orthogonal(w, gain, r);
        /* orthonormal columns (tall) or rows (wide), times gain */
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double d = 0.0;
                for (l = 0; l < (tall ? rows : cols); l++)
                    d += tall ? (double)w->data[l * cols + i] * (double)w->data[l * cols + j]
                              : (double)w->data[i * cols + l] * (double)w->data[j * cols + l];
                d = d / ((double)gain * (double)gain) - (i == j);
                if (fabs(d) > worst) worst = fabs(d);
            }
        NN_TEST_CHECK(worst < 1e-5, "orthogonal %dx%d: |W^T W / gain^2 - I| = %.3g", rows, cols, worst);
        /* torch's sign convention: Q^T A is R with a positive diagonal, A the
           same Gaussian draws (row by row, transposed when wide) */
        for (i = 0; i < rows * cols; i++) G[i] = nn_rng_normal(r2);
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double d = 0.0; /* (Q^T A)[i][j] */
                for (l = 0; l < (tall ? rows : cols); l++)
                    d += tall ? (double)w->data[l * cols + i] / (double)gain * (double)G[l * cols + j]
                              : (double)w->data[i * cols + l] / (double)gain * (double)G[j * cols + l];
                if (i > j && fabs(d) > below) below = fabs(d);
                if (i == j && d < mindiag) mindiag = d;
            }
        NN_TEST_CHECK(below < 1e-4 && mindiag > 0.0, "orthogonal %dx%d: Q^T A upper triangular (%.3g) "
                      "with a positive diagonal (min %.3g)", rows, cols, below, mindiag);
        free(G);
        nn_rng_free(r);
        nn_rng_free(r2);
        nn_tensor_free(w);
    }
}

/* ---- sparse ---- */
static void sparse(nn_rng *r) {
    nn_tensor *t = nn_zeros(NULL, NN_SHAPE(10, 300));
    int c, i, ok = 1, z, total = 0;
    moments m;
    double s = 0.0, ss = 0.0;
    nn_init_sparse(t, 0.35f, 0.5f, r);
    for (c = 0; c < 300; c++) {
        for (z = 0, i = 0; i < 10; i++) z += t->data[i * 300 + c] == 0.0f;
        ok &= z == 4; /* ceil(0.35 * 10) */
        total += z;
    }
    NN_TEST_CHECK(ok, "sparse(0.35): 4 zeros in every column of 10 (%d in all)", total);
    memset(&m, 0, sizeof m);
    mom_add(&m, &s, &ss, t);
    mom_done(&m, s, ss); /* 60% of N(0, 0.25) */
    NN_TEST_CHECK(fabs(m.std / (0.5 * sqrt(0.6)) - 1) < 0.05, "sparse: std %g", m.std);
    nn_init_sparse(t, 1.0f, 0.5f, r);
    for (ok = 1, i = 0; i < 3000; i++) ok &= t->data[i] == 0.0f;
    NN_TEST_CHECK(ok, "sparse(1): all zeros");
    nn_init_sparse(t, 0.0f, 0.5f, r);
    for (ok = 1, i = 0; i < 3000; i++) ok &= t->data[i] != 0.0f;
    NN_TEST_CHECK(ok, "sparse(0): no zeros");
    nn_tensor_free(t);
}

/* ---- the forward hook ---- */
static int hook_seen[8], nseen;
static nn_module *hook_mods[8];
static void count_hook(nn_module *m, nn_tensor *x, nn_tensor *y, void *user) {
    (void)x;
    if (nseen < 8) hook_mods[nseen] = m;
    hook_seen[nseen < 8 ? nseen : 7] = (int)y->numel;
    nseen++;
    (*(int *)user)++;
}
static void fwd_hook(void) {
    nn_graph *g = nn_graph_new();
    nn_module *net = nn_sequential(nn_linear(3, 5), nn_relu(), nn_linear(5, 2), NULL);
    int calls = 0;
    void *pu = (void *)&calls;
    nn_forward_hook prev = nn_set_forward_hook(count_hook, &calls, &pu);
    nn_forward(net, nn_randn(g, NN_SHAPE(4, 3)));
    NN_TEST_CHECK(prev == NULL && pu == NULL, "no hook before");
    NN_TEST_CHECK(calls == 4 && hook_mods[0] == nn_child(net, "0") && hook_mods[2] == nn_child(net, "2") &&
                  hook_mods[3] == net && hook_seen[0] == 20 && hook_seen[3] == 8,
                  "hook: %d calls, children in order then the root", calls);
    prev = nn_set_forward_hook(NULL, NULL, &pu);
    NN_TEST_CHECK(prev == count_hook && pu == &calls, "the previous hook and its user come back");
    nn_forward(net, nn_randn(g, NN_SHAPE(4, 3)));
    NN_TEST_CHECK(calls == 4, "removed hook is not called");
    nn_module_free(net);
    nn_graph_free(g);
}

/* ---- nn_init_apply ---- */
static nn_tensor *halve(nn_tensor *t, void *user, nn_rng *r) {
    size_t i;
    (void)r;
    for (i = 0; i < t->numel; i++) t->data[i] *= 0.5f;
    (*(int *)user)++;
    return t;
}
static void apply(nn_rng *r) {
    nn_module *net = nn_sequential(nn_linear(4, 3), nn_relu(), nn_sequential(nn_linear(3, 2), NULL), NULL);
    nn_init_rule rule;
    int i, ok, n, calls = 0;
    nn_tensor *w0 = nn_param(net, "0.weight"), *b0 = nn_param(net, "0.bias"), *w2 = nn_param(net, "2.0.weight"),
              *b2 = nn_param(net, "2.0.bias");
    memset(&rule, 0, sizeof rule);
    rule.kind = NN_INIT_CONSTANT;
    rule.value = 0.5f;
    n = nn_init_apply(net, "*.bias", rule, r);
    for (ok = 1, i = 0; i < 3; i++) ok &= b0->data[i] == 0.5f;
    ok &= b2->data[0] == 0.5f && b2->data[1] == 0.5f && w0->data[0] != 0.5f;
    NN_TEST_CHECK(n == 2 && ok, "\"*.bias\": %d matched, biases set, weights not", n);
    rule.kind = NN_INIT_ZEROS;
    n = nn_init_apply(net, "?.weight", rule, r);
    NN_TEST_CHECK(n == 1 && w0->data[0] == 0.0f && w2->data[0] != 0.0f, "\"?.weight\": only 0.weight (%d)", n);
    rule.kind = NN_INIT_ONES;
    n = nn_init_apply(net, "2.*", rule, r);
    NN_TEST_CHECK(n == 2 && w2->data[5] == 1.0f && b2->data[1] == 1.0f && b0->data[0] == 0.5f, "\"2.*\": %d", n);
    NN_TEST_CHECK(nn_init_apply(net, "*.running_mean", rule, r) == 0 && nn_init_apply(net, "weight", rule, r) == 0,
                  "patterns that match nothing: 0");
    memset(&rule, 0, sizeof rule);
    rule.kind = NN_INIT_XAVIER_UNIFORM; /* gain 0 means 1 */
    n = nn_init_apply(net, "*weight", rule, r);
    for (ok = 1, i = 0; i < 12; i++) ok &= fabsf(w0->data[i]) <= sqrtf(6.0f / 7.0f) && w0->data[i] != 0.0f;
    NN_TEST_CHECK(n == 2 && ok, "xavier_uniform on \"*weight\": within sqrt(6/7)");
    rule.kind = NN_INIT_CUSTOM;
    rule.fn = halve;
    rule.user = &calls;
    {
        float before = w2->data[1];
        n = nn_init_apply(net, "*", rule, r);
        NN_TEST_CHECK(n == 4 && calls == 4 && w2->data[1] == 0.5f * before, "custom rule on \"*\": %d", n);
    }
    memset(&rule, 0, sizeof rule);
    rule.kind = NN_INIT_EYE;
    n = nn_init_apply(net, "*", rule, r);
    NN_TEST_CHECK(n == -1 && nn_test_msgs == 2 && strstr(nn_test_msg, "\"0.bias\"") && strstr(nn_test_msg, "[3]"),
                  "eye on a bias: -1, reports naming it: %d, \"%s\"", n, nn_test_msg);
    nn_test_msgs = 0;
    rule.kind = (nn_init_kind)99;
    NN_TEST_CHECK(nn_init_apply(net, "*", rule, r) == -1, "unknown kind: -1");
    nn_test_msgs = 0;
    nn_module_free(net);
}

/* ---- LSUV ---- */
typedef struct capture {
    nn_module *target;
    double mean, var;
} capture;
static void cap_hook(nn_module *m, nn_tensor *x, nn_tensor *y, void *user) {
    capture *c = (capture *)user;
    size_t i;
    double s = 0, ss = 0;
    (void)x;
    if (m != c->target) return;
    for (i = 0; i < y->numel; i++) s += (double)y->data[i];
    c->mean = s / (double)y->numel;
    for (i = 0; i < y->numel; i++) ss += ((double)y->data[i] - c->mean) * ((double)y->data[i] - c->mean);
    c->var = ss / (double)(y->numel - 1);
}
static void lsuv_case(nn_module *net, nn_tensor *batch, int zero_mean, const char *const *names, int nl) {
    nn_lsuv_opts o;
    nn_lsuv_result res[8];
    nn_graph *g = nn_graph_new();
    int n, i, ok = 1;
    memset(&o, 0, sizeof o);
    o.zero_mean = zero_mean;
    o.tol = 0.02f;
    nn_train_mode(net, 1);
    n = nn_lsuv(net, batch, o, NULL, res, 8);
    NN_TEST_CHECK(n == nl, "lsuv: %d layers, want %d", n, nl);
    NN_TEST_CHECK(nn_is_training(net) && nn_set_forward_hook(NULL, NULL, NULL) == NULL,
                  "lsuv restores the training flag and the hook");
    for (i = 0; i < n && i < nl; i++) {
        capture c;
        memset(&c, 0, sizeof c);
        c.target = nn_child(net, names[i]);
        nn_set_forward_hook(cap_hook, &c, NULL);
        nn_graph_reset(g);
        nn_forward(net, nn_tensor_from(g, batch->data, nn_shape_of(batch)));
        nn_set_forward_hook(NULL, NULL, NULL);
        ok = !strcmp(res[i].name, names[i]) && res[i].converged && res[i].iterations >= 1 &&
             fabs(c.var - 1.0) < 0.02 && (!zero_mean || fabs(c.mean) < 0.02) &&
             fabs((double)res[i].var_after - c.var) < 1e-4;
        NN_TEST_CHECK(ok, "lsuv%s layer %s (%s): var %.5f mean %.5f (reported %.5f, before %.4g, %d its, "
                      "scale %.4g)", zero_mean ? " zero_mean" : "", res[i].name, res[i].type, c.var, c.mean,
                      (double)res[i].var_after, (double)res[i].var_before, res[i].iterations,
                      (double)res[i].scale);
    }
    nn_graph_free(g);
}
static void lsuv(void) {
    const char *mlp_names[] = {"0", "2", "4"}, *cnn_names[] = {"0", "3"};
    nn_graph *g = nn_graph_new();
    nn_tensor *x, *xi;
    nn_module *mlp = nn_sequential(nn_linear(8, 16), nn_tanh(), nn_linear(16, 16), nn_tanh(), nn_linear(16, 4),
                                   NULL),
              *cnn;
    nn_conv_opts co;
    nn_set_current_graph(NULL);
    x = nn_randn(NULL, NN_SHAPE(64, 8));
    { size_t i; for (i = 0; i < x->numel; i++) x->data[i] = 3.0f * x->data[i] + 1.0f; }
    lsuv_case(mlp, x, 0, mlp_names, 3);
    lsuv_case(mlp, x, 1, mlp_names, 3);
    {   /* the pre-init: orthonormal, so the first weight's rows are orthogonal up to the scale */
        nn_lsuv_opts o;
        nn_lsuv_result res[3];
        nn_tensor *w = nn_param(mlp, "2.weight"), *b = nn_param(mlp, "2.bias");
        double d01 = 0, d00 = 0, d11 = 0;
        int k;
        memset(&o, 0, sizeof o);
        NN_TEST_CHECK(nn_lsuv(mlp, x, o, NULL, res, 1) == 3 && res[0].converged, "lsuv: max_out 1");
        for (k = 0; k < 16; k++) {
            d01 += (double)w->data[k] * (double)w->data[16 + k];
            d00 += (double)w->data[k] * (double)w->data[k];
            d11 += (double)w->data[16 + k] * (double)w->data[16 + k];
        }
        NN_TEST_CHECK(fabs(d01) < 1e-5 * d00 && fabs(d00 / d11 - 1) < 1e-5 && b->data[3] == 0.0f,
                      "lsuv's pre-init: orthogonal rows (%.3g, %.3g vs %.3g), zero biases", d01, d00, d11);
    }
    memset(&co, 0, sizeof co);
    co.kernel = 3;
    co.padding = 1;
    cnn = nn_sequential(nn_conv2d(2, 4, co), nn_relu(), nn_flatten(), nn_linear(4 * 5 * 5, 3), NULL);
    xi = nn_randn(NULL, NN_SHAPE(6, 2, 5, 5));
    lsuv_case(cnn, xi, 1, cnn_names, 2);
    nn_tensor_free(x);
    nn_tensor_free(xi);
    nn_module_free(mlp);
    nn_module_free(cnn);
    nn_graph_free(g);
}

/* ---- Fixup: an MLP residual block with the scalars the paper adds ---- */
typedef struct fixup_block {
    nn_tensor *b1a, *b1b, *b2a, *b2b, *scale;
} fixup_block;
static nn_tensor *fixup_forward(nn_module *m, nn_tensor *x) {
    fixup_block *st = (fixup_block *)m->user;
    nn_tensor *h = nn_forward(m->children[0], nn_add(x, st->b1a));
    h = nn_relu_op(nn_add(h, st->b1b));
    h = nn_forward(m->children[1], nn_add(h, st->b2a));
    h = nn_add(nn_mul(h, st->scale), st->b2b);
    return nn_relu_op(nn_add(x, h));
}
static void fixup_destroy(nn_module *m) { free(m->user); }
static nn_module *fixup_block_new(int features) {
    nn_module *m = nn_module_new("FixupBlock", fixup_forward);
    fixup_block *st = (fixup_block *)calloc(1, sizeof *st);
    m->user = st;
    m->destroy = fixup_destroy;
    nn_module_add_child(m, "fc1", nn_linear_nobias(features, features));
    nn_module_add_child(m, "fc2", nn_linear_nobias(features, features));
    st->b1a = nn_module_add_param(m, "bias1a", nn_full(NULL, NN_SHAPE(1), 0.3f));
    st->b1b = nn_module_add_param(m, "bias1b", nn_full(NULL, NN_SHAPE(1), 0.3f));
    st->b2a = nn_module_add_param(m, "bias2a", nn_full(NULL, NN_SHAPE(1), 0.3f));
    st->b2b = nn_module_add_param(m, "bias2b", nn_full(NULL, NN_SHAPE(1), 0.3f));
    st->scale = nn_module_add_param(m, "scale", nn_full(NULL, NN_SHAPE(1), 0.3f));
    return m;
}
static void fixup(void) {
    enum { F = 32, L = 3 };
    nn_module *net = nn_sequential(nn_linear(6, F), fixup_block_new(F), fixup_block_new(F), fixup_block_new(F),
                                   nn_linear(F, 3), NULL);
    static const char *w[L][2] = {{"1.fc1.weight", "1.fc2.weight"}, {"2.fc1.weight", "2.fc2.weight"},
                                  {"3.fc1.weight", "3.fc2.weight"}};
    static const char *bs[L][4] = {{"1.bias1a", "1.bias1b", "1.bias2a", "1.bias2b"},
                                   {"2.bias1a", "2.bias1b", "2.bias2a", "2.bias2b"},
                                   {"3.bias1a", "3.bias1b", "3.bias2a", "3.bias2b"}};
    static const char *sc[L] = {"1.scale", "2.scale", "3.scale"};
    nn_fixup_branch br[L];
    nn_init_opts he;
    nn_rng *r = nn_rng_new(5), *r2 = nn_rng_new(5);
    nn_graph *g = nn_graph_new();
    nn_tensor *stem0 = nn_param(net, "0.weight"), *y, *loss, *ref = nn_zeros(NULL, NN_SHAPE(F, F));
    float stem_before = stem0->data[0], f = powf((float)L, -0.5f); /* m = 2: L^(-1/2) */
    int i, j, ok;
    double ss = 0.0;
    memset(&he, 0, sizeof he);
    he.mode = NN_FAN_OUT;
    for (i = 0; i < L; i++) {
        br[i].weights = w[i];
        br[i].m = 2;
        br[i].biases = bs[i];
        br[i].nbiases = 4;
        br[i].scale = sc[i];
    }
    NN_TEST_CHECK(nn_fixup(net, br, L, "4", he, r) == NN_OK, "nn_fixup: NN_OK");
    for (ok = 1, i = 0; i < L; i++) {
        nn_tensor *w1 = nn_param(net, w[i][0]), *w2 = nn_param(net, w[i][1]);
        nn_init_kaiming_normal(ref, he, r2); /* the same draws, in the same order */
        for (j = 0; j < F * F; j++) {
            ok &= w1->data[j] == ref->data[j] * f && w2->data[j] == 0.0f;
            ss += (double)w1->data[j] * (double)w1->data[j];
        }
        for (j = 0; j < 4; j++) ok &= nn_param(net, bs[i][j])->data[0] == 0.0f;
        ok &= nn_param(net, sc[i])->data[0] == 1.0f;
    }
    NN_TEST_CHECK(ok, "fixup: first layers He * L^-1/2 exactly, last layers 0, scalar biases 0, multipliers 1");
    /* std sqrt(2/fan_out) / sqrt(3) over 3 * 1024 draws: within 5 standard errors */
    NN_TEST_CHECK(fabs(sqrt(ss / (L * F * F)) / (sqrt(2.0 / F) * (double)f) - 1) < 5 * sqrt(0.5 / (L * F * F)),
                  "fixup: std %.5g, want %.5g", sqrt(ss / (L * F * F)), sqrt(2.0 / F) * (double)f);
    for (ok = 1, j = 0; j < 3 * F; j++) ok &= nn_param(net, "4.weight")->data[j] == 0.0f;
    for (j = 0; j < 3; j++) ok &= nn_param(net, "4.bias")->data[j] == 0.0f;
    NN_TEST_CHECK(ok && stem0->data[0] == stem_before, "fixup: classifier 0, stem untouched");
    /* at init the network outputs 0, and the classifier still learns */
    {
        nn_tensor *x = nn_randn(g, NN_SHAPE(5, 6)), *tgt = nn_ones(g, NN_SHAPE(5, 3));
        y = nn_forward(net, x);
        for (ok = 1, j = 0; j < 15; j++) ok &= y->data[j] == 0.0f;
        loss = nn_mse(y, tgt);
        nn_backward(loss);
        NN_TEST_CHECK(ok && nn_grad(nn_param(net, "4.weight")) && nn_grad(nn_param(net, "4.weight"))[0] != 0.0f,
                      "fixup net: output 0 at init, classifier gradient nonzero");
    }
    /* misuse: a name that is not there; nothing changed */
    br[1].weights = w[0];
    br[2].scale = "3.nope";
    NN_TEST_CHECK(nn_fixup(net, br, L, "4", he, r) == NN_ERR_ARG, "bad name: NN_ERR_ARG");
    reported("fixup bad name", "nn_fixup: multiplier \"3.nope\"", "Sequential");
    br[2].scale = sc[2];
    NN_TEST_CHECK(nn_fixup(net, br, L, "9", he, r) == NN_ERR_ARG, "bad classifier");
    reported("fixup bad classifier", "classifier \"9\"", NULL);
    nn_tensor_free(ref);
    nn_rng_free(r);
    nn_rng_free(r2);
    nn_graph_free(g);
    nn_module_free(net);
}

/* ---- misuse ---- */
static void misuse(void) {
    nn_tensor *v = nn_zeros(NULL, NN_SHAPE(5)), *m = nn_zeros(NULL, NN_SHAPE(4, 6)),
              *c = nn_zeros(NULL, NN_SHAPE(6, 2, 3, 3));
    nn_init_opts o;
    int fi = 0;
    memset(&o, 0, sizeof o);
    NN_TEST_CHECK(nn_calculate_gain("swish", 0.0f) == 0.0f, "unknown gain: 0");
    reported("calculate_gain(swish)", "nn_calculate_gain: unsupported nonlinearity \"swish\"", NULL);
    o.mode = (nn_fan_mode)2;
    NN_TEST_CHECK(nn_init_kaiming_uniform(m, o, NULL) == NULL, "bad mode: NULL");
    reported("bad fan mode", "nn_init_kaiming_uniform: mode 2", NULL);
    o.mode = NN_FAN_IN;
    o.nonlinearity = "softmax";
    NN_TEST_CHECK(nn_init_kaiming_normal(m, o, NULL) == NULL, "bad nonlinearity: NULL");
    reported("kaiming bad nonlinearity", "nn_init_kaiming_normal: unsupported nonlinearity \"softmax\"", NULL);
    NN_TEST_CHECK(nn_init_sparse(m, 1.5f, 0.01f, NULL) == NULL, "sparsity 1.5");
    reported("sparsity 1.5", "nn_init_sparse: needs sparsity in [0, 1]", "sparsity=1.5");
    NN_TEST_CHECK(nn_init_sparse(m, -0.1f, 0.01f, NULL) == NULL, "sparsity -0.1");
    reported("sparsity -0.1", "nn_init_sparse", "sparsity=-0.1");
    NN_TEST_CHECK(nn_init_sparse(c, 0.1f, 0.01f, NULL) == NULL, "sparse 4-D");
    reported("sparse 4-D", "nn_init_sparse: only 2-D", "[6,2,3,3]");
    NN_TEST_CHECK(nn_init_orthogonal(v, 1.0f, NULL) == NULL, "orthogonal 1-D");
    reported("orthogonal 1-D", "nn_init_orthogonal: only tensors with 2 or more dimensions", "[5]");
    NN_TEST_CHECK(nn_init_xavier_normal(v, 1.0f, NULL) == NULL, "xavier 1-D");
    reported("xavier 1-D", "nn_init_xavier_normal: fan in and fan out can not be computed", "[5]");
    NN_TEST_CHECK(nn_calculate_fan(v, &fi, NULL) == -1, "fan 1-D");
    reported("fan 1-D", "nn_calculate_fan", "[5]");
    NN_TEST_CHECK(nn_init_eye(c) == NULL, "eye 4-D");
    reported("eye 4-D", "nn_init_eye: needs a 2-D tensor", "[6,2,3,3]");
    NN_TEST_CHECK(nn_init_dirac(c, 4) == NULL, "dirac groups 4");
    reported("dirac groups", "nn_init_dirac: dim 0 of [6,2,3,3] must be divisible by groups=4", NULL);
    NN_TEST_CHECK(nn_init_dirac(m, 1) == NULL, "dirac 2-D");
    reported("dirac 2-D", "nn_init_dirac: needs a 3-, 4- or 5-D tensor", "[4,6]");
    NN_TEST_CHECK(nn_init_uniform(m, 1.0f, 0.0f, NULL) == NULL, "uniform a > b");
    reported("uniform a > b", "nn_init_uniform: needs a <= b", "a=1 b=0");
    NN_TEST_CHECK(nn_init_normal(m, 0.0f, -1.0f, NULL) == NULL, "normal std < 0");
    reported("normal std<0", "nn_init_normal: needs std >= 0", "-1");
    NN_TEST_CHECK(nn_init_trunc_normal(m, 0.0f, 1.0f, 2.0f, -2.0f, NULL) == NULL, "trunc a >= b");
    reported("trunc a>=b", "nn_init_trunc_normal: needs std >= 0 and a < b", "a=2 b=-2");
    NN_TEST_CHECK(nn_init_zeros(NULL) == NULL, "zeros NULL");
    reported("zeros NULL", "nn_init_constant: NULL tensor", NULL);
    {
        nn_lsuv_opts lo;
        memset(&lo, 0, sizeof lo);
        NN_TEST_CHECK(nn_lsuv(NULL, m, lo, NULL, NULL, 0) == -1, "lsuv without a module: -1");
        reported("lsuv NULL module", "nn_lsuv: needs a module", "[4,6]");
    }
    nn_tensor_free(v);
    nn_tensor_free(m);
    nn_tensor_free(c);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    nn_rng *r = nn_rng_new(1234);
    double t0 = nn_time();
    nn_set_error_hook(nn_test_record_hook, NULL);
    golden(dir, r);
    simple(r);
    orthogonal();
    sparse(r);
    fwd_hook();
    apply(r);
    lsuv();
    fixup();
    misuse();
    NN_TEST_CHECK(nn_test_msgs == 0, "no unexpected misuse reports (%d, last \"%s\")", nn_test_msgs, nn_test_msg);
    nn_rng_free(r);
    printf("test_init: %.3f s\n", nn_time() - t0);
    return nn_test_summary("test_init");
}
