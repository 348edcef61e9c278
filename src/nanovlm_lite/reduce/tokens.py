"""Image-token reduction after the projector (pooling, selection).

`tokens_kept` says how many tokens a tile keeps (the prompt carries exactly that many
<|image|> slots); `reduce_image_tokens` does the reduction on the tensors.
"""
from __future__ import annotations

import torch

from ..settings import PointSettings


def tokens_kept(n_tokens: int, grid: int, settings: PointSettings) -> int:
    if settings.pool is None and settings.select is None:
        return n_tokens
    raise NotImplementedError("token reduction is not built yet")


def reduce_image_tokens(model, tokens: torch.Tensor, features: torch.Tensor,
                        settings: PointSettings) -> torch.Tensor:
    if settings.pool is None and settings.select is None:
        return tokens
    raise NotImplementedError("token reduction is not built yet")
