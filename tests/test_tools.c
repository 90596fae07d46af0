/* Training tools: the PNG writer (decoded back with nn.h's own inflate, CRCs
   and Adler-32 checked by an independent implementation), hyper-parameter
   search, lottery-ticket pruning under every optimizer, the fixed Hadamard
   classifier, NID interaction ranking and the sanity checks. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

static char last_msg[512];
static int hook_calls = 0;
static void record_hook(const char *msg, void *user) {
    (void)user;
    hook_calls++;
    strncpy(last_msg, msg, sizeof last_msg - 1);
    last_msg[sizeof last_msg - 1] = 0;
}

/* ----- PNG ----- */

/* Bitwise CRC-32 and Adler-32, independent of nn.h's. */
static uint32_t t_crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}
static uint32_t t_adler32(const unsigned char *p, size_t n) {
    uint32_t a = 1, b = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return b << 16 | a;
}
static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

/* Decode a PNG written by nn_png_write: check the signature, every chunk's
   CRC, IHDR, the zlib header and Adler-32; inflate the IDAT data with
   nn_gunzip (wrapped in a gzip member) and undo the filter bytes (all 0).
   Returns the pixels (malloc'd) or NULL. */
static unsigned char *png_decode(const unsigned char *f, size_t n, int *w, int *h, int *ch) {
    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    unsigned char *idat = NULL, *gz, *raw = NULL, *pix;
    size_t idn = 0, pos = 8, rawn = 0, row, y;
    int ok = 1, ctype = -1, seen_end = 0;
    uint32_t want_crc;
    if (n < 8 || memcmp(f, sig, 8) != 0) return NULL;
    idat = (unsigned char *)malloc(n);
    while (pos + 12 <= n && !seen_end) {
        uint32_t len = be32(f + pos);
        const unsigned char *type = f + pos + 4, *data = f + pos + 8;
        if (pos + 12 + len > n) { ok = 0; break; }
        if (t_crc32(type, len + 4) != be32(data + len)) ok = 0;
        if (!memcmp(type, "IHDR", 4)) {
            *w = (int)be32(data);
            *h = (int)be32(data + 4);
            ok &= data[8] == 8 && data[10] == 0 && data[11] == 0 && data[12] == 0;
            ctype = data[9];
        } else if (!memcmp(type, "IDAT", 4)) {
            memcpy(idat + idn, data, len);
            idn += len;
        } else if (!memcmp(type, "IEND", 4)) {
            seen_end = 1;
        }
        pos += 12 + len;
    }
    *ch = ctype == 0 ? 1 : ctype == 4 ? 2 : ctype == 2 ? 3 : ctype == 6 ? 4 : 0;
    ok &= seen_end && pos == n && *ch > 0 && idn >= 6;
    ok &= (idat[0] & 15) == 8 && ((unsigned)idat[0] * 256u + idat[1]) % 31u == 0 && !(idat[1] & 32);
    if (!ok) { free(idat); return NULL; }
    row = (size_t)*w * (size_t)*ch + 1;
    /* The zlib payload (header and Adler-32 stripped) wrapped as a gzip member. */
    gz = (unsigned char *)malloc(idn - 6 + 18);
    memset(gz, 0, 10);
    gz[0] = 0x1f; gz[1] = 0x8b; gz[2] = 8; gz[9] = 255;
    memcpy(gz + 10, idat + 2, idn - 6);
    want_crc = 0;
    {
        /* The gzip trailer's CRC: stored blocks carry their bytes verbatim,
           so it is the CRC of the payloads (nn_gunzip checks it, and the
           result is compared with the pixels below). */
        size_t p = 2, outn = 0;
        unsigned char *tmp = (unsigned char *)malloc(idn);
        int final = 0;
        while (!final && p + 5 <= idn - 4) {
            size_t k = (size_t)idat[p + 1] | (size_t)idat[p + 2] << 8;
            final = idat[p] & 1;
            memcpy(tmp + outn, idat + p + 5, k);
            outn += k;
            p += 5 + k;
        }
        want_crc = t_crc32(tmp, outn);
        put_le32(gz + 10 + idn - 6, want_crc);
        put_le32(gz + 10 + idn - 6 + 4, (uint32_t)outn);
        free(tmp);
    }
    if (nn_gunzip(gz, idn - 6 + 18, &raw, &rawn) != NN_OK) ok = 0;
    free(gz);
    ok = ok && rawn == row * (size_t)*h && t_adler32(raw, rawn) == be32(idat + idn - 4) &&
         t_crc32(raw, rawn) == want_crc;
    free(idat);
    if (!ok) { NN_FREE(raw); return NULL; }
    pix = (unsigned char *)malloc(rawn);
    for (y = 0; y < (size_t)*h; y++) {
        if (raw[y * row] != 0) ok = 0;
        memcpy(pix + y * (row - 1), raw + y * row + 1, row - 1);
    }
    NN_FREE(raw);
    if (!ok) { free(pix); return NULL; }
    return pix;
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long sz;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = (unsigned char *)malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void test_png(void) {
    /* RGB larger than one stored block (65535 bytes) and a gray one. */
    int sizes[3][3] = {{200, 120, 3}, {7, 5, 1}, {3, 2, 4}}, t;
    for (t = 0; t < 3; t++) {
        int W = sizes[t][0], H = sizes[t][1], C = sizes[t][2], w = 0, h = 0, ch = 0;
        size_t n = (size_t)W * H * C, i, fn;
        unsigned char *pix = (unsigned char *)malloc(n), *dec, *file;
        void *buf;
        size_t size;
        for (i = 0; i < n; i++) pix[i] = (unsigned char)(i * 37u + (i >> 7));
        NN_TEST_CHECK(nn_png_write_mem(pix, W, H, C, &buf, &size) == NN_OK, "png to memory");
        dec = png_decode((const unsigned char *)buf, size, &w, &h, &ch);
        NN_TEST_CHECK(dec && w == W && h == H && ch == C && memcmp(dec, pix, n) == 0,
                      "png %dx%dx%d decodes to the same pixels", W, H, C);
        free(dec);
        NN_TEST_CHECK(nn_png_write("/tmp/nn_test_tools.png", pix, W, H, C) == NN_OK, "png file");
        file = read_file("/tmp/nn_test_tools.png", &fn);
        NN_TEST_CHECK(file && fn == size && memcmp(file, buf, size) == 0, "file = memory bytes");
        free(file);
        NN_FREE(buf);
        free(pix);
    }
    {
        /* Grid of 3 gray 2x2 images, 2 per row, padding 1: 7 x 7 pixels. */
        float v[12] = {0, 1, 0.5f, 2, 0.25f, 0.25f, 0.25f, 0.25f, -1, 1, 1, 1};
        nn_tensor *b = nn_tensor_from(NULL, v, NN_SHAPE(3, 1, 2, 2));
        nn_png_grid_opts go;
        unsigned char *file, *dec;
        size_t fn;
        int w = 0, h = 0, ch = 0;
        memset(&go, 0, sizeof go);
        go.nrow = 2;
        go.padding = 1;
        go.pad_value = 1.0f;
        NN_TEST_CHECK(nn_png_write_grid("/tmp/nn_test_tools_grid.png", b, go) == NN_OK, "grid");
        file = read_file("/tmp/nn_test_tools_grid.png", &fn);
        dec = file ? png_decode(file, fn, &w, &h, &ch) : NULL;
        NN_TEST_CHECK(dec && w == 7 && h == 7 && ch == 1, "grid is 7x7 gray (%dx%d, %d)", w, h, ch);
        if (dec) {
            NN_TEST_CHECK(dec[0] == 255 && dec[1 * 7 + 1] == 0 && dec[1 * 7 + 2] == 255 &&
                          dec[2 * 7 + 1] == 128 && dec[2 * 7 + 2] == 255, "image 0 clamped to [0,1]");
            NN_TEST_CHECK(dec[1 * 7 + 4] == 64 && dec[2 * 7 + 5] == 64, "image 1 at the right");
            NN_TEST_CHECK(dec[4 * 7 + 1] == 0 && dec[4 * 7 + 2] == 255 && dec[5 * 7 + 4] == 255,
                          "image 2 below, padding filled");
        }
        free(dec);
        free(file);
        go.normalize = 1;   /* min -1 .. max 2 */
        NN_TEST_CHECK(nn_png_write_grid("/tmp/nn_test_tools_grid.png", b, go) == NN_OK, "grid");
        file = read_file("/tmp/nn_test_tools_grid.png", &fn);
        dec = file ? png_decode(file, fn, &w, &h, &ch) : NULL;
        NN_TEST_CHECK(dec && dec[1 * 7 + 1] == 85 && dec[1 * 7 + 2] == 170 && dec[4 * 7 + 1] == 0 &&
                      dec[2 * 7 + 2] == 255, "normalized grid: (v - min)/(max - min)");
        free(dec);
        free(file);
        nn_tensor_free(b);
        remove("/tmp/nn_test_tools.png");
        remove("/tmp/nn_test_tools_grid.png");
    }
    {
        unsigned char px[4] = {0};
        void *buf = &px;
        size_t size = 1;
        hook_calls = 0;
        nn_set_error_hook(record_hook, NULL);
        NN_TEST_CHECK(nn_png_write_mem(px, 2, 2, 5, &buf, &size) == NN_ERR_ARG && buf == NULL &&
                      size == 0 && hook_calls == 1 && strstr(last_msg, "nn_png_write: ") &&
                      strstr(last_msg, "5 channels"), "bad channels: %s", last_msg);
        nn_set_error_hook(NULL, NULL);
    }
}

int main(void) {
    test_png();
    return nn_test_summary("test_tools");
}
