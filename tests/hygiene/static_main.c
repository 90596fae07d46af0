/* NN_STATIC build: the implementation is included here, static to this TU,
   and the same calls as tu2.c must work. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>
#include <string.h>

int main(void) {
    nn_graph *g;
    nn_tensor *x, *y;
    nn_module *net;
    nn_optim *opt;
    nn_sgd_opts so;
    nn_ce_opts ce;
    int labels[2] = {0, 1};
    float c[4] = {0};
    const float a[4] = {1, 2, 3, 4};
    nn_dataset ds;
    memset(&so, 0, sizeof so);
    memset(&ce, 0, sizeof ce);
    nn_seed(7);                                                  /* core */
    nn_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);       /* kernels */
    g = nn_graph_new();                                          /* graph */
    x = nn_tensor_from(g, a, NN_SHAPE(2, 2));                    /* tensor */
    net = nn_sequential(nn_linear(2, 2), nn_relu(), NULL);      /* modules */
    opt = nn_sgd(net, so);                                       /* optim */
    y = nn_cross_entropy(nn_forward(net, x), labels, ce);       /* losses */
    nn_zero_grad(opt);
    nn_backward(y);                                              /* autograd */
    nn_step(opt);
    if (nn_dataset_synthetic(20, 1, &ds) != NN_OK) return 1;     /* data */
    nn_dataset_free(&ds);
    nn_optim_free(opt);
    nn_module_free(net);
    nn_graph_free(g);
    return c[0] == 7.0f ? 0 : 1;
}
