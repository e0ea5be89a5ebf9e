"""The stage harness of a method run: resumable stages, skip-if-done with a record of why, one timer.

A method declares its run as :class:`Stage` values (a name, the function that does the work, the
files that mean "done", the files it reads) and hands them to a :class:`StageRunner` over its run
folder. The runner:

* skips a stage whose result files all exist and whose configuration hash (and input files) did not
  change since it was recorded, and returns what the stage's ``load`` reads back;
* otherwise runs it, timed with :func:`stopwatch`, and checks that it wrote its result files;
* records every decision in ``<out>/stages.json``, e.g. ``{"status": "skipped", "reason": "result
  exists at searches/msnas/result.json, config hash unchanged", ...}``.

A stage whose result is stale (the configuration hash or an input file changed) is rerun after its
result files are removed, so its own resume logic cannot hand back the stale result.

:func:`latency_table_stage` is the stage every hardware-aware method needs: profile the op keys its
search can choose into the run's lookup table (resumable, only the missing keys).

Under ``torchrun`` every rank runs the stages; rank 0 alone writes the record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from search import distributed

RECORD = "stages.json"


@dataclass
class Stopwatch:
    """Elapsed wall-clock seconds of a ``with stopwatch()`` block (``seconds`` is final after it)."""

    start: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def elapsed(self) -> float:
        """Seconds since the block started (also inside it)."""
        return time.perf_counter() - self.start


@contextlib.contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Time a block: ``with stopwatch() as t: ...; t.seconds`` (the one timer the stages use)."""
    watch = Stopwatch()
    try:
        yield watch
    finally:
        watch.seconds = watch.elapsed()


@dataclass(frozen=True)
class Stage:
    """One resumable step of a run.

    Attributes:
        name: Unique within the run (``"search:hw_n2"``, ``"row:ours_n1"``).
        run: Does the work and writes ``outputs``; its return value is the stage's result.
        outputs: Files that mean "done" (relative to the run folder or absolute). Empty: the stage
            always runs (e.g. a report rendered from the others' results).
        load: Reads the result back when the stage is skipped (None: the result is None).
        inputs: Files the stage reads; their contents' hash is recorded, and a change reruns it.
        done: Overrides "every output exists" (e.g. "the table has every key").
        clear_stale: Remove the outputs before rerunning a stale stage (False for a cache such as a
            latency table, whose entries stay valid).
        config: The part of the run's configuration this stage depends on (None: all of it); only a
            change to it makes the stage stale, so a changed value reruns just the stages it feeds.
        scratch: Intermediate files (checkpoints) removed with the outputs before a stale rerun, so
            that the stage's own mid-way resume does not continue from a run of another config.
    """

    name: str
    run: Callable[[], Any]
    outputs: tuple[Path | str, ...] = ()
    load: Callable[[], Any] | None = None
    inputs: tuple[Path | str, ...] = ()
    done: Callable[[], bool] | None = None
    clear_stale: bool = True
    config: Any = None
    scratch: tuple[Path | str, ...] = ()


def config_hash(config: Any) -> str:
    """A short stable hash of a JSON-able configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def files_hash(paths: Iterable[Path]) -> str | None:
    """A short hash of the contents of ``paths`` (a missing file counts as empty); None for none."""
    paths = list(paths)
    if not paths:
        return None
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:16]


class StageRunner:
    """Runs the stages of one run folder and records why each ran or was skipped.

    Args:
        out: The run folder (``stages.json`` is written there).
        config: The run's configuration (JSON-able); its hash goes into every record (its ``RUNTIME_KEYS``, the
            thread count, left out: a run resumed with another count skips what is done; the training precision,
            ``search.train.precision``, in when it is not fp32: a run never resumes under the other precision).
        progress: Called with one line per decision (None: silent).
    """

    def __init__(self, out: Path, config: Any, *, progress: Callable[[str], None] | None = None):
        self.out = Path(out)
        from search.privacy import without_runtime_keys
        from search.train import precision

        # bf16 training tagged in (fp32 adds nothing: records made before the setting still match)
        self.config_hash = config_hash(precision.tag(without_runtime_keys(config)))
        self.say = progress or (lambda msg: None)
        self.path = self.out / RECORD
        self.records: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: unreadable stage record ({exc}); delete it to rebuild it") from None
        return doc.get("stages", {})

    def _write(self) -> None:
        if not distributed.is_main():
            return
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"config_hash": self.config_hash, "stages": self.records}, indent=1))
        tmp.replace(self.path)

    def _abs(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.out / path

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.out))
        except ValueError:
            return str(path)

    def stage_hash(self, stage: Stage) -> str:
        """The configuration hash ``stage`` is recorded and compared with (its own config, else the run's)."""
        return self.config_hash if stage.config is None else config_hash(stage.config)

    def status(self, stage: Stage) -> tuple[bool, str]:
        """``(skip, reason)``: whether ``stage`` can be skipped, in words."""
        outputs = [self._abs(p) for p in stage.outputs]
        if not outputs and stage.done is None:
            return False, "ran: always runs (it declares no result files)"
        exists = stage.done() if stage.done is not None else all(p.is_file() for p in outputs)
        where = ", ".join(self._rel(p) for p in outputs) or stage.name
        if not exists:
            missing = next((p for p in outputs if not p.is_file()), None)
            return False, f"ran: no result at {self._rel(missing)}" if missing else f"ran: {where} not complete"
        old = self.records.get(stage.name)
        if old is None:
            return True, f"skipped: result exists at {where} (made before stage records)"
        if old.get("config_hash") != self.stage_hash(stage):
            return False, f"reran: result at {where} was made with config hash {old.get('config_hash')}, now {self.stage_hash(stage)}"
        if old.get("inputs_hash") != files_hash(self._abs(p) for p in stage.inputs):
            return False, f"reran: the inputs of {where} changed"
        return True, f"skipped: result exists at {where}, config hash unchanged"

    def run(self, stage: Stage) -> Any:
        """Skip ``stage`` (returning ``stage.load()``) or run it; record the decision either way."""
        skip, reason = self.status(stage)
        record = {"status": "skipped" if skip else "ran", "reason": reason, "config_hash": self.stage_hash(stage),
                  "inputs_hash": files_hash(self._abs(p) for p in stage.inputs),
                  "outputs": [self._rel(self._abs(p)) for p in stage.outputs]}
        if skip:
            self.say(f"stage {stage.name}: {reason}")
            value = stage.load() if stage.load is not None else None
            record["seconds"] = self.records.get(stage.name, {}).get("seconds")
        else:
            if reason.startswith("reran") and stage.clear_stale:
                for path in (self._abs(p) for p in (*stage.outputs, *stage.scratch)):
                    path.unlink(missing_ok=True)
            with stopwatch() as watch:
                value = stage.run()
            missing = [self._rel(p) for p in map(self._abs, stage.outputs) if not p.is_file()]
            if missing and distributed.is_main():
                raise RuntimeError(f"stage {stage.name} finished without writing {', '.join(missing)}")
            record["seconds"] = round(watch.seconds, 3)
        record["at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.records[stage.name] = record
        self._write()
        return value


def latency_table_stage(path: Path, keys: Callable[[], Iterable[Any]], settings: Any, *,
                        progress: Callable[[str], None] | None = None, name: str = "latency-table",
                        profile: Callable[[Any, list[Any]], None] | None = None, config: Any = None) -> Stage:
    """The stage that profiles every op key a search can choose into ``path`` (only the missing ones).

    Args:
        path: The run's lookup table (JSON; created).
        keys: Returns the ``OpKey`` s the run needs (called once per run).
        settings: ``search.latency.profiler.ProfileSettings``.
        progress: Called with one line before profiling.
        name: Stage name.
        profile: ``profile(table, missing_keys)`` measures the keys into the table and saves it to
            ``path`` (None: ``OpProfiler``, the median of ``settings.repeats`` runs per op).
        config: The stage's own configuration (see ``Stage.config``; None: the run's).

    Returns:
        A stage whose result is the loaded ``LatencyTable``; it is done when the table has every key.
    """
    from search.latency.lut import LatencyTable
    from search.latency.profiler import OpProfiler

    say = progress or (lambda msg: None)
    needed: list[Any] = []

    def wanted() -> list[Any]:
        if not needed:
            needed.extend(keys())
        return needed

    def load() -> LatencyTable:
        return LatencyTable.load(path)

    def done() -> bool:
        return path.is_file() and not load().missing(wanted())

    def run() -> LatencyTable:
        table = load() if path.is_file() else LatencyTable()
        profiler = None if profile is not None else OpProfiler(table, settings, save_to=path)
        todo = table.missing(wanted())
        if todo:
            say(f"latency table: profiling {len(todo)} of {len(wanted())} op signatures with onnxruntime")
            if profiler is None:
                profile(table, todo)
            else:
                profiler.profile(wanted())
        if todo or not path.is_file():
            table.save(path)
        return load()

    return Stage(name, run=run, outputs=(path,), load=load, done=done, clear_stale=False, config=config)
