"""The language model's forward, one transformers Llama block at a time.

We loop over `lm.model.layers` ourselves (what LlamaModel.forward does) so that a point
can skip blocks or drop image tokens after a block (FastV) without rewriting attention:
each block is transformers' own, fed our mask, RoPE tables and KV cache.
"""
from __future__ import annotations

import torch
from transformers import DynamicCache

from .settings import PointSettings


def attention_mask_4d(mask: torch.Tensor, query_len: int) -> torch.Tensor:
    """Boolean [B, 1, Q, K] mask: causal over the last Q of K positions, padding keys hidden.
    A padding query may see itself, so no row is empty (an empty row gives NaN in SDPA)."""
    keys = mask.shape[1]
    q_idx = torch.arange(keys - query_len, keys, device=mask.device)
    k_idx = torch.arange(keys, device=mask.device)
    causal = k_idx[None, :] <= q_idx[:, None]
    allowed = causal[None, None] & mask[:, None, None, :].bool()
    return allowed | (k_idx[None, :] == q_idx[:, None])[None, None]


def new_cache(lm) -> DynamicCache:
    """A DynamicCache that also remembers FastV's kept keys (plain without FastV)."""
    from .reduce.fastv import FastVCache
    return FastVCache(config=lm.config)


def run_lm(lm, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
           settings: PointSettings, cache=None, image_token_mask: torch.Tensor | None = None):
    """Final-normed hidden states [B, T', d] and the cache. `mask` covers the cached keys
    plus these T queries. T' < T only when FastV dropped tokens during this prefill."""
    from .reduce.fastv import FastV
    model = lm.model
    cache = new_cache(lm) if cache is None else cache
    fastv = FastV.from_settings(settings, cache)
    hidden = embeds
    rope = model.rotary_emb(hidden, position_ids=positions)
    attn, attn_of = None, None
    for i, layer in enumerate(model.layers):
        if i in settings.skip_lm_blocks:
            continue
        # after a FastV drop, deeper layers cache fewer keys: each layer gets its own mask
        layer_mask = fastv.mask_for_layer(i, mask)
        if layer_mask is not attn_of:
            attn, attn_of = attention_mask_4d(layer_mask, hidden.shape[1]), layer_mask
        block_input = hidden
        hidden = layer(hidden, attention_mask=attn, position_embeddings=rope,
                       position_ids=positions, cache=cache, use_cache=True)
        if fastv.drops_after(i):
            hidden, positions = fastv.drop(layer, block_input, hidden, positions, rope, mask,
                                           image_token_mask)
            rope = model.rotary_emb(hidden, position_ids=positions)
    return model.norm(hidden), cache


def decode_step(vlm, token_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                cache, settings: PointSettings):
    """One greedy step: the new tokens [B, 1] attend to the cache plus themselves."""
    embeds = vlm.lm.model.embed_tokens(token_ids)
    return run_lm(vlm.lm, embeds, mask, positions, settings, cache=cache)
