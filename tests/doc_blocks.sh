#!/bin/sh
# The documentation's C code cannot drift from the API: every ```c block of
# README.md and docs/*.md, and the front-page example in nn.h, is compiled with
# gcc -std=c99 -Wall -Wextra -Wpedantic -Werror, and complete programs are run.
# Prints "  ok: FILE:LINE (kind)" or "FAIL FILE:LINE (kind): ..." and the
# compiler's messages (indented) per block, then "doc_blocks: N passed, N failed".
# Usage: tests/doc_blocks.sh [build-dir]   (from the repository root; POSIX sh + awk)
#
# The fence's info string says what a block is:
#   ```c               a complete program: compiled, linked and run (must exit 0
#                      within 60 s, in the build directory)
#   ```c compile-only  a complete program compiled and linked but not run (it
#                      needs the Fashion-MNIST files or trains for long)
#   ```c fragment      statements: compiled (declarations only, -fsyntax-only)
#                      inside int main(void), in a block after a prelude that
#                      declares the usual variables (see PRELUDE below).
#                      Leading preprocessor lines and leading `static` function
#                      definitions (up to a `}` in column 0) go to file scope.
#                      Unused variables are not warned about.  A block that
#                      starts with `typedef struct nn_x {` is an excerpt of
#                      nn.h's struct: each of its fields must exist in the real
#                      nn_x, and both must have the same size.
#   ```c skip          not compiled: pseudo-code; the text says why
# An HTML comment on the line(s) right before the fence,
#   <!-- prelude: float lr = 0.1f; -->
# adds declarations to a fragment's prelude.
# docs/api.md is not read: docs/make_api.py generates it from nn.h's own
# declarations, which every test compiles.
B=${1:-build/test/docs}
CC=${DOC_CC:-gcc}
STRICT="-std=c99 -Wall -Wextra -Wpedantic -Werror"
FRAG_OK="-Wno-unused-variable -Wno-unused-but-set-variable -Wno-unused-local-typedefs"
mkdir -p "$B"
rm -f "$B"/b[0-9][0-9][0-9]* "$B/manifest" "$B/count"

PRELUDE='    nn_graph *g = nn_graph_new();
    nn_module *net = NULL;
    nn_optim *opt = NULL;
    nn_sched *sched = NULL;
    nn_tensor *x = NULL, *logits = NULL, *loss = NULL;
    const int *y = NULL, *labels = NULL;
    static float batch_x[128 * 784];
    static int batch_y[128];
    nn_dataset train, test;
    nn_loader *ld = NULL;
    int n = 0, step = 0, steps = 1000;
    void *ctx = NULL;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);'

# Write one C file per block into $B (bNNN.c) and a manifest line
# "bNNN|file|line|kind" per block.
for md in README.md docs/*.md; do
    [ "$md" = docs/api.md ] && continue
    echo "$md"
done | while read -r md; do
    awk -v md="$md" -v out="$B" -v prelude="$PRELUDE" '
    function flush(   f, i, stage, l, sname) {
        f = out "/" id ".c"
        print id "|" md "|" start "|" kind >> (out "/manifest")
        if (kind == "skip") return
        if (kind == "program" || kind == "compile-only") {
            print "#line " (start + 1) " \"" md "\"" > f
            for (i = 1; i <= nl; i++) print L[i] > f
            close(f)
            return
        }
        # fragment: split off the file-scope head
        stage = 0
        for (i = 1; i <= nl; i++) {
            l = L[i]
            if (stage == 0 && (l ~ /^#/ || l ~ /^[ \t]*$/)) { pp[i] = 1; continue }
            if (stage == 0 && l ~ /^static /) { stage = 1 }
            if (stage == 1) { fn[i] = 1; if (l ~ /^}/) stage = 0; continue }
            break
        }
        first = i
        print "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>" > f
        for (i = 1; i < first; i++) if (pp[i]) { print "#line " (start + i) " \"" md "\"" > f; print L[i] > f }
        print "#include \"nn.h\"" > f
        for (i = 1; i < first; i++) if (fn[i]) { print "#line " (start + i) " \"" md "\"" > f; print L[i] > f }
        print "int main(void) {\n" prelude > f
        for (i = 0; i < np; i++) print P[i] > f
        sname = ""
        if (first <= nl && match(L[first], /^typedef struct nn_[a-z0-9_]+ \{/)) {
            sname = L[first]; sub(/^typedef struct /, "", sname); sub(/ .*/, "", sname)
            print "    " sname " nn__doc_real;" > f
            for (i = first + 1; i <= nl; i++) {
                l = L[i]; sub(/\/\*.*/, "", l)
                if (l ~ /^[ \t]+[a-z_][a-z_0-9 \t*]*[ \t*][a-z_][a-z_0-9]*(\[[^]]*\])?;[ \t]*$/) {
                    sub(/(\[[^]]*\])?;[ \t]*$/, "", l); sub(/.*[ \t*]/, "", l)
                    print "#line " (start + i) " \"" md "\"" > f
                    print "    (void)sizeof nn__doc_real." l ";" > f
                }
            }
        }
        print "    {" > f
        print "#line " (start + first) " \"" md "\"" > f
        for (i = first; i <= nl; i++) print L[i] > f
        if (sname != "") {
            print "#line " (start + first) " \"" md "\"" > f
            print "    { typedef char nn__doc_same_size[sizeof(" sname ") == sizeof nn__doc_real ? 1 : -1]; }" > f
        }
        print "    }\n    nn_graph_free(g);\n    (void)batch_x; (void)batch_y;\n    return 0;\n}" > f
        close(f)
        for (i in pp) delete pp[i]
        for (i in fn) delete fn[i]
    }
    BEGIN { inblk = 0; np = 0; base = 0; while ((getline x < (out "/count")) > 0) base = x; close(out "/count") }
    inblk == 0 && /^<!-- prelude: .* -->[ \t]*$/ {
        s = $0; sub(/^<!-- prelude: /, "", s); sub(/ -->[ \t]*$/, "", s); P[np++] = "    " s; next }
    inblk == 0 && /^ ? ? ?```/ {
        info = $0; sub(/^ */, "", info); ind = length($0) - length(info); sub(/^```/, "", info)
        if (info ~ /^c([ \t]|$)/) {
            kind = info; sub(/^c[ \t]*/, "", kind); sub(/[ \t].*/, "", kind)
            if (kind == "") kind = "program"
            if (kind != "program" && kind != "compile-only" && kind != "fragment" && kind != "skip") {
                print md ":" NR ": unknown kind \"" kind "\" after ```c" > "/dev/stderr"; kind = "bad"
            }
            inblk = 1; nl = 0; start = NR; base++; id = sprintf("b%03d", base); next
        }
        inblk = 2; np = 0; next
    }
    inblk == 2 && /^ ? ? ?```/ { inblk = 0; next }
    inblk == 1 && /^ ? ? ?```/ { flush(); inblk = 0; np = 0; next }
    inblk == 1 { l = $0; for (k = 0; k < ind && substr(l, 1, 1) == " "; k++) l = substr(l, 2)
                 L[++nl] = l; next }
    !/^[ \t]*$/ { np = 0 }
    END { if (inblk == 1) { kind = "unclosed"; flush() }   # reported as a failure
          print base > (out "/count") }
    ' "$md"
done

# The front-page example in nn.h's opening comment (indented by 9 spaces).
n=$(cat "$B/count" 2>/dev/null || echo 0); n=$((n + 1)); id=$(printf 'b%03d' "$n")
line=$(awk '/^   A COMPLETE EXAMPLE/ { s = 1 } s && /#define NN_IMPLEMENTATION/ { print NR; exit }' nn.h)
{
    echo "#line $line \"nn.h\""
    sed -n '/^   A COMPLETE EXAMPLE/,/^   CONFIGURATION MACROS/p' nn.h |
        sed -n '/#define NN_IMPLEMENTATION/,/^         }$/p' | sed 's/^         //'
} > "$B/$id.c"
echo "$id|nn.h|$line|program" >> "$B/manifest"

# Build (and run) every block, as many at once as there are cores.
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
# A program whose first lines are just "#define NN_IMPLEMENTATION" and
# "#include "nn.h"" (no configuration macro before them) is first built
# against that implementation, compiled here once with the same flags,
# instead of compiling the whole header again (NN__IMPLEMENTATION_DONE skips
# it); if that does not build cleanly (the block leans on a header the
# implementation includes), it is built whole, as the others are.
printf '#define NN_IMPLEMENTATION\n#include "nn.h"\n' > "$B/impl.c"
if $CC $STRICT -O1 -I. -c "$B/impl.c" -o "$B/impl.o" > "$B/impl.log" 2>&1 && [ ! -s "$B/impl.log" ]
then impl_ok=1; else impl_ok=0; fi
build_one() { # build_one <id> <kind>: leaves $B/<id>.res holding "ok" or why not
    id=$1; kind=$2; src="$B/$id.c"
    case $kind in
    skip) echo skip > "$B/$id.res"; return ;;
    bad) echo "unknown kind after \`\`\`c" > "$B/$id.res"; return ;;
    unclosed) echo "no closing fence" > "$B/$id.res"; return ;;
    fragment)
        if $CC $STRICT $FRAG_OK -fsyntax-only -I. "$src" > "$B/$id.log" 2>&1 && [ ! -s "$B/$id.log" ]
        then echo ok > "$B/$id.res"; else echo "does not compile cleanly" > "$B/$id.res"; fi ;;
    *)
        built=0
        if [ "$impl_ok" = 1 ] && [ "$(sed -n '2,3p' "$src")" = "$(cat "$B/impl.c")" ] &&
            $CC $STRICT -O1 -I. -DNN__IMPLEMENTATION_DONE "$src" "$B/impl.o" -o "$B/$id" -lm > "$B/$id.log" 2>&1 &&
            [ ! -s "$B/$id.log" ]; then
            built=1 # against the shared implementation
        fi
        if [ "$built" = 0 ] && { ! $CC $STRICT -O1 -I. "$src" -o "$B/$id" -lm > "$B/$id.log" 2>&1 || [ -s "$B/$id.log" ]; }; then
            echo "does not compile cleanly" > "$B/$id.res"
        elif [ "$kind" = compile-only ]; then
            echo ok > "$B/$id.res"
        elif (cd "$B" && if command -v timeout >/dev/null 2>&1; then timeout 60 "./$id"; else "./$id"; fi) \
                > "$B/$id.out" 2>&1; then
            echo ok > "$B/$id.res"
        else
            echo "exited with status $? when run" > "$B/$id.res"; tail -n 5 "$B/$id.out" > "$B/$id.log"
        fi ;;
    esac
}
running=0
while IFS='|' read -r id file line kind; do
    build_one "$id" "$kind" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait; running=0; fi
done < "$B/manifest"
wait

passed=0; failed=0; skipped=0
while IFS='|' read -r id file line kind; do
    res=$(cat "$B/$id.res" 2>/dev/null || echo "no result")
    case $res in
    ok) passed=$((passed + 1)); echo "  ok: $file:$line ($kind)" ;;
    skip) skipped=$((skipped + 1)); echo "  skipped: $file:$line (pseudo-code)" ;;
    *) failed=$((failed + 1)); echo "FAIL $file:$line ($kind): $res"
       sed 's/^/    /' "$B/$id.log" 2>/dev/null | head -n 12 ;;
    esac
done < "$B/manifest"
echo "doc_blocks: $passed passed, $failed failed"
[ "$failed" = 0 ]
