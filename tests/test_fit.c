/* nn_fit and its parts (>>train.fit, >>train.metrics, the plots of >>train):
   progress output in plain and bar modes (through the stream option, and a
   pseudo-terminal on Linux), every early-stopping rule against hand-made
   curves with known stopping epochs, best-weights restore, resume from a
   checkpoint (bitwise the uninterrupted run), metrics against hand-computed
   values and scikit-learn's (tests/golden/fit.txt), the summary of a small
   CNN, SVG figures and heat maps, misuse messages, and small runs on
   synthetic data that learn (classification and regression). */
#if defined(__linux__) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 600 /* posix_openpt, fdopen: the pseudo-terminal test */
#endif
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <fcntl.h>
#include <unistd.h>
#endif

static const char *gold_dir = "tests/golden";
static char tmpdir[256];

static const char *tmp(const char *name) {
    static char buf[4][320];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/nn_test_fit_%s", tmpdir, name);
    return buf[k];
}

/* The whole contents of a stream or file, NUL-terminated (malloc'd). */
static char *slurp_stream(FILE *f) {
    long n;
    char *s;
    fflush(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = (char *)malloc((size_t)n + 1);
    if (!s) return NULL;
    n = (long)fread(s, 1, (size_t)n, f);
    s[n] = '\0';
    return s;
}
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *s;
    if (!f) return NULL;
    s = slurp_stream(f);
    fclose(f);
    return s;
}
/* Split s at newlines in place: the next line, or NULL at the end. */
static char *strtok_r_compat(char *s, char **save) {
    char *p = s ? s : *save, *e;
    if (!p || !*p) return NULL;
    e = strchr(p, '\n');
    if (e) {
        *e = '\0';
        *save = e + 1;
    } else {
        *save = p + strlen(p);
    }
    return p;
}
static int count_of(const char *s, const char *what) {
    int c = 0;
    size_t l = strlen(what);
    while (s && (s = strstr(s, what)) != NULL) {
        c++;
        s += l;
    }
    return c;
}

/* --- early stopping on hand-made curves --- */

/* The first epoch n (from 1) after which the rule stops, 0 if none. */
static int first_stop(nn_early_stop r, const float *val, const float *train, int N) {
    int n;
    for (n = 1; n <= N; n++)
        if (nn_early_stop_check(&r, val, train, n)) return n;
    return 0;
}

static void test_early_stopping(void) {
    nn_early_stop r;
    /* patience: best 0.7 at epoch 3, two epochs without improvement */
    static const float v1[] = {1.0f, 0.8f, 0.7f, 0.71f, 0.72f, 0.69f, 0.70f};
    /* tiny improvements: patience with min_delta 0.05 stops, without never */
    static const float v2[] = {1.0f, 0.9f, 0.89f, 0.885f, 0.88f, 0.87f, 0.86f};
    static const float acc[] = {0.5f, 0.6f, 0.7f, 0.65f, 0.66f, 0.7f};
    /* GL_5: 100 (0.74/0.7 - 1) = 5.7 at epoch 5, 2.9 at epoch 4 */
    static const float v3[] = {1.0f, 0.8f, 0.7f, 0.72f, 0.74f, 0.9f};
    /* PQ_0.5, strips of 5: the first strip trains fast (P_5 = 59.9) while
       validation still improves; the second is flat (P_5 = 2.42) while the
       validation loss is 2% above its best: PQ(10) = 2.0 / 2.42 = 0.83 */
    static const float tr4[] = {1.0f, 0.9f, 0.85f, 0.84f, 0.835f, 0.83f, 0.829f, 0.828f, 0.827f, 0.826f};
    static const float v4[] = {1.0f, 0.8f, 0.7f, 0.65f, 0.62f, 0.61f, 0.6f, 0.605f, 0.61f, 0.612f};
    /* UP with strips of 2: E(6) > E(4) (once), E(8) > E(6) > E(4) (twice) */
    static const float v5[] = {1.0f, 0.8f, 0.7f, 0.6f, 0.65f, 0.7f, 0.72f, 0.75f};
    memset(&r, 0, sizeof r);
    NN_TEST_CHECK(first_stop(r, v1, NULL, 7) == 0, "NN_STOP_NONE never stops");
    r.rule = NN_STOP_PATIENCE;
    r.patience = 2;
    NN_TEST_CHECK(first_stop(r, v1, NULL, 7) == 5, "patience 2 stops after epoch 5 (got %d)",
                  first_stop(r, v1, NULL, 7));
    NN_TEST_CHECK(nn_best_epoch(v1, 5, NN_MODE_MIN, 0.0f) == 2, "best epoch index 2");
    NN_TEST_CHECK(nn_best_epoch(v1, 7, NN_MODE_MIN, 0.0f) == 5, "best epoch index 5 later");
    r.patience = 3;
    NN_TEST_CHECK(first_stop(r, v2, NULL, 7) == 0, "improving every epoch: no stop");
    r.min_delta = 0.05f;
    NN_TEST_CHECK(first_stop(r, v2, NULL, 7) == 5, "min_delta 0.05: stops after epoch 5 (got %d)",
                  first_stop(r, v2, NULL, 7));
    NN_TEST_CHECK(nn_best_epoch(v2, 7, NN_MODE_MIN, 0.05f) == 1, "best with min_delta is epoch 2");
    r.min_delta = 0.0f;
    r.patience = 2;
    r.mode = NN_MODE_MAX;
    NN_TEST_CHECK(first_stop(r, acc, NULL, 6) == 5, "mode max: stops after epoch 5 (got %d)",
                  first_stop(r, acc, NULL, 6));
    NN_TEST_CHECK(nn_best_epoch(acc, 6, NN_MODE_MAX, 0.0f) == 2, "max: the first 0.7 is the best");
    memset(&r, 0, sizeof r);
    r.rule = NN_STOP_GL;
    NN_TEST_CHECK(first_stop(r, v3, NULL, 6) == 5, "GL_5 stops after epoch 5 (got %d)",
                  first_stop(r, v3, NULL, 6));
    r.alpha = 2.0f;
    NN_TEST_CHECK(first_stop(r, v3, NULL, 6) == 4, "GL_2 stops after epoch 4 (got %d)",
                  first_stop(r, v3, NULL, 6));
    memset(&r, 0, sizeof r);
    r.rule = NN_STOP_PQ;
    NN_TEST_CHECK(first_stop(r, v4, tr4, 10) == 10, "PQ_0.5 stops after epoch 10 (got %d)",
                  first_stop(r, v4, tr4, 10));
    r.alpha = 1.0f;
    NN_TEST_CHECK(first_stop(r, v4, tr4, 10) == 0, "PQ_1 does not stop (PQ = 0.83)");
    r.alpha = 0.5f;
    r.strip = 2; /* strips end at 2,4,..: GL > 0 first at 8 (0.83), P_2(8) = 1000 (1.655/1.654-1) = 0.6 */
    NN_TEST_CHECK(first_stop(r, v4, tr4, 10) == 8, "PQ_0.5 with strips of 2 stops after 8 (got %d)",
                  first_stop(r, v4, tr4, 10));
    memset(&r, 0, sizeof r);
    r.rule = NN_STOP_UP;
    r.strip = 2;
    r.strips = 1;
    NN_TEST_CHECK(first_stop(r, v5, NULL, 8) == 6, "UP_1 stops after epoch 6 (got %d)",
                  first_stop(r, v5, NULL, 8));
    r.strips = 2;
    NN_TEST_CHECK(first_stop(r, v5, NULL, 8) == 8, "UP_2 stops after epoch 8 (got %d)",
                  first_stop(r, v5, NULL, 8));
    r.strips = 3;
    NN_TEST_CHECK(first_stop(r, v5, NULL, 8) == 0, "UP_3 does not stop in 8 epochs");
    /* misuse */
    nn_test_msgs = 0;
    r.mode = NN_MODE_MAX;
    NN_TEST_CHECK(nn_early_stop_check(&r, v5, NULL, 8) == 0 && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_early_stop_check: Prechelt's") != NULL,
                  "UP in mode max is misuse: %s", nn_test_msg);
    r.mode = NN_MODE_MIN;
    r.rule = NN_STOP_PQ;
    NN_TEST_CHECK(nn_early_stop_check(&r, v5, NULL, 8) == 0 && nn_test_msgs == 2 &&
                      strstr(nn_test_msg, "PQ needs the training losses") != NULL,
                  "PQ without training losses: %s", nn_test_msg);
}

/* --- metrics --- */

static void test_metrics_hand(void) {
    static const int labels[] = {0, 0, 1, 1, 1, 2, 2, 2, 2, 0};
    static const int pred[] = {0, 1, 1, 1, 0, 2, 2, 1, 2, 0};
    static const int want[] = {2, 1, 0, 1, 2, 0, 0, 1, 3};
    static const float scores[] = {0.1f, 0.5f, 0.3f, 0.1f,   /* label 2: 2nd */
                                   0.9f, 0.0f, 0.05f, 0.05f, /* label 0: 1st */
                                   0.1f, 0.2f, 0.3f, 0.4f};  /* label 0: 4th */
    static const int sl[] = {2, 0, 0};
    static const float rp[] = {1.0f, 2.0f, 3.0f, 4.0f}, rt[] = {1.5f, 2.0f, 2.0f, 5.0f};
    int cm[9], i, ok = 1;
    nn_prf pc[3], mac, mic;
    nn_regression_metrics rm;
    char *s;
    FILE *f;
    memset(cm, 0, sizeof cm);
    nn_confusion_add(cm, 3, labels, pred, 10);
    for (i = 0; i < 9; i++) ok &= cm[i] == want[i];
    NN_TEST_CHECK(ok, "confusion matrix by hand");
    nn_precision_recall_f1(cm, 3, pc, &mac, &mic);
    NN_TEST_CHECK(fabsf(pc[0].precision - 2.0f / 3.0f) < 1e-6f && fabsf(pc[0].recall - 2.0f / 3.0f) < 1e-6f,
                  "class 0 precision and recall 2/3");
    NN_TEST_CHECK(fabsf(pc[1].precision - 0.5f) < 1e-6f && fabsf(pc[1].f1 - 4.0f / 7.0f) < 1e-6f,
                  "class 1 precision 1/2, f1 4/7 (got %g)", (double)pc[1].f1);
    NN_TEST_CHECK(fabsf(pc[2].precision - 1.0f) < 1e-6f && fabsf(pc[2].recall - 0.75f) < 1e-6f &&
                      fabsf(pc[2].f1 - 6.0f / 7.0f) < 1e-6f && pc[2].support == 4,
                  "class 2: 1, 3/4, 6/7, support 4");
    NN_TEST_CHECK(fabsf(mic.f1 - 0.7f) < 1e-6f && mic.support == 10, "micro F1 = accuracy 0.7");
    NN_TEST_CHECK(fabsf(mac.f1 - (2.0f / 3.0f + 4.0f / 7.0f + 6.0f / 7.0f) / 3.0f) < 1e-6f, "macro F1");
    NN_TEST_CHECK(fabsf(nn_topk_accuracy(scores, sl, 3, 4, 1) - 1.0f / 3.0f) < 1e-6f, "top-1 1/3");
    NN_TEST_CHECK(fabsf(nn_topk_accuracy(scores, sl, 3, 4, 2) - 2.0f / 3.0f) < 1e-6f, "top-2 2/3");
    NN_TEST_CHECK(fabsf(nn_topk_accuracy(scores, sl, 3, 4, 4) - 1.0f) < 1e-6f, "top-4 all");
    /* errors -0.5, 0, 1, -1: MAE 0.625, RMSE sqrt(2.25/4) = 0.75; per output
       column 0: t 1.5, 2 (mean 1.75, SS_tot 0.125, SS_res 1.25 -> -9), column
       1: t 2, 5 (SS_tot 4.5, SS_res 1 -> 7/9); R^2 = (-9 + 7/9)/2 */
    rm = nn_regression_eval(rp, rt, 2, 2);
    NN_TEST_CHECK(fabsf(rm.mae - 0.625f) < 1e-6f && fabsf(rm.rmse - 0.75f) < 1e-6f, "MAE and RMSE by hand");
    NN_TEST_CHECK(fabsf(rm.r2 - (-9.0f + 7.0f / 9.0f) / 2.0f) < 1e-5f, "R^2 by hand (got %g)", (double)rm.r2);
    /* the printed table is aligned: every line has the same length */
    f = tmpfile();
    if (f) {
        static const char *const names[] = {"cat", "dog", "hamster"};
        char *line, *save = NULL;
        size_t len = 0;
        int same = 1, lines = 0;
        nn_confusion_print(cm, 3, names, f);
        s = slurp_stream(f);
        for (line = strtok_r_compat(s, &save); line; line = strtok_r_compat(NULL, &save)) {
            if (lines++ == 0) len = strlen(line);
            else same &= strlen(line) == len;
        }
        NN_TEST_CHECK(lines == 4 && same, "confusion table: 4 aligned lines (%d)", lines);
        free(s);
        fclose(f);
    }
    f = tmpfile();
    if (f) {
        nn_classification_report(cm, 3, NULL, f);
        s = slurp_stream(f);
        NN_TEST_CHECK(strstr(s, "precision") && strstr(s, "macro avg") && strstr(s, "0.5714") &&
                          strstr(s, "weighted avg"),
                      "classification report:\n%s", s);
        free(s);
        fclose(f);
    }
    NN_TEST_CHECK(nn_confusion_svg(tmp("cm.svg"), cm, 3, NULL, NULL) == NN_OK, "confusion SVG written");
    s = slurp(tmp("cm.svg"));
    NN_TEST_CHECK(s && count_of(s, "<rect") >= 9 + 10 && strstr(s, ">3</text>") && strstr(s, "</svg>"),
                  "heat map: 9 cells, a scale, the counts");
    free(s);
    nn_test_msgs = 0;
    {
        static const int bad[] = {3};
        nn_confusion_add(cm, 3, bad, bad, 1);
    }
    NN_TEST_CHECK(nn_test_msgs == 1 && strstr(nn_test_msg, "nn_confusion_add: pair 0 (label 3, prediction 3)"),
                  "out-of-range label: %s", nn_test_msg);
}

static void test_metrics_sklearn(void) {
    golden_file gf;
    gold_tensor lab, pr, pcg, avg, rp, rt, reg;
    int labels[64], pred[64], cm[16], i, n;
    nn_prf pc[4], mac, mic;
    float got[12], gavg[6], greg[3];
    nn_regression_metrics rm;
    if (!gold_open(&gf, gold_dir, "fit.txt")) {
        NN_TEST_CHECK(0, "golden fit.txt");
        return;
    }
    if (!gold_tensor_read(&gf, &lab) || !gold_tensor_read(&gf, &pr) || !gold_tensor_read(&gf, &pcg) ||
        !gold_tensor_read(&gf, &avg) || !gold_tensor_read(&gf, &rp) || !gold_tensor_read(&gf, &rt) ||
        !gold_tensor_read(&gf, &reg)) {
        NN_TEST_CHECK(0, "golden fit.txt records");
        gold_close(&gf);
        return;
    }
    n = (int)lab.n;
    for (i = 0; i < n; i++) {
        labels[i] = (int)lab.v[i];
        pred[i] = (int)pr.v[i];
    }
    memset(cm, 0, sizeof cm);
    nn_confusion_add(cm, 4, labels, pred, n);
    nn_precision_recall_f1(cm, 4, pc, &mac, &mic);
    for (i = 0; i < 4; i++) {
        got[i] = pc[i].precision;
        got[4 + i] = pc[i].recall;
        got[8 + i] = pc[i].f1;
    }
    nn_test_close(got, pcg.v, 12, 1e-6f, 1e-6f, "per-class precision, recall, F1 = sklearn");
    gavg[0] = mac.precision; gavg[1] = mac.recall; gavg[2] = mac.f1;
    gavg[3] = mic.precision; gavg[4] = mic.recall; gavg[5] = mic.f1;
    nn_test_close(gavg, avg.v, 6, 1e-6f, 1e-6f, "macro and micro averages = sklearn");
    rm = nn_regression_eval(rp.v, rt.v, (int)rp.shape.d[0], 2);
    greg[0] = rm.mae; greg[1] = rm.rmse; greg[2] = rm.r2;
    nn_test_close(greg, reg.v, 3, 1e-5f, 1e-6f, "MAE, RMSE, R^2 = sklearn");
    gold_tensor_free(&lab); gold_tensor_free(&pr); gold_tensor_free(&pcg); gold_tensor_free(&avg);
    gold_tensor_free(&rp); gold_tensor_free(&rt); gold_tensor_free(&reg);
    gold_close(&gf);
}

/* --- the summary of a small CNN --- */

static void test_summary(void) {
    nn_conv_opts co;
    nn_pool_opts po;
    nn_module *net;
    nn_summary_result r;
    nn_summary_opts so;
    FILE *f;
    char *s;
    memset(&co, 0, sizeof co);
    memset(&po, 0, sizeof po);
    co.kernel = 3;
    po.kernel = 2;
    nn_seed(3);
    net = nn_sequential(nn_conv2d(1, 4, co), nn_relu(), nn_maxpool2d(po), nn_flatten(),
                        nn_linear(4 * 5 * 5, 10), NULL);
    nn_requires_grad(nn_param(net, "4.bias"), 0); /* frozen: "partly" trainable */
    memset(&so, 0, sizeof so);
    f = tmpfile();
    so.stream = f;
    NN_TEST_CHECK(nn_summary_ex(net, NN_SHAPE(2, 1, 12, 12), so, &r) == NN_OK, "nn_summary_ex");
    NN_TEST_CHECK(r.nrows == 6, "6 rows: the root and 5 layers (%d)", r.nrows);
    if (r.nrows == 6) {
        NN_TEST_CHECK(strcmp(r.rows[0].type, "Sequential") == 0 && r.rows[0].depth == 0, "root row");
        NN_TEST_CHECK(strcmp(r.rows[1].name, "0") == 0 && strcmp(r.rows[1].type, "Conv2d") == 0 &&
                          r.rows[1].depth == 1,
                      "row 1 is 0 (Conv2d)");
        NN_TEST_CHECK(r.rows[1].out.ndim == 4 && r.rows[1].out.d[0] == 2 && r.rows[1].out.d[1] == 4 &&
                          r.rows[1].out.d[2] == 10 && r.rows[1].out.d[3] == 10,
                      "conv output [2,4,10,10]");
        NN_TEST_CHECK(r.rows[3].out.ndim == 4 && r.rows[3].out.d[2] == 5, "pool output [2,4,5,5]");
        NN_TEST_CHECK(r.rows[4].out.ndim == 2 && r.rows[4].out.d[1] == 100, "flatten output [2,100]");
        NN_TEST_CHECK(r.rows[5].out.ndim == 2 && r.rows[5].out.d[0] == 2 && r.rows[5].out.d[1] == 10,
                      "linear output [2,10]");
        NN_TEST_CHECK(r.rows[0].out.ndim == 2 && r.rows[0].out.d[1] == 10, "root output [2,10]");
        NN_TEST_CHECK(r.rows[1].params == 40 && r.rows[5].params == 1010 && r.rows[2].params == 0,
                      "counts 4*9+4 = 40 and 100*10+10 = 1010");
        NN_TEST_CHECK(r.rows[1].trainable == 1 && r.rows[5].trainable == 2 && r.rows[2].trainable == -1 &&
                          r.rows[0].trainable == 2,
                      "trainable flags yes, partly, none");
    }
    NN_TEST_CHECK(r.total_params == 1050 && r.trainable_params == 1040, "totals 1050, trainable 1040");
    NN_TEST_CHECK(r.param_bytes == 1050 * 4, "parameter bytes");
    /* leaf outputs: conv 800 + relu 800 + pool 200 + flatten 200 + linear 20 floats */
    NN_TEST_CHECK(r.output_bytes == (800 + 800 + 200 + 200 + 20) * 4, "forward outputs %zu bytes",
                  r.output_bytes);
    NN_TEST_CHECK(r.forward_bytes >= r.output_bytes, "the graph arena holds at least the outputs");
    s = f ? slurp_stream(f) : NULL;
    NN_TEST_CHECK(s && strstr(s, "  0 (Conv2d)") && strstr(s, "[2,4,10,10]") && strstr(s, "1,050") &&
                      strstr(s, "partly") && strstr(s, "Trainable params: 1,040"),
                  "printed table:\n%s", s ? s : "");
    NN_TEST_CHECK(nn_is_training(net) && nn_is_training(nn_child(net, "0")), "training flags restored");
    free(s);
    if (f) fclose(f);
    nn_summary_free(&r);
    nn_module_free(net);
    /* nested: dotted names and depths; max_depth hides the deeper rows */
    net = nn_sequential(nn_sequential(nn_linear(3, 4), nn_relu(), NULL), nn_linear(4, 2), NULL);
    f = tmpfile();
    so.stream = f;
    so.max_depth = 1;
    NN_TEST_CHECK(nn_summary_ex(net, NN_SHAPE(5, 3), so, &r) == NN_OK && r.nrows == 5 &&
                      strcmp(r.rows[2].name, "0.0") == 0 && r.rows[2].depth == 2 &&
                      strcmp(r.rows[4].name, "1") == 0 && r.rows[1].params == 16 &&
                      r.rows[2].out.d[1] == 4 && r.total_params == 26,
                  "nested names 0.0, depth 2, subtree counts");
    s = f ? slurp_stream(f) : NULL;
    NN_TEST_CHECK(s && strstr(s, "  0 (Sequential)") && !strstr(s, "0.0 (Linear)") && strstr(s, "  1 (Linear)"),
                  "max_depth 1 prints the first level only:\n%s", s ? s : "");
    free(s);
    if (f) fclose(f);
    nn_summary_free(&r);
    nn_module_free(net);
}

/* --- plots --- */

static void test_plots(void) {
    float x[5] = {1, 2, 3, 4, 5}, y1[5] = {1.0f, 0.5f, 0.3f, 0.2f, 0.15f}, y2[5] = {1.1f, 0.6f, 0.45f, NAN, 0.5f};
    float hm[6] = {0, 1, 2, 3, 4, 5};
    nn_plot_series s[2];
    nn_plot_opts po;
    nn_plot_panel p[2];
    nn_heatmap_opts ho;
    char *t;
    memset(s, 0, sizeof s);
    memset(&po, 0, sizeof po);
    s[0].name = "train <a&b>"; s[0].x = x; s[0].y = y1; s[0].n = 5;
    s[1].name = "val"; s[1].x = x; s[1].y = y2; s[1].n = 5;
    po.title = "loss";
    po.logy = 1;
    po.dashed = 2u;
    po.markers = 1;
    NN_TEST_CHECK(nn_plot_svg(tmp("p.svg"), s, 2, po) == NN_OK, "nn_plot_svg keeps its signature");
    t = slurp(tmp("p.svg"));
    NN_TEST_CHECK(t && count_of(t, "<polyline") == 3 && count_of(t, "stroke-dasharray=\"6,4\"") == 3 &&
                      strstr(t, "train &lt;a&amp;b&gt;") && count_of(t, "<circle") == 9,
                  "two series (NaN breaks one), the second dashed, escaped names, markers");
    free(t);
    memset(p, 0, sizeof p);
    p[0].series = s; p[0].nseries = 1; p[0].opts = po;
    p[1].series = s + 1; p[1].nseries = 1; p[1].opts.width = 300; p[1].opts.height = 200;
    NN_TEST_CHECK(nn_plot_figure_svg(tmp("fig.svg"), p, 2, 2) == NN_OK, "figure of two panels");
    t = slurp(tmp("fig.svg"));
    NN_TEST_CHECK(t && strstr(t, "width=\"1440\" height=\"440\"") && count_of(t, "<polyline") == 3,
                  "two cells as large as the largest panel");
    free(t);
    memset(&ho, 0, sizeof ho);
    ho.title = "h";
    NN_TEST_CHECK(nn_heatmap_svg(tmp("h.svg"), hm, 2, 3, ho) == NN_OK, "heat map");
    t = slurp(tmp("h.svg"));
    NN_TEST_CHECK(t && strstr(t, "rgb(247,251,255)") && strstr(t, "rgb(8,48,107)") && strstr(t, ">2.5<") == NULL &&
                      strstr(t, ">5</text>"),
                  "white for the least, dark blue for the most, values in cells");
    free(t);
    nn_test_msgs = 0;
    NN_TEST_CHECK(nn_heatmap_svg(tmp("h.svg"), hm, 0, 3, ho) == NN_ERR_ARG && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_heatmap_svg: needs") && strstr(nn_test_msg, "0 x 3"),
                  "heat map misuse: %s", nn_test_msg);
    NN_TEST_CHECK(nn_plot_svg("/nonexistent-dir/x.svg", s, 2, po) == NN_ERR_IO &&
                      strstr(nn_error_string(), "cannot open"),
                  "unwritable path: NN_ERR_IO");
}

/* --- nn_fit --- */

/* Two Gaussian blobs in 4 features (classes 0 and 1), n samples. */
static void blobs(int n, uint64_t seed, nn_dataset *ds) {
    float *x = (float *)malloc(sizeof(float) * 4 * (size_t)n);
    int *y = (int *)malloc(sizeof(int) * (size_t)n), i, j;
    nn_rng *r = nn_rng_new(seed);
    for (i = 0; i < n; i++) {
        y[i] = i % 2;
        for (j = 0; j < 4; j++) x[i * 4 + j] = nn_rng_normal(r) * 0.8f + (j < 2 ? (y[i] ? 1.0f : -1.0f) : 0.0f);
    }
    nn_dataset_tabular(n, 4, x, y, NULL, 0, ds);
    nn_rng_free(r);
    free(x);
    free(y);
}

static nn_module *mlp(uint64_t seed, nn_optim **opt) {
    nn_sgd_opts so;
    nn_module *net;
    nn_seed(seed);
    net = nn_sequential(nn_linear(4, 16), nn_relu(), nn_linear(16, 2), NULL);
    memset(&so, 0, sizeof so);
    so.lr = 0.1f;
    so.momentum = 0.9f;
    *opt = nn_sgd(net, so);
    return net;
}

static void flat(nn_module *m, float *out) {
    int n, i;
    nn_param *ps = nn_parameters(m, &n);
    for (i = 0; i < n; i++) {
        memcpy(out, ps[i].tensor->data, ps[i].tensor->numel * sizeof(float));
        out += ps[i].tensor->numel;
    }
}

typedef struct epochs_seen {
    float w[16][128]; /* the weights after each epoch (the MLP has 114) */
    int n, stop_at_batch;
} epochs_seen;
static int on_epoch_record(const nn_fit_state *s, void *user) {
    epochs_seen *e = (epochs_seen *)user;
    if (e->n < 16) flat(s->module, e->w[e->n++]);
    return 0;
}
static int on_batch_stop(const nn_fit_state *s, void *user) {
    epochs_seen *e = (epochs_seen *)user;
    return e->stop_at_batch > 0 && s->epoch == 2 && s->batch == e->stop_at_batch;
}

static void test_fit_learns(void) {
    nn_dataset ds;
    nn_optim *opt;
    nn_module *net = mlp(1, &opt);
    nn_fit_opts fo;
    nn_history *h;
    FILE *f = tmpfile();
    char *s;
    nn_sched *sched;
    nn_step_lr_opts sl;
    blobs(200, 11, &ds);
    memset(&sl, 0, sizeof sl);
    sl.step_size = 3;
    sl.gamma = 0.5f;
    sched = nn_step_lr(opt, sl);
    memset(&fo, 0, sizeof fo);
    fo.epochs = 6;
    fo.batch_size = 16;
    fo.val_split = 0.25f;
    fo.split_seed = 5;
    fo.stratified = 1;
    fo.clip_norm = 5.0f;
    fo.accumulate = 2;
    fo.sched = sched;
    fo.sched_per_epoch = 1;
    fo.progress = NN_PROGRESS_PLAIN;
    fo.stream = f;
    fo.csv_log = tmp("log.csv");
    fo.svg = tmp("curves.svg");
    h = nn_fit(net, opt, &ds, fo);
    NN_TEST_CHECK(h != NULL, "nn_fit returns a history: %s", nn_error_string());
    if (h) {
        NN_TEST_CHECK(h->epochs == 6 && strcmp(h->metric, "accuracy") == 0, "6 epochs of accuracy");
        NN_TEST_CHECK(h->train_loss[5] < 0.6f * h->train_loss[0], "the training loss falls (%g -> %g)",
                      (double)h->train_loss[0], (double)h->train_loss[5]);
        NN_TEST_CHECK(h->val_metric[5] > 0.85f, "validation accuracy %g > 0.85", (double)h->val_metric[5]);
        NN_TEST_CHECK(h->val_loss[5] == h->val_loss[5], "a validation loss");
        NN_TEST_CHECK(fabsf(h->lr[2] - 0.1f) < 1e-7f && fabsf(h->lr[3] - 0.05f) < 1e-7f &&
                          fabsf(h->lr[5] - 0.05f) < 1e-7f && fabsf(nn_get_lr(opt) - 0.025f) < 1e-7f,
                      "step schedule per epoch: epochs 1-3 at 0.1, 4-6 at 0.05, then 0.025 (%g %g %g)",
                      (double)h->lr[2], (double)h->lr[3], (double)h->lr[5]);
        NN_TEST_CHECK(h->seconds[0] >= 0.0f && h->best_epoch >= 0, "seconds and best epoch");
    }
    s = f ? slurp_stream(f) : NULL;
    NN_TEST_CHECK(s && count_of(s, "\n") == 6 && strstr(s, "epoch 1/6  loss ") && strstr(s, "epoch 6/6") &&
                      strstr(s, "val_accuracy") && strstr(s, "lr 0.1 ") && strstr(s, "lr 0.05 ") && !strchr(s, '\r') && !strchr(s, '\033'),
                  "plain progress: one line per epoch, no control characters:\n%s", s ? s : "");
    free(s);
    s = slurp(tmp("log.csv"));
    NN_TEST_CHECK(s && strncmp(s, "epoch,train_loss,val_loss,train_accuracy,val_accuracy,lr,seconds\n1,", 66) == 0 &&
                      count_of(s, "\n") == 7,
                  "CSV log: a header and 6 rows");
    free(s);
    s = slurp(tmp("curves.svg"));
    NN_TEST_CHECK(s && count_of(s, "<polyline") == 5 && strstr(s, ">accuracy</text>") &&
                      strstr(s, ">learning rate</text>"),
                  "SVG curves: loss, metric (train and validation), lr");
    free(s);
    if (f) fclose(f);
    nn_history_free(h);
    nn_sched_free(sched);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&ds);
}

static void test_fit_regression(void) {
    float x[96], t[96];
    nn_dataset ds;
    nn_module *net;
    nn_optim *opt;
    nn_adam_opts ao;
    nn_fit_opts fo;
    nn_history *h;
    int i;
    nn_rng *r = nn_rng_new(2);
    for (i = 0; i < 96; i++) {
        x[i] = nn_rng_uniform(r) * 2.0f - 1.0f;
        t[i] = 2.0f * x[i] + 0.5f;
    }
    nn_rng_free(r);
    nn_dataset_tabular(96, 1, x, NULL, t, 1, &ds);
    nn_seed(4);
    net = nn_linear(1, 1);
    memset(&ao, 0, sizeof ao);
    ao.lr = 0.1f;
    opt = nn_adam(net, ao);
    memset(&fo, 0, sizeof fo);
    fo.epochs = 25;
    fo.batch_size = 16;
    fo.loss = NN_FIT_MSE;
    fo.metric = NN_METRIC_R2;
    fo.val_split = 0.25f;
    fo.progress = NN_PROGRESS_QUIET;
    h = nn_fit(net, opt, &ds, fo);
    NN_TEST_CHECK(h && strcmp(h->metric, "r2") == 0 && h->val_metric[h->epochs - 1] > 0.95f,
                  "regression: validation R^2 %g > 0.95", h ? (double)h->val_metric[h->epochs - 1] : -1.0);
    nn_history_free(h);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&ds);
}

static void test_fit_restore_and_callbacks(void) {
    nn_dataset ds, val;
    nn_optim *opt;
    nn_module *net;
    nn_fit_opts fo;
    nn_history *h;
    static epochs_seen seen;
    float now[128];
    int i, same = 1;
    blobs(80, 21, &ds);
    blobs(40, 22, &val);
    /* label noise in the validation set: its loss turns up early */
    for (i = 0; i < 40; i += 3) val.y[i] = 1 - val.y[i];
    net = mlp(7, &opt);
    memset(&fo, 0, sizeof fo);
    memset(&seen, 0, sizeof seen);
    fo.epochs = 12;
    fo.batch_size = 8;
    fo.val = &val;
    fo.stop.rule = NN_STOP_PATIENCE;
    fo.stop.patience = 2;
    fo.progress = NN_PROGRESS_QUIET;
    fo.on_epoch = on_epoch_record;
    fo.user = &seen;
    fo.best_checkpoint = tmp("best.ckpt");
    h = nn_fit(net, opt, &ds, fo);
    NN_TEST_CHECK(h != NULL, "fit with patience");
    if (h) {
        int b = nn_best_epoch(h->val_loss, h->epochs, NN_MODE_MIN, 0.0f);
        NN_TEST_CHECK(h->stopped_epoch > 0 && h->stopped_epoch == h->epochs && h->epochs < 12,
                      "stopped early after epoch %d", h->stopped_epoch);
        NN_TEST_CHECK(h->best_epoch == b && h->epochs - 1 - b == 2, "best epoch %d, two worse after", b);
        NN_TEST_CHECK(h->restored == 1, "the best weights restored");
        flat(net, now);
        for (i = 0; i < 114; i++) same &= now[i] == seen.w[b][i];
        NN_TEST_CHECK(same, "the module holds epoch %d's weights exactly", b + 1);
        { /* the best checkpoint is a model file nn_load reads */
            nn_optim *o2;
            nn_module *n2 = mlp(99, &o2);
            nn_load_opts lo;
            memset(&lo, 0, sizeof lo);
            NN_TEST_CHECK(nn_load(n2, tmp("best.ckpt"), lo) == NN_OK, "best checkpoint loads: %s",
                          nn_error_string());
            flat(n2, now);
            same = 1;
            for (i = 0; i < 114; i++) same &= now[i] == seen.w[b][i];
            NN_TEST_CHECK(same, "the best checkpoint holds the best weights");
            nn_optim_free(o2);
            nn_module_free(n2);
        }
    }
    nn_history_free(h);
    /* a batch callback ends the run in epoch 2 */
    memset(&seen, 0, sizeof seen);
    seen.stop_at_batch = 3;
    fo.stop.rule = NN_STOP_NONE;
    fo.best_checkpoint = NULL;
    fo.on_epoch = NULL;
    fo.on_batch = on_batch_stop;
    h = nn_fit(net, opt, &ds, fo);
    NN_TEST_CHECK(h && h->stopped_by_callback && h->epochs == 2 && h->stopped_epoch == 0,
                  "a callback stops the run in epoch 2 (%d epochs)", h ? h->epochs : -1);
    nn_history_free(h);
    /* misuse */
    nn_test_msgs = 0;
    fo.on_batch = NULL;
    fo.epochs = -1;
    NN_TEST_CHECK(nn_fit(net, opt, &ds, fo) == NULL && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_fit: bad options (epochs -1"),
                  "bad options: %s", nn_test_msg);
    fo.epochs = 2;
    fo.monitor = NN_MONITOR_VAL_METRIC;
    fo.stop.rule = NN_STOP_GL;
    NN_TEST_CHECK(nn_fit(net, opt, &ds, fo) == NULL && nn_test_msgs == 2 &&
                      strstr(nn_test_msg, "needs a monitor to minimize, not accuracy"),
                  "GL on accuracy: %s", nn_test_msg);
    fo.monitor = 0;
    fo.stop.rule = 0;
    fo.loss = NN_FIT_MSE;
    fo.metric = NN_METRIC_NONE;
    NN_TEST_CHECK(nn_fit(net, opt, &ds, fo) == NULL && nn_test_msgs == 3 &&
                      strstr(nn_test_msg, "NN_FIT_MSE needs float targets"),
                  "MSE without targets: %s", nn_test_msg);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&ds);
    nn_dataset_free(&val);
}

/* A user loss (cross-entropy with label smoothing through nn_cross_entropy)
   and top-1 accuracy; a plateau schedule fed the validation loss. */
static nn_tensor *user_loss(nn_tensor *out, const int *labels, nn_tensor *targets, void *user) {
    nn_ce_opts ce;
    (void)targets;
    memset(&ce, 0, sizeof ce);
    ce.label_smoothing = *(const float *)user;
    return nn_cross_entropy(out, labels, ce);
}

static void test_fit_user_loss_and_plateau(void) {
    nn_dataset ds, val;
    nn_optim *opt;
    nn_module *net;
    nn_fit_opts fo;
    nn_history *h;
    nn_reduce_on_plateau_opts rp;
    nn_sched *plateau;
    float smooth = 0.1f;
    int e, ok = 1, calls = 0;
    double best = 1e30;
    blobs(64, 51, &ds);
    blobs(32, 52, &val);
    for (e = 0; e < 32; e += 3) val.y[e] = 1 - val.y[e];
    net = mlp(13, &opt);
    memset(&rp, 0, sizeof rp);
    rp.factor = 0.5f;
    rp.patience = -1; /* a literal 0: cut after every epoch that does not improve */
    plateau = nn_reduce_on_plateau(opt, rp);
    memset(&fo, 0, sizeof fo);
    fo.epochs = 8;
    fo.batch_size = 8;
    fo.val = &val;
    fo.loss_fn = user_loss;
    fo.loss_user = &smooth;
    fo.metric = NN_METRIC_TOPK;
    fo.topk = 1;
    fo.sched = plateau; /* stepped per epoch with the validation loss, by itself */
    fo.progress = NN_PROGRESS_QUIET;
    h = nn_fit(net, opt, &ds, fo);
    NN_TEST_CHECK(h && strcmp(h->metric, "topk") == 0, "a user loss and top-k");
    if (h) {
        nn_loader_opts lo;
        nn_graph *g = nn_graph_new();
        float acc;
        memset(&lo, 0, sizeof lo);
        acc = nn_accuracy(net, &val, g, lo);
        NN_TEST_CHECK(h->epochs == 8 && fabsf(h->val_metric[7] - acc) < 1e-6f,
                      "validation top-1 %g is nn_accuracy %g", (double)h->val_metric[7], (double)acc);
        nn_graph_free(g);
        for (e = 0; e + 1 < h->epochs; e++) {
            int better = (double)h->val_loss[e] < best * (1.0 - 1e-4);
            if (better) best = (double)h->val_loss[e];
            else calls++;
            ok &= fabsf(h->lr[e + 1] - (better ? h->lr[e] : 0.5f * h->lr[e])) <= 1e-7f;
        }
        NN_TEST_CHECK(ok && calls > 0, "the plateau schedule halves the lr after each epoch the "
                                       "validation loss did not improve (%d cuts)", calls);
    }
    nn_history_free(h);
    nn_sched_free(plateau);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&ds);
    nn_dataset_free(&val);
}

static void test_fit_resume(void) {
    nn_dataset ds;
    nn_optim *o1, *o2;
    nn_module *n1, *n2;
    nn_fit_opts fo;
    nn_history *h1, *h2, *h3;
    float w1[128], w2[128];
    int i, same = 1;
    blobs(64, 31, &ds);
    memset(&fo, 0, sizeof fo);
    fo.batch_size = 8;
    fo.val_split = 0.25f;
    fo.progress = NN_PROGRESS_QUIET;
    /* uninterrupted: 4 epochs */
    n1 = mlp(5, &o1);
    fo.epochs = 4;
    h1 = nn_fit(n1, o1, &ds, fo);
    flat(n1, w1);
    /* interrupted after 2, then resumed to 4 with a fresh model */
    remove(tmp("run.ckpt"));
    n2 = mlp(5, &o2);
    fo.epochs = 2;
    fo.checkpoint = tmp("run.ckpt");
    fo.checkpoint_every = 2; /* and at the end: one file write per run (each is fsync'd) */
    fo.resume = 1;
    h2 = nn_fit(n2, o2, &ds, fo);
    nn_optim_free(o2);
    nn_module_free(n2);
    n2 = mlp(77, &o2); /* other initial weights and RNG state: the checkpoint restores both */
    fo.epochs = 4;
    h3 = nn_fit(n2, o2, &ds, fo);
    NN_TEST_CHECK(h1 && h2 && h3 && h2->epochs == 2 && h3->epochs == 4, "4 = 2 + 2 resumed epochs");
    flat(n2, w2);
    for (i = 0; i < 114; i++) same &= w1[i] == w2[i];
    NN_TEST_CHECK(same, "resumed run ends with bitwise the weights of the uninterrupted one");
    if (h1 && h3) {
        same = 1;
        for (i = 0; i < 4; i++) same &= h1->train_loss[i] == h3->train_loss[i] && h1->val_loss[i] == h3->val_loss[i];
        NN_TEST_CHECK(same, "the resumed history holds the same losses");
    }
    nn_history_free(h1);
    nn_history_free(h2);
    nn_history_free(h3);
    nn_optim_free(o1);
    nn_module_free(n1);
    nn_optim_free(o2);
    nn_module_free(n2);
    nn_dataset_free(&ds);
}

/* The bar: through the stream option, and on a pseudo-terminal where
   NN_PROGRESS_AUTO must pick it by itself. */
static void test_progress_bar(void) {
    nn_dataset ds;
    nn_optim *opt;
    nn_module *net;
    nn_fit_opts fo;
    nn_history *h;
    FILE *f = tmpfile();
    char *s;
    blobs(64, 41, &ds);
    net = mlp(9, &opt);
    memset(&fo, 0, sizeof fo);
    fo.epochs = 2;
    fo.batch_size = 8;
    fo.val_split = 0.25f;
    fo.progress = NN_PROGRESS_BAR;
    fo.stream = f;
    h = nn_fit(net, opt, &ds, fo);
    s = f ? slurp_stream(f) : NULL;
    NN_TEST_CHECK(h && s && strstr(s, "\repoch 1/2 [") && strstr(s, "] 1/6  loss ") && strstr(s, "samples/s") &&
                      strstr(s, "00:00<") && strstr(s, "\033[K") &&
                      strstr(s, "\repoch 2/2 [====================]") && count_of(s, "\n") == 2,
                  "bar: redrawn with \\r, batches, speed, elapsed<ETA, one final line per epoch:\n%s", s ? s : "");
    free(s);
    if (f) fclose(f);
    nn_history_free(h);
#if defined(__linux__)
    {
        int master = posix_openpt(O_RDWR | O_NOCTTY), slave = -1;
        FILE *tty = NULL;
        char buf[8192];
        ssize_t got = 0;
        if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0 && ptsname(master) &&
            (slave = open(ptsname(master), O_RDWR | O_NOCTTY)) >= 0 && (tty = fdopen(slave, "w")) != NULL) {
            fo.progress = NN_PROGRESS_AUTO;
            fo.stream = tty;
            h = nn_fit(net, opt, &ds, fo);
            fflush(tty);
            fcntl(master, F_SETFL, O_NONBLOCK);
            got = read(master, buf, sizeof buf - 1);
            buf[got > 0 ? got : 0] = '\0';
            NN_TEST_CHECK(h && strstr(buf, "\repoch 1/2 [") && strstr(buf, "samples/s"),
                          "a pseudo-terminal gets the bar with NN_PROGRESS_AUTO");
            nn_history_free(h);
            fclose(tty);
        } else {
            printf("(no pseudo-terminal here: skipped)\n");
            if (slave >= 0) close(slave);
        }
        if (master >= 0) close(master);
    }
#endif
    nn_optim_free(opt);
    nn_module_free(net);
    nn_dataset_free(&ds);
}

int main(int argc, char **argv) {
    const char *t = getenv("TMPDIR");
    (void)gold_same_shape;
    if (argc > 1) gold_dir = argv[1];
    snprintf(tmpdir, sizeof tmpdir, "%s", t && *t ? t : "/tmp");
    nn_set_error_hook(nn_test_record_hook, NULL);
    test_early_stopping();
    test_metrics_hand();
    test_metrics_sklearn();
    test_summary();
    test_plots();
    test_fit_learns();
    test_fit_regression();
    test_fit_restore_and_callbacks();
    test_fit_user_loss_and_plateau();
    test_fit_resume();
    test_progress_bar();
    return nn_test_summary("test_fit");
}
