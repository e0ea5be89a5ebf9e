#!/usr/bin/env bash
# Build the standalone scanner bundle (dist/cardiac-rt/) and the project's wheel + sdist (dist/).
# Usage: packaging/build.sh [PYTHON]   (default: .venv/bin/python, with the `bundle` extra installed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-.venv/bin/python}}
DIST=${DIST:-dist}
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath build/pyinstaller packaging/cardiac-rt.spec
"$PY" -m build --no-isolation --outdir "$DIST" . >/dev/null
du -sh "$DIST/cardiac-rt"
ls "$DIST"/*.whl "$DIST"/*.tar.gz
