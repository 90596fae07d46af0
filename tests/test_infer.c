/* The small-batch path: nn_sgemm for M = 1..16 (the matrix-vector kernel
   below the register block, the blocked GEMM above) against nn_sgemm_ref
   with odd N and K, every transpose, padded strides, beta 0 (over NaN), 1
   and other, alpha 1 and not; nn_linear_op with its bias fused into the
   write-back against the product plus a separate bias pass; and a model's
   batch-1 outputs in eval mode with gradients off against the same rows of
   one batch-64 forward (the blocked path); linear modules in eval mode (the
   weight packed once) at M = 1..16 against nn_sgemm_ref, bitwise across
   batch sizes, and their pack following every weight change. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

static float *fill(size_t n) {
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = 2.0f * nn_rand_uniform() - 1.0f;
    return p;
}

/* One case; returns 1 when C matches the oracle within the K-scaled bound
   and the row padding is untouched. */
static int gemm_case(int ta, int tb, int M, int N, int K, float alpha, float beta) {
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2, i, j, ok = 1;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = fill(na), *B = fill(nb), *C = fill(nc), *R = (float *)malloc(nc * sizeof(float));
    double tol = 1e-6 * (fabs((double)alpha) * K + fabs((double)beta)) + 1e-6;
    for (i = 0; i < M; i++)
        for (j = N; j < ldc; j++) C[(size_t)i * ldc + j] = 777.0f;
    memcpy(R, C, nc * sizeof(float));
    if (beta == 0.0f) /* beta 0 must not read C */
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
    nn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    nn_sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    for (i = 0; i < M; i++)
        for (j = 0; j < ldc; j++) {
            float c = C[(size_t)i * ldc + j], r = R[(size_t)i * ldc + j];
            if (j >= N ? c != 777.0f : !(fabs((double)c - (double)r) <= tol)) ok = 0;
        }
    free(A);
    free(B);
    free(C);
    free(R);
    return ok;
}

static void test_small_gemm(void) {
    static const int Ns[] = {1, 3, 17, 33, 70}, Ks[] = {1, 7, 31, 129};
    static const float betas[] = {0.0f, 1.0f, -0.37f};
    int M, ni, ki, t, bi, bad = 0, cases = 0;
    for (M = 1; M <= 16; M++)
        for (ni = 0; ni < 5; ni++)
            for (ki = 0; ki < 4; ki++)
                for (t = 0; t < 4; t++)
                    for (bi = 0; bi < 3; bi++) {
                        float alpha = (M + ni + bi) % 2 ? 1.0f : -0.7f;
                        cases++;
                        if (!gemm_case(t & 1, t >> 1, M, Ns[ni], Ks[ki], alpha, betas[bi])) {
                            if (bad < 5)
                                NN_TEST_CHECK(0, "nn_sgemm(%d, %d, M %d, N %d, K %d, alpha %g, beta %g)",
                                              t & 1, t >> 1, M, Ns[ni], Ks[ki], (double)alpha,
                                              (double)betas[bi]);
                            bad++;
                        }
                    }
    NN_TEST_CHECK(bad == 0, "%d of %d small-M cases differ from nn_sgemm_ref", bad, cases);
}

/* nn_linear_op (bias fused at small batch) against nn_sgemm + a bias pass. */
static void test_linear_fused(void) {
    nn_graph *g = nn_graph_new();
    nn_tensor *w = nn_randn(NULL, NN_SHAPE(37, 53)), *b = nn_randn(NULL, NN_SHAPE(37));
    int rows, grad, i, j;
    for (grad = 0; grad < 2; grad++)
        for (rows = 1; rows <= 12; rows++) {
            float *ref = (float *)malloc(sizeof(float) * (size_t)rows * 37);
            nn_tensor *x, *y;
            double worst = 0.0;
            nn_graph_reset(g);
            nn_set_grad_enabled(g, grad);
            x = nn_randn(g, NN_SHAPE(rows, 53));
            nn_requires_grad(w, grad);
            y = nn_linear_op(x, w, b);
            nn_sgemm_ref(0, 1, rows, 37, 53, 1.0f, x->data, 53, w->data, 53, 0.0f, ref, 37);
            for (i = 0; i < rows; i++)
                for (j = 0; j < 37; j++) {
                    double d = fabs((double)y->data[i * 37 + j] - (double)(ref[i * 37 + j] + b->data[j]));
                    if (!(d <= worst)) worst = d;
                }
            NN_TEST_CHECK(worst <= 2e-5, "linear rows %d grad %d: max diff %g", rows, grad, worst);
            NN_TEST_CHECK((y->node != NULL) == grad, "linear rows %d grad %d: node %p", rows, grad,
                          (void *)y->node);
            free(ref);
        }
    nn_tensor_free(w);
    nn_tensor_free(b);
    nn_graph_free(g);
}

/* An MLP in eval mode, gradients off: batch-1 forwards (small path) equal the
   rows of one batch-64 forward (blocked path) to round-off. */
static void test_model_batch1(void) {
    nn_graph *g = nn_graph_new();
    nn_module *net = nn_sequential(nn_linear(40, 24), nn_relu(), nn_linear(24, 10), NULL);
    nn_tensor *x, *y;
    float *big;
    int i, j;
    double worst = 0.0;
    nn_train_mode(net, 0);
    nn_graph_reset(g);
    nn_set_grad_enabled(g, 0);
    x = nn_randn(g, NN_SHAPE(64, 40));
    y = nn_forward(net, x);
    big = (float *)malloc(sizeof(float) * 640);
    memcpy(big, y->data, sizeof(float) * 640);
    for (i = 0; i < 64; i++) {
        nn_tensor *xi = nn_tensor_from(g, x->data + i * 40, NN_SHAPE(1, 40)), *yi = nn_forward(net, xi);
        for (j = 0; j < 10; j++) {
            double d = fabs((double)yi->data[j] - (double)big[i * 10 + j]);
            if (!(d <= worst)) worst = d;
        }
    }
    NN_TEST_CHECK(worst <= 1e-5, "batch-1 vs batch-64 rows: max diff %g", worst);
    NN_TEST_CHECK(y->node == NULL, "grad off: no node recorded");
    free(big);
    nn_module_free(net);
    nn_graph_free(g);
}

/* y [M][N] against x W^T + b from nn_sgemm_ref (then ReLU when relu):
   the worst difference over the K-scaled bound (> 1: out of bound). */
static double linear_err(const nn_tensor *y, const float *x, const nn_tensor *w, const nn_tensor *b,
                         int M, int relu) {
    int N = w->shape[0], K = w->shape[1], i;
    float *ref = (float *)malloc(sizeof(float) * (size_t)M * N);
    double worst = 0.0, tol = 1e-6 * K + 1e-6;
    nn_sgemm_ref(0, 1, M, N, K, 1.0f, x, K, w->data, K, 0.0f, ref, N);
    for (i = 0; i < M * N; i++) {
        float r = ref[i] + b->data[i % N];
        double d = fabs((double)y->data[i] - (double)(relu && r < 0.0f ? 0.0f : r)) / tol;
        if (!(d <= worst)) worst = d;
    }
    free(ref);
    return worst;
}

/* Linear layers in evaluation mode with gradients off, where the module
   keeps its weight packed (the matrix-vector kernel below the register
   block, the blocked GEMM reading the pack above): M = 1..16, odd N and K,
   alone (bias in the write-back) and as Linear->ReLU (fused), against
   nn_sgemm_ref; every batch size gives a row the same bits (the packed
   kernel sums in the blocked GEMM's order); and the pack follows the
   weights: a write declared with nn_module_changed, an SGD step, nn_load. */
static void test_packed_linear(void) {
    static const int Ns[] = {1, 3, 33, 70}, Ks[] = {1, 7, 31, 129};
    nn_graph *g = nn_graph_new();
    int ni, ki, M, bad = 0, unequal = 0;
    double worst = 0.0;
    for (ni = 0; ni < 4; ni++)
        for (ki = 0; ki < 4; ki++) {
            int N = Ns[ni], K = Ks[ki];
            nn_module *seq = nn_sequential(nn_linear(K, N), nn_relu(), NULL);
            nn_tensor *w = nn_param_get(seq, "0.weight"), *b = nn_param_get(seq, "0.bias");
            float *xv = fill((size_t)16 * K), *full = (float *)malloc(sizeof(float) * 16 * (size_t)N);
            nn_train_mode(seq, 0);
            nn_set_grad_enabled(g, 0);
            for (M = 16; M >= 1; M--) {
                nn_tensor *y, *yr;
                double e;
                nn_graph_reset(g);
                y = nn_forward(seq->children[0], nn_tensor_from(g, xv, NN_SHAPE(M, K)));
                yr = nn_forward(seq, nn_tensor_from(g, xv, NN_SHAPE(M, K)));
                e = linear_err(y, xv, w, b, M, 0);
                if (linear_err(yr, xv, w, b, M, 1) > e) e = linear_err(yr, xv, w, b, M, 1);
                if (e > worst) worst = e;
                if (e > 1.0 && bad++ < 3)
                    NN_TEST_CHECK(0, "eval linear M %d N %d K %d: %g of the bound", M, N, K, e);
                if (M == 16) memcpy(full, y->data, sizeof(float) * 16 * (size_t)N);
                else if (memcmp(full, y->data, sizeof(float) * (size_t)M * N) != 0) unequal++;
            }
            free(xv);
            free(full);
            nn_module_free(seq);
        }
    NN_TEST_CHECK(bad == 0, "eval linear at M = 1..16 against nn_sgemm_ref (worst %g of the bound)",
                  worst);
    NN_TEST_CHECK(unequal == 0, "eval linear: %d batch sizes gave a row other bits than batch 16",
                  unequal);
    /* The pack follows the weights. */
    {
        nn_module *net = nn_linear(29, 40);
        nn_tensor *w = nn_param_get(net, "weight"), *b = nn_param_get(net, "bias"), *y;
        float *xv = fill(3 * 29);
        nn_sgd_opts so;
        nn_optim *opt;
        nn_save_opts sv;
        nn_load_opts lo;
        void *buf = NULL;
        size_t size = 0;
        memset(&sv, 0, sizeof sv);
        memset(&lo, 0, sizeof lo);
        memset(&so, 0, sizeof so);
        so.lr = 0.1f;
        nn_save_mem(net, sv, &buf, &size);
        nn_train_mode(net, 0);
        for (M = 1; M <= 3; M += 2) {
            nn_set_grad_enabled(g, 0);
            nn_graph_reset(g);
            y = nn_forward(net, nn_tensor_from(g, xv, NN_SHAPE(M, 29)));
            NN_TEST_CHECK(linear_err(y, xv, w, b, M, 0) <= 1.0, "M %d: packed at first", M);
            w->data[5] += 1.0f;
            nn_module_changed(net);
            nn_graph_reset(g);
            y = nn_forward(net, nn_tensor_from(g, xv, NN_SHAPE(M, 29)));
            NN_TEST_CHECK(linear_err(y, xv, w, b, M, 0) <= 1.0, "M %d: nn_module_changed is seen", M);
            opt = nn_sgd(net, so);
            nn_set_grad_enabled(g, 1);
            nn_graph_reset(g);
            y = nn_forward(net, nn_tensor_from(g, xv, NN_SHAPE(M, 29)));
            nn_zero_grad(opt);
            nn_backward(nn_sum(nn_mul(y, y)));
            nn_step(opt);
            nn_optim_free(opt);
            nn_set_grad_enabled(g, 0);
            nn_graph_reset(g);
            y = nn_forward(net, nn_tensor_from(g, xv, NN_SHAPE(M, 29)));
            NN_TEST_CHECK(linear_err(y, xv, w, b, M, 0) <= 1.0, "M %d: an SGD step is seen", M);
            NN_TEST_CHECK(nn_load_mem(net, buf, size, lo) == NN_OK, "loaded");
            w = nn_param_get(net, "weight");
            b = nn_param_get(net, "bias");
            nn_graph_reset(g);
            y = nn_forward(net, nn_tensor_from(g, xv, NN_SHAPE(M, 29)));
            NN_TEST_CHECK(linear_err(y, xv, w, b, M, 0) <= 1.0, "M %d: nn_load is seen", M);
        }
        nn_free(buf);
        free(xv);
        nn_module_free(net);
    }
    nn_graph_free(g);
}

int main(void) {
    nn_seed(7);
    test_small_gemm();
    test_linear_fused();
    test_model_batch1();
    test_packed_linear();
    return nn_test_summary("test_infer");
}
