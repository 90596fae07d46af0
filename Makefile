# nn.h: `make demo` trains the Fashion-MNIST MLP, `make test` runs every test.
CC ?= cc
CFLAGS ?= -std=c99 -O3 -march=native -Wall -Wextra -Wpedantic
OMPFLAGS ?= -fopenmp
NN_DATA ?= /usr/share/datasets/fashion-mnist
BUILD := build

EXAMPLES := $(patsubst examples/%.c,$(BUILD)/%,$(wildcard examples/*.c))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench_%,$(wildcard bench/*.c))

.PHONY: all test demo examples bench clean valgrind

all: examples

test:
	@sh tests/run.sh $(BUILD)/test

demo: $(BUILD)/fashion_mlp
	NN_DATA=$(NN_DATA) $(BUILD)/fashion_mlp

examples: $(EXAMPLES)

$(BUILD)/%: examples/%.c nn.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) -I. $< -o $@ -lm

$(BUILD)/bench_%: bench/%.c bench/models.h bench/peak.h nn.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) -I. $< -o $@ -lopenblas -lm

bench: $(BENCHES)

# Every test under valgrind's memcheck (slow; not part of `make test`).
valgrind:
	@mkdir -p $(BUILD)
	@for t in tests/test_*.c; do \
	  $(CC) -std=c99 -O1 -g -Itests -I. $$t -o $(BUILD)/vg_test -lm || exit 1; \
	  valgrind -q --error-exitcode=9 --leak-check=full $(BUILD)/vg_test > $(BUILD)/vg.out 2>&1 \
	    || { cat $(BUILD)/vg.out; exit 1; }; \
	  tail -n 1 $(BUILD)/vg.out; \
	done

clean:
	rm -rf $(BUILD)
