"""FLOPs and parameter counts of a network at its deployed input shape."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(module: nn.Module, inputs: Sequence[torch.Tensor]) -> int:
    """Floating-point operations of one forward pass (torch's counter: 2 per multiply-accumulate,
    convolutions, transposed convolutions and matmuls; element-wise ops are not counted)."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


def count_params(module: nn.Module) -> int:
    """Number of parameters (BatchNorm affine included, running statistics not)."""
    return int(sum(p.numel() for p in module.parameters()))
