"""The training forward: the engine's computation, with gradients, and the loss.

The engine's methods run under `torch.inference_mode()`; training reuses the same modules
in the same order (ViT -> projector -> token reduction -> embed -> `run_lm` -> tied head),
so a point's settings (tile size, ViT depth, pooling, ...) act in training exactly as
they act when scored. Parts with nothing to train run without autograd.
"""
from __future__ import annotations

import contextlib

import torch

from ..lm import run_lm
from .data import Batch
from .distill import SoftTargets, distillation_loss


def _needs_grad(*modules) -> bool:
    return any(p.requires_grad for m in modules if m is not None for p in m.parameters())


def image_tokens(model, tiles: torch.Tensor, settings, tiles_per_image: list[int]) -> torch.Tensor:
    """[n_tiles, tokens_per_tile, d_lm] as `Engine.image_tokens` computes them, with
    autograd only where something trains."""
    from ..reduce.tokens import reduce_image_tokens, vit_attention_probe
    vit_grad = _needs_grad(model.vision)
    with contextlib.nullcontext() if vit_grad else torch.no_grad():
        with vit_attention_probe(model, settings) as probe:  # q, k for select: attention
            features = model.vision_features(tiles, settings.vit_blocks, settings)
    with contextlib.nullcontext() if vit_grad or _needs_grad(model.projector) else torch.no_grad():
        tokens = model.projector(features)
    return reduce_image_tokens(model, tokens, features, settings, probe=probe,
                               tiles_per_image=tiles_per_image)


def target_logits(model, batch: Batch, settings) -> torch.Tensor:
    """float32 logits [n_targets, vocab] at the positions that predict each target token
    (the head runs only there)."""
    device = next(model.parameters()).device
    ids = batch.input_ids.to(device)
    img = None
    if batch.tiles is not None:
        dtype = next(model.vision.parameters()).dtype
        img = image_tokens(model, batch.tiles.to(device, dtype), settings, batch.tiles_per_image)
        img = img[batch.row_tiles.to(device)]
    embeds = model.embed(ids, img)
    hidden, _ = run_lm(model.lm, embeds, batch.mask.to(device), batch.positions.to(device),
                       settings, image_token_mask=ids == model.image_token_id)
    picked = hidden[batch.label_rows.to(device), batch.label_cols.to(device)]
    return model.lm.lm_head(picked).float()


def loss_and_accuracy(model, batch: Batch, settings, soft: SoftTargets | None = None,
                      alpha: float = 0.0, temperature: float = 1.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the batch's target tokens (mixed with the distillation term
    when `soft` holds the teacher's side and alpha > 0: distill.py), and their argmax
    accuracy."""
    logits = target_logits(model, batch, settings)
    labels = batch.labels.to(logits.device)
    loss = distillation_loss(logits, labels, soft, alpha, temperature)
    return loss, (logits.detach().argmax(-1) == labels).float().mean()
