/* XOR with a 2-8-2 MLP: the front-page example of nn.h, verbatim.
   Build: cc -std=c99 -O2 -I.. xor.c -lm */
#define NN_IMPLEMENTATION
#include "nn.h"
#include <stdio.h>

int main(void) {
    float x[] = {0,0, 0,1, 1,0, 1,1};
    int   y[] = {0, 1, 1, 0};
    nn_seed(1);
    nn_module *net = nn_sequential(nn_linear(2, 8), nn_tanh(),
                                   nn_linear(8, 2), NULL);
    nn_sgd_opts so = {0}; so.lr = 0.5f; so.momentum = 0.9f;
    nn_optim *opt = nn_sgd(net, so);
    nn_graph *g = nn_graph_new();
    nn_ce_opts ce = {0};
    for (int step = 0; step < 300; step++) {
        nn_graph_reset(g);
        nn_tensor *in = nn_tensor_from(g, x, NN_SHAPE(4, 2));
        nn_tensor *loss = nn_cross_entropy(nn_forward(net, in), y, ce);
        nn_zero_grad(opt); nn_backward(loss); nn_step(opt);
        if (step % 100 == 0) printf("step %d loss %.4f\n", step, nn_item(loss));
    }
    nn_graph_free(g); nn_optim_free(opt); nn_module_free(net);
    return 0;
}
