#!/usr/bin/env python3
"""Fails when the files of a crate's src/ import each other in a circle.

    scripts/check-module-cycles.py kontiki-rt/src [--print] [--layers L1,L2,...]

An edge A -> B is a path in A (`use crate::x::y`, `crate::x::y::z(...)`, `super::y`) that
names an item of file B: the longest module path that exists as a file wins. `mod x;`
declarations are not edges, and lib.rs and codegen.rs are left out: they are facades that
re-export everything for users and generated code, and nothing in the runtime goes through
them. `--print` lists every file's imports (the layer map of docs/ARCHITECTURE.md).

`--layers config,error,transport,...` also checks the direction: each name is a top-level
module (a file or a folder of src/), lowest first; a file may import its own layer and the
layers below it, never one above. Files in no listed layer are not checked for direction.
"""

import re
import sys
from pathlib import Path

FACADES = {"lib.rs", "codegen.rs"}


def module_of(src, f):
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def file_of(src, parts):
    """The file for the longest prefix of `parts` that is a module file."""
    for n in range(len(parts), 0, -1):
        p = parts[:n]
        for cand in (src.joinpath(*p).with_suffix(".rs"), src.joinpath(*p, "mod.rs")):
            if cand.is_file():
                return cand
    return None


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def expand_use(tree):
    """`a::{b, c::{d}}` -> [a::b, a::c::d] (enough of the `use` grammar for paths)."""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)::\{(.*)\}$", tree, flags=re.S)
    if not m:
        return [tree.split(" as ")[0].strip()]
    prefix, inner = m.group(1), m.group(2)
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    out.append(cur)
    res = []
    for item in filter(None, (x.strip() for x in out)):
        res += [prefix + "::" + p if p != "self" else prefix for p in expand_use(item)]
    return res


def edges(src, f):
    text = strip_comments(f.read_text())
    me = module_of(src, f)
    # A mod.rs is its module; any other file's `super` is its parent module.
    parent = me[:-1] if f.name != "mod.rs" else me[:-1]
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths += expand_use(m.group(1))
    paths += re.findall(r"\b(crate(?:::\w+)+)", text)
    paths += re.findall(r"(?<![:\w])(super(?:::\w+)+)", text)
    out = set()
    for p in paths:
        segs = [s for s in p.split("::") if s]
        if not segs:
            continue
        if segs[0] == "crate":
            target = segs[1:]
        elif segs[0] == "super":
            base = me[:-1] if f.name != "mod.rs" else me[:-1]
            while segs and segs[0] == "super":
                segs = segs[1:]
            target = base + segs
        else:
            continue
        g = file_of(src, target) if target else None
        if g is not None and g != f and g.name not in FACADES and g.relative_to(src) != Path("lib.rs"):
            out.add(g)
    return out


def main():
    src = Path(sys.argv[1])
    files = [f for f in sorted(src.rglob("*.rs")) if f.relative_to(src).as_posix() not in FACADES]
    graph = {f: edges(src, f) for f in files}
    if "--print" in sys.argv:
        for f in files:
            deps = ", ".join(sorted(g.relative_to(src).as_posix() for g in graph[f]))
            print(f"{f.relative_to(src).as_posix()}: {deps}")
    # Tarjan's strongly connected components: any component of more than one file is a circle.
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in files:
        if v not in index:
            visit(v)
    bad = []
    if "--layers" in sys.argv:
        layers = sys.argv[sys.argv.index("--layers") + 1].split(",")

        def layer(f):
            top = f.relative_to(src).parts[0].removesuffix(".rs")
            return layers.index(top) if top in layers else None

        for f in files:
            for g in graph[f]:
                lf, lg = layer(f), layer(g)
                if lf is not None and lg is not None and lg > lf:
                    bad.append(f"{f.relative_to(src).as_posix()} imports {g.relative_to(src).as_posix()}, "
                               f"a layer above it ({layers[lg]} > {layers[lf]})")
        for line in bad:
            print(line)
    if comps:
        for c in comps:
            names = sorted(x.relative_to(src).as_posix() for x in c)
            print(f"import circle of {len(c)} files: {', '.join(names)}")
            for x in sorted(c):
                inner = sorted(g.relative_to(src).as_posix() for g in graph[x] if g in c)
                print(f"  {x.relative_to(src).as_posix()} -> {', '.join(inner)}")
        sys.exit(1)
    if bad:
        sys.exit(1)
    layered = " and every import points down its layers" if "--layers" in sys.argv else ""
    print(f"{src}: {len(files)} files, no import circle{layered}")


if __name__ == "__main__":
    main()
