/* Every optimizer, gradient clipping and every LR schedule against PyTorch;
   LARS, LAMB and Lookahead against transcriptions of their papers; state
   save/restore (bitwise continuation), parameter groups, batch-size
   schedules, snapshot ensembles and the LR range test.

   Golden data: tests/golden/optim_rules.txt, made by
   tests/golden/make_golden_optim.py (which documents the problem and the
   format).  Gradients are not backpropagated: every step sets
   g_j = p_j c_j + s_j(t) from the same formula on both sides, so what is
   compared is the update rule alone.  Optimizers must follow torch.optim's
   parameter trajectory to 1e-5 relative (atol 1e-6) over 30 steps; schedules
   torch.optim.lr_scheduler's lr (and momentum) sequence over 200 steps to
   1e-5 relative.

   usage: test_optimizers [golden-dir]   (default "tests/golden", run from the root) */
#define _POSIX_C_SOURCE 200809L /* getpid: a temporary file per process */
#include <unistd.h>
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define NP 26            /* parameter floats of the test model */
#define MAXN 256

static float g_init[NP];

static nn_module *make_net(void) {
    return nn_sequential(nn_linear(3, 4), nn_relu(), nn_linear(4, 2), NULL);
}

static void put_params(nn_module *m, const float *v) {
    int n, i;
    nn_param *ps = nn_parameters(m, &n);
    size_t off = 0;
    for (i = 0; i < n; i++) {
        memcpy(ps[i].tensor->data, v + off, ps[i].tensor->numel * sizeof(float));
        off += ps[i].tensor->numel;
    }
}

static void get_params(nn_module *m, float *v) {
    int n, i;
    nn_param *ps = nn_parameters(m, &n);
    size_t off = 0;
    for (i = 0; i < n; i++) {
        memcpy(v + off, ps[i].tensor->data, ps[i].tensor->numel * sizeof(float));
        off += ps[i].tensor->numel;
    }
}

/* g_j = p_j c_j + s_j(t), rounded like the float32 PyTorch expression. */
static void set_grads(nn_module *m, int t) {
    int n, i, j = 0;
    size_t k;
    nn_param *ps = nn_parameters(m, &n);
    for (i = 0; i < n; i++) {
        nn_tensor *p = ps[i].tensor;
        float *g = nn_grad_buffer(p);   /* a gradient written by hand */
        for (k = 0; k < p->numel; k++, j++) {
            float c = (float)(0.5 + 0.25 * (double)(j % 7));
            float s = (float)(0.5 * sin(0.37 * (double)t + 0.61 * (double)j));
            float pc = p->data[k] * c;
            g[k] = pc + s;
        }
    }
}

/* ----- golden file reading ----- */

static FILE *gf;

static int tok(char *buf, size_t size) {
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%ds", (int)size - 1);
    return fscanf(gf, fmt, buf) == 1;
}
static int expect(const char *w) {
    char b[64];
    if (!tok(b, sizeof b) || strcmp(b, w) != 0) {
        printf("golden: expected \"%s\"\n", w);
        return 0;
    }
    return 1;
}
static int rd_int(void) {
    int v = 0;
    if (fscanf(gf, "%d", &v) != 1) printf("golden: expected an integer\n");
    return v;
}
static double rd_num(void) {
    double v = 0.0;
    if (fscanf(gf, "%lf", &v) != 1) printf("golden: expected a number\n");
    return v;
}

/* ----- optimizers by case name ----- */

static nn_optim *make_opt(const char *name, nn_module *m, float *clip_norm, float *clip_value) {
    nn_sgd_opts sgd; nn_adagrad_opts ag; nn_rmsprop_opts rp; nn_adadelta_opts ad;
    nn_adam_opts am; nn_adamw_opts aw; nn_adamax_opts ax; nn_nadam_opts na; nn_radam_opts ra;
    nn_group_opts g;
    nn_optim *o = NULL;
    memset(&sgd, 0, sizeof sgd); memset(&ag, 0, sizeof ag); memset(&rp, 0, sizeof rp);
    memset(&ad, 0, sizeof ad); memset(&am, 0, sizeof am); memset(&aw, 0, sizeof aw);
    memset(&ax, 0, sizeof ax); memset(&na, 0, sizeof na); memset(&ra, 0, sizeof ra);
    memset(&g, 0, sizeof g);
    *clip_norm = *clip_value = 0.0f;
    sgd.lr = 0.05f;
    if (!strcmp(name, "sgd")) o = nn_sgd(m, sgd);
    else if (!strcmp(name, "sgd_wd")) { sgd.weight_decay = 0.1f; o = nn_sgd(m, sgd); }
    else if (!strcmp(name, "sgd_momentum")) { sgd.momentum = 0.9f; o = nn_sgd(m, sgd); }
    else if (!strcmp(name, "sgd_dampening_wd")) {
        sgd.momentum = 0.8f; sgd.dampening = 0.3f; sgd.weight_decay = 0.05f; o = nn_sgd(m, sgd);
    } else if (!strcmp(name, "sgd_nesterov_wd")) {
        sgd.momentum = 0.9f; sgd.nesterov = 1; sgd.weight_decay = 0.01f; o = nn_sgd(m, sgd);
    } else if (!strcmp(name, "adagrad")) { ag.lr = 0.1f; o = nn_adagrad(m, ag); }
    else if (!strcmp(name, "adagrad_wd_decay")) {
        ag.lr = 0.1f; ag.lr_decay = 0.01f; ag.weight_decay = 0.1f;
        ag.initial_accumulator_value = 0.5f; ag.eps = 1e-6f; o = nn_adagrad(m, ag);
    } else if (!strcmp(name, "rmsprop")) { rp.lr = 0.01f; o = nn_rmsprop(m, rp); }
    else if (!strcmp(name, "rmsprop_wd")) {
        rp.lr = 0.01f; rp.weight_decay = 0.1f; rp.alpha = 0.9f; o = nn_rmsprop(m, rp);
    } else if (!strcmp(name, "rmsprop_centered_momentum")) {
        rp.lr = 0.01f; rp.centered = 1; rp.momentum = 0.8f; o = nn_rmsprop(m, rp);
    } else if (!strcmp(name, "rmsprop_momentum_wd")) {
        rp.lr = 0.005f; rp.momentum = 0.9f; rp.weight_decay = 0.05f; o = nn_rmsprop(m, rp);
    } else if (!strcmp(name, "adadelta")) o = nn_adadelta(m, ad);
    else if (!strcmp(name, "adadelta_wd")) {
        ad.lr = 0.5f; ad.rho = 0.8f; ad.weight_decay = 0.1f; ad.eps = 1e-5f; o = nn_adadelta(m, ad);
    } else if (!strcmp(name, "adam")) { am.lr = 0.01f; o = nn_adam(m, am); }
    else if (!strcmp(name, "adam_wd")) {
        am.lr = 0.01f; am.weight_decay = 0.1f; am.beta1 = 0.8f; am.beta2 = 0.99f; o = nn_adam(m, am);
    } else if (!strcmp(name, "adam_amsgrad")) { am.lr = 0.01f; am.amsgrad = 1; o = nn_adam(m, am); }
    else if (!strcmp(name, "adam_amsgrad_wd")) {
        am.lr = 0.02f; am.amsgrad = 1; am.weight_decay = 0.05f; am.eps = 1e-6f; o = nn_adam(m, am);
    } else if (!strcmp(name, "adamw")) { aw.lr = 0.01f; o = nn_adamw(m, aw); }
    else if (!strcmp(name, "adamw_nowd")) { aw.lr = 0.01f; aw.weight_decay = -1.0f; o = nn_adamw(m, aw); }
    else if (!strcmp(name, "adamw_wd_amsgrad")) {
        aw.lr = 0.01f; aw.weight_decay = 0.3f; aw.amsgrad = 1; o = nn_adamw(m, aw);
    } else if (!strcmp(name, "adamax")) o = nn_adamax(m, ax);
    else if (!strcmp(name, "adamax_wd")) {
        ax.lr = 0.01f; ax.weight_decay = 0.1f; ax.beta1 = 0.85f; ax.beta2 = 0.95f; o = nn_adamax(m, ax);
    } else if (!strcmp(name, "nadam")) o = nn_nadam(m, na);
    else if (!strcmp(name, "nadam_wd")) {
        na.lr = 0.01f; na.weight_decay = 0.1f; na.momentum_decay = 0.01f; o = nn_nadam(m, na);
    } else if (!strcmp(name, "radam")) { ra.lr = 0.01f; o = nn_radam(m, ra); }
    else if (!strcmp(name, "radam_wd")) {
        ra.lr = 0.01f; ra.weight_decay = 0.1f; ra.beta2 = 0.9f; o = nn_radam(m, ra);
    } else if (!strcmp(name, "sgd_clip_norm")) {
        sgd.momentum = 0.9f; o = nn_sgd(m, sgd); *clip_norm = 0.5f;
    } else if (!strcmp(name, "adam_clip_value")) {
        am.lr = 0.01f; o = nn_adam(m, am); *clip_value = 0.3f;
    } else if (!strcmp(name, "sgd_groups")) {
        sgd.momentum = 0.9f; sgd.weight_decay = 0.1f; o = nn_sgd(m, sgd);
        g.lr_scale = 0.1f;
        NN_TEST_CHECK(nn_optim_group(o, "0.", g) == 2, "group \"0.\" matches two tensors");
        memset(&g, 0, sizeof g);
        g.weight_decay = -1.0f; g.max_ndim = 1;
        NN_TEST_CHECK(nn_optim_group(o, "*", g) == 2, "max_ndim 1 matches the two biases");
    } else if (!strcmp(name, "adamw_groups")) {
        aw.lr = 0.01f; aw.weight_decay = 0.2f; o = nn_adamw(m, aw);
        g.lr = 0.002f;
        nn_optim_group(o, "0.", g);
        memset(&g, 0, sizeof g);
        g.weight_decay = -1.0f;
        NN_TEST_CHECK(nn_optim_group(o, "*2.bias", g) == 1, "suffix pattern matches one");
    } else if (!strcmp(name, "adam_frozen")) {
        am.lr = 0.01f; o = nn_adam(m, am);
        NN_TEST_CHECK(nn_optim_freeze(o, "2.", 1) == 2, "freeze matches two tensors");
    }
    return o;
}

static void test_optimizer_case(const char *name, int steps, int nrec) {
    nn_module *m = make_net();
    float clip_norm, clip_value, p[NP], want[NP], worst = 0.0f;
    nn_optim *o;
    int t, r = 0, k, ok = 1;
    put_params(m, g_init);
    o = make_opt(name, m, &clip_norm, &clip_value);
    NN_TEST_CHECK(o != NULL, "%s: made by the C side", name);
    for (t = 1; t <= steps && o; t++) {
        float norm = 0.0f;
        set_grads(m, t);
        if (clip_norm > 0.0f) norm = nn_clip_grad_norm(o, clip_norm);
        if (clip_value > 0.0f) nn_clip_grad_value(o, clip_value);
        nn_step(o);
        if (r < nrec && (t <= 5 || t % 5 == 0)) {
            char what[96];
            float gnorm;
            int gt;
            r++;
            if (!expect("s")) break;
            gt = rd_int();
            gnorm = (float)rd_num();
            for (k = 0; k < NP; k++) want[k] = (float)rd_num();
            get_params(m, p);
            NN_TEST_CHECK(gt == t, "%s: golden step %d, here %d", name, gt, t);
            snprintf(what, sizeof what, "%s step %d", name, t);
            ok &= nn_test_close(p, want, NP, 1e-5f, 1e-6f, what);
            if (clip_norm > 0.0f) {
                snprintf(what, sizeof what, "%s clip_grad_norm step %d", name, t);
                nn_test_close(&norm, &gnorm, 1, 1e-5f, 0.0f, what);
            }
            for (k = 0; k < NP; k++) {
                float d = fabsf(p[k] - want[k]) / (1e-6f + 1e-5f * fabsf(want[k]));
                if (d > worst) worst = d;
            }
        }
    }
    printf("  %-28s worst deviation %.2f of the tolerance%s\n", name, (double)worst, ok ? "" : "  FAILED");
    nn_optim_free(o);
    nn_module_free(m);
}

/* ----- schedules by name ----- */

static nn_sched *make_sched(const char *name, nn_optim **opt, nn_module *m) {
    nn_sgd_opts so;
    nn_adam_opts ao;
    nn_optim *o;
    memset(&so, 0, sizeof so);
    memset(&ao, 0, sizeof ao);
    so.lr = 0.1f;
    so.momentum = 0.9f;
    ao.lr = 0.1f;
    o = *opt = !strcmp(name, "onecycle_adam") ? nn_adam(m, ao) : nn_sgd(m, so);
    if (!strcmp(name, "constant")) {
        nn_constant_lr_opts c; memset(&c, 0, sizeof c); c.factor = 0.5f; c.total_iters = 30;
        return nn_constant_lr(o, c);
    } else if (!strcmp(name, "step")) {
        nn_step_lr_opts c; memset(&c, 0, sizeof c); c.step_size = 30; c.gamma = 0.5f;
        return nn_step_lr(o, c);
    } else if (!strcmp(name, "multistep")) {
        nn_multistep_lr_opts c; memset(&c, 0, sizeof c);
        c.milestones[0] = 50; c.milestones[1] = 120; c.milestones[2] = 160; c.gamma = 0.3f;
        return nn_multistep_lr(o, c);
    } else if (!strcmp(name, "exponential")) {
        nn_exponential_lr_opts c; memset(&c, 0, sizeof c); c.gamma = 0.98f;
        return nn_exponential_lr(o, c);
    } else if (!strcmp(name, "polynomial")) {
        nn_polynomial_lr_opts c; memset(&c, 0, sizeof c); c.total_iters = 150; c.power = 2.0f;
        return nn_polynomial_lr(o, c);
    } else if (!strcmp(name, "polynomial_end")) {
        nn_polynomial_lr_opts c; memset(&c, 0, sizeof c);
        c.total_iters = 120; c.power = 0.5f; c.end_lr = 0.01f;
        return nn_polynomial_lr(o, c);
    } else if (!strcmp(name, "cosine")) {
        nn_cosine_annealing_opts c; memset(&c, 0, sizeof c); c.T_max = 80; c.eta_min = 0.001f;
        return nn_cosine_annealing(o, c);
    } else if (!strcmp(name, "warm_restarts")) {
        nn_warm_restarts_opts c; memset(&c, 0, sizeof c); c.T_0 = 10; c.T_mult = 2; c.eta_min = 0.001f;
        return nn_warm_restarts(o, c);
    } else if (!strcmp(name, "warm_restarts_flat")) {
        nn_warm_restarts_opts c; memset(&c, 0, sizeof c); c.T_0 = 25;
        return nn_warm_restarts(o, c);
    } else if (!strncmp(name, "cyclic_", 7)) {
        nn_cyclic_lr_opts c; memset(&c, 0, sizeof c);
        c.base_lr = 0.01f; c.max_lr = 0.1f;
        if (!strcmp(name, "cyclic_triangular")) { c.step_size_up = 20; c.step_size_down = 30; }
        else if (!strcmp(name, "cyclic_triangular2")) {
            c.step_size_up = 25; c.mode = NN_CYCLIC_TRIANGULAR2; c.base_momentum = 0.85f; c.max_momentum = 0.95f;
        } else { c.step_size_up = 15; c.mode = NN_CYCLIC_EXP_RANGE; c.gamma = 0.99f; }
        return nn_cyclic_lr(o, c);
    } else if (!strncmp(name, "onecycle", 8)) {
        nn_onecycle_opts c; memset(&c, 0, sizeof c);
        c.max_lr = 0.5f; c.total_steps = 200;
        if (!strcmp(name, "onecycle_linear_3phase")) {
            c.pct_start = 0.25f; c.anneal_strategy = NN_ANNEAL_LINEAR; c.three_phase = 1;
            c.div_factor = 10.0f; c.final_div_factor = 100.0f;
        } else if (!strcmp(name, "onecycle_adam")) {
            c.max_lr = 0.01f; c.total_steps = 0; c.epochs = 4; c.steps_per_epoch = 50;
            c.base_momentum = 0.8f; c.max_momentum = 0.9f;
        }
        return nn_onecycle(o, c);
    } else if (!strcmp(name, "warmup")) {
        nn_warmup_opts c; memset(&c, 0, sizeof c); c.warmup_steps = 20; c.start_factor = 0.1f;
        return nn_warmup(o, c);
    } else if (!strcmp(name, "warmup_cosine")) {
        nn_cosine_annealing_opts cc; nn_warmup_opts c;
        memset(&cc, 0, sizeof cc); memset(&c, 0, sizeof c);
        cc.T_max = 190;
        c.warmup_steps = 10; c.start_factor = 0.25f; c.then = nn_cosine_annealing(o, cc);
        return nn_warmup(o, c);
    } else if (!strcmp(name, "plateau")) {
        nn_reduce_on_plateau_opts c; memset(&c, 0, sizeof c);
        c.factor = 0.5f; c.patience = 5; c.threshold = 1e-3f; c.cooldown = 3; c.min_lr = 0.002f;
        return nn_reduce_on_plateau(o, c);
    } else if (!strcmp(name, "plateau_max_abs")) {
        nn_reduce_on_plateau_opts c; memset(&c, 0, sizeof c);
        c.mode = NN_MODE_MAX; c.factor = 0.3f; c.patience = 3; c.threshold = 0.01f;
        c.threshold_mode = NN_THRESHOLD_ABS;
        return nn_reduce_on_plateau(o, c);
    } else if (!strcmp(name, "inverse_time")) {
        nn_inverse_time_lr_opts c; memset(&c, 0, sizeof c); c.decay_rate = 0.05f;
        return nn_inverse_time_lr(o, c);
    } else if (!strcmp(name, "inverse_time_staircase")) {
        nn_inverse_time_lr_opts c; memset(&c, 0, sizeof c);
        c.decay_rate = 0.5f; c.decay_steps = 10; c.staircase = 1;
        return nn_inverse_time_lr(o, c);
    }
    return NULL;
}

static void test_schedule_case(const char *name, int n, int has_metric, int has_mom) {
    static float metric[MAXN], want_lr[MAXN], want_mom[MAXN], lr[MAXN], mom[MAXN];
    nn_module *m = nn_linear(1, 1);
    nn_optim *o = NULL;
    nn_sched *s;
    char what[96];
    int i;
    if (n > MAXN) n = MAXN;
    if (has_metric && expect("metric"))
        for (i = 0; i < n; i++) metric[i] = (float)rd_num();
    if (expect("lr"))
        for (i = 0; i < n; i++) want_lr[i] = (float)rd_num();
    if (has_mom && expect("mom"))
        for (i = 0; i < n; i++) want_mom[i] = (float)rd_num();
    s = make_sched(name, &o, m);
    NN_TEST_CHECK(s != NULL, "%s: made by the C side", name);
    for (i = 0; i < n && s; i++) {
        lr[i] = nn_get_lr(o);
        mom[i] = nn_get_momentum(o);
        if (has_metric) nn_sched_step_metric(s, metric[i]);
        else nn_sched_step(s);
    }
    snprintf(what, sizeof what, "schedule %s lr", name);
    nn_test_close(lr, want_lr, (size_t)n, 1e-5f, 1e-9f, what);
    if (has_mom) {
        snprintf(what, sizeof what, "schedule %s momentum", name);
        nn_test_close(mom, want_mom, (size_t)n, 1e-5f, 1e-9f, what);
    }
    nn_sched_free(s);
    nn_optim_free(o);
    nn_module_free(m);
}

static int run_golden(const char *dir) {
    char path[600], word[64], name[64];
    int i, ncases = 0, nsched = 0;
    snprintf(path, sizeof path, "%s/optim_rules.txt", dir);
    if (!(gf = fopen(path, "r"))) {
        printf("golden %s: cannot open (run from the repository root or pass the golden dir)\n", path);
        NN_TEST_CHECK(0, "golden file present");
        return 0;
    }
    if (!expect("nn.h-golden-optim") || rd_int() != 1 || !expect("init") || rd_int() != NP) {
        NN_TEST_CHECK(0, "golden header");
        fclose(gf);
        return 0;
    }
    for (i = 0; i < NP; i++) g_init[i] = (float)rd_num();
    while (tok(word, sizeof word)) {
        if (!strcmp(word, "case")) {
            int steps, nrec;
            tok(name, sizeof name);
            steps = rd_int();
            nrec = rd_int();
            test_optimizer_case(name, steps, nrec);
            ncases++;
        } else if (!strcmp(word, "sched")) {
            int n, hm, hmo;
            tok(name, sizeof name);
            n = rd_int();
            hm = rd_int();
            hmo = rd_int();
            test_schedule_case(name, n, hm, hmo);
            nsched++;
        } else {
            printf("golden: unexpected \"%s\"\n", word);
            NN_TEST_CHECK(0, "golden format");
            break;
        }
    }
    fclose(gf);
    printf("golden: %d optimizer cases, %d schedules\n", ncases, nsched);
    NN_TEST_CHECK(ncases >= 30 && nsched >= 20, "all golden cases ran");
    return 1;
}

/* ----- LARS, LAMB and Lookahead against their papers, in double ----- */

/* Per-tensor views of the 26 floats: sizes 12, 4, 8, 2. */
static const int tsize[4] = {12, 4, 8, 2};

static void ref_grads(const double *w, double *g, int t) {
    int j;
    for (j = 0; j < NP; j++)
        g[j] = w[j] * (0.5 + 0.25 * (double)(j % 7)) + 0.5 * sin(0.37 * (double)t + 0.61 * (double)j);
}

/* You, Gitman, Ginsburg 2017, Algorithm 1 (LARS): per layer l,
   lambda = eta ||w|| / (||grad|| + beta ||w||); v = m v + gamma lambda (grad + beta w); w -= v. */
static void ref_lars(double *w, int steps, double gamma, double m, double beta, double eta, double eps) {
    double v[NP] = {0}, g[NP];
    int t, l, j, off;
    for (t = 1; t <= steps; t++) {
        ref_grads(w, g, t);
        for (off = 0, l = 0; l < 4; off += tsize[l], l++) {
            double wn = 0, gn = 0, lambda;
            for (j = off; j < off + tsize[l]; j++) { wn += w[j] * w[j]; gn += g[j] * g[j]; }
            wn = sqrt(wn); gn = sqrt(gn);
            lambda = (wn > 0 && gn > 0) ? eta * wn / (gn + beta * wn + eps) : eta;
            for (j = off; j < off + tsize[l]; j++) {
                v[j] = m * v[j] + gamma * lambda * (g[j] + beta * w[j]);
                w[j] -= v[j];
            }
        }
    }
}

/* You et al. 2019, Algorithm 2 (LAMB): m, v with bias correction,
   r = m_hat/(sqrt(v_hat)+eps); w -= eta phi(||w||)/||r + lambda w|| (r + lambda w), phi = identity. */
static void ref_lamb(double *w, int steps, double eta, double b1, double b2, double eps, double lambda) {
    double m[NP] = {0}, v[NP] = {0}, g[NP], r[NP];
    int t, l, j, off;
    for (t = 1; t <= steps; t++) {
        ref_grads(w, g, t);
        for (off = 0, l = 0; l < 4; off += tsize[l], l++) {
            double wn = 0, rn = 0, ratio;
            for (j = off; j < off + tsize[l]; j++) {
                m[j] = b1 * m[j] + (1 - b1) * g[j];
                v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
                r[j] = (m[j] / (1 - pow(b1, t))) / (sqrt(v[j] / (1 - pow(b2, t))) + eps) + lambda * w[j];
                wn += w[j] * w[j];
                rn += r[j] * r[j];
            }
            wn = sqrt(wn); rn = sqrt(rn);
            ratio = (wn > 0 && rn > 0) ? wn / rn : 1.0;
            for (j = off; j < off + tsize[l]; j++) w[j] -= eta * ratio * r[j];
        }
    }
}

/* Zhang, Lucas, Hinton, Ba 2019, Algorithm 1 (Lookahead) around SGD with
   momentum (inner state kept across slow steps, as in the paper's code). */
static void ref_lookahead_sgd(double *w, int steps, double lr, double mu, int k, double alpha) {
    double slow[NP], buf[NP] = {0}, g[NP];
    int t, j;
    memcpy(slow, w, sizeof slow);
    for (t = 1; t <= steps; t++) {
        ref_grads(w, g, t);
        for (j = 0; j < NP; j++) {
            buf[j] = t == 1 ? g[j] : mu * buf[j] + g[j];
            w[j] -= lr * buf[j];
        }
        if (t % k == 0)
            for (j = 0; j < NP; j++) {
                slow[j] += alpha * (w[j] - slow[j]);
                w[j] = slow[j];
            }
    }
}

static void compare_ref(const char *what, nn_module *m, const double *ref) {
    float p[NP], want[NP];
    int j;
    get_params(m, p);
    for (j = 0; j < NP; j++) want[j] = (float)ref[j];
    nn_test_close(p, want, NP, 1e-5f, 1e-6f, what);
}

static void run_opt(nn_module *m, nn_optim *o, int t0, int steps) {
    int t;
    for (t = t0; t < t0 + steps; t++) {
        set_grads(m, t);
        nn_step(o);
    }
}

static void test_papers(void) {
    double w[NP];
    int j, wd;
    for (wd = 0; wd <= 1; wd++) {
        nn_module *m = make_net();
        nn_lars_opts lo;
        nn_optim *o;
        memset(&lo, 0, sizeof lo);
        lo.lr = 2.0f; lo.weight_decay = wd ? 0.01f : 0.0f; lo.trust_coefficient = 0.02f;
        put_params(m, g_init);
        o = nn_lars(m, lo);
        run_opt(m, o, 1, 30);
        for (j = 0; j < NP; j++) w[j] = (double)g_init[j];
        ref_lars(w, 30, 2.0, 0.9, wd ? 0.01 : 0.0, 0.02, 1e-8);
        compare_ref(wd ? "LARS with weight decay vs You et al. 2017" : "LARS vs You et al. 2017", m, w);
        nn_optim_free(o);
        nn_module_free(m);
    }
    for (wd = 0; wd <= 1; wd++) {
        nn_module *m = make_net();
        nn_lamb_opts lo;
        nn_optim *o;
        memset(&lo, 0, sizeof lo);
        lo.lr = 0.02f; lo.weight_decay = wd ? 0.1f : 0.0f;
        put_params(m, g_init);
        o = nn_lamb(m, lo);
        run_opt(m, o, 1, 30);
        for (j = 0; j < NP; j++) w[j] = (double)g_init[j];
        ref_lamb(w, 30, 0.02, 0.9, 0.999, 1e-6, wd ? 0.1 : 0.0);
        compare_ref(wd ? "LAMB with weight decay vs You et al. 2019" : "LAMB vs You et al. 2019", m, w);
        nn_optim_free(o);
        nn_module_free(m);
    }
    {
        nn_module *m = make_net();
        nn_sgd_opts so;
        nn_lookahead_opts la;
        nn_optim *o;
        memset(&so, 0, sizeof so);
        so.lr = 0.05f; so.momentum = 0.9f;
        la.k = 4; la.alpha = 0.6f;
        put_params(m, g_init);
        o = nn_lookahead(nn_sgd(m, so), la);
        run_opt(m, o, 1, 30);
        for (j = 0; j < NP; j++) w[j] = (double)g_init[j];
        ref_lookahead_sgd(w, 30, 0.05, 0.9, 4, 0.6);
        compare_ref("Lookahead(SGD momentum) vs Zhang et al. 2019", m, w);
        nn_optim_free(o);
        nn_module_free(m);
    }
    /* Lookahead around any optimizer: the same algorithm written out around
       a plain nn_adam / nn_radam must give bitwise the same weights; and
       Ranger is Lookahead(RAdam) with k=6, alpha=0.5, betas (0.95, 0.999). */
    {
        int which;
        for (which = 0; which < 2; which++) {
            nn_module *a = make_net(), *b = make_net();
            nn_adam_opts ao; nn_radam_opts ro; nn_ranger_opts rg; nn_lookahead_opts la;
            nn_optim *oa, *ob;
            float slow[NP], pa[NP], pb[NP];
            int t;
            memset(&ao, 0, sizeof ao); memset(&ro, 0, sizeof ro); memset(&rg, 0, sizeof rg);
            ao.lr = 0.01f; ro.lr = 0.01f; ro.beta1 = 0.95f; ro.eps = 1e-5f; rg.lr = 0.01f;
            la.k = 5; la.alpha = 0.5f;
            put_params(a, g_init);
            put_params(b, g_init);
            oa = which ? nn_ranger(a, rg) : nn_lookahead(nn_adam(a, ao), la);
            ob = which ? nn_radam(b, ro) : nn_adam(b, ao);
            memcpy(slow, g_init, sizeof slow);
            for (t = 1; t <= 30; t++) {
                int k = which ? 6 : 5;
                set_grads(a, t);
                set_grads(b, t);
                nn_step(oa);
                nn_step(ob);
                if (t % k == 0) {
                    get_params(b, pb);
                    for (j = 0; j < NP; j++) pb[j] = slow[j] = slow[j] + 0.5f * (pb[j] - slow[j]);
                    put_params(b, pb);
                }
            }
            get_params(a, pa);
            get_params(b, pb);
            NN_TEST_CHECK(memcmp(pa, pb, sizeof pa) == 0, "%s equals the algorithm written out",
                          which ? "Ranger" : "Lookahead(Adam)");
            nn_optim_free(oa); nn_optim_free(ob);
            nn_module_free(a); nn_module_free(b);
        }
    }
}

/* ----- save and restore: a run continues bitwise ----- */

static nn_optim *make_cont_opt(int which, nn_module *m, nn_sched **s) {
    nn_sgd_opts so; nn_adam_opts ao; nn_nadam_opts no; nn_rmsprop_opts ro; nn_ranger_opts rg;
    nn_lamb_opts lo;
    nn_optim *o = NULL;
    memset(&so, 0, sizeof so); memset(&ao, 0, sizeof ao); memset(&no, 0, sizeof no);
    memset(&ro, 0, sizeof ro); memset(&rg, 0, sizeof rg); memset(&lo, 0, sizeof lo);
    *s = NULL;
    switch (which) {
    case 0: { /* SGD Nesterov + one-cycle with momentum cycling */
        nn_onecycle_opts c; memset(&c, 0, sizeof c);
        so.lr = 0.05f; so.momentum = 0.9f; so.nesterov = 1; so.weight_decay = 0.01f;
        o = nn_sgd(m, so);
        c.max_lr = 0.2f; c.total_steps = 20;
        *s = nn_onecycle(o, c);
        break;
    }
    case 1: { /* Adam AMSGrad + warmup then warm restarts */
        nn_warm_restarts_opts c; nn_warmup_opts w;
        memset(&c, 0, sizeof c); memset(&w, 0, sizeof w);
        ao.lr = 0.01f; ao.amsgrad = 1;
        o = nn_adam(m, ao);
        c.T_0 = 3; c.T_mult = 2;
        w.warmup_steps = 4; w.then = nn_warm_restarts(o, c);
        *s = nn_warmup(o, w);
        break;
    }
    case 2: { /* NAdam + reduce on plateau */
        nn_reduce_on_plateau_opts c; memset(&c, 0, sizeof c);
        no.lr = 0.01f;
        o = nn_nadam(m, no);
        c.patience = 1; c.factor = 0.5f;
        *s = nn_reduce_on_plateau(o, c);
        break;
    }
    case 3:
        ro.lr = 0.01f; ro.centered = 1; ro.momentum = 0.5f;
        o = nn_rmsprop(m, ro);
        break;
    case 4:
        rg.lr = 0.01f;
        o = nn_ranger(m, rg);
        break;
    default:
        lo.lr = 0.01f;
        o = nn_lamb(m, lo);
        break;
    }
    return o;
}

static void cont_steps(nn_module *m, nn_optim *o, nn_sched *s, int t0, int n) {
    int t;
    for (t = t0; t < t0 + n; t++) {
        set_grads(m, t);
        nn_step(o);
        /* every schedule takes a metric; only reduce-on-plateau uses it */
        if (s) nn_sched_step_metric(s, 1.0f + (float)((t * 7) % 5) * 0.1f);
    }
}

static void test_save_restore(void) {
    static const char *what[] = {"SGD+onecycle", "Adam amsgrad+warmup+SGDR", "NAdam+plateau",
                                 "RMSprop centered", "Ranger", "LAMB"};
    char path[64]; /* per process: tests/run.sh runs configurations at once */
    int which;
    snprintf(path, sizeof path, "/tmp/nn_test_optimizers_%ld.tmp", (long)getpid());
    for (which = 0; which < 6; which++) {
        nn_module *a = make_net(), *b = make_net();
        nn_sched *sa, *sb;
        nn_optim *oa, *ob;
        float mid[NP], pa[NP], pb[NP];
        size_t size;
        void *blob;
        nn_status st;
        put_params(a, g_init);
        oa = make_cont_opt(which, a, &sa);
        cont_steps(a, oa, sa, 1, 10);
        get_params(a, mid);
        size = nn_optim_state_write(oa, sa, NULL, 0);
        blob = malloc(size);
        NN_TEST_CHECK(nn_optim_state_write(oa, sa, blob, size) == size, "%s: state size", what[which]);
        st = nn_optim_save(oa, sa, path);
        NN_TEST_CHECK(st == NN_OK, "%s: save: %s", what[which], nn_error_string());
        cont_steps(a, oa, sa, 11, 10);
        get_params(a, pa);

        /* a fresh run restored after 10 steps, from the file */
        put_params(b, g_init);
        ob = make_cont_opt(which, b, &sb);
        put_params(b, mid);
        st = nn_optim_load(ob, sb, path);
        NN_TEST_CHECK(st == NN_OK, "%s: load: %s", what[which], nn_error_string());
        cont_steps(b, ob, sb, 11, 10);
        get_params(b, pb);
        NN_TEST_CHECK(memcmp(pa, pb, sizeof pa) == 0, "%s: 10 + save + 10 == restore + 10, bitwise",
                      what[which]);
        NN_TEST_CHECK(nn_get_lr(oa) == nn_get_lr(ob), "%s: same lr after the continuation", what[which]);
        /* and from the memory blob */
        nn_optim_free(ob);
        nn_sched_free(sb);
        ob = make_cont_opt(which, b, &sb);
        put_params(b, mid);
        st = nn_optim_state_read(ob, sb, blob, size);
        NN_TEST_CHECK(st == NN_OK, "%s: state_read: %s", what[which], nn_error_string());
        cont_steps(b, ob, sb, 11, 10);
        get_params(b, pb);
        NN_TEST_CHECK(memcmp(pa, pb, sizeof pa) == 0, "%s: blob restore continues bitwise", what[which]);
        /* truncated blob */
        st = nn_optim_state_read(ob, sb, blob, size - 3);
        NN_TEST_CHECK(st == NN_ERR_FORMAT, "%s: truncated state is NN_ERR_FORMAT", what[which]);
        free(blob);
        nn_optim_free(oa); nn_optim_free(ob);
        nn_sched_free(sa); nn_sched_free(sb);
        nn_module_free(a); nn_module_free(b);
    }
    /* errors: a different optimizer kind, a file that is no checkpoint, a missing file */
    {
        nn_module *m = make_net();
        nn_sgd_opts so; nn_adam_opts ao;
        nn_optim *sgd, *adam;
        unsigned char junk[64];
        FILE *f;
        memset(&so, 0, sizeof so); memset(&ao, 0, sizeof ao);
        so.momentum = 0.9f;
        sgd = nn_sgd(m, so);
        adam = nn_adam(m, ao);
        NN_TEST_CHECK(nn_optim_save(sgd, NULL, path) == NN_OK, "save SGD");
        NN_TEST_CHECK(nn_optim_load(adam, NULL, path) == NN_ERR_FORMAT &&
                      strstr(nn_error_string(), "SGD") != NULL,
                      "loading SGD state into Adam: NN_ERR_FORMAT naming it (%s)", nn_error_string());
        memset(junk, 7, sizeof junk);
        f = fopen(path, "wb");
        if (f) { fwrite(junk, 1, sizeof junk, f); fclose(f); }
        NN_TEST_CHECK(nn_optim_load(sgd, NULL, path) == NN_ERR_FORMAT &&
                      strstr(nn_error_string(), "nn_optim_load") != NULL, "not a checkpoint: %s",
                      nn_error_string());
        remove(path);
        NN_TEST_CHECK(nn_optim_load(sgd, NULL, "no/such/dir/state.bin") == NN_ERR_IO,
                      "missing file is NN_ERR_IO");
        nn_optim_free(sgd); nn_optim_free(adam);
        nn_module_free(m);
    }
}

/* ----- groups, misuse, clipping by module ----- */

static int hook_calls = 0;
static void count_hook(const char *msg, void *user) {
    (void)msg; (void)user;
    hook_calls++;
}

static void test_misc(void) {
    nn_module *m = make_net();
    nn_sgd_opts so;
    nn_group_opts g;
    nn_optim *o;
    float before[NP], after[NP], norm;
    int n, i;
    nn_param *ps;
    memset(&so, 0, sizeof so);
    memset(&g, 0, sizeof g);
    put_params(m, g_init);
    o = nn_sgd(m, so);
    nn_set_error_hook(count_hook, NULL);
    NN_TEST_CHECK(nn_optim_group(o, "encoder.", g) == 0 && hook_calls == 1,
                  "a group pattern matching nothing is reported");
    nn_set_momentum(o, 0.5f);
    NN_TEST_CHECK(hook_calls == 2, "nn_set_momentum on SGD without momentum is reported");
    nn_set_error_hook(NULL, NULL);
    /* nn_clip_grad_norm_module == torch semantics on a known vector */
    ps = nn_parameters(m, &n);
    for (i = 0; i < n; i++) {
        size_t k;
        for (k = 0; k < ps[i].tensor->numel; k++) nn_grad_buffer(ps[i].tensor)[k] = 1.0f;
    }
    norm = nn_clip_grad_norm_module(m, 1.0f);
    ps = nn_parameters(m, &n);   /* the array is rebuilt by every nn_parameters call */
    NN_TEST_CHECK(fabsf(norm - sqrtf(26.0f)) < 1e-5f, "module clip returns the norm sqrt(26), got %g", (double)norm);
    NN_TEST_CHECK(fabsf(ps[0].tensor->grad[0] - 1.0f / (sqrtf(26.0f) + 1e-6f)) < 1e-7f, "clipped by norm");
    nn_clip_grad_value_module(m, 0.1f);
    ps = nn_parameters(m, &n);
    NN_TEST_CHECK(ps[3].tensor->grad[1] == 0.1f, "clip by value");
    /* zero_grad clears frozen parameters too (their gradient must not pile up
       until they are unfrozen); step leaves them alone */
    nn_optim_freeze(o, "0.weight", 1);
    get_params(m, before);
    nn_zero_grad(o);
    ps = nn_parameters(m, &n);
    NN_TEST_CHECK(nn_grad(ps[0].tensor) == NULL && nn_grad(ps[1].tensor) == NULL,
                  "zero_grad clears a frozen tensor's gradient too");
    /* the buffers are not zeroed (stale values), but the next gradient starts
       from zero: a hand-written one and an accumulating backward's */
    NN_TEST_CHECK(nn_grad_buffer(ps[0].tensor)[0] == 0.0f && nn_grad_buffer(ps[1].tensor)[0] == 0.0f,
                  "a gradient after zero_grad starts from zero");
    nn_zero_grad(o);
    set_grads(m, 1);
    nn_step(o);
    get_params(m, after);
    NN_TEST_CHECK(memcmp(before, after, 12 * sizeof(float)) == 0 && before[12] != after[12],
                  "frozen tensor unchanged, the rest updated");
    nn_optim_free(o);
    nn_module_free(m);
}

/* ----- increase-the-batch-size schedule ----- */

static void test_increase_batch(void) {
    nn_dataset ds;
    nn_loader_opts lo;
    nn_loader *ld;
    nn_module *m = make_net();
    nn_sgd_opts so;
    nn_increase_batch_opts bo;
    nn_optim *o;
    nn_sched *s;
    int epoch, sizes[8];
    float lrs[8], ns;
    memset(&lo, 0, sizeof lo); memset(&so, 0, sizeof so); memset(&bo, 0, sizeof bo);
    if (nn_dataset_synthetic(200, 1, &ds) != NN_OK) {
        NN_TEST_CHECK(0, "synthetic dataset: %s", nn_error_string());
        return;
    }
    lo.batch_size = 10;
    ld = nn_loader_new(&ds, lo);
    so.lr = 0.1f; so.momentum = 0.9f;
    o = nn_sgd(m, so);
    bo.loader = ld; bo.batch_size = 10; bo.dataset_size = 200; bo.factor = 2.0f; bo.max_batch_size = 40;
    bo.milestones[0] = 2; bo.milestones[1] = 4; bo.milestones[2] = 6;
    s = nn_increase_batch(o, bo);
    ns = nn_sched_noise_scale(s);
    NN_TEST_CHECK(fabsf(ns - 0.1f * 200.0f / (10.0f * 0.1f)) < 1e-3f, "noise scale lr N/(B(1-m)) = %g", (double)ns);
    for (epoch = 0; epoch < 8; epoch++) {
        nn_graph *g = nn_graph_new();
        nn_tensor *x;
        const int *y;
        int b, first = 0;
        while (nn_graph_reset(g), (b = nn_loader_next(ld, g, &x, &y)) > 0)
            if (!first) first = b;
        sizes[epoch] = first;
        lrs[epoch] = nn_get_lr(o);
        nn_graph_free(g);
        nn_sched_step(s);
    }
    NN_TEST_CHECK(sizes[0] == 10 && sizes[2] == 20 && sizes[4] == 40 && sizes[6] == 40 && sizes[7] == 40,
                  "batch 10,10,20,20,40,40,40,40: got %d %d %d %d %d %d %d %d", sizes[0], sizes[1],
                  sizes[2], sizes[3], sizes[4], sizes[5], sizes[6], sizes[7]);
    NN_TEST_CHECK(fabsf(lrs[5] - 0.1f) < 1e-7f && fabsf(lrs[6] - 0.05f) < 1e-7f,
                  "hybrid: past the cap the lr is divided instead (%g -> %g)", (double)lrs[5], (double)lrs[6]);
    NN_TEST_CHECK(nn_sched_batch_size(s) == 40, "batch size reported");
    NN_TEST_CHECK(fabsf(nn_sched_noise_scale(s) - 0.05f * 200.0f / (40.0f * 0.1f)) < 1e-3f, "noise scale follows");
    nn_sched_free(s);
    nn_optim_free(o);
    nn_loader_free(ld);
    nn_dataset_free(&ds);
    nn_module_free(m);
}

/* ----- snapshot ensembles ----- */

static void test_snapshots(void) {
    nn_module *m = make_net();
    nn_snapshots *sn = nn_snapshots_new(m, 2);
    nn_graph *g = nn_graph_new();
    float xs[6] = {0.3f, -1.0f, 2.0f, 1.5f, 0.2f, -0.7f}, alt[NP], cur[NP], want[4], check[NP];
    nn_tensor *x, *avg, *y;
    int j, k, r;
    put_params(m, g_init);
    nn_snapshot_take(sn);
    for (j = 0; j < NP; j++) alt[j] = g_init[j] * -0.5f + 0.1f;
    put_params(m, alt);
    nn_snapshot_take(sn);
    for (j = 0; j < NP; j++) cur[j] = (float)j * 0.01f;
    put_params(m, cur);
    x = nn_tensor_from(g, xs, NN_SHAPE(2, 3));
    avg = nn_snapshot_predict(sn, x);
    /* by hand */
    memset(want, 0, sizeof want);
    for (k = 0; k < 2; k++) {
        put_params(m, k ? alt : g_init);
        y = nn_forward(m, x);
        for (r = 0; r < 2; r++) {
            float a = y->data[2 * r], b = y->data[2 * r + 1], mx = a > b ? a : b;
            float ea = expf(a - mx), eb = expf(b - mx);
            want[2 * r] += ea / (ea + eb) / 2.0f;
            want[2 * r + 1] += eb / (ea + eb) / 2.0f;
        }
    }
    put_params(m, cur);
    NN_TEST_CHECK(nn_snapshot_count(sn) == 2, "two snapshots");
    nn_test_close(avg->data, want, 4, 1e-6f, 1e-7f, "snapshot ensemble = mean of softmaxes");
    nn_snapshot_predict(sn, x);
    get_params(m, check);
    NN_TEST_CHECK(memcmp(check, cur, sizeof cur) == 0, "the module's own weights are put back");
    nn_snapshot_take(sn);   /* a third replaces the oldest */
    NN_TEST_CHECK(nn_snapshot_count(sn) == 2, "at most max_count snapshots");
    nn_graph_free(g);
    nn_snapshots_free(sn);
    nn_module_free(m);
}

/* ----- LR range test on a quadratic ----- */

typedef struct quad { nn_module *m; } quad;

/* loss = 1/2 sum c_j p_j^2 with c_j in [0.5, 2]; the gradient goes to ->grad. */
static float quad_loss(void *user) {
    quad *q = (quad *)user;
    int n, i, j = 0;
    size_t k;
    double loss = 0.0;
    nn_param *ps = nn_parameters(q->m, &n);
    for (i = 0; i < n; i++)
        for (k = 0; k < ps[i].tensor->numel; k++, j++) {
            float c = 0.5f + 0.25f * (float)(j % 7), p = ps[i].tensor->data[k];
            loss += 0.5 * (double)(c * p * p);
            nn_grad_buffer(ps[i].tensor)[k] += c * p;
        }
    return (float)loss;
}

static void test_lr_find(void) {
    nn_module *m = make_net();
    nn_sgd_opts so;
    nn_lr_find_opts fo;
    nn_lr_find_result r;
    nn_optim *o;
    quad q;
    float before[NP], after[NP];
    nn_status st;
    FILE *f;
    memset(&so, 0, sizeof so); memset(&fo, 0, sizeof fo);
    put_params(m, g_init);
    so.lr = 0.123f;
    o = nn_sgd(m, so);
    q.m = m;
    fo.start_lr = 1e-4f; fo.end_lr = 100.0f; fo.num_steps = 120;
    get_params(m, before);
    st = nn_lr_find(o, quad_loss, &q, fo, &r);
    get_params(m, after);
    NN_TEST_CHECK(st == NN_OK, "lr_find: %s", nn_error_string());
    NN_TEST_CHECK(r.n > 10 && r.n < 120, "stops at divergence (n=%d of 120)", r.n);
    /* plain GD on this quadratic diverges above lr 2/c_max = 1 */
    NN_TEST_CHECK(r.suggestion > 1e-3f && r.suggestion < 1.0f, "suggestion %g in (1e-3, 1)", (double)r.suggestion);
    NN_TEST_CHECK(r.lr[r.n - 1] > 1.0f, "diverged past lr 1 (last %g)", (double)r.lr[r.n - 1]);
    NN_TEST_CHECK(memcmp(before, after, sizeof before) == 0, "weights restored");
    NN_TEST_CHECK(nn_get_lr(o) == 0.123f, "lr restored");
    NN_TEST_CHECK(nn_lr_find_write_csv(&r, "test_optimizers_lr.csv") == NN_OK, "CSV written");
    NN_TEST_CHECK(nn_lr_find_write_svg(&r, "test_optimizers_lr.svg") == NN_OK, "SVG written");
    if ((f = fopen("test_optimizers_lr.svg", "r"))) {
        char head[8] = {0};
        NN_TEST_CHECK(fread(head, 1, 4, f) == 4 && !memcmp(head, "<svg", 4), "SVG starts with <svg");
        fclose(f);
    }
    remove("test_optimizers_lr.csv");
    remove("test_optimizers_lr.svg");
    NN_TEST_CHECK(nn_lr_find_write_csv(&r, "no/such/dir/x.csv") == NN_ERR_IO, "CSV error is NN_ERR_IO");
    nn_lr_find_free(&r);
    nn_optim_free(o);
    nn_module_free(m);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    if (run_golden(dir)) {
        test_papers();
        test_save_restore();
    }
    test_misc();
    test_increase_batch();
    test_snapshots();
    test_lr_find();
    return nn_test_summary("test_optimizers");
}
