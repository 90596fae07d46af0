/* ===== >>optim (implementation) ========================================== */

enum {
    NN__OPT_SGD, NN__OPT_ADAGRAD, NN__OPT_RMSPROP, NN__OPT_ADADELTA, NN__OPT_ADAM,
    NN__OPT_ADAMW, NN__OPT_ADAMAX, NN__OPT_NADAM, NN__OPT_RADAM, NN__OPT_LARS,
    NN__OPT_LAMB, NN__OPT_LOOKAHEAD, NN__OPT_KINDS
};
static const char *const nn__optim_names[NN__OPT_KINDS] = {
    "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam",
    "RAdam", "LARS", "LAMB", "Lookahead"
};

#define NN__SLOTS 3   /* per-parameter float state buffers, at most */
#define NN__PI_D 3.14159265358979323846   /* pi in double, as Python's math.pi */

struct nn_optim {
    int kind;
    /* Hyperparameters in double, like PyTorch's Python floats; the kernels
       cast them to float where PyTorch's float32 kernels do. */
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    double alpha, rho, lr_decay, momentum_decay, trust, init_acc;
    int nesterov, centered, amsgrad;
    int n;                      /* parameters */
    nn_tensor **params;
    char **names;               /* dotted names, for groups and state files */
    double *lr_scale, *wd;      /* per parameter: group lr scale, weight decay */
    unsigned char *frozen;
    long *steps;                /* per parameter, like torch's state["step"] */
    float *mu_prod;             /* NAdam's running product of mu_t */
    float **slot[NN__SLOTS];    /* slot[k][i]: buffer k of parameter i, or NULL */
    nn_optim *inner;            /* Lookahead: the fast optimizer */
    int la_k;
    double la_alpha;
    long la_count;
};

/* The decimal a user wrote for a float option (0.999f -> 0.999), so double
   arithmetic on it agrees with PyTorch's Python float. */
static double nn__f2d(float f) {
    char buf[32];
    int prec;
    for (prec = 6; prec <= 9; prec++) {
        double d;
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}
/* Option value: > 0 itself, < 0 a literal 0, 0 the default. */
static double nn__optv(float v, double dflt) {
    return v > 0.0f ? nn__f2d(v) : v < 0.0f ? 0.0 : dflt;
}

/* The optimizer that owns the parameters and hyperparameters (under Lookahead). */
static nn_optim *nn__optim_base(nn_optim *o) {
    while (o && o->kind == NN__OPT_LOOKAHEAD) o = o->inner;
    return o;
}
static const nn_optim *nn__optim_cbase(const nn_optim *o) {
    while (o && o->kind == NN__OPT_LOOKAHEAD) o = o->inner;
    return o;
}

/* An optimizer over m's parameters with the state buffers in slot_mask
   (bit k: slot k) allocated and zeroed now, so nn_step never allocates. */
static nn_optim *nn__optim_new(const char *op, nn_module *m, int kind, unsigned slot_mask) {
    nn_optim *o;
    nn_param *ps;
    int count, i, k;
    size_t c;
    if (!m) {
        nn__misuse("%s: NULL module", op);
        return NULL;
    }
    if (!(ps = nn_parameters(m, &count))) {
        if (count == 0) nn__error(NN_ERR_ARG, "%s: the module has no parameters", op);
        return NULL;
    }
    if (!(o = (nn_optim *)nn__calloc(1, sizeof(nn_optim)))) return NULL;
    o->kind = kind;
    o->n = count;
    c = (size_t)(count ? count : 1);
    o->params = (nn_tensor **)nn__calloc(c, sizeof(nn_tensor *));
    o->names = (char **)nn__calloc(c, sizeof(char *));
    o->lr_scale = (double *)nn__calloc(c, sizeof(double));
    o->wd = (double *)nn__calloc(c, sizeof(double));
    o->frozen = (unsigned char *)nn__calloc(c, 1);
    o->steps = (long *)nn__calloc(c, sizeof(long));
    o->mu_prod = (float *)nn__calloc(c, sizeof(float));
    for (k = 0; k < NN__SLOTS; k++) o->slot[k] = (float **)nn__calloc(c, sizeof(float *));
    if (!o->params || !o->names || !o->lr_scale || !o->wd || !o->frozen || !o->steps ||
        !o->mu_prod || !o->slot[0] || !o->slot[1] || !o->slot[2])
        goto oom;
    for (i = 0; i < count; i++) {
        o->params[i] = ps[i].tensor;
        o->lr_scale[i] = 1.0;
        o->mu_prod[i] = 1.0f;
        if (!(o->names[i] = nn__strdup(ps[i].name))) goto oom;
        for (k = 0; k < NN__SLOTS; k++)
            if ((slot_mask >> k) & 1u)
                if (!(o->slot[k][i] = nn__alloc_floats(ps[i].tensor->numel, 1))) goto oom;
    }
    return o;
oom:
    nn_optim_free(o);
    return NULL;
}

/* Copy the optimizer-wide weight decay into every parameter (groups may
   override it later). */
static nn_optim *nn__optim_finish(nn_optim *o) {
    int i;
    if (o)
        for (i = 0; i < o->n; i++) o->wd[i] = o->weight_decay;
    return o;
}

static int nn__optim_bad(float v) { return !(v == v) || v > 3.0e38f || v < -3.0e38f; }

NNDEF nn_optim *nn_sgd(nn_module *m, nn_sgd_opts opts) {
    nn_optim *o;
    if (nn__optim_bad(opts.lr) || opts.lr < 0.0f || opts.momentum < 0.0f || opts.weight_decay < 0.0f ||
        (opts.nesterov && (opts.momentum <= 0.0f || opts.dampening != 0.0f))) {
        nn__misuse("nn_sgd: invalid options lr=%g momentum=%g weight_decay=%g nesterov=%d "
                   "dampening=%g (Nesterov needs momentum > 0 and dampening 0)",
                   (double)opts.lr, (double)opts.momentum, (double)opts.weight_decay,
                   opts.nesterov, (double)opts.dampening);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_sgd", m, NN__OPT_SGD, opts.momentum > 0.0f ? 1u : 0u))) return NULL;
    o->lr = nn__optv(opts.lr, 0.01);
    o->momentum = nn__optv(opts.momentum, 0.0);
    o->dampening = nn__f2d(opts.dampening);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->nesterov = opts.nesterov;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_adagrad(nn_module *m, nn_adagrad_opts opts) {
    nn_optim *o;
    int i;
    size_t j;
    if (opts.lr < 0.0f || opts.lr_decay < 0.0f || opts.initial_accumulator_value < 0.0f) {
        nn__misuse("nn_adagrad: invalid options lr=%g lr_decay=%g initial_accumulator_value=%g",
                   (double)opts.lr, (double)opts.lr_decay, (double)opts.initial_accumulator_value);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_adagrad", m, NN__OPT_ADAGRAD, 1u))) return NULL;
    o->lr = nn__optv(opts.lr, 1e-2);
    o->lr_decay = nn__optv(opts.lr_decay, 0.0);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->init_acc = nn__optv(opts.initial_accumulator_value, 0.0);
    o->eps = nn__optv(opts.eps, 1e-10);
    for (i = 0; i < o->n; i++)
        for (j = 0; j < o->params[i]->numel; j++) o->slot[0][i][j] = (float)o->init_acc;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_rmsprop(nn_module *m, nn_rmsprop_opts opts) {
    nn_optim *o;
    unsigned mask = 1u;
    if (opts.lr < 0.0f || opts.alpha >= 1.0f || opts.momentum < 0.0f) {
        nn__misuse("nn_rmsprop: invalid options lr=%g alpha=%g momentum=%g", (double)opts.lr,
                   (double)opts.alpha, (double)opts.momentum);
        return NULL;
    }
    if (opts.centered) mask |= 2u;
    if (opts.momentum > 0.0f) mask |= 4u;
    if (!(o = nn__optim_new("nn_rmsprop", m, NN__OPT_RMSPROP, mask))) return NULL;
    o->lr = nn__optv(opts.lr, 1e-2);
    o->alpha = nn__optv(opts.alpha, 0.99);
    o->eps = nn__optv(opts.eps, 1e-8);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->momentum = nn__optv(opts.momentum, 0.0);
    o->centered = opts.centered;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_adadelta(nn_module *m, nn_adadelta_opts opts) {
    nn_optim *o;
    if (opts.lr < 0.0f || opts.rho > 1.0f) {
        nn__misuse("nn_adadelta: invalid options lr=%g rho=%g", (double)opts.lr, (double)opts.rho);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_adadelta", m, NN__OPT_ADADELTA, 3u))) return NULL;
    o->lr = nn__optv(opts.lr, 1.0);
    o->rho = nn__optv(opts.rho, 0.9);
    o->eps = nn__optv(opts.eps, 1e-6);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    return nn__optim_finish(o);
}

/* Shared by the Adam family: validate and fill lr, betas, eps, weight decay. */
static nn_optim *nn__adam_like(const char *op, nn_module *m, int kind, unsigned mask, float lr,
                               float b1, float b2, float eps, float wd, double lr0, double b10,
                               double eps0, double wd0) {
    nn_optim *o;
    if (nn__optim_bad(lr) || lr < 0.0f || b1 >= 1.0f || b2 >= 1.0f) {
        nn__misuse("%s: invalid options lr=%g beta1=%g beta2=%g (betas must be < 1)", op,
                   (double)lr, (double)b1, (double)b2);
        return NULL;
    }
    if (!(o = nn__optim_new(op, m, kind, mask))) return NULL;
    o->lr = nn__optv(lr, lr0);
    o->beta1 = nn__optv(b1, b10);
    o->beta2 = nn__optv(b2, 0.999);
    o->eps = nn__optv(eps, eps0);
    o->weight_decay = nn__optv(wd, wd0);
    return o;
}

NNDEF nn_optim *nn_adam(nn_module *m, nn_adam_opts opts) {
    nn_optim *o = nn__adam_like("nn_adam", m, NN__OPT_ADAM, opts.amsgrad ? 7u : 3u, opts.lr,
                                opts.beta1, opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                1e-8, 0.0);
    if (o) o->amsgrad = opts.amsgrad;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_adamw(nn_module *m, nn_adamw_opts opts) {
    nn_optim *o = nn__adam_like("nn_adamw", m, NN__OPT_ADAMW, opts.amsgrad ? 7u : 3u, opts.lr,
                                opts.beta1, opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                1e-8, 1e-2);
    if (o) o->amsgrad = opts.amsgrad;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_adamax(nn_module *m, nn_adamax_opts opts) {
    return nn__optim_finish(nn__adam_like("nn_adamax", m, NN__OPT_ADAMAX, 3u, opts.lr, opts.beta1,
                                          opts.beta2, opts.eps, opts.weight_decay, 2e-3, 0.9,
                                          1e-8, 0.0));
}

NNDEF nn_optim *nn_nadam(nn_module *m, nn_nadam_opts opts) {
    nn_optim *o = nn__adam_like("nn_nadam", m, NN__OPT_NADAM, 3u, opts.lr, opts.beta1, opts.beta2,
                                opts.eps, opts.weight_decay, 2e-3, 0.9, 1e-8, 0.0);
    if (o) o->momentum_decay = nn__optv(opts.momentum_decay, 4e-3);
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_radam(nn_module *m, nn_radam_opts opts) {
    return nn__optim_finish(nn__adam_like("nn_radam", m, NN__OPT_RADAM, 3u, opts.lr, opts.beta1,
                                          opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                          1e-8, 0.0));
}

NNDEF nn_optim *nn_lars(nn_module *m, nn_lars_opts opts) {
    nn_optim *o;
    if (nn__optim_bad(opts.lr) || opts.lr < 0.0f || opts.momentum >= 1.0f || opts.trust_coefficient < 0.0f) {
        nn__misuse("nn_lars: invalid options lr=%g momentum=%g trust_coefficient=%g",
                   (double)opts.lr, (double)opts.momentum, (double)opts.trust_coefficient);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_lars", m, NN__OPT_LARS, opts.momentum >= 0.0f ? 1u : 0u))) return NULL;
    o->lr = nn__optv(opts.lr, 1.0);
    o->momentum = nn__optv(opts.momentum, 0.9);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->trust = nn__optv(opts.trust_coefficient, 1e-3);
    o->eps = nn__optv(opts.eps, 1e-8);
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_lamb(nn_module *m, nn_lamb_opts opts) {
    return nn__optim_finish(nn__adam_like("nn_lamb", m, NN__OPT_LAMB, 3u, opts.lr, opts.beta1,
                                          opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                          1e-6, 0.0));
}

NNDEF nn_optim *nn_lookahead(nn_optim *inner, nn_lookahead_opts opts) {
    nn_optim *o;
    int i, k;
    size_t c;
    if (!inner || opts.k < 0 || opts.alpha < 0.0f || opts.alpha > 1.0f) {
        nn__misuse("nn_lookahead: needs an optimizer, k >= 0 and alpha in [0,1] (got k=%d alpha=%g)",
                   opts.k, (double)opts.alpha);
        return NULL;
    }
    if (!(o = (nn_optim *)nn__calloc(1, sizeof(nn_optim)))) return NULL;
    o->kind = NN__OPT_LOOKAHEAD;
    o->n = inner->n;
    o->la_k = opts.k > 0 ? opts.k : 5;
    o->la_alpha = nn__optv(opts.alpha, 0.5);
    c = (size_t)(o->n ? o->n : 1);
    for (k = 0; k < NN__SLOTS; k++) o->slot[k] = (float **)nn__calloc(c, sizeof(float *));
    o->params = (nn_tensor **)nn__calloc(c, sizeof(nn_tensor *));
    if (!o->params || !o->slot[0] || !o->slot[1] || !o->slot[2]) goto oom;
    for (i = 0; i < o->n; i++) {
        nn_tensor *t = inner->params ? inner->params[i] : nn__optim_base(inner)->params[i];
        o->params[i] = t;
        if (!(o->slot[0][i] = nn__alloc_floats(t->numel, 0))) goto oom;
        memcpy(o->slot[0][i], t->data, t->numel * sizeof(float));
    }
    o->inner = inner;
    return o;
oom:
    nn_optim_free(o);   /* does not free inner: o->inner is still NULL */
    return NULL;
}

NNDEF nn_optim *nn_ranger(nn_module *m, nn_ranger_opts opts) {
    nn_radam_opts r;
    nn_lookahead_opts la;
    nn_optim *inner, *o;
    memset(&r, 0, sizeof r);
    r.lr = opts.lr;
    r.beta1 = opts.beta1 != 0.0f ? opts.beta1 : 0.95f;
    r.beta2 = opts.beta2;
    r.eps = opts.eps != 0.0f ? opts.eps : 1e-5f;
    r.weight_decay = opts.weight_decay;
    la.k = opts.k > 0 ? opts.k : 6;
    la.alpha = opts.alpha;
    if (!(inner = nn_radam(m, r))) return NULL;
    if (!(o = nn_lookahead(inner, la))) nn_optim_free(inner);
    return o;
}

NNDEF void nn_zero_grad(nn_optim *o) {
    int i;
    o = nn__optim_base(o);
    if (!o) return;
    for (i = 0; i < o->n; i++)
        if (o->params[i]->grad && !o->frozen[i])
            memset(o->params[i]->grad, 0, o->params[i]->numel * sizeof(float));
}

/* ----- update rules: one parameter tensor p (n floats) with gradient g,
   its rate lr and weight decay wd, after its step count became t.  The
   float expressions follow PyTorch's single-tensor code line by line. */

static void nn__sgd_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    float lrn = (float)-lr, wdf = (float)wd, mu = (float)o->momentum;
    float damp = (float)(1.0 - o->dampening);
    float *buf = o->slot[0][i];
    int first = o->steps[i] == 1;
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j];
        if (wd != 0.0) d = d + wdf * p[j];
        if (buf) {
            buf[j] = first ? d : buf[j] * mu + damp * d;
            d = o->nesterov ? d + mu * buf[j] : buf[j];
        }
        p[j] = p[j] + lrn * d;
    }
}

static void nn__adagrad_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    float wdf = (float)wd, eps = (float)o->eps;
    float clr = (float)-(lr / (1.0 + (double)(o->steps[i] - 1) * o->lr_decay));
    float *s = o->slot[0][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j];
        if (wd != 0.0) d = d + wdf * p[j];
        s[j] = s[j] + d * d;
        p[j] = p[j] + clr * (d / (sqrtf(s[j]) + eps));
    }
}

static void nn__rmsprop_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    float wdf = (float)wd, a = (float)o->alpha, oma = (float)(1.0 - o->alpha), eps = (float)o->eps;
    float mu = (float)o->momentum, lrn = (float)-lr;
    float *sq = o->slot[0][i], *ga = o->slot[1][i], *buf = o->slot[2][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j], avg;
        if (wd != 0.0) d = d + wdf * p[j];
        sq[j] = sq[j] * a + oma * d * d;
        if (ga) {
            ga[j] = ga[j] * a + oma * d;
            avg = sqrtf(sq[j] - ga[j] * ga[j]);
        } else {
            avg = sqrtf(sq[j]);
        }
        avg = avg + eps;
        if (buf) {
            buf[j] = buf[j] * mu + d / avg;
            p[j] = p[j] + lrn * buf[j];
        } else {
            p[j] = p[j] + lrn * (d / avg);
        }
    }
}

static void nn__adadelta_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    float wdf = (float)wd, rho = (float)o->rho, omr = (float)(1.0 - o->rho), eps = (float)o->eps;
    float lrn = (float)-lr;
    float *sq = o->slot[0][i], *acc = o->slot[1][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j], std, delta;
        if (wd != 0.0) d = d + wdf * p[j];
        sq[j] = sq[j] * rho + omr * d * d;
        std = sqrtf(sq[j] + eps);
        delta = sqrtf(acc[j] + eps) / std * d;
        acc[j] = acc[j] * rho + omr * delta * delta;
        p[j] = p[j] + lrn * delta;
    }
}

/* Adam and AdamW (decoupled = 1), with AMSGrad when slot 2 exists. */
static void nn__adam_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr,
                            double wd, int decoupled) {
    double t = (double)o->steps[i];
    double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    float step = (float)-(lr / bc1), bc2s = (float)sqrt(bc2), eps = (float)o->eps;
    float decay = (float)(1.0 - lr * wd), wdf = (float)wd;
    float *m = o->slot[0][i], *v = o->slot[1][i], *vmax = o->slot[2][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j], denom;
        if (decoupled) p[j] = p[j] * decay;
        else if (wd != 0.0) d = d + wdf * p[j];
        m[j] = m[j] * b1 + omb1 * d;
        v[j] = v[j] * b2 + omb2 * d * d;
        if (vmax) {
            if (v[j] > vmax[j]) vmax[j] = v[j];
            denom = sqrtf(vmax[j]) / bc2s + eps;
        } else {
            denom = sqrtf(v[j]) / bc2s + eps;
        }
        p[j] = p[j] + step * (m[j] / denom);
    }
}

static void nn__adamax_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1), b2 = (float)o->beta2;
    float eps = (float)o->eps, wdf = (float)wd, clr = (float)-(lr / (1.0 - pow(o->beta1, t)));
    float *m = o->slot[0][i], *u = o->slot[1][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j], a, b;
        if (wd != 0.0) d = d + wdf * p[j];
        m[j] = m[j] * b1 + omb1 * d;
        a = u[j] * b2;
        b = fabsf(d) + eps;
        u[j] = a > b ? a : b;
        p[j] = p[j] + clr * (m[j] / u[j]);
    }
}

static void nn__nadam_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    double bc2 = 1.0 - pow(o->beta2, t);
    double mu = o->beta1 * (1.0 - 0.5 * pow(0.96, t * o->momentum_decay));
    double mu_next = o->beta1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * o->momentum_decay));
    float mp, mpn, cg, cm, b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2), bc2f = (float)bc2;
    float eps = (float)o->eps, wdf = (float)wd;
    float *m = o->slot[0][i], *v = o->slot[1][i];
    size_t j;
    /* torch keeps mu_product as a float32 tensor */
    o->mu_prod[i] = o->mu_prod[i] * (float)mu;
    mp = o->mu_prod[i];
    mpn = mp * (float)mu * (float)mu_next;
    cg = (float)(-lr * (1.0 - mu) / (1.0 - (double)mp));
    cm = (float)(-lr * mu_next / (1.0 - (double)mpn));
    for (j = 0; j < n; j++) {
        float d = g[j], denom;
        if (wd != 0.0) d = d + wdf * p[j];
        m[j] = m[j] * b1 + omb1 * d;
        v[j] = v[j] * b2 + omb2 * d * d;
        denom = sqrtf(v[j] / bc2f) + eps;
        p[j] = p[j] + cg * (d / denom);
        p[j] = p[j] + cm * (m[j] / denom);
    }
}

static void nn__radam_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
    double rho_inf = 2.0 / (1.0 - o->beta2) - 1.0;
    double rho_t = rho_inf - 2.0 * t * pow(o->beta2, t) / bc2;
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    float bc1f = (float)bc1, lrf = (float)lr, eps = (float)o->eps, wdf = (float)wd;
    float *m = o->slot[0][i], *v = o->slot[1][i];
    int rectify = rho_t > 5.0;
    float rect = 0.0f, bc2s = (float)sqrt(bc2);
    size_t j;
    if (rectify)
        rect = (float)sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                           ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
    for (j = 0; j < n; j++) {
        float d = g[j], mhat;
        if (wd != 0.0) d = d + wdf * p[j];
        m[j] = m[j] * b1 + omb1 * d;
        v[j] = v[j] * b2 + omb2 * d * d;
        mhat = m[j] / bc1f;
        if (rectify) p[j] = p[j] - mhat * lrf * (bc2s / (sqrtf(v[j]) + eps)) * rect;
        else p[j] = p[j] - mhat * lrf;   /* SGD with momentum while rho_t <= 5 */
    }
}

static double nn__optim_norm2(const float *x, size_t n) {
    double s = 0.0;
    size_t j;
    for (j = 0; j < n; j++) s += (double)x[j] * (double)x[j];
    return sqrt(s);
}

static void nn__lars_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double wn = nn__optim_norm2(p, n), gn = nn__optim_norm2(g, n);
    double local = (wn > 0.0 && gn > 0.0) ? o->trust * wn / (gn + wd * wn + o->eps) : o->trust;
    float scale = (float)(lr * local), wdf = (float)wd, mu = (float)o->momentum;
    float *buf = o->slot[0][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float u = scale * (g[j] + wdf * p[j]);
        if (buf) {
            buf[j] = mu * buf[j] + u;
            u = buf[j];
        }
        p[j] -= u;
    }
}

static void nn__lamb_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    float bc1 = (float)(1.0 - pow(o->beta1, t)), bc2 = (float)(1.0 - pow(o->beta2, t));
    float eps = (float)o->eps, wdf = (float)wd, step;
    float *m = o->slot[0][i], *v = o->slot[1][i];
    double pn = nn__optim_norm2(p, n), rn = 0.0, ratio;
    size_t j;
    for (j = 0; j < n; j++) { /* moments, and the norm of the update r */
        float r;
        m[j] = m[j] * b1 + omb1 * g[j];
        v[j] = v[j] * b2 + omb2 * g[j] * g[j];
        r = (m[j] / bc1) / (sqrtf(v[j] / bc2) + eps) + wdf * p[j];
        rn += (double)r * (double)r;
    }
    rn = sqrt(rn);
    ratio = (pn > 0.0 && rn > 0.0) ? pn / rn : 1.0;
    step = (float)(lr * ratio);
    for (j = 0; j < n; j++) {
        float r = (m[j] / bc1) / (sqrtf(v[j] / bc2) + eps) + wdf * p[j];
        p[j] -= step * r;
    }
}

NNDEF void nn_step(nn_optim *o) {
    int i;
    if (!o) return;
    if (o->kind == NN__OPT_LOOKAHEAD) {
        const nn_optim *b = nn__optim_cbase(o->inner);
        nn_step(o->inner);
        if (++o->la_count % o->la_k) return;
        for (i = 0; i < o->n; i++) {
            nn_tensor *t = o->params[i];
            float *slow = o->slot[0][i], a = (float)o->la_alpha;
            size_t j;
            if (b->frozen[i]) continue;
            for (j = 0; j < t->numel; j++) {
                slow[j] = slow[j] + a * (t->data[j] - slow[j]);
                t->data[j] = slow[j];
            }
        }
        return;
    }
    for (i = 0; i < o->n; i++) {
        nn_tensor *t = o->params[i];
        double lr = o->lr * o->lr_scale[i], wd = o->wd[i];
        if (!t->grad || o->frozen[i]) continue;
        o->steps[i]++;
        switch (o->kind) {
        case NN__OPT_SGD: nn__sgd_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_ADAGRAD: nn__adagrad_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_RMSPROP: nn__rmsprop_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_ADADELTA: nn__adadelta_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_ADAM: nn__adam_update(o, i, t->data, t->grad, t->numel, lr, wd, 0); break;
        case NN__OPT_ADAMW: nn__adam_update(o, i, t->data, t->grad, t->numel, lr, wd, 1); break;
        case NN__OPT_ADAMAX: nn__adamax_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_NADAM: nn__nadam_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_RADAM: nn__radam_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_LARS: nn__lars_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_LAMB: nn__lamb_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        default: break;
        }
    }
}

static void nn__optim_set_lr_d(nn_optim *o, double lr) {
    o = nn__optim_base(o);
    if (o) o->lr = lr;
}
static double nn__optim_lr_d(const nn_optim *o) {
    o = nn__optim_cbase(o);
    return o ? o->lr : 0.0;
}
NNDEF float nn_get_lr(const nn_optim *o) { return (float)nn__optim_lr_d(o); }
NNDEF void nn_set_lr(nn_optim *o, float lr) {
    if (!o || nn__optim_bad(lr) || lr < 0.0f) {
        nn__misuse("nn_set_lr: needs an optimizer and a finite lr >= 0, got %g", (double)lr);
        return;
    }
    nn__optim_set_lr_d(o, nn__f2d(lr));
}

/* 1 for the momentum-like hyperparameter a schedule may cycle: 1 = momentum,
   2 = beta1, 0 = none. */
static int nn__momentum_kind(const nn_optim *o) {
    o = nn__optim_cbase(o);
    if (!o) return 0;
    switch (o->kind) {
    case NN__OPT_SGD: case NN__OPT_LARS: return o->slot[0][0] || o->n == 0 ? 1 : 0;
    case NN__OPT_RMSPROP: return o->slot[2][0] || o->n == 0 ? 1 : 0;
    case NN__OPT_ADAM: case NN__OPT_ADAMW: case NN__OPT_ADAMAX: case NN__OPT_NADAM:
    case NN__OPT_RADAM: case NN__OPT_LAMB: return 2;
    default: return 0;
    }
}
static double nn__optim_mom_d(const nn_optim *o) {
    int k = nn__momentum_kind(o);
    o = nn__optim_cbase(o);
    return k == 1 ? o->momentum : k == 2 ? o->beta1 : 0.0;
}
static void nn__optim_set_mom_d(nn_optim *o, double mom) {
    int k = nn__momentum_kind(o);
    o = nn__optim_base(o);
    if (k == 1) o->momentum = mom;
    else if (k == 2) o->beta1 = mom;
}
NNDEF float nn_get_momentum(const nn_optim *o) { return (float)nn__optim_mom_d(o); }
NNDEF void nn_set_momentum(nn_optim *o, float momentum) {
    if (!o || !nn__momentum_kind(o) || !(momentum >= 0.0f && momentum < 1.0f)) {
        nn__misuse("nn_set_momentum: %s has no momentum to set (or %g is not in [0,1)); make SGD, "
                   "RMSprop or LARS with momentum > 0", o ? nn__optim_names[nn__optim_cbase(o)->kind] : "NULL",
                   (double)momentum);
        return;
    }
    nn__optim_set_mom_d(o, nn__f2d(momentum));
}

NNDEF void nn_optim_free(nn_optim *o) {
    int i, k;
    if (!o) return;
    for (i = 0; i < o->n; i++) {
        for (k = 0; k < NN__SLOTS; k++)
            if (o->slot[k]) nn__free_floats(o->slot[k][i]);
        if (o->names) nn__free(o->names[i]);
    }
    for (k = 0; k < NN__SLOTS; k++) nn__free(o->slot[k]);
    nn__free(o->params);
    nn__free(o->names);
    nn__free(o->lr_scale);
    nn__free(o->wd);
    nn__free(o->frozen);
    nn__free(o->steps);
    nn__free(o->mu_prod);
    nn_optim_free(o->inner);
    nn__free(o);
}

/* ----- parameter groups ----- */

static int nn__name_matches(const char *name, const char *pattern) {
    size_t ln = strlen(name), lp = strlen(pattern);
    if (pattern[0] == '*') {   /* "*" or "*suffix" */
        lp--;
        return lp <= ln && memcmp(name + ln - lp, pattern + 1, lp) == 0;
    }
    return lp <= ln && memcmp(name, pattern, lp) == 0;
}

NNDEF int nn_optim_group(nn_optim *o, const char *pattern, nn_group_opts g) {
    int i, count = 0;
    double scale;
    nn_optim *b = nn__optim_base(o);
    if (!b || !pattern || g.lr < 0.0f || g.lr_scale < 0.0f) {
        nn__misuse("nn_optim_group: needs an optimizer, a pattern and lr, lr_scale >= 0");
        return 0;
    }
    if (g.lr > 0.0f && b->lr <= 0.0) {
        nn__misuse("nn_optim_group: an absolute lr needs the optimizer's lr > 0");
        return 0;
    }
    /* zero fields keep each parameter's current setting, so groups compose */
    scale = g.lr > 0.0f ? nn__f2d(g.lr) / b->lr : g.lr_scale > 0.0f ? nn__f2d(g.lr_scale) : -1.0;
    for (i = 0; i < b->n; i++) {
        if (!nn__name_matches(b->names[i], pattern)) continue;
        if (g.max_ndim > 0 && b->params[i]->ndim > g.max_ndim) continue;
        if (scale >= 0.0) b->lr_scale[i] = scale;
        if (g.weight_decay != 0.0f) b->wd[i] = nn__optv(g.weight_decay, 0.0);
        if (g.frozen) b->frozen[i] = (unsigned char)(g.frozen > 0);
        count++;
    }
    if (!count)
        nn__misuse("nn_optim_group: pattern \"%s\" matches no parameter (the first is \"%s\")",
                   pattern, b->n ? b->names[0] : "");
    return count;
}

NNDEF int nn_optim_freeze(nn_optim *o, const char *pattern, int on) {
    int i, count = 0;
    nn_optim *b = nn__optim_base(o);
    if (!b || !pattern) {
        nn__misuse("nn_optim_freeze: needs an optimizer and a pattern");
        return 0;
    }
    for (i = 0; i < b->n; i++)
        if (nn__name_matches(b->names[i], pattern)) {
            b->frozen[i] = (unsigned char)(on != 0);
            count++;
        }
    if (!count) nn__misuse("nn_optim_freeze: pattern \"%s\" matches no parameter", pattern);
    return count;
}

/* ----- gradient clipping ----- */

static float nn__clip_norm(nn_tensor **ts, const unsigned char *frozen, int n, float max_norm) {
    double sq = 0.0;
    float total, coef;
    int i;
    size_t j;
    for (i = 0; i < n; i++)
        if (ts[i]->grad && !(frozen && frozen[i])) {
            double s = nn__optim_norm2(ts[i]->grad, ts[i]->numel);
            sq += s * s;
        }
    total = (float)sqrt(sq);
    coef = max_norm / (total + 1e-6f);
    if (coef < 1.0f)
        for (i = 0; i < n; i++)
            if (ts[i]->grad && !(frozen && frozen[i]))
                for (j = 0; j < ts[i]->numel; j++) ts[i]->grad[j] *= coef;
    return total;
}

static void nn__clip_value(nn_tensor **ts, const unsigned char *frozen, int n, float c) {
    int i;
    size_t j;
    for (i = 0; i < n; i++)
        if (ts[i]->grad && !(frozen && frozen[i]))
            for (j = 0; j < ts[i]->numel; j++) {
                float v = ts[i]->grad[j];
                ts[i]->grad[j] = v > c ? c : v < -c ? -c : v;
            }
}

NNDEF float nn_clip_grad_norm(nn_optim *o, float max_norm) {
    nn_optim *b = nn__optim_base(o);
    if (!b || !(max_norm > 0.0f)) {
        nn__misuse("nn_clip_grad_norm: needs an optimizer and max_norm > 0, got %g", (double)max_norm);
        return 0.0f;
    }
    return nn__clip_norm(b->params, b->frozen, b->n, max_norm);
}

NNDEF void nn_clip_grad_value(nn_optim *o, float clip) {
    nn_optim *b = nn__optim_base(o);
    if (!b || !(clip >= 0.0f)) {
        nn__misuse("nn_clip_grad_value: needs an optimizer and clip >= 0, got %g", (double)clip);
        return;
    }
    nn__clip_value(b->params, b->frozen, b->n, clip);
}

/* The module's parameter tensors in a small array (caller frees). */
static nn_tensor **nn__module_tensors(const char *op, nn_module *m, int *n) {
    nn_param *ps;
    nn_tensor **ts;
    int i;
    *n = 0;
    if (!m) {
        nn__misuse("%s: NULL module", op);
        return NULL;
    }
    ps = nn_parameters(m, n);
    if (!(ts = (nn_tensor **)nn__calloc((size_t)(*n ? *n : 1), sizeof(nn_tensor *)))) return NULL;
    for (i = 0; i < *n; i++) ts[i] = ps[i].tensor;
    return ts;
}

NNDEF float nn_clip_grad_norm_module(nn_module *m, float max_norm) {
    int n;
    float total = 0.0f;
    nn_tensor **ts;
    if (!(max_norm > 0.0f)) {
        nn__misuse("nn_clip_grad_norm_module: max_norm must be > 0, got %g", (double)max_norm);
        return 0.0f;
    }
    if ((ts = nn__module_tensors("nn_clip_grad_norm_module", m, &n))) {
        total = nn__clip_norm(ts, NULL, n, max_norm);
        nn__free(ts);
    }
    return total;
}

NNDEF void nn_clip_grad_value_module(nn_module *m, float clip) {
    int n;
    nn_tensor **ts;
    if (!(clip >= 0.0f)) {
        nn__misuse("nn_clip_grad_value_module: clip must be >= 0, got %g", (double)clip);
        return;
    }
    if ((ts = nn__module_tensors("nn_clip_grad_value_module", m, &n))) {
        nn__clip_value(ts, NULL, n, clip);
        nn__free(ts);
    }
}

/* ----- schedules ----- */

enum {
    NN__S_CONSTANT, NN__S_STEP, NN__S_MULTISTEP, NN__S_EXP, NN__S_INVTIME, NN__S_POLY,
    NN__S_COSINE, NN__S_SGDR, NN__S_CYCLIC, NN__S_ONECYCLE, NN__S_WARMUP, NN__S_PLATEAU,
    NN__S_BATCH, NN__S_KINDS
};

struct nn_sched {
    int kind;
    nn_optim *opt;
    long t;                    /* steps taken */
    double base_lr;            /* the optimizer's lr at creation */
    double gamma, factor, eta_min, power, end_lr;          /* decay shapes */
    double lo_lr, hi_lr, lo_mom, hi_mom, min_lr, pct;      /* cycles, plateau */
    double threshold, eps, best;
    int period, period2, mult, mode, threshold_mode, patience, cooldown;
    int cycle_mom, anneal, three_phase, staircase;
    int milestones[NN_MAX_MILESTONES];
    int num_bad, cooldown_left, restarted;
    int batch, max_batch, dataset_size;
    struct nn_loader *loader;
    nn_sched *then;            /* warmup: the schedule after it */
};

static void nn__sched_apply(nn_sched *s);

static nn_sched *nn__sched_new(const char *op, nn_optim *o, int kind) {
    nn_sched *s;
    if (!o) {
        nn__misuse("%s: NULL optimizer", op);
        return NULL;
    }
    if (!(s = (nn_sched *)nn__calloc(1, sizeof(nn_sched)))) return NULL;
    s->kind = kind;
    s->opt = o;
    s->base_lr = nn__optim_lr_d(o);
    return s;
}

/* Set t = 0's values and return s. */
static nn_sched *nn__sched_start(nn_sched *s) {
    if (s) nn__sched_apply(s);
    return s;
}

NNDEF nn_sched *nn_constant_lr(nn_optim *o, nn_constant_lr_opts opts) {
    nn_sched *s;
    if (opts.factor < 0.0f || opts.factor > 1.0f || opts.total_iters < 0) {
        nn__misuse("nn_constant_lr: needs factor in [0,1] and total_iters >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_constant_lr", o, NN__S_CONSTANT))) return NULL;
    s->factor = nn__optv(opts.factor, 1.0 / 3.0);
    s->period = opts.total_iters ? opts.total_iters : 5;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_step_lr(nn_optim *o, nn_step_lr_opts opts) {
    nn_sched *s;
    if (opts.step_size < 1 || opts.gamma < 0.0f) {
        nn__misuse("nn_step_lr: needs step_size >= 1 (got %d) and gamma >= 0", opts.step_size);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_step_lr", o, NN__S_STEP))) return NULL;
    s->period = opts.step_size;
    s->gamma = nn__optv(opts.gamma, 0.1);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_multistep_lr(nn_optim *o, nn_multistep_lr_opts opts) {
    nn_sched *s;
    int i;
    for (i = 1; i < NN_MAX_MILESTONES && opts.milestones[i]; i++)
        if (opts.milestones[i] < opts.milestones[i - 1]) {
            nn__misuse("nn_multistep_lr: milestones must increase (%d after %d)",
                       opts.milestones[i], opts.milestones[i - 1]);
            return NULL;
        }
    if (!(s = nn__sched_new("nn_multistep_lr", o, NN__S_MULTISTEP))) return NULL;
    memcpy(s->milestones, opts.milestones, sizeof s->milestones);
    s->gamma = nn__optv(opts.gamma, 0.1);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_exponential_lr(nn_optim *o, nn_exponential_lr_opts opts) {
    nn_sched *s;
    if (!(opts.gamma > 0.0f)) {
        nn__misuse("nn_exponential_lr: gamma must be > 0, got %g", (double)opts.gamma);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_exponential_lr", o, NN__S_EXP))) return NULL;
    s->gamma = nn__f2d(opts.gamma);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_inverse_time_lr(nn_optim *o, nn_inverse_time_lr_opts opts) {
    nn_sched *s;
    if (!(opts.decay_rate >= 0.0f) || opts.decay_steps < 0) {
        nn__misuse("nn_inverse_time_lr: needs decay_rate >= 0 and decay_steps >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_inverse_time_lr", o, NN__S_INVTIME))) return NULL;
    s->gamma = nn__f2d(opts.decay_rate);
    s->period = opts.decay_steps ? opts.decay_steps : 1;
    s->staircase = opts.staircase;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_polynomial_lr(nn_optim *o, nn_polynomial_lr_opts opts) {
    nn_sched *s;
    if (opts.total_iters < 0 || opts.power < 0.0f) {
        nn__misuse("nn_polynomial_lr: needs total_iters >= 0 and power >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_polynomial_lr", o, NN__S_POLY))) return NULL;
    s->period = opts.total_iters ? opts.total_iters : 5;
    s->power = nn__optv(opts.power, 1.0);
    s->end_lr = nn__optv(opts.end_lr, 0.0);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_cosine_annealing(nn_optim *o, nn_cosine_annealing_opts opts) {
    nn_sched *s;
    if (opts.T_max < 1) {
        nn__misuse("nn_cosine_annealing: T_max must be >= 1, got %d", opts.T_max);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_cosine_annealing", o, NN__S_COSINE))) return NULL;
    s->period = opts.T_max;
    s->eta_min = nn__optv(opts.eta_min, 0.0);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_warm_restarts(nn_optim *o, nn_warm_restarts_opts opts) {
    nn_sched *s;
    if (opts.T_0 < 1 || opts.T_mult < 0) {
        nn__misuse("nn_warm_restarts: needs T_0 >= 1 (got %d) and T_mult >= 1", opts.T_0);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_warm_restarts", o, NN__S_SGDR))) return NULL;
    s->period = opts.T_0;
    s->mult = opts.T_mult ? opts.T_mult : 1;
    s->eta_min = nn__optv(opts.eta_min, 0.0);
    return nn__sched_start(s);
}

/* Whether to cycle momentum: 0 = when the optimizer has one. */
static int nn__want_cycle(const char *op, nn_optim *o, int setting) {
    if (setting < 0) return 0;
    if (setting > 0 && !nn__momentum_kind(o)) {
        nn__misuse("%s: cycle_momentum needs an optimizer with momentum (SGD/RMSprop/LARS "
                   "with momentum > 0, or the Adam family)", op);
        return -1;
    }
    return nn__momentum_kind(o) != 0;
}

NNDEF nn_sched *nn_cyclic_lr(nn_optim *o, nn_cyclic_lr_opts opts) {
    nn_sched *s;
    int cyc;
    if (!(opts.max_lr > 0.0f) || opts.base_lr < 0.0f || opts.step_size_up < 0 ||
        opts.step_size_down < 0 || opts.mode < 0 || opts.mode > 2) {
        nn__misuse("nn_cyclic_lr: needs max_lr > 0, base_lr >= 0, step sizes >= 0 and a mode");
        return NULL;
    }
    if ((cyc = nn__want_cycle("nn_cyclic_lr", o, opts.cycle_momentum)) < 0) return NULL;
    if (!(s = nn__sched_new("nn_cyclic_lr", o, NN__S_CYCLIC))) return NULL;
    s->lo_lr = opts.base_lr > 0.0f ? nn__f2d(opts.base_lr) : s->base_lr;
    s->hi_lr = nn__f2d(opts.max_lr);
    s->period = opts.step_size_up ? opts.step_size_up : 2000;
    s->period2 = opts.step_size_down ? opts.step_size_down : s->period;
    s->mode = opts.mode;
    s->gamma = nn__optv(opts.gamma, 1.0);
    s->cycle_mom = cyc;
    s->lo_mom = nn__optv(opts.base_momentum, 0.8);
    s->hi_mom = nn__optv(opts.max_momentum, 0.9);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_onecycle(nn_optim *o, nn_onecycle_opts opts) {
    nn_sched *s;
    int cyc, total = opts.total_steps > 0 ? opts.total_steps : opts.epochs * opts.steps_per_epoch;
    if (!(opts.max_lr > 0.0f) || total < 1 || opts.pct_start < 0.0f || opts.pct_start > 1.0f) {
        nn__misuse("nn_onecycle: needs max_lr > 0, total_steps (or epochs and steps_per_epoch) "
                   ">= 1 and pct_start in [0,1]; got max_lr=%g total=%d", (double)opts.max_lr, total);
        return NULL;
    }
    if ((cyc = nn__want_cycle("nn_onecycle", o, opts.cycle_momentum)) < 0) return NULL;
    if (!(s = nn__sched_new("nn_onecycle", o, NN__S_ONECYCLE))) return NULL;
    s->hi_lr = nn__f2d(opts.max_lr);
    s->lo_lr = s->hi_lr / nn__optv(opts.div_factor, 25.0);           /* initial lr */
    s->min_lr = s->lo_lr / nn__optv(opts.final_div_factor, 1e4);
    s->period = total;
    s->pct = nn__optv(opts.pct_start, 0.3);
    s->anneal = opts.anneal_strategy;
    s->cycle_mom = cyc;
    s->lo_mom = nn__optv(opts.base_momentum, 0.85);
    s->hi_mom = nn__optv(opts.max_momentum, 0.95);
    s->three_phase = opts.three_phase;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_warmup(nn_optim *o, nn_warmup_opts opts) {
    nn_sched *s;
    if (opts.warmup_steps < 1 || opts.start_factor < 0.0f || opts.start_factor > 1.0f ||
        (opts.then && opts.then->opt != o)) {
        nn__misuse("nn_warmup: needs warmup_steps >= 1, start_factor in [0,1] and a `then` "
                   "schedule on the same optimizer");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_warmup", o, NN__S_WARMUP))) return NULL;
    s->period = opts.warmup_steps;
    s->factor = nn__optv(opts.start_factor, 1.0 / 3.0);
    s->then = opts.then;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_reduce_on_plateau(nn_optim *o, nn_reduce_on_plateau_opts opts) {
    nn_sched *s;
    if (opts.factor < 0.0f || opts.factor >= 1.0f || opts.cooldown < 0 || opts.min_lr < 0.0f) {
        nn__misuse("nn_reduce_on_plateau: needs factor in (0,1), cooldown >= 0 and min_lr >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_reduce_on_plateau", o, NN__S_PLATEAU))) return NULL;
    s->mode = opts.mode;
    s->factor = nn__optv(opts.factor, 0.1);
    s->patience = opts.patience > 0 ? opts.patience : opts.patience < 0 ? 0 : 10;
    s->threshold = nn__optv(opts.threshold, 1e-4);
    s->threshold_mode = opts.threshold_mode;
    s->cooldown = opts.cooldown;
    s->min_lr = nn__optv(opts.min_lr, 0.0);
    s->eps = nn__optv(opts.eps, 1e-8);
    s->best = opts.mode == NN_MODE_MAX ? -HUGE_VAL : HUGE_VAL;
    return s;
}

NNDEF nn_sched *nn_increase_batch(nn_optim *o, nn_increase_batch_opts opts) {
    nn_sched *s;
    if (!opts.loader || opts.batch_size < 1 || opts.dataset_size < 1 || opts.factor < 0.0f ||
        (opts.factor > 0.0f && opts.factor <= 1.0f) || opts.max_batch_size < 0) {
        nn__misuse("nn_increase_batch: needs a loader, its batch_size >= 1, dataset_size >= 1 "
                   "and factor > 1 (got batch_size=%d dataset_size=%d factor=%g)",
                   opts.batch_size, opts.dataset_size, (double)opts.factor);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_increase_batch", o, NN__S_BATCH))) return NULL;
    s->loader = opts.loader;
    s->batch = opts.batch_size;
    s->dataset_size = opts.dataset_size;
    s->max_batch = opts.max_batch_size;
    s->factor = nn__optv(opts.factor, 5.0);
    memcpy(s->milestones, opts.milestones, sizeof s->milestones);
    nn_loader_set_batch_size(opts.loader, opts.batch_size);
    return s;
}

static double nn__sched_anneal(int linear, double start, double end, double pct) {
    return linear ? (end - start) * pct + start : end + (start - end) / 2.0 * (cos(NN__PI_D * pct) + 1.0);
}

/* The lr (and momentum) at step t for the stateless schedules. */
static void nn__sched_apply(nn_sched *s) {
    double lr = s->base_lr, t = (double)s->t, mom = -1.0;
    int i, k;
    switch (s->kind) {
    case NN__S_CONSTANT:
        lr = s->base_lr * (s->t < s->period ? s->factor : 1.0);
        break;
    case NN__S_STEP:
        lr = s->base_lr * pow(s->gamma, (double)(s->t / s->period));
        break;
    case NN__S_MULTISTEP:
        for (k = 0, i = 0; i < NN_MAX_MILESTONES && s->milestones[i]; i++) k += s->milestones[i] <= s->t;
        lr = s->base_lr * pow(s->gamma, (double)k);
        break;
    case NN__S_EXP:
        lr = s->base_lr * pow(s->gamma, t);
        break;
    case NN__S_INVTIME: {
        double p = s->staircase ? (double)(s->t / s->period) : t / (double)s->period;
        lr = s->base_lr / (1.0 + s->gamma * p);
        break;
    }
    case NN__S_POLY: {
        double frac = 1.0 - (double)NN__MIN(s->t, (long)s->period) / (double)s->period;
        lr = (s->base_lr - s->end_lr) * pow(frac, s->power) + s->end_lr;
        break;
    }
    case NN__S_COSINE:
        lr = s->eta_min + (s->base_lr - s->eta_min) *
             (1.0 + cos(NN__PI_D * t / (double)s->period)) / 2.0;
        break;
    case NN__S_SGDR: {
        long cur = s->t, ti = s->period;
        while (cur >= ti) {
            cur -= ti;
            ti *= s->mult;
        }
        s->restarted = s->t > 0 && cur == 0;
        lr = s->eta_min + (s->base_lr - s->eta_min) *
             (1.0 + cos(NN__PI_D * (double)cur / (double)ti)) / 2.0;
        break;
    }
    case NN__S_CYCLIC: {
        double total = (double)s->period + (double)s->period2;
        double ratio = (double)s->period / total;
        double cycle = floor(1.0 + t / total), x = 1.0 + t / total - cycle;
        double sf = x <= ratio ? x / ratio : (x - 1.0) / (ratio - 1.0), amp;
        if (s->mode == NN_CYCLIC_TRIANGULAR) amp = 1.0;
        else if (s->mode == NN_CYCLIC_TRIANGULAR2) amp = 1.0 / pow(2.0, cycle - 1.0);
        else amp = pow(s->gamma, t);
        lr = s->lo_lr + (s->hi_lr - s->lo_lr) * sf * amp;
        if (s->cycle_mom) mom = s->hi_mom - (s->hi_mom - s->lo_mom) * sf * amp;
        break;
    }
    case NN__S_ONECYCLE: {
        /* phases: (end step, start lr, end lr, start momentum, end momentum) */
        double ph[3][5];
        int nph = s->three_phase ? 3 : 2;
        double start = 0.0, step = (double)NN__MIN(s->t, (long)s->period);
        double T = (double)s->period;
        ph[0][0] = s->pct * T - 1.0; ph[0][1] = s->lo_lr; ph[0][2] = s->hi_lr;
        ph[0][3] = s->hi_mom; ph[0][4] = s->lo_mom;
        if (s->three_phase) {
            ph[1][0] = 2.0 * s->pct * T - 2.0; ph[1][1] = s->hi_lr; ph[1][2] = s->lo_lr;
            ph[1][3] = s->lo_mom; ph[1][4] = s->hi_mom;
            ph[2][0] = T - 1.0; ph[2][1] = s->lo_lr; ph[2][2] = s->min_lr;
            ph[2][3] = s->hi_mom; ph[2][4] = s->hi_mom;
        } else {
            ph[1][0] = T - 1.0; ph[1][1] = s->hi_lr; ph[1][2] = s->min_lr;
            ph[1][3] = s->lo_mom; ph[1][4] = s->hi_mom;
        }
        for (i = 0; i < nph; i++) {
            if (step <= ph[i][0] || i == nph - 1) {
                double span = ph[i][0] - start;
                double pct = span != 0.0 ? (step - start) / span : 1.0;
                lr = nn__sched_anneal(s->anneal == NN_ANNEAL_LINEAR, ph[i][1], ph[i][2], pct);
                if (s->cycle_mom) mom = nn__sched_anneal(s->anneal == NN_ANNEAL_LINEAR, ph[i][3], ph[i][4], pct);
                break;
            }
            start = ph[i][0];
        }
        break;
    }
    case NN__S_WARMUP:
        if (s->t < s->period || !s->then) {
            double f = (double)NN__MIN(s->t, (long)s->period) / (double)s->period;
            lr = s->base_lr * (s->factor + (1.0 - s->factor) * f);
        } else {
            s->then->t = s->t - s->period;
            if (s->then->kind == NN__S_PLATEAU || s->then->kind == NN__S_BATCH) {
                if (s->then->t == 0) nn__optim_set_lr_d(s->opt, s->base_lr);
            } else {
                nn__sched_apply(s->then);
            }
            return;
        }
        break;
    default:
        return;   /* plateau and batch schedules act in nn_sched_step */
    }
    nn__optim_set_lr_d(s->opt, lr);
    if (mom >= 0.0) nn__optim_set_mom_d(s->opt, mom);
}

static void nn__plateau_step(nn_sched *s, double v) {
    int better;
    s->t++;
    if (s->mode == NN_MODE_MIN)
        better = s->threshold_mode == NN_THRESHOLD_REL ? v < s->best * (1.0 - s->threshold)
                                                       : v < s->best - s->threshold;
    else
        better = s->threshold_mode == NN_THRESHOLD_REL ? v > s->best * (1.0 + s->threshold)
                                                       : v > s->best + s->threshold;
    if (better) {
        s->best = v;
        s->num_bad = 0;
    } else {
        s->num_bad++;
    }
    if (s->cooldown_left > 0) {
        s->cooldown_left--;
        s->num_bad = 0;
    }
    if (s->num_bad > s->patience) {
        double old = nn__optim_lr_d(s->opt), lr = old * s->factor;
        if (lr < s->min_lr) lr = s->min_lr;
        if (old - lr > s->eps) nn__optim_set_lr_d(s->opt, lr);
        s->cooldown_left = s->cooldown;
        s->num_bad = 0;
    }
}

static void nn__batch_step(nn_sched *s) {
    int i;
    s->t++;
    for (i = 0; i < NN_MAX_MILESTONES && s->milestones[i]; i++) {
        if (s->milestones[i] != s->t) continue;
        {
            double grown = (double)s->batch * s->factor;
            if (!s->max_batch || grown <= (double)s->max_batch + 1e-9) {
                s->batch = (int)(grown + 0.5);
                nn_loader_set_batch_size(s->loader, s->batch);
            } else {
                nn__optim_set_lr_d(s->opt, nn__optim_lr_d(s->opt) / s->factor);
            }
        }
    }
}

static void nn__sched_advance(nn_sched *s, int has_metric, double v) {
    if (!s) {
        nn__misuse("nn_sched_step: NULL schedule");
        return;
    }
    if (s->kind == NN__S_PLATEAU) {
        if (!has_metric) {
            nn__misuse("nn_sched_step: reduce-on-plateau needs nn_sched_step_metric(s, value)");
            return;
        }
        nn__plateau_step(s, v);
        return;
    }
    if (s->kind == NN__S_BATCH) {
        nn__batch_step(s);
        return;
    }
    if (s->kind == NN__S_WARMUP && s->then && s->t >= s->period &&
        (s->then->kind == NN__S_PLATEAU || s->then->kind == NN__S_BATCH)) {
        s->t++;
        nn__sched_advance(s->then, has_metric, v);
        return;
    }
    s->t++;
    nn__sched_apply(s);
}

NNDEF void nn_sched_step(nn_sched *s) { nn__sched_advance(s, 0, 0.0); }
NNDEF void nn_sched_step_metric(nn_sched *s, float value) { nn__sched_advance(s, 1, (double)value); }
NNDEF long nn_sched_get_step(const nn_sched *s) { return s ? s->t : 0; }

NNDEF int nn_sched_restarted(const nn_sched *s) {
    if (!s) return 0;
    if (s->kind == NN__S_WARMUP) return s->then && s->t > s->period ? nn_sched_restarted(s->then) : 0;
    return s->kind == NN__S_SGDR ? s->restarted : 0;
}

NNDEF int nn_sched_batch_size(const nn_sched *s) {
    if (s && s->kind == NN__S_WARMUP) return nn_sched_batch_size(s->then);
    return s && s->kind == NN__S_BATCH ? s->batch : 0;
}

NNDEF float nn_sched_noise_scale(const nn_sched *s) {
    double m;
    if (s && s->kind == NN__S_WARMUP) return nn_sched_noise_scale(s->then);
    if (!s || s->kind != NN__S_BATCH) return 0.0f;
    m = nn__optim_mom_d(s->opt);
    return (float)(nn__optim_lr_d(s->opt) * (double)s->dataset_size / ((double)s->batch * (1.0 - m)));
}

NNDEF void nn_sched_free(nn_sched *s) {
    if (!s) return;
    nn_sched_free(s->then);
    nn__free(s);
}

/* ----- saving and restoring state -----
   Little-endian records: "nnoptim\0", u32 version, the optimizer record
   (recursive for Lookahead), u32 has_schedule, the schedule record. */

#define NN__STATE_VERSION 1u

typedef struct nn__st_wbuf {
    unsigned char *p;
    size_t cap, pos;
} nn__st_wbuf;
typedef struct nn__st_rbuf {
    const unsigned char *p;
    size_t size, pos;
    int bad;
} nn__st_rbuf;

static void nn__st_put(nn__st_wbuf *w, const void *src, size_t n) {
    if (w->p && w->pos + n <= w->cap) memcpy(w->p + w->pos, src, n);
    w->pos += n;
}
static void nn__st_put_u64(nn__st_wbuf *w, uint64_t v) {
    unsigned char b[8];
    int i;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    nn__st_put(w, b, 8);
}
static void nn__st_put_u32(nn__st_wbuf *w, uint32_t v) {
    unsigned char b[4];
    int i;
    for (i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    nn__st_put(w, b, 4);
}
static void nn__st_put_f64(nn__st_wbuf *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    nn__st_put_u64(w, u);
}
static void nn__st_put_floats(nn__st_wbuf *w, const float *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        nn__st_put_u32(w, u);
    }
}
static int nn__st_get(nn__st_rbuf *r, void *dst, size_t n) {
    if (r->bad || r->pos + n > r->size) {
        r->bad = 1;
        memset(dst, 0, n);
        return 0;
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 1;
}
static uint64_t nn__st_get_u64(nn__st_rbuf *r) {
    unsigned char b[8];
    uint64_t v = 0;
    int i;
    nn__st_get(r, b, 8);
    for (i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}
static uint32_t nn__st_get_u32(nn__st_rbuf *r) {
    unsigned char b[4];
    uint32_t v = 0;
    int i;
    nn__st_get(r, b, 4);
    for (i = 3; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}
static double nn__st_get_f64(nn__st_rbuf *r) {
    uint64_t u = nn__st_get_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}
static void nn__st_get_floats(nn__st_rbuf *r, float *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u = nn__st_get_u32(r);
        memcpy(&f[i], &u, 4);
    }
}

static void nn__optim_write(nn__st_wbuf *w, const nn_optim *o) {
    int i, k;
    nn__st_put_u32(w, (uint32_t)o->kind);
    nn__st_put_u32(w, (uint32_t)o->n);
    if (o->kind == NN__OPT_LOOKAHEAD) {
        nn__st_put_u64(w, (uint64_t)o->la_count);
        for (i = 0; i < o->n; i++) nn__st_put_floats(w, o->slot[0][i], o->params[i]->numel);
        nn__optim_write(w, o->inner);
        return;
    }
    nn__st_put_f64(w, o->lr);
    nn__st_put_f64(w, o->momentum);
    nn__st_put_f64(w, o->beta1);
    for (i = 0; i < o->n; i++) {
        uint32_t len = (uint32_t)strlen(o->names[i]), mask = 0;
        nn__st_put_u32(w, len);
        nn__st_put(w, o->names[i], len);
        nn__st_put_u64(w, (uint64_t)o->params[i]->numel);
        nn__st_put_f64(w, o->lr_scale[i]);
        nn__st_put_f64(w, o->wd[i]);
        nn__st_put_u32(w, o->frozen[i]);
        nn__st_put_u64(w, (uint64_t)o->steps[i]);
        nn__st_put_floats(w, &o->mu_prod[i], 1);
        for (k = 0; k < NN__SLOTS; k++)
            if (o->slot[k][i]) mask |= 1u << k;
        nn__st_put_u32(w, mask);
        for (k = 0; k < NN__SLOTS; k++)
            if (o->slot[k][i]) nn__st_put_floats(w, o->slot[k][i], o->params[i]->numel);
    }
}

static nn_status nn__optim_read(nn__st_rbuf *r, nn_optim *o, const char *where) {
    int i, k;
    uint32_t kind = nn__st_get_u32(r), n = nn__st_get_u32(r);
    if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated optimizer record", where);
    if (kind != (uint32_t)o->kind)
        return nn__error(NN_ERR_FORMAT, "%s: state of a %s optimizer, this one is %s", where,
                         kind < NN__OPT_KINDS ? nn__optim_names[kind] : "unknown",
                         nn__optim_names[o->kind]);
    if (n != (uint32_t)o->n)
        return nn__error(NN_ERR_FORMAT, "%s: state for %u parameters, this optimizer has %d",
                         where, (unsigned)n, o->n);
    if (o->kind == NN__OPT_LOOKAHEAD) {
        o->la_count = (long)nn__st_get_u64(r);
        for (i = 0; i < o->n; i++) nn__st_get_floats(r, o->slot[0][i], o->params[i]->numel);
        if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated Lookahead record", where);
        return nn__optim_read(r, o->inner, where);
    }
    o->lr = nn__st_get_f64(r);
    o->momentum = nn__st_get_f64(r);
    o->beta1 = nn__st_get_f64(r);
    for (i = 0; i < o->n; i++) {
        char name[256];
        uint32_t len = nn__st_get_u32(r), mask;
        uint64_t numel;
        if (len >= sizeof name || !nn__st_get(r, name, len))
            return nn__error(NN_ERR_FORMAT, "%s: bad or truncated name of parameter %d", where, i);
        name[len] = 0;
        numel = nn__st_get_u64(r);
        if (strcmp(name, o->names[i]) != 0 || numel != (uint64_t)o->params[i]->numel)
            return nn__error(NN_ERR_FORMAT,
                             "%s: parameter %d is \"%s\" with %llu elements in the state, "
                             "\"%s\" with %zu here", where, i, name, (unsigned long long)numel,
                             o->names[i], o->params[i]->numel);
        o->lr_scale[i] = nn__st_get_f64(r);
        o->wd[i] = nn__st_get_f64(r);
        o->frozen[i] = (unsigned char)(nn__st_get_u32(r) != 0);
        o->steps[i] = (long)nn__st_get_u64(r);
        nn__st_get_floats(r, &o->mu_prod[i], 1);
        mask = nn__st_get_u32(r);
        for (k = 0; k < NN__SLOTS; k++) {
            if (((mask >> k) & 1u) != (o->slot[k][i] != NULL))
                return nn__error(NN_ERR_FORMAT, "%s: parameter \"%s\": the state buffers differ "
                                 "(an option such as momentum, centered or amsgrad changed)",
                                 where, name);
            if (o->slot[k][i]) nn__st_get_floats(r, o->slot[k][i], o->params[i]->numel);
        }
        if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated optimizer state", where);
    }
    return NN_OK;
}

static void nn__sched_write(nn__st_wbuf *w, const nn_sched *s) {
    nn__st_put_u32(w, (uint32_t)s->kind);
    nn__st_put_u64(w, (uint64_t)s->t);
    nn__st_put_f64(w, s->base_lr);
    nn__st_put_f64(w, s->best);
    nn__st_put_u32(w, (uint32_t)s->num_bad);
    nn__st_put_u32(w, (uint32_t)s->cooldown_left);
    nn__st_put_u32(w, (uint32_t)s->restarted);
    nn__st_put_u32(w, (uint32_t)s->batch);
    nn__st_put_f64(w, s->lo_lr);
    nn__st_put_u32(w, s->then != NULL);
    if (s->then) nn__sched_write(w, s->then);
}

static nn_status nn__sched_read(nn__st_rbuf *r, nn_sched *s, const char *where) {
    uint32_t kind = nn__st_get_u32(r), has_then;
    if (!r->bad && kind != (uint32_t)s->kind)
        return nn__error(NN_ERR_FORMAT, "%s: the state holds a different kind of schedule", where);
    s->t = (long)nn__st_get_u64(r);
    s->base_lr = nn__st_get_f64(r);
    s->best = nn__st_get_f64(r);
    s->num_bad = (int)nn__st_get_u32(r);
    s->cooldown_left = (int)nn__st_get_u32(r);
    s->restarted = (int)nn__st_get_u32(r);
    s->batch = (int)nn__st_get_u32(r);
    s->lo_lr = nn__st_get_f64(r);
    has_then = nn__st_get_u32(r);
    if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated schedule record", where);
    if ((has_then != 0) != (s->then != NULL))
        return nn__error(NN_ERR_FORMAT, "%s: the warmup's inner schedule differs", where);
    if (s->kind == NN__S_BATCH && s->batch > 0) nn_loader_set_batch_size(s->loader, s->batch);
    return s->then ? nn__sched_read(r, s->then, where) : NN_OK;
}

NNDEF size_t nn_optim_state_write(const nn_optim *o, const nn_sched *s, void *buf, size_t cap) {
    nn__st_wbuf w;
    if (!o) {
        nn__misuse("nn_optim_state_write: NULL optimizer");
        return 0;
    }
    w.p = (unsigned char *)buf;
    w.cap = cap;
    w.pos = 0;
    nn__st_put(&w, "nnoptim", 8);
    nn__st_put_u32(&w, NN__STATE_VERSION);
    nn__optim_write(&w, o);
    nn__st_put_u32(&w, s != NULL);
    if (s) nn__sched_write(&w, s);
    if (w.pos > cap) w.p = NULL;
    return w.pos;
}

static nn_status nn__state_read(nn_optim *o, nn_sched *s, const void *buf, size_t size,
                                const char *where) {
    nn__st_rbuf r;
    char magic[8];
    uint32_t version, has_sched;
    nn_status st;
    if (!o || !buf) {
        nn__misuse("nn_optim_state_read: NULL optimizer or buffer");
        return NN_ERR_ARG;
    }
    r.p = (const unsigned char *)buf;
    r.size = size;
    r.pos = 0;
    r.bad = 0;
    if (!nn__st_get(&r, magic, 8) || memcmp(magic, "nnoptim", 8) != 0)
        return nn__error(NN_ERR_FORMAT, "%s: not an nn.h optimizer state (wrong magic)", where);
    version = nn__st_get_u32(&r);
    if (version != NN__STATE_VERSION)
        return nn__error(NN_ERR_FORMAT, "%s: state version %u, this nn.h reads %u", where,
                         (unsigned)version, NN__STATE_VERSION);
    if ((st = nn__optim_read(&r, o, where)) != NN_OK) return st;
    has_sched = nn__st_get_u32(&r);
    if (r.bad) return nn__error(NN_ERR_FORMAT, "%s: truncated", where);
    if (s && !has_sched) return nn__error(NN_ERR_FORMAT, "%s: holds no schedule state", where);
    if (s && (st = nn__sched_read(&r, s, where)) != NN_OK) return st;
    return NN_OK;
}

NNDEF nn_status nn_optim_state_read(nn_optim *o, nn_sched *s, const void *buf, size_t size) {
    return nn__state_read(o, s, buf, size, "nn_optim_state_read");
}

NNDEF nn_status nn_optim_save(const nn_optim *o, const nn_sched *s, const char *path) {
    size_t size;
    void *buf;
    FILE *f;
    int ok;
    if (!o || !path) {
        nn__misuse("nn_optim_save: NULL optimizer or path");
        return NN_ERR_ARG;
    }
    size = nn_optim_state_write(o, s, NULL, 0);
    if (!(buf = nn__malloc(size))) return NN_ERR_OOM;
    nn_optim_state_write(o, s, buf, size);
    if (!(f = fopen(path, "wb"))) {
        nn__free(buf);
        return nn__error(NN_ERR_IO, "nn_optim_save: %s: cannot open for writing", path);
    }
    ok = fwrite(buf, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    nn__free(buf);
    return ok ? NN_OK : nn__error(NN_ERR_IO, "nn_optim_save: %s: write failed", path);
}

NNDEF nn_status nn_optim_load(nn_optim *o, nn_sched *s, const char *path) {
    FILE *f;
    long size;
    unsigned char *buf;
    nn_status st;
    char where[300];
    if (!o || !path) {
        nn__misuse("nn_optim_load: NULL optimizer or path");
        return NN_ERR_ARG;
    }
    if (!(f = fopen(path, "rb"))) return nn__error(NN_ERR_IO, "nn_optim_load: %s: cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return nn__error(NN_ERR_IO, "nn_optim_load: %s: cannot read", path);
    }
    if (!(buf = (unsigned char *)nn__malloc((size_t)size))) {
        fclose(f);
        return NN_ERR_OOM;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        nn__free(buf);
        return nn__error(NN_ERR_IO, "nn_optim_load: %s: read failed", path);
    }
    fclose(f);
    snprintf(where, sizeof where, "nn_optim_load: %s", path);
    st = nn__state_read(o, s, buf, (size_t)size, where);
    nn__free(buf);
    return st;
}

/* ----- SVG line plots ----- */

static double nn__plot_axis(double v, int logscale) { return logscale ? log10(v > 1e-30 ? v : 1e-30) : v; }

/* Round tick spacing (1, 2 or 5 times a power of ten) for a linear span. */
static double nn__plot_tick(double span) {
    double raw = span / 5.0, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * p;
}

NNDEF nn_status nn_plot_svg(const char *path, const nn_plot_series *series, int nseries,
                            nn_plot_opts opts) {
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    int W = opts.width > 0 ? opts.width : 720, H = opts.height > 0 ? opts.height : 440;
    double L = 70.0, R = 160.0, T = 40.0, B = 50.0, x0 = HUGE_VAL, x1 = -HUGE_VAL, y0v = HUGE_VAL,
           y1v = -HUGE_VAL, pw, ph, v, st;
    int i, j;
    FILE *f;
    if (!path || (nseries && !series)) {
        nn__misuse("nn_plot_svg: NULL path or series");
        return NN_ERR_ARG;
    }
    for (i = 0; i < nseries; i++)
        for (j = 0; j < series[i].n; j++) {
            double xv = (double)series[i].x[j], yv = (double)series[i].y[j];
            if (!(xv == xv) || !(yv == yv) || fabs(yv) > 1e30 || (opts.logx && xv <= 0.0) ||
                (opts.logy && yv <= 0.0))
                continue;
            xv = nn__plot_axis(xv, opts.logx);
            yv = nn__plot_axis(yv, opts.logy);
            if (xv < x0) x0 = xv;
            if (xv > x1) x1 = xv;
            if (yv < y0v) y0v = yv;
            if (yv > y1v) y1v = yv;
        }
    if (x0 > x1) { x0 = 0.0; x1 = 1.0; y0v = 0.0; y1v = 1.0; }
    if (x1 - x0 < 1e-12) { x0 -= 0.5; x1 += 0.5; }
    if (y1v - y0v < 1e-12) { y0v -= 0.5; y1v += 0.5; }
    v = (y1v - y0v) * 0.05;
    y0v -= v;
    y1v += v;
    if (!(f = fopen(path, "w"))) return nn__error(NN_ERR_IO, "nn_plot_svg: %s: cannot open for writing", path);
    pw = (double)W - L - R;
    ph = (double)H - T - B;
#define NN__PX(xv) (L + ((xv) - x0) / (x1 - x0) * pw)
#define NN__PY(yv) (T + ph - ((yv) - y0v) / (y1v - y0v) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (opts.title)
        fprintf(f, "<text x=\"%g\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
                L + pw / 2.0, opts.title);
    /* grid and ticks */
    st = opts.logx ? 1.0 : nn__plot_tick(x1 - x0);
    if (opts.logx && x1 - x0 > 12.0) st = ceil((x1 - x0) / 10.0);
    for (v = ceil(x0 / st) * st; v <= x1 + 1e-9 * st; v += st) {
        double px = NN__PX(v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", px, T, px, T + ph);
        if (opts.logx) fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">1e%d</text>\n", px, T + ph + 16.0, (int)floor(v + 0.5));
        else fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px, T + ph + 16.0, fabs(v) < 1e-12 * st ? 0.0 : v);
    }
    st = opts.logy ? 1.0 : nn__plot_tick(y1v - y0v);
    if (opts.logy && y1v - y0v > 12.0) st = ceil((y1v - y0v) / 10.0);
    for (v = ceil(y0v / st) * st; v <= y1v + 1e-9 * st; v += st) {
        double py = NN__PY(v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, py, L + pw, py);
        if (opts.logy) fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", L - 6.0, py + 4.0, (int)floor(v + 0.5));
        else fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6.0, py + 4.0, fabs(v) < 1e-12 * st ? 0.0 : v);
    }
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n", L, T, pw, ph);
    if (opts.xlabel)
        fprintf(f, "<text x=\"%g\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", L + pw / 2.0, H - 12, opts.xlabel);
    if (opts.ylabel)
        fprintf(f, "<text transform=\"translate(16,%g) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
                T + ph / 2.0, opts.ylabel);
    if (opts.mark_x > 0.0f && (!opts.logx || opts.mark_x > 0.0f)) {
        double px = NN__PX(nn__plot_axis((double)opts.mark_x, opts.logx));
        if (px >= L && px <= L + pw)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"black\" "
                       "stroke-dasharray=\"5,4\"/>\n", px, T, px, T + ph);
    }
    for (i = 0; i < nseries; i++) {
        const char *col = colors[i % 10];
        int open = 0;
        for (j = 0; j < series[i].n; j++) {
            double xv = (double)series[i].x[j], yv = (double)series[i].y[j];
            int ok = xv == xv && yv == yv && fabs(yv) <= 1e30 && (!opts.logx || xv > 0.0) &&
                     (!opts.logy || yv > 0.0);
            if (ok) {
                double py = NN__PY(nn__plot_axis(yv, opts.logy));
                if (py < T) py = T;   /* clip what leaves the box upward */
                if (!open) fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", col);
                fprintf(f, "%.1f,%.1f ", NN__PX(nn__plot_axis(xv, opts.logx)), py);
                open = 1;
            } else if (open) {
                fprintf(f, "\"/>\n");
                open = 0;
            }
        }
        if (open) fprintf(f, "\"/>\n");
        fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                L + pw + 12.0, T + 10.0 + 18.0 * i, L + pw + 32.0, T + 10.0 + 18.0 * i, col);
        fprintf(f, "<text x=\"%g\" y=\"%g\">%s</text>\n", L + pw + 38.0, T + 14.0 + 18.0 * i,
                series[i].name ? series[i].name : "");
    }
#undef NN__PX
#undef NN__PY
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) return nn__error(NN_ERR_IO, "nn_plot_svg: %s: write failed", path);
    return NN_OK;
}

/* ----- the LR range test ----- */

NNDEF nn_status nn_lr_find(nn_optim *o, nn_lr_find_fn fn, void *user, nn_lr_find_opts opts,
                           nn_lr_find_result *out) {
    nn_optim *b = nn__optim_base(o);
    double start, end, beta, diverge, avg = 0.0, best = HUGE_VAL, lr0;
    size_t state_size, total = 0, off;
    unsigned char *state = NULL;
    float *saved = NULL;
    int n, i, k;
    if (!b || !fn || !out) {
        nn__misuse("nn_lr_find: needs an optimizer, a function and a result");
        return NN_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    start = nn__optv(opts.start_lr, 1e-7);
    end = nn__optv(opts.end_lr, 10.0);
    n = opts.num_steps > 0 ? opts.num_steps : 100;
    beta = nn__optv(opts.smoothing, 0.98);
    diverge = nn__optv(opts.diverge, 4.0);
    if (!(end > start) || n < 2 || beta >= 1.0) {
        nn__misuse("nn_lr_find: needs end_lr > start_lr > 0, num_steps >= 2 and smoothing < 1");
        return NN_ERR_ARG;
    }
    /* Save the weights and optimizer state: the test must not train the model. */
    for (i = 0; i < b->n; i++) total += b->params[i]->numel;
    state_size = nn_optim_state_write(o, NULL, NULL, 0);
    state = (unsigned char *)nn__malloc(state_size);
    saved = nn__alloc_floats(total, 0);
    out->lr = (float *)nn__calloc((size_t)n, sizeof(float));
    out->loss = (float *)nn__calloc((size_t)n, sizeof(float));
    out->smoothed = (float *)nn__calloc((size_t)n, sizeof(float));
    if (!state || !saved || !out->lr || !out->loss || !out->smoothed) {
        nn__free(state);
        nn__free_floats(saved);
        nn_lr_find_free(out);
        return NN_ERR_OOM;
    }
    nn_optim_state_write(o, NULL, state, state_size);
    for (off = 0, i = 0; i < b->n; i++) {
        memcpy(saved + off, b->params[i]->data, b->params[i]->numel * sizeof(float));
        off += b->params[i]->numel;
    }
    lr0 = b->lr;
    for (i = 0; i < n; i++) {
        double lr = start * pow(end / start, (double)i / (double)(n - 1)), loss, sm;
        nn__optim_set_lr_d(o, lr);
        nn_zero_grad(o);
        loss = (double)fn(user);
        if (!(loss == loss) || fabs(loss) > 1e30) break;
        nn_step(o);
        avg = beta * avg + (1.0 - beta) * loss;
        sm = avg / (1.0 - pow(beta, (double)(i + 1)));
        out->lr[i] = (float)lr;
        out->loss[i] = (float)loss;
        out->smoothed[i] = (float)sm;
        out->n = i + 1;
        if (sm < best) {
            best = sm;
            out->best = i;
        }
        if (i > 0 && sm > diverge * best) break;
    }
    /* restore */
    for (off = 0, i = 0; i < b->n; i++) {
        memcpy(b->params[i]->data, saved + off, b->params[i]->numel * sizeof(float));
        off += b->params[i]->numel;
    }
    nn_optim_state_read(o, NULL, state, state_size);
    b->lr = lr0;
    nn_zero_grad(o);
    nn__free(state);
    nn__free_floats(saved);
    if (out->n == 0) return nn__error(NN_ERR_ARG, "nn_lr_find: the first loss was not finite");
    /* the steepest fall of the smoothed loss per log-lr, up to the minimum */
    out->lr_min_div10 = out->lr[out->best] / 10.0f;
    out->suggestion = out->lr_min_div10;
    {
        double steepest = HUGE_VAL;
        for (k = 1; k <= out->best && k + 1 < out->n; k++) {
            double slope = ((double)out->smoothed[k + 1] - (double)out->smoothed[k - 1]) /
                           (log((double)out->lr[k + 1]) - log((double)out->lr[k - 1]));
            if (slope < steepest) {
                steepest = slope;
                out->suggestion = out->lr[k];
            }
        }
    }
    return NN_OK;
}

NNDEF void nn_lr_find_free(nn_lr_find_result *r) {
    if (!r) return;
    nn__free(r->lr);
    nn__free(r->loss);
    nn__free(r->smoothed);
    memset(r, 0, sizeof *r);
}

NNDEF nn_status nn_lr_find_write_csv(const nn_lr_find_result *r, const char *path) {
    FILE *f;
    int i;
    if (!r || !path) {
        nn__misuse("nn_lr_find_write_csv: NULL result or path");
        return NN_ERR_ARG;
    }
    if (!(f = fopen(path, "w"))) return nn__error(NN_ERR_IO, "nn_lr_find_write_csv: %s: cannot open", path);
    fprintf(f, "lr,loss,smoothed\n");
    for (i = 0; i < r->n; i++)
        fprintf(f, "%.6g,%.6g,%.6g\n", (double)r->lr[i], (double)r->loss[i], (double)r->smoothed[i]);
    if (fclose(f) != 0) return nn__error(NN_ERR_IO, "nn_lr_find_write_csv: %s: write failed", path);
    return NN_OK;
}

NNDEF nn_status nn_lr_find_write_svg(const nn_lr_find_result *r, const char *path) {
    nn_plot_series s[2];
    nn_plot_opts po;
    char title[128];
    if (!r || !path) {
        nn__misuse("nn_lr_find_write_svg: NULL result or path");
        return NN_ERR_ARG;
    }
    s[0].name = "smoothed";
    s[0].x = r->lr;
    s[0].y = r->smoothed;
    s[0].n = r->n;
    s[1].name = "raw loss";
    s[1].x = r->lr;
    s[1].y = r->loss;
    s[1].n = r->n;
    memset(&po, 0, sizeof po);
    snprintf(title, sizeof title, "LR range test (suggested lr %.3g)", (double)r->suggestion);
    po.title = title;
    po.xlabel = "learning rate";
    po.ylabel = "training loss";
    po.logx = 1;
    po.mark_x = r->suggestion;
    return nn_plot_svg(path, s, 2, po);
}

/* ----- snapshot ensembles ----- */

struct nn_snapshots {
    nn_module *m;
    int max, count, next;
    size_t nfloats;
    float **snap;
    float *backup;
};

/* Copy the module's parameters and buffers to dst (to_module = 0) or back. */
static void nn__snapshot_copy(nn_module *m, float *buf, int to_module) {
    int np, nb, i;
    nn_param *ps = nn_parameters(m, &np);
    size_t off = 0;
    for (i = 0; i < np; i++) {
        nn_tensor *t = ps[i].tensor;
        if (to_module) memcpy(t->data, buf + off, t->numel * sizeof(float));
        else memcpy(buf + off, t->data, t->numel * sizeof(float));
        off += t->numel;
    }
    ps = nn_buffers(m, &nb);
    for (i = 0; i < nb; i++) {
        nn_tensor *t = ps[i].tensor;
        if (to_module) memcpy(t->data, buf + off, t->numel * sizeof(float));
        else memcpy(buf + off, t->data, t->numel * sizeof(float));
        off += t->numel;
    }
}

NNDEF nn_snapshots *nn_snapshots_new(nn_module *m, int max_count) {
    nn_snapshots *s;
    nn_param *ps;
    int n, i;
    if (!m || max_count < 0) {
        nn__misuse("nn_snapshots_new: needs a module and max_count >= 0");
        return NULL;
    }
    if (!(s = (nn_snapshots *)nn__calloc(1, sizeof(nn_snapshots)))) return NULL;
    s->m = m;
    s->max = max_count ? max_count : 8;
    ps = nn_parameters(m, &n);
    for (i = 0; i < n; i++) s->nfloats += ps[i].tensor->numel;
    ps = nn_buffers(m, &n);
    for (i = 0; i < n; i++) s->nfloats += ps[i].tensor->numel;
    s->snap = (float **)nn__calloc((size_t)s->max, sizeof(float *));
    s->backup = nn__alloc_floats(s->nfloats, 0);
    if (!s->snap || !s->backup) {
        nn_snapshots_free(s);
        return NULL;
    }
    return s;
}

NNDEF nn_status nn_snapshot_take(nn_snapshots *s) {
    int k;
    if (!s) {
        nn__misuse("nn_snapshot_take: NULL snapshots");
        return NN_ERR_ARG;
    }
    k = s->next;
    if (!s->snap[k] && !(s->snap[k] = nn__alloc_floats(s->nfloats, 0))) return NN_ERR_OOM;
    nn__snapshot_copy(s->m, s->snap[k], 0);
    s->next = (k + 1) % s->max;
    if (s->count < s->max) s->count++;
    return NN_OK;
}

NNDEF int nn_snapshot_count(const nn_snapshots *s) { return s ? s->count : 0; }

NNDEF nn_tensor *nn_snapshot_predict(nn_snapshots *s, nn_tensor *x) {
    nn_tensor *avg = NULL;
    int k, was = 1;
    if (!s || !x || !s->count) {
        nn__misuse("nn_snapshot_predict: needs snapshots (take at least one) and an input");
        return NULL;
    }
    if (x->graph) was = nn_set_grad_enabled(x->graph, 0);
    nn__snapshot_copy(s->m, s->backup, 0);
    for (k = 0; k < s->count; k++) {
        nn_tensor *y;
        size_t rows, cols, r, c;
        nn__snapshot_copy(s->m, s->snap[k], 1);
        y = nn_forward(s->m, x);
        if (!y) break;
        if (!avg && !(avg = nn_zeros(x->graph, nn_shape_of(y)))) break;
        cols = y->ndim ? (size_t)y->shape[y->ndim - 1] : 1;
        rows = cols ? y->numel / cols : 0;
        for (r = 0; r < rows; r++) { /* softmax of the row, averaged in */
            const float *yr = y->data + r * cols;
            float *ar = avg->data + r * cols, mx = yr[0], sum = 0.0f;
            for (c = 1; c < cols; c++) mx = yr[c] > mx ? yr[c] : mx;
            for (c = 0; c < cols; c++) sum += expf(yr[c] - mx);
            for (c = 0; c < cols; c++) ar[c] += expf(yr[c] - mx) / sum / (float)s->count;
        }
    }
    nn__snapshot_copy(s->m, s->backup, 1);
    if (x->graph) nn_set_grad_enabled(x->graph, was);
    return avg;
}

NNDEF void nn_snapshots_free(nn_snapshots *s) {
    int k;
    if (!s) return;
    if (s->snap)
        for (k = 0; k < s->max; k++) nn__free_floats(s->snap[k]);
    nn__free(s->snap);
    nn__free_floats(s->backup);
    nn__free(s);
}

