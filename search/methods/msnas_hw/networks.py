"""The networks of Table 2, built from a row spec (shared with rtdnas: ``search.train.row_networks``)."""

from __future__ import annotations

from search.train.row_networks import (
    build_derived,
    build_row_network,
    per_frame_network,
    row_filters,
    unet_config,
)

__all__ = ["build_derived", "build_row_network", "per_frame_network", "row_filters", "unet_config"]
