/* A tiny test harness: NN_TEST_CHECK records a failure with file and line,
   nn_test_summary() prints "N passed, N failed" for this program and returns
   the exit code.  Each test program counts checks, not functions. */
#ifndef NN_TEST_HARNESS_H
#define NN_TEST_HARNESS_H
#include <stdio.h>
#include <math.h>

static int nn_test_passed = 0, nn_test_failed = 0;

#if defined(__GNUC__) || defined(__clang__)
#define NN_TEST_UNUSED __attribute__((unused))
#else
#define NN_TEST_UNUSED
#endif

#define NN_TEST_CHECK(cond, ...)                                          \
    do {                                                                  \
        if (cond) {                                                       \
            nn_test_passed++;                                             \
        } else {                                                          \
            nn_test_failed++;                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                   \
            printf(__VA_ARGS__);                                          \
            printf("\n");                                                 \
        }                                                                 \
    } while (0)

/* |a - b| <= atol + rtol * |b|, elementwise; reports the worst index. */
NN_TEST_UNUSED static int nn_test_close(const float *a, const float *b, size_t n, float rtol, float atol,
                         const char *what) {
    size_t i, worst = 0;
    double wd = -1.0;
    int ok = 1;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = (double)atol + (double)rtol * fabs((double)b[i]);
        if (!(d <= lim)) ok = 0;
        if (d - lim > wd) { wd = d - lim; worst = i; }
    }
    if (!ok)
        printf("  %s: mismatch at [%zu]: got %.8g want %.8g\n", what, worst,
               (double)a[worst], (double)b[worst]);
    NN_TEST_CHECK(ok, "%s (n=%zu, rtol=%g, atol=%g)", what, n, (double)rtol, (double)atol);
    return ok;
}

static int nn_test_summary(const char *program) {
#ifdef NN_H
    nn_thread_cleanup(); /* the kernels' kept scratch buffer: leak checkers see it freed */
#endif
    printf("%s: %d passed, %d failed\n", program, nn_test_passed, nn_test_failed);
    return nn_test_failed ? 1 : 0;
}
#endif
