#!/usr/bin/env python3
"""Fails when two source files of a crate import each other, directly or around a circle.

Reads `crate::`, `super::` and `self::` paths (and the module aliases `use crate::routes;` brings in), maps them
to the files of the crate, and reports every strongly connected component of more than one file. Test modules
(`#[cfg(test)]` to the end of a file) and comments are left out. Usage: check_imports.py CRATE_SRC...
"""
import os
import re
import sys


def modules(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                files[tuple(parts)] = path
    return files


def resolve(files, path):
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in files:
            return tuple(path[:n])
    return None


def edges_of(files, module, path):
    source = open(path, encoding="utf-8").read()
    source = re.sub(r"#\[cfg\(test\)\][\s\S]*", "", source)
    source = re.sub(r"//[^\n]*", "", source)
    is_folder = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
    here = list(module) if is_folder else list(module[:-1])
    found = set()
    for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)(::\{([^}]*)\})?", source):
        tail = [x for x in m.group(2).split("::") if x]
        if m.group(1) == "crate":
            start = []
        elif m.group(1) == "self":
            start = list(module)
        else:
            # `super` of a file is its folder's module; of a folder's mod.rs, the folder's parent.
            start = here[:-1] if is_folder else here[:]
            while tail and tail[0] == "super":
                tail, start = tail[1:], start[:-1]
        targets = [start + tail]
        for item in (m.group(4) or "").split(","):
            item = item.strip().split(" ")[0]
            if item and item != "self":
                targets.append(start + tail + [x for x in item.split("::") if x])
        for target in targets:
            hit = resolve(files, target)
            if hit and hit != module:
                found.add(hit)
            if tuple(target) in files:  # a module alias: follow `alias::child::item` uses
                alias = target[-1]
                for a in re.finditer(r"(?<![:\w])" + alias + r"((?:::\w+)+)", source):
                    hit = resolve(files, target + [x for x in a.group(1).split("::") if x])
                    if hit and hit != module:
                        found.add(hit)
    return found


def circles(files):
    edges = {m: edges_of(files, m, p) for m, p in files.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append((component, edges))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    failed = False
    for root in sys.argv[1:]:
        for component, edges in circles(modules(root)):
            failed = True
            names = ", ".join(sorted("/".join(m) for m in component))
            print(f"{root}: files import each other: {names}")
            for a in component:
                for b in sorted(edges[a] & set(component)):
                    print(f"    {'/'.join(a)} -> {'/'.join(b)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
