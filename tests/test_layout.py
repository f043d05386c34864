"""The house's rooms: every module's project imports (read with ast) follow the table below,
and ``netpatch/`` holds only commands.

    ir/          network + property IR, text forms         imports nothing else (but common)
    frontends/   files -> ir                               ir
    compiler/    analysis/ (reads networks), queries (network + target -> problem, decoder),
                 problem (the problem IR) and passes/ (problem -> problem; no network import)
    backends/    problem -> solver -> result               compiler.problem only
    attacks/     dnc, direct, exact; validate; shrink      ir, compiler, backends
    evaluation/  metrics, reports, baselines, runs, bench  ir, frontends, compiler, backends, attacks
    netpatch/    the commands                              anything
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "ir", "frontends", "compiler", "backends", "attacks", "evaluation", "netpatch")

# module prefix -> project module prefixes it may import (the longest matching prefix wins)
ALLOWED = {
    "common": {"common"},
    "ir": {"common", "ir"},
    "frontends": {"common", "ir", "frontends"},
    "compiler.problem": {"common", "compiler.problem"},
    "compiler.problem_text": {"common", "compiler.problem"},
    "compiler.passes": {"common", "compiler.problem", "compiler.passes"},
    "compiler.analysis": {"common", "ir", "compiler.analysis"},
    "compiler.queries": {"common", "ir", "compiler.analysis", "compiler.problem", "compiler.queries"},
    "compiler": {"common"},
    "backends": {"common", "compiler.problem", "backends"},
    "attacks": {"common", "ir", "compiler", "backends", "attacks"},
    "evaluation": {"common", "ir", "frontends", "compiler", "backends", "attacks", "evaluation"},
    "netpatch": set(PACKAGES),
}


def _longest_prefix(name: str, prefixes) -> str | None:
    matches = [p for p in prefixes if name == p or name.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a project package in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from compiler.analysis import bounds`` imports the module compiler.analysis.bounds
            names = [f"{node.module}.{alias.name}" if _is_module(f"{node.module}.{alias.name}")
                     else node.module for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in PACKAGES]
    return found


def _is_module(dotted: str) -> bool:
    parts = dotted.split(".")
    return (ROOT.joinpath(*parts).with_suffix(".py").exists()
            or (ROOT.joinpath(*parts) / "__init__.py").exists())


def modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def violations(module: str, path: Path) -> list[str]:
    allowed = ALLOWED[_longest_prefix(module, ALLOWED)]
    out = []
    for line, imported in project_imports(path):
        if not any(imported == a or imported.startswith(a + ".") for a in allowed):
            out.append(f"{path.name}:{line}: {module} imports {imported}")
    return out


@pytest.mark.parametrize("module, path", list(modules()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_imports_follow_the_table(module, path):
    assert violations(module, path) == []


def test_the_checker_catches_a_forbidden_arrow(tmp_path):
    """A pass importing a network module, a backend importing the queries: both flagged."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ir.network import Network\nimport compiler.queries.patch\n"
                   "from compiler.problem import Problem\n")
    assert len(violations("compiler.passes.bad", bad)) == 2
    assert len(violations("backends.bad", bad)) == 2
    assert violations("attacks.bad", bad) == []
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from attacks import attack\n")
    assert violations("compiler.queries.lazy", lazy) == [
        "lazy.py:2: compiler.queries.lazy imports attacks"]


def test_netpatch_holds_only_commands():
    """Each module of netpatch/ registers a subcommand or is an entry point (a ``main``);
    ``netpatch.command`` holds what the commands share (error reporting, network args)."""
    shared = {"__init__.py", "command.py"}
    for path in sorted((ROOT / "netpatch").glob("*.py")):
        if path.name in shared:
            continue
        names = {node.name for node in ast.parse(path.read_text()).body
                 if isinstance(node, ast.FunctionDef)}
        assert names & {"register", "main"}, f"{path.name} is not a command module"
