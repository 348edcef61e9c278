"""What trains: every parameter, one part, LoRA adapters, or a token-reduction module.

- `all`: everything.            - `projector`: the modality projector only.
- `lm`: the language model only. - `vit-frozen`: everything but the ViT.
- `lora`: LoRA adapters (peft) on the LM's attention q and v projections; the rest
  frozen. `merge_lora` folds them into the weights before saving, so the checkpoint is a
  plain upstream one (upstream has no LoRA).
- `learned-pool`: only `model.learned_pool` (reduce/learned_pool.py); it is saved in the
  sidecar. At a `pool: learned` point the module is created (as average pooling) when the
  model has none, whatever trains.
"""
from __future__ import annotations

import torch

TRAINABLE = ("all", "projector", "lm", "vit-frozen", "lora", "learned-pool")
LORA_TARGETS = ("q_proj", "v_proj")


def attach_learned_pool(model, settings) -> None:
    from ..reduce.learned_pool import LearnedPool
    pool = getattr(model, "learned_pool", None)
    if pool is None or pool.factor != settings.pool_factor:
        param = next(model.parameters())
        model.learned_pool = LearnedPool(model.cfg.lm_hidden_dim, settings.pool_factor).to(
            device=param.device, dtype=param.dtype)


def add_lora(model, rank: int, alpha: float, dropout: float = 0.0) -> None:
    """Injects LoRA layers into the LM in place (the module tree keeps its shape, so the
    engine's layer loop runs them unchanged)."""
    from peft import LoraConfig, inject_adapter_in_model
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(LORA_TARGETS), bias="none")
    inject_adapter_in_model(config, model.lm)


def merge_lora(model) -> int:
    """Folds every LoRA adapter into its base Linear and puts the plain Linear back;
    returns how many layers were merged."""
    from peft.tuners.lora import LoraLayer
    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, attr = name.rsplit(".", 1)
            setattr(model.get_submodule(parent_name), attr, module.get_base_layer())
            merged += 1
    return merged


def select_trainable(model, mode: str, settings=None, lora_rank: int = 8,
                     lora_alpha: float = 16.0) -> list[tuple[str, torch.nn.Parameter]]:
    """Sets requires_grad for `mode`; returns the (name, parameter) pairs that train."""
    if mode not in TRAINABLE:
        raise ValueError(f"trainable {mode!r}: expected one of {TRAINABLE}")
    if mode == "learned-pool" and (settings is None or settings.pool != "learned"):
        raise ValueError("trainable 'learned-pool' needs the point setting pool: learned")
    if settings is not None and settings.pool == "learned":
        attach_learned_pool(model, settings)  # a point that pools with it trains it too
    if mode == "lora":
        model.requires_grad_(False)
        add_lora(model, lora_rank, lora_alpha)
        return [(n, p) for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]
    parts = {"all": [model], "projector": [model.projector], "lm": [model.lm],
             "vit-frozen": [m for n, m in model.named_children() if n != "vision"],
             "learned-pool": [getattr(model, "learned_pool", None)]}[mode]
    model.requires_grad_(False)
    for part in parts:
        part.requires_grad_(True)
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]
