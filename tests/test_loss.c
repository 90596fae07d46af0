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
    NN_TEST_CHECK(cases >= 300, "golden: %d cases read", cases);
    NN_TEST_CHECK(bad_fd == 0, "finite differences: %d of %d gradients disagree", bad_fd, fd_cases);
    printf("golden: %d cases, %d finite-difference gradient checks\n", cases, fd_cases);
    nn_graph_free(g);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    test_golden(dir);
    return nn_test_summary("test_loss");
}
