"""AdamW with linear warm-up then cosine decay to `min_lr_ratio` x the peak rate."""
from __future__ import annotations

import math

import torch


def build_optimizer(params: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float,
                    betas: tuple[float, float]) -> torch.optim.AdamW:
    """Matrices decay; biases, norms and gains (1-D) do not."""
    decay = [p for _, p in params if p.ndim >= 2]
    no_decay = [p for _, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer, warmup: int, total: int, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total, min_ratio))
