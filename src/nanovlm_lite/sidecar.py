"""Weights upstream nanoVLM has no place for (a learned pooling module, LoRA adapters),
kept beside a checkpoint in `nanovlm_lite_sidecar.safetensors` so the checkpoint itself
stays loadable by upstream's `from_pretrained`. Owned by the training code; the engine
calls `attach_sidecar` on every load."""
from __future__ import annotations

from pathlib import Path

SIDECAR_NAME = "nanovlm_lite_sidecar.safetensors"


def attach_sidecar(model, model_dir: Path | None) -> None:
    """Load the sidecar next to a checkpoint, if there is one, into `model`."""
    if model_dir is None or not (Path(model_dir) / SIDECAR_NAME).exists():
        return
    raise NotImplementedError("sidecar loading is not built yet")
