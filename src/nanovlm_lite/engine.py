"""The inference engine: prompts in, next-token logits or greedy tokens out, in batches.

`Engine.prepare` turns an (image, text) pair into what upstream would feed the model for
a point's settings; `next_token_logits` and `generate` run batches of prepared prompts,
left-padded, with position ids that make a padded row compute what it would alone.
The LM runs layer by layer over transformers' Llama blocks, so settings that skip blocks
or drop tokens between them (reduce/) slot in without touching attention itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from .model.image_processing import ProcessedImage, TilingRule, blank_like, process_image
from .model.load import load_model
from .model.prompt import build_tokenizer, image_string, prompt_ids, resolve_tokenizer_source
from .settings import PointSettings
from .sidecar import attach_sidecar

DEFAULT_SETTINGS = PointSettings()


@dataclass
class Prompt:
    """One prepared question: token ids, pixels, and the shape facts FLOP counting needs."""
    input_ids: list[int]
    image: ProcessedImage | None
    tokens_per_tile: list[int] = field(default_factory=list)
    text: str = ""

    @property
    def n_tiles(self) -> int:
        return 0 if self.image is None else self.image.n_tiles

    @property
    def image_tokens(self) -> int:
        return sum(self.tokens_per_tile)

    @property
    def sequence_length(self) -> int:
        return len(self.input_ids)


class Engine:
    def __init__(self, model, tokenizer, model_dir: Path | None = None):
        self.model = model
        self.cfg = model.cfg
        self.tokenizer = tokenizer
        self.model_dir = model_dir

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ---------------------------------------------------------------- preparing prompts
    def tiling_rule(self, settings: PointSettings = DEFAULT_SETTINGS) -> TilingRule:
        from .plan import tiling_rule
        return tiling_rule(self.cfg, settings)

    def tokens_per_tile(self, settings: PointSettings = DEFAULT_SETTINGS) -> int:
        """Image tokens one tile contributes after the projector and any token reduction."""
        from .reduce.tokens import tokens_kept
        tile = settings.tile_size or self.cfg.vit_img_size
        grid = tile // self.cfg.vit_patch_size // self.cfg.mp_pixel_shuffle_factor
        return tokens_kept(grid * grid, grid, settings)

    def prepare(self, image: Image.Image | None, text: str,
                settings: PointSettings = DEFAULT_SETTINGS, answer_prefix: str = "") -> Prompt:
        if image is None:
            ids = prompt_ids(self.tokenizer, "", text, answer_prefix)
            return Prompt(ids, None, [], text)
        if settings.blank_images:
            image = blank_like(image)
        processed = process_image(image, self.tiling_rule(settings))
        per_tile = [self.tokens_per_tile(settings)] * processed.n_tiles
        img_str = image_string(self.cfg, processed.grid, processed.has_global, per_tile)
        ids = prompt_ids(self.tokenizer, img_str, text, answer_prefix)
        return Prompt(ids, processed, per_tile, text)

    # ---------------------------------------------------------------- running batches
    def _batch_inputs(self, prompts: list[Prompt]):
        """Left-padded ids, the 2D attention mask and per-row position ids."""
        pad = self.tokenizer.pad_token_id
        width = max(p.sequence_length for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - p.sequence_length:] = torch.tensor(p.input_ids)
            mask[row, width - p.sequence_length:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    def image_tokens(self, prompts: list[Prompt], settings: PointSettings) -> torch.Tensor | None:
        tiles = [p.image.tiles for p in prompts if p.image is not None]
        if not tiles:
            return None
        from .reduce.tokens import reduce_image_tokens, vit_attention_probe
        pixels = torch.cat(tiles).to(self.device, self.dtype)
        with vit_attention_probe(self.model, settings) as probe:  # q, k for select: attention
            features = self.model.vision_features(pixels, settings.vit_blocks, settings)
        tokens = self.model.projector(features)
        return reduce_image_tokens(self.model, tokens, features, settings, probe=probe,
                                   tiles_per_image=[len(t) for t in tiles])

    @torch.inference_mode()
    def prefill(self, prompts: list[Prompt], settings: PointSettings = DEFAULT_SETTINGS,
                cache=None):
        """Runs the prompts; returns (final hidden states [B, T, d], attention mask, cache)."""
        from .lm import run_lm
        ids, mask, positions = self._batch_inputs(prompts)
        embeds = self.model.embed(ids, self.image_tokens(prompts, settings))
        hidden, cache = run_lm(self.model.lm, embeds, mask, positions, settings, cache=cache,
                               image_token_mask=ids == self.model.image_token_id)
        return hidden, mask, cache

    @torch.inference_mode()
    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm.lm_head(hidden).float()

    @torch.inference_mode()
    def next_token_logits(self, prompts: list[Prompt],
                          settings: PointSettings = DEFAULT_SETTINGS) -> torch.Tensor:
        """float32 [B, vocab] logits at each prompt's last position (one LM-head row each)."""
        hidden, _, _ = self.prefill(prompts, settings)
        return self.head(hidden[:, -1])

    @torch.inference_mode()
    def generate(self, prompts: list[Prompt], settings: PointSettings = DEFAULT_SETTINGS,
                 max_new_tokens: int = 10, stop_at_eos: bool = True, return_logits: bool = False):
        """Greedy decoding with a KV cache. Returns a token-id list per prompt (and, with
        `return_logits`, the [steps, vocab] logits that chose each token). No forward is run
        after the last token is chosen."""
        from .lm import decode_step
        hidden, mask, cache = self.prefill(prompts, settings)
        logits = self.head(hidden[:, -1])
        eos = self.tokenizer.eos_token_id
        next_pos = mask.sum(-1)  # the next position id of each row
        done = torch.zeros(len(prompts), dtype=torch.bool, device=logits.device)
        tokens, step_logits = [], []
        for step in range(max_new_tokens):
            token = logits.argmax(-1)
            tokens.append(token)
            step_logits.append(logits)
            if stop_at_eos:
                done |= token == eos
            if step == max_new_tokens - 1 or bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            hidden, cache = decode_step(self.model, token[:, None], mask, next_pos[:, None],
                                        cache, settings)
            next_pos = next_pos + 1
            logits = self.head(hidden[:, -1])
        token_ids = torch.stack(tokens, 1).tolist()
        out = []
        for row in token_ids:
            if stop_at_eos and eos in row:
                row = row[: row.index(eos) + 1]
            out.append(row)
        if return_logits:
            per_row = torch.stack(step_logits, 1)
            return out, [per_row[i, : len(out[i])] for i in range(len(out))]
        return out


def load(model: str, tokenizer: str | None = None, device: str | None = "cpu",
         dtype: torch.dtype | str | None = None, revision: str | None = None,
         random_weights: bool = False) -> Engine:
    """An Engine for a checkpoint directory, hub id, config.json or preset."""
    vlm, model_dir = load_model(model, revision=revision, device=device, dtype=dtype,
                                random_weights=random_weights)
    attach_sidecar(vlm, model_dir)
    vlm.requires_grad_(False)  # an inference engine: no autograd bookkeeping anywhere
    source = resolve_tokenizer_source(vlm.cfg, model_dir, tokenizer)
    return Engine(vlm, build_tokenizer(vlm.cfg, source), model_dir)
