"""Learned pooling of a tile's image tokens: a weighted f x f combination plus channel attention.

Each output token is a softmax-weighted sum of the f*f tokens of its window (one learned
weight per window position), then every channel is rescaled by a squeeze-excitation gate
computed from the tile's mean pooled token (D -> D/r -> D, r = 6: ~308k parameters at
D = 960). Initialised as average pooling: uniform window logits, and the gate's last
layer at zero so that the gate 2*sigmoid(0) is exactly 1.

The weights are trained by train/ and kept in the checkpoint's sidecar
(`nanovlm_lite_sidecar.safetensors`) as `learned_pool.*`; `from_state_dict` rebuilds the
module from those tensors alone.
"""
from __future__ import annotations

import torch
from torch import nn

SE_REDUCTION = 6


def se_hidden(dim: int, reduction: int = SE_REDUCTION) -> int:
    return max(1, dim // reduction)


def learned_pool_flops(tokens_in: int, dim: int, factor: int,
                       reduction: int = SE_REDUCTION) -> int:
    """FLOPs (2 per multiply-accumulate) of pooling ONE tile of `tokens_in` tokens: the
    window combination is one matmul of every input token against its window weight
    (2 * tokens_in * dim), the gate two matmuls on the tile's squeezed token
    (2 * dim * h twice). Means, softmax, sigmoid and products are not counted (as
    FlopCounterMode does not)."""
    if tokens_in % (factor * factor):
        raise ValueError(f"{tokens_in} tokens do not split into {factor}x{factor} windows")
    return 2 * tokens_in * dim + 4 * dim * se_hidden(dim, reduction)


def pool_windows(tokens: torch.Tensor, grid: int, factor: int) -> torch.Tensor:
    """[n, g*g, D] row-major tokens -> [n, (g/f)^2, f*f, D]: each output token's window,
    output tokens row-major, window positions row-major."""
    n, count, dim = tokens.shape
    if count != grid * grid or grid % factor:
        raise ValueError(f"{count} tokens are not a {grid}x{grid} grid divisible by {factor}")
    out = grid // factor
    x = tokens.reshape(n, out, factor, out, factor, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, out * out, factor * factor, dim)


class LearnedPool(nn.Module):
    def __init__(self, dim: int, factor: int, reduction: int = SE_REDUCTION,
                 hidden: int | None = None):
        super().__init__()
        self.dim, self.factor = dim, factor
        hidden = hidden or se_hidden(dim, reduction)
        self.window_logits = nn.Parameter(torch.zeros(factor, factor))
        self.squeeze = nn.Linear(dim, hidden)
        self.excite = nn.Linear(hidden, dim)
        nn.init.zeros_(self.excite.weight)
        nn.init.zeros_(self.excite.bias)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "LearnedPool":
        """Rebuild from `learned_pool.*` tensors (prefix stripped): shapes give the sizes."""
        factor = state["window_logits"].shape[0]
        hidden, dim = state["squeeze.weight"].shape
        module = cls(dim, factor, hidden=hidden)
        module.load_state_dict(state)
        return module

    def forward(self, tokens: torch.Tensor, grid: int) -> torch.Tensor:
        """[n_tiles, g*g, D] -> [n_tiles, (g/f)^2, D], row-major."""
        windows = pool_windows(tokens, grid, self.factor)           # [n, T', f*f, D]
        weights = torch.softmax(self.window_logits.float().flatten(), 0)
        weights = weights.to(tokens.dtype)[:, None]                  # [f*f, 1]: a counted matmul
        pooled = torch.matmul(windows.transpose(-1, -2), weights)[..., 0]   # [n, T', D]
        squeezed = pooled.mean(1)                                    # [n, D]
        gate = 2 * torch.sigmoid(self.excite(torch.relu(self.squeeze(squeezed))))
        return pooled * gate[:, None, :]
