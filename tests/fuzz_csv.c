/* libFuzzer target for the CSV reader: nn_csv_read_mem on the raw bytes with
   options taken from the first byte (delimiter, header, target kind, column
   lists, fill), then the split and the standardizer on whatever parsed.
   Every input must return a status without a crash, leak or out-of-bounds
   access, and a success must be self-consistent.

     clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
         tests/fuzz_csv.c -o fuzz_csv -lm
     ./fuzz_csv -max_total_time=600 corpus/

   Without libFuzzer, -DNN_FUZZ_MAIN builds a main that runs the files named
   on the command line through the same function (to replay a crash). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_hook(const char *msg, void *user) {
    (void)msg;
    (void)user; /* misuse (e.g. a split of a tiny set) returns an error */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char delims[4] = {0, ';', ' ', '\t'};
    static const char *const cols[8] = {NULL, "", "0", "-1", "1:", "0,2", "a,b", ":-1"};
    nn_csv_opts o;
    nn_dataset ds;
    nn_status st;
    unsigned k;
    nn_set_error_hook(fuzz_hook, NULL);
    memset(&o, 0, sizeof o);
    if (size >= 2) {
        k = data[0] | (unsigned)data[1] << 8;
        o.delimiter = delims[k & 3];
        o.header = (k >> 2) & 1;
        o.classes = (k >> 3) & 1;
        o.fill_missing = (k >> 4) & 1;
        o.skip_rows = (int)((k >> 5) & 1);
        o.target = cols[(k >> 6) & 7];
        o.features = cols[(k >> 9) & 7];
        data += 2;
        size -= 2;
    }
    st = nn_csv_read_mem(size ? (const void *)data : NULL, size, "fuzz", o, &ds);
    if (st != NN_OK) {
        if (ds.n || ds.features || ds.y || ds.targets) abort(); /* *out is zeroed */
        if (st != NN_ERR_FORMAT && st != NN_ERR_ARG && st != NN_ERR_OOM) abort();
        return 0;
    }
    if (ds.n < 1 || ds.sample_size < 1 || !ds.features || (o.classes && (!ds.y || ds.nclasses < 1)))
        abort();
    {
        /* Touch the last values: ASan checks the arrays' sizes. */
        volatile float last = ds.features[(size_t)ds.n * (size_t)ds.sample_size - 1];
        int i;
        (void)last;
        if (ds.targets) last = ds.targets[(size_t)ds.n * (size_t)ds.ntargets - 1];
        for (i = 0; ds.y && i < ds.n; i++)
            if (ds.y[i] < 0 || ds.y[i] >= ds.nclasses) abort();
    }
    {
        nn_dataset tr, va, te;
        if (nn_dataset_split(&ds, 0.25f, 0.25f, 1, ds.y != NULL, &tr, &va, &te) == NN_OK) {
            nn_standardizer s;
            if (tr.n + va.n + te.n != ds.n) abort();
            if (tr.n > 0 && nn_standardize_fit(&tr, 0, &s) == NN_OK) {
                nn_standardize_apply(&s, &te);
                nn_standardizer_free(&s);
            }
            nn_dataset_free(&tr);
            nn_dataset_free(&va);
            nn_dataset_free(&te);
        }
    }
    nn_dataset_free(&ds);
    return 0;
}

#ifdef NN_FUZZ_MAIN
int main(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        unsigned char *buf;
        long len;
        size_t got;
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = (unsigned char *)malloc((size_t)len + 1);
        got = fread(buf, 1, (size_t)len, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, got);
        free(buf);
    }
    printf("fuzz_csv: ran %d inputs\n", argc - 1);
    return 0;
}
#endif
