/* The vectorized element-wise kernels: maximum error of the exp, sigmoid and
   tanh approximations against libm in double precision (the figures
   docs/performance.md states), vector and scalar tails agreeing, and the
   reductions (the private kernels, through the nn_test__ accessors of
   tests/seams.h). */
#ifndef NN_TEST_LINKED /* tests/run.sh links the shared implementation */
#include "impl.c"               /* with its test seams (tests/seams.h) */
#endif
#include "seams.h"
#include "nn.h"
#include "harness.h"

#define NPTS 200001

static float xs[NPTS], ys[NPTS];

/* Relative error in ulps of the float result against a double reference. */
static double ulps(float got, double want) {
    double ulp = ldexp(1.0, ilogb(want) - 23);
    return fabs((double)got - want) / ulp;
}

static void fill(float lo, float hi) {
    int i;
    for (i = 0; i < NPTS; i++) xs[i] = lo + (hi - lo) * (float)i / (float)(NPTS - 1);
}

int main(void) {
    int i;
    double worst;
    float a[37], b[37];
    /* exp over the range where the result is a normal float. */
    fill(-87.0f, 88.0f);
    nn_test__exp_array(xs, ys, NPTS);
    worst = 0;
    for (i = 0; i < NPTS; i++) worst = fmax(worst, ulps(ys[i], exp((double)xs[i])));
    printf("exp: max error %.2f ulp over [-87, 88]\n", worst);
    NN_TEST_CHECK(worst <= 3.0, "exp within 3 ulp, got %.2f", worst);
    nn_test__exp_array(xs, ys, 1);
    NN_TEST_CHECK(ys[0] > 0.0f, "exp(-87) positive");
    xs[0] = 1000.0f; xs[1] = -1000.0f;
    nn_test__exp_array(xs, ys, 2);
    NN_TEST_CHECK(isinf(ys[0]) && ys[1] == 0.0f, "exp overflows to inf and underflows to 0, as expf");
    /* sigmoid: relative error over [-20, 20] where the output is not tiny. */
    fill(-20.0f, 20.0f);
    nn_test__sigmoid_array(xs, ys, NPTS);
    worst = 0;
    for (i = 0; i < NPTS; i++) worst = fmax(worst, ulps(ys[i], 1.0 / (1.0 + exp(-(double)xs[i]))));
    printf("sigmoid: max error %.2f ulp over [-20, 20]\n", worst);
    NN_TEST_CHECK(worst <= 4.0, "sigmoid within 4 ulp, got %.2f", worst);
    /* tanh: absolute error (the odd series near 0 keeps relative error small too). */
    fill(-10.0f, 10.0f);
    nn_test__tanh_array(xs, ys, NPTS);
    worst = 0;
    {
        double rel = 0;
        for (i = 0; i < NPTS; i++) {
            double w = tanh((double)xs[i]);
            worst = fmax(worst, fabs((double)ys[i] - w));
            if (fabs(w) > 1e-30) rel = fmax(rel, fabs((double)ys[i] - w) / fabs(w));
        }
        printf("tanh: max abs error %.3g, max rel error %.3g over [-10, 10]\n", worst, rel);
        NN_TEST_CHECK(worst <= 3e-7 && rel <= 2e-6, "tanh abs %.3g rel %.3g", worst, rel);
    }
    /* A value does not depend on its position (vector body vs scalar tail). */
    for (i = 0; i < 37; i++) a[i] = -3.0f + 0.17f * (float)i;
    nn_test__tanh_array(a, b, 37);
    for (i = 0; i < 37; i++) NN_TEST_CHECK(b[i] == nn_test__tanh1(a[i]), "tanh tail %d agrees", i);
    nn_test__exp_array(a, b, 37);
    for (i = 0; i < 37; i++) NN_TEST_CHECK(b[i] == nn_test__exp1(a[i]), "exp tail %d agrees", i);
    /* Reductions. */
    for (i = 0; i < 37; i++) a[i] = (float)(i % 7) - 2.5f;
    NN_TEST_CHECK(nn_test__max_array(a, 37) == 3.5f, "max");
    NN_TEST_CHECK(fabs(nn_test__sum_array(a, 37) - 13.5) < 1e-5, "sum %g", nn_test__sum_array(a, 37));
    {
        float s = nn_test__exp_shift_sum(a, 1.0f, b, 37);
        double want = 0;
        for (i = 0; i < 37; i++) want += exp((double)a[i] - 1.0);
        NN_TEST_CHECK(fabs((double)s - want) < 1e-5 * want, "exp_shift_sum %g vs %g", (double)s, want);
    }
    /* NaN stays NaN (torch semantics) and e^-inf is 0. */
    {
        nn_graph *g = nn_graph_new();
        float v[3] = {1.0f, NAN, 0.5f}, lim[2] = {-INFINITY, INFINITY};
        int lab[1] = {0};
        nn_ce_opts ce = {0};
        nn_tensor *x = nn_tensor_from(g, v, NN_SHAPE(1, 3)), *l = nn_tensor_from(g, lim, NN_SHAPE(2));
        NN_TEST_CHECK(isnan(nn_exp(x)->data[1]) && isnan(nn_sigmoid_op(x)->data[1]) &&
                      isnan(nn_tanh_op(x)->data[1]) && isnan(nn_relu_op(x)->data[1]),
                      "exp, sigmoid, tanh, relu keep NaN");
        NN_TEST_CHECK(isnan(nn_softmax(x, 1)->data[0]) && isnan(nn_item(nn_cross_entropy(x, lab, ce))),
                      "softmax and cross-entropy of a row with NaN are NaN");
        NN_TEST_CHECK(isnan(nn_max_axis(x, 1, 0)->data[0]), "max over a NaN is NaN");
        NN_TEST_CHECK(nn_exp(l)->data[0] == 0.0f && nn_sigmoid_op(l)->data[0] == 0.0f &&
                      nn_sigmoid_op(l)->data[1] == 1.0f && nn_tanh_op(l)->data[1] == 1.0f,
                      "limits: exp(-inf) = 0, sigmoid(-inf) = 0, sigmoid(inf) = 1, tanh(inf) = 1");
        nn_graph_free(g);
    }
    return nn_test_summary("test_kernels");
}
