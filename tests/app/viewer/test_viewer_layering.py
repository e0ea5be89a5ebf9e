"""Model/view split inside the viewer: logic modules are Qt-free, widgets never touch the engine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
WIDGETS = ROOT / "app" / "viewer" / "widgets"
ENGINE_RUNTIME = ("app.engine.pipeline", "app.engine.player", "app.engine.sources", "app.engine.models",
                  "app.engine.replay", "app.viewer.session", "app.viewer.engine_port", "onnxruntime")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_widgets_do_not_import_the_engine_runtime() -> None:
    files = sorted(WIDGETS.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        bad = {m for m in _imports(path) if m.startswith(ENGINE_RUNTIME)}
        assert not bad, f"{path.name} imports {bad}: widgets show data, the session controller drives the engine"


def test_quality_and_recording_are_qt_free() -> None:
    probe = ("import json, sys; import app.viewer.quality, app.viewer.recording; "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('PyQt6'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
