#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Keep the shape of src/ (docs/architecture.md): layers that depend one way.

  main.c  ->  ops/, engine/  ->  server/  ->  core/

Fails (exit 1, one line per finding) when
  - a file includes a header of a layer above its own, or of its peer
    (ops/ and engine/ know nothing of each other);
  - headers include each other in a circle (within a folder or across);
  - with --objects DIR (a build directory): two object files call each
    other, directly or round a longer circle, which the #include lines
    cannot show (files of one folder share one header).
"""
import glob
import os
import re
import subprocess
import sys

RANK = {'core': 0, 'server': 1, 'engine': 2, 'ops': 2, 'main': 3}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer(path):
    """The layer of a path relative to src/."""
    top = path.split('/', 1)[0]
    return 'main' if top == 'main.c' else top


def sources(src):
    out = []
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(('.c', '.h')):
                out.append(os.path.relpath(os.path.join(root, f), src))
    return sorted(out)


def includes(src, rel):
    with open(os.path.join(src, rel), encoding='utf-8') as f:
        return INCLUDE.findall(f.read())


def check_layers(src, files):
    bad = []
    for rel in files:
        mine = layer(rel)
        if mine not in RANK:
            bad.append(f'{rel}: not in a known layer ({", ".join(RANK)})')
            continue
        for inc in includes(src, rel):
            if not os.path.exists(os.path.join(src, inc)):
                bad.append(f'{rel}: includes "{inc}", which is not a path under src/')
                continue
            theirs = layer(inc)
            if theirs == mine:
                continue
            if RANK[theirs] >= RANK[mine]:
                bad.append(f'{rel} ({mine}) includes {inc} ({theirs}): '
                           f'a layer may include only the layers below it')
    return bad


def cycles(graph):
    """Every circle in a directed graph, each once, as a list of nodes."""
    found, seen = [], set()
    state = {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                ring = stack[stack.index(m):]
                key = frozenset(ring)
                if key not in seen:
                    seen.add(key)
                    found.append(ring + [m])
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    return found


def check_header_cycles(src, files):
    graph = {rel: set(i for i in includes(src, rel) if i.endswith('.h'))
             for rel in files if rel.endswith('.h')}
    return [f'headers include each other: {" -> ".join(c)}' for c in cycles(graph)]


def symbols(obj):
    out = subprocess.run(['nm', obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in 'TDBRV':
            defined.add(p[2])
        elif len(p) == 2 and p[0] == 'U':
            used.add(p[1])
    return defined, used


def check_calls(objdir):
    base = os.path.join(objdir, 'src')
    # Only objects whose source still exists: a tree built before files
    # moved keeps stale objects that say nothing about today's code.
    objs = sorted(o for o in glob.glob(os.path.join(base, '**', '*.o'), recursive=True)
                  if os.path.exists(os.path.join('src', os.path.relpath(o, base)[:-2] + '.c')))
    if not objs:
        return [f'{objdir}: no object files under src/ (build first)']
    table = {os.path.relpath(o, base)[:-2]: symbols(o) for o in objs}
    owner = {s: n for n, (d, _) in table.items() for s in d}
    graph = {n: {owner[s] for s in u if s in owner and owner[s] != n}
             for n, (_, u) in table.items()}
    return [f'files call each other: {" -> ".join(c)}' for c in cycles(graph)]


def main(argv):
    src = 'src'
    objdir = None
    if len(argv) > 2 and argv[1] == '--objects':
        objdir = argv[2]
    files = sources(src)
    bad = check_layers(src, files) + check_header_cycles(src, files)
    if objdir:
        bad += check_calls(objdir)
    for b in bad:
        print('layers:', b)
    if bad:
        return 1
    print(f'layers: {len(files)} files, include arrows one way'
          + (', no call circles' if objdir else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
