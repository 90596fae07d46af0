/* nn_fashion_mnist never substitutes data silently: missing files are
   NN_ERR_IO with a message saying how to get them, and the generated
   stand-in comes only when asked for by name ("synthetic", as dir or as
   $NN_DATA). */
#define _POSIX_C_SOURCE 200112L /* setenv */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#include "harness.h"
#include <stdlib.h>
#include <string.h>

static int ds_is_zero(const nn_dataset *d) {
    return d->n == 0 && d->x == NULL && d->y == NULL && d->sample_size == 0;
}

static int ds_equal(const nn_dataset *a, const nn_dataset *b) {
    return a->n == b->n && a->sample_size == b->sample_size && a->nclasses == b->nclasses &&
           memcmp(a->x, b->x, (size_t)a->n * (size_t)a->sample_size) == 0 &&
           memcmp(a->y, b->y, (size_t)a->n * sizeof(int)) == 0;
}

static void test_fashion_mnist_missing_is_an_error(void) {
    nn_dataset tr, te;
    const char *msg;
    int r;
    memset(&tr, 0x55, sizeof tr); /* garbage in: must come back zeroed */
    memset(&te, 0x55, sizeof te);
    r = nn_fashion_mnist("/nonexistent/nn-h-test-dir", &tr, &te);
    msg = nn_error_string();
    NN_TEST_CHECK(r == NN_ERR_IO, "missing files: NN_ERR_IO, got %d", r);
    NN_TEST_CHECK(ds_is_zero(&tr) && ds_is_zero(&te), "missing files: both datasets empty");
    NN_TEST_CHECK(strncmp(msg, "nn_fashion_mnist: ", 18) == 0, "message names the function: %s", msg);
    NN_TEST_CHECK(strstr(msg, "/nonexistent/nn-h-test-dir") != NULL, "message names the folder: %s", msg);
    NN_TEST_CHECK(strstr(msg, "apt-get install dataset-fashion-mnist") != NULL,
                  "message says how to get the data: %s", msg);
    NN_TEST_CHECK(strstr(msg, "NN_DATA=synthetic") != NULL, "message names the stand-in: %s", msg);
    NN_TEST_CHECK(strstr(msg, "train-images-idx3-ubyte") != NULL, "message names the file: %s", msg);
    nn_dataset_free(&tr);
    nn_dataset_free(&te);
}

static void test_fashion_mnist_synthetic_on_request(void) {
    nn_dataset tr, te, a, b;
    int r;
    r = nn_fashion_mnist("synthetic", &tr, &te);
    NN_TEST_CHECK(r == 0, "\"synthetic\": the stand-in, returns 0, got %d", r);
    NN_TEST_CHECK(tr.n == 12000 && te.n == 2000 && tr.sample_size == 784 && te.nclasses == 10,
                  "stand-in sizes %d/%d", tr.n, te.n);
    NN_TEST_CHECK(nn_dataset_synthetic(12000, 1, &a) == NN_OK &&
                  nn_dataset_synthetic(2000, 2, &b) == NN_OK, "nn_dataset_synthetic");
    NN_TEST_CHECK(ds_equal(&tr, &a) && ds_equal(&te, &b),
                  "the stand-in is nn_dataset_synthetic(12000, 1) and (2000, 2)");
    nn_dataset_free(&tr);
    nn_dataset_free(&te);
    nn_dataset_free(&a);
    nn_dataset_free(&b);
}

static void test_fashion_mnist_nn_data(void) {
    nn_dataset tr, te;
    int r;
    setenv("NN_DATA", "synthetic", 1);
    r = nn_fashion_mnist(NULL, &tr, &te);
    NN_TEST_CHECK(r == 0 && tr.n == 12000 && te.n == 2000, "NN_DATA=synthetic: the stand-in (%d)", r);
    nn_dataset_free(&tr);
    nn_dataset_free(&te);
    setenv("NN_DATA", "/nonexistent/nn-h-env-dir", 1);
    r = nn_fashion_mnist(NULL, &tr, &te);
    NN_TEST_CHECK(r == NN_ERR_IO && ds_is_zero(&tr) && ds_is_zero(&te),
                  "NN_DATA naming a missing folder: NN_ERR_IO, got %d", r);
    NN_TEST_CHECK(strstr(nn_error_string(), "/nonexistent/nn-h-env-dir") != NULL,
                  "the message names $NN_DATA's folder: %s", nn_error_string());
    unsetenv("NN_DATA");
}

int main(void) {
    test_fashion_mnist_missing_is_an_error();
    test_fashion_mnist_synthetic_on_request();
    test_fashion_mnist_nn_data();
    return nn_test_summary("test_docs_data");
}
