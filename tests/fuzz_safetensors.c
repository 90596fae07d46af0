/* libFuzzer target for the >>io reader: nn_load_mem on the raw bytes into
   a small module (Linear(2,3) + BatchNorm1d(3) in a Sequential, and a module
   with an int64 buffer), strictly and with every option relaxed.  Every
   input must return a status without a crash, leak or out-of-bounds access;
   a failed load must leave the module's bytes unchanged, and a successful
   one must save and load back.

     clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
         tests/fuzz_safetensors.c -o fuzz_safetensors -lm
     ./fuzz_safetensors -dict=tests/fuzz_safetensors.dict corpus/

   Seeds: built with -DNN_FUZZ_SEEDS (without -fsanitize=fuzzer) it writes
   valid files into the directory given as argv[1]; the .safetensors files
   are good seeds too.  Without libFuzzer,
   -DNN_FUZZ_MAIN builds a main that runs the files named on the command
   line through the same function (to replay a crash). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static nn_module *fz_net, *fz_int;

static nn_module *fz_int_module(void) {
    nn_module *m = nn_module_new("Counter", NULL);
    nn_tensor *t = nn_zeros(NULL, NN_SHAPE(4));
    t->shape[0] = 2;
    t->numel = 2;
    t->flags |= NN_TENSOR_INT64;
    nn_module_add_buffer(m, "num_batches_tracked", t);
    nn_module_add_param(m, "weight", nn_zeros(NULL, NN_SHAPE(3)));
    return m;
}

static void fz_init(void) {
    if (fz_net) return;
    nn_seed(7);
    fz_net = nn_sequential(nn_linear(2, 3), nn_batchnorm1d(3), NULL);
    fz_int = fz_int_module();
}

/* All of m's bytes, for the unchanged-after-failure check. */
static size_t fz_snapshot(nn_module *m, unsigned char *out, size_t cap) {
    int n, i, pass;
    size_t at = 0;
    for (pass = 0; pass < 2; pass++) {
        nn_param *p = pass ? nn_buffers(m, &n) : nn_parameters(m, &n);
        for (i = 0; i < n; i++) {
            size_t k = p[i].tensor->numel * ((p[i].tensor->flags & NN_TENSOR_INT64) ? 8 : 4);
            if (at + k > cap) abort();
            memcpy(out + at, p[i].tensor->data, k);
            at += k;
        }
    }
    return at;
}

static void fz_one(nn_module *m, const uint8_t *data, size_t size, nn_load_opts o) {
    unsigned char before[512], after[512];
    size_t nb = fz_snapshot(m, before, sizeof before), na;
    nn_status st = nn_load_mem(m, data, size, o);
    if (st == NN_OK) {
        void *buf;
        size_t bs;
        nn_save_opts so;
        nn_load_opts strict;
        memset(&so, 0, sizeof so);
        memset(&strict, 0, sizeof strict);
        if (nn_save_mem(m, so, &buf, &bs) != NN_OK) abort();
        if (nn_load_mem(m, buf, bs, strict) != NN_OK) abort(); /* what it writes, it reads */
        na = fz_snapshot(m, after, sizeof after);
        NN_FREE(buf);
        if (fz_snapshot(m, before, sizeof before) != na || memcmp(before, after, na) != 0) abort();
        return;
    }
    if (st != NN_ERR_FORMAT && st != NN_ERR_OOM) abort();
    if (!strstr(nn_error_string(), "nn_load_mem")) abort();
    na = fz_snapshot(m, after, sizeof after);
    if (na != nb || memcmp(before, after, nb) != 0) abort(); /* all or nothing */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nn_load_opts o;
    fz_init();
    memset(&o, 0, sizeof o);
    fz_one(fz_net, data, size, o);
    fz_one(fz_int, data, size, o);
    o.allow_missing = 1;
    o.allow_unexpected = 1;
    o.strip_prefix = "0.";
    fz_one(fz_net, data, size, o);
    o.strip_prefix = NULL;
    o.add_prefix = "1.";
    fz_one(fz_net, data, size, o);
    o.add_prefix = NULL;
    fz_one(fz_int, data, size, o);
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
#endif

#ifdef NN_FUZZ_SEEDS
static void fz_seed(const char *dir, const char *name, nn_module *m) {
    char p[512];
    void *buf;
    size_t n;
    nn_save_opts so;
    nn_meta md[1];
    FILE *f;
    memset(&so, 0, sizeof so);
    md[0].key = "k\xc3\xa9y";
    md[0].value = "v\n\"";
    so.metadata = md;
    so.nmetadata = 1;
    if (nn_save_mem(m, so, &buf, &n) != NN_OK) return;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if ((f = fopen(p, "wb")) != NULL) {
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    NN_FREE(buf);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    nn_module *l;
    fz_init();
    fz_seed(dir, "net", fz_net);
    fz_seed(dir, "int", fz_int);
    fz_seed(dir, "linear0", l = nn_linear(2, 3));
    nn_module_free(l);
    printf("fuzz_safetensors: wrote seeds to %s\n", dir);
    return 0;
}
#endif

#ifdef NN_FUZZ_MAIN
int main(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        size_t n = 0;
        unsigned char *buf = fz_read(argv[i], &n);
        if (!buf) continue;
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
    }
    printf("fuzz_safetensors: ran %d inputs\n", argc - 1);
    return 0;
}
#endif
