#!/usr/bin/env python3
"""Counts public declarations of nn.h without a doc comment and lists them."""
import sys
s=open(sys.argv[1] if len(sys.argv)>1 else 'nn.h').read()
api=s[s.index('#ifndef NN_H'):s.index('#endif /* NN_H */')].split('\n')
bad=[]
for i,l in enumerate(api):
    if l.startswith('NNDEF'):
        j=i-1
        # skip continuation lines of a previous declaration
        while j>0 and api[j].startswith(' ') and not api[j].rstrip().endswith('*/'): j-=1
        p=api[j].rstrip()
        if not (p.endswith('*/') or p.startswith('NNDEF') or p.startswith('#define')):
            bad.append(l[:100])
print(len(bad)); print('\n'.join(bad))
