/* Fashion-MNIST with a pre-activation residual network (He et al. 2016b)
   and ShakeDrop (Yamada et al. 2018).

   The net (defaults: width 32, 2 blocks per stage; --width, --blocks):
       conv 3x3 (1 -> w)                                    [w, 28, 28]
       stage 1: blocks of width w,    stride 1              [w, 28, 28]
       stage 2: blocks of width 2w,   the first stride 2    [2w,14, 14]
       stage 3: blocks of width 4w,   the first stride 2    [4w, 7,  7]
       BN - ReLU - global average pool - linear(4w -> 10)
   each block  y = s + G(BN0(conv3x3(ReLU(BN(conv3x3(ReLU(BN(x))))))))  with s
   the identity, or a 1x1 projection of ReLU(BN(x)) where the width or the
   stride changes, and G ShakeDrop's gate (p_l decaying linearly to p_L at
   the last block), and BN0 a batch norm whose scale starts at zero.  p_L
   is 0.95 by default (--pL): the paper's 0.5 is for 300-epoch runs and
   slows the convergence of a run of an hour (0.9 reached 93.95% in 19
   epochs, 0.95 reached 94.46% in 25; docs/regularization.md).  Width 32 and 2 blocks per
   stage give 0.70 M parameters and about 0.18 GFLOP per image forward.

   The run is budgeted (--minutes, default 60): 20 timed training steps and
   one test evaluation on a scratch copy of the net set the number of
   epochs that fit in 95% of the budget (printed; --epochs N instead runs
   exactly N, and the same N reproduces a budgeted run bit for bit).  The
   test set is evaluated every 5 epochs (--test-every K) and after the
   last: an evaluation costs about 6% of an epoch, so testing each epoch
   would take one epoch from the hour.  On the quiet 2-core AMD EPYC (Zen
   5, AVX-512) a batch of 128 takes 0.27-0.29 s at 2 threads, so 26
   epochs fit the hour: they reached 94.73% test accuracy in 59.6 minutes
   (docs/regularization.md has the runs).

   Training: random crop (zero padding 2), horizontal flip, random erasing
   (probability 0.25, --erase);
   label smoothing 0.1; SGD with Nesterov momentum 0.9, weight decay 5e-4
   on the convolution and linear weights only (not on BN or biases); batch
   128; a one-cycle schedule stepped per batch (peak lr 0.2 after 15% of
   the steps, cosine annealing to 0.2/25/1e4).  The test accuracy is of
   the final weights (no EMA, no test-time augmentation, no model
   selection on the test set).

   --compare trains the same net for --budget steps (default 600) under
   each regularizer alone, with no augmentation and no label smoothing,
   from the same seed and schedule, and prints one table (test accuracy, FGSM robust accuracy at
   eps 0.1 for the plain and the adversarial rows, seconds) and an SVG plot
   of the test-accuracy curves (--svg, default fashion_resnet_compare.svg):
   none, dropout (0.3 between the convolutions), stochastic depth (p_L as --pL),
   Shake-Shake (two-branch blocks), ShakeDrop (p_L as --pL), mixup (alpha 0.2),
   adversarial training (half of each batch replaced by FGSM with a random
   start, eps 0.1: Wong et al. 2020's "fast" adversarial training), and
   the augmentation of the full run.

   Build and run (from the repository root):
       cc -std=c99 -O3 -march=native -fopenmp -I. examples/fashion_resnet.c -o fashion_resnet -lm
       ./fashion_resnet                      # the full run (60 minutes)
       ./fashion_resnet --quick              # a smoke test of a few seconds
       ./fashion_resnet --compare --budget 600
   Options: --minutes M, --epochs N, --threads T (default 2), --seed S,
   --width W, --blocks B, --pL P, --lr LR, --erase P, --quick, --compare, --budget STEPS,
   --svg PATH, --save MODEL.safetensors, --batches N (at most N batches per
   epoch: for timing), --points K (test evaluations per --compare row, 8),
   --rows 0123 (the --compare rows to run, by their index in the table),
   --test-every K (the full run's test evaluations: every K epochs, 5).
   Data comes from $NN_DATA, else /usr/share/datasets/fashion-mnist; without
   it the program says how to get it and stops; NN_DATA=synthetic runs on a
   generated stand-in (and says so). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What varies between the rows of --compare. */
enum { REG_NONE, REG_DROPOUT, REG_DEPTH, REG_SHAKESHAKE, REG_SHAKEDROP, REG_MIXUP, REG_ADV,
       REG_AUGMENT, REG_COUNT };
static const char *const reg_names[REG_COUNT] = {
    "none", "dropout 0.3", "stochastic depth", "Shake-Shake", "ShakeDrop", "mixup 0.2",
    "adversarial (FGSM)", "crop+flip+erasing"
};

typedef struct config {
    int width, blocks, epochs, threads, quick, compare, budget, batches, points;
    int test_every;      /* the full run tests every test_every epochs, and after the last */
    unsigned rows;       /* --compare: bit r set runs row r */
    float p_last, lr, erase, minutes;
    unsigned long long seed;
    const char *svg, *save;
} config;

/* Append m to the Sequential seq under the next index (its forward runs the
   children in order). */
static void seq_append(nn_module *seq, int *count, nn_module *m) {
    char name[16];
    snprintf(name, sizeof name, "%d", (*count)++);
    nn_module_add_child(seq, name, m);
}

static nn_module *conv3(int in, int out, int stride) {
    nn_conv_opts c = {0};
    c.kernel = 3;
    c.stride = stride;
    c.padding = 1;
    c.no_bias = 1;
    return nn_conv2d(in, out, c);
}

/* The batch norm that ends a branch, its scale zeroed.  ShakeDrop's
   alpha in [-1, 1] can flip and scale a branch's output; Yamada et al.
   found residual nets train under it only when each branch ends in batch
   norm (PyramidNet's block, "EraseReLU"), which keeps the perturbed term in
   range.  A zero scale makes every block start as the identity (Goyal et
   al. 2017), which speeds a short schedule. */
static nn_module *branch_end_bn(int channels) {
    nn_module *bn = nn_batchnorm2d(channels);
    nn_init_zeros(nn_parameters(bn, NULL)[0].tensor);
    return bn;
}

/* One branch: conv3x3(stride) - BN - ReLU - [dropout] - conv3x3 - BN. */
static nn_module *branch(int in, int out, int stride, float dropout) {
    if (dropout > 0.0f)
        return nn_sequential(conv3(in, out, stride), nn_batchnorm2d(out), nn_relu(),
                             nn_dropout(dropout), conv3(out, out, 1), branch_end_bn(out), NULL);
    return nn_sequential(conv3(in, out, stride), nn_batchnorm2d(out), nn_relu(),
                         conv3(out, out, 1), branch_end_bn(out), NULL);
}

/* The network with regularizer reg in every block (block l of L). */
static nn_module *make_net(const config *c, int reg) {
    nn_module *net = nn_sequential(conv3(1, c->width, 1), NULL);
    int stage, b, l = 0, L = 3 * c->blocks, in = c->width, count = 1;
    for (stage = 0; stage < 3; stage++) {
        int out = c->width << stage;
        for (b = 0; b < c->blocks; b++) {
            int stride = (stage > 0 && b == 0) ? 2 : 1;
            nn_residual_opts ro = {0};
            nn_module *shortcut = NULL;
            nn_conv_opts pc = {0};
            l++;
            if (stride != 1 || in != out) {
                pc.kernel = 1;
                pc.stride = stride;
                pc.no_bias = 1;
                shortcut = nn_conv2d(in, out, pc);
            }
            ro.layer = l;
            ro.layers = L;
            ro.p_last = c->p_last;
            if (reg == REG_DEPTH) ro.mode = NN_RESIDUAL_STOCHASTIC_DEPTH;
            if (reg == REG_SHAKESHAKE) ro.mode = NN_RESIDUAL_SHAKE_SHAKE;
            if (reg == REG_SHAKEDROP) ro.mode = NN_RESIDUAL_SHAKEDROP;
            seq_append(net, &count, nn_residual(nn_sequential(nn_batchnorm2d(in), nn_relu(), NULL),
                                           branch(in, out, stride, reg == REG_DROPOUT ? 0.3f : 0.0f),
                                           reg == REG_SHAKESHAKE ? branch(in, out, stride, 0.0f) : NULL,
                                           shortcut, ro));
            in = out;
        }
    }
    seq_append(net, &count, nn_batchnorm2d(in));
    seq_append(net, &count, nn_relu());
    seq_append(net, &count, nn_global_avgpool());
    seq_append(net, &count, nn_flatten());
    seq_append(net, &count, nn_linear(in, 10));
    return net;
}

static double cpu_seconds(void) { return (double)clock() / (double)CLOCKS_PER_SEC; }

/* SGD with Nesterov momentum, weight decay on the weights of 2+ dims only. */
static nn_optim *make_optim(nn_module *net, float lr) {
    nn_sgd_opts so = {0};
    nn_group_opts nodecay = {0};
    so.lr = lr;
    so.momentum = 0.9f;
    so.nesterov = 1;
    so.weight_decay = 5e-4f;
    {
        nn_optim *o = nn_sgd(net, so);
        nodecay.weight_decay = -1.0f;
        nodecay.max_ndim = 1;
        nn_optim_group(o, "*", nodecay);
        return o;
    }
}

static nn_sched *make_sched(nn_optim *o, float lr, int steps) {
    nn_onecycle_opts oc = {0};
    oc.max_lr = lr;
    oc.total_steps = steps;
    oc.pct_start = 0.15f;
    return nn_onecycle(o, oc);
}

static nn_augment *make_augment(const config *c) {
    nn_augment *aug = nn_augment_new(NULL);
    nn_erase_opts eo = {0};
    eo.p = c->erase;
    nn_augment_crop(aug, 2, 0);
    nn_augment_hflip(aug, 0.5f);
    nn_augment_erase(aug, eo);
    return aug;
}

static float test_accuracy(nn_module *net, const nn_dataset *test, nn_graph *g) {
    nn_loader_opts eval = {0};
    eval.image_shape = 1;
    eval.batch_size = 500;
    return nn_accuracy(net, test, g, eval);
}

/* Test accuracy with horizontal-flip test-time augmentation: the logits of
   each image and of its mirror image are summed before the argmax.  Printed
   beside the plain accuracy of the same weights, never instead of it. */
static float flip_tta_accuracy(nn_module *net, const nn_dataset *test, nn_graph *g) {
    nn_loader_opts lo = {0};
    nn_loader *ld;
    nn_tensor *x, *xf, *a, *b;
    const int *y;
    static float first[500 * 10];
    int n, i, j, r, c, correct = 0, total = 0, pred[500], was;
    lo.image_shape = 1;
    lo.batch_size = 500;
    ld = nn_loader_new(test, lo);
    nn_train_mode(net, 0);
    was = nn_set_grad_enabled(g, 0);
    while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
        nn_shape s;
        int h = x->shape[2], w = x->shape[3], k = (int)x->numel / (n * h * w) * n;
        a = nn_forward(net, x);
        memcpy(first, a->data, sizeof(float) * a->numel);
        s.ndim = 4;
        for (i = 0; i < 4; i++) s.d[i] = x->shape[i];
        xf = nn_zeros(g, s);
        for (i = 0; i < k; i++)
            for (r = 0; r < h; r++)
                for (c = 0; c < w; c++)
                    xf->data[((size_t)i * h + r) * w + c] = x->data[((size_t)i * h + r) * w + (w - 1 - c)];
        b = nn_forward(net, xf);
        for (j = 0; j < (int)b->numel; j++) b->data[j] += first[j];
        nn_argmax_rows(b, pred);
        for (i = 0; i < n; i++) correct += pred[i] == y[i];
        total += n;
    }
    nn_graph_reset(g);
    nn_set_grad_enabled(g, was);
    nn_train_mode(net, 1);
    nn_loader_free(ld);
    return total ? (float)correct / (float)total : -1.0f;
}

static float fgsm_accuracy(nn_module *net, const nn_dataset *test) {
    nn_loader_opts lo = {0};
    nn_attack_opts atk = {0};
    nn_loader *ld;
    float r;
    lo.image_shape = 1;
    lo.batch_size = 500;
    ld = nn_loader_new(test, lo);
    atk.eps = 0.1f;
    atk.steps = 1;
    atk.step_size = 0.1f;
    nn_train_mode(net, 0);
    r = nn_robust_accuracy(net, ld, atk);
    nn_train_mode(net, 1);
    nn_loader_free(ld);
    return r;
}

/* One training step on the batch (x, y); returns the loss. */
static float train_step(nn_module *net, nn_optim *opt, nn_sched *sched, nn_tensor *x,
                        const int *y, int reg, float smoothing, int *correct) {
    nn_ce_opts ce = {0};
    nn_tensor *logits, *loss, *soft = NULL;
    int i, n = x->shape[0], pred[256];
    ce.label_smoothing = smoothing;
    nn_zero_grad(opt);
    if (reg == REG_MIXUP) {
        x = nn_mixup(x, y, 10, 0.2f, NULL, &soft, NULL);
    } else if (reg == REG_ADV) {
        nn_attack_opts atk = {0};
        atk.eps = 0.1f;
        atk.steps = 1;
        atk.step_size = 0.125f;   /* 1.25 eps from a random start (Wong et al. 2020) */
        atk.random_start = 1;
        x = nn_adversarial_batch(net, x, y, 0.5f, atk);
    }
    logits = nn_forward(net, x);
    loss = soft ? nn_cross_entropy_soft(logits, soft, ce) : nn_cross_entropy(logits, y, ce);
    nn_backward(loss);
    nn_step(opt);
    nn_sched_step(sched);
    nn_argmax_rows(logits, pred);
    for (i = 0; i < n; i++) *correct += pred[i] == y[i];
    return nn_item(loss);
}

static int parse(config *c, int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) c->quick = 1;
        else if (!strcmp(a, "--compare")) c->compare = 1;
        else if (v && !strcmp(a, "--epochs")) c->epochs = atoi(v), c->minutes = 0.0f, i++;
        else if (v && !strcmp(a, "--threads")) c->threads = atoi(v), i++;
        else if (v && !strcmp(a, "--seed")) c->seed = strtoull(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--width")) c->width = atoi(v), i++;
        else if (v && !strcmp(a, "--blocks")) c->blocks = atoi(v), i++;
        else if (v && !strcmp(a, "--pL")) c->p_last = (float)atof(v), i++;
        else if (v && !strcmp(a, "--lr")) c->lr = (float)atof(v), i++;
        else if (v && !strcmp(a, "--erase")) c->erase = (float)atof(v), i++;
        else if (v && !strcmp(a, "--minutes")) c->minutes = (float)atof(v), i++;
        else if (v && !strcmp(a, "--budget")) c->budget = atoi(v), i++;
        else if (v && !strcmp(a, "--batches")) c->batches = atoi(v), i++;
        else if (v && !strcmp(a, "--test-every")) c->test_every = atoi(v), i++;
        else if (v && !strcmp(a, "--points")) c->points = atoi(v), i++;
        else if (v && !strcmp(a, "--rows")) {
            const char *p;
            c->rows = 0;
            for (p = v; *p; p++)
                if (*p >= '0' && *p < '0' + REG_COUNT) c->rows |= 1u << (*p - '0');
            i++;
        }
        else if (v && !strcmp(a, "--svg")) c->svg = v, i++;
        else if (v && !strcmp(a, "--save")) c->save = v, i++;
        else {
            fprintf(stderr, "unknown option %s\nusage: %s [--epochs N] [--threads T] [--seed S] "
                    "[--width W] [--blocks B] [--pL P] [--lr LR] [--erase P] [--minutes M] [--quick] [--compare] "
                    "[--budget STEPS] [--points K] [--rows 01234567] [--svg PATH] [--save FILE] "
                    "[--batches N] [--test-every K]\n", a, argv[0]);
            return 0;
        }
    }
    if (c->width < 1 || c->blocks < 1 || c->epochs < 1 || c->threads < 1 || c->budget < 1 || c->test_every < 1 ||
        c->points < 1 || c->points > 32 || !(c->p_last > 0.0f && c->p_last <= 1.0f) || !(c->lr > 0.0f) ||
        !(c->erase > 0.0f && c->erase <= 1.0f) || !(c->minutes >= 0.0f)) {
        fprintf(stderr, "bad option value\n");
        return 0;
    }
    return 1;
}

/* Frees what a training run made (each may be NULL). */
static void free_run(nn_graph *g, nn_loader *ld, nn_augment *aug, nn_sched *sched, nn_optim *opt,
                     nn_module *net) {
    nn_graph_free(g);
    nn_loader_free(ld);
    nn_augment_free(aug);
    nn_sched_free(sched);
    nn_optim_free(opt);
    nn_module_free(net);
}

/* The number of test evaluations of a run of epochs epochs: every
   --test-every epochs, and after the last. */
static int test_count(const config *c, int epochs) {
    return epochs / c->test_every + (epochs % c->test_every != 0);
}

/* --minutes: the number of epochs that fits the budget, from the time of 20
   training steps (after 5 to warm up) and of one test evaluation on a
   scratch copy of the net.  The generator is seeded again afterwards, so
   the run is the one --epochs N gives. */
static int plan_epochs(const config *c, const nn_dataset *train, const nn_dataset *test) {
    nn_module *net = make_net(c, REG_SHAKEDROP);
    nn_optim *opt = make_optim(net, c->lr);
    nn_sched *sched = make_sched(opt, c->lr, 1000);
    nn_augment *aug = make_augment(c);
    nn_loader_opts lo = {0};
    nn_loader *ld;
    nn_graph *g = nn_graph_new();
    nn_tensor *x;
    const int *y;
    int steps = 0, correct = 0, batches, epochs;
    double t0 = nn_time(), t_start = t0, per_batch, eval, epoch_s, left;
    lo.batch_size = 128;
    lo.shuffle = 1;
    lo.image_shape = 1;
    ld = nn_loader_new(train, lo);
    nn_loader_set_augment(ld, aug);
    batches = c->batches > 0 && c->batches < nn_loader_batches(ld) ? c->batches : nn_loader_batches(ld);
    while (steps < 25 && (nn_graph_reset(g), nn_loader_next(ld, g, &x, &y)) > 0) {
        if (steps == 5) t0 = nn_time();
        train_step(net, opt, sched, x, y, REG_SHAKEDROP, 0.1f, &correct);
        steps++;
    }
    per_batch = (nn_time() - t0) / (steps > 5 ? steps - 5 : 1);
    t0 = nn_time();
    test_accuracy(net, test, g);
    eval = nn_time() - t0;
    epoch_s = per_batch * batches;
    /* 5% kept back: the 20 steps timed here were 7% slower than the run's
       average step in one run (0.351 s against 0.328 s) and 2.5% faster in
       another (0.275 s against 0.282 s), and a shared machine drifts */
    left = 0.95 * ((double)c->minutes * 60.0 - (nn_time() - t_start));
    /* (at most 1000: a tiny stand-in data set can time near zero) */
    for (epochs = 1; epochs < 1000 && (epochs + 1) * epoch_s + test_count(c, epochs + 1) * eval <= left;)
        epochs++;
    printf("budget %.1f min: %.3f s a batch, %.1f s a test evaluation, so about %.0f s an epoch: "
           "%d epochs (planned in %.1f s)\n", (double)c->minutes, per_batch, eval, epoch_s + eval, epochs,
           nn_time() - t_start);
    free_run(g, ld, aug, sched, opt, net);
    nn_seed(c->seed);
    return epochs;
}

/* The full run: ShakeDrop, augmentation, --epochs epochs. */
static int run_full(config *c, const nn_dataset *train, const nn_dataset *test) {
    double t_all = nn_time(), c_all = cpu_seconds();
    nn_module *net;
    nn_loader_opts lo = {0};
    nn_loader *ld;
    nn_augment *aug;
    nn_optim *opt;
    nn_sched *sched;
    nn_graph *g;
    int epoch;
    float acc = 0.0f;
    if (c->minutes > 0.0f) c->epochs = plan_epochs(c, train, test);
    net = make_net(c, REG_SHAKEDROP);
    aug = make_augment(c);
    opt = make_optim(net, c->lr);
    g = nn_graph_new();
    printf("pre-activation ResNet, width %d, %d blocks per stage, ShakeDrop p_L %.2f: %zu "
           "parameters\n", c->width, c->blocks, (double)c->p_last, nn_parameter_count(net));
    lo.batch_size = 128;
    lo.shuffle = 1;
    lo.image_shape = 1;
    ld = nn_loader_new(train, lo);
    nn_loader_set_augment(ld, aug);
    if (c->batches <= 0 || c->batches > nn_loader_batches(ld)) c->batches = nn_loader_batches(ld);
    sched = make_sched(opt, c->lr, c->epochs * c->batches);
    printf("epoch   loss    train    test     lr      seconds  cpu-seconds\n");
    for (epoch = 1; epoch <= c->epochs; epoch++) {
        double t0 = nn_time(), c0 = cpu_seconds(), loss_sum = 0.0;
        int n, batches = 0, correct = 0, seen = 0;
        nn_tensor *x;
        const int *y;
        float lr = nn_get_lr(opt);
        while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
            loss_sum += (double)train_step(net, opt, sched, x, y, REG_SHAKEDROP, 0.1f, &correct);
            batches++;
            seen += n;
            if (batches == c->batches && c->batches < nn_loader_batches(ld)) break; /* a partial epoch (--batches) */
        }
        {
            double secs = nn_time() - t0, cpu = cpu_seconds() - c0;
            char tested[16] = "      -";
            if (epoch % c->test_every == 0 || epoch == c->epochs) {
                acc = test_accuracy(net, test, g);
                snprintf(tested, sizeof tested, "%6.2f%%", 100.0 * (double)acc);
            }
            printf("%5d  %6.4f  %6.2f%%  %s  %.4f  %7.1f  %7.1f\n", epoch, loss_sum / batches,
                   100.0 * correct / seen, tested, (double)lr, secs, cpu);
            fflush(stdout);
        }
    }
    printf("final test accuracy %.2f%% after %d epochs, %.1f s (%.1f s CPU)\n", 100.0 * (double)acc,
           c->epochs, nn_time() - t_all, cpu_seconds() - c_all);
    printf("the same weights with flip test-time augmentation: %.2f%%\n",
           100.0 * (double)flip_tta_accuracy(net, test, g));
    if (c->save) {
        if (nn_save(net, c->save) != NN_OK) fprintf(stderr, "%s\n", nn_error_string());
        else printf("model written to %s\n", c->save);
    }
    free_run(g, ld, aug, sched, opt, net);
    return 0;
}

#define MAX_POINTS 32
/* --compare: every regularizer alone for c->budget steps. */
static int run_compare(const config *c, const nn_dataset *train, const nn_dataset *test) {
    static float xs[REG_COUNT][MAX_POINTS], ys[REG_COUNT][MAX_POINTS];
    int npts[REG_COUNT], reg, every = c->budget / c->points > 0 ? c->budget / c->points : 1, ns = 0;
    float final_acc[REG_COUNT], robust[REG_COUNT];
    double secs[REG_COUNT];
    nn_plot_series series[REG_COUNT];
    nn_plot_opts po = {0};
    nn_graph *g = nn_graph_new();
    const char *svg = c->svg ? c->svg : "fashion_resnet_compare.svg";
    for (reg = 0; reg < REG_COUNT; reg++) {
        nn_module *net;
        nn_optim *opt;
        nn_sched *sched;
        nn_loader_opts lo = {0};
        nn_loader *ld;
        nn_augment *aug = NULL;
        double t0 = nn_time(), loss_sum = 0.0;
        int step = 0, correct = 0, seen = 0;
        npts[reg] = 0;
        if (!(c->rows >> reg & 1u)) continue;
        nn_seed(c->seed);
        net = make_net(c, reg);
        opt = make_optim(net, c->lr);
        sched = make_sched(opt, c->lr, c->budget);
        lo.batch_size = 128;
        lo.shuffle = 1;
        lo.image_shape = 1;
        ld = nn_loader_new(train, lo);
        if (reg == REG_AUGMENT) {
            aug = make_augment(c);
            nn_loader_set_augment(ld, aug);
        }
        npts[reg] = 0;
        while (step < c->budget) {
            nn_tensor *x;
            const int *y;
            int n;
            nn_graph_reset(g);
            if ((n = nn_loader_next(ld, g, &x, &y)) <= 0) continue;   /* the next epoch */
            loss_sum += (double)train_step(net, opt, sched, x, y, reg, 0.0f, &correct);
            seen += n;
            step++;
            if (step % every == 0 || step == c->budget) {
                float acc = test_accuracy(net, test, g);
                if (npts[reg] < MAX_POINTS) {
                    xs[reg][npts[reg]] = (float)step;
                    ys[reg][npts[reg]] = 100.0f * acc;
                    npts[reg]++;
                }
                final_acc[reg] = acc;
            }
        }
        secs[reg] = nn_time() - t0;
        robust[reg] = reg == REG_NONE || reg == REG_ADV ? fgsm_accuracy(net, test) : -1.0f;
        printf("%-20s %zu parameters: train loss %.4f, train accuracy %.2f%%, test %.2f%%, %.1f s\n",
               reg_names[reg], nn_parameter_count(net), loss_sum / step, 100.0 * correct / seen,
               100.0 * (double)final_acc[reg], secs[reg]);
        fflush(stdout);
        series[ns].name = reg_names[reg];
        series[ns].x = xs[reg];
        series[ns].y = ys[reg];
        series[ns].n = npts[reg];
        ns++;
        free_run(NULL, ld, aug, sched, opt, net);
    }
    printf("\n%d steps of batch 128 each, width %d, %d blocks per stage, seed %llu\n", c->budget,
           c->width, c->blocks, c->seed);
    printf("| regularizer | test accuracy | FGSM accuracy (eps 0.1) | seconds |\n|---|---|---|---|\n");
    for (reg = 0; reg < REG_COUNT; reg++) {
        char rb[32];
        if (!(c->rows >> reg & 1u)) continue;
        if (robust[reg] >= 0.0f) snprintf(rb, sizeof rb, "%.2f%%", 100.0 * (double)robust[reg]);
        else snprintf(rb, sizeof rb, "-");
        printf("| %s | %.2f%% | %s | %.1f |\n", reg_names[reg], 100.0 * (double)final_acc[reg], rb,
               secs[reg]);
    }
    po.title = "Fashion-MNIST, pre-activation ResNet: one regularizer each";
    po.xlabel = "step (batch 128)";
    po.ylabel = "test accuracy (%)";
    po.markers = 1;
    if (nn_plot_svg(svg, series, ns, po) == NN_OK) printf("curves written to %s\n", svg);
    else fprintf(stderr, "%s\n", nn_error_string());
    nn_graph_free(g);
    return 0;
}

int main(int argc, char **argv) {
    config c;
    nn_dataset train, test;
    int data, rc;
    memset(&c, 0, sizeof c);
    c.width = 32;
    c.blocks = 2;
    c.epochs = 20;
    c.threads = 2;
    c.budget = 600;
    c.points = 8;
    c.rows = (1u << REG_COUNT) - 1u;
    c.p_last = 0.95f;
    c.test_every = 5;
    c.erase = 0.25f;
    c.minutes = 60.0f;
    c.lr = 0.2f;
    c.seed = 42;
    if (!parse(&c, argc, argv)) return 2;
    if (c.quick) {
        c.width = 8;
        c.blocks = 1;
        c.epochs = 2;
        c.minutes = 0.0f;
        c.batches = 20;
        if (c.budget == 600) c.budget = 40;
    }
    if ((data = nn_fashion_mnist(NULL, &train, &test)) < 0) {
        fprintf(stderr, "%s\n", nn_error_string());
        return 1;
    }
    if (data == 0)
        printf("*** NN_DATA=synthetic: GENERATED STAND-IN DATA, not Fashion-MNIST; the "
               "accuracies below say nothing about Fashion-MNIST ***\n");
    nn_set_threads(c.threads);
    nn_seed(c.seed);
    printf("train %d, test %d samples; %d threads; seed %llu%s\n", train.n, test.n,
           nn_get_threads(), c.seed, c.quick ? "; QUICK smoke test (tiny net, 20 batches per epoch)" : "");
    rc = c.compare ? run_compare(&c, &train, &test) : run_full(&c, &train, &test);
    nn_dataset_free(&train);
    nn_dataset_free(&test);
    return rc;
}
