/* Int8 weights (nn_quantize, >>layers.quant) and their kernels
   (>>kernels.int8): nn_gemm_s8 against nn_gemm_s8_ref bitwise for M = 1..11,
   odd N and K (K below, at and past the vector widths 16, 32, 64), padded
   strides; nn_quantize_s8's error within scale/2; a quantized MLP and CNN
   (Conv2d, Conv1d with padding, stride, dilation) against the float model
   they came from, in both modes; save and load through a safetensors buffer
   (I8 weights, bitwise the same outputs); misuse (quantize twice, training
   or gradients through a quantized module, a float file into a quantized
   model); the int8 forward against the dequantized float op, the fused
   ReLU against the unfused one, weights changed after nn_quantize (in
   place, by a load); the speed rule that keeps a tiny convolution float
   (and small_conv, which converts it); the samples split over 2 threads,
   bitwise the 1-thread outputs.  Build it per ISA: -march=native (AVX-512 VNNI here),
   -march=haswell (AVX2), -DNN_NO_SIMD, aarch64 with +dotprod (NEON). */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

static int8_t *rand_s8(size_t n) {
    int8_t *p = (int8_t *)malloc(n ? n : 1);
    size_t i;
    for (i = 0; i < n; i++) p[i] = (int8_t)((int)nn_rand_below(255) - 127);
    return p;
}

static void test_gemm(void) {
    static const int Ns[] = {1, 3, 5, 7, 13, 37, 70}, Ks[] = {1, 15, 17, 31, 33, 63, 65, 131, 784};
    int M, a, b, bad = 0, cases = 0;
    for (M = 1; M <= 11; M += M < 8 ? 1 : 3)
        for (a = 0; a < (int)(sizeof Ns / sizeof Ns[0]); a++)
            for (b = 0; b < (int)(sizeof Ks / sizeof Ks[0]); b++) {
                int N = Ns[a], K = Ks[b], lda = K + 3, ldb = K + (b & 1), ldc = N + 2, i;
                int8_t *A = rand_s8((size_t)M * lda), *B = rand_s8((size_t)N * ldb);
                int32_t *C = (int32_t *)malloc(sizeof(int32_t) * (size_t)M * ldc);
                int32_t *R = (int32_t *)malloc(sizeof(int32_t) * (size_t)M * ldc);
                for (i = 0; i < M * ldc; i++) C[i] = R[i] = -7;
                nn_gemm_s8(M, N, K, A, lda, B, ldb, C, ldc);
                nn_gemm_s8_ref(M, N, K, A, lda, B, ldb, R, ldc);
                if (memcmp(C, R, sizeof(int32_t) * (size_t)M * ldc) != 0) {
                    if (!bad) printf("  nn_gemm_s8 differs at M=%d N=%d K=%d\n", M, N, K);
                    bad++;
                }
                cases++;
                free(A);
                free(B);
                free(C);
                free(R);
            }
    NN_TEST_CHECK(bad == 0, "nn_gemm_s8 == nn_gemm_s8_ref bitwise in %d of %d cases", cases - bad, cases);
    {   /* extremes: every product 127 * 127 or -127 * 127, K = 1000 */
        int8_t A[2 * 1000], B[3 * 1000];
        int32_t C[6], R[6];
        int i;
        for (i = 0; i < 2000; i++) A[i] = (int8_t)(i < 1000 ? 127 : -127);
        for (i = 0; i < 3000; i++) B[i] = (int8_t)(i < 2000 ? 127 : -127);
        nn_gemm_s8(2, 3, 1000, A, 1000, B, 1000, C, 3);
        nn_gemm_s8_ref(2, 3, 1000, A, 1000, B, 1000, R, 3);
        NN_TEST_CHECK(memcmp(C, R, sizeof C) == 0 && C[0] == 16129000 && C[5] == 16129000 && C[2] == -16129000,
                      "extremes exact: %d %d %d", (int)C[0], (int)C[2], (int)C[5]);
    }
}

static void test_quantize_s8(void) {
    float x[101];
    int8_t q[101];
    float s, worst = 0.0f;
    int i, inrange = 1;
    for (i = 0; i < 101; i++) x[i] = 3.0f * nn_rand_normal();
    x[17] = -9.5f;
    s = nn_quantize_s8(x, 101, q);
    NN_TEST_CHECK(s == 9.5f / 127.0f && q[17] == -127, "scale max|x|/127: %g, q[17] = %d", (double)s, q[17]);
    for (i = 0; i < 101; i++) {
        float e = fabsf(x[i] - (float)q[i] * s);
        worst = e > worst ? e : worst;
        if (q[i] < -127) inrange = 0;
    }
    NN_TEST_CHECK(worst <= 0.5f * s * 1.0001f && inrange, "|x - q s| <= s/2: worst %g, s/2 %g", (double)worst,
                  (double)(0.5f * s));
    memset(x, 0, sizeof x);
    s = nn_quantize_s8(x, 101, q);
    NN_TEST_CHECK(s == 1.0f && q[0] == 0 && q[100] == 0, "all zeros: scale 1, q 0");
    {   /* scale 1 (max 127): every half is a tie, rounded away from 0, in the vector lanes and the tail */
        float t[1003];
        int8_t tq[1003];
        int bad = 0;
        for (i = 0; i < 1003; i++) t[i] = (float)(i % 255 - 127) * 0.5f + (i % 7 == 3 ? 0.25f : 0.0f);
        t[5] = 127.0f;
        t[6] = -0.0f;
        s = nn_quantize_s8(t, 1003, tq);
        for (i = 0; i < 1003; i++) {
            float v = t[i];
            int want = (int)(v >= 0.0f ? v + 0.5f : v - 0.5f);
            bad += tq[i] != want;
        }
        NN_TEST_CHECK(s == 1.0f && bad == 0, "ties round away from 0 on every path: scale %g, %d wrong", (double)s, bad);
    }
}

static nn_module *make_mlp(void) {
    return nn_sequential(nn_linear(20, 33), nn_relu(), nn_linear(33, 17), nn_relu(), nn_linear(17, 5), NULL);
}
static nn_module *make_cnn(void) {
    nn_conv_opts c1, c2;
    nn_pool_opts p;
    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    memset(&p, 0, sizeof p);
    c1.kernel = 3;
    c1.padding = 1;
    c2.kernel = 3;
    c2.stride = 2;
    c2.dilation = 2;
    c2.no_bias = 1;
    p.kernel = 2;
    return nn_sequential(nn_conv2d(3, 8, c1), nn_relu(), nn_maxpool2d(p), nn_conv2d(8, 6, c2), nn_relu(),
                         nn_flatten(), nn_linear(6 * 2 * 2, 4), NULL);
}

/* max |a - b| / max |b|. */
static float rel_err(const nn_tensor *a, const nn_tensor *b) {
    float d = 0.0f, m = 0.0f;
    size_t i;
    for (i = 0; i < b->numel; i++) {
        float e = fabsf(a->data[i] - b->data[i]), v = fabsf(b->data[i]);
        d = e > d ? e : d;
        m = v > m ? v : m;
    }
    return d / (m > 0.0f ? m : 1.0f);
}

/* The model's output for x (copied into g's current step). */
static nn_tensor *run(nn_module *m, nn_graph *g, const float *x, nn_shape s) {
    return nn_forward(m, nn_tensor_from(g, x, s));
}

/* The float computation the int8 forward must match to round-off: the
   input quantized per tensor and the weight dequantized (xq sx, Wq s_w),
   through the float op (conv or linear), then ReLU with relu. */
static nn_tensor *dequant_ref(nn_module *q, nn_graph *g, const float *x, nn_shape s, int conv, int dims,
                              nn_conv_opts co, int relu) {
    nn_tensor *w = nn_param_get(q, "weight"), *sc = nn_param_get(q, "scale"), *b = nn_param_get(q, "bias");
    nn_tensor *xt = nn_tensor_from(g, x, s), *wf = nn_zeros(g, nn_shape_of(w)), *y;
    int8_t *xq = (int8_t *)malloc(xt->numel);
    size_t i, K = w->numel / (size_t)w->shape[0];
    float sx = nn_quantize_s8(xt->data, xt->numel, xq);
    for (i = 0; i < xt->numel; i++) xt->data[i] = (float)xq[i] * sx;
    for (i = 0; i < w->numel; i++) wf->data[i] = (float)((const int8_t *)(const void *)w->data)[i] * sc->data[i / K];
    free(xq);
    y = !conv ? nn_linear_op(xt, wf, b) : dims == 2 ? nn_conv2d_op(xt, wf, b, co) : nn_conv1d_op(xt, wf, b, co);
    return relu ? nn_relu_op(y) : y;
}

/* The int8 forward (the packed kernels, the NHWC panels of a convolution,
   the rescale with a fused ReLU) against dequant_ref, for odd shapes;
   then the weight bytes changed in place (nn_module_changed): the packed
   copy follows. */
static void test_reference(void) {
    nn_graph *g = nn_graph_new();
    float x[2 * 72 * 13 * 11];
    int cse, i, ok_all = 1;
    nn_quantize_opts o;
    memset(&o, 0, sizeof o);
    o.small_conv = 1; /* the int8 convolutions, also the tiny ones */
    for (i = 0; i < (int)(sizeof x / sizeof x[0]); i++) x[i] = nn_rand_normal();
    nn_set_grad_enabled(g, 0);
    for (cse = 0; cse < 8; cse++) {
        nn_conv_opts co;
        nn_module *layer, *net;
        nn_shape s;
        int conv = cse >= 2, dims = cse == 6 ? 1 : 2, relu = cse & 1, pass;
        memset(&co, 0, sizeof co);
        co.kernel = 3;
        if (cse == 0 || cse == 1) { /* Linear 77 -> 70 (5 panels), rows 2 and 5 */
            layer = nn_linear(77, 70);
            s = cse ? NN_SHAPE(5, 77) : NN_SHAPE(2, 77);
        } else {
            if (cse == 2) co.kernel = 5;                   /* C = 5: a 25-byte segment (padded to 28) */
            if (cse == 3) co.padding = 2, co.stride = 2;   /* padding and stride */
            if (cse == 4) co.dilation = 2, co.padding = 1; /* dilated: one segment per tap */
            if (cse == 5) co.no_bias = 1, co.kernel = 1;
            if (cse == 6) co.causal = 1, co.dilation = 2;  /* Conv1d */
            if (cse == 7) co.padding = 1;                  /* C = 72: 18 groups of 4 channels, 216-byte segments */
            layer = dims == 2 ? nn_conv2d(cse == 7 ? 72 : 5, 19, co) : nn_conv1d(5, 19, co);
            s = dims == 2 ? NN_SHAPE(2, cse == 7 ? 72 : 5, 13, 11) : NN_SHAPE(2, 5, 143);
        }
        net = relu ? nn_sequential(layer, nn_relu(), NULL) : nn_sequential(layer, NULL);
        nn_quantize(net, o);
        for (pass = 0; pass < 2; pass++) {
            nn_tensor *yq, *yr;
            float e;
            nn_graph_reset(g);
            yq = run(net, g, x, s);
            yr = dequant_ref(nn_child(net, "0"), g, x, s, conv, dims, co, relu);
            e = yq && yr && yq->numel == yr->numel ? rel_err(yq, yr) : 1.0f;
            if (!(e < 1e-4f)) {
                printf("  case %d pass %d: int8 forward vs dequantized float: %g\n", cse, pass, (double)e);
                ok_all = 0;
            }
            if (pass == 0) { /* new weights: every byte negated, one row zeroed */
                nn_tensor *w = nn_param_get(net, "0.weight");
                int8_t *q = (int8_t *)(void *)w->data;
                size_t k;
                for (k = 0; k < w->numel; k++) q[k] = (int8_t)-q[k];
                memset(q, 0, w->numel / (size_t)w->shape[0]);
                nn_module_changed(net);
            }
        }
        nn_module_free(net);
    }
    NN_TEST_CHECK(ok_all, "int8 Linear/Conv2d/Conv1d (padding, stride, dilation, causal, fused ReLU) == the "
                  "dequantized float op to round-off, also after the weights changed");
    nn_graph_free(g);
}

/* nn_sequential's fused Linear->ReLU / Conv->ReLU (gradients off) against
   the children run one by one: the same bits. */
static void test_fused(void) {
    nn_graph *g = nn_graph_new();
    float x[2 * 3 * 14 * 14];
    nn_quantize_opts o;
    int i, m, same = 1;
    memset(&o, 0, sizeof o);
    o.small_conv = 1; /* the int8 convolutions, also the tiny ones */
    for (i = 0; i < 2 * 3 * 14 * 14; i++) x[i] = nn_rand_uniform() - 0.3f;
    nn_set_grad_enabled(g, 0);
    for (m = 0; m < 2; m++) {
        nn_module *net = m ? make_cnn() : make_mlp();
        nn_shape s = m ? NN_SHAPE(2, 3, 14, 14) : NN_SHAPE(6, 20);
        nn_tensor *yf, *y;
        nn_quantize(net, o);
        nn_graph_reset(g);
        yf = run(net, g, x, s);
        y = nn_tensor_from(g, x, s);
        for (i = 0; i < net->nchildren && y; i++) y = nn_forward(net->children[i], y);
        same &= yf && y && yf->numel == y->numel && memcmp(yf->data, y->data, sizeof(float) * y->numel) == 0;
        nn_module_free(net);
    }
    NN_TEST_CHECK(same, "fused quantized layer -> ReLU == unfused, bitwise (MLP and CNN)");
    nn_graph_free(g);
}

static void test_models(void) {
    nn_graph *g = nn_graph_new();
    float x[2 * 3 * 14 * 14];
    nn_shape sm = NN_SHAPE(6, 20), sc = NN_SHAPE(2, 3, 14, 14);
    int i, mode;
    for (i = 0; i < 2 * 3 * 14 * 14; i++) x[i] = nn_rand_uniform();
    nn_set_grad_enabled(g, 0);
    for (mode = 0; mode < 2; mode++) {
        nn_module *f, *q;
        nn_tensor *yf, *yq;
        nn_quantize_opts o;
        int np = -1, n;
        memset(&o, 0, sizeof o);
        o.small_conv = 1; /* the int8 convolutions, also the tiny ones */
        o.mode = mode ? NN_QUANT_WEIGHT_ONLY : NN_QUANT_DYNAMIC;
        /* MLP: the same initialization twice (one seed), one quantized */
        nn_seed(5);
        f = make_mlp();
        nn_seed(5);
        q = make_mlp();
        nn_train_mode(f, 0);
        n = nn_quantize(q, o);
        nn_parameters(q, &np);
        NN_TEST_CHECK(n == 3 && np == 0 && nn_is_quantized(nn_child(q, "0")) &&
                      strcmp(nn_child(q, "4")->type, "QuantizedLinear") == 0,
                      "mode %d: 3 Linear converted (%d), no parameters left (%d)", mode, n, np);
        NN_TEST_CHECK(nn_param_get(q, "0.weight") && (nn_param_get(q, "0.weight")->flags & NN_TENSOR_INT8) &&
                      nn_param_get(q, "2.scale") && nn_param_get(q, "2.scale")->numel == 17,
                      "buffers weight (int8) and scale [out]");
        nn_graph_reset(g);
        yf = run(f, g, x, sm);
        yq = run(q, g, x, sm);
        NN_TEST_CHECK(yq && yq->ndim == 2 && yq->shape[1] == 5 && rel_err(yq, yf) < (mode ? 0.02f : 0.04f),
                      "mode %d: MLP within bound of float: %g", mode, yq ? (double)rel_err(yq, yf) : -1.0);
        nn_module_free(f);
        nn_module_free(q);
        /* CNN, the last Linear kept in float by name */
        {
            static const char *const skip[] = {"6", NULL};
            nn_seed(6);
            f = make_cnn();
            nn_seed(6);
            q = make_cnn();
            nn_train_mode(f, 0);
            o.skip = skip;
            n = nn_quantize(q, o);
            NN_TEST_CHECK(n == 2 && !nn_is_quantized(nn_child(q, "6")) &&
                              strcmp(nn_child(q, "3")->type, "QuantizedConv2d") == 0,
                          "mode %d: 2 Conv2d converted, Linear \"6\" skipped (%d)", mode, n);
            nn_train_mode(q, 0);
            nn_graph_reset(g);
            yf = run(f, g, x, sc);
            yq = run(q, g, x, sc);
            NN_TEST_CHECK(yq && yq->shape[0] == 2 && yq->shape[1] == 4 && rel_err(yq, yf) < (mode ? 0.02f : 0.05f),
                          "mode %d: CNN within bound of float: %g", mode, yq ? (double)rel_err(yq, yf) : -1.0);
            nn_module_free(f);
            nn_module_free(q);
        }
    }
    {   /* Conv1d with padding, stride and a causal one, against float */
        nn_conv_opts c1, c2;
        nn_module *f, *q;
        nn_tensor *yf, *yq;
        nn_quantize_opts o;
        memset(&c1, 0, sizeof c1);
        memset(&c2, 0, sizeof c2);
        memset(&o, 0, sizeof o);
        o.small_conv = 1; /* the int8 convolutions, also the tiny ones */
        c1.kernel = 5;
        c1.padding = 2;
        c1.stride = 2;
        c2.kernel = 3;
        c2.causal = 1;
        c2.dilation = 2;
        nn_seed(7);
        f = nn_sequential(nn_conv1d(4, 7, c1), nn_conv1d(7, 3, c2), NULL);
        nn_seed(7);
        q = nn_sequential(nn_conv1d(4, 7, c1), nn_conv1d(7, 3, c2), NULL);
        nn_train_mode(f, 0);
        NN_TEST_CHECK(nn_quantize(q, o) == 2, "2 Conv1d converted");
        nn_graph_reset(g);
        yf = run(f, g, x, NN_SHAPE(3, 4, 19));
        yq = run(q, g, x, NN_SHAPE(3, 4, 19));
        NN_TEST_CHECK(yq && yq->ndim == 3 && yq->shape[2] == yf->shape[2] && rel_err(yq, yf) < 0.05f,
                      "Conv1d (stride, padding, causal dilated) within bound: %g",
                      yq ? (double)rel_err(yq, yf) : -1.0);
        nn_module_free(f);
        nn_module_free(q);
    }
    nn_graph_free(g);
}

static void test_save_load(void) {
    nn_graph *g = nn_graph_new();
    nn_module *a, *b, *fl;
    nn_quantize_opts o;
    nn_load_opts lo;
    nn_save_opts so;
    void *buf = NULL, *fbuf = NULL;
    size_t size = 0, fsize = 0;
    float x[3 * 20];
    nn_tensor *ya, *yb;
    int i;
    memset(&o, 0, sizeof o);
    o.small_conv = 1; /* the int8 convolutions, also the tiny ones */
    memset(&lo, 0, sizeof lo);
    memset(&so, 0, sizeof so);
    for (i = 0; i < 60; i++) x[i] = nn_rand_normal();
    nn_seed(8);
    a = make_mlp();
    nn_seed(9);
    b = make_mlp(); /* other weights */
    fl = make_mlp();
    nn_quantize(a, o);
    nn_quantize(b, o);
    NN_TEST_CHECK(nn_save_mem(a, so, &buf, &size) == NN_OK && size > 0, "save a quantized model");
    NN_TEST_CHECK(buf && strstr((const char *)buf + 8, "\"0.weight\":{\"dtype\":\"I8\",\"shape\":[33,20]") != NULL,
                  "the weight is written as I8");
    nn_set_grad_enabled(g, 0);
    yb = run(b, g, x, NN_SHAPE(3, 20)); /* b's kernels pack its own weights first */
    NN_TEST_CHECK(nn_load_mem(b, buf, size, lo) == NN_OK, "load into a quantized model: %s", nn_error_string());
    NN_TEST_CHECK(memcmp(nn_param_get(a, "2.weight")->data, nn_param_get(b, "2.weight")->data, 17 * 33) == 0 &&
                      memcmp(nn_param_get(a, "2.scale")->data, nn_param_get(b, "2.scale")->data, 17 * 4) == 0,
                  "weights and scales round trip bitwise");
    nn_graph_reset(g);
    ya = run(a, g, x, NN_SHAPE(3, 20));
    yb = run(b, g, x, NN_SHAPE(3, 20));
    NN_TEST_CHECK(ya && yb && memcmp(ya->data, yb->data, sizeof(float) * 15) == 0, "same outputs bitwise");
    /* a float file into the quantized model: refused, model unchanged */
    nn_save_mem(fl, so, &fbuf, &fsize);
    lo.allow_missing = 1; /* past the missing scales, to the dtype check */
    NN_TEST_CHECK(nn_load_mem(b, fbuf, fsize, lo) == NN_ERR_FORMAT &&
                      strstr(nn_error_string(), "expected I8 (a quantized weight)") != NULL,
                  "float file into a quantized model: %s", nn_error_string());
    lo.allow_missing = 0;
    ya = run(b, g, x, NN_SHAPE(3, 20));
    NN_TEST_CHECK(ya && memcmp(ya->data, yb->data, sizeof(float) * 15) == 0, "unchanged after the failed load");
    /* the quantized file into a float model: strict load finds the scales */
    NN_TEST_CHECK(nn_load_mem(fl, buf, size, lo) == NN_ERR_FORMAT && strstr(nn_error_string(), "scale") != NULL,
                  "quantized file into a float model: %s", nn_error_string());
    {   /* the same for a CNN: its conv weights repacked after the load */
        nn_module *ca, *cb;
        void *cbuf = NULL;
        size_t csize = 0;
        float xi[2 * 3 * 14 * 14];
        nn_tensor *ra, *rb;
        for (i = 0; i < 2 * 3 * 14 * 14; i++) xi[i] = nn_rand_uniform();
        nn_seed(10);
        ca = make_cnn();
        nn_seed(11);
        cb = make_cnn();
        nn_quantize(ca, o);
        nn_quantize(cb, o);
        nn_graph_reset(g);
        NN_TEST_CHECK(run(cb, g, xi, NN_SHAPE(2, 3, 14, 14)) != NULL, "the CNN runs (packed) before the load");
        nn_save_mem(ca, so, &cbuf, &csize);
        NN_TEST_CHECK(nn_load_mem(cb, cbuf, csize, lo) == NN_OK, "quantized CNN loads: %s", nn_error_string());
        ra = run(ca, g, xi, NN_SHAPE(2, 3, 14, 14));
        rb = run(cb, g, xi, NN_SHAPE(2, 3, 14, 14));
        NN_TEST_CHECK(ra && rb && memcmp(ra->data, rb->data, sizeof(float) * ra->numel) == 0,
                      "quantized CNN after a load into a model that ran: same outputs bitwise");
        nn_free(cbuf);
        nn_module_free(ca);
        nn_module_free(cb);
    }
    nn_free(buf);
    nn_free(fbuf);
    nn_module_free(a);
    nn_module_free(b);
    nn_module_free(fl);
    nn_graph_free(g);
}

static void test_misuse(void) {
    nn_graph *g = nn_graph_new();
    nn_module *m = make_mlp();
    nn_quantize_opts o;
    nn_tensor *x, *y;
    memset(&o, 0, sizeof o);
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_test_clear_msgs();
    NN_TEST_CHECK(nn_quantize(m, o) == 3 && nn_test_msgs == 0, "first quantize");
    NN_TEST_CHECK(nn_quantize(m, o) == NN_ERR_ARG && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_quantize: module \"0\" (QuantizedLinear) is already quantized"),
                  "quantize twice: %s", nn_test_msg);
    nn_test_clear_msgs();
    nn_train_mode(m, 1);
    x = nn_zeros(g, NN_SHAPE(2, 20));
    y = nn_forward(m, x);
    NN_TEST_CHECK(!y && nn_test_msgs >= 1 &&
                      strstr(nn_test_msg, "nn_forward(QuantizedLinear): a quantized module runs in evaluation mode only"),
                  "forward in training mode: %s", nn_test_msg);
    nn_test_clear_msgs();
    nn_train_mode(m, 0);
    nn_requires_grad(x, 1);
    y = nn_forward(m, x);
    NN_TEST_CHECK(!y && nn_test_msgs >= 1 && strstr(nn_test_msg, "no gradient flows through a quantized module"),
                  "input requiring grad: %s", nn_test_msg);
    nn_test_clear_msgs();
    y = nn_forward(m, nn_zeros(g, NN_SHAPE(2, 21)));
    NN_TEST_CHECK(!y && nn_test_msgs >= 1 && strstr(nn_test_msg, "[2,21]") && strstr(nn_test_msg, "[33,20]"),
                  "wrong in_features: %s", nn_test_msg);
    nn_test_clear_msgs();
    o.mode = 7;
    NN_TEST_CHECK(nn_quantize(m, o) == NN_ERR_ARG && strstr(nn_test_msg, "mode 7"), "bad mode: %s", nn_test_msg);
    nn_test_clear_msgs();
    nn_gemm_s8(1, 2, 5, NULL, 4, NULL, 5, NULL, 2);
    NN_TEST_CHECK(nn_test_msgs == 1 && strstr(nn_test_msg, "nn_gemm_s8:") && strstr(nn_test_msg, "lda=4"),
                  "nn_gemm_s8 lda < K: %s", nn_test_msg);
    nn_set_error_hook(NULL, NULL);
    nn_module_free(m);
    nn_graph_free(g);
}

/* The speed rule: in dynamic mode a convolution with fewer than 64 weights
   per output channel stays float (the same module, the same output bits as
   the float model's), unless small_conv; weight-only mode converts it. */
static void test_small_conv(void) {
    nn_graph *g = nn_graph_new();
    nn_conv_opts c;
    nn_quantize_opts o;
    float x[2 * 12 * 12];
    int i, mode, ok = 1;
    memset(&c, 0, sizeof c);
    c.kernel = 5;
    for (i = 0; i < 2 * 12 * 12; i++) x[i] = nn_rand_uniform();
    nn_set_grad_enabled(g, 0);
    for (mode = 0; mode < 3; mode++) { /* dynamic, dynamic with small_conv, weight-only */
        nn_module *f, *q;
        nn_tensor *yf, *yq;
        int n, small;
        memset(&o, 0, sizeof o);
        o.small_conv = mode == 1;
        o.mode = mode == 2 ? NN_QUANT_WEIGHT_ONLY : NN_QUANT_DYNAMIC;
        nn_seed(12);
        f = nn_sequential(nn_conv2d(1, 4, c), nn_relu(), nn_conv2d(4, 8, c), NULL); /* K = 25, then 100 */
        nn_seed(12);
        q = nn_sequential(nn_conv2d(1, 4, c), nn_relu(), nn_conv2d(4, 8, c), NULL);
        nn_train_mode(f, 0);
        n = nn_quantize(q, o);
        small = nn_is_quantized(nn_child(q, "0"));
        ok &= n == (mode ? 2 : 1) && small == (mode != 0) && nn_is_quantized(nn_child(q, "2"));
        if (mode == 0) { /* the kept layer: float weights, the float model's output bits */
            nn_tensor *w = nn_param_get(q, "0.weight");
            ok &= w && !(w->flags & NN_TENSOR_INT8) && (w->flags & NN_TENSOR_REQUIRES_GRAD);
            nn_graph_reset(g);
            yf = nn_forward(nn_child(f, "0"), nn_tensor_from(g, x, NN_SHAPE(2, 1, 12, 12)));
            yq = nn_forward(nn_child(q, "0"), nn_tensor_from(g, x, NN_SHAPE(2, 1, 12, 12)));
            ok &= yf && yq && memcmp(yf->data, yq->data, sizeof(float) * yf->numel) == 0;
        }
        nn_graph_reset(g);
        yf = run(f, g, x, NN_SHAPE(2, 1, 12, 12));
        yq = run(q, g, x, NN_SHAPE(2, 1, 12, 12));
        ok &= yf && yq && yq->numel == yf->numel && rel_err(yq, yf) < 0.05f;
        nn_module_free(f);
        nn_module_free(q);
    }
    NN_TEST_CHECK(ok, "conv with C KH KW = 25 kept float in dynamic mode (same bits), converted with small_conv "
                  "and in weight-only mode; K = 100 converted");
    nn_graph_free(g);
}

#if defined(_OPENMP) && !defined(NN_NO_OPENMP) /* the library runs OpenMP threads */
/* The quantized convolutions split the samples over the team (batch >= 2):
   bitwise the outputs of one thread, at batch 8 and an odd 5 (and batch 1,
   where the team takes the register blocks instead). */
static void test_threads(void) {
    nn_graph *g = nn_graph_new();
    nn_conv_opts c1, c2;
    nn_pool_opts p;
    nn_quantize_opts o;
    nn_module *net;
    float *x = (float *)malloc(sizeof(float) * 8 * 3 * 20 * 20), *keep = NULL;
    int i, b, t, was, same = 1;
    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    memset(&p, 0, sizeof p);
    memset(&o, 0, sizeof o);
    c1.kernel = 3;
    c1.padding = 1;
    c2.kernel = 3;
    p.kernel = 2;
    for (i = 0; i < 8 * 3 * 20 * 20; i++) x[i] = nn_rand_uniform() - 0.25f;
    nn_seed(13);
    net = nn_sequential(nn_conv2d(3, 24, c1), nn_relu(), nn_maxpool2d(p), nn_conv2d(24, 32, c2), nn_relu(),
                        nn_flatten(), nn_linear(32 * 8 * 8, 10), NULL);
    o.small_conv = 1; /* the first convolution too (K = 27) */
    NN_TEST_CHECK(nn_quantize(net, o) == 3, "the 3 layers converted");
    was = nn_set_adaptive_threads(0); /* the team whatever the machine's load */
    nn_set_grad_enabled(g, 0);
    for (b = 8; b >= 1; b -= b == 8 ? 3 : 4) { /* batch 8, 5, 1 */
        for (t = 1; t <= 2; t++) {
            nn_tensor *y;
            nn_set_threads(t);
            nn_graph_reset(g);
            y = run(net, g, x, NN_SHAPE(b, 3, 20, 20));
            if (!y) {
                same = 0;
            } else if (t == 1) {
                keep = (float *)malloc(sizeof(float) * y->numel);
                memcpy(keep, y->data, sizeof(float) * y->numel);
            } else {
                same &= memcmp(keep, y->data, sizeof(float) * y->numel) == 0;
                free(keep);
            }
        }
    }
    nn_set_threads(0);
    nn_set_adaptive_threads(was);
    NN_TEST_CHECK(same, "quantized CNN at batch 8, 5 and 1: bitwise the same at 1 and 2 threads");
    nn_module_free(net);
    free(x);
    nn_graph_free(g);
}
#endif

int main(void) {
    nn_seed(1);
    test_gemm();
    test_quantize_s8();
    test_models();
    test_reference();
    test_fused();
    test_save_load();
    test_misuse();
    test_small_conv();
#if defined(_OPENMP) && !defined(NN_NO_OPENMP)
    test_threads();
#endif
    return nn_test_summary("test_quant");
}
