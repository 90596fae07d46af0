/* Recurrent layers on a thread team: RNN (tanh and ReLU), LSTM and GRU
   layers and cells, forward and backward, give the same bits at 1 and 2
   threads, and the batches from 32 also at 4 (the steps run on one team,
   each member owning a group of the samples, a slice of the hidden units,
   or both: batches under 32 split the units at 2 threads, from 32 the
   samples, and at 4 threads a batch of 32 to 63 both ways).  Shapes are above the team threshold, with hidden
   sizes that are not a multiple of the GEMM panel width, uneven sample
   groups, 2 layers, both directions, batch_first, lengths and initial
   states.  Without OpenMP the runs are the same serial code (the check
   still holds). */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_graph *g;

typedef struct tcase {
    const char *name;
    int kind; /* 0 RNN, 1 LSTM, 2 GRU */
    int I, H, T, B, layers, bidir, bf, relu, lens, states, cell;
} tcase;

/* Floats of every result a run copies out, at most. */
#define RES_MAX 400000

static void zero_grad(nn_tensor *t) {
    if (t && t->grad) memset(t->grad, 0, t->numel * sizeof(float));
}

/* Append n floats (none when p is NULL) to res at *k. */
static void put(float *res, size_t *k, const float *p, size_t n) {
    if (!p || *k + n > RES_MAX) return;
    memcpy(res + *k, p, n * sizeof(float));
    *k += n;
}

/* One forward and backward of case c on nt threads; the outputs, states and
   every gradient go to res; returns how many floats. */
static size_t run(const tcase *c, nn_module *m, nn_tensor *x, nn_tensor *h0, nn_tensor *c0,
                  const int *len, int nt, float *res) {
    nn_tensor *y, *hn = NULL, *cn = NULL, *loss;
    nn_param *p;
    int count, i;
    size_t k = 0;
    nn_set_threads(nt);
    p = nn_parameters(m, &count);
    for (i = 0; i < count; i++) zero_grad(p[i].tensor);
    zero_grad(x);
    zero_grad(h0);
    zero_grad(c0);
    nn_graph_reset(g);
    if (c->cell) {
        y = nn_cell_forward(m, x, h0, c0, c->kind == 1 ? &cn : NULL);
        loss = nn_sum(nn_mul(y, y));
        if (cn) loss = nn_add(loss, nn_sum(cn));
    } else {
        y = nn_rnn_forward(m, x, h0, c0, len, &hn, c->kind == 1 ? &cn : NULL);
        loss = nn_add(nn_sum(nn_mul(y, y)), nn_sum(hn));
        if (cn) loss = nn_add(loss, nn_sum(nn_mul(cn, cn)));
    }
    NN_TEST_CHECK(loss && nn_backward(loss) == NN_OK, "%s: forward and backward at %d threads",
                  c->name, nt);
    if (!loss) return 0;
    put(res, &k, y->data, y->numel);
    if (hn) put(res, &k, hn->data, hn->numel);
    if (cn) put(res, &k, cn->data, cn->numel);
    put(res, &k, x->grad, x->numel);
    if (h0) put(res, &k, h0->grad, h0->numel);
    if (c0) put(res, &k, c0->grad, c0->numel);
    for (i = 0; i < count; i++) put(res, &k, p[i].tensor->grad, p[i].tensor->numel);
    return k;
}

static void check_case(const tcase *c) {
    nn_rnn_opts o;
    nn_module *m;
    nn_tensor *x, *h0 = NULL, *c0 = NULL;
    int len[64], b, S = c->layers * (c->bidir ? 2 : 1);
    float *r1 = (float *)malloc(RES_MAX * sizeof(float)), *r2 = (float *)malloc(RES_MAX * sizeof(float));
    size_t n1, n2, i, nonzero = 0;
    memset(&o, 0, sizeof o);
    o.num_layers = c->cell ? 0 : c->layers;
    o.bidirectional = c->bidir;
    o.batch_first = c->bf;
    o.relu = c->relu;
    nn_seed(7);
    if (c->cell)
        m = c->kind == 0 ? nn_rnn_cell(c->I, c->H, o) : c->kind == 1 ? nn_lstm_cell(c->I, c->H, o)
                                                                    : nn_gru_cell(c->I, c->H, o);
    else
        m = c->kind == 0 ? nn_rnn(c->I, c->H, o) : c->kind == 1 ? nn_lstm(c->I, c->H, o)
                                                               : nn_gru(c->I, c->H, o);
    if (c->cell) {
        x = nn_requires_grad(nn_randn(NULL, NN_SHAPE(c->B, c->I)), 1);
        h0 = nn_requires_grad(nn_randn(NULL, NN_SHAPE(c->B, c->H)), 1);
        if (c->kind == 1) c0 = nn_requires_grad(nn_randn(NULL, NN_SHAPE(c->B, c->H)), 1);
    } else {
        x = nn_requires_grad(nn_randn(NULL, c->bf ? NN_SHAPE(c->B, c->T, c->I) : NN_SHAPE(c->T, c->B, c->I)), 1);
        if (c->states) {
            h0 = nn_requires_grad(nn_randn(NULL, NN_SHAPE(S, c->B, c->H)), 1);
            if (c->kind == 1) c0 = nn_requires_grad(nn_randn(NULL, NN_SHAPE(S, c->B, c->H)), 1);
        }
    }
    for (b = 0; b < c->B; b++) len[b] = 1 + (b * 7 + 3) % c->T; /* 1..T, T among them */
    len[0] = c->T;
    n1 = run(c, m, x, h0, c0, c->lens ? len : NULL, 1, r1);
    n2 = run(c, m, x, h0, c0, c->lens ? len : NULL, 2, r2);
    for (i = 0; i < n1; i++) nonzero += r1[i] != 0.0f;
    NN_TEST_CHECK(n1 > 0 && n1 == n2 && nonzero > n1 / 2, "%s: %zu results (%zu nonzero), %zu at 2 threads",
                  c->name, n1, nonzero, n2);
    NN_TEST_CHECK(n1 == n2 && !memcmp(r1, r2, n1 * sizeof(float)),
                  "%s: the same bits at 1 and 2 threads", c->name);
    if (c->B >= 32) { /* 4 threads: sample groups times unit slices */
        n2 = run(c, m, x, h0, c0, c->lens ? len : NULL, 4, r2);
        NN_TEST_CHECK(n1 == n2 && !memcmp(r1, r2, n1 * sizeof(float)),
                      "%s: the same bits at 1 and 4 threads", c->name);
    }
    n2 = run(c, m, x, h0, c0, c->lens ? len : NULL, 1, r2); /* and again alone: nothing left over */
    NN_TEST_CHECK(n1 == n2 && !memcmp(r1, r2, n1 * sizeof(float)), "%s: the same bits on a rerun", c->name);
    free(r1);
    free(r2);
    nn_tensor_free(x);
    nn_tensor_free(h0);
    nn_tensor_free(c0);
    nn_module_free(m);
}

int main(void) {
    /* B*G*H*H at least 2^18 multiply-adds a step (a team), H not a
       multiple of 32 (ragged last panel and gate lanes) */
    static const tcase cases[] = {
        /* name                 kind  I   H   T   B  L bi bf relu lens st cell */
        {"lstm",                 1,  6,  72, 5, 16, 1, 0, 0, 0,   0,   0, 0},
        {"lstm 2-layer bidir",   1,  6,  72, 4, 16, 2, 1, 0, 0,   1,   1, 0},
        {"lstm batch_first",     1,  5,  80, 4, 13, 1, 0, 1, 0,   1,   1, 0},
        {"gru bidir",            2,  6,  72, 4, 20, 1, 1, 0, 0,   1,   1, 0},
        {"gru batch_first",      2,  4, 100, 3, 10, 2, 0, 1, 0,   0,   1, 0},
        {"rnn tanh",             0,  6, 136, 4, 16, 1, 1, 0, 0,   1,   1, 0},
        {"rnn relu batch_first", 0,  3, 136, 4, 16, 1, 0, 1, 1,   1,   0, 0},
        {"lstm sample groups",   1,  6,  48, 4, 33, 1, 0, 0, 0,   1,   1, 0},
        {"gru groups bidir bf",  2,  5,  56, 3, 36, 1, 1, 1, 0,   1,   1, 0},
        {"rnn relu groups",      0,  4, 100, 3, 40, 2, 0, 0, 1,   1,   0, 0},
        {"lstm cell",            1,  6,  72, 1, 16, 1, 0, 0, 0,   0,   1, 1},
        {"gru cell",             2,  6,  72, 1, 20, 1, 0, 0, 0,   0,   1, 1},
    };
    size_t i;
    g = nn_graph_new();
    nn_set_adaptive_threads(0); /* keep the team on a busy machine: the bits must not care */
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
    nn_set_threads(1);
    nn_graph_free(g);
    return nn_test_summary("test_rnnmt");
}
