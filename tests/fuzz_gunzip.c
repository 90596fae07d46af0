/* libFuzzer target for the >>data parsers: nn_gunzip on the raw bytes, then
   the IDX parser on the same bytes (which gunzips them first when they start
   with 1f 8b).  Every input must return a status without a crash, leak or
   out-of-bounds access.

     clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
         tests/fuzz_gunzip.c -o fuzz_gunzip -lm
     ./fuzz_gunzip -max_total_time=300 corpus/

   Without libFuzzer, -DNN_FUZZ_MAIN builds a main that runs the files named
   on the command line through the same function (to replay a crash). */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned char *out = NULL, *copy;
    size_t n = 0;
    nn_idx idx;
    nn_status st = nn_gunzip(data, size, &out, &n);
    if (st == NN_OK) {
        NN_FREE(out);
    } else if (out != NULL || (st != NN_ERR_FORMAT && st != NN_ERR_OOM)) {
        abort(); /* failures hand back nothing, and only these statuses */
    }
    /* nn__idx_parse takes ownership of a heap buffer (nn_idx_read's path
       without the file). */
    copy = (unsigned char *)NN_MALLOC(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    st = nn__idx_parse("fuzz", copy, size, &idx);
    if (st == NN_OK) {
        size_t esize = (size_t)nn__idx_elem_size(idx.type), count = 1;
        int i;
        for (i = 0; i < idx.ndim; i++) count *= (size_t)idx.dims[i];
        if (count != idx.count || !esize) abort();
        /* Touch the last byte: ASan checks that count*esize bytes exist. */
        if (count) {
            volatile unsigned char last = idx.data[count * esize - 1];
            (void)last;
        }
        nn_idx_free(&idx);
    } else if (idx.data != NULL || idx.ndim != 0) {
        abort(); /* *out is zeroed on failure */
    }
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
    printf("fuzz_gunzip: ran %d inputs\n", argc - 1);
    return 0;
}
#endif
