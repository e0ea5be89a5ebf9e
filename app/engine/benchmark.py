"""Timing the models on the machine the app runs on, and remembering the figures per machine.

A card's latency was measured where the model was built. ``python -m app models --benchmark`` times
every model (and every seg + QC pair, back to back as the pipeline runs them) here, with the app's
own session settings (``app.engine.runtime.create_session``: default threads, no spinning), on
random inputs of the card's input shape: warm-up runs, then ``rounds`` timed runs (garbage collector
paused) -> p50, p95, mean and FPS (``1000 / mean``). The figures go into a JSON file per machine under the
user's cache folder (``$CARDIAC_RT_CACHE_DIR`` or ``$XDG_CACHE_HOME/cardiac-rt``, then
``benchmarks/<machine>.json``), keyed by model id + ONNX sha256 + onnxruntime version + threads, so a changed
model, runtime or thread count is never judged by old figures. Each entry records when it was measured and the
machine's uptime and load average at the time. The default-model choice (``app.engine.models``)
reads them before the cards' figures.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnxruntime as ort

from app.cards import ModelCard, Timing
from app.engine.runtime import create_session, default_threads, gc_paused

log = logging.getLogger(__name__)

CACHE_ENV = "CARDIAC_RT_CACHE_DIR"
"""Environment variable: the cache folder to use instead of ``$XDG_CACHE_HOME/cardiac-rt``."""
DEFAULT_ROUNDS = 30
DEFAULT_WARMUP = 5
ALLOW_SPINNING = False  # the live pipeline's setting (``app.engine.models.load_model``)
FORMAT = 1
_WARNED: set[str] = set()

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}


# -- where the figures live --------------------------------------------------------------------------
def cache_dir() -> Path:
    """The app's cache folder: ``$CARDIAC_RT_CACHE_DIR``, else the platform's user cache + ``cardiac-rt``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]).expanduser()
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path.home() / ".cache"
    return base / "cardiac-rt"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def machine_slug() -> str:
    """File-name slug of this machine's CPU and core count, e.g. ``intel-xeon-processor-2cpu`` (no host name)."""
    cpu = re.sub(r"\((r|tm)\)", "", cpu_name().lower())
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-") or "cpu"
    return f"{cpu}-{os.cpu_count() or 1}cpu"


def default_cache_file() -> Path:
    """``<cache_dir>/benchmarks/<machine_slug>.json``."""
    return cache_dir() / "benchmarks" / f"{machine_slug()}.json"


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages now, rounded to 0.01 (None where the platform does not say)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def uptime_text() -> str | None:
    """What ``uptime`` prints (load averages included), for reports written beside figures; None where it
    cannot run."""
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_state() -> dict[str, Any]:
    """Uptime (s) and 1/5/15-minute load averages now (None where the platform does not say)."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        uptime = None
    return {"uptime_s": uptime, "load_avg": load_average()}


def entry_key(seg: ModelCard, qc: ModelCard | None = None, *, threads: int | None = None,
              runtime_version: str | None = None) -> str:
    """``id@sha256[+qc_id@sha256]|ort<version>|t<threads>``: what the figures are valid for."""
    models = "+".join(f"{c.id}@{c.raw['onnx_sha256']}" for c in (seg, qc) if c is not None)
    return f"{models}|ort{runtime_version or ort.__version__}|t{threads or default_threads()}"


# -- the cached figures ------------------------------------------------------------------------------
@dataclass
class LocalFigures:
    """This machine's benchmark figures, as read from (and written back to) one JSON file.

    Attributes:
        path: The JSON file (need not exist).
        entries: Key (``entry_key``) -> ``{"models", "latency_ms" {p50, p95, mean, max}, "fps", "rounds",
            "warmup", "threads", "onnxruntime", "measured", "uptime_s", "load_avg"}``.
    """

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str | None = None) -> "LocalFigures":
        """Read the file (default: this machine's under the cache folder); missing or unreadable: empty."""
        path = Path(path) if path is not None else default_cache_file()
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            if str(path) not in _WARNED:  # once per process: the default choice reads the file often
                _WARNED.add(str(path))
                log.warning("ignoring benchmark figures %s: cannot read them (%s)", path, exc)
            return cls(path)
        entries = doc.get("entries") if isinstance(doc, dict) else None
        return cls(path, {k: v for k, v in (entries or {}).items() if isinstance(v, dict)})

    def lookup(self, seg: ModelCard, qc: ModelCard | None = None, threads: int | None = None) -> dict[str, Any] | None:
        """The entry for this model (or pair) as it is now, with this runtime and thread count, else None."""
        entry = self.entries.get(entry_key(seg, qc, threads=threads))
        return entry if entry is not None and Timing.from_metrics(entry) is not None else None

    def record(self, key: str, entry: dict[str, Any]) -> None:
        self.entries[key] = entry

    def save(self) -> Path:
        """Write the file (folders created); returns its path."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "machine": f"{cpu_name()}, {os.cpu_count()} logical cores, {platform.machine()}",
               "entries": dict(sorted(self.entries.items()))}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(self.path)
        return self.path


def describe_entry(entry: dict[str, Any]) -> str:
    """E.g. ``"this machine (benchmarked 2026-12-03 06:50 UTC, load 1.20)"``."""
    when = str(entry.get("measured", "?")).replace("T", " ").replace("+00:00", " UTC")
    load = entry.get("load_avg")
    return f"this machine (benchmarked {when}, load {load[0]:.2f})" if load else f"this machine (benchmarked {when})"


# -- timing ------------------------------------------------------------------------------------------
def random_feeds(session: ort.InferenceSession, card: ModelCard, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs for one run: the card's input at the card's shape, others at their ONNX shape (symbolic -> 1)."""
    feeds = {}
    for inp in session.get_inputs():
        shape = list(card.input_shape) if inp.name == card.input_name else \
            [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        dtype = _ORT_DTYPES.get(inp.type, np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.random(shape, dtype=np.float32).astype(dtype, copy=False)
        else:
            feeds[inp.name] = np.zeros(shape, dtype=dtype)
    return feeds


def _run_chain(chain: Sequence[tuple[ModelCard, ort.InferenceSession, dict[str, np.ndarray]]]) -> None:
    """One frame through the chain: each model takes the previous one's inputs and outputs where they fit
    (a QC model scores the seg model's own ``probs``), else its prepared random input."""
    carry: dict[str, np.ndarray] = {}
    for _card, session, base in chain:
        feeds = {name: carry[name] if name in carry and carry[name].shape == value.shape
                 and carry[name].dtype == value.dtype else value for name, value in base.items()}
        names = [o.name for o in session.get_outputs()]
        carry = {**feeds, **dict(zip(names, session.run(names, feeds)))}


def time_chain(cards: Sequence[ModelCard], *, rounds: int = DEFAULT_ROUNDS, warmup: int = DEFAULT_WARMUP,
               threads: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Time one model, or a seg + QC pair back to back, with the app's session settings.

    Returns:
        The cache entry: ``latency_ms`` {p50, p95, mean, max}, ``fps`` (``1000 / mean``), the settings,
        when, and the machine's uptime and load average just before timing.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    threads = threads or default_threads()
    rng = np.random.default_rng(seed)
    chain = []
    for card in cards:
        session = create_session(card.onnx_path, intra_op_threads=threads, allow_spinning=ALLOW_SPINNING)
        chain.append((card, session, random_feeds(session, card, rng)))
    for _ in range(warmup):
        _run_chain(chain)
    state = machine_state()
    samples = []
    with gc_paused():
        for _ in range(rounds):
            start = time.perf_counter()
            _run_chain(chain)
            samples.append((time.perf_counter() - start) * 1000.0)
    return figures_entry(cards, samples, threads=threads, warmup=warmup, state=state)


def figures_entry(cards: Sequence[ModelCard], samples_ms: Sequence[float], *, threads: int, warmup: int,
                  state: dict[str, Any] | None = None, measured: str | None = None) -> dict[str, Any]:
    """A cache entry from timed runs (ms); also how tests inject figures without timing anything."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    mean = float(arr.mean())
    return {
        "models": [{"id": c.id, "onnx_sha256": c.raw["onnx_sha256"]} for c in cards],
        "latency_ms": {"p50": round(float(np.median(arr)), 3), "p95": round(float(np.percentile(arr, 95)), 3),
                       "mean": round(mean, 3), "max": round(float(arr.max()), 3)},
        "fps": round(1000.0 / mean, 2) if mean > 0 else None,
        "rounds": int(arr.size), "warmup": int(warmup), "threads": int(threads),
        "allow_spinning": ALLOW_SPINNING, "onnxruntime": ort.__version__,
        "measured": measured or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(timespec="minutes"),
        **(state or machine_state()),
    }


def benchmark(cards: Sequence[ModelCard], *, rounds: int = DEFAULT_ROUNDS, warmup: int = DEFAULT_WARMUP,
              figures: LocalFigures | None = None, report: Callable[[str, dict[str, Any]], None] | None = None
              ) -> LocalFigures:
    """Time every card, then every seg card with its QC partner (``pairs_with``), and save the figures.

    Cards must already be verified (``ModelCard.verify``). ``report(label, entry)`` is called after each.
    """
    figures = figures if figures is not None else LocalFigures.load()
    threads = default_threads()
    by_id = {c.id: c for c in cards}
    jobs: list[tuple[ModelCard, ...]] = [(c,) for c in cards]
    jobs += [(c, by_id[c.pairs_with]) for c in cards if c.role == "seg" and c.pairs_with in by_id]
    for job in jobs:
        entry = time_chain(job, rounds=rounds, warmup=warmup, threads=threads)
        figures.record(entry_key(*job, threads=threads), entry)
        if report is not None:
            report(" + ".join(c.id for c in job), entry)
    figures.save()
    return figures
