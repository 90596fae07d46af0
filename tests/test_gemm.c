/* nn_sgemm against the triple-loop oracle nn_sgemm_ref: a random sweep of
   shapes 1..300 in all four transpose cases with padded strides, several
   alpha/beta, degenerate sizes, NaN in C with beta = 0, untouched padding,
   and bitwise equality at 1 and 2 (and 3) threads. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

#define SENTINEL 12345.0f

static double max_rel_err = 0.0; /* worst |fast - ref| / scale over all cases */

static float *fill(size_t n, float lo, float hi) {
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) p[i] = lo + (hi - lo) * nn_rand_uniform();
    return p;
}

static float absmax(const float *p, size_t n) {
    float m = 0.0f;
    size_t i;
    for (i = 0; i < n; i++) m = fabsf(p[i]) > m ? fabsf(p[i]) : m;
    return m;
}

/* One case: compares nn_sgemm with nn_sgemm_ref; C's row padding (ldc > N)
   must keep its sentinel.  nan_c fills C with NaN (only with beta == 0). */
static int run_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad,
                    int nan_c) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
    size_t nc = (size_t)M * ldc;
    float *A = fill(na, -1.0f, 1.0f), *B = fill(nb, -1.0f, 1.0f);
    float *C = fill(nc, -1.0f, 1.0f), *R = (float *)malloc((nc ? nc : 1) * sizeof(float));
    double scale, worst = 0.0, tol;
    int i, j, ok = 1, pad_ok = 1, nan_free = 1;
    for (i = 0; i < M; i++)
        for (j = N; j < ldc; j++) C[(size_t)i * ldc + j] = SENTINEL;
    if (nan_c)
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) C[(size_t)i * ldc + j] = NAN;
    memcpy(R, C, nc * sizeof(float));
    if (nan_c)
        for (i = 0; i < M; i++)
            for (j = 0; j < N; j++) R[(size_t)i * ldc + j] = 0.0f;
    nn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    nn_sgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    /* Both sum K products in float: the error grows with K. */
    scale = (double)fabsf(alpha) * absmax(A, na) * absmax(B, nb) * (K > 0 ? K : 1) +
            (double)fabsf(beta) + 1e-30;
    tol = 1e-6 * scale + 1e-6;
    for (i = 0; i < M; i++) {
        for (j = 0; j < ldc; j++) {
            float c = C[(size_t)i * ldc + j], r = R[(size_t)i * ldc + j];
            if (j >= N) {
                if (c != SENTINEL) pad_ok = 0;
                continue;
            }
            if (c != c) nan_free = 0;
            if (!(fabs((double)c - (double)r) <= tol)) ok = 0;
            if (fabs((double)c - (double)r) > worst) worst = fabs((double)c - (double)r);
        }
    }
    if (worst / scale > max_rel_err) max_rel_err = worst / scale;
    NN_TEST_CHECK(ok && nan_free, "ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d: max err %g (tol %g)%s",
                  ta, tb, M, N, K, (double)alpha, (double)beta, pad, worst, tol,
                  nan_free ? "" : " NaN in C");
    NN_TEST_CHECK(pad_ok, "ta=%d tb=%d M=%d N=%d K=%d: wrote into C's row padding", ta, tb, M, N, K);
    free(A); free(B); free(C); free(R);
    return ok && pad_ok && nan_free;
}

/* Small dimensions and ones just around the micro-tile and block sizes. */
static int pick_dim(void) {
    static const int special[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 23, 24, 25,
                                  31, 32, 33, 47, 48, 49, 63, 64, 65, 95, 96, 97, 127, 128,
                                  129, 191, 255, 256, 257, 300};
    if (nn_rand_uniform() < 0.4f)
        return special[nn_rand_below((uint32_t)(sizeof special / sizeof special[0]))];
    return 1 + (int)nn_rand_below(300);
}

#if defined(_OPENMP) && !defined(NN_NO_OPENMP) /* the library runs OpenMP threads */
/* Same inputs at 1, 2 and 3 threads: the outputs must be bitwise equal. */
static void check_threads(int ta, int tb, int M, int N, int K, float beta) {
    int lda = ta ? M : K, ldb = tb ? K : N, ldc = N + 3, nthr;
    size_t nc = (size_t)M * ldc;
    float *A = fill((size_t)M * K, -1.0f, 1.0f), *B = fill((size_t)K * N, -1.0f, 1.0f);
    float *C0 = fill(nc, -1.0f, 1.0f), *C1 = (float *)malloc(nc * sizeof(float));
    float *C = (float *)malloc(nc * sizeof(float));
    nn_set_threads(1);
    memcpy(C1, C0, nc * sizeof(float));
    nn_sgemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C1, ldc);
    for (nthr = 2; nthr <= 3; nthr++) {
        nn_set_threads(nthr);
        memcpy(C, C0, nc * sizeof(float));
        nn_sgemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C, ldc);
        NN_TEST_CHECK(memcmp(C, C1, nc * sizeof(float)) == 0,
                      "ta=%d tb=%d M=%d N=%d K=%d beta=%g: %d threads differ from 1", ta, tb, M,
                      N, K, (double)beta, nthr);
    }
    nn_set_threads(0);
    free(A); free(B); free(C0); free(C1); free(C);
}
#endif

/* A read in place (not transposed, alpha 1) and A packed (the same A stored
   transposed) run the same multiply-adds in the same order: the outputs must
   be bitwise equal, for row blocks of 4, 8 and 12 rows and ragged ones, the
   small products the in-place path serves and narrow last panels. */
static void check_a_in_place(int M, int N, int K, float beta) {
    int i, k, ldc = N + 1;
    size_t nc = (size_t)M * ldc;
    float *A = fill((size_t)M * K, -1.0f, 1.0f), *At = (float *)malloc((size_t)M * K * sizeof(float));
    float *B = fill((size_t)K * N, -1.0f, 1.0f), *C0 = fill(nc, -1.0f, 1.0f);
    float *C = (float *)malloc(nc * sizeof(float)), *Ct = (float *)malloc(nc * sizeof(float));
    for (i = 0; i < M; i++)
        for (k = 0; k < K; k++) At[(size_t)k * M + i] = A[(size_t)i * K + k];
    memcpy(C, C0, nc * sizeof(float));
    memcpy(Ct, C0, nc * sizeof(float));
    nn_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, beta, C, ldc);
    nn_sgemm(1, 0, M, N, K, 1.0f, At, M, B, N, beta, Ct, ldc);
    NN_TEST_CHECK(memcmp(C, Ct, nc * sizeof(float)) == 0,
                  "M=%d N=%d K=%d beta=%g: A in place differs from A packed", M, N, K, (double)beta);
    free(A); free(At); free(B); free(C0); free(C); free(Ct);
}

int main(void) {
    static const float alphas[] = {1.0f, -0.5f, 2.0f};
    static const float betas[] = {0.0f, 1.0f, 0.3f};
    int c, ta, tb;
    nn_seed(42);

    /* Degenerate sizes: nothing happens, or C = beta * C. */
    {
        float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {NAN}, B[1] = {NAN}, zeros[6] = {0, 0, 0, 0, 0, 0};
        nn_sgemm(0, 0, 0, 3, 4, 1.0f, A, 4, B, 3, 0.0f, C, 3);
        nn_sgemm(0, 0, 2, 0, 4, 1.0f, A, 4, B, 1, 0.0f, C, 3);
        NN_TEST_CHECK(C[0] == 1.0f && C[5] == 6.0f, "M or N = 0 must not touch C");
        nn_sgemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 0.5f, C, 3);
        NN_TEST_CHECK(C[0] == 0.5f && C[5] == 3.0f, "K = 0 scales C by beta (got %g %g)",
                      (double)C[0], (double)C[5]);
        C[1] = NAN;
        nn_sgemm(1, 1, 2, 3, 0, 1.0f, A, 2, B, 1, 0.0f, C, 3);
        nn_test_close(C, zeros, 6, 0.0f, 0.0f, "K = 0, beta = 0 zeroes C");
    }

    /* Every transpose case at the edges of the tiles and blocks. */
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++) {
            run_case(ta, tb, 1, 1, 1, 1.0f, 0.0f, 0, 0);
            run_case(ta, tb, 12, 32, 7, 1.0f, 1.0f, 0, 0);
            run_case(ta, tb, 13, 33, 257, -0.5f, 0.3f, 2, 0);
            run_case(ta, tb, 5, 1100, 40, 2.0f, 0.3f, 1, 0);   /* several N blocks */
            run_case(ta, tb, 40, 20, 700, 1.0f, 0.0f, 3, 1);   /* several K blocks, NaN C */
            run_case(ta, tb, 128, 10, 128, 1.0f, 0.0f, 0, 1);  /* narrow output */
            run_case(ta, tb, 1, 300, 300, 1.0f, 1.0f, 0, 0);   /* a row vector */
            run_case(ta, tb, 300, 1, 300, -0.5f, 0.0f, 1, 0);  /* a column vector */
            /* small C, long K (a first conv layer's dW over many positions) */
            run_case(ta, tb, 32, 25, 1728, 1.0f, 1.0f, 1, 0);
            run_case(ta, tb, 7, 40, 4099, -0.5f, 0.0f, 0, 1);
            run_case(ta, tb, 60, 60, 1100, 2.0f, 0.3f, 2, 0);
        }

    {
        static const int ms[] = {4, 8, 12, 16, 20, 24, 36, 64, 67};
        static const int ns[] = {10, 17, 40, 50, 64, 100, 128, 160};
        static const int ks[] = {1, 7, 64, 300};
        int a, b, d;
        for (a = 0; a < 9; a++)
            for (b = 0; b < 8; b++)
                for (d = 0; d < 4; d++) check_a_in_place(ms[a], ns[b], ks[d], d % 2 ? 1.0f : 0.0f);
    }

    /* The random sweep. */
    for (c = 0; c < 150; c++) {
        int M = pick_dim(), N = pick_dim(), K = pick_dim();
        int pad = nn_rand_uniform() < 0.5f ? 0 : 1 + (int)nn_rand_below(7);
        float alpha = alphas[nn_rand_below(3)], beta = betas[nn_rand_below(3)];
        run_case((int)nn_rand_below(2), (int)nn_rand_below(2), M, N, K, alpha, beta, pad,
                 beta == 0.0f && nn_rand_uniform() < 0.5f);
    }
    printf("max |nn_sgemm - nn_sgemm_ref| / (|alpha| K max|a| max|b| + |beta|) = %.3g\n",
           max_rel_err);

#if defined(_OPENMP) && !defined(NN_NO_OPENMP) /* the library runs OpenMP threads */
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++) {
            check_threads(ta, tb, 128, 256, 784, 0.0f);
            check_threads(ta, tb, 256, 128, 784, 1.0f);
            check_threads(ta, tb, 13, 700, 300, 0.3f);
            check_threads(ta, tb, 300, 17, 530, 0.0f);
            check_threads(ta, tb, 100, 1100, 70, 1.0f);
            check_threads(ta, tb, 32, 25, 1728, 1.0f); /* small C, long K */
            check_threads(ta, tb, 7, 40, 4099, 0.0f);
        }
#endif
    return nn_test_summary("test_gemm");
}
