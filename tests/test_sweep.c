/* Bad input never crashes: extreme values (0, negative, 1, huge, INT_MAX,
   INT_MIN, NaN and infinities for floats) through every option of every op,
   module constructor, optimizer, schedule and loader, every shape argument,
   and nn_sgemm's sizes and leading dimensions.  Each call either works (no
   report) or fails with one misuse report through the recording hook (the
   message starts with the public function called, or "nn_forward(Type): "
   inside a module's forward) or with a status; the sanitizer builds catch
   crashes and overflows.  Table driven: one row per public function and
   argument slot. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#define NN_TEST_OOM_RETURNS_NULL /* huge requests come back NULL under ASan too */
#include "harness.h"
#include <float.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

static const int IV[] = {0, -1, 1, 2, 7, INT_MAX, INT_MIN, INT_MAX / 2 + 1, -INT_MAX};
#define NIV ((int)(sizeof IV / sizeof IV[0]))
static float FV[11];
#define NFV 11
static void init_floats(void) {
    FV[0] = 0.0f; FV[1] = -1.0f; FV[2] = 1.0f; FV[3] = 0.5f; FV[4] = 1e-30f; FV[5] = 1e30f;
    FV[6] = FLT_MAX; FV[7] = -FLT_MAX; FV[8] = NAN; FV[9] = INFINITY; FV[10] = -INFINITY;
}

/* Judge one call of `fn`: ok says it produced its result.  A failure must be
   one report naming fn (possibly after "nn_forward(Type): ") or a status
   message; a success must not report. */
static int judged = 0;
static void judge(const char *fn, int ok, const char *what, double v) {
    judged++;
    if (ok) {
        NN_TEST_CHECK(nn_test_msgs == 0, "%s(%s=%g): worked but reported \"%s\"", fn, what, v, nn_test_msg);
    } else if (nn_test_msgs) {
        const char *m = nn_test_msg;
        size_t n = strlen(fn);
        int in_forward = strncmp(m, "nn_forward(", 11) == 0 && strstr(m, "): ") != NULL;
        if (in_forward && strcmp(fn, "nn_forward") == 0) m = "nn_forward:"; /* a module's forward */
        else if (in_forward) m = strstr(m, "): ") + 3;                     /* the op inside it */
        NN_TEST_CHECK(nn_test_msgs == 1 && strncmp(m, fn, n) == 0 && m[n] == ':',
                      "%s(%s=%g): %d reports, message \"%s\" does not start with \"%s:\"", fn, what, v,
                      nn_test_msgs, nn_test_msg, fn);
    } else {
        NN_TEST_CHECK(nn_error_string()[0] != 0, "%s(%s=%g): failed silently", fn, what, v);
    }
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

static nn_graph *G;
static nn_tensor *T(int a, int b, int c, int d, int nd) {
    nn_tensor *t;
    switch (nd) {
    case 1: t = nn_randn(G, NN_SHAPE(a)); break;
    case 2: t = nn_randn(G, NN_SHAPE(a, b)); break;
    case 3: t = nn_randn(G, NN_SHAPE(a, b, c)); break;
    default: t = nn_randn(G, NN_SHAPE(a, b, c, d)); break;
    }
    return t;
}

/* ---- ops with int arguments: (slot, value) -> result ---- */

typedef struct { const char *fn; int slots; nn_tensor *(*run)(int slot, int v); } int_op;

static nn_tensor *r_transpose(int s, int v) { return nn_transpose(T(2, 3, 4, 0, 3), s ? 0 : v, s ? v : 1); }
static nn_tensor *r_sum_axis(int s, int v) { return nn_sum_axis(T(2, 3, 0, 0, 2), s ? 0 : v, s ? v : 0); }
static nn_tensor *r_mean_axis(int s, int v) { return nn_mean_axis(T(2, 3, 0, 0, 2), s ? 1 : v, s ? v : 1); }
static nn_tensor *r_max_axis(int s, int v) { return nn_max_axis(T(2, 3, 0, 0, 2), s ? -1 : v, s ? v : 0); }
static nn_tensor *r_softmax(int s, int v) { (void)s; return nn_softmax(T(2, 3, 0, 0, 2), v); }
static nn_tensor *r_log_softmax(int s, int v) { (void)s; return nn_log_softmax(T(2, 3, 0, 0, 2), v); }
static nn_tensor *r_slice(int s, int v) {
    nn_tensor *a = T(4, 5, 0, 0, 2);
    return nn_slice(a, s == 0 ? v : 1, s == 1 ? v : 1, s == 2 ? v : 3);
}
static nn_tensor *r_concat(int s, int v) {
    nn_tensor *ts[3];
    ts[0] = T(2, 3, 0, 0, 2); ts[1] = T(2, 3, 0, 0, 2); ts[2] = T(2, 3, 0, 0, 2);
    if (s == 0 && v > 3) { /* (a count beyond the array is the caller's bug): a NULL entry */
        ts[1] = NULL;
        return nn_concat(ts, 3, 0);
    }
    if (s == 0) return nn_concat(ts, v, 0);
    return nn_concat(ts, 3, v);
}
static nn_tensor *r_reshape(int s, int v) {
    nn_tensor *a = T(2, 3, 4, 0, 3);
    if (s == 0) return nn_reshape(a, NN_SHAPE(v, -1));
    if (s == 1) return nn_reshape(a, NN_SHAPE(v, v));
    return nn_reshape(a, NN_SHAPE(-1, -1, v));
}
static nn_tensor *r_upsample(int s, int v) { (void)s; return nn_upsample_nearest2d_op(T(1, 2, 2, 2, 4), v); }

static const int_op INT_OPS[] = {
    {"nn_transpose", 2, r_transpose},
    {"nn_sum_axis", 2, r_sum_axis},
    {"nn_mean_axis", 2, r_mean_axis},
    {"nn_max_axis", 2, r_max_axis},
    {"nn_softmax", 1, r_softmax},
    {"nn_log_softmax", 1, r_log_softmax},
    {"nn_slice", 3, r_slice},
    {"nn_concat", 2, r_concat},
    {"nn_reshape", 3, r_reshape},
    {"nn_upsample_nearest2d_op", 1, r_upsample},
};

/* ---- ops with float arguments ---- */

typedef struct { const char *fn; int slots; nn_tensor *(*run)(int slot, float v); } float_op;

static nn_tensor *f_add_scalar(int s, float v) { (void)s; return nn_add_scalar(T(2, 3, 0, 0, 2), v); }
static nn_tensor *f_sub_scalar(int s, float v) { (void)s; return nn_sub_scalar(T(2, 3, 0, 0, 2), v); }
static nn_tensor *f_mul_scalar(int s, float v) { (void)s; return nn_mul_scalar(T(2, 3, 0, 0, 2), v); }
static nn_tensor *f_div_scalar(int s, float v) { (void)s; return nn_div_scalar(T(2, 3, 0, 0, 2), v); }
static nn_tensor *f_pow(int s, float v) { (void)s; return nn_pow(T(2, 3, 0, 0, 2), v); }
static nn_tensor *f_dropout(int s, float v) { return nn_dropout_op(T(2, 3, 0, 0, 2), v, s); }
static nn_tensor *f_leaky(int s, float v) { (void)s; return nn_leaky_relu_op(T(2, 3, 0, 0, 2), v); }
static nn_tensor *f_elu(int s, float v) { (void)s; return nn_elu_op(T(2, 3, 0, 0, 2), v); }
static nn_tensor *f_bn(int s, float v) {
    nn_tensor *rm = nn_zeros(G, NN_SHAPE(3)), *rv = nn_ones(G, NN_SHAPE(3));
    return nn_batch_norm_op(T(4, 3, 0, 0, 2), rm, rv, NULL, NULL, s < 2, s & 1 ? v : 0.1f,
                            s & 1 ? 1e-5f : v);
}
static nn_tensor *f_ce(int s, float v) {
    static const int lab[4] = {0, 1, 2, 1};
    nn_ce_opts o;
    memset(&o, 0, sizeof o);
    o.label_smoothing = v;
    if (s) o.reduction = (nn_reduction)(int)(v == v && v > -1e9f && v < 1e9f ? v : 7.0f);
    return nn_cross_entropy(T(4, 3, 0, 0, 2), lab, o);
}
static nn_tensor *f_full(int s, float v) {
    (void)s;
    return nn_full(G, NN_SHAPE(2, 2), v);
}
static nn_tensor *f_rand(int s, float v) { return nn_rand(G, NN_SHAPE(2, 2), s ? 0.0f : v, s ? v : 1.0f); }

static const float_op FLOAT_OPS[] = {
    {"nn_add_scalar", 1, f_add_scalar},
    {"nn_sub_scalar", 1, f_sub_scalar},
    {"nn_mul_scalar", 1, f_mul_scalar},
    {"nn_div_scalar", 1, f_div_scalar},
    {"nn_pow", 1, f_pow},
    {"nn_dropout_op", 2, f_dropout},
    {"nn_leaky_relu_op", 1, f_leaky},
    {"nn_elu_op", 1, f_elu},
    {"nn_batch_norm_op", 4, f_bn},
    {"nn_cross_entropy", 2, f_ce},
    {"nn_full", 1, f_full},
    {"nn_rand", 2, f_rand},
};

/* ---- shape arguments: every dimension of every operand ---- */

typedef struct { const char *fn; nn_tensor *(*run)(nn_tensor *a, nn_tensor *b); nn_shape a, b; } shape_op;

static nn_tensor *s_add(nn_tensor *a, nn_tensor *b) { return nn_add(a, b); }
static nn_tensor *s_mul(nn_tensor *a, nn_tensor *b) { return nn_mul(a, b); }
static nn_tensor *s_matmul(nn_tensor *a, nn_tensor *b) { return nn_matmul(a, b); }
static nn_tensor *s_linear(nn_tensor *a, nn_tensor *b) { return nn_linear_op(a, b, NULL); }
static nn_tensor *s_mse(nn_tensor *a, nn_tensor *b) { return nn_mse(a, b); }
static nn_tensor *s_conv2d(nn_tensor *a, nn_tensor *b) {
    nn_conv_opts o;
    memset(&o, 0, sizeof o);
    return nn_conv2d_op(a, b, NULL, o);
}
static nn_tensor *s_conv1d(nn_tensor *a, nn_tensor *b) {
    nn_conv_opts o;
    memset(&o, 0, sizeof o);
    return nn_conv1d_op(a, b, NULL, o);
}
static nn_tensor *s_convt(nn_tensor *a, nn_tensor *b) {
    nn_conv_opts o;
    memset(&o, 0, sizeof o);
    return nn_conv_transpose2d_op(a, b, NULL, o);
}
static nn_tensor *s_maxpool2d(nn_tensor *a, nn_tensor *b) {
    nn_pool_opts o;
    (void)b;
    memset(&o, 0, sizeof o);
    o.kernel = 2;
    return nn_maxpool2d_op(a, o);
}
static nn_tensor *s_avgpool1d(nn_tensor *a, nn_tensor *b) {
    nn_pool_opts o;
    (void)b;
    memset(&o, 0, sizeof o);
    o.kernel = 2;
    return nn_avgpool1d_op(a, o);
}
static nn_tensor *s_gap(nn_tensor *a, nn_tensor *b) { (void)b; return nn_global_avgpool_op(a); }
static nn_tensor *s_upsample(nn_tensor *a, nn_tensor *b) { (void)b; return nn_upsample_nearest2d_op(a, 2); }
static nn_tensor *s_bn(nn_tensor *a, nn_tensor *b) { (void)b; return nn_batch_norm_op(a, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f); }
static nn_tensor *s_sum(nn_tensor *a, nn_tensor *b) { (void)b; return nn_sum(a); }
static nn_tensor *s_softmax(nn_tensor *a, nn_tensor *b) { (void)b; return nn_softmax(a, -1); }
static nn_tensor *s_relu(nn_tensor *a, nn_tensor *b) { (void)b; return nn_relu_op(a); }
static nn_tensor *s_flatten(nn_tensor *a, nn_tensor *b) { (void)b; return nn_flatten_batch(a); }
static nn_tensor *s_ce(nn_tensor *a, nn_tensor *b) {
    static const int lab[8] = {0, 1, 0, 1, 0, 1, 0, 1};
    nn_ce_opts o;
    nn_tensor *x = a;
    (void)b;
    memset(&o, 0, sizeof o);
    if (x && x->ndim == 2 && x->shape[0] > 8) return nn_cross_entropy(NULL, lab, o); /* labels too short */
    return nn_cross_entropy(x, lab, o);
}

static shape_op SHAPE_OPS[19];
static int nshape_ops = 0;
static void add_shape_op(const char *fn, nn_tensor *(*run)(nn_tensor *, nn_tensor *), nn_shape a, nn_shape b) {
    SHAPE_OPS[nshape_ops].fn = fn;
    SHAPE_OPS[nshape_ops].run = run;
    SHAPE_OPS[nshape_ops].a = a;
    SHAPE_OPS[nshape_ops].b = b;
    nshape_ops++;
}
static void init_shape_ops(void) {
    add_shape_op("nn_add", s_add, NN_SHAPE(2, 3), NN_SHAPE(2, 3));
    add_shape_op("nn_mul", s_mul, NN_SHAPE(2, 1, 3), NN_SHAPE(4, 1));
    add_shape_op("nn_matmul", s_matmul, NN_SHAPE(2, 3), NN_SHAPE(3, 4));
    add_shape_op("nn_linear_op", s_linear, NN_SHAPE(2, 3), NN_SHAPE(4, 3));
    add_shape_op("nn_mse", s_mse, NN_SHAPE(2, 3), NN_SHAPE(2, 3));
    add_shape_op("nn_conv2d_op", s_conv2d, NN_SHAPE(1, 2, 5, 5), NN_SHAPE(3, 2, 3, 3));
    add_shape_op("nn_conv1d_op", s_conv1d, NN_SHAPE(1, 2, 5), NN_SHAPE(3, 2, 3));
    add_shape_op("nn_conv_transpose2d_op", s_convt, NN_SHAPE(1, 2, 3, 3), NN_SHAPE(2, 3, 3, 3));
    add_shape_op("nn_maxpool2d_op", s_maxpool2d, NN_SHAPE(1, 2, 4, 4), NN_SHAPE(1));
    add_shape_op("nn_avgpool1d_op", s_avgpool1d, NN_SHAPE(1, 2, 4), NN_SHAPE(1));
    add_shape_op("nn_global_avgpool_op", s_gap, NN_SHAPE(1, 2, 4, 4), NN_SHAPE(1));
    add_shape_op("nn_upsample_nearest2d_op", s_upsample, NN_SHAPE(1, 2, 3, 3), NN_SHAPE(1));
    add_shape_op("nn_batch_norm_op", s_bn, NN_SHAPE(4, 2, 3), NN_SHAPE(1));
    add_shape_op("nn_sum", s_sum, NN_SHAPE(2, 3), NN_SHAPE(1));
    add_shape_op("nn_softmax", s_softmax, NN_SHAPE(2, 3), NN_SHAPE(1));
    add_shape_op("nn_relu_op", s_relu, NN_SHAPE(2, 3), NN_SHAPE(1));
    add_shape_op("nn_flatten_batch", s_flatten, NN_SHAPE(2, 3, 4), NN_SHAPE(1));
    add_shape_op("nn_cross_entropy", s_ce, NN_SHAPE(4, 3), NN_SHAPE(1));
}

/* Sizes a dimension takes in the shape sweep: each alone (the others stay
   small: at most a few GB is never asked for), and huge ones next to a zero
   (an empty tensor with huge sides) or next to another huge one (numel
   overflows). */
static void shape_sweep(void) {
    static const int DV[] = {0, 1, -1, INT_MIN, INT_MAX, INT_MAX / 2 + 1, 65536};
    int i, k, j, variant;
    for (i = 0; i < nshape_ops; i++) {
        for (k = 0; k < 2; k++) {
            nn_shape base = k ? SHAPE_OPS[i].b : SHAPE_OPS[i].a;
            int d;
            if (k && SHAPE_OPS[i].b.ndim == 1 && SHAPE_OPS[i].b.d[0] == 1) continue; /* unused operand */
            for (d = 0; d < base.ndim; d++)
                for (j = 0; j < (int)(sizeof DV / sizeof DV[0]); j++)
                    for (variant = 0; variant < 3; variant++) {
                        nn_shape s = base, a = SHAPE_OPS[i].a, b = SHAPE_OPS[i].b;
                        nn_tensor *r;
                        int big = DV[j] > 1000;
                        s.d[d] = DV[j];
                        if (variant && !big) continue;
                        if (big && !variant && base.ndim > 1) continue; /* too much memory */
                        if (variant == 1) s.d[(d + 1) % base.ndim] = 0;
                        if (variant == 2) s.d[(d + 1) % base.ndim] = INT_MAX;
                        if (big && !variant && DV[j] > 65536) continue;
                        if (k) b = s;
                        else a = s;
                        nn_tensor *ta, *tb;
                        nn_graph_reset(G);
                        /* the creation function judges the shape first */
                        ta = nn_zeros(G, a);
                        tb = nn_zeros(G, b);
                        if (!ta || !tb) {
                            if (nn_test_msgs == 2) nn_test_msgs = 1; /* (both operands bad) */
                            judge("nn_zeros", 0, "dim", (double)DV[j]);
                            continue;
                        }
                        judge("nn_zeros", 1, "dim", (double)DV[j]);
                        r = SHAPE_OPS[i].run(ta, tb);
                        judge(SHAPE_OPS[i].fn, r != NULL, "dim", (double)DV[j]);
                    }
        }
    }
}

/* The creation functions and NN_SHAPE itself. */
static void creation_sweep(void) {
    int i, j;
    nn_tensor *r;
    for (i = 0; i < NIV; i++) {
        for (j = 0; j < NIV; j++) {
            nn_graph_reset(G);
            if ((double)IV[i] * (double)IV[j] > 1e8 && IV[i] > 0 && IV[j] > 0 &&
                (double)IV[i] * (double)IV[j] < 4e18)
                continue; /* a legal shape of GBs: not a bad input */
            r = nn_zeros(G, NN_SHAPE(IV[i], IV[j]));
            judge("nn_zeros", r != NULL, "dims", (double)IV[i] * 1e3 + IV[j]);
            if (IV[i] > 0 && IV[j] > 0 && (double)IV[i] * (double)IV[j] * (double)INT_MAX < 4.7e18)
                continue; /* a legal shape of GBs */
            r = nn_randn(G, NN_SHAPE(IV[i], IV[j], INT_MAX));
            judge("nn_randn", r != NULL, "dims", (double)IV[i] * 1e3 + IV[j]);
        }
        r = nn_ones(NULL, NN_SHAPE(IV[i], 3, 5, 7, 11, 13, 17, 19)); /* 8 dimensions */
        if (r) nn_tensor_free(r);
        else if (nn_test_msgs) judge("nn_ones", 0, "dim", (double)IV[i]);
        else judge("nn_ones", 0, "dim", (double)IV[i]);
        nn_test_msgs = 0;
    }
    {
        nn_shape s = nn_shape_make(NN_MAX_DIMS + 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1);
        judge("NN_SHAPE", 0, "ndim", (double)(NN_MAX_DIMS + 1));
        r = nn_zeros(G, s);
        judge("nn_zeros", r != NULL, "scalar after a bad NN_SHAPE", 0);
        s = nn_shape_make(-1);
        judge("NN_SHAPE", 0, "ndim", -1.0);
        r = nn_tensor_from(G, NULL, NN_SHAPE(2, 2));
        judge("nn_tensor_from", r != NULL, "NULL data", 0);
    }
}

/* ---- option structs: one field at a time through the extremes ---- */

typedef struct { size_t off; char type; } field;   /* 'i' int, 'f' float */
#define FI(S, m) {offsetof(S, m), 'i'}
#define FF(S, m) {offsetof(S, m), 'f'}

static void set_field(void *opts, field f, int iv, float fv) {
    if (f.type == 'i') memcpy((char *)opts + f.off, &iv, sizeof iv);
    else memcpy((char *)opts + f.off, &fv, sizeof fv);
}

/* Every value of every field: call(opts) judged under fn. */
static void sweep_fields(const char *fn, const field *fs, int nf, size_t size, const void *base,
                         int (*call)(const void *opts)) {
    unsigned char opts[256];
    int f, i;
    for (f = 0; f < nf; f++) {
        int n = fs[f].type == 'i' ? NIV : NFV;
        for (i = 0; i < n; i++) {
            int ok;
            memcpy(opts, base, size);
            set_field(opts, fs[f], IV[i % NIV], FV[i % NFV]);
            nn_graph_reset(G);
            ok = call(opts);
            judge(fn, ok, "field", fs[f].type == 'i' ? (double)IV[i % NIV] : (double)FV[i % NFV]);
        }
    }
}

/* conv: the op forms and the modules (and a forward of what was built) */
static const field CONV_F[] = {FI(nn_conv_opts, kernel), FI(nn_conv_opts, stride), FI(nn_conv_opts, padding),
                               FI(nn_conv_opts, dilation), FI(nn_conv_opts, groups), FI(nn_conv_opts, no_bias),
                               FI(nn_conv_opts, output_padding)};
static int c_conv2d_op(const void *p) {
    nn_conv_opts o = *(const nn_conv_opts *)p;
    return nn_conv2d_op(T(1, 2, 6, 6, 4), T(2, 2, 3, 3, 4), NULL, o) != NULL;
}
static int c_conv1d_op(const void *p) {
    nn_conv_opts o = *(const nn_conv_opts *)p;
    return nn_conv1d_op(T(1, 2, 6, 0, 3), T(2, 1, 3, 0, 3), NULL, o) != NULL;
}
static int c_convt_op(const void *p) {
    nn_conv_opts o = *(const nn_conv_opts *)p;
    return nn_conv_transpose2d_op(T(1, 2, 3, 3, 4), T(2, 2, 3, 3, 4), NULL, o) != NULL;
}
/* A module that was built must also run (or report) on a small input. */
static int module_runs(nn_module *m, nn_tensor *x) {
    nn_tensor *y;
    if (!m) return 0;
    y = nn_forward(m, x);
    if (!y) {
        /* judged here: the forward's report must name the module */
        NN_TEST_CHECK(nn_test_msgs == 1 && strncmp(nn_test_msg, "nn_forward(", 11) == 0,
                      "forward of %s: \"%s\"", m->type, nn_test_msg);
        nn_test_msgs = 0;
    }
    nn_module_free(m);
    return 1;
}
static int c_conv2d(const void *p) { return module_runs(nn_conv2d(2, 2, *(const nn_conv_opts *)p), T(1, 2, 6, 6, 4)); }
static int c_conv1d(const void *p) { return module_runs(nn_conv1d(2, 2, *(const nn_conv_opts *)p), T(1, 2, 6, 0, 3)); }
static int c_convt(const void *p) { return module_runs(nn_conv_transpose2d(2, 2, *(const nn_conv_opts *)p), T(1, 2, 3, 3, 4)); }

static const field POOL_F[] = {FI(nn_pool_opts, kernel), FI(nn_pool_opts, stride), FI(nn_pool_opts, padding)};
static int p_max2(const void *p) { return nn_maxpool2d_op(T(1, 2, 5, 5, 4), *(const nn_pool_opts *)p) != NULL; }
static int p_avg2(const void *p) { return nn_avgpool2d_op(T(1, 2, 5, 5, 4), *(const nn_pool_opts *)p) != NULL; }
static int p_max1(const void *p) { return nn_maxpool1d_op(T(1, 2, 5, 0, 3), *(const nn_pool_opts *)p) != NULL; }
static int p_avg1(const void *p) { return nn_avgpool1d_op(T(1, 2, 5, 0, 3), *(const nn_pool_opts *)p) != NULL; }
static int pm_max2(const void *p) { return module_runs(nn_maxpool2d(*(const nn_pool_opts *)p), T(1, 2, 5, 5, 4)); }
static int pm_avg2(const void *p) { return module_runs(nn_avgpool2d(*(const nn_pool_opts *)p), T(1, 2, 5, 5, 4)); }
static int pm_max1(const void *p) { return module_runs(nn_maxpool1d(*(const nn_pool_opts *)p), T(1, 2, 5, 0, 3)); }
static int pm_avg1(const void *p) { return module_runs(nn_avgpool1d(*(const nn_pool_opts *)p), T(1, 2, 5, 0, 3)); }

static void layer_option_sweep(void) {
    nn_conv_opts co;
    nn_pool_opts po;
    memset(&co, 0, sizeof co);
    co.kernel = 3;
    sweep_fields("nn_conv2d_op", CONV_F, 7, sizeof co, &co, c_conv2d_op);
    sweep_fields("nn_conv1d_op", CONV_F, 7, sizeof co, &co, c_conv1d_op);
    sweep_fields("nn_conv_transpose2d_op", CONV_F, 7, sizeof co, &co, c_convt_op);
    sweep_fields("nn_conv2d", CONV_F, 7, sizeof co, &co, c_conv2d);
    sweep_fields("nn_conv1d", CONV_F, 7, sizeof co, &co, c_conv1d);
    sweep_fields("nn_conv_transpose2d", CONV_F, 7, sizeof co, &co, c_convt);
    memset(&co, 0, sizeof co);
    sweep_fields("nn_conv2d_op", CONV_F, 1, sizeof co, &co, c_conv2d_op); /* kernel from w */
    memset(&po, 0, sizeof po);
    po.kernel = 2;
    sweep_fields("nn_maxpool2d_op", POOL_F, 3, sizeof po, &po, p_max2);
    sweep_fields("nn_avgpool2d_op", POOL_F, 3, sizeof po, &po, p_avg2);
    sweep_fields("nn_maxpool1d_op", POOL_F, 3, sizeof po, &po, p_max1);
    sweep_fields("nn_avgpool1d_op", POOL_F, 3, sizeof po, &po, p_avg1);
    sweep_fields("nn_maxpool2d", POOL_F, 3, sizeof po, &po, pm_max2);
    sweep_fields("nn_avgpool2d", POOL_F, 3, sizeof po, &po, pm_avg2);
    sweep_fields("nn_maxpool1d", POOL_F, 3, sizeof po, &po, pm_max1);
    sweep_fields("nn_avgpool1d", POOL_F, 3, sizeof po, &po, pm_avg1);
}

/* module constructors with int and float arguments */
static void module_ctor_sweep(void) {
    int i;
    for (i = 0; i < NIV; i++) {
        int v = IV[i], small = v > 0 && v < 100;
        nn_graph_reset(G);
        /* (a huge size goes with another: a legal layer of GBs is no bad input) */
        judge("nn_linear", module_runs(nn_linear(v, small || v < 1 ? 3 : v), T(2, small ? v : 3, 0, 0, 2)), "in", v);
        judge("nn_linear", module_runs(nn_linear(small || v < 1 ? 3 : v, v), T(2, 3, 0, 0, 2)), "out", v);
        judge("nn_linear_nobias", module_runs(nn_linear_nobias(v, small || v < 1 ? 2 : v), T(2, 3, 0, 0, 2)), "in", v);
        if (v < 100000) {
            judge("nn_batchnorm1d", module_runs(nn_batchnorm1d(v), T(4, 3, 0, 0, 2)), "features", v);
            judge("nn_batchnorm2d", module_runs(nn_batchnorm2d(v), T(2, 3, 2, 2, 4)), "channels", v);
        }
        judge("nn_upsample_nearest2d", module_runs(nn_upsample_nearest2d(v), T(1, 1, 2, 2, 4)), "scale", v);
    }
    for (i = 0; i < NFV; i++) {
        float v = FV[i];
        nn_graph_reset(G);
        judge("nn_dropout", module_runs(nn_dropout(v), T(2, 3, 0, 0, 2)), "p", (double)v);
        judge("nn_leaky_relu", module_runs(nn_leaky_relu(v), T(2, 3, 0, 0, 2)), "slope", (double)v);
        judge("nn_elu", module_runs(nn_elu(v), T(2, 3, 0, 0, 2)), "alpha", (double)v);
    }
}

/* ---- nn_sgemm's sizes and leading dimensions ---- */
static void sgemm_sweep(void) {
    static const int SV[] = {0, -1, 1, 3, INT_MAX, INT_MIN};
    float A[64], B[64], C[64];
    int arg, i, ta, tb;
    for (i = 0; i < 64; i++) A[i] = B[i] = C[i] = 1.0f;
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++)
            for (arg = 0; arg < 6; arg++)
                for (i = 0; i < 6; i++) {
                    int p[6] = {3, 3, 3, 3, 3, 3}; /* M N K lda ldb ldc */
                    int ref;
                    p[arg] = SV[i];
                    /* a legal call with sizes beyond the buffers is the caller's bug, not ours */
                    if (arg < 3 && SV[i] > 3) continue;
                    if (arg >= 3 && SV[i] > 3) p[arg] = 8;
                    for (ref = 0; ref < 2; ref++) {
                        if (ref) nn_sgemm_ref(ta, tb, p[0], p[1], p[2], 1.0f, A, p[3], B, p[4], 0.0f, C, p[5]);
                        else nn_sgemm(ta, tb, p[0], p[1], p[2], 1.0f, A, p[3], B, p[4], 0.0f, C, p[5]);
                        judge(ref ? "nn_sgemm_ref" : "nn_sgemm", nn_test_msgs == 0, "size", (double)SV[i]);
                    }
                    /* NULL operands where they would be read */
                    nn_sgemm(ta, tb, p[0], p[1], p[2], 1.0f, NULL, p[3], B, p[4], 0.0f, C, p[5]);
                    judge("nn_sgemm", nn_test_msgs == 0 && (p[0] <= 0 || p[1] <= 0 || p[2] <= 0), "A NULL", (double)SV[i]);
                }
}

/* ---- optimizers, schedules, loader ---- */

static nn_module *NET;
static nn_optim *step_twice(nn_optim *o) {
    int k;
    if (!o) return NULL;
    for (k = 0; k < 2; k++) {
        nn_tensor *x, *y;
        nn_graph_reset(G);
        nn_zero_grad(o);
        x = T(4, 3, 0, 0, 2);
        y = nn_sum(nn_forward(NET, x));
        if (y) nn_backward(y);
        nn_step(o);
    }
    nn_test_msgs = 0; /* steps with NaN rates may trip anomaly checks: no crash is the point */
    return o;
}
#define OPT_CALL(name, ctor, T_) \
    static int name(const void *p) { nn_optim *o = step_twice(ctor(NET, *(const T_ *)p)); nn_optim_free(o); return o != NULL; }
OPT_CALL(o_sgd, nn_sgd, nn_sgd_opts)
OPT_CALL(o_adagrad, nn_adagrad, nn_adagrad_opts)
OPT_CALL(o_rmsprop, nn_rmsprop, nn_rmsprop_opts)
OPT_CALL(o_adadelta, nn_adadelta, nn_adadelta_opts)
OPT_CALL(o_adam, nn_adam, nn_adam_opts)
OPT_CALL(o_adamw, nn_adamw, nn_adamw_opts)
OPT_CALL(o_adamax, nn_adamax, nn_adamax_opts)
OPT_CALL(o_nadam, nn_nadam, nn_nadam_opts)
OPT_CALL(o_radam, nn_radam, nn_radam_opts)
OPT_CALL(o_lars, nn_lars, nn_lars_opts)
OPT_CALL(o_lamb, nn_lamb, nn_lamb_opts)
OPT_CALL(o_ranger, nn_ranger, nn_ranger_opts)

static const field SGD_F[] = {FF(nn_sgd_opts, lr), FF(nn_sgd_opts, momentum), FF(nn_sgd_opts, dampening),
                              FF(nn_sgd_opts, weight_decay), FI(nn_sgd_opts, nesterov)};
static const field ADAGRAD_F[] = {FF(nn_adagrad_opts, lr), FF(nn_adagrad_opts, lr_decay), FF(nn_adagrad_opts, weight_decay),
                                  FF(nn_adagrad_opts, initial_accumulator_value), FF(nn_adagrad_opts, eps)};
static const field RMS_F[] = {FF(nn_rmsprop_opts, lr), FF(nn_rmsprop_opts, alpha), FF(nn_rmsprop_opts, eps),
                              FF(nn_rmsprop_opts, weight_decay), FF(nn_rmsprop_opts, momentum), FI(nn_rmsprop_opts, centered)};
static const field ADADELTA_F[] = {FF(nn_adadelta_opts, lr), FF(nn_adadelta_opts, rho), FF(nn_adadelta_opts, eps),
                                   FF(nn_adadelta_opts, weight_decay)};
static const field ADAM_F[] = {FF(nn_adam_opts, lr), FF(nn_adam_opts, beta1), FF(nn_adam_opts, beta2), FF(nn_adam_opts, eps),
                               FF(nn_adam_opts, weight_decay), FI(nn_adam_opts, amsgrad)};
static const field ADAMW_F[] = {FF(nn_adamw_opts, lr), FF(nn_adamw_opts, beta1), FF(nn_adamw_opts, beta2), FF(nn_adamw_opts, eps),
                                FF(nn_adamw_opts, weight_decay), FI(nn_adamw_opts, amsgrad)};
static const field ADAMAX_F[] = {FF(nn_adamax_opts, lr), FF(nn_adamax_opts, beta1), FF(nn_adamax_opts, beta2),
                                 FF(nn_adamax_opts, eps), FF(nn_adamax_opts, weight_decay)};
static const field NADAM_F[] = {FF(nn_nadam_opts, lr), FF(nn_nadam_opts, beta1), FF(nn_nadam_opts, beta2), FF(nn_nadam_opts, eps),
                                FF(nn_nadam_opts, weight_decay), FF(nn_nadam_opts, momentum_decay)};
static const field RADAM_F[] = {FF(nn_radam_opts, lr), FF(nn_radam_opts, beta1), FF(nn_radam_opts, beta2),
                                FF(nn_radam_opts, eps), FF(nn_radam_opts, weight_decay)};
static const field LARS_F[] = {FF(nn_lars_opts, lr), FF(nn_lars_opts, momentum), FF(nn_lars_opts, weight_decay),
                               FF(nn_lars_opts, trust_coefficient), FF(nn_lars_opts, eps)};
static const field LAMB_F[] = {FF(nn_lamb_opts, lr), FF(nn_lamb_opts, beta1), FF(nn_lamb_opts, beta2),
                               FF(nn_lamb_opts, eps), FF(nn_lamb_opts, weight_decay)};
static const field RANGER_F[] = {FF(nn_ranger_opts, lr), FF(nn_ranger_opts, beta1), FF(nn_ranger_opts, beta2),
                                 FF(nn_ranger_opts, eps), FF(nn_ranger_opts, weight_decay), FI(nn_ranger_opts, k),
                                 FF(nn_ranger_opts, alpha)};
#define NF(a) ((int)(sizeof a / sizeof a[0]))

static void optim_sweep(void) {
    unsigned char zero[256];
    memset(zero, 0, sizeof zero);
    sweep_fields("nn_sgd", SGD_F, NF(SGD_F), sizeof(nn_sgd_opts), zero, o_sgd);
    sweep_fields("nn_adagrad", ADAGRAD_F, NF(ADAGRAD_F), sizeof(nn_adagrad_opts), zero, o_adagrad);
    sweep_fields("nn_rmsprop", RMS_F, NF(RMS_F), sizeof(nn_rmsprop_opts), zero, o_rmsprop);
    sweep_fields("nn_adadelta", ADADELTA_F, NF(ADADELTA_F), sizeof(nn_adadelta_opts), zero, o_adadelta);
    sweep_fields("nn_adam", ADAM_F, NF(ADAM_F), sizeof(nn_adam_opts), zero, o_adam);
    sweep_fields("nn_adamw", ADAMW_F, NF(ADAMW_F), sizeof(nn_adamw_opts), zero, o_adamw);
    sweep_fields("nn_adamax", ADAMAX_F, NF(ADAMAX_F), sizeof(nn_adamax_opts), zero, o_adamax);
    sweep_fields("nn_nadam", NADAM_F, NF(NADAM_F), sizeof(nn_nadam_opts), zero, o_nadam);
    sweep_fields("nn_radam", RADAM_F, NF(RADAM_F), sizeof(nn_radam_opts), zero, o_radam);
    sweep_fields("nn_lars", LARS_F, NF(LARS_F), sizeof(nn_lars_opts), zero, o_lars);
    sweep_fields("nn_lamb", LAMB_F, NF(LAMB_F), sizeof(nn_lamb_opts), zero, o_lamb);
    sweep_fields("nn_ranger", RANGER_F, NF(RANGER_F), sizeof(nn_ranger_opts), zero, o_ranger);
}

/* schedules: built on an SGD, stepped a few times */
static nn_optim *SGD;
static int sched_runs(nn_sched *s) {
    int k;
    if (!s) return 0;
    for (k = 0; k < 5; k++) {
        nn_sched_step(s);
        (void)nn_get_lr(SGD);
    }
    nn_sched_step_metric(s, 1.0f);
    nn_test_msgs = 0;
    nn_sched_free(s);
    return 1;
}
#define SCHED_CALL(name, ctor, T_) \
    static int name(const void *p) { return sched_runs(ctor(SGD, *(const T_ *)p)); }
SCHED_CALL(s_constant, nn_constant_lr, nn_constant_lr_opts)
SCHED_CALL(s_step, nn_step_lr, nn_step_lr_opts)
SCHED_CALL(s_multistep, nn_multistep_lr, nn_multistep_lr_opts)
SCHED_CALL(s_exponential, nn_exponential_lr, nn_exponential_lr_opts)
SCHED_CALL(s_inverse, nn_inverse_time_lr, nn_inverse_time_lr_opts)
SCHED_CALL(s_poly, nn_polynomial_lr, nn_polynomial_lr_opts)
SCHED_CALL(s_cosine, nn_cosine_annealing, nn_cosine_annealing_opts)
SCHED_CALL(s_restarts, nn_warm_restarts, nn_warm_restarts_opts)
SCHED_CALL(s_cyclic, nn_cyclic_lr, nn_cyclic_lr_opts)
SCHED_CALL(s_onecycle, nn_onecycle, nn_onecycle_opts)
SCHED_CALL(s_warmup, nn_warmup, nn_warmup_opts)
SCHED_CALL(s_plateau, nn_reduce_on_plateau, nn_reduce_on_plateau_opts)
SCHED_CALL(s_batch, nn_increase_batch, nn_increase_batch_opts)

static const field CONST_F[] = {FF(nn_constant_lr_opts, factor), FI(nn_constant_lr_opts, total_iters)};
static const field STEP_F[] = {FI(nn_step_lr_opts, step_size), FF(nn_step_lr_opts, gamma)};
static const field MULTI_F[] = {FI(nn_multistep_lr_opts, milestones[0]), FI(nn_multistep_lr_opts, milestones[1]),
                                FF(nn_multistep_lr_opts, gamma)};
static const field EXP_F[] = {FF(nn_exponential_lr_opts, gamma)};
static const field INV_F[] = {FF(nn_inverse_time_lr_opts, decay_rate), FI(nn_inverse_time_lr_opts, decay_steps),
                              FI(nn_inverse_time_lr_opts, staircase)};
static const field POLY_F[] = {FI(nn_polynomial_lr_opts, total_iters), FF(nn_polynomial_lr_opts, power),
                               FF(nn_polynomial_lr_opts, end_lr)};
static const field COS_F[] = {FI(nn_cosine_annealing_opts, T_max), FF(nn_cosine_annealing_opts, eta_min)};
static const field WR_F[] = {FI(nn_warm_restarts_opts, T_0), FI(nn_warm_restarts_opts, T_mult),
                             FF(nn_warm_restarts_opts, eta_min)};
static const field CYC_F[] = {FF(nn_cyclic_lr_opts, base_lr), FF(nn_cyclic_lr_opts, max_lr), FI(nn_cyclic_lr_opts, step_size_up),
                              FI(nn_cyclic_lr_opts, step_size_down), FI(nn_cyclic_lr_opts, mode), FF(nn_cyclic_lr_opts, gamma),
                              FI(nn_cyclic_lr_opts, cycle_momentum), FF(nn_cyclic_lr_opts, base_momentum),
                              FF(nn_cyclic_lr_opts, max_momentum)};
static const field ONE_F[] = {FF(nn_onecycle_opts, max_lr), FI(nn_onecycle_opts, total_steps), FI(nn_onecycle_opts, epochs),
                              FI(nn_onecycle_opts, steps_per_epoch), FF(nn_onecycle_opts, pct_start),
                              FI(nn_onecycle_opts, anneal_strategy), FI(nn_onecycle_opts, cycle_momentum),
                              FF(nn_onecycle_opts, base_momentum), FF(nn_onecycle_opts, max_momentum),
                              FF(nn_onecycle_opts, div_factor), FF(nn_onecycle_opts, final_div_factor),
                              FI(nn_onecycle_opts, three_phase)};
static const field WARM_F[] = {FI(nn_warmup_opts, warmup_steps), FF(nn_warmup_opts, start_factor)};
static const field PLAT_F[] = {FI(nn_reduce_on_plateau_opts, mode), FF(nn_reduce_on_plateau_opts, factor),
                               FI(nn_reduce_on_plateau_opts, patience), FF(nn_reduce_on_plateau_opts, threshold),
                               FI(nn_reduce_on_plateau_opts, threshold_mode), FI(nn_reduce_on_plateau_opts, cooldown),
                               FF(nn_reduce_on_plateau_opts, min_lr), FF(nn_reduce_on_plateau_opts, eps)};
static const field BATCH_F[] = {FI(nn_increase_batch_opts, batch_size), FI(nn_increase_batch_opts, dataset_size),
                                FI(nn_increase_batch_opts, milestones[0]), FF(nn_increase_batch_opts, factor),
                                FI(nn_increase_batch_opts, max_batch_size)};

static void sched_sweep(void) {
    nn_step_lr_opts st;
    nn_cosine_annealing_opts co;
    nn_warm_restarts_opts wr;
    nn_cyclic_lr_opts cy;
    nn_onecycle_opts oc;
    nn_warmup_opts wu;
    nn_increase_batch_opts ib;
    nn_polynomial_lr_opts po;
    nn_inverse_time_lr_opts it;
    unsigned char zero[256];
    memset(zero, 0, sizeof zero);
    SGD = nn_sgd(NET, *(const nn_sgd_opts *)(const void *)zero);
    memset(&st, 0, sizeof st); st.step_size = 2;
    memset(&co, 0, sizeof co); co.T_max = 10;
    memset(&wr, 0, sizeof wr); wr.T_0 = 3;
    memset(&cy, 0, sizeof cy); cy.max_lr = 0.1f;
    memset(&oc, 0, sizeof oc); oc.max_lr = 0.1f; oc.total_steps = 20;
    memset(&wu, 0, sizeof wu); wu.warmup_steps = 3;
    memset(&ib, 0, sizeof ib); ib.batch_size = 8; ib.dataset_size = 100;
    memset(&po, 0, sizeof po); po.total_iters = 10;
    memset(&it, 0, sizeof it);
    sweep_fields("nn_constant_lr", CONST_F, NF(CONST_F), sizeof(nn_constant_lr_opts), zero, s_constant);
    sweep_fields("nn_step_lr", STEP_F, NF(STEP_F), sizeof st, &st, s_step);
    sweep_fields("nn_multistep_lr", MULTI_F, NF(MULTI_F), sizeof(nn_multistep_lr_opts), zero, s_multistep);
    sweep_fields("nn_exponential_lr", EXP_F, NF(EXP_F), sizeof(nn_exponential_lr_opts), zero, s_exponential);
    sweep_fields("nn_inverse_time_lr", INV_F, NF(INV_F), sizeof it, &it, s_inverse);
    sweep_fields("nn_polynomial_lr", POLY_F, NF(POLY_F), sizeof po, &po, s_poly);
    sweep_fields("nn_cosine_annealing", COS_F, NF(COS_F), sizeof co, &co, s_cosine);
    sweep_fields("nn_warm_restarts", WR_F, NF(WR_F), sizeof wr, &wr, s_restarts);
    sweep_fields("nn_cyclic_lr", CYC_F, NF(CYC_F), sizeof cy, &cy, s_cyclic);
    sweep_fields("nn_onecycle", ONE_F, NF(ONE_F), sizeof oc, &oc, s_onecycle);
    sweep_fields("nn_warmup", WARM_F, NF(WARM_F), sizeof wu, &wu, s_warmup);
    sweep_fields("nn_reduce_on_plateau", PLAT_F, NF(PLAT_F), sizeof(nn_reduce_on_plateau_opts), zero, s_plateau);
    sweep_fields("nn_increase_batch", BATCH_F, NF(BATCH_F), sizeof ib, &ib, s_batch);
    {
        int i;
        for (i = 0; i < NFV; i++) {
            nn_set_lr(SGD, FV[i]);
            judge("nn_set_lr", nn_test_msgs == 0, "lr", (double)FV[i]);
            (void)nn_clip_grad_norm(SGD, FV[i]);
            judge("nn_clip_grad_norm", nn_test_msgs == 0, "max_norm", (double)FV[i]);
            nn_clip_grad_value(SGD, FV[i]);
            judge("nn_clip_grad_value", nn_test_msgs == 0, "clip", (double)FV[i]);
        }
        nn_set_lr(SGD, 0.01f);
        nn_test_msgs = 0;
    }
    nn_optim_free(SGD);
}

/* parameter groups (on an SGD with momentum), snapshot ensembles, and the
   activation and pooling modules without options */
static int g_run(const void *p) {
    nn_sgd_opts so;
    nn_optim *o;
    int n;
    memset(&so, 0, sizeof so);
    so.momentum = 0.9f;
    if (!(o = nn_sgd(NET, so))) return 0;
    n = nn_optim_group(o, "*", *(const nn_group_opts *)p);
    if (n > 0) step_twice(o);
    nn_test_msgs = n > 0 ? 0 : nn_test_msgs;
    nn_optim_free(o);
    return n > 0;
}
static const field GROUP_F[] = {FF(nn_group_opts, lr), FF(nn_group_opts, lr_scale), FF(nn_group_opts, weight_decay),
                                FI(nn_group_opts, frozen), FI(nn_group_opts, max_ndim)};
static void group_and_module_sweep(void) {
    unsigned char zero[256];
    int i;
    nn_module *(*plain[])(void) = {nn_relu, nn_sigmoid, nn_tanh, nn_gelu, nn_silu, nn_flatten, nn_global_avgpool};
    memset(zero, 0, sizeof zero);
    sweep_fields("nn_optim_group", GROUP_F, NF(GROUP_F), sizeof(nn_group_opts), zero, g_run);
    for (i = 0; i < NIV; i++) {
        nn_snapshots *sn = nn_snapshots_new(NET, IV[i]);
        judge("nn_snapshots_new", sn != NULL, "max_count", (double)IV[i]);
        if (sn) {
            int k;
            for (k = 0; k < 3; k++) (void)nn_snapshot_take(sn);
            nn_graph_reset(G);
            (void)nn_snapshot_predict(sn, T(2, 3, 0, 0, 2));
            nn_test_msgs = 0;
            nn_snapshots_free(sn);
        }
    }
    for (i = 0; i < (int)(sizeof plain / sizeof plain[0]); i++) {
        int k;
        nn_tensor *xs[4];
        nn_graph_reset(G);
        xs[0] = T(2, 3, 0, 0, 2); xs[1] = T(2, 3, 4, 0, 3); xs[2] = nn_zeros(G, NN_SHAPE(0, 3, 4, 5));
        xs[3] = nn_full(G, NN_SHAPE(1, 2, 2, 2), NAN);
        for (k = 0; k < 4; k++) {
            nn_module *m = plain[i]();
            nn_tensor *y = nn_forward(m, xs[k]);
            judge("nn_forward", y != NULL, "input", (double)k);
            nn_module_free(m);
        }
    }
    {
        nn_sgd_opts so;
        nn_optim *o;
        memset(&so, 0, sizeof so);
        so.momentum = 0.5f;
        o = nn_sgd(NET, so);
        for (i = 0; i < NFV && o; i++) {
            nn_set_momentum(o, FV[i]);
            judge("nn_set_momentum", nn_test_msgs == 0, "momentum", (double)FV[i]);
        }
        nn_optim_free(o);
    }
}

/* the loader: its options and the batch size */
static nn_dataset DS;
static int l_run(const void *p) {
    nn_loader *l = nn_loader_new(&DS, *(const nn_loader_opts *)p);
    nn_tensor *x;
    const int *y;
    int k;
    if (!l) return 0;
    for (k = 0; k < 3; k++) {
        nn_graph_reset(G);
        if (nn_loader_next(l, G, &x, &y) <= 0) break;
    }
    nn_loader_free(l);
    return 1;
}
static const field LOADER_F[] = {FI(nn_loader_opts, batch_size), FI(nn_loader_opts, shuffle),
                                 FI(nn_loader_opts, drop_last), FF(nn_loader_opts, scale),
                                 FI(nn_loader_opts, image_shape)};
static void loader_sweep(void) {
    unsigned char zero[256];
    int i;
    nn_loader *l;
    memset(zero, 0, sizeof zero);
    if (nn_dataset_synthetic(20, 1, &DS) != NN_OK) return;
    sweep_fields("nn_loader_new", LOADER_F, NF(LOADER_F), sizeof(nn_loader_opts), zero, l_run);
    l = nn_loader_new(&DS, *(const nn_loader_opts *)(const void *)zero);
    for (i = 0; i < NIV && l; i++) {
        nn_tensor *x;
        const int *y;
        nn_loader_set_batch_size(l, IV[i]);
        judge("nn_loader_set_batch_size", nn_test_msgs == 0, "batch_size", (double)IV[i]);
        nn_graph_reset(G);
        while (nn_loader_next(l, G, &x, &y) > 0) nn_graph_reset(G);
        nn_test_msgs = 0;
    }
    nn_loader_free(l);
    for (i = 0; i < 4; i++) {
        int n = i == 0 ? 0 : i == 1 ? -1 : i == 2 ? INT_MIN : 1;
        nn_dataset d;
        nn_status st = nn_dataset_synthetic(n, 1, &d);
        judge("nn_dataset_synthetic", st == NN_OK, "n", (double)n);
        if (st == NN_OK) nn_dataset_free(&d);
    }
    nn_dataset_free(&DS);
}

/* the labels of the losses */
static void label_sweep(void) {
    int i, lab[4];
    nn_ce_opts o;
    memset(&o, 0, sizeof o);
    for (i = 0; i < NIV; i++) {
        nn_graph_reset(G);
        lab[0] = 0; lab[1] = IV[i]; lab[2] = 1; lab[3] = 2;
        judge("nn_cross_entropy", nn_cross_entropy(T(4, 3, 0, 0, 2), lab, o) != NULL, "label", (double)IV[i]);
    }
    judge("nn_cross_entropy", nn_cross_entropy(T(4, 3, 0, 0, 2), NULL, o) != NULL, "NULL labels", 0);
}

static void int_op_sweep(void) {
    int i, s, v;
    for (i = 0; i < (int)(sizeof INT_OPS / sizeof INT_OPS[0]); i++)
        for (s = 0; s < INT_OPS[i].slots; s++)
            for (v = 0; v < NIV; v++) {
                nn_graph_reset(G);
                judge(INT_OPS[i].fn, INT_OPS[i].run(s, IV[v]) != NULL, "int", (double)IV[v]);
            }
}
static void float_op_sweep(void) {
    int i, s, v;
    for (i = 0; i < (int)(sizeof FLOAT_OPS / sizeof FLOAT_OPS[0]); i++)
        for (s = 0; s < FLOAT_OPS[i].slots; s++)
            for (v = 0; v < NFV; v++) {
                nn_graph_reset(G);
                judge(FLOAT_OPS[i].fn, FLOAT_OPS[i].run(s, FV[v]) != NULL, "float", (double)FV[v]);
            }
}

/* The random helpers and the thread count. */
static void misc_sweep(void) {
    int i;
    for (i = 0; i < NFV; i++) {
        (void)nn_rand_bernoulli(FV[i]);
        judge("nn_rand_bernoulli", nn_test_msgs == 0, "p", (double)FV[i]);
    }
    (void)nn_rand_below(0);
    judge("nn_rand_below", nn_test_msgs == 0, "n", 0);
    for (i = 0; i < NIV; i++) {
        nn_set_threads(IV[i]);
        judge("nn_set_threads", nn_test_msgs == 0 && nn_get_threads() >= 1, "n", (double)IV[i]);
    }
    nn_set_threads(0);
}

int main(void) {
    double t0 = nn_time();
    init_floats();
    init_shape_ops();
    G = nn_graph_new();
    nn_seed(1);
    nn_set_error_hook(nn_test_record_hook, NULL);
    NET = nn_sequential(nn_linear(3, 2), nn_relu(), NULL);
    int_op_sweep();
    float_op_sweep();
    shape_sweep();
    creation_sweep();
    layer_option_sweep();
    module_ctor_sweep();
    sgemm_sweep();
    label_sweep();
    optim_sweep();
    sched_sweep();
    loader_sweep();
    group_and_module_sweep();
    misc_sweep();
    nn_module_free(NET);
    nn_set_error_hook(NULL, NULL);
    nn_graph_free(G);
    printf("%d calls judged in %.2f s\n", judged, nn_time() - t0);
    return nn_test_summary("test_sweep");
}
