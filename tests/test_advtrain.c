/* Adversarial training: nn_adversarial_batch (a share of a batch replaced by
   an attack on the current model) and nn_fit's adversarial option (the loop
   trains on that batch: one step equals the hand-written step on it). */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <string.h>
#include <math.h>

#define N 6
#define F 4

static void fill(float *x, int *y) {
    int i;
    for (i = 0; i < N * F; i++) x[i] = (float)((i * 37) % 101) / 101.0f;
    for (i = 0; i < N; i++) y[i] = i % 3;
}

static int rows_equal(const float *a, const float *b, int rows) {
    return memcmp(a, b, sizeof(float) * (size_t)(rows * F)) == 0;
}

static void test_batch(void) {
    nn_module *m = nn_linear(F, 3);
    nn_graph *g = nn_graph_new();
    nn_attack_opts ao;
    float xv[N * F];
    int y[N], i, ok = 1, moved = 0;
    nn_tensor *x, *full, *half, *w = nn_param(m, "weight");
    fill(xv, y);
    memset(&ao, 0, sizeof ao);
    ao.eps = 0.05f;
    ao.steps = 1;
    ao.step_size = 0.05f;   /* FGSM */
    nn_graph_reset(g);
    x = nn_tensor_from(g, xv, NN_SHAPE(N, F));
    /* the mean loss scales each sample's gradient by 1/batch, so the signs,
       and FGSM's result, of a sample do not depend on the batch around it */
    full = nn_fgsm(m, x, y, ao);
    half = nn_adversarial_batch(m, x, y, 0.5f, ao);
    NN_TEST_CHECK(half && half != x && half->ndim == 2 && half->shape[0] == N && half->shape[1] == F,
                  "a new [6,4] batch");
    if (half) {
        NN_TEST_CHECK(rows_equal(half->data, full->data, 3), "the first 3 rows are FGSM's");
        NN_TEST_CHECK(rows_equal(half->data + 3 * F, xv + 3 * F, 3), "the last 3 are the clean ones");
        for (i = 0; i < 3 * F; i++) {
            ok &= fabsf(half->data[i] - xv[i]) <= 0.05f + 1e-6f;
            moved += half->data[i] != xv[i];
        }
        NN_TEST_CHECK(ok && moved > 0, "the attacked rows moved (%d values) within eps", moved);
    }
    NN_TEST_CHECK(nn_grad(w) == NULL, "the weights get no gradient from the attack");
    NN_TEST_CHECK(nn_adversarial_batch(m, x, y, 0.0f, ao) == x, "fraction 0: x itself");
    half = nn_adversarial_batch(m, x, y, 1.0f, ao);
    NN_TEST_CHECK(half && rows_equal(half->data, full->data, N), "fraction 1: the whole batch attacked");
    half = nn_adversarial_batch(m, x, y, 0.1f, ao);   /* round(0.6) = 1 row */
    NN_TEST_CHECK(half && rows_equal(half->data, full->data, 1) &&
                      rows_equal(half->data + F, xv + F, N - 1), "fraction 0.1 of 6: one row, rounded");
    nn_graph_free(g);
    nn_module_free(m);
}

/* One nn_fit step (one full batch, plain SGD) on the adversarial batch
   equals the step written out: attack, forward, cross-entropy, backward. */
static void test_fit(void) {
    nn_module *m1 = nn_linear(F, 3), *m2 = nn_linear(F, 3);
    nn_tensor *w1 = nn_param(m1, "weight"), *w2 = nn_param(m2, "weight");
    nn_tensor *b1 = nn_param(m1, "bias"), *b2 = nn_param(m2, "bias");
    nn_dataset ds;
    nn_fit_opts fo;
    nn_sgd_opts so;
    nn_attack_opts ao;
    nn_optim *o1, *o2;
    nn_history *h;
    float xv[N * F], before[12], before_b[3];
    int y[N], i;
    double diff = 0.0, change = 0.0;
    fill(xv, y);
    memcpy(w2->data, w1->data, sizeof(float) * 12);
    memcpy(b2->data, b1->data, sizeof(float) * 3);
    memcpy(before, w1->data, sizeof before);
    memcpy(before_b, b1->data, sizeof before_b);
    nn_dataset_tabular(N, F, xv, y, NULL, 0, &ds);
    memset(&so, 0, sizeof so);
    so.lr = 0.5f;
    o1 = nn_sgd(m1, so);
    o2 = nn_sgd(m2, so);
    memset(&ao, 0, sizeof ao);
    ao.eps = 0.1f;
    ao.steps = 1;
    ao.step_size = 0.1f;
    memset(&fo, 0, sizeof fo);
    fo.epochs = 1;
    fo.batch_size = N;
    fo.no_shuffle = 1;
    fo.progress = NN_PROGRESS_QUIET;
    fo.adversarial = &ao;
    fo.adversarial_fraction = 1.0f;
    h = nn_fit(m1, o1, &ds, fo);
    NN_TEST_CHECK(h != NULL, "nn_fit with adversarial training runs: %s", nn_error_string());
    {
        nn_graph *g = nn_graph_new();
        nn_ce_opts ce;
        nn_tensor *x, *xa;
        memset(&ce, 0, sizeof ce);
        nn_graph_reset(g);
        x = nn_tensor_from(g, xv, NN_SHAPE(N, F));
        xa = nn_fgsm(m2, x, y, ao);
        nn_zero_grad(o2);
        nn_backward(nn_cross_entropy(nn_forward(m2, xa), y, ce));
        nn_step(o2);
        nn_graph_free(g);
    }
    for (i = 0; i < 12; i++) {
        diff += fabs((double)w1->data[i] - (double)w2->data[i]);
        change += fabs((double)w1->data[i] - (double)before[i]);
    }
    for (i = 0; i < 3; i++) diff += fabs((double)b1->data[i] - (double)b2->data[i]);
    NN_TEST_CHECK(diff < 1e-6 && change > 1e-3,
                  "the step nn_fit took is the step on the FGSM batch (difference %g, change %g)", diff,
                  change);
    /* without the option the step differs (the attack did something) */
    nn_history_free(h);
    fo.adversarial = NULL;
    memcpy(w1->data, before, sizeof before);
    memcpy(b1->data, before_b, sizeof before_b);
    nn_optim_free(o1);
    o1 = nn_sgd(m1, so);
    h = nn_fit(m1, o1, &ds, fo);
    diff = 0.0;
    for (i = 0; i < 12; i++) diff += fabs((double)w1->data[i] - (double)w2->data[i]);
    NN_TEST_CHECK(h && diff > 1e-5, "a clean step lands elsewhere (difference %g)", diff);
    nn_history_free(h);
    nn_optim_free(o1);
    nn_optim_free(o2);
    nn_module_free(m1);
    nn_module_free(m2);
    nn_dataset_free(&ds);
}

static void test_misuse(void) {
    nn_module *m = nn_linear(F, 3);
    nn_tensor *x = nn_zeros(NULL, NN_SHAPE(N, F));
    nn_attack_opts ao;
    int y[N] = {0, 1, 2, 0, 1, 2};
    memset(&ao, 0, sizeof ao);
    ao.eps = 0.1f;
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_test_msgs = 0;
    NN_TEST_CHECK(nn_adversarial_batch(m, x, y, 1.5f, ao) == NULL && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_adversarial_batch: fraction must be in [0,1], got 1.5"),
                  "fraction 1.5 refused: \"%s\"", nn_test_msg);
    nn_test_msgs = 0;
    ao.eps = 0.0f;
    NN_TEST_CHECK(nn_adversarial_batch(m, x, y, 0.5f, ao) == NULL && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_adversarial_batch: needs eps > 0"),
                  "eps 0 refused under the function's name: \"%s\"", nn_test_msg);
    nn_test_msgs = 0;
    nn_set_error_hook(NULL, NULL);
    nn_tensor_free(x);
    nn_module_free(m);
}

int main(void) {
    nn_seed(3);
    test_batch();
    test_fit();
    test_misuse();
    return nn_test_summary("test_advtrain");
}
