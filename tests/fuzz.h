/* Shared pieces of the libFuzzer targets (include after nn.h): a byte
   snapshot of state a failed load must leave unchanged.  Any difference
   between the snapshots before and after a failed load is a finding
   (abort, so libFuzzer keeps the input). */
#ifndef NN_FUZZ_H
#define NN_FUZZ_H
#include <stdlib.h>
#include <string.h>

/* Everything a load may change, as bytes. */
typedef struct fz_snap {
    unsigned char b[8192];
    size_t n;
} fz_snap;

/* Append k bytes at src to the snapshot. */
static void fz_put(fz_snap *p, const void *src, size_t k) {
    if (p->n + k > sizeof p->b) abort();
    memcpy(p->b + p->n, src, k);
    p->n += k;
}

/* Append every parameter's and buffer's bytes of m (int64 buffers whole). */
static void fz_put_module(fz_snap *p, nn_module *m) {
    int n, i, pass;
    for (pass = 0; pass < 2; pass++) {
        nn_param *q = pass ? nn_buffers(m, &n) : nn_parameters(m, &n);
        for (i = 0; i < n; i++)
            fz_put(p, q[i].tensor->data, q[i].tensor->numel * ((q[i].tensor->flags & NN_TENSOR_INT64) ? 8 : 4));
    }
}

/* Abort unless the two snapshots hold the same bytes: a load that failed
   changed something (loads are all or nothing). */
static void fz_same(const fz_snap *a, const fz_snap *b) {
    if (a->n != b->n || memcmp(a->b, b->b, a->n) != 0) abort();
}
#endif
