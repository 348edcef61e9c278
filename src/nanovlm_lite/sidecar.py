"""Weights upstream nanoVLM has no place for, kept beside a checkpoint so the checkpoint
itself stays loadable by upstream's `from_pretrained`. Owned by the training code; the
engine calls `attach_sidecar` on every load.

The file: `nanovlm_lite_sidecar.safetensors` in the checkpoint directory, next to
upstream's `config.json` + `model.safetensors`. Each tensor is named by its path in our
`NanoVLM` module tree, so one top-level module's tensors share a prefix:

- `learned_pool.*`: the learned pooling module (`reduce/learned_pool.py: LearnedPool`),
  attached as `model.learned_pool`; a point with `pool: learned` uses it. Its sizes come
  from the tensor shapes (`LearnedPool.from_state_dict`).

Header metadata: `format` = "nanovlm-lite-sidecar", `version` = "1", `modules` = the
comma-separated prefixes. LoRA adapters never appear here: training merges them into the
LM's weights before saving, so `model.safetensors` already holds their effect.
Upstream ignores the file; a checkpoint without it is a plain upstream checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .files import readable

SIDECAR_NAME = "nanovlm_lite_sidecar.safetensors"
FORMAT = "nanovlm-lite-sidecar"
VERSION = "1"


def _learned_pool(state: dict[str, torch.Tensor]):
    from .reduce.learned_pool import LearnedPool
    return LearnedPool.from_state_dict(state)


# top-level module name -> builder from its tensors (prefix stripped)
MODULES = {"learned_pool": _learned_pool}


class SidecarError(ValueError):
    """A sidecar file is unreadable or holds modules this version does not know."""


def sidecar_tensors(model) -> dict[str, torch.Tensor]:
    """The tensors of `model`'s sidecar modules, named by their path in the model."""
    out = {}
    for name in MODULES:
        module = getattr(model, name, None)
        if module is None:
            continue
        for key, value in module.state_dict().items():
            out[f"{name}.{key}"] = value.detach().to("cpu", torch.float32).contiguous()
    return out


def save_sidecar(model, model_dir) -> Path | None:
    """Writes the sidecar for `model` into `model_dir` (atomically), or removes a stale one
    when the model has no sidecar modules. Returns the path written, or None."""
    path = Path(model_dir) / SIDECAR_NAME
    tensors = sidecar_tensors(model)
    if not tensors:
        path.unlink(missing_ok=True)
        return None
    modules = sorted({k.split(".", 1)[0] for k in tensors})
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": VERSION,
                                           "modules": ",".join(modules)})
    readable(tmp)  # safetensors writes 0600
    os.replace(tmp, path)
    return path


def read_sidecar(path) -> dict[str, dict[str, torch.Tensor]]:
    """{module name: {tensor name without the prefix: tensor}}."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise SidecarError(f"{path}: cannot read as safetensors ({e})") from None
    if meta.get("format") != FORMAT:
        raise SidecarError(f"{path}: not a nanovlm-lite sidecar (format {meta.get('format')!r})")
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        prefix, _, rest = key.partition(".")
        if prefix not in MODULES:
            raise SidecarError(f"{path}: unknown module {prefix!r} (this version knows "
                               f"{sorted(MODULES)}); is it from a newer nanovlm-lite?")
        groups.setdefault(prefix, {})[rest] = value
    return groups


def attach_sidecar(model, model_dir: Path | None) -> None:
    """Load the sidecar next to a checkpoint, if there is one, into `model`."""
    if model_dir is None or not (Path(model_dir) / SIDECAR_NAME).exists():
        return
    param = next(model.parameters())
    for name, state in read_sidecar(Path(model_dir) / SIDECAR_NAME).items():
        module = MODULES[name](state)
        setattr(model, name, module.to(device=param.device, dtype=param.dtype).eval())
