"""A question's cost plan: what the model computes for one question at one point.

A point's settings turn into a `CostPlan` (tiles and their side, ViT blocks run, image
tokens kept, the tokens at each LM block, positions whose logits are computed, decode
steps); the engine executes the same thing and `flops.py` prices the plan with one set of
formulas. A knob only says how it changes the plan, so the analytic-vs-measured test
covers every knob without knowing any of them.

What a plan says, knob by knob:
- tiling (max_img_size, resize_to_max_side_len, max_tiles, global_only, tile_size):
  `n_tiles` tiles of `tile_size` px, each `patches_per_tile` patches through the ViT.
- vit_blocks: `vit_blocks` ViT blocks per tile.
- vit_merge_* / vit_hourglass_*: `vit_block_tokens`, the tokens each ViT block runs on
  (reduce.vit_merge.block_tokens, reduce.vit_hourglass.block_tokens), plus merging's own
  compute: `vit_match_blocks` blocks each match `vit_match` = (sources, destinations).
- pool / select: `tokens_per_tile` image tokens per tile after the projector's
  `projected_tokens_per_tile` (`reduce.tokens.tokens_kept`), plus the knob's own compute
  (select: attention scores the last ViT block's q @ k^T; pool: learned is a small module).
- skip_lm_blocks: `lm_blocks` lists the LM blocks that run.
- fastv_layer / fastv_ratio: blocks after `fastv_layer` run on, and cache,
  `sequence_length - fastv_dropped` tokens (`block_lengths`).
- scoring: letter and generate compute logits at the prompt's last position; generate
  then runs `decode_steps` = generated tokens - 1 decode steps (the first token comes from
  the prefill, and no forward runs after the last one); cloze runs each choice's tokens
  as a continuation of the cached prompt (`choice_tokens`).

Sequence length, when only sizes are known (`plan_for_size`):
    template_tokens + n_tiles + image_tokens + text_tokens
- template_tokens: the chat template around the user turn; 8 for nanoVLM's ChatML
  template with SmolLM2's tokenizer (`<|im_start|>` `user` `\\n` ... `<|im_end|>` `\\n`
  `<|im_start|>` `assistant` `\\n`); `template_tokens(cfg, tokenizer)` counts it exactly.
- n_tiles: one marker token per tile (`<|global_image|>` before the first tile,
  `<row_i_col_j>` before each split tile).
- text_tokens: every other token: the user text as the tokenizer splits it on its own
  (special tokens on both sides keep it apart), plus any answer prefix.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model.config import VLMConfig
from .model.image_processing import TilingRule
from .settings import PointSettings, SettingsError

# nanoVLM's ChatML template under SmolLM2's tokenizer: <|im_start|> user \n | <|im_end|> \n
# <|im_start|> assistant \n. Other tokenizers: count with `template_tokens(cfg, tokenizer)`.
CHATML_TEMPLATE_TOKENS = 8


def fastv_dropped(n_image_tokens: int, ratio: float) -> int:
    """Image tokens FastV drops after layer K: int(n_image_tokens * ratio), truncated as
    Python's int() does (so int(64 * 0.3) = 19). Each row of a batch drops this many of its
    own image tokens (those left after pooling/selection). The blocks after K then run on,
    and cache, sequence_length - dropped tokens; the blocks up to K keep every key, and
    later decode steps and cloze continuations attend over each block's own cache."""
    return int(n_image_tokens * ratio)


def decode_steps(generated_tokens: int) -> int:
    """Decode forwards that generating this many tokens takes: the prefill's logits give the
    first token and no forward runs after the last one (upstream runs one more)."""
    return max(int(generated_tokens) - 1, 0)


@dataclass(frozen=True)
class CostPlan:
    # vision
    n_tiles: int
    tile_size: int
    patches_per_tile: int            # N = (tile / patch)^2
    vit_blocks: int
    # projector and token reduction
    projected_tokens_per_tile: int   # (tile / patch / shuffle)^2
    tokens_per_tile: int             # after pool / select
    image_tokens: int                # n_tiles * tokens_per_tile: the prompt's <|image|> slots
    # language model
    sequence_length: int             # the prompt (cloze: the shared prefix)
    lm_blocks: tuple[int, ...]       # LM blocks that run, in order
    block_lengths: tuple[int, ...]   # tokens each of them runs on in the prefill (= its keys)
    logit_positions: int             # LM-head rows of the prefill and scoring
    decode_steps: int = 0
    choice_tokens: tuple[int, ...] = ()   # cloze: tokens of each choice
    # inside the ViT (vit_merge / vit_hourglass)
    vit_block_tokens: tuple[int, ...] = ()   # tokens each ViT block runs on (empty: all N)
    vit_match: tuple[int, int] = (0, 0)      # vit_merge: (sources, destinations) matched
    vit_match_blocks: int = 0                # vit_merge: blocks that match
    # knobs with compute of their own
    pool: str | None = None
    pool_factor: int = 2
    select: str | None = None
    fastv_layer: int | None = None   # the block whose last position ranks the image tokens
    fastv_dropped: int = 0
    # shape facts for reports
    grid: tuple[int, int] | None = None
    text_tokens: int | None = None
    template_tokens: int | None = None

    def cache_length(self, block: int) -> int:
        """Keys `block` holds in its cache after the prefill."""
        return self.block_lengths[self.lm_blocks.index(block)]


# ---------------------------------------------------------------------------- shapes
def tiling_rule(cfg: VLMConfig, settings: PointSettings) -> TilingRule:
    """How a point tiles an image: the settings' values, else the checkpoint's own
    (`Engine.tiling_rule` is this; plan.py never imports the engine)."""
    return TilingRule(
        tile_size=settings.tile_size or cfg.vit_img_size,
        max_img_size=settings.max_img_size or cfg.max_img_size,
        resize_to_max_side_len=(cfg.resize_to_max_side_len if settings.resize_to_max_side_len
                                is None else settings.resize_to_max_side_len),
        max_tiles=settings.max_tiles, global_only=settings.global_only)


def tile_layout(cfg: VLMConfig, settings: PointSettings, width: int, height: int
                ) -> tuple[int, tuple[int, int], bool]:
    """(n_tiles, (rows, cols), has_global) of a width x height image, as
    `image_processing.process_image` cuts it."""
    from .model.image_processing import capped_grid, tile_grid
    rule = tiling_rule(cfg, settings)
    rows, cols = capped_grid(*tile_grid(width, height, rule), rule.max_tiles)
    if rule.global_only:
        return 1, (1, 1), True
    if (rows, cols) == (1, 1):
        return 1, (1, 1), False
    return rows * cols + 1, (rows, cols), True


def template_tokens(cfg: VLMConfig, tokenizer=None) -> int:
    """Tokens the chat template adds around the user turn (with the generation prompt)."""
    if tokenizer is not None:
        from .model.prompt import prompt_ids
        return len(prompt_ids(tokenizer, "", ""))
    if cfg.lm_chat_template == VLMConfig().lm_chat_template:
        return CHATML_TEMPLATE_TOKENS
    raise ValueError("this config has its own chat template: count its tokens with a "
                     "tokenizer (template_tokens(cfg, tokenizer))")


def _tile_tokens(cfg: VLMConfig, settings: PointSettings) -> tuple[int, int, int, int]:
    """(tile side, patches per tile, projected tokens per tile, tokens kept per tile)."""
    from .reduce.tokens import tokens_kept
    tile = settings.tile_size or cfg.vit_img_size
    patches = (tile // cfg.vit_patch_size) ** 2
    grid = tile // cfg.vit_patch_size // cfg.mp_pixel_shuffle_factor
    return tile, patches, grid * grid, tokens_kept(grid * grid, grid, settings)


def _vit_tokens(settings: PointSettings, patches: int, blocks: int) -> dict:
    """The plan's ViT-internal fields: tokens per block, and merging's matching."""
    from .reduce import vit_hourglass, vit_merge
    if settings.vit_merge_ratio > 0:
        dst = vit_merge.destination_count(patches)
        return dict(vit_block_tokens=tuple(vit_merge.block_tokens(
                        patches, blocks, settings.vit_merge_ratio, settings.vit_merge_start)),
                    vit_match=(patches - dst, dst),
                    vit_match_blocks=blocks - settings.vit_merge_start)
    return dict(vit_block_tokens=tuple(vit_hourglass.block_tokens(
        patches, blocks, settings.vit_hourglass_block, settings.vit_hourglass_factor)))


# ------------------------------------------------------------------------------ plans
def make_plan(cfg: VLMConfig, settings: PointSettings, n_tiles: int, sequence_length: int,
              decode_tokens: int = 0, choice_tokens=(), grid=None, text_tokens=None,
              template_tokens=None) -> CostPlan:
    """The plan of a prompt of `sequence_length` tokens holding `n_tiles` tiles.
    `decode_tokens`: tokens generated (letter scoring: 0); `choice_tokens`: the token
    count of each cloze choice."""
    settings.check_against(cfg)
    if settings.scoring == "cloze" and not choice_tokens:
        raise ValueError("cloze scoring needs the token count of each choice (choice_tokens)")
    choice_tokens = tuple(int(n) for n in choice_tokens)
    if any(n < 1 for n in choice_tokens):
        raise ValueError(f"every choice has at least one token, got {choice_tokens}")
    tile, patches, projected, kept = _tile_tokens(cfg, settings)
    image_tokens = n_tiles * kept
    if sequence_length < image_tokens + n_tiles:
        raise ValueError(f"sequence_length {sequence_length} < {image_tokens} image tokens "
                         f"+ {n_tiles} tile markers")
    blocks = tuple(i for i in range(cfg.lm_n_blocks) if i not in settings.skip_lm_blocks)
    fastv_layer, dropped = None, 0
    if settings.fastv_layer is not None and settings.fastv_ratio > 0:
        if settings.fastv_layer in settings.skip_lm_blocks:
            raise SettingsError(f"fastv_layer {settings.fastv_layer} is in skip_lm_blocks: "
                                "tokens cannot drop after a block that does not run")
        fastv_layer, dropped = settings.fastv_layer, fastv_dropped(image_tokens,
                                                                   settings.fastv_ratio)
    lengths = tuple(sequence_length - (dropped if fastv_layer is not None and i > fastv_layer
                                       else 0) for i in blocks)
    if choice_tokens:   # the last prefix position predicts every choice's first token
        logits = 1 + sum(n - 1 for n in choice_tokens)
    else:
        logits = 1
    vit_blocks = settings.vit_blocks or cfg.vit_n_blocks
    return CostPlan(
        n_tiles=n_tiles, tile_size=tile, patches_per_tile=patches,
        vit_blocks=vit_blocks, **_vit_tokens(settings, patches, vit_blocks),
        projected_tokens_per_tile=projected, tokens_per_tile=kept, image_tokens=image_tokens,
        sequence_length=sequence_length, lm_blocks=blocks, block_lengths=lengths,
        logit_positions=logits, decode_steps=decode_steps(decode_tokens),
        choice_tokens=choice_tokens, pool=settings.pool, pool_factor=settings.pool_factor,
        select=settings.select, fastv_layer=fastv_layer, fastv_dropped=dropped,
        grid=tuple(grid) if grid is not None else None, text_tokens=text_tokens,
        template_tokens=template_tokens)


def plan_for_prompt(cfg: VLMConfig, settings: PointSettings, prompt, decode_tokens: int = 0,
                    choice_tokens=()) -> CostPlan:
    """The plan of a prepared `engine.Prompt` (its exact token count)."""
    if prompt.image is None:
        raise ValueError("a prompt without an image has no vision cost to plan")
    plan = make_plan(cfg, settings, prompt.n_tiles, prompt.sequence_length, decode_tokens,
                     choice_tokens, grid=prompt.image.grid)
    if plan.image_tokens != prompt.image_tokens:
        raise ValueError(f"the prompt carries {prompt.image_tokens} image tokens, the settings "
                         f"say {plan.image_tokens}: was it prepared with other settings?")
    return plan


def plan_for_size(cfg: VLMConfig, settings: PointSettings, width: int, height: int,
                  text_tokens: int, decode_tokens: int = 0, choice_tokens=(),
                  template: int | None = None) -> CostPlan:
    """The plan of a width x height image and `text_tokens` tokens of user text; the
    sequence length is template + tile markers + image tokens + text (module docstring).
    `template`: the chat template's token count (default: `template_tokens(cfg)`)."""
    n_tiles, grid, _ = tile_layout(cfg, settings, width, height)
    _, _, _, kept = _tile_tokens(cfg, settings)
    template = template_tokens(cfg) if template is None else template
    length = template + n_tiles + n_tiles * kept + text_tokens
    return make_plan(cfg, settings, n_tiles, length, decode_tokens, choice_tokens, grid=grid,
                     text_tokens=text_tokens, template_tokens=template)


def plan_for_record(cfg: VLMConfig, settings: PointSettings, record: dict) -> CostPlan:
    """The plan of one evaluated question from its record (`n_tiles`, `sequence_length`,
    `decode_tokens`, cloze `choice_tokens`); checks `image_tokens` when the record has it."""
    plan = make_plan(cfg, settings, int(record["n_tiles"]), int(record["sequence_length"]),
                     int(record.get("decode_tokens") or 0),
                     record.get("choice_tokens") or ())
    if "image_tokens" in record and int(record["image_tokens"]) != plan.image_tokens:
        raise ValueError(f"question {record.get('question_id')}: the record has "
                         f"{record['image_tokens']} image tokens, the settings give "
                         f"{plan.image_tokens}: were these records made with other settings?")
    return plan
