/* Training tools: the PNG writer (decoded back with nn.h's own inflate, CRCs
   and Adler-32 checked by an independent implementation), hyper-parameter
   search, lottery-ticket pruning under every optimizer, the fixed Hadamard
   classifier, NID interaction ranking and the sanity checks. */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include "golden.h"
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

/* Scratch files: one set per process, so parallel runs do not collide. */
static char png_path[256], grid_path[256], csv_path[256];
static void tmp_paths(void) {
    long id = 0;
#if defined(__unix__) || defined(__APPLE__)
    id = (long)getpid();
#endif
    snprintf(png_path, sizeof png_path, "/tmp/nn_test_tools_%ld.png", id);
    snprintf(grid_path, sizeof grid_path, "/tmp/nn_test_tools_grid_%ld.png", id);
    snprintf(csv_path, sizeof csv_path, "/tmp/nn_test_tools_grid_%ld.csv", id);
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
    if (!ok) { free(raw); return NULL; }
    pix = (unsigned char *)malloc(rawn);
    for (y = 0; y < (size_t)*h; y++) {
        if (raw[y * row] != 0) ok = 0;
        memcpy(pix + y * (row - 1), raw + y * row + 1, row - 1);
    }
    free(raw);
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
        NN_TEST_CHECK(nn_png_write(png_path, pix, W, H, C) == NN_OK, "png file");
        file = read_file(png_path, &fn);
        NN_TEST_CHECK(file && fn == size && memcmp(file, buf, size) == 0, "file = memory bytes");
        free(file);
        free(buf);
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
        NN_TEST_CHECK(nn_png_write_grid(grid_path, b, go) == NN_OK, "grid");
        file = read_file(grid_path, &fn);
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
        NN_TEST_CHECK(nn_png_write_grid(grid_path, b, go) == NN_OK, "grid");
        file = read_file(grid_path, &fn);
        dec = file ? png_decode(file, fn, &w, &h, &ch) : NULL;
        NN_TEST_CHECK(dec && dec[1 * 7 + 1] == 85 && dec[1 * 7 + 2] == 170 && dec[4 * 7 + 1] == 0 &&
                      dec[2 * 7 + 2] == 255, "normalized grid: (v - min)/(max - min)");
        free(dec);
        free(file);
        nn_tensor_free(b);
        remove(png_path);
        remove(grid_path);
    }
    {
        unsigned char px[4] = {0};
        void *buf = &px;
        size_t size = 1;
        nn_test_msgs = 0;
        nn_set_error_hook(nn_test_record_hook, NULL);
        NN_TEST_CHECK(nn_png_write_mem(px, 2, 2, 5, &buf, &size) == NN_ERR_ARG && buf == NULL &&
                      size == 0 && nn_test_msgs == 1 && strstr(nn_test_msg, "nn_png_write: ") &&
                      strstr(nn_test_msg, "5 channels"), "bad channels: %s", nn_test_msg);
        nn_set_error_hook(NULL, NULL);
    }
}

/* ----- pruning ----- */

static nn_module *tiny_mlp(uint64_t seed) {
    nn_seed(seed);
    return nn_sequential(nn_linear(4, 6), nn_relu(), nn_linear(6, 3), NULL);
}

/* A few steps of cross-entropy on fixed random data. */
static void train_steps(nn_module *net, nn_optim *opt, int steps) {
    float x[8 * 4];
    int y[8], i, s;
    nn_graph *g = nn_graph_new();
    nn_ce_opts ce;
    memset(&ce, 0, sizeof ce);
    for (i = 0; i < 32; i++) x[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    for (i = 0; i < 8; i++) y[i] = i % 3;
    for (s = 0; s < steps; s++) {
        nn_tensor *loss;
        nn_graph_reset(g);
        loss = nn_cross_entropy(nn_forward(net, nn_tensor_from(g, x, NN_SHAPE(8, 4))), y, ce);
        nn_zero_grad(opt);
        nn_backward(loss);
        nn_step(opt);
    }
    nn_graph_free(g);
}

static nn_optim *make_optim(int k, nn_module *net, const char **name) {
    nn_sgd_opts sg; nn_adagrad_opts ag; nn_rmsprop_opts rm; nn_adadelta_opts ad;
    nn_adam_opts am; nn_adamw_opts aw; nn_adamax_opts ax; nn_nadam_opts na;
    nn_radam_opts ra; nn_lars_opts la; nn_lamb_opts lb; nn_lookahead_opts lk;
    nn_ranger_opts rg;
    memset(&sg, 0, sizeof sg); memset(&ag, 0, sizeof ag); memset(&rm, 0, sizeof rm);
    memset(&ad, 0, sizeof ad); memset(&am, 0, sizeof am); memset(&aw, 0, sizeof aw);
    memset(&ax, 0, sizeof ax); memset(&na, 0, sizeof na); memset(&ra, 0, sizeof ra);
    memset(&la, 0, sizeof la); memset(&lb, 0, sizeof lb); memset(&lk, 0, sizeof lk);
    memset(&rg, 0, sizeof rg);
    switch (k) {
    case 0: *name = "SGD"; sg.lr = 0.1f; return nn_sgd(net, sg);
    case 1: *name = "SGD momentum nesterov wd"; sg.lr = 0.1f; sg.momentum = 0.9f; sg.nesterov = 1;
        sg.weight_decay = 0.01f; return nn_sgd(net, sg);
    case 2: *name = "Adagrad"; return nn_adagrad(net, ag);
    case 3: *name = "RMSprop centered momentum"; rm.centered = 1; rm.momentum = 0.5f; return nn_rmsprop(net, rm);
    case 4: *name = "Adadelta"; return nn_adadelta(net, ad);
    case 5: *name = "Adam amsgrad"; am.amsgrad = 1; am.lr = 0.01f; return nn_adam(net, am);
    case 6: *name = "AdamW"; aw.lr = 0.01f; aw.weight_decay = 0.1f; return nn_adamw(net, aw);
    case 7: *name = "Adamax"; return nn_adamax(net, ax);
    case 8: *name = "NAdam"; return nn_nadam(net, na);
    case 9: *name = "RAdam"; return nn_radam(net, ra);
    case 10: *name = "LARS"; la.weight_decay = 0.01f; return nn_lars(net, la);
    case 11: *name = "LAMB"; lb.weight_decay = 0.01f; return nn_lamb(net, lb);
    case 12: *name = "Lookahead(Adam)"; lk.k = 2; am.lr = 0.01f; return nn_lookahead(nn_adam(net, am), lk);
    case 13: *name = "Ranger"; rg.k = 2; return nn_ranger(net, rg);
    default: return NULL;
    }
}

static void test_pruning(void) {
    int k;
    for (k = 0; k < 14; k++) {
        const char *name = "";
        nn_module *net = tiny_mlp(3);
        nn_optim *opt = make_optim(k, net, &name);
        nn_prune_opts po;
        nn_pruner *p;
        int i, zero_ok = 1, moved = 0;
        float before[18];
        memset(&po, 0, sizeof po);
        po.global = k % 2;
        p = nn_pruner_new(net, po);
        NN_TEST_CHECK(p && nn_prune_count(p) == 2 && !strcmp(nn_prune_name(p, 1), "2.weight"),
                      "%s: pruner over the two weights", name);
        nn_pruner_attach(p, opt);
        train_steps(net, opt, 2);   /* optimizer state with unmasked values */
        nn_prune_magnitude(p, 0.5f);
        NN_TEST_CHECK(fabsf(nn_prune_sparsity(p, -1) - 0.5f) < 0.03f, "%s: half pruned (%g)", name,
                      (double)nn_prune_sparsity(p, -1));
        memcpy(before, nn_param(net, "2.weight")->data, sizeof before);
        train_steps(net, opt, 5);
        for (i = 0; i < 2; i++) {
            const nn_tensor *w = nn_param(net, i ? "2.weight" : "0.weight");
            const nn_tensor *mk = nn_param(net, i ? "2.weight_mask" : "0.weight_mask");
            size_t j;
            for (j = 0; j < w->numel; j++) {
                if (mk->data[j] == 0.0f && w->data[j] != 0.0f) zero_ok = 0;
                if (i == 1 && mk->data[j] != 0.0f && w->data[j] != before[j]) moved++;
            }
        }
        NN_TEST_CHECK(zero_ok, "%s: masked weights stay exactly 0 through steps", name);
        NN_TEST_CHECK(moved > 0, "%s: unmasked weights train", name);
        nn_optim_free(opt);
        nn_pruner_free(p);
        nn_module_free(net);
    }
    {
        /* Per-layer pruning, rewinding, the re-init control, masks in the model file. */
        nn_module *net = tiny_mlp(5), *net2;
        nn_prune_opts po;
        nn_pruner *p, *p2;
        nn_sgd_opts so;
        nn_optim *opt;
        float init0[24], initb[6];
        int ok = 1, perm_ok;
        size_t j;
        void *buf;
        size_t size;
        nn_load_opts lo;
        nn_save_opts sv;
        memset(&sv, 0, sizeof sv);
        memset(&po, 0, sizeof po);
        memset(&so, 0, sizeof so);
        memset(&lo, 0, sizeof lo);
        memcpy(init0, nn_param(net, "0.weight")->data, sizeof init0);
        memcpy(initb, nn_param(net, "0.bias")->data, sizeof initb);
        p = nn_pruner_new(net, po);
        so.lr = 0.2f;
        opt = nn_sgd(net, so);
        nn_pruner_attach(p, opt);
        train_steps(net, opt, 10);
        nn_prune_magnitude(p, 0.25f);
        NN_TEST_CHECK(nn_prune_sparsity(p, 0) == 6.0f / 24.0f && nn_prune_sparsity(p, 1) == 5.0f / 18.0f,
                      "per layer: round(25%%) of each (%g %g)", (double)nn_prune_sparsity(p, 0),
                      (double)nn_prune_sparsity(p, 1));
        nn_prune_magnitude(p, 0.5f);   /* half of the remaining 18 */
        NN_TEST_CHECK(nn_prune_sparsity(p, 0) == 15.0f / 24.0f, "iterated: of the remaining (%g)",
                      (double)nn_prune_sparsity(p, 0));
        nn_prune_rewind(p);
        for (j = 0; j < 24; j++) {
            float w = nn_param(net, "0.weight")->data[j], m = nn_param(net, "0.weight_mask")->data[j];
            if (m != 0.0f ? w != init0[j] : w != 0.0f) ok = 0;
        }
        NN_TEST_CHECK(ok && !memcmp(initb, nn_param(net, "0.bias")->data, sizeof initb),
                      "rewind: initial weights on unmasked entries, zero elsewhere, biases too");
        nn_prune_reinit(p, 9);
        {
            /* The kept entries are a permutation of the initial weights. */
            int diff = 0;
            for (j = 0; j < 24; j++) {
                float w = nn_param(net, "0.weight")->data[j];
                if (nn_param(net, "0.weight_mask")->data[j] == 0.0f) { if (w != 0.0f) diff = -1000; }
                else diff += w != init0[j];
            }
            perm_ok = diff > 0;
        }
        NN_TEST_CHECK(perm_ok, "reinit: other weights, masked ones zero");
        NN_TEST_CHECK(nn_save_mem(net, sv, &buf, &size) == NN_OK, "save with masks");
        net2 = tiny_mlp(6);
        p2 = nn_pruner_new(net2, po);
        NN_TEST_CHECK(p2 && nn_load_mem(net2, buf, size, lo) == NN_OK, "load into a pruned model");
        NN_TEST_CHECK(p2 && !memcmp(nn_param(net2, "0.weight_mask")->data, nn_param(net, "0.weight_mask")->data,
                                    24 * sizeof(float)) && nn_prune_sparsity(p2, -1) == nn_prune_sparsity(p, -1),
                      "masks come back from the file");
        free(buf);
        nn_pruner_free(p2);
        nn_module_free(net2);
        nn_optim_free(opt);
        nn_pruner_free(p);
        nn_module_free(net);
    }
    {
        nn_module *net = tiny_mlp(1);
        nn_prune_opts po;
        memset(&po, 0, sizeof po);
        po.pattern = "nope.";
        nn_test_msgs = 0;
        nn_set_error_hook(nn_test_record_hook, NULL);
        NN_TEST_CHECK(nn_pruner_new(net, po) == NULL && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_pruner_new: pattern \"nope.\" matches no parameter"),
                      "bad pattern: %s", nn_test_msg);
        nn_set_error_hook(NULL, NULL);
        nn_module_free(net);
    }
}

/* ----- the fixed Hadamard classifier ----- */

static void test_hadamard(void) {
    nn_module *h = nn_hadamard_linear(8, 5, 0), *net;
    const nn_tensor *H = nn_hadamard_matrix(h);
    float Hc[40], x[16], want[10];
    int i, j, k, count, orth = 1, pm1 = 1;
    nn_param *ps;
    nn_graph *g = nn_graph_new();
    nn_tensor *y;
    for (i = 0; i < 40; i++) pm1 &= H->data[i] == 1.0f || H->data[i] == -1.0f;
    for (i = 0; i < 5; i++)
        for (j = 0; j < 5; j++) {
            float d = 0;
            for (k = 0; k < 8; k++) d += H->data[i * 8 + k] * H->data[j * 8 + k];
            orth &= d == (i == j ? 8.0f : 0.0f);
        }
    NN_TEST_CHECK(pm1 && orth && H->shape[0] == 5 && H->shape[1] == 8, "H [5,8] of +-1, H H^T = 8 I");
    ps = nn_parameters(h, &count);
    NN_TEST_CHECK(count == 1 && !strcmp(ps[0].name, "scale") && !nn_needs_grad(H), "only \"scale\" is a parameter");
    /* y = scale (x/|x|) H^T */
    for (i = 0; i < 16; i++) x[i] = (float)(i % 5) - 1.5f;
    for (i = 0; i < 2; i++) {
        double n = 0;
        for (k = 0; k < 8; k++) n += (double)x[i * 8 + k] * (double)x[i * 8 + k];
        for (j = 0; j < 5; j++) {
            double d = 0;
            for (k = 0; k < 8; k++) d += (double)(x[i * 8 + k] * H->data[j * 8 + k]);
            want[i * 5 + j] = (float)(d / sqrt(n) / sqrt(5.0));
        }
    }
    y = nn_forward(h, nn_tensor_from(g, x, NN_SHAPE(2, 8)));
    nn_test_close(y->data, want, 10, 1e-5f, 1e-6f, "hadamard forward");
    nn_graph_free(g);
    memcpy(Hc, H->data, sizeof Hc);
    {
        nn_adam_opts ao;
        nn_optim *opt;
        float s0;
        int nbuf;
        memset(&ao, 0, sizeof ao);
        ao.lr = 0.05f;
        nn_seed(2);
        net = nn_sequential(nn_linear(4, 8), nn_relu(), nn_hadamard_linear(8, 3, 1), NULL);
        opt = nn_adam(net, ao);
        s0 = nn_param(net, "2.scale")->data[0];
        train_steps(net, opt, 5);
        NN_TEST_CHECK(nn_param(net, "2.scale")->data[0] != s0, "the scale trains");
        nn_buffers(net, &nbuf);
        NN_TEST_CHECK(nn_parameter_count(net) == 4 * 8 + 8 + 1 + 3 && nbuf == 0,
                      "H is neither a parameter nor a buffer (%zu)", nn_parameter_count(net));
        nn_optim_free(opt);
        nn_module_free(net);
    }
    {
        /* Untrained: H is the same after steps that train the scale. */
        nn_adam_opts ao;
        nn_optim *opt;
        float x2[32];
        int y2[8];
        nn_ce_opts ce;
        memset(&ao, 0, sizeof ao);
        memset(&ce, 0, sizeof ce);
        opt = nn_adam(h, ao);
        g = nn_graph_new();
        for (i = 0; i < 32; i++) x2[i] = (float)((i * 3) % 7) - 3.0f;
        for (i = 0; i < 8; i++) y2[i] = i % 5;
        for (i = 0; i < 5; i++) {
            nn_graph_reset(g);
            nn_zero_grad(opt);
            nn_backward(nn_cross_entropy(nn_forward(h, nn_tensor_from(g, x2, NN_SHAPE(4, 8))), y2, ce));
            nn_step(opt);
        }
        NN_TEST_CHECK(!memcmp(H->data, Hc, sizeof Hc), "H unchanged after steps");
        nn_graph_free(g);
        nn_optim_free(opt);
    }
    nn_module_free(h);
}

/* nn_hadamard_linear against PyTorch (tests/golden/make_golden_tools.py):
   values and gradients of sum(y * r), and a finite-difference check. */
static void test_hadamard_golden(const char *dir) {
    golden_file gf;
    gold_tensor gt[8];
    int i, ok = 1;
    memset(gt, 0, sizeof gt);
    if (!gold_open(&gf, dir, "tools.txt")) {
        NN_TEST_CHECK(0, "golden tools.txt");
        return;
    }
    for (i = 0; i < 8 && ok; i++) ok = gold_tensor_read(&gf, &gt[i]);
    gold_close(&gf);
    NN_TEST_CHECK(ok, "golden tools.txt read");
    if (ok) {
        nn_module *h = nn_hadamard_linear(6, 5, 1);
        nn_graph *g = nn_graph_new();
        nn_tensor *x, *y, *loss;
        memcpy(nn_param(h, "scale")->data, gt[1].v, sizeof(float));
        memcpy(nn_param(h, "bias")->data, gt[2].v, 5 * sizeof(float));
        x = nn_requires_grad(nn_tensor_from(g, gt[0].v, NN_SHAPE(3, 6)), 1);
        y = nn_forward(h, x);
        NN_TEST_CHECK(gold_same_shape(x, gt[0].shape) && gold_same_shape(y, gt[4].shape), "golden shapes");
        loss = nn_sum(nn_mul(y, nn_tensor_from(g, gt[3].v, NN_SHAPE(3, 5))));
        NN_TEST_CHECK(nn_backward(loss) == NN_OK, "backward");
        nn_test_close(y->data, gt[4].v, 15, 1e-5f, 1e-6f, "hadamard y vs torch");
        nn_test_close(nn_grad(x), gt[5].v, 18, 1e-4f, 1e-6f, "hadamard dx vs torch");
        nn_test_close(nn_grad(nn_param(h, "scale")), gt[6].v, 1, 1e-5f, 1e-6f, "hadamard dscale vs torch");
        nn_test_close(nn_grad(nn_param(h, "bias")), gt[7].v, 5, 1e-5f, 1e-6f, "hadamard dbias vs torch");
        {
            /* Central differences in float on x (the loss is O(1)). */
            float fd[18], base[18];
            int j;
            memcpy(base, gt[0].v, sizeof base);
            for (j = 0; j < 18; j++) {
                float lp, lm;
                nn_tensor *xx;
                base[j] += 1e-2f;
                nn_graph_reset(g);
                xx = nn_tensor_from(g, base, NN_SHAPE(3, 6));
                lp = nn_item(nn_sum(nn_mul(nn_forward(h, xx), nn_tensor_from(g, gt[3].v, NN_SHAPE(3, 5)))));
                base[j] -= 2e-2f;
                nn_graph_reset(g);
                xx = nn_tensor_from(g, base, NN_SHAPE(3, 6));
                lm = nn_item(nn_sum(nn_mul(nn_forward(h, xx), nn_tensor_from(g, gt[3].v, NN_SHAPE(3, 5)))));
                base[j] += 1e-2f;
                fd[j] = (lp - lm) / 2e-2f;
            }
            nn_test_close(fd, gt[5].v, 18, 2e-2f, 2e-3f, "hadamard dx vs finite differences");
        }
        nn_graph_free(g);
        nn_module_free(h);
    }
    for (i = 0; i < 8; i++) gold_tensor_free(&gt[i]);
}

/* ----- hyper-parameter search ----- */

static int calls, budget_calls[64];
/* A quadratic bowl with its optimum at lr = 1e-2 (log10 -2), x = 0.3, the
   choice 2 and n = 4; higher is better.  The budget adds a small penalty
   below the full one, so the halving sees worse scores early. */
static double bowl(const double *v, int budget, void *user) {
    double l = log10(v[0]) + 2.0, x = v[1] - 0.3, c = v[2] == 2.0 ? 0.0 : 1.0, k = v[3] - 4.0;
    (void)user;
    calls++;
    if (budget < 64) budget_calls[budget]++;
    return -(l * l + x * x + c + 0.01 * k * k) - 0.01 / budget;
}

static void test_search(void) {
    static const double choices[3] = {1.0, 2.0, 3.0};
    nn_hparam sp[4];
    nn_search_opts so;
    nn_search_result a, b, gr;
    int i, same = 1, t, seen[3] = {0, 0, 0};
    memset(sp, 0, sizeof sp);
    memset(&so, 0, sizeof so);
    sp[0].name = "lr"; sp[0].kind = NN_HP_LOG_UNIFORM; sp[0].lo = 1e-4; sp[0].hi = 1.0;
    sp[1].name = "x"; sp[1].kind = NN_HP_UNIFORM; sp[1].lo = -1.0; sp[1].hi = 1.0;
    sp[2].name = "c"; sp[2].kind = NN_HP_CHOICE; sp[2].choices = choices; sp[2].nchoices = 3;
    sp[3].name = "n"; sp[3].kind = NN_HP_INT; sp[3].lo = 1; sp[3].hi = 8;
    so.trials = 60;
    so.seed = 11;
    so.maximize = 1;
    so.quiet = 1;
    so.refine_trials = 60;
    so.refine_width = 0.1f;
    so.budget = 1;
    calls = 0;
    NN_TEST_CHECK(nn_random_search(sp, 4, bowl, NULL, so, &a) == NN_OK && a.ntrials == 120 && calls == 120,
                  "random search: 60 + 60 trials (%d calls)", calls);
    NN_TEST_CHECK(nn_random_search(sp, 4, bowl, NULL, so, &b) == NN_OK, "again");
    for (i = 0; i < 480; i++) same &= a.values[i] == b.values[i];
    NN_TEST_CHECK(same && a.best == b.best && a.best_score == b.best_score, "same seed, same trials");
    for (t = 0; t < 60; t++)
        for (i = 0; i < 4; i++) {
            double v = a.values[t * 4 + i];
            if (i == 0 && !(v >= 1e-4 && v <= 1.0)) same = 0;
            if (i == 1 && !(v >= -1.0 && v <= 1.0)) same = 0;
            if (i == 2) seen[(int)v - 1]++;
            if (i == 3 && !(v == floor(v) && v >= 1 && v <= 8)) same = 0;
        }
    NN_TEST_CHECK(same && seen[0] && seen[1] && seen[2], "draws inside their ranges");
    NN_TEST_CHECK(fabs(log10(a.best_values[0]) + 2.0) < 0.25 && fabs(a.best_values[1] - 0.3) < 0.1 &&
                  a.best_values[2] == 2.0 && fabs(a.best_values[3] - 4.0) <= 1.0,
                  "finds the optimum: lr %g x %g c %g n %g", a.best_values[0], a.best_values[1],
                  a.best_values[2], a.best_values[3]);
    NN_TEST_CHECK(a.rounds[a.best] == 1 && a.best_score >= b.scores[0], "the refinement round helps");
    NN_TEST_CHECK(nn_search_value(sp, 4, a.best_values, "x") == a.best_values[1], "value by name");
    nn_search_free(&b);
    so.seed = 12;
    NN_TEST_CHECK(nn_random_search(sp, 4, bowl, NULL, so, &b) == NN_OK && b.values[0] != a.values[0],
                  "another seed, other trials");
    nn_search_free(&a);
    nn_search_free(&b);

    /* Grid: 3 log points x 5 uniform points x 3 choices x 5 ints (of 1..8). */
    memset(&so, 0, sizeof so);
    so.grid_points = 5;
    so.quiet = 1;
    so.maximize = 1;
    so.csv_path = csv_path;
    sp[0].lo = 1e-4; sp[0].hi = 1.0;
    calls = 0;
    NN_TEST_CHECK(nn_grid_search(sp, 4, bowl, NULL, so, &gr) == NN_OK && gr.ntrials == 5 * 5 * 3 * 5 &&
                  calls == gr.ntrials, "grid: %d points", gr.ntrials);
    {
        int ok = 1, lr_i, x_i, c_i, n_i;
        static const double lrs[5] = {1e-4, 1e-3, 1e-2, 1e-1, 1.0}, ns[5] = {1, 3, 5, 6, 8};
        t = 0;
        for (lr_i = 0; lr_i < 5; lr_i++)
            for (x_i = 0; x_i < 5; x_i++)
                for (c_i = 0; c_i < 3; c_i++)
                    for (n_i = 0; n_i < 5; n_i++, t++) {
                        const double *v = gr.values + t * 4;
                        ok &= fabs(v[0] / lrs[lr_i] - 1.0) < 1e-12 && fabs(v[1] - (-1.0 + 0.5 * x_i)) < 1e-12 &&
                              v[2] == choices[c_i] && v[3] == ns[n_i];
                    }
        NN_TEST_CHECK(ok, "the grid covers every combination, the last parameter fastest");
        NN_TEST_CHECK(fabs(gr.best_values[0] - 1e-2) < 1e-12 && fabs(gr.best_values[1] - 0.5) < 1e-12 &&
                      gr.best_values[2] == 2.0 && gr.best_values[3] == 3.0, "grid best: the nearest point (the first of ties)");
    }
    {
        size_t n;
        unsigned char *csv = read_file(csv_path, &n);
        int lines = 0;
        size_t j;
        for (j = 0; csv && j < n; j++) lines += csv[j] == '\n';
        NN_TEST_CHECK(csv && !strncmp((const char *)csv, "trial,round,budget,lr,x,c,n,score\n", 34) &&
                      lines == 1 + gr.ntrials, "CSV: a header and one row per trial");
        free(csv);
        remove(csv_path);
    }
    nn_search_free(&gr);

    /* Successive halving: 27 trials, budget 9, eta 3: 27 at 1, 9 at 3, 3 at 9. */
    memset(&so, 0, sizeof so);
    so.trials = 27;
    so.budget = 9;
    so.halving = 1;
    so.maximize = 1;
    so.quiet = 1;
    so.seed = 3;
    calls = 0;
    memset(budget_calls, 0, sizeof budget_calls);
    NN_TEST_CHECK(nn_random_search(sp, 4, bowl, NULL, so, &a) == NN_OK && budget_calls[1] == 27 &&
                  budget_calls[3] == 9 && budget_calls[9] == 3 && calls == 39,
                  "halving: 27 x 1, 9 x 3, 3 x 9 (%d %d %d)", budget_calls[1], budget_calls[3], budget_calls[9]);
    {
        /* The best at the full budget is the best of the first rung. */
        int best1 = -1, ok;
        double bs = -1e300;
        for (t = 0; t < 27; t++) {
            double v = bowl(a.values + t * 4, 1, NULL);
            if (v > bs) { bs = v; best1 = t; }
        }
        ok = a.best == best1 && a.budgets[a.best] == 9;
        for (t = 0; t < 27; t++) ok &= a.budgets[t] == 1 || a.budgets[t] == 3 || a.budgets[t] == 9;
        NN_TEST_CHECK(ok, "halving keeps the best (trial %d, want %d)", a.best, best1);
    }
    nn_search_free(&a);
    {
        nn_search_result r;
        sp[1].lo = 2.0;   /* lo > hi */
        nn_test_msgs = 0;
        nn_set_error_hook(nn_test_record_hook, NULL);
        NN_TEST_CHECK(nn_random_search(sp, 4, bowl, NULL, so, &r) == NN_ERR_ARG && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_random_search: parameter 1 \"x\""), "bad range: %s", nn_test_msg);
        nn_set_error_hook(NULL, NULL);
    }
}

/* ----- NID ----- */

static void test_nid(void) {
    /* Hand-set 4-3-2-1 MLP: unit 0 reads x0 and x1 (the interaction), unit 1
       x2, unit 2 x3 and a little x1. */
    float w1[12] = {2, -3, 0, 0.1f,   0, 0.2f, 4, 0,   0, 0.5f, 0, 5};
    float w2[6] = {1, 0.5f, -1, 2, 0, 1};
    float w3[2] = {1, -2};
    nn_module *net = nn_sequential(nn_linear(4, 3), nn_relu(), nn_linear(3, 2), nn_relu(), nn_linear(2, 1), NULL);
    nn_interaction it[6], hi[16];
    double z[3], want01;
    int n, i;
    memcpy(nn_param(net, "0.weight")->data, w1, sizeof w1);
    memcpy(nn_param(net, "2.weight")->data, w2, sizeof w2);
    memcpy(nn_param(net, "4.weight")->data, w3, sizeof w3);
    /* z = |w3| |W2| = [1*1 + 2*2, 1*0.5 + 2*0, 1*1 + 2*1] */
    z[0] = 5; z[1] = 0.5; z[2] = 3;
    want01 = z[0] * 2 + z[1] * 0 + z[2] * 0;   /* min(|2|,|-3|), min(0,.2), min(0,.5) */
    n = nn_nid_pairwise(net, it, 6);
    NN_TEST_CHECK(n == 6 && it[0].i == 0 && it[0].j == 1 && it[0].order == 2 &&
                  fabs((double)it[0].strength - want01) < 1e-5, "NID: (0,1) first with w = %g (got %d,%d %g)",
                  want01, it[0].i, it[0].j, (double)it[0].strength);
    /* (1,3): min(3,.1) z0 + min(.5,5) z2 = 0.5 + 1.5 = 2 */
    NN_TEST_CHECK(it[1].i == 1 && it[1].j == 3 && fabs((double)it[1].strength - 2.0) < 1e-5, "NID: (1,3) second");
    for (i = 1; i < 6; i++) NN_TEST_CHECK(it[i].strength <= it[i - 1].strength, "sorted");
    n = nn_nid_rank(net, hi, 16);
    NN_TEST_CHECK(n > 0 && hi[0].features == 3u && hi[0].order == 2, "higher-order: {0,1} first");
    nn_module_free(net);
    {
        /* Trained: y = x0 x1 + x2 + x3 (one planted interaction), on MLP-M. */
        int hidden[2] = {16, 8}, s, j, first_ok;
        nn_module *m;
        nn_adam_opts ao;
        nn_optim *opt;
        nn_graph *g = nn_graph_new();
        float xs[64 * 4], ys[64];
        nn_interaction r[6];
        memset(&ao, 0, sizeof ao);
        ao.lr = 1e-2f;
        nn_seed(4);
        m = nn_nid_mlp_m(4, hidden, 2, 4);
        NN_TEST_CHECK(m && nn_child(m, "mlp") && nn_param(m, "main.w1") &&
                      nn_param(m, "main.w1")->shape[0] == 4, "MLP-M children");
        opt = nn_adam(m, ao);
        for (s = 0; s < 300; s++) {
            nn_tensor *out;
            for (j = 0; j < 64; j++) {
                for (i = 0; i < 4; i++) xs[j * 4 + i] = nn_rand_uniform() * 2.0f - 1.0f;
                ys[j] = 2.0f * xs[j * 4] * xs[j * 4 + 1] + xs[j * 4 + 2] + xs[j * 4 + 3];
            }
            nn_graph_reset(g);
            out = nn_forward(m, nn_tensor_from(g, xs, NN_SHAPE(64, 4)));
            nn_zero_grad(opt);
            nn_backward(nn_mse(out, nn_tensor_from(g, ys, NN_SHAPE(64, 1))));
            nn_step(opt);
        }
        {
            /* MLP-M's output = mlp(x) + sum_j sum_k w2 relu(x_j w1 + b1) + b2. */
            float want[64];
            const float *mw1 = nn_param(m, "main.w1")->data, *b1 = nn_param(m, "main.b1")->data;
            const float *mw2 = nn_param(m, "main.w2")->data, b2 = nn_param(m, "main.b2")->data[0];
            nn_tensor *full, *part;
            int k;
            nn_graph_reset(g);
            full = nn_forward(m, nn_tensor_from(g, xs, NN_SHAPE(64, 4)));
            part = nn_forward(nn_child(m, "mlp"), nn_tensor_from(g, xs, NN_SHAPE(64, 4)));
            for (j = 0; j < 64; j++) {
                double v = (double)part->data[j] + (double)b2;
                for (i = 0; i < 4; i++)
                    for (k = 0; k < 4; k++) {
                        float a = xs[j * 4 + i] * mw1[i * 4 + k] + b1[i * 4 + k];
                        v += (double)(mw2[i * 4 + k] * (a > 0.0f ? a : 0.0f));
                    }
                want[j] = (float)v;
            }
            nn_test_close(full->data, want, 64, 1e-5f, 1e-5f, "MLP-M forward = mlp + main effects");
        }
        n = nn_nid_pairwise(nn_child(m, "mlp"), r, 6);
        first_ok = n == 6 && r[0].i == 0 && r[0].j == 1;
        NN_TEST_CHECK(first_ok, "trained MLP-M: NID ranks (0,1) first (got %d,%d %g; next %d,%d %g)",
                      r[0].i, r[0].j, (double)r[0].strength, r[1].i, r[1].j, (double)r[1].strength);
        nn_graph_free(g);
        nn_optim_free(opt);
        nn_module_free(m);
    }
    {
        nn_module *one = nn_sequential(nn_linear(3, 1), NULL);
        nn_interaction r[3];
        nn_test_msgs = 0;
        nn_set_error_hook(nn_test_record_hook, NULL);
        NN_TEST_CHECK(nn_nid_pairwise(one, r, 3) == -1 && nn_test_msgs == 1 &&
                      strstr(nn_test_msg, "nn_nid_pairwise: the Sequential has 1 linear layer(s)"),
                      "no hidden layer: %s", nn_test_msg);
        nn_set_error_hook(NULL, NULL);
        nn_module_free(one);
    }
}

/* ----- sanity checks ----- */

static void test_sanity(void) {
    float x[8 * 4], before[4 * 16 + 16];
    int y[8], i, f;
    nn_module *net;
    nn_tensor *xt;
    nn_sanity_opts so;
    for (i = 0; i < 32; i++) x[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    for (i = 0; i < 8; i++) y[i] = i % 3;
    xt = nn_tensor_from(NULL, x, NN_SHAPE(8, 4));
    memset(&so, 0, sizeof so);
    so.lr = 1e-2f;
    so.steps = 150;
    so.quiet = 1;
    nn_seed(8);
    net = nn_sequential(nn_linear(4, 16), nn_relu(), nn_linear(16, 3), NULL);
    memcpy(before, nn_param(net, "0.weight")->data, 64 * sizeof(float));
    memcpy(before + 64, nn_param(net, "0.bias")->data, 16 * sizeof(float));
    printf("  nn_sanity_check on a good model:\n");
    so.quiet = 0;
    f = nn_sanity_check(net, xt, y, so);
    so.quiet = 1;
    NN_TEST_CHECK(f == 0, "a good model passes (%d failed)", f);
    NN_TEST_CHECK(!memcmp(before, nn_param(net, "0.weight")->data, 64 * sizeof(float)) &&
                  !memcmp(before + 64, nn_param(net, "0.bias")->data, 16 * sizeof(float)) &&
                  nn_is_training(net), "weights and mode restored");
    /* A last layer 50x too large: the loss at init is far from log 3. */
    for (i = 0; i < 48; i++) nn_param(net, "2.weight")->data[i] *= 50.0f;
    f = nn_sanity_check(net, xt, y, so);
    NN_TEST_CHECK(f >= 1, "large initial logits are flagged (%d)", f);
    for (i = 0; i < 48; i++) nn_param(net, "2.weight")->data[i] /= 50.0f;
    /* Every hidden unit dead: flagged, and the batch cannot be overfitted. */
    for (i = 0; i < 16; i++) nn_param(net, "0.bias")->data[i] = -100.0f;
    f = nn_sanity_check(net, xt, y, so);
    NN_TEST_CHECK(f >= 2, "dead ReLUs flagged and no overfitting (%d)", f);
    nn_module_free(net);
    nn_tensor_free(xt);
}

int main(int argc, char **argv) {
    const char *golden = argc > 1 ? argv[1] : "tests/golden";
    tmp_paths();
    test_png();
    test_pruning();
    test_hadamard();
    test_hadamard_golden(golden);
    test_search();
    test_nid();
    test_sanity();
    return nn_test_summary("test_tools");
}
