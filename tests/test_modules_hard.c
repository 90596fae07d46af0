/* Modules and optimizers, the hard cases: parameter arrays that stay valid,
   frozen parameters and gradients since zero_grad, optimizers over nothing
   trainable, shared modules and tied weights (one update, one free),
   nn_sequential's failed children, lr_find restoring buffers, each module's
   own training flag, an exact num_batches_tracked, long names, and the
   lookups nn_child / nn_param and typed module options.  Run under ASan:
   several of these were use-after-free or double-free bugs. */
#include <stdlib.h>
/* Allocation counting, so out-of-memory paths can be swept (test_oom). */
static long alloc_calls = 0, fail_at = -1;
static void *count_malloc(size_t n) { return ++alloc_calls == fail_at ? NULL : malloc(n); }
static void *count_realloc(void *p, size_t n) { return ++alloc_calls == fail_at ? NULL : realloc(p, n); }
#ifndef NN_TEST_LINKED /* tests/run.sh links the shared implementation */
#include "impl.c"               /* with its test seams (tests/seams.h) */
#endif
#include "seams.h"
#include "nn.h"
#include "harness.h"
#include <string.h>

static void hook_on(void) {
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
    nn_set_error_hook(nn_test_record_hook, NULL);
}
static void hook_off(void) { nn_set_error_hook(NULL, NULL); }

static int destroyed = 0;
static void count_destroy(nn_module *m) { (void)m; destroyed++; }
static nn_tensor *identity_forward(nn_module *m, nn_tensor *x) { (void)m; return x; }
/* A parameterless custom module that counts its destruction. */
static nn_module *counted(void) {
    nn_module *m = nn_module_new("Counted", identity_forward);
    if (m) m->destroy = count_destroy;
    return m;
}

/* sum(w^2) over the given (persistent) parameters, in g. */
static nn_tensor *sumsq(nn_graph *g, nn_tensor **ps, int n) {
    nn_tensor *l = NULL;
    int i;
    for (i = 0; i < n; i++) {
        nn_tensor *s = nn_sum(nn_mul(nn_mul(ps[i], nn_ones(g, nn_shape_of(ps[i]))), ps[i]));
        l = l ? nn_add(l, s) : s;
    }
    return l;
}

/* 1. nn_parameters' array survives the library's own calls. */
static void test_parameter_array_stays_valid(void) {
    nn_module *m = nn_sequential(nn_linear(4, 3), nn_batchnorm1d(3), nn_linear(3, 2), NULL);
    nn_param *ps, *bs, *again;
    nn_adam_opts ao;
    nn_optim *o;
    nn_snapshots *s;
    int n, nb, n2, i, ok = 1;
    char first[64];
    memset(&ao, 0, sizeof ao);
    ps = nn_parameters(m, &n);
    bs = nn_buffers(m, &nb);
    NN_TEST_CHECK(n == 6 && nb == 3, "6 parameters and 3 buffers, got %d and %d", n, nb);
    strcpy(first, ps[0].name);
    o = nn_adam(m, ao);                 /* used to free ps (nn_parameters inside) */
    s = nn_snapshots_new(m, 2);         /* walks parameters and buffers */
    NN_TEST_CHECK(nn_parameter_count(m) == 12 + 3 + 3 + 3 + 6 + 2, "parameter count %zu",
                  nn_parameter_count(m));
    nn_clip_grad_norm_module(m, 1.0f);
    nn_clip_grad_value_module(m, 1.0f);
    nn_snapshot_take(s);
    for (i = 0; i < n; i++) ok &= ps[i].tensor != NULL && strchr(ps[i].name, '.') != NULL;
    NN_TEST_CHECK(ok && strcmp(ps[0].name, first) == 0 && strcmp(ps[5].name, "2.bias") == 0,
                  "the array from nn_parameters is intact after optimizer, snapshots, clipping");
    NN_TEST_CHECK(strcmp(bs[2].name, "1.num_batches_tracked") == 0, "buffers intact too");
    again = nn_parameters(m, &n2);
    NN_TEST_CHECK(again == ps && n2 == n, "an unchanged tree gives the same array");
    /* adding to the tree (here to a child) rebuilds the list */
    nn_module_add_param(m->children[0], "extra", nn_zeros(NULL, NN_SHAPE(2)));
    again = nn_parameters(m, &n2);
    NN_TEST_CHECK(n2 == 7 && strcmp(again[2].name, "0.extra") == 0,
                  "a parameter added to a child shows up (%d, %s)", n2, n2 > 2 ? again[2].name : "");
    nn_snapshots_free(s);
    nn_optim_free(o);
    nn_module_free(m);
}

/* 2. requires_grad off: neither accumulated into nor updated. */
static void test_requires_grad_off(void) {
    nn_module *m = nn_linear(3, 2);
    nn_tensor *w = nn_param(m, "weight"), *b = nn_param(m, "bias");
    nn_graph *g = nn_graph_new();
    float xv[3] = {1.0f, -2.0f, 0.5f}, wv[6], bv[2];
    nn_adam_opts ao;
    nn_optim *o;
    int k;
    memset(&ao, 0, sizeof ao);
    ao.lr = 0.1f;
    o = nn_adam(m, ao);
    /* one ordinary step: w's Adam moments become non-zero */
    nn_zero_grad(o);
    nn_backward(nn_sum(nn_forward(m, nn_tensor_from(g, xv, NN_SHAPE(1, 3)))));
    nn_step(o);
    nn_graph_reset(g);
    nn_requires_grad(w, 0);
    memcpy(wv, w->data, sizeof wv);
    memcpy(bv, b->data, sizeof bv);
    for (k = 0; k < 3; k++) {
        nn_zero_grad(o);
        nn_backward(nn_sum(nn_forward(m, nn_tensor_from(g, xv, NN_SHAPE(1, 3)))));
        NN_TEST_CHECK(nn_grad(w) == NULL, "a frozen weight gets no gradient (step %d)", k);
        nn_step(o);
        nn_graph_reset(g);
    }
    NN_TEST_CHECK(memcmp(wv, w->data, sizeof wv) == 0, "Adam leaves a frozen weight alone");
    NN_TEST_CHECK(memcmp(bv, b->data, sizeof bv) != 0, "and trains the bias");
    /* the frozen weight's old gradient does not count in clipping either */
    w->grad[0] = 1000.0f;
    NN_TEST_CHECK(nn_clip_grad_norm(o, 1e9f) < 100.0f, "clipping ignores a frozen parameter");
    NN_TEST_CHECK(nn_clip_grad_norm_module(m, 1e9f) < 100.0f, "module clipping too");
    nn_optim_free(o);
    nn_graph_free(g);
    nn_module_free(m);
}

/* 2. A parameter without a gradient since zero_grad: no update and its
   optimizer state untouched, for every optimizer.  Reference: an optimizer
   over p2 alone that sees only the steps where p2 had a gradient. */
typedef nn_optim *(*make_fn)(nn_module *m);
static nn_optim *mk_sgd(nn_module *m) { nn_sgd_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.momentum = 0.9f; o.weight_decay = 0.1f; return nn_sgd(m, o); }
static nn_optim *mk_sgd_plain(nn_module *m) { nn_sgd_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.weight_decay = 0.1f; return nn_sgd(m, o); }
static nn_optim *mk_adagrad(nn_module *m) { nn_adagrad_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.weight_decay = 0.1f; o.lr_decay = 0.1f; return nn_adagrad(m, o); }
static nn_optim *mk_rmsprop(nn_module *m) { nn_rmsprop_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; o.momentum = 0.5f; o.centered = 1; o.weight_decay = 0.1f; return nn_rmsprop(m, o); }
static nn_optim *mk_adadelta(nn_module *m) { nn_adadelta_opts o; memset(&o, 0, sizeof o); o.weight_decay = 0.1f; return nn_adadelta(m, o); }
static nn_optim *mk_adam(nn_module *m) { nn_adam_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.amsgrad = 1; o.weight_decay = 0.1f; return nn_adam(m, o); }
static nn_optim *mk_adamw(nn_module *m) { nn_adamw_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; return nn_adamw(m, o); }
static nn_optim *mk_adamax(nn_module *m) { nn_adamax_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.weight_decay = 0.1f; return nn_adamax(m, o); }
static nn_optim *mk_nadam(nn_module *m) { nn_nadam_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.weight_decay = 0.1f; return nn_nadam(m, o); }
static nn_optim *mk_radam(nn_module *m) { nn_radam_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.weight_decay = 0.1f; return nn_radam(m, o); }
static nn_optim *mk_lars(nn_module *m) { nn_lars_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.weight_decay = 0.1f; return nn_lars(m, o); }
static nn_optim *mk_lamb(nn_module *m) { nn_lamb_opts o; memset(&o, 0, sizeof o); o.lr = 0.1f; o.weight_decay = 0.1f; return nn_lamb(m, o); }
static nn_optim *mk_lookahead(nn_module *m) {
    nn_lookahead_opts la;
    la.k = 5;   /* no slow-weight sync within the test's four steps */
    la.alpha = 0.5f;
    return nn_lookahead(mk_adam(m), la);
}

static nn_module *two_params(nn_tensor **p1, nn_tensor **p2) {
    float a[3] = {0.5f, -1.0f, 2.0f}, b[3] = {1.5f, 0.25f, -0.75f};
    nn_module *m = nn_module_new("Two", identity_forward);
    *p1 = nn_module_add_param(m, "p1", nn_tensor_from(NULL, a, NN_SHAPE(3)));
    *p2 = nn_module_add_param(m, "p2", nn_tensor_from(NULL, b, NN_SHAPE(3)));
    return m;
}

static void test_no_gradient_no_update(void) {
    static const struct { const char *name; make_fn make; } kinds[] = {
        {"SGD momentum", mk_sgd}, {"SGD", mk_sgd_plain}, {"Adagrad", mk_adagrad},
        {"RMSprop", mk_rmsprop}, {"Adadelta", mk_adadelta}, {"Adam", mk_adam},
        {"AdamW", mk_adamw}, {"Adamax", mk_adamax}, {"NAdam", mk_nadam}, {"RAdam", mk_radam},
        {"LARS", mk_lars}, {"LAMB", mk_lamb}, {"Lookahead", mk_lookahead}
    };
    /* p2 has a gradient in steps 0, 2 and 3; p1 in all four */
    static const int p2_has[4] = {1, 0, 1, 1};
    nn_graph *g = nn_graph_new();
    size_t kk;
    for (kk = 0; kk < sizeof kinds / sizeof kinds[0]; kk++) {
        nn_tensor *p1, *p2, *q1, *q2, *use[2];
        nn_module *m = two_params(&p1, &p2), *ref = two_params(&q1, &q2);
        nn_optim *o = kinds[kk].make(m), *r;
        float before[3];
        int t;
        nn_requires_grad(q1, 0);   /* the reference trains p2's copy only */
        r = kinds[kk].make(ref);
        for (t = 0; t < 4; t++) {
            nn_zero_grad(o);
            use[0] = p1;
            use[1] = p2;
            nn_backward(sumsq(g, use, p2_has[t] ? 2 : 1));
            nn_graph_reset(g);
            memcpy(before, p2->data, sizeof before);
            if (!p2_has[t])
                NN_TEST_CHECK(nn_grad(p2) == NULL && nn_grad(p1) != NULL,
                              "%s: nn_grad is NULL without a gradient since zero_grad", kinds[kk].name);
            nn_step(o);
            if (!p2_has[t]) {
                NN_TEST_CHECK(memcmp(before, p2->data, sizeof before) == 0,
                              "%s: a parameter without a gradient is not updated", kinds[kk].name);
                continue;
            }
            nn_zero_grad(r);
            use[0] = q2;
            nn_backward(sumsq(g, use, 1));
            nn_graph_reset(g);
            nn_step(r);
        }
        NN_TEST_CHECK(memcmp(p2->data, q2->data, sizeof before) == 0,
                      "%s: the skipped step left p2's state (moments, step count) alone: "
                      "%.9g vs %.9g", kinds[kk].name, (double)p2->data[0], (double)q2->data[0]);
        nn_optim_free(o);
        nn_optim_free(r);
        nn_module_free(m);
        nn_module_free(ref);
    }
    nn_graph_free(g);
}

/* 3. An optimizer over nothing trainable is a misuse. */
static void test_no_trainable_parameters(void) {
    nn_module *m = nn_sequential(nn_relu(), nn_flatten(), NULL), *l = nn_linear(2, 2);
    nn_sgd_opts so;
    nn_adam_opts ao;
    nn_optim *o;
    int i, n;
    nn_param *ps = nn_parameters(l, &n);
    memset(&so, 0, sizeof so);
    memset(&ao, 0, sizeof ao);
    hook_on();
    o = nn_sgd(m, so);
    NN_TEST_CHECK(o == NULL && nn_test_msgs == 1 && strstr(nn_test_msg, "nn_sgd") &&
                      strstr(nn_test_msg, "no trainable parameters"),
                  "nn_sgd on a module without parameters is reported: \"%s\"", nn_test_msg);
    for (i = 0; i < n; i++) nn_requires_grad(ps[i].tensor, 0);
    o = nn_adam(l, ao);
    NN_TEST_CHECK(o == NULL && nn_test_msgs == 2 && strstr(nn_test_msg, "nn_adam"),
                  "nn_adam with every parameter frozen is reported: \"%s\"", nn_test_msg);
    hook_off();
    nn_module_free(m);
    nn_module_free(l);
}

/* 4. A module used twice and a weight shared by two modules. */
static nn_tensor *tied_forward(nn_module *m, nn_tensor *x) {
    /* the output layer reuses the input layer's weight: x W^T with W [4,4] */
    return nn_linear_op(x, nn_param(m, "weight"), NULL);
}

static void test_shared_modules_and_weights(void) {
    nn_module *b = nn_linear(3, 3), *seq, *enc, *dec, *root;
    nn_tensor *w, *x, *y, *y1;
    nn_graph *g = nn_graph_new();
    nn_param *ps;
    nn_sgd_opts so;
    nn_optim *o;
    float xv[3] = {1.0f, 2.0f, -1.0f}, w0[16], gw[16];
    int n, i, ok;
    /* the same child twice: one set of weights, run twice, freed once */
    seq = nn_sequential(b, b, NULL);
    ps = nn_parameters(seq, &n);
    NN_TEST_CHECK(n == 2 && strcmp(ps[0].name, "0.weight") == 0 && strcmp(ps[1].name, "0.bias") == 0,
                  "a module used twice is listed once under its first name (%d)", n);
    NN_TEST_CHECK(nn_parameter_count(seq) == 12, "its elements counted once: %zu", nn_parameter_count(seq));
    x = nn_tensor_from(g, xv, NN_SHAPE(1, 3));
    y = nn_forward(seq, x);
    y1 = nn_forward(b, nn_forward(b, x));
    NN_TEST_CHECK(y && y1 && memcmp(y->data, y1->data, 3 * sizeof(float)) == 0, "it runs twice");
    nn_module_free(seq); /* ASan: b freed once */
    nn_graph_reset(g);

    /* tied embedding/output weights */
    enc = nn_linear(4, 4);
    dec = nn_module_new("Tied", tied_forward);
    w = nn_param(enc, "weight");
    NN_TEST_CHECK(nn_module_add_param(dec, "weight", w) == w, "sharing a parameter");
    root = nn_sequential(enc, dec, NULL);
    ps = nn_parameters(root, &n);
    NN_TEST_CHECK(n == 2 && strcmp(ps[0].name, "0.weight") == 0 && strcmp(ps[1].name, "0.bias") == 0,
                  "a tied weight is listed once (%d parameters)", n);
    memset(&so, 0, sizeof so);
    so.lr = 0.5f;
    o = nn_sgd(root, so);
    memcpy(w0, w->data, sizeof w0);
    {
        float x4[4] = {1.0f, -1.0f, 0.5f, 2.0f};
        nn_zero_grad(o);
        nn_backward(nn_sum(nn_forward(root, nn_tensor_from(g, x4, NN_SHAPE(1, 4)))));
    }
    memcpy(gw, nn_grad(w), sizeof gw);
    nn_step(o);
    for (ok = 1, i = 0; i < 16; i++) ok &= w->data[i] == w0[i] - 0.5f * gw[i];
    NN_TEST_CHECK(ok, "the tied weight is updated once (w - lr g), got %g want %g",
                  (double)w->data[0], (double)(w0[0] - 0.5f * gw[0]));
    nn_optim_free(o);
    nn_module_free(root); /* ASan: w freed once */

    /* shared by two separate roots: each free drops one hold */
    enc = nn_linear(2, 2);
    dec = nn_module_new("Tied", tied_forward);
    nn_module_add_param(dec, "weight", nn_param(enc, "weight"));
    nn_module_free(enc);
    NN_TEST_CHECK(nn_param(dec, "weight")->numel == 4, "the shared weight outlives its first module");
    nn_module_free(dec);

    /* misuse: a module inside itself, freeing a child, freeing a parameter */
    hook_on();
    b = nn_linear(2, 2);
    seq = nn_sequential(b, NULL);
    NN_TEST_CHECK(nn_module_add_child(b, "loop", seq) == NULL && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "own descendant"),
                  "a cycle is reported: \"%s\"", nn_test_msg);
    nn_module_free(b);
    NN_TEST_CHECK(nn_test_msgs == 2 && strstr(nn_test_msg, "nn_module_free") && strstr(nn_test_msg, "root"),
                  "freeing a child is reported: \"%s\"", nn_test_msg);
    nn_tensor_free(nn_param(b, "weight"));
    NN_TEST_CHECK(nn_test_msgs == 3 && strstr(nn_test_msg, "nn_tensor_free"),
                  "freeing a parameter is reported: \"%s\"", nn_test_msg);
    hook_off();
    nn_module_free(seq);
    nn_graph_free(g);
}

/* 5. nn_sequential tells a failed child from the end of the list. */
static void test_sequential_failed_child(void) {
    nn_module *m, *a, *c;
    int n;
    destroyed = 0;
    hook_on();
    a = counted();
    c = counted();
    m = nn_sequential(a, (nn_module *)NULL, c, NULL);
    NN_TEST_CHECK(m == NULL, "a NULL child fails nn_sequential");
    NN_TEST_CHECK(nn_test_msgs == 1 && strstr(nn_test_msg, "nn_sequential") && strstr(nn_test_msg, "child 1"),
                  "the report names the position: \"%s\"", nn_test_msg);
    NN_TEST_CHECK(destroyed == 2, "the other children are freed (%d of 2)", destroyed);
    /* a child given twice and a failure: freed once */
    destroyed = 0;
    a = counted();
    m = nn_sequential(a, a, (nn_module *)NULL, NULL);
    NN_TEST_CHECK(m == NULL && destroyed == 1 && nn_test_msgs == 2 && strstr(nn_test_msg, "child 2"),
                  "a repeated child is freed once (%d): \"%s\"", destroyed, nn_test_msg);
    hook_off();
    /* many children */
    m = nn_sequential(nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(),
                      nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(),
                      nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_relu(), nn_linear(2, 2),
                      NULL);
    NN_TEST_CHECK(m && m->nchildren == 21 && nn_child(m, "20") != NULL, "21 children");
    nn_parameters(m, &n);
    NN_TEST_CHECK(n == 2, "the last child's parameters");
    nn_module_free(m);
    m = nn_sequential(NULL);
    NN_TEST_CHECK(m && m->nchildren == 0, "an empty Sequential");
    nn_module_free(m);
}

/* 6. lr_find restores buffers; evaluation helpers restore each module's flag. */
typedef struct bn_run { nn_module *m; nn_graph *g; } bn_run;
static float bn_loss(void *user) {
    bn_run *r = (bn_run *)user;
    float xv[8] = {1.0f, 2.0f, 3.0f, 5.0f, -1.0f, 0.0f, 4.0f, 9.0f};
    nn_tensor *l;
    float v;
    nn_graph_reset(r->g);
    l = nn_sum(nn_forward(r->m, nn_tensor_from(r->g, xv, NN_SHAPE(4, 2))));
    l = nn_mul(l, l);
    nn_backward(l);
    v = nn_item(l);
    return v;
}

static void test_lr_find_restores_buffers(void) {
    nn_module *m = nn_sequential(nn_linear(2, 2), nn_batchnorm1d(2), nn_linear(2, 1), NULL);
    nn_graph *g = nn_graph_new();
    nn_tensor *rm = nn_param(m, "1.running_mean"), *rv = nn_param(m, "1.running_var");
    nn_tensor *nbt = nn_param(m, "1.num_batches_tracked");
    nn_sgd_opts so;
    nn_lr_find_opts fo;
    nn_lr_find_result res;
    nn_optim *o;
    bn_run r;
    float mean0[2], var0[2];
    memset(&so, 0, sizeof so);
    memset(&fo, 0, sizeof fo);
    fo.num_steps = 10;
    fo.end_lr = 1e-3f;
    o = nn_sgd(m, so);
    r.m = m;
    r.g = g;
    memcpy(mean0, rm->data, sizeof mean0);
    memcpy(var0, rv->data, sizeof var0);
    NN_TEST_CHECK(nn_lr_find(o, bn_loss, &r, fo, &res) == NN_OK && res.n > 1, "lr_find ran");
    NN_TEST_CHECK(memcmp(mean0, rm->data, sizeof mean0) == 0 && memcmp(var0, rv->data, sizeof var0) == 0,
                  "running statistics restored: mean %g (was %g)", (double)rm->data[0], (double)mean0[0]);
    NN_TEST_CHECK(((int64_t *)(void *)nbt->data)[0] == 0, "num_batches_tracked restored");
    nn_lr_find_free(&res);
    nn_optim_free(o);
    nn_graph_free(g);
    nn_module_free(m);
}

static void test_training_flags_restored(void) {
    nn_dataset ds;
    nn_module *m = nn_sequential(nn_flatten(), nn_linear(784, 10), nn_dropout(0.5f), NULL);
    nn_module *drop = nn_child(m, "2");
    nn_graph *g = nn_graph_new();
    nn_loader_opts lo;
    nn_snapshots *s;
    float acc;
    memset(&lo, 0, sizeof lo);
    nn_dataset_synthetic(100, 7, &ds);
    nn_train_mode(drop, 0); /* the user's choice: dropout off while training */
    acc = nn_accuracy(m, &ds, g, lo);
    NN_TEST_CHECK(acc >= 0.0f, "accuracy ran");
    NN_TEST_CHECK(nn_is_training(m) == 1 && nn_is_training(nn_child(m, "1")) == 1 &&
                      nn_is_training(drop) == 0,
                  "nn_accuracy restores each module's own flag (dropout %d)", nn_is_training(drop));
    s = nn_snapshots_new(m, 2);
    nn_snapshot_take(s);
    nn_graph_reset(g);
    {
        float xv[784] = {0};
        nn_tensor *x = nn_tensor_from(g, xv, NN_SHAPE(1, 784));
        NN_TEST_CHECK(nn_snapshot_predict(s, x) != NULL, "snapshot predict ran");
    }
    NN_TEST_CHECK(nn_is_training(m) == 1 && nn_is_training(drop) == 0,
                  "nn_snapshot_predict restores each module's own flag");
    nn_snapshots_free(s);
    nn_dataset_free(&ds);
    nn_graph_free(g);
    nn_module_free(m);
}

/* 6. num_batches_tracked counts exactly past 2^24. */
static void test_num_batches_tracked_int64(void) {
    nn_module *bn = nn_batchnorm1d(2);
    nn_tensor *t = nn_param(bn, "num_batches_tracked");
    nn_graph *g = nn_graph_new();
    float xv[4] = {1.0f, 2.0f, 3.0f, 5.0f};
    int64_t *c = (int64_t *)(void *)t->data;
    NN_TEST_CHECK((t->flags & NN_TENSOR_INT64) && t->numel == 1 && c[0] == 0,
                  "num_batches_tracked is an int64 scalar");
    c[0] = (int64_t)1 << 24;
    nn_forward(bn, nn_tensor_from(g, xv, NN_SHAPE(2, 2)));
    NN_TEST_CHECK(c[0] == ((int64_t)1 << 24) + 1, "counts past 2^24 exactly: %lld", (long long)c[0]);
    hook_on();
    NN_TEST_CHECK(nn_add_scalar(t, 1.0f) == NULL && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_add_scalar: input 0 holds int64 values") != NULL,
                  "an int64 buffer never enters a float op: %s", nn_test_msg);
    hook_off();
    nn_graph_free(g);
    nn_module_free(bn);
}

/* 6. Names of any length: parameter lists and optimizer state files. */
static void test_long_names(void) {
    char longname[301], want[320];
    nn_module *root = nn_module_new("Root", identity_forward);
    nn_param *ps;
    nn_sgd_opts so;
    nn_optim *o;
    size_t size;
    void *buf;
    int n;
    memset(longname, 'a', 300);
    longname[300] = 0;
    nn_module_add_child(root, longname, nn_linear(2, 2));
    ps = nn_parameters(root, &n);
    snprintf(want, sizeof want, "%s.weight", longname);
    NN_TEST_CHECK(n == 2 && strlen(ps[0].name) == 307 && strcmp(ps[0].name, want) == 0,
                  "a 307-character name is kept whole (%zu)", strlen(ps[0].name));
    NN_TEST_CHECK(nn_param(root, want) != NULL, "and found by nn_param");
    memset(&so, 0, sizeof so);
    so.momentum = 0.9f;
    o = nn_sgd(root, so);
    size = nn_optim_state_write(o, NULL, NULL, 0);
    buf = malloc(size);
    nn_optim_state_write(o, NULL, buf, size);
    NN_TEST_CHECK(nn_optim_state_read(o, NULL, buf, size) == NN_OK,
                  "optimizer state with a long name reads back: %s", nn_error_string());
    free(buf);
    nn_optim_free(o);
    nn_module_free(root);
}

/* 7. Lookups, typed options, nn_param as both type and macro. */
static void test_lookups_and_options(void) {
    nn_module *body = nn_sequential(nn_linear(2, 3), nn_relu(), NULL);
    nn_module *root = nn_module_new("Net", identity_forward), *lin;
    nn_param p;   /* the struct type still works */
    nn_graph *g = nn_graph_new();
    nn_tensor *x, *y, *bn_y1, *bn_y2;
    nn_module *bn;
    float xv[2] = {1.0f, -1.0f}, bx[4] = {1.0f, 2.0f, 3.0f, 6.0f};
    nn_module_add_child(root, "body", body);
    NN_TEST_CHECK(nn_child(root, "body") == body, "nn_child by name");
    NN_TEST_CHECK(nn_child(root, "body.1") == body->children[1], "nn_child by dotted path");
    NN_TEST_CHECK(nn_child(root, "body.7") == NULL && nn_child(root, "nobody") == NULL &&
                      nn_child(root, "body.0.x") == NULL, "missing children are NULL");
    p.name = "body.0.weight";
    p.tensor = nn_param(root, p.name);
    NN_TEST_CHECK(p.tensor && p.tensor == body->children[0]->params[0].tensor, "nn_param by dotted name");
    NN_TEST_CHECK(nn_param(root, "body.0.nothing") == NULL && nn_param(root, "body.weight") == NULL,
                  "missing parameters are NULL");
    NN_TEST_CHECK(nn_is_training(root) == 1, "modules start in training mode");
    nn_train_mode(root, 0);
    NN_TEST_CHECK(nn_is_training(root) == 0 && nn_is_training(nn_child(root, "body.1")) == 0, "eval mode");
    /* Linear's forward finds its own weight and bias, whatever else is added */
    lin = nn_linear_nobias(2, 2);
    nn_module_add_param(lin, "scale", nn_ones(NULL, NN_SHAPE(2)));
    x = nn_tensor_from(g, xv, NN_SHAPE(1, 2));
    y = nn_forward(lin, x);
    {
        const float *w = nn_param(lin, "weight")->data;
        float want = w[0] * xv[0] + w[1] * xv[1];
        NN_TEST_CHECK(y && y->data[0] == want, "a parameter added to Linear is not its bias: %g vs %g",
                      (double)(y ? y->data[0] : 0.0f), (double)want);
    }
    /* batch norm options through nn_batchnorm_set */
    bn = nn_batchnorm1d(2);
    bn_y1 = nn_forward(bn, nn_tensor_from(g, bx, NN_SHAPE(2, 2)));
    nn_batchnorm_set(bn, 0.5f, 100.0f);
    bn_y2 = nn_forward(bn, nn_tensor_from(g, bx, NN_SHAPE(2, 2)));
    NN_TEST_CHECK(bn_y1 && bn_y2 && fabsf(bn_y1->data[0] + 1.0f) < 1e-3f && fabsf(bn_y2->data[0]) < 0.2f,
                  "a large eps shrinks the output (%g, %g)", (double)bn_y1->data[0], (double)bn_y2->data[0]);
    NN_TEST_CHECK(fabsf(nn_param(bn, "running_mean")->data[0] - (0.1f * 2.0f * 0.5f + 0.5f * 2.0f)) < 1e-5f,
                  "momentum 0.5 applies: running mean %g", (double)nn_param(bn, "running_mean")->data[0]);
    hook_on();
    nn_batchnorm_set(lin, 0.1f, 1e-5f);
    NN_TEST_CHECK(nn_test_msgs == 1 && strstr(nn_test_msg, "nn_batchnorm_set") && strstr(nn_test_msg, "Linear"),
                  "nn_batchnorm_set on a Linear is reported: \"%s\"", nn_test_msg);
    nn_grad_buffer(x);
    NN_TEST_CHECK(nn_test_msgs == 2 && strstr(nn_test_msg, "nn_grad_buffer"), "nn_grad_buffer on a graph tensor");
    hook_off();
    nn_module_free(bn);
    nn_module_free(lin);
    nn_module_free(root);
    nn_graph_free(g);
}

/* Out of memory at every allocation while building shared modules, tied
   weights and an optimizer: ASan sees each module and tensor freed once,
   nothing leaked. */
static void test_oom(void) {
    long k, total = 0;
    int completed = 0;
    hook_on();   /* a NULL child passed to nn_sequential is a report, not an abort */
    for (k = 1; k < 400 && !completed; k++) {
        nn_module *b, *s, *enc, *dec, *root;
        nn_adam_opts ao;
        nn_optim *o;
        int n;
        memset(&ao, 0, sizeof ao);
        alloc_calls = 0;
        fail_at = k;
        b = nn_linear(2, 2);
        s = nn_sequential(b, b, nn_relu(), NULL);
        enc = nn_linear(3, 3);
        dec = nn_module_new("Tied", tied_forward);
        if (enc && dec) nn_module_add_param(dec, "weight", nn_param(enc, "weight"));
        root = nn_sequential(enc, dec, s, NULL);
        o = root ? nn_adam(root, ao) : NULL;
        if (root) nn_parameters(root, &n);
        completed = fail_at > alloc_calls;
        if (completed) total = alloc_calls;
        fail_at = -1;
        nn_optim_free(o);
        nn_module_free(root);
    }
    hook_off();
    NN_TEST_CHECK(completed && total > 10, "out-of-memory sweep over %ld allocations", total);
}

int main(void) {
    nn_test_malloc_hook = count_malloc;
    nn_test_realloc_hook = count_realloc;
    test_parameter_array_stays_valid();
    test_requires_grad_off();
    test_no_gradient_no_update();
    test_no_trainable_parameters();
    test_shared_modules_and_weights();
    test_sequential_failed_child();
    test_lr_find_restores_buffers();
    test_training_flags_restored();
    test_num_batches_tracked_int64();
    test_long_names();
    test_lookups_and_options();
    test_oom();
    return nn_test_summary("test_modules_hard");
}
