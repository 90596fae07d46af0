#!/usr/bin/env python3
# Usage: python3 tests/hygiene/sections.py [nn.h]   (not part of make test: CI has no python)
"""Report calls from one section of nn.h's implementation to a later section,
and public types used in a declarations section above the one defining them."""
import re, sys
L = open(sys.argv[1] if len(sys.argv) > 1 else 'nn.h').read().split('\n')
order = []; sec_of_line = []
cur = None; impl = False
for l in L:
    m = re.match(r'/\* ===== >>(\w+)( \(implementation\))?', l)
    if m:
        cur = m.group(1); impl = bool(m.group(2))
        key = (cur, impl)
        if key not in order: order.append(key)
    sec_of_line.append((cur, impl))
names = [s for s, i in order if not i]
rank = {s: k for k, s in enumerate(names)}
defs = {}
func_re = re.compile(r'^(?:static |NNDEF )?(?:inline )?[A-Za-z_][\w \*]*?\b(nn_{1,2}\w+)\s*\(')
for i, l in enumerate(L):
    s, impl = sec_of_line[i]
    if not impl: continue
    m = func_re.match(l)
    if m and not l.rstrip().endswith(';'):
        defs.setdefault(m.group(1), s)
# walk bodies
bad = set(); cur_fn = None
for i, l in enumerate(L):
    s, impl = sec_of_line[i]
    if not impl or s is None: continue
    m = func_re.match(l)
    if m and not l.rstrip().endswith(';'): cur_fn = m.group(1)
    code = re.sub(r'"(\\.|[^"\\])*"', '""', l); code = re.sub(r'/\*.*?(\*/|$)', '', code)
    if code.lstrip().startswith('*'): continue
    for c in re.findall(r'\b(nn_{1,2}\w+)\s*\(', code):
        if c in defs and s in rank and defs[c] in rank and rank[defs[c]] > rank[s]:
            bad.add((s, cur_fn, c, defs[c]))
for b in sorted(bad): print('call up: [%s] %s -> %s [%s]' % b)
# types in declarations
tdef = {}
for i, l in enumerate(L):
    s, impl = sec_of_line[i]
    if impl: continue
    for t in re.findall(r'typedef (?:struct|enum) (nn_\w+)', l): tdef.setdefault(t, s)
    m = re.match(r'\} (nn_\w+);', l)
    if m: tdef.setdefault(m.group(1), s)
for i, l in enumerate(L):
    s, impl = sec_of_line[i]
    if impl or s not in rank: continue
    for t in re.findall(r'\b(nn_\w+)\b', l):
        if t in tdef and tdef[t] in rank and rank[tdef[t]] > rank[s] and not l.lstrip().startswith(('/*', '*')):
            print('type up: [%s] line %d uses %s [%s]' % (s, i + 1, t, tdef[t]))
print('sections:', ' '.join(names))
