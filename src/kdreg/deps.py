"""Which package sources each pipeline step runs, read from the imports in the sources themselves.

A rule declares the sources of its ``kdreg`` command as inputs, so editing a module reruns exactly the steps
that import it. The list is derived, never kept by hand (a hand-kept list drifts: a module left out of it leaves
stale results). For ``cli.py`` only the module level, the command's own function and the ``cli`` helpers it calls
count, since each command imports its modules lazily; every other module counts whole (all its imports, at any
depth), which can only over-declare.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "kdreg"
SRC = Path(__file__).resolve().parent
# Run by every command: the package, its `python -m` entry point and the parser.
ENTRY = ("kdreg", "kdreg.__main__", "kdreg.cli")


def _module_file(name: str) -> Path | None:
    rel = name.split(".")[1:]
    if not rel:
        return SRC / "__init__.py"
    path = SRC.joinpath(*rel).with_suffix(".py")
    return path if path.exists() else None


def _imported(nodes) -> set[str]:
    """The kdreg modules named by the import statements among ``nodes`` (and inside them)."""
    found = set()
    for node in (n for top in nodes for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            # `from kdreg import layout`: a submodule when such a file exists, else a name of the package
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
    return {n for n in found if _module_file(n)}


@functools.lru_cache(maxsize=None)
def _tree(name: str) -> ast.Module:
    return ast.parse(_module_file(name).read_text(), filename=str(_module_file(name)))


@functools.lru_cache(maxsize=None)
def _module_imports(name: str) -> frozenset[str]:
    """:func:`_imported` of a whole module, walked once: the workflow asks for every rule's sources (~200 rules,
    14 commands), and walking every module's tree per rule cost ~12 s of each Snakemake invocation."""
    return frozenset(_imported([_tree(name)]))


def closure(names) -> set[str]:
    """``names`` and every kdreg module they import, transitively (importing ``kdreg.x`` runs ``kdreg`` too)."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name != "kdreg.cli":  # the CLI counts per command (command_modules), not whole
            todo += sorted(_module_imports(name) | {PACKAGE})
    return seen


def _cli_functions() -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in _tree("kdreg.cli").body if isinstance(n, ast.FunctionDef)}


def _called(fn: ast.FunctionDef, functions: dict) -> set[str]:
    """Names of the CLI's own functions that ``fn`` refers to, transitively; other commands' handlers (which the
    parser names) are not followed: only the chosen one runs."""
    todo, seen = [fn.name], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [n.id for n in ast.walk(functions[name])
                 if isinstance(n, ast.Name) and n.id in functions and not n.id.startswith("cmd_")]
    return seen


def command_modules(command: str) -> list[str]:
    """Every kdreg module that ``kdreg <command>`` may import, e.g. ``command_modules("corrupt")``."""
    return list(_command_modules(command))


@functools.lru_cache(maxsize=None)
def _command_modules(command: str) -> tuple[str, ...]:
    functions = _cli_functions()
    handler = "cmd_" + command.replace("-", "_")
    if handler not in functions:
        raise ValueError(f"kdreg has no command {command!r}")
    top = [n for n in _tree("kdreg.cli").body if not isinstance(n, ast.FunctionDef)]
    used = _called(functions[handler], functions) | _called(functions["main"], functions)
    direct = _imported(top + [functions[n] for n in sorted(used)])
    return tuple(sorted(closure(set(ENTRY) | direct)))


def command_sources(command: str, relative_to=None) -> list[str]:
    """The source files of :func:`command_modules`, relative to ``relative_to`` (the workflow's working
    directory) so that a moved checkout keeps the same paths and reruns nothing."""
    import os
    files = [_module_file(m) for m in command_modules(command)]
    return [os.path.relpath(f, relative_to) if relative_to is not None else str(f) for f in files]
