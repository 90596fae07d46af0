/* Reader for the PyTorch golden files in tests/golden/ (made by
   tests/golden/make_golden.py, which documents the format): whitespace-
   separated tokens after the magic line "nn.h-golden 1"; a tensor is
   "t <ndim> <dims...> <values...>".  Include after nn.h. */
#ifndef NN_TEST_GOLDEN_H
#define NN_TEST_GOLDEN_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct golden_file {
    FILE *f;
    char path[512];
} golden_file;

/* A tensor read from a golden file: shape and numel values (malloc'd). */
typedef struct gold_tensor {
    nn_shape shape;
    size_t n;
    float *v;
} gold_tensor;

/* The next token into buf; 0 at the end of the file. */
static int gold_tok(golden_file *gf, char *buf, size_t size) {
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%%%ds", (int)size - 1);
    return fscanf(gf->f, fmt, buf) == 1;
}

static int gold_fail(golden_file *gf, const char *what, const char *tok) {
    printf("golden %s: expected %s, found \"%s\"\n", gf->path, what, tok);
    return 0;
}

static int gold_expect(golden_file *gf, const char *word) {
    char tok[64];
    if (!gold_tok(gf, tok, sizeof tok)) return gold_fail(gf, word, "<eof>");
    if (strcmp(tok, word) != 0) return gold_fail(gf, word, tok);
    return 1;
}

static int gold_int(golden_file *gf, int *out) {
    char tok[64], *end;
    long v;
    if (!gold_tok(gf, tok, sizeof tok)) return gold_fail(gf, "an integer", "<eof>");
    v = strtol(tok, &end, 10);
    if (*end != '\0') return gold_fail(gf, "an integer", tok);
    *out = (int)v;
    return 1;
}

static int gold_float(golden_file *gf, float *out) {
    char tok[64], *end;
    double v;
    if (!gold_tok(gf, tok, sizeof tok)) return gold_fail(gf, "a number", "<eof>");
    v = strtod(tok, &end);
    if (*end != '\0') return gold_fail(gf, "a number", tok);
    *out = (float)v;
    return 1;
}

/* Open dir/name and check the magic line; 0 (with a message) on failure. */
static int gold_open(golden_file *gf, const char *dir, const char *name) {
    int version = 0;
    snprintf(gf->path, sizeof gf->path, "%s/%s", dir, name);
    gf->f = fopen(gf->path, "r");
    if (!gf->f) {
        printf("golden %s: cannot open (run from the repository root, or pass the "
               "golden directory as the first argument)\n", gf->path);
        return 0;
    }
    if (!gold_expect(gf, "nn.h-golden") || !gold_int(gf, &version)) return 0;
    if (version != 1) {
        printf("golden %s: unknown version %d\n", gf->path, version);
        return 0;
    }
    return 1;
}

static void gold_close(golden_file *gf) {
    if (gf->f) fclose(gf->f);
    gf->f = NULL;
}

static void gold_tensor_free(gold_tensor *t) {
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* "t <ndim> <dims> <values>" into t. */
static int gold_tensor_read(golden_file *gf, gold_tensor *t) {
    int i, d;
    size_t k;
    memset(t, 0, sizeof *t);
    if (!gold_expect(gf, "t") || !gold_int(gf, &t->shape.ndim)) return 0;
    if (t->shape.ndim < 0 || t->shape.ndim > NN_MAX_DIMS) return gold_fail(gf, "ndim", "?");
    t->n = 1;
    for (i = 0; i < t->shape.ndim; i++) {
        if (!gold_int(gf, &d) || d <= 0) return gold_fail(gf, "a dimension", "?");
        t->shape.d[i] = d;
        t->n *= (size_t)d;
    }
    t->v = (float *)malloc(t->n * sizeof(float));
    if (!t->v) return gold_fail(gf, "memory", "?");
    for (k = 0; k < t->n; k++)
        if (!gold_float(gf, &t->v[k])) return 0;
    return 1;
}

/* Whether tensor x has exactly the shape s. */
static int gold_same_shape(const nn_tensor *x, nn_shape s) {
    int i;
    if (x->ndim != s.ndim) return 0;
    for (i = 0; i < s.ndim; i++)
        if (x->shape[i] != s.d[i]) return 0;
    return 1;
}
/* ---- a golden case: "case <name>", then "<label> t ..." pairs, "end" ---- */
#include <stdarg.h>
#if defined(__GNUC__) || defined(__clang__)
#define GOLD_UNUSED __attribute__((unused))
#else
#define GOLD_UNUSED
#endif
#define GOLD_MAXLAB 96
static char gold_case_name[64];
static char gold_lab_name[GOLD_MAXLAB][64];
static gold_tensor gold_lab_t[GOLD_MAXLAB];
static int gold_nlab;

/* Free the current case's tensors. */
GOLD_UNUSED static void gold_case_clear(void) {
    int i;
    for (i = 0; i < gold_nlab; i++) gold_tensor_free(&gold_lab_t[i]);
    gold_nlab = 0;
}

/* The next case of gf into gold_case_name and the labelled tensors; 0 at the end. */
GOLD_UNUSED static int gold_case_read(golden_file *gf) {
    char tok[64];
    gold_case_clear();
    if (!gold_tok(gf, tok, sizeof tok)) return 0;
    if (strcmp(tok, "case") != 0 || !gold_tok(gf, gold_case_name, sizeof gold_case_name)) return 0;
    while (gold_tok(gf, tok, sizeof tok) && strcmp(tok, "end") != 0) {
        if (gold_nlab == GOLD_MAXLAB) return 0;
        snprintf(gold_lab_name[gold_nlab], sizeof gold_lab_name[gold_nlab], "%s", tok);
        if (!gold_tensor_read(gf, &gold_lab_t[gold_nlab])) return 0;
        gold_nlab++;
    }
    return 1;
}

/* The current case's tensor labelled by the format, or NULL. */
GOLD_UNUSED static gold_tensor *gold_label(const char *fmt, ...) {
    char name[64];
    va_list ap;
    int i;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (i = 0; i < gold_nlab; i++)
        if (!strcmp(gold_lab_name[i], name)) return &gold_lab_t[i];
    return NULL;
}
#endif
