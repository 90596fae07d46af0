/* Attention and the transformer layer (>>layers.seq): scaled dot-product
   attention, multi-head attention and the encoder layer against PyTorch
   1.13 (tests/golden/attn.txt, made by make_golden_attn.py): values and
   gradients with masks, causal, broadcast batch dims and both norm orders;
   finite-difference checks (also through dropout); a PyTorch
   TransformerEncoder state_dict loaded by name reproducing its output;
   positional encodings; misuse messages.
   Run from the repository root, or pass the golden directory as argv[1]. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static nn_tensor *from_lab(nn_graph *g, const char *label, int grad) {
    gold_tensor *t = gold_label("%s", label);
    nn_tensor *x;
    if (!t) return NULL;
    x = nn_tensor_from(g, t->v, t->shape);
    if (grad) nn_requires_grad(x, 1);
    return x;
}

/* Compare n floats at a with the labelled tensor (which must exist). */
static void check_lab(const float *a, size_t n, const char *label, float tol) {
    gold_tensor *t = gold_label("%s", label);
    char what[128];
    snprintf(what, sizeof what, "%s %s", gold_case_name, label);
    NN_TEST_CHECK(t != NULL && a != NULL && t->n == n, "%s: present, %zu values", what, n);
    if (t && a && t->n == n) nn_test_close(a, t->v, n, tol, tol, what);
}

/* sum(out * w) for the labelled w, then its backward. */
static void backward_w(nn_graph *g, nn_tensor *out) {
    nn_tensor *w = from_lab(g, "w", 0);
    NN_TEST_CHECK(out && w && out->numel == w->numel, "%s: output shape", gold_case_name);
    if (out && w && out->numel == w->numel) {
        nn_status st = nn_backward(nn_sum(nn_mul(out, w)));
        NN_TEST_CHECK(st == NN_OK, "%s: backward", gold_case_name);
    }
}

/* Copy every labelled "p.<name>" into the module's parameter <name>. */
static void set_params(nn_module *m) {
    int i;
    for (i = 0; i < gold_nlab; i++)
        if (!strncmp(gold_lab_name[i], "p.", 2)) {
            nn_tensor *p = nn_param(m, gold_lab_name[i] + 2);
            NN_TEST_CHECK(p && p->numel == gold_lab_t[i].n, "%s: parameter %s", gold_case_name, gold_lab_name[i] + 2);
            if (p && p->numel == gold_lab_t[i].n) memcpy(p->data, gold_lab_t[i].v, gold_lab_t[i].n * sizeof(float));
        }
}

/* Compare every parameter's gradient with the labelled "g.<name>". */
static void check_param_grads(nn_module *m) {
    int i, n;
    nn_param *ps = nn_parameters(m, &n);
    for (i = 0; i < n; i++) {
        char lab[80];
        snprintf(lab, sizeof lab, "g.%s", ps[i].name);
        check_lab(nn_grad(ps[i].tensor), ps[i].tensor->numel, lab, 2e-4f);
    }
    NN_TEST_CHECK(n > 0, "%s: has parameters", gold_case_name);
}

static void golden_sdpa(nn_graph *g) {
    nn_tensor *q = from_lab(g, "q", 1), *k = from_lab(g, "k", 1), *v = from_lab(g, "v", 1), *o;
    gold_tensor *fl = gold_label("flags");
    nn_sdpa_opts so;
    memset(&so, 0, sizeof so);
    so.attn_mask = from_lab(g, "mask", 0);
    so.mask_is_bool = fl->v[0] != 0.0f;
    so.is_causal = fl->v[1] != 0.0f;
    so.scale = fl->v[2];
    o = nn_scaled_dot_product_attention(q, k, v, so);
    check_lab(o ? o->data : NULL, o ? o->numel : 0, "out", 1e-5f);
    NN_TEST_CHECK(o && gold_same_shape(o, gold_label("out")->shape), "%s: shape", gold_case_name);
    backward_w(g, o);
    check_lab(nn_grad(q), q->numel, "gq", 1e-4f);
    check_lab(nn_grad(k), k->numel, "gk", 1e-4f);
    check_lab(nn_grad(v), v->numel, "gv", 1e-4f);
}

static void golden_mha(nn_graph *g) {
    gold_tensor *fl = gold_label("flags");
    int self = fl->v[3] != 0.0f;
    nn_mha_opts mo;
    nn_mha_args a;
    nn_module *m;
    nn_tensor *q, *k = NULL, *v = NULL, *o;
    memset(&mo, 0, sizeof mo);
    memset(&a, 0, sizeof a);
    mo.batch_first = fl->v[2] != 0.0f;
    mo.bias = fl->v[4] != 0.0f ? 0 : -1;
    m = nn_multihead_attention((int)fl->v[0], (int)fl->v[1], mo);
    NN_TEST_CHECK(m != NULL, "%s: module", gold_case_name);
    if (!m) return;
    set_params(m);
    q = from_lab(g, "query", 1);
    a.key_padding_mask = from_lab(g, "kpm", 0);
    a.attn_mask = from_lab(g, "am", 0);
    a.attn_mask_is_float = !strcmp(gold_case_name, "mha_float_mask");
    if (self && !a.attn_mask) {
        o = nn_forward(m, q);
    } else {
        k = self ? q : from_lab(g, "key", 1);
        v = self ? q : from_lab(g, "value", 1);
        o = nn_mha_forward(m, q, k, v, &a);
    }
    check_lab(o ? o->data : NULL, o ? o->numel : 0, "out", 1e-5f);
    backward_w(g, o);
    check_lab(nn_grad(q), q->numel, "gq", 2e-4f);
    if (!self) {
        check_lab(nn_grad(k), k->numel, "gk", 2e-4f);
        check_lab(nn_grad(v), v->numel, "gv", 2e-4f);
    }
    check_param_grads(m);
    nn_module_free(m);
}

static void golden_tel(nn_graph *g) {
    gold_tensor *fl = gold_label("flags");
    nn_transformer_opts to;
    nn_module *m;
    nn_tensor *x, *o;
    memset(&to, 0, sizeof to);
    to.dropout = -1.0f;
    to.norm_first = fl->v[0] != 0.0f;
    to.gelu = fl->v[1] != 0.0f;
    to.batch_first = fl->v[2] != 0.0f;
    m = nn_transformer_encoder_layer(8, 2, 16, to);
    NN_TEST_CHECK(m != NULL, "%s: module", gold_case_name);
    if (!m) return;
    set_params(m);
    nn_train_mode(m, 0);
    x = from_lab(g, "x", 1);
    o = nn_forward(m, x);
    check_lab(o ? o->data : NULL, o ? o->numel : 0, "out", 2e-5f);
    backward_w(g, o);
    check_lab(nn_grad(x), x->numel, "gx", 2e-4f);
    check_param_grads(m);
    nn_module_free(m);
}

static void test_golden(const char *dir) {
    golden_file gf;
    nn_graph *g = nn_graph_new();
    int ncase = 0;
    NN_TEST_CHECK(gold_open(&gf, dir, "attn.txt"), "open attn.txt");
    if (!gf.f) {
        nn_graph_free(g);
        return;
    }
    while (gold_case_read(&gf)) {
        nn_graph_reset(g);
        if (!strncmp(gold_case_name, "sdpa_", 5)) golden_sdpa(g);
        else if (!strncmp(gold_case_name, "mha_", 4)) golden_mha(g);
        else golden_tel(g);
        ncase++;
    }
    NN_TEST_CHECK(ncase == 12, "read %d golden cases", ncase);
    gold_case_clear();
    gold_close(&gf);
    nn_graph_free(g);
}

/* ---- finite differences ---- */

/* d sum(sdpa(q,k,v) * w) by central differences against the backward; the
   generator is reseeded before every forward, so dropout's mask is fixed. */
static void fd_sdpa(const char *what, nn_sdpa_opts so, int L, int S, int E, int Ev) {
    nn_graph *g = nn_graph_new();
    nn_rng *r = nn_rng_new(5), *dr = nn_rng_new(1);
    nn_tensor *in[3], *w, *o;
    nn_shape sh[3];
    float *an[3];
    double worst = 0.0;
    int t, i;
    sh[0] = NN_SHAPE(2, L, E);
    sh[1] = NN_SHAPE(2, S, E);
    sh[2] = NN_SHAPE(2, S, Ev);
    so.rng = dr;
    for (t = 0; t < 3; t++) {
        in[t] = nn_zeros(NULL, sh[t]);
        for (i = 0; i < (int)in[t]->numel; i++) in[t]->data[i] = nn_rng_normal(r);
        nn_requires_grad(in[t], 1);
    }
    w = nn_zeros(NULL, NN_SHAPE(2, L, Ev));
    for (i = 0; i < (int)w->numel; i++) w->data[i] = nn_rng_normal(r);
    nn_rng_seed(dr, 9);
    o = nn_scaled_dot_product_attention(in[0], in[1], in[2], so);
    nn_backward(nn_sum(nn_mul(o, w)));
    for (t = 0; t < 3; t++) {
        an[t] = (float *)malloc(in[t]->numel * sizeof(float));
        memcpy(an[t], nn_grad(in[t]), in[t]->numel * sizeof(float));
    }
    for (t = 0; t < 3; t++)
        for (i = 0; i < (int)in[t]->numel; i++) {
            float keep = in[t]->data[i], h = 1e-2f;
            double f[2], num, err;
            int s;
            for (s = 0; s < 2; s++) {
                size_t j;
                double acc = 0.0;
                in[t]->data[i] = keep + (s ? -h : h);
                nn_graph_reset(g);
                nn_rng_seed(dr, 9);
                o = nn_scaled_dot_product_attention(in[0], in[1], in[2], so);
                for (j = 0; j < o->numel; j++) acc += (double)o->data[j] * (double)w->data[j];
                f[s] = acc;
            }
            in[t]->data[i] = keep;
            num = (f[0] - f[1]) / (2.0 * (double)h);
            err = fabs(num - (double)an[t][i]) / (1.0 + fabs(num));
            if (err > worst) worst = err;
        }
    NN_TEST_CHECK(worst < 5e-3, "gradcheck %s: worst relative error %g", what, worst);
    for (t = 0; t < 3; t++) {
        free(an[t]);
        nn_tensor_free(in[t]);
    }
    nn_tensor_free(w);
    nn_rng_free(r);
    nn_rng_free(dr);
    nn_graph_free(g);
}

static void test_gradcheck(void) {
    nn_sdpa_opts so;
    nn_graph *g = nn_graph_new();
    nn_tensor *mask = nn_zeros(NULL, NN_SHAPE(5, 6));
    int i;
    for (i = 0; i < 30; i++) mask->data[i] = (float)((i * 7) % 5) * 0.3f - 0.6f;
    memset(&so, 0, sizeof so);
    fd_sdpa("plain", so, 5, 6, 4, 3);
    so.is_causal = 1;
    so.scale = 0.7f;
    fd_sdpa("causal, scale", so, 40, 40, 3, 2);
    so.is_causal = 0;
    so.attn_mask = mask;
    fd_sdpa("float mask", so, 5, 6, 4, 3);
    so.attn_mask = NULL;
    so.dropout_p = 0.3f;
    so.is_causal = 1;
    fd_sdpa("dropout, causal", so, 6, 6, 4, 3);
    nn_tensor_free(mask);
    nn_graph_free(g);
}

/* ---- PyTorch's TransformerEncoder state dict ---- */

static void test_state_dict(const char *dir) {
    nn_transformer_opts to;
    nn_module *enc, *h;
    nn_graph *g = nn_graph_new();
    nn_load_opts lo;
    char p[600], q[600];
    nn_status st;
    memset(&to, 0, sizeof to);
    memset(&lo, 0, sizeof lo);
    to.batch_first = 1;
    to.final_norm = 1;
    enc = nn_transformer_encoder(2, 16, 4, 32, to);
    NN_TEST_CHECK(nn_param(enc, "layers.1.self_attn.in_proj_weight") != NULL &&
                  nn_param(enc, "layers.0.self_attn.out_proj.bias") != NULL &&
                  nn_param(enc, "layers.0.norm2.weight") != NULL && nn_param(enc, "norm.bias") != NULL,
                  "encoder parameter names as PyTorch's");
    h = nn_module_new("IO", NULL);
    nn_module_add_buffer(h, "input", nn_zeros(NULL, NN_SHAPE(2, 7, 16)));
    nn_module_add_buffer(h, "output", nn_zeros(NULL, NN_SHAPE(2, 7, 16)));
    snprintf(p, sizeof p, "%s/transformer.safetensors", dir);
    snprintf(q, sizeof q, "%s/transformer_io.safetensors", dir);
    st = nn_load(enc, p, lo);
    NN_TEST_CHECK(st == NN_OK, "load transformer.safetensors: %s", nn_error_string());
    st = nn_load(h, q, lo);
    NN_TEST_CHECK(st == NN_OK, "load transformer_io.safetensors: %s", nn_error_string());
    if (st == NN_OK) {
        nn_tensor *x = nn_tensor_from(g, h->buffers[0].tensor->data, NN_SHAPE(2, 7, 16)), *y;
        nn_train_mode(enc, 0);
        y = nn_forward(enc, x);
        NN_TEST_CHECK(y && y->numel == 2 * 7 * 16, "encoder output shape");
        if (y) nn_test_close(y->data, h->buffers[1].tensor->data, y->numel, 1e-5f, 1e-5f, "encoder output");
    }
    nn_module_free(h);
    nn_module_free(enc);
    nn_graph_free(g);
}

/* ---- the rest ---- */

static void test_defaults(void) {
    nn_mha_opts mo;
    nn_module *m, *pe, *lpe;
    nn_tensor *w, *b;
    nn_graph *g = nn_graph_new();
    float bound = sqrtf(6.0f / 32.0f), mx = 0.0f;
    size_t i;
    int n;
    memset(&mo, 0, sizeof mo);
    m = nn_multihead_attention(8, 2, mo);
    w = nn_param(m, "in_proj_weight");
    b = nn_param(m, "in_proj_bias");
    NN_TEST_CHECK(w && w->shape[0] == 24 && w->shape[1] == 8 && b && b->numel == 24, "in_proj shapes");
    for (i = 0; w && i < w->numel; i++) mx = fabsf(w->data[i]) > mx ? fabsf(w->data[i]) : mx;
    NN_TEST_CHECK(mx <= bound && mx > 0.7f * bound, "xavier_uniform bound %g, max %g", (double)bound, (double)mx);
    nn_parameters(m, &n);
    NN_TEST_CHECK(n == 4 && nn_param(m, "out_proj.weight") && nn_item(nn_sum(nn_param(m, "out_proj.bias"))) == 0.0f &&
                  nn_item(nn_sum(b)) == 0.0f, "4 parameters, zero biases");
    nn_module_free(m);
    /* Sinusoidal: pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos. */
    pe = nn_sinusoidal_positional_encoding(6, 10, 0);
    lpe = nn_learned_positional_encoding(6, 10, 1);
    {
        nn_tensor *x = nn_zeros(g, NN_SHAPE(4, 2, 6)), *y = nn_forward(pe, x);
        nn_tensor *xb = nn_zeros(g, NN_SHAPE(2, 4, 6)), *yb = nn_forward(lpe, xb);
        NN_TEST_CHECK(y && fabsf(y->data[(3 * 2 + 1) * 6 + 2] - sinf(3.0f / powf(10000.0f, 2.0f / 6.0f))) < 1e-6f &&
                      fabsf(y->data[(3 * 2 + 1) * 6 + 3] - cosf(3.0f / powf(10000.0f, 2.0f / 6.0f))) < 1e-6f,
                      "sinusoidal values");
        NN_TEST_CHECK(yb && yb->data[(1 * 4 + 2) * 6 + 5] == nn_param(lpe, "weight")->data[2 * 6 + 5],
                      "learned encoding adds weight[p]");
        NN_TEST_CHECK(nn_param(pe, "pe") && nn_parameter_count(pe) == 0 && nn_parameter_count(lpe) == 60,
                      "pe is a buffer, weight a parameter");
    }
    nn_module_free(pe);
    nn_module_free(lpe);
    nn_graph_free(g);
}

static void test_misuse(void) {
    nn_mha_opts mo;
    nn_transformer_opts to;
    nn_sdpa_opts so;
    nn_graph *g = nn_graph_new();
    nn_module *m, *pe;
    nn_tensor *q = nn_zeros(g, NN_SHAPE(2, 3, 4)), *k = nn_zeros(g, NN_SHAPE(2, 5, 3)), *o;
    memset(&mo, 0, sizeof mo);
    memset(&to, 0, sizeof to);
    memset(&so, 0, sizeof so);
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_test_clear_msgs();
    m = nn_multihead_attention(10, 3, mo);
    NN_TEST_CHECK(!m && strstr(nn_test_msg, "nn_multihead_attention: num_heads=3 must divide embed_dim=10"),
                  "heads not dividing: %s", nn_test_msg);
    m = nn_transformer_encoder_layer(10, 4, 16, to);
    NN_TEST_CHECK(!m && strstr(nn_test_msg, "nn_transformer_encoder_layer: nhead=4 must divide d_model=10"),
                  "layer heads: %s", nn_test_msg);
    o = nn_scaled_dot_product_attention(q, k, k, so);
    NN_TEST_CHECK(!o && strstr(nn_test_msg, "nn_scaled_dot_product_attention: q [2,3,4], k [2,5,3] and v [2,5,3] do not fit"),
                  "sdpa shapes: %s", nn_test_msg);
    so.attn_mask = nn_zeros(g, NN_SHAPE(4, 5));
    o = nn_scaled_dot_product_attention(q, q, q, so);
    NN_TEST_CHECK(!o && strstr(nn_test_msg, "attn_mask [4,5] does not broadcast to the scores [batch...,3,3]"),
                  "sdpa mask: %s", nn_test_msg);
    m = nn_multihead_attention(4, 2, mo);
    o = nn_forward(m, nn_zeros(g, NN_SHAPE(3, 2, 5)));
    NN_TEST_CHECK(!o && !strncmp(nn_test_msg, "nn_forward(MultiheadAttention): query [3,2,5], key", 50),
                  "mha input: %s", nn_test_msg);
    {
        nn_mha_args a;
        memset(&a, 0, sizeof a);
        a.key_padding_mask = nn_zeros(g, NN_SHAPE(3, 3));
        o = nn_mha_forward(m, q, k, k, &a);
        NN_TEST_CHECK(!o && strstr(nn_test_msg, "nn_mha_forward: query [2,3,4], key [2,5,3], value [2,5,3], want [L,N,E], [S,N,E], [S,N,E] with E=4"),
                      "mha E: %s", nn_test_msg);
        q = nn_zeros(g, NN_SHAPE(3, 2, 4));
        o = nn_mha_forward(m, q, q, q, &a);
        NN_TEST_CHECK(!o && strstr(nn_test_msg, "nn_mha_forward: key_padding_mask [3,3], want [2,3]"),
                      "mha kpm: %s", nn_test_msg);
    }
    pe = nn_sinusoidal_positional_encoding(4, 2, 0);
    o = nn_forward(pe, q);
    NN_TEST_CHECK(!o && strstr(nn_test_msg, "nn_forward(PositionalEncoding): x [3,2,4], want [L,N,d] with d=4 and L at most max_len=2"),
                  "posenc: %s", nn_test_msg);
    nn_set_error_hook(NULL, NULL);
    nn_module_free(pe);
    nn_module_free(m);
    nn_graph_free(g);
}

/* Self-attention (q = k = v) trains: the gradient of a shared input sums its
   three uses, checked through nn_forward against separate copies. */
static void test_shared_input(void) {
    nn_graph *g = nn_graph_new();
    nn_mha_opts mo;
    nn_module *m;
    nn_tensor *x, *x2, *y1, *y2;
    float *g1;
    size_t i;
    memset(&mo, 0, sizeof mo);
    mo.batch_first = 1;
    m = nn_multihead_attention(8, 2, mo);
    x = nn_requires_grad(nn_randn(g, NN_SHAPE(2, 5, 8)), 1);
    y1 = nn_forward(m, x);
    nn_backward(nn_sum(nn_mul(y1, y1)));
    g1 = (float *)malloc(x->numel * sizeof(float));
    memcpy(g1, nn_grad(x), x->numel * sizeof(float));
    x2 = nn_requires_grad(nn_tensor_from(g, x->data, nn_shape_of(x)), 1);
    {
        nn_tensor *k = nn_requires_grad(nn_tensor_from(g, x->data, nn_shape_of(x)), 1);
        nn_tensor *v = nn_requires_grad(nn_tensor_from(g, x->data, nn_shape_of(x)), 1);
        y2 = nn_mha_forward(m, x2, k, v, NULL);
        nn_test_close(y2->data, y1->data, y1->numel, 1e-5f, 1e-6f, "self-attention value");
        nn_backward(nn_sum(nn_mul(y2, y2)));
        for (i = 0; i < x->numel; i++) nn_grad(x2)[i] += nn_grad(k)[i] + nn_grad(v)[i];
        nn_test_close(nn_grad(x2), g1, x->numel, 1e-4f, 1e-5f, "self-attention gradient");
    }
    free(g1);
    nn_module_free(m);
    nn_graph_free(g);
}

/* 1 and 2 threads give the same values and gradients (the batches split
   between the threads; a batch big enough to use a team). */
static void test_threads(void) {
    nn_graph *g = nn_graph_new();
    nn_sdpa_opts so;
    float *ref[4] = {NULL, NULL, NULL, NULL};
    int th, t;
    memset(&so, 0, sizeof so);
    so.is_causal = 1;
    for (th = 1; th <= 2; th++) {
        nn_tensor *in[3], *o;
        nn_graph_reset(g);
        nn_set_threads(th);
        nn_seed(11);
        for (t = 0; t < 3; t++) in[t] = nn_requires_grad(nn_randn(g, NN_SHAPE(4, 64, 72)), 1);
        o = nn_scaled_dot_product_attention(in[0], in[1], in[2], so);
        nn_backward(nn_sum(nn_mul(o, o)));
        for (t = 0; t < 4; t++) {
            const float *d = t < 3 ? nn_grad(in[t]) : o->data;
            size_t n = t < 3 ? in[t]->numel : o->numel;
            if (th == 1) {
                ref[t] = (float *)malloc(n * sizeof(float));
                memcpy(ref[t], d, n * sizeof(float));
            } else {
                NN_TEST_CHECK(memcmp(ref[t], d, n * sizeof(float)) == 0, "threads: %s identical",
                              t < 3 ? "gradient" : "output");
            }
        }
    }
    nn_set_threads(0);
    for (t = 0; t < 4; t++) free(ref[t]);
    nn_graph_free(g);
}

/* MHA's is_causal equals a bool attn_mask over j > i; dropout in training
   changes the output, evaluation does not; the encoder stack passes masks. */
static void test_mha_modes(void) {
    nn_graph *g = nn_graph_new();
    nn_mha_opts mo;
    nn_mha_args a;
    nn_transformer_opts to;
    nn_module *m, *enc;
    nn_tensor *x, *am, *y1, *y2, *y3;
    int i, j, differ = 0;
    memset(&mo, 0, sizeof mo);
    memset(&a, 0, sizeof a);
    memset(&to, 0, sizeof to);
    mo.dropout = 0.5f;
    m = nn_multihead_attention(8, 2, mo);
    x = nn_randn(g, NN_SHAPE(6, 2, 8));
    am = nn_zeros(g, NN_SHAPE(6, 6));
    for (i = 0; i < 6; i++)
        for (j = i + 1; j < 6; j++) am->data[i * 6 + j] = 1.0f;
    nn_train_mode(m, 0);
    a.is_causal = 1;
    y1 = nn_mha_forward(m, x, x, x, &a);
    a.is_causal = 0;
    a.attn_mask = am;
    y2 = nn_mha_forward(m, x, x, x, &a);
    nn_test_close(y1->data, y2->data, y1->numel, 1e-5f, 1e-6f, "is_causal = bool attn_mask");
    nn_train_mode(m, 1);
    y3 = nn_mha_forward(m, x, x, x, &a);
    for (i = 0; i < (int)y3->numel; i++) differ += y3->data[i] != y2->data[i];
    NN_TEST_CHECK(differ > (int)y3->numel / 2, "dropout in training changes %d of %d", differ, (int)y3->numel);
    nn_module_free(m);
    to.dropout = -1.0f;
    enc = nn_transformer_encoder(2, 8, 2, 16, to);
    nn_train_mode(enc, 0);
    a.attn_mask = NULL;
    a.is_causal = 1;
    y1 = nn_transformer_encoder_forward(enc, x, &a);
    {
        /* Causal: the first position's output depends on the first input only. */
        nn_tensor *x2 = nn_tensor_from(g, x->data, nn_shape_of(x));
        for (i = 16; i < (int)x2->numel; i++) x2->data[i] += 1.0f;
        y2 = nn_transformer_encoder_forward(enc, x2, &a);
        nn_test_close(y2->data, y1->data, 16, 1e-5f, 1e-6f, "causal encoder: position 0 ignores later inputs");
        y3 = nn_forward(enc, x2);
        NN_TEST_CHECK(y3 && fabsf(y3->data[0] - y1->data[0]) > 1e-4f, "without the mask position 0 sees them");
    }
    nn_test_clear_msgs();
    nn_set_error_hook(nn_test_record_hook, NULL);
    NN_TEST_CHECK(!nn_transformer_encoder(0, 8, 2, 16, to) &&
                  strstr(nn_test_msg, "nn_transformer_encoder: num_layers=0 must be positive"),
                  "num_layers: %s", nn_test_msg);
    nn_set_error_hook(NULL, NULL);
    nn_module_free(enc);
    nn_graph_free(g);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    nn_seed(3);
    test_golden(dir);
    test_gradcheck();
    test_state_dict(dir);
    test_defaults();
    test_misuse();
    test_shared_input();
    test_threads();
    test_mha_modes();
    return nn_test_summary("test_attn");
}
