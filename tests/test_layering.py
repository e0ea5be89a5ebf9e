"""The dependency direction is one way: app never imports torch; search never imports Qt.

Each check runs in a fresh interpreter so nothing imported by other tests can hide a violation.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[str]:
    pkg_dir = ROOT / package
    names = [package]
    for info in pkgutil.walk_packages([str(pkg_dir)], prefix=f"{package}."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


PROBE = """
import importlib, json, sys
mods = json.loads(sys.argv[1]); forbidden = sys.argv[2]
for m in mods:
    importlib.import_module(m)
bad = sorted(k for k in sys.modules if k == forbidden or k.startswith(forbidden + "."))
print(json.dumps(bad))
"""


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("app", "torch"), ("search", "PyQt6")],
)
def test_package_never_imports(package: str, forbidden: str) -> None:
    mods = _modules(package)
    assert len(mods) >= 2, f"walked too few modules of {package}: {mods}"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(mods), forbidden],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    leaked = json.loads(out.stdout.strip().splitlines()[-1])
    assert leaked == [], f"importing {package} pulled in {forbidden}: {leaked}"


def test_probe_detects_a_violation() -> None:
    """The probe itself works: importing a module that imports json must report json."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(["json.decoder"]), "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) != []


# Names, genotypes, decoders and the method configs are plain data: the command line builds its parsers from them
# (``python -m search rtdnas --help``), so they must not pull torch in (0.15 s against 1.3 s).
TORCH_FREE = ["search.core.op_names", "search.core.genotypes", "search.core.decode", "search.methods.rtdnas.config",
              "search.methods.rtdnas.ga", "search.cli"]
PARSER_PROBE = """
import argparse, json, sys
from search.methods.rtdnas import cli
cli.configure(argparse.ArgumentParser())
print(json.dumps(sorted(k for k in sys.modules if k == "torch" or k.startswith("torch."))))
"""


def test_configs_genotypes_decoders_and_the_rtdnas_parser_never_import_torch() -> None:
    for argv in (["-c", PROBE, json.dumps(TORCH_FREE), "torch"], ["-c", PARSER_PROBE]):
        out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1]) == [], argv[1][:40]
