"""Fuzz suite of the project's own (issue 19, item 5): damaged DICOM, video, NIfTI, model cards and
arguments, each replayed headless in a subprocess. Every case must end within its time limit, with
an exit code documented for its kind (0 ok, 1 partial, 2 bad input), no traceback, at most one
``error:`` line, each warning at most once, and a valid JSON report whenever it exits 0 or 1.

``CARDIAC_RT_FUZZ_N`` (cases per kind) and ``CARDIAC_RT_FUZZ_SEED`` run variants the suite has
never seen; the default run uses a fixed seed and a few cases per kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mutations

ROOT = Path(__file__).resolve().parents[3]
SEED = int(os.environ.get("CARDIAC_RT_FUZZ_SEED", "19"))
PER_KIND = int(os.environ["CARDIAC_RT_FUZZ_N"]) if os.environ.get("CARDIAC_RT_FUZZ_N") else None
LIMIT_S = 60
CASES = mutations.specs(SEED, PER_KIND)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(LIMIT_S + 60)]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    return mutations.build_bases(tmp_path_factory.mktemp("fuzz-bases"), ROOT)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.app.engine.tiny_models import write_cine_model, write_echo_models

    folder = tmp_path_factory.mktemp("fuzz-models")
    write_echo_models(folder)
    write_cine_model(folder)
    return folder


def _replay(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"}
    env.pop("CARDIAC_RT_DEBUG", None)
    command = [sys.executable, "-m", "app", "replay", *argv, "--fast", "--max-frames", "20"]
    if "--max-frames" in argv:
        command = command[:-2]
    try:
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: no exit within {LIMIT_S} s: {' '.join(command)}")


def _check_stderr(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert not (lines and lines[0].startswith("usage:")), f"a usage block instead of one line: {err}"
    # usage errors come from the argument parser as one line "python -m app replay: error: ..."
    errors = [line for line in lines if line.startswith(("error:", "python -m app replay: error:"))]
    assert len(errors) <= 1, err
    assert not any("unexpected" in line for line in errors), f"unhandled exception: {err}"
    assert len(set(lines)) == len(lines), f"a line printed twice: {err}"
    stray = [line for line in lines if line not in errors and not line.startswith("warning:")]
    assert not stray, f"lines that are neither error nor warning: {stray}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_replay_survives_bad_input(case: mutations.Case, bases, tiny_models, tmp_path):
    argv, report = mutations.build(case, bases, tmp_path, tiny_models)
    result = _replay(argv)
    assert result.returncode in case.allowed, (result.returncode, result.stderr)
    _check_stderr(result.stderr)
    if result.returncode in (0, 1):
        data = json.loads(report.read_text())
        assert isinstance(data, dict) and "frames" in json.dumps(data), data
    if result.returncode == 2:
        assert "error: " in result.stderr, result.stderr


def test_specs_are_deterministic_and_cover_every_kind():
    again = mutations.specs(SEED, PER_KIND)
    assert [case.id for case in again] == [case.id for case in CASES]
    assert {case.kind for case in CASES} == set(mutations.DEFAULT_PER_KIND)
    assert [c.id for c in mutations.specs(SEED + 1)] != [c.id for c in mutations.specs(SEED)]
