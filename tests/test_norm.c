/* Normalization layers: values, gradients and running statistics against
   PyTorch 1.13 (tests/golden/norm.txt, made by make_golden_norm.py) in
   training and evaluation, finite-difference gradient checks of every op,
   state-dict names, the options, misuse messages, and 1 vs 2 threads.
   Run from the repository root, or pass the golden directory as argv[1]. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static nn_tensor *from_gold(nn_graph *g, const gold_tensor *t) {
    return nn_tensor_from(g, t->v, t->shape);
}

/* Compare n floats at a with the labelled tensor (which must exist). */
static void check_lab(const float *a, size_t n, const char *label, float tol) {
    gold_tensor *t = gold_label("%s", label);
    char what[128];
    snprintf(what, sizeof what, "%s %s", gold_case_name, label);
    NN_TEST_CHECK(t != NULL && a != NULL && t->n == n, "%s: present, %zu values", what, n);
    if (t && a && t->n == n) nn_test_close(a, t->v, n, tol, tol, what);
}

/* Copy a labelled tensor into the module's parameter or buffer. */
static void set_param(nn_module *m, const char *name, const char *label) {
    nn_tensor *p = nn_param(m, name);
    gold_tensor *t = gold_label("%s", label);
    NN_TEST_CHECK(p && t && p->numel == t->n, "%s: set %s from %s", gold_case_name, name, label);
    if (p && t && p->numel == t->n) memcpy(p->data, t->v, t->n * sizeof(float));
}

static void zero_grads(nn_module *m) {
    int i, n;
    nn_param *ps = nn_parameters(m, &n);
    for (i = 0; i < n; i++)
        if (ps[i].tensor->grad) memset(ps[i].tensor->grad, 0, ps[i].tensor->numel * sizeof(float));
}

/* Run the steps of the case through m: x<k>/gy<k> for training steps,
   xe<k> in evaluation; compare y, gx, the parameter gradients and running
   statistics. */
static void run_steps(nn_graph *g, nn_module *m, const char *wname, const char *bname) {
    int k, ev;
    char tag[8], lab[32];
    for (ev = 0; ev < 2; ev++) {
        nn_train_mode(m, !ev);
        for (k = 0; k < 8; k++) {
            nn_tensor *x, *y;
            snprintf(tag, sizeof tag, ev ? "e%d" : "%d", k);
            if (!gold_label("x%s", tag)) break;
            nn_graph_reset(g);
            zero_grads(m);
            x = nn_requires_grad(from_gold(g, gold_label("x%s", tag)), 1);
            y = nn_forward(m, x);
            NN_TEST_CHECK(y != NULL, "%s step %s runs", gold_case_name, tag);
            if (!y) return;
            nn_backward(nn_sum(nn_mul(y, from_gold(g, gold_label("gy%s", tag)))));
            snprintf(lab, sizeof lab, "y%s", tag);
            check_lab(y->data, y->numel, lab, 2e-5f);
            snprintf(lab, sizeof lab, "gx%s", tag);
            check_lab(x->grad, x->numel, lab, 5e-5f);
            if (wname && gold_label("gw%s", tag)) {
                snprintf(lab, sizeof lab, "gw%s", tag);
                check_lab(nn_param(m, wname)->grad, nn_param(m, wname)->numel, lab, 5e-5f);
            }
            if (bname && gold_label("gb%s", tag)) {
                snprintf(lab, sizeof lab, "gb%s", tag);
                check_lab(nn_param(m, bname)->grad, nn_param(m, bname)->numel, lab, 5e-5f);
            }
            if (gold_label("rm%s", tag)) {
                snprintf(lab, sizeof lab, "rm%s", tag);
                check_lab(nn_param(m, "running_mean")->data, nn_param(m, "running_mean")->numel, lab, 2e-5f);
                snprintf(lab, sizeof lab, "rv%s", tag);
                check_lab(nn_param(m, "running_var")->data, nn_param(m, "running_var")->numel, lab, 2e-5f);
            }
        }
    }
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* The module a case describes (options are part of its name). */
static nn_module *case_module(void) {
    nn_norm_opts o;
    gold_tensor *x = gold_label("x0");
    nn_shape ns;
    int C = x->shape.ndim > 1 ? x->shape.d[1] : 0, i;
    memset(&o, 0, sizeof o);
    if (!gold_label("w")) o.affine = -1;
    if (starts(gold_case_name, "ln_") || starts(gold_case_name, "rms_")) {
        int k = strstr(gold_case_name, "k2") ? 2 : 1;
        ns.ndim = k;
        for (i = 0; i < k; i++) ns.d[i] = x->shape.d[x->shape.ndim - k + i];
        if (!strcmp(gold_case_name, "ln_wide")) o.eps = 1e-3f;
        if (!strcmp(gold_case_name, "rms_a")) o.eps = 1e-6f;
        return starts(gold_case_name, "ln_") ? nn_layernorm(ns, o) : nn_rmsnorm(ns, o);
    }
    if (starts(gold_case_name, "gn_")) {
        int groups = strstr(gold_case_name, "_g3") ? 3 : strstr(gold_case_name, "_g2") ? 2 :
                     strstr(gold_case_name, "_g4") ? 4 : strstr(gold_case_name, "_gC") ? C : 1;
        return nn_groupnorm(groups, C, o);
    }
    if (starts(gold_case_name, "in")) {
        if (gold_label("rm")) o.track_running_stats = 1;
        if (gold_label("w")) o.affine = 1;
        return x->shape.ndim == 3 ? nn_instancenorm1d(C, o) : nn_instancenorm2d(C, o);
    }
    if (!gold_label("rm")) o.track_running_stats = -1;
    if (!strcmp(gold_case_name, "bn_cumulative")) o.momentum = NN_MOMENTUM_CUMULATIVE;
    if (!strcmp(gold_case_name, "ghost_vb3")) o.virtual_batch = 3;
    if (!strcmp(gold_case_name, "renorm_clip")) {
        o.r_max = 1.5f;
        o.d_max = 0.5f;
        return nn_batchrenorm1d(C, o);
    }
    return x->shape.ndim == 4 ? nn_batchnorm2d_ex(C, o) : nn_batchnorm1d_ex(C, o);
}

static void golden_norm_case(nn_graph *g) {
    nn_module *m = case_module();
    NN_TEST_CHECK(m != NULL, "%s: module", gold_case_name);
    if (!m) return;
    if (gold_label("w")) set_param(m, "weight", "w");
    if (gold_label("b")) set_param(m, "bias", "b");
    if (gold_label("rm")) {
        set_param(m, "running_mean", "rm");
        set_param(m, "running_var", "rv");
    }
    run_steps(g, m, gold_label("w") ? "weight" : NULL, gold_label("b") ? "bias" : NULL);
    if (!strcmp(gold_case_name, "bn_cumulative"))
        NN_TEST_CHECK(((int64_t *)(void *)nn_param(m, "num_batches_tracked")->data)[0] == 3,
                      "cumulative: num_batches_tracked counts 3 steps");
    if (!strcmp(gold_case_name, "ghost_vb3"))
        NN_TEST_CHECK(((int64_t *)(void *)nn_param(m, "num_batches_tracked")->data)[0] == 6,
                      "ghost: num_batches_tracked counts each virtual batch (3 per step)");
    nn_module_free(m);
}

/* Weight norm / spectral norm cases: a Linear or Conv2d from the case. */
static void golden_wn_case(nn_graph *g) {
    gold_tensor *W = gold_label("weight");
    int conv = W->shape.ndim == 4, spectral = starts(gold_case_name, "sn_"), n, i;
    nn_conv_opts co;
    nn_module *m;
    nn_param *ps;
    nn_tensor *x, *y;
    memset(&co, 0, sizeof co);
    co.kernel = 3;
    co.padding = strcmp(gold_case_name, "wn_conv_d0") == 0;
    m = conv ? nn_conv2d(W->shape.d[1], W->shape.d[0], co) : nn_linear(W->shape.d[1], W->shape.d[0]);
    set_param(m, "weight", "weight");
    set_param(m, "bias", "bias");
    if (spectral) {
        NN_TEST_CHECK(nn_spectral_norm(m, "weight", strcmp(gold_case_name, "sn_linear") == 0 ? 2 : 1) == m,
                      "%s: spectral_norm", gold_case_name);
        set_param(m, "weight_u", "u");
        set_param(m, "weight_v", "v");
    } else {
        int dim = strstr(gold_case_name, "_d1") ? 1 : strstr(gold_case_name, "_all") ? -1 : 0;
        NN_TEST_CHECK(nn_weight_norm(m, "weight", dim) == m, "%s: weight_norm", gold_case_name);
        check_lab(nn_param(m, "weight_g")->data, nn_param(m, "weight_g")->numel, "weight_g", 1e-5f);
        check_lab(nn_param(m, "weight_v")->data, nn_param(m, "weight_v")->numel, "weight_v", 0.0f);
        NN_TEST_CHECK(nn_param(m, "weight_g")->ndim == gold_label("weight_g")->shape.ndim,
                      "%s: weight_g has torch's shape", gold_case_name);
    }
    /* state-dict names and order, as PyTorch's */
    ps = nn_parameters(m, &n);
    NN_TEST_CHECK(nn_param(m, "weight") == NULL, "%s: no \"weight\" parameter", gold_case_name);
    if (spectral) {
        nn_param *bs = nn_buffers(m, &i);
        NN_TEST_CHECK(n == 2 && !strcmp(ps[0].name, "bias") && !strcmp(ps[1].name, "weight_orig") &&
                      i == 2 && !strcmp(bs[0].name, "weight_u") && !strcmp(bs[1].name, "weight_v"),
                      "%s: bias, weight_orig; buffers weight_u, weight_v", gold_case_name);
    } else {
        NN_TEST_CHECK(n == 3 && !strcmp(ps[0].name, "bias") && !strcmp(ps[1].name, "weight_g") &&
                      !strcmp(ps[2].name, "weight_v"), "%s: bias, weight_g, weight_v", gold_case_name);
    }
    nn_graph_reset(g);
    x = nn_requires_grad(from_gold(g, gold_label("x0")), 1);
    y = nn_forward(m, x);
    NN_TEST_CHECK(y != NULL, "%s: forward", gold_case_name);
    if (!y) {
        nn_module_free(m);
        return;
    }
    nn_backward(nn_sum(nn_mul(y, from_gold(g, gold_label("gy0")))));
    check_lab(y->data, y->numel, "y0", 2e-5f);
    check_lab(x->grad, x->numel, "gx0", 5e-5f);
    if (spectral) {
        check_lab(nn_param(m, "weight_orig")->grad, nn_param(m, "weight_orig")->numel, "gweight_orig0", 5e-5f);
        check_lab(nn_param(m, "weight_u")->data, nn_param(m, "weight_u")->numel, "u0", 2e-5f);
        check_lab(nn_param(m, "weight_v")->data, nn_param(m, "weight_v")->numel, "v0", 2e-5f);
        float u[8];
        nn_tensor *tu = nn_param(m, "weight_u");
        memcpy(u, tu->data, tu->numel * sizeof(float));
        nn_train_mode(m, 0);
        nn_graph_reset(g);
        y = nn_forward(m, from_gold(g, gold_label("xe0")));
        check_lab(y ? y->data : NULL, y ? y->numel : 0, "ye0", 2e-5f);
        NN_TEST_CHECK(memcmp(u, tu->data, tu->numel * sizeof(float)) == 0,
                      "%s: evaluation leaves weight_u alone", gold_case_name);
    } else {
        check_lab(nn_param(m, "weight_g")->grad, nn_param(m, "weight_g")->numel, "gweight_g0", 5e-5f);
        check_lab(nn_param(m, "weight_v")->grad, nn_param(m, "weight_v")->numel, "gweight_v0", 5e-5f);
    }
    nn_module_free(m);
}

static void golden(nn_graph *g, const char *dir) {
    golden_file gf;
    int cases = 0;
    NN_TEST_CHECK(gold_open(&gf, dir, "norm.txt"), "open norm.txt");
    if (!gf.f) return;
    while (gold_case_read(&gf)) {
        if (starts(gold_case_name, "wn_") || starts(gold_case_name, "sn_")) golden_wn_case(g);
        else golden_norm_case(g);
        cases++;
    }
    gold_case_clear();
    gold_close(&gf);
    NN_TEST_CHECK(cases == 25, "golden cases read: %d", cases);
}

/* ---- finite differences ---- */

typedef nn_tensor *(*op_fn)(nn_tensor **in);
static nn_tensor *f_ln(nn_tensor **in) { return nn_layer_norm_op(in[0], 2, in[1], in[2], 1e-5f); }
static nn_tensor *f_rms(nn_tensor **in) { return nn_rms_norm_op(in[0], 1, in[1], 1e-5f); }
static nn_tensor *f_gn(nn_tensor **in) { return nn_group_norm_op(in[0], 2, in[1], in[2], 1e-5f); }
static nn_tensor *f_gn_rows(nn_tensor **in) { return nn_group_norm_op(in[0], 2, in[1], in[2], 1e-5f); }
static nn_tensor *f_in(nn_tensor **in) { return nn_instance_norm_op(in[0], NULL, NULL, in[1], in[2], 1, 0.1f, 1e-5f); }
static nn_tensor *f_ghost(nn_tensor **in) { return nn_ghost_batch_norm_op(in[0], NULL, NULL, in[1], in[2], 1, 0.1f, 1e-5f, 2); }
static nn_tensor *f_bn_rows(nn_tensor **in) { return nn_batch_norm_op(in[0], NULL, NULL, in[1], in[2], 1, 0.1f, 1e-5f); }
/* far from the batch statistics: r and d clipped, so locally constant and
   the finite differences see the same function as the backward */
static float rn_rm[4] = {5.0f, -5.0f, 5.0f, 0.0f}, rn_rv[4] = {10.0f, 0.01f, 10.0f, 1.0f};
static nn_tensor *f_renorm(nn_tensor **in) {
    /* fresh running statistics each call: r and d from the same values */
    float rm[4], rv[4];
    nn_tensor *trm, *trv, *y;
    memcpy(rm, rn_rm, sizeof rm);
    memcpy(rv, rn_rv, sizeof rv);
    trm = nn_tensor_from(NULL, rm, NN_SHAPE(3));
    trv = nn_tensor_from(NULL, rv, NN_SHAPE(3));
    y = nn_batch_renorm_op(in[0], trm, trv, in[1], in[2], 1, 0.1f, 1e-5f, 1.2f, 0.3f);
    nn_tensor_free(trm);
    nn_tensor_free(trv);
    return y;
}
static nn_tensor *f_wn(nn_tensor **in) { return nn_weight_norm_op(in[0], in[1], 1); }

static double fd_loss(nn_graph *g, op_fn f, nn_tensor **in, nn_tensor *w) {
    int was = nn_set_grad_enabled(g, 0);
    nn_tensor *y = f(in);
    double acc = 0.0;
    size_t i;
    nn_set_grad_enabled(g, was);
    for (i = 0; y && i < y->numel; i++) acc += (double)y->data[i] * (double)w->data[i];
    return acc;
}

/* Gradients of sum(f(in) * w) against central differences. */
static void fd_check(nn_graph *g, const char *name, op_fn f, nn_shape xs, int nin, nn_shape ws) {
    nn_tensor *in[3], *w, *y;
    int i, ok = 1;
    size_t k;
    nn_graph_reset(g);
    nn_seed(7);
    in[0] = nn_requires_grad(nn_randn(g, xs), 1);
    in[1] = nn_requires_grad(nn_rand(g, ws, 0.5f, 1.5f), 1);
    in[2] = nn_requires_grad(nn_randn(g, ws), 1);
    y = f(in);
    w = nn_randn(g, nn_shape_of(y));
    nn_backward(nn_sum(nn_mul(y, w)));
    for (i = 0; i < nin; i++)
        for (k = 0; k < in[i]->numel; k++) {
            float keep = in[i]->data[k], h = 1e-2f;
            double up, down, num;
            in[i]->data[k] = keep + h;
            up = fd_loss(g, f, in, w);
            in[i]->data[k] = keep - h;
            down = fd_loss(g, f, in, w);
            in[i]->data[k] = keep;
            num = (up - down) / (2.0 * (double)h);
            if (fabs(num - (double)in[i]->grad[k]) > 1e-2 + 1e-2 * fabs(num)) {
                if (ok) printf("  %s fd input %d [%zu]: numeric %.6g analytic %.6g\n", name, i, k, num,
                               (double)in[i]->grad[k]);
                ok = 0;
            }
        }
    NN_TEST_CHECK(ok, "%s: finite differences", name);
}

static void finite_differences(nn_graph *g) {
    fd_check(g, "layer norm k=2", f_ln, NN_SHAPE(3, 2, 5), 3, NN_SHAPE(2, 5));
    fd_check(g, "rms norm", f_rms, NN_SHAPE(4, 6), 2, NN_SHAPE(6));
    fd_check(g, "group norm planes", f_gn, NN_SHAPE(2, 4, 3), 3, NN_SHAPE(4));
    fd_check(g, "group norm rows", f_gn_rows, NN_SHAPE(3, 8), 3, NN_SHAPE(8));
    fd_check(g, "instance norm", f_in, NN_SHAPE(2, 3, 4), 3, NN_SHAPE(3));
    fd_check(g, "ghost batch norm", f_ghost, NN_SHAPE(5, 3, 2), 3, NN_SHAPE(3));
    fd_check(g, "batch norm [N,C]", f_bn_rows, NN_SHAPE(5, 3), 3, NN_SHAPE(3));
    fd_check(g, "batch renorm", f_renorm, NN_SHAPE(4, 3, 2), 3, NN_SHAPE(3));
    fd_check(g, "weight norm dim 1", f_wn, NN_SHAPE(3, 4), 2, NN_SHAPE(1, 4));
}

/* ---- misuse messages ---- */

/* Exactly one report holding s1 and s2 (when given). */
static void reported(const char *what, int returned_null, const char *s1, const char *s2) {
    int ok = returned_null && nn_test_msgs == 1 && strstr(nn_test_msg, s1) && (!s2 || strstr(nn_test_msg, s2));
    NN_TEST_CHECK(ok, "%s: %d reports, last \"%s\" (want \"%s\" %s)", what, nn_test_msgs, nn_test_msg, s1,
                  s2 ? s2 : "");
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

static void misuse(nn_graph *g) {
    nn_norm_opts o;
    nn_module *m;
    nn_tensor *x3, *x2;
    memset(&o, 0, sizeof o);
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_graph_reset(g);
    x3 = nn_randn(g, NN_SHAPE(2, 6, 4));
    x2 = nn_randn(g, NN_SHAPE(3, 4));
    reported("groups", nn_group_norm_op(x3, 4, NULL, NULL, 1e-5f) == NULL,
             "nn_group_norm_op: 4 groups do not divide the 6 channels of x [2,6,4]", NULL);
    reported("groupnorm module", nn_groupnorm(4, 6, o) == NULL, "nn_groupnorm: 4 groups do not divide 6 channels", NULL);
    reported("group norm weight", nn_group_norm_op(x3, 2, nn_ones(g, NN_SHAPE(4)), NULL, 1e-5f) == NULL,
             "nn_group_norm_op: weight must be [6]", "[4]");
    reported("layer norm weight", nn_layer_norm_op(x3, 2, nn_ones(g, NN_SHAPE(4)), NULL, 1e-5f) == NULL,
             "nn_layer_norm_op: weight [4] and bias none must have the normalized shape [6,4]", "x [2,6,4]");
    reported("layer norm k", nn_layer_norm_op(x2, 3, NULL, NULL, 1e-5f) == NULL, "nn_layer_norm_op:", "k=3");
    reported("negative eps", nn_layer_norm_op(x2, 1, NULL, NULL, -1.0f) == NULL,
             "nn_layer_norm_op: eps must be >= 0, got -1", NULL);
    reported("rms negative eps", nn_rms_norm_op(x2, 1, NULL, -0.5f) == NULL, "nn_rms_norm_op: eps", "-0.5");
    o.eps = -1.0f;
    reported("module negative eps", nn_layernorm(NN_SHAPE(4), o) == NULL, "nn_layernorm: bad options: eps=-1", NULL);
    o.eps = 0.0f;
    m = nn_layernorm(NN_SHAPE(5), o);
    reported("normalized shape", nn_forward(m, x2) == NULL,
             "nn_forward(LayerNorm): normalized_shape [5] does not match the last 1 dims of x [3,4]", NULL);
    nn_module_free(m);
    m = nn_groupnorm(3, 6, o);
    reported("groupnorm forward channels", nn_forward(m, x2) == NULL, "nn_forward(GroupNorm): nn_group_norm_op:",
             "x [3,4]");
    nn_module_free(m);
    reported("instance norm spatial", nn_instance_norm_op(nn_randn(g, NN_SHAPE(2, 3, 1)), NULL, NULL, NULL, NULL,
                                                          1, 0.1f, 1e-5f) == NULL,
             "nn_instance_norm_op: needs more than one spatial element", "[2,3,1]");
    reported("ghost last batch", nn_ghost_batch_norm_op(nn_randn(g, NN_SHAPE(5, 3)), NULL, NULL, NULL, NULL, 1,
                                                        0.1f, 1e-5f, 2) == NULL,
             "nn_ghost_batch_norm_op: training needs more than one value per channel in every virtual batch",
             "[5,3]");
    reported("renorm without running", nn_batch_renorm_op(x3, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f, 3.0f, 5.0f) == NULL,
             "nn_batch_renorm_op: batch renormalization needs the running statistics", NULL);
    m = nn_batchnorm1d(3);
    nn_batchrenorm_set(m, 2.0f, 1.0f);
    reported("renorm set on BatchNorm", 1, "nn_batchrenorm_set: needs a batch renormalization module", "BatchNorm1d");
    nn_module_free(m);
    m = nn_relu();
    reported("weight norm of ReLU", nn_weight_norm(m, "weight", 0) == NULL, "nn_weight_norm:", "ReLU");
    nn_module_free(m);
    m = nn_linear(3, 2);
    reported("weight norm dim", nn_weight_norm(m, "weight", 2) == NULL, "nn_weight_norm: dim 2", "[2,3]");
    nn_module_free(m);
    o.momentum = NN_MOMENTUM_CUMULATIVE;
    reported("cumulative group norm", nn_groupnorm(2, 4, o) == NULL, "nn_groupnorm: a cumulative momentum", NULL);
    nn_set_error_hook(NULL, NULL);
}

/* ---- options ---- */

static int64_t nbt_of(nn_module *m) { return ((int64_t *)(void *)nn_param(m, "num_batches_tracked")->data)[0]; }

static void options(nn_graph *g) {
    nn_norm_opts o;
    nn_module *m;
    nn_tensor *x, *y, *y2, *rm, *rv;
    int n, step, same;
    nn_param *ps;
    memset(&o, 0, sizeof o);
    nn_seed(5);
    /* batch norm without affine and running statistics: no state, batch statistics in evaluation */
    o.affine = -1;
    o.track_running_stats = -1;
    m = nn_batchnorm2d_ex(3, o);
    nn_parameters(m, &n);
    nn_buffers(m, &step);
    NN_TEST_CHECK(m && n == 0 && step == 0, "BatchNorm2d(affine=False, track_running_stats=False): no state");
    nn_graph_reset(g);
    x = nn_randn(g, NN_SHAPE(4, 3, 2, 2));
    y = nn_forward(m, x);
    nn_train_mode(m, 0);
    y2 = nn_forward(m, x);
    NN_TEST_CHECK(y && y2 && memcmp(y->data, y2->data, y->numel * sizeof(float)) == 0,
                  "no running statistics: evaluation normalizes by the batch");
    nn_module_free(m);
    /* instance norm state names; num_batches_tracked is never counted (PyTorch) */
    memset(&o, 0, sizeof o);
    o.affine = 1;
    o.track_running_stats = 1;
    m = nn_instancenorm2d(2, o);
    ps = nn_parameters(m, &n);
    NN_TEST_CHECK(n == 2 && !strcmp(ps[0].name, "weight") && !strcmp(ps[1].name, "bias"), "InstanceNorm2d params");
    ps = nn_buffers(m, &n);
    NN_TEST_CHECK(n == 3 && !strcmp(ps[0].name, "running_mean") && !strcmp(ps[1].name, "running_var") &&
                  !strcmp(ps[2].name, "num_batches_tracked"), "InstanceNorm2d buffers");
    nn_graph_reset(g);
    nn_forward(m, nn_randn(g, NN_SHAPE(2, 2, 3, 3)));
    NN_TEST_CHECK(nbt_of(m) == 0 && nn_param(m, "running_mean")->data[0] != 0.0f,
                  "InstanceNorm2d: running statistics move, num_batches_tracked stays 0");
    nn_module_free(m);
    /* RMSNorm has a weight only; LayerNorm without elementwise_affine nothing */
    memset(&o, 0, sizeof o);
    m = nn_rmsnorm(NN_SHAPE(4), o);
    ps = nn_parameters(m, &n);
    NN_TEST_CHECK(n == 1 && !strcmp(ps[0].name, "weight"), "RMSNorm: weight");
    nn_module_free(m);
    o.affine = -1;
    m = nn_layernorm(NN_SHAPE(4), o);
    nn_parameters(m, &n);
    NN_TEST_CHECK(n == 0, "LayerNorm(elementwise_affine=False): no parameters");
    nn_module_free(m);
    /* batch renormalization: plain batch norm while warming up, and with r_max 1, d_max 0 */
    memset(&o, 0, sizeof o);
    o.warmup = 2;
    o.r_max = 2.0f;
    o.d_max = 1.0f;
    m = nn_batchrenorm1d(3, o);
    rm = nn_zeros(NULL, NN_SHAPE(3));
    rv = nn_ones(NULL, NN_SHAPE(3));
    for (step = 0; step < 4; step++) {
        nn_graph_reset(g);
        x = nn_add_scalar(nn_mul_scalar(nn_randn(g, NN_SHAPE(6, 3)), 3.0f), 2.0f);
        if (step == 3) nn_batchrenorm_set(m, 1.0f, 0.0f);
        y = nn_forward(m, x);
        y2 = nn_batch_norm_op(x, rm, rv, NULL, NULL, 1, 0.1f, 1e-5f);
        same = memcmp(y->data, y2->data, y->numel * sizeof(float)) == 0;
        NN_TEST_CHECK(same == (step != 2), "batch renorm step %d: %s plain batch norm", step,
                      step != 2 ? "equals" : "differs from");
        NN_TEST_CHECK(memcmp(rm->data, nn_param(m, "running_mean")->data, 3 * sizeof(float)) == 0 &&
                      memcmp(rv->data, nn_param(m, "running_var")->data, 3 * sizeof(float)) == 0,
                      "batch renorm step %d: running statistics as batch norm's", step);
    }
    NN_TEST_CHECK(nbt_of(m) == 4, "batch renorm counts its steps");
    nn_tensor_free(rm);
    nn_tensor_free(rv);
    /* nn_batchnorm_set works on every batch-norm module */
    nn_batchnorm_set(m, 0.5f, 1e-3f);
    nn_module_free(m);
}

/* ---- 1 and 2 threads give the same bits ---- */

/* Four 2-thread runs, each against the 1-thread one: a race (a team sharing
   a loop counter once made the weight and bias gradients of row mode differ
   in about 2 runs of 5) shows in one of them. */
static void threads(nn_graph *g) {
    float *keep[4];
    int t, c, k;
    for (t = 0; t < 5; t++) {
        nn_set_threads(t ? 2 : 1);
        for (c = 0; c < 4; c++) {
            nn_tensor *x, *w, *b, *y;
            size_t len;
            float *got;
            nn_graph_reset(g);
            nn_seed(9);
            x = nn_requires_grad(nn_randn(g, c == 0 ? NN_SHAPE(64, 600) : NN_SHAPE(4, 8, 33, 33)), 1);
            k = c == 0 ? 600 : 8;
            w = nn_requires_grad(nn_rand(g, NN_SHAPE(k), 0.5f, 1.5f), 1);
            b = nn_requires_grad(nn_randn(g, NN_SHAPE(k)), 1);
            y = c == 0 ? nn_layer_norm_op(x, 1, w, b, 1e-5f) : c == 1 ? nn_group_norm_op(x, 2, w, b, 1e-5f) :
                c == 2 ? nn_batch_norm_op(x, NULL, NULL, w, b, 1, 0.1f, 1e-5f)
                       : nn_ghost_batch_norm_op(x, NULL, NULL, w, b, 1, 0.1f, 1e-5f, 3);
            nn_backward(nn_sum(nn_mul(y, y)));
            len = 2 * x->numel + 2 * (size_t)k;
            got = (float *)malloc(len * sizeof(float));
            memcpy(got, y->data, x->numel * sizeof(float));
            memcpy(got + x->numel, x->grad, x->numel * sizeof(float));
            memcpy(got + 2 * x->numel, w->grad, (size_t)k * sizeof(float));
            memcpy(got + 2 * x->numel + k, b->grad, (size_t)k * sizeof(float));
            if (t == 0) {
                keep[c] = got;
                continue;
            }
            NN_TEST_CHECK(memcmp(keep[c], got, len * sizeof(float)) == 0,
                          "case %d, run %d: 1 and 2 threads give the same values and gradients", c, t);
            free(got);
            if (t == 4) free(keep[c]);
        }
    }
    nn_set_threads(1);
}

int main(int argc, char **argv) {
    nn_graph *g = nn_graph_new();
    (void)gold_same_shape;
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    golden(g, dir);
    finite_differences(g);
    misuse(g);
    options(g);
    threads(g);
    nn_graph_free(g);
    return nn_test_summary("test_norm");
}
