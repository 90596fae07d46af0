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
#ifndef NN__GEMM_KC
#define NN__GEMM_KC 256
#endif
#ifndef NN__GEMM_NC
#define NN__GEMM_NC 512
#endif
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

/* The micro-kernel stays a function of its own: inlined into the driver, its
   27 live vector registers meet the driver's and gcc spills B to the stack. */
#if defined(__GNUC__) || defined(__clang__)
#define NN__GEMM_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define NN__GEMM_NOINLINE __declspec(noinline)
#else
#define NN__GEMM_NOINLINE
#endif

/* Below this many multiply-adds a call stays on one thread. */
#ifndef NN__GEMM_MT_MIN
#define NN__GEMM_MT_MIN (64 * 64 * 64)
#endif

/* ---- micro-kernels ------------------------------------------------------
   nn__gemm_tile: acc[i][j] = sum_k a[k*MR+i] * b[k*bstep+j] for k < kc, then
   C[i][j] = acc (beta 0, C not read), C + acc (beta 1), or C*beta + acc,
   for i < mr, j < nr.  a and b hold full MR / NR (zero-padded when packed);
   bstep is NR for packed B, or ldb when B is read in place. */

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
static NN__GEMM_NOINLINE void nn__gemm_tile(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, int mr, int nr,
                                            float beta) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    __m512 vbeta;
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1u);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
    if (nr > 16) {
        NN__K_DECL(0); NN__K_DECL(1); NN__K_DECL(2); NN__K_DECL(3);
        NN__K_DECL(4); NN__K_DECL(5); NN__K_DECL(6); NN__K_DECL(7);
        NN__K_DECL(8); NN__K_DECL(9); NN__K_DECL(10); NN__K_DECL(11);
        for (k = 0; k < kc; k++) {
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), av;
            NN__K_FMA(0); NN__K_FMA(1); NN__K_FMA(2); NN__K_FMA(3);
            NN__K_FMA(4); NN__K_FMA(5); NN__K_FMA(6); NN__K_FMA(7);
            NN__K_FMA(8); NN__K_FMA(9); NN__K_FMA(10); NN__K_FMA(11);
            a += 12;
            b += bstep;
        }
        vbeta = _mm512_set1_ps(beta);
        NN__K_PUT(0) NN__K_PUT(1) NN__K_PUT(2) NN__K_PUT(3)
        NN__K_PUT(4) NN__K_PUT(5) NN__K_PUT(6) NN__K_PUT(7)
        NN__K_PUT(8) NN__K_PUT(9) NN__K_PUT(10) NN__K_PUT(11)
    } else {
        NN__K_DECL1(0); NN__K_DECL1(1); NN__K_DECL1(2); NN__K_DECL1(3);
        NN__K_DECL1(4); NN__K_DECL1(5); NN__K_DECL1(6); NN__K_DECL1(7);
        NN__K_DECL1(8); NN__K_DECL1(9); NN__K_DECL1(10); NN__K_DECL1(11);
        for (k = 0; k < kc; k++) {
            __m512 b0 = _mm512_loadu_ps(b);
            NN__K_FMA1(0); NN__K_FMA1(1); NN__K_FMA1(2); NN__K_FMA1(3);
            NN__K_FMA1(4); NN__K_FMA1(5); NN__K_FMA1(6); NN__K_FMA1(7);
            NN__K_FMA1(8); NN__K_FMA1(9); NN__K_FMA1(10); NN__K_FMA1(11);
            a += 12;
            b += bstep;
        }
        vbeta = _mm512_set1_ps(beta);
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
static NN__GEMM_NOINLINE void nn__gemm_full(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, float beta) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    __m256 vbeta = _mm256_set1_ps(beta);
    NN__K_DECL(0); NN__K_DECL(1); NN__K_DECL(2); NN__K_DECL(3); NN__K_DECL(4); NN__K_DECL(5);
    for (k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), av;
        NN__K_FMA(0); NN__K_FMA(1); NN__K_FMA(2); NN__K_FMA(3); NN__K_FMA(4); NN__K_FMA(5);
        a += 6;
        b += bstep;
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
static NN__GEMM_NOINLINE void nn__gemm_full(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, float beta) {
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
        b += bstep;
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
static NN__GEMM_NOINLINE void nn__gemm_full(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, float beta) {
    float acc[NN__GEMM_MR * NN__GEMM_NR];
    int i, j, k;
    for (j = 0; j < NN__GEMM_MR * NN__GEMM_NR; j++) acc[j] = 0.0f;
    for (k = 0; k < kc; k++) {
        for (i = 0; i < NN__GEMM_MR; i++) {
            float ai = a[i];
            for (j = 0; j < NN__GEMM_NR; j++) acc[i * NN__GEMM_NR + j] += ai * b[j];
        }
        a += NN__GEMM_MR;
        b += bstep;
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

static void nn__gemm_tile(int kc, const float *a, const float *b, size_t bstep, float *c,
                          int ldc, int mr, int nr, float beta) {
    float t[NN__GEMM_MR * NN__GEMM_NR];
    int i, j;
    if (mr == NN__GEMM_MR && nr == NN__GEMM_NR) {
        nn__gemm_full(kc, a, b, bstep, c, ldc, beta);
        return;
    }
    /* Edge tile: full tile into t, then merge only the valid part. */
    nn__gemm_full(kc, a, b, bstep, t, NN__GEMM_NR, 0.0f);
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
#if defined(NN__AVX512)
/* In-register 16 x 16 transpose of r0..r15 (t0..t15 scratch): lane j of
   row i becomes lane i of row j.  A macro, so that everything stays in
   registers. */
#define NN__T2(i, j) \
    t##i = _mm512_mask_unpacklo_ps(r##i, 0xFFFF, r##i, r##j);   \
    t##j = _mm512_mask_unpackhi_ps(r##i, 0xFFFF, r##i, r##j)
#define NN__T4(a, b, c, d)                          \
    r##a = _mm512_mask_shuffle_ps(t##a, 0xFFFF, t##a, t##c, 0x44);      \
    r##b = _mm512_mask_shuffle_ps(t##a, 0xFFFF, t##a, t##c, 0xEE);      \
    r##c = _mm512_mask_shuffle_ps(t##b, 0xFFFF, t##b, t##d, 0x44);      \
    r##d = _mm512_mask_shuffle_ps(t##b, 0xFFFF, t##b, t##d, 0xEE)
#define NN__T8(i, j, l)                              \
    t##i = _mm512_mask_shuffle_f32x4(r##i, 0xFFFF, r##i, r##l, 0x88);    \
    t##j = _mm512_mask_shuffle_f32x4(r##i, 0xFFFF, r##i, r##l, 0xDD)
#define NN__T16(i, j, l)                             \
    r##i = _mm512_mask_shuffle_f32x4(t##i, 0xFFFF, t##i, t##l, 0x88);    \
    r##j = _mm512_mask_shuffle_f32x4(t##i, 0xFFFF, t##i, t##l, 0xDD)
#define NN__GEMM_T16()                                                          \
    NN__T2(0, 1); NN__T2(2, 3); NN__T2(4, 5); NN__T2(6, 7);                     \
    NN__T2(8, 9); NN__T2(10, 11); NN__T2(12, 13); NN__T2(14, 15);               \
    NN__T4(0, 1, 2, 3); NN__T4(4, 5, 6, 7); NN__T4(8, 9, 10, 11);               \
    NN__T4(12, 13, 14, 15);                                                     \
    NN__T8(0, 4, 4); NN__T8(1, 5, 5); NN__T8(2, 6, 6); NN__T8(3, 7, 7);         \
    NN__T8(8, 12, 12); NN__T8(9, 13, 13); NN__T8(10, 14, 14); NN__T8(11, 15, 15); \
    NN__T16(0, 8, 8); NN__T16(1, 9, 9); NN__T16(2, 10, 10); NN__T16(3, 11, 11); \
    NN__T16(4, 12, 12); NN__T16(5, 13, 13); NN__T16(6, 14, 14); NN__T16(7, 15, 15)

/* Rows src[i*ld + k] (i < rows; the others read as zero) times scale, 16 k
   at a time, transposed: dst[k*dst_stride + i] for k < kc, under store_mask. */
#define NN__LD(i)                                                                  \
    r##i = (i) < rows ? _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, src + (i) * ld + k), scale) \
                      : _mm512_setzero_ps()
#define NN__ST(i) _mm512_mask_storeu_ps(d + (size_t)(i) * dst_stride, store_mask, r##i)
static void nn__gemm_pack_t16(const float *src, size_t ld, int rows, int kc, __m512 scale,
                              float *dst, int dst_stride, __mmask16 store_mask) {
    __m512 r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15;
    __m512 t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15;
    int k;
    for (k = 0; k < kc; k += 16) {
        int kn = NN__MIN(16, kc - k);
        __mmask16 lm = (__mmask16)(kn == 16 ? 0xFFFF : (1u << kn) - 1u);
        float *d = dst + (size_t)k * dst_stride;
        NN__LD(0); NN__LD(1); NN__LD(2); NN__LD(3); NN__LD(4); NN__LD(5); NN__LD(6);
        NN__LD(7); NN__LD(8); NN__LD(9); NN__LD(10); NN__LD(11); NN__LD(12); NN__LD(13);
        NN__LD(14); NN__LD(15);
        NN__GEMM_T16();
        /* rows past kn are not stored: the next panel may start there */
        NN__ST(0);
        if (kn > 1) NN__ST(1);
        if (kn > 2) NN__ST(2);
        if (kn > 3) NN__ST(3);
        if (kn > 4) NN__ST(4);
        if (kn > 5) NN__ST(5);
        if (kn > 6) NN__ST(6);
        if (kn > 7) NN__ST(7);
        if (kn > 8) NN__ST(8);
        if (kn > 9) NN__ST(9);
        if (kn > 10) NN__ST(10);
        if (kn > 11) NN__ST(11);
        if (kn > 12) NN__ST(12);
        if (kn > 13) NN__ST(13);
        if (kn > 14) NN__ST(14);
        if (kn > 15) NN__ST(15);
    }
}
#undef NN__LD
#undef NN__ST
#undef NN__T2
#undef NN__T4
#undef NN__T8
#undef NN__T16
#undef NN__GEMM_T16

static void nn__gemm_pack_a(int transA, const float *A, int lda, int i0, int mr,
                            int k0, int kc, float alpha, float *dst) {
    __m512 va = _mm512_set1_ps(alpha);
    int k;
    if (!transA) {
        /* rows of A are k-contiguous: transpose 12 (+4 zero) rows x 16 k */
        nn__gemm_pack_t16(A + (size_t)i0 * lda + k0, (size_t)lda, mr, kc, va, dst,
                          NN__GEMM_MR, (__mmask16)0x0FFF);
        return;
    }
    {
        __mmask16 m = (__mmask16)((1u << mr) - 1u);
        const float *s = A + (size_t)k0 * lda + i0;
        for (k = 0; k < kc; k++)
            _mm512_mask_storeu_ps(dst + (size_t)k * NN__GEMM_MR, (__mmask16)0x0FFF,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + (size_t)k * lda), va));
    }
}

/* B^T micro-panel: columns j0..j0+nr of op(B) are rows of B, k-contiguous:
   transpose 16 of them at a time. */
static void nn__gemm_pack_bt(const float *B, int ldb, int k0, int kc, int j0, int nr,
                             float *dst) {
    __m512 one = _mm512_set1_ps(1.0f);
    const float *s = B + (size_t)j0 * ldb + k0;
    int k;
    nn__gemm_pack_t16(s, (size_t)ldb, NN__MIN(nr, 16), kc, one, dst, NN__GEMM_NR,
                      (__mmask16)0xFFFF);
    if (nr > 16)
        nn__gemm_pack_t16(s + (size_t)16 * ldb, (size_t)ldb, nr - 16, kc, one, dst + 16,
                          NN__GEMM_NR, (__mmask16)0xFFFF);
    else
        for (k = 0; k < kc; k++)
            _mm512_store_ps(dst + (size_t)k * NN__GEMM_NR + 16, _mm512_setzero_ps());
}

#else /* portable packing */

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

/* B^T micro-panel: columns j0..j0+nr of op(B), stored [k][NR] with columns
   nr..NR zero. */
static void nn__gemm_pack_bt(const float *B, int ldb, int k0, int kc, int j0, int nr,
                             float *dst) {
    int j, k;
    for (j = 0; j < NN__GEMM_NR; j++) {
        const float *s = B + (size_t)(j0 + j) * ldb + k0;
        if (j < nr) for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_NR + j] = s[k];
        else for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_NR + j] = 0.0f;
    }
}

#endif

/* A block of untransposed B, k0..k0+kc x j0..j0+nc, into micro-panels [k][NR]
   (the last one zero-padded).  Row by row, so the reads run along B's rows. */
static void nn__gemm_pack_b_rows(const float *B, int ldb, int k0, int kc, int j0, int nc,
                                 float *dst) {
    int k, p, np = nc / NN__GEMM_NR, rem = nc % NN__GEMM_NR;
    size_t pstride = (size_t)kc * NN__GEMM_NR;
    for (k = 0; k < kc; k++) {
        const float *s = B + (size_t)(k0 + k) * ldb + j0;
        float *d = dst + (size_t)k * NN__GEMM_NR;
        for (p = 0; p < np; p++)
            memcpy(d + p * pstride, s + p * NN__GEMM_NR, NN__GEMM_NR * sizeof(float));
        if (rem) {
            memcpy(d + np * pstride, s + np * NN__GEMM_NR, (size_t)rem * sizeof(float));
            memset(d + np * pstride + rem, 0, (size_t)(NN__GEMM_NR - rem) * sizeof(float));
        }
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

/* The packed-B buffers of a call (one slice per thread) belong to the thread
   that calls nn_sgemm and are kept for its next call, so a training loop in
   steady state never allocates.  OpenMP worker threads own nothing. */
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

/* Floats of packed B one thread needs: kc x (an N block, whole panels). */
static size_t nn__gemm_slice(int kc, int N) {
    int w = NN__MIN(N, NN__GEMM_NC) + NN__GEMM_NR - 1;
    size_t n = (size_t)kc * (size_t)(w / NN__GEMM_NR * NN__GEMM_NR);
    return (n + 15) / 16 * 16; /* keeps every slice 64-byte aligned */
}

/* C[i0:i0+m, j0:j0+n] on one thread: the whole blocked algorithm, with
   bpack (nn__gemm_slice floats) for packed B. */
static void nn__gemm_block(const nn__gemm_job *g, int i0, int m, int j0, int n, float *bpack) {
    float apack[NN__GEMM_MR * NN__GEMM_KC];
    int nnb = (n + NN__GEMM_NC - 1) / NN__GEMM_NC, ncb, jc, pc;
    if (m <= 0 || n <= 0) return;
    /* Even N blocks, whole micro-panels. */
    ncb = (n + nnb - 1) / nnb;
    ncb = (ncb + NN__GEMM_NR - 1) / NN__GEMM_NR * NN__GEMM_NR;
    for (jc = j0; jc < j0 + n; jc += ncb) {
        int nc = NN__MIN(ncb, j0 + n - jc);
        int n_panels = (nc + NN__GEMM_NR - 1) / NN__GEMM_NR;
        for (pc = 0; pc < g->K; pc += g->kc) {
            int kc = NN__MIN(g->kc, g->K - pc), p, ir;
            float beta = pc == 0 ? g->beta : 1.0f;
            /* With one or two row panels B is read once or twice: packing it
               would cost more than it saves, so full panels are read in place
               (and only the ragged last one is packed). */
            int direct = !g->transB && m <= 2 * NN__GEMM_MR, full = nc / NN__GEMM_NR;
            if (direct) {
                if (full < n_panels)
                    nn__gemm_pack_b_rows(g->B, g->ldb, pc, kc, jc + full * NN__GEMM_NR,
                                         nc - full * NN__GEMM_NR, bpack);
            } else if (!g->transB) {
                nn__gemm_pack_b_rows(g->B, g->ldb, pc, kc, jc, nc, bpack);
            } else {
                for (p = 0; p < n_panels; p++)
                    nn__gemm_pack_bt(g->B, g->ldb, pc, kc, jc + p * NN__GEMM_NR,
                                     NN__MIN(NN__GEMM_NR, nc - p * NN__GEMM_NR),
                                     bpack + (size_t)p * kc * NN__GEMM_NR);
            }
            for (ir = i0; ir < i0 + m; ir += NN__GEMM_MR) {
                int mr = NN__MIN(NN__GEMM_MR, i0 + m - ir);
                float *c = g->C + (size_t)ir * g->ldc + jc;
                nn__gemm_pack_a(g->transA, g->A, g->lda, ir, mr, pc, kc, g->alpha, apack);
                for (p = 0; p < n_panels; p++) {
                    const float *b = bpack + (size_t)p * kc * NN__GEMM_NR;
                    size_t bstep = NN__GEMM_NR;
                    if (direct) {
                        if (p < full) {
                            b = g->B + (size_t)pc * g->ldb + jc + p * NN__GEMM_NR;
                            bstep = (size_t)g->ldb;
                        } else {
                            b = bpack;
                        }
                    }
                    nn__gemm_tile(kc, apack, b, bstep, c + p * NN__GEMM_NR, g->ldc, mr,
                                  NN__MIN(NN__GEMM_NR, nc - p * NN__GEMM_NR), beta);
                }
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
    float *bpack;
    size_t slice;
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
    slice = nn__gemm_slice(g.kc, N);
#ifdef NN__OMP_ON
    if ((double)M * N * K >= (double)NN__GEMM_MT_MIN && !omp_in_parallel()) {
        int nt = nn_get_threads(), pm, pn;
        nn__gemm_grid(M, N, K, nt, &pm, &pn);
        if (pm * pn > 1 && (bpack = nn__gemm_buffer(slice * (size_t)(pm * pn))) != NULL) {
            int npm = (M + NN__GEMM_MR - 1) / NN__GEMM_MR;
            int npn = (N + NN__GEMM_NR - 1) / NN__GEMM_NR;
            NN__OMP(parallel num_threads(pm * pn))
            {
                int tid = omp_get_thread_num(), team = omp_get_num_threads();
                if (team == pm * pn) {
                    int r = tid / pn, c = tid % pn;
                    int i0 = (r * npm / pm) * NN__GEMM_MR, i1 = ((r + 1) * npm / pm) * NN__GEMM_MR;
                    int j0 = (c * npn / pn) * NN__GEMM_NR, j1 = ((c + 1) * npn / pn) * NN__GEMM_NR;
                    nn__gemm_block(&g, i0, NN__MIN(i1, M) - i0, j0, NN__MIN(j1, N) - j0,
                                   bpack + slice * (size_t)tid);
                } else if (tid == 0) { /* fewer threads than asked for */
                    nn__gemm_block(&g, 0, M, 0, N, bpack);
                }
            }
            return;
        }
    }
#endif
    bpack = nn__gemm_buffer(slice);
    if (!bpack) { /* out of memory: the slow loop needs no buffer */
        nn_sgemm_ref(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    nn__gemm_block(&g, 0, M, 0, N, bpack);
}
