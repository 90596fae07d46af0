/* libFuzzer target for checkpoints (>>io): the checkpoint reader on the raw
   bytes, into two training states (Ranger = Lookahead over RAdam, a warmup
   then warm restarts, a loader with its own generator; NAdam with
   reduce-on-plateau and a loader on the global generator), each a module
   with batch norm (an int64 buffer).  Every input must return a status
   without a crash, leak or out-of-bounds access; a failed load must leave
   module, optimizer, schedule, loader and generators byte for byte as they
   were, and after a successful one a training step (batch norm in
   evaluation mode, as a loaded batch may hold one sample) must run.

     clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
         tests/fuzz_checkpoint.c -o fuzz_checkpoint -lm
     ./fuzz_checkpoint -dict=tests/fuzz_safetensors.dict corpus/

   Seeds: built with -DNN_FUZZ_SEEDS (without -fsanitize=fuzzer) it writes
   checkpoints of both states into the directory given as argv[1].  Without
   libFuzzer, -DNN_FUZZ_MAIN builds a main that runs the files named on the
   command line through the same function (to replay a crash).  It calls
   the reader on memory through the private nn__ckpt_load_buf (what
   nn_checkpoint_load runs on the file's bytes). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "fuzz.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_N 10
static nn_dataset fz_ds;

typedef struct fz_state {
    nn_module *net;
    nn_optim *opt;
    nn_sched *sched;
    nn_loader *ld;
    nn_rng *own;
    nn_graph *g;
} fz_state;
static fz_state fz[2];
static int fz_ready;

static void fz_build(fz_state *s, int which) {
    nn_loader_opts lo;
    memset(s, 0, sizeof *s);
    nn_seed(3 + (uint64_t)which);
    s->net = nn_sequential(nn_linear(2, 3), nn_batchnorm1d(3), nn_relu(), nn_linear(3, 2), NULL);
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 4;
    lo.shuffle = 1;
    if (which == 0) {
        nn_ranger_opts ro;
        nn_warm_restarts_opts wr;
        nn_warmup_opts wu;
        memset(&ro, 0, sizeof ro);
        memset(&wr, 0, sizeof wr);
        memset(&wu, 0, sizeof wu);
        ro.k = 3;
        s->opt = nn_ranger(s->net, ro);
        wr.T_0 = 3;
        wu.warmup_steps = 2;
        wu.then = nn_warm_restarts(s->opt, wr);
        s->sched = nn_warmup(s->opt, wu);
        s->own = nn_rng_new(9);
        lo.rng = s->own;
    } else {
        nn_nadam_opts no;
        nn_reduce_on_plateau_opts po;
        memset(&no, 0, sizeof no);
        memset(&po, 0, sizeof po);
        s->opt = nn_nadam(s->net, no);
        s->sched = nn_reduce_on_plateau(s->opt, po);
    }
    s->ld = nn_loader_new(&fz_ds, lo);
    s->g = nn_graph_new();
}

static void fz_free(fz_state *s) {
    nn_graph_free(s->g);
    nn_loader_free(s->ld);
    nn_sched_free(s->sched);
    nn_optim_free(s->opt);
    nn_module_free(s->net);
    nn_rng_free(s->own);
}

/* One training step (the loader's next batch), stepping the schedule. */
static void fz_step(fz_state *s, int which) {
    nn_tensor *x, *loss;
    const int *y;
    nn_ce_opts ce;
    int b;
    nn_graph_reset(s->g);
    b = nn_loader_next(s->ld, s->g, &x, &y);
    if (b == 0) b = nn_loader_next(s->ld, s->g, &x, &y); /* a new epoch */
    if (b <= 0) abort();
    memset(&ce, 0, sizeof ce);
    loss = nn_cross_entropy(nn_forward(s->net, x), y, ce);
    nn_zero_grad(s->opt);
    nn_backward(loss);
    nn_step(s->opt);
    if (which) nn_sched_step_metric(s->sched, nn_item(loss));
    else nn_sched_step(s->sched);
}

static void fz_init(void) {
    float x[FZ_N * 2];
    int y[FZ_N], i;
    if (fz_ready) return;
    for (i = 0; i < FZ_N * 2; i++) x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (i = 0; i < FZ_N; i++) y[i] = i & 1;
    if (nn_dataset_tabular(FZ_N, 2, x, y, NULL, 0, &fz_ds) != NN_OK) abort();
    for (i = 0; i < 2; i++) {
        fz_build(&fz[i], i);
        fz_step(&fz[i], i);
        fz_step(&fz[i], i);
        fz_step(&fz[i], i); /* mid-epoch, moments and counters set */
    }
    fz_ready = 1;
}

static void fz_take(fz_state *s, fz_snap *p) {
    nn_rng_state rs;
    size_t k;
    p->n = 0;
    fz_put_module(p, s->net);
    k = nn_optim_state_write(s->opt, s->sched, p->b + p->n, sizeof p->b - p->n);
    if (p->n + k > sizeof p->b) abort();
    p->n += k;
    fz_put(p, s->ld->order, sizeof(int) * FZ_N);
    fz_put(p, &s->ld->pos, sizeof(int));
    fz_put(p, &s->ld->batch, sizeof(int));
    fz_put(p, &s->ld->next_batch, sizeof(int));
    fz_put(p, &s->ld->in_epoch, sizeof(int));
    nn_rng_get_state(nn_default_rng(), &rs);
    fz_put(p, &rs, sizeof rs);
    if (s->own) {
        nn_rng_get_state(s->own, &rs);
        fz_put(p, &rs, sizeof rs);
    }
}

static nn_checkpoint fz_ck(fz_state *s) {
    nn_checkpoint c;
    memset(&c, 0, sizeof c);
    c.module = s->net;
    c.optim = s->opt;
    c.sched = s->sched;
    c.loader = s->ld;
    return c;
}

static void fz_one(int which, const uint8_t *data, size_t size) {
    fz_state *s = &fz[which];
    static fz_snap before, after;
    nn_checkpoint c = fz_ck(s);
    nn_status st;
    fz_take(s, &before);
    st = nn__ckpt_load_buf(data, size, &c, 1, "fuzz");
    if (st == NN_OK) {
        /* whatever it loaded, training goes on; in evaluation mode, as a
           loaded batch size may be 1, which batch norm refuses in training */
        nn_train_mode(s->net, 0);
        fz_step(s, which);
        fz_free(s);                /* and the next input starts from the same state */
        fz_build(s, which);
        fz_step(s, which);
        fz_step(s, which);
        fz_step(s, which);
        return;
    }
    if (st != NN_ERR_FORMAT && st != NN_ERR_OOM) abort();
    if (strncmp(nn_error_string(), "fuzz", 4) != 0) abort();
    fz_take(s, &after);
    fz_same(&before, &after); /* all or nothing */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_init();
    fz_one(0, data, size);
    fz_one(1, data, size);
    return 0;
}

#ifdef NN_FUZZ_MAIN
static unsigned char *fz_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long len;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        size_t n = 0;
        unsigned char *buf = fz_read(argv[i], &n);
        if (!buf) continue;
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    printf("fuzz_checkpoint: ran %d inputs\n", argc - 1);
    for (i = 0; i < 2 && fz_ready; i++) fz_free(&fz[i]);
    nn_dataset_free(&fz_ds);
    return 0;
}
#endif

#ifdef NN_FUZZ_SEEDS
int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char p[512];
    nn_meta md[1];
    int i;
    fz_init();
    md[0].key = "k\xc3\xa9y";
    md[0].value = "v\n\"";
    for (i = 0; i < 2; i++) {
        nn_checkpoint c = fz_ck(&fz[i]);
        c.user = md;
        c.nuser = 1;
        c.epoch = 1;
        c.step = 3;
        snprintf(p, sizeof p, "%s/ckpt%d", dir, i);
        if (nn_checkpoint_save(p, &c) != NN_OK) printf("%s\n", nn_error_string());
        snprintf(p, sizeof p, "%s/optim%d", dir, i);
        if (nn_optim_save(fz[i].opt, fz[i].sched, p) != NN_OK) printf("%s\n", nn_error_string());
    }
    printf("fuzz_checkpoint: wrote seeds to %s\n", dir);
    return 0;
}
#endif
