/* Memory reuse of nn_sequential's forward with gradients off: the peak arena
   size of a no-grad forward of the benchmark CNN (conv5x5x32-pool-
   conv5x5x64-pool-fc128-fc10) is about two layers' activations, bounded
   from the shapes, and half of the no-reuse path's; outputs bitwise equal
   to the no-reuse path (each child run by hand); the arena does not grow in
   steady state; the caller's input survives; a tensor a module kept from
   inside the forward is reported as released, one from before a reset as
   stale; nested sequentials, residual blocks, views (flatten), identities
   (dropout in evaluation), information dropout's kept KL term and a
   persistent input are correct; with gradients on nothing changes. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <string.h>

static char last_msg[1024];
static int reports = 0;
static void record(const char *msg, void *user) {
    (void)user;
    reports++;
    snprintf(last_msg, sizeof last_msg, "%s", msg);
}

/* The no-reuse path: m's children run one by one (a child that is itself a
   sequential runs its children by hand too). */
static nn_tensor *by_hand(nn_module *m, nn_tensor *x) {
    int i;
    if (strcmp(m->type, "Sequential") != 0) return nn_forward(m, x);
    for (i = 0; i < m->nchildren && x; i++) x = by_hand(m->children[i], x);
    return x;
}

static int same_bits(const nn_tensor *a, const nn_tensor *b) {
    return a && b && a->numel == b->numel && memcmp(a->data, b->data, a->numel * sizeof(float)) == 0;
}

static void noop_hook(nn_module *m, nn_tensor *x, nn_tensor *y, void *user) {
    (void)m; (void)x; (void)y; (void)user;
}

static nn_module *bench_cnn(void) {
    nn_conv_opts conv = {0};
    nn_pool_opts pool = {0};
    conv.kernel = 5;
    pool.kernel = 2;
    return nn_sequential(nn_conv2d(1, 32, conv), nn_relu(), nn_maxpool2d(pool),
                         nn_conv2d(32, 64, conv), nn_relu(), nn_maxpool2d(pool), nn_flatten(),
                         nn_linear(1024, 128), nn_relu(), nn_linear(128, 10), NULL);
}

/* Arena capacity after one no-grad forward of net on x0 in a fresh graph
   (hook installed: the no-reuse path); *out gets a copy of the output. */
static size_t peak_of(nn_module *net, const nn_tensor *x0, int hook, float *out, size_t nout) {
    nn_graph *g = nn_graph_new();
    nn_tensor *y;
    size_t cap;
    nn_set_grad_enabled(g, 0);
    if (hook) nn_set_forward_hook(noop_hook, NULL, NULL);
    y = nn_forward(net, nn_tensor_from(g, x0->data, nn_shape_of(x0)));
    nn_set_forward_hook(NULL, NULL, NULL);
    if (y && y->numel == nout) memcpy(out, y->data, nout * sizeof(float));
    cap = nn_graph_capacity(g);
    nn_graph_free(g);
    return cap;
}

static void check_cnn(void) {
    const int B = 64, C1 = 32, H1 = 24;
    nn_module *net = bench_cnn();
    nn_tensor *x0 = nn_randn(NULL, NN_SHAPE(B, 1, 28, 28)), *x, *y, *ref;
    nn_graph *g = nn_graph_new();
    float out_reuse[64 * 10], out_plain[64 * 10];
    size_t act1 = (size_t)B * C1 * H1 * H1 * sizeof(float), cap, cap_plain, bound, before = 0;
    int k;
    nn_train_mode(net, 0);
    /* Bound from the shapes: 2.5 times the largest activation (conv1's
       output [B,32,24,24]: it and its ReLU are alive at once, and the
       arena's block growth rounds up), plus the first arena block (1 MB:
       the input and the kernels' scratch) and the header blocks. */
    bound = 5 * act1 / 2 + (1u << 20) + (128u << 10);
    cap = peak_of(net, x0, 0, out_reuse, sizeof out_reuse / sizeof(float));
    cap_plain = peak_of(net, x0, 1, out_plain, sizeof out_plain / sizeof(float));
    NN_TEST_CHECK(cap <= bound, "no-grad CNN forward at batch %d: peak arena %zu bytes, bound %zu "
                  "(2.5 x the largest activation %zu, one block, headers)", B, cap, bound, act1);
    NN_TEST_CHECK(cap * 3 <= cap_plain * 2, "reuse peak %zu is at most 2/3 of the no-reuse %zu",
                  cap, cap_plain);
    NN_TEST_CHECK(memcmp(out_reuse, out_plain, sizeof out_reuse) == 0,
                  "outputs bitwise equal with and without reuse");

    /* Steady state: the same forward again and again grows nothing, and
       matches the children run by hand each time. */
    nn_set_grad_enabled(g, 0);
    for (k = 0; k < 5; k++) {
        if (k == 2) before = nn_graph_capacity(g); /* both header parities exist */
        nn_graph_reset(g);
        nn_forward(net, nn_tensor_from(g, x0->data, nn_shape_of(x0)));
    }
    NN_TEST_CHECK(nn_graph_capacity(g) == before, "the arena stays at %zu bytes (now %zu)", before,
                  nn_graph_capacity(g));
    for (k = 0; k < 2; k++) {
        nn_graph_reset(g);
        x = nn_tensor_from(g, x0->data, nn_shape_of(x0));
        y = nn_forward(net, x);
        ref = by_hand(net, x);
        NN_TEST_CHECK(same_bits(y, ref), "call %d: output equals the no-reuse path", k);
        NN_TEST_CHECK(memcmp(x->data, x0->data, x0->numel * sizeof(float)) == 0 &&
                      !(x->flags & 0x8000u), "call %d: the caller's input is untouched", k);
    }
    nn_graph_free(g);
    nn_tensor_free(x0);
    nn_module_free(net);
}

/* A module that keeps its input (a misuse of the reuse rules the library
   must report, not a crash). */
static nn_tensor *kept = NULL;
static nn_tensor *spy_forward(nn_module *m, nn_tensor *x) {
    (void)m;
    kept = x;
    return nn_relu_op(x);
}

static void check_stale(void) {
    nn_graph *g = nn_graph_new();
    nn_module *net = nn_sequential(nn_linear(6, 8), nn_tanh(), nn_module_new("Spy", spy_forward),
                                   nn_linear(8, 3), NULL);
    nn_tensor *x, *y, *old;
    nn_set_error_hook(record, NULL);
    nn_set_grad_enabled(g, 0);
    nn_graph_reset(g);
    x = nn_randn(g, NN_SHAPE(4, 6));
    y = nn_forward(net, x);
    reports = 0;
    NN_TEST_CHECK(y && nn_relu_op(y) && nn_add(x, x) && reports == 0,
                  "the output and the caller's input stay usable");
    NN_TEST_CHECK(kept && !nn_relu_op(kept) && reports == 1 && strstr(last_msg, "released") &&
                  strstr(last_msg, "nn_relu"), "a tensor kept from inside is reported: \"%s\"",
                  last_msg);
    old = y;
    nn_graph_reset(g);
    reports = 0;
    NN_TEST_CHECK(!nn_relu_op(old) && reports == 1 && strstr(last_msg, "generation"),
                  "a tensor from before the reset is stale: \"%s\"", last_msg);
    /* With gradients on nothing is released: the kept input is still good. */
    nn_set_grad_enabled(g, 1);
    nn_graph_reset(g);
    x = nn_randn(g, NN_SHAPE(4, 6));
    y = nn_forward(net, x);
    reports = 0;
    NN_TEST_CHECK(y && nn_relu_op(kept) && reports == 0, "gradients on: a kept tensor stays valid");
    /* A forward hook may keep what it sees: nothing is released meanwhile. */
    nn_set_grad_enabled(g, 0);
    nn_set_forward_hook(noop_hook, NULL, NULL);
    nn_graph_reset(g);
    y = nn_forward(net, nn_randn(g, NN_SHAPE(4, 6)));
    nn_set_forward_hook(NULL, NULL, NULL);
    reports = 0;
    NN_TEST_CHECK(y && nn_relu_op(kept) && reports == 0, "with a hook: a kept tensor stays valid");
    nn_set_error_hook(NULL, NULL);
    nn_module_free(net);
    nn_graph_free(g);
}

/* Nested sequentials, residual blocks (the block holds its input while its
   body, a sequential, runs), a flatten view, dropout's identity in
   evaluation, information dropout (its KL term is kept) and a persistent
   input: all equal to the no-reuse path, bitwise. */
static void check_structures(void) {
    nn_residual_opts ro = {0};
    nn_info_dropout_opts io = {0};
    nn_module *inner, *res, *net;
    nn_graph *g = nn_graph_new();
    nn_tensor *x0 = nn_randn(NULL, NN_SHAPE(5, 2, 3, 2)), *x, *y, *ref, *kl, *kl_ref;
    float ref_copy[5 * 4], kl_copy;
    size_t cap_plain, cap;
    int k;
    io.activation = NN_INFO_RELU;
    nn_seed(7);
    inner = nn_sequential(nn_linear(12, 16), nn_relu(), nn_sequential(nn_linear(16, 16), nn_tanh(),
                          NULL), NULL);
    res = nn_residual(NULL, nn_sequential(nn_linear(16, 16), nn_relu(), nn_linear(16, 16), NULL),
                      NULL, NULL, ro);
    net = nn_sequential(nn_dropout(0.5f), nn_flatten(), inner, res, nn_dropout(0.2f),
                        nn_info_dropout(nn_linear(16, 8), nn_linear(16, 8), io),
                        nn_sequential(nn_linear(8, 4), NULL), NULL);
    nn_train_mode(net, 0);
    nn_set_grad_enabled(g, 1);   /* the reference: gradients on, nothing reused */
    nn_graph_reset(g);
    ref = nn_forward(net, nn_tensor_from(g, x0->data, nn_shape_of(x0)));
    kl_ref = nn_info_dropout_kl(net);
    NN_TEST_CHECK(ref && ref->numel == 20 && kl_ref, "reference forward");
    if (!ref || ref->numel != 20 || !kl_ref) return;
    memcpy(ref_copy, ref->data, sizeof ref_copy);
    kl_copy = kl_ref->data[0];
    cap_plain = nn_graph_capacity(g);
    nn_set_grad_enabled(g, 0);
    for (k = 0; k < 3; k++) {
        nn_graph_reset(g);
        x = nn_tensor_from(g, x0->data, nn_shape_of(x0));
        y = nn_forward(net, x);
        kl = nn_info_dropout_kl(net);
        NN_TEST_CHECK(y && y->numel == 20 && memcmp(y->data, ref_copy, sizeof ref_copy) == 0,
                      "call %d: nested, residual, views: output equals the reference", k);
        NN_TEST_CHECK(kl && kl->data[0] == kl_copy, "call %d: the kept KL term is intact", k);
        NN_TEST_CHECK(same_bits(by_hand(net, x), y), "call %d: equals the children by hand", k);
    }
    /* A persistent input: outputs go to the current graph. */
    nn_graph_reset(g);
    y = nn_forward(net, x0);
    NN_TEST_CHECK(y && y->graph == g && memcmp(y->data, ref_copy, sizeof ref_copy) == 0,
                  "a persistent input gives the same output in the current graph");
    cap = nn_graph_capacity(g);
    NN_TEST_CHECK(cap <= cap_plain + (64u << 10), "the arena did not grow past the gradient-on "
                  "forward's but for the other parity's header block (%zu, then %zu)", cap_plain, cap);
    nn_tensor_free(x0);
    nn_module_free(net);
    nn_graph_free(g);
}

/* Widths that grow and shrink (the next output lands below the current one
   when it fits there, above it otherwise) and sequentials nested deeper
   than the stack of holes (the innermost ones move their outputs down
   instead): bitwise equal to the children by hand, the caller's input
   untouched, and the arena the same size call after call. */
static void check_pingpong(void) {
    nn_graph *g = nn_graph_new();
    nn_module *zig, *deep, *net;
    nn_tensor *x0 = nn_randn(NULL, NN_SHAPE(33, 9)), *x, *y;
    size_t before = 0;
    int d, k;
    nn_seed(3);
    zig = nn_sequential(nn_linear(9, 300), nn_tanh(), nn_linear(300, 20), nn_tanh(),
                        nn_linear(20, 500), nn_relu(), nn_linear(500, 7), NULL);
    deep = nn_sequential(nn_linear(7, 7), NULL);
    for (d = 0; d < 11; d++)
        deep = nn_sequential(nn_linear(7, 40 + d), nn_tanh(), nn_linear(40 + d, 7), deep, NULL);
    net = nn_sequential(zig, deep, nn_tanh(), NULL);
    nn_train_mode(net, 0);
    nn_set_grad_enabled(g, 0);
    for (k = 0; k < 5; k++) {
        if (k == 2) before = nn_graph_capacity(g);
        nn_graph_reset(g);
        x = nn_tensor_from(g, x0->data, nn_shape_of(x0));
        y = nn_forward(net, x);
        NN_TEST_CHECK(same_bits(y, by_hand(net, x)), "call %d: alternating widths, nested 12 deep: "
                      "equals the children by hand", k);
        NN_TEST_CHECK(memcmp(x->data, x0->data, x0->numel * sizeof(float)) == 0,
                      "call %d: the caller's input is untouched", k);
    }
    NN_TEST_CHECK(nn_graph_capacity(g) == before, "the arena stays at %zu bytes (now %zu)", before,
                  nn_graph_capacity(g));
    nn_tensor_free(x0);
    nn_module_free(net);
    nn_graph_free(g);
}

int main(void) {
    nn_seed(1);
    check_cnn();
    check_stale();
    check_structures();
    check_pingpong();
    return nn_test_summary("test_nogradmem");
}
