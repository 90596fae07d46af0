/* Sequence layers: embeddings, index_select / gather / stack / unstack,
   length masks, RNN / LSTM / GRU layers and cells, causal dilated conv1d.
   Values and gradients against PyTorch 1.13 (tests/golden/seq.txt, made by
   tests/golden/make_golden_seq.py), a PyTorch LSTM state_dict loaded by name,
   finite-difference gradient checks, misuse messages, a steady-state step
   that allocates nothing, and the same bits at 1 and 2 threads.
   Run from the repository root, or pass the golden directory as argv[1]. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static golden_file gf;
static nn_graph *g;

/* The next golden tensor as a new persistent tensor (NULL on a read error). */
static nn_tensor *rd(void) {
    gold_tensor t;
    nn_tensor *x = NULL;
    if (gold_tensor_read(&gf, &t)) x = nn_tensor_from(NULL, t.v, t.shape);
    gold_tensor_free(&t);
    return x;
}
static int rdi(void) {
    int v = 0;
    gold_int(&gf, &v);
    return v;
}
static float rdf(void) {
    float v = 0.0f;
    gold_float(&gf, &v);
    return v;
}
/* Compare a (values) with the golden tensor want (freed). */
static int same(const float *a, nn_tensor *want, float tol, const char *what) {
    int ok = a && want && nn_test_close(a, want->data, want->numel, tol, tol, what);
    if (!a) NN_TEST_CHECK(0, "%s: no values", what);
    nn_tensor_free(want);
    return ok;
}
static int same_t(const nn_tensor *t, nn_tensor *want, float tol, const char *what) {
    int ok = t && want && gold_same_shape(t, nn_shape_of(want));
    if (!ok) {
        NN_TEST_CHECK(0, "%s: shape %d elements, want %d", what, t ? (int)t->numel : -1,
                      want ? (int)want->numel : -1);
        nn_tensor_free(want);
        return 0;
    }
    return same(t->data, want, tol, what);
}
/* sum(y * w) (w persistent). */
static nn_tensor *wsum(nn_tensor *y, nn_tensor *w) { return nn_sum(nn_mul(y, w)); }

/* ---- error hook ---- */
static void reported(const char *what, const char *s1, const char *s2) {
    int ok = nn_test_msgs == 1 && strstr(nn_test_msg, s1) && (!s2 || strstr(nn_test_msg, s2));
    NN_TEST_CHECK(ok, "%s: %d reports, last \"%s\" (want \"%s\" %s)", what, nn_test_msgs, nn_test_msg, s1,
                  s2 ? s2 : "");
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

/* ---- embedding, index_select, gather ---- */
static void golden_emb(void) {
    int num = rdi(), dim = rdi(), use_pad = rdi(), pad = rdi(), nd, d, k, idx[64];
    float max_norm = rdf();
    nn_shape s;
    nn_embedding_opts o;
    nn_tensor *w, *y, *wy;
    size_t n = 1;
    memset(&s, 0, sizeof s);
    nd = rdi();
    s.ndim = nd;
    for (d = 0; d < nd; d++) n *= (size_t)(s.d[d] = rdi());
    for (k = 0; k < (int)n; k++) idx[k] = rdi();
    memset(&o, 0, sizeof o);
    o.use_padding_idx = use_pad;
    o.padding_idx = pad;
    o.max_norm = max_norm;
    w = nn_requires_grad(rd(), 1);
    (void)num;
    (void)dim;
    nn_graph_reset(g);
    y = nn_embedding_op(w, idx, s, o);
    same_t(y, rd(), 1e-5f, "embedding value");
    wy = rd();
    nn_backward(wsum(y, wy));
    same(nn_grad(w), rd(), 1e-5f, "embedding weight gradient");
    same(w->data, rd(), 1e-5f, "embedding weight after max_norm");
    nn_tensor_free(w);
    nn_tensor_free(wy);
}

static void golden_isel(int gather) {
    int axis = rdi(), n, k, idx[256];
    nn_shape s;
    nn_tensor *a, *y, *wy;
    memset(&s, 0, sizeof s);
    if (gather) {
        s.ndim = rdi();
        n = 1;
        for (k = 0; k < s.ndim; k++) n *= (s.d[k] = rdi());
    } else {
        n = rdi();
    }
    for (k = 0; k < n; k++) idx[k] = rdi();
    a = nn_requires_grad(rd(), 1);
    nn_graph_reset(g);
    y = gather ? nn_gather(a, axis, idx, s) : nn_index_select(a, axis, idx, n);
    same_t(y, rd(), 1e-6f, gather ? "gather value" : "index_select value");
    wy = rd();
    nn_backward(wsum(y, wy));
    same(nn_grad(a), rd(), 1e-6f, gather ? "gather gradient" : "index_select gradient");
    nn_tensor_free(a);
    nn_tensor_free(wy);
}

/* ---- recurrent layers ---- */
typedef struct rcase {
    nn_module *m;
    int kind, len[16], has_len, bf;
    nn_tensor *x, *h0, *c0, *wy, *wh, *wc;
} rcase;

static nn_tensor *rcase_loss(rcase *c, nn_tensor **y, nn_tensor **hn, nn_tensor **cn) {
    nn_tensor *loss;
    nn_graph_reset(g);
    *y = nn_rnn_forward(c->m, c->x, c->h0, c->c0, c->has_len ? c->len : NULL, hn, c->kind == 1 ? cn : NULL);
    if (!*y) return NULL;
    loss = nn_add(wsum(*y, c->wy), wsum(*hn, c->wh));
    if (c->kind == 1) loss = nn_add(loss, wsum(*cn, c->wc));
    return loss;
}

/* Central differences of the case's loss for a few elements of t. */
static int rcase_fd(rcase *c, nn_tensor *t, const float *ana, const char *what) {
    size_t step = t->numel / 5 + 1, k;
    int ok = 1;
    for (k = 1 % step; k < t->numel; k += step) {
        float keep = t->data[k], h = 1e-2f;
        nn_tensor *y, *hn, *cn = NULL;
        double up, down, num;
        t->data[k] = keep + h;
        up = nn_item(rcase_loss(c, &y, &hn, &cn));
        t->data[k] = keep - h;
        down = nn_item(rcase_loss(c, &y, &hn, &cn));
        t->data[k] = keep;
        num = (up - down) / (2.0 * (double)h);
        if (fabs(num - (double)ana[k]) > 1e-2 + 1e-2 * fabs((double)ana[k])) {
            printf("  fd %s [%zu]: numeric %.6g analytic %.6g\n", what, k, num, (double)ana[k]);
            ok = 0;
        }
    }
    NN_TEST_CHECK(ok, "finite differences: %s", what);
    return ok;
}

static void golden_rnn(int fd) {
    char name[64], pname[64], what[160];
    rcase c;
    nn_rnn_opts o;
    int I, H, T, B, b, np, i, has_h0, has_c0, relu, bias;
    nn_tensor *params[32], *y, *hn, *cn = NULL, *loss, *gx = NULL, *gh = NULL, *gc = NULL;
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    gold_tok(&gf, name, sizeof name);
    c.kind = rdi();
    I = rdi();
    H = rdi();
    o.num_layers = rdi();
    o.bidirectional = rdi();
    o.batch_first = c.bf = rdi();
    bias = rdi();
    o.no_bias = !bias;
    relu = rdi();
    o.relu = relu;
    T = rdi();
    B = rdi();
    has_h0 = rdi();
    has_c0 = rdi();
    c.has_len = rdi();
    for (b = 0; c.has_len && b < B; b++) c.len[b] = rdi();
    c.m = c.kind == 0 ? nn_rnn(I, H, o) : c.kind == 1 ? nn_lstm(I, H, o) : nn_gru(I, H, o);
    np = rdi();
    NN_TEST_CHECK(c.m != NULL, "%s: constructed", name);
    if (!c.m) return;
    {
        int count;
        nn_parameters(c.m, &count);
        NN_TEST_CHECK(count == np, "%s: %d parameters, PyTorch has %d", name, count, np);
    }
    for (i = 0; i < np; i++) {
        nn_tensor *v;
        gold_tok(&gf, pname, sizeof pname);
        v = rd();
        params[i] = nn_param(c.m, pname);
        NN_TEST_CHECK(params[i] && v && params[i]->numel == v->numel &&
                      params[i]->ndim == v->ndim && params[i]->shape[0] == v->shape[0],
                      "%s: parameter %s with PyTorch's shape", name, pname);
        if (params[i] && v && params[i]->numel == v->numel)
            memcpy(params[i]->data, v->data, v->numel * sizeof(float));
        nn_tensor_free(v);
    }
    c.x = nn_requires_grad(rd(), 1);
    if (has_h0) c.h0 = nn_requires_grad(rd(), 1);
    if (has_c0) c.c0 = nn_requires_grad(rd(), 1);
    (void)T;
    nn_graph_reset(g);
    y = nn_rnn_forward(c.m, c.x, c.h0, c.c0, c.has_len ? c.len : NULL, &hn, c.kind == 1 ? &cn : NULL);
    snprintf(what, sizeof what, "%s output", name);
    same_t(y, rd(), 2e-5f, what);
    snprintf(what, sizeof what, "%s h_n", name);
    same_t(hn, rd(), 2e-5f, what);
    if (c.kind == 1) {
        snprintf(what, sizeof what, "%s c_n", name);
        same_t(cn, rd(), 2e-5f, what);
    }
    c.wy = rd();
    c.wh = rd();
    if (c.kind == 1) c.wc = rd();
    loss = rcase_loss(&c, &y, &hn, &cn);
    NN_TEST_CHECK(loss && nn_backward(loss) == NN_OK, "%s: backward", name);
    snprintf(what, sizeof what, "%s d x", name);
    same(nn_grad(c.x), rd(), 1e-4f, what);
    if (has_h0) {
        snprintf(what, sizeof what, "%s d h0", name);
        same(nn_grad(c.h0), rd(), 1e-4f, what);
    }
    if (has_c0) {
        snprintf(what, sizeof what, "%s d c0", name);
        same(nn_grad(c.c0), rd(), 1e-4f, what);
    }
    for (i = 0; i < np; i++) {
        snprintf(what, sizeof what, "%s d param %d", name, i);
        same(params[i] ? nn_grad(params[i]) : NULL, rd(), 1e-4f, what);
    }
    if (fd) {
        /* copies: the FD passes reset the graph, not these persistent grads */
        size_t k;
        float *a = (float *)malloc(c.x->numel * sizeof(float));
        for (k = 0; k < c.x->numel; k++) a[k] = c.x->grad[k];
        snprintf(what, sizeof what, "%s x", name);
        rcase_fd(&c, c.x, a, what);
        free(a);
        a = (float *)malloc(params[1]->numel * sizeof(float));
        memcpy(a, params[1]->grad, params[1]->numel * sizeof(float));
        snprintf(what, sizeof what, "%s weight_hh_l0", name);
        rcase_fd(&c, params[1], a, what);
        free(a);
        if (c.h0) {
            gh = c.h0;
            a = (float *)malloc(gh->numel * sizeof(float));
            memcpy(a, gh->grad, gh->numel * sizeof(float));
            snprintf(what, sizeof what, "%s h0", name);
            rcase_fd(&c, gh, a, what);
            free(a);
        }
    }
    (void)gx;
    (void)gc;
    nn_module_free(c.m);
    nn_tensor_free(c.x);
    nn_tensor_free(c.h0);
    nn_tensor_free(c.c0);
    nn_tensor_free(c.wy);
    nn_tensor_free(c.wh);
    nn_tensor_free(c.wc);
}

static void golden_cell(void) {
    char name[64], pname[64], what[160];
    nn_rnn_opts o;
    nn_module *m;
    int kind, I, H, B, np, i;
    nn_tensor *params[4], *x, *h, *c = NULL, *y, *cy = NULL, *wy, *wc = NULL, *loss;
    memset(&o, 0, sizeof o);
    gold_tok(&gf, name, sizeof name);
    kind = rdi();
    I = rdi();
    H = rdi();
    B = rdi();
    o.no_bias = !rdi();
    o.relu = rdi();
    np = rdi();
    m = kind == 0 ? nn_rnn_cell(I, H, o) : kind == 1 ? nn_lstm_cell(I, H, o) : nn_gru_cell(I, H, o);
    NN_TEST_CHECK(m != NULL, "%s: constructed", name);
    if (!m) return;
    for (i = 0; i < np; i++) {
        nn_tensor *v;
        gold_tok(&gf, pname, sizeof pname);
        v = rd();
        params[i] = nn_param(m, pname);
        NN_TEST_CHECK(params[i] && params[i]->numel == v->numel, "%s: parameter %s", name, pname);
        if (params[i] && params[i]->numel == v->numel) memcpy(params[i]->data, v->data, v->numel * sizeof(float));
        nn_tensor_free(v);
    }
    x = nn_requires_grad(rd(), 1);
    h = nn_requires_grad(rd(), 1);
    if (kind == 1) c = nn_requires_grad(rd(), 1);
    nn_graph_reset(g);
    y = nn_cell_forward(m, x, h, c, kind == 1 ? &cy : NULL);
    snprintf(what, sizeof what, "%s h'", name);
    same_t(y, rd(), 2e-5f, what);
    if (kind == 1) {
        snprintf(what, sizeof what, "%s c'", name);
        same_t(cy, rd(), 2e-5f, what);
    }
    wy = rd();
    loss = wsum(y, wy);
    if (kind == 1) loss = nn_add(loss, wsum(cy, wc = rd()));
    NN_TEST_CHECK(nn_backward(loss) == NN_OK, "%s backward", name);
    snprintf(what, sizeof what, "%s d x", name);
    same(nn_grad(x), rd(), 1e-4f, what);
    snprintf(what, sizeof what, "%s d h", name);
    same(nn_grad(h), rd(), 1e-4f, what);
    if (kind == 1) {
        snprintf(what, sizeof what, "%s d c", name);
        same(nn_grad(c), rd(), 1e-4f, what);
    }
    for (i = 0; i < np; i++) {
        snprintf(what, sizeof what, "%s d param %d", name, i);
        same(nn_grad(params[i]), rd(), 1e-4f, what);
    }
    /* nn_forward: the step from a zero state */
    {
        nn_tensor *y0, *y1, *z = nn_zeros(NULL, NN_SHAPE(B, H));
        nn_graph_reset(g);
        y0 = nn_forward(m, x);
        y1 = nn_cell_forward(m, x, z, kind == 1 ? z : NULL, NULL);
        NN_TEST_CHECK(y0 && y1 && !memcmp(y0->data, y1->data, y0->numel * sizeof(float)),
                      "%s: nn_forward is the step from zeros", name);
        nn_tensor_free(z);
    }
    nn_module_free(m);
    nn_tensor_free(x);
    nn_tensor_free(h);
    nn_tensor_free(c);
    nn_tensor_free(wy);
    nn_tensor_free(wc);
}

static void golden_causal(void) {
    nn_conv_opts o;
    nn_tensor *x, *w, *b, *y, *wy;
    memset(&o, 0, sizeof o);
    o.stride = rdi();
    o.dilation = rdi();
    o.causal = 1;
    x = nn_requires_grad(rd(), 1);
    w = nn_requires_grad(rd(), 1);
    b = nn_requires_grad(rd(), 1);
    nn_graph_reset(g);
    y = nn_conv1d_op(x, w, b, o);
    same_t(y, rd(), 1e-5f, "causal conv1d value");
    wy = rd();
    nn_backward(wsum(y, wy));
    same(nn_grad(x), rd(), 1e-5f, "causal conv1d d x");
    same(nn_grad(w), rd(), 1e-5f, "causal conv1d d w");
    same(nn_grad(b), rd(), 1e-5f, "causal conv1d d b");
    nn_tensor_free(x);
    nn_tensor_free(w);
    nn_tensor_free(b);
    nn_tensor_free(wy);
}

static void golden_lstmio(const char *dir) {
    char path[512];
    nn_rnn_opts o;
    nn_module *m;
    nn_tensor *x = rd(), *y;
    nn_load_opts lo;
    memset(&o, 0, sizeof o);
    memset(&lo, 0, sizeof lo);
    o.num_layers = 2;
    o.bidirectional = 1;
    o.batch_first = 1;
    m = nn_lstm(4, 6, o);
    snprintf(path, sizeof path, "%s/lstm_seq.safetensors", dir);
    NN_TEST_CHECK(nn_load(m, path, lo) == NN_OK, "nn_load of PyTorch's LSTM state_dict: %s",
                  nn_error_string());
    nn_train_mode(m, 0);
    nn_graph_reset(g);
    y = nn_forward(m, x);
    same_t(y, rd(), 1e-5f, "loaded LSTM reproduces PyTorch's output");
    nn_module_free(m);
    nn_tensor_free(x);
}

/* ---- behaviour without golden data ---- */
static void check_stack_mask(void) {
    float av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12};
    nn_tensor *a = nn_requires_grad(nn_tensor_from(NULL, av, NN_SHAPE(2, 3)), 1);
    nn_tensor *b = nn_requires_grad(nn_tensor_from(NULL, bv, NN_SHAPE(2, 3)), 1);
    nn_tensor *ts[2], *s, *parts[3], *w;
    int len[2] = {1, 3}, n, ok, k;
    ts[0] = a;
    ts[1] = b;
    nn_graph_reset(g);
    s = nn_stack(ts, 2, 1); /* [2,2,3]: s[i][j][k] = ts[j][i][k] */
    ok = s && s->ndim == 3 && s->shape[0] == 2 && s->shape[1] == 2 && s->shape[2] == 3 &&
         s->data[0] == 1 && s->data[3] == 7 && s->data[6] == 4 && s->data[9] == 10;
    NN_TEST_CHECK(ok, "nn_stack along axis 1");
    n = nn_unstack(s, 2, parts);
    ok = n == 3 && parts[1]->ndim == 2 && parts[1]->shape[0] == 2 && parts[1]->shape[1] == 2 &&
         parts[1]->data[0] == 2 && parts[1]->data[1] == 8 && parts[1]->data[2] == 5;
    NN_TEST_CHECK(ok, "nn_unstack along axis 2");
    w = nn_mul_scalar(parts[1], 3.0f);
    nn_backward(nn_sum(nn_add(nn_sum(w), nn_sum(parts[2]))));
    ok = a->grad[1] == 3.0f && a->grad[2] == 1.0f && a->grad[0] == 0.0f && b->grad[4] == 3.0f;
    NN_TEST_CHECK(ok, "stack / unstack gradients");
    /* masks: x [T=3, B=2, 3] of ones */
    {
        nn_tensor *x = nn_requires_grad(nn_ones(NULL, NN_SHAPE(3, 2, 3)), 1), *y, *m;
        nn_graph_reset(g);
        y = nn_mask_lengths(x, len, 0);
        ok = y && y->data[0] == 1 && y->data[3] == 1 && y->data[6] == 0 && y->data[9] == 1 &&
             y->data[12] == 0 && y->data[15] == 1;
        NN_TEST_CHECK(ok, "nn_mask_lengths zeroes the steps past each length");
        nn_backward(nn_sum(y));
        ok = x->grad[6] == 0.0f && x->grad[9] == 1.0f;
        NN_TEST_CHECK(ok, "nn_mask_lengths gradient");
        m = nn_length_mask(g, len, 2, 3);
        ok = m && m->shape[0] == 2 && m->shape[1] == 3 && m->data[0] == 1 && m->data[1] == 0 &&
             m->data[5] == 1;
        NN_TEST_CHECK(ok, "nn_length_mask [B,T]");
        for (k = 0, ok = 1; k < 3; k++) ok &= m && m->data[3 + k] == 1.0f;
        NN_TEST_CHECK(ok, "nn_length_mask full row");
        nn_tensor_free(x);
    }
    nn_tensor_free(a);
    nn_tensor_free(b);
}

static void check_embedding_module(void) {
    nn_embedding_opts o;
    nn_module *e;
    float iv[3] = {2, 0, 2};
    int idx[3] = {2, 0, 2};
    nn_tensor *x, *y, *y2;
    memset(&o, 0, sizeof o);
    o.use_padding_idx = 1;
    o.padding_idx = 0;
    e = nn_embedding(5, 3, o);
    NN_TEST_CHECK(e && nn_param(e, "weight") && nn_param(e, "weight")->data[0] == 0.0f &&
                  nn_param(e, "weight")->data[2] == 0.0f, "padding row starts as zeros");
    nn_graph_reset(g);
    x = nn_tensor_from(g, iv, NN_SHAPE(3));
    y = nn_forward(e, x);
    y2 = nn_embedding_lookup(e, idx, NN_SHAPE(3));
    NN_TEST_CHECK(y && y2 && y->ndim == 2 && y->shape[1] == 3 &&
                  !memcmp(y->data, y2->data, 9 * sizeof(float)), "nn_forward on index floats");
    nn_backward(nn_sum(y));
    {
        float *gw = nn_grad(nn_param(e, "weight"));
        NN_TEST_CHECK(gw && gw[6] == 2.0f && gw[0] == 0.0f, "repeated indices add, padding none");
    }
    nn_module_free(e);
}

static void check_misuse(void) {
    nn_rnn_opts o;
    nn_module *lstm, *gru, *e;
    nn_tensor *x, *h0, *w;
    int bad[2] = {1, 7}, lens[2] = {3, 0};
    nn_embedding_opts eo;
    nn_conv_opts co;
    memset(&o, 0, sizeof o);
    memset(&eo, 0, sizeof eo);
    memset(&co, 0, sizeof co);
    nn_set_error_hook(nn_test_record_hook, NULL);
    lstm = nn_lstm(3, 4, o);
    gru = nn_gru(3, 4, o);
    e = nn_embedding(7, 2, eo);
    nn_graph_reset(g);
    x = nn_zeros(g, NN_SHAPE(5, 2, 3));
    h0 = nn_zeros(g, NN_SHAPE(1, 2, 5));
    NN_TEST_CHECK(nn_rnn_forward(lstm, x, h0, NULL, NULL, NULL, NULL) == NULL, "h0 mismatch fails");
    reported("hidden size of h0", "nn_rnn_forward: h0 has shape [1,2,5], expected [1,2,4]", NULL);
    NN_TEST_CHECK(nn_rnn_forward(gru, x, NULL, nn_zeros(g, NN_SHAPE(1, 2, 4)), NULL, NULL, NULL) == NULL,
                  "c0 on a GRU fails");
    reported("c0 on a GRU", "a GRU has no cell state", "[1,2,4]");
    NN_TEST_CHECK(nn_forward(lstm, nn_zeros(g, NN_SHAPE(5, 2, 6))) == NULL, "input size mismatch");
    reported("input size", "nn_forward(LSTM): nn_rnn_forward: LSTM input [5,2,6]", "input_size 3");
    NN_TEST_CHECK(nn_rnn_forward(lstm, x, NULL, NULL, lens, NULL, NULL) == NULL, "bad length");
    reported("length 0", "length 0 of sample 1 is outside [1, 5]", NULL);
    NN_TEST_CHECK(nn_embedding_lookup(e, bad, NN_SHAPE(2)) == NULL, "index out of range");
    reported("embedding index", "nn_embedding_op: index 7 (at position 1) is out of range [0, 7)", NULL);
    NN_TEST_CHECK(nn_forward(e, nn_full(g, NN_SHAPE(2), 1.5f)) == NULL, "fractional index");
    reported("fractional index", "nn_forward(Embedding)", "not a whole number");
    NN_TEST_CHECK(nn_index_select(x, 0, bad, 2) == NULL, "index_select out of range");
    reported("index_select", "nn_index_select: index 7", "[0, 5)");
    NN_TEST_CHECK(nn_gather(x, 2, bad, NN_SHAPE(1, 1, 2)) == NULL, "gather out of range");
    reported("gather", "nn_gather: index 7", "[0, 3)");
    NN_TEST_CHECK(nn_gather(x, 2, bad, NN_SHAPE(1, 2)) == NULL, "gather shape");
    reported("gather shape", "nn_gather: index shape [1,2] does not fit input [5,2,3]", NULL);
    NN_TEST_CHECK(nn_lstm(3, 0, o) == NULL, "hidden 0");
    reported("hidden 0", "nn_lstm: invalid sizes", "hidden_size=0");
    co.causal = 1;
    co.padding = 1;
    co.kernel = 3;
    NN_TEST_CHECK(nn_conv1d(2, 2, co) == NULL, "causal with padding");
    reported("causal with padding", "nn_conv1d: causal applies to 1-D convolutions without padding", NULL);
    co.padding = 0;
    w = nn_zeros(g, NN_SHAPE(2, 2, 3, 3));
    NN_TEST_CHECK(nn_conv2d_op(nn_zeros(g, NN_SHAPE(1, 2, 5, 5)), w, NULL, co) == NULL, "causal 2-D");
    reported("causal 2-D", "nn_conv2d_op: causal", NULL);
    {
        nn_module *cell = nn_lstm_cell(3, 4, o);
        NN_TEST_CHECK(nn_cell_forward(cell, nn_zeros(g, NN_SHAPE(2, 3)), nn_zeros(g, NN_SHAPE(2, 5)),
                                      NULL, NULL) == NULL, "cell state mismatch");
        reported("cell h", "nn_cell_forward: h has shape [2,5], expected [2,4]", NULL);
        nn_module_free(cell);
    }
    nn_set_error_hook(NULL, NULL);
    nn_module_free(lstm);
    nn_module_free(gru);
    nn_module_free(e);
}

/* A training step of a 2-layer bidirectional LSTM with lengths allocates
   nothing once warm, and gives the same bits at 1 and 2 threads. */
static void check_steady(void) {
    nn_rnn_opts o;
    nn_module *m;
    nn_tensor *x, *y, *hn, *cn;
    int len[16] = {6, 3, 5, 1, 6, 6, 2, 4, 6, 1, 5, 6, 3, 6, 6, 2}, step, count, i;
    size_t cap = 0;
    float *g1 = NULL;
    memset(&o, 0, sizeof o);
    o.num_layers = 2;
    o.bidirectional = 1;
    o.dropout = 0.0f;
    nn_seed(3);
    m = nn_lstm(5, 128, o); /* B*4H*H = 2^20 multiply-adds a step: a thread team */
    x = nn_randn(NULL, NN_SHAPE(6, 16, 5));
    for (step = 0; step < 4; step++) {
        nn_param *p = nn_parameters(m, &count);
        nn_set_threads(step < 2 ? 1 : 2);
        for (i = 0; i < count; i++) memset(p[i].tensor->grad, 0, p[i].tensor->numel * sizeof(float));
        nn_graph_reset(g);
        y = nn_rnn_forward(m, x, NULL, NULL, len, &hn, &cn);
        nn_backward(nn_add(nn_sum(nn_mul(y, y)), nn_add(nn_sum(hn), nn_sum(cn))));
        if (step == 1) {
            cap = nn_graph_capacity(g);
            g1 = (float *)malloc(p[2].tensor->numel * sizeof(float));
            memcpy(g1, p[2].tensor->grad, p[2].tensor->numel * sizeof(float));
        }
        if (step == 3) {
            NN_TEST_CHECK(nn_graph_capacity(g) == cap, "steady state: the graph did not grow");
            NN_TEST_CHECK(g1 && !memcmp(g1, p[2].tensor->grad, p[2].tensor->numel * sizeof(float)),
                          "same gradient bits at 1 and 2 threads");
        }
    }
    nn_set_threads(1);
    free(g1);
    nn_tensor_free(x);
    nn_module_free(m);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    char t[32];
    int rnn_cases = 0;
    g = nn_graph_new();
    nn_set_threads(1);
    if (gold_open(&gf, dir, "seq.txt")) {
        while (gold_tok(&gf, t, sizeof t) && strcmp(t, "end")) {
            if (!strcmp(t, "emb")) golden_emb();
            else if (!strcmp(t, "isel")) golden_isel(0);
            else if (!strcmp(t, "gather")) golden_isel(1);
            else if (!strcmp(t, "rnn")) golden_rnn(rnn_cases++ % 3 == 1);
            else if (!strcmp(t, "cell")) golden_cell();
            else if (!strcmp(t, "causal")) golden_causal();
            else if (!strcmp(t, "lstmio")) golden_lstmio(dir);
            else {
                NN_TEST_CHECK(0, "golden: unknown record %s", t);
                break;
            }
        }
        NN_TEST_CHECK(!strcmp(t, "end") && rnn_cases == 10, "golden file read to the end");
        gold_close(&gf);
    } else {
        NN_TEST_CHECK(0, "open the golden file");
    }
    check_stack_mask();
    check_embedding_module();
    check_misuse();
    check_steady();
    nn_graph_free(g);
    return nn_test_summary("test_seq");
}
