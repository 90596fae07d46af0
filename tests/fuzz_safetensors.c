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
#include "fuzz.h"
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

static void fz_one(nn_module *m, const uint8_t *data, size_t size, nn_load_opts o) {
    static fz_snap before, after, again;
    nn_status st;
    before.n = 0;
    fz_put_module(&before, m);
    st = nn_load_mem(m, data, size, o);
    if (st == NN_OK) {
        void *buf;
        size_t bs;
        nn_save_opts so;
        nn_load_opts strict;
        memset(&so, 0, sizeof so);
        memset(&strict, 0, sizeof strict);
        after.n = 0;
        fz_put_module(&after, m);
        if (nn_save_mem(m, so, &buf, &bs) != NN_OK) abort();
        if (nn_load_mem(m, buf, bs, strict) != NN_OK) abort(); /* what it writes, it reads */
        NN_FREE(buf);
        again.n = 0;
        fz_put_module(&again, m);
        fz_same(&after, &again); /* and gets the same values back */
        return;
    }
    if (st != NN_ERR_FORMAT && st != NN_ERR_OOM) abort();
    if (!strstr(nn_error_string(), "nn_load_mem")) abort();
    after.n = 0;
    fz_put_module(&after, m);
    fz_same(&before, &after); /* all or nothing */
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
