"""Width pruning: keep each MLP's most important channels, the same number in every block,
and write the result in upstream nanoVLM's checkpoint format.

`prune_model(model, importance, settings)` builds a new NanoVLM whose config has the kept
widths (model/widths.py: `pruned_config`) and whose MLPs hold the kept channels' weights:
ViT fc1 rows (+ bias) and fc2 columns, LM gate and up rows and down columns. Each block
keeps its own most important channels (ties: the lower index) in their original order;
everything else is copied unchanged. A channel's activation only reaches the rest of the
network through its fc2 / down_proj column, so the pruned model computes exactly what the
unpruned one computes with the dropped channels' activations set to zero (tested).

`prune_checkpoint` is the pipeline's prune job: base checkpoint + importance file -> the
point's pruned checkpoint (results/{study}/points/{point}/pruned/): config.json (upstream's
fields only, smaller vit_inter_dim / lm_inter_dim) + model.safetensors (upstream's names),
the base's tokenizer/ and sidecar, and pruning.json (the base, the ratios, the widths, the
importance file it ranked by, seconds).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from ..model.widths import PRUNING_RECORD, pruned_config, ratios

FORMAT = "nanovlm-lite-pruning"


def keep_channels(importance: torch.Tensor, k: int) -> torch.Tensor:
    """The indices of the `k` most important channels (ties: the lower index), ascending."""
    order = torch.argsort(importance.float(), descending=True, stable=True)[:k]
    return order.sort().values


def kept_indices(cfg, importance: dict[str, torch.Tensor], settings) -> dict[str, torch.Tensor]:
    """{`vit.{i}` / `lm.{i}`: kept channel indices} of every block whose MLP the settings
    narrow; an importance file made for other widths is an error naming the block."""
    new = pruned_config(cfg, settings)
    out = {}
    for side, blocks, width, kept in (("vit", cfg.vit_n_blocks, cfg.vit_inter_dim, new.vit_inter_dim),
                                      ("lm", cfg.lm_n_blocks, cfg.lm_inter_dim, new.lm_inter_dim)):
        if kept == width:
            continue
        for i in range(blocks):
            scores = importance.get(f"{side}.{i}")
            if scores is None or scores.numel() != width:
                found = None if scores is None else scores.numel()
                raise ValueError(f"importance has {found} channels for {side} block {i}, the "
                                 f"model has {width}: it was computed for another model")
            out[f"{side}.{i}"] = keep_channels(scores, kept)
    return out


def _mlp_names(side: str, i: int) -> tuple[list[str], list[str]]:
    """(tensors sliced by rows, tensors sliced by columns) of block i's MLP, our names."""
    from ..model.checkpoint import vision_prefix
    if side == "vit":
        p = vision_prefix() + f"encoder.layers.{i}.mlp."
        return [p + "fc1.weight", p + "fc1.bias"], [p + "fc2.weight"]
    p = f"lm.model.layers.{i}.mlp."
    return [p + "gate_proj.weight", p + "up_proj.weight"], [p + "down_proj.weight"]


def prune_model(model, importance: dict[str, torch.Tensor], settings):
    """A new NanoVLM: `model` with each MLP narrowed to its kept channels (module
    docstring); sidecar modules (a learned pool) carried over as they are."""
    from ..model.load import model_from_state
    from ..sidecar import MODULES
    cfg = pruned_config(model.cfg, settings)
    keep = kept_indices(model.cfg, importance, settings)
    state = {k: v for k, v in model.state_dict().items() if k.split(".")[0] not in MODULES}
    for key, idx in keep.items():
        side, i = key.split(".")
        rows, cols = _mlp_names(side, int(i))
        for name in rows:
            state[name] = state[name].index_select(0, idx.to(state[name].device)).clone()
        for name in cols:
            state[name] = state[name].index_select(1, idx.to(state[name].device)).clone()
    pruned = model_from_state(cfg, state)
    for name in MODULES:
        if getattr(model, name, None) is not None:
            setattr(pruned, name, getattr(model, name))
    return pruned.to(next(model.parameters()).device).eval()


def prune_checkpoint(model, importance_path, settings: dict, out_dir) -> Path:
    """The pipeline's prune job (module docstring): returns out_dir."""
    from .. import load
    from ..environment import environment
    from ..evaluate.run import model_identity
    from ..model.checkpoint import save_upstream_checkpoint
    from ..provenance import code_version
    from ..settings import PointSettings
    from ..sidecar import save_sidecar
    from ..train.recipes import carry_beside
    from .importance import read_importance
    t0 = time.time()
    point = PointSettings.from_dict(settings, where="prune settings")
    if not point.prunes:
        raise ValueError("the settings prune nothing (every prune_* ratio is 1)")
    engine = load(str(model), device="cpu", dtype=torch.float32)
    importance, meta = read_importance(importance_path)
    keep = kept_indices(engine.cfg, importance, point)
    pruned = prune_model(engine.model, importance, point)
    out_dir = Path(out_dir)
    save_upstream_checkpoint(pruned, out_dir)
    save_sidecar(pruned, out_dir)
    carry_beside(engine, out_dir)
    digest = hashlib.sha256()
    for key in sorted(keep):
        digest.update(key.encode() + keep[key].numpy().tobytes())
    before, after = engine.cfg, pruned.cfg
    record = {
        "format": FORMAT, "ratios": ratios(point), "base_model": str(model),
        "base_identity": model_identity(engine),
        "widths": {"vit_inter_dim": [before.vit_inter_dim, after.vit_inter_dim],
                   "lm_inter_dim": [before.lm_inter_dim, after.lm_inter_dim]},
        "parameters": [sum(p.numel() for p in engine.model.parameters()),
                       sum(p.numel() for p in pruned.parameters())],
        "kept_sha256": digest.hexdigest()[:16],
        "importance": {"path": str(importance_path), "samples": meta.get("samples"),
                       "seed": meta.get("seed"), "settings": meta.get("changed_settings")},
        "seconds": round(time.time() - t0, 1), "code_version": code_version(),
        "environment": environment(runtime=True, device=engine.device)}
    (out_dir / PRUNING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    print(f"pruned {model}: vit_inter_dim {before.vit_inter_dim} -> {after.vit_inter_dim}, "
          f"lm_inter_dim {before.lm_inter_dim} -> {after.lm_inter_dim}, parameters "
          f"{record['parameters'][0]:,} -> {record['parameters'][1]:,} -> {out_dir}")
    return out_dir
