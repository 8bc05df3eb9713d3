"""The house rules that keep st_app easy to work in: no import cycles, a wheel that carries its
resources. Imports inside functions count too: a lazy import only hides a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "st_app"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                targets = subs or [base]
            for t in targets:
                while t and t not in modules:  # import of a name inside a module
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("st_app"):
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_st_app():
    graph = import_graph()
    assert "st_app.core.data.files" in graph["st_app.core.data"]  # the walk sees real edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.slow
def test_a_plain_wheel_carries_the_bundled_resources(tmp_path):
    """``pip install .`` (not editable) must ship resources/ as st_app/resources."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("st_app-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("st_app/resources/digits/optdigits.csv.gz",
                   "st_app/resources/checkpoints/digits-resnet20-ct/model.safetensors",
                   "st_app/resources/checkpoints/digits-resnet20-st/meta.json",
                   "st_app/resources/sessions/loafing-lesson.stlab",
                   "st_app/core/resources.py", "st_app/cli/__init__.py"):
        assert needed in names, f"{needed} missing from the wheel"


def test_no_module_over_600_lines_and_a_small_main_window():
    """One job per module: no module of st_app over 600 lines, the main window (composition only) under 500."""
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    too_long = {name: n for name, n in sizes.items() if n > 600}
    assert not too_long, f"modules over 600 lines: {too_long}"
    assert sizes["st_app.gui.main_window"] < 500, sizes["st_app.gui.main_window"]
