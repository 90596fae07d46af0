/* Autograd ops and losses against PyTorch, plus finite-difference gradient
   checks and the autograd contract (error hook, accumulation, no-grad mode,
   views).

   Golden data: tests/golden/ops.txt, made by tests/golden/make_golden.py.
   Every case there is run twice: its values and gradients are compared with
   PyTorch's, and its analytic gradients with central finite differences of
   the same loss L = sum(op(inputs) * w).

   usage: test_ops [golden-dir]      (default "tests/golden", run from the root) */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define MAX_IN 4
#define MAX_IARGS 64
#define MAX_FARGS 8

/* One golden case: an op, its arguments, inputs, output, weights w and the
   gradients of sum(out * w) for every input. */
typedef struct op_case {
    char name[64], op[32];
    int ni, iargs[MAX_IARGS];
    int nf;
    float fargs[MAX_FARGS];
    int nin;
    gold_tensor in[MAX_IN];
    gold_tensor out, w;
    int ngrad;
    gold_tensor grad[MAX_IN];
} op_case;

static void case_free(op_case *c) {
    int i;
    for (i = 0; i < c->nin; i++) gold_tensor_free(&c->in[i]);
    for (i = 0; i < c->ngrad; i++) gold_tensor_free(&c->grad[i]);
    gold_tensor_free(&c->out);
    gold_tensor_free(&c->w);
}

/* Read the next case; 0 at the end of the file, -1 on a format error. */
static int case_read(golden_file *gf, op_case *c) {
    char tok[64];
    int i;
    memset(c, 0, sizeof *c);
    if (!gold_tok(gf, tok, sizeof tok)) return 0;
    if (strcmp(tok, "case") != 0) return gold_fail(gf, "case", tok) - 1;
    if (!gold_tok(gf, c->name, sizeof c->name) || !gold_tok(gf, c->op, sizeof c->op)) return -1;
    if (!gold_expect(gf, "iargs") || !gold_int(gf, &c->ni)) return -1;
    if (c->ni < 0 || c->ni > MAX_IARGS) return gold_fail(gf, "iargs count", c->name) - 1;
    for (i = 0; i < c->ni; i++)
        if (!gold_int(gf, &c->iargs[i])) return -1;
    if (!gold_expect(gf, "fargs") || !gold_int(gf, &c->nf)) return -1;
    if (c->nf < 0 || c->nf > MAX_FARGS) return gold_fail(gf, "fargs count", c->name) - 1;
    for (i = 0; i < c->nf; i++)
        if (!gold_float(gf, &c->fargs[i])) return -1;
    if (!gold_expect(gf, "in") || !gold_int(gf, &c->nin)) return -1;
    if (c->nin < 1 || c->nin > MAX_IN) return gold_fail(gf, "input count", c->name) - 1;
    for (i = 0; i < c->nin; i++)
        if (!gold_tensor_read(gf, &c->in[i])) return -1;
    if (!gold_expect(gf, "out") || !gold_tensor_read(gf, &c->out)) return -1;
    if (!gold_expect(gf, "w") || !gold_tensor_read(gf, &c->w)) return -1;
    if (!gold_expect(gf, "grad") || !gold_int(gf, &c->ngrad)) return -1;
    if (c->ngrad != c->nin) return gold_fail(gf, "one gradient per input", c->name) - 1;
    for (i = 0; i < c->ngrad; i++)
        if (!gold_tensor_read(gf, &c->grad[i])) return -1;
    if (!gold_expect(gf, "end")) return -1;
    return 1;
}

/* Run the case's op on in[] with nn.h's API (arguments as make_golden.py
   writes them). */
static nn_tensor *run_op(const op_case *c, nn_tensor **in) {
    const char *op = c->op;
    const int *ia = c->iargs;
    const float *fa = c->fargs;
    if (!strcmp(op, "add")) return nn_add(in[0], in[1]);
    if (!strcmp(op, "sub")) return nn_sub(in[0], in[1]);
    if (!strcmp(op, "mul")) return nn_mul(in[0], in[1]);
    if (!strcmp(op, "div")) return nn_div(in[0], in[1]);
    if (!strcmp(op, "add_scalar")) return nn_add_scalar(in[0], fa[0]);
    if (!strcmp(op, "sub_scalar")) return nn_sub_scalar(in[0], fa[0]);
    if (!strcmp(op, "mul_scalar")) return nn_mul_scalar(in[0], fa[0]);
    if (!strcmp(op, "div_scalar")) return nn_div_scalar(in[0], fa[0]);
    if (!strcmp(op, "matmul")) return nn_matmul(in[0], in[1]);
    if (!strcmp(op, "transpose")) return nn_transpose(in[0], ia[0], ia[1]);
    if (!strcmp(op, "reshape")) {
        nn_shape s;
        int i;
        memset(&s, 0, sizeof s);
        s.ndim = ia[0];
        for (i = 0; i < s.ndim; i++) s.d[i] = ia[1 + i];
        return nn_reshape(in[0], s);
    }
    if (!strcmp(op, "flatten_batch")) return nn_flatten_batch(in[0]);
    if (!strcmp(op, "sum")) return nn_sum(in[0]);
    if (!strcmp(op, "mean")) return nn_mean(in[0]);
    if (!strcmp(op, "sum_axis")) return nn_sum_axis(in[0], ia[0], ia[1]);
    if (!strcmp(op, "mean_axis")) return nn_mean_axis(in[0], ia[0], ia[1]);
    if (!strcmp(op, "max_axis")) return nn_max_axis(in[0], ia[0], ia[1]);
    if (!strcmp(op, "exp")) return nn_exp(in[0]);
    if (!strcmp(op, "log")) return nn_log(in[0]);
    if (!strcmp(op, "sqrt")) return nn_sqrt(in[0]);
    if (!strcmp(op, "pow")) return nn_pow(in[0], fa[0]);
    if (!strcmp(op, "relu_op")) return nn_relu_op(in[0]);
    if (!strcmp(op, "sigmoid_op")) return nn_sigmoid_op(in[0]);
    if (!strcmp(op, "tanh_op")) return nn_tanh_op(in[0]);
    if (!strcmp(op, "softmax")) return nn_softmax(in[0], ia[0]);
    if (!strcmp(op, "log_softmax")) return nn_log_softmax(in[0], ia[0]);
    if (!strcmp(op, "concat")) return nn_concat(in, c->nin, ia[0]);
    if (!strcmp(op, "slice")) return nn_slice(in[0], ia[0], ia[1], ia[2]);
    if (!strcmp(op, "linear_op")) return nn_linear_op(in[0], in[1], c->nin > 2 ? in[2] : NULL);
    if (!strcmp(op, "cross_entropy")) {
        nn_ce_opts o;
        memset(&o, 0, sizeof o);
        o.label_smoothing = fa[0];
        o.reduction = ia[0] ? NN_REDUCE_SUM : NN_REDUCE_MEAN;
        return nn_cross_entropy(in[0], ia + 2, o);
    }
    if (!strcmp(op, "mse")) return nn_mse(in[0], in[1]);
    printf("unknown op \"%s\" in case %s\n", op, c->name);
    return NULL;
}

/* ---- finite differences ------------------------------------------------ */

/* A differentiable function of nin input tensors (all in one graph). */
typedef nn_tensor *(*fwd_fn)(void *ctx, nn_tensor **in, int nin);

/* The value of L = sum(out * w) in double, or NaN when the forward failed. */
static double weighted_sum(const nn_tensor *out, const float *w, size_t n) {
    double s = 0.0;
    size_t k;
    if (!out || out->numel != n) return (double)NAN;
    for (k = 0; k < n; k++) s += (double)out->data[k] * (double)w[k];
    return s;
}

/* Check nn_backward's gradients of L = sum(f(inputs) * w) against central
   finite differences (step eps, forward in float32, L summed in double).
   data/shapes: the nin inputs; w: out's numel weights, or NULL for a fixed
   pattern.  A component passes when |analytic - numeric| <= atol + rtol *
   max(|analytic|, |numeric|).  Returns 1 when all pass, else 0 (and prints
   the worst component).  Inputs must keep away from kinks (relu at 0, ties
   of max) by more than eps. */
static int check_grad(const char *what, fwd_fn f, void *ctx, int nin, float *const *data,
                      const nn_shape *shapes, const float *w, float eps, double rtol,
                      double atol) {
    nn_graph *g = nn_graph_new();
    nn_tensor *in[MAX_IN], *out, *wt, *loss;
    float *analytic[MAX_IN], *work[MAX_IN], *wbuf = NULL;
    size_t numel[MAX_IN], nout = 0, k;
    int i, j, ok = 1, worst_in = -1;
    size_t worst_k = 0;
    double worst_excess = -1.0, worst_a = 0.0, worst_n = 0.0;

    if (nin > MAX_IN) return 0;
    for (i = 0; i < nin; i++) {
        numel[i] = 1;
        for (j = 0; j < shapes[i].ndim; j++) numel[i] *= (size_t)shapes[i].d[j];
        analytic[i] = (float *)calloc(numel[i], sizeof(float));
        work[i] = (float *)malloc(numel[i] * sizeof(float));
        memcpy(work[i], data[i], numel[i] * sizeof(float));
    }

    /* Analytic gradients. */
    for (i = 0; i < nin; i++) in[i] = nn_requires_grad(nn_tensor_from(g, data[i], shapes[i]), 1);
    out = f(ctx, in, nin);
    if (!out) {
        printf("  check_grad %s: forward returned NULL\n", what);
        ok = 0;
        goto done;
    }
    nout = out->numel;
    wbuf = (float *)malloc(nout * sizeof(float));
    for (k = 0; k < nout; k++) wbuf[k] = w ? w[k] : (float)sin(1.7 * (double)k + 0.3);
    wt = nn_tensor_from(g, wbuf, nn_shape_of(out));
    loss = nn_sum(nn_mul(out, wt));
    if (!loss) {
        printf("  check_grad %s: loss is NULL\n", what);
        ok = 0;
        goto done;
    }
    nn_backward(loss);
    for (i = 0; i < nin; i++) {
        const float *gr = nn_grad(in[i]);
        if (!gr) {
            printf("  check_grad %s: no gradient reached input %d\n", what, i);
            ok = 0;
            goto done;
        }
        memcpy(analytic[i], gr, numel[i] * sizeof(float));
    }

    /* Numeric gradients, one component at a time. */
    for (i = 0; i < nin; i++) {
        for (k = 0; k < numel[i]; k++) {
            float x0 = data[i][k], xp = x0 + eps, xm = x0 - eps;
            double lp, lm, num, a, excess;
            int m;
            work[i][k] = xp;
            nn_graph_reset(g);
            nn_set_grad_enabled(g, 0);
            for (m = 0; m < nin; m++) in[m] = nn_tensor_from(g, work[m], shapes[m]);
            lp = weighted_sum(f(ctx, in, nin), wbuf, nout);
            work[i][k] = xm;
            nn_graph_reset(g);
            for (m = 0; m < nin; m++) in[m] = nn_tensor_from(g, work[m], shapes[m]);
            lm = weighted_sum(f(ctx, in, nin), wbuf, nout);
            work[i][k] = x0;
            num = (lp - lm) / ((double)xp - (double)xm);
            a = (double)analytic[i][k];
            excess = fabs(a - num) - (atol + rtol * fmax(fabs(a), fabs(num)));
            if (!(excess <= 0.0)) ok = 0;
            if (!(excess <= worst_excess) || worst_in < 0) {
                worst_excess = excess;
                worst_in = i;
                worst_k = k;
                worst_a = a;
                worst_n = num;
            }
        }
    }
    if (!ok)
        printf("  check_grad %s: input %d [%zu]: analytic %.7g numeric %.7g\n", what, worst_in,
               worst_k, worst_a, worst_n);
done:
    nn_graph_free(g);
    for (i = 0; i < nin; i++) {
        free(analytic[i]);
        free(work[i]);
    }
    free(wbuf);
    return ok;
}

static nn_tensor *case_fwd(void *ctx, nn_tensor **in, int nin) {
    (void)nin;
    return run_op((const op_case *)ctx, in);
}

/* ---- golden comparison ------------------------------------------------- */

/* Value tolerance: float32 round-off of a few operations.  The stability
   cases (inputs near +-1000) get atol 1e-4: PyTorch's log_softmax computes
   x - (max + logsumexp), rounding at magnitude 1000 (ulp 6.1e-5), so a
   more accurate (x - max) - logsumexp differs from it by up to ~3e-5. */
static void tolerances(const op_case *c, float *rtol, float *atol) {
    *rtol = 1e-5f;
    *atol = 1e-6f;
    if (strstr(c->name, "shifted")) *atol = 1e-4f;
}

static void run_case(nn_graph *g, const op_case *c) {
    nn_tensor *in[MAX_IN], *out, *wt, *loss;
    float rtol, atol;
    char what[160], s1[64], s2[64];
    int i;
    tolerances(c, &rtol, &atol);
    nn_graph_reset(g);
    for (i = 0; i < c->nin; i++)
        in[i] = nn_requires_grad(nn_tensor_from(g, c->in[i].v, c->in[i].shape), 1);
    out = run_op(c, in);
    NN_TEST_CHECK(out != NULL, "%s: op returned NULL", c->name);
    if (!out) return;
    if (!gold_same_shape(out, c->out.shape)) {
        NN_TEST_CHECK(0, "%s: output shape %s, PyTorch %s", c->name,
                      nn_shape_str(nn_shape_of(out), s1, sizeof s1),
                      nn_shape_str(c->out.shape, s2, sizeof s2));
        return;
    }
    snprintf(what, sizeof what, "%s value", c->name);
    nn_test_close(out->data, c->out.v, c->out.n, rtol, atol, what);
    NN_TEST_CHECK(nn_needs_grad(out), "%s: output does not need a gradient", c->name);

    wt = nn_tensor_from(g, c->w.v, c->w.shape);
    loss = nn_sum(nn_mul(out, wt));
    NN_TEST_CHECK(loss != NULL, "%s: loss is NULL", c->name);
    if (!loss) return;
    nn_backward(loss);
    for (i = 0; i < c->nin; i++) {
        const float *gr = nn_grad(in[i]);
        NN_TEST_CHECK(gr != NULL, "%s: no gradient for input %d", c->name, i);
        if (!gr) continue;
        snprintf(what, sizeof what, "%s grad %d", c->name, i);
        nn_test_close(gr, c->grad[i].v, c->grad[i].n, rtol, atol, what);
    }
}

static void fd_case(op_case *c) {
    float *data[MAX_IN];
    nn_shape shapes[MAX_IN];
    int i;
    /* Near +-1000 a float32 step of 1e-2 is 160 ulps and the loss has no
       significant digits left for a difference quotient; PyTorch checks
       those cases' gradients. */
    if (strstr(c->name, "shifted")) return;
    for (i = 0; i < c->nin; i++) {
        data[i] = c->in[i].v;
        shapes[i] = c->in[i].shape;
    }
    NN_TEST_CHECK(check_grad(c->name, case_fwd, c, c->nin, data, shapes, c->w.v, 1e-2f, 1e-2, 1e-3),
                  "%s: finite-difference gradient check", c->name);
}

/* Every op the golden file must cover (guards against a truncated file). */
static const char *const required_ops[] = {
    "add", "sub", "mul", "div", "add_scalar", "sub_scalar", "mul_scalar", "div_scalar",
    "matmul", "transpose", "reshape", "flatten_batch", "sum", "mean", "sum_axis",
    "mean_axis", "max_axis", "exp", "log", "sqrt", "pow", "relu_op", "sigmoid_op",
    "tanh_op", "softmax", "log_softmax", "concat", "slice", "linear_op", "cross_entropy",
    "mse"};
#define NREQUIRED ((int)(sizeof required_ops / sizeof required_ops[0]))

static void golden_tests(const char *dir) {
    golden_file gf;
    op_case c;
    nn_graph *g;
    int r, ncases = 0, seen[NREQUIRED], i;
    memset(seen, 0, sizeof seen);
    memset(&gf, 0, sizeof gf);
    if (!gold_open(&gf, dir, "ops.txt")) {
        NN_TEST_CHECK(0, "golden ops.txt unreadable");
        gold_close(&gf);
        return;
    }
    g = nn_graph_new();
    while ((r = case_read(&gf, &c)) == 1) {
        ncases++;
        for (i = 0; i < NREQUIRED; i++)
            if (!strcmp(c.op, required_ops[i])) seen[i] = 1;
        run_case(g, &c);
        fd_case(&c);
        case_free(&c);
    }
    case_free(&c);
    NN_TEST_CHECK(r == 0, "golden ops.txt: format error after %d cases", ncases);
    for (i = 0; i < NREQUIRED; i++)
        NN_TEST_CHECK(seen[i], "golden ops.txt has no case for %s", required_ops[i]);
    printf("golden: %d cases\n", ncases);
    nn_graph_free(g);
    gold_close(&gf);
}

/* ---- the autograd contract --------------------------------------------- */

static char hook_msg[512];
static int hook_calls;

static void record_hook(const char *message, void *user) {
    (void)user;
    hook_calls++;
    snprintf(hook_msg, sizeof hook_msg, "%s", message);
}

/* The op named `op` must fail through the hook, return NULL, and name itself
   and the given shape strings (NULL to skip) in the message. */
static void expect_misuse(nn_tensor *result, const char *op, const char *s1, const char *s2) {
    NN_TEST_CHECK(result == NULL, "%s misuse: returned a tensor instead of NULL", op);
    NN_TEST_CHECK(hook_calls == 1, "%s misuse: error hook called %d times", op, hook_calls);
    NN_TEST_CHECK(strstr(hook_msg, op) != NULL, "%s misuse: message \"%s\" lacks \"%s\"", op,
                  hook_msg, op);
    if (s1)
        NN_TEST_CHECK(strstr(hook_msg, s1) != NULL, "%s misuse: message \"%s\" lacks \"%s\"", op,
                      hook_msg, s1);
    if (s2)
        NN_TEST_CHECK(strstr(hook_msg, s2) != NULL, "%s misuse: message \"%s\" lacks \"%s\"", op,
                      hook_msg, s2);
    hook_calls = 0;
    hook_msg[0] = '\0';
}

static void test_errors(void) {
    nn_graph *g = nn_graph_new();
    nn_tensor *a = nn_zeros(g, NN_SHAPE(3, 4));
    nn_tensor *b = nn_zeros(g, NN_SHAPE(5));
    nn_tensor *c = nn_zeros(g, NN_SHAPE(2, 3));
    nn_tensor *d = nn_zeros(g, NN_SHAPE(4, 3));
    nn_tensor *m = nn_zeros(g, NN_SHAPE(5, 6));
    nn_tensor *pair[2];
    const int bad_labels[5] = {0, 1, 4, 2, 0};   /* 4 is out of range for 4 classes */
    nn_ce_opts ce;
    memset(&ce, 0, sizeof ce);
    nn_set_error_hook(record_hook, NULL);
    hook_calls = 0;
    expect_misuse(nn_add(a, b), "nn_add", "[3,4]", "[5]");
    expect_misuse(nn_sub(a, b), "nn_sub", "[3,4]", "[5]");
    expect_misuse(nn_mul(c, d), "nn_mul", "[2,3]", "[4,3]");
    expect_misuse(nn_div(b, a), "nn_div", "[5]", "[3,4]");
    expect_misuse(nn_matmul(a, m), "nn_matmul", "[3,4]", "[5,6]");
    expect_misuse(nn_mse(a, d), "nn_mse", "[3,4]", "[4,3]");
    pair[0] = c;
    pair[1] = a;
    expect_misuse(nn_concat(pair, 2, 0), "nn_concat", "[2,3]", "[3,4]");
    expect_misuse(nn_reshape(a, NN_SHAPE(5, -1)), "nn_reshape", "[3,4]", NULL);
    expect_misuse(nn_transpose(a, 0, 2), "nn_transpose", "[3,4]", NULL);
    expect_misuse(nn_sum_axis(a, 2, 0), "nn_sum_axis", "[3,4]", NULL);
    expect_misuse(nn_max_axis(a, -3, 1), "nn_max_axis", "[3,4]", NULL);
    expect_misuse(nn_softmax(a, 2), "nn_softmax", "[3,4]", NULL);
    expect_misuse(nn_slice(a, 1, 2, 9), "nn_slice", "[3,4]", NULL);
    expect_misuse(nn_slice(a, 0, 2, 1), "nn_slice", "[3,4]", NULL);
    expect_misuse(nn_linear_op(a, m, NULL), "nn_linear_op", "[3,4]", "[5,6]");
    expect_misuse(nn_cross_entropy(a, bad_labels, ce), "nn_cross_entropy", NULL, NULL);
    expect_misuse(nn_cross_entropy(b, bad_labels, ce), "nn_cross_entropy", "[5]", NULL);
    expect_misuse(nn_add(NULL, a), "nn_add", NULL, NULL);
    expect_misuse(nn_relu_op(NULL), "nn_relu_op", NULL, NULL);
    expect_misuse(nn_sigmoid_op(NULL), "nn_sigmoid_op", NULL, NULL);
    expect_misuse(nn_tanh_op(NULL), "nn_tanh_op", NULL, NULL);
    /* After failures the library still works. */
    NN_TEST_CHECK(nn_add(a, a) != NULL && hook_calls == 0, "nn_add after a failure");
    nn_set_error_hook(NULL, NULL);
    nn_graph_free(g);
}

static void test_accumulation(void) {
    float pv[6] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f};
    float x1[6] = {1, 2, 3, 4, 5, 6};
    float x2[6] = {-0.5f, 0.5f, 1.5f, -2.0f, 0.0f, 3.0f};
    float want[6], xv[3] = {0.5f, -2.0f, 3.0f};
    nn_graph *g = nn_graph_new();
    nn_tensor *p = nn_requires_grad(nn_tensor_from(NULL, pv, NN_SHAPE(2, 3)), 1);
    nn_tensor *x, *y;
    int i;
    NN_TEST_CHECK(p->grad != NULL, "a persistent tensor gets a gradient buffer");
    if (p->grad) {
        float zero[6] = {0, 0, 0, 0, 0, 0};
        nn_test_close(p->grad, zero, 6, 0.0f, 0.0f, "persistent gradient starts at zero");
    }
    /* Two steps without zeroing: d/dp sum(p * x) = x accumulates. */
    nn_backward(nn_sum(nn_mul(p, nn_tensor_from(g, x1, NN_SHAPE(2, 3)))));
    nn_graph_reset(g);
    nn_backward(nn_sum(nn_mul(p, nn_tensor_from(g, x2, NN_SHAPE(2, 3)))));
    for (i = 0; i < 6; i++) want[i] = x1[i] + x2[i];
    if (nn_grad(p)) nn_test_close(nn_grad(p), want, 6, 0.0f, 0.0f, "gradient accumulates");
    else NN_TEST_CHECK(0, "no gradient on the persistent parameter");
    nn_graph_reset(g);
    /* A tensor used twice in one graph: d/dx sum(x*x + x) = 2x + 1. */
    x = nn_requires_grad(nn_tensor_from(g, xv, NN_SHAPE(3)), 1);
    y = nn_add(nn_mul(x, x), x);
    nn_backward(nn_sum(y));
    for (i = 0; i < 3; i++) want[i] = 2.0f * xv[i] + 1.0f;
    if (nn_grad(x)) nn_test_close(nn_grad(x), want, 3, 0.0f, 0.0f, "fan-out gradient 2x+1");
    else NN_TEST_CHECK(0, "no gradient on a fan-out input");
    nn_graph_free(g);
    nn_tensor_free(p);
}

static void test_no_grad(void) {
    float xv[4] = {1, -2, 3, 0.5f}, sq[4] = {1, 4, 9, 0.25f};
    nn_graph *g = nn_graph_new();
    nn_tensor *x = nn_requires_grad(nn_tensor_from(g, xv, NN_SHAPE(2, 2)), 1);
    nn_tensor *c = nn_tensor_from(g, xv, NN_SHAPE(2, 2));
    nn_tensor *p = nn_requires_grad(nn_tensor_from(NULL, xv, NN_SHAPE(2, 2)), 1);
    nn_tensor *y;
    int prev;
    NN_TEST_CHECK(nn_needs_grad(x) && !nn_needs_grad(c), "nn_needs_grad of leaves");
    prev = nn_set_grad_enabled(g, 0);
    NN_TEST_CHECK(prev == 1, "gradient mode is on in a new graph (got %d)", prev);
    y = nn_mul(x, x);
    NN_TEST_CHECK(y && y->node == NULL, "no-grad mode records no node");
    NN_TEST_CHECK(y && !nn_needs_grad(y), "no-grad result needs no gradient");
    if (y) nn_test_close(y->data, sq, 4, 0.0f, 0.0f, "no-grad mode still computes");
    y = nn_matmul(p, x);
    NN_TEST_CHECK(y && y->node == NULL && !nn_needs_grad(y),
                  "no-grad mode: a parameter's product records no node");
    prev = nn_set_grad_enabled(g, 1);
    NN_TEST_CHECK(prev == 0, "nn_set_grad_enabled returns the previous mode (got %d)", prev);
    y = nn_mul(x, x);
    NN_TEST_CHECK(y && y->node != NULL && nn_needs_grad(y), "grad mode records a node again");
    /* Inputs that need no gradient record no node even in grad mode. */
    y = nn_exp(nn_mul(c, c));
    NN_TEST_CHECK(y && y->node == NULL && !nn_needs_grad(y), "constant inputs record no node");
    /* Mixed inputs: only the one that needs it gets a gradient. */
    y = nn_mul(x, c);
    nn_backward(nn_sum(y));
    NN_TEST_CHECK(nn_grad(x) != NULL, "mixed: the grad input gets a gradient");
    NN_TEST_CHECK(nn_grad(c) == NULL, "mixed: the constant input gets none");
    if (nn_grad(x)) nn_test_close(nn_grad(x), xv, 4, 0.0f, 0.0f, "mixed: d sum(x*c)/dx = c");
    nn_graph_free(g);
    nn_tensor_free(p);
}

static void test_views_and_item(void) {
    float v[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    nn_graph *g = nn_graph_new();
    nn_tensor *x = nn_tensor_from(g, v, NN_SHAPE(3, 4));
    nn_tensor *x3 = nn_tensor_from(g, v, NN_SHAPE(2, 3, 2));
    nn_tensor *r = nn_reshape(x, NN_SHAPE(2, -1, 2));
    nn_tensor *f = nn_flatten_batch(x3);
    nn_tensor *s;
    float one = 2.5f;
    NN_TEST_CHECK(r && r->data == x->data, "nn_reshape is a view (same data pointer)");
    NN_TEST_CHECK(r && r->ndim == 3 && r->shape[1] == 3, "nn_reshape resolves -1");
    NN_TEST_CHECK(f && f->data == x3->data, "nn_flatten_batch is a view (same data pointer)");
    NN_TEST_CHECK(f && f->ndim == 2 && f->shape[0] == 2 && f->shape[1] == 6,
                  "nn_flatten_batch shape");
    s = nn_sum(x);
    NN_TEST_CHECK(s && nn_numel(s) == 1 && nn_item(s) == 78.0f, "nn_item of nn_sum = %g",
                  s ? (double)nn_item(s) : -1.0);
    NN_TEST_CHECK(s && s->ndim == 0, "nn_sum gives a 0-dim scalar");
    NN_TEST_CHECK(nn_item(nn_tensor_from(g, &one, NN_SHAPE(1))) == 2.5f, "nn_item of a [1]");
    NN_TEST_CHECK(nn_item(nn_tensor_from(g, &one, nn_shape_scalar())) == 2.5f,
                  "nn_item of a []");
    NN_TEST_CHECK(nn_item(nn_mean(x)) == 6.5f, "nn_item of nn_mean");
    nn_graph_free(g);
}

static void test_dropout_and_argmax(void) {
    enum { N = 2000 };
    static float v[N];
    float rows[6] = {1, 3, 2, 5, 0, -1};
    int am[2] = {-1, -1}, i, zeros = 0, bad = 0;
    nn_graph *g = nn_graph_new();
    nn_tensor *x, *y;
    for (i = 0; i < N; i++) {
        v[i] = 0.5f + (float)(i % 7);
    }
    x = nn_requires_grad(nn_tensor_from(g, v, NN_SHAPE(N)), 1);
    y = nn_dropout_op(x, 0.5f, 0);
    if (y) nn_test_close(y->data, v, N, 0.0f, 0.0f, "dropout in eval mode is the identity");
    else NN_TEST_CHECK(0, "nn_dropout_op eval returned NULL");
    y = nn_dropout_op(x, 0.0f, 1);
    if (y) nn_test_close(y->data, v, N, 0.0f, 0.0f, "dropout with p=0 is the identity");
    else NN_TEST_CHECK(0, "nn_dropout_op p=0 returned NULL");
    nn_seed(7);
    y = nn_dropout_op(x, 0.25f, 1);
    NN_TEST_CHECK(y != NULL, "nn_dropout_op returned NULL");
    if (y) {
        nn_backward(nn_sum(y));
        NN_TEST_CHECK(nn_grad(x) != NULL, "dropout: no gradient reached the input");
        for (i = 0; i < N; i++) {
            float kept = v[i] / 0.75f;
            if (y->data[i] == 0.0f) zeros++;
            else if (fabsf(y->data[i] - kept) > 1e-5f * kept) bad++;
            /* d y_i / d x_i is the same mask and scale. */
            if (nn_grad(x) && fabsf(nn_grad(x)[i] - (y->data[i] == 0.0f ? 0.0f : 1.0f / 0.75f)) > 1e-6f)
                bad++;
        }
        NN_TEST_CHECK(bad == 0, "dropout: %d elements neither 0 nor x/(1-p), or wrong gradient", bad);
        NN_TEST_CHECK(zeros > N / 4 - 100 && zeros < N / 4 + 100, "dropout zeroed %d of %d at p=0.25",
                      zeros, N);
    }
    x = nn_tensor_from(g, rows, NN_SHAPE(2, 3));
    nn_argmax_rows(x, am);
    NN_TEST_CHECK(am[0] == 1 && am[1] == 0, "nn_argmax_rows: %d %d", am[0], am[1]);
    nn_graph_free(g);
}

/* Finite-difference checks of compositions (chains through views, reused
   inputs), beyond the single-op golden cases. */
static nn_tensor *chain_fwd(void *ctx, nn_tensor **in, int nin) {
    /* log_softmax(tanh(x W^T + b) reshaped) -> sum over an axis, then * x-slice */
    nn_tensor *h = nn_tanh_op(nn_linear_op(in[0], in[1], in[2]));
    nn_tensor *r = nn_reshape(h, NN_SHAPE(2, -1));
    (void)ctx;
    (void)nin;
    return nn_mul(nn_log_softmax(r, -1), nn_sigmoid_op(nn_slice(nn_reshape(in[0], NN_SHAPE(2, -1)), 1, 0, 6)));
}

static void test_composite_fd(void) {
    float x[4 * 3], w[3 * 3], b[3];
    float *data[3];
    nn_shape shapes[3];
    int i;
    for (i = 0; i < 12; i++) x[i] = (float)sin(0.9 * i + 0.1);
    for (i = 0; i < 9; i++) w[i] = (float)cos(1.3 * i + 0.2);
    for (i = 0; i < 3; i++) b[i] = 0.1f * (float)(i - 1);
    data[0] = x;
    data[1] = w;
    data[2] = b;
    shapes[0] = NN_SHAPE(4, 3);
    shapes[1] = NN_SHAPE(3, 3);
    shapes[2] = NN_SHAPE(3);
    NN_TEST_CHECK(check_grad("composite", chain_fwd, NULL, 3, data, shapes, NULL, 1e-2f, 1e-2, 1e-3),
                  "composite finite-difference gradient check");
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    golden_tests(dir);
    test_errors();
    test_accumulation();
    test_no_grad();
    test_views_and_item();
    test_dropout_and_argmax();
    test_composite_fd();
    return nn_test_summary("test_ops");
}
