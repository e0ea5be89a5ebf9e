"""``search`` is layered, and its layers import one way (the way napari checks its layers).

core < data < latency < train (beside it: distributed) < export < methods < report < CLI. A module may
import only from its own layer or lower ones; a method package never imports another method
package. Every import counts: at module level, inside functions, under ``TYPE_CHECKING``, and
``importlib.import_module`` with a literal name. The
layers are data (``LAYERS``): renaming or adding a package is a one-line change here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SEARCH = Path(__file__).resolve().parents[2] / "search"

#: Layer name -> module prefixes, lowest layer first. A module belongs to the layer of its longest
#: matching prefix.
LAYERS: dict[str, tuple[str, ...]] = {
    # the reference networks of the baselines are plain nn.Modules the methods build on
    "core": ("search.core", "search.citations", "search.baselines.unet", "search.baselines.resnet_qc"),
    # training data (--data specs, dataset folders, method protocols; what run folders record of them):
    # torch-free, below train
    "data": ("search.data", "search.privacy"),
    "latency": ("search.latency",),
    "train": ("search.train", "search.distributed"),
    "export": ("search.export",),
    "methods": ("search.methods", "search.baselines"),
    "report": ("search.report", "search.build", "search.finetune"),
    # entry points: the package root (lazy ``build_from_card``), the chain and every command-line module
    "cli": ("search", "search.cli", "search.__main__", "search.chain", "search.latency.profile_cli",
            "search.latency.check_cli", "search.distributed.bench"),
}

#: Packages each of which is one method; none may import another.
METHOD_PACKAGES = "search.methods"

RANK = {name: i for i, name in enumerate(LAYERS)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SEARCH.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SEARCH.rglob("*.py"))}


def layer_of(module: str) -> str:
    """The layer of ``module`` (longest matching prefix in ``LAYERS``)."""
    best, best_len = None, -1
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = layer, len(prefix)
    if best is None:
        raise AssertionError(f"{module}: in no layer; add its package to LAYERS in {Path(__file__).name}")
    return best


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_dynamic_import(node: ast.AST) -> bool:
    """``importlib.import_module("search.x")`` / ``__import__("search.x")`` with a literal name."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__") and isinstance(node.args[0].value, str)


def imports_of(module: str) -> list[tuple[int, str]]:
    """``(line, imported search module)`` for every import in ``module``, nested ones included.

    ``from search import distributed`` counts as an import of ``search.distributed`` (a submodule).
    """
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULES else base))
        elif _is_dynamic_import(node):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name == "search" or name.startswith("search.")]


def _method_package(module: str) -> str | None:
    parts = module.split(".")
    prefix = METHOD_PACKAGES.split(".")
    if parts[: len(prefix)] == prefix and len(parts) > len(prefix) and f"{module}" != METHOD_PACKAGES:
        pkg = ".".join(parts[: len(prefix) + 1])
        return pkg if (SEARCH.parent / pkg.replace(".", "/")).is_dir() else None
    return None


def layer_violations(module: str) -> list[str]:
    """One line per import of ``module`` that goes up a layer or into another method package."""
    path = Path(*module.split(".")).with_suffix(".py") if MODULES[module].name != "__init__.py" \
        else Path(*module.split("."), "__init__.py")
    mine, own_method = layer_of(module), _method_package(module)
    bad = []
    for line, target in imports_of(module):
        theirs = layer_of(target)
        if RANK[theirs] > RANK[mine]:
            bad.append(f"{path}:{line}: {module} ({mine}) imports {target} ({theirs}), a higher layer")
        other = _method_package(target)
        if own_method and other and other != own_method:
            bad.append(f"{path}:{line}: method {own_method} imports another method, {target}")
    return bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_layers(module: str) -> None:
    bad = layer_violations(module)
    assert not bad, "\n".join(bad)


def test_the_check_catches_an_upward_import_inside_a_function(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "ops_fake.py"
    fake.write_text("def f():\n    from search.methods.rtdnas import config\n    from search import distributed\n"
                    "    importlib.import_module('search.export.flops')\n")
    monkeypatch.setitem(MODULES, "search.core.ops_fake", fake)
    bad = layer_violations("search.core.ops_fake")
    assert len(bad) == 3
    assert "imports search.methods.rtdnas.config (methods)" in bad[0] and ":2:" in bad[0]
    assert "imports search.distributed (train)" in bad[1]
    assert "imports search.export.flops (export)" in bad[2]


def test_the_check_catches_a_method_importing_another(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text("from search.methods.msnas_hw.networks import build_row_network\n")
    monkeypatch.setitem(MODULES, "search.methods.rtdnas.fake", fake)
    assert layer_violations("search.methods.rtdnas.fake") == [
        f"{Path('search/methods/rtdnas/fake.py')}:1: method search.methods.rtdnas imports another method, "
        "search.methods.msnas_hw.networks"
    ]


def test_every_layer_names_existing_code() -> None:
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            assert any(m == prefix or m.startswith(prefix + ".") for m in MODULES), f"{layer}: {prefix} matches no module"
