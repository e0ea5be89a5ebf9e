"""What a run folder may record of a ``--data`` dataset: its kind and a hash of its folder, never a name.

File and folder names of datasets can carry patient identifiers (a hospital export named after the
patient, a folder per study). Cards carry hashes and counts only (``search.data.DataSpec.card_info``);
run folders (``config.json``, ``stages.json``, stage records, case caches) carry the spec through
:func:`recorded_source`: ``"camus:folder-sha256:<16 hex>"``. The hash changes when the folder does,
so a config's hash still changes with its data (and a change of data still reruns the stages), but it
does not say which folder it was. The phantom stays ``"phantom"`` (and phantom configs stay free of a
``source`` key, ``search.data.config_without_phantom``), so their hashes are what they always were.

Run folders made before the folder was hashed hold the plain spec; :func:`same_config` accepts those
as the same configuration, so such a run resumes (the caller rewrites its ``config.json``).
"""

from __future__ import annotations

import hashlib
from typing import Any

PHANTOM = "phantom"
FOLDER_HASH = "folder-sha256:"


def recorded_source(text: Any) -> str:
    """``"phantom"`` as is; ``"KIND:DIR"`` -> ``"KIND:folder-sha256:<first 16 hex of sha256(DIR)>"``.

    ``DIR`` is hashed as given (``DataSpec.text`` gives it absolute and resolved). A value that is
    already recorded is returned unchanged.
    """
    raw = str(text if text is not None else PHANTOM).strip()
    kind, sep, folder = raw.partition(":")
    if raw == PHANTOM or not sep or folder.startswith(FOLDER_HASH):
        return raw
    return f"{kind}:{FOLDER_HASH}{hashlib.sha256(folder.encode()).hexdigest()[:16]}"


def recorded_config(doc: dict[str, Any]) -> dict[str, Any]:
    """A method config dict as run folders record it: no phantom ``data.source``
    (``config_without_phantom``), a dataset's as :func:`recorded_source`."""
    from search.data import config_without_phantom

    doc = config_without_phantom(doc)
    data = doc.get("data")
    if isinstance(data, dict) and "source" in data:
        doc = {**doc, "data": {**data, "source": recorded_source(data["source"])}}
    return doc


#: Top-level config keys that say how a run goes, not what it computes: a run folder resumes under another value
#: (``python -m search`` gives every stage the machine's cores; a folder begun with ``--threads 1`` carries on).
RUNTIME_KEYS = ("threads",)


def without_runtime_keys(doc: Any) -> Any:
    """``doc`` without its top-level ``RUNTIME_KEYS`` (a non-dict as it is): what a run's configuration is compared
    and hashed by."""
    return {k: v for k, v in doc.items() if k not in RUNTIME_KEYS} if isinstance(doc, dict) else doc


def same_config(old: Any, new: dict[str, Any]) -> bool:
    """Whether a run folder's ``config.json`` (``old``) is the configuration ``new`` (recorded), also
    when ``old`` was written with the plain dataset folder before it was hashed, and whatever the
    ``RUNTIME_KEYS`` (the thread count) of either."""
    old, new = without_runtime_keys(old), without_runtime_keys(new)
    return old == new or (isinstance(old, dict) and recorded_config(old) == new)


__all__ = ["FOLDER_HASH", "RUNTIME_KEYS", "recorded_config", "recorded_source", "same_config", "without_runtime_keys"]
