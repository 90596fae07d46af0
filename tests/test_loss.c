/* Losses (>>losses): values and gradients against PyTorch 1.13 for every
   loss and reduction (tests/golden/loss.txt, made by make_golden_loss.py),
   finite-difference gradient checks of the same cases, option defaults,
   and the misuse messages for bad targets and options.
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

/* ---- one golden case ---- */

#define MAXIN 3
typedef struct lcase {
    char name[64], loss[32];
    int red, ni, nf, nl, nin, nextra;
    int iargs[8];
    float fargs[8];
    int labels[64];
    gold_tensor in[MAXIN], extra[2], out, w, grad[MAXIN];
    int has_grad[MAXIN];
} lcase;

static void lcase_free(lcase *c) {
    int i;
    for (i = 0; i < c->nin; i++) gold_tensor_free(&c->in[i]);
    for (i = 0; i < MAXIN; i++)
        if (c->has_grad[i]) gold_tensor_free(&c->grad[i]);
    for (i = 0; i < c->nextra; i++) gold_tensor_free(&c->extra[i]);
    gold_tensor_free(&c->out);
    gold_tensor_free(&c->w);
}

/* The next case into c; 0 at the end of the file (or on a format error). */
static int lcase_read(golden_file *gf, lcase *c) {
    char tok[64];
    int i, n;
    memset(c, 0, sizeof *c);
    if (!gold_tok(gf, tok, sizeof tok)) return 0;
    if (strcmp(tok, "case") != 0) return gold_fail(gf, "case", tok);
    if (!gold_tok(gf, c->name, sizeof c->name) || !gold_tok(gf, c->loss, sizeof c->loss) ||
        !gold_int(gf, &c->red))
        return 0;
    if (!gold_expect(gf, "iargs") || !gold_int(gf, &c->ni) || c->ni > 8) return 0;
    for (i = 0; i < c->ni; i++)
        if (!gold_int(gf, &c->iargs[i])) return 0;
    if (!gold_expect(gf, "fargs") || !gold_int(gf, &c->nf) || c->nf > 8) return 0;
    for (i = 0; i < c->nf; i++)
        if (!gold_float(gf, &c->fargs[i])) return 0;
    if (!gold_expect(gf, "labels") || !gold_int(gf, &c->nl) || c->nl > 64) return 0;
    for (i = 0; i < c->nl; i++)
        if (!gold_int(gf, &c->labels[i])) return 0;
    if (!gold_expect(gf, "in") || !gold_int(gf, &c->nin) || c->nin > MAXIN) return 0;
    for (i = 0; i < c->nin; i++)
        if (!gold_tensor_read(gf, &c->in[i])) return 0;
    if (!gold_expect(gf, "extra") || !gold_int(gf, &c->nextra) || c->nextra > 2) return 0;
    for (i = 0; i < c->nextra; i++)
        if (!gold_tensor_read(gf, &c->extra[i])) return 0;
    if (!gold_expect(gf, "out") || !gold_tensor_read(gf, &c->out)) return 0;
    if (!gold_expect(gf, "w") || !gold_tensor_read(gf, &c->w)) return 0;
    if (!gold_expect(gf, "grad") || !gold_int(gf, &n) || n != c->nin) return 0;
    for (i = 0; i < n; i++) {
        if (!gold_expect(gf, "g") || !gold_int(gf, &c->has_grad[i])) return 0;
        if (c->has_grad[i] && !gold_tensor_read(gf, &c->grad[i])) return 0;
    }
    return gold_expect(gf, "end");
}

/* The case's loss of in[] (persistent tensors for weights in ex[]). */
static nn_tensor *run_loss(const lcase *c, nn_tensor **in, nn_tensor **ex) {
    const char *l = c->loss;
    nn_reduction red = (nn_reduction)c->red;
    if (!strcmp(l, "nll") || !strcmp(l, "ce")) {
        const float *w = c->iargs[2] ? ex[0]->data : NULL;
        if (!strcmp(l, "nll")) {
            nn_nll_opts o;
            memset(&o, 0, sizeof o);
            o.reduction = red;
            o.weight = w;
            o.use_ignore_index = c->iargs[0];
            o.ignore_index = c->iargs[1];
            return nn_nll_loss(in[0], c->labels, o);
        } else {
            nn_ce_opts o;
            memset(&o, 0, sizeof o);
            o.label_smoothing = c->fargs[0];
            o.reduction = red;
            o.weight = w;
            o.use_ignore_index = c->iargs[0];
            o.ignore_index = c->iargs[1];
            return nn_cross_entropy(in[0], c->labels, o);
        }
    }
    if (!strcmp(l, "ce_soft")) {
        nn_ce_opts o;
        memset(&o, 0, sizeof o);
        o.label_smoothing = c->fargs[0];
        o.reduction = red;
        o.weight = c->iargs[0] ? ex[0]->data : NULL;
        return nn_cross_entropy_soft(in[0], in[1], o);
    }
    if (!strcmp(l, "mse")) return red == NN_REDUCE_MEAN ? nn_mse(in[0], in[1])
                                                        : nn_mse_loss(in[0], in[1], red);
    if (!strcmp(l, "l1")) return nn_l1_loss(in[0], in[1], red);
    if (!strcmp(l, "smooth_l1")) {
        nn_smooth_l1_opts o;
        o.reduction = red;
        o.beta = c->fargs[0] == 1.0f ? 0.0f : c->fargs[0];   /* 0: the default 1 */
        return nn_smooth_l1_loss(in[0], in[1], o);
    }
    if (!strcmp(l, "huber")) {
        nn_huber_opts o;
        o.reduction = red;
        o.delta = c->fargs[0] == 1.0f ? 0.0f : c->fargs[0];
        return nn_huber_loss(in[0], in[1], o);
    }
    if (!strcmp(l, "bce") || !strcmp(l, "bce_logits")) {
        nn_bce_opts o;
        int k = 0;
        memset(&o, 0, sizeof o);
        o.reduction = red;
        if (c->iargs[0]) o.weight = ex[k++];
        if (c->iargs[1]) o.pos_weight = ex[k++];
        return !strcmp(l, "bce") ? nn_binary_cross_entropy(in[0], in[1], o)
                                 : nn_binary_cross_entropy_with_logits(in[0], in[1], o);
    }
    if (!strcmp(l, "kl")) {
        nn_kl_div_opts o;
        o.reduction = red;
        o.log_target = c->iargs[0];
        return nn_kl_div(in[0], in[1], o);
    }
    if (!strcmp(l, "gnll")) {
        nn_gaussian_nll_opts o;
        o.reduction = red;
        o.full = c->iargs[0];
        o.eps = c->fargs[0] == 1e-6f ? 0.0f : c->fargs[0];
        return nn_gaussian_nll_loss(in[0], in[1], in[2], o);
    }
    if (!strcmp(l, "multi_margin")) {
        nn_multi_margin_opts o;
        memset(&o, 0, sizeof o);
        o.reduction = red;
        o.p = c->iargs[0] == 1 ? 0 : c->iargs[0];
        o.margin = c->fargs[0] == 1.0f ? 0.0f : c->fargs[0];
        o.weight = c->iargs[1] ? ex[0]->data : NULL;
        return nn_multi_margin_loss(in[0], c->labels, o);
    }
    if (!strcmp(l, "cosine") || !strcmp(l, "ranking")) {
        nn_margin_opts o;
        o.reduction = red;
        o.margin = c->fargs[0];
        return !strcmp(l, "cosine") ? nn_cosine_embedding_loss(in[0], in[1], in[2], o)
                                    : nn_margin_ranking_loss(in[0], in[1], in[2], o);
    }
    if (!strcmp(l, "triplet")) {
        nn_triplet_opts o;
        memset(&o, 0, sizeof o);
        o.reduction = red;
        o.swap = c->iargs[0];
        o.margin = c->fargs[0] == 1.0f ? 0.0f : c->fargs[0];
        o.p = c->fargs[1] == 2.0f ? 0.0f : c->fargs[1];
        o.eps = c->fargs[2] == 1e-6f ? 0.0f : c->fargs[2];
        return nn_triplet_margin_loss(in[0], in[1], in[2], o);
    }
    printf("unknown loss %s in case %s\n", l, c->name);
    return NULL;
}

/* sum(out * w) in double. */
static double weighted(const nn_tensor *out, const float *w) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < out->numel; i++) s += (double)out->data[i] * (double)w[i];
    return s;
}

/* Cases the finite differences cannot judge: extreme values (the float
   rounding of a loss of 1e4), inputs at the edge of the domain, and var
   below eps (PyTorch clamps it outside autograd, so the gradient is that of
   the clamped value while the loss is flat). */
static int gold_fd_skip(const lcase *c, int k) {
    return strstr(c->name, "extreme") || strstr(c->name, "clamp") ||
           (!strncmp(c->name, "gnllfull", 8) && k == 2);
}

/* Central differences of sum(out * w) against the analytic gradient, each
   element; at a kink (hinge, |d|) the one-sided difference of either side
   may be the one the analytic gradient follows. */
static int fd_check(const lcase *c, nn_graph *g, nn_tensor **in, nn_tensor **ex, int k,
                    const float *grad) {
    const float h = 1e-3f;
    size_t i;
    int ok = 1, was = nn_set_grad_enabled(g, 0);
    for (i = 0; i < in[k]->numel; i++) {
        float x0 = in[k]->data[i], gi = grad[i], tol;
        double lp, lm, l0, cen, fw, bw;
        nn_tensor *o;
        o = run_loss(c, in, ex);
        l0 = o ? weighted(o, c->w.v) : 0.0;
        in[k]->data[i] = x0 + h;
        o = run_loss(c, in, ex);
        lp = o ? weighted(o, c->w.v) : 0.0;
        in[k]->data[i] = x0 - h;
        o = run_loss(c, in, ex);
        lm = o ? weighted(o, c->w.v) : 0.0;
        in[k]->data[i] = x0;
        cen = (lp - lm) / (2.0 * (double)h);
        fw = (lp - l0) / (double)h;
        bw = (l0 - lm) / (double)h;
        tol = 4e-3f * (1.0f + fabsf(gi)) + 3e-4f * (float)fabs(l0);
        if (!(fabs(cen - (double)gi) <= (double)tol || fabs(fw - (double)gi) <= (double)tol ||
              fabs(bw - (double)gi) <= (double)tol)) {
            if (ok)
                printf("  %s input %d [%zu]: analytic %.6g, central %.6g (fwd %.6g, bwd %.6g)\n",
                       c->name, k, i, (double)gi, cen, fw, bw);
            ok = 0;
        }
    }
    nn_set_grad_enabled(g, was);
    return ok;
}

static void test_golden(const char *dir) {
    golden_file gf;
    lcase c;
    int cases = 0, i, bad_fd = 0, fd_cases = 0;
    nn_graph *g = nn_graph_new();
    if (!gold_open(&gf, dir, "loss.txt")) {
        NN_TEST_CHECK(0, "open %s/loss.txt", dir);
        nn_graph_free(g);
        return;
    }
    while (lcase_read(&gf, &c)) {
        nn_tensor *in[MAXIN], *ex[2], *out, *w;
        char what[128];
        nn_graph_reset(g);
        for (i = 0; i < c.nin; i++)
            in[i] = nn_requires_grad(nn_tensor_from(g, c.in[i].v, c.in[i].shape), c.has_grad[i]);
        for (i = 0; i < c.nextra; i++) ex[i] = nn_tensor_from(g, c.extra[i].v, c.extra[i].shape);
        out = run_loss(&c, in, ex);
        NN_TEST_CHECK(out && gold_same_shape(out, c.out.shape), "%s: output shape", c.name);
        if (!out || !gold_same_shape(out, c.out.shape)) {
            lcase_free(&c);
            continue;
        }
        snprintf(what, sizeof what, "%s value", c.name);
        nn_test_close(out->data, c.out.v, c.out.n, 2e-5f, 2e-5f, what);
        w = nn_tensor_from(g, c.w.v, c.w.shape);
        NN_TEST_CHECK(nn_backward(nn_sum(nn_mul(out, w))) == NN_OK, "%s: backward", c.name);
        for (i = 0; i < c.nin; i++) {
            if (!c.has_grad[i]) continue;
            snprintf(what, sizeof what, "%s grad of input %d", c.name, i);
            NN_TEST_CHECK(nn_grad(in[i]) != NULL, "%s", what);
            if (!nn_grad(in[i])) continue;
            nn_test_close(nn_grad(in[i]), c.grad[i].v, c.grad[i].n, 1e-4f, 2e-5f, what);
            if (!gold_fd_skip(&c, i)) {
                float *gcopy = (float *)malloc(in[i]->numel * sizeof(float));
                memcpy(gcopy, nn_grad(in[i]), in[i]->numel * sizeof(float));
                fd_cases++;
                if (!fd_check(&c, g, in, ex, i, gcopy)) bad_fd++;
                free(gcopy);
            }
        }
        cases++;
        lcase_free(&c);
    }
    gold_close(&gf);
    NN_TEST_CHECK(cases >= 363, "golden: %d cases read", cases);
    NN_TEST_CHECK(bad_fd == 0, "finite differences: %d of %d gradients disagree", bad_fd, fd_cases);
    printf("golden: %d cases, %d finite-difference gradient checks\n", cases, fd_cases);
    nn_graph_free(g);
}

/* ---- misuse: the message names the loss and the shapes ---- */

/* r must be NULL after exactly one report holding s1, s2 and s3 (when given). */
static void misuse(const char *what, const nn_tensor *r, const char *s1, const char *s2,
                   const char *s3) {
    int ok = r == NULL && nn_test_msgs == 1 && strstr(nn_test_msg, s1) && (!s2 || strstr(nn_test_msg, s2)) &&
             (!s3 || strstr(nn_test_msg, s3));
    NN_TEST_CHECK(ok, "%s: %d reports, last \"%s\" (want \"%s\" \"%s\" \"%s\")", what, nn_test_msgs,
                  nn_test_msg, s1, s2 ? s2 : "", s3 ? s3 : "");
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

static void test_misuse(void) {
    nn_graph *g = nn_graph_new();
    nn_tensor *x = nn_randn(g, NN_SHAPE(3, 4)), *t43 = nn_randn(g, NN_SHAPE(4, 3));
    nn_tensor *p = nn_full(g, NN_SHAPE(3, 4), 0.5f), *v3 = nn_ones(g, NN_SHAPE(3));
    nn_tensor *v2 = nn_ones(g, NN_SHAPE(2)), *v34 = nn_ones(g, NN_SHAPE(3, 4));
    nn_tensor *x1 = nn_randn(g, NN_SHAPE(4)), *w5 = nn_ones(g, NN_SHAPE(5));
    nn_tensor *x3 = nn_randn(g, NN_SHAPE(2, 3, 4)), *v1 = nn_ones(g, NN_SHAPE(1));
    int lab[3] = {0, 3, 1}, bad[3] = {0, 4, 1}, neg[3] = {0, -1, 1}, ign[3] = {0, -100, 1};
    nn_ce_opts ce;
    nn_nll_opts nll;
    nn_bce_opts bce;
    nn_smooth_l1_opts sl;
    nn_huber_opts hu;
    nn_kl_div_opts kl;
    nn_gaussian_nll_opts gn;
    nn_multi_margin_opts mm;
    nn_margin_opts mo;
    nn_triplet_opts tr;
    memset(&ce, 0, sizeof ce);
    memset(&nll, 0, sizeof nll);
    memset(&bce, 0, sizeof bce);
    memset(&sl, 0, sizeof sl);
    memset(&hu, 0, sizeof hu);
    memset(&kl, 0, sizeof kl);
    memset(&gn, 0, sizeof gn);
    memset(&mm, 0, sizeof mm);
    memset(&mo, 0, sizeof mo);
    memset(&tr, 0, sizeof tr);
    nn_set_error_hook(nn_test_record_hook, NULL);

    /* Class losses: labels out of range (and -100, ignored by default, is fine). */
    misuse("ce label", nn_cross_entropy(x, bad, ce), "nn_cross_entropy", "label 4", "[3,4]");
    misuse("ce negative label", nn_cross_entropy(x, neg, ce), "nn_cross_entropy", "label -1",
           "ignore_index -100");
    NN_TEST_CHECK(nn_cross_entropy(x, ign, ce) != NULL && nn_test_msgs == 0, "-100 is ignored");
    ce.use_ignore_index = 1;   /* ignore_index 0 now: -100 is out of range */
    misuse("ce set ignore_index", nn_cross_entropy(x, ign, ce), "nn_cross_entropy", "label -100",
           "ignore_index 0");
    ce.use_ignore_index = 0;
    misuse("ce 1-D logits", nn_cross_entropy(x1, lab, ce), "nn_cross_entropy", "[4]", "[N,C]");
    misuse("ce NULL labels", nn_cross_entropy(x, NULL, ce), "nn_cross_entropy", "NULL", "[3,4]");
    ce.label_smoothing = 1.5f;
    misuse("ce smoothing", nn_cross_entropy(x, lab, ce), "nn_cross_entropy", "label_smoothing",
           "1.5");
    ce.label_smoothing = 0.0f;
    ce.reduction = NN_REDUCE_BATCHMEAN;
    misuse("ce batchmean", nn_cross_entropy(x, lab, ce), "nn_cross_entropy", "reduction 3", NULL);
    ce.reduction = NN_REDUCE_MEAN;
    misuse("soft target shape", nn_cross_entropy_soft(x, t43, ce), "nn_cross_entropy_soft",
           "[4,3]", "[3,4]");
    misuse("nll label", nn_nll_loss(x, bad, nll), "nn_nll_loss", "label 4", "[3,4]");
    misuse("nll shape", nn_nll_loss(v3, lab, nll), "nn_nll_loss", "log_probs", "[3]");
    misuse("multi-margin label", nn_multi_margin_loss(x, bad, mm), "nn_multi_margin_loss",
           "label 4", "[3,4]");
    misuse("multi-margin -100", nn_multi_margin_loss(x, ign, mm), "nn_multi_margin_loss",
           "label -100", "[3,4]");
    mm.p = 3;
    misuse("multi-margin p", nn_multi_margin_loss(x, lab, mm), "nn_multi_margin_loss", "p == 1",
           "p 3");
    mm.p = 0;
    misuse("multi-margin shape", nn_multi_margin_loss(x3, lab, mm), "nn_multi_margin_loss",
           "[2,3,4]", "[N,C]");

    /* Element-wise losses: the target's shape. */
    misuse("mse", nn_mse(x, t43), "nn_mse", "[3,4]", "[4,3]");
    misuse("mse_loss", nn_mse_loss(x, t43, NN_REDUCE_SUM), "nn_mse_loss", "[3,4]", "[4,3]");
    misuse("mse_loss reduction", nn_mse_loss(x, x, (nn_reduction)7), "nn_mse_loss", "reduction 7",
           NULL);
    misuse("l1", nn_l1_loss(x, t43, NN_REDUCE_MEAN), "nn_l1_loss", "[3,4]", "[4,3]");
    misuse("smooth l1", nn_smooth_l1_loss(x, t43, sl), "nn_smooth_l1_loss", "[3,4]", "[4,3]");
    sl.beta = -1.0f;
    misuse("smooth l1 beta", nn_smooth_l1_loss(x, x, sl), "nn_smooth_l1_loss", "beta", "-1");
    misuse("huber", nn_huber_loss(x, t43, hu), "nn_huber_loss", "[3,4]", "[4,3]");
    hu.delta = -0.5f;
    misuse("huber delta", nn_huber_loss(x, x, hu), "nn_huber_loss", "delta", "-0.5");
    misuse("kl", nn_kl_div(x, t43, kl), "nn_kl_div", "[3,4]", "[4,3]");
    misuse("bce", nn_binary_cross_entropy(p, t43, bce), "nn_binary_cross_entropy", "[3,4]",
           "[4,3]");
    misuse("bce range", nn_binary_cross_entropy(x, x, bce), "nn_binary_cross_entropy", "[0,1]",
           "[3,4]");
    bce.pos_weight = v3;
    misuse("bce pos_weight", nn_binary_cross_entropy(p, p, bce), "nn_binary_cross_entropy",
           "pos_weight", NULL);
    misuse("bce logits pos_weight shape", nn_binary_cross_entropy_with_logits(x, p, bce),
           "nn_binary_cross_entropy_with_logits", "pos_weight [3]", "[3,4]");
    bce.pos_weight = NULL;
    bce.weight = w5;
    misuse("bce weight shape", nn_binary_cross_entropy_with_logits(x, p, bce),
           "nn_binary_cross_entropy_with_logits", "weight [5]", "[3,4]");
    bce.weight = NULL;
    misuse("bce logits target", nn_binary_cross_entropy_with_logits(x, t43, bce),
           "nn_binary_cross_entropy_with_logits", "[3,4]", "[4,3]");

    /* Gaussian NLL: var's shape and sign. */
    misuse("gnll target", nn_gaussian_nll_loss(x, t43, v34, gn), "nn_gaussian_nll_loss", "[3,4]",
           "[4,3]");
    misuse("gnll var shape", nn_gaussian_nll_loss(x, x, v2, gn), "nn_gaussian_nll_loss", "var [2]",
           "[3,4]");
    NN_TEST_CHECK(nn_gaussian_nll_loss(x, x, v3, gn) != NULL && nn_test_msgs == 0, "var [3] for [3,4]");
    v34->data[5] = -0.25f;
    misuse("gnll negative var", nn_gaussian_nll_loss(x, x, v34, gn), "nn_gaussian_nll_loss",
           "negative", "-0.25");

    /* Pair and triplet losses. */
    misuse("cosine target", nn_cosine_embedding_loss(x, x, v2, mo), "nn_cosine_embedding_loss",
           "[3,4]", "target [2]");
    misuse("cosine unbatched target", nn_cosine_embedding_loss(x1, x1, v1, mo),
           "nn_cosine_embedding_loss", "x1 [4]", "target [1]");
    misuse("cosine x2", nn_cosine_embedding_loss(x, t43, v3, mo), "nn_cosine_embedding_loss",
           "x2 [4,3]", NULL);
    misuse("ranking", nn_margin_ranking_loss(x, x, t43, mo), "nn_margin_ranking_loss",
           "target [4,3]", "[3,4]");
    misuse("triplet", nn_triplet_margin_loss(x, x, t43, tr), "nn_triplet_margin_loss",
           "negative [4,3]", "[3,4]");
    tr.p = -1.0f;
    misuse("triplet p", nn_triplet_margin_loss(x, x, x, tr), "nn_triplet_margin_loss", "p must",
           "-1");
    nn_set_error_hook(NULL, NULL);
    nn_graph_free(g);
}

/* ---- semantics beyond the golden cases ---- */

static void test_semantics(void) {
    nn_graph *g = nn_graph_new();
    float xd[12] = {0.3f, -1.2f, 2.0f, 0.1f, 1.5f, 0.2f, -0.7f, 0.9f, -2.0f, 0.4f, 1.1f, 0.0f};
    float yd[12] = {1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0};
    int lab[3] = {0, 3, 1}, all_ign[3] = {-100, -100, -100};
    nn_tensor *x = nn_requires_grad(nn_tensor_from(g, xd, NN_SHAPE(3, 4)), 1);
    nn_tensor *onehot = nn_tensor_from(g, yd, NN_SHAPE(3, 4)), *a, *b;
    nn_ce_opts ce;
    float ga[12];
    int i, same;
    memset(&ce, 0, sizeof ce);

    /* Soft targets that are one-hot give the integer-label loss and gradient. */
    ce.label_smoothing = 0.1f;
    a = nn_cross_entropy(x, lab, ce);
    nn_backward(a);
    memcpy(ga, nn_grad(x), sizeof ga);
    b = nn_cross_entropy_soft(x, onehot, ce);
    memset(nn_grad(x), 0, sizeof ga);
    nn_backward(b);
    NN_TEST_CHECK(fabsf(nn_item(a) - nn_item(b)) < 1e-6f, "soft one-hot = labels: %g vs %g",
                  (double)nn_item(a), (double)nn_item(b));
    nn_test_close(nn_grad(x), ga, 12, 1e-5f, 1e-6f, "soft one-hot gradient = labels'");

    /* All labels ignored: the mean is 0/0 (NaN, as PyTorch), the sum 0. */
    ce.label_smoothing = 0.0f;
    a = nn_cross_entropy(x, all_ign, ce);
    NN_TEST_CHECK(a && nn_item(a) != nn_item(a), "all ignored: mean NaN, got %g",
                  (double)nn_item(a));
    ce.reduction = NN_REDUCE_SUM;
    a = nn_cross_entropy(x, all_ign, ce);
    NN_TEST_CHECK(a && nn_item(a) == 0.0f, "all ignored: sum 0, got %g", (double)nn_item(a));
    ce.reduction = NN_REDUCE_NONE;
    a = nn_cross_entropy(x, lab, ce);
    NN_TEST_CHECK(a && a->ndim == 1 && a->shape[0] == 3, "none: one loss per sample");

    /* nn_mse is nn_mse_loss with the mean; reductions relate as they should. */
    a = nn_mse(x, onehot);
    b = nn_mse_loss(x, onehot, NN_REDUCE_SUM);
    NN_TEST_CHECK(fabsf(nn_item(a) * 12.0f - nn_item(b)) < 1e-5f, "mse mean x 12 = sum");
    b = nn_mse_loss(x, onehot, NN_REDUCE_NONE);
    for (i = 0, same = 1; i < 12; i++)
        same &= fabsf(b->data[i] - (xd[i] - yd[i]) * (xd[i] - yd[i])) < 1e-6f;
    NN_TEST_CHECK(same && b->ndim == 2, "mse none: the squared errors");

    /* The margin defaults: 0 means 1 unless zero_margin. */
    {
        nn_triplet_opts t0, t1;
        nn_multi_margin_opts m0, m1;
        nn_tensor *p = nn_tensor_from(g, yd, NN_SHAPE(3, 4));
        memset(&t0, 0, sizeof t0);
        t1 = t0;
        t1.margin = 1.0f;
        NN_TEST_CHECK(nn_item(nn_triplet_margin_loss(x, p, x, t0)) ==
                          nn_item(nn_triplet_margin_loss(x, p, x, t1)), "triplet margin 0 -> 1");
        t0.zero_margin = 1;
        a = nn_triplet_margin_loss(x, x, x, t0);
        NN_TEST_CHECK(nn_item(a) == 0.0f, "zero_margin: identical triplets cost 0, got %g",
                      (double)nn_item(a));
        memset(&m0, 0, sizeof m0);
        m1 = m0;
        m1.margin = 1.0f;
        m1.p = 1;
        NN_TEST_CHECK(nn_item(nn_multi_margin_loss(x, lab, m0)) ==
                          nn_item(nn_multi_margin_loss(x, lab, m1)), "multi-margin defaults");
    }

    /* KL batchmean = sum / N. */
    {
        nn_kl_div_opts k;
        float s;
        memset(&k, 0, sizeof k);
        k.reduction = NN_REDUCE_SUM;
        s = nn_item(nn_kl_div(x, onehot, k));
        k.reduction = NN_REDUCE_BATCHMEAN;
        NN_TEST_CHECK(fabsf(nn_item(nn_kl_div(x, onehot, k)) - s / 3.0f) < 1e-6f, "batchmean");
    }

    /* A batch of one and huge logits stay finite. */
    {
        float big[3] = {1e30f, -1e30f, 0.0f};
        int l1[1] = {1};
        nn_tensor *xb = nn_requires_grad(nn_tensor_from(g, big, NN_SHAPE(1, 3)), 1);
        ce.reduction = NN_REDUCE_MEAN;
        a = nn_cross_entropy(xb, l1, ce);
        nn_backward(a);
        NN_TEST_CHECK(nn_item(a) == 2e30f && nn_grad(xb)[0] == 1.0f && nn_grad(xb)[1] == -1.0f,
                      "huge logits: loss %g, grads %g %g", (double)nn_item(a),
                      (double)nn_grad(xb)[0], (double)nn_grad(xb)[1]);
    }
    nn_graph_free(g);
}

/* Gradients accumulate: an input used twice, a persistent parameter over
   two backward passes, and an intermediate tensor from another op. */
static void test_accumulate(void) {
    nn_graph *g = nn_graph_new();
    float xd[6] = {0.3f, -1.2f, 2.0f, 0.1f, 1.5f, -0.4f}, yd[6] = {1, 0, 0.5f, 0, -1, 2};
    nn_tensor *w = nn_requires_grad(nn_tensor_from(NULL, xd, NN_SHAPE(2, 3)), 1);
    nn_tensor *y, *x, *l;
    nn_huber_opts hu;
    int i, ok;
    memset(&hu, 0, sizeof hu);
    /* d/dw sum_i (w_i - y_i)^2 twice (two passes) = 4 (w - y). */
    for (i = 0; i < 2; i++) {
        nn_graph_reset(g);
        y = nn_tensor_from(g, yd, NN_SHAPE(2, 3));
        nn_backward(nn_sum(nn_mse_loss(w, y, NN_REDUCE_NONE)));
    }
    for (i = 0, ok = 1; i < 6; i++) ok &= fabsf(nn_grad(w)[i] - 4.0f * (xd[i] - yd[i])) < 1e-5f;
    NN_TEST_CHECK(ok, "persistent: two passes accumulate");
    /* An input used twice: kl(x, x) with a log target is exp(x)(x - x) = 0, whose
       gradient is -e^x + e^x (x - x + 1) = 0 in total. */
    nn_graph_reset(g);
    x = nn_requires_grad(nn_tensor_from(g, xd, NN_SHAPE(2, 3)), 1);
    {
        nn_kl_div_opts k;
        memset(&k, 0, sizeof k);
        k.log_target = 1;
        k.reduction = NN_REDUCE_SUM;
        nn_backward(nn_kl_div(x, x, k));
    }
    for (i = 0, ok = 1; i < 6; i++) ok &= fabsf(nn_grad(x)[i]) < 1e-5f;
    NN_TEST_CHECK(ok, "the same tensor as input and target: the parts add up");
    /* Through another op: huber(2 x, y) with delta 1. */
    nn_graph_reset(g);
    x = nn_requires_grad(nn_tensor_from(g, xd, NN_SHAPE(2, 3)), 1);
    y = nn_tensor_from(g, yd, NN_SHAPE(2, 3));
    l = nn_huber_loss(nn_mul_scalar(x, 2.0f), y, hu);
    nn_backward(l);
    for (i = 0, ok = 1; i < 6; i++) {
        float d = 2.0f * xd[i] - yd[i], gd = d > 1.0f ? 1.0f : (d < -1.0f ? -1.0f : d);
        ok &= fabsf(nn_grad(x)[i] - 2.0f * gd / 6.0f) < 1e-6f;
    }
    NN_TEST_CHECK(ok, "huber through nn_mul_scalar");
    nn_tensor_free(w);
    nn_graph_free(g);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    test_golden(dir);
    test_misuse();
    test_semantics();
    test_accumulate();
    return nn_test_summary("test_loss");
}
