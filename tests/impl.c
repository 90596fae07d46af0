/* The implementation the tests link with: tests/run.sh compiles it once per
   configuration, and every test that guards its NN_IMPLEMENTATION with
   NN_TEST_LINKED is built against this object instead of compiling the
   whole header again.  It has the test seams tests/seams.h describes
   (allocation and write hooks, the arena block, private accessors); a test
   that uses them and is compiled alone, without -DNN_TEST_LINKED, includes
   this file for its implementation. */
#include <stdlib.h>
#include "seams.h"
#define NN_MALLOC(n) nn_test_malloc(n)
#define NN_REALLOC(p, n) nn_test_realloc(p, n)
#define NN_FREE(p) free(p)
#define NN__IO_WRITE_HOOK(n) nn_test_write_ok(n)
#define NN_GRAPH_BLOCK nn_test_graph_block
#define NN_IMPLEMENTATION
#include "nn.h"

void *(*nn_test_malloc_hook)(size_t n) = NULL;
void *(*nn_test_realloc_hook)(void *p, size_t n) = NULL;
int (*nn_test_write_hook)(size_t n) = NULL;
size_t nn_test_graph_block = (size_t)1 << 20;

void *nn_test_malloc(size_t n) { return nn_test_malloc_hook ? nn_test_malloc_hook(n) : malloc(n); }
void *nn_test_realloc(void *p, size_t n) { return nn_test_realloc_hook ? nn_test_realloc_hook(p, n) : realloc(p, n); }
int nn_test_write_ok(size_t n) { return nn_test_write_hook ? nn_test_write_hook(n) : 1; }

uint32_t nn_test__crc32(const unsigned char *p, size_t n) { return nn__crc32(p, n); }
const int *nn_test__loader_order(const nn_loader *ld) { return ld->order; }
void nn_test__loader_position(const nn_loader *ld, int pos[4]) {
    pos[0] = ld->pos;
    pos[1] = ld->batch;
    pos[2] = ld->next_batch;
    pos[3] = ld->in_epoch;
}
const float *nn_test__optim_slot(const nn_optim *o, int k, int i) { return o->slot[k][i]; }

int *nn_test__team_max(void) { return &nn__team_max; }
int *nn_test__solo(void) { return &nn__solo; }
int *nn_test__probing(void) { return &nn__probing; }
int nn_test__team(int big) { return nn__team(big); }
int nn_test__run(int nt) { return nn__run(nt); }
int nn_test__ew_threads(double n) { return nn__ew_threads(n); }
int nn_test__team_begin(int nt, int *measured) {
    nn__meter m;
    int run = nn__team_begin(nt, 0.0, &m);
    *measured = m.on;
    return run;
}
const double nn_test__eff_window = NN__EFF_WINDOW, nn_test__eff_gap_min = NN__EFF_GAP, nn_test__probe = NN__PROBE,
             nn_test__eff_warm = NN__EFF_WARM, nn_test__alone_ttl = NN__ALONE_TTL,
             nn_test__alone_try = NN__ALONE_TRY;
#ifdef NN__OMP_ON
double *nn_test__team_warm(void) { return &nn__team_warm; }
int *nn_test__eff_strikes(void) { return &nn__eff_strikes; }
double *nn_test__eff_cpu(void) { return &nn__eff_cpu; }
double *nn_test__eff_span(void) { return &nn__eff_span; }
double *nn_test__eff_wall(void) { return &nn__eff_wall; }
double *nn_test__eff_gap(void) { return &nn__eff_gap; }
double *nn_test__probe_at(void) { return &nn__probe_at; }
double *nn_test__probe_wait(void) { return &nn__probe_wait; }
int nn_test__team_pick(double now) { return nn__team_pick(now); }
void nn_test__team_note(double cpu, double wall, int nt, double now) { nn__team_note(cpu, wall, nt, 0.0, now); }
void nn_test__team_note_work(double cpu, double wall, int nt, double work, double now) {
    nn__team_note(cpu, wall, nt, work, now);
}
void nn_test__alone_note(double work, double wall, double now) { nn__alone_note(work, wall, now); }
double *nn_test__alone_rate(void) { return &nn__alone_rate; }
double *nn_test__alone_at(void) { return &nn__alone_at; }
#endif

void nn_test__exp_array(const float *x, float *y, size_t n) { nn__exp_array(x, y, n); }
void nn_test__sigmoid_array(const float *x, float *y, size_t n) { nn__sigmoid_array(x, y, n); }
void nn_test__tanh_array(const float *x, float *y, size_t n) { nn__tanh_array(x, y, n); }
float nn_test__exp1(float x) { return nn__exp1(x); }
float nn_test__tanh1(float x) { return nn__tanh1(x); }
float nn_test__max_array(const float *x, size_t n) { return nn__max_array(x, n); }
double nn_test__sum_array(const float *x, size_t n) { return nn__sum_array(x, n); }
float nn_test__exp_shift_sum(const float *x, float shift, float *y, size_t n) { return nn__exp_shift_sum(x, shift, y, n); }
