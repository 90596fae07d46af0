/* Checkpoints (>>io): a run stopped at step k and resumed from its
   checkpoint in a rebuilt, differently seeded process state ends with
   bitwise the same weights as the uninterrupted run, for every optimizer,
   three schedules, mid-epoch and at an epoch boundary, at 1 and 2 threads,
   with dropout (the generator matters), batch norm (buffers) and a
   shuffling loader.  Then the failures: another optimizer, other
   parameters, truncated and corrupt files, each leaving everything as it
   was; misuse through the error hook; user pairs; nn_optim_save/load. */
#ifndef NN_TEST_LINKED /* tests/run.sh links the shared implementation */
#include "impl.c"               /* with its test seams (tests/seams.h) */
#endif
#include "seams.h"
#include "nn.h"
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define CK_PID ((long)getpid())
#else
#define CK_PID 0L
#endif

static char path_a[256], path_b[256];

#define NS 45        /* samples: 6 batches of 8 then 5 (no drop_last) */
#define NF 5
#define NC 3
#define EPOCHS 3
#define PER_EPOCH 6
#define TOTAL (EPOCHS * PER_EPOCH)
static nn_dataset g_ds;

enum { OPT_SGD, OPT_ADAGRAD, OPT_RMSPROP, OPT_ADADELTA, OPT_ADAM, OPT_ADAMW, OPT_ADAMAX, OPT_NADAM,
       OPT_RADAM, OPT_LARS, OPT_LAMB, OPT_LOOKAHEAD, OPT_RANGER, NOPT };
static const char *const opt_names[NOPT] = {"SGD nesterov", "Adagrad", "RMSprop centered+momentum",
                                            "Adadelta", "Adam", "AdamW amsgrad", "Adamax", "NAdam", "RAdam",
                                            "LARS", "LAMB", "Lookahead(SGD)", "Ranger"};
enum { SCH_ONECYCLE, SCH_SGDR, SCH_PLATEAU, NSCH };
static const char *const sch_names[NSCH] = {"onecycle", "warm restarts", "plateau"};

/* Everything a run is made of. */
typedef struct run {
    nn_module *net;
    nn_optim *opt;
    nn_sched *sched;
    nn_loader *ld;
    nn_rng *ld_rng;      /* the loader's own generator, or NULL (the global one) */
    nn_graph *g;
} run;

static nn_optim *make_opt(int kind, nn_module *m) {
    switch (kind) {
    case OPT_SGD: { nn_sgd_opts o; memset(&o, 0, sizeof o); o.lr = 0.05f; o.momentum = 0.9f; o.nesterov = 1;
        o.weight_decay = 1e-3f; return nn_sgd(m, o); }
    case OPT_ADAGRAD: { nn_adagrad_opts o; memset(&o, 0, sizeof o); o.lr = 0.05f; o.lr_decay = 0.01f;
        return nn_adagrad(m, o); }
    case OPT_RMSPROP: { nn_rmsprop_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; o.centered = 1;
        o.momentum = 0.5f; return nn_rmsprop(m, o); }
    case OPT_ADADELTA: { nn_adadelta_opts o; memset(&o, 0, sizeof o); return nn_adadelta(m, o); }
    case OPT_ADAM: { nn_adam_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; return nn_adam(m, o); }
    case OPT_ADAMW: { nn_adamw_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; o.amsgrad = 1;
        return nn_adamw(m, o); }
    case OPT_ADAMAX: { nn_adamax_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; return nn_adamax(m, o); }
    case OPT_NADAM: { nn_nadam_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; return nn_nadam(m, o); }
    case OPT_RADAM: { nn_radam_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; return nn_radam(m, o); }
    case OPT_LARS: { nn_lars_opts o; memset(&o, 0, sizeof o); o.lr = 0.5f; o.weight_decay = 1e-4f;
        return nn_lars(m, o); }
    case OPT_LAMB: { nn_lamb_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; o.weight_decay = 0.01f;
        return nn_lamb(m, o); }
    case OPT_LOOKAHEAD: { nn_sgd_opts o; nn_lookahead_opts la; nn_optim *in;
        memset(&o, 0, sizeof o); memset(&la, 0, sizeof la); o.lr = 0.05f; o.momentum = 0.9f; la.k = 4;
        in = nn_sgd(m, o); return in ? nn_lookahead(in, la) : NULL; }
    default: { nn_ranger_opts o; memset(&o, 0, sizeof o); o.lr = 0.01f; o.k = 4; return nn_ranger(m, o); }
    }
}

static nn_sched *make_sched(int kind, nn_optim *o) {
    if (kind == SCH_ONECYCLE) {
        nn_onecycle_opts s;
        memset(&s, 0, sizeof s);
        s.max_lr = nn_get_lr(o) * 2.0f;
        s.total_steps = TOTAL + 2;
        return nn_onecycle(o, s);
    }
    if (kind == SCH_SGDR) {
        nn_warm_restarts_opts s;
        memset(&s, 0, sizeof s);
        s.T_0 = 4;
        s.T_mult = 2;
        return nn_warm_restarts(o, s);
    }
    {
        nn_reduce_on_plateau_opts s;
        memset(&s, 0, sizeof s);
        s.patience = 1;
        s.factor = 0.5f;
        return nn_reduce_on_plateau(o, s);
    }
}

/* Build a run from scratch; seed sets the weights and the global generator. */
static void build(run *r, int opt, int sch, int own_rng, uint64_t seed) {
    nn_loader_opts lo;
    nn_group_opts go;
    memset(r, 0, sizeof *r);
    nn_seed(seed);
    r->net = nn_sequential(nn_linear(NF, 12), nn_batchnorm1d(12), nn_relu(), nn_dropout(0.3f),
                           nn_linear(12, NC), NULL);
    r->opt = make_opt(opt, r->net);
    memset(&go, 0, sizeof go);
    go.lr_scale = 0.5f;   /* a group: per-parameter state */
    nn_optim_group(r->opt, "4.", go);
    r->sched = make_sched(sch, r->opt);
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 8;
    lo.shuffle = 1;
    if (own_rng) r->ld_rng = nn_rng_new(seed * 3 + 1);
    lo.rng = r->ld_rng;
    r->ld = nn_loader_new(&g_ds, lo);
    r->g = nn_graph_new();
}

static void destroy(run *r) {
    nn_graph_free(r->g);
    nn_loader_free(r->ld);
    nn_sched_free(r->sched);
    nn_optim_free(r->opt);
    nn_module_free(r->net);
    nn_rng_free(r->ld_rng);
}

static nn_checkpoint ck_of(run *r, long epoch, long step) {
    nn_checkpoint c;
    memset(&c, 0, sizeof c);
    c.module = r->net;
    c.optim = r->opt;
    c.sched = r->sched;
    c.loader = r->ld;
    c.epoch = epoch;
    c.step = step;
    return c;
}

/* Train from (epoch, step) to the end.  stop_step > 0: save a checkpoint to
   path_a after that step and return; stop_epoch > 0: save after that many
   epochs (at the boundary, the loader having ended its epoch). */
static int train(run *r, long epoch, long step, int sch, long stop_step, long stop_epoch) {
    for (; epoch < EPOCHS; epoch++) {
        nn_tensor *x;
        const int *y;
        int b;
        for (;;) {
            nn_tensor *loss;
            nn_ce_opts ce;
            nn_graph_reset(r->g);
            b = nn_loader_next(r->ld, r->g, &x, &y);
            if (b <= 0) break;
            memset(&ce, 0, sizeof ce);
            loss = nn_cross_entropy(nn_forward(r->net, x), y, ce);
            nn_zero_grad(r->opt);
            nn_backward(loss);
            nn_step(r->opt);
            if (sch == SCH_PLATEAU) nn_sched_step_metric(r->sched, nn_item(loss));
            else nn_sched_step(r->sched);
            step++;
            if (step == stop_step) {
                nn_checkpoint c = ck_of(r, epoch, step);
                return nn_checkpoint_save(path_a, &c) == NN_OK ? 1 : -1;
            }
        }
        if (b < 0) return -1;
        if (epoch + 1 == stop_epoch) {
            nn_checkpoint c = ck_of(r, epoch + 1, step);
            return nn_checkpoint_save(path_a, &c) == NN_OK ? 1 : -1;
        }
    }
    return step == TOTAL ? 0 : -1;
}

/* The module's parameters and buffers, bytes. */
static size_t module_bytes(nn_module *m, unsigned char *out, size_t cap) {
    int n, i, pass;
    size_t at = 0;
    for (pass = 0; pass < 2; pass++) {
        nn_param *p = pass ? nn_buffers(m, &n) : nn_parameters(m, &n);
        for (i = 0; i < n; i++) {
            size_t k = p[i].tensor->numel * ((p[i].tensor->flags & NN_TENSOR_INT64) ? 8 : 4);
            if (at + k <= cap) memcpy(out + at, p[i].tensor->data, k);
            at += k;
        }
    }
    return at;
}

/* Everything a load may change, as bytes: module, optimizer and schedule
   (their in-memory record), loader (its fields), generators. */
typedef struct snap {
    unsigned char mod[4096], opt[16384], ld[1024];
    size_t nmod, nopt, nld;
    nn_rng_state g, own;
} snap;

static void take(run *r, snap *s) {
    memset(s, 0, sizeof *s);
    s->nmod = module_bytes(r->net, s->mod, sizeof s->mod);
    s->nopt = nn_optim_state_write(r->opt, r->sched, s->opt, sizeof s->opt);
    {
        int pos[4];
        nn_test__loader_position(r->ld, pos);
        memcpy(s->ld, nn_test__loader_order(r->ld), sizeof(int) * NS);
        memcpy(s->ld + sizeof(int) * NS, pos, sizeof pos);
    }
    s->nld = sizeof(int) * (NS + 4);
    nn_rng_get_state(nn_default_rng(), &s->g);
    if (r->ld_rng) nn_rng_get_state(r->ld_rng, &s->own);
}

static int same(const snap *a, const snap *b) {
    return a->nmod == b->nmod && a->nopt == b->nopt && a->nld == b->nld &&
           memcmp(a->mod, b->mod, a->nmod) == 0 && memcmp(a->opt, b->opt, a->nopt) == 0 &&
           memcmp(a->ld, b->ld, a->nld) == 0 && memcmp(&a->g, &b->g, sizeof a->g) == 0 &&
           memcmp(&a->own, &b->own, sizeof a->own) == 0;
}

static void test_resume(int threads) {
    static const long stops[2][2] = {{8, 0}, {0, 2}}; /* step 8: inside epoch 2; after epoch 2 */
    unsigned char want[4096], got[4096];
    int opt, sch, which, fails = 0, runs = 0;
    nn_set_threads(threads);
    for (opt = 0; opt < NOPT; opt++)
        for (sch = 0; sch < NSCH; sch++) {
            run full;
            size_t nw;
            int own = (opt + sch) & 1;
            build(&full, opt, sch, own, 1);
            if (train(&full, 0, 0, sch, 0, 0) != 0) {
                NN_TEST_CHECK(0, "%s + %s: the uninterrupted run failed", opt_names[opt], sch_names[sch]);
                destroy(&full);
                continue;
            }
            nw = module_bytes(full.net, want, sizeof want);
            for (which = 0; which < 2; which++) {
                run part, again;
                nn_checkpoint c;
                nn_status st;
                size_t ng;
                build(&part, opt, sch, own, 1);
                if (train(&part, 0, 0, sch, stops[which][0], stops[which][1]) != 1) {
                    NN_TEST_CHECK(0, "%s + %s: the first part failed: %s", opt_names[opt], sch_names[sch],
                                  nn_error_string());
                    destroy(&part);
                    continue;
                }
                destroy(&part);
                /* a fresh state: everything rebuilt, seeded differently */
                build(&again, opt, sch, own, 977);
                c = ck_of(&again, -1, -1);
                st = nn_checkpoint_load(path_a, &c);
                if (st != NN_OK) {
                    NN_TEST_CHECK(0, "%s + %s: load: %s", opt_names[opt], sch_names[sch], nn_error_string());
                    destroy(&again);
                    continue;
                }
                if (c.step != (which ? 2 * PER_EPOCH : 8) || c.epoch != (which ? 2 : 1)) {
                    NN_TEST_CHECK(0, "%s + %s: epoch %ld step %ld restored", opt_names[opt], sch_names[sch],
                                  c.epoch, c.step);
                    fails++;
                }
                if (train(&again, c.epoch, c.step, sch, 0, 0) != 0) fails++;
                ng = module_bytes(again.net, got, sizeof got);
                runs++;
                if (ng != nw || memcmp(want, got, nw) != 0) {
                    fails++;
                    printf("  %s + %s, %s, %d thread(s): resumed weights differ\n", opt_names[opt],
                           sch_names[sch], which ? "epoch boundary" : "mid-epoch", threads);
                }
                if (nn_get_lr(again.opt) != nn_get_lr(full.opt)) {
                    fails++;
                    printf("  %s + %s: lr %.9g vs %.9g\n", opt_names[opt], sch_names[sch],
                           (double)nn_get_lr(again.opt), (double)nn_get_lr(full.opt));
                }
                destroy(&again);
            }
            destroy(&full);
        }
    NN_TEST_CHECK(fails == 0 && runs == NOPT * NSCH * 2,
                  "%d thread(s): %d resumed runs of %d end bitwise like the uninterrupted ones (%d differ)",
                  threads, runs, NOPT * NSCH * 2, fails);
    nn_set_threads(1);
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)n + 1);
    *size = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Replace the first occurrence of from (same length as to) in the file's bytes. */
static int patch(unsigned char *b, size_t n, const char *from, const char *to) {
    size_t k = strlen(from), i;
    for (i = 0; i + k <= n; i++)
        if (memcmp(b + i, from, k) == 0) {
            memcpy(b + i, to, k);
            return 1;
        }
    return 0;
}

static int user_seen;
static void on_user(const char *key, const char *value, void *arg) {
    (void)arg;
    if (strcmp(key, "best") == 0 && strcmp(value, "0.125") == 0) user_seen |= 1;
    else if (strcmp(key, "note") == 0 && strcmp(value, "a \"quoted\"\nline") == 0) user_seen |= 2;
    else user_seen |= 4;
}

/* Failed loads change nothing, and say why. */
static void test_failures(void) {
    run r, other;
    snap before, after;
    nn_checkpoint c;
    nn_status st;
    unsigned char *file, *bad;
    size_t n = 0, cut;
    int ok, all;
    build(&r, OPT_ADAM, SCH_PLATEAU, 1, 5);
    NN_TEST_CHECK(train(&r, 0, 0, SCH_PLATEAU, 9, 0) == 1, "a checkpoint at step 9");
    destroy(&r);
    build(&r, OPT_ADAM, SCH_PLATEAU, 1, 6);
    train(&r, 0, 0, SCH_PLATEAU, 0, 0); /* a different state to keep */
    take(&r, &before);

    /* another optimizer over the same model */
    build(&other, OPT_SGD, SCH_PLATEAU, 1, 6);
    c = ck_of(&other, 0, 0);
    {
        snap ob, oa;
        take(&other, &ob);
        st = nn_checkpoint_load(path_a, &c);
        take(&other, &oa);
        NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "Adam") &&
                      strstr(nn_error_string(), "SGD") && strstr(nn_error_string(), "nn_checkpoint_load"),
                      "Adam's state into SGD: %s", nn_error_string());
        NN_TEST_CHECK(same(&ob, &oa), "a failed load (other optimizer) changes nothing");
    }
    destroy(&other);

    /* the same optimizer kind over other parameters */
    {
        nn_adam_opts ao;
        nn_module *m2 = nn_sequential(nn_linear(NF, 7), nn_relu(), nn_linear(7, NC), NULL);
        nn_optim *o2;
        memset(&ao, 0, sizeof ao);
        o2 = nn_adam(m2, ao);
        memset(&c, 0, sizeof c);
        c.optim = o2;
        st = nn_checkpoint_load(path_a, &c);
        NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "parameters"),
                      "Adam over other parameters: %s", nn_error_string());
        nn_optim_free(o2);
        nn_module_free(m2);
        /* the same names, other shapes */
        m2 = nn_sequential(nn_linear(NF, 7), nn_batchnorm1d(7), nn_relu(), nn_dropout(0.3f),
                           nn_linear(7, NC), NULL);
        o2 = nn_adam(m2, ao);
        c.optim = o2;
        st = nn_checkpoint_load(path_a, &c);
        NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "\"optim.0.weight.exp_avg\" has shape "
                                                    "[12,5], expected [7,5]"),
                      "Adam over other shapes: %s", nn_error_string());
        c.optim = NULL;
        c.module = m2;
        st = nn_checkpoint_load(path_a, &c);
        NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "\"0.weight\" has shape [12,5]"),
                      "another module: %s", nn_error_string());
        nn_optim_free(o2);
        nn_module_free(m2);
    }
    /* AdamW without amsgrad: a buffer fewer */
    {
        nn_adam_opts ao;
        nn_optim *o2;
        memset(&ao, 0, sizeof ao);
        ao.amsgrad = 1;
        o2 = nn_adam(r.net, ao);
        memset(&c, 0, sizeof c);
        c.optim = o2;
        st = nn_checkpoint_load(path_a, &c);
        NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "max_exp_avg_sq"),
                      "Adam into Adam amsgrad: %s", nn_error_string());
        nn_optim_free(o2);
    }
    /* a schedule of another kind */
    {
        nn_sched *s2 = make_sched(SCH_SGDR, r.opt);
        memset(&c, 0, sizeof c);
        c.optim = r.opt;
        c.sched = s2;
        take(&r, &before); /* (building draws from the global generator) */
        st = nn_checkpoint_load(path_a, &c);
        NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "ReduceLROnPlateau"),
                      "plateau state into warm restarts: %s", nn_error_string());
        nn_sched_free(s2);
        take(&r, &after);
        NN_TEST_CHECK(same(&before, &after), "a failed schedule load leaves the optimizer too");
    }

    /* truncations: every length fails and changes nothing */
    file = read_all(path_a, &n);
    NN_TEST_CHECK(file != NULL && n > 1000, "checkpoint file read (%zu bytes)", n);
    if (!file) return;
    ok = all = 0;
    take(&r, &before);
    for (cut = 0; cut < n; cut += (cut < 600 ? 1 : 37)) {
        write_all(path_b, file, cut);
        c = ck_of(&r, 0, 0);
        st = nn_checkpoint_load(path_b, &c);
        take(&r, &after);
        all++;
        ok += st == NN_ERR_FORMAT && strstr(nn_error_string(), path_b) != NULL && same(&before, &after);
    }
    NN_TEST_CHECK(ok == all, "%d of %d truncated files fail with NN_ERR_FORMAT and change nothing", ok, all);

    /* corruptions the parser accepts but the checkpoint does not */
    {
        static const char *const cases[][3] = {
            {"\"optim.type\":\"Adam\"", "\"optim.type\":\"Adax\"", "type Adax"},
            {"\"nn.checkpoint\":\"1\"", "\"nn.checkpoint\":\"2\"", "version"},
            {"\"nn.checkpoint\"", "\"nn.checkpoinX\"", "not a checkpoint"},
            {"\"optim.0.weight.step\":\"", "\"optim.0.weight.stXp\":\"", "\"0.weight\" has no state"},
            {"\"loader.samples\":\"45\"", "\"loader.samples\":\"46\"", "dataset has 45"},
            {"\"loader.pos\":\"", "\"loader.pXs\":\"", "loader.pos"},
            {"\"optim.lr\":\"", "\"optim.lX\":\"", "optim.lr"},
            {"\"sched.t\":\"", "\"sched.X\":\"", "sched.t"},
            {"\"loader.order\"", "\"loader.ordeX\"", "loader.order"},
            {"\"optim.4.bias.exp_avg\"", "\"optim.4.bias.exp_avX\"", "exp_avg"},
            {"\"nn.h\":", "\"nX.h\":", NULL}, /* a key nn.h does not need: ignored */
        };
        size_t k;
        for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            bad = (unsigned char *)malloc(n);
            memcpy(bad, file, n);
            if (!patch(bad, n, cases[k][0], cases[k][1])) {
                NN_TEST_CHECK(0, "corruption %zu: %s not in the file", k, cases[k][0]);
                free(bad);
                continue;
            }
            write_all(path_b, bad, n);
            free(bad);
            c = ck_of(&r, 0, 0);
            st = nn_checkpoint_load(path_b, &c);
            take(&r, &after);
            if (!cases[k][2]) {
                NN_TEST_CHECK(st == NN_OK, "corruption %zu (harmless) loads: %s", k, nn_error_string());
                take(&r, &before);
                continue;
            }
            NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), cases[k][2]) && same(&before, &after),
                          "corruption %zu (%s): %s", k, cases[k][1], nn_error_string());
        }
    }
    /* a generator state with an even increment; a loader order that repeats a sample */
    {
        char *h = (char *)malloc(n + 1), *p;
        memcpy(h, file, n);
        h[n] = '\0';
        p = strstr(h + 8, "\"rng.state\":\"");
        if (p) {
            p += strlen("\"rng.state\":\"") + 16 + 1 + 15; /* the increment's last digit */
            *p = '0';
            write_all(path_b, (unsigned char *)h, n);
            c = ck_of(&r, 0, 0);
            st = nn_checkpoint_load(path_b, &c);
            take(&r, &after);
            NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "generator state") &&
                          same(&before, &after), "even increment: %s", nn_error_string());
        } else {
            NN_TEST_CHECK(0, "rng.state in the file");
        }
        free(h);
    }
    {
        /* loader.order: the data section holds it as I64; make entry 1 equal entry 0 */
        const char *key = "\"loader.order\":{\"dtype\":\"I64\",\"shape\":[45],\"data_offsets\":[";
        char *h = (char *)malloc(n + 1), *p;
        uint64_t hlen = 0;
        int i;
        memcpy(h, file, n);
        h[n] = '\0';
        for (i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)h[i];
        p = strstr(h + 8, key);
        if (p) {
            size_t off = (size_t)strtoul(p + strlen(key), NULL, 10) + 8 + (size_t)hlen;
            memcpy(h + off + 8, h + off, 8);
            write_all(path_b, (unsigned char *)h, n);
            c = ck_of(&r, 0, 0);
            st = nn_checkpoint_load(path_b, &c);
            take(&r, &after);
            NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "permutation") &&
                          same(&before, &after), "repeated sample: %s", nn_error_string());
        } else {
            NN_TEST_CHECK(0, "loader.order in the file");
        }
        free(h);
    }
    /* a model file is no checkpoint; a missing file */
    NN_TEST_CHECK(nn_save(r.net, path_b) == NN_OK, "nn_save");
    c = ck_of(&r, 0, 0);
    st = nn_checkpoint_load(path_b, &c);
    NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "not a checkpoint"), "model file: %s",
                  nn_error_string());
    st = nn_checkpoint_load("no/such/dir/x.ckpt", &c);
    NN_TEST_CHECK(st == NN_ERR_IO, "missing file is NN_ERR_IO");
    take(&r, &after);
    NN_TEST_CHECK(same(&before, &after), "still unchanged");
    free(file);
    destroy(&r);
}

/* What the file holds, read as a plain safetensors file. */
static nn_tensor *g_ea;
static int meta_seen;
static void on_meta(const char *key, const char *value, void *user) {
    (void)user;
    if (strcmp(key, "optim.type") == 0 && strcmp(value, "Adam") == 0) meta_seen |= 1;
    if (strcmp(key, "optim.0.weight.step") == 0 && strcmp(value, "9") == 0) meta_seen |= 2;
    if (strcmp(key, "optim.beta2") == 0 && strcmp(value, "0.999") == 0) meta_seen |= 4;
    if (strcmp(key, "sched.type") == 0 && strcmp(value, "ReduceLROnPlateau") == 0) meta_seen |= 8;
    if (strcmp(key, "loader.pos") == 0 && strcmp(value, "24") == 0) meta_seen |= 16;
}

static void test_contents(void) {
    run r;
    nn_checkpoint c;
    nn_meta user[2];
    nn_module *reader;
    nn_load_opts lo;
    nn_status st;
    size_t j;
    int same_ea = 1;
    build(&r, OPT_ADAM, SCH_PLATEAU, 0, 5);
    train(&r, 0, 0, SCH_PLATEAU, 9, 0); /* writes path_a after step 9 (mid epoch 2: pos 24) */
    user[0].key = "best";
    user[0].value = "0.125";
    user[1].key = "note";
    user[1].value = "a \"quoted\"\nline";
    c = ck_of(&r, 1, 9);
    c.user = user;
    c.nuser = 2;
    NN_TEST_CHECK(nn_checkpoint_save(path_a, &c) == NN_OK, "save with user pairs: %s", nn_error_string());
    /* the moments are tensors a safetensors reader finds by name */
    reader = nn_module_new("Reader", NULL);
    g_ea = nn_module_add_buffer(reader, "optim.0.weight.exp_avg", nn_zeros(NULL, NN_SHAPE(12, NF)));
    memset(&lo, 0, sizeof lo);
    lo.allow_unexpected = 1;
    lo.on_metadata = on_meta;
    meta_seen = 0;
    st = nn_load(reader, path_a, lo);
    NN_TEST_CHECK(st == NN_OK, "nn_load reads a checkpoint: %s", nn_error_string());
    {
        const float *exp_avg = nn_test__optim_slot(r.opt, 0, 0);
        for (j = 0; j < g_ea->numel; j++) same_ea &= memcmp(&g_ea->data[j], &exp_avg[j], 4) == 0;
    }
    NN_TEST_CHECK(same_ea, "\"optim.0.weight.exp_avg\" is Adam's exp_avg, bitwise");
    NN_TEST_CHECK(meta_seen == 31, "metadata: type, step, beta2, schedule, loader position (%d)", meta_seen);
    nn_module_free(reader);
    /* user pairs come back through the callback, epoch and step set */
    {
        run b;
        nn_checkpoint d;
        build(&b, OPT_ADAM, SCH_PLATEAU, 0, 8);
        d = ck_of(&b, 0, 0);
        d.on_user = on_user;
        user_seen = 0;
        st = nn_checkpoint_load(path_a, &d);
        NN_TEST_CHECK(st == NN_OK && user_seen == 3 && d.epoch == 1 && d.step == 9,
                      "user pairs delivered (%d), epoch %ld step %ld: %s", user_seen, d.epoch, d.step,
                      nn_error_string());
        /* only the model out of a full checkpoint */
        memset(&d, 0, sizeof d);
        d.module = b.net;
        st = nn_checkpoint_load(path_a, &d);
        NN_TEST_CHECK(st == NN_OK, "module only: %s", nn_error_string());
        destroy(&b);
    }
    /* nn_optim_save / nn_optim_load: a checkpoint of the optimizer alone */
    {
        run b;
        snap s1, s2;
        nn_rng_state g1, g2;
        NN_TEST_CHECK(nn_optim_save(r.opt, r.sched, path_b) == NN_OK, "nn_optim_save: %s", nn_error_string());
        build(&b, OPT_ADAM, SCH_PLATEAU, 0, 8);
        nn_rng_get_state(nn_default_rng(), &g1);
        st = nn_optim_load(b.opt, b.sched, path_b);
        nn_rng_get_state(nn_default_rng(), &g2);
        NN_TEST_CHECK(st == NN_OK, "nn_optim_load: %s", nn_error_string());
        NN_TEST_CHECK(memcmp(&g1, &g2, sizeof g1) == 0, "nn_optim_load leaves the generator");
        s1.nopt = nn_optim_state_write(r.opt, r.sched, s1.opt, sizeof s1.opt);
        s2.nopt = nn_optim_state_write(b.opt, b.sched, s2.opt, sizeof s2.opt);
        NN_TEST_CHECK(s1.nopt == s2.nopt && memcmp(s1.opt, s2.opt, s1.nopt) == 0,
                      "nn_optim_load restores the optimizer and schedule exactly");
        /* and from the full checkpoint too */
        destroy(&b);
        build(&b, OPT_ADAM, SCH_PLATEAU, 0, 8);
        st = nn_optim_load(b.opt, b.sched, path_a);
        s2.nopt = nn_optim_state_write(b.opt, b.sched, s2.opt, sizeof s2.opt);
        NN_TEST_CHECK(st == NN_OK && s1.nopt == s2.nopt && memcmp(s1.opt, s2.opt, s1.nopt) == 0,
                      "nn_optim_load from a full checkpoint: %s", nn_error_string());
        /* a checkpoint without a loader cannot restore one */
        {
            nn_checkpoint d;
            memset(&d, 0, sizeof d);
            d.loader = b.ld;
            st = nn_checkpoint_load(path_b, &d);
            NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "no loader state"),
                          "loader from an optimizer-only file: %s", nn_error_string());
        }
        destroy(&b);
    }
    destroy(&r);
}

/* Misuse goes through the error hook. */
static void test_misuse(void) {
    run r;
    nn_checkpoint c;
    nn_meta user[2];
    nn_status st;
    build(&r, OPT_SGD, SCH_SGDR, 0, 3);
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_test_msgs = 0;
    st = nn_checkpoint_save(path_a, NULL);
    NN_TEST_CHECK(st == NN_ERR_ARG && nn_test_msgs == 1 && strstr(nn_test_msg, "nn_checkpoint_save: NULL checkpoint"),
                  "NULL checkpoint: %s", nn_test_msg);
    c = ck_of(&r, 0, 0);
    st = nn_checkpoint_load(NULL, &c);
    NN_TEST_CHECK(st == NN_ERR_ARG && strstr(nn_test_msg, "nn_checkpoint_load: NULL path"), "NULL path: %s",
                  nn_test_msg);
    user[0].key = "a";
    user[0].value = "1";
    user[1].key = NULL;
    user[1].value = "2";
    c.user = user;
    c.nuser = 2;
    st = nn_checkpoint_save(path_a, &c);
    NN_TEST_CHECK(st == NN_ERR_ARG && strstr(nn_test_msg, "user pair 1 has a NULL key"), "NULL key: %s", nn_test_msg);
    user[1].key = "a";
    st = nn_checkpoint_save(path_a, &c);
    NN_TEST_CHECK(st == NN_ERR_ARG && strstr(nn_test_msg, "\"user.a\" is given twice"), "repeated key: %s", nn_test_msg);
    c.nuser = 0;
    {
        nn_module *m = nn_module_new("Holder", NULL);
        nn_module_add_child(m, "optim", nn_linear(2, 2));
        memset(&c, 0, sizeof c);
        c.module = m;
        st = nn_checkpoint_save(path_a, &c);
        NN_TEST_CHECK(st == NN_ERR_ARG && strstr(nn_test_msg, "\"optim.weight\" would clash"), "clash: %s", nn_test_msg);
        nn_module_free(m);
    }
    nn_set_error_hook(NULL, NULL);
    destroy(&r);
}

int main(void) {
    float x[NS * NF];
    int y[NS], i;
    snprintf(path_a, sizeof path_a, "test_checkpoint_%ld_a.tmp", CK_PID);
    snprintf(path_b, sizeof path_b, "test_checkpoint_%ld_b.tmp", CK_PID);
    nn_seed(11);
    for (i = 0; i < NS * NF; i++) x[i] = nn_rand_normal();
    for (i = 0; i < NS; i++) y[i] = (x[i * NF] + x[i * NF + 1] > 0.0f) + (x[i * NF + 2] > 0.5f);
    if (nn_dataset_tabular(NS, NF, x, y, NULL, 0, &g_ds) != NN_OK) {
        printf("dataset: %s\n", nn_error_string());
        return 1;
    }
    test_resume(1);
    test_resume(2);
    test_failures();
    test_contents();
    test_misuse();
    remove(path_a);
    remove(path_b);
    nn_dataset_free(&g_ds);
    return nn_test_summary("test_checkpoint");
}
