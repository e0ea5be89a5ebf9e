"""``--data SPEC``: which dataset a training stage reads, parsed once at the command-line edge.

The spec itself (``phantom`` or ``KIND:DIR``, :class:`DataSpec`, :func:`parse_data_spec`, the
card's hashes) lives in ``app.data.data_spec``, shared with ``python -m app validate KIND:DIR``;
it is re-exported here. This module adds what only the training side needs: ``argparse_data_spec``
(``parse_data_spec`` for ``argparse``'s ``type=``), ``SPEC_HELP`` and ``config_without_phantom``.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.data.data_spec import (DATASET_NAMES, KINDS, PHANTOM, DataSpec, DataSpecError, case_list_sha256,
                                parse_data_spec)

SPEC_HELP = ("training data: phantom (default) or KIND:DIR with KIND one of "
             + ", ".join(KINDS) + " (see search/data/__init__.py)")


def argparse_data_spec(text: str) -> DataSpec:
    """``parse_data_spec`` for ``argparse`` (``type=``): a bad spec is one usage line."""
    try:
        return parse_data_spec(text)
    except DataSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--data {text}: ")) from None


def config_without_phantom(doc: dict[str, Any]) -> dict[str, Any]:
    """A config dict with ``data.source`` dropped when it is the phantom.

    Configs carry the spec in ``DataConfig.source`` so that a change of data changes their hash;
    for the phantom the key is left out, so phantom configs (and the hashes, caches and run
    folders made from them) stay what they were before ``--data`` existed.
    """
    data = doc.get("data")
    if isinstance(data, dict) and data.get("source", PHANTOM) == PHANTOM:
        doc = {**doc, "data": {k: v for k, v in data.items() if k != "source"}}
    return doc


__all__ = ["DATASET_NAMES", "KINDS", "PHANTOM", "SPEC_HELP", "DataSpec", "DataSpecError", "argparse_data_spec",
           "case_list_sha256", "config_without_phantom", "parse_data_spec"]
