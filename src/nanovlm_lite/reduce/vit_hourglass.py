"""Hourglass ViT ("Expedite", Liang et al. 2022): the later blocks on a coarser grid.

At block k the tile's patch grid is average-pooled f x f; blocks k.. run on the coarse
grid (N / f^2 tokens); then the full grid is rebuilt before the post-layernorm as the
full-resolution stream at block k plus the coarse blocks' update (coarse output - coarse
input), upsampled nearest (each coarse token's update copied to its f x f patches). The
fine detail the early blocks computed survives; the later blocks add context at the
coarse scale. Pooling and copying are not FLOPs: the cost is blocks k.. at N / f^2 tokens.
"""
from __future__ import annotations

import torch

from .learned_pool import pool_windows


def block_tokens(patches: int, blocks: int, block: int | None, factor: int) -> list[int]:
    """Tokens each ViT block runs on."""
    coarse = patches // (factor * factor)
    return [coarse if block is not None and b >= block else patches for b in range(blocks)]


def upsample(tokens: torch.Tensor, grid: int, factor: int) -> torch.Tensor:
    """[n, (g/f)^2, D] -> [n, g*g, D], nearest: the inverse layout of `pool_windows`."""
    n, _, dim = tokens.shape
    out = grid // factor
    x = tokens.reshape(n, out, 1, out, 1, dim).expand(n, out, factor, out, factor, dim)
    return x.reshape(n, grid * grid, dim)


def _run(layer, hidden):
    out = layer(hidden, attention_mask=None)
    return out[0] if isinstance(out, tuple) else out


def run_blocks(layers, hidden: torch.Tensor, block: int, factor: int) -> torch.Tensor:
    """The ViT blocks, blocks `block`.. on the f x f pooled grid, then the full grid back."""
    for layer in layers[:block]:
        hidden = _run(layer, hidden)
    grid = int(round(hidden.shape[1] ** 0.5))
    coarse_in = pool_windows(hidden, grid, factor).mean(2)
    coarse = coarse_in
    for layer in layers[block:]:
        coarse = _run(layer, coarse)
    return hidden + upsample(coarse - coarse_in, grid, factor)
