"""What every bench ends with: its JSON and Markdown report written side by side, and the machine in words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping


def machine_words() -> str:
    """This machine in the reports' words: its CPU and logical cores."""
    from search.latency.lut import hardware_fingerprint

    hw = hardware_fingerprint()
    return f"{hw.get('cpu', hw.get('machine'))}, {hw['logical_cores']} logical cores"


def write_report(out: Path, doc: Mapping[str, Any] | None, text: str) -> tuple[Path, Path]:
    """``out`` with suffix ``.json`` (``doc``; None: left as it is, e.g. a report re-rendered from that file) and
    ``.md`` (``text``), folders made; the text printed, then where it went. Returns (json path, md path)."""
    out = Path(out)
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    md.parent.mkdir(parents=True, exist_ok=True)
    if doc is not None:
        js.write_text(json.dumps(doc, indent=1) + "\n")
    md.write_text(text)
    print(text)
    print(f"wrote {js} and {md}")
    return js, md
