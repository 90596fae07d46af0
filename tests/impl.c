/* The implementation the tests link with: tests/run.sh compiles it once per
   configuration, and every test that guards its NN_IMPLEMENTATION with
   NN_TEST_LINKED (one that needs no private function or allocator hook) is
   built against this object instead of compiling the whole header again. */
#define NN_IMPLEMENTATION
#include "nn.h"
