"""AdamW with linear warm-up then cosine decay to `min_lr_ratio` x the peak rate."""
from __future__ import annotations

import math

import torch


def build_optimizer(params: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float,
                    betas: tuple[float, float], lr_scales: dict | None = None) -> torch.optim.AdamW:
    """Matrices decay; biases, norms, gains (1-D) do not. `lr_scales` multiplies the rate
    of the parameters under a top-level module ({"vision": 3.0})."""
    groups: dict[tuple[bool, float], list] = {}
    for name, p in params:
        scale = (lr_scales or {}).get(name.split(".", 1)[0], 1.0)
        groups.setdefault((p.ndim >= 2, scale), []).append(p)
    return torch.optim.AdamW(
        [{"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr": lr * scale}
         for (decay, scale), ps in groups.items()], lr=lr, betas=betas)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer, warmup: int, total: int, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup, total, min_ratio))
