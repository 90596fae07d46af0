/* Translation unit 1 of the hygiene build: emits the implementation. */
#define NN_IMPLEMENTATION
#include "nn.h"
#include "nn.h" /* a second include must be harmless */
