#!/usr/bin/env python3
"""The workspace's dependency picture, drawn from the code itself.

    scripts/deps.py            crate layers, then every file-level cycle inside each crate
    scripts/deps.py --files    also every file's in-crate dependencies
    scripts/deps.py --check    exit 1 when a crate depends upwards or files form a cycle

Crates: the `facereko-*` dependencies of each crate's Cargo.toml (normal and build dependencies; dev-dependencies
are test wiring and are listed apart). Files: a file depends on another when it names an item of it through
`crate::`, `super::` or `self::` paths (in `use` or inline). An item the crate root re-exports (`pub use x::Y`)
is resolved to the file that defines it, so a root that only re-exports is a facade, not a hub of cycles.
Parent/child `mod` declarations are structure, not dependencies.
"""

import os
import re
import sys
import tomllib
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = os.path.join(ROOT, "crates")

# The intended layers, bottom first; a crate may depend only on crates of lower layers.
LAYERS = [
    ["facereko-domain", "facereko-files"],
    ["facereko-hardware", "facereko-store", "facereko-vision", "facereko-aws", "facereko-liveness"],
    ["facereko-door", "facereko-notify", "facereko-rekognition", "facereko-enrol"],
    ["facereko-web", "facereko-fleet"],
    ["facereko"],
]


def layer_of(name):
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    return None


def crate_deps():
    out = {}
    for name in sorted(os.listdir(CRATES)):
        manifest = os.path.join(CRATES, name, "Cargo.toml")
        if not os.path.isfile(manifest):
            continue
        with open(manifest, "rb") as f:
            m = tomllib.load(f)
        normal = set()
        for key in ("dependencies", "build-dependencies"):
            normal |= {d for d in m.get(key, {}) if d.startswith("facereko")}
        dev = {d for d in m.get("dev-dependencies", {}) if d.startswith("facereko")} - normal
        out[m["package"]["name"]] = (sorted(normal), sorted(dev))
    return out


def module_files(src):
    """Maps module paths (tuples) to files, for one crate's src directory."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for fn in files:
            if not fn.endswith(".rs"):
                continue
            full = os.path.join(dirpath, fn)
            rel = os.path.relpath(full, src)[:-3].split(os.sep)
            if rel[-1] in ("lib", "main") and len(rel) == 1:
                path = ()
            elif rel[-1] == "mod":
                path = tuple(rel[:-1])
            else:
                path = tuple(rel)
            mods[path] = full
    # Inline `mod x { … }` blocks and `#[path]` modules are rare here; files are the unit.
    return mods


USE_RE = re.compile(r"\buse\s+((?:crate|super|self)\s*::[^;]*);", re.S)
PATH_RE = re.compile(r"\b(crate|super|self)((?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)")
PUB_USE_RE = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", re.S)
# One pass over comments and literals, so a `//` or `/*` inside a string is not taken for a comment.
TOKEN_RE = re.compile(
    r'//[^\n]*|/\*.*?\*/|r(#*)".*?"\1|b?"(?:\\.|[^"\\])*"|b?\'(?:\\.|[^\\\'])\'', re.S
)


def strip(text):
    """Source without comments, with every string and char literal emptied."""
    return TOKEN_RE.sub(lambda m: "" if m.group(0).startswith("/") else '""', text)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [[a,b],[a,c,d],[a,c,e]] (`self` inside braces refers to the prefix)."""
    tree = re.sub(r"\s+", "", tree)

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def go(prefix, s):
        if "{" in s:
            head, rest = s.split("{", 1)
            inner = rest[: rest.rfind("}")]
            head_parts = [p for p in head.split("::") if p]
            res = []
            for part in split_top(inner):
                res += go(prefix + head_parts, part)
            return res
        s = re.sub(r"\bas\b.*$", "", s)
        parts = [p for p in s.split("::") if p and p != "*"]
        if parts == ["self"]:
            parts = []
        return [prefix + parts]

    return go([], tree)


def resolve(mod_path, segments, mods):
    """The file a `crate`/`super`/`self` path names, as the longest module prefix that is a file."""
    head, rest = segments[0], segments[1:]
    if head == "crate":
        base = []
    elif head == "self":
        base = list(mod_path)
    else:
        base = list(mod_path)
        while rest and rest[0] == "super":
            rest = rest[1:]
            base = base[:-1]
        base = base[:-1]
    full = base + list(rest)
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in mods:
            return tuple(full[:n]), full[n:]
    return (), full


def reexports(mods):
    """Names a module re-exports with `pub use`, mapped to the module path they come from."""
    table = {}
    for path, file in mods.items():
        text = strip(open(file, encoding="utf-8").read())
        for m in PUB_USE_RE.finditer(text):
            for segs in expand_use(m.group(1)):
                if not segs:
                    continue
                if segs[0] in ("crate", "super", "self"):
                    target, _ = resolve(path, segs, mods)
                else:
                    target = tuple(list(path) + segs[:1]) if tuple(list(path) + segs[:1]) in mods else None
                    if target is None:
                        continue
                    target, _ = resolve(path, ["self"] + segs, mods)
                if target != path:
                    table[(path, segs[-1])] = target
    return table


def file_deps(src):
    mods = module_files(src)
    reexp = reexports(mods)
    deps = defaultdict(set)
    for path, file in mods.items():
        text = open(file, encoding="utf-8").read()
        # Tests and test modules are wiring, not structure.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", text)[0]
        text = strip(text)
        seg_lists = []
        for m in USE_RE.finditer(text):
            seg_lists += [s for s in expand_use(m.group(1)) if s]
        for m in PATH_RE.finditer(USE_RE.sub("", text)):
            segs = [m.group(1)] + [s.strip() for s in m.group(2).split("::") if s.strip()]
            seg_lists.append(segs)
        for segs in seg_lists:
            target, rest = resolve(path, segs, mods)
            # Follow re-exports of the named item (one level is what this workspace uses).
            if rest and (target, rest[0]) in reexp:
                target = reexp[(target, rest[0])]
            if target != path and target in mods:
                # A child's own parent is named through `super` for its items: still a dependency.
                deps[path].add(target)
    return mods, deps


def cycles(nodes, deps):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps.get(v, ()):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def name(path):
    return "/".join(path) if path else "(root)"


def main():
    show_files = "--files" in sys.argv
    check = "--check" in sys.argv
    bad = 0
    print("crates (→ depends on; dev: test-only)")
    for crate, (normal, dev) in crate_deps().items():
        mine = layer_of(crate)
        flags = []
        for d in normal:
            theirs = layer_of(d)
            if mine is None or theirs is None or theirs >= mine:
                flags.append(f"{d} is not below {crate}")
        extra = f"   dev: {', '.join(dev)}" if dev else ""
        print(f"  [{mine}] {crate} → {', '.join(normal) or '-'}{extra}")
        for f in flags:
            print(f"      UPWARD: {f}")
            bad += 1
    print()
    print("file-level cycles inside each crate")
    for crate in sorted(os.listdir(CRATES)):
        src = os.path.join(CRATES, crate, "src")
        if not os.path.isdir(src):
            continue
        mods, deps = file_deps(src)
        found = cycles(sorted(mods), deps)
        if show_files:
            print(f"  {crate}:")
            for p in sorted(mods):
                ds = ", ".join(name(d) for d in sorted(deps.get(p, ())))
                print(f"      {name(p)} → {ds or '-'}")
        for comp in found:
            print(f"  {crate}: " + " ↔ ".join(name(p) for p in comp))
            bad += 1
    if not bad:
        print("  none")
    if check and bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
