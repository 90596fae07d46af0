/* Tabular data: nn_csv_read(_mem) (quoting, CRLF, headers, column lists,
   missing values, exact error messages), float datasets through the loader,
   nn_dataset_split (sizes, seeds, stratification, no sample lost) and the
   standardizer. */
#define _POSIX_C_SOURCE 200809L /* getpid: a temporary file per process */
#include <unistd.h>
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <string.h>
#include <stdlib.h>

static nn_csv_opts defaults(void) {
    nn_csv_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

static nn_status rd(const char *text, nn_csv_opts o, nn_dataset *ds) {
    return nn_csv_read_mem(text, strlen(text), "t.csv", o, ds);
}

/* The read fails with NN_ERR_FORMAT (or want_st) and exactly this message. */
static void expect_error(const char *text, nn_csv_opts o, nn_status want_st, const char *want) {
    nn_dataset ds;
    nn_status st = rd(text, o, &ds);
    NN_TEST_CHECK(st == want_st && !strcmp(nn_error_string(), want),
                  "error for %s: got status %d \"%s\", want %d \"%s\"", text, (int)st,
                  nn_error_string(), (int)want_st, want);
    NN_TEST_CHECK(ds.n == 0 && !ds.features && !ds.y && !ds.targets, "failed read leaves *out zeroed");
}

static int feq(float a, float b) { return fabsf(a - b) <= 1e-6f * (1.0f + fabsf(b)); }

static void test_parse_basic(void) {
    nn_dataset ds;
    nn_csv_opts o = defaults();
    /* Default: last column is a float target, the rest are features; no
       trailing newline. */
    NN_TEST_CHECK(rd("1,2,3\n4,5,6", o, &ds) == NN_OK, "plain read: %s", nn_error_string());
    NN_TEST_CHECK(ds.n == 2 && ds.sample_size == 2 && ds.ntargets == 1 && !ds.y && !ds.x,
                  "plain read shape n=%d F=%d T=%d", ds.n, ds.sample_size, ds.ntargets);
    NN_TEST_CHECK(ds.features[0] == 1.0f && ds.features[1] == 2.0f && ds.features[2] == 4.0f &&
                  ds.features[3] == 5.0f && ds.targets[0] == 3.0f && ds.targets[1] == 6.0f,
                  "plain read values");
    NN_TEST_CHECK(ds.shape[0] == 1 && ds.shape[1] == 1 && ds.shape[2] == 2, "float dataset shape");
    nn_dataset_free(&ds);

    /* CRLF, a trailing CRLF, spaces around fields, blank lines, signs and
       exponents, a UTF-8 BOM. */
    NN_TEST_CHECK(rd("\xEF\xBB\xBF 1.5 , -2e1,+3\r\n\r\n.25,1E-2 ,0\r\n", o, &ds) == NN_OK,
                  "CRLF read: %s", nn_error_string());
    NN_TEST_CHECK(ds.n == 2 && ds.sample_size == 2 && feq(ds.features[0], 1.5f) &&
                  feq(ds.features[1], -20.0f) && feq(ds.targets[0], 3.0f) &&
                  feq(ds.features[2], 0.25f) && feq(ds.features[3], 0.01f) && ds.targets[1] == 0.0f,
                  "CRLF values");
    nn_dataset_free(&ds);

    /* Quoted fields: delimiters, doubled quotes and a newline inside. */
    o.target = "";
    NN_TEST_CHECK(rd("name,v\n\"a, \"\"b\"\"\",1\n\"x\ny\",\"2\"\n", (o.header = 1, o), &ds) ==
                      NN_ERR_FORMAT,
                  "quoted text in a feature column is not a number");
    NN_TEST_CHECK(!strcmp(nn_error_string(),
                          "nn_csv_read_mem: t.csv:2:1: field 1 (\"name\"): \"a, \"b\"\" is not a number"),
                  "quoted field unescaped in the message: %s", nn_error_string());
    o.features = "v";
    NN_TEST_CHECK(rd("name,v\n\"a, \"\"b\"\"\",1\n\"x\ny\",\"2\"\n", o, &ds) == NN_OK,
                  "quoted fields: %s", nn_error_string());
    NN_TEST_CHECK(ds.n == 2 && ds.sample_size == 1 && ds.features[0] == 1.0f && ds.features[1] == 2.0f &&
                      !ds.targets,
                  "quoted fields values (n=%d)", ds.n);
    nn_dataset_free(&ds);
    /* The row after a quoted newline is counted from the right line. */
    o = defaults();
    o.header = 1;
    o.features = "v";
    o.target = "";
    expect_error("name,v\n\"x\ny\",2\nz,w\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:4:3: field 2 (\"v\"): \"w\" is not a number");
}

static void test_columns(void) {
    nn_dataset ds;
    nn_csv_opts o = defaults();
    const char *t = "id,age,label,score\n7,30,1,0.5\n8,40,0,0.25\n9,50,2,1\n";
    o.header = 1;
    o.features = "age,score";
    o.target = "label";
    o.classes = 1;
    NN_TEST_CHECK(rd(t, o, &ds) == NN_OK, "named columns: %s", nn_error_string());
    NN_TEST_CHECK(ds.n == 3 && ds.sample_size == 2 && ds.nclasses == 3 && ds.y && !ds.targets,
                  "named columns shape (nclasses %d)", ds.nclasses);
    NN_TEST_CHECK(ds.features[0] == 30.0f && ds.features[1] == 0.5f && ds.features[4] == 50.0f &&
                  ds.features[5] == 1.0f && ds.y[0] == 1 && ds.y[1] == 0 && ds.y[2] == 2,
                  "named columns values");
    nn_dataset_free(&ds);
    /* Indexes, negative indexes, ranges, list order kept. */
    o.features = "3, 1";
    o.target = "-2";
    NN_TEST_CHECK(rd(t, o, &ds) == NN_OK, "index columns: %s", nn_error_string());
    NN_TEST_CHECK(ds.sample_size == 2 && ds.features[0] == 0.5f && ds.features[1] == 30.0f && ds.y[2] == 2,
                  "index columns in list order");
    nn_dataset_free(&ds);
    o.features = "1:2";
    o.target = "2";
    NN_TEST_CHECK(rd(t, o, &ds) == NN_OK && ds.sample_size == 1 && ds.features[1] == 40.0f,
                  "range 1:2");
    nn_dataset_free(&ds);
    /* Default features: every column but the target; several regression targets. */
    o = defaults();
    o.header = 1;
    o.target = "age,score";
    NN_TEST_CHECK(rd(t, o, &ds) == NN_OK && ds.sample_size == 2 && ds.ntargets == 2, "two targets");
    NN_TEST_CHECK(ds.features[0] == 7.0f && ds.features[1] == 1.0f && ds.targets[0] == 30.0f &&
                  ds.targets[1] == 0.5f && ds.targets[5] == 1.0f, "two targets values");
    nn_dataset_free(&ds);
    o.target = NULL;
    o.features = "2:";
    NN_TEST_CHECK(rd(t, o, &ds) == NN_ERR_ARG &&
                  !strcmp(nn_error_string(), "nn_csv_read_mem: t.csv: column 3 is both a feature and a target"),
                  "overlap: %s", nn_error_string());
    o.features = "agee";
    expect_error(t, o, NN_ERR_ARG, "nn_csv_read_mem: t.csv: feature column \"agee\" is not in the header "
                 "nor a valid index (the file has 4 columns)");
    o.header = 0;
    o.features = "4";
    expect_error("1,2,3,4\n", o, NN_ERR_ARG, "nn_csv_read_mem: t.csv: feature column \"4\" is not a valid "
                 "index (no header) (the file has 4 columns)");
    o.features = "0,,1";
    expect_error("1,2,3,4\n", o, NN_ERR_ARG, "nn_csv_read_mem: t.csv: empty item in the feature column list "
                 "\"0,,1\"");
    o.features = NULL;
    o.target = "0,1";
    o.classes = 1;
    expect_error("1,2,3,4\n", o, NN_ERR_ARG, "nn_csv_read_mem: t.csv: class labels need exactly one target "
                 "column, got 2");
}

static void test_errors(void) {
    nn_dataset ds;
    nn_csv_opts o = defaults();
    expect_error("1,2,3\n4,x5,6\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:3: field 2: \"x5\" is not a number");
    expect_error("1,2,3\n4,0x10,6\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:3: field 2: \"0x10\" is not a number");
    expect_error("1,2,3\n4,inf,6\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:3: field 2: \"inf\" is not a number");
    expect_error("1,2,3\n4,1e39,6\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:3: field 2: \"1e39\" is not a number");
    /* Ragged rows: too many fields (column of the first extra), too few
       (column where the row ends), also on a CRLF file. */
    expect_error("1,2,3\n4,5,6,7\n", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:2:7: 4 fields, expected 3");
    expect_error("1,2,3\r\n4,5\r\n", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:2:4: 2 fields, expected 3");
    expect_error("1,2,3\n4,5", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:2:4: 2 fields, expected 3");
    /* Missing values. */
    expect_error("1,2,3\n4,,6\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:3: field 2 is missing (set fill_missing to fill it)");
    expect_error("1,2,3\n4,NA,6\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:3: field 2 is missing (set fill_missing to fill it)");
    expect_error("1,2,3\n4,5,\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:5: field 3 is missing (a target)");
    /* Quotes. */
    expect_error("1,2,3\n4,\"5,6\n", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:2:3: unterminated quoted field");
    expect_error("1,2,3\n4,\"5\"x,6\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:6: unexpected 'x' after a closing quote");
    /* Class labels. */
    o.classes = 1;
    expect_error("1,2,3\n4,5,1.5\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:5: field 3: \"1.5\" is not a class label (an integer in [0, 1000000])");
    expect_error("1,2,3\n4,5,-1\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:2:5: field 3: \"-1\" is not a class label (an integer in [0, 1000000])");
    o.classes = 0;
    /* Header names in messages; empty input; header only. */
    o.header = 1;
    expect_error("a,b,c\n1,2,3\n1,z,3\n", o, NN_ERR_FORMAT,
                 "nn_csv_read_mem: t.csv:3:3: field 2 (\"b\"): \"z\" is not a number");
    expect_error("", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:1: no header row");
    expect_error("a,b\n", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:2: no data rows");
    o.header = 0;
    expect_error("\n\n", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:3: no data rows");
    /* Caps: a record longer than NN_CSV_MAX_LINE. */
    {
        size_t n = (size_t)NN_CSV_MAX_LINE + 16, i;
        char *big = (char *)malloc(n + 1);
        for (i = 0; i < n; i++) big[i] = '1';
        big[n] = 0;
        NN_TEST_CHECK(rd(big, o, &ds) == NN_ERR_FORMAT &&
                      !strcmp(nn_error_string(), "nn_csv_read_mem: t.csv:1: row longer than 1048576 bytes"),
                      "line cap: %s", nn_error_string());
        free(big);
    }
    /* A file that does not exist names itself. */
    NN_TEST_CHECK(nn_csv_read("/nonexistent/x.csv", o, &ds) == NN_ERR_IO &&
                      !strncmp(nn_error_string(), "nn_csv_read: /nonexistent/x.csv: cannot open", 44),
                  "missing file: %s", nn_error_string());
}

static void test_fill_and_delims(void) {
    nn_dataset ds;
    nn_csv_opts o = defaults();
    o.fill_missing = 1;
    o.fill_value = -1.0f;
    NN_TEST_CHECK(rd("1,,3\nNaN,?,6\n", o, &ds) == NN_OK, "fill: %s", nn_error_string());
    NN_TEST_CHECK(ds.features[0] == 1.0f && ds.features[1] == -1.0f && ds.features[2] == -1.0f &&
                  ds.features[3] == -1.0f && ds.targets[1] == 6.0f, "fill values");
    nn_dataset_free(&ds);
    /* A missing target is an error even with fill_missing. */
    expect_error("1,2,\n", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:1:5: field 3 is missing (a target)");
    /* Space-delimited with runs of blanks and tabs, skip_rows over a
       non-CSV first line (breast_cancer.csv's layout). */
    o = defaults();
    o.delimiter = ' ';
    o.skip_rows = 1;
    o.target = "";
    NN_TEST_CHECK(rd("569 30 \"odd\" line\n  1  2\t3 \n4 5 6\n", o, &ds) == NN_OK,
                  "space delimited: %s", nn_error_string());
    NN_TEST_CHECK(ds.n == 2 && ds.sample_size == 3 && ds.features[2] == 3.0f && ds.features[5] == 6.0f,
                  "space delimited values");
    nn_dataset_free(&ds);
    expect_error("x\n1 2 3\n4 5\n", o, NN_ERR_FORMAT, "nn_csv_read_mem: t.csv:3:4: 2 fields, expected 3");
    /* Semicolons and tabs. */
    o = defaults();
    o.delimiter = ';';
    NN_TEST_CHECK(rd("1;2\n3;4\n", o, &ds) == NN_OK && ds.n == 2 && ds.features[1] == 3.0f &&
                  ds.targets[1] == 4.0f, "semicolons");
    nn_dataset_free(&ds);
    o.delimiter = '\t';
    NN_TEST_CHECK(rd("1\t 2\n3 \t4\n", o, &ds) == NN_OK && ds.features[1] == 3.0f && ds.targets[0] == 2.0f,
                  "tabs");
    nn_dataset_free(&ds);
    /* A gzip-compressed file through nn_csv_read (a stored deflate block). */
    {
        static const unsigned char gz[] = {
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, /* header */
            1, 8, 0, 0xf7, 0xff, '1', ',', '2', '\n', '3', ',', '4', '\n', /* stored block */
            0, 0, 0, 0, 8, 0, 0, 0}; /* CRC32 (filled in below), size */
        char path[64]; /* per process: tests/run.sh runs configurations at once */
        unsigned char buf[sizeof gz];
        uint32_t crc = 0xffffffffu;
        int i, b;
        snprintf(path, sizeof path, "/tmp/nn_test_csv_%ld.csv.gz", (long)getpid());
        FILE *f;
        memcpy(buf, gz, sizeof gz);
        for (i = 15; i < 23; i++) {
            crc ^= buf[i];
            for (b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
        }
        crc ^= 0xffffffffu;
        for (i = 0; i < 4; i++) buf[23 + i] = (unsigned char)(crc >> (8 * i));
        f = fopen(path, "wb");
        fwrite(buf, 1, sizeof buf, f);
        fclose(f);
        o = defaults();
        NN_TEST_CHECK(nn_csv_read(path, o, &ds) == NN_OK && ds.n == 2 && ds.features[1] == 3.0f &&
                      ds.targets[1] == 4.0f, "gzip csv: %s", nn_error_string());
        nn_dataset_free(&ds);
        remove(path);
    }
}

static nn_dataset make_labeled(int n, const int *counts, int C) {
    nn_dataset ds;
    float *x = (float *)malloc(sizeof(float) * 2 * (size_t)n);
    int *y = (int *)malloc(sizeof(int) * (size_t)n), i, c, k = 0;
    float *t = (float *)malloc(sizeof(float) * (size_t)n);
    for (c = 0; c < C; c++)
        for (i = 0; i < counts[c]; i++, k++) {
            x[2 * k] = (float)k; /* the sample's id */
            x[2 * k + 1] = (float)(c * 10);
            y[k] = c;
            t[k] = 0.5f * (float)k;
        }
    NN_TEST_CHECK(nn_dataset_tabular(n, 2, x, y, t, 1, &ds) == NN_OK && ds.nclasses == C,
                  "nn_dataset_tabular");
    free(x);
    free(y);
    free(t);
    return ds;
}

static void test_split(void) {
    int counts[3] = {500, 300, 200}, seen[1000], i, c, k;
    nn_dataset ds = make_labeled(1000, counts, 3), tr, va, te, tr2, va2, te2;
    nn_dataset *parts[3];
    NN_TEST_CHECK(nn_dataset_split(&ds, 0.15f, 0.2f, 7, 1, &tr, &va, &te) == NN_OK, "stratified split");
    NN_TEST_CHECK(tr.n == 650 && va.n == 150 && te.n == 200, "split sizes %d %d %d", tr.n, va.n, te.n);
    parts[0] = &tr;
    parts[1] = &va;
    parts[2] = &te;
    memset(seen, 0, sizeof seen);
    for (k = 0; k < 3; k++) {
        int per[3] = {0, 0, 0}, consistent = 1;
        double frac = k == 0 ? 0.65 : k == 1 ? 0.15 : 0.2;
        for (i = 0; i < parts[k]->n; i++) {
            int id = (int)parts[k]->features[2 * i];
            seen[id]++;
            per[parts[k]->y[i]]++;
            consistent &= parts[k]->y[i] == ds.y[id] && parts[k]->targets[i] == 0.5f * (float)id &&
                          parts[k]->features[2 * i + 1] == (float)(10 * ds.y[id]);
        }
        NN_TEST_CHECK(consistent, "split %d keeps each sample's features, label and target together", k);
        for (c = 0; c < 3; c++)
            NN_TEST_CHECK(fabs((double)per[c] - frac * counts[c]) < 2.0,
                          "stratified: split %d class %d has %d of %d", k, c, per[c], counts[c]);
        NN_TEST_CHECK(parts[k]->nclasses == 3 && parts[k]->sample_size == 2 && parts[k]->ntargets == 1,
                      "split %d metadata", k);
    }
    for (i = 0, k = 1; i < 1000; i++) k &= seen[i] == 1;
    NN_TEST_CHECK(k, "every sample lands in exactly one split");
    /* Shuffled order inside a split (not grouped by class). */
    for (i = 1, k = 0; i < tr.n; i++) k += tr.y[i] != tr.y[i - 1];
    NN_TEST_CHECK(k > 100, "the train split is shuffled (%d label changes)", k);
    /* Same seed, same split; another seed, another split. */
    NN_TEST_CHECK(nn_dataset_split(&ds, 0.15f, 0.2f, 7, 1, &tr2, &va2, &te2) == NN_OK &&
                      !memcmp(tr.features, tr2.features, sizeof(float) * 2 * (size_t)tr.n) &&
                      !memcmp(te.features, te2.features, sizeof(float) * 2 * (size_t)te.n),
                  "same seed, same split");
    nn_dataset_free(&tr2);
    nn_dataset_free(&va2);
    nn_dataset_free(&te2);
    NN_TEST_CHECK(nn_dataset_split(&ds, 0.15f, 0.2f, 8, 1, &tr2, &va2, &te2) == NN_OK &&
                      memcmp(te.features, te2.features, sizeof(float) * 2 * (size_t)te.n),
                  "another seed, another split");
    nn_dataset_free(&tr2);
    nn_dataset_free(&va2);
    nn_dataset_free(&te2);
    nn_dataset_free(&tr);
    nn_dataset_free(&va);
    nn_dataset_free(&te);
    /* Unstratified, no validation split, exact sizes for many n. */
    {
        int ok = 1, n;
        for (n = 1; n <= 60; n++) {
            nn_dataset d2 = make_labeled(n, &n, 1);
            if (nn_dataset_split(&d2, 0.0f, 0.3f, 1, 0, &tr, NULL, &te) != NN_OK ||
                te.n != (int)(0.3 * n + 0.5) || tr.n != n - te.n)
                ok = 0;
            nn_dataset_free(&tr);
            nn_dataset_free(&te);
            if (nn_dataset_split(&d2, 0.2f, 0.3f, 2, 1, &tr, &va, &te) != NN_OK ||
                va.n != (int)(0.2 * n + 0.5) || te.n != (int)(0.3 * n + 0.5) || tr.n + va.n + te.n != n)
                ok = 0;
            nn_dataset_free(&tr);
            nn_dataset_free(&va);
            nn_dataset_free(&te);
            nn_dataset_free(&d2);
        }
        NN_TEST_CHECK(ok, "split sizes are round(fraction * n) for n = 1..60");
    }
    /* Misuse. */
    nn_set_error_hook(nn_test_record_hook, NULL);
    nn_test_msgs = 0;
    NN_TEST_CHECK(nn_dataset_split(&ds, 0.6f, 0.5f, 1, 0, &tr, &va, &te) == NN_ERR_ARG && nn_test_msgs == 1 &&
                  !strcmp(nn_test_msg, "nn_dataset_split: needs a dataset, train and test outputs (val too "
                          "when val_frac > 0) and fractions >= 0 summing to at most 1, got val_frac=0.6 "
                          "test_frac=0.5"), "fractions over 1: %s", nn_test_msg);
    {
        nn_dataset reg = ds;
        reg.y = NULL;
        NN_TEST_CHECK(nn_dataset_split(&reg, 0.0f, 0.5f, 1, 1, &tr, NULL, &te) == NN_ERR_ARG &&
                      !strcmp(nn_test_msg, "nn_dataset_split: stratified needs class labels (the dataset has none)"),
                      "stratified without labels: %s", nn_test_msg);
    }
    nn_set_error_hook(NULL, NULL);
    nn_dataset_free(&ds);
}

static void test_standardize(void) {
    float x[8] = {1, 10, 2, 10, 3, 10, 6, 10}, t[4] = {100, 200, 300, 400}, out[2];
    nn_dataset ds, other;
    nn_standardizer s, st, s2;
    nn_module *m;
    NN_TEST_CHECK(nn_dataset_tabular(4, 2, x, NULL, t, 1, &ds) == NN_OK, "tabular regression dataset");
    NN_TEST_CHECK(nn_standardize_fit(&ds, 0, &s) == NN_OK && s.n == 2, "fit features");
    /* mean 3, population std sqrt(((4+1+0+9)/4)) = sqrt(3.5); constant column: std 1. */
    NN_TEST_CHECK(feq(s.mean->data[0], 3.0f) && feq(s.std->data[0], sqrtf(3.5f)) &&
                  feq(s.mean->data[1], 10.0f) && s.std->data[1] == 1.0f, "feature statistics %g %g %g %g",
                  (double)s.mean->data[0], (double)s.std->data[0], (double)s.mean->data[1],
                  (double)s.std->data[1]);
    NN_TEST_CHECK(nn_dataset_tabular(1, 2, x + 6, NULL, t, 1, &other) == NN_OK, "held-out dataset");
    nn_standardize_apply(&s, &ds);
    nn_standardize_apply(&s, &other);
    NN_TEST_CHECK(feq(ds.features[0], -2.0f / sqrtf(3.5f)) && ds.features[1] == 0.0f &&
                  feq(other.features[0], 3.0f / sqrtf(3.5f)), "apply uses the training statistics");
    {
        double m0 = 0, v0 = 0;
        int i;
        for (i = 0; i < 4; i++) m0 += (double)ds.features[2 * i];
        for (i = 0; i < 4; i++) v0 += ((double)ds.features[2 * i] - m0 / 4) * ((double)ds.features[2 * i] - m0 / 4);
        NN_TEST_CHECK(fabs(m0 / 4) < 1e-6 && fabs(v0 / 4 - 1.0) < 1e-5, "standardized train column: mean 0, var 1");
    }
    /* Targets, and back to their units. */
    NN_TEST_CHECK(nn_standardize_fit(&ds, 1, &st) == NN_OK && feq(st.mean->data[0], 250.0f), "fit targets");
    nn_standardize_apply(&st, &ds);
    out[0] = ds.targets[0];
    out[1] = ds.targets[3];
    nn_standardize_rows(&st, out, 2, 1);
    NN_TEST_CHECK(feq(out[0], 100.0f) && feq(out[1], 400.0f), "inverse gives the targets back");
    /* Kept with a model: buffers named <name>.mean/.std, owned by the module. */
    m = nn_sequential(nn_linear(2, 1), NULL);
    NN_TEST_CHECK(nn_standardize_keep(&s, m, "input") == NN_OK && m->nbuffers == 2 &&
                  !strcmp(m->buffers[0].name, "input.mean") && !strcmp(m->buffers[1].name, "input.std") &&
                  m->buffers[1].tensor == s.std, "keep registers two buffers");
    NN_TEST_CHECK(nn_standardizer_init(2, 0, &s2) == NN_OK && s2.mean->data[1] == 0.0f && s2.std->data[0] == 1.0f,
                  "identity standardizer");
    nn_standardizer_free(&s);  /* the module keeps the tensors */
    nn_module_free(m);
    nn_standardizer_free(&s2);
    nn_standardizer_free(&st);
    /* Misuse: a byte dataset has no float features. */
    nn_set_error_hook(nn_test_record_hook, NULL);
    {
        nn_dataset img;
        NN_TEST_CHECK(nn_dataset_synthetic(10, 1, &img) == NN_OK, "synthetic");
        NN_TEST_CHECK(nn_standardize_fit(&img, 0, &s) == NN_ERR_ARG &&
                      !strcmp(nn_test_msg, "nn_standardize_fit: the dataset has no float features (byte datasets "
                              "are scaled by the loader)"), "fit on bytes: %s", nn_test_msg);
        nn_dataset_free(&img);
    }
    nn_set_error_hook(NULL, NULL);
    nn_dataset_free(&ds);
    nn_dataset_free(&other);
}

static void test_loader(void) {
    float x[10], t[10];
    int y[5] = {0, 1, 0, 1, 1}, i, b, total = 0;
    nn_dataset ds;
    nn_loader_opts lo;
    nn_loader *l;
    nn_graph *g = nn_graph_new();
    nn_tensor *bx, *bt;
    const int *by;
    for (i = 0; i < 10; i++) {
        x[i] = 0.5f * (float)i; /* sample k: (k, k + 0.5) */
        t[i] = -(float)i;
    }
    NN_TEST_CHECK(nn_dataset_tabular(5, 2, x, y, t, 2, &ds) == NN_OK, "labels and targets");
    memset(&lo, 0, sizeof lo);
    lo.batch_size = 2;
    l = nn_loader_new(&ds, lo);
    while ((b = nn_loader_next_xy(l, g, &bx, &bt, &by)) > 0) {
        int ok = bx->ndim == 2 && bx->shape[0] == b && bx->shape[1] == 2 && bt && bt->ndim == 2 &&
                 bt->shape[0] == b && bt->shape[1] == 2;
        for (i = 0; ok && i < b; i++) {
            int k = total + i;
            ok = bx->data[2 * i] == x[2 * k] && bx->data[2 * i + 1] == x[2 * k + 1] &&
                 bt->data[2 * i] == t[2 * k] && bt->data[2 * i + 1] == t[2 * k + 1] && by[i] == y[k];
        }
        NN_TEST_CHECK(ok, "float batch at %d (size %d) holds the samples unscaled", total, b);
        total += b;
        nn_graph_reset(g);
    }
    NN_TEST_CHECK(total == 5 && nn_loader_batches(l) == 3, "one epoch of 5 in batches of 2");
    nn_loader_free(l);
    /* Shuffled: each epoch a permutation, targets still match features. */
    lo.shuffle = 1;
    lo.batch_size = 3;
    nn_seed(3);
    l = nn_loader_new(&ds, lo);
    {
        int seen[5] = {0, 0, 0, 0, 0}, ok = 1;
        while ((b = nn_loader_next_xy(l, g, &bx, &bt, NULL)) > 0) {
            for (i = 0; i < b; i++) {
                int k = (int)(bx->data[2 * i] * 2.0f + 0.5f) / 2;
                seen[k]++;
                ok &= bt->data[2 * i] == t[2 * k];
            }
            nn_graph_reset(g);
        }
        NN_TEST_CHECK(ok && seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1 && seen[4] == 1,
                      "shuffled float epoch is a permutation with matching targets");
    }
    nn_loader_free(l);
    nn_dataset_free(&ds);
    /* Regression only: nn_loader_next gives no labels; a classification
       dataset has no target tensor. */
    NN_TEST_CHECK(nn_dataset_tabular(5, 2, x, NULL, t, 1, &ds) == NN_OK, "regression dataset");
    lo.shuffle = 0;
    l = nn_loader_new(&ds, lo);
    b = nn_loader_next(l, g, &bx, &by);
    NN_TEST_CHECK(b == 3 && by == NULL && bx->data[5] == x[5], "regression batch without labels");
    nn_graph_reset(g);
    b = nn_loader_next_xy(l, g, &bx, &bt, &by);
    NN_TEST_CHECK(b == 2 && bt->shape[1] == 1 && bt->data[0] == t[3] && bt->data[1] == t[4],
                  "regression targets of the second batch");
    nn_loader_free(l);
    nn_graph_reset(g);
    /* nn_accuracy refuses a dataset without labels. */
    nn_set_error_hook(nn_test_record_hook, NULL);
    {
        nn_module *m = nn_sequential(nn_linear(2, 2), NULL);
        NN_TEST_CHECK(nn_accuracy(m, &ds, g, lo) == -1.0f &&
                      !strcmp(nn_test_msg, "nn_accuracy: the dataset has no class labels (regression targets only)"),
                      "accuracy on regression data: %s", nn_test_msg);
        nn_module_free(m);
    }
    nn_set_error_hook(NULL, NULL);
    nn_dataset_free(&ds);
    NN_TEST_CHECK(nn_dataset_tabular(5, 2, x, y, NULL, 0, &ds) == NN_OK, "classification dataset");
    l = nn_loader_new(&ds, lo);
    b = nn_loader_next_xy(l, g, &bx, &bt, &by);
    NN_TEST_CHECK(b == 3 && bt == NULL && by[2] == 0, "no targets: t is NULL");
    nn_loader_free(l);
    nn_dataset_free(&ds);
    /* A byte dataset still loads as before. */
    {
        nn_dataset img;
        nn_dataset_synthetic(4, 1, &img);
        lo.batch_size = 4;
        l = nn_loader_new(&img, lo);
        b = nn_loader_next(l, g, &bx, &by);
        NN_TEST_CHECK(b == 4 && feq(bx->data[100], (float)img.x[100] / 255.0f) && by[3] == img.y[3],
                      "byte dataset batch");
        nn_loader_free(l);
        nn_dataset_free(&img);
    }
    nn_graph_free(g);
}

/* More: splits of byte datasets, the global RNG left alone, accuracy over a
   float dataset, subset misuse. */
static void test_more(void) {
    nn_dataset img, tr, te, ds;
    float r1, r2;
    int i, ok = 1;
    NN_TEST_CHECK(nn_dataset_synthetic(100, 3, &img) == NN_OK, "synthetic");
    nn_seed(5);
    r1 = nn_rand_uniform();
    nn_seed(5);
    NN_TEST_CHECK(nn_dataset_split(&img, 0.0f, 0.3f, 9, 1, &tr, NULL, &te) == NN_OK && tr.n == 70 &&
                  te.n == 30 && tr.x && !tr.features && tr.sample_size == 784 && tr.shape[1] == 28,
                  "stratified split of a byte dataset");
    r2 = nn_rand_uniform();
    NN_TEST_CHECK(r1 == r2, "the split does not draw from the global RNG");
    {
        int per[10] = {0};
        for (i = 0; i < te.n; i++) per[te.y[i]]++;
        for (i = 0; i < 10; i++) ok &= per[i] == 3; /* 10 per class in the synthetic set */
        NN_TEST_CHECK(ok, "3 test images of each class");
        /* The bytes travel with their labels: find each test image in the source. */
        ok = 1;
        for (i = 0; i < te.n; i++) {
            int k, found = 0;
            for (k = 0; k < img.n && !found; k++)
                found = img.y[k] == te.y[i] && !memcmp(img.x + (size_t)k * 784, te.x + (size_t)i * 784, 784);
            ok &= found;
        }
        NN_TEST_CHECK(ok, "split images keep their labels");
    }
    nn_dataset_free(&tr);
    nn_dataset_free(&te);
    nn_dataset_free(&img);
    /* nn_accuracy on a float dataset: a linear layer that predicts x0 > x1. */
    {
        float x[8] = {1, 0, 0, 1, 2, 3, 5, 4};
        int y[4] = {0, 1, 0, 0}; /* the third is "wrong" on purpose: 3/4 */
        nn_module *m = nn_sequential(nn_linear(2, 2), NULL);
        nn_param *p;
        int np;
        nn_graph *g = nn_graph_new();
        nn_loader_opts lo;
        memset(&lo, 0, sizeof lo);
        p = nn_parameters(m, &np);
        for (i = 0; i < np; i++) {
            nn_tensor *t = p[i].tensor;
            if (t->ndim == 2) { t->data[0] = 1; t->data[1] = 0; t->data[2] = 0; t->data[3] = 1; }
            else memset(t->data, 0, sizeof(float) * t->numel);
        }
        NN_TEST_CHECK(nn_dataset_tabular(4, 2, x, y, NULL, 0, &ds) == NN_OK, "tabular classes");
        NN_TEST_CHECK(nn_accuracy(m, &ds, g, lo) == 0.75f, "accuracy over a float dataset: %g",
                      (double)nn_accuracy(m, &ds, g, lo));
        nn_dataset_free(&ds);
        nn_graph_free(g);
        nn_module_free(m);
    }
    /* Subset misuse names the bad index. */
    {
        float x[2] = {1, 2};
        int idx[2] = {0, 2};
        nn_dataset sub;
        nn_dataset_tabular(2, 1, x, NULL, x, 1, &ds);
        nn_set_error_hook(nn_test_record_hook, NULL);
        NN_TEST_CHECK(nn_dataset_subset(&ds, idx, 2, &sub) == NN_ERR_ARG &&
                      !strcmp(nn_test_msg, "nn_dataset_subset: index 2 at position 1 is outside [0,2)"),
                      "subset index out of range: %s", nn_test_msg);
        nn_set_error_hook(NULL, NULL);
        idx[1] = 1;
        NN_TEST_CHECK(nn_dataset_subset(&ds, idx, 2, &sub) == NN_OK && sub.n == 2 && sub.features[1] == 2.0f &&
                      sub.targets[0] == 1.0f, "subset copies");
        nn_dataset_free(&sub);
        nn_dataset_free(&ds);
    }
}

int main(void) {
    test_parse_basic();
    test_columns();
    test_errors();
    test_fill_and_delims();
    test_split();
    test_standardize();
    test_loader();
    test_more();
    return nn_test_summary("test_csv");
}
