/* The test seams of the implementation tests/impl.c builds: every
   NN_MALLOC and NN_REALLOC goes through nn_test_malloc / nn_test_realloc
   (malloc and realloc unless a test sets the hooks below), every file write
   of >>io asks nn_test_write_ok (all succeed unless a test sets
   nn_test_write_hook), the graph arena's smallest block is
   nn_test_graph_block bytes (nn.h's default of 1 MiB unless a test lowers
   it), and the private functions and state a few tests check are reached
   through nn_test__ accessors.  So the tests that count or fail
   allocations, fail writes or call private functions link the shared
   implementation too, instead of compiling the whole header again. */
#ifndef NN_TEST_SEAMS_H
#define NN_TEST_SEAMS_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "nn.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Set by a test (at the start of main, before any allocation) to count or
   fail allocations and writes; NULL: malloc, realloc, every write succeeds. */
extern void *(*nn_test_malloc_hook)(size_t n);
extern void *(*nn_test_realloc_hook)(void *p, size_t n);
extern int (*nn_test_write_hook)(size_t n);
/* NN_GRAPH_BLOCK of the implementation: a test may lower it before its
   first graph, so that small graphs allocate new arena blocks. */
extern size_t nn_test_graph_block;

/* What NN_MALLOC, NN_REALLOC and NN__IO_WRITE_HOOK call in tests/impl.c. */
void *nn_test_malloc(size_t n);
void *nn_test_realloc(void *p, size_t n);
int nn_test_write_ok(size_t n);

/* The private CRC-32 of >>data (test_data.c writes gzip streams with it). */
uint32_t nn_test__crc32(const unsigned char *p, size_t n);
/* The loader's and the optimizer's private state test_checkpoint.c compares
   bitwise: the sample order of the epoch; pos, batch, next_batch and
   in_epoch; slot[k][i] (buffer k of parameter i, or NULL). */
const int *nn_test__loader_order(const nn_loader *ld);
void nn_test__loader_position(const nn_loader *ld, int pos[4]);
const float *nn_test__optim_slot(const nn_optim *o, int k, int i);

/* The thread teams' private state (this thread's), functions and constants
   test_rng.c drives: nn__team_max and the others.  The contention
   window's state exists only in OpenMP builds. */
int *nn_test__team_max(void);
int *nn_test__solo(void);
int *nn_test__probing(void);
double *nn_test__team_warm(void);
int *nn_test__eff_strikes(void);
double *nn_test__eff_cpu(void);
double *nn_test__eff_span(void);
double *nn_test__eff_wall(void);
double *nn_test__eff_gap(void);
double *nn_test__probe_at(void);
double *nn_test__probe_wait(void);
int nn_test__team(int big);
int nn_test__run(int nt);
int nn_test__ew_threads(double n);
int nn_test__team_pick(double now);
void nn_test__team_note(double cpu, double wall, int nt, double now);
/* the same with the product's work (multiply-adds), and a product run alone */
void nn_test__team_note_work(double cpu, double wall, int nt, double work, double now);
void nn_test__alone_note(double work, double wall, double now);
double *nn_test__alone_rate(void);
double *nn_test__alone_at(void);
/* the team nn__team_begin gives; *measured: whether the region is measured */
int nn_test__team_begin(int nt, int *measured);
extern const double nn_test__eff_window, nn_test__eff_gap_min, nn_test__probe, nn_test__eff_warm,
    nn_test__alone_ttl, nn_test__alone_try;

/* The private element-wise kernels test_kernels.c measures: nn__exp_array
   and the others, compiled with the configuration's instruction set. */
void nn_test__exp_array(const float *x, float *y, size_t n);
void nn_test__sigmoid_array(const float *x, float *y, size_t n);
void nn_test__tanh_array(const float *x, float *y, size_t n);
float nn_test__exp1(float x);
float nn_test__tanh1(float x);
float nn_test__max_array(const float *x, size_t n);
double nn_test__sum_array(const float *x, size_t n);
float nn_test__exp_shift_sum(const float *x, float shift, float *y, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* NN_TEST_SEAMS_H */
