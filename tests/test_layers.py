"""The layers read api → service → pipeline → storage, with the shared models at the bottom.

Every import inside ``src/siftline`` is read (top level and inside functions) and checked against what
its layer may use, so a second storage backend can sit beside ``storage/sqlite/`` without anything
above it changing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import siftline

ROOT = Path(siftline.__file__).parent
SHARED = {"errors", "models", "filters", "ids", "credits", "config"}  # the bottom: anyone may use these
MAY_USE = {
    "storage": SHARED | {"storage"},
    "features": SHARED | {"features"},
    "pipeline": SHARED | {"pipeline", "features", "storage.base"},
    "service": SHARED | {"service", "pipeline", "features", "storage.base", "storage.factory"},
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n.removeprefix("siftline.") for n in names if n.startswith("siftline.")]


def _allowed(target: str, allowed: set[str]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def _module_imports(layer: str) -> list[tuple[str, str]]:
    """(module, imported siftline name) for every import of every module of ``layer``."""
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for target in _imports(path):
            # "from siftline.storage import base" names storage.base: the package itself is fine
            if target.count(".") == 0 and any(t.startswith(target + ".") for t in _imports(path)):
                continue
            found.append((module, target))
    return found


@pytest.mark.parametrize("layer", sorted(MAY_USE))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    wrong = [
        f"{module} imports siftline.{target}"
        for module, target in _module_imports(layer)
        if not _allowed(target, MAY_USE[layer])
    ]
    assert wrong == []


def test_nothing_outside_storage_names_a_backend() -> None:
    """Only ``storage/factory.py`` picks the backend; everyone else talks to the protocol in base.py."""
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {"storage", "testing"}:
            continue
        wrong += [f"{rel} imports siftline.{t}" for t in _imports(path) if t.startswith("storage.sqlite")]
    assert wrong == []
