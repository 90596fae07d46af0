/* ===== >>optim =========================================================== */
/* Optimizers, parameter groups, gradient clipping, learning-rate and
   batch-size schedules, the LR range test, snapshot ensembles, and saving
   optimizer/schedule state.  docs/optimizers.md and docs/schedules.md give
   every formula.

   Options are structs where a zero field means PyTorch's default.  Where that
   default is not 0 (betas, AdamW's weight_decay, LARS's momentum, ...), a
   NEGATIVE value asks for a literal 0.  Hyperparameters are kept in double
   inside (as PyTorch keeps them in Python floats); the update itself runs in
   float32 like PyTorch's CPU kernels, so trajectories match torch.optim to
   float rounding.  nn_step never allocates: all state is made at creation. */

typedef struct nn_optim nn_optim;

typedef struct nn_sgd_opts {
    float lr;            /* learning rate (0 means 0.01) */
    float momentum;      /* 0: plain SGD */
    float dampening;     /* scales the new gradient in the momentum buffer */
    float weight_decay;  /* L2 penalty added to the gradient */
    int nesterov;        /* Nesterov momentum (needs momentum > 0) */
} nn_sgd_opts;

typedef struct nn_adagrad_opts {
    float lr;                         /* 0 means 1e-2 */
    float lr_decay;                   /* lr / (1 + (t-1) lr_decay) */
    float weight_decay;               /* L2 penalty added to the gradient */
    float initial_accumulator_value;  /* start of the sum of squares */
    float eps;                        /* 0 means 1e-10 */
} nn_adagrad_opts;

typedef struct nn_rmsprop_opts {
    float lr;            /* 0 means 1e-2 */
    float alpha;         /* smoothing of the squares, 0 means 0.99 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient */
    float momentum;      /* 0: none */
    int centered;        /* divide by the variance estimate instead */
} nn_rmsprop_opts;

typedef struct nn_adadelta_opts {
    float lr;            /* 0 means 1.0 */
    float rho;           /* 0 means 0.9 */
    float eps;           /* 0 means 1e-6 */
    float weight_decay;  /* L2 penalty added to the gradient */
} nn_adadelta_opts;

typedef struct nn_adam_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient (torch.optim.Adam) */
    int amsgrad;         /* use the running maximum of v (AMSGrad) */
} nn_adam_opts;

typedef struct nn_adamw_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* decoupled: p *= 1 - lr wd.  0 means 1e-2, < 0 none */
    int amsgrad;         /* use the running maximum of v (AMSGrad) */
} nn_adamw_opts;

typedef struct nn_adamax_opts {
    float lr;            /* 0 means 2e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient */
} nn_adamax_opts;

typedef struct nn_nadam_opts {
    float lr;              /* 0 means 2e-3 */
    float beta1, beta2;    /* 0 means 0.9 and 0.999 */
    float eps;             /* 0 means 1e-8 */
    float weight_decay;    /* L2 penalty added to the gradient */
    float momentum_decay;  /* psi in mu_t = b1 (1 - 0.5 0.96^(t psi)); 0 means 4e-3 */
} nn_nadam_opts;

typedef struct nn_radam_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient */
} nn_radam_opts;

typedef struct nn_lars_opts {
    float lr;                 /* global rate gamma, 0 means 1.0 */
    float momentum;           /* 0 means 0.9 (< 0: none) */
    float weight_decay;       /* beta in the paper, added to the gradient */
    float trust_coefficient;  /* eta, 0 means 1e-3 */
    float eps;                /* guards the trust ratio's denominator, 0 means 1e-8 */
} nn_lars_opts;

typedef struct nn_lamb_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-6 */
    float weight_decay;  /* decoupled, inside the trust ratio */
} nn_lamb_opts;

typedef struct nn_lookahead_opts {
    int k;               /* fast steps per slow step, 0 means 5 */
    float alpha;         /* slow-weight step size, 0 means 0.5 */
} nn_lookahead_opts;

typedef struct nn_ranger_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.95 and 0.999 (Ranger's) */
    float eps;           /* 0 means 1e-5 */
    float weight_decay;  /* L2 penalty added to the gradient (RAdam's) */
    int k;               /* 0 means 6 */
    float alpha;         /* 0 means 0.5 */
} nn_ranger_opts;

/* SGD (torch.optim.SGD): g = grad + wd p; b = mu b + (1-dampening) g (b = g
   at the first step); g = nesterov ? g + mu b : b; p -= lr g. */
NNDEF nn_optim *nn_sgd(nn_module *m, nn_sgd_opts opts);
/* AdaGrad (torch.optim.Adagrad): s += g^2; p -= lr/(1+(t-1) lr_decay) g/(sqrt(s)+eps). */
NNDEF nn_optim *nn_adagrad(nn_module *m, nn_adagrad_opts opts);
/* RMSprop (torch.optim.RMSprop): v = a v + (1-a) g^2; centered: d = sqrt(v - gbar^2)
   else sqrt(v), + eps; momentum: b = mu b + g/d, p -= lr b; else p -= lr g/d. */
NNDEF nn_optim *nn_rmsprop(nn_module *m, nn_rmsprop_opts opts);
/* Adadelta (torch.optim.Adadelta): v = rho v + (1-rho) g^2;
   d = sqrt(u+eps)/sqrt(v+eps) g; u = rho u + (1-rho) d^2; p -= lr d. */
NNDEF nn_optim *nn_adadelta(nn_module *m, nn_adadelta_opts opts);
/* Adam (torch.optim.Adam): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
   p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps); .amsgrad uses max(v). */
NNDEF nn_optim *nn_adam(nn_module *m, nn_adam_opts opts);
/* AdamW (torch.optim.AdamW): p *= 1 - lr wd, then Adam's step on the raw grad. */
NNDEF nn_optim *nn_adamw(nn_module *m, nn_adamw_opts opts);
/* Adamax (torch.optim.Adamax): u = max(b2 u, |g| + eps); p -= lr/(1-b1^t) m/u. */
NNDEF nn_optim *nn_adamax(nn_module *m, nn_adamax_opts opts);
/* NAdam (torch.optim.NAdam): Adam with Nesterov momentum and the
   momentum_decay schedule mu_t of Dozat's paper. */
NNDEF nn_optim *nn_nadam(nn_module *m, nn_nadam_opts opts);
/* RAdam (torch.optim.RAdam): Adam with the variance rectification r_t while
   rho_t > 5, plain bias-corrected momentum SGD (p -= lr m_hat) before that. */
NNDEF nn_optim *nn_radam(nn_module *m, nn_radam_opts opts);
/* LARS (You et al. 2017, alg. 1), per parameter tensor ("layer"):
   l = eta |p|/(|g| + wd |p| + eps); b = mu b + lr l (g + wd p); p -= b.
   When |p| or |g| is 0, l = eta. */
NNDEF nn_optim *nn_lars(nn_module *m, nn_lars_opts opts);
/* LAMB (You et al. 2019, alg. 2): r = m_hat/(sqrt(v_hat)+eps) + wd p;
   p -= lr |p|/|r| r per parameter tensor (ratio 1 when a norm is 0). */
NNDEF nn_optim *nn_lamb(nn_module *m, nn_lamb_opts opts);
/* Lookahead (Zhang et al. 2019) around any optimizer, which it takes over
   (nn_optim_free frees both): every k steps slow += alpha (fast - slow) and
   fast = slow.  lr, groups and momentum act on the inner optimizer. */
NNDEF nn_optim *nn_lookahead(nn_optim *inner, nn_lookahead_opts opts);
/* Ranger: nn_lookahead(nn_radam(m, ...), {k, alpha}) with Ranger's defaults. */
NNDEF nn_optim *nn_ranger(nn_module *m, nn_ranger_opts opts);

/* Zero the gradients of every parameter the optimizer updates. */
NNDEF void nn_zero_grad(nn_optim *o);
/* Apply one update from the accumulated gradients.  Frozen parameters and
   parameters without a gradient are skipped (their step count too). */
NNDEF void nn_step(nn_optim *o);
/* The current (base) learning rate; a group's rate is this times its scale. */
NNDEF float nn_get_lr(const nn_optim *o);
/* Set the base learning rate (schedules call this). */
NNDEF void nn_set_lr(nn_optim *o, float lr);
/* The momentum a schedule cycles: SGD/RMSprop/LARS momentum, or beta1 of the
   Adam family; 0 when the optimizer has none. */
NNDEF float nn_get_momentum(const nn_optim *o);
/* Set that momentum (misuse when the optimizer was made without one). */
NNDEF void nn_set_momentum(nn_optim *o, float momentum);
/* Free the optimizer and its state (not the module).  NULL is ignored. */
NNDEF void nn_optim_free(nn_optim *o);

/* Parameter groups.  Each parameter carries its own lr scale, weight decay
   and frozen flag; nn_optim_group sets them for every parameter whose dotted
   name matches pattern.  A zero field keeps the current setting, so calls
   compose (the later one wins where both set a field). */
typedef struct nn_group_opts {
    float lr;            /* absolute rate: scale = lr / current base lr */
    float lr_scale;      /* group rate = base lr * lr_scale, so schedules move it too */
    float weight_decay;  /* the group's weight decay; < 0 means none */
    int frozen;          /* 1: never updated (nor zeroed, nor clipped); -1 unfreezes */
    int max_ndim;        /* > 0: only tensors with at most this many dims (1: biases, norms) */
} nn_group_opts;

/* Apply g to the parameters matching pattern: "0." or "encoder." (a prefix of
   the name), "*.bias" (a suffix), "*" (all).  Returns how many matched; a
   pattern matching nothing is a misuse (a typo).  E.g. no decay on biases
   and norm weights: g.weight_decay = -1; g.max_ndim = 1; nn_optim_group(o, "*", g). */
NNDEF int nn_optim_group(nn_optim *o, const char *pattern, nn_group_opts g);
/* Freeze (on = 1) or unfreeze the parameters matching pattern; returns the count. */
NNDEF int nn_optim_freeze(nn_optim *o, const char *pattern, int on);

/* Clip the gradients of the optimizer's (unfrozen) parameters so their
   global L2 norm is at most max_norm; returns the norm before clipping
   (torch.nn.utils.clip_grad_norm_: g *= min(1, max_norm/(norm + 1e-6))). */
NNDEF float nn_clip_grad_norm(nn_optim *o, float max_norm);
/* The same over all parameters of a module. */
NNDEF float nn_clip_grad_norm_module(nn_module *m, float max_norm);
/* Clamp every gradient element to [-clip, clip] (clip_grad_value_). */
NNDEF void nn_clip_grad_value(nn_optim *o, float clip);
NNDEF void nn_clip_grad_value_module(nn_module *m, float clip);

/* ----- schedules ----- */
/* A schedule sets the optimizer's base learning rate (and, for one-cycle and
   cyclic, its momentum) from a step counter t.  Creating one sets the value
   for t = 0; nn_sched_step advances t (call it once per iteration or once per
   epoch, consistently with the step counts in the options).  Like
   torch.optim.lr_scheduler, base_lr is the optimizer's lr at creation. */
typedef struct nn_sched nn_sched;
#define NN_MAX_MILESTONES 16

typedef struct nn_constant_lr_opts {
    float factor;        /* lr = base factor while t < total_iters; 0 means 1/3 */
    int total_iters;     /* 0 means 5 */
} nn_constant_lr_opts;
typedef struct nn_step_lr_opts {
    int step_size;       /* lr = base gamma^floor(t/step_size); required */
    float gamma;         /* 0 means 0.1 */
} nn_step_lr_opts;
typedef struct nn_multistep_lr_opts {
    int milestones[NN_MAX_MILESTONES];  /* increasing; the list ends at a 0 */
    float gamma;                        /* lr = base gamma^(milestones <= t); 0 means 0.1 */
} nn_multistep_lr_opts;
typedef struct nn_exponential_lr_opts {
    float gamma;         /* lr = base gamma^t; required */
} nn_exponential_lr_opts;
typedef struct nn_inverse_time_lr_opts {
    float decay_rate;    /* k in lr = base / (1 + k t/decay_steps); required */
    int decay_steps;     /* 0 means 1 */
    int staircase;       /* use floor(t/decay_steps) */
} nn_inverse_time_lr_opts;
typedef struct nn_polynomial_lr_opts {
    int total_iters;     /* lr = (base-end) (1 - min(t,T)/T)^power + end; 0 means 5 */
    float power;         /* 0 means 1 */
    float end_lr;        /* 0 as in torch.optim.lr_scheduler.PolynomialLR */
} nn_polynomial_lr_opts;
typedef struct nn_cosine_annealing_opts {
    int T_max;           /* lr = eta_min + (base-eta_min)(1+cos(pi t/T_max))/2; required */
    float eta_min;
} nn_cosine_annealing_opts;
typedef struct nn_warm_restarts_opts {
    int T_0;             /* first period; required */
    int T_mult;          /* period growth after each restart, 0 means 1 */
    float eta_min;
} nn_warm_restarts_opts;
enum { NN_CYCLIC_TRIANGULAR = 0, NN_CYCLIC_TRIANGULAR2 = 1, NN_CYCLIC_EXP_RANGE = 2 };
typedef struct nn_cyclic_lr_opts {
    float base_lr;         /* low end; 0 means the optimizer's lr */
    float max_lr;          /* high end; required */
    int step_size_up;      /* 0 means 2000 */
    int step_size_down;    /* 0 means step_size_up */
    int mode;              /* NN_CYCLIC_TRIANGULAR (default), _TRIANGULAR2, _EXP_RANGE */
    float gamma;           /* exp_range: amplitude gamma^t; 0 means 1 */
    int cycle_momentum;    /* 0: cycle if the optimizer has a momentum, 1 on, -1 off */
    float base_momentum;   /* 0 means 0.8 */
    float max_momentum;    /* 0 means 0.9 */
} nn_cyclic_lr_opts;
enum { NN_ANNEAL_COS = 0, NN_ANNEAL_LINEAR = 1 };
typedef struct nn_onecycle_opts {
    float max_lr;          /* peak; required */
    int total_steps;       /* or epochs * steps_per_epoch */
    int epochs, steps_per_epoch;
    float pct_start;       /* rising part, 0 means 0.3 */
    int anneal_strategy;   /* NN_ANNEAL_COS (default) or NN_ANNEAL_LINEAR */
    int cycle_momentum;    /* 0: cycle if the optimizer has a momentum, 1 on, -1 off */
    float base_momentum;   /* 0 means 0.85 */
    float max_momentum;    /* 0 means 0.95 */
    float div_factor;      /* initial lr = max_lr/div_factor, 0 means 25 */
    float final_div_factor;/* min lr = initial/final_div_factor, 0 means 1e4 */
    int three_phase;       /* Smith's original three phases */
} nn_onecycle_opts;
typedef struct nn_warmup_opts {
    int warmup_steps;      /* required */
    float start_factor;    /* lr = base (f + (1-f) t/W) for t < W; 0 means 1/3 */
    nn_sched *then;        /* schedule to run after the warmup, or NULL; the
                              warmup takes it over (frees it) */
} nn_warmup_opts;
enum { NN_MODE_MIN = 0, NN_MODE_MAX = 1 };
enum { NN_THRESHOLD_REL = 0, NN_THRESHOLD_ABS = 1 };
typedef struct nn_reduce_on_plateau_opts {
    int mode;              /* NN_MODE_MIN (a loss, default) or NN_MODE_MAX (accuracy) */
    float factor;          /* lr *= factor on a plateau; 0 means 0.1 */
    int patience;          /* bad steps tolerated; 0 means 10, < 0 means 0 */
    float threshold;       /* "better" margin; 0 means 1e-4, < 0 means 0 */
    int threshold_mode;    /* NN_THRESHOLD_REL (default) or NN_THRESHOLD_ABS */
    int cooldown;          /* steps to wait after a reduction */
    float min_lr;          /* floor */
    float eps;             /* skip reductions smaller than this; 0 means 1e-8 */
} nn_reduce_on_plateau_opts;
typedef struct nn_increase_batch_opts {
    struct nn_loader *loader; /* the loader whose batch size grows; required */
    int batch_size;        /* the loader's current batch size; required */
    int dataset_size;      /* N, for the noise scale; required */
    int milestones[NN_MAX_MILESTONES]; /* epochs (list ends at a 0) */
    float factor;          /* batch *= factor at a milestone; 0 means 5 */
    int max_batch_size;    /* hybrid: beyond it, lr /= factor instead; 0: no cap */
} nn_increase_batch_opts;

/* Constant factor for a while (torch ConstantLR). */
NNDEF nn_sched *nn_constant_lr(nn_optim *o, nn_constant_lr_opts opts);
/* Step decay (torch StepLR). */
NNDEF nn_sched *nn_step_lr(nn_optim *o, nn_step_lr_opts opts);
/* Decay by gamma at each milestone (torch MultiStepLR). */
NNDEF nn_sched *nn_multistep_lr(nn_optim *o, nn_multistep_lr_opts opts);
/* lr = base gamma^t (torch ExponentialLR). */
NNDEF nn_sched *nn_exponential_lr(nn_optim *o, nn_exponential_lr_opts opts);
/* lr = base / (1 + k t) (Keras InverseTimeDecay). */
NNDEF nn_sched *nn_inverse_time_lr(nn_optim *o, nn_inverse_time_lr_opts opts);
/* Polynomial decay to end_lr over total_iters (torch PolynomialLR). */
NNDEF nn_sched *nn_polynomial_lr(nn_optim *o, nn_polynomial_lr_opts opts);
/* Cosine from base to eta_min over T_max steps (torch CosineAnnealingLR). */
NNDEF nn_sched *nn_cosine_annealing(nn_optim *o, nn_cosine_annealing_opts opts);
/* SGDR: cosine periods T_0, T_0 T_mult, ... restarting at base
   (torch CosineAnnealingWarmRestarts stepped without an epoch argument). */
NNDEF nn_sched *nn_warm_restarts(nn_optim *o, nn_warm_restarts_opts opts);
/* Cyclical learning rates, Smith 2017 (torch CyclicLR), momentum inverse. */
NNDEF nn_sched *nn_cyclic_lr(nn_optim *o, nn_cyclic_lr_opts opts);
/* One-cycle policy (torch OneCycleLR), momentum cycled the other way. */
NNDEF nn_sched *nn_onecycle(nn_optim *o, nn_onecycle_opts opts);
/* Linear warmup from start_factor base to base, then opts.then (if any)
   starting at its own t = 0 (torch LinearLR followed by it). */
NNDEF nn_sched *nn_warmup(nn_optim *o, nn_warmup_opts opts);
/* Divide the lr by 1/factor when the metric given to nn_sched_step_metric
   stops improving (torch ReduceLROnPlateau). */
NNDEF nn_sched *nn_reduce_on_plateau(nn_optim *o, nn_reduce_on_plateau_opts opts);
/* "Don't decay the learning rate, increase the batch size" (Smith et al.
   2018), stepped once per epoch: at each milestone the loader's batch grows
   by factor (from the next epoch); past max_batch_size the lr is divided by
   factor instead (the hybrid rule). */
NNDEF nn_sched *nn_increase_batch(nn_optim *o, nn_increase_batch_opts opts);

/* Advance a schedule by one step and set the optimizer's lr (and momentum). */
NNDEF void nn_sched_step(nn_sched *s);
/* Advance with a metric (reduce-on-plateau; other schedules ignore it). */
NNDEF void nn_sched_step_metric(nn_sched *s, float value);
/* Steps taken so far (t). */
NNDEF long nn_sched_get_step(const nn_sched *s);
/* 1 when the last nn_sched_step started a new warm-restart period (the
   moment to take a snapshot for an ensemble), else 0. */
NNDEF int nn_sched_restarted(const nn_sched *s);
/* nn_increase_batch: the current batch size (0 for other schedules). */
NNDEF int nn_sched_batch_size(const nn_sched *s);
/* nn_increase_batch: the SGD noise scale g = lr N / (B (1 - momentum)). */
NNDEF float nn_sched_noise_scale(const nn_sched *s);
/* Free a schedule (and a warmup's inner one).  NULL is ignored. */
NNDEF void nn_sched_free(nn_sched *s);

/* ----- saving and restoring state ----- */
/* Write the optimizer's state (step counts, moments, lr, momentum, groups)
   and, when s is not NULL, the schedule's, into buf.  Returns the bytes
   needed; writes only when buf is not NULL and cap is enough. */
NNDEF size_t nn_optim_state_write(const nn_optim *o, const nn_sched *s, void *buf, size_t cap);
/* Restore what nn_optim_state_write wrote into an optimizer (and schedule)
   made the same way over the same model.  NN_ERR_FORMAT names the mismatch. */
NNDEF nn_status nn_optim_state_read(nn_optim *o, nn_sched *s, const void *buf, size_t size);
/* The same through a file (magic "nnoptim", version 1, little-endian). */
NNDEF nn_status nn_optim_save(const nn_optim *o, const nn_sched *s, const char *path);
NNDEF nn_status nn_optim_load(nn_optim *o, nn_sched *s, const char *path);

/* ----- the LR range test ----- */
/* Runs a forward and backward pass on the next batch and returns the loss
   (the finder zeroes the gradients before and steps after). */
typedef float (*nn_lr_find_fn)(void *user);
typedef struct nn_lr_find_opts {
    float start_lr;      /* 0 means 1e-7 */
    float end_lr;        /* 0 means 10 */
    int num_steps;       /* 0 means 100 */
    float smoothing;     /* beta of the loss average, 0 means 0.98 */
    float diverge;       /* stop when smoothed > diverge * best; 0 means 4 */
} nn_lr_find_opts;
typedef struct nn_lr_find_result {
    int n;               /* steps recorded */
    float *lr, *loss, *smoothed;  /* n each */
    int best;            /* index of the smallest smoothed loss */
    float suggestion;    /* lr of the steepest fall of the smoothed loss */
    float lr_min_div10;  /* lr at the minimum / 10 (fastai's other hint) */
} nn_lr_find_result;
/* Sweep the lr exponentially from start_lr to end_lr, one step each,
   recording the bias-corrected smoothed loss; stop at divergence.  The
   parameters and optimizer state are restored afterwards.  Free the result
   with nn_lr_find_free. */
NNDEF nn_status nn_lr_find(nn_optim *o, nn_lr_find_fn fn, void *user,
                           nn_lr_find_opts opts, nn_lr_find_result *out);
NNDEF void nn_lr_find_free(nn_lr_find_result *r);
/* Write "lr,loss,smoothed" rows. */
NNDEF nn_status nn_lr_find_write_csv(const nn_lr_find_result *r, const char *path);
/* Plot the smoothed loss against log lr, marking the suggestion. */
NNDEF nn_status nn_lr_find_write_svg(const nn_lr_find_result *r, const char *path);

/* A line plot in an SVG file: one polyline per series, axes, ticks, legend. */
typedef struct nn_plot_series {
    const char *name;
    const float *x, *y;
    int n;
} nn_plot_series;
typedef struct nn_plot_opts {
    const char *title, *xlabel, *ylabel;
    int logx, logy;      /* logarithmic axes */
    int width, height;   /* 0 means 720 x 440 */
    float mark_x;        /* a dashed vertical line there when > 0 */
} nn_plot_opts;
NNDEF nn_status nn_plot_svg(const char *path, const nn_plot_series *series, int nseries,
                            nn_plot_opts opts);

/* ----- snapshot ensembles ----- */
/* Copies of a module's parameters and buffers (Huang et al. 2017: take one
   at the end of each warm-restart period) and their averaged predictions. */
typedef struct nn_snapshots nn_snapshots;
/* Keep at most max_count snapshots of m (0 means 8); the oldest goes first. */
NNDEF nn_snapshots *nn_snapshots_new(nn_module *m, int max_count);
/* Copy the module's current parameters and buffers in. */
NNDEF nn_status nn_snapshot_take(nn_snapshots *s);
NNDEF int nn_snapshot_count(const nn_snapshots *s);
/* The mean over snapshots of softmax(forward(x)) along the last axis, [N,C]
   in x's graph (no gradient).  The module's own weights are put back after. */
NNDEF nn_tensor *nn_snapshot_predict(nn_snapshots *s, nn_tensor *x);
NNDEF void nn_snapshots_free(nn_snapshots *s);

