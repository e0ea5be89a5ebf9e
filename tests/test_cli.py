"""Both CLIs list their subcommands; a missing or broken subcommand module is an import error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("app", ["view", "replay", "phantom"]),
        ("search", ["profile", "segqc-hw", "msnas-hw", "rtdnas", "report", "latency-check"]),
    ],
)
def test_help_lists_subcommands(package: str, names: list[str]) -> None:
    out = _run("-m", package, "--help")
    assert out.returncode == 0, out.stderr
    for name in names:
        assert name in out.stdout


def _package(tmp_path: Path, monkeypatch, **modules: str) -> str:
    """A throwaway package on sys.path, named after the test's folder, holding ``modules`` (name -> source)."""
    name = "cmdpkg_" + tmp_path.name.replace("-", "_")
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for module, source in modules.items():
        (pkg / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


ECHO_CMD = """
def configure(parser):
    parser.add_argument("--value", type=int, default=0)

def run(args):
    return args.value
"""


def test_missing_subcommand_module_is_an_import_error() -> None:
    from app.subcommands import Subcommand, build_parser

    with pytest.raises(ModuleNotFoundError, match="app.no_such_module"):
        build_parser("prog", "d", [Subcommand("future", "app.no_such_module", "later")])


def test_broken_module_raises_its_own_import_error(tmp_path: Path, monkeypatch) -> None:
    """A module that exists but fails to import raises the error of the import inside it."""
    pkg = _package(tmp_path, monkeypatch, cmd="import module_that_does_not_exist_anywhere\n")
    from app.subcommands import Subcommand, build_parser

    with pytest.raises(ModuleNotFoundError, match="module_that_does_not_exist_anywhere"):
        build_parser("prog", "d", [Subcommand("x", f"{pkg}.cmd", "x")])


def test_dispatch_runs_the_command_and_rejects_unknown_options(tmp_path: Path, monkeypatch) -> None:
    pkg = _package(tmp_path, monkeypatch, cmd=ECHO_CMD)
    from app.subcommands import Subcommand, build_parser, dispatch

    parser = build_parser("prog", "d", [Subcommand("echo", f"{pkg}.cmd", "returns --value")])
    assert dispatch(parser, ["echo", "--value", "3"], default=None) == 3
    with pytest.raises(SystemExit) as exc:
        dispatch(parser, ["echo", "--anything"], default=None)
    assert exc.value.code == 2
    assert dispatch(parser, [], default=None) == 2  # no command and no default: help, usage exit


def test_viewer_without_display_explains_how_to_run_headless() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    out = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert "offscreen" in out.stderr and "replay" in out.stderr


def test_options_without_a_command_go_to_the_default(tmp_path: Path, monkeypatch) -> None:
    pkg = _package(tmp_path, monkeypatch, cmd=ECHO_CMD)
    from app.subcommands import Subcommand, build_parser, dispatch

    parser = build_parser("prog", "d", [Subcommand("echo", f"{pkg}.cmd", "returns --value")])
    assert dispatch(parser, ["--value", "5"], default="echo") == 5
    assert dispatch(parser, [], default="echo") == 0
