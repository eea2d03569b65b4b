"""The layout holds: the import contracts in pyproject.toml, no import cycle, small files,
and a README whose layout table names exactly what the tree holds."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cnn", "experiments")


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _import_graph() -> dict[str, set[str]]:
    import grimp

    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {m: {i for i in graph.find_modules_directly_imported_by(m) if i.startswith(PACKAGES)}
            for m in graph.modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_over_300_lines():
    long = {str(p.relative_to(REPO)): n for package in PACKAGES
            for p in (REPO / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}


def _readme_paths(text: str) -> set[str]:
    """The `path` cells of the README's layout table ("What is here")."""
    section = text.split("## What is here", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))


def _tree_paths(package: str) -> set[str]:
    """Each module and sub-package directly in `package` (the layout table's rows)."""
    root = REPO / package
    modules = {f"{package}/{p.name}" for p in root.glob("*.py") if p.name != "__init__.py"}
    packages = {f"{package}/{p.name}/" for p in root.iterdir()
                if (p / "__init__.py").is_file()}
    return modules | packages


@pytest.mark.parametrize("package", PACKAGES)
def test_readme_layout_table_matches_the_tree(package):
    listed = {p for p in _readme_paths((REPO / "README.md").read_text())
              if p.startswith(f"{package}/")}
    assert listed == _tree_paths(package)


@pytest.mark.parametrize("package", sorted(p.name for p in (REPO / "experiments").iterdir()
                                           if (p / "__init__.py").is_file()))
def test_each_library_package_names_every_module_it_holds(package):
    """Each sub-package's docstring is its table of contents: it names every module."""
    folder = REPO / "experiments" / package
    text = (folder / "__init__.py").read_text()
    missing = [p.stem for p in folder.glob("*.py")
               if p.stem != "__init__" and not re.search(rf"\b{p.stem}\b", text)]
    assert not missing, f"experiments/{package}/__init__.py does not name {missing}"
