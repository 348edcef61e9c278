"""A width-pruned checkpoint's shapes: what a point's `prune_*` settings make of a config.

Pruning keeps a ratio of each MLP's channels, the same number in every block, so a pruned
model is upstream's checkpoint format with a smaller `vit_inter_dim` / `lm_inter_dim` in
config.json (upstream builds its MLPs from exactly these fields, and the FLOP count reads
them from the config). Attention heads are not pruned: upstream derives the head width as
hidden_dim // n_heads and its q, k, v (ViT) and q, o (LM) projections are hidden_dim wide,
so fewer heads at the same hidden width cannot be written in its format
(docs/compression.md says what can).

A pruned checkpoint directory also holds `pruning.json` (the base, the ratios, the
importance it ranked by), so a point's cost is priced on the checkpoint it runs when that
is its pruned checkpoint, and on the base model's widths pruned by its ratios when it is
the base (`nanovlm-lite flops --model BASE` for a point that prunes).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..settings import PRUNE_SETTINGS, SettingsError
from .config import VLMConfig

PRUNING_RECORD = "pruning.json"


def kept_channels(width: int, ratio: float) -> int:
    """Channels a ratio keeps of `width`: round(width * ratio), at least one."""
    return max(1, round(width * ratio))


def pruned_config(cfg: VLMConfig, settings) -> VLMConfig:
    """The config of `cfg` pruned by the settings' ratios (`cfg` itself if they prune
    nothing): every other field, upstream's included, unchanged."""
    if not settings.prunes:
        return cfg
    return dataclasses.replace(
        cfg, vit_inter_dim=kept_channels(cfg.vit_inter_dim, settings.prune_vit_mlp),
        lm_inter_dim=kept_channels(cfg.lm_inter_dim, settings.prune_lm_mlp))


def read_pruning(model_dir) -> dict | None:
    """The `pruning.json` of a checkpoint directory, or None (not a pruned checkpoint)."""
    if model_dir is None:
        return None
    path = Path(model_dir) / PRUNING_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SettingsError(f"{path}: unreadable pruning record ({e})") from None


def ratios(settings) -> dict[str, float]:
    return {name: float(getattr(settings, name)) for name in PRUNE_SETTINGS}


def check_pruned(settings, model_dir, where: str = "point settings") -> None:
    """A checkpoint runs a point only if it is pruned exactly as the point says: the
    ratios its pruning.json records (none: 1.0, not pruned) are the settings' own. So a
    point that prunes is never scored on the unpruned model, nor an unpruned point on a
    pruned one."""
    record = read_pruning(model_dir)
    recorded = {name: 1.0 for name in PRUNE_SETTINGS}
    if record is not None:
        recorded.update({k: float(v) for k, v in record.get("ratios", {}).items()})
    wanted = ratios(settings)
    if recorded == wanted:
        return
    changed = {k: v for k, v in wanted.items() if v != 1.0}
    if record is None:
        raise SettingsError(
            f"{where}: {changed} prune the model, but {model_dir or 'this model'} is not a "
            f"pruned checkpoint (no {PRUNING_RECORD}); evaluate the point's pruned checkpoint "
            f"(the pipeline's prune rule writes results/<study>/points/<point>/pruned/)")
    raise SettingsError(
        f"{where}: prune ratios {wanted}, but {model_dir} was pruned with {recorded} "
        f"({PRUNING_RECORD}); use the checkpoint pruned for these settings")


def config_for_point(cfg: VLMConfig, settings, model_dir) -> VLMConfig:
    """The config a point's cost is priced on: the checkpoint's own when it is a pruned
    checkpoint (its ratios must be the point's) or the point prunes nothing; the base
    model's pruned by the point's ratios otherwise (the widths its prune rule will make)."""
    if read_pruning(model_dir) is not None:
        check_pruned(settings, model_dir)
        return cfg
    return pruned_config(cfg, settings)
