#!/usr/bin/env bash
# Build the standalone scanner bundle (dist/cardiac-rt/) and the project's wheel + sdist (dist/).
# Usage: packaging/build.sh [PYTHON]   (default: .venv/bin/python, with the `bundle` extra installed)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-.venv/bin/python}}
DIST=${DIST:-dist}
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath build/pyinstaller packaging/cardiac-rt.spec
# Strip debug symbols from the bundled libraries, except the ones auditwheel vendored into
# "<package>.libs/" folders: those were rewritten by patchelf, and strip breaks their ELF alignment
# ("ELF load command address/offset not page-aligned" when numpy loads its OpenBLAS/gfortran).
if command -v strip >/dev/null; then
  find "$DIST/cardiac-rt/_internal" -name "*.so*" -type f ! -path "*.libs/*" ! -name "*openblas*" \
    -exec strip --strip-unneeded {} + 2>/dev/null || true
fi
"$PY" -m build --no-isolation --outdir "$DIST" . >/dev/null
du -sh "$DIST/cardiac-rt"
ls "$DIST"/*.whl "$DIST"/*.tar.gz
