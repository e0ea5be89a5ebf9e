"""``python -m search ARGS`` for one torchrun rank, recording every file it writes under ``--out``.

An audit hook (``sys.addaudithook``) sees every Python-level open for writing, rename/replace and
file copy; at exit the rank writes the paths under the run folder to ``$WRITE_LOG_DIR/rank<r>.json``
(outside the run folder). The smoke test uses it to prove rank 1 writes nothing there.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def main(argv: list[str]) -> int:
    out = str(Path(argv[argv.index("--out") + 1]).resolve())
    log_path = Path(os.environ["WRITE_LOG_DIR"]) / f"rank{os.environ.get('RANK', '0')}.json"
    written: set[str] = set()

    def under_out(path) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None  # a file descriptor
        p = os.path.abspath(os.fsdecode(path))
        return p if p.startswith(out + os.sep) else None

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
            target = under_out(path) if writing else None
        elif event in ("os.rename", "shutil.copyfile", "shutil.copytree"):
            target = under_out(args[1])
        else:
            return
        if target is not None:
            written.add(target)

    def dump() -> None:
        log_path.write_text(json.dumps(sorted(written)))

    atexit.register(dump)
    sys.addaudithook(hook)
    from search.cli import main as search_main

    return search_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
