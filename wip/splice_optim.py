#!/usr/bin/env python3
"""Splice wip/optim_decl.h and wip/optim_impl.c between nn.h's optim markers,
and wip/data_impl.c at /* NN_DATA_IMPL */, into a private copy.
usage: splice_optim.py [src nn.h] [dst nn.h]"""
import os, sys
here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, '..', 'nn.h')
dst = sys.argv[2] if len(sys.argv) > 2 else '/tmp/opt/nn.h'
text = open(src).read()
def between(t, begin, end, body):
    a = t.index(begin) + len(begin)
    b = t.index(end)
    return t[:a] + '\n' + body.rstrip('\n') + '\n\n' + t[b:]
text = between(text, '/* NN_OPTIM_DECL_BEGIN */', '/* NN_OPTIM_DECL_END */',
               open(os.path.join(here, 'optim_decl.h')).read())
text = between(text, '/* NN_OPTIM_IMPL_BEGIN */', '/* NN_OPTIM_IMPL_END */',
               open(os.path.join(here, 'optim_impl.c')).read())
data = os.path.join(here, 'data_impl.c')
if '/* NN_DATA_IMPL */' in text and os.path.exists(data):
    text = text.replace('/* NN_DATA_IMPL */', open(data).read(), 1)
os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
open(dst, 'w').write(text)
print('spliced into', dst)
