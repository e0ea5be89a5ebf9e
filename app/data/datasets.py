"""Phantom datasets: many cases rendered in parallel processes and cached on disk.

``phantom_dataset("echo", 100, seed=0)`` renders cases ``0..99`` of seed 0 once, writes one
``.npz`` per case under the cache directory, and the next call with the same parameters reads them
back. The cache key covers the modality, seed, render arguments and the generator version, so a
change to any of them renders afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from app.data.case import Case, DataError
from app.data.loaders.phantom_disk import load_case_npz, save_case_npz
from app.data.phantom import GENERATOR_VERSION

log = logging.getLogger(__name__)

MODALITIES = ("echo", "cine")


def default_cache_dir() -> Path:
    """``$CARDIAC_RT_CACHE`` or ``~/.cache/cardiac-rt``."""
    env = os.environ.get("CARDIAC_RT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cardiac-rt"


def render_case(modality: str, seed: int, case_index: int, **render_kwargs) -> Case:
    """Render one phantom case of ``modality`` (``"echo"`` or ``"cine"``)."""
    if modality == "echo":
        from app.data.phantom.echo import render_echo_case

        return render_echo_case(seed, case_index, **render_kwargs)
    if modality == "cine":
        from app.data.phantom.cine import render_cine_case

        return render_cine_case(seed, case_index, **render_kwargs)
    raise ValueError(f"unknown phantom modality {modality!r}; known: {MODALITIES}")


def dataset_key(modality: str, seed: int, render_kwargs: dict) -> str:
    """Short stable hash naming a dataset's cache folder."""
    spec = {"modality": modality, "seed": int(seed), "kwargs": render_kwargs, "version": GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _render_to(path: Path, modality: str, seed: int, index: int, kwargs: dict) -> str:
    save_case_npz(render_case(modality, seed, index, **kwargs), path, compress=False)
    return str(path)


def phantom_dataset(modality: str, n_cases: int, seed: int = 0, *, cache_dir: Path | None = None,
                    workers: int | None = None, **render_kwargs) -> list[Case]:
    """Render (or read back from the cache) phantom cases ``0..n_cases-1`` of ``seed``.

    Args:
        modality: ``"echo"`` or ``"cine"``.
        n_cases: Number of patients.
        seed: Dataset seed.
        cache_dir: Cache root (default ``default_cache_dir()``); cases live in
            ``<cache_dir>/phantom-<modality>-<key>/case_0000.npz``.
        workers: Processes rendering missing cases (default: all CPUs, at most the missing count).
        **render_kwargs: Passed to ``render_echo_case`` / ``render_cine_case`` (``n_frames``,
            ``variant``, ``quality``, ...).

    Returns:
        ``n_cases`` cases in index order.
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown phantom modality {modality!r}; known: {MODALITIES}")
    if n_cases < 0:
        raise ValueError(f"n_cases must be >= 0, got {n_cases}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"phantom-{modality}-{dataset_key(modality, seed, render_kwargs)}"
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "dataset.json"
    if not spec.exists():
        spec.write_text(json.dumps({"modality": modality, "seed": seed, "kwargs": render_kwargs,
                                    "generator_version": GENERATOR_VERSION}, indent=1, default=str))
    paths = [folder / f"case_{i:04d}.npz" for i in range(n_cases)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if missing:
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(missing)))
        log.info("rendering %d %s phantom cases (seed %d) with %d processes into %s",
                 len(missing), modality, seed, n_workers, folder)
        if n_workers == 1:
            for i in missing:
                _render_to(paths[i], modality, seed, i, render_kwargs)
        else:
            with ProcessPoolExecutor(max_workers=n_workers) as pool:
                futures = [pool.submit(_render_to, paths[i], modality, seed, i, render_kwargs) for i in missing]
                for f in futures:
                    f.result()
    cases = []
    for i, p in enumerate(paths):
        try:
            cases.append(load_case_npz(p))
        except DataError:  # a damaged cache entry: render it again
            log.warning("cache entry %s unreadable; rendering it again", p)
            _render_to(p, modality, seed, i, render_kwargs)
            cases.append(load_case_npz(p))
    return cases
