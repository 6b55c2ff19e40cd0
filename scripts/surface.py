#!/usr/bin/env python3
"""Lists the crate's public surface from rustdoc JSON: nameable items and public functions."""
import json, sys
from collections import Counter
d = json.load(open(sys.argv[1]))
idx = d['index']
items, fns, seen = [], [], set()

def kind_of(it):
    return next(iter(it['inner']))

def walk(iid, path):
    it = idx.get(str(iid))
    if it is None:
        return
    kind = kind_of(it)
    if kind == 'module':
        name = it['name']
        for c in it['inner']['module']['items']:
            walk(c, path + [name])
        return
    if kind == 'use':
        u = it['inner']['use']
        if u.get('id') is None:
            return
        tgt = idx.get(str(u['id']))
        if tgt and kind_of(tgt) == 'module':
            if u.get('is_glob'):
                for c in tgt['inner']['module']['items']:
                    walk(c, path)
            else:
                for c in tgt['inner']['module']['items']:
                    walk(c, path + [u['name']])
            return
        named(u['id'], path, u['name'])
        return
    named(iid, path, it.get('name'))

def named(iid, path, name):
    it = idx.get(str(iid))
    if it is None or iid in seen:
        return
    if any(a == '#[doc(hidden)]' or 'hidden' in str(a) for a in it.get('attrs', [])):
        return
    seen.add(iid)
    kind = kind_of(it)
    full = '::'.join(path + [name])
    items.append((kind, full))
    inner = it['inner'][kind]
    if kind == 'function':
        fns.append(full)
    if kind in ('struct', 'enum', 'union'):
        for imp in inner.get('impls', []):
            im = idx[str(imp)]['inner']['impl']
            if im.get('trait') is None and not im.get('is_synthetic') and im.get('blanket_impl') is None:
                for m in im['items']:
                    mi = idx[str(m)]
                    if kind_of(mi) == 'function' and mi.get('visibility') == 'public':
                        fns.append(full + '::' + mi['name'])
    if kind == 'trait':
        for m in inner['items']:
            mi = idx[str(m)]
            if kind_of(mi) == 'function':
                fns.append(full + '::' + mi['name'])

root = idx[str(d['root'])]
for c in root['inner']['module']['items']:
    walk(c, [root['name']])
for kind, full in sorted(items, key=lambda x: x[1]):
    print(f"item {kind} {full}")
for f in sorted(fns):
    print(f"fn {f}")
print(f"# {len(items)} items, {len(fns)} functions", file=sys.stderr)
