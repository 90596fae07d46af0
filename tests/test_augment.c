/* Image augmentation (>>data.augment): each transform on small hand-made
   images against the expected pixels (flips, crop offsets with zero and
   reflect padding, translation, a 90-degree rotation, scaling, the erasing
   rectangle, cutout, occlusion), the jitters' rules, bounds (guard images
   around the batch stay untouched), determinism by seed and the misuse
   messages.  (That the loader runs a pipeline with no allocation per batch
   is checked in test_alloc.c, which counts allocations.) */
#include <stdlib.h>
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <string.h>

static void reported(const char *what, const char *s1) {
    int ok = nn_test_msgs == 1 && strstr(nn_test_msg, s1);
    NN_TEST_CHECK(ok, "%s: %d reports, last \"%s\" (want \"%s\")", what, nn_test_msgs, nn_test_msg, s1);
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
}

static int same(const float *a, const float *b, int n, float tol) {
    int i;
    for (i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= tol)) {
            printf("  [%d]: got %g want %g\n", i, (double)a[i], (double)b[i]);
            return 0;
        }
    return 1;
}

/* Run a fresh pipeline with one transform (set up by add) on a copy of img. */
typedef int (*add_fn)(nn_augment *a);
static void run1(add_fn add, nn_rng *r, float *img, int n, int C, int H, int W) {
    nn_augment *a = nn_augment_new(r);
    add(a);
    nn_augment_images(a, img, n, C, H, W);
    nn_augment_free(a);
}

static int add_hflip(nn_augment *a) { return nn_augment_hflip(a, 1.0f); }
static int add_vflip(nn_augment *a) { return nn_augment_vflip(a, 1.0f); }
static int add_crop(nn_augment *a) { return nn_augment_crop(a, 1, 0); }
static int add_crop_reflect(nn_augment *a) { return nn_augment_crop(a, 2, 1); }
static int add_translate(nn_augment *a) { return nn_augment_translate(a, 2, -1.0f); }
static int add_rot90(nn_augment *a) { return nn_augment_affine(a, 90.0f, 90.0f, 0.0f, 0.0f, 0.0f); }
static int add_scale2(nn_augment *a) { return nn_augment_affine(a, 0.0f, 0.0f, 2.0f, 2.0f, 0.0f); }

static void test_geometry(void) {
    /* a 2-channel 2 x 3 image */
    float img[12] = {1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16}, t[12];
    float hf[12] = {3, 2, 1, 6, 5, 4, 13, 12, 11, 16, 15, 14};
    float vf[12] = {4, 5, 6, 1, 2, 3, 14, 15, 16, 11, 12, 13};
    float sq[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, s9[9];
    float ccw[9] = {3, 6, 9, 2, 5, 8, 1, 4, 7};
    nn_rng *r = nn_rng_new(1), *rep = nn_rng_new(1);
    int k, ok;
    memcpy(t, img, sizeof t);
    run1(add_hflip, r, t, 1, 2, 2, 3);
    NN_TEST_CHECK(same(t, hf, 12, 0.0f), "hflip: columns reversed in every channel");
    memcpy(t, img, sizeof t);
    run1(add_vflip, r, t, 1, 2, 2, 3);
    NN_TEST_CHECK(same(t, vf, 12, 0.0f), "vflip: rows reversed");
    memcpy(s9, sq, sizeof s9);
    run1(add_rot90, r, s9, 1, 1, 3, 3);
    NN_TEST_CHECK(same(s9, ccw, 9, 1e-5f), "a 90-degree rotation turns the image counterclockwise");
    memcpy(s9, sq, sizeof s9);
    run1(add_scale2, r, s9, 1, 1, 3, 3);
    /* scale 2 about the centre: (0,0) samples (0.5, 0.5), the mean of 1,2,4,5 */
    NN_TEST_CHECK(fabsf(s9[4] - 5.0f) < 1e-6f && fabsf(s9[0] - 3.0f) < 1e-6f &&
                  fabsf(s9[8] - 7.0f) < 1e-6f, "scaling by 2 is bilinear about the centre");
    /* crop with zero padding 1: a shift by (dy, dx) in [-1,1], drawn dy first */
    ok = 1;
    for (k = 0; k < 6; k++) {
        float w[9];
        int dy, dx, y, x;
        nn_rng_seed(r, (uint64_t)k);
        nn_rng_seed(rep, (uint64_t)k);
        dy = (int)nn_rng_below(rep, 3) - 1;
        dx = (int)nn_rng_below(rep, 3) - 1;
        for (y = 0; y < 3; y++)
            for (x = 0; x < 3; x++) {
                int sy = y + dy, sx = x + dx;
                w[y * 3 + x] = sy >= 0 && sy < 3 && sx >= 0 && sx < 3 ? sq[sy * 3 + sx] : 0.0f;
            }
        memcpy(s9, sq, sizeof s9);
        run1(add_crop, r, s9, 1, 1, 3, 3);
        ok &= same(s9, w, 9, 0.0f);
    }
    NN_TEST_CHECK(ok, "crop: offsets in [0, 2P] of the zero-padded image");
    /* reflect padding 2 on a 1 x 4 row ... as a 3 x 4 image */
    ok = 1;
    for (k = 0; k < 8; k++) {
        float im[12], w[12];
        int dy, dx, y, x, i;
        for (i = 0; i < 12; i++) im[i] = (float)i;
        nn_rng_seed(r, (uint64_t)(100 + k));
        nn_rng_seed(rep, (uint64_t)(100 + k));
        dy = (int)nn_rng_below(rep, 5) - 2;
        dx = (int)nn_rng_below(rep, 5) - 2;
        for (y = 0; y < 3; y++)
            for (x = 0; x < 4; x++) {
                int sy = y + dy, sx = x + dx;
                sy = sy < 0 ? -sy : sy > 2 ? 4 - sy : sy;
                sx = sx < 0 ? -sx : sx > 3 ? 6 - sx : sx;
                w[y * 4 + x] = im[sy * 4 + sx];
            }
        run1(add_crop_reflect, r, im, 1, 1, 3, 4);
        ok &= same(im, w, 12, 0.0f);
    }
    NN_TEST_CHECK(ok, "crop: reflect padding mirrors without repeating the edge");
    /* translation by up to 2 with fill -1 */
    ok = 1;
    for (k = 0; k < 6; k++) {
        float w[9];
        int dy, dx, y, x;
        nn_rng_seed(r, (uint64_t)(200 + k));
        nn_rng_seed(rep, (uint64_t)(200 + k));
        dy = (int)nn_rng_below(rep, 5) - 2;
        dx = (int)nn_rng_below(rep, 5) - 2;
        for (y = 0; y < 3; y++)
            for (x = 0; x < 3; x++) {
                int sy = y + dy, sx = x + dx;
                w[y * 3 + x] = sy >= 0 && sy < 3 && sx >= 0 && sx < 3 ? sq[sy * 3 + sx] : -1.0f;
            }
        memcpy(s9, sq, sizeof s9);
        run1(add_translate, r, s9, 1, 1, 3, 3);
        ok &= same(s9, w, 9, 0.0f);
    }
    NN_TEST_CHECK(ok, "translate: whole-pixel shifts, the fill value where nothing comes in");
    nn_rng_free(r);
    nn_rng_free(rep);
}

static void test_patches(void) {
    enum { N = 40, C = 2, H = 10, W = 12 };
    static float x[N * C * H * W];
    nn_rng *r = nn_rng_new(3);
    nn_augment *a;
    nn_erase_opts eo;
    int i, ok = 1, erased = 0;
    memset(&eo, 0, sizeof eo);
    eo.p = 1.0f;
    eo.constant = 1;
    eo.fill = -1.0f;
    for (i = 0; i < N * C * H * W; i++) x[i] = 0.5f;
    a = nn_augment_new(r);
    nn_augment_erase(a, eo);
    nn_augment_images(a, x, N, C, H, W);
    for (i = 0; i < N; i++) {
        /* the bounding box of the -1 pixels must be all -1 in both channels */
        int y, xx, y0 = H, y1 = -1, x0 = W, x1 = -1, cnt = 0, c;
        for (y = 0; y < H; y++)
            for (xx = 0; xx < W; xx++)
                if (x[(size_t)i * C * H * W + (size_t)y * W + (size_t)xx] == -1.0f) {
                    cnt++;
                    if (y < y0) y0 = y;
                    if (y > y1) y1 = y;
                    if (xx < x0) x0 = xx;
                    if (xx > x1) x1 = xx;
                }
        if (!cnt) continue;
        erased++;
        ok &= cnt == (y1 - y0 + 1) * (x1 - x0 + 1);
        for (c = 0; c < C; c++)
            for (y = 0; y < H; y++)
                for (xx = 0; xx < W; xx++) {
                    float v = x[(((size_t)i * C + (size_t)c) * H + (size_t)y) * W + (size_t)xx];
                    int in = y >= y0 && y <= y1 && xx >= x0 && xx <= x1;
                    ok &= in ? v == -1.0f : v == 0.5f;
                }
        /* the area share within [0.02, 0.4] up to rounding of the sides */
        ok &= (double)cnt / (H * W) < 0.55 && (double)cnt / (H * W) > 0.005;
    }
    NN_TEST_CHECK(ok && erased > N / 2, "random erasing: one rectangle in every channel, the rest "
                  "untouched (%d of %d erased)", erased, N);
    nn_augment_free(a);
    /* cutout: a clipped square of side 4; occlusion: patches inside */
    for (i = 0; i < N * C * H * W; i++) x[i] = 1.0f;
    a = nn_augment_new(r);
    nn_augment_cutout(a, 4, 0.0f);
    nn_augment_images(a, x, N, C, H, W);
    ok = 1;
    for (i = 0; i < N; i++) {
        int k, cnt = 0;
        for (k = 0; k < H * W; k++) cnt += x[(size_t)i * C * H * W + (size_t)k] == 0.0f;
        ok &= cnt >= 4 && cnt <= 16;
    }
    NN_TEST_CHECK(ok, "cutout: a square of side 4 around a uniform centre, clipped to the image");
    nn_augment_free(a);
    for (i = 0; i < N * C * H * W; i++) x[i] = 1.0f;
    a = nn_augment_new(r);
    nn_augment_occlude(a, 1, 3, 0.25f);
    nn_augment_images(a, x, N, C, H, W);
    ok = 1;
    for (i = 0; i < N; i++) {
        int k, cnt = 0;
        for (k = 0; k < C * H * W; k++) cnt += x[(size_t)i * C * H * W + (size_t)k] == 0.25f;
        ok &= cnt == 2 * 9;
    }
    NN_TEST_CHECK(ok, "occlusion: a 3 x 3 patch wholly inside, in every channel");
    nn_augment_free(a);
    nn_rng_free(r);
}

static void test_jitter(void) {
    float img[2 * 16], orig[2 * 16];
    nn_rng *r = nn_rng_new(4);
    nn_augment *a;
    int i, ok;
    double m0 = 0, m1 = 0;
    for (i = 0; i < 32; i++) orig[i] = img[i] = 0.1f + 0.025f * (float)i;
    a = nn_augment_new(r);
    nn_augment_brightness(a, 0.4f);
    nn_augment_images(a, img, 2, 1, 4, 4);
    ok = 1;
    for (i = 1; i < 16; i++) ok &= fabsf(img[i] / orig[i] - img[0] / orig[0]) < 1e-5f;
    NN_TEST_CHECK(ok && img[0] / orig[0] >= 0.6f && img[0] / orig[0] <= 1.4f && img[0] != img[16] * orig[0] / orig[16],
                  "brightness: one factor in [0.6, 1.4] per sample");
    nn_augment_free(a);
    memcpy(img, orig, sizeof img);
    a = nn_augment_new(r);
    nn_augment_contrast(a, 0.5f);
    nn_augment_images(a, img, 2, 1, 4, 4);
    for (i = 0; i < 16; i++) { m0 += (double)img[i]; m1 += (double)orig[i]; }
    NN_TEST_CHECK(fabs(m0 - m1) < 1e-4 && fabsf(img[15] - img[0]) != fabsf(orig[15] - orig[0]),
                  "contrast: the sample's mean kept, the spread scaled");
    nn_augment_free(a);
    {
        static float z[20000];
        double m = 0, v = 0;
        a = nn_augment_new(r);
        nn_augment_noise(a, 0.2f);
        nn_augment_images(a, z, 2, 1, 100, 100);
        for (i = 0; i < 20000; i++) m += (double)z[i];
        m /= 20000.0;
        for (i = 0; i < 20000; i++) v += ((double)z[i] - m) * ((double)z[i] - m);
        v /= 19999.0;
        NN_TEST_CHECK(fabs(m) < 0.006 && fabs(v - 0.04) < 0.003, "noise: mean %.4f var %.4f", m, v);
        nn_augment_free(a);
    }
    nn_rng_free(r);
}

/* A full pipeline on a batch between guard images; the same seed twice. */
static nn_augment *full_pipeline(nn_rng *r) {
    nn_augment *a = nn_augment_new(r);
    nn_erase_opts eo;
    memset(&eo, 0, sizeof eo);
    nn_augment_crop(a, 4, 1);
    nn_augment_hflip(a, 0.0f);
    nn_augment_vflip(a, 0.3f);
    nn_augment_translate(a, 3, 0.0f);
    nn_augment_affine(a, -30.0f, 30.0f, 0.8f, 1.2f, 0.0f);
    nn_augment_brightness(a, 0.2f);
    nn_augment_contrast(a, 0.2f);
    nn_augment_noise(a, 0.05f);
    nn_augment_cutout(a, 8, 0.0f);
    nn_augment_erase(a, eo);
    nn_augment_occlude(a, 2, 5, 0.5f);
    return a;
}

static void test_bounds_determinism(void) {
    enum { N = 6, IMG = 1 * 28 * 28 };
    static float buf[(N + 2) * IMG], ref[N * IMG];
    nn_rng *r = nn_rng_new(9);
    nn_augment *a = full_pipeline(r);
    int i, guard = 1;
    for (i = 0; i < (N + 2) * IMG; i++) buf[i] = (float)(i % 97) / 97.0f;
    nn_augment_images(a, buf + IMG, N, 1, 28, 28);
    for (i = 0; i < IMG; i++) guard &= buf[i] == (float)(i % 97) / 97.0f &&
                                        buf[(N + 1) * IMG + i] == (float)(((N + 1) * IMG + i) % 97) / 97.0f;
    NN_TEST_CHECK(guard, "the whole pipeline writes inside the batch only");
    memcpy(ref, buf + IMG, sizeof ref);
    for (i = 0; i < (N + 2) * IMG; i++) buf[i] = (float)(i % 97) / 97.0f;
    nn_rng_seed(r, 9);
    nn_augment_images(a, buf + IMG, N, 1, 28, 28);
    NN_TEST_CHECK(memcmp(ref, buf + IMG, sizeof ref) == 0, "the same seed gives the same batch");
    nn_set_threads(2);
    for (i = 0; i < (N + 2) * IMG; i++) buf[i] = (float)(i % 97) / 97.0f;
    nn_rng_seed(r, 9);
    nn_augment_images(a, buf + IMG, N, 1, 28, 28);
    NN_TEST_CHECK(memcmp(ref, buf + IMG, sizeof ref) == 0, "... at 2 threads too");
    nn_set_threads(0);
    nn_augment_free(a);
    nn_rng_free(r);
}

static void test_misuse(void) {
    nn_augment *a = nn_augment_new(NULL);
    nn_tensor *t = nn_zeros(NULL, NN_SHAPE(2, 9));
    float img[9] = {0};
    nn_erase_opts eo;
    nn_set_error_hook(nn_test_record_hook, NULL);
    NN_TEST_CHECK(!nn_augment_hflip(a, 1.5f), "p > 1 refused");
    reported("hflip p", "nn_augment_hflip: p must be in [0,1]");
    nn_augment_affine(a, 10.0f, -10.0f, 0.0f, 0.0f, 0.0f);
    reported("affine range", "nn_augment_affine: needs finite lo_deg <= hi_deg");
    memset(&eo, 0, sizeof eo);
    eo.area_lo = 0.5f;
    eo.area_hi = 0.1f;
    nn_augment_erase(a, eo);
    reported("erase areas", "nn_augment_erase: needs p in [0,1], 0 < area_lo <= area_hi <= 1");
    nn_augment_run(a, t);
    reported("run on 2-D", "nn_augment_run: needs x [N,C,H,W], got [2,9]");
    nn_augment_crop(a, 3, 1);
    NN_TEST_CHECK(nn_augment_images(a, img, 1, 1, 3, 3) == NN_ERR_ARG, "a reflect padding as large as the image");
    reported("crop reflect", "nn_augment_images: reflect padding 3 needs images larger than it, got 3 x 3");
    nn_augment_free(a);
    a = nn_augment_new(NULL);
    nn_augment_occlude(a, 1, 4, 0.0f);
    nn_augment_images(a, img, 1, 1, 3, 3);
    reported("occlusion size", "nn_augment_images: occlusion patches of 4 x 4 do not fit in 3 x 3 images");
    {
        nn_attack_opts ao;
        nn_module *m = nn_linear(9, 2);
        int y[2] = {0, 1};
        memset(&ao, 0, sizeof ao);
        nn_fgsm(m, t, y, ao);
        reported("fgsm eps 0", "nn_fgsm: needs eps > 0, steps >= 0, step_size >= 0");
        nn_module_free(m);
    }
    nn_set_error_hook(NULL, NULL);
    nn_augment_free(a);
    nn_tensor_free(t);
}

/* FGSM against the sign of the gradient computed by hand for a linear model
   with cross-entropy: dL/dx_n = W^T (softmax(W x_n + b) - onehot(y_n)) / N. */
static void test_adversarial(void) {
    nn_module *m = nn_linear(4, 3);
    nn_tensor *w = nn_param(m, "weight"), *b = nn_param(m, "bias"), *x, *xa, *gr;
    nn_graph *g = nn_graph_new();
    nn_attack_opts ao;
    float xv[8] = {0.2f, 0.9f, 0.5f, 0.0f, 0.7f, 0.1f, 0.95f, 0.4f}, want[8];
    int y[2] = {2, 0}, n, i, k, ok = 1;
    for (n = 0; n < 2; n++) {
        float z[3], mx = -1e30f, se = 0.0f;
        for (k = 0; k < 3; k++) {
            z[k] = b->data[k];
            for (i = 0; i < 4; i++) z[k] += w->data[k * 4 + i] * xv[n * 4 + i];
            mx = z[k] > mx ? z[k] : mx;
        }
        for (k = 0; k < 3; k++) se += expf(z[k] - mx);
        for (i = 0; i < 4; i++) {
            float gi = 0.0f;
            for (k = 0; k < 3; k++) gi += w->data[k * 4 + i] * (expf(z[k] - mx) / se - (k == y[n])) / 2.0f;
            want[n * 4 + i] = xv[n * 4 + i] + 0.1f * (float)((gi > 0) - (gi < 0));
            want[n * 4 + i] = want[n * 4 + i] < 0 ? 0 : want[n * 4 + i] > 1 ? 1 : want[n * 4 + i];
        }
    }
    memset(&ao, 0, sizeof ao);
    ao.eps = 0.1f;
    nn_graph_reset(g);
    x = nn_tensor_from(g, xv, NN_SHAPE(2, 4));
    xa = nn_fgsm(m, x, y, ao);
    NN_TEST_CHECK(xa && same(xa->data, want, 8, 1e-6f) && nn_grad(w) == NULL,
                  "FGSM: x + eps sign(grad), clipped to [0,1], against the gradient by hand; the "
                  "weights get no gradient");
    gr = nn_input_grad(m, x, y, ao);
    NN_TEST_CHECK(gr && gr->numel == 8 && nn_needs_grad(w), "nn_input_grad keeps the weights trainable");
    /* PGD: inside the eps-ball and the range, and the loss does not fall */
    {
        nn_ce_opts ce;
        float l0, l1;
        memset(&ce, 0, sizeof ce);
        ao.steps = 5;
        ao.random_start = 1;
        xa = nn_pgd(m, x, y, ao);
        for (i = 0; i < 8; i++)
            ok &= fabsf(xa->data[i] - xv[i]) <= 0.1f + 1e-6f && xa->data[i] >= 0.0f && xa->data[i] <= 1.0f;
        l0 = nn_item(nn_cross_entropy(nn_forward(m, x), y, ce));
        l1 = nn_item(nn_cross_entropy(nn_forward(m, xa), y, ce));
        NN_TEST_CHECK(ok && l1 > l0, "PGD: within the eps-ball and [0,1], loss %g -> %g", (double)l0, (double)l1);
    }
    nn_graph_free(g);
    nn_module_free(m);
}

static void test_robust_accuracy(void) {
    nn_dataset ds;
    nn_loader_opts lo;
    nn_loader *ld;
    nn_module *m = nn_sequential(nn_flatten(), nn_linear(784, 10), NULL);
    nn_attack_opts ao;
    float clean, robust;
    nn_dataset_synthetic(60, 2, &ds);
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 30;
    ld = nn_loader_new(&ds, lo);
    memset(&ao, 0, sizeof ao);
    ao.eps = 1e-6f;
    ao.steps = 1;
    clean = nn_robust_accuracy(m, ld, ao);
    ao.eps = 0.3f;
    ao.steps = 3;
    robust = nn_robust_accuracy(m, ld, ao);
    NN_TEST_CHECK(clean >= 0.0f && robust >= 0.0f && robust <= clean,
                  "robust accuracy at eps 0.3 (%g) at most the clean one (%g)", (double)robust, (double)clean);
    nn_loader_free(ld);
    nn_dataset_free(&ds);
    nn_module_free(m);
}

int main(void) {
    test_adversarial();
    test_robust_accuracy();
    test_geometry();
    test_patches();
    test_jitter();
    test_bounds_determinism();
    test_misuse();
    return nn_test_summary("test_augment");
}
