/* nn.h - v0.1.0 - a complete deep-learning toolkit in one C99 header.
   MIT license (see the end of this file).

   Tensors, reverse-mode autograd, layers, losses, optimizers, data loading and
   training in one file that depends on libc and libm only. PyTorch's ideas and
   semantics, C's directness.

   USAGE
     In exactly ONE C or C++ file, define NN_IMPLEMENTATION before the include:

         #define NN_IMPLEMENTATION
         #include "nn.h"

     Every other file includes "nn.h" plainly.  Link with -lm (and -fopenmp to
     use threads).

   A COMPLETE EXAMPLE (XOR; examples/xor.c is this program)

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

   CONFIGURATION MACROS (define before including nn.h)

     macro                 default             effect
     --------------------  ------------------  ---------------------------------------
     NN_IMPLEMENTATION     off                 emit the function bodies (one TU only)
     NN_STATIC             off                 make every function static to the TU
     NN_MALLOC/REALLOC/FREE malloc/realloc/free allocator hooks (define all three or none)
     NN_ASSERT(x)          assert(x)           internal invariants (never user errors)
     NN_NO_SIMD            off                 force the portable scalar kernels
     NN_AVX512, NN_AVX2,   from __AVX512F__,   force one instruction set (the compiler
     NN_NEON               __AVX2__&&__FMA__,  flags must enable it)
                           __ARM_NEON
     NN_OPENMP             on iff _OPENMP      use OpenMP threads in the kernels
     NN_NO_OPENMP          off                 never use OpenMP, even with -fopenmp
     NN_MAX_DIMS           6                   most dimensions a tensor can have
     NN_MEM_ALIGN          64                  alignment of tensor data (bytes)
     NN_GRAPH_BLOCK        1 MiB               smallest graph-arena block (bytes)

   CONCEPTS (chapters)

     1. Two lifetimes.  Parameters, their gradients, optimizer state and
        datasets are persistent: owned by modules, optimizers and datasets, and
        freed by their _free function.  Everything a forward and backward pass
        makes lives in a graph (nn_graph), an arena that nn_graph_reset()
        forgets in O(1) while keeping its memory, so a training loop in steady
        state never calls malloc.  An op puts its result in the graph of its
        inputs; only functions that make a tensor from nothing take a graph.
        Passing NULL as the graph makes a persistent tensor (free it with
        nn_tensor_free).
     2. Autograd is define-by-run.  Each op computes its value at once and,
        when an input requires a gradient and the graph's gradient mode is on,
        records a node.  nn_backward(loss) runs the nodes in reverse and
        accumulates into ->grad.  Parameters accumulate until nn_zero_grad.
     3. Errors.  What can fail because of the outside world (files, memory)
        returns an nn_status and sets nn_error_string().  Misuse of the API
        (shapes that do not fit, NULL tensors) calls the error hook with a
        message naming the op and the shapes; the default hook prints it and
        aborts.  If an installed hook returns, the op returns NULL.
     4. Threads.  Different threads must use different graphs.  The RNG and
        the error hook are global; nn_error_string() is per thread.
     5. Determinism.  The same seed gives bitwise the same run, at any number
        of threads.

   TABLE OF CONTENTS (each name is a grep tag: search for ">>name")

     >>config      portability, allocator hooks, SIMD and OpenMP selection
     >>core        status codes, errors, RNG, timing
     >>kernels     nn_sgemm and the element-wise kernels
     >>tensor      nn_tensor, shapes, creation, views, printing
     >>graph       nn_graph: the per-step arena and the tape
     >>autograd    nn_backward and every differentiable op
     >>losses      cross-entropy, MSE
     >>modules     the module interface, sequential, linear, activations
     >>optim       SGD, Adam, zero_grad, step
     >>data        gzip inflate, IDX files, datasets, minibatch loader
     >>license
*/
#ifndef NN_H
#define NN_H

#include <stddef.h>
#include <stdint.h>

/* ===== >>config ========================================================== */

#define NN_VERSION_MAJOR 0
#define NN_VERSION_MINOR 1
#define NN_VERSION_PATCH 0
#define NN_VERSION_STRING "0.1.0"

#ifndef NNDEF
#ifdef NN_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define NNDEF static __attribute__((unused))
#else
#define NNDEF static
#endif
#else
#define NNDEF extern
#endif
#endif

#ifndef NN_MAX_DIMS
#define NN_MAX_DIMS 6
#endif
#ifndef NN_MEM_ALIGN
#define NN_MEM_ALIGN 64
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ===== >>core ============================================================ */

/* Status of an operation that can fail because of the outside world. 0 is ok. */
typedef enum nn_status {
    NN_OK = 0,
    NN_ERR_OOM = -1,      /* an allocation failed or a size overflowed */
    NN_ERR_IO = -2,       /* a file could not be opened, read or written */
    NN_ERR_FORMAT = -3,   /* a file's contents are malformed or truncated */
    NN_ERR_ARG = -4,      /* an argument is invalid */
    NN_ERR_COUNT = 5
} nn_status;

/* A fixed name for a status code, e.g. "format error". */
NNDEF const char *nn_status_string(nn_status s);
/* The last error message of this thread, naming what failed and where, e.g.
   "nn_idx_read: t.idx: wrong magic 0x00000a03". "" when there was none. */
NNDEF const char *nn_error_string(void);
/* The version of the implementation that was compiled ("0.1.0"). */
NNDEF const char *nn_version_string(void);

/* Called on API misuse (shapes that do not fit, NULL tensors) with a message
   naming the op and its shapes.  The default prints to stderr and aborts.  If a
   hook returns, the failing op returns NULL.  NULL restores the default. */
typedef void (*nn_error_hook)(const char *message, void *user);
NNDEF void nn_set_error_hook(nn_error_hook hook, void *user);

/* Seed the global random generator (PCG32).  Same seed, same run. */
NNDEF void nn_seed(uint64_t seed);
/* Uniform float in [0, 1). */
NNDEF float nn_rand_uniform(void);
/* Standard normal float (Box-Muller). */
NNDEF float nn_rand_normal(void);
/* 1 with probability p, else 0. */
NNDEF int nn_rand_bernoulli(float p);
/* Uniform integer in [0, n). */
NNDEF uint32_t nn_rand_below(uint32_t n);
/* Wall-clock seconds from an arbitrary origin, for timing. */
NNDEF double nn_time(void);

/* ===== >>kernels ========================================================= */

/* C = alpha * op(A) op(B) + beta * C, row-major, BLAS semantics: op(A) is
   M x K (A^T when transA), op(B) is K x N, C is M x N; lda/ldb/ldc are row
   strides.  beta == 0 overwrites C without reading it. */
NNDEF void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc);
/* The plain triple loop with the same contract: the oracle nn_sgemm is tested
   against.  Slow; use nn_sgemm. */
NNDEF void nn_sgemm_ref(int transA, int transB, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc);
/* Threads the kernels may use (OpenMP builds); n <= 0 means all cores. */
NNDEF void nn_set_threads(int n);
/* Threads the kernels use now (1 without OpenMP). */
NNDEF int nn_get_threads(void);

/* ===== >>tensor ========================================================== */

typedef struct nn_graph nn_graph;
typedef struct nn_tensor nn_tensor;
typedef struct nn__node nn__node;

/* A shape: ndim sizes.  Build one with NN_SHAPE(2, 3). */
typedef struct nn_shape {
    int ndim;
    int d[NN_MAX_DIMS];
} nn_shape;

/* A float32, contiguous, row-major tensor of up to NN_MAX_DIMS dimensions. */
struct nn_tensor {
    float *data;              /* numel floats */
    float *grad;              /* numel floats after backward, or NULL */
    int ndim;                 /* 0 for a scalar */
    int shape[NN_MAX_DIMS];
    size_t numel;
    nn_graph *graph;          /* owning graph, NULL when persistent */
    nn__node *node;           /* the op that made it, NULL for a leaf */
    unsigned flags;           /* NN_TENSOR_* bits */
};
#define NN_TENSOR_REQUIRES_GRAD 1u
#define NN_TENSOR_PERSISTENT 2u   /* data and grad are malloc'd, not arena */
#define NN_TENSOR_VIEW 4u         /* data belongs to another tensor */

/* A shape from 0..NN_MAX_DIMS sizes: nn_shape_make(2, 128, 784). */
NNDEF nn_shape nn_shape_make(int ndim, ...);
#define NN__NARG(...) NN__NARG_(__VA_ARGS__, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define NN__NARG_(a1, a2, a3, a4, a5, a6, a7, a8, a9, n, ...) n
/* NN_SHAPE(128, 784): the shape of a 128 x 784 matrix. */
#define NN_SHAPE(...) nn_shape_make(NN__NARG(__VA_ARGS__), __VA_ARGS__)
/* The shape of a scalar (0 dimensions, one element). */
NNDEF nn_shape nn_shape_scalar(void);

/* A tensor in graph g (or persistent when g is NULL) holding a copy of data. */
NNDEF nn_tensor *nn_tensor_from(nn_graph *g, const float *data, nn_shape shape);
/* A tensor in g (or persistent) of the given shape, filled with zeros. */
NNDEF nn_tensor *nn_zeros(nn_graph *g, nn_shape shape);
/* A tensor in g (or persistent) filled with ones. */
NNDEF nn_tensor *nn_ones(nn_graph *g, nn_shape shape);
/* A tensor in g (or persistent) filled with value. */
NNDEF nn_tensor *nn_full(nn_graph *g, nn_shape shape, float value);
/* A tensor in g (or persistent) of standard normal draws from the global RNG. */
NNDEF nn_tensor *nn_randn(nn_graph *g, nn_shape shape);
/* A tensor in g (or persistent) of uniform draws in [lo, hi). */
NNDEF nn_tensor *nn_rand(nn_graph *g, nn_shape shape, float lo, float hi);
/* Free a persistent tensor (made with g == NULL).  NULL is ignored. */
NNDEF void nn_tensor_free(nn_tensor *t);
/* The tensor's data (numel floats, row-major). */
NNDEF float *nn_data(nn_tensor *t);
/* Number of elements. */
NNDEF size_t nn_numel(const nn_tensor *t);
/* The value of a one-element tensor (e.g. a loss). */
NNDEF float nn_item(const nn_tensor *t);
/* The tensor's shape. */
NNDEF nn_shape nn_shape_of(const nn_tensor *t);
/* Print shape and values (at most a few per row) to stdout, with a label. */
NNDEF void nn_print(const char *label, const nn_tensor *t);
/* Write "[2,3]" into buf (always NUL-terminated); returns buf. */
NNDEF char *nn_shape_str(nn_shape s, char *buf, size_t size);

/* ===== >>graph =========================================================== */

/* A new empty graph: the arena for one step's tensors and the tape. */
NNDEF nn_graph *nn_graph_new(void);
/* Forget every tensor and node of g in O(1), keeping the memory for reuse. */
NNDEF void nn_graph_reset(nn_graph *g);
/* Free g and all its tensors.  NULL is ignored. */
NNDEF void nn_graph_free(nn_graph *g);
/* Turn recording of gradient nodes on or off for g (torch.no_grad); returns
   the previous setting.  Off saves memory and time in evaluation. */
NNDEF int nn_set_grad_enabled(nn_graph *g, int on);
/* Bytes the graph's arena holds (its high-water mark). */
NNDEF size_t nn_graph_capacity(const nn_graph *g);

/* ===== >>autograd ======================================================== */

/* Mark t as needing a gradient (or not).  A persistent tensor gets a
   persistent, zeroed gradient buffer.  Returns t. */
NNDEF nn_tensor *nn_requires_grad(nn_tensor *t, int on);
/* Whether a gradient flows to t. */
NNDEF int nn_needs_grad(const nn_tensor *t);
/* The gradient's data after nn_backward (NULL if none reached t). */
NNDEF float *nn_grad(nn_tensor *t);
/* Backpropagate from the one-element tensor loss: d loss / d t accumulates
   into t->grad for every t that requires a gradient. */
NNDEF void nn_backward(nn_tensor *loss);

/* Element-wise a + b, a - b, a * b, a / b with NumPy broadcasting. */
NNDEF nn_tensor *nn_add(nn_tensor *a, nn_tensor *b);
NNDEF nn_tensor *nn_sub(nn_tensor *a, nn_tensor *b);
NNDEF nn_tensor *nn_mul(nn_tensor *a, nn_tensor *b);
NNDEF nn_tensor *nn_div(nn_tensor *a, nn_tensor *b);
/* a + s, a - s, a * s, a / s with a scalar s. */
NNDEF nn_tensor *nn_add_scalar(nn_tensor *a, float s);
NNDEF nn_tensor *nn_sub_scalar(nn_tensor *a, float s);
NNDEF nn_tensor *nn_mul_scalar(nn_tensor *a, float s);
NNDEF nn_tensor *nn_div_scalar(nn_tensor *a, float s);
/* Matrix product: [M,K] x [K,N] -> [M,N]; batched [...,M,K] x [...,K,N]
   (equal batch dims), [...,M,K] x [K,N] and [M,K] x [B,K,N] (torch.matmul). */
NNDEF nn_tensor *nn_matmul(nn_tensor *a, nn_tensor *b);
/* Swap dimensions d0 and d1 (negative counts from the end); a copy. */
NNDEF nn_tensor *nn_transpose(nn_tensor *a, int d0, int d1);
/* The same data with another shape (one size may be -1); a view. */
NNDEF nn_tensor *nn_reshape(nn_tensor *a, nn_shape shape);
/* Keep dimension 0, flatten the rest: [N, ...] -> [N, prod(...)]; a view. */
NNDEF nn_tensor *nn_flatten_batch(nn_tensor *a);
/* Sum of all elements (a scalar). */
NNDEF nn_tensor *nn_sum(nn_tensor *a);
/* Mean of all elements (a scalar). */
NNDEF nn_tensor *nn_mean(nn_tensor *a);
/* Sum along axis; keepdim keeps it with size 1 (torch.sum(a, axis)). */
NNDEF nn_tensor *nn_sum_axis(nn_tensor *a, int axis, int keepdim);
/* Mean along axis (torch.mean(a, axis)). */
NNDEF nn_tensor *nn_mean_axis(nn_tensor *a, int axis, int keepdim);
/* Maximum along axis (torch.max(a, axis).values); the gradient goes to the
   first maximal element. */
NNDEF nn_tensor *nn_max_axis(nn_tensor *a, int axis, int keepdim);
/* Element-wise e^a, ln a, sqrt a, a^p, max(a,0), 1/(1+e^-a), tanh a. */
NNDEF nn_tensor *nn_exp(nn_tensor *a);
NNDEF nn_tensor *nn_log(nn_tensor *a);
NNDEF nn_tensor *nn_sqrt(nn_tensor *a);
NNDEF nn_tensor *nn_pow(nn_tensor *a, float p);
NNDEF nn_tensor *nn_relu_op(nn_tensor *a);
NNDEF nn_tensor *nn_sigmoid_op(nn_tensor *a);
NNDEF nn_tensor *nn_tanh_op(nn_tensor *a);
/* softmax along axis: e^a / sum e^a, computed stably (torch.softmax). */
NNDEF nn_tensor *nn_softmax(nn_tensor *a, int axis);
/* log-softmax along axis: a - logsumexp(a), computed stably. */
NNDEF nn_tensor *nn_log_softmax(nn_tensor *a, int axis);
/* Join n tensors along axis; every other dimension must match (torch.cat). */
NNDEF nn_tensor *nn_concat(nn_tensor **ts, int n, int axis);
/* Elements start..end-1 along axis (a[..., start:end, ...]); a copy. */
NNDEF nn_tensor *nn_slice(nn_tensor *a, int axis, int start, int end);
/* x W^T + b for x [N,in], W [out,in], b [out] or NULL (torch F.linear). */
NNDEF nn_tensor *nn_linear_op(nn_tensor *x, nn_tensor *w, nn_tensor *b);
/* Inverted dropout: zero each element with probability p and scale the rest
   by 1/(1-p); the identity when training is 0 or p is 0. */
NNDEF nn_tensor *nn_dropout_op(nn_tensor *a, float p, int training);
/* Index of the largest value in each row of a 2-D tensor, into out[rows]. */
NNDEF void nn_argmax_rows(const nn_tensor *a, int *out);

/* ===== >>losses ========================================================== */

typedef enum nn_reduction {
    NN_REDUCE_MEAN = 0,   /* the mean over the batch (default) */
    NN_REDUCE_SUM = 1     /* the sum over the batch */
} nn_reduction;

typedef struct nn_ce_opts {
    float label_smoothing;    /* eps: target = (1-eps) one_hot + eps/C */
    nn_reduction reduction;   /* NN_REDUCE_MEAN (default) or NN_REDUCE_SUM */
} nn_ce_opts;

/* Cross-entropy of logits [N,C] against integer labels[N] in [0,C), through a
   stable log-softmax (torch.nn.functional.cross_entropy). A scalar. */
NNDEF nn_tensor *nn_cross_entropy(nn_tensor *logits, const int *labels, nn_ce_opts opts);
/* Mean squared error mean((pred - target)^2), equal shapes (F.mse_loss). */
NNDEF nn_tensor *nn_mse(nn_tensor *pred, nn_tensor *target);

/* ===== >>modules ========================================================= */

typedef struct nn_module nn_module;
/* A named parameter: PyTorch-style dotted name ("0.weight") and its tensor. */
typedef struct nn_param {
    const char *name;
    nn_tensor *tensor;
} nn_param;
typedef nn_tensor *(*nn_forward_fn)(nn_module *self, nn_tensor *x);

/* A module: a forward function, its own parameters, named children, and a
   train/eval flag.  Built-in constructors return them; nn_module_new makes a
   custom one. */
struct nn_module {
    const char *type;            /* "Linear", "Sequential", ... */
    nn_forward_fn forward;
    void (*destroy)(nn_module *self);  /* frees `user` state, may be NULL */
    void *user;                  /* the module's own state */
    nn_param *params;            /* its own parameters, local names */
    int nparams;
    nn_module **children;
    char **child_names;
    int nchildren;
    int training;                /* 1 in training mode (the default) */
    float fopt[4];               /* small numeric options (e.g. dropout p) */
    nn_param *all;               /* cache for nn_parameters, dotted names */
    int nall;
};

/* A custom module of the given type name with a forward function; add
   parameters and children with the two functions below. */
NNDEF nn_module *nn_module_new(const char *type, nn_forward_fn forward);
/* Give m the persistent parameter t under the local name (e.g. "weight");
   m owns t from now on.  Returns t. */
NNDEF nn_tensor *nn_module_add_param(nn_module *m, const char *name, nn_tensor *t);
/* Give m the child c under name (e.g. "conv1"); m owns c.  Returns c. */
NNDEF nn_module *nn_module_add_child(nn_module *m, const char *name, nn_module *c);
/* Run the module on x (its forward function). */
NNDEF nn_tensor *nn_forward(nn_module *m, nn_tensor *x);
/* Training mode on (dropout active, batch statistics) or off (evaluation),
   for m and all its children. */
NNDEF void nn_train_mode(nn_module *m, int on);
/* All parameters of m and its children with dotted names, in registration
   order.  The array belongs to m and stays valid until the next call. */
NNDEF nn_param *nn_parameters(nn_module *m, int *count);
/* Total number of parameter elements of m. */
NNDEF size_t nn_parameter_count(nn_module *m);
/* Free m, its parameters and its children.  NULL is ignored. */
NNDEF void nn_module_free(nn_module *m);

/* Runs its children in order; the argument list ends with NULL. */
NNDEF nn_module *nn_sequential(nn_module *first, ...);
/* y = x W^T + b, W [out,in], b [out], PyTorch's default init: both
   U(-1/sqrt(in), 1/sqrt(in)) (torch.nn.Linear). */
NNDEF nn_module *nn_linear(int in_features, int out_features);
/* nn_linear without the bias. */
NNDEF nn_module *nn_linear_nobias(int in_features, int out_features);
/* Element-wise activations as modules. */
NNDEF nn_module *nn_relu(void);
NNDEF nn_module *nn_sigmoid(void);
NNDEF nn_module *nn_tanh(void);
/* Inverted dropout with probability p, active in training mode only. */
NNDEF nn_module *nn_dropout(float p);
/* [N, ...] -> [N, prod(...)] (torch.nn.Flatten). */
NNDEF nn_module *nn_flatten(void);

/* ===== >>optim =========================================================== */

typedef struct nn_optim nn_optim;

typedef struct nn_sgd_opts {
    float lr;            /* learning rate (0 means 0.01) */
    float momentum;      /* 0: plain SGD */
    float dampening;     /* scales the new gradient in the momentum buffer */
    float weight_decay;  /* L2 penalty added to the gradient */
    int nesterov;        /* Nesterov momentum (needs momentum > 0) */
} nn_sgd_opts;

typedef struct nn_adam_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient (torch.optim.Adam) */
} nn_adam_opts;

/* SGD over m's parameters with torch.optim.SGD's rule:
   b = mu b + (1-dampening) g (b = g at the first step);
   g = nesterov ? g + mu b : b;  p -= lr g,  with g = grad + wd p. */
NNDEF nn_optim *nn_sgd(nn_module *m, nn_sgd_opts opts);
/* Adam (torch.optim.Adam): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). */
NNDEF nn_optim *nn_adam(nn_module *m, nn_adam_opts opts);
/* Zero the gradients of every parameter the optimizer updates. */
NNDEF void nn_zero_grad(nn_optim *o);
/* Apply one update from the accumulated gradients. */
NNDEF void nn_step(nn_optim *o);
/* The current learning rate. */
NNDEF float nn_get_lr(const nn_optim *o);
/* Set the learning rate (schedules call this). */
NNDEF void nn_set_lr(nn_optim *o, float lr);
/* Free the optimizer and its state (not the module).  NULL is ignored. */
NNDEF void nn_optim_free(nn_optim *o);

/* ===== >>data ============================================================ */

/* An IDX file's contents (the MNIST format): dims and the raw bytes. */
typedef struct nn_idx {
    int type;              /* 0x08 ubyte, 0x09 byte, 0x0B short, 0x0C int,
                              0x0D float, 0x0E double */
    int ndim;
    int dims[NN_MAX_DIMS];
    size_t count;          /* product of dims */
    unsigned char *data;   /* count elements, big-endian values converted to
                              host order */
} nn_idx;

/* Decompress a gzip stream (RFC 1952 with RFC 1951 deflate) into a new
   buffer *out of *out_size bytes (free with NN_FREE).  Fails with
   NN_ERR_FORMAT on a corrupt or truncated stream. */
NNDEF nn_status nn_gunzip(const unsigned char *in, size_t in_size,
                          unsigned char **out, size_t *out_size);
/* Read an IDX file, gzip-compressed (".gz", detected by its magic) or not. */
NNDEF nn_status nn_idx_read(const char *path, nn_idx *out);
/* Free an IDX file's data. */
NNDEF void nn_idx_free(nn_idx *idx);

/* A classification dataset kept as bytes: n samples of sample_size bytes
   (pixels 0..255) and their labels. */
typedef struct nn_dataset {
    int n;                 /* number of samples */
    int sample_size;       /* bytes per sample (784 for 28x28) */
    int shape[3];          /* per-sample shape (C, H, W) */
    int nclasses;
    unsigned char *x;      /* n * sample_size bytes */
    int *y;                /* n labels */
} nn_dataset;

/* Load MNIST or Fashion-MNIST from dir: train=1 reads train-images-idx3-ubyte
   and train-labels-idx1-ubyte (".gz" or not), train=0 the t10k files. */
NNDEF nn_status nn_mnist_load(const char *dir, int train, nn_dataset *out);
/* A generated 10-class dataset of n 28x28 images (a stand-in when the real
   data is missing): each class is a distinct stroke pattern plus noise. */
NNDEF nn_status nn_dataset_synthetic(int n, uint64_t seed, nn_dataset *out);
/* Free a dataset's buffers. */
NNDEF void nn_dataset_free(nn_dataset *ds);

typedef struct nn_loader nn_loader;
typedef struct nn_loader_opts {
    int batch_size;        /* 0 means 64 */
    int shuffle;           /* reshuffle every epoch (with the global RNG) */
    int drop_last;         /* skip the last partial batch */
    float scale;           /* pixel multiplier, 0 means 1/255 */
    int image_shape;       /* batches as [B,C,H,W] instead of [B,C*H*W] */
} nn_loader_opts;

/* A minibatch iterator over ds (which must outlive it). */
NNDEF nn_loader *nn_loader_new(const nn_dataset *ds, nn_loader_opts opts);
/* The next batch as a tensor in g (pixels times scale) and its labels; 0 at
   the end of an epoch (the next call starts a new, reshuffled epoch). */
NNDEF int nn_loader_next(nn_loader *l, nn_graph *g, nn_tensor **x, const int **y);
/* Change the batch size from the next epoch on. */
NNDEF void nn_loader_set_batch_size(nn_loader *l, int batch_size);
/* Batches in one epoch. */
NNDEF int nn_loader_batches(const nn_loader *l);
NNDEF void nn_loader_free(nn_loader *l);

#ifdef __cplusplus
}
#endif
#endif /* NN_H */

/* ========================================================================= */
/*                              IMPLEMENTATION                               */
/* ========================================================================= */

#ifdef NN_IMPLEMENTATION
#ifndef NN__IMPLEMENTATION_DONE
#define NN__IMPLEMENTATION_DONE

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <float.h>

/* ===== >>config (implementation) ========================================= */

#if defined(NN_MALLOC) && defined(NN_FREE) && defined(NN_REALLOC)
#elif !defined(NN_MALLOC) && !defined(NN_FREE) && !defined(NN_REALLOC)
#define NN_MALLOC(sz) malloc(sz)
#define NN_REALLOC(p, sz) realloc(p, sz)
#define NN_FREE(p) free(p)
#else
#error "nn.h: define all of NN_MALLOC, NN_REALLOC and NN_FREE, or none"
#endif

#ifndef NN_ASSERT
#include <assert.h>
#define NN_ASSERT(x) assert(x)
#endif

#ifndef NN_GRAPH_BLOCK
#define NN_GRAPH_BLOCK (1u << 20)
#endif

/* Instruction set: forced by NN_NO_SIMD / NN_AVX512 / NN_AVX2 / NN_NEON, else
   taken from the compiler's own macros. */
#if defined(NN_NO_SIMD)
#define NN__SCALAR 1
#elif defined(NN_AVX512)
#ifndef __AVX512F__
#error "nn.h: NN_AVX512 needs -mavx512f (or -march=native on an AVX-512 machine)"
#endif
#define NN__AVX512 1
#elif defined(NN_AVX2)
#if !defined(__AVX2__) || !defined(__FMA__)
#error "nn.h: NN_AVX2 needs -mavx2 -mfma"
#endif
#define NN__AVX2 1
#elif defined(NN_NEON)
#ifndef __ARM_NEON
#error "nn.h: NN_NEON needs an ARM target with NEON"
#endif
#define NN__NEON 1
#elif defined(__AVX512F__)
#define NN__AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#define NN__AVX2 1
#elif defined(__ARM_NEON)
#define NN__NEON 1
#else
#define NN__SCALAR 1
#endif

#if defined(NN__AVX512) || defined(NN__AVX2)
#include <immintrin.h>
#elif defined(NN__NEON)
#include <arm_neon.h>
#endif

#if defined(_OPENMP) && !defined(NN_NO_OPENMP) && !defined(NN_OPENMP)
#define NN_OPENMP 1
#endif
#if defined(NN_OPENMP) && !defined(NN_NO_OPENMP)
#ifndef _OPENMP
#error "nn.h: NN_OPENMP needs -fopenmp"
#endif
#include <omp.h>
#define NN__OMP_ON 1
#define NN__PRAGMA(x) _Pragma(#x)
#define NN__OMP(x) NN__PRAGMA(omp x)
#else
#define NN__OMP(x)
#endif

#if defined(_MSC_VER)
#define NN__THREAD_LOCAL __declspec(thread)
#else
#define NN__THREAD_LOCAL __thread
#endif

#define NN__MIN(a, b) ((a) < (b) ? (a) : (b))
#define NN__MAX(a, b) ((a) > (b) ? (a) : (b))
#define NN_PI 3.14159265358979323846f

/* ===== >>core (implementation) =========================================== */

static NN__THREAD_LOCAL char nn__errbuf[512];
static nn_error_hook nn__hook = NULL;
static void *nn__hook_user = NULL;

NNDEF const char *nn_status_string(nn_status s) {
    switch (s) {
    case NN_OK: return "ok";
    case NN_ERR_OOM: return "out of memory";
    case NN_ERR_IO: return "i/o error";
    case NN_ERR_FORMAT: return "format error";
    case NN_ERR_ARG: return "invalid argument";
    default: return "unknown status";
    }
}

NNDEF const char *nn_error_string(void) { return nn__errbuf; }
NNDEF const char *nn_version_string(void) { return NN_VERSION_STRING; }

/* Record an outside-world failure: sets the thread's message, returns code. */
static nn_status nn__error(nn_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nn__errbuf, sizeof nn__errbuf, fmt, ap);
    va_end(ap);
    return code;
}

NNDEF void nn_set_error_hook(nn_error_hook hook, void *user) {
    nn__hook = hook;
    nn__hook_user = user;
}

/* API misuse: format the message, call the hook (default: print, abort). */
static void nn__misuse(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nn__errbuf, sizeof nn__errbuf, fmt, ap);
    va_end(ap);
    if (nn__hook) {
        nn__hook(nn__errbuf, nn__hook_user);
    } else {
        fprintf(stderr, "nn.h: %s\n", nn__errbuf);
        abort();
    }
}

/* All allocations go through here: NULL and an NN_ERR_OOM message on failure. */
static void *nn__malloc(size_t size) {
    void *p = NN_MALLOC(size ? size : 1);
    if (!p) nn__error(NN_ERR_OOM, "out of memory allocating %zu bytes", size);
    return p;
}
static void *nn__calloc(size_t count, size_t size) {
    void *p;
    if (size && count > (size_t)-1 / size) {
        nn__error(NN_ERR_OOM, "size overflow: %zu x %zu bytes", count, size);
        return NULL;
    }
    p = nn__malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}
static void nn__free(void *p) {
    if (p) NN_FREE(p);
}
/* 64-byte aligned persistent float buffer; the offset is stored before it. */
static float *nn__alloc_floats(size_t n, int zero) {
    unsigned char *raw, *p;
    if (n > ((size_t)-1 - NN_MEM_ALIGN - sizeof(void *)) / sizeof(float)) {
        nn__error(NN_ERR_OOM, "size overflow: %zu floats", n);
        return NULL;
    }
    raw = (unsigned char *)nn__malloc(n * sizeof(float) + NN_MEM_ALIGN + sizeof(void *));
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (NN_MEM_ALIGN - ((uintptr_t)p % NN_MEM_ALIGN)) % NN_MEM_ALIGN;
    memcpy(p - sizeof(void *), &raw, sizeof raw);
    if (zero) memset(p, 0, n * sizeof(float));
    return (float *)p;
}
static void nn__free_floats(float *f) {
    void *raw;
    if (!f) return;
    memcpy(&raw, (unsigned char *)f - sizeof(void *), sizeof raw);
    NN_FREE(raw);
}
static char *nn__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)nn__malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* PCG32 (O'Neill): 64-bit LCG state, permuted 32-bit output. */
static uint64_t nn__rng_state = 0x853c49e6748fea9bULL;
static const uint64_t nn__rng_inc = 0xda3e39cb94b95bdbULL;

static uint32_t nn__rand_u32(void) {
    uint64_t old = nn__rng_state;
    uint32_t xorshifted, rot;
    nn__rng_state = old * 6364136223846793005ULL + nn__rng_inc;
    xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

NNDEF void nn_seed(uint64_t seed) {
    nn__rng_state = 0;
    nn__rand_u32();
    nn__rng_state += seed;
    nn__rand_u32();
}

NNDEF float nn_rand_uniform(void) {
    return (float)(nn__rand_u32() >> 8) * (1.0f / 16777216.0f);
}

NNDEF float nn_rand_normal(void) {
    /* Box-Muller with one draw per call: deterministic and simple. */
    float u1 = ((float)(nn__rand_u32() >> 8) + 1.0f) * (1.0f / 16777217.0f);
    float u2 = nn_rand_uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(2.0f * NN_PI * u2);
}

NNDEF int nn_rand_bernoulli(float p) { return nn_rand_uniform() < p; }

NNDEF uint32_t nn_rand_below(uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m;
    uint32_t l, t;
    if (n == 0) return 0;
    m = (uint64_t)nn__rand_u32() * n;
    l = (uint32_t)m;
    if (l < n) {
        t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)nn__rand_u32() * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

#if defined(NN__OMP_ON)
NNDEF double nn_time(void) { return omp_get_wtime(); }
#elif defined(__unix__) || defined(__APPLE__)
#include <sys/time.h>
NNDEF double nn_time(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}
#else
#include <time.h>
NNDEF double nn_time(void) { return (double)clock() / (double)CLOCKS_PER_SEC; }
#endif

/* ===== >>kernels (implementation) ======================================== */

static int nn__threads = 0;

NNDEF void nn_set_threads(int n) {
    nn__threads = n;
#ifdef NN__OMP_ON
    omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
#endif
}

NNDEF int nn_get_threads(void) {
#ifdef NN__OMP_ON
    return nn__threads > 0 ? nn__threads : omp_get_max_threads();
#else
    return 1;
#endif
}

NNDEF void nn_sgemm_ref(int transA, int transB, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc) {
    int i, j, k;
    for (i = 0; i < M; i++) {
        for (j = 0; j < N; j++) {
            float acc = 0.0f;
            for (k = 0; k < K; k++) {
                float a = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += a * b;
            }
            C[(size_t)i * ldc + j] = beta == 0.0f ? alpha * acc
                                                  : alpha * acc + beta * C[(size_t)i * ldc + j];
        }
    }
}

/* NN_GEMM_IMPL_BEGIN */
NNDEF void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) {
    /* Row-by-row i-k-j order: contiguous inner loop over C and B rows. */
    int i, j, k;
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
        for (k = 0; k < K; k++) {
            float a = alpha * (transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
            if (transB) {
                for (j = 0; j < N; j++) c[j] += a * B[(size_t)j * ldb + k];
            } else {
                const float *b = B + (size_t)k * ldb;
                for (j = 0; j < N; j++) c[j] += a * b[j];
            }
        }
    }
}
/* NN_GEMM_IMPL_END */

#endif /* NN__IMPLEMENTATION_DONE */
#endif /* NN_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
>>license
MIT License

Copyright (c) 2026 the nn.h authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
