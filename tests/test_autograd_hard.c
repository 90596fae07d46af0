/* Autograd and graph hardening: inputs from two graphs, tensors kept past
   nn_graph_reset, out of memory inside nn_backward and nn_loader_next, the
   per-thread current graph (expressions over parameters alone), and a few
   divergences from PyTorch (pow(x, 0)'s gradient, argmax with NaN, an
   undefined cross-entropy reduction).  Small arena blocks make the backward
   allocate, so a failing allocator can hit a gradient buffer. */
#include <stdlib.h>
static long alloc_calls = 0, fail_at = -1;
/* Counts calls; the call numbered fail_at fails. */
static void *count_malloc(size_t n) { return ++alloc_calls == fail_at ? NULL : malloc(n); }
static void *count_realloc(void *p, size_t n) { return ++alloc_calls == fail_at ? NULL : realloc(p, n); }
#ifndef NN_TEST_LINKED /* tests/run.sh links the shared implementation */
#include "impl.c"               /* with its test seams (tests/seams.h) */
#endif
#include "seams.h"
#include "nn.h"
#include "harness.h"
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define HAVE_PTHREAD 1
#endif

static void clear_msg(void) {
    nn_test_msg[0] = '\0';
    nn_test_msgs = 0;
}

static int has(const char *s) { return strstr(nn_test_msg, s) != NULL; }

/* An op whose inputs come from two graphs is misuse naming the op and both
   graphs, in every op that takes two or more tensors. */
static void test_two_graphs(void) {
    float d[6] = {1, 2, 3, 4, 5, 6};
    nn_graph *g1 = nn_graph_new(), *g2 = nn_graph_new();
    nn_tensor *a = nn_requires_grad(nn_tensor_from(g1, d, NN_SHAPE(2, 3)), 1);
    nn_tensor *b = nn_tensor_from(g2, d, NN_SHAPE(2, 3));
    nn_tensor *m = nn_tensor_from(g2, d, NN_SHAPE(3, 2));
    nn_tensor *w = nn_requires_grad(nn_tensor_from(NULL, d, NN_SHAPE(2, 3)), 1);
    nn_tensor *bias = nn_tensor_from(g2, d, NN_SHAPE(2));
    nn_tensor *ts[3], *r;
    char p1[32], p2[32];
    snprintf(p1, sizeof p1, "%p", (void *)g1);
    snprintf(p2, sizeof p2, "%p", (void *)g2);
    clear_msg();
    r = nn_add(a, b);
    NN_TEST_CHECK(r == NULL && has("nn_add:") && has(p1) && has(p2) && has("input 0") &&
                      has("input 1") && has("share one graph"),
                  "nn_add of two graphs: %s", nn_test_msg);
    clear_msg();
    r = nn_mul(b, a);
    NN_TEST_CHECK(r == NULL && has("nn_mul:") && has("input 0 is in graph") && has(p2) && has(p1),
                  "nn_mul of two graphs: %s", nn_test_msg);
    clear_msg();
    r = nn_matmul(a, m);
    NN_TEST_CHECK(r == NULL && has("nn_matmul:") && has(p1) && has(p2), "nn_matmul: %s", nn_test_msg);
    clear_msg();
    r = nn_mse(a, b);
    NN_TEST_CHECK(r == NULL && has("nn_mse:") && has(p1) && has(p2), "nn_mse: %s", nn_test_msg);
    clear_msg();
    /* A persistent input between them does not hide the mismatch. */
    r = nn_linear_op(a, w, bias);
    NN_TEST_CHECK(r == NULL && has("nn_linear_op:") && has("input 0") && has("input 2"),
                  "nn_linear_op: %s", nn_test_msg);
    clear_msg();
    ts[0] = a;
    ts[1] = w;
    ts[2] = b;
    r = nn_concat(ts, 3, 0);
    NN_TEST_CHECK(r == NULL && has("nn_concat:") && has("input 2"), "nn_concat: %s", nn_test_msg);
    /* The same graph, or one input persistent, is fine. */
    clear_msg();
    r = nn_add(a, w);
    NN_TEST_CHECK(r != NULL && r->graph == g1 && nn_test_msgs == 0, "graph + persistent: %s", nn_test_msg);
    r = nn_add(b, nn_reshape(m, NN_SHAPE(2, 3)));
    NN_TEST_CHECK(r != NULL && r->graph == g2 && nn_test_msgs == 0, "same graph: %s", nn_test_msg);
    nn_tensor_free(w);
    nn_graph_free(g1);
    nn_graph_free(g2);
}

/* The case a generation alone missed: the step after the reset makes the
   same tensors in the same order, so the kept pointer's memory would hold
   one of the new step's tensors.  A tensor from the step just before is
   always reported; nn_graph_reset keeps its header intact for one step. */
static void test_stale_reused(void) {
    float d[4] = {1, 2, 3, 4};
    nn_graph *g = nn_graph_new();
    nn_tensor *w = nn_requires_grad(nn_tensor_from(NULL, d, NN_SHAPE(4)), 1);
    nn_tensor *loss, *prev = NULL, *prev_x = NULL, *r;
    int step, reported_all = 1, quiet = 1;
    for (step = 0; step < 6; step++) {
        nn_tensor *x;
        nn_graph_reset(g);
        x = nn_tensor_from(g, d, NN_SHAPE(4));
        clear_msg();
        if (prev) { /* last step's first tensor (made exactly where x is
                       made now) and its loss, used in this step */
            r = nn_mul(x, prev_x);
            reported_all &= r == NULL && nn_test_msgs == 1 && has("nn_mul: input 1") && has("reset");
            clear_msg();
            r = nn_add(x, prev);
            reported_all &= r == NULL && nn_test_msgs == 1 && has("nn_add: input 1") && has("reset");
        }
        clear_msg();
        loss = nn_sum(nn_mul(x, w));
        quiet &= loss != NULL && nn_backward(loss) == NN_OK && nn_test_msgs == 0;
        prev = loss;
        prev_x = x;
    }
    NN_TEST_CHECK(reported_all, "last step's tensor is reported in the next step: %s", nn_test_msg);
    NN_TEST_CHECK(quiet, "the current step's tensors work: %s", nn_test_msg);
    clear_msg();
    nn_graph_reset(g);
    NN_TEST_CHECK(nn_backward(prev) == NN_ERR_ARG && has("nn_backward: the loss"),
                  "backward of last step's loss: %s", nn_test_msg);
    nn_tensor_free(w);
    nn_graph_free(g);
}

/* A tensor kept past nn_graph_reset is stale: an op or nn_backward given it
   is misuse naming the generations.  Persistent tensors never are. */
static void test_stale(void) {
    float d[4] = {1, 2, 3, 4};
    nn_graph *g = nn_graph_new();
    nn_tensor *w = nn_requires_grad(nn_tensor_from(NULL, d, NN_SHAPE(4)), 1);
    nn_tensor *x, *y, *kept, *loss, *r;
    int k, arg[1];
    nn_graph_reset(g);
    nn_graph_reset(g);
    nn_graph_reset(g); /* generation 3 */
    x = nn_tensor_from(g, d, NN_SHAPE(4));
    y = nn_tensor_from(g, d, NN_SHAPE(4));
    kept = nn_tensor_from(g, d, NN_SHAPE(4)); /* past the next step's first tensors */
    loss = nn_sum(nn_mul(nn_add(x, y), w));
    NN_TEST_CHECK(loss != NULL && nn_backward(loss) == NN_OK, "backward in generation 3");
    nn_graph_reset(g);
    nn_graph_reset(g); /* now 5 */
    x = nn_tensor_from(g, d, NN_SHAPE(4));
    clear_msg();
    r = nn_add(x, kept);
    NN_TEST_CHECK(r == NULL && has("nn_add: input 1") && has("generation 3") &&
                      has("now generation 5") && has("reset"),
                  "stale input: %s", nn_test_msg);
    clear_msg();
    r = nn_exp(kept);
    NN_TEST_CHECK(r == NULL && has("nn_exp: input 0") && has("generation 3"), "stale unary: %s",
                  nn_test_msg);
    clear_msg();
    NN_TEST_CHECK(nn_backward(loss) == NN_ERR_ARG && has("nn_backward: the loss") &&
                      has("generation 3") && has("now generation 5"),
                  "stale backward: %s", nn_test_msg);
    clear_msg();
    nn_argmax_rows(nn_reshape(x, NN_SHAPE(1, 4)), arg); /* current: fine */
    NN_TEST_CHECK(nn_test_msgs == 0 && arg[0] == 3, "argmax of a live tensor");
    /* Persistent tensors are never stale, over many resets. */
    for (k = 0; k < 3; k++) {
        nn_graph_reset(g);
        x = nn_tensor_from(g, d, NN_SHAPE(4));
        r = nn_sum(nn_mul(x, w));
        NN_TEST_CHECK(r != NULL && nn_backward(r) == NN_OK && nn_test_msgs == 0,
                      "persistent after reset %d: %s", k, nn_test_msg);
    }
    NN_TEST_CHECK(w->grad[3] == 2.0f * 4.0f + 3.0f * 4.0f, "w's gradient accumulated %g",
                  (double)w->grad[3]);
    nn_tensor_free(w);
    nn_graph_free(g);
}

/* A two-layer MLP's loss in a fresh graph: x [32,4096] -> 64 -> relu -> 10,
   x requiring a gradient.  x is the largest tensor, so its gradient needs a
   new arena block (a malloc) inside the backward. */
#define MLP_IN 4096
typedef struct mlp {
    nn_tensor *w1, *b1, *w2, *x;
    float *xd;
    int y[32];
} mlp;

static nn_tensor *mlp_loss(mlp *m, nn_graph *g) {
    nn_ce_opts ce = {0};
    nn_tensor *h, *t;
    m->x = nn_requires_grad(nn_tensor_from(g, m->xd, NN_SHAPE(32, MLP_IN)), 1);
    h = nn_relu_op(nn_linear_op(m->x, m->w1, m->b1));
    t = nn_tanh_op(nn_linear_op(h, m->w2, NULL));
    return nn_cross_entropy(nn_mul_scalar(t, 3.0f), m->y, ce);
}

static void zero_grads(mlp *m) {
    memset(m->w1->grad, 0, m->w1->numel * sizeof(float));
    memset(m->b1->grad, 0, m->b1->numel * sizeof(float));
    memset(m->w2->grad, 0, m->w2->numel * sizeof(float));
}

/* Whether every gradient equals the reference (w1, b1, w2, x in ref[0..3]). */
static int grads_equal(mlp *m, float **ref) {
    nn_tensor *t[4];
    int i;
    t[0] = m->w1;
    t[1] = m->b1;
    t[2] = m->w2;
    t[3] = m->x;
    for (i = 0; i < 4; i++)
        if (!t[i]->grad || memcmp(t[i]->grad, ref[i], t[i]->numel * sizeof(float)) != 0) return 0;
    return 1;
}

/* Out of memory inside the backward: fail the k-th allocation after the
   backward starts, for every k.  Each run either returns NN_OK with exactly
   the reference gradients or NN_ERR_OOM naming what; never a silent drop. */
static void test_backward_oom(void) {
    mlp m;
    int i, k, ooms = 0, oks = 0, bad = 0;
    float *ref[4];
    nn_graph *g;
    nn_tensor *loss;
    nn_status st;
    nn_seed(5);
    m.w1 = nn_requires_grad(nn_rand(NULL, NN_SHAPE(64, MLP_IN), -0.03f, 0.03f), 1);
    m.b1 = nn_requires_grad(nn_randn(NULL, NN_SHAPE(64)), 1);
    m.w2 = nn_requires_grad(nn_randn(NULL, NN_SHAPE(10, 64)), 1);
    m.xd = (float *)malloc(32 * MLP_IN * sizeof(float));
    for (i = 0; i < 32 * MLP_IN; i++) m.xd[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    for (i = 0; i < 32; i++) m.y[i] = (i * 7) % 10;
    g = nn_graph_new();
    loss = mlp_loss(&m, g);
    zero_grads(&m);
    NN_TEST_CHECK(nn_backward(loss) == NN_OK, "reference backward");
    ref[0] = m.w1->grad;
    ref[1] = m.b1->grad;
    ref[2] = m.w2->grad;
    ref[3] = m.x->grad;
    for (i = 0; i < 4; i++) {
        nn_tensor *t = i == 0 ? m.w1 : i == 1 ? m.b1 : i == 2 ? m.w2 : m.x;
        ref[i] = (float *)malloc(t->numel * sizeof(float));
        memcpy(ref[i], t->grad, t->numel * sizeof(float));
    }
    nn_graph_free(g);
    for (k = 1; k <= 10; k++) {
        g = nn_graph_new();
        loss = mlp_loss(&m, g);
        zero_grads(&m);
        fail_at = alloc_calls + k;
        st = nn_backward(loss);
        if (st == NN_OK) {
            oks++;
            if (!grads_equal(&m, ref)) bad++;
        } else {
            ooms++;
            NN_TEST_CHECK(st == NN_ERR_OOM && strstr(nn_error_string(), "nn_backward: out of memory") &&
                              strstr(nn_error_string(), "gradient"),
                          "k=%d: status %d, %s", k, (int)st, nn_error_string());
        }
        fail_at = -1;
        nn_graph_free(g);
    }
    NN_TEST_CHECK(ooms > 0 && oks > 0 && bad == 0,
                  "backward under failing allocations: %d oom, %d ok, %d ok with wrong gradients",
                  ooms, oks, bad);
    /* The message names the op and input whose gradient could not be had. */
    g = nn_graph_new();
    loss = mlp_loss(&m, g);
    fail_at = alloc_calls + 1;
    st = nn_backward(loss);
    fail_at = -1;
    NN_TEST_CHECK(st == NN_ERR_OOM && strstr(nn_error_string(), "input 0 [32,4096] of nn_linear_op"),
                  "the first allocation fails: %s", nn_error_string());
    nn_graph_free(g);
    for (i = 0; i < 4; i++) free(ref[i]);
    free(m.xd);
    nn_tensor_free(m.w1);
    nn_tensor_free(m.b1);
    nn_tensor_free(m.w2);
}

/* nn_loader_next reports out of memory as a negative status, not as the end
   of the epoch; the batch is not lost (the next call returns it). */
static void test_loader_oom(void) {
    nn_dataset ds;
    nn_loader_opts lo;
    nn_loader *ld;
    nn_graph *g;
    nn_tensor *x = NULL;
    const int *y = NULL;
    int n, seen = 0, k, ooms = 0;
    NN_TEST_CHECK(nn_dataset_synthetic(50, 3, &ds) == NN_OK, "synthetic dataset");
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 20;
    ld = nn_loader_new(&ds, lo);
    g = nn_graph_new(); /* empty: the batch needs a new arena block */
    fail_at = alloc_calls + 1;
    n = nn_loader_next(ld, g, &x, &y);
    fail_at = -1;
    NN_TEST_CHECK(n == NN_ERR_OOM && x == NULL && strstr(nn_error_string(), "nn_loader_next") &&
                      strstr(nn_error_string(), "out of memory"),
                  "loader out of memory: %d, %s", n, nn_error_string());
    while ((n = nn_loader_next(ld, g, &x, &y)) > 0) seen += n;
    NN_TEST_CHECK(n == 0 && seen == 50, "after the failure the epoch is whole: %d samples", seen);
    nn_graph_free(g);
    /* nn_accuracy under failing allocations: the true accuracy or -1, never
       the accuracy of part of the dataset.  (Its arena grows in the first
       batch only, so this checks the new path rather than an old failure.) */
    {
        nn_module *net;
        float want, got;
        nn_loader_opts eo;
        memset(&eo, 0, sizeof eo);
        nn_seed(2);
        net = nn_sequential(nn_linear(784, 10), NULL);
        eo.batch_size = 20;
        g = nn_graph_new();
        want = nn_accuracy(net, &ds, g, eo);
        nn_graph_free(g);
        for (k = 1; k <= 12; k++) {
            g = nn_graph_new();
            fail_at = alloc_calls + k;
            got = nn_accuracy(net, &ds, g, eo);
            fail_at = -1;
            if (got != want) {
                ooms++;
                NN_TEST_CHECK(got == -1.0f, "k=%d: accuracy %g, want %g or -1", k, (double)got,
                              (double)want);
            }
            nn_graph_free(g);
        }
        NN_TEST_CHECK(ooms > 0 && want >= 0.0f, "some accuracy runs failed (%d)", ooms);
        nn_module_free(net);
    }
    nn_loader_free(ld);
    nn_dataset_free(&ds);
}

/* The per-thread current graph: an expression over parameters alone lands in
   it, so an L2 penalty written the natural way trains. */
static void test_current_graph(void) {
    float wd[12], xd[20];
    int y[5] = {0, 2, 1, 2, 0}, i, step;
    nn_ce_opts ce = {0};
    nn_graph *g, *g2;
    nn_tensor *w, *x, *loss, *pen;
    float *ce_grad, first = 0.0f, last = 0.0f;
    const float lambda = 1e-3f;
    for (i = 0; i < 12; i++) wd[i] = 0.1f * (float)(i % 5) - 0.2f;
    for (i = 0; i < 20; i++) xd[i] = 0.25f * (float)((i * 3) % 7) - 0.7f;
    w = nn_requires_grad(nn_tensor_from(NULL, wd, NN_SHAPE(3, 4)), 1);
    g = nn_graph_new();
    NN_TEST_CHECK(nn_current_graph() == g, "nn_graph_new makes the current graph");
    g2 = nn_graph_new();
    NN_TEST_CHECK(nn_current_graph() == g2, "the newest graph is current");
    nn_graph_reset(g);
    NN_TEST_CHECK(nn_current_graph() == g, "nn_graph_reset makes g current");
    /* The cross-entropy gradient alone, then with the penalty. */
    x = nn_tensor_from(g, xd, NN_SHAPE(5, 4));
    loss = nn_cross_entropy(nn_linear_op(x, w, NULL), y, ce);
    NN_TEST_CHECK(nn_backward(loss) == NN_OK, "ce backward");
    ce_grad = (float *)malloc(12 * sizeof(float));
    memcpy(ce_grad, w->grad, 12 * sizeof(float));
    memset(w->grad, 0, 12 * sizeof(float));
    nn_graph_reset(g);
    clear_msg();
    pen = nn_sum(nn_mul(w, w));
    NN_TEST_CHECK(pen != NULL && pen->graph == g && nn_test_msgs == 0,
                  "sum(w*w) lands in the current graph: %s", nn_test_msg);
    x = nn_tensor_from(g, xd, NN_SHAPE(5, 4));
    loss = nn_add(nn_cross_entropy(nn_linear_op(x, w, NULL), y, ce), nn_mul_scalar(pen, lambda));
    NN_TEST_CHECK(loss != NULL && nn_backward(loss) == NN_OK, "penalized backward");
    {
        float want[12];
        for (i = 0; i < 12; i++) want[i] = ce_grad[i] + 2.0f * lambda * wd[i];
        NN_TEST_CHECK(nn_test_close(w->grad, want, 12, 1e-5f, 1e-7f, "L2 gradient"),
                      "gradient = ce grad + 2 lambda w");
    }
    /* It trains: plain gradient descent on the penalized loss. */
    for (step = 0; step < 50; step++) {
        nn_graph_reset(g);
        memset(w->grad, 0, 12 * sizeof(float));
        x = nn_tensor_from(g, xd, NN_SHAPE(5, 4));
        loss = nn_add(nn_cross_entropy(nn_linear_op(x, w, NULL), y, ce),
                      nn_mul_scalar(nn_sum(nn_mul(w, w)), lambda));
        if (!loss || nn_backward(loss) != NN_OK) break;
        if (step == 0) first = nn_item(loss);
        last = nn_item(loss);
        for (i = 0; i < 12; i++) w->data[i] -= 0.5f * w->grad[i];
    }
    NN_TEST_CHECK(step == 50 && last < 0.8f * first, "penalized training: loss %g -> %g", (double)first,
                  (double)last);
    /* No current graph: the misuse report says what to do. */
    nn_set_current_graph(NULL);
    NN_TEST_CHECK(nn_current_graph() == NULL, "cleared");
    clear_msg();
    pen = nn_mul(w, w);
    NN_TEST_CHECK(pen == NULL && has("nn_mul: no input belongs to a graph") &&
                      has("nn_set_current_graph"),
                  "no current graph: %s", nn_test_msg);
    nn_set_current_graph(g2);
    pen = nn_mul(w, w);
    NN_TEST_CHECK(pen != NULL && pen->graph == g2, "nn_set_current_graph(g2)");
    nn_graph_free(g2);
    NN_TEST_CHECK(nn_current_graph() == NULL, "freeing the current graph clears it");
    nn_graph_reset(g);
    NN_TEST_CHECK(nn_current_graph() == g, "reset makes g current again");
    nn_graph_free(g);
    NN_TEST_CHECK(nn_current_graph() == NULL, "freeing g clears it");
    free(ce_grad);
    nn_tensor_free(w);
}

#ifdef HAVE_PTHREAD
typedef struct worker {
    nn_tensor *w;     /* shared parameter, read only */
    float scale;
    int ok;
    float value;
} worker;

/* Each thread makes its own graph and computes scale * sum(w*w) in it. */
static void *worker_main(void *arg) {
    worker *wk = (worker *)arg;
    nn_graph *g = nn_graph_new();
    int k;
    wk->ok = 1;
    for (k = 0; k < 200 && wk->ok; k++) {
        nn_tensor *t;
        nn_graph_reset(g);
        t = nn_mul_scalar(nn_sum(nn_mul(wk->w, wk->w)), wk->scale);
        wk->ok = t != NULL && t->graph == g && nn_current_graph() == g;
        if (t) wk->value = nn_item(t);
    }
    nn_graph_free(g);
    wk->ok = wk->ok && nn_current_graph() == NULL;
    nn_thread_cleanup();
    return NULL;
}

static void test_threads(void) {
    float d[3] = {1, 2, 3};
    nn_tensor *w = nn_tensor_from(NULL, d, NN_SHAPE(3));
    nn_graph *mine = nn_graph_new();
    worker a, b;
    pthread_t ta, tb;
    a.w = b.w = w;
    a.scale = 1.0f;
    b.scale = 2.0f;
    a.ok = b.ok = 0;
    NN_TEST_CHECK(pthread_create(&ta, NULL, worker_main, &a) == 0, "thread a");
    NN_TEST_CHECK(pthread_create(&tb, NULL, worker_main, &b) == 0, "thread b");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    NN_TEST_CHECK(a.ok && b.ok && a.value == 14.0f && b.value == 28.0f,
                  "each thread its own current graph: %d %d %g %g", a.ok, b.ok, (double)a.value,
                  (double)b.value);
    NN_TEST_CHECK(nn_current_graph() == mine, "the main thread's current graph is untouched");
    nn_graph_free(mine);
    nn_tensor_free(w);
}
#endif

/* pow(x, 0) has a zero gradient at x = 0 (torch); other exponents unchanged. */
static void test_pow_zero(void) {
    float d[3] = {0.0f, 2.0f, -1.5f};
    nn_graph *g = nn_graph_new();
    nn_tensor *x = nn_requires_grad(nn_tensor_from(g, d, NN_SHAPE(3)), 1), *y;
    int i, ok = 1;
    y = nn_pow(x, 0.0f);
    NN_TEST_CHECK(nn_backward(nn_sum(y)) == NN_OK, "backward");
    for (i = 0; i < 3; i++) ok &= y->data[i] == 1.0f && x->grad[i] == 0.0f;
    NN_TEST_CHECK(ok, "pow(x,0): values 1, gradient 0 (got %g %g %g)", (double)x->grad[0],
                  (double)x->grad[1], (double)x->grad[2]);
    nn_graph_reset(g);
    x = nn_requires_grad(nn_tensor_from(g, d, NN_SHAPE(3)), 1);
    nn_backward(nn_sum(nn_pow(x, 2.0f)));
    NN_TEST_CHECK(x->grad[0] == 0.0f && x->grad[1] == 4.0f && x->grad[2] == -3.0f, "pow(x,2)'");
    nn_graph_free(g);
}

/* argmax_rows and max_axis both follow torch: the first NaN is the maximum. */
static void test_argmax_nan(void) {
    const float nan = NAN;
    float d[12];
    int arg[3];
    nn_graph *g = nn_graph_new();
    nn_tensor *a, *mx;
    d[0] = 1; d[1] = nan; d[2] = 5; d[3] = nan;     /* first NaN at 1 */
    d[4] = 2; d[5] = 7; d[6] = 7; d[7] = -1;        /* first of the ties: 1 */
    d[8] = nan; d[9] = 3; d[10] = 9; d[11] = 0;     /* NaN first: 0 */
    a = nn_requires_grad(nn_tensor_from(g, d, NN_SHAPE(3, 4)), 1);
    nn_argmax_rows(a, arg);
    NN_TEST_CHECK(arg[0] == 1 && arg[1] == 1 && arg[2] == 0, "argmax_rows %d %d %d (want 1 1 0)",
                  arg[0], arg[1], arg[2]);
    mx = nn_max_axis(a, 1, 0);
    NN_TEST_CHECK(mx && mx->data[0] != mx->data[0] && mx->data[1] == 7.0f &&
                      mx->data[2] != mx->data[2],
                  "max_axis values");
    nn_backward(nn_sum(mx));
    NN_TEST_CHECK(a->grad[1] == 1.0f && a->grad[3] == 0.0f && a->grad[5] == 1.0f &&
                      a->grad[6] == 0.0f && a->grad[8] == 1.0f,
                  "max_axis gradient goes to the same index as argmax");
    nn_graph_free(g);
}

/* A reduction other than NN_REDUCE_MEAN / NN_REDUCE_SUM is misuse. */
static void test_ce_reduction(void) {
    float d[6] = {1, 2, 3, 4, 5, 6};
    int y[2] = {0, 2};
    nn_graph *g = nn_graph_new();
    nn_tensor *x = nn_tensor_from(g, d, NN_SHAPE(2, 3)), *r;
    nn_ce_opts ce = {0};
    ce.reduction = NN_REDUCE_SUM;
    r = nn_cross_entropy(x, y, ce);
    NN_TEST_CHECK(r != NULL, "sum is valid");
    ce.reduction = (nn_reduction)7;
    clear_msg();
    r = nn_cross_entropy(x, y, ce);
    NN_TEST_CHECK(r == NULL && has("nn_cross_entropy") && has("reduction 7"), "bad reduction: %s",
                  nn_test_msg);
    nn_graph_free(g);
}

int main(void) {
    nn_test_malloc_hook = count_malloc;
    nn_test_realloc_hook = count_realloc;
    nn_test_graph_block = 4096; /* NN_GRAPH_BLOCK */
    nn_set_error_hook(nn_test_record_hook, NULL);
    test_two_graphs();
    test_stale();
    test_stale_reused();
    test_backward_oom();
    test_loader_oom();
    test_current_graph();
#ifdef HAVE_PTHREAD
    test_threads();
#endif
    test_pow_zero();
    test_argmax_nan();
    test_ce_reduction();
    nn_thread_cleanup();
    return nn_test_summary("test_autograd_hard");
}
