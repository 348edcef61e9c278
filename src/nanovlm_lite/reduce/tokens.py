"""Image-token reduction after the projector: pooling or selection, per tile.

A tile's tokens form a g x g grid, row-major (g = tile / patch / pixel-shuffle factor).
- pool (avg | max | learned), factor f: each f x f window becomes one token, so a tile
  keeps (g/f)^2 tokens, row-major.
- select (norm | attention | random), keep_ratio r: a tile keeps
  k = max(1, round(r * g*g)) tokens (Python's round: half to even), in their original
  order. norm ranks by the L2 norm of the projected token; attention by the attention the
  token's patches receive in the last ViT block run; random by a generator seeded with
  `settings.seed`, restarted for every image so that batching changes nothing.

`tokens_kept` says how many tokens a tile keeps (the prompt carries exactly that many
<|image|> slots); `reduce_image_tokens` does it to the tensors.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from ..settings import PointSettings, SettingsError
from ..sidecar import SIDECAR_NAME
from .learned_pool import LearnedPool, pool_windows


def keep_count(n_tokens: int, keep_ratio: float) -> int:
    """Tokens a tile keeps under selection: max(1, round(keep_ratio * n_tokens))."""
    return max(1, round(keep_ratio * n_tokens))


def tokens_kept(n_tokens: int, grid: int, settings: PointSettings) -> int:
    """Image tokens one tile of `n_tokens` (= grid * grid) tokens keeps."""
    if settings.pool is not None:
        if grid % settings.pool_factor:
            raise SettingsError(f"pool_factor {settings.pool_factor} must divide the "
                                f"{grid}x{grid} token grid")
        return (grid // settings.pool_factor) ** 2
    if settings.select is not None:
        return keep_count(n_tokens, settings.keep_ratio)
    return n_tokens


# ------------------------------------------------------------------------------ pooling
def pool_tokens(tokens: torch.Tensor, grid: int, factor: int, how: str) -> torch.Tensor:
    """avg or max over each f x f window: [n, g*g, D] -> [n, (g/f)^2, D]."""
    windows = pool_windows(tokens, grid, factor)
    return windows.mean(2) if how == "avg" else windows.amax(2)


def learned_pool(model, settings: PointSettings) -> LearnedPool:
    """The model's trained pooling module. A model on the meta device (FLOP counting)
    gets an untrained one: its cost does not depend on its weights."""
    module = getattr(model, "learned_pool", None)
    if module is None:
        weight = model.projector.proj.weight
        if not weight.is_meta:
            raise SettingsError(
                "pool: learned needs a trained learned-pool module, which this checkpoint does "
                f"not have: train one (the finetune recipes in train/) so that its weights sit "
                f"beside the checkpoint in {SIDECAR_NAME}")
        module = LearnedPool(model.cfg.lm_hidden_dim, settings.pool_factor).to(
            device=weight.device, dtype=weight.dtype)
        model.learned_pool = module
    if module.factor != settings.pool_factor:
        raise SettingsError(f"pool: learned was trained with pool_factor {module.factor}, the "
                            f"point asks for {settings.pool_factor}")
    return module


# ---------------------------------------------------------------------------- selection
class ViTAttentionProbe:
    """Captures q and k of the last ViT block run (forward hooks on its q_proj / k_proj,
    so transformers' attention itself is untouched and nothing is recomputed)."""

    def __init__(self, n_heads: int):
        self.n_heads = n_heads
        self.q = self.k = None

    def received(self, patch_grid: int, shuffle: int) -> torch.Tensor:
        """[n_tiles, tokens]: softmax attention each patch receives, summed over heads and
        query patches, then summed over each token's s x s pixel-shuffle window.
        The only counted FLOPs are q @ k^T: 2 * P^2 * D_vit per tile (q and k are
        captured, not recomputed; norm and random selection count none)."""
        n, patches, dim = self.q.shape
        hd = dim // self.n_heads
        out = []
        for i in range(n):   # one tile at a time: the [heads, P, P] scores are the big thing
            q = self.q[i].reshape(patches, self.n_heads, hd).transpose(0, 1)
            k = self.k[i].reshape(patches, self.n_heads, hd).transpose(0, 1)
            probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)).float() * hd ** -0.5, -1)
            out.append(probs.sum((0, 1)))                          # [P]
        per_patch = torch.stack(out)
        g = patch_grid // shuffle
        return per_patch.reshape(n, g, shuffle, g, shuffle).sum((2, 4)).reshape(n, g * g)


@contextmanager
def vit_attention_probe(model, settings: PointSettings):
    """Wrap the ViT forward in this; yields a probe when select == "attention", else None."""
    if settings.select != "attention":
        yield None
        return
    layers = model.vit.encoder.layers
    block = layers[(settings.vit_blocks or len(layers)) - 1]
    probe = ViTAttentionProbe(model.cfg.vit_n_heads)

    def keep(name):
        def hook(_module, _inputs, output):
            setattr(probe, name, output)
        return hook
    handles = [block.self_attn.q_proj.register_forward_hook(keep("q")),
               block.self_attn.k_proj.register_forward_hook(keep("k"))]
    try:
        yield probe
    finally:
        for h in handles:
            h.remove()


def random_scores(n_tiles: int, n_tokens: int, seed: int,
                  tiles_per_image: list[int] | None) -> torch.Tensor:
    """Random ranks [n_tiles, tokens] on the CPU, the generator restarted for each image."""
    out = []
    for count in tiles_per_image or [n_tiles]:
        gen = torch.Generator().manual_seed(seed)
        out += [torch.rand(n_tokens, generator=gen) for _ in range(count)]
    if len(out) != n_tiles:
        raise ValueError(f"tiles_per_image sums to {len(out)}, but there are {n_tiles} tiles")
    return torch.stack(out)


def keep_top(tokens: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k highest-scoring tokens of each tile, in their original order."""
    if scores.is_meta:   # no values to rank on meta (FLOP counting): any k will do
        index = torch.arange(k, device=tokens.device).expand(tokens.shape[0], k)
    else:
        index = scores.topk(k, dim=1).indices.sort(dim=1).values.to(tokens.device)
    return tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))


# -------------------------------------------------------------------------------- entry
def reduce_image_tokens(model, tokens: torch.Tensor, features: torch.Tensor,
                        settings: PointSettings, probe: ViTAttentionProbe | None = None,
                        tiles_per_image: list[int] | None = None) -> torch.Tensor:
    """[n_tiles, T, D_lm] projected tokens -> [n_tiles, tokens_kept, D_lm].
    `features` [n_tiles, P, D_vit] are the ViT outputs (for their patch grid); `probe`
    must come from `vit_attention_probe` around the ViT forward for select: attention;
    `tiles_per_image` (tiles of each image, in order) restarts select: random per image."""
    if settings.pool is None and settings.select is None:
        return tokens
    n, count, _ = tokens.shape
    grid = int(round(count ** 0.5))
    if settings.pool in ("avg", "max"):
        return pool_tokens(tokens, grid, settings.pool_factor, settings.pool)
    if settings.pool == "learned":
        return learned_pool(model, settings)(tokens, grid)
    k = tokens_kept(count, grid, settings)
    if settings.select == "norm":
        scores = tokens.float().norm(dim=-1)
    elif settings.select == "attention":
        if probe is None or probe.q is None:
            raise ValueError("select: attention needs the probe from vit_attention_probe "
                             "wrapped around the ViT forward")
        patch_grid = int(round(features.shape[1] ** 0.5))
        scores = probe.received(patch_grid, patch_grid // grid)
    else:
        scores = random_scores(n, count, settings.seed, tiles_per_image)
    return keep_top(tokens, scores, k)
