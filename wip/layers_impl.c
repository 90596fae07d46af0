/* ===== >>layers (implementation) ========================================= */

/* Reductions with 16 independent partial sums: the compiler can vectorize
   them, and the order is fixed, so results do not depend on threads. */
static float nn__sum16(const float *x, size_t n) {
    float acc[16] = {0}, s = 0.0f;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) acc[j] += x[i + j];
    for (; i < n; i++) acc[0] += x[i];
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}
static float nn__dot16(const float *a, const float *b, size_t n) {
    float acc[16] = {0}, s = 0.0f;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}
/* sum (x - m)^2 and sum g (x - m). */
static float nn__sqdev16(const float *x, float m, size_t n) {
    float acc[16] = {0}, s = 0.0f;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    for (; i < n; i++) acc[0] += (x[i] - m) * (x[i] - m);
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}
static float nn__dotdev16(const float *g, const float *x, float m, size_t n) {
    float acc[16] = {0}, s = 0.0f;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) acc[j] += g[i + j] * (x[i + j] - m);
    for (; i < n; i++) acc[0] += g[i] * (x[i] - m);
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}

#if defined(__cplusplus)
#define NN__RESTRICT __restrict
#else
#define NN__RESTRICT restrict
#endif

/* dst[i] = src[i] and dst[i] += src[i] for short rows that do not overlap. */
static void nn__row_copy(float *NN__RESTRICT dst, const float *NN__RESTRICT src, int n) {
    int i;
    for (i = 0; i < n; i++) dst[i] = src[i];
}
static void nn__row_add(float *NN__RESTRICT dst, const float *NN__RESTRICT src, int n) {
    int i;
    for (i = 0; i < n; i++) dst[i] += src[i];
}

/* Below this many floats of work a loop stays on one thread. */
#define NN__PAR_MIN 32768.0

/* out[n, c, :] += b[c] for N x C planes of S values. */
static void nn__add_channel_bias(float *out, const float *b, int N, int C, size_t S) {
    int p, planes = N * C;
    NN__OMP(parallel for schedule(static) if((double)planes * (double)S > NN__PAR_MIN))
    for (p = 0; p < planes; p++) {
        float v = b[p % C], *o = out + (size_t)p * S;
        size_t i;
        for (i = 0; i < S; i++) o[i] += v;
    }
}

/* gb[c] += sum over n and the S values of g[n, c, :]. */
static void nn__channel_sum(const float *g, int N, int C, size_t S, float *gb) {
    int c;
    NN__OMP(parallel for schedule(static) if((double)N * (double)C * (double)S > NN__PAR_MIN))
    for (c = 0; c < C; c++) {
        double acc = 0.0;
        int n;
        for (n = 0; n < N; n++) acc += (double)nn__sum16(g + ((size_t)n * C + c) * S, S);
        gb[c] += (float)acc;
    }
}

/* --- convolution lowered to GEMM ---

   One geometry serves conv and transposed conv.  The "image" has C channels
   of H x W (a conv's input, a transposed conv's output).  The "other" side
   has F channels of P = OH x OW positions (a conv's output, a transposed
   conv's input).  im2col turns image samples into col, a matrix of C*KH*KW
   rows and (samples x P) columns:
       col[(c KH + kh) KW + kw][j P + oh OW + ow]
           = image[n0 + j][c][oh SH - PH + kh DH][ow SW - PW + kw DW]  (0 outside).
   The weight, read as a matrix [F, C/G*KH*KW] (conv: [OC, C/G, KH, KW];
   transposed: [C_in, OC/G, KH, KW], same view), links them per group g:
       other_g = W_g col_g,   dcol_g = W_g^T dother_g,   dW_g += dother_g col_g^T.
   Samples are processed in chunks folded into the GEMM's N dimension; the
   col buffer (one chunk) and a buffer for the chunk of the other side come
   from the graph arena and are kept for the backward pass. */

#ifndef NN__CONV_COLS
#define NN__CONV_COLS 512 /* GEMMs at least this wide (measured: 1 to 512 are
                             equally fast at 1 thread, 2048+ slower; wider
                             GEMMs split better over threads) */
#endif
#ifndef NN__CONV_COL_FLOATS
#define NN__CONV_COL_FLOATS (4u << 20) /* at most 16 MB of col per layer */
#endif

enum { NN__CONV, NN__CONV_T };

typedef struct nn__convg {
    int N, C, H, W;          /* image */
    int F, OH, OW;           /* other side */
    int KH, KW, SH, SW, PH, PW, DH, DW, G;
    int chunk;               /* samples per GEMM */
    int direct;              /* 1x1, stride 1, no padding: the image is its own col */
    int depthwise;           /* one image channel per group: direct loops, no GEMM */
    float *col;              /* C*KH*KW x chunk*P, or NULL when not needed */
    float *tmp;              /* F x chunk*P, or NULL when chunk == 1 */
} nn__convg;

/* The valid output range [lo, hi) of positions o with o*s + off in [0, size). */
static void nn__conv_range(int out, int s, int off, int size, int *lo, int *hi) {
    int a = 0, b = out;
    while (a < b && a * s + off < 0) a++;
    while (b > a && (b - 1) * s + off >= size) b--;
    *lo = a;
    *hi = b;
}

static void nn__im2col(const nn__convg *q, const float *img, int n0, int cn, float *col) {
    int rows = q->C * q->KH * q->KW, r;
    size_t P = (size_t)q->OH * (size_t)q->OW, ld = (size_t)cn * P, HW = (size_t)q->H * (size_t)q->W;
    NN__OMP(parallel for schedule(static) if((double)rows * (double)ld > NN__PAR_MIN))
    for (r = 0; r < rows; r++) {
        int c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;
        int off = kw * q->DW - q->PW, lo, hi, j, oh, ow;
        nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
        for (j = 0; j < cn; j++) {
            const float *src = img + ((size_t)(n0 + j) * q->C + (size_t)c) * HW;
            float *dst = col + (size_t)r * ld + (size_t)j * P;
            if (q->direct) {
                memcpy(dst, src, P * sizeof(float));
                continue;
            }
            for (oh = 0; oh < q->OH; oh++, dst += q->OW) {
                int ih = oh * q->SH - q->PH + kh * q->DH;
                const float *s;
                if (ih < 0 || ih >= q->H) {
                    memset(dst, 0, sizeof(float) * (size_t)q->OW);
                    continue;
                }
                s = src + (size_t)ih * q->W;
                if (q->SW == 1) {
                    /* rows are short (often < 32 floats): inline loops, no calls */
                    for (ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    nn__row_copy(dst + lo, s + lo + off, hi - lo);
                    for (ow = hi; ow < q->OW; ow++) dst[ow] = 0.0f;
                } else {
                    for (ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    for (ow = lo; ow < hi; ow++) dst[ow] = s[ow * q->SW + off];
                    for (ow = hi; ow < q->OW; ow++) dst[ow] = 0.0f;
                }
            }
        }
    }
}

/* img[n0 + j] += the col entries that came from it (the adjoint of im2col). */
static void nn__col2im(const nn__convg *q, const float *col, int n0, int cn, float *img) {
    int planes = cn * q->C, pl;
    size_t P = (size_t)q->OH * (size_t)q->OW, ld = (size_t)cn * P, HW = (size_t)q->H * (size_t)q->W;
    NN__OMP(parallel for schedule(static) if((double)planes * (double)HW * q->KH * q->KW > NN__PAR_MIN))
    for (pl = 0; pl < planes; pl++) {
        int j = pl / q->C, c = pl % q->C, kh, kw, oh, ow;
        float *dst = img + ((size_t)(n0 + j) * q->C + (size_t)c) * HW;
        for (kh = 0; kh < q->KH; kh++) {
            for (kw = 0; kw < q->KW; kw++) {
                int r = (c * q->KH + kh) * q->KW + kw, off = kw * q->DW - q->PW, lo, hi;
                const float *src = col + (size_t)r * ld + (size_t)j * P;
                nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                for (oh = 0; oh < q->OH; oh++) {
                    int ih = oh * q->SH - q->PH + kh * q->DH;
                    const float *s = src + (size_t)oh * q->OW;
                    float *d;
                    if (ih < 0 || ih >= q->H) continue;
                    d = dst + (size_t)ih * q->W;
                    if (q->SW == 1) {
                        nn__row_add(d + lo + off, s + lo, hi - lo);
                    } else {
                        for (ow = lo; ow < hi; ow++) d[ow * q->SW + off] += s[ow];
                    }
                }
            }
        }
    }
}

/* Between the tensor layout [N][F][P] and a chunk's GEMM layout [F][cn P]. */
static void nn__conv_gather(const nn__convg *q, const float *other, int n0, int cn, float *tmp) {
    int f;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    NN__OMP(parallel for schedule(static) if((double)q->F * (double)cn * (double)P > NN__PAR_MIN))
    for (f = 0; f < q->F; f++) {
        int j;
        for (j = 0; j < cn; j++)
            memcpy(tmp + ((size_t)f * cn + (size_t)j) * P,
                   other + ((size_t)(n0 + j) * q->F + (size_t)f) * P, P * sizeof(float));
    }
}
static void nn__conv_scatter(const nn__convg *q, const float *tmp, int n0, int cn, float *other,
                             int accumulate) {
    int f;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    NN__OMP(parallel for schedule(static) if((double)q->F * (double)cn * (double)P > NN__PAR_MIN))
    for (f = 0; f < q->F; f++) {
        int j;
        size_t i;
        for (j = 0; j < cn; j++) {
            const float *s = tmp + ((size_t)f * cn + (size_t)j) * P;
            float *d = other + ((size_t)(n0 + j) * q->F + (size_t)f) * P;
            if (accumulate) for (i = 0; i < P; i++) d[i] += s[i];
            else memcpy(d, s, P * sizeof(float));
        }
    }
}

/* Per chunk, col = im2col(img), then
     out (if given):  out = W col   (accumulate: out += W col)
     gw  (if given):  gw += src col^T   with src the other side (e.g. dy). */
static void nn__conv_from_image(const nn__convg *q, const float *img, const float *w,
                                float *out, int accumulate, const float *src, float *gw) {
    int Cg = q->C / q->G, Fg = q->F / q->G, CgK = Cg * q->KH * q->KW, n0, g;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    for (n0 = 0; n0 < q->N; n0 += q->chunk) {
        int cn = NN__MIN(q->chunk, q->N - n0), cols = cn * (int)P;
        const float *col;
        if (q->direct && cn == 1) {
            col = img + (size_t)n0 * q->C * P;
        } else {
            nn__im2col(q, img, n0, cn, q->col);
            col = q->col;
        }
        if (out) {
            float *dst = cn == 1 ? out + (size_t)n0 * q->F * P : q->tmp;
            float beta = cn == 1 && accumulate ? 1.0f : 0.0f;
            for (g = 0; g < q->G; g++)
                nn_sgemm(0, 0, Fg, cols, CgK, 1.0f, w + (size_t)g * Fg * CgK, CgK,
                         col + (size_t)g * CgK * cols, cols, beta, dst + (size_t)g * Fg * cols, cols);
            if (cn > 1) nn__conv_scatter(q, q->tmp, n0, cn, out, accumulate);
        }
        if (gw) {
            const float *s = src + (size_t)n0 * q->F * P;
            if (cn > 1) {
                nn__conv_gather(q, src, n0, cn, q->tmp);
                s = q->tmp;
            }
            for (g = 0; g < q->G; g++)
                nn_sgemm(0, 1, Fg, CgK, cols, 1.0f, s + (size_t)g * Fg * cols, cols,
                         col + (size_t)g * CgK * cols, cols, 1.0f, gw + (size_t)g * Fg * CgK, CgK);
        }
    }
}

/* img += col2im(W^T other), per chunk. */
static void nn__conv_to_image(const nn__convg *q, const float *other, const float *w, float *img) {
    int Cg = q->C / q->G, Fg = q->F / q->G, CgK = Cg * q->KH * q->KW, n0, g;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    for (n0 = 0; n0 < q->N; n0 += q->chunk) {
        int cn = NN__MIN(q->chunk, q->N - n0), cols = cn * (int)P;
        const float *s = other + (size_t)n0 * q->F * P;
        if (cn > 1) {
            nn__conv_gather(q, other, n0, cn, q->tmp);
            s = q->tmp;
        }
        if (q->direct && cn == 1) {
            float *d = img + (size_t)n0 * q->C * P;
            for (g = 0; g < q->G; g++)
                nn_sgemm(1, 0, CgK, cols, Fg, 1.0f, w + (size_t)g * Fg * CgK, CgK,
                         s + (size_t)g * Fg * cols, cols, 1.0f, d + (size_t)g * CgK * cols, cols);
            continue;
        }
        for (g = 0; g < q->G; g++)
            nn_sgemm(1, 0, CgK, cols, Fg, 1.0f, w + (size_t)g * Fg * CgK, CgK,
                     s + (size_t)g * Fg * cols, cols, 0.0f, q->col + (size_t)g * CgK * cols, cols);
        nn__col2im(q, q->col, n0, cn, img);
    }
}

/* Depthwise conv (one image channel per group, F/G filters each) as direct
   loops: a GEMM with K = KH*KW would be mostly overhead. */
static void nn__dw_forward(const nn__convg *q, const float *img, const float *w, float *out) {
    int planes = q->N * q->F, pl, Fg = q->F / q->G;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    NN__OMP(parallel for schedule(static) if((double)planes * (double)P * q->KH * q->KW > NN__PAR_MIN))
    for (pl = 0; pl < planes; pl++) {
        int n = pl / q->F, f = pl % q->F, c = f / Fg, kh, kw, oh, ow;
        const float *x = img + ((size_t)n * q->C + (size_t)c) * HW;
        const float *wf = w + (size_t)f * q->KH * q->KW;
        float *y = out + (size_t)pl * P;
        memset(y, 0, P * sizeof(float));
        /* tap by tap: the valid column range is computed once per tap */
        for (kh = 0; kh < q->KH; kh++) {
            for (kw = 0; kw < q->KW; kw++) {
                int off = kw * q->DW - q->PW, lo, hi;
                float wv = wf[kh * q->KW + kw];
                nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                for (oh = 0; oh < q->OH; oh++) {
                    int ih = oh * q->SH - q->PH + kh * q->DH;
                    const float *xr;
                    float *yr = y + (size_t)oh * q->OW;
                    if (ih < 0 || ih >= q->H) continue;
                    xr = x + (size_t)ih * q->W;
                    if (q->SW == 1)
                        for (ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow + off];
                    else
                        for (ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * q->SW + off];
                }
            }
        }
    }
}

static void nn__dw_backward(const nn__convg *q, const float *img, const float *w, const float *dy,
                            float *gimg, float *gw) {
    int Fg = q->F / q->G, KK = q->KH * q->KW;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    double work = (double)q->N * q->F * (double)P * KK;
    (void)work; /* only the OpenMP clauses read it */
    if (gimg) {
        int planes = q->N * q->C, pl;
        NN__OMP(parallel for schedule(static) if(work > NN__PAR_MIN))
        for (pl = 0; pl < planes; pl++) {
            int n = pl / q->C, c = pl % q->C, f, kh, kw, oh, ow;
            float *gx = gimg + (size_t)pl * HW;
            for (f = c * Fg; f < (c + 1) * Fg; f++) {
                const float *g = dy + ((size_t)n * q->F + (size_t)f) * P;
                const float *wf = w + (size_t)f * KK;
                for (kh = 0; kh < q->KH; kh++) {
                    for (kw = 0; kw < q->KW; kw++) {
                        int off = kw * q->DW - q->PW, lo, hi;
                        float wv = wf[kh * q->KW + kw];
                        nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                        for (oh = 0; oh < q->OH; oh++) {
                            int ih = oh * q->SH - q->PH + kh * q->DH;
                            const float *gr = g + (size_t)oh * q->OW;
                            float *xr;
                            if (ih < 0 || ih >= q->H) continue;
                            xr = gx + (size_t)ih * q->W;
                            if (q->SW == 1)
                                for (ow = lo; ow < hi; ow++) xr[ow + off] += wv * gr[ow];
                            else
                                for (ow = lo; ow < hi; ow++) xr[ow * q->SW + off] += wv * gr[ow];
                        }
                    }
                }
            }
        }
    }
    if (gw) {
        int f;
        NN__OMP(parallel for schedule(static) if(work > NN__PAR_MIN))
        for (f = 0; f < q->F; f++) {
            int c = f / Fg, n, kh, kw, oh, ow;
            for (kh = 0; kh < q->KH; kh++) {
                for (kw = 0; kw < q->KW; kw++) {
                    int off = kw * q->DW - q->PW, lo, hi;
                    double acc = 0.0;
                    nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                    for (n = 0; n < q->N; n++) {
                        const float *g = dy + ((size_t)n * q->F + (size_t)f) * P;
                        const float *x = img + ((size_t)n * q->C + (size_t)c) * HW;
                        float part = 0.0f;
                        for (oh = 0; oh < q->OH; oh++) {
                            int ih = oh * q->SH - q->PH + kh * q->DH;
                            const float *gr = g + (size_t)oh * q->OW, *xr;
                            if (ih < 0 || ih >= q->H || hi <= lo) continue;
                            xr = x + (size_t)ih * q->W;
                            if (q->SW == 1) {
                                part += nn__dot16(gr + lo, xr + lo + off, (size_t)(hi - lo));
                            } else {
                                for (ow = lo; ow < hi; ow++) part += gr[ow] * xr[ow * q->SW + off];
                            }
                        }
                        acc += (double)part;
                    }
                    gw[(size_t)f * KK + kh * q->KW + kw] += (float)acc;
                }
            }
        }
    }
}

/* What the backward pass needs: the geometry, its buffers, the kind. */
typedef struct nn__conv_saved {
    nn__convg q;
    int kind;
} nn__conv_saved;

static void nn__conv_backward(nn__node *n) {
    const nn__conv_saved *sv = (const nn__conv_saved *)n->saved;
    const nn__convg *q = &sv->q;
    nn_tensor *x = n->in[0], *w = n->in[1];
    float *gx = nn__in_grad(n, 0), *gw = nn__in_grad(n, 1);
    float *gb = n->nin > 2 ? nn__in_grad(n, 2) : NULL;
    const float *dy = n->out->grad;
    if (sv->kind == NN__CONV) {
        /* image = x, other = y */
        if (gb) nn__channel_sum(dy, q->N, q->F, (size_t)q->OH * (size_t)q->OW, gb);
        if (q->depthwise) {
            nn__dw_backward(q, x->data, w->data, dy, gx, gw);
            return;
        }
        if (gw) nn__conv_from_image(q, x->data, w->data, NULL, 0, dy, gw);
        if (gx) nn__conv_to_image(q, dy, w->data, gx);
    } else {
        /* image = y, other = x: dx = W im2col(dy), dW += x im2col(dy)^T */
        if (gb) nn__channel_sum(dy, q->N, q->C, (size_t)q->H * (size_t)q->W, gb);
        if (gx || gw) nn__conv_from_image(q, dy, w->data, gx, 1, x->data, gw);
    }
}

/* Check the arguments of a convolution of `dims` (1 or 2) spatial
   dimensions, fill the geometry and the output shape.  0 after a report. */
static int nn__conv_setup(const char *op, int kind, int dims, const nn_tensor *x,
                          const nn_tensor *w, const nn_tensor *b, nn_conv_opts o,
                          nn__convg *q, nn_shape *s) {
    int d = dims + 2, K, KH, KW, S, P, D, G, OP, inC, outC, H, W, OH, OW, eff;
    const char *lay = dims == 2 ? "[N,C,H,W]" : "[N,C,L]";
    memset(q, 0, sizeof *q);
    if (!x || !w || x->ndim != d || w->ndim != d) {
        nn__misuse("%s: needs x %s and a %d-D weight, got x %s and weight %s", op, lay, d,
                   nn__ts(x), nn__ts(w));
        return 0;
    }
    S = o.stride ? o.stride : 1;
    D = o.dilation ? o.dilation : 1;
    G = o.groups ? o.groups : 1;
    P = o.padding;
    OP = o.output_padding;
    KW = w->shape[d - 1];
    KH = dims == 2 ? w->shape[2] : 1;
    K = KW;
    if (S < 1 || D < 1 || G < 1 || P < 0 || OP < 0 || (o.kernel && (o.kernel != KW || (dims == 2 && o.kernel != KH))) ||
        (dims == 2 && KH != KW)) {
        nn__misuse("%s: invalid options kernel=%d stride=%d padding=%d dilation=%d groups=%d "
                   "output_padding=%d for weight %s", op, o.kernel, o.stride, o.padding,
                   o.dilation, o.groups, o.output_padding, nn__ts(w));
        return 0;
    }
    if (kind == NN__CONV && OP) {
        nn__misuse("%s: output_padding=%d applies to transposed convolutions only", op, OP);
        return 0;
    }
    if (kind == NN__CONV_T && OP >= S && OP >= D) {
        nn__misuse("%s: output_padding %d must be smaller than the stride %d or the dilation %d",
                   op, OP, S, D);
        return 0;
    }
    inC = x->shape[1];
    if (kind == NN__CONV) {
        outC = w->shape[0];
        if (inC % G || outC % G || w->shape[1] * G != inC) {
            nn__misuse("%s: input %s has %d channels, but weight %s with groups=%d expects %d "
                       "(and out channels %d divisible by groups)", op, nn__ts(x), inC, nn__ts(w),
                       G, w->shape[1] * G, outC);
            return 0;
        }
    } else {
        outC = w->shape[1] * G;
        if (inC % G || w->shape[0] != inC) {
            nn__misuse("%s: input %s has %d channels, but weight %s (in, out/groups, ...) with "
                       "groups=%d expects %d", op, nn__ts(x), inC, nn__ts(w), G, w->shape[0]);
            return 0;
        }
    }
    if (b && (b->ndim != 1 || b->shape[0] != outC)) {
        nn__misuse("%s: bias %s does not fit %d output channels (weight %s)", op, nn__ts(b), outC,
                   nn__ts(w));
        return 0;
    }
    H = dims == 2 ? x->shape[2] : 1;
    W = x->shape[d - 1];
    eff = D * (K - 1) + 1;
    if (kind == NN__CONV) {
        if (eff > W + 2 * P || (dims == 2 && eff > H + 2 * P) || H < 1 || W < 1) {
            nn__misuse("%s: kernel %d (dilation %d: extent %d) is larger than the padded input "
                       "(x %s, padding %d)", op, K, D, eff, nn__ts(x), P);
            return 0;
        }
        OH = dims == 2 ? (H + 2 * P - eff) / S + 1 : 1;
        OW = (W + 2 * P - eff) / S + 1;
        q->N = x->shape[0]; q->C = inC; q->H = H; q->W = W;
        q->F = outC; q->OH = OH; q->OW = OW;
    } else {
        OH = dims == 2 ? (H - 1) * S - 2 * P + eff + OP : 1;
        OW = (W - 1) * S - 2 * P + eff + OP;
        if (OH < 1 || OW < 1 || H < 1 || W < 1) {
            nn__misuse("%s: padding %d leaves no output for input %s and weight %s", op, P,
                       nn__ts(x), nn__ts(w));
            return 0;
        }
        /* The image is the output; the other side is the input. */
        q->N = x->shape[0]; q->C = outC; q->H = OH; q->W = OW;
        q->F = inC; q->OH = H; q->OW = W;
    }
    q->KH = KH; q->KW = KW;
    q->SH = dims == 2 ? S : 1; q->SW = S;
    q->PH = dims == 2 ? P : 0; q->PW = P;
    q->DH = dims == 2 ? D : 1; q->DW = D;
    q->G = G;
    *s = nn_shape_of(x);
    s->d[1] = outC;
    if (dims == 2) s->d[2] = OH;
    s->d[d - 1] = OW;
    return 1;
}

static nn_tensor *nn__conv(const char *op, int kind, int dims, nn_tensor *x, nn_tensor *w,
                           nn_tensor *b, nn_conv_opts o) {
    nn_tensor *in[3], *out;
    nn__convg q;
    nn_shape s;
    size_t P, colrow, zero;
    in[0] = x;
    in[1] = w;
    in[2] = b;
    if (!nn__conv_setup(op, kind, dims, x, w, b, o, &q, &s)) return NULL;
    out = nn__op(op, in, b ? 3 : 2, s, nn__conv_backward);
    if (!out) return NULL;
    P = (size_t)q.OH * (size_t)q.OW;
    colrow = (size_t)q.C * (size_t)q.KH * (size_t)q.KW;
    q.direct = q.KH == 1 && q.KW == 1 && q.SH == 1 && q.SW == 1 && q.PH == 0 && q.PW == 0;
    q.depthwise = kind == NN__CONV && q.C == q.G && q.G > 1;
    /* Samples per GEMM: wide enough for the GEMM, bounded col buffer. */
    q.chunk = (int)NN__MIN((size_t)q.N, (NN__CONV_COLS + P - 1) / P);
    while (q.chunk > 1 && colrow * P * (size_t)q.chunk > NN__CONV_COL_FLOATS) q.chunk--;
    if (q.chunk < 1) q.chunk = 1;
    if (!q.depthwise) {
        if (!(q.direct && q.chunk == 1)) {
            q.col = (float *)nn__scratch(out, colrow * P * (size_t)q.chunk * sizeof(float));
            if (!q.col) return NULL;
        }
        if (q.chunk > 1) {
            q.tmp = (float *)nn__scratch(out, (size_t)q.F * P * (size_t)q.chunk * sizeof(float));
            if (!q.tmp) return NULL;
        }
    }
    if (out->node) {
        nn__conv_saved *sv = (nn__conv_saved *)nn__scratch(out, sizeof(nn__conv_saved));
        if (!sv) return NULL;
        sv->q = q;
        sv->kind = kind;
        out->node->saved = sv;
    }
    if (kind == NN__CONV) {
        if (q.depthwise) nn__dw_forward(&q, x->data, w->data, out->data);
        else nn__conv_from_image(&q, x->data, w->data, out->data, 0, NULL, NULL);
        if (b) nn__add_channel_bias(out->data, b->data, q.N, q.F, P);
    } else {
        zero = out->numel;
        memset(out->data, 0, zero * sizeof(float));
        nn__conv_to_image(&q, x->data, w->data, out->data);
        if (b) nn__add_channel_bias(out->data, b->data, q.N, q.C, (size_t)q.H * (size_t)q.W);
    }
    return out;
}

NNDEF nn_tensor *nn_conv2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts) {
    return nn__conv("nn_conv2d", NN__CONV, 2, x, w, b, opts);
}
NNDEF nn_tensor *nn_conv1d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts) {
    return nn__conv("nn_conv1d", NN__CONV, 1, x, w, b, opts);
}
NNDEF nn_tensor *nn_conv_transpose2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b,
                                        nn_conv_opts opts) {
    return nn__conv("nn_conv_transpose2d", NN__CONV_T, 2, x, w, b, opts);
}

/* Conv modules keep their options in `user`. */
static nn_tensor *nn__conv_forward(nn_module *m, nn_tensor *x) {
    const nn_conv_opts *o = (const nn_conv_opts *)m->user;
    nn_tensor *b = m->nparams > 1 ? m->params[1].tensor : NULL;
    int dims = (int)m->fopt[0], transposed = (int)m->fopt[1];
    if (transposed) return nn_conv_transpose2d_op(x, m->params[0].tensor, b, *o);
    return dims == 2 ? nn_conv2d_op(x, m->params[0].tensor, b, *o)
                     : nn_conv1d_op(x, m->params[0].tensor, b, *o);
}
static void nn__conv_destroy(nn_module *m) { nn__free(m->user); }

static nn_module *nn__conv_make(const char *op, const char *type, int dims, int transposed,
                                int in_ch, int out_ch, nn_conv_opts o) {
    nn_module *m;
    nn_conv_opts *keep;
    nn_shape ws;
    int G = o.groups ? o.groups : 1, K = o.kernel, fan_in;
    float bound;
    if (in_ch < 1 || out_ch < 1 || K < 1 || G < 1 || in_ch % G || out_ch % G || o.stride < 0 ||
        o.padding < 0 || o.dilation < 0 || o.output_padding < 0 ||
        (!transposed && o.output_padding)) {
        nn__misuse("%s: invalid in_ch=%d out_ch=%d kernel=%d stride=%d padding=%d dilation=%d "
                   "groups=%d output_padding=%d (kernel is required; groups must divide both "
                   "channel counts)", op, in_ch, out_ch, o.kernel, o.stride, o.padding,
                   o.dilation, o.groups, o.output_padding);
        return NULL;
    }
    if (!(m = nn_module_new(type, nn__conv_forward))) return NULL;
    m->fopt[0] = (float)dims;
    m->fopt[1] = (float)transposed;
    if (!(keep = (nn_conv_opts *)nn__malloc(sizeof(nn_conv_opts)))) {
        nn_module_free(m);
        return NULL;
    }
    *keep = o;
    m->user = keep;
    m->destroy = nn__conv_destroy;
    /* PyTorch: fan_in = weight.size(1) * kernel elements. */
    if (dims == 2) ws = transposed ? NN_SHAPE(in_ch, out_ch / G, K, K) : NN_SHAPE(out_ch, in_ch / G, K, K);
    else ws = NN_SHAPE(out_ch, in_ch / G, K);
    fan_in = ws.d[1] * K * (dims == 2 ? K : 1);
    bound = 1.0f / sqrtf((float)fan_in);
    if (!nn_module_add_param(m, "weight", nn__uniform_param(ws, bound)) ||
        (!o.no_bias && !nn_module_add_param(m, "bias", nn__uniform_param(NN_SHAPE(out_ch), bound)))) {
        nn_module_free(m);
        return NULL;
    }
    return m;
}

NNDEF nn_module *nn_conv2d(int in_ch, int out_ch, nn_conv_opts opts) {
    return nn__conv_make("nn_conv2d", "Conv2d", 2, 0, in_ch, out_ch, opts);
}
NNDEF nn_module *nn_conv1d(int in_ch, int out_ch, nn_conv_opts opts) {
    return nn__conv_make("nn_conv1d", "Conv1d", 1, 0, in_ch, out_ch, opts);
}
NNDEF nn_module *nn_conv_transpose2d(int in_ch, int out_ch, nn_conv_opts opts) {
    return nn__conv_make("nn_conv_transpose2d", "ConvTranspose2d", 2, 1, in_ch, out_ch, opts);
}

/* --- pooling --- */

typedef struct nn__poolg {
    int planes, H, W, OH, OW, KH, KW, SH, SW, PH, PW;
} nn__poolg;

enum { NN__POOL_MAX, NN__POOL_AVG };

static void nn__pool_backward(nn__node *n) {
    const nn__poolg *q = (const nn__poolg *)n->saved;
    float *gx = nn__in_grad(n, 0);
    const float *dy = n->out->grad;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    int pl;
    if (!gx) return;
    if (n->iarg[0] == NN__POOL_MAX) {
        const int *arg = (const int *)(q + 1);
        NN__OMP(parallel for schedule(static) if((double)q->planes * (double)P > NN__PAR_MIN))
        for (pl = 0; pl < q->planes; pl++) {
            size_t i;
            float *g = gx + (size_t)pl * HW;
            const float *d = dy + (size_t)pl * P;
            const int *a = arg + (size_t)pl * P;
            for (i = 0; i < P; i++) g[a[i]] += d[i];
        }
        return;
    }
    NN__OMP(parallel for schedule(static) if((double)q->planes * (double)P > NN__PAR_MIN))
    for (pl = 0; pl < q->planes; pl++) {
        int oh, ow, ih, iw;
        float inv = 1.0f / (float)(q->KH * q->KW), *g = gx + (size_t)pl * HW;
        const float *d = dy + (size_t)pl * P;
        for (oh = 0; oh < q->OH; oh++) {
            int h0 = oh * q->SH - q->PH, h1 = NN__MIN(h0 + q->KH, q->H);
            for (ow = 0; ow < q->OW; ow++) {
                int w0 = ow * q->SW - q->PW, w1 = NN__MIN(w0 + q->KW, q->W);
                float v = d[(size_t)oh * q->OW + ow] * inv;
                for (ih = NN__MAX(h0, 0); ih < h1; ih++)
                    for (iw = NN__MAX(w0, 0); iw < w1; iw++) g[(size_t)ih * q->W + iw] += v;
            }
        }
    }
}

static nn_tensor *nn__pool(const char *op, int kind, int dims, nn_tensor *x, nn_pool_opts o) {
    nn_tensor *out;
    nn__poolg q, *sq;
    nn_shape s;
    int K = o.kernel, S = o.stride ? o.stride : o.kernel, P = o.padding, d = dims + 2, pl, *arg = NULL;
    size_t PP, HW;
    if (!x || x->ndim != d) {
        nn__misuse("%s: needs x %s, got %s", op, dims == 2 ? "[N,C,H,W]" : "[N,C,L]", nn__ts(x));
        return NULL;
    }
    if (K < 1 || S < 1 || P < 0 || P > K / 2) {
        nn__misuse("%s: invalid kernel=%d stride=%d padding=%d (padding at most kernel/2)", op,
                   o.kernel, o.stride, o.padding);
        return NULL;
    }
    q.planes = x->shape[0] * x->shape[1];
    q.H = dims == 2 ? x->shape[2] : 1;
    q.W = x->shape[d - 1];
    q.KH = dims == 2 ? K : 1; q.KW = K;
    q.SH = dims == 2 ? S : 1; q.SW = S;
    q.PH = dims == 2 ? P : 0; q.PW = P;
    if (q.KH > q.H + 2 * q.PH || q.KW > q.W + 2 * q.PW) {
        nn__misuse("%s: kernel %d is larger than the padded input (x %s, padding %d)", op, K,
                   nn__ts(x), P);
        return NULL;
    }
    q.OH = (q.H + 2 * q.PH - q.KH) / q.SH + 1;
    q.OW = (q.W + 2 * q.PW - q.KW) / q.SW + 1;
    s = nn_shape_of(x);
    if (dims == 2) s.d[2] = q.OH;
    s.d[d - 1] = q.OW;
    out = nn__op(op, &x, 1, s, nn__pool_backward);
    if (!out) return NULL;
    PP = (size_t)q.OH * (size_t)q.OW;
    HW = (size_t)q.H * (size_t)q.W;
    if (out->node) {
        size_t bytes = sizeof(nn__poolg) + (kind == NN__POOL_MAX ? PP * (size_t)q.planes * sizeof(int) : 0);
        if (!(sq = (nn__poolg *)nn__scratch(out, bytes))) return NULL;
        *sq = q;
        if (kind == NN__POOL_MAX) arg = (int *)(sq + 1);
        out->node->saved = sq;
        out->node->iarg[0] = kind;
    }
    if (kind == NN__POOL_MAX && q.KH == 2 && q.KW == 2 && q.SH == 2 && q.SW == 2 && q.PH == 0 &&
        q.PW == 0) {
        /* The common 2x2 / stride 2 case: no bounds to check. */
        NN__OMP(parallel for schedule(static) if((double)q.planes * (double)PP * K > NN__PAR_MIN))
        for (pl = 0; pl < q.planes; pl++) {
            const float *xp = x->data + (size_t)pl * HW;
            float *y = out->data + (size_t)pl * PP;
            int *a = arg ? arg + (size_t)pl * PP : NULL, oh, ow;
            for (oh = 0; oh < q.OH; oh++) {
                const float *r0 = xp + (size_t)(2 * oh) * q.W, *r1 = r0 + q.W;
                for (ow = 0; ow < q.OW; ow++) {
                    float v[4], best;
                    int k2, bk = 0;
                    v[0] = r0[2 * ow]; v[1] = r0[2 * ow + 1]; v[2] = r1[2 * ow]; v[3] = r1[2 * ow + 1];
                    best = v[0];
                    for (k2 = 1; k2 < 4; k2++)
                        if (v[k2] > best || (v[k2] != v[k2] && best == best)) best = v[k2], bk = k2;
                    y[(size_t)oh * q.OW + ow] = best;
                    if (a) a[(size_t)oh * q.OW + ow] = (2 * oh + (bk >> 1)) * q.W + 2 * ow + (bk & 1);
                }
            }
        }
        return out;
    }
    NN__OMP(parallel for schedule(static) if((double)q.planes * (double)PP * K > NN__PAR_MIN))
    for (pl = 0; pl < q.planes; pl++) {
        const float *xp = x->data + (size_t)pl * HW;
        float *y = out->data + (size_t)pl * PP;
        int *a = arg ? arg + (size_t)pl * PP : NULL;
        int oh, ow, ih, iw;
        for (oh = 0; oh < q.OH; oh++) {
            int h0 = oh * q.SH - q.PH, h1 = NN__MIN(h0 + q.KH, q.H);
            for (ow = 0; ow < q.OW; ow++) {
                int w0 = ow * q.SW - q.PW, w1 = NN__MIN(w0 + q.KW, q.W);
                if (kind == NN__POOL_MAX) {
                    float best = -INFINITY;
                    int bi = NN__MAX(h0, 0) * q.W + NN__MAX(w0, 0);
                    for (ih = NN__MAX(h0, 0); ih < h1; ih++)
                        for (iw = NN__MAX(w0, 0); iw < w1; iw++) {
                            float v = xp[(size_t)ih * q.W + iw];
                            /* first maximum wins; NaN propagates (as PyTorch) */
                            if (v > best || v != v) {
                                best = v;
                                bi = ih * q.W + iw;
                                if (v != v) ih = h1, iw = w1;
                            }
                        }
                    y[(size_t)oh * q.OW + ow] = best;
                    if (a) a[(size_t)oh * q.OW + ow] = bi;
                } else {
                    float acc = 0.0f;
                    for (ih = NN__MAX(h0, 0); ih < h1; ih++)
                        for (iw = NN__MAX(w0, 0); iw < w1; iw++) acc += xp[(size_t)ih * q.W + iw];
                    y[(size_t)oh * q.OW + ow] = acc / (float)(q.KH * q.KW);
                }
            }
        }
    }
    return out;
}

NNDEF nn_tensor *nn_maxpool2d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_maxpool2d", NN__POOL_MAX, 2, x, opts); }
NNDEF nn_tensor *nn_avgpool2d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_avgpool2d", NN__POOL_AVG, 2, x, opts); }
NNDEF nn_tensor *nn_maxpool1d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_maxpool1d", NN__POOL_MAX, 1, x, opts); }
NNDEF nn_tensor *nn_avgpool1d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_avgpool1d", NN__POOL_AVG, 1, x, opts); }

static void nn__gap_backward(nn__node *n) {
    float *gx = nn__in_grad(n, 0);
    size_t S = n->in[0]->numel / (n->out->numel ? n->out->numel : 1), i;
    int pl, planes = (int)n->out->numel;
    if (!gx) return;
    NN__OMP(parallel for schedule(static) if((double)n->in[0]->numel > NN__PAR_MIN))
    for (pl = 0; pl < planes; pl++) {
        float v = n->out->grad[pl] / (float)S, *g = gx + (size_t)pl * S;
        for (i = 0; i < S; i++) g[i] += v;
    }
}

NNDEF nn_tensor *nn_global_avgpool_op(nn_tensor *x) {
    nn_tensor *out;
    nn_shape s;
    size_t S = 1;
    int i, pl, planes;
    if (!x || x->ndim < 3) {
        nn__misuse("nn_global_avgpool: needs x [N,C,H,W] or [N,C,L], got %s", nn__ts(x));
        return NULL;
    }
    s = nn_shape_of(x);
    for (i = 2; i < s.ndim; i++) {
        S *= (size_t)s.d[i];
        s.d[i] = 1;
    }
    if (S == 0) {
        nn__misuse("nn_global_avgpool: empty spatial size in %s", nn__ts(x));
        return NULL;
    }
    out = nn__op("nn_global_avgpool", &x, 1, s, nn__gap_backward);
    if (!out) return NULL;
    planes = (int)out->numel;
    NN__OMP(parallel for schedule(static) if((double)x->numel > NN__PAR_MIN))
    for (pl = 0; pl < planes; pl++) out->data[pl] = nn__sum16(x->data + (size_t)pl * S, S) / (float)S;
    return out;
}

static void nn__upsample_backward(nn__node *n) {
    nn_tensor *x = n->in[0];
    float *gx = nn__in_grad(n, 0);
    int s = n->iarg[0], H = x->shape[2], W = x->shape[3], planes = x->shape[0] * x->shape[1], pl;
    if (!gx) return;
    NN__OMP(parallel for schedule(static) if((double)n->out->numel > NN__PAR_MIN))
    for (pl = 0; pl < planes; pl++) {
        const float *d = n->out->grad + (size_t)pl * H * W * s * s;
        float *g = gx + (size_t)pl * H * W;
        int oh, ow;
        for (oh = 0; oh < H * s; oh++)
            for (ow = 0; ow < W * s; ow++) g[(size_t)(oh / s) * W + ow / s] += d[(size_t)oh * W * s + ow];
    }
}

NNDEF nn_tensor *nn_upsample_nearest2d_op(nn_tensor *x, int scale) {
    nn_tensor *out;
    nn_shape s;
    int H, W, planes, pl;
    if (!x || x->ndim != 4 || scale < 1) {
        nn__misuse("nn_upsample_nearest2d: needs x [N,C,H,W] and scale >= 1, got %s and %d",
                   nn__ts(x), scale);
        return NULL;
    }
    H = x->shape[2];
    W = x->shape[3];
    s = nn_shape_of(x);
    s.d[2] = H * scale;
    s.d[3] = W * scale;
    out = nn__op("nn_upsample_nearest2d", &x, 1, s, nn__upsample_backward);
    if (!out) return NULL;
    if (out->node) out->node->iarg[0] = scale;
    planes = x->shape[0] * x->shape[1];
    NN__OMP(parallel for schedule(static) if((double)out->numel > NN__PAR_MIN))
    for (pl = 0; pl < planes; pl++) {
        const float *xp = x->data + (size_t)pl * H * W;
        float *y = out->data + (size_t)pl * H * W * scale * scale;
        int oh, ow;
        for (oh = 0; oh < H * scale; oh++)
            for (ow = 0; ow < W * scale; ow++)
                y[(size_t)oh * W * scale + ow] = xp[(size_t)(oh / scale) * W + ow / scale];
    }
    return out;
}

/* Pooling modules keep kernel, stride, padding in fopt. */
static nn_pool_opts nn__pool_opts_of(const nn_module *m) {
    nn_pool_opts o;
    o.kernel = (int)m->fopt[0];
    o.stride = (int)m->fopt[1];
    o.padding = (int)m->fopt[2];
    return o;
}
static nn_tensor *nn__maxpool2d_forward(nn_module *m, nn_tensor *x) { return nn_maxpool2d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__avgpool2d_forward(nn_module *m, nn_tensor *x) { return nn_avgpool2d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__maxpool1d_forward(nn_module *m, nn_tensor *x) { return nn_maxpool1d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__avgpool1d_forward(nn_module *m, nn_tensor *x) { return nn_avgpool1d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__gap_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_global_avgpool_op(x); }
static nn_tensor *nn__upsample_forward(nn_module *m, nn_tensor *x) { return nn_upsample_nearest2d_op(x, (int)m->fopt[0]); }

static nn_module *nn__pool_make(const char *op, const char *type, nn_forward_fn fwd, nn_pool_opts o) {
    nn_module *m;
    if (o.kernel < 1 || o.stride < 0 || o.padding < 0 || o.padding > o.kernel / 2) {
        nn__misuse("%s: invalid kernel=%d stride=%d padding=%d (kernel is required; padding at "
                   "most kernel/2)", op, o.kernel, o.stride, o.padding);
        return NULL;
    }
    if ((m = nn_module_new(type, fwd))) {
        m->fopt[0] = (float)o.kernel;
        m->fopt[1] = (float)o.stride;
        m->fopt[2] = (float)o.padding;
    }
    return m;
}
NNDEF nn_module *nn_maxpool2d(nn_pool_opts opts) { return nn__pool_make("nn_maxpool2d", "MaxPool2d", nn__maxpool2d_forward, opts); }
NNDEF nn_module *nn_avgpool2d(nn_pool_opts opts) { return nn__pool_make("nn_avgpool2d", "AvgPool2d", nn__avgpool2d_forward, opts); }
NNDEF nn_module *nn_maxpool1d(nn_pool_opts opts) { return nn__pool_make("nn_maxpool1d", "MaxPool1d", nn__maxpool1d_forward, opts); }
NNDEF nn_module *nn_avgpool1d(nn_pool_opts opts) { return nn__pool_make("nn_avgpool1d", "AvgPool1d", nn__avgpool1d_forward, opts); }
NNDEF nn_module *nn_global_avgpool(void) { return nn_module_new("AdaptiveAvgPool2d", nn__gap_forward); }
NNDEF nn_module *nn_upsample_nearest2d(int scale) {
    nn_module *m;
    if (scale < 1) {
        nn__misuse("nn_upsample_nearest2d: scale must be >= 1, got %d", scale);
        return NULL;
    }
    if ((m = nn_module_new("Upsample", nn__upsample_forward))) m->fopt[0] = (float)scale;
    return m;
}

/* --- batch normalization --- */

/* Saved for backward: per channel mean and 1/sqrt(var + eps) (batch
   statistics in training, running ones in evaluation). */
static void nn__bn_backward(nn__node *n) {
    nn_tensor *x = n->in[0];
    int training = n->iarg[0], iw = n->iarg[1], ib = n->iarg[2], C = x->shape[1], N = x->shape[0], c;
    size_t S = x->numel / ((size_t)N * (size_t)C);
    const float *mean = (const float *)n->saved, *invstd = mean + C, *dy = n->out->grad;
    const float *gamma = iw ? n->in[iw]->data : NULL;
    float *gx = nn__in_grad(n, 0), *gw = iw ? nn__in_grad(n, iw) : NULL;
    float *gb = ib ? nn__in_grad(n, ib) : NULL;
    double M = (double)N * (double)S;
    NN__OMP(parallel for schedule(static) if((double)x->numel > NN__PAR_MIN))
    for (c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        float m = mean[c], is = invstd[c], k, a, bcoef;
        int i;
        size_t j;
        for (i = 0; i < N; i++) {
            size_t off = ((size_t)i * C + (size_t)c) * S;
            sdy += (double)nn__sum16(dy + off, S);
            sdyx += (double)nn__dotdev16(dy + off, x->data + off, m, S);
        }
        sdyx *= (double)is; /* sum dy * xhat */
        if (gw) gw[c] += (float)sdyx;
        if (gb) gb[c] += (float)sdy;
        if (!gx) continue;
        k = (gamma ? gamma[c] : 1.0f) * is;
        /* training: dx = k (dy - mean(dy) - xhat mean(dy xhat)); eval: k dy */
        a = training ? (float)(sdy / M) : 0.0f;
        bcoef = training ? (float)(sdyx / M) * is : 0.0f;
        for (i = 0; i < N; i++) {
            size_t off = ((size_t)i * C + (size_t)c) * S;
            const float *g = dy + off, *xv = x->data + off;
            float *o = gx + off;
            for (j = 0; j < S; j++) o[j] += k * (g[j] - a - (xv[j] - m) * bcoef);
        }
    }
}

NNDEF nn_tensor *nn_batch_norm_op(nn_tensor *x, nn_tensor *running_mean,
                                  nn_tensor *running_var, nn_tensor *weight,
                                  nn_tensor *bias, int training, float momentum, float eps) {
    nn_tensor *in[3], *out;
    float *mean, *invstd;
    int nin = 1, iw = 0, ib = 0, N, C, c;
    size_t S;
    double M;
    if (!x || x->ndim < 2 || x->shape[1] < 1) {
        nn__misuse("nn_batch_norm: needs x [N,C,...], got %s", nn__ts(x));
        return NULL;
    }
    N = x->shape[0];
    C = x->shape[1];
    if ((weight && (weight->ndim != 1 || weight->shape[0] != C)) ||
        (bias && (bias->ndim != 1 || bias->shape[0] != C)) ||
        (running_mean && (running_mean->ndim != 1 || running_mean->shape[0] != C)) ||
        (running_var && (running_var->ndim != 1 || running_var->shape[0] != C)) ||
        (!training && (!running_mean || !running_var)) || !(eps >= 0.0f)) {
        nn__misuse("nn_batch_norm: x %s has %d channels; weight %s, bias %s, running_mean %s, "
                   "running_var %s must be [%d] (running statistics are required in evaluation)",
                   nn__ts(x), C, weight ? nn__ts(weight) : "none", bias ? nn__ts(bias) : "none",
                   running_mean ? nn__ts(running_mean) : "none",
                   running_var ? nn__ts(running_var) : "none", C);
        return NULL;
    }
    S = N && C ? x->numel / ((size_t)N * (size_t)C) : 0;
    M = (double)N * (double)S;
    if (training && M < 2.0) {
        nn__misuse("nn_batch_norm: training needs more than one value per channel, got x %s",
                   nn__ts(x));
        return NULL;
    }
    in[0] = x;
    if (weight) iw = nin, in[nin++] = weight;
    if (bias) ib = nin, in[nin++] = bias;
    out = nn__op("nn_batch_norm", in, nin, nn_shape_of(x), nn__bn_backward);
    if (!out) return NULL;
    if (!(mean = (float *)nn__scratch(out, 2 * (size_t)C * sizeof(float)))) return NULL;
    invstd = mean + C;
    if (out->node) {
        out->node->saved = mean;
        out->node->iarg[0] = training != 0;
        out->node->iarg[1] = iw;
        out->node->iarg[2] = ib;
    }
    NN__OMP(parallel for schedule(static) if((double)x->numel > NN__PAR_MIN))
    for (c = 0; c < C; c++) {
        float m, is, g = weight ? weight->data[c] : 1.0f, b = bias ? bias->data[c] : 0.0f, scale, shift;
        int i;
        size_t j;
        if (training) {
            double sum = 0.0, sq = 0.0, var;
            for (i = 0; i < N; i++) sum += (double)nn__sum16(x->data + ((size_t)i * C + (size_t)c) * S, S);
            m = (float)(sum / M);
            for (i = 0; i < N; i++) sq += (double)nn__sqdev16(x->data + ((size_t)i * C + (size_t)c) * S, m, S);
            var = sq / M;
            is = (float)(1.0 / sqrt(var + (double)eps));
            if (running_mean)
                running_mean->data[c] = (1.0f - momentum) * running_mean->data[c] + momentum * m;
            if (running_var)
                running_var->data[c] = (1.0f - momentum) * running_var->data[c] +
                                       momentum * (float)(var * M / (M - 1.0));
        } else {
            m = running_mean->data[c];
            is = 1.0f / sqrtf(running_var->data[c] + eps);
        }
        mean[c] = m;
        invstd[c] = is;
        scale = g * is;
        shift = b - m * scale;
        for (i = 0; i < N; i++) {
            size_t off = ((size_t)i * C + (size_t)c) * S;
            const float *xv = x->data + off;
            float *y = out->data + off;
            for (j = 0; j < S; j++) y[j] = xv[j] * scale + shift;
        }
    }
    return out;
}

static nn_tensor *nn__bn_forward(nn_module *m, nn_tensor *x) {
    nn_tensor *y;
    int want2d = (int)m->fopt[2];
    if (!x || (want2d ? x->ndim != 4 : (x->ndim != 2 && x->ndim != 3))) {
        nn__misuse("%s: needs x %s, got %s", want2d ? "nn_batchnorm2d" : "nn_batchnorm1d",
                   want2d ? "[N,C,H,W]" : "[N,C] or [N,C,L]", nn__ts(x));
        return NULL;
    }
    y = nn_batch_norm_op(x, m->buffers[0].tensor, m->buffers[1].tensor, m->params[0].tensor,
                         m->params[1].tensor, m->training, m->fopt[0], m->fopt[1]);
    if (y && m->training) m->buffers[2].tensor->data[0] += 1.0f;
    return y;
}

static nn_module *nn__bn_make(const char *op, const char *type, int C, int twod) {
    nn_module *m;
    if (C < 1) {
        nn__misuse("%s: the channel count must be positive, got %d", op, C);
        return NULL;
    }
    if (!(m = nn_module_new(type, nn__bn_forward))) return NULL;
    m->fopt[0] = 0.1f;
    m->fopt[1] = 1e-5f;
    m->fopt[2] = (float)twod;
    if (!nn_module_add_param(m, "weight", nn_ones(NULL, NN_SHAPE(C))) ||
        !nn_module_add_param(m, "bias", nn_zeros(NULL, NN_SHAPE(C))) ||
        !nn_module_add_buffer(m, "running_mean", nn_zeros(NULL, NN_SHAPE(C))) ||
        !nn_module_add_buffer(m, "running_var", nn_ones(NULL, NN_SHAPE(C))) ||
        !nn_module_add_buffer(m, "num_batches_tracked", nn_zeros(NULL, nn_shape_scalar()))) {
        nn_module_free(m);
        return NULL;
    }
    return m;
}
NNDEF nn_module *nn_batchnorm1d(int features) { return nn__bn_make("nn_batchnorm1d", "BatchNorm1d", features, 0); }
NNDEF nn_module *nn_batchnorm2d(int channels) { return nn__bn_make("nn_batchnorm2d", "BatchNorm2d", channels, 1); }

/* --- activations --- */

enum { NN__A_LEAKY, NN__A_ELU, NN__A_GELU, NN__A_SILU };

static float nn__sigmoidf(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    return expf(x) / (1.0f + expf(x));
}

static void nn__act_backward(nn__node *n) {
    const float *x = n->in[0]->data, *g = n->out->grad;
    float *gx = nn__in_grad(n, 0), p = n->farg[0];
    size_t i, len = n->out->numel;
    if (!gx) return;
    switch (n->iarg[0]) {
    case NN__A_LEAKY:
        for (i = 0; i < len; i++) gx[i] += x[i] > 0.0f ? g[i] : g[i] * p;
        break;
    case NN__A_ELU:
        for (i = 0; i < len; i++) gx[i] += x[i] > 0.0f ? g[i] : g[i] * p * expf(x[i]);
        break;
    case NN__A_GELU:
        for (i = 0; i < len; i++) {
            float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
            float pdf = 0.39894228040143268f * expf(-0.5f * x[i] * x[i]);
            gx[i] += g[i] * (cdf + x[i] * pdf);
        }
        break;
    default:
        for (i = 0; i < len; i++) {
            float s = nn__sigmoidf(x[i]);
            gx[i] += g[i] * s * (1.0f + x[i] * (1.0f - s));
        }
        break;
    }
}

static nn_tensor *nn__act(const char *op, int kind, nn_tensor *x, float p) {
    nn_tensor *out;
    float *y;
    size_t i, len;
    if (!x) {
        nn__misuse("%s: NULL input", op);
        return NULL;
    }
    out = nn__op(op, &x, 1, nn_shape_of(x), nn__act_backward);
    if (!out) return NULL;
    if (out->node) {
        out->node->iarg[0] = kind;
        out->node->farg[0] = p;
    }
    y = out->data;
    len = out->numel;
    switch (kind) {
    case NN__A_LEAKY:
        for (i = 0; i < len; i++) y[i] = x->data[i] > 0.0f ? x->data[i] : x->data[i] * p;
        break;
    case NN__A_ELU:
        for (i = 0; i < len; i++) y[i] = x->data[i] > 0.0f ? x->data[i] : p * expm1f(x->data[i]);
        break;
    case NN__A_GELU:
        for (i = 0; i < len; i++)
            y[i] = 0.5f * x->data[i] * (1.0f + erff(x->data[i] * 0.70710678118654752f));
        break;
    default:
        for (i = 0; i < len; i++) y[i] = x->data[i] * nn__sigmoidf(x->data[i]);
        break;
    }
    return out;
}

NNDEF nn_tensor *nn_leaky_relu_op(nn_tensor *x, float slope) { return nn__act("nn_leaky_relu", NN__A_LEAKY, x, slope); }
NNDEF nn_tensor *nn_elu_op(nn_tensor *x, float alpha) { return nn__act("nn_elu", NN__A_ELU, x, alpha); }
NNDEF nn_tensor *nn_gelu_op(nn_tensor *x) { return nn__act("nn_gelu", NN__A_GELU, x, 0.0f); }
NNDEF nn_tensor *nn_silu_op(nn_tensor *x) { return nn__act("nn_silu", NN__A_SILU, x, 0.0f); }

static nn_tensor *nn__leaky_forward(nn_module *m, nn_tensor *x) { return nn_leaky_relu_op(x, m->fopt[0]); }
static nn_tensor *nn__elu_forward(nn_module *m, nn_tensor *x) { return nn_elu_op(x, m->fopt[0]); }
static nn_tensor *nn__gelu_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_gelu_op(x); }
static nn_tensor *nn__silu_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_silu_op(x); }

NNDEF nn_module *nn_leaky_relu(float slope) {
    nn_module *m = nn_module_new("LeakyReLU", nn__leaky_forward);
    if (m) m->fopt[0] = slope != 0.0f ? slope : 0.01f;
    return m;
}
NNDEF nn_module *nn_elu(float alpha) {
    nn_module *m = nn_module_new("ELU", nn__elu_forward);
    if (m) m->fopt[0] = alpha != 0.0f ? alpha : 1.0f;
    return m;
}
NNDEF nn_module *nn_gelu(void) { return nn_module_new("GELU", nn__gelu_forward); }
NNDEF nn_module *nn_silu(void) { return nn_module_new("SiLU", nn__silu_forward); }
