"""The labelled cases of a ``--data`` folder and its official split: ``app.data.dataset_index``.

The indexing (``open_dataset``, ``CaseRef``, ``DatasetIndex``, anonymous case ids) and the readers
of the datasets' official splits (CAMUS ``database_split/`` and 2019 ``training/`` + ``testing/``,
ACDC ``training/`` + ``testing/``, EchoNet's ``Split`` column) live in the app's data layer, so that
``python -m app validate KIND:DIR --part test`` scores exactly the test part the search held out;
this module re-exports them for ``search.data``.
"""

from __future__ import annotations

from app.data.dataset_index import (CAMUS_SPLIT_FILES, OFFICIAL_PARTS, PARTS, CaseRef, DatasetIndex, anonymous_id,
                                    cases_of_part, open_dataset)

__all__ = ["CAMUS_SPLIT_FILES", "OFFICIAL_PARTS", "PARTS", "CaseRef", "DatasetIndex", "anonymous_id", "cases_of_part",
           "open_dataset"]
