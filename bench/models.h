/* The benchmark models every bench/ program and bench/pytorch/ script
   builds (one definition here, so the C benches cannot drift apart):
   the MLP 784-256-128-10 and the CNN
   conv5x5x32-pool-conv5x5x64-pool-fc128-fc10.  Include after nn.h. */
#ifndef NN_BENCH_MODELS_H
#define NN_BENCH_MODELS_H

/* Each program uses one model or both: no unused-function warning. */
#if defined(__GNUC__)
#define NN_BENCH_MAYBE_UNUSED __attribute__((unused))
#else
#define NN_BENCH_MAYBE_UNUSED
#endif

NN_BENCH_MAYBE_UNUSED static nn_module *make_mlp(void) {
    return nn_sequential(nn_linear(784, 256), nn_relu(), nn_linear(256, 128), nn_relu(),
                         nn_linear(128, 10), NULL);
}

NN_BENCH_MAYBE_UNUSED static nn_module *make_cnn(void) {
    nn_conv_opts conv = {0};
    nn_pool_opts pool = {0};
    conv.kernel = 5;
    pool.kernel = 2;
    return nn_sequential(nn_conv2d(1, 32, conv), nn_relu(), nn_maxpool2d(pool),
                         nn_conv2d(32, 64, conv), nn_relu(), nn_maxpool2d(pool), nn_flatten(),
                         nn_linear(1024, 128), nn_relu(), nn_linear(128, 10), NULL);
}

#endif
