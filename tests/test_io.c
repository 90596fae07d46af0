/* Model files (>>io): nn_save / nn_load in the safetensors format, to files
   and memory.  Round trips bitwise for every layer with parameters or
   buffers; int64 buffers; dtype conversions; every validation error with its
   status and message (missing, unexpected, shapes, dtypes, truncation at
   every byte, header bit flips, absurd lengths, offsets, duplicates,
   metadata, JSON); the module unchanged after every failed load; atomic
   writes under injected write and allocation failures; prefix mapping and
   metadata; and PyTorch's own files (the .safetensors files in tests/golden/, made by
   tests/golden/make_golden_io.py) reproduced to 1e-5.
   Run from the repository root, or pass the golden directory as argv[1]. */
#include <stddef.h>
#include <stdlib.h>

/* Allocation failure injection: the alloc_left-th allocation from now fails. */
static long alloc_left = -1;
static void *test_malloc(size_t n) {
    if (alloc_left == 0) return NULL;
    if (alloc_left > 0) alloc_left--;
    return malloc(n);
}
static void *test_realloc(void *p, size_t n) {
    if (alloc_left == 0) return NULL;
    if (alloc_left > 0) alloc_left--;
    return realloc(p, n);
}

/* Write failure injection: the write that would pass byte write_limit fails. */
static long write_limit = -1;
static int test_write_ok(size_t n) {
    if (write_limit < 0) return 1;
    if ((long)n > write_limit) return 0;
    write_limit -= (long)n;
    return 1;
}

#ifndef NN_TEST_LINKED /* tests/run.sh links the shared implementation */
#include "impl.c"               /* with its test seams (tests/seams.h) */
#endif
#include "seams.h"
#include "nn.h"
#include "harness.h"
#include <stdio.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <dirent.h>
#include <unistd.h>
#endif

static char tmpdir[256];

static const char *tpath(const char *name) {
    static char b[4][512];
    static int k = 0;
    char *p = b[k++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;
    *size = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)n + 1);
    *size = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Files in tmpdir (leftover temporaries show up here). */
static int count_files(void) {
    int n = 0;
#if defined(__unix__) || defined(__APPLE__)
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
#endif
    return n;
}

/* Every parameter and buffer byte of m, concatenated (malloc'd). */
static unsigned char *snapshot(nn_module *m, size_t *size) {
    nn_param *p;
    int n, i, pass;
    size_t total = 0, at = 0;
    unsigned char *b;
    for (pass = 0; pass < 2; pass++) {
        p = pass ? nn_buffers(m, &n) : nn_parameters(m, &n);
        for (i = 0; i < n; i++) total += p[i].tensor->numel * ((p[i].tensor->flags & NN_TENSOR_INT64) ? 8 : 4);
    }
    b = (unsigned char *)malloc(total + 1);
    for (pass = 0; pass < 2; pass++) {
        p = pass ? nn_buffers(m, &n) : nn_parameters(m, &n);
        for (i = 0; i < n; i++) {
            size_t k = p[i].tensor->numel * ((p[i].tensor->flags & NN_TENSOR_INT64) ? 8 : 4);
            memcpy(b + at, p[i].tensor->data, k);
            at += k;
        }
    }
    *size = total;
    return b;
}

static int same_as(nn_module *m, const unsigned char *snap, size_t size) {
    size_t n;
    unsigned char *now = snapshot(m, &n);
    int same = n == size && memcmp(now, snap, n) == 0;
    free(now);
    return same;
}

/* Fill every tensor of m with fresh random values (buffers too). */
static void randomize(nn_module *m) {
    nn_param *p;
    int n, i, pass;
    size_t k;
    for (pass = 0; pass < 2; pass++) {
        p = pass ? nn_buffers(m, &n) : nn_parameters(m, &n);
        for (i = 0; i < n; i++)
            if (!(p[i].tensor->flags & NN_TENSOR_INT64))
                for (k = 0; k < p[i].tensor->numel; k++) p[i].tensor->data[k] = nn_rand_normal();
    }
}

/* A safetensors buffer from a JSON header and data bytes (malloc'd). */
static unsigned char *make_st(const char *json, const void *data, size_t dsize, size_t *size) {
    size_t h = strlen(json), i;
    unsigned char *b = (unsigned char *)malloc(8 + h + dsize + 1);
    for (i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, json, h);
    if (dsize) memcpy(b + 8 + h, data, dsize);
    *size = 8 + h + dsize;
    return b;
}

/* Whether n floats equal the little-endian float32 bytes at le, bit for bit
   (a file's bytes are little-endian on every host). */
static int same_as_le(const float *t, const unsigned char *le, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u = (uint32_t)le[4 * i] | (uint32_t)le[4 * i + 1] << 8 | (uint32_t)le[4 * i + 2] << 16 |
                     (uint32_t)le[4 * i + 3] << 24, v;
        memcpy(&v, &t[i], 4);
        if (u != v) return 0;
    }
    return 1;
}

static nn_save_opts no_save_opts(void) {
    nn_save_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

static nn_load_opts strict(void) {
    nn_load_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

/* Load json+data into m (a Linear(2,3) unless given) and check status, message
   substring and that m is unchanged. */
static void expect_fail(nn_module *m, const char *json, const void *data, size_t dsize, nn_status want,
                        const char *msg) {
    size_t size, ssize;
    unsigned char *b = make_st(json, data, dsize, &size);
    unsigned char *snap = snapshot(m, &ssize);
    nn_status st = nn_load_mem(m, b, size, strict());
    NN_TEST_CHECK(st == want, "%s: status %d, want %d (%s)", json, (int)st, (int)want, nn_error_string());
    NN_TEST_CHECK(strstr(nn_error_string(), msg) != NULL, "message \"%s\" lacks \"%s\"", nn_error_string(), msg);
    NN_TEST_CHECK(same_as(m, snap, ssize), "%s: module changed by a failed load", json);
    free(snap);
    free(b);
}

/* ---- round trips ---- */

static void roundtrip(const char *what, nn_module *(*make)(void)) {
    nn_module *a, *b;
    size_t sa, sb, fsize, msize;
    unsigned char *snap, *file;
    void *mem;
    nn_status st;
    const char *path = tpath("rt.safetensors");
    nn_seed(11);
    a = make();
    randomize(a);
    nn_seed(12);
    b = make();
    randomize(b);
    snap = snapshot(a, &sa);
    st = nn_save(a, path);
    NN_TEST_CHECK(st == NN_OK, "%s: nn_save: %s", what, nn_error_string());
    st = nn_load(b, path, strict());
    NN_TEST_CHECK(st == NN_OK, "%s: nn_load: %s", what, nn_error_string());
    NN_TEST_CHECK(same_as(b, snap, sa), "%s: file round trip is bitwise", what);
    /* memory: the same bytes as the file */
    st = nn_save_mem(a, no_save_opts(), &mem, &msize);
    NN_TEST_CHECK(st == NN_OK, "%s: nn_save_mem", what);
    file = read_all(path, &fsize);
    NN_TEST_CHECK(file && fsize == msize && memcmp(file, mem, msize) == 0, "%s: file == memory bytes", what);
    NN_TEST_CHECK(msize >= 8 && (file[0] | file[1] << 8) % 8 == 0, "%s: header padded to 8", what);
    nn_module_free(b);
    nn_seed(13);
    b = make();
    randomize(b);
    st = nn_load_mem(b, mem, msize, strict());
    NN_TEST_CHECK(st == NN_OK && same_as(b, snap, sa), "%s: memory round trip is bitwise", what);
    (void)sb;
    free(file);
    nn_free(mem);
    free(snap);
    nn_module_free(a);
    nn_module_free(b);
}

static nn_conv_opts copts(int k, int groups) {
    nn_conv_opts o;
    memset(&o, 0, sizeof o);
    o.kernel = k;
    o.groups = groups;
    return o;
}
static nn_module *mk_linear(void) { return nn_linear(5, 3); }
static nn_module *mk_linear_nobias(void) { return nn_linear_nobias(4, 2); }
static nn_module *mk_conv1d(void) { return nn_conv1d(2, 4, copts(3, 1)); }
static nn_module *mk_conv2d(void) { return nn_conv2d(4, 6, copts(3, 2)); }
static nn_module *mk_convt(void) { return nn_conv_transpose2d(3, 2, copts(2, 1)); }
static nn_module *mk_bn1d(void) { return nn_batchnorm1d(7); }
static nn_module *mk_bn2d(void) { return nn_batchnorm2d(3); }
static nn_module *mk_nested(void) {
    nn_pool_opts po;
    memset(&po, 0, sizeof po);
    po.kernel = 2;
    return nn_sequential(nn_sequential(nn_conv2d(1, 2, copts(3, 1)), nn_batchnorm2d(2), nn_relu(), NULL),
                         nn_maxpool2d(po), nn_flatten(),
                         nn_sequential(nn_linear(8, 4), nn_batchnorm1d(4), NULL), nn_linear(4, 2), NULL);
}

static void test_roundtrips(void) {
    roundtrip("linear", mk_linear);
    roundtrip("linear_nobias", mk_linear_nobias);
    roundtrip("conv1d", mk_conv1d);
    roundtrip("conv2d groups 2", mk_conv2d);
    roundtrip("conv_transpose2d", mk_convt);
    roundtrip("batchnorm1d", mk_bn1d);
    roundtrip("batchnorm2d", mk_bn2d);
    roundtrip("nested sequential", mk_nested);
}

/* The exact bytes: header JSON, names, padding, little-endian data; special
   float values survive bitwise. */
static void test_layout(void) {
    nn_module *m = nn_linear(2, 1), *b;
    void *mem;
    size_t size, h, i;
    unsigned char *p;
    const char *want = "{\"weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
                       "\"bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                       "\"__metadata__\":{\"format\":\"pt\",\"nn.h\":\"" NN_VERSION_STRING "\"}}";
    uint32_t bits[3] = {0x3f800000u, 0x7fc01234u /* a NaN payload */, 0x80000000u /* -0 */};
    nn_status st;
    memcpy(m->params[0].tensor->data, bits, 8);
    memcpy(m->params[1].tensor->data, bits + 2, 4);
    st = nn_save_mem(m, no_save_opts(), &mem, &size);
    NN_TEST_CHECK(st == NN_OK, "save_mem linear(2,1)");
    p = (unsigned char *)mem;
    h = 0;
    for (i = 0; i < 8; i++) h |= (size_t)p[i] << (8 * i);
    NN_TEST_CHECK(h % 8 == 0 && size == 8 + h + 12, "length %zu, size %zu", h, size);
    NN_TEST_CHECK(h >= strlen(want) && memcmp(p + 8, want, strlen(want)) == 0, "header JSON: %.*s", (int)h,
                  (const char *)p + 8);
    for (i = 8 + strlen(want); i < 8 + h; i++)
        if (p[i] != ' ') break;
    NN_TEST_CHECK(i == 8 + h, "padded with spaces");
    NN_TEST_CHECK(p[8 + h] == 0x00 && p[8 + h + 1] == 0x00 && p[8 + h + 2] == 0x80 && p[8 + h + 3] == 0x3f,
                  "1.0f little-endian");
    NN_TEST_CHECK(p[8 + h + 4] == 0x34 && p[8 + h + 5] == 0x12 && p[8 + h + 6] == 0xc0 && p[8 + h + 7] == 0x7f,
                  "NaN payload little-endian");
    b = nn_linear(2, 1);
    st = nn_load_mem(b, mem, size, strict());
    NN_TEST_CHECK(st == NN_OK && memcmp(b->params[0].tensor->data, bits, 8) == 0 &&
                      memcmp(b->params[1].tensor->data, bits + 2, 4) == 0,
                  "NaN payload and -0 come back bitwise");
    nn_free(mem);
    nn_module_free(b);
    nn_module_free(m);
}

/* ---- int64 buffers ---- */

/* A module with an int64 buffer "count" of n values (floats allocated 2n). */
static nn_module *int_module(int n) {
    nn_module *m = nn_module_new("Counter", NULL);
    nn_tensor *t = nn_zeros(NULL, NN_SHAPE(2 * n));
    t->shape[0] = n;
    t->numel = (size_t)n;
    t->flags |= NN_TENSOR_INT64;
    nn_module_add_buffer(m, "count", t);
    nn_module_add_param(m, "w", nn_zeros(NULL, NN_SHAPE(2)));
    return m;
}
static int64_t int_at(nn_module *m, int i) {
    int64_t v;
    memcpy(&v, (unsigned char *)m->buffers[0].tensor->data + 8 * i, 8);
    return v;
}

static void test_int64(void) {
    nn_module *a = int_module(3), *b = int_module(3);
    int64_t vals[3] = {3, -1, INT64_MAX};
    void *mem;
    size_t size, fsize;
    unsigned char *p, *f;
    const unsigned char *d;
    nn_status st;
    memcpy(a->buffers[0].tensor->data, vals, sizeof vals);
    a->params[0].tensor->data[0] = 2.5f;
    st = nn_save_mem(a, no_save_opts(), &mem, &size);
    p = (unsigned char *)mem;
    NN_TEST_CHECK(st == NN_OK && strstr((char *)p + 8, "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}") &&
                      strstr((char *)p + 8, "\"count\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[8,32]}"),
                  "int64 buffer written as I64");
    d = p + size - 24;
    NN_TEST_CHECK(d[0] == 3 && d[1] == 0 && d[8] == 0xff && d[15] == 0xff && d[16] == 0xff && d[23] == 0x7f,
                  "I64 little-endian");
    st = nn_load_mem(b, mem, size, strict());
    NN_TEST_CHECK(st == NN_OK && int_at(b, 0) == 3 && int_at(b, 1) == -1 && int_at(b, 2) == INT64_MAX &&
                      b->params[0].tensor->data[0] == 2.5f,
                  "I64 round trip");
    nn_free(mem);
    /* other integer dtypes into an int64 buffer */
    {
        unsigned char data[8 + 12];
        static const unsigned char i32[12] = {0xfe, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0, 0, 0, 0x80};
        static const unsigned char u8[3] = {0, 200, 255};
        static const unsigned char bl[3] = {1, 0, 1};
        memset(data, 0, 8);
        memcpy(data + 8, i32, 12);
        f = make_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"count\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[8,20]}}",
                    data, 20, &fsize);
        st = nn_load_mem(b, f, fsize, strict());
        NN_TEST_CHECK(st == NN_OK && int_at(b, 0) == -2 && int_at(b, 1) == 7 && int_at(b, 2) == INT32_MIN,
                      "I32 into int64: %s", nn_error_string());
        free(f);
        memcpy(data + 8, u8, 3);
        f = make_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"count\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}",
                    data, 11, &fsize);
        st = nn_load_mem(b, f, fsize, strict());
        NN_TEST_CHECK(st == NN_OK && int_at(b, 0) == 0 && int_at(b, 1) == 200 && int_at(b, 2) == 255, "U8 into int64");
        free(f);
        memcpy(data + 8, bl, 3);
        f = make_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"count\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[8,11]}}",
                    data, 11, &fsize);
        st = nn_load_mem(b, f, fsize, strict());
        NN_TEST_CHECK(st == NN_OK && int_at(b, 0) == 1 && int_at(b, 1) == 0 && int_at(b, 2) == 1, "BOOL into int64");
        free(f);
        memset(data, 0, sizeof data);
        expect_fail(b,
                    "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"count\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}",
                    data, 20, NN_ERR_FORMAT,
                    "nn_load_mem: tensor \"count\" has dtype F32, expected an integer dtype (an int64 buffer)");
    }
    {
        unsigned char data[8 + 24];
        memset(data, 0, sizeof data);
        data[8 + 23] = 0x80; /* 2^63 as U64 */
        expect_fail(b,
                    "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"count\":{\"dtype\":\"U64\",\"shape\":[3],\"data_offsets\":[8,32]}}",
                    data, 32, NN_ERR_FORMAT,
                    "tensor \"count\": U64 value 9223372036854775808 is out of range for int64");
    }
    nn_module_free(a);
    nn_module_free(b);
}

/* ---- dtype conversions into float ---- */

static void conv_case(const char *dtype, const unsigned char *bytes, size_t esize, const float *want) {
    char json[512];
    unsigned char data[64];
    size_t size;
    unsigned char *f;
    nn_module *m = nn_linear(2, 3);
    float w[6], bias[3] = {0.5f, 0.25f, -1.0f};
    int i;
    nn_status st;
    memcpy(data, bytes, 6 * esize);
    for (i = 0; i < 3; i++) {
        uint32_t u;
        memcpy(&u, &bias[i], 4);
        data[6 * esize + 4 * i] = (unsigned char)u;
        data[6 * esize + 4 * i + 1] = (unsigned char)(u >> 8);
        data[6 * esize + 4 * i + 2] = (unsigned char)(u >> 16);
        data[6 * esize + 4 * i + 3] = (unsigned char)(u >> 24);
    }
    snprintf(json, sizeof json,
             "{\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[%zu,%zu]},"
             "\"weight\":{\"dtype\":\"%s\",\"shape\":[3,2],\"data_offsets\":[0,%zu]}}",
             6 * esize, 6 * esize + 12, dtype, 6 * esize);
    f = make_st(json, data, 6 * esize + 12, &size);
    st = nn_load_mem(m, f, size, strict());
    NN_TEST_CHECK(st == NN_OK, "%s: %s", dtype, nn_error_string());
    memcpy(w, m->params[0].tensor->data, sizeof w);
    NN_TEST_CHECK(memcmp(w, want, sizeof w) == 0, "%s: converted values %g %g %g %g %g %g", dtype, (double)w[0],
                  (double)w[1], (double)w[2], (double)w[3], (double)w[4], (double)w[5]);
    NN_TEST_CHECK(memcmp(m->params[1].tensor->data, bias, sizeof bias) == 0, "%s: F32 bias", dtype);
    free(f);
    nn_module_free(m);
}

static void test_conversions(void) {
    /* F16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), -0 */
    static const unsigned char f16[12] = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x80};
    static const float f16w[6] = {1.0f, -2.0f, 0.5f, 65504.0f, 5.9604644775390625e-8f, -0.0f};
    /* BF16: 1, -2, 3.140625 (0x4049), 0.5, -inf, 2^-133 (subnormal 0x0001) */
    static const unsigned char bf16[12] = {0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40, 0x00, 0x3f, 0x80, 0xff, 0x01, 0x00};
    float bf16w[6] = {1.0f, -2.0f, 3.140625f, 0.5f, -HUGE_VALF, 0.0f};
    /* F64: 1, -2.5, 0.1 (rounds), 1e300 (to inf), -1e-50 (to -0), 3 */
    double f64v[6] = {1.0, -2.5, 0.1, 1e300, -1e-50, 3.0};
    float f64w[6] = {1.0f, -2.5f, 0.1f, HUGE_VALF, -0.0f, 3.0f};
    unsigned char f64[48];
    static const unsigned char i64[48] = {1, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 7, 0, 0, 0, 0, 0, 0, 0};
    static const float i64w[6] = {1.0f, -2.0f, 256.0f, -9223372036854775808.0f, 9223372036854775807.0f, 7.0f};
    static const unsigned char i32[24] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0,
                                          0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f, 9, 0, 0, 0};
    static const float i32w[6] = {1.0f, -1.0f, 65536.0f, -2147483648.0f, 2147483647.0f, 9.0f};
    static const unsigned char i16[12] = {1, 0, 0xff, 0xff, 0, 0x80, 0xff, 0x7f, 0, 1, 3, 0};
    static const float i16w[6] = {1.0f, -1.0f, -32768.0f, 32767.0f, 256.0f, 3.0f};
    static const unsigned char i8[6] = {1, 0xff, 0x80, 0x7f, 0, 5};
    static const float i8w[6] = {1.0f, -1.0f, -128.0f, 127.0f, 0.0f, 5.0f};
    static const unsigned char u8[6] = {1, 0xff, 0x80, 0x7f, 0, 5};
    static const float u8w[6] = {1.0f, 255.0f, 128.0f, 127.0f, 0.0f, 5.0f};
    static const unsigned char bl[6] = {1, 0, 1, 1, 0, 0};
    static const float blw[6] = {1.0f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f};
    int i, k;
    {
        uint32_t u = 0x00010000u; /* bf16 0x0001 is the f32 bit pattern 0x00010000 */
        memcpy(&bf16w[5], &u, 4);
    }
    for (i = 0; i < 6; i++) {
        uint64_t u;
        memcpy(&u, &f64v[i], 8);
        for (k = 0; k < 8; k++) f64[8 * i + k] = (unsigned char)(u >> (8 * k));
    }
    conv_case("F16", f16, 2, f16w);
    conv_case("BF16", bf16, 2, bf16w);
    conv_case("F64", f64, 8, f64w);
    conv_case("I64", i64, 8, i64w);
    conv_case("I32", i32, 4, i32w);
    conv_case("I16", i16, 2, i16w);
    conv_case("I8", i8, 1, i8w);
    conv_case("U8", u8, 1, u8w);
    conv_case("BOOL", bl, 1, blw);
}

/* ---- validation errors (a Linear(2,3): "weight" [3,2], "bias" [3]) ---- */

#define JW "\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}"
#define JB "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"

static void test_errors(void) {
    nn_module *m = nn_linear(2, 3);
    unsigned char z[64];
    char json[400];
    int i;
    memset(z, 0, sizeof z);
    for (i = 0; i < 64; i++) z[i] = (unsigned char)(i * 37 + 1);
    /* names */
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}}", z, 24,
                NN_ERR_FORMAT, "nn_load_mem: 1 tensor of the module is missing from the file: \"bias\"");
    expect_fail(m, "{}", z, 0, NN_ERR_FORMAT,
                "nn_load_mem: 2 tensors of the module are missing from the file: \"weight\", \"bias\"");
    expect_fail(m, "{" JW "," JB ",\"extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]}}", z, 40,
                NN_ERR_FORMAT, "nn_load_mem: 1 tensor in the file is not in the module: \"extra\"");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}}", z, 36, NN_ERR_FORMAT,
                "nn_load_mem: 1 tensor of the module is missing from the file: \"bias\"; "
                "1 tensor in the file is not in the module: \"b\"");
    /* shapes and dtypes */
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}," JB "}", z, 36,
                NN_ERR_FORMAT, "nn_load_mem: tensor \"weight\" has shape [2,3], expected [3,2]");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}," JB "}", z, 36,
                NN_ERR_FORMAT, "tensor \"weight\" has shape [6], expected [3,2]");
    expect_fail(m, "{" JW ",\"bias\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]}}", z, 28,
                NN_ERR_FORMAT, "tensor \"bias\" has shape [], expected [3]");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[3,2],\"data_offsets\":[0,6]},"
                   "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[6,18]}}", z, 18,
                NN_ERR_FORMAT, "tensor \"weight\" has dtype F8_E4M3, expected F32, F16, BF16, F64 or an integer dtype");
    expect_fail(m, "{\"weight\":{\"dtype\":\"C64\",\"shape\":[3,2],\"data_offsets\":[0,48]}," JB "}", z, 60,
                NN_ERR_FORMAT, "header: tensor \"weight\": unknown dtype \"C64\"");
    /* offsets */
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                   "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[20,32]}}", z, 32,
                NN_ERR_FORMAT,
                "tensor \"bias\" (data_offsets [20,32]) overlaps tensor \"weight\" (data_offsets [0,24])");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                   "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", z, 24,
                NN_ERR_FORMAT, "overlaps tensor");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[24,0]}," JB "}", z, 36,
                NN_ERR_FORMAT, "tensor \"weight\": data_offsets [24,0] are reversed");
    expect_fail(m, "{" JW ",\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[28,40]}}", z, 40,
                NN_ERR_FORMAT, "a hole of 4 bytes before tensor \"bias\" (data_offsets [28,40])");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[12,36]},"
                   "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[36,48]}}", z, 48,
                NN_ERR_FORMAT, "a hole of 12 bytes before tensor \"weight\"");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,20]},"
                   "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[20,32]}}", z, 32,
                NN_ERR_FORMAT, "tensor \"weight\": data_offsets [0,20] span 20 bytes, but 6 F32 elements take 24");
    expect_fail(m, "{" JW "," JB "}", z, 40, NN_ERR_FORMAT,
                "the tensors take 36 bytes but the data section has 40 (trailing bytes)");
    expect_fail(m, "{" JW "," JB "}", z, 30, NN_ERR_FORMAT,
                "the tensors take 36 bytes but the data section has 30 (truncated file)");
    /* duplicates and metadata */
    expect_fail(m, "{" JW "," JB ",\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[36,60]}}", z, 60,
                NN_ERR_FORMAT, "header: tensor \"weight\" appears twice");
    expect_fail(m, "{" JW "," JB ",\"__metadata__\":{\"a\":1}}", z, 36, NN_ERR_FORMAT,
                "\"__metadata__\" value of \"a\" is not a string");
    expect_fail(m, "{" JW "," JB ",\"__metadata__\":{\"a\":{}}}", z, 36, NN_ERR_FORMAT,
                "\"__metadata__\" value of \"a\" is not a string");
    expect_fail(m, "{" JW "," JB ",\"__metadata__\":[]}", z, 36, NN_ERR_FORMAT, "\"__metadata__\" is not an object");
    expect_fail(m, "{\"__metadata__\":{},\"__metadata__\":{}," JW "," JB "}", z, 36, NN_ERR_FORMAT,
                "\"__metadata__\" given twice");
    expect_fail(m, "{" JW "," JB ",\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", z, 36, NN_ERR_FORMAT,
                "\"__metadata__\" key \"k\" appears twice");
    /* the JSON grammar */
    expect_fail(m, "[]", z, 0, NN_ERR_FORMAT, "nn_load_mem: header: the header is not a JSON object at byte 8");
    expect_fail(m, "{" JW "," JB "} x", z, 36, NN_ERR_FORMAT, "data after the header's JSON object");
    expect_fail(m, "{" JW "," JB ",}", z, 36, NN_ERR_FORMAT, "expected a string");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[03,2],\"data_offsets\":[0,24]}," JB "}", z, 36,
                NN_ERR_FORMAT, "tensor \"weight\": integer with a leading zero");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[-3,2],\"data_offsets\":[0,24]}," JB "}", z, 36,
                NN_ERR_FORMAT, "tensor \"weight\": negative number");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3.0,2],\"data_offsets\":[0,24]}," JB "}", z, 36,
                NN_ERR_FORMAT, "expected an integer, found a fraction or exponent");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,99999999999999999999]}," JB "}",
                z, 36, NN_ERR_FORMAT, "integer too large");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,24]}," JB "}",
                z, 36, NN_ERR_FORMAT, "tensor \"weight\": the shape's element count overflows");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824,2],\"data_offsets\":[0,24]}," JB "}",
                z, 36, NN_ERR_FORMAT, "tensor \"weight\": the shape's byte count overflows");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
                   "\"data_offsets\":[0,4]}}", z, 4, NN_ERR_FORMAT, "more than 16 dimensions");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2]}," JB "}", z, 36, NN_ERR_FORMAT,
                "tensor \"weight\": no \"data_offsets\"");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24],\"x\":1}," JB "}", z,
                36, NN_ERR_FORMAT, "unknown key \"x\"");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}," JB "}",
                z, 36, NN_ERR_FORMAT, "\"dtype\" given twice");
    expect_fail(m, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0]}," JB "}", z, 36,
                NN_ERR_FORMAT, "\"data_offsets\" needs two integers");
    expect_fail(m, "{\"we\\xight\":{}}", z, 0, NN_ERR_FORMAT, "invalid escape in a string");
    expect_fail(m, "{\"we\\u12", z, 0, NN_ERR_FORMAT, "invalid \\u escape");
    expect_fail(m, "{\"\\ud800\":{}}", z, 0, NN_ERR_FORMAT, "unpaired surrogate");
    expect_fail(m, "{\"\\udc00\\ud800\":{}}", z, 0, NN_ERR_FORMAT, "unpaired surrogate");
    expect_fail(m, "{\"\\u0000\":{}}", z, 0, NN_ERR_FORMAT, "NUL character in a string");
    expect_fail(m, "{\"a\xff\":{}}", z, 0, NN_ERR_FORMAT, "invalid UTF-8 in a string");
    expect_fail(m, "{\"a\xc0\xaf\":{}}", z, 0, NN_ERR_FORMAT, "invalid UTF-8 in a string"); /* overlong */
    expect_fail(m, "{\"a\xed\xa0\x80\":{}}", z, 0, NN_ERR_FORMAT, "invalid UTF-8 in a string"); /* surrogate */
    expect_fail(m, "{\"a\tb\":{}}", z, 0, NN_ERR_FORMAT, "control character in a string");
    expect_fail(m, "{\"weight", z, 0, NN_ERR_FORMAT, "unterminated string");
    expect_fail(m, "{\"weight\" {}}", z, 0, NN_ERR_FORMAT, "expected ':'");
    expect_fail(m, "{\"weight\":true}", z, 0, NN_ERR_FORMAT, "tensor \"weight\": expected an object");
    expect_fail(m, "{ ", z, 0, NN_ERR_FORMAT, "expected a string at byte 10");
    /* escapes decode: "\u0077eight" is "weight", and white space is allowed */
    {
        size_t size;
        unsigned char *f;
        nn_status st;
        snprintf(json, sizeof json,
                 " { \"\\u0077eight\" : {\"dtype\":\"F32\",\"shape\":[ 3 , 2 ],\"data_offsets\":[0,24]},\n\t"
                 "\"bi\\u0061s\":{\"data_offsets\":[24,36],\"shape\":[3],\"dtype\":\"F32\"}}   ");
        f = make_st(json, z, 36, &size);
        st = nn_load_mem(m, f, size, strict());
        NN_TEST_CHECK(st == NN_OK && same_as_le(m->params[0].tensor->data, z, 6) &&
                          same_as_le(m->params[1].tensor->data, z + 24, 3),
                      "escaped names, any key order, white space: %s", nn_error_string());
        free(f);
        /* tensors in the JSON in another order than in the data */
        f = make_st("{\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[12,36]},"
                    "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", z, 36, &size);
        st = nn_load_mem(m, f, size, strict());
        NN_TEST_CHECK(st == NN_OK && same_as_le(m->params[0].tensor->data, z + 12, 6) &&
                          same_as_le(m->params[1].tensor->data, z, 3),
                      "data order differs from header order: %s", nn_error_string());
        free(f);
    }
    /* absurd header lengths */
    {
        unsigned char b[64];
        size_t snap_n;
        unsigned char *snap = snapshot(m, &snap_n);
        static const uint64_t lens[4] = {UINT64_MAX, (uint64_t)1 << 63, ((uint64_t)100 << 20) + 1, 57};
        static const char *msgs[4] = {"header length 18446744073709551615 exceeds the 100 MB limit",
                                      "header length 9223372036854775808 exceeds the 100 MB limit",
                                      "header length 104857601 exceeds the 100 MB limit",
                                      "header length 57 exceeds the 56 bytes after it (truncated?)"};
        int k, q;
        memset(b, ' ', sizeof b);
        b[8] = '{';
        b[9] = '}';
        for (k = 0; k < 4; k++) {
            nn_status st;
            for (q = 0; q < 8; q++) b[q] = (unsigned char)(lens[k] >> (8 * q));
            st = nn_load_mem(m, b, sizeof b, strict());
            NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), msgs[k]), "absurd length %d: %s", k,
                          nn_error_string());
        }
        for (q = 0; q < 8; q++) b[q] = 0;
        NN_TEST_CHECK(nn_load_mem(m, b, sizeof b, strict()) == NN_ERR_FORMAT &&
                          strstr(nn_error_string(), "header length 0 is too short"),
                      "zero header length: %s", nn_error_string());
        NN_TEST_CHECK(nn_load_mem(m, b, 5, strict()) == NN_ERR_FORMAT &&
                          strstr(nn_error_string(), "nn_load_mem: 5 bytes, too short for a safetensors header length"),
                      "5-byte file: %s", nn_error_string());
        NN_TEST_CHECK(same_as(m, snap, snap_n), "unchanged after absurd lengths");
        free(snap);
    }
    nn_module_free(m);
}

/* A file name in an error: the example of the docs, exactly. */
static void test_file_messages(void) {
    nn_module *a = nn_module_new("Net", NULL), *b = nn_module_new("Net", NULL);
    nn_status st;
    const char *p = tpath("fc.safetensors");
    char want[600];
    nn_module_add_child(a, "fc1", nn_linear(784, 256));
    nn_module_add_child(b, "fc1", nn_linear(784, 128));
    st = nn_save(a, p);
    NN_TEST_CHECK(st == NN_OK, "save fc1");
    st = nn_load(b, p, strict());
    snprintf(want, sizeof want, "nn_load: %s: tensor \"fc1.weight\" has shape [256,784], expected [128,784]", p);
    NN_TEST_CHECK(st == NN_ERR_FORMAT && strcmp(nn_error_string(), want) == 0, "got \"%s\"", nn_error_string());
    {   /* 800 KB: the writer's 16 KB chunks, bitwise, and a failure midway */
        nn_module *c = nn_module_new("Net", NULL);
        size_t sn, fn, gn;
        unsigned char *snap, *f, *g;
        nn_module_add_child(c, "fc1", nn_linear(784, 256));
        snap = snapshot(a, &sn);
        NN_TEST_CHECK(nn_load(c, p, strict()) == NN_OK && same_as(c, snap, sn), "800 KB round trip");
        f = read_all(p, &fn);
        randomize(c);
        write_limit = 300000;
        st = nn_save(c, p);
        write_limit = -1;
        g = read_all(p, &gn);
        NN_TEST_CHECK(st == NN_ERR_IO && f && g && fn == gn && memcmp(f, g, fn) == 0,
                      "800 KB save failing midway keeps the old file");
        free(f);
        free(g);
        free(snap);
        nn_module_free(c);
    }
    st = nn_load(b, tpath("does_not_exist.safetensors"), strict());
    NN_TEST_CHECK(st == NN_ERR_IO && strstr(nn_error_string(), "nn_load: ") &&
                      strstr(nn_error_string(), "does_not_exist.safetensors: cannot open"),
                  "missing file: %s", nn_error_string());
    remove(p);
    nn_module_free(a);
    nn_module_free(b);
}

/* ---- corruption: every cut point, every header bit ---- */

static void test_corruption(void) {
    nn_module *src, *m;
    void *mem;
    size_t size, cut, snap_n, h, byte;
    unsigned char *snap, *b, *want;
    size_t want_n;
    int bit, fails = 0, oks = 0, bad = 0, changed = 0;
    nn_seed(21);
    src = nn_sequential(nn_linear(2, 3), nn_batchnorm1d(3), NULL);
    randomize(src);
    nn_seed(22);
    m = nn_sequential(nn_linear(2, 3), nn_batchnorm1d(3), NULL);
    randomize(m);
    snap = snapshot(m, &snap_n);
    want = snapshot(src, &want_n);
    NN_TEST_CHECK(nn_save_mem(src, no_save_opts(), &mem, &size) == NN_OK, "save_mem");
    b = (unsigned char *)malloc(size);
    for (cut = 0; cut < size; cut++) {
        nn_status st;
        memcpy(b, mem, cut);
        st = nn_load_mem(m, b, cut, strict());
        if (st != NN_ERR_FORMAT || !strstr(nn_error_string(), "nn_load_mem: ")) bad++;
        if (!same_as(m, snap, snap_n)) changed++;
    }
    NN_TEST_CHECK(bad == 0, "%d of %zu cut points not NN_ERR_FORMAT", bad, size);
    NN_TEST_CHECK(changed == 0, "%d cut points changed the module", changed);
    /* the same through files, at every cut point */
    bad = changed = 0;
    for (cut = 0; cut < size; cut++) {
        const char *p = tpath("cut.safetensors");
        write_all(p, mem, cut);
        if (nn_load(m, p, strict()) != NN_ERR_FORMAT || !strstr(nn_error_string(), "nn_load: ")) bad++;
        if (!same_as(m, snap, snap_n)) changed++;
        remove(p);
    }
    NN_TEST_CHECK(bad == 0 && changed == 0, "file cut points: %d bad, %d changed", bad, changed);
    /* every bit of the length and the header: a format error with m unchanged,
       or (a flip inside a metadata string, say) a complete correct load */
    h = 0;
    for (byte = 0; byte < 8; byte++) h |= (size_t)((unsigned char *)mem)[byte] << (8 * byte);
    bad = changed = 0;
    for (byte = 0; byte < 8 + h; byte++)
        for (bit = 0; bit < 8; bit++) {
            nn_status st;
            memcpy(b, mem, size);
            b[byte] ^= (unsigned char)(1u << bit);
            st = nn_load_mem(m, b, size, strict());
            if (st == NN_OK) {
                oks++;
                if (!same_as(m, want, want_n)) changed++;
                /* put m back to its own values for the next flips */
                {
                    nn_param *p;
                    int n, i, pass;
                    size_t at = 0;
                    for (pass = 0; pass < 2; pass++) {
                        p = pass ? nn_buffers(m, &n) : nn_parameters(m, &n);
                        for (i = 0; i < n; i++) {
                            size_t k = p[i].tensor->numel * ((p[i].tensor->flags & NN_TENSOR_INT64) ? 8 : 4);
                            memcpy(p[i].tensor->data, snap + at, k);
                            at += k;
                        }
                    }
                }
            } else {
                fails++;
                if (st != NN_ERR_FORMAT) bad++;
                if (!same_as(m, snap, snap_n)) changed++;
            }
        }
    NN_TEST_CHECK(bad == 0 && changed == 0, "header bit flips: %d bad statuses, %d wrong modules", bad, changed);
    NN_TEST_CHECK(fails > 8 * (int)h / 2, "most flips fail (%d failed, %d loaded)", fails, oks);
    free(b);
    free(snap);
    free(want);
    nn_free(mem);
    nn_module_free(src);
    nn_module_free(m);
}

/* ---- allocation and write failures ---- */

static void test_failures(void) {
    nn_module *a, *b, *m;
    void *mem;
    size_t size, fsize, snap_n;
    unsigned char *f, *snap;
    const char *p = tpath("atomic.safetensors");
    long k, lim;
    int bad = 0, files, oks = 0;
    nn_seed(31);
    a = mk_nested();
    b = mk_nested();
    randomize(a);
    randomize(b);
    NN_TEST_CHECK(nn_save(a, p) == NN_OK, "first save");
    NN_TEST_CHECK(nn_save_mem(a, no_save_opts(), &mem, &size) == NN_OK, "save_mem");
    files = count_files();
    /* a write that fails after lim bytes leaves the old file and no temporary */
    for (lim = 0; lim <= (long)size; lim += (lim < 64 ? 1 : 61)) {
        nn_status st;
        write_limit = lim;
        st = nn_save(b, p);
        write_limit = -1;
        f = read_all(p, &fsize);
        if (st != NN_ERR_IO || !strstr(nn_error_string(), "write failed") || !f || fsize != size ||
            memcmp(f, mem, size) != 0 || count_files() != files)
            bad++;
        free(f);
    }
    NN_TEST_CHECK(bad == 0, "%d partial writes were not atomic (%s)", bad, nn_error_string());
    {
        char want[600];
        write_limit = 100;
        nn_save(b, p);
        write_limit = -1;
        snprintf(want, sizeof want, "nn_save: %s: write failed (", p);
        NN_TEST_CHECK(strstr(nn_error_string(), want) && strstr(nn_error_string(), "the previous file is untouched"),
                      "write failure message: %s", nn_error_string());
    }
    /* allocation failures during a save: an error or success, never a torn file */
    bad = 0;
    for (k = 0; k < 400; k++) {
        nn_status st;
        alloc_left = k;
        st = nn_save(b, p);
        alloc_left = -1;
        f = read_all(p, &fsize);
        if (st == NN_OK) {
            oks++;
            free(f);
            break;
        }
        if (st != NN_ERR_OOM || !f || fsize != size || memcmp(f, mem, size) != 0 || count_files() != files) bad++;
        free(f);
    }
    NN_TEST_CHECK(bad == 0 && oks == 1, "save under allocation failures: %d bad, %d ok", bad, oks);
    /* allocation failures during a load: NN_ERR_OOM with m unchanged */
    NN_TEST_CHECK(nn_save(a, p) == NN_OK, "resave");
    m = mk_nested();
    nn_seed(32);
    randomize(m);
    snap = snapshot(m, &snap_n);
    bad = oks = 0;
    for (k = 0; k < 400; k++) {
        nn_status st;
        alloc_left = k;
        st = nn_load(m, p, strict());
        alloc_left = -1;
        if (st == NN_OK) {
            oks++;
            break;
        }
        if (st != NN_ERR_OOM || !same_as(m, snap, snap_n)) bad++;
    }
    NN_TEST_CHECK(bad == 0 && oks == 1, "load under allocation failures: %d bad, %d ok (after %ld)", bad, oks, k);
    free(snap);
    /* a directory that does not exist */
    {
        char q[600];
        nn_status st;
        snprintf(q, sizeof q, "%s/no/such/dir/m.safetensors", tmpdir);
        st = nn_save(a, q);
        NN_TEST_CHECK(st == NN_ERR_IO && strstr(nn_error_string(), "cannot create"), "bad directory: %s",
                      nn_error_string());
    }
    remove(p);
    NN_TEST_CHECK(count_files() == files - 1, "no temporaries left");
    nn_free(mem);
    nn_module_free(a);
    nn_module_free(b);
    nn_module_free(m);
}

/* ---- options: prefixes, missing/unexpected, metadata ---- */

static char seen[16][64];
static int nseen = 0;
static void on_mismatch(const char *name, int missing, void *user) {
    (void)user;
    if (nseen < 16) snprintf(seen[nseen++], 64, "%s%s", missing ? "-" : "+", name);
}
static char metas[8][128];
static int nmetas = 0;
static void on_meta(const char *k, const char *v, void *user) {
    (void)user;
    if (nmetas < 8) snprintf(metas[nmetas++], 128, "%s=%s", k, v);
}

static nn_module *net_with_head(void) {
    nn_module *n = nn_module_new("Net", NULL);
    nn_module_add_child(n, "features", nn_sequential(nn_linear(2, 3), NULL));
    nn_module_add_child(n, "head", nn_linear(3, 1));
    return n;
}

static void test_options(void) {
    nn_module *backbone, *net, *net2;
    void *mem;
    size_t size;
    nn_load_opts o;
    nn_status st;
    nn_seed(41);
    backbone = nn_sequential(nn_linear(2, 3), NULL);
    net = net_with_head();
    randomize(net);
    /* a backbone saved on its own ("0.weight") into net.features */
    NN_TEST_CHECK(nn_save_mem(backbone, no_save_opts(), &mem, &size) == NN_OK, "save backbone");
    {
        float head_w[3];
        memcpy(head_w, net->children[1]->params[0].tensor->data, sizeof head_w);
        o = strict();
        o.add_prefix = "features.";
        st = nn_load_mem(net, mem, size, o);
        NN_TEST_CHECK(st == NN_ERR_FORMAT && strstr(nn_error_string(), "2 tensors of the module are missing from "
                                                                       "the file: \"head.weight\", \"head.bias\""),
                      "strict prefix load: %s", nn_error_string());
        o.allow_missing = 1;
        o.on_mismatch = on_mismatch;
        nseen = 0;
        st = nn_load_mem(net, mem, size, o);
        NN_TEST_CHECK(st == NN_OK && memcmp(net->children[0]->children[0]->params[0].tensor->data,
                                            backbone->children[0]->params[0].tensor->data, 24) == 0 &&
                          memcmp(net->children[1]->params[0].tensor->data, head_w, sizeof head_w) == 0,
                      "add_prefix + allow_missing: %s", nn_error_string());
        NN_TEST_CHECK(nseen == 2 && !strcmp(seen[0], "-head.weight") && !strcmp(seen[1], "-head.bias"),
                      "missing names reported (%d)", nseen);
    }
    nn_free(mem);
    /* a full net's file into the bare backbone: strip "features." */
    NN_TEST_CHECK(nn_save_mem(net, no_save_opts(), &mem, &size) == NN_OK, "save net");
    randomize(backbone);
    o = strict();
    o.strip_prefix = "features.";
    st = nn_load_mem(backbone, mem, size, o);
    NN_TEST_CHECK(st == NN_ERR_FORMAT &&
                      strstr(nn_error_string(), "2 tensors in the file are not in the module: \"head.weight\", \"head.bias\""),
                  "strict strip: %s", nn_error_string());
    o.allow_unexpected = 1;
    o.on_mismatch = on_mismatch;
    nseen = 0;
    st = nn_load_mem(backbone, mem, size, o);
    NN_TEST_CHECK(st == NN_OK && memcmp(net->children[0]->children[0]->params[1].tensor->data,
                                        backbone->children[0]->params[1].tensor->data, 12) == 0,
                  "strip_prefix + allow_unexpected: %s", nn_error_string());
    NN_TEST_CHECK(nseen == 2 && !strcmp(seen[0], "+head.weight") && !strcmp(seen[1], "+head.bias"),
                  "unexpected names reported (%d)", nseen);
    nn_free(mem);
    /* user metadata, escaped in JSON and back */
    {
        nn_meta md[2];
        nn_save_opts so = no_save_opts();
        md[0].key = "epoch";
        md[0].value = "3";
        md[1].key = "note \xc3\xa9";
        md[1].value = "a \"quoted\"\n\\ line\x01";
        so.metadata = md;
        so.nmetadata = 2;
        NN_TEST_CHECK(nn_save_mem(net, so, &mem, &size) == NN_OK, "save with metadata");
        NN_TEST_CHECK(strstr((char *)mem + 8, "\"note \xc3\xa9\":\"a \\\"quoted\\\"\\n\\\\ line\\u0001\"") != NULL,
                      "metadata escaped");
        net2 = net_with_head();
        o = strict();
        o.on_metadata = on_meta;
        nmetas = 0;
        st = nn_load_mem(net2, mem, size, o);
        NN_TEST_CHECK(st == NN_OK && nmetas == 4 && !strcmp(metas[0], "format=pt") &&
                          !strcmp(metas[1], "nn.h=" NN_VERSION_STRING) && !strcmp(metas[2], "epoch=3") &&
                          !strcmp(metas[3], "note \xc3\xa9=a \"quoted\"\n\\ line\x01"),
                      "metadata read back (%d)", nmetas);
        nn_free(mem);
        /* and through a file */
        NN_TEST_CHECK(nn_save_ex(net, tpath("meta.safetensors"), so) == NN_OK, "nn_save_ex");
        nmetas = 0;
        NN_TEST_CHECK(nn_load(net2, tpath("meta.safetensors"), o) == NN_OK && nmetas == 4 &&
                          !strcmp(metas[2], "epoch=3"),
                      "nn_save_ex metadata");
        remove(tpath("meta.safetensors"));
        /* misuse */
        nn_set_error_hook(nn_test_record_hook, NULL);
        md[0].key = "format";
        nn_test_msgs = 0;
        st = nn_save_mem(net, so, &mem, &size);
        NN_TEST_CHECK(st == NN_ERR_ARG && nn_test_msgs == 1 && mem == NULL &&
                          !strcmp(nn_test_msg, "nn_save_mem: metadata key \"format\" is reserved for nn.h"),
                      "reserved key: %s", nn_test_msg);
        md[0].key = "note \xc3\xa9";
        st = nn_save_ex(net, tpath("x"), so);
        NN_TEST_CHECK(st == NN_ERR_ARG && !strcmp(nn_test_msg, "nn_save_ex: metadata key \"note \xc3\xa9\" is given twice"),
                      "duplicate key: %s", nn_test_msg);
        st = nn_load(NULL, "x", strict());
        NN_TEST_CHECK(st == NN_ERR_ARG && !strcmp(nn_test_msg, "nn_load: NULL module"), "NULL module: %s", nn_test_msg);
        st = nn_save(net, NULL);
        NN_TEST_CHECK(st == NN_ERR_ARG && !strcmp(nn_test_msg, "nn_save: NULL path"), "NULL path: %s", nn_test_msg);
        {
            nn_module *d = nn_module_new("Dup", NULL);
            nn_module_add_child(d, "a", nn_linear(1, 1));
            nn_module_add_child(d, "a", nn_linear(1, 1));
            st = nn_save_mem(d, no_save_opts(), &mem, &size);
            NN_TEST_CHECK(st == NN_ERR_ARG &&
                              (!strcmp(nn_test_msg, "nn_save_mem: two tensors of the module are named \"a.bias\"") ||
                               !strcmp(nn_test_msg, "nn_save_mem: two tensors of the module are named \"a.weight\"")),
                          "duplicate names: %s", nn_test_msg);
            nn_module_free(d);
        }
        nn_set_error_hook(NULL, NULL);
        nn_module_free(net2);
    }
    /* a name with a character outside the BMP comes back as UTF-8 */
    {
        size_t fs;
        unsigned char *f = make_st("{\"\\ud83d\\ude00\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                                   "\0\0\0\0", 4, &fs);
        o = strict();
        o.allow_unexpected = 1;
        o.allow_missing = 1;
        o.on_mismatch = on_mismatch;
        nseen = 0;
        st = nn_load_mem(backbone, f, fs, o);
        NN_TEST_CHECK(st == NN_OK && nseen == 3 && !strcmp(seen[0], "+\xf0\x9f\x98\x80"), "surrogate pair name");
        free(f);
    }
    nn_module_free(backbone);
    nn_module_free(net);
}

/* ---- PyTorch's files ---- */

/* A module holding two buffers "input" and "output" to read a golden io file. */
static nn_module *io_holder(nn_shape in, nn_shape out) {
    nn_module *h = nn_module_new("IO", NULL);
    nn_module_add_buffer(h, "input", nn_zeros(NULL, in));
    nn_module_add_buffer(h, "output", nn_zeros(NULL, out));
    return h;
}

static void golden(const char *dir, const char *name, nn_module *net, nn_shape in, nn_shape out) {
    char p[600], q[600];
    nn_module *h = io_holder(in, out);
    nn_graph *g = nn_graph_new();
    nn_status st;
    snprintf(p, sizeof p, "%s/%s.safetensors", dir, name);
    snprintf(q, sizeof q, "%s/%s_io.safetensors", dir, name);
    st = nn_load(net, p, strict());
    NN_TEST_CHECK(st == NN_OK, "golden %s: %s", name, nn_error_string());
    st = nn_load(h, q, strict());
    NN_TEST_CHECK(st == NN_OK, "golden %s io: %s", name, nn_error_string());
    if (st == NN_OK) {
        nn_tensor *x = nn_tensor_from(g, h->buffers[0].tensor->data, in), *y;
        nn_train_mode(net, 0);
        y = nn_forward(net, x);
        NN_TEST_CHECK(y && y->numel == h->buffers[1].tensor->numel, "golden %s output shape", name);
        if (y) nn_test_close(y->data, h->buffers[1].tensor->data, y->numel, 1e-5f, 1e-5f, name);
    }
    nn_graph_free(g);
    nn_module_free(h);
}

static void test_golden(const char *dir) {
    nn_module *mlp = nn_sequential(nn_linear(6, 8), nn_relu(), nn_linear(8, 3), NULL);
    nn_pool_opts po;
    nn_conv_opts co;
    nn_module *cnn;
    void *mem;
    size_t size;
    memset(&po, 0, sizeof po);
    po.kernel = 2;
    memset(&co, 0, sizeof co);
    co.kernel = 3;
    co.padding = 1;
    cnn = nn_sequential(nn_conv2d(1, 3, co), nn_batchnorm2d(3), nn_relu(), nn_maxpool2d(po), nn_flatten(),
                        nn_linear(3 * 4 * 4, 5), NULL);
    golden(dir, "mlp", mlp, NN_SHAPE(4, 6), NN_SHAPE(4, 3));
    golden(dir, "cnn_bn", cnn, NN_SHAPE(2, 1, 8, 8), NN_SHAPE(2, 5));
    {
        nn_tensor *nbt = cnn->children[1]->buffers[2].tensor;
        float v = (nbt->flags & NN_TENSOR_INT64) ? (float)*(int64_t *)(void *)nbt->data : nbt->data[0];
        NN_TEST_CHECK(v == 3.0f, "num_batches_tracked from I64: %g", (double)v);
    }
    /* what nn.h writes, PyTorch's reader (examples/pytorch/import.py) takes;
       here: it loads back into nn.h after a save */
    NN_TEST_CHECK(nn_save_mem(cnn, no_save_opts(), &mem, &size) == NN_OK &&
                      strstr((char *)mem + 8, "\"1.running_var\":{\"dtype\":\"F32\",\"shape\":[3]"),
                  "cnn saved with PyTorch's names");
    nn_free(mem);
    nn_module_free(mlp);
    nn_module_free(cnn);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    nn_test_malloc_hook = test_malloc; /* the allocation and write hooks of tests/seams.h */
    nn_test_realloc_hook = test_realloc;
    nn_test_write_hook = test_write_ok;
#if defined(__unix__) || defined(__APPLE__)
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nn_test_io_%ld", (long)getpid());
#else
    snprintf(tmpdir, sizeof tmpdir, "nn_test_io_tmp");
#endif
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
        if (system(cmd) != 0) printf("cannot make %s\n", tmpdir);
    }
    test_roundtrips();
    test_layout();
    test_int64();
    test_conversions();
    test_errors();
    test_file_messages();
    test_corruption();
    test_failures();
    test_options();
    test_golden(dir);
    {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0) printf("cannot remove %s\n", tmpdir);
    }
    return nn_test_summary("test_io");
}
