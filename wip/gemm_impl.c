/* sgemm, GotoBLAS/BLIS style.  Loops, outer to inner:
     jc  N in blocks of nc        (packed B block kc x nc stays in L2)
     pc  K in blocks of kc        (first block applies beta, the rest add)
     ir  M in micro-panels of MR  (packed A micro-panel MR x kc stays in L1)
     jr  N in micro-panels of NR  (one register-blocked micro-kernel call)
   alpha is folded into the packed A; transposes are absorbed by the packing.
   Threads each take a rectangle of C (whole micro-panels) and run all of the
   above on it with their own buffers, with no synchronisation until the end
   (a spinning barrier is costly on a busy machine).  K is never split and kc
   depends on K only, so each C element sees the same operations in the same
   order at any thread count: results are bitwise identical. */

#if defined(NN__AVX512)
#define NN__GEMM_MR 12
#define NN__GEMM_NR 32
#define NN__GEMM_KC 256
#define NN__GEMM_NC 512
#elif defined(NN__AVX2)
#define NN__GEMM_MR 6
#define NN__GEMM_NR 16
#define NN__GEMM_KC 256
#define NN__GEMM_NC 512
#elif defined(NN__NEON)
#define NN__GEMM_MR 8
#define NN__GEMM_NR 8
#define NN__GEMM_KC 256
#define NN__GEMM_NC 512
#else
#define NN__GEMM_MR 4
#define NN__GEMM_NR 8
#define NN__GEMM_KC 256
#define NN__GEMM_NC 512
#endif

/* Below this many multiply-adds a call stays on one thread. */
#ifndef NN__GEMM_MT_MIN
#define NN__GEMM_MT_MIN (64 * 64 * 64)
#endif

/* ---- micro-kernels ------------------------------------------------------
   nn__gemm_tile: acc[i][j] = sum_k a[k*MR+i] * b[k*NR+j] for k < kc, then
   C[i][j] = acc (beta 0, C not read), C + acc (beta 1), or C*beta + acc,
   for i < mr, j < nr.  a and b are zero-padded to full MR / NR. */

#if defined(NN__AVX512)

/* One 16-wide row piece of the result: store, add or scale-add under a mask
   (masked-out lanes are neither read nor written). */
static void nn__gemm_put16(float *c, __m512 acc, __mmask16 m, int mode, __m512 vbeta) {
    if (mode == 0) {
        _mm512_mask_storeu_ps(c, m, acc);
    } else if (mode == 1) {
        _mm512_mask_storeu_ps(c, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), acc));
    } else {
        _mm512_mask_storeu_ps(c, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, c), vbeta, acc));
    }
}

#define NN__K_DECL(i) __m512 c##i##a = _mm512_setzero_ps(), c##i##b = _mm512_setzero_ps()
#define NN__K_FMA(i)                                  \
    av = _mm512_set1_ps(a[i]);                        \
    c##i##a = _mm512_fmadd_ps(av, b0, c##i##a);       \
    c##i##b = _mm512_fmadd_ps(av, b1, c##i##b)
#define NN__K_PUT(i)                                                   \
    if (i < mr) {                                                      \
        nn__gemm_put16(c + (size_t)i * ldc, c##i##a, m0, mode, vbeta); \
        if (m1) nn__gemm_put16(c + (size_t)i * ldc + 16, c##i##b, m1, mode, vbeta); \
    }
/* Half-width variant for nr <= 16 (narrow outputs such as 10 classes). */
#define NN__K_DECL1(i) __m512 c##i##a = _mm512_setzero_ps()
#define NN__K_FMA1(i) c##i##a = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, c##i##a)
#define NN__K_PUT1(i) \
    if (i < mr) nn__gemm_put16(c + (size_t)i * ldc, c##i##a, m0, mode, vbeta);

/* 12 x 32: 24 accumulators, 2 B vectors, 1 broadcast = 27 of 32 zmm. */
static void nn__gemm_tile(int kc, const float *a, const float *b, float *c, int ldc,
                          int mr, int nr, float beta) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    __m512 vbeta = _mm512_set1_ps(beta);
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1u);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
    if (nr > 16) {
        NN__K_DECL(0); NN__K_DECL(1); NN__K_DECL(2); NN__K_DECL(3);
        NN__K_DECL(4); NN__K_DECL(5); NN__K_DECL(6); NN__K_DECL(7);
        NN__K_DECL(8); NN__K_DECL(9); NN__K_DECL(10); NN__K_DECL(11);
        for (k = 0; k < kc; k++) {
            __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), av;
            NN__K_FMA(0); NN__K_FMA(1); NN__K_FMA(2); NN__K_FMA(3);
            NN__K_FMA(4); NN__K_FMA(5); NN__K_FMA(6); NN__K_FMA(7);
            NN__K_FMA(8); NN__K_FMA(9); NN__K_FMA(10); NN__K_FMA(11);
            a += 12;
            b += 32;
        }
        NN__K_PUT(0) NN__K_PUT(1) NN__K_PUT(2) NN__K_PUT(3)
        NN__K_PUT(4) NN__K_PUT(5) NN__K_PUT(6) NN__K_PUT(7)
        NN__K_PUT(8) NN__K_PUT(9) NN__K_PUT(10) NN__K_PUT(11)
    } else {
        NN__K_DECL1(0); NN__K_DECL1(1); NN__K_DECL1(2); NN__K_DECL1(3);
        NN__K_DECL1(4); NN__K_DECL1(5); NN__K_DECL1(6); NN__K_DECL1(7);
        NN__K_DECL1(8); NN__K_DECL1(9); NN__K_DECL1(10); NN__K_DECL1(11);
        for (k = 0; k < kc; k++) {
            __m512 b0 = _mm512_load_ps(b);
            NN__K_FMA1(0); NN__K_FMA1(1); NN__K_FMA1(2); NN__K_FMA1(3);
            NN__K_FMA1(4); NN__K_FMA1(5); NN__K_FMA1(6); NN__K_FMA1(7);
            NN__K_FMA1(8); NN__K_FMA1(9); NN__K_FMA1(10); NN__K_FMA1(11);
            a += 12;
            b += 32;
        }
        NN__K_PUT1(0) NN__K_PUT1(1) NN__K_PUT1(2) NN__K_PUT1(3)
        NN__K_PUT1(4) NN__K_PUT1(5) NN__K_PUT1(6) NN__K_PUT1(7)
        NN__K_PUT1(8) NN__K_PUT1(9) NN__K_PUT1(10) NN__K_PUT1(11)
    }
}
#undef NN__K_DECL
#undef NN__K_FMA
#undef NN__K_PUT
#undef NN__K_DECL1
#undef NN__K_FMA1
#undef NN__K_PUT1

#else /* AVX2, NEON, scalar: a full-tile kernel plus a temporary tile for edges */

#if defined(NN__AVX2)
/* 6 x 16: 12 accumulators, 2 B vectors, 1 broadcast = 15 of 16 ymm. */
#define NN__K_DECL(i) __m256 c##i##a = _mm256_setzero_ps(), c##i##b = _mm256_setzero_ps()
#define NN__K_FMA(i)                                  \
    av = _mm256_broadcast_ss(a + i);                  \
    c##i##a = _mm256_fmadd_ps(av, b0, c##i##a);       \
    c##i##b = _mm256_fmadd_ps(av, b1, c##i##b)
#define NN__K_PUT(i)                                                              \
    do {                                                                          \
        float *cr = c + (size_t)i * ldc;                                          \
        if (mode == 0) {                                                          \
            _mm256_storeu_ps(cr, c##i##a);                                        \
            _mm256_storeu_ps(cr + 8, c##i##b);                                    \
        } else if (mode == 1) {                                                   \
            _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), c##i##a));    \
            _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), c##i##b)); \
        } else {                                                                  \
            _mm256_storeu_ps(cr, _mm256_fmadd_ps(_mm256_loadu_ps(cr), vbeta, c##i##a)); \
            _mm256_storeu_ps(cr + 8,                                              \
                             _mm256_fmadd_ps(_mm256_loadu_ps(cr + 8), vbeta, c##i##b)); \
        }                                                                         \
    } while (0)
static void nn__gemm_full(int kc, const float *a, const float *b, float *c, int ldc, float beta) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    __m256 vbeta = _mm256_set1_ps(beta);
    NN__K_DECL(0); NN__K_DECL(1); NN__K_DECL(2); NN__K_DECL(3); NN__K_DECL(4); NN__K_DECL(5);
    for (k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
        NN__K_FMA(0); NN__K_FMA(1); NN__K_FMA(2); NN__K_FMA(3); NN__K_FMA(4); NN__K_FMA(5);
        a += 6;
        b += 16;
    }
    NN__K_PUT(0); NN__K_PUT(1); NN__K_PUT(2); NN__K_PUT(3); NN__K_PUT(4); NN__K_PUT(5);
}
#undef NN__K_DECL
#undef NN__K_FMA
#undef NN__K_PUT
/* The edge merge repeats the kernel's last step exactly (fused for beta). */
#define NN__GEMM_MERGE(c, t, beta) fmaf((c), (beta), (t))

#elif defined(NN__NEON)
/* 8 x 8: 16 accumulators, A and B as two vectors each = 20 of 32 q regs. */
#if defined(__aarch64__) || defined(_M_ARM64)
#define NN__K_MLA(acc, bv, av, lane) acc = vfmaq_laneq_f32(acc, bv, av, lane)
#define NN__GEMM_MERGE(c, t, beta) fmaf((c), (beta), (t))
#define NN__K_SCALE(cv, vb, acc) vfmaq_f32(acc, cv, vb)
#else /* 32-bit ARM: no fused lane form */
#define NN__K_MLA(acc, bv, av, lane) \
    acc = vmlaq_n_f32(acc, bv, vgetq_lane_f32(av, lane))
#define NN__GEMM_MERGE(c, t, beta) ((c) * (beta) + (t))
#define NN__K_SCALE(cv, vb, acc) vmlaq_f32(acc, cv, vb)
#endif
#define NN__K_ROW(i, av, lane)                                    \
    NN__K_MLA(c##i##a, b0, av, lane);                             \
    NN__K_MLA(c##i##b, b1, av, lane)
#define NN__K_DECL(i) float32x4_t c##i##a = vdupq_n_f32(0.0f), c##i##b = vdupq_n_f32(0.0f)
#define NN__K_PUT(i)                                                           \
    do {                                                                       \
        float *cr = c + (size_t)i * ldc;                                       \
        if (mode == 0) {                                                       \
            vst1q_f32(cr, c##i##a);                                            \
            vst1q_f32(cr + 4, c##i##b);                                        \
        } else if (mode == 1) {                                                \
            vst1q_f32(cr, vaddq_f32(vld1q_f32(cr), c##i##a));                  \
            vst1q_f32(cr + 4, vaddq_f32(vld1q_f32(cr + 4), c##i##b));          \
        } else {                                                               \
            vst1q_f32(cr, NN__K_SCALE(vld1q_f32(cr), vbeta, c##i##a));         \
            vst1q_f32(cr + 4, NN__K_SCALE(vld1q_f32(cr + 4), vbeta, c##i##b)); \
        }                                                                      \
    } while (0)
static void nn__gemm_full(int kc, const float *a, const float *b, float *c, int ldc, float beta) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    float32x4_t vbeta = vdupq_n_f32(beta);
    NN__K_DECL(0); NN__K_DECL(1); NN__K_DECL(2); NN__K_DECL(3);
    NN__K_DECL(4); NN__K_DECL(5); NN__K_DECL(6); NN__K_DECL(7);
    for (k = 0; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        NN__K_ROW(0, a0, 0); NN__K_ROW(1, a0, 1); NN__K_ROW(2, a0, 2); NN__K_ROW(3, a0, 3);
        NN__K_ROW(4, a1, 0); NN__K_ROW(5, a1, 1); NN__K_ROW(6, a1, 2); NN__K_ROW(7, a1, 3);
        a += 8;
        b += 8;
    }
    NN__K_PUT(0); NN__K_PUT(1); NN__K_PUT(2); NN__K_PUT(3);
    NN__K_PUT(4); NN__K_PUT(5); NN__K_PUT(6); NN__K_PUT(7);
}
#undef NN__K_MLA
#undef NN__K_SCALE
#undef NN__K_ROW
#undef NN__K_DECL
#undef NN__K_PUT

#else /* portable scalar */
/* 4 x 8 in plain C; compilers keep acc in registers and may vectorize j. */
static void nn__gemm_full(int kc, const float *a, const float *b, float *c, int ldc, float beta) {
    float acc[NN__GEMM_MR * NN__GEMM_NR];
    int i, j, k;
    for (j = 0; j < NN__GEMM_MR * NN__GEMM_NR; j++) acc[j] = 0.0f;
    for (k = 0; k < kc; k++) {
        for (i = 0; i < NN__GEMM_MR; i++) {
            float ai = a[i];
            for (j = 0; j < NN__GEMM_NR; j++) acc[i * NN__GEMM_NR + j] += ai * b[j];
        }
        a += NN__GEMM_MR;
        b += NN__GEMM_NR;
    }
    for (i = 0; i < NN__GEMM_MR; i++) {
        float *cr = c + (size_t)i * ldc;
        const float *t = acc + i * NN__GEMM_NR;
        if (beta == 0.0f) for (j = 0; j < NN__GEMM_NR; j++) cr[j] = t[j];
        else if (beta == 1.0f) for (j = 0; j < NN__GEMM_NR; j++) cr[j] += t[j];
        else for (j = 0; j < NN__GEMM_NR; j++) cr[j] = cr[j] * beta + t[j];
    }
}
#define NN__GEMM_MERGE(c, t, beta) ((c) * (beta) + (t))
#endif

static void nn__gemm_tile(int kc, const float *a, const float *b, float *c, int ldc,
                          int mr, int nr, float beta) {
    float t[NN__GEMM_MR * NN__GEMM_NR];
    int i, j;
    if (mr == NN__GEMM_MR && nr == NN__GEMM_NR) {
        nn__gemm_full(kc, a, b, c, ldc, beta);
        return;
    }
    /* Edge tile: full tile into t, then merge only the valid part. */
    nn__gemm_full(kc, a, b, t, NN__GEMM_NR, 0.0f);
    for (i = 0; i < mr; i++) {
        float *cr = c + (size_t)i * ldc;
        const float *tr = t + i * NN__GEMM_NR;
        if (beta == 0.0f) for (j = 0; j < nr; j++) cr[j] = tr[j];
        else if (beta == 1.0f) for (j = 0; j < nr; j++) cr[j] += tr[j];
        else for (j = 0; j < nr; j++) cr[j] = NN__GEMM_MERGE(cr[j], tr[j], beta);
    }
}
#endif

/* ---- packing ------------------------------------------------------------ */

/* A micro-panel: rows i0..i0+mr, k0..k0+kc of op(A) times alpha, stored
   [k][MR] with rows mr..MR zero. */
static void nn__gemm_pack_a(int transA, const float *A, int lda, int i0, int mr,
                            int k0, int kc, float alpha, float *dst) {
    int i, k;
    if (transA) {
        for (k = 0; k < kc; k++) {
            const float *s = A + (size_t)(k0 + k) * lda + i0;
            float *d = dst + (size_t)k * NN__GEMM_MR;
            for (i = 0; i < mr; i++) d[i] = alpha * s[i];
            for (; i < NN__GEMM_MR; i++) d[i] = 0.0f;
        }
        return;
    }
    if (mr == NN__GEMM_MR) {
        const float *s = A + (size_t)i0 * lda + k0;
        for (k = 0; k < kc; k++) {
            float *d = dst + (size_t)k * NN__GEMM_MR;
            for (i = 0; i < NN__GEMM_MR; i++) d[i] = alpha * s[(size_t)i * lda + k];
        }
        return;
    }
    for (i = 0; i < NN__GEMM_MR; i++) {
        const float *s = A + (size_t)(i0 + i) * lda + k0;
        if (i < mr) for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_MR + i] = alpha * s[k];
        else for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_MR + i] = 0.0f;
    }
}

/* B micro-panel: k0..k0+kc, columns j0..j0+nr of op(B), stored [k][NR] with
   columns nr..NR zero. */
static void nn__gemm_pack_b(int transB, const float *B, int ldb, int k0, int kc,
                            int j0, int nr, float *dst) {
    int j, k;
    if (!transB) {
        for (k = 0; k < kc; k++) {
            const float *s = B + (size_t)(k0 + k) * ldb + j0;
            float *d = dst + (size_t)k * NN__GEMM_NR;
            for (j = 0; j < nr; j++) d[j] = s[j];
            for (; j < NN__GEMM_NR; j++) d[j] = 0.0f;
        }
        return;
    }
    for (j = 0; j < NN__GEMM_NR; j++) {
        const float *s = B + (size_t)(j0 + j) * ldb + k0;
        if (j < nr) for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_NR + j] = s[k];
        else for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_NR + j] = 0.0f;
    }
}

/* ---- driver ------------------------------------------------------------- */

typedef struct nn__gemm_job {
    int transA, transB, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int kc;          /* K block: depends on K only, so every thread agrees */
} nn__gemm_job;

/* Each thread's packing buffer for B is kept for the next call, so a training
   loop in steady state never allocates. */
static NN__THREAD_LOCAL float *nn__gemm_buf = NULL;
static NN__THREAD_LOCAL size_t nn__gemm_buf_cap = 0;

/* Free the calling thread's packing buffer (it is regrown on demand). */
static void nn__gemm_release(void) {
    nn__free_floats(nn__gemm_buf);
    nn__gemm_buf = NULL;
    nn__gemm_buf_cap = 0;
}

static float *nn__gemm_buffer(size_t need) {
    if (need > nn__gemm_buf_cap) {
        nn__gemm_release();
        nn__gemm_buf = nn__alloc_floats(need, 0);
        nn__gemm_buf_cap = nn__gemm_buf ? need : 0;
    }
    return nn__gemm_buf;
}

/* C[i0:i0+m, j0:j0+n] on one thread: the whole blocked algorithm. */
static void nn__gemm_block(const nn__gemm_job *g, int i0, int m, int j0, int n) {
    float apack[NN__GEMM_MR * NN__GEMM_KC];
    float *bpack;
    int nnb = (n + NN__GEMM_NC - 1) / NN__GEMM_NC, ncb, jc, pc;
    if (m <= 0 || n <= 0) return;
    /* Even N blocks, whole micro-panels. */
    ncb = (n + nnb - 1) / nnb;
    ncb = (ncb + NN__GEMM_NR - 1) / NN__GEMM_NR * NN__GEMM_NR;
    bpack = nn__gemm_buffer((size_t)g->kc * (size_t)ncb);
    if (!bpack) { /* out of memory: the slow loop needs no buffer */
        nn_sgemm_ref(g->transA, g->transB, m, n, g->K, g->alpha,
                     g->A + (g->transA ? (size_t)i0 : (size_t)i0 * g->lda), g->lda,
                     g->B + (g->transB ? (size_t)j0 * g->ldb : (size_t)j0), g->ldb, g->beta,
                     g->C + (size_t)i0 * g->ldc + j0, g->ldc);
        return;
    }
    for (jc = j0; jc < j0 + n; jc += ncb) {
        int nc = NN__MIN(ncb, j0 + n - jc);
        int n_panels = (nc + NN__GEMM_NR - 1) / NN__GEMM_NR;
        for (pc = 0; pc < g->K; pc += g->kc) {
            int kc = NN__MIN(g->kc, g->K - pc), p, ir;
            float beta = pc == 0 ? g->beta : 1.0f;
            for (p = 0; p < n_panels; p++)
                nn__gemm_pack_b(g->transB, g->B, g->ldb, pc, kc, jc + p * NN__GEMM_NR,
                                NN__MIN(NN__GEMM_NR, nc - p * NN__GEMM_NR),
                                bpack + (size_t)p * kc * NN__GEMM_NR);
            for (ir = i0; ir < i0 + m; ir += NN__GEMM_MR) {
                int mr = NN__MIN(NN__GEMM_MR, i0 + m - ir);
                float *c = g->C + (size_t)ir * g->ldc + jc;
                nn__gemm_pack_a(g->transA, g->A, g->lda, ir, mr, pc, kc, g->alpha, apack);
                for (p = 0; p < n_panels; p++)
                    nn__gemm_tile(kc, apack, bpack + (size_t)p * kc * NN__GEMM_NR,
                                  c + p * NN__GEMM_NR, g->ldc, mr,
                                  NN__MIN(NN__GEMM_NR, nc - p * NN__GEMM_NR), beta);
            }
        }
    }
}

/* C = beta * C for the degenerate cases (K == 0 or alpha == 0). */
static void nn__gemm_scale(int M, int N, float beta, float *C, int ldc) {
    int i, j;
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
    }
}

#ifdef NN__OMP_ON
/* Cut C into pm x pn rectangles (whole micro-panels), one per thread, with
   no synchronisation until the end: each thread packs its own panels.  Pick
   the grid with the least work on the busiest thread, counting padded tiles
   and the packing repeated across the grid (about 8 multiply-adds per packed
   element). */
static void nn__gemm_grid(int M, int N, int K, int nt, int *pm, int *pn) {
    int npm = (M + NN__GEMM_MR - 1) / NN__GEMM_MR, npn = (N + NN__GEMM_NR - 1) / NN__GEMM_NR;
    int r;
    double best = -1.0;
    *pm = 1;
    *pn = 1;
    for (r = 1; r <= nt; r++) {
        int c = nt / r;
        double rows, cols, cost;
        if (r * c != nt || r > npm || c > npn) continue;
        rows = (double)((npm + r - 1) / r) * NN__GEMM_MR;
        cols = (double)((npn + c - 1) / c) * NN__GEMM_NR;
        cost = rows * cols * K + 8.0 * K * (rows + cols);
        if (best < 0.0 || cost < best) { best = cost; *pm = r; *pn = c; }
    }
}
#endif

NNDEF void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) {
    nn__gemm_job g;
    int nkb;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        nn__gemm_scale(M, N, beta, C, ldc);
        return;
    }
    g.transA = transA; g.transB = transB;
    g.M = M; g.N = N; g.K = K;
    g.alpha = alpha; g.beta = beta;
    g.A = A; g.B = B; g.C = C;
    g.lda = lda; g.ldb = ldb; g.ldc = ldc;
    /* Even K blocks: K = 784 becomes 4 x 196, not 3 x 256 + 16. */
    nkb = (K + NN__GEMM_KC - 1) / NN__GEMM_KC;
    g.kc = (K + nkb - 1) / nkb;
#ifdef NN__OMP_ON
    if ((double)M * N * K >= (double)NN__GEMM_MT_MIN && !omp_in_parallel()) {
        int nt = nn_get_threads(), pm, pn;
        nn__gemm_grid(M, N, K, nt, &pm, &pn);
        if (pm * pn > 1) {
            int npm = (M + NN__GEMM_MR - 1) / NN__GEMM_MR;
            int npn = (N + NN__GEMM_NR - 1) / NN__GEMM_NR;
            NN__OMP(parallel num_threads(pm * pn))
            {
                int tid = omp_get_thread_num(), team = omp_get_num_threads();
                if (team == pm * pn) {
                    int r = tid / pn, c = tid % pn;
                    int i0 = (r * npm / pm) * NN__GEMM_MR, i1 = ((r + 1) * npm / pm) * NN__GEMM_MR;
                    int j0 = (c * npn / pn) * NN__GEMM_NR, j1 = ((c + 1) * npn / pn) * NN__GEMM_NR;
                    nn__gemm_block(&g, i0, NN__MIN(i1, M) - i0, j0, NN__MIN(j1, N) - j0);
                } else if (tid == 0) { /* fewer threads than asked for */
                    nn__gemm_block(&g, 0, M, 0, N);
                }
            }
            return;
        }
    }
#endif
    nn__gemm_block(&g, 0, M, 0, N);
}
