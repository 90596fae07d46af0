/* Bad input never crashes: regression tests for inputs that crashed, overflowed
   or printed a wrong message (a 0x0 kernel, a huge upsampling scale, padding
   near INT_MAX, a module without a forward, messages with many shapes), the
   shared validators of the layer families, and the naming rule of messages
   (the _op forms report under their own names, module forwards as
   "nn_forward(Type): ..."). */
#ifndef NN_TEST_LINKED /* tests/run.sh links one shared implementation */
#define NN_IMPLEMENTATION
#endif
#include "nn.h"
#define NN_TEST_OOM_RETURNS_NULL /* huge requests come back NULL under ASan too */
#include "harness.h"
#include <limits.h>
#include <string.h>

/* The call must have reported exactly once through the hook, with a message
   holding s1 and (when given) s2; then the record is cleared. */
static int reported(const char *what, const char *s1, const char *s2) {
    int ok = nn_test_msgs == 1 && strstr(nn_test_msg, s1) && (!s2 || strstr(nn_test_msg, s2));
    NN_TEST_CHECK(ok, "%s: %d reports, last \"%s\" (want \"%s\" %s)", what, nn_test_msgs, nn_test_msg, s1,
                  s2 ? s2 : "");
    nn_test_msgs = 0;
    nn_test_msg[0] = 0;
    return ok;
}

static nn_conv_opts conv_opts(int kernel, int stride, int padding) {
    nn_conv_opts o;
    memset(&o, 0, sizeof o);
    o.kernel = kernel;
    o.stride = stride;
    o.padding = padding;
    return o;
}

static void zero_kernel(nn_graph *g) {
    nn_conv_opts o = conv_opts(0, 0, 0);
    nn_tensor *x = nn_zeros(g, NN_SHAPE(1, 2, 4, 4)), *w = nn_zeros(g, NN_SHAPE(3, 2, 0, 0));
    NN_TEST_CHECK(nn_conv2d_op(x, w, NULL, o) == NULL, "0x0 kernel: NULL");
    reported("conv2d_op 0x0 kernel", "nn_conv2d_op: ", "kernel");
    NN_TEST_CHECK(nn_conv1d_op(nn_zeros(g, NN_SHAPE(1, 2, 4)), nn_zeros(g, NN_SHAPE(3, 2, 0)), NULL, o) == NULL,
                  "conv1d 0 kernel: NULL");
    reported("conv1d_op 0 kernel", "nn_conv1d_op: ", "kernel");
    NN_TEST_CHECK(nn_conv_transpose2d_op(x, nn_zeros(g, NN_SHAPE(2, 3, 0, 0)), NULL, o) == NULL,
                  "transposed 0x0 kernel: NULL");
    reported("conv_transpose2d_op 0x0 kernel", "nn_conv_transpose2d_op: ", "kernel");
    /* zero input channels (an empty GEMM depth) */
    NN_TEST_CHECK(nn_conv2d_op(nn_zeros(g, NN_SHAPE(1, 0, 4, 4)), nn_zeros(g, NN_SHAPE(3, 0, 3, 3)), NULL, o) == NULL,
                  "0 channels: NULL");
    reported("conv2d_op 0 channels", "nn_conv2d_op: ", "in_ch=0");
}

static void gemm_block_choice(void) {
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {9, 9, 9, 9};
    /* K = 0: C = beta C, no division by a zero block count */
    nn_sgemm(0, 0, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, c, 2);
    NN_TEST_CHECK(c[0] == 4.5f && c[3] == 4.5f && nn_test_msgs == 0, "sgemm K=0 scales C: %g", (double)c[0]);
    nn_sgemm(0, 0, 2, 2, 2, 1.0f, a, 1, b, 2, 0.0f, c, 2);
    reported("sgemm lda < K", "nn_sgemm: ", "lda=1");
    nn_sgemm(0, 0, -1, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    reported("sgemm negative M", "nn_sgemm: ", "M=-1");
    nn_sgemm(1, 0, 2, 2, 2, 1.0f, NULL, 2, b, 2, 0.0f, c, 2);
    reported("sgemm NULL A", "nn_sgemm: ", "A NULL");
    nn_sgemm_ref(0, 1, 2, 2, 2, 1.0f, a, 2, b, 1, 0.0f, c, 2);
    reported("sgemm_ref ldb < K", "nn_sgemm_ref: ", "ldb=1");
    nn_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 1);
    reported("sgemm ldc < N", "nn_sgemm: ", "ldc=1");
    nn_sgemm(0, 0, 0, 0, 0, 1.0f, NULL, 0, NULL, 0, 0.0f, NULL, 0);
    NN_TEST_CHECK(nn_test_msgs == 0, "empty sgemm with NULLs: no report");
}

static void upsample_huge(nn_graph *g) {
    nn_tensor *x = nn_zeros(g, NN_SHAPE(1, 1, 2, 2));
    nn_module *m;
    NN_TEST_CHECK(nn_upsample_nearest2d_op(nn_zeros(g, NN_SHAPE(1, 1, 3, 3)), INT_MAX / 2) == NULL,
                  "upsample INT_MAX/2: NULL");
    reported("upsample huge scale", "nn_upsample_nearest2d_op: ", "too large");
    /* 2 (2^30 - 1) fits an int: a shape of 2^62 elements, more than memory */
    NN_TEST_CHECK(nn_upsample_nearest2d_op(x, INT_MAX / 2) == NULL && nn_test_msgs == 0 &&
                      strstr(nn_error_string(), "memory") != NULL,
                  "upsample to 2^62 elements: out of memory (%s)", nn_error_string());
    NN_TEST_CHECK(nn_upsample_nearest2d_op(x, INT_MAX) == NULL, "upsample INT_MAX: NULL");
    reported("upsample INT_MAX", "nn_upsample_nearest2d_op: ", "[1,1,2,2]");
    m = nn_upsample_nearest2d(1 << 30);
    NN_TEST_CHECK(m != NULL && nn_forward(m, x) == NULL, "Upsample module with a huge scale");
    reported("Upsample forward", "nn_forward(Upsample): nn_upsample_nearest2d_op: ", "too large");
    nn_module_free(m);
}

static void conv_padding_overflow(nn_graph *g) {
    nn_tensor *x = nn_zeros(g, NN_SHAPE(1, 1, 4, 4)), *w = nn_zeros(g, NN_SHAPE(1, 1, 3, 3));
    nn_tensor *x1 = nn_zeros(g, NN_SHAPE(1, 1, 4)), *w1 = nn_zeros(g, NN_SHAPE(1, 1, 3));
    nn_conv_opts o = conv_opts(0, 0, INT_MAX);
    int P[3] = {INT_MAX, INT_MAX / 2, INT_MAX / 4 + 1}, i;
    for (i = 0; i < 3; i++) {
        o.padding = P[i];
        NN_TEST_CHECK(nn_conv2d_op(x, w, NULL, o) == NULL, "conv2d padding %d: NULL", P[i]);
        reported("conv2d padding near INT_MAX", "nn_conv2d_op: ", "padding=");
        NN_TEST_CHECK(nn_conv1d_op(x1, w1, NULL, o) == NULL, "conv1d padding %d: NULL", P[i]);
        reported("conv1d padding near INT_MAX", "nn_conv1d_op: ", "padding=");
        NN_TEST_CHECK(nn_conv_transpose2d_op(x, w, NULL, o) == NULL, "conv_t padding %d: NULL", P[i]);
        reported("conv_transpose2d padding near INT_MAX", "nn_conv_transpose2d_op: ", "padding=");
    }
    /* stride and dilation near INT_MAX: the output size and the kernel extent */
    o = conv_opts(0, INT_MAX, 0);
    NN_TEST_CHECK(nn_conv_transpose2d_op(x, w, NULL, o) == NULL, "conv_t stride INT_MAX: NULL");
    reported("conv_t stride INT_MAX", "nn_conv_transpose2d_op: ", "stride=2147483647");
    NN_TEST_CHECK(nn_conv2d_op(x, w, NULL, o) == NULL, "conv stride INT_MAX: NULL");
    reported("conv stride INT_MAX", "nn_conv2d_op: ", "stride=2147483647");
    o = conv_opts(0, INT_MAX / 4, 0);
    NN_TEST_CHECK(nn_conv_transpose2d_op(nn_zeros(g, NN_SHAPE(1, 1, 6, 6)), w, NULL, o) == NULL,
                  "conv_t stride INT_MAX/4: NULL");
    reported("conv_t output too large", "nn_conv_transpose2d_op: ", "too large");
    o = conv_opts(0, 0, 0);
    o.dilation = INT_MAX;
    NN_TEST_CHECK(nn_conv2d_op(x, w, NULL, o) == NULL, "conv dilation INT_MAX: NULL");
    reported("conv dilation INT_MAX", "nn_conv2d_op: ", "dilation=");
    /* the largest stride allowed works: one output position */
    o = conv_opts(3, INT_MAX / 4, 0);
    {
        nn_tensor *y = nn_conv2d_op(x, w, NULL, o);
        NN_TEST_CHECK(y && y->shape[2] == 1 && y->shape[3] == 1 && nn_test_msgs == 0, "stride INT_MAX/4");
    }
    /* the pools: padding up to kernel/2 with a kernel near INT_MAX */
    {
        nn_pool_opts po;
        memset(&po, 0, sizeof po);
        po.kernel = INT_MAX;
        po.padding = INT_MAX / 2;
        nn_tensor *y = nn_maxpool2d_op(x, po);
        NN_TEST_CHECK(y && y->shape[2] == 1 && y->shape[3] == 1 && y->data[0] == 0.0f && nn_test_msgs == 0,
                      "max pool with kernel INT_MAX, padding INT_MAX/2: one window");
        y = nn_avgpool2d_op(x, po);
        NN_TEST_CHECK(y && y->shape[2] == 1 && y->data[0] == 0.0f && nn_test_msgs == 0,
                      "avg pool with kernel INT_MAX, padding INT_MAX/2: one window");
        po.padding = INT_MAX / 2 - 3; /* 4 + 2P < K */
        NN_TEST_CHECK(nn_maxpool2d_op(x, po) == NULL, "pool kernel over the padded input: NULL");
        reported("pool kernel INT_MAX", "nn_maxpool2d_op: ", "larger than the padded input");
    }
}

static nn_tensor *no_forward_dummy(nn_module *m, nn_tensor *x) {
    (void)m;
    return nn_conv2d_op(x, NULL, NULL, conv_opts(0, 0, 0));
}

static void forward_checks(nn_graph *g) {
    nn_module *m = nn_module_new("Holder", NULL), *c, *s;
    nn_tensor *x = nn_zeros(g, NN_SHAPE(2, 3, 8, 8));
    NN_TEST_CHECK(nn_forward(m, x) == NULL, "nn_forward without forward: NULL");
    reported("no forward", "nn_forward: ", "no forward function");
    nn_module_free(m);
    /* module forwards: "nn_forward(Type): op: ..." */
    c = nn_conv2d(4, 5, conv_opts(3, 0, 0));
    NN_TEST_CHECK(nn_forward(c, x) == NULL, "Conv2d on 3 channels: NULL");
    reported("Conv2d forward", "nn_forward(Conv2d): nn_conv2d_op: ", "[2,3,8,8]");
    /* nested: the innermost module names the message; the name is dropped after it returns */
    s = nn_sequential(nn_relu(), nn_conv2d(4, 5, conv_opts(3, 0, 0)), NULL);
    NN_TEST_CHECK(nn_forward(s, x) == NULL, "Sequential(Conv2d) on 3 channels: NULL");
    reported("Sequential forward", "nn_forward(Conv2d): nn_conv2d_op: ", "[2,3,8,8]");
    NN_TEST_CHECK(nn_conv2d_op(x, NULL, NULL, conv_opts(0, 0, 0)) == NULL, "op after forward");
    reported("op after a forward", "nn_conv2d_op: ", NULL);
    NN_TEST_CHECK(strncmp(nn_test_msg, "nn_forward", 10) != 0, "prefix cleared");
    m = nn_module_new("MyNet", no_forward_dummy);
    NN_TEST_CHECK(nn_forward(m, x) == NULL, "user module");
    reported("user module forward", "nn_forward(MyNet): nn_conv2d_op: ", NULL);
    nn_module_free(m);
    nn_module_free(c);
    nn_module_free(s);
}

/* The batch-norm message holds five shapes; every shape must be the right one. */
static void many_shapes(nn_graph *g) {
    nn_tensor *x = nn_zeros(g, NN_SHAPE(2, 3, 4)), *w = nn_zeros(g, NN_SHAPE(5));
    nn_tensor *b = nn_zeros(g, NN_SHAPE(6)), *rm = nn_zeros(g, NN_SHAPE(7)), *rv = nn_zeros(g, NN_SHAPE(8));
    NN_TEST_CHECK(nn_batch_norm_op(x, rm, rv, w, b, 1, 0.1f, 1e-5f) == NULL, "bn: NULL");
    NN_TEST_CHECK(strstr(nn_test_msg, "x [2,3,4]") && strstr(nn_test_msg, "weight [5]") &&
                      strstr(nn_test_msg, "bias [6]") && strstr(nn_test_msg, "running_mean [7]") &&
                      strstr(nn_test_msg, "running_var [8]"),
                  "batch norm message names the five shapes: %s", nn_test_msg);
    reported("bn message", "nn_batch_norm_op: ", NULL);
    /* the pool of shape strings starts afresh for every message: many
       messages in a row keep printing the right shapes */
    {
        int i, ok = 1;
        for (i = 0; i < 20; i++) {
            nn_batch_norm_op(x, rm, rv, w, b, 1, 0.1f, 1e-5f);
            ok &= strstr(nn_test_msg, "x [2,3,4]") && strstr(nn_test_msg, "running_var [8]");
        }
        NN_TEST_CHECK(ok && nn_test_msgs == 20, "twenty messages, right shapes: %s", nn_test_msg);
        nn_test_msgs = 0;
    }
}

/* One validator per family: the module and the op form give the same answer. */
static void shared_validators(nn_graph *g) {
    nn_conv_opts o = conv_opts(3, 0, 0);
    nn_pool_opts po;
    nn_tensor *x = nn_zeros(g, NN_SHAPE(1, 4, 8, 8));
    o.output_padding = 1;
    NN_TEST_CHECK(nn_conv2d(4, 4, o) == NULL, "Conv2d with output_padding");
    reported("conv2d module output_padding", "nn_conv2d: ", "transposed convolutions only");
    NN_TEST_CHECK(nn_conv2d_op(x, nn_zeros(g, NN_SHAPE(4, 4, 3, 3)), NULL, o) == NULL, "conv2d_op with output_padding");
    reported("conv2d op output_padding", "nn_conv2d_op: ", "transposed convolutions only");
    o.stride = 1; /* output_padding 1 >= stride 1 and dilation 1 */
    NN_TEST_CHECK(nn_conv_transpose2d(4, 4, o) == NULL, "ConvTranspose2d output_padding >= stride");
    reported("conv_t module output_padding", "nn_conv_transpose2d: ", "must be smaller");
    o = conv_opts(3, 0, 0);
    o.groups = 3;
    NN_TEST_CHECK(nn_conv2d(4, 6, o) == NULL, "groups not dividing in_ch");
    reported("conv module groups", "nn_conv2d: ", "groups=3");
    o = conv_opts(3, 0, 0);
    o.dilation = -1;
    NN_TEST_CHECK(nn_conv1d(4, 4, o) == NULL, "negative dilation");
    reported("conv1d module dilation", "nn_conv1d: ", "dilation=-1");
    memset(&po, 0, sizeof po);
    po.kernel = 2;
    po.padding = 2;
    NN_TEST_CHECK(nn_maxpool2d(po) == NULL && reported("pool module", "nn_maxpool2d: ", "padding=2") &&
                      nn_maxpool2d_op(x, po) == NULL && reported("pool op", "nn_maxpool2d_op: ", "padding=2"),
                  "pool module and op share the check");
    NN_TEST_CHECK(nn_dropout(NAN) == NULL && reported("dropout module", "nn_dropout: ", "p must be in [0,1]") &&
                      nn_dropout_op(x, NAN, 1) == NULL && reported("dropout op", "nn_dropout_op: ", "p must be in [0,1]"),
                  "dropout module and op share the check (NaN p)");
    NN_TEST_CHECK(nn_upsample_nearest2d(0) == NULL && reported("upsample module", "nn_upsample_nearest2d: ", "scale must be >= 1") &&
                      nn_upsample_nearest2d_op(x, 0) == NULL &&
                      reported("upsample op", "nn_upsample_nearest2d_op: ", "scale must be >= 1"),
                  "upsample module and op share the check");
}

static void op_names(nn_graph *g) {
    nn_tensor *x = nn_zeros(g, NN_SHAPE(2, 3));
    nn_pool_opts po;
    memset(&po, 0, sizeof po);
    po.kernel = 2;
    NN_TEST_CHECK(nn_leaky_relu_op(NULL, 0.1f) == NULL, "leaky NULL");
    reported("leaky name", "nn_leaky_relu_op: ", NULL);
    NN_TEST_CHECK(nn_gelu_op(NULL) == NULL, "gelu NULL");
    reported("gelu name", "nn_gelu_op: ", NULL);
    NN_TEST_CHECK(nn_avgpool1d_op(x, po) == NULL, "avgpool1d on 2-D");
    reported("avgpool1d name", "nn_avgpool1d_op: ", "[2,3]");
    NN_TEST_CHECK(nn_global_avgpool_op(x) == NULL, "gap on 2-D");
    reported("gap name", "nn_global_avgpool_op: ", "[2,3]");
    NN_TEST_CHECK(nn_batch_norm_op(x, NULL, NULL, NULL, NULL, 0, 0.1f, 1e-5f) == NULL, "bn eval without stats");
    reported("bn name", "nn_batch_norm_op: ", "[2,3]");
}

int main(void) {
    nn_graph *g = nn_graph_new();
    nn_set_error_hook(nn_test_record_hook, NULL);
    zero_kernel(g);
    gemm_block_choice();
    upsample_huge(g);
    conv_padding_overflow(g);
    forward_checks(g);
    many_shapes(g);
    shared_validators(g);
    op_names(g);
    nn_set_error_hook(NULL, NULL);
    nn_graph_free(g);
    return nn_test_summary("test_badinput");
}
