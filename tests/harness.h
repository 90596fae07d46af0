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

/* A recording error hook for tests of misuse reports: install it with
   nn_set_error_hook(nn_test_record_hook, NULL); it counts the reports in
   nn_test_msgs and keeps the last message in nn_test_msg. */
NN_TEST_UNUSED static char nn_test_msg[512];
NN_TEST_UNUSED static int nn_test_msgs = 0;
NN_TEST_UNUSED static void nn_test_record_hook(const char *msg, void *user) {
    (void)user;
    nn_test_msgs++;
    snprintf(nn_test_msg, sizeof nn_test_msg, "%s", msg);
}
/* Forget the recorded reports. */
NN_TEST_UNUSED static void nn_test_clear_msgs(void) {
    nn_test_msg[0] = '\0';
    nn_test_msgs = 0;
}

/* A test that defines NN_TEST_OOM_RETURNS_NULL before this header gets
   requests too big for memory back as NULL under AddressSanitizer too (an
   NN_ERR_OOM, as without it), instead of a stopped program. */
#ifdef NN_TEST_OOM_RETURNS_NULL
#if defined(__SANITIZE_ADDRESS__)
#define NN_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NN_TEST_ASAN 1
#endif
#endif
#ifdef NN_TEST_ASAN
#ifdef __cplusplus
extern "C"
#endif
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif
#endif

static int nn_test_summary(const char *program) {
#ifdef NN_H
    nn_thread_cleanup(); /* the kernels' kept scratch buffer: leak checkers see it freed */
#endif
    printf("%s: %d passed, %d failed\n", program, nn_test_passed, nn_test_failed);
    return nn_test_failed ? 1 : 0;
}
#endif
