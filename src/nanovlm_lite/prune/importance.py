"""Activation-based importance of every MLP channel (Minitron), from forward passes only.

A channel's importance is the mean absolute value of its activation over every token of a
calibration set: `samples` questions drawn (seeded) from the training split, each run
alone through the unpruned model at the point's own settings (tiling, tile size, token
cuts: the activations its kept channels will see), with the prompt the point is scored
on and the answer after it (the letter objective's row for letter and generate scoring,
the answer objective's for cloze). Where the activation is:
- ViT block i: the GELU output of fc1, the value fc2 reads, over every patch of every tile
  (merged tokens under vit_merge, pooled ones under vit_hourglass: what the block runs on);
- LM block i: act(gate) * up, the value down_proj reads, over every token of the row.
Each question runs alone, so no padding enters the means. A block the point does not run
(vit_blocks, skip_lm_blocks) sees no token and gets importance 0 everywhere: it keeps its
first channels, which costs nothing since it never runs.

The file (results/{study}/importance/{key}.safetensors): tensors `vit.{i}` [vit_inter_dim]
and `lm.{i}` [lm_inter_dim], and in its header the settings, sample count, seed and model
it was computed with. Points with the same base model and calibration settings (their
settings less prune_* and finetune) share one file.
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import torch

FORMAT = "nanovlm-lite-importance"


def calibration_questions(questions: list, samples: int, seed: int) -> list:
    """`samples` questions drawn without replacement (all of them if there are fewer), in
    their file order."""
    if samples >= len(questions):
        return list(questions)
    picks = sorted(random.Random(f"calibration:{seed}").sample(range(len(questions)), samples))
    return [questions[i] for i in picks]


def calibration_objective(settings) -> str:
    """The training row that carries the prompt a point is scored on."""
    return "answer" if settings.scoring == "cloze" else "letter"


class _Means:
    """Running sums of |activation| per channel, by the hooked module's name."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def hook(self, name: str):
        def record(_module, args):
            x = args[0].detach()
            flat = x.reshape(-1, x.shape[-1]).abs().double().sum(0)
            self.sums[name] = self.sums.get(name, 0) + flat
            self.counts[name] = self.counts.get(name, 0) + x.numel() // x.shape[-1]
        return record

    def means(self, name: str, width: int) -> torch.Tensor:
        if name not in self.sums:
            return torch.zeros(width)
        return (self.sums[name] / self.counts[name]).float().cpu()


@torch.inference_mode()
def channel_importance(engine, questions, settings, log=print) -> dict[str, torch.Tensor]:
    """{`vit.{i}`: [vit_inter_dim], `lm.{i}`: [lm_inter_dim]}: mean |activation| of every
    MLP channel over `questions` (module docstring)."""
    from ..train.data import TrainSet
    from ..train.forward import target_logits
    from ..train.trainer import autocast
    model = engine.model
    model.eval()
    cfg = model.cfg
    means, handles = _Means(), []
    for i, layer in enumerate(model.vit.encoder.layers):
        handles.append(layer.mlp.fc2.register_forward_pre_hook(means.hook(f"vit.{i}")))
    for i, layer in enumerate(model.lm.model.layers):
        handles.append(layer.mlp.down_proj.register_forward_pre_hook(means.hook(f"lm.{i}")))
    device = next(model.parameters()).device
    try:
        data = TrainSet(questions, engine, settings, calibration_objective(settings),
                        cache_images=False)
        done = 0
        for img in range(data.n_images):
            for e in range(len(data.examples[img])):
                with autocast(device):
                    target_logits(model, data.batch([(img, e)]), settings)
                done += 1
                if done % 256 == 0:
                    log(f"importance: {done:,} of {data.n_examples:,} calibration rows")
    finally:
        for h in handles:
            h.remove()
    out = {f"vit.{i}": means.means(f"vit.{i}", cfg.vit_inter_dim) for i in range(cfg.vit_n_blocks)}
    out.update({f"lm.{i}": means.means(f"lm.{i}", cfg.lm_inter_dim)
                for i in range(cfg.lm_n_blocks)})
    return out


def compute_importance(model, data_path, settings: dict, out_path, samples: int = 1024,
                       seed: int = 0, device: str = "auto", threads: int = 1,
                       tokenizer: str | None = None) -> Path:
    """The pipeline's importance job: `model` (unpruned) at `settings` on `samples`
    training questions -> out_path (safetensors, settings in its header)."""
    from safetensors.torch import save_file

    from .. import load
    from ..data.aokvqa import load_questions
    from ..evaluate.run import data_identity, model_identity
    from ..files import readable
    from ..model.widths import check_pruned
    from ..settings import PointSettings
    t0 = time.time()
    torch.set_num_threads(max(1, threads))
    point = PointSettings.from_dict(settings, where="calibration settings")
    if point.prunes or point.finetune:
        raise ValueError("calibration runs the base model: give the point's settings less "
                         "prune_* and finetune")
    questions = calibration_questions(load_questions(data_path), samples, seed)
    engine = load(str(model), tokenizer=tokenizer, device=device)
    point.check_against(engine.cfg, where="calibration settings")
    check_pruned(point, engine.model_dir, where="calibration settings")
    importance = channel_importance(engine, questions, point)
    meta = {"format": FORMAT, "settings": point.to_dict(), "changed_settings": point.changed(),
            "samples": len(questions), "samples_asked": samples, "seed": seed,
            "objective": calibration_objective(point), "model": str(model),
            "model_identity": model_identity(engine), "train_data": str(data_path),
            "train_data_identity": data_identity(data_path),
            "seconds": round(time.time() - t0, 1)}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    save_file(importance, str(tmp), metadata={"nanovlm_lite": json.dumps(meta)})
    readable(tmp)  # safetensors writes 0600
    os.replace(tmp, out_path)
    print(f"importance of {sum(v.numel() for v in importance.values()):,} MLP channels from "
          f"{len(questions):,} calibration questions in {meta['seconds']} s -> {out_path}")
    return out_path


def read_importance(path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, header record) of an importance file."""
    from safetensors import safe_open
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("nanovlm_lite", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # missing, truncated, not safetensors
        raise ValueError(f"{path}: not a readable importance file ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an importance file (header format {meta.get('format')!r})")
    return tensors, meta
