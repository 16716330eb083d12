"""The import graph of ``biqa`` (read from the source, nothing imported): no cycles, neither among
module-level imports nor among all imports (function-level ones included). A module that needs one
importing it back should move the shared part into a module both import (as :mod:`biqa.zoo`,
:mod:`biqa.host` and :mod:`biqa.timelimit` were), or be handed what it needs (as :func:`biqa.load` builds
the Scorer around the model :mod:`biqa.classical` provides)."""
from __future__ import annotations

import ast
from pathlib import Path

import biqa

ROOT = Path(biqa.__file__).resolve().parent

# strongly connected groups of modules that still import each other (inside functions): none left, none to add
KNOWN_CYCLES: list[set[str]] = []


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def import_graph(module_level_only: bool) -> dict[str, set[str]]:
    """``{module: modules of biqa it imports}``; a package's imports of its own submodules are left out."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        is_pkg = p.name == "__init__.py"
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in tree.body if module_level_only else ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = m.split(".") if is_pkg else m.split(".")[:-1]
                if node.level:
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and not (is_pkg and t.startswith(m + ".")) and m != "biqa":
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.add(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def test_no_cycles_among_module_level_imports():
    assert cycles(import_graph(module_level_only=True)) == []


def test_no_new_import_cycles():
    found = cycles(import_graph(module_level_only=False))
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, f"new import cycles (a module importing one that imports it back, maybe inside a function): {new}"
    gone = [c for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_the_check_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []
