"""Lead's integration check: splice every helper fragment into a copy of nn.h.
Usage: python3 wip/splice_all.py OUT [gemm] [layers] [optim]"""
import sys
out = sys.argv[1]
parts = set(sys.argv[2:])
s = open('/work/main/nn.h').read()
def between(s, a, b, text):
    i = s.index(a) + len(a); j = s.index(b)
    return s[:i] + '\n' + text.strip('\n') + '\n' + s[j:]
if 'gemm' in parts:
    s = between(s, '/* NN_GEMM_IMPL_BEGIN */', '/* NN_GEMM_IMPL_END */', open('/work/main/wip/gemm_impl.c').read())
if 'layers' in parts:
    s = s.replace('/* NN_LAYERS_DECL */', open('/work/main/wip/layers_decl.h').read().strip('\n'), 1)
    s = s.replace('/* NN_LAYERS_IMPL */', open('/work/main/wip/layers_impl.c').read().strip('\n'), 1)
if 'optim' in parts:
    s = between(s, '/* NN_OPTIM_DECL_BEGIN */', '/* NN_OPTIM_DECL_END */', open('/work/main/wip/optim_decl.h').read())
    s = between(s, '/* NN_OPTIM_IMPL_BEGIN */', '/* NN_OPTIM_IMPL_END */', open('/work/main/wip/optim_impl.c').read())
open(out, 'w').write(s)
