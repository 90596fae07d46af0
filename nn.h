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
     NN_MAX_DIMS           6                   most dimensions a tensor can have (4..8)
     NN_MEM_ALIGN          64                  alignment of tensor data (bytes; a
                                               multiple of 64)
     NN_GRAPH_BLOCK        1 MiB               smallest graph-arena block (bytes)
     NN_CSV_MAX_LINE       1 MiB               most bytes in one CSV record
     NN_CSV_MAX_FIELDS     65536               most fields in one CSV record
     NN_CSV_MAX_BYTES      1 GiB               largest CSV file nn_csv_read reads

   CONCEPTS (chapters)

     1. Two lifetimes.  Parameters, their gradients, optimizer state and
        datasets are persistent: owned by modules, optimizers and datasets, and
        freed by their _free function.  Everything a forward and backward pass
        makes lives in a graph (nn_graph), an arena that nn_graph_reset()
        forgets in O(1) while keeping its memory, so a training loop in steady
        state never calls malloc.  An op puts its result in the graph of its
        inputs (inputs from two graphs are misuse); when all its inputs are
        persistent (a penalty over weights), in the calling thread's current
        graph: the one last given to nn_graph_new / nn_graph_reset /
        nn_set_current_graph on that thread.  Only functions that make a
        tensor from nothing take a graph.  A graph tensor lives until the next
        reset: an op or nn_backward given an older one reports misuse.
        Passing NULL as the graph makes a persistent tensor (free it with
        nn_tensor_free).
     2. Autograd is define-by-run.  Each op computes its value at once and,
        when an input requires a gradient and the graph's gradient mode is on,
        records a node.  nn_backward(loss) runs the nodes in reverse and
        accumulates into ->grad; it returns an nn_status (out of memory is
        reported, never a silently missing gradient).  Parameters accumulate
        until nn_zero_grad, which leaves them with no gradient (PyTorch's
        set_to_none): nn_step updates only the parameters that require a
        gradient and received one since.  A module or parameter may be shared
        (used twice, tied weights): it is listed, updated and freed once.
     3. Errors.  What can fail because of the outside world (files, memory)
        returns an nn_status and sets nn_error_string().  Misuse of the API
        (shapes that do not fit, NULL tensors) calls the error hook with a
        message naming the op and the shapes; the default hook prints it and
        aborts.  If an installed hook returns, the op returns NULL.  Every
        argument is checked before it is used, extreme values included (0,
        negative, INT_MAX, NaN): bad input is reported, never a crash, an
        overflow or a hang.
     4. Threads.  Different threads must use different graphs.  The error
        hook and the default RNG are global; nn_set_thread_rng gives a thread
        its own generator, and nn_error_string() is per thread.  Each
        thread that runs kernels keeps a scratch buffer; nn_thread_cleanup()
        frees it before the thread exits.  nn_set_threads sets the size of
        every parallel region.
     5. Determinism.  The same seed gives bitwise the same run, at any number
        of threads.
     6. Names.  nn_relu() is the module, nn_relu_op(x) the function on
        tensors; every layer has both where both make sense (nn_conv2d and
        nn_conv2d_op, nn_maxpool2d and nn_maxpool2d_op, ...), and both check
        their arguments with the same validator.  A misuse message starts
        with the public function the user called: "nn_conv2d: ..." from the
        constructor, "nn_conv2d_op: ..." from the function, and inside a
        module's forward "nn_forward(Conv2d): nn_conv2d_op: ...", naming the
        innermost module running.

   TABLE OF CONTENTS (each name is a grep tag: search for ">>name"; the
   declarations and the implementation follow this order, and no section
   calls one below it)

     >>config      portability, allocator hooks, SIMD and OpenMP selection
     >>core        status codes, errors, random generators (nn_rng, the
                   global default, per-thread override, state get/set), timing
     >>kernels     nn_sgemm, thread teams, the element-wise kernels and the
                   one sum reduction
       >>kernels.conv  im2col/col2im, the direct and depthwise convolution
                   engines (scratch memory comes from the caller)
       >>kernels.norm  normalization statistics and the scale-and-shift pass
     >>graph       nn_graph: the per-step arena and the tape, generations
                   (stale tensors), the per-thread current graph
     >>tensor      nn_tensor, shapes, creation, views, printing
     >>autograd    nn_backward (returns an nn_status), anomaly detection,
                   every differentiable op
     >>losses      cross-entropy (class weights, ignore_index, soft targets),
                   NLL, MSE, L1, smooth L1, Huber, BCE (and with logits), KL,
                   Gaussian NLL, margin losses (multi-margin, cosine
                   embedding, ranking, triplet); none/mean/sum reductions
     >>modules     the module interface, lookups by name (nn_child,
                   nn_param), shared modules and weights, the forward hook,
                   sequential, linear, ReLU/sigmoid/tanh, dropout, flatten,
                   the fixed Hadamard classifier
     >>layers      convolutional, normalization and sequence layers, by
                   sub-tag:
       >>layers.conv   conv1d/2d, transposed conv (ops and modules)
       >>layers.pool   max/average pooling, global pooling, upsampling
       >>layers.norm   batch, layer, RMS, group and instance norm, ghost
                   batch norm, batch renormalization, weight and spectral
                   norm (one shared core)
       >>layers.act    every activation (one framework with the SIMD
                   element-wise ops), softmax and log-softmax modules
       >>layers.seq    embeddings, index ops, recurrent layers, attention
     >>regularizers  the dropout family (channel, alpha, Gaussian, noise,
                   locked, DropConnect), information dropout, residual
                   blocks with stochastic depth, Shake-Shake and ShakeDrop,
                   penalties and max-norm, mixup and CutMix
     >>init        initializers (torch.nn.init), applying them by name,
                   LSUV, Fixup
     >>data        gzip inflate, IDX files, datasets (byte images and
                   float/tabular), CSV files, train/val/test splits,
                   standardization, minibatch loader
       >>data.augment  image augmentation pipelines (flips, crops, affine,
                   jitter, cutout, erasing, occlusion); adversarial
                   examples (FGSM, PGD, robust accuracy)
     >>optim       SGD, SGDW, AdaGrad, RMSprop, Adadelta, Adam(W), AMSGrad,
                   Adamax, NAdam, RAdam, LARS, LAMB, Lookahead, Ranger;
                   parameter groups; clipping; max-norm constraints; step
                   hooks; LR, momentum and batch-size schedules
     >>io          optimizer and schedule state; safetensors model files
                   (nn_save/nn_load, memory buffers, atomic writes);
                   checkpoints
       >>io.png        PNG images (stored-deflate writer, image grids)
     >>train       evaluation (accuracy), SVG plots (line plots, figures of
                   panels, heat maps), the LR range test, snapshot ensembles
       >>train.fit     nn_fit: the training loop, progress bar, validation,
                   early stopping (patience, Prechelt's GL/PQ/UP),
                   checkpoints and resume, CSV/SVG logs
       >>train.metrics top-k, confusion matrix, precision/recall/F1,
                   MAE/RMSE/R2, the model summary (nn_summary)
       >>train.tools   hyper-parameter search (random, grid, refinement,
                   successive halving), lottery-ticket pruning, NID
                   interaction detection, sanity checks
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
#if NN_MEM_ALIGN % 64 != 0
#error "nn.h: NN_MEM_ALIGN must be a multiple of 64 (the AVX-512 kernels store aligned)"
#endif
#if NN_MAX_DIMS < 4 || NN_MAX_DIMS > 8
#error "nn.h: NN_MAX_DIMS must be between 4 and 8"
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
/* Install the misuse hook (see nn_error_hook above); NULL restores the default. */
NNDEF void nn_set_error_hook(nn_error_hook hook, void *user);

/* Seed the current random generator (PCG32): this thread's override from
   nn_set_thread_rng, else the global one.  Same seed, same run. */
NNDEF void nn_seed(uint64_t seed);
/* Uniform float in [0, 1), from the current generator. */
NNDEF float nn_rand_uniform(void);
/* Standard normal float (Box-Muller), from the current generator. */
NNDEF float nn_rand_normal(void);
/* 1 with probability p, else 0, from the current generator. */
NNDEF int nn_rand_bernoulli(float p);
/* Uniform integer in [0, n), from the current generator. */
NNDEF uint32_t nn_rand_below(uint32_t n);
/* A random generator object (PCG32), e.g. so data order, initialisation and
   dropout each draw from their own stream, or so threads draw independently.
   The nn_rand_* functions and nn_seed use the current generator: this
   thread's override (nn_set_thread_rng), else the global one.  PyTorch:
   torch.Generator. */
typedef struct nn_rng nn_rng;
/* Everything needed to resume a generator's stream exactly (words[0] the
   PCG state, words[1] its odd increment, words[2..3] zero: nn_rng_normal
   keeps no cached value).  Plain data: save it anywhere. */
typedef struct nn_rng_state {
    uint64_t words[4];
} nn_rng_state;
/* A new generator seeded with seed: the same stream nn_seed(seed) gives the
   global one.  Free it with nn_rng_free; NULL when out of memory. */
NNDEF nn_rng *nn_rng_new(uint64_t seed);
/* Free a generator from nn_rng_new (NULL is ignored).  Not the default one;
   a thread still using it as its override must set another first. */
NNDEF void nn_rng_free(nn_rng *r);
/* Restart r's stream from seed (torch.Generator.manual_seed). */
NNDEF void nn_rng_seed(nn_rng *r, uint64_t seed);
/* Uniform float in [0, 1) from r (24 random bits). */
NNDEF float nn_rng_uniform(nn_rng *r);
/* Standard normal float from r (Box-Muller, two uniforms per call). */
NNDEF float nn_rng_normal(nn_rng *r);
/* 1 with probability p, else 0, from r. */
NNDEF int nn_rng_bernoulli(nn_rng *r, float p);
/* Uniform integer in [0, n) from r, unbiased; 0 when n is 0. */
NNDEF uint32_t nn_rng_below(nn_rng *r, uint32_t n);
/* The global generator that nn_seed seeds (owned by the library). */
NNDEF nn_rng *nn_default_rng(void);
/* Copy r's state to *out; nn_rng_set_state(r2, out) then makes r2 continue
   r's stream bitwise (torch.Generator.get_state / set_state). */
NNDEF void nn_rng_get_state(const nn_rng *r, nn_rng_state *out);
/* Make r resume the stream saved in *st (an even increment is misuse). */
NNDEF void nn_rng_set_state(nn_rng *r, const nn_rng_state *st);
/* Make this thread's draws (initialisation, dropout, nn_randn, nn_rand_*,
   loader shuffles) use r instead of the global generator; NULL restores the
   global.  Returns this thread's previous override (NULL if none). */
NNDEF nn_rng *nn_set_thread_rng(nn_rng *r);
/* Wall-clock seconds from an arbitrary origin, for timing. */
NNDEF double nn_time(void);

/* ===== >>kernels ========================================================= */

/* C = alpha * op(A) op(B) + beta * C, row-major, BLAS semantics: op(A) is
   M x K (A^T when transA), op(B) is K x N, C is M x N; lda/ldb/ldc are row
   strides.  beta == 0 overwrites C without reading it.  Zero sizes do
   nothing; a negative size, a NULL operand that would be read, or a leading
   dimension below its row length (lda < K, or M when transA) is misuse. */
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
/* Adaptive teams for the calling thread (on by default, off on Windows): the
   calling thread's regions run alone while its team gets clearly less CPU
   time than it asked for, as when another process holds a core
   (docs/performance.md, "Threads on a busy machine").  Same bits either
   way.  Returns the previous setting. */
NNDEF int nn_set_adaptive_threads(int on);
/* Free the calling thread's kernel scratch memory (sgemm's packing buffer,
   kept between calls so training never allocates).  Call it before a thread
   that used nn.h exits; the next call simply allocates again. */
NNDEF void nn_thread_cleanup(void);

/* ===== >>graph =========================================================== */

typedef struct nn_graph nn_graph;
typedef struct nn_tensor nn_tensor;
typedef struct nn__node nn__node;

/* A new empty graph: the arena for one step's tensors and the tape.  It
   becomes the calling thread's current graph.  NULL when out of memory. */
NNDEF nn_graph *nn_graph_new(void);
/* Forget every tensor and node of g in O(1), keeping the memory for reuse,
   and make g the calling thread's current graph.  A tensor of g made before
   the reset is stale: an op or nn_backward given one reports misuse. */
NNDEF void nn_graph_reset(nn_graph *g);
/* Free g and all its tensors (if g is the thread's current graph, the thread
   has none after).  NULL is ignored. */
NNDEF void nn_graph_free(nn_graph *g);
/* The calling thread's current graph (NULL if none): where an op whose inputs
   are all persistent (an expression over parameters, say) puts its result. */
NNDEF nn_graph *nn_current_graph(void);
/* Make g (or NULL: none) the calling thread's current graph; nn_graph_new and
   nn_graph_reset do it implicitly.  Per thread (thread-local). */
NNDEF void nn_set_current_graph(nn_graph *g);
/* Turn recording of gradient nodes on or off for g (torch.no_grad); returns
   the previous setting.  Off saves memory and time in evaluation. */
NNDEF int nn_set_grad_enabled(nn_graph *g, int on);
/* Anomaly detection for g (torch.autograd.detect_anomaly): every op checks
   that its inputs are finite and every backward step that the gradients it
   produced are; the first NaN or inf is reported through the error hook,
   naming the op that made it.  Slow; for debugging.  Returns the previous. */
NNDEF int nn_set_anomaly_detection(nn_graph *g, int on);
/* Bytes the graph's arena holds (its high-water mark). */
NNDEF size_t nn_graph_capacity(const nn_graph *g);

/* ===== >>tensor ========================================================== */

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
    unsigned gen;             /* the graph's generation it was made in */
    int refs;                 /* modules holding it as a parameter or buffer */
};
#define NN_TENSOR_REQUIRES_GRAD 1u
#define NN_TENSOR_PERSISTENT 2u   /* data and grad are malloc'd, not arena */
#define NN_TENSOR_VIEW 4u         /* data belongs to another tensor */
#define NN_TENSOR_INT64 8u        /* data holds numel int64_t (8 bytes each;
                                     cast to int64_t *), never enters float ops */
#define NN_TENSOR_HAS_GRAD 16u    /* persistent: grad holds a gradient accumulated
                                     since the last nn_zero_grad */

/* A shape from 0..NN_MAX_DIMS sizes: nn_shape_make(2, 128, 784). */
NNDEF nn_shape nn_shape_make(int ndim, ...);
/* The number of arguments, 1 to 64. */
#define NN__NARG(...) NN__NARG_(__VA_ARGS__, 64, 63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, \
    52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, \
    29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, \
    5, 4, 3, 2, 1, 0)
#define NN__NARG_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, \
    a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, a32, a33, a34, a35, \
    a36, a37, a38, a39, a40, a41, a42, a43, a44, a45, a46, a47, a48, a49, a50, a51, a52, a53, \
    a54, a55, a56, a57, a58, a59, a60, a61, a62, a63, a64, n, ...) n
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
/* Free a persistent tensor (made with g == NULL).  NULL is ignored; a
   module's parameter or buffer is a misuse (nn_module_free frees it). */
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

/* ===== >>autograd ======================================================== */

/* Mark t as needing a gradient (or not).  A persistent tensor gets a
   persistent, zeroed gradient buffer.  A parameter with it off is frozen
   (requires_grad_(False)): no gradient accumulates into it and optimizers
   and clipping skip it.  Returns t. */
NNDEF nn_tensor *nn_requires_grad(nn_tensor *t, int on);
/* Whether a gradient flows to t. */
NNDEF int nn_needs_grad(const nn_tensor *t);
/* The gradient's data after nn_backward (NULL if none reached t).  For a
   persistent tensor (a parameter), NULL also when no gradient reached it
   since the last nn_zero_grad (PyTorch's p.grad is None after
   zero_grad(set_to_none=True)). */
NNDEF float *nn_grad(nn_tensor *t);
/* A persistent t's gradient buffer, to write a gradient by hand (PyTorch:
   assigning p.grad): zeroed first when t holds no gradient since the last
   nn_zero_grad; from then on it is t's gradient for nn_grad, nn_step and
   clipping.  NULL (misuse) when t is not persistent or needs no gradient. */
NNDEF float *nn_grad_buffer(nn_tensor *t);
/* Backpropagate from the one-element tensor loss: d loss / d t accumulates
   into t->grad for every t that requires a gradient.  NN_OK, or NN_ERR_OOM
   (nn_error_string names the op and input) when a gradient buffer could not
   be allocated: the gradients are then incomplete, so skip the step;
   NN_ERR_ARG after a misuse report (torch.Tensor.backward). */
NNDEF nn_status nn_backward(nn_tensor *loss);

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
/* x W^T + b for x [...,in] (leading dims folded), W [out,in], b [out] or NULL
   (torch F.linear). */
NNDEF nn_tensor *nn_linear_op(nn_tensor *x, nn_tensor *w, nn_tensor *b);
/* Inverted dropout: zero each element with probability p and scale the rest
   by 1/(1-p); the identity when training is 0 or p is 0. */
NNDEF nn_tensor *nn_dropout_op(nn_tensor *a, float p, int training);
/* Index of the largest value in each row of a 2-D tensor, into out[rows]:
   the first maximal one, or the first NaN if the row has one (torch.argmax). */
NNDEF void nn_argmax_rows(const nn_tensor *a, int *out);

/* ===== >>losses ========================================================== */

/* How a loss reduces its per-element (or per-sample) values.  0 is the
   default, PyTorch's reduction='mean'. */
typedef enum nn_reduction {
    NN_REDUCE_MEAN = 0,      /* the mean (weighted where the loss says so; default) */
    NN_REDUCE_SUM = 1,       /* the sum */
    NN_REDUCE_NONE = 2,      /* no reduction: the per-element / per-sample tensor */
    NN_REDUCE_BATCHMEAN = 3  /* nn_kl_div only: the sum / the batch size (input's dim 0) */
} nn_reduction;

/* Options of nn_cross_entropy and nn_cross_entropy_soft; {0} is PyTorch's
   default.  The first two fields keep their place ({eps, reduction}). */
typedef struct nn_ce_opts {
    float label_smoothing;    /* eps in [0,1]: target = (1-eps) target + eps/C */
    nn_reduction reduction;   /* mean (default), sum or none */
    const float *weight;      /* C class weights (not differentiated), or NULL: all 1 */
    int ignore_index;         /* labels equal to it are skipped (integer labels only) ... */
    int use_ignore_index;     /* ... when this is nonzero; else PyTorch's default -100 */
} nn_ce_opts;

/* Options of nn_nll_loss; {0} is PyTorch's default. */
typedef struct nn_nll_opts {
    nn_reduction reduction;   /* mean (sum of w[y] l / sum of w[y]), sum or none */
    const float *weight;      /* C class weights (not differentiated), or NULL: all 1 */
    int ignore_index;         /* labels equal to it are skipped ... */
    int use_ignore_index;     /* ... when this is nonzero; else PyTorch's default -100 */
} nn_nll_opts;

/* Options of nn_binary_cross_entropy(_with_logits); {0} is PyTorch's default. */
typedef struct nn_bce_opts {
    nn_reduction reduction;   /* mean (default), sum or none */
    nn_tensor *weight;        /* broadcastable to the input: scales each element, or NULL */
    nn_tensor *pos_weight;    /* with logits only: broadcastable (e.g. [C]) weight of the
                                 positive term, or NULL (neither is differentiated) */
} nn_bce_opts;

/* Options of nn_smooth_l1_loss; {0} is PyTorch's default. */
typedef struct nn_smooth_l1_opts {
    nn_reduction reduction;
    float beta;               /* 0 means 1; > 0 (beta 0 is nn_l1_loss) */
} nn_smooth_l1_opts;

/* Options of nn_huber_loss; {0} is PyTorch's default. */
typedef struct nn_huber_opts {
    nn_reduction reduction;
    float delta;              /* 0 means 1; > 0 */
} nn_huber_opts;

/* Options of nn_kl_div; {0} is PyTorch's default (reduction 'mean', which
   averages over elements; NN_REDUCE_BATCHMEAN is the true KL divergence). */
typedef struct nn_kl_div_opts {
    nn_reduction reduction;
    int log_target;           /* nonzero: target holds log-probabilities */
} nn_kl_div_opts;

/* Options of nn_gaussian_nll_loss; {0} is PyTorch's default. */
typedef struct nn_gaussian_nll_opts {
    nn_reduction reduction;
    int full;                 /* nonzero: add the constant 0.5 log(2 pi) */
    float eps;                /* var is clamped to >= eps: 0 means 1e-6, < 0 means no clamp */
} nn_gaussian_nll_opts;

/* Options of nn_multi_margin_loss; {0} is PyTorch's default. */
typedef struct nn_multi_margin_opts {
    nn_reduction reduction;
    int p;                    /* 1 or 2; 0 means 1 */
    float margin;             /* 0 means 1, unless zero_margin */
    int zero_margin;          /* nonzero: a margin of exactly 0 */
    const float *weight;      /* C class weights (not differentiated), or NULL */
} nn_multi_margin_opts;

/* Options of nn_cosine_embedding_loss and nn_margin_ranking_loss; {0} is
   PyTorch's default. */
typedef struct nn_margin_opts {
    nn_reduction reduction;
    float margin;             /* default 0 */
} nn_margin_opts;

/* Options of nn_triplet_margin_loss; {0} is PyTorch's default. */
typedef struct nn_triplet_opts {
    nn_reduction reduction;
    float margin;             /* 0 means 1, unless zero_margin */
    int zero_margin;          /* nonzero: a margin of exactly 0 */
    float p;                  /* the norm's degree, > 0; 0 means 2 */
    float eps;                /* added to the difference: 0 means 1e-6, < 0 means 0 */
    int swap;                 /* nonzero: the distance swap (Balntas et al. 2016) */
} nn_triplet_opts;

/* Cross-entropy of logits [N,C] (or [N,C,d...]) against integer labels[N]
   ([N,d...] flattened) in [0,C), through a stable log-softmax, with class
   weights, ignore_index and label smoothing as F.cross_entropy.  Weighted
   mean: divided by the sum of w[label] over the kept labels.  A scalar, or
   [N] ([N,d...]) with NN_REDUCE_NONE. */
NNDEF nn_tensor *nn_cross_entropy(nn_tensor *logits, const int *labels, nn_ce_opts opts);
/* Cross-entropy against class probabilities (soft labels, e.g. mixup):
   -sum_c w_c t_c log_softmax(logits)_c, t = (1-eps) target_probs + eps/C, same
   shape as logits; mean over samples (F.cross_entropy with probability
   targets).  Differentiable in both; ignore_index does not apply. */
NNDEF nn_tensor *nn_cross_entropy_soft(nn_tensor *logits, nn_tensor *target_probs,
                                       nn_ce_opts opts);
/* Negative log-likelihood -w[y] log_probs[y] of log_probs [N,C] ([N,C,d...])
   at integer labels; weighted mean as nn_cross_entropy (F.nll_loss). */
NNDEF nn_tensor *nn_nll_loss(nn_tensor *log_probs, const int *labels, nn_nll_opts opts);
/* Mean squared error mean((pred - target)^2), equal shapes (F.mse_loss). */
NNDEF nn_tensor *nn_mse(nn_tensor *pred, nn_tensor *target);
/* (pred - target)^2 with a reduction; equal shapes, differentiable in both
   (F.mse_loss). */
NNDEF nn_tensor *nn_mse_loss(nn_tensor *pred, nn_tensor *target, nn_reduction reduction);
/* |pred - target| with a reduction; equal shapes (F.l1_loss). */
NNDEF nn_tensor *nn_l1_loss(nn_tensor *pred, nn_tensor *target, nn_reduction reduction);
/* 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, d = pred - target
   (F.smooth_l1_loss). */
NNDEF nn_tensor *nn_smooth_l1_loss(nn_tensor *pred, nn_tensor *target, nn_smooth_l1_opts opts);
/* 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (F.huber_loss). */
NNDEF nn_tensor *nn_huber_loss(nn_tensor *pred, nn_tensor *target, nn_huber_opts opts);
/* Binary cross-entropy -w (y log x + (1-y) log(1-x)) of probabilities x in
   [0,1], each log clamped at -100 (F.binary_cross_entropy). */
NNDEF nn_tensor *nn_binary_cross_entropy(nn_tensor *probs, nn_tensor *target, nn_bce_opts opts);
/* -w (p y log s(x) + (1-y) log(1-s(x))), s the sigmoid, p = pos_weight,
   computed stably from logits (F.binary_cross_entropy_with_logits). */
NNDEF nn_tensor *nn_binary_cross_entropy_with_logits(nn_tensor *logits, nn_tensor *target,
                                                     nn_bce_opts opts);
/* KL divergence t (log t - x) of log-probabilities x against target t
   (exp(t) (t - x) with log_target); equal shapes (F.kl_div). */
NNDEF nn_tensor *nn_kl_div(nn_tensor *input, nn_tensor *target, nn_kl_div_opts opts);
/* 0.5 (log v + (x - y)^2 / v) (+ 0.5 log 2 pi when full), v = max(var, eps);
   var has x's shape, or it without (or with size 1 in) the last dimension;
   var >= 0 (F.gaussian_nll_loss). */
NNDEF nn_tensor *nn_gaussian_nll_loss(nn_tensor *input, nn_tensor *target, nn_tensor *var,
                                      nn_gaussian_nll_opts opts);
/* Multi-class hinge sum_{i != y} w[y] max(0, margin - x_y + x_i)^p / C of
   input [N,C] (or [C]) at integer labels[N] (F.multi_margin_loss). */
NNDEF nn_tensor *nn_multi_margin_loss(nn_tensor *input, const int *labels,
                                      nn_multi_margin_opts opts);
/* 1 - cos(x1, x2) where target is 1, max(0, cos - margin) where it is -1,
   else 0; x1, x2 [N,D], target [N] (or [D] and a scalar) (F.cosine_embedding_loss). */
NNDEF nn_tensor *nn_cosine_embedding_loss(nn_tensor *x1, nn_tensor *x2, nn_tensor *target,
                                          nn_margin_opts opts);
/* max(0, -y (x1 - x2) + margin), equal shapes (F.margin_ranking_loss). */
NNDEF nn_tensor *nn_margin_ranking_loss(nn_tensor *x1, nn_tensor *x2, nn_tensor *target,
                                        nn_margin_opts opts);
/* max(0, margin + d(a, p) - d(a, n)), d(u, v) = ||u - v + eps||_p over the last
   dimension, equal shapes [N,D] ([D]); swap uses min(d(a,n), d(p,n))
   (F.triplet_margin_loss). */
NNDEF nn_tensor *nn_triplet_margin_loss(nn_tensor *anchor, nn_tensor *positive,
                                        nn_tensor *negative, nn_triplet_opts opts);

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
   custom one.  A module may be the child of several modules and a tensor
   the parameter of several (tied weights): both are reference counted and
   freed with their last owner. */
struct nn_module {
    const char *type;            /* "Linear", "Sequential", ... */
    nn_forward_fn forward;
    void (*destroy)(nn_module *self);  /* frees `user` state, may be NULL */
    void *user;                  /* the module's own state */
    nn_param *params;            /* its own parameters, local names */
    int nparams;
    nn_param *buffers;           /* its own persistent non-trained state
                                    (running statistics), local names */
    int nbuffers;
    nn_module **children;
    char **child_names;
    int nchildren;
    int training;                /* 1 in training mode (the default) */
    nn_param *all;               /* cache for nn_parameters, dotted names */
    int nall;
    nn_param *allbuf;            /* cache for nn_buffers */
    int nallbuf;
    /* private */
    int refs;                    /* modules holding it as a child */
    unsigned long version;       /* bumped by every add to this module */
    unsigned long all_sig, allbuf_sig;  /* tree signature of the caches, 0: none */
    int saved_training;          /* nn__train_save / nn__train_restore */
};

/* A custom module of the given type name with a forward function; add
   parameters and children with the two functions below. */
NNDEF nn_module *nn_module_new(const char *type, nn_forward_fn forward);
/* Give m the persistent parameter t under the local name (e.g. "weight",
   copied); m owns t from now on (and frees it if this fails, unless another
   module holds it).  A tensor another module already holds is shared (tied
   weights): listed and updated once, freed with its last module.  Returns
   t, NULL when out of memory. */
NNDEF nn_tensor *nn_module_add_param(nn_module *m, const char *name, nn_tensor *t);
/* Give m the persistent buffer t (state saved with the model but not
   trained, e.g. "running_mean"; the name is copied); m owns t.  Returns t. */
NNDEF nn_tensor *nn_module_add_buffer(nn_module *m, const char *name, nn_tensor *t);
/* Give m the child c under name (e.g. "conv1", copied); m owns c from now on
   (and frees it if this fails, unless another module holds it).  A child may
   be added to several modules, or twice (shared weights); it is freed with
   its last parent.  Making m its own descendant is a misuse.  Returns c,
   NULL when out of memory. */
NNDEF nn_module *nn_module_add_child(nn_module *m, const char *name, nn_module *c);
/* Run the module on x (its forward function). */
NNDEF nn_tensor *nn_forward(nn_module *m, nn_tensor *x);
/* Called by nn_forward on this thread after every module's forward, with the
   module, its input and its output (NULL after a misuse): one hook for all
   modules (filter on m), as PyTorch's register_forward_hook on each. */
typedef void (*nn_forward_hook)(nn_module *m, nn_tensor *x, nn_tensor *y, void *user);
/* Install this thread's forward hook (NULL removes it); returns the previous
   one and puts its user pointer in *prev_user (if not NULL). */
NNDEF nn_forward_hook nn_set_forward_hook(nn_forward_hook hook, void *user, void **prev_user);
/* Training mode on (dropout active, batch statistics) or off (evaluation),
   for m and all its children. */
NNDEF void nn_train_mode(nn_module *m, int on);
/* 1 when m is in training mode, 0 in evaluation (module.training). */
NNDEF int nn_is_training(const nn_module *m);
/* All parameters of m and its children with dotted names, in registration
   order; a tensor reached twice (shared module, tied weight) is listed once
   under its first name, as PyTorch's named_parameters.  The array belongs
   to m and stays valid until m is freed or a parameter, buffer or child is
   added anywhere in its tree (the library's own calls never invalidate it).
   NULL with *count 0 for none (or out of memory). */
NNDEF nn_param *nn_parameters(nn_module *m, int *count);
/* All buffers of m and its children with dotted names ("1.running_mean"),
   like nn_parameters. */
NNDEF nn_param *nn_buffers(nn_module *m, int *count);
/* Total number of parameter elements of m (shared tensors counted once). */
NNDEF size_t nn_parameter_count(nn_module *m);
/* The child of m at a dotted path ("body", "body.0"), or NULL
   (get_submodule). */
NNDEF nn_module *nn_child(nn_module *m, const char *path);
/* The parameter or buffer of m at a dotted name ("fc1.weight",
   "1.running_mean"), or NULL (get_parameter / get_buffer).  Also spelled
   nn_param(m, name); nn_param without arguments is the struct type. */
NNDEF nn_tensor *nn_param_get(nn_module *m, const char *name);
#define nn_param(m, name) nn_param_get((m), (name))
/* Free m, its parameters and its children (each shared one with its last
   owner).  Freeing a module that is still another module's child is a
   misuse: free the root.  NULL is ignored. */
NNDEF void nn_module_free(nn_module *m);

/* Runs its children in order: nn_sequential(a, b, c, NULL), at most 63
   children; the list must end with NULL.  Owns the children.  Any other
   NULL is a child whose constructor failed: a misuse report naming its
   position, the other children are freed and the result is NULL (also when
   out of memory).  A child given twice is shared (run twice, one set of
   weights). */
#define nn_sequential(...) nn_sequential_n(NN__NARG(__VA_ARGS__), __VA_ARGS__)
/* nn_sequential with the argument count: count arguments, the last NULL. */
NNDEF nn_module *nn_sequential_n(int count, ...);
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
/* Fixed Hadamard classifier (Hoffer et al. 2018, "Fix your classifier"):
   y = scale (x/|x|) H^T (+ bias), x [N,in], H [out,in] the top-left block of
   the +-1 Sylvester Hadamard matrix of order 2^ceil(log2 max(in,out)): fixed,
   no gradient, neither a parameter nor in the state dict.  Parameters
   "scale" [1] (1/sqrt(out) at first) and, when bias, "bias" [out].  H's
   first row is all ones: give it features that can be negative (no ReLU). */
NNDEF nn_module *nn_hadamard_linear(int in_features, int out_features, int bias);
/* The fixed matrix H [out,in] of an nn_hadamard_linear module (owned by it). */
NNDEF const nn_tensor *nn_hadamard_matrix(const nn_module *m);

/* ===== >>layers ========================================================== */
/* Convolution, pooling, batch norm and the activations CNNs use.  Tensors are
   NCHW ([N,C,H,W]) for 2-D layers and NCL ([N,C,L]) for 1-D layers; in the
   shape comments OH = (H + 2P - D(K-1) - 1)/S + 1 (rounded down). */

/* ----- >>layers.conv: convolutions --------------------------------------- */

/* Options of the convolutions; zero means the default in every field. */
typedef struct nn_conv_opts {
    int kernel;          /* kernel size K (square), required by the modules */
    int stride;          /* S, 0 means 1 */
    int padding;         /* P zeros on every side, 0 means none */
    int dilation;        /* D, spacing of the kernel taps, 0 means 1 */
    int groups;          /* G, 0 means 1; groups == in_ch is depthwise */
    int no_bias;         /* 1: no bias (PyTorch bias=False); a bias by default */
    int output_padding;  /* conv_transpose only: extra rows/cols at the end */
} nn_conv_opts;

/* 2-D convolution (F.conv2d): x [N,C,H,W], w [OC,C/G,K,K], b [OC] or NULL ->
   [N,OC,OH,OW].  K comes from w (opts.kernel, if set, must agree). */
NNDEF nn_tensor *nn_conv2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts);
/* 1-D convolution (F.conv1d): x [N,C,L], w [OC,C/G,K], b [OC] or NULL ->
   [N,OC,OL] with OL = (L + 2P - D(K-1) - 1)/S + 1. */
NNDEF nn_tensor *nn_conv1d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts);
/* Transposed 2-D convolution (F.conv_transpose2d), the gradient of conv2d
   with respect to its input: x [N,C,H,W], w [C,OC/G,K,K], b [OC] or NULL ->
   [N,OC,OH,OW] with OH = (H-1)S - 2P + D(K-1) + output_padding + 1. */
NNDEF nn_tensor *nn_conv_transpose2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b,
                                        nn_conv_opts opts);

/* Conv2d module (torch.nn.Conv2d): parameters "weight" [out_ch,in_ch/G,K,K]
   and "bias" [out_ch], both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
   fan_in = in_ch/G*K*K (PyTorch's default init). */
NNDEF nn_module *nn_conv2d(int in_ch, int out_ch, nn_conv_opts opts);
/* Conv1d module (torch.nn.Conv1d): "weight" [out_ch,in_ch/G,K], "bias"
   [out_ch], initialized like nn_conv2d with fan_in = in_ch/G*K. */
NNDEF nn_module *nn_conv1d(int in_ch, int out_ch, nn_conv_opts opts);
/* ConvTranspose2d module (torch.nn.ConvTranspose2d): "weight"
   [in_ch,out_ch/G,K,K], "bias" [out_ch], U(+-1/sqrt(fan_in)) with
   fan_in = out_ch/G*K*K as PyTorch computes it for this layer. */
NNDEF nn_module *nn_conv_transpose2d(int in_ch, int out_ch, nn_conv_opts opts);

/* ----- >>layers.pool: pooling and upsampling ----------------------------- */

/* Options of the pooling layers; zero means the default. */
typedef struct nn_pool_opts {
    int kernel;          /* window size K (square), required */
    int stride;          /* 0 means kernel */
    int padding;         /* at most kernel/2; max pooling pads with -inf,
                            average pooling with zeros that count in the
                            divisor (count_include_pad=True) */
} nn_pool_opts;

/* Max over K x K windows (F.max_pool2d): [N,C,H,W] -> [N,C,OH,OW].  The
   gradient goes to the first maximal element of each window. */
NNDEF nn_tensor *nn_maxpool2d_op(nn_tensor *x, nn_pool_opts opts);
/* Mean over K x K windows, divisor K*K (F.avg_pool2d): [N,C,H,W] -> [N,C,OH,OW]. */
NNDEF nn_tensor *nn_avgpool2d_op(nn_tensor *x, nn_pool_opts opts);
/* Max over windows of K along L (F.max_pool1d): [N,C,L] -> [N,C,OL]. */
NNDEF nn_tensor *nn_maxpool1d_op(nn_tensor *x, nn_pool_opts opts);
/* Mean over windows of K along L (F.avg_pool1d): [N,C,L] -> [N,C,OL]. */
NNDEF nn_tensor *nn_avgpool1d_op(nn_tensor *x, nn_pool_opts opts);
/* Mean over all positions of each channel (AdaptiveAvgPool2d(1)):
   [N,C,H,W] -> [N,C,1,1], [N,C,L] -> [N,C,1]. */
NNDEF nn_tensor *nn_global_avgpool_op(nn_tensor *x);
/* Nearest-neighbour upsampling by an integer factor (F.interpolate(
   scale_factor=s, mode="nearest")): [N,C,H,W] -> [N,C,sH,sW]. */
NNDEF nn_tensor *nn_upsample_nearest2d_op(nn_tensor *x, int scale);

/* Pooling modules (torch.nn.MaxPool2d, AvgPool2d, MaxPool1d, AvgPool1d,
   AdaptiveAvgPool2d(1), Upsample(scale_factor=s)); no parameters. */
NNDEF nn_module *nn_maxpool2d(nn_pool_opts opts);
NNDEF nn_module *nn_avgpool2d(nn_pool_opts opts);
NNDEF nn_module *nn_maxpool1d(nn_pool_opts opts);
NNDEF nn_module *nn_avgpool1d(nn_pool_opts opts);
NNDEF nn_module *nn_global_avgpool(void);
NNDEF nn_module *nn_upsample_nearest2d(int scale);

/* ----- >>layers.norm: normalization -------------------------------------- */
/* One engine normalizes every member (>>kernels.norm): the mean and variance
   over a set of axes, then y = (x - mean) / sqrt(var + eps) * weight + bias.
   Formulas and PyTorch names: docs/normalization.md. */

/* Options of the normalization modules; zero means the default in every
   field (C++: nn_norm_opts o = {}; o.eps = ...). */
typedef struct nn_norm_opts {
    float eps;            /* added to the variance: 0 means 1e-5 (RMSNorm: FLT_EPSILON,
                             torch's eps=None); negative is misuse */
    float momentum;       /* of the running statistics: 0 means 0.1;
                             NN_MOMENTUM_CUMULATIVE is PyTorch's momentum=None */
    int affine;           /* learned weight and bias: 0 the layer's default (on; off
                             for InstanceNorm), 1 on, -1 off (elementwise_affine) */
    int track_running_stats; /* 0 the default (on for BatchNorm, off for
                             InstanceNorm), 1 on, -1 off */
    int virtual_batch;    /* BatchNorm: ghost batch norm over consecutive virtual
                             batches of this many samples; 0 the whole batch */
    float r_max, d_max;   /* batch renormalization's clips: 0 means 3 and 5 */
    int warmup;           /* batch renormalization: plain batch norm while
                             num_batches_tracked < warmup */
} nn_norm_opts;
/* nn_norm_opts.momentum for a cumulative moving average (momentum=None). */
#define NN_MOMENTUM_CUMULATIVE (-1.0f)

/* Batch normalization (F.batch_norm) of x [N,C], [N,C,L] or [N,C,H,W] per
   channel: y = (x - mean) / sqrt(var + eps) * weight + bias.  Training: batch
   mean and biased variance, and running_mean/var (persistent [C] tensors, or
   NULL) move by momentum towards the batch mean and the unbiased variance.
   Evaluation: the running statistics.  weight and bias [C] may be NULL. */
NNDEF nn_tensor *nn_batch_norm_op(nn_tensor *x, nn_tensor *running_mean,
                                  nn_tensor *running_var, nn_tensor *weight,
                                  nn_tensor *bias, int training, float momentum, float eps);
/* Ghost batch norm (Hoffer et al. 2017): nn_batch_norm_op with the training
   statistics of each run of virtual_batch consecutive samples (the last run
   may be shorter); the running statistics take each run in turn. */
NNDEF nn_tensor *nn_ghost_batch_norm_op(nn_tensor *x, nn_tensor *running_mean,
                                        nn_tensor *running_var, nn_tensor *weight, nn_tensor *bias,
                                        int training, float momentum, float eps, int virtual_batch);
/* Batch renormalization (Ioffe 2017): in training y = ((x - mean) / sigma * r
   + d) * weight + bias with r = clip(sigma / sigma_run, 1/r_max, r_max), d =
   clip((mean - mean_run) / sigma_run, -d_max, d_max), constants in the
   backward (sigma = sqrt(var + eps)); then the running statistics update as
   batch norm's.  Needs the running statistics.  Evaluation as batch norm. */
NNDEF nn_tensor *nn_batch_renorm_op(nn_tensor *x, nn_tensor *running_mean, nn_tensor *running_var,
                                    nn_tensor *weight, nn_tensor *bias, int training,
                                    float momentum, float eps, float r_max, float d_max);
/* Layer normalization over the last k dims of x (F.layer_norm with
   normalized_shape = those dims): y = (x - mean) / sqrt(var + eps) * weight +
   bias; weight and bias have the normalized shape, or are NULL. */
NNDEF nn_tensor *nn_layer_norm_op(nn_tensor *x, int k, nn_tensor *weight, nn_tensor *bias, float eps);
/* RMS normalization over the last k dims (F.rms_norm):
   y = x / sqrt(mean(x^2) + eps) * weight; weight has the normalized shape or is NULL. */
NNDEF nn_tensor *nn_rms_norm_op(nn_tensor *x, int k, nn_tensor *weight, float eps);
/* Group normalization (F.group_norm) of x [N,C,*]: mean and variance over
   each sample's C/groups channels of a group, weight and bias [C] or NULL;
   groups must divide C. */
NNDEF nn_tensor *nn_group_norm_op(nn_tensor *x, int groups, nn_tensor *weight, nn_tensor *bias,
                                  float eps);
/* Instance normalization (F.instance_norm) of x [N,C,*] (at least one
   spatial dim): with use_input_stats each (sample, channel) by its own
   statistics, and running_mean/var (or NULL) move by momentum towards their
   means over the samples; else the running statistics, as batch norm's eval. */
NNDEF nn_tensor *nn_instance_norm_op(nn_tensor *x, nn_tensor *running_mean, nn_tensor *running_var,
                                     nn_tensor *weight, nn_tensor *bias, int use_input_stats,
                                     float momentum, float eps);

/* BatchNorm1d over [N,features] or [N,features,L] (torch.nn.BatchNorm1d):
   parameters "weight" (ones) and "bias" (zeros), buffers "running_mean",
   "running_var" and "num_batches_tracked" (an NN_TENSOR_INT64 scalar);
   momentum 0.1 and eps 1e-5, changed with nn_batchnorm_set. */
NNDEF nn_module *nn_batchnorm1d(int features);
/* BatchNorm2d over [N,channels,H,W] (torch.nn.BatchNorm2d), as nn_batchnorm1d. */
NNDEF nn_module *nn_batchnorm2d(int channels);
/* BatchNorm1d/2d with options: eps, momentum (NN_MOMENTUM_CUMULATIVE),
   affine, track_running_stats (off: no buffers, batch statistics in
   evaluation too) and virtual_batch (ghost batch norm). */
NNDEF nn_module *nn_batchnorm1d_ex(int features, nn_norm_opts opts);
NNDEF nn_module *nn_batchnorm2d_ex(int channels, nn_norm_opts opts);
/* Set a batch-norm module's momentum (in [0,1]) and eps (> 0); misuse for
   any other module or value (BatchNorm's momentum= and eps=). */
NNDEF void nn_batchnorm_set(nn_module *m, float momentum, float eps);
/* Batch renormalization modules (nn_batch_renorm_op), named and stored as
   BatchNorm1d/2d ("BatchRenorm1d/2d" types); opts.r_max, d_max, warmup. */
NNDEF nn_module *nn_batchrenorm1d(int features, nn_norm_opts opts);
NNDEF nn_module *nn_batchrenorm2d(int channels, nn_norm_opts opts);
/* Change a batch renormalization module's r_max (>= 1) and d_max (>= 0)
   during training (the paper ramps them from 1 and 0). */
NNDEF void nn_batchrenorm_set(nn_module *m, float r_max, float d_max);
/* LayerNorm over the trailing normalized_shape (torch.nn.LayerNorm):
   "weight" (ones) and "bias" (zeros) of that shape unless opts.affine = -1
   (elementwise_affine=False); eps 1e-5. */
NNDEF nn_module *nn_layernorm(nn_shape normalized_shape, nn_norm_opts opts);
/* RMSNorm (torch.nn.RMSNorm): "weight" (ones) of normalized_shape unless
   opts.affine = -1; eps FLT_EPSILON (torch's None). */
NNDEF nn_module *nn_rmsnorm(nn_shape normalized_shape, nn_norm_opts opts);
/* GroupNorm(groups, channels) (torch.nn.GroupNorm): "weight", "bias" [C]
   unless opts.affine = -1; eps 1e-5.  groups must divide channels. */
NNDEF nn_module *nn_groupnorm(int groups, int channels, nn_norm_opts opts);
/* InstanceNorm1d over [N,C,L] and InstanceNorm2d over [N,C,H,W]
   (torch.nn.InstanceNorm1d/2d): affine and track_running_stats off by
   default (on: "weight", "bias"; "running_mean", "running_var",
   "num_batches_tracked", the last never counted, as PyTorch's). */
NNDEF nn_module *nn_instancenorm1d(int channels, nn_norm_opts opts);
NNDEF nn_module *nn_instancenorm2d(int channels, nn_norm_opts opts);

/* Weight normalization (torch._weight_norm): w = g v / ||v||, the norm over
   every dim of v but dim (dim -1: the whole tensor); g holds one value per
   slice along dim.  Gradients to v and g. */
NNDEF nn_tensor *nn_weight_norm_op(nn_tensor *v, nn_tensor *g, int dim);
/* Reparameterize the "weight" of a Linear or convolution module m as in
   torch.nn.utils.weight_norm(m, name, dim): parameters "weight_g" (the norms,
   size 1 but along dim) and "weight_v" (the direction) replace "weight",
   which each forward recomputes.  Returns m; misuse for other modules. */
NNDEF nn_module *nn_weight_norm(nn_module *m, const char *name, int dim);
/* torch.nn.utils.spectral_norm(m, name, n_power_iterations) on a Linear or
   (not transposed) convolution: parameter "weight_orig", buffers "weight_u"
   [out] and "weight_v" [in*K*K] (random unit vectors); each training forward
   runs the power iterations, and the weight is weight_orig / (u^T W v). */
NNDEF nn_module *nn_spectral_norm(nn_module *m, const char *name, int n_power_iterations);

/* ----- >>layers.act: activations ----------------------------------------- */
/* Element-wise activations: each an op (nn_<name>_op, any shape, the same
   shape out) and a module (nn_<name>(...), PyTorch's class name as its
   type).  ReLU, sigmoid and tanh are in >>autograd and >>modules.  Formulas
   and the PyTorch names: docs/activations.md. */

/* x > 0 ? x : slope x (F.leaky_relu). */
NNDEF nn_tensor *nn_leaky_relu_op(nn_tensor *x, float slope);
/* x > 0 ? x : alpha (e^x - 1) (F.elu). */
NNDEF nn_tensor *nn_elu_op(nn_tensor *x, float alpha);
/* x/2 (1 + erf(x/sqrt 2)), the exact GELU (F.gelu, approximate="none"). */
NNDEF nn_tensor *nn_gelu_op(nn_tensor *x);
/* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), GELU's tanh approximation
   (F.gelu(x, approximate="tanh")). */
NNDEF nn_tensor *nn_gelu_tanh_op(nn_tensor *x);
/* x sigmoid(x), a.k.a. swish (F.silu). */
NNDEF nn_tensor *nn_silu_op(nn_tensor *x);
/* scale (x > 0 ? x : alpha (e^x - 1)) with alpha = 1.6732632423543772,
   scale = 1.0507009873554805 (F.selu). */
NNDEF nn_tensor *nn_selu_op(nn_tensor *x);
/* x > 0 ? x : alpha (e^(x/alpha) - 1); alpha 0 is misuse (F.celu). */
NNDEF nn_tensor *nn_celu_op(nn_tensor *x, float alpha);
/* log(1 + e^(beta x)) / beta, and x where beta x > threshold (F.softplus;
   PyTorch's defaults beta 1, threshold 20).  beta must be > 0. */
NNDEF nn_tensor *nn_softplus_op(nn_tensor *x, float beta, float threshold);
/* x / (1 + |x|) (F.softsign). */
NNDEF nn_tensor *nn_softsign_op(nn_tensor *x);
/* x tanh(softplus(x)) (F.mish). */
NNDEF nn_tensor *nn_mish_op(nn_tensor *x);
/* min(max(x, min_val), max_val); min_val < max_val (F.hardtanh, defaults
   -1 and 1). */
NNDEF nn_tensor *nn_hardtanh_op(nn_tensor *x, float min_val, float max_val);
/* min(max(x, 0), 6) (F.relu6). */
NNDEF nn_tensor *nn_relu6_op(nn_tensor *x);
/* min(max(x + 3, 0), 6) / 6 (F.hardsigmoid). */
NNDEF nn_tensor *nn_hardsigmoid_op(nn_tensor *x);
/* x min(max(x + 3, 0), 6) / 6 (F.hardswish). */
NNDEF nn_tensor *nn_hardswish_op(nn_tensor *x);
/* log(1 / (1 + e^-x)) = min(x, 0) - log(1 + e^-|x|), stable for any x
   (F.logsigmoid). */
NNDEF nn_tensor *nn_logsigmoid_op(nn_tensor *x);
/* x - tanh x (F.tanhshrink). */
NNDEF nn_tensor *nn_tanhshrink_op(nn_tensor *x);
/* x > threshold ? x : value (F.threshold). */
NNDEF nn_tensor *nn_threshold_op(nn_tensor *x, float threshold, float value);
/* x > 0 ? x : w x, a learned slope (F.prelu): weight [1] (one slope) or
   [C] for x [N,C,...] (a slope per channel, dimension 1). */
NNDEF nn_tensor *nn_prelu_op(nn_tensor *x, nn_tensor *weight);

/* Activation modules: LeakyReLU (slope 0 means 0.01), ELU (alpha 0 means 1),
   GELU and SiLU. */
NNDEF nn_module *nn_leaky_relu(float slope);
NNDEF nn_module *nn_elu(float alpha);
NNDEF nn_module *nn_gelu(void);
NNDEF nn_module *nn_silu(void);
/* More activation modules (torch.nn.SELU, CELU, Softplus, Softsign, Mish,
   Hardtanh, ReLU6, Hardsigmoid, Hardswish, LogSigmoid, Tanhshrink,
   Threshold, and GELU(approximate="tanh")); the options as their ops take
   them, checked here.  PyTorch's defaults: CELU alpha 1, Softplus beta 1
   threshold 20, Hardtanh -1 and 1. */
NNDEF nn_module *nn_selu(void);
NNDEF nn_module *nn_celu(float alpha);
NNDEF nn_module *nn_softplus(float beta, float threshold);
NNDEF nn_module *nn_softsign(void);
NNDEF nn_module *nn_mish(void);
NNDEF nn_module *nn_hardtanh(float min_val, float max_val);
NNDEF nn_module *nn_relu6(void);
NNDEF nn_module *nn_hardsigmoid(void);
NNDEF nn_module *nn_hardswish(void);
NNDEF nn_module *nn_logsigmoid(void);
NNDEF nn_module *nn_tanhshrink(void);
NNDEF nn_module *nn_threshold(float threshold, float value);
NNDEF nn_module *nn_gelu_tanh(void);
/* PReLU (torch.nn.PReLU): parameter "weight" [num_parameters] filled with
   init; num_parameters 1 (one slope) or the channel count C of x [N,C,...].
   PyTorch's defaults: nn_prelu(1, 0.25f). */
NNDEF nn_module *nn_prelu(int num_parameters, float init);
/* softmax and log-softmax along dim as modules (torch.nn.Softmax(dim),
   LogSoftmax(dim)); dim is checked against each input. */
NNDEF nn_module *nn_softmax_module(int dim);
NNDEF nn_module *nn_log_softmax_module(int dim);

/* ----- >>layers.seq: sequences: embeddings, recurrent layers, attention --- */

/* ===== >>regularizers ===================================================== */

/* Regularizers: the dropout family, information dropout, residual blocks
   with stochastic depth, Shake-Shake and ShakeDrop, penalties and
   constraints, mixup and CutMix (docs/regularization.md: every formula and
   paper).  Every random draw comes from the generator given as rng (NULL:
   the current one, nn_set_thread_rng's else the global), in one fixed order
   on the calling thread, so a seed fixes the run at any number of threads.
   A stochastic op is active when training is 1 and gives its paper's
   evaluation behaviour when it is 0; its module follows nn_train_mode.  A
   drop probability p must be in [0,1). */

/* --- the dropout family --- */

/* Channel dropout (F.dropout1d, F.dropout2d): zero whole channels x[n,c,...]
   with probability p and scale the rest by 1/(1-p); x [N,C,L] for 1d,
   [N,C,H,W] for 2d.  The identity (x itself) in evaluation or at p = 0. */
NNDEF nn_tensor *nn_dropout1d_op(nn_tensor *x, float p, int training, nn_rng *rng);
NNDEF nn_tensor *nn_dropout2d_op(nn_tensor *x, float p, int training, nn_rng *rng);
/* Alpha dropout for SELU nets (Klambauer et al. 2017, F.alpha_dropout): a
   dropped unit becomes alpha' = -1.7581 (SELU's negative saturation), then
   y = a x~ + b, a = ((1-p)(1 + p alpha'^2))^-1/2, b = -a alpha' p, so a
   standard normal input keeps mean 0 and variance 1.  Identity in eval. */
NNDEF nn_tensor *nn_alpha_dropout_op(nn_tensor *x, float p, int training, nn_rng *rng);
/* Gaussian dropout (Srivastava et al. 2014, sec. 10): y = x e with
   e ~ N(1, p/(1-p)) per element.  Identity in evaluation. */
NNDEF nn_tensor *nn_gaussian_dropout_op(nn_tensor *x, float p, int training, nn_rng *rng);
/* Additive Gaussian noise y = x + sigma n, n ~ N(0,1) per element, sigma >= 0
   (Keras GaussianNoise).  Identity in evaluation. */
NNDEF nn_tensor *nn_gaussian_noise_op(nn_tensor *x, float sigma, int training, nn_rng *rng);
/* Variational (locked) dropout (Gal & Ghahramani 2016; Merity et al. 2018's
   LockedDropout): one inverted-dropout mask of x's shape with dimension
   time_axis set to 1, shared by every time step: [T,N,H] uses time_axis 0,
   batch-first [N,T,H] uses 1.  Identity in evaluation. */
NNDEF nn_tensor *nn_locked_dropout_op(nn_tensor *x, float p, int time_axis, int training,
                                      nn_rng *rng);
/* DropConnect (Wan et al. 2013) on a linear layer: y = x (M o W)^T/(1-p) + b,
   M ~ Bernoulli(1-p) per weight, one mask per call (per minibatch); x
   [...,in], W [out,in], b [out] or NULL.  Evaluation: x W^T + b (the mean). */
NNDEF nn_tensor *nn_dropconnect_linear_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, float p,
                                          int training, nn_rng *rng);

/* The family as modules (no parameters): Dropout1d, Dropout2d, AlphaDropout,
   GaussianDropout, GaussianNoise (sigma >= 0) and LockedDropout. */
NNDEF nn_module *nn_dropout1d(float p);
NNDEF nn_module *nn_dropout2d(float p);
NNDEF nn_module *nn_alpha_dropout(float p);
NNDEF nn_module *nn_gaussian_dropout(float p);
NNDEF nn_module *nn_gaussian_noise(float sigma);
NNDEF nn_module *nn_locked_dropout(float p, int time_axis);
/* A linear layer with DropConnect on its weights: "weight" [out,in] and
   "bias" [out] initialized and named as torch.nn.Linear's (a Linear state
   dict loads into it); type "DropConnectLinear". */
NNDEF nn_module *nn_dropconnect_linear(int in_features, int out_features, float p);
/* Make every regularizer module in m's tree (this section's modules) draw
   from r (NULL: the current generator).  Returns how many were set. */
NNDEF int nn_module_set_rng(nn_module *m, nn_rng *r);

/* --- information dropout (Achille & Soatto 2016) --- */

enum { NN_INFO_RELU = 0, NN_INFO_SOFTPLUS = 1 };
typedef struct nn_info_dropout_opts {
    int activation;      /* NN_INFO_RELU (log-uniform prior, default) or
                            NN_INFO_SOFTPLUS (log-normal prior) */
    float max_alpha;     /* alpha = 0.001 + max_alpha sigmoid(s); 0 means 0.7 */
    float prior_mu;      /* softplus: the prior of log z is N(mu, sigma^2) */
    float prior_sigma;   /* 0 means 1 */
} nn_info_dropout_opts;

/* Information dropout: z = f(h) e, log e ~ N(0, alpha^2) per unit, alpha =
   0.001 + max_alpha sigmoid(s), f ReLU or softplus; h (the layer's
   pre-activation) and s (the alpha layer's output) both [N,...].  When kl is
   not NULL *kl is the KL term, the batch mean of the sum over units of
   -log(alpha/(max_alpha+0.001)) (ReLU) or log(sigma/alpha) + (alpha^2 +
   (log max(f(h),1e-4) - mu)^2)/(2 sigma^2) - 1/2 (softplus): add beta *kl to
   the loss.  Evaluation: z = f(h) (no noise), *kl as in training. */
NNDEF nn_tensor *nn_info_dropout_op(nn_tensor *h, nn_tensor *s, int training,
                                    nn_info_dropout_opts opts, nn_rng *rng, nn_tensor **kl);
/* The module (type "InformationDropout"): children "layer" (h = layer(x))
   and "alpha" (s = alpha(x)), e.g. two nn_linear(in, out) or two convs of
   one shape; it takes both over (and frees them on a misuse). */
NNDEF nn_module *nn_info_dropout(nn_module *layer, nn_module *alpha_layer,
                                 nn_info_dropout_opts opts);
/* The sum of the KL terms that the information dropout modules of m's tree
   made in their last forward in the current graph (generation): a scalar to
   add beta-weighted to the loss; NULL when none ran since the last reset. */
NNDEF nn_tensor *nn_info_dropout_kl(nn_module *m);

/* --- residual blocks, stochastic depth, Shake-Shake, ShakeDrop --- */

enum {
    NN_RESIDUAL_PLAIN = 0,             /* y = s(x) + F(x) */
    NN_RESIDUAL_STOCHASTIC_DEPTH = 1,  /* Huang et al. 2016 */
    NN_RESIDUAL_SHAKE_SHAKE = 2,       /* Gastaldi 2017, two branches */
    NN_RESIDUAL_SHAKEDROP = 3          /* Yamada et al. 2018 */
};
/* Shake-Shake's backward coefficient: an independent beta ("shake-shake"),
   0.5 ("shake-even") or the forward's alpha ("shake-keep"). */
enum { NN_SHAKE_SHAKE = 0, NN_SHAKE_EVEN = 1, NN_SHAKE_KEEP = 2 };
/* What one random draw covers: a sample (image), the whole batch, or one
   channel of one sample. */
enum { NN_GATE_SAMPLE = 0, NN_GATE_BATCH = 1, NN_GATE_CHANNEL = 2 };

/* Options of the residual block and its regularizer ops; zero fields mean
   the papers' defaults. */
typedef struct nn_residual_opts {
    int mode;            /* NN_RESIDUAL_PLAIN (default) ... NN_RESIDUAL_SHAKEDROP */
    float survival;      /* p_l in (0,1] when > 0; else from the rule below */
    int layer, layers;   /* l in 1..L and L: p_l = 1 - l/L (1 - p_L) */
    float p_last;        /* p_L, 0 means 0.5 (also p_l when layers is 0) */
    int shake;           /* NN_SHAKE_SHAKE (default), NN_SHAKE_EVEN, NN_SHAKE_KEEP */
    int gate;            /* NN_GATE_SAMPLE (default), NN_GATE_BATCH, NN_GATE_CHANNEL */
    float alpha_lo, alpha_hi;  /* ShakeDrop's alpha range; both 0 mean [-1, 1] */
    float beta_lo, beta_hi;    /* ShakeDrop's beta range; both 0 mean [0, 1] */
    int post_relu;       /* 1: ReLU after the addition (the original ResNet) */
    nn_rng *rng;         /* NULL: the current generator */
} nn_residual_opts;

/* The linear decay rule of stochastic depth and ShakeDrop:
   p_l = 1 - l/L (1 - p_L) for block l of L (l = 0 gives 1, l = L gives p_L). */
NNDEF float nn_linear_decay_survival(int l, int L, float p_L);
/* Stochastic depth's gate on a residual branch f [N,...]: b f with
   b ~ Bernoulli(p_l) per gate; evaluation p_l f. */
NNDEF nn_tensor *nn_stochastic_depth_op(nn_tensor *f, int training, nn_residual_opts opts);
/* ShakeDrop's gate on f [N,...]: forward (b + alpha - b alpha) f, backward
   (b + beta - b beta) times the gradient, b ~ Bernoulli(p_l), alpha ~
   U[alpha_lo, alpha_hi], beta ~ U[beta_lo, beta_hi] per gate; evaluation
   E[b + alpha - b alpha] f = (p_l + (1-p_l)(alpha_lo+alpha_hi)/2) f. */
NNDEF nn_tensor *nn_shakedrop_op(nn_tensor *f, int training, nn_residual_opts opts);
/* Shake-Shake's mix of two branches of one shape: forward alpha f1 +
   (1-alpha) f2, alpha ~ U[0,1] per gate; backward beta and 1-beta
   (opts.shake picks beta); evaluation 0.5 f1 + 0.5 f2. */
NNDEF nn_tensor *nn_shake_shake_op(nn_tensor *f1, nn_tensor *f2, int training,
                                   nn_residual_opts opts);
/* A residual block (type "Residual"): a = preact ? preact(x) : x; y = s + G
   where s = shortcut(a) (a projection, e.g. a 1x1 conv) or x when shortcut
   is NULL, and G = body(a) gated by opts.mode (body2(a) is the second
   Shake-Shake branch, NULL otherwise); then ReLU if post_relu.  Children,
   present ones only: "preact", "body", "body2", "shortcut" (Fixup scales
   the layers of "body").  Stochastic depth with NN_GATE_BATCH skips a
   dropped body.  Takes the modules over (frees them on a misuse). */
NNDEF nn_module *nn_residual(nn_module *preact, nn_module *body, nn_module *body2,
                             nn_module *shortcut, nn_residual_opts opts);

/* --- penalties and constraints --- */

/* 1 when name matches the glob pattern: '*' any run of characters (dots
   too), '?' one character, everything else itself ("*.weight", "0.*"). */
NNDEF int nn_name_match(const char *pattern, const char *name);
/* l1 sum |w| + l2 sum w^2 over the parameters of m whose dotted names match
   pattern (nn_name_match; NULL means "*"): a scalar in the current graph to
   add to the loss.  L1: l2 = 0; L2: l1 = 0; elastic net: both (the weight
   decay wd of SGD equals l2 = wd/2).  Matching nothing is a misuse. */
NNDEF nn_tensor *nn_penalty(nn_module *m, const char *pattern, float l1, float l2);
/* sum |w| over the matching parameters (nn_penalty(m, pattern, 1, 0)). */
NNDEF nn_tensor *nn_l1_penalty(nn_module *m, const char *pattern);
/* sum w^2 over the matching parameters (nn_penalty(m, pattern, 0, 1)). */
NNDEF nn_tensor *nn_l2_penalty(nn_module *m, const char *pattern);
/* Activity penalty on activations a [N,...]: (l1 sum |a| + l2 sum a^2) / N,
   a scalar (Keras activity_regularizer, divided by the batch size). */
NNDEF nn_tensor *nn_activity_penalty(nn_tensor *a, float l1, float l2);
/* Max-norm constraint in place (Srivastava et al. 2014): each row w[i,...]
   of a tensor with 2+ dims (the whole tensor for 1-D) with L2 norm above c
   is scaled by c/(norm + 1e-7) (torch.renorm(w, 2, 0, c)); c > 0. */
NNDEF void nn_max_norm(nn_tensor *w, float c);

/* --- mixup and CutMix --- */

/* A Beta(a, b) draw (a, b > 0) from rng (NULL: the current generator), as
   X/(X+Y) of two Gamma draws (Marsaglia-Tsang). */
NNDEF float nn_sample_beta(nn_rng *rng, float a, float b);
/* Mixup (Zhang et al. 2018): lambda ~ Beta(alpha, alpha) (alpha > 0) and a
   random permutation pi of the batch; returns x~ = lambda x + (1-lambda)
   x[pi] for x [N,...] and sets *targets (if not NULL) to the soft targets
   lambda onehot(y) + (1-lambda) onehot(y[pi]) [N,classes], *lambda (if not
   NULL) to lambda.  Data, not differentiated; results in x's graph (or the
   current one).  Train with nn_cross_entropy_soft(logits, *targets, ce). */
NNDEF nn_tensor *nn_mixup(nn_tensor *x, const int *labels, int classes, float alpha,
                          nn_rng *rng, nn_tensor **targets, float *lambda);
/* CutMix (Yun et al. 2019) on images x [N,C,H,W]: lambda ~ Beta(alpha,
   alpha), a box of (H sqrt(1-lambda)) x (W sqrt(1-lambda)) at a uniform
   centre (clipped to the image) pasted from x[pi]; lambda becomes 1 - box
   area/(HW) and the targets are mixed with it, as nn_mixup. */
NNDEF nn_tensor *nn_cutmix(nn_tensor *x, const int *labels, int classes, float alpha,
                           nn_rng *rng, nn_tensor **targets, float *lambda);

/* ===== >>init ============================================================= */

/* torch.nn.init on tensors, the same rules applied to a model's parameters
   by name, and the data-based LSUV and the residual-network Fixup.  Every
   draw comes from the generator rng, NULL meaning the current one (nn_seed's:
   this thread's override, else the global).  Each returns its tensor, or NULL
   after a misuse report (a tensor of the wrong rank, a bad argument). */

/* Which fan the Kaiming rules divide by (PyTorch mode="fan_in"/"fan_out"). */
typedef enum nn_fan_mode {
    NN_FAN_IN = 0,    /* preserves the forward variance (the default) */
    NN_FAN_OUT = 1    /* preserves the backward variance */
} nn_fan_mode;

/* Options of the Kaiming (He) rules; zero means PyTorch's defaults. */
typedef struct nn_init_opts {
    float a;                   /* negative slope of the leaky ReLU after the layer, 0 */
    nn_fan_mode mode;          /* NN_FAN_IN (default) or NN_FAN_OUT */
    const char *nonlinearity;  /* NULL means "leaky_relu"; "relu", "tanh", "linear", ... */
} nn_init_opts;

/* The recommended gain for a nonlinearity (torch.nn.init.calculate_gain):
   1 for "linear", "conv1d/2d/3d", "conv_transpose1d/2d/3d" and "sigmoid";
   5/3 "tanh"; sqrt 2 "relu"; sqrt(2/(1+param^2)) "leaky_relu" (param the
   negative slope, used as given: PyTorch's None is 0.01); 3/4 "selu".
   Any other name is a misuse (returns 0). */
NNDEF float nn_calculate_gain(const char *nonlinearity, float param);
/* fan_in = size(1) * receptive, fan_out = size(0) * receptive, receptive the
   product of the sizes after the second: [out,in] linear and [OC,C/G,K,K]
   conv weights (torch.nn.init._calculate_fan_in_and_fan_out).  Returns 0,
   or -1 for fewer than 2 dimensions (misuse). */
NNDEF int nn_calculate_fan(const nn_tensor *t, int *fan_in, int *fan_out);

/* U(a, b) (torch.nn.init.uniform_); a > b is misuse. */
NNDEF nn_tensor *nn_init_uniform(nn_tensor *t, float a, float b, nn_rng *rng);
/* N(mean, std^2) (torch.nn.init.normal_); std < 0 is misuse. */
NNDEF nn_tensor *nn_init_normal(nn_tensor *t, float mean, float std, nn_rng *rng);
/* Every element val, zeros, ones (constant_, zeros_, ones_). */
NNDEF nn_tensor *nn_init_constant(nn_tensor *t, float val);
NNDEF nn_tensor *nn_init_zeros(nn_tensor *t);
NNDEF nn_tensor *nn_init_ones(nn_tensor *t);
/* The identity matrix of a 2-D tensor, ones on the leading diagonal of a
   rectangular one (torch.nn.init.eye_). */
NNDEF nn_tensor *nn_init_eye(nn_tensor *t);
/* The Dirac delta of a 3-, 4- or 5-D conv weight [OC,C,K...] in groups
   groups: w[g*OC/G + d, d, centre] = 1 for d < min(OC/G, C), else 0, so the
   convolution keeps its input channels (torch.nn.init.dirac_). */
NNDEF nn_tensor *nn_init_dirac(nn_tensor *t, int groups);
/* Glorot: U(-r, r), r = gain sqrt(6/(fan_in+fan_out)) (xavier_uniform_). */
NNDEF nn_tensor *nn_init_xavier_uniform(nn_tensor *t, float gain, nn_rng *rng);
/* Glorot: N(0, std^2), std = gain sqrt(2/(fan_in+fan_out)) (xavier_normal_). */
NNDEF nn_tensor *nn_init_xavier_normal(nn_tensor *t, float gain, nn_rng *rng);
/* He: U(-r, r), r = sqrt 3 gain/sqrt(fan), gain = calculate_gain(
   nonlinearity, a), fan by mode (torch.nn.init.kaiming_uniform_). */
NNDEF nn_tensor *nn_init_kaiming_uniform(nn_tensor *t, nn_init_opts opts, nn_rng *rng);
/* He: N(0, std^2), std = gain/sqrt(fan) (torch.nn.init.kaiming_normal_). */
NNDEF nn_tensor *nn_init_kaiming_normal(nn_tensor *t, nn_init_opts opts, nn_rng *rng);
/* LeCun (1998): N(0, 1/fan_in) and U(-sqrt(3/fan_in), sqrt(3/fan_in)), i.e.
   kaiming_normal_/kaiming_uniform_ with nonlinearity="linear" (Keras's
   lecun_normal truncates at 2 std; this does not). */
NNDEF nn_tensor *nn_init_lecun_normal(nn_tensor *t, nn_rng *rng);
NNDEF nn_tensor *nn_init_lecun_uniform(nn_tensor *t, nn_rng *rng);
/* gain times a (semi-)orthogonal matrix: t viewed as [size(0), numel/size(0)]
   is the Q of the QR of a Gaussian matrix (of its transpose when wider than
   tall) with R's diagonal made positive, as torch.nn.init.orthogonal_ does
   (Saxe et al. 2013).  Fewer than 2 dimensions is misuse; NULL when out of
   memory (nn_error_string). */
NNDEF nn_tensor *nn_init_orthogonal(nn_tensor *t, float gain, nn_rng *rng);
/* N(mean, std^2) conditioned on [a, b], by the inverse CDF, then clamped to
   [a, b] (torch.nn.init.trunc_normal_; PyTorch's defaults 0, 1, -2, 2).
   std < 0 or a >= b is misuse. */
NNDEF nn_tensor *nn_init_trunc_normal(nn_tensor *t, float mean, float std, float a, float b,
                                      nn_rng *rng);
/* A 2-D t of N(0, std^2) draws with ceil(sparsity * rows) random zeros in
   every column (Martens 2010; torch.nn.init.sparse_, std 0.01 there).
   sparsity outside [0, 1] or another rank is misuse. */
NNDEF nn_tensor *nn_init_sparse(nn_tensor *t, float sparsity, float std, nn_rng *rng);

/* ----- applied to a model by parameter name ----- */
typedef enum nn_init_kind {
    NN_INIT_ZEROS = 0, NN_INIT_ONES, NN_INIT_CONSTANT, NN_INIT_UNIFORM, NN_INIT_NORMAL,
    NN_INIT_TRUNC_NORMAL, NN_INIT_EYE, NN_INIT_DIRAC, NN_INIT_XAVIER_UNIFORM,
    NN_INIT_XAVIER_NORMAL, NN_INIT_KAIMING_UNIFORM, NN_INIT_KAIMING_NORMAL,
    NN_INIT_LECUN_UNIFORM, NN_INIT_LECUN_NORMAL, NN_INIT_ORTHOGONAL, NN_INIT_SPARSE,
    NN_INIT_CUSTOM,   /* rule.fn(t, rule.user, rng) */
    NN_INIT_KIND_COUNT
} nn_init_kind;
/* One initializer and its arguments, for nn_init_apply.  Zero means the
   PyTorch default of that initializer in every field. */
typedef struct nn_init_rule {
    nn_init_kind kind;
    float a, b;          /* uniform bounds, trunc_normal cutoffs; both 0: [0,1) / [-2,2] */
    float mean, std;     /* normal, trunc_normal (std 0 means 1), sparse (0 means 0.01) */
    float gain;          /* xavier, orthogonal; 0 means 1 */
    float value;         /* constant */
    float sparsity;      /* sparse */
    int groups;          /* dirac; 0 means 1 */
    nn_init_opts kaiming;                          /* kaiming's a, mode, nonlinearity */
    nn_tensor *(*fn)(nn_tensor *t, void *user, nn_rng *rng);  /* NN_INIT_CUSTOM */
    void *user;
} nn_init_rule;
/* Initialize every parameter of m whose dotted name (nn_parameters) matches
   the glob pattern ('*' any run of characters, dots included; '?' one) with
   rule: nn_init_apply(net, "*.bias", zeros, NULL).  Returns how many matched,
   -1 after a misuse (the rule's own, e.g. eye on a bias, is followed by a
   report naming the parameter).  PyTorch: named_parameters with fnmatch. */
NNDEF int nn_init_apply(nn_module *m, const char *pattern, nn_init_rule rule, nn_rng *rng);

/* ----- LSUV: layer-sequential unit-variance (Mishkin & Matas 2016) ----- */
typedef struct nn_lsuv_opts {
    float tol;           /* stop when |var - 1| < tol (and |mean| < tol); 0 means 0.1 */
    int max_iter;        /* scalings per layer at most; 0 means 10 */
    int zero_mean;       /* 1: also shift each layer's bias so its output mean is 0 */
    int keep_init;       /* 1: skip the orthonormal pre-init (and zero biases) */
    int verbose;         /* 1: print one line per layer */
} nn_lsuv_opts;
/* What LSUV did to one layer. */
typedef struct nn_lsuv_result {
    char name[64];       /* the layer's dotted path in the model ("3"), truncated */
    const char *type;    /* its module type ("Linear", "Conv2d") */
    float var_before, mean_before;  /* its output's statistics after the pre-init */
    float var_after, mean_after;    /* and after LSUV */
    float scale;         /* the product of the factors its weight was multiplied by */
    int iterations;      /* scalings applied */
    int converged;       /* 1 when the tolerance was met */
} nn_lsuv_result;
/* LSUV: orthonormal weights (nn_init_orthogonal) and zero biases for every
   layer with a >= 2-D "weight" of its own, then layer by layer, in model
   order, divide its weight by the std of its output on batch (variance over
   all output elements, unbiased), until that variance is 1 within tol.  The
   forwards run in evaluation mode, gradients off, in a private graph.  Writes
   min(layers, max_out) results to out (may be NULL); returns the number of
   layers, -1 on misuse or out of memory (nn_error_string). */
NNDEF int nn_lsuv(nn_module *m, nn_tensor *batch, nn_lsuv_opts opts, nn_rng *rng,
                  nn_lsuv_result *out, int max_out);

/* ----- Fixup (Zhang, Dauphin and Ma 2019) ----- */
/* One residual branch, by the dotted parameter names in the model: its m
   weight-bearing layers in order, its scalar biases, its scalar multiplier. */
typedef struct nn_fixup_branch {
    const char *const *weights;  /* the m layers' weights, in forward order */
    int m;
    const char *const *biases;   /* its scalar biases (set to 0); may be NULL */
    int nbiases;
    const char *scale;           /* its scalar multiplier (set to 1), or NULL */
} nn_fixup_branch;
/* Fixup for n branches (L = n): each branch's last weight at 0, its other
   weights He-initialized (nn_init_kaiming_normal with he; the paper's code
   uses NN_FAN_OUT) and multiplied by L^(-1/(2m-2)); its scalar biases 0 and
   multiplier 1; the classifier module's (a path, or NULL) "weight" and "bias"
   at 0.  NN_OK, or NN_ERR_ARG after a misuse report (a name not found). */
NNDEF nn_status nn_fixup(nn_module *m, const nn_fixup_branch *branches, int n,
                         const char *classifier, nn_init_opts he, nn_rng *rng);

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

/* n samples of bytes (images, x) or floats (tabular, features; the loader
   copies them unscaled), with class labels y and/or float regression
   targets.  nn_csv_read and nn_dataset_tabular make float ones. */
typedef struct nn_dataset {
    int n;                 /* number of samples */
    int sample_size;       /* bytes per sample (784 for 28x28); for a float
                              dataset, features per sample */
    int shape[3];          /* per-sample shape (C, H, W); {1,1,features} */
    int nclasses;          /* 0 when there are no labels */
    unsigned char *x;      /* n * sample_size bytes, or NULL */
    int *y;                /* n labels, or NULL (regression only) */
    float *features;       /* n * sample_size floats when x is NULL */
    float *targets;        /* n * ntargets float targets, or NULL */
    int ntargets;          /* regression outputs per sample */
} nn_dataset;

/* Load MNIST or Fashion-MNIST from dir: train=1 reads train-images-idx3-ubyte
   and train-labels-idx1-ubyte (".gz" or not), train=0 the t10k files. */
NNDEF nn_status nn_mnist_load(const char *dir, int train, nn_dataset *out);
/* A generated 10-class dataset of n 28x28 images (a stand-in when the real
   data is missing): each class is a distinct stroke pattern plus noise. */
NNDEF nn_status nn_dataset_synthetic(int n, uint64_t seed, nn_dataset *out);
/* Free a dataset's buffers. */
NNDEF void nn_dataset_free(nn_dataset *ds);
/* Fashion-MNIST's train and test sets from dir (NULL: $NN_DATA, else
   /usr/share/datasets/fashion-mnist).  Returns 1 for the real data; missing
   files give NN_ERR_IO, nn_error_string() saying how to get them (apt-get
   install dataset-fashion-mnist).  dir (or NN_DATA) "synthetic" asks for the
   generated stand-in (nn_dataset_synthetic, 12000 and 2000 samples): returns 0. */
NNDEF int nn_fashion_mnist(const char *dir, nn_dataset *train, nn_dataset *test);

typedef struct nn_loader nn_loader;
typedef struct nn_loader_opts {
    int batch_size;        /* 0 means 64 */
    int shuffle;           /* reshuffle every epoch (with rng) */
    int drop_last;         /* skip the last partial batch */
    float scale;           /* pixel multiplier, 0 means 1/255 */
    int image_shape;       /* batches as [B,C,H,W] instead of [B,C*H*W] */
    nn_rng *rng;           /* the shuffles' generator (not owned; must outlive
                              the loader); NULL: the current one at each
                              epoch's start (torch DataLoader's generator) */
} nn_loader_opts;

/* A minibatch iterator over ds (which must outlive it). */
NNDEF nn_loader *nn_loader_new(const nn_dataset *ds, nn_loader_opts opts);
/* The next batch as a tensor in g (pixels times scale) and its labels.
   Returns the batch's size (> 0); 0 at the end of an epoch (the next call
   starts a new, reshuffled epoch); < 0, an nn_status, on error: NN_ERR_OOM
   (nn_error_string says what) or NN_ERR_ARG after a misuse report. */
NNDEF int nn_loader_next(nn_loader *l, nn_graph *g, nn_tensor **x, const int **y);
/* Change the batch size from the next epoch on. */
NNDEF void nn_loader_set_batch_size(nn_loader *l, int batch_size);
/* Batches in one epoch. */
NNDEF int nn_loader_batches(const nn_loader *l);
NNDEF void nn_loader_free(nn_loader *l);

/* --- tabular data: CSV files, float datasets, splits, standardization ---
   docs/tabular.md is the guide.  Column lists (nn_csv_opts.features and
   .target) are comma-separated items, each a header name, a 0-based column
   index (negative counts from the end: "-1" is the last column) or a range
   "a:b" of indexes (half-open, either end may be left out: "2:"). */

#ifndef NN_CSV_MAX_LINE
#define NN_CSV_MAX_LINE (1 << 20)      /* bytes in one CSV record */
#endif
#ifndef NN_CSV_MAX_FIELDS
#define NN_CSV_MAX_FIELDS 65536        /* fields in one CSV record */
#endif
#ifndef NN_CSV_MAX_BYTES
#define NN_CSV_MAX_BYTES ((size_t)1 << 30) /* bytes nn_csv_read reads */
#endif

typedef struct nn_csv_opts {
    char delimiter;        /* 0 means ','; ' ' splits on runs of spaces/tabs */
    int header;            /* the first row (after skip_rows) names the columns */
    int skip_rows;         /* lines to skip before the header or the data */
    const char *features;  /* feature columns; NULL: every non-target column */
    const char *target;    /* target columns; NULL: the last column; "": none */
    int classes;           /* the target is one integer class label (into y);
                              else float regression targets (into targets) */
    int fill_missing;      /* a missing feature (empty, NA, N/A, NaN, nan, ?)
                              becomes fill_value instead of an error */
    float fill_value;
} nn_csv_opts;

/* Read a CSV file (RFC 4180 quoting, CRLF; gzipped or not) into a float
   dataset.  NN_ERR_FORMAT with "file:line:column: ..." for a bad number, row
   length or missing value, NN_ERR_ARG for unfit column lists; *out zeroed. */
NNDEF nn_status nn_csv_read(const char *path, nn_csv_opts opts, nn_dataset *out);
/* nn_csv_read on size bytes in memory; name (NULL: "<memory>") is for the
   messages. */
NNDEF nn_status nn_csv_read_mem(const void *data, size_t size, const char *name,
                                nn_csv_opts opts, nn_dataset *out);
/* A float dataset copying x [n,nfeatures], labels y [n] (or NULL) and targets
   [n,ntargets] (or NULL and 0); nclasses = max(y)+1 (TensorDataset). */
NNDEF nn_status nn_dataset_tabular(int n, int nfeatures, const float *x, const int *y,
                                   const float *targets, int ntargets, nn_dataset *out);
/* A new dataset of the m samples idx[0..m) of ds, copied, in that order
   (torch.utils.data.Subset, but owning its data). */
NNDEF nn_status nn_dataset_subset(const nn_dataset *ds, const int *idx, int m, nn_dataset *out);
/* Seeded random split into copies: round(val_frac*n) to val (NULL if 0),
   round(test_frac*n) to test, the rest to train, each shuffled; stratified
   keeps every class's proportions (sklearn's train_test_split). */
NNDEF nn_status nn_dataset_split(const nn_dataset *ds, float val_frac, float test_frac,
                                 uint64_t seed, int stratified, nn_dataset *train,
                                 nn_dataset *val, nn_dataset *test);

/* Per-column mean and standard deviation (sklearn's StandardScaler):
   x' = (x - mean) / std, over the features or the float targets. */
typedef struct nn_standardizer {
    int n;                 /* columns: features, or targets */
    int targets;           /* fitted on the targets instead of the features */
    nn_tensor *mean;       /* [n] persistent */
    nn_tensor *std;        /* [n] persistent; a constant column gets 1 */
    int kept;              /* nn_standardize_keep gave them to a module */
} nn_standardizer;

/* Fit on ds's features (targets = 0) or float targets (targets = 1); the
   population std (divides by n).  Fit on the training split only. */
NNDEF nn_status nn_standardize_fit(const nn_dataset *ds, int targets, nn_standardizer *out);
/* Standardize ds's features (or targets) in place with s. */
NNDEF void nn_standardize_apply(const nn_standardizer *s, nn_dataset *ds);
/* Standardize rows [rows, s->n] of data in place; inverse: x*std + mean
   (predictions back in the targets' units). */
NNDEF void nn_standardize_rows(const nn_standardizer *s, float *data, size_t rows, int inverse);
/* An identity standardizer (mean 0, std 1) of n columns: keep it in a
   module, then load the module's file to fill it. */
NNDEF nn_status nn_standardizer_init(int n, int targets, nn_standardizer *out);
/* Register mean and std as buffers "<name>.mean" and "<name>.std" of m so
   the model file stores them; m owns them from then on (s stays usable
   while m lives). */
NNDEF nn_status nn_standardize_keep(nn_standardizer *s, nn_module *m, const char *name);
/* Free s's tensors (unless a module keeps them). */
NNDEF void nn_standardizer_free(nn_standardizer *s);
/* nn_loader_next plus the batch's float targets as t [B, ntargets] in g
   (NULL when ds has none); y may be NULL, *y is NULL without labels. */
NNDEF int nn_loader_next_xy(nn_loader *l, nn_graph *g, nn_tensor **x, nn_tensor **t,
                            const int **y);

/* ----- >>data.augment: image augmentation --------------------------------- */

/* Image augmentation of batches x [N,C,H,W] (docs/regularization.md), in
   place, random per sample from the pipeline's generator (NULL: the current
   one), drawn in order on the calling thread: the same seed gives the same
   batch at any number of threads.  A pipeline is a list of transforms, run
   in the order they were added; it keeps one image of scratch, so after the
   first batch it allocates nothing. */
typedef struct nn_augment nn_augment;

/* Random erasing's options (Zhong et al. 2017); zero means the paper's. */
typedef struct nn_erase_opts {
    float p;             /* probability per sample, 0 means 0.5 */
    float area_lo, area_hi;  /* erased share of the image, 0 means 0.02 .. 0.4 */
    float ratio;         /* aspect ratio in [ratio, 1/ratio], 0 means 0.3 */
    int constant;        /* 1: fill with `fill`; 0: uniform random values in [0,1) */
    float fill;
} nn_erase_opts;

/* A new empty pipeline drawing from rng (not owned; NULL: the current
   generator at each run).  NULL when out of memory. */
NNDEF nn_augment *nn_augment_new(nn_rng *rng);
/* Free a pipeline (NULL is ignored). */
NNDEF void nn_augment_free(nn_augment *a);
/* Flip left-right (hflip) or upside down (vflip) with probability p (0 means
   0.5) per sample (RandomHorizontalFlip, RandomVerticalFlip). */
NNDEF int nn_augment_hflip(nn_augment *a, float p);
NNDEF int nn_augment_vflip(nn_augment *a, float p);
/* Random crop of the image's own size from the image padded by `padding` on
   every side with zeros, or by reflection (reflect = 1, padding < H and W):
   offsets uniform in [0, 2 padding] (RandomCrop(size, padding, padding_mode)). */
NNDEF int nn_augment_crop(nn_augment *a, int padding, int reflect);
/* Shift by whole pixels, dx and dy uniform in [-max_shift, max_shift], fill
   where nothing comes in. */
NNDEF int nn_augment_translate(nn_augment *a, int max_shift, float fill);
/* Rotate by an angle uniform in [lo_deg, hi_deg] (counterclockwise
   positive) and scale by a factor uniform in [scale_lo, scale_hi] (both 0:
   1) about the image centre, bilinear, fill outside (RandomAffine). */
NNDEF int nn_augment_affine(nn_augment *a, float lo_deg, float hi_deg, float scale_lo,
                            float scale_hi, float fill);
/* Brightness x *= f, f ~ U[max(0, 1-amount), 1+amount] per sample; contrast
   x = f x + (1-f) mean(x) with the sample's mean (ColorJitter's rules, not
   clamped). */
NNDEF int nn_augment_brightness(nn_augment *a, float amount);
NNDEF int nn_augment_contrast(nn_augment *a, float amount);
/* Additive Gaussian noise x += sigma n per pixel. */
NNDEF int nn_augment_noise(nn_augment *a, float sigma);
/* Cutout (DeVries & Taylor 2017): a size x size square at a uniform centre,
   clipped to the image, set to fill, in every sample. */
NNDEF int nn_augment_cutout(nn_augment *a, int size, float fill);
/* Random erasing (Zhong et al. 2017): with probability p a rectangle of
   area share U[area_lo, area_hi] and aspect ratio U[ratio, 1/ratio] (up to
   10 tries to fit) at a uniform position, filled with noise or a constant. */
NNDEF int nn_augment_erase(nn_augment *a, nn_erase_opts opts);
/* Occlusion: count patches of size x size, wholly inside the image at
   uniform positions, set to fill, in every sample. */
NNDEF int nn_augment_occlude(nn_augment *a, int count, int size, float fill);
/* Run the pipeline on x [N,C,H,W] in place.  NN_OK; NN_ERR_OOM for the
   first batch's scratch; NN_ERR_ARG after a misuse report. */
NNDEF nn_status nn_augment_run(nn_augment *a, nn_tensor *x);
/* The same on n images of C x H x W floats at data. */
NNDEF nn_status nn_augment_images(nn_augment *a, float *data, int n, int C, int H, int W);
/* Make the loader run a on every batch it makes (the dataset's shape gives
   C, H and W); NULL turns it off.  a must outlive the loader's use of it. */
NNDEF void nn_loader_set_augment(nn_loader *l, nn_augment *a);

/* Adversarial examples (Goodfellow et al. 2015; Madry et al. 2018), the
   seed's "adversarial examples as a form of data augmentation".  The model
   runs in its current mode (nn_train_mode(m, 0) for an evaluation); its
   parameters receive no gradient from an attack (their requires-grad flags
   are lifted during it and restored).  Results are tensors in x's graph. */
typedef nn_tensor *(*nn_attack_loss)(nn_tensor *output, const int *labels, void *user);
typedef struct nn_attack_opts {
    float eps;           /* L-inf radius, > 0 (required) */
    int steps;           /* PGD iterations, 0 means 10 */
    float step_size;     /* PGD step, 0 means 2.5 eps / steps (Madry et al.) */
    int random_start;    /* PGD: start from x + U[-eps, eps] */
    float clip_lo, clip_hi;  /* the valid input range; both 0 mean [0, 1] */
    int no_clip;         /* 1: no range clipping */
    nn_attack_loss loss; /* NULL: cross-entropy (mean) */
    void *loss_user;
    nn_rng *rng;         /* the random start's generator, NULL: the current one */
} nn_attack_opts;

/* d loss(m(x), labels) / d x, the input gradient of the attack's loss, as a
   tensor of x's shape (x itself is not changed and needs no gradient). */
NNDEF nn_tensor *nn_input_grad(nn_module *m, nn_tensor *x, const int *labels, nn_attack_opts opts);
/* FGSM: x + eps sign(d loss / d x), clipped to the valid range. */
NNDEF nn_tensor *nn_fgsm(nn_module *m, nn_tensor *x, const int *labels, nn_attack_opts opts);
/* PGD (L-inf): from x (or a random start in the eps-ball), steps of
   x <- proj(x + step_size sign(grad)), proj clipping to the eps-ball around
   the clean x and to the valid range.  Adversarial training: train on
   nn_pgd's (or nn_fgsm's) output in place of the batch. */
NNDEF nn_tensor *nn_pgd(nn_module *m, nn_tensor *x, const int *labels, nn_attack_opts opts);
/* Robust accuracy: the share of one epoch of ld's samples that m classifies
   correctly after a PGD attack with opts (steps 1 without random start and
   step_size eps is FGSM).  Uses its own graph; -1 on failure. */
NNDEF float nn_robust_accuracy(nn_module *m, nn_loader *ld, nn_attack_opts opts);

/* ===== >>optim =========================================================== */
/* Optimizers, parameter groups, gradient clipping, learning-rate and
   batch-size schedules, the LR range test, snapshot ensembles, and saving
   optimizer/schedule state.  docs/optimizers.md and docs/schedules.md give
   every formula.

   Options are structs where a zero field means PyTorch's default.  Where that
   default is not 0 (betas, AdamW's weight_decay, LARS's momentum, ...), a
   NEGATIVE value asks for a literal 0.  Hyperparameters are kept in double
   inside (as PyTorch keeps them in Python floats); the update itself runs in
   float32 like PyTorch's CPU kernels, so trajectories match torch.optim to
   float rounding.  nn_step never allocates: all state is made at creation.
   An optimizer works on nn_parameters(m) (a shared tensor once); a module
   without a parameter that requires a gradient is a misuse (NULL). */

typedef struct nn_optim nn_optim;

typedef struct nn_sgd_opts {
    float lr;            /* learning rate (0 means 0.01) */
    float momentum;      /* 0: plain SGD */
    float dampening;     /* scales the new gradient in the momentum buffer */
    float weight_decay;  /* L2 penalty added to the gradient */
    int nesterov;        /* Nesterov momentum (needs momentum > 0) */
} nn_sgd_opts;

typedef struct nn_adagrad_opts {
    float lr;                         /* 0 means 1e-2 */
    float lr_decay;                   /* lr / (1 + (t-1) lr_decay) */
    float weight_decay;               /* L2 penalty added to the gradient */
    float initial_accumulator_value;  /* start of the sum of squares */
    float eps;                        /* 0 means 1e-10 */
} nn_adagrad_opts;

typedef struct nn_rmsprop_opts {
    float lr;            /* 0 means 1e-2 */
    float alpha;         /* smoothing of the squares, 0 means 0.99 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient */
    float momentum;      /* 0: none */
    int centered;        /* divide by the variance estimate instead */
} nn_rmsprop_opts;

typedef struct nn_adadelta_opts {
    float lr;            /* 0 means 1.0 */
    float rho;           /* 0 means 0.9 */
    float eps;           /* 0 means 1e-6 */
    float weight_decay;  /* L2 penalty added to the gradient */
} nn_adadelta_opts;

typedef struct nn_adam_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient (torch.optim.Adam) */
    int amsgrad;         /* use the running maximum of v (AMSGrad) */
} nn_adam_opts;

typedef struct nn_adamw_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* decoupled: p *= 1 - lr wd.  0 means 1e-2, < 0 none */
    int amsgrad;         /* use the running maximum of v (AMSGrad) */
} nn_adamw_opts;

typedef struct nn_adamax_opts {
    float lr;            /* 0 means 2e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient */
} nn_adamax_opts;

typedef struct nn_nadam_opts {
    float lr;              /* 0 means 2e-3 */
    float beta1, beta2;    /* 0 means 0.9 and 0.999 */
    float eps;             /* 0 means 1e-8 */
    float weight_decay;    /* L2 penalty added to the gradient */
    float momentum_decay;  /* psi in mu_t = b1 (1 - 0.5 0.96^(t psi)); 0 means 4e-3 */
} nn_nadam_opts;

typedef struct nn_radam_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-8 */
    float weight_decay;  /* L2 penalty added to the gradient */
} nn_radam_opts;

typedef struct nn_lars_opts {
    float lr;                 /* global rate gamma, 0 means 1.0 */
    float momentum;           /* 0 means 0.9 (< 0: none) */
    float weight_decay;       /* beta in the paper, added to the gradient */
    float trust_coefficient;  /* eta, 0 means 1e-3 */
    float eps;                /* guards the trust ratio's denominator, 0 means 1e-8 */
} nn_lars_opts;

typedef struct nn_lamb_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.9 and 0.999 */
    float eps;           /* 0 means 1e-6 */
    float weight_decay;  /* decoupled, inside the trust ratio */
} nn_lamb_opts;

typedef struct nn_lookahead_opts {
    int k;               /* fast steps per slow step, 0 means 5 */
    float alpha;         /* slow-weight step size, 0 means 0.5 */
} nn_lookahead_opts;

typedef struct nn_ranger_opts {
    float lr;            /* 0 means 1e-3 */
    float beta1, beta2;  /* 0 means 0.95 and 0.999 (Ranger's) */
    float eps;           /* 0 means 1e-5 */
    float weight_decay;  /* L2 penalty added to the gradient (RAdam's) */
    int k;               /* 0 means 6 */
    float alpha;         /* 0 means 0.5 */
} nn_ranger_opts;

/* SGD (torch.optim.SGD): g = grad + wd p; b = mu b + (1-dampening) g (b = g
   at the first step); g = nesterov ? g + mu b : b; p -= lr g. */
NNDEF nn_optim *nn_sgd(nn_module *m, nn_sgd_opts opts);
/* SGDW, SGD with decoupled weight decay (Loshchilov & Hutter 2019), decayed
   as AdamW: p *= 1 - lr wd, then nn_sgd's step on the raw gradient. */
NNDEF nn_optim *nn_sgdw(nn_module *m, nn_sgd_opts opts);
/* AdaGrad (torch.optim.Adagrad): s += g^2; p -= lr/(1+(t-1) lr_decay) g/(sqrt(s)+eps). */
NNDEF nn_optim *nn_adagrad(nn_module *m, nn_adagrad_opts opts);
/* RMSprop (torch.optim.RMSprop): v = a v + (1-a) g^2; centered: d = sqrt(v - gbar^2)
   else sqrt(v), + eps; momentum: b = mu b + g/d, p -= lr b; else p -= lr g/d. */
NNDEF nn_optim *nn_rmsprop(nn_module *m, nn_rmsprop_opts opts);
/* Adadelta (torch.optim.Adadelta): v = rho v + (1-rho) g^2;
   d = sqrt(u+eps)/sqrt(v+eps) g; u = rho u + (1-rho) d^2; p -= lr d. */
NNDEF nn_optim *nn_adadelta(nn_module *m, nn_adadelta_opts opts);
/* Adam (torch.optim.Adam): m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
   p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps); .amsgrad uses max(v). */
NNDEF nn_optim *nn_adam(nn_module *m, nn_adam_opts opts);
/* AdamW (torch.optim.AdamW): p *= 1 - lr wd, then Adam's step on the raw grad. */
NNDEF nn_optim *nn_adamw(nn_module *m, nn_adamw_opts opts);
/* Adamax (torch.optim.Adamax): u = max(b2 u, |g| + eps); p -= lr/(1-b1^t) m/u. */
NNDEF nn_optim *nn_adamax(nn_module *m, nn_adamax_opts opts);
/* NAdam (torch.optim.NAdam): Adam with Nesterov momentum and the
   momentum_decay schedule mu_t of Dozat's paper.  Matches torch 1.13,
   including its mu_product_next = mu_product mu_t mu_{t+1} (torch 2.0
   drops the mu_t there, pytorch#92699), so the two differ slightly. */
NNDEF nn_optim *nn_nadam(nn_module *m, nn_nadam_opts opts);
/* RAdam (torch.optim.RAdam): Adam with the variance rectification r_t while
   rho_t > 5, plain bias-corrected momentum SGD (p -= lr m_hat) before that. */
NNDEF nn_optim *nn_radam(nn_module *m, nn_radam_opts opts);
/* LARS (You et al. 2017, alg. 1), per parameter tensor ("layer"):
   l = eta |p|/(|g| + wd |p| + eps); b = mu b + lr l (g + wd p); p -= b.
   When |p| or |g| is 0, l = eta. */
NNDEF nn_optim *nn_lars(nn_module *m, nn_lars_opts opts);
/* LAMB (You et al. 2019, alg. 2): r = m_hat/(sqrt(v_hat)+eps) + wd p;
   p -= lr |p|/|r| r per parameter tensor (ratio 1 when a norm is 0). */
NNDEF nn_optim *nn_lamb(nn_module *m, nn_lamb_opts opts);
/* Lookahead (Zhang et al. 2019) around any optimizer, which it takes over
   (nn_optim_free frees both): every k steps slow += alpha (fast - slow) and
   fast = slow.  lr, groups and momentum act on the inner optimizer. */
NNDEF nn_optim *nn_lookahead(nn_optim *inner, nn_lookahead_opts opts);
/* Ranger: nn_lookahead(nn_radam(m, ...), {k, alpha}) with Ranger's defaults. */
NNDEF nn_optim *nn_ranger(nn_module *m, nn_ranger_opts opts);

/* Clear the gradients of the optimizer's parameters: each has none (nn_grad
   NULL) until a backward reaches it, as zero_grad(set_to_none=True); the
   buffers are zeroed and kept.  Frozen parameters are cleared too, so no
   gradient piles up while they are frozen. */
NNDEF void nn_zero_grad(nn_optim *o);
/* Apply one update from the accumulated gradients.  Parameters frozen (by
   nn_optim_freeze or requires_grad off) and those no gradient reached since
   the last nn_zero_grad are skipped, their state (moments, step count)
   untouched. */
NNDEF void nn_step(nn_optim *o);
/* A function nn_step(o) calls after every update, e.g. to re-apply pruning
   masks (torch.optim.Optimizer.register_step_post_hook). */
typedef void (*nn_step_hook)(nn_optim *o, void *user);
/* Make fn(o, user) run at the end of every nn_step(o); one hook per
   optimizer, the last set wins; NULL removes it. */
NNDEF void nn_optim_set_step_hook(nn_optim *o, nn_step_hook fn, void *user);
/* The current (base) learning rate; a group's rate is this times its scale. */
NNDEF float nn_get_lr(const nn_optim *o);
/* Set the base learning rate (schedules call this). */
NNDEF void nn_set_lr(nn_optim *o, float lr);
/* The momentum a schedule cycles: SGD/RMSprop/LARS momentum, or beta1 of the
   Adam family; 0 when the optimizer has none. */
NNDEF float nn_get_momentum(const nn_optim *o);
/* Set that momentum (misuse when the optimizer was made without one). */
NNDEF void nn_set_momentum(nn_optim *o, float momentum);
/* Free the optimizer and its state (not the module).  NULL is ignored. */
NNDEF void nn_optim_free(nn_optim *o);

/* Parameter groups.  Each parameter carries its own lr scale, weight decay
   and frozen flag; nn_optim_group sets them for every parameter whose dotted
   name matches pattern.  A zero field keeps the current setting, so calls
   compose (the later one wins where both set a field). */
typedef struct nn_group_opts {
    float lr;            /* absolute rate: scale = lr / current base lr */
    float lr_scale;      /* group rate = base lr * lr_scale, so schedules move it too */
    float weight_decay;  /* the group's weight decay; < 0 means none */
    int frozen;          /* 1: never updated nor clipped; -1 unfreezes */
    int max_ndim;        /* > 0: only tensors with at most this many dims (1: biases, norms) */
} nn_group_opts;

/* Apply g to the parameters matching pattern: "0." or "encoder." (a prefix of
   the name), "*.bias" (a suffix), "*" (all).  Returns how many matched; a
   pattern matching nothing is a misuse (a typo).  E.g. no decay on biases
   and norm weights: g.weight_decay = -1; g.max_ndim = 1; nn_optim_group(o, "*", g). */
NNDEF int nn_optim_group(nn_optim *o, const char *pattern, nn_group_opts g);
/* Freeze (on = 1) or unfreeze the parameters matching pattern; returns the count. */
NNDEF int nn_optim_freeze(nn_optim *o, const char *pattern, int on);
/* Max-norm constraint: after every nn_step, the parameters whose names match
   the glob pattern (nn_name_match) are renormalized by nn_max_norm(p, c)
   (rows of a weight to L2 norm at most c); c <= 0 removes it.  Returns the
   count; a pattern matching nothing is a misuse. */
NNDEF int nn_optim_max_norm(nn_optim *o, const char *pattern, float c);

/* Clip the gradients of the optimizer's parameters (those nn_step would
   update) so their global L2 norm is at most max_norm; returns the norm before clipping
   (torch.nn.utils.clip_grad_norm_: g *= min(1, max_norm/(norm + 1e-6))). */
NNDEF float nn_clip_grad_norm(nn_optim *o, float max_norm);
/* The same over all parameters of a module (each shared tensor once). */
NNDEF float nn_clip_grad_norm_module(nn_module *m, float max_norm);
/* Clamp every gradient element to [-clip, clip] (clip_grad_value_). */
NNDEF void nn_clip_grad_value(nn_optim *o, float clip);
NNDEF void nn_clip_grad_value_module(nn_module *m, float clip);

/* ----- schedules ----- */
/* A schedule sets the optimizer's base learning rate (and, for one-cycle and
   cyclic, its momentum) from a step counter t.  Creating one sets the value
   for t = 0; nn_sched_step advances t (call it once per iteration or once per
   epoch, consistently with the step counts in the options).  Like
   torch.optim.lr_scheduler, base_lr is the optimizer's lr at creation. */
typedef struct nn_sched nn_sched;
#define NN_MAX_MILESTONES 16

typedef struct nn_constant_lr_opts {
    float factor;        /* lr = base factor while t < total_iters; 0 means 1/3 */
    int total_iters;     /* 0 means 5 */
} nn_constant_lr_opts;
typedef struct nn_step_lr_opts {
    int step_size;       /* lr = base gamma^floor(t/step_size); required */
    float gamma;         /* 0 means 0.1 */
} nn_step_lr_opts;
typedef struct nn_multistep_lr_opts {
    int milestones[NN_MAX_MILESTONES];  /* increasing; the list ends at a 0 */
    float gamma;                        /* lr = base gamma^(milestones <= t); 0 means 0.1 */
} nn_multistep_lr_opts;
typedef struct nn_exponential_lr_opts {
    float gamma;         /* lr = base gamma^t; required */
} nn_exponential_lr_opts;
typedef struct nn_inverse_time_lr_opts {
    float decay_rate;    /* k in lr = base / (1 + k t/decay_steps); required */
    int decay_steps;     /* 0 means 1 */
    int staircase;       /* use floor(t/decay_steps) */
} nn_inverse_time_lr_opts;
typedef struct nn_polynomial_lr_opts {
    int total_iters;     /* lr = (base-end) (1 - min(t,T)/T)^power + end; 0 means 5 */
    float power;         /* 0 means 1 */
    float end_lr;        /* 0 as in torch.optim.lr_scheduler.PolynomialLR */
} nn_polynomial_lr_opts;
typedef struct nn_cosine_annealing_opts {
    int T_max;           /* lr = eta_min + (base-eta_min)(1+cos(pi t/T_max))/2; required */
    float eta_min;
} nn_cosine_annealing_opts;
typedef struct nn_warm_restarts_opts {
    int T_0;             /* first period; required */
    int T_mult;          /* period growth after each restart, 0 means 1 */
    float eta_min;
} nn_warm_restarts_opts;
enum { NN_CYCLIC_TRIANGULAR = 0, NN_CYCLIC_TRIANGULAR2 = 1, NN_CYCLIC_EXP_RANGE = 2 };
typedef struct nn_cyclic_lr_opts {
    float base_lr;         /* low end; 0 means the optimizer's lr */
    float max_lr;          /* high end; required */
    int step_size_up;      /* 0 means 2000 */
    int step_size_down;    /* 0 means step_size_up */
    int mode;              /* NN_CYCLIC_TRIANGULAR (default), _TRIANGULAR2, _EXP_RANGE */
    float gamma;           /* exp_range: amplitude gamma^t; 0 means 1 */
    int cycle_momentum;    /* 0: cycle if the optimizer has a momentum, 1 on, -1 off */
    float base_momentum;   /* 0 means 0.8 */
    float max_momentum;    /* 0 means 0.9 */
} nn_cyclic_lr_opts;
enum { NN_ANNEAL_COS = 0, NN_ANNEAL_LINEAR = 1 };
typedef struct nn_onecycle_opts {
    float max_lr;          /* peak; required */
    int total_steps;       /* or epochs * steps_per_epoch */
    int epochs, steps_per_epoch;
    float pct_start;       /* rising part, 0 means 0.3 */
    int anneal_strategy;   /* NN_ANNEAL_COS (default) or NN_ANNEAL_LINEAR */
    int cycle_momentum;    /* 0: cycle if the optimizer has a momentum, 1 on, -1 off */
    float base_momentum;   /* 0 means 0.85 */
    float max_momentum;    /* 0 means 0.95 */
    float div_factor;      /* initial lr = max_lr/div_factor, 0 means 25 */
    float final_div_factor;/* min lr = initial/final_div_factor, 0 means 1e4 */
    int three_phase;       /* Smith's original three phases */
} nn_onecycle_opts;
typedef struct nn_warmup_opts {
    int warmup_steps;      /* required */
    float start_factor;    /* lr = base (f + (1-f) t/W) for t < W; 0 means 1/3 */
    nn_sched *then;        /* schedule to run after the warmup, or NULL; the
                              warmup takes it over (frees it) */
} nn_warmup_opts;
enum { NN_MODE_MIN = 0, NN_MODE_MAX = 1 };
enum { NN_THRESHOLD_REL = 0, NN_THRESHOLD_ABS = 1 };
typedef struct nn_reduce_on_plateau_opts {
    int mode;              /* NN_MODE_MIN (a loss, default) or NN_MODE_MAX (accuracy) */
    float factor;          /* lr *= factor on a plateau; 0 means 0.1 */
    int patience;          /* bad steps tolerated; 0 means 10, < 0 means 0 */
    float threshold;       /* "better" margin; 0 means 1e-4, < 0 means 0 */
    int threshold_mode;    /* NN_THRESHOLD_REL (default) or NN_THRESHOLD_ABS */
    int cooldown;          /* steps to wait after a reduction */
    float min_lr;          /* floor */
    float eps;             /* skip reductions smaller than this; 0 means 1e-8 */
} nn_reduce_on_plateau_opts;
typedef struct nn_increase_batch_opts {
    struct nn_loader *loader; /* the loader whose batch size grows; required */
    int batch_size;        /* the loader's current batch size; required */
    int dataset_size;      /* N, for the noise scale; required */
    int milestones[NN_MAX_MILESTONES]; /* epochs (list ends at a 0) */
    float factor;          /* batch *= factor at a milestone; 0 means 5 */
    int max_batch_size;    /* hybrid: beyond it, lr /= factor instead; 0: no cap */
} nn_increase_batch_opts;

/* Constant factor for a while (torch ConstantLR). */
NNDEF nn_sched *nn_constant_lr(nn_optim *o, nn_constant_lr_opts opts);
/* Step decay (torch StepLR). */
NNDEF nn_sched *nn_step_lr(nn_optim *o, nn_step_lr_opts opts);
/* Decay by gamma at each milestone (torch MultiStepLR). */
NNDEF nn_sched *nn_multistep_lr(nn_optim *o, nn_multistep_lr_opts opts);
/* lr = base gamma^t (torch ExponentialLR). */
NNDEF nn_sched *nn_exponential_lr(nn_optim *o, nn_exponential_lr_opts opts);
/* lr = base / (1 + k t) (Keras InverseTimeDecay). */
NNDEF nn_sched *nn_inverse_time_lr(nn_optim *o, nn_inverse_time_lr_opts opts);
/* Polynomial decay to end_lr over total_iters (torch PolynomialLR). */
NNDEF nn_sched *nn_polynomial_lr(nn_optim *o, nn_polynomial_lr_opts opts);
/* Cosine from base to eta_min over T_max steps (torch CosineAnnealingLR). */
NNDEF nn_sched *nn_cosine_annealing(nn_optim *o, nn_cosine_annealing_opts opts);
/* SGDR: cosine periods T_0, T_0 T_mult, ... restarting at base
   (torch CosineAnnealingWarmRestarts stepped without an epoch argument). */
NNDEF nn_sched *nn_warm_restarts(nn_optim *o, nn_warm_restarts_opts opts);
/* Cyclical learning rates, Smith 2017 (torch CyclicLR), momentum inverse. */
NNDEF nn_sched *nn_cyclic_lr(nn_optim *o, nn_cyclic_lr_opts opts);
/* One-cycle policy (torch OneCycleLR), momentum cycled the other way. */
NNDEF nn_sched *nn_onecycle(nn_optim *o, nn_onecycle_opts opts);
/* Linear warmup from start_factor base to base, then opts.then (if any)
   starting at its own t = 0 (torch LinearLR followed by it). */
NNDEF nn_sched *nn_warmup(nn_optim *o, nn_warmup_opts opts);
/* Divide the lr by 1/factor when the metric given to nn_sched_step_metric
   stops improving (torch ReduceLROnPlateau). */
NNDEF nn_sched *nn_reduce_on_plateau(nn_optim *o, nn_reduce_on_plateau_opts opts);
/* "Don't decay the learning rate, increase the batch size" (Smith et al.
   2018), stepped once per epoch: at each milestone the loader's batch grows
   by factor (from the next epoch); past max_batch_size the lr is divided by
   factor instead (the hybrid rule). */
NNDEF nn_sched *nn_increase_batch(nn_optim *o, nn_increase_batch_opts opts);

/* Advance a schedule by one step and set the optimizer's lr (and momentum). */
NNDEF void nn_sched_step(nn_sched *s);
/* Advance with a metric (reduce-on-plateau; other schedules ignore it). */
NNDEF void nn_sched_step_metric(nn_sched *s, float value);
/* Steps taken so far (t). */
NNDEF long nn_sched_get_step(const nn_sched *s);
/* 1 when the last nn_sched_step started a new warm-restart period (the
   moment to take a snapshot for an ensemble), else 0. */
NNDEF int nn_sched_restarted(const nn_sched *s);
/* nn_increase_batch: the current batch size (0 for other schedules). */
NNDEF int nn_sched_batch_size(const nn_sched *s);
/* nn_increase_batch: the SGD noise scale g = lr N / (B (1 - momentum)). */
NNDEF float nn_sched_noise_scale(const nn_sched *s);
/* Free a schedule (and a warmup's inner one).  NULL is ignored. */
NNDEF void nn_sched_free(nn_sched *s);

/* ===== >>io ============================================================== */

/* ----- saving and restoring state ----- */
/* Write the optimizer's state (step counts, moments, lr, momentum, groups)
   and, when s is not NULL, the schedule's, into buf: an in-memory snapshot
   (files are checkpoints, >>io).  Returns the bytes needed; writes only
   when buf is not NULL and cap is enough. */
NNDEF size_t nn_optim_state_write(const nn_optim *o, const nn_sched *s, void *buf, size_t cap);
/* Restore what nn_optim_state_write wrote into an optimizer (and schedule)
   made the same way over the same model.  NN_ERR_FORMAT names the mismatch;
   all or nothing: after a failure o and s are as they were. */
NNDEF nn_status nn_optim_state_read(nn_optim *o, nn_sched *s, const void *buf, size_t size);
/* A checkpoint file (nn_checkpoint_save) holding only o's and s's state (s
   may be NULL): no module, loader or generator. */
NNDEF nn_status nn_optim_save(const nn_optim *o, const nn_sched *s, const char *path);
/* Restore o (and s) from any checkpoint file holding their state (the
   rest of the file is ignored); all or nothing, like nn_checkpoint_load. */
NNDEF nn_status nn_optim_load(nn_optim *o, nn_sched *s, const char *path);

/* Model files in the safetensors format (PyTorch's and Hugging Face's): an
   8-byte little-endian header length, a JSON header naming every tensor with
   its dtype, shape and byte range, then the raw little-endian tensors.  Names
   are PyTorch's state_dict names ("0.weight", "bn.running_mean"), so a state
   dict PyTorch wrote loads straight in and back.  docs/io.md has the details. */

/* One "__metadata__" entry of a model file: a key and its string value. */
typedef struct nn_meta {
    const char *key;
    const char *value;
} nn_meta;

/* Options of nn_save_ex and nn_save_mem; zero is the default. */
typedef struct nn_save_opts {
    const nn_meta *metadata;  /* nmetadata extra "__metadata__" pairs, or NULL;
                                 "format" and "nn.h" are nn.h's own keys */
    int nmetadata;
} nn_save_opts;

/* Options of nn_load and nn_load_mem; zero is strict: every tensor of the
   module must be in the file and every tensor of the file must be used. */
typedef struct nn_load_opts {
    int allow_missing;        /* module tensors the file lacks keep their values */
    int allow_unexpected;     /* file tensors the module lacks are skipped */
    const char *strip_prefix; /* use only file names starting with it, without
                                 it ("module." from DataParallel); NULL: all */
    const char *add_prefix;   /* then prepend this ("features." loads a
                                 backbone saved on its own into m.features) */
    /* Called for every missing (missing = 1, the module's name) and
       unexpected (missing = 0, the file's name) tensor, allowed or not. */
    void (*on_mismatch)(const char *name, int missing, void *user);
    /* Called for every "__metadata__" pair after a successful load. */
    void (*on_metadata)(const char *key, const char *value, void *user);
    void *user;               /* passed to both callbacks */
} nn_load_opts;

/* Write m's parameters and buffers (PyTorch's state_dict names) to path as
   safetensors: floats F32, NN_TENSOR_INT64 buffers I64.  Atomic: a temporary
   file is fsync'd and renamed over path; on failure the old file is intact. */
NNDEF nn_status nn_save(nn_module *m, const char *path);
/* nn_save with options (extra metadata). */
NNDEF nn_status nn_save_ex(nn_module *m, const char *path, nn_save_opts opts);
/* nn_save into a new buffer *buf of *size bytes (free it with NN_FREE); on
   failure *buf is NULL and *size 0. */
NNDEF nn_status nn_save_mem(nn_module *m, nn_save_opts opts, void **buf, size_t *size);
/* Read a safetensors file into m's tensors by name (load_state_dict, strict
   unless opts relax it); float and integer dtypes convert, shapes must match.
   All or nothing: on failure m is unchanged and nn_error_string() says why. */
NNDEF nn_status nn_load(nn_module *m, const char *path, nn_load_opts opts);
/* nn_load from size bytes at buf (e.g. a file embedded as a C array). */
NNDEF nn_status nn_load_mem(nn_module *m, const void *buf, size_t size, nn_load_opts opts);

/* ----- checkpoints: resume a run exactly -----
   One safetensors file holding what a run needs to go on as if it had never
   stopped: the module's tensors (nn_save's names), the optimizer's moments
   as tensors "optim.<param>.<buffer>" (PyTorch's buffer names: exp_avg,
   momentum_buffer, ...), step counts, hyperparameters and the schedule in
   the metadata, the loader's order "loader.order" and position, the random
   generator's state and the caller's pairs "user.<key>".  docs/io.md. */
typedef struct nn_checkpoint {
    nn_module *module;     /* parameters and buffers; NULL: none */
    nn_optim *optim;       /* optimizer state (Lookahead's inner one too); NULL: none */
    nn_sched *sched;       /* schedule state; NULL: none */
    nn_loader *loader;     /* sample order and position in the epoch; NULL: none */
    nn_rng *rng;           /* generator saved and restored; NULL: the global one
                              (nn_default_rng) */
    long epoch, step;      /* the caller's counters: saved, and set by a load */
    const nn_meta *user;   /* nuser pairs saved (as "user.<key>"), or NULL */
    int nuser;
    /* A successful load calls this for every user pair in the file (key
       without "user."), or not at all when NULL. */
    void (*on_user)(const char *key, const char *value, void *arg);
    void *arg;             /* passed to on_user */
} nn_checkpoint;

/* Write the parts of c that are not NULL, with c->rng's (or the global
   generator's) state, to path: atomic like nn_save.  A module tensor named
   "optim..." or "loader..." is a misuse (the names would clash). */
NNDEF nn_status nn_checkpoint_save(const char *path, const nn_checkpoint *c);
/* Restore c's non-NULL parts from a checkpoint of a run built the same way;
   hyperparameters come from the file (load_state_dict).  All or nothing: on
   failure nothing changes and nn_error_string() says why (NN_ERR_FORMAT). */
NNDEF nn_status nn_checkpoint_load(const char *path, nn_checkpoint *c);

/* ----- >>io.png: PNG images ----------------------------------------------- */
/* PNG files without a compression library: 8-bit samples in one IDAT chunk
   holding a zlib stream of stored (uncompressed) deflate blocks, with the
   PNG chunks' CRC-32 and zlib's Adler-32.  Any PNG viewer reads them. */

/* Write width x height pixels, rows top first, channels bytes per pixel:
   1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.  NN_ERR_IO if the file cannot be
   written; bad sizes (0, or a file over 2 GiB) are NN_ERR_ARG. */
NNDEF nn_status nn_png_write(const char *path, const unsigned char *pixels, int width,
                             int height, int channels);
/* nn_png_write into a new buffer *buf of *size bytes (free it with NN_FREE);
   on failure *buf is NULL and *size 0. */
NNDEF nn_status nn_png_write_mem(const unsigned char *pixels, int width, int height,
                                 int channels, void **buf, size_t *size);
/* Options of nn_png_write_grid (torchvision.utils.save_image); zero is the
   default. */
typedef struct nn_png_grid_opts {
    int nrow;           /* images per row of the grid; 0 means 8 */
    int padding;        /* pixels between and around images; 0 means 2, < 0 none */
    float pad_value;    /* value of the padding, in the images' units */
    int normalize;      /* map the batch's min..max (or lo..hi if lo < hi) to 0..255 */
    float lo, hi;       /* range for normalize; else values are taken in [0,1] */
} nn_png_grid_opts;
/* Write a batch [N,C,H,W] (C 1 or 3; or [N,H,W], gray) as one PNG grid of
   min(N,nrow) x ceil(N/nrow) images; values are clamped to [0,1] (after
   normalize) and scaled to 0..255 (torchvision.utils.save_image). */
NNDEF nn_status nn_png_write_grid(const char *path, const nn_tensor *batch, nn_png_grid_opts opts);

/* ===== >>train =========================================================== */

/* ----- the LR range test ----- */
/* Runs a forward and backward pass on the next batch and returns the loss
   (the finder zeroes the gradients before and steps after). */
typedef float (*nn_lr_find_fn)(void *user);
typedef struct nn_lr_find_opts {
    float start_lr;      /* 0 means 1e-7 */
    float end_lr;        /* 0 means 10 */
    int num_steps;       /* 0 means 100 */
    float smoothing;     /* beta of the loss average, 0 means 0.98 */
    float diverge;       /* stop when smoothed > diverge * best; 0 means 4 */
} nn_lr_find_opts;
typedef struct nn_lr_find_result {
    int n;               /* steps recorded */
    float *lr, *loss, *smoothed;  /* n each */
    int best;            /* index of the smallest smoothed loss */
    float suggestion;    /* lr of the steepest fall of the smoothed loss */
    float lr_min_div10;  /* lr at the minimum / 10 (fastai's other hint) */
} nn_lr_find_result;
/* Sweep the lr exponentially from start_lr to end_lr, one step each,
   recording the bias-corrected smoothed loss; stop at divergence.  The
   parameters, buffers (running statistics) and optimizer state are
   restored afterwards.  Free the result
   with nn_lr_find_free. */
NNDEF nn_status nn_lr_find(nn_optim *o, nn_lr_find_fn fn, void *user,
                           nn_lr_find_opts opts, nn_lr_find_result *out);
NNDEF void nn_lr_find_free(nn_lr_find_result *r);
/* Write "lr,loss,smoothed" rows. */
NNDEF nn_status nn_lr_find_write_csv(const nn_lr_find_result *r, const char *path);
/* Plot the smoothed loss against log lr, marking the suggestion. */
NNDEF nn_status nn_lr_find_write_svg(const nn_lr_find_result *r, const char *path);

/* A line plot in an SVG file: one polyline per series, axes, ticks, legend. */
typedef struct nn_plot_series {
    const char *name;
    const float *x, *y;
    int n;
} nn_plot_series;
typedef struct nn_plot_opts {
    const char *title, *xlabel, *ylabel;
    int logx, logy;      /* logarithmic axes */
    int width, height;   /* 0 means 720 x 440 */
    float mark_x;        /* a dashed vertical line there when > 0 */
    unsigned dashed;     /* bit i set: series i is drawn dashed */
    int markers;         /* a dot at every point */
    float ymin, ymax;    /* a fixed y range when ymax > ymin; else fitted */
} nn_plot_opts;
/* Write nseries line series to an SVG file at path (axes, ticks, legend
   right of the plot; NaN points break a line).  NN_ERR_IO when the file
   cannot be written (matplotlib's plot + legend + savefig). */
NNDEF nn_status nn_plot_svg(const char *path, const nn_plot_series *series, int nseries,
                            nn_plot_opts opts);
/* One panel of a figure: its series and options (size from opts). */
typedef struct nn_plot_panel {
    const nn_plot_series *series;
    int nseries;
    nn_plot_opts opts;
} nn_plot_panel;
/* Several line plots side by side in one SVG file, columns per row (0: all
   in one row), each cell as large as the largest panel (plt.subplots). */
NNDEF nn_status nn_plot_figure_svg(const char *path, const nn_plot_panel *panels, int npanels,
                                   int columns);
/* Options of nn_heatmap_svg; zero is the default. */
typedef struct nn_heatmap_opts {
    const char *title, *xlabel, *ylabel;
    const char *const *row_names;  /* rows names, or NULL: 0, 1, ... */
    const char *const *col_names;  /* cols names, or NULL */
    float vmin, vmax;    /* colour range when vmax > vmin; else the data's */
    int cell;            /* cell size in pixels, 0 means 40 */
    int no_values;       /* do not print each value in its cell */
    const char *format;  /* printf format of a value (a double), NULL: "%.3g" */
} nn_heatmap_opts;
/* A heat map of values [rows, cols] (row-major) in an SVG file: white to
   dark blue, each value in its cell, a colour scale (matplotlib's imshow). */
NNDEF nn_status nn_heatmap_svg(const char *path, const float *values, int rows, int cols,
                               nn_heatmap_opts opts);

/* ----- snapshot ensembles ----- */
/* Copies of a module's parameters and buffers (Huang et al. 2017: take one
   at the end of each warm-restart period) and their averaged predictions. */
typedef struct nn_snapshots nn_snapshots;
/* Keep at most max_count snapshots of m (0 means 8); the oldest goes first. */
NNDEF nn_snapshots *nn_snapshots_new(nn_module *m, int max_count);
/* Copy the module's current parameters and buffers in. */
NNDEF nn_status nn_snapshot_take(nn_snapshots *s);
NNDEF int nn_snapshot_count(const nn_snapshots *s);
/* The mean over snapshots of softmax(forward(x)) along the last axis, [N,C]
   in x's graph (no gradient).  The module's own weights, buffers and each
   module's training flag are put back after. */
NNDEF nn_tensor *nn_snapshot_predict(nn_snapshots *s, nn_tensor *x);
NNDEF void nn_snapshots_free(nn_snapshots *s);



/* Fraction of ds that m classifies correctly (argmax of its output), in
   evaluation mode with gradients off; afterwards every module gets its own
   training flag back, and the graph its gradient mode.
   Batches come as opts says (batch_size 0 means 1000; image_shape for
   convolutional nets); g is scratch and is reset.  -1 on failure. */
NNDEF float nn_accuracy(nn_module *m, const nn_dataset *ds, nn_graph *g, nn_loader_opts opts);

/* ----- >>train.fit: the training loop, progress, early stopping, logs ----- */
/* nn_fit runs the whole training loop of a classifier or regressor:
   batches, loss, backward, clipping, accumulation, optimizer and schedule
   steps, validation, metrics, progress, early stopping, checkpoints, a CSV
   log and SVG curves.  docs/training.md is the guide. */

/* The loss nn_fit minimizes (nn_fit_opts.loss). */
typedef enum nn_fit_loss {
    NN_FIT_CROSS_ENTROPY = 0,  /* nn_cross_entropy(out, labels, opts.ce) (default) */
    NN_FIT_MSE = 1             /* nn_mse(out, targets): regression */
} nn_fit_loss;
/* A user loss: the scalar loss of the module's output on a batch with its
   labels (NULL without) and float targets [B, ntargets] (NULL without). */
typedef nn_tensor *(*nn_fit_loss_fn)(nn_tensor *out, const int *labels, nn_tensor *targets,
                                     void *user);
/* The metric nn_fit reports next to the loss (nn_fit_opts.metric). */
typedef enum nn_metric {
    NN_METRIC_AUTO = 0,   /* accuracy with labels, else RMSE */
    NN_METRIC_NONE = 1,
    NN_METRIC_ACCURACY = 2,
    NN_METRIC_TOPK = 3,   /* top-k accuracy, k = opts.topk (0 means 5) */
    NN_METRIC_MAE = 4,
    NN_METRIC_RMSE = 5,
    NN_METRIC_R2 = 6
} nn_metric;
/* Progress output (nn_fit_opts.progress). */
enum {
    NN_PROGRESS_AUTO = 0,   /* a live bar when the stream is a terminal, else plain */
    NN_PROGRESS_BAR = 1,    /* the live bar (tqdm/Keras style) on any stream */
    NN_PROGRESS_PLAIN = 2,  /* one line per epoch */
    NN_PROGRESS_QUIET = 3   /* nothing */
};
/* What early stopping, the best checkpoint and plateau schedules watch. */
enum {
    NN_MONITOR_VAL_LOSS = 0,     /* default (the training loss without validation) */
    NN_MONITOR_VAL_METRIC = 1,
    NN_MONITOR_TRAIN_LOSS = 2,
    NN_MONITOR_TRAIN_METRIC = 3
};
/* Early-stopping rules (nn_early_stop.rule). */
enum {
    NN_STOP_NONE = 0,
    NN_STOP_PATIENCE = 1,  /* no improvement > min_delta for patience epochs (Keras) */
    NN_STOP_GL = 2,        /* Prechelt's GL_alpha: GL(t) = 100 (E_va(t)/E_opt(t) - 1) > alpha */
    NN_STOP_PQ = 3,        /* PQ_alpha: GL(t)/P_k(t) > alpha at the end of a strip of k */
    NN_STOP_UP = 4         /* UP_s: E_va grew over s successive strips of k epochs */
};

/* An early-stopping rule (Prechelt, "Early stopping - but when?", 1998, for
   GL, PQ, UP; epochs t count from 1, strips end where t % strip == 0;
   P_k(t) = 1000 (sum of the strip's E_tr / (k min of the strip's E_tr) - 1)). */
typedef struct nn_early_stop {
    int rule;            /* NN_STOP_NONE (default), _PATIENCE, _GL, _PQ, _UP */
    int patience;        /* NN_STOP_PATIENCE: 0 means 10 */
    float min_delta;     /* NN_STOP_PATIENCE: smaller changes are no improvement */
    int mode;            /* NN_MODE_MIN or NN_MODE_MAX (nn_fit sets it from the monitor);
                            GL, PQ and UP need NN_MODE_MIN and positive values */
    float alpha;         /* GL: 0 means 5 (percent); PQ: 0 means 0.5 */
    int strip;           /* k of PQ and UP: 0 means 5 */
    int strips;          /* s of UP: 0 means 3 */
} nn_early_stop;
/* Whether rule r stops after epoch n, given the monitored values monitor[0..n)
   (E_va) and, for PQ, the training losses train[0..n) (E_tr): 1 stop, 0 go
   on.  A pure function of the curves (nn_fit calls it once per epoch). */
NNDEF int nn_early_stop_check(const nn_early_stop *r, const float *monitor, const float *train,
                              int n);
/* The 0-based index of the best of values[0..n) for mode (NN_MODE_MIN or
   _MAX): the last one that beat the previous best by more than min_delta
   (the epoch whose weights nn_fit restores); -1 when n < 1. */
NNDEF int nn_best_epoch(const float *values, int n, int mode, float min_delta);

/* What nn_fit returns: per epoch (index e is epoch e+1) the mean training
   loss and metric over the epoch's batches, the validation loss and metric
   (NaN without validation), the lr of its last step and its seconds. */
typedef struct nn_history {
    int epochs;              /* epochs recorded (resumed ones included) */
    float *train_loss, *val_loss, *train_metric, *val_metric, *lr, *seconds;
    const char *metric;      /* its name: "accuracy", "top5", "mae", "rmse", "r2", "" */
    int best_epoch;          /* index of the best monitored value (-1: none) */
    int stopped_epoch;       /* the epoch (from 1) after which a rule stopped, else 0 */
    int stopped_by_callback; /* 1 when a callback ended the run */
    int restored;            /* 1 when the best weights were put back */
    int cap;                 /* private */
} nn_history;
/* Free a history from nn_fit (NULL is ignored). */
NNDEF void nn_history_free(nn_history *h);
/* Write "epoch,train_loss,val_loss,train_<metric>,val_<metric>,lr,seconds"
   rows (Keras's CSVLogger).  NN_ERR_IO on failure. */
NNDEF nn_status nn_history_write_csv(const nn_history *h, const char *path);
/* Learning curves in one SVG: loss (train solid, validation dashed), the
   metric the same way, and the lr on a log axis, against the epoch. */
NNDEF nn_status nn_history_write_svg(const nn_history *h, const char *path);

/* What a callback sees: where the run is and what it has done. */
typedef struct nn_fit_state {
    int epoch, epochs;       /* the current epoch (from 1) and the total */
    int batch, batches;      /* the batch in the epoch (from 1) and the count */
    long step;               /* optimizer steps so far */
    float loss;              /* the last batch's loss */
    float running_loss;      /* the epoch's mean loss so far */
    float running_metric;    /* the epoch's metric so far (NaN: none) */
    const nn_history *history;  /* the finished epochs */
    nn_module *module;
    nn_optim *optim;
} nn_fit_state;
/* A per-batch or per-epoch callback; a nonzero return stops the run. */
typedef int (*nn_fit_callback)(const nn_fit_state *s, void *user);

/* Options of nn_fit; zero is the default everywhere. */
typedef struct nn_fit_opts {
    int epochs;              /* 0 means 10 */
    int batch_size;          /* 0 means 64 */
    int no_shuffle;          /* keep the dataset's order (default: reshuffle each epoch) */
    nn_loader_opts loader;   /* scale, image_shape, rng of the batches (batch_size,
                                shuffle and drop_last come from the fields here) */
    int drop_last;
    int eval_batch_size;     /* validation batches; 0 means 1000 */
    nn_fit_loss loss;        /* NN_FIT_CROSS_ENTROPY (default) or NN_FIT_MSE */
    nn_ce_opts ce;           /* cross-entropy options (label smoothing) */
    nn_fit_loss_fn loss_fn;  /* a user loss instead of .loss, or NULL */
    void *loss_user;         /* passed to loss_fn */
    nn_metric metric;        /* NN_METRIC_AUTO: accuracy with labels, else RMSE */
    int topk;                /* k of NN_METRIC_TOPK, 0 means 5 */
    nn_sched *sched;         /* stepped after every optimizer step, or NULL; */
    int sched_per_epoch;     /* 1: once per epoch instead (reduce-on-plateau and
                                increase-batch always are, fed the monitor) */
    const nn_dataset *val;   /* the validation set, or NULL */
    float val_split;         /* no .val: this fraction of train held out (0: none) */
    uint64_t split_seed;     /* the split's seed (0 is a seed too) */
    int stratified;          /* keep each class's share in the split */
    float clip_norm;         /* > 0: clip the global gradient norm (nn_clip_grad_norm) */
    float clip_value;        /* > 0: clamp each gradient (nn_clip_grad_value) */
    int accumulate;          /* batches per optimizer step (loss / accumulate); 0 means 1 */
    int progress;            /* NN_PROGRESS_AUTO (default), _BAR, _PLAIN, _QUIET */
    void *stream;            /* a FILE * for the progress; NULL: stderr */
    int monitor;             /* NN_MONITOR_VAL_LOSS (default), ... */
    nn_early_stop stop;      /* the early-stopping rule (mode set from the monitor) */
    int restore_best;        /* 0: put the best weights back when a rule or
                                best_checkpoint is set; 1 always; -1 never */
    const char *checkpoint;  /* a checkpoint file (nn_checkpoint_save) every
                                checkpoint_every epochs (0 means 1), or NULL */
    int checkpoint_every;
    const char *best_checkpoint; /* the best model so far (a checkpoint of the module) */
    int resume;              /* continue from .checkpoint if the file exists */
    const char *csv_log;     /* nn_history_write_csv after every epoch, or NULL */
    const char *svg;         /* nn_history_write_svg after every epoch, or NULL */
    nn_fit_callback on_batch;  /* after every batch, or NULL */
    nn_fit_callback on_epoch;  /* after every epoch (its history row is in), or NULL */
    void *user;              /* passed to both */
} nn_fit_opts;

/* Train m with optimizer o on train (Keras's model.fit).  Returns the history
   (free it with nn_history_free); NULL on failure (a file, memory, a loss
   that is not finite: nn_error_string says what) or misuse.  The module is
   left in training mode, with the best weights when they are restored. */
NNDEF nn_history *nn_fit(nn_module *m, nn_optim *o, const nn_dataset *train, nn_fit_opts opts);

/* ----- >>train.metrics: metrics and the model summary --------------------- */
/* Classification metrics over arrays of labels and predictions (sklearn's
   sklearn.metrics), regression metrics, and a model summary (torchinfo). */

/* Fraction of rows of scores [n, C] whose label is among the k largest
   (ties: fewer than k scores strictly above the label's); k = 1 is accuracy. */
NNDEF float nn_topk_accuracy(const float *scores, const int *labels, int n, int C, int k);
/* Add n (label, prediction) pairs to cm [C, C] (row: true class, column:
   predicted), which the caller zeroes first; pairs out of [0, C) are misuse. */
NNDEF void nn_confusion_add(int *cm, int C, const int *labels, const int *pred, int n);
/* The confusion matrix cm [C, C] of m's argmax predictions on ds (nn_accuracy's
   evaluation: eval mode, no gradients, g reset); C = ds->nclasses. */
NNDEF nn_status nn_confusion_matrix(nn_module *m, const nn_dataset *ds, nn_graph *g,
                                    nn_loader_opts opts, int *cm);
/* Print cm as an aligned table with row and column names (NULL: 0, 1, ...)
   to stream (a FILE *; NULL: stdout). */
NNDEF void nn_confusion_print(const int *cm, int C, const char *const *names, void *stream);
/* cm as an SVG heat map (nn_heatmap_svg) with counts in the cells. */
NNDEF nn_status nn_confusion_svg(const char *path, const int *cm, int C,
                                 const char *const *names, const char *title);

/* Precision, recall, F1 and support of one class or an average. */
typedef struct nn_prf {
    float precision, recall, f1;
    int support;             /* true samples of the class (all, for averages) */
} nn_prf;
/* From cm [C, C]: per class (per_class[C], or NULL) p = tp/(tp+fp),
   r = tp/(tp+fn), f1 = 2pr/(p+r), 0 where a denominator is 0 (sklearn's
   zero_division=0); macro (NULL or not) the unweighted mean over classes,
   micro (NULL or not) from the summed counts (equal to accuracy). */
NNDEF void nn_precision_recall_f1(const int *cm, int C, nn_prf *per_class, nn_prf *macro,
                                  nn_prf *micro);
/* Print sklearn's classification_report: per class, accuracy, macro avg
   and weighted avg, to stream (a FILE *; NULL: stdout). */
NNDEF void nn_classification_report(const int *cm, int C, const char *const *names, void *stream);

/* Regression metrics of pred against target, [n, k] each (k outputs). */
typedef struct nn_regression_metrics {
    float mae;               /* mean |pred - target| over all n k values */
    float rmse;              /* sqrt(mean (pred - target)^2) over all values */
    float r2;                /* 1 - SS_res/SS_tot per output, averaged over outputs
                                (sklearn's r2_score, multioutput="uniform_average") */
} nn_regression_metrics;
/* MAE, RMSE and R^2 of n rows of k outputs; a constant target column gives
   R^2 1 when predicted exactly, else 0 (sklearn's convention). */
NNDEF nn_regression_metrics nn_regression_eval(const float *pred, const float *target, int n, int k);

/* One row of a model summary: a module of the tree, in pre-order. */
typedef struct nn_summary_row {
    const char *name;        /* dotted path ("features.0"; "" for the root); owned
                                by the result */
    const char *type;        /* "Conv2d" */
    int depth;               /* 0 for the root */
    nn_shape out;            /* its output shape (ndim -1: it did not run) */
    size_t params;           /* its own and its children's parameter elements */
    int trainable;           /* 1 all need a gradient, 0 none, 2 some; -1 no parameters */
} nn_summary_row;
/* The summary's numbers (nn_summary_ex). */
typedef struct nn_summary_result {
    int nrows;
    nn_summary_row *rows;    /* nrows, pre-order */
    size_t total_params, trainable_params;
    size_t param_bytes;      /* parameters and buffers */
    size_t output_bytes;     /* the sum of every leaf module's output, one forward */
    size_t forward_bytes;    /* the graph arena one forward pass with gradients used */
} nn_summary_result;
/* Options of nn_summary_ex; zero is the default. */
typedef struct nn_summary_opts {
    void *stream;            /* a FILE *; NULL: stdout */
    int max_depth;           /* deepest level printed, 0 means all */
    int quiet;               /* fill the result without printing */
} nn_summary_opts;
/* Print m's layer tree with each module's output shape for an input of
   input_shape (the batch included), its parameters and trainable flag, the
   totals and the memory of one forward pass (torchinfo.summary).  One
   forward pass of a constant input runs in evaluation mode in a graph of
   its own; the module's state and training flags are as before. */
NNDEF nn_status nn_summary(nn_module *m, nn_shape input_shape);
/* nn_summary with options, filling *out (may be NULL; free it with
   nn_summary_free). */
NNDEF nn_status nn_summary_ex(nn_module *m, nn_shape input_shape, nn_summary_opts opts,
                              nn_summary_result *out);
/* Free a summary's rows. */
NNDEF void nn_summary_free(nn_summary_result *r);

/* ----- >>train.tools: search, pruning, interactions, sanity checks -------- */
/* docs/tools.md is the guide to everything below. */

/* ----- lottery-ticket pruning (Frankle & Carbin 2019) -----
   A pruner keeps a 0/1 mask beside each pruned weight, as a buffer
   "<name>_mask" of the weight's module (torch.nn.utils.prune's
   "weight_mask"), so nn_save writes the masks with the model and nn_load
   reads them back into a model given a pruner first.  Attached to an
   optimizer, it zeroes the masked weights after every nn_step (no
   allocation).  It also keeps a copy of every parameter, the rewind point,
   taken at creation (the initial weights) or later (iteration k). */
typedef struct nn_pruner nn_pruner;
typedef struct nn_prune_opts {
    const char *pattern;  /* parameters to prune, as nn_optim_group's patterns
                             ("0.", "*.weight", "*"); NULL: every parameter
                             named "weight" with at least 2 dimensions */
    int global;           /* rank |w| over all pruned tensors together;
                             0: each tensor (layer) separately */
} nn_prune_opts;
/* A pruner over m's parameters selected by opts: masks of ones (an existing
   "<name>_mask" buffer is reused), rewind point = the current weights.
   Adding the buffers invalidates arrays nn_parameters/nn_buffers returned.
   NULL when out of memory or when the pattern matches nothing (misuse). */
NNDEF nn_pruner *nn_pruner_new(nn_module *m, nn_prune_opts opts);
/* Free the pruner (the masks stay in the module).  NULL is ignored; detach
   it (nn_optim_set_step_hook(o, NULL, NULL)) from optimizers that outlive it. */
NNDEF void nn_pruner_free(nn_pruner *p);
/* Apply the masks after every nn_step(o) (o's step hook). */
NNDEF void nn_pruner_attach(nn_pruner *p, nn_optim *o);
/* w = 0 wherever mask = 0. */
NNDEF void nn_prune_apply(nn_pruner *p);
/* Magnitude pruning: mask out the fraction amount (in [0,1]) of each pruned
   tensor's still-unmasked weights with the smallest |w| (opts.global: of
   all of them together), then apply (prune.l1_unstructured, iterated as
   PyTorch's PruningContainer does).  Ties go to the lower index.  NN_OK,
   NN_ERR_OOM (masks unchanged) or NN_ERR_ARG after a misuse report. */
NNDEF nn_status nn_prune_magnitude(nn_pruner *p, float amount);
/* Magnitude pruning of pruned tensor i alone (e.g. the output layer at half
   the rate, as Frankle & Carbin do). */
NNDEF nn_status nn_prune_magnitude_layer(nn_pruner *p, int i, float amount);
/* Take the rewind point now: a copy of every parameter (rewinding to
   iteration k, Frankle et al. 2020). */
NNDEF void nn_prune_set_rewind(nn_pruner *p);
/* Every parameter back to the rewind point, then the masks applied: the
   winning ticket's weights.  Make a new optimizer (or reset its state). */
NNDEF void nn_prune_rewind(nn_pruner *p);
/* The control (random re-initialization): nn_prune_rewind, except that each
   pruned tensor gets a seeded random permutation of its rewind values (a
   fresh draw from its initializer's distribution).  Masks and the rewind
   point are kept. */
NNDEF void nn_prune_reinit(nn_pruner *p, uint64_t seed);
/* Number of pruned tensors. */
NNDEF int nn_prune_count(const nn_pruner *p);
/* Dotted name of pruned tensor i ("0.weight"). */
NNDEF const char *nn_prune_name(const nn_pruner *p, int i);
/* Fraction of pruned tensor i's entries masked out; i = -1: over all. */
NNDEF float nn_prune_sparsity(const nn_pruner *p, int i);
/* Print one line per pruned tensor (name, shape, kept, sparsity) and the
   total to stdout. */
NNDEF void nn_prune_print(const nn_pruner *p);

/* ----- hyper-parameter search -----
   Random search (Bergstra & Bengio 2012) and grid search over a space of
   named ranges, each configuration scored by the caller's objective; an
   optional finer second round around the best (coarse to fine) and an
   optional early cut of bad configurations by successive halving (Jamieson
   & Talwalkar 2016): all are first run at a small budget (epochs, say),
   the best 1/eta go on at eta times the budget, up to the full budget. */
enum { NN_HP_UNIFORM = 0, NN_HP_LOG_UNIFORM, NN_HP_INT, NN_HP_CHOICE };
#define NN_HP_MAX 16   /* most parameters in one space */
/* One named range of a search space. */
typedef struct nn_hparam {
    const char *name;       /* "lr" */
    int kind;               /* NN_HP_UNIFORM, _LOG_UNIFORM (lo > 0), _INT, _CHOICE */
    double lo, hi;          /* the range, ends included (integers for NN_HP_INT) */
    const double *choices;  /* NN_HP_CHOICE: nchoices values */
    int nchoices;
} nn_hparam;
/* Scores one configuration: values[i] is space[i]'s value, budget the
   effort to spend (opts.budget, less under successive halving).  Returns the
   score; NaN marks a failed trial (it ranks last). */
typedef double (*nn_objective_fn)(const double *values, int budget, void *user);
/* Options of nn_random_search and nn_grid_search; zero is the default. */
typedef struct nn_search_opts {
    int trials;             /* random: configurations, 0 means 16; grid: the
                               budget for grid_points when that is 0 */
    int grid_points;        /* grid: points per uniform, log or int range; 0:
                               the most g with g^ranges * choices <= trials */
    uint64_t seed;          /* sampling seed (random search, refinement) */
    int maximize;           /* 1: higher is better (accuracy); 0: lower (loss) */
    int refine_trials;      /* > 0: a second round of that many random
                               configurations around the best */
    float refine_width;     /* the refined box spans this fraction of each
                               (log) range around the best; 0 means 0.25 */
    int budget;             /* the full budget given to the objective; 0 means 1 */
    int halving;            /* successive halving over the first round */
    int eta;                /* halving's keep-1/eta factor; 0 means 3 */
    int quiet;              /* do not print the results table */
    const char *csv_path;   /* write the results table there (NULL: no file) */
} nn_search_opts;
/* The trials of a search (free with nn_search_free). */
typedef struct nn_search_result {
    int nparams, ntrials;
    double *values;         /* ntrials x nparams */
    double *scores;         /* each trial's score at its last budget */
    int *budgets;           /* that budget (below opts.budget: cut early) */
    int *rounds;            /* 0: first round, 1: refinement */
    int best;               /* the best trial at the full budget */
    double best_score;
    double best_values[NN_HP_MAX];
} nn_search_result;
/* Random search: opts.trials configurations drawn (seeded) from space[0..n),
   then the refinement round if asked.  NN_ERR_ARG for a bad space (misuse),
   NN_ERR_OOM, NN_ERR_IO for the CSV; *out holds every trial. */
NNDEF nn_status nn_random_search(const nn_hparam *space, int n, nn_objective_fn f, void *user,
                                 nn_search_opts opts, nn_search_result *out);
/* Grid search: every combination of grid_points values of each range
   (evenly spaced, geometrically for log ranges) and of every choice, the
   first parameter varying slowest; then the refinement round if asked. */
NNDEF nn_status nn_grid_search(const nn_hparam *space, int n, nn_objective_fn f, void *user,
                               nn_search_opts opts, nn_search_result *out);
/* Print the results table (one row per trial, best marked) to stdout. */
NNDEF void nn_search_print(const nn_hparam *space, const nn_search_result *r);
/* Write "trial,round,budget,<names...>,score" rows to path. */
NNDEF nn_status nn_search_write_csv(const nn_hparam *space, const nn_search_result *r,
                                    const char *path);
/* The value of the parameter called name in values (a trial's or
   best_values); misuse (NaN) when the space has none. */
NNDEF double nn_search_value(const nn_hparam *space, int n, const double *values, const char *name);
/* Free a result's arrays. */
NNDEF void nn_search_free(nn_search_result *r);

/* ----- interaction detection from weights (Tsang, Cheng, Liu 2018) -----
   NID: for a trained MLP with first-layer weights W1 [h1,p], each hidden unit
   u of the first layer has an influence z_u = (|w_out|^T |W_L| ... |W_2|)_u
   (absolute weights multiplied from the output down; several outputs are
   summed), and a set of features I gets w(I) = sum_u z_u min_{j in I} |W1[u,j]|.
   Train the MLP with an L1 penalty on its weights, as the paper does. */
/* One candidate interaction: a set of features (bit j for feature j) and
   its strength. */
typedef struct nn_interaction {
    uint64_t features;   /* bit j set: feature j is in the set */
    int i, j;            /* the two lowest features of the set */
    int order;           /* number of features in the set */
    float strength;      /* w(I) */
} nn_interaction;
/* Pairwise NID: every pair i < j of the p inputs of mlp (a module whose
   parameters named "*weight" with 2 dimensions are its linear layers in
   order, nn_sequential of nn_linear and activations), ranked by w({i,j}),
   strongest first.  Writes min(p(p-1)/2, max_out) entries to out; returns
   p(p-1)/2, or -1 after a misuse report.  For an nn_nid_mlp_m model pass
   nn_child(model, "mlp"). */
NNDEF int nn_nid_pairwise(nn_module *mlp, nn_interaction *out, int max_out);
/* Higher-order NID (the paper's greedy ranking, p <= 64 inputs): for each
   first-layer unit, the sets of its top-2, top-3, ... features by |W1|
   are candidates, each gaining z_u times its weakest weight; the distinct
   sets ranked by strength.  Writes at most max_out; returns how many
   distinct sets there are, -1 after a misuse report. */
NNDEF int nn_nid_rank(nn_module *mlp, nn_interaction *out, int max_out);
/* An MLP-M (the paper's main-effects model): y = mlp(x) + sum_j g_j(x_j),
   mlp = nn_sequential of linear layers p -> hidden[0] -> ... -> 1 with ReLU
   between (child "mlp"), and g_j a univariate ReLU net 1 -> main_hidden -> 1
   per feature (child "main", parameters "w1", "b1" [p,main_hidden], "w2"
   [p,main_hidden], "b2" [1]).  x [N,p] -> [N,1].  NULL on a bad size. */
NNDEF nn_module *nn_nid_mlp_m(int p, const int *hidden, int nhidden, int main_hidden);

/* ----- sanity checks (Karpathy's "recipe"; seed 001's debugging notes) ----- */
/* The loss of a model's output on a batch (nn_sanity_opts.loss). */
typedef nn_tensor *(*nn_sanity_loss_fn)(nn_tensor *output, const int *labels,
                                        const nn_tensor *targets, void *user);
/* Options of nn_sanity_check; zero is the default. */
typedef struct nn_sanity_opts {
    nn_sanity_loss_fn loss;   /* NULL: cross-entropy on labels, or MSE on targets */
    void *user;               /* passed to loss */
    const nn_tensor *targets; /* float targets (regression), or NULL */
    int nclasses;             /* C for the log C check; 0: the output's last size */
    int steps;                /* overfitting steps (Adam); 0 means 300 */
    float lr;                 /* their learning rate; 0 means 1e-3 */
    float overfit_loss;       /* pass when the loss ends below it; 0 means 0.05
                                 for cross-entropy, else 5% of the first loss */
    float dead_fraction;      /* flag a ReLU layer with more dead units; 0 means 0.25 */
    int quiet;                /* print nothing (the return value still counts) */
} nn_sanity_opts;
/* Four checks of m on one small batch x [N,...] (labels for classification),
   one line each on stdout, "PASS" or "FAIL": the loss at initialization
   against log C (cross-entropy); that the batch can be overfitted in a few
   hundred steps; a finite-difference check of the gradient on the first two
   samples (evaluation mode); dead ReLU units (zero on the whole batch)
   after each ReLU child of the model's Sequential parts.  Parameters,
   buffers, training flags and the current graph are restored.  Returns the
   number of failed checks, -1 after a misuse report. */
NNDEF int nn_sanity_check(nn_module *m, const nn_tensor *x, const int *labels, nn_sanity_opts opts);

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

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <float.h>
#include <limits.h>

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

/* Shape strings in misuse messages (nn__ts, below) live in NN__TS_SLOTS
   buffers handed out afresh for every message: the nn__misuse macro empties
   the pool before the message's arguments are evaluated, so every shape of
   one message has its own buffer, and a message with more shapes than slots
   prints "[...]" for the extra ones, never another argument's shape. */
#define NN__TS_SLOTS 8
static NN__THREAD_LOCAL char nn__ts_buf[NN__TS_SLOTS][96];
static NN__THREAD_LOCAL int nn__ts_used = 0;
static void nn__ts_reset(void) { nn__ts_used = 0; }
/* The type of the module whose forward is running (set by nn_forward), so a
   misuse inside it reads "nn_forward(Conv2d): nn_conv2d_op: ...". */
static NN__THREAD_LOCAL const char *nn__fwd_type = NULL;

/* API misuse: format the message, call the hook (default: print, abort).
   Every call is `nn__misuse("fn: ...", ...)` with fn the public function the
   user called. */
#define nn__misuse(...) (nn__ts_reset(), nn__misuse_(__VA_ARGS__))
static void nn__misuse_(const char *fmt, ...) {
    va_list ap;
    int n = 0;
    if (nn__fwd_type) n = snprintf(nn__errbuf, sizeof nn__errbuf, "nn_forward(%s): ", nn__fwd_type);
    if (n < 0 || (size_t)n >= sizeof nn__errbuf) n = 0;
    va_start(ap, fmt);
    vsnprintf(nn__errbuf + n, sizeof nn__errbuf - (size_t)n, fmt, ap);
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

/* PCG32 (O'Neill): 64-bit LCG state, permuted 32-bit output.  nn_rng objects
   and the global stream wrap one each; private streams (the synthetic
   dataset) use their own increment so they never disturb them. */
typedef struct nn__pcg {
    uint64_t state, inc;
} nn__pcg;

static uint32_t nn__pcg_next(nn__pcg *r) {
    uint64_t old = r->state;
    uint32_t xorshifted, rot;
    r->state = old * 6364136223846793005ULL + r->inc;
    xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

static void nn__pcg_seed(nn__pcg *r, uint64_t seed, uint64_t inc) {
    r->state = 0;
    r->inc = inc;
    nn__pcg_next(r);
    r->state += seed;
    nn__pcg_next(r);
}

/* Uniform float in [0, 1) from 24 random bits. */
static float nn__pcg_uniform(nn__pcg *r) {
    return (float)(nn__pcg_next(r) >> 8) * (1.0f / 16777216.0f);
}

/* The increment of the global stream and of nn_rng_new's streams. */
#define NN__RNG_INC 0xda3e39cb94b95bdbULL

struct nn_rng {
    nn__pcg pcg;
};

static nn_rng nn__rng_global = {{0x853c49e6748fea9bULL, NN__RNG_INC}};
static NN__THREAD_LOCAL nn_rng *nn__rng_thread = NULL;

/* The current generator: every draw in the library goes through this. */
static nn_rng *nn__rng(void) { return nn__rng_thread ? nn__rng_thread : &nn__rng_global; }

/* Misuse check shared by the nn_rng_* functions. */
static int nn__rng_ok(const void *r, const char *fn) {
    if (r) return 1;
    nn__misuse("%s: NULL generator", fn);
    return 0;
}

static float nn__rng_normal(nn__pcg *r) {
    /* Box-Muller with one draw per call: deterministic and simple. */
    float u1 = ((float)(nn__pcg_next(r) >> 8) + 1.0f) * (1.0f / 16777217.0f);
    float u2 = nn__pcg_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(2.0f * NN_PI * u2);
}

static uint32_t nn__rng_below(nn__pcg *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m;
    uint32_t l, t;
    if (n == 0) return 0;
    m = (uint64_t)nn__pcg_next(r) * n;
    l = (uint32_t)m;
    if (l < n) {
        t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)nn__pcg_next(r) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

NNDEF void nn_seed(uint64_t seed) { nn__pcg_seed(&nn__rng()->pcg, seed, NN__RNG_INC); }
NNDEF float nn_rand_uniform(void) { return nn__pcg_uniform(&nn__rng()->pcg); }
NNDEF float nn_rand_normal(void) { return nn__rng_normal(&nn__rng()->pcg); }
NNDEF int nn_rand_bernoulli(float p) { return nn__pcg_uniform(&nn__rng()->pcg) < p; }
NNDEF uint32_t nn_rand_below(uint32_t n) { return nn__rng_below(&nn__rng()->pcg, n); }

NNDEF nn_rng *nn_rng_new(uint64_t seed) {
    nn_rng *r = (nn_rng *)nn__malloc(sizeof *r);
    if (r) nn__pcg_seed(&r->pcg, seed, NN__RNG_INC);
    return r;
}

NNDEF void nn_rng_free(nn_rng *r) {
    if (!r) return;
    if (r == &nn__rng_global) {
        nn__misuse("nn_rng_free: the default generator belongs to the library");
        return;
    }
    if (r == nn__rng_thread) nn__rng_thread = NULL;
    nn__free(r);
}

NNDEF void nn_rng_seed(nn_rng *r, uint64_t seed) {
    if (nn__rng_ok(r, "nn_rng_seed")) nn__pcg_seed(&r->pcg, seed, NN__RNG_INC);
}
NNDEF float nn_rng_uniform(nn_rng *r) {
    return nn__rng_ok(r, "nn_rng_uniform") ? nn__pcg_uniform(&r->pcg) : 0.0f;
}
NNDEF float nn_rng_normal(nn_rng *r) {
    return nn__rng_ok(r, "nn_rng_normal") ? nn__rng_normal(&r->pcg) : 0.0f;
}
NNDEF int nn_rng_bernoulli(nn_rng *r, float p) {
    return nn__rng_ok(r, "nn_rng_bernoulli") ? nn__pcg_uniform(&r->pcg) < p : 0;
}
NNDEF uint32_t nn_rng_below(nn_rng *r, uint32_t n) {
    return nn__rng_ok(r, "nn_rng_below") ? nn__rng_below(&r->pcg, n) : 0;
}
NNDEF nn_rng *nn_default_rng(void) { return &nn__rng_global; }

NNDEF void nn_rng_get_state(const nn_rng *r, nn_rng_state *out) {
    if (!r || !out) {
        nn__misuse("nn_rng_get_state: NULL %s", r ? "output" : "generator");
        return;
    }
    out->words[0] = r->pcg.state;
    out->words[1] = r->pcg.inc;
    out->words[2] = 0;
    out->words[3] = 0;
}

NNDEF void nn_rng_set_state(nn_rng *r, const nn_rng_state *st) {
    if (!r || !st) {
        nn__misuse("nn_rng_set_state: NULL %s", r ? "state" : "generator");
        return;
    }
    if (!(st->words[1] & 1u) || st->words[2] || st->words[3]) {
        nn__misuse("nn_rng_set_state: not a saved state (increment 0x%016llx must be odd, "
                   "words[2..3] 0x%llx 0x%llx must be 0)",
                   (unsigned long long)st->words[1], (unsigned long long)st->words[2],
                   (unsigned long long)st->words[3]);
        return;
    }
    r->pcg.state = st->words[0];
    r->pcg.inc = st->words[1];
}

NNDEF nn_rng *nn_set_thread_rng(nn_rng *r) {
    nn_rng *prev = nn__rng_thread;
    nn__rng_thread = r == &nn__rng_global ? NULL : r;
    return prev;
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

/* Element-wise loops over at least this many floats are split across the
   threads (below it a team wake-up costs more than it saves).  Each thread
   takes a contiguous share and every element is computed the same way
   wherever it falls, so results do not depend on the thread count. */
#ifndef NN__EW_MT_MIN
#define NN__EW_MT_MIN 65536
#endif

/* The largest team this thread has asked for (tests reset and read it). */
static NN__THREAD_LOCAL int nn__team_max = 0;

/* The team size of a parallel region: nn_get_threads() when big (enough
   work to pay for waking a team) and not already inside a parallel region,
   else 1.  Every parallel region takes its num_threads from here, so
   nn_set_threads is the one setting, whatever the caller's OpenMP state. */
static int nn__team(int big) {
#ifdef NN__OMP_ON
    int nt = big && !omp_in_parallel() ? nn_get_threads() : 1;
#else
    int nt = 1;
    (void)big;
#endif
    if (nt > nn__team_max) nn__team_max = nt;
    return nt;
}

/* Contention control.  A team is only as fast as its slowest thread: when
   another process takes a core, the thread that shares it runs late (it
   waits a scheduler slice, milliseconds, for its turn), the caller waits at
   every region's end, and libgomp's spin-waiting takes time from everyone,
   so a 2-thread run can be several times slower than a 1-thread one.
   The GEMM (most of the work) measures, around each team product, the CPU
   time the whole process got (clock()) against the wall time times the
   team size: about 1 when the team has its cores, about 0.7 or less when
   another process shares one.  Over a window of NN__EFF_WINDOW seconds of
   team products, a share under NN__EFF_MIN makes the calling thread's
   regions run alone; after NN__PROBE seconds the team runs one window
   again and stays if it got its cores, and each try that did not doubles
   the wait, up to NN__PROBE_MAX.  Results do not depend on the team size,
   so this changes only speed.  Per calling thread.  On by default except
   on Windows, whose clock() is wall time. */
#ifndef NN__PROBE
#define NN__PROBE 0.25
#endif
#ifndef NN__PROBE_MAX
#define NN__PROBE_MAX 10.0
#endif
#ifndef NN__EFF_WINDOW
#define NN__EFF_WINDOW 0.02
#endif
#ifndef NN__EFF_MIN
#define NN__EFF_MIN 0.8
#endif
#if defined(_WIN32)
#define NN__ADAPTIVE_DEFAULT 0
#else
#define NN__ADAPTIVE_DEFAULT 1
#endif
static NN__THREAD_LOCAL int nn__solo = 0;     /* 1: regions run on one thread */
static NN__THREAD_LOCAL int nn__solo_off = !NN__ADAPTIVE_DEFAULT; /* 1 keeps every team */
static NN__THREAD_LOCAL int nn__probing = 0;  /* the team is on trial for a window */

/* The team to run a region with that was planned for nt threads. */
static int nn__run(int nt) { return nt > 1 && nn__solo && !nn__solo_off ? 1 : nt; }

NNDEF int nn_set_adaptive_threads(int on) {
    int was = !nn__solo_off;
    nn__solo_off = !on;
    if (!on) nn__solo = nn__probing = 0;
    return was;
}

#ifdef NN__OMP_ON
static NN__THREAD_LOCAL int nn__team_warm = 0; /* the first team product (it starts the pool) is not measured */
/* the current window's process CPU seconds, wall seconds times team size, and
   wall seconds; when to try the team next, and the current wait */
static NN__THREAD_LOCAL double nn__eff_cpu = 0.0, nn__eff_span = 0.0, nn__eff_wall = 0.0;
static NN__THREAD_LOCAL double nn__probe_at = 0.0, nn__probe_wait = 0.0;

/* Whether a team-sized product at time now runs with the team (1) or alone:
   alone while contended, except that once the wait is over the team is
   tried for a window. */
static int nn__team_pick(double now) {
    if (nn__solo_off || !nn__solo) return 1;
    if (now < nn__probe_at) return 0;
    nn__solo = 0; /* the trial window: every region gets the team */
    nn__probing = 1;
    return 1;
}

/* Record a team product of wall seconds with nt threads, during which the
   process used cpu seconds; at the end of a window, decide. */
static void nn__team_note(double cpu, double wall, int nt, double now) {
    int contended;
    if (nn__solo_off) return;
    if (!nn__team_warm) { /* the first team run starts the thread pool: not a measure */
        nn__team_warm = 1;
        return;
    }
    nn__eff_cpu += cpu;
    nn__eff_span += wall * nt;
    nn__eff_wall += wall;
    if (nn__eff_wall < NN__EFF_WINDOW) return;
    contended = nn__eff_cpu < NN__EFF_MIN * nn__eff_span;
    nn__eff_cpu = nn__eff_span = nn__eff_wall = 0.0;
    if (contended) {
        nn__probe_wait = nn__probing && nn__probe_wait > 0.0 ? NN__MIN(2.0 * nn__probe_wait, NN__PROBE_MAX)
                                                               : NN__PROBE;
        nn__probe_at = now + nn__probe_wait;
        nn__solo = 1;
    } else {
        nn__probe_wait = 0.0;
    }
    nn__probing = 0;
}
#endif

/* Threads for an element-wise loop over n floats: 1 below the threshold or
   inside a parallel region. */
static int nn__ew_threads(double n) { return nn__run(nn__team(n >= (double)NN__EW_MT_MIN)); }

#ifdef NN__OMP_ON
#define NN__TID omp_get_thread_num()
#define NN__NTEAM omp_get_num_threads()
#else
#define NN__TID 0
#define NN__NTEAM 1
#endif

/* The calling team member's share [*lo, *hi) of n items, cut at multiples of
   unit (16 floats: a cache line, and whole vectors). */
static void nn__ew_share(size_t n, size_t unit, size_t *lo, size_t *hi) {
    size_t units = (n + unit - 1) / unit, t = (size_t)NN__TID, nt = (size_t)NN__NTEAM;
    *lo = NN__MIN(units * t / nt * unit, n);
    *hi = NN__MIN(units * (t + 1) / nt * unit, n);
}

/* The sizes and leading dimensions of a public GEMM call; 0 after a report.
   Zero sizes are fine (nothing to do); C may be NULL only when it is empty,
   A and B only when K == 0. */
static int nn__sgemm_check(const char *op, int transA, int transB, int M, int N, int K,
                           const float *A, int lda, const float *B, int ldb,
                           const float *C, int ldc) {
    int ac = transA ? M : K, bc = transB ? K : N;
    int reads = M > 0 && N > 0 && K > 0;
    if (M < 0 || N < 0 || K < 0) {
        nn__misuse("%s: negative size M=%d N=%d K=%d", op, M, N, K);
        return 0;
    }
    if (M && N && (!C || ldc < N)) {
        nn__misuse("%s: C is %s with ldc=%d for %d x %d (ldc must be at least N)", op,
                   C ? "given" : "NULL", ldc, M, N);
        return 0;
    }
    if (reads && (!A || !B || lda < ac || ldb < bc)) {
        nn__misuse("%s: op(A) %d x %d with A %s, lda=%d (at least %d) and op(B) %d x %d with "
                   "B %s, ldb=%d (at least %d)", op, M, K, A ? "given" : "NULL", lda, ac, K, N,
                   B ? "given" : "NULL", ldb, bc);
        return 0;
    }
    return 1;
}

NNDEF void nn_sgemm_ref(int transA, int transB, int M, int N, int K, float alpha,
                        const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc) {
    int i, j, k;
    if (!nn__sgemm_check("nn_sgemm_ref", transA, transB, M, N, K, A, lda, B, ldb, C, ldc)) return;
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

/* sgemm, GotoBLAS/BLIS style.  Loops, outer to inner:
     jc  N in blocks of nc        (packed B block kc x nc stays in L2)
     pc  K in blocks of kc        (first block applies beta, the rest add)
     ir  M in micro-panels of MR  (packed A micro-panel MR x kc stays in L1)
     jr  N in micro-panels of NR  (one register-blocked micro-kernel call)
   alpha is folded into the packed A; transposes are absorbed by the packing.
   Threads each take a rectangle of C (whole micro-panels) and run all of the
   above on it with their own buffers, with no synchronisation until the end
   (a spinning barrier is costly on a busy machine).  K is never split and kc
   depends on K only, so each C element sees the same operations in the same
   order at any thread count: results are bitwise identical. */

#if defined(NN__AVX512)
#define NN__GEMM_MR 12
#define NN__GEMM_NR 32
#ifndef NN__GEMM_KC
#define NN__GEMM_KC 256
#endif
#ifndef NN__GEMM_NC
#define NN__GEMM_NC 512
#endif
#elif defined(NN__AVX2)
#define NN__GEMM_MR 6
#define NN__GEMM_NR 16
#define NN__GEMM_KC 256
#define NN__GEMM_NC 512
#elif defined(NN__NEON)
#define NN__GEMM_MR 8
#define NN__GEMM_NR 8
#define NN__GEMM_KC 256
#define NN__GEMM_NC 512
#else
#define NN__GEMM_MR 4
#define NN__GEMM_NR 8
#define NN__GEMM_KC 256
#define NN__GEMM_NC 512
#endif

/* The micro-kernel stays a function of its own: inlined into the driver, its
   27 live vector registers meet the driver's and gcc spills B to the stack. */
#if defined(__GNUC__) || defined(__clang__)
#define NN__GEMM_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define NN__GEMM_NOINLINE __declspec(noinline)
#else
#define NN__GEMM_NOINLINE
#endif

/* Below this many multiply-adds a call stays on one thread. */
#ifndef NN__GEMM_MT_MIN
#define NN__GEMM_MT_MIN (1 << 20) /* multiply-adds; a team wake-up costs tens of us */
#endif
/* Up to this many rows of C (and below MR) nn_sgemm takes the small-batch
   kernel (nn__gemm_small); above it the blocked GEMM is faster (measured
   in docs/performance.md, "Inference at batch 1"). */
#define NN__GEMM_SMALL_M 4

/* X(i) for the rows of a register block (the micro-kernels unroll by hand). */
#define NN__REP4(X) X(0); X(1); X(2); X(3)
#define NN__REP8(X) NN__REP4(X); X(4); X(5); X(6); X(7)
#define NN__REP12(X) NN__REP8(X); X(8); X(9); X(10); X(11)
#define NN__REP6(X) NN__REP4(X); X(4); X(5)

/* ---- micro-kernels ------------------------------------------------------
   nn__gemm_tile: acc[i][j] = sum_k a[k*MR+i] * b[k*bstep+j] for k < kc, then
   C[i][j] = acc (beta 0, C not read), C + acc (beta 1), or C*beta + acc,
   for i < mr, j < nr.  a and b hold full MR / NR (zero-padded when packed);
   bstep is NR for packed B, or ldb when B is read in place.  With bias,
   acc[i][j] also holds bias[i] (a convolution's bias). */

#if defined(NN__AVX512)

/* One 16-wide row piece of the result: store, add or scale-add under a mask
   (masked-out lanes are neither read nor written). */
static void nn__gemm_put16(float *c, __m512 acc, __mmask16 m, int mode, __m512 vbeta) {
    if (mode == 0) {
        _mm512_mask_storeu_ps(c, m, acc);
    } else if (mode == 1) {
        _mm512_mask_storeu_ps(c, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), acc));
    } else {
        _mm512_mask_storeu_ps(c, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, c), vbeta, acc));
    }
}

#define NN__K_DECL(i) \
    __m512 c##i##a = _mm512_set1_ps(bias && i < mr ? bias[i] : 0.0f), c##i##b = c##i##a
#define NN__K_FMA(i)                                  \
    av = _mm512_set1_ps(a[i]);                        \
    c##i##a = _mm512_fmadd_ps(av, b0, c##i##a);       \
    c##i##b = _mm512_fmadd_ps(av, b1, c##i##b)
#define NN__K_PUT(i)                                                   \
    if (i < mr) {                                                      \
        nn__gemm_put16(c + (size_t)i * ldc, c##i##a, m0, mode, vbeta); \
        if (m1) nn__gemm_put16(c + (size_t)i * ldc + 16, c##i##b, m1, mode, vbeta); \
    }
/* Half-width variant for nr <= 16 (narrow outputs such as 10 classes). */
#define NN__K_DECL1(i) __m512 c##i##a = _mm512_set1_ps(bias && i < mr ? bias[i] : 0.0f)
#define NN__K_FMA1(i) c##i##a = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, c##i##a)
#define NN__K_PUT1(i) \
    if (i < mr) nn__gemm_put16(c + (size_t)i * ldc, c##i##a, m0, mode, vbeta);

/* One register block: declare the rows' accumulators, run k, write C. */
#define NN__K_LOADB2 __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), av
#define NN__K_LOADB1 __m512 b0 = _mm512_loadu_ps(b)
#define NN__K_BLOCK(ROWS, DECL, LOADB, FMA, PUT) \
    {                                            \
        ROWS(DECL);                              \
        for (k = 0; k < kc; k++) {               \
            LOADB;                               \
            ROWS(FMA);                           \
            a += 12;                             \
            b += bstep;                          \
        }                                        \
        vbeta = _mm512_set1_ps(beta);            \
        ROWS(PUT);                               \
    }

/* 12 x 32: 24 accumulators, 2 B vectors, 1 broadcast = 27 of 32 zmm. */
static NN__GEMM_NOINLINE void nn__gemm_tile(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, int mr, int nr,
                                            float beta, const float *bias) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    __m512 vbeta;
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1u);
    __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
    /* 12 rows; 8 or 4 for a short last row panel (M = 64 is 5 x 12 + 4), so
       no multiply-adds are spent on rows that are not there; half width for
       nr <= 16 (narrow outputs such as 10 classes) */
    if (nr > 16 && mr <= 4) NN__K_BLOCK(NN__REP4, NN__K_DECL, NN__K_LOADB2, NN__K_FMA, NN__K_PUT)
    else if (nr > 16 && mr <= 8) NN__K_BLOCK(NN__REP8, NN__K_DECL, NN__K_LOADB2, NN__K_FMA, NN__K_PUT)
    else if (nr > 16) NN__K_BLOCK(NN__REP12, NN__K_DECL, NN__K_LOADB2, NN__K_FMA, NN__K_PUT)
    else NN__K_BLOCK(NN__REP12, NN__K_DECL1, NN__K_LOADB1, NN__K_FMA1, NN__K_PUT1)
}
#undef NN__K_DECL
#undef NN__K_FMA
#undef NN__K_PUT
#undef NN__K_DECL1
#undef NN__K_FMA1
#undef NN__K_PUT1
#undef NN__K_LOADB2
#undef NN__K_LOADB1
#undef NN__K_BLOCK

#else /* AVX2, NEON, scalar: a full-tile kernel plus a temporary tile for edges */

/* Row i of the tile (two vectors, c##i##a and c##i##b) to C: stored (beta 0),
   added (beta 1) or added to beta C (fused where the ISA has it).  Each ISA
   below defines its vector load, store, add, scale-add and width, then
   NN__K_PUT. */
#define NN__K_PUT(i)                                                              \
    do {                                                                          \
        float *cr = c + (size_t)i * ldc;                                          \
        if (mode == 0) {                                                          \
            NN__K_ST(cr, c##i##a);                                                \
            NN__K_ST(cr + NN__K_W, c##i##b);                                      \
        } else if (mode == 1) {                                                   \
            NN__K_ST(cr, NN__K_ADD(NN__K_LD(cr), c##i##a));                       \
            NN__K_ST(cr + NN__K_W, NN__K_ADD(NN__K_LD(cr + NN__K_W), c##i##b));    \
        } else {                                                                  \
            NN__K_ST(cr, NN__K_SCALE(NN__K_LD(cr), vbeta, c##i##a));              \
            NN__K_ST(cr + NN__K_W, NN__K_SCALE(NN__K_LD(cr + NN__K_W), vbeta, c##i##b)); \
        }                                                                         \
    } while (0)

#if defined(NN__AVX2)
/* 6 x 16: 12 accumulators, 2 B vectors, 1 broadcast = 15 of 16 ymm. */
#define NN__K_DECL(i) __m256 c##i##a = _mm256_setzero_ps(), c##i##b = _mm256_setzero_ps()
#define NN__K_FMA(i)                                  \
    av = _mm256_broadcast_ss(a + i);                  \
    c##i##a = _mm256_fmadd_ps(av, b0, c##i##a);       \
    c##i##b = _mm256_fmadd_ps(av, b1, c##i##b)
#define NN__K_LD(p) _mm256_loadu_ps(p)
#define NN__K_ST(p, v) _mm256_storeu_ps(p, v)
#define NN__K_ADD(x, y) _mm256_add_ps(x, y)
#define NN__K_SCALE(cv, vb, acc) _mm256_fmadd_ps(cv, vb, acc)
#define NN__K_W 8
static NN__GEMM_NOINLINE void nn__gemm_full(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, float beta) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    __m256 vbeta = _mm256_set1_ps(beta);
    NN__K_DECL(0); NN__K_DECL(1); NN__K_DECL(2); NN__K_DECL(3); NN__K_DECL(4); NN__K_DECL(5);
    for (k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), av;
        NN__K_FMA(0); NN__K_FMA(1); NN__K_FMA(2); NN__K_FMA(3); NN__K_FMA(4); NN__K_FMA(5);
        a += 6;
        b += bstep;
    }
    NN__K_PUT(0); NN__K_PUT(1); NN__K_PUT(2); NN__K_PUT(3); NN__K_PUT(4); NN__K_PUT(5);
}
#undef NN__K_DECL
#undef NN__K_FMA
#undef NN__K_LD
#undef NN__K_ST
#undef NN__K_ADD
#undef NN__K_SCALE
#undef NN__K_W
/* The edge merge repeats the kernel's last step exactly (fused for beta). */
#define NN__GEMM_MERGE(c, t, beta) fmaf((c), (beta), (t))

#elif defined(NN__NEON)
/* 8 x 8: 16 accumulators, A and B as two vectors each = 20 of 32 q regs. */
#if defined(__aarch64__) || defined(_M_ARM64)
#define NN__K_MLA(acc, bv, av, lane) acc = vfmaq_laneq_f32(acc, bv, av, lane)
#define NN__GEMM_MERGE(c, t, beta) fmaf((c), (beta), (t))
#define NN__K_SCALE(cv, vb, acc) vfmaq_f32(acc, cv, vb)
#else /* 32-bit ARM: no fused lane form */
#define NN__K_MLA(acc, bv, av, lane) \
    acc = vmlaq_n_f32(acc, bv, vgetq_lane_f32(av, lane))
#define NN__GEMM_MERGE(c, t, beta) ((c) * (beta) + (t))
#define NN__K_SCALE(cv, vb, acc) vmlaq_f32(acc, cv, vb)
#endif
#define NN__K_ROW(i, av, lane)                                    \
    NN__K_MLA(c##i##a, b0, av, lane);                             \
    NN__K_MLA(c##i##b, b1, av, lane)
#define NN__K_DECL(i) float32x4_t c##i##a = vdupq_n_f32(0.0f), c##i##b = vdupq_n_f32(0.0f)
#define NN__K_LD(p) vld1q_f32(p)
#define NN__K_ST(p, v) vst1q_f32(p, v)
#define NN__K_ADD(x, y) vaddq_f32(x, y)
#define NN__K_W 4
static NN__GEMM_NOINLINE void nn__gemm_full(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, float beta) {
    int k, mode = beta == 0.0f ? 0 : beta == 1.0f ? 1 : 2;
    float32x4_t vbeta = vdupq_n_f32(beta);
    NN__K_DECL(0); NN__K_DECL(1); NN__K_DECL(2); NN__K_DECL(3);
    NN__K_DECL(4); NN__K_DECL(5); NN__K_DECL(6); NN__K_DECL(7);
    for (k = 0; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        NN__K_ROW(0, a0, 0); NN__K_ROW(1, a0, 1); NN__K_ROW(2, a0, 2); NN__K_ROW(3, a0, 3);
        NN__K_ROW(4, a1, 0); NN__K_ROW(5, a1, 1); NN__K_ROW(6, a1, 2); NN__K_ROW(7, a1, 3);
        a += 8;
        b += bstep;
    }
    NN__K_PUT(0); NN__K_PUT(1); NN__K_PUT(2); NN__K_PUT(3);
    NN__K_PUT(4); NN__K_PUT(5); NN__K_PUT(6); NN__K_PUT(7);
}
#undef NN__K_MLA
#undef NN__K_SCALE
#undef NN__K_ROW
#undef NN__K_DECL
#undef NN__K_LD
#undef NN__K_ST
#undef NN__K_ADD
#undef NN__K_W

#else /* portable scalar */
/* 4 x 8 in plain C; compilers keep acc in registers and may vectorize j. */
static NN__GEMM_NOINLINE void nn__gemm_full(int kc, const float *a, const float *b,
                                            size_t bstep, float *c, int ldc, float beta) {
    float acc[NN__GEMM_MR * NN__GEMM_NR];
    int i, j, k;
    for (j = 0; j < NN__GEMM_MR * NN__GEMM_NR; j++) acc[j] = 0.0f;
    for (k = 0; k < kc; k++) {
        for (i = 0; i < NN__GEMM_MR; i++) {
            float ai = a[i];
            for (j = 0; j < NN__GEMM_NR; j++) acc[i * NN__GEMM_NR + j] += ai * b[j];
        }
        a += NN__GEMM_MR;
        b += bstep;
    }
    for (i = 0; i < NN__GEMM_MR; i++) {
        float *cr = c + (size_t)i * ldc;
        const float *t = acc + i * NN__GEMM_NR;
        if (beta == 0.0f) for (j = 0; j < NN__GEMM_NR; j++) cr[j] = t[j];
        else if (beta == 1.0f) for (j = 0; j < NN__GEMM_NR; j++) cr[j] += t[j];
        else for (j = 0; j < NN__GEMM_NR; j++) cr[j] = cr[j] * beta + t[j];
    }
}
#define NN__GEMM_MERGE(c, t, beta) ((c) * (beta) + (t))
#endif
#undef NN__K_PUT

/* dst[0..n) += v for a row of an edge tile (a conv's bias). */
static void nn__short_addc(float *dst, float v, int n) {
    int u = 0;
#if defined(NN__AVX2)
    for (; u + 8 <= n; u += 8)
        _mm256_storeu_ps(dst + u, _mm256_add_ps(_mm256_loadu_ps(dst + u), _mm256_set1_ps(v)));
#elif defined(NN__NEON)
    for (; u + 4 <= n; u += 4) vst1q_f32(dst + u, vaddq_f32(vld1q_f32(dst + u), vdupq_n_f32(v)));
#endif
    for (; u < n; u++) dst[u] += v;
}

static void nn__gemm_tile(int kc, const float *a, const float *b, size_t bstep, float *c,
                          int ldc, int mr, int nr, float beta, const float *bias) {
    float t[NN__GEMM_MR * NN__GEMM_NR];
    int i, j;
    if (mr == NN__GEMM_MR && nr == NN__GEMM_NR) {
        nn__gemm_full(kc, a, b, bstep, c, ldc, beta);
    } else {
        /* Edge tile: full tile into t, then merge only the valid part. */
        nn__gemm_full(kc, a, b, bstep, t, NN__GEMM_NR, 0.0f);
        for (i = 0; i < mr; i++) {
            float *cr = c + (size_t)i * ldc;
            const float *tr = t + i * NN__GEMM_NR;
            if (beta == 0.0f) for (j = 0; j < nr; j++) cr[j] = tr[j];
            else if (beta == 1.0f) for (j = 0; j < nr; j++) cr[j] += tr[j];
            else for (j = 0; j < nr; j++) cr[j] = NN__GEMM_MERGE(cr[j], tr[j], beta);
        }
    }
    if (bias)
        for (i = 0; i < mr; i++) nn__short_addc(c + (size_t)i * ldc, bias[i], nr);
}
#endif

/* ---- packing ------------------------------------------------------------ */

/* A micro-panel: rows i0..i0+mr, k0..k0+kc of op(A) times alpha, stored
   [k][MR] with rows mr..MR zero. */
#if defined(NN__AVX512)
/* In-register 16 x 16 transpose of r0..r15 (t0..t15 scratch): lane j of
   row i becomes lane i of row j.  A macro, so that everything stays in
   registers. */
#define NN__T2(i, j) \
    t##i = _mm512_mask_unpacklo_ps(r##i, 0xFFFF, r##i, r##j);   \
    t##j = _mm512_mask_unpackhi_ps(r##i, 0xFFFF, r##i, r##j)
#define NN__T4(a, b, c, d)                          \
    r##a = _mm512_mask_shuffle_ps(t##a, 0xFFFF, t##a, t##c, 0x44);      \
    r##b = _mm512_mask_shuffle_ps(t##a, 0xFFFF, t##a, t##c, 0xEE);      \
    r##c = _mm512_mask_shuffle_ps(t##b, 0xFFFF, t##b, t##d, 0x44);      \
    r##d = _mm512_mask_shuffle_ps(t##b, 0xFFFF, t##b, t##d, 0xEE)
#define NN__T8(i, j, l)                              \
    t##i = _mm512_mask_shuffle_f32x4(r##i, 0xFFFF, r##i, r##l, 0x88);    \
    t##j = _mm512_mask_shuffle_f32x4(r##i, 0xFFFF, r##i, r##l, 0xDD)
#define NN__T16(i, j, l)                             \
    r##i = _mm512_mask_shuffle_f32x4(t##i, 0xFFFF, t##i, t##l, 0x88);    \
    r##j = _mm512_mask_shuffle_f32x4(t##i, 0xFFFF, t##i, t##l, 0xDD)
#define NN__GEMM_T16()                                                          \
    NN__T2(0, 1); NN__T2(2, 3); NN__T2(4, 5); NN__T2(6, 7);                     \
    NN__T2(8, 9); NN__T2(10, 11); NN__T2(12, 13); NN__T2(14, 15);               \
    NN__T4(0, 1, 2, 3); NN__T4(4, 5, 6, 7); NN__T4(8, 9, 10, 11);               \
    NN__T4(12, 13, 14, 15);                                                     \
    NN__T8(0, 4, 4); NN__T8(1, 5, 5); NN__T8(2, 6, 6); NN__T8(3, 7, 7);         \
    NN__T8(8, 12, 12); NN__T8(9, 13, 13); NN__T8(10, 14, 14); NN__T8(11, 15, 15); \
    NN__T16(0, 8, 8); NN__T16(1, 9, 9); NN__T16(2, 10, 10); NN__T16(3, 11, 11); \
    NN__T16(4, 12, 12); NN__T16(5, 13, 13); NN__T16(6, 14, 14); NN__T16(7, 15, 15)

/* Rows src[i*ld + k] (i < rows; the others read as zero) times scale, 16 k
   at a time, transposed: dst[k*dst_stride + i] for k < kc, under store_mask. */
#define NN__LD(i)                                                                  \
    r##i = (i) < rows ? _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, src + (i) * ld + k), scale) \
                      : _mm512_setzero_ps()
#define NN__ST(i) _mm512_mask_storeu_ps(d + (size_t)(i) * dst_stride, store_mask, r##i)
static void nn__gemm_pack_t16(const float *src, size_t ld, int rows, int kc, __m512 scale,
                              float *dst, int dst_stride, __mmask16 store_mask) {
    __m512 r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15;
    __m512 t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15;
    int k;
    for (k = 0; k < kc; k += 16) {
        int kn = NN__MIN(16, kc - k);
        __mmask16 lm = (__mmask16)(kn == 16 ? 0xFFFF : (1u << kn) - 1u);
        float *d = dst + (size_t)k * dst_stride;
        NN__LD(0); NN__LD(1); NN__LD(2); NN__LD(3); NN__LD(4); NN__LD(5); NN__LD(6);
        NN__LD(7); NN__LD(8); NN__LD(9); NN__LD(10); NN__LD(11); NN__LD(12); NN__LD(13);
        NN__LD(14); NN__LD(15);
        NN__GEMM_T16();
        /* rows past kn are not stored: the next panel may start there */
        NN__ST(0);
        if (kn > 1) NN__ST(1);
        if (kn > 2) NN__ST(2);
        if (kn > 3) NN__ST(3);
        if (kn > 4) NN__ST(4);
        if (kn > 5) NN__ST(5);
        if (kn > 6) NN__ST(6);
        if (kn > 7) NN__ST(7);
        if (kn > 8) NN__ST(8);
        if (kn > 9) NN__ST(9);
        if (kn > 10) NN__ST(10);
        if (kn > 11) NN__ST(11);
        if (kn > 12) NN__ST(12);
        if (kn > 13) NN__ST(13);
        if (kn > 14) NN__ST(14);
        if (kn > 15) NN__ST(15);
    }
}
#undef NN__LD
#undef NN__ST
#undef NN__T2
#undef NN__T4
#undef NN__T8
#undef NN__T16
#undef NN__GEMM_T16

static void nn__gemm_pack_a(int transA, const float *A, int lda, int i0, int mr,
                            int k0, int kc, float alpha, float *dst) {
    __m512 va = _mm512_set1_ps(alpha);
    int k;
    if (!transA) {
        /* rows of A are k-contiguous: transpose 12 (+4 zero) rows x 16 k */
        nn__gemm_pack_t16(A + (size_t)i0 * lda + k0, (size_t)lda, mr, kc, va, dst,
                          NN__GEMM_MR, (__mmask16)0x0FFF);
        return;
    }
    {
        __mmask16 m = (__mmask16)((1u << mr) - 1u);
        const float *s = A + (size_t)k0 * lda + i0;
        for (k = 0; k < kc; k++)
            _mm512_mask_storeu_ps(dst + (size_t)k * NN__GEMM_MR, (__mmask16)0x0FFF,
                                  _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + (size_t)k * lda), va));
    }
}

/* B^T micro-panel: columns j0..j0+nr of op(B) are rows of B, k-contiguous:
   transpose 16 of them at a time. */
static void nn__gemm_pack_bt(const float *B, int ldb, int k0, int kc, int j0, int nr,
                             float *dst) {
    __m512 one = _mm512_set1_ps(1.0f);
    const float *s = B + (size_t)j0 * ldb + k0;
    int k;
    nn__gemm_pack_t16(s, (size_t)ldb, NN__MIN(nr, 16), kc, one, dst, NN__GEMM_NR,
                      (__mmask16)0xFFFF);
    if (nr > 16)
        nn__gemm_pack_t16(s + (size_t)16 * ldb, (size_t)ldb, nr - 16, kc, one, dst + 16,
                          NN__GEMM_NR, (__mmask16)0xFFFF);
    else
        for (k = 0; k < kc; k++)
            _mm512_store_ps(dst + (size_t)k * NN__GEMM_NR + 16, _mm512_setzero_ps());
}

#else /* portable packing */

static void nn__gemm_pack_a(int transA, const float *A, int lda, int i0, int mr,
                            int k0, int kc, float alpha, float *dst) {
    int i, k;
    if (transA) {
        for (k = 0; k < kc; k++) {
            const float *s = A + (size_t)(k0 + k) * lda + i0;
            float *d = dst + (size_t)k * NN__GEMM_MR;
            for (i = 0; i < mr; i++) d[i] = alpha * s[i];
            for (; i < NN__GEMM_MR; i++) d[i] = 0.0f;
        }
        return;
    }
    if (mr == NN__GEMM_MR) {
        const float *s = A + (size_t)i0 * lda + k0;
        for (k = 0; k < kc; k++) {
            float *d = dst + (size_t)k * NN__GEMM_MR;
            for (i = 0; i < NN__GEMM_MR; i++) d[i] = alpha * s[(size_t)i * lda + k];
        }
        return;
    }
    for (i = 0; i < NN__GEMM_MR; i++) {
        const float *s = A + (size_t)(i0 + i) * lda + k0;
        if (i < mr) for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_MR + i] = alpha * s[k];
        else for (k = 0; k < kc; k++) dst[(size_t)k * NN__GEMM_MR + i] = 0.0f;
    }
}

/* B^T micro-panel: columns j0..j0+nr of op(B), stored [k][NR] with columns
   nr..NR zero.  In blocks of 16 k, so the strided writes stay in L1. */
static void nn__gemm_pack_bt(const float *B, int ldb, int k0, int kc, int j0, int nr,
                             float *dst) {
    int j, k, kb;
    for (kb = 0; kb < kc; kb += 16) {
        int ke = NN__MIN(kc, kb + 16);
        for (j = 0; j < NN__GEMM_NR; j++) {
            const float *s = B + (size_t)(j0 + j) * ldb + k0;
            if (j < nr) for (k = kb; k < ke; k++) dst[(size_t)k * NN__GEMM_NR + j] = s[k];
            else for (k = kb; k < ke; k++) dst[(size_t)k * NN__GEMM_NR + j] = 0.0f;
        }
    }
}

#endif

/* A block of untransposed B, k0..k0+kc x j0..j0+nc, into micro-panels [k][NR]
   (the last one zero-padded).  Row by row, so the reads run along B's rows. */
static void nn__gemm_pack_b_rows(const float *B, int ldb, int k0, int kc, int j0, int nc,
                                 float *dst) {
    int k, p, np = nc / NN__GEMM_NR, rem = nc % NN__GEMM_NR;
    size_t pstride = (size_t)kc * NN__GEMM_NR;
    for (k = 0; k < kc; k++) {
        const float *s = B + (size_t)(k0 + k) * ldb + j0;
        float *d = dst + (size_t)k * NN__GEMM_NR;
        for (p = 0; p < np; p++)
            memcpy(d + p * pstride, s + p * NN__GEMM_NR, NN__GEMM_NR * sizeof(float));
        if (rem) {
            memcpy(d + np * pstride, s + np * NN__GEMM_NR, (size_t)rem * sizeof(float));
            memset(d + np * pstride + rem, 0, (size_t)(NN__GEMM_NR - rem) * sizeof(float));
        }
    }
}

/* ---- driver ------------------------------------------------------------- */

/* A convolution's image seen as the GEMM operand B = im2col(image) without
   writing im2col out: row k = (channel, kh, kw), column j = (sample, oh, ow).
   Packing reads the image directly (implicit GEMM). */
typedef struct nn__gemm_image {
    int H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW;
    size_t sample; /* floats from one sample's image to the next */
} nn__gemm_image;

typedef struct nn__gemm_job {
    int transA, transB, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    int kc;          /* K block: depends on K only, so every thread agrees */
    const nn__gemm_image *bimg; /* B is im2col of the image at B (or NULL) */
    int cP;          /* > 0: C is [samples][M][cP], column j = (j / cP, j % cP) */
    size_t csample;  /* floats between samples of C when cP > 0 */
    const float *bias; /* or NULL: C[i][j] += bias[i] (a conv's bias) */
} nn__gemm_job;

/* dst[0..n) = src[0..n) for the few floats of an image row (n <= NR). */
static void nn__short_copy(float *dst, const float *src, int n) {
#if defined(NN__AVX512)
    /* whole 16s and 8s plain, the last few under a mask */
    int u = 0;
    for (; u + 16 <= n; u += 16) _mm512_storeu_ps(dst + u, _mm512_loadu_ps(src + u));
    if (u + 8 <= n) {
        _mm256_storeu_ps(dst + u, _mm256_loadu_ps(src + u));
        u += 8;
    }
    if (u < n) {
        __mmask16 m = (__mmask16)((1u << (n - u)) - 1u);
        _mm512_mask_storeu_ps(dst + u, m, _mm512_maskz_loadu_ps(m, src + u));
    }
#else
    int u = 0;
#if defined(NN__AVX2)
    for (; u + 8 <= n; u += 8) _mm256_storeu_ps(dst + u, _mm256_loadu_ps(src + u));
#elif defined(NN__NEON)
    for (; u + 4 <= n; u += 4) vst1q_f32(dst + u, vld1q_f32(src + u));
#endif
    for (; u < n; u++) dst[u] = src[u];
#endif
}

/* dst[0..n) += src[0..n), the same way. */
static void nn__short_add(float *dst, const float *src, int n) {
    int u = 0;
#if defined(NN__AVX512)
    for (; u + 16 <= n; u += 16)
        _mm512_storeu_ps(dst + u, _mm512_add_ps(_mm512_loadu_ps(dst + u), _mm512_loadu_ps(src + u)));
#endif
#if defined(NN__AVX512) || defined(NN__AVX2)
    for (; u + 8 <= n; u += 8)
        _mm256_storeu_ps(dst + u, _mm256_add_ps(_mm256_loadu_ps(dst + u), _mm256_loadu_ps(src + u)));
#elif defined(NN__NEON)
    for (; u + 4 <= n; u += 4) vst1q_f32(dst + u, vaddq_f32(vld1q_f32(dst + u), vld1q_f32(src + u)));
#endif
    for (; u < n; u++) dst[u] += src[u];
}

/* A block of B = im2col(image), rows k0..k0+kc, columns j0..j0+nc, into
   micro-panels [k][NR].  A column panel is cut into runs along output rows;
   each (row k, run) is a short copy from one image row, zeros where the
   window hangs over the padding. */
static void nn__gemm_pack_b_image(const nn__gemm_job *g, int k0, int kc, int j0, int nc,
                                  float *dst) {
    const nn__gemm_image *im = g->bimg;
    int P = im->OH * im->OW, KK = im->KH * im->KW, np = (nc + NN__GEMM_NR - 1) / NN__GEMM_NR;
    int kdh[NN__GEMM_KC], kdw[NN__GEMM_KC], p, k;
    size_t kch[NN__GEMM_KC], koff[NN__GEMM_KC], HW = (size_t)im->H * (size_t)im->W;
    for (k = 0; k < kc; k++) { /* per row: channel offset and tap offsets */
        int kk = k0 + k;
        kch[k] = (size_t)(kk / KK) * HW;
        kdh[k] = kk / im->KW % im->KH * im->DH;
        kdw[k] = kk % im->KW * im->DW;
        koff[k] = kch[k] + (size_t)kdh[k] * (size_t)im->W + (size_t)kdw[k];
    }
    for (p = 0; p < np; p++) {
        int jp = j0 + p * NN__GEMM_NR, nr = NN__MIN(NN__GEMM_NR, j0 + nc - jp), t = 0, nruns = 0, r;
        int rih[NN__GEMM_NR], riw[NN__GEMM_NR], rlen[NN__GEMM_NR], rdst[NN__GEMM_NR], inner = 1;
        const float *rsrc[NN__GEMM_NR];
        float *d = dst + (size_t)p * kc * NN__GEMM_NR;
        while (t < nr) {
            int j = jp + t, n = j / P, pp = j % P, oh = pp / im->OW, ow = pp % im->OW;
            int len = NN__MIN(im->OW - ow, nr - t);
            rsrc[nruns] = g->B + (size_t)n * im->sample;
            rih[nruns] = oh * im->SH - im->PH;
            riw[nruns] = ow * im->SW - im->PW;
            rlen[nruns] = len;
            rdst[nruns] = t;
            /* every tap of this run inside the image: plain copies */
            inner &= im->SW == 1 && rih[nruns] >= 0 && rih[nruns] + (im->KH - 1) * im->DH < im->H &&
                     riw[nruns] >= 0 && riw[nruns] + len - 1 + (im->KW - 1) * im->DW < im->W;
            nruns++;
            t += len;
        }
        if (inner) {
            /* the common case (no padding, stride 1): short copies only */
            for (r = 0; r < nruns; r++) {
                const float *src = rsrc[r] + (size_t)rih[r] * (size_t)im->W + (size_t)riw[r];
                float *o = d + rdst[r];
                int len = rlen[r];
                for (k = 0; k < kc; k++) nn__short_copy(o + (size_t)k * NN__GEMM_NR, src + koff[k], len);
            }
            if (nr < NN__GEMM_NR)
                for (k = 0; k < kc; k++)
                    for (t = nr; t < NN__GEMM_NR; t++) d[(size_t)k * NN__GEMM_NR + t] = 0.0f;
            continue;
        }
        for (k = 0; k < kc; k++) {
            float *dk = d + (size_t)k * NN__GEMM_NR;
            for (r = 0; r < nruns; r++) {
                int ih = rih[r] + kdh[k], iw = riw[r] + kdw[k], len = rlen[r], u;
                float *o = dk + rdst[r];
                const float *row;
                if (ih < 0 || ih >= im->H) {
                    for (u = 0; u < len; u++) o[u] = 0.0f;
                    continue;
                }
                row = rsrc[r] + kch[k] + (size_t)ih * im->W;
                if (im->SW == 1) {
                    /* zeros left of the image, a copy, zeros right of it */
                    int a = NN__MAX(0, NN__MIN(len, -iw)), e = NN__MAX(a, NN__MIN(len, im->W - iw));
                    for (u = 0; u < a; u++) o[u] = 0.0f;
                    nn__short_copy(o + a, row + iw + a, e - a);
                    for (u = e; u < len; u++) o[u] = 0.0f;
                } else {
                    for (u = 0; u < len; u++, iw += im->SW) o[u] = iw >= 0 && iw < im->W ? row[iw] : 0.0f;
                }
            }
            for (t = nr; t < NN__GEMM_NR; t++) dk[t] = 0.0f;
        }
    }
}

/* The micro-tile of C at row i, column j (nr columns): in place when C is a
   plain matrix or the tile stays within one sample, else through a temporary
   tile scattered sample by sample.  bias (rows i.., when given) goes into
   the sums; the caller passes it for the first K block only. */
static void nn__gemm_put_tile(const nn__gemm_job *g, int kc, const float *apack, const float *b,
                              size_t bstep, int i, int j, int mr, int nr, float beta,
                              const float *bias) {
    float tmp[NN__GEMM_MR * NN__GEMM_NR], *c = NULL;
    int r, t;
    if (bias) bias += i;
    if (!g->cP) {
        nn__gemm_tile(kc, apack, b, bstep, g->C + (size_t)i * g->ldc + j, g->ldc, mr, nr, beta, bias);
        return;
    }
    if (j / g->cP == (j + nr - 1) / g->cP) {
        c = g->C + (size_t)(j / g->cP) * g->csample + (size_t)i * g->cP + (size_t)(j % g->cP);
        nn__gemm_tile(kc, apack, b, bstep, c, g->cP, mr, nr, beta, bias);
        return;
    }
    nn__gemm_tile(kc, apack, b, bstep, tmp, NN__GEMM_NR, mr, nr, 0.0f, bias);
    for (t = 0; t < nr; t++) {
        int jj = j + t;
        c = g->C + (size_t)(jj / g->cP) * g->csample + (size_t)i * g->cP + (size_t)(jj % g->cP);
        for (r = 0; r < mr; r++) {
            float v = tmp[r * NN__GEMM_NR + t], *cr = c + (size_t)r * g->cP;
            *cr = beta == 0.0f ? v : beta == 1.0f ? *cr + v : *cr * beta + v;
        }
    }
}

/* The packed-B buffers of a call (one slice per thread) belong to the thread
   that calls nn_sgemm and are kept for its next call, so a training loop in
   steady state never allocates.  OpenMP worker threads own nothing. */
static NN__THREAD_LOCAL float *nn__gemm_buf = NULL;
static NN__THREAD_LOCAL size_t nn__gemm_buf_cap = 0;

/* Free the calling thread's packing buffer (it is regrown on demand). */
static void nn__gemm_release(void) {
    nn__free_floats(nn__gemm_buf);
    nn__gemm_buf = NULL;
    nn__gemm_buf_cap = 0;
}

NNDEF void nn_thread_cleanup(void) { nn__gemm_release(); }

static float *nn__gemm_buffer(size_t need) {
    if (need > nn__gemm_buf_cap) {
        nn__gemm_release();
        nn__gemm_buf = nn__alloc_floats(need, 0);
        nn__gemm_buf_cap = nn__gemm_buf ? need : 0;
    }
    return nn__gemm_buf;
}

/* Floats of packed B one thread needs: kc x (an N block, whole panels). */
static size_t nn__gemm_slice(int kc, int N) {
    int w = NN__MIN(N, NN__GEMM_NC) + NN__GEMM_NR - 1;
    size_t n = (size_t)kc * (size_t)(w / NN__GEMM_NR * NN__GEMM_NR);
    return (n + 15) / 16 * 16; /* keeps every slice 64-byte aligned */
}

/* C[i0:i0+m, j0:j0+n] on one thread: the whole blocked algorithm, with
   bpack (nn__gemm_slice floats) for packed B. */
static void nn__gemm_block(const nn__gemm_job *g, int i0, int m, int j0, int n, float *bpack) {
    float apack[NN__GEMM_MR * NN__GEMM_KC];
    int nnb = (n + NN__GEMM_NC - 1) / NN__GEMM_NC, ncb, jc, pc;
    if (m <= 0 || n <= 0) return;
    /* Even N blocks, whole micro-panels. */
    ncb = (n + nnb - 1) / nnb;
    ncb = (ncb + NN__GEMM_NR - 1) / NN__GEMM_NR * NN__GEMM_NR;
    for (jc = j0; jc < j0 + n; jc += ncb) {
        int nc = NN__MIN(ncb, j0 + n - jc);
        int n_panels = (nc + NN__GEMM_NR - 1) / NN__GEMM_NR;
        for (pc = 0; pc < g->K; pc += g->kc) {
            int kc = NN__MIN(g->kc, g->K - pc), p, ir;
            float beta = pc == 0 ? g->beta : 1.0f;
            /* With one or two row panels B is read once or twice: packing it
               would cost more than it saves, so full panels are read in place
               (and only the ragged last one is packed). */
            int direct = !g->transB && !g->bimg && m <= 2 * NN__GEMM_MR, full = nc / NN__GEMM_NR;
            if (g->bimg) {
                nn__gemm_pack_b_image(g, pc, kc, jc, nc, bpack);
            } else if (direct) {
                if (full < n_panels)
                    nn__gemm_pack_b_rows(g->B, g->ldb, pc, kc, jc + full * NN__GEMM_NR,
                                         nc - full * NN__GEMM_NR, bpack);
            } else if (!g->transB) {
                nn__gemm_pack_b_rows(g->B, g->ldb, pc, kc, jc, nc, bpack);
            } else {
                for (p = 0; p < n_panels; p++)
                    nn__gemm_pack_bt(g->B, g->ldb, pc, kc, jc + p * NN__GEMM_NR,
                                     NN__MIN(NN__GEMM_NR, nc - p * NN__GEMM_NR),
                                     bpack + (size_t)p * kc * NN__GEMM_NR);
            }
            for (ir = i0; ir < i0 + m; ir += NN__GEMM_MR) {
                int mr = NN__MIN(NN__GEMM_MR, i0 + m - ir);
                nn__gemm_pack_a(g->transA, g->A, g->lda, ir, mr, pc, kc, g->alpha, apack);
                for (p = 0; p < n_panels; p++) {
                    const float *b = bpack + (size_t)p * kc * NN__GEMM_NR;
                    size_t bstep = NN__GEMM_NR;
                    if (direct) {
                        if (p < full) {
                            b = g->B + (size_t)pc * g->ldb + jc + p * NN__GEMM_NR;
                            bstep = (size_t)g->ldb;
                        } else {
                            b = bpack;
                        }
                    }
                    nn__gemm_put_tile(g, kc, apack, b, bstep, ir, jc + p * NN__GEMM_NR, mr,
                                      NN__MIN(NN__GEMM_NR, nc - p * NN__GEMM_NR), beta,
                                      pc == 0 ? g->bias : NULL);
                }
            }
        }
    }
}

/* C = beta * C for the degenerate cases (K == 0 or alpha == 0). */
static void nn__gemm_scale(int M, int N, float beta, float *C, int ldc) {
    int i, j;
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) for (j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f) for (j = 0; j < N; j++) c[j] *= beta;
    }
}

#ifdef NN__OMP_ON
/* Cut C into pm x pn rectangles (whole micro-panels), one per thread, with
   no synchronisation until the end: each thread packs its own panels.  Pick
   the grid with the least work on the busiest thread, counting padded tiles
   and the packing repeated across the grid (about 8 multiply-adds per packed
   element). */
static void nn__gemm_grid(int M, int N, int K, int nt, int *pm, int *pn) {
    int npm = (M + NN__GEMM_MR - 1) / NN__GEMM_MR, npn = (N + NN__GEMM_NR - 1) / NN__GEMM_NR;
    int r;
    double best = -1.0;
    *pm = 1;
    *pn = 1;
    for (r = 1; r <= nt; r++) {
        int c = nt / r;
        double rows, cols, cost;
        if (r * c != nt || r > npm || c > npn) continue;
        rows = (double)((npm + r - 1) / r) * NN__GEMM_MR;
        cols = (double)((npn + c - 1) / c) * NN__GEMM_NR;
        cost = rows * cols * K + 8.0 * K * (rows + cols);
        if (best < 0.0 || cost < best) { best = cost; *pm = r; *pn = c; }
    }
}
#endif

/* The K block for a depth of K: even blocks, so K = 784 runs as 4 x 196,
   not 3 x 256 + 16. */
static int nn__gemm_kc(int K) {
    int nkb = K / NN__GEMM_KC + (K % NN__GEMM_KC != 0); /* (no overflow near INT_MAX) */
    if (nkb < 1) return 1; /* K <= 0: nothing to accumulate */
    return K / nkb + (K % nkb != 0);
}

/* Run a prepared job (g->kc is set here), threaded when big enough.
   Returns 0 only when the packing buffer cannot be allocated. */
static int nn__gemm_run(nn__gemm_job *g) {
    float *bpack;
    size_t slice;
    g->kc = nn__gemm_kc(g->K);
    slice = nn__gemm_slice(g->kc, g->N);
#ifdef NN__OMP_ON
    if ((double)g->M * g->N * g->K >= (double)NN__GEMM_MT_MIN && !omp_in_parallel()) {
        int nt = nn__team(1), pm, pn;
        nn__gemm_grid(g->M, g->N, g->K, nt, &pm, &pn);
        /* the buffer is sized for the planned team even when the call runs
           alone, so its size does not follow the machine's load */
        if (pm * pn > 1 && (bpack = nn__gemm_buffer(slice * (size_t)(pm * pn))) != NULL) {
            int npm = (g->M + NN__GEMM_MR - 1) / NN__GEMM_MR;
            int npn = (g->N + NN__GEMM_NR - 1) / NN__GEMM_NR;
            double t0 = omp_get_wtime(), t1;
            clock_t c0;
            if (!nn__team_pick(t0)) {
                nn__gemm_block(g, 0, g->M, 0, g->N, bpack);
                return 1;
            }
            c0 = clock();
            NN__OMP(parallel num_threads(pm * pn))
            {
                int tid = omp_get_thread_num(), team = omp_get_num_threads();
                if (team == pm * pn) {
                    int r = tid / pn, c = tid % pn;
                    int i0 = (r * npm / pm) * NN__GEMM_MR, i1 = ((r + 1) * npm / pm) * NN__GEMM_MR;
                    int j0 = (c * npn / pn) * NN__GEMM_NR, j1 = ((c + 1) * npn / pn) * NN__GEMM_NR;
                    nn__gemm_block(g, i0, NN__MIN(i1, g->M) - i0, j0, NN__MIN(j1, g->N) - j0,
                                   bpack + slice * (size_t)tid);
                } else if (tid == 0) { /* fewer threads than asked for */
                    nn__gemm_block(g, 0, g->M, 0, g->N, bpack);
                }
            }
            t1 = omp_get_wtime();
            nn__team_note((double)(clock() - c0) / (double)CLOCKS_PER_SEC, t1 - t0, pm * pn, t1);
            return 1;
        }
    }
#endif
    bpack = nn__gemm_buffer(slice);
    if (!bpack) return 0;
    nn__gemm_block(g, 0, g->M, 0, g->N, bpack);
    return 1;
}

static int nn__gemm_small(int transA, int transB, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C,
                          int ldc, const float *colbias, int relu);

NNDEF void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                    const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) {
    nn__gemm_job g;
    if (!nn__sgemm_check("nn_sgemm", transA, transB, M, N, K, A, lda, B, ldb, C, ldc)) return;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        nn__gemm_scale(M, N, beta, C, ldc);
        return;
    }
    if (M <= NN__GEMM_SMALL_M && M < NN__GEMM_MR &&
        nn__gemm_small(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, 0))
        return;
    memset(&g, 0, sizeof g);
    g.transA = transA; g.transB = transB;
    g.M = M; g.N = N; g.K = K;
    g.alpha = alpha; g.beta = beta;
    g.A = A; g.B = B; g.C = C;
    g.lda = lda; g.ldb = ldb; g.ldc = ldc;
    if (!nn__gemm_run(&g)) /* out of memory: the slow loop needs no buffer */
        nn_sgemm_ref(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}


/* --- vector primitives ---------------------------------------------------
   One set of macros per instruction set, so every element-wise kernel below
   is written once.  NN__VL floats per vector; the scalar "vector" is a float. */
#if defined(NN__AVX512)
/* The zero-masked forms with a full mask compile to the plain instructions;
   g++ 12 warns about _mm512_undefined_ps inside the unmasked ones. */
typedef __m512 nn__v;
typedef __m512i nn__vi;
#define NN__VL 16
#define nn__vload(p) _mm512_loadu_ps(p)
#define nn__vstore(p, v) _mm512_storeu_ps(p, v)
#define nn__vset1(x) _mm512_set1_ps(x)
#define nn__vadd(a, b) _mm512_add_ps(a, b)
#define nn__vsub(a, b) _mm512_sub_ps(a, b)
#define nn__vmul(a, b) _mm512_mul_ps(a, b)
#define nn__vdiv(a, b) _mm512_div_ps(a, b)
#define nn__vfma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define nn__vmax(a, b) _mm512_maskz_max_ps(0xFFFF, a, b)
#define nn__vmin(a, b) _mm512_maskz_min_ps(0xFFFF, a, b)
#define nn__vsqrt(a) _mm512_maskz_sqrt_ps(0xFFFF, a)
#define nn__vround(x) _mm512_maskz_roundscale_ps(0xFFFF, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define nn__vpow2i(n) _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xFFFF, n), _mm512_set1_epi32(127)), 23))
#define nn__vlt_select(a, b, x, y) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x)
#define nn__vle_select(a, b, x, y) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LE_OQ), y, x)
/* Horizontal sum and max through memory, in a fixed order (the
   _mm512_reduce_* helpers draw the same g++ warning). */
static float nn__vhsum(__m512 v) {
    float t[16], s = 0.0f;
    int i;
    _mm512_storeu_ps(t, v);
    for (i = 0; i < 8; i++) t[i] += t[i + 8];
    for (i = 0; i < 4; i++) t[i] += t[i + 4];
    for (i = 0; i < 4; i++) s += t[i];
    return s;
}
static float nn__vhmax(__m512 v) {
    float t[16], m;
    int i;
    _mm512_storeu_ps(t, v);
    m = t[0];
    for (i = 1; i < 16; i++) m = t[i] > m ? t[i] : m;
    return m;
}
#elif defined(NN__AVX2)
typedef __m256 nn__v;
#define NN__VL 8
#define nn__vload(p) _mm256_loadu_ps(p)
#define nn__vstore(p, v) _mm256_storeu_ps(p, v)
#define nn__vset1(x) _mm256_set1_ps(x)
#define nn__vadd(a, b) _mm256_add_ps(a, b)
#define nn__vsub(a, b) _mm256_sub_ps(a, b)
#define nn__vmul(a, b) _mm256_mul_ps(a, b)
#define nn__vdiv(a, b) _mm256_div_ps(a, b)
#define nn__vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define nn__vmax(a, b) _mm256_max_ps(a, b)
#define nn__vmin(a, b) _mm256_min_ps(a, b)
#define nn__vsqrt(a) _mm256_sqrt_ps(a)
#define nn__vround(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define nn__vpow2i(n) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define nn__vlt_select(a, b, x, y) _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ))
#define nn__vle_select(a, b, x, y) _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LE_OQ))
static float nn__vhsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static float nn__vhmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#elif defined(NN__NEON)
typedef float32x4_t nn__v;
#define NN__VL 4
#define nn__vload(p) vld1q_f32(p)
#define nn__vstore(p, v) vst1q_f32(p, v)
#define nn__vset1(x) vdupq_n_f32(x)
#define nn__vadd(a, b) vaddq_f32(a, b)
#define nn__vsub(a, b) vsubq_f32(a, b)
#define nn__vmul(a, b) vmulq_f32(a, b)
#define nn__vdiv(a, b) vdivq_f32(a, b)
#define nn__vfma(a, b, c) vfmaq_f32(c, a, b)
#define nn__vmax(a, b) vmaxq_f32(a, b)
#define nn__vmin(a, b) vminq_f32(a, b)
#define nn__vsqrt(a) vsqrtq_f32(a)
#define nn__vround(x) vrndnq_f32(x)
#define nn__vpow2i(n) vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23))
#define nn__vlt_select(a, b, x, y) vbslq_f32(vcltq_f32(a, b), x, y)
#define nn__vle_select(a, b, x, y) vbslq_f32(vcleq_f32(a, b), x, y)
#define nn__vhsum(v) vaddvq_f32(v)
#define nn__vhmax(v) vmaxvq_f32(v)
#else
typedef float nn__v;
#define NN__VL 1
#define nn__vload(p) (*(p))
#define nn__vstore(p, v) (*(p) = (v))
#define nn__vset1(x) (x)
#define nn__vadd(a, b) ((a) + (b))
#define nn__vsub(a, b) ((a) - (b))
#define nn__vmul(a, b) ((a) * (b))
#define nn__vdiv(a, b) ((a) / (b))
#define nn__vfma(a, b, c) ((a) * (b) + (c))
#define nn__vmax(a, b) ((a) > (b) ? (a) : (b))
#define nn__vmin(a, b) ((a) < (b) ? (a) : (b))
#define nn__vsqrt(a) sqrtf(a)
#define nn__vround(x) rintf(x)
#define nn__vlt_select(a, b, x, y) ((a) < (b) ? (x) : (y))
#define nn__vle_select(a, b, x, y) ((a) <= (b) ? (x) : (y))
#define nn__vhsum(v) (v)
#define nn__vhmax(v) (v)
static float nn__vpow2i(float n) {
    uint32_t bits;
    float f;
    if (!(n >= -127.0f)) n = -127.0f; /* NaN too: casting NaN to int is undefined */
    if (n > 128.0f) n = 128.0f;
    bits = (uint32_t)((int32_t)n + 127) << 23;
    memcpy(&f, &bits, sizeof f);
    return f;
}
#endif

/* --- the small-batch path ------------------------------------------------
   For M below the register block (batch 1-4 of a linear layer), the blocked
   GEMM packs B per call and pads M to MR rows: work that a batch-1 forward
   pass pays on every layer.  This kernel streams B once in its stored
   layout instead: transB (the linear layer's weight [N][K]) as dot products
   of four A rows against four B rows (the four B rows stay in L1 while
   every group of A rows passes over them); plain B [K][N] as rows of A times
   column strips of B.  A transposed A is first copied into rows (M x K
   floats, the small side).  One thread, no team: the work is too small to
   share.  The write-back takes C = alpha * AB + beta * C (beta 0 writes
   without reading), then adds colbias[j] (or not, NULL) and applies ReLU
   when relu, so a linear layer with its bias and activation is one pass.
   Returns 0 only when the transA copy cannot be allocated. */

static float nn__gemm_small_out(float acc, float alpha, float beta, const float *c,
                                const float *colbias, int j, int relu) {
    float v = alpha * acc;
    if (beta != 0.0f) v = beta == 1.0f ? *c + v : *c * beta + v;
    if (colbias) v += colbias[j];
    return relu && v < 0.0f ? 0.0f : v;
}

/* One A row a against four B rows b[0..3] over K: acc[0..3]. */
static void nn__gemm_small_dot1(const float *a, const float *const *b, int K, float *acc) {
    nn__v s0 = nn__vset1(0.0f), s1 = s0, s2 = s0, s3 = s0;
    const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    int k = 0, t;
    for (; k + NN__VL <= K; k += NN__VL) {
        nn__v x = nn__vload(a + k);
        s0 = nn__vfma(x, nn__vload(b0 + k), s0);
        s1 = nn__vfma(x, nn__vload(b1 + k), s1);
        s2 = nn__vfma(x, nn__vload(b2 + k), s2);
        s3 = nn__vfma(x, nn__vload(b3 + k), s3);
    }
    acc[0] = nn__vhsum(s0); acc[1] = nn__vhsum(s1); acc[2] = nn__vhsum(s2); acc[3] = nn__vhsum(s3);
    for (t = 0; t < 4; t++) {
        int kk;
        for (kk = k; kk < K; kk++) acc[t] += a[kk] * b[t][kk];
    }
}

/* Dot products of up to four A rows (a[0..3], repeats past the last) with
   four B rows b[0..3] (repeats past the last) over K: acc[r * 4 + t]. */
static void nn__gemm_small_dot(const float *const *a, const float *const *b, int K, float *acc) {
    nn__v s00 = nn__vset1(0.0f), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00, s12 = s00,
          s13 = s00, s20 = s00, s21 = s00, s22 = s00, s23 = s00, s30 = s00, s31 = s00, s32 = s00,
          s33 = s00;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    const float *b0 = b[0], *b1 = b[1], *b2 = b[2], *b3 = b[3];
    int k = 0, r, t;
    for (; k + NN__VL <= K; k += NN__VL) {
        nn__v w0 = nn__vload(b0 + k), w1 = nn__vload(b1 + k), w2 = nn__vload(b2 + k),
              w3 = nn__vload(b3 + k), x = nn__vload(a0 + k);
        s00 = nn__vfma(x, w0, s00); s01 = nn__vfma(x, w1, s01);
        s02 = nn__vfma(x, w2, s02); s03 = nn__vfma(x, w3, s03);
        x = nn__vload(a1 + k);
        s10 = nn__vfma(x, w0, s10); s11 = nn__vfma(x, w1, s11);
        s12 = nn__vfma(x, w2, s12); s13 = nn__vfma(x, w3, s13);
        x = nn__vload(a2 + k);
        s20 = nn__vfma(x, w0, s20); s21 = nn__vfma(x, w1, s21);
        s22 = nn__vfma(x, w2, s22); s23 = nn__vfma(x, w3, s23);
        x = nn__vload(a3 + k);
        s30 = nn__vfma(x, w0, s30); s31 = nn__vfma(x, w1, s31);
        s32 = nn__vfma(x, w2, s32); s33 = nn__vfma(x, w3, s33);
    }
    acc[0] = nn__vhsum(s00); acc[1] = nn__vhsum(s01); acc[2] = nn__vhsum(s02); acc[3] = nn__vhsum(s03);
    acc[4] = nn__vhsum(s10); acc[5] = nn__vhsum(s11); acc[6] = nn__vhsum(s12); acc[7] = nn__vhsum(s13);
    acc[8] = nn__vhsum(s20); acc[9] = nn__vhsum(s21); acc[10] = nn__vhsum(s22); acc[11] = nn__vhsum(s23);
    acc[12] = nn__vhsum(s30); acc[13] = nn__vhsum(s31); acc[14] = nn__vhsum(s32); acc[15] = nn__vhsum(s33);
    for (r = 0; r < 4; r++) /* the last K % VL */
        for (t = 0; t < 4; t++) {
            int kk;
            for (kk = k; kk < K; kk++) acc[r * 4 + t] += a[r][kk] * b[t][kk];
        }
}

static int nn__gemm_small(int transA, int transB, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C,
                          int ldc, const float *colbias, int relu) {
    int i, j, k, r, t;
    if (transA) { /* rows of op(A), contiguous */
        float *buf = nn__gemm_buffer((size_t)M * (size_t)K);
        if (!buf) return 0;
        for (k = 0; k < K; k++)
            for (i = 0; i < M; i++) buf[(size_t)i * K + k] = A[(size_t)k * lda + i];
        A = buf;
        lda = K;
    }
    if (transB) {
        for (j = 0; j < N; j += 4) {
            int nj = NN__MIN(4, N - j);
            const float *b[4];
            for (t = 0; t < 4; t++) b[t] = B + (size_t)(j + NN__MIN(t, nj - 1)) * ldb;
            for (i = 0; i < M; i += 4) {
                int ni = NN__MIN(4, M - i);
                const float *a[4];
                float acc[16];
                for (r = 0; r < 4; r++) a[r] = A + (size_t)(i + NN__MIN(r, ni - 1)) * lda;
                if (ni == 1) nn__gemm_small_dot1(a[0], b, K, acc);
                else nn__gemm_small_dot(a, b, K, acc);
                for (r = 0; r < ni; r++)
                    for (t = 0; t < nj; t++) {
                        float *c = C + (size_t)(i + r) * ldc + j + t;
                        *c = nn__gemm_small_out(acc[r * 4 + t], alpha, beta, c, colbias, j + t, relu);
                    }
            }
        }
        return 1;
    }
    /* B [K][N]: strips of 2 vectors of columns, 4 rows of A at a time */
    for (i = 0; i < M; i += 4) {
        int ni = NN__MIN(4, M - i);
        for (j = 0; j + 2 * NN__VL <= N; j += 2 * NN__VL) {
            nn__v s[4][2];
            float acc[2 * NN__VL];
            for (r = 0; r < 4; r++) s[r][0] = s[r][1] = nn__vset1(0.0f);
            for (k = 0; k < K; k++) {
                const float *b = B + (size_t)k * ldb + j;
                nn__v w0 = nn__vload(b), w1 = nn__vload(b + NN__VL);
                for (r = 0; r < 4; r++) {
                    nn__v x = nn__vset1(A[(size_t)(i + (r < ni ? r : 0)) * lda + k]);
                    s[r][0] = nn__vfma(x, w0, s[r][0]);
                    s[r][1] = nn__vfma(x, w1, s[r][1]);
                }
            }
            for (r = 0; r < ni; r++) {
                nn__vstore(acc, s[r][0]);
                nn__vstore(acc + NN__VL, s[r][1]);
                for (t = 0; t < 2 * NN__VL; t++) {
                    float *c = C + (size_t)(i + r) * ldc + j + t;
                    *c = nn__gemm_small_out(acc[t], alpha, beta, c, colbias, j + t, relu);
                }
            }
        }
        for (; j < N; j++) /* the last few columns */
            for (r = 0; r < ni; r++) {
                const float *a = A + (size_t)(i + r) * lda;
                float *c = C + (size_t)(i + r) * ldc + j, sum = 0.0f;
                for (k = 0; k < K; k++) sum += a[k] * B[(size_t)k * ldb + j];
                *c = nn__gemm_small_out(sum, alpha, beta, c, colbias, j, relu);
            }
    }
    return 1;
}

/* e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial
   (Cephes' expf coefficients), times 2^n.  Max relative error 2 ulp against
   libm over [-87, 88] (tests/test_kernels.c measures it); inputs are clamped
   to that range so the arithmetic never overflows; outside it the result is
   0 or inf, and NaN stays NaN. */
static nn__v nn__vexp(nn__v x) {
    nn__v n, r, p;
    nn__v x0 = x;
    /* x second: max/min return their second operand for NaN, so NaN passes. */
    x = nn__vmin(nn__vset1(88.3f), nn__vmax(nn__vset1(-87.3f), x));
    n = nn__vround(nn__vmul(x, nn__vset1(1.44269504088896341f)));
    r = nn__vfma(n, nn__vset1(-0.693359375f), x);
    r = nn__vfma(n, nn__vset1(2.12194440e-4f), r);
    p = nn__vset1(1.9875691500e-4f);
    p = nn__vfma(p, r, nn__vset1(1.3981999507e-3f));
    p = nn__vfma(p, r, nn__vset1(8.3334519073e-3f));
    p = nn__vfma(p, r, nn__vset1(4.1665795894e-2f));
    p = nn__vfma(p, r, nn__vset1(1.6666665459e-1f));
    p = nn__vfma(p, r, nn__vset1(5.0000001201e-1f));
    p = nn__vfma(p, nn__vmul(r, r), nn__vadd(r, nn__vset1(1.0f)));
    /* Outside the range the result is 0 or inf, as expf gives, not the
       clamp's 1e-38 and 2e38. */
    p = nn__vlt_select(x0, nn__vset1(-87.3f), nn__vset1(0.0f), nn__vmul(p, nn__vpow2i(n)));
    return nn__vlt_select(nn__vset1(88.3f), x0, nn__vset1(INFINITY), p);
}

/* 1 / (1 + e^-x): 0 and 1 in the limits, NaN for NaN; max error 3 ulp. */
static nn__v nn__vsigmoid(nn__v x) {
    nn__v one = nn__vset1(1.0f);
    return nn__vdiv(one, nn__vadd(one, nn__vexp(nn__vsub(nn__vset1(0.0f), x))));
}

/* tanh x = 1 - 2 / (e^{2x} + 1) for |x| >= 0.125; the odd Taylor series to
   x^9 below that, where the subtraction would cancel.  Max abs error 2e-7. */
static nn__v nn__vtanh(nn__v x) {
    nn__v zero = nn__vset1(0.0f), one = nn__vset1(1.0f);
    nn__v a = nn__vlt_select(x, zero, nn__vsub(zero, x), x);
    nn__v big = nn__vsub(one, nn__vdiv(nn__vset1(2.0f), nn__vadd(nn__vexp(nn__vadd(a, a)), one)));
    nn__v a2 = nn__vmul(a, a), p;
    p = nn__vset1(62.0f / 2835.0f);
    p = nn__vfma(p, a2, nn__vset1(-17.0f / 315.0f));
    p = nn__vfma(p, a2, nn__vset1(2.0f / 15.0f));
    p = nn__vfma(p, a2, nn__vset1(-1.0f / 3.0f));
    p = nn__vfma(nn__vmul(p, a2), a, a);
    big = nn__vlt_select(a, nn__vset1(0.125f), p, big);
    return nn__vlt_select(x, zero, nn__vsub(zero, big), big);
}

/* Scalar entry points of the same approximations, for tails and single
   values, so a value does not depend on its position in an array. */
#if NN__VL == 1
#define nn__exp1(x) nn__vexp(x)
#define nn__sigmoid1(x) nn__vsigmoid(x)
#define nn__tanh1(x) nn__vtanh(x)
#else
static float nn__exp1(float x) {
    float buf[NN__VL] = {0};
    buf[0] = x;
    nn__vstore(buf, nn__vexp(nn__vload(buf)));
    return buf[0];
}
static float nn__sigmoid1(float x) {
    float buf[NN__VL] = {0};
    buf[0] = x;
    nn__vstore(buf, nn__vsigmoid(nn__vload(buf)));
    return buf[0];
}
static float nn__tanh1(float x) {
    float buf[NN__VL] = {0};
    buf[0] = x;
    nn__vstore(buf, nn__vtanh(nn__vload(buf)));
    return buf[0];
}
#endif

/* Map an array through one of the approximations: y[i] = f(x[i]). */
#define NN__DEFINE_MAP(name, vf, sf)                                   \
    static void name(const float *x, float *y, size_t n) {             \
        size_t i = 0;                                                  \
        for (; i + NN__VL <= n; i += NN__VL) nn__vstore(y + i, vf(nn__vload(x + i))); \
        for (; i < n; i++) y[i] = sf(x[i]);                            \
    }
NN__DEFINE_MAP(nn__exp_array, nn__vexp, nn__exp1)
NN__DEFINE_MAP(nn__sigmoid_array, nn__vsigmoid, nn__sigmoid1)
NN__DEFINE_MAP(nn__tanh_array, nn__vtanh, nn__tanh1)

/* y += a x. */
static void nn__axpy(size_t n, float a, const float *x, float *y) {
    size_t i = 0;
    nn__v va = nn__vset1(a);
    for (; i + NN__VL <= n; i += NN__VL)
        nn__vstore(y + i, nn__vfma(va, nn__vload(x + i), nn__vload(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* y[j] += sum_i x[i][j] over rows: column sums (bias gradients).  Threads
   split the columns; each column is summed over the rows in order. */
static void nn__add_colsum(const float *x, int rows, int cols, float *y) {
    int nt = nn__ew_threads((double)rows * (double)cols);
    (void)nt;
    NN__OMP(parallel num_threads(nt) if(nt > 1))
    {
        size_t lo, hi;
        int i;
        nn__ew_share((size_t)cols, 16, &lo, &hi);
        for (i = 0; hi > lo && i < rows; i++)
            nn__axpy(hi - lo, 1.0f, x + (size_t)i * cols + lo, y + lo);
    }
}

/* y[i][j] += b[j] for rows x cols: the bias add. */
static void nn__add_rows(const float *b, int rows, int cols, float *y) {
    int nt = nn__ew_threads((double)rows * (double)cols), i;
    if (nt <= 1) { /* no region: even a one-thread one costs about a microsecond */
        for (i = 0; i < rows; i++) nn__axpy((size_t)cols, 1.0f, b, y + (size_t)i * cols);
        return;
    }
    NN__OMP(parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (i = 0; i < rows; i++) nn__axpy((size_t)cols, 1.0f, b, y + (size_t)i * cols);
}

/* Sum of n floats, the one sum reduction: in double, 16 independent lanes
   (one chain of dependent adds would run at a quarter of the memory's speed;
   the compiler vectorizes the lanes), in a fixed order, so the result does
   not depend on the instruction set or the thread count. */
static double nn__sum_array(const float *x, size_t n) {
    double lane[16] = {0}, s = 0.0;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) lane[j] += (double)x[i + j];
    for (j = 0; j < 16; j++) s += lane[j];
    for (; i < n; i++) s += (double)x[i];
    return s;
}

/* Largest of n >= 1 floats. */
static float nn__max_array(const float *x, size_t n) {
    size_t i = 0;
    float m = x[0];
    if (n >= NN__VL) {
        nn__v acc = nn__vload(x);
        for (i = NN__VL; i + NN__VL <= n; i += NN__VL) acc = nn__vmax(acc, nn__vload(x + i));
        m = nn__vhmax(acc);
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* y = e^(x - shift) and the sum of y. */
static float nn__exp_shift_sum(const float *x, float shift, float *y, size_t n) {
    size_t i = 0;
    float s;
    nn__v acc = nn__vset1(0.0f), vs = nn__vset1(shift);
    for (; i + NN__VL <= n; i += NN__VL) {
        nn__v e = nn__vexp(nn__vsub(nn__vload(x + i), vs));
        nn__vstore(y + i, e);
        acc = nn__vadd(acc, e);
    }
    s = nn__vhsum(acc);
    if (i < n) {
        /* The tail as one padded vector (a softmax over 10 classes is all
           tail), summed in order as before. */
        float buf[NN__VL];
        size_t r = n - i, k;
        for (k = 0; k < NN__VL; k++) buf[k] = k < r ? x[i + k] - shift : 0.0f;
        nn__vstore(buf, nn__vexp(nn__vload(buf)));
        for (k = 0; k < r; k++) {
            y[i + k] = buf[k];
            s += buf[k];
        }
    }
    return s;
}

/* dst[i] = src[i] * scale for bytes src: the loader's pixel conversion. */
static void nn__bytes_to_floats(const unsigned char *src, size_t n, float scale, float *dst) {
    size_t i = 0;
#if defined(NN__AVX512)
    __m512 vs = _mm512_set1_ps(scale);
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepu8_epi32(0xFFFF, b)), vs));
    }
#elif defined(NN__AVX2)
    __m256 vs = _mm256_set1_ps(scale);
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), vs));
    }
#elif defined(NN__NEON)
    float32x4_t vs = vdupq_n_f32(scale);
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vmovl_u8(vld1_u8(src + i));
        vst1q_f32(dst + i, vmulq_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(h))), vs));
        vst1q_f32(dst + i + 4, vmulq_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(h))), vs));
    }
#endif
    for (; i < n; i++) dst[i] = (float)src[i] * scale;
}

/* --- activation kernels ---------------------------------------------------
   Every element-wise activation, forward and backward, is one formula over
   the vector macros above; the NN_NO_SIMD build, where the "vector" is a
   float, is the scalar twin of each.  Sigmoid, SiLU, tanh, mish, ELU and
   the rest share nn__vexp.  A kind's parameters are two floats a, b (ELU's
   alpha, hardtanh's min and max, softplus's beta and threshold, ...).  The
   ops over them are in >>autograd (nn__act). */
enum {
    NN__ACT_RELU, NN__ACT_SIGMOID, NN__ACT_TANH, NN__ACT_LEAKY, NN__ACT_ELU, NN__ACT_SELU,
    NN__ACT_CELU, NN__ACT_GELU, NN__ACT_GELU_TANH, NN__ACT_SILU, NN__ACT_SOFTPLUS,
    NN__ACT_SOFTSIGN, NN__ACT_MISH, NN__ACT_HARDTANH, NN__ACT_HARDSIGMOID, NN__ACT_HARDSWISH,
    NN__ACT_LOGSIGMOID, NN__ACT_TANHSHRINK, NN__ACT_THRESHOLD, NN__ACT_COUNT
};

/* |x| (NaN stays NaN). */
static nn__v nn__vabs(nn__v x) { return nn__vmax(x, nn__vsub(nn__vset1(0.0f), x)); }

/* e^x - 1, accurate near 0: the Taylor series to x^9 for |x| < 0.5, else
   nn__vexp(x) - 1.  Max relative error 3 ulp. */
static nn__v nn__vexpm1(nn__v x) {
    nn__v p = nn__vset1(1.0f / 362880.0f);
    p = nn__vfma(p, x, nn__vset1(1.0f / 40320.0f));
    p = nn__vfma(p, x, nn__vset1(1.0f / 5040.0f));
    p = nn__vfma(p, x, nn__vset1(1.0f / 720.0f));
    p = nn__vfma(p, x, nn__vset1(1.0f / 120.0f));
    p = nn__vfma(p, x, nn__vset1(1.0f / 24.0f));
    p = nn__vfma(p, x, nn__vset1(1.0f / 6.0f));
    p = nn__vfma(p, x, nn__vset1(0.5f));
    p = nn__vfma(p, nn__vmul(x, x), x);
    return nn__vlt_select(nn__vabs(x), nn__vset1(0.5f), p, nn__vsub(nn__vexp(x), nn__vset1(1.0f)));
}

/* log(1 + u) for 0 <= u <= 1 (what softplus and log-sigmoid need, with
   u = e^-|x|): u P(u), P a degree-9 fit of log(1+u)/u on [0, 1] (no
   division).  Max relative error 3 ulp, also near u = 0. */
static nn__v nn__vlog1p01(nn__v u) {
    nn__v p = nn__vset1(-0.00324399536f);
    p = nn__vfma(p, u, nn__vset1(0.0198513269f));
    p = nn__vfma(p, u, nn__vset1(-0.0569592752f));
    p = nn__vfma(p, u, nn__vset1(0.106036283f));
    p = nn__vfma(p, u, nn__vset1(-0.153055757f));
    p = nn__vfma(p, u, nn__vset1(0.196759328f));
    p = nn__vfma(p, u, nn__vset1(-0.249541327f));
    p = nn__vfma(p, u, nn__vset1(0.333299637f));
    p = nn__vfma(p, u, nn__vset1(-0.499999017f));
    p = nn__vfma(p, u, nn__vset1(1.0f));
    return nn__vmul(u, p);
}

/* erf x: a rational minimax fit x P(x^2) / Q(x^2) on [-4, 4] (the one of
   Eigen and XLA), +-1 beyond.  Max abs error 5e-7 (tests/test_act.c). */
static nn__v nn__verf(nn__v x) {
    nn__v x2, p, q;
    x = nn__vmin(nn__vset1(4.0f), nn__vmax(nn__vset1(-4.0f), x));
    x2 = nn__vmul(x, x);
    p = nn__vset1(-2.72614225801306e-10f);
    p = nn__vfma(p, x2, nn__vset1(2.77068142495902e-08f));
    p = nn__vfma(p, x2, nn__vset1(-2.10102402082508e-06f));
    p = nn__vfma(p, x2, nn__vset1(-5.69250639462346e-05f));
    p = nn__vfma(p, x2, nn__vset1(-7.34990630326855e-04f));
    p = nn__vfma(p, x2, nn__vset1(-2.95459980854025e-03f));
    p = nn__vfma(p, x2, nn__vset1(-1.60960333262415e-02f));
    q = nn__vset1(-1.45660718464996e-05f);
    q = nn__vfma(q, x2, nn__vset1(-2.13374055278905e-04f));
    q = nn__vfma(q, x2, nn__vset1(-1.68282697438203e-03f));
    q = nn__vfma(q, x2, nn__vset1(-7.37332916720468e-03f));
    q = nn__vfma(q, x2, nn__vset1(-1.42647390514189e-02f));
    return nn__vdiv(nn__vmul(x, p), q);
}

#define NN__SELU_ALPHA 1.6732632423543772848170429916717f
#define NN__SELU_SCALE 1.0507009873554804934193349852946f
#define NN__SQRT1_2 0.70710678118654752440f
#define NN__INV_SQRT_2PI 0.39894228040143267794f
#define NN__SQRT_2_PI 0.79788456080286535588f /* sqrt(2/pi), GELU's tanh form */

/* The ELU family (F.elu's kernel): x > 0 ? x pos : neg (e^(x ipt) - 1), and
   its derivative.  ELU: neg alpha, ipt 1, pos 1; SELU: neg alpha scale, pos
   scale; CELU: neg alpha, ipt 1/alpha. */
static nn__v nn__velu(nn__v x, nn__v neg, nn__v ipt, nn__v pos) {
    return nn__vlt_select(nn__vset1(0.0f), x, nn__vmul(x, pos), nn__vmul(nn__vexpm1(nn__vmul(x, ipt)), neg));
}
static nn__v nn__velu_grad(nn__v x, nn__v g, nn__v neg, nn__v ipt, nn__v pos) {
    return nn__vlt_select(nn__vset1(0.0f), x, nn__vmul(g, pos),
                          nn__vmul(nn__vmul(g, nn__vmul(ipt, neg)), nn__vexp(nn__vmul(x, ipt))));
}

/* softplus (1/beta) log(1 + e^(beta x)) = (max(z,0) + log(1 + e^-|z|)) / beta
   with z = beta x; x itself where z > threshold (F.softplus). */
static nn__v nn__vsoftplus(nn__v x, nn__v beta, nn__v th) {
    nn__v z = nn__vmul(x, beta), e = nn__vexp(nn__vsub(nn__vset1(0.0f), nn__vabs(z)));
    nn__v sp = nn__vmul(nn__vadd(nn__vmax(z, nn__vset1(0.0f)), nn__vlog1p01(e)), nn__vdiv(nn__vset1(1.0f), beta));
    return nn__vlt_select(th, z, x, sp);
}
/* d softplus / dx = sigmoid(beta x), computed from e^-|z| (never overflows). */
static nn__v nn__vsoftplus_grad(nn__v x, nn__v g, nn__v beta, nn__v th) {
    nn__v z = nn__vmul(x, beta), e = nn__vexp(nn__vsub(nn__vset1(0.0f), nn__vabs(z)));
    nn__v r = nn__vdiv(nn__vset1(1.0f), nn__vadd(nn__vset1(1.0f), e));
    nn__v s = nn__vlt_select(z, nn__vset1(0.0f), nn__vmul(e, r), r);
    return nn__vlt_select(th, z, g, nn__vmul(g, s));
}

/* tanh(softplus(x)) = (n^2 + 2n) / (n^2 + 2n + 2), n = e^x (1 above x = 20,
   where it rounds to 1), mish's factor. */
static nn__v nn__vtanh_softplus(nn__v x) {
    nn__v n = nn__vexp(nn__vmin(nn__vset1(20.0f), x));
    nn__v num = nn__vmul(n, nn__vadd(n, nn__vset1(2.0f)));
    return nn__vlt_select(nn__vset1(20.0f), x, nn__vset1(1.0f), nn__vdiv(num, nn__vadd(num, nn__vset1(2.0f))));
}

/* log sigmoid x = min(x, 0) - log(1 + e^-|x|), stable at any |x|. */
static nn__v nn__vlogsigmoid(nn__v x) {
    return nn__vsub(nn__vmin(nn__vset1(0.0f), x), nn__vlog1p01(nn__vexp(nn__vsub(nn__vset1(0.0f), nn__vabs(x)))));
}
/* d log sigmoid / dx = sigmoid(-x) = 1/(1+e) for x < 0, e/(1+e) else, e = e^-|x|. */
static nn__v nn__vlogsigmoid_grad(nn__v x, nn__v g) {
    nn__v e = nn__vexp(nn__vsub(nn__vset1(0.0f), nn__vabs(x)));
    nn__v r = nn__vdiv(g, nn__vadd(nn__vset1(1.0f), e));
    return nn__vlt_select(x, nn__vset1(0.0f), r, nn__vmul(e, r));
}

/* GELU exact: x/2 (1 + erf(x/sqrt 2)); derivative Phi(x) + x phi(x). */
static nn__v nn__vgelu(nn__v x) {
    return nn__vmul(nn__vmul(x, nn__vset1(0.5f)), nn__vadd(nn__vset1(1.0f), nn__verf(nn__vmul(x, nn__vset1(NN__SQRT1_2)))));
}
static nn__v nn__vgelu_grad(nn__v x, nn__v g) {
    nn__v cdf = nn__vmul(nn__vset1(0.5f), nn__vadd(nn__vset1(1.0f), nn__verf(nn__vmul(x, nn__vset1(NN__SQRT1_2)))));
    nn__v pdf = nn__vmul(nn__vexp(nn__vmul(nn__vset1(-0.5f), nn__vmul(x, x))), nn__vset1(NN__INV_SQRT_2PI));
    return nn__vmul(g, nn__vfma(x, pdf, cdf));
}
/* GELU, tanh form: x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), is
   x sigmoid(2u) (1 + tanh u = 2 sigmoid(2u)): one exponential, no
   cancellation.  u takes x clamped to [-10, 10] (the sigmoid is 0 or 1
   beyond), so x^3 never overflows.  Derivative s + x s (1 - s) 2u'. */
static nn__v nn__vgelu_tanh_s(nn__v x) {
    nn__v xc = nn__vmin(nn__vset1(10.0f), nn__vmax(nn__vset1(-10.0f), x));
    nn__v u2 = nn__vmul(nn__vset1(2.0f * NN__SQRT_2_PI), nn__vfma(nn__vmul(nn__vset1(0.044715f), xc), nn__vmul(xc, xc), xc));
    return nn__vsigmoid(u2);
}
static nn__v nn__vgelu_tanh(nn__v x) { return nn__vmul(x, nn__vgelu_tanh_s(x)); }
static nn__v nn__vgelu_tanh_grad(nn__v x, nn__v g) {
    nn__v xc = nn__vmin(nn__vset1(10.0f), nn__vmax(nn__vset1(-10.0f), x)), one = nn__vset1(1.0f);
    nn__v s = nn__vgelu_tanh_s(x);
    nn__v du2 = nn__vmul(nn__vset1(2.0f * NN__SQRT_2_PI), nn__vfma(nn__vset1(3.0f * 0.044715f), nn__vmul(xc, xc), one));
    return nn__vmul(g, nn__vfma(nn__vmul(nn__vmul(x, s), nn__vsub(one, s)), du2, s));
}

/* The forward formulas y = F(x; a, b) and the backward ones dx = F(x, y, g;
   a, b), one line per kind; clamps put x second in max/min so NaN passes. */
#define NN__Z nn__vset1(0.0f)
#define NN__ACT_FWD_relu nn__vmax(NN__Z, x)
#define NN__ACT_BWD_relu nn__vlt_select(NN__Z, x, g, NN__Z)
#define NN__ACT_FWD_leaky nn__vlt_select(NN__Z, x, x, nn__vmul(x, a))
#define NN__ACT_BWD_leaky nn__vlt_select(NN__Z, x, g, nn__vmul(g, a))
#define NN__ACT_FWD_elu nn__velu(x, a, nn__vset1(1.0f), nn__vset1(1.0f))
#define NN__ACT_BWD_elu nn__velu_grad(x, g, a, nn__vset1(1.0f), nn__vset1(1.0f))
#define NN__ACT_FWD_selu nn__velu(x, nn__vset1(NN__SELU_ALPHA * NN__SELU_SCALE), nn__vset1(1.0f), nn__vset1(NN__SELU_SCALE))
#define NN__ACT_BWD_selu nn__velu_grad(x, g, nn__vset1(NN__SELU_ALPHA * NN__SELU_SCALE), nn__vset1(1.0f), nn__vset1(NN__SELU_SCALE))
#define NN__ACT_FWD_celu nn__velu(x, a, b, nn__vset1(1.0f))
#define NN__ACT_BWD_celu nn__velu_grad(x, g, a, b, nn__vset1(1.0f))
#define NN__ACT_FWD_gelu nn__vgelu(x)
#define NN__ACT_BWD_gelu nn__vgelu_grad(x, g)
#define NN__ACT_FWD_gelu_tanh nn__vgelu_tanh(x)
#define NN__ACT_BWD_gelu_tanh nn__vgelu_tanh_grad(x, g)
#define NN__ACT_FWD_silu nn__vmul(x, nn__vsigmoid(x))
#define NN__ACT_BWD_silu nn__nsilu_grad(x, g)
#define NN__ACT_FWD_softplus nn__vsoftplus(x, a, b)
#define NN__ACT_BWD_softplus nn__vsoftplus_grad(x, g, a, b)
#define NN__ACT_FWD_softsign nn__vdiv(x, nn__vadd(nn__vset1(1.0f), nn__vabs(x)))
#define NN__ACT_BWD_softsign nn__vdiv(g, nn__vmul(nn__vadd(nn__vset1(1.0f), nn__vabs(x)), nn__vadd(nn__vset1(1.0f), nn__vabs(x))))
#define NN__ACT_FWD_mish nn__vmul(x, nn__vtanh_softplus(x))
#define NN__ACT_BWD_mish nn__nmish_grad(x, g)
#define NN__ACT_FWD_hardtanh nn__vmin(b, nn__vmax(a, x))
#define NN__ACT_BWD_hardtanh nn__vle_select(x, a, NN__Z, nn__vle_select(b, x, NN__Z, g))
#define NN__ACT_FWD_hardsigmoid nn__vdiv(nn__vmin(nn__vset1(6.0f), nn__vmax(NN__Z, nn__vadd(x, nn__vset1(3.0f)))), nn__vset1(6.0f))
#define NN__ACT_BWD_hardsigmoid nn__vlt_select(nn__vset1(-3.0f), x, nn__vlt_select(x, nn__vset1(3.0f), nn__vdiv(g, nn__vset1(6.0f)), NN__Z), NN__Z)
#define NN__ACT_FWD_hardswish nn__vdiv(nn__vmul(x, nn__vmin(nn__vset1(6.0f), nn__vmax(NN__Z, nn__vadd(x, nn__vset1(3.0f))))), nn__vset1(6.0f))
/* hardswish' at x = 3 is 1, as PyTorch's vector kernel has it (its scalar
   loop, for the few elements past the last vector, gives 1.5). */
#define NN__ACT_BWD_hardswish nn__vlt_select(x, nn__vset1(-3.0f), NN__Z, nn__vlt_select(x, nn__vset1(3.0f), nn__vmul(g, nn__vadd(nn__vdiv(x, nn__vset1(3.0f)), nn__vset1(0.5f))), g))
#define NN__ACT_FWD_logsigmoid nn__vlogsigmoid(x)
#define NN__ACT_BWD_logsigmoid nn__vlogsigmoid_grad(x, g)
#define NN__ACT_FWD_tanhshrink nn__vsub(x, nn__vtanh(x))
#define NN__ACT_BWD_tanhshrink nn__nsq_tanh_grad(x, g)
#define NN__ACT_FWD_threshold nn__vle_select(x, a, b, x)
#define NN__ACT_BWD_threshold nn__vle_select(x, a, NN__Z, g)
/* sigmoid and tanh differentiate through their output y. */
#define NN__ACT_BWD_sigmoid nn__vmul(nn__vmul(g, y), nn__vsub(nn__vset1(1.0f), y))
#define NN__ACT_BWD_tanh nn__vmul(g, nn__vsub(nn__vset1(1.0f), nn__vmul(y, y)))

/* The derivatives that need a name for a subexpression. */
static nn__v nn__nsilu_grad(nn__v x, nn__v g) {
    nn__v s = nn__vsigmoid(x);
    return nn__vmul(nn__vmul(g, s), nn__vfma(x, nn__vsub(nn__vset1(1.0f), s), nn__vset1(1.0f)));
}
/* mish' = t + x sigmoid(x) (1 - t^2), t = tanh(softplus x); both from one
   n = e^min(x,20): sigmoid = n / (1 + n) (1 in float above 20 too). */
static nn__v nn__nmish_grad(nn__v x, nn__v g) {
    nn__v one = nn__vset1(1.0f), two = nn__vset1(2.0f);
    nn__v n = nn__vexp(nn__vmin(nn__vset1(20.0f), x)), num = nn__vmul(n, nn__vadd(n, two));
    nn__v t = nn__vlt_select(nn__vset1(20.0f), x, one, nn__vdiv(num, nn__vadd(num, two)));
    nn__v sig = nn__vdiv(n, nn__vadd(one, n));
    return nn__vmul(g, nn__vfma(nn__vmul(x, sig), nn__vsub(one, nn__vmul(t, t)), t));
}
static nn__v nn__nsq_tanh_grad(nn__v x, nn__v g) {
    nn__v t = nn__vtanh(x);
    return nn__vmul(g, nn__vmul(t, t));
}

/* One function per kind and direction over a span of n floats: whole vectors,
   then the tail as one zero-padded vector, so a value never depends on where
   it falls in the array.  The backward writes dx (overwrite) or adds it. */
#define NN__ACT_FWD_FN(k)                                                             \
    static void nn__actf_##k(const float *xp, float *yp, size_t n, float pa, float pb) { \
        nn__v a = nn__vset1(pa), b = nn__vset1(pb), x;                                \
        size_t i = 0, j;                                                              \
        (void)a; (void)b;                                                             \
        for (; i + NN__VL <= n; i += NN__VL) {                                        \
            x = nn__vload(xp + i);                                                    \
            nn__vstore(yp + i, NN__ACT_FWD_##k);                                      \
        }                                                                             \
        if (i < n) {                                                                  \
            float bx[NN__VL];                                                         \
            for (j = 0; j < NN__VL; j++) bx[j] = i + j < n ? xp[i + j] : 0.0f;        \
            x = nn__vload(bx);                                                        \
            nn__vstore(bx, NN__ACT_FWD_##k);                                          \
            for (j = 0; i + j < n; j++) yp[i + j] = bx[j];                            \
        }                                                                             \
    }
#define NN__ACT_BWD_FN(k)                                                             \
    static void nn__actb_##k(const float *xp, const float *yp, const float *gp, float *gx, \
                             size_t n, float pa, float pb, int overwrite) {           \
        nn__v a = nn__vset1(pa), b = nn__vset1(pb), x, y, g;                          \
        size_t i = 0, j;                                                              \
        (void)a; (void)b;                                                             \
        if (overwrite) {                                                              \
            for (; i + NN__VL <= n; i += NN__VL) {                                    \
                x = nn__vload(xp + i); y = nn__vload(yp + i); g = nn__vload(gp + i);  \
                (void)x; (void)y;                                                     \
                nn__vstore(gx + i, NN__ACT_BWD_##k);                                  \
            }                                                                         \
        } else {                                                                      \
            for (; i + NN__VL <= n; i += NN__VL) {                                    \
                x = nn__vload(xp + i); y = nn__vload(yp + i); g = nn__vload(gp + i);  \
                (void)x; (void)y;                                                     \
                nn__vstore(gx + i, nn__vadd(nn__vload(gx + i), NN__ACT_BWD_##k));     \
            }                                                                         \
        }                                                                             \
        if (i < n) {                                                                  \
            float bx[NN__VL], by[NN__VL], bg[NN__VL];                                 \
            for (j = 0; j < NN__VL; j++) {                                            \
                bx[j] = i + j < n ? xp[i + j] : 0.0f;                                 \
                by[j] = i + j < n ? yp[i + j] : 0.0f;                                 \
                bg[j] = i + j < n ? gp[i + j] : 0.0f;                                 \
            }                                                                         \
            x = nn__vload(bx); y = nn__vload(by); g = nn__vload(bg);                  \
            (void)x; (void)y;                                                         \
            nn__vstore(bx, NN__ACT_BWD_##k);                                          \
            for (j = 0; i + j < n; j++) gx[i + j] = overwrite ? bx[j] : gx[i + j] + bx[j]; \
        }                                                                             \
    }
#define NN__ACT_FNS(k) NN__ACT_FWD_FN(k) NN__ACT_BWD_FN(k)
NN__ACT_FNS(relu)
NN__ACT_FNS(leaky)
NN__ACT_FNS(elu)
NN__ACT_FNS(selu)
NN__ACT_FNS(celu)
NN__ACT_FNS(gelu)
NN__ACT_FNS(gelu_tanh)
NN__ACT_FNS(silu)
NN__ACT_FNS(softplus)
NN__ACT_FNS(softsign)
NN__ACT_FNS(mish)
NN__ACT_FNS(hardtanh)
NN__ACT_FNS(hardsigmoid)
NN__ACT_FNS(hardswish)
NN__ACT_FNS(logsigmoid)
NN__ACT_FNS(tanhshrink)
NN__ACT_FNS(threshold)
NN__ACT_BWD_FN(sigmoid)
NN__ACT_BWD_FN(tanh)
/* sigmoid and tanh forward are the maps above (nn__sigmoid_array, ...). */
static void nn__actf_sigmoid(const float *x, float *y, size_t n, float a, float b) {
    (void)a; (void)b;
    nn__sigmoid_array(x, y, n);
}
static void nn__actf_tanh(const float *x, float *y, size_t n, float a, float b) {
    (void)a; (void)b;
    nn__tanh_array(x, y, n);
}

typedef void (*nn__actf_fn)(const float *x, float *y, size_t n, float a, float b);
typedef void (*nn__actb_fn)(const float *x, const float *y, const float *g, float *gx, size_t n,
                            float a, float b, int overwrite);
/* In the order of the NN__ACT_* kinds. */
static const nn__actf_fn nn__actf[NN__ACT_COUNT] = {
    nn__actf_relu, nn__actf_sigmoid, nn__actf_tanh, nn__actf_leaky, nn__actf_elu, nn__actf_selu,
    nn__actf_celu, nn__actf_gelu, nn__actf_gelu_tanh, nn__actf_silu, nn__actf_softplus,
    nn__actf_softsign, nn__actf_mish, nn__actf_hardtanh, nn__actf_hardsigmoid, nn__actf_hardswish,
    nn__actf_logsigmoid, nn__actf_tanhshrink, nn__actf_threshold};
static const nn__actb_fn nn__actb[NN__ACT_COUNT] = {
    nn__actb_relu, nn__actb_sigmoid, nn__actb_tanh, nn__actb_leaky, nn__actb_elu, nn__actb_selu,
    nn__actb_celu, nn__actb_gelu, nn__actb_gelu_tanh, nn__actb_silu, nn__actb_softplus,
    nn__actb_softsign, nn__actb_mish, nn__actb_hardtanh, nn__actb_hardsigmoid, nn__actb_hardswish,
    nn__actb_logsigmoid, nn__actb_tanhshrink, nn__actb_threshold};

/* y = act(x) over n floats, split across the threads in whole cache lines. */
static void nn__act_forward(int kind, const float *x, float *y, size_t n, float a, float b) {
    int nt = nn__ew_threads((double)n);
    if (nt <= 1) { /* no region: even a one-thread one costs about a microsecond */
        if (n) nn__actf[kind](x, y, n, a, b);
        return;
    }
    NN__OMP(parallel num_threads(nt) if(nt > 1))
    {
        size_t lo, hi;
        nn__ew_share(n, 16, &lo, &hi);
        if (hi > lo) nn__actf[kind](x + lo, y + lo, hi - lo, a, b);
    }
}

/* gx (+)= g act'(x) from x, y = act(x) and the incoming gradient g; written,
   not added, when overwrite. */
static void nn__act_backward(int kind, const float *x, const float *y, const float *g, float *gx,
                             size_t n, float a, float b, int overwrite) {
    int nt = nn__ew_threads((double)n);
    (void)nt;
    NN__OMP(parallel num_threads(nt) if(nt > 1))
    {
        size_t lo, hi;
        nn__ew_share(n, 16, &lo, &hi);
        if (hi > lo) nn__actb[kind](x + lo, y + lo, g + lo, gx + lo, hi - lo, a, b, overwrite);
    }
}

/* PReLU's backward over a span of one slope: gx (+)= x > 0 ? g : slope g
   (written when overwrite; gx may be NULL) and the return value, the sum of
   g x over x <= 0 (the slope's gradient), in 16 double lanes in a fixed
   order: the same in every instruction set.  One pass over x and g. */
static double nn__prelu_span_backward(const float *x, const float *g, float *gx, size_t n, float slope,
                                      int overwrite) {
    double lane[16] = {0}, s = 0.0;
    float t[16];
    size_t i = 0, j;
    nn__v z = nn__vset1(0.0f), a = nn__vset1(slope);
    for (; i + 16 <= n; i += 16) {
        for (j = 0; j < 16; j += NN__VL) {
            nn__v xv = nn__vload(x + i + j), gv = nn__vload(g + i + j);
            nn__v d = nn__vlt_select(z, xv, gv, nn__vmul(gv, a));
            if (gx) nn__vstore(gx + i + j, overwrite ? d : nn__vadd(nn__vload(gx + i + j), d));
            nn__vstore(t + j, nn__vlt_select(z, xv, z, nn__vmul(xv, gv)));
        }
        for (j = 0; j < 16; j++) lane[j] += (double)t[j];
    }
    for (j = 0; j < 16; j++) s += lane[j];
    for (; i < n; i++) {
        float d = x[i] > 0.0f ? g[i] : g[i] * slope;
        if (gx) gx[i] = overwrite ? d : gx[i] + d;
        s += x[i] > 0.0f ? 0.0 : (double)(x[i] * g[i]);
    }
    return s;
}

/* ----- >>kernels.conv: convolution engines (im2col, direct, depthwise) ----- */

/* Scratch memory a kernel asks its caller for (in practice the graph arena:
   this section knows no graphs, so the caller passes an allocator). */
typedef struct nn__kscratch {
    void *(*alloc)(void *ctx, size_t bytes);
    void *ctx;
} nn__kscratch;
static void *nn__scratch_alloc(nn__kscratch s, size_t bytes) { return s.alloc(s.ctx, bytes); }


/* Reductions with 16 independent partial sums: the compiler can vectorize
   them, and the order is fixed, so results do not depend on threads (the
   plain sum is nn__sum_array). */
static float nn__dot16(const float *a, const float *b, size_t n) {
    float acc[16] = {0}, s = 0.0f;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}
/* sum (x - m)^2 and sum g (x - m). */
static float nn__sqdev16(const float *x, float m, size_t n) {
    float acc[16] = {0}, s = 0.0f;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    for (; i < n; i++) acc[0] += (x[i] - m) * (x[i] - m);
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}
static float nn__dotdev16(const float *g, const float *x, float m, size_t n) {
    float acc[16] = {0}, s = 0.0f;
    size_t i = 0, j;
    for (; i + 16 <= n; i += 16)
        for (j = 0; j < 16; j++) acc[j] += g[i + j] * (x[i + j] - m);
    for (; i < n; i++) acc[0] += g[i] * (x[i] - m);
    for (j = 0; j < 16; j++) s += acc[j];
    return s;
}

#if defined(__cplusplus)
#define NN__RESTRICT __restrict
#else
#define NN__RESTRICT restrict
#endif

/* dst[i] = src[i] and dst[i] += src[i] for short rows that do not overlap. */

/* Below this many floats of work a loop stays on one thread. */
#define NN__PAR_MIN 32768.0

/* out[n, c, :] += b[c] for N x C planes of S values. */
static void nn__add_channel_bias(float *out, const float *b, int N, int C, size_t S) {
    int p, planes = N * C;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)planes * (double)S > NN__PAR_MIN))))
    for (p = 0; p < planes; p++) {
        float v = b[p % C], *o = out + (size_t)p * S;
        size_t i;
        for (i = 0; i < S; i++) o[i] += v;
    }
}

/* gb[c] += sum over n and the S values of g[n, c, :]. */
static void nn__channel_sum(const float *g, int N, int C, size_t S, float *gb) {
    int c;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)N * (double)C * (double)S > NN__PAR_MIN))))
    for (c = 0; c < C; c++) {
        double acc = 0.0;
        int n;
        for (n = 0; n < N; n++) acc += nn__sum_array(g + ((size_t)n * C + c) * S, S);
        gb[c] += (float)acc;
    }
}

/* --- convolution lowered to GEMM ---

   One geometry serves conv and transposed conv.  The "image" has C channels
   of H x W (a conv's input, a transposed conv's output).  The "other" side
   has F channels of P = OH x OW positions (a conv's output, a transposed
   conv's input).  im2col turns image samples into col, a matrix of C*KH*KW
   rows and (samples x P) columns:
       col[(c KH + kh) KW + kw][j P + oh OW + ow]
           = image[n0 + j][c][oh SH - PH + kh DH][ow SW - PW + kw DW]  (0 outside).
   The weight, read as a matrix [F, C/G*KH*KW] (conv: [OC, C/G, KH, KW];
   transposed: [C_in, OC/G, KH, KW], same view), links them per group g:
       other_g = W_g col_g,   dcol_g = W_g^T dother_g,   dW_g += dother_g col_g^T.
   Samples are processed in chunks folded into the GEMM's N dimension; the
   col buffer (one chunk) and a buffer for the chunk of the other side come
   from the graph arena and are kept for the backward pass. */

#ifndef NN__CONV_COLS
#define NN__CONV_COLS 512 /* GEMMs at least this wide (measured: 1 to 512 are
                             equally fast at 1 thread, 2048+ slower; wider
                             GEMMs split better over threads) */
#endif
#ifndef NN__CONV_COL_FLOATS
#define NN__CONV_COL_FLOATS (4u << 20) /* at most 16 MB of col per layer */
#endif

enum { NN__CONV, NN__CONV_T };

typedef struct nn__convg {
    int N, C, H, W;          /* image */
    int F, OH, OW;           /* other side */
    int KH, KW, SH, SW, PH, PW, DH, DW, G;
    int chunk;               /* samples per GEMM */
    int direct;              /* 1x1, stride 1, no padding: the image is its own col */
    int depthwise;           /* one image channel per group: direct loops, no GEMM */
    float *col;              /* C*KH*KW x chunk*P, or NULL when not needed */
    float *tmp;              /* F x chunk*P, or NULL when chunk == 1 */
    float *cb;               /* scratch of the direct engine (nn__conv_bcast), or NULL */
    int cb_nt;               /* its threads */
    int cb_fwd, cb_bwd;      /* it runs the forward / the input gradient */
} nn__convg;

/* The valid output range [lo, hi) of positions o with o*s + off in [0, size). */
static void nn__conv_range(int out, int s, int off, int size, int *lo, int *hi) {
    int a = 0, b = out;
    while (a < b && a * s + off < 0) a++;
    while (b > a && (b - 1) * s + off >= size) b--;
    *lo = a;
    *hi = b;
}

static void nn__im2col(const nn__convg *q, const float *img, int n0, int cn, float *col) {
    int rows = q->C * q->KH * q->KW, r;
    size_t P = (size_t)q->OH * (size_t)q->OW, ld = (size_t)cn * P, HW = (size_t)q->H * (size_t)q->W;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)rows * (double)ld > NN__PAR_MIN))))
    for (r = 0; r < rows; r++) {
        int c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;
        int off = kw * q->DW - q->PW, lo, hi, j, oh, ow;
        nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
        for (j = 0; j < cn; j++) {
            const float *src = img + ((size_t)(n0 + j) * q->C + (size_t)c) * HW;
            float *dst = col + (size_t)r * ld + (size_t)j * P;
            if (q->direct) {
                memcpy(dst, src, P * sizeof(float));
                continue;
            }
            for (oh = 0; oh < q->OH; oh++, dst += q->OW) {
                int ih = oh * q->SH - q->PH + kh * q->DH;
                const float *s;
                if (ih < 0 || ih >= q->H) {
                    memset(dst, 0, sizeof(float) * (size_t)q->OW);
                    continue;
                }
                s = src + (size_t)ih * q->W;
                if (q->SW == 1) {
                    /* rows are short (often < 32 floats): inline loops, no calls */
                    for (ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    nn__short_copy(dst + lo, s + lo + off, hi - lo);
                    for (ow = hi; ow < q->OW; ow++) dst[ow] = 0.0f;
                } else {
                    for (ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                    for (ow = lo; ow < hi; ow++) dst[ow] = s[ow * q->SW + off];
                    for (ow = hi; ow < q->OW; ow++) dst[ow] = 0.0f;
                }
            }
        }
    }
}

/* img[n0 + j] += the col entries that came from it (the adjoint of im2col). */
static void nn__col2im(const nn__convg *q, const float *col, int n0, int cn, float *img) {
    int planes = cn * q->C, pl;
    size_t P = (size_t)q->OH * (size_t)q->OW, ld = (size_t)cn * P, HW = (size_t)q->H * (size_t)q->W;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)planes * (double)HW * q->KH * q->KW > NN__PAR_MIN))))
    for (pl = 0; pl < planes; pl++) {
        int j = pl / q->C, c = pl % q->C, kh, kw, oh, ow;
        float *dst = img + ((size_t)(n0 + j) * q->C + (size_t)c) * HW;
        for (kh = 0; kh < q->KH; kh++) {
            for (kw = 0; kw < q->KW; kw++) {
                int r = (c * q->KH + kh) * q->KW + kw, off = kw * q->DW - q->PW, lo, hi;
                const float *src = col + (size_t)r * ld + (size_t)j * P;
                nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                for (oh = 0; oh < q->OH; oh++) {
                    int ih = oh * q->SH - q->PH + kh * q->DH;
                    const float *s = src + (size_t)oh * q->OW;
                    float *d;
                    if (ih < 0 || ih >= q->H) continue;
                    d = dst + (size_t)ih * q->W;
                    if (q->SW == 1) {
                        nn__short_add(d + lo + off, s + lo, hi - lo);
                    } else {
                        for (ow = lo; ow < hi; ow++) d[ow * q->SW + off] += s[ow];
                    }
                }
            }
        }
    }
}

/* Between the tensor layout [N][F][P] and a chunk's GEMM layout [F][cn P]. */
static void nn__conv_gather(const nn__convg *q, const float *other, int n0, int cn, float *tmp) {
    int f;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)q->F * (double)cn * (double)P > NN__PAR_MIN))))
    for (f = 0; f < q->F; f++) {
        int j;
        for (j = 0; j < cn; j++)
            memcpy(tmp + ((size_t)f * cn + (size_t)j) * P,
                   other + ((size_t)(n0 + j) * q->F + (size_t)f) * P, P * sizeof(float));
    }
}
static void nn__conv_scatter(const nn__convg *q, const float *tmp, int n0, int cn, float *other,
                             int accumulate) {
    int f;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)q->F * (double)cn * (double)P > NN__PAR_MIN))))
    for (f = 0; f < q->F; f++) {
        int j;
        size_t i;
        for (j = 0; j < cn; j++) {
            const float *s = tmp + ((size_t)f * cn + (size_t)j) * P;
            float *d = other + ((size_t)(n0 + j) * q->F + (size_t)f) * P;
            if (accumulate) for (i = 0; i < P; i++) d[i] += s[i];
            else memcpy(d, s, P * sizeof(float));
        }
    }
}

/* out (= or +=) W im2col(img) (+ bias[f] when given) for the whole batch in
   one GEMM per group, B packed straight from the image and C written in
   [N][F][P] layout: no col buffer, no copies.  Returns 0 when out of memory. */
static int nn__conv_implicit(const nn__convg *q, const float *img, const float *w,
                             const float *bias, float *out, int accumulate) {
    int Cg = q->C / q->G, Fg = q->F / q->G, CgK = Cg * q->KH * q->KW, gi;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    nn__gemm_image im;
    nn__gemm_job job;
    if ((double)q->N * (double)P > 2147483647.0) return 0; /* GEMM sizes are ints: chunks */
    im.H = q->H; im.W = q->W; im.OH = q->OH; im.OW = q->OW; im.KH = q->KH; im.KW = q->KW;
    im.SH = q->SH; im.SW = q->SW; im.PH = q->PH; im.PW = q->PW; im.DH = q->DH; im.DW = q->DW;
    im.sample = (size_t)q->C * HW;
    memset(&job, 0, sizeof job);
    job.M = Fg; job.N = q->N * (int)P; job.K = CgK;
    job.alpha = 1.0f; job.beta = accumulate ? 1.0f : 0.0f;
    job.lda = CgK; job.bimg = &im; job.cP = (int)P; job.csample = (size_t)q->F * P;
    for (gi = 0; gi < q->G; gi++) {
        job.A = w + (size_t)gi * Fg * CgK;
        job.B = img + (size_t)gi * Cg * HW;
        job.C = out + (size_t)gi * Fg * P;
        job.ldc = (int)P;
        job.bias = bias ? bias + (size_t)gi * Fg : NULL;
        if (!nn__gemm_run(&job)) return 0;
    }
    return 1;
}

/* dst (rows x cols) = src (h x w) shifted down by top and right by left
   (either may be negative), zero elsewhere.  The zeros stay put from plane to
   plane, so only the first call (clear) writes them; rows are short, so they
   go through nn__short_copy rather than memcpy calls. */
static void nn__pad_plane(const float *src, int h, int w, int top, int left, float *dst, int rows,
                          int cols, int clear) {
    int i0 = NN__MAX(top, 0), i1 = NN__MIN(top + h, rows), i;
    int j0 = NN__MIN(NN__MAX(left, 0), cols), j1 = NN__MIN(NN__MAX(left + w, j0), cols);
    if (clear) memset(dst, 0, (size_t)rows * (size_t)cols * sizeof(float));
    for (i = i0; i < i1; i++)
        nn__short_copy(dst + (size_t)i * cols + j0, src + (size_t)(i - top) * w + (j0 - left), j1 - j0);
}

/* ---- direct convolution at stride 1 -------------------------------------
   Output positions are the broadcast rows and output channels the vectors:
   a tile is up to NN__CB_MR positions along one output row times NN__CB_NR
   (two vectors of) output channels, summed over k = (kh, input channel, kw).
   Each sample is first copied into a zero-padded buffer, so position i of
   the row reads x[koff[k] + i]: one address per k, the rows at fixed
   offsets.  Nothing is packed per tile (the weights once per call), which
   beats the implicit GEMM when output channels are few: there each packed
   image element served only F multiply-adds.  The same engine computes the
   input gradient, a convolution of the padded dy with the flipped filters. */
#if defined(NN__AVX512)
#define NN__CB_MR 12 /* 24 accumulators of 32 zmm */
#elif defined(NN__NEON)
#define NN__CB_MR 8  /* 16 of 32 q registers */
#elif defined(NN__AVX2)
#define NN__CB_MR 6  /* 12 of 16 ymm */
#else
#define NN__CB_MR 4
#endif
#define NN__CB_NR (2 * NN__VL)
#ifndef NN__CB_WASTE
#define NN__CB_WASTE 1.6 /* at most this many products per useful one */
#endif
#ifndef NN__CW_CHUNKS
#define NN__CW_CHUNKS 8 /* the weight gradient's fixed cut of the batch */
#endif
#ifndef NN__CB_MIN_K
#define NN__CB_MIN_K 64 /* shorter sums: the tile's transposed write dominates */
#endif

/* BLOCK(rows) for the first register block (4, 6, 8 or 12 rows, as the
   instruction set has registers for) that holds mr; the rows past mr compute
   values nobody stores.  NN__CB_BLOCKOF(r) is that block's size. */
#if NN__CB_MR == 12
#define NN__CB_BY_ROWS(BLOCK) \
    if (mr <= 4) BLOCK(NN__REP4) else if (mr <= 8) BLOCK(NN__REP8) else BLOCK(NN__REP12)
#define NN__CB_BLOCKOF(r) ((r) <= 4 ? 4 : (r) <= 8 ? 8 : 12)
#elif NN__CB_MR == 8
#define NN__CB_BY_ROWS(BLOCK) \
    if (mr <= 4) BLOCK(NN__REP4) else BLOCK(NN__REP8)
#define NN__CB_BLOCKOF(r) ((r) <= 4 ? 4 : 8)
#elif NN__CB_MR == 6
#define NN__CB_BY_ROWS(BLOCK) \
    if (mr <= 4) BLOCK(NN__REP4) else BLOCK(NN__REP6)
#define NN__CB_BLOCKOF(r) ((r) <= 4 ? 4 : 6)
#else
#define NN__CB_BLOCKOF(r) 4
#define NN__CB_BY_ROWS(BLOCK) \
    (void)mr;                    \
    BLOCK(NN__REP4)
#endif

#define NN__CB_DECL(i) nn__v c##i##a = nn__vset1(0.0f), c##i##b = nn__vset1(0.0f)
#define NN__CB_FMA(i)                           \
    av = nn__vset1(xk[i]);                      \
    c##i##a = nn__vfma(av, b0, c##i##a);        \
    c##i##b = nn__vfma(av, b1, c##i##b)
#define NN__CB_PUT(i)                           \
    nn__vstore(t + i * NN__CB_NR, c##i##a);     \
    nn__vstore(t + i * NN__CB_NR + NN__VL, c##i##b)
#define NN__CB_BLOCK(ROWS)                                                   \
    {                                                                        \
        ROWS(NN__CB_DECL);                                                   \
        for (k = 0; k < K; k++) {                                            \
            const float *xk = x + koff[k];                                   \
            nn__v b0 = nn__vload(wp), b1 = nn__vload(wp + NN__VL), av;       \
            ROWS(NN__CB_FMA);                                                \
            wp += NN__CB_NR;                                                 \
        }                                                                    \
        ROWS(NN__CB_PUT);                                                    \
    }

/* t[i][j] = sum_k x[koff[k] + i] wp[k][j] for the rows i of the register
   block that holds mr (NN__CB_BY_ROWS), j < NN__CB_NR. */
static NN__GEMM_NOINLINE void nn__conv_bcast_tile(int K, const float *x, const int *koff,
                                                  const float *wp, float *t, int mr) {
    int k;
    NN__CB_BY_ROWS(NN__CB_BLOCK);
}
#undef NN__CB_DECL
#undef NN__CB_FMA
#undef NN__CB_PUT
#undef NN__CB_BLOCK

/* The width of the next tile of a row with `left` positions to go: the
   widest register block, except that 8 left with blocks of 6 and 4 go as
   4 + 4 rather than 6 + 2 (a 2-wide tile costs a 4-wide one). */
static int nn__conv_bcast_next(int left) {
    if (left <= NN__CB_MR) return left;
    return NN__CB_MR == 6 && left == 8 ? 4 : NN__CB_MR;
}

/* Can the direct engine run geometry q?  Stride 1 along rows (the rows of a
   tile are consecutive floats), a sum long enough, offsets that fit an int,
   and a sample per thread (threads take whole samples). */
static int nn__conv_bcast_ok(const nn__convg *q, int nt) {
    double plane = (double)(q->H + 2 * q->PH) * (double)(q->W + 2 * q->PW);
    return q->SW == 1 && !q->depthwise && q->C / q->G * q->KH * q->KW >= NN__CB_MIN_K &&
           (double)q->C * plane + NN__CB_MR < 2147483647.0 && q->N >= nt;
}

/* Floats of scratch for nn__conv_bcast: nt padded samples (plus slack for
   the rows a short tile computes past the row's end), the packed weights,
   and the k offsets (ints). */
static size_t nn__conv_bcast_per(const nn__convg *q) {
    size_t n = (size_t)q->C * (size_t)(q->H + 2 * q->PH) * (size_t)(q->W + 2 * q->PW) + NN__CB_MR;
    return (n + 15) / 16 * 16;
}
static size_t nn__conv_bcast_wsize(const nn__convg *q) {
    size_t Fg = (size_t)(q->F / q->G), CgK = (size_t)(q->C / q->G * q->KH * q->KW);
    return (size_t)q->G * ((Fg + NN__CB_NR - 1) / NN__CB_NR) * CgK * NN__CB_NR;
}
static size_t nn__conv_bcast_size(const nn__convg *q, int nt) {
    return nn__conv_bcast_per(q) * (size_t)nt + nn__conv_bcast_wsize(q) +
           (size_t)(q->C / q->G * q->KH * q->KW);
}

/* The kernel rows [*kh0, *kh0 + *khn) whose taps meet the image (not the
   top or bottom padding) for output row oh. */
static void nn__conv_bcast_rows(const nn__convg *q, int oh, int *kh0, int *khn) {
    int top = oh * q->SH - q->PH, lo = 0, hi = q->KH; /* image row of tap kh: top + kh*DH */
    while (lo < hi && top + lo * q->DH < 0) lo++;
    while (hi > lo && top + (hi - 1) * q->DH >= q->H) hi--;
    *kh0 = lo;
    *khn = hi - lo;
}

/* Products the direct engine computes for geometry q, per (channel, filter)
   pair and sample: the skipped padding rows are not counted. */
static double nn__conv_bcast_work(const nn__convg *q) {
    double work = 0.0;
    int oh, kh0, khn;
    for (oh = 0; oh < q->OH; oh++) {
        nn__conv_bcast_rows(q, oh, &kh0, &khn);
        work += (double)khn * q->KW * q->OW;
    }
    return work;
}

/* out (= or +=, plus bias[f] when given) the convolution of img by the
   filters w under geometry q (stride 1 along rows).  flip: w is the forward
   filter bank [C][F/G][KH][KW] of the layer whose input gradient this is, so
   filter f, channel c, tap (kh, kw) is w[c][f][KH-1-kh][KW-1-kw].  buf holds
   nn__conv_bcast_size(q, nt) floats.  Bitwise the same at any thread count:
   each output is one tile's sum, in k order. */
static void nn__conv_bcast(const nn__convg *q, const float *img, const float *w, int flip,
                           const float *bias, float *out, int accumulate, float *buf, int nt) {
    int Cg = q->C / q->G, Fg = q->F / q->G, KK = q->KH * q->KW, CgK = Cg * KK;
    int npan = (Fg + NN__CB_NR - 1) / NN__CB_NR, Hp = q->H + 2 * q->PH, Wp = q->W + 2 * q->PW;
    /* Without padding, and with rows whose tiles are whole register blocks
       (so no tile reads past its row), the image is read in place. */
    int k, g, f, last = q->OW, inplace;
    while (last > nn__conv_bcast_next(last)) last -= nn__conv_bcast_next(last); /* the row's last tile */
    inplace = q->PH == 0 && q->PW == 0 && NN__CB_BLOCKOF(last) == last;
    size_t plane = (size_t)Hp * (size_t)Wp, per = nn__conv_bcast_per(q), P, HW;
    float *wpack = buf + per * (size_t)nt;
    int *koff = (int *)(wpack + nn__conv_bcast_wsize(q));
    P = (size_t)q->OH * (size_t)q->OW;
    HW = (size_t)q->H * (size_t)q->W;
    /* k runs (kh, c, kw), so the taps of one kernel row are a contiguous
       range of k: rows of the output whose window hangs over the top or
       bottom padding skip those taps instead of multiplying zeros */
    for (k = 0; k < CgK; k++)
        koff[k] = (int)((size_t)(k / q->KW % Cg) * plane + (size_t)(k / (Cg * q->KW) * q->DH) * (size_t)Wp +
                        (size_t)(k % q->KW * q->DW));
    /* weights as [group][panel of NR filters][k][NR], zero past the last filter */
    for (g = 0; g < q->G; g++) {
        for (f = 0; f < npan * NN__CB_NR; f += NN__CB_NR) {
            float *d = wpack + ((size_t)g * npan + (size_t)(f / NN__CB_NR)) * CgK * NN__CB_NR;
            int nr = NN__MIN(NN__CB_NR, Fg - f), kh, c, kw, j;
            for (kh = 0; kh < q->KH; kh++)
                for (c = 0; c < Cg; c++)
                    for (kw = 0; kw < q->KW; kw++, d += NN__CB_NR) {
                        int t = kh * q->KW + kw;
                        for (j = 0; j < nr; j++)
                            d[j] = flip ? w[(((size_t)g * Cg + (size_t)c) * Fg + (size_t)(f + j)) * KK +
                                            (size_t)(KK - 1 - t)] /* the flipped tap */
                                        : w[((size_t)g * Fg + (size_t)(f + j)) * CgK + (size_t)c * KK + (size_t)t];
                        for (; j < NN__CB_NR; j++) d[j] = 0.0f;
                    }
        }
    }
    NN__OMP(parallel num_threads(nn__run(nt)) if(nt > 1))
    {
        float *xp = buf + per * (size_t)NN__TID, t[NN__CB_MR * NN__CB_NR];
        int n;
        if (!inplace) memset(xp, 0, per * sizeof(float));
        NN__OMP(for schedule(static))
        for (n = 0; n < q->N; n++) {
            int c, gi, oh, ow, pn, i, j;
            const float *xs = img + (size_t)n * q->C * HW;
            if (!inplace) {
                for (c = 0; c < q->C; c++)
                    nn__pad_plane(xs + (size_t)c * HW, q->H, q->W, q->PH, q->PW, xp + (size_t)c * plane,
                                  Hp, Wp, 0);
                xs = xp;
            }
            for (gi = 0; gi < q->G; gi++) {
                for (oh = 0; oh < q->OH; oh++) {
                    int k0, kn;
                    nn__conv_bcast_rows(q, oh, &k0, &kn);
                    k0 *= Cg * q->KW;
                    kn *= Cg * q->KW;
                    for (ow = 0; ow < q->OW; ow += nn__conv_bcast_next(q->OW - ow)) {
                        int mr = nn__conv_bcast_next(q->OW - ow);
                        const float *x = xs + (size_t)gi * Cg * plane + (size_t)oh * q->SH * Wp + ow;
                        for (pn = 0; pn < npan; pn++) {
                            int f0 = gi * Fg + pn * NN__CB_NR, nr = NN__MIN(NN__CB_NR, Fg - pn * NN__CB_NR);
                            float *y = out + ((size_t)n * q->F + (size_t)f0) * P + (size_t)oh * q->OW + ow;
                            nn__conv_bcast_tile(kn, x, koff + k0,
                                                wpack + (((size_t)gi * npan + (size_t)pn) * CgK + (size_t)k0) *
                                                            NN__CB_NR,
                                                t, mr);
                            /* transposed write: a tile row is one position's channels */
                            for (j = 0; j < nr; j++) {
                                float *yj = y + (size_t)j * P, bj = bias ? bias[f0 + j] : 0.0f;
                                if (accumulate) for (i = 0; i < mr; i++) yj[i] += t[i * NN__CB_NR + j];
                                else for (i = 0; i < mr; i++) yj[i] = t[i * NN__CB_NR + j] + bj;
                            }
                        }
                    }
                }
            }
        }
    }
}

/* The weight gradient at stride 1 without im2col:
     gw[f][k] += sum over samples and positions p of dy[f][p] x[koff[k] + roff[p]]
   A tile is up to NN__CB_MR taps k (broadcast from the padded sample) times
   NN__CB_NR filters (dy transposed to [p][f], so a position's filters are
   two vectors), summed over positions in registers.  Threads take tiles,
   never positions, and samples are added in order, so the result is bitwise
   the same at any thread count. */
#define NN__CW_DECL(i)                                          \
    const float *r##i = x + kof[i < mr ? i : 0];                \
    nn__v c##i##a = nn__vload(acc + i * NN__CB_NR), c##i##b = nn__vload(acc + i * NN__CB_NR + NN__VL)
#define NN__CW_FMA(i)                           \
    av = nn__vset1(r##i[idx]);                  \
    c##i##a = nn__vfma(av, b0, c##i##a);        \
    c##i##b = nn__vfma(av, b1, c##i##b)
#define NN__CW_PUT(i)                           \
    nn__vstore(acc + i * NN__CB_NR, c##i##a);   \
    nn__vstore(acc + i * NN__CB_NR + NN__VL, c##i##b)
#define NN__CW_NEXT(i) r##i += xs
#define NN__CW_BLOCK(ROWS)                                                         \
    {                                                                              \
        ROWS(NN__CW_DECL);                                                         \
        for (sm = 0; sm < ns; sm++, dyt += dys) {                                  \
            const float *d = dyt;                                                  \
            for (oh = 0; oh < q->OH; oh++) {                                       \
                size_t idx = (size_t)oh * q->SH * Wp, end = idx + (size_t)q->OW;   \
                for (; idx < end; idx++) {                                         \
                    nn__v b0 = nn__vload(d), b1 = nn__vload(d + NN__VL), av;       \
                    ROWS(NN__CW_FMA);                                              \
                    d += NN__CB_NR;                                                \
                }                                                                  \
            }                                                                      \
            ROWS(NN__CW_NEXT);                                                     \
        }                                                                          \
        ROWS(NN__CW_PUT);                                                          \
    }

/* acc[i][j] += sum over the positions of ns samples of x[kof[i] + roff[p]]
   dyt[p][j] for i < mr (in a register block, NN__CB_BY_ROWS), j < NN__CB_NR; sample s
   is at x + s xs and dyt + s dys. */
static NN__GEMM_NOINLINE void nn__conv_wgrad_tile(const nn__convg *q, int Wp, const float *x,
                                                  size_t xs, const int *kof, const float *dyt,
                                                  size_t dys, int ns, float *acc, int mr) {
    int oh, sm;
    NN__CB_BY_ROWS(NN__CW_BLOCK);
}
#undef NN__CW_DECL
#undef NN__CW_FMA
#undef NN__CW_PUT
#undef NN__CW_NEXT
#undef NN__CW_BLOCK

/* gw += the weight gradient of geometry q (stride 1 along rows) for image
   img and output gradient dy, with scratch from graph g.  0 when the scratch
   cannot be had (nothing is changed then). */
static int nn__conv_wgrad(const nn__convg *q, const float *img, const float *dy, float *gw,
                          nn__kscratch sc) {
    int Cg = q->C / q->G, Fg = q->F / q->G, KK = q->KH * q->KW, CgK = Cg * KK;
    int npan = (Fg + NN__CB_NR - 1) / NN__CB_NR, Hp = q->H + 2 * q->PH, Wp = q->W + 2 * q->PW;
    int kblocks = (CgK + NN__CB_MR - 1) / NN__CB_MR, tiles = q->G * npan * kblocks;
    int nt = 1, S, k, c, nopad = q->PH == 0 && q->PW == 0, nch = NN__MIN(q->N, NN__CW_CHUNKS);
    size_t plane = (size_t)Hp * (size_t)Wp, P = (size_t)q->OH * (size_t)q->OW;
    size_t HW = (size_t)q->H * (size_t)q->W, xper = nn__conv_bcast_per(q);
    size_t dyper = (size_t)q->G * npan * P * NN__CB_NR, tsize = (size_t)NN__CB_MR * NN__CB_NR, per, need;
    float *buf, *acc;
    int *koff;
    if ((double)q->C * (double)plane >= 2147483647.0) return 0; /* koff is an int */
    nt = nn__team((double)q->N * P * q->F * (double)CgK > NN__PAR_MIN);
    /* samples per round: about 512 KB of padded images and transposed dy */
    if (nopad) xper = 0; /* the image is read in place */
    S = (int)NN__MAX((size_t)1, NN__MIN((size_t)q->N, ((size_t)1 << 17) / (xper + dyper)));
    per = (size_t)S * (xper + dyper);
    need = per * (size_t)nt + (size_t)nch * tiles * tsize + (size_t)CgK;
    buf = (float *)nn__scratch_alloc(sc, need * sizeof(float));
    if (!buf) return 0;
    acc = buf + per * (size_t)nt;
    koff = (int *)(acc + (size_t)nch * tiles * tsize);
    for (k = 0; k < CgK; k++)
        koff[k] = (int)((size_t)(k / KK) * plane + (size_t)(k / q->KW % q->KH * q->DH) * (size_t)Wp +
                        (size_t)(k % q->KW * q->DW));
    memset(acc, 0, (size_t)nch * tiles * tsize * sizeof(float));
    /* The batch is cut into nch fixed chunks (not one per thread: their sums
       are added in chunk order, so the result does not depend on the thread
       count).  A thread takes whole chunks, in rounds of S samples: it pads
       them and transposes their dy into its own buffers, then runs every tile
       over them.  No barrier, and a thread reads the samples it wrote in the
       layers before (element-wise loops split the batch the same way). */
    NN__OMP(parallel num_threads(nn__run(nt)) if(nt > 1))
    {
        float *xb = buf + per * (size_t)NN__TID, *dyb = xb + (size_t)S * xper;
        int ch;
        memset(xb, 0, (size_t)S * xper * sizeof(float));
        NN__OMP(for schedule(static))
        for (ch = 0; ch < nch; ch++) {
            int e = (int)((long long)q->N * (ch + 1) / nch), n0, it;
            for (n0 = (int)((long long)q->N * ch / nch); n0 < e; n0 += S) {
                int cs = NN__MIN(S, e - n0);
                for (it = 0; it < (nopad ? 0 : cs * q->C); it++)
                    nn__pad_plane(img + ((size_t)(n0 + it / q->C) * q->C + (size_t)(it % q->C)) * HW, q->H,
                                  q->W, q->PH, q->PW,
                                  xb + (size_t)(it / q->C) * xper + (size_t)(it % q->C) * plane, Hp, Wp, 0);
                /* dy as [sample][group][panel][p][NR] */
                for (it = 0; it < cs * q->G * npan; it++) {
                    int sm = it / (q->G * npan), gi = it / npan % q->G, pn = it % npan;
                    int f0 = gi * Fg + pn * NN__CB_NR, nr = NN__MIN(NN__CB_NR, Fg - pn * NN__CB_NR);
                    float *d = dyb + (size_t)sm * dyper + ((size_t)gi * npan + (size_t)pn) * P * NN__CB_NR;
                    const float *src = dy + ((size_t)(n0 + sm) * q->F + (size_t)f0) * P;
#if NN__CB_NR == NN__GEMM_NR
                    /* the GEMM's B^T micro-panel (16 x 16 register transposes on AVX-512) */
                    nn__gemm_pack_bt(src, (int)P, 0, (int)P, 0, nr, d);
#else /* the scalar build's panels are 2 wide, the GEMM's 8 */
                    size_t p;
                    int j;
                    for (p = 0; p < P; p++)
                        for (j = 0; j < NN__CB_NR; j++)
                            d[p * NN__CB_NR + j] = j < nr ? src[(size_t)j * P + p] : 0.0f;
#endif
                }
                for (it = 0; it < tiles; it++) {
                    int gi = it / (npan * kblocks), pn = it / kblocks % npan, k0 = it % kblocks * NN__CB_MR;
                    nn__conv_wgrad_tile(q, Wp,
                                        (nopad ? img + (size_t)n0 * q->C * HW : xb) + (size_t)gi * Cg * plane,
                                        nopad ? (size_t)q->C * HW : xper, koff + k0,
                                        dyb + ((size_t)gi * npan + (size_t)pn) * P * NN__CB_NR, dyper, cs,
                                        acc + ((size_t)ch * tiles + (size_t)it) * tsize,
                                        NN__MIN(NN__CB_MR, CgK - k0));
                }
            }
        }
    }
    /* the chunks' sums in chunk order, then into gw (transposed) */
    for (c = 1; c < nch; c++)
        nn__axpy((size_t)tiles * tsize, 1.0f, acc + (size_t)c * tiles * tsize, acc);
    for (k = 0; k < tiles; k++) {
        int gi = k / (npan * kblocks), pn = k / kblocks % npan, k0 = k % kblocks * NN__CB_MR, i, j;
        int mr = NN__MIN(NN__CB_MR, CgK - k0), nr = NN__MIN(NN__CB_NR, Fg - pn * NN__CB_NR);
        const float *a = acc + (size_t)k * tsize;
        for (j = 0; j < nr; j++) {
            float *d = gw + ((size_t)gi * Fg + (size_t)pn * NN__CB_NR + (size_t)j) * CgK + (size_t)k0;
            for (i = 0; i < mr; i++) d[i] += a[i * NN__CB_NR + j];
        }
    }
    return 1;
}

/* The geometry of a stride-1 convolution's input gradient as a convolution:
   dy (padded by the kernel's extent less the padding) correlated with the
   flipped filters gives an output the size of x.  0 when it is not one. */
static int nn__conv_flip_geom(const nn__convg *q, nn__convg *t) {
    if (q->SH != 1 || q->SW != 1 || q->PH > (q->KH - 1) * q->DH || q->PW > (q->KW - 1) * q->DW)
        return 0;
    *t = *q;
    t->C = q->F; t->H = q->OH; t->W = q->OW;
    t->F = q->C; t->OH = q->H; t->OW = q->W;
    t->PH = (q->KH - 1) * q->DH - q->PH;
    t->PW = (q->KW - 1) * q->DW - q->PW;
    return 1;
}

/* Per chunk, col = im2col(img), then
     out (if given):  out = W col   (accumulate: out += W col)
     gw  (if given):  gw += src col^T   with src the other side (e.g. dy). */
static void nn__conv_from_image(const nn__convg *q, const float *img, const float *w,
                                float *out, int accumulate, const float *src, float *gw) {
    int Cg = q->C / q->G, Fg = q->F / q->G, CgK = Cg * q->KH * q->KW, n0, g;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    for (n0 = 0; n0 < q->N; n0 += q->chunk) {
        int cn = NN__MIN(q->chunk, q->N - n0), cols = cn * (int)P;
        const float *col;
        if (q->direct && cn == 1) {
            col = img + (size_t)n0 * q->C * P;
        } else {
            nn__im2col(q, img, n0, cn, q->col);
            col = q->col;
        }
        if (out) {
            float *dst = cn == 1 ? out + (size_t)n0 * q->F * P : q->tmp;
            float beta = cn == 1 && accumulate ? 1.0f : 0.0f;
            for (g = 0; g < q->G; g++)
                nn_sgemm(0, 0, Fg, cols, CgK, 1.0f, w + (size_t)g * Fg * CgK, CgK,
                         col + (size_t)g * CgK * cols, cols, beta, dst + (size_t)g * Fg * cols, cols);
            if (cn > 1) nn__conv_scatter(q, q->tmp, n0, cn, out, accumulate);
        }
        if (gw) {
            const float *s = src + (size_t)n0 * q->F * P;
            if (cn > 1) {
                nn__conv_gather(q, src, n0, cn, q->tmp);
                s = q->tmp;
            }
            for (g = 0; g < q->G; g++)
                nn_sgemm(0, 1, Fg, CgK, cols, 1.0f, s + (size_t)g * Fg * cols, cols,
                         col + (size_t)g * CgK * cols, cols, 1.0f, gw + (size_t)g * Fg * CgK, CgK);
        }
    }
}

/* img += col2im(W^T other), per chunk.  With gw (and x, the image of the
   forward pass), also gw += other im2col(x)^T in the same pass: `other` is
   gathered once and still in cache for the second product, and the col
   buffer serves both (im2col(x) first, then W^T other). */
static void nn__conv_to_image(const nn__convg *q, const float *other, const float *w, float *img,
                              const float *x, float *gw) {
    int Cg = q->C / q->G, Fg = q->F / q->G, CgK = Cg * q->KH * q->KW, n0, g;
    size_t P = (size_t)q->OH * (size_t)q->OW;
    for (n0 = 0; n0 < q->N; n0 += q->chunk) {
        int cn = NN__MIN(q->chunk, q->N - n0), cols = cn * (int)P;
        const float *s = other + (size_t)n0 * q->F * P;
        if (cn > 1) {
            nn__conv_gather(q, other, n0, cn, q->tmp);
            s = q->tmp;
        }
        if (gw) {
            const float *col = x + (size_t)n0 * q->C * P;
            if (!(q->direct && cn == 1)) {
                nn__im2col(q, x, n0, cn, q->col);
                col = q->col;
            }
            for (g = 0; g < q->G; g++)
                nn_sgemm(0, 1, Fg, CgK, cols, 1.0f, s + (size_t)g * Fg * cols, cols,
                         col + (size_t)g * CgK * cols, cols, 1.0f, gw + (size_t)g * Fg * CgK, CgK);
        }
        if (q->direct && cn == 1) {
            float *d = img + (size_t)n0 * q->C * P;
            for (g = 0; g < q->G; g++)
                nn_sgemm(1, 0, CgK, cols, Fg, 1.0f, w + (size_t)g * Fg * CgK, CgK,
                         s + (size_t)g * Fg * cols, cols, 1.0f, d + (size_t)g * CgK * cols, cols);
            continue;
        }
        for (g = 0; g < q->G; g++)
            nn_sgemm(1, 0, CgK, cols, Fg, 1.0f, w + (size_t)g * Fg * CgK, CgK,
                     s + (size_t)g * Fg * cols, cols, 0.0f, q->col + (size_t)g * CgK * cols, cols);
        nn__col2im(q, q->col, n0, cn, img);
    }
}

/* Depthwise conv (one image channel per group, F/G filters each) without a
   GEMM, whose K = KH*KW would be mostly overhead.  These plain loops are the
   fallback when the padded buffers of the kernels below cannot be allocated. */
static void nn__dw_forward_loops(const nn__convg *q, const float *img, const float *w, float *out) {
    int planes = q->N * q->F, pl, Fg = q->F / q->G;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)planes * (double)P * q->KH * q->KW > NN__PAR_MIN))))
    for (pl = 0; pl < planes; pl++) {
        int n = pl / q->F, f = pl % q->F, c = f / Fg, kh, kw, oh, ow;
        const float *x = img + ((size_t)n * q->C + (size_t)c) * HW;
        const float *wf = w + (size_t)f * q->KH * q->KW;
        float *y = out + (size_t)pl * P;
        memset(y, 0, P * sizeof(float));
        /* tap by tap: the valid column range is computed once per tap */
        for (kh = 0; kh < q->KH; kh++) {
            for (kw = 0; kw < q->KW; kw++) {
                int off = kw * q->DW - q->PW, lo, hi;
                float wv = wf[kh * q->KW + kw];
                nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                for (oh = 0; oh < q->OH; oh++) {
                    int ih = oh * q->SH - q->PH + kh * q->DH;
                    const float *xr;
                    float *yr = y + (size_t)oh * q->OW;
                    if (ih < 0 || ih >= q->H) continue;
                    xr = x + (size_t)ih * q->W;
                    if (q->SW == 1)
                        for (ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow + off];
                    else
                        for (ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * q->SW + off];
                }
            }
        }
    }
}

static void nn__dw_backward_loops(const nn__convg *q, const float *img, const float *w,
                                  const float *dy, float *gimg, float *gw) {
    int Fg = q->F / q->G, KK = q->KH * q->KW;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    double work = (double)q->N * q->F * (double)P * KK;
    (void)work; /* only the OpenMP clauses read it */
    if (gimg) {
        int planes = q->N * q->C, pl;
        NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team(work > NN__PAR_MIN))))
        for (pl = 0; pl < planes; pl++) {
            int n = pl / q->C, c = pl % q->C, f, kh, kw, oh, ow;
            float *gx = gimg + (size_t)pl * HW;
            for (f = c * Fg; f < (c + 1) * Fg; f++) {
                const float *g = dy + ((size_t)n * q->F + (size_t)f) * P;
                const float *wf = w + (size_t)f * KK;
                for (kh = 0; kh < q->KH; kh++) {
                    for (kw = 0; kw < q->KW; kw++) {
                        int off = kw * q->DW - q->PW, lo, hi;
                        float wv = wf[kh * q->KW + kw];
                        nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                        for (oh = 0; oh < q->OH; oh++) {
                            int ih = oh * q->SH - q->PH + kh * q->DH;
                            const float *gr = g + (size_t)oh * q->OW;
                            float *xr;
                            if (ih < 0 || ih >= q->H) continue;
                            xr = gx + (size_t)ih * q->W;
                            if (q->SW == 1)
                                for (ow = lo; ow < hi; ow++) xr[ow + off] += wv * gr[ow];
                            else
                                for (ow = lo; ow < hi; ow++) xr[ow * q->SW + off] += wv * gr[ow];
                        }
                    }
                }
            }
        }
    }
    if (gw) {
        int f;
        NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team(work > NN__PAR_MIN))))
        for (f = 0; f < q->F; f++) {
            int c = f / Fg, n, kh, kw, oh, ow;
            for (kh = 0; kh < q->KH; kh++) {
                for (kw = 0; kw < q->KW; kw++) {
                    int off = kw * q->DW - q->PW, lo, hi;
                    double acc = 0.0;
                    nn__conv_range(q->OW, q->SW, off, q->W, &lo, &hi);
                    for (n = 0; n < q->N; n++) {
                        const float *g = dy + ((size_t)n * q->F + (size_t)f) * P;
                        const float *x = img + ((size_t)n * q->C + (size_t)c) * HW;
                        float part = 0.0f;
                        for (oh = 0; oh < q->OH; oh++) {
                            int ih = oh * q->SH - q->PH + kh * q->DH;
                            const float *gr = g + (size_t)oh * q->OW, *xr;
                            if (ih < 0 || ih >= q->H || hi <= lo) continue;
                            xr = x + (size_t)ih * q->W;
                            if (q->SW == 1) {
                                part += nn__dot16(gr + lo, xr + lo + off, (size_t)(hi - lo));
                            } else {
                                for (ow = lo; ow < hi; ow++) part += gr[ow] * xr[ow * q->SW + off];
                            }
                        }
                        acc += (double)part;
                    }
                    gw[(size_t)f * KK + kh * q->KW + kw] += (float)acc;
                }
            }
        }
    }
}

/* The fast depthwise path: each plane is first copied into a zero-padded
   per-thread buffer, so the inner loops have no bounds.  Taps are offsets into
   that buffer (tap t = (a, b) at a*DH*cols + b*DW).  At stride 1 an output
   vector takes all KH*KW taps in a register and is stored once. */
#define NN__DW_RUP(n) (((n) + NN__VL - 1) / NN__VL * NN__VL)

static int nn__dw_thread(void) {
#ifdef NN__OMP_ON
    return omp_get_thread_num();
#else
    return 0;
#endif
}
static int nn__dw_team(void) {
#ifdef NN__OMP_ON
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* y[j] = sum_t k[t] x[off[t] + j] for from <= j < n, or y[j] += that
   (accumulate).  Whole vectors are read from x; a last partial one is stored
   through tail (NN__VL floats).  Four accumulators hide the FMA latency. */
static void nn__dw_corr_row(const float *x, const size_t *off, const float *k, int taps, float *y,
                            int from, int n, int accumulate, float *tail) {
    int j = from, t;
    for (; j + 4 * NN__VL <= n; j += 4 * NN__VL) {
        nn__v s0 = nn__vset1(0.0f), s1 = s0, s2 = s0, s3 = s0;
        if (accumulate) {
            s0 = nn__vload(y + j);
            s1 = nn__vload(y + j + NN__VL);
            s2 = nn__vload(y + j + 2 * NN__VL);
            s3 = nn__vload(y + j + 3 * NN__VL);
        }
        for (t = 0; t < taps; t++) {
            const float *p = x + off[t] + j;
            nn__v kv = nn__vset1(k[t]);
            s0 = nn__vfma(kv, nn__vload(p), s0);
            s1 = nn__vfma(kv, nn__vload(p + NN__VL), s1);
            s2 = nn__vfma(kv, nn__vload(p + 2 * NN__VL), s2);
            s3 = nn__vfma(kv, nn__vload(p + 3 * NN__VL), s3);
        }
        nn__vstore(y + j, s0);
        nn__vstore(y + j + NN__VL, s1);
        nn__vstore(y + j + 2 * NN__VL, s2);
        nn__vstore(y + j + 3 * NN__VL, s3);
    }
    for (; j < n; j += NN__VL) {
        int i, rest = n - j;
        float *d = rest >= NN__VL ? y + j : tail;
        nn__v s = nn__vset1(0.0f);
        if (accumulate) {
            if (d == tail)
                for (i = 0; i < NN__VL; i++) tail[i] = i < rest ? y[j + i] : 0.0f;
            s = nn__vload(d);
        }
        for (t = 0; t < taps; t++) s = nn__vfma(nn__vset1(k[t]), nn__vload(x + off[t] + j), s);
        nn__vstore(d, s);
        if (d == tail)
            for (i = 0; i < rest; i++) y[j + i] = tail[i];
    }
}

/* Two rows at once, (x0 -> y0) and (x1 -> y1): for narrow planes (two
   vectors a row) this still gives four independent accumulators. */
static void nn__dw_corr_row2(const float *x0, const float *x1, const size_t *off, const float *k,
                             int taps, float *y0, float *y1, int n, int accumulate, float *tail) {
    int j = 0, t;
    for (; j + 2 * NN__VL <= n; j += 2 * NN__VL) {
        nn__v s0 = nn__vset1(0.0f), s1 = s0, s2 = s0, s3 = s0;
        if (accumulate) {
            s0 = nn__vload(y0 + j);
            s1 = nn__vload(y0 + j + NN__VL);
            s2 = nn__vload(y1 + j);
            s3 = nn__vload(y1 + j + NN__VL);
        }
        for (t = 0; t < taps; t++) {
            const float *p = x0 + off[t] + j, *r = x1 + off[t] + j;
            nn__v kv = nn__vset1(k[t]);
            s0 = nn__vfma(kv, nn__vload(p), s0);
            s1 = nn__vfma(kv, nn__vload(p + NN__VL), s1);
            s2 = nn__vfma(kv, nn__vload(r), s2);
            s3 = nn__vfma(kv, nn__vload(r + NN__VL), s3);
        }
        nn__vstore(y0 + j, s0);
        nn__vstore(y0 + j + NN__VL, s1);
        nn__vstore(y1 + j, s2);
        nn__vstore(y1 + j + NN__VL, s3);
    }
    if (j < n) {
        nn__dw_corr_row(x0, off, k, taps, y0, j, n, accumulate, tail);
        nn__dw_corr_row(x1, off, k, taps, y1, j, n, accumulate, tail);
    }
}

/* Rows [0, rows) of a plane: row i reads x + i*xstep, writes y + i*n. */
static void nn__dw_corr_plane(const float *x, size_t xstep, const size_t *off, const float *k,
                              int taps, float *y, int rows, int n, int accumulate, float *tail) {
    int i;
    for (i = 0; i + 2 <= rows; i += 2)
        nn__dw_corr_row2(x + (size_t)i * xstep, x + (size_t)(i + 1) * xstep, off, k, taps,
                         y + (size_t)i * n, y + (size_t)(i + 1) * n, n, accumulate, tail);
    if (i < rows)
        nn__dw_corr_row(x + (size_t)i * xstep, off, k, taps, y + (size_t)i * n, 0, n, accumulate,
                        tail);
}

/* part[t] = sum_{oh, ow} g[oh*OW + ow] x[oh*SH*ld + off[t] + ow*SW]: one
   plane's share of the weight gradient, summed in an order fixed by the
   shape alone.  Taps go four at a time (four accumulators, dy loaded once),
   then one at a time; in each, lanes over whole vectors, then the tail. */
static void nn__dw_gw_plane(const float *x, size_t ld, int SH, int SW, const size_t *off, int taps,
                            const float *g, int OH, int OW, float *part) {
    int t = 0, oh, ow, whole = SW == 1 ? OW / NN__VL * NN__VL : 0;
    for (; t + 4 <= taps; t += 4) {
        nn__v a0 = nn__vset1(0.0f), a1 = a0, a2 = a0, a3 = a0;
        float r0 = 0.0f, r1 = 0.0f, r2 = 0.0f, r3 = 0.0f;
        size_t o0 = off[t], o1 = off[t + 1], o2 = off[t + 2], o3 = off[t + 3];
        for (oh = 0; oh < OH; oh++) {
            const float *gr = g + (size_t)oh * OW, *xr = x + (size_t)oh * SH * ld;
            for (ow = 0; ow < whole; ow += NN__VL) {
                nn__v d = nn__vload(gr + ow);
                a0 = nn__vfma(d, nn__vload(xr + o0 + ow), a0);
                a1 = nn__vfma(d, nn__vload(xr + o1 + ow), a1);
                a2 = nn__vfma(d, nn__vload(xr + o2 + ow), a2);
                a3 = nn__vfma(d, nn__vload(xr + o3 + ow), a3);
            }
            for (; ow < OW; ow++) {
                size_t i = (size_t)ow * SW;
                r0 += gr[ow] * xr[o0 + i];
                r1 += gr[ow] * xr[o1 + i];
                r2 += gr[ow] * xr[o2 + i];
                r3 += gr[ow] * xr[o3 + i];
            }
        }
        part[t] = nn__vhsum(a0) + r0;
        part[t + 1] = nn__vhsum(a1) + r1;
        part[t + 2] = nn__vhsum(a2) + r2;
        part[t + 3] = nn__vhsum(a3) + r3;
    }
    for (; t < taps; t++) {
        nn__v a0 = nn__vset1(0.0f), a1 = a0;
        float r0 = 0.0f;
        for (oh = 0; oh < OH; oh++) {
            const float *gr = g + (size_t)oh * OW, *xr = x + (size_t)oh * SH * ld + off[t];
            for (ow = 0; ow + 2 * NN__VL <= whole; ow += 2 * NN__VL) {
                a0 = nn__vfma(nn__vload(gr + ow), nn__vload(xr + ow), a0);
                a1 = nn__vfma(nn__vload(gr + ow + NN__VL), nn__vload(xr + ow + NN__VL), a1);
            }
            if (ow < whole) a0 = nn__vfma(nn__vload(gr + ow), nn__vload(xr + ow), a0);
            for (ow = whole; ow < OW; ow++) r0 += gr[ow] * xr[(size_t)ow * SW];
        }
        part[t] = nn__vhsum(nn__vadd(a0, a1)) + r0;
    }
}

static void nn__dw_forward(const nn__convg *q, const float *img, const float *w, float *out,
                           nn__kscratch sc) {
    int planes = q->N * q->F, Fg = q->F / q->G, KK = q->KH * q->KW, nt = 1, t;
    int rows = (q->OH - 1) * q->SH + (q->KH - 1) * q->DH + 1;
    int cols = (q->SW == 1 ? NN__DW_RUP(q->OW) : (q->OW - 1) * q->SW + 1) + (q->KW - 1) * q->DW;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    size_t per = (size_t)rows * (size_t)cols + NN__VL, *off;
    float *buf;
    nt = nn__team((double)planes * (double)P * KK > NN__PAR_MIN);
    off = (size_t *)nn__scratch_alloc(sc, (size_t)KK * sizeof(size_t));
    buf = off ? (float *)nn__scratch_alloc(sc, per * (size_t)nt * sizeof(float)) : NULL;
    if (!buf) {
        nn__dw_forward_loops(q, img, w, out);
        return;
    }
    for (t = 0; t < KK; t++)
        off[t] = (size_t)(t / q->KW * q->DH) * cols + (size_t)(t % q->KW * q->DW);
    NN__OMP(parallel num_threads(nn__run(nt)) if(nt > 1))
    {
        float *xp = buf + per * (size_t)nn__dw_thread(), *tail = xp + (size_t)rows * cols;
        int pl, clear = 1;
        NN__OMP(for schedule(static))
        for (pl = 0; pl < planes; pl++) {
            int n = pl / q->F, f = pl % q->F, c = f / Fg, oh, ow, tt;
            const float *wf = w + (size_t)f * KK;
            float *y = out + (size_t)pl * P;
            nn__pad_plane(img + ((size_t)n * q->C + (size_t)c) * HW, q->H, q->W, q->PH, q->PW, xp,
                       rows, cols, clear);
            clear = 0;
            if (q->SW == 1) {
                nn__dw_corr_plane(xp, (size_t)q->SH * cols, off, wf, KK, y, q->OH, q->OW, 0, tail);
                continue;
            }
            for (oh = 0; oh < q->OH; oh++) {
                const float *xr = xp + (size_t)oh * q->SH * cols;
                float *yr = y + (size_t)oh * q->OW;
                for (ow = 0; ow < q->OW; ow++) {
                    float s = 0.0f;
                    for (tt = 0; tt < KK; tt++) s += wf[tt] * xr[off[tt] + (size_t)ow * q->SW];
                    yr[ow] = s;
                }
            }
        }
    }
}

/* Each thread owns a contiguous range of channels: their image gradients and
   their filters' weight gradients, summed over samples in order, so the
   result does not depend on the thread count.  Samples go in the outer loop
   so memory is walked in order.  At stride 1 the image gradient is the
   correlation of the padded dy with the flipped kernel; otherwise dy is
   scattered into a padded plane that is then added. */
static void nn__dw_backward(const nn__convg *q, const float *img, const float *w, const float *dy,
                            float *gimg, float *gw, nn__kscratch sc) {
    int Fg = q->F / q->G, KK = q->KH * q->KW, nt = 1, t, unit = q->SH == 1 && q->SW == 1;
    int rows = (q->OH - 1) * q->SH + (q->KH - 1) * q->DH + 1;
    int cols = (q->SW == 1 ? NN__DW_RUP(q->OW) : (q->OW - 1) * q->SW + 1) + (q->KW - 1) * q->DW;
    int grows = unit ? q->H + (q->KH - 1) * q->DH : rows;
    int gcols = (unit ? NN__DW_RUP(q->W) : (q->OW - 1) * q->SW + 1) + (q->KW - 1) * q->DW;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    size_t FK = (size_t)q->F * KK, xsize = gw ? (size_t)rows * cols : 0;
    size_t gsize = gimg ? (size_t)grows * gcols : 0, per = xsize + gsize + (size_t)KK + NN__VL, *off;
    double *sums;
    float *buf, *flip;
    if (!gimg && !gw) return;
    nt = nn__team((double)q->N * q->F * (double)P * KK > NN__PAR_MIN);
    off = (size_t *)nn__scratch_alloc(sc, 2 * (size_t)KK * sizeof(size_t));
    sums = off ? (double *)nn__scratch_alloc(sc, FK * sizeof(double)) : NULL;
    buf = sums ? (float *)nn__scratch_alloc(sc, (per * (size_t)nt + FK) * sizeof(float)) : NULL;
    if (!buf) {
        nn__dw_backward_loops(q, img, w, dy, gimg, gw);
        return;
    }
    memset(sums, 0, FK * sizeof(double));
    for (t = 0; t < KK; t++) {
        off[t] = (size_t)(t / q->KW * q->DH) * cols + (size_t)(t % q->KW * q->DW);
        off[KK + t] = (size_t)(t / q->KW * q->DH) * gcols + (size_t)(t % q->KW * q->DW);
    }
    flip = buf + per * (size_t)nt;
    for (t = 0; t < (int)FK; t++) flip[t] = w[t / KK * KK + KK - 1 - t % KK];
    NN__OMP(parallel num_threads(nn__run(nt)) if(nt > 1))
    {
        int tid = nn__dw_thread(), team = nn__dw_team(), xclear = 1, gclear = 1, n;
        int c0 = (int)((long long)q->C * tid / team);
        int c1 = (int)((long long)q->C * (tid + 1) / team);
        float *xp = buf + per * (size_t)tid, *gp = xp + xsize, *part = gp + gsize;
        float *tail = part + KK;
        for (n = 0; n < q->N; n++) {
            int c, f, i, oh, ow, a, b, tt;
            for (c = c0; c < c1; c++) {
                size_t plane = (size_t)n * q->C + (size_t)c;
                float *gx = gimg ? gimg + plane * HW : NULL;
                if (gw) {
                    nn__pad_plane(img + plane * HW, q->H, q->W, q->PH, q->PW, xp, rows, cols, xclear);
                    xclear = 0;
                }
                for (f = c * Fg; f < (c + 1) * Fg; f++) {
                    const float *g = dy + ((size_t)n * q->F + (size_t)f) * P;
                    const float *wf = w + (size_t)f * KK;
                    if (gw) {
                        nn__dw_gw_plane(xp, cols, q->SH, q->SW, off, KK, g, q->OH, q->OW, part);
                        for (tt = 0; tt < KK; tt++)
                            sums[(size_t)f * KK + tt] += (double)part[tt];
                    }
                    if (gx && unit) {
                        nn__pad_plane(g, q->OH, q->OW, (q->KH - 1) * q->DH - q->PH,
                                   (q->KW - 1) * q->DW - q->PW, gp, grows, gcols, gclear);
                        gclear = 0;
                        nn__dw_corr_plane(gp, gcols, off + KK, flip + (size_t)f * KK, KK, gx, q->H,
                                          q->W, 1, tail);
                    } else if (gx) {
                        memset(gp, 0, gsize * sizeof(float));
                        for (oh = 0; oh < q->OH; oh++) {
                            const float *gr = g + (size_t)oh * q->OW;
                            for (a = 0; a < q->KH; a++)
                                for (b = 0; b < q->KW; b++) {
                                    float k = wf[a * q->KW + b];
                                    float *d = gp + (size_t)(oh * q->SH + a * q->DH) * gcols
                                               + b * q->DW;
                                    for (ow = 0; ow < q->OW; ow++)
                                        d[(size_t)ow * q->SW] += k * gr[ow];
                                }
                        }
                        for (i = 0; i < q->H && i + q->PH < grows; i++)
                            for (ow = 0; ow < q->W && ow + q->PW < gcols; ow++)
                                gx[(size_t)i * q->W + ow] +=
                                    gp[(size_t)(i + q->PH) * gcols + ow + q->PW];
                    }
                }
            }
        }
    }
    if (gw)
        for (t = 0; t < (int)FK; t++) gw[t] += (float)sums[t];
}

/* ----- >>kernels.norm: normalization statistics and the affine pass ------- */

/* The one normalization engine.  x is viewed as [N, C, S] (S contiguous
   values per channel); the C channels fall in G groups of C/G and the N
   samples in blocks of B (the last block may be shorter).  A statistics set
   is one (block, group), numbered blk * G + g:
     layer/RMS norm  C = the normalized elements, S = 1, G = 1, B = 1
     group norm      G groups, B = 1      instance norm  G = C, B = 1
     batch norm      G = C, B = N          ghost batch norm  G = C, 1 < B < N
   The affine pass is y = ((x - mean) k + d) w[c] + b[c] with per-set mean,
   k (1/sqrt(var + eps), times r for batch renormalization) and d (0 but in
   batch renormalization).  "Row mode" (S == 1, B == 1: each set a run of
   channels of one sample) runs along the channels; the rest runs along the S
   values of each (sample, channel) plane.  Every set, plane and channel is
   reduced in a fixed order, so results do not depend on the thread count.
   Row mode never has r or d (batch renormalization has B = N > 1). */
typedef struct nn__normgeo {
    int N, C, G, B;
    size_t S;
} nn__normgeo;

static int nn__norm_nsets(const nn__normgeo *q) { return (q->N + q->B - 1) / q->B * q->G; }
static int nn__norm_rowmode(const nn__normgeo *q) { return q->S == 1 && q->B == 1; }
/* Values in set s. */
static double nn__norm_setsize(const nn__normgeo *q, int s) {
    int blk = s / q->G, rows = NN__MIN(q->B, q->N - blk * q->B);
    return (double)rows * (double)(q->C / q->G) * (double)q->S;
}
/* Threads for a pass over the whole tensor. */
static int nn__norm_team(const nn__normgeo *q) {
    return nn__run(nn__team((double)q->N * (double)q->C * (double)q->S > NN__PAR_MIN));
}

/* Per set: mean (0 when !center: RMS norm) and the mean square deviation
   about it (the biased variance), two passes in double over floats. */
static void nn__norm_stats(const nn__normgeo *q, const float *x, int center, float *mean,
                           float *var) {
    int ns = nn__norm_nsets(q), s, Cg = q->C / q->G;
    size_t L = (size_t)Cg * q->S;
    NN__OMP(parallel for schedule(static) num_threads(nn__norm_team(q)))
    for (s = 0; s < ns; s++) {
        int g = s % q->G, n0 = s / q->G * q->B, n1 = NN__MIN(n0 + q->B, q->N), n;
        double sum = 0.0, sq = 0.0, M = (double)(n1 - n0) * (double)L;
        float m = 0.0f;
        if (n1 - n0 == 1 && L < 16) { /* a short run (small groups): plain loops */
            const float *v = x + ((size_t)n0 * q->C + (size_t)g * Cg) * q->S;
            size_t i;
            for (i = 0; center && i < L; i++) sum += (double)v[i];
            m = (float)(sum / M);
            for (i = 0; i < L; i++) sq += (double)((v[i] - m) * (v[i] - m));
            mean[s] = m;
            var[s] = (float)(sq / M);
            continue;
        }
        if (center) {
            for (n = n0; n < n1; n++)
                sum += nn__sum_array(x + ((size_t)n * q->C + (size_t)g * Cg) * q->S, L);
            m = (float)(sum / M);
        }
        for (n = n0; n < n1; n++)
            sq += (double)nn__sqdev16(x + ((size_t)n * q->C + (size_t)g * Cg) * q->S, m, L);
        mean[s] = m;
        var[s] = (float)(sq / M);
    }
}

/* y = x a + c over n values (one plane). */
static void nn__scale_shift(const float *x, float *y, size_t n, float a, float c) {
    size_t i = 0;
    nn__v va = nn__vset1(a), vc = nn__vset1(c);
    for (; i + NN__VL <= n; i += NN__VL) nn__vstore(y + i, nn__vfma(nn__vload(x + i), va, vc));
    for (; i < n; i++) y[i] = x[i] * a + c;
}

/* y = ((x - m) k + d) w + b over a run of n channels of one set. */
static void nn__norm_run(const float *x, float *y, size_t n, float m, float k, float d,
                         const float *w, const float *b) {
    size_t i = 0;
    nn__v vm = nn__vset1(m), vk = nn__vset1(k), vd = nn__vset1(d);
    for (; i + NN__VL <= n; i += NN__VL) {
        nn__v z = nn__vfma(nn__vsub(nn__vload(x + i), vm), vk, vd);
        nn__vstore(y + i, nn__vfma(z, nn__vload(w + i), nn__vload(b + i)));
    }
    for (; i < n; i++) y[i] = ((x[i] - m) * k + d) * w[i] + b[i];
}

/* The affine pass (d may be NULL: zeros; w and b are [C]). */
static void nn__norm_affine(const nn__normgeo *q, const float *x, float *y, const float *mean,
                            const float *k, const float *d, const float *w, const float *b) {
    int Cg = q->C / q->G, p, P = q->N * q->C;
    if (nn__norm_rowmode(q)) {
        NN__OMP(parallel for schedule(static) num_threads(nn__norm_team(q)))
        for (p = 0; p < q->N; p++) {
            int g;
            for (g = 0; g < q->G; g++) {
                size_t off = (size_t)p * q->C + (size_t)g * Cg;
                int s = p * q->G + g;
                nn__norm_run(x + off, y + off, (size_t)Cg, mean[s], k[s], d ? d[s] : 0.0f,
                             w + (size_t)g * Cg, b + (size_t)g * Cg);
            }
        }
        return;
    }
    NN__OMP(parallel for schedule(static) num_threads(nn__norm_team(q)))
    for (p = 0; p < P; p++) {
        int c = p % q->C, s = p / q->C / q->B * q->G + c / Cg;
        float a = k[s] * w[c], sh = (d ? d[s] : 0.0f) * w[c] + b[c] - mean[s] * a;
        nn__scale_shift(x + (size_t)p * q->S, y + (size_t)p * q->S, q->S, a, sh);
    }
}

/* The backward of the affine pass.  With xhat = (x - mean) invstd and
   z = xhat r + d: gw[c] += sum dy z, gb[c] += sum dy, and with statistics
   taken from x (batch) dx = invstd (r w dy - mean_set(r w dy) - xhat
   mean_set(r w dy xhat)) (without the mean term when !center), else
   dx = invstd r w dy.  r and d are constants (NULL: 1 and 0). */
typedef struct nn__normgrad {
    const float *x, *dy, *mean, *invstd, *r, *d, *w;
    int center, batch;
    float *gx, *gw, *gb;   /* each may be NULL */
    int gx_add;            /* add to gx instead of writing it */
    double *work;          /* plane mode: 2 N C + nsets doubles */
} nn__normgrad;

/* sum w dy and sum w dy (x - m) over n values. */
static void nn__norm_wdots(const float *x, const float *dy, const float *w, size_t n, float m,
                           float *sa, float *sb) {
    size_t i = 0;
    nn__v a = nn__vset1(0.0f), b = nn__vset1(0.0f), vm = nn__vset1(m);
    float ta, tb;
    for (; i + NN__VL <= n; i += NN__VL) {
        nn__v wd = nn__vmul(nn__vload(w + i), nn__vload(dy + i));
        a = nn__vadd(a, wd);
        b = nn__vfma(wd, nn__vsub(nn__vload(x + i), vm), b);
    }
    ta = nn__vhsum(a);
    tb = nn__vhsum(b);
    for (; i < n; i++) {
        ta += w[i] * dy[i];
        tb += w[i] * dy[i] * (x[i] - m);
    }
    *sa = ta;
    *sb = tb;
}

/* o = dy al w + (x - m) be + ga over n values (w NULL: 1), added or written. */
static void nn__norm_dx(const float *x, const float *dy, const float *w, size_t n, float m,
                        float al, float be, float ga, float *o, int add) {
    size_t i = 0;
    nn__v vm = nn__vset1(m), va = nn__vset1(al), vb = nn__vset1(be), vg = nn__vset1(ga);
    for (; i + NN__VL <= n; i += NN__VL) {
        nn__v g = nn__vmul(nn__vload(dy + i), va), v;
        if (w) g = nn__vmul(g, nn__vload(w + i));
        v = nn__vadd(g, nn__vfma(nn__vsub(nn__vload(x + i), vm), vb, vg));
        nn__vstore(o + i, add ? nn__vadd(nn__vload(o + i), v) : v);
    }
    for (; i < n; i++) {
        float v = dy[i] * al * (w ? w[i] : 1.0f) + ((x[i] - m) * be + ga);
        o[i] = add ? o[i] + v : v;
    }
}

/* Row mode sums the weight and bias gradients over fixed chunks of rows
   (the same chunks whatever the thread count), then the chunks in order. */
#define NN__NORM_CHUNKS 16
static int nn__norm_chunks(const nn__normgeo *q) { return NN__MIN(q->N, NN__NORM_CHUNKS); }

/* gb += dy and gw += dy (x - m) is over a run of n channels. */
static void nn__norm_acc(const float *x, const float *dy, size_t n, float m, float is, float *gw,
                         float *gb) {
    size_t i = 0;
    nn__v vm = nn__vset1(m), vi = nn__vset1(is);
    nn__axpy(n, 1.0f, dy, gb);
    for (; i + NN__VL <= n; i += NN__VL)
        nn__vstore(gw + i, nn__vfma(nn__vload(dy + i), nn__vmul(nn__vsub(nn__vload(x + i), vm), vi),
                                    nn__vload(gw + i)));
    for (; i < n; i++) gw[i] += dy[i] * ((x[i] - m) * is);
}

static void nn__norm_backward_rows(const nn__normgeo *q, const nn__normgrad *a) {
    int Cg = q->C / q->G, nch = nn__norm_chunks(q), ch, nt = nn__norm_team(q), acc = a->gw || a->gb;
    float *pw = (float *)(void *)a->work, *pb = pw + (size_t)nch * (size_t)q->C;
    NN__OMP(parallel for schedule(static) num_threads(nt))
    for (ch = 0; ch < nch; ch++) {
        int n0 = (int)((double)q->N * ch / nch), n1 = (int)((double)q->N * (ch + 1) / nch), n, g;
        float *cw = pw + (size_t)ch * q->C, *cb = pb + (size_t)ch * q->C;
        if (acc) {
            memset(cw, 0, (size_t)q->C * sizeof(float));
            memset(cb, 0, (size_t)q->C * sizeof(float));
        }
        for (n = n0; n < n1; n++)
            for (g = 0; g < q->G; g++) {
                size_t off = (size_t)n * q->C + (size_t)g * Cg;
                int s = n * q->G + g;
                float m = a->mean[s], is = a->invstd[s], sa = 0.0f, sb = 0.0f, be = 0.0f, ga = 0.0f;
                if (a->gx) {
                    if (a->batch) {
                        nn__norm_wdots(a->x + off, a->dy + off, a->w + (size_t)g * Cg, (size_t)Cg, m, &sa, &sb);
                        be = -is * is * is * sb / (float)Cg;
                        ga = a->center ? -is * sa / (float)Cg : 0.0f;
                    }
                    nn__norm_dx(a->x + off, a->dy + off, a->w + (size_t)g * Cg, (size_t)Cg, m, is, be,
                                ga, a->gx + off, a->gx_add);
                }
                if (acc) nn__norm_acc(a->x + off, a->dy + off, (size_t)Cg, m, is, cw + (size_t)g * Cg,
                                      cb + (size_t)g * Cg);
            }
    }
    if (!acc) return;
    (void)nt;
    NN__OMP(parallel num_threads(nt) if(nt > 1))
    {
        size_t lo, hi;
        nn__ew_share((size_t)q->C, 16, &lo, &hi);
        for (ch = 0; hi > lo && ch < nch; ch++) {
            if (a->gw) nn__axpy(hi - lo, 1.0f, pw + (size_t)ch * q->C + lo, a->gw + lo);
            if (a->gb) nn__axpy(hi - lo, 1.0f, pb + (size_t)ch * q->C + lo, a->gb + lo);
        }
    }
}

static void nn__norm_backward_planes(const nn__normgeo *q, const nn__normgrad *a) {
    int Cg = q->C / q->G, P = q->N * q->C, ns = nn__norm_nsets(q), p, s, c, nt = nn__norm_team(q);
    double *p1 = a->work, *p2 = p1 + P, *coef = p2 + P; /* coef: 2 floats per set */
    float *cf = (float *)(void *)coef;
    size_t S = q->S;
    (void)nt;
    /* per plane: sum dy and sum dy (x - mean) */
    NN__OMP(parallel for schedule(static) num_threads(nt))
    for (p = 0; p < P; p++) {
        int sp = p / q->C / q->B * q->G + (p % q->C) / Cg;
        p1[p] = nn__sum_array(a->dy + (size_t)p * S, S);
        p2[p] = (double)nn__dotdev16(a->dy + (size_t)p * S, a->x + (size_t)p * S, a->mean[sp], S);
    }
    if (a->gx) {
        NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)P > NN__PAR_MIN))))
        for (s = 0; s < ns; s++) {
            int g = s % q->G, n0 = s / q->G * q->B, n1 = NN__MIN(n0 + q->B, q->N), n, j;
            double A = 0.0, Bv = 0.0, M = nn__norm_setsize(q, s);
            double is = (double)a->invstd[s], r = a->r ? (double)a->r[s] : 1.0;
            for (n = n0; n < n1; n++)
                for (j = g * Cg; j < (g + 1) * Cg; j++) {
                    A += (double)a->w[j] * p1[(size_t)n * q->C + j];
                    Bv += (double)a->w[j] * p2[(size_t)n * q->C + j];
                }
            cf[2 * s] = a->batch && a->center ? (float)(-is * r * A / M) : 0.0f;
            cf[2 * s + 1] = a->batch ? (float)(-is * is * is * r * Bv / M) : 0.0f;
        }
        NN__OMP(parallel for schedule(static) num_threads(nt))
        for (p = 0; p < P; p++) {
            int cc = p % q->C, sp = p / q->C / q->B * q->G + cc / Cg;
            float al = a->invstd[sp] * (a->r ? a->r[sp] : 1.0f) * a->w[cc];
            nn__norm_dx(a->x + (size_t)p * S, a->dy + (size_t)p * S, NULL, S, a->mean[sp], al,
                        cf[2 * sp + 1], cf[2 * sp], a->gx + (size_t)p * S, a->gx_add);
        }
    }
    if (!a->gw && !a->gb) return;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)P > NN__PAR_MIN))))
    for (c = 0; c < q->C; c++) {
        double sw = 0.0, sb = 0.0;
        int n;
        for (n = 0; n < q->N; n++) {
            int sp = n / q->B * q->G + c / Cg;
            size_t i = (size_t)n * q->C + (size_t)c;
            sb += p1[i];
            sw += (double)(a->invstd[sp] * (a->r ? a->r[sp] : 1.0f)) * p2[i] +
                  (a->d ? (double)a->d[sp] * p1[i] : 0.0);
        }
        if (a->gw) a->gw[c] += (float)sw;
        if (a->gb) a->gb[c] += (float)sb;
    }
}

/* Doubles of work memory the backward needs. */
static size_t nn__norm_work(const nn__normgeo *q) {
    if (nn__norm_rowmode(q)) return (size_t)nn__norm_chunks(q) * (size_t)q->C; /* 2 floats each */
    return 2 * (size_t)q->N * (size_t)q->C + (size_t)nn__norm_nsets(q);
}

static void nn__norm_backward_kernel(const nn__normgeo *q, const nn__normgrad *a) {
    if (nn__norm_rowmode(q)) nn__norm_backward_rows(q, a);
    else nn__norm_backward_planes(q, a);
}

/* ===== >>graph (implementation) ========================================== */

typedef struct nn__block {
    struct nn__block *next;
    void *raw;       /* what malloc returned */
    size_t cap;      /* usable bytes after the aligned header */
} nn__block;

#define NN__ALIGN_UP(n) (((n) + (size_t)NN_MEM_ALIGN - 1) / (size_t)NN_MEM_ALIGN * (size_t)NN_MEM_ALIGN)
#define NN__BLOCK_HDR NN__ALIGN_UP(sizeof(nn__block))

typedef void (*nn__backward_fn)(nn__node *n);

/* One recorded op: its output, inputs, backward function and saved values. */
struct nn__node {
    nn__node *prev;
    const char *op;
    nn_tensor *out;
    nn_tensor **in;
    int nin;
    nn__backward_fn backward;
    int iarg[4];
    float farg[2];
    void *saved;
};

/* A chain of blocks bump-allocated from the start after each rewind. */
typedef struct nn__arena {
    nn__block *first, *cur;
    size_t used;         /* bytes used in cur */
    size_t capacity;     /* bytes in this chain's blocks */
} nn__arena;

/* Tensor headers live apart from the data, in one of two chains by the
   generation's parity: a reset rewinds only the chain the new step will
   use, so a tensor kept from the step before still holds its old
   generation and is reported, not mistaken for a new one. */
#ifndef NN__HEAD_BLOCK
#define NN__HEAD_BLOCK (64u << 10)
#endif

struct nn_graph {
    nn__arena mem;       /* tensor data, node records, scratch */
    nn__arena heads[2];  /* tensor headers of even and odd generations */
    size_t capacity;     /* bytes in all blocks */
    nn__node *tail;      /* the last recorded node */
    int grad_enabled;
    int anomaly;         /* check values and gradients for NaN/inf */
    unsigned gen;        /* generation: one more after each reset */
};

/* The calling thread's current graph (nn_current_graph). */
static NN__THREAD_LOCAL nn_graph *nn__cur_graph = NULL;

static unsigned nn__graph_gen(const nn_graph *g) { return g->gen; }

NNDEF nn_graph *nn_current_graph(void) { return nn__cur_graph; }
NNDEF void nn_set_current_graph(nn_graph *g) { nn__cur_graph = g; }

NNDEF nn_graph *nn_graph_new(void) {
    nn_graph *g = (nn_graph *)nn__calloc(1, sizeof(nn_graph));
    if (g) {
        g->grad_enabled = 1;
        nn__cur_graph = g;
    }
    return g;
}

NNDEF void nn_graph_reset(nn_graph *g) {
    if (!g) return;
    g->mem.cur = g->mem.first;
    g->mem.used = 0;
    g->tail = NULL;
    g->gen++;
    g->heads[g->gen & 1u].cur = g->heads[g->gen & 1u].first;
    g->heads[g->gen & 1u].used = 0;
    nn__cur_graph = g;
}

NNDEF void nn_graph_free(nn_graph *g) {
    nn__block *b, *next;
    int k;
    if (!g) return;
    if (nn__cur_graph == g) nn__cur_graph = NULL;
    for (k = 0; k < 3; k++)
        for (b = k ? g->heads[k - 1].first : g->mem.first; b; b = next) {
            next = b->next;
            NN_FREE(b->raw);
        }
    nn__free(g);
}

NNDEF int nn_set_grad_enabled(nn_graph *g, int on) {
    int old;
    if (!g) {
        nn__misuse("nn_set_grad_enabled: NULL graph");
        return 0;
    }
    old = g->grad_enabled;
    g->grad_enabled = on != 0;
    return old;
}

NNDEF int nn_set_anomaly_detection(nn_graph *g, int on) {
    int old;
    if (!g) {
        nn__misuse("nn_set_anomaly_detection: NULL graph");
        return 0;
    }
    old = g->anomaly;
    g->anomaly = on != 0;
    return old;
}

NNDEF size_t nn_graph_capacity(const nn_graph *g) { return g ? g->capacity : 0; }

/* Index of the first non-finite of n floats, or -1. */
static long nn__first_nonfinite(const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!(x[i] - x[i] == 0.0f)) return (long)i;
    return -1;
}

/* Bump allocation, NN_MEM_ALIGN-aligned.  After a reset the same sequence of
   requests walks the same blocks, so a steady-state step never mallocs.
   A new block is at least min_block and the chain's size so far (so the
   chain doubles), and no smaller than the request. */
static void *nn__arena_take(nn_graph *g, nn__arena *a, size_t size, size_t min_block) {
    NN_ASSERT(g != NULL);
    if (size > (size_t)-1 - NN__BLOCK_HDR - 2 * (size_t)NN_MEM_ALIGN) {
        nn__error(NN_ERR_OOM, "nn_graph: request of %zu bytes is too large", size);
        return NULL;
    }
    size = NN__ALIGN_UP(size ? size : 1);
    for (;;) {
        nn__block *b;
        size_t cap;
        unsigned char *raw, *p;
        if (a->cur && a->used + size <= a->cur->cap) {
            p = (unsigned char *)a->cur + NN__BLOCK_HDR + a->used;
            a->used += size;
            return p;
        }
        if (a->cur && a->cur->next) {
            a->cur = a->cur->next;
            a->used = 0;
            continue;
        }
        cap = NN__MAX(min_block, NN__MAX(size, a->capacity));
        if (cap > (size_t)-1 - NN__BLOCK_HDR - NN_MEM_ALIGN) {
            nn__error(NN_ERR_OOM, "nn_graph: request of %zu bytes is too large", size);
            return NULL;
        }
        raw = (unsigned char *)nn__malloc(cap + NN__BLOCK_HDR + NN_MEM_ALIGN);
        if (!raw) return NULL;
        p = raw + (NN_MEM_ALIGN - ((uintptr_t)raw % NN_MEM_ALIGN)) % NN_MEM_ALIGN;
        b = (nn__block *)(void *)p;
        b->next = NULL;
        b->raw = raw;
        b->cap = cap;
        if (a->cur) a->cur->next = b;
        else a->first = b;
        a->cur = b;
        a->used = 0;
        a->capacity += cap;
        g->capacity += cap;
    }
}

/* Bytes from the graph's data arena. */
static void *nn__arena_alloc(nn_graph *g, size_t size) {
    return nn__arena_take(g, &g->mem, size, (size_t)NN_GRAPH_BLOCK);
}

/* A tensor header for the graph's current generation. */
static nn_tensor *nn__graph_head(nn_graph *g) {
    return (nn_tensor *)nn__arena_take(g, &g->heads[g->gen & 1u], sizeof(nn_tensor), (size_t)NN__HEAD_BLOCK);
}

/* Bytes of a chain in use now: the blocks before the current one, whole,
   plus what the current one used. */
static size_t nn__arena_used(const nn__arena *a) {
    const nn__block *b;
    size_t used = a->used;
    for (b = a->first; b && b != a->cur; b = b->next) used += b->cap;
    return used;
}

/* Bytes the graph holds in use now: data, records and scratch, and this
   generation's tensor headers. */
static size_t nn__graph_used(const nn_graph *g) {
    return nn__arena_used(&g->mem) + nn__arena_used(&g->heads[g->gen & 1u]);
}

/* The graph's arena as a kernel's scratch allocator. */
static void *nn__graph_scratch_alloc(void *ctx, size_t bytes) {
    return nn__arena_alloc((nn_graph *)ctx, bytes);
}
static nn__kscratch nn__graph_scratch(nn_graph *g) {
    nn__kscratch s;
    s.alloc = nn__graph_scratch_alloc;
    s.ctx = g;
    return s;
}

/* ===== >>tensor (implementation) ========================================= */

NNDEF nn_shape nn_shape_make(int ndim, ...) {
    nn_shape s;
    va_list ap;
    int i;
    memset(&s, 0, sizeof s);
    if (ndim < 0 || ndim > NN_MAX_DIMS) {
        nn__misuse("NN_SHAPE: %d dimensions, at most NN_MAX_DIMS=%d", ndim, NN_MAX_DIMS);
        return s;
    }
    s.ndim = ndim;
    va_start(ap, ndim);
    for (i = 0; i < ndim; i++) s.d[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

NNDEF nn_shape nn_shape_scalar(void) {
    nn_shape s;
    memset(&s, 0, sizeof s);
    return s;
}

NNDEF char *nn_shape_str(nn_shape s, char *buf, size_t size) {
    size_t n = 0;
    int i;
    if (!size) return buf;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "[");
    for (i = 0; i < s.ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%d" : "%d", s.d[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

NNDEF nn_shape nn_shape_of(const nn_tensor *t) {
    nn_shape s;
    memset(&s, 0, sizeof s);
    if (!t) return s;
    s.ndim = t->ndim;
    memcpy(s.d, t->shape, sizeof(int) * (size_t)t->ndim);
    return s;
}

/* A tensor's shape as "[2,3]", for misuse messages only (the buffer pool
   above nn__misuse). */
static const char *nn__ts(const nn_tensor *t) {
    if (!t) return "NULL";
    if (nn__ts_used >= NN__TS_SLOTS) return "[...]";
    return nn_shape_str(nn_shape_of(t), nn__ts_buf[nn__ts_used++], sizeof nn__ts_buf[0]);
}

/* Elements of a shape; 0 with a misuse report when invalid. */
static int nn__shape_numel(const char *op, nn_shape s, size_t *numel) {
    size_t n = 1;
    int i;
    char b[96];
    if (s.ndim < 0 || s.ndim > NN_MAX_DIMS) {
        nn__misuse("%s: %d dimensions, at most %d", op, s.ndim, NN_MAX_DIMS);
        return 0;
    }
    for (i = 0; i < s.ndim; i++) {
        if (s.d[i] < 0) {
            nn__misuse("%s: negative size in shape %s", op, nn_shape_str(s, b, sizeof b));
            return 0;
        }
        if (s.d[i] && n > ((size_t)-1 / sizeof(float)) / (size_t)s.d[i]) {
            nn__misuse("%s: shape %s is too large", op, nn_shape_str(s, b, sizeof b));
            return 0;
        }
        n *= (size_t)s.d[i];
    }
    *numel = n;
    return 1;
}

static void *nn__arena_alloc(nn_graph *g, size_t size);
static nn_tensor *nn__graph_head(nn_graph *g);
static unsigned nn__graph_gen(const nn_graph *g);

/* A new tensor of shape s in g (or persistent when g is NULL); data
   uninitialized unless zero.  NULL after a misuse report or when out of
   memory (then nn_error_string says so). */
static nn_tensor *nn__tensor_new(const char *op, nn_graph *g, nn_shape s, int zero) {
    nn_tensor *t;
    size_t n;
    if (!nn__shape_numel(op, s, &n)) return NULL;
    if (g) {
        t = nn__graph_head(g);
        if (!t) return NULL;
        memset(t, 0, sizeof *t);
        t->data = (float *)nn__arena_alloc(g, n * sizeof(float));
        if (!t->data) return NULL;
        if (zero) memset(t->data, 0, n * sizeof(float));
    } else {
        t = (nn_tensor *)nn__calloc(1, sizeof(nn_tensor));
        if (!t) return NULL;
        t->data = nn__alloc_floats(n, zero);
        if (!t->data) {
            nn__free(t);
            return NULL;
        }
        t->flags = NN_TENSOR_PERSISTENT;
    }
    t->graph = g;
    t->gen = g ? nn__graph_gen(g) : 0u;
    t->ndim = s.ndim;
    memcpy(t->shape, s.d, sizeof(int) * (size_t)s.ndim);
    t->numel = n;
    return t;
}

NNDEF nn_tensor *nn_tensor_from(nn_graph *g, const float *data, nn_shape shape) {
    nn_tensor *t = nn__tensor_new("nn_tensor_from", g, shape, 0);
    if (!t) return NULL;
    if (data) memcpy(t->data, data, t->numel * sizeof(float));
    else memset(t->data, 0, t->numel * sizeof(float));
    return t;
}

NNDEF nn_tensor *nn_full(nn_graph *g, nn_shape shape, float value) {
    nn_tensor *t = nn__tensor_new("nn_full", g, shape, 0);
    size_t i;
    if (!t) return NULL;
    for (i = 0; i < t->numel; i++) t->data[i] = value;
    return t;
}
NNDEF nn_tensor *nn_zeros(nn_graph *g, nn_shape shape) { return nn__tensor_new("nn_zeros", g, shape, 1); }
NNDEF nn_tensor *nn_ones(nn_graph *g, nn_shape shape) { return nn_full(g, shape, 1.0f); }

NNDEF nn_tensor *nn_randn(nn_graph *g, nn_shape shape) {
    nn_tensor *t = nn__tensor_new("nn_randn", g, shape, 0);
    nn__pcg *r = &nn__rng()->pcg;
    size_t i;
    if (!t) return NULL;
    for (i = 0; i < t->numel; i++) t->data[i] = nn__rng_normal(r);
    return t;
}

NNDEF nn_tensor *nn_rand(nn_graph *g, nn_shape shape, float lo, float hi) {
    nn_tensor *t = nn__tensor_new("nn_rand", g, shape, 0);
    nn__pcg *r = &nn__rng()->pcg;
    size_t i;
    if (!t) return NULL;
    for (i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * nn__pcg_uniform(r);
    return t;
}

/* Bytes at t->data: 8 per element for NN_TENSOR_INT64, else 4. */
static size_t nn__tensor_nbytes(const nn_tensor *t) {
    return t->numel * ((t->flags & NN_TENSOR_INT64) ? sizeof(int64_t) : sizeof(float));
}

NNDEF void nn_tensor_free(nn_tensor *t) {
    if (!t) return;
    if (!(t->flags & NN_TENSOR_PERSISTENT)) {
        nn__misuse("nn_tensor_free: tensor %s belongs to a graph; nn_graph_reset/free releases it",
                   nn__ts(t));
        return;
    }
    if (t->refs > 0) {
        nn__misuse("nn_tensor_free: tensor %s is a parameter or buffer of %d module(s); "
                   "nn_module_free frees it", nn__ts(t), t->refs);
        return;
    }
    if (!(t->flags & NN_TENSOR_VIEW)) nn__free_floats(t->data);
    nn__free_floats(t->grad);
    nn__free(t);
}

NNDEF float *nn_data(nn_tensor *t) { return t ? t->data : NULL; }
NNDEF size_t nn_numel(const nn_tensor *t) { return t ? t->numel : 0; }

NNDEF float nn_item(const nn_tensor *t) {
    if (!t || t->numel != 1) {
        nn__misuse("nn_item: needs a one-element tensor, got %s", nn__ts(t));
        return 0.0f;
    }
    return t->data[0];
}

NNDEF void nn_print(const char *label, const nn_tensor *t) {
    size_t rows, cols, r, c;
    char b[96];
    if (!t) {
        printf("%s: NULL\n", label ? label : "tensor");
        return;
    }
    printf("%s %s\n", label ? label : "tensor", nn_shape_str(nn_shape_of(t), b, sizeof b));
    cols = t->ndim ? (size_t)t->shape[t->ndim - 1] : 1;
    rows = cols ? t->numel / cols : 0;
    for (r = 0; r < rows; r++) {
        if (r == 6 && rows > 8) {
            printf("  ... (%zu rows)\n", rows);
            r = rows - 2;
        }
        printf("  ");
        for (c = 0; c < cols; c++) {
            if (c == 6 && cols > 8) {
                printf(" ...");
                c = cols - 2;
            }
            printf(" %10.5g", (double)t->data[r * cols + c]);
        }
        printf("\n");
    }
}

/* ===== >>autograd (implementation) ======================================= */

NNDEF nn_tensor *nn_requires_grad(nn_tensor *t, int on) {
    if (!t) {
        nn__misuse("nn_requires_grad: NULL tensor");
        return NULL;
    }
    if (!on) {
        t->flags &= ~NN_TENSOR_REQUIRES_GRAD;
        return t;
    }
    t->flags |= NN_TENSOR_REQUIRES_GRAD;
    if ((t->flags & NN_TENSOR_PERSISTENT) && !t->grad) t->grad = nn__alloc_floats(t->numel, 1);
    return t;
}

NNDEF int nn_needs_grad(const nn_tensor *t) {
    return t && (t->flags & NN_TENSOR_REQUIRES_GRAD) != 0;
}

NNDEF float *nn_grad(nn_tensor *t) {
    if (!t || ((t->flags & NN_TENSOR_PERSISTENT) && !(t->flags & NN_TENSOR_HAS_GRAD))) return NULL;
    return t->grad;
}

/* 1 when the persistent t has a gradient an optimizer may use: it needs
   one and one arrived since the last nn_zero_grad. */
static int nn__grad_live(const nn_tensor *t) {
    const unsigned both = NN_TENSOR_REQUIRES_GRAD | NN_TENSOR_HAS_GRAD;
    return t->grad && (t->flags & both) == both;
}

NNDEF float *nn_grad_buffer(nn_tensor *t) {
    if (!t || !(t->flags & NN_TENSOR_PERSISTENT) || !(t->flags & NN_TENSOR_REQUIRES_GRAD) || !t->grad) {
        nn__misuse("nn_grad_buffer: needs a persistent tensor that requires a gradient, got %s",
                   nn__ts(t));
        return NULL;
    }
    if (!(t->flags & NN_TENSOR_HAS_GRAD)) memset(t->grad, 0, t->numel * sizeof(float));
    t->flags |= NN_TENSOR_HAS_GRAD;
    return t->grad;
}

/* The tensor whose gradient buffer could not be allocated during this
   thread's nn_backward (NULL: none); nn_backward turns it into NN_ERR_OOM. */
static NN__THREAD_LOCAL const nn_tensor *nn__grad_oom = NULL;

/* t's gradient buffer, zeroed in its graph on first use.  NULL when out of
   memory, noted in nn__grad_oom. */
static float *nn__gradbuf(nn_tensor *t) {
    if (!t->grad) {
        if (t->graph) {
            t->grad = (float *)nn__arena_alloc(t->graph, t->numel * sizeof(float));
            if (t->grad) memset(t->grad, 0, t->numel * sizeof(float));
        } else {
            t->grad = nn__alloc_floats(t->numel, 1);
        }
        if (!t->grad && !nn__grad_oom) nn__grad_oom = t;
    }
    /* A persistent tensor (a parameter) now holds a gradient until nn_zero_grad. */
    if (t->grad && !t->graph) t->flags |= NN_TENSOR_HAS_GRAD;
    return t->grad;
}

/* The gradient buffer of input i if it needs one, else NULL. */
static float *nn__in_grad(nn__node *n, int i) {
    nn_tensor *t = n->in[i];
    return (t->flags & NN_TENSOR_REQUIRES_GRAD) ? nn__gradbuf(t) : NULL;
}

/* Like nn__in_grad for a backward that can overwrite instead of add: a buffer
   made here is not zeroed and *beta = 0 (the caller must write every element
   before any other use of the buffer); else *beta = 1 (add to it). */
static float *nn__in_grad_w(nn__node *n, int i, float *beta) {
    nn_tensor *t = n->in[i];
    *beta = 1.0f;
    if (!(t->flags & NN_TENSOR_REQUIRES_GRAD)) return NULL;
    if (!t->grad && t->graph) {
        t->grad = (float *)nn__arena_alloc(t->graph, t->numel * sizeof(float));
        if (!t->grad && !nn__grad_oom) nn__grad_oom = t;
        *beta = 0.0f;
        return t->grad;
    }
    return nn__gradbuf(t);
}

/* Misuse report when t (described by what, e.g. "input 1") is from an older
   generation of its graph than the graph's current one; 1 then. */
static int nn__stale(const char *op, const char *what, int i, const nn_tensor *t) {
    char name[32];
    if (!t->graph || t->gen == t->graph->gen) return 0;
    if (i >= 0) snprintf(name, sizeof name, "%s %d", what, i);
    else snprintf(name, sizeof name, "%s", what);
    nn__misuse("%s: %s belongs to graph %p generation %u, but the graph was reset since "
               "(now generation %u): a tensor lives until its graph's next nn_graph_reset",
               op, name, (void *)t->graph, t->gen, t->graph->gen);
    return 1;
}

NNDEF nn_status nn_backward(nn_tensor *loss) {
    nn__node *n;
    nn_graph *g;
    if (!loss || loss->numel != 1) {
        nn__misuse("nn_backward: the loss must have one element, got %s", nn__ts(loss));
        return NN_ERR_ARG;
    }
    if (nn__stale("nn_backward", "the loss", -1, loss)) return NN_ERR_ARG;
    if (!loss->node || !loss->graph) {
        nn__misuse("nn_backward: the loss does not require a gradient (no input needs one, "
                   "or gradients are off for its graph)");
        return NN_ERR_ARG;
    }
    g = loss->graph;
    /* Intermediate gradients start fresh; leaves and parameters accumulate. */
    for (n = g->tail; n; n = n->prev) n->out->grad = NULL;
    nn__grad_oom = NULL;
    if (!nn__gradbuf(loss)) {
        nn__grad_oom = NULL;
        return nn__error(NN_ERR_OOM, "nn_backward: out of memory for the gradient of the loss");
    }
    loss->grad[0] = 1.0f;
    for (n = g->tail; n; n = n->prev) {
        int i;
        if (!n->out->grad) continue;
        n->backward(n);
        if (nn__grad_oom) {
            /* A gradient the backward needed could not be had: it would read
               as "no gradient needed", so the whole backward fails. */
            const nn_tensor *t = nn__grad_oom;
            for (i = 0; i < n->nin && n->in[i] != t; i++) {}
            nn__grad_oom = NULL;
            return nn__error(NN_ERR_OOM, "nn_backward: out of memory for the %zu-float gradient "
                             "of input %d %s of %s; the gradients are incomplete", t->numel,
                             i, nn__ts(t), n->op);
        }
        for (i = 0; g->anomaly && i < n->nin; i++) {
            nn_tensor *t = n->in[i];
            long at = t->grad ? nn__first_nonfinite(t->grad, t->numel) : -1;
            if (at >= 0) {
                nn__misuse("nn_backward: anomaly: the backward of %s gave input %d %s a non-finite "
                           "gradient (%g at element %ld)", n->op, i, nn__ts(t),
                           (double)t->grad[at], at);
                return NN_ERR_ARG;
            }
        }
    }
    return NN_OK;
}

/* The graph an op's result goes to: its inputs' (every input in a graph must
   be in the same one, and of its current generation), or, when all inputs are
   persistent, the thread's current graph.  NULL after a misuse report. */
static nn_graph *nn__graph_of(const char *op, nn_tensor **in, int nin) {
    nn_graph *g = NULL;
    int i, first = -1;
    for (i = 0; i < nin; i++) {
        nn_graph *h = in[i]->graph;
        if (!h) continue;
        if (nn__stale(op, "input", i, in[i])) return NULL;
        if (!g) {
            g = h;
            first = i;
        } else if (h != g) {
            nn__misuse("%s: input %d is in graph %p (generation %u) but input %d in graph %p "
                       "(generation %u): an op's inputs must share one graph", op, first,
                       (void *)g, g->gen, i, (void *)h, h->gen);
            return NULL;
        }
    }
    if (g) return g;
    if (nn__cur_graph) return nn__cur_graph;
    nn__misuse("%s: no input belongs to a graph and this thread has no current graph (call "
               "nn_graph_reset(g) or nn_set_current_graph(g) first, or make an input with "
               "nn_tensor_from(g, ...))", op);
    return NULL;
}

/* Check inputs are non-NULL; then make the op's output in their graph and,
   when a gradient must flow, record a node.  NULL after a misuse report. */
static nn_tensor *nn__op(const char *op, nn_tensor **in, int nin, nn_shape s,
                         nn__backward_fn backward) {
    nn_graph *g;
    nn_tensor *out;
    int i, need = 0;
    for (i = 0; i < nin; i++) {
        if (!in[i]) {
            nn__misuse("%s: input %d is NULL", op, i);
            return NULL;
        }
        if (in[i]->flags & NN_TENSOR_INT64) {
            nn__misuse("%s: input %d holds int64 values (a counter buffer), not floats", op, i);
            return NULL;
        }
    }
    g = nn__graph_of(op, in, nin);
    if (!g) return NULL;
    for (i = 0; g->anomaly && i < nin; i++) {
        long at = nn__first_nonfinite(in[i]->data, in[i]->numel);
        if (at >= 0) {
            nn__misuse("%s: anomaly: input %d %s holds %g at element %ld (made by %s)", op, i,
                       nn__ts(in[i]), (double)in[i]->data[at], at,
                       in[i]->node ? in[i]->node->op : "a leaf");
            return NULL;
        }
    }
    out = nn__tensor_new(op, g, s, 0);
    if (!out) return NULL;
    if (g->grad_enabled)
        for (i = 0; i < nin; i++) need |= (in[i]->flags & NN_TENSOR_REQUIRES_GRAD) != 0;
    if (need) {
        nn__node *n = (nn__node *)nn__arena_alloc(g, sizeof(nn__node));
        if (!n) return NULL;
        memset(n, 0, sizeof *n);
        n->in = (nn_tensor **)nn__arena_alloc(g, sizeof(nn_tensor *) * (size_t)nin);
        if (!n->in) return NULL;
        memcpy(n->in, in, sizeof(nn_tensor *) * (size_t)nin);
        n->nin = nin;
        n->op = op;
        n->out = out;
        n->backward = backward;
        n->prev = g->tail;
        g->tail = n;
        out->node = n;
        out->flags |= NN_TENSOR_REQUIRES_GRAD;
    }
    return out;
}

/* Scratch memory in a tensor's graph, for values an op saves for backward. */
static void *nn__scratch(nn_tensor *t, size_t bytes) {
    return nn__arena_alloc(t->graph, bytes);
}

/* Normalize an axis (negative counts from the end); -1 after a report. */
static int nn__axis(const char *op, const nn_tensor *a, int axis) {
    int ax = axis < 0 ? axis + a->ndim : axis;
    if (ax < 0 || ax >= a->ndim) {
        nn__misuse("%s: axis %d out of range for shape %s", op, axis, nn__ts(a));
        return -1;
    }
    return ax;
}

/* Split a's shape around axis into outer x n x inner. */
static void nn__split_axis(const nn_tensor *a, int ax, size_t *outer, int *n, size_t *inner) {
    int i;
    *outer = 1;
    *inner = 1;
    for (i = 0; i < ax; i++) *outer *= (size_t)a->shape[i];
    for (i = ax + 1; i < a->ndim; i++) *inner *= (size_t)a->shape[i];
    *n = a->shape[ax];
}

/* --- element-wise binary ops with NumPy broadcasting --- */

enum { NN__ADD, NN__SUB, NN__MUL, NN__DIV };
static const char *const nn__bin_names[] = {"nn_add", "nn_sub", "nn_mul", "nn_div"};

/* Broadcast layout: the output shape, and each input's stride per output
   dimension (0 where it is broadcast). */
typedef struct nn__bcast {
    int nd;
    int shape[NN_MAX_DIMS];
    size_t sa[NN_MAX_DIMS], sb[NN_MAX_DIMS];
} nn__bcast;

static int nn__broadcast(const char *op, const nn_tensor *a, const nn_tensor *b, nn__bcast *bc) {
    int i, nd = NN__MAX(a->ndim, b->ndim);
    size_t stride_a = 1, stride_b = 1;
    bc->nd = nd;
    for (i = nd - 1; i >= 0; i--) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            nn__misuse("%s: shapes %s and %s do not broadcast (dimension %d: %d vs %d)", op,
                       nn__ts(a), nn__ts(b), i, da, db);
            return 0;
        }
        bc->shape[i] = da == 1 ? db : da;
        bc->sa[i] = (da == 1) ? 0 : stride_a;
        bc->sb[i] = (db == 1) ? 0 : stride_b;
        stride_a *= (size_t)da;
        stride_b *= (size_t)db;
    }
    return 1;
}

/* Advance the row odometer over all dimensions but the last. */
static void nn__bcast_next_row(const nn__bcast *bc, int *idx, size_t *oa, size_t *ob) {
    int d;
    for (d = bc->nd - 2; d >= 0; d--) {
        idx[d]++;
        *oa += bc->sa[d];
        *ob += bc->sb[d];
        if (idx[d] < bc->shape[d]) return;
        *oa -= bc->sa[d] * (size_t)bc->shape[d];
        *ob -= bc->sb[d] * (size_t)bc->shape[d];
        idx[d] = 0;
    }
}

/* o = a (op) b over a row; the two common layouts (equal shapes, and a
   broadcast scalar such as a bias element) take the vector path. */
#define NN__BIN_VLOOP(vexpr, sexpr)                                         \
    for (; i + NN__VL <= n; i += NN__VL) nn__vstore(o + i, vexpr);         \
    for (; i < n; i++) o[i] = sexpr;
static void nn__bin_row(int kind, const float *a, size_t sa, const float *b, size_t sb,
                        float *o, int n) {
    int i = 0;
    if (sa == 1 && sb == 1) {
        switch (kind) {
        case NN__ADD: NN__BIN_VLOOP(nn__vadd(nn__vload(a + i), nn__vload(b + i)), a[i] + b[i]) break;
        case NN__SUB: NN__BIN_VLOOP(nn__vsub(nn__vload(a + i), nn__vload(b + i)), a[i] - b[i]) break;
        case NN__MUL: NN__BIN_VLOOP(nn__vmul(nn__vload(a + i), nn__vload(b + i)), a[i] * b[i]) break;
        default: NN__BIN_VLOOP(nn__vdiv(nn__vload(a + i), nn__vload(b + i)), a[i] / b[i]) break;
        }
    } else if (sa == 1 && sb == 0) {
        float s = b[0];
        nn__v vs = nn__vset1(s);
        switch (kind) {
        case NN__ADD: NN__BIN_VLOOP(nn__vadd(nn__vload(a + i), vs), a[i] + s) break;
        case NN__SUB: NN__BIN_VLOOP(nn__vsub(nn__vload(a + i), vs), a[i] - s) break;
        case NN__MUL: NN__BIN_VLOOP(nn__vmul(nn__vload(a + i), vs), a[i] * s) break;
        default: NN__BIN_VLOOP(nn__vdiv(nn__vload(a + i), vs), a[i] / s) break;
        }
    } else {
        for (i = 0; i < n; i++) {
            float x = a[(size_t)i * sa], y = b[(size_t)i * sb];
            o[i] = kind == NN__ADD ? x + y : kind == NN__SUB ? x - y : kind == NN__MUL ? x * y : x / y;
        }
    }
}
#undef NN__BIN_VLOOP

static void nn__binary_backward(nn__node *n) {
    int kind = n->iarg[0], idx[NN_MAX_DIMS] = {0};
    nn_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    float *ga = nn__in_grad(n, 0), *gb = nn__in_grad(n, 1);
    const float *g = out->grad;
    nn__bcast bc;
    size_t oa = 0, ob = 0, rows, r, sa, sb;
    int len, i;
    if (!nn__broadcast(n->op, a, b, &bc)) return;
    len = bc.nd ? bc.shape[bc.nd - 1] : 1;
    sa = bc.nd ? bc.sa[bc.nd - 1] : 0;
    sb = bc.nd ? bc.sb[bc.nd - 1] : 0;
    rows = len ? out->numel / (size_t)len : 0;
    for (r = 0; r < rows; r++, g += len) {
        const float *av = a->data + oa, *bv = b->data + ob;
        float *gav = ga ? ga + oa : NULL, *gbv = gb ? gb + ob : NULL;
        for (i = 0; i < len; i++) {
            float gi = g[i], x = av[(size_t)i * sa], y = bv[(size_t)i * sb];
            switch (kind) {
            case NN__ADD:
                if (gav) gav[(size_t)i * sa] += gi;
                if (gbv) gbv[(size_t)i * sb] += gi;
                break;
            case NN__SUB:
                if (gav) gav[(size_t)i * sa] += gi;
                if (gbv) gbv[(size_t)i * sb] -= gi;
                break;
            case NN__MUL:
                if (gav) gav[(size_t)i * sa] += gi * y;
                if (gbv) gbv[(size_t)i * sb] += gi * x;
                break;
            default:
                if (gav) gav[(size_t)i * sa] += gi / y;
                if (gbv) gbv[(size_t)i * sb] -= gi * x / (y * y);
                break;
            }
        }
        nn__bcast_next_row(&bc, idx, &oa, &ob);
    }
}

static nn_tensor *nn__binary(int kind, nn_tensor *a, nn_tensor *b) {
    const char *op = nn__bin_names[kind];
    nn_tensor *in[2], *out;
    nn__bcast bc;
    nn_shape s;
    int idx[NN_MAX_DIMS] = {0}, len;
    size_t oa = 0, ob = 0, rows, r;
    in[0] = a;
    in[1] = b;
    if (!a || !b) {
        nn__misuse("%s: NULL input (%s, %s)", op, nn__ts(a), nn__ts(b));
        return NULL;
    }
    if (!nn__broadcast(op, a, b, &bc)) return NULL;
    s.ndim = bc.nd;
    memcpy(s.d, bc.shape, sizeof bc.shape);
    out = nn__op(op, in, 2, s, nn__binary_backward);
    if (!out) return NULL;
    if (out->node) out->node->iarg[0] = kind;
    len = bc.nd ? bc.shape[bc.nd - 1] : 1;
    rows = len ? out->numel / (size_t)len : 0;
    for (r = 0; r < rows; r++) {
        nn__bin_row(kind, a->data + oa, bc.nd ? bc.sa[bc.nd - 1] : 0, b->data + ob,
                    bc.nd ? bc.sb[bc.nd - 1] : 0, out->data + r * (size_t)len, len);
        nn__bcast_next_row(&bc, idx, &oa, &ob);
    }
    return out;
}

NNDEF nn_tensor *nn_add(nn_tensor *a, nn_tensor *b) { return nn__binary(NN__ADD, a, b); }
NNDEF nn_tensor *nn_sub(nn_tensor *a, nn_tensor *b) { return nn__binary(NN__SUB, a, b); }
NNDEF nn_tensor *nn_mul(nn_tensor *a, nn_tensor *b) { return nn__binary(NN__MUL, a, b); }
NNDEF nn_tensor *nn_div(nn_tensor *a, nn_tensor *b) { return nn__binary(NN__DIV, a, b); }

/* --- element-wise unary ops --- */

enum { NN__U_AFFINE, NN__U_EXP, NN__U_LOG, NN__U_SQRT, NN__U_POW };

/* d out / d a from a and out, times the incoming gradient, accumulated. */
static void nn__unary_backward(nn__node *n) {
    nn_tensor *a = n->in[0], *y = n->out;
    float *ga;
    const float *g = y->grad, *x = a->data, *o = y->data;
    float p = n->farg[0];
    size_t i, len = y->numel;
    if (!(ga = nn__in_grad(n, 0))) return;
    switch (n->iarg[0]) {
    case NN__U_AFFINE: for (i = 0; i < len; i++) ga[i] += g[i] * p; break;
    case NN__U_EXP: for (i = 0; i < len; i++) ga[i] += g[i] * o[i]; break;
    case NN__U_LOG: for (i = 0; i < len; i++) ga[i] += g[i] / x[i]; break;
    case NN__U_SQRT: for (i = 0; i < len; i++) ga[i] += g[i] * 0.5f / o[i]; break;
    case NN__U_POW: /* x^0 is constant: a zero gradient even at x = 0 (as torch) */
        if (p != 0.0f)
            for (i = 0; i < len; i++) ga[i] += g[i] * p * powf(x[i], p - 1.0f);
        break;
    default: break;
    }
}

static nn_tensor *nn__unary(const char *op, int kind, nn_tensor *a, float p, float q) {
    nn_tensor *out;
    const float *x;
    float *y;
    size_t i, len;
    out = nn__op(op, &a, 1, nn_shape_of(a), nn__unary_backward);
    if (!out) return NULL;
    if (out->node) {
        out->node->iarg[0] = kind;
        out->node->farg[0] = p;
    }
    x = a->data;
    y = out->data;
    len = out->numel;
    switch (kind) {
    case NN__U_AFFINE: for (i = 0; i < len; i++) y[i] = x[i] * p + q; break;
    case NN__U_EXP: nn__exp_array(x, y, len); break;
    case NN__U_LOG: for (i = 0; i < len; i++) y[i] = logf(x[i]); break;
    case NN__U_SQRT: for (i = 0; i < len; i++) y[i] = sqrtf(x[i]); break;
    default: for (i = 0; i < len; i++) y[i] = powf(x[i], p); break;
    }
    return out;
}

NNDEF nn_tensor *nn_add_scalar(nn_tensor *a, float s) { return nn__unary("nn_add_scalar", NN__U_AFFINE, a, 1.0f, s); }
NNDEF nn_tensor *nn_sub_scalar(nn_tensor *a, float s) { return nn__unary("nn_sub_scalar", NN__U_AFFINE, a, 1.0f, -s); }
NNDEF nn_tensor *nn_mul_scalar(nn_tensor *a, float s) { return nn__unary("nn_mul_scalar", NN__U_AFFINE, a, s, 0.0f); }
NNDEF nn_tensor *nn_div_scalar(nn_tensor *a, float s) { return nn__unary("nn_div_scalar", NN__U_AFFINE, a, 1.0f / s, 0.0f); }
NNDEF nn_tensor *nn_exp(nn_tensor *a) { return nn__unary("nn_exp", NN__U_EXP, a, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_log(nn_tensor *a) { return nn__unary("nn_log", NN__U_LOG, a, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_sqrt(nn_tensor *a) { return nn__unary("nn_sqrt", NN__U_SQRT, a, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_pow(nn_tensor *a, float p) { return nn__unary("nn_pow", NN__U_POW, a, p, 0.0f); }

/* --- activations ---
   One op for every element-wise activation: kind is an NN__ACT_* of
   >>kernels, a and b its parameters (saved in the node for the backward).
   ReLU, sigmoid and tanh here; the rest in >>layers.act. */

static void nn__act_backward_node(nn__node *n) {
    float beta, *gx = nn__in_grad_w(n, 0, &beta);
    if (!gx) return;
    nn__act_backward(n->iarg[0], n->in[0]->data, n->out->data, n->out->grad, gx, n->out->numel,
                     n->farg[0], n->farg[1], beta == 0.0f);
}

static nn_tensor *nn__act(const char *op, int kind, nn_tensor *x, float a, float b) {
    nn_tensor *out = nn__op(op, &x, 1, nn_shape_of(x), nn__act_backward_node);
    if (!out) return NULL;
    if (out->node) {
        out->node->iarg[0] = kind;
        out->node->farg[0] = a;
        out->node->farg[1] = b;
    }
    nn__act_forward(kind, x->data, out->data, out->numel, a, b);
    return out;
}

NNDEF nn_tensor *nn_relu_op(nn_tensor *a) { return nn__act("nn_relu_op", NN__ACT_RELU, a, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_sigmoid_op(nn_tensor *a) { return nn__act("nn_sigmoid_op", NN__ACT_SIGMOID, a, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_tanh_op(nn_tensor *a) { return nn__act("nn_tanh_op", NN__ACT_TANH, a, 0.0f, 0.0f); }

/* --- matrix products --- */

/* Batched layout of a matmul: nb products of [M,K] x [K,N], with per-batch
   strides (0 for a shared 2-D operand). */
typedef struct nn__mm {
    int nb, M, N, K;
    size_t sa, sb, sc;
} nn__mm;

static int nn__mm_layout(const nn_tensor *a, const nn_tensor *b, nn__mm *mm, nn_shape *s) {
    int i;
    if (a->ndim < 2 || b->ndim < 2) {
        nn__misuse("nn_matmul: needs at least 2-D operands, got %s x %s", nn__ts(a), nn__ts(b));
        return 0;
    }
    mm->K = a->shape[a->ndim - 1];
    mm->N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != mm->K) {
        nn__misuse("nn_matmul: inner sizes differ: %s x %s", nn__ts(a), nn__ts(b));
        return 0;
    }
    if (b->ndim == 2) {
        /* Fold a's batch into M: one product. */
        mm->nb = 1;
        mm->M = (int)(a->numel / (size_t)(mm->K ? mm->K : 1));
        if (mm->K == 0) {
            mm->M = 1;
            for (i = 0; i < a->ndim - 1; i++) mm->M *= a->shape[i];
        }
        *s = nn_shape_of(a);
        s->d[s->ndim - 1] = mm->N;
        mm->sa = mm->sb = mm->sc = 0;
        return 1;
    }
    mm->M = a->shape[a->ndim - 2];
    if (a->ndim == 2) {
        *s = nn_shape_of(b);
        s->d[s->ndim - 2] = mm->M;
    } else {
        if (a->ndim != b->ndim) goto mismatch;
        for (i = 0; i < a->ndim - 2; i++)
            if (a->shape[i] != b->shape[i]) goto mismatch;
        *s = nn_shape_of(a);
        s->d[s->ndim - 1] = mm->N;
    }
    mm->nb = 1;
    for (i = 0; i < s->ndim - 2; i++) mm->nb *= s->d[i];
    mm->sa = a->ndim == 2 ? 0 : (size_t)mm->M * (size_t)mm->K;
    mm->sb = (size_t)mm->K * (size_t)mm->N;
    mm->sc = (size_t)mm->M * (size_t)mm->N;
    return 1;
mismatch:
    nn__misuse("nn_matmul: batch dimensions differ: %s x %s", nn__ts(a), nn__ts(b));
    return 0;
}

static void nn__matmul_backward(nn__node *n) {
    nn_tensor *a = n->in[0], *b = n->in[1];
    float *ga = nn__in_grad(n, 0), *gb = nn__in_grad(n, 1);
    const float *g = n->out->grad;
    nn_shape s;
    nn__mm mm;
    int i;
    if (!nn__mm_layout(a, b, &mm, &s)) return;
    for (i = 0; i < mm.nb; i++) {
        const float *gi = g + (size_t)i * mm.sc;
        /* dA = dC B^T, dB = A^T dC, transposes handled by sgemm. */
        if (ga)
            nn_sgemm(0, 1, mm.M, mm.K, mm.N, 1.0f, gi, mm.N, b->data + (size_t)i * mm.sb, mm.N,
                     1.0f, ga + (size_t)i * mm.sa, mm.K);
        if (gb)
            nn_sgemm(1, 0, mm.K, mm.N, mm.M, 1.0f, a->data + (size_t)i * mm.sa, mm.K, gi, mm.N,
                     1.0f, gb + (size_t)i * mm.sb, mm.N);
    }
}

NNDEF nn_tensor *nn_matmul(nn_tensor *a, nn_tensor *b) {
    nn_tensor *in[2], *out;
    nn_shape s;
    nn__mm mm;
    int i;
    in[0] = a;
    in[1] = b;
    if (!a || !b) {
        nn__misuse("nn_matmul: NULL input (%s x %s)", nn__ts(a), nn__ts(b));
        return NULL;
    }
    if (!nn__mm_layout(a, b, &mm, &s)) return NULL;
    out = nn__op("nn_matmul", in, 2, s, nn__matmul_backward);
    if (!out) return NULL;
    for (i = 0; i < mm.nb; i++)
        nn_sgemm(0, 0, mm.M, mm.N, mm.K, 1.0f, a->data + (size_t)i * mm.sa, mm.K,
                 b->data + (size_t)i * mm.sb, mm.N, 0.0f, out->data + (size_t)i * mm.sc, mm.N);
    return out;
}

static void nn__linear_backward(nn__node *n) {
    nn_tensor *x = n->in[0], *w = n->in[1];
    float beta, *gx = nn__in_grad_w(n, 0, &beta), *gw = nn__in_grad(n, 1);
    float *gb = n->nin > 2 ? nn__in_grad(n, 2) : NULL;
    const float *g = n->out->grad;
    int rows = n->iarg[0], in_f = w->shape[1], out_f = w->shape[0];
    /* gx first: a fresh gx (beta 0) is written whole before w or b, which
       could be the same tensor as x, add to it. */
    if (gx) nn_sgemm(0, 0, rows, in_f, out_f, 1.0f, g, out_f, w->data, in_f, beta, gx, in_f);
    if (gw) nn_sgemm(1, 0, out_f, in_f, rows, 1.0f, g, out_f, x->data, in_f, 1.0f, gw, in_f);
    if (gb) nn__add_colsum(g, rows, out_f, gb);
}

NNDEF nn_tensor *nn_linear_op(nn_tensor *x, nn_tensor *w, nn_tensor *b) {
    nn_tensor *in[3], *out;
    nn_shape s;
    int rows, out_f, in_f;
    in[0] = x;
    in[1] = w;
    in[2] = b;
    if (!x || !w || w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1] ||
        (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))) {
        nn__misuse("nn_linear_op: x %s, weight %s and bias %s do not fit (want x [...,in], "
                   "weight [out,in], bias [out])", nn__ts(x), nn__ts(w), b ? nn__ts(b) : "none");
        return NULL;
    }
    in_f = w->shape[1];
    out_f = w->shape[0];
    s = nn_shape_of(x);
    s.d[s.ndim - 1] = out_f;
    out = nn__op("nn_linear_op", in, b ? 3 : 2, s, nn__linear_backward);
    if (!out) return NULL;
    rows = (int)(x->numel / (size_t)(in_f ? in_f : 1));
    if (out->node) out->node->iarg[0] = rows;
    /* a small batch: the bias goes into the product's write-back (the same
       float operations as the separate pass) */
    if (rows > 0 && out_f > 0 && in_f > 0 && rows <= NN__GEMM_SMALL_M && rows < NN__GEMM_MR &&
        nn__gemm_small(0, 1, rows, out_f, in_f, 1.0f, x->data, in_f, w->data, in_f, 0.0f,
                       out->data, out_f, b ? b->data : NULL, 0))
        return out;
    nn_sgemm(0, 1, rows, out_f, in_f, 1.0f, x->data, in_f, w->data, in_f, 0.0f, out->data, out_f);
    if (b) nn__add_rows(b->data, rows, out_f, out->data);
    return out;
}

/* --- shape ops --- */

/* dst = src with dimensions permuted: dst dim i is src dim perm[i]. */
static void nn__permute(const float *src, const int *shape, int nd, const int *perm, float *dst,
                        int accumulate) {
    size_t stride[NN_MAX_DIMS], ps[NN_MAX_DIMS], total = 1, i, off = 0;
    int idx[NN_MAX_DIMS] = {0}, dshape[NN_MAX_DIMS], d;
    for (d = nd - 1; d >= 0; d--) {
        stride[d] = total;
        total *= (size_t)shape[d];
    }
    for (d = 0; d < nd; d++) {
        dshape[d] = shape[perm[d]];
        ps[d] = stride[perm[d]];
    }
    for (i = 0; i < total; i++) {
        if (accumulate) dst[i] += src[off];
        else dst[i] = src[off];
        for (d = nd - 1; d >= 0; d--) {
            off += ps[d];
            if (++idx[d] < dshape[d]) break;
            off -= ps[d] * (size_t)dshape[d];
            idx[d] = 0;
        }
    }
}

static void nn__transpose_backward(nn__node *n) {
    float *ga = nn__in_grad(n, 0);
    int perm[NN_MAX_DIMS], d;
    for (d = 0; d < n->out->ndim; d++) perm[d] = d;
    perm[n->iarg[0]] = n->iarg[1];
    perm[n->iarg[1]] = n->iarg[0];
    if (ga) nn__permute(n->out->grad, n->out->shape, n->out->ndim, perm, ga, 1);
}

NNDEF nn_tensor *nn_transpose(nn_tensor *a, int d0, int d1) {
    nn_tensor *out;
    nn_shape s;
    int perm[NN_MAX_DIMS], d, tmp;
    if (!a) {
        nn__misuse("nn_transpose: NULL input");
        return NULL;
    }
    if ((d0 = nn__axis("nn_transpose", a, d0)) < 0 || (d1 = nn__axis("nn_transpose", a, d1)) < 0)
        return NULL;
    s = nn_shape_of(a);
    tmp = s.d[d0];
    s.d[d0] = s.d[d1];
    s.d[d1] = tmp;
    out = nn__op("nn_transpose", &a, 1, s, nn__transpose_backward);
    if (!out) return NULL;
    if (out->node) {
        out->node->iarg[0] = d0;
        out->node->iarg[1] = d1;
    }
    for (d = 0; d < a->ndim; d++) perm[d] = d;
    perm[d0] = d1;
    perm[d1] = d0;
    nn__permute(a->data, a->shape, a->ndim, perm, out->data, 0);
    return out;
}

/* Gradient of a view or copy with the same element order: add it back. */
static void nn__identity_backward(nn__node *n) {
    float beta, *ga = nn__in_grad_w(n, 0, &beta);
    if (ga && beta == 0.0f) memcpy(ga, n->out->grad, n->out->numel * sizeof(float));
    else if (ga) nn__axpy(n->out->numel, 1.0f, n->out->grad, ga);
}

NNDEF nn_tensor *nn_reshape(nn_tensor *a, nn_shape s) {
    nn_tensor *out;
    size_t known = 1;
    int i, infer = -1;
    char b[96];
    if (!a) {
        nn__misuse("nn_reshape: NULL input");
        return NULL;
    }
    if (s.ndim < 0 || s.ndim > NN_MAX_DIMS) goto bad;
    for (i = 0; i < s.ndim; i++) {
        if (s.d[i] == -1 && infer < 0) infer = i;
        else if (s.d[i] < 0) goto bad;
        else known *= (size_t)s.d[i];
    }
    if (infer >= 0) {
        if (known == 0 || a->numel % known) goto bad;
        s.d[infer] = (int)(a->numel / known);
        known *= (size_t)s.d[infer];
    }
    if (known != a->numel) goto bad;
    /* A view: the output's data is a's (DESIGN: reshape never copies). */
    out = nn__op("nn_reshape", &a, 1, nn_shape_scalar(), nn__identity_backward);
    if (!out) return NULL;
    out->ndim = s.ndim;
    memcpy(out->shape, s.d, sizeof(int) * (size_t)s.ndim);
    out->numel = a->numel;
    out->data = a->data;
    out->flags |= NN_TENSOR_VIEW;
    return out;
bad:
    nn__misuse("nn_reshape: cannot view %s as %s", nn__ts(a), nn_shape_str(s, b, sizeof b));
    return NULL;
}

NNDEF nn_tensor *nn_flatten_batch(nn_tensor *a) {
    if (!a || a->ndim < 1) {
        nn__misuse("nn_flatten_batch: needs a tensor with a batch dimension, got %s", nn__ts(a));
        return NULL;
    }
    {
        size_t rest = 1;
        int i;
        for (i = 1; i < a->ndim; i++) rest *= (size_t)a->shape[i];
        if (rest > (size_t)INT_MAX) {
            nn__misuse("nn_flatten_batch: %s has more than INT_MAX elements per sample", nn__ts(a));
            return NULL;
        }
        /* (the size is given, not -1: [0,3,4] flattens to [0,12]) */
        return nn_reshape(a, NN_SHAPE(a->shape[0], (int)rest));
    }
}

/* --- reductions --- */

static void nn__sum_backward(nn__node *n) {
    float beta, *ga = nn__in_grad_w(n, 0, &beta);
    float g = n->out->grad[0] * n->farg[0];
    size_t i;
    if (ga && beta == 0.0f) /* a fresh gradient: written, not zeroed and added to */
        for (i = 0; i < n->in[0]->numel; i++) ga[i] = g;
    else if (ga)
        for (i = 0; i < n->in[0]->numel; i++) ga[i] += g;
}

static nn_tensor *nn__sum_all(const char *op, nn_tensor *a, int mean) {
    nn_tensor *out;
    double acc;
    out = nn__op(op, &a, 1, nn_shape_scalar(), nn__sum_backward);
    if (!out) return NULL;
    acc = nn__sum_array(a->data, a->numel);
    if (mean) acc /= (double)(a->numel ? a->numel : 1);
    out->data[0] = (float)acc;
    if (out->node) out->node->farg[0] = mean ? 1.0f / (float)(a->numel ? a->numel : 1) : 1.0f;
    return out;
}
NNDEF nn_tensor *nn_sum(nn_tensor *a) { return nn__sum_all("nn_sum", a, 0); }
NNDEF nn_tensor *nn_mean(nn_tensor *a) { return nn__sum_all("nn_mean", a, 1); }

/* Shape of a reduced along ax (kept with size 1 or removed). */
static nn_shape nn__reduced_shape(const nn_tensor *a, int ax, int keepdim) {
    nn_shape s = nn_shape_of(a);
    int i;
    if (keepdim) {
        s.d[ax] = 1;
    } else {
        for (i = ax; i < s.ndim - 1; i++) s.d[i] = s.d[i + 1];
        s.ndim--;
    }
    return s;
}

enum { NN__R_SUM, NN__R_MEAN, NN__R_MAX };

static void nn__reduce_backward(nn__node *n) {
    nn_tensor *a = n->in[0];
    float *ga = nn__in_grad(n, 0);
    const float *g = n->out->grad;
    size_t outer, inner, o, j;
    int len, k;
    if (!ga) return;
    nn__split_axis(a, n->iarg[1], &outer, &len, &inner);
    if (n->iarg[0] == NN__R_MAX) {
        const int *arg = (const int *)n->saved;
        for (o = 0; o < outer; o++)
            for (j = 0; j < inner; j++)
                ga[(o * (size_t)len + (size_t)arg[o * inner + j]) * inner + j] += g[o * inner + j];
        return;
    }
    for (o = 0; o < outer; o++)
        for (k = 0; k < len; k++)
            for (j = 0; j < inner; j++)
                ga[(o * (size_t)len + (size_t)k) * inner + j] += g[o * inner + j] * n->farg[0];
}

/* Index of the largest of n values spaced by stride, as torch.argmax: the
   first NaN if there is one, else the first maximal value. */
static int nn__argmax_strided(const float *p, int n, size_t stride) {
    float best = p[0];
    int bi = 0, k;
    for (k = 1; k < n && best == best; k++) {
        float v = p[(size_t)k * stride];
        if (v > best || v != v) best = v, bi = k;
    }
    return bi;
}

static nn_tensor *nn__reduce_axis(const char *op, int kind, nn_tensor *a, int axis, int keepdim) {
    nn_tensor *out;
    size_t outer, inner, o, j;
    int len, k, ax, *arg = NULL;
    if (!a) {
        nn__misuse("%s: NULL input", op);
        return NULL;
    }
    if ((ax = nn__axis(op, a, axis)) < 0) return NULL;
    nn__split_axis(a, ax, &outer, &len, &inner);
    if (kind == NN__R_MAX && len == 0) {
        nn__misuse("%s: axis %d of %s is empty", op, axis, nn__ts(a));
        return NULL;
    }
    out = nn__op(op, &a, 1, nn__reduced_shape(a, ax, keepdim), nn__reduce_backward);
    if (!out) return NULL;
    if (out->node) {
        out->node->iarg[0] = kind;
        out->node->iarg[1] = ax;
        out->node->farg[0] = kind == NN__R_MEAN ? 1.0f / (float)(len ? len : 1) : 1.0f;
        if (kind == NN__R_MAX) {
            arg = (int *)nn__scratch(out, sizeof(int) * out->numel);
            if (!arg) return NULL;
            out->node->saved = arg;
        }
    }
    for (o = 0; o < outer; o++) {
        for (j = 0; j < inner; j++) {
            const float *p = a->data + o * (size_t)len * inner + j;
            if (kind == NN__R_MAX) {
                int bi = nn__argmax_strided(p, len, inner); /* a NaN wins, as in torch.max */
                out->data[o * inner + j] = p[(size_t)bi * inner];
                if (arg) arg[o * inner + j] = bi;
            } else if (inner == 1) {
                double acc = nn__sum_array(p, (size_t)len);
                out->data[o] = (float)(kind == NN__R_MEAN ? acc / (double)(len ? len : 1) : acc);
            } else {
                float acc = 0.0f;
                for (k = 0; k < len; k++) acc += p[(size_t)k * inner];
                out->data[o * inner + j] = kind == NN__R_MEAN ? acc / (float)(len ? len : 1) : acc;
            }
        }
    }
    return out;
}
NNDEF nn_tensor *nn_sum_axis(nn_tensor *a, int axis, int keepdim) { return nn__reduce_axis("nn_sum_axis", NN__R_SUM, a, axis, keepdim); }
NNDEF nn_tensor *nn_mean_axis(nn_tensor *a, int axis, int keepdim) { return nn__reduce_axis("nn_mean_axis", NN__R_MEAN, a, axis, keepdim); }
NNDEF nn_tensor *nn_max_axis(nn_tensor *a, int axis, int keepdim) { return nn__reduce_axis("nn_max_axis", NN__R_MAX, a, axis, keepdim); }

/* --- softmax family --- */

/* Stable (log-)softmax of n values spaced by stride. */
static void nn__softmax_line(const float *x, float *y, int n, size_t stride, int logp) {
    float mx = -INFINITY, sum = 0.0f;
    int k;
    if (stride == 1 && n > 0) {
        /* Contiguous rows (the usual case): vector kernels. */
        mx = nn__max_array(x, (size_t)n);
        sum = nn__exp_shift_sum(x, mx, y, (size_t)n);
        if (logp) {
            float lse = mx + logf(sum);
            for (k = 0; k < n; k++) y[k] = x[k] - lse;
        } else {
            float inv = 1.0f / sum;
            for (k = 0; k < n; k++) y[k] *= inv;
        }
        return;
    }
    for (k = 0; k < n; k++) mx = NN__MAX(mx, x[(size_t)k * stride]);
    for (k = 0; k < n; k++) sum += nn__exp1(x[(size_t)k * stride] - mx);
    if (logp) {
        float lse = mx + logf(sum);
        for (k = 0; k < n; k++) y[(size_t)k * stride] = x[(size_t)k * stride] - lse;
    } else {
        float inv = 1.0f / sum;
        for (k = 0; k < n; k++) y[(size_t)k * stride] = nn__exp1(x[(size_t)k * stride] - mx) * inv;
    }
}

static void nn__softmax_backward(nn__node *n) {
    nn_tensor *y = n->out;
    float *ga = nn__in_grad(n, 0);
    size_t outer, inner, o, j, base;
    int len, k, logp = n->iarg[1];
    if (!ga || !y->numel) return;
    nn__split_axis(y, n->iarg[0], &outer, &len, &inner);
    for (o = 0; o < outer; o++) {
        for (j = 0; j < inner; j++) {
            const float *g, *v;
            float dot = 0.0f;
            base = o * (size_t)len * inner + j;
            g = y->grad + base;
            v = y->data + base;
            if (logp) {
                /* d/dx log_softmax: g - softmax * sum(g). */
                for (k = 0; k < len; k++) dot += g[(size_t)k * inner];
                for (k = 0; k < len; k++)
                    ga[base + (size_t)k * inner] += g[(size_t)k * inner] - nn__exp1(v[(size_t)k * inner]) * dot;
            } else {
                /* d/dx softmax: y * (g - sum(g y)). */
                for (k = 0; k < len; k++) dot += g[(size_t)k * inner] * v[(size_t)k * inner];
                for (k = 0; k < len; k++)
                    ga[base + (size_t)k * inner] += v[(size_t)k * inner] * (g[(size_t)k * inner] - dot);
            }
        }
    }
}

static nn_tensor *nn__softmax(const char *op, nn_tensor *a, int axis, int logp) {
    nn_tensor *out;
    size_t outer, inner, o, j;
    int len, ax;
    if (!a) {
        nn__misuse("%s: NULL input", op);
        return NULL;
    }
    if ((ax = nn__axis(op, a, axis)) < 0) return NULL;
    out = nn__op(op, &a, 1, nn_shape_of(a), nn__softmax_backward);
    if (!out) return NULL;
    if (out->node) {
        out->node->iarg[0] = ax;
        out->node->iarg[1] = logp;
    }
    if (!out->numel) return out; /* (no loop over the rows of an empty tensor) */
    nn__split_axis(a, ax, &outer, &len, &inner);
    for (o = 0; o < outer; o++)
        for (j = 0; j < inner; j++)
            nn__softmax_line(a->data + o * (size_t)len * inner + j,
                             out->data + o * (size_t)len * inner + j, len, inner, logp);
    return out;
}
NNDEF nn_tensor *nn_softmax(nn_tensor *a, int axis) { return nn__softmax("nn_softmax", a, axis, 0); }
NNDEF nn_tensor *nn_log_softmax(nn_tensor *a, int axis) { return nn__softmax("nn_log_softmax", a, axis, 1); }

/* --- concat and slice --- */

static void nn__concat_backward(nn__node *n) {
    int ax = n->iarg[0], i;
    size_t outer, inner, o, off = 0;
    int total;
    nn__split_axis(n->out, ax, &outer, &total, &inner);
    for (i = 0; i < n->nin; i++) {
        size_t chunk = (size_t)n->in[i]->shape[ax] * inner;
        float *gi = nn__in_grad(n, i);
        if (gi)
            for (o = 0; o < outer; o++)
                nn__axpy(chunk, 1.0f, n->out->grad + o * (size_t)total * inner + off, gi + o * chunk);
        off += chunk;
    }
}

NNDEF nn_tensor *nn_concat(nn_tensor **ts, int n, int axis) {
    nn_tensor *out;
    nn_shape s;
    size_t outer, inner, o, off = 0;
    int i, d, ax, total;
    if (!ts || n < 1 || !ts[0]) {
        nn__misuse("nn_concat: needs at least one tensor");
        return NULL;
    }
    if ((ax = nn__axis("nn_concat", ts[0], axis)) < 0) return NULL;
    s = nn_shape_of(ts[0]);
    for (i = 1; i < n; i++) {
        if (!ts[i] || ts[i]->ndim != s.ndim) goto bad;
        for (d = 0; d < s.ndim; d++)
            if (d != ax && ts[i]->shape[d] != s.d[d]) goto bad;
        s.d[ax] += ts[i]->shape[ax];
    }
    out = nn__op("nn_concat", ts, n, s, nn__concat_backward);
    if (!out) return NULL;
    if (out->node) out->node->iarg[0] = ax;
    nn__split_axis(out, ax, &outer, &total, &inner);
    for (i = 0; i < n; i++) {
        size_t chunk = (size_t)ts[i]->shape[ax] * inner;
        for (o = 0; o < outer; o++)
            memcpy(out->data + o * (size_t)total * inner + off, ts[i]->data + o * chunk,
                   chunk * sizeof(float));
        off += chunk;
    }
    return out;
bad:
    nn__misuse("nn_concat: tensor %d has shape %s, which does not fit %s along axis %d", i,
               nn__ts(ts[i]), nn__ts(ts[0]), axis);
    return NULL;
}

static void nn__slice_backward(nn__node *n) {
    nn_tensor *a = n->in[0];
    float *ga = nn__in_grad(n, 0);
    size_t outer, inner, o;
    int len, start = n->iarg[1], cnt = n->out->shape[n->iarg[0]];
    if (!ga) return;
    nn__split_axis(a, n->iarg[0], &outer, &len, &inner);
    for (o = 0; o < outer; o++)
        nn__axpy((size_t)cnt * inner, 1.0f, n->out->grad + o * (size_t)cnt * inner,
                 ga + (o * (size_t)len + (size_t)start) * inner);
}

NNDEF nn_tensor *nn_slice(nn_tensor *a, int axis, int start, int end) {
    nn_tensor *out;
    nn_shape s;
    size_t outer, inner, o;
    int ax, len;
    if (!a) {
        nn__misuse("nn_slice: NULL input");
        return NULL;
    }
    if ((ax = nn__axis("nn_slice", a, axis)) < 0) return NULL;
    len = a->shape[ax];
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (start < 0 || end > len || start > end) {
        nn__misuse("nn_slice: range [%d, %d) out of bounds for axis %d of %s", start, end, axis,
                   nn__ts(a));
        return NULL;
    }
    s = nn_shape_of(a);
    s.d[ax] = end - start;
    out = nn__op("nn_slice", &a, 1, s, nn__slice_backward);
    if (!out) return NULL;
    if (out->node) {
        out->node->iarg[0] = ax;
        out->node->iarg[1] = start;
    }
    nn__split_axis(a, ax, &outer, &len, &inner);
    for (o = 0; o < outer; o++)
        memcpy(out->data + o * (size_t)(end - start) * inner,
               a->data + (o * (size_t)len + (size_t)start) * inner,
               (size_t)(end - start) * inner * sizeof(float));
    return out;
}

/* --- dropout --- */

static void nn__mask_backward(nn__node *n) {
    float *ga = nn__in_grad(n, 0);
    const float *m = (const float *)n->saved, *g = n->out->grad;
    size_t i;
    if (ga)
        for (i = 0; i < n->out->numel; i++) ga[i] += g[i] * m[i];
}

/* The one validator of dropout's p, for nn_dropout and nn_dropout_op. */
static int nn__dropout_check(const char *op, float p) {
    if (!(p >= 0.0f && p <= 1.0f)) {
        nn__misuse("%s: p must be in [0,1], got %g", op, (double)p);
        return 0;
    }
    return 1;
}

NNDEF nn_tensor *nn_dropout_op(nn_tensor *a, float p, int training) {
    nn_tensor *out;
    nn__pcg *r;
    float *mask, scale;
    size_t i;
    if (!nn__dropout_check("nn_dropout_op", p)) return NULL;
    if (!a) {
        nn__misuse("nn_dropout_op: NULL input");
        return NULL;
    }
    if (!training || p == 0.0f) return a;
    out = nn__op("nn_dropout_op", &a, 1, nn_shape_of(a), nn__mask_backward);
    if (!out) return NULL;
    mask = (float *)nn__scratch(out, a->numel * sizeof(float));
    if (!mask) return NULL;
    scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    r = &nn__rng()->pcg;
    for (i = 0; i < a->numel; i++) {
        mask[i] = nn__pcg_uniform(r) < p ? 0.0f : scale;
        out->data[i] = a->data[i] * mask[i];
    }
    if (out->node) out->node->saved = mask;
    return out;
}

NNDEF void nn_argmax_rows(const nn_tensor *a, int *out) {
    int r, rows, cols;
    if (!a || a->ndim != 2 || !out) {
        nn__misuse("nn_argmax_rows: needs a 2-D tensor and an output array, got %s", nn__ts(a));
        return;
    }
    rows = a->shape[0];
    cols = a->shape[1];
    if (nn__stale("nn_argmax_rows", "the input", -1, a)) return;
    for (r = 0; r < rows; r++)
        out[r] = cols > 0 ? nn__argmax_strided(a->data + (size_t)r * cols, cols, 1) : 0;
}

/* ===== >>losses (implementation) ========================================= */

/* Every loss goes through one engine.  The forward computes each output
   value l[o] and the local derivatives J of l with respect to each input
   that needs a gradient; the backward scales them by the output's gradient.
   An input's J holds P pairs q: q's output is o(q) = q / (a S) * S + q % S
   and its input element is e(q) = q / b.  Element-wise: a = S = b = 1.  A
   class-indexed input [N,C,S] whose loss is [N,S]: a = C.  A broadcast var
   (one value per b outputs): P = outputs, b > 1. */
typedef struct nn__lpart {
    float *J;
    size_t P, a, S, b;
} nn__lpart;

typedef struct nn__lsave {
    nn__lpart part[3];
    float scale;   /* reduced output: d out / d l[o] */
    int none;      /* no reduction: d out[o] / d l[o] = 1 */
} nn__lsave;

typedef struct nn__loss {
    nn_tensor *out;
    nn__lsave *s;  /* NULL when no gradient is recorded */
    float *l;      /* M per-output values (out->data without reduction) */
    size_t M;
    nn_reduction red;
} nn__loss;

static void nn__loss_backward(nn__node *n) {
    const nn__lsave *s = (const nn__lsave *)n->saved;
    const float *go = n->out->grad;
    float g0 = s->none ? 0.0f : go[0] * s->scale;
    int k;
    for (k = 0; k < n->nin; k++) {
        const nn__lpart *pt = &s->part[k];
        float beta, *gx;
        size_t q;
        if (!pt->J) continue;
        gx = nn__in_grad_w(n, k, &beta);
        if (!gx) continue;
        if (beta == 0.0f && !s->none && pt->b == 1) {
            for (q = 0; q < pt->P; q++) gx[q] = g0 * pt->J[q];
            continue;
        }
        if (beta == 0.0f) memset(gx, 0, n->in[k]->numel * sizeof(float));
        if (!s->none && pt->b == 1) {
            nn__axpy(pt->P, g0, pt->J, gx);
        } else if (!s->none) {
            for (q = 0; q < pt->P; q++) gx[q / pt->b] += g0 * pt->J[q];
        } else if (pt->a == 1 && pt->S == 1 && pt->b == 1) {
            for (q = 0; q < pt->P; q++) gx[q] += go[q] * pt->J[q];
        } else {
            size_t aS = pt->a * pt->S;
            for (q = 0; q < pt->P; q++)
                gx[q / pt->b] += go[q / aS * pt->S + q % pt->S] * pt->J[q];
        }
    }
}

/* Misuse unless red is a reduction the loss takes; 0 then. */
static int nn__loss_red_ok(const char *op, nn_reduction red, int batchmean) {
    if (red == NN_REDUCE_MEAN || red == NN_REDUCE_SUM || red == NN_REDUCE_NONE ||
        (batchmean && red == NN_REDUCE_BATCHMEAN))
        return 1;
    nn__misuse("%s: reduction %d is not NN_REDUCE_MEAN (0), NN_REDUCE_SUM (1) or NN_REDUCE_NONE "
               "(2)%s", op, (int)red, batchmean ? " or NN_REDUCE_BATCHMEAN (3)" : "");
    return 0;
}

/* Make the output (the per-output shape ls without reduction, else a
   scalar) and the per-output values; 0 after a report. */
static int nn__loss_begin(nn__loss *L, const char *op, nn_tensor **in, int nin, nn_shape ls,
                          nn_reduction red) {
    int none = red == NN_REDUCE_NONE;
    memset(L, 0, sizeof *L);
    L->red = red;
    L->out = nn__op(op, in, nin, none ? ls : nn_shape_scalar(), nn__loss_backward);
    if (!L->out) return 0;
    if (!nn__shape_numel(op, ls, &L->M)) return 0;
    L->l = none ? L->out->data : (float *)nn__scratch(L->out, L->M * sizeof(float));
    if (!L->l) return 0;
    if (L->out->node) {
        L->s = (nn__lsave *)nn__scratch(L->out, sizeof(nn__lsave));
        if (!L->s) return 0;
        memset(L->s, 0, sizeof *L->s);
        L->s->none = none;
        L->out->node->saved = L->s;
    }
    return 1;
}

/* Input k's J of P pairs (layout a, S, b), or NULL when no gradient flows
   to it.  *fail is set when memory runs out. */
static float *nn__loss_J(nn__loss *L, int k, size_t P, size_t a, size_t S, size_t b, int *fail) {
    nn__lpart *pt;
    if (!L->s || !(L->out->node->in[k]->flags & NN_TENSOR_REQUIRES_GRAD)) return NULL;
    pt = &L->s->part[k];
    pt->J = (float *)nn__scratch(L->out, P * sizeof(float));
    if (!pt->J) *fail = 1;
    pt->P = P;
    pt->a = a;
    pt->S = S;
    pt->b = b;
    return pt->J;
}

/* Reduce: the sum of l, divided by denom for a mean.  Returns the output. */
static nn_tensor *nn__loss_end(nn__loss *L, double denom) {
    double total = 0.0;
    size_t i;
    if (L->red == NN_REDUCE_NONE) return L->out;
    for (i = 0; i < L->M; i++) total += (double)L->l[i];
    if (L->red == NN_REDUCE_SUM) denom = 1.0;
    L->out->data[0] = (float)(total / denom);
    if (L->s) L->s->scale = (float)(1.0 / denom);
    return L->out;
}

static int nn__same_shape(const nn_tensor *a, const nn_tensor *b) {
    int d;
    if (a->ndim != b->ndim) return 0;
    for (d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* x's shape without its last dimension (a scalar's shape for 1-D). */
static nn_shape nn__shape_drop_last(const nn_tensor *x) {
    nn_shape s = nn_shape_of(x);
    if (s.ndim > 0) s.ndim--;
    return s;
}

/* A class-indexed input [N,C,d...]: N, C, S = prod(d...) and the per-sample
   loss shape [N,d...]; 0 after a report. */
static int nn__class_layout(const char *op, const char *what, const nn_tensor *x, int *N, int *C,
                            size_t *S, nn_shape *ls) {
    int d;
    if (x->ndim < 2 || x->shape[1] < 1) {
        nn__misuse("%s: %s must be [N,C] or [N,C,d...] with C >= 1, got %s", op, what, nn__ts(x));
        return 0;
    }
    *N = x->shape[0];
    *C = x->shape[1];
    *S = 1;
    ls->ndim = x->ndim - 1;
    ls->d[0] = x->shape[0];
    for (d = 2; d < x->ndim; d++) {
        *S *= (size_t)x->shape[d];
        ls->d[d - 1] = x->shape[d];
    }
    return 1;
}

/* Labels (n of them) in [0,C) or equal to ignore (when allowed); 0 after a
   report naming the label, its position and x's shape. */
static int nn__labels_ok(const char *op, const int *labels, size_t n, int C, int allow_ignore,
                         int ignore, const nn_tensor *x) {
    size_t i;
    for (i = 0; i < n; i++) {
        int y = labels[i];
        if ((y < 0 || y >= C) && !(allow_ignore && y == ignore)) {
            if (allow_ignore)
                nn__misuse("%s: label %d at %zu is outside [0,%d) and is not ignore_index %d, "
                           "for input %s", op, y, i, C, ignore, nn__ts(x));
            else
                nn__misuse("%s: label %d at %zu is outside [0,%d) for input %s", op, y, i, C,
                           nn__ts(x));
            return 0;
        }
    }
    return 1;
}

/* The log-softmax of one class row (C values, stride S) into lq, and its
   softmax into q. */
static void nn__loss_logsoftmax(const float *x, size_t S, int C, float *row, float *lq, float *q) {
    const float *r = x;
    float mx, sum, lse;
    int c;
    if (S != 1) {
        for (c = 0; c < C; c++) row[c] = x[(size_t)c * S];
        r = row;
    }
    mx = nn__max_array(r, (size_t)C);
    sum = nn__exp_shift_sum(r, mx, q, (size_t)C);
    lse = mx + logf(sum);
    for (c = 0; c < C; c++) {
        lq[c] = r[c] - lse;
        q[c] /= sum;
    }
}

/* Cross-entropy (logsoftmax 1) or NLL (0) at integer labels. */
static nn_tensor *nn__class_loss(const char *op, nn_tensor *x, const int *labels, float eps,
                                 nn_reduction red, const float *w, int ignore, int logsoftmax) {
    nn__loss L;
    nn_shape ls;
    nn_tensor *in[1];
    float *J, *row, *q;
    double W = 0.0, wsum = 0.0;
    size_t S, s, cnt;
    int N, C, n, c, fail = 0;
    in[0] = x;
    if (!x) {
        nn__misuse("%s: input is NULL", op);
        return NULL;
    }
    if (!nn__class_layout(op, logsoftmax ? "logits" : "log_probs", x, &N, &C, &S, &ls) ||
        !nn__loss_red_ok(op, red, 0))
        return NULL;
    if (!labels) {
        nn__misuse("%s: labels is NULL for input %s", op, nn__ts(x));
        return NULL;
    }
    if (!(eps >= 0.0f && eps <= 1.0f)) {
        nn__misuse("%s: label_smoothing must be in [0,1], got %g", op, (double)eps);
        return NULL;
    }
    cnt = (size_t)N * S;
    if (!nn__labels_ok(op, labels, cnt, C, 1, ignore, x)) return NULL;
    if (!nn__loss_begin(&L, op, in, 1, ls, red)) return NULL;
    J = nn__loss_J(&L, 0, x->numel, (size_t)C, S, 1, &fail);
    row = (float *)nn__scratch(L.out, 2 * (size_t)C * sizeof(float));
    if (fail || !row) return NULL;
    q = row + C;
    if (w)
        for (c = 0; c < C; c++) wsum += (double)w[c];
    else
        wsum = (double)C;
    for (n = 0; n < N; n++) {
        for (s = 0; s < S; s++) {
            size_t o = (size_t)n * S + s, base = (size_t)n * C * S + s;
            const float *xr = x->data + base;
            int y = labels[o];
            float wy, a, b, l;
            if (y == ignore) {
                L.l[o] = 0.0f;
                if (J)
                    for (c = 0; c < C; c++) J[base + (size_t)c * S] = 0.0f;
                continue;
            }
            wy = w ? w[y] : 1.0f;
            W += (double)wy;
            if (!logsoftmax) {
                L.l[o] = -wy * xr[(size_t)y * S];
                if (J) {
                    for (c = 0; c < C; c++) J[base + (size_t)c * S] = 0.0f;
                    J[base + (size_t)y * S] = -wy;
                }
                continue;
            }
            /* l = -a lq[y] - b sum_c w_c lq[c], a = (1-eps) w[y], b = eps/C, with
               lq = x - lse, lse = max + log sum e^(x - max) (stable). */
            {
                const float *r = xr;
                float *e = (J && S == 1) ? J + base : q, mx, sum, lse, f;
                if (S != 1) {
                    for (c = 0; c < C; c++) row[c] = xr[(size_t)c * S];
                    r = row;
                }
                mx = nn__max_array(r, (size_t)C);
                sum = nn__exp_shift_sum(r, mx, e, (size_t)C);
                lse = mx + logf(sum);
                a = (1.0f - eps) * wy;
                b = eps / (float)C;
                l = -a * (r[y] - lse);
                if (eps > 0.0f) {
                    double wr = 0.0;
                    if (w)
                        for (c = 0; c < C; c++) wr += (double)w[c] * (double)r[c];
                    else
                        wr = nn__sum_array(r, (size_t)C);
                    l -= b * (float)(wr - (double)lse * wsum);
                }
                L.l[o] = l;
                if (!J) continue;
                /* d l / d x_c = a (q_c - [c = y]) + b (sum w) q_c - b w_c. */
                f = (a + b * (float)wsum) / sum;
                if (S == 1) {
                    for (c = 0; c < C; c++) e[c] *= f;
                    if (eps > 0.0f)
                        for (c = 0; c < C; c++) e[c] -= b * (w ? w[c] : 1.0f);
                } else {
                    for (c = 0; c < C; c++)
                        J[base + (size_t)c * S] = e[c] * f - b * (w ? w[c] : 1.0f);
                }
                J[base + (size_t)y * S] -= a;
            }
        }
    }
    return nn__loss_end(&L, W);
}

NNDEF nn_tensor *nn_cross_entropy(nn_tensor *logits, const int *labels, nn_ce_opts opts) {
    return nn__class_loss("nn_cross_entropy", logits, labels, opts.label_smoothing,
                          opts.reduction, opts.weight,
                          opts.use_ignore_index ? opts.ignore_index : -100, 1);
}

NNDEF nn_tensor *nn_nll_loss(nn_tensor *log_probs, const int *labels, nn_nll_opts opts) {
    return nn__class_loss("nn_nll_loss", log_probs, labels, 0.0f, opts.reduction, opts.weight,
                          opts.use_ignore_index ? opts.ignore_index : -100, 0);
}

NNDEF nn_tensor *nn_cross_entropy_soft(nn_tensor *logits, nn_tensor *target_probs,
                                       nn_ce_opts opts) {
    const char *op = "nn_cross_entropy_soft";
    nn__loss L;
    nn_shape ls;
    nn_tensor *in[2];
    float *Jx, *Jt, *row, *lq, *q, eps = opts.label_smoothing;
    const float *w = opts.weight;
    size_t S, s;
    int N, C, n, c, fail = 0;
    in[0] = logits;
    in[1] = target_probs;
    if (!logits || !target_probs) {
        nn__misuse("%s: logits %s and target_probs %s must not be NULL", op, nn__ts(logits),
                   nn__ts(target_probs));
        return NULL;
    }
    if (!nn__class_layout(op, "logits", logits, &N, &C, &S, &ls) ||
        !nn__loss_red_ok(op, opts.reduction, 0))
        return NULL;
    if (!nn__same_shape(logits, target_probs)) {
        nn__misuse("%s: target_probs %s must have the logits' shape %s", op,
                   nn__ts(target_probs), nn__ts(logits));
        return NULL;
    }
    if (!(eps >= 0.0f && eps <= 1.0f)) {
        nn__misuse("%s: label_smoothing must be in [0,1], got %g", op, (double)eps);
        return NULL;
    }
    if (!nn__loss_begin(&L, op, in, 2, ls, opts.reduction)) return NULL;
    Jx = nn__loss_J(&L, 0, logits->numel, (size_t)C, S, 1, &fail);
    Jt = nn__loss_J(&L, 1, logits->numel, (size_t)C, S, 1, &fail);
    row = (float *)nn__scratch(L.out, 3 * (size_t)C * sizeof(float));
    if (fail || !row) return NULL;
    lq = row + C;
    q = lq + C;
    for (n = 0; n < N; n++) {
        for (s = 0; s < S; s++) {
            size_t base = (size_t)n * C * S + s;
            const float *t = target_probs->data + base;
            double l = 0.0, wt = 0.0;
            nn__loss_logsoftmax(logits->data + base, S, C, row, lq, q);
            /* l = -sum_c w_c t'_c lq_c, t' = (1-eps) t + eps/C. */
            for (c = 0; c < C; c++) {
                float wc = w ? w[c] : 1.0f;
                float tc = (1.0f - eps) * t[(size_t)c * S] + eps / (float)C;
                l -= (double)(wc * tc) * (double)lq[c];
                wt += (double)(wc * tc);
            }
            L.l[(size_t)n * S + s] = (float)l;
            for (c = 0; c < C && (Jx || Jt); c++) {
                size_t e = base + (size_t)c * S;
                float wc = w ? w[c] : 1.0f;
                float tc = (1.0f - eps) * t[(size_t)c * S] + eps / (float)C;
                if (Jx) Jx[e] = q[c] * (float)wt - wc * tc;
                if (Jt) Jt[e] = -(1.0f - eps) * wc * lq[c];
            }
        }
    }
    return nn__loss_end(&L, (double)N * (double)S);
}

/* --- element-wise losses of (input, target) --- */

enum { NN__L_MSE, NN__L_L1, NN__L_SMOOTH_L1, NN__L_HUBER, NN__L_KL, NN__L_KL_LOG };

static float nn__signf(float d) { return d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f); }

static nn_tensor *nn__pointwise_loss(const char *op, int kind, nn_tensor *x, nn_tensor *y,
                                     float par, nn_reduction red) {
    nn__loss L;
    nn_tensor *in[2];
    float *Jx, *Jy;
    size_t i;
    int fail = 0;
    in[0] = x;
    in[1] = y;
    if (!x || !y || !nn__same_shape(x, y)) {
        nn__misuse("%s: input %s and target %s must have the same shape", op, nn__ts(x), nn__ts(y));
        return NULL;
    }
    if (!nn__loss_red_ok(op, red, kind == NN__L_KL || kind == NN__L_KL_LOG)) return NULL;
    if (!nn__loss_begin(&L, op, in, 2, nn_shape_of(x), red)) return NULL;
    Jx = nn__loss_J(&L, 0, x->numel, 1, 1, 1, &fail);
    Jy = nn__loss_J(&L, 1, x->numel, 1, 1, 1, &fail);
    if (fail) return NULL;
    for (i = 0; i < x->numel; i++) {
        float a = x->data[i], t = y->data[i], d = a - t, ad = fabsf(d), l, gx, gy;
        switch (kind) {
        case NN__L_MSE: l = d * d; gx = 2.0f * d; gy = -gx; break;
        case NN__L_L1: l = ad; gx = nn__signf(d); gy = -gx; break;
        case NN__L_SMOOTH_L1: /* par = beta */
            if (ad < par) {
                l = 0.5f * d * d / par;
                gx = d / par;
            } else {
                l = ad - 0.5f * par;
                gx = nn__signf(d);
            }
            gy = -gx;
            break;
        case NN__L_HUBER: /* par = delta */
            if (ad < par) {
                l = 0.5f * d * d;
                gx = d;
            } else {
                l = par * (ad - 0.5f * par);
                gx = par * nn__signf(d);
            }
            gy = -gx;
            break;
        case NN__L_KL: /* xlogy(t, t) - t a */
            l = (t == 0.0f ? 0.0f : t * logf(t)) - t * a;
            gx = -t;
            gy = (t == 0.0f ? 0.0f : logf(t) + 1.0f) - a;
            break;
        default: { /* log target: e^t (t - a) */
            float et = expf(t);
            l = et * (t - a);
            gx = -et;
            gy = l + et;
            break;
        }
        }
        L.l[i] = l;
        if (Jx) Jx[i] = gx;
        if (Jy) Jy[i] = gy;
    }
    return nn__loss_end(&L, red == NN_REDUCE_BATCHMEAN ? (double)(x->ndim ? x->shape[0] : 1)
                                                        : (double)x->numel);
}

NNDEF nn_tensor *nn_mse(nn_tensor *pred, nn_tensor *target) {
    return nn__pointwise_loss("nn_mse", NN__L_MSE, pred, target, 0.0f, NN_REDUCE_MEAN);
}

NNDEF nn_tensor *nn_mse_loss(nn_tensor *pred, nn_tensor *target, nn_reduction reduction) {
    return nn__pointwise_loss("nn_mse_loss", NN__L_MSE, pred, target, 0.0f, reduction);
}

NNDEF nn_tensor *nn_l1_loss(nn_tensor *pred, nn_tensor *target, nn_reduction reduction) {
    return nn__pointwise_loss("nn_l1_loss", NN__L_L1, pred, target, 0.0f, reduction);
}

NNDEF nn_tensor *nn_smooth_l1_loss(nn_tensor *pred, nn_tensor *target, nn_smooth_l1_opts opts) {
    float beta = opts.beta == 0.0f ? 1.0f : opts.beta;
    if (!(beta > 0.0f)) {
        nn__misuse("nn_smooth_l1_loss: beta must be > 0 (0 means 1; beta 0 is nn_l1_loss), got %g",
                   (double)opts.beta);
        return NULL;
    }
    return nn__pointwise_loss("nn_smooth_l1_loss", NN__L_SMOOTH_L1, pred, target, beta,
                              opts.reduction);
}

NNDEF nn_tensor *nn_huber_loss(nn_tensor *pred, nn_tensor *target, nn_huber_opts opts) {
    float delta = opts.delta == 0.0f ? 1.0f : opts.delta;
    if (!(delta > 0.0f)) {
        nn__misuse("nn_huber_loss: delta must be > 0 (0 means 1), got %g", (double)opts.delta);
        return NULL;
    }
    return nn__pointwise_loss("nn_huber_loss", NN__L_HUBER, pred, target, delta, opts.reduction);
}

NNDEF nn_tensor *nn_kl_div(nn_tensor *input, nn_tensor *target, nn_kl_div_opts opts) {
    return nn__pointwise_loss("nn_kl_div", opts.log_target ? NN__L_KL_LOG : NN__L_KL, input,
                              target, 0.0f, opts.reduction);
}

/* --- binary cross-entropy --- */

/* w broadcast to x's shape (NumPy rules, w not larger than x) into scratch of
   out's graph: *dst, or NULL for a NULL w.  0 after a report (out NULL: only
   check the shapes). */
static int nn__loss_expand(const char *op, const char *what, const nn_tensor *w,
                           const nn_tensor *x, nn_tensor *out, const float **dst) {
    size_t stride[NN_MAX_DIMS], st = 1, i;
    float *e;
    int d;
    if (dst) *dst = NULL;
    if (!w) return 1;
    if (w->ndim > x->ndim || (w->flags & NN_TENSOR_INT64)) goto bad;
    for (d = x->ndim - 1; d >= 0; d--) {
        int dw = d - (x->ndim - w->ndim), sz = dw >= 0 ? w->shape[dw] : 1;
        if (sz != 1 && sz != x->shape[d]) goto bad;
        stride[d] = sz == 1 ? 0 : st;
        st *= (size_t)sz;
    }
    if (!out) return 1;
    e = (float *)nn__scratch(out, x->numel * sizeof(float));
    if (!e) return 0;
    for (i = 0; i < x->numel; i++) {
        size_t rem = i, off = 0;
        for (d = x->ndim - 1; d >= 0; d--) {
            off += (rem % (size_t)x->shape[d]) * stride[d];
            rem /= (size_t)x->shape[d];
        }
        e[i] = w->data[off];
    }
    *dst = e;
    return 1;
bad:
    nn__misuse("%s: %s %s does not broadcast to the input's shape %s", op, what, nn__ts(w),
               nn__ts(x));
    return 0;
}

static nn_tensor *nn__bce(const char *op, nn_tensor *x, nn_tensor *y, nn_bce_opts opts,
                          int logits) {
    nn__loss L;
    nn_tensor *in[2];
    const float *w, *pw;
    float *Jx, *Jy;
    size_t i;
    int fail = 0;
    in[0] = x;
    in[1] = y;
    if (!x || !y || !nn__same_shape(x, y)) {
        nn__misuse("%s: input %s and target %s must have the same shape", op, nn__ts(x), nn__ts(y));
        return NULL;
    }
    if (!nn__loss_red_ok(op, opts.reduction, 0) ||
        !nn__loss_expand(op, "weight", opts.weight, x, NULL, NULL) ||
        !nn__loss_expand(op, "pos_weight", opts.pos_weight, x, NULL, NULL))
        return NULL;
    if (!logits && opts.pos_weight) {
        nn__misuse("%s: pos_weight is for nn_binary_cross_entropy_with_logits only", op);
        return NULL;
    }
    for (i = 0; !logits && i < x->numel; i++) {
        if (!(x->data[i] >= 0.0f && x->data[i] <= 1.0f)) {
            nn__misuse("%s: input %s must hold probabilities in [0,1], element %zu is %g", op,
                       nn__ts(x), i, (double)x->data[i]);
            return NULL;
        }
    }
    if (!nn__loss_begin(&L, op, in, 2, nn_shape_of(x), opts.reduction)) return NULL;
    if (!nn__loss_expand(op, "weight", opts.weight, x, L.out, &w) ||
        !nn__loss_expand(op, "pos_weight", opts.pos_weight, x, L.out, &pw))
        return NULL;
    Jx = nn__loss_J(&L, 0, x->numel, 1, 1, 1, &fail);
    Jy = nn__loss_J(&L, 1, x->numel, 1, 1, 1, &fail);
    if (fail) return NULL;
    for (i = 0; i < x->numel; i++) {
        float a = x->data[i], t = y->data[i], wi = w ? w[i] : 1.0f, l, gx, gy;
        if (!logits) {
            /* -(t log a + (1-t) log(1-a)), logs clamped at -100. */
            float la = NN__MAX(logf(a), -100.0f), lb = NN__MAX(logf(1.0f - a), -100.0f);
            l = -(t * la + (1.0f - t) * lb);
            gx = (a - t) / NN__MAX((1.0f - a) * a, 1e-12f);
            gy = logf(1.0f - a) - logf(a);
        } else {
            /* (1-t) a + (1 + (p-1) t) softplus(-a); softplus(-a) stably. */
            float p = pw ? pw[i] : 1.0f, sp = log1pf(expf(-fabsf(a))) + NN__MAX(-a, 0.0f);
            float sg = a >= 0.0f ? 1.0f / (1.0f + expf(-a)) : expf(a) / (1.0f + expf(a));
            l = (1.0f - t) * a + ((p - 1.0f) * t + 1.0f) * sp;
            gx = (p * t + 1.0f - t) * sg - p * t;
            gy = -a + (p - 1.0f) * sp;
        }
        L.l[i] = wi * l;
        if (Jx) Jx[i] = wi * gx;
        if (Jy) Jy[i] = wi * gy;
    }
    return nn__loss_end(&L, (double)x->numel);
}

NNDEF nn_tensor *nn_binary_cross_entropy(nn_tensor *probs, nn_tensor *target, nn_bce_opts opts) {
    return nn__bce("nn_binary_cross_entropy", probs, target, opts, 0);
}

NNDEF nn_tensor *nn_binary_cross_entropy_with_logits(nn_tensor *logits, nn_tensor *target,
                                                     nn_bce_opts opts) {
    return nn__bce("nn_binary_cross_entropy_with_logits", logits, target, opts, 1);
}

/* --- Gaussian negative log-likelihood --- */

NNDEF nn_tensor *nn_gaussian_nll_loss(nn_tensor *input, nn_tensor *target, nn_tensor *var,
                                      nn_gaussian_nll_opts opts) {
    const char *op = "nn_gaussian_nll_loss";
    nn__loss L;
    nn_tensor *in[3];
    float *Jx, *Jy, *Jv, eps = opts.eps == 0.0f ? 1e-6f : NN__MAX(opts.eps, 0.0f);
    float cst = opts.full ? 0.5f * logf(2.0f * (float)NN_PI) : 0.0f;
    size_t i, per = 1;
    int fail = 0;
    in[0] = input;
    in[1] = target;
    in[2] = var;
    if (!input || !target || !var || !nn__same_shape(input, target)) {
        nn__misuse("%s: input %s and target %s must have the same shape (var %s)", op,
                   nn__ts(input), nn__ts(target), nn__ts(var));
        return NULL;
    }
    if (!nn__same_shape(input, var)) {
        /* var without the last dimension, or with size 1 there. */
        int d, k = input->ndim - 1, ok = input->ndim >= 1 && (var->ndim == k || var->ndim == k + 1);
        for (d = 0; ok && d < k; d++) ok = var->shape[d] == input->shape[d];
        if (ok && var->ndim == k + 1) ok = var->shape[k] == 1;
        if (!ok) {
            nn__misuse("%s: var %s must have the input's shape %s, or it without (or with size 1 "
                       "in) the last dimension", op, nn__ts(var), nn__ts(input));
            return NULL;
        }
        per = (size_t)input->shape[k];
    }
    if (!nn__loss_red_ok(op, opts.reduction, 0)) return NULL;
    for (i = 0; i < var->numel; i++) {
        if (var->data[i] < 0.0f) {
            nn__misuse("%s: var %s has a negative entry (%g at element %zu)", op, nn__ts(var),
                       (double)var->data[i], i);
            return NULL;
        }
    }
    if (!nn__loss_begin(&L, op, in, 3, nn_shape_of(input), opts.reduction)) return NULL;
    Jx = nn__loss_J(&L, 0, input->numel, 1, 1, 1, &fail);
    Jy = nn__loss_J(&L, 1, input->numel, 1, 1, 1, &fail);
    Jv = nn__loss_J(&L, 2, input->numel, 1, 1, per, &fail);
    if (fail) return NULL;
    for (i = 0; i < input->numel; i++) {
        /* The clamp is outside autograd (PyTorch clamps under no_grad). */
        float v = NN__MAX(var->data[i / per], eps), d = input->data[i] - target->data[i];
        L.l[i] = 0.5f * (logf(v) + d * d / v) + cst;
        if (Jx) Jx[i] = d / v;
        if (Jy) Jy[i] = -d / v;
        if (Jv) Jv[i] = 0.5f * (1.0f / v - d * d / (v * v));
    }
    return nn__loss_end(&L, (double)input->numel);
}

/* --- margin losses --- */

NNDEF nn_tensor *nn_multi_margin_loss(nn_tensor *input, const int *labels,
                                      nn_multi_margin_opts opts) {
    const char *op = "nn_multi_margin_loss";
    nn__loss L;
    nn_tensor *in[1];
    float *J, margin = (opts.margin == 0.0f && !opts.zero_margin) ? 1.0f : opts.margin;
    int p = opts.p ? opts.p : 1, N, C, n, c, fail = 0;
    in[0] = input;
    if (!input || input->ndim < 1 || input->ndim > 2 || input->shape[input->ndim - 1] < 1) {
        nn__misuse("%s: input must be [N,C] (or [C], one sample) with C >= 1, got %s", op,
                   nn__ts(input));
        return NULL;
    }
    N = input->ndim == 2 ? input->shape[0] : 1;
    C = input->shape[input->ndim - 1];
    if (!labels) {
        nn__misuse("%s: labels is NULL for input %s", op, nn__ts(input));
        return NULL;
    }
    if (p != 1 && p != 2) {
        nn__misuse("%s: only p == 1 and p == 2 are supported, got p %d", op, opts.p);
        return NULL;
    }
    if (!nn__loss_red_ok(op, opts.reduction, 0) ||
        !nn__labels_ok(op, labels, (size_t)N, C, 0, 0, input) ||
        !nn__loss_begin(&L, op, in, 1, nn__shape_drop_last(input), opts.reduction))
        return NULL;
    J = nn__loss_J(&L, 0, input->numel, (size_t)C, 1, 1, &fail);
    if (fail) return NULL;
    for (n = 0; n < N; n++) {
        const float *x = input->data + (size_t)n * C;
        float *Jr = J ? J + (size_t)n * C : NULL;
        int y = labels[n];
        float wy = (opts.weight ? opts.weight[y] : 1.0f) / (float)C, gy = 0.0f;
        double l = 0.0;
        for (c = 0; c < C; c++) {
            float z = margin - x[y] + x[c], g = 0.0f;
            if (c != y && z > 0.0f) {
                l += (double)(wy * (p == 1 ? z : z * z));
                g = wy * (p == 1 ? 1.0f : 2.0f * z);
            }
            if (Jr) Jr[c] = g;
            gy -= g;
        }
        if (Jr) Jr[y] = gy;
        L.l[n] = (float)l;
    }
    return nn__loss_end(&L, (double)N);
}

NNDEF nn_tensor *nn_cosine_embedding_loss(nn_tensor *x1, nn_tensor *x2, nn_tensor *target,
                                          nn_margin_opts opts) {
    const char *op = "nn_cosine_embedding_loss";
    nn__loss L;
    nn_tensor *in[3];
    float *J1, *J2;
    int N, D, n, d, fail = 0;
    in[0] = x1;
    in[1] = x2;
    in[2] = target;
    if (!x1 || !x2 || !target || !nn__same_shape(x1, x2) ||
        !((x1->ndim == 2 && target->ndim == 1 && target->shape[0] == x1->shape[0]) ||
          (x1->ndim == 1 && target->ndim == 0))) {
        nn__misuse("%s: needs x1 and x2 [N,D] and target [N] (or [D] and a scalar), got x1 %s, "
                   "x2 %s, target %s", op, nn__ts(x1), nn__ts(x2), nn__ts(target));
        return NULL;
    }
    N = x1->ndim == 2 ? x1->shape[0] : 1;
    D = x1->shape[x1->ndim - 1];
    if (!nn__loss_red_ok(op, opts.reduction, 0) ||
        !nn__loss_begin(&L, op, in, 3, nn_shape_of(target), opts.reduction))
        return NULL;
    J1 = nn__loss_J(&L, 0, x1->numel, (size_t)D, 1, 1, &fail);
    J2 = nn__loss_J(&L, 1, x2->numel, (size_t)D, 1, 1, &fail);
    if (fail) return NULL;
    for (n = 0; n < N; n++) {
        const float *a = x1->data + (size_t)n * D, *b = x2->data + (size_t)n * D;
        float y = target->data[n], cs, den, m1, m2, l = 0.0f, g = 0.0f;
        double s = 0.0, q1 = 0.0, q2 = 0.0;
        for (d = 0; d < D; d++) {
            s += (double)a[d] * (double)b[d];
            q1 += (double)a[d] * (double)a[d];
            q2 += (double)b[d] * (double)b[d];
        }
        m1 = (float)q1 + 1e-12f;   /* PyTorch's EPSILON */
        m2 = (float)q2 + 1e-12f;
        den = sqrtf(m1 * m2);
        cs = (float)s / den;
        if (y == 1.0f) {
            l = 1.0f - cs;
            g = -1.0f;
        } else if (y == -1.0f && cs - opts.margin >= 0.0f) {
            l = cs - opts.margin;
            g = 1.0f;
        }
        L.l[n] = l;
        /* d cos / d x1 = x2 / den - cos x1 / m1, and the same for x2. */
        for (d = 0; d < D; d++) {
            if (J1) J1[(size_t)n * D + d] = g * (b[d] / den - cs * a[d] / m1);
            if (J2) J2[(size_t)n * D + d] = g * (a[d] / den - cs * b[d] / m2);
        }
    }
    return nn__loss_end(&L, (double)N);
}

NNDEF nn_tensor *nn_margin_ranking_loss(nn_tensor *x1, nn_tensor *x2, nn_tensor *target,
                                        nn_margin_opts opts) {
    const char *op = "nn_margin_ranking_loss";
    nn__loss L;
    nn_tensor *in[3];
    float *J1, *J2, *Jy;
    size_t i;
    int fail = 0;
    in[0] = x1;
    in[1] = x2;
    in[2] = target;
    if (!x1 || !x2 || !target || !nn__same_shape(x1, x2) || !nn__same_shape(x1, target)) {
        nn__misuse("%s: x1 %s, x2 %s and target %s must have the same shape", op, nn__ts(x1),
                   nn__ts(x2), nn__ts(target));
        return NULL;
    }
    if (!nn__loss_red_ok(op, opts.reduction, 0) ||
        !nn__loss_begin(&L, op, in, 3, nn_shape_of(x1), opts.reduction))
        return NULL;
    J1 = nn__loss_J(&L, 0, x1->numel, 1, 1, 1, &fail);
    J2 = nn__loss_J(&L, 1, x1->numel, 1, 1, 1, &fail);
    Jy = nn__loss_J(&L, 2, x1->numel, 1, 1, 1, &fail);
    if (fail) return NULL;
    for (i = 0; i < x1->numel; i++) {
        float y = target->data[i], d = x1->data[i] - x2->data[i], v = -y * d + opts.margin;
        float on = v >= 0.0f ? 1.0f : 0.0f;   /* clamp_min(0) passes the gradient at 0 */
        L.l[i] = NN__MAX(v, 0.0f);
        if (J1) J1[i] = -y * on;
        if (J2) J2[i] = y * on;
        if (Jy) Jy[i] = -d * on;
    }
    return nn__loss_end(&L, (double)x1->numel);
}

/* ||u - v + eps||_p over D values, and (when g) its gradient w.r.t. u. */
static float nn__pdist(const float *u, const float *v, int D, float p, float eps, float *g) {
    double acc = 0.0;
    float nrm;
    int d;
    for (d = 0; d < D; d++) {
        float z = u[d] - v[d] + eps;
        acc += p == 2.0f ? (double)z * (double)z
                         : (p == 1.0f ? fabs((double)z) : pow(fabs((double)z), (double)p));
    }
    nrm = (float)(p == 2.0f ? sqrt(acc) : (p == 1.0f ? acc : pow(acc, 1.0 / (double)p)));
    for (d = 0; g && d < D; d++) {
        float z = u[d] - v[d] + eps;
        if (p == 1.0f) g[d] = nn__signf(z);
        else if (nrm == 0.0f) g[d] = 0.0f;
        else if (p == 2.0f) g[d] = z / nrm;
        else g[d] = nn__signf(z) * powf(fabsf(z), p - 1.0f) / powf(nrm, p - 1.0f);
    }
    return nrm;
}

NNDEF nn_tensor *nn_triplet_margin_loss(nn_tensor *anchor, nn_tensor *positive,
                                        nn_tensor *negative, nn_triplet_opts opts) {
    const char *op = "nn_triplet_margin_loss";
    nn__loss L;
    nn_tensor *in[3];
    float *J[3], *gap, *gan, *gpn;
    float margin = (opts.margin == 0.0f && !opts.zero_margin) ? 1.0f : opts.margin;
    float p = opts.p == 0.0f ? 2.0f : opts.p;
    float eps = opts.eps == 0.0f ? 1e-6f : NN__MAX(opts.eps, 0.0f);
    size_t R, r;
    int D, d, k, fail = 0;
    in[0] = anchor;
    in[1] = positive;
    in[2] = negative;
    if (!anchor || !positive || !negative || anchor->ndim < 1 ||
        !nn__same_shape(anchor, positive) || !nn__same_shape(anchor, negative)) {
        nn__misuse("%s: anchor %s, positive %s and negative %s must have the same shape [N,D] "
                   "(or [D])", op, nn__ts(anchor), nn__ts(positive), nn__ts(negative));
        return NULL;
    }
    if (!(p > 0.0f) || p != p || p > 1e30f) {
        nn__misuse("%s: p must be finite and > 0 (0 means 2), got %g", op, (double)opts.p);
        return NULL;
    }
    if (!nn__loss_red_ok(op, opts.reduction, 0) ||
        !nn__loss_begin(&L, op, in, 3, nn__shape_drop_last(anchor), opts.reduction))
        return NULL;
    D = anchor->shape[anchor->ndim - 1];
    R = D ? anchor->numel / (size_t)D : 0;
    for (k = 0; k < 3; k++) J[k] = nn__loss_J(&L, k, anchor->numel, (size_t)D, 1, 1, &fail);
    gap = (float *)nn__scratch(L.out, 3 * (size_t)D * sizeof(float));
    if (fail || !gap) return NULL;
    gan = gap + D;
    gpn = gan + D;
    for (r = 0; r < R; r++) {
        const float *a = anchor->data + r * D, *ps = positive->data + r * D,
                    *ng = negative->data + r * D;
        int g = J[0] || J[1] || J[2];
        float dap = nn__pdist(a, ps, D, p, eps, g ? gap : NULL);
        float dan = nn__pdist(a, ng, D, p, eps, g ? gan : NULL), dn = dan, cn = 1.0f, cs = 0.0f;
        float v, on;
        if (opts.swap) {
            /* min(d(a,n), d(p,n)); a tie splits the gradient (torch.minimum). */
            float dpn = nn__pdist(ps, ng, D, p, eps, g ? gpn : NULL);
            if (dpn < dan) {
                dn = dpn;
                cn = 0.0f;
                cs = 1.0f;
            } else if (dpn == dan) {
                cn = cs = 0.5f;
            }
        }
        v = margin + dap - dn;
        on = v >= 0.0f ? 1.0f : 0.0f;
        L.l[r] = NN__MAX(v, 0.0f);
        for (d = 0; g && d < D; d++) {
            float sw = cs != 0.0f ? cs * gpn[d] : 0.0f;
            if (J[0]) J[0][r * D + d] = on * (gap[d] - cn * gan[d]);
            if (J[1]) J[1][r * D + d] = on * (-gap[d] - sw);
            if (J[2]) J[2][r * D + d] = on * (cn * gan[d] + sw);
        }
    }
    return nn__loss_end(&L, (double)R);
}

/* ===== >>modules (implementation) ======================================== */

NNDEF nn_module *nn_module_new(const char *type, nn_forward_fn forward) {
    nn_module *m = (nn_module *)nn__calloc(1, sizeof(nn_module));
    if (!m) return NULL;
    m->type = type ? type : "Module";
    m->forward = forward;
    m->training = 1;
    return m;
}

/* Drop one module's hold on t; the last holder frees it. */
static void nn__tensor_release(nn_tensor *t) {
    if (!t) return;
    if (t->refs > 1) {
        t->refs--;
        return;
    }
    t->refs = 0;
    nn_tensor_free(t);
}

/* Append (a copy of name, t) to one of m's lists; m owns t from now on, so
   t is freed when the append fails (unless another module holds it). */
static nn_tensor *nn__add_named(const char *op, nn_module *m, nn_param **list, int *n,
                                const char *name, nn_tensor *t) {
    nn_param *p;
    char *nm;
    if (!name || !t || !(t->flags & NN_TENSOR_PERSISTENT)) {
        nn__misuse("%s: needs a module, a name and a persistent tensor (made with g == NULL), "
                   "got %s", op, nn__ts(t));
        return NULL;
    }
    p = (nn_param *)NN_REALLOC(*list, sizeof(nn_param) * (size_t)(*n + 1));
    if (p) *list = p;
    nm = p ? nn__strdup(name) : NULL;
    if (!nm) {
        nn__error(NN_ERR_OOM, "%s: out of memory adding \"%s\"", op, name);
        if (t->refs == 0) nn_tensor_free(t);
        return NULL;
    }
    p[*n].name = nm;
    p[*n].tensor = t;
    (*n)++;
    t->refs++;
    m->version++;
    return t;
}

NNDEF nn_tensor *nn_module_add_param(nn_module *m, const char *name, nn_tensor *t) {
    if (!m) {
        nn__misuse("nn_module_add_param: NULL module");
        return NULL;
    }
    /* A new parameter needs its gradient buffer now: steps never allocate.
       A shared one (tied weights) keeps its settings. */
    if (t && (t->flags & NN_TENSOR_PERSISTENT) && t->refs == 0 && !nn_requires_grad(t, 1)->grad) {
        nn__error(NN_ERR_OOM, "nn_module_add_param: out of memory for the gradient of \"%s\"",
                  name ? name : "?");
        nn_tensor_free(t);
        return NULL;
    }
    return nn__add_named("nn_module_add_param", m, &m->params, &m->nparams, name, t);
}

NNDEF nn_tensor *nn_module_add_buffer(nn_module *m, const char *name, nn_tensor *t) {
    if (!m) {
        nn__misuse("nn_module_add_buffer: NULL module");
        return NULL;
    }
    return nn__add_named("nn_module_add_buffer", m, &m->buffers, &m->nbuffers, name, t);
}

/* 1 when m is c or one of its descendants. */
static int nn__module_reaches(const nn_module *c, const nn_module *m) {
    int i;
    if (c == m) return 1;
    for (i = 0; i < c->nchildren; i++)
        if (nn__module_reaches(c->children[i], m)) return 1;
    return 0;
}

static void nn__module_release(nn_module *m);

NNDEF nn_module *nn_module_add_child(nn_module *m, const char *name, nn_module *c) {
    nn_module **ch;
    char **names, *nm;
    if (!m || !name || !c) {
        nn__misuse("nn_module_add_child: needs a module, a name and a child");
        return NULL;
    }
    if (nn__module_reaches(c, m)) {
        nn__misuse("nn_module_add_child: adding %s \"%s\" to %s would make a module its own "
                   "descendant", c->type, name, m->type);
        return NULL;
    }
    /* Out of memory below frees c: the caller handed it over. */
    ch = (nn_module **)NN_REALLOC(m->children, sizeof(nn_module *) * (size_t)(m->nchildren + 1));
    if (ch) m->children = ch;
    names = (char **)NN_REALLOC(m->child_names, sizeof(char *) * (size_t)(m->nchildren + 1));
    if (names) m->child_names = names;
    nm = nn__strdup(name);
    if (!ch || !names || !nm) {
        nn__free(nm);
        if (c->refs == 0) nn_module_free(c);
        nn__error(NN_ERR_OOM, "nn_module_add_child: out of memory");
        return NULL;
    }
    m->children[m->nchildren] = c;
    m->child_names[m->nchildren] = nm;
    m->nchildren++;
    c->refs++;
    m->version++;
    return c;
}

/* This thread's forward hook (nn_set_forward_hook) and its user pointer. */
static NN__THREAD_LOCAL nn_forward_hook nn__fwd_hook = NULL;
static NN__THREAD_LOCAL void *nn__fwd_hook_user = NULL;

NNDEF nn_tensor *nn_forward(nn_module *m, nn_tensor *x) {
    const char *outer = nn__fwd_type;
    nn_tensor *y;
    if (!m || !x || !m->forward) {
        nn__misuse("nn_forward: %s", !m ? "NULL module" : !x ? "NULL input" :
                   "the module has no forward function (nn_module_new with NULL forward)");
        return NULL;
    }
    nn__fwd_type = m->type ? m->type : "module";
    y = m->forward(m, x);
    nn__fwd_type = outer;
    if (nn__fwd_hook) nn__fwd_hook(m, x, y, nn__fwd_hook_user);
    return y;
}

NNDEF nn_forward_hook nn_set_forward_hook(nn_forward_hook hook, void *user, void **prev_user) {
    nn_forward_hook prev = nn__fwd_hook;
    if (prev_user) *prev_user = nn__fwd_hook_user;
    nn__fwd_hook = hook;
    nn__fwd_hook_user = user;
    return prev;
}

NNDEF void nn_train_mode(nn_module *m, int on) {
    int i;
    if (!m) return;
    m->training = on != 0;
    for (i = 0; i < m->nchildren; i++) nn_train_mode(m->children[i], on);
}

NNDEF int nn_is_training(const nn_module *m) { return m ? m->training : 0; }

/* Save every module's own training flag (nn__train_save), and put them back
   (nn__train_restore) after the tree ran in evaluation mode. */
static void nn__train_save(nn_module *m) {
    int i;
    m->saved_training = m->training;
    for (i = 0; i < m->nchildren; i++) nn__train_save(m->children[i]);
}
static void nn__train_restore(nn_module *m) {
    int i;
    m->training = m->saved_training;
    for (i = 0; i < m->nchildren; i++) nn__train_restore(m->children[i]);
}

static void nn__free_list(nn_param **list, int *n) {
    int i;
    for (i = 0; i < *n; i++) nn__free((void *)(*list)[i].name);
    nn__free(*list);
    *list = NULL;
    *n = 0;
}

/* a + b + c in a new string. */
static char *nn__concat3(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = (char *)nn__malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

/* Append m's parameters or buffers (prefix + local name), then its
   children's, to *list; a tensor already listed keeps its first name. */
static int nn__collect(nn_module *m, int buffers, const char *prefix, nn_param **list, int *n) {
    int i, j, own = buffers ? m->nbuffers : m->nparams;
    const nn_param *src = buffers ? m->buffers : m->params;
    for (i = 0; i < own; i++) {
        nn_param *grown;
        char *nm;
        for (j = 0; j < *n && (*list)[j].tensor != src[i].tensor; j++) {}
        if (j < *n) continue;
        if (!(grown = (nn_param *)NN_REALLOC(*list, sizeof(nn_param) * (size_t)(*n + 1)))) return 0;
        *list = grown;
        if (!(nm = nn__concat3(prefix, src[i].name, ""))) return 0;
        grown[*n].name = nm;
        grown[*n].tensor = src[i].tensor;
        (*n)++;
    }
    for (i = 0; i < m->nchildren; i++) {
        char *sub = nn__concat3(prefix, m->child_names[i], ".");
        int ok = sub && nn__collect(m->children[i], buffers, sub, list, n);
        nn__free(sub);
        if (!ok) return 0;
    }
    return 1;
}

/* A signature of m's tree that grows with every add anywhere in it (each
   module's version counts once per path to it). */
static unsigned long nn__tree_sig(const nn_module *m) {
    unsigned long s = m->version + 1;
    int i;
    for (i = 0; i < m->nchildren; i++) s += nn__tree_sig(m->children[i]);
    return s;
}

/* m's cached list, rebuilt only when the tree changed since it was made. */
static nn_param *nn__named(const char *op, nn_module *m, int buffers, int *count) {
    nn_param **list;
    int *n;
    unsigned long sig, *have;
    if (count) *count = 0;
    if (!m) {
        nn__misuse("%s: NULL module", op);
        return NULL;
    }
    list = buffers ? &m->allbuf : &m->all;
    n = buffers ? &m->nallbuf : &m->nall;
    have = buffers ? &m->allbuf_sig : &m->all_sig;
    sig = nn__tree_sig(m);
    if (*have != sig) {
        nn__free_list(list, n);
        *have = 0;
        if (!nn__collect(m, buffers, "", list, n)) {
            nn__error(NN_ERR_OOM, "%s: out of memory", op);
            nn__free_list(list, n);
            return NULL;
        }
        *have = sig;
    }
    if (count) *count = *n;
    return *list;
}

NNDEF nn_param *nn_parameters(nn_module *m, int *count) { return nn__named("nn_parameters", m, 0, count); }
NNDEF nn_param *nn_buffers(nn_module *m, int *count) { return nn__named("nn_buffers", m, 1, count); }

/* Call fn on every parameter (buffers = 0) or buffer tensor of m and its
   children once, in nn_parameters order.  Uses m's cached list, so the
   user's array stays valid.  0 when out of memory. */
static int nn__each_tensor(nn_module *m, int buffers, void (*fn)(nn_tensor *, void *), void *user) {
    int i, n;
    nn_param *p = nn__named(buffers ? "nn_buffers" : "nn_parameters", m, buffers, &n);
    if (!p && n == 0 && (buffers ? m->allbuf_sig : m->all_sig) == 0) return 0;
    for (i = 0; i < n; i++) fn(p[i].tensor, user);
    return 1;
}

static void nn__count_tensor(nn_tensor *t, void *u) { *(size_t *)u += t->numel; }

NNDEF size_t nn_parameter_count(nn_module *m) {
    size_t total = 0;
    if (!m) return 0;
    nn__each_tensor(m, 0, nn__count_tensor, &total);
    return total;
}

/* The child of m named by the first len characters of name. */
static nn_module *nn__child_n(nn_module *m, const char *name, size_t len) {
    int i;
    for (i = 0; i < m->nchildren; i++)
        if (strlen(m->child_names[i]) == len && memcmp(m->child_names[i], name, len) == 0)
            return m->children[i];
    return NULL;
}

NNDEF nn_module *nn_child(nn_module *m, const char *path) {
    const char *dot;
    if (!m || !path) {
        nn__misuse("nn_child: needs a module and a path");
        return NULL;
    }
    while (m && (dot = strchr(path, '.')) != NULL) {
        m = nn__child_n(m, path, (size_t)(dot - path));
        path = dot + 1;
    }
    return m ? nn__child_n(m, path, strlen(path)) : NULL;
}

NNDEF nn_tensor *nn_param_get(nn_module *m, const char *name) {
    const char *dot;
    int i, k;
    if (!m || !name) {
        nn__misuse("nn_param: needs a module and a name");
        return NULL;
    }
    while (m && (dot = strchr(name, '.')) != NULL) {
        nn_module *c = nn__child_n(m, name, (size_t)(dot - name));
        /* a local name may itself hold a dot: try it before giving up */
        if (!c) break;
        m = c;
        name = dot + 1;
    }
    for (k = 0; m && k < 2; k++) {
        const nn_param *p = k ? m->buffers : m->params;
        int n = k ? m->nbuffers : m->nparams;
        for (i = 0; i < n; i++)
            if (strcmp(p[i].name, name) == 0) return p[i].tensor;
    }
    return NULL;
}

/* Free m now: its own lists, and its hold on its children and tensors. */
static void nn__module_destroy(nn_module *m) {
    int i;
    for (i = 0; i < m->nchildren; i++) {
        nn__module_release(m->children[i]);
        nn__free(m->child_names[i]);
    }
    for (i = 0; i < m->nparams; i++) nn__tensor_release(m->params[i].tensor);
    for (i = 0; i < m->nbuffers; i++) nn__tensor_release(m->buffers[i].tensor);
    nn__free_list(&m->params, &m->nparams);
    nn__free_list(&m->buffers, &m->nbuffers);
    if (m->destroy) m->destroy(m);
    nn__free_list(&m->all, &m->nall);
    nn__free_list(&m->allbuf, &m->nallbuf);
    nn__free(m->children);
    nn__free(m->child_names);
    nn__free(m);
}

/* Drop one parent's hold on m; the last parent frees it. */
static void nn__module_release(nn_module *m) {
    if (m->refs > 1) m->refs--;
    else nn__module_destroy(m);
}

NNDEF void nn_module_free(nn_module *m) {
    if (!m) return;
    if (m->refs > 0) {
        nn__misuse("nn_module_free: this %s is a child of %d module(s); free the root", m->type,
                   m->refs);
        return;
    }
    nn__module_destroy(m);
}

static nn_tensor *nn__sequential_forward(nn_module *m, nn_tensor *x) {
    int i;
    for (i = 0; i < m->nchildren && x; i++) x = nn_forward(m->children[i], x);
    return x;
}

#define NN__SEQ_MAX 64
NNDEF nn_module *nn_sequential_n(int count, ...) {
    nn_module *c[NN__SEQ_MAX], *m = NULL;
    va_list ap;
    char name[24];
    int i, j, n = count - 1, bad = -1, added = 0;
    if (count < 1 || count > NN__SEQ_MAX) {
        nn__misuse("nn_sequential: %d arguments, at most %d (63 children and the NULL)", count,
                   NN__SEQ_MAX);
        return NULL;
    }
    va_start(ap, count);
    for (i = 0; i < count; i++) c[i] = va_arg(ap, nn_module *);
    va_end(ap);
    for (i = 0; i < n && bad < 0; i++)
        if (!c[i]) bad = i;
    if (c[n]) {
        nn__misuse("nn_sequential: the argument list must end with NULL (argument %d is a module)",
                   count);
        n = count;
    } else if (bad >= 0) {
        nn__misuse("nn_sequential: child %d (argument %d) is NULL: its constructor failed",
                   bad, bad + 1);
    } else if ((m = nn_module_new("Sequential", nn__sequential_forward)) != NULL) {
        for (added = 0; added < n; added++) {
            snprintf(name, sizeof name, "%d", added);
            /* a child the add fails on is freed there (if nobody holds it) */
            if (!nn_module_add_child(m, name, c[added])) break;
        }
        if (added == n) return m;
    }
    /* Failure: free every child given once, the added ones with m.  A child
       that another module holds, or that was added already, is left alone. */
    for (i = added + (m != NULL); i < n; i++) {
        for (j = 0; j < i && c[j] != c[i]; j++) {}
        if (j == i && c[i] && c[i]->refs == 0) nn_module_free(c[i]);
    }
    nn_module_free(m);
    return NULL;
}

/* A persistent parameter tensor filled with U(-bound, bound). */
static nn_tensor *nn__uniform_param(nn_shape s, float bound) {
    return nn_rand(NULL, s, -bound, bound);
}

/* Built-in modules keep their options and parameter pointers in a typed
   state struct at m->user (plain data, freed with m), so a forward never
   depends on registration order. */
static void nn__state_destroy(nn_module *m) { nn__free(m->user); }
static void *nn__module_state(nn_module *m, size_t size) {
    void *st = nn__calloc(1, size);
    if (st) {
        m->user = st;
        m->destroy = nn__state_destroy;
    }
    return st;
}
/* A new module with a zeroed state of size bytes (NULL when out of memory). */
static nn_module *nn__module_with_state(const char *type, nn_forward_fn fwd, size_t size) {
    nn_module *m = nn_module_new(type, fwd);
    if (m && !nn__module_state(m, size)) {
        nn_module_free(m);
        return NULL;
    }
    return m;
}

typedef struct nn__linear_state {
    nn_tensor *weight, *bias;   /* bias NULL for nn_linear_nobias */
} nn__linear_state;
/* A module with one number as its option (dropout p, leaky slope, ELU alpha). */
typedef struct nn__scalar_state {
    float value;
} nn__scalar_state;

static nn_tensor *nn__linear_forward(nn_module *m, nn_tensor *x) {
    const nn__linear_state *st = (const nn__linear_state *)m->user;
    return nn_linear_op(x, st->weight, st->bias);
}

static nn_module *nn__linear_make(int in_f, int out_f, int bias) {
    nn_module *m;
    nn__linear_state *st;
    nn_tensor *w, *b = NULL;
    float bound;
    if (in_f < 1 || out_f < 1) {
        nn__misuse("%s: sizes must be positive, got in=%d out=%d",
                   bias ? "nn_linear" : "nn_linear_nobias", in_f, out_f);
        return NULL;
    }
    if (!(m = nn__module_with_state("Linear", nn__linear_forward, sizeof(nn__linear_state)))) return NULL;
    st = (nn__linear_state *)m->user;
    /* torch.nn.Linear: kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(in). */
    bound = 1.0f / sqrtf((float)in_f);
    w = nn__uniform_param(NN_SHAPE(out_f, in_f), bound);
    if (!w || !nn_module_add_param(m, "weight", w) ||
        (bias && (!(b = nn__uniform_param(NN_SHAPE(out_f), bound)) || !nn_module_add_param(m, "bias", b)))) {
        nn_module_free(m); /* add_param freed what it could not add */
        return NULL;
    }
    st->weight = w;
    st->bias = b;
    return m;
}
NNDEF nn_module *nn_linear(int in_features, int out_features) { return nn__linear_make(in_features, out_features, 1); }
NNDEF nn_module *nn_linear_nobias(int in_features, int out_features) { return nn__linear_make(in_features, out_features, 0); }

static nn_tensor *nn__relu_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_relu_op(x); }
static nn_tensor *nn__sigmoid_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_sigmoid_op(x); }
static nn_tensor *nn__tanh_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_tanh_op(x); }
static nn_tensor *nn__flatten_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_flatten_batch(x); }
static nn_tensor *nn__dropout_forward(nn_module *m, nn_tensor *x) {
    return nn_dropout_op(x, ((const nn__scalar_state *)m->user)->value, m->training);
}

NNDEF nn_module *nn_relu(void) { return nn_module_new("ReLU", nn__relu_forward); }
NNDEF nn_module *nn_sigmoid(void) { return nn_module_new("Sigmoid", nn__sigmoid_forward); }
NNDEF nn_module *nn_tanh(void) { return nn_module_new("Tanh", nn__tanh_forward); }
NNDEF nn_module *nn_flatten(void) { return nn_module_new("Flatten", nn__flatten_forward); }

NNDEF nn_module *nn_dropout(float p) {
    nn_module *m;
    if (!nn__dropout_check("nn_dropout", p)) return NULL;
    m = nn__module_with_state("Dropout", nn__dropout_forward, sizeof(nn__scalar_state));
    if (m) ((nn__scalar_state *)m->user)->value = p;
    return m;
}

/* nn_hadamard_linear: the fixed matrix is the module's own (not a
   parameter), freed with its state. */
typedef struct nn__hadamard_state {
    nn_tensor *h, *scale, *bias;   /* h [out,in] fixed; bias NULL without one */
} nn__hadamard_state;

static void nn__hadamard_destroy(nn_module *m) {
    nn__hadamard_state *st = (nn__hadamard_state *)m->user;
    if (st) nn_tensor_free(st->h);
    nn__free(st);
}

static nn_tensor *nn__hadamard_forward(nn_module *m, nn_tensor *x) {
    const nn__hadamard_state *st = (const nn__hadamard_state *)m->user;
    nn_tensor *norm, *y;
    if (!x || x->ndim != 2 || x->shape[1] != st->h->shape[1]) {
        nn__misuse("nn_hadamard_linear: input %s is not [batch, %d]", nn__ts(x), st->h->shape[1]);
        return NULL;
    }
    /* |x| per row, with a floor so a zero row has a finite gradient. */
    norm = nn_sqrt(nn_add_scalar(nn_sum_axis(nn_mul(x, x), 1, 1), 1e-12f));
    y = nn_mul(nn_linear_op(nn_div(x, norm), st->h, NULL), st->scale);
    return st->bias ? nn_add(y, st->bias) : y;
}

NNDEF nn_module *nn_hadamard_linear(int in_features, int out_features, int bias) {
    nn_module *m;
    nn__hadamard_state *st;
    int i, j;
    if (in_features < 1 || out_features < 1 || in_features > (1 << 24) || out_features > (1 << 24)) {
        nn__misuse("nn_hadamard_linear: sizes must be in 1..2^24, got in=%d out=%d", in_features,
                   out_features);
        return NULL;
    }
    if (!(m = nn__module_with_state("HadamardLinear", nn__hadamard_forward,
                                    sizeof(nn__hadamard_state))))
        return NULL;
    m->destroy = nn__hadamard_destroy;
    st = (nn__hadamard_state *)m->user;
    if (!(st->h = nn_zeros(NULL, NN_SHAPE(out_features, in_features)))) goto fail;
    /* Sylvester's H[i][j] = (-1)^popcount(i & j): the same entries at every
       order above i and j, so no matrix of the full order is built. */
    for (i = 0; i < out_features; i++)
        for (j = 0; j < in_features; j++) {
            unsigned v = (unsigned)(i & j), parity = 0;
            while (v) {
                parity ^= v & 1u;
                v >>= 1;
            }
            st->h->data[(size_t)i * in_features + j] = parity ? -1.0f : 1.0f;
        }
    st->scale = nn_full(NULL, NN_SHAPE(1), 1.0f / sqrtf((float)out_features));
    if (!st->scale || !nn_module_add_param(m, "scale", st->scale)) goto fail;
    if (bias) {
        float bound = 1.0f / sqrtf((float)out_features);
        st->bias = nn__uniform_param(NN_SHAPE(out_features), bound);
        if (!st->bias || !nn_module_add_param(m, "bias", st->bias)) goto fail;
    }
    return m;
fail:
    nn_module_free(m);
    return NULL;
}

NNDEF const nn_tensor *nn_hadamard_matrix(const nn_module *m) {
    if (!m || !m->type || strcmp(m->type, "HadamardLinear") != 0 || !m->user) {
        nn__misuse("nn_hadamard_matrix: %s is not an nn_hadamard_linear module",
                   m && m->type ? m->type : "NULL");
        return NULL;
    }
    return ((const nn__hadamard_state *)m->user)->h;
}

/* ===== >>layers (implementation) ========================================= */
/* ----- >>layers.conv: convolutions --------------------------------------- */

/* What the backward pass needs: the geometry, its buffers, the kind. */
typedef struct nn__conv_saved {
    nn__convg q;
    int kind;
} nn__conv_saved;

static void nn__conv_backward(nn__node *n) {
    const nn__conv_saved *sv = (const nn__conv_saved *)n->saved;
    const nn__convg *q = &sv->q;
    nn_tensor *x = n->in[0], *w = n->in[1];
    float *gx = NULL, *gw = nn__in_grad(n, 1);
    float *gb = n->nin > 2 ? nn__in_grad(n, 2) : NULL;
    const float *dy = n->out->grad;
    int needx = (x->flags & NN_TENSOR_REQUIRES_GRAD) != 0;
    if (sv->kind == NN__CONV) {
        /* image = x, other = y */
        if (gb) nn__channel_sum(dy, q->N, q->F, (size_t)q->OH * (size_t)q->OW, gb);
        if (needx && q->cb_bwd) {
            /* the input gradient by the direct engine, the weights' by the GEMM */
            nn__convg t;
            float beta;
            gx = nn__in_grad_w(n, 0, &beta);
            nn__conv_flip_geom(q, &t);
            nn__conv_bcast(&t, dy, w->data, 1, NULL, gx, beta != 0.0f, q->cb, q->cb_nt);
            if (gw && !nn__conv_wgrad(q, x->data, dy, gw, nn__graph_scratch(n->out->graph)))
                nn__conv_from_image(q, x->data, w->data, NULL, 0, dy, gw);
            return;
        }
        gx = nn__in_grad(n, 0);
        if (gw && q->SW == 1 && !q->depthwise && !q->direct && nn__conv_wgrad(q, x->data, dy, gw, nn__graph_scratch(n->out->graph)))
            gw = NULL; /* done */
        if (q->depthwise) {
            nn__dw_backward(q, x->data, w->data, dy, gx, gw, nn__graph_scratch(n->out->graph));
            return;
        }
        if (gx) nn__conv_to_image(q, dy, w->data, gx, x->data, gw);
        else if (gw) nn__conv_from_image(q, x->data, w->data, NULL, 0, dy, gw);
    } else {
        /* image = y, other = x: dx = W im2col(dy), dW += x im2col(dy)^T */
        if (gb) nn__channel_sum(dy, q->N, q->C, (size_t)q->H * (size_t)q->W, gb);
        gx = nn__in_grad(n, 0);
        if (gx || gw) nn__conv_from_image(q, dy, w->data, gx, 1, x->data, gw);
    }
}

/* The one validator of the convolution family, called by the modules (with
   their in_ch, out_ch and kernel) and by the op forms (with the sizes read
   from x and w): channels, groups, kernel and every option.  The products
   are taken in 64 bits, so extreme values are reported, never overflowed.
   0 after a report. */
static int nn__conv_check(const char *op, int kind, int dims, long long in_ch, long long out_ch,
                          long long KH, long long KW, nn_conv_opts o) {
    long long S = o.stride ? o.stride : 1, D = o.dilation ? o.dilation : 1,
              G = o.groups ? o.groups : 1, K = KW;
    if (in_ch < 1 || out_ch < 1 || out_ch > INT_MAX) {
        nn__misuse("%s: in_ch=%lld and out_ch=%lld must be positive ints", op, in_ch, out_ch);
        return 0;
    }
    if (KW < 1 || KH < 1 || (dims == 2 && KH != KW) ||
        (o.kernel && (o.kernel != KW || (dims == 2 && o.kernel != KH)))) {
        nn__misuse("%s: kernel=%d, weight kernel %lld x %lld (kernel is required, at least 1, "
                   "square, and agrees with the weight)", op, o.kernel, KH, KW);
        return 0;
    }
    if (o.stride < 0 || o.padding < 0 || o.dilation < 0 || o.groups < 0 || o.output_padding < 0 ||
        o.stride > INT_MAX / 4 || o.padding > INT_MAX / 4 || D * (K - 1) + 1 > INT_MAX / 4) {
        nn__misuse("%s: invalid options stride=%d padding=%d dilation=%d groups=%d "
                   "output_padding=%d for kernel %lld (none negative; the stride, the padding "
                   "and the dilated kernel at most INT_MAX/4)", op, o.stride, o.padding, o.dilation, o.groups,
                   o.output_padding, K);
        return 0;
    }
    if (in_ch % G || out_ch % G) {
        nn__misuse("%s: groups=%lld must divide in_ch=%lld and out_ch=%lld", op, G, in_ch, out_ch);
        return 0;
    }
    if (kind == NN__CONV && o.output_padding) {
        nn__misuse("%s: output_padding=%d applies to transposed convolutions only", op,
                   o.output_padding);
        return 0;
    }
    if (kind == NN__CONV_T && o.output_padding >= S && o.output_padding >= D) {
        nn__misuse("%s: output_padding %d must be smaller than the stride %lld or the dilation %lld",
                   op, o.output_padding, S, D);
        return 0;
    }
    return 1;
}

/* Check the arguments of a convolution of `dims` (1 or 2) spatial
   dimensions, fill the geometry and the output shape.  0 after a report. */
static int nn__conv_setup(const char *op, int kind, int dims, const nn_tensor *x,
                          const nn_tensor *w, const nn_tensor *b, nn_conv_opts o,
                          nn__convg *q, nn_shape *s) {
    int d = dims + 2, K, KH, KW, S, P, D, G, OP, inC, outC, H, W, OH, OW;
    long long eff, oh, ow;
    const char *lay = dims == 2 ? "[N,C,H,W]" : "[N,C,L]";
    memset(q, 0, sizeof *q);
    if (!x || !w || x->ndim != d || w->ndim != d) {
        nn__misuse("%s: needs x %s and a %d-D weight, got x %s and weight %s", op, lay, d,
                   nn__ts(x), nn__ts(w));
        return 0;
    }
    S = o.stride ? o.stride : 1;
    D = o.dilation ? o.dilation : 1;
    G = o.groups ? o.groups : 1;
    P = o.padding;
    OP = o.output_padding;
    KW = w->shape[d - 1];
    KH = dims == 2 ? w->shape[2] : 1;
    K = KW;
    inC = x->shape[1];
    if (!nn__conv_check(op, kind, dims, inC,
                        kind == NN__CONV ? (long long)w->shape[0] : (long long)w->shape[1] * G,
                        dims == 2 ? KH : KW, KW, o))
        return 0;
    if (kind == NN__CONV) {
        outC = w->shape[0];
        if ((long long)w->shape[1] * G != inC) {
            nn__misuse("%s: input %s has %d channels, but weight %s with groups=%d expects %lld",
                       op, nn__ts(x), inC, nn__ts(w), G, (long long)w->shape[1] * G);
            return 0;
        }
    } else {
        outC = w->shape[1] * G;
        if (w->shape[0] != inC) {
            nn__misuse("%s: input %s has %d channels, but weight %s (in, out/groups, ...) with "
                       "groups=%d expects %d", op, nn__ts(x), inC, nn__ts(w), G, w->shape[0]);
            return 0;
        }
    }
    if (b && (b->ndim != 1 || b->shape[0] != outC)) {
        nn__misuse("%s: bias %s does not fit %d output channels (weight %s)", op, nn__ts(b), outC,
                   nn__ts(w));
        return 0;
    }
    H = dims == 2 ? x->shape[2] : 1;
    W = x->shape[d - 1];
    eff = (long long)D * (K - 1) + 1; /* <= INT_MAX / 4 (nn__conv_check) */
    if (kind == NN__CONV) {
        if (eff > W + 2LL * P || (dims == 2 && eff > H + 2LL * P) || H < 1 || W < 1) {
            nn__misuse("%s: kernel %d (dilation %d: extent %lld) is larger than the padded input "
                       "(x %s, padding %d)", op, K, D, eff, nn__ts(x), P);
            return 0;
        }
        oh = dims == 2 ? (H + 2LL * P - eff) / S + 1 : 1;
        ow = (W + 2LL * P - eff) / S + 1;
    } else {
        oh = dims == 2 ? (H - 1LL) * S - 2LL * P + eff + OP : 1;
        ow = (W - 1LL) * S - 2LL * P + eff + OP;
        if (oh < 1 || ow < 1 || H < 1 || W < 1) {
            nn__misuse("%s: padding %d leaves no output for input %s and weight %s", op, P,
                       nn__ts(x), nn__ts(w));
            return 0;
        }
    }
    if (oh > INT_MAX || ow > INT_MAX) {
        nn__misuse("%s: the output would be %lld x %lld for input %s and weight %s (stride %d, "
                   "padding %d): too large", op, oh, ow, nn__ts(x), nn__ts(w), S, P);
        return 0;
    }
    OH = (int)oh;
    OW = (int)ow;
    if (kind == NN__CONV) {
        q->N = x->shape[0]; q->C = inC; q->H = H; q->W = W;
        q->F = outC; q->OH = OH; q->OW = OW;
    } else {
        /* The image is the output; the other side is the input. */
        q->N = x->shape[0]; q->C = outC; q->H = OH; q->W = OW;
        q->F = inC; q->OH = H; q->OW = W;
    }
    q->KH = KH; q->KW = KW;
    q->SH = dims == 2 ? S : 1; q->SW = S;
    q->PH = dims == 2 ? P : 0; q->PW = P;
    q->DH = dims == 2 ? D : 1; q->DW = D;
    q->G = G;
    *s = nn_shape_of(x);
    s->d[1] = outC;
    if (dims == 2) s->d[2] = OH;
    s->d[d - 1] = OW;
    return 1;
}

static nn_tensor *nn__conv(const char *op, int kind, int dims, nn_tensor *x, nn_tensor *w,
                           nn_tensor *b, nn_conv_opts o) {
    nn_tensor *in[3], *out;
    nn__convg q;
    nn_shape s;
    size_t P, colrow, zero;
    in[0] = x;
    in[1] = w;
    in[2] = b;
    if (!nn__conv_setup(op, kind, dims, x, w, b, o, &q, &s)) return NULL;
    out = nn__op(op, in, b ? 3 : 2, s, nn__conv_backward);
    if (!out) return NULL;
    P = (size_t)q.OH * (size_t)q.OW;
    colrow = (size_t)q.C * (size_t)q.KH * (size_t)q.KW;
    q.direct = q.KH == 1 && q.KW == 1 && q.SH == 1 && q.SW == 1 && q.PH == 0 && q.PW == 0;
    q.depthwise = kind == NN__CONV && q.C == q.G && q.G > 1;
    /* Samples per GEMM: wide enough for the GEMM, bounded col buffer. */
    q.chunk = (int)NN__MIN((size_t)q.N, (NN__CONV_COLS + P - 1) / P);
    while (q.chunk > 1 && colrow * P * (size_t)q.chunk > NN__CONV_COL_FLOATS) q.chunk--;
    if (q.chunk < 1) q.chunk = 1;
    if (kind == NN__CONV && !q.depthwise && !q.direct) {
        /* the direct engine for the forward and (stride 1) the input gradient */
        nn__convg t;
        size_t need = 0;
        q.cb_nt = nn__team((double)q.N * (double)P * (double)q.F * (double)colrow / q.G > NN__PAR_MIN);
        q.cb_fwd = nn__conv_bcast_ok(&q, q.cb_nt);
        /* (the flipped convolution also multiplies the zeros left and right
           of dy: on small images with big kernels that can be most of the
           work, and then the GEMM and col2im are faster) */
        q.cb_bwd = out->node && (x->flags & NN_TENSOR_REQUIRES_GRAD) && nn__conv_flip_geom(&q, &t) &&
                   nn__conv_bcast_ok(&t, q.cb_nt) &&
                   nn__conv_bcast_work(&t) <= NN__CB_WASTE * (double)P * q.KH * q.KW;
        if (q.cb_fwd) need = nn__conv_bcast_size(&q, q.cb_nt);
        if (q.cb_bwd) need = NN__MAX(need, nn__conv_bcast_size(&t, q.cb_nt));
        if (need) {
            q.cb = (float *)nn__scratch(out, need * sizeof(float));
            if (!q.cb) return NULL;
        }
    }
    if (!q.depthwise && (!q.cb_fwd || out->node)) {
        if (!(q.direct && q.chunk == 1)) {
            q.col = (float *)nn__scratch(out, colrow * P * (size_t)q.chunk * sizeof(float));
            if (!q.col) return NULL;
        }
        if (q.chunk > 1) {
            q.tmp = (float *)nn__scratch(out, (size_t)q.F * P * (size_t)q.chunk * sizeof(float));
            if (!q.tmp) return NULL;
        }
    }
    if (out->node) {
        nn__conv_saved *sv = (nn__conv_saved *)nn__scratch(out, sizeof(nn__conv_saved));
        if (!sv) return NULL;
        sv->q = q;
        sv->kind = kind;
        out->node->saved = sv;
    }
    if (kind == NN__CONV) {
        const float *bias = b ? b->data : NULL; /* the kernels add it while writing */
        if (q.depthwise) {
            nn__dw_forward(&q, x->data, w->data, out->data, nn__graph_scratch(out->graph));
            if (b) nn__add_channel_bias(out->data, b->data, q.N, q.F, P);
        } else if (q.cb_fwd) {
            nn__conv_bcast(&q, x->data, w->data, 0, bias, out->data, 0, q.cb, q.cb_nt);
        } else if (q.direct || !nn__conv_implicit(&q, x->data, w->data, bias, out->data, 0)) {
            /* 1x1, or the implicit GEMM's sizes overflow or its buffer is missing */
            nn__conv_from_image(&q, x->data, w->data, out->data, 0, NULL, NULL);
            if (b) nn__add_channel_bias(out->data, b->data, q.N, q.F, P);
        }
    } else {
        zero = out->numel;
        memset(out->data, 0, zero * sizeof(float));
        nn__conv_to_image(&q, x->data, w->data, out->data, NULL, NULL);
        if (b) nn__add_channel_bias(out->data, b->data, q.N, q.C, (size_t)q.H * (size_t)q.W);
    }
    return out;
}

NNDEF nn_tensor *nn_conv2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts) {
    return nn__conv("nn_conv2d_op", NN__CONV, 2, x, w, b, opts);
}
NNDEF nn_tensor *nn_conv1d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, nn_conv_opts opts) {
    return nn__conv("nn_conv1d_op", NN__CONV, 1, x, w, b, opts);
}
NNDEF nn_tensor *nn_conv_transpose2d_op(nn_tensor *x, nn_tensor *w, nn_tensor *b,
                                        nn_conv_opts opts) {
    return nn__conv("nn_conv_transpose2d_op", NN__CONV_T, 2, x, w, b, opts);
}

typedef struct nn__conv_state {
    nn_tensor *weight, *bias;   /* bias NULL with no_bias */
    nn_conv_opts opts;
    int dims, transposed;
} nn__conv_state;
static nn_tensor *nn__conv_forward(nn_module *m, nn_tensor *x) {
    const nn__conv_state *st = (const nn__conv_state *)m->user;
    if (st->transposed) return nn_conv_transpose2d_op(x, st->weight, st->bias, st->opts);
    return st->dims == 2 ? nn_conv2d_op(x, st->weight, st->bias, st->opts)
                         : nn_conv1d_op(x, st->weight, st->bias, st->opts);
}

static nn_module *nn__conv_make(const char *op, const char *type, int dims, int transposed,
                                int in_ch, int out_ch, nn_conv_opts o) {
    nn_module *m;
    nn__conv_state *st;
    nn_shape ws;
    int G = o.groups ? o.groups : 1, K = o.kernel;
    float bound;
    if (!nn__conv_check(op, transposed ? NN__CONV_T : NN__CONV, dims, in_ch, out_ch, K, K, o))
        return NULL;
    if (!(m = nn__module_with_state(type, nn__conv_forward, sizeof(nn__conv_state)))) return NULL;
    st = (nn__conv_state *)m->user;
    st->opts = o;
    st->dims = dims;
    st->transposed = transposed;
    /* PyTorch: fan_in = weight.size(1) * kernel elements. */
    if (dims == 2) ws = transposed ? NN_SHAPE(in_ch, out_ch / G, K, K) : NN_SHAPE(out_ch, in_ch / G, K, K);
    else ws = NN_SHAPE(out_ch, in_ch / G, K);
    bound = 1.0f / sqrtf((float)ws.d[1] * (float)K * (float)(dims == 2 ? K : 1)); /* (float: no int overflow) */
    if (!(st->weight = nn_module_add_param(m, "weight", nn__uniform_param(ws, bound))) ||
        (!o.no_bias && !(st->bias = nn_module_add_param(m, "bias", nn__uniform_param(NN_SHAPE(out_ch), bound))))) {
        nn_module_free(m);
        return NULL;
    }
    return m;
}

NNDEF nn_module *nn_conv2d(int in_ch, int out_ch, nn_conv_opts opts) {
    return nn__conv_make("nn_conv2d", "Conv2d", 2, 0, in_ch, out_ch, opts);
}
NNDEF nn_module *nn_conv1d(int in_ch, int out_ch, nn_conv_opts opts) {
    return nn__conv_make("nn_conv1d", "Conv1d", 1, 0, in_ch, out_ch, opts);
}
NNDEF nn_module *nn_conv_transpose2d(int in_ch, int out_ch, nn_conv_opts opts) {
    return nn__conv_make("nn_conv_transpose2d", "ConvTranspose2d", 2, 1, in_ch, out_ch, opts);
}

/* ----- >>layers.pool: pooling and upsampling ----------------------------- */

typedef struct nn__poolg {
    int planes, H, W, OH, OW, KH, KW, SH, SW, PH, PW;
} nn__poolg;

enum { NN__POOL_MAX, NN__POOL_AVG };

static void nn__pool_backward(nn__node *n) {
    const nn__poolg *q = (const nn__poolg *)n->saved;
    float beta, *gx = nn__in_grad_w(n, 0, &beta);
    const float *dy = n->out->grad;
    size_t P = (size_t)q->OH * (size_t)q->OW, HW = (size_t)q->H * (size_t)q->W;
    int pl, fresh = beta == 0.0f; /* a fresh gradient is zeroed plane by plane, in the threads */
    if (!gx) return;
    if (n->iarg[0] == NN__POOL_MAX) {
        const int *arg = (const int *)(q + 1);
        NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)q->planes * (double)P > NN__PAR_MIN))))
        for (pl = 0; pl < q->planes; pl++) {
            size_t i;
            float *g = gx + (size_t)pl * HW;
            const float *d = dy + (size_t)pl * P;
            const int *a = arg + (size_t)pl * P;
            if (fresh) memset(g, 0, HW * sizeof(float));
            for (i = 0; i < P; i++) g[a[i]] += d[i];
        }
        return;
    }
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)q->planes * (double)P > NN__PAR_MIN))))
    for (pl = 0; pl < q->planes; pl++) {
        int oh, ow, ih, iw;
        float inv = 1.0f / ((float)q->KH * (float)q->KW), *g = gx + (size_t)pl * HW;
        const float *d = dy + (size_t)pl * P;
        if (fresh) memset(g, 0, HW * sizeof(float));
        for (oh = 0; oh < q->OH; oh++) {
            int h0 = oh * q->SH - q->PH, h1 = NN__MIN(h0 + q->KH, q->H);
            for (ow = 0; ow < q->OW; ow++) {
                int w0 = ow * q->SW - q->PW, w1 = NN__MIN(w0 + q->KW, q->W);
                float v = d[(size_t)oh * q->OW + ow] * inv;
                for (ih = NN__MAX(h0, 0); ih < h1; ih++)
                    for (iw = NN__MAX(w0, 0); iw < w1; iw++) g[(size_t)ih * q->W + iw] += v;
            }
        }
    }
}

/* The one validator of the pooling options, for the modules and the op
   forms.  0 after a report. */
static int nn__pool_check(const char *op, nn_pool_opts o) {
    if (o.kernel < 1 || o.stride < 0 || o.padding < 0 || o.padding > o.kernel / 2) {
        nn__misuse("%s: invalid kernel=%d stride=%d padding=%d (kernel is required; padding at "
                   "most kernel/2)", op, o.kernel, o.stride, o.padding);
        return 0;
    }
    return 1;
}

static nn_tensor *nn__pool(const char *op, int kind, int dims, nn_tensor *x, nn_pool_opts o) {
    nn_tensor *out;
    nn__poolg q, *sq;
    nn_shape s;
    int K = o.kernel, S = o.stride ? o.stride : o.kernel, P = o.padding, d = dims + 2, pl, *arg = NULL;
    size_t PP, HW;
    if (!x || x->ndim != d) {
        nn__misuse("%s: needs x %s, got %s", op, dims == 2 ? "[N,C,H,W]" : "[N,C,L]", nn__ts(x));
        return NULL;
    }
    if (!nn__pool_check(op, o)) return NULL;
    q.planes = x->numel ? x->shape[0] * x->shape[1] : 0; /* (empty inputs are refused below) */
    q.H = dims == 2 ? x->shape[2] : 1;
    q.W = x->shape[d - 1];
    q.KH = dims == 2 ? K : 1; q.KW = K;
    q.SH = dims == 2 ? S : 1; q.SW = S;
    q.PH = dims == 2 ? P : 0; q.PW = P;
    if (q.KH > q.H + 2LL * q.PH || q.KW > q.W + 2LL * q.PW || q.H < 1 || q.W < 1) {
        nn__misuse("%s: kernel %d is larger than the padded input (x %s, padding %d)", op, K,
                   nn__ts(x), P);
        return NULL;
    }
    q.OH = (int)((q.H + 2LL * q.PH - q.KH) / q.SH + 1); /* <= H + P: fits (P <= K/2 <= (H+2P)/2) */
    q.OW = (int)((q.W + 2LL * q.PW - q.KW) / q.SW + 1);
    s = nn_shape_of(x);
    if (dims == 2) s.d[2] = q.OH;
    s.d[d - 1] = q.OW;
    out = nn__op(op, &x, 1, s, nn__pool_backward);
    if (!out) return NULL;
    PP = (size_t)q.OH * (size_t)q.OW;
    HW = (size_t)q.H * (size_t)q.W;
    if (out->node) {
        size_t bytes = sizeof(nn__poolg) + (kind == NN__POOL_MAX ? PP * (size_t)q.planes * sizeof(int) : 0);
        if (!(sq = (nn__poolg *)nn__scratch(out, bytes))) return NULL;
        *sq = q;
        if (kind == NN__POOL_MAX) arg = (int *)(sq + 1);
        out->node->saved = sq;
        out->node->iarg[0] = kind;
    }
    if (kind == NN__POOL_MAX && q.KH == 2 && q.KW == 2 && q.SH == 2 && q.SW == 2 && q.PH == 0 &&
        q.PW == 0) {
        /* The common 2x2 / stride 2 case: no bounds to check. */
        NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)q.planes * (double)PP * K > NN__PAR_MIN))))
        for (pl = 0; pl < q.planes; pl++) {
            const float *xp = x->data + (size_t)pl * HW;
            float *y = out->data + (size_t)pl * PP;
            int *a = arg ? arg + (size_t)pl * PP : NULL, oh, ow;
            for (oh = 0; oh < q.OH; oh++) {
                const float *r0 = xp + (size_t)(2 * oh) * q.W, *r1 = r0 + q.W;
                ow = 0;
#if defined(NN__AVX512)
                /* 16 outputs at a time, branch-free (the winner is data, so
                   branches mispredict): even and odd columns by permutes, the
                   first maximum kept, NaN taken over a number. */
                for (; ow < q.OW; ow += 16) {
                    int rem = NN__MIN(16, q.OW - ow);
                    __mmask16 m = (__mmask16)(rem == 16 ? 0xFFFF : (1u << rem) - 1u);
                    __mmask16 m0 = (__mmask16)(rem >= 8 ? 0xFFFF : (1u << (2 * rem)) - 1u);
                    __mmask16 m1 = (__mmask16)(rem == 16 ? 0xFFFF : rem > 8 ? (1u << (2 * rem - 16)) - 1u : 0u);
                    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
                    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
                    __m512 x0 = _mm512_maskz_loadu_ps(m0, r0 + 2 * ow);
                    __m512 x1 = _mm512_maskz_loadu_ps(m1, r0 + 2 * ow + 16);
                    __m512 z0 = _mm512_maskz_loadu_ps(m0, r1 + 2 * ow);
                    __m512 z1 = _mm512_maskz_loadu_ps(m1, r1 + 2 * ow + 16);
                    __m512 best = _mm512_permutex2var_ps(x0, ev, x1), v;
                    __m512i bk = _mm512_setzero_si512();
                    __mmask16 take;
#define NN__MAX_STEP(val, k)                                                                  \
    v = (val);                                                                                \
    take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |                                          \
           (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q)); \
    best = _mm512_mask_blend_ps(take, best, v);                                               \
    bk = _mm512_mask_blend_epi32(take, bk, _mm512_set1_epi32(k))
                    NN__MAX_STEP(_mm512_permutex2var_ps(x0, od, x1), 1);
                    NN__MAX_STEP(_mm512_permutex2var_ps(z0, ev, z1), q.W);
                    NN__MAX_STEP(_mm512_permutex2var_ps(z0, od, z1), q.W + 1);
#undef NN__MAX_STEP
                    _mm512_mask_storeu_ps(y + (size_t)oh * q.OW + ow, m, best);
                    if (a) {
                        __m512i base = _mm512_set1_epi32(2 * oh * q.W + 2 * ow);
                        __m512i idx = _mm512_add_epi32(base, _mm512_add_epi32(ev, bk));
                        _mm512_mask_storeu_epi32((void *)(a + (size_t)oh * q.OW + ow), m, idx);
                    }
                }
#elif defined(NN__AVX2)
                /* 8 outputs at a time, the same way with 256-bit vectors; a
                   ragged end redoes the last 8 (same values) instead of scalar code */
                for (; ow < q.OW && q.OW >= 8; ow += 8) {
                    const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
                    __m256 x0, x1, z0, z1, best, v, take, bk;
                    if (ow + 8 > q.OW) ow = q.OW - 8;
                    x0 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(r0 + 2 * ow), split);
                    x1 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(r0 + 2 * ow + 8), split);
                    z0 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(r1 + 2 * ow), split);
                    z1 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(r1 + 2 * ow + 8), split);
                    best = _mm256_permute2f128_ps(x0, x1, 0x20);
                    bk = _mm256_setzero_ps(); /* int lanes carried as float bits */
#define NN__MAX_STEP(val, k)                                                               \
    v = (val);                                                                             \
    take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),                                \
                        _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q),                   \
                                      _mm256_cmp_ps(best, best, _CMP_ORD_Q)));             \
    best = _mm256_blendv_ps(best, v, take);                                                \
    bk = _mm256_blendv_ps(bk, _mm256_castsi256_ps(_mm256_set1_epi32(k)), take)
                    NN__MAX_STEP(_mm256_permute2f128_ps(x0, x1, 0x31), 1);
                    NN__MAX_STEP(_mm256_permute2f128_ps(z0, z1, 0x20), q.W);
                    NN__MAX_STEP(_mm256_permute2f128_ps(z0, z1, 0x31), q.W + 1);
#undef NN__MAX_STEP
                    _mm256_storeu_ps(y + (size_t)oh * q.OW + ow, best);
                    if (a) {
                        __m256i idx = _mm256_add_epi32(
                            _mm256_set1_epi32(2 * oh * q.W + 2 * ow),
                            _mm256_add_epi32(_mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14),
                                             _mm256_castps_si256(bk)));
                        _mm256_storeu_si256((__m256i *)(void *)(a + (size_t)oh * q.OW + ow), idx);
                    }
                }
#endif
                for (; ow < q.OW; ow++) {
                    float v[4], best;
                    int k2, bk = 0;
                    v[0] = r0[2 * ow]; v[1] = r0[2 * ow + 1]; v[2] = r1[2 * ow]; v[3] = r1[2 * ow + 1];
                    best = v[0];
                    for (k2 = 1; k2 < 4; k2++)
                        if (v[k2] > best || (v[k2] != v[k2] && best == best)) best = v[k2], bk = k2;
                    y[(size_t)oh * q.OW + ow] = best;
                    if (a) a[(size_t)oh * q.OW + ow] = (2 * oh + (bk >> 1)) * q.W + 2 * ow + (bk & 1);
                }
            }
        }
        return out;
    }
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)q.planes * (double)PP * K > NN__PAR_MIN))))
    for (pl = 0; pl < q.planes; pl++) {
        const float *xp = x->data + (size_t)pl * HW;
        float *y = out->data + (size_t)pl * PP;
        int *a = arg ? arg + (size_t)pl * PP : NULL;
        int oh, ow, ih, iw;
        for (oh = 0; oh < q.OH; oh++) {
            int h0 = oh * q.SH - q.PH, h1 = NN__MIN(h0 + q.KH, q.H);
            for (ow = 0; ow < q.OW; ow++) {
                int w0 = ow * q.SW - q.PW, w1 = NN__MIN(w0 + q.KW, q.W);
                if (kind == NN__POOL_MAX) {
                    float best = -INFINITY;
                    int bi = NN__MAX(h0, 0) * q.W + NN__MAX(w0, 0);
                    for (ih = NN__MAX(h0, 0); ih < h1; ih++)
                        for (iw = NN__MAX(w0, 0); iw < w1; iw++) {
                            float v = xp[(size_t)ih * q.W + iw];
                            /* first maximum wins; NaN propagates (as PyTorch) */
                            if (v > best || v != v) {
                                best = v;
                                bi = ih * q.W + iw;
                                if (v != v) ih = h1, iw = w1;
                            }
                        }
                    y[(size_t)oh * q.OW + ow] = best;
                    if (a) a[(size_t)oh * q.OW + ow] = bi;
                } else {
                    float acc = 0.0f;
                    for (ih = NN__MAX(h0, 0); ih < h1; ih++)
                        for (iw = NN__MAX(w0, 0); iw < w1; iw++) acc += xp[(size_t)ih * q.W + iw];
                    y[(size_t)oh * q.OW + ow] = acc / ((float)q.KH * (float)q.KW);
                }
            }
        }
    }
    return out;
}

NNDEF nn_tensor *nn_maxpool2d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_maxpool2d_op", NN__POOL_MAX, 2, x, opts); }
NNDEF nn_tensor *nn_avgpool2d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_avgpool2d_op", NN__POOL_AVG, 2, x, opts); }
NNDEF nn_tensor *nn_maxpool1d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_maxpool1d_op", NN__POOL_MAX, 1, x, opts); }
NNDEF nn_tensor *nn_avgpool1d_op(nn_tensor *x, nn_pool_opts opts) { return nn__pool("nn_avgpool1d_op", NN__POOL_AVG, 1, x, opts); }

static void nn__gap_backward(nn__node *n) {
    float *gx = nn__in_grad(n, 0);
    size_t S = n->in[0]->numel / (n->out->numel ? n->out->numel : 1), i;
    int pl, planes = (int)n->out->numel;
    if (!gx) return;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)n->in[0]->numel > NN__PAR_MIN))))
    for (pl = 0; pl < planes; pl++) {
        float v = n->out->grad[pl] / (float)S, *g = gx + (size_t)pl * S;
        for (i = 0; i < S; i++) g[i] += v;
    }
}

NNDEF nn_tensor *nn_global_avgpool_op(nn_tensor *x) {
    nn_tensor *out;
    nn_shape s;
    size_t S = 1;
    int i, pl, planes;
    if (!x || x->ndim < 3) {
        nn__misuse("nn_global_avgpool_op: needs x [N,C,H,W] or [N,C,L], got %s", nn__ts(x));
        return NULL;
    }
    s = nn_shape_of(x);
    for (i = 2; i < s.ndim; i++) {
        S *= (size_t)s.d[i];
        s.d[i] = 1;
    }
    if (S == 0) {
        nn__misuse("nn_global_avgpool_op: empty spatial size in %s", nn__ts(x));
        return NULL;
    }
    out = nn__op("nn_global_avgpool_op", &x, 1, s, nn__gap_backward);
    if (!out) return NULL;
    planes = (int)out->numel;
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)x->numel > NN__PAR_MIN))))
    for (pl = 0; pl < planes; pl++)
        out->data[pl] = (float)(nn__sum_array(x->data + (size_t)pl * S, S) / (double)S);
    return out;
}

static void nn__upsample_backward(nn__node *n) {
    nn_tensor *x = n->in[0];
    float *gx = nn__in_grad(n, 0);
    int s = n->iarg[0], H = x->shape[2], W = x->shape[3], planes, pl;
    if (!gx || !x->numel) return;
    planes = x->shape[0] * x->shape[1];
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)n->out->numel > NN__PAR_MIN))))
    for (pl = 0; pl < planes; pl++) {
        const float *d = n->out->grad + (size_t)pl * H * W * s * s;
        float *g = gx + (size_t)pl * H * W;
        int oh, ow;
        for (oh = 0; oh < H * s; oh++)
            for (ow = 0; ow < W * s; ow++) g[(size_t)(oh / s) * W + ow / s] += d[(size_t)oh * W * s + ow];
    }
}

/* The one validator of the upsampling scale, for the module and the op. */
static int nn__upsample_check(const char *op, int scale) {
    if (scale < 1) {
        nn__misuse("%s: scale must be >= 1, got %d", op, scale);
        return 0;
    }
    return 1;
}

NNDEF nn_tensor *nn_upsample_nearest2d_op(nn_tensor *x, int scale) {
    nn_tensor *out;
    nn_shape s;
    int H, W, planes, pl;
    if (!nn__upsample_check("nn_upsample_nearest2d_op", scale)) return NULL;
    if (!x || x->ndim != 4) {
        nn__misuse("nn_upsample_nearest2d_op: needs x [N,C,H,W], got %s", nn__ts(x));
        return NULL;
    }
    H = x->shape[2];
    W = x->shape[3];
    if ((long long)H * scale > INT_MAX || (long long)W * scale > INT_MAX) {
        nn__misuse("nn_upsample_nearest2d_op: scale %d makes x %s too large", scale, nn__ts(x));
        return NULL;
    }
    s = nn_shape_of(x);
    s.d[2] = H * scale;
    s.d[3] = W * scale;
    out = nn__op("nn_upsample_nearest2d_op", &x, 1, s, nn__upsample_backward);
    if (!out) return NULL;
    if (out->node) out->node->iarg[0] = scale;
    if (!out->numel) return out; /* (no loop over the planes of an empty tensor) */
    planes = x->shape[0] * x->shape[1];
    NN__OMP(parallel for schedule(static) num_threads(nn__run(nn__team((double)out->numel > NN__PAR_MIN))))
    for (pl = 0; pl < planes; pl++) {
        const float *xp = x->data + (size_t)pl * H * W;
        float *y = out->data + (size_t)pl * H * W * scale * scale;
        int oh, ow;
        for (oh = 0; oh < H * scale; oh++)
            for (ow = 0; ow < W * scale; ow++)
                y[(size_t)oh * W * scale + ow] = xp[(size_t)(oh / scale) * W + ow / scale];
    }
    return out;
}

/* Pooling modules keep their options in their state; Upsample its scale. */
typedef struct nn__pool_state {
    nn_pool_opts opts;
    int scale;
} nn__pool_state;
static nn_pool_opts nn__pool_opts_of(const nn_module *m) { return ((const nn__pool_state *)m->user)->opts; }
static nn_tensor *nn__maxpool2d_forward(nn_module *m, nn_tensor *x) { return nn_maxpool2d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__avgpool2d_forward(nn_module *m, nn_tensor *x) { return nn_avgpool2d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__maxpool1d_forward(nn_module *m, nn_tensor *x) { return nn_maxpool1d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__avgpool1d_forward(nn_module *m, nn_tensor *x) { return nn_avgpool1d_op(x, nn__pool_opts_of(m)); }
static nn_tensor *nn__gap_forward(nn_module *m, nn_tensor *x) { (void)m; return nn_global_avgpool_op(x); }
static nn_tensor *nn__upsample_forward(nn_module *m, nn_tensor *x) {
    return nn_upsample_nearest2d_op(x, ((const nn__pool_state *)m->user)->scale);
}

static nn_module *nn__pool_make(const char *op, const char *type, nn_forward_fn fwd, nn_pool_opts o) {
    nn_module *m;
    if (!nn__pool_check(op, o)) return NULL;
    if ((m = nn__module_with_state(type, fwd, sizeof(nn__pool_state)))) ((nn__pool_state *)m->user)->opts = o;
    return m;
}
NNDEF nn_module *nn_maxpool2d(nn_pool_opts opts) { return nn__pool_make("nn_maxpool2d", "MaxPool2d", nn__maxpool2d_forward, opts); }
NNDEF nn_module *nn_avgpool2d(nn_pool_opts opts) { return nn__pool_make("nn_avgpool2d", "AvgPool2d", nn__avgpool2d_forward, opts); }
NNDEF nn_module *nn_maxpool1d(nn_pool_opts opts) { return nn__pool_make("nn_maxpool1d", "MaxPool1d", nn__maxpool1d_forward, opts); }
NNDEF nn_module *nn_avgpool1d(nn_pool_opts opts) { return nn__pool_make("nn_avgpool1d", "AvgPool1d", nn__avgpool1d_forward, opts); }
NNDEF nn_module *nn_global_avgpool(void) { return nn_module_new("AdaptiveAvgPool2d", nn__gap_forward); }
NNDEF nn_module *nn_upsample_nearest2d(int scale) {
    nn_module *m;
    if (!nn__upsample_check("nn_upsample_nearest2d", scale)) return NULL;
    m = nn__module_with_state("Upsample", nn__upsample_forward, sizeof(nn__pool_state));
    if (m) ((nn__pool_state *)m->user)->scale = scale;
    return m;
}

/* ----- >>layers.norm: normalization -------------------------------------- */

/* Every normalization layer is one use of the engine in >>kernels.norm:
   nn__norm_begin makes the op's output and node and takes the statistics,
   the layer updates its running statistics (and batch renormalization its r
   and d) from them, and nn__norm_end runs the affine pass.  The run record
   is saved for the one backward, nn__norm_backward. */
typedef struct nn__normrun {
    nn__normgeo q;
    int center, batch, iw, ib;
    float *mean, *var, *invstd, *r, *d; /* per set; r, d NULL but in renormalization */
    const float *w, *b;                 /* [C]: weight and bias, or ones and zeros */
    double *work;                       /* the backward's work memory */
    nn_tensor *x, *out;
} nn__normrun;

static void nn__norm_backward(nn__node *n) {
    const nn__normrun *s = (const nn__normrun *)n->saved;
    nn__normgrad a;
    float beta;
    a.x = n->in[0]->data;
    a.dy = n->out->grad;
    a.mean = s->mean;
    a.invstd = s->invstd;
    a.r = s->r;
    a.d = s->d;
    a.w = s->w;
    a.center = s->center;
    a.batch = s->batch;
    a.gx = nn__in_grad_w(n, 0, &beta);
    a.gx_add = beta != 0.0f;
    a.gw = s->iw ? nn__in_grad(n, s->iw) : NULL;
    a.gb = s->ib ? nn__in_grad(n, s->ib) : NULL;
    a.work = s->work;
    nn__norm_backward_kernel(&s->q, &a);
}

/* The output and node of a normalization of x with geometry q; with batch,
   the statistics of x (mean, biased var, invstd = 1/sqrt(var + eps)); else
   the caller fills mean and invstd.  NULL when out of memory. */
static nn__normrun *nn__norm_begin(const char *op, nn_tensor *x, nn_tensor *w, nn_tensor *b,
                                   nn__normgeo q, int center, int batch, float eps) {
    nn_tensor *in[3], *out;
    nn__normrun *s;
    int nin = 1, iw = 0, ib = 0, ns = nn__norm_nsets(&q), i;
    float *f;
    in[0] = x;
    if (w) iw = nin, in[nin++] = w;
    if (b) ib = nin, in[nin++] = b;
    if (!(out = nn__op(op, in, nin, nn_shape_of(x), nn__norm_backward))) return NULL;
    s = (nn__normrun *)nn__scratch(out, sizeof *s);
    f = (float *)nn__scratch(out, (3 * (size_t)ns + (w ? 0 : (size_t)q.C) + (b ? 0 : (size_t)q.C)) *
                                      sizeof(float));
    if (!s || !f) return NULL;
    memset(s, 0, sizeof *s);
    s->q = q;
    s->center = center;
    s->batch = batch;
    s->iw = iw;
    s->ib = ib;
    s->mean = f;
    s->var = f + ns;
    s->invstd = f + 2 * ns;
    f += 3 * (size_t)ns;
    if (!w)
        for (i = 0; i < q.C; i++) f[i] = 1.0f;
    s->w = w ? w->data : f;
    if (!w) f += q.C;
    if (!b)
        for (i = 0; i < q.C; i++) f[i] = 0.0f;
    s->b = b ? b->data : f;
    s->x = x;
    s->out = out;
    if (out->node) {
        out->node->saved = s;
        if (nn__norm_work(&q) &&
            !(s->work = (double *)nn__scratch(out, nn__norm_work(&q) * sizeof(double))))
            return NULL;
    }
    if (batch) {
        nn__norm_stats(&q, x->data, center, s->mean, s->var);
        for (i = 0; i < ns; i++) s->invstd[i] = (float)(1.0 / sqrt((double)s->var[i] + (double)eps));
    }
    return s;
}

/* The affine pass of s; returns the output (NULL for a NULL s). */
static nn_tensor *nn__norm_end(nn__normrun *s) {
    const float *k;
    if (!s) return NULL;
    k = s->invstd;
    if (s->r) {
        int i, ns = nn__norm_nsets(&s->q);
        float *kr = (float *)nn__scratch(s->out, (size_t)ns * sizeof(float));
        if (!kr) return NULL;
        for (i = 0; i < ns; i++) kr[i] = s->invstd[i] * s->r[i];
        k = kr;
    }
    nn__norm_affine(&s->q, s->x->data, s->out->data, s->mean, k, s->d, s->w, s->b);
    return s->out;
}

/* "[a,b,c]" of n dims into buf. */
static const char *nn__dims_str(char *buf, size_t size, const int *d, int n) {
    size_t used = 0;
    int i;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "[");
    for (i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%d" : "%d", d[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* 1 when t is NULL or has exactly the n dims d. */
static int nn__dims_match(const nn_tensor *t, const int *d, int n) {
    int i;
    if (!t) return 1;
    if (t->ndim != n) return 0;
    for (i = 0; i < n; i++)
        if (t->shape[i] != d[i]) return 0;
    return 1;
}

/* x [N,C,*] with C >= 1 into *q (G = C, B = 1); 0 after a report. */
static int nn__norm_nc(const char *op, const nn_tensor *x, int min_dims, nn__normgeo *q) {
    if (!x || x->ndim < min_dims || x->shape[1] < 1) {
        nn__misuse("%s: needs x [N,C%s] with C >= 1, got %s", op, min_dims > 2 ? ",*" : ",...",
                   nn__ts(x));
        return 0;
    }
    q->N = x->shape[0];
    q->C = x->shape[1];
    q->G = q->C;
    q->B = 1;
    q->S = q->N ? x->numel / ((size_t)q->N * (size_t)q->C) : 0;
    return 1;
}

/* A per-channel weight, bias, running mean or variance t must be NULL or [C]. */
static int nn__norm_vec_ok(const char *op, const nn_tensor *x, int C, const char *what,
                           const nn_tensor *t) {
    if (nn__dims_match(t, &C, 1)) return 1;
    nn__misuse("%s: %s must be [%d] (the channels of x %s), got %s", op, what, C, nn__ts(x),
               nn__ts(t));
    return 0;
}

static int nn__norm_eps_ok(const char *op, float eps) {
    if (eps >= 0.0f) return 1;
    nn__misuse("%s: eps must be >= 0, got %g", op, (double)eps);
    return 0;
}

/* Layer norm (center) and RMS norm over the last k dims of x. */
static nn_tensor *nn__lnorm(const char *op, nn_tensor *x, int k, nn_tensor *w, nn_tensor *b,
                            float eps, int center) {
    nn__normgeo q;
    char buf[96];
    size_t D = 1;
    int i;
    if (!x || k < 1 || k > x->ndim) {
        nn__misuse("%s: normalizes the last k dims: needs 1 <= k <= ndim, got k=%d for x %s", op,
                   k, nn__ts(x));
        return NULL;
    }
    for (i = x->ndim - k; i < x->ndim; i++) D *= (size_t)x->shape[i];
    if (!nn__dims_match(w, x->shape + x->ndim - k, k) || !nn__dims_match(b, x->shape + x->ndim - k, k)) {
        nn__misuse("%s: weight %s and bias %s must have the normalized shape %s (the last %d dims "
                   "of x %s)", op, w ? nn__ts(w) : "none", b ? nn__ts(b) : "none",
                   nn__dims_str(buf, sizeof buf, x->shape + x->ndim - k, k), k, nn__ts(x));
        return NULL;
    }
    if (!nn__norm_eps_ok(op, eps)) return NULL;
    if (D < 1 || D > (size_t)INT_MAX) {
        nn__misuse("%s: the normalized shape of x %s holds %zu values", op, nn__ts(x), D);
        return NULL;
    }
    q.C = (int)D;
    q.N = (int)(x->numel / D);
    q.G = q.B = 1;
    q.S = 1;
    return nn__norm_end(nn__norm_begin(op, x, w, b, q, center, 1, eps));
}

NNDEF nn_tensor *nn_layer_norm_op(nn_tensor *x, int k, nn_tensor *weight, nn_tensor *bias, float eps) {
    return nn__lnorm("nn_layer_norm_op", x, k, weight, bias, eps, 1);
}
NNDEF nn_tensor *nn_rms_norm_op(nn_tensor *x, int k, nn_tensor *weight, float eps) {
    return nn__lnorm("nn_rms_norm_op", x, k, weight, NULL, eps, 0);
}

NNDEF nn_tensor *nn_group_norm_op(nn_tensor *x, int groups, nn_tensor *weight, nn_tensor *bias,
                                  float eps) {
    const char *op = "nn_group_norm_op";
    nn__normgeo q;
    if (!nn__norm_nc(op, x, 2, &q)) return NULL;
    if (groups < 1 || q.C % groups != 0) {
        nn__misuse("%s: %d groups do not divide the %d channels of x %s", op, groups, q.C, nn__ts(x));
        return NULL;
    }
    if (!nn__norm_vec_ok(op, x, q.C, "weight", weight) || !nn__norm_vec_ok(op, x, q.C, "bias", bias) ||
        !nn__norm_eps_ok(op, eps))
        return NULL;
    q.G = groups;
    return nn__norm_end(nn__norm_begin(op, x, weight, bias, q, 1, 1, eps));
}

/* running = (1 - f) running + f v for c < C. */
static void nn__norm_ema(float *running, const float *v, int C, float f) {
    int c;
    for (c = 0; c < C; c++) running[c] = (1.0f - f) * running[c] + f * v[c];
}

NNDEF nn_tensor *nn_instance_norm_op(nn_tensor *x, nn_tensor *running_mean, nn_tensor *running_var,
                                     nn_tensor *weight, nn_tensor *bias, int use_input_stats,
                                     float momentum, float eps) {
    const char *op = "nn_instance_norm_op";
    nn__normgeo q;
    nn__normrun *s;
    int c, n;
    if (!nn__norm_nc(op, x, 3, &q)) return NULL;
    if (!nn__norm_vec_ok(op, x, q.C, "weight", weight) || !nn__norm_vec_ok(op, x, q.C, "bias", bias) ||
        !nn__norm_vec_ok(op, x, q.C, "running_mean", running_mean) ||
        !nn__norm_vec_ok(op, x, q.C, "running_var", running_var) || !nn__norm_eps_ok(op, eps))
        return NULL;
    if (!use_input_stats && (!running_mean || !running_var)) {
        nn__misuse("%s: without use_input_stats the running statistics are needed (x %s)", op, nn__ts(x));
        return NULL;
    }
    if (use_input_stats && q.S < 2) {
        nn__misuse("%s: needs more than one spatial element per channel, got x %s", op, nn__ts(x));
        return NULL;
    }
    if (!(momentum >= 0.0f && momentum <= 1.0f)) {
        nn__misuse("%s: momentum must be in [0,1], got %g", op, (double)momentum);
        return NULL;
    }
    if (!use_input_stats) { /* the running statistics, as batch norm's evaluation */
        q.B = NN__MAX(q.N, 1);
        if (!(s = nn__norm_begin(op, x, weight, bias, q, 1, 0, eps))) return NULL;
        for (c = 0; c < q.C; c++) {
            s->mean[c] = running_mean->data[c];
            s->invstd[c] = 1.0f / sqrtf(running_var->data[c] + eps);
        }
        return nn__norm_end(s);
    }
    if (!(s = nn__norm_begin(op, x, weight, bias, q, 1, 1, eps))) return NULL;
    /* the running statistics move towards the mean over the samples of the
       instance means and unbiased variances (torch.instance_norm) */
    for (c = 0; c < q.C && q.N > 0; c++) {
        double sm = 0.0, sv = 0.0, M = (double)q.S;
        float am, av;
        for (n = 0; n < q.N; n++) {
            sm += (double)s->mean[n * q.C + c];
            sv += (double)s->var[n * q.C + c] * M / (M - 1.0);
        }
        am = (float)(sm / q.N);
        av = (float)(sv / q.N);
        if (running_mean) nn__norm_ema(running_mean->data + c, &am, 1, momentum);
        if (running_var) nn__norm_ema(running_var->data + c, &av, 1, momentum);
    }
    return nn__norm_end(s);
}

/* Batch norm and its variants.  Training: statistics over consecutive
   virtual batches of vb samples (0: the whole batch); the running
   statistics take each virtual batch in turn, as batch norm run on each;
   a momentum < 0 is the cumulative average 1/num_batches_tracked (*nbt,
   counted once per virtual batch).  renorm: r and d of each virtual batch
   against the running statistics before its update (Ioffe 2017). */
typedef struct nn__bnargs {
    nn_tensor *rm, *rv, *w, *b;
    int training, vb, renorm;
    float momentum, eps, r_max, d_max;
    int64_t *nbt;
} nn__bnargs;

static nn_tensor *nn__bn(const char *op, nn_tensor *x, const nn__bnargs *a) {
    nn__normgeo q;
    nn__normrun *s;
    int c, blk, nblk;
    if (!x || x->ndim < 2 || x->shape[1] < 1) {
        nn__misuse("%s: needs x [N,C,...], got %s", op, nn__ts(x));
        return NULL;
    }
    nn__norm_nc(op, x, 2, &q);
    if (!nn__dims_match(a->w, &q.C, 1) || !nn__dims_match(a->b, &q.C, 1) ||
        !nn__dims_match(a->rm, &q.C, 1) || !nn__dims_match(a->rv, &q.C, 1) ||
        (!a->training && (!a->rm || !a->rv)) || !(a->eps >= 0.0f)) {
        nn__misuse("%s: x %s has %d channels; weight %s, bias %s, running_mean %s, "
                   "running_var %s must be [%d] (running statistics are required in evaluation; "
                   "eps=%g must be >= 0)",
                   op, nn__ts(x), q.C, a->w ? nn__ts(a->w) : "none", a->b ? nn__ts(a->b) : "none",
                   a->rm ? nn__ts(a->rm) : "none", a->rv ? nn__ts(a->rv) : "none", q.C,
                   (double)a->eps);
        return NULL;
    }
    if (!a->training) {
        q.B = NN__MAX(q.N, 1);
        if (!(s = nn__norm_begin(op, x, a->w, a->b, q, 1, 0, a->eps))) return NULL;
        for (c = 0; c < q.C; c++) {
            s->mean[c] = a->rm->data[c];
            s->invstd[c] = 1.0f / sqrtf(a->rv->data[c] + a->eps);
        }
        return nn__norm_end(s);
    }
    q.B = a->vb > 0 && a->vb < q.N ? a->vb : NN__MAX(q.N, 1);
    nblk = (q.N + q.B - 1) / q.B;
    if ((double)q.N * (double)q.S < 2.0 || (double)(q.N - (nblk - 1) * q.B) * (double)q.S < 2.0) {
        nn__misuse("%s: training needs more than one value per channel%s, got x %s%s", op,
                   q.B < q.N ? " in every virtual batch" : "", nn__ts(x),
                   q.B < q.N ? " (the last virtual batch is too small)" : "");
        return NULL;
    }
    if (a->renorm && (!a->rm || !a->rv)) {
        nn__misuse("%s: batch renormalization needs the running statistics (x %s)", op, nn__ts(x));
        return NULL;
    }
    if (!(s = nn__norm_begin(op, x, a->w, a->b, q, 1, 1, a->eps))) return NULL;
    if (a->renorm) {
        float *rd = (float *)nn__scratch(s->out, 2 * (size_t)nblk * (size_t)q.C * sizeof(float));
        if (!rd) return NULL;
        s->r = rd;
        s->d = rd + (size_t)nblk * q.C;
    }
    for (blk = 0; blk < nblk; blk++) {
        float *m = s->mean + (size_t)blk * q.C, *v = s->var + (size_t)blk * q.C, f = a->momentum;
        double M = nn__norm_setsize(&q, blk * q.C);
        if (a->renorm)
            for (c = 0; c < q.C; c++) {
                float sd = sqrtf(a->rv->data[c] + a->eps), r = 1.0f / (s->invstd[blk * q.C + c] * sd);
                float d = (m[c] - a->rm->data[c]) / sd;
                s->r[blk * q.C + c] = NN__MIN(NN__MAX(r, 1.0f / a->r_max), a->r_max);
                s->d[blk * q.C + c] = NN__MIN(NN__MAX(d, -a->d_max), a->d_max);
            }
        if (a->nbt) {
            *a->nbt += 1;
            if (f < 0.0f) f = (float)(1.0 / (double)*a->nbt);
        }
        if (a->rm) nn__norm_ema(a->rm->data, m, q.C, f);
        if (a->rv)
            for (c = 0; c < q.C; c++)
                a->rv->data[c] = (1.0f - f) * a->rv->data[c] + f * (float)((double)v[c] * M / (M - 1.0));
    }
    return nn__norm_end(s);
}

/* The arguments of the batch norm ops. */
static nn__bnargs nn__bnargs_of(nn_tensor *rm, nn_tensor *rv, nn_tensor *w, nn_tensor *b,
                                int training, float momentum, float eps) {
    nn__bnargs a;
    memset(&a, 0, sizeof a);
    a.rm = rm;
    a.rv = rv;
    a.w = w;
    a.b = b;
    a.training = training != 0;
    a.momentum = momentum;
    a.eps = eps;
    return a;
}

/* momentum in [0,1] for the ghost and renormalization ops; 0 after a report. */
static int nn__bn_momentum_ok(const char *op, float momentum) {
    if (momentum >= 0.0f && momentum <= 1.0f) return 1;
    nn__misuse("%s: momentum must be in [0,1], got %g", op, (double)momentum);
    return 0;
}

NNDEF nn_tensor *nn_batch_norm_op(nn_tensor *x, nn_tensor *running_mean,
                                  nn_tensor *running_var, nn_tensor *weight,
                                  nn_tensor *bias, int training, float momentum, float eps) {
    nn__bnargs a = nn__bnargs_of(running_mean, running_var, weight, bias, training, momentum, eps);
    return nn__bn("nn_batch_norm_op", x, &a);
}

NNDEF nn_tensor *nn_ghost_batch_norm_op(nn_tensor *x, nn_tensor *running_mean,
                                        nn_tensor *running_var, nn_tensor *weight, nn_tensor *bias,
                                        int training, float momentum, float eps, int virtual_batch) {
    const char *op = "nn_ghost_batch_norm_op";
    nn__bnargs a = nn__bnargs_of(running_mean, running_var, weight, bias, training, momentum, eps);
    if (!nn__bn_momentum_ok(op, momentum)) return NULL;
    if (virtual_batch < 1) {
        nn__misuse("%s: virtual_batch must be >= 1, got %d", op, virtual_batch);
        return NULL;
    }
    a.vb = virtual_batch;
    return nn__bn(op, x, &a);
}

/* r_max >= 1 and d_max >= 0; 0 after a report. */
static int nn__renorm_ok(const char *op, float r_max, float d_max) {
    if (r_max >= 1.0f && d_max >= 0.0f) return 1;
    nn__misuse("%s: needs r_max >= 1 and d_max >= 0, got r_max=%g, d_max=%g", op, (double)r_max,
               (double)d_max);
    return 0;
}

NNDEF nn_tensor *nn_batch_renorm_op(nn_tensor *x, nn_tensor *running_mean, nn_tensor *running_var,
                                    nn_tensor *weight, nn_tensor *bias, int training,
                                    float momentum, float eps, float r_max, float d_max) {
    const char *op = "nn_batch_renorm_op";
    nn__bnargs a = nn__bnargs_of(running_mean, running_var, weight, bias, training, momentum, eps);
    if (!nn__bn_momentum_ok(op, momentum) || !nn__renorm_ok(op, r_max, d_max)) return NULL;
    a.renorm = 1;
    a.r_max = r_max;
    a.d_max = d_max;
    return nn__bn(op, x, &a);
}

/* --- the modules --- */

/* The options with their defaults filled in; 0 after a report.  def_affine
   and def_track are the layer's defaults (1 on, 0 off). */
static int nn__norm_opts_fill(const char *op, nn_norm_opts *o, int def_affine, int def_track,
                              float def_eps) {
    if (!(o->eps >= 0.0f) || !(o->momentum <= 1.0f) ||
        (o->momentum < 0.0f && o->momentum != NN_MOMENTUM_CUMULATIVE) || o->virtual_batch < 0 ||
        o->warmup < 0 || (o->r_max != 0.0f && !(o->r_max >= 1.0f)) || !(o->d_max >= 0.0f) ||
        o->affine < -1 || o->affine > 1 || o->track_running_stats < -1 || o->track_running_stats > 1) {
        nn__misuse("%s: bad options: eps=%g (>= 0), momentum=%g (in [0,1] or "
                   "NN_MOMENTUM_CUMULATIVE), affine=%d and track_running_stats=%d (-1, 0 or 1), "
                   "virtual_batch=%d and warmup=%d (>= 0), r_max=%g (>= 1), d_max=%g (>= 0)",
                   op, (double)o->eps, (double)o->momentum, o->affine, o->track_running_stats,
                   o->virtual_batch, o->warmup, (double)o->r_max, (double)o->d_max);
        return 0;
    }
    if (o->eps == 0.0f) o->eps = def_eps;
    if (o->momentum == 0.0f) o->momentum = 0.1f;
    if (o->r_max == 0.0f) o->r_max = 3.0f;
    if (o->d_max == 0.0f) o->d_max = 5.0f;
    o->affine = o->affine ? o->affine > 0 : def_affine;
    o->track_running_stats = o->track_running_stats ? o->track_running_stats > 0 : def_track;
    return 1;
}

/* A persistent NN_TENSOR_INT64 scalar holding 0. */
static nn_tensor *nn__int64_scalar(void) {
    nn_tensor *t = nn__tensor_new("nn_batchnorm", NULL, nn_shape_scalar(), 1);
    float *d;
    if (!t) return NULL;
    /* 8 bytes per element: reallocate as two floats' worth, zeroed */
    if (!(d = nn__alloc_floats(2 * t->numel, 1))) {
        nn_tensor_free(t);
        return NULL;
    }
    nn__free_floats(t->data);
    t->data = d;
    t->flags |= NN_TENSOR_INT64;
    return t;
}

/* The state of every normalization module. */
typedef struct nn__bn_state {
    nn_tensor *weight, *bias, *running_mean, *running_var;
    nn_tensor *num_batches_tracked;   /* NN_TENSOR_INT64 scalar */
    nn_norm_opts o;                   /* filled in */
    int kind;                         /* NN__NORM_* */
    int min_dims, max_dims;           /* of x ([N,C,...] layers) */
    int groups;                       /* group norm */
    nn_shape shape;                   /* layer and RMS norm: the normalized shape */
} nn__bn_state;

enum { NN__NORM_BN, NN__NORM_RENORM, NN__NORM_IN, NN__NORM_GN, NN__NORM_LN, NN__NORM_RMS };

/* Weight (ones) and bias (zeros) of the shape s when affine (bias only when
   with_bias), running statistics [C] when track; 0 when out of memory. */
static int nn__norm_make_state(nn_module *m, nn__bn_state *st, nn_shape s, int C, int with_bias) {
    if (st->o.affine &&
        (!(st->weight = nn_module_add_param(m, "weight", nn_ones(NULL, s))) ||
         (with_bias && !(st->bias = nn_module_add_param(m, "bias", nn_zeros(NULL, s))))))
        return 0;
    if (st->o.track_running_stats &&
        (!(st->running_mean = nn_module_add_buffer(m, "running_mean", nn_zeros(NULL, NN_SHAPE(C)))) ||
         !(st->running_var = nn_module_add_buffer(m, "running_var", nn_ones(NULL, NN_SHAPE(C)))) ||
         !(st->num_batches_tracked = nn_module_add_buffer(m, "num_batches_tracked", nn__int64_scalar()))))
        return 0;
    return 1;
}

static nn_tensor *nn__bn_forward(nn_module *m, nn_tensor *x) {
    nn__bn_state *st = (nn__bn_state *)m->user;
    nn__bnargs a;
    int64_t *nbt = st->num_batches_tracked ? (int64_t *)(void *)st->num_batches_tracked->data : NULL;
    if (!x || x->ndim < st->min_dims || x->ndim > st->max_dims) {
        nn__misuse("needs x %s, got %s", st->min_dims == 4 ? "[N,C,H,W]" : "[N,C] or [N,C,L]",
                   nn__ts(x));
        return NULL;
    }
    /* PyTorch: batch statistics in training, and always without running ones */
    a = nn__bnargs_of(st->running_mean, st->running_var, st->weight, st->bias,
                      m->training || !st->running_mean, st->o.momentum, st->o.eps);
    a.vb = st->o.virtual_batch;
    a.nbt = m->training ? nbt : NULL;
    if (st->kind == NN__NORM_RENORM && a.training && nbt && *nbt >= st->o.warmup) {
        a.renorm = 1;
        a.r_max = st->o.r_max;
        a.d_max = st->o.d_max;
    }
    if (a.momentum < 0.0f && !a.nbt) a.momentum = 0.0f; /* cumulative without a count: no update */
    return nn__bn(st->kind == NN__NORM_RENORM ? "nn_batch_renorm_op" : "nn_batch_norm_op", x, &a);
}

static nn_module *nn__normmod_make(const char *op, const char *type, int kind, nn_shape s, int C,
                                   int groups, int dims, nn_norm_opts o);

NNDEF void nn_batchnorm_set(nn_module *m, float momentum, float eps) {
    nn__bn_state *st;
    if (!m || m->forward != nn__bn_forward || !(momentum >= 0.0f && momentum <= 1.0f) || !(eps > 0.0f)) {
        nn__misuse("nn_batchnorm_set: needs a BatchNorm module, momentum in [0,1] and eps > 0, "
                   "got %s, momentum=%g, eps=%g", m ? m->type : "NULL", (double)momentum, (double)eps);
        return;
    }
    st = (nn__bn_state *)m->user;
    st->o.momentum = momentum;
    st->o.eps = eps;
}

NNDEF void nn_batchrenorm_set(nn_module *m, float r_max, float d_max) {
    nn__bn_state *st = m && m->forward == nn__bn_forward ? (nn__bn_state *)m->user : NULL;
    if (!st || st->kind != NN__NORM_RENORM) {
        nn__misuse("nn_batchrenorm_set: needs a batch renormalization module, got %s",
                   m ? m->type : "NULL");
        return;
    }
    if (!nn__renorm_ok("nn_batchrenorm_set", r_max, d_max)) return;
    st->o.r_max = r_max;
    st->o.d_max = d_max;
}

/* Batch norm (kind NN__NORM_BN) and renormalization modules over C channels. */
static nn_module *nn__bn_new(const char *op, const char *type, int kind, int C, int twod,
                             const nn_norm_opts *o) {
    nn_norm_opts d;
    memset(&d, 0, sizeof d);
    return nn__normmod_make(op, type, kind, NN_SHAPE(C), C, 1, twod ? -4 : -2, o ? *o : d);
}
NNDEF nn_module *nn_batchnorm1d(int features) {
    return nn__bn_new("nn_batchnorm1d", "BatchNorm1d", NN__NORM_BN, features, 0, NULL);
}
NNDEF nn_module *nn_batchnorm2d(int channels) {
    return nn__bn_new("nn_batchnorm2d", "BatchNorm2d", NN__NORM_BN, channels, 1, NULL);
}
NNDEF nn_module *nn_batchnorm1d_ex(int features, nn_norm_opts opts) {
    return nn__bn_new("nn_batchnorm1d_ex", "BatchNorm1d", NN__NORM_BN, features, 0, &opts);
}
NNDEF nn_module *nn_batchnorm2d_ex(int channels, nn_norm_opts opts) {
    return nn__bn_new("nn_batchnorm2d_ex", "BatchNorm2d", NN__NORM_BN, channels, 1, &opts);
}
NNDEF nn_module *nn_batchrenorm1d(int features, nn_norm_opts opts) {
    return nn__bn_new("nn_batchrenorm1d", "BatchRenorm1d", NN__NORM_RENORM, features, 0, &opts);
}
NNDEF nn_module *nn_batchrenorm2d(int channels, nn_norm_opts opts) {
    return nn__bn_new("nn_batchrenorm2d", "BatchRenorm2d", NN__NORM_RENORM, channels, 1, &opts);
}

/* Instance, group, layer and RMS norm modules. */
static nn_tensor *nn__normmod_forward(nn_module *m, nn_tensor *x) {
    const nn__bn_state *st = (const nn__bn_state *)m->user;
    char buf[96];
    int k = st->shape.ndim;
    switch (st->kind) {
    case NN__NORM_IN:
        if (!x || x->ndim != st->min_dims) {
            nn__misuse("needs x %s, got %s", st->min_dims == 4 ? "[N,C,H,W]" : "[N,C,L]", nn__ts(x));
            return NULL;
        }
        return nn_instance_norm_op(x, st->running_mean, st->running_var, st->weight, st->bias,
                                   m->training || !st->running_mean, st->o.momentum, st->o.eps);
    case NN__NORM_GN:
        return nn_group_norm_op(x, st->groups, st->weight, st->bias, st->o.eps);
    default:
        if (!x || x->ndim < k ||
            memcmp(x->shape + x->ndim - k, st->shape.d, (size_t)k * sizeof(int)) != 0) {
            nn__misuse("normalized_shape %s does not match the last %d dims of x %s",
                       nn__dims_str(buf, sizeof buf, st->shape.d, k), k, nn__ts(x));
            return NULL;
        }
        if (st->kind == NN__NORM_RMS) return nn_rms_norm_op(x, k, st->weight, st->o.eps);
        return nn_layer_norm_op(x, k, st->weight, st->bias, st->o.eps);
    }
}

/* A normalization module of the kind; dims: the ndim of x (0: any; -2:
   2 or 3, -4: 4, batch norm's). */
static nn_module *nn__normmod_make(const char *op, const char *type, int kind, nn_shape s, int C,
                                   int groups, int dims, nn_norm_opts o) {
    nn_module *m;
    nn__bn_state *st;
    int i, bn = kind == NN__NORM_BN || kind == NN__NORM_RENORM, bad = C < 1 || s.ndim < 1;
    for (i = 0; i < s.ndim; i++) bad |= s.d[i] < 1;
    if (bad) {
        nn__misuse("%s: sizes must be positive, got %d channels / shape of %d dims", op, C, s.ndim);
        return NULL;
    }
    if (kind == NN__NORM_GN && (groups < 1 || C % groups != 0)) {
        nn__misuse("%s: %d groups do not divide %d channels", op, groups, C);
        return NULL;
    }
    if (!nn__norm_opts_fill(op, &o, kind != NN__NORM_IN, bn, kind == NN__NORM_RMS ? FLT_EPSILON : 1e-5f))
        return NULL;
    if (kind != NN__NORM_IN && !bn) o.track_running_stats = 0;
    if ((o.momentum < 0.0f && !bn) || (kind == NN__NORM_RENORM && !o.track_running_stats)) {
        nn__misuse("%s: %s", op, o.momentum < 0.0f && !bn ? "a cumulative momentum (momentum=None) "
                   "is batch norm's only" : "batch renormalization needs track_running_stats");
        return NULL;
    }
    if (!(m = nn__module_with_state(type, bn ? nn__bn_forward : nn__normmod_forward, sizeof(nn__bn_state))))
        return NULL;
    st = (nn__bn_state *)m->user;
    st->o = o;
    st->kind = kind;
    st->min_dims = dims == -2 ? 2 : dims == -4 ? 4 : dims;
    st->max_dims = dims == -2 ? 3 : dims == -4 ? 4 : dims;
    st->groups = groups;
    st->shape = s;
    if (!nn__norm_make_state(m, st, s, C, kind != NN__NORM_RMS)) {
        nn_module_free(m);
        return NULL;
    }
    return m;
}

NNDEF nn_module *nn_layernorm(nn_shape normalized_shape, nn_norm_opts opts) {
    return nn__normmod_make("nn_layernorm", "LayerNorm", NN__NORM_LN, normalized_shape, 1, 1, 0, opts);
}
NNDEF nn_module *nn_rmsnorm(nn_shape normalized_shape, nn_norm_opts opts) {
    return nn__normmod_make("nn_rmsnorm", "RMSNorm", NN__NORM_RMS, normalized_shape, 1, 1, 0, opts);
}
NNDEF nn_module *nn_groupnorm(int groups, int channels, nn_norm_opts opts) {
    return nn__normmod_make("nn_groupnorm", "GroupNorm", NN__NORM_GN, NN_SHAPE(channels), channels,
                            groups, 0, opts);
}
NNDEF nn_module *nn_instancenorm1d(int channels, nn_norm_opts opts) {
    return nn__normmod_make("nn_instancenorm1d", "InstanceNorm1d", NN__NORM_IN, NN_SHAPE(channels),
                            channels, 1, 3, opts);
}
NNDEF nn_module *nn_instancenorm2d(int channels, nn_norm_opts opts) {
    return nn__normmod_make("nn_instancenorm2d", "InstanceNorm2d", NN__NORM_IN, NN_SHAPE(channels),
                            channels, 1, 4, opts);
}

/* --- weight and spectral normalization --- */

/* Weight norm along dim of v: v viewed as [A, D, I]; dim -1: the whole
   tensor (D = 1), as torch's norm_except_dim. */
static void nn__wn_view(const nn_tensor *v, int dim, size_t *A, int *D, size_t *I) {
    if (dim < 0) {
        *A = 1;
        *D = 1;
        *I = v->numel;
        return;
    }
    nn__split_axis(v, dim, A, D, I);
}

/* Saved: the norm of each slice ([D]) and dim. */
static void nn__wn_backward(nn__node *n) {
    nn_tensor *v = n->in[0], *g = n->in[1];
    const float *nrm = (const float *)n->saved, *gw = n->out->grad;
    float *gv = nn__in_grad(n, 0), *gg = nn__in_grad(n, 1);
    size_t A, I, a, i;
    int D, d;
    nn__wn_view(v, n->iarg[0], &A, &D, &I);
    for (d = 0; d < D; d++) {
        double dot = 0.0;
        float k, c;
        for (a = 0; a < A; a++)
            dot += (double)nn__dot16(gw + (a * (size_t)D + (size_t)d) * I, v->data + (a * (size_t)D + (size_t)d) * I, I);
        if (gg) gg[d] += (float)(dot / (double)nrm[d]);
        if (!gv) continue;
        k = g->data[d] / nrm[d];
        c = (float)(-(double)k * dot / ((double)nrm[d] * (double)nrm[d]));
        for (a = 0; a < A; a++) {
            size_t off = (a * (size_t)D + (size_t)d) * I;
            for (i = 0; i < I; i++) gv[off + i] += k * gw[off + i] + c * v->data[off + i];
        }
    }
}

NNDEF nn_tensor *nn_weight_norm_op(nn_tensor *v, nn_tensor *g, int dim) {
    const char *op = "nn_weight_norm_op";
    nn_tensor *in[2], *out;
    float *nrm;
    size_t A, I, a, i;
    int D, d;
    if (!v || !g || dim < -1 || dim >= v->ndim) {
        nn__misuse("%s: needs v, g and -1 <= dim < v's ndim (-1: the whole tensor), got v %s, "
                   "g %s, dim=%d", op, nn__ts(v), nn__ts(g), dim);
        return NULL;
    }
    nn__wn_view(v, dim, &A, &D, &I);
    if (g->numel != (size_t)D) {
        nn__misuse("%s: g %s must hold one value per slice of v %s along dim %d (%d)", op, nn__ts(g),
                   nn__ts(v), dim, D);
        return NULL;
    }
    in[0] = v;
    in[1] = g;
    if (!(out = nn__op(op, in, 2, nn_shape_of(v), nn__wn_backward))) return NULL;
    if (!(nrm = (float *)nn__scratch(out, (size_t)D * sizeof(float)))) return NULL;
    if (out->node) {
        out->node->saved = nrm;
        out->node->iarg[0] = dim;
    }
    for (d = 0; d < D; d++) {
        double ss = 0.0;
        float k;
        for (a = 0; a < A; a++) ss += (double)nn__sqdev16(v->data + (a * (size_t)D + (size_t)d) * I, 0.0f, I);
        nrm[d] = (float)sqrt(ss);
        k = g->data[d] / nrm[d];
        for (a = 0; a < A; a++) {
            size_t off = (a * (size_t)D + (size_t)d) * I;
            for (i = 0; i < I; i++) out->data[off + i] = v->data[off + i] * k;
        }
    }
    return out;
}

/* W / sigma with sigma = u^T W v for W viewed as [h, w] (u [h], v [w]
   constants); saved: sigma, then u and v. */
static void nn__sn_backward(nn__node *n) {
    nn_tensor *W = n->in[0];
    const float *sv = (const float *)n->saved, *u = sv + 1, *G = n->out->grad;
    float sigma = sv[0], *gW = nn__in_grad(n, 0), c;
    int h = n->iarg[0], w = n->iarg[1], r, j;
    const float *v = u + h;
    if (!gW) return;
    c = (float)(-(double)nn__dot16(G, W->data, W->numel) / ((double)sigma * (double)sigma));
    for (r = 0; r < h; r++)
        for (j = 0; j < w; j++) {
            size_t i = (size_t)r * (size_t)w + (size_t)j;
            gW[i] += G[i] / sigma + c * u[r] * v[j];
        }
}

/* x / max(||x||, eps) in place. */
static void nn__normalize_vec(float *x, size_t n, float eps) {
    float nrm = sqrtf(nn__sqdev16(x, 0.0f, n)), k = 1.0f / NN__MAX(nrm, eps);
    size_t i;
    for (i = 0; i < n; i++) x[i] *= k;
}

/* The spectral-normalized weight of W [h, ...] (w = numel / h): iters power
   iterations on u, v (in place) when update, then W / (u^T W v). */
static nn_tensor *nn__sn_op(const char *op, nn_tensor *W, float *u, float *v, int iters, int update,
                            float eps) {
    nn_tensor *out;
    float *sv, sigma;
    int h = W->shape[0], w = (int)(W->numel / (size_t)h), it, r;
    if (!(out = nn__op(op, &W, 1, nn_shape_of(W), nn__sn_backward))) return NULL;
    for (it = 0; update && it < iters; it++) {
        for (r = 0; r < w; r++) v[r] = 0.0f;
        for (r = 0; r < h; r++) nn__axpy((size_t)w, u[r], W->data + (size_t)r * w, v); /* W^T u */
        nn__normalize_vec(v, (size_t)w, eps);
        for (r = 0; r < h; r++) u[r] = nn__dot16(W->data + (size_t)r * w, v, (size_t)w); /* W v */
        nn__normalize_vec(u, (size_t)h, eps);
    }
    if (!(sv = (float *)nn__scratch(out, (1 + (size_t)h + (size_t)w) * sizeof(float)))) return NULL;
    sigma = 0.0f;
    for (r = 0; r < h; r++) sigma += u[r] * nn__dot16(W->data + (size_t)r * w, v, (size_t)w);
    sv[0] = sigma;
    memcpy(sv + 1, u, (size_t)h * sizeof(float));
    memcpy(sv + 1 + h, v, (size_t)w * sizeof(float));
    if (out->node) {
        out->node->saved = sv;
        out->node->iarg[0] = h;
        out->node->iarg[1] = w;
    }
    for (r = 0; r < (int)W->numel; r++) out->data[r] = W->data[r] / sigma;
    return out;
}

/* A module whose weight is recomputed before each forward from other
   parameters (torch's forward pre-hook): the wrapped module's forward,
   state and destroy are kept here and run with its weight pointer set to
   the computed weight. */
typedef struct nn__wn_state {
    nn_forward_fn forward;
    void *user;
    void (*destroy)(nn_module *self);
    nn_tensor **slot;     /* where the wrapped forward reads the weight */
    nn_tensor *plain;     /* the former parameter: the last weight computed */
    nn_tensor *g, *v;     /* weight norm: weight_g, weight_v; spectral: v = weight_orig */
    nn_tensor *su, *sv;   /* spectral norm: buffers weight_u, weight_v */
    int dim, spectral, iters;
    float eps;
} nn__wn_state;

static nn_tensor *nn__wn_forward(nn_module *m, nn_tensor *x) {
    nn__wn_state *st = (nn__wn_state *)m->user;
    nn_graph *was = nn__cur_graph;
    nn_tensor *w, *y;
    if (!st->v || (st->spectral ? !st->su || !st->sv : !st->g)) {
        nn__misuse("the weight reparameterization is incomplete (out of memory when it was made)");
        return NULL;
    }
    if (x->graph) nn__cur_graph = x->graph; /* the weight goes to x's graph */
    w = st->spectral ? nn__sn_op("nn_spectral_norm", st->v, st->su->data, st->sv->data, st->iters,
                                 m->training, st->eps)
                     : nn_weight_norm_op(st->v, st->g, st->dim);
    nn__cur_graph = was;
    if (!w) return NULL;
    memcpy(st->plain->data, w->data, w->numel * sizeof(float));
    m->user = st->user;
    *st->slot = w;
    y = st->forward(m, x);
    *st->slot = st->plain;
    m->user = st;
    return y;
}

static void nn__wn_destroy(nn_module *m) {
    nn__wn_state *st = (nn__wn_state *)m->user;
    nn_tensor *plain = st->plain;
    m->user = st->user;
    m->destroy = st->destroy;
    m->forward = st->forward;
    nn__free(st);
    if (m->destroy) m->destroy(m);
    nn__tensor_release(plain);
}

/* Take parameter name of m out of its list (the tensor stays alive, held by
   the caller); its index, -1 when absent. */
static int nn__param_take(nn_module *m, const char *name) {
    int i, j;
    for (i = 0; i < m->nparams && strcmp(m->params[i].name, name) != 0; i++) {}
    if (i == m->nparams) return -1;
    nn__free((void *)m->params[i].name);
    for (j = i; j + 1 < m->nparams; j++) m->params[j] = m->params[j + 1];
    m->nparams--;
    m->version++;
    return i;
}

/* Wrap m's parameter name ("weight" of a Linear or convolution). */
static nn__wn_state *nn__wn_wrap(const char *op, nn_module *m, const char *name, int spectral) {
    nn__wn_state *st;
    nn_tensor **slot = NULL, *W;
    if (m && name && strcmp(name, "weight") == 0) {
        if (m->forward == nn__linear_forward) slot = &((nn__linear_state *)m->user)->weight;
        if (m->forward == nn__conv_forward && !(spectral && ((nn__conv_state *)m->user)->transposed))
            slot = &((nn__conv_state *)m->user)->weight;
    }
    if (!slot) {
        nn__misuse("%s: needs the \"weight\" of a Linear or %sconvolution module, got %s \"%s\"", op,
                   spectral ? "(not transposed) " : "", m ? m->type : "NULL", name ? name : "NULL");
        return NULL;
    }
    if (!(st = (nn__wn_state *)nn__calloc(1, sizeof *st))) return NULL;
    W = *slot;
    st->forward = m->forward;
    st->user = m->user;
    st->destroy = m->destroy;
    st->slot = slot;
    st->plain = W;
    nn__param_take(m, name);
    m->user = st;
    m->destroy = nn__wn_destroy;
    m->forward = nn__wn_forward;
    return st;
}

NNDEF nn_module *nn_weight_norm(nn_module *m, const char *name, int dim) {
    const char *op = "nn_weight_norm";
    nn__wn_state *st;
    nn_tensor *W, *g, *v;
    nn_shape gs;
    size_t A, I;
    int D, d;
    if (m && m->forward == nn__linear_forward &&
        (dim < -1 || dim >= ((nn__linear_state *)m->user)->weight->ndim)) {
        nn__misuse("%s: dim %d out of range for the weight %s (-1: the whole tensor)", op, dim,
                   nn__ts(((nn__linear_state *)m->user)->weight));
        return NULL;
    }
    if (m && m->forward == nn__conv_forward &&
        (dim < -1 || dim >= ((nn__conv_state *)m->user)->weight->ndim)) {
        nn__misuse("%s: dim %d out of range for the weight %s (-1: the whole tensor)", op, dim,
                   nn__ts(((nn__conv_state *)m->user)->weight));
        return NULL;
    }
    if (!(st = nn__wn_wrap(op, m, name, 0))) return NULL;
    W = st->plain;
    nn__wn_view(W, dim, &A, &D, &I);
    gs = dim < 0 ? nn_shape_scalar() : nn_shape_of(W);
    for (d = 0; dim >= 0 && d < gs.ndim; d++)
        if (d != dim) gs.d[d] = 1;
    st->dim = dim;
    /* g = ||W|| per slice, v = W (torch.nn.utils.weight_norm): registered
       after the other parameters, g first */
    if (!(g = nn_zeros(NULL, gs)) || !(v = nn_zeros(NULL, nn_shape_of(W)))) {
        nn_tensor_free(g);
        return NULL;
    }
    memcpy(v->data, W->data, W->numel * sizeof(float));
    for (d = 0; d < D; d++) {
        double ss = 0.0;
        size_t a;
        for (a = 0; a < A; a++) ss += (double)nn__sqdev16(W->data + (a * (size_t)D + (size_t)d) * I, 0.0f, I);
        g->data[d] = (float)sqrt(ss);
    }
    if (!(st->g = nn_module_add_param(m, "weight_g", g)) || !(st->v = nn_module_add_param(m, "weight_v", v)))
        return NULL;
    return m;
}

NNDEF nn_module *nn_spectral_norm(nn_module *m, const char *name, int n_power_iterations) {
    const char *op = "nn_spectral_norm";
    nn__wn_state *st;
    nn_tensor *W, *orig;
    int h, w;
    if (n_power_iterations < 0) {
        nn__misuse("%s: n_power_iterations must be >= 0, got %d", op, n_power_iterations);
        return NULL;
    }
    if (!(st = nn__wn_wrap(op, m, name, 1))) return NULL;
    W = st->plain;
    h = W->shape[0];
    w = (int)(W->numel / (size_t)h);
    st->spectral = 1;
    st->iters = n_power_iterations;
    st->eps = 1e-12f;
    if (!(orig = nn_zeros(NULL, nn_shape_of(W)))) return NULL;
    memcpy(orig->data, W->data, W->numel * sizeof(float));
    if (!(st->v = nn_module_add_param(m, "weight_orig", orig)) ||
        !(st->su = nn_module_add_buffer(m, "weight_u", nn_randn(NULL, NN_SHAPE(h)))) ||
        !(st->sv = nn_module_add_buffer(m, "weight_v", nn_randn(NULL, NN_SHAPE(w)))))
        return NULL;
    nn__normalize_vec(st->su->data, (size_t)h, st->eps);
    nn__normalize_vec(st->sv->data, (size_t)w, st->eps);
    return m;
}

/* ----- >>layers.act: activations ----------------------------------------- */

/* The options of an activation kind, checked for the op or constructor op;
   0 after a misuse report. */
static int nn__act_check(const char *op, int kind, float a, float b) {
    switch (kind) {
    case NN__ACT_CELU:
        if (!(a != 0.0f) || !isfinite(a)) {
            nn__misuse("%s: alpha must be finite and not 0, got %g", op, (double)a);
            return 0;
        }
        break;
    case NN__ACT_SOFTPLUS:
        if (!(a > 0.0f) || !isfinite(a) || b != b) {
            nn__misuse("%s: needs beta > 0 (finite) and a threshold that is a number, got beta=%g, "
                       "threshold=%g", op, (double)a, (double)b);
            return 0;
        }
        break;
    case NN__ACT_HARDTANH:
        if (!(a < b)) {
            nn__misuse("%s: needs min_val < max_val, got min_val=%g, max_val=%g", op, (double)a,
                       (double)b);
            return 0;
        }
        break;
    case NN__ACT_THRESHOLD:
        if (a != a) {
            nn__misuse("%s: threshold is NaN", op);
            return 0;
        }
        break;
    default: break;
    }
    return 1;
}

/* The op of a kind after checking its options (CELU keeps 1/alpha as b). */
static nn_tensor *nn__act_op(const char *op, int kind, nn_tensor *x, float a, float b) {
    if (!nn__act_check(op, kind, a, b)) return NULL;
    if (kind == NN__ACT_CELU) b = 1.0f / a;
    return nn__act(op, kind, x, a, b);
}

NNDEF nn_tensor *nn_leaky_relu_op(nn_tensor *x, float slope) { return nn__act_op("nn_leaky_relu_op", NN__ACT_LEAKY, x, slope, 0.0f); }
NNDEF nn_tensor *nn_elu_op(nn_tensor *x, float alpha) { return nn__act_op("nn_elu_op", NN__ACT_ELU, x, alpha, 0.0f); }
NNDEF nn_tensor *nn_gelu_op(nn_tensor *x) { return nn__act_op("nn_gelu_op", NN__ACT_GELU, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_gelu_tanh_op(nn_tensor *x) { return nn__act_op("nn_gelu_tanh_op", NN__ACT_GELU_TANH, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_silu_op(nn_tensor *x) { return nn__act_op("nn_silu_op", NN__ACT_SILU, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_selu_op(nn_tensor *x) { return nn__act_op("nn_selu_op", NN__ACT_SELU, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_celu_op(nn_tensor *x, float alpha) { return nn__act_op("nn_celu_op", NN__ACT_CELU, x, alpha, 0.0f); }
NNDEF nn_tensor *nn_softplus_op(nn_tensor *x, float beta, float threshold) { return nn__act_op("nn_softplus_op", NN__ACT_SOFTPLUS, x, beta, threshold); }
NNDEF nn_tensor *nn_softsign_op(nn_tensor *x) { return nn__act_op("nn_softsign_op", NN__ACT_SOFTSIGN, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_mish_op(nn_tensor *x) { return nn__act_op("nn_mish_op", NN__ACT_MISH, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_hardtanh_op(nn_tensor *x, float min_val, float max_val) { return nn__act_op("nn_hardtanh_op", NN__ACT_HARDTANH, x, min_val, max_val); }
NNDEF nn_tensor *nn_relu6_op(nn_tensor *x) { return nn__act_op("nn_relu6_op", NN__ACT_HARDTANH, x, 0.0f, 6.0f); }
NNDEF nn_tensor *nn_hardsigmoid_op(nn_tensor *x) { return nn__act_op("nn_hardsigmoid_op", NN__ACT_HARDSIGMOID, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_hardswish_op(nn_tensor *x) { return nn__act_op("nn_hardswish_op", NN__ACT_HARDSWISH, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_logsigmoid_op(nn_tensor *x) { return nn__act_op("nn_logsigmoid_op", NN__ACT_LOGSIGMOID, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_tanhshrink_op(nn_tensor *x) { return nn__act_op("nn_tanhshrink_op", NN__ACT_TANHSHRINK, x, 0.0f, 0.0f); }
NNDEF nn_tensor *nn_threshold_op(nn_tensor *x, float threshold, float value) { return nn__act_op("nn_threshold_op", NN__ACT_THRESHOLD, x, threshold, value); }

/* PReLU: x [N,C,...] as N*C slabs of S floats with slope w[c] (one slab of
   everything for a single weight). */
static void nn__prelu_split(const nn_tensor *x, const nn_tensor *w, size_t *slabs, size_t *S, int *C) {
    *C = w->shape[0];
    if (*C == 1) {
        *slabs = x->numel ? 1 : 0;
        *S = x->numel;
    } else {
        *slabs = x->shape[0] * (size_t)*C;
        *S = *slabs ? x->numel / *slabs : 0;
    }
}

/* PReLU's backward in chunks of NN__PRELU_CHUNK floats within each slab, any
   thread taking any chunk: each chunk's slope-gradient sum is kept and the
   sums are added in order, so the result does not depend on the threads. */
#define NN__PRELU_CHUNK 16384
static void nn__prelu_backward(nn__node *n) {
    nn_tensor *x = n->in[0], *w = n->in[1];
    const float *g = n->out->grad;
    float beta, *gx = nn__in_grad_w(n, 0, &beta), *gw = nn__in_grad(n, 1);
    size_t slabs, S, per, k;
    double *part;
    int C, nch, i, nt = nn__ew_threads((double)x->numel);
    (void)nt;
    nn__prelu_split(x, w, &slabs, &S, &C);
    per = (S + NN__PRELU_CHUNK - 1) / NN__PRELU_CHUNK;
    nch = (int)(slabs * per);
    if ((!gx && !gw) || !nch) return;
    if (!(part = (double *)nn__scratch(n->out, (size_t)nch * sizeof(double)))) {
        if (!nn__grad_oom) nn__grad_oom = x;
        return;
    }
    NN__OMP(parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (i = 0; i < nch; i++) {
        size_t sl = (size_t)i / per, c0 = ((size_t)i % per) * NN__PRELU_CHUNK, off = sl * S + c0;
        part[i] = nn__prelu_span_backward(x->data + off, g + off, gx ? gx + off : NULL,
                                          NN__MIN((size_t)NN__PRELU_CHUNK, S - c0),
                                          w->data[sl % (size_t)C], beta == 0.0f);
    }
    for (k = 0; gw && k < slabs; k++) {
        double sum = 0.0;
        size_t j;
        for (j = 0; j < per; j++) sum += part[k * per + j];
        gw[k % (size_t)C] += (float)sum;
    }
}

NNDEF nn_tensor *nn_prelu_op(nn_tensor *x, nn_tensor *weight) {
    nn_tensor *in[2], *out;
    size_t slabs, S;
    int C, k, nt;
    if (!x || !weight || weight->ndim != 1 || weight->shape[0] < 1 ||
        (weight->shape[0] > 1 && (x->ndim < 2 || x->shape[1] != weight->shape[0]))) {
        nn__misuse("nn_prelu_op: weight %s must be [1] or [C] for x [N,C,...], got x %s",
                   weight ? nn__ts(weight) : "NULL", x ? nn__ts(x) : "NULL");
        return NULL;
    }
    in[0] = x;
    in[1] = weight;
    if (!(out = nn__op("nn_prelu_op", in, 2, nn_shape_of(x), nn__prelu_backward))) return NULL;
    nn__prelu_split(x, weight, &slabs, &S, &C);
    if (C == 1) {
        nn__act_forward(NN__ACT_LEAKY, x->data, out->data, S, weight->data[0], 0.0f);
        return out;
    }
    nt = nn__ew_threads((double)x->numel);
    (void)nt;
    NN__OMP(parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (k = 0; k < (int)slabs; k++)
        nn__actf_leaky(x->data + (size_t)k * S, out->data + (size_t)k * S, S, weight->data[(size_t)k % (size_t)C], 0.0f);
    return out;
}

/* An element-wise activation module: the op's name, kind and options. */
typedef struct nn__act_state {
    const char *op;
    int kind;
    float a, b;
} nn__act_state;

static nn_tensor *nn__act_module_forward(nn_module *m, nn_tensor *x) {
    const nn__act_state *st = (const nn__act_state *)m->user;
    return nn__act(st->op, st->kind, x, st->a, st->b);
}

/* The module of a kind: options checked under the constructor's name ctor,
   run under the op's name op. */
static nn_module *nn__act_module(const char *ctor, const char *type, const char *op, int kind,
                                 float a, float b) {
    nn_module *m;
    nn__act_state *st;
    if (!nn__act_check(ctor, kind, a, b)) return NULL;
    if (!(m = nn__module_with_state(type, nn__act_module_forward, sizeof(nn__act_state)))) return NULL;
    st = (nn__act_state *)m->user;
    st->op = op;
    st->kind = kind;
    st->a = a;
    st->b = kind == NN__ACT_CELU ? 1.0f / a : b;
    return m;
}

NNDEF nn_module *nn_leaky_relu(float slope) {
    return nn__act_module("nn_leaky_relu", "LeakyReLU", "nn_leaky_relu_op", NN__ACT_LEAKY, slope != 0.0f ? slope : 0.01f, 0.0f);
}
NNDEF nn_module *nn_elu(float alpha) {
    return nn__act_module("nn_elu", "ELU", "nn_elu_op", NN__ACT_ELU, alpha != 0.0f ? alpha : 1.0f, 0.0f);
}
NNDEF nn_module *nn_gelu(void) { return nn__act_module("nn_gelu", "GELU", "nn_gelu_op", NN__ACT_GELU, 0.0f, 0.0f); }
NNDEF nn_module *nn_silu(void) { return nn__act_module("nn_silu", "SiLU", "nn_silu_op", NN__ACT_SILU, 0.0f, 0.0f); }
NNDEF nn_module *nn_selu(void) { return nn__act_module("nn_selu", "SELU", "nn_selu_op", NN__ACT_SELU, 0.0f, 0.0f); }
NNDEF nn_module *nn_celu(float alpha) { return nn__act_module("nn_celu", "CELU", "nn_celu_op", NN__ACT_CELU, alpha, 0.0f); }
NNDEF nn_module *nn_softplus(float beta, float threshold) {
    return nn__act_module("nn_softplus", "Softplus", "nn_softplus_op", NN__ACT_SOFTPLUS, beta, threshold);
}
NNDEF nn_module *nn_softsign(void) { return nn__act_module("nn_softsign", "Softsign", "nn_softsign_op", NN__ACT_SOFTSIGN, 0.0f, 0.0f); }
NNDEF nn_module *nn_mish(void) { return nn__act_module("nn_mish", "Mish", "nn_mish_op", NN__ACT_MISH, 0.0f, 0.0f); }
NNDEF nn_module *nn_hardtanh(float min_val, float max_val) {
    return nn__act_module("nn_hardtanh", "Hardtanh", "nn_hardtanh_op", NN__ACT_HARDTANH, min_val, max_val);
}
NNDEF nn_module *nn_relu6(void) { return nn__act_module("nn_relu6", "ReLU6", "nn_relu6_op", NN__ACT_HARDTANH, 0.0f, 6.0f); }
NNDEF nn_module *nn_hardsigmoid(void) { return nn__act_module("nn_hardsigmoid", "Hardsigmoid", "nn_hardsigmoid_op", NN__ACT_HARDSIGMOID, 0.0f, 0.0f); }
NNDEF nn_module *nn_hardswish(void) { return nn__act_module("nn_hardswish", "Hardswish", "nn_hardswish_op", NN__ACT_HARDSWISH, 0.0f, 0.0f); }
NNDEF nn_module *nn_logsigmoid(void) { return nn__act_module("nn_logsigmoid", "LogSigmoid", "nn_logsigmoid_op", NN__ACT_LOGSIGMOID, 0.0f, 0.0f); }
NNDEF nn_module *nn_tanhshrink(void) { return nn__act_module("nn_tanhshrink", "Tanhshrink", "nn_tanhshrink_op", NN__ACT_TANHSHRINK, 0.0f, 0.0f); }
NNDEF nn_module *nn_threshold(float threshold, float value) {
    return nn__act_module("nn_threshold", "Threshold", "nn_threshold_op", NN__ACT_THRESHOLD, threshold, value);
}
NNDEF nn_module *nn_gelu_tanh(void) { return nn__act_module("nn_gelu_tanh", "GELU", "nn_gelu_tanh_op", NN__ACT_GELU_TANH, 0.0f, 0.0f); }

typedef struct nn__prelu_state {
    nn_tensor *weight;
} nn__prelu_state;

static nn_tensor *nn__prelu_forward(nn_module *m, nn_tensor *x) {
    return nn_prelu_op(x, ((const nn__prelu_state *)m->user)->weight);
}

NNDEF nn_module *nn_prelu(int num_parameters, float init) {
    nn_module *m;
    nn__prelu_state *st;
    if (num_parameters < 1) {
        nn__misuse("nn_prelu: num_parameters must be at least 1, got %d", num_parameters);
        return NULL;
    }
    if (!(m = nn__module_with_state("PReLU", nn__prelu_forward, sizeof(nn__prelu_state)))) return NULL;
    st = (nn__prelu_state *)m->user;
    if (!(st->weight = nn_module_add_param(m, "weight", nn_full(NULL, NN_SHAPE(num_parameters), init)))) {
        nn_module_free(m);
        return NULL;
    }
    return m;
}

/* Softmax / LogSoftmax modules: the dim. */
typedef struct nn__softmax_state {
    int dim;
} nn__softmax_state;

static nn_tensor *nn__softmax_module_forward(nn_module *m, nn_tensor *x) {
    return nn_softmax(x, ((const nn__softmax_state *)m->user)->dim);
}
static nn_tensor *nn__log_softmax_module_forward(nn_module *m, nn_tensor *x) {
    return nn_log_softmax(x, ((const nn__softmax_state *)m->user)->dim);
}
NNDEF nn_module *nn_softmax_module(int dim) {
    nn_module *m = nn__module_with_state("Softmax", nn__softmax_module_forward, sizeof(nn__softmax_state));
    if (m) ((nn__softmax_state *)m->user)->dim = dim;
    return m;
}
NNDEF nn_module *nn_log_softmax_module(int dim) {
    nn_module *m = nn__module_with_state("LogSoftmax", nn__log_softmax_module_forward, sizeof(nn__softmax_state));
    if (m) ((nn__softmax_state *)m->user)->dim = dim;
    return m;
}

/* ----- >>layers.seq: sequences: embeddings, recurrent layers, attention --- */

/* ===== >>regularizers (implementation) ==================================== */

/* --- the dropout family --- */

/* The generator a regularizer draws from: rng, else the current one. */
static nn__pcg *nn__reg_pcg(nn_rng *rng) { return rng ? &rng->pcg : &nn__rng()->pcg; }

/* The drop probability of the dropout family: p in [0,1).  0 after a report. */
static int nn__reg_p_ok(const char *op, float p) {
    if (p >= 0.0f && p < 1.0f) return 1;
    nn__misuse("%s: p must be in [0,1), got %g", op, (double)p);
    return 0;
}

/* Checks of the family's ops: p, a tensor, and its number of dimensions
   (want > 0: exactly; want < 0: at least -want).  0 after a report. */
static int nn__reg_x_ok(const char *op, nn_tensor *x, float p, int want, const char *layout) {
    if (!nn__reg_p_ok(op, p)) return 0;
    if (!x) {
        nn__misuse("%s: NULL input", op);
        return 0;
    }
    if ((want > 0 && x->ndim != want) || (want < 0 && x->ndim < -want)) {
        nn__misuse("%s: needs x %s, got %s", op, layout, nn__ts(x));
        return 0;
    }
    return 1;
}

/* The output of a multiplicative noise op, y = x m (+ c), whose gradient is
   g m: *mask gets numel floats in the graph for m, saved for the backward. */
static nn_tensor *nn__noise_out(const char *op, nn_tensor *x, float **mask) {
    nn_tensor *out = nn__op(op, &x, 1, nn_shape_of(x), nn__mask_backward);
    float *m;
    if (!out) return NULL;
    if (!(m = (float *)nn__scratch(out, (x->numel ? x->numel : 1) * sizeof(float)))) return NULL;
    if (out->node) out->node->saved = m;
    *mask = m;
    return out;
}

/* Inverted dropout, x seen as outer x mid x inner: one draw per (outer,
   inner) pair, shared along mid.  Channel dropout: outer N*C, mid H*W,
   inner 1; locked dropout: mid is the time axis. */
static nn_tensor *nn__shared_mask_dropout(const char *op, nn_tensor *x, float p, size_t outer,
                                          size_t mid, size_t inner, nn_rng *rng) {
    nn_tensor *out;
    nn__pcg *r = nn__reg_pcg(rng);
    float *m, *draw, scale = 1.0f / (1.0f - p);
    size_t o, t, i;
    if (!(out = nn__noise_out(op, x, &m))) return NULL;
    if (!(draw = (float *)nn__scratch(out, (inner ? inner : 1) * sizeof(float)))) return NULL;
    for (o = 0; o < outer; o++) {
        for (i = 0; i < inner; i++) draw[i] = nn__pcg_uniform(r) < p ? 0.0f : scale;
        for (t = 0; t < mid; t++)
            for (i = 0; i < inner; i++) m[(o * mid + t) * inner + i] = draw[i];
    }
    for (i = 0; i < x->numel; i++) out->data[i] = x->data[i] * m[i];
    return out;
}

static nn_tensor *nn__channel_dropout(const char *op, nn_tensor *x, float p, int training,
                                      nn_rng *rng, int ndim) {
    size_t nc;
    if (!nn__reg_x_ok(op, x, p, ndim, ndim == 3 ? "[N,C,L]" : "[N,C,H,W]")) return NULL;
    if (!training || p == 0.0f) return x;
    nc = (size_t)x->shape[0] * (size_t)x->shape[1];
    return nn__shared_mask_dropout(op, x, p, nc, nc ? x->numel / nc : 0, 1, rng);
}

NNDEF nn_tensor *nn_dropout1d_op(nn_tensor *x, float p, int training, nn_rng *rng) {
    return nn__channel_dropout("nn_dropout1d_op", x, p, training, rng, 3);
}
NNDEF nn_tensor *nn_dropout2d_op(nn_tensor *x, float p, int training, nn_rng *rng) {
    return nn__channel_dropout("nn_dropout2d_op", x, p, training, rng, 4);
}

NNDEF nn_tensor *nn_locked_dropout_op(nn_tensor *x, float p, int time_axis, int training,
                                      nn_rng *rng) {
    const char *op = "nn_locked_dropout_op";
    size_t outer, inner;
    int ax, T;
    if (!nn__reg_x_ok(op, x, p, -1, "with at least one dimension")) return NULL;
    if ((ax = nn__axis(op, x, time_axis)) < 0) return NULL;
    if (!training || p == 0.0f) return x;
    nn__split_axis(x, ax, &outer, &T, &inner);
    return nn__shared_mask_dropout(op, x, p, outer, (size_t)T, inner, rng);
}

/* SELU's -scale*alpha, the value a dropped unit takes before the affine map. */
#define NN__ALPHA_DROP 1.7580993408473766

NNDEF nn_tensor *nn_alpha_dropout_op(nn_tensor *x, float p, int training, nn_rng *rng) {
    const char *op = "nn_alpha_dropout_op";
    nn_tensor *out;
    nn__pcg *r;
    float *m, a, kept_b, drop_b;
    double ad;
    size_t i;
    if (!nn__reg_x_ok(op, x, p, 0, "")) return NULL;
    if (!training || p == 0.0f) return x;
    if (!(out = nn__noise_out(op, x, &m))) return NULL;
    /* F.alpha_dropout: y = x m a + b, b = (m - 1) alpha a + alpha a p */
    ad = 1.0 / sqrt((NN__ALPHA_DROP * NN__ALPHA_DROP * (double)p + 1.0) * (1.0 - (double)p));
    a = (float)ad;
    kept_b = (float)(NN__ALPHA_DROP * ad * (double)p);
    drop_b = kept_b - (float)(NN__ALPHA_DROP * ad);   /* in float, as torch's float32 kernel */
    r = nn__reg_pcg(rng);
    for (i = 0; i < x->numel; i++) {
        int keep = !(nn__pcg_uniform(r) < p);
        m[i] = keep ? a : 0.0f;
        out->data[i] = x->data[i] * m[i] + (keep ? kept_b : drop_b);
    }
    return out;
}

NNDEF nn_tensor *nn_gaussian_dropout_op(nn_tensor *x, float p, int training, nn_rng *rng) {
    const char *op = "nn_gaussian_dropout_op";
    nn_tensor *out;
    nn__pcg *r;
    float *m, sd;
    size_t i;
    if (!nn__reg_x_ok(op, x, p, 0, "")) return NULL;
    if (!training || p == 0.0f) return x;
    if (!(out = nn__noise_out(op, x, &m))) return NULL;
    sd = sqrtf(p / (1.0f - p));
    r = nn__reg_pcg(rng);
    for (i = 0; i < x->numel; i++) {
        m[i] = 1.0f + sd * nn__rng_normal(r);
        out->data[i] = x->data[i] * m[i];
    }
    return out;
}

NNDEF nn_tensor *nn_gaussian_noise_op(nn_tensor *x, float sigma, int training, nn_rng *rng) {
    const char *op = "nn_gaussian_noise_op";
    nn_tensor *out;
    nn__pcg *r;
    size_t i;
    if (!(sigma >= 0.0f && sigma < 3.0e38f)) {
        nn__misuse("%s: sigma must be finite and >= 0, got %g", op, (double)sigma);
        return NULL;
    }
    if (!nn__reg_x_ok(op, x, 0.0f, 0, "")) return NULL;
    if (!training || sigma == 0.0f) return x;
    if (!(out = nn__op(op, &x, 1, nn_shape_of(x), nn__identity_backward))) return NULL;
    r = nn__reg_pcg(rng);
    for (i = 0; i < x->numel; i++) out->data[i] = x->data[i] + sigma * nn__rng_normal(r);
    return out;
}

NNDEF nn_tensor *nn_dropconnect_linear_op(nn_tensor *x, nn_tensor *w, nn_tensor *b, float p,
                                          int training, nn_rng *rng) {
    const char *op = "nn_dropconnect_linear_op";
    nn_tensor *in[3], *mask, *wm;
    nn_graph *g;
    nn__pcg *r;
    float scale;
    size_t i;
    if (!nn__reg_p_ok(op, p)) return NULL;
    if (!x || !w || w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1] ||
        (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))) {
        nn__misuse("%s: x %s, weight %s and bias %s do not fit (want x [...,in], weight "
                   "[out,in], bias [out] or NULL)", op, nn__ts(x), nn__ts(w), nn__ts(b));
        return NULL;
    }
    if (!training || p == 0.0f) return nn_linear_op(x, w, b);
    in[0] = x;
    in[1] = w;
    in[2] = b;
    if (!(g = nn__graph_of(op, in, b ? 3 : 2))) return NULL;
    if (!(mask = nn__tensor_new(op, g, nn_shape_of(w), 0))) return NULL;
    r = nn__reg_pcg(rng);
    scale = 1.0f / (1.0f - p);
    for (i = 0; i < w->numel; i++) mask->data[i] = nn__pcg_uniform(r) < p ? 0.0f : scale;
    if (!(wm = nn_mul(w, mask))) return NULL;
    return nn_linear_op(x, wm, b);
}

/* --- modules of the family --- */

/* The state of every module of this section starts with this header, so
   nn_module_set_rng can reach the generator; they share one destroy
   function, which is how it recognizes them. */
typedef struct nn__reg_head {
    nn_rng *rng;
} nn__reg_head;
typedef struct nn__reg_state {
    nn__reg_head head;
    int kind;
    float p;
    int axis;
    nn_tensor *weight, *bias;      /* DropConnectLinear */
} nn__reg_state;

static void nn__reg_destroy(nn_module *m) { nn__free(m->user); }

/* A module of this section with a zeroed state of size bytes. */
static nn_module *nn__reg_module(const char *type, nn_forward_fn fwd, size_t size) {
    nn_module *m = nn_module_new(type, fwd);
    if (!m) return NULL;
    if (!(m->user = nn__calloc(1, size))) {
        nn_module_free(m);
        return NULL;
    }
    m->destroy = nn__reg_destroy;
    return m;
}

enum { NN__RD_1D, NN__RD_2D, NN__RD_ALPHA, NN__RD_GAUSS, NN__RD_NOISE, NN__RD_LOCKED, NN__RD_CONNECT };

static nn_tensor *nn__reg_forward(nn_module *m, nn_tensor *x) {
    const nn__reg_state *st = (const nn__reg_state *)m->user;
    nn_rng *r = st->head.rng;
    switch (st->kind) {
    case NN__RD_1D: return nn_dropout1d_op(x, st->p, m->training, r);
    case NN__RD_2D: return nn_dropout2d_op(x, st->p, m->training, r);
    case NN__RD_ALPHA: return nn_alpha_dropout_op(x, st->p, m->training, r);
    case NN__RD_GAUSS: return nn_gaussian_dropout_op(x, st->p, m->training, r);
    case NN__RD_NOISE: return nn_gaussian_noise_op(x, st->p, m->training, r);
    case NN__RD_LOCKED: return nn_locked_dropout_op(x, st->p, st->axis, m->training, r);
    default: return nn_dropconnect_linear_op(x, st->weight, st->bias, st->p, m->training, r);
    }
}

static nn_module *nn__reg_simple(const char *fn, const char *type, int kind, float p, int axis) {
    nn_module *m;
    nn__reg_state *st;
    if (kind == NN__RD_NOISE) {
        if (!(p >= 0.0f && p < 3.0e38f)) {
            nn__misuse("%s: sigma must be finite and >= 0, got %g", fn, (double)p);
            return NULL;
        }
    } else if (!nn__reg_p_ok(fn, p)) {
        return NULL;
    }
    if (!(m = nn__reg_module(type, nn__reg_forward, sizeof(nn__reg_state)))) return NULL;
    st = (nn__reg_state *)m->user;
    st->kind = kind;
    st->p = p;
    st->axis = axis;
    return m;
}

NNDEF nn_module *nn_dropout1d(float p) { return nn__reg_simple("nn_dropout1d", "Dropout1d", NN__RD_1D, p, 0); }
NNDEF nn_module *nn_dropout2d(float p) { return nn__reg_simple("nn_dropout2d", "Dropout2d", NN__RD_2D, p, 0); }
NNDEF nn_module *nn_alpha_dropout(float p) { return nn__reg_simple("nn_alpha_dropout", "AlphaDropout", NN__RD_ALPHA, p, 0); }
NNDEF nn_module *nn_gaussian_dropout(float p) { return nn__reg_simple("nn_gaussian_dropout", "GaussianDropout", NN__RD_GAUSS, p, 0); }
NNDEF nn_module *nn_gaussian_noise(float sigma) { return nn__reg_simple("nn_gaussian_noise", "GaussianNoise", NN__RD_NOISE, sigma, 0); }
NNDEF nn_module *nn_locked_dropout(float p, int time_axis) {
    return nn__reg_simple("nn_locked_dropout", "LockedDropout", NN__RD_LOCKED, p, time_axis);
}

NNDEF nn_module *nn_dropconnect_linear(int in_features, int out_features, float p) {
    nn_module *m, *lin;
    nn__reg_state *st;
    nn_tensor *w, *b;
    if (!nn__reg_p_ok("nn_dropconnect_linear", p)) return NULL;
    if (in_features < 1 || out_features < 1) {
        nn__misuse("nn_dropconnect_linear: sizes must be positive, got in=%d out=%d", in_features,
                   out_features);
        return NULL;
    }
    /* torch.nn.Linear's initialization, drawn in its order */
    if (!(lin = nn_linear(in_features, out_features))) return NULL;
    if (!(m = nn__reg_simple("nn_dropconnect_linear", "DropConnectLinear", NN__RD_CONNECT, p, 0))) {
        nn_module_free(lin);
        return NULL;
    }
    st = (nn__reg_state *)m->user;
    w = nn_param_get(lin, "weight");
    b = nn_param_get(lin, "bias");
    if (!nn_module_add_param(m, "weight", w) || !nn_module_add_param(m, "bias", b)) {
        nn_module_free(lin);
        nn_module_free(m);
        return NULL;
    }
    nn_module_free(lin);   /* m holds both tensors now */
    st->weight = w;
    st->bias = b;
    return m;
}

NNDEF int nn_module_set_rng(nn_module *m, nn_rng *r) {
    int i, n = 0;
    if (!m) {
        nn__misuse("nn_module_set_rng: NULL module");
        return 0;
    }
    if (m->destroy == nn__reg_destroy && m->user) {
        ((nn__reg_head *)m->user)->rng = r;
        n++;
    }
    for (i = 0; i < m->nchildren; i++) n += nn_module_set_rng(m->children[i], r);
    return n;
}

/* --- information dropout --- */

/* 1 when a and b have the same shape. */
static int nn__reg_same_shape(const nn_tensor *a, const nn_tensor *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int) * (size_t)a->ndim) == 0;
}

/* f(h) and f'(h) of information dropout's activation: ReLU or softplus. */
static float nn__info_f(int act, float h, float *df) {
    if (act == NN_INFO_RELU) {
        *df = h > 0.0f ? 1.0f : 0.0f;
        return h > 0.0f ? h : 0.0f;
    }
    *df = 1.0f / (1.0f + expf(-h));
    return h > 0.0f ? h + log1pf(expf(-h)) : log1pf(expf(h));
}

/* alpha = 0.001 + M sigmoid(s), and d alpha / d s. */
static float nn__info_alpha(float s, float M, float *dalpha) {
    float sg = 1.0f / (1.0f + expf(-s));
    *dalpha = M * sg * (1.0f - sg);
    return 0.001f + M * sg;
}

/* The options resolved: in[0] activation; f[0] max_alpha, f[1] mu, f[2]
   sigma, f[3] 1/N (the batch mean of the KL term). */
typedef struct nn__info_args {
    int act;
    float M, mu, sigma, inv_n;
    const float *noise;   /* the normal draws of z (NULL in evaluation) */
} nn__info_args;

/* z = f(h) exp(alpha n): d/dh = f'(h) e, d/ds = f(h) e n alpha'(s). */
static void nn__info_z_backward(nn__node *n) {
    const nn__info_args *a = (const nn__info_args *)n->saved;
    nn_tensor *h = n->in[0], *s = n->in[1];
    float *gh = nn__in_grad(n, 0), *gs = nn__in_grad(n, 1);
    const float *g = n->out->grad;
    size_t i;
    for (i = 0; i < h->numel; i++) {
        float df, da, f = nn__info_f(a->act, h->data[i], &df);
        float al = nn__info_alpha(s->data[i], a->M, &da);
        float z = a->noise ? a->noise[i] : 0.0f, e = expf(al * z);
        if (gh) gh[i] += g[i] * df * e;
        if (gs) gs[i] += g[i] * f * e * z * da;
    }
}

/* The KL term per unit and its derivatives by h and by alpha. */
static float nn__info_kl_unit(const nn__info_args *a, float h, float al, float *dh, float *dal) {
    float df, f, L, inv_s2;
    if (a->act == NN_INFO_RELU) {
        *dh = 0.0f;
        *dal = -1.0f / al;
        return -logf(al / (a->M + 0.001f));
    }
    f = nn__info_f(a->act, h, &df);
    L = logf(f > 1e-4f ? f : 1e-4f);
    inv_s2 = 1.0f / (a->sigma * a->sigma);
    *dh = f > 1e-4f ? (L - a->mu) * inv_s2 * df / f : 0.0f;
    *dal = -1.0f / al + al * inv_s2;
    return logf(a->sigma / al) + (al * al + (L - a->mu) * (L - a->mu)) * 0.5f * inv_s2 - 0.5f;
}

static void nn__info_kl_backward(nn__node *n) {
    const nn__info_args *a = (const nn__info_args *)n->saved;
    nn_tensor *h = n->in[0], *s = n->in[1];
    float *gh = nn__in_grad(n, 0), *gs = nn__in_grad(n, 1);
    float g = n->out->grad[0] * a->inv_n;
    size_t i;
    for (i = 0; i < h->numel; i++) {
        float da, dh, dal, al = nn__info_alpha(s->data[i], a->M, &da);
        nn__info_kl_unit(a, h->data[i], al, &dh, &dal);
        if (gh) gh[i] += g * dh;
        if (gs) gs[i] += g * dal * da;
    }
}

NNDEF nn_tensor *nn_info_dropout_op(nn_tensor *h, nn_tensor *s, int training,
                                    nn_info_dropout_opts opts, nn_rng *rng, nn_tensor **kl) {
    const char *op = "nn_info_dropout_op";
    nn_tensor *in[2], *z, *k;
    nn__info_args *a;
    float *noise = NULL;
    double sum = 0.0;
    nn__pcg *r;
    size_t i;
    in[0] = h;
    in[1] = s;
    if (kl) *kl = NULL;
    if (!h || !s || h->ndim < 1 || !nn__reg_same_shape(h, s)) {
        nn__misuse("%s: needs h and s of one shape [N,...], got %s and %s", op, nn__ts(h), nn__ts(s));
        return NULL;
    }
    if ((opts.activation != NN_INFO_RELU && opts.activation != NN_INFO_SOFTPLUS) ||
        !(opts.max_alpha >= 0.0f && opts.max_alpha < 3.0e38f) || !(opts.prior_sigma >= 0.0f) ||
        !(opts.prior_mu == opts.prior_mu)) {
        nn__misuse("%s: bad options activation=%d max_alpha=%g prior_sigma=%g (want "
                   "NN_INFO_RELU or NN_INFO_SOFTPLUS, max_alpha >= 0, prior_sigma >= 0)", op,
                   opts.activation, (double)opts.max_alpha, (double)opts.prior_sigma);
        return NULL;
    }
    if (!(z = nn__op(op, in, 2, nn_shape_of(h), nn__info_z_backward))) return NULL;
    if (!(a = (nn__info_args *)nn__scratch(z, sizeof *a))) return NULL;
    a->act = opts.activation;
    a->M = opts.max_alpha > 0.0f ? opts.max_alpha : 0.7f;
    a->mu = opts.prior_mu;
    a->sigma = opts.prior_sigma > 0.0f ? opts.prior_sigma : 1.0f;
    a->inv_n = 1.0f / (float)(h->shape[0] ? h->shape[0] : 1);
    if (training) {
        if (!(noise = (float *)nn__scratch(z, (h->numel ? h->numel : 1) * sizeof(float)))) return NULL;
        r = nn__reg_pcg(rng);
        for (i = 0; i < h->numel; i++) noise[i] = nn__rng_normal(r);
    }
    a->noise = noise;
    if (z->node) z->node->saved = a;
    for (i = 0; i < h->numel; i++) {
        float df, da, f = nn__info_f(a->act, h->data[i], &df);
        float al = nn__info_alpha(s->data[i], a->M, &da);
        z->data[i] = noise ? f * expf(al * noise[i]) : f;
    }
    if (!kl) return z;
    if (!(k = nn__op(op, in, 2, nn_shape_scalar(), nn__info_kl_backward))) return NULL;
    if (k->node) k->node->saved = a;
    for (i = 0; i < h->numel; i++) {
        float da, dh, dal, al = nn__info_alpha(s->data[i], a->M, &da);
        sum += (double)nn__info_kl_unit(a, h->data[i], al, &dh, &dal);
    }
    k->data[0] = (float)(sum * (double)a->inv_n);
    *kl = k;
    return z;
}

typedef struct nn__info_state {
    nn__reg_head head;
    nn_info_dropout_opts opts;
    nn_module *layer, *alpha;
    nn_tensor *kl;        /* the last forward's KL term */
    nn_graph *kl_graph;   /* and the graph and generation it lives in */
    unsigned kl_gen;
} nn__info_state;

static nn_tensor *nn__info_forward(nn_module *m, nn_tensor *x) {
    nn__info_state *st = (nn__info_state *)m->user;
    nn_tensor *h = nn_forward(st->layer, x), *s, *kl = NULL, *z;
    if (!h || !(s = nn_forward(st->alpha, x))) return NULL;
    z = nn_info_dropout_op(h, s, m->training, st->opts, st->head.rng, &kl);
    st->kl = kl;
    st->kl_graph = kl ? kl->graph : NULL;
    st->kl_gen = kl ? kl->gen : 0u;
    return z;
}

NNDEF nn_module *nn_info_dropout(nn_module *layer, nn_module *alpha_layer,
                                 nn_info_dropout_opts opts) {
    nn_module *m = NULL;
    nn__info_state *st;
    if (!layer || !alpha_layer || layer == alpha_layer ||
        (opts.activation != NN_INFO_RELU && opts.activation != NN_INFO_SOFTPLUS) ||
        !(opts.max_alpha >= 0.0f && opts.max_alpha < 3.0e38f) || !(opts.prior_sigma >= 0.0f)) {
        nn__misuse("nn_info_dropout: needs two distinct modules (got %p, %p) and activation "
                   "NN_INFO_RELU or NN_INFO_SOFTPLUS, max_alpha >= 0, prior_sigma >= 0 (got %d, "
                   "%g, %g)", (void *)layer, (void *)alpha_layer, opts.activation,
                   (double)opts.max_alpha, (double)opts.prior_sigma);
        goto fail;
    }
    if (!(m = nn__reg_module("InformationDropout", nn__info_forward, sizeof(nn__info_state))))
        goto fail;
    st = (nn__info_state *)m->user;
    st->opts = opts;
    st->layer = layer;
    st->alpha = alpha_layer;
    if (!nn_module_add_child(m, "layer", layer)) {
        layer = NULL;   /* freed by the failed add */
        goto fail;
    }
    if (!nn_module_add_child(m, "alpha", alpha_layer)) {
        nn_module_free(m);
        return NULL;
    }
    return m;
fail:
    if (layer && layer->refs == 0) nn_module_free(layer);
    if (alpha_layer && alpha_layer != layer && alpha_layer->refs == 0) nn_module_free(alpha_layer);
    nn_module_free(m);
    return NULL;
}

/* Sum the live KL terms of m's tree into *acc. */
static void nn__info_kl_collect(nn_module *m, nn_tensor **acc) {
    int i;
    if (m->forward == nn__info_forward) {
        const nn__info_state *st = (const nn__info_state *)m->user;
        if (st->kl && nn__cur_graph && st->kl_graph == nn__cur_graph &&
            st->kl_gen == nn__cur_graph->gen)
            *acc = *acc ? nn_add(*acc, st->kl) : st->kl;
    }
    for (i = 0; i < m->nchildren; i++) nn__info_kl_collect(m->children[i], acc);
}

NNDEF nn_tensor *nn_info_dropout_kl(nn_module *m) {
    nn_tensor *acc = NULL;
    if (!m) {
        nn__misuse("nn_info_dropout_kl: NULL module");
        return NULL;
    }
    nn__info_kl_collect(m, &acc);
    return acc;
}

/* --- residual blocks, stochastic depth, Shake-Shake, ShakeDrop --- */

NNDEF float nn_linear_decay_survival(int l, int L, float p_L) {
    if (L < 1 || l < 0 || l > L || !(p_L > 0.0f && p_L <= 1.0f)) {
        nn__misuse("nn_linear_decay_survival: needs 0 <= l <= L, L >= 1 and p_L in (0,1], got "
                   "l=%d L=%d p_L=%g", l, L, (double)p_L);
        return 1.0f;
    }
    return (float)(1.0 - (double)l / (double)L * (1.0 - (double)p_L));
}

/* The options resolved: survival p, the ranges, after checking them. */
typedef struct nn__res_cfg {
    float p, alo, ahi, blo, bhi;
} nn__res_cfg;

static int nn__res_check(const char *op, const nn_residual_opts *o, nn__res_cfg *c) {
    float pL = o->p_last != 0.0f ? o->p_last : 0.5f;
    int ranges0 = o->alpha_lo == 0.0f && o->alpha_hi == 0.0f;
    int branges0 = o->beta_lo == 0.0f && o->beta_hi == 0.0f;
    c->alo = ranges0 ? -1.0f : o->alpha_lo;
    c->ahi = ranges0 ? 1.0f : o->alpha_hi;
    c->blo = branges0 ? 0.0f : o->beta_lo;
    c->bhi = branges0 ? 1.0f : o->beta_hi;
    if (o->mode < NN_RESIDUAL_PLAIN || o->mode > NN_RESIDUAL_SHAKEDROP || o->shake < 0 ||
        o->shake > NN_SHAKE_KEEP || o->gate < 0 || o->gate > NN_GATE_CHANNEL) {
        nn__misuse("%s: unknown mode %d, shake %d or gate %d", op, o->mode, o->shake, o->gate);
        return 0;
    }
    if (!(o->survival >= 0.0f && o->survival <= 1.0f) || !(pL > 0.0f && pL <= 1.0f) ||
        o->layers < 0 || (o->layers > 0 && (o->layer < 0 || o->layer > o->layers))) {
        nn__misuse("%s: survival %g and p_last %g must be in (0,1] (0: the default), and "
                   "0 <= layer <= layers (got layer %d of %d)", op, (double)o->survival,
                   (double)o->p_last, o->layer, o->layers);
        return 0;
    }
    if (!(c->alo <= c->ahi) || !(c->blo <= c->bhi) || !(c->alo > -1e30f && c->ahi < 1e30f &&
                                                       c->blo > -1e30f && c->bhi < 1e30f)) {
        nn__misuse("%s: ranges must be finite with lo <= hi, got alpha [%g, %g] beta [%g, %g]",
                   op, (double)c->alo, (double)c->ahi, (double)c->blo, (double)c->bhi);
        return 0;
    }
    c->p = o->survival > 0.0f ? o->survival
         : o->layers > 0 ? (float)(1.0 - (double)o->layer / (double)o->layers * (1.0 - (double)pL))
         : pL;
    return 1;
}

/* The gated sum sum_b cf_b[k] f_b of one or two branches, with cb_b[k] in
   the backward: gate k covers inner contiguous elements. */
typedef struct nn__gates {
    float *cf[2], *cb[2];
    size_t inner;
    int nb;
} nn__gates;

static void nn__gated_backward(nn__node *n) {
    const nn__gates *G = (const nn__gates *)n->saved;
    const float *g = n->out->grad;
    int b;
    for (b = 0; b < G->nb; b++) {
        float *ga = nn__in_grad(n, b);
        size_t i;
        if (!ga) continue;
        for (i = 0; i < n->out->numel; i++) ga[i] += g[i] * G->cb[b][G->inner ? i / G->inner : 0];
    }
}

enum { NN__GATE_SD, NN__GATE_SHAKEDROP, NN__GATE_SHAKE };

/* The gate op of the three regularizers: checks, draws (gate by gate, in
   order), and the forward. */
static nn_tensor *nn__gate_op(const char *op, int kind, nn_tensor *f1, nn_tensor *f2, int training,
                              const nn_residual_opts *o) {
    nn_tensor *in[2], *out;
    nn__res_cfg c;
    nn__gates *G;
    nn__pcg *r;
    size_t ng, k, i;
    int nb = f2 ? 2 : 1, b;
    if (!nn__res_check(op, o, &c)) return NULL;
    if (!f1 || (kind == NN__GATE_SHAKE && !f2)) {
        nn__misuse("%s: NULL input", op);
        return NULL;
    }
    if (f1->ndim < 1 || (o->gate == NN_GATE_CHANNEL && f1->ndim < 2) ||
        (f2 && !nn__reg_same_shape(f1, f2))) {
        nn__misuse("%s: needs branches [N,...] ([N,C,...] for channel gates) of one shape, got "
                   "%s and %s", op, nn__ts(f1), nn__ts(f2));
        return NULL;
    }
    in[0] = f1;
    in[1] = f2;
    if (!(out = nn__op(op, in, nb, nn_shape_of(f1), nn__gated_backward))) return NULL;
    ng = (size_t)f1->shape[0] * (o->gate == NN_GATE_CHANNEL ? (size_t)f1->shape[1] : 1u);
    if (!(G = (nn__gates *)nn__scratch(out, sizeof *G))) return NULL;
    G->nb = nb;
    G->inner = ng ? f1->numel / ng : 0;
    for (b = 0; b < nb; b++) {
        G->cf[b] = (float *)nn__scratch(out, (ng ? ng : 1) * sizeof(float));
        G->cb[b] = (float *)nn__scratch(out, (ng ? ng : 1) * sizeof(float));
        if (!G->cf[b] || !G->cb[b]) return NULL;
    }
    r = nn__reg_pcg(o->rng);
    for (k = 0; k < ng; k++) {
        float cf, cb;
        if (k > 0 && o->gate == NN_GATE_BATCH) {
            for (b = 0; b < nb; b++) {
                G->cf[b][k] = G->cf[b][0];
                G->cb[b][k] = G->cb[b][0];
            }
            continue;
        }
        if (kind == NN__GATE_SD) {
            cf = cb = !training ? c.p : (float)(nn__pcg_uniform(r) < c.p);
        } else if (kind == NN__GATE_SHAKEDROP) {
            if (!training) {
                cf = cb = c.p + (1.0f - c.p) * 0.5f * (c.alo + c.ahi);
            } else {
                float bl = (float)(nn__pcg_uniform(r) < c.p);
                float al = c.alo + (c.ahi - c.alo) * nn__pcg_uniform(r);
                float be = c.blo + (c.bhi - c.blo) * nn__pcg_uniform(r);
                cf = bl + al - bl * al;
                cb = bl + be - bl * be;
            }
        } else {
            cf = cb = 0.5f;
            if (training) {
                cf = nn__pcg_uniform(r);
                cb = o->shake == NN_SHAKE_SHAKE ? nn__pcg_uniform(r)
                   : o->shake == NN_SHAKE_KEEP ? cf : 0.5f;
            }
            G->cf[1][k] = 1.0f - cf;
            G->cb[1][k] = 1.0f - cb;
        }
        G->cf[0][k] = cf;
        G->cb[0][k] = cb;
    }
    if (out->node) out->node->saved = G;
    for (i = 0; i < out->numel; i++) {
        size_t gk = G->inner ? i / G->inner : 0;
        float v = G->cf[0][gk] * f1->data[i];
        if (f2) v += G->cf[1][gk] * f2->data[i];
        out->data[i] = v;
    }
    return out;
}

NNDEF nn_tensor *nn_stochastic_depth_op(nn_tensor *f, int training, nn_residual_opts opts) {
    return nn__gate_op("nn_stochastic_depth_op", NN__GATE_SD, f, NULL, training, &opts);
}
NNDEF nn_tensor *nn_shakedrop_op(nn_tensor *f, int training, nn_residual_opts opts) {
    return nn__gate_op("nn_shakedrop_op", NN__GATE_SHAKEDROP, f, NULL, training, &opts);
}
NNDEF nn_tensor *nn_shake_shake_op(nn_tensor *f1, nn_tensor *f2, int training,
                                   nn_residual_opts opts) {
    return nn__gate_op("nn_shake_shake_op", NN__GATE_SHAKE, f1, f2, training, &opts);
}

typedef struct nn__res_state {
    nn__reg_head head;
    nn_residual_opts opts;
    nn_module *preact, *body, *body2, *shortcut;
} nn__res_state;

static nn_tensor *nn__res_forward(nn_module *m, nn_tensor *x) {
    nn__res_state *st = (nn__res_state *)m->user;
    nn_residual_opts o = st->opts;
    nn_tensor *a = x, *s, *f, *f2 = NULL, *y;
    o.rng = st->head.rng;
    if (st->preact && !(a = nn_forward(st->preact, x))) return NULL;
    s = st->shortcut ? nn_forward(st->shortcut, a) : x;
    if (!s) return NULL;
    if (o.mode == NN_RESIDUAL_STOCHASTIC_DEPTH && o.gate == NN_GATE_BATCH && m->training) {
        /* the paper's form: one draw per batch, and a dropped branch is not run */
        nn__res_cfg c;
        if (!nn__res_check("nn_residual", &o, &c)) return NULL;
        if (!(nn__pcg_uniform(nn__reg_pcg(o.rng)) < c.p)) y = s;
        else if (!(f = nn_forward(st->body, a)) || !(y = nn_add(s, f))) return NULL;
        return o.post_relu ? nn_relu_op(y) : y;
    }
    if (!(f = nn_forward(st->body, a))) return NULL;
    if (st->body2 && !(f2 = nn_forward(st->body2, a))) return NULL;
    switch (o.mode) {
    case NN_RESIDUAL_STOCHASTIC_DEPTH: f = nn_stochastic_depth_op(f, m->training, o); break;
    case NN_RESIDUAL_SHAKE_SHAKE: f = nn_shake_shake_op(f, f2, m->training, o); break;
    case NN_RESIDUAL_SHAKEDROP: f = nn_shakedrop_op(f, m->training, o); break;
    default: break;
    }
    if (!f) return NULL;
    if (!nn__reg_same_shape(s, f)) {
        nn__misuse("nn_residual: the shortcut gives %s but the body %s (a projection shortcut "
                   "makes them agree)", nn__ts(s), nn__ts(f));
        return NULL;
    }
    y = nn_add(s, f);
    return o.post_relu && y ? nn_relu_op(y) : y;
}

NNDEF nn_module *nn_residual(nn_module *preact, nn_module *body, nn_module *body2,
                             nn_module *shortcut, nn_residual_opts opts) {
    nn_module *given[4], *m = NULL;
    static const char *const names[4] = {"preact", "body", "body2", "shortcut"};
    nn__res_state *st;
    nn__res_cfg c;
    int i, j, added = 0;
    given[0] = preact;
    given[1] = body;
    given[2] = body2;
    given[3] = shortcut;
    if (!nn__res_check("nn_residual", &opts, &c)) goto fail;
    if (!body || (opts.mode == NN_RESIDUAL_SHAKE_SHAKE) != (body2 != NULL)) {
        nn__misuse("nn_residual: needs a body%s (got body %p, body2 %p)",
                   opts.mode == NN_RESIDUAL_SHAKE_SHAKE ? " and a body2 for Shake-Shake"
                                                        : ", and a body2 only for Shake-Shake",
                   (void *)body, (void *)body2);
        goto fail;
    }
    for (i = 0; i < 4; i++)
        for (j = 0; j < i; j++)
            if (given[i] && given[i] == given[j]) {
                nn__misuse("nn_residual: %s and %s are the same module", names[j], names[i]);
                goto fail;
            }
    if (!(m = nn__reg_module("Residual", nn__res_forward, sizeof(nn__res_state)))) goto fail;
    st = (nn__res_state *)m->user;
    st->opts = opts;
    st->head.rng = opts.rng;
    st->preact = preact;
    st->body = body;
    st->body2 = body2;
    st->shortcut = shortcut;
    for (added = 0; added < 4; added++) {
        if (!given[added]) continue;
        if (!nn_module_add_child(m, names[added], given[added])) {
            given[added] = NULL;   /* freed by the failed add */
            added++;
            goto fail_added;
        }
    }
    return m;
fail_added:
    for (i = added; i < 4; i++)
        if (given[i] && given[i]->refs == 0) nn_module_free(given[i]);
    nn_module_free(m);
    return NULL;
fail:
    for (i = 0; i < 4; i++)
        if (given[i] && given[i]->refs == 0) {
            for (j = 0; j < i && given[j] != given[i]; j++) {}
            if (j == i) nn_module_free(given[i]);
        }
    return NULL;
}

/* --- penalties and constraints --- */

NNDEF int nn_name_match(const char *pattern, const char *name) {
    /* iterative glob with one backtrack point for the last '*' */
    const char *star = NULL, *resume = NULL;
    if (!pattern || !name) return 0;
    while (*name) {
        if (*pattern == '*') {
            star = pattern++;
            resume = name;
        } else if (*pattern == '?' || *pattern == *name) {
            pattern++;
            name++;
        } else if (star) {
            pattern = star + 1;
            name = ++resume;
        } else {
            return 0;
        }
    }
    while (*pattern == '*') pattern++;
    return *pattern == 0;
}

/* d/dw of scale (l1 |w| + l2 w^2) = scale (l1 sign(w) + 2 l2 w), per input. */
static void nn__penalty_backward(nn__node *n) {
    const float *k = (const float *)n->saved;   /* l1, l2, scale */
    float g = n->out->grad[0] * k[2], a = g * k[0], b = 2.0f * g * k[1];
    int t;
    for (t = 0; t < n->nin; t++) {
        nn_tensor *w = n->in[t];
        float *gw = nn__in_grad(n, t);
        size_t i;
        if (!gw) continue;
        for (i = 0; i < w->numel; i++) {
            float v = w->data[i];
            gw[i] += a * (float)((v > 0.0f) - (v < 0.0f)) + b * v;
        }
    }
}

/* scale (l1 sum |w| + l2 sum w^2) over n tensors, summed in double. */
static nn_tensor *nn__penalty_op(const char *op, nn_tensor **ts, int n, float l1, float l2,
                                 float scale) {
    nn_tensor *out;
    double s1 = 0.0, s2 = 0.0;
    float *k;
    int t;
    if (!(l1 >= 0.0f && l1 < 3.0e38f && l2 >= 0.0f && l2 < 3.0e38f)) {
        nn__misuse("%s: l1 and l2 must be finite and >= 0, got %g and %g", op, (double)l1,
                   (double)l2);
        return NULL;
    }
    if (!(out = nn__op(op, ts, n, nn_shape_scalar(), nn__penalty_backward))) return NULL;
    if (!(k = (float *)nn__scratch(out, 3 * sizeof(float)))) return NULL;
    k[0] = l1;
    k[1] = l2;
    k[2] = scale;
    if (out->node) out->node->saved = k;
    for (t = 0; t < n; t++) {
        size_t i;
        for (i = 0; i < ts[t]->numel; i++) {
            double v = (double)ts[t]->data[i];
            s1 += fabs(v);
            s2 += v * v;
        }
    }
    out->data[0] = (float)((double)scale * ((double)l1 * s1 + (double)l2 * s2));
    return out;
}

NNDEF nn_tensor *nn_penalty(nn_module *m, const char *pattern, float l1, float l2) {
    const char *op = "nn_penalty";
    nn_param *ps;
    nn_tensor **ts;
    int count, i, n = 0;
    if (!pattern) pattern = "*";
    if (!m) {
        nn__misuse("%s: NULL module", op);
        return NULL;
    }
    if (!nn__cur_graph) {
        nn__misuse("%s: this thread has no current graph (call nn_graph_reset(g) first): the "
                   "penalty is a step's tensor", op);
        return NULL;
    }
    ps = nn_parameters(m, &count);
    if (!(ts = (nn_tensor **)nn__arena_alloc(nn__cur_graph, sizeof(nn_tensor *) *
                                             (size_t)(count ? count : 1))))
        return NULL;
    for (i = 0; i < count; i++)
        if (nn_name_match(pattern, ps[i].name)) ts[n++] = ps[i].tensor;
    if (!n) {
        nn__misuse("%s: pattern \"%s\" matches no parameter (the first is \"%s\")", op, pattern,
                   count ? ps[0].name : "");
        return NULL;
    }
    return nn__penalty_op(op, ts, n, l1, l2, 1.0f);
}

NNDEF nn_tensor *nn_l1_penalty(nn_module *m, const char *pattern) { return nn_penalty(m, pattern, 1.0f, 0.0f); }
NNDEF nn_tensor *nn_l2_penalty(nn_module *m, const char *pattern) { return nn_penalty(m, pattern, 0.0f, 1.0f); }

NNDEF nn_tensor *nn_activity_penalty(nn_tensor *a, float l1, float l2) {
    if (!a) {
        nn__misuse("nn_activity_penalty: NULL input");
        return NULL;
    }
    return nn__penalty_op("nn_activity_penalty", &a, 1, l1, l2,
                          a->ndim > 0 && a->shape[0] > 0 ? 1.0f / (float)a->shape[0] : 1.0f);
}

NNDEF void nn_max_norm(nn_tensor *w, float c) {
    size_t rows, len, r, i;
    if (!w || !(c > 0.0f && c < 3.0e38f)) {
        nn__misuse("nn_max_norm: needs a tensor and a finite c > 0, got %s and %g", nn__ts(w),
                   (double)c);
        return;
    }
    if (w->flags & NN_TENSOR_INT64) {
        nn__misuse("nn_max_norm: %s holds int64 values, not floats", nn__ts(w));
        return;
    }
    rows = w->ndim >= 2 ? (size_t)w->shape[0] : 1;
    len = rows ? w->numel / rows : 0;
    for (r = 0; r < rows; r++) {
        float *row = w->data + r * len;
        double sq = 0.0, norm;
        for (i = 0; i < len; i++) sq += (double)row[i] * (double)row[i];
        norm = sqrt(sq);
        if (norm > (double)c) {
            float s = (float)((double)c / (norm + 1e-7));
            for (i = 0; i < len; i++) row[i] *= s;
        }
    }
}

/* --- mixup and CutMix --- */

/* Gamma(a, 1) by Marsaglia and Tsang (a < 1 through Gamma(a+1) U^(1/a)). */
static double nn__sample_gamma(nn__pcg *r, double a) {
    double boost = 1.0, d, c;
    if (a < 1.0) {
        double u = ((double)(nn__pcg_next(r) >> 8) + 1.0) * (1.0 / 16777217.0);
        boost = pow(u, 1.0 / a);
        a += 1.0;
    }
    d = a - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v, u;
        do {
            x = (double)nn__rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        u = ((double)(nn__pcg_next(r) >> 8) + 1.0) * (1.0 / 16777217.0);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v * boost;
    }
}

static int nn__beta_ok(const char *op, float a, float b) {
    if (a > 0.0f && a < 3.0e38f && b > 0.0f && b < 3.0e38f) return 1;
    nn__misuse("%s: alpha must be finite and > 0, got %g%s%g", op, (double)a,
               a == b ? "" : " and ", a == b ? 0.0 : (double)b);
    return 0;
}

NNDEF float nn_sample_beta(nn_rng *rng, float a, float b) {
    nn__pcg *r = nn__reg_pcg(rng);
    double x, y;
    if (!nn__beta_ok("nn_sample_beta", a, b)) return 0.5f;
    x = nn__sample_gamma(r, (double)a);
    y = nn__sample_gamma(r, (double)b);
    return x + y > 0.0 ? (float)(x / (x + y)) : 0.5f;
}

/* The shared part of mixup and CutMix: checks, lambda, the permutation (a
   Fisher-Yates shuffle), the output tensor; NULL after a report. */
static nn_tensor *nn__mix_begin(const char *op, nn_tensor *x, const int *labels, int classes,
                                float alpha, nn__pcg *r, float *lam, int **perm, int images) {
    nn_tensor *out;
    nn_graph *g;
    int n, i;
    if (!nn__beta_ok(op, alpha, alpha)) return NULL;
    if (!x || x->ndim < 1 || (images && x->ndim != 4)) {
        nn__misuse("%s: needs x %s, got %s", op, images ? "[N,C,H,W]" : "[N,...]", nn__ts(x));
        return NULL;
    }
    n = x->shape[0];
    if (classes < 0 || (classes > 0 && !labels)) {
        nn__misuse("%s: needs labels and classes >= 1 for the targets, got classes=%d", op, classes);
        return NULL;
    }
    for (i = 0; labels && i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) {
            nn__misuse("%s: label %d of sample %d is outside [0,%d)", op, labels[i], i, classes);
            return NULL;
        }
    if (!(g = nn__graph_of(op, &x, 1))) return NULL;
    if (!(out = nn__tensor_new(op, g, nn_shape_of(x), 0))) return NULL;
    if (!(*perm = (int *)nn__arena_alloc(g, sizeof(int) * (size_t)(n ? n : 1)))) return NULL;
    {
        double ga = nn__sample_gamma(r, (double)alpha), gb = nn__sample_gamma(r, (double)alpha);
        *lam = ga + gb > 0.0 ? (float)(ga / (ga + gb)) : 0.5f;
    }
    for (i = 0; i < n; i++) (*perm)[i] = i;
    for (i = n - 1; i > 0; i--) {
        int j = (int)nn__rng_below(r, (uint32_t)(i + 1)), t = (*perm)[i];
        (*perm)[i] = (*perm)[j];
        (*perm)[j] = t;
    }
    return out;
}

/* The mixed one-hot targets lambda onehot(y) + (1-lambda) onehot(y[pi]). */
static nn_tensor *nn__mix_targets(const char *op, nn_tensor *out, const int *labels, int classes,
                                  const int *perm, float lam) {
    nn_tensor *t;
    int n = out->shape[0], i;
    if (!(t = nn__tensor_new(op, out->graph, NN_SHAPE(n, classes), 1))) return NULL;
    for (i = 0; i < n; i++) {
        t->data[(size_t)i * (size_t)classes + (size_t)labels[i]] += lam;
        t->data[(size_t)i * (size_t)classes + (size_t)labels[perm[i]]] += 1.0f - lam;
    }
    return t;
}

NNDEF nn_tensor *nn_mixup(nn_tensor *x, const int *labels, int classes, float alpha,
                          nn_rng *rng, nn_tensor **targets, float *lambda) {
    const char *op = "nn_mixup";
    nn_tensor *out;
    int *perm, n, i;
    float lam;
    size_t row, j;
    if (targets) *targets = NULL;
    if (!(out = nn__mix_begin(op, x, labels, targets ? classes : 0, alpha, nn__reg_pcg(rng), &lam,
                              &perm, 0)))
        return NULL;
    n = x->shape[0];
    row = n ? x->numel / (size_t)n : 0;
    for (i = 0; i < n; i++) {
        const float *a = x->data + (size_t)i * row, *b = x->data + (size_t)perm[i] * row;
        float *o = out->data + (size_t)i * row;
        for (j = 0; j < row; j++) o[j] = lam * a[j] + (1.0f - lam) * b[j];
    }
    if (lambda) *lambda = lam;
    if (targets && !(*targets = nn__mix_targets(op, out, labels, classes, perm, lam))) return NULL;
    return out;
}

NNDEF nn_tensor *nn_cutmix(nn_tensor *x, const int *labels, int classes, float alpha,
                           nn_rng *rng, nn_tensor **targets, float *lambda) {
    const char *op = "nn_cutmix";
    nn__pcg *r = nn__reg_pcg(rng);
    nn_tensor *out;
    int *perm, n, C, H, W, i, ch, y, cy, cx, y0, y1, x0, x1;
    float lam, cut;
    size_t plane, bh, bw;
    if (targets) *targets = NULL;
    if (!(out = nn__mix_begin(op, x, labels, targets ? classes : 0, alpha, r, &lam, &perm, 1)))
        return NULL;
    n = x->shape[0];
    C = x->shape[1];
    H = x->shape[2];
    W = x->shape[3];
    plane = (size_t)H * (size_t)W;
    memcpy(out->data, x->data, x->numel * sizeof(float));
    /* the box of the reference implementation: side sqrt(1-lambda), a
       uniform centre, clipped to the image */
    cut = sqrtf(1.0f - lam);
    cy = (int)nn__rng_below(r, (uint32_t)(H > 0 ? H : 1));
    cx = (int)nn__rng_below(r, (uint32_t)(W > 0 ? W : 1));
    y0 = NN__MAX(cy - (int)((float)H * cut) / 2, 0);
    y1 = NN__MIN(cy + (int)((float)H * cut) / 2, H);
    x0 = NN__MAX(cx - (int)((float)W * cut) / 2, 0);
    x1 = NN__MIN(cx + (int)((float)W * cut) / 2, W);
    bh = (size_t)(y1 > y0 ? y1 - y0 : 0);
    bw = (size_t)(x1 > x0 ? x1 - x0 : 0);
    for (i = 0; i < n; i++)
        for (ch = 0; ch < C; ch++) {
            float *dst = out->data + ((size_t)i * (size_t)C + (size_t)ch) * plane;
            const float *src = x->data + ((size_t)perm[i] * (size_t)C + (size_t)ch) * plane;
            for (y = y0; y < y1; y++)
                memcpy(dst + (size_t)y * (size_t)W + (size_t)x0, src + (size_t)y * (size_t)W + (size_t)x0,
                       bw * sizeof(float));
        }
    lam = plane ? 1.0f - (float)(bh * bw) / (float)plane : 1.0f;
    if (lambda) *lambda = lam;
    if (targets && !(*targets = nn__mix_targets(op, out, labels, classes, perm, lam))) return NULL;
    return out;
}

/* ===== >>init (implementation) ============================================ */

/* Fan-in/fan-out, gains, the tensor initializers, nn_init_apply, LSUV, Fixup.
   Sizes are PyTorch's: fan_in = size(1) * receptive, fan_out = size(0) *
   receptive.  Random numbers come from nn__init_rng(rng). */

/* The generator to draw from: rng, else the current one. */
static nn_rng *nn__init_rng(nn_rng *rng) { return rng ? rng : nn__rng(); }

/* Misuse check shared by the initializers: t must be a float tensor. */
static int nn__init_ok(const nn_tensor *t, const char *fn) {
    if (!t) {
        nn__misuse("%s: NULL tensor", fn);
        return 0;
    }
    if (t->flags & NN_TENSOR_INT64) {
        nn__misuse("%s: %s holds int64 values (a counter buffer), not floats", fn, nn__ts(t));
        return 0;
    }
    return 1;
}

/* nn_calculate_fan with the name of the user's function in the message. */
static int nn__fan(const nn_tensor *t, const char *fn, int *fan_in, int *fan_out) {
    int i;
    double rf = 1.0;
    if (!nn__init_ok(t, fn)) return -1;
    if (t->ndim < 2) {
        nn__misuse("%s: fan in and fan out can not be computed for %s (fewer than 2 dimensions)",
                   fn, nn__ts(t));
        return -1;
    }
    for (i = 2; i < t->ndim; i++) rf *= t->shape[i];
    if (fan_in) *fan_in = (int)(t->shape[1] * rf);
    if (fan_out) *fan_out = (int)(t->shape[0] * rf);
    return 0;
}

NNDEF int nn_calculate_fan(const nn_tensor *t, int *fan_in, int *fan_out) {
    return nn__fan(t, "nn_calculate_fan", fan_in, fan_out);
}

/* calculate_gain; fn names the caller; -1 for an unknown name (reported). */
static float nn__gain(const char *name, float param, const char *fn) {
    static const char *const ones[] = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                       "conv_transpose2d", "conv_transpose3d", "sigmoid"};
    size_t i;
    if (name) {
        for (i = 0; i < sizeof ones / sizeof ones[0]; i++)
            if (strcmp(name, ones[i]) == 0) return 1.0f;
        if (strcmp(name, "tanh") == 0) return 5.0f / 3.0f;
        if (strcmp(name, "relu") == 0) return sqrtf(2.0f);
        if (strcmp(name, "leaky_relu") == 0) return sqrtf(2.0f / (1.0f + param * param));
        if (strcmp(name, "selu") == 0) return 0.75f;
    }
    nn__misuse("%s: unsupported nonlinearity \"%s\" (linear, conv1d/2d/3d, "
               "conv_transpose1d/2d/3d, sigmoid, tanh, relu, leaky_relu, selu)", fn,
               name ? name : "(null)");
    return -1.0f;
}

NNDEF float nn_calculate_gain(const char *nonlinearity, float param) {
    float g = nn__gain(nonlinearity, param, "nn_calculate_gain");
    return g < 0.0f ? 0.0f : g;
}

/* Fill t with U(a, b) or N(mean, std^2) from r (no checks). */
static void nn__fill_uniform(nn_tensor *t, float a, float b, nn_rng *r) {
    size_t i;
    for (i = 0; i < t->numel; i++) t->data[i] = a + (b - a) * nn_rng_uniform(r);
}
static void nn__fill_normal(nn_tensor *t, float mean, float std, nn_rng *r) {
    size_t i;
    for (i = 0; i < t->numel; i++) t->data[i] = mean + std * nn_rng_normal(r);
}

NNDEF nn_tensor *nn_init_uniform(nn_tensor *t, float a, float b, nn_rng *rng) {
    if (!nn__init_ok(t, "nn_init_uniform")) return NULL;
    if (!(a <= b)) {
        nn__misuse("nn_init_uniform: needs a <= b, got a=%g b=%g", (double)a, (double)b);
        return NULL;
    }
    nn__fill_uniform(t, a, b, nn__init_rng(rng));
    return t;
}

NNDEF nn_tensor *nn_init_normal(nn_tensor *t, float mean, float std, nn_rng *rng) {
    if (!nn__init_ok(t, "nn_init_normal")) return NULL;
    if (!(std >= 0.0f)) {
        nn__misuse("nn_init_normal: needs std >= 0, got %g", (double)std);
        return NULL;
    }
    nn__fill_normal(t, mean, std, nn__init_rng(rng));
    return t;
}

NNDEF nn_tensor *nn_init_constant(nn_tensor *t, float val) {
    size_t i;
    if (!nn__init_ok(t, "nn_init_constant")) return NULL;
    for (i = 0; i < t->numel; i++) t->data[i] = val;
    return t;
}
NNDEF nn_tensor *nn_init_zeros(nn_tensor *t) { return nn_init_constant(t, 0.0f); }
NNDEF nn_tensor *nn_init_ones(nn_tensor *t) { return nn_init_constant(t, 1.0f); }

NNDEF nn_tensor *nn_init_eye(nn_tensor *t) {
    int i;
    if (!nn__init_ok(t, "nn_init_eye")) return NULL;
    if (t->ndim != 2) {
        nn__misuse("nn_init_eye: needs a 2-D tensor, got %s", nn__ts(t));
        return NULL;
    }
    memset(t->data, 0, t->numel * sizeof(float));
    for (i = 0; i < t->shape[0] && i < t->shape[1]; i++) t->data[(size_t)i * t->shape[1] + i] = 1.0f;
    return t;
}

NNDEF nn_tensor *nn_init_dirac(nn_tensor *t, int groups) {
    int g, d, k, per, mind;
    size_t centre = 0, inner = 1;
    if (!nn__init_ok(t, "nn_init_dirac")) return NULL;
    if (t->ndim < 3 || t->ndim > 5) {
        nn__misuse("nn_init_dirac: needs a 3-, 4- or 5-D tensor, got %s", nn__ts(t));
        return NULL;
    }
    if (groups < 1 || t->shape[0] % groups != 0) {
        nn__misuse("nn_init_dirac: dim 0 of %s must be divisible by groups=%d", nn__ts(t), groups);
        return NULL;
    }
    /* the offset of the centre tap inside one [K...] kernel */
    for (k = 2; k < t->ndim; k++) {
        centre = centre * (size_t)t->shape[k] + (size_t)(t->shape[k] / 2);
        inner *= (size_t)t->shape[k];
    }
    per = t->shape[0] / groups;
    mind = per < t->shape[1] ? per : t->shape[1];
    memset(t->data, 0, t->numel * sizeof(float));
    for (g = 0; g < groups; g++)
        for (d = 0; d < mind; d++)
            t->data[((size_t)(g * per + d) * (size_t)t->shape[1] + (size_t)d) * inner + centre] = 1.0f;
    return t;
}

NNDEF nn_tensor *nn_init_xavier_uniform(nn_tensor *t, float gain, nn_rng *rng) {
    int fi, fo;
    float r;
    if (nn__fan(t, "nn_init_xavier_uniform", &fi, &fo) < 0) return NULL;
    r = gain * sqrtf(6.0f / (float)(fi + fo));
    nn__fill_uniform(t, -r, r, nn__init_rng(rng));
    return t;
}

NNDEF nn_tensor *nn_init_xavier_normal(nn_tensor *t, float gain, nn_rng *rng) {
    int fi, fo;
    if (nn__fan(t, "nn_init_xavier_normal", &fi, &fo) < 0) return NULL;
    nn__fill_normal(t, 0.0f, gain * sqrtf(2.0f / (float)(fi + fo)), nn__init_rng(rng));
    return t;
}

/* Kaiming's std gain/sqrt(fan), or -1 after a misuse report. */
static float nn__kaiming_std(nn_tensor *t, nn_init_opts o, const char *fn) {
    int fi, fo;
    float gain;
    if (o.mode != NN_FAN_IN && o.mode != NN_FAN_OUT) {
        nn__misuse("%s: mode %d is neither NN_FAN_IN nor NN_FAN_OUT", fn, (int)o.mode);
        return -1.0f;
    }
    if (nn__fan(t, fn, &fi, &fo) < 0) return -1.0f;
    gain = nn__gain(o.nonlinearity ? o.nonlinearity : "leaky_relu", o.a, fn);
    if (gain < 0.0f) return -1.0f;
    return gain / sqrtf((float)(o.mode == NN_FAN_IN ? fi : fo));
}

NNDEF nn_tensor *nn_init_kaiming_uniform(nn_tensor *t, nn_init_opts opts, nn_rng *rng) {
    float std;
    if (t && t->numel == 0) return t;   /* PyTorch: "Initializing zero-element tensors is a no-op" */
    if ((std = nn__kaiming_std(t, opts, "nn_init_kaiming_uniform")) < 0.0f) return NULL;
    nn__fill_uniform(t, -sqrtf(3.0f) * std, sqrtf(3.0f) * std, nn__init_rng(rng));
    return t;
}

NNDEF nn_tensor *nn_init_kaiming_normal(nn_tensor *t, nn_init_opts opts, nn_rng *rng) {
    float std;
    if (t && t->numel == 0) return t;
    if ((std = nn__kaiming_std(t, opts, "nn_init_kaiming_normal")) < 0.0f) return NULL;
    nn__fill_normal(t, 0.0f, std, nn__init_rng(rng));
    return t;
}

NNDEF nn_tensor *nn_init_lecun_normal(nn_tensor *t, nn_rng *rng) {
    int fi;
    if (nn__fan(t, "nn_init_lecun_normal", &fi, NULL) < 0) return NULL;
    nn__fill_normal(t, 0.0f, 1.0f / sqrtf((float)fi), nn__init_rng(rng));
    return t;
}

NNDEF nn_tensor *nn_init_lecun_uniform(nn_tensor *t, nn_rng *rng) {
    int fi;
    float r;
    if (nn__fan(t, "nn_init_lecun_uniform", &fi, NULL) < 0) return NULL;
    r = sqrtf(3.0f / (float)fi);
    nn__fill_uniform(t, -r, r, nn__init_rng(rng));
    return t;
}

NNDEF nn_tensor *nn_init_orthogonal(nn_tensor *t, float gain, nn_rng *rng) {
    size_t rows, cols, m, n, i, j, k;
    double *q;
    int pass;
    nn_rng *r;
    if (!nn__init_ok(t, "nn_init_orthogonal")) return NULL;
    if (t->ndim < 2) {
        nn__misuse("nn_init_orthogonal: only tensors with 2 or more dimensions are supported, "
                   "got %s", nn__ts(t));
        return NULL;
    }
    if (t->numel == 0) return t;
    rows = (size_t)t->shape[0];
    cols = t->numel / rows;
    /* A = G (rows x cols) when tall, else G^T: m x n with m >= n, kept as n
       columns of length m.  Column j of A is column j of G (tall) or row j
       of G (wide); G is drawn row by row, as torch draws its flattened view. */
    m = rows >= cols ? rows : cols;
    n = rows >= cols ? cols : rows;
    if (!(q = (double *)nn__calloc(m * n, sizeof(double)))) {
        nn__error(NN_ERR_OOM, "nn_init_orthogonal: out of memory for %s", nn__ts(t));
        return NULL;
    }
    r = nn__init_rng(rng);
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++) {
            double v = (double)nn_rng_normal(r);
            if (rows >= cols) q[j * m + i] = v;
            else q[i * m + j] = v;
        }
    /* Modified Gram-Schmidt, twice over ("twice is enough"), in double: the
       Q of A = QR with R's diagonal positive, which is torch's Q * sign(diag R). */
    for (j = 0; j < n; j++) {
        double *c = q + j * m, nrm = 0.0;
        for (pass = 0; pass < 2; pass++)
            for (k = 0; k < j; k++) {
                const double *p = q + k * m;
                double d = 0.0;
                for (i = 0; i < m; i++) d += p[i] * c[i];
                for (i = 0; i < m; i++) c[i] -= d * p[i];
            }
        for (i = 0; i < m; i++) nrm += c[i] * c[i];
        nrm = sqrt(nrm);
        for (i = 0; i < m; i++) c[i] = nrm > 0.0 ? c[i] / nrm : 0.0;
    }
    for (i = 0; i < rows; i++)
        for (j = 0; j < cols; j++)
            t->data[i * cols + j] = (float)((double)gain * (rows >= cols ? q[j * m + i] : q[i * m + j]));
    nn__free(q);
    return t;
}

/* The inverse error function in double: Giles' single-precision
   approximation refined by two Newton steps on erf. */
static double nn__erfinv(double y) {
    double w, p, x;
    int it;
    if (y <= -1.0) return -HUGE_VAL;
    if (y >= 1.0) return HUGE_VAL;
    w = -log((1.0 - y) * (1.0 + y));
    if (w < 5.0) {
        w -= 2.5;
        p = 2.81022636e-08;
        p = 3.43273939e-07 + p * w;
        p = -3.5233877e-06 + p * w;
        p = -4.39150654e-06 + p * w;
        p = 0.00021858087 + p * w;
        p = -0.00125372503 + p * w;
        p = -0.00417768164 + p * w;
        p = 0.246640727 + p * w;
        p = 1.50140941 + p * w;
    } else {
        w = sqrt(w) - 3.0;
        p = -0.000200214257;
        p = 0.000100950558 + p * w;
        p = 0.00134934322 + p * w;
        p = -0.00367342844 + p * w;
        p = 0.00573950773 + p * w;
        p = -0.0076224613 + p * w;
        p = 0.00943887047 + p * w;
        p = 1.00167406 + p * w;
        p = 2.83297682 + p * w;
    }
    x = p * y;
    for (it = 0; it < 2; it++) x -= (erf(x) - y) / (1.1283791670955126 * exp(-x * x));
    return x;
}

NNDEF nn_tensor *nn_init_trunc_normal(nn_tensor *t, float mean, float std, float a, float b,
                                      nn_rng *rng) {
    double lo, hi, s, mu = (double)mean, da = (double)a, db = (double)b;
    size_t i;
    nn_rng *r;
    if (!nn__init_ok(t, "nn_init_trunc_normal")) return NULL;
    if (!(std >= 0.0f) || !(a < b)) {
        nn__misuse("nn_init_trunc_normal: needs std >= 0 and a < b, got std=%g a=%g b=%g",
                   (double)std, (double)a, (double)b);
        return NULL;
    }
    r = nn__init_rng(rng);
    s = std > 0.0f ? (double)std : 1.0;
    /* u ~ U(2 Phi(alpha) - 1, 2 Phi(beta) - 1), x = mean + std sqrt 2 erfinv(u);
       2 Phi(z) - 1 = erf(z / sqrt 2) */
    lo = erf((da - mu) / s / 1.4142135623730951);
    hi = erf((db - mu) / s / 1.4142135623730951);
    for (i = 0; i < t->numel; i++) {
        double u = lo + (hi - lo) * (double)nn_rng_uniform(r);
        double x = std > 0.0f ? mu + (double)std * 1.4142135623730951 * nn__erfinv(u) : mu;
        t->data[i] = (float)(x < da ? da : x > db ? db : x);
    }
    return t;
}

NNDEF nn_tensor *nn_init_sparse(nn_tensor *t, float sparsity, float std, nn_rng *rng) {
    int rows, cols, nz, c, i, *perm;
    nn_rng *r;
    if (!nn__init_ok(t, "nn_init_sparse")) return NULL;
    if (t->ndim != 2) {
        nn__misuse("nn_init_sparse: only 2-D tensors are supported, got %s", nn__ts(t));
        return NULL;
    }
    if (!(sparsity >= 0.0f && sparsity <= 1.0f) || !(std >= 0.0f)) {
        nn__misuse("nn_init_sparse: needs sparsity in [0, 1] and std >= 0, got sparsity=%g std=%g",
                   (double)sparsity, (double)std);
        return NULL;
    }
    rows = t->shape[0];
    cols = t->shape[1];
    nz = (int)ceil((double)sparsity * rows);
    if (nz > rows) nz = rows;
    if (!(perm = (int *)nn__malloc(sizeof(int) * (size_t)(rows > 0 ? rows : 1)))) return NULL;
    r = nn__init_rng(rng);
    nn__fill_normal(t, 0.0f, std, r);
    for (c = 0; c < cols; c++) {
        /* the first nz entries of a random permutation of the rows */
        for (i = 0; i < rows; i++) perm[i] = i;
        for (i = 0; i < nz; i++) {
            int j = i + (int)nn_rng_below(r, (uint32_t)(rows - i)), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
            t->data[(size_t)perm[i] * (size_t)cols + (size_t)c] = 0.0f;
        }
    }
    nn__free(perm);
    return t;
}

/* ----- applied to a model ----- */

/* fnmatch-style: '*' any run of characters (dots too), '?' any one. */
static int nn__glob(const char *p, const char *s) {
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}

/* Run one rule on t (zero fields read as the initializer's default). */
static nn_tensor *nn__init_rule(nn_tensor *t, const nn_init_rule *u, nn_rng *rng) {
    float gain = u->gain != 0.0f ? u->gain : 1.0f;
    int bounds = u->a != 0.0f || u->b != 0.0f;
    switch (u->kind) {
    case NN_INIT_ZEROS: return nn_init_zeros(t);
    case NN_INIT_ONES: return nn_init_ones(t);
    case NN_INIT_CONSTANT: return nn_init_constant(t, u->value);
    case NN_INIT_UNIFORM: return nn_init_uniform(t, bounds ? u->a : 0.0f, bounds ? u->b : 1.0f, rng);
    case NN_INIT_NORMAL: return nn_init_normal(t, u->mean, u->std != 0.0f ? u->std : 1.0f, rng);
    case NN_INIT_TRUNC_NORMAL:
        return nn_init_trunc_normal(t, u->mean, u->std != 0.0f ? u->std : 1.0f,
                                    bounds ? u->a : -2.0f, bounds ? u->b : 2.0f, rng);
    case NN_INIT_EYE: return nn_init_eye(t);
    case NN_INIT_DIRAC: return nn_init_dirac(t, u->groups ? u->groups : 1);
    case NN_INIT_XAVIER_UNIFORM: return nn_init_xavier_uniform(t, gain, rng);
    case NN_INIT_XAVIER_NORMAL: return nn_init_xavier_normal(t, gain, rng);
    case NN_INIT_KAIMING_UNIFORM: return nn_init_kaiming_uniform(t, u->kaiming, rng);
    case NN_INIT_KAIMING_NORMAL: return nn_init_kaiming_normal(t, u->kaiming, rng);
    case NN_INIT_LECUN_UNIFORM: return nn_init_lecun_uniform(t, rng);
    case NN_INIT_LECUN_NORMAL: return nn_init_lecun_normal(t, rng);
    case NN_INIT_ORTHOGONAL: return nn_init_orthogonal(t, gain, rng);
    case NN_INIT_SPARSE: return nn_init_sparse(t, u->sparsity, u->std != 0.0f ? u->std : 0.01f, rng);
    case NN_INIT_CUSTOM:
        if (u->fn) return u->fn(t, u->user, rng);
        nn__misuse("nn_init_apply: NN_INIT_CUSTOM without a function");
        return NULL;
    default: break;
    }
    nn__misuse("nn_init_apply: unknown rule kind %d", (int)u->kind);
    return NULL;
}

NNDEF int nn_init_apply(nn_module *m, const char *pattern, nn_init_rule rule, nn_rng *rng) {
    nn_param *p;
    int i, n, done = 0;
    if (!m || !pattern) {
        nn__misuse("nn_init_apply: needs a module and a pattern");
        return -1;
    }
    p = nn_parameters(m, &n);
    for (i = 0; i < n; i++) {
        if (!nn__glob(pattern, p[i].name)) continue;
        if (!nn__init_rule(p[i].tensor, &rule, rng)) {
            /* the initializer reported (the default hook aborted there); a
               second report names the parameter */
            nn__misuse("nn_init_apply: \"%s\" matched parameter \"%s\" %s, which the rule "
                       "cannot initialize (previous message)", pattern, p[i].name,
                       nn__ts(p[i].tensor));
            return -1;
        }
        done++;
    }
    return done;
}

/* ----- LSUV ----- */

/* A weight-bearing layer: its module and dotted path. */
typedef struct nn__lsuv_layer {
    nn_module *mod;
    char name[64];
} nn__lsuv_layer;

/* What the forward hook gathers: the statistics of target's first output. */
typedef struct nn__lsuv_capture {
    nn_module *target;
    int seen;
    double mean, var;
} nn__lsuv_capture;

static void nn__lsuv_hook(nn_module *m, nn_tensor *x, nn_tensor *y, void *user) {
    nn__lsuv_capture *c = (nn__lsuv_capture *)user;
    double s = 0.0, ss = 0.0;
    size_t i;
    (void)x;
    if (m != c->target || c->seen || !y) return;
    for (i = 0; i < y->numel; i++) s += (double)y->data[i];
    c->mean = y->numel ? s / (double)y->numel : 0.0;
    for (i = 0; i < y->numel; i++) ss += ((double)y->data[i] - c->mean) * ((double)y->data[i] - c->mean);
    c->var = y->numel > 1 ? ss / (double)(y->numel - 1) : 0.0;
    c->seen = 1;
}

/* m's own tensor parameter called name, or NULL. */
static nn_tensor *nn__own_param(nn_module *m, const char *name) {
    int i;
    for (i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0) return m->params[i].tensor;
    return NULL;
}

/* Append the weight-bearing modules of m's tree (first occurrence) to *ls. */
static int nn__lsuv_collect(nn_module *m, const char *path, nn__lsuv_layer **ls, int *n, int *cap) {
    nn_tensor *w = nn__own_param(m, "weight");
    int i, j;
    for (j = 0; j < *n && (*ls)[j].mod != m; j++) {}
    if (j < *n) return 1;
    if (w && w->ndim >= 2) {
        if (*n == *cap) {
            int nc = *cap ? 2 * *cap : 16;
            nn__lsuv_layer *g = (nn__lsuv_layer *)NN_REALLOC(*ls, sizeof(nn__lsuv_layer) * (size_t)nc);
            if (!g) return 0;
            *ls = g;
            *cap = nc;
        }
        (*ls)[*n].mod = m;
        snprintf((*ls)[*n].name, sizeof (*ls)[*n].name, "%s", path[0] ? path : "(root)");
        (*n)++;
    }
    for (i = 0; i < m->nchildren; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", m->child_names[i]);
        if (!nn__lsuv_collect(m->children[i], sub, ls, n, cap)) return 0;
    }
    return 1;
}

/* One forward of batch through m in g, capturing target's output. */
static int nn__lsuv_pass(nn_module *m, nn_graph *g, nn_tensor *batch, nn__lsuv_capture *c) {
    nn_tensor *x;
    nn_graph_reset(g);
    c->seen = 0;
    x = nn_tensor_from(g, batch->data, nn_shape_of(batch));
    return x && nn_forward(m, x) != NULL;
}

NNDEF int nn_lsuv(nn_module *m, nn_tensor *batch, nn_lsuv_opts opts, nn_rng *rng,
                  nn_lsuv_result *out, int max_out) {
    nn__lsuv_layer *ls = NULL;
    nn__lsuv_capture cap;
    nn_graph *g, *outer = nn_current_graph();
    nn_forward_hook prev;
    void *prev_user;
    float tol = opts.tol > 0.0f ? opts.tol : 0.1f;
    int max_iter = opts.max_iter > 0 ? opts.max_iter : 10, n = 0, capn = 0, i, ok = 1;
    if (!m || !batch || (batch->flags & NN_TENSOR_INT64) || max_out < 0 || (max_out > 0 && !out)) {
        nn__misuse("nn_lsuv: needs a module, a float batch and room for max_out=%d results, got %s",
                   max_out, nn__ts(batch));
        return -1;
    }
    if (!nn__lsuv_collect(m, "", &ls, &n, &capn)) {
        nn__free(ls);
        nn__error(NN_ERR_OOM, "nn_lsuv: out of memory");
        return -1;
    }
    if (!opts.keep_init)
        for (i = 0; i < n; i++) {
            nn_tensor *b = nn__own_param(ls[i].mod, "bias");
            if (!nn_init_orthogonal(nn__own_param(ls[i].mod, "weight"), 1.0f, rng)) ok = 0;
            if (b) nn_init_zeros(b);
        }
    if (!ok || !(g = nn_graph_new())) {
        nn__free(ls);
        nn_set_current_graph(outer);
        return -1;
    }
    nn_set_grad_enabled(g, 0);
    nn__train_save(m);
    nn_train_mode(m, 0);
    prev = nn_set_forward_hook(nn__lsuv_hook, &cap, &prev_user);
    for (i = 0; i < n && ok; i++) {
        nn_tensor *w = nn__own_param(ls[i].mod, "weight"), *b = nn__own_param(ls[i].mod, "bias");
        nn_lsuv_result res;
        int it = 0;
        size_t k;
        memset(&res, 0, sizeof res);
        memcpy(res.name, ls[i].name, sizeof res.name);
        res.type = ls[i].mod->type;
        res.scale = 1.0f;
        cap.target = ls[i].mod;
        for (;;) {
            double s;
            if (!(ok = nn__lsuv_pass(m, g, batch, &cap))) break;
            if (!cap.seen) break;   /* the layer is not on batch's path */
            if (it == 0) {
                res.var_before = (float)cap.var;
                res.mean_before = (float)cap.mean;
            }
            res.var_after = (float)cap.var;
            res.mean_after = (float)cap.mean;
            if (fabs(cap.var - 1.0) < (double)tol && (!opts.zero_mean || fabs(cap.mean) < (double)tol)) {
                res.converged = 1;
                break;
            }
            if (it == max_iter || !(cap.var > 1e-30)) break;
            /* y' = (y - mean)/std when the mean goes too, else W x / std + b */
            s = 1.0 / sqrt(cap.var);
            for (k = 0; k < w->numel; k++) w->data[k] = (float)((double)w->data[k] * s);
            if (opts.zero_mean && b)
                for (k = 0; k < b->numel; k++) b->data[k] = (float)(((double)b->data[k] - cap.mean) * s);
            res.scale = (float)((double)res.scale * s);
            it++;
        }
        res.iterations = it;
        if (opts.verbose)
            printf("lsuv: %-12s %-8s var %9.4g -> %.4f  mean %8.4f -> %7.4f  %d iteration%s, "
                   "scale %.4g%s\n", res.name, res.type ? res.type : "?", (double)res.var_before,
                   (double)res.var_after, (double)res.mean_before, (double)res.mean_after, it,
                   it == 1 ? "" : "s", (double)res.scale,
                   res.converged ? "" : cap.seen ? "  (not converged)" : "  (not reached by the batch)");
        if (i < max_out) out[i] = res;
    }
    nn_set_forward_hook(prev, prev_user, NULL);
    nn__train_restore(m);
    nn_graph_free(g);
    nn_set_current_graph(outer);
    nn__free(ls);
    return ok ? n : -1;
}

/* ----- Fixup ----- */

/* The tensor at a dotted name, or a misuse report naming it. */
static nn_tensor *nn__fixup_get(nn_module *m, const char *name, const char *what) {
    nn_tensor *t = name ? nn_param_get(m, name) : NULL;
    if (!t) nn__misuse("nn_fixup: %s \"%s\" is not a parameter of this %s", what,
                       name ? name : "(null)", m->type);
    return t;
}

NNDEF nn_status nn_fixup(nn_module *m, const nn_fixup_branch *branches, int n,
                         const char *classifier, nn_init_opts he, nn_rng *rng) {
    int i, j;
    if (!m || n < 0 || (n > 0 && !branches)) {
        nn__misuse("nn_fixup: needs a module and %d branches", n);
        return NN_ERR_ARG;
    }
    /* check every name before changing anything */
    for (i = 0; i < n; i++) {
        const nn_fixup_branch *br = branches + i;
        if (br->m < 1 || !br->weights || (br->nbiases > 0 && !br->biases)) {
            nn__misuse("nn_fixup: branch %d has m=%d weight names and %d biases", i, br->m,
                       br->nbiases);
            return NN_ERR_ARG;
        }
        for (j = 0; j < br->m; j++)
            if (!nn__fixup_get(m, br->weights[j], "weight")) return NN_ERR_ARG;
        for (j = 0; j < br->nbiases; j++)
            if (!nn__fixup_get(m, br->biases[j], "scalar bias")) return NN_ERR_ARG;
        if (br->scale && !nn__fixup_get(m, br->scale, "multiplier")) return NN_ERR_ARG;
    }
    if (classifier && !nn_child(m, classifier)) {
        nn__misuse("nn_fixup: classifier \"%s\" is not a child of this %s", classifier, m->type);
        return NN_ERR_ARG;
    }
    for (i = 0; i < n; i++) {
        const nn_fixup_branch *br = branches + i;
        /* L^(-1/(2m-2)): the branch's output variance then stays O(1/L) */
        float f = br->m > 1 ? powf((float)n, -1.0f / (float)(2 * br->m - 2)) : 1.0f;
        for (j = 0; j < br->m; j++) {
            nn_tensor *w = nn_param_get(m, br->weights[j]);
            size_t k;
            if (j == br->m - 1) {
                nn_init_zeros(w);
                continue;
            }
            if (!nn_init_kaiming_normal(w, he, rng)) return NN_ERR_ARG;
            for (k = 0; k < w->numel; k++) w->data[k] *= f;
        }
        for (j = 0; j < br->nbiases; j++) nn_init_zeros(nn_param_get(m, br->biases[j]));
        if (br->scale) nn_init_ones(nn_param_get(m, br->scale));
    }
    if (classifier) {
        nn_module *c = nn_child(m, classifier);
        nn_tensor *w = nn__own_param(c, "weight"), *b = nn__own_param(c, "bias");
        if (w) nn_init_zeros(w);
        if (b) nn_init_zeros(b);
    }
    return NN_OK;
}

/* ===== >>data (implementation) =========================================== */

/* inflate, gzip, IDX, MNIST, synthetic dataset; the minibatch loader follows. */

/* --- inflate (RFC 1951) ------------------------------------------------------
   Huffman codes decode through a 2^NN__FAST_BITS table indexed by the next
   input bits (deflate packs codes LSB-first, so the table is indexed by the
   bit-reversed code).  Codes longer than NN__FAST_BITS are rare and decode
   bit by bit from the canonical code's per-length counts.  The bit buffer is
   64 bits wide; it is refilled to >= 56 bits whenever it holds fewer than
   48, the most a length/distance pair needs (15 + 5 + 15 + 13 bits).
   Past the end of the input the refill feeds zero bytes and counts them; a
   symbol that consumed any of those bits makes the stream "truncated". */

#define NN__FAST_BITS 10
#define NN__MAX_CODE_BITS 15

typedef struct nn__huff {
    uint16_t fast[1 << NN__FAST_BITS]; /* (symbol << 4) | length; 0: slow path */
    uint16_t count[NN__MAX_CODE_BITS + 1]; /* codes of each length */
    uint16_t symbol[320];                  /* symbols sorted by (length, value) */
} nn__huff;

typedef struct nn__inflater {
    const unsigned char *in;
    size_t in_size, pos;   /* pos may pass in_size: zero bytes were fed then */
    uint64_t bits;
    unsigned nbits;
    unsigned char *out;
    size_t out_size, out_cap;
    size_t base;           /* offset of this gzip member in the input, for messages */
    nn__huff lit, dist;
} nn__inflater;

static const uint16_t nn__len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                          35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char nn__len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                                3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t nn__dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                           193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                           4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char nn__dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                                 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Byte offset of the next unread bit, for error messages. */
static size_t nn__inf_offset(const nn__inflater *z) {
    size_t p = z->pos - z->nbits / 8;
    return z->base + (p < z->in_size ? p : z->in_size);
}

/* Whether decoding has consumed any of the zero bits fed past the input's end. */
static int nn__inf_overrun(const nn__inflater *z) {
    return z->pos > z->in_size && (z->pos - z->in_size) * 8 > z->nbits;
}

static nn_status nn__inf_truncated(const nn__inflater *z) {
    return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated stream at byte %zu",
                     z->base + z->in_size);
}

/* Fill the bit buffer to at least 57 bits.  Returns 0 when bits beyond the end
   of the input have already been consumed (the stream is truncated). */
static int nn__refill_bits(const unsigned char *in, size_t in_size, size_t *pos,
                           uint64_t *bits, unsigned *nbits) {
    size_t p = *pos;
    uint64_t b = *bits;
    unsigned n = *nbits;
    while (n <= 56) {
        if (p < in_size) b |= (uint64_t)in[p] << n;
        p++;
        n += 8;
    }
    *pos = p;
    *bits = b;
    *nbits = n;
    /* The zero bytes fed so far sit at the top of the buffer: any missing
       from it were consumed. */
    return p <= in_size || (p - in_size) * 8 <= n;
}

static int nn__inf_refill(nn__inflater *z) {
    return nn__refill_bits(z->in, z->in_size, &z->pos, &z->bits, &z->nbits);
}

static unsigned nn__inf_take(nn__inflater *z, unsigned n) {
    unsigned v = (unsigned)(z->bits & ((1u << n) - 1u));
    z->bits >>= n;
    z->nbits -= n;
    return v;
}

/* Build a decoding table from code lengths.  Incomplete codes are refused
   unless allow_incomplete (then only "empty" or "one code of length 1", the
   cases RFC 1951 encoders legitimately produce). */
static nn_status nn__huff_build(nn__huff *h, const unsigned char *lens, int n,
                                int allow_incomplete, const char *what) {
    uint16_t offs[NN__MAX_CODE_BITS + 2];
    unsigned next_code[NN__MAX_CODE_BITS + 1];
    int i, len, left = 1, used = 0;
    unsigned code = 0;
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (i = 0; i < n; i++) h->count[lens[i]]++;
    h->count[0] = 0;
    for (len = 1; len <= NN__MAX_CODE_BITS; len++) {
        left <<= 1;
        left -= h->count[len];
        used += h->count[len];
        if (left < 0)
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: over-subscribed %s code", what);
    }
    if (left > 0 && !(allow_incomplete && (used == 0 || (used == 1 && h->count[1] == 1))))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: incomplete %s code", what);
    offs[1] = 0;
    for (len = 1; len <= NN__MAX_CODE_BITS; len++) {
        offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
        next_code[len] = code;
        code = (code + h->count[len]) << 1;
    }
    for (i = 0; i < n; i++) {
        len = lens[i];
        if (!len) continue;
        h->symbol[offs[len]++] = (uint16_t)i;
        if (len <= NN__FAST_BITS) {
            /* Reverse the len-bit code, then fill every slot whose low bits match. */
            unsigned c = next_code[len], r = 0, j;
            int b;
            for (b = 0; b < len; b++) r |= ((c >> b) & 1u) << (len - 1 - b);
            for (j = r; j < (1u << NN__FAST_BITS); j += 1u << len)
                h->fast[j] = (uint16_t)((i << 4) | len);
        }
        next_code[len]++;
    }
    return NN_OK;
}

/* Decode one symbol; the buffer must hold >= 15 bits.  -1 for a bit pattern
   that is no code (possible only with incomplete codes). */
static int nn__huff_decode(const nn__huff *h, uint64_t *bits, unsigned *nbits) {
    unsigned e = h->fast[*bits & ((1u << NN__FAST_BITS) - 1u)];
    int code = 0, first = 0, index = 0, len;
    if (e) {
        *bits >>= e & 15u;
        *nbits -= e & 15u;
        return (int)(e >> 4);
    }
    /* Canonical decoding, one bit at a time (codes come MSB-first). */
    for (len = 1; len <= NN__MAX_CODE_BITS; len++) {
        int count = h->count[len];
        code |= (int)((*bits >> (len - 1)) & 1u);
        if (code - first < count) {
            *bits >>= len;
            *nbits -= (unsigned)len;
            return h->symbol[index + code - first];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

/* Make room for `extra` more output bytes, doubling the buffer. */
static nn_status nn__inf_grow(nn__inflater *z, size_t extra) {
    size_t need, cap;
    unsigned char *p;
    if (extra > (size_t)-1 - z->out_size)
        return nn__error(NN_ERR_OOM, "nn_gunzip: output size overflow");
    need = z->out_size + extra;
    if (need <= z->out_cap) return NN_OK;
    cap = z->out_cap ? z->out_cap : 4096;
    while (cap < need) {
        if (cap > (size_t)-1 / 2) { cap = need; break; }
        cap *= 2;
    }
    p = (unsigned char *)NN_REALLOC(z->out, cap);
    if (!p) return nn__error(NN_ERR_OOM, "nn_gunzip: out of memory growing output to %zu bytes", cap);
    z->out = p;
    z->out_cap = cap;
    return NN_OK;
}

static nn_status nn__inf_stored(nn__inflater *z) {
    unsigned len, nlen;
    nn_status st;
    /* Drop the bits up to the byte boundary and hand whole bytes back. */
    nn__inf_take(z, z->nbits & 7u);
    z->pos -= z->nbits / 8;
    z->bits = 0;
    z->nbits = 0;
    if (z->pos > z->in_size || z->in_size - z->pos < 4) return nn__inf_truncated(z);
    len = (unsigned)z->in[z->pos] | (unsigned)z->in[z->pos + 1] << 8;
    nlen = (unsigned)z->in[z->pos + 2] | (unsigned)z->in[z->pos + 3] << 8;
    if (len != (~nlen & 0xffffu))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: stored block length check failed at byte %zu",
                         z->base + z->pos);
    z->pos += 4;
    if (z->in_size - z->pos < len) return nn__inf_truncated(z);
    if (len == 0) return NN_OK; /* z->out may still be NULL */
    if ((st = nn__inf_grow(z, len)) != NN_OK) return st;
    memcpy(z->out + z->out_size, z->in + z->pos, len);
    z->out_size += len;
    z->pos += len;
    return NN_OK;
}

static nn_status nn__inf_dynamic_tables(nn__inflater *z) {
    static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                            11, 4, 12, 3, 13, 2, 14, 1, 15};
    unsigned char lens[286 + 30];
    unsigned nlit, ndist, ncode, i, n;
    nn_status st;
    if (!nn__inf_refill(z)) return nn__inf_truncated(z);
    nlit = nn__inf_take(z, 5) + 257;
    ndist = nn__inf_take(z, 5) + 1;
    ncode = nn__inf_take(z, 4) + 4;
    if (nlit > 286 || ndist > 30)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: bad block header (%u literal/length, %u "
                         "distance codes) at byte %zu", nlit, ndist, nn__inf_offset(z));
    memset(lens, 0, 19);
    for (i = 0; i < ncode; i++) {
        if (z->nbits < 3 && !nn__inf_refill(z)) return nn__inf_truncated(z);
        lens[order[i]] = (unsigned char)nn__inf_take(z, 3);
    }
    if ((st = nn__huff_build(&z->lit, lens, 19, 0, "code-length")) != NN_OK) return st;
    for (n = 0; n < nlit + ndist;) {
        int sym;
        unsigned rep, val = 0;
        if (!nn__inf_refill(z)) return nn__inf_truncated(z);
        sym = nn__huff_decode(&z->lit, &z->bits, &z->nbits);
        if (sym < 0)
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid code-length code at byte %zu",
                             nn__inf_offset(z));
        if (sym < 16) {
            lens[n++] = (unsigned char)sym;
            continue;
        }
        if (sym == 16) {
            if (n == 0)
                return nn__error(NN_ERR_FORMAT, "nn_gunzip: repeat with no previous length "
                                 "at byte %zu", nn__inf_offset(z));
            val = lens[n - 1];
            rep = 3 + nn__inf_take(z, 2);
        } else if (sym == 17) {
            rep = 3 + nn__inf_take(z, 3);
        } else {
            rep = 11 + nn__inf_take(z, 7);
        }
        if (rep > nlit + ndist - n)
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: code lengths overrun at byte %zu",
                             nn__inf_offset(z));
        memset(lens + n, (int)val, rep);
        n += rep;
    }
    if (lens[256] == 0)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: no end-of-block code at byte %zu",
                         nn__inf_offset(z));
    if ((st = nn__huff_build(&z->lit, lens, (int)nlit, 1, "literal/length")) != NN_OK) return st;
    return nn__huff_build(&z->dist, lens + nlit, (int)ndist, 1, "distance");
}

static nn_status nn__inf_fixed_tables(nn__inflater *z) {
    unsigned char lens[288];
    nn_status st;
    memset(lens, 8, 144);
    memset(lens + 144, 9, 112);
    memset(lens + 256, 7, 24);
    memset(lens + 280, 8, 8);
    if ((st = nn__huff_build(&z->lit, lens, 288, 0, "fixed literal/length")) != NN_OK) return st;
    memset(lens, 5, 30);
    /* Distance symbols 30 and 31 complete the fixed code; decoding rejects them. */
    memset(lens + 30, 5, 2);
    return nn__huff_build(&z->dist, lens, 32, 0, "fixed distance");
}

/* Decode one Huffman-coded block with the current tables.  The hot state
   lives in locals: stores to the output (unsigned char) may alias anything,
   so fields of *z would be reloaded after every byte written.  (Cold paths
   store them back; loading them back in bulk made gcc keep them in vector
   registers, 40% slower.) */
#define NN__INF_SAVE() (z->bits = bits, z->nbits = nbits, z->pos = pos, z->out = out, \
                        z->out_size = osize, z->out_cap = cap)
static nn_status nn__inf_codes(nn__inflater *z) {
    const unsigned char *in = z->in;
    const size_t in_size = z->in_size;
    const uint16_t *litfast = z->lit.fast, *distfast = z->dist.fast;
    uint64_t bits;
    unsigned nbits;
    size_t pos, osize, cap;
    unsigned char *out;
    nn_status st = NN_OK;
    bits = z->bits;
    nbits = z->nbits;
    pos = z->pos;
    out = z->out;
    osize = z->out_size;
    cap = z->out_cap;
    for (;;) {
        unsigned e, len, dist;
        int sym;
        /* 48 bits cover a length code, its extra bits, a distance code and
           its extra bits.  Fast refill: one 8-byte load, whole bytes kept
           (the bits above nbits are the next bytes, so re-ORing is harmless). */
        if (nbits < 48) {
            if (pos + 8 <= in_size) {
                const unsigned char *p = in + pos;
                uint64_t v = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
                             (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
                             (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
                bits |= v << nbits;
                pos += (63 - nbits) >> 3;
                nbits |= 56;
            } else {
                if (!nn__refill_bits(in, in_size, &pos, &bits, &nbits))
                    return nn__inf_truncated(z);
            }
        }
        e = litfast[bits & ((1u << NN__FAST_BITS) - 1u)];
        if (e) {
            bits >>= e & 15u;
            nbits -= e & 15u;
            sym = (int)(e >> 4);
        } else {
            sym = nn__huff_decode(&z->lit, &bits, &nbits);
        }
        if (sym < 256) {
            if (sym < 0) {
                NN__INF_SAVE();
                return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid literal/length code at "
                                 "byte %zu", nn__inf_offset(z));
            }
            if (osize == cap) {
                z->out_size = osize;
                if ((st = nn__inf_grow(z, 1)) != NN_OK) return st;
                out = z->out;
                cap = z->out_cap;
            }
            out[osize++] = (unsigned char)sym;
            continue;
        }
        if (sym == 256) break;
        sym -= 257;
        if (sym >= 29) {
            NN__INF_SAVE();
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid length symbol %d at byte %zu",
                             sym + 257, nn__inf_offset(z));
        }
        e = nn__len_extra[sym];
        len = nn__len_base[sym] + (unsigned)(bits & ((1u << e) - 1u));
        bits >>= e;
        nbits -= e;
        e = distfast[bits & ((1u << NN__FAST_BITS) - 1u)];
        if (e) {
            bits >>= e & 15u;
            nbits -= e & 15u;
            sym = (int)(e >> 4);
        } else {
            sym = nn__huff_decode(&z->dist, &bits, &nbits);
        }
        if (sym < 0 || sym >= 30) {
            NN__INF_SAVE();
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid distance code at byte %zu",
                             nn__inf_offset(z));
        }
        e = nn__dist_extra[sym];
        dist = nn__dist_base[sym] + (unsigned)(bits & ((1u << e) - 1u));
        bits >>= e;
        nbits -= e;
        if (dist > osize) {
            NN__INF_SAVE();
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: distance %u too far back (only %zu "
                             "bytes written) at byte %zu", dist, osize, nn__inf_offset(z));
        }
        if (cap - osize < len) {
            z->out_size = osize;
            if ((st = nn__inf_grow(z, len)) != NN_OK) return st;
            out = z->out;
            cap = z->out_cap;
        }
        {
            unsigned char *d = out + osize;
            const unsigned char *s = d - dist;
            osize += len;
            if (dist >= len) {
                memcpy(d, s, len);
            } else if (dist == 1) {
                memset(d, *s, len);
            } else {
                while (len--) *d++ = *s++;
            }
        }
    }
    NN__INF_SAVE();
    return NN_OK;
}
#undef NN__INF_SAVE

/* Inflate the raw deflate stream at z->in[z->pos...], appending to z->out. */
static nn_status nn__inflate(nn__inflater *z) {
    unsigned final, type;
    nn_status st;
    z->bits = 0;
    z->nbits = 0;
    do {
        if (z->nbits < 3 && !nn__inf_refill(z)) return nn__inf_truncated(z);
        final = nn__inf_take(z, 1);
        type = nn__inf_take(z, 2);
        if (type == 0) {
            st = nn__inf_stored(z);
        } else if (type == 3) {
            st = nn__error(NN_ERR_FORMAT, "nn_gunzip: invalid block type 3 at byte %zu",
                           nn__inf_offset(z));
        } else {
            st = type == 1 ? nn__inf_fixed_tables(z) : nn__inf_dynamic_tables(z);
            if (st == NN_OK) st = nn__inf_codes(z);
        }
        /* A symbol decoded from the zero padding can look invalid before the
           next refill notices the end: report the real cause. */
        if (st == NN_ERR_FORMAT && nn__inf_overrun(z)) return nn__inf_truncated(z);
        if (st != NN_OK) return st;
    } while (!final);
    /* Give back the whole unread bytes; the check catches consumed padding. */
    z->pos -= z->nbits / 8;
    z->bits = 0;
    z->nbits = 0;
    if (z->pos > z->in_size) return nn__inf_truncated(z);
    return NN_OK;
}

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), slicing by 8. */
static uint32_t nn__crc32(const unsigned char *p, size_t n) {
    uint32_t t[8][256], crc = 0xffffffffu;
    int i, k;
    for (i = 0; i < 256; i++) {
        uint32_t c = (uint32_t)i;
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
        t[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (k = 1; k < 8; k++) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xffu];
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = t[7][lo & 0xffu] ^ t[6][(lo >> 8) & 0xffu] ^ t[5][(lo >> 16) & 0xffu] ^
              t[4][lo >> 24] ^ t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    while (n--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xffu];
    return crc ^ 0xffffffffu;
}

static uint32_t nn__le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One gzip member starting at in[pos]: header, deflate data, trailer. */
static nn_status nn__gunzip_member(nn__inflater *z, size_t *pos) {
    const unsigned char *in = z->in;
    size_t n = z->in_size, p = *pos, start = z->out_size;
    unsigned flg;
    nn_status st;
    if (n - p < 10) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
    if (in[p] != 0x1f || in[p + 1] != 0x8b)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: not a gzip stream (magic %02x %02x at byte "
                         "%zu)", in[p], in[p + 1], p);
    if (in[p + 2] != 8)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: unknown compression method %u", in[p + 2]);
    flg = in[p + 3];
    if (flg & 0xe0u)
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: reserved header flags 0x%02x set", flg);
    p += 10;
    if (flg & 4u) { /* FEXTRA: 2-byte length, then that many bytes */
        size_t xlen;
        if (n - p < 2) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        xlen = (size_t)in[p] | (size_t)in[p + 1] << 8;
        p += 2;
        if (n - p < xlen) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        p += xlen;
    }
    if (flg & 8u) { /* FNAME, zero-terminated */
        while (p < n && in[p]) p++;
        if (p == n) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        p++;
    }
    if (flg & 16u) { /* FCOMMENT, zero-terminated */
        while (p < n && in[p]) p++;
        if (p == n) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        p++;
    }
    if (flg & 2u) { /* FHCRC: low 16 bits of the CRC-32 of the header so far */
        if (n - p < 2) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated header at byte %zu", n);
        if ((nn__crc32(in + *pos, p - *pos) & 0xffffu) != ((unsigned)in[p] | (unsigned)in[p + 1] << 8))
            return nn__error(NN_ERR_FORMAT, "nn_gunzip: header CRC mismatch");
        p += 2;
    }
    /* Inflate on the input after the header; offsets in messages stay global. */
    z->in = in + p;
    z->in_size = n - p;
    z->base = p;
    z->pos = 0;
    st = nn__inflate(z);
    p += z->pos;
    z->in = in;
    z->in_size = n;
    z->base = 0;
    if (st != NN_OK) return st;
    if (n - p < 8) return nn__error(NN_ERR_FORMAT, "nn_gunzip: truncated stream at byte %zu "
                                    "(missing CRC/size trailer)", n);
    /* (z->out is NULL while nothing has been written: no pointer arithmetic on it.) */
    if ((z->out_size > start ? nn__crc32(z->out + start, z->out_size - start) : 0u) !=
        nn__le32(in + p))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: CRC mismatch (corrupt data)");
    if ((uint32_t)(z->out_size - start) != nn__le32(in + p + 4))
        return nn__error(NN_ERR_FORMAT, "nn_gunzip: size mismatch: trailer says %lu bytes, "
                         "decoded %zu", (unsigned long)nn__le32(in + p + 4), z->out_size - start);
    *pos = p + 8;
    return NN_OK;
}

NNDEF nn_status nn_gunzip(const unsigned char *in, size_t in_size,
                          unsigned char **out, size_t *out_size) {
    nn__inflater *z;
    size_t pos = 0, hint;
    nn_status st = NN_OK;
    if (!out || !out_size || (!in && in_size))
        return nn__error(NN_ERR_ARG, "nn_gunzip: NULL argument");
    *out = NULL;
    *out_size = 0;
    z = (nn__inflater *)nn__malloc(sizeof *z); /* ~6 KB of tables: keep off the stack */
    if (!z) return NN_ERR_OOM;
    memset(z, 0, sizeof *z);
    z->in = in;
    z->in_size = in_size;
    /* The trailer's ISIZE (size mod 2^32) sizes the buffer in one go; capped
       by deflate's best ratio (~1032:1) so a forged trailer cannot force a
       huge allocation. */
    if (in_size >= 18) {
        hint = nn__le32(in + in_size - 4);
        if (hint / 1032 <= in_size && (st = nn__inf_grow(z, hint)) != NN_OK) goto fail;
    }
    do {
        if ((st = nn__gunzip_member(z, &pos)) != NN_OK) goto fail;
        /* Concatenated members decode into one output (as gzip -d does); a
           lone 0x1f is the start of a truncated one. */
    } while (in_size - pos >= 1 && in[pos] == 0x1f && (in_size - pos == 1 || in[pos + 1] == 0x8b));
    if (pos != in_size) {
        st = nn__error(NN_ERR_FORMAT, "nn_gunzip: %zu bytes of trailing garbage after byte %zu",
                       in_size - pos, pos);
        goto fail;
    }
    if (z->out_cap > z->out_size + z->out_size / 8 + 64) {
        unsigned char *p = (unsigned char *)NN_REALLOC(z->out, z->out_size ? z->out_size : 1);
        if (p) z->out = p;
    }
    if (!z->out) { /* empty output: still hand back a buffer the caller can free */
        z->out = (unsigned char *)nn__malloc(1);
        if (!z->out) { st = NN_ERR_OOM; goto fail; }
    }
    *out = z->out;
    *out_size = z->out_size;
    nn__free(z);
    return NN_OK;
fail:
    nn__free(z->out);
    nn__free(z);
    return st;
}

/* --- IDX files ----------------------------------------------------------- */

static int nn__idx_elem_size(int type) {
    switch (type) {
    case 0x08: case 0x09: return 1;
    case 0x0B: return 2;
    case 0x0C: case 0x0D: return 4;
    case 0x0E: return 8;
    default: return 0;
    }
}

/* Read a whole file into a new buffer. */
static nn_status nn__read_file(const char *path, const char *who, unsigned char **buf,
                               size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL, *nb;
    size_t n = 0, cap = 0, got;
    *buf = NULL;
    *size = 0;
    if (!f) return nn__error(NN_ERR_IO, "%s: %s: cannot open (%s)", who, path, strerror(errno));
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : (size_t)1 << 16;
            if (ncap < cap) { nn__free(b); fclose(f); return nn__error(NN_ERR_OOM, "%s: %s: file too large", who, path); }
            nb = (unsigned char *)NN_REALLOC(b, ncap);
            if (!nb) {
                nn__free(b);
                fclose(f);
                return nn__error(NN_ERR_OOM, "%s: %s: out of memory reading file", who, path);
            }
            b = nb;
            cap = ncap;
        }
        got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        nn__free(b);
        fclose(f);
        return nn__error(NN_ERR_IO, "%s: %s: read error", who, path);
    }
    fclose(f);
    *buf = b;
    *size = n;
    return NN_OK;
}

/* Parse an IDX image in buf (taking ownership of buf, which must come from
   NN_MALLOC/NN_REALLOC: it becomes out->data or is freed).  name is for messages. */
static nn_status nn__idx_parse(const char *name, unsigned char *buf, size_t size, nn_idx *out) {
    size_t count = 1, bytes, header;
    int i, esize, type, ndim;
    nn_status st;
    memset(out, 0, sizeof *out);
    if (size >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
        unsigned char *raw;
        size_t raw_size;
        st = nn_gunzip(buf, size, &raw, &raw_size);
        nn__free(buf);
        if (st != NN_OK) {
            char msg[sizeof nn__errbuf];
            memcpy(msg, nn__errbuf, sizeof msg);
            return nn__error(st, "nn_idx_read: %s: %s", name, msg);
        }
        buf = raw;
        size = raw_size;
    }
    if (size < 4) {
        nn__free(buf);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: truncated: %zu bytes, no IDX header",
                         name, size);
    }
    type = buf[2];
    ndim = buf[3];
    esize = nn__idx_elem_size(type);
    if (buf[0] != 0 || buf[1] != 0 || !esize || ndim < 1 || ndim > NN_MAX_DIMS) {
        uint32_t magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                         (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
        nn__free(buf);
        if (magic >> 16)
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: wrong magic 0x%08lx (not an IDX "
                             "file)", name, (unsigned long)magic);
        if (!esize)
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: wrong magic 0x%08lx (unknown "
                             "element type 0x%02x)", name, (unsigned long)magic, type);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: wrong magic 0x%08lx (%d dimensions; "
                         "1..%d supported)", name, (unsigned long)magic, ndim, NN_MAX_DIMS);
    }
    header = 4 + 4 * (size_t)ndim;
    if (size < header) {
        nn__free(buf);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: truncated: header needs %zu bytes, "
                         "file has %zu", name, header, size);
    }
    for (i = 0; i < ndim; i++) {
        const unsigned char *p = buf + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d > 0x7fffffffu || (d && count > ((size_t)-1 / (size_t)esize) / d)) {
            nn__free(buf);
            memset(out, 0, sizeof *out);
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: dimensions too large (dim %d is "
                             "%lu)", name, i, (unsigned long)d);
        }
        out->dims[i] = (int)d;
        count *= d;
    }
    bytes = count * (size_t)esize;
    if (size - header != bytes) {
        nn__free(buf);
        memset(out, 0, sizeof *out);
        if (size - header < bytes)
            return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: truncated: expected %zu bytes of "
                             "data, found %zu", name, bytes, size - header);
        return nn__error(NN_ERR_FORMAT, "nn_idx_read: %s: %zu bytes of trailing garbage after "
                         "%zu bytes of data", name, size - header - bytes, bytes);
    }
    memmove(buf, buf + header, bytes);
    if (esize > 1) { /* big-endian to host order */
        const uint16_t one = 1;
        unsigned char little;
        memcpy(&little, &one, 1);
        if (little) {
            size_t e;
            for (e = 0; e < count; e++) {
                unsigned char *p = buf + e * (size_t)esize;
                int a = 0, b = esize - 1;
                for (; a < b; a++, b--) {
                    unsigned char t = p[a];
                    p[a] = p[b];
                    p[b] = t;
                }
            }
        }
    }
    out->type = type;
    out->ndim = ndim;
    out->count = count;
    out->data = buf;
    return NN_OK;
}

NNDEF nn_status nn_idx_read(const char *path, nn_idx *out) {
    unsigned char *buf;
    size_t size;
    nn_status st;
    if (!out) return nn__error(NN_ERR_ARG, "nn_idx_read: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return nn__error(NN_ERR_ARG, "nn_idx_read: NULL path");
    if ((st = nn__read_file(path, "nn_idx_read", &buf, &size)) != NN_OK) return st;
    return nn__idx_parse(path, buf, size, out);
}

NNDEF void nn_idx_free(nn_idx *idx) {
    if (!idx) return;
    nn__free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* --- datasets ------------------------------------------------------------ */

/* <dir>/<name>.gz if it can be opened, else <dir>/<name>; a new string. */
static nn_status nn__mnist_path(const char *dir, const char *name, char **path) {
    size_t n = strlen(dir) + strlen(name) + 5;
    FILE *f;
    char *p = (char *)nn__malloc(n);
    *path = p;
    if (!p) return NN_ERR_OOM;
    sprintf(p, "%s/%s.gz", dir, name);
    if ((f = fopen(p, "rb")) != NULL) {
        fclose(f);
        return NN_OK;
    }
    sprintf(p, "%s/%s", dir, name);
    if ((f = fopen(p, "rb")) != NULL) {
        fclose(f);
        return NN_OK;
    }
    nn__error(NN_ERR_IO, "nn_mnist_load: cannot open %s.gz or %s (%s)", p, p, strerror(errno));
    nn__free(p);
    *path = NULL;
    return NN_ERR_IO;
}

NNDEF nn_status nn_mnist_load(const char *dir, int train, nn_dataset *out) {
    const char *prefix = train ? "train" : "t10k";
    char name[64], *ipath = NULL, *lpath = NULL;
    nn_idx im, lb;
    nn_status st;
    int i, maxlabel = 0;
    size_t hw;
    if (!out) return nn__error(NN_ERR_ARG, "nn_mnist_load: NULL output");
    memset(out, 0, sizeof *out);
    memset(&im, 0, sizeof im);
    memset(&lb, 0, sizeof lb);
    if (!dir) return nn__error(NN_ERR_ARG, "nn_mnist_load: NULL directory");
    sprintf(name, "%s-images-idx3-ubyte", prefix);
    if ((st = nn__mnist_path(dir, name, &ipath)) != NN_OK) goto done;
    sprintf(name, "%s-labels-idx1-ubyte", prefix);
    if ((st = nn__mnist_path(dir, name, &lpath)) != NN_OK) goto done;
    if ((st = nn_idx_read(ipath, &im)) != NN_OK) goto done;
    if ((st = nn_idx_read(lpath, &lb)) != NN_OK) goto done;
    if (im.type != 0x08 || im.ndim != 3 || im.dims[1] < 1 || im.dims[2] < 1) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s: expected unsigned bytes of shape "
                       "[n,H,W], got type 0x%02x with %d dimensions", ipath, im.type, im.ndim);
        goto done;
    }
    if (lb.type != 0x08 || lb.ndim != 1) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s: expected unsigned bytes of shape "
                       "[n], got type 0x%02x with %d dimensions", lpath, lb.type, lb.ndim);
        goto done;
    }
    if (lb.dims[0] != im.dims[0]) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s has %d images but %s has %d labels",
                       ipath, im.dims[0], lpath, lb.dims[0]);
        goto done;
    }
    hw = (size_t)im.dims[1] * (size_t)im.dims[2];
    if (hw > 0x7fffffff) {
        st = nn__error(NN_ERR_FORMAT, "nn_mnist_load: %s: images of %dx%d are too large", ipath,
                       im.dims[1], im.dims[2]);
        goto done;
    }
    out->y = (int *)nn__calloc((size_t)lb.dims[0], sizeof(int));
    if (!out->y) { st = NN_ERR_OOM; goto done; }
    for (i = 0; i < lb.dims[0]; i++) {
        out->y[i] = lb.data[i];
        if (out->y[i] > maxlabel) maxlabel = out->y[i];
    }
    out->n = im.dims[0];
    out->sample_size = (int)hw;
    out->shape[0] = 1;
    out->shape[1] = im.dims[1];
    out->shape[2] = im.dims[2];
    /* At least 10 so MNIST always has its 10 classes; more for IDX sets with
       more (EMNIST). */
    out->nclasses = maxlabel + 1 > 10 ? maxlabel + 1 : 10;
    out->x = im.data; /* exactly n*H*W bytes, allocated by the reader */
    im.data = NULL;
    st = NN_OK;
done:
    nn_idx_free(&im);
    nn_idx_free(&lb);
    nn__free(ipath);
    nn__free(lpath);
    if (st != NN_OK) nn_dataset_free(out);
    return st;
}

/* Uniform in [lo, hi). */
static float nn__pcg_range(nn__pcg *r, float lo, float hi) {
    return lo + (hi - lo) * nn__pcg_uniform(r);
}

/* Distance from (px,py) to the segment (ax,ay)-(bx,by). */
static float nn__seg_dist(float px, float py, float ax, float ay, float bx, float by) {
    float dx = bx - ax, dy = by - ay, ex = px - ax, ey = py - ay;
    float l2 = dx * dx + dy * dy, t = l2 > 0.0f ? (ex * dx + ey * dy) / l2 : 0.0f;
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    ex -= t * dx;
    ey -= t * dy;
    return sqrtf(ex * ex + ey * ey);
}

/* Class shapes as segments in a unit box [-1,1]^2 (x right, y down); a
   negative segment count marks a ring (circle of radius 0.75). */
static const float nn__synth_segs[10][5][4] = {
    {{-0.8f, 0.0f, 0.8f, 0.0f}},                                        /* 0: horizontal bar */
    {{0.0f, -0.8f, 0.0f, 0.8f}},                                        /* 1: vertical bar */
    {{-0.7f, -0.7f, 0.7f, 0.7f}},                                       /* 2: diagonal \ */
    {{-0.7f, 0.7f, 0.7f, -0.7f}},                                       /* 3: diagonal / */
    {{0}},                                                              /* 4: ring */
    {{-0.8f, 0.0f, 0.8f, 0.0f}, {0.0f, -0.8f, 0.0f, 0.8f}},             /* 5: plus */
    {{-0.7f, -0.7f, 0.7f, 0.7f}, {-0.7f, 0.7f, 0.7f, -0.7f}},           /* 6: X */
    {{-0.8f, -0.4f, 0.8f, -0.4f}, {-0.8f, 0.4f, 0.8f, 0.4f}},           /* 7: = */
    {{-0.6f, -0.8f, -0.6f, 0.7f}, {-0.6f, 0.7f, 0.7f, 0.7f}},           /* 8: L */
    {{0.0f, -0.8f, -0.75f, 0.65f}, {-0.75f, 0.65f, 0.75f, 0.65f},
     {0.75f, 0.65f, 0.0f, -0.8f}}                                       /* 9: triangle */
};
static const int nn__synth_nsegs[10] = {1, 1, 1, 1, -1, 2, 2, 2, 2, 3};

NNDEF nn_status nn_dataset_synthetic(int n, uint64_t seed, nn_dataset *out) {
    nn__pcg rng;
    int i, j;
    if (!out) return nn__error(NN_ERR_ARG, "nn_dataset_synthetic: NULL output");
    memset(out, 0, sizeof *out);
    if (n < 0) return nn__error(NN_ERR_ARG, "nn_dataset_synthetic: n = %d is negative", n);
    nn__pcg_seed(&rng, seed, 0x14057b7ef767814fULL); /* a private stream */
    out->x = (unsigned char *)nn__calloc((size_t)n, 28 * 28);
    out->y = (int *)nn__calloc((size_t)n, sizeof(int));
    if (!out->x || !out->y) {
        nn_dataset_free(out);
        return NN_ERR_OOM;
    }
    out->n = n;
    out->sample_size = 28 * 28;
    out->shape[0] = 1;
    out->shape[1] = 28;
    out->shape[2] = 28;
    out->nclasses = 10;
    /* Balanced labels in a shuffled order (Fisher-Yates). */
    for (i = 0; i < n; i++) out->y[i] = i % 10;
    for (i = n - 1; i > 0; i--) {
        int k = (int)(((uint64_t)nn__pcg_next(&rng) * (uint64_t)(i + 1)) >> 32), t = out->y[i];
        out->y[i] = out->y[k];
        out->y[k] = t;
    }
    for (i = 0; i < n; i++) {
        int c = out->y[i], x, y, s;
        unsigned char *img = out->x + (size_t)i * 784;
        /* Random placement, size, aspect, rotation, stroke width and ink. */
        float cx = 13.5f + nn__pcg_range(&rng, -3.5f, 3.5f);
        float cy = 13.5f + nn__pcg_range(&rng, -3.5f, 3.5f);
        float scale = nn__pcg_range(&rng, 6.5f, 10.5f);
        float sx = scale * nn__pcg_range(&rng, 0.8f, 1.2f), sy = scale * nn__pcg_range(&rng, 0.8f, 1.2f);
        float ang = nn__pcg_range(&rng, -0.4f, 0.4f), ca = cosf(ang), sa = sinf(ang);
        float width = nn__pcg_range(&rng, 0.9f, 2.2f);
        float ink = nn__pcg_range(&rng, 150.0f, 255.0f);
        float seg[6][4];
        int nseg = nn__synth_nsegs[c];
        for (s = 0; s < nseg; s++)
            for (j = 0; j < 2; j++) {
                float ux = nn__synth_segs[c][s][2 * j] * sx + nn__pcg_range(&rng, -0.8f, 0.8f);
                float uy = nn__synth_segs[c][s][2 * j + 1] * sy + nn__pcg_range(&rng, -0.8f, 0.8f);
                seg[s][2 * j] = cx + ca * ux - sa * uy;
                seg[s][2 * j + 1] = cy + sa * ux + ca * uy;
            }
        /* A distractor: a short random stroke in 60% of the images. */
        if (nn__pcg_uniform(&rng) < 0.6f) {
            float ax = nn__pcg_range(&rng, 2.0f, 25.0f), ay = nn__pcg_range(&rng, 2.0f, 25.0f);
            float da = nn__pcg_range(&rng, 0.0f, 2.0f * NN_PI), dl = nn__pcg_range(&rng, 4.0f, 10.0f);
            s = nseg < 0 ? 0 : nseg;
            seg[s][0] = ax;
            seg[s][1] = ay;
            seg[s][2] = ax + dl * cosf(da);
            seg[s][3] = ay + dl * sinf(da);
            nseg = nseg < 0 ? -2 : nseg + 1;
        }
        for (y = 0; y < 28; y++)
            for (x = 0; x < 28; x++) {
                float px = (float)x, py = (float)y, d = 1e9f, v;
                if (nseg < 0) { /* ring, maybe plus the distractor in seg[0] */
                    float ux = (px - cx) * ca + (py - cy) * sa, uy = -(px - cx) * sa + (py - cy) * ca;
                    float r = sqrtf((ux / sx) * (ux / sx) + (uy / sy) * (uy / sy));
                    d = fabsf(r - 0.75f) * scale;
                }
                for (s = 0; s < (nseg < 0 ? -nseg - 1 : nseg); s++) {
                    float e = nn__seg_dist(px, py, seg[s][0], seg[s][1], seg[s][2], seg[s][3]);
                    if (e < d) d = e;
                }
                /* Anti-aliased stroke, then Gaussian-ish noise (sum of 3 uniforms). */
                v = width + 0.5f - d;
                v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
                v = v * ink + 40.0f * (nn__pcg_uniform(&rng) + nn__pcg_uniform(&rng) +
                                       nn__pcg_uniform(&rng) - 1.5f);
                img[y * 28 + x] = (unsigned char)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v + 0.5f);
            }
    }
    return NN_OK;
}

NNDEF void nn_dataset_free(nn_dataset *ds) {
    if (!ds) return;
    nn__free(ds->x);
    nn__free(ds->y);
    nn__free(ds->features);
    nn__free(ds->targets);
    memset(ds, 0, sizeof *ds);
}

NNDEF int nn_fashion_mnist(const char *dir, nn_dataset *train, nn_dataset *test) {
    nn_status st;
    if (!train || !test) {
        nn__misuse("nn_fashion_mnist: NULL dataset");
        return NN_ERR_ARG;
    }
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!dir) dir = getenv("NN_DATA");
    if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
    if (strcmp(dir, "synthetic") == 0) { /* the stand-in, only when asked for by name */
        if ((st = nn_dataset_synthetic(12000, 1, train)) != NN_OK) return st;
        if ((st = nn_dataset_synthetic(2000, 2, test)) != NN_OK) {
            nn_dataset_free(train);
            return st;
        }
        return 0;
    }
    if ((st = nn_mnist_load(dir, 1, train)) == NN_OK) {
        if ((st = nn_mnist_load(dir, 0, test)) == NN_OK) return 1;
        nn_dataset_free(train);
    }
    if (st == NN_ERR_IO) { /* missing files: say how to get them, the loader's words last */
        char why[sizeof nn__errbuf];
        memcpy(why, nn__errbuf, sizeof why);
        return nn__error(NN_ERR_IO,
                         "nn_fashion_mnist: Fashion-MNIST not found in %s; get it with "
                         "`apt-get install dataset-fashion-mnist`, or set NN_DATA to a folder "
                         "holding its four IDX files (NN_DATA=synthetic: a generated stand-in "
                         "dataset). %s", dir, why);
    }
    return st; /* a corrupt file or out of memory: the loader's message */
}

#if defined(__GNUC__) || defined(__clang__)
#define NN__PREFETCH(p) __builtin_prefetch(p)
#else
#define NN__PREFETCH(p) ((void)(p))
#endif
#ifndef NN__LOADER_AHEAD
#define NN__LOADER_AHEAD 4 /* samples */
#endif

struct nn_loader {
    const nn_dataset *ds;
    nn_loader_opts o;
    int *order;         /* sample order of this epoch */
    int pos;            /* next sample */
    int batch;          /* batch size of this epoch */
    int next_batch;     /* batch size from the next epoch on */
    int in_epoch;
    int *labels;        /* the current batch's labels */
    /* nn_loader_set_augment's per-batch transform (NULL: none) */
    nn_status (*augment)(void *user, float *data, int n, int C, int H, int W);
    void *augment_user;
};

NNDEF nn_loader *nn_loader_new(const nn_dataset *ds, nn_loader_opts opts) {
    nn_loader *l;
    int i;
    if (!ds || ds->n < 1 || (!ds->x && !ds->features) || (!ds->y && !ds->targets) ||
        opts.batch_size < 0) {
        nn__misuse("nn_loader_new: needs a non-empty dataset and batch_size >= 0");
        return NULL;
    }
    if (opts.image_shape &&
        (size_t)ds->shape[0] * (size_t)ds->shape[1] * (size_t)ds->shape[2] != (size_t)ds->sample_size) {
        nn__misuse("nn_loader_new: image_shape needs the dataset's shape [%d,%d,%d] to hold "
                   "sample_size %d", ds->shape[0], ds->shape[1], ds->shape[2], ds->sample_size);
        return NULL;
    }
    if (!(l = (nn_loader *)nn__calloc(1, sizeof(nn_loader)))) return NULL;
    l->ds = ds;
    l->o = opts;
    if (l->o.batch_size == 0) l->o.batch_size = 64;
    if (l->o.scale == 0.0f) l->o.scale = 1.0f / 255.0f;
    l->batch = l->next_batch = l->o.batch_size;
    l->order = (int *)nn__malloc(sizeof(int) * (size_t)ds->n);
    l->labels = (int *)nn__malloc(sizeof(int) * (size_t)ds->n);
    if (!l->order || !l->labels) {
        nn_loader_free(l);
        return NULL;
    }
    for (i = 0; i < ds->n; i++) l->order[i] = i;
    return l;
}

NNDEF int nn_loader_next(nn_loader *l, nn_graph *g, nn_tensor **x, const int **y) {
    const nn_dataset *ds;
    nn_tensor *t;
    nn_shape s;
    int b, i, n, nt;
    if (!l || !g || !x || !y) {
        nn__misuse("nn_loader_next: NULL argument");
        return NN_ERR_ARG;
    }
    ds = l->ds;
    n = ds->n;
    if (!l->in_epoch) {
        l->in_epoch = 1;
        l->pos = 0;
        l->batch = l->next_batch;
        if (l->o.shuffle) {
            nn__pcg *r = &(l->o.rng ? l->o.rng : nn__rng())->pcg;
            for (i = n - 1; i > 0; i--) { /* Fisher-Yates */
                int k = (int)nn__rng_below(r, (uint32_t)i + 1u), tmp = l->order[i];
                l->order[i] = l->order[k];
                l->order[k] = tmp;
            }
        }
    }
    b = NN__MIN(l->batch, n - l->pos);
    if (b <= 0 || (l->o.drop_last && b < l->batch)) {
        l->in_epoch = 0;
        *x = NULL;
        *y = NULL;
        return 0;
    }
    if (l->o.image_shape) s = NN_SHAPE(b, ds->shape[0], ds->shape[1], ds->shape[2]);
    else s = NN_SHAPE(b, ds->sample_size);
    if (!(t = nn__tensor_new("nn_loader_next", g, s, 0))) {
        char why[160];
        size_t k = strlen(nn__errbuf);
        *x = NULL;
        *y = NULL;
        k = NN__MIN(k, sizeof why - 1); /* a copy: the message is rewritten below */
        memcpy(why, nn__errbuf, k);
        why[k] = '\0';
        nn__error(NN_ERR_OOM, "nn_loader_next: out of memory for a batch of %d samples (%s)", b,
                  why);
        return NN_ERR_OOM;
    }
    nt = nn__ew_threads((double)b * (double)ds->sample_size);
    (void)nt;
    NN__OMP(parallel for schedule(static) num_threads(nt) if(nt > 1))
    for (i = 0; i < b; i++) {
        int k = l->order[l->pos + i];
        float *dst = t->data + (size_t)i * (size_t)ds->sample_size;
        const unsigned char *src;
        if (ds->y) l->labels[i] = ds->y[k];
        if (!ds->x) { /* a float dataset: features as they are */
            memcpy(dst, ds->features + (size_t)k * (size_t)ds->sample_size,
                   sizeof(float) * (size_t)ds->sample_size);
            continue;
        }
        src = ds->x + (size_t)k * (size_t)ds->sample_size;
        if (i + NN__LOADER_AHEAD < b) {
            /* Samples sit at random places: fetch one a few rows ahead. */
            int ka = l->order[l->pos + i + NN__LOADER_AHEAD], c;
            const char *ahead = (const char *)(ds->x + (size_t)ka * (size_t)ds->sample_size);
            for (c = 0; c < ds->sample_size; c += 64) NN__PREFETCH(ahead + c);
            NN__PREFETCH(ahead + ds->sample_size - 1);
            if (ds->y) NN__PREFETCH(ds->y + ka);
        }
        nn__bytes_to_floats(src, (size_t)ds->sample_size, l->o.scale, dst);
    }
    if (l->augment) {
        nn_status st = l->augment(l->augment_user, t->data, b, ds->shape[0], ds->shape[1],
                                  ds->shape[2]);
        if (st != NN_OK) {
            *x = NULL;
            *y = NULL;
            return st;
        }
    }
    l->pos += b;
    *x = t;
    *y = ds->y ? l->labels : NULL;
    return b;
}

NNDEF void nn_loader_set_batch_size(nn_loader *l, int batch_size) {
    if (!l || batch_size < 1) {
        nn__misuse("nn_loader_set_batch_size: batch size must be >= 1, got %d", batch_size);
        return;
    }
    l->next_batch = batch_size;
}

NNDEF int nn_loader_batches(const nn_loader *l) {
    int b;
    if (!l) return 0;
    b = l->in_epoch ? l->batch : l->next_batch;
    return l->o.drop_last ? l->ds->n / b : (l->ds->n + b - 1) / b;
}

NNDEF void nn_loader_free(nn_loader *l) {
    if (!l) return;
    nn__free(l->order);
    nn__free(l->labels);
    nn__free(l);
}

/* A checkpoint's view of a loader (>>io saves and restores it): v[] = the
   dataset's size, the position in the epoch, this epoch's and the next
   epochs' batch sizes, and whether an epoch is under way; order is the
   epoch's sample order (v[0] entries); rng the loader's own generator. */
static void nn__loader_get(const nn_loader *l, int v[5], const int **order, nn_rng **rng) {
    v[0] = l->ds->n;
    v[1] = l->pos;
    v[2] = l->batch;
    v[3] = l->next_batch;
    v[4] = l->in_epoch;
    *order = l->order;
    *rng = l->o.rng;
}
/* NULL when v and order (a saved state) fit l, else what does not;
   seen is scratch of v[0] bytes. */
static const char *nn__loader_check(const nn_loader *l, const int v[5], const int64_t *order,
                                    unsigned char *seen) {
    int i;
    if (v[0] != l->ds->n) return "it was saved for a dataset of another size";
    if (v[1] < 0 || v[1] > v[0] || v[2] < 1 || v[3] < 1 || (v[4] != 0 && v[4] != 1))
        return "its position or batch size is out of range";
    memset(seen, 0, (size_t)v[0]);
    for (i = 0; i < v[0]; i++) {
        if (order[i] < 0 || order[i] >= v[0] || seen[order[i]]) return "its sample order is not a permutation";
        seen[order[i]] = 1;
    }
    return NULL;
}
/* Restore a state nn__loader_check accepted. */
static void nn__loader_set(nn_loader *l, const int v[5], const int64_t *order) {
    int i;
    for (i = 0; i < v[0]; i++) l->order[i] = (int)order[i];
    l->pos = v[1];
    l->batch = v[2];
    l->next_batch = v[3];
    l->in_epoch = v[4];
}

/* --- tabular data: CSV, float datasets, splits, standardization --------- */

/* One field of the current record: its text at buf + off (NUL-terminated,
   quotes undone), where it starts, and whether it was quoted. */
typedef struct nn__csv_field {
    size_t off, len;
    int line, col, quoted;
} nn__csv_field;

typedef struct nn__csv {
    const char *who, *name;     /* the function called; the file's name */
    const unsigned char *s;
    size_t size, pos;
    int line;                   /* the line pos is on (1-based) */
    size_t line_start;          /* offset of that line's first byte */
    int end_line, end_col;      /* where the last record ended */
    char delim;
    char *buf;                  /* field texts of the current record */
    size_t buf_len, buf_cap;
    nn__csv_field *f;
    int nf, f_cap;
} nn__csv;

/* Grow *p (elements of elem bytes, capacity *cap) to hold need elements. */
static int nn__csv_grow(void **p, size_t *cap, size_t need, size_t elem) {
    size_t ncap = *cap ? *cap : 64;
    void *np;
    if (need <= *cap) return 1;
    while (ncap < need) {
        if (ncap > ((size_t)-1 / 2) / elem) {
            nn__error(NN_ERR_OOM, "size overflow growing a buffer of %zu elements", *cap);
            return 0;
        }
        ncap *= 2;
    }
    if (ncap > (size_t)-1 / elem) {
        nn__error(NN_ERR_OOM, "size overflow: %zu x %zu bytes", ncap, elem);
        return 0;
    }
    if (!(np = NN_REALLOC(*p, ncap * elem))) {
        nn__error(NN_ERR_OOM, "out of memory allocating %zu bytes", ncap * elem);
        return 0;
    }
    *p = np;
    *cap = ncap;
    return 1;
}

static int nn__csv_push(nn__csv *c, int ch) {
    void *b = c->buf;
    if (c->buf_len == c->buf_cap && !nn__csv_grow(&b, &c->buf_cap, c->buf_len + 1, 1)) return 0;
    c->buf = (char *)b;
    c->buf[c->buf_len++] = (char)ch;
    return 1;
}

/* A "file:line:column: message" error (column 0: none). */
static nn_status nn__csv_fail(const nn__csv *c, int line, int col, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (col > 0) return nn__error(NN_ERR_FORMAT, "%s: %s:%d:%d: %s", c->who, c->name, line, col, msg);
    return nn__error(NN_ERR_FORMAT, "%s: %s:%d: %s", c->who, c->name, line, msg);
}

static int nn__csv_col(const nn__csv *c) { return (int)(c->pos - c->line_start) + 1; }

/* Past a line end at pos ("\n", "\r\n", or "\r" as the last byte): 1. */
static int nn__csv_eol(nn__csv *c) {
    const unsigned char *s = c->s;
    size_t p = c->pos;
    if (p < c->size && s[p] == '\n') p++;
    else if (p + 1 < c->size && s[p] == '\r' && s[p + 1] == '\n') p += 2;
    else if (p + 1 == c->size && s[p] == '\r') p++;
    else return 0;
    c->end_line = c->line;
    c->end_col = nn__csv_col(c);
    c->pos = p;
    if (p < c->size || s[p - 1] == '\n') {
        c->line++;
        c->line_start = p;
    }
    return 1;
}

static int nn__csv_blank(int ch, char delim) {
    return ch == ' ' || (ch == '\t' && delim != '\t');
}

/* The next record into c->f / c->buf: 1, 0 at the end of the input, or a
   negative status. */
static int nn__csv_record(nn__csv *c) {
    size_t rec_start = c->pos;
    const unsigned char *s = c->s;
    char d = c->delim;
    c->nf = 0;
    c->buf_len = 0;
    if (c->pos >= c->size) return 0;
    for (;;) {
        nn__csv_field *fd;
        void *fp = c->f;
        size_t fcap = (size_t)c->f_cap;
        while (c->pos < c->size && nn__csv_blank(s[c->pos], d)) c->pos++;
        if (c->nf == NN_CSV_MAX_FIELDS)
            return nn__csv_fail(c, c->line, nn__csv_col(c), "more than %d fields in a row",
                                NN_CSV_MAX_FIELDS);
        if (!nn__csv_grow(&fp, &fcap, (size_t)c->nf + 1, sizeof(nn__csv_field))) return NN_ERR_OOM;
        c->f = (nn__csv_field *)fp;
        c->f_cap = (int)fcap;
        fd = &c->f[c->nf++];
        fd->off = c->buf_len;
        fd->line = c->line;
        fd->col = nn__csv_col(c);
        fd->quoted = 0;
        if (c->pos < c->size && s[c->pos] == '"') {
            fd->quoted = 1;
            c->pos++;
            for (;;) {
                int ch;
                if (c->pos >= c->size)
                    return nn__csv_fail(c, fd->line, fd->col, "unterminated quoted field");
                if (c->pos - rec_start > (size_t)NN_CSV_MAX_LINE)
                    return nn__csv_fail(c, fd->line, 0, "row longer than %d bytes", NN_CSV_MAX_LINE);
                ch = s[c->pos++];
                if (ch == '"') {
                    if (c->pos < c->size && s[c->pos] == '"') c->pos++;
                    else break;
                } else if (ch == '\n') {
                    c->line++;
                    c->line_start = c->pos;
                }
                if (!nn__csv_push(c, ch)) return NN_ERR_OOM;
            }
            if (d != ' ')
                while (c->pos < c->size && nn__csv_blank(s[c->pos], d)) c->pos++;
        } else {
            while (c->pos < c->size) {
                int ch = s[c->pos];
                if (ch == d || ch == '\n' || (d == ' ' && ch == '\t')) break;
                if (ch == '\r' && (c->pos + 1 == c->size || s[c->pos + 1] == '\n')) break;
                if (c->pos - rec_start > (size_t)NN_CSV_MAX_LINE)
                    return nn__csv_fail(c, fd->line, 0, "row longer than %d bytes", NN_CSV_MAX_LINE);
                if (!nn__csv_push(c, ch)) return NN_ERR_OOM;
                c->pos++;
            }
            while (c->buf_len > fd->off && nn__csv_blank((unsigned char)c->buf[c->buf_len - 1], d))
                c->buf_len--;
        }
        fd->len = c->buf_len - fd->off;
        if (!nn__csv_push(c, '\0')) return NN_ERR_OOM;
        /* What ends the field: the end, a line end, or a delimiter. */
        if (c->pos >= c->size) {
            c->end_line = c->line;
            c->end_col = nn__csv_col(c);
            return 1;
        }
        if (nn__csv_eol(c)) return 1;
        if (d == ' ' && (s[c->pos] == ' ' || s[c->pos] == '\t')) {
            while (c->pos < c->size && (s[c->pos] == ' ' || s[c->pos] == '\t')) c->pos++;
            if (c->pos >= c->size) {
                c->end_line = c->line;
                c->end_col = nn__csv_col(c);
                return 1;
            }
            if (nn__csv_eol(c)) return 1;
            continue;
        }
        if (s[c->pos] == (unsigned char)d) {
            c->pos++;
            continue;
        }
        return nn__csv_fail(c, c->line, nn__csv_col(c), "unexpected '%c' after a closing quote",
                            s[c->pos] >= 32 && s[c->pos] < 127 ? s[c->pos] : '?');
    }
}

/* The next record that is not blank (one empty unquoted field). */
static int nn__csv_next(nn__csv *c) {
    int r;
    while ((r = nn__csv_record(c)) == 1 && c->nf == 1 && c->f[0].len == 0 && !c->f[0].quoted) {}
    return r;
}

/* A missing value: empty, NA, N/A, NaN, nan or ?. */
static int nn__csv_missing(const char *t, size_t len) {
    return len == 0 || !strcmp(t, "NA") || !strcmp(t, "N/A") || !strcmp(t, "NaN") ||
           !strcmp(t, "nan") || !strcmp(t, "?");
}

/* A decimal number (no hex, inf or nan) that fits a float: 1. */
static int nn__csv_number(const char *t, size_t len, float *v) {
    size_t i;
    int digits = 0;
    char *end;
    double x;
    for (i = 0; i < len; i++) {
        char ch = t[i];
        if (ch >= '0' && ch <= '9') digits = 1;
        else if (ch != '+' && ch != '-' && ch != '.' && ch != 'e' && ch != 'E') return 0;
    }
    if (!digits) return 0;
    x = strtod(t, &end);
    if (end != t + len || !(fabs(x) <= (double)FLT_MAX)) return 0;
    *v = (float)x;
    return 1;
}

/* An optionally signed decimal integer of at most 9 digits: 1. */
static int nn__csv_int(const char *t, size_t len, int *v) {
    size_t i = 0;
    int neg = 0, x = 0;
    if (i < len && (t[i] == '-' || t[i] == '+')) neg = t[i++] == '-';
    if (i == len || len - i > 9) return 0;
    for (; i < len; i++) {
        if (t[i] < '0' || t[i] > '9') return 0;
        x = x * 10 + (t[i] - '0');
    }
    *v = neg ? -x : x;
    return 1;
}

/* Resolve a column list into cols (ncols columns, names or NULL). */
static nn_status nn__csv_cols(const nn__csv *c, const char *what, const char *spec, int ncols,
                              char *const *names, int **cols, int *n) {
    const char *p = spec;
    void *cp = NULL;
    size_t cap = 0;
    *cols = NULL;
    *n = 0;
    while (*p) {
        const char *e = p, *a, *b;
        int j, lo, hi, k = -1;
        size_t len;
        while (*e && *e != ',') e++;
        a = p;
        b = e;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        len = (size_t)(b - a);
        p = *e ? e + 1 : e;
        if (!len) {
            nn__free(cp);
            return nn__error(NN_ERR_ARG, "%s: %s: empty item in the %s column list \"%s\"", c->who,
                             c->name, what, spec);
        }
        for (j = 0; names && j < ncols; j++)
            if (strlen(names[j]) == len && !memcmp(names[j], a, len)) { k = j; break; }
        if (k >= 0) {
            lo = k;
            hi = k + 1;
        } else {
            const char *colon = (const char *)memchr(a, ':', len);
            int ok;
            if (colon) {
                lo = 0;
                hi = ncols;
                ok = (colon == a || nn__csv_int(a, (size_t)(colon - a), &lo)) &&
                     (colon + 1 == b || nn__csv_int(colon + 1, (size_t)(b - colon - 1), &hi));
                if (lo < 0) lo += ncols;
                if (hi < 0) hi += ncols;
                ok = ok && lo >= 0 && hi <= ncols && lo <= hi;
            } else {
                ok = nn__csv_int(a, len, &lo);
                if (lo < 0) lo += ncols;
                hi = lo + 1;
                ok = ok && lo >= 0 && lo < ncols;
            }
            if (!ok) {
                nn__free(cp);
                return nn__error(NN_ERR_ARG, "%s: %s: %s column \"%.*s\" is %s (the file has %d "
                                 "columns)", c->who, c->name, what, (int)len, a,
                                 names ? "not in the header nor a valid index" :
                                 "not a valid index (no header)", ncols);
            }
        }
        if (!nn__csv_grow(&cp, &cap, (size_t)(*n + hi - lo), sizeof(int))) {
            nn__free(cp);
            return NN_ERR_OOM;
        }
        for (j = lo; j < hi; j++) ((int *)cp)[(*n)++] = j;
    }
    *cols = (int *)cp;
    return NN_OK;
}

/* "field 3" or "field 3 (\"age\")" for messages. */
static const char *nn__csv_fname(char *b, size_t bs, int j, char *const *names) {
    if (names) snprintf(b, bs, "field %d (\"%.40s\")", j + 1, names[j]);
    else snprintf(b, bs, "field %d", j + 1);
    return b;
}

static nn_status nn__csv_parse(const char *who, const void *data, size_t size,
                               const char *name, nn_csv_opts opts, nn_dataset *out) {
    nn__csv c;
    nn_status st = NN_OK;
    char **names = NULL, *hdr = NULL, fb[80];
    int *fcols = NULL, *tcols = NULL, *role = NULL, nfc = 0, ntc = 0, ncols = -1, r, j, k;
    void *X = NULL, *T = NULL, *Y = NULL;
    size_t xcap = 0, tcap = 0, ycap = 0, rows = 0;
    int maxlabel = -1;
    memset(out, 0, sizeof *out);
    memset(&c, 0, sizeof c);
    c.who = who;
    c.name = name ? name : "<memory>";
    if (!data && size) return nn__error(NN_ERR_ARG, "%s: NULL data", c.who);
    if (opts.skip_rows < 0)
        return nn__error(NN_ERR_ARG, "%s: %s: skip_rows = %d is negative", c.who, c.name, opts.skip_rows);
    if (opts.delimiter == '"' || opts.delimiter == '\n' || opts.delimiter == '\r')
        return nn__error(NN_ERR_ARG, "%s: %s: the delimiter cannot be a quote or a line end",
                         c.who, c.name);
    c.s = (const unsigned char *)data;
    c.size = size;
    c.line = 1;
    c.delim = opts.delimiter ? opts.delimiter : ',';
    if (size >= 3 && c.s[0] == 0xEF && c.s[1] == 0xBB && c.s[2] == 0xBF) c.pos = c.line_start = 3;
    for (k = 0; k < opts.skip_rows && c.pos < c.size; k++) {
        while (c.pos < c.size && c.s[c.pos] != '\n') c.pos++;
        if (c.pos < c.size) {
            c.pos++;
            c.line++;
            c.line_start = c.pos;
        }
    }
    if (opts.header) {
        size_t hl;
        if ((r = nn__csv_next(&c)) <= 0) {
            st = r < 0 ? (nn_status)r : nn__csv_fail(&c, c.line, 0, "no header row");
            goto done;
        }
        ncols = c.nf;
        hl = c.buf_len;
        names = (char **)nn__calloc((size_t)ncols, sizeof(char *));
        hdr = (char *)nn__malloc(hl);
        if (!names || !hdr) { st = NN_ERR_OOM; goto done; }
        memcpy(hdr, c.buf, hl);
        for (j = 0; j < ncols; j++) names[j] = hdr + c.f[j].off;
    }
    while ((r = nn__csv_next(&c)) == 1) {
        float *xr, *tr;
        if (ncols < 0) ncols = c.nf;
        if (!role) { /* the first data row: resolve the column lists */
            if (opts.target && (st = nn__csv_cols(&c, "target", opts.target, ncols, names, &tcols, &ntc)) != NN_OK)
                goto done;
            if (!opts.target) {
                if (!(tcols = (int *)nn__malloc(sizeof(int)))) { st = NN_ERR_OOM; goto done; }
                tcols[0] = ncols - 1;
                ntc = ncols > 1 ? 1 : 0;
            }
            if (!(role = (int *)nn__calloc((size_t)ncols, sizeof(int)))) { st = NN_ERR_OOM; goto done; }
            for (j = 0; j < ntc; j++) {
                if (role[tcols[j]]) {
                    st = nn__error(NN_ERR_ARG, "%s: %s: column %d is listed twice", c.who, c.name, tcols[j]);
                    goto done;
                }
                role[tcols[j]] = 2;
            }
            if (opts.features) {
                if ((st = nn__csv_cols(&c, "feature", opts.features, ncols, names, &fcols, &nfc)) != NN_OK)
                    goto done;
                for (j = 0; j < nfc; j++) {
                    if (role[fcols[j]]) {
                        st = nn__error(NN_ERR_ARG, "%s: %s: column %d is %s", c.who, c.name, fcols[j],
                                       role[fcols[j]] == 2 ? "both a feature and a target"
                                                           : "listed twice");
                        goto done;
                    }
                    role[fcols[j]] = 1;
                }
            } else {
                if (!(fcols = (int *)nn__calloc((size_t)ncols, sizeof(int)))) { st = NN_ERR_OOM; goto done; }
                for (j = 0; j < ncols; j++)
                    if (!role[j]) fcols[nfc++] = j;
            }
            if (nfc == 0) {
                st = nn__error(NN_ERR_ARG, "%s: %s: no feature columns (the file has %d columns)",
                               c.who, c.name, ncols);
                goto done;
            }
            if (opts.classes && ntc != 1) {
                st = nn__error(NN_ERR_ARG, "%s: %s: class labels need exactly one target column, "
                               "got %d", c.who, c.name, ntc);
                goto done;
            }
        }
        if (c.nf != ncols) {
            if (c.nf > ncols)
                st = nn__csv_fail(&c, c.f[ncols].line, c.f[ncols].col, "%d fields, expected %d",
                                  c.nf, ncols);
            else
                st = nn__csv_fail(&c, c.end_line, c.end_col, "%d fields, expected %d", c.nf, ncols);
            goto done;
        }
        if (rows == 0x7fffffff) {
            st = nn__csv_fail(&c, c.f[0].line, 0, "more than %d rows", 0x7fffffff);
            goto done;
        }
        if (rows + 1 > (size_t)-1 / sizeof(float) / (size_t)(nfc + ntc)) {
            st = nn__error(NN_ERR_OOM, "%s: %s: size overflow at %zu rows", c.who, c.name, rows);
            goto done;
        }
        if (!nn__csv_grow(&X, &xcap, (rows + 1) * (size_t)nfc, sizeof(float)) ||
            (ntc && !opts.classes && !nn__csv_grow(&T, &tcap, (rows + 1) * (size_t)ntc, sizeof(float))) ||
            (opts.classes && !nn__csv_grow(&Y, &ycap, rows + 1, sizeof(int)))) {
            st = NN_ERR_OOM;
            goto done;
        }
        xr = (float *)X + rows * (size_t)nfc;
        tr = T ? (float *)T + rows * (size_t)ntc : NULL; /* no float targets: none */
        for (k = 0; k < nfc + ntc; k++) {
            int tgt = k >= nfc;
            const nn__csv_field *fd = &c.f[j = tgt ? tcols[k - nfc] : fcols[k]];
            const char *t = c.buf + fd->off;
            float v;
            if (nn__csv_missing(t, fd->len)) {
                if (!opts.fill_missing || tgt) {
                    st = nn__csv_fail(&c, fd->line, fd->col, "%s is missing%s",
                                      nn__csv_fname(fb, sizeof fb, j, names),
                                      tgt ? " (a target)" : " (set fill_missing to fill it)");
                    goto done;
                }
                v = opts.fill_value;
            } else if (!nn__csv_number(t, fd->len, &v)) {
                st = nn__csv_fail(&c, fd->line, fd->col, "%s: \"%.40s\" is not a number",
                                  nn__csv_fname(fb, sizeof fb, j, names), t);
                goto done;
            }
            if (!tgt) xr[k] = v;
            else if (!opts.classes) tr[k - nfc] = v;
            else {
                if (!(v >= 0.0f && v <= 1e6f && v == floorf(v))) {
                    st = nn__csv_fail(&c, fd->line, fd->col, "%s: \"%.40s\" is not a class label "
                                      "(an integer in [0, 1000000])",
                                      nn__csv_fname(fb, sizeof fb, j, names), t);
                    goto done;
                }
                ((int *)Y)[rows] = (int)v;
                if ((int)v > maxlabel) maxlabel = (int)v;
            }
        }
        rows++;
    }
    if (r < 0) { st = (nn_status)r; goto done; }
    if (rows == 0) {
        st = nn__csv_fail(&c, c.line, 0, "no data rows");
        goto done;
    }
    out->n = (int)rows;
    out->sample_size = nfc;
    out->shape[0] = 1;
    out->shape[1] = 1;
    out->shape[2] = nfc;
    out->features = (float *)X;
    X = NULL;
    if (opts.classes) {
        out->y = (int *)Y;
        Y = NULL;
        out->nclasses = maxlabel + 1;
    } else if (ntc) {
        out->targets = (float *)T;
        T = NULL;
        out->ntargets = ntc;
    }
done:
    nn__free(X);
    nn__free(T);
    nn__free(Y);
    nn__free(c.buf);
    nn__free(c.f);
    nn__free(names);
    nn__free(hdr);
    nn__free(fcols);
    nn__free(tcols);
    nn__free(role);
    return st;
}

NNDEF nn_status nn_csv_read_mem(const void *data, size_t size, const char *name,
                                nn_csv_opts opts, nn_dataset *out) {
    if (!out) return nn__error(NN_ERR_ARG, "nn_csv_read_mem: NULL output");
    return nn__csv_parse("nn_csv_read_mem", data, size, name, opts, out);
}

NNDEF nn_status nn_csv_read(const char *path, nn_csv_opts opts, nn_dataset *out) {
    FILE *f;
    unsigned char *buf;
    size_t size = 0, got;
    long len;
    nn_status st;
    if (!out) return nn__error(NN_ERR_ARG, "nn_csv_read: NULL output");
    memset(out, 0, sizeof *out);
    if (!path) return nn__error(NN_ERR_ARG, "nn_csv_read: NULL path");
    if (!(f = fopen(path, "rb")))
        return nn__error(NN_ERR_IO, "nn_csv_read: %s: cannot open (%s)", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return nn__error(NN_ERR_IO, "nn_csv_read: %s: cannot seek (not a regular file?)", path);
    }
    if ((unsigned long)len > (unsigned long)NN_CSV_MAX_BYTES) {
        fclose(f);
        return nn__error(NN_ERR_FORMAT, "nn_csv_read: %s: %ld bytes, more than NN_CSV_MAX_BYTES "
                         "(%zu)", path, len, (size_t)NN_CSV_MAX_BYTES);
    }
    if (!(buf = (unsigned char *)nn__malloc((size_t)len + 1))) {
        fclose(f);
        return NN_ERR_OOM;
    }
    while (size < (size_t)len && (got = fread(buf + size, 1, (size_t)len - size, f)) > 0) size += got;
    if (ferror(f) || size != (size_t)len) {
        fclose(f);
        nn__free(buf);
        return nn__error(NN_ERR_IO, "nn_csv_read: %s: read error", path);
    }
    fclose(f);
    if (size >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) { /* gzip: ".csv.gz" */
        unsigned char *raw = NULL;
        size_t rawn = 0;
        st = nn_gunzip(buf, size, &raw, &rawn);
        nn__free(buf);
        if (st != NN_OK) {
            char m[sizeof nn__errbuf];
            memcpy(m, nn__errbuf, sizeof m); /* nn__error writes over nn__errbuf */
            return nn__error(st, "nn_csv_read: %s: %s", path, m);
        }
        if (rawn > (size_t)NN_CSV_MAX_BYTES) {
            nn__free(raw);
            return nn__error(NN_ERR_FORMAT, "nn_csv_read: %s: %zu bytes uncompressed, more than "
                             "NN_CSV_MAX_BYTES (%zu)", path, rawn, (size_t)NN_CSV_MAX_BYTES);
        }
        buf = raw;
        size = rawn;
    }
    st = nn__csv_parse("nn_csv_read", buf, size, path, opts, out);
    nn__free(buf);
    return st;
}

/* Copy count elements of elem bytes into a new buffer (NULL src: NULL). */
static nn_status nn__dup_array(void **dst, const void *src, size_t count, size_t elem) {
    *dst = NULL;
    if (!src) return NN_OK;
    if (!(*dst = nn__calloc(count ? count : 1, elem))) return NN_ERR_OOM;
    if (count) memcpy(*dst, src, count * elem);
    return NN_OK;
}

NNDEF nn_status nn_dataset_tabular(int n, int nfeatures, const float *x, const int *y,
                                   const float *targets, int ntargets, nn_dataset *out) {
    void *a = NULL, *b = NULL, *t = NULL;
    int i;
    if (!out) {
        nn__misuse("nn_dataset_tabular: NULL output");
        return NN_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    if (n < 0 || nfeatures < 1 || !x || ntargets < 0 || (ntargets > 0) != (targets != NULL)) {
        nn__misuse("nn_dataset_tabular: needs n >= 0, nfeatures >= 1, x, and targets with "
                   "ntargets >= 1 or neither (got n=%d nfeatures=%d ntargets=%d)", n, nfeatures,
                   ntargets);
        return NN_ERR_ARG;
    }
    if (nn__dup_array(&a, x, (size_t)n * (size_t)nfeatures, sizeof(float)) ||
        nn__dup_array(&b, y, (size_t)n, sizeof(int)) ||
        nn__dup_array(&t, targets, (size_t)n * (size_t)ntargets, sizeof(float))) {
        nn__free(a);
        nn__free(b);
        return NN_ERR_OOM;
    }
    out->n = n;
    out->sample_size = nfeatures;
    out->shape[0] = out->shape[1] = 1;
    out->shape[2] = nfeatures;
    out->features = (float *)a;
    out->y = (int *)b;
    out->targets = (float *)t;
    out->ntargets = ntargets;
    for (i = 0; y && i < n; i++)
        if (y[i] + 1 > out->nclasses) out->nclasses = y[i] + 1;
    return NN_OK;
}

NNDEF nn_status nn_dataset_subset(const nn_dataset *ds, const int *idx, int m, nn_dataset *out) {
    size_t ss, nt;
    int i;
    if (!out) {
        nn__misuse("nn_dataset_subset: NULL output");
        return NN_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    if (!ds || (!ds->x && !ds->features) || m < 0 || (m > 0 && !idx)) {
        nn__misuse("nn_dataset_subset: needs a dataset with samples and m >= 0 indexes (m=%d)", m);
        return NN_ERR_ARG;
    }
    for (i = 0; i < m; i++)
        if (idx[i] < 0 || idx[i] >= ds->n) {
            nn__misuse("nn_dataset_subset: index %d at position %d is outside [0,%d)", idx[i], i, ds->n);
            return NN_ERR_ARG;
        }
    *out = *ds;
    out->n = m;
    out->x = NULL;
    out->y = NULL;
    out->features = NULL;
    out->targets = NULL;
    ss = (size_t)ds->sample_size;
    nt = (size_t)ds->ntargets;
    if ((ds->x && !(out->x = (unsigned char *)nn__calloc((size_t)m ? (size_t)m : 1, ss ? ss : 1))) ||
        (ds->features && !(out->features = (float *)nn__calloc((size_t)m ? (size_t)m : 1, (ss ? ss : 1) * sizeof(float)))) ||
        (ds->y && !(out->y = (int *)nn__calloc((size_t)m ? (size_t)m : 1, sizeof(int)))) ||
        (ds->targets && !(out->targets = (float *)nn__calloc((size_t)m ? (size_t)m : 1, (nt ? nt : 1) * sizeof(float))))) {
        nn_dataset_free(out);
        return NN_ERR_OOM;
    }
    for (i = 0; i < m; i++) {
        size_t k = (size_t)idx[i];
        if (ds->x) memcpy(out->x + (size_t)i * ss, ds->x + k * ss, ss);
        if (ds->features) memcpy(out->features + (size_t)i * ss, ds->features + k * ss, ss * sizeof(float));
        if (ds->y) out->y[i] = ds->y[k];
        if (ds->targets) memcpy(out->targets + (size_t)i * nt, ds->targets + k * nt, nt * sizeof(float));
    }
    return NN_OK;
}

NNDEF nn_status nn_dataset_split(const nn_dataset *ds, float val_frac, float test_frac,
                                 uint64_t seed, int stratified, nn_dataset *train,
                                 nn_dataset *val, nn_dataset *test) {
    nn__pcg rng;
    int *perm = NULL, *order = NULL, *split = NULL, *idx = NULL, *start = NULL;
    int n, i, k, want[3], got[3];
    nn_dataset *outs[3];
    nn_status st = NN_OK;
    if (train) memset(train, 0, sizeof *train);
    if (val) memset(val, 0, sizeof *val);
    if (test) memset(test, 0, sizeof *test);
    if (!ds || !train || !test || (!val && val_frac != 0.0f) || ds->n < 0 ||
        !(val_frac >= 0.0f && test_frac >= 0.0f && (double)val_frac + (double)test_frac <= 1.0)) {
        nn__misuse("nn_dataset_split: needs a dataset, train and test outputs (val too when "
                   "val_frac > 0) and fractions >= 0 summing to at most 1, got val_frac=%g "
                   "test_frac=%g", (double)val_frac, (double)test_frac);
        return NN_ERR_ARG;
    }
    if (stratified && (!ds->y || ds->nclasses < 1)) {
        nn__misuse("nn_dataset_split: stratified needs class labels (the dataset has none)");
        return NN_ERR_ARG;
    }
    n = ds->n;
    want[2] = (int)((double)test_frac * n + 0.5);
    want[1] = (int)((double)val_frac * n + 0.5);
    if (want[1] + want[2] > n) want[1] = n - want[2];
    want[0] = n - want[1] - want[2];
    perm = (int *)nn__calloc((size_t)n + 1, sizeof(int));
    order = (int *)nn__calloc((size_t)n + 1, sizeof(int));
    split = (int *)nn__calloc((size_t)n + 1, sizeof(int));
    idx = (int *)nn__calloc((size_t)n + 1, sizeof(int));
    if (!perm || !order || !split || !idx) { st = NN_ERR_OOM; goto done; }
    nn__pcg_seed(&rng, seed, 0x2545f4914f6cdd1dULL); /* a private stream */
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int r = (int)(((uint64_t)nn__pcg_next(&rng) * (uint64_t)(i + 1)) >> 32), t = perm[i];
        perm[i] = perm[r];
        perm[r] = t;
    }
    if (stratified) { /* the shuffled order grouped by class (counting sort) */
        int C = ds->nclasses;
        if (!(start = (int *)nn__calloc((size_t)C + 1, sizeof(int)))) { st = NN_ERR_OOM; goto done; }
        for (i = 0; i < n; i++) {
            if (ds->y[i] < 0 || ds->y[i] >= C) {
                nn__misuse("nn_dataset_split: label %d of sample %d is outside [0,%d)", ds->y[i], i, C);
                st = NN_ERR_ARG;
                goto done;
            }
            start[ds->y[i] + 1]++;
        }
        for (k = 0; k < C; k++) start[k + 1] += start[k];
        for (i = 0; i < n; i++) order[start[ds->y[perm[i]]]++] = perm[i];
    } else {
        memcpy(order, perm, sizeof(int) * (size_t)n);
    }
    /* Walk the order giving each sample to the split furthest behind its
       share: every prefix, so every class block, is within a sample of its
       fractions, and the totals come out exact. */
    got[0] = got[1] = got[2] = 0;
    for (i = 0; i < n; i++) {
        int best = 0;
        int64_t bd = 0;
        for (k = 0; k < 3; k++) {
            int64_t dk = (int64_t)want[k] * (i + 1) - (int64_t)n * got[k];
            if (k == 0 || dk > bd) { best = k; bd = dk; }
        }
        split[order[i]] = best;
        got[best]++;
    }
    outs[0] = train;
    outs[1] = val;
    outs[2] = test;
    for (k = 0; k < 3; k++) {
        int m = 0;
        if (!outs[k]) continue;
        for (i = 0; i < n; i++)
            if (split[perm[i]] == k) idx[m++] = perm[i];
        if ((st = nn_dataset_subset(ds, idx, m, outs[k])) != NN_OK) goto done;
    }
done:
    if (st != NN_OK) {
        nn_dataset_free(train);
        if (val) nn_dataset_free(val);
        nn_dataset_free(test);
    }
    nn__free(perm);
    nn__free(order);
    nn__free(split);
    nn__free(idx);
    nn__free(start);
    return st;
}

NNDEF nn_status nn_standardizer_init(int n, int targets, nn_standardizer *out) {
    if (!out || n < 1) {
        nn__misuse("nn_standardizer_init: needs an output and n >= 1, got n=%d", n);
        return NN_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    out->n = n;
    out->targets = targets != 0;
    out->mean = nn_zeros(NULL, NN_SHAPE(n));
    out->std = nn_ones(NULL, NN_SHAPE(n));
    if (!out->mean || !out->std) {
        nn_standardizer_free(out);
        return NN_ERR_OOM;
    }
    return NN_OK;
}

/* ds's float columns the standardizer covers: rows of *cols values. */
static float *nn__std_data(const char *op, const nn_dataset *ds, int targets, int *cols) {
    float *d = ds ? (targets ? ds->targets : ds->features) : NULL;
    *cols = ds ? (targets ? ds->ntargets : ds->sample_size) : 0;
    if (!d)
        nn__misuse("%s: the dataset has no float %s", op, targets ? "targets" : "features "
                   "(byte datasets are scaled by the loader)");
    return d;
}

NNDEF nn_status nn_standardize_fit(const nn_dataset *ds, int targets, nn_standardizer *out) {
    const float *d;
    int n, i, j;
    nn_status st;
    if (!out) {
        nn__misuse("nn_standardize_fit: NULL output");
        return NN_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    if (!(d = nn__std_data("nn_standardize_fit", ds, targets, &n))) return NN_ERR_ARG;
    if (ds->n < 1) {
        nn__misuse("nn_standardize_fit: the dataset is empty");
        return NN_ERR_ARG;
    }
    if ((st = nn_standardizer_init(n, targets, out)) != NN_OK) return st;
    for (j = 0; j < n; j++) { /* two passes in double */
        double m = 0.0, v = 0.0, sd;
        for (i = 0; i < ds->n; i++) m += (double)d[(size_t)i * (size_t)n + (size_t)j];
        m /= (double)ds->n;
        for (i = 0; i < ds->n; i++) {
            double e = (double)d[(size_t)i * (size_t)n + (size_t)j] - m;
            v += e * e;
        }
        sd = sqrt(v / (double)ds->n);
        /* Constant to float precision: leave the column's scale alone. */
        if (!(sd > 4.0 * (double)FLT_EPSILON * fabs(m)) || !(sd > 0.0)) sd = 1.0;
        out->mean->data[j] = (float)m;
        out->std->data[j] = (float)sd;
    }
    return NN_OK;
}

NNDEF void nn_standardize_rows(const nn_standardizer *s, float *data, size_t rows, int inverse) {
    size_t i;
    int j;
    if (!s || !s->mean || !s->std || (rows && !data)) {
        nn__misuse("nn_standardize_rows: needs a fitted standardizer and data");
        return;
    }
    for (i = 0; i < rows; i++) {
        float *r = data + i * (size_t)s->n;
        for (j = 0; j < s->n; j++)
            r[j] = inverse ? r[j] * s->std->data[j] + s->mean->data[j]
                           : (r[j] - s->mean->data[j]) / s->std->data[j];
    }
}

NNDEF void nn_standardize_apply(const nn_standardizer *s, nn_dataset *ds) {
    float *d;
    int n;
    if (!s || !s->mean) {
        nn__misuse("nn_standardize_apply: needs a fitted standardizer");
        return;
    }
    if (!(d = nn__std_data("nn_standardize_apply", ds, s->targets, &n))) return;
    if (n != s->n) {
        nn__misuse("nn_standardize_apply: the standardizer has %d columns, the dataset's %s %d",
                   s->n, s->targets ? "targets" : "features", n);
        return;
    }
    nn_standardize_rows(s, d, (size_t)ds->n, 0);
}

NNDEF nn_status nn_standardize_keep(nn_standardizer *s, nn_module *m, const char *name) {
    char *b;
    size_t len;
    nn_status st = NN_OK;
    if (!s || !s->mean || !s->std || s->kept || !m || !name) {
        nn__misuse("nn_standardize_keep: needs a standardizer a module does not keep yet, a module "
                   "and a name");
        return NN_ERR_ARG;
    }
    len = strlen(name);
    if (!(b = (char *)nn__malloc(len + 6))) return NN_ERR_OOM;
    memcpy(b, name, len);
    memcpy(b + len, ".mean", 6);
    s->kept = 1; /* from here on the module frees them, even when adding fails */
    if (!nn_module_add_buffer(m, b, s->mean)) {
        nn_tensor_free(s->std);
        st = NN_ERR_OOM;
    } else {
        memcpy(b + len, ".std", 5);
        if (!nn_module_add_buffer(m, b, s->std)) st = NN_ERR_OOM;
    }
    if (st != NN_OK) s->mean = s->std = NULL;
    nn__free(b);
    return st;
}

NNDEF void nn_standardizer_free(nn_standardizer *s) {
    if (!s) return;
    if (!s->kept) {
        nn_tensor_free(s->mean);
        nn_tensor_free(s->std);
    }
    memset(s, 0, sizeof *s);
}

NNDEF int nn_loader_next_xy(nn_loader *l, nn_graph *g, nn_tensor **x, nn_tensor **t,
                            const int **y) {
    const nn_dataset *ds;
    const int *lab = NULL;
    nn_tensor *tt;
    int b, i;
    size_t nt;
    if (!l || !g || !x || !t) {
        nn__misuse("nn_loader_next_xy: NULL argument");
        return 0;
    }
    *t = NULL;
    b = nn_loader_next(l, g, x, &lab);
    if (y) *y = lab;
    ds = l->ds;
    if (b <= 0 || !ds->targets) return b;
    nt = (size_t)ds->ntargets;
    if (!(tt = nn__tensor_new("nn_loader_next_xy", g, NN_SHAPE(b, ds->ntargets), 0))) return NN_ERR_OOM;
    for (i = 0; i < b; i++) /* the samples nn_loader_next just gave */
        memcpy(tt->data + (size_t)i * nt, ds->targets + (size_t)l->order[l->pos - b + i] * nt,
               nt * sizeof(float));
    *t = tt;
    return b;
}

/* ----- >>data.augment: image augmentation --------------------------------- */

enum {
    NN__AUG_HFLIP, NN__AUG_VFLIP, NN__AUG_CROP, NN__AUG_TRANSLATE, NN__AUG_AFFINE,
    NN__AUG_BRIGHT, NN__AUG_CONTRAST, NN__AUG_NOISE, NN__AUG_CUTOUT, NN__AUG_ERASE,
    NN__AUG_OCCLUDE
};
#define NN__AUG_MAX 32

/* One transform: its kind, integer and float parameters. */
typedef struct nn__aug_step {
    int kind, i0, i1;
    float f[5];
    nn_erase_opts e;
} nn__aug_step;

struct nn_augment {
    nn_rng *rng;
    int n;
    nn__aug_step steps[NN__AUG_MAX];
    float *scratch;      /* one image, kept between batches */
    size_t cap;
};

NNDEF nn_augment *nn_augment_new(nn_rng *rng) {
    nn_augment *a = (nn_augment *)nn__calloc(1, sizeof(nn_augment));
    if (a) a->rng = rng;
    return a;
}

NNDEF void nn_augment_free(nn_augment *a) {
    if (!a) return;
    nn__free_floats(a->scratch);
    nn__free(a);
}

/* Append a step after checking ok; 1, or 0 after a report. */
static int nn__aug_add(const char *op, nn_augment *a, int ok, const char *why, nn__aug_step s) {
    if (!a) {
        nn__misuse("%s: NULL pipeline", op);
        return 0;
    }
    if (!ok) {
        nn__misuse("%s: %s", op, why);
        return 0;
    }
    if (a->n >= NN__AUG_MAX) {
        nn__misuse("%s: a pipeline holds at most %d transforms", op, NN__AUG_MAX);
        return 0;
    }
    a->steps[a->n++] = s;
    return 1;
}

/* A step of kind with integers i0, i1 and floats f0..f2. */
static nn__aug_step nn__aug_mk(int kind, int i0, int i1, float f0, float f1, float f2) {
    nn__aug_step s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.i0 = i0;
    s.i1 = i1;
    s.f[0] = f0;
    s.f[1] = f1;
    s.f[2] = f2;
    return s;
}

static int nn__aug_finite(float v) { return v > -3.0e38f && v < 3.0e38f; }

NNDEF int nn_augment_hflip(nn_augment *a, float p) {
    return nn__aug_add("nn_augment_hflip", a, p >= 0.0f && p <= 1.0f, "p must be in [0,1]",
                       nn__aug_mk(NN__AUG_HFLIP, 0, 0, p > 0.0f ? p : 0.5f, 0, 0));
}
NNDEF int nn_augment_vflip(nn_augment *a, float p) {
    return nn__aug_add("nn_augment_vflip", a, p >= 0.0f && p <= 1.0f, "p must be in [0,1]",
                       nn__aug_mk(NN__AUG_VFLIP, 0, 0, p > 0.0f ? p : 0.5f, 0, 0));
}
NNDEF int nn_augment_crop(nn_augment *a, int padding, int reflect) {
    return nn__aug_add("nn_augment_crop", a, padding >= 0 && padding <= 1 << 20,
                       "padding must be in [0, 2^20]", nn__aug_mk(NN__AUG_CROP, padding, reflect != 0, 0, 0, 0));
}
NNDEF int nn_augment_translate(nn_augment *a, int max_shift, float fill) {
    return nn__aug_add("nn_augment_translate", a, max_shift >= 0 && max_shift <= 1 << 20 && nn__aug_finite(fill),
                       "max_shift must be in [0, 2^20] and fill finite",
                       nn__aug_mk(NN__AUG_TRANSLATE, max_shift, 0, fill, 0, 0));
}
NNDEF int nn_augment_affine(nn_augment *a, float lo_deg, float hi_deg, float scale_lo,
                            float scale_hi, float fill) {
    nn__aug_step s;
    int none = scale_lo == 0.0f && scale_hi == 0.0f;
    s = nn__aug_mk(NN__AUG_AFFINE, 0, 0, lo_deg, hi_deg, fill);
    s.f[3] = none ? 1.0f : scale_lo;
    s.f[4] = none ? 1.0f : scale_hi;
    return nn__aug_add("nn_augment_affine", a,
                       lo_deg <= hi_deg && nn__aug_finite(lo_deg) && nn__aug_finite(hi_deg) &&
                       s.f[3] > 0.0f && s.f[3] <= s.f[4] && nn__aug_finite(s.f[4]) && nn__aug_finite(fill),
                       "needs finite lo_deg <= hi_deg, 0 < scale_lo <= scale_hi (or both 0) and a finite fill", s);
}
NNDEF int nn_augment_brightness(nn_augment *a, float amount) {
    return nn__aug_add("nn_augment_brightness", a, amount >= 0.0f && nn__aug_finite(amount),
                       "amount must be finite and >= 0", nn__aug_mk(NN__AUG_BRIGHT, 0, 0, amount, 0, 0));
}
NNDEF int nn_augment_contrast(nn_augment *a, float amount) {
    return nn__aug_add("nn_augment_contrast", a, amount >= 0.0f && nn__aug_finite(amount),
                       "amount must be finite and >= 0", nn__aug_mk(NN__AUG_CONTRAST, 0, 0, amount, 0, 0));
}
NNDEF int nn_augment_noise(nn_augment *a, float sigma) {
    return nn__aug_add("nn_augment_noise", a, sigma >= 0.0f && nn__aug_finite(sigma),
                       "sigma must be finite and >= 0", nn__aug_mk(NN__AUG_NOISE, 0, 0, sigma, 0, 0));
}
NNDEF int nn_augment_cutout(nn_augment *a, int size, float fill) {
    return nn__aug_add("nn_augment_cutout", a, size >= 1 && size <= 1 << 20 && nn__aug_finite(fill),
                       "size must be in [1, 2^20] and fill finite", nn__aug_mk(NN__AUG_CUTOUT, size, 0, fill, 0, 0));
}
NNDEF int nn_augment_erase(nn_augment *a, nn_erase_opts o) {
    nn__aug_step s = nn__aug_mk(NN__AUG_ERASE, 0, 0, 0, 0, 0);
    int areas0 = o.area_lo == 0.0f && o.area_hi == 0.0f;
    s.e = o;
    s.e.p = o.p > 0.0f ? o.p : 0.5f;
    s.e.area_lo = areas0 ? 0.02f : o.area_lo;
    s.e.area_hi = areas0 ? 0.4f : o.area_hi;
    s.e.ratio = o.ratio > 0.0f ? o.ratio : 0.3f;
    return nn__aug_add("nn_augment_erase", a,
                       o.p >= 0.0f && o.p <= 1.0f && s.e.area_lo > 0.0f && s.e.area_lo <= s.e.area_hi &&
                       s.e.area_hi <= 1.0f && s.e.ratio <= 1.0f && nn__aug_finite(o.fill),
                       "needs p in [0,1], 0 < area_lo <= area_hi <= 1, ratio in (0,1] and a finite fill", s);
}
NNDEF int nn_augment_occlude(nn_augment *a, int count, int size, float fill) {
    return nn__aug_add("nn_augment_occlude", a, count >= 1 && count <= 1 << 20 && size >= 1 &&
                       size <= 1 << 20 && nn__aug_finite(fill),
                       "count and size must be in [1, 2^20] and fill finite",
                       nn__aug_mk(NN__AUG_OCCLUDE, count, size, fill, 0, 0));
}

/* Fill rows y0..y1-1, columns x0..x1-1 of every channel. */
static void nn__aug_rect(float *img, int C, int H, int W, int y0, int y1, int x0, int x1, float v) {
    int c, y, x;
    for (c = 0; c < C; c++)
        for (y = y0; y < y1; y++)
            for (x = x0; x < x1; x++) img[((size_t)c * (size_t)H + (size_t)y) * (size_t)W + (size_t)x] = v;
}

/* Reflection of index k into [0, n) without repeating the edge (numpy's
   and torch's "reflect"); n >= 2 or k already inside. */
static int nn__aug_reflect(int k, int n) {
    if (k < 0) k = -k;
    if (k >= n) k = 2 * n - 2 - k;
    return k;
}

/* Bilinear read of plane src (H x W) at (y, x); fill outside. */
static float nn__aug_bilinear(const float *src, int H, int W, float y, float x, float fill) {
    float fy = floorf(y), fx = floorf(x), wy = y - fy, wx = x - fx, v[4];
    int y0 = (int)fy, x0 = (int)fx, k;
    for (k = 0; k < 4; k++) {
        int yy = y0 + (k >> 1), xx = x0 + (k & 1);
        v[k] = (yy >= 0 && yy < H && xx >= 0 && xx < W) ? src[(size_t)yy * (size_t)W + (size_t)xx] : fill;
    }
    return (1.0f - wy) * ((1.0f - wx) * v[0] + wx * v[1]) + wy * ((1.0f - wx) * v[2] + wx * v[3]);
}

/* One step on one image (C planes of H x W); tmp holds C*H*W floats. */
static void nn__aug_image(const nn__aug_step *s, nn__pcg *r, float *img, float *tmp, int C, int H, int W) {
    size_t plane = (size_t)H * (size_t)W, n = plane * (size_t)C, i;
    int c, y, x;
    switch (s->kind) {
    case NN__AUG_HFLIP:
    case NN__AUG_VFLIP:
        if (!(nn__pcg_uniform(r) < s->f[0])) return;
        memcpy(tmp, img, n * sizeof(float));
        for (c = 0; c < C; c++)
            for (y = 0; y < H; y++)
                for (x = 0; x < W; x++) {
                    int sy = s->kind == NN__AUG_VFLIP ? H - 1 - y : y, sx = s->kind == NN__AUG_HFLIP ? W - 1 - x : x;
                    img[(size_t)c * plane + (size_t)y * (size_t)W + (size_t)x] =
                        tmp[(size_t)c * plane + (size_t)sy * (size_t)W + (size_t)sx];
                }
        return;
    case NN__AUG_CROP:
    case NN__AUG_TRANSLATE: {
        int P = s->i0, dy, dx;
        float fill = s->kind == NN__AUG_CROP ? 0.0f : s->f[0];
        /* crop: offsets in [0, 2P] into the padded image = shifts in [-P, P] */
        dy = (int)nn__rng_below(r, (uint32_t)(2 * P + 1)) - P;
        dx = (int)nn__rng_below(r, (uint32_t)(2 * P + 1)) - P;
        memcpy(tmp, img, n * sizeof(float));
        for (c = 0; c < C; c++)
            for (y = 0; y < H; y++)
                for (x = 0; x < W; x++) {
                    int sy = y + dy, sx = x + dx;
                    float v = fill;
                    if (s->kind == NN__AUG_CROP && s->i1) {
                        sy = nn__aug_reflect(sy, H);
                        sx = nn__aug_reflect(sx, W);
                    }
                    if (sy >= 0 && sy < H && sx >= 0 && sx < W)
                        v = tmp[(size_t)c * plane + (size_t)sy * (size_t)W + (size_t)sx];
                    img[(size_t)c * plane + (size_t)y * (size_t)W + (size_t)x] = v;
                }
        return;
    }
    case NN__AUG_AFFINE: {
        double th = ((double)s->f[0] + (double)(s->f[1] - s->f[0]) * (double)nn__pcg_uniform(r)) * (double)NN_PI / 180.0;
        float sc = s->f[3] + (s->f[4] - s->f[3]) * nn__pcg_uniform(r);
        float co = (float)cos(th) / sc, si = (float)sin(th) / sc;
        float cy = 0.5f * (float)(H - 1), cx = 0.5f * (float)(W - 1);
        memcpy(tmp, img, n * sizeof(float));
        for (c = 0; c < C; c++)
            for (y = 0; y < H; y++)
                for (x = 0; x < W; x++) {
                    float dy = (float)y - cy, dx = (float)x - cx;
                    /* counterclockwise on screen: the source of (dx, dy) */
                    float sx = co * dx - si * dy + cx, sy = si * dx + co * dy + cy;
                    img[(size_t)c * plane + (size_t)y * (size_t)W + (size_t)x] =
                        nn__aug_bilinear(tmp + (size_t)c * plane, H, W, sy, sx, s->f[2]);
                }
        return;
    }
    case NN__AUG_BRIGHT:
    case NN__AUG_CONTRAST: {
        float lo = NN__MAX(0.0f, 1.0f - s->f[0]), f = lo + (1.0f + s->f[0] - lo) * nn__pcg_uniform(r);
        double mean = 0.0;
        if (s->kind == NN__AUG_BRIGHT) {
            for (i = 0; i < n; i++) img[i] *= f;
            return;
        }
        for (i = 0; i < n; i++) mean += (double)img[i];
        mean /= (double)(n ? n : 1);
        for (i = 0; i < n; i++) img[i] = f * img[i] + (1.0f - f) * (float)mean;
        return;
    }
    case NN__AUG_NOISE:
        for (i = 0; i < n; i++) img[i] += s->f[0] * nn__rng_normal(r);
        return;
    case NN__AUG_CUTOUT: {
        int cy = (int)nn__rng_below(r, (uint32_t)H), cx = (int)nn__rng_below(r, (uint32_t)W);
        nn__aug_rect(img, C, H, W, NN__MAX(cy - s->i0 / 2, 0), NN__MIN(cy + s->i0 / 2, H),
                     NN__MAX(cx - s->i0 / 2, 0), NN__MIN(cx + s->i0 / 2, W), s->f[0]);
        return;
    }
    case NN__AUG_ERASE: {
        int k;
        if (!(nn__pcg_uniform(r) < s->e.p)) return;
        for (k = 0; k < 10; k++) {
            float area = (s->e.area_lo + (s->e.area_hi - s->e.area_lo) * nn__pcg_uniform(r)) * (float)plane;
            float ra = s->e.ratio + (1.0f / s->e.ratio - s->e.ratio) * nn__pcg_uniform(r);
            int h = (int)floorf(sqrtf(area * ra) + 0.5f), w = (int)floorf(sqrtf(area / ra) + 0.5f);
            int y0, x0;
            if (h < 1 || w < 1 || h >= H || w >= W) continue;
            y0 = (int)nn__rng_below(r, (uint32_t)(H - h + 1));
            x0 = (int)nn__rng_below(r, (uint32_t)(W - w + 1));
            if (s->e.constant) {
                nn__aug_rect(img, C, H, W, y0, y0 + h, x0, x0 + w, s->e.fill);
            } else {
                for (c = 0; c < C; c++)
                    for (y = y0; y < y0 + h; y++)
                        for (x = x0; x < x0 + w; x++)
                            img[(size_t)c * plane + (size_t)y * (size_t)W + (size_t)x] = nn__pcg_uniform(r);
            }
            return;
        }
        return;
    }
    default: { /* occlusion */
        int k;
        for (k = 0; k < s->i0; k++) {
            int y0 = (int)nn__rng_below(r, (uint32_t)(H - s->i1 + 1));
            int x0 = (int)nn__rng_below(r, (uint32_t)(W - s->i1 + 1));
            nn__aug_rect(img, C, H, W, y0, y0 + s->i1, x0, x0 + s->i1, s->f[0]);
        }
        return;
    }
    }
}

NNDEF nn_status nn_augment_images(nn_augment *a, float *data, int n, int C, int H, int W) {
    const char *op = "nn_augment_images";
    size_t img;
    nn__pcg *r;
    int i, k;
    if (!a || (!data && n > 0) || n < 0 || C < 1 || H < 1 || W < 1) {
        nn__misuse("%s: needs a pipeline and n >= 0 images of C, H, W >= 1, got n=%d C=%d H=%d W=%d",
                   op, n, C, H, W);
        return NN_ERR_ARG;
    }
    for (k = 0; k < a->n; k++) {
        const nn__aug_step *s = &a->steps[k];
        if (s->kind == NN__AUG_CROP && s->i1 && (s->i0 >= H || s->i0 >= W)) {
            nn__misuse("%s: reflect padding %d needs images larger than it, got %d x %d", op,
                       s->i0, H, W);
            return NN_ERR_ARG;
        }
        if (s->kind == NN__AUG_OCCLUDE && (s->i1 > H || s->i1 > W)) {
            nn__misuse("%s: occlusion patches of %d x %d do not fit in %d x %d images", op, s->i1,
                       s->i1, H, W);
            return NN_ERR_ARG;
        }
    }
    img = (size_t)C * (size_t)H * (size_t)W;
    if (img > a->cap) {
        float *t = nn__alloc_floats(img, 0);
        if (!t) return NN_ERR_OOM;
        nn__free_floats(a->scratch);
        a->scratch = t;
        a->cap = img;
    }
    r = nn__reg_pcg(a->rng);
    for (i = 0; i < n; i++)
        for (k = 0; k < a->n; k++)
            nn__aug_image(&a->steps[k], r, data + (size_t)i * img, a->scratch, C, H, W);
    return NN_OK;
}

NNDEF nn_status nn_augment_run(nn_augment *a, nn_tensor *x) {
    if (!x || x->ndim != 4) {
        nn__misuse("nn_augment_run: needs x [N,C,H,W], got %s", nn__ts(x));
        return NN_ERR_ARG;
    }
    if (nn__stale("nn_augment_run", "the input", -1, x)) return NN_ERR_ARG;
    return nn_augment_images(a, x->data, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
}

/* The loader's per-batch hook. */
static nn_status nn__augment_loader_cb(void *a, float *data, int n, int C, int H, int W) {
    return nn_augment_images((nn_augment *)a, data, n, C, H, W);
}

NNDEF void nn_loader_set_augment(nn_loader *l, nn_augment *a) {
    if (!l) {
        nn__misuse("nn_loader_set_augment: NULL loader");
        return;
    }
    l->augment = a ? nn__augment_loader_cb : NULL;
    l->augment_user = a;
}

/* --- adversarial examples --- */

/* Resolved attack options; 0 after a report. */
static int nn__attack_check(const char *op, nn_module *m, nn_tensor *x, const int *labels,
                            nn_attack_opts *o) {
    if (!m || !x || (!labels && !o->loss)) {
        nn__misuse("%s: needs a module, an input and labels (or a loss)", op);
        return 0;
    }
    if (!(o->eps > 0.0f && o->eps < 3.0e38f) || o->steps < 0 || !(o->step_size >= 0.0f) ||
        (!o->no_clip && !(o->clip_lo <= o->clip_hi))) {
        nn__misuse("%s: needs eps > 0, steps >= 0, step_size >= 0 and clip_lo <= clip_hi, got "
                   "eps=%g steps=%d step_size=%g clip [%g, %g]", op, (double)o->eps, o->steps,
                   (double)o->step_size, (double)o->clip_lo, (double)o->clip_hi);
        return 0;
    }
    if (o->clip_lo == 0.0f && o->clip_hi == 0.0f) o->clip_hi = 1.0f;
    if (o->steps == 0) o->steps = 10;
    if (o->step_size == 0.0f) o->step_size = 2.5f * o->eps / (float)o->steps;
    return 1;
}

static nn_tensor *nn__input_grad(const char *op, nn_module *m, nn_tensor *x, const int *labels,
                                 const nn_attack_opts *o) {
    nn_graph *g;
    nn_tensor *xi, *out, *loss, *gr;
    nn_param *ps;
    unsigned char *had;
    int count, i;
    nn_status st;
    if (!(g = nn__graph_of(op, &x, 1))) return NULL;
    if (!(xi = nn__tensor_new(op, g, nn_shape_of(x), 0)) || !(gr = nn__tensor_new(op, g, nn_shape_of(x), 1)))
        return NULL;
    memcpy(xi->data, x->data, x->numel * sizeof(float));
    nn_requires_grad(xi, 1);
    ps = nn_parameters(m, &count);
    if (!(had = (unsigned char *)nn__arena_alloc(g, (size_t)(count ? count : 1)))) return NULL;
    for (i = 0; i < count; i++) {   /* the attack's backward reaches the input only */
        had[i] = (ps[i].tensor->flags & NN_TENSOR_REQUIRES_GRAD) != 0;
        ps[i].tensor->flags &= ~NN_TENSOR_REQUIRES_GRAD;
    }
    out = nn_forward(m, xi);
    if (out) {
        nn_ce_opts ce;
        memset(&ce, 0, sizeof ce);
        loss = o->loss ? o->loss(out, labels, o->loss_user) : nn_cross_entropy(out, labels, ce);
    } else {
        loss = NULL;
    }
    st = loss ? nn_backward(loss) : NN_ERR_ARG;
    for (i = 0; i < count; i++)
        if (had[i]) ps[i].tensor->flags |= NN_TENSOR_REQUIRES_GRAD;
    if (st != NN_OK) return NULL;
    if (xi->grad) memcpy(gr->data, xi->grad, x->numel * sizeof(float));
    return gr;
}

NNDEF nn_tensor *nn_input_grad(nn_module *m, nn_tensor *x, const int *labels, nn_attack_opts opts) {
    if (!nn__attack_check("nn_input_grad", m, x, labels, &opts)) return NULL;
    return nn__input_grad("nn_input_grad", m, x, labels, &opts);
}

/* xa <- proj(xa + a sign(g)) around x0 within eps and the valid range. */
static void nn__attack_step(float *xa, const float *g, const float *x0, size_t n, float a,
                            const nn_attack_opts *o) {
    size_t i;
    for (i = 0; i < n; i++) {
        float v = xa[i] + a * (float)((g[i] > 0.0f) - (g[i] < 0.0f));
        v = NN__MIN(NN__MAX(v, x0[i] - o->eps), x0[i] + o->eps);
        if (!o->no_clip) v = NN__MIN(NN__MAX(v, o->clip_lo), o->clip_hi);
        xa[i] = v;
    }
}

static nn_tensor *nn__pgd(const char *op, nn_module *m, nn_tensor *x, const int *labels,
                          nn_attack_opts o, int fgsm) {
    nn_tensor *xa, *g;
    int k;
    if (!nn__attack_check(op, m, x, labels, &o)) return NULL;
    if (fgsm) {
        o.steps = 1;
        o.step_size = o.eps;
        o.random_start = 0;
    }
    if (!(xa = nn__tensor_new(op, x->graph ? x->graph : nn__cur_graph, nn_shape_of(x), 0))) return NULL;
    memcpy(xa->data, x->data, x->numel * sizeof(float));
    if (o.random_start) {
        nn__pcg *r = nn__reg_pcg(o.rng);
        size_t i;
        float *z = xa->data;
        for (i = 0; i < x->numel; i++) z[i] += o.eps * (2.0f * nn__pcg_uniform(r) - 1.0f);
        for (i = 0; i < x->numel; i++)
            if (!o.no_clip) z[i] = NN__MIN(NN__MAX(z[i], o.clip_lo), o.clip_hi);
    }
    for (k = 0; k < o.steps; k++) {
        if (!(g = nn__input_grad(op, m, xa, labels, &o))) return NULL;
        nn__attack_step(xa->data, g->data, x->data, x->numel, o.step_size, &o);
    }
    return xa;
}

NNDEF nn_tensor *nn_fgsm(nn_module *m, nn_tensor *x, const int *labels, nn_attack_opts opts) {
    return nn__pgd("nn_fgsm", m, x, labels, opts, 1);
}
NNDEF nn_tensor *nn_pgd(nn_module *m, nn_tensor *x, const int *labels, nn_attack_opts opts) {
    return nn__pgd("nn_pgd", m, x, labels, opts, 0);
}

NNDEF float nn_robust_accuracy(nn_module *m, nn_loader *ld, nn_attack_opts opts) {
    nn_graph *keep = nn__cur_graph, *g;
    long correct = 0, total = 0;
    int b;
    if (!m || !ld) {
        nn__misuse("nn_robust_accuracy: needs a module and a loader");
        return -1.0f;
    }
    if (!(g = nn_graph_new())) return -1.0f;
    for (;;) {
        nn_tensor *x, *xa, *out;
        const int *y;
        int *pred, i;
        nn_graph_reset(g);
        if ((b = nn_loader_next(ld, g, &x, &y)) <= 0) break;
        if (!(xa = nn_pgd(m, x, y, opts)) || !(out = nn_forward(m, xa)) || out->ndim != 2 ||
            !(pred = (int *)nn__arena_alloc(g, sizeof(int) * (size_t)b))) {
            b = -1;
            break;
        }
        nn_argmax_rows(out, pred);
        for (i = 0; i < b; i++) correct += pred[i] == y[i];
        total += b;
    }
    nn_graph_free(g);
    nn__cur_graph = keep;
    return b < 0 || total == 0 ? -1.0f : (float)((double)correct / (double)total);
}

/* ===== >>optim (implementation) ========================================== */

enum {
    NN__OPT_SGD, NN__OPT_ADAGRAD, NN__OPT_RMSPROP, NN__OPT_ADADELTA, NN__OPT_ADAM,
    NN__OPT_ADAMW, NN__OPT_ADAMAX, NN__OPT_NADAM, NN__OPT_RADAM, NN__OPT_LARS,
    NN__OPT_LAMB, NN__OPT_LOOKAHEAD, NN__OPT_KINDS
};
static const char *const nn__optim_names[NN__OPT_KINDS] = {
    "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam",
    "RAdam", "LARS", "LAMB", "Lookahead"
};

#define NN__SLOTS 3   /* per-parameter float state buffers, at most */
#define NN__PI_D 3.14159265358979323846   /* pi in double, as Python's math.pi */

struct nn_optim {
    int kind;
    /* Hyperparameters in double, like PyTorch's Python floats; the kernels
       cast them to float where PyTorch's float32 kernels do. */
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    double alpha, rho, lr_decay, momentum_decay, trust, init_acc;
    int nesterov, centered, amsgrad;
    int decoupled;              /* SGDW: weight decay p *= 1 - lr wd */
    float *max_norm;            /* per parameter: max-norm constraint c, 0 none (or NULL) */
    int n;                      /* parameters */
    nn_tensor **params;
    char **names;               /* dotted names, for groups and state files */
    double *lr_scale, *wd;      /* per parameter: group lr scale, weight decay */
    unsigned char *frozen;
    long *steps;                /* per parameter, like torch's state["step"] */
    float *mu_prod;             /* NAdam's running product of mu_t */
    float **slot[NN__SLOTS];    /* slot[k][i]: buffer k of parameter i, or NULL */
    nn_optim *inner;            /* Lookahead: the fast optimizer */
    nn_module *module;          /* the module it was made for (not owned) */
    int la_k;
    double la_alpha;
    long la_count;
    nn_step_hook hook;          /* run after every nn_step (pruning masks) */
    void *hook_user;
};

/* The decimal a user wrote for a float option (0.999f -> 0.999), so double
   arithmetic on it agrees with PyTorch's Python float. */
static double nn__f2d(float f) {
    char buf[32];
    int prec;
    for (prec = 6; prec <= 9; prec++) {
        double d;
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}
/* Option value: > 0 itself, < 0 a literal 0, 0 the default. */
static double nn__optv(float v, double dflt) {
    return v > 0.0f ? nn__f2d(v) : v < 0.0f ? 0.0 : dflt;
}

/* The optimizer that owns the parameters and hyperparameters (under Lookahead). */
static nn_optim *nn__optim_base(nn_optim *o) {
    while (o && o->kind == NN__OPT_LOOKAHEAD) o = o->inner;
    return o;
}
static const nn_optim *nn__optim_cbase(const nn_optim *o) {
    while (o && o->kind == NN__OPT_LOOKAHEAD) o = o->inner;
    return o;
}

/* An optimizer over m's parameters with the state buffers in slot_mask
   (bit k: slot k) allocated and zeroed now, so nn_step never allocates. */
static nn_optim *nn__optim_new(const char *op, nn_module *m, int kind, unsigned slot_mask) {
    nn_optim *o;
    nn_param *ps;
    int count, i, k, trainable = 0;
    size_t c;
    if (!m) {
        nn__misuse("%s: NULL module", op);
        return NULL;
    }
    /* The module's cached list: the user's nn_parameters array stays valid. */
    ps = nn_parameters(m, &count);
    if (!ps && m->all_sig == 0) return NULL;   /* out of memory */
    for (i = 0; i < count; i++) trainable += nn_needs_grad(ps[i].tensor);
    if (!trainable) {
        nn__misuse("%s: the %s has no trainable parameters (%d parameters, none requires a "
                   "gradient)", op, m->type, count);
        return NULL;
    }
    if (!(o = (nn_optim *)nn__calloc(1, sizeof(nn_optim)))) return NULL;
    o->kind = kind;
    o->module = m;
    o->n = count;
    c = (size_t)(count ? count : 1);
    o->params = (nn_tensor **)nn__calloc(c, sizeof(nn_tensor *));
    o->names = (char **)nn__calloc(c, sizeof(char *));
    o->lr_scale = (double *)nn__calloc(c, sizeof(double));
    o->wd = (double *)nn__calloc(c, sizeof(double));
    o->frozen = (unsigned char *)nn__calloc(c, 1);
    o->steps = (long *)nn__calloc(c, sizeof(long));
    o->mu_prod = (float *)nn__calloc(c, sizeof(float));
    for (k = 0; k < NN__SLOTS; k++) o->slot[k] = (float **)nn__calloc(c, sizeof(float *));
    if (!o->params || !o->names || !o->lr_scale || !o->wd || !o->frozen || !o->steps ||
        !o->mu_prod || !o->slot[0] || !o->slot[1] || !o->slot[2])
        goto oom;
    for (i = 0; i < count; i++) {
        o->params[i] = ps[i].tensor;
        o->lr_scale[i] = 1.0;
        o->mu_prod[i] = 1.0f;
        if (!(o->names[i] = nn__strdup(ps[i].name))) goto oom;
        for (k = 0; k < NN__SLOTS; k++)
            if ((slot_mask >> k) & 1u)
                if (!(o->slot[k][i] = nn__alloc_floats(ps[i].tensor->numel, 1))) goto oom;
    }
    return o;
oom:
    nn_optim_free(o);
    return NULL;
}

/* Copy the optimizer-wide weight decay into every parameter (groups may
   override it later). */
static nn_optim *nn__optim_finish(nn_optim *o) {
    int i;
    if (o)
        for (i = 0; i < o->n; i++) o->wd[i] = o->weight_decay;
    return o;
}

static int nn__optim_bad(float v) { return !(v == v) || v > 3.0e38f || v < -3.0e38f; }

NNDEF nn_optim *nn_sgd(nn_module *m, nn_sgd_opts opts) {
    nn_optim *o;
    if (nn__optim_bad(opts.lr) || opts.lr < 0.0f || opts.momentum < 0.0f || opts.weight_decay < 0.0f ||
        (opts.nesterov && (opts.momentum <= 0.0f || opts.dampening != 0.0f))) {
        nn__misuse("nn_sgd: invalid options lr=%g momentum=%g weight_decay=%g nesterov=%d "
                   "dampening=%g (Nesterov needs momentum > 0 and dampening 0)",
                   (double)opts.lr, (double)opts.momentum, (double)opts.weight_decay,
                   opts.nesterov, (double)opts.dampening);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_sgd", m, NN__OPT_SGD, opts.momentum > 0.0f ? 1u : 0u))) return NULL;
    o->lr = nn__optv(opts.lr, 0.01);
    o->momentum = nn__optv(opts.momentum, 0.0);
    o->dampening = nn__f2d(opts.dampening);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->nesterov = opts.nesterov;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_sgdw(nn_module *m, nn_sgd_opts opts) {
    nn_optim *o;
    if (!m) {
        nn__misuse("nn_sgdw: NULL module");
        return NULL;
    }
    if (nn__optim_bad(opts.lr) || opts.lr < 0.0f || opts.momentum < 0.0f || opts.weight_decay < 0.0f ||
        (opts.nesterov && (opts.momentum <= 0.0f || opts.dampening != 0.0f))) {
        nn__misuse("nn_sgdw: invalid options lr=%g momentum=%g weight_decay=%g nesterov=%d "
                   "dampening=%g (Nesterov needs momentum > 0 and dampening 0)",
                   (double)opts.lr, (double)opts.momentum, (double)opts.weight_decay,
                   opts.nesterov, (double)opts.dampening);
        return NULL;
    }
    if ((o = nn_sgd(m, opts)) != NULL) o->decoupled = 1;
    return o;
}

NNDEF nn_optim *nn_adagrad(nn_module *m, nn_adagrad_opts opts) {
    nn_optim *o;
    int i;
    size_t j;
    if (opts.lr < 0.0f || opts.lr_decay < 0.0f || opts.initial_accumulator_value < 0.0f) {
        nn__misuse("nn_adagrad: invalid options lr=%g lr_decay=%g initial_accumulator_value=%g",
                   (double)opts.lr, (double)opts.lr_decay, (double)opts.initial_accumulator_value);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_adagrad", m, NN__OPT_ADAGRAD, 1u))) return NULL;
    o->lr = nn__optv(opts.lr, 1e-2);
    o->lr_decay = nn__optv(opts.lr_decay, 0.0);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->init_acc = nn__optv(opts.initial_accumulator_value, 0.0);
    o->eps = nn__optv(opts.eps, 1e-10);
    for (i = 0; i < o->n; i++)
        for (j = 0; j < o->params[i]->numel; j++) o->slot[0][i][j] = (float)o->init_acc;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_rmsprop(nn_module *m, nn_rmsprop_opts opts) {
    nn_optim *o;
    unsigned mask = 1u;
    if (opts.lr < 0.0f || opts.alpha >= 1.0f || opts.momentum < 0.0f) {
        nn__misuse("nn_rmsprop: invalid options lr=%g alpha=%g momentum=%g", (double)opts.lr,
                   (double)opts.alpha, (double)opts.momentum);
        return NULL;
    }
    if (opts.centered) mask |= 2u;
    if (opts.momentum > 0.0f) mask |= 4u;
    if (!(o = nn__optim_new("nn_rmsprop", m, NN__OPT_RMSPROP, mask))) return NULL;
    o->lr = nn__optv(opts.lr, 1e-2);
    o->alpha = nn__optv(opts.alpha, 0.99);
    o->eps = nn__optv(opts.eps, 1e-8);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->momentum = nn__optv(opts.momentum, 0.0);
    o->centered = opts.centered;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_adadelta(nn_module *m, nn_adadelta_opts opts) {
    nn_optim *o;
    if (opts.lr < 0.0f || opts.rho > 1.0f) {
        nn__misuse("nn_adadelta: invalid options lr=%g rho=%g", (double)opts.lr, (double)opts.rho);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_adadelta", m, NN__OPT_ADADELTA, 3u))) return NULL;
    o->lr = nn__optv(opts.lr, 1.0);
    o->rho = nn__optv(opts.rho, 0.9);
    o->eps = nn__optv(opts.eps, 1e-6);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    return nn__optim_finish(o);
}

/* Shared by the Adam family: validate and fill lr, betas, eps, weight decay. */
static nn_optim *nn__adam_like(const char *op, nn_module *m, int kind, unsigned mask, float lr,
                               float b1, float b2, float eps, float wd, double lr0, double b10,
                               double eps0, double wd0) {
    nn_optim *o;
    if (nn__optim_bad(lr) || lr < 0.0f || b1 >= 1.0f || b2 >= 1.0f) {
        nn__misuse("%s: invalid options lr=%g beta1=%g beta2=%g (betas must be < 1)", op,
                   (double)lr, (double)b1, (double)b2);
        return NULL;
    }
    if (!(o = nn__optim_new(op, m, kind, mask))) return NULL;
    o->lr = nn__optv(lr, lr0);
    o->beta1 = nn__optv(b1, b10);
    o->beta2 = nn__optv(b2, 0.999);
    o->eps = nn__optv(eps, eps0);
    o->weight_decay = nn__optv(wd, wd0);
    return o;
}

NNDEF nn_optim *nn_adam(nn_module *m, nn_adam_opts opts) {
    nn_optim *o = nn__adam_like("nn_adam", m, NN__OPT_ADAM, opts.amsgrad ? 7u : 3u, opts.lr,
                                opts.beta1, opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                1e-8, 0.0);
    if (o) o->amsgrad = opts.amsgrad;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_adamw(nn_module *m, nn_adamw_opts opts) {
    nn_optim *o = nn__adam_like("nn_adamw", m, NN__OPT_ADAMW, opts.amsgrad ? 7u : 3u, opts.lr,
                                opts.beta1, opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                1e-8, 1e-2);
    if (o) o->amsgrad = opts.amsgrad;
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_adamax(nn_module *m, nn_adamax_opts opts) {
    return nn__optim_finish(nn__adam_like("nn_adamax", m, NN__OPT_ADAMAX, 3u, opts.lr, opts.beta1,
                                          opts.beta2, opts.eps, opts.weight_decay, 2e-3, 0.9,
                                          1e-8, 0.0));
}

NNDEF nn_optim *nn_nadam(nn_module *m, nn_nadam_opts opts) {
    nn_optim *o = nn__adam_like("nn_nadam", m, NN__OPT_NADAM, 3u, opts.lr, opts.beta1, opts.beta2,
                                opts.eps, opts.weight_decay, 2e-3, 0.9, 1e-8, 0.0);
    if (o) o->momentum_decay = nn__optv(opts.momentum_decay, 4e-3);
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_radam(nn_module *m, nn_radam_opts opts) {
    return nn__optim_finish(nn__adam_like("nn_radam", m, NN__OPT_RADAM, 3u, opts.lr, opts.beta1,
                                          opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                          1e-8, 0.0));
}

NNDEF nn_optim *nn_lars(nn_module *m, nn_lars_opts opts) {
    nn_optim *o;
    if (nn__optim_bad(opts.lr) || opts.lr < 0.0f || opts.momentum >= 1.0f || opts.trust_coefficient < 0.0f) {
        nn__misuse("nn_lars: invalid options lr=%g momentum=%g trust_coefficient=%g",
                   (double)opts.lr, (double)opts.momentum, (double)opts.trust_coefficient);
        return NULL;
    }
    if (!(o = nn__optim_new("nn_lars", m, NN__OPT_LARS, opts.momentum >= 0.0f ? 1u : 0u))) return NULL;
    o->lr = nn__optv(opts.lr, 1.0);
    o->momentum = nn__optv(opts.momentum, 0.9);
    o->weight_decay = nn__optv(opts.weight_decay, 0.0);
    o->trust = nn__optv(opts.trust_coefficient, 1e-3);
    o->eps = nn__optv(opts.eps, 1e-8);
    return nn__optim_finish(o);
}

NNDEF nn_optim *nn_lamb(nn_module *m, nn_lamb_opts opts) {
    return nn__optim_finish(nn__adam_like("nn_lamb", m, NN__OPT_LAMB, 3u, opts.lr, opts.beta1,
                                          opts.beta2, opts.eps, opts.weight_decay, 1e-3, 0.9,
                                          1e-6, 0.0));
}

/* The lookahead options, for nn_lookahead and nn_ranger.  0 after a report. */
static int nn__lookahead_check(const char *op, nn_lookahead_opts opts) {
    if (opts.k < 0 || !(opts.alpha >= 0.0f && opts.alpha <= 1.0f)) {
        nn__misuse("%s: needs k >= 0 and alpha in [0,1] (got k=%d alpha=%g)", op, opts.k,
                   (double)opts.alpha);
        return 0;
    }
    return 1;
}

NNDEF nn_optim *nn_lookahead(nn_optim *inner, nn_lookahead_opts opts) {
    nn_optim *o;
    int i, k;
    size_t c;
    if (!inner) {
        nn__misuse("nn_lookahead: needs an optimizer to wrap, got NULL");
        return NULL;
    }
    if (!nn__lookahead_check("nn_lookahead", opts)) return NULL;
    if (!(o = (nn_optim *)nn__calloc(1, sizeof(nn_optim)))) return NULL;
    o->kind = NN__OPT_LOOKAHEAD;
    o->n = inner->n;
    o->la_k = opts.k > 0 ? opts.k : 5;
    o->la_alpha = nn__optv(opts.alpha, 0.5);
    c = (size_t)(o->n ? o->n : 1);
    for (k = 0; k < NN__SLOTS; k++) o->slot[k] = (float **)nn__calloc(c, sizeof(float *));
    o->params = (nn_tensor **)nn__calloc(c, sizeof(nn_tensor *));
    if (!o->params || !o->slot[0] || !o->slot[1] || !o->slot[2]) goto oom;
    for (i = 0; i < o->n; i++) {
        nn_tensor *t = inner->params ? inner->params[i] : nn__optim_base(inner)->params[i];
        o->params[i] = t;
        if (!(o->slot[0][i] = nn__alloc_floats(t->numel, 0))) goto oom;
        memcpy(o->slot[0][i], t->data, t->numel * sizeof(float));
    }
    o->inner = inner;
    return o;
oom:
    nn_optim_free(o);   /* does not free inner: o->inner is still NULL */
    return NULL;
}

NNDEF nn_optim *nn_ranger(nn_module *m, nn_ranger_opts opts) {
    nn_radam_opts r;
    nn_lookahead_opts la;
    nn_optim *inner, *o;
    memset(&r, 0, sizeof r);
    r.lr = opts.lr;
    r.beta1 = opts.beta1 != 0.0f ? opts.beta1 : 0.95f;
    r.beta2 = opts.beta2;
    r.eps = opts.eps != 0.0f ? opts.eps : 1e-5f;
    r.weight_decay = opts.weight_decay;
    la.k = opts.k > 0 ? opts.k : 6;
    la.alpha = opts.alpha;
    if (!nn__lookahead_check("nn_ranger", la)) return NULL;
    /* nn_radam's body, so that its reports name nn_ranger */
    if (!(inner = nn__optim_finish(nn__adam_like("nn_ranger", m, NN__OPT_RADAM, 3u, r.lr, r.beta1,
                                                 r.beta2, r.eps, r.weight_decay, 1e-3, 0.9, 1e-8,
                                                 0.0))))
        return NULL;
    if (!(o = nn_lookahead(inner, la))) nn_optim_free(inner);
    return o;
}

NNDEF void nn_zero_grad(nn_optim *o) {
    size_t total = 0;
    int i, nt;
    o = nn__optim_base(o);
    if (!o) return;
    /* set_to_none: no gradient until the next backward reaches it */
    for (i = 0; i < o->n; i++)
        if (o->params[i]->grad) { /* frozen ones too: nothing piles up until unfrozen */
            total += o->params[i]->numel;
            o->params[i]->flags &= ~NN_TENSOR_HAS_GRAD;
        }
    nt = nn__ew_threads((double)total);
    (void)nt;
    /* One team for all tensors: each thread zeroes its share of each. */
    NN__OMP(parallel num_threads(nt) if(nt > 1))
    {
        int j;
        for (j = 0; j < o->n; j++) {
            float *g = o->params[j]->grad;
            size_t lo, hi;
            if (!g) continue;
            nn__ew_share(o->params[j]->numel, 16, &lo, &hi);
            if (hi > lo) memset(g + lo, 0, (hi - lo) * sizeof(float));
        }
    }
}

/* ----- update rules: one parameter tensor p (n floats) with gradient g,
   its rate lr and weight decay wd, after its step count became t.  The
   float expressions follow PyTorch's single-tensor code line by line. */

/* SGD on NN__VL elements at p, g, buf (buf NULL without momentum). */
static void nn__sgd_vec(float *p, const float *g, float *buf, float lrn, float wd, float mu,
                        float damp, int first, int nesterov) {
    nn__v pv = nn__vload(p), d = nn__vload(g);
    if (wd != 0.0f) d = nn__vfma(nn__vset1(wd), pv, d);
    if (buf) {
        nn__v b = first ? d : nn__vfma(nn__vload(buf), nn__vset1(mu), nn__vmul(nn__vset1(damp), d));
        nn__vstore(buf, b);
        d = nesterov ? nn__vfma(nn__vset1(mu), b, d) : b;
    }
    nn__vstore(p, nn__vfma(nn__vset1(lrn), d, pv));
}

/* SGD on elements [lo, hi) of parameter i (lo a multiple of NN__VL). */
static void nn__sgd_range(nn_optim *o, int i, size_t lo, size_t hi) {
    nn_tensor *t = o->params[i];
    double lr = o->lr * o->lr_scale[i], wd = o->wd[i];
    float lrn = (float)-lr, wdf = (float)wd, mu = (float)o->momentum;
    float damp = (float)(1.0 - o->dampening);
    float *p = t->data, *g = t->grad, *buf = o->slot[0][i];
    int first = o->steps[i] == 1;
    size_t j = lo;
    if (o->decoupled) { /* SGDW: decay as AdamW, then the step without it */
        float decay = (float)(1.0 - lr * wd);
        for (j = lo; j < hi; j++) p[j] *= decay;
        j = lo;
        wdf = 0.0f;
    }
    for (; j + NN__VL <= hi; j += NN__VL)
        nn__sgd_vec(p + j, g + j, buf ? buf + j : NULL, lrn, wdf, mu, damp, first, o->nesterov);
    if (j < hi) {
        /* The tail through the same vector code, so every element is
           computed the same way wherever it sits. */
        float tp[NN__VL] = {0}, tg[NN__VL] = {0}, tb[NN__VL] = {0};
        size_t r = hi - j;
        memcpy(tp, p + j, r * sizeof(float));
        memcpy(tg, g + j, r * sizeof(float));
        if (buf) memcpy(tb, buf + j, r * sizeof(float));
        nn__sgd_vec(tp, tg, buf ? tb : NULL, lrn, wdf, mu, damp, first, o->nesterov);
        memcpy(p + j, tp, r * sizeof(float));
        if (buf) memcpy(buf + j, tb, r * sizeof(float));
    }
}

static void nn__adagrad_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    float wdf = (float)wd, eps = (float)o->eps;
    float clr = (float)-(lr / (1.0 + (double)(o->steps[i] - 1) * o->lr_decay));
    float *s = o->slot[0][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j];
        if (wd != 0.0) d = d + wdf * p[j];
        s[j] = s[j] + d * d;
        p[j] = p[j] + clr * (d / (sqrtf(s[j]) + eps));
    }
}

static void nn__rmsprop_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    float wdf = (float)wd, a = (float)o->alpha, oma = (float)(1.0 - o->alpha), eps = (float)o->eps;
    float mu = (float)o->momentum, lrn = (float)-lr;
    float *sq = o->slot[0][i], *ga = o->slot[1][i], *buf = o->slot[2][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j], avg;
        if (wd != 0.0) d = d + wdf * p[j];
        sq[j] = sq[j] * a + oma * d * d;
        if (ga) {
            ga[j] = ga[j] * a + oma * d;
            avg = sqrtf(sq[j] - ga[j] * ga[j]);
        } else {
            avg = sqrtf(sq[j]);
        }
        avg = avg + eps;
        if (buf) {
            buf[j] = buf[j] * mu + d / avg;
            p[j] = p[j] + lrn * buf[j];
        } else {
            p[j] = p[j] + lrn * (d / avg);
        }
    }
}

static void nn__adadelta_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    float wdf = (float)wd, rho = (float)o->rho, omr = (float)(1.0 - o->rho), eps = (float)o->eps;
    float lrn = (float)-lr;
    float *sq = o->slot[0][i], *acc = o->slot[1][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j], std, delta;
        if (wd != 0.0) d = d + wdf * p[j];
        sq[j] = sq[j] * rho + omr * d * d;
        std = sqrtf(sq[j] + eps);
        delta = sqrtf(acc[j] + eps) / std * d;
        acc[j] = acc[j] * rho + omr * delta * delta;
        p[j] = p[j] + lrn * delta;
    }
}

/* Adam / AdamW on NN__VL elements (vmax NULL without AMSGrad). */
static void nn__adam_vec(float *p, const float *g, float *m, float *v, float *vmax, int decoupled,
                         float decay, float wd, float b1, float omb1, float b2, float omb2,
                         float bc2s, float eps, float step) {
    nn__v pv = nn__vload(p), d = nn__vload(g), mv, vv, denom;
    if (decoupled) pv = nn__vmul(pv, nn__vset1(decay));
    else if (wd != 0.0f) d = nn__vfma(nn__vset1(wd), pv, d);
    mv = nn__vfma(nn__vload(m), nn__vset1(b1), nn__vmul(nn__vset1(omb1), d));
    vv = nn__vfma(nn__vload(v), nn__vset1(b2), nn__vmul(nn__vmul(nn__vset1(omb2), d), d));
    nn__vstore(m, mv);
    nn__vstore(v, vv);
    if (vmax) {
        vv = nn__vmax(vv, nn__vload(vmax));
        nn__vstore(vmax, vv);
    }
    denom = nn__vadd(nn__vdiv(nn__vsqrt(vv), nn__vset1(bc2s)), nn__vset1(eps));
    nn__vstore(p, nn__vfma(nn__vset1(step), nn__vdiv(mv, denom), pv));
}

/* Adam and AdamW (decoupled = 1), with AMSGrad when slot 2 exists. */
static void nn__adam_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr,
                            double wd, int decoupled) {
    double t = (double)o->steps[i];
    double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    float step = (float)-(lr / bc1), bc2s = (float)sqrt(bc2), eps = (float)o->eps;
    float decay = (float)(1.0 - lr * wd), wdf = (float)wd;
    float *m = o->slot[0][i], *v = o->slot[1][i], *vmax = o->slot[2][i];
    size_t j = n / NN__VL * NN__VL;
    int nt = nn__ew_threads((double)n);
    (void)nt;
    NN__OMP(parallel num_threads(nt) if(nt > 1))
    {
        size_t k, hi;
        nn__ew_share(j, 16, &k, &hi);
        for (; k < hi; k += NN__VL)
            nn__adam_vec(p + k, g + k, m + k, v + k, vmax ? vmax + k : NULL, decoupled, decay,
                         wdf, b1, omb1, b2, omb2, bc2s, eps, step);
    }
    if (j < n) {
        float tp[NN__VL] = {0}, tg[NN__VL] = {0}, tm[NN__VL] = {0}, tv[NN__VL] = {0},
              tx[NN__VL] = {0};
        size_t r = n - j;
        memcpy(tp, p + j, r * sizeof(float));
        memcpy(tg, g + j, r * sizeof(float));
        memcpy(tm, m + j, r * sizeof(float));
        memcpy(tv, v + j, r * sizeof(float));
        if (vmax) memcpy(tx, vmax + j, r * sizeof(float));
        nn__adam_vec(tp, tg, tm, tv, vmax ? tx : NULL, decoupled, decay, wdf, b1, omb1, b2,
                     omb2, bc2s, eps, step);
        memcpy(p + j, tp, r * sizeof(float));
        memcpy(m + j, tm, r * sizeof(float));
        memcpy(v + j, tv, r * sizeof(float));
        if (vmax) memcpy(vmax + j, tx, r * sizeof(float));
    }
}

static void nn__adamax_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1), b2 = (float)o->beta2;
    float eps = (float)o->eps, wdf = (float)wd, clr = (float)-(lr / (1.0 - pow(o->beta1, t)));
    float *m = o->slot[0][i], *u = o->slot[1][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float d = g[j], a, b;
        if (wd != 0.0) d = d + wdf * p[j];
        m[j] = m[j] * b1 + omb1 * d;
        a = u[j] * b2;
        b = fabsf(d) + eps;
        u[j] = a > b ? a : b;
        p[j] = p[j] + clr * (m[j] / u[j]);
    }
}

static void nn__nadam_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    double bc2 = 1.0 - pow(o->beta2, t);
    double mu = o->beta1 * (1.0 - 0.5 * pow(0.96, t * o->momentum_decay));
    double mu_next = o->beta1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * o->momentum_decay));
    float mp, mpn, cg, cm, b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2), bc2f = (float)bc2;
    float eps = (float)o->eps, wdf = (float)wd;
    float *m = o->slot[0][i], *v = o->slot[1][i];
    size_t j;
    /* torch keeps mu_product as a float32 tensor */
    o->mu_prod[i] = o->mu_prod[i] * (float)mu;
    mp = o->mu_prod[i];
    mpn = mp * (float)mu * (float)mu_next;
    cg = (float)(-lr * (1.0 - mu) / (1.0 - (double)mp));
    cm = (float)(-lr * mu_next / (1.0 - (double)mpn));
    for (j = 0; j < n; j++) {
        float d = g[j], denom;
        if (wd != 0.0) d = d + wdf * p[j];
        m[j] = m[j] * b1 + omb1 * d;
        v[j] = v[j] * b2 + omb2 * d * d;
        denom = sqrtf(v[j] / bc2f) + eps;
        p[j] = p[j] + cg * (d / denom);
        p[j] = p[j] + cm * (m[j] / denom);
    }
}

static void nn__radam_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    double bc1 = 1.0 - pow(o->beta1, t), bc2 = 1.0 - pow(o->beta2, t);
    double rho_inf = 2.0 / (1.0 - o->beta2) - 1.0;
    double rho_t = rho_inf - 2.0 * t * pow(o->beta2, t) / bc2;
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    float bc1f = (float)bc1, lrf = (float)lr, eps = (float)o->eps, wdf = (float)wd;
    float *m = o->slot[0][i], *v = o->slot[1][i];
    int rectify = rho_t > 5.0;
    float rect = 0.0f, bc2s = (float)sqrt(bc2);
    size_t j;
    if (rectify)
        rect = (float)sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                           ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
    for (j = 0; j < n; j++) {
        float d = g[j], mhat;
        if (wd != 0.0) d = d + wdf * p[j];
        m[j] = m[j] * b1 + omb1 * d;
        v[j] = v[j] * b2 + omb2 * d * d;
        mhat = m[j] / bc1f;
        if (rectify) p[j] = p[j] - mhat * lrf * (bc2s / (sqrtf(v[j]) + eps)) * rect;
        else p[j] = p[j] - mhat * lrf;   /* SGD with momentum while rho_t <= 5 */
    }
}

static double nn__optim_norm2(const float *x, size_t n) {
    double s = 0.0;
    size_t j;
    for (j = 0; j < n; j++) s += (double)x[j] * (double)x[j];
    return sqrt(s);
}

static void nn__lars_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double wn = nn__optim_norm2(p, n), gn = nn__optim_norm2(g, n);
    double local = (wn > 0.0 && gn > 0.0) ? o->trust * wn / (gn + wd * wn + o->eps) : o->trust;
    float scale = (float)(lr * local), wdf = (float)wd, mu = (float)o->momentum;
    float *buf = o->slot[0][i];
    size_t j;
    for (j = 0; j < n; j++) {
        float u = scale * (g[j] + wdf * p[j]);
        if (buf) {
            buf[j] = mu * buf[j] + u;
            u = buf[j];
        }
        p[j] -= u;
    }
}

static void nn__lamb_update(nn_optim *o, int i, float *p, const float *g, size_t n, double lr, double wd) {
    double t = (double)o->steps[i];
    float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
    float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
    float bc1 = (float)(1.0 - pow(o->beta1, t)), bc2 = (float)(1.0 - pow(o->beta2, t));
    float eps = (float)o->eps, wdf = (float)wd, step;
    float *m = o->slot[0][i], *v = o->slot[1][i];
    double pn = nn__optim_norm2(p, n), rn = 0.0, ratio;
    size_t j;
    for (j = 0; j < n; j++) { /* moments, and the norm of the update r */
        float r;
        m[j] = m[j] * b1 + omb1 * g[j];
        v[j] = v[j] * b2 + omb2 * g[j] * g[j];
        r = (m[j] / bc1) / (sqrtf(v[j] / bc2) + eps) + wdf * p[j];
        rn += (double)r * (double)r;
    }
    rn = sqrt(rn);
    ratio = (pn > 0.0 && rn > 0.0) ? pn / rn : 1.0;
    step = (float)(lr * ratio);
    for (j = 0; j < n; j++) {
        float r = (m[j] / bc1) / (sqrtf(v[j] / bc2) + eps) + wdf * p[j];
        p[j] -= step * r;
    }
}

/* The max-norm constraints of nn_optim_max_norm, after an update. */
static void nn__apply_max_norm(nn_optim *o) {
    int i;
    if (!o || !o->max_norm) return;
    for (i = 0; i < o->n; i++)
        if (o->max_norm[i] > 0.0f && !o->frozen[i]) nn_max_norm(o->params[i], o->max_norm[i]);
}

static void nn__step_update(nn_optim *o) {
    int i;
    if (o->kind == NN__OPT_LOOKAHEAD) {
        const nn_optim *b = nn__optim_cbase(o->inner);
        nn_step(o->inner);
        if (++o->la_count % o->la_k) return;
        for (i = 0; i < o->n; i++) {
            nn_tensor *t = o->params[i];
            float *slow = o->slot[0][i], a = (float)o->la_alpha;
            size_t j;
            if (b->frozen[i] || !nn_needs_grad(t)) continue;
            for (j = 0; j < t->numel; j++) {
                slow[j] = slow[j] + a * (t->data[j] - slow[j]);
                t->data[j] = slow[j];
            }
        }
        return;
    }
    if (o->kind == NN__OPT_SGD) {
        size_t total = 0;
        int nt;
        for (i = 0; i < o->n; i++) {
            if (!nn__grad_live(o->params[i]) || o->frozen[i]) continue;
            o->steps[i]++;
            total += o->params[i]->numel;
        }
        nt = nn__ew_threads((double)total);
        (void)nt;
        /* One team for all tensors: each thread updates its share of each. */
        NN__OMP(parallel num_threads(nt) if(nt > 1))
        {
            int j;
            for (j = 0; j < o->n; j++) {
                size_t lo, hi;
                if (!nn__grad_live(o->params[j]) || o->frozen[j]) continue;
                nn__ew_share(o->params[j]->numel, 16, &lo, &hi);
                if (hi > lo) nn__sgd_range(o, j, lo, hi);
            }
        }
        return;
    }
    for (i = 0; i < o->n; i++) {
        nn_tensor *t = o->params[i];
        double lr = o->lr * o->lr_scale[i], wd = o->wd[i];
        if (!nn__grad_live(t) || o->frozen[i]) continue;
        o->steps[i]++;
        switch (o->kind) {
        case NN__OPT_ADAGRAD: nn__adagrad_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_RMSPROP: nn__rmsprop_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_ADADELTA: nn__adadelta_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_ADAM: nn__adam_update(o, i, t->data, t->grad, t->numel, lr, wd, 0); break;
        case NN__OPT_ADAMW: nn__adam_update(o, i, t->data, t->grad, t->numel, lr, wd, 1); break;
        case NN__OPT_ADAMAX: nn__adamax_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_NADAM: nn__nadam_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_RADAM: nn__radam_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_LARS: nn__lars_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        case NN__OPT_LAMB: nn__lamb_update(o, i, t->data, t->grad, t->numel, lr, wd); break;
        default: break;
        }
    }
}

/* The update, then the max-norm constraints, then the step hook (pruning
   masks: last, so nothing writes into a masked weight after it). */
NNDEF void nn_step(nn_optim *o) {
    if (!o) return;
    nn__step_update(o);
    nn__apply_max_norm(nn__optim_base(o));
    if (o->hook) o->hook(o, o->hook_user);
}

NNDEF void nn_optim_set_step_hook(nn_optim *o, nn_step_hook fn, void *user) {
    if (!o) {
        nn__misuse("nn_optim_set_step_hook: NULL optimizer");
        return;
    }
    o->hook = fn;
    o->hook_user = user;
}

static void nn__optim_set_lr_d(nn_optim *o, double lr) {
    o = nn__optim_base(o);
    if (o) o->lr = lr;
}
static double nn__optim_lr_d(const nn_optim *o) {
    o = nn__optim_cbase(o);
    return o ? o->lr : 0.0;
}
NNDEF float nn_get_lr(const nn_optim *o) { return (float)nn__optim_lr_d(o); }
NNDEF void nn_set_lr(nn_optim *o, float lr) {
    if (!o || nn__optim_bad(lr) || lr < 0.0f) {
        nn__misuse("nn_set_lr: needs an optimizer and a finite lr >= 0, got %g", (double)lr);
        return;
    }
    nn__optim_set_lr_d(o, nn__f2d(lr));
}

/* 1 for the momentum-like hyperparameter a schedule may cycle: 1 = momentum,
   2 = beta1, 0 = none. */
static int nn__momentum_kind(const nn_optim *o) {
    o = nn__optim_cbase(o);
    if (!o) return 0;
    switch (o->kind) {
    case NN__OPT_SGD: case NN__OPT_LARS: return o->slot[0][0] || o->n == 0 ? 1 : 0;
    case NN__OPT_RMSPROP: return o->slot[2][0] || o->n == 0 ? 1 : 0;
    case NN__OPT_ADAM: case NN__OPT_ADAMW: case NN__OPT_ADAMAX: case NN__OPT_NADAM:
    case NN__OPT_RADAM: case NN__OPT_LAMB: return 2;
    default: return 0;
    }
}
static double nn__optim_mom_d(const nn_optim *o) {
    int k = nn__momentum_kind(o);
    o = nn__optim_cbase(o);
    return k == 1 ? o->momentum : k == 2 ? o->beta1 : 0.0;
}
static void nn__optim_set_mom_d(nn_optim *o, double mom) {
    int k = nn__momentum_kind(o);
    o = nn__optim_base(o);
    if (k == 1) o->momentum = mom;
    else if (k == 2) o->beta1 = mom;
}
NNDEF float nn_get_momentum(const nn_optim *o) { return (float)nn__optim_mom_d(o); }
NNDEF void nn_set_momentum(nn_optim *o, float momentum) {
    if (!o || !nn__momentum_kind(o) || !(momentum >= 0.0f && momentum < 1.0f)) {
        nn__misuse("nn_set_momentum: %s has no momentum to set (or %g is not in [0,1)); make SGD, "
                   "RMSprop or LARS with momentum > 0", o ? nn__optim_names[nn__optim_cbase(o)->kind] : "NULL",
                   (double)momentum);
        return;
    }
    nn__optim_set_mom_d(o, nn__f2d(momentum));
}

NNDEF void nn_optim_free(nn_optim *o) {
    int i, k;
    if (!o) return;
    for (i = 0; i < o->n; i++) {
        for (k = 0; k < NN__SLOTS; k++)
            if (o->slot[k]) nn__free_floats(o->slot[k][i]);
        if (o->names) nn__free(o->names[i]);
    }
    for (k = 0; k < NN__SLOTS; k++) nn__free(o->slot[k]);
    nn__free(o->params);
    nn__free(o->names);
    nn__free(o->lr_scale);
    nn__free(o->wd);
    nn__free(o->frozen);
    nn__free(o->steps);
    nn__free(o->mu_prod);
    nn__free(o->max_norm);
    nn_optim_free(o->inner);
    nn__free(o);
}

/* ----- parameter groups ----- */

static int nn__name_matches(const char *name, const char *pattern) {
    size_t ln = strlen(name), lp = strlen(pattern);
    if (pattern[0] == '*') {   /* "*" or "*suffix" */
        lp--;
        return lp <= ln && memcmp(name + ln - lp, pattern + 1, lp) == 0;
    }
    return lp <= ln && memcmp(name, pattern, lp) == 0;
}

NNDEF int nn_optim_group(nn_optim *o, const char *pattern, nn_group_opts g) {
    int i, count = 0;
    double scale;
    nn_optim *b = nn__optim_base(o);
    if (!b || !pattern || g.lr < 0.0f || g.lr_scale < 0.0f) {
        nn__misuse("nn_optim_group: needs an optimizer, a pattern and lr, lr_scale >= 0");
        return 0;
    }
    if (g.lr > 0.0f && b->lr <= 0.0) {
        nn__misuse("nn_optim_group: an absolute lr needs the optimizer's lr > 0");
        return 0;
    }
    /* zero fields keep each parameter's current setting, so groups compose */
    scale = g.lr > 0.0f ? nn__f2d(g.lr) / b->lr : g.lr_scale > 0.0f ? nn__f2d(g.lr_scale) : -1.0;
    for (i = 0; i < b->n; i++) {
        if (!nn__name_matches(b->names[i], pattern)) continue;
        if (g.max_ndim > 0 && b->params[i]->ndim > g.max_ndim) continue;
        if (scale >= 0.0) b->lr_scale[i] = scale;
        if (g.weight_decay != 0.0f) b->wd[i] = nn__optv(g.weight_decay, 0.0);
        if (g.frozen) b->frozen[i] = (unsigned char)(g.frozen > 0);
        count++;
    }
    if (!count)
        nn__misuse("nn_optim_group: pattern \"%s\" matches no parameter (the first is \"%s\")",
                   pattern, b->n ? b->names[0] : "");
    return count;
}

NNDEF int nn_optim_freeze(nn_optim *o, const char *pattern, int on) {
    int i, count = 0;
    nn_optim *b = nn__optim_base(o);
    if (!b || !pattern) {
        nn__misuse("nn_optim_freeze: needs an optimizer and a pattern");
        return 0;
    }
    for (i = 0; i < b->n; i++)
        if (nn__name_matches(b->names[i], pattern)) {
            b->frozen[i] = (unsigned char)(on != 0);
            count++;
        }
    if (!count) nn__misuse("nn_optim_freeze: pattern \"%s\" matches no parameter", pattern);
    return count;
}

NNDEF int nn_optim_max_norm(nn_optim *o, const char *pattern, float c) {
    int i, count = 0;
    nn_optim *b = nn__optim_base(o);
    if (!b || !pattern || !(c < 3.0e38f)) {
        nn__misuse("nn_optim_max_norm: needs an optimizer, a pattern and a finite c, got %g",
                   (double)c);
        return 0;
    }
    if (!b->max_norm && !(b->max_norm = (float *)nn__calloc((size_t)(b->n ? b->n : 1), sizeof(float))))
        return 0;
    for (i = 0; i < b->n; i++)
        if (nn_name_match(pattern, b->names[i])) {
            b->max_norm[i] = c > 0.0f ? c : 0.0f;
            count++;
        }
    if (!count)
        nn__misuse("nn_optim_max_norm: pattern \"%s\" matches no parameter (the first is \"%s\")",
                   pattern, b->n ? b->names[0] : "");
    return count;
}

/* ----- gradient clipping ----- */

/* Clipping works per tensor, so optimizers (a list) and modules (a walk)
   share it: pass 1 sums squared norms, pass 2 scales or clamps. */
typedef struct nn__clip_ctx {
    double sq;      /* sum of squared norms */
    float coef;     /* scale for pass 2 */
    float clip;     /* clamp bound */
} nn__clip_ctx;

static void nn__clip_sq(nn_tensor *t, void *u) {
    if (nn__grad_live(t)) {
        double s = nn__optim_norm2(t->grad, t->numel);
        ((nn__clip_ctx *)u)->sq += s * s;
    }
}
static void nn__clip_scale(nn_tensor *t, void *u) {
    float c = ((nn__clip_ctx *)u)->coef;
    size_t j;
    if (nn__grad_live(t))
        for (j = 0; j < t->numel; j++) t->grad[j] *= c;
}
static void nn__clip_clamp(nn_tensor *t, void *u) {
    float c = ((nn__clip_ctx *)u)->clip;
    size_t j;
    if (nn__grad_live(t))
        for (j = 0; j < t->numel; j++) {
            float v = t->grad[j];
            t->grad[j] = v > c ? c : v < -c ? -c : v;
        }
}
/* torch.nn.utils.clip_grad_norm_'s coefficient: max_norm / (total + 1e-6). */
static float nn__clip_coef(nn__clip_ctx *c, float max_norm) {
    float total = (float)sqrt(c->sq);
    c->coef = max_norm / (total + 1e-6f);
    return total;
}

static void nn__clip_each(nn_tensor **ts, const unsigned char *frozen, int n,
                          void (*fn)(nn_tensor *, void *), nn__clip_ctx *c) {
    int i;
    for (i = 0; i < n; i++)
        if (!(frozen && frozen[i])) fn(ts[i], c);
}

static float nn__clip_norm(nn_tensor **ts, const unsigned char *frozen, int n, float max_norm) {
    nn__clip_ctx c = {0.0, 1.0f, 0.0f};
    float total;
    nn__clip_each(ts, frozen, n, nn__clip_sq, &c);
    total = nn__clip_coef(&c, max_norm);
    if (c.coef < 1.0f) nn__clip_each(ts, frozen, n, nn__clip_scale, &c);
    return total;
}

static void nn__clip_value(nn_tensor **ts, const unsigned char *frozen, int n, float clip) {
    nn__clip_ctx c = {0.0, 1.0f, 0.0f};
    c.clip = clip;
    nn__clip_each(ts, frozen, n, nn__clip_clamp, &c);
}

NNDEF float nn_clip_grad_norm(nn_optim *o, float max_norm) {
    nn_optim *b = nn__optim_base(o);
    if (!b || !(max_norm > 0.0f)) {
        nn__misuse("nn_clip_grad_norm: needs an optimizer and max_norm > 0, got %g", (double)max_norm);
        return 0.0f;
    }
    return nn__clip_norm(b->params, b->frozen, b->n, max_norm);
}

NNDEF void nn_clip_grad_value(nn_optim *o, float clip) {
    nn_optim *b = nn__optim_base(o);
    if (!b || !(clip >= 0.0f)) {
        nn__misuse("nn_clip_grad_value: needs an optimizer and clip >= 0, got %g", (double)clip);
        return;
    }
    nn__clip_value(b->params, b->frozen, b->n, clip);
}

NNDEF float nn_clip_grad_norm_module(nn_module *m, float max_norm) {
    nn__clip_ctx c = {0.0, 1.0f, 0.0f};
    float total;
    if (!m || !(max_norm > 0.0f)) {
        nn__misuse("nn_clip_grad_norm_module: needs a module and max_norm > 0, got %g", (double)max_norm);
        return 0.0f;
    }
    nn__each_tensor(m, 0, nn__clip_sq, &c);
    total = nn__clip_coef(&c, max_norm);
    if (c.coef < 1.0f) nn__each_tensor(m, 0, nn__clip_scale, &c);
    return total;
}

NNDEF void nn_clip_grad_value_module(nn_module *m, float clip) {
    nn__clip_ctx c = {0.0, 1.0f, 0.0f};
    if (!m || !(clip >= 0.0f)) {
        nn__misuse("nn_clip_grad_value_module: needs a module and clip >= 0, got %g", (double)clip);
        return;
    }
    c.clip = clip;
    nn__each_tensor(m, 0, nn__clip_clamp, &c);
}

/* ----- schedules ----- */

enum {
    NN__S_CONSTANT, NN__S_STEP, NN__S_MULTISTEP, NN__S_EXP, NN__S_INVTIME, NN__S_POLY,
    NN__S_COSINE, NN__S_SGDR, NN__S_CYCLIC, NN__S_ONECYCLE, NN__S_WARMUP, NN__S_PLATEAU,
    NN__S_BATCH, NN__S_KINDS
};

struct nn_sched {
    int kind;
    nn_optim *opt;
    long t;                    /* steps taken */
    double base_lr;            /* the optimizer's lr at creation */
    double gamma, factor, eta_min, power, end_lr;          /* decay shapes */
    double lo_lr, hi_lr, lo_mom, hi_mom, min_lr, pct;      /* cycles, plateau */
    double threshold, eps, best;
    int period, period2, mult, mode, threshold_mode, patience, cooldown;
    int cycle_mom, anneal, three_phase, staircase;
    int milestones[NN_MAX_MILESTONES];
    int num_bad, cooldown_left, restarted;
    int batch, max_batch, dataset_size;
    struct nn_loader *loader;
    nn_sched *then;            /* warmup: the schedule after it */
};

static void nn__sched_apply(nn_sched *s);

static nn_sched *nn__sched_new(const char *op, nn_optim *o, int kind) {
    nn_sched *s;
    if (!o) {
        nn__misuse("%s: NULL optimizer", op);
        return NULL;
    }
    if (!(s = (nn_sched *)nn__calloc(1, sizeof(nn_sched)))) return NULL;
    s->kind = kind;
    s->opt = o;
    s->base_lr = nn__optim_lr_d(o);
    return s;
}

/* Set t = 0's values and return s. */
static nn_sched *nn__sched_start(nn_sched *s) {
    if (s) nn__sched_apply(s);
    return s;
}

NNDEF nn_sched *nn_constant_lr(nn_optim *o, nn_constant_lr_opts opts) {
    nn_sched *s;
    if (opts.factor < 0.0f || opts.factor > 1.0f || opts.total_iters < 0) {
        nn__misuse("nn_constant_lr: needs factor in [0,1] and total_iters >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_constant_lr", o, NN__S_CONSTANT))) return NULL;
    s->factor = nn__optv(opts.factor, 1.0 / 3.0);
    s->period = opts.total_iters ? opts.total_iters : 5;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_step_lr(nn_optim *o, nn_step_lr_opts opts) {
    nn_sched *s;
    if (opts.step_size < 1 || opts.gamma < 0.0f) {
        nn__misuse("nn_step_lr: needs step_size >= 1 (got %d) and gamma >= 0", opts.step_size);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_step_lr", o, NN__S_STEP))) return NULL;
    s->period = opts.step_size;
    s->gamma = nn__optv(opts.gamma, 0.1);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_multistep_lr(nn_optim *o, nn_multistep_lr_opts opts) {
    nn_sched *s;
    int i;
    for (i = 1; i < NN_MAX_MILESTONES && opts.milestones[i]; i++)
        if (opts.milestones[i] < opts.milestones[i - 1]) {
            nn__misuse("nn_multistep_lr: milestones must increase (%d after %d)",
                       opts.milestones[i], opts.milestones[i - 1]);
            return NULL;
        }
    if (!(s = nn__sched_new("nn_multistep_lr", o, NN__S_MULTISTEP))) return NULL;
    memcpy(s->milestones, opts.milestones, sizeof s->milestones);
    s->gamma = nn__optv(opts.gamma, 0.1);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_exponential_lr(nn_optim *o, nn_exponential_lr_opts opts) {
    nn_sched *s;
    if (!(opts.gamma > 0.0f)) {
        nn__misuse("nn_exponential_lr: gamma must be > 0, got %g", (double)opts.gamma);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_exponential_lr", o, NN__S_EXP))) return NULL;
    s->gamma = nn__f2d(opts.gamma);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_inverse_time_lr(nn_optim *o, nn_inverse_time_lr_opts opts) {
    nn_sched *s;
    if (!(opts.decay_rate >= 0.0f) || opts.decay_steps < 0) {
        nn__misuse("nn_inverse_time_lr: needs decay_rate >= 0 and decay_steps >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_inverse_time_lr", o, NN__S_INVTIME))) return NULL;
    s->gamma = nn__f2d(opts.decay_rate);
    s->period = opts.decay_steps ? opts.decay_steps : 1;
    s->staircase = opts.staircase;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_polynomial_lr(nn_optim *o, nn_polynomial_lr_opts opts) {
    nn_sched *s;
    if (opts.total_iters < 0 || opts.power < 0.0f) {
        nn__misuse("nn_polynomial_lr: needs total_iters >= 0 and power >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_polynomial_lr", o, NN__S_POLY))) return NULL;
    s->period = opts.total_iters ? opts.total_iters : 5;
    s->power = nn__optv(opts.power, 1.0);
    s->end_lr = nn__optv(opts.end_lr, 0.0);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_cosine_annealing(nn_optim *o, nn_cosine_annealing_opts opts) {
    nn_sched *s;
    if (opts.T_max < 1) {
        nn__misuse("nn_cosine_annealing: T_max must be >= 1, got %d", opts.T_max);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_cosine_annealing", o, NN__S_COSINE))) return NULL;
    s->period = opts.T_max;
    s->eta_min = nn__optv(opts.eta_min, 0.0);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_warm_restarts(nn_optim *o, nn_warm_restarts_opts opts) {
    nn_sched *s;
    if (opts.T_0 < 1 || opts.T_mult < 0) {
        nn__misuse("nn_warm_restarts: needs T_0 >= 1 (got %d) and T_mult >= 1", opts.T_0);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_warm_restarts", o, NN__S_SGDR))) return NULL;
    s->period = opts.T_0;
    s->mult = opts.T_mult ? opts.T_mult : 1;
    s->eta_min = nn__optv(opts.eta_min, 0.0);
    return nn__sched_start(s);
}

/* Whether to cycle momentum: 0 = when the optimizer has one. */
static int nn__want_cycle(const char *op, nn_optim *o, int setting) {
    if (setting < 0) return 0;
    if (setting > 0 && !nn__momentum_kind(o)) {
        nn__misuse("%s: cycle_momentum needs an optimizer with momentum (SGD/RMSprop/LARS "
                   "with momentum > 0, or the Adam family)", op);
        return -1;
    }
    return nn__momentum_kind(o) != 0;
}

NNDEF nn_sched *nn_cyclic_lr(nn_optim *o, nn_cyclic_lr_opts opts) {
    nn_sched *s;
    int cyc;
    if (!(opts.max_lr > 0.0f) || opts.base_lr < 0.0f || opts.step_size_up < 0 ||
        opts.step_size_down < 0 || opts.mode < 0 || opts.mode > 2) {
        nn__misuse("nn_cyclic_lr: needs max_lr > 0, base_lr >= 0, step sizes >= 0 and a mode");
        return NULL;
    }
    if ((cyc = nn__want_cycle("nn_cyclic_lr", o, opts.cycle_momentum)) < 0) return NULL;
    if (!(s = nn__sched_new("nn_cyclic_lr", o, NN__S_CYCLIC))) return NULL;
    s->lo_lr = opts.base_lr > 0.0f ? nn__f2d(opts.base_lr) : s->base_lr;
    s->hi_lr = nn__f2d(opts.max_lr);
    s->period = opts.step_size_up ? opts.step_size_up : 2000;
    s->period2 = opts.step_size_down ? opts.step_size_down : s->period;
    s->mode = opts.mode;
    s->gamma = nn__optv(opts.gamma, 1.0);
    s->cycle_mom = cyc;
    s->lo_mom = nn__optv(opts.base_momentum, 0.8);
    s->hi_mom = nn__optv(opts.max_momentum, 0.9);
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_onecycle(nn_optim *o, nn_onecycle_opts opts) {
    nn_sched *s;
    int cyc, total = opts.total_steps > 0 ? opts.total_steps : opts.epochs * opts.steps_per_epoch;
    if (!(opts.max_lr > 0.0f) || total < 1 || opts.pct_start < 0.0f || opts.pct_start > 1.0f) {
        nn__misuse("nn_onecycle: needs max_lr > 0, total_steps (or epochs and steps_per_epoch) "
                   ">= 1 and pct_start in [0,1]; got max_lr=%g total=%d", (double)opts.max_lr, total);
        return NULL;
    }
    if ((cyc = nn__want_cycle("nn_onecycle", o, opts.cycle_momentum)) < 0) return NULL;
    if (!(s = nn__sched_new("nn_onecycle", o, NN__S_ONECYCLE))) return NULL;
    s->hi_lr = nn__f2d(opts.max_lr);
    s->lo_lr = s->hi_lr / nn__optv(opts.div_factor, 25.0);           /* initial lr */
    s->min_lr = s->lo_lr / nn__optv(opts.final_div_factor, 1e4);
    s->period = total;
    s->pct = nn__optv(opts.pct_start, 0.3);
    s->anneal = opts.anneal_strategy;
    s->cycle_mom = cyc;
    s->lo_mom = nn__optv(opts.base_momentum, 0.85);
    s->hi_mom = nn__optv(opts.max_momentum, 0.95);
    s->three_phase = opts.three_phase;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_warmup(nn_optim *o, nn_warmup_opts opts) {
    nn_sched *s;
    if (opts.warmup_steps < 1 || opts.start_factor < 0.0f || opts.start_factor > 1.0f ||
        (opts.then && opts.then->opt != o)) {
        nn__misuse("nn_warmup: needs warmup_steps >= 1, start_factor in [0,1] and a `then` "
                   "schedule on the same optimizer");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_warmup", o, NN__S_WARMUP))) return NULL;
    s->period = opts.warmup_steps;
    s->factor = nn__optv(opts.start_factor, 1.0 / 3.0);
    s->then = opts.then;
    return nn__sched_start(s);
}

NNDEF nn_sched *nn_reduce_on_plateau(nn_optim *o, nn_reduce_on_plateau_opts opts) {
    nn_sched *s;
    if (opts.factor < 0.0f || opts.factor >= 1.0f || opts.cooldown < 0 || opts.min_lr < 0.0f) {
        nn__misuse("nn_reduce_on_plateau: needs factor in (0,1), cooldown >= 0 and min_lr >= 0");
        return NULL;
    }
    if (!(s = nn__sched_new("nn_reduce_on_plateau", o, NN__S_PLATEAU))) return NULL;
    s->mode = opts.mode;
    s->factor = nn__optv(opts.factor, 0.1);
    s->patience = opts.patience > 0 ? opts.patience : opts.patience < 0 ? 0 : 10;
    s->threshold = nn__optv(opts.threshold, 1e-4);
    s->threshold_mode = opts.threshold_mode;
    s->cooldown = opts.cooldown;
    s->min_lr = nn__optv(opts.min_lr, 0.0);
    s->eps = nn__optv(opts.eps, 1e-8);
    s->best = opts.mode == NN_MODE_MAX ? -HUGE_VAL : HUGE_VAL;
    return s;
}

NNDEF nn_sched *nn_increase_batch(nn_optim *o, nn_increase_batch_opts opts) {
    nn_sched *s;
    if (!opts.loader || opts.batch_size < 1 || opts.dataset_size < 1 || opts.factor < 0.0f ||
        (opts.factor > 0.0f && opts.factor <= 1.0f) || opts.max_batch_size < 0) {
        nn__misuse("nn_increase_batch: needs a loader, its batch_size >= 1, dataset_size >= 1 "
                   "and factor > 1 (got batch_size=%d dataset_size=%d factor=%g)",
                   opts.batch_size, opts.dataset_size, (double)opts.factor);
        return NULL;
    }
    if (!(s = nn__sched_new("nn_increase_batch", o, NN__S_BATCH))) return NULL;
    s->loader = opts.loader;
    s->batch = opts.batch_size;
    s->dataset_size = opts.dataset_size;
    s->max_batch = opts.max_batch_size;
    s->factor = nn__optv(opts.factor, 5.0);
    memcpy(s->milestones, opts.milestones, sizeof s->milestones);
    nn_loader_set_batch_size(opts.loader, opts.batch_size);
    return s;
}

static double nn__sched_anneal(int linear, double start, double end, double pct) {
    return linear ? (end - start) * pct + start : end + (start - end) / 2.0 * (cos(NN__PI_D * pct) + 1.0);
}

/* The lr (and momentum) at step t for the stateless schedules. */
static void nn__sched_apply(nn_sched *s) {
    double lr = s->base_lr, t = (double)s->t, mom = -1.0;
    int i, k;
    switch (s->kind) {
    case NN__S_CONSTANT:
        lr = s->base_lr * (s->t < s->period ? s->factor : 1.0);
        break;
    case NN__S_STEP:
        lr = s->base_lr * pow(s->gamma, (double)(s->t / s->period));
        break;
    case NN__S_MULTISTEP:
        for (k = 0, i = 0; i < NN_MAX_MILESTONES && s->milestones[i]; i++) k += s->milestones[i] <= s->t;
        lr = s->base_lr * pow(s->gamma, (double)k);
        break;
    case NN__S_EXP:
        lr = s->base_lr * pow(s->gamma, t);
        break;
    case NN__S_INVTIME: {
        double p = s->staircase ? (double)(s->t / s->period) : t / (double)s->period;
        lr = s->base_lr / (1.0 + s->gamma * p);
        break;
    }
    case NN__S_POLY: {
        double frac = 1.0 - (double)NN__MIN(s->t, (long)s->period) / (double)s->period;
        lr = (s->base_lr - s->end_lr) * pow(frac, s->power) + s->end_lr;
        break;
    }
    case NN__S_COSINE:
        lr = s->eta_min + (s->base_lr - s->eta_min) *
             (1.0 + cos(NN__PI_D * t / (double)s->period)) / 2.0;
        break;
    case NN__S_SGDR: {
        long cur = s->t, ti = s->period;
        if (s->mult == 1) cur = s->t % s->period; /* O(1); the loop below is O(log t) */
        else
            while (cur >= ti) {
                cur -= ti;
                ti *= s->mult;
            }
        s->restarted = s->t > 0 && cur == 0;
        lr = s->eta_min + (s->base_lr - s->eta_min) *
             (1.0 + cos(NN__PI_D * (double)cur / (double)ti)) / 2.0;
        break;
    }
    case NN__S_CYCLIC: {
        double total = (double)s->period + (double)s->period2;
        double ratio = (double)s->period / total;
        double cycle = floor(1.0 + t / total), x = 1.0 + t / total - cycle;
        double sf = x <= ratio ? x / ratio : (x - 1.0) / (ratio - 1.0), amp;
        if (s->mode == NN_CYCLIC_TRIANGULAR) amp = 1.0;
        else if (s->mode == NN_CYCLIC_TRIANGULAR2) amp = 1.0 / pow(2.0, cycle - 1.0);
        else amp = pow(s->gamma, t);
        lr = s->lo_lr + (s->hi_lr - s->lo_lr) * sf * amp;
        if (s->cycle_mom) mom = s->hi_mom - (s->hi_mom - s->lo_mom) * sf * amp;
        break;
    }
    case NN__S_ONECYCLE: {
        /* phases: (end step, start lr, end lr, start momentum, end momentum) */
        double ph[3][5];
        int nph = s->three_phase ? 3 : 2;
        double start = 0.0, step = (double)NN__MIN(s->t, (long)s->period);
        double T = (double)s->period;
        ph[0][0] = s->pct * T - 1.0; ph[0][1] = s->lo_lr; ph[0][2] = s->hi_lr;
        ph[0][3] = s->hi_mom; ph[0][4] = s->lo_mom;
        if (s->three_phase) {
            ph[1][0] = 2.0 * s->pct * T - 2.0; ph[1][1] = s->hi_lr; ph[1][2] = s->lo_lr;
            ph[1][3] = s->lo_mom; ph[1][4] = s->hi_mom;
            ph[2][0] = T - 1.0; ph[2][1] = s->lo_lr; ph[2][2] = s->min_lr;
            ph[2][3] = s->hi_mom; ph[2][4] = s->hi_mom;
        } else {
            ph[1][0] = T - 1.0; ph[1][1] = s->hi_lr; ph[1][2] = s->min_lr;
            ph[1][3] = s->lo_mom; ph[1][4] = s->hi_mom;
        }
        for (i = 0; i < nph; i++) {
            if (step <= ph[i][0] || i == nph - 1) {
                double span = ph[i][0] - start;
                double pct = span != 0.0 ? (step - start) / span : 1.0;
                lr = nn__sched_anneal(s->anneal == NN_ANNEAL_LINEAR, ph[i][1], ph[i][2], pct);
                if (s->cycle_mom) mom = nn__sched_anneal(s->anneal == NN_ANNEAL_LINEAR, ph[i][3], ph[i][4], pct);
                break;
            }
            start = ph[i][0];
        }
        break;
    }
    case NN__S_WARMUP:
        if (s->t < s->period || !s->then) {
            double f = (double)NN__MIN(s->t, (long)s->period) / (double)s->period;
            lr = s->base_lr * (s->factor + (1.0 - s->factor) * f);
        } else {
            s->then->t = s->t - s->period;
            if (s->then->kind == NN__S_PLATEAU || s->then->kind == NN__S_BATCH) {
                if (s->then->t == 0) nn__optim_set_lr_d(s->opt, s->base_lr);
            } else {
                nn__sched_apply(s->then);
            }
            return;
        }
        break;
    default:
        return;   /* plateau and batch schedules act in nn_sched_step */
    }
    nn__optim_set_lr_d(s->opt, lr);
    if (mom >= 0.0) nn__optim_set_mom_d(s->opt, mom);
}

static void nn__plateau_step(nn_sched *s, double v) {
    int better;
    s->t++;
    if (s->mode == NN_MODE_MIN)
        better = s->threshold_mode == NN_THRESHOLD_REL ? v < s->best * (1.0 - s->threshold)
                                                       : v < s->best - s->threshold;
    else
        better = s->threshold_mode == NN_THRESHOLD_REL ? v > s->best * (1.0 + s->threshold)
                                                       : v > s->best + s->threshold;
    if (better) {
        s->best = v;
        s->num_bad = 0;
    } else {
        s->num_bad++;
    }
    if (s->cooldown_left > 0) {
        s->cooldown_left--;
        s->num_bad = 0;
    }
    if (s->num_bad > s->patience) {
        double old = nn__optim_lr_d(s->opt), lr = old * s->factor;
        if (lr < s->min_lr) lr = s->min_lr;
        if (old - lr > s->eps) nn__optim_set_lr_d(s->opt, lr);
        s->cooldown_left = s->cooldown;
        s->num_bad = 0;
    }
}

static void nn__batch_step(nn_sched *s) {
    int i;
    s->t++;
    for (i = 0; i < NN_MAX_MILESTONES && s->milestones[i]; i++) {
        if (s->milestones[i] != s->t) continue;
        {
            double grown = (double)s->batch * s->factor;
            if (!s->max_batch || grown <= (double)s->max_batch + 1e-9) {
                s->batch = (int)(grown + 0.5);
                nn_loader_set_batch_size(s->loader, s->batch);
            } else {
                nn__optim_set_lr_d(s->opt, nn__optim_lr_d(s->opt) / s->factor);
            }
        }
    }
}

static void nn__sched_advance(nn_sched *s, int has_metric, double v) {
    if (!s) {
        nn__misuse("nn_sched_step: NULL schedule");
        return;
    }
    if (s->kind == NN__S_PLATEAU) {
        if (!has_metric) {
            nn__misuse("nn_sched_step: reduce-on-plateau is stepped with nn_sched_step_metric(s, value)");
            return;
        }
        nn__plateau_step(s, v);
        return;
    }
    if (s->kind == NN__S_BATCH) {
        nn__batch_step(s);
        return;
    }
    if (s->kind == NN__S_WARMUP && s->then && s->t >= s->period &&
        (s->then->kind == NN__S_PLATEAU || s->then->kind == NN__S_BATCH)) {
        s->t++;
        nn__sched_advance(s->then, has_metric, v);
        return;
    }
    s->t++;
    nn__sched_apply(s);
}

NNDEF void nn_sched_step(nn_sched *s) { nn__sched_advance(s, 0, 0.0); }
NNDEF void nn_sched_step_metric(nn_sched *s, float value) { nn__sched_advance(s, 1, (double)value); }
NNDEF long nn_sched_get_step(const nn_sched *s) { return s ? s->t : 0; }

NNDEF int nn_sched_restarted(const nn_sched *s) {
    if (!s) return 0;
    if (s->kind == NN__S_WARMUP) return s->then && s->t > s->period ? nn_sched_restarted(s->then) : 0;
    return s->kind == NN__S_SGDR ? s->restarted : 0;
}

NNDEF int nn_sched_batch_size(const nn_sched *s) {
    if (s && s->kind == NN__S_WARMUP) return nn_sched_batch_size(s->then);
    return s && s->kind == NN__S_BATCH ? s->batch : 0;
}

NNDEF float nn_sched_noise_scale(const nn_sched *s) {
    double m;
    if (s && s->kind == NN__S_WARMUP) return nn_sched_noise_scale(s->then);
    if (!s || s->kind != NN__S_BATCH) return 0.0f;
    m = nn__optim_mom_d(s->opt);
    return (float)(nn__optim_lr_d(s->opt) * (double)s->dataset_size / ((double)s->batch * (1.0 - m)));
}

NNDEF void nn_sched_free(nn_sched *s) {
    if (!s) return;
    nn_sched_free(s->then);
    nn__free(s);
}

/* ===== >>io (implementation) ============================================= */

/* ----- saving and restoring state -----
   Little-endian records: "nnoptim\0", u32 version, the optimizer record
   (recursive for Lookahead), u32 has_schedule, the schedule record. */

#define NN__STATE_VERSION 1u

typedef struct nn__st_wbuf {
    unsigned char *p;
    size_t cap, pos;
} nn__st_wbuf;
typedef struct nn__st_rbuf {
    const unsigned char *p;
    size_t size, pos;
    int bad;
} nn__st_rbuf;

static void nn__st_put(nn__st_wbuf *w, const void *src, size_t n) {
    if (w->p && w->pos + n <= w->cap) memcpy(w->p + w->pos, src, n);
    w->pos += n;
}
static void nn__st_put_u64(nn__st_wbuf *w, uint64_t v) {
    unsigned char b[8];
    int i;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    nn__st_put(w, b, 8);
}
static void nn__st_put_u32(nn__st_wbuf *w, uint32_t v) {
    unsigned char b[4];
    int i;
    for (i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    nn__st_put(w, b, 4);
}
static void nn__st_put_f64(nn__st_wbuf *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    nn__st_put_u64(w, u);
}
static void nn__st_put_floats(nn__st_wbuf *w, const float *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        nn__st_put_u32(w, u);
    }
}
static int nn__st_get(nn__st_rbuf *r, void *dst, size_t n) {
    if (r->bad || r->pos + n > r->size) {
        r->bad = 1;
        memset(dst, 0, n);
        return 0;
    }
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return 1;
}
static uint64_t nn__st_get_u64(nn__st_rbuf *r) {
    unsigned char b[8];
    uint64_t v = 0;
    int i;
    nn__st_get(r, b, 8);
    for (i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}
static uint32_t nn__st_get_u32(nn__st_rbuf *r) {
    unsigned char b[4];
    uint32_t v = 0;
    int i;
    nn__st_get(r, b, 4);
    for (i = 3; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}
static double nn__st_get_f64(nn__st_rbuf *r) {
    uint64_t u = nn__st_get_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}
static void nn__st_get_floats(nn__st_rbuf *r, float *f, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u = nn__st_get_u32(r);
        memcpy(&f[i], &u, 4);
    }
}

static void nn__optim_write(nn__st_wbuf *w, const nn_optim *o) {
    int i, k;
    nn__st_put_u32(w, (uint32_t)o->kind);
    nn__st_put_u32(w, (uint32_t)o->n);
    if (o->kind == NN__OPT_LOOKAHEAD) {
        nn__st_put_u64(w, (uint64_t)o->la_count);
        for (i = 0; i < o->n; i++) nn__st_put_floats(w, o->slot[0][i], o->params[i]->numel);
        nn__optim_write(w, o->inner);
        return;
    }
    nn__st_put_f64(w, o->lr);
    nn__st_put_f64(w, o->momentum);
    nn__st_put_f64(w, o->beta1);
    for (i = 0; i < o->n; i++) {
        uint32_t len = (uint32_t)strlen(o->names[i]), mask = 0;
        nn__st_put_u32(w, len);
        nn__st_put(w, o->names[i], len);
        nn__st_put_u64(w, (uint64_t)o->params[i]->numel);
        nn__st_put_f64(w, o->lr_scale[i]);
        nn__st_put_f64(w, o->wd[i]);
        nn__st_put_u32(w, o->frozen[i]);
        nn__st_put_u64(w, (uint64_t)o->steps[i]);
        nn__st_put_floats(w, &o->mu_prod[i], 1);
        for (k = 0; k < NN__SLOTS; k++)
            if (o->slot[k][i]) mask |= 1u << k;
        nn__st_put_u32(w, mask);
        for (k = 0; k < NN__SLOTS; k++)
            if (o->slot[k][i]) nn__st_put_floats(w, o->slot[k][i], o->params[i]->numel);
    }
}

static nn_status nn__optim_read(nn__st_rbuf *r, nn_optim *o, const char *where) {
    int i, k;
    uint32_t kind = nn__st_get_u32(r), n = nn__st_get_u32(r);
    if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated optimizer record", where);
    if (kind != (uint32_t)o->kind)
        return nn__error(NN_ERR_FORMAT, "%s: state of a %s optimizer, this one is %s", where,
                         kind < NN__OPT_KINDS ? nn__optim_names[kind] : "unknown",
                         nn__optim_names[o->kind]);
    if (n != (uint32_t)o->n)
        return nn__error(NN_ERR_FORMAT, "%s: state for %u parameters, this optimizer has %d",
                         where, (unsigned)n, o->n);
    if (o->kind == NN__OPT_LOOKAHEAD) {
        o->la_count = (long)nn__st_get_u64(r);
        for (i = 0; i < o->n; i++) nn__st_get_floats(r, o->slot[0][i], o->params[i]->numel);
        if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated Lookahead record", where);
        return nn__optim_read(r, o->inner, where);
    }
    o->lr = nn__st_get_f64(r);
    o->momentum = nn__st_get_f64(r);
    o->beta1 = nn__st_get_f64(r);
    for (i = 0; i < o->n; i++) {
        uint32_t len = nn__st_get_u32(r), mask;
        uint64_t numel;
        const char *name = o->names[i], *stored;
        /* the stored name is compared where it lies: any length works */
        if (r->bad || len > r->size - r->pos || len > 0x7fffffffu)
            return nn__error(NN_ERR_FORMAT, "%s: bad or truncated name of parameter %d", where, i);
        stored = (const char *)r->p + r->pos;
        r->pos += len;
        numel = nn__st_get_u64(r);
        if (strlen(name) != len || memcmp(stored, name, len) != 0 ||
            numel != (uint64_t)o->params[i]->numel)
            return nn__error(NN_ERR_FORMAT,
                             "%s: parameter %d is \"%.*s\" with %llu elements in the state, "
                             "\"%s\" with %zu here", where, i, (int)len, stored,
                             (unsigned long long)numel, name, o->params[i]->numel);
        o->lr_scale[i] = nn__st_get_f64(r);
        o->wd[i] = nn__st_get_f64(r);
        o->frozen[i] = (unsigned char)(nn__st_get_u32(r) != 0);
        o->steps[i] = (long)nn__st_get_u64(r);
        nn__st_get_floats(r, &o->mu_prod[i], 1);
        mask = nn__st_get_u32(r);
        for (k = 0; k < NN__SLOTS; k++) {
            if (((mask >> k) & 1u) != (o->slot[k][i] != NULL))
                return nn__error(NN_ERR_FORMAT, "%s: parameter \"%s\": the state buffers differ "
                                 "(an option such as momentum, centered or amsgrad changed)",
                                 where, name);
            if (o->slot[k][i]) nn__st_get_floats(r, o->slot[k][i], o->params[i]->numel);
        }
        if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated optimizer state", where);
    }
    return NN_OK;
}

static void nn__sched_write(nn__st_wbuf *w, const nn_sched *s) {
    nn__st_put_u32(w, (uint32_t)s->kind);
    nn__st_put_u64(w, (uint64_t)s->t);
    nn__st_put_f64(w, s->base_lr);
    nn__st_put_f64(w, s->best);
    nn__st_put_u32(w, (uint32_t)s->num_bad);
    nn__st_put_u32(w, (uint32_t)s->cooldown_left);
    nn__st_put_u32(w, (uint32_t)s->restarted);
    nn__st_put_u32(w, (uint32_t)s->batch);
    nn__st_put_f64(w, s->lo_lr);
    nn__st_put_u32(w, s->then != NULL);
    if (s->then) nn__sched_write(w, s->then);
}

static nn_status nn__sched_read(nn__st_rbuf *r, nn_sched *s, const char *where) {
    uint32_t kind = nn__st_get_u32(r), has_then;
    if (!r->bad && kind != (uint32_t)s->kind)
        return nn__error(NN_ERR_FORMAT, "%s: the state holds a different kind of schedule", where);
    s->t = (long)nn__st_get_u64(r);
    s->base_lr = nn__st_get_f64(r);
    s->best = nn__st_get_f64(r);
    s->num_bad = (int)nn__st_get_u32(r);
    s->cooldown_left = (int)nn__st_get_u32(r);
    s->restarted = (int)nn__st_get_u32(r);
    s->batch = (int)nn__st_get_u32(r);
    s->lo_lr = nn__st_get_f64(r);
    has_then = nn__st_get_u32(r);
    if (r->bad) return nn__error(NN_ERR_FORMAT, "%s: truncated schedule record", where);
    if ((has_then != 0) != (s->then != NULL))
        return nn__error(NN_ERR_FORMAT, "%s: the warmup's inner schedule differs", where);
    if (s->kind == NN__S_BATCH && s->batch > 0) nn_loader_set_batch_size(s->loader, s->batch);
    return s->then ? nn__sched_read(r, s->then, where) : NN_OK;
}

static void nn__state_emit(nn__st_wbuf *w, const nn_optim *o, const nn_sched *s) {
    nn__st_put(w, "nnoptim", 8);
    nn__st_put_u32(w, NN__STATE_VERSION);
    nn__optim_write(w, o);
    nn__st_put_u32(w, s != NULL);
    if (s) nn__sched_write(w, s);
}

NNDEF size_t nn_optim_state_write(const nn_optim *o, const nn_sched *s, void *buf, size_t cap) {
    nn__st_wbuf w;
    if (!o) {
        nn__misuse("nn_optim_state_write: NULL optimizer");
        return 0;
    }
    /* A dry run measures; the buffer is written only when all of it fits. */
    w.p = NULL;
    w.cap = 0;
    w.pos = 0;
    nn__state_emit(&w, o, s);
    if (buf && w.pos <= cap) {
        size_t size = w.pos;
        w.p = (unsigned char *)buf;
        w.cap = cap;
        w.pos = 0;
        nn__state_emit(&w, o, s);
        NN_ASSERT(w.pos == size);
    }
    return w.pos;
}

/* Parse buf into o (and s), storing as it goes: on failure part of the
   state may have changed, so nn__state_read keeps a backup. */
static nn_status nn__state_apply(nn_optim *o, nn_sched *s, const void *buf, size_t size,
                                 const char *where) {
    nn__st_rbuf r;
    char magic[8];
    uint32_t version, has_sched;
    nn_status st;
    r.p = (const unsigned char *)buf;
    r.size = size;
    r.pos = 0;
    r.bad = 0;
    if (!nn__st_get(&r, magic, 8) || memcmp(magic, "nnoptim", 8) != 0)
        return nn__error(NN_ERR_FORMAT, "%s: not an nn.h optimizer state (wrong magic)", where);
    version = nn__st_get_u32(&r);
    if (version != NN__STATE_VERSION)
        return nn__error(NN_ERR_FORMAT, "%s: state version %u, this nn.h reads %u", where,
                         (unsigned)version, NN__STATE_VERSION);
    if ((st = nn__optim_read(&r, o, where)) != NN_OK) return st;
    has_sched = nn__st_get_u32(&r);
    if (r.bad) return nn__error(NN_ERR_FORMAT, "%s: truncated", where);
    if (s && !has_sched) return nn__error(NN_ERR_FORMAT, "%s: holds no schedule state", where);
    if (s && (st = nn__sched_read(&r, s, where)) != NN_OK) return st;
    return NN_OK;
}

/* All or nothing: the current state is saved first and put back if buf
   turns out to be bad, so a failed load leaves o and s as they were. */
static nn_status nn__state_read(nn_optim *o, nn_sched *s, const void *buf, size_t size,
                                const char *where) {
    size_t bsize;
    void *backup;
    nn_status st;
    if (!o || !buf) {
        nn__misuse("%s: NULL optimizer or buffer", where);
        return NN_ERR_ARG;
    }
    bsize = nn_optim_state_write(o, s, NULL, 0);
    if (!(backup = nn__malloc(bsize))) return NN_ERR_OOM;
    nn_optim_state_write(o, s, backup, bsize);
    st = nn__state_apply(o, s, buf, size, where);
    if (st != NN_OK) {
        char msg[sizeof nn__errbuf];
        memcpy(msg, nn__errbuf, sizeof msg); /* keep the first error's message */
        nn__state_apply(o, s, backup, bsize, where);
        memcpy(nn__errbuf, msg, sizeof msg);
    }
    nn__free(backup);
    return st;
}

NNDEF nn_status nn_optim_state_read(nn_optim *o, nn_sched *s, const void *buf, size_t size) {
    return nn__state_read(o, s, buf, size, "nn_optim_state_read");
}

/* Files are checkpoints now (>>io); these two write and read one holding
   only the optimizer and the schedule. */
static nn_status nn__ckpt_save(const char *who, const char *path, const nn_checkpoint *c, int with_rng);
static nn_status nn__ckpt_load_file(const char *who, const char *path, nn_checkpoint *c, int with_rng);

NNDEF nn_status nn_optim_save(const nn_optim *o, const nn_sched *s, const char *path) {
    nn_checkpoint c;
    if (!o || !path) {
        nn__misuse("nn_optim_save: NULL optimizer or path");
        return NN_ERR_ARG;
    }
    memset(&c, 0, sizeof c);
    c.optim = (nn_optim *)o;   /* only read */
    c.sched = (nn_sched *)s;
    return nn__ckpt_save("nn_optim_save", path, &c, 0);
}

NNDEF nn_status nn_optim_load(nn_optim *o, nn_sched *s, const char *path) {
    nn_checkpoint c;
    if (!o || !path) {
        nn__misuse("nn_optim_load: NULL optimizer or path");
        return NN_ERR_ARG;
    }
    memset(&c, 0, sizeof c);
    c.optim = o;
    c.sched = s;
    return nn__ckpt_load_file("nn_optim_load", path, &c, 0);
}


#include <limits.h>
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define NN__IO_POSIX 1
#endif

/* Test seam: a test may define NN__IO_WRITE_HOOK(n) before including nn.h;
   when it yields 0, the write of the next n bytes of a file fails. */
#ifndef NN__IO_WRITE_HOOK
#define NN__IO_WRITE_HOOK(n) 1
#endif

#define NN__IO_MAX_HEADER ((uint64_t)100 << 20) /* 100 MB, as safetensors */
#define NN__IO_MAX_DIMS 16

/* --- the module's tensors under their state_dict names --- */

typedef struct nn__io_item {
    char *name;
    nn_tensor *t;
} nn__io_item;
typedef struct nn__io_list {
    nn__io_item *v;
    int n, cap;
} nn__io_list;

static void nn__io_list_free(nn__io_list *l) {
    int i;
    for (i = 0; i < l->n; i++) nn__free(l->v[i].name);
    nn__free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static char *nn__io_concat(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = (char *)nn__malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static int nn__io_add(nn__io_list *l, const char *prefix, const char *local, nn_tensor *t) {
    char *name;
    if (!t) return 1;
    if (l->n == l->cap) {
        int ncap = l->cap ? 2 * l->cap : 16;
        nn__io_item *nv = (nn__io_item *)NN_REALLOC(l->v, sizeof(nn__io_item) * (size_t)ncap);
        if (!nv) return 0;
        l->v = nv;
        l->cap = ncap;
    }
    if (!(name = nn__io_concat(prefix, local, ""))) return 0;
    l->v[l->n].name = name;
    l->v[l->n].t = t;
    l->n++;
    return 1;
}

/* state_dict order: a module's parameters, its buffers, then each child's.
   A tensor shared by two modules appears under both names, as in PyTorch. */
static int nn__io_walk(nn_module *m, const char *prefix, nn__io_list *l) {
    int i, ok;
    for (i = 0; i < m->nparams; i++)
        if (!nn__io_add(l, prefix, m->params[i].name, m->params[i].tensor)) return 0;
    for (i = 0; i < m->nbuffers; i++)
        if (!nn__io_add(l, prefix, m->buffers[i].name, m->buffers[i].tensor)) return 0;
    for (i = 0; i < m->nchildren; i++) {
        char *sub;
        if (!m->children[i]) continue;
        if (!(sub = nn__io_concat(prefix, m->child_names[i], "."))) return 0;
        ok = nn__io_walk(m->children[i], sub, l);
        nn__free(sub);
        if (!ok) return 0;
    }
    return 1;
}

static nn_status nn__io_collect(const char *where, nn_module *m, nn__io_list *l) {
    memset(l, 0, sizeof *l);
    if (!nn__io_walk(m, "", l)) {
        nn__io_list_free(l);
        return nn__error(NN_ERR_OOM, "%s: out of memory listing the module's tensors", where);
    }
    return NN_OK;
}

static int nn__io_is_int64(const nn_tensor *t) { return (t->flags & NN_TENSOR_INT64) != 0; }

/* Sort names (qsort on const char *) to find duplicates in O(n log n). */
static int nn__io_cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
/* The first name that occurs twice among n (sorted in place), or NULL. */
static const char *nn__io_duplicate(const char **names, int n) {
    int i;
    if (n < 2) return NULL;
    qsort((void *)names, (size_t)n, sizeof *names, nn__io_cmp_names);
    for (i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

/* --- writing --- */

static void nn__io_put_str(nn__st_wbuf *w, const char *s) { nn__st_put(w, s, strlen(s)); }

/* s as a JSON string: quotes, backslashes and control bytes escaped; other
   bytes (UTF-8) as they are. */
static void nn__io_put_json(nn__st_wbuf *w, const char *s) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    nn__st_put(w, "\"", 1);
    for (; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2];
            e[0] = '\\';
            e[1] = (char)*p;
            nn__st_put(w, e, 2);
        } else if (*p == '\n' || *p == '\t' || *p == '\r' || *p == '\b' || *p == '\f') {
            char e[2];
            e[0] = '\\';
            e[1] = *p == '\n' ? 'n' : *p == '\t' ? 't' : *p == '\r' ? 'r' : *p == '\b' ? 'b' : 'f';
            nn__st_put(w, e, 2);
        } else if (*p < 0x20) {
            char e[6];
            memcpy(e, "\\u00", 4);
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 15];
            nn__st_put(w, e, 6);
        } else {
            nn__st_put(w, p, 1);
        }
    }
    nn__st_put(w, "\"", 1);
}

static void nn__io_put_uint(nn__st_wbuf *w, uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    nn__io_put_str(w, b);
}

static size_t nn__io_bytes(const nn_tensor *t) { return t->numel * (nn__io_is_int64(t) ? 8u : 4u); }

/* The JSON header (without padding). */
static void nn__io_header(nn__st_wbuf *w, const nn__io_list *l, nn_save_opts o) {
    uint64_t off = 0;
    int i, d;
    nn__io_put_str(w, "{");
    for (i = 0; i < l->n; i++) {
        const nn_tensor *t = l->v[i].t;
        nn__io_put_json(w, l->v[i].name);
        nn__io_put_str(w, nn__io_is_int64(t) ? ":{\"dtype\":\"I64\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
        for (d = 0; d < t->ndim; d++) {
            if (d) nn__io_put_str(w, ",");
            nn__io_put_uint(w, (uint64_t)t->shape[d]);
        }
        nn__io_put_str(w, "],\"data_offsets\":[");
        nn__io_put_uint(w, off);
        nn__io_put_str(w, ",");
        off += (uint64_t)nn__io_bytes(t);
        nn__io_put_uint(w, off);
        nn__io_put_str(w, "]},");
    }
    nn__io_put_str(w, "\"__metadata__\":{\"format\":\"pt\",\"nn.h\":\"" NN_VERSION_STRING "\"");
    for (i = 0; i < o.nmetadata; i++) {
        nn__io_put_str(w, ",");
        nn__io_put_json(w, o.metadata[i].key);
        nn__io_put_str(w, ":");
        nn__io_put_json(w, o.metadata[i].value);
    }
    nn__io_put_str(w, "}}");
}

/* Elements [from, from+count) of t, little-endian. */
static void nn__io_put_data(nn__st_wbuf *w, const nn_tensor *t, size_t from, size_t count) {
    size_t i;
    if (!nn__io_is_int64(t)) {
        nn__st_put_floats(w, t->data + from, count);
        return;
    }
    for (i = 0; i < count; i++) {
        int64_t v;
        memcpy(&v, (const unsigned char *)t->data + 8 * (from + i), 8);
        nn__st_put_u64(w, (uint64_t)v);
    }
}

/* Checks shared by the savers, then the padded header (8-byte length
   included) in a new buffer.  m may be NULL when extra (tensors written
   after the module's: a checkpoint's optimizer and loader state) is not. */
static nn_status nn__io_prepare(const char *who, nn_module *m, nn_save_opts o, const nn__io_list *extra,
                                nn__io_list *l, unsigned char **head, size_t *hsize, size_t *total) {
    nn__st_wbuf w;
    const char **names;
    const char *dup;
    size_t hlen, data = 0;
    int i;
    nn_status st;
    *head = NULL;
    if (o.nmetadata < 0 || (o.nmetadata > 0 && !o.metadata)) {
        nn__misuse("%s: metadata is NULL with nmetadata %d", who, o.nmetadata);
        return NN_ERR_ARG;
    }
    for (i = 0; i < o.nmetadata; i++) {
        const char *k = o.metadata[i].key;
        if (!k || !o.metadata[i].value) {
            nn__misuse("%s: metadata entry %d has a NULL %s", who, i, k ? "value" : "key");
            return NN_ERR_ARG;
        }
        if (strcmp(k, "format") == 0 || strcmp(k, "nn.h") == 0) {
            nn__misuse("%s: metadata key \"%s\" is reserved for nn.h", who, k);
            return NN_ERR_ARG;
        }
    }
    if (o.nmetadata > 1) { /* repeated keys, sorting a copy: O(n log n) for a checkpoint's many */
        if (!(names = (const char **)nn__malloc(sizeof(char *) * (size_t)o.nmetadata)))
            return nn__error(NN_ERR_OOM, "%s: out of memory", who);
        for (i = 0; i < o.nmetadata; i++) names[i] = o.metadata[i].key;
        dup = nn__io_duplicate(names, o.nmetadata);
        if (dup) nn__misuse("%s: metadata key \"%s\" is given twice", who, dup);
        nn__free((void *)names);
        if (dup) return NN_ERR_ARG;
    }
    memset(l, 0, sizeof *l);
    if (m && (st = nn__io_collect(who, m, l)) != NN_OK) return st;
    if (extra) {
        for (i = 0; i < l->n; i++)
            if (strncmp(l->v[i].name, "optim.", 6) == 0 || strncmp(l->v[i].name, "loader.", 7) == 0) {
                nn__misuse("%s: the module's tensor \"%s\" would clash with the checkpoint's own "
                           "\"optim.\" and \"loader.\" tensors (rename that child module)", who,
                           l->v[i].name);
                nn__io_list_free(l);
                return NN_ERR_ARG;
            }
        for (i = 0; i < extra->n; i++)
            if (!nn__io_add(l, "", extra->v[i].name, extra->v[i].t)) {
                nn__io_list_free(l);
                return nn__error(NN_ERR_OOM, "%s: out of memory", who);
            }
    }
    if (!(names = (const char **)nn__malloc(sizeof(char *) * (size_t)(l->n ? l->n : 1)))) {
        nn__io_list_free(l);
        return nn__error(NN_ERR_OOM, "%s: out of memory", who);
    }
    for (i = 0; i < l->n; i++) names[i] = l->v[i].name;
    dup = nn__io_duplicate(names, l->n);
    if (dup) {
        nn__misuse("%s: two tensors of the module are named \"%s\"", who, dup);
        nn__free((void *)names);
        nn__io_list_free(l);
        return NN_ERR_ARG;
    }
    nn__free((void *)names);
    for (i = 0; i < l->n; i++) {
        size_t b = nn__io_bytes(l->v[i].t);
        if (data + b < data) {
            nn__io_list_free(l);
            return nn__error(NN_ERR_OOM, "%s: the model is too large", who);
        }
        data += b;
    }
    w.p = NULL;
    w.cap = w.pos = 0;
    nn__io_header(&w, l, o);
    hlen = (w.pos + 7) & ~(size_t)7;
    if (!(*head = (unsigned char *)nn__malloc(8 + hlen))) {
        nn__io_list_free(l);
        return nn__error(NN_ERR_OOM, "%s: out of memory for the header", who);
    }
    w.p = *head;
    w.cap = 8 + hlen;
    w.pos = 0;
    nn__st_put_u64(&w, (uint64_t)hlen);
    nn__io_header(&w, l, o);
    memset(*head + w.pos, ' ', 8 + hlen - w.pos);
    *hsize = 8 + hlen;
    *total = *hsize + data;
    if (*total < data) {
        nn__free(*head);
        *head = NULL;
        nn__io_list_free(l);
        return nn__error(NN_ERR_OOM, "%s: the model is too large", who);
    }
    return NN_OK;
}

NNDEF nn_status nn_save_mem(nn_module *m, nn_save_opts opts, void **buf, size_t *size) {
    nn__io_list l;
    unsigned char *head, *out;
    size_t hsize, total;
    nn__st_wbuf w;
    nn_status st;
    int i;
    if (buf) *buf = NULL;
    if (size) *size = 0;
    if (!m || !buf || !size) {
        nn__misuse("nn_save_mem: NULL %s", !m ? "module" : !buf ? "buf" : "size");
        return NN_ERR_ARG;
    }
    if ((st = nn__io_prepare("nn_save_mem", m, opts, NULL, &l, &head, &hsize, &total)) != NN_OK) return st;
    if (!(out = (unsigned char *)nn__malloc(total))) {
        nn__free(head);
        nn__io_list_free(&l);
        return nn__error(NN_ERR_OOM, "nn_save_mem: out of memory for %zu bytes", total);
    }
    memcpy(out, head, hsize);
    w.p = out;
    w.cap = total;
    w.pos = hsize;
    for (i = 0; i < l.n; i++) nn__io_put_data(&w, l.v[i].t, 0, l.v[i].t->numel);
    NN_ASSERT(w.pos == total);
    nn__free(head);
    nn__io_list_free(&l);
    *buf = out;
    *size = total;
    return NN_OK;
}

/* An open output file: a POSIX descriptor or a stdio stream. */
typedef struct nn__io_out {
#ifdef NN__IO_POSIX
    int fd;
#else
    FILE *f;
#endif
    int failed, err;
} nn__io_out;

static int nn__io_write(nn__io_out *o, const void *src, size_t n) {
    const unsigned char *p = (const unsigned char *)src;
    if (o->failed) return 0;
    if (!NN__IO_WRITE_HOOK(n)) {
        o->failed = 1;
        o->err = errno;
        return 0;
    }
#ifdef NN__IO_POSIX
    while (n > 0) {
        ssize_t k = write(o->fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            o->failed = 1;
            o->err = errno;
            return 0;
        }
        p += k;
        n -= (size_t)k;
    }
#else
    if (fwrite(p, 1, n, o->f) != n) {
        o->failed = 1;
        o->err = errno;
        return 0;
    }
#endif
    return 1;
}

/* The temporary file of an atomic write could not be made (tmp NULL: out of
   memory); frees tmp. */
static nn_status nn__io_create_failed(const char *who, const char *path, char *tmp, int e) {
    nn_status st;
    if (!tmp) return nn__error(NN_ERR_OOM, "%s: %s: out of memory", who, path);
    st = nn__error(NN_ERR_IO, "%s: %s: cannot create %s (%s)", who, path, tmp, strerror(e));
    nn__free(tmp);
    return st;
}

/* Write the file to a temporary next to path, then rename it over path.
   extra: tensors after m's (a checkpoint's), or NULL; then m may be NULL. */
static nn_status nn__io_save_file(const char *who, nn_module *m, const char *path, nn_save_opts opts,
                                  const nn__io_list *extra) {
    nn__io_list l;
    unsigned char *head, chunk[16384];
    size_t hsize, total;
    nn__io_out o;
    nn_status st;
    char *tmp;
    int i, ok;
    if ((!m && !extra) || !path) {
        nn__misuse("%s: NULL %s", who, !m && !extra ? "module" : "path");
        return NN_ERR_ARG;
    }
    if ((st = nn__io_prepare(who, m, opts, extra, &l, &head, &hsize, &total)) != NN_OK) return st;
    memset(&o, 0, sizeof o);
    tmp = NULL;
#ifdef NN__IO_POSIX
    {
        char suffix[48];
        int attempt;
        o.fd = -1;
        for (attempt = 0; attempt < 100 && o.fd < 0; attempt++) {
            snprintf(suffix, sizeof suffix, ".tmp%ld.%d", (long)getpid(), attempt);
            nn__free(tmp);
            if (!(tmp = nn__io_concat(path, suffix, ""))) break;
            o.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
            if (o.fd < 0 && errno != EEXIST) break;
        }
        if (o.fd < 0) {
            int e = errno;
            nn__free(head);
            nn__io_list_free(&l);
            return nn__io_create_failed(who, path, tmp, e);
        }
    }
#else
    tmp = nn__io_concat(path, ".tmp", "");
    if (!tmp || !(o.f = fopen(tmp, "wb"))) {
        int e = errno;
        nn__free(head);
        nn__io_list_free(&l);
        return nn__io_create_failed(who, path, tmp, e);
    }
#endif
    nn__io_write(&o, head, hsize);
    for (i = 0; i < l.n && !o.failed; i++) {
        const nn_tensor *t = l.v[i].t;
        size_t per = sizeof chunk / (nn__io_is_int64(t) ? 8u : 4u), from;
        for (from = 0; from < t->numel && !o.failed; from += per) {
            nn__st_wbuf w;
            size_t count = NN__MIN(per, t->numel - from);
            w.p = chunk;
            w.cap = sizeof chunk;
            w.pos = 0;
            nn__io_put_data(&w, t, from, count);
            nn__io_write(&o, chunk, w.pos);
        }
    }
    nn__free(head);
    nn__io_list_free(&l);
#ifdef NN__IO_POSIX
    if (!o.failed && fsync(o.fd) != 0) {
        o.failed = 1;
        o.err = errno;
    }
    if (close(o.fd) != 0 && !o.failed) {
        o.failed = 1;
        o.err = errno;
    }
#else
    if (!o.failed && fflush(o.f) != 0) {
        o.failed = 1;
        o.err = errno;
    }
    if (fclose(o.f) != 0 && !o.failed) {
        o.failed = 1;
        o.err = errno;
    }
#endif
    if (o.failed) {
        remove(tmp);
        st = nn__error(NN_ERR_IO, "%s: %s: write failed (%s); the previous file is untouched", who, path,
                       o.err ? strerror(o.err) : "error");
        nn__free(tmp);
        return st;
    }
    ok = rename(tmp, path) == 0;
#ifndef NN__IO_POSIX
    if (!ok) { /* rename does not replace an existing file everywhere */
        remove(path);
        ok = rename(tmp, path) == 0;
    }
#endif
    if (!ok) {
        int e = errno;
        remove(tmp);
        nn__free(tmp);
        return nn__error(NN_ERR_IO, "%s: %s: cannot rename the temporary file over it (%s)", who, path,
                         strerror(e));
    }
    nn__free(tmp);
#ifdef NN__IO_POSIX
    { /* make the rename itself durable: fsync the directory */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? (char *)nn__malloc((size_t)(slash - path) + 2) : NULL;
        int fd;
        if (dir) {
            memcpy(dir, path, (size_t)(slash - path) + 1);
            dir[slash - path + 1] = '\0';
        }
        fd = open(dir ? dir : ".", O_RDONLY);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
        nn__free(dir);
    }
#endif
    return NN_OK;
}

NNDEF nn_status nn_save_ex(nn_module *m, const char *path, nn_save_opts opts) {
    return nn__io_save_file("nn_save_ex", m, path, opts, NULL);
}

NNDEF nn_status nn_save(nn_module *m, const char *path) {
    nn_save_opts opts;
    memset(&opts, 0, sizeof opts);
    return nn__io_save_file("nn_save", m, path, opts, NULL);
}

/* --- reading --- */

enum {
    NN__DT_F32, NN__DT_F16, NN__DT_BF16, NN__DT_F64, NN__DT_I64, NN__DT_I32, NN__DT_I16,
    NN__DT_I8, NN__DT_U8, NN__DT_U16, NN__DT_U32, NN__DT_U64, NN__DT_BOOL, NN__DT_F8_E5M2,
    NN__DT_F8_E4M3, NN__DT_COUNT
};
static const char *const nn__dt_name[NN__DT_COUNT] = {
    "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL",
    "F8_E5M2", "F8_E4M3"};
static const unsigned char nn__dt_size[NN__DT_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 2, 4, 8, 1, 1, 1};

static int nn__dt_is_int(int dt) { return dt >= NN__DT_I64 && dt <= NN__DT_BOOL; }

typedef struct nn__sft_entry {
    const char *name;  /* decoded, in the string arena */
    int dtype, ndim, match;
    uint64_t shape[NN__IO_MAX_DIMS];
    uint64_t begin, end, numel;
} nn__sft_entry;

/* A parsed safetensors buffer. */
typedef struct nn__sft {
    const char *where;           /* "nn_load: path", starts every message */
    nn__sft_entry *e;
    int n, cap;
    const char **meta;           /* key, value, key, value, ... */
    int nmeta, metacap;
    char *arena;                 /* decoded strings */
    size_t arena_pos;
    const unsigned char *data;   /* the data section */
    size_t data_size;
} nn__sft;

static void nn__sft_free(nn__sft *f) {
    nn__free(f->e);
    nn__free((void *)f->meta);
    nn__free(f->arena);
}

/* The JSON reader: exactly the header's grammar (objects, arrays, strings
   with escapes, non-negative integers), bounded by the header's length. */
typedef struct nn__json {
    const unsigned char *s;
    size_t n, pos;
    nn__sft *f;
    const char *ctx;             /* the tensor being read, for messages */
} nn__json;

static nn_status nn__json_fail(nn__json *j, const char *what) {
    if (j->ctx)
        return nn__error(NN_ERR_FORMAT, "%s: header: tensor \"%s\": %s at byte %zu", j->f->where, j->ctx,
                         what, j->pos + 8);
    return nn__error(NN_ERR_FORMAT, "%s: header: %s at byte %zu", j->f->where, what, j->pos + 8);
}

static void nn__json_ws(nn__json *j) {
    while (j->pos < j->n && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' || j->s[j->pos] == '\n' ||
                             j->s[j->pos] == '\r'))
        j->pos++;
}

/* Skip white space; the next byte, or -1 at the end (not consumed). */
static int nn__json_peek(nn__json *j) {
    nn__json_ws(j);
    return j->pos < j->n ? j->s[j->pos] : -1;
}

static int nn__json_eat(nn__json *j, int c) {
    if (nn__json_peek(j) != c) return 0;
    j->pos++;
    return 1;
}

static int nn__json_hex4(nn__json *j, uint32_t *v) {
    size_t k;
    *v = 0;
    if (j->n - j->pos < 4) return 0;
    for (k = 0; k < 4; k++) {
        int c = j->s[j->pos + k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    j->pos += 4;
    return 1;
}

/* A string into the arena (NUL-terminated; a string's decoded bytes plus the
   NUL never exceed its encoded length, so the arena of header size fits). */
static nn_status nn__json_string(nn__json *j, const char **out) {
    char *d = j->f->arena + j->f->arena_pos, *start = d;
    if (!nn__json_eat(j, '"')) return nn__json_fail(j, "expected a string");
    for (;;) {
        int c;
        if (j->pos >= j->n) return nn__json_fail(j, "unterminated string");
        c = j->s[j->pos];
        if (c == '"') {
            j->pos++;
            break;
        }
        if (c < 0x20) return nn__json_fail(j, "control character in a string");
        if (c == '\\') {
            uint32_t u, lo;
            if (j->pos + 1 >= j->n) return nn__json_fail(j, "unterminated string");
            c = j->s[j->pos + 1];
            j->pos += 2;
            switch (c) {
            case '"': *d++ = '"'; continue;
            case '\\': *d++ = '\\'; continue;
            case '/': *d++ = '/'; continue;
            case 'b': *d++ = '\b'; continue;
            case 'f': *d++ = '\f'; continue;
            case 'n': *d++ = '\n'; continue;
            case 'r': *d++ = '\r'; continue;
            case 't': *d++ = '\t'; continue;
            case 'u': break;
            default: j->pos -= 2; return nn__json_fail(j, "invalid escape in a string");
            }
            if (!nn__json_hex4(j, &u)) return nn__json_fail(j, "invalid \\u escape");
            if (u >= 0xDC00u && u <= 0xDFFFu) return nn__json_fail(j, "unpaired surrogate in \\u escape");
            if (u >= 0xD800u && u <= 0xDBFFu) {
                if (j->n - j->pos < 2 || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u')
                    return nn__json_fail(j, "unpaired surrogate in \\u escape");
                j->pos += 2;
                if (!nn__json_hex4(j, &lo) || lo < 0xDC00u || lo > 0xDFFFu)
                    return nn__json_fail(j, "unpaired surrogate in \\u escape");
                u = 0x10000u + ((u - 0xD800u) << 10) + (lo - 0xDC00u);
            }
            if (u == 0) return nn__json_fail(j, "NUL character in a string");
            if (u < 0x80u) {
                *d++ = (char)u;
            } else if (u < 0x800u) {
                *d++ = (char)(0xC0u | (u >> 6));
                *d++ = (char)(0x80u | (u & 0x3Fu));
            } else if (u < 0x10000u) {
                *d++ = (char)(0xE0u | (u >> 12));
                *d++ = (char)(0x80u | ((u >> 6) & 0x3Fu));
                *d++ = (char)(0x80u | (u & 0x3Fu));
            } else {
                *d++ = (char)(0xF0u | (u >> 18));
                *d++ = (char)(0x80u | ((u >> 12) & 0x3Fu));
                *d++ = (char)(0x80u | ((u >> 6) & 0x3Fu));
                *d++ = (char)(0x80u | (u & 0x3Fu));
            }
            continue;
        }
        if (c < 0x80) {
            *d++ = (char)c;
            j->pos++;
        } else { /* validate one UTF-8 sequence: no overlongs, surrogates or > U+10FFFF */
            size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2, k;
            int lo = 0x80, hi = 0xBF;
            if (c < 0xC2 || c > 0xF4) return nn__json_fail(j, "invalid UTF-8 in a string");
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
            if (j->n - j->pos < len) return nn__json_fail(j, "invalid UTF-8 in a string");
            for (k = 1; k < len; k++) {
                int b = j->s[j->pos + k];
                if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
                    return nn__json_fail(j, "invalid UTF-8 in a string");
            }
            memcpy(d, j->s + j->pos, len);
            d += len;
            j->pos += len;
        }
    }
    *d++ = '\0';
    j->f->arena_pos += (size_t)(d - start);
    *out = start;
    return NN_OK;
}

static nn_status nn__json_uint(nn__json *j, uint64_t *v) {
    int c = nn__json_peek(j);
    *v = 0;
    if (c == '-') return nn__json_fail(j, "negative number");
    if (c < '0' || c > '9') return nn__json_fail(j, "expected a non-negative integer");
    if (c == '0' && j->pos + 1 < j->n && j->s[j->pos + 1] >= '0' && j->s[j->pos + 1] <= '9')
        return nn__json_fail(j, "integer with a leading zero");
    while (j->pos < j->n && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
        uint64_t dgt = (uint64_t)(j->s[j->pos] - '0');
        if (*v > (UINT64_MAX - dgt) / 10) return nn__json_fail(j, "integer too large");
        *v = *v * 10 + dgt;
        j->pos++;
    }
    if (j->pos < j->n && (j->s[j->pos] == '.' || j->s[j->pos] == 'e' || j->s[j->pos] == 'E'))
        return nn__json_fail(j, "expected an integer, found a fraction or exponent");
    return NN_OK;
}

/* { "key": "string", ... } */
static nn_status nn__json_metadata(nn__json *j) {
    nn__sft *f = j->f;
    nn_status st;
    if (!nn__json_eat(j, '{')) return nn__json_fail(j, "\"__metadata__\" is not an object");
    if (nn__json_eat(j, '}')) return NN_OK;
    for (;;) {
        const char *k, *v;
        char what[300];
        if ((st = nn__json_string(j, &k)) != NN_OK) return st;
        if (!nn__json_eat(j, ':')) return nn__json_fail(j, "expected ':'");
        if (nn__json_peek(j) != '"') {
            snprintf(what, sizeof what, "\"__metadata__\" value of \"%.200s\" is not a string", k);
            return nn__json_fail(j, what);
        }
        if ((st = nn__json_string(j, &v)) != NN_OK) return st;
        if (f->nmeta + 2 > f->metacap) {
            int ncap = f->metacap ? 2 * f->metacap : 16;
            const char **nm = (const char **)NN_REALLOC((void *)f->meta, sizeof(char *) * (size_t)ncap);
            if (!nm) return nn__error(NN_ERR_OOM, "%s: out of memory reading the header", f->where);
            f->meta = nm;
            f->metacap = ncap;
        }
        f->meta[f->nmeta++] = k;
        f->meta[f->nmeta++] = v;
        if (nn__json_eat(j, '}')) return NN_OK;
        if (!nn__json_eat(j, ',')) return nn__json_fail(j, "expected ',' or '}' in \"__metadata__\"");
    }
}

/* { "dtype": "F32", "shape": [..], "data_offsets": [b, e] } in any order. */
static nn_status nn__json_tensor(nn__json *j, nn__sft_entry *e) {
    int seen = 0;
    nn_status st;
    if (!nn__json_eat(j, '{')) return nn__json_fail(j, "expected an object");
    if (!nn__json_eat(j, '}'))
        for (;;) {
            const char *k;
            if ((st = nn__json_string(j, &k)) != NN_OK) return st;
            if (!nn__json_eat(j, ':')) return nn__json_fail(j, "expected ':'");
            if (strcmp(k, "dtype") == 0) {
                const char *dt;
                if (seen & 1) return nn__json_fail(j, "\"dtype\" given twice");
                seen |= 1;
                if ((st = nn__json_string(j, &dt)) != NN_OK) return st;
                for (e->dtype = 0; e->dtype < NN__DT_COUNT; e->dtype++)
                    if (strcmp(dt, nn__dt_name[e->dtype]) == 0) break;
                if (e->dtype == NN__DT_COUNT) {
                    char what[80];
                    snprintf(what, sizeof what, "unknown dtype \"%.40s\"", dt);
                    return nn__json_fail(j, what);
                }
            } else if (strcmp(k, "shape") == 0) {
                if (seen & 2) return nn__json_fail(j, "\"shape\" given twice");
                seen |= 2;
                if (!nn__json_eat(j, '[')) return nn__json_fail(j, "\"shape\" is not an array");
                if (!nn__json_eat(j, ']'))
                    for (;;) {
                        if (e->ndim == NN__IO_MAX_DIMS) return nn__json_fail(j, "more than 16 dimensions");
                        if ((st = nn__json_uint(j, &e->shape[e->ndim])) != NN_OK) return st;
                        e->ndim++;
                        if (nn__json_eat(j, ']')) break;
                        if (!nn__json_eat(j, ',')) return nn__json_fail(j, "expected ',' or ']' in \"shape\"");
                    }
            } else if (strcmp(k, "data_offsets") == 0) {
                if (seen & 4) return nn__json_fail(j, "\"data_offsets\" given twice");
                seen |= 4;
                if (!nn__json_eat(j, '[')) return nn__json_fail(j, "\"data_offsets\" is not an array");
                if ((st = nn__json_uint(j, &e->begin)) != NN_OK) return st;
                if (!nn__json_eat(j, ',')) return nn__json_fail(j, "\"data_offsets\" needs two integers");
                if ((st = nn__json_uint(j, &e->end)) != NN_OK) return st;
                if (!nn__json_eat(j, ']')) return nn__json_fail(j, "\"data_offsets\" needs two integers");
            } else {
                char what[80];
                snprintf(what, sizeof what, "unknown key \"%.40s\"", k);
                return nn__json_fail(j, what);
            }
            if (nn__json_eat(j, '}')) break;
            if (!nn__json_eat(j, ',')) return nn__json_fail(j, "expected ',' or '}'");
        }
    if (seen != 7)
        return nn__json_fail(j, !(seen & 1) ? "no \"dtype\"" : !(seen & 2) ? "no \"shape\"" : "no \"data_offsets\"");
    return NN_OK;
}

/* Order tensors by their byte range. */
static int nn__sft_cmp_offsets(const void *a, const void *b) {
    const nn__sft_entry *x = *(const nn__sft_entry *const *)a, *y = *(const nn__sft_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parse and validate the whole buffer (header, sizes, offsets, names). */
static nn_status nn__sft_parse(nn__sft *f, const unsigned char *buf, size_t size) {
    uint64_t hlen = 0, at = 0;
    nn__json j;
    nn_status st;
    nn__sft_entry **order;
    const char **names;
    const char *dup;
    int i, seen_meta = 0;
    if (size < 8)
        return nn__error(NN_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header length", f->where,
                         size);
    for (i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen > NN__IO_MAX_HEADER)
        return nn__error(NN_ERR_FORMAT, "%s: header length %llu exceeds the 100 MB limit", f->where,
                         (unsigned long long)hlen);
    if (hlen > size - 8)
        return nn__error(NN_ERR_FORMAT, "%s: header length %llu exceeds the %zu bytes after it (truncated?)",
                         f->where, (unsigned long long)hlen, size - 8);
    if (hlen < 2) return nn__error(NN_ERR_FORMAT, "%s: header length %llu is too short", f->where,
                                   (unsigned long long)hlen);
    f->data = buf + 8 + hlen;
    f->data_size = size - 8 - (size_t)hlen;
    if (!(f->arena = (char *)nn__malloc((size_t)hlen)))
        return nn__error(NN_ERR_OOM, "%s: out of memory for a %llu-byte header", f->where,
                         (unsigned long long)hlen);
    j.s = buf + 8;
    j.n = (size_t)hlen;
    j.pos = 0;
    j.f = f;
    j.ctx = NULL;
    if (!nn__json_eat(&j, '{')) return nn__json_fail(&j, "the header is not a JSON object");
    if (!nn__json_eat(&j, '}'))
        for (;;) {
            const char *key;
            j.ctx = NULL;
            if ((st = nn__json_string(&j, &key)) != NN_OK) return st;
            if (!nn__json_eat(&j, ':')) return nn__json_fail(&j, "expected ':'");
            if (strcmp(key, "__metadata__") == 0) {
                if (seen_meta) return nn__json_fail(&j, "\"__metadata__\" given twice");
                seen_meta = 1;
                if ((st = nn__json_metadata(&j)) != NN_OK) return st;
            } else {
                nn__sft_entry *e;
                if (f->n == f->cap) {
                    int ncap = f->cap ? 2 * f->cap : 16;
                    nn__sft_entry *ne = (nn__sft_entry *)NN_REALLOC(f->e, sizeof(nn__sft_entry) * (size_t)ncap);
                    if (!ne) return nn__error(NN_ERR_OOM, "%s: out of memory reading the header", f->where);
                    f->e = ne;
                    f->cap = ncap;
                }
                e = &f->e[f->n++];
                memset(e, 0, sizeof *e);
                e->name = key;
                e->match = -1;
                j.ctx = key;
                if ((st = nn__json_tensor(&j, e)) != NN_OK) return st;
            }
            if (nn__json_eat(&j, '}')) break;
            if (!nn__json_eat(&j, ',')) return nn__json_fail(&j, "expected ',' or '}'");
        }
    j.ctx = NULL;
    nn__json_ws(&j);
    if (j.pos != j.n) return nn__json_fail(&j, "data after the header's JSON object");
    /* Sizes: numel * dtype size, without overflow, equals end - begin. */
    for (i = 0; i < f->n; i++) {
        nn__sft_entry *e = &f->e[i];
        uint64_t numel = 1, bytes;
        int d;
        for (d = 0; d < e->ndim; d++) {
            if (e->shape[d] && numel > UINT64_MAX / e->shape[d])
                return nn__error(NN_ERR_FORMAT, "%s: tensor \"%s\": the shape's element count overflows",
                                 f->where, e->name);
            numel *= e->shape[d];
        }
        if (numel > UINT64_MAX / nn__dt_size[e->dtype])
            return nn__error(NN_ERR_FORMAT, "%s: tensor \"%s\": the shape's byte count overflows", f->where,
                             e->name);
        bytes = numel * nn__dt_size[e->dtype];
        e->numel = numel;
        if (e->begin > e->end)
            return nn__error(NN_ERR_FORMAT, "%s: tensor \"%s\": data_offsets [%llu,%llu] are reversed",
                             f->where, e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->end - e->begin != bytes)
            return nn__error(NN_ERR_FORMAT,
                             "%s: tensor \"%s\": data_offsets [%llu,%llu] span %llu bytes, but %llu %s "
                             "elements take %llu",
                             f->where, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                             (unsigned long long)(e->end - e->begin), (unsigned long long)numel,
                             nn__dt_name[e->dtype], (unsigned long long)bytes);
    }
    /* Names are unique. */
    if (!(names = (const char **)nn__malloc(sizeof(char *) * (size_t)(f->n + f->nmeta + 1))))
        return nn__error(NN_ERR_OOM, "%s: out of memory", f->where);
    for (i = 0; i < f->n; i++) names[i] = f->e[i].name;
    dup = nn__io_duplicate(names, f->n);
    if (!dup) {
        for (i = 0; i < f->nmeta / 2; i++) names[i] = f->meta[2 * i];
        if ((dup = nn__io_duplicate(names, f->nmeta / 2)) != NULL) {
            nn__free((void *)names);
            return nn__error(NN_ERR_FORMAT, "%s: header: \"__metadata__\" key \"%s\" appears twice", f->where,
                             dup);
        }
    }
    nn__free((void *)names);
    if (dup) return nn__error(NN_ERR_FORMAT, "%s: header: tensor \"%s\" appears twice", f->where, dup);
    /* Byte ranges: sorted, they tile the data section exactly. */
    if (!(order = (nn__sft_entry **)nn__malloc(sizeof(nn__sft_entry *) * (size_t)(f->n + 1))))
        return nn__error(NN_ERR_OOM, "%s: out of memory", f->where);
    for (i = 0; i < f->n; i++) order[i] = &f->e[i];
    qsort((void *)order, (size_t)f->n, sizeof *order, nn__sft_cmp_offsets);
    st = NN_OK;
    for (i = 0; i < f->n && st == NN_OK; i++) {
        const nn__sft_entry *e = order[i];
        if (e->begin > at)
            st = nn__error(NN_ERR_FORMAT, "%s: a hole of %llu bytes before tensor \"%s\" (data_offsets [%llu,%llu])",
                           f->where, (unsigned long long)(e->begin - at), e->name,
                           (unsigned long long)e->begin, (unsigned long long)e->end);
        else if (e->begin < at)
            st = nn__error(NN_ERR_FORMAT, "%s: tensor \"%s\" (data_offsets [%llu,%llu]) overlaps tensor \"%s\" "
                           "(data_offsets [%llu,%llu])", f->where, e->name, (unsigned long long)e->begin,
                           (unsigned long long)e->end, order[i - 1]->name,
                           (unsigned long long)order[i - 1]->begin, (unsigned long long)order[i - 1]->end);
        at = e->end;
    }
    nn__free((void *)order);
    if (st != NN_OK) return st;
    if (at != (uint64_t)f->data_size)
        return nn__error(NN_ERR_FORMAT, "%s: the tensors take %llu bytes but the data section has %zu (%s)",
                         f->where, (unsigned long long)at, f->data_size,
                         at > (uint64_t)f->data_size ? "truncated file" : "trailing bytes");
    return NN_OK;
}

/* An element as an unsigned integer of n little-endian bytes. */
static uint64_t nn__io_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    while (n--) v = v << 8 | p[n];
    return v;
}

/* IEEE half to float, exactly. */
static float nn__io_half(uint32_t h) {
    uint32_t s = (h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, u;
    float f;
    if (e == 0) {
        f = (float)m * (1.0f / 16777216.0f); /* subnormal: m 2^-24 */
        return s ? -f : f;
    }
    u = e == 31 ? (s | 0x7F800000u | (m << 13)) : (s | ((e + 112u) << 23) | (m << 13));
    memcpy(&f, &u, 4);
    return f;
}

/* A signed integer of n bytes from its two's-complement bits. */
static int64_t nn__io_signed(uint64_t v, int n) {
    uint64_t sign = (uint64_t)1 << (8 * n - 1);
    if (v & sign) return -(int64_t)((~v & (sign - 1)) ) - 1;
    return (int64_t)v;
}

/* Convert entry e's elements into dst (numel floats or int64s). */
static nn_status nn__sft_convert(const nn__sft *f, const nn__sft_entry *e, int to_int64, void *dst) {
    const unsigned char *p = f->data + e->begin;
    int sz = nn__dt_size[e->dtype], dt = e->dtype;
    size_t i, n = (size_t)e->numel;
    float *fo = (float *)dst;
    unsigned char *io = (unsigned char *)dst;
    for (i = 0; i < n; i++, p += sz) {
        uint64_t v = nn__io_le(p, sz);
        if (to_int64) {
            int64_t x;
            if (dt == NN__DT_I64 || dt == NN__DT_I32 || dt == NN__DT_I16 || dt == NN__DT_I8) {
                x = nn__io_signed(v, sz);
            } else if (dt == NN__DT_BOOL) {
                x = v != 0;
            } else {
                if (v > (uint64_t)INT64_MAX)
                    return nn__error(NN_ERR_FORMAT, "%s: tensor \"%s\": U64 value %llu is out of range for int64",
                                     f->where, e->name, (unsigned long long)v);
                x = (int64_t)v;
            }
            memcpy(io + 8 * i, &x, 8);
            continue;
        }
        switch (dt) {
        case NN__DT_F32: {
            uint32_t u = (uint32_t)v;
            memcpy(&fo[i], &u, 4);
            break;
        }
        case NN__DT_F64: {
            double d;
            memcpy(&d, &v, 8);
            fo[i] = (float)d;
            break;
        }
        case NN__DT_F16: fo[i] = nn__io_half((uint32_t)v); break;
        case NN__DT_BF16: {
            uint32_t u = (uint32_t)v << 16;
            memcpy(&fo[i], &u, 4);
            break;
        }
        case NN__DT_I64: case NN__DT_I32: case NN__DT_I16: case NN__DT_I8:
            fo[i] = (float)nn__io_signed(v, sz);
            break;
        case NN__DT_BOOL: fo[i] = v ? 1.0f : 0.0f; break;
        default: fo[i] = (float)v; break; /* U8..U64 */
        }
    }
    return NN_OK;
}

static void nn__io_shape_str(char *b, size_t cap, const uint64_t *d, int nd) {
    size_t len;
    int i;
    snprintf(b, cap, "[");
    for (i = 0; i < nd; i++) {
        len = strlen(b);
        snprintf(b + len, cap - len, i ? ",%llu" : "%llu", (unsigned long long)d[i]);
    }
    len = strlen(b);
    snprintf(b + len, cap - len, "]");
}

/* The names a failed strict load lists, as many as fit. */
static void nn__io_list_names(char *b, size_t cap, const char *name) {
    size_t len = strlen(b);
    if (len >= 3 && strcmp(b + len - 3, "...") == 0) return;
    if (len + strlen(name) + 10 < cap)
        snprintf(b + len, cap - len, "%s\"%s\"", len ? ", " : "", name);
    else
        snprintf(b + len, cap - len, "%s...", len ? ", " : "");
}

/* The module side of a load, on a parsed file f: match names, check shapes
   and dtypes, and convert the matched tensors into *tmp (entry i at
   (*offs)[i]), changing nothing yet.  Entries with match -2 belong to
   someone else (a checkpoint's optimizer) and are skipped.  On success
   nn__io_commit writes them; on failure nothing is left to free. */
static nn_status nn__io_match(nn__sft *fp, nn_module *m, nn_load_opts o, const char *where, nn__io_list *lp,
                              unsigned char **tmpp, size_t **offsp) {
    nn__sft f = *fp;   /* a copy to read from; entries are written through fp->e */
    nn__io_list l;
    nn_status st;
    int *used = NULL, i, k, nmissing = 0, nunexp = 0;
    const char *strip = o.strip_prefix ? o.strip_prefix : "", *add = o.add_prefix ? o.add_prefix : "";
    size_t lstrip = strlen(strip), ladd = strlen(add), total = 0, *offs = NULL;
    unsigned char *tmp = NULL;
    char missing[200], unexp[200];
    *tmpp = NULL;
    *offsp = NULL;
    memset(lp, 0, sizeof *lp);
    if ((st = nn__io_collect(where, m, &l)) != NN_OK) return st;
    if (!(used = (int *)nn__calloc((size_t)l.n + 1, sizeof(int))) ||
        !(offs = (size_t *)nn__calloc((size_t)f.n + 1, sizeof(size_t)))) {
        st = nn__error(NN_ERR_OOM, "%s: out of memory", where);
        goto done_list;
    }
    /* Match file names (prefix-mapped) to the module's. */
    missing[0] = unexp[0] = '\0';
    for (i = 0; i < f.n; i++) {
        nn__sft_entry *e = &f.e[i];
        if (e->match == -2) continue;
        if (strncmp(e->name, strip, lstrip) == 0)
            for (k = 0; k < l.n; k++) {
                const char *mn = l.v[k].name;
                if (!used[k] && strncmp(mn, add, ladd) == 0 && strcmp(mn + ladd, e->name + lstrip) == 0) {
                    e->match = k;
                    used[k] = 1;
                    break;
                }
            }
        if (e->match < 0) {
            nunexp++;
            nn__io_list_names(unexp, sizeof unexp, e->name);
            if (o.on_mismatch) o.on_mismatch(e->name, 0, o.user);
        }
    }
    for (k = 0; k < l.n; k++)
        if (!used[k]) {
            nmissing++;
            nn__io_list_names(missing, sizeof missing, l.v[k].name);
            if (o.on_mismatch) o.on_mismatch(l.v[k].name, 1, o.user);
        }
    if (nmissing && !o.allow_missing) {
        if (nunexp && !o.allow_unexpected) /* say both, as a rename shows up as one of each */
            st = nn__error(NN_ERR_FORMAT,
                           "%s: %d tensor%s of the module %s missing from the file: %s; %d tensor%s in the "
                           "file %s not in the module: %s",
                           where, nmissing, nmissing == 1 ? "" : "s", nmissing == 1 ? "is" : "are", missing,
                           nunexp, nunexp == 1 ? "" : "s", nunexp == 1 ? "is" : "are", unexp);
        else
            st = nn__error(NN_ERR_FORMAT, "%s: %d tensor%s of the module %s missing from the file: %s", where,
                           nmissing, nmissing == 1 ? "" : "s", nmissing == 1 ? "is" : "are", missing);
        goto done_list;
    }
    if (nunexp && !o.allow_unexpected) {
        st = nn__error(NN_ERR_FORMAT, "%s: %d tensor%s in the file %s not in the module: %s", where, nunexp,
                       nunexp == 1 ? "" : "s", nunexp == 1 ? "is" : "are", unexp);
        goto done_list;
    }
    /* Shapes and dtypes, and the temporary memory. */
    for (i = 0; i < f.n; i++) {
        const nn__sft_entry *e = &f.e[i];
        const nn_tensor *t;
        int d, same;
        size_t bytes;
        if (e->match < 0) continue;
        t = l.v[e->match].t;
        same = e->ndim == t->ndim;
        for (d = 0; same && d < e->ndim; d++) same = e->shape[d] == (uint64_t)t->shape[d];
        if (!same) {
            char a[200], b[200];
            uint64_t want[NN_MAX_DIMS];
            for (d = 0; d < t->ndim; d++) want[d] = (uint64_t)t->shape[d];
            nn__io_shape_str(a, sizeof a, e->shape, e->ndim);
            nn__io_shape_str(b, sizeof b, want, t->ndim);
            st = nn__error(NN_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, expected %s", where, e->name, a, b);
            goto done_list;
        }
        if (nn__io_is_int64(t) ? !nn__dt_is_int(e->dtype) : e->dtype >= NN__DT_F8_E5M2) {
            st = nn__error(NN_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected %s", where, e->name,
                           nn__dt_name[e->dtype],
                           nn__io_is_int64(t) ? "an integer dtype (an int64 buffer)"
                                              : "F32, F16, BF16, F64 or an integer dtype");
            goto done_list;
        }
        total = (total + 7) & ~(size_t)7;
        offs[i] = total;
        bytes = nn__io_bytes(t);
        if (total + bytes < total) {
            st = nn__error(NN_ERR_OOM, "%s: the tensors are too large", where);
            goto done_list;
        }
        total += bytes;
    }
    if (!(tmp = (unsigned char *)nn__malloc(total))) {
        st = nn__error(NN_ERR_OOM, "%s: out of memory for %zu bytes of tensors", where, total);
        goto done_list;
    }
    for (i = 0; i < f.n; i++)
        if (f.e[i].match >= 0 &&
            (st = nn__sft_convert(&f, &f.e[i], nn__io_is_int64(l.v[f.e[i].match].t), tmp + offs[i])) != NN_OK)
            goto done_list;
    nn__free(used);
    *lp = l;
    *tmpp = tmp;
    *offsp = offs;
    return NN_OK;
done_list:
    nn__io_list_free(&l);
    nn__free(tmp);
    nn__free(used);
    nn__free(offs);
    return st;
}

/* Everything is valid and converted: write what nn__io_match staged, and
   free it. */
static void nn__io_commit(const nn__sft *f, nn__io_list *l, unsigned char *tmp, size_t *offs) {
    int i;
    for (i = 0; i < f->n; i++)
        if (f->e[i].match >= 0) {
            nn_tensor *t = l->v[f->e[i].match].t;
            memcpy(t->data, tmp + offs[i], nn__io_bytes(t));
        }
    nn__io_list_free(l);
    nn__free(tmp);
    nn__free(offs);
}

static nn_status nn__io_load(nn_module *m, const unsigned char *buf, size_t size, nn_load_opts o,
                             const char *where) {
    nn__sft f;
    nn__io_list l;
    nn_status st;
    unsigned char *tmp;
    size_t *offs;
    int i;
    memset(&f, 0, sizeof f);
    f.where = where;
    if ((st = nn__sft_parse(&f, buf, size)) == NN_OK &&
        (st = nn__io_match(&f, m, o, where, &l, &tmp, &offs)) == NN_OK) {
        nn__io_commit(&f, &l, tmp, offs);
        if (o.on_metadata)
            for (i = 0; i + 1 < f.nmeta; i += 2) o.on_metadata(f.meta[i], f.meta[i + 1], o.user);
    }
    nn__sft_free(&f);
    return st;
}

NNDEF nn_status nn_load_mem(nn_module *m, const void *buf, size_t size, nn_load_opts opts) {
    if (!m || (!buf && size)) {
        nn__misuse("nn_load_mem: NULL %s", !m ? "module" : "buffer");
        return NN_ERR_ARG;
    }
    return nn__io_load(m, (const unsigned char *)buf, size, opts, "nn_load_mem");
}

NNDEF nn_status nn_load(nn_module *m, const char *path, nn_load_opts opts) {
    unsigned char *buf;
    size_t size;
    nn_status st;
    char *where;
    if (!m || !path) {
        nn__misuse("nn_load: NULL %s", !m ? "module" : "path");
        return NN_ERR_ARG;
    }
    if ((st = nn__read_file(path, "nn_load", &buf, &size)) != NN_OK) return st;
    if (!(where = nn__io_concat("nn_load: ", path, ""))) {
        nn__free(buf);
        return nn__error(NN_ERR_OOM, "nn_load: %s: out of memory", path);
    }
    st = nn__io_load(m, buf, size, opts, where);
    nn__free(where);
    nn__free(buf);
    return st;
}

/* --- checkpoints --- */

static const char *const nn__sched_names[NN__S_KINDS] = {
    "ConstantLR", "StepLR", "MultiStepLR", "ExponentialLR", "InverseTimeLR", "PolynomialLR",
    "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "Warmup",
    "ReduceLROnPlateau", "IncreaseBatch"};

/* Each optimizer's per-parameter buffers (slot 0, 1, 2) under PyTorch's names. */
static const char *const nn__ck_slots[NN__OPT_KINDS][NN__SLOTS] = {
    {"momentum_buffer", NULL, NULL},              /* SGD */
    {"sum", NULL, NULL},                          /* Adagrad */
    {"square_avg", "grad_avg", "momentum_buffer"},/* RMSprop */
    {"square_avg", "acc_delta", NULL},            /* Adadelta */
    {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},  /* Adam */
    {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},  /* AdamW */
    {"exp_avg", "exp_inf", NULL},                 /* Adamax */
    {"exp_avg", "exp_avg_sq", NULL},              /* NAdam */
    {"exp_avg", "exp_avg_sq", NULL},              /* RAdam */
    {"momentum_buffer", NULL, NULL},              /* LARS */
    {"exp_avg", "exp_avg_sq", NULL},              /* LAMB */
    {"slow_buffer", NULL, NULL}};                 /* Lookahead */

/* The optimizers' double hyperparameters under their metadata keys. */
typedef struct nn__ck_field {
    const char *key;
    size_t off;
} nn__ck_field;
static const nn__ck_field nn__ck_hyper[] = {
    {"lr", offsetof(nn_optim, lr)}, {"momentum", offsetof(nn_optim, momentum)},
    {"dampening", offsetof(nn_optim, dampening)}, {"weight_decay", offsetof(nn_optim, weight_decay)},
    {"beta1", offsetof(nn_optim, beta1)}, {"beta2", offsetof(nn_optim, beta2)},
    {"eps", offsetof(nn_optim, eps)}, {"alpha", offsetof(nn_optim, alpha)},
    {"rho", offsetof(nn_optim, rho)}, {"lr_decay", offsetof(nn_optim, lr_decay)},
    {"momentum_decay", offsetof(nn_optim, momentum_decay)},
    {"trust_coefficient", offsetof(nn_optim, trust)},
    {"initial_accumulator_value", offsetof(nn_optim, init_acc)}};
#define NN__CK_NHYPER ((int)(sizeof nn__ck_hyper / sizeof nn__ck_hyper[0]))

static double *nn__ck_dfield(nn_optim *o, int k) { return (double *)(void *)((char *)o + nn__ck_hyper[k].off); }

/* A new string: fmt formatted (NULL when out of memory). */
static char *nn__ck_fmt(const char *fmt, ...) {
    va_list ap;
    int n;
    char *s;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !(s = (char *)nn__malloc((size_t)n + 1))) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A double as the shortest of %.15g, %.16g, %.17g that reads back bitwise
   (0.999 stays "0.999"); a new string, NULL when out of memory. */
static char *nn__ck_dbl(double v) {
    char b[40];
    int prec;
    for (prec = 15; prec < 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    if (prec == 17 || v != v) snprintf(b, sizeof b, "%.17g", v);
    return nn__ck_fmt("%s", b);
}

/* --- writing: the metadata pairs and the extra tensors (views of the
   optimizer's buffers and of the loader's order) --- */

typedef struct nn__ck_w {
    nn__io_list tens;            /* names owned; tensors point into views */
    nn_tensor *views;
    int nviews, capviews;
    nn_meta *meta;               /* keys and values owned */
    int nmeta, capmeta;
    int64_t *order;              /* the loader's order as I64 */
    int oom;
} nn__ck_w;

/* Add the pair (key, value), taking both strings. */
static void nn__ck_meta(nn__ck_w *w, char *key, char *value) {
    if (key && value && w->nmeta == w->capmeta) {
        int ncap = w->capmeta ? 2 * w->capmeta : 64;
        nn_meta *nm = (nn_meta *)NN_REALLOC(w->meta, sizeof(nn_meta) * (size_t)ncap);
        if (nm) {
            w->meta = nm;
            w->capmeta = ncap;
        }
    }
    if (!key || !value || w->nmeta == w->capmeta) {
        nn__free(key);
        nn__free(value);
        w->oom = 1;
        return;
    }
    w->meta[w->nmeta].key = key;
    w->meta[w->nmeta].value = value;
    w->nmeta++;
}

/* Add a tensor named name (taken) over data, shaped like `like` (NULL: a
   scalar); int64: I64 elements. */
static void nn__ck_view(nn__ck_w *w, char *name, const void *data, const nn_tensor *like, int int64, size_t n) {
    nn_tensor *v;
    if (!name || w->nviews == w->capviews) {
        nn__free(name);
        w->oom = 1;
        return;
    }
    v = &w->views[w->nviews++];
    memset(v, 0, sizeof *v);
    v->data = (float *)(void *)data;   /* only read */
    if (like) {
        v->ndim = like->ndim;
        memcpy(v->shape, like->shape, sizeof v->shape);
        v->numel = like->numel;
    } else {
        v->ndim = n ? 1 : 0;
        v->shape[0] = (int)n;
        v->numel = n ? n : 1;
    }
    if (int64) v->flags = NN_TENSOR_INT64;
    if (!nn__io_add(&w->tens, "", name, v)) w->oom = 1;
    nn__free(name);
}

static int nn__ck_nviews(const nn_optim *o) { return o ? o->n * (NN__SLOTS + 1) + nn__ck_nviews(o->inner) : 0; }

static void nn__ck_put_optim(nn__ck_w *w, const nn_optim *o, const char *pre, int depth) {
    const nn_optim *b = nn__optim_cbase(o);
    int i, k;
    nn__ck_meta(w, nn__ck_fmt("%stype", pre), nn__ck_fmt("%s", nn__optim_names[o->kind]));
    nn__ck_meta(w, nn__ck_fmt("%sparams", pre), nn__ck_fmt("%d", o->n));
    if (o->kind == NN__OPT_LOOKAHEAD) {
        char *sub = nn__ck_fmt("%sinner.", pre);
        nn__ck_meta(w, nn__ck_fmt("%sk", pre), nn__ck_fmt("%d", o->la_k));
        nn__ck_meta(w, nn__ck_fmt("%salpha", pre), nn__ck_dbl(o->la_alpha));
        nn__ck_meta(w, nn__ck_fmt("%scount", pre), nn__ck_fmt("%ld", o->la_count));
        for (i = 0; i < o->n; i++)
            nn__ck_view(w, depth ? nn__ck_fmt("optim.%s.slow_buffer.%d", b->names[i], depth)
                                 : nn__ck_fmt("optim.%s.slow_buffer", b->names[i]),
                        o->slot[0][i], o->params[i], 0, 0);
        if (sub) nn__ck_put_optim(w, o->inner, sub, depth + 1);
        else w->oom = 1;
        nn__free(sub);
        return;
    }
    for (k = 0; k < NN__CK_NHYPER; k++)
        nn__ck_meta(w, nn__ck_fmt("%s%s", pre, nn__ck_hyper[k].key),
                    nn__ck_dbl(*nn__ck_dfield((nn_optim *)o, k)));
    nn__ck_meta(w, nn__ck_fmt("%snesterov", pre), nn__ck_fmt("%d", o->nesterov));
    nn__ck_meta(w, nn__ck_fmt("%scentered", pre), nn__ck_fmt("%d", o->centered));
    nn__ck_meta(w, nn__ck_fmt("%samsgrad", pre), nn__ck_fmt("%d", o->amsgrad));
    for (i = 0; i < o->n; i++) {
        const char *name = o->names[i];
        nn__ck_meta(w, nn__ck_fmt("optim.%s.step", name), nn__ck_fmt("%ld", o->steps[i]));
        nn__ck_meta(w, nn__ck_fmt("optim.%s.lr_scale", name), nn__ck_dbl(o->lr_scale[i]));
        nn__ck_meta(w, nn__ck_fmt("optim.%s.weight_decay", name), nn__ck_dbl(o->wd[i]));
        nn__ck_meta(w, nn__ck_fmt("optim.%s.frozen", name), nn__ck_fmt("%d", (int)o->frozen[i]));
        for (k = 0; k < NN__SLOTS; k++)
            if (o->slot[k][i] && nn__ck_slots[o->kind][k])
                nn__ck_view(w, nn__ck_fmt("optim.%s.%s", name, nn__ck_slots[o->kind][k]), o->slot[k][i],
                            o->params[i], 0, 0);
        if (o->kind == NN__OPT_NADAM)
            nn__ck_view(w, nn__ck_fmt("optim.%s.mu_product", name), &o->mu_prod[i], NULL, 0, 0);
    }
}

static void nn__ck_put_sched(nn__ck_w *w, const nn_sched *s, const char *pre) {
    nn__ck_meta(w, nn__ck_fmt("%stype", pre), nn__ck_fmt("%s", nn__sched_names[s->kind]));
    nn__ck_meta(w, nn__ck_fmt("%st", pre), nn__ck_fmt("%ld", s->t));
    nn__ck_meta(w, nn__ck_fmt("%sbase_lr", pre), nn__ck_dbl(s->base_lr));
    nn__ck_meta(w, nn__ck_fmt("%sbest", pre), nn__ck_dbl(s->best));
    nn__ck_meta(w, nn__ck_fmt("%slo_lr", pre), nn__ck_dbl(s->lo_lr));
    nn__ck_meta(w, nn__ck_fmt("%snum_bad", pre), nn__ck_fmt("%d", s->num_bad));
    nn__ck_meta(w, nn__ck_fmt("%scooldown_left", pre), nn__ck_fmt("%d", s->cooldown_left));
    nn__ck_meta(w, nn__ck_fmt("%srestarted", pre), nn__ck_fmt("%d", s->restarted));
    nn__ck_meta(w, nn__ck_fmt("%sbatch", pre), nn__ck_fmt("%d", s->batch));
    if (s->then) {
        char *sub = nn__ck_fmt("%sthen.", pre);
        if (sub) nn__ck_put_sched(w, s->then, sub);
        else w->oom = 1;
        nn__free(sub);
    }
}

static char *nn__ck_rng_str(const nn_rng *r) {
    nn_rng_state st;
    memset(&st, 0, sizeof st); /* nn_rng_get_state leaves it alone after a misuse report */
    nn_rng_get_state(r, &st);
    return nn__ck_fmt("%016llx %016llx %016llx %016llx", (unsigned long long)st.words[0],
                      (unsigned long long)st.words[1], (unsigned long long)st.words[2],
                      (unsigned long long)st.words[3]);
}

static void nn__ck_put_loader(nn__ck_w *w, const nn_loader *l) {
    static const char *const keys[5] = {"loader.samples", "loader.pos", "loader.batch", "loader.next_batch",
                                        "loader.in_epoch"};
    int v[5], i;
    const int *order;
    nn_rng *r;
    nn__loader_get(l, v, &order, &r);
    for (i = 0; i < 5; i++) nn__ck_meta(w, nn__ck_fmt("%s", keys[i]), nn__ck_fmt("%d", v[i]));
    if (!(w->order = (int64_t *)nn__malloc(sizeof(int64_t) * (size_t)v[0]))) {
        w->oom = 1;
        return;
    }
    for (i = 0; i < v[0]; i++) w->order[i] = order[i];
    nn__ck_view(w, nn__ck_fmt("loader.order"), w->order, NULL, 1, (size_t)v[0]);
    if (r) nn__ck_meta(w, nn__ck_fmt("loader.rng"), nn__ck_rng_str(r));
}

static nn_status nn__ckpt_save(const char *who, const char *path, const nn_checkpoint *c, int with_rng) {
    nn__ck_w w;
    nn_save_opts so;
    nn_status st;
    int i;
    if (!c || !path) {
        nn__misuse("%s: NULL %s", who, !c ? "checkpoint" : "path");
        return NN_ERR_ARG;
    }
    if (c->nuser < 0 || (c->nuser > 0 && !c->user)) {
        nn__misuse("%s: user is NULL with nuser %d", who, c->nuser);
        return NN_ERR_ARG;
    }
    for (i = 0; i < c->nuser; i++)
        if (!c->user[i].key || !c->user[i].value) {
            nn__misuse("%s: user pair %d has a NULL %s", who, i, c->user[i].key ? "value" : "key");
            return NN_ERR_ARG;
        }
    memset(&w, 0, sizeof w);
    w.capviews = nn__ck_nviews(c->optim) + 1;
    if (!(w.views = (nn_tensor *)nn__calloc((size_t)w.capviews, sizeof(nn_tensor)))) w.oom = 1;
    nn__ck_meta(&w, nn__ck_fmt("nn.checkpoint"), nn__ck_fmt("1"));
    nn__ck_meta(&w, nn__ck_fmt("epoch"), nn__ck_fmt("%ld", c->epoch));
    nn__ck_meta(&w, nn__ck_fmt("step"), nn__ck_fmt("%ld", c->step));
    if (c->optim && !w.oom) nn__ck_put_optim(&w, c->optim, "optim.", 0);
    if (c->sched) nn__ck_put_sched(&w, c->sched, "sched.");
    if (c->loader && !w.oom) nn__ck_put_loader(&w, c->loader);
    if (with_rng) nn__ck_meta(&w, nn__ck_fmt("rng.state"), nn__ck_rng_str(c->rng ? c->rng : nn_default_rng()));
    for (i = 0; i < c->nuser; i++)
        nn__ck_meta(&w, nn__ck_fmt("user.%s", c->user[i].key), nn__ck_fmt("%s", c->user[i].value));
    if (w.oom) {
        st = nn__error(NN_ERR_OOM, "%s: %s: out of memory", who, path);
    } else {
        memset(&so, 0, sizeof so);
        so.metadata = w.meta;
        so.nmetadata = w.nmeta;
        st = nn__io_save_file(who, c->module, path, so, &w.tens);
    }
    for (i = 0; i < w.nmeta; i++) {
        nn__free((void *)w.meta[i].key);
        nn__free((void *)w.meta[i].value);
    }
    nn__free(w.meta);
    nn__io_list_free(&w.tens);
    nn__free(w.views);
    nn__free(w.order);
    return st;
}

NNDEF nn_status nn_checkpoint_save(const char *path, const nn_checkpoint *c) {
    return nn__ckpt_save("nn_checkpoint_save", path, c, 1);
}

/* --- reading: every part is checked first (nothing written), then applied
   by the same code with apply = 1, which cannot fail by then --- */

typedef struct nn__ck_r {
    nn__sft f;
    const char ***mk;            /* metadata key slots (&f.meta[2i]) sorted by key */
    nn__sft_entry **tk;          /* tensors sorted by name */
    char *key;                   /* the key being looked up */
    size_t keycap;
} nn__ck_r;

static int nn__ck_cmp_meta(const void *a, const void *b) {
    return strcmp((*(const char *const *const *)a)[0], (*(const char *const *const *)b)[0]);
}
static int nn__ck_cmp_entry(const void *a, const void *b) {
    return strcmp((*(const nn__sft_entry *const *)a)->name, (*(const nn__sft_entry *const *)b)->name);
}

/* r->key = a b c (NULL when out of memory, with the error set). */
static const char *nn__ck_key(nn__ck_r *r, const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    if (la + lb + lc + 1 > r->keycap) {
        size_t ncap = 2 * (la + lb + lc + 1);
        char *nk = (char *)NN_REALLOC(r->key, ncap);
        if (!nk) {
            nn__error(NN_ERR_OOM, "%s: out of memory", r->f.where);
            return NULL;
        }
        r->key = nk;
        r->keycap = ncap;
    }
    memcpy(r->key, a, la);
    memcpy(r->key + la, b, lb);
    memcpy(r->key + la + lb, c, lc + 1);
    return r->key;
}

static const char *nn__ck_get(const nn__ck_r *r, const char *key) {
    const char *k = key, **kp = &k;
    const char ***hit;
    if (!key || !r->f.nmeta) return NULL;
    hit = (const char ***)bsearch((const void *)&kp, (const void *)r->mk, (size_t)(r->f.nmeta / 2),
                                  sizeof *r->mk, nn__ck_cmp_meta);
    return hit ? (*hit)[1] : NULL;
}

static const nn__sft_entry *nn__ck_tensor(const nn__ck_r *r, const char *name) {
    nn__sft_entry probe, *pp = &probe, **hit;
    if (!name || !r->f.n) return NULL;
    probe.name = name;
    hit = (nn__sft_entry **)bsearch((const void *)&pp, (const void *)r->tk, (size_t)r->f.n, sizeof *r->tk,
                                    nn__ck_cmp_entry);
    return hit ? *hit : NULL;
}

static nn_status nn__ck_missing(const nn__ck_r *r, const char *key, const char *what) {
    if (!key) return NN_ERR_OOM;
    return nn__error(NN_ERR_FORMAT, "%s: %s: no \"%s\" in the file", r->f.where, what, key);
}

/* The value of key as a number in [lo, hi]. */
static nn_status nn__ck_long(const nn__ck_r *r, const char *key, long lo, long hi, const char *what, long *out) {
    const char *v = nn__ck_get(r, key);
    char *end;
    long x;
    if (!v) return nn__ck_missing(r, key, what);
    errno = 0;
    x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi || !((*v >= '0' && *v <= '9') || *v == '-'))
        return nn__error(NN_ERR_FORMAT, "%s: %s: \"%s\" is \"%.40s\", not an integer in [%ld, %ld]", r->f.where,
                         what, key, v, lo, hi);
    *out = x;
    return NN_OK;
}

static nn_status nn__ck_double(const nn__ck_r *r, const char *key, const char *what, double *out) {
    const char *v = nn__ck_get(r, key);
    char *end;
    if (!v) return nn__ck_missing(r, key, what);
    *out = strtod(v, &end);
    if (end == v || *end || *v == ' ')
        return nn__error(NN_ERR_FORMAT, "%s: %s: \"%s\" is \"%.40s\", not a number", r->f.where, what, key, v);
    return NN_OK;
}

/* Four hex words "x x x x" of a generator state, its increment odd. */
static nn_status nn__ck_rng(const nn__ck_r *r, const char *key, const char *v, nn_rng_state *st) {
    const char *p = v;
    int i, d;
    for (i = 0; i < 4; i++) {
        uint64_t x = 0;
        if (i && *p++ != ' ') break;
        for (d = 0; d < 16; d++) {
            int c = *p, h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (h < 0) break;
            x = x << 4 | (uint64_t)h;
            p++;
        }
        if (!d) break;
        st->words[i] = x;
    }
    if (i < 4 || *p || !(st->words[1] & 1u) || st->words[2] || st->words[3])
        return nn__error(NN_ERR_FORMAT, "%s: \"%s\" is \"%.80s\", not a generator state (four hex words, the "
                         "second odd, the last two 0)", r->f.where, key, v);
    return NN_OK;
}

/* A float state tensor: present, shaped like `like` (NULL: one element),
   of a float or integer dtype; converted into dst when it is not NULL. */
static nn_status nn__ck_floats(const nn__ck_r *r, const char *name, const nn_tensor *like, float *dst) {
    const nn__sft_entry *e = nn__ck_tensor(r, name);
    int d, same;
    if (!name) return NN_ERR_OOM;
    if (!e) return nn__error(NN_ERR_FORMAT, "%s: optimizer: tensor \"%s\" is missing", r->f.where, name);
    same = like ? e->ndim == like->ndim : e->numel == 1;
    for (d = 0; like && same && d < e->ndim; d++) same = e->shape[d] == (uint64_t)like->shape[d];
    if (!same) {
        char a[200], b[200];
        uint64_t want[NN_MAX_DIMS];
        for (d = 0; like && d < like->ndim; d++) want[d] = (uint64_t)like->shape[d];
        nn__io_shape_str(a, sizeof a, e->shape, e->ndim);
        nn__io_shape_str(b, sizeof b, want, like ? like->ndim : 0);
        return nn__error(NN_ERR_FORMAT, "%s: optimizer: tensor \"%s\" has shape %s, expected %s", r->f.where,
                         name, a, b);
    }
    if (e->dtype >= NN__DT_F8_E5M2)
        return nn__error(NN_ERR_FORMAT, "%s: optimizer: tensor \"%s\" has dtype %s", r->f.where, name,
                         nn__dt_name[e->dtype]);
    return dst ? nn__sft_convert(&r->f, e, 0, dst) : NN_OK;
}

#define NN__CK_TRY(x) do { if ((st = (x)) != NN_OK) goto fail; } while (0)

static nn_status nn__ck_get_optim(nn__ck_r *r, nn_optim *o, const char *pre, int depth, int apply) {
    nn_optim *b = nn__optim_base(o);
    const char *v;
    nn_status st = NN_OK;
    char *sub = NULL, dep[24];
    long x;
    double d;
    int i, k;
    if (!(v = nn__ck_get(r, nn__ck_key(r, pre, "type", ""))))
        return r->key ? nn__error(NN_ERR_FORMAT, "%s: the file holds no optimizer state (no \"%stype\")",
                                  r->f.where, pre)
                      : NN_ERR_OOM;
    if (strcmp(v, nn__optim_names[o->kind]) != 0)
        return nn__error(NN_ERR_FORMAT, "%s: the file holds the state of an optimizer of type %.40s, this one "
                         "is %s", r->f.where, v, nn__optim_names[o->kind]);
    NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, "params", ""), 0, INT_MAX, "optimizer", &x));
    if (x != o->n)
        return nn__error(NN_ERR_FORMAT, "%s: the file's optimizer state is for %ld parameters, this optimizer "
                         "has %d", r->f.where, x, o->n);
    if (o->kind == NN__OPT_LOOKAHEAD) {
        long kk, count;
        double alpha;
        NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, "k", ""), 1, INT_MAX, "Lookahead", &kk));
        NN__CK_TRY(nn__ck_double(r, nn__ck_key(r, pre, "alpha", ""), "Lookahead", &alpha));
        NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, "count", ""), 0, LONG_MAX, "Lookahead", &count));
        snprintf(dep, sizeof dep, depth ? ".slow_buffer.%d" : ".slow_buffer", depth);
        for (i = 0; i < o->n; i++)
            NN__CK_TRY(nn__ck_floats(r, nn__ck_key(r, "optim.", b->names[i], dep), o->params[i],
                                     apply ? o->slot[0][i] : NULL));
        if (apply) {
            o->la_k = (int)kk;
            o->la_alpha = alpha;
            o->la_count = count;
        }
        if (!(sub = nn__ck_fmt("%sinner.", pre))) return nn__error(NN_ERR_OOM, "%s: out of memory", r->f.where);
        st = nn__ck_get_optim(r, o->inner, sub, depth + 1, apply);
        nn__free(sub);
        return st;
    }
    for (k = 0; k < NN__CK_NHYPER; k++) {
        NN__CK_TRY(nn__ck_double(r, nn__ck_key(r, pre, nn__ck_hyper[k].key, ""), "optimizer", &d));
        if (apply) *nn__ck_dfield(o, k) = d;
    }
    NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, "nesterov", ""), 0, 1, "optimizer", &x));
    if (apply) o->nesterov = (int)x;
    NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, "centered", ""), 0, 1, "optimizer", &x));
    if (apply) o->centered = (int)x;
    NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, "amsgrad", ""), 0, 1, "optimizer", &x));
    if (apply) o->amsgrad = (int)x;
    for (i = 0; i < o->n; i++) {
        const char *name = o->names[i];
        long step, frozen;
        double scale, wd;
        if (!nn__ck_get(r, nn__ck_key(r, "optim.", name, ".step")))
            return r->key ? nn__error(NN_ERR_FORMAT, "%s: the optimizer's parameter \"%s\" has no state in the "
                                      "file (it was saved for other parameters)", r->f.where, name)
                          : NN_ERR_OOM;
        NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, "optim.", name, ".step"), 0, LONG_MAX, "optimizer", &step));
        NN__CK_TRY(nn__ck_double(r, nn__ck_key(r, "optim.", name, ".lr_scale"), "optimizer", &scale));
        NN__CK_TRY(nn__ck_double(r, nn__ck_key(r, "optim.", name, ".weight_decay"), "optimizer", &wd));
        NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, "optim.", name, ".frozen"), 0, 1, "optimizer", &frozen));
        for (k = 0; k < NN__SLOTS; k++) {
            const char *sn = nn__ck_slots[o->kind][k], *tn;
            int has = o->slot[k][i] != NULL, in_file;
            char suffix[24];
            if (!sn) continue;
            snprintf(suffix, sizeof suffix, ".%s", sn);
            if (!(tn = nn__ck_key(r, "optim.", name, suffix))) return NN_ERR_OOM;
            in_file = nn__ck_tensor(r, tn) != NULL;
            if (has != in_file)
                return nn__error(NN_ERR_FORMAT, "%s: parameter \"%s\": the file %s \"%s\", this %s optimizer %s "
                                 "(an option such as momentum, centered or amsgrad differs)", r->f.where, name,
                                 in_file ? "has" : "lacks", sn, nn__optim_names[o->kind],
                                 has ? "keeps one" : "keeps none");
            if (has) NN__CK_TRY(nn__ck_floats(r, tn, o->params[i], apply ? o->slot[k][i] : NULL));
        }
        if (o->kind == NN__OPT_NADAM)
            NN__CK_TRY(nn__ck_floats(r, nn__ck_key(r, "optim.", name, ".mu_product"), NULL,
                                     apply ? &o->mu_prod[i] : NULL));
        if (apply) {
            o->steps[i] = step;
            o->lr_scale[i] = scale;
            o->wd[i] = wd;
            o->frozen[i] = (unsigned char)frozen;
        }
    }
    (void)b;
fail:
    return st;
}

static nn_status nn__ck_get_sched(nn__ck_r *r, nn_sched *s, const char *pre, int apply) {
    const char *v;
    nn_status st = NN_OK;
    long t, ints[4];
    double base_lr, best, lo_lr;
    static const char *const ik[4] = {"num_bad", "cooldown_left", "restarted", "batch"};
    int k, has_then;
    if (!(v = nn__ck_get(r, nn__ck_key(r, pre, "type", ""))))
        return r->key ? nn__error(NN_ERR_FORMAT, "%s: the file holds no schedule state (no \"%stype\")",
                                  r->f.where, pre)
                      : NN_ERR_OOM;
    if (strcmp(v, nn__sched_names[s->kind]) != 0)
        return nn__error(NN_ERR_FORMAT, "%s: the file holds the state of a %.40s schedule, this one is %s",
                         r->f.where, v, nn__sched_names[s->kind]);
    NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, "t", ""), 0, LONG_MAX, "schedule", &t));
    NN__CK_TRY(nn__ck_double(r, nn__ck_key(r, pre, "base_lr", ""), "schedule", &base_lr));
    NN__CK_TRY(nn__ck_double(r, nn__ck_key(r, pre, "best", ""), "schedule", &best));
    NN__CK_TRY(nn__ck_double(r, nn__ck_key(r, pre, "lo_lr", ""), "schedule", &lo_lr));
    for (k = 0; k < 4; k++)
        NN__CK_TRY(nn__ck_long(r, nn__ck_key(r, pre, ik[k], ""), k == 3 && s->kind == NN__S_BATCH ? 1 : 0,
                               k == 2 ? 1 : INT_MAX, "schedule", &ints[k]));
    if (!nn__ck_key(r, pre, "then.type", "")) return NN_ERR_OOM;
    has_then = nn__ck_get(r, r->key) != NULL;
    if (has_then != (s->then != NULL))
        return nn__error(NN_ERR_FORMAT, "%s: the warmup's inner schedule differs (the file %s one)", r->f.where,
                         has_then ? "has" : "lacks");
    if (s->then) {
        char *sub = nn__ck_fmt("%sthen.", pre);
        if (!sub) return nn__error(NN_ERR_OOM, "%s: out of memory", r->f.where);
        st = nn__ck_get_sched(r, s->then, sub, apply);
        nn__free(sub);
        if (st != NN_OK) return st;
    }
    if (apply) {
        s->t = t;
        s->base_lr = base_lr;
        s->best = best;
        s->lo_lr = lo_lr;
        s->num_bad = (int)ints[0];
        s->cooldown_left = (int)ints[1];
        s->restarted = (int)ints[2];
        s->batch = (int)ints[3];
        if (s->kind == NN__S_BATCH) nn_loader_set_batch_size(s->loader, s->batch);
    }
fail:
    return st;
}

/* The loader's saved state into v and a new *order (checked against l). */
static nn_status nn__ck_get_loader(nn__ck_r *r, const nn_loader *l, int v[5], int64_t **order,
                                   nn_rng_state *lrng) {
    static const char *const keys[5] = {"loader.samples", "loader.pos", "loader.batch", "loader.next_batch",
                                        "loader.in_epoch"};
    const nn__sft_entry *e;
    const int *cur;
    nn_rng *own;
    unsigned char *seen;
    const char *why, *rv;
    nn_status st = NN_OK;
    long x;
    int k, cv[5];
    *order = NULL;
    if (!nn__ck_get(r, "loader.samples"))
        return nn__error(NN_ERR_FORMAT, "%s: the file holds no loader state (no \"loader.samples\")", r->f.where);
    for (k = 0; k < 5; k++) {
        NN__CK_TRY(nn__ck_long(r, keys[k], 0, INT_MAX, "loader", &x));
        v[k] = (int)x;
    }
    nn__loader_get(l, cv, &cur, &own);
    if (v[0] != cv[0])
        return nn__error(NN_ERR_FORMAT, "%s: the loader's state is for %d samples, this loader's dataset has %d",
                         r->f.where, v[0], cv[0]);
    e = nn__ck_tensor(r, "loader.order");
    if (!e || e->ndim != 1 || e->shape[0] != (uint64_t)v[0] || !nn__dt_is_int(e->dtype))
        return nn__error(NN_ERR_FORMAT, "%s: loader: \"loader.order\" is %s, expected %d integers", r->f.where,
                         e ? "of another shape or dtype" : "missing", v[0]);
    if (own) {
        if (!(rv = nn__ck_get(r, "loader.rng")))
            return nn__error(NN_ERR_FORMAT, "%s: this loader has its own generator but the file holds no "
                             "\"loader.rng\"", r->f.where);
        if ((st = nn__ck_rng(r, "loader.rng", rv, lrng)) != NN_OK) return st;
    }
    *order = (int64_t *)nn__malloc(sizeof(int64_t) * (size_t)(v[0] ? v[0] : 1));
    seen = (unsigned char *)nn__malloc((size_t)(v[0] ? v[0] : 1));
    if (!*order || !seen) {
        st = nn__error(NN_ERR_OOM, "%s: out of memory", r->f.where);
    } else if ((st = nn__sft_convert(&r->f, e, 1, *order)) == NN_OK &&
               (why = nn__loader_check(l, v, *order, seen)) != NULL) {
        st = nn__error(NN_ERR_FORMAT, "%s: the loader's state does not fit: %s", r->f.where, why);
    }
    nn__free(seen);
fail:
    if (st != NN_OK) {
        nn__free(*order);
        *order = NULL;
    }
    return st;
}

static nn_status nn__ckpt_load_buf(const unsigned char *buf, size_t size, nn_checkpoint *c, int with_rng,
                                   const char *where) {
    nn__ck_r r;
    nn__io_list l;
    unsigned char *tmp = NULL;
    size_t *offs = NULL;
    int64_t *order = NULL;
    int staged = 0, has_rng = 0, lv[5], i;
    long epoch, step;
    nn_rng_state rs, lrs;
    const char *v;
    nn_status st;
    memset(&r, 0, sizeof r);
    memset(&lrs, 0, sizeof lrs);
    r.f.where = where;
    if ((st = nn__sft_parse(&r.f, buf, size)) != NN_OK) goto done;
    r.mk = (const char ***)nn__malloc(sizeof(char **) * (size_t)(r.f.nmeta / 2 + 1));
    r.tk = (nn__sft_entry **)nn__malloc(sizeof(nn__sft_entry *) * (size_t)(r.f.n + 1));
    if (!r.mk || !r.tk) {
        st = nn__error(NN_ERR_OOM, "%s: out of memory", where);
        goto done;
    }
    for (i = 0; i < r.f.nmeta / 2; i++) r.mk[i] = &r.f.meta[2 * i];
    for (i = 0; i < r.f.n; i++) r.tk[i] = &r.f.e[i];
    qsort((void *)r.mk, (size_t)(r.f.nmeta / 2), sizeof *r.mk, nn__ck_cmp_meta);
    qsort((void *)r.tk, (size_t)r.f.n, sizeof *r.tk, nn__ck_cmp_entry);
    if (!(v = nn__ck_get(&r, "nn.checkpoint"))) {
        st = nn__error(NN_ERR_FORMAT, "%s: not a checkpoint (no \"nn.checkpoint\" in its metadata; a model "
                       "file from nn_save loads with nn_load)", where);
        goto done;
    }
    if (strcmp(v, "1") != 0) {
        st = nn__error(NN_ERR_FORMAT, "%s: checkpoint version \"%.20s\", this nn.h reads version 1", where, v);
        goto done;
    }
    if ((st = nn__ck_long(&r, "epoch", LONG_MIN, LONG_MAX, "checkpoint", &epoch)) != NN_OK ||
        (st = nn__ck_long(&r, "step", LONG_MIN, LONG_MAX, "checkpoint", &step)) != NN_OK)
        goto done;
    /* the checkpoint's own tensors are no module's */
    for (i = 0; i < r.f.n; i++)
        if (strncmp(r.f.e[i].name, "optim.", 6) == 0 || strncmp(r.f.e[i].name, "loader.", 7) == 0)
            r.f.e[i].match = -2;
    if (c->module) {
        nn_load_opts lo;
        memset(&lo, 0, sizeof lo);
        if ((st = nn__io_match(&r.f, c->module, lo, where, &l, &tmp, &offs)) != NN_OK) goto done;
        staged = 1;
    }
    if (c->optim && (st = nn__ck_get_optim(&r, c->optim, "optim.", 0, 0)) != NN_OK) goto done;
    if (c->sched && (st = nn__ck_get_sched(&r, c->sched, "sched.", 0)) != NN_OK) goto done;
    if (c->loader && (st = nn__ck_get_loader(&r, c->loader, lv, &order, &lrs)) != NN_OK) goto done;
    if (with_rng && (v = nn__ck_get(&r, "rng.state")) != NULL) {
        if ((st = nn__ck_rng(&r, "rng.state", v, &rs)) != NN_OK) goto done;
        has_rng = 1;
    }
    /* Everything fits: apply (the checks pass again, nothing allocates). */
    if (staged) {
        nn__io_commit(&r.f, &l, tmp, offs);
        staged = 0;
    }
    if (c->optim) st = nn__ck_get_optim(&r, c->optim, "optim.", 0, 1);
    if (c->sched && st == NN_OK) st = nn__ck_get_sched(&r, c->sched, "sched.", 1);
    NN_ASSERT(st == NN_OK);
    if (c->loader) {
        nn_rng *own;
        const int *cur;
        int cv[5];
        nn__loader_set(c->loader, lv, order);
        nn__loader_get(c->loader, cv, &cur, &own);
        if (own) nn_rng_set_state(own, &lrs);
    }
    if (has_rng) nn_rng_set_state(c->rng ? c->rng : nn_default_rng(), &rs);
    c->epoch = epoch;
    c->step = step;
    if (c->on_user)
        for (i = 0; i + 1 < r.f.nmeta; i += 2)
            if (strncmp(r.f.meta[i], "user.", 5) == 0) c->on_user(r.f.meta[i] + 5, r.f.meta[i + 1], c->arg);
done:
    if (staged) {
        nn__io_list_free(&l);
        nn__free(tmp);
        nn__free(offs);
    }
    nn__free(order);
    nn__free((void *)r.mk);
    nn__free(r.tk);
    nn__free(r.key);
    nn__sft_free(&r.f);
    return st;
}

static nn_status nn__ckpt_load_file(const char *who, const char *path, nn_checkpoint *c, int with_rng) {
    unsigned char *buf;
    size_t size;
    nn_status st;
    char *where;
    if (!c || !path) {
        nn__misuse("%s: NULL %s", who, !c ? "checkpoint" : "path");
        return NN_ERR_ARG;
    }
    if ((st = nn__read_file(path, who, &buf, &size)) != NN_OK) return st;
    if (!(where = nn__ck_fmt("%s: %s", who, path))) {
        nn__free(buf);
        return nn__error(NN_ERR_OOM, "%s: %s: out of memory", who, path);
    }
    st = nn__ckpt_load_buf(buf, size, c, with_rng, where);
    nn__free(where);
    nn__free(buf);
    return st;
}

NNDEF nn_status nn_checkpoint_load(const char *path, nn_checkpoint *c) {
    return nn__ckpt_load_file("nn_checkpoint_load", path, c, 1);
}

/* ----- >>io.png: PNG images ----------------------------------------------- */

static void nn__png_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Adler-32 (RFC 1950) continued over n more bytes: a = 1 + sum, b = sum of
   the a's, mod 65521; start with adler = 1. */
static uint32_t nn__adler32(uint32_t adler, const unsigned char *p, size_t n) {
    uint32_t a = adler & 0xffffu, b = adler >> 16;
    while (n) {
        size_t k = n < 5552 ? n : 5552;   /* the most bytes before b can overflow */
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a %= 65521u;
        b %= 65521u;
    }
    return b << 16 | a;
}

/* A chunk at p: length, type, the data already at p + 8, then the CRC-32 of
   type and data.  Returns the bytes written (12 + len). */
static size_t nn__png_chunk(unsigned char *p, const char *type, size_t len) {
    nn__png_be32(p, (uint32_t)len);
    memcpy(p + 4, type, 4);
    nn__png_be32(p + 8 + len, nn__crc32(p + 4, len + 4));
    return 12 + len;
}

NNDEF nn_status nn_png_write_mem(const unsigned char *pixels, int width, int height,
                                 int channels, void **buf, size_t *size) {
    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    static const unsigned char color[5] = {0, 0, 4, 2, 6};
    size_t row, raw, blocks, zlen, total, pos, left, y;
    unsigned char *out, *z;
    if (buf) *buf = NULL;
    if (size) *size = 0;
    if (!pixels || !buf || !size || width < 1 || height < 1 || channels < 1 || channels > 4) {
        nn__misuse("nn_png_write: needs pixels, an output and width, height >= 1 and 1..4 "
                   "channels, got %dx%d with %d channels", width, height, channels);
        return NN_ERR_ARG;
    }
    row = (size_t)width * (size_t)channels + 1;   /* a filter byte (0: none), then the samples */
    raw = row * (size_t)height;
    if ((size_t)width > 0x7fffffffu / 4u || (size_t)height > 0x7fffffffu / row ||
        raw > 0x7fff0000u)
        return nn__error(NN_ERR_ARG, "nn_png_write: %dx%d with %d channels is over the 2 GiB "
                         "of one PNG chunk", width, height, channels);
    blocks = (raw + 65534) / 65535;
    zlen = 2 + raw + 5 * blocks + 4;
    total = 8 + (12 + 13) + (12 + zlen) + 12;
    if (!(out = (unsigned char *)nn__malloc(total))) return NN_ERR_OOM;
    memcpy(out, sig, 8);
    pos = 8;
    nn__png_be32(out + pos + 8, (uint32_t)width);
    nn__png_be32(out + pos + 12, (uint32_t)height);
    out[pos + 16] = 8;                          /* bit depth */
    out[pos + 17] = color[channels];            /* color type */
    out[pos + 18] = out[pos + 19] = out[pos + 20] = 0;  /* deflate, adaptive filter, no interlace */
    pos += nn__png_chunk(out + pos, "IHDR", 13);
    z = out + pos + 8;
    z[0] = 0x78;   /* deflate, 32 KiB window */
    z[1] = 0x01;   /* no dictionary, fastest; 0x7801 is a multiple of 31 */
    {
        unsigned char *q = z + 2, *data;
        for (left = raw; left > 0;) {
            size_t k = left < 65535 ? left : 65535;
            left -= k;
            q[0] = (unsigned char)(left == 0);  /* BFINAL, BTYPE 00 (stored) */
            q[1] = (unsigned char)k;
            q[2] = (unsigned char)(k >> 8);
            q[3] = (unsigned char)~k;
            q[4] = (unsigned char)(~k >> 8);
            q += 5 + k;
        }
        /* Fill the blocks' payloads with the scanlines, crossing block headers. */
        q = z + 2;
        data = q + 5;
        left = 0;
        for (y = 0; y < (size_t)height; y++) {
            const unsigned char *src = pixels + y * (row - 1);
            size_t j;
            for (j = 0; j < row; j++) {
                if (left == 0) {
                    left = (size_t)q[1] | (size_t)q[2] << 8;
                    data = q + 5;
                    q += 5 + left;
                }
                *data++ = j ? src[j - 1] : 0;
                left--;
            }
        }
    }
    /* The Adler-32 is over the uncompressed scanlines: sum them block by block. */
    {
        uint32_t adler = 1;
        unsigned char *q = z + 2;
        for (left = raw; left > 0;) {
            size_t k = (size_t)q[1] | (size_t)q[2] << 8;
            adler = nn__adler32(adler, q + 5, k);
            left -= k;
            q += 5 + k;
        }
        nn__png_be32(z + zlen - 4, adler);
    }
    pos += nn__png_chunk(out + pos, "IDAT", zlen);
    pos += nn__png_chunk(out + pos, "IEND", 0);
    NN_ASSERT(pos == total);
    *buf = out;
    *size = total;
    return NN_OK;
}

/* Write size bytes to path ("who" names the caller in the message). */
static nn_status nn__write_bytes(const char *who, const char *path, const void *p, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return nn__error(NN_ERR_IO, "%s: %s: cannot open for writing (%s)", who, path, strerror(errno));
    ok = fwrite(p, 1, size, f) == size;
    ok &= fclose(f) == 0;
    if (!ok) {
        remove(path);
        return nn__error(NN_ERR_IO, "%s: %s: write failed", who, path);
    }
    return NN_OK;
}

NNDEF nn_status nn_png_write(const char *path, const unsigned char *pixels, int width,
                             int height, int channels) {
    void *buf;
    size_t size;
    nn_status st;
    if (!path) {
        nn__misuse("nn_png_write: NULL path");
        return NN_ERR_ARG;
    }
    if ((st = nn_png_write_mem(pixels, width, height, channels, &buf, &size)) != NN_OK) return st;
    st = nn__write_bytes("nn_png_write", path, buf, size);
    nn__free(buf);
    return st;
}

NNDEF nn_status nn_png_write_grid(const char *path, const nn_tensor *batch, nn_png_grid_opts opts) {
    int N, C, H, W, nrow, ncol, pad, GW, GH, i, c, y, x;
    float lo = 0.0f, hi = 1.0f, scale;
    unsigned char *img;
    size_t k;
    nn_status st;
    if (!path || !batch || !(batch->ndim == 3 || batch->ndim == 4) ||
        (batch->ndim == 4 && batch->shape[1] != 1 && batch->shape[1] != 3) || batch->numel == 0 ||
        (batch->flags & NN_TENSOR_INT64)) {
        nn__misuse("nn_png_write_grid: needs a path and a float batch [N,1,H,W], [N,3,H,W] or "
                   "[N,H,W], got %s", nn__ts(batch));
        return NN_ERR_ARG;
    }
    N = batch->shape[0];
    C = batch->ndim == 4 ? batch->shape[1] : 1;
    H = batch->shape[batch->ndim - 2];
    W = batch->shape[batch->ndim - 1];
    nrow = opts.nrow > 0 ? opts.nrow : 8;
    if (nrow > N) nrow = N;
    ncol = (N + nrow - 1) / nrow;
    pad = opts.padding > 0 ? opts.padding : opts.padding < 0 ? 0 : 2;
    if ((double)nrow * (W + pad) + pad > 1e6 || (double)ncol * (H + pad) + pad > 1e6)
        return nn__error(NN_ERR_ARG, "nn_png_write_grid: a grid of %dx%d images of %dx%d is too "
                         "large", nrow, ncol, W, H);
    GW = nrow * (W + pad) + pad;
    GH = ncol * (H + pad) + pad;
    if (opts.normalize) {
        if (opts.lo < opts.hi) {
            lo = opts.lo;
            hi = opts.hi;
        } else {
            lo = HUGE_VALF;
            hi = -HUGE_VALF;
            for (k = 0; k < batch->numel; k++) {
                float v = batch->data[k];
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            if (!(lo < hi)) hi = lo + 1.0f;   /* constant (or NaN) batch */
        }
    }
    scale = 1.0f / (hi - lo);
    if (!(img = (unsigned char *)nn__malloc((size_t)GW * (size_t)GH * (size_t)C))) return NN_ERR_OOM;
#define NN__PNG_BYTE(v) (t = ((v) - lo) * scale, \
                         (unsigned char)(t > 0.0f ? (t < 1.0f ? t * 255.0f + 0.5f : 255.0f) : 0.0f))
    {
        float t;
        unsigned char pv = NN__PNG_BYTE(opts.pad_value);
        memset(img, pv, (size_t)GW * (size_t)GH * (size_t)C);
        for (i = 0; i < N; i++) {
            int ox = pad + (i % nrow) * (W + pad), oy = pad + (i / nrow) * (H + pad);
            for (c = 0; c < C; c++)
                for (y = 0; y < H; y++) {
                    const float *src = batch->data + (((size_t)i * C + c) * H + y) * W;
                    unsigned char *dst = img + ((size_t)(oy + y) * GW + ox) * C + c;
                    for (x = 0; x < W; x++) dst[(size_t)x * C] = NN__PNG_BYTE(src[x]);
                }
        }
    }
#undef NN__PNG_BYTE
    st = nn_png_write(path, img, GW, GH, C);
    nn__free(img);
    return st;
}

/* ===== >>train (implementation) ========================================== */

/* ----- SVG plots: line panels, figures of several panels, heat maps ----- */

static double nn__plot_axis(double v, int logscale) { return logscale ? log10(v > 1e-30 ? v : 1e-30) : v; }

/* Round tick spacing (1, 2 or 5 times a power of ten) for a linear span. */
static double nn__plot_tick(double span) {
    double raw = span / 5.0, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * p;
}

/* Write text escaped for XML (titles and names may hold < & "). */
static void nn__svg_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static int nn__plot_check(const char *fn, const nn_plot_series *series, int nseries) {
    int i;
    if (nseries < 0 || (nseries && !series)) {
        nn__misuse("%s: NULL series or a negative count (%d)", fn, nseries);
        return 0;
    }
    for (i = 0; i < nseries; i++)
        if (series[i].n < 0 || (series[i].n > 0 && (!series[i].x || !series[i].y))) {
            nn__misuse("%s: series %d has n = %d and a NULL x or y", fn, i, series[i].n);
            return 0;
        }
    return 1;
}

/* One line plot drawn into f in the box (ox, oy, W, H): axes, ticks, grid,
   polylines (NaN and out-of-axis points break a line), the legend on the
   right.  nn_plot_svg and nn_plot_figure_svg share it. */
static void nn__plot_panel(FILE *f, double ox, double oy, int W, int H, const nn_plot_series *series,
                           int nseries, const nn_plot_opts *o) {
    static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    double L = ox + 70.0, R = 160.0, T = oy + 40.0, B = 50.0, x0 = HUGE_VAL, x1 = -HUGE_VAL,
           y0v = HUGE_VAL, y1v = -HUGE_VAL, pw, ph, v, st;
    int i, j, fixed = o->ymax > o->ymin;
    for (i = 0; i < nseries; i++)
        for (j = 0; j < series[i].n; j++) {
            double xv = (double)series[i].x[j], yv = (double)series[i].y[j];
            if (!(xv == xv) || !(yv == yv) || fabs(yv) > 1e30 || (o->logx && xv <= 0.0) ||
                (o->logy && yv <= 0.0))
                continue;
            xv = nn__plot_axis(xv, o->logx);
            yv = nn__plot_axis(yv, o->logy);
            if (xv < x0) x0 = xv;
            if (xv > x1) x1 = xv;
            if (yv < y0v) y0v = yv;
            if (yv > y1v) y1v = yv;
        }
    if (x0 > x1) { x0 = 0.0; x1 = 1.0; y0v = 0.0; y1v = 1.0; }
    if (x1 - x0 < 1e-12) { x0 -= 0.5; x1 += 0.5; }
    if (y1v - y0v < 1e-12) { y0v -= 0.5; y1v += 0.5; }
    v = (y1v - y0v) * 0.05;
    y0v -= v;
    y1v += v;
    if (fixed) {
        y0v = nn__plot_axis((double)o->ymin, o->logy);
        y1v = nn__plot_axis((double)o->ymax, o->logy);
        if (!(y1v > y0v)) { y0v = 0.0; y1v = 1.0; }
    }
    pw = (double)W - 70.0 - R;
    ph = (double)H - 40.0 - B;
#define NN__PX(xv) (L + ((xv) - x0) / (x1 - x0) * pw)
#define NN__PY(yv) (T + ph - ((yv) - y0v) / (y1v - y0v) * ph)
    if (o->title) {
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" font-size=\"15\">", L + pw / 2.0, oy + 22.0);
        nn__svg_text(f, o->title);
        fprintf(f, "</text>\n");
    }
    /* grid and ticks */
    st = o->logx ? 1.0 : nn__plot_tick(x1 - x0);
    if (o->logx && x1 - x0 > 12.0) st = ceil((x1 - x0) / 10.0);
    for (v = ceil(x0 / st) * st; v <= x1 + 1e-9 * st; v += st) {
        double px = NN__PX(v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", px, T, px, T + ph);
        if (o->logx) fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">1e%d</text>\n", px, T + ph + 16.0, (int)floor(v + 0.5));
        else fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", px, T + ph + 16.0, fabs(v) < 1e-12 * st ? 0.0 : v);
    }
    st = o->logy ? 1.0 : nn__plot_tick(y1v - y0v);
    if (o->logy && y1v - y0v > 12.0) st = ceil((y1v - y0v) / 10.0);
    if (o->logy && y1v - y0v < 1.0) st = nn__plot_tick(y1v - y0v); /* under a decade: 10^(fractions) */
    for (v = ceil(y0v / st) * st; v <= y1v + 1e-9 * st; v += st) {
        double py = NN__PY(v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, py, L + pw, py);
        if (o->logy && st >= 1.0) fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", L - 6.0, py + 4.0, (int)floor(v + 0.5));
        else if (o->logy) fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 6.0, py + 4.0, pow(10.0, v));
        else fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6.0, py + 4.0, fabs(v) < 1e-12 * st ? 0.0 : v);
    }
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n", L, T, pw, ph);
    if (o->xlabel) {
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">", L + pw / 2.0, oy + (double)H - 12.0);
        nn__svg_text(f, o->xlabel);
        fprintf(f, "</text>\n");
    }
    if (o->ylabel) {
        fprintf(f, "<text transform=\"translate(%g,%g) rotate(-90)\" text-anchor=\"middle\">", ox + 16.0, T + ph / 2.0);
        nn__svg_text(f, o->ylabel);
        fprintf(f, "</text>\n");
    }
    if (o->mark_x > 0.0f) {
        double px = NN__PX(nn__plot_axis((double)o->mark_x, o->logx));
        if (px >= L && px <= L + pw)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"black\" "
                       "stroke-dasharray=\"5,4\"/>\n", px, T, px, T + ph);
    }
    for (i = 0; i < nseries; i++) {
        const char *col = colors[i % 10];
        const char *dash = i < 32 && (o->dashed >> i & 1u) ? " stroke-dasharray=\"6,4\"" : "";
        int open = 0;
        for (j = 0; j < series[i].n; j++) {
            double xv = (double)series[i].x[j], yv = (double)series[i].y[j];
            int ok = xv == xv && yv == yv && fabs(yv) <= 1e30 && (!o->logx || xv > 0.0) &&
                     (!o->logy || yv > 0.0);
            if (ok) {
                double py = NN__PY(nn__plot_axis(yv, o->logy));
                if (py < T) py = T;   /* clip what leaves the box */
                if (py > T + ph) py = T + ph;
                if (!open) fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s points=\"", col, dash);
                fprintf(f, "%.1f,%.1f ", NN__PX(nn__plot_axis(xv, o->logx)), py);
                open = 1;
            } else if (open) {
                fprintf(f, "\"/>\n");
                open = 0;
            }
        }
        if (open) fprintf(f, "\"/>\n");
        if (o->markers)
            for (j = 0; j < series[i].n; j++) {
                double xv = (double)series[i].x[j], yv = (double)series[i].y[j];
                if (!(xv == xv && yv == yv && fabs(yv) <= 1e30 && (!o->logx || xv > 0.0) &&
                      (!o->logy || yv > 0.0)))
                    continue;
                yv = NN__PY(nn__plot_axis(yv, o->logy));
                if (yv >= T && yv <= T + ph)
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
                            NN__PX(nn__plot_axis(xv, o->logx)), yv, col);
            }
        fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"%s/>\n",
                L + pw + 12.0, T + 10.0 + 18.0 * i, L + pw + 32.0, T + 10.0 + 18.0 * i, col, dash);
        fprintf(f, "<text x=\"%g\" y=\"%g\">", L + pw + 38.0, T + 14.0 + 18.0 * i);
        nn__svg_text(f, series[i].name ? series[i].name : "");
        fprintf(f, "</text>\n");
    }
#undef NN__PX
#undef NN__PY
}

static FILE *nn__svg_open(const char *fn, const char *path, int W, int H) {
    FILE *f = fopen(path, "w");
    if (!f) {
        nn__error(NN_ERR_IO, "%s: %s: cannot open for writing", fn, path);
        return NULL;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    return f;
}

static nn_status nn__svg_close(const char *fn, const char *path, FILE *f) {
    int bad;
    fprintf(f, "</svg>\n");
    bad = ferror(f);
    if ((fclose(f) != 0) | bad) return nn__error(NN_ERR_IO, "%s: %s: write failed", fn, path);
    return NN_OK;
}

NNDEF nn_status nn_plot_svg(const char *path, const nn_plot_series *series, int nseries,
                            nn_plot_opts opts) {
    int W = opts.width > 0 ? opts.width : 720, H = opts.height > 0 ? opts.height : 440;
    FILE *f;
    if (!path) {
        nn__misuse("nn_plot_svg: NULL path");
        return NN_ERR_ARG;
    }
    if (!nn__plot_check("nn_plot_svg", series, nseries)) return NN_ERR_ARG;
    if (!(f = nn__svg_open("nn_plot_svg", path, W, H))) return NN_ERR_IO;
    nn__plot_panel(f, 0.0, 0.0, W, H, series, nseries, &opts);
    return nn__svg_close("nn_plot_svg", path, f);
}

NNDEF nn_status nn_plot_figure_svg(const char *path, const nn_plot_panel *panels, int npanels,
                                   int columns) {
    int i, W = 0, H = 0, rows, cw = 0, ch = 0;
    FILE *f;
    if (!path || npanels < 1 || !panels) {
        nn__misuse("nn_plot_figure_svg: needs a path and npanels >= 1 panels (got %d)", npanels);
        return NN_ERR_ARG;
    }
    for (i = 0; i < npanels; i++) {
        if (!nn__plot_check("nn_plot_figure_svg", panels[i].series, panels[i].nseries)) return NN_ERR_ARG;
        cw = NN__MAX(cw, panels[i].opts.width > 0 ? panels[i].opts.width : 720);
        ch = NN__MAX(ch, panels[i].opts.height > 0 ? panels[i].opts.height : 440);
    }
    if (columns < 1 || columns > npanels) columns = npanels;
    rows = (npanels + columns - 1) / columns;
    W = cw * columns;
    H = ch * rows;
    if (!(f = nn__svg_open("nn_plot_figure_svg", path, W, H))) return NN_ERR_IO;
    for (i = 0; i < npanels; i++)
        nn__plot_panel(f, (double)(cw * (i % columns)), (double)(ch * (i / columns)), cw, ch,
                       panels[i].series, panels[i].nseries, &panels[i].opts);
    return nn__svg_close("nn_plot_figure_svg", path, f);
}

NNDEF nn_status nn_heatmap_svg(const char *path, const float *values, int rows, int cols,
                               nn_heatmap_opts opts) {
    double cell = opts.cell > 0 ? (double)opts.cell : 40.0, L = 110.0, T = 60.0, lo, hi, W, H;
    int r, c, i;
    size_t n;
    FILE *f;
    if (!path || !values || rows < 1 || cols < 1 || rows > 65536 || cols > 65536) {
        nn__misuse("nn_heatmap_svg: needs a path, values and 1..65536 rows and columns (got %d x %d)",
                   rows, cols);
        return NN_ERR_ARG;
    }
    n = (size_t)rows * (size_t)cols;
    lo = opts.vmax > opts.vmin ? (double)opts.vmin : HUGE_VAL;
    hi = opts.vmax > opts.vmin ? (double)opts.vmax : -HUGE_VAL;
    if (!(opts.vmax > opts.vmin))
        for (i = 0; (size_t)i < n; i++) {
            double v = (double)values[i];
            if (!(v == v) || fabs(v) > 1e30) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    if (lo > hi) { lo = 0.0; hi = 1.0; }
    if (hi - lo < 1e-30) hi = lo + 1.0;
    W = L + cell * cols + 90.0;
    H = T + cell * rows + (opts.col_names ? 100.0 : 60.0); /* room for slanted names */
    if (!(f = nn__svg_open("nn_heatmap_svg", path, (int)W, (int)H))) return NN_ERR_IO;
    if (opts.title) {
        fprintf(f, "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", L + cell * cols / 2.0);
        nn__svg_text(f, opts.title);
        fprintf(f, "</text>\n");
    }
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
            double v = (double)values[(size_t)r * cols + c], t = (v - lo) / (hi - lo);
            int R, G, B;
            if (!(v == v)) t = 0.0;
            t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
            /* white to dark blue */
            R = (int)(247.0 - t * (247.0 - 8.0));
            G = (int)(251.0 - t * (251.0 - 48.0));
            B = (int)(255.0 - t * (255.0 - 107.0));
            fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"rgb(%d,%d,%d)\"/>\n",
                    L + cell * c, T + cell * r, cell, cell, R, G, B);
            if (!opts.no_values && cell >= 16.0) {
                char num[32];
                if (opts.format) snprintf(num, sizeof num, opts.format, v);
                else snprintf(num, sizeof num, "%.3g", v);
                fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" font-size=\"%g\" fill=\"%s\">%s</text>\n",
                        L + cell * (c + 0.5), T + cell * (r + 0.5) + 4.0, cell < 36.0 ? cell / 3.2 : 11.0,
                        t > 0.5 ? "white" : "black", num);
            }
        }
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n",
            L, T, cell * cols, cell * rows);
    for (r = 0; r < rows; r++) {
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">", L - 6.0, T + cell * (r + 0.5) + 4.0);
        if (opts.row_names) nn__svg_text(f, opts.row_names[r]);
        else fprintf(f, "%d", r);
        fprintf(f, "</text>\n");
    }
    for (c = 0; c < cols; c++) {
        fprintf(f, "<text transform=\"translate(%g,%g) rotate(-45)\" text-anchor=\"end\">",
                L + cell * (c + 0.5) + 4.0, T + cell * rows + 12.0); /* slanted down-left */
        if (opts.col_names) nn__svg_text(f, opts.col_names[c]);
        else fprintf(f, "%d", c);
        fprintf(f, "</text>\n");
    }
    if (opts.ylabel) {
        fprintf(f, "<text transform=\"translate(16,%g) rotate(-90)\" text-anchor=\"middle\">", T + cell * rows / 2.0);
        nn__svg_text(f, opts.ylabel);
        fprintf(f, "</text>\n");
    }
    if (opts.xlabel) {
        fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">", L + cell * cols / 2.0, H - 8.0);
        nn__svg_text(f, opts.xlabel);
        fprintf(f, "</text>\n");
    }
    /* the colour scale */
    for (i = 0; i < 10; i++) {
        double t = (9 - i) / 9.0;
        fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"14\" height=\"%g\" fill=\"rgb(%d,%d,%d)\"/>\n",
                L + cell * cols + 20.0, T + i * cell * rows / 10.0, cell * rows / 10.0,
                (int)(247.0 - t * 239.0), (int)(251.0 - t * 203.0), (int)(255.0 - t * 148.0));
    }
    fprintf(f, "<text x=\"%g\" y=\"%g\">%.3g</text>\n", L + cell * cols + 38.0, T + 10.0, hi);
    fprintf(f, "<text x=\"%g\" y=\"%g\">%.3g</text>\n", L + cell * cols + 38.0, T + cell * rows, lo);
    return nn__svg_close("nn_heatmap_svg", path, f);
}

/* ----- the LR range test ----- */

static size_t nn__snapshot_copy(nn_module *m, unsigned char *buf, int to_module);

NNDEF nn_status nn_lr_find(nn_optim *o, nn_lr_find_fn fn, void *user, nn_lr_find_opts opts,
                           nn_lr_find_result *out) {
    nn_optim *b = nn__optim_base(o);
    double start, end, beta, diverge, avg = 0.0, best = HUGE_VAL, lr0;
    size_t state_size, total;
    unsigned char *state = NULL, *saved = NULL;
    int n, i, k;
    if (!b || !fn || !out) {
        nn__misuse("nn_lr_find: needs an optimizer, a function and a result");
        return NN_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    start = nn__optv(opts.start_lr, 1e-7);
    end = nn__optv(opts.end_lr, 10.0);
    n = opts.num_steps > 0 ? opts.num_steps : 100;
    beta = nn__optv(opts.smoothing, 0.98);
    diverge = nn__optv(opts.diverge, 4.0);
    if (!(end > start) || n < 2 || beta >= 1.0) {
        nn__misuse("nn_lr_find: needs end_lr > start_lr > 0, num_steps >= 2 and smoothing < 1");
        return NN_ERR_ARG;
    }
    /* Save the weights, buffers (running statistics) and optimizer state:
       the test must not train the model. */
    total = nn__snapshot_copy(b->module, NULL, 0);
    state_size = nn_optim_state_write(o, NULL, NULL, 0);
    state = (unsigned char *)nn__malloc(state_size);
    saved = (unsigned char *)nn__malloc(total);
    out->lr = (float *)nn__calloc((size_t)n, sizeof(float));
    out->loss = (float *)nn__calloc((size_t)n, sizeof(float));
    out->smoothed = (float *)nn__calloc((size_t)n, sizeof(float));
    if (!state || !saved || !out->lr || !out->loss || !out->smoothed) {
        nn__free(state);
        nn__free(saved);
        nn_lr_find_free(out);
        return NN_ERR_OOM;
    }
    nn_optim_state_write(o, NULL, state, state_size);
    nn__snapshot_copy(b->module, saved, 0);
    lr0 = b->lr;
    for (i = 0; i < n; i++) {
        double lr = start * pow(end / start, (double)i / (double)(n - 1)), loss, sm;
        nn__optim_set_lr_d(o, lr);
        nn_zero_grad(o);
        loss = (double)fn(user);
        if (!(loss == loss) || fabs(loss) > 1e30) break;
        nn_step(o);
        avg = beta * avg + (1.0 - beta) * loss;
        sm = avg / (1.0 - pow(beta, (double)(i + 1)));
        out->lr[i] = (float)lr;
        out->loss[i] = (float)loss;
        out->smoothed[i] = (float)sm;
        out->n = i + 1;
        if (sm < best) {
            best = sm;
            out->best = i;
        }
        if (i > 0 && sm > diverge * best) break;
    }
    /* restore */
    nn__snapshot_copy(b->module, saved, 1);
    nn_optim_state_read(o, NULL, state, state_size);
    b->lr = lr0;
    nn_zero_grad(o);
    nn__free(state);
    nn__free(saved);
    if (out->n == 0) return nn__error(NN_ERR_ARG, "nn_lr_find: the first loss was not finite");
    /* the steepest fall of the smoothed loss per log-lr, up to the minimum */
    out->lr_min_div10 = out->lr[out->best] / 10.0f;
    out->suggestion = out->lr_min_div10;
    {
        double steepest = HUGE_VAL;
        for (k = 1; k <= out->best && k + 1 < out->n; k++) {
            double slope = ((double)out->smoothed[k + 1] - (double)out->smoothed[k - 1]) /
                           (log((double)out->lr[k + 1]) - log((double)out->lr[k - 1]));
            if (slope < steepest) {
                steepest = slope;
                out->suggestion = out->lr[k];
            }
        }
    }
    return NN_OK;
}

NNDEF void nn_lr_find_free(nn_lr_find_result *r) {
    if (!r) return;
    nn__free(r->lr);
    nn__free(r->loss);
    nn__free(r->smoothed);
    memset(r, 0, sizeof *r);
}

NNDEF nn_status nn_lr_find_write_csv(const nn_lr_find_result *r, const char *path) {
    FILE *f;
    int i;
    if (!r || !path) {
        nn__misuse("nn_lr_find_write_csv: NULL result or path");
        return NN_ERR_ARG;
    }
    if (!(f = fopen(path, "w"))) return nn__error(NN_ERR_IO, "nn_lr_find_write_csv: %s: cannot open", path);
    fprintf(f, "lr,loss,smoothed\n");
    for (i = 0; i < r->n; i++)
        fprintf(f, "%.6g,%.6g,%.6g\n", (double)r->lr[i], (double)r->loss[i], (double)r->smoothed[i]);
    if (fclose(f) != 0) return nn__error(NN_ERR_IO, "nn_lr_find_write_csv: %s: write failed", path);
    return NN_OK;
}

NNDEF nn_status nn_lr_find_write_svg(const nn_lr_find_result *r, const char *path) {
    nn_plot_series s[2];
    nn_plot_opts po;
    char title[128];
    if (!r || !path) {
        nn__misuse("nn_lr_find_write_svg: NULL result or path");
        return NN_ERR_ARG;
    }
    s[0].name = "smoothed";
    s[0].x = r->lr;
    s[0].y = r->smoothed;
    s[0].n = r->n;
    s[1].name = "raw loss";
    s[1].x = r->lr;
    s[1].y = r->loss;
    s[1].n = r->n;
    memset(&po, 0, sizeof po);
    snprintf(title, sizeof title, "LR range test (suggested lr %.3g)", (double)r->suggestion);
    po.title = title;
    po.xlabel = "learning rate";
    po.ylabel = "training loss";
    po.logx = 1;
    po.mark_x = r->suggestion;
    return nn_plot_svg(path, s, 2, po);
}

/* ----- snapshot ensembles ----- */

struct nn_snapshots {
    nn_module *m;
    int max, count, next, cap; /* cap: slots of snap allocated (they grow to max as needed) */
    size_t nbytes;
    unsigned char **snap;
    unsigned char *backup;
};

/* Copy the module's parameters and buffers into a flat buffer, or back. */
typedef struct nn__copy_ctx {
    unsigned char *buf;
    size_t off;
    int to_module;
} nn__copy_ctx;

static void nn__copy_tensor(nn_tensor *t, void *u) {
    nn__copy_ctx *c = (nn__copy_ctx *)u;
    size_t nb = nn__tensor_nbytes(t);
    if (c->to_module) memcpy(t->data, c->buf + c->off, nb);
    else if (c->buf) memcpy(c->buf + c->off, t->data, nb);
    c->off += nb;
}

/* Copy every parameter and buffer of m (each shared one once) into buf, or
   back into m (to_module); lr_find and snapshots share it.  Returns the
   bytes (buf NULL: just counts). */
static size_t nn__snapshot_copy(nn_module *m, unsigned char *buf, int to_module) {
    nn__copy_ctx c;
    c.buf = buf;
    c.off = 0;
    c.to_module = to_module;
    if (!m) return 0;
    nn__each_tensor(m, 0, nn__copy_tensor, &c);
    nn__each_tensor(m, 1, nn__copy_tensor, &c);
    return c.off;
}

NNDEF nn_snapshots *nn_snapshots_new(nn_module *m, int max_count) {
    nn_snapshots *s;
    if (!m || max_count < 0) {
        nn__misuse("nn_snapshots_new: needs a module and max_count >= 0");
        return NULL;
    }
    if (!(s = (nn_snapshots *)nn__calloc(1, sizeof(nn_snapshots)))) return NULL;
    s->m = m;
    s->max = max_count ? max_count : 8;
    s->nbytes = nn__snapshot_copy(m, NULL, 0);
    s->cap = NN__MIN(s->max, 8); /* a huge max_count costs nothing until used */
    s->snap = (unsigned char **)nn__calloc((size_t)s->cap, sizeof(unsigned char *));
    s->backup = (unsigned char *)nn__malloc(s->nbytes);
    if (!s->snap || !s->backup) {
        nn_snapshots_free(s);
        return NULL;
    }
    return s;
}

NNDEF nn_status nn_snapshot_take(nn_snapshots *s) {
    int k;
    if (!s) {
        nn__misuse("nn_snapshot_take: NULL snapshots");
        return NN_ERR_ARG;
    }
    if (nn__snapshot_copy(s->m, NULL, 0) != s->nbytes) {
        nn__misuse("nn_snapshot_take: the module's parameters or buffers changed since nn_snapshots_new");
        return NN_ERR_ARG;
    }
    k = s->next;
    if (k >= s->cap) { /* only while filling: then next == count == cap */
        int cap = s->cap > s->max / 2 ? s->max : 2 * s->cap;
        unsigned char **grown = (unsigned char **)NN_REALLOC(s->snap, (size_t)cap * sizeof(unsigned char *));
        if (!grown) return nn__error(NN_ERR_OOM, "nn_snapshot_take: out of memory");
        memset(grown + s->cap, 0, (size_t)(cap - s->cap) * sizeof(unsigned char *));
        s->snap = grown;
        s->cap = cap;
    }
    if (!s->snap[k] && !(s->snap[k] = (unsigned char *)nn__malloc(s->nbytes))) return NN_ERR_OOM;
    nn__snapshot_copy(s->m, s->snap[k], 0);
    s->next = (k + 1) % s->max;
    if (s->count < s->max) s->count++;
    return NN_OK;
}

NNDEF int nn_snapshot_count(const nn_snapshots *s) { return s ? s->count : 0; }

NNDEF nn_tensor *nn_snapshot_predict(nn_snapshots *s, nn_tensor *x) {
    nn_tensor *avg = NULL;
    int k, was = 1;
    if (!s || !x || !s->count || !x->graph) {
        nn__misuse("nn_snapshot_predict: needs snapshots (take at least one) and an input in a graph");
        return NULL;
    }
    if (nn__snapshot_copy(s->m, NULL, 0) != s->nbytes) {
        nn__misuse("nn_snapshot_predict: the module's parameters or buffers changed since nn_snapshots_new");
        return NULL;
    }
    was = nn_set_grad_enabled(x->graph, 0);
    nn__train_save(s->m);
    nn_train_mode(s->m, 0); /* evaluation: no dropout, running statistics */
    nn__snapshot_copy(s->m, s->backup, 0);
    for (k = 0; k < s->count; k++) {
        nn_tensor *y;
        size_t rows, cols, r, c;
        nn__snapshot_copy(s->m, s->snap[k], 1);
        y = nn_forward(s->m, x);
        if (!y) break;
        if (!avg && !(avg = nn_zeros(x->graph, nn_shape_of(y)))) break;
        cols = y->ndim ? (size_t)y->shape[y->ndim - 1] : 1;
        rows = cols ? y->numel / cols : 0;
        for (r = 0; r < rows; r++) { /* softmax of the row (in place), averaged in */
            float *yr = y->data + r * cols, *ar = avg->data + r * cols;
            nn__softmax_line(yr, yr, (int)cols, 1, 0);
            for (c = 0; c < cols; c++) ar[c] += yr[c] / (float)s->count;
        }
    }
    nn__snapshot_copy(s->m, s->backup, 1);
    nn__train_restore(s->m);
    nn_set_grad_enabled(x->graph, was);
    return avg;
}

NNDEF void nn_snapshots_free(nn_snapshots *s) {
    int k;
    if (!s) return;
    if (s->snap)
        for (k = 0; k < s->cap; k++) nn__free(s->snap[k]);
    nn__free(s->snap);
    nn__free(s->backup);
    nn__free(s);
}



NNDEF float nn_accuracy(nn_module *m, const nn_dataset *ds, nn_graph *g, nn_loader_opts opts) {
    nn_loader *ld;
    nn_tensor *x, *out;
    const int *y;
    int *pred, n, i, correct = 0, total = 0, had_grad;
    nn_graph *cur;
    if (!m || !ds || !g) {
        nn__misuse("nn_accuracy: NULL %s", !m ? "module" : !ds ? "dataset" : "graph");
        return -1.0f;
    }
    if (!ds->y) {
        nn__misuse("nn_accuracy: the dataset has no class labels (regression targets only)");
        return -1.0f;
    }
    opts.shuffle = 0;
    opts.drop_last = 0;
    if (opts.batch_size == 0) opts.batch_size = 1000;
    if (!(ld = nn_loader_new(ds, opts))) return -1.0f;
    if (!(pred = (int *)nn__malloc(sizeof(int) * (size_t)opts.batch_size))) {
        nn_loader_free(ld);
        return -1.0f;
    }
    nn__train_save(m);   /* each module's own flag, put back below */
    cur = nn_current_graph(); /* restored after: the caller's step keeps its graph */
    nn_train_mode(m, 0);
    had_grad = nn_set_grad_enabled(g, 0);
    while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
        out = nn_forward(m, x);
        if (!out || out->ndim != 2 || out->shape[0] != n) {
            nn__misuse("nn_accuracy: the module's output %s is not [batch, classes] for batch %d",
                       nn__ts(out), n);
            total = 0;
            break;
        }
        nn_argmax_rows(out, pred);
        for (i = 0; i < n; i++) correct += pred[i] == y[i];
        total += n;
    }
    if (n < 0) total = 0; /* the loader failed: no accuracy over part of ds */
    nn_graph_reset(g);
    nn_set_grad_enabled(g, had_grad);
    nn_set_current_graph(cur);
    nn__train_restore(m);
    nn__free(pred);
    nn_loader_free(ld);
    return total ? (float)correct / (float)total : -1.0f;
}

/* ----- >>train.fit: the training loop, progress, early stopping, logs ----- */

/* Is the stream a terminal?  POSIX and Windows; elsewhere never. */
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#if !defined(__cplusplus) && !defined(fileno)
extern int fileno(FILE *); /* POSIX; <stdio.h> hides it under -std=c99 */
#endif
#define NN__ISATTY(f) isatty(fileno(f))
#elif defined(_WIN32)
#include <io.h>
#define NN__ISATTY(f) _isatty(_fileno(f))
#else
#define NN__ISATTY(f) 0
#endif

/* --- early stopping: pure functions of the curves --- */

/* v beats best by more than delta in mode (NN_MODE_MIN or _MAX). */
static int nn__es_better(double v, double best, int mode, double delta) {
    return mode == NN_MODE_MAX ? v > best + delta : v < best - delta;
}

NNDEF int nn_best_epoch(const float *values, int n, int mode, float min_delta) {
    int i, best = -1;
    double d = fabs((double)min_delta);
    if (n < 1 || !values) return -1;
    for (i = 0; i < n; i++) {
        double v = (double)values[i];
        if (!(v == v)) continue;
        if (best < 0 || nn__es_better(v, (double)values[best], mode, d)) best = i;
    }
    return best;
}

/* Prechelt's generalization loss at epoch n (1-based): 100 (E(n)/min E - 1). */
static double nn__es_gl(const float *e, int n) {
    double opt = HUGE_VAL;
    int i;
    for (i = 0; i < n; i++)
        if ((double)e[i] < opt) opt = (double)e[i];
    return opt > 0.0 && opt < HUGE_VAL ? 100.0 * ((double)e[n - 1] / opt - 1.0) : 0.0;
}

NNDEF int nn_early_stop_check(const nn_early_stop *r, const float *monitor, const float *train,
                              int n) {
    int k, s, j;
    if (!r || (n > 0 && !monitor)) {
        nn__misuse("nn_early_stop_check: NULL rule or monitor values");
        return 0;
    }
    if (r->rule < NN_STOP_NONE || r->rule > NN_STOP_UP) {
        nn__misuse("nn_early_stop_check: unknown rule %d", r->rule);
        return 0;
    }
    if (r->rule >= NN_STOP_GL && r->mode == NN_MODE_MAX) {
        nn__misuse("nn_early_stop_check: Prechelt's GL, PQ and UP watch an error to minimize "
                   "(mode NN_MODE_MAX given)");
        return 0;
    }
    if (r->rule == NN_STOP_PQ && n > 0 && !train) {
        nn__misuse("nn_early_stop_check: PQ needs the training losses");
        return 0;
    }
    if (n < 1 || r->rule == NN_STOP_NONE) return 0;
    k = r->strip > 0 ? r->strip : 5;
    switch (r->rule) {
    case NN_STOP_PATIENCE: {
        int best = nn_best_epoch(monitor, n, r->mode, r->min_delta);
        int patience = r->patience > 0 ? r->patience : r->patience < 0 ? 0 : 10;
        return best >= 0 && n - 1 - best >= patience;
    }
    case NN_STOP_GL:
        return nn__es_gl(monitor, n) > nn__optv(r->alpha, 5.0);
    case NN_STOP_PQ: {
        double sum = 0.0, mn = HUGE_VAL, p, gl;
        if (n % k != 0) return 0;
        for (j = n - k; j < n; j++) {
            sum += (double)train[j];
            if ((double)train[j] < mn) mn = (double)train[j];
        }
        gl = nn__es_gl(monitor, n);
        p = mn > 0.0 ? 1000.0 * (sum / ((double)k * mn) - 1.0) : 0.0;
        if (!(p > 0.0)) return gl > 0.0; /* no training progress: any loss of generalization */
        return gl / p > nn__optv(r->alpha, 0.5);
    }
    default: /* NN_STOP_UP */
        s = r->strips > 0 ? r->strips : 3;
        if (n % k != 0 || n - s * k < 1) return 0;
        for (j = 0; j < s; j++) {
            int t = n - j * k; /* 1-based strip end */
            if (!(monitor[t - 1] > monitor[t - k - 1])) return 0;
        }
        return 1;
    }
}

/* --- the history --- */

static nn_status nn__history_grow(nn_history *h, int cap) {
    float **arr[6];
    int i;
    if (cap <= h->cap) return NN_OK;
    arr[0] = &h->train_loss; arr[1] = &h->val_loss; arr[2] = &h->train_metric;
    arr[3] = &h->val_metric; arr[4] = &h->lr; arr[5] = &h->seconds;
    for (i = 0; i < 6; i++) {
        float *p = (float *)NN_REALLOC(*arr[i], (size_t)cap * sizeof(float));
        if (!p) return nn__error(NN_ERR_OOM, "nn_fit: out of memory for the history");
        *arr[i] = p;
    }
    h->cap = cap;
    return NN_OK;
}

NNDEF void nn_history_free(nn_history *h) {
    if (!h) return;
    nn__free(h->train_loss);
    nn__free(h->val_loss);
    nn__free(h->train_metric);
    nn__free(h->val_metric);
    nn__free(h->lr);
    nn__free(h->seconds);
    nn__free(h);
}

NNDEF nn_status nn_history_write_csv(const nn_history *h, const char *path) {
    FILE *f;
    int e, bad;
    const char *mn;
    if (!h || !path) {
        nn__misuse("nn_history_write_csv: NULL history or path");
        return NN_ERR_ARG;
    }
    mn = h->metric && h->metric[0] ? h->metric : "metric";
    if (!(f = fopen(path, "w"))) return nn__error(NN_ERR_IO, "nn_history_write_csv: %s: cannot open", path);
    fprintf(f, "epoch,train_loss,val_loss,train_%s,val_%s,lr,seconds\n", mn, mn);
    for (e = 0; e < h->epochs; e++)
        fprintf(f, "%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.3f\n", e + 1, (double)h->train_loss[e],
                (double)h->val_loss[e], (double)h->train_metric[e], (double)h->val_metric[e],
                (double)h->lr[e], (double)h->seconds[e]);
    bad = ferror(f);
    if ((fclose(f) != 0) | bad) return nn__error(NN_ERR_IO, "nn_history_write_csv: %s: write failed", path);
    return NN_OK;
}

NNDEF nn_status nn_history_write_svg(const nn_history *h, const char *path) {
    nn_plot_series s[5];
    nn_plot_panel p[3];
    float *ep;
    int e, np = 0, n, has_val = 0, has_metric;
    nn_status st;
    char ml[64];
    if (!h || !path) {
        nn__misuse("nn_history_write_svg: NULL history or path");
        return NN_ERR_ARG;
    }
    n = h->epochs;
    if (!(ep = (float *)nn__malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)))) return NN_ERR_OOM;
    for (e = 0; e < n; e++) {
        ep[e] = (float)(e + 1);
        has_val |= h->val_loss[e] == h->val_loss[e];
    }
    has_metric = h->metric && h->metric[0];
    memset(s, 0, sizeof s);
    memset(p, 0, sizeof p);
    s[0].name = "train"; s[0].x = ep; s[0].y = h->train_loss; s[0].n = n;
    s[1].name = "validation"; s[1].x = ep; s[1].y = h->val_loss; s[1].n = n;
    s[2].name = "train"; s[2].x = ep; s[2].y = h->train_metric; s[2].n = n;
    s[3].name = "validation"; s[3].x = ep; s[3].y = h->val_metric; s[3].n = n;
    s[4].name = "lr"; s[4].x = ep; s[4].y = h->lr; s[4].n = n;
    p[np].series = s; p[np].nseries = has_val ? 2 : 1;
    p[np].opts.title = "loss"; p[np].opts.xlabel = "epoch"; p[np].opts.ylabel = "loss";
    p[np].opts.dashed = 2u; p[np].opts.markers = n <= 40; p[np].opts.width = 520; p[np].opts.height = 360;
    p[np].opts.mark_x = h->best_epoch >= 0 ? (float)(h->best_epoch + 1) : 0.0f; /* the best epoch */
    np++;
    if (has_metric) {
        snprintf(ml, sizeof ml, "%s", h->metric);
        p[np] = p[0];
        p[np].series = s + 2;
        p[np].opts.title = ml;
        p[np].opts.ylabel = ml;
        np++;
    }
    p[np] = p[0];
    p[np].series = s + 4;
    p[np].nseries = 1;
    p[np].opts.title = "learning rate";
    p[np].opts.ylabel = "lr";
    p[np].opts.logy = 1;
    p[np].opts.dashed = 0u;
    np++;
    st = nn_plot_figure_svg(path, p, np, np);
    nn__free(ep);
    return st;
}

/* --- metric accumulators (nn_fit's running metrics; >>train.metrics too) --- */

typedef struct nn__macc {
    double n, correct, abs, sq;  /* samples, hits; |e| and e^2 sums over all values */
    double *st, *st2, *sse;      /* per output: sum t, sum t^2, sum e^2 */
    int k;                       /* outputs */
} nn__macc;

static void nn__macc_reset(nn__macc *a) {
    int j;
    a->n = a->correct = a->abs = a->sq = 0.0;
    for (j = 0; j < a->k; j++) a->st[j] = a->st2[j] = a->sse[j] = 0.0;
}

/* Hits of rows of scores [n, C]: the label among the k largest (fewer than k
   scores strictly above it). */
static int nn__topk_hits(const float *scores, const int *labels, int n, int C, int k) {
    int i, c, hits = 0;
    for (i = 0; i < n; i++) {
        const float *r = scores + (size_t)i * (size_t)C;
        int above = 0, y = labels[i];
        if (y < 0 || y >= C) continue;
        for (c = 0; c < C; c++) above += r[c] > r[y];
        hits += above < k;
    }
    return hits;
}

/* Regression sums of n rows of k outputs. */
static void nn__macc_reg(nn__macc *a, const float *pred, const float *target, int n) {
    int i, j;
    for (i = 0; i < n; i++)
        for (j = 0; j < a->k; j++) {
            double t = (double)target[(size_t)i * a->k + j], e = (double)pred[(size_t)i * a->k + j] - t;
            a->abs += fabs(e);
            a->sq += e * e;
            a->st[j] += t;
            a->st2[j] += t * t;
            a->sse[j] += e * e;
        }
    a->n += n;
}

static double nn__macc_value(const nn__macc *a, nn_metric metric) {
    double tot = a->n * (double)a->k, r2 = 0.0;
    int j;
    if (a->n <= 0.0) return (double)NAN;
    switch (metric) {
    case NN_METRIC_ACCURACY:
    case NN_METRIC_TOPK: return a->correct / a->n;
    case NN_METRIC_MAE: return a->abs / tot;
    case NN_METRIC_RMSE: return sqrt(a->sq / tot);
    case NN_METRIC_R2:
        for (j = 0; j < a->k; j++) {
            double sst = a->st2[j] - a->st[j] * a->st[j] / a->n;
            if (sst > 1e-12 * (a->st2[j] + 1e-30)) r2 += 1.0 - a->sse[j] / sst;
            else r2 += a->sse[j] == 0.0 ? 1.0 : 0.0;
        }
        return r2 / (double)a->k;
    default: return (double)NAN;
    }
}

/* --- nn_fit --- */

typedef struct nn__fit {
    nn_fit_opts o;
    nn_module *m;
    nn_optim *opt;
    FILE *f;                 /* progress stream */
    int bar;                 /* the live bar */
    int topk, has_val, sched_epoch, mode;
    nn_metric metric;
    char mname[16];
    nn__macc acc;
    double t_epoch, t_draw;
} nn__fit;

static nn_tensor *nn__fit_loss(nn__fit *F, nn_tensor *out, const int *y, nn_tensor *t) {
    if (F->o.loss_fn) return F->o.loss_fn(out, y, t, F->o.loss_user);
    if (F->o.loss == NN_FIT_MSE) {
        if (!t) {
            nn__misuse("nn_fit: NN_FIT_MSE needs float targets in the dataset");
            return NULL;
        }
        return nn_mse(out, t);
    }
    if (!y) {
        nn__misuse("nn_fit: cross-entropy needs class labels in the dataset");
        return NULL;
    }
    return nn_cross_entropy(out, y, F->o.ce);
}

/* Add a batch's outputs to the running metric. */
static int nn__fit_metric_add(nn__fit *F, nn_tensor *out, const int *y, nn_tensor *t, int n) {
    nn__macc *a = &F->acc;
    if (F->metric == NN_METRIC_NONE) return 1;
    if (F->metric == NN_METRIC_ACCURACY || F->metric == NN_METRIC_TOPK) {
        int C = out->ndim == 2 ? out->shape[1] : 0;
        if (!y || out->ndim != 2 || out->shape[0] != n) {
            nn__misuse("nn_fit: the %s metric needs labels and an output [batch, classes] (got %s)",
                       F->mname, nn__ts(out));
            return 0;
        }
        a->correct += nn__topk_hits(out->data, y, n, C, F->metric == NN_METRIC_TOPK ? F->topk : 1);
        a->n += n;
        return 1;
    }
    if (!t || out->numel != t->numel || (int)(t->numel / (size_t)n) != a->k) {
        nn__misuse("nn_fit: the %s metric needs the output %s to match the targets %s",
                   F->mname, nn__ts(out), nn__ts(t));
        return 0;
    }
    nn__macc_reg(a, out->data, t->data, n);
    return 1;
}

/* Loss and metric of m on ds in evaluation mode, no gradients. */
static nn_status nn__fit_eval(nn__fit *F, const nn_dataset *ds, nn_graph *g, float *loss, float *metric) {
    nn_loader_opts lo = F->o.loader;
    nn_loader *ld;
    nn_tensor *x, *t, *out, *l;
    const int *y;
    double sum = 0.0, cnt = 0.0;
    int n, had, ok = 1;
    lo.batch_size = F->o.eval_batch_size > 0 ? F->o.eval_batch_size : 1000;
    lo.shuffle = 0;
    lo.drop_last = 0;
    if (!(ld = nn_loader_new(ds, lo))) return NN_ERR_ARG;
    nn__train_save(F->m);
    nn_train_mode(F->m, 0);
    had = nn_set_grad_enabled(g, 0);
    nn__macc_reset(&F->acc);
    while (nn_graph_reset(g), (n = nn_loader_next_xy(ld, g, &x, &t, &y)) > 0) {
        if (!(out = nn_forward(F->m, x)) || !(l = nn__fit_loss(F, out, y, t)) ||
            !nn__fit_metric_add(F, out, y, t, n)) {
            ok = 0;
            break;
        }
        sum += (double)nn_item(l) * n;
        cnt += n;
    }
    nn_graph_reset(g);
    nn_set_grad_enabled(g, had);
    nn__train_restore(F->m);
    nn_loader_free(ld);
    if (!ok || n < 0) return n < 0 ? (nn_status)n : NN_ERR_ARG;
    *loss = cnt > 0.0 ? (float)(sum / cnt) : NAN;
    *metric = (float)nn__macc_value(&F->acc, F->metric);
    return NN_OK;
}

static void nn__fit_clock(char *buf, size_t size, double s) {
    int t = s > 0.0 && s < 359999.0 ? (int)(s + 0.5) : 0; /* under 100 hours */
    if (t >= 3600) snprintf(buf, size, "%d:%02d:%02d", t / 3600 % 100, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%02d:%02d", t / 60 % 60, t % 60);
}

/* The live line: epoch, bar, batches, running loss and metric, speed, time. */
static void nn__fit_draw(nn__fit *F, const nn_fit_state *s, double samples) {
    char bar[32], el[32], eta[32];
    double now = nn_time(), dt = now - F->t_epoch;
    int i, w = 20, fill = s->batches > 0 ? (int)((double)w * s->batch / s->batches) : 0;
    for (i = 0; i < w; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : '.');
    bar[w] = '\0';
    nn__fit_clock(el, sizeof el, dt);
    nn__fit_clock(eta, sizeof eta, s->batch > 0 ? dt / s->batch * (s->batches - s->batch) : 0.0);
    fprintf(F->f, "\repoch %d/%d [%s] %d/%d  loss %.4f", s->epoch, s->epochs, bar, s->batch,
            s->batches, (double)s->running_loss);
    if (F->metric != NN_METRIC_NONE) fprintf(F->f, "  %s %.4f", F->mname, (double)s->running_metric);
    fprintf(F->f, "  %.0f samples/s  %s<%s\033[K", dt > 0.0 ? samples / dt : 0.0, el, eta);
    fflush(F->f);
    F->t_draw = now;
}

/* The epoch's final line (the bar's last state, or a plain line). */
static void nn__fit_epoch_line(nn__fit *F, const nn_history *h, int e, int epochs) {
    int i = e - 1;
    if (F->bar) fprintf(F->f, "\repoch %d/%d [====================]", e, epochs);
    else fprintf(F->f, "epoch %d/%d", e, epochs);
    fprintf(F->f, "  loss %.4f", (double)h->train_loss[i]);
    if (F->metric != NN_METRIC_NONE) fprintf(F->f, "  %s %.4f", F->mname, (double)h->train_metric[i]);
    if (F->has_val) {
        fprintf(F->f, "  val_loss %.4f", (double)h->val_loss[i]);
        if (F->metric != NN_METRIC_NONE) fprintf(F->f, "  val_%s %.4f", F->mname, (double)h->val_metric[i]);
    }
    fprintf(F->f, "  lr %.3g  %.2fs%s\n", (double)h->lr[i], (double)h->seconds[i], F->bar ? "\033[K" : "");
    fflush(F->f);
}

/* The monitored curve (a column of the history). */
static const float *nn__fit_monitor(const nn__fit *F, const nn_history *h) {
    int val = F->has_val && (F->o.monitor == NN_MONITOR_VAL_LOSS || F->o.monitor == NN_MONITOR_VAL_METRIC);
    int metric = F->o.monitor == NN_MONITOR_VAL_METRIC || F->o.monitor == NN_MONITOR_TRAIN_METRIC;
    return metric ? (val ? h->val_metric : h->train_metric) : (val ? h->val_loss : h->train_loss);
}

/* Checkpoint pairs: the history as text, the best epoch. */
typedef struct nn__fit_resume {
    nn_history *h;
    int ok;
} nn__fit_resume;

static void nn__fit_on_user(const char *key, const char *value, void *arg) {
    nn__fit_resume *r = (nn__fit_resume *)arg;
    nn_history *h = r->h;
    if (strcmp(key, "fit.history") == 0) {
        const char *p = value;
        int rows = 0, j;
        char *end;
        for (j = 0; value[j]; j++) rows += value[j] == ';';
        if (nn__history_grow(h, h->cap > rows ? h->cap : rows) != NN_OK) return;
        h->epochs = 0;
        while (*p && h->epochs < rows) {
            float *col[6];
            int e = h->epochs;
            col[0] = h->train_loss; col[1] = h->val_loss; col[2] = h->train_metric;
            col[3] = h->val_metric; col[4] = h->lr; col[5] = h->seconds;
            for (j = 0; j < 6; j++) {
                col[j][e] = strtof(p, &end);
                if (end == p) return;
                p = end;
                if (*p == ',' || *p == ';') p++;
            }
            h->epochs++;
        }
        r->ok = h->epochs == rows;
    } else if (strcmp(key, "fit.best") == 0) {
        h->best_epoch = atoi(value);
    }
}

static nn_status nn__fit_save(nn__fit *F, const char *path, nn_history *h, nn_sched *s, nn_loader *ld,
                              long step, int module_only) {
    nn_checkpoint c;
    nn_meta meta[2];
    char best[32], *txt;
    size_t cap = (size_t)h->epochs * 6 * 18 + 2, off = 0;
    int e, j;
    nn_status st;
    memset(&c, 0, sizeof c);
    c.module = F->m;
    c.rng = F->o.loader.rng;
    c.epoch = h->epochs;
    if (module_only) return nn_checkpoint_save(path, &c);
    if (!(txt = (char *)nn__malloc(cap))) return NN_ERR_OOM;
    txt[0] = '\0';
    for (e = 0; e < h->epochs; e++) {
        const float *col[6];
        col[0] = h->train_loss; col[1] = h->val_loss; col[2] = h->train_metric;
        col[3] = h->val_metric; col[4] = h->lr; col[5] = h->seconds;
        for (j = 0; j < 6; j++)
            off += (size_t)snprintf(txt + off, cap - off, "%.9g%c", (double)col[j][e], j == 5 ? ';' : ',');
    }
    snprintf(best, sizeof best, "%d", h->best_epoch);
    meta[0].key = "fit.history";
    meta[0].value = txt;
    meta[1].key = "fit.best";
    meta[1].value = best;
    c.optim = F->opt;
    c.sched = s;
    c.loader = ld;
    c.step = step;
    c.user = meta;
    c.nuser = 2;
    st = nn_checkpoint_save(path, &c);
    nn__free(txt);
    return st;
}

static int nn__fit_file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

NNDEF nn_history *nn_fit(nn_module *m, nn_optim *o, const nn_dataset *train, nn_fit_opts opts) {
    nn__fit F;
    nn_history *h = NULL;
    nn_dataset tr_split, va_split, te_split;
    const nn_dataset *tr = train, *va = opts.val;
    nn_loader *ld = NULL;
    nn_graph *g = NULL, *cur = nn_current_graph();
    nn_loader_opts lo;
    nn_early_stop rule;
    unsigned char *best = NULL;
    size_t best_bytes = 0;
    nn_status st = NN_OK;
    nn_fit_state fs;
    int epochs, epoch, acc_n, restore, split = 0, stop = 0, ntargets;
    long step = 0;
    double *sums = NULL;

    memset(&F, 0, sizeof F);
    memset(&tr_split, 0, sizeof tr_split);
    memset(&va_split, 0, sizeof va_split);
    if (!m || !o || !train) {
        nn__misuse("nn_fit: NULL %s", !m ? "module" : !o ? "optimizer" : "training set");
        return NULL;
    }
    if (opts.epochs < 0 || opts.batch_size < 0 || opts.accumulate < 0 || opts.val_split < 0.0f ||
        opts.val_split >= 1.0f || !(opts.val_split == opts.val_split) || opts.checkpoint_every < 0 ||
        opts.progress < NN_PROGRESS_AUTO || opts.progress > NN_PROGRESS_QUIET ||
        opts.monitor < NN_MONITOR_VAL_LOSS || opts.monitor > NN_MONITOR_TRAIN_METRIC ||
        (unsigned)opts.metric > (unsigned)NN_METRIC_R2 || opts.topk < 0 ||
        (opts.loss != NN_FIT_CROSS_ENTROPY && opts.loss != NN_FIT_MSE)) {
        nn__misuse("nn_fit: bad options (epochs %d, batch_size %d, accumulate %d, val_split %g, "
                   "checkpoint_every %d, progress %d, monitor %d, metric %d, topk %d, loss %d)",
                   opts.epochs, opts.batch_size, opts.accumulate, (double)opts.val_split,
                   opts.checkpoint_every, opts.progress, opts.monitor, (int)opts.metric, opts.topk,
                   (int)opts.loss);
        return NULL;
    }
    F.o = opts;
    F.m = m;
    F.opt = o;
    epochs = opts.epochs > 0 ? opts.epochs : 10;
    acc_n = opts.accumulate > 0 ? opts.accumulate : 1;
    F.topk = opts.topk > 0 ? opts.topk : 5;
    F.metric = opts.metric;
    if (F.metric == NN_METRIC_AUTO)
        F.metric = train->y && opts.loss != NN_FIT_MSE ? NN_METRIC_ACCURACY
                 : train->targets ? NN_METRIC_RMSE : NN_METRIC_NONE;
    if ((F.metric == NN_METRIC_ACCURACY || F.metric == NN_METRIC_TOPK) && !train->y) {
        nn__misuse("nn_fit: the accuracy metrics need class labels in the dataset");
        return NULL;
    }
    if (F.metric >= NN_METRIC_MAE && !train->targets) {
        nn__misuse("nn_fit: the regression metrics need float targets in the dataset");
        return NULL;
    }
    switch (F.metric) {
    case NN_METRIC_ACCURACY: strcpy(F.mname, "accuracy"); break;
    case NN_METRIC_TOPK: snprintf(F.mname, sizeof F.mname, "top%d", F.topk); break;
    case NN_METRIC_MAE: strcpy(F.mname, "mae"); break;
    case NN_METRIC_RMSE: strcpy(F.mname, "rmse"); break;
    case NN_METRIC_R2: strcpy(F.mname, "r2"); break;
    default: F.mname[0] = '\0'; break;
    }
    /* the monitor's direction */
    F.mode = NN_MODE_MIN;
    if ((opts.monitor == NN_MONITOR_VAL_METRIC || opts.monitor == NN_MONITOR_TRAIN_METRIC)) {
        if (F.metric == NN_METRIC_NONE) {
            nn__misuse("nn_fit: the monitor is a metric but the metric is NN_METRIC_NONE");
            return NULL;
        }
        if (F.metric == NN_METRIC_ACCURACY || F.metric == NN_METRIC_TOPK || F.metric == NN_METRIC_R2)
            F.mode = NN_MODE_MAX;
    }
    rule = opts.stop;
    rule.mode = F.mode;
    if (rule.rule < NN_STOP_NONE || rule.rule > NN_STOP_UP ||
        (rule.rule >= NN_STOP_GL && F.mode == NN_MODE_MAX)) {
        if (rule.rule >= NN_STOP_GL && rule.rule <= NN_STOP_UP)
            nn__misuse("nn_fit: stop rule %d (Prechelt's GL, PQ, UP) needs a monitor to minimize, "
                       "not %s", rule.rule, F.mname);
        else
            nn__misuse("nn_fit: stop rule %d is unknown", rule.rule);
        return NULL;
    }
    F.sched_epoch = opts.sched_per_epoch;
    if (opts.sched) {
        const nn_sched *s = opts.sched;
        if (s->kind == NN__S_WARMUP && s->then) s = s->then;
        if (s->kind == NN__S_PLATEAU || s->kind == NN__S_BATCH) F.sched_epoch = 1;
    }
    /* the validation set */
    if (!va && opts.val_split > 0.0f) {
        if (opts.stratified && !train->y) {
            nn__misuse("nn_fit: a stratified split needs class labels");
            return NULL;
        }
        if ((st = nn_dataset_split(train, opts.val_split, 0.0f, opts.split_seed, opts.stratified,
                                   &tr_split, &va_split, &te_split)) != NN_OK)
            return NULL;
        nn_dataset_free(&te_split); /* empty: test_frac 0 */
        split = 1;
        tr = &tr_split;
        va = va_split.n > 0 ? &va_split : NULL;
    }
    F.has_val = va != NULL;
    /* progress */
    F.f = opts.stream ? (FILE *)opts.stream : stderr;
    F.bar = opts.progress == NN_PROGRESS_BAR ||
            (opts.progress == NN_PROGRESS_AUTO && NN__ISATTY(F.f));
    /* state */
    ntargets = tr->targets ? tr->ntargets : 0;
    F.acc.k = ntargets;
    lo = opts.loader;
    lo.batch_size = opts.batch_size > 0 ? opts.batch_size : 64;
    lo.shuffle = !opts.no_shuffle;
    lo.drop_last = opts.drop_last;
    restore = opts.restore_best > 0 ||
              (opts.restore_best == 0 && (rule.rule != NN_STOP_NONE || opts.best_checkpoint));
    if (!(h = (nn_history *)nn__calloc(1, sizeof(nn_history))) || nn__history_grow(h, epochs) != NN_OK ||
        !(sums = (double *)nn__calloc((size_t)(3 * ntargets + 1), sizeof(double))) ||
        !(g = nn_graph_new()) || !(ld = nn_loader_new(tr, lo))) {
        st = NN_ERR_OOM;
        goto fail;
    }
    F.acc.st = sums;
    F.acc.st2 = sums + ntargets;
    F.acc.sse = sums + 2 * ntargets;
    h->metric = F.metric == NN_METRIC_ACCURACY ? "accuracy" : F.metric == NN_METRIC_TOPK ? "topk"
              : F.metric == NN_METRIC_MAE ? "mae" : F.metric == NN_METRIC_RMSE ? "rmse"
              : F.metric == NN_METRIC_R2 ? "r2" : "";
    h->best_epoch = -1;
    if (restore) {
        best_bytes = nn__snapshot_copy(m, NULL, 0);
        if (!(best = (unsigned char *)nn__malloc(best_bytes))) {
            st = NN_ERR_OOM;
            goto fail;
        }
    }
    /* resume */
    if (opts.resume && opts.checkpoint && nn__fit_file_exists(opts.checkpoint)) {
        nn_checkpoint c;
        nn__fit_resume r;
        if (best && opts.best_checkpoint && nn__fit_file_exists(opts.best_checkpoint)) {
            memset(&c, 0, sizeof c);
            c.module = m;
            if ((st = nn_checkpoint_load(opts.best_checkpoint, &c)) != NN_OK) goto fail;
            nn__snapshot_copy(m, best, 0);
        }
        memset(&c, 0, sizeof c);
        r.h = h;
        r.ok = 0;
        c.module = m;
        c.optim = o;
        c.sched = opts.sched;
        c.loader = ld;
        c.rng = opts.loader.rng;
        c.on_user = nn__fit_on_user;
        c.arg = &r;
        if ((st = nn_checkpoint_load(opts.checkpoint, &c)) != NN_OK) goto fail;
        if (!r.ok || h->epochs != (int)c.epoch) {
            st = nn__error(NN_ERR_FORMAT, "nn_fit: %s: not a checkpoint written by nn_fit (no history)",
                           opts.checkpoint);
            goto fail;
        }
        step = c.step;
        if (best && !(opts.best_checkpoint && nn__fit_file_exists(opts.best_checkpoint)))
            nn__snapshot_copy(m, best, 0);
    }
    if (nn__history_grow(h, epochs) != NN_OK) {
        st = NN_ERR_OOM;
        goto fail;
    }
    memset(&fs, 0, sizeof fs);
    fs.epochs = epochs;
    fs.history = h;
    fs.module = m;
    fs.optim = o;
    nn_train_mode(m, 1);
    for (epoch = h->epochs + 1; epoch <= epochs && !stop; epoch++) {
        double loss_sum = 0.0, seen = 0.0;
        int n, b = 0, pending = 0, e;
        nn_tensor *x, *t, *out, *loss;
        const int *y;
        const float *mon;
        F.t_epoch = nn_time();
        F.t_draw = -1.0;
        nn__macc_reset(&F.acc);
        fs.epoch = epoch;
        while (nn_graph_reset(g), (n = nn_loader_next_xy(ld, g, &x, &t, &y)) > 0) {
            float lv;
            if (b == 0) fs.batches = nn_loader_batches(ld);
            b++;
            if (pending == 0) nn_zero_grad(o);
            if (!(out = nn_forward(m, x)) || !(loss = nn__fit_loss(&F, out, y, t))) {
                st = NN_ERR_ARG;
                goto fail;
            }
            if (loss->numel != 1) {
                nn__misuse("nn_fit: the loss %s is not a scalar", nn__ts(loss));
                st = NN_ERR_ARG;
                goto fail;
            }
            lv = nn_item(loss);
            if (!(lv == lv) || fabsf(lv) > 3e38f) {
                st = nn__error(NN_ERR_ARG, "nn_fit: the loss is %g at epoch %d, batch %d", (double)lv, epoch, b);
                goto fail;
            }
            if (acc_n > 1) loss = nn_mul_scalar(loss, 1.0f / (float)acc_n);
            if ((st = nn_backward(loss)) != NN_OK) goto fail;
            if (!nn__fit_metric_add(&F, out, y, t, n)) {
                st = NN_ERR_ARG;
                goto fail;
            }
            if (++pending == acc_n) {
                if (opts.clip_value > 0.0f) nn_clip_grad_value(o, opts.clip_value);
                if (opts.clip_norm > 0.0f) nn_clip_grad_norm(o, opts.clip_norm);
                nn_step(o);
                step++;
                pending = 0;
                if (opts.sched && !F.sched_epoch) nn_sched_step(opts.sched);
            }
            loss_sum += (double)lv * n;
            seen += n;
            fs.batch = b;
            fs.step = step;
            fs.loss = lv;
            fs.running_loss = (float)(loss_sum / seen);
            fs.running_metric = (float)nn__macc_value(&F.acc, F.metric);
            if (F.bar && opts.progress != NN_PROGRESS_QUIET &&
                (F.t_draw < 0.0 || nn_time() - F.t_draw >= 0.1 || b == fs.batches))
                nn__fit_draw(&F, &fs, seen);
            if (opts.on_batch && opts.on_batch(&fs, opts.user)) {
                stop = 1;
                h->stopped_by_callback = 1;
                break;
            }
        }
        if (n < 0) {
            st = (nn_status)n;
            goto fail;
        }
        if (pending > 0) { /* the epoch's last, partial accumulation */
            if (opts.clip_value > 0.0f) nn_clip_grad_value(o, opts.clip_value);
            if (opts.clip_norm > 0.0f) nn_clip_grad_norm(o, opts.clip_norm);
            nn_step(o);
            step++;
            if (opts.sched && !F.sched_epoch) nn_sched_step(opts.sched);
        }
        if (seen == 0.0) break; /* a callback stopped before the first batch ended */
        e = h->epochs;
        h->train_loss[e] = (float)(loss_sum / seen);
        h->train_metric[e] = (float)nn__macc_value(&F.acc, F.metric);
        h->val_loss[e] = h->val_metric[e] = NAN;
        if (va && (st = nn__fit_eval(&F, va, g, &h->val_loss[e], &h->val_metric[e])) != NN_OK) goto fail;
        h->seconds[e] = (float)(nn_time() - F.t_epoch);
        h->epochs = e + 1;
        mon = nn__fit_monitor(&F, h);
        h->lr[e] = nn_get_lr(o); /* the rate of the epoch's last step */
        if (opts.sched && F.sched_epoch) nn_sched_step_metric(opts.sched, mon[e]);
        {
            int bi = nn_best_epoch(mon, h->epochs, F.mode, rule.rule == NN_STOP_PATIENCE ? rule.min_delta : 0.0f);
            if (bi == e) {
                if (best) nn__snapshot_copy(m, best, 0);
                if (opts.best_checkpoint && (st = nn__fit_save(&F, opts.best_checkpoint, h, NULL, NULL, step, 1)) != NN_OK)
                    goto fail;
            }
            h->best_epoch = bi;
        }
        if (opts.progress != NN_PROGRESS_QUIET) nn__fit_epoch_line(&F, h, epoch, epochs);
        if (rule.rule != NN_STOP_NONE && nn_early_stop_check(&rule, mon, h->train_loss, h->epochs)) {
            stop = 1;
            h->stopped_epoch = epoch;
        }
        if (opts.on_epoch && opts.on_epoch(&fs, opts.user)) {
            stop = 1;
            h->stopped_by_callback = 1;
        }
        if ((opts.csv_log && (st = nn_history_write_csv(h, opts.csv_log)) != NN_OK) ||
            (opts.svg && (st = nn_history_write_svg(h, opts.svg)) != NN_OK))
            goto fail;
        if (opts.checkpoint && (epoch % (opts.checkpoint_every > 0 ? opts.checkpoint_every : 1) == 0 ||
                                epoch == epochs || stop) &&
            (st = nn__fit_save(&F, opts.checkpoint, h, opts.sched, ld, step, 0)) != NN_OK)
            goto fail;
    }
    if (best && h->best_epoch >= 0 && h->best_epoch != h->epochs - 1) {
        nn__snapshot_copy(m, best, 1);
        h->restored = 1;
    }
    if (opts.progress != NN_PROGRESS_QUIET) {
        const char *names[] = {"", "patience", "GL", "PQ", "UP"};
        if (h->stopped_epoch)
            fprintf(F.f, "early stopping (%s) after epoch %d\n", names[rule.rule], h->stopped_epoch);
        if (h->restored)
            fprintf(F.f, "restored the best weights: epoch %d\n", h->best_epoch + 1);
        fflush(F.f);
    }
    nn_train_mode(m, 1);
    nn_loader_free(ld);
    nn_graph_free(g);
    nn_set_current_graph(cur);
    nn__free(best);
    nn__free(sums);
    if (split) {
        nn_dataset_free(&tr_split);
        nn_dataset_free(&va_split);
    }
    return h;
fail:
    if (F.bar && opts.progress != NN_PROGRESS_QUIET) fprintf(F.f, "\n");
    nn_loader_free(ld);
    nn_graph_free(g);
    nn_set_current_graph(cur);
    nn__free(best);
    nn__free(sums);
    nn_history_free(h);
    if (split) {
        nn_dataset_free(&tr_split);
        nn_dataset_free(&va_split);
    }
    (void)st;
    return NULL;
}

/* ----- >>train.metrics: metrics and the model summary --------------------- */

NNDEF float nn_topk_accuracy(const float *scores, const int *labels, int n, int C, int k) {
    if (!scores || !labels || n < 1 || C < 1 || k < 1) {
        nn__misuse("nn_topk_accuracy: needs scores, labels, n >= 1, C >= 1 and k >= 1 "
                   "(got n %d, C %d, k %d)", n, C, k);
        return -1.0f;
    }
    return (float)nn__topk_hits(scores, labels, n, C, k) / (float)n;
}

NNDEF void nn_confusion_add(int *cm, int C, const int *labels, const int *pred, int n) {
    int i;
    if (!cm || C < 1 || n < 0 || (n > 0 && (!labels || !pred))) {
        nn__misuse("nn_confusion_add: needs a matrix, C >= 1 and n >= 0 labels and predictions "
                   "(got C %d, n %d)", C, n);
        return;
    }
    for (i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= C || pred[i] < 0 || pred[i] >= C) {
            nn__misuse("nn_confusion_add: pair %d (label %d, prediction %d) is outside [0, %d)", i,
                       labels[i], pred[i], C);
            return;
        }
        cm[(size_t)labels[i] * (size_t)C + (size_t)pred[i]]++;
    }
}

NNDEF nn_status nn_confusion_matrix(nn_module *m, const nn_dataset *ds, nn_graph *g,
                                    nn_loader_opts opts, int *cm) {
    nn_loader *ld;
    nn_tensor *x, *out;
    const int *y;
    int *pred, n, had, C, ok = 1;
    nn_graph *cur;
    if (!m || !ds || !g || !cm || !ds->y || ds->nclasses < 1) {
        nn__misuse("nn_confusion_matrix: needs a module, a labelled dataset, a graph and a matrix");
        return NN_ERR_ARG;
    }
    C = ds->nclasses;
    memset(cm, 0, sizeof(int) * (size_t)C * (size_t)C);
    opts.shuffle = 0;
    opts.drop_last = 0;
    if (opts.batch_size == 0) opts.batch_size = 1000;
    if (!(ld = nn_loader_new(ds, opts))) return NN_ERR_ARG;
    if (!(pred = (int *)nn__malloc(sizeof(int) * (size_t)opts.batch_size))) {
        nn_loader_free(ld);
        return NN_ERR_OOM;
    }
    nn__train_save(m);
    cur = nn_current_graph();
    nn_train_mode(m, 0);
    had = nn_set_grad_enabled(g, 0);
    while (nn_graph_reset(g), (n = nn_loader_next(ld, g, &x, &y)) > 0) {
        out = nn_forward(m, x);
        if (!out || out->ndim != 2 || out->shape[0] != n || out->shape[1] > C) {
            nn__misuse("nn_confusion_matrix: the module's output %s is not [batch, classes <= %d] "
                       "for batch %d", nn__ts(out), C, n);
            ok = 0;
            break;
        }
        nn_argmax_rows(out, pred);
        nn_confusion_add(cm, C, y, pred, n);
    }
    nn_graph_reset(g);
    nn_set_grad_enabled(g, had);
    nn_set_current_graph(cur);
    nn__train_restore(m);
    nn__free(pred);
    nn_loader_free(ld);
    return !ok ? NN_ERR_ARG : n < 0 ? (nn_status)n : NN_OK;
}

static int nn__digits(long v) {
    int d = v < 0 ? 2 : 1;
    for (v = v < 0 ? -v : v; v >= 10; v /= 10) d++;
    return d;
}

NNDEF void nn_confusion_print(const int *cm, int C, const char *const *names, void *stream) {
    FILE *f = stream ? (FILE *)stream : stdout;
    int i, j, w = 4, wn = 10;
    char buf[32];
    if (!cm || C < 1) {
        nn__misuse("nn_confusion_print: needs a matrix and C >= 1 (got %d)", C);
        return;
    }
    for (i = 0; i < C * C; i++) w = NN__MAX(w, nn__digits(cm[i]));
    for (i = 0; i < C; i++) {
        int l = names ? (int)strlen(names[i]) : nn__digits(i);
        wn = NN__MAX(wn, l);
        w = NN__MAX(w, NN__MIN(l, 12));
    }
    fprintf(f, "%*s", wn, "true\\pred");
    for (j = 0; j < C; j++) {
        if (names) snprintf(buf, sizeof buf, "%.12s", names[j]);
        else snprintf(buf, sizeof buf, "%d", j);
        fprintf(f, " %*s", w, buf);
    }
    fprintf(f, "\n");
    for (i = 0; i < C; i++) {
        if (names) fprintf(f, "%*s", wn, names[i]);
        else fprintf(f, "%*d", wn, i);
        for (j = 0; j < C; j++) fprintf(f, " %*d", w, cm[(size_t)i * C + j]);
        fprintf(f, "\n");
    }
}

NNDEF nn_status nn_confusion_svg(const char *path, const int *cm, int C,
                                 const char *const *names, const char *title) {
    nn_heatmap_opts ho;
    float *v;
    int i;
    nn_status st;
    if (!path || !cm || C < 1) {
        nn__misuse("nn_confusion_svg: needs a path, a matrix and C >= 1 (got %d)", C);
        return NN_ERR_ARG;
    }
    if (!(v = (float *)nn__malloc(sizeof(float) * (size_t)C * (size_t)C))) return NN_ERR_OOM;
    for (i = 0; i < C * C; i++) v[i] = (float)cm[i];
    memset(&ho, 0, sizeof ho);
    ho.title = title ? title : "confusion matrix";
    ho.xlabel = "predicted";
    ho.ylabel = "true";
    ho.row_names = names;
    ho.col_names = names;
    ho.format = "%.0f";
    st = nn_heatmap_svg(path, v, C, C, ho);
    nn__free(v);
    return st;
}

NNDEF void nn_precision_recall_f1(const int *cm, int C, nn_prf *per_class, nn_prf *macro,
                                  nn_prf *micro) {
    double sp = 0.0, sr = 0.0, sf = 0.0, tp_all = 0.0, total = 0.0;
    int i, j;
    if (!cm || C < 1) {
        nn__misuse("nn_precision_recall_f1: needs a matrix and C >= 1 (got %d)", C);
        return;
    }
    for (i = 0; i < C; i++) {
        double tp = (double)cm[(size_t)i * C + i], col = 0.0, row = 0.0, p, r, f1;
        for (j = 0; j < C; j++) {
            col += (double)cm[(size_t)j * C + i];
            row += (double)cm[(size_t)i * C + j];
        }
        p = col > 0.0 ? tp / col : 0.0;
        r = row > 0.0 ? tp / row : 0.0;
        f1 = p + r > 0.0 ? 2.0 * p * r / (p + r) : 0.0;
        if (per_class) {
            per_class[i].precision = (float)p;
            per_class[i].recall = (float)r;
            per_class[i].f1 = (float)f1;
            per_class[i].support = (int)row;
        }
        sp += p;
        sr += r;
        sf += f1;
        tp_all += tp;
        total += row;
    }
    if (macro) {
        macro->precision = (float)(sp / C);
        macro->recall = (float)(sr / C);
        macro->f1 = (float)(sf / C);
        macro->support = (int)total;
    }
    if (micro) { /* every error is one false positive and one false negative */
        float a = total > 0.0 ? (float)(tp_all / total) : 0.0f;
        micro->precision = micro->recall = micro->f1 = a;
        micro->support = (int)total;
    }
}

NNDEF void nn_classification_report(const int *cm, int C, const char *const *names, void *stream) {
    FILE *f = stream ? (FILE *)stream : stdout;
    nn_prf *pc, mac, mic;
    double wp = 0.0, wr = 0.0, wf = 0.0;
    int i, wn = 12;
    if (!cm || C < 1) {
        nn__misuse("nn_classification_report: needs a matrix and C >= 1 (got %d)", C);
        return;
    }
    if (!(pc = (nn_prf *)nn__malloc(sizeof(nn_prf) * (size_t)C))) return;
    nn_precision_recall_f1(cm, C, pc, &mac, &mic);
    for (i = 0; i < C; i++) {
        if (names) wn = NN__MAX(wn, (int)strlen(names[i]));
        wp += (double)pc[i].precision * pc[i].support;
        wr += (double)pc[i].recall * pc[i].support;
        wf += (double)pc[i].f1 * pc[i].support;
    }
    fprintf(f, "%*s %10s %10s %10s %10s\n\n", wn, "", "precision", "recall", "f1-score", "support");
    for (i = 0; i < C; i++) {
        if (names) fprintf(f, "%*s", wn, names[i]);
        else fprintf(f, "%*d", wn, i);
        fprintf(f, " %10.4f %10.4f %10.4f %10d\n", (double)pc[i].precision, (double)pc[i].recall,
                (double)pc[i].f1, pc[i].support);
    }
    fprintf(f, "\n%*s %10s %10s %10.4f %10d\n", wn, "accuracy", "", "", (double)mic.f1, mic.support);
    fprintf(f, "%*s %10.4f %10.4f %10.4f %10d\n", wn, "macro avg", (double)mac.precision,
            (double)mac.recall, (double)mac.f1, mac.support);
    if (mic.support > 0)
        fprintf(f, "%*s %10.4f %10.4f %10.4f %10d\n", wn, "weighted avg", wp / mic.support,
                wr / mic.support, wf / mic.support, mic.support);
    nn__free(pc);
}

NNDEF nn_regression_metrics nn_regression_eval(const float *pred, const float *target, int n, int k) {
    nn_regression_metrics r;
    nn__macc a;
    double *sums;
    r.mae = r.rmse = r.r2 = NAN;
    if (!pred || !target || n < 1 || k < 1) {
        nn__misuse("nn_regression_eval: needs predictions, targets, n >= 1 and k >= 1 (got n %d, k %d)",
                   n, k);
        return r;
    }
    if (!(sums = (double *)nn__calloc((size_t)k * 3, sizeof(double)))) return r;
    memset(&a, 0, sizeof a);
    a.k = k;
    a.st = sums;
    a.st2 = sums + k;
    a.sse = sums + 2 * k;
    nn__macc_reg(&a, pred, target, n);
    r.mae = (float)nn__macc_value(&a, NN_METRIC_MAE);
    r.rmse = (float)nn__macc_value(&a, NN_METRIC_RMSE);
    r.r2 = (float)nn__macc_value(&a, NN_METRIC_R2);
    nn__free(sums);
    return r;
}

/* --- the model summary --- */

typedef struct nn__summary {
    nn_module **mods;        /* per row */
    nn_summary_row *rows;
    int n, cap;
    nn_module **uniq;        /* each module once, with its own forward */
    nn_forward_fn *orig;
    int nu;
    size_t output_bytes;
} nn__summary;
static NN__THREAD_LOCAL nn__summary *nn__sum_ctx = NULL;

static nn_tensor *nn__summary_fwd(nn_module *self, nn_tensor *x) {
    nn__summary *S = nn__sum_ctx;
    nn_tensor *y;
    int i, u = -1;
    for (i = 0; i < S->nu; i++)
        if (S->uniq[i] == self) u = i;
    if (u < 0) return NULL; /* cannot happen: every module of the tree is listed */
    y = S->orig[u](self, x);
    if (y)
        for (i = 0; i < S->n; i++)
            if (S->mods[i] == self && S->rows[i].out.ndim < 0) {
                int d;
                S->rows[i].out.ndim = y->ndim;
                for (d = 0; d < y->ndim; d++) S->rows[i].out.d[d] = y->shape[d];
                if (self->nchildren == 0) S->output_bytes += y->numel * sizeof(float);
            }
    return y;
}

/* Add m and its subtree in pre-order under the dotted name. */
static int nn__summary_walk(nn__summary *S, nn_module *m, const char *name, int depth) {
    nn_summary_row *r;
    nn_param *ps;
    int i, np, req = 0, all = 0;
    size_t len = strlen(name);
    if (S->n == S->cap) {
        int cap = S->cap ? 2 * S->cap : 16;
        nn_summary_row *nr = (nn_summary_row *)NN_REALLOC(S->rows, sizeof(nn_summary_row) * (size_t)cap);
        nn_module **nm;
        if (!nr) return 0;
        S->rows = nr;
        if (!(nm = (nn_module **)NN_REALLOC(S->mods, sizeof(nn_module *) * (size_t)cap))) return 0;
        S->mods = nm;
        S->cap = cap;
    }
    r = &S->rows[S->n];
    memset(r, 0, sizeof *r);
    if (!(r->name = (char *)nn__malloc(len + 1))) return 0;
    memcpy((char *)r->name, name, len + 1);
    S->mods[S->n++] = m;
    r->type = m->type ? m->type : "module";
    r->depth = depth;
    r->out.ndim = -1;
    r->params = nn_parameter_count(m);
    ps = nn_parameters(m, &np);
    for (i = 0; i < np; i++) {
        all++;
        req += nn_needs_grad(ps[i].tensor) != 0;
    }
    r->trainable = all == 0 ? -1 : req == all ? 1 : req == 0 ? 0 : 2;
    for (i = 0; i < S->nu; i++)
        if (S->uniq[i] == m) break;
    if (i == S->nu) {
        nn_module **nu = (nn_module **)NN_REALLOC(S->uniq, sizeof(nn_module *) * (size_t)(S->nu + 1));
        nn_forward_fn *no;
        if (!nu) return 0;
        S->uniq = nu;
        if (!(no = (nn_forward_fn *)NN_REALLOC(S->orig, sizeof(nn_forward_fn) * (size_t)(S->nu + 1)))) return 0;
        S->orig = no;
        S->uniq[S->nu] = m;
        S->orig[S->nu++] = m->forward;
    }
    for (i = 0; i < m->nchildren; i++) {
        char *child;
        size_t cl = strlen(m->child_names[i]);
        int ok;
        if (!(child = (char *)nn__malloc(len + cl + 2))) return 0;
        if (len) {
            memcpy(child, name, len);
            child[len] = '.';
            memcpy(child + len + 1, m->child_names[i], cl + 1);
        } else {
            memcpy(child, m->child_names[i], cl + 1);
        }
        ok = nn__summary_walk(S, m->children[i], child, depth + 1);
        nn__free(child);
        if (!ok) return 0;
    }
    return 1;
}

static void nn__fmt_count(char *buf, size_t size, size_t v) {
    char tmp[32];
    int len, i, o = 0;
    snprintf(tmp, sizeof tmp, "%lu", (unsigned long)v);
    len = (int)strlen(tmp);
    for (i = 0; i < len && (size_t)o + 2 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
}

NNDEF nn_status nn_summary_ex(nn_module *m, nn_shape input_shape, nn_summary_opts opts,
                              nn_summary_result *out) {
    nn__summary S;
    nn__summary *outer = nn__sum_ctx;
    nn_graph *g, *cur = nn_current_graph();
    nn_tensor *x, *y = NULL;
    FILE *f = opts.stream ? (FILE *)opts.stream : stdout;
    nn_param *ps;
    int i, np;
    size_t trainable = 0, fwd = 0, in_numel = 0;
    nn_status st = NN_OK;
    if (out) memset(out, 0, sizeof *out);
    if (!m) {
        nn__misuse("nn_summary: NULL module");
        return NN_ERR_ARG;
    }
    memset(&S, 0, sizeof S);
    if (!nn__summary_walk(&S, m, "", 0)) {
        st = NN_ERR_OOM;
        goto done;
    }
    if (!(g = nn_graph_new())) {
        st = NN_ERR_OOM;
        goto done;
    }
    x = nn_full(g, input_shape, 0.5f);
    if (x) {
        in_numel = x->numel;
        nn__train_save(m);
        nn_train_mode(m, 0);
        for (i = 0; i < S.nu; i++) S.uniq[i]->forward = nn__summary_fwd;
        nn__sum_ctx = &S;
        y = nn_forward(m, x);
        nn__sum_ctx = outer;
        for (i = 0; i < S.nu; i++) S.uniq[i]->forward = S.orig[i];
        nn__train_restore(m);
        fwd = nn__graph_used(g);
    }
    nn_graph_free(g);
    nn_set_current_graph(cur);
    if (!y) {
        st = NN_ERR_ARG; /* the misuse was reported by the op that failed */
        goto done;
    }
    ps = nn_parameters(m, &np);
    for (i = 0; i < np; i++)
        if (nn_needs_grad(ps[i].tensor)) trainable += ps[i].tensor->numel;
    if (!opts.quiet) {
        char sh[96], cnt[32], label[160];
        int wl = 28;
        for (i = 0; i < S.n; i++) {
            int l = 2 * S.rows[i].depth + (int)strlen(S.rows[i].name) + (int)strlen(S.rows[i].type) + 3;
            if (opts.max_depth <= 0 || S.rows[i].depth <= opts.max_depth) wl = NN__MAX(wl, NN__MIN(l, 60));
        }
        fprintf(f, "%-*s %-20s %12s  %s\n", wl, "Layer (type)", "Output shape", "Param #", "Trainable");
        for (i = 0; i < wl + 47; i++) fputc('=', f);
        fputc('\n', f);
        for (i = 0; i < S.n; i++) {
            const nn_summary_row *r = &S.rows[i];
            if (opts.max_depth > 0 && r->depth > opts.max_depth) continue;
            if (r->depth == 0) snprintf(label, sizeof label, "%s", r->type);
            else snprintf(label, sizeof label, "%*s%s (%s)", 2 * r->depth, "", r->name, r->type);
            if (r->out.ndim >= 0) nn_shape_str(r->out, sh, sizeof sh);
            else snprintf(sh, sizeof sh, "--");
            nn__fmt_count(cnt, sizeof cnt, r->params);
            fprintf(f, "%-*s %-20s %12s  %s\n", wl, label, sh, cnt,
                    r->trainable < 0 ? "--" : r->trainable == 1 ? "yes" : r->trainable == 0 ? "no" : "partly");
        }
        for (i = 0; i < wl + 47; i++) fputc('=', f);
        fputc('\n', f);
        nn__fmt_count(cnt, sizeof cnt, S.rows[0].params);
        fprintf(f, "Total params: %s\n", cnt);
        nn__fmt_count(cnt, sizeof cnt, trainable);
        fprintf(f, "Trainable params: %s\n", cnt);
        nn__fmt_count(cnt, sizeof cnt, S.rows[0].params - trainable);
        fprintf(f, "Non-trainable params: %s\n", cnt);
        fprintf(f, "Input size: %.3f MB\n", (double)in_numel * 4.0 / 1e6);
        fprintf(f, "Params and buffers size: %.3f MB\n", (double)nn__snapshot_copy(m, NULL, 0) / 1e6);
        fprintf(f, "Forward pass outputs (leaf layers): %.3f MB\n", (double)S.output_bytes / 1e6);
        fprintf(f, "Forward pass graph arena (with gradient records): %.3f MB\n", (double)fwd / 1e6);
    }
    if (out) {
        out->nrows = S.n;
        out->rows = S.rows;
        out->total_params = S.rows[0].params;
        S.rows = NULL;
        out->trainable_params = trainable;
        out->param_bytes = nn__snapshot_copy(m, NULL, 0);
        out->output_bytes = S.output_bytes;
        out->forward_bytes = fwd;
    }
done:
    if (S.rows) {
        for (i = 0; i < S.n; i++) nn__free((void *)S.rows[i].name);
        nn__free(S.rows);
    }
    nn__free(S.mods);
    nn__free(S.uniq);
    nn__free(S.orig);
    return st;
}

NNDEF nn_status nn_summary(nn_module *m, nn_shape input_shape) {
    nn_summary_opts o;
    memset(&o, 0, sizeof o);
    return nn_summary_ex(m, input_shape, o, NULL);
}

NNDEF void nn_summary_free(nn_summary_result *r) {
    int i;
    if (!r) return;
    for (i = 0; i < r->nrows; i++) nn__free((void *)r->rows[i].name);
    nn__free(r->rows);
    memset(r, 0, sizeof *r);
}

/* ----- >>train.tools: search, pruning, interactions, sanity checks -------- */

/* ----- lottery-ticket pruning ----- */

struct nn_pruner {
    nn_module *module;
    int n;                 /* pruned tensors */
    nn_tensor **w, **mask; /* n each; the masks are buffers of the module */
    char **names;          /* n dotted names */
    int nall;              /* every parameter, for the rewind point */
    nn_tensor **all;
    float **rewind;        /* nall copies */
    int global;
};

NNDEF void nn_pruner_free(nn_pruner *p) {
    int i;
    if (!p) return;
    for (i = 0; i < p->n; i++) nn__free(p->names ? p->names[i] : NULL);
    for (i = 0; i < p->nall; i++) nn__free(p->rewind ? p->rewind[i] : NULL);
    nn__free(p->w);
    nn__free(p->mask);
    nn__free(p->names);
    nn__free(p->all);
    nn__free(p->rewind);
    nn__free(p);
}

/* The mask buffer of parameter `name` (dotted) of m: the existing
   "<name>_mask" or a new one of ones on the owning module.  NULL on OOM. */
static nn_tensor *nn__prune_mask_for(nn_module *m, const char *name, nn_tensor *w) {
    const char *dot = strrchr(name, '.');
    char *full = nn__io_concat(name, "_mask", "");
    nn_module *owner = m;
    nn_tensor *mk;
    if (!full) return NULL;
    mk = nn_param_get(m, full);
    if (mk) {
        nn__free(full);
        if (mk->numel != w->numel || (mk->flags & NN_TENSOR_INT64)) {
            nn__misuse("nn_pruner_new: buffer \"%s_mask\" %s does not fit weight %s", name,
                       nn__ts(mk), nn__ts(w));
            return NULL;
        }
        return mk;
    }
    if (dot) {
        char *path = nn__io_concat(name, "", "");
        if (!path) {
            nn__free(full);
            return NULL;
        }
        path[dot - name] = 0;
        owner = nn_child(m, path);
        nn__free(path);
    }
    mk = owner ? nn_ones(NULL, nn_shape_of(w)) : NULL;
    if (mk && !nn_module_add_buffer(owner, full + (dot ? (size_t)(dot - name) + 1 : 0), mk)) mk = NULL;
    nn__free(full);
    return mk;
}

NNDEF nn_pruner *nn_pruner_new(nn_module *m, nn_prune_opts opts) {
    nn_pruner *p;
    nn_param *ps;
    int count, i, k;
    if (!m) {
        nn__misuse("nn_pruner_new: NULL module");
        return NULL;
    }
    ps = nn_parameters(m, &count);
    if (!(p = (nn_pruner *)nn__calloc(1, sizeof *p))) return NULL;
    p->module = m;
    p->global = opts.global;
    if (count > 0) {
        p->w = (nn_tensor **)nn__calloc((size_t)count, sizeof(nn_tensor *));
        p->mask = (nn_tensor **)nn__calloc((size_t)count, sizeof(nn_tensor *));
        p->names = (char **)nn__calloc((size_t)count, sizeof(char *));
        p->all = (nn_tensor **)nn__calloc((size_t)count, sizeof(nn_tensor *));
        p->rewind = (float **)nn__calloc((size_t)count, sizeof(float *));
        if (!p->w || !p->mask || !p->names || !p->all || !p->rewind) goto fail;
    }
    for (i = 0; i < count; i++) {
        const char *nm = ps[i].name, *dot = strrchr(nm, '.');
        nn_tensor *t = ps[i].tensor;
        int pick = opts.pattern ? nn__name_matches(nm, opts.pattern)
                                : t->ndim >= 2 && strcmp(dot ? dot + 1 : nm, "weight") == 0;
        p->all[p->nall] = t;
        if (!(p->rewind[p->nall] = (float *)nn__malloc(t->numel * sizeof(float)))) goto fail;
        memcpy(p->rewind[p->nall], t->data, t->numel * sizeof(float));
        p->nall++;
        if (pick) {
            p->w[p->n] = t;
            if (!(p->names[p->n] = nn__strdup(nm))) goto fail;
            p->n++;
        }
    }
    if (p->n == 0) {
        nn__misuse("nn_pruner_new: pattern \"%s\" matches no parameter of the %s (%d parameters)",
                   opts.pattern ? opts.pattern : "(weights with >= 2 dims)", m->type, count);
        goto fail;
    }
    /* The buffers go in after the loop: adding one rebuilds the list ps. */
    for (k = 0; k < p->n; k++)
        if (!(p->mask[k] = nn__prune_mask_for(m, p->names[k], p->w[k]))) goto fail;
    nn_prune_apply(p);
    return p;
fail:
    nn_pruner_free(p);
    return NULL;
}

NNDEF void nn_prune_apply(nn_pruner *p) {
    int i;
    size_t j;
    if (!p) return;
    for (i = 0; i < p->n; i++) {
        float *w = p->w[i]->data;
        const float *mk = p->mask[i]->data;
        for (j = 0; j < p->w[i]->numel; j++)
            if (mk[j] == 0.0f) w[j] = 0.0f;
    }
}

static void nn__prune_hook(nn_optim *o, void *user) {
    (void)o;
    nn_prune_apply((nn_pruner *)user);
}

NNDEF void nn_pruner_attach(nn_pruner *p, nn_optim *o) {
    if (!p || !o) {
        nn__misuse("nn_pruner_attach: needs a pruner and an optimizer");
        return;
    }
    nn_optim_set_step_hook(o, nn__prune_hook, p);
}

/* A candidate for pruning: |w|, then its place (tensor, index) for ties. */
typedef struct nn__prune_key {
    float a;
    int t;
    size_t j;
} nn__prune_key;
static int nn__prune_cmp(const void *x, const void *y) {
    const nn__prune_key *a = (const nn__prune_key *)x, *b = (const nn__prune_key *)y;
    if (a->a != b->a) return a->a < b->a ? -1 : 1;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    return a->j < b->j ? -1 : a->j > b->j;
}

/* Mask out round(amount * unmasked) of the unmasked entries of tensors
   lo..hi-1 together, smallest |w| first. */
static nn_status nn__prune_range(nn_pruner *p, int lo, int hi, float amount) {
    size_t total = 0, n = 0, k, c;
    nn__prune_key *keys;
    int i;
    for (i = lo; i < hi; i++)
        for (c = 0; c < p->mask[i]->numel; c++) total += p->mask[i]->data[c] != 0.0f;
    k = (size_t)((double)amount * (double)total + 0.5);
    if (k == 0) return NN_OK;
    if (!(keys = (nn__prune_key *)nn__malloc(total * sizeof *keys)))
        return nn__error(NN_ERR_OOM, "nn_prune_magnitude: out of memory ranking %zu weights", total);
    for (i = lo; i < hi; i++)
        for (c = 0; c < p->mask[i]->numel; c++)
            if (p->mask[i]->data[c] != 0.0f) {
                float v = p->w[i]->data[c];
                keys[n].a = v == v ? fabsf(v) : -1.0f;   /* a NaN goes first */
                keys[n].t = i;
                keys[n].j = c;
                n++;
            }
    qsort(keys, n, sizeof *keys, nn__prune_cmp);
    for (c = 0; c < k; c++) p->mask[keys[c].t]->data[keys[c].j] = 0.0f;
    nn__free(keys);
    nn_prune_apply(p);
    return NN_OK;
}

static int nn__prune_amount_ok(const char *fn, const nn_pruner *p, float amount) {
    if (!p || !(amount >= 0.0f && amount <= 1.0f)) {
        nn__misuse("%s: needs a pruner and an amount in [0,1], got %g", fn, (double)amount);
        return 0;
    }
    return 1;
}

NNDEF nn_status nn_prune_magnitude(nn_pruner *p, float amount) {
    int i;
    nn_status st = NN_OK;
    if (!nn__prune_amount_ok("nn_prune_magnitude", p, amount)) return NN_ERR_ARG;
    if (p->global) return nn__prune_range(p, 0, p->n, amount);
    for (i = 0; i < p->n && st == NN_OK; i++) st = nn__prune_range(p, i, i + 1, amount);
    return st;
}

NNDEF nn_status nn_prune_magnitude_layer(nn_pruner *p, int i, float amount) {
    if (!nn__prune_amount_ok("nn_prune_magnitude_layer", p, amount)) return NN_ERR_ARG;
    if (i < 0 || i >= p->n) {
        nn__misuse("nn_prune_magnitude_layer: tensor %d of %d", i, p->n);
        return NN_ERR_ARG;
    }
    return nn__prune_range(p, i, i + 1, amount);
}

NNDEF void nn_prune_set_rewind(nn_pruner *p) {
    int i;
    if (!p) return;
    for (i = 0; i < p->nall; i++) memcpy(p->rewind[i], p->all[i]->data, p->all[i]->numel * sizeof(float));
}

NNDEF void nn_prune_rewind(nn_pruner *p) {
    int i;
    if (!p) return;
    for (i = 0; i < p->nall; i++) memcpy(p->all[i]->data, p->rewind[i], p->all[i]->numel * sizeof(float));
    nn_prune_apply(p);
}

NNDEF void nn_prune_reinit(nn_pruner *p, uint64_t seed) {
    nn_rng *r;
    int i, k;
    if (!p) return;
    if (!(r = nn_rng_new(seed))) return;
    for (i = 0; i < p->nall; i++) {
        float *v = p->all[i]->data;
        size_t j, n = p->all[i]->numel;
        memcpy(v, p->rewind[i], n * sizeof(float));
        for (k = 0; k < p->n && p->w[k] != p->all[i]; k++) {}
        if (k < p->n)
            for (j = n; j > 1; j--) {   /* Fisher-Yates */
                size_t s = (size_t)nn_rng_below(r, (uint32_t)j);
                float t = v[j - 1];
                v[j - 1] = v[s];
                v[s] = t;
            }
    }
    nn_rng_free(r);
    nn_prune_apply(p);
}

NNDEF int nn_prune_count(const nn_pruner *p) { return p ? p->n : 0; }

NNDEF const char *nn_prune_name(const nn_pruner *p, int i) {
    if (!p || i < 0 || i >= p->n) {
        nn__misuse("nn_prune_name: tensor %d of %d", i, p ? p->n : 0);
        return NULL;
    }
    return p->names[i];
}

NNDEF float nn_prune_sparsity(const nn_pruner *p, int i) {
    size_t zero = 0, all = 0, j;
    int k;
    if (!p || i < -1 || i >= p->n) {
        nn__misuse("nn_prune_sparsity: tensor %d of %d", i, p ? p->n : 0);
        return -1.0f;
    }
    for (k = i < 0 ? 0 : i; k < (i < 0 ? p->n : i + 1); k++) {
        for (j = 0; j < p->mask[k]->numel; j++) zero += p->mask[k]->data[j] == 0.0f;
        all += p->mask[k]->numel;
    }
    return all ? (float)((double)zero / (double)all) : 0.0f;
}

NNDEF void nn_prune_print(const nn_pruner *p) {
    int i;
    char buf[64];
    if (!p) return;
    printf("%-24s %-14s %10s %9s\n", "tensor", "shape", "kept", "sparsity");
    for (i = 0; i < p->n; i++) {
        size_t kept = 0, j;
        for (j = 0; j < p->mask[i]->numel; j++) kept += p->mask[i]->data[j] != 0.0f;
        printf("%-24s %-14s %10zu %8.2f%%\n", p->names[i], nn_shape_str(nn_shape_of(p->w[i]), buf, sizeof buf),
               kept, 100.0 * (double)nn_prune_sparsity(p, i));
    }
    printf("%-24s %-14s %10s %8.2f%%\n", "total", "", "", 100.0 * (double)nn_prune_sparsity(p, -1));
}

/* ----- hyper-parameter search ----- */

NNDEF void nn_search_free(nn_search_result *r) {
    if (!r) return;
    nn__free(r->values);
    nn__free(r->scores);
    nn__free(r->budgets);
    nn__free(r->rounds);
    memset(r, 0, sizeof *r);
}

static int nn__search_check(const char *fn, const nn_hparam *space, int n, nn_objective_fn f,
                            nn_search_result *out) {
    int i, j;
    if (!space || n < 1 || n > NN_HP_MAX || !f || !out) {
        nn__misuse("%s: needs a space of 1..%d parameters, an objective and a result, got %d "
                   "parameters", fn, NN_HP_MAX, n);
        return 0;
    }
    for (i = 0; i < n; i++) {
        const nn_hparam *h = space + i;
        const char *nm = h->name ? h->name : "(unnamed)";
        int ok = h->name != NULL;
        switch (h->kind) {
        case NN_HP_UNIFORM: ok &= h->lo <= h->hi && isfinite(h->lo) && isfinite(h->hi); break;
        case NN_HP_LOG_UNIFORM: ok &= h->lo > 0.0 && h->lo <= h->hi && isfinite(h->hi); break;
        case NN_HP_INT:
            ok &= h->lo <= h->hi && h->lo == floor(h->lo) && h->hi == floor(h->hi) &&
                  h->hi - h->lo < 2147483647.0;
            break;
        case NN_HP_CHOICE: ok &= h->choices != NULL && h->nchoices >= 1; break;
        default: ok = 0;
        }
        for (j = 0; j < i && ok; j++) ok = strcmp(space[j].name, h->name) != 0;
        if (!ok) {
            nn__misuse("%s: parameter %d \"%s\" (kind %d, range %g..%g, %d choices) is not a valid "
                       "range (or its name repeats)", fn, i, nm, h->kind, h->lo, h->hi, h->nchoices);
            return 0;
        }
    }
    return 1;
}

/* A value of h at position u in [0,1] of its range (log ranges in log space). */
static double nn__hp_at(const nn_hparam *h, double u) {
    switch (h->kind) {
    case NN_HP_LOG_UNIFORM: return exp(log(h->lo) + u * (log(h->hi) - log(h->lo)));
    case NN_HP_INT: {
        double v = floor(h->lo + u * (h->hi - h->lo + 1.0));
        return v > h->hi ? h->hi : v;
    }
    case NN_HP_CHOICE: {
        int k = (int)(u * h->nchoices);
        return h->choices[k >= h->nchoices ? h->nchoices - 1 : k];
    }
    default: return h->lo + u * (h->hi - h->lo);
    }
}

/* The position in [0,1] of value v in h's range (inverse of nn__hp_at). */
static double nn__hp_pos(const nn_hparam *h, double v) {
    double span;
    switch (h->kind) {
    case NN_HP_LOG_UNIFORM:
        span = log(h->hi) - log(h->lo);
        return span > 0.0 ? (log(v) - log(h->lo)) / span : 0.5;
    case NN_HP_INT: return (v - h->lo + 0.5) / (h->hi - h->lo + 1.0);
    default:
        span = h->hi - h->lo;
        return span > 0.0 ? (v - h->lo) / span : 0.5;
    }
}

/* Whether score a beats b (NaN never beats anything; anything beats NaN). */
static int nn__search_better(double a, double b, int maximize) {
    if (a != a) return 0;
    if (b != b) return 1;
    return maximize ? a > b : a < b;
}

typedef struct nn__search_ctx {
    const nn_hparam *space;
    int n;
    nn_objective_fn f;
    void *user;
    nn_search_opts opts;
    nn_search_result *r;
    int cap;
} nn__search_ctx;

/* Room for m more trials. */
static nn_status nn__search_grow(nn__search_ctx *c, int m) {
    nn_search_result *r = c->r;
    int need = r->ntrials + m, cap;
    void *p;
    if (need <= c->cap) return NN_OK;
    cap = need > 2 * c->cap ? need : 2 * c->cap;
#define NN__SEARCH_RE(field, type, per)                                                     \
    if (!(p = NN_REALLOC(r->field, (size_t)cap * (per) * sizeof(type))))                    \
        return nn__error(NN_ERR_OOM, "nn_search: out of memory for %d trials", cap);        \
    r->field = (type *)p;
    NN__SEARCH_RE(values, double, (size_t)c->n)
    NN__SEARCH_RE(scores, double, 1)
    NN__SEARCH_RE(budgets, int, 1)
    NN__SEARCH_RE(rounds, int, 1)
#undef NN__SEARCH_RE
    c->cap = cap;
    return NN_OK;
}

/* Evaluate trials first..first+count-1 (values already set), with
   successive halving when asked: every trial at the smallest budget, the
   best 1/eta of them at eta times that, ..., the survivors at the full one. */
static nn_status nn__search_run(nn__search_ctx *c, int first, int count, int halving) {
    nn_search_result *r = c->r;
    int budget = c->opts.budget > 0 ? c->opts.budget : 1, eta = c->opts.eta > 1 ? c->opts.eta : 3;
    int rungs = 0, alive = count, i, k, b;
    int *order;
    if (count <= 0) return NN_OK;
    if (halving) {
        long cnt = count, bud = budget;
        while (cnt >= eta && bud >= eta) {
            cnt = (cnt + eta - 1) / eta;
            bud /= eta;
            rungs++;
        }
    }
    if (!(order = (int *)nn__malloc((size_t)count * sizeof(int)))) return NN_ERR_OOM;
    for (i = 0; i < count; i++) order[i] = first + i;
    for (k = rungs; k >= 0; k--) {
        long div = 1;
        for (i = 0; i < k; i++) div *= eta;
        b = (int)(budget / div);
        if (b < 1) b = 1;
        for (i = 0; i < alive; i++) {
            int t = order[i];
            r->scores[t] = c->f(r->values + (size_t)t * c->n, b, c->user);
            r->budgets[t] = b;
        }
        if (k == 0) break;
        /* Keep the best ceil(alive / eta): a stable insertion sort by score. */
        for (i = 1; i < alive; i++) {
            int t = order[i], j = i;
            while (j > 0 && nn__search_better(r->scores[t], r->scores[order[j - 1]], c->opts.maximize)) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = t;
        }
        alive = (alive + eta - 1) / eta;
    }
    nn__free(order);
    return NN_OK;
}

/* The best trial at the full budget (the first of equals), into r->best. */
static void nn__search_pick(nn__search_ctx *c) {
    nn_search_result *r = c->r;
    int budget = c->opts.budget > 0 ? c->opts.budget : 1, i, best = -1;
    for (i = 0; i < r->ntrials; i++)
        if (r->budgets[i] == budget && (best < 0 || nn__search_better(r->scores[i], r->scores[best],
                                                                      c->opts.maximize)))
            best = i;
    r->best = best;
    r->best_score = best >= 0 ? r->scores[best] : (double)NAN;
    for (i = 0; i < c->n; i++) r->best_values[i] = best >= 0 ? r->values[(size_t)best * c->n + i] : (double)NAN;
}

/* The refinement round and the report, after the first round's trials. */
static nn_status nn__search_finish(nn__search_ctx *c) {
    nn_search_result *r = c->r;
    nn_status st;
    nn__search_pick(c);
    if (c->opts.refine_trials > 0 && r->best >= 0) {
        double w = c->opts.refine_width > 0.0f ? (double)c->opts.refine_width : 0.25;
        int first = r->ntrials, t, i;
        nn_rng *rng;
        if ((st = nn__search_grow(c, c->opts.refine_trials)) != NN_OK) return st;
        if (!(rng = nn_rng_new(c->opts.seed ^ 0x9e3779b97f4a7c15ull))) return NN_ERR_OOM;
        for (t = 0; t < c->opts.refine_trials; t++) {
            double *v = r->values + (size_t)(first + t) * c->n;
            for (i = 0; i < c->n; i++) {
                const nn_hparam *h = c->space + i;
                double mid = nn__hp_pos(h, r->best_values[i]), lo = mid - w / 2, hi = mid + w / 2;
                if (h->kind == NN_HP_CHOICE) {
                    v[i] = r->best_values[i];
                    continue;
                }
                if (lo < 0.0) lo = 0.0;
                if (hi > 1.0) hi = 1.0;
                v[i] = nn__hp_at(h, lo + (hi - lo) * (double)nn_rng_uniform(rng));
            }
            r->rounds[first + t] = 1;
        }
        nn_rng_free(rng);
        r->ntrials += c->opts.refine_trials;
        if ((st = nn__search_run(c, first, c->opts.refine_trials, 0)) != NN_OK) return st;
        nn__search_pick(c);
    }
    if (!c->opts.quiet) nn_search_print(c->space, r);
    if (c->opts.csv_path) return nn_search_write_csv(c->space, r, c->opts.csv_path);
    return NN_OK;
}

static nn_status nn__search_start(nn__search_ctx *c, const char *fn, const nn_hparam *space, int n,
                                  nn_objective_fn f, void *user, nn_search_opts opts,
                                  nn_search_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!nn__search_check(fn, space, n, f, out)) return NN_ERR_ARG;
    memset(c, 0, sizeof *c);
    c->space = space;
    c->n = n;
    c->f = f;
    c->user = user;
    c->opts = opts;
    c->r = out;
    out->nparams = n;
    out->best = -1;
    return NN_OK;
}

NNDEF nn_status nn_random_search(const nn_hparam *space, int n, nn_objective_fn f, void *user,
                                 nn_search_opts opts, nn_search_result *out) {
    nn__search_ctx c;
    nn_rng *rng;
    int trials = opts.trials > 0 ? opts.trials : 16, t, i;
    nn_status st = nn__search_start(&c, "nn_random_search", space, n, f, user, opts, out);
    if (st != NN_OK) return st;
    if ((st = nn__search_grow(&c, trials)) != NN_OK) goto fail;
    if (!(rng = nn_rng_new(opts.seed))) {
        st = NN_ERR_OOM;
        goto fail;
    }
    for (t = 0; t < trials; t++) {
        for (i = 0; i < n; i++)
            out->values[(size_t)t * n + i] = nn__hp_at(space + i, (double)nn_rng_uniform(rng));
        out->rounds[t] = 0;
    }
    nn_rng_free(rng);
    out->ntrials = trials;
    if ((st = nn__search_run(&c, 0, trials, opts.halving)) != NN_OK) goto fail;
    if ((st = nn__search_finish(&c)) != NN_OK) goto fail;
    return NN_OK;
fail:
    nn_search_free(out);
    return st;
}

/* Points of range h in a grid of g points per range. */
static int nn__grid_count(const nn_hparam *h, int g) {
    if (h->kind == NN_HP_CHOICE) return h->nchoices;
    if (h->kind == NN_HP_INT && h->hi - h->lo + 1.0 < (double)g) return (int)(h->hi - h->lo + 1.0);
    return g;
}

NNDEF nn_status nn_grid_search(const nn_hparam *space, int n, nn_objective_fn f, void *user,
                               nn_search_opts opts, nn_search_result *out) {
    nn__search_ctx c;
    int g = opts.grid_points, cnt[NN_HP_MAX], idx[NN_HP_MAX], i, t;
    double total = 1.0;
    nn_status st = nn__search_start(&c, "nn_grid_search", space, n, f, user, opts, out);
    if (st != NN_OK) return st;
    if (g <= 0) {   /* the largest grid within opts.trials (16 by default) */
        int budget = opts.trials > 0 ? opts.trials : 16;
        for (g = 1;; g++) {
            double tot = 1.0;
            for (i = 0; i < n; i++) tot *= nn__grid_count(space + i, g + 1);
            if (tot > budget || g >= budget) break;
        }
    }
    for (i = 0; i < n; i++) {
        cnt[i] = nn__grid_count(space + i, g);
        total *= cnt[i];
        idx[i] = 0;
    }
    if (total > 1e7) {
        nn__misuse("nn_grid_search: the grid has %g points (%d per range)", total, g);
        nn_search_free(out);
        return NN_ERR_ARG;
    }
    if ((st = nn__search_grow(&c, (int)total)) != NN_OK) goto fail;
    for (t = 0; t < (int)total; t++) {
        for (i = 0; i < n; i++) {
            const nn_hparam *h = space + i;
            double v;
            if (h->kind == NN_HP_CHOICE) v = h->choices[idx[i]];
            else if (h->kind == NN_HP_INT && cnt[i] == (int)(h->hi - h->lo + 1.0)) v = h->lo + idx[i];
            else {
                double u = cnt[i] > 1 ? (double)idx[i] / (cnt[i] - 1) : 0.5;
                v = h->kind == NN_HP_INT ? floor(h->lo + u * (h->hi - h->lo) + 0.5) : nn__hp_at(h, u);
            }
            out->values[(size_t)t * n + i] = v;
        }
        out->rounds[t] = 0;
        for (i = n - 1; i >= 0; i--) {   /* the last parameter varies fastest */
            if (++idx[i] < cnt[i]) break;
            idx[i] = 0;
        }
    }
    out->ntrials = (int)total;
    if ((st = nn__search_run(&c, 0, (int)total, opts.halving)) != NN_OK) goto fail;
    if ((st = nn__search_finish(&c)) != NN_OK) goto fail;
    return NN_OK;
fail:
    nn_search_free(out);
    return st;
}

NNDEF double nn_search_value(const nn_hparam *space, int n, const double *values, const char *name) {
    int i;
    for (i = 0; space && values && name && i < n; i++)
        if (space[i].name && strcmp(space[i].name, name) == 0) return values[i];
    nn__misuse("nn_search_value: no parameter \"%s\" in the space", name ? name : "(NULL)");
    return (double)NAN;
}

NNDEF void nn_search_print(const nn_hparam *space, const nn_search_result *r) {
    int t, i;
    if (!space || !r) return;
    printf("%5s %5s %6s", "trial", "round", "budget");
    for (i = 0; i < r->nparams; i++) printf(" %12.12s", space[i].name);
    printf(" %12s\n", "score");
    for (t = 0; t < r->ntrials; t++) {
        printf("%5d %5d %6d", t, r->rounds[t], r->budgets[t]);
        for (i = 0; i < r->nparams; i++) printf(" %12.5g", r->values[(size_t)t * r->nparams + i]);
        printf(" %12.6g%s\n", r->scores[t], t == r->best ? "  <- best" : "");
    }
}

NNDEF nn_status nn_search_write_csv(const nn_hparam *space, const nn_search_result *r,
                                    const char *path) {
    FILE *f;
    int t, i, ok;
    if (!space || !r || !path) {
        nn__misuse("nn_search_write_csv: NULL argument");
        return NN_ERR_ARG;
    }
    if (!(f = fopen(path, "w")))
        return nn__error(NN_ERR_IO, "nn_search_write_csv: %s: cannot open for writing (%s)", path,
                         strerror(errno));
    fprintf(f, "trial,round,budget");
    for (i = 0; i < r->nparams; i++) fprintf(f, ",%s", space[i].name);
    fprintf(f, ",score\n");
    for (t = 0; t < r->ntrials; t++) {
        fprintf(f, "%d,%d,%d", t, r->rounds[t], r->budgets[t]);
        for (i = 0; i < r->nparams; i++) fprintf(f, ",%.17g", r->values[(size_t)t * r->nparams + i]);
        fprintf(f, ",%.17g\n", r->scores[t]);
    }
    ok = !ferror(f);
    ok &= fclose(f) == 0;
    return ok ? NN_OK : nn__error(NN_ERR_IO, "nn_search_write_csv: %s: write failed", path);
}

/* ----- interaction detection from weights (NID) ----- */

/* The linear layers' weights of mlp in order, checked to chain: W1 [h1,p],
   W2 [h2,h1], ..., W_out [o,hL].  Returns the number of layers (>= 2), 0
   after a misuse report. */
static int nn__nid_weights(const char *fn, nn_module *mlp, nn_tensor **ws, int cap) {
    nn_param *ps;
    int count, i, n = 0;
    if (!mlp) {
        nn__misuse("%s: NULL module", fn);
        return 0;
    }
    ps = nn_parameters(mlp, &count);
    for (i = 0; i < count; i++) {
        size_t ln = strlen(ps[i].name);
        if (ps[i].tensor->ndim != 2 || ln < 6 || strcmp(ps[i].name + ln - 6, "weight") != 0) continue;
        if (n == cap) {
            nn__misuse("%s: more than %d linear layers", fn, cap);
            return 0;
        }
        if (n > 0 && ps[i].tensor->shape[1] != ws[n - 1]->shape[0]) {
            nn__misuse("%s: weight \"%s\" %s does not follow the previous layer's %s", fn, ps[i].name,
                       nn__ts(ps[i].tensor), nn__ts(ws[n - 1]));
            return 0;
        }
        ws[n++] = ps[i].tensor;
    }
    if (n < 2) {
        nn__misuse("%s: the %s has %d linear layer(s); NID needs a hidden layer", fn, mlp->type, n);
        return 0;
    }
    return n;
}

/* z [h1]: each first-layer unit's influence on the output. */
static float *nn__nid_influence(nn_tensor **ws, int n) {
    int L = n - 1, k, a, b;
    const nn_tensor *wo = ws[L];
    float *z = (float *)nn__calloc((size_t)wo->shape[1], sizeof(float)), *nz;
    if (!z) return NULL;
    for (a = 0; a < wo->shape[0]; a++)
        for (b = 0; b < wo->shape[1]; b++) z[b] += fabsf(wo->data[(size_t)a * wo->shape[1] + b]);
    for (k = L - 1; k >= 1; k--) {   /* z <- z |W_k|, from [h_k] to [h_{k-1}] */
        const nn_tensor *w = ws[k];
        if (!(nz = (float *)nn__calloc((size_t)w->shape[1], sizeof(float)))) {
            nn__free(z);
            return NULL;
        }
        for (a = 0; a < w->shape[0]; a++)
            for (b = 0; b < w->shape[1]; b++) nz[b] += z[a] * fabsf(w->data[(size_t)a * w->shape[1] + b]);
        nn__free(z);
        z = nz;
    }
    return z;
}

static int nn__nid_cmp(const void *x, const void *y) {
    const nn_interaction *a = (const nn_interaction *)x, *b = (const nn_interaction *)y;
    if (a->strength != b->strength) return a->strength > b->strength ? -1 : 1;
    if (a->order != b->order) return a->order < b->order ? -1 : 1;
    return a->features < b->features ? -1 : a->features > b->features;
}

/* Fill the derived fields of a set. */
static void nn__nid_fill(nn_interaction *it) {
    int j, k = 0;
    it->i = it->j = -1;
    for (j = 0; j < 64; j++)
        if ((it->features >> j) & 1u) {
            if (k == 0) it->i = j;
            else if (k == 1) it->j = j;
            k++;
        }
    it->order = k;
}

NNDEF int nn_nid_pairwise(nn_module *mlp, nn_interaction *out, int max_out) {
    nn_tensor *ws[64];
    int n = nn__nid_weights("nn_nid_pairwise", mlp, ws, 64), p, h, i, j, u, total, k = 0;
    nn_interaction *all;
    float *z;
    if (!n) return -1;
    if (max_out > 0 && !out) {
        nn__misuse("nn_nid_pairwise: NULL output for %d entries", max_out);
        return -1;
    }
    h = ws[0]->shape[0];
    p = ws[0]->shape[1];
    if (p > 64 || p < 2) {
        nn__misuse("nn_nid_pairwise: %d inputs; 2..64 are supported", p);
        return -1;
    }
    total = p * (p - 1) / 2;
    if (!(z = nn__nid_influence(ws, n))) return -1;
    if (!(all = (nn_interaction *)nn__calloc((size_t)total, sizeof *all))) {
        nn__free(z);
        return -1;
    }
    for (i = 0; i < p; i++)
        for (j = i + 1; j < p; j++, k++) {
            double s = 0.0;
            for (u = 0; u < h; u++) {
                float a = fabsf(ws[0]->data[(size_t)u * p + i]), b = fabsf(ws[0]->data[(size_t)u * p + j]);
                s += (double)z[u] * (double)(a < b ? a : b);
            }
            all[k].features = (uint64_t)1 << i | (uint64_t)1 << j;
            all[k].strength = (float)s;
            nn__nid_fill(all + k);
        }
    qsort(all, (size_t)total, sizeof *all, nn__nid_cmp);
    if (max_out > 0) memcpy(out, all, (size_t)(max_out < total ? max_out : total) * sizeof *all);
    nn__free(all);
    nn__free(z);
    return total;
}

NNDEF int nn_nid_rank(nn_module *mlp, nn_interaction *out, int max_out) {
    nn_tensor *ws[64];
    int n = nn__nid_weights("nn_nid_rank", mlp, ws, 64), p, h, u, k, m = 0, c, order[64];
    nn_interaction *all;
    float *z;
    if (!n) return -1;
    if (max_out > 0 && !out) {
        nn__misuse("nn_nid_rank: NULL output for %d entries", max_out);
        return -1;
    }
    h = ws[0]->shape[0];
    p = ws[0]->shape[1];
    if (p > 64 || p < 2) {
        nn__misuse("nn_nid_rank: %d inputs; 2..64 are supported", p);
        return -1;
    }
    if (!(z = nn__nid_influence(ws, n))) return -1;
    if (!(all = (nn_interaction *)nn__calloc((size_t)h * (size_t)(p - 1), sizeof *all))) {
        nn__free(z);
        return -1;
    }
    for (u = 0; u < h; u++) {
        const float *w = ws[0]->data + (size_t)u * p;
        uint64_t set;
        for (k = 0; k < p; k++) order[k] = k;
        for (k = 1; k < p; k++) {   /* features by |w| descending (stable) */
            int t = order[k], j = k;
            while (j > 0 && fabsf(w[t]) > fabsf(w[order[j - 1]])) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = t;
        }
        set = (uint64_t)1 << order[0];
        for (k = 1; k < p; k++) {
            set |= (uint64_t)1 << order[k];
            for (c = 0; c < m && all[c].features != set; c++) {}
            if (c == m) {
                all[m].features = set;
                all[m].strength = 0.0f;
                m++;
            }
            all[c].strength += z[u] * fabsf(w[order[k]]);
        }
    }
    for (c = 0; c < m; c++) nn__nid_fill(all + c);
    qsort(all, (size_t)m, sizeof *all, nn__nid_cmp);
    if (max_out > 0) memcpy(out, all, (size_t)(max_out < m ? max_out : m) * sizeof *all);
    nn__free(all);
    nn__free(z);
    return m;
}

/* MLP-M: the univariate nets of every feature at once, as [N,p,h] tensors. */
typedef struct nn__mlpm_state {
    int p, h;
} nn__mlpm_state;

static nn_tensor *nn__mlpm_main_forward(nn_module *m, nn_tensor *x) {
    const nn__mlpm_state *st = (const nn__mlpm_state *)m->user;
    nn_tensor *w1 = nn_param_get(m, "w1"), *b1 = nn_param_get(m, "b1"), *w2 = nn_param_get(m, "w2"),
              *b2 = nn_param_get(m, "b2"), *t;
    if (!x || x->ndim != 2 || x->shape[1] != st->p) {
        nn__misuse("nn_nid_mlp_m: input %s is not [batch, %d]", nn__ts(x), st->p);
        return NULL;
    }
    /* g_j(x_j) = sum_k w2[j,k] relu(x_j w1[j,k] + b1[j,k]); summed over j, + b2. */
    t = nn_reshape(x, NN_SHAPE(x->shape[0], st->p, 1));
    t = nn_relu_op(nn_add(nn_mul(t, w1), b1));
    t = nn_sum_axis(nn_sum_axis(nn_mul(t, w2), 2, 0), 1, 1);
    return nn_add(t, b2);
}

static nn_tensor *nn__mlpm_forward(nn_module *m, nn_tensor *x) {
    return nn_add(nn_forward(m->children[0], x), nn_forward(m->children[1], x));
}

NNDEF nn_module *nn_nid_mlp_m(int p, const int *hidden, int nhidden, int main_hidden) {
    nn_module *mlp, *mm, *main;
    nn__mlpm_state *st;
    int i, k = 0, prev = p, ok = 1;
    float bound;
    if (p < 1 || !hidden || nhidden < 1 || nhidden > 30 || main_hidden < 1) {
        nn__misuse("nn_nid_mlp_m: needs p >= 1, 1..30 hidden sizes and main_hidden >= 1, got p=%d, "
                   "%d hidden, main_hidden=%d", p, nhidden, main_hidden);
        return NULL;
    }
    for (i = 0; i < nhidden; i++)
        if (hidden[i] < 1) {
            nn__misuse("nn_nid_mlp_m: hidden[%d] = %d", i, hidden[i]);
            return NULL;
        }
    if (!(mlp = nn_module_new("Sequential", nn__sequential_forward))) return NULL;
    for (i = 0; i <= nhidden && ok; i++) {   /* "0" linear, "1" ReLU, ..., the last linear */
        char name[16];
        int next = i < nhidden ? hidden[i] : 1;
        snprintf(name, sizeof name, "%d", k++);
        ok = nn_module_add_child(mlp, name, nn_linear(prev, next)) != NULL;
        prev = next;
        if (i == nhidden || !ok) break;
        snprintf(name, sizeof name, "%d", k++);
        ok = nn_module_add_child(mlp, name, nn_relu()) != NULL;
    }
    if (!ok) {
        nn_module_free(mlp);
        return NULL;
    }
    if (!(main = nn__module_with_state("MainEffects", nn__mlpm_main_forward, sizeof(nn__mlpm_state)))) {
        nn_module_free(mlp);
        return NULL;
    }
    st = (nn__mlpm_state *)main->user;
    st->p = p;
    st->h = main_hidden;
    bound = 1.0f / sqrtf((float)main_hidden);
    if (!nn_module_add_param(main, "w1", nn__uniform_param(NN_SHAPE(p, main_hidden), 1.0f)) ||
        !nn_module_add_param(main, "b1", nn__uniform_param(NN_SHAPE(p, main_hidden), 1.0f)) ||
        !nn_module_add_param(main, "w2", nn__uniform_param(NN_SHAPE(p, main_hidden), bound)) ||
        !nn_module_add_param(main, "b2", nn__uniform_param(NN_SHAPE(1), bound)) ||
        !(mm = nn_module_new("MLP-M", nn__mlpm_forward))) {
        nn_module_free(mlp);
        nn_module_free(main);
        return NULL;
    }
    if (!nn_module_add_child(mm, "mlp", mlp)) {
        nn_module_free(main);
        nn_module_free(mm);
        return NULL;
    }
    if (!nn_module_add_child(mm, "main", main)) {
        nn_module_free(mm);
        return NULL;
    }
    return mm;
}

/* ----- sanity checks ----- */

static nn_tensor *nn__sanity_loss(nn_tensor *out, const int *labels, const nn_tensor *targets,
                                  const nn_sanity_opts *o, int rows) {
    if (o->loss) return o->loss(out, labels, targets, o->user);
    if (targets) {
        nn_tensor *t = nn_tensor_from(out ? out->graph : NULL, targets->data, nn_shape_of(targets));
        if (rows < targets->shape[0]) t = nn_slice(t, 0, 0, rows);
        return nn_mse(out, t);
    } else {
        nn_ce_opts ce;
        memset(&ce, 0, sizeof ce);
        return nn_cross_entropy(out, labels, ce);
    }
}

/* The first rows samples of x as a tensor of g. */
static nn_tensor *nn__sanity_batch(nn_graph *g, const nn_tensor *x, int rows) {
    nn_shape s = nn_shape_of(x);
    s.d[0] = rows;
    return nn_tensor_from(g, x->data, s);
}

/* Run x through m, counting dead units after every ReLU child of every
   Sequential (recursively); prints one line per ReLU.  Returns the output. */
static nn_tensor *nn__sanity_dead(nn_module *m, nn_tensor *x, const char *prefix, float limit,
                                  int quiet, int *flagged) {
    int i;
    if (!m->type || strcmp(m->type, "Sequential") != 0) return nn_forward(m, x);
    for (i = 0; i < m->nchildren && x; i++) {
        nn_module *c = m->children[i];
        char name[256];
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", m->child_names[i]);
        x = nn__sanity_dead(c, x, name, limit, quiet, flagged);
        if (x && c->type && strcmp(c->type, "ReLU") == 0 && x->ndim >= 2) {
            int N = x->shape[0], F = x->shape[1], f, dead = 0, n;
            size_t inner = x->numel / ((size_t)N * (size_t)F), k;
            for (f = 0; f < F; f++) {
                int alive = 0;
                for (n = 0; n < N && !alive; n++)
                    for (k = 0; k < inner && !alive; k++)
                        alive = x->data[((size_t)n * F + f) * inner + k] > 0.0f;
                dead += !alive;
            }
            if ((float)dead > limit * (float)F) (*flagged)++;
            if (!quiet)
                printf("nn_sanity_check: %s dead ReLU units after \"%s\": %d of %d %s (%.0f%%) never "
                       "active on the batch\n", (float)dead > limit * (float)F ? "FAIL" : "PASS", name,
                       dead, F, inner > 1 ? "channels" : "units", 100.0 * dead / F);
        }
    }
    return x;
}

NNDEF int nn_sanity_check(nn_module *m, const nn_tensor *x, const int *labels, nn_sanity_opts opts) {
    nn_graph *g, *cur;
    nn_param *ps, *bs;
    int np, nb, i, N, fails = 0, steps = opts.steps > 0 ? opts.steps : 300, C, flagged = 0;
    float **save = NULL, init_loss, loss = 0.0f, limit;
    nn_tensor *out;
    const char *P = "nn_sanity_check:";
    if (!m || !x || x->ndim < 2 || x->shape[0] < 1 || (!labels && !opts.targets && !opts.loss) ||
        (opts.targets && opts.targets->shape[0] != x->shape[0])) {
        nn__misuse("nn_sanity_check: needs a module, a batch x [N,...] (got %s) and labels, targets "
                   "[N,...] (got %s) or a loss", nn__ts(x), nn__ts(opts.targets));
        return -1;
    }
    N = x->shape[0];
    ps = nn_parameters(m, &np);
    bs = nn_buffers(m, &nb);
    if (!(save = (float **)nn__calloc((size_t)(np + nb) + 1, sizeof(float *)))) return -1;
    for (i = 0; i < np + nb; i++) {
        nn_tensor *t = i < np ? ps[i].tensor : bs[i - np].tensor;
        size_t bytes = t->numel * ((t->flags & NN_TENSOR_INT64) ? 8u : 4u);
        if (!(save[i] = (float *)nn__malloc(bytes))) goto oom;
        memcpy(save[i], t->data, bytes);
    }
    cur = nn_current_graph();
    if (!(g = nn_graph_new())) goto oom;
    nn__train_save(m);

    /* 1. The loss at initialization (evaluation mode: no dropout noise). */
    nn_train_mode(m, 0);
    out = nn_forward(m, nn__sanity_batch(g, x, N));
    C = opts.nclasses > 0 ? opts.nclasses : out && out->ndim >= 1 ? out->shape[out->ndim - 1] : 0;
    init_loss = out ? nn_item(nn__sanity_loss(out, labels, opts.targets, &opts, N)) : NAN;
    if (!opts.loss && !opts.targets && C > 1) {
        double want = log((double)C), r = (double)init_loss / want;
        int ok = r > 0.75 && r < 1.25;
        fails += !ok;
        if (!opts.quiet)
            printf("%s %s loss at init %.4f, expected log(%d) = %.4f for uniform predictions%s\n", P,
                   ok ? "PASS" : "FAIL", (double)init_loss, C, want,
                   ok ? "" : " (initial logits too large? the last layer's scale or bias)");
    } else if (!opts.quiet) {
        printf("%s INFO loss at init %.6g (no expected value for this loss)\n", P, (double)init_loss);
    }

    /* 2. Overfit the batch. */
    {
        nn_adam_opts ao;
        nn_optim *o;
        int s, correct = -1;
        memset(&ao, 0, sizeof ao);
        ao.lr = opts.lr > 0.0f ? opts.lr : 1e-3f;
        nn__train_restore(m);
        if ((o = nn_adam(m, ao)) != NULL) {
            for (s = 0; s < steps; s++) {
                nn_graph_reset(g);
                out = nn_forward(m, nn__sanity_batch(g, x, N));
                if (!out) break;
                nn_zero_grad(o);
                {
                    nn_tensor *l = nn__sanity_loss(out, labels, opts.targets, &opts, N);
                    if (!l) break;
                    loss = nn_item(l);
                    nn_backward(l);
                }
                nn_step(o);
            }
            nn_zero_grad(o);
            nn_optim_free(o);
            if (labels && out && out->ndim == 2) {
                int *pred = (int *)nn__malloc((size_t)N * sizeof(int));
                if (pred) {
                    nn_argmax_rows(out, pred);
                    for (correct = 0, s = 0; s < N; s++) correct += pred[s] == labels[s];
                    nn__free(pred);
                }
            }
        }
        limit = opts.overfit_loss > 0.0f ? opts.overfit_loss
                : (!opts.loss && !opts.targets) ? 0.05f : 0.05f * init_loss;
        {
            int ok = loss < limit;
            fails += !ok;
            if (!opts.quiet) {
                printf("%s %s overfit one batch of %d: loss %.4g -> %.4g after %d Adam steps (want < %.3g)",
                       P, ok ? "PASS" : "FAIL", N, (double)init_loss, (double)loss, steps, (double)limit);
                if (correct >= 0) printf(", %d/%d right", correct, N);
                printf("%s\n", ok ? "" : "; a bug in the model or the loss, or too small a model/lr");
            }
        }
        for (i = 0; i < np + nb; i++) {   /* back to the initial weights */
            nn_tensor *t = i < np ? ps[i].tensor : bs[i - np].tensor;
            memcpy(t->data, save[i], t->numel * ((t->flags & NN_TENSOR_INT64) ? 8u : 4u));
        }
    }

    /* 3. Gradient check on (at most) two samples, in evaluation mode. */
    {
        int rows = N < 2 ? N : 2, checked = 0;
        double worst = 0.0;
        const char *worst_name = "";
        nn_optim *o;
        nn_sgd_opts so;
        memset(&so, 0, sizeof so);
        nn_train_mode(m, 0);
        o = nn_sgd(m, so);   /* only for nn_zero_grad over the parameters */
        nn_graph_reset(g);
        if (o) nn_zero_grad(o);
        out = nn_forward(m, nn__sanity_batch(g, x, rows));
        if (out) nn_backward(nn__sanity_loss(out, labels, opts.targets, &opts, rows));
        for (i = 0; i < np && out; i++) {
            nn_tensor *t = ps[i].tensor;
            const float *gr = nn_grad(t);
            size_t picks[3], k, j, big = 0;
            if (!nn_needs_grad(t) || t->numel == 0) continue;
            for (j = 1; gr && j < t->numel; j++) if (fabsf(gr[j]) > fabsf(gr[big])) big = j;
            picks[0] = big;
            picks[1] = 0;
            picks[2] = t->numel / 2;
            for (k = 0; k < 3; k++) {
                size_t e = picks[k];
                float keep = t->data[e], h = 1e-2f * (fabsf(keep) > 1.0f ? fabsf(keep) : 1.0f), lp, lm;
                double num, ana = gr ? (double)gr[e] : 0.0, err;
                int had = nn_set_grad_enabled(g, 0);
                t->data[e] = keep + h;
                nn_graph_reset(g);
                lp = nn_item(nn__sanity_loss(nn_forward(m, nn__sanity_batch(g, x, rows)), labels,
                                             opts.targets, &opts, rows));
                t->data[e] = keep - h;
                nn_graph_reset(g);
                lm = nn_item(nn__sanity_loss(nn_forward(m, nn__sanity_batch(g, x, rows)), labels,
                                             opts.targets, &opts, rows));
                t->data[e] = keep;
                nn_set_grad_enabled(g, had);
                num = ((double)lp - (double)lm) / (2.0 * (double)h);
                err = fabs(num - ana) / (fabs(num) + fabs(ana) > 1e-3 ? fabs(num) + fabs(ana) : 1e-3);
                if (err > worst) {
                    worst = err;
                    worst_name = ps[i].name;
                }
                checked++;
            }
        }
        if (o) nn_zero_grad(o);
        nn_optim_free(o);
        {
            int ok = out != NULL && worst < 0.05;
            fails += !ok;
            if (!opts.quiet)
                printf("%s %s gradient check on %d sample(s): %d entries, worst relative error %.2e%s%s\n",
                       P, ok ? "PASS" : "FAIL", rows, checked, worst, *worst_name ? " at " : "",
                       worst_name);
        }
    }

    /* 4. Dead ReLU units, at the initial weights, in training mode. */
    nn__train_restore(m);
    nn_graph_reset(g);
    {
        int had = nn_set_grad_enabled(g, 0);
        float lim = opts.dead_fraction > 0.0f ? opts.dead_fraction : 0.25f;
        nn__sanity_dead(m, nn__sanity_batch(g, x, N), "", lim, opts.quiet, &flagged);
        nn_set_grad_enabled(g, had);
        fails += flagged > 0;
    }

    for (i = 0; i < np + nb; i++) {
        nn_tensor *t = i < np ? ps[i].tensor : bs[i - np].tensor;
        memcpy(t->data, save[i], t->numel * ((t->flags & NN_TENSOR_INT64) ? 8u : 4u));
        nn__free(save[i]);
    }
    nn__free(save);
    nn__train_restore(m);
    nn_graph_free(g);
    nn_set_current_graph(cur);
    return fails;
oom:
    for (i = 0; i < np + nb; i++) nn__free(save[i]);
    nn__free(save);
    nn__misuse("nn_sanity_check: out of memory");
    return -1;
}

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
