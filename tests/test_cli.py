"""Both CLIs list the subcommands DESIGN.md names; unbuilt ones say so and exit non-zero."""

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


def test_not_built_subcommand_says_so(tmp_path: Path) -> None:
    from app.subcommands import Subcommand, build_parser, dispatch

    parser = build_parser("prog", "d", [Subcommand("future", "app.no_such_module_yet", "later")])
    assert dispatch(parser, ["future", "--anything"], default=None) == 2


def test_broken_module_is_not_hidden_as_not_built(tmp_path: Path, monkeypatch) -> None:
    """A module that exists but fails to import must raise, not pretend to be unbuilt."""
    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cmd.py").write_text("import module_that_does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from app.subcommands import Subcommand, build_parser

    with pytest.raises(ModuleNotFoundError):
        build_parser("prog", "d", [Subcommand("x", "brokenpkg.cmd", "x")])


def test_viewer_without_display_explains_how_to_run_headless() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    out = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 2
    assert "offscreen" in out.stderr and "replay" in out.stderr


def test_options_without_a_command_go_to_the_default() -> None:
    from app.subcommands import Subcommand, build_parser, dispatch

    parser = build_parser("prog", "d", [Subcommand("future", "app.no_such_module_yet", "later")])
    assert dispatch(parser, ["--whatever"], default="future") == 2
