"""Build a NanoVLM from a checkpoint directory, a hub id, a config.json or a preset."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .checkpoint import read_upstream_tensors, resolve_model, upstream_to_ours
from .config import VLMConfig, load_config
from .vlm import NanoVLM


def default_dtype(device: str) -> torch.dtype:
    """float32 on CPU (parity is measured there); bfloat16 on CUDA."""
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


class DeviceError(ValueError):
    """A device this torch build or machine cannot use."""


DEVICE = re.compile(r"(cpu|cuda|mps|meta)(?::(\d+))?")


def check_device(device) -> str:
    """`device` if this torch can use it (auto, cpu, cuda, cuda:N, mps); else a DeviceError
    that says why and what to do (a CPU-only build, no visible GPU, an index out of range)."""
    text = str(device).strip()
    if text == "auto":
        return text
    m = DEVICE.fullmatch(text)
    if not m:
        hint = " (did you mean cuda?)" if text.lower() in ("gpu", "cuda0", "nvidia") else ""
        raise DeviceError(f"device {text!r}: expected auto, cpu, cuda, cuda:N or mps{hint}")
    kind, index = m.group(1), m.group(2)
    if kind == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise DeviceError(
                f"device {text!r}: this torch ({torch.__version__}) is a CPU-only build; install "
                f"a CUDA build of torch to use the GPU, or use --device cpu (or auto)")
        n = torch.cuda.device_count()
        if n == 0:
            raise DeviceError(
                f"device {text!r}: no CUDA device is visible (torch.cuda.device_count() is 0); "
                f"check the driver and CUDA_VISIBLE_DEVICES, or use --device cpu (or auto)")
        if index is not None and int(index) >= n:
            raise DeviceError(f"device {text!r}: only {n} CUDA device(s) visible "
                              f"(cuda:0..cuda:{n - 1})")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {text!r}: MPS is not available in this torch build or on "
                          f"this machine (Apple silicon only); use --device cpu (or auto)")
    return text


def resolve_device(device: str | None) -> str:
    """A usable device: `auto` (or None) is cuda when a GPU is visible, else cpu."""
    if device is None or check_device(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device).strip()


def build_model(cfg: VLMConfig, device: str = "cpu", dtype: torch.dtype = torch.float32) -> NanoVLM:
    """An untrained NanoVLM. On the meta device it holds no memory (for FLOP counting)."""
    with torch.device(device):
        model = NanoVLM(cfg)
    return model.to(dtype=dtype).eval()


def load_model(model: str, revision: str | None = None, device: str | None = "cpu",
               dtype: torch.dtype | str | None = None, random_weights: bool = False
               ) -> tuple[NanoVLM, Path | None]:
    """(model, checkpoint directory or None). A preset or bare config has no weights: it
    builds on the meta device unless `random_weights` asks for a randomly initialised one."""
    device = resolve_device(device)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or default_dtype(device)
    config_path, weights_path = resolve_model(model, revision)
    cfg = load_config(config_path)
    if weights_path is None and not random_weights and config_path.name == "config.json" \
            and Path(str(model)).expanduser().is_dir():
        from .checkpoint import CheckpointError
        raise CheckpointError(
            f"{config_path.parent}: no model.safetensors beside config.json (a checkpoint "
            f"directory holds both); FLOP counting needs only the config: "
            f"nanovlm-lite flops --model {model}")
    model_dir = config_path.parent if weights_path is not None else None
    if weights_path is None and not random_weights:
        return build_model(cfg, "meta", dtype), None
    if weights_path is None:
        torch.manual_seed(0)
        return build_model(cfg, device, dtype), None
    tensors = read_upstream_tensors(weights_path, cfg)
    vlm = model_from_state(cfg, upstream_to_ours(tensors, cfg))
    return vlm.to(device=device, dtype=dtype).eval(), model_dir


def model_from_state(cfg: VLMConfig, state: dict[str, torch.Tensor]) -> NanoVLM:
    """A NanoVLM holding `state` (our tensor names) as its weights, without a random init;
    the buffers the state lacks (position ids, RoPE frequencies) computed from `cfg`."""
    with torch.device("meta"):
        vlm = NanoVLM(cfg)
    result = vlm.load_state_dict(state, strict=False, assign=True)
    if result.unexpected_keys:  # a mapping bug, never the user's: check_tensors ran first
        raise RuntimeError(f"mapped tensors with no home in the model: {result.unexpected_keys}")
    if cfg.lm_tie_weights:
        vlm.lm.lm_head.weight = vlm.lm.model.embed_tokens.weight
    _materialize_buffers(vlm, cfg)
    return vlm


def _materialize_buffers(vlm: NanoVLM, cfg: VLMConfig) -> None:
    """The model was built on the meta device (fast, no random init); its buffers are not in
    the checkpoint, so compute them here: ViT position ids and the RoPE frequencies."""
    from .checkpoint import rope_inv_freq
    for name, buf in list(vlm.named_buffers()):
        if not buf.is_meta:
            continue
        owner_name, attr = name.rsplit(".", 1)
        owner = vlm.get_submodule(owner_name)
        if attr == "position_ids":
            value = torch.arange(buf.shape[-1]).expand(buf.shape)
        elif attr in ("inv_freq", "original_inv_freq"):
            value = rope_inv_freq(cfg)
        else:
            raise RuntimeError(f"don't know how to build buffer {name}")
        persistent = attr not in owner._non_persistent_buffers_set
        owner.register_buffer(attr, value.clone(), persistent=persistent)
    for name, param in vlm.named_parameters():
        if param.is_meta:
            raise RuntimeError(f"parameter {name} was not loaded from the checkpoint")
