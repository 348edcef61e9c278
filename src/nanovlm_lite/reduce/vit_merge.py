"""Token merging inside the ViT, with unmerge (ToMe for Stable Diffusion, "tomesd").

From block `start` on, each ViT block computes on fewer tokens and leaves the patch grid
intact (the pixel-shuffle projector reshapes the full grid):
1. match: a tile's patches split into destinations (the top-left patch of each 2x2 cell
   of the patch grid) and sources (the rest). Each source's cosine similarity to every
   destination, on the block's input tokens (tomesd matches on the hidden states: the
   block's own keys would cost a k projection of every token first), picks its most
   similar destination; the r sources most similar to theirs merge into it.
2. attention on the merged set: the block's layernorm output, averaged over each merged
   group (size-weighted; every block starts from the full grid, so each token has size 1),
   with proportional attention (log of a token's size added to its attention logits, as
   ToMe does, so a merged token weighs as the tokens it stands for).
3. unmerge: each merged result is copied back to its sources; the residual adds on the
   full grid. The MLP runs the same way with the same matching.
Merging on entry to each block and unmerging on its exit, rather than carrying the merged
set through the later blocks and unmerging once, keeps every block's residual stream at
full resolution, so a token's error does not compound block after block.

Cost per merged block and tile (N patches, r merged, N_dst = N / 4 destinations): the
linears and attention on N - r tokens, plus the similarity matmul 2 * (N - N_dst) * N_dst * D.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CELL = 2   # destinations: one patch per CELL x CELL cell of the patch grid


def destination_count(patches: int) -> int:
    grid = int(round(patches ** 0.5))
    return (grid // CELL) * (grid // CELL)


def merged_count(patches: int, ratio: float) -> int:
    """Tokens a block merges away: int(ratio * patches), at most the sources."""
    r = int(ratio * patches)
    sources = patches - destination_count(patches)
    if r > sources:
        raise ValueError(f"vit_merge_ratio {ratio} merges {r} of {patches} patches, but only "
                         f"{sources} are sources (one patch per {CELL}x{CELL} cell is a "
                         f"destination): use a ratio <= {sources / patches}")
    return r


def block_tokens(patches: int, blocks: int, ratio: float, start: int) -> list[int]:
    """Tokens each ViT block's linears and attention run on."""
    r = merged_count(patches, ratio) if ratio > 0 else 0
    return [patches - r if b >= start else patches for b in range(blocks)]


def _split(patches: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    grid = int(round(patches ** 0.5))
    if grid * grid != patches or grid % CELL:
        raise ValueError(f"{patches} patches are not a square grid divisible by {CELL}")
    rows = torch.arange(grid).repeat_interleave(grid)
    cols = torch.arange(grid).repeat(grid)
    is_dst = (rows % CELL == 0) & (cols % CELL == 0)
    idx = torch.arange(patches)
    return idx[is_dst].to(device), idx[~is_dst].to(device)


class Merge:
    """One block's bipartite soft matching: `slot` [n, N] is each patch's merged token."""

    def __init__(self, x: torch.Tensor, r: int):
        n, patches, _ = x.shape
        dst, src = _split(patches, x.device)
        a = F.normalize(x[:, src], dim=-1)
        b = F.normalize(x[:, dst], dim=-1)
        scores = a @ b.transpose(-1, -2)                 # [n, N_src, N_dst]: the counted matmul
        best, best_dst = scores.max(-1)
        order = best.argsort(dim=-1, descending=True, stable=True)
        merged, kept = order[:, :r], order[:, r:].sort(dim=-1).values
        n_kept = kept.shape[1]
        self.tokens = n_kept + len(dst)
        slot = torch.empty((n, patches), dtype=torch.long, device=x.device)
        slot.scatter_(1, src[kept], torch.arange(n_kept, device=x.device).expand(n, -1))
        slot[:, dst] = torch.arange(n_kept, self.tokens, device=x.device)
        slot.scatter_(1, src[merged], n_kept + best_dst.gather(1, merged))
        self.slot = slot
        size = torch.zeros((n, self.tokens), dtype=x.dtype, device=x.device)
        self.size = size.scatter_add_(1, slot, torch.ones_like(slot, dtype=x.dtype))

    def merge(self, t: torch.Tensor) -> torch.Tensor:
        """[n, N, D] -> [n, N - r, D]: each merged token the mean of its group."""
        out = torch.zeros((t.shape[0], self.tokens, t.shape[-1]), dtype=t.dtype, device=t.device)
        out.scatter_add_(1, self.slot[..., None].expand_as(t), t)
        return out / self.size[..., None]

    def unmerge(self, t: torch.Tensor) -> torch.Tensor:
        """[n, N - r, D] -> [n, N, D]: each merged result copied back to its patches."""
        return t.gather(1, self.slot[..., None].expand(-1, -1, t.shape[-1]))

    def attention_bias(self) -> torch.Tensor:
        """Proportional attention: log(size) added to every query's logit of a key."""
        return self.size.log()[:, None, None, :]


def merged_block(layer, hidden: torch.Tensor, r: int) -> torch.Tensor:
    """One SigLIP encoder layer (pre-norm attention, then MLP) on merged tokens."""
    m = Merge(hidden, r)
    attn, _ = layer.self_attn(hidden_states=m.merge(layer.layer_norm1(hidden)),
                              attention_mask=m.attention_bias())
    hidden = hidden + m.unmerge(attn)
    return hidden + m.unmerge(layer.mlp(m.merge(layer.layer_norm2(hidden))))


def run_blocks(layers, hidden: torch.Tensor, ratio: float, start: int) -> torch.Tensor:
    """The ViT blocks with merging from block `start` on; ratio 0 is the plain forward."""
    r = merged_count(hidden.shape[1], ratio) if ratio > 0 else 0
    for b, layer in enumerate(layers):
        if r and b >= start:
            hidden = merged_block(layer, hidden, r)
        else:
            out = layer(hidden, attention_mask=None)
            hidden = out[0] if isinstance(out, tuple) else out
    return hidden
