"""FLOPs of a question, two independent ways: an analytic model that prices a `CostPlan`
(this file), and `FlopCounterMode` through the engine's own forward path
(`flops_measure.py`); `flops_profile.py` puts them to use (the `flops` command, a point's
profile).

Convention: 2 FLOPs per multiply-accumulate; matmuls, linears, convolutions and attention
count, nothing else (norms, softmax, activations, RoPE, embedding lookups, pooling means
and maxima are 0). Causal attention is counted DENSE: every query against every key of
its block, masked or not, because that is what the kernels compute and what
FlopCounterMode counts. Padding of a batch is not counted: a question's cost is what it
costs alone (batch size 1).

Per component, with D the ViT width, I its MLP width, N patches per tile, p the patch,
s the pixel-shuffle factor, d the LM width, d_q = heads * head_dim, d_kv = kv_heads *
head_dim, I_lm the LM's MLP width, V the vocabulary:
- vision, per tile:      2*N*(3*p*p)*D + sum over blocks of (8*T*D^2 + 4*T^2*D + 4*T*D*I),
                         T = the tokens the block runs on (N; fewer under vit_merge:
                         N - r from its start block, vit_hourglass: N / f^2 from block k)
- projector, per tile:   2 * T * (D*s*s) * d          (T = tokens after pixel shuffle)
- reduce:                select attention: 2*N^2*D per tile (the last block's q @ k^T);
                         vit_merge: 2*N_src*N_dst*D per tile and merging block (matching);
                         pool learned: reduce.learned_pool.learned_pool_flops per tile;
                         avg / max pooling, norm and random selection: 0
- lm_prefill, per block that runs, on the S_b tokens it runs on:
      S_b * 2*(d*d_q + 2*d*d_kv + d_q*d + 3*d*I_lm)  +  4 * S_b * S_b * d_q
  plus FastV's ranking at block K: 2*d*d_q (the last query) + 2*S_K*d_q (its scores)
- lm_head:               2 * d * V per position whose logits are computed
- decode step t (0-based) with a KV cache: per block, the linears for 1 token + 4 *
  (C_b + t + 1) * d_q attention (C_b = the block's cached keys), + 2*d*V for the head.
  `decode_per_token` is step 0 (cache of S tokens).
- cloze (`lm_continuation`): the prompt is the shared prefix, priced once; each choice
  of n_c tokens then runs as a continuation of the cached prefix: per block the linears
  for n_c tokens + 4 * n_c * (C_b + n_c) * d_q; the head runs at the last prefix
  position once and at the first n_c - 1 positions of each choice (the positions that
  predict a choice token).
`total` is all of it; generating N tokens costs prefill + head + (N - 1) decode steps.
"""
from __future__ import annotations

from dataclasses import replace

from .model.config import VLMConfig
from .plan import CostPlan, decode_steps, make_plan, plan_for_record
from .settings import PointSettings

COMPONENTS = ("vision", "projector", "reduce", "lm_prefill", "lm_continuation", "lm_head",
              "decode")
# the CLI's cloze what-if: four choices of this many tokens (A-OKVQA choices are 1-3 words)
DEFAULT_CHOICE_TOKENS = (3, 3, 3, 3)


# --------------------------------------------------------------------------- analytic
def vit_tile_flops(cfg: VLMConfig, patches: int, blocks: int, block_tokens=()) -> int:
    """One tile through the patch embedding and `blocks` ViT blocks; `block_tokens`: the
    tokens each block runs on (vit_merge / vit_hourglass; empty: every block on all N)."""
    D, I, p = cfg.vit_hidden_dim, cfg.vit_inter_dim, cfg.vit_patch_size
    patch_embed = 2 * patches * (3 * p * p) * D
    tokens = tuple(block_tokens) or (patches,) * blocks
    if len(tokens) != blocks:
        raise ValueError(f"{len(tokens)} block token counts for {blocks} ViT blocks")
    return patch_embed + sum(8 * t * D * D + 4 * t * t * D + 4 * t * D * I for t in tokens)


def vit_match_flops(cfg: VLMConfig, plan: CostPlan) -> int:
    """vit_merge's matching: per tile and merging block, sources x destinations cosine
    similarities of D-wide tokens (the normalising is not a FLOP)."""
    sources, destinations = plan.vit_match
    return plan.n_tiles * plan.vit_match_blocks * 2 * sources * destinations * cfg.vit_hidden_dim


def projector_tile_flops(cfg: VLMConfig, tokens: int) -> int:
    s = cfg.mp_pixel_shuffle_factor
    return 2 * tokens * (cfg.vit_hidden_dim * s * s) * cfg.lm_hidden_dim


def _lm_dims(cfg: VLMConfig) -> tuple[int, int, int]:
    hd = cfg.lm_head_dim
    return cfg.lm_hidden_dim, cfg.lm_n_heads * hd, cfg.lm_n_kv_heads * hd


def lm_linear_flops(cfg: VLMConfig, tokens: int) -> int:
    """One LM block's q, k, v, o projections and gated MLP for `tokens` tokens."""
    d, dq, dkv = _lm_dims(cfg)
    return tokens * 2 * (d * dq + 2 * d * dkv + dq * d + 3 * d * cfg.lm_inter_dim)


def attention_flops(cfg: VLMConfig, queries: int, keys: int) -> int:
    """One LM block's q @ k^T and attn @ v, dense, over all query heads (GQA repeats k, v)."""
    return 4 * queries * keys * _lm_dims(cfg)[1]


def head_flops(cfg: VLMConfig, positions: int) -> int:
    return 2 * cfg.lm_hidden_dim * cfg.lm_vocab_size * positions


def fastv_score_flops(cfg: VLMConfig, keys: int) -> int:
    """FastV's ranking at block K: the last position's query and its scores over K's keys."""
    d, dq, _ = _lm_dims(cfg)
    return 2 * d * dq + 2 * keys * dq


def reduce_flops(cfg: VLMConfig, plan: CostPlan) -> int:
    """The token-reduction knobs' own compute, summed over the knobs a point combines
    (vit_merge's matching runs beside a learned pool; pooling means and maxima are not FLOPs)."""
    flops = vit_match_flops(cfg, plan) if plan.vit_match_blocks else 0
    if plan.select == "attention":
        flops += plan.n_tiles * 2 * plan.patches_per_tile ** 2 * cfg.vit_hidden_dim
    if plan.pool == "learned":
        from .reduce.learned_pool import learned_pool_flops
        flops += plan.n_tiles * learned_pool_flops(plan.projected_tokens_per_tile,
                                                   cfg.lm_hidden_dim, plan.pool_factor)
    return flops


def decode_step_flops(cfg: VLMConfig, plan: CostPlan, step: int = 0) -> int:
    """Decode step `step` (0-based): one token through the blocks that run, attending to
    each block's cache plus the tokens generated so far, then the head."""
    lm = sum(lm_linear_flops(cfg, 1) + attention_flops(cfg, 1, cached + step + 1)
             for cached in plan.block_lengths)
    return lm + head_flops(cfg, 1)


def price(cfg: VLMConfig, plan: CostPlan) -> dict[str, int]:
    """Integer FLOPs per component of one question (see the module docstring)."""
    vision = plan.n_tiles * vit_tile_flops(cfg, plan.patches_per_tile, plan.vit_blocks,
                                           plan.vit_block_tokens)
    projector = plan.n_tiles * projector_tile_flops(cfg, plan.projected_tokens_per_tile)
    prefill = sum(lm_linear_flops(cfg, n) + attention_flops(cfg, n, n)
                  for n in plan.block_lengths)
    if plan.fastv_layer is not None:
        prefill += fastv_score_flops(cfg, plan.cache_length(plan.fastv_layer))
    continuation = sum(lm_linear_flops(cfg, n) + attention_flops(cfg, n, cached + n)
                       for n in plan.choice_tokens for cached in plan.block_lengths)
    out = {
        "tiles": plan.n_tiles, "image_tokens": plan.image_tokens,
        "sequence_length": plan.sequence_length, "decode_steps": plan.decode_steps,
        "vision": vision, "projector": projector, "reduce": reduce_flops(cfg, plan),
        "lm_prefill": prefill, "lm_continuation": continuation,
        "lm_head": head_flops(cfg, plan.logit_positions),
        "decode": sum(decode_step_flops(cfg, plan, t) for t in range(plan.decode_steps)),
        "decode_per_token": decode_step_flops(cfg, plan, 0),
    }
    out["total"] = sum(out[k] for k in COMPONENTS)
    return out


def generation_flops(cfg: VLMConfig, plan: CostPlan, n_tokens: int) -> int:
    """Total FLOPs of generating `n_tokens` greedy tokens for the plan's question."""
    return price(cfg, replace(plan, decode_steps=decode_steps(n_tokens)))["total"]


def question_flops(cfg: VLMConfig, settings: PointSettings | dict, record: dict) -> dict:
    """Analytic FLOPs of one evaluated question from its record (n_tiles, sequence_length,
    decode_tokens, cloze choice_tokens). `total` is the MCQ answer's cost; a direct answer
    generated besides it (da_sequence_length, da_decode_tokens) is a second prompt with
    the same image, reported as `direct_answer_total` and not part of `total`."""
    if not isinstance(settings, PointSettings):
        settings = PointSettings.from_dict(settings)
    out = price(cfg, plan_for_record(cfg, settings, record))
    if record.get("da_sequence_length"):
        da = make_plan(cfg, replace(settings, scoring="generate"), int(record["n_tiles"]),
                       int(record["da_sequence_length"]), int(record.get("da_decode_tokens") or 0))
        out["direct_answer_total"] = price(cfg, da)["total"]
    return out
