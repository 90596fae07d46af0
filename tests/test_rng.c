/* Random generators and threads: nn_rng objects, the global stream kept as it
   was, state save/restore, per-thread generators (two threads training with
   dropout match the same runs alone), the loader's own generator, misuse
   messages, and every parallel region taking its team size from
   nn_set_threads, and the contention control (one thread when the team is
   slower). */
#ifndef NN_TEST_LINKED /* tests/run.sh links the shared implementation */
#include "impl.c"               /* with its test seams (tests/seams.h) */
#endif
#include "seams.h"
#include "nn.h"
#include "harness.h"
#include <string.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The thread teams' private state, functions and constants, through the
   accessors of tests/seams.h. */
#define nn__team_max (*nn_test__team_max())
#define nn__solo (*nn_test__solo())
#define nn__probing (*nn_test__probing())
#define nn__team_warm (*nn_test__team_warm())
#define nn__eff_strikes (*nn_test__eff_strikes())
#define nn__eff_cpu (*nn_test__eff_cpu())
#define nn__eff_span (*nn_test__eff_span())
#define nn__eff_wall (*nn_test__eff_wall())
#define nn__eff_gap (*nn_test__eff_gap())
#define nn__probe_at (*nn_test__probe_at())
#define nn__probe_wait (*nn_test__probe_wait())
#define nn__team nn_test__team
#define nn__run nn_test__run
#define nn__ew_threads nn_test__ew_threads
#define nn__team_pick nn_test__team_pick
#define nn__team_note nn_test__team_note
#define nn__team_begin nn_test__team_begin
#undef NN__EFF_WINDOW
#undef NN__EFF_GAP
#undef NN__PROBE
#undef NN__EFF_WARM
#define NN__EFF_WINDOW nn_test__eff_window
#define NN__EFF_GAP nn_test__eff_gap_min
#define NN__PROBE nn_test__probe
#define NN__EFF_WARM nn_test__eff_warm

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The global stream is the one of earlier versions (values from commit
   48d5c16), and nn_rng_new(s) gives the stream nn_seed(s) gives. */
static void test_global_stream_unchanged(void) {
    static const uint32_t uni[3] = {0x3dcbe738u, 0x3f5a747au, 0x3f4cc237u};
    static const uint32_t below[3] = {750u, 579u, 253u};
    float norm[3];
    int i, ok = 1;
    nn_rng *r;
    nn_seed(2024);
    for (i = 0; i < 3; i++) ok &= bits(nn_rand_uniform()) == uni[i];
    for (i = 0; i < 3; i++) norm[i] = nn_rand_normal();
    for (i = 0; i < 3; i++) ok &= nn_rand_below(1000) == below[i];
    NN_TEST_CHECK(ok, "nn_seed(2024) draws the same uniforms and integers as before");
    NN_TEST_CHECK(bits(norm[0]) == 0x3f7c5e88u, "first normal after the uniforms unchanged (%08x)",
                  (unsigned)bits(norm[0]));
    r = nn_rng_new(2024);
    ok = r != NULL;
    for (i = 0; r && i < 3; i++) ok &= bits(nn_rng_uniform(r)) == uni[i];
    for (i = 0; r && i < 3; i++) ok &= bits(nn_rng_normal(r)) == bits(norm[i]);
    for (i = 0; r && i < 3; i++) ok &= nn_rng_below(r, 1000) == below[i];
    NN_TEST_CHECK(ok, "nn_rng_new(2024) draws the stream nn_seed(2024) gives");
    nn_rng_seed(r, 2024);
    NN_TEST_CHECK(bits(nn_rng_uniform(r)) == uni[0], "nn_rng_seed restarts the stream");
    nn_rng_free(r);
    /* nn_default_rng is the generator nn_seed seeds and nn_rand_* draw from */
    nn_seed(7);
    {
        float a = nn_rand_uniform(), b;
        nn_rng_seed(nn_default_rng(), 7);
        b = nn_rng_uniform(nn_default_rng());
        NN_TEST_CHECK(bits(a) == bits(b), "nn_default_rng is nn_seed's generator");
    }
}

/* Draw a mix of everything; the sequence's bits go to out. */
static void draw_mix(nn_rng *r, uint32_t *out, int n) {
    int i;
    for (i = 0; i < n; i++) {
        switch (i % 4) {
        case 0: out[i] = bits(nn_rng_uniform(r)); break;
        case 1: out[i] = bits(nn_rng_normal(r)); break;
        case 2: out[i] = nn_rng_below(r, 1000u + (uint32_t)i); break;
        default: out[i] = (uint32_t)nn_rng_bernoulli(r, 0.3f); break;
        }
    }
}

static void test_state_roundtrip(void) {
    uint32_t a[200], b[200], c[200];
    nn_rng_state st, st2;
    nn_rng *r = nn_rng_new(99), *r2 = nn_rng_new(1);
    int i;
    /* an odd number of normals first: mid-"pair" for a Box-Muller that caches */
    for (i = 0; i < 3; i++) (void)nn_rng_normal(r);
    nn_rng_get_state(r, &st);
    draw_mix(r, a, 200);
    nn_rng_set_state(r2, &st);
    draw_mix(r2, b, 200);
    NN_TEST_CHECK(memcmp(a, b, sizeof a) == 0, "a saved state continues bitwise in another generator");
    nn_rng_set_state(r, &st);
    draw_mix(r, c, 200);
    NN_TEST_CHECK(memcmp(a, c, sizeof a) == 0, "and in the same generator, rewound");
    /* a state saved after a single normal (mid-pair) */
    (void)nn_rng_normal(r);
    nn_rng_get_state(r, &st);
    for (i = 0; i < 5; i++) a[i] = bits(nn_rng_normal(r));
    nn_rng_set_state(r2, &st);
    for (i = 0; i < 5; i++) b[i] = bits(nn_rng_normal(r2));
    NN_TEST_CHECK(memcmp(a, b, 5 * sizeof a[0]) == 0, "normals resume bitwise after an odd count");
    nn_rng_get_state(r2, &st2);
    nn_rng_get_state(r, &st);
    NN_TEST_CHECK(memcmp(&st, &st2, sizeof st) == 0 && st.words[2] == 0 && st.words[3] == 0,
                  "equal streams have equal states, reserved words zero");
    /* the global generator's state too */
    nn_seed(5);
    (void)nn_rand_normal();
    nn_rng_get_state(nn_default_rng(), &st);
    for (i = 0; i < 50; i++) a[i] = bits(nn_rand_normal());
    nn_rng_set_state(nn_default_rng(), &st);
    for (i = 0; i < 50; i++) b[i] = bits(nn_rand_normal());
    NN_TEST_CHECK(memcmp(a, b, 50 * sizeof a[0]) == 0, "the global generator's state round-trips");
    nn_rng_free(r);
    nn_rng_free(r2);
}

static void test_thread_override(void) {
    nn_rng *r = nn_rng_new(3), *prev;
    float g1, g2, o1, o2;
    nn_tensor *t;
    /* reference: the global stream from seed 1, and r's stream from 3 */
    nn_seed(1);
    g1 = nn_rand_uniform();
    g2 = nn_rand_uniform();
    nn_seed(3);
    o1 = nn_rand_uniform();
    o2 = nn_rand_uniform();

    nn_seed(1);
    prev = nn_set_thread_rng(r);
    NN_TEST_CHECK(prev == NULL, "no override at first");
    NN_TEST_CHECK(bits(nn_rand_uniform()) == bits(o1), "nn_rand_uniform draws from the thread's generator");
    prev = nn_set_thread_rng(NULL);
    NN_TEST_CHECK(prev == r, "nn_set_thread_rng returns the previous override");
    NN_TEST_CHECK(bits(nn_rand_uniform()) == bits(g1), "the global stream was not touched meanwhile");
    nn_set_thread_rng(r);
    NN_TEST_CHECK(bits(nn_rand_uniform()) == bits(o2), "the override resumes where it was");
    nn_seed(3); /* seeds the override, not the global */
    t = nn_randn(NULL, NN_SHAPE(4));
    nn_set_thread_rng(NULL);
    NN_TEST_CHECK(bits(nn_rand_uniform()) == bits(g2), "nn_seed and nn_randn under an override leave the global");
    {
        nn_tensor *u;
        nn_seed(3);
        u = nn_randn(NULL, NN_SHAPE(4));
        NN_TEST_CHECK(t && u && memcmp(nn_data(t), nn_data(u), 4 * sizeof(float)) == 0,
                      "nn_randn under an override draws its stream");
        nn_tensor_free(u);
    }
    nn_tensor_free(t);
    /* freeing the thread's override clears it */
    nn_set_thread_rng(r);
    nn_rng_free(r);
    NN_TEST_CHECK(nn_set_thread_rng(NULL) == NULL, "nn_rng_free clears this thread's override");
}

/* The loader's own generator: its order does not depend on other draws. */
static void loader_order(nn_rng *r, int disturb, int *labels, int n) {
    nn_dataset ds;
    nn_loader_opts lo;
    nn_loader *ld;
    nn_graph *g = nn_graph_new();
    nn_tensor *x;
    const int *y;
    int k = 0, e, i, b;
    memset(&lo, 0, sizeof lo);
    nn_dataset_synthetic(50, 9, &ds);
    lo.batch_size = 16;
    lo.shuffle = 1;
    lo.rng = r;
    ld = nn_loader_new(&ds, lo);
    for (e = 0; e < 2; e++) {
        for (i = 0; i < disturb; i++) (void)nn_rand_uniform();
        while (nn_graph_reset(g), (b = nn_loader_next(ld, g, &x, &y)) > 0)
            for (i = 0; i < b && k < n; i++) labels[k++] = y[i] * 1000 + (int)(nn_data(x)[200 + i * 784] * 255.0f);
    }
    nn_loader_free(ld);
    nn_dataset_free(&ds);
    nn_graph_free(g);
}

static void test_loader_rng(void) {
    int a[100], b[100], c[100];
    nn_rng *r = nn_rng_new(17);
    nn_seed(1);
    loader_order(r, 0, a, 100);
    nn_rng_seed(r, 17);
    nn_seed(2);
    loader_order(r, 5, b, 100);
    NN_TEST_CHECK(memcmp(a, b, sizeof a) == 0, "a loader with its own rng shuffles the same whatever else draws");
    /* without one it follows the current generator */
    nn_seed(17);
    loader_order(NULL, 0, c, 100);
    NN_TEST_CHECK(memcmp(a, c, sizeof a) == 0, "rng NULL: the current generator (same seed, same order)");
    nn_seed(17);
    loader_order(NULL, 5, c, 100);
    NN_TEST_CHECK(memcmp(a, c, sizeof a) != 0, "rng NULL: other draws change the order");
    nn_rng_free(r);
}

/* A small model with dropout, initialised, fed (nn_randn) and trained with
   draws from the current generator; its parameters go to out. */
#define TRAIN_FLOATS (96 * 160 + 160 + 160 * 10 + 10)
static void train_dropout(uint64_t seed, float *out) {
    nn_graph *g = nn_graph_new();
    nn_module *net;
    nn_optim *opt;
    nn_sgd_opts so;
    nn_ce_opts ce;
    nn_param *ps;
    int labels[64], s, i, np;
    size_t n = 0;
    memset(&so, 0, sizeof so);
    memset(&ce, 0, sizeof ce);
    nn_seed(seed);
    net = nn_sequential(nn_linear(96, 160), nn_relu(), nn_dropout(0.3f), nn_linear(160, 10), NULL);
    so.lr = 0.05f;
    so.momentum = 0.9f;
    opt = nn_sgd(net, so);
    for (i = 0; i < 64; i++) labels[i] = i % 10;
    for (s = 0; s < 6; s++) {
        nn_tensor *x;
        nn_graph_reset(g);
        x = nn_randn(g, NN_SHAPE(64, 96));
        nn_zero_grad(opt);
        nn_backward(nn_cross_entropy(nn_forward(net, x), labels, ce));
        nn_step(opt);
    }
    ps = nn_parameters(net, &np);
    for (i = 0; i < np; i++) {
        memcpy(out + n, ps[i].tensor->data, ps[i].tensor->numel * sizeof(float));
        n += ps[i].tensor->numel;
    }
    nn_graph_free(g);
    nn_optim_free(opt);
    nn_module_free(net);
}

/* One training on its own generator, installed for this thread only. */
static void train_on(nn_rng *r, uint64_t seed, float *out) {
    nn_rng *prev = nn_set_thread_rng(r);
    train_dropout(seed, out);
    nn_set_thread_rng(prev);
}

static void test_two_threads(void) {
    static float alone[2][TRAIN_FLOATS], both[2][TRAIN_FLOATS], global[TRAIN_FLOATS];
    nn_rng *r0 = nn_rng_new(0), *r1 = nn_rng_new(0);
    int team = 1;
    train_on(r0, 21, alone[0]);
    train_on(r1, 22, alone[1]);
    nn_seed(1234);
#ifdef _OPENMP
#pragma omp parallel sections num_threads(2)
    {
#pragma omp section
        {
            if (omp_get_num_threads() > team) team = omp_get_num_threads();
            train_on(r0, 21, both[0]);
        }
#pragma omp section
        train_on(r1, 22, both[1]);
    }
#else
    train_on(r0, 21, both[0]);
    train_on(r1, 22, both[1]);
#endif
    NN_TEST_CHECK(memcmp(alone[0], both[0], sizeof alone[0]) == 0 &&
                      memcmp(alone[1], both[1], sizeof alone[1]) == 0,
                  "two trainings with dropout, each on its own generator, %s match the runs alone",
                  team > 1 ? "in two threads at once" : "one after the other");
    NN_TEST_CHECK(memcmp(alone[0], alone[1], sizeof alone[0]) != 0, "different seeds train differently");
    /* the global generator was left alone by both */
    {
        float a = nn_rand_uniform();
        nn_seed(1234);
        NN_TEST_CHECK(bits(a) == bits(nn_rand_uniform()), "the trainings did not draw from the global");
    }
    /* the same training on the global generator gives the same result */
    train_dropout(21, global);
    NN_TEST_CHECK(memcmp(alone[0], global, sizeof global) == 0, "a thread's generator gives what the global gives");
    nn_rng_free(r0);
    nn_rng_free(r1);
}

static void test_misuse(void) {
    nn_rng_state st;
    nn_rng *r = nn_rng_new(1);
    float f;
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_test_msgs = 0;
    f = nn_rng_uniform(NULL);
    NN_TEST_CHECK(f == 0.0f && nn_test_msgs == 1 && strcmp(nn_test_msg, "nn_rng_uniform: NULL generator") == 0,
                  "NULL generator reported (%s)", nn_test_msg);
    nn_rng_get_state(r, &st);
    st.words[1] = 2;
    nn_rng_set_state(r, &st);
    NN_TEST_CHECK(nn_test_msgs == 2 && strstr(nn_test_msg, "nn_rng_set_state: not a saved state") != NULL &&
                      strstr(nn_test_msg, "0x0000000000000002") != NULL,
                  "an even increment is refused (%s)", nn_test_msg);
    nn_rng_free(nn_default_rng());
    NN_TEST_CHECK(nn_test_msgs == 3 && strcmp(nn_test_msg, "nn_rng_free: the default generator belongs to the library") == 0,
                  "freeing the default generator is refused (%s)", nn_test_msg);
    nn_rng_free(NULL);
    NN_TEST_CHECK(nn_test_msgs == 3, "nn_rng_free(NULL) is ignored");
    nn_set_error_hook(NULL, NULL);
    nn_rng_free(r);
}

/* nn_set_threads is the one thread-count setting: after nn_set_threads(1),
   with the caller's OpenMP setting at 2, every region inside a conv net's
   and an MLP's forward and backward asks for one thread (nn__team_max: the
   largest team asked for), and with nn_set_threads(2) for two. */
static int layers_team(int threads) {
    nn_graph *g = nn_graph_new();
    nn_module *cnn, *mlp;
    nn_tensor *x, *loss;
    nn_ce_opts ce;
    int labels[256], i, was;
    nn_conv_opts co;
    nn_pool_opts po;
    memset(&ce, 0, sizeof ce);
    memset(&co, 0, sizeof co);
    memset(&po, 0, sizeof po);
    co.kernel = 3;
    co.padding = 1;
    po.kernel = 2;
    for (i = 0; i < 256; i++) labels[i] = i % 10;
    nn_seed(3);
    cnn = nn_sequential(nn_conv2d(3, 16, co), nn_batchnorm2d(16), nn_relu(), nn_maxpool2d(po), nn_conv2d(16, 16, co),
                        nn_avgpool2d(po), nn_flatten(), nn_linear(16 * 8 * 8, 10), NULL);
    mlp = nn_sequential(nn_linear(512, 256), nn_relu(), nn_linear(256, 10), NULL);
    nn_set_threads(threads);
    was = nn_set_adaptive_threads(0); /* the team planned, whatever the machine's load */
#ifdef _OPENMP
    omp_set_num_threads(2); /* the caller's own OpenMP setting, ignored */
#endif
    nn__team_max = 0;
    x = nn_randn(g, NN_SHAPE(32, 3, 32, 32));
    loss = nn_cross_entropy(nn_forward(cnn, x), labels, ce);
    nn_backward(loss);
    x = nn_randn(g, NN_SHAPE(256, 512));
    loss = nn_cross_entropy(nn_forward(mlp, x), labels, ce);
    (void)loss;
    nn_set_adaptive_threads(was); /* back to the default */
    nn_set_threads(0);
    nn_graph_free(g);
    nn_module_free(cnn);
    nn_module_free(mlp);
    return nn__team_max;
}

/* Every parallel region of nn.h names its team size (a source audit). */
static void test_regions_name_team(void) {
    FILE *f = fopen("nn.h", "r");
    char line[1024];
    int regions = 0, bare = 0, lineno = 0, first = 0;
    if (!f) {
        NN_TEST_CHECK(0, "nn.h readable from the working directory (run from the repository root)");
        return;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strstr(line, "NN__OMP(parallel")) {
            regions++;
            if (!strstr(line, "num_threads(")) {
                bare++;
                if (!first) first = lineno;
            }
        }
    }
    fclose(f);
    NN_TEST_CHECK(regions > 20 && bare == 0, "%d of %d parallel regions have no num_threads (first at line %d)",
                  bare, regions, first);
}

static void test_thread_setting(void) {
    int one = layers_team(1), two = layers_team(2);
    NN_TEST_CHECK(one == 1, "nn_set_threads(1): the largest team asked for in layers is %d", one);
#ifdef _OPENMP
    NN_TEST_CHECK(two == 2, "nn_set_threads(2): the largest team asked for in layers is %d", two);
#else
    NN_TEST_CHECK(two == 1, "without OpenMP every region has one thread (%d)", two);
#endif
    test_regions_name_team();
}

/* Contention control: when the team's products get clearly less CPU time
   than wall time times the team (another process shares a core), regions
   run alone; the team is tried again for a window later (waiting longer
   after each lost try).  Driven here with made-up timings. */
static void test_contention_policy(void) {
#ifdef _OPENMP
    /* made-up times ahead of the clock: nn__run reads the real one and must
       not find the wait over */
    double now = omp_get_wtime() + 1000.0, w = NN__EFF_WINDOW;
    NN_TEST_CHECK(nn_set_adaptive_threads(1) == 1, "adaptive teams are on by default");
    nn__solo = nn__probing = nn__eff_strikes = 0;
    nn__team_warm = 0.0;
    nn__eff_cpu = nn__eff_span = nn__eff_wall = 0.0;
    nn__probe_at = nn__probe_wait = 0.0;
    /* a fresh rate alone that no window below beats (their work is unknown):
       every stint alone lasts NN__PROBE */
    *nn_test__alone_rate() = 1.0;
    *nn_test__alone_at() = now;
    nn_set_threads(2);
    NN_TEST_CHECK(nn__team_pick(now) == 1, "the team runs at first");
    /* the first NN__EFF_WARM seconds of team products are not measured */
    nn__team_note(0.0, w, 2, now - NN__EFF_WARM);
    nn__team_note(0.0, w, 2, now - 0.5 * NN__EFF_WARM);
    nn__team_note(0.0, w, 2, now - 0.1 * NN__EFF_WARM);
    NN_TEST_CHECK(nn__team_warm == now - NN__EFF_WARM && nn__eff_wall == 0.0 && nn__eff_strikes == 0 &&
                      nn__solo == 0, "lost windows in the warm-up are no verdict");
    nn__team_warm = 1.0; /* long warm (the warm-up began 1 s after boot) */
    nn__team_note(2.0 * 0.5 * w, 0.5 * w, 2, now); /* half a window, full share */
    nn__team_note(2.0 * 0.35 * w, 0.5 * w, 2, now); /* then 0.7: the window's share is 0.85 */
    NN_TEST_CHECK(nn__solo == 0 && nn__run(2) == 2, "a share of 0.85 keeps the team");
    nn__team_note(2.0 * 0.3 * w, 0.5 * w, 2, now);
    NN_TEST_CHECK(nn__solo == 0, "no verdict before the window is full");
    nn__team_note(2.0 * 0.35 * w, 0.5 * w, 2, now); /* share 0.65: another process has a core */
    NN_TEST_CHECK(nn__solo == 0 && nn__eff_strikes == 1, "one lost window is not a verdict");
    nn__team_note(2.0 * 0.97 * w, w, 2, now); /* a full share clears the strike */
    NN_TEST_CHECK(nn__solo == 0 && nn__eff_strikes == 0, "a won window clears it");
    /* unmeasured products (cpu < 0) fill the window but not the share: one
       measured product at 0.6 and unmeasured ones make a lost window */
    nn__team_note(2.0 * 0.6 * 0.1 * w, 0.1 * w, 2, now);
    nn__team_note(-1.0, 0.95 * w, 2, now);
    NN_TEST_CHECK(nn__eff_wall == 0.0 && nn__eff_strikes == 1 && nn__eff_gap == 0.95 * w,
                  "an unmeasured product ends the window, the measured one decides");
    {
        int on;
        nn__eff_gap = 0.0;
        NN_TEST_CHECK(nn__team_begin(2, &on) == 2 && !on,
                      "right after a measured product the next is not measured");
        nn__eff_gap = NN__EFF_GAP;
        NN_TEST_CHECK(nn__team_begin(2, &on) == 2 && on, "NN__EFF_GAP seconds later one is");
    }
    nn__team_note(2.0 * 0.97 * w, w, 2, now);
    NN_TEST_CHECK(nn__solo == 0 && nn__eff_strikes == 0, "and a won window clears the strike");
    nn__team_note(2.0 * 0.6 * w, w, 2, now);
    NN_TEST_CHECK(nn__solo == 0, "a first lost window again keeps the team");
    nn__team_note(2.0 * 0.6 * w, w, 2, now); /* the second in a row */
    NN_TEST_CHECK(nn__solo == 1 && nn__run(2) == 1 && nn__ew_threads(1e7) == 1 &&
                      nn__probe_wait == NN__PROBE,
                  "contended: regions run on one thread (wait %g)", nn__probe_wait);
    NN_TEST_CHECK(nn__team_pick(now + 0.5 * NN__PROBE) == 0, "no try of the team before NN__PROBE seconds");
    NN_TEST_CHECK(nn__team_pick(now + 1.5 * NN__PROBE) == 1 && nn__probing && nn__run(2) == 2,
                  "after NN__PROBE the team is tried for a window");
    nn__team_note(2.0 * 0.6 * w, w, 2, now + 1.5 * NN__PROBE); /* still contended */
    NN_TEST_CHECK(nn__solo == 1 && nn__probe_wait == 2.0 * NN__PROBE && !nn__probing,
                  "a lost try doubles the wait (%g)", nn__probe_wait);
    NN_TEST_CHECK(nn__team_pick(now + 3.0 * NN__PROBE) == 0, "and the next try waits for it");
    NN_TEST_CHECK(nn__team_pick(now + 4.0 * NN__PROBE) == 1, "then tries");
    nn__team_note(2.0 * 0.97 * w, w, 2, now + 4.0 * NN__PROBE); /* the other core is free again */
    NN_TEST_CHECK(nn__solo == 0 && nn__run(2) == 2 && nn__probe_wait == 0.0,
                  "a won try keeps the team");
    /* A team that loses share but still does clearly more work per second
       than the products did alone (a host taking slices from both vCPUs)
       keeps its cores; one that does not goes alone as before. */
    *nn_test__alone_rate() = 0.0; /* (earlier tests' products may have run alone) */
    nn__team_note(2.0 * 0.6 * w, w, 2, now + 5.0 * NN__PROBE); /* lost, no rate alone yet */
    nn__team_note(2.0 * 0.6 * w, w, 2, now + 5.0 * NN__PROBE);
    NN_TEST_CHECK(nn__solo == 1 && *nn_test__alone_rate() == 0.0 && nn__probe_wait == NN__PROBE &&
                      nn__probe_at == now + 5.0 * NN__PROBE + nn_test__alone_try,
                  "without a rate alone the share decides, and the stint alone is short");
    nn_test__alone_note(1e6, 0.5 * w, now + 5.1 * NN__PROBE);
    NN_TEST_CHECK(*nn_test__alone_rate() == 0.0, "no rate before a window alone");
    nn_test__alone_note(1e6, 0.5 * w, now + 5.2 * NN__PROBE); /* 2e6 multiply-adds per window */
    NN_TEST_CHECK(*nn_test__alone_rate() == 2e6 / w && *nn_test__alone_at() == now + 5.2 * NN__PROBE,
                  "a window alone gives the rate alone (%g)", *nn_test__alone_rate());
    NN_TEST_CHECK(nn__team_pick(now + 6.5 * NN__PROBE) == 1 && nn__probing, "the team is tried");
    nn_test__team_note_work(2.0 * 0.6 * w, w, 2, 1.5 * 2e6, now + 6.5 * NN__PROBE);
    NN_TEST_CHECK(nn__solo == 0 && nn__probe_wait == 0.0 && !nn__probing,
                  "a try that lost share but ran 1.5x the rate alone keeps the team");
    nn_test__team_note_work(2.0 * 0.6 * w, w, 2, 1.5 * 2e6, now + 6.6 * NN__PROBE);
    nn_test__team_note_work(2.0 * 0.6 * w, w, 2, 1.5 * 2e6, now + 6.7 * NN__PROBE);
    NN_TEST_CHECK(nn__solo == 0 && nn__eff_strikes == 0, "and so do its next windows");
    nn_test__team_note_work(2.0 * 0.9 * w, w, 2, 0.8 * 2e6, now + 6.75 * NN__PROBE);
    NN_TEST_CHECK(nn__solo == 0 && nn__eff_strikes == 1,
                  "a window slower than alone, with a share of 0.9, is a lost window");
    nn_test__team_note_work(2.0 * w, w, 2, 0.8 * 2e6, now + 6.76 * NN__PROBE);
    NN_TEST_CHECK(nn__eff_strikes == 0, "but not with the whole share (the products' mix)");
    nn_test__team_note_work(2.0 * 0.6 * 0.5 * w, 0.5 * w, 2, 0.5 * 1.5 * 2e6, now + 6.8 * NN__PROBE);
    nn__team_note(2.0 * 0.6 * 0.5 * w, 0.5 * w, 2, now + 6.8 * NN__PROBE);
    NN_TEST_CHECK(nn__eff_strikes == 1, "a product of unknown work in the window: the share decides");
    nn_test__team_note_work(2.0 * 0.6 * w, w, 2, 1.05 * 2e6, now + 6.9 * NN__PROBE);
    NN_TEST_CHECK(nn__solo == 1, "a team not NN__TEAM_GAIN times faster than alone goes alone");
    nn__solo = 0;
    nn__eff_strikes = 0;
    nn_test__team_note_work(2.0 * 0.6 * w, w, 2, 1.5 * 2e6, now + 6.9 * NN__PROBE + nn_test__alone_ttl);
    nn_test__team_note_work(2.0 * 0.6 * w, w, 2, 1.5 * 2e6, now + 6.9 * NN__PROBE + nn_test__alone_ttl);
    NN_TEST_CHECK(nn__solo == 1, "a rate alone older than nn_test__alone_ttl is no bar: the share decides");
    nn__probe_at = nn__probe_wait = 0.0;
    *nn_test__alone_rate() = 0.0;
    nn__solo = 1;
    NN_TEST_CHECK(nn_set_adaptive_threads(0) == 1 && nn__solo == 0 && nn__run(2) == 2 &&
                      nn__team_pick(now) == 1,
                  "nn_set_adaptive_threads(0) keeps every team");
    nn__team_note(0.0, 10.0 * w, 2, now);
    NN_TEST_CHECK(nn__solo == 0, "and measures nothing");
    NN_TEST_CHECK(nn_set_adaptive_threads(1) == 0, "back on");
    nn__eff_cpu = nn__eff_span = nn__eff_wall = 0.0;
    nn__probe_at = nn__probe_wait = 0.0;
    nn_set_threads(0);
#else
    NN_TEST_CHECK(nn__run(2) == 2 && nn__team(1) == 1, "without OpenMP one thread, no policy");
#endif
}

int main(void) {
    test_global_stream_unchanged();
    test_state_roundtrip();
    test_thread_override();
    test_loader_rng();
    test_two_threads();
    test_misuse();
    test_thread_setting();
    test_contention_policy();
    return nn_test_summary("test_rng");
}
