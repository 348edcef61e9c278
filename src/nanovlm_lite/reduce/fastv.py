"""FastV: after LM layer K, drop a ratio of each row's image tokens, the ones the last
position attends to least in layer K (softmax attention averaged over heads).

The scores come from layer K's own modules: the last position's query is recomputed
(input norm, q_proj, RoPE from the same tables) and meets the post-RoPE keys layer K just
wrote to the cache, so attention itself is untouched. Counted extra FLOPs per row:
2*d*(H*hd) for that query + 2*S*(H*hd) for its scores over the S keys of layer K
(flops.fastv_score_flops). Each row drops plan.fastv_dropped(its image tokens, ratio).

After the drop, layers > K see only the kept tokens (their original positions, so RoPE is
unchanged) and cache only them; layers <= K keep every key. Rows of a batch drop different
counts, so the kept tokens are right-aligned and the rows left-padded with masked slots.
`FastVCache` remembers the kept-key mask of the deeper layers for later decode steps, and
`mask_for_layer` gives each layer the key mask that matches its cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

from ..plan import fastv_dropped   # int(n_image_tokens * ratio), per row
from ..settings import PointSettings, SettingsError


class FastVCache(DynamicCache):
    """A DynamicCache that also knows which keys the layers after a FastV drop hold.
    Without a drop it is a plain DynamicCache."""

    def __init__(self, config=None):
        super().__init__(config=config)
        self.fastv_layer: int | None = None   # layers > this one hold only the kept keys
        self.kept_mask: torch.Tensor | None = None   # [B, K'] their keys' mask
        self.replaced: int = 0                # caller-mask columns that kept_mask stands for

    def batch_repeat_interleave(self, repeats: int):
        super().batch_repeat_interleave(repeats)
        if self.kept_mask is not None:
            self.kept_mask = self.kept_mask.repeat_interleave(repeats, 0)

    def batch_select_indices(self, indices: torch.Tensor):
        super().batch_select_indices(indices)
        if self.kept_mask is not None:
            self.kept_mask = self.kept_mask[indices]


@dataclass
class FastV:
    layer: int | None
    ratio: float
    cache: object
    _memo: tuple = field(default=(None, None), repr=False)

    @classmethod
    def from_settings(cls, settings: PointSettings, cache) -> "FastV":
        fastv = cls(settings.fastv_layer, settings.fastv_ratio, cache)
        if fastv.active and settings.fastv_layer in settings.skip_lm_blocks:
            raise SettingsError(f"fastv_layer {settings.fastv_layer} is in skip_lm_blocks: "
                                "tokens cannot drop after a block that does not run")
        return fastv

    @property
    def active(self) -> bool:
        return self.layer is not None and self.ratio > 0

    @property
    def done(self) -> bool:
        return getattr(self.cache, "fastv_layer", None) is not None

    def mask_for_layer(self, layer: int, mask: torch.Tensor) -> torch.Tensor:
        """The [B, keys] mask of what `layer` attends to: the caller's mask (every key of
        the sequence) for layers that cached every key, else the kept keys + the new ones."""
        cache = self.cache
        if not self.done or layer <= cache.fastv_layer:
            return mask
        if self._memo[0] is not mask:   # the same object for every deeper layer
            reduced = torch.cat([cache.kept_mask.to(mask.dtype), mask[:, cache.replaced:]], 1)
            self._memo = (mask, reduced)
        return self._memo[1]

    def drops_after(self, layer: int) -> bool:
        return self.active and layer == self.layer and not self.done

    def drop(self, block, block_input: torch.Tensor, hidden: torch.Tensor,
             positions: torch.Tensor, rope, mask: torch.Tensor,
             image_token_mask: torch.Tensor | None):
        """After `block` (layer K) ran on `block_input` [B, T, d] giving `hidden`: keep the
        rows' tokens minus their least-attended image tokens. `mask` covers the cache's
        earlier keys plus these T. Returns (hidden [B, T', d], positions [B, T'])."""
        cache = self.cache
        if not isinstance(cache, FastVCache):
            raise TypeError("FastV needs the cache made by lm.new_cache (a FastVCache)")
        if image_token_mask is None:
            raise ValueError("FastV needs image_token_mask for the prefill that holds the image")
        if image_token_mask.is_meta:
            raise ValueError("FastV needs image_token_mask with values (e.g. on the CPU) to "
                             "know where the image tokens are")
        batch, width = hidden.shape[:2]
        past = mask.shape[1] - width
        scores = self.last_position_attention(block, block_input, rope, mask)[:, past:]
        is_image = image_token_mask.cpu().bool()
        # a meta mask (FLOP counting) has no values: take every row as unpadded
        valid = (torch.ones(batch, width, dtype=torch.bool) if mask.is_meta
                 else mask[:, past:].cpu().bool())
        keep = valid.clone()
        for row in range(batch):
            n_drop = fastv_dropped(int(is_image[row].sum()), self.ratio)
            if n_drop == 0:
                continue
            where = is_image[row].nonzero()[:, 0]
            if scores.is_meta:   # FLOP counting: which tokens go does not change the cost
                lowest = torch.arange(n_drop)
            else:
                lowest = scores[row, where.to(scores.device)].float().topk(
                    n_drop, largest=False).indices.cpu()
            keep[row, where[lowest]] = False
        counts = keep.sum(1)
        kept_width = int(counts.max())
        index = torch.zeros(batch, kept_width, dtype=torch.long)
        slots = torch.zeros(batch, kept_width, dtype=mask.dtype)
        for row in range(batch):
            n = int(counts[row])
            index[row, kept_width - n:] = keep[row].nonzero()[:, 0]
            slots[row, kept_width - n:] = 1
        index = index.to(hidden.device)
        hidden = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
        positions = positions.gather(1, index)
        cache.fastv_layer = self.layer
        cache.kept_mask = torch.cat([mask[:, :past], slots.to(mask.device)], 1)
        cache.replaced = mask.shape[1]
        return hidden, positions

    def last_position_attention(self, block, block_input, rope, mask) -> torch.Tensor:
        """[B, keys]: softmax attention of the last position in `block`, mean over heads."""
        attn = block.self_attn
        batch = block_input.shape[0]
        x = block.input_layernorm(block_input[:, -1:])
        q = attn.q_proj(x).view(batch, 1, -1, attn.head_dim).transpose(1, 2)   # [B, H, 1, hd]
        cos, sin = rope
        q, _ = apply_rotary_pos_emb(q, q, cos[:, -1:], sin[:, -1:])
        keys = repeat_kv(self.cache.layers[attn.layer_idx].keys, attn.num_key_value_groups)
        logits = torch.matmul(q, keys.transpose(-1, -2)).float() * attn.scaling  # [B, H, 1, S]
        logits = logits.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        return torch.softmax(logits, -1).mean(1)[:, 0]
