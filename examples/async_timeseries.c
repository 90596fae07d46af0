/* The Significance-Offset CNN (Binkowski, Marti, Donnat, ICML 2018,
   "Autoregressive Convolutional Neural Networks for Asynchronous Time
   Series") on an artificial noisy, asynchronously sampled autoregressive
   series like the paper's, against an LSTM, a causal dilated CNN and linear
   autoregressions fitted by least squares.

   The series: a latent AR(10) process x(t) on an integer time grid
   (coefficients a_i = u_i * 0.999 / sum u, u_i ~ U(0,1), innovations
   N(0,1), standardized).  Observations come at irregular times: the gap to
   the next is d = ceil(Exp(mean 2)) + 1 steps.  Each observation comes from
   one of K = 16 sources, drawn with probability proportional to 1.1^k; source
   k has noise of type k % 4 (additive binary +-s, multiplicative binary
   x(1 +- s), additive Gaussian s N(0,1), multiplicative Gaussian
   x(1 + s N(0,1))) with scale s = 2^-floor(k/4); a binary source draws +s with
   its own probability p_k ~ U(0,1), so it is biased.  Observation n has
   F = K + 2 features: the noisy value v_n, the one-hot source indicator and
   the gap d_n / 4.  The task: predict the clean latent x(t_n) at the time of
   observation n from the M = 32 observations before it.  The first 70% of
   the samples train, the next 10% validate (the parameters of the best
   epoch are kept), the last 20% test.

   SOCNN: y_hat_n = sum_m W[m] (off(x_{n-m}) + v_{n-m}) softmax_m(S(x)[m]),
   S a fully convolutional significance network (4 convolutions, kernel 3,
   LeakyReLU 0.1), off a 1x1 convolution (the paper's depth 1 for this
   data), W [1, M] trained weights; loss MSE + 0.1 * the auxiliary MSE of
   every off(x_{n-m}) + v_{n-m} against y_n (the paper's L_aux).

     cc -std=c99 -O2 -march=native -fopenmp -I. examples/async_timeseries.c -o async_timeseries -lm
     ./async_timeseries [--quick] [--seed N] [--svg PATH] [--obs N] [--epochs N] [--lr X]

   The full run (40000 observations, 15 epochs) takes about 2 minutes on 2
   cores, --quick (12000 observations, 8 epochs) 15 to 30 seconds.  It
   prints each model's progress every third epoch, the significance the
   SOCNN gives each noise level, the test MSE table (also split by whether
   the target lies inside the range of the training targets) and writes a
   plot of the first 200 test observations (default async_timeseries.svg).
   docs/sequences.md discusses the results. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K 16           /* sources */
#define F (K + 2)      /* features per observation: value, K indicators, gap */
#define M 32           /* past observations seen by every model */
#define ORDER 10       /* order of the latent AR process */
#define BATCH 128
#define SIG_CH 16      /* channels of the significance network */
#define LSTM_H 32
#define CNN_CH 24
#define ALPHA 0.1f     /* weight of the auxiliary loss */
#define NPLOT 200

/* ----- the data ----- */

typedef struct series {
    int n;            /* observations */
    float *feat;      /* [n, F] */
    float *target;    /* [n]: the clean latent value at each observation */
    int *source;      /* [n] */
} series;

/* Draw the latent AR(10) process and n asynchronous noisy observations of it. */
static series make_series(int n) {
    series s;
    double a[ORDER], usum = 0.0, mean = 0.0, var = 0.0, p[K], psum = 0.0;
    float scale[K], pbin[K];
    int *gap = (int *)malloc((size_t)n * sizeof(int)), i, k;
    long T = 1, t;
    double *x;
    for (i = 0; i < ORDER; i++) usum += (a[i] = nn_rand_uniform());
    for (i = 0; i < ORDER; i++) a[i] *= 0.999 / usum;
    for (i = 0; i < n; i++) {
        double e = -2.0 * log(1.0 - (double)nn_rand_uniform()); /* Exp(mean 2) */
        gap[i] = (int)ceil(e) + 1;
        T += gap[i];
    }
    x = (double *)malloc((size_t)T * sizeof(double));
    for (t = 0; t < T; t++) {
        double v = nn_rand_normal();
        if (t >= ORDER)
            for (i = 0; i < ORDER; i++) v += a[i] * x[t - 1 - i];
        x[t] = v;
    }
    for (t = 0; t < T; t++) mean += x[t];
    mean /= (double)T;
    for (t = 0; t < T; t++) var += (x[t] - mean) * (x[t] - mean);
    var /= (double)T;
    for (t = 0; t < T; t++) x[t] = (x[t] - mean) / sqrt(var);
    for (k = 0; k < K; k++) {
        psum += (p[k] = pow(1.1, k));
        scale[k] = ldexpf(1.0f, -(k / 4));
        pbin[k] = nn_rand_uniform();
    }
    s.n = n;
    s.feat = (float *)calloc((size_t)n * F, sizeof(float));
    s.target = (float *)malloc((size_t)n * sizeof(float));
    s.source = (int *)malloc((size_t)n * sizeof(int));
    t = 0;
    for (i = 0; i < n; i++) {
        double u = (double)nn_rand_uniform() * psum;
        float v, sk, sign;
        t += gap[i];
        for (k = 0; k < K - 1 && (u -= p[k]) > 0.0; k++) {}
        v = (float)x[t];
        sk = scale[k];
        sign = nn_rand_uniform() < pbin[k] ? 1.0f : -1.0f;
        switch (k % 4) {
        case 0: v += sign * sk; break;
        case 1: v *= 1.0f + sign * sk; break;
        case 2: v += sk * nn_rand_normal(); break;
        default: v *= 1.0f + sk * nn_rand_normal(); break;
        }
        s.target[i] = (float)x[t];
        s.source[i] = k;
        s.feat[(size_t)i * F] = v;
        s.feat[(size_t)i * F + 1 + k] = 1.0f;
        s.feat[(size_t)i * F + K + 1] = (float)gap[i] / 4.0f;
    }
    free(x);
    free(gap);
    return s;
}

/* The window of sample n (observations n-M .. n-1) channel-major into
   xc [F, M] (for the convolutions) and time-major into xl [M, F] (LSTM). */
static void window(const series *s, int n, float *xc, float *xl) {
    int m, f;
    for (m = 0; m < M; m++)
        for (f = 0; f < F; f++) {
            float v = s->feat[(size_t)(n - M + m) * F + f];
            xc[f * M + m] = v;
            xl[m * F + f] = v;
        }
}

/* ----- the Significance-Offset CNN ----- */

/* y_hat [B, 1] of xc [B, F, M]; *adj (if not NULL) gets the per-step
   regressors off(x_{n-m}) + v_{n-m} [B, 1, M] for the auxiliary loss. */
static nn_tensor *socnn_run(nn_module *self, nn_tensor *x, nn_tensor **adj) {
    nn_tensor *sig = nn_forward(nn_child(self, "significance"), x);       /* [B,1,M] */
    nn_tensor *off = nn_forward(nn_child(self, "offset"), x);             /* [B,1,M] */
    nn_tensor *a = nn_add(off, nn_slice(x, 1, 0, 1));                     /* + x^I */
    nn_tensor *w = nn_param(self, "W");                                   /* [1,M] */
    nn_tensor *y = nn_mul(nn_mul(a, w), nn_softmax(sig, 2));
    if (adj) *adj = a;
    return nn_reshape(nn_sum_axis(y, 2, 0), NN_SHAPE(x->shape[0], 1));
}

static nn_tensor *socnn_forward(nn_module *self, nn_tensor *x) { return socnn_run(self, x, NULL); }

static nn_module *socnn_new(void) {
    nn_module *m = nn_module_new("SOCNN", socnn_forward);
    nn_conv_opts c3, c1;
    nn_tensor *w = nn_zeros(NULL, NN_SHAPE(1, M));
    int i;
    memset(&c3, 0, sizeof c3);
    memset(&c1, 0, sizeof c1);
    c3.kernel = 3;
    c3.padding = 1; /* "same": the significance keeps the time axis */
    c1.kernel = 1;
    nn_module_add_child(m, "significance", nn_sequential(
        nn_conv1d(F, SIG_CH, c3), nn_leaky_relu(0.1f), nn_conv1d(SIG_CH, SIG_CH, c3),
        nn_leaky_relu(0.1f), nn_conv1d(SIG_CH, SIG_CH, c3), nn_leaky_relu(0.1f),
        nn_conv1d(SIG_CH, 1, c3), NULL));
    nn_module_add_child(m, "offset", nn_conv1d(F, 1, c1));
    for (i = 0; i < M; i++) w->data[i] = 1.0f;
    nn_module_add_param(m, "W", w);
    return m;
}

/* What the significance network learned: the mean softmax weight that an
   observation of each source gets (over the test windows, relative to the
   uniform 1/M), printed for the noisiest and the cleanest groups. */
static void socnn_report(nn_module *m, nn_graph *g, const series *s, int lo, int hi) {
    double wsum[K] = {0}, cnt[K] = {0};
    float *xc = (float *)malloc((size_t)BATCH * F * M * sizeof(float));
    float *xl = (float *)malloc((size_t)F * M * sizeof(float)); /* unused copy */
    int n, b, j, k;
    nn_train_mode(m, 0);
    nn_set_grad_enabled(g, 0);
    for (n = lo; n + BATCH <= hi; n += BATCH) {
        nn_tensor *sig;
        for (b = 0; b < BATCH; b++) window(s, n + b, xc + (size_t)b * F * M, xl);
        nn_graph_reset(g);
        sig = nn_softmax(nn_forward(nn_child(m, "significance"),
                                    nn_tensor_from(g, xc, NN_SHAPE(BATCH, F, M))), 2);
        for (b = 0; b < BATCH; b++)
            for (j = 0; j < M; j++) {
                k = s->source[n + b - M + j];
                wsum[k] += (double)sig->data[b * M + j] * M;
                cnt[k] += 1.0;
            }
    }
    nn_set_grad_enabled(g, 1);
    nn_train_mode(m, 1);
    printf("SOCNN significance (mean softmax weight x M) of an observation by its source's noise "
           "scale:");
    for (k = 0; k < 4; k++) { /* the four noise scales, 1 to 1/8 */
        double w = 0.0, c = 0.0;
        for (j = 4 * k; j < 4 * k + 4; j++) {
            w += wsum[j];
            c += cnt[j];
        }
        printf(" s=%g: %.2f", ldexp(1.0, -k), c > 0.0 ? w / c : 0.0);
    }
    printf("\n");
    free(xc);
    free(xl);
}

/* ----- the baselines ----- */

/* LSTM(F, 32) over the window, a linear head on the last state. */
static nn_tensor *lstm_forward(nn_module *self, nn_tensor *x) {
    nn_tensor *h = nn_rnn_forward(nn_child(self, "lstm"), x, NULL, NULL, NULL, NULL, NULL);
    h = nn_reshape(nn_slice(h, 1, M - 1, M), NN_SHAPE(x->shape[0], LSTM_H));
    return nn_forward(nn_child(self, "head"), h);
}

static nn_module *lstm_new(void) {
    nn_module *m = nn_module_new("LSTMRegressor", lstm_forward);
    nn_rnn_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.batch_first = 1;
    nn_module_add_child(m, "lstm", nn_lstm(F, LSTM_H, ro));
    nn_module_add_child(m, "head", nn_linear(LSTM_H, 1));
    return m;
}

/* Causal dilated convolutions (kernel 2, dilations 1..16: the last step sees
   all 32), a linear head on the last step. */
static nn_tensor *cnn_forward(nn_module *self, nn_tensor *x) {
    nn_tensor *h = nn_forward(nn_child(self, "body"), x);                 /* [B,C,M] */
    h = nn_reshape(nn_slice(h, 2, M - 1, M), NN_SHAPE(x->shape[0], CNN_CH));
    return nn_forward(nn_child(self, "head"), h);
}

static nn_module *cnn_new(void) {
    nn_module *m = nn_module_new("CausalCNN", cnn_forward);
    nn_conv_opts c[5];
    int i;
    memset(c, 0, sizeof c);
    for (i = 0; i < 5; i++) {
        c[i].kernel = 2;
        c[i].causal = 1;
        c[i].dilation = 1 << i;
    }
    nn_module_add_child(m, "body", nn_sequential(
        nn_conv1d(F, CNN_CH, c[0]), nn_leaky_relu(0.1f), nn_conv1d(CNN_CH, CNN_CH, c[1]),
        nn_leaky_relu(0.1f), nn_conv1d(CNN_CH, CNN_CH, c[2]), nn_leaky_relu(0.1f),
        nn_conv1d(CNN_CH, CNN_CH, c[3]), nn_leaky_relu(0.1f), nn_conv1d(CNN_CH, CNN_CH, c[4]),
        nn_leaky_relu(0.1f), NULL));
    nn_module_add_child(m, "head", nn_linear(CNN_CH, 1));
    return m;
}

/* Least squares with a small ridge: regress the targets of samples
   [lo, hi) on p features (feature(s, n, row) fills them; a constant 1 is
   appended), solving the normal equations by Cholesky in double.  Returns
   the p + 1 coefficients (malloc'd). */
typedef void (*feature_fn)(const series *s, int n, double *row);
static double *least_squares(const series *s, int lo, int hi, int p, feature_fn feature) {
    int q = p + 1, n, i, j, k;
    double *A = (double *)calloc((size_t)q * q, sizeof(double));
    double *b = (double *)calloc((size_t)q, sizeof(double));
    double *row = (double *)malloc((size_t)q * sizeof(double));
    for (n = lo; n < hi; n++) {
        feature(s, n, row);
        row[p] = 1.0;
        for (i = 0; i < q; i++) {
            b[i] += row[i] * (double)s->target[n];
            if (row[i] != 0.0)
                for (j = 0; j <= i; j++) A[i * q + j] += row[i] * row[j];
        }
    }
    for (i = 0; i < q; i++) A[i * q + i] += 1e-6 * (hi - lo);
    for (j = 0; j < q; j++) { /* A = L L^T in the lower triangle */
        for (k = 0; k < j; k++) A[j * q + j] -= A[j * q + k] * A[j * q + k];
        A[j * q + j] = sqrt(A[j * q + j]);
        for (i = j + 1; i < q; i++) {
            for (k = 0; k < j; k++) A[i * q + j] -= A[i * q + k] * A[j * q + k];
            A[i * q + j] /= A[j * q + j];
        }
    }
    for (i = 0; i < q; i++) { /* L z = b, then L^T c = z */
        for (k = 0; k < i; k++) b[i] -= A[i * q + k] * b[k];
        b[i] /= A[i * q + i];
    }
    for (i = q - 1; i >= 0; i--) {
        for (k = i + 1; k < q; k++) b[i] -= A[k * q + i] * b[k];
        b[i] /= A[i * q + i];
    }
    free(A);
    free(row);
    return b;
}

/* AR(M) on the noisy values alone. */
static void values_feature(const series *s, int n, double *row) {
    int m;
    for (m = 0; m < M; m++) row[m] = s->feat[(size_t)(n - M + m) * F];
}

/* All F features of the M past observations. */
static void all_feature(const series *s, int n, double *row) {
    int i;
    for (i = 0; i < M * F; i++) row[i] = s->feat[(size_t)(n - M) * F + i];
}

static void ls_predict(const series *s, const double *c, int p, feature_fn feature, int lo,
                       int hi, float *pred) {
    double *row = (double *)malloc((size_t)(p + 1) * sizeof(double));
    int n, i;
    for (n = lo; n < hi; n++) {
        double y = c[p];
        feature(s, n, row);
        for (i = 0; i < p; i++) y += c[i] * row[i];
        pred[n - lo] = (float)y;
    }
    free(row);
}

/* ----- training the networks ----- */

typedef struct net {
    const char *name;
    nn_module *m;
    int lstm;      /* 1: input [B, M, F], else [B, F, M] */
    int socnn;     /* 1: add the auxiliary loss */
} net;

static double mse(const float *a, const float *b, int n) {
    double s = 0.0;
    int i;
    for (i = 0; i < n; i++) s += ((double)a[i] - (double)b[i]) * ((double)a[i] - (double)b[i]);
    return s / n;
}

/* Predictions of samples [lo, hi) into pred, in evaluation mode. */
static void predict(net *nt, nn_graph *g, const series *s, int lo, int hi, float *pred) {
    float *xc = (float *)malloc((size_t)BATCH * F * M * sizeof(float));
    float *xl = (float *)malloc((size_t)BATCH * F * M * sizeof(float));
    int n, b;
    nn_train_mode(nt->m, 0);
    nn_set_grad_enabled(g, 0);
    for (n = lo; n < hi; n += BATCH) {
        int nb = hi - n < BATCH ? hi - n : BATCH;
        nn_tensor *y;
        for (b = 0; b < nb; b++) window(s, n + b, xc + (size_t)b * F * M, xl + (size_t)b * F * M);
        nn_graph_reset(g);
        y = nn_forward(nt->m, nn_tensor_from(g, nt->lstm ? xl : xc,
                                             nt->lstm ? NN_SHAPE(nb, M, F) : NN_SHAPE(nb, F, M)));
        memcpy(pred + (n - lo), y->data, (size_t)nb * sizeof(float));
    }
    nn_set_grad_enabled(g, 1);
    nn_train_mode(nt->m, 1);
    free(xc);
    free(xl);
}

/* Adam on the training samples [lo, mid) for `epochs` epochs, validation MSE
   on [mid, hi) after each; the parameters of the best epoch are restored. */
static void train(net *nt, nn_graph *g, const series *s, int lo, int mid, int hi, int epochs,
                  float lr) {
    int ntr = mid - lo, *perm = (int *)malloc((size_t)ntr * sizeof(int)), i, e, count, best_e = 0;
    float *xc = (float *)malloc((size_t)BATCH * F * M * sizeof(float));
    float *xl = (float *)malloc((size_t)BATCH * F * M * sizeof(float));
    float *yb = (float *)malloc(BATCH * sizeof(float));
    float *val = (float *)malloc((size_t)(hi - mid) * sizeof(float));
    nn_param *ps = nn_parameters(nt->m, &count);
    size_t total = nn_parameter_count(nt->m), off;
    float *best = (float *)malloc(total * sizeof(float));
    double best_mse = 1e30, t0 = nn_time();
    nn_adam_opts ao;
    nn_optim *opt;
    memset(&ao, 0, sizeof ao);
    ao.lr = lr;
    opt = nn_adam(nt->m, ao);
    for (i = 0; i < ntr; i++) perm[i] = lo + i;
    printf("%s: %zu parameters\n", nt->name, total);
    for (e = 1; e <= epochs; e++) {
        double loss_sum = 0.0, v;
        int steps = 0, start;
        for (i = ntr - 1; i > 0; i--) { /* shuffle */
            int j = (int)(nn_rand_uniform() * (float)(i + 1)), tmp = perm[i];
            if (j > i) j = i;
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        for (start = 0; start + BATCH <= ntr; start += BATCH) {
            nn_tensor *x, *y, *tgt, *loss, *adj = NULL;
            int b;
            for (b = 0; b < BATCH; b++) {
                window(s, perm[start + b], xc + (size_t)b * F * M, xl + (size_t)b * F * M);
                yb[b] = s->target[perm[start + b]];
            }
            nn_graph_reset(g);
            x = nn_tensor_from(g, nt->lstm ? xl : xc,
                               nt->lstm ? NN_SHAPE(BATCH, M, F) : NN_SHAPE(BATCH, F, M));
            tgt = nn_tensor_from(g, yb, NN_SHAPE(BATCH, 1));
            y = nt->socnn ? socnn_run(nt->m, x, &adj) : nn_forward(nt->m, x);
            loss = nn_mse(y, tgt);
            if (adj) /* L_aux: every regressor against the target, [B,1,M] - [B,1,1] */
                loss = nn_add(loss, nn_mul_scalar(
                    nn_mse(adj, nn_mul(nn_reshape(tgt, NN_SHAPE(BATCH, 1, 1)),
                                       nn_ones(g, NN_SHAPE(1, 1, M)))), ALPHA));
            nn_zero_grad(opt);
            nn_backward(loss);
            nn_step(opt);
            loss_sum += (double)nn_item(loss);
            steps++;
        }
        predict(nt, g, s, mid, hi, val);
        v = mse(val, s->target + mid, hi - mid);
        if (v < best_mse) {
            best_mse = v;
            best_e = e;
            for (i = 0, off = 0; i < count; off += ps[i].tensor->numel, i++)
                memcpy(best + off, ps[i].tensor->data, ps[i].tensor->numel * sizeof(float));
        }
        if (e == 1 || e % 3 == 0 || e == epochs) { /* briefly: every third epoch */
            printf("  epoch %2d: train loss %.4f, val MSE %.4f (%.0f s)\n", e, loss_sum / steps, v,
                   nn_time() - t0);
            fflush(stdout);
        }
    }
    for (i = 0, off = 0; i < count; off += ps[i].tensor->numel, i++)
        memcpy(ps[i].tensor->data, best + off, ps[i].tensor->numel * sizeof(float));
    printf("  kept epoch %d (val MSE %.4f)\n", best_e, best_mse);
    nn_optim_free(opt);
    free(perm);
    free(xc);
    free(xl);
    free(yb);
    free(val);
    free(best);
}

int main(int argc, char **argv) {
    int quick = 0, i, nobs = 0, lo = M, mid, vend, hi, epochs = 0, ntest, j;
    unsigned long seed = 1;
    const char *svg = "async_timeseries.svg";
    series s;
    nn_graph *g;
    net nets[3];
    float *pred[6], *xs, *obs, lr = 1e-3f;
    double *c_val, *c_all, t_start = nn_time(), secs[6];
    const char *names[6];
    nn_plot_series ser[6];
    nn_plot_opts po;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--svg") && i + 1 < argc) svg = argv[++i];
        else if (!strcmp(argv[i], "--obs") && i + 1 < argc) nobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lr") && i + 1 < argc) lr = (float)atof(argv[++i]);
        else {
            printf("usage: %s [--quick] [--seed N] [--svg PATH] [--obs N] [--epochs N] [--lr X]\n",
                   argv[0]);
            return 1;
        }
    }
    if (nobs <= 0) nobs = quick ? 12000 : 40000;
    if (epochs <= 0) epochs = quick ? 8 : 15;
    if (nobs < 10 * M) nobs = 10 * M;
    nn_seed(seed);
    s = make_series(nobs);
    mid = lo + (nobs - lo) * 7 / 10;
    vend = lo + (nobs - lo) * 8 / 10;
    hi = nobs;
    ntest = hi - vend;
    printf("%d observations from %d sources, windows of %d, %d train / %d val / %d test samples "
           "(seed %lu)\n", nobs, K, M, mid - lo, vend - mid, ntest, seed);
    {   /* the latent process wanders: say where each part of it lies */
        int part[4], p;
        part[0] = lo;
        part[1] = mid;
        part[2] = vend;
        part[3] = hi;
        for (p = 0; p < 3; p++) {
            float a = s.target[part[p]], b = a;
            for (i = part[p]; i < part[p + 1]; i++) {
                a = s.target[i] < a ? s.target[i] : a;
                b = s.target[i] > b ? s.target[i] : b;
            }
            printf("%s targets in [%.2f, %.2f]%s", p == 0 ? "train" : p == 1 ? "val" : "test", (double)a, (double)b,
                   p == 2 ? "\n" : ", ");
        }
    }

    /* the baselines without training: the last observed value, least squares */
    for (i = 0; i < 6; i++) pred[i] = (float *)malloc((size_t)ntest * sizeof(float));
    names[0] = "last value";
    for (i = vend; i < hi; i++) pred[0][i - vend] = s.feat[(size_t)(i - 1) * F];
    secs[0] = 0.0;
    names[1] = "AR(32), least squares";
    secs[1] = nn_time();
    c_val = least_squares(&s, lo, vend, M, values_feature);
    ls_predict(&s, c_val, M, values_feature, vend, hi, pred[1]);
    secs[1] = nn_time() - secs[1];
    names[2] = "linear, all features";
    secs[2] = nn_time();
    c_all = least_squares(&s, lo, vend, M * F, all_feature);
    ls_predict(&s, c_all, M * F, all_feature, vend, hi, pred[2]);
    secs[2] = nn_time() - secs[2];

    g = nn_graph_new();
    nets[0].name = "SOCNN";
    nets[0].m = socnn_new();
    nets[0].lstm = 0;
    nets[0].socnn = 1;
    nets[1].name = "LSTM";
    nets[1].m = lstm_new();
    nets[1].lstm = 1;
    nets[1].socnn = 0;
    nets[2].name = "causal CNN";
    nets[2].m = cnn_new();
    nets[2].lstm = 0;
    nets[2].socnn = 0;
    for (j = 0; j < 3; j++) {
        double t0 = nn_time();
        train(&nets[j], g, &s, lo, mid, vend, epochs, lr);
        predict(&nets[j], g, &s, vend, hi, pred[3 + j]);
        names[3 + j] = nets[j].name;
        secs[3 + j] = nn_time() - t0;
    }

    socnn_report(nets[0].m, g, &s, vend, hi);
    {
        double mean = 0.0, var = 0.0;
        for (i = vend; i < hi; i++) mean += (double)s.target[i];
        mean /= ntest;
        for (i = vend; i < hi; i++) var += ((double)s.target[i] - mean) * ((double)s.target[i] - mean);
        printf("\ntest MSE on %d samples (the test targets have variance %.3f)\n", ntest, var / ntest);
    }
    {   /* also split by whether the target lies in the range the training targets covered */
        float tmin = s.target[lo], tmax = tmin;
        int nin = 0;
        for (i = lo; i < mid; i++) {
            tmin = s.target[i] < tmin ? s.target[i] : tmin;
            tmax = s.target[i] > tmax ? s.target[i] : tmax;
        }
        for (i = vend; i < hi; i++) nin += s.target[i] >= tmin && s.target[i] <= tmax;
        printf("| model | test MSE | targets inside the training range (%d) | outside (%d) | "
               "seconds |\n|---|---|---|---|---|\n", nin, ntest - nin);
        for (j = 0; j < 6; j++) {
            double in = 0.0, out = 0.0;
            for (i = vend; i < hi; i++) {
                double d = (double)pred[j][i - vend] - (double)s.target[i];
                if (s.target[i] >= tmin && s.target[i] <= tmax) in += d * d;
                else out += d * d;
            }
            printf("| %s | %.4f | %.4f | ", names[j], mse(pred[j], s.target + vend, ntest),
                   nin ? in / nin : 0.0);
            if (ntest - nin) printf("%.4f", out / (ntest - nin));
            else printf("-");
            printf(" | %.0f |\n", secs[j]);
        }
    }

    /* the plot: the clean target, the noisy observations' values (clipped
       to the plot) and the networks' and the linear model's predictions */
    xs = (float *)malloc(NPLOT * sizeof(float));
    for (i = 0; i < NPLOT; i++) xs[i] = (float)i;
    memset(ser, 0, sizeof ser);
    ser[0].name = "target (clean)";
    ser[0].x = xs;
    ser[0].y = s.target + vend;
    ser[1].name = "observed (noisy)";
    ser[1].x = xs;
    for (i = 0; i < 4; i++) {
        ser[2 + i].x = xs;
        ser[2 + i].y = pred[i == 0 ? 2 : 2 + i];
        ser[2 + i].name = names[i == 0 ? 2 : 2 + i];
    }
    for (i = 0; i < 6; i++) ser[i].n = NPLOT;
    memset(&po, 0, sizeof po);
    po.title = "Asynchronous noisy AR series: one-step predictions on test data";
    po.xlabel = "test observation";
    po.ylabel = "value";
    po.width = 900;
    po.dashed = 2u;
    {
        float lo_y = 1e30f, hi_y = -1e30f;
        for (i = 0; i < NPLOT; i++) {
            float v = s.target[vend + i];
            lo_y = v < lo_y ? v : lo_y;
            hi_y = v > hi_y ? v : hi_y;
        }
        po.ymin = lo_y - 0.4f;
        po.ymax = hi_y + 0.4f;
        obs = (float *)malloc(NPLOT * sizeof(float));
        for (i = 0; i < NPLOT; i++) { /* the noisy values clamped to the plot */
            float v = s.feat[(size_t)(vend + i) * F];
            obs[i] = v < po.ymin ? po.ymin : v > po.ymax ? po.ymax : v;
        }
        ser[1].y = obs;
    }
    if (nn_plot_svg(svg, ser, 6, po) == NN_OK) printf("wrote %s\n", svg);
    else printf("could not write %s: %s\n", svg, nn_error_string());
    printf("total %.0f s\n", nn_time() - t_start);

    free(obs);
    free(xs);
    for (i = 0; i < 6; i++) free(pred[i]);
    for (j = 0; j < 3; j++) nn_module_free(nets[j].m);
    nn_graph_free(g);
    free(c_val);
    free(c_all);
    free(s.feat);
    free(s.target);
    free(s.source);
    return 0;
}
