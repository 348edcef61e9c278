"""nanoVLM's modality projector: pixel shuffle (space-to-depth), then one bias-free Linear.

A tile's g x g grid of ViT features [g*g, D] becomes (g/s) x (g/s) tokens of D*s*s
channels, each projected to the LM width. s = mp_pixel_shuffle_factor.
"""
import torch
from torch import nn


def pixel_shuffle(x: torch.Tensor, factor: int) -> torch.Tensor:
    batch, seq, dim = x.shape
    side = int(round(seq ** 0.5))
    if side * side != seq or side % factor:
        raise ValueError(f"pixel shuffle needs a square grid divisible by {factor}, got {seq} tokens")
    out = side // factor
    x = x.reshape(batch, out, factor, out, factor, dim).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, out * out, dim * factor * factor)


class PixelShuffleProjector(nn.Module):
    def __init__(self, vit_dim: int, lm_dim: int, factor: int):
        super().__init__()
        self.factor = factor
        self.proj = nn.Linear(vit_dim * factor * factor, lm_dim, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_shuffle(features, self.factor))
